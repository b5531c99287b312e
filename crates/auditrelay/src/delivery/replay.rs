//! The replay executor: runs one scope's replay job, `accepted` → `pending` → `running` →
//! `completed` | `failed` (DECISIONS.md K7, DECISIONS.md D1).
//!
//! It reads the window's events in event-time order a few batches ahead (`ahead.rs`; memory
//! stays bounded however large the window), renders each batch in the format of the webhook's
//! destination as it is at that moment, and sends it with DECISIONS.md D3's retries. After every 2xx it saves the
//! progress and the position of the last event sent, so a job interrupted by a restart resumes
//! there (at most one batch is sent again). A batch that exhausts its retries fails the job with
//! the reason. Events the receiver refuses for good go to the refused list, with the job's id,
//! before the progress passes them. The live lane of the same webhook runs beside it, on its
//! own connection, and its cursor is never touched.

use std::sync::Arc;
use std::time::Instant;

use auditrelay_core::retry::Verdict;

use super::ahead::{Ahead, Position, SIGNED_AHEAD, Source};
use super::encode::{Encoding, sign_checkpoints};
use super::http::DeliveryClient;
use super::judge::{InHand, verdict};
use super::outcome::{attempt_outcome, logged, record_refused};
use super::setup::{Setup, Stamp, client_for, load_setup};
use super::shared::{Owner, STORE_RETRY, Shared, label};
use super::transport::SendOutcome;
use crate::clock;
use crate::integrity;
use crate::leases::Lease;
use crate::store::{AttemptKind, EventQuery, ReplayJob, ReplayStatus, StoreError};

/// How a run ended.
enum Ended {
    /// The job is completed or failed (and saved so).
    Finished,
    /// Stopped by shutdown, or the job was replaced: nothing more to do here.
    Stopped,
}

/// Runs `job` until it ends, or until its lease says stop.
pub async fn run(shared: Arc<Shared>, mut job: ReplayJob, lease: Lease) {
    let mut owner = Owner::new(lease);
    let webhook = label(&job.scope);
    // Kept across a store error's retry: a syslog client holds the unconfirmed tail.
    let mut client: Option<DeliveryClient> = None;
    loop {
        match step(&shared, &mut job, &mut client, &mut owner).await {
            Ok(Ended::Finished) => {
                tracing::info!(
                    webhook = %webhook,
                    replay.id = %job.id,
                    replay.status = job.status.as_str(),
                    replay.events_sent = job.events_sent,
                    "replay job ended"
                );
                return;
            }
            Ok(Ended::Stopped) => return,
            // Another node runs the job now.
            Err(StoreError::LeaseLost(_)) => return owner.lease.refused(),
            Err(e) => {
                tracing::warn!(webhook = %webhook, replay.id = %job.id, error = %e, "replay hit a store error; will retry");
                tokio::select! {
                    _ = owner.stopped() => return,
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
        }
    }
}

/// Saves the job; `Stopped` when a newer job replaced it, or when stopped before the store
/// took the write.
///
/// While the store refuses writes (a full disk), the save is tried again here rather than the
/// job going on: it never gets further than what is saved, so a restart sends at most the
/// batch in hand again.
async fn save(
    shared: &Shared,
    job: &mut ReplayJob,
    owner: &mut Owner,
) -> Result<Option<Ended>, StoreError> {
    job.updated_at = clock::now();
    loop {
        match shared.store.save_replay_job(owner.fence(), job).await {
            Ok(saved) => return Ok((!saved).then_some(Ended::Stopped)),
            Err(StoreError::Unavailable { .. }) => {
                tokio::select! {
                    _ = owner.stopped() => return Ok(Some(Ended::Stopped)),
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
}

async fn finish(
    shared: &Shared,
    job: &mut ReplayJob,
    failure: Option<String>,
    owner: &mut Owner,
) -> Result<Ended, StoreError> {
    job.status = match failure {
        None => ReplayStatus::Completed,
        Some(_) => ReplayStatus::Failed,
    };
    job.failure_reason = failure;
    job.finished_at = Some(clock::now());
    Ok(save(shared, job, owner).await?.unwrap_or(Ended::Finished))
}

async fn step(
    shared: &Arc<Shared>,
    job: &mut ReplayJob,
    cached_client: &mut Option<DeliveryClient>,
    owner: &mut Owner,
) -> Result<Ended, StoreError> {
    if job.status == ReplayStatus::Accepted {
        job.status = ReplayStatus::Pending;
        if let Some(ended) = save(shared, job, owner).await? {
            return Ok(ended);
        }
    }
    if job.status == ReplayStatus::Pending {
        job.status = ReplayStatus::Running;
        job.started_at = Some(clock::now());
        // The window as stored now is the job: events that arrive later (the PUT's own audit
        // events among them) are delivered live, and the total stays exact.
        let (total, newest) = shared
            .store
            .count_events_between(&job.scope, job.start_at, job.end_at)
            .await?;
        job.events_total = Some(total);
        job.through_seq = Some(newest);
        if let Some(ended) = save(shared, job, owner).await? {
            return Ok(ended);
        }
    }
    let max_events = shared.config.batch_max_events;
    // The batches after the one being sent, read and signed ahead in the window's order, each
    // under the configuration it was built with.
    let mut ahead: Ahead<Stamp> = Ahead::new(Arc::clone(shared), Source::Window(window(job)));
    ahead.restart_after(resume_position(job));
    loop {
        if owner.is_stopped() {
            return Ok(Ended::Stopped);
        }
        // The webhook's destination as it is now: a change applies from the next batch.
        let Some(setup) = load_setup(shared, &job.scope).await? else {
            return finish(shared, job, Some("webhook is not enabled".into()), owner).await;
        };
        let stamp = setup.stamp();
        // With `integrity`, events are read with their places in the log.
        let log = (setup.destination.integrity)
            .then(|| Arc::from(integrity::origin(&shared.store, &job.scope)));
        let relog = ahead.set_log(log);
        if relog || ahead.tags().any(|built_under| *built_under != stamp) {
            ahead.restart_after(resume_position(job));
        }
        let encoding = Encoding::new(shared, &setup, Some(job.id));
        // Asked before reading: once the log has taken the window's newest event, a read that
        // comes back empty is the window's end (asked after, the log could have taken events
        // the read did not see).
        let log_took_all = !setup.destination.integrity || log_took(shared, job).await?;
        // Usually two batches are being signed already (one more is started as each is
        // taken, below). This tops them up where that could not be done: on the first turn,
        // after a restart of the reads, when the background read was not back in time, and
        // for the window's last batch, which is short.
        while ahead.signing() < SIGNED_AHEAD {
            ahead.read(None, None, max_events).await?;
            if ahead.pending().is_empty() {
                break;
            }
            let (encoding, stamp) = (Arc::clone(&encoding), stamp.clone());
            ahead.start_signing(encoding, stamp, i64::MAX).await;
        }
        // The events after those are read while this batch is sent.
        ahead.start_reading(max_events);
        let Some(signed) = ahead.settle().await else {
            if !log_took_all {
                // The log has not taken the window's last events yet, and their lines carry
                // their places in it: they wait for it.
                tokio::select! {
                    _ = tokio::time::sleep(LOG_WAIT) => continue,
                    _ = owner.stopped() => return Ok(Ended::Stopped),
                }
            }
            // The window's events are sent; with `integrity`, its checkpoints follow.
            if setup.destination.integrity {
                let client = client_for(cached_client, shared, &setup);
                if let Some(ended) = send_checkpoints(shared, &client, &setup, job, owner).await? {
                    return Ok(ended);
                }
            }
            // Nothing more was read: the window is sent, once a syslog receiver has had time
            // to be seen taking the last batches (nothing would write them again after).
            let unconfirmed = match cached_client.as_ref() {
                Some(client) => tokio::select! {
                    drained = client.drain() => drained.err(),
                    _ = owner.stopped() => return Ok(Ended::Stopped),
                },
                None => None,
            };
            return finish(shared, job, unconfirmed, owner).await;
        };
        // One more batch starts signing now that this one is taken, so that two are signed
        // while it is sent, as a lane's are. Started only once it was sent and saved, one
        // batch alone was left for the cores while it waited on the SIEM and the store, and
        // they ran out of work before it was back (PERFORMANCE.md, session 23). Only from
        // what is read already, and only a whole batch's worth: otherwise the top of the loop
        // reads and starts it.
        ahead.take_read(false).await;
        if ahead.pending().len() >= max_events {
            ahead
                .start_signing(Arc::clone(&encoding), stamp.clone(), i64::MAX)
                .await;
            ahead.start_reading(max_events);
        }
        let taken = signed.events.len();
        let resume = Position::of(signed.events.last().expect("a batch takes events"));
        let mut signed = Signed {
            hand: InHand::new(signed.batch, signed.encoding, signed.events),
            taken,
            resume: (resume.ts, resume.seq),
            checkpoints: false,
        };
        let client = client_for(cached_client, shared, &setup);
        // The batches after this one are signed while it is on its way; its progress is saved
        // as soon as the SIEM took it.
        let lease = owner.lease.clone();
        let sent = tokio::select! {
            sent = send(shared, &client, &setup, job, &lease, &mut signed) => sent,
            _ = owner.stopped() => return Ok(Ended::Stopped),
        };
        if let Some(ended) = sent_batch(shared, job, &signed, sent, owner).await? {
            return Ok(ended);
        }
    }
}

/// How long a replay with `integrity` waits for the log to take the window's last events.
const LOG_WAIT: std::time::Duration = std::time::Duration::from_millis(200);

/// Sends again the checkpoints signed in the job's window and up to two intervals after it
/// (the last of its events are covered by one signed after its end), after its events, so that
/// a SIEM that lost a window with its checkpoints gets both back (DECISIONS.md S27). They do
/// not count as events sent. `Some` when the run ends here.
async fn send_checkpoints(
    shared: &Arc<Shared>,
    client: &DeliveryClient,
    setup: &Setup,
    job: &mut ReplayJob,
    owner: &mut Owner,
) -> Result<Option<Ended>, StoreError> {
    let interval = shared.checkpoint_interval;
    let slack = i64::try_from(interval.as_millis() * 2).unwrap_or(i64::MAX);
    let to = job.end_at.saturating_add_millis(slack);
    let mut after = 0;
    loop {
        let store = &shared.store;
        let due = store
            .checkpoints_signed_between(&job.scope, job.start_at, to, after, CHECKPOINTS_PER_BATCH)
            .await?;
        let Some(last) = due.last().map(|c| c.id) else {
            return Ok(None);
        };
        after = last;
        let events = integrity::checkpoint_events(store, &job.scope, due, interval).await?;
        let encoding = Encoding::new(shared, setup, Some(job.id));
        let Some(batch) = sign_checkpoints(shared, &encoding, events).await else {
            return Ok(None);
        };
        let mut hand = InHand::new(batch, encoding, Vec::new());
        // A checkpoint too old for the receiver is no event for the refused list.
        hand.refused.clear();
        let mut signed = Signed {
            hand,
            taken: 0,
            // The events' progress stays where it is.
            resume: job.resume.unwrap_or((0, 0)),
            checkpoints: true,
        };
        let lease = owner.lease.clone();
        let sent = tokio::select! {
            sent = send(shared, client, setup, job, &lease, &mut signed) => sent,
            _ = owner.stopped() => return Ok(Some(Ended::Stopped)),
        };
        if let Some(ended) = sent_batch(shared, job, &signed, sent, owner).await? {
            return Ok(Some(ended));
        }
    }
}

/// The most checkpoint events one batch of a replay carries.
const CHECKPOINTS_PER_BATCH: u32 = 100;

/// Whether the scope's log has taken the window's newest event (there is none to take in an
/// empty window).
async fn log_took(shared: &Shared, job: &ReplayJob) -> Result<bool, StoreError> {
    let Some(newest) = job.through_seq.filter(|seq| *seq > 0) else {
        return Ok(true);
    };
    let chunks = shared
        .store
        .log_places(&job.scope, newest - 1, newest)
        .await?;
    Ok(chunks.iter().any(|c| c.find(newest).is_some()))
}

/// Where the job resumes: after the last event of the last batch the SIEM took.
fn resume_position(job: &ReplayJob) -> Option<Position> {
    job.resume.map(|(ts, seq)| Position { ts, seq })
}

/// Sends one batch of the job with DECISIONS.md D3's retries. Records refused for now go
/// again on their own; those refused for good join `signed.hand.refused`.
async fn send(
    shared: &Arc<Shared>,
    client: &DeliveryClient,
    setup: &Setup,
    job: &ReplayJob,
    lease: &Lease,
    signed: &mut Signed,
) -> Result<(), SendOutcome> {
    let webhook = label(&job.scope);
    // Shown in the delivery log; the hand is borrowed mutably below.
    let endpoint = signed.hand.encoding.endpoint.clone();
    // Keyed by the job, so a SIEM that deduplicates does not drop a replay as a repeat of
    // what live delivery sent.
    let sender = match signed.checkpoints {
        false => format!("replay/{}", job.id),
        true => format!("replay/{}/checkpoints", job.id),
    };
    let hand = &mut signed.hand;
    let mut retries = 0;
    loop {
        hand.refuse_aged(shared).await;
        if hand.is_spent() {
            // Every event left was refused before sending: nothing goes out.
            return Ok(());
        }
        if !lease.wait_held().await {
            // The lease is lost: the caller stops on it.
            return std::future::pending().await;
        }
        let (at, started) = (clock::now(), Instant::now());
        let (sent, mut judged) = hand.attempt(client, setup, &sender).await;
        if signed.checkpoints {
            judged = judged.for_checkpoints(&webhook);
        }
        metrics::counter!(
            "auditrelay_replay_attempts_total",
            "webhook" => webhook.clone(),
            "outcome" => attempt_outcome(&sent),
        )
        .increment(1);
        // The delivery log shows replays next to live delivery; a log the store cannot write
        // does not stop the job.
        let attempt = logged(
            &sent,
            AttemptKind::Replay,
            &endpoint,
            &hand.batch,
            at,
            started.elapsed(),
        );
        if let Err(e) = shared
            .store
            .log_attempt(lease.fence(), &job.scope, &attempt, shared.config.log_size)
            .await
        {
            tracing::warn!(webhook = %webhook, error = %e, "a replay attempt was not logged");
        }
        let verdict = verdict(&shared.policy, retries, &sent, &judged);
        // Records refused for now go again alone, as a retry.
        hand.take(shared, judged, &verdict).await;
        match verdict {
            Verdict::Delivered => return Ok(()),
            Verdict::Failed => return Err(sent),
            Verdict::RetryAfter(wait) => {
                retries += 1;
                tokio::time::sleep(wait).await;
            }
        }
    }
}

/// Records a batch's outcome in the job: its refused events and its progress after a 2xx, the
/// failure otherwise. `Some` when the run ends here.
async fn sent_batch(
    shared: &Shared,
    job: &mut ReplayJob,
    signed: &Signed,
    sent: Result<(), SendOutcome>,
    owner: &mut Owner,
) -> Result<Option<Ended>, StoreError> {
    let events = signed.taken;
    if let Err(sent) = sent {
        let code = sent
            .code
            .map(|c| format!(" (HTTP {c})"))
            .unwrap_or_default();
        let what = match signed.checkpoints {
            true => format!("{} checkpoints", signed.hand.batch.events),
            false => format!("{events} events"),
        };
        let reason = format!(
            "a batch of {what} was not delivered: {}{code}",
            sent.message
        );
        return finish(shared, job, Some(reason), owner).await.map(Some);
    }
    let endpoint = &signed.hand.encoding.endpoint;
    if !record_refused(
        shared,
        owner,
        &job.scope,
        &signed.hand.refused,
        endpoint,
        Some(job.id),
    )
    .await?
    {
        return Ok(Some(Ended::Stopped));
    }
    // Every event the batch took has left the window: delivered, or on the refused list.
    job.events_sent += events as u64;
    job.batches_sent += 1;
    job.resume = Some(signed.resume);
    metrics::counter!("auditrelay_replay_events_total", "webhook" => label(&job.scope))
        .increment(events as u64);
    save(shared, job, owner).await
}

/// The job's window, as stored when it started.
fn window(job: &ReplayJob) -> EventQuery {
    EventQuery {
        org_id: job.scope.org_id,
        region: job.scope.region.clone(),
        portal_id: job.scope.portal_id,
        ts_from: job.start_at,
        ts_to: job.end_at,
        event_type: None,
        // Set for each read.
        after: None,
        through_seq: job.through_seq,
        limit: 0,
    }
}

/// A batch of the window, and the position of its last event.
struct Signed {
    hand: InHand,
    /// How many events the batch took at first.
    taken: usize,
    /// `(ts ms, seq)` of the batch's last event: the next batch starts after it.
    resume: (i64, i64),
    /// A batch of checkpoint events (its range is of checkpoint ids, keyed apart).
    checkpoints: bool,
}

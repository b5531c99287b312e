//! The replay executor: runs one scope's replay job, `accepted` → `pending` → `running` →
//! `completed` | `failed` (konnect-compat §7, Decision 1).
//!
//! It reads the window's events in event-time order one batch at a time (memory stays bounded
//! however large the window), renders each batch in the format of the webhook's destination as
//! it is at that moment, and sends it with Decision 3's retries. After every 2xx it saves the
//! progress and the position of the last event sent, so a job interrupted by a restart resumes
//! there (at most one batch is sent again). A batch that exhausts its retries fails the job with
//! the reason. The live lane of the same webhook runs beside it, on its own connection, and its
//! cursor is never touched.

use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::batch::idempotency_key;
use auditrelay_core::retry::Verdict;
use bytes::Bytes;
use tokio::sync::watch;

use super::engine::Shared;
use super::http::{DeliveryClient, SendOutcome};
use super::lane::{attempt_outcome, client_for, label, load_setup, sign_batch};
use crate::clock;
use crate::store::{EventQuery, ReplayJob, ReplayStatus, StoreError};

/// How long the executor waits after the store failed before it tries again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// How a run ended.
enum Ended {
    /// The job is completed or failed (and saved so).
    Finished,
    /// Stopped by shutdown, or the job was replaced: nothing more to do here.
    Stopped,
}

/// Runs `job` until it ends or `stop` turns true.
pub async fn run(shared: Arc<Shared>, mut job: ReplayJob, mut stop: watch::Receiver<bool>) {
    let webhook = label(&job.scope);
    loop {
        match step(&shared, &mut job, &mut stop).await {
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
            Err(e) => {
                tracing::warn!(webhook = %webhook, replay.id = %job.id, error = %e, "replay hit a store error; will retry");
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
        }
    }
}

/// Saves the job; `Stopped` when a newer job replaced it.
async fn save(shared: &Shared, job: &mut ReplayJob) -> Result<Option<Ended>, StoreError> {
    job.updated_at = clock::now();
    Ok((!shared.store.save_replay_job(job).await?).then_some(Ended::Stopped))
}

async fn finish(
    shared: &Shared,
    job: &mut ReplayJob,
    failure: Option<String>,
) -> Result<Ended, StoreError> {
    job.status = match failure {
        None => ReplayStatus::Completed,
        Some(_) => ReplayStatus::Failed,
    };
    job.failure_reason = failure;
    job.finished_at = Some(clock::now());
    Ok(save(shared, job).await?.unwrap_or(Ended::Finished))
}

async fn step(
    shared: &Shared,
    job: &mut ReplayJob,
    stop: &mut watch::Receiver<bool>,
) -> Result<Ended, StoreError> {
    if job.status == ReplayStatus::Accepted {
        job.status = ReplayStatus::Pending;
        if let Some(ended) = save(shared, job).await? {
            return Ok(ended);
        }
    }
    if job.status == ReplayStatus::Pending {
        job.status = ReplayStatus::Running;
        job.started_at = Some(clock::now());
        job.events_total = Some(
            shared
                .store
                .count_events_between(&job.scope, job.start_at, job.end_at)
                .await?,
        );
        if let Some(ended) = save(shared, job).await? {
            return Ok(ended);
        }
    }
    let limit = shared.config.batch_max_events as u32;
    let mut cached_client: Option<DeliveryClient> = None;
    loop {
        if *stop.borrow() {
            return Ok(Ended::Stopped);
        }
        // The webhook's destination as it is now: a change applies from the next batch.
        let Some(setup) = load_setup(shared, &job.scope).await? else {
            return finish(shared, job, Some("webhook is not enabled".into())).await;
        };
        let query = EventQuery {
            org_id: job.scope.org_id,
            region: job.scope.region.clone(),
            portal_id: job.scope.portal_id,
            ts_from: job.start_at,
            ts_to: job.end_at,
            event_type: None,
            after: job.resume,
            limit,
        };
        let events = shared.store.list_events(&query).await?;
        let format = setup.destination.log_format;
        let Some(batch) = sign_batch(shared, format, events.iter()).await else {
            return finish(shared, job, None).await;
        };
        let last = &events[batch.events - 1];
        let client = client_for(&mut cached_client, shared, &setup.destination);
        // Keyed by the job, so a SIEM that deduplicates does not drop a replay as a repeat of
        // what live delivery sent.
        let key = idempotency_key(
            &format!("replay/{}", job.id),
            batch.first_seq,
            batch.last_seq,
        );
        let body = Bytes::from(batch.body);
        let webhook = label(&job.scope);
        let endpoint = &setup.destination.endpoint;
        let sending = send_with_retries(
            shared,
            &client,
            endpoint,
            &setup.authorization,
            body,
            &key,
            &webhook,
        );
        let sent = tokio::select! {
            sent = sending => sent,
            _ = stop.wait_for(|stop| *stop) => return Ok(Ended::Stopped),
        };
        if let Err(sent) = sent {
            let code = sent
                .code
                .map(|c| format!(" (HTTP {c})"))
                .unwrap_or_default();
            let reason = format!(
                "a batch of {} events was not delivered: {}{code}",
                batch.events, sent.message
            );
            return finish(shared, job, Some(reason)).await;
        }
        job.events_sent += batch.events as u64;
        job.batches_sent += 1;
        job.resume = Some((last.event.ts.as_millis(), last.seq));
        metrics::counter!("auditrelay_replay_events_total", "webhook" => label(&job.scope))
            .increment(batch.events as u64);
        if let Some(ended) = save(shared, job).await? {
            return Ok(ended);
        }
    }
}

/// One batch with Decision 3's retries: `Ok` on a 2xx, else the final answer.
async fn send_with_retries(
    shared: &Shared,
    client: &DeliveryClient,
    endpoint: &str,
    authorization: &str,
    body: Bytes,
    key: &str,
    webhook: &str,
) -> Result<(), SendOutcome> {
    let mut retries = 0;
    loop {
        let sent = client
            .send(endpoint, authorization, body.clone(), key)
            .await;
        metrics::counter!(
            "auditrelay_replay_attempts_total",
            "webhook" => webhook.to_owned(),
            "outcome" => attempt_outcome(&sent),
        )
        .increment(1);
        match shared.policy.next(retries, &sent.attempt, clock::now()) {
            Verdict::Delivered => return Ok(()),
            Verdict::Failed => return Err(sent),
            Verdict::RetryAfter(wait) => {
                retries += 1;
                tokio::time::sleep(wait).await;
            }
        }
    }
}

//! One lane: the loop that delivers one enabled webhook's events, in ingest order, at least
//! once.
//!
//! Each turn reads the webhook and its destination afresh (so a change applies from the next
//! batch; while records are being written, see below, the lane keeps the one it read: a
//! change is signalled, and the stored configuration is looked at once a second), takes the
//! events after the cursor, renders and signs them in the destination's format into one gzip
//! batch, makes sure the store holds the batch's range as in flight, and sends it with the
//! retries of DECISIONS.md D3. A 2xx moves the cursor past the
//! batch in the same statement that records the attempt; a final failure records it, marks the
//! webhook `inactive` and keeps the cursor, and the lane probes with the same batch until the
//! SIEM answers again (DECISIONS.md D4). A change to the webhook or its destination cuts a wait
//! short: the batch is rebuilt with the new configuration and sent at once.
//!
//! Turns overlap. While batch N is on its way, the next two are signed (every core, at a lower
//! priority than serving) and the events after them are read, all in the background. N's record
//! is written behind the sends (`records.rs`), and notes in flight the batches the lane holds
//! next: N+1 goes as soon as a stored note covers it, while N's record waits behind the store
//! writer's group commit (DECISIONS.md S3). So neither the SIEM's answer nor the writer leaves a
//! core idle, and a backlog goes out as fast as the machine signs. A restart sends the noted
//! range again, cut into the same batches under the same keys: only whole batches go under a
//! note that reaches past them. Whatever was read or signed ahead is thrown away when N fails or
//! the configuration changes, and is read again from the store.
//!
//! Where the destination's kind judges records one by one (DECISIONS.md D14), those refused
//! for good are recorded in the refused list before the cursor passes them, and those refused
//! for now are sent again on their own, with the retries a whole batch gets.

use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_core::retry::{Attempt, Verdict};
use tokio::sync::watch;

use super::ahead::{Ahead, Position, SIGNED_AHEAD, Source, Span};
use super::encode::{Encoding, sign_checkpoints};
use super::http::DeliveryClient;
use super::judge::{InHand, verdict};
use super::outcome::{attempt_outcome, logged, nothing_sent, record_refused};
use super::records::Records;
use super::setup::{Setup, Stamp, client_for, load_setup, stamp};
use super::shared::{Owner, STORE_RETRY, Shared, label};
use super::transport::SendOutcome;
use crate::clock;
use crate::integrity;
use crate::leases::Lease;
use crate::store::{
    AttemptKind, AttemptOutcome, CheckpointsSent, DeliveryAttempt, Scope, StoreError,
};

/// Why a wait ended.
enum Wake {
    Stopped,
    /// The webhook or its destination changed (or is gone).
    Reconfigured,
    Appended,
    TimedOut,
}

/// A batch ready to send, and the configuration it was built under.
struct Built {
    hand: InHand,
    stamp: Stamp,
    /// The last `seq` of the range the batch stands for: past it the cursor moves once the
    /// batch is delivered, even after the batch is narrowed to the records to send again.
    through: i64,
    /// It took a whole batch's worth of events (its encoding's `max_events`): a range noted in
    /// flight is cut into such batches again after a restart (DECISIONS.md S3).
    whole: bool,
    /// For a batch of checkpoint events: what it moves. Such a batch stands for no events:
    /// `through` is the cursor as it was.
    checkpoints: Option<CheckpointsBuilt>,
}

/// What a batch of checkpoint events moves, and what it leaves as it was.
#[derive(Clone, Copy)]
struct CheckpointsBuilt {
    /// The checkpoint stream and cursor it was built on (`None` for a stream's first batch),
    /// and the id of its last checkpoint: where the cursor moves, unless the stream started
    /// afresh meanwhile.
    sent: CheckpointsSent,
    /// The batch of events noted in flight when it was built, which stays noted.
    in_flight: Option<i64>,
}

/// How gathering the next batch ended.
enum Gathered {
    Batch(Box<Built>),
    /// The range noted in flight is gone (retention deleted it while the SIEM was down).
    Vanished,
    Wake(Wake),
}

pub struct Lane {
    shared: Arc<Shared>,
    scope: Scope,
    label: String,
    changes: watch::Receiver<u64>,
    /// This node's hold on the lane: every write carries its fence, nothing is sent without
    /// it, and the lane stops when it is lost or given up, or the server stops.
    owner: Owner,
    appended: watch::Receiver<i64>,
    client: Option<DeliveryClient>,
    /// The events after the batch being sent, read ahead, and the batches after it, signed
    /// ahead (at most [`SIGNED_AHEAD`] with the next one), each under the configuration it was
    /// built with.
    ahead: Ahead<Stamp>,
    /// The batch to send next: signed ahead, or the one an inactive webhook is probed with.
    /// Its events are no longer among those read ahead.
    next: Option<Built>,
    /// Failed probes since the webhook turned inactive; `None` while active.
    probing: Option<u32>,
    /// The first `seq` of the last batch that failed, until one is delivered: a batch sent again
    /// from there (after a reconfiguration, or "Retry now") is a retry in the delivery log.
    failed_from: Option<i64>,
    /// For a destination with `integrity`: when the lane next looks for checkpoints to send.
    next_checkpoint_look: Instant,
    /// For a stream that has sent no checkpoint yet (its checkpoint cursor is NULL): the newest
    /// checkpoint its events had reached when it started, under the configuration it started
    /// with. It is not sent: the stream's first checkpoint is the one after it, which covers
    /// the stream's first line.
    checkpoint_floor: Option<(Stamp, Option<i64>)>,
    /// The records of delivered batches, written behind the sends, and what the store holds
    /// as in flight.
    records: Records,
}

/// How long a lane goes on with a setup it keeps (`Lane::may_keep`) before it looks at the
/// store's: a change is signalled, but a signal can be lost (another node's announcement on a
/// connection that dropped) or never sent (a change made outside the API). The look compares
/// the configuration only, so it does not wait for the records being written.
const KEEP_UNCHECKED: Duration = Duration::from_secs(1);

/// Whether `note` covers a batch ending at `through`, whole or not (see `Lane::is_noted`).
fn noted(note: Option<i64>, through: i64, whole: bool) -> bool {
    note.is_some_and(|note| through == note || (whole && through < note))
}

/// How often a lane of a destination with `integrity` looks for new checkpoints, and for
/// events the log has taken since it last read: the log takes events shortly after they are
/// committed, and no commit tells the lane.
const INTEGRITY_LOOK: Duration = Duration::from_millis(500);

/// The most checkpoint events one batch carries: a lane that was away for a while sends the
/// checkpoints it owes in a few batches.
const CHECKPOINTS_PER_BATCH: u32 = 100;

impl Lane {
    pub fn new(
        shared: Arc<Shared>,
        scope: Scope,
        changes: watch::Receiver<u64>,
        lease: Lease,
    ) -> Self {
        let appended = shared.store.commits().subscribe();
        let records = Records::new(
            shared.store.clone(),
            scope.clone(),
            shared.config.log_size,
            lease.stopped(),
        );
        Self {
            records,
            owner: Owner::new(lease),
            label: label(&scope),
            ahead: Ahead::new(Arc::clone(&shared), Source::Scope(scope.clone())),
            shared,
            scope,
            changes,
            appended,
            client: None,
            next: None,
            probing: None,
            failed_from: None,
            next_checkpoint_look: Instant::now(),
            checkpoint_floor: None,
        }
    }

    /// Delivers until stopped, or until the webhook is disabled or deleted.
    pub async fn run(mut self) {
        self.deliver_until_stopped().await;
        // The records still being written are waited for: a lane that stops (its webhook
        // disabled, the server stopping) has them stored rather than sent again later.
        if let Err(e) = self.records.written().await {
            tracing::warn!(webhook = %self.label, error = %e, "a delivered batch was not recorded; it will be sent again");
        }
    }

    async fn deliver_until_stopped(&mut self) {
        // The setup of the last turn, and when it was last known to be the stored one.
        let mut kept: Option<(Setup, Instant)> = None;
        loop {
            if self.owner.is_stopped() {
                return;
            }
            let kept_on = match kept.take() {
                Some((setup, checked)) if self.may_keep(&setup) => {
                    if checked.elapsed() < KEEP_UNCHECKED {
                        Some((setup, checked))
                    } else if !self.changed_since(&setup.stamp()).await {
                        Some((setup, Instant::now()))
                    } else {
                        None
                    }
                }
                _ => None,
            };
            let (setup, checked, fresh) = match kept_on {
                Some((setup, checked)) => (Ok(Some(setup)), checked, false),
                None => (self.setup().await, Instant::now(), true),
            };
            let turn = match setup {
                Ok(Some(setup)) => {
                    let turn = self.turn(&setup, fresh).await;
                    kept = Some((setup, checked));
                    turn
                }
                Ok(None) => return,
                Err(e) => Err(e),
            };
            match turn {
                Ok(true) => {}
                Ok(false) => return,
                // Another node delivers this webhook now.
                Err(StoreError::LeaseLost(_)) => {
                    self.owner.lease.refused();
                    return;
                }
                Err(e) => {
                    tracing::warn!(webhook = %self.label, error = %e, "delivery hit a store error; will retry");
                    // What the store says is the truth: start again from its cursor.
                    kept = None;
                    self.restart_from(0);
                    if let Wake::Stopped = self.wait(None, false, None, STORE_RETRY).await {
                        return;
                    }
                }
            }
        }
    }

    /// Whether the next turn may go on with `setup`, read before, rather than read it again
    /// once the records being written are stored: while they are, the store's cursor and
    /// in-flight note lag behind the lane's, and it is the batches in hand that go next. A
    /// change is signalled, so it ends the keeping; so do a probe, checkpoints (which start
    /// from the stored cursor), and a lane with nothing in hand, which would gather from the
    /// store's position.
    fn may_keep(&self, setup: &Setup) -> bool {
        self.records.pending()
            && !self.changes.has_changed().unwrap_or(true)
            && self.probing.is_none()
            && !setup.destination.integrity
            && (self.next.is_some() || self.ahead.signing() > 0)
    }

    /// Forgets every event read and every batch built: the next read starts after `through`
    /// (or after the stored cursor, if that is further on).
    fn restart_from(&mut self, through: i64) {
        self.next = None;
        self.read_again_after(through);
    }

    /// Forgets the events read and the batches being signed (but not the next batch to send):
    /// the next read starts after `seq`.
    fn read_again_after(&mut self, seq: i64) {
        self.ahead.restart_after(Some(Position::seq(seq)));
    }

    /// Reads the webhook and its destination, once the records being written are stored;
    /// `None` when the webhook no longer delivers.
    async fn setup(&mut self) -> Result<Option<Setup>, StoreError> {
        if !self.records.written().await? {
            return Ok(None);
        }
        let setup = load_setup(&self.shared, &self.scope).await?;
        if let Some(setup) = &setup {
            let webhook = &setup.webhook;
            self.records.set(webhook.in_flight_through);
            let stamp = setup.stamp();
            // A webhook that moved on (re-enabled, so its cursor jumped) drops what it read.
            // A batch built under another configuration is built again from the store.
            let stale = self.next.as_ref().is_some_and(|next| next.stamp != stamp)
                || self.ahead.tags().any(|built_under| *built_under != stamp);
            let read_through = self.ahead.read_through().map_or(0, |p| p.seq);
            // With `integrity`, events are read with their places in the log.
            let log = (setup.destination.integrity)
                .then(|| Arc::from(integrity::origin(&self.shared.store, &self.scope)));
            let relog = self.ahead.set_log(log);
            if webhook.cursor > read_through || stale || relog {
                self.restart_from(webhook.cursor);
            }
        }
        Ok(setup)
    }

    /// One batch: gathered (or taken ready), sent, recorded. `Ok(false)` when the lane must
    /// stop. `fresh`: `setup` was read once the records before were stored.
    async fn turn(&mut self, setup: &Setup, fresh: bool) -> Result<bool, StoreError> {
        let webhook = &setup.webhook;
        // Checkpoints go out between batches of events, whatever is ready or noted in flight:
        // a lane that always has a batch ready would otherwise never send one.
        // (Not while probing: the probe is the batch in hand.)
        let probe_in_hand = self.probing.is_some()
            || self
                .next
                .as_ref()
                .is_some_and(|next| next.checkpoints.is_some());
        if setup.destination.integrity
            && !probe_in_hand
            && let Some(built) = self.checkpoint_batch(setup).await?
        {
            return self.deliver(setup, built).await;
        }
        if self.next.is_none() {
            self.settle().await;
        }
        let built = match self.next.take() {
            Some(built) => built,
            // Gathering starts from the stored cursor and note, which a setup kept while
            // records were written shows behind: it is read again first.
            None if !fresh => return Ok(true),
            None => match self.gather(setup).await? {
                Gathered::Batch(built) => *built,
                Gathered::Wake(Wake::Stopped) => return Ok(false),
                Gathered::Wake(_) => return Ok(true),
                Gathered::Vanished => {
                    // Nothing to send again, so the lane goes on from the cursor.
                    return self.note_in_flight(webhook.cursor).await;
                }
            },
        };
        // The batch after this one is signed while this one is noted, sent and recorded.
        self.sign_ahead(setup, None).await;
        if built.checkpoints.is_none() {
            // A record written behind the sends may have failed: then the lane starts again
            // from what the store holds rather than send on.
            if !self.records.check().await? {
                return Ok(false);
            }
            if !self.is_noted(&built) {
                // A record written behind the sends may note it: the first that does ends the
                // wait, so that the lane need not wait for the others.
                let whole = built.whole;
                let through = built.through;
                let noting = self
                    .records
                    .until_stored(|note| noted(note, through, whole));
                if !noting.await? {
                    return Ok(false);
                }
            }
            if !self.is_noted(&built) {
                // Noted together with the whole batches in hand after it, when it is whole
                // itself, so that they can go while its record is written.
                let note = match built.whole {
                    true => self
                        .held_reach()
                        .map_or(built.through, |r| r.max(built.through)),
                    false => built.through,
                };
                if !self.note_in_flight(note).await? {
                    return Ok(false);
                }
            }
        }
        // A change saved since this turn read its setup applies to this batch too (looked for
        // last, after any wait for the store above). A lane that found its batch due without
        // waiting has not looked: under load, a batch went out with extra headers a PATCH had
        // cleared before its events were even ingested. The batch is built again (exactly its
        // range, if it is noted in flight). The change is marked seen before the store is read,
        // as a wait would: one saved after that read is still seen later, and another
        // webhook's change costs a busy lane one look, not one per batch.
        if self.changes.has_changed().unwrap_or(false) {
            self.changes.borrow_and_update();
            if self.changed_since(&setup.stamp()).await {
                // As after a change seen while waiting: a webhook being probed is re-armed.
                self.probing = None;
                self.restart_from(0);
                return Ok(true);
            }
        }
        self.deliver(setup, built).await
    }

    /// Whether the store holds `built` as in flight, so that it may go now (DECISIONS.md S3):
    /// the note covers it, and a batch that is not whole ends it. A restart cuts the noted
    /// range into whole batches from the cursor, so only the last batch of it may be shorter.
    fn is_noted(&self, built: &Built) -> bool {
        noted(self.records.stored(), built.through, built.whole)
    }

    /// How far the batches in hand reach, to be noted in flight with the record of the one
    /// delivered: the next batch and those being signed, in order, up to and including the
    /// first that is not whole (a batch that is not whole goes out only at the end of what is
    /// noted). `None` when none is in hand.
    fn held_reach(&self) -> Option<i64> {
        let next = self.next.as_ref().map(|next| Span {
            whole: next.whole && next.checkpoints.is_none(),
            last_seq: next.through,
        });
        let mut reach = None;
        for span in next.into_iter().chain(self.ahead.spans()) {
            reach = Some(span.last_seq);
            if !span.whole {
                break;
            }
        }
        reach
    }

    /// Notes the range up to `through` in flight, once the records being written are stored
    /// (a note may shrink only then). `Ok(false)` when the webhook is gone.
    async fn note_in_flight(&mut self, through: i64) -> Result<bool, StoreError> {
        if !self.records.written().await? {
            return Ok(false);
        }
        let store = &self.shared.store;
        let noted = store
            .mark_in_flight(self.owner.fence(), &self.scope, through)
            .await?;
        if noted {
            self.records.set(Some(through));
        }
        Ok(noted)
    }

    /// Waits until a batch is due (DECISIONS.md D5: full, or `flush_interval` after its first
    /// event), then builds it. A range noted in flight before a restart is built again without
    /// waiting, cut as it was (whole batches from the cursor, then the rest up to the note).
    async fn gather(&mut self, setup: &Setup) -> Result<Gathered, StoreError> {
        let webhook = &setup.webhook;
        let stamp = setup.stamp();
        let limits = self.shared.config.batch_limits();
        let in_flight = webhook
            .in_flight_through
            .filter(|through| *through > webhook.cursor);
        loop {
            let cursor = Some(Position::seq(webhook.cursor));
            self.ahead
                .read(cursor, in_flight, limits.max_events)
                .await?;
            if in_flight.is_some() || self.ahead.pending().len() >= limits.max_events {
                break;
            }
            let Some(due) = self.due() else {
                // A lane with `integrity` goes back to its turn now and then: for events the
                // log took since, and for checkpoints to send.
                let integrity = setup.destination.integrity;
                let look = if integrity {
                    INTEGRITY_LOOK
                } else {
                    Duration::MAX
                };
                match self.wait(None, true, Some(&stamp), look).await {
                    Wake::Appended => continue,
                    Wake::TimedOut if !integrity => continue,
                    other => return Ok(Gathered::Wake(other)),
                }
            };
            if due <= Instant::now() {
                break;
            }
            match self
                .wait(Some(due), true, Some(&stamp), Duration::MAX)
                .await
            {
                Wake::TimedOut => break,
                Wake::Appended => continue,
                other => return Ok(Gathered::Wake(other)),
            }
        }
        self.start_signing(setup, in_flight.unwrap_or(i64::MAX))
            .await;
        // The following events are read while this batch is signed.
        self.start_reading();
        self.settle().await;
        Ok(self
            .next
            .take()
            .map_or(Gathered::Vanished, |built| Gathered::Batch(Box::new(built))))
    }

    /// The next batch of checkpoint events (DECISIONS.md S27), when one is due: the
    /// checkpoints after the last one delivered whose events were all delivered (or refused), so
    /// that a checkpoint does not reach the SIEM before the lines it covers. A stream that has
    /// sent none yet starts after the newest checkpoint its delivered events had reached: its
    /// first checkpoint covers its first line. A batch of events noted in flight stays noted,
    /// to go next exactly as it was.
    async fn checkpoint_batch(&mut self, setup: &Setup) -> Result<Option<Built>, StoreError> {
        let webhook = &setup.webhook;
        let now = Instant::now();
        if now < self.next_checkpoint_look {
            return Ok(None);
        }
        self.next_checkpoint_look = now + INTEGRITY_LOOK;
        let store = &self.shared.store;
        let delivered = store
            .log_leaves_through(&self.scope, webhook.cursor)
            .await?;
        let after = match webhook.checkpoint_cursor {
            Some(cursor) => cursor,
            None => {
                let stamp = setup.stamp();
                let floor = match &self.checkpoint_floor {
                    Some((under, floor)) if *under == stamp => *floor,
                    _ => {
                        let reached = store
                            .checkpoints_after(&self.scope, None, delivered, 1)
                            .await?;
                        let floor = reached.first().map(|c| c.id);
                        self.checkpoint_floor = Some((stamp, floor));
                        floor
                    }
                };
                floor.unwrap_or(0)
            }
        };
        let due = store
            .checkpoints_after(&self.scope, Some(after), delivered, CHECKPOINTS_PER_BATCH)
            .await?;
        if due.is_empty() {
            return Ok(None);
        }
        let interval = self.shared.checkpoint_interval;
        let events = integrity::checkpoint_events(store, &self.scope, due, interval).await?;
        let encoding = Encoding::new(&self.shared, setup, None);
        let Some(batch) = sign_checkpoints(&self.shared, &encoding, events).await else {
            return Ok(None);
        };
        let through = batch.last_seq;
        let mut hand = InHand::new(batch, encoding, Vec::new());
        // A checkpoint too old for the receiver is no event for the refused list.
        hand.refused.clear();
        Ok(Some(Built {
            checkpoints: Some(CheckpointsBuilt {
                sent: CheckpointsSent {
                    stream: webhook.checkpoint_stream,
                    from: webhook.checkpoint_cursor,
                    through,
                },
                in_flight: webhook.in_flight_through,
            }),
            through: webhook.cursor,
            whole: false,
            hand,
            stamp: setup.stamp(),
        }))
    }

    /// When the oldest pending event's batch is due; `None` when nothing is pending.
    fn due(&self) -> Option<Instant> {
        let first = self.ahead.pending().front()?;
        let committed = self.shared.store.commits().committed_at(first.seq);
        // An event committed before this process started is long overdue.
        Some(committed.map_or_else(Instant::now, |at| at + self.shared.config.flush_interval))
    }

    /// Starts signing the next batch if it is due (full, or its flush interval has passed)
    /// and fewer than [`SIGNED_AHEAD`] are. Signing never delays the batch being sent. A
    /// webhook being probed signs nothing ahead: the probe will most likely fail, and what was
    /// signed ahead with it. `through` bounds the batch (a `seq`).
    async fn sign_ahead(&mut self, setup: &Setup, through: Option<i64>) {
        if self.probing.is_some() {
            return;
        }
        self.ahead.take_read(false).await;
        // Events noted in flight (after a restart) are cut into the batches they were sent
        // in: whole ones, and the rest up to the note.
        let through = through.or_else(|| {
            let note = self.records.stored()?;
            let first = self.ahead.pending().front()?;
            (first.seq <= note).then_some(note)
        });
        let signed = self.ahead.signing() + usize::from(self.next.is_some());
        let full = self.ahead.pending().len() >= self.shared.config.batch_max_events;
        if signed < SIGNED_AHEAD && (full || self.due().is_some_and(|due| due <= Instant::now())) {
            self.start_signing(setup, through.unwrap_or(i64::MAX)).await;
        }
        self.start_reading();
    }

    /// Starts reading the events that top those read ahead up to one batch's worth, in the background,
    /// so that neither the lane nor the next batch waits for the store.
    fn start_reading(&mut self) {
        self.ahead
            .start_reading(self.shared.config.batch_max_events);
    }

    /// Starts signing the pending events (up to `through`, one batch's worth) as the batch
    /// ahead, with the destination as it is now.
    async fn start_signing(&mut self, setup: &Setup, through: i64) {
        let encoding = Encoding::new(&self.shared, setup, None);
        self.ahead
            .start_signing(encoding, setup.stamp(), through)
            .await;
    }

    /// Waits for the oldest batch ahead, if any, and makes it the next to send.
    async fn settle(&mut self) {
        self.next = self.ahead.settle().await.map(|signed| Built {
            through: signed.batch.last_seq,
            whole: signed.batch.taken() == signed.encoding.limits.max_events,
            hand: InHand::new(signed.batch, signed.encoding, signed.events),
            stamp: signed.tag,
            checkpoints: None,
        });
    }

    /// Sends a batch with its retries (building the next one meanwhile), records the outcome,
    /// and on failure waits for the next probe. `Ok(false)` when the lane must stop.
    async fn deliver(&mut self, setup: &Setup, mut built: Built) -> Result<bool, StoreError> {
        let client = client_for(&mut self.client, &self.shared, setup);
        if setup.destination.skip_ssl_verification {
            tracing::warn!(
                webhook = %self.label,
                destination.id = %setup.destination.id,
                "delivering without TLS certificate verification (skip_ssl_verification)"
            );
        }
        let mut stop = self.owner.stop.clone();
        let started = Instant::now();
        let mut retries = 0;
        loop {
            built.hand.refuse_aged(&self.shared).await;
            if built.hand.is_spent() {
                // Every event left was refused before sending: nothing goes out.
                let endpoint = &built.hand.encoding.endpoint;
                let attempt = nothing_sent(&built.hand.batch, endpoint, clock::now());
                return self.delivered(&built, &attempt, started).await;
            }
            // A node paused past its lease sends nothing more until it knows it still holds
            // it: another node may have taken the webhook over.
            if !self.owner.lease.wait_held().await {
                return Ok(false);
            }
            let batch = &built.hand.batch;
            let kind = if self.probing.is_some() {
                AttemptKind::Probe
            } else if retries > 0
                || (built.checkpoints.is_none() && self.failed_from == Some(batch.first_seq))
            {
                AttemptKind::Retry
            } else {
                AttemptKind::Live
            };
            let (at, attempt_started) = (clock::now(), Instant::now());
            // A batch of checkpoints is keyed apart from the events' batches: its range is of
            // checkpoint ids, which may equal some batch's `seq`s.
            let sender = match built.checkpoints {
                Some(_) => format!("{}/checkpoints", self.label),
                None => self.label.clone(),
            };
            let sending = async {
                tokio::select! {
                    sent = built.hand.attempt(&client, setup, &sender) => Some(sent),
                    _ = stop.wait_for(|stop| *stop) => None,
                }
            };
            let Some((sent, mut judged)) = sending.await else {
                return Ok(false);
            };
            if built.checkpoints.is_some() {
                judged = judged.for_checkpoints(&self.label);
            }
            // A batch of checkpoints has no `seq`s: it says nothing of the events' batches.
            if built.checkpoints.is_none() {
                self.failed_from = match sent.attempt {
                    Attempt::Response { status, .. } if (200..300).contains(&status) => None,
                    Attempt::Written => None,
                    _ => Some(batch.first_seq),
                };
            }
            let attempt = logged(
                &sent,
                kind,
                &built.hand.encoding.endpoint,
                batch,
                at,
                attempt_started.elapsed(),
            );
            let mut verdict = verdict(&self.shared.policy, retries, &sent, &judged);
            metrics::counter!(
                "auditrelay_delivery_attempts_total",
                "webhook" => self.label.clone(),
                "outcome" => attempt_outcome(&sent),
            )
            .increment(1);
            // Records refused for now go again alone, as a retry, standing for the same range.
            built.hand.take(&self.shared, judged, &verdict).await;
            // A probe of an inactive webhook is one attempt, not a new round of retries.
            if self.probing.is_some() && matches!(verdict, Verdict::RetryAfter(_)) {
                verdict = Verdict::Failed;
            }
            match verdict {
                Verdict::Delivered => {
                    // The events read meanwhile may make another batch to sign. (After a
                    // failed attempt the lane waits on the SIEM; what it signed then would
                    // likely be dropped.)
                    // Behind a batch of checkpoints, with no batch of events in hand, a range
                    // noted in flight (after a restart) is the next batch: it is built again
                    // exactly, no further.
                    let webhook = &setup.webhook;
                    let in_flight = webhook.in_flight_through.filter(|through| {
                        built.checkpoints.is_some()
                            && self.next.is_none()
                            && *through > webhook.cursor
                    });
                    self.sign_ahead(setup, in_flight).await;
                    return self.delivered(&built, &attempt, started).await;
                }
                Verdict::RetryAfter(wait) => {
                    retries += 1;
                    // The records written behind the sends first: one that failed sends the
                    // lane back to what the store holds, which recording this failure (a
                    // best effort) would not.
                    if !self.records.written().await? {
                        return Ok(false);
                    }
                    // The status shows this failure now, not when the retries run out.
                    self.record_failure(&attempt, wait).await;
                    tracing::info!(
                        webhook = %self.label,
                        attempt = retries,
                        wait_ms = wait.as_millis() as u64,
                        http.status = sent.code,
                        error = %sent.message,
                        "delivery attempt failed; retrying"
                    );
                    match self.wait(None, false, Some(&built.stamp), wait).await {
                        Wake::Stopped => return Ok(false),
                        Wake::Reconfigured => {
                            // The batch is built again with the new configuration.
                            self.restart_from(0);
                            return Ok(true);
                        }
                        Wake::Appended | Wake::TimedOut => {}
                    }
                }
                Verdict::Failed => {
                    let rounds = self.probing.unwrap_or(0);
                    let wait = self.shared.policy.probe_delay(rounds);
                    self.failed(&sent, &attempt, wait).await?;
                    // The webhook is probed with this very batch; the ones signed ahead (and,
                    // behind a batch of checkpoints, the batch of events that was next) are
                    // read again once it delivers.
                    if built.checkpoints.is_some() || self.ahead.signing() > 0 {
                        self.restart_from(built.through);
                    }
                    self.probing = Some(rounds + 1);
                    let stamp = built.stamp.clone();
                    self.next = Some(built);
                    return match self.wait(None, false, Some(&stamp), wait).await {
                        Wake::Stopped => Ok(false),
                        Wake::Reconfigured => {
                            // A configuration change re-arms: the next attempt is a fresh batch
                            // with the full retry schedule.
                            self.probing = None;
                            Ok(true)
                        }
                        Wake::Appended | Wake::TimedOut => Ok(true),
                    };
                }
            }
        }
    }

    /// Records a delivered batch: its refused events join the refused list, then the cursor
    /// moves past it. `Ok(false)` when the lane stopped before the store took the record (the
    /// batch, still noted in flight, goes again after a restart).
    async fn delivered(
        &mut self,
        built: &Built,
        attempt: &DeliveryAttempt,
        started: Instant,
    ) -> Result<bool, StoreError> {
        let first = built
            .hand
            .events
            .first()
            .map_or(built.hand.batch.first_seq, |e| e.seq);
        let last = built.through;
        // A batch signed ahead that is ready is noted in flight by this very statement; one
        // still being signed is noted before it is sent. (After a batch of checkpoints, the
        // batch of events ready before it stays the next.)
        if self.next.is_none() && self.ahead.front_is_signed() {
            self.settle().await;
        }
        let (outcome, note) = match built.checkpoints {
            Some(checkpoints) => (
                AttemptOutcome::Delivered {
                    through: last,
                    next_in_flight: checkpoints.in_flight,
                    checkpoints: Some(checkpoints.sent),
                },
                checkpoints.in_flight,
            ),
            None => {
                // The batches in hand are noted with it, so that they may go while it is
                // recorded; a note written behind the sends never shrinks, since batches it
                // covers may be out already.
                let earlier = self.records.issued().filter(|issued| *issued > last);
                // The further of the two; `None` (nothing) is below any note.
                let note = self.held_reach().max(earlier);
                let outcome = AttemptOutcome::Delivered {
                    through: last,
                    next_in_flight: note,
                    checkpoints: None,
                };
                (outcome, note)
            }
        };
        // The common case, a batch of events with nothing refused, is recorded behind the
        // sends. The others wait for their record, written after those before it.
        if built.checkpoints.is_none() && built.hand.refused.is_empty() && self.probing.is_none() {
            let fence = self.owner.fence().clone();
            self.records.behind(fence, attempt.clone(), outcome);
        } else {
            if !self.records.written().await? {
                return Ok(false);
            }
            // Before the cursor passes them, so that no crash between the two loses one: a
            // batch sent again after a crash is refused again, and recorded once.
            let endpoint = &attempt.endpoint;
            if !record_refused(
                &self.shared,
                &mut self.owner,
                &self.scope,
                &built.hand.refused,
                endpoint,
                None,
            )
            .await?
            {
                return Ok(false);
            }
            if !self.record_delivered(attempt, outcome).await? {
                return Ok(false);
            }
            self.records.set(note);
        }
        if self.probing.take().is_some() {
            tracing::info!(webhook = %self.label, "webhook is delivering again");
        }
        if built.checkpoints.is_some() {
            let count = built.hand.delivered.len() as u64;
            metrics::counter!("auditrelay_delivery_checkpoints_total", "webhook" => self.label.clone())
                .increment(count);
            tracing::debug!(webhook = %self.label, checkpoints = count, "checkpoints delivered");
            return Ok(true);
        }
        let commits = self.shared.store.commits();
        let now = Instant::now();
        let latency = metrics::histogram!("auditrelay_delivery_latency_seconds", "webhook" => self.label.clone());
        for seq in &built.hand.delivered {
            if let Some(at) = commits.committed_at(*seq) {
                latency.record(now.saturating_duration_since(at));
            }
        }
        let count = built.hand.delivered.len() as u64;
        metrics::counter!("auditrelay_delivery_events_total", "webhook" => self.label.clone())
            .increment(count);
        metrics::counter!("auditrelay_delivery_batches_total", "webhook" => self.label.clone(), "outcome" => "delivered")
            .increment(1);
        tracing::debug!(
            webhook = %self.label,
            batch.first_seq = first,
            batch.last_seq = last,
            batch.size = count,
            batch.refused = built.hand.refused.len(),
            duration_ms = started.elapsed().as_millis() as u64,
            "batch delivered"
        );
        Ok(true)
    }

    /// Records a delivered batch's attempt, trying again while the store refuses writes (a
    /// full disk) instead of sending the batch again and again; `false` when stopped first.
    async fn record_delivered(
        &mut self,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError> {
        loop {
            match self.record(attempt, outcome).await {
                Ok(_) => return Ok(true),
                Err(StoreError::Unavailable { .. }) => {
                    if let Wake::Stopped = self.wait(None, false, None, STORE_RETRY).await {
                        return Ok(false);
                    }
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Records an attempt under this lane's lease (`Store::record_attempt`).
    async fn record(
        &mut self,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
    ) -> Result<bool, StoreError> {
        // After the records written behind the sends, which are of earlier attempts.
        if !self.records.written().await? {
            return Ok(false);
        }
        let store = &self.shared.store;
        let keep = self.shared.config.log_size;
        store
            .record_attempt(self.owner.fence(), &self.scope, attempt, outcome, keep)
            .await
    }

    /// Records a failed attempt that will be retried after `wait`. The batch is in hand and
    /// goes again whatever the store says, so a store fault here is logged, not fatal: the
    /// status catches up with the next attempt it can record.
    async fn record_failure(&mut self, attempt: &DeliveryAttempt, wait: Duration) {
        let outcome = AttemptOutcome::Failed {
            next_at: attempt
                .at
                .saturating_add_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
        };
        if let Err(e) = self.record(attempt, outcome).await {
            tracing::warn!(webhook = %self.label, error = %e, "a failed attempt was not recorded");
        }
    }

    /// Records a batch's final failure: the webhook is probed after `wait`.
    async fn failed(
        &mut self,
        sent: &SendOutcome,
        attempt: &DeliveryAttempt,
        wait: Duration,
    ) -> Result<(), StoreError> {
        let events = attempt.events;
        let outcome = AttemptOutcome::Failed {
            next_at: attempt
                .at
                .saturating_add_millis(i64::try_from(wait.as_millis()).unwrap_or(i64::MAX)),
        };
        self.record(attempt, outcome).await?;
        metrics::counter!("auditrelay_delivery_batches_total", "webhook" => self.label.clone(), "outcome" => "failed")
            .increment(1);
        tracing::warn!(
            webhook = %self.label,
            batch.size = events,
            http.status = sent.code,
            error = %sent.message,
            probing = self.probing.is_some(),
            "batch not delivered; the webhook is inactive and will be probed"
        );
        Ok(())
    }

    /// Waits until `until` (or for `timeout`), a stop, a change of this lane's configuration
    /// (when `stamp` is given), or a new commit (when `on_append`).
    async fn wait(
        &mut self,
        until: Option<Instant>,
        on_append: bool,
        stamp: Option<&Stamp>,
        timeout: Duration,
    ) -> Wake {
        let deadline = until.unwrap_or_else(|| {
            Instant::now()
                .checked_add(timeout)
                .unwrap_or_else(|| Instant::now() + Duration::from_secs(86_400 * 365))
        });
        let sleep = tokio::time::sleep_until(deadline.into());
        tokio::pin!(sleep);
        loop {
            let woke = tokio::select! {
                _ = self.owner.stopped() => Wake::Stopped,
                _ = &mut sleep => Wake::TimedOut,
                changed = self.appended.changed(), if on_append => match changed {
                    Ok(()) => Wake::Appended,
                    Err(_) => Wake::Stopped,
                },
                changed = self.changes.changed() => match changed {
                    Ok(()) => Wake::Reconfigured,
                    Err(_) => Wake::Stopped,
                },
            };
            // Another webhook's change is no reason to cut this lane's wait short.
            if let Wake::Reconfigured = woke {
                match stamp {
                    Some(stamp) if self.changed_since(stamp).await => {}
                    _ => continue,
                }
            }
            return woke;
        }
    }

    async fn changed_since(&self, stamp: &Stamp) -> bool {
        let store = &self.shared.store;
        let Ok(Some(webhook)) = store.get_webhook(&self.scope).await else {
            return true;
        };
        let destination = store
            .get_destination(self.scope.org_id, webhook.destination_id)
            .await;
        match destination {
            Ok(Some(destination)) => &self::stamp(&webhook, &destination) != stamp,
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::noted;

    /// A restart cuts the range noted in flight into whole batches from the cursor, then what
    /// is left up to the note: a batch that is not whole may go under a note only if it ends
    /// it, or the restart would cut its events into other batches, under other keys.
    #[test]
    fn only_a_whole_batch_goes_under_a_note_that_reaches_past_it() {
        assert!(noted(Some(300), 100, true));
        assert!(noted(Some(300), 300, true));
        assert!(noted(Some(300), 300, false));
        assert!(
            !noted(Some(300), 250, false),
            "a short batch inside the range"
        );
        assert!(!noted(Some(300), 301, true), "a batch past the note");
        assert!(!noted(None, 100, true), "nothing noted");
    }
}

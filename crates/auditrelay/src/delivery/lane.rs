//! One lane: the loop that delivers one enabled webhook's events, in ingest order, at least
//! once.
//!
//! Each turn reads the webhook and its destination afresh (so a change applies from the next
//! batch), takes the events after the cursor, renders and signs them in the destination's
//! format into one gzip batch, notes the batch's range as in flight, and sends it with the
//! retries of Decision 3. A 2xx moves the cursor past the batch in the same statement that
//! records the attempt; a final failure records it, marks the webhook `inactive` and keeps the
//! cursor, and the lane probes with the same batch until the SIEM answers again (Decision 4). A
//! change to the webhook or its destination cuts a wait short: the batch is rebuilt with the
//! new configuration and sent at once.

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_core::Timestamp;
use auditrelay_core::batch::{Batch, BatchBuilder, idempotency_key};
use auditrelay_core::format::{Format, sign_event};
use auditrelay_core::retry::{Attempt, TransportError, Verdict};
use bytes::Bytes;
use tokio::sync::watch;

use super::engine::Shared;
use super::http::{DeliveryClient, DeliverySettings, SendOutcome};
use crate::clock;
use crate::store::{Destination, LastAttempt, Scope, StoreError, StoredEvent, Webhook};

/// How long a lane waits after the store failed before it tries again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Renders and signs events in `format` into a batch until it is full; the rest wait for the
/// next batch. `None` when there are no events.
///
/// Signing is most of a batch's cost (Ed25519, one signature per line), so a batch is signed
/// on every core: each thread renders a contiguous share into its own buffer, and the lines
/// are then pushed in order. Ed25519 is deterministic, so the bytes are the same as on one
/// thread.
pub(super) async fn sign_batch<'a>(
    shared: &Shared,
    format: Format,
    events: impl Iterator<Item = &'a StoredEvent>,
) -> Option<Batch> {
    let keys = shared.keys.snapshot().await;
    let key = &keys.signing_key_at(clock::now()).key;
    let limits = shared.config.batch_limits();
    let events: Vec<&StoredEvent> = events.take(limits.max_events).collect();
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(events.len().div_ceil(MIN_LINES_PER_THREAD))
        .max(1);
    let share = events.len().div_ceil(threads).max(1);
    let sign = |chunk: &[&StoredEvent]| {
        let mut lines = Vec::with_capacity(chunk.len() * 512);
        let mut ends = Vec::with_capacity(chunk.len());
        for stored in chunk {
            sign_event(format, &stored.event, &shared.format, key, &mut lines);
            ends.push(lines.len());
        }
        (lines, ends)
    };
    let signed: Vec<(Vec<u8>, Vec<usize>)> = if threads == 1 {
        vec![sign(&events)]
    } else {
        std::thread::scope(|scope| {
            let mut chunks = events.chunks(share);
            let first = chunks.next().unwrap_or_default();
            let others: Vec<_> = chunks.map(|c| scope.spawn(move || sign(c))).collect();
            let mut signed = vec![sign(first)];
            signed.extend(
                others
                    .into_iter()
                    .map(|h| h.join().expect("a signing thread panicked")),
            );
            signed
        })
    };
    let mut builder = BatchBuilder::new(limits);
    let mut seqs = events.iter().map(|e| e.seq);
    'push: for (lines, ends) in &signed {
        let mut start = 0;
        for &end in ends {
            let seq = seqs.next().expect("one seq per line");
            if builder.push(seq, &lines[start..end]).is_err() {
                break 'push;
            }
            start = end;
        }
    }
    builder.finish()
}

/// Below this many lines per thread, starting a thread costs more than it saves.
const MIN_LINES_PER_THREAD: usize = 64;

/// The client for a destination's certificate choice, kept in `cache` while that choice holds
/// (connections are pooled per client).
pub(super) fn client_for(
    cache: &mut Option<DeliveryClient>,
    shared: &Shared,
    destination: &Destination,
) -> DeliveryClient {
    let settings = DeliverySettings::new(&shared.config, destination.skip_ssl_verification);
    match cache {
        Some(client) if client.settings() == &settings => client.clone(),
        _ => cache
            .insert(
                DeliveryClient::new(settings).expect("a client with these settings always builds"),
            )
            .clone(),
    }
}

/// The metrics label of a webhook: `org/<region>` or `portal/<id>`.
pub fn label(scope: &Scope) -> String {
    match scope.portal_id {
        None => format!("org/{}", scope.region),
        Some(portal) => format!("portal/{portal}"),
    }
}

/// What a lane delivers with: the webhook, its destination, and the opened secret. The stamp
/// tells whether a change affects this lane.
pub(super) struct Setup {
    pub webhook: Webhook,
    pub destination: Destination,
    pub authorization: String,
}

/// The scope's webhook, its destination and the opened authorization; `None` when the webhook
/// is gone or disabled.
pub(super) async fn load_setup(
    shared: &Shared,
    scope: &Scope,
) -> Result<Option<Setup>, StoreError> {
    let store = &shared.store;
    let Some(webhook) = store.get_webhook(scope).await? else {
        return Ok(None);
    };
    if !webhook.enabled {
        return Ok(None);
    }
    let destination = store
        .get_destination(scope.org_id, webhook.destination_id)
        .await?;
    let Some(destination) = destination else {
        return Ok(None);
    };
    let authorization = shared
        .secrets
        .open(
            &destination.authorization_sealed,
            &destination.id.to_string(),
        )
        .map_err(|e| StoreError::Corrupt(format!("destination authorization: {e}")))?;
    Ok(Some(Setup {
        webhook,
        destination,
        authorization,
    }))
}

impl Setup {
    fn stamp(&self) -> Stamp {
        stamp(&self.webhook, &self.destination)
    }
}

/// Everything whose change must cut a wait short.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Stamp {
    webhook_updated: Timestamp,
    enabled: bool,
    destination: uuid::Uuid,
    destination_updated: Timestamp,
}

fn stamp(webhook: &Webhook, destination: &Destination) -> Stamp {
    Stamp {
        webhook_updated: webhook.updated_at,
        enabled: webhook.enabled,
        destination: destination.id,
        destination_updated: destination.updated_at,
    }
}

/// Why a wait ended.
enum Wake {
    Stopped,
    /// The webhook or its destination changed (or is gone).
    Reconfigured,
    Appended,
    TimedOut,
}

pub struct Lane {
    shared: Arc<Shared>,
    scope: Scope,
    label: String,
    changes: watch::Receiver<u64>,
    stop: watch::Receiver<bool>,
    appended: watch::Receiver<i64>,
    client: Option<DeliveryClient>,
    /// Events read but not delivered yet, oldest first.
    pending: VecDeque<StoredEvent>,
    /// The last `seq` read into `pending` (or delivered).
    read_through: i64,
    /// Failed probes since the webhook turned inactive; `None` while active.
    probing: Option<u32>,
}

impl Lane {
    pub fn new(
        shared: Arc<Shared>,
        scope: Scope,
        changes: watch::Receiver<u64>,
        stop: watch::Receiver<bool>,
    ) -> Self {
        let appended = shared.store.commits().subscribe();
        Self {
            label: label(&scope),
            shared,
            scope,
            changes,
            stop,
            appended,
            client: None,
            pending: VecDeque::new(),
            read_through: 0,
            probing: None,
        }
    }

    /// Delivers until stopped, or until the webhook is disabled or deleted.
    pub async fn run(mut self) {
        let mut started = false;
        loop {
            if *self.stop.borrow() {
                return;
            }
            let setup = match self.setup().await {
                Ok(Some(setup)) => setup,
                Ok(None) => return,
                Err(e) => {
                    tracing::warn!(webhook = %self.label, error = %e, "delivery could not read its configuration; will retry");
                    if let Wake::Stopped = self.wait(None, false, None, STORE_RETRY).await {
                        return;
                    }
                    continue;
                }
            };
            if !started {
                self.read_through = setup.webhook.cursor;
                started = true;
            }
            match self.turn(&setup).await {
                Ok(true) => {}
                Ok(false) => return,
                Err(e) => {
                    tracing::warn!(webhook = %self.label, error = %e, "delivery hit a store error; will retry");
                    if let Wake::Stopped = self.wait(None, false, None, STORE_RETRY).await {
                        return;
                    }
                }
            }
        }
    }

    /// Reads the webhook and its destination; `None` when the webhook no longer delivers.
    async fn setup(&mut self) -> Result<Option<Setup>, StoreError> {
        let setup = load_setup(&self.shared, &self.scope).await?;
        // A webhook that moved on (re-enabled, so its cursor jumped) drops what it read.
        if let Some(setup) = &setup
            && setup.webhook.cursor > self.read_through
        {
            self.pending.clear();
            self.read_through = setup.webhook.cursor;
        }
        Ok(setup)
    }

    /// One batch: gathered, sent, recorded. `Ok(false)` when the lane must stop.
    async fn turn(&mut self, setup: &Setup) -> Result<bool, StoreError> {
        let webhook = &setup.webhook;
        let stamp = setup.stamp();
        let limits = self.shared.config.batch_limits();
        // A range noted in flight before a restart is sent again exactly, without waiting.
        let replaying = webhook
            .in_flight_through
            .filter(|through| *through > webhook.cursor);
        loop {
            self.read(webhook.cursor, replaying, limits.max_events)
                .await?;
            if replaying.is_some() || self.pending.len() >= limits.max_events {
                break;
            }
            let Some(first) = self.pending.front() else {
                match self.wait(None, true, Some(&stamp), Duration::MAX).await {
                    Wake::Stopped => return Ok(false),
                    Wake::Reconfigured => return Ok(true),
                    Wake::Appended | Wake::TimedOut => continue,
                }
            };
            // Decision 5: flushed at the latest `flush_interval` after its first event.
            let due = self
                .shared
                .store
                .commits()
                .committed_at(first.seq)
                .map(|at| at + self.shared.config.flush_interval);
            let Some(due) = due.filter(|due| *due > Instant::now()) else {
                break;
            };
            match self
                .wait(Some(due), true, Some(&stamp), Duration::MAX)
                .await
            {
                Wake::Stopped => return Ok(false),
                Wake::Reconfigured => return Ok(true),
                Wake::TimedOut => break,
                Wake::Appended => continue,
            }
        }
        let Some(batch) = self.build(setup, replaying).await else {
            // The range in flight is gone (retention deleted it while the SIEM was down):
            // nothing to send again, so the lane goes on from the cursor.
            let store = &self.shared.store;
            return store.mark_in_flight(&self.scope, webhook.cursor).await;
        };
        if webhook.in_flight_through != Some(batch.last_seq)
            && !self
                .shared
                .store
                .mark_in_flight(&self.scope, batch.last_seq)
                .await?
        {
            return Ok(false);
        }
        self.deliver(setup, &stamp, batch).await
    }

    /// Tops up `pending` with the events after what was read, up to `limit` in all.
    async fn read(
        &mut self,
        cursor: i64,
        through: Option<i64>,
        limit: usize,
    ) -> Result<(), StoreError> {
        if self.pending.len() >= limit {
            return Ok(());
        }
        let after = self.read_through.max(cursor);
        let room = (limit - self.pending.len()) as u32;
        let events = self
            .shared
            .store
            .events_to_deliver(&self.scope, after, through, room)
            .await?;
        if let Some(last) = events.last() {
            self.read_through = last.seq;
        }
        self.pending.extend(events);
        Ok(())
    }

    /// Renders and signs the pending events (up to `through`) into the next batch.
    async fn build(&self, setup: &Setup, through: Option<i64>) -> Option<Batch> {
        let through = through.unwrap_or(i64::MAX);
        let events = self.pending.iter().take_while(|e| e.seq <= through);
        sign_batch(&self.shared, setup.destination.log_format, events).await
    }

    /// Sends a batch with its retries, records the outcome, and on failure waits for the next
    /// probe. `Ok(false)` when the lane must stop.
    async fn deliver(
        &mut self,
        setup: &Setup,
        stamp: &Stamp,
        batch: Batch,
    ) -> Result<bool, StoreError> {
        let client = client_for(&mut self.client, &self.shared, &setup.destination);
        let key = idempotency_key(&self.label, batch.first_seq, batch.last_seq);
        let body = Bytes::from(batch.body);
        if setup.destination.skip_ssl_verification {
            tracing::warn!(
                webhook = %self.label,
                destination.id = %setup.destination.id,
                "delivering without TLS certificate verification (skip_ssl_verification)"
            );
        }
        let started = Instant::now();
        let mut retries = 0;
        loop {
            let sent = tokio::select! {
                sent = client.send(&setup.destination.endpoint, &setup.authorization, body.clone(), &key) => sent,
                _ = self.stop.wait_for(|stop| *stop) => return Ok(false),
            };
            let mut verdict = self
                .shared
                .policy
                .next(retries, &sent.attempt, clock::now());
            // A probe of an inactive webhook is one attempt, not a new round of retries.
            if self.probing.is_some() && matches!(verdict, Verdict::RetryAfter(_)) {
                verdict = Verdict::Failed;
            }
            metrics::counter!(
                "auditrelay_delivery_attempts_total",
                "webhook" => self.label.clone(),
                "outcome" => attempt_outcome(&sent),
            )
            .increment(1);
            match verdict {
                Verdict::Delivered => {
                    self.delivered(batch.first_seq, batch.last_seq, &sent, started)
                        .await?;
                    self.drop_delivered(batch.events, batch.last_seq);
                    return Ok(true);
                }
                Verdict::RetryAfter(wait) => {
                    retries += 1;
                    tracing::info!(
                        webhook = %self.label,
                        attempt = retries,
                        wait_ms = wait.as_millis() as u64,
                        http.status = sent.code,
                        error = %sent.message,
                        "delivery attempt failed; retrying"
                    );
                    match self.wait(None, false, Some(stamp), wait).await {
                        Wake::Stopped => return Ok(false),
                        Wake::Reconfigured => return Ok(true),
                        Wake::Appended | Wake::TimedOut => {}
                    }
                }
                Verdict::Failed => {
                    self.failed(&sent, batch.events).await?;
                    let rounds = self.probing.unwrap_or(0);
                    let wait = self.shared.policy.probe_delay(rounds);
                    self.probing = Some(rounds + 1);
                    return match self.wait(None, false, Some(stamp), wait).await {
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

    async fn delivered(
        &mut self,
        first: i64,
        last: i64,
        sent: &SendOutcome,
        started: Instant,
    ) -> Result<(), StoreError> {
        let attempt = last_attempt(sent);
        self.shared
            .store
            .record_attempt(&self.scope, &attempt, Some(last))
            .await?;
        if self.probing.take().is_some() {
            tracing::info!(webhook = %self.label, "webhook is delivering again");
        }
        let events = self.pending.iter().take_while(|e| e.seq <= last);
        let commits = self.shared.store.commits();
        let now = Instant::now();
        let mut count = 0u64;
        for event in events {
            count += 1;
            if let Some(at) = commits.committed_at(event.seq) {
                metrics::histogram!("auditrelay_delivery_latency_seconds", "webhook" => self.label.clone())
                    .record(now.saturating_duration_since(at));
            }
        }
        metrics::counter!("auditrelay_delivery_events_total", "webhook" => self.label.clone())
            .increment(count);
        metrics::counter!("auditrelay_delivery_batches_total", "webhook" => self.label.clone(), "outcome" => "delivered")
            .increment(1);
        tracing::debug!(
            webhook = %self.label,
            batch.first_seq = first,
            batch.last_seq = last,
            batch.size = count,
            duration_ms = started.elapsed().as_millis() as u64,
            "batch delivered"
        );
        Ok(())
    }

    async fn failed(&mut self, sent: &SendOutcome, events: usize) -> Result<(), StoreError> {
        self.shared
            .store
            .record_attempt(&self.scope, &last_attempt(sent), None)
            .await?;
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

    fn drop_delivered(&mut self, count: usize, last: i64) {
        self.pending.drain(..count.min(self.pending.len()));
        debug_assert!(self.pending.front().is_none_or(|e| e.seq > last));
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
                _ = self.stop.wait_for(|stop| *stop) => Wake::Stopped,
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

pub(super) fn last_attempt(sent: &SendOutcome) -> LastAttempt {
    LastAttempt {
        at: clock::now(),
        code: sent.code,
        message: sent.message.clone(),
    }
}

/// The `outcome` label of an attempt: `2xx`…`5xx`, or the transport failure.
pub(super) fn attempt_outcome(sent: &SendOutcome) -> &'static str {
    match &sent.attempt {
        Attempt::Response { status, .. } => match status / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        Attempt::Transport(kind) => match kind {
            TransportError::Connect => "connect",
            TransportError::Timeout => "timeout",
            TransportError::Tls => "tls",
            TransportError::Protocol => "protocol",
            TransportError::Refused => "refused",
            TransportError::Other => "other",
        },
    }
}

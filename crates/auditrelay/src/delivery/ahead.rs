//! The read-ahead stage: the events after the batch being sent, read from the store in the
//! background, and the batches after it, signed in the background (`encode::Signing`), so that
//! neither the SIEM's answer nor the store's writer leaves a core idle. Live lanes read their
//! scope in ingest order; replay jobs read their window in event-time order; both go through
//! here.
//!
//! What was read waits in `pending`; a batch takes events from its front. A batch cut short by
//! its byte limit gives the events it could not take back to the front, unless batches signed
//! behind it already took the events after them: then everything after its last event is read
//! and signed again.

use std::collections::VecDeque;
use std::sync::Arc;

use auditrelay_core::batch::Batch;
use tokio::task::JoinHandle;

use super::encode::{Encoding, Signing};
use super::shared::Shared;
use crate::store::{EventQuery, Scope, StoreError, StoredEvent};
use auditrelay_core::integrity::LogPlace;

/// How many batches lanes and replay jobs sign ahead of the one they are sending: while that
/// one waits on the SIEM and on the store (whose single writer is busy with ingest's group
/// commits under load), the cores go on signing.
pub(super) const SIGNED_AHEAD: usize = 2;

/// Where events come from, in the order they are sent.
#[derive(Debug, Clone)]
pub(super) enum Source {
    /// A scope's events in ingest order (`seq`).
    Scope(Scope),
    /// A window's events in event-time order (`ts`, then `seq`); the query's `after` and
    /// `limit` are set for each read.
    Window(EventQuery),
}

/// An event's place in its source's order: by `seq` alone for a scope, by `ts` then `seq` for
/// a window. (No `PartialEq`: which fields count depends on the source.)
#[derive(Debug, Clone, Copy)]
pub(super) struct Position {
    pub ts: i64,
    pub seq: i64,
}

impl Position {
    /// The place of the event of `seq` in a scope's order (where `ts` does not count).
    pub fn seq(seq: i64) -> Self {
        Self { ts: 0, seq }
    }

    pub fn of(event: &StoredEvent) -> Self {
        Self {
            ts: event.event.ts.as_millis(),
            seq: event.seq,
        }
    }
}

impl Source {
    /// Up to `limit` events after `after` (from the start when `None`), and up to `through`
    /// (a scope's `seq`) when given. With `log` (the scope's log origin, for a destination with
    /// `integrity`), each event comes with its place in the log, and the read stops before the
    /// first event the log has not taken yet: such a line cannot be written until it has.
    async fn read(
        &self,
        shared: &Shared,
        log: Option<&Arc<str>>,
        after: Option<Position>,
        through: Option<i64>,
        limit: usize,
    ) -> Result<Vec<StoredEvent>, StoreError> {
        let limit = u32::try_from(limit).unwrap_or(u32::MAX);
        let (scope, events) = match self {
            Self::Scope(scope) => {
                let after = after.map_or(0, |p| p.seq);
                let store = &shared.store;
                // With `integrity`, nothing past the log's reach: those events would be read,
                // decoded and dropped again, as long as the lane keeps up with ingest.
                let through = match log {
                    Some(_) => {
                        let reach = store.log_reach(scope).await?;
                        if reach <= after {
                            return Ok(Vec::new());
                        }
                        Some(through.map_or(reach, |t| t.min(reach)))
                    }
                    None => through,
                };
                let events = store
                    .events_to_deliver(scope, after, through, limit)
                    .await?;
                (scope.clone(), events)
            }
            Self::Window(query) => {
                let query = EventQuery {
                    after: after.map(|p| (p.ts, p.seq)),
                    limit,
                    ..query.clone()
                };
                let scope = Scope {
                    org_id: query.org_id,
                    region: query.region.clone(),
                    portal_id: query.portal_id,
                };
                (scope, shared.store.list_events(&query).await?)
            }
        };
        match log {
            Some(log) => place(shared, &scope, log, events).await,
            None => Ok(events),
        }
    }
}

/// `events` with their places in `scope`'s log `log`, up to the first the log has not taken.
pub(super) async fn place(
    shared: &Shared,
    scope: &Scope,
    log: &Arc<str>,
    mut events: Vec<StoredEvent>,
) -> Result<Vec<StoredEvent>, StoreError> {
    let (Some(first), Some(last)) = (
        events.iter().map(|e| e.seq).min(),
        events.iter().map(|e| e.seq).max(),
    ) else {
        return Ok(events);
    };
    let chunks = shared.store.log_places(scope, first - 1, last).await?;
    let mut placed = 0;
    for stored in &mut events {
        // Chunks are in `seq` order: the one that may hold an event is the first whose last
        // `seq` is not before it.
        let at = chunks.partition_point(|c| c.seqs.last().is_some_and(|l| *l < stored.seq));
        let Some((index, leaf_hash)) = chunks.get(at).and_then(|c| c.find(stored.seq)) else {
            break;
        };
        stored.place = Some(LogPlace {
            log: Arc::clone(log),
            index,
            leaf_hash,
        });
        placed += 1;
    }
    events.truncate(placed);
    Ok(events)
}

/// A batch signed ahead: the events it took, in its order (refused ones too), how it was
/// encoded, and the caller's `tag` (the configuration it was built under).
pub(super) struct Signed<T> {
    pub batch: Batch,
    pub events: Vec<StoredEvent>,
    pub encoding: Arc<Encoding>,
    pub tag: T,
}

/// A batch being signed, oldest first.
struct Underway<T> {
    signing: Signing,
    encoding: Arc<Encoding>,
    tag: T,
    /// How many events it was given, and the `seq` of the last: the batch takes them all
    /// unless its byte limit cuts it short.
    given: usize,
    last_seq: i64,
}

/// A batch being signed, as far as is known before it is done: the events it was given, of a
/// batch's worth at most.
#[derive(Debug, Clone, Copy)]
pub(super) struct Span {
    /// It was given a whole batch's worth (its encoding's `max_events`).
    pub whole: bool,
    /// The `seq` of the last event it was given: it ends there or, cut short, before.
    pub last_seq: i64,
}

pub(super) struct Ahead<T> {
    shared: Arc<Shared>,
    source: Source,
    /// The scope's log origin when the destination has `integrity`: events are read with
    /// their places in the log, and only once it has taken them.
    log: Option<Arc<str>>,
    /// Events read but in no batch yet, in order: at most one batch's worth, plus what a batch
    /// cut short left over.
    pending: VecDeque<StoredEvent>,
    /// The last event read (into `pending` or a batch); `None`: nothing yet, read from the
    /// start.
    read_through: Option<Position>,
    /// The events after `read_through`, being read in the background; one read at a time.
    reading: Option<JoinHandle<Result<Vec<StoredEvent>, StoreError>>>,
    /// The batches being signed, oldest first. Their events are no longer in `pending`.
    signing: VecDeque<Underway<T>>,
    /// The mean length of a record (with its separator) in the last batch built.
    record_bytes: Option<usize>,
}

impl<T> Drop for Ahead<T> {
    /// The background read goes with it; a batch being signed finishes on its own, unused.
    fn drop(&mut self) {
        if let Some(reading) = self.reading.take() {
            reading.abort();
        }
    }
}

impl<T> Ahead<T> {
    pub fn new(shared: Arc<Shared>, source: Source) -> Self {
        Self {
            shared,
            source,
            log: None,
            pending: VecDeque::new(),
            read_through: None,
            reading: None,
            signing: VecDeque::new(),
            record_bytes: None,
        }
    }

    /// Reads events with their places in the log `log` from the next read on, or without
    /// (`None`). Whether that is a change: what was read before is then to be read again.
    pub fn set_log(&mut self, log: Option<Arc<str>>) -> bool {
        let changed = self.log != log;
        self.log = log;
        changed
    }

    /// Forgets the events read and the batches being signed: the next read starts after
    /// `position` (from the start when `None`).
    pub fn restart_after(&mut self, position: Option<Position>) {
        self.pending.clear();
        if let Some(reading) = self.reading.take() {
            reading.abort();
        }
        // A batch still being signed finishes on its own; its result is dropped.
        self.signing.clear();
        self.read_through = position;
    }

    /// The last event read.
    pub fn read_through(&self) -> Option<Position> {
        self.read_through
    }

    /// The events read but in no batch yet.
    pub fn pending(&self) -> &VecDeque<StoredEvent> {
        &self.pending
    }

    /// How many batches are being signed.
    pub fn signing(&self) -> usize {
        self.signing.len()
    }

    /// Whether the oldest batch being signed is ready.
    pub fn front_is_signed(&self) -> bool {
        self.signing
            .front()
            .is_some_and(|s| s.signing.is_finished())
    }

    /// The tags of the batches being signed.
    pub fn tags(&self) -> impl Iterator<Item = &T> {
        self.signing.iter().map(|s| &s.tag)
    }

    /// The batches being signed, oldest first.
    pub fn spans(&self) -> impl Iterator<Item = Span> {
        self.signing.iter().map(|s| Span {
            whole: s.given == s.encoding.limits.max_events,
            last_seq: s.last_seq,
        })
    }

    /// Starts reading the events that top `pending` up to `max` in the background, so that
    /// neither the caller nor the next batch waits for the store; one read at a time.
    pub fn start_reading(&mut self, max: usize) {
        if self.reading.is_some() || self.pending.len() >= max {
            return;
        }
        let shared = Arc::clone(&self.shared);
        let source = self.source.clone();
        let log = self.log.clone();
        let (after, room) = (self.read_through, max - self.pending.len());
        self.reading = Some(tokio::spawn(async move {
            source.read(&shared, log.as_ref(), after, None, room).await
        }));
    }

    /// Adds the events of the background read to `pending`, if it is done (or, when `wait`,
    /// once it is). A failed read is left to the next one.
    pub async fn take_read(&mut self, wait: bool) {
        let Some(reading) = self.reading.take_if(|r| wait || r.is_finished()) else {
            return;
        };
        match reading.await {
            Ok(Ok(events)) => self.add(events),
            Ok(Err(e)) => tracing::debug!(error = %e, "could not read ahead"),
            // Aborted: only `restart_after` aborts, and it drops the handle first.
            Err(e) => {
                if let Ok(panic) = e.try_into_panic() {
                    std::panic::resume_unwind(panic);
                }
            }
        }
    }

    fn add(&mut self, events: Vec<StoredEvent>) {
        if let Some(last) = events.last() {
            self.read_through = Some(Position::of(last));
        }
        self.pending.extend(events);
    }

    /// Tops `pending` up to `limit` now: with the background read's events first, then with
    /// a read of its own, of the events after what was read — and, for a scope, after `floor`
    /// (its cursor, which may have moved on) and up to `through` (a `seq`) when given. A
    /// window's reads take neither.
    pub async fn read(
        &mut self,
        floor: Option<Position>,
        through: Option<i64>,
        limit: usize,
    ) -> Result<(), StoreError> {
        debug_assert!(
            matches!(self.source, Source::Scope(_)) || (floor.is_none() && through.is_none()),
            "a floor and a bound are a scope's, in seq"
        );
        self.take_read(true).await;
        if self.pending.len() >= limit {
            return Ok(());
        }
        let after = match (self.read_through, floor) {
            (Some(read), Some(floor)) => Some(if floor.seq > read.seq { floor } else { read }),
            (read, floor) => read.or(floor),
        };
        let room = limit - self.pending.len();
        let log = self.log.as_ref();
        let events = (self.source.read(&self.shared, log, after, through, room)).await?;
        self.add(events);
        Ok(())
    }

    /// Starts signing the front of `pending` (one batch's worth; for a scope, only its events
    /// up to `through`, a `seq`, and `i64::MAX` for no bound) as the next batch, encoded by
    /// `encoding`; nothing when nothing is pending.
    ///
    /// Where records are long enough for the byte limit to cut a batch before its event limit,
    /// only about as many as fit are signed: a cut batch's leftovers are signed again, and the
    /// batches signed behind it too. A range bounded by `through` (a lane's batch noted in
    /// flight) is rebuilt whole, as it was cut before.
    pub async fn start_signing(&mut self, encoding: Arc<Encoding>, tag: T, through: i64) {
        debug_assert!(
            matches!(self.source, Source::Scope(_)) || through == i64::MAX,
            "a bound is a scope's, in seq"
        );
        let limits = encoding.limits;
        let fit = match self.record_bytes {
            Some(record) if through == i64::MAX => (limits.max_bytes / 10 * 9 / record).max(1),
            _ => limits.max_events,
        };
        let take = self
            .pending
            .iter()
            .take_while(|e| e.seq <= through)
            .take(limits.max_events.min(fit))
            .count();
        if take == 0 {
            return;
        }
        let events: Vec<StoredEvent> = self.pending.drain(..take).collect();
        let last_seq = events.last().map_or(i64::MIN, |e| e.seq);
        self.signing.push_back(Underway {
            signing: Signing::start(&self.shared, &encoding, events).await,
            encoding,
            tag,
            given: take,
            last_seq,
        });
    }

    /// Waits for the oldest batch being signed, if any, and hands it over; the events it could
    /// not take go back to the front of `pending`. `None` when nothing was being signed, or it
    /// made no batch.
    pub async fn settle(&mut self) -> Option<Signed<T>> {
        let oldest = self.signing.pop_front()?;
        let (batch, mut events) = oldest.signing.finish().await;
        if let Some(batch) = batch.as_ref().filter(|b| b.events > 0) {
            self.record_bytes = Some((batch.uncompressed_bytes + 1).div_ceil(batch.events));
        }
        let unsent = events.split_off(batch.as_ref().map_or(0, Batch::taken));
        if !unsent.is_empty() && !self.signing.is_empty() {
            // The batch was cut short (by its byte limit) and the ones after it were built from
            // the events after its end: they are read and built again after its last event.
            let last = events.last().map(Position::of).or(self.read_through);
            self.restart_after(last);
        } else {
            for unsent in unsent.into_iter().rev() {
                self.pending.push_front(unsent);
            }
        }
        Some(Signed {
            batch: batch?,
            events,
            encoding: oldest.encoding,
            tag: oldest.tag,
        })
    }
}

#[cfg(test)]
mod tests {
    use auditrelay_core::batch::BatchLimits;
    use auditrelay_core::{Event, OrgId, Region, Timestamp};

    use super::*;
    use crate::fixtures;

    fn scope() -> Scope {
        Scope {
            org_id: OrgId::from_uuid(uuid::Uuid::from_u128(1)),
            region: Region::parse("us").unwrap(),
            portal_id: None,
        }
    }

    /// Events of `scope()`, one per time in `ts` (ms), stored in that order; each line is
    /// about 600 bytes (a long principal name).
    async fn store(shared: &Shared, ts: &[i64]) {
        let events = ts
            .iter()
            .map(|ts| Event {
                principal_name: Some("n".repeat(300)),
                ..fixtures::event(
                    scope().org_id,
                    Timestamp::from_millis(*ts),
                    format!("t{ts}"),
                )
            })
            .collect();
        shared.store.append_events(events).await.unwrap();
    }

    /// Konnect's lines, at most 10 per batch and `max_bytes`.
    fn encoding(max_bytes: usize) -> Arc<Encoding> {
        let limits = BatchLimits {
            max_events: 10,
            max_bytes,
        };
        Encoding::cef_lines(limits, None, None)
    }

    fn seqs(events: &[StoredEvent]) -> Vec<i64> {
        events.iter().map(|e| e.seq).collect()
    }

    #[tokio::test]
    async fn a_batch_cut_short_gives_back_what_it_could_not_take() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(dir.path()).await;
        store(&shared, &(1..=10).collect::<Vec<_>>()).await;
        let mut ahead: Ahead<()> = Ahead::new(Arc::clone(&shared), Source::Scope(scope()));
        ahead.read(None, None, 10).await.unwrap();
        assert_eq!(ahead.pending().len(), 10);
        // About four lines fit.
        ahead.start_signing(encoding(2_600), (), i64::MAX).await;
        let first = ahead.settle().await.unwrap();
        let taken = seqs(&first.events);
        assert_eq!(taken.len(), first.batch.events);
        assert!(taken.len() < 10, "{taken:?}");
        let left: Vec<i64> = ahead.pending().iter().map(|e| e.seq).collect();
        let all: Vec<i64> = taken.iter().chain(&left).copied().collect();
        assert_eq!(
            all,
            (1..=10).collect::<Vec<_>>(),
            "nothing lost, nothing reordered"
        );
    }

    #[tokio::test]
    async fn a_batch_cut_short_with_batches_behind_it_reads_again_after_its_end() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(dir.path()).await;
        store(&shared, &(1..=20).collect::<Vec<_>>()).await;
        let mut ahead: Ahead<()> = Ahead::new(Arc::clone(&shared), Source::Scope(scope()));
        ahead.read(None, None, 20).await.unwrap();
        // Nothing is known of line lengths yet: both take ten, and the first is cut.
        ahead.start_signing(encoding(2_600), (), i64::MAX).await;
        ahead.start_signing(encoding(2_600), (), i64::MAX).await;
        assert_eq!(ahead.signing(), 2);
        let first = ahead.settle().await.unwrap();
        let last = *seqs(&first.events).last().unwrap();
        assert!(last < 10);
        assert_eq!(ahead.signing(), 0, "the batch behind it is thrown away");
        assert!(ahead.pending().is_empty());
        ahead.read(None, None, 20).await.unwrap();
        assert_eq!(ahead.pending().front().map(|e| e.seq), Some(last + 1));
    }

    #[tokio::test]
    async fn a_window_is_read_in_event_time_order_after_a_position() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(dir.path()).await;
        // Stored out of time order: seq 1 is the latest event.
        store(&shared, &[5_000, 1_000, 3_000, 2_000, 4_000]).await;
        let scope = scope();
        let window = EventQuery {
            org_id: scope.org_id,
            region: scope.region.clone(),
            portal_id: None,
            ts_from: Timestamp::from_millis(0),
            ts_to: Timestamp::from_millis(10_000),
            event_type: None,
            after: None,
            through_seq: None,
            limit: 0,
        };
        let mut ahead: Ahead<()> = Ahead::new(Arc::clone(&shared), Source::Window(window));
        // After the event of time 2,000 (seq 4).
        ahead.restart_after(Some(Position { ts: 2_000, seq: 4 }));
        ahead.read(None, None, 10).await.unwrap();
        let times: Vec<i64> = ahead
            .pending()
            .iter()
            .map(|e| e.event.ts.as_millis())
            .collect();
        assert_eq!(times, [3_000, 4_000, 5_000]);
    }
}

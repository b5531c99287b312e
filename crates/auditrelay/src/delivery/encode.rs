//! The encoding stage: a batch's events rendered in the destination's format, signed, framed
//! for its kind and gzipped, on every core and off the async workers. Live lanes and replay
//! jobs both encode through here.
//!
//! An event the receiver would refuse for sure, or drop unseen, is refused here instead and
//! taken into the batch without a record (DECISIONS.md D14): one older than the kind's maximum
//! age, or whose record alone is over the kind's limits. (A batch that waits is looked at again
//! before each attempt: `InHand::refuse_aged`.)

use std::cell::OnceCell;
use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auditrelay_core::batch::{
    self, Batch, BatchBuilder, BatchLimits, GZIP_LEVEL, Share, ShareBuilder,
};
use auditrelay_core::format::{Format, Unsigned, sign_checkpoint};
use auditrelay_core::ids::{checkpoint_id, event_id};
use auditrelay_core::integrity::{CheckpointEvent, event_leaf_hash};
use auditrelay_core::kind::{Framer, RecordKey, RecordMeta, Stream};
use auditrelay_core::{SigningKey, Timestamp};
use uuid::Uuid;

use super::setup::Setup;
use super::shared::Shared;
use crate::clock;
use crate::human;
use crate::store::StoredEvent;

/// How a batch is encoded for one destination: its format, its kind's framing and limits.
pub(super) struct Encoding {
    pub format: Format,
    pub framer: Framer,
    /// The configured limits, narrowed to the kind's.
    pub limits: BatchLimits,
    /// A record longer than this is refused (`None`: Konnect's rule, an oversized line goes
    /// alone).
    pub max_record_bytes: Option<usize>,
    pub max_age_ms: Option<i64>,
    /// The store's identity, which makes event ids.
    pub store: Uuid,
    /// The destination's endpoint as the delivery log and the refused list show it (a Sumo
    /// Logic token masked).
    pub endpoint: String,
    /// The destination has `integrity`: each line carries its event's place in the log, and an
    /// event whose stored content no longer gives its leaf is refused, not signed.
    pub integrity: bool,
}

impl Encoding {
    /// How batches for `setup`'s destination are encoded; `replay` is the job sending them,
    /// if one is.
    pub fn new(shared: &Shared, setup: &Setup, replay: Option<Uuid>) -> Arc<Self> {
        let destination = &setup.destination;
        let scope = &setup.webhook.scope;
        let stream = Stream {
            org_id: scope.org_id,
            region: scope.region.clone(),
            portal_id: scope.portal_id,
            replay,
        };
        let kind = &destination.kind;
        let limits = kind.limits();
        let framer = Framer::new(kind, &stream, &destination.endpoint, destination.id);
        let max_record_bytes = match (limits.max_record_bytes, limits.max_bytes) {
            (None, None) => None,
            (record, request) => {
                // A record that does not fit a request with its framing cannot be sent at all.
                let frame = framer.frame();
                let framing = frame.open.len() + frame.close.len();
                let request = request.map(|r| r.saturating_sub(framing));
                Some(
                    record
                        .unwrap_or(usize::MAX)
                        .min(request.unwrap_or(usize::MAX)),
                )
            }
        };
        Arc::new(Self {
            format: destination.log_format,
            limits: limits.narrow(shared.config.batch_limits()),
            framer,
            max_record_bytes,
            max_age_ms: limits.max_age_ms,
            store: shared.store.identity(),
            endpoint: destination.shown_endpoint(),
            integrity: destination.integrity,
        })
    }

    /// Konnect's CEF lines under `limits`, for the delivery stage's unit tests.
    #[cfg(test)]
    pub fn cef_lines(
        limits: BatchLimits,
        max_record_bytes: Option<usize>,
        max_age_ms: Option<i64>,
    ) -> Arc<Self> {
        Arc::new(Self {
            format: Format::Cef,
            framer: Framer::lines(),
            limits,
            max_record_bytes,
            max_age_ms,
            store: Uuid::nil(),
            endpoint: String::new(),
            integrity: false,
        })
    }

    /// The record metadata of `event`.
    pub fn meta(&self, stored: &StoredEvent) -> RecordMeta {
        RecordMeta {
            seq: stored.seq,
            ts: stored.event.ts,
            id: event_id(&self.store, stored.seq, stored.event.ts),
            msgid: stored.event.event_type().as_str(),
            severity: stored.event.severity(),
        }
    }

    /// Why `record` is refused before sending, if it is: it is longer than the receiver takes.
    fn over_limit(&self, record: &[u8]) -> Option<String> {
        let max = self.max_record_bytes?;
        (record.len() > max).then(|| {
            format!(
                "its record is {} bytes, over the receiver's limit of {max}",
                record.len()
            )
        })
    }

    /// Why `stored` is refused before sending, if it is: older than the kind accepts.
    fn too_old(&self, stored: &StoredEvent, now: Timestamp) -> Option<String> {
        let max_age = self.max_age_ms?;
        let age = now.as_millis().saturating_sub(stored.event.ts.as_millis());
        (age > max_age).then(|| {
            format!(
                "older than the receiver accepts ({} at most): it would drop it unseen",
                human::words(u64::try_from(max_age / 1000).unwrap_or(0))
            )
        })
    }
}

/// The keys of the records `batch` holds, in its order; `events` are the events it took.
pub(super) fn record_keys(events: &[StoredEvent], batch: &Batch) -> Vec<RecordKey> {
    pick(events.iter().collect(), |e| e.seq, &batch.seqs)
        .into_iter()
        .map(|e| RecordKey {
            seq: e.seq,
            ts: e.event.ts,
        })
        .collect()
}

/// Renders, signs and gzips `events` in `format` into one batch, off the async workers; `None`
/// when there are no events. The events come back with the batch: those past `batch.events`
/// did not fit and wait for the next one.
pub(super) async fn sign_batch(
    shared: &Arc<Shared>,
    encoding: &Arc<Encoding>,
    events: Vec<StoredEvent>,
) -> (Option<Batch>, Vec<StoredEvent>) {
    if events.is_empty() {
        return (None, events);
    }
    Signing::start(shared, encoding, events)
        .await
        .finish()
        .await
}

/// The batch of those of `events` whose `seq` is in `again` (the records a receiver refused
/// for now), signed anew; the events come back with it. Some may be refused now (too old).
///
/// They all fit: they are some of the records of a batch that fit the same limits, the same
/// bytes again (Ed25519 is deterministic; a rotated key signs to the same length).
pub(super) async fn narrow(
    shared: &Arc<Shared>,
    encoding: &Arc<Encoding>,
    events: Vec<StoredEvent>,
    again: &[i64],
) -> (Batch, Vec<StoredEvent>) {
    let events = pick(events, |e| e.seq, again);
    let count = events.len();
    let (batch, events) = sign_batch(shared, encoding, events).await;
    let batch = batch.expect("some of a batch's events make a batch");
    assert_eq!(
        batch.taken(),
        count,
        "a narrowed batch takes every event it is given"
    );
    (batch, events)
}

/// The batch of a stream's checkpoint events (DECISIONS.md S27), each a line of the
/// destination's format signed like the events' lines and framed for its kind, off the async
/// workers. Its `seqs` are the checkpoints' ids, in order: a checkpoint batch moves a webhook's
/// checkpoint cursor, never its event cursor. As many as fit the limits are taken; one older
/// than the kind's maximum age, or whose record is over the kind's limit, is taken without a
/// record (in `refused`, which the callers do not list: it is no event). `None` for none.
pub(super) async fn sign_checkpoints(
    shared: &Arc<Shared>,
    encoding: &Arc<Encoding>,
    checkpoints: Vec<(i64, CheckpointEvent)>,
) -> Option<Batch> {
    let keys = shared.keys.snapshot().await;
    let shared = Arc::clone(shared);
    let encoding = Arc::clone(encoding);
    let signing = tokio::task::spawn_blocking(move || {
        let now = clock::now();
        let key = &keys.signing_key_at(now).key;
        let framer = &encoding.framer;
        let mut batch = BatchBuilder::framed(encoding.limits, framer.frame(), GZIP_LEVEL);
        let (mut line, mut record) = (Vec::new(), Vec::new());
        for (id, checkpoint) in &checkpoints {
            line.clear();
            sign_checkpoint(encoding.format, checkpoint, &shared.format, key, &mut line);
            // Where a kind frames each record from its event's metadata, a checkpoint's is its
            // own: its time, an id of its own, MSGID `checkpoint`, informational.
            let meta = RecordMeta {
                seq: *id,
                ts: checkpoint.signed_at,
                id: checkpoint_id(&encoding.store, &checkpoint.log, *id),
                msgid: "checkpoint",
                severity: 1,
            };
            let age = now.as_millis().saturating_sub(meta.ts.as_millis());
            if encoding.max_age_ms.is_some_and(|max| age > max) {
                // The receiver would drop it unseen: taken, not sent (`verify` will say a
                // checkpoint is missing). Not an event, so the caller lists it nowhere.
                batch.refuse(*id, "older than the receiver accepts".to_owned());
                continue;
            }
            let record = if framer.is_lines() {
                &line
            } else {
                record.clear();
                framer.write_record(&meta, &line, &mut record);
                &record
            };
            // Its line grows with its frontier (a hash per bit set in the log's size): one too
            // long would be cut or refused by the receiver, and `verify` would find it altered.
            // Taken without a record, as an event is; `verify` will say it is missing.
            if let Some(reason) = encoding.over_limit(record) {
                batch.refuse(*id, reason);
                continue;
            }
            if batch.push(*id, record).is_err() {
                break;
            }
        }
        batch.finish()
    });
    match signing.await {
        Ok(batch) => batch,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => panic!("the signing task was cancelled: the runtime is shutting down"),
        },
    }
}

/// A batch being rendered, signed and gzipped on the blocking pool.
///
/// Signing is most of a batch's cost (Ed25519, one signature per line), so it runs there, where
/// it neither holds up the requests and sends that the async workers serve nor stops a lane
/// from sending, recording and reconfiguring meanwhile. The work goes on whether or not the
/// handle is awaited; dropping the handle throws the result away.
pub(super) struct Signing(tokio::task::JoinHandle<(Option<Batch>, Vec<StoredEvent>)>);

impl Signing {
    pub(super) async fn start(
        shared: &Arc<Shared>,
        encoding: &Arc<Encoding>,
        events: Vec<StoredEvent>,
    ) -> Self {
        let keys = shared.keys.snapshot().await;
        let shared = Arc::clone(shared);
        let encoding = Arc::clone(encoding);
        Self(tokio::task::spawn_blocking(move || {
            let now = clock::now();
            let key = &keys.signing_key_at(now).key;
            let batch = sign_lines(&shared, &encoding, key, &events, now);
            (batch, events)
        }))
    }

    pub(super) fn is_finished(&self) -> bool {
        self.0.is_finished()
    }

    /// The batch (`None` if there were no events) and the events, as [`sign_batch`] returns
    /// them.
    pub(super) async fn finish(self) -> (Option<Batch>, Vec<StoredEvent>) {
        match self.0.await {
            Ok(signed) => signed,
            Err(e) => match e.try_into_panic() {
                Ok(panic) => std::panic::resume_unwind(panic),
                Err(_) => panic!("the signing task was cancelled: the runtime is shutting down"),
            },
        }
    }
}

/// The lines of as many `events` as fit, in one batch, signed and compressed on every core.
///
/// The events are cut into shares of consecutive lines, several per thread, and each thread
/// takes the next share until none is left and encodes it ([`encode_share`]: its lines signed
/// together), so that a thread whose core is busy with something else (a store read, a send,
/// ingest) simply takes fewer, and nothing is left to one thread at the end: the shares are
/// joined into one gzip member as they are ([`batch::join`]). Ed25519 is deterministic, so the
/// lines are the same as on one thread, one at a time.
fn sign_lines(
    shared: &Shared,
    encoding: &Encoding,
    key: &SigningKey,
    events: &[StoredEvent],
    now: Timestamp,
) -> Option<Batch> {
    let limits = encoding.limits;
    let events = &events[..events.len().min(limits.max_events)];
    let threads = std::thread::available_parallelism()
        .map_or(1, |n| n.get())
        .min(events.len().div_ceil(MIN_LINES_PER_SHARE))
        .max(1);
    let share_len = events
        .len()
        .div_ceil(threads * SHARES_PER_THREAD)
        .max(MIN_LINES_PER_SHARE);
    let chunks: Vec<&[StoredEvent]> = events.chunks(share_len).collect();
    let taken = AtomicUsize::new(0);
    let work = || {
        let mut done = Vec::new();
        loop {
            let index = taken.fetch_add(1, Ordering::Relaxed);
            let Some(chunk) = chunks.get(index) else {
                return done;
            };
            done.push((
                index,
                encode_share(shared, encoding, key, index, chunk, now),
            ));
        }
    };
    // Threads of their own, not this one from tokio's blocking pool: a thread's priority,
    // once lowered, cannot be raised again without privileges.
    let mut shares = std::thread::scope(|scope| {
        let threads: Vec<_> = (0..threads)
            .map(|_| {
                scope.spawn(|| {
                    yield_to_serving();
                    work()
                })
            })
            .collect();
        let mut shares = Vec::new();
        for thread in threads {
            shares.extend(thread.join().expect("a signing thread panicked"));
        }
        shares
    });
    shares.sort_unstable_by_key(|(index, _)| *index);
    let shares = shares.into_iter().map(|(_, share)| share).collect();
    batch::join(shares, limits, encoding.framer.frame())
}

/// The share at `index` of a batch: `events`' lines rendered, signed together (DECISIONS.md
/// S29), framed for the kind and compressed. An event refused before sending is taken without
/// a record, in its place.
fn encode_share(
    shared: &Shared,
    encoding: &Encoding,
    key: &SigningKey,
    index: usize,
    events: &[StoredEvent],
    now: Timestamp,
) -> Share {
    // An event's id costs a SHA-256: worked out once, and only for a format (OCSF's
    // `metadata.uid`), a framing or a log place that needs it.
    let metas: Vec<OnceCell<RecordMeta>> = events.iter().map(|_| OnceCell::new()).collect();
    let meta = |i: usize| *metas[i].get_or_init(|| encoding.meta(&events[i]));
    // Each event's line in `unsigned`, or why it is refused.
    let mut unsigned = Unsigned::new(encoding.format, events.len());
    let lines: Vec<Result<usize, String>> = (events.iter().enumerate())
        .map(|(i, stored)| {
            if let Some(reason) = encoding.too_old(stored, now) {
                return Err(reason);
            }
            if encoding.integrity
                && let Some(reason) = unlike_its_leaf(stored, &meta(i).id)
            {
                return Err(reason);
            }
            let id = (encoding.format == Format::Ocsf).then(|| meta(i).id);
            let place = stored.place.as_ref();
            Ok(unsigned.push_event(&stored.event, id, place, &shared.format))
        })
        .collect();
    let signatures = unsigned.sign(key);
    let framer = &encoding.framer;
    let mut share = ShareBuilder::framed(index, events.len(), framer.frame());
    let (mut line, mut record) = (Vec::new(), Vec::new());
    for ((i, stored), at) in events.iter().enumerate().zip(lines) {
        let at = match at {
            Ok(at) => at,
            Err(reason) => {
                share.refuse(stored.seq, reason);
                continue;
            }
        };
        if framer.is_lines() && encoding.max_record_bytes.is_none() {
            // Konnect's shape: the line is the record, written in place.
            share.push_with(stored.seq, |out| signatures.write(at, out));
            continue;
        }
        line.clear();
        record.clear();
        signatures.write(at, &mut line);
        framer.write_record(&meta(i), &line, &mut record);
        match encoding.over_limit(&record) {
            Some(reason) => share.refuse(stored.seq, reason),
            None => share.push_with(stored.seq, |out| out.extend_from_slice(&record)),
        }
    }
    share.finish(GZIP_LEVEL)
}

/// Lowers the calling thread's CPU priority (nice 10) for the signing it does.
///
/// Signing is throughput work; requests, the store's writer and the lanes' sends and records
/// are latency work, and both share the same cores. At equal priority, a batch signed ahead
/// took the cores from ingest's group commits and the answers it waits on: ingest slowed as
/// much as delivery gained. Lowered, signing takes what serving leaves, and serving does not
/// wait for it (PERFORMANCE.md, session 19). Where the system refuses (a seccomp profile), it
/// signs at the normal priority, as before.
fn yield_to_serving() {
    // Linux keeps the nice value per thread; elsewhere it is the whole process's.
    #[cfg(target_os = "linux")]
    let _ = rustix::process::setpriority_process(Some(rustix::thread::gettid()), SIGNING_NICE);
}

/// The nice value of signing threads: CFS gives a thread at 10 about a tenth of the weight of
/// one at 0, so signing still progresses under full load, behind what serving needs.
#[cfg(target_os = "linux")]
const SIGNING_NICE: i32 = 10;

/// Why `stored` may not go to a destination with `integrity`, if it may not: its place in the
/// log is not known (nothing reads it so), or its content as stored no longer gives the leaf
/// the log took (it was changed in the store afterwards). Signing it would vouch for content
/// the log never held, with the leaf hash of content it did: `verify` could not tell.
fn unlike_its_leaf(stored: &StoredEvent, id: &Uuid) -> Option<String> {
    let Some(place) = &stored.place else {
        return Some("its place in the tamper-evident log is not known".to_owned());
    };
    if event_leaf_hash(&place.log, place.index, id, &stored.event) == place.leaf_hash {
        return None;
    }
    tracing::error!(
        log = %place.log,
        log_index = place.index,
        "an event's content no longer matches its leaf in the tamper-evident log: it was changed in the store after it was logged, and is refused, not signed"
    );
    Some(format!(
        "its content no longer matches leaf {} of the tamper-evident log: it was changed in the store after it was logged",
        place.index
    ))
}

/// Below this many lines per share, handing a share to a thread costs more than it saves, and
/// compressing shares apart costs more bytes.
const MIN_LINES_PER_SHARE: usize = 64;

/// Shares per thread in a batch: enough that a thread slowed down by other work leaves its
/// part to the others.
const SHARES_PER_THREAD: usize = 4;

/// The events of `events` whose `seq` is in `seqs`, in their order.
fn pick<T>(events: Vec<T>, seq: impl Fn(&T) -> i64, seqs: &[i64]) -> Vec<T> {
    let wanted: HashSet<i64> = seqs.iter().copied().collect();
    events
        .into_iter()
        .filter(|e| wanted.contains(&seq(e)))
        .collect()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use auditrelay_core::format::sign_event_with_id;
    use auditrelay_core::{Event, OrgId};

    use super::*;
    use crate::fixtures;

    /// A share's lines, signed together, are the lines signed alone, written in place (Konnect's
    /// shape) or framed first (a kind with a record limit); an event too old for the receiver
    /// and one whose record is over its limit are taken without a record, each with its
    /// reason, and the others keep their order.
    #[tokio::test]
    async fn a_share_signs_its_lines_together_and_refuses_in_place() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(dir.path()).await;
        let now = clock::now();
        let hour = 3_600_000;
        let stored = |seq: i64, age_ms: i64, name_len: usize| StoredEvent {
            seq,
            event: Event {
                principal_name: Some("n".repeat(name_len)),
                ..fixtures::event(
                    OrgId::from_uuid(Uuid::from_u128(1)),
                    Timestamp::from_millis(now.as_millis() - age_ms),
                    format!("t{seq}"),
                )
            },
            place: None,
        };
        let keys = shared.keys.snapshot().await;
        let key = &keys.signing_key_at(now).key;
        for max_record_bytes in [None, Some(1_500)] {
            let events = vec![
                stored(1, 0, 10),
                stored(2, 2 * hour, 10),
                stored(3, 0, 2_000),
                stored(4, 0, 20),
                stored(5, 0, 30),
            ];
            let encoding =
                Encoding::cef_lines(BatchLimits::default(), max_record_bytes, Some(hour));
            let (batch, events) = sign_batch(&shared, &encoding, events).await;
            let batch = batch.unwrap();
            assert_eq!((batch.first_seq, batch.last_seq, batch.taken()), (1, 5, 5));
            let refused: Vec<(i64, &str)> = (batch.refused.iter())
                .map(|(seq, reason)| (*seq, reason.as_str()))
                .collect();
            assert_eq!(refused[0].0, 2);
            assert!(refused[0].1.starts_with("older than the receiver accepts"));
            let sent: &[usize] = match max_record_bytes {
                None => {
                    assert_eq!(refused.len(), 1, "{refused:?}");
                    &[0, 2, 3, 4]
                }
                Some(_) => {
                    assert_eq!(refused.len(), 2, "{refused:?}");
                    assert_eq!(refused[1].0, 3);
                    assert!(
                        refused[1].1.starts_with("its record is ")
                            && refused[1]
                                .1
                                .ends_with("bytes, over the receiver's limit of 1500"),
                        "{}",
                        refused[1].1
                    );
                    &[0, 3, 4]
                }
            };
            let seqs: Vec<i64> = sent.iter().map(|&i| events[i].seq).collect();
            assert_eq!(batch.seqs, seqs);

            let mut body = String::new();
            flate2::read::GzDecoder::new(&batch.body[..])
                .read_to_string(&mut body)
                .unwrap();
            let alone: Vec<String> = (sent.iter())
                .map(|&i| {
                    let (mut line, format) = (Vec::new(), &shared.format);
                    let event = &events[i].event;
                    sign_event_with_id(Format::Cef, event, None, None, format, key, &mut line);
                    String::from_utf8(line).unwrap()
                })
                .collect();
            assert_eq!(body, alone.join("\n"));
        }
    }

    /// A checkpoint whose line is longer than the receiver takes (its frontier has a hash for
    /// each bit set in the log's size) is taken without a record, as an event is.
    #[tokio::test]
    async fn a_checkpoint_over_the_record_limit_is_taken_without_a_record() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(dir.path()).await;
        let checkpoint = |bits: usize| CheckpointEvent {
            log: "auditrelay/x/org/us".into(),
            portal: false,
            signed_at: clock::now(),
            note: "auditrelay/x/org/us\n1\nAAAA\n\n— auditrelay/x AAAA\n".into(),
            previous_size: (1u64 << bits) - 1,
            previous_frontier: vec![[7; 32]; bits],
            interval_secs: 60,
        };
        let checkpoints = vec![(1, checkpoint(1)), (2, checkpoint(40)), (3, checkpoint(2))];
        for (max_record_bytes, taken) in [(None, vec![1, 2, 3]), (Some(1_000), vec![1, 3])] {
            let limits = BatchLimits::default();
            let encoding = Encoding::cef_lines(limits, max_record_bytes, None);
            let batch = sign_checkpoints(&shared, &encoding, checkpoints.clone())
                .await
                .unwrap();
            assert_eq!(batch.seqs, taken, "{max_record_bytes:?}");
            if max_record_bytes.is_some() {
                let [(seq, reason)] = batch.refused.as_slice() else {
                    panic!("{:?}", batch.refused);
                };
                assert_eq!(*seq, 2);
                assert!(
                    reason.ends_with("over the receiver's limit of 1000"),
                    "{reason}"
                );
            }
        }
    }
}

//! The encoding stage: a batch's events rendered in the destination's format, signed, framed
//! and gzipped, on every core and off the async workers. Live lanes and replay jobs both
//! encode through here.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use auditrelay_core::SigningKey;
use auditrelay_core::batch::{self, Batch, GZIP_LEVEL, ShareBuilder};
use auditrelay_core::format::{Format, sign_event};

use super::shared::Shared;
use crate::clock;
use crate::store::StoredEvent;

/// Renders, signs and gzips `events` in `format` into one batch, off the async workers; `None`
/// when there are no events. The events come back with the batch: those past `batch.events`
/// did not fit and wait for the next one.
pub(super) async fn sign_batch(
    shared: &Arc<Shared>,
    format: Format,
    events: Vec<StoredEvent>,
) -> (Option<Batch>, Vec<StoredEvent>) {
    if events.is_empty() {
        return (None, events);
    }
    Signing::start(shared, format, events).await.finish().await
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
        format: Format,
        events: Vec<StoredEvent>,
    ) -> Self {
        let keys = shared.keys.snapshot().await;
        let shared = Arc::clone(shared);
        Self(tokio::task::spawn_blocking(move || {
            let key = &keys.signing_key_at(clock::now()).key;
            let batch = sign_lines(&shared, format, key, &events);
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
/// takes the next share until none is left, renders, signs and compresses it, so that a
/// thread whose core is busy with something else (a store read, a send, ingest) simply takes
/// fewer, and nothing is left to one thread at the end: the shares are joined into one gzip
/// member as they are ([`batch::join`]). Ed25519 is deterministic, so the lines are the same
/// as on one thread.
fn sign_lines(
    shared: &Shared,
    format: Format,
    key: &SigningKey,
    events: &[StoredEvent],
) -> Option<Batch> {
    let limits = shared.config.batch_limits();
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
            let mut share = ShareBuilder::new(index, chunk.len());
            for stored in *chunk {
                share.push_with(stored.seq, |line| {
                    sign_event(format, &stored.event, &shared.format, key, line);
                });
            }
            done.push((index, share.finish(GZIP_LEVEL)));
        }
    };
    let mut shares = std::thread::scope(|scope| {
        let others: Vec<_> = (1..threads).map(|_| scope.spawn(work)).collect();
        let mut shares = work();
        for other in others {
            shares.extend(other.join().expect("a signing thread panicked"));
        }
        shares
    });
    shares.sort_unstable_by_key(|(index, _)| *index);
    batch::join(shares.into_iter().map(|(_, share)| share).collect(), limits)
}

/// Below this many lines per share, handing a share to a thread costs more than it saves, and
/// compressing shares apart costs more bytes.
const MIN_LINES_PER_SHARE: usize = 64;

/// Shares per thread in a batch: enough that a thread slowed down by other work leaves its
/// part to the others.
const SHARES_PER_THREAD: usize = 4;

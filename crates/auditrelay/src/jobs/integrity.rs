//! The tamper-evident log's job (`integrity.rs`): takes committed events into their logs soon
//! after each commit, and signs every log's checkpoint each `integrity.checkpoint_interval`.
//!
//! After a commit it takes the events from the commit feed (`store/commits.rs`), as the writer
//! committed them, rather than reading and decoding them again, which was most of what the log
//! cost delivery (DECISIONS.md S24). It reads the store instead whenever the feed cannot vouch for every event (on
//! PostgreSQL, after a commit by another process, when it fell behind), at each look without a
//! commit, and after any round that did not go as planned; each read opens the feed afresh
//! first, so that the feed holds whatever the read may miss.
//!
//! With several nodes one does it at a time, the holder of the integrity lease; a node that
//! loses it stops at the next step. The lease saves work, not correctness: a log grows only from
//! the size its writer read, and a checkpoint is signed only for a tree the stored leaves make.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::watch;
use tokio::time::Instant;

use crate::clock;
use crate::config::IntegrityConfig;
use crate::integrity::{checkpoint_all, integrate_committed, integrate_stored};
use crate::keys::note::NoteSigner;
use crate::leases::{self, Lease, Leases};
use crate::store::{Store, Taken};

/// How long after a commit the log takes it: commits that come close together are taken in
/// one step. Each step is a transaction of its own (on SQLite, on the writer's connection, with
/// its fsync): at 20 ms, steps under full ingest cost ingest a sixth of its rate; at 100 ms,
/// too little to tell from noise.
const GATHER: Duration = Duration::from_millis(100);

/// How often the log looks for new events without being told (commits on other nodes).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// Runs until `shutdown` turns true.
pub async fn run(
    store: Store,
    signer: Arc<NoteSigner>,
    config: IntegrityConfig,
    leases: Leases,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut commits = store.commits().subscribe();
    let mut lease: Option<Lease> = None;
    let mut failing = false;
    let mut next_checkpoint = Instant::now();
    let mut next_try = Instant::now();
    // Whether the feed holds every event not yet read from the store.
    let mut fed = false;
    // Whether this turn comes from a look rather than a commit.
    let mut looked = true;
    loop {
        // A lease this node has not lost (a renewal is late) is waited for, not asked for
        // again: the store would answer that it is held, by this node. One lost, or never
        // taken, is asked for once a look, not at every local commit.
        let lost = lease.as_ref().is_none_or(|l| *l.stopped().borrow());
        if lost && Instant::now() >= next_try {
            next_try = Instant::now() + leases.look_every();
            if let Some(old) = lease.take() {
                leases.release(&old).await;
            }
            lease = match leases.acquire(leases::INTEGRITY).await {
                Ok(taken) => taken,
                Err(e) => {
                    tracing::debug!(error = %e, "the integrity lease could not be taken");
                    None
                }
            };
        }
        // While the store refuses writes (a full disk), the log waits: its writes would compete
        // with delivery's for what little room is left, and it catches up once there is room.
        if lease.as_ref().is_some_and(Lease::is_held) && store.refusing().is_none() {
            let from_feed = fed && !looked;
            let result = step(&store, &signer, &config, from_feed, &mut next_checkpoint).await;
            fed = result.as_ref().is_ok_and(|fed| *fed);
            if !fed {
                store.commits().close_feed();
            }
            let result = result.map(drop);
            match (result, failing) {
                (Err(e), false) => {
                    failing = true;
                    tracing::error!(error = %e, "the tamper-evident log could not be brought up to date; will retry");
                }
                (Ok(()), true) => {
                    failing = false;
                    tracing::info!("the tamper-evident log is up to date again");
                }
                _ => {}
            }
        } else if fed {
            // Not taking events now: the feed would only fill up.
            store.commits().close_feed();
            fed = false;
        }
        // A checkpoint round due but not run (the store refuses writes, or another node holds
        // the lease) is looked at again a look later, not at once.
        let wait = match next_checkpoint.saturating_duration_since(Instant::now()) {
            Duration::ZERO => LOOK_EVERY,
            until => until.min(LOOK_EVERY),
        };
        let stopping = async {
            let _ = shutdown.wait_for(|stop| *stop).await;
        };
        tokio::select! {
            _ = commits.changed() => {
                looked = false;
                tokio::time::sleep(GATHER).await;
            }
            _ = tokio::time::sleep(wait) => looked = true,
            () = stopping => break,
        }
    }
    store.commits().close_feed();
    if let Some(lease) = lease {
        leases.release(&lease).await;
    }
}

/// Takes new events into their logs and, when one is due, signs the checkpoints; returns
/// whether the feed now holds every event not yet in a log.
async fn step(
    store: &Store,
    signer: &NoteSigner,
    config: &IntegrityConfig,
    from_feed: bool,
    next_checkpoint: &mut Instant,
) -> Result<bool, crate::store::StoreError> {
    // A log that could not take its events is still checkpointed at the size it has.
    let integrated = take_events(store, from_feed).await;
    let mut signed = Ok(0);
    if Instant::now() >= *next_checkpoint {
        signed = checkpoint_all(store, signer, config.checkpoint_interval, clock::now()).await;
        // Whatever the round did: a log whose checkpoint failed is tried again next interval,
        // and the others are not signed twice as often meanwhile.
        *next_checkpoint = Instant::now() + config.checkpoint_interval;
    }
    let fed = integrated?;
    signed.map(|_| fed)
}

/// Takes new events into their logs: from the feed when `from_feed` and it is whole, else
/// from the store. Returns whether the feed holds every event committed after this round.
async fn take_events(store: &Store, from_feed: bool) -> Result<bool, crate::store::StoreError> {
    let commits = store.commits();
    if from_feed
        && let Taken::Whole(committed) = commits.take_feed()
        && integrate_committed(store, &committed).await?.whole
    {
        return Ok(true);
    }
    // Opened before the read: what the read misses, committed after it began, the feed holds.
    commits.open_feed();
    Ok(integrate_stored(store).await?.whole)
}

//! The tamper-evident log's job (`integrity.rs`): takes committed events into their logs soon
//! after each commit, and signs every log's checkpoint each `integrity.checkpoint_interval`.
//!
//! After a commit it takes the events from the commit feed (`store/commits.rs`), as the writer
//! committed them, rather than reading and decoding them again, which was most of what the log
//! cost delivery (DECISIONS.md S24). It reads the store instead whenever the feed cannot vouch
//! for every event (on PostgreSQL, after a commit by another process, when it fell behind), at
//! each look without a commit, and after any round that did not go as planned. Each read opens
//! the feed afresh first, so that the feed holds whatever the read may miss.
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
    let fed = integrated?.fed();
    signed.map(|_| fed)
}

/// Where a round took the new events from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Took {
    /// The feed, which vouched for them all.
    Feed,
    /// The store; `whole` when every log took every event the round read.
    Store { whole: bool },
}

impl Took {
    /// Whether the feed now holds every event committed after the round.
    fn fed(self) -> bool {
        matches!(self, Self::Feed | Self::Store { whole: true })
    }
}

/// Takes new events into their logs: from the feed when `from_feed` and it vouches for them,
/// else from the store.
async fn take_events(store: &Store, from_feed: bool) -> Result<Took, crate::store::StoreError> {
    let commits = store.commits();
    if from_feed
        && let Taken::Whole(committed) = commits.take_feed()
        && integrate_committed(store, &committed).await?.whole
    {
        return Ok(Took::Feed);
    }
    // Opened before the read: what the read misses, committed after it began, the feed holds.
    commits.open_feed();
    let whole = integrate_stored(store).await?.whole;
    Ok(Took::Store { whole })
}

#[cfg(test)]
mod tests {
    use auditrelay_core::{Event, OrgId, Region};

    use super::*;
    use crate::config::Config;
    use crate::fixtures;
    use crate::store::Scope;

    fn events(orgs: &[OrgId], n: usize) -> Vec<Event> {
        (0..n)
            .map(|i| fixtures::event(orgs[i % orgs.len()], clock::now(), format!("t{i}")))
            .collect()
    }

    async fn sizes(store: &Store, orgs: &[OrgId]) -> Vec<u64> {
        let heads = store.log_heads().await.unwrap();
        orgs.iter()
            .map(|org| {
                let scope = Scope {
                    org_id: *org,
                    region: Region::parse("us").unwrap(),
                    portal_id: None,
                };
                heads
                    .iter()
                    .find(|h| h.scope == scope)
                    .map_or(0, |h| h.size())
            })
            .collect()
    }

    /// The job reads the store first, then takes the feed while it vouches (for scopes that
    /// share a commit, one of them new, and more events than a step), and reads the store
    /// again once another process has committed: no event is passed over.
    #[tokio::test]
    async fn takes_the_feed_while_it_vouches_and_the_store_when_it_does_not() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::for_data_dir(dir.path()).unwrap();
        let store = Store::open(&config).await.unwrap();
        let (a, b) = (OrgId::new_v4(), OrgId::new_v4());

        store.append_events(events(&[a], 10)).await.unwrap();
        let took = take_events(&store, true).await.unwrap();
        assert_eq!(
            took,
            Took::Store { whole: true },
            "the feed was never opened"
        );
        assert_eq!(sizes(&store, &[a, b]).await, [10, 0]);

        store.append_events(events(&[a, b], 9_000)).await.unwrap();
        store.append_events(events(&[a], 3)).await.unwrap();
        assert_eq!(take_events(&store, true).await.unwrap(), Took::Feed);
        assert_eq!(sizes(&store, &[a, b]).await, [4_513, 4_500]);
        assert_eq!(take_events(&store, true).await.unwrap(), Took::Feed);

        let other = Store::open(&config).await.unwrap();
        other.append_events(events(&[a], 1)).await.unwrap();
        other.close().await;
        store.append_events(events(&[b], 2)).await.unwrap();
        let took = take_events(&store, true).await.unwrap();
        assert_eq!(
            took,
            Took::Store { whole: true },
            "a commit the feed did not see"
        );
        assert_eq!(sizes(&store, &[a, b]).await, [4_514, 4_502]);

        store.append_events(events(&[b], 1)).await.unwrap();
        assert_eq!(take_events(&store, true).await.unwrap(), Took::Feed);
        let took = take_events(&store, false).await.unwrap();
        assert_eq!(took, Took::Store { whole: true }, "a look reads the store");
        assert_eq!(sizes(&store, &[a, b]).await, [4_514, 4_503]);
        store.close().await;
    }

    /// Rounds taken while commits keep coming: each store read opens the feed before it reads,
    /// so a commit made during the read is in the feed, and no later round from the feed can
    /// pass over it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn rounds_during_commits_take_every_event() {
        let dir = tempfile::tempdir().unwrap();
        let config = Config::for_data_dir(dir.path()).unwrap();
        let store = Store::open(&config).await.unwrap();
        let (a, b) = (OrgId::new_v4(), OrgId::new_v4());
        let appending = {
            let store = store.clone();
            tokio::spawn(async move {
                for _ in 0..300 {
                    store.append_events(events(&[a, b], 40)).await.unwrap();
                }
            })
        };
        let mut fed = false;
        let mut rounds = 0;
        while !appending.is_finished() {
            // Every third round reads the store, as a look would.
            fed = take_events(&store, fed && rounds % 3 != 0)
                .await
                .unwrap()
                .fed();
            rounds += 1;
        }
        appending.await.unwrap();
        // The last commits: from the feed when it vouches, else (as a skipped event would stay
        // skipped) from the store.
        take_events(&store, fed).await.unwrap();
        assert_eq!(
            sizes(&store, &[a, b]).await,
            [6_000, 6_000],
            "after {rounds} rounds"
        );
        store.close().await;
    }
}

//! The retention pruner: deletes events older than the retention window.
//!
//! It deletes in small chunks, each its own transaction, yielding between them, so a large
//! backlog (after downtime, or a shortened window) never holds the write lock long enough to
//! stall ingest. With several nodes, one prunes at a time: the one that takes the retention
//! lease for the round (`leases.rs`). Two pruning at once would only do the work twice (their
//! deletes skip each other's rows), so the lease is not a fence here: a round stops between
//! chunks once it is no longer held.

use std::time::Duration;

use tokio::sync::watch;

use crate::clock;
use crate::config::RetentionConfig;
use crate::leases::{self, Leases};
use crate::store::{Store, StoreError};

/// Prunes every `prune_interval`, on whichever node takes the lease for the round, until
/// `shutdown` turns true.
pub async fn run(
    store: Store,
    config: RetentionConfig,
    keep_leaves: Duration,
    leases: Leases,
    mut shutdown: watch::Receiver<bool>,
) {
    loop {
        match leases.acquire(leases::RETENTION).await {
            Ok(Some(lease)) => {
                match prune_while(&store, &config, || lease.is_held()).await {
                    Ok(0) => {}
                    Ok(n) => tracing::info!(events.deleted = n, "retention pruned expired events"),
                    Err(e) => tracing::warn!(error = %e, "retention pruning failed; will retry"),
                }
                let before = |age: Duration| {
                    let age = i64::try_from(age.as_millis()).unwrap_or(i64::MAX);
                    clock::now().saturating_sub_millis(age)
                };
                let pruned = store
                    .prune_log(before(config.window), before(keep_leaves))
                    .await;
                if let Err(e) = pruned {
                    tracing::warn!(error = %e, "retention could not prune the tamper-evident log; will retry");
                }
                leases.release(&lease).await;
            }
            // Another node prunes this round.
            Ok(None) => {}
            Err(e) => tracing::warn!(error = %e, "retention could not take its lease; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.prune_interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Deletes everything older than the window, chunk by chunk; returns how many it deleted.
pub async fn prune_once(store: &Store, config: &RetentionConfig) -> Result<u64, StoreError> {
    prune_while(store, config, || true).await
}

/// Deletes what is older than the window, chunk by chunk, while `go_on` says so.
async fn prune_while(
    store: &Store,
    config: &RetentionConfig,
    go_on: impl Fn() -> bool,
) -> Result<u64, StoreError> {
    let cutoff = clock::now().saturating_sub_millis(config.window.as_millis() as i64);
    // An event is deleted only once its scope's log has taken it (its leaf is made from its
    // content); the store refuses to delete the others. Normally the integrity job took them
    // long ago; this catches up after it could not run.
    if let Err(e) = crate::integrity::integrate(store).await {
        // The store keeps what the log has not taken; the rest can go.
        tracing::debug!(error = %e, "retention could not bring the tamper-evident log up to date");
    }
    let mut total = 0;
    loop {
        let deleted = store.prune_events(cutoff, config.prune_chunk).await?;
        total += deleted;
        metrics::counter!("auditrelay_retention_pruned_events_total").increment(deleted);
        if deleted < u64::from(config.prune_chunk) || !go_on() {
            return Ok(total);
        }
        // Let queued appends take the write lock between chunks.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

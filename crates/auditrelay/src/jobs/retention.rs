//! The retention pruner: deletes events older than the retention window.
//!
//! It deletes in small chunks, each its own transaction, yielding between them, so a large
//! backlog (after downtime, or a shortened window) never holds the write lock long enough to
//! stall ingest.

use std::time::Duration;

use tokio::sync::watch;

use crate::clock;
use crate::config::RetentionConfig;
use crate::store::{Store, StoreError};

/// Prunes every `prune_interval` until `shutdown` turns true.
pub async fn run(store: Store, config: RetentionConfig, mut shutdown: watch::Receiver<bool>) {
    loop {
        match prune_once(&store, &config).await {
            Ok(0) => {}
            Ok(n) => tracing::info!(events.deleted = n, "retention pruned expired events"),
            Err(e) => tracing::warn!(error = %e, "retention pruning failed; will retry"),
        }
        tokio::select! {
            _ = tokio::time::sleep(config.prune_interval) => {}
            _ = shutdown.wait_for(|stop| *stop) => return,
        }
    }
}

/// Deletes everything older than the window, chunk by chunk; returns how many it deleted.
pub async fn prune_once(store: &Store, config: &RetentionConfig) -> Result<u64, StoreError> {
    let cutoff = clock::now().saturating_sub_millis(config.window.as_millis() as i64);
    let mut total = 0;
    loop {
        let deleted = store.prune_events(cutoff, config.prune_chunk).await?;
        total += deleted;
        metrics::counter!("auditrelay_retention_pruned_events_total").increment(deleted);
        if deleted < u64::from(config.prune_chunk) {
            return Ok(total);
        }
        // Let queued appends take the write lock between chunks.
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
}

//! This node's leases (DECISIONS.md S21): the work it owns among the nodes that share a store —
//! a webhook's lane, a replay job, a scope's resend, the retention pruner — and the renewing
//! that keeps them.
//!
//! A lease is taken in the store for [`store.lease_ttl`](crate::config::StoreConfig) and renewed
//! every fifth of it. Its owner may act only while it holds the lease by its own clock: it
//! counts from *before* each renewal was sent, and a fifth short of the time-to-live, so that
//! it gives up before the database would let another node take over, however late the
//! renewal's answer came. A node that was frozen (SIGSTOP, a long pause) finds on waking that
//! its deadline passed, and sends nothing more. Every write an owner makes carries the lease's
//! [`Fence`], which the store checks: what an owner did not see in time, the store refuses.
//!
//! A lease that is not renewed in time is lost: its owner is stopped (through the stop signal
//! every owner already heeds), and the work is taken again, as a new epoch, by whichever node
//! looks first. Work is shared out: a node takes no more than its share (the work there is,
//! divided among the nodes alive) and gives up one beyond it per look, so that nodes that
//! join get work and a node that restarts gets its share back.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::sync::watch;

use crate::store::{Fence, Scope, Store, StoreError};

/// The lease of a webhook's live lane.
pub fn lane(scope: &Scope) -> String {
    format!("lane/{}", scope_key(scope))
}

/// The lease of a scope's resend of refused events.
pub fn resend(scope: &Scope) -> String {
    format!("resend/{}", scope_key(scope))
}

/// The lease of a replay job.
pub fn replay(job: uuid::Uuid) -> String {
    format!("replay/{job}")
}

/// The lease of the retention pruner: one node prunes at a time.
pub const RETENTION: &str = "retention";

/// The lease of the tamper-evident log's job: one node takes events into the logs and signs
/// checkpoints at a time.
pub const INTEGRITY: &str = "integrity";

fn scope_key(scope: &Scope) -> String {
    match scope.portal_id {
        None => format!("{}/{}", scope.org_id, scope.region),
        Some(portal) => format!("{}/portal/{portal}", scope.org_id),
    }
}

/// This node's leases. Cheap to clone.
#[derive(Clone)]
pub struct Leases {
    inner: Arc<Inner>,
}

struct Inner {
    store: Store,
    ttl: Duration,
    name: String,
    held: Mutex<HashMap<Arc<str>, Lease>>,
    /// How many nodes share the store, as last counted (1 until then).
    nodes: watch::Sender<u64>,
    /// Whether the last renewal failed.
    renewing_fails: AtomicBool,
}

/// A lease this node holds, and the stop signal of the work it covers. Cheap to clone.
#[derive(Clone)]
pub struct Lease(Arc<Held>);

struct Held {
    fence: Fence,
    /// Until when this node may act under the lease, by its own clock.
    until: Mutex<Instant>,
    /// Turns true when the work must stop: the lease was lost, or the engine stops it.
    stop: watch::Sender<bool>,
}

impl Lease {
    /// What every write under this lease carries.
    pub fn fence(&self) -> &Fence {
        &self.0.fence
    }

    /// Whether this node may still act under the lease: checked before anything is sent.
    pub fn is_held(&self) -> bool {
        !*self.0.stop.borrow() && Instant::now() < *self.0.until.lock().expect("lease lock")
    }

    /// Waits while this node may not act under the lease (a renewal is late: it may come,
    /// or the lease be lost); `false` once the work must stop.
    pub async fn wait_held(&self) -> bool {
        let mut stop = self.stopped();
        loop {
            if *stop.borrow() {
                return false;
            }
            if self.is_held() {
                return true;
            }
            tokio::select! {
                _ = stop.changed() => {}
                _ = tokio::time::sleep(Duration::from_millis(50)) => {}
            }
        }
    }

    /// The work's stop signal: true once the lease is lost or the work is stopped.
    pub fn stopped(&self) -> watch::Receiver<bool> {
        self.0.stop.subscribe()
    }

    /// Stops the work the lease covers.
    pub fn stop(&self) {
        self.0.stop.send_replace(true);
    }

    /// The store refused a write under the lease (`LeaseLost`): another node holds it now. The
    /// work stops.
    pub fn refused(&self) {
        note_lost(self, "the store refused a write under it");
    }
}

impl Leases {
    /// This node's leases in `store`, each lasting `ttl` unless renewed; `name` is how other
    /// nodes' operators see this one.
    pub fn new(store: Store, ttl: Duration, name: String) -> Self {
        Self {
            inner: Arc::new(Inner {
                store,
                ttl,
                name,
                held: Mutex::default(),
                nodes: watch::Sender::new(1),
                renewing_fails: AtomicBool::new(false),
            }),
        }
    }

    /// How often leases are renewed, and free ones looked for: a fifth of their time-to-live.
    pub fn look_every(&self) -> Duration {
        self.inner.ttl / 5
    }

    /// How many nodes share the store, as last counted.
    pub fn nodes(&self) -> u64 {
        *self.inner.nodes.borrow()
    }

    /// How many leases this node holds.
    pub fn held(&self) -> usize {
        self.inner.held.lock().expect("leases lock").len()
    }

    /// Takes the lease `name` if no node holds it; `None` when one does.
    pub async fn acquire(&self, name: &str) -> Result<Option<Lease>, StoreError> {
        let asked = Instant::now();
        let Some(fence) = self.inner.store.acquire_lease(name, self.inner.ttl).await? else {
            return Ok(None);
        };
        let lease = Lease(Arc::new(Held {
            until: Mutex::new(self.deadline(asked)),
            fence,
            stop: watch::Sender::new(false),
        }));
        let mut held = self.inner.held.lock().expect("leases lock");
        // A lease still here from a former taking is over: its work stops.
        if let Some(old) = held.insert(Arc::clone(&lease.0.fence.name), lease.clone()) {
            old.stop();
        }
        Ok(Some(lease))
    }

    /// Gives `lease` up once its work has stopped, for another node to take at once.
    pub async fn release(&self, lease: &Lease) {
        self.forget(lease);
        if let Err(e) = self.inner.store.release_lease(&lease.0.fence).await {
            // It expires by itself.
            tracing::debug!(lease = %lease.0.fence.name, error = %e, "a lease was not released");
        }
    }

    /// Renews every lease held, every [`Leases::look_every`], and counts the nodes alive, until
    /// `shutdown`; then says this node is gone.
    pub async fn keep(self, mut shutdown: watch::Receiver<bool>) {
        loop {
            self.renew().await;
            tokio::select! {
                _ = tokio::time::sleep(self.look_every()) => {}
                _ = shutdown.wait_for(|stop| *stop) => break,
            }
        }
        if let Err(e) = self.inner.store.node_gone().await {
            tracing::debug!(error = %e, "this node was not struck off the store's list");
        }
    }

    /// One round: every lease held is renewed or, if that fails, lost once its deadline
    /// passes; the nodes alive are counted.
    async fn renew(&self) {
        let asked = Instant::now();
        let held: Vec<Lease> = {
            let held = self.inner.held.lock().expect("leases lock");
            held.values().cloned().collect()
        };
        let fences: Vec<Fence> = held.iter().map(|lease| lease.0.fence.clone()).collect();
        match self.inner.store.renew_leases(&fences, self.inner.ttl).await {
            Ok(renewed) => {
                if self.inner.renewing_fails.swap(false, Ordering::Relaxed) {
                    tracing::info!("leases are renewed again");
                }
                for lease in &held {
                    if renewed.contains(&lease.0.fence) {
                        *lease.0.until.lock().expect("lease lock") = self.deadline(asked);
                    } else {
                        self.lost(lease, "it was not renewed in time");
                    }
                }
            }
            Err(e) => {
                // Said once per outage; each lease it costs is said as it is lost.
                if !self.inner.renewing_fails.swap(true, Ordering::Relaxed) {
                    tracing::warn!(error = %e, "leases could not be renewed; will retry every look");
                }
                for lease in held.iter().filter(|lease| !lease.is_held()) {
                    self.lost(lease, "the store could not renew it in time");
                }
            }
        }
        self.count_nodes().await;
        metrics::gauge!("auditrelay_leases_held").set(self.held() as f64);
    }

    /// Says this node is alive, and counts the nodes that are.
    pub async fn count_nodes(&self) {
        // A node alive renews every look; one not seen for two is counted out, before the
        // leases it held expire, so that the others' shares have grown when they do.
        let alive_within = self.look_every() * 2;
        match self
            .inner
            .store
            .node_alive(&self.inner.name, alive_within)
            .await
        {
            Ok(nodes) => {
                self.inner
                    .nodes
                    .send_if_modified(|n| std::mem::replace(n, nodes) != nodes);
                metrics::gauge!("auditrelay_nodes").set(nodes as f64);
            }
            Err(e) => tracing::debug!(error = %e, "this node could not say it is alive"),
        }
    }

    fn lost(&self, lease: &Lease, why: &str) {
        note_lost(lease, why);
        self.forget(lease);
    }

    /// Stops the lease's work and no longer renews it (unless it was taken again since).
    fn forget(&self, lease: &Lease) {
        lease.stop();
        let mut held = self.inner.held.lock().expect("leases lock");
        if held
            .get(&lease.0.fence.name)
            .is_some_and(|current| Arc::ptr_eq(&current.0, &lease.0))
        {
            held.remove(&lease.0.fence.name);
        }
    }

    /// Until when a lease renewed by a request sent at `asked` may be acted under: a fifth of
    /// its time-to-live short of the earliest moment the database could let it expire.
    fn deadline(&self, asked: Instant) -> Instant {
        asked + self.inner.ttl - self.inner.ttl / 5
    }
}

/// Says the lease is lost (once), and stops its work.
fn note_lost(lease: &Lease, why: &str) {
    if !lease.0.stop.send_replace(true) {
        tracing::warn!(lease = %lease.0.fence.name, reason = why, "lease lost; its work stops here and another node takes it over");
        metrics::counter!("auditrelay_leases_lost_total").increment(1);
    }
}

/// This node's name among the nodes, for operators: its host name and process id.
pub fn node_name() -> String {
    let host = std::fs::read_to_string("/proc/sys/kernel/hostname")
        .map(|h| h.trim().to_owned())
        .ok()
        .filter(|h| !h.is_empty())
        .unwrap_or_else(|| "unknown-host".to_owned());
    format!("{host} pid {}", std::process::id())
}

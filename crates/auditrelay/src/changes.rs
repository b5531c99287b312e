//! The signal that a webhook, destination or replay job changed: the API sends it after each
//! configuration write, delivery waits on it. Neither depends on the other; both depend on
//! this. With several nodes, a change is also announced to the others (through the store), and
//! theirs arrive here.

use std::sync::{Arc, OnceLock};

use tokio::sync::watch;

/// The signal that a webhook, destination or replay job changed. Cheap to clone.
#[derive(Clone)]
pub struct Changes(Arc<Inner>);

struct Inner {
    generation: watch::Sender<u64>,
    /// Tells the other nodes, when there are any.
    announce: OnceLock<Box<dyn Fn() + Send + Sync>>,
}

impl Changes {
    pub fn new() -> Self {
        Self(Arc::new(Inner {
            generation: watch::Sender::new(0),
            announce: OnceLock::new(),
        }))
    }

    /// Sends every change made here to the other nodes with `announce` too.
    pub fn announce_with(&self, announce: impl Fn() + Send + Sync + 'static) {
        let _ = self.0.announce.set(Box::new(announce));
    }

    /// Wakes the supervisor and every lane, of this node and the others: they re-read their
    /// configuration.
    pub fn notify(&self) {
        self.notify_here();
        if let Some(announce) = self.0.announce.get() {
            announce();
        }
    }

    /// Wakes this node's supervisor and lanes only: for a change another node announced.
    pub fn notify_here(&self) {
        self.0.generation.send_modify(|generation| *generation += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.generation.subscribe()
    }
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

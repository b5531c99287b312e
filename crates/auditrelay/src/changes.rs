//! The signal that a webhook or destination changed: the API sends it after each configuration
//! write, delivery waits on it. Neither depends on the other; both depend on this.

use std::sync::Arc;

use tokio::sync::watch;

/// The signal that a webhook or destination changed. Cheap to clone.
#[derive(Clone)]
pub struct Changes(Arc<watch::Sender<u64>>);

impl Changes {
    pub fn new() -> Self {
        Self(Arc::new(watch::Sender::new(0)))
    }

    /// Wakes the supervisor and every lane: they re-read their configuration.
    pub fn notify(&self) {
        self.0.send_modify(|generation| *generation += 1);
    }

    pub fn subscribe(&self) -> watch::Receiver<u64> {
        self.0.subscribe()
    }
}

impl Default for Changes {
    fn default() -> Self {
        Self::new()
    }
}

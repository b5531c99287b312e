//! Whether the store is accepting writes: what `/readyz`, the `auditrelay_store_*` metrics and
//! two log lines report.
//!
//! The writer reports the outcome of every commit it tries (appends, delivery positions, and
//! its probes while refusing). A fault of the store's own (full, I/O error, read-only, busy)
//! turns "accepting" off; the next successful probe (every 2 s while refusing) turns it on
//! again. Each turn is logged once, so a full disk under a flood of requests is two log lines,
//! not one per request. Backend-independent.

use std::sync::Mutex;

use auditrelay_core::Timestamp;

use super::{FaultKind, StoreError};
use crate::clock;

/// Why the store stopped accepting writes, and since when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Refusing {
    pub kind: FaultKind,
    pub since: Timestamp,
}

#[derive(Debug, Default)]
pub struct Health {
    refusing: Mutex<Option<Refusing>>,
}

impl Health {
    /// Accepting, until a write says otherwise; the gauge says so from the start.
    pub fn new() -> Self {
        metrics::gauge!("auditrelay_store_accepting_writes").set(1.0);
        Self::default()
    }

    /// `None` while the store accepts writes (or has not been found refusing yet).
    pub fn refusing(&self) -> Option<Refusing> {
        *self.lock()
    }

    /// Notes the outcome of a write: a fault of the store's own turns "accepting" off. Errors
    /// that are not the store's (a conflict, a missing reference, shutting down) say nothing
    /// about it, and neither does a success: on a nearly full disk, a small commit (one
    /// request's audit events) can fit where the next batch will not, and counting it would
    /// turn readiness back and forth between refusals. Only [`Health::probed`] turns it on.
    pub fn observe<T>(&self, result: &Result<T, StoreError>) {
        if let Err(StoreError::Unavailable { kind, .. }) = result {
            self.refused(*kind);
        }
    }

    /// Notes the outcome of the writer's probe, a commit of 64 KiB: its success turns
    /// "accepting" on again.
    pub fn probed<T>(&self, result: &Result<T, StoreError>) {
        match result {
            Ok(_) => self.accepted(),
            Err(_) => self.observe(result),
        }
    }

    fn accepted(&self) {
        let was = self.lock().take();
        if let Some(was) = was {
            metrics::gauge!("auditrelay_store_accepting_writes").set(1.0);
            let secs = (clock::now().as_millis() - was.since.as_millis()).max(0) / 1000;
            tracing::info!(
                store.fault = was.kind.as_str(),
                duration_s = secs,
                "the store is accepting writes again"
            );
        }
    }

    fn refused(&self, kind: FaultKind) {
        metrics::counter!("auditrelay_store_errors_total", "kind" => kind.as_str()).increment(1);
        let mut refusing = self.lock();
        if refusing.is_none() {
            *refusing = Some(Refusing {
                kind,
                since: clock::now(),
            });
            drop(refusing);
            metrics::gauge!("auditrelay_store_accepting_writes").set(0.0);
            tracing::error!(
                store.fault = kind.as_str(),
                "the store stopped accepting writes: {}; requests that write get 507 or 503 until it recovers",
                kind.describe()
            );
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Option<Refusing>> {
        self.refusing.lock().expect("store health poisoned")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn full() -> StoreError {
        StoreError::Unavailable {
            kind: FaultKind::Full,
            source: sqlx::Error::PoolTimedOut,
        }
    }

    #[test]
    fn a_fault_turns_accepting_off_and_the_next_success_on() {
        let health = Health::default();
        assert_eq!(health.refusing(), None);
        health.observe::<()>(&Err(full()));
        let refusing = health.refusing().expect("refusing after a full disk");
        assert_eq!(refusing.kind, FaultKind::Full);
        // A second fault keeps the first one's time: the outage started then.
        health.observe::<()>(&Err(StoreError::Unavailable {
            kind: FaultKind::Io,
            source: sqlx::Error::PoolTimedOut,
        }));
        assert_eq!(health.refusing(), Some(refusing));
        // A write that fits says nothing: the next may not. The probe decides.
        health.observe(&Ok(()));
        assert_eq!(health.refusing(), Some(refusing));
        health.probed(&Ok(()));
        assert_eq!(health.refusing(), None);
    }

    #[test]
    fn client_caused_errors_say_nothing_about_the_store() {
        let health = Health::default();
        health.observe::<()>(&Err(StoreError::Conflict("name")));
        health.observe::<()>(&Err(StoreError::Closed));
        assert_eq!(health.refusing(), None);
        health.observe::<()>(&Err(full()));
        health.observe::<()>(&Err(StoreError::MissingReference("destination")));
        assert!(health.refusing().is_some());
    }
}

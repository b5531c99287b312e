//! Time, read in one place so time-dependent code names where "now" comes from: the wall clock
//! ([`now`], for timestamps), and a monotonic [`Clock`] for intervals (sessions' idle and
//! maximum ages) that tests can move forward instead of sleeping.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditrelay_core::Timestamp;
use time::OffsetDateTime;

pub fn now() -> Timestamp {
    Timestamp::from_datetime(OffsetDateTime::now_utc())
}

/// A monotonic clock: `Instant::now()`, plus however far it was [advanced](Clock::advance).
/// One per running server (in its state), so that tests sharing a process do not move each
/// other's time. Cheap to clone; clones share the offset.
#[derive(Debug, Clone, Default)]
pub struct Clock {
    advanced_ms: Arc<AtomicU64>,
}

impl Clock {
    pub fn instant(&self) -> Instant {
        Instant::now() + Duration::from_millis(self.advanced_ms.load(Ordering::Relaxed))
    }

    /// The wall clock's time plus however far this clock was advanced: for intervals kept where
    /// an `Instant` cannot go (sessions in a database several nodes share).
    pub fn wall(&self) -> Timestamp {
        let ms = i64::try_from(self.advanced_ms.load(Ordering::Relaxed)).unwrap_or(i64::MAX);
        now().saturating_add_millis(ms)
    }

    /// Moves this clock forward by `by`: what a test does instead of waiting for it to pass.
    /// The server itself never calls it.
    pub fn advance(&self, by: Duration) {
        let ms = u64::try_from(by.as_millis()).unwrap_or(u64::MAX);
        self.advanced_ms.fetch_add(ms, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn an_advanced_clock_runs_ahead_and_its_clones_with_it() {
        let clock = Clock::default();
        let copy = clock.clone();
        let before = Instant::now();
        clock.advance(Duration::from_secs(3600));
        assert!(copy.instant() >= before + Duration::from_secs(3600));
        assert!(Clock::default().instant() < before + Duration::from_secs(60));
    }
}

//! Leases as the store keeps them (DECISIONS.md S21): a named lease has one holder at a time,
//! until it expires; each taking of it has a new epoch; and a [`Fence`] (holder and epoch) is
//! what a write by an owner carries, so that the store refuses it once the lease has moved on.
//!
//! On PostgreSQL the leases are rows every node shares (`postgres/leases.rs`). A SQLite file
//! has one process, whose units take their leases here, in memory, by the same rules: the
//! engine above runs the same way on either backend.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use uuid::Uuid;

use super::{Result, StoreError};

/// The proof that `holder` took the lease `name` as its `epoch`-th taking: every write an
/// owner makes carries it, and the store refuses the write unless the lease is still so held.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fence {
    pub name: Arc<str>,
    pub holder: Uuid,
    pub epoch: i64,
}

/// The leases of a store that one process has to itself.
#[derive(Default)]
pub(super) struct LocalLeases(Mutex<HashMap<Arc<str>, Local>>);

struct Local {
    holder: Uuid,
    epoch: i64,
    expires: Instant,
}

impl LocalLeases {
    pub fn acquire(&self, name: &str, holder: Uuid, ttl: Duration) -> Option<Fence> {
        let mut leases = self.0.lock().expect("leases lock");
        let now = Instant::now();
        let epoch = match leases.get(name) {
            Some(lease) if lease.expires > now => return None,
            Some(lease) => lease.epoch + 1,
            None => 1,
        };
        let name: Arc<str> = name.into();
        leases.insert(
            Arc::clone(&name),
            Local {
                holder,
                epoch,
                expires: now + ttl,
            },
        );
        Some(Fence {
            name,
            holder,
            epoch,
        })
    }

    pub fn renew(&self, fences: &[Fence], ttl: Duration) -> Vec<Fence> {
        let mut leases = self.0.lock().expect("leases lock");
        let now = Instant::now();
        let mut renewed = Vec::new();
        for fence in fences {
            if let Some(lease) = leases.get_mut(&fence.name)
                && held(lease, fence, now)
            {
                lease.expires = now + ttl;
                renewed.push(fence.clone());
            }
        }
        renewed
    }

    pub fn held(&self) -> std::collections::HashSet<String> {
        let leases = self.0.lock().expect("leases lock");
        let now = Instant::now();
        leases
            .iter()
            .filter(|(_, lease)| lease.expires > now)
            .map(|(name, _)| name.to_string())
            .collect()
    }

    pub fn release(&self, fence: &Fence) {
        let mut leases = self.0.lock().expect("leases lock");
        if let Some(lease) = leases.get_mut(&fence.name)
            && lease.holder == fence.holder
            && lease.epoch == fence.epoch
        {
            lease.expires = Instant::now();
        }
    }

    /// `Ok` while `fence` still holds its lease. A SQLite write is checked before it is
    /// submitted, not within its transaction: every unit that could race it is in this process,
    /// and stopped before its lease is given up.
    pub fn check(&self, fence: &Fence) -> Result<()> {
        let leases = self.0.lock().expect("leases lock");
        match leases.get(&fence.name) {
            Some(lease) if held(lease, fence, Instant::now()) => Ok(()),
            _ => Err(StoreError::LeaseLost(fence.name.to_string())),
        }
    }
}

fn held(lease: &Local, fence: &Fence, now: Instant) -> bool {
    lease.holder == fence.holder && lease.epoch == fence.epoch && lease.expires > now
}

#[cfg(test)]
mod tests {
    use super::*;

    const TTL: Duration = Duration::from_secs(60);

    fn fence(leases: &LocalLeases, name: &str, holder: Uuid) -> Fence {
        leases.acquire(name, holder, TTL).expect("free")
    }

    #[test]
    fn one_holder_at_a_time_and_each_taking_a_new_epoch() {
        let leases = LocalLeases::default();
        let (a, b) = (Uuid::new_v4(), Uuid::new_v4());
        let first = fence(&leases, "lane/x", a);
        assert_eq!(first.epoch, 1);
        assert!(leases.acquire("lane/x", b, TTL).is_none(), "held");
        assert!(leases.check(&first).is_ok());
        leases.release(&first);
        assert!(leases.check(&first).is_err(), "released");
        let second = fence(&leases, "lane/x", b);
        assert_eq!(second.epoch, 2, "epochs never go back");
        assert!(matches!(
            leases.check(&first),
            Err(StoreError::LeaseLost(_))
        ));
        // A release under the old epoch leaves the new holder alone.
        leases.release(&first);
        assert!(leases.check(&second).is_ok());
        assert_eq!(leases.held(), ["lane/x".to_string()].into());
    }

    #[test]
    fn an_expired_lease_is_neither_renewed_nor_a_fence() {
        let leases = LocalLeases::default();
        let a = Uuid::new_v4();
        let short = leases.acquire("replay/1", a, Duration::ZERO).unwrap();
        assert!(leases.check(&short).is_err());
        assert!(leases.renew(std::slice::from_ref(&short), TTL).is_empty());
        let again = fence(&leases, "replay/1", a);
        assert_eq!(again.epoch, short.epoch + 1);
        assert_eq!(leases.renew(std::slice::from_ref(&again), TTL), vec![again]);
    }
}

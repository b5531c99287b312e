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

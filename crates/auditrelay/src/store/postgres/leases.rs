//! Leases and nodes on PostgreSQL (DECISIONS.md S21): rows every node shares, timed by the
//! database's clock (`clock_timestamp()`), so that no two nodes' clocks have to agree.
//!
//! A fenced write begins its transaction with [`check_fence`], which locks the lease's row
//! `FOR SHARE` while it checks holder, epoch and expiry. Taking the lease over is an `UPDATE`
//! of that row, which waits for the write to commit (or roll back): once another node holds
//! the lease, every write under the old epoch has either committed before it took over, and
//! is seen by it, or is refused. The lease row is the first lock a fenced write takes, before
//! the lock order of `webhooks.rs`; taking, renewing and releasing a lease lock nothing else.

use std::time::Duration;

use sqlx::postgres::PgConnection;
use uuid::Uuid;

use super::PgStore;
use crate::store::{Fence, Result, StoreError};

impl PgStore {
    /// Takes the lease `name` for `holder` if nobody holds it (or its holder let it expire);
    /// each taking is a new epoch.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> Result<Option<Fence>> {
        let epoch: Option<i64> = sqlx::query_scalar(
            "INSERT INTO leases AS l (name, holder, epoch, expires_at)
             VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
             ON CONFLICT (name) DO UPDATE
                 SET holder = excluded.holder, epoch = l.epoch + 1,
                     expires_at = excluded.expires_at
                 WHERE l.expires_at <= clock_timestamp()
             RETURNING epoch",
        )
        .bind(name)
        .bind(holder.to_string())
        .bind(ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        Ok(epoch.map(|epoch| Fence {
            name: name.into(),
            holder,
            epoch,
        }))
    }

    /// Extends those of `fences` that are still held to `ttl` from now; returns them. One that
    /// expired stays so, even if nobody took it: its owner may have stopped writing already,
    /// and takes it again as a new epoch.
    pub async fn renew_leases(&self, fences: &[Fence], ttl: Duration) -> Result<Vec<Fence>> {
        let Some(holder) = fences.first().map(|f| f.holder) else {
            return Ok(Vec::new());
        };
        let names: Vec<&str> = fences.iter().map(|f| &*f.name).collect();
        let epochs: Vec<i64> = fences.iter().map(|f| f.epoch).collect();
        let renewed: Vec<(String, i64)> = sqlx::query_as(
            "UPDATE leases SET expires_at = clock_timestamp() + make_interval(secs => $4)
             WHERE holder = $1 AND expires_at > clock_timestamp()
               AND (name, epoch) IN (SELECT * FROM unnest($2::text[], $3::bigint[]))
             RETURNING name, epoch",
        )
        .bind(holder.to_string())
        .bind(&names)
        .bind(&epochs)
        .bind(ttl.as_secs_f64())
        .fetch_all(&self.pool)
        .await?;
        Ok(fences
            .iter()
            .filter(|f| renewed.iter().any(|(n, e)| **n == *f.name && *e == f.epoch))
            .cloned()
            .collect())
    }

    /// Lets the lease go at once, for another node to take without waiting for it to expire.
    pub async fn release_lease(&self, fence: &Fence) -> Result<()> {
        sqlx::query(
            "UPDATE leases SET expires_at = '-infinity'
             WHERE name = $1 AND holder = $2 AND epoch = $3",
        )
        .bind(&*fence.name)
        .bind(fence.holder.to_string())
        .bind(fence.epoch)
        .execute(&self.pool)
        .await?;
        Ok(())
    }

    /// Notes that the node `id` is alive; returns how many nodes were seen alive within
    /// `ttl`, this one included.
    pub async fn node_alive(&self, id: Uuid, name: &str, ttl: Duration) -> Result<u64> {
        sqlx::query(
            "INSERT INTO nodes (id, name, started_at, seen_at)
             VALUES ($1, $2, clock_timestamp(), clock_timestamp())
             ON CONFLICT (id) DO UPDATE SET seen_at = excluded.seen_at",
        )
        .bind(id.to_string())
        .bind(name)
        .execute(&self.pool)
        .await?;
        let live: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM nodes WHERE seen_at < clock_timestamp() - interval '1 day'
             )
             SELECT count(*) FROM nodes
             WHERE seen_at > clock_timestamp() - make_interval(secs => $1)",
        )
        .bind(ttl.as_secs_f64())
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(live).unwrap_or(0).max(1))
    }

    /// Forgets the node `id`: it stopped.
    pub async fn node_gone(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.pool)
            .await?;
        Ok(())
    }
}

/// Checks, first thing in a fenced write's transaction, that `fence` still holds its lease,
/// and keeps the lease from being taken over until the transaction ends (module doc).
pub(super) async fn check_fence(tx: &mut PgConnection, fence: &Fence) -> Result<()> {
    let held: Option<i32> = sqlx::query_scalar(
        "SELECT 1 FROM leases
         WHERE name = $1 AND holder = $2 AND epoch = $3 AND expires_at > clock_timestamp()
         FOR SHARE",
    )
    .bind(&*fence.name)
    .bind(fence.holder.to_string())
    .bind(fence.epoch)
    .fetch_optional(tx)
    .await?;
    match held {
        Some(_) => Ok(()),
        None => Err(StoreError::LeaseLost(fence.name.to_string())),
    }
}

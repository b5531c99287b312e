//! Leases and nodes on PostgreSQL (DECISIONS.md S21): rows every node shares, timed by the
//! database's clock (`clock_timestamp()`), so that no two nodes' clocks have to agree.
//!
//! A fenced write begins its transaction with [`check_fence`], which locks the lease's row
//! `FOR SHARE` while it checks holder, epoch and expiry. Taking the lease over is an `UPDATE`
//! of that row, which waits for the write to commit (or roll back): once another node holds
//! the lease, every write under the old epoch has either committed before it took over, and
//! is seen by it, or is refused. The lease row is the first lock a fenced write takes, before
//! the lock order of `webhooks.rs`; taking, renewing and releasing a lease lock nothing else.

use std::collections::HashSet;
use std::time::Duration;

use sqlx::postgres::PgConnection;
use uuid::Uuid;

use super::PgStore;
use crate::store::{Fence, Result, StoreError};

impl PgStore {
    /// Takes the lease `name` for `holder` if nobody holds it (or its holder let it expire);
    /// each taking is a new epoch. A lease held is left alone without being locked (an
    /// `UPDATE` skips a row its condition rules out; an upsert would lock it), so asking costs
    /// its owner nothing; an expired one locked by a fenced write is taken once that commits.
    pub async fn acquire_lease(
        &self,
        name: &str,
        holder: Uuid,
        ttl: Duration,
    ) -> Result<Option<Fence>> {
        let holder_text = holder.to_string();
        let taken: Option<i64> = sqlx::query_scalar(
            "UPDATE leases SET holder = $2, epoch = epoch + 1,
                 expires_at = clock_timestamp() + make_interval(secs => $3)
             WHERE name = $1 AND expires_at <= clock_timestamp()
             RETURNING epoch",
        )
        .bind(name)
        .bind(&holder_text)
        .bind(ttl.as_secs_f64())
        .fetch_optional(&self.pool)
        .await?;
        let epoch = match taken {
            Some(epoch) => Some(epoch),
            // Never taken before, or held: a new row, unless there is one.
            None => {
                sqlx::query_scalar(
                    "INSERT INTO leases (name, holder, epoch, expires_at)
                     VALUES ($1, $2, 1, clock_timestamp() + make_interval(secs => $3))
                     ON CONFLICT (name) DO NOTHING
                     RETURNING epoch",
                )
                .bind(name)
                .bind(&holder_text)
                .bind(ttl.as_secs_f64())
                .fetch_optional(&self.pool)
                .await?
            }
        };
        Ok(epoch.map(|epoch| Fence {
            name: name.into(),
            holder,
            epoch,
        }))
    }

    /// The names of the leases some node holds now.
    pub async fn held_leases(&self) -> Result<HashSet<String>> {
        let names: Vec<String> =
            sqlx::query_scalar("SELECT name FROM leases WHERE expires_at > clock_timestamp()")
                .fetch_all(&self.pool)
                .await?;
        Ok(names.into_iter().collect())
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
        .fetch_all(&self.lease_pool)
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
        .execute(&self.lease_pool)
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
        .execute(&self.lease_pool)
        .await?;
        let live: i64 = sqlx::query_scalar(
            "WITH gone AS (
                 DELETE FROM nodes WHERE seen_at < clock_timestamp() - interval '1 day'
             ), done AS (
                 -- A replay job's lease outlives it; once the job is over, it never runs
                 -- again, and its lease can go.
                 DELETE FROM leases l WHERE l.name LIKE 'replay/%'
                     AND l.expires_at < clock_timestamp()
                     AND NOT EXISTS (
                         SELECT 1 FROM replay_jobs j
                         WHERE l.name = 'replay/' || j.id
                           AND j.status IN ('accepted', 'pending', 'running'))
             )
             SELECT count(*) FROM nodes
             WHERE seen_at > clock_timestamp() - make_interval(secs => $1)",
        )
        .bind(ttl.as_secs_f64())
        .fetch_one(&self.lease_pool)
        .await?;
        Ok(u64::try_from(live).unwrap_or(0).max(1))
    }

    /// Forgets the node `id`: it stopped.
    pub async fn node_gone(&self, id: Uuid) -> Result<()> {
        sqlx::query("DELETE FROM nodes WHERE id = $1")
            .bind(id.to_string())
            .execute(&self.lease_pool)
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

//! Replay jobs on PostgreSQL: one row per scope, and the scope's past jobs.
//!
//! SQLite has one writer, so a read and the write that depends on it can never be split by
//! another. Here several nodes write at READ COMMITTED, so each such rule is made atomic on its
//! own: a replacement locks the current job (`FOR UPDATE`) before it decides, and a save or a
//! cancel is one conditional `UPDATE`, whose condition PostgreSQL checks again on the row's
//! newest version when it had to wait for another writer's lock.

use auditrelay_core::Timestamp;
use sqlx::PgConnection;

use super::PgStore;
use super::leases::check_fence;
use super::tx::PoolTx;
use crate::store::rows;
use crate::store::{Fence, ReplayJob, ReplayStatus, Result, Scope};

/// Past jobs kept per scope.
const REPLAY_HISTORY: i64 = 20;

impl PgStore {
    pub async fn get_replay_job(&self, scope: &Scope) -> Result<Option<ReplayJob>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(None);
        };
        let row = sqlx::query(
            "SELECT j.*, s.org_id, s.region, s.portal_id
             FROM replay_jobs j JOIN scopes s ON s.id = j.scope_id
             WHERE j.scope_id = $1",
        )
        .bind(scope_id)
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::replay_job).transpose()
    }

    pub async fn active_replay_jobs(&self) -> Result<Vec<ReplayJob>> {
        let rows = sqlx::query(
            "SELECT j.*, s.org_id, s.region, s.portal_id
             FROM replay_jobs j JOIN scopes s ON s.id = j.scope_id
             WHERE j.status IN ('accepted', 'pending', 'running') ORDER BY j.updated_at",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::replay_job).collect()
    }

    pub async fn replace_replay_jobs(&self, jobs: &[ReplayJob]) -> Result<bool> {
        // Made and committed on their own, like an append's scopes (see `events::ScopeIds`); a
        // refused replacement leaves the scopes' rows, which is harmless: rows are never deleted.
        let mut scoped = Vec::with_capacity(jobs.len());
        for job in jobs {
            scoped.push((self.scope_id(&job.scope).await?, job));
        }
        // Locked in one order, so that two PUTs over the same scopes wait for each other
        // rather than deadlock.
        scoped.sort_by_key(|(scope, _)| *scope);
        let mut tx = PoolTx::begin(&self.pool).await?;
        for (scope, job) in scoped {
            if !replace(&mut tx, scope, job).await? {
                // A job is in progress: nothing changes, the history and the other scopes'
                // jobs included.
                tx.rollback().await;
                return Ok(false);
            }
        }
        tx.commit().await?;
        Ok(true)
    }

    pub async fn replay_history(&self, scope: &Scope, limit: u32) -> Result<Vec<ReplayJob>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT h.*, s.org_id, s.region, s.portal_id
             FROM replay_history h JOIN scopes s ON s.id = h.scope_id
             WHERE h.scope_id = $1
             ORDER BY h.updated_at DESC, h.id COLLATE \"C\" DESC LIMIT $2",
        )
        .bind(scope_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::replay_job).collect()
    }

    pub async fn cancel_replay_job(
        &self,
        scope: &Scope,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<ReplayJob>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(None);
        };
        // One statement: waiting for a concurrent save or replacement, PostgreSQL checks the
        // status again on the row it left. The job is returned by the UPDATE itself: read
        // afterwards, it could already be the next job, which another node put in its place
        // once this one ended.
        let row = sqlx::query(
            "UPDATE replay_jobs j SET status = 'failed', failure_reason = $2, finished_at = $3,
                                      updated_at = $3
             FROM scopes s
             WHERE j.scope_id = $1 AND s.id = j.scope_id
               AND j.status IN ('accepted', 'pending', 'running')
             RETURNING j.*, s.org_id, s.region, s.portal_id",
        )
        .bind(scope_id)
        .bind(super::storable(reason))
        .bind(now.as_millis())
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::replay_job).transpose()
    }

    pub async fn save_replay_job(&self, fence: &Fence, job: &ReplayJob) -> Result<bool> {
        let Some(scope_id) = self.existing_scope_id(&job.scope).await? else {
            return Ok(false);
        };
        // "Only if it is still the same job, in progress" is the UPDATE's own condition, checked
        // again on the newest row if a replacement or a cancel held it: a job replaced or
        // cancelled meanwhile is never overwritten by its old executor.
        let mut tx = PoolTx::begin(&self.pool).await?;
        check_fence(&mut tx, fence).await?;
        let done = sqlx::query(
            "UPDATE replay_jobs SET status = $1, updated_at = $2, events_total = $3,
                 events_sent = $4, batches_sent = $5, started_at = $6, finished_at = $7,
                 failure_reason = $8, resume_ts = $9, resume_seq = $10, through_seq = $11
             WHERE scope_id = $12 AND id = $13 AND status IN ('accepted', 'pending', 'running')",
        )
        .bind(job.status.as_str())
        .bind(job.updated_at.as_millis())
        .bind(job.events_total.map(|n| n as i64))
        .bind(job.events_sent as i64)
        .bind(job.batches_sent as i64)
        .bind(job.started_at.map(Timestamp::as_millis))
        .bind(job.finished_at.map(Timestamp::as_millis))
        .bind(job.failure_reason.as_deref())
        .bind(job.resume.map(|(ts, _)| ts))
        .bind(job.resume.map(|(_, seq)| seq))
        .bind(job.through_seq)
        .bind(scope_id)
        .bind(job.id.to_string())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn count_events_between(
        &self,
        scope: &Scope,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(u64, i64)> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok((0, 0));
        };
        // One statement, so the count and the newest `seq` come from one snapshot.
        let (n, newest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), max(seq) FROM events WHERE scope_id = $1 AND ts >= $2 AND ts <= $3",
        )
        .bind(scope_id)
        .bind(from.as_millis())
        .bind(to.as_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok((n as u64, newest.unwrap_or(0)))
    }
}

/// Makes `job` the job of the scope `scope` in the transaction on `conn`, unless the scope's
/// job is in progress (`false`, and the caller rolls back).
async fn replace(conn: &mut PgConnection, scope: i64, job: &ReplayJob) -> Result<bool> {
    // The current job, locked until commit: another node's replacement waits here, and then
    // sees this one's job, so two PUTs can never both replace an ended job (nor move it to
    // the history twice). Saves and cancels of the job wait too, so the row copied to the
    // history below is the one this decision was made on.
    let current: Option<String> =
        sqlx::query_scalar("SELECT status FROM replay_jobs WHERE scope_id = $1 FOR UPDATE")
            .bind(scope)
            .fetch_optional(&mut *conn)
            .await?;
    if current
        .as_deref()
        .and_then(ReplayStatus::parse)
        .is_some_and(ReplayStatus::in_progress)
    {
        return Ok(false);
    }
    // The job being replaced, if it has ended, goes to the history; the newest
    // REPLAY_HISTORY stay.
    sqlx::query(
        "INSERT INTO replay_history
                 (id, scope_id, start_at, end_at, status, updated_at, events_total, events_sent,
                  batches_sent, started_at, finished_at, failure_reason, resume_ts, resume_seq,
                  through_seq)
             SELECT id, scope_id, start_at, end_at, status, updated_at, events_total, events_sent,
                    batches_sent, started_at, finished_at, failure_reason, resume_ts, resume_seq,
                    through_seq
             FROM replay_jobs WHERE scope_id = $1 AND status IN ('completed', 'failed')
             ON CONFLICT (id) DO NOTHING",
    )
    .bind(scope)
    .execute(&mut *conn)
    .await?;
    // `COLLATE "C"`: ties are broken by the id's bytes, as SQLite does, whatever the
    // database's collation.
    sqlx::query(
        "DELETE FROM replay_history WHERE scope_id = $1 AND id NOT IN
                 (SELECT id FROM replay_history WHERE scope_id = $1
                  ORDER BY updated_at DESC, id COLLATE \"C\" DESC LIMIT $2)",
    )
    .bind(scope)
    .bind(REPLAY_HISTORY)
    .execute(&mut *conn)
    .await?;
    // The WHERE of the upsert is still the "one job at a time" rule: with no row to lock
    // above, two nodes may both get here, and the second one's upsert waits for the first's
    // row and then finds its job in progress.
    let done = sqlx::query(
        "INSERT INTO replay_jobs (scope_id, id, start_at, end_at, status, updated_at)
             VALUES ($1, $2, $3, $4, $5, $6)
             ON CONFLICT (scope_id) DO UPDATE SET
                 id = excluded.id, start_at = excluded.start_at, end_at = excluded.end_at,
                 status = excluded.status, updated_at = excluded.updated_at,
                 events_total = NULL, events_sent = 0, batches_sent = 0, started_at = NULL,
                 finished_at = NULL, failure_reason = NULL, resume_ts = NULL, resume_seq = NULL,
                 through_seq = NULL
             WHERE replay_jobs.status IN ('completed', 'failed')",
    )
    .bind(scope)
    .bind(job.id.to_string())
    .bind(job.start_at.as_millis())
    .bind(job.end_at.as_millis())
    .bind(job.status.as_str())
    .bind(job.updated_at.as_millis())
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

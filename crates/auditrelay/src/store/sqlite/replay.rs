//! Replay jobs in SQLite: one row per scope.

use auditrelay_core::Timestamp;
use sqlx::SqliteConnection;

use super::events::scope_id;
use super::tx::PoolTx;
use super::{SqliteStore, portal_key};
use crate::store::rows;
use crate::store::{ReplayJob, Result, Scope};

/// Past jobs kept per scope.
const REPLAY_HISTORY: i64 = 20;

impl SqliteStore {
    pub async fn get_replay_job(&self, scope: &Scope) -> Result<Option<ReplayJob>> {
        let row = sqlx::query(
            "SELECT j.*, s.org_id, s.region, s.portal_id
             FROM replay_jobs j JOIN scopes s ON s.id = j.scope_id
             WHERE s.org_id = ? AND s.region = ? AND s.portal_id = ?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
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
        let mut conn = PoolTx::begin(&self.pool).await?;
        for job in jobs {
            if !replace(&mut conn, job).await? {
                // A job is in progress: nothing changes, the history and the other scopes'
                // jobs included.
                conn.rollback().await;
                return Ok(false);
            }
        }
        conn.commit().await?;
        Ok(true)
    }

    pub async fn replay_history(&self, scope: &Scope, limit: u32) -> Result<Vec<ReplayJob>> {
        let rows = sqlx::query(
            "SELECT h.*, s.org_id, s.region, s.portal_id
             FROM replay_history h JOIN scopes s ON s.id = h.scope_id
             WHERE s.org_id = ? AND s.region = ? AND s.portal_id = ?
             ORDER BY h.updated_at DESC, h.id DESC LIMIT +?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
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
        let row = sqlx::query(
            "UPDATE replay_jobs SET status = 'failed', failure_reason = ?1, finished_at = ?2,
                                    updated_at = ?2
             WHERE status IN ('accepted', 'pending', 'running') AND scope_id =
                 (SELECT id FROM scopes WHERE org_id = ?3 AND region = ?4 AND portal_id = ?5)
             RETURNING scope_id",
        )
        .bind(reason)
        .bind(now.as_millis())
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_optional(&self.pool)
        .await?;
        match row {
            Some(_) => self.get_replay_job(scope).await,
            None => Ok(None),
        }
    }

    pub async fn save_replay_job(&self, job: &ReplayJob) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE replay_jobs SET status = ?1, updated_at = ?2, events_total = ?3,
                 events_sent = ?4, batches_sent = ?5, started_at = ?6, finished_at = ?7,
                 failure_reason = ?8, resume_ts = ?9, resume_seq = ?10, through_seq = ?15
             WHERE id = ?11 AND status IN ('accepted', 'pending', 'running') AND scope_id =
                 (SELECT id FROM scopes WHERE org_id = ?12 AND region = ?13 AND portal_id = ?14)",
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
        .bind(job.id.to_string())
        .bind(job.scope.org_id.to_string())
        .bind(job.scope.region.as_str())
        .bind(
            job.scope
                .portal_id
                .map(|p| p.to_string())
                .unwrap_or_default(),
        )
        .bind(job.through_seq)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn count_events_between(
        &self,
        scope: &Scope,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(u64, i64)> {
        let (n, newest): (i64, Option<i64>) = sqlx::query_as(
            "SELECT count(*), max(seq) FROM events
             WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?1 AND region = ?2 AND portal_id = ?3)
               AND ts >= ?4 AND ts <= ?5",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .bind(from.as_millis())
        .bind(to.as_millis())
        .fetch_one(&self.pool)
        .await?;
        Ok((n as u64, newest.unwrap_or(0)))
    }
}

/// Makes `job` its scope's job in the transaction on `conn`, unless the scope's job is in
/// progress (`false`, and the caller rolls back).
async fn replace(conn: &mut SqliteConnection, job: &ReplayJob) -> Result<bool> {
    let scope = scope_id(conn, &job.scope).await?;
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
             FROM replay_jobs WHERE scope_id = ?1 AND status IN ('completed', 'failed')
             ON CONFLICT (id) DO NOTHING",
    )
    .bind(scope)
    .execute(&mut *conn)
    .await?;
    sqlx::query(
        "DELETE FROM replay_history WHERE scope_id = ?1 AND id NOT IN
                 (SELECT id FROM replay_history WHERE scope_id = ?1
                  ORDER BY updated_at DESC, id DESC LIMIT +?2)",
    )
    .bind(scope)
    .bind(REPLAY_HISTORY)
    .execute(&mut *conn)
    .await?;
    // The WHERE of the upsert is the "one job at a time" rule, checked in the write itself.
    let done = sqlx::query(
        "INSERT INTO replay_jobs (scope_id, id, start_at, end_at, status, updated_at)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
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

//! The refused list in SQLite: events a receiver refused for good, per webhook scope
//! (DECISIONS.md D14).

use auditrelay_core::Timestamp;

use super::events::scope_id;
use super::tx::PoolTx;
use super::{SqliteStore, portal_key};
use crate::store::rows;
use crate::store::{PageQuery, RefusedEvent, Result, Scope, Seek};

impl SqliteStore {
    pub async fn record_refused(&self, scope: &Scope, events: &[RefusedEvent]) -> Result<()> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        let scope_id = scope_id(&mut tx, scope).await?;
        for event in events {
            sqlx::query(
                "INSERT INTO refused_events (scope_id, seq, refused_at, endpoint, reason, replay_id)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)
                 ON CONFLICT (scope_id, seq) DO UPDATE SET
                     refused_at = excluded.refused_at, endpoint = excluded.endpoint,
                     reason = excluded.reason, replay_id = excluded.replay_id,
                     resend_requested_at = NULL",
            )
            .bind(scope_id)
            .bind(event.seq)
            .bind(event.refused_at.as_millis())
            .bind(&event.endpoint)
            .bind(&event.reason)
            .bind(event.replay_id.map(|id| id.to_string()))
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await
    }

    pub async fn list_refused(&self, scope: &Scope, page: &PageQuery) -> Result<Vec<RefusedEvent>> {
        // Oldest first, by `seq`.
        let (sql, bound) = match &page.seek {
            Seek::Forward(after) => (
                "SELECT r.*, e.ts AS event_ts FROM refused_events r
                   JOIN scopes s ON s.id = r.scope_id LEFT JOIN events e ON e.seq = r.seq
                 WHERE s.org_id = ?1 AND s.region = ?2 AND s.portal_id = ?3 AND r.seq > ?4
                 ORDER BY r.seq ASC LIMIT +?5",
                after.as_ref().map_or(i64::MIN, |(key, _)| *key),
            ),
            Seek::Backward((key, _)) => (
                "SELECT r.*, e.ts AS event_ts FROM refused_events r
                   JOIN scopes s ON s.id = r.scope_id LEFT JOIN events e ON e.seq = r.seq
                 WHERE s.org_id = ?1 AND s.region = ?2 AND s.portal_id = ?3 AND r.seq < ?4
                 ORDER BY r.seq DESC LIMIT +?5",
                *key,
            ),
        };
        self.scope_page(sql, scope, bound, page, rows::refused)
            .await
    }

    pub async fn count_refused(&self, scope: &Scope) -> Result<u64> {
        let count: i64 = sqlx::query_scalar(
            "SELECT count(*) FROM refused_events r JOIN scopes s ON s.id = r.scope_id
             WHERE s.org_id = ? AND s.region = ? AND s.portal_id = ?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_one(&self.pool)
        .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub async fn request_resend(&self, scope: &Scope, at: Timestamp) -> Result<u64> {
        let done = sqlx::query(
            "UPDATE refused_events SET resend_requested_at = ?1
             WHERE resend_requested_at IS NULL AND scope_id =
                 (SELECT id FROM scopes WHERE org_id = ?2 AND region = ?3 AND portal_id = ?4)",
        )
        .bind(at.as_millis())
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn scopes_to_resend(&self) -> Result<Vec<Scope>> {
        let rows = sqlx::query(
            "SELECT DISTINCT s.org_id, s.region, s.portal_id
             FROM refused_events r JOIN scopes s ON s.id = r.scope_id
             WHERE r.resend_requested_at IS NOT NULL",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| rows::scope(row, "refused event"))
            .collect()
    }

    pub async fn refused_to_resend(&self, scope: &Scope, limit: u32) -> Result<Vec<i64>> {
        let seqs = sqlx::query_scalar(
            "SELECT r.seq FROM refused_events r JOIN scopes s ON s.id = r.scope_id
             WHERE s.org_id = ? AND s.region = ? AND s.portal_id = ?
               AND r.resend_requested_at IS NOT NULL
             ORDER BY r.seq LIMIT +?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(seqs)
    }

    pub async fn forget_refused(&self, scope: &Scope, seqs: &[i64]) -> Result<()> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        let scope_id = scope_id(&mut tx, scope).await?;
        for seq in seqs {
            sqlx::query("DELETE FROM refused_events WHERE scope_id = ? AND seq = ?")
                .bind(scope_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

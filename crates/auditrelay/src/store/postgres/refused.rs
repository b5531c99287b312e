//! The refused list on PostgreSQL: events a receiver refused for good, per webhook scope
//! (DECISIONS.md D14).
//!
//! Each write is one statement per row, which PostgreSQL makes atomic on the row's latest
//! version (an upsert, a delete, a conditional update), so nodes writing one scope's list at once
//! need no lock beyond those. Transactions that write several rows take them in `seq` order, so
//! that two of them (a resend forgetting what a lane refuses again) never wait on each other in
//! a circle.

use auditrelay_core::Timestamp;

use super::PgStore;
use super::leases::check_fence;
use super::tx::PoolTx;
use crate::store::rows;
use crate::store::{Fence, PageQuery, RefusedEvent, Result, Scope, Seek};

impl PgStore {
    pub async fn record_refused(
        &self,
        fence: &Fence,
        scope: &Scope,
        events: &[RefusedEvent],
    ) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let scope_id = self.scope_id(scope).await?;
        // Stable: an event named twice still ends with its last refusal.
        let mut events: Vec<&RefusedEvent> = events.iter().collect();
        events.sort_by_key(|event| event.seq);
        let mut tx = PoolTx::begin(&self.pool).await?;
        check_fence(&mut tx, fence).await?;
        for event in events {
            sqlx::query(
                "INSERT INTO refused_events (scope_id, seq, refused_at, endpoint, reason, replay_id)
                 VALUES ($1, $2, $3, $4, $5, $6)
                 ON CONFLICT (scope_id, seq) DO UPDATE SET
                     refused_at = excluded.refused_at, endpoint = excluded.endpoint,
                     reason = excluded.reason, replay_id = excluded.replay_id,
                     resend_requested_at = NULL",
            )
            .bind(scope_id)
            .bind(event.seq)
            .bind(event.refused_at.as_millis())
            .bind(&event.endpoint)
            .bind(super::storable(&event.reason))
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
                "SELECT r.*, e.ts AS event_ts
                 FROM refused_events r LEFT JOIN events e ON e.seq = r.seq
                 WHERE r.scope_id = $1 AND r.seq > $2
                 ORDER BY r.seq ASC LIMIT $3",
                after.as_ref().map_or(i64::MIN, |(key, _)| *key),
            ),
            Seek::Backward((key, _)) => (
                "SELECT r.*, e.ts AS event_ts
                 FROM refused_events r LEFT JOIN events e ON e.seq = r.seq
                 WHERE r.scope_id = $1 AND r.seq < $2
                 ORDER BY r.seq DESC LIMIT $3",
                *key,
            ),
        };
        self.scope_page(sql, scope, bound, page, rows::refused)
            .await
    }

    pub async fn count_refused(&self, scope: &Scope) -> Result<u64> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(0);
        };
        let count: i64 =
            sqlx::query_scalar("SELECT count(*) FROM refused_events WHERE scope_id = $1")
                .bind(scope_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(u64::try_from(count).unwrap_or(0))
    }

    pub async fn request_resend(&self, scope: &Scope, at: Timestamp) -> Result<u64> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(0);
        };
        // A row marked by a request running alongside fails the condition when it is re-read,
        // so each event counts in one answer only.
        let done = sqlx::query(
            "UPDATE refused_events SET resend_requested_at = $1
             WHERE resend_requested_at IS NULL AND scope_id = $2",
        )
        .bind(at.as_millis())
        .bind(scope_id)
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
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let seqs = sqlx::query_scalar(
            "SELECT seq FROM refused_events
             WHERE scope_id = $1 AND resend_requested_at IS NOT NULL
             ORDER BY seq LIMIT $2",
        )
        .bind(scope_id)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        Ok(seqs)
    }

    pub async fn forget_refused(&self, fence: &Fence, scope: &Scope, seqs: &[i64]) -> Result<()> {
        // A scope without a row has no refused list.
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(());
        };
        let mut seqs = seqs.to_vec();
        seqs.sort_unstable();
        seqs.dedup();
        let mut tx = PoolTx::begin(&self.pool).await?;
        check_fence(&mut tx, fence).await?;
        for seq in seqs {
            sqlx::query("DELETE FROM refused_events WHERE scope_id = $1 AND seq = $2")
                .bind(scope_id)
                .bind(seq)
                .execute(&mut *tx)
                .await?;
        }
        tx.commit().await
    }
}

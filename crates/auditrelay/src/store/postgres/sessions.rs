//! The web UI's sessions on PostgreSQL, which every node shares (`ui/session.rs` decides what a
//! session is and when it ends; here are its rows). Each step is one statement or one
//! transaction, so two nodes serving one person at once never half-apply a step.

use auditrelay_core::{Grant, PortalId, Role};
use sqlx::Row as _;
use sqlx::postgres::PgRow;

use super::PgStore;
use super::tx::PoolTx;
use crate::store::{Result, SessionLimits, SessionRow, StoreError};

impl PgStore {
    /// Stores a new session, first ending the expired ones and making room (the sessions idle
    /// longest of the same principal, then of the same client, then of all).
    pub async fn create_session(&self, row: &SessionRow, limits: &SessionLimits) -> Result<()> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        sqlx::query("DELETE FROM ui_sessions WHERE last_seen <= $1 OR created_at <= $2")
            .bind(limits.idle_before)
            .bind(limits.created_before)
            .execute(&mut *tx)
            .await?;
        // Each keeps the newest `max - 1` of those it selects, so the new one makes `max`.
        let principal = row.principal.to_string();
        sqlx::query(
            "DELETE FROM ui_sessions WHERE key IN (
                 SELECT key FROM ui_sessions WHERE principal_id = $1
                 ORDER BY last_seen DESC OFFSET $2)",
        )
        .bind(&principal)
        .bind(limits.per_principal - 1)
        .execute(&mut *tx)
        .await?;
        if let Some(client) = &row.client {
            sqlx::query(
                "DELETE FROM ui_sessions WHERE key IN (
                     SELECT key FROM ui_sessions WHERE client = $1
                     ORDER BY last_seen DESC OFFSET $2)",
            )
            .bind(client)
            .bind(limits.per_client - 1)
            .execute(&mut *tx)
            .await?;
        }
        sqlx::query(
            "DELETE FROM ui_sessions WHERE key IN (
                 SELECT key FROM ui_sessions ORDER BY last_seen DESC OFFSET $1)",
        )
        .bind(limits.total - 1)
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO ui_sessions (key, principal_id, client, sealed_token, csrf, name, role,
                 portal_id, created_at, last_seen)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $9)",
        )
        .bind(row.key.as_slice())
        .bind(&principal)
        .bind(&row.client)
        .bind(&row.sealed_token)
        .bind(&row.csrf)
        .bind(super::storable(&row.name))
        .bind(row.grant.role().as_str())
        .bind(row.grant.portal().map(|p| p.to_string()))
        .bind(row.created_at)
        .execute(&mut *tx)
        .await?;
        tx.commit().await
    }

    /// The session `key` if it is alive, noting `now` as its last request; `Err(true)` when it
    /// expired (and is ended now), `Err(false)` when there is none.
    pub async fn touch_session(
        &self,
        key: &[u8; 32],
        now: i64,
        limits: &SessionLimits,
    ) -> Result<std::result::Result<SessionRow, bool>> {
        let alive = sqlx::query(
            "UPDATE ui_sessions SET last_seen = greatest(last_seen, $2)
             WHERE key = $1 AND last_seen > $3 AND created_at > $4
             RETURNING *",
        )
        .bind(key.as_slice())
        .bind(now)
        .bind(limits.idle_before)
        .bind(limits.created_before)
        .fetch_optional(&self.pool)
        .await?;
        if let Some(row) = alive {
            return Ok(Ok(session(&row)?));
        }
        let ended = sqlx::query("DELETE FROM ui_sessions WHERE key = $1")
            .bind(key.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(Err(ended.rows_affected() == 1))
    }

    pub async fn end_session(&self, key: &[u8; 32]) -> Result<()> {
        sqlx::query("DELETE FROM ui_sessions WHERE key = $1")
            .bind(key.as_slice())
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    pub async fn set_flash(&self, key: &[u8; 32], flash: &str) -> Result<()> {
        sqlx::query("UPDATE ui_sessions SET flash = $2 WHERE key = $1")
            .bind(key.as_slice())
            .bind(super::storable(flash))
            .execute(&self.pool)
            .await?;
        Ok(())
    }

    /// The session's flash, taken: whichever node shows it, it is shown once.
    pub async fn take_flash(&self, key: &[u8; 32]) -> Result<Option<String>> {
        let taken: Option<Option<String>> = sqlx::query_scalar(
            "UPDATE ui_sessions s SET flash = NULL
             FROM (SELECT key, flash FROM ui_sessions WHERE key = $1 FOR UPDATE) old
             WHERE s.key = old.key
             RETURNING old.flash",
        )
        .bind(key.as_slice())
        .fetch_optional(&self.pool)
        .await?;
        Ok(taken.flatten())
    }

    /// Whether the session's page refresh is due to be audited (last audited at or before
    /// `due_before`), noting `now` if so.
    pub async fn refresh_audit_due(
        &self,
        key: &[u8; 32],
        now: i64,
        due_before: i64,
    ) -> Result<bool> {
        let noted = sqlx::query(
            "UPDATE ui_sessions SET refresh_audited = $2
             WHERE key = $1 AND (refresh_audited IS NULL OR refresh_audited <= $3)",
        )
        .bind(key.as_slice())
        .bind(now)
        .bind(due_before)
        .execute(&self.pool)
        .await?;
        Ok(noted.rows_affected() == 1)
    }
}

fn session(row: &PgRow) -> Result<SessionRow> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("a UI session's {what}"));
    let key: Vec<u8> = row.try_get("key")?;
    let role: String = row.try_get("role")?;
    let portal: Option<String> = row.try_get("portal_id")?;
    let portal = portal
        .map(|p| PortalId::parse(&p).ok_or_else(|| corrupt("portal id")))
        .transpose()?;
    let role = Role::parse(&role).ok_or_else(|| corrupt("role"))?;
    let principal: String = row.try_get("principal_id")?;
    Ok(SessionRow {
        key: key.try_into().map_err(|_| corrupt("key"))?,
        principal: uuid::Uuid::try_parse(&principal).map_err(|_| corrupt("principal"))?,
        client: row.try_get("client")?,
        sealed_token: row.try_get("sealed_token")?,
        csrf: row.try_get("csrf")?,
        name: row.try_get("name")?,
        grant: Grant::new(role, portal).map_err(|_| corrupt("grant"))?,
        created_at: row.try_get("created_at")?,
    })
}

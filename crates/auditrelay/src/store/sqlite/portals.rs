//! Portals in SQLite.

use auditrelay_core::{OrgId, PortalId};

use super::SqliteStore;
use super::tx::PoolTx;
use crate::store::rows;
use crate::store::{PageQuery, Portal, Result, Seek, StoreError};

impl SqliteStore {
    pub async fn create_portal(&self, p: &Portal) -> Result<()> {
        let result = sqlx::query(
            "INSERT INTO portals (id, org_id, name, region, created_at, updated_at) VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(p.id.to_string())
        .bind(p.org_id.to_string())
        .bind(&p.name)
        .bind(p.region.as_str())
        .bind(p.created_at.as_millis())
        .bind(p.updated_at.as_millis())
        .execute(&self.pool)
        .await;
        match result {
            Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
                Err(StoreError::Conflict("portal name"))
            }
            other => other.map(drop).map_err(StoreError::from),
        }
    }

    pub async fn get_portal(&self, org: OrgId, id: PortalId) -> Result<Option<Portal>> {
        let row = sqlx::query("SELECT * FROM portals WHERE org_id = ? AND id = ?")
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::portal).transpose()
    }

    pub async fn list_portals(&self, org: OrgId, page: &PageQuery) -> Result<Vec<Portal>> {
        let (sql, key) = match &page.seek {
            Seek::Forward(after) => (
                "SELECT * FROM portals WHERE org_id = ?1 AND (created_at, id) > (?2, ?3)
                 ORDER BY created_at, id LIMIT +?4",
                after.clone().unwrap_or((i64::MIN, String::new())),
            ),
            Seek::Backward(before) => (
                "SELECT * FROM portals WHERE org_id = ?1 AND (created_at, id) < (?2, ?3)
                 ORDER BY created_at DESC, id DESC LIMIT +?4",
                before.clone(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(org.to_string())
            .bind(key.0)
            .bind(key.1)
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?;
        let mut portals = rows.iter().map(rows::portal).collect::<Result<Vec<_>>>()?;
        if matches!(page.seek, Seek::Backward(_)) {
            portals.reverse();
        }
        Ok(portals)
    }

    /// Deletes the portal and its webhook (its events stay until retention removes them).
    pub async fn delete_portal(&self, org: OrgId, id: PortalId) -> Result<bool> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        // Its webhook, and that webhook's delivery log and refused list, which nothing could
        // read any more.
        for sql in [
            "DELETE FROM webhooks WHERE scope_id IN
                 (SELECT id FROM scopes WHERE org_id = ? AND portal_id = ?)",
            "DELETE FROM delivery_attempts WHERE scope_id IN
                 (SELECT id FROM scopes WHERE org_id = ? AND portal_id = ?)",
            "DELETE FROM refused_events WHERE scope_id IN
                 (SELECT id FROM scopes WHERE org_id = ? AND portal_id = ?)",
        ] {
            sqlx::query(sql)
                .bind(org.to_string())
                .bind(id.to_string())
                .execute(&mut *tx)
                .await?;
        }
        let done = sqlx::query("DELETE FROM portals WHERE org_id = ? AND id = ?")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }
}

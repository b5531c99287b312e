//! Audit-log destinations in SQLite.

use auditrelay_core::kind::Kind;
use auditrelay_core::{OrgId, Region};
use sqlx::sqlite::SqliteConnection;
use uuid::Uuid;

use super::SqliteStore;
use super::tx::PoolTx;
use crate::store::rows;
use crate::store::{Destination, DestinationFilter, PageQuery, Result, Seek, StoreError};

impl SqliteStore {
    pub async fn create_destination(&self, d: &Destination) -> Result<()> {
        let mut conn = self.pool.acquire().await?;
        save_destination(&mut conn, d).await
    }

    pub async fn get_managed_destination(
        &self,
        org: OrgId,
        region: &Region,
    ) -> Result<Option<Destination>> {
        let row = sqlx::query("SELECT * FROM destinations WHERE org_id = ? AND managed_region = ?")
            .bind(org.to_string())
            .bind(region.as_str())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::destination).transpose()
    }

    pub async fn get_destination(&self, org: OrgId, id: Uuid) -> Result<Option<Destination>> {
        let row = sqlx::query("SELECT * FROM destinations WHERE org_id = ? AND id = ?")
            .bind(org.to_string())
            .bind(id.to_string())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::destination).transpose()
    }

    pub async fn list_destinations(
        &self,
        org: OrgId,
        page: &PageQuery,
        filter: &DestinationFilter,
    ) -> Result<Vec<Destination>> {
        let (sql, key) = match &page.seek {
            Seek::Forward(after) => (
                "SELECT * FROM destinations
                 WHERE org_id = ?1 AND (created_at, id) > (?2, ?3)
                   AND (?5 IS NULL OR name = ?5) AND (?6 IS NULL OR instr(name, ?6) > 0)
                   AND (?7 IS NULL OR portal_id = ?7)
                 ORDER BY created_at, id LIMIT +?4",
                after.clone().unwrap_or((i64::MIN, String::new())),
            ),
            Seek::Backward(before) => (
                "SELECT * FROM destinations
                 WHERE org_id = ?1 AND (created_at, id) < (?2, ?3)
                   AND (?5 IS NULL OR name = ?5) AND (?6 IS NULL OR instr(name, ?6) > 0)
                   AND (?7 IS NULL OR portal_id = ?7)
                 ORDER BY created_at DESC, id DESC LIMIT +?4",
                before.clone(),
            ),
        };
        let rows = sqlx::query(sql)
            .bind(org.to_string())
            .bind(key.0)
            .bind(key.1)
            .bind(i64::from(page.limit))
            .bind(filter.equals.as_deref())
            .bind(filter.contains.as_deref())
            .bind(filter.portal.map(|p| p.to_string()))
            .fetch_all(&self.pool)
            .await?;
        let mut list = rows
            .iter()
            .map(rows::destination)
            .collect::<Result<Vec<_>>>()?;
        if matches!(page.seek, Seek::Backward(_)) {
            list.reverse();
        }
        Ok(list)
    }

    pub async fn update_destination(&self, d: &Destination) -> Result<bool> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        forget_attempts_if_redirected(&mut tx, d).await?;
        let result = sqlx::query(
            "UPDATE destinations SET name = ?, endpoint = ?, authorization_sealed = ?, log_format = ?,
                                     skip_ssl_verification = ?, updated_at = ?, headers_sealed = ?,
                                     kind = ?, kind_settings = ?, integrity = ?
             WHERE org_id = ? AND id = ?",
        )
        .bind(&d.name)
        .bind(&d.endpoint)
        .bind(d.authorization_sealed.as_slice())
        .bind(d.log_format.as_str())
        .bind(d.skip_ssl_verification)
        .bind(d.updated_at.as_millis())
        .bind(d.headers_sealed.as_deref())
        .bind(d.kind.name().as_str())
        .bind(kind_settings(&d.kind))
        .bind(d.integrity)
        .bind(d.org_id.to_string())
        .bind(d.id.to_string())
        .execute(&mut *tx)
        .await;
        if name_conflict(result)?.rows_affected() == 0 {
            tx.rollback().await;
            return Ok(false);
        }
        // A fixed destination is the usual cure for an inactive webhook: try it again now.
        sqlx::query("UPDATE webhooks SET status = 'active' WHERE destination_id = ?")
            .bind(d.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn delete_destination(&self, org: OrgId, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM destinations WHERE org_id = ? AND id = ?")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await;
        match done {
            // The webhooks' foreign key: checked by the database in the delete itself, so a
            // webhook bound concurrently cannot be left pointing at nothing.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::Conflict("destination in use"))
            }
            other => Ok(other?.rows_affected() == 1),
        }
    }
}

/// Inserts a destination, or updates every field but `created_at` of the one with its id.
pub(super) async fn save_destination(conn: &mut SqliteConnection, d: &Destination) -> Result<()> {
    forget_attempts_if_redirected(conn, d).await?;
    let result = sqlx::query(
        "INSERT INTO destinations (id, org_id, name, endpoint, authorization_sealed, log_format,
                                   skip_ssl_verification, managed_region, created_at, updated_at,
                                   portal_id, headers_sealed, kind, kind_settings, integrity)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)
         ON CONFLICT (id) DO UPDATE SET
             name = excluded.name, endpoint = excluded.endpoint,
             authorization_sealed = excluded.authorization_sealed,
             log_format = excluded.log_format,
             skip_ssl_verification = excluded.skip_ssl_verification,
             managed_region = excluded.managed_region, updated_at = excluded.updated_at,
             headers_sealed = excluded.headers_sealed, kind = excluded.kind,
             kind_settings = excluded.kind_settings, integrity = excluded.integrity",
    )
    .bind(d.id.to_string())
    .bind(d.org_id.to_string())
    .bind(&d.name)
    .bind(&d.endpoint)
    .bind(d.authorization_sealed.as_slice())
    .bind(d.log_format.as_str())
    .bind(d.skip_ssl_verification)
    .bind(d.managed_region.as_ref().map(Region::as_str))
    .bind(d.created_at.as_millis())
    .bind(d.updated_at.as_millis())
    .bind(d.portal_id.map(|p| p.to_string()))
    .bind(d.headers_sealed.as_deref())
    .bind(d.kind.name().as_str())
    .bind(kind_settings(&d.kind))
    .bind(d.integrity)
    .execute(&mut *conn)
    .await;
    name_conflict(result).map(drop)
}

/// Before `d` is saved over its stored self: when its endpoint, credentials (authorization,
/// extra headers), certificate checking or kind change, the webhooks bound to it forget their
/// attempts, which say nothing about the new configuration (a 202 from the old endpoint must
/// not read as the new one working). When it turns `integrity` on, their streams start their
/// checkpoints afresh.
async fn forget_attempts_if_redirected(conn: &mut SqliteConnection, d: &Destination) -> Result<()> {
    sqlx::query(
        "UPDATE webhooks SET status = 'active', last_attempt_at = NULL, last_response_code = NULL,
                             last_response_message = NULL, consecutive_failures = 0,
                             next_attempt_at = NULL
         WHERE destination_id = ?1 AND EXISTS (
             SELECT 1 FROM destinations WHERE id = ?1 AND (endpoint != ?2
                 OR authorization_sealed != ?3 OR skip_ssl_verification != ?4
                 OR headers_sealed IS NOT ?5 OR kind != ?6 OR kind_settings IS NOT ?7))",
    )
    .bind(d.id.to_string())
    .bind(&d.endpoint)
    .bind(d.authorization_sealed.as_slice())
    .bind(d.skip_ssl_verification)
    .bind(d.headers_sealed.as_deref())
    .bind(d.kind.name().as_str())
    .bind(kind_settings(&d.kind))
    .execute(&mut *conn)
    .await?;
    // `integrity` turned on: each stream starts its checkpoints afresh (DECISIONS.md S27),
    // rather than sending those of the time its lines carried no places.
    if d.integrity {
        sqlx::query(
            "UPDATE webhooks SET checkpoint_cursor = NULL, checkpoint_stream = checkpoint_stream + 1
             WHERE destination_id = ?1
               AND EXISTS (SELECT 1 FROM destinations WHERE id = ?1 AND NOT integrity)",
        )
        .bind(d.id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

fn name_conflict(
    result: std::result::Result<sqlx::sqlite::SqliteQueryResult, sqlx::Error>,
) -> Result<sqlx::sqlite::SqliteQueryResult> {
    match result {
        Err(sqlx::Error::Database(e)) if e.is_unique_violation() => {
            Err(StoreError::Conflict("destination name"))
        }
        other => other.map_err(StoreError::from),
    }
}

/// A kind's settings as the `kind_settings` column keeps them.
fn kind_settings(kind: &Kind) -> Option<String> {
    kind.settings().map(|settings| settings.to_string())
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::{SqliteConnectOptions, SqlitePoolOptions};

    /// Migration 0014 rebuilds the table to let `ocsf` in: a database made before it keeps
    /// every destination and the webhook bound to one, foreign keys are enforced again after
    /// it, and only then is `ocsf` accepted.
    #[tokio::test]
    async fn the_ocsf_migration_keeps_every_destination_and_its_webhooks() {
        let dir = tempfile::tempdir().unwrap();
        let options = SqliteConnectOptions::new()
            .filename(dir.path().join("db.sqlite"))
            .create_if_missing(true)
            .foreign_keys(true);
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect_with(options)
            .await
            .unwrap();
        let migrator = sqlx::migrate!("./migrations/sqlite");
        migrator.run_to(13, &pool).await.unwrap();
        let insert = |id: &'static str, format: &'static str| {
            sqlx::query(
                "INSERT INTO destinations (id, org_id, name, endpoint, authorization_sealed, \
                 log_format, skip_ssl_verification, created_at, updated_at, kind) \
                 VALUES (?, 'o', ?, 'https://siem.example/', x'00', ?, 0, 1, 2, 'loki')",
            )
            .bind(id)
            .bind(id)
            .bind(format)
        };
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ('o', 'org', 0)")
            .execute(&pool)
            .await
            .unwrap();
        insert("d1", "json").execute(&pool).await.unwrap();
        assert!(insert("d2", "ocsf").execute(&pool).await.is_err());
        sqlx::query("INSERT INTO scopes (org_id, region) VALUES ('o', 'us')")
            .execute(&pool)
            .await
            .unwrap();
        sqlx::query(
            "INSERT INTO webhooks (scope_id, destination_id, enabled, status, cursor, updated_at) \
             SELECT id, 'd1', 1, 'active', 0, 0 FROM scopes",
        )
        .execute(&pool)
        .await
        .unwrap();

        migrator.run(&pool).await.unwrap();

        let kept: (String, String, String) =
            sqlx::query_as("SELECT name, log_format, kind FROM destinations WHERE id = 'd1'")
                .fetch_one(&pool)
                .await
                .unwrap();
        assert_eq!(kept, ("d1".into(), "json".into(), "loki".into()));
        insert("d2", "ocsf").execute(&pool).await.unwrap();
        assert!(insert("d3", "xml").execute(&pool).await.is_err());
        let enforced: i64 = sqlx::query_scalar("PRAGMA foreign_keys")
            .fetch_one(&pool)
            .await
            .unwrap();
        assert_eq!(enforced, 1);
        let in_use = sqlx::query("DELETE FROM destinations WHERE id = 'd1'")
            .execute(&pool)
            .await;
        assert!(in_use.is_err(), "the webhook still holds its destination");
        // The indexes came back: one managed destination per region (a partial unique index).
        let manage = |id: &'static str| {
            sqlx::query("UPDATE destinations SET managed_region = 'us' WHERE id = ?").bind(id)
        };
        manage("d1").execute(&pool).await.unwrap();
        assert!(manage("d2").execute(&pool).await.is_err());
        let indexes: Vec<String> = sqlx::query_scalar(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'destinations' \
             AND sql IS NOT NULL ORDER BY name",
        )
        .fetch_all(&pool)
        .await
        .unwrap();
        assert_eq!(
            indexes,
            [
                "destinations_managed",
                "destinations_org_created",
                "destinations_org_portal_created"
            ]
        );
    }
}

//! Audit-log destinations on PostgreSQL: the same records and answers as the SQLite store's
//! (`sqlite/destinations.rs`), safe with several nodes writing at once.
//!
//! A save compares the stored destination with the new one to decide whether its webhooks
//! forget their attempts, then writes it. On SQLite the one writer made that look and write one
//! step; here two nodes can save one destination at once, and a look taken before the other's
//! commit would compare against a configuration that is no longer there (its webhooks could
//! then keep the attempts of an endpoint they no longer send to). So every save locks the
//! destination's row before it looks: `FOR NO KEY UPDATE`, the lock the update takes anyway,
//! which leaves the `FOR KEY SHARE` of a webhook binding to it free to proceed.

use auditrelay_core::kind::Kind;
use auditrelay_core::{OrgId, Region};
use sqlx::postgres::{PgConnection, PgQueryResult};
use uuid::Uuid;

use super::PgStore;
use super::tx::PoolTx;
use crate::store::rows;
use crate::store::{Destination, DestinationFilter, PageQuery, Result, Seek, StoreError};

impl PgStore {
    pub async fn create_destination(&self, d: &Destination) -> Result<()> {
        // A transaction, unlike SQLite's two statements on one connection: the row lock
        // `save_destination` takes lasts until it ends.
        let mut tx = PoolTx::begin(&self.pool).await?;
        save_destination(&mut tx, d).await?;
        tx.commit().await
    }

    pub async fn get_managed_destination(
        &self,
        org: OrgId,
        region: &Region,
    ) -> Result<Option<Destination>> {
        let row =
            sqlx::query("SELECT * FROM destinations WHERE org_id = $1 AND managed_region = $2")
                .bind(org.to_string())
                .bind(region.as_str())
                .fetch_optional(&self.pool)
                .await?;
        row.as_ref().map(rows::destination).transpose()
    }

    pub async fn get_destination(&self, org: OrgId, id: Uuid) -> Result<Option<Destination>> {
        let row = sqlx::query("SELECT * FROM destinations WHERE org_id = $1 AND id = $2")
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
        // `strpos` is SQLite's `instr`: a plain, case-sensitive substring test (no LIKE
        // wildcards to escape), true for an empty one.
        let (sql, key) = match &page.seek {
            Seek::Forward(after) => (
                "SELECT * FROM destinations
                 WHERE org_id = $1 AND (created_at, id) > ($2, $3)
                   AND ($5::text IS NULL OR name = $5)
                   AND ($6::text IS NULL OR strpos(name, $6) > 0)
                   AND ($7::text IS NULL OR portal_id = $7)
                 ORDER BY created_at, id LIMIT $4",
                after.clone().unwrap_or((i64::MIN, String::new())),
            ),
            Seek::Backward(before) => (
                "SELECT * FROM destinations
                 WHERE org_id = $1 AND (created_at, id) < ($2, $3)
                   AND ($5::text IS NULL OR name = $5)
                   AND ($6::text IS NULL OR strpos(name, $6) > 0)
                   AND ($7::text IS NULL OR portal_id = $7)
                 ORDER BY created_at DESC, id DESC LIMIT $4",
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
        // Locked before the look in `forget_attempts_if_redirected` (see the module doc). A
        // destination that is not there, or not the org's, changes nothing: SQLite's version
        // rolled its work back in that case, this one does none.
        let stored = sqlx::query(
            "SELECT 1 FROM destinations WHERE org_id = $1 AND id = $2 FOR NO KEY UPDATE",
        )
        .bind(d.org_id.to_string())
        .bind(d.id.to_string())
        .fetch_optional(&mut *tx)
        .await?;
        if stored.is_none() {
            drop(tx);
            return Ok(false);
        }
        forget_attempts_if_redirected(&mut tx, d).await?;
        let result = sqlx::query(
            "UPDATE destinations SET name = $1, endpoint = $2, authorization_sealed = $3,
                                     log_format = $4, skip_ssl_verification = $5, updated_at = $6,
                                     headers_sealed = $7, kind = $8, kind_settings = $9,
                                     integrity = $12
             WHERE org_id = $10 AND id = $11",
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
        .bind(d.org_id.to_string())
        .bind(d.id.to_string())
        .bind(d.integrity)
        .execute(&mut *tx)
        .await;
        // On a taken name the transaction is aborted: `?` drops it, which rolls it back.
        if name_conflict(result)?.rows_affected() == 0 {
            drop(tx);
            return Ok(false);
        }
        // A fixed destination is the usual cure for an inactive webhook: try it again now.
        sqlx::query("UPDATE webhooks SET status = 'active' WHERE destination_id = $1")
            .bind(d.id.to_string())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn delete_destination(&self, org: OrgId, id: Uuid) -> Result<bool> {
        let done = sqlx::query("DELETE FROM destinations WHERE org_id = $1 AND id = $2")
            .bind(org.to_string())
            .bind(id.to_string())
            .execute(&self.pool)
            .await;
        match done {
            // The webhooks' foreign key: checked by the database in the delete itself, so a
            // webhook bound concurrently cannot be left pointing at nothing. Across nodes too:
            // the delete's row lock and the `FOR KEY SHARE` a binding webhook takes on the
            // destination conflict, so one waits for the other and then fails the check.
            Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                Err(StoreError::Conflict("destination in use"))
            }
            other => Ok(other?.rows_affected() == 1),
        }
    }
}

/// Inserts a destination, or updates the one with its id: every field but `id`, `org_id`,
/// `portal_id` and `created_at` (as the SQLite store's upsert does).
///
/// Run it in a transaction: the row lock it takes must last until that ends. On `Err` the
/// transaction is aborted and must be dropped, not used again.
pub(super) async fn save_destination(conn: &mut PgConnection, d: &Destination) -> Result<()> {
    // Rarely more than one pass: only when another node inserts this id between the look and
    // the insert, after which there is a row to lock.
    loop {
        let stored = sqlx::query("SELECT 1 FROM destinations WHERE id = $1 FOR NO KEY UPDATE")
            .bind(d.id.to_string())
            .fetch_optional(&mut *conn)
            .await?;
        if stored.is_some() {
            forget_attempts_if_redirected(conn, d).await?;
            let result = sqlx::query(
                "UPDATE destinations SET name = $1, endpoint = $2, authorization_sealed = $3,
                                         log_format = $4, skip_ssl_verification = $5,
                                         managed_region = $6, updated_at = $7,
                                         headers_sealed = $8, kind = $9, kind_settings = $10,
                                         integrity = $12
                 WHERE id = $11",
            )
            .bind(&d.name)
            .bind(&d.endpoint)
            .bind(d.authorization_sealed.as_slice())
            .bind(d.log_format.as_str())
            .bind(d.skip_ssl_verification)
            .bind(d.managed_region.as_ref().map(Region::as_str))
            .bind(d.updated_at.as_millis())
            .bind(d.headers_sealed.as_deref())
            .bind(d.kind.name().as_str())
            .bind(kind_settings(&d.kind))
            .bind(d.id.to_string())
            .bind(d.integrity)
            .execute(&mut *conn)
            .await;
            return name_conflict(result).map(drop);
        }
        // No stored self, so no attempts to forget. `ON CONFLICT (id)` and not a bare
        // `ON CONFLICT`: a taken name or managed region must still fail.
        let result = sqlx::query(
            "INSERT INTO destinations (id, org_id, name, endpoint, authorization_sealed,
                                       log_format, skip_ssl_verification, managed_region,
                                       created_at, updated_at, portal_id, headers_sealed, kind,
                                       kind_settings, integrity)
             VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15)
             ON CONFLICT (id) DO NOTHING",
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
        if name_conflict(result)?.rows_affected() == 1 {
            return Ok(());
        }
    }
}

/// Before `d` is saved over its stored self, whose row the caller has locked: when its
/// endpoint, credentials (authorization, extra headers), certificate checking or kind change,
/// the webhooks bound to it forget their attempts, which say nothing about the new
/// configuration (a 202 from the old endpoint must not read as the new one working). When it
/// turns `integrity` on, their streams start their checkpoints afresh.
async fn forget_attempts_if_redirected(conn: &mut PgConnection, d: &Destination) -> Result<()> {
    // The webhook rows in scope order first, the order every other writer of several takes
    // them in (`webhooks.rs`); the update alone would take them in the order it finds them.
    sqlx::query(
        "SELECT scope_id FROM webhooks WHERE destination_id = $1
         ORDER BY scope_id FOR NO KEY UPDATE",
    )
    .bind(d.id.to_string())
    .fetch_all(&mut *conn)
    .await?;
    sqlx::query(
        "UPDATE webhooks SET status = 'active', last_attempt_at = NULL, last_response_code = NULL,
                             last_response_message = NULL, consecutive_failures = 0,
                             next_attempt_at = NULL
         WHERE destination_id = $1 AND EXISTS (
             SELECT 1 FROM destinations WHERE id = $1 AND (endpoint <> $2
                 OR authorization_sealed <> $3 OR skip_ssl_verification <> $4
                 OR headers_sealed IS DISTINCT FROM $5::bytea OR kind <> $6
                 OR kind_settings IS DISTINCT FROM $7::text))",
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
             WHERE destination_id = $1
               AND EXISTS (SELECT 1 FROM destinations WHERE id = $1 AND NOT integrity)",
        )
        .bind(d.id.to_string())
        .execute(&mut *conn)
        .await?;
    }
    Ok(())
}

/// Any unique violation, as on SQLite: `destinations_org_id_name_key`, or
/// `destinations_managed` (a second managed destination for a region, which the API answers
/// as a name to retry).
fn name_conflict(result: std::result::Result<PgQueryResult, sqlx::Error>) -> Result<PgQueryResult> {
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

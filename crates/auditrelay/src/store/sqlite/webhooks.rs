//! Webhooks in SQLite: one row per configured webhook, keyed by its scope.

use auditrelay_core::Timestamp;
use sqlx::Row;
use sqlx::sqlite::SqliteConnection;

use super::destinations::save_destination;
use super::events::scope_id;
use super::tx::PoolTx;
use super::{SqliteStore, portal_key};
use crate::store::rows;
use crate::store::{
    AttemptOutcome, DeliveryAttempt, Destination, LoggedAttempt, PageQuery, Result, Scope, Seek,
    StoreError, Webhook, WebhookConfig,
};

impl SqliteStore {
    pub async fn get_webhook(&self, scope: &Scope) -> Result<Option<Webhook>> {
        let row = sqlx::query(
            "SELECT w.*, s.org_id, s.region, s.portal_id
             FROM webhooks w JOIN scopes s ON s.id = w.scope_id
             WHERE s.org_id = ? AND s.region = ? AND s.portal_id = ?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_optional(&self.pool)
        .await?;
        row.as_ref().map(rows::webhook).transpose()
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT w.*, s.org_id, s.region, s.portal_id
             FROM webhooks w JOIN scopes s ON s.id = w.scope_id ORDER BY w.scope_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(rows::webhook).collect()
    }

    pub async fn configure_webhooks(
        &self,
        managed: &[Destination],
        webhooks: &[WebhookConfig],
    ) -> Result<()> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        for destination in managed {
            save_destination(&mut tx, destination).await?;
        }
        for webhook in webhooks {
            let scope = scope_id(&mut tx, &webhook.scope).await?;
            // The cursor moves to the newest event only when the webhook turns on: events
            // ingested while it was off are replay's (DECISIONS.md D2), and a rebind or a re-arm of
            // an enabled webhook must not skip what it has yet to deliver.
            let result = sqlx::query(
                "INSERT INTO webhooks (scope_id, destination_id, enabled, status, cursor, updated_at)
                 VALUES (?1, ?2, ?3, 'active', (SELECT coalesce(max(seq), 0) FROM events), ?4)
                 ON CONFLICT (scope_id) DO UPDATE SET
                     destination_id = excluded.destination_id,
                     enabled = excluded.enabled,
                     status = 'active',
                     -- Another destination's attempts say nothing about this one.
                     last_attempt_at = CASE WHEN webhooks.destination_id = excluded.destination_id
                                       THEN webhooks.last_attempt_at END,
                     last_response_code = CASE WHEN webhooks.destination_id = excluded.destination_id
                                          THEN webhooks.last_response_code END,
                     last_response_message = CASE WHEN webhooks.destination_id = excluded.destination_id
                                             THEN webhooks.last_response_message END,
                     consecutive_failures = CASE WHEN webhooks.destination_id = excluded.destination_id
                                            THEN webhooks.consecutive_failures ELSE 0 END,
                     -- A saved configuration is tried at once (the lanes are told).
                     next_attempt_at = NULL,
                     cursor = CASE WHEN excluded.enabled AND NOT webhooks.enabled
                                   THEN excluded.cursor ELSE webhooks.cursor END,
                     in_flight_through = CASE WHEN excluded.enabled AND NOT webhooks.enabled
                                   THEN NULL ELSE webhooks.in_flight_through END,
                     -- A stream that starts again, or goes to another destination, starts
                     -- its checkpoints again too: a checkpoint stream of its own.
                     checkpoint_cursor = CASE WHEN (excluded.enabled AND NOT webhooks.enabled)
                                                OR webhooks.destination_id != excluded.destination_id
                                   THEN NULL ELSE webhooks.checkpoint_cursor END,
                     checkpoint_stream = CASE WHEN (excluded.enabled AND NOT webhooks.enabled)
                                                OR webhooks.destination_id != excluded.destination_id
                                   THEN webhooks.checkpoint_stream + 1
                                   ELSE webhooks.checkpoint_stream END,
                     updated_at = excluded.updated_at",
            )
            .bind(scope)
            .bind(webhook.destination_id.to_string())
            .bind(webhook.enabled)
            .bind(webhook.updated_at.as_millis())
            .execute(&mut *tx)
            .await;
            match result {
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    tx.rollback().await;
                    return Err(StoreError::MissingReference("destination"));
                }
                other => other?,
            };
        }
        tx.commit().await?;
        Ok(())
    }

    pub async fn mark_in_flight(&self, scope: &Scope, through: i64) -> Result<bool> {
        self.write_position(Position::InFlight {
            scope: scope.clone(),
            through,
        })
        .await
    }

    pub async fn record_attempt(
        &self,
        scope: &Scope,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
        keep: u32,
    ) -> Result<bool> {
        self.write_position(Position::Attempt {
            scope: scope.clone(),
            attempt: attempt.clone(),
            outcome,
            keep,
        })
        .await
    }

    pub async fn log_attempt(
        &self,
        scope: &Scope,
        attempt: &DeliveryAttempt,
        keep: u32,
    ) -> Result<()> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        let scope_id = scope_id(&mut tx, scope).await?;
        append_to_log(&mut tx, scope_id, attempt, keep).await?;
        tx.commit().await
    }

    pub async fn list_attempts(
        &self,
        scope: &Scope,
        page: &PageQuery,
    ) -> Result<Vec<LoggedAttempt>> {
        // Newest first: the list's sort key is (-id, ""), so "after" means older.
        let (sql, bound) = match &page.seek {
            Seek::Forward(after) => (
                "SELECT a.* FROM delivery_attempts a JOIN scopes s ON s.id = a.scope_id
                 WHERE s.org_id = ?1 AND s.region = ?2 AND s.portal_id = ?3 AND a.id < ?4
                 ORDER BY a.id DESC LIMIT +?5",
                after
                    .as_ref()
                    .map_or(i64::MAX, |(key, _)| key.saturating_neg()),
            ),
            Seek::Backward((key, _)) => (
                "SELECT a.* FROM delivery_attempts a JOIN scopes s ON s.id = a.scope_id
                 WHERE s.org_id = ?1 AND s.region = ?2 AND s.portal_id = ?3 AND a.id > ?4
                 ORDER BY a.id ASC LIMIT +?5",
                key.saturating_neg(),
            ),
        };
        self.scope_page(sql, scope, bound, page, rows::attempt)
            .await
    }

    pub async fn rearm_webhook(&self, scope: &Scope, now: Timestamp) -> Result<bool> {
        let done = sqlx::query(
            "UPDATE webhooks SET status = 'active', next_attempt_at = ?1, updated_at = ?1
             WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?2 AND region = ?3 AND portal_id = ?4)",
        )
        .bind(now.as_millis())
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_webhooks(&self, scopes: &[Scope]) -> Result<u64> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        let mut deleted = 0;
        for scope in scopes {
            let done = sqlx::query(
                "DELETE FROM webhooks WHERE scope_id =
                     (SELECT id FROM scopes WHERE org_id = ? AND region = ? AND portal_id = ?)",
            )
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .execute(&mut *tx)
            .await?;
            deleted += done.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

/// A write to a webhook's delivery position, run by the writer task (see
/// [`super::events::run_writer`]).
pub enum Position {
    /// The last `seq` of the range about to be in flight (`Store::mark_in_flight`).
    InFlight { scope: Scope, through: i64 },
    /// A live delivery attempt (see `Store::record_attempt`), logged with the newest `keep`.
    Attempt {
        scope: Scope,
        attempt: DeliveryAttempt,
        outcome: AttemptOutcome,
        keep: u32,
    },
}

/// Applies `position`; `false` when the webhook no longer exists.
pub(super) async fn write_position(
    conn: &mut SqliteConnection,
    position: &Position,
) -> Result<bool> {
    let done = match position {
        Position::InFlight { scope, through } => {
            sqlx::query(
                "UPDATE webhooks SET in_flight_through = ?1
                 WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?2 AND region = ?3 AND portal_id = ?4)",
            )
            .bind(through)
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .execute(&mut *conn)
            .await?
        }
        Position::Attempt {
            scope,
            attempt,
            outcome,
            keep,
        } => {
            let (through, next_in_flight, checkpoints, next_at) = match *outcome {
                AttemptOutcome::Delivered {
                    through,
                    next_in_flight,
                    checkpoints,
                } => (Some(through), next_in_flight, checkpoints, None),
                AttemptOutcome::Failed { next_at } => {
                    (None, None, None, Some(next_at.as_millis()))
                }
            };
            let done = sqlx::query(
                "UPDATE webhooks SET
                     last_attempt_at = ?1, last_response_code = ?2, last_response_message = ?3,
                     status = CASE WHEN ?4 IS NULL THEN 'inactive' ELSE 'active' END,
                     consecutive_failures = CASE WHEN ?4 IS NULL THEN consecutive_failures + 1 ELSE 0 END,
                     next_attempt_at = ?9,
                     cursor = CASE WHEN ?4 IS NULL THEN cursor ELSE max(cursor, ?4) END,
                     in_flight_through = CASE WHEN ?4 IS NULL THEN in_flight_through ELSE ?8 END,
                     checkpoint_cursor = CASE WHEN ?10 IS NOT NULL AND checkpoint_stream = ?12
                                              AND checkpoint_cursor IS ?11
                                         THEN ?10 ELSE checkpoint_cursor END
                 WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?5 AND region = ?6 AND portal_id = ?7)
                 RETURNING scope_id",
            )
            .bind(attempt.at.as_millis())
            .bind(attempt.code.map(i64::from))
            .bind(&attempt.message)
            .bind(through)
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .bind(next_in_flight)
            .bind(next_at)
            .bind(checkpoints.map(|c| c.through))
            .bind(checkpoints.and_then(|c| c.from))
            .bind(checkpoints.map(|c| c.stream))
            .fetch_optional(&mut *conn)
            .await?;
            let Some(row) = done else {
                return Ok(false);
            };
            append_to_log(conn, row.try_get("scope_id")?, attempt, *keep).await?;
            return Ok(true);
        }
    };
    Ok(done.rows_affected() == 1)
}

/// Adds an attempt to a scope's delivery log, and forgets what is past the newest `keep`.
async fn append_to_log(
    conn: &mut SqliteConnection,
    scope_id: i64,
    attempt: &DeliveryAttempt,
    keep: u32,
) -> Result<()> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO delivery_attempts
             (scope_id, at, kind, endpoint, events, first_seq, last_seq, response_code, message, duration_ms, delivered)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?) RETURNING id",
    )
    .bind(scope_id)
    .bind(attempt.at.as_millis())
    .bind(attempt.kind.as_str())
    .bind(&attempt.endpoint)
    .bind(i64::from(attempt.events))
    .bind(attempt.first_seq)
    .bind(attempt.last_seq)
    .bind(attempt.code.map(i64::from))
    .bind(&attempt.message)
    .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
    .bind(attempt.delivered)
    .fetch_one(&mut *conn)
    .await?;
    // Ids grow, so the rows to forget are the scope's below the keep-th newest. One indexed
    // range delete per attempt keeps the log's size fixed without a sweeper.
    sqlx::query(
        "DELETE FROM delivery_attempts WHERE scope_id = ?1 AND id <= coalesce(
             (SELECT id FROM delivery_attempts WHERE scope_id = ?1 AND id <= ?2
              ORDER BY id DESC LIMIT 1 OFFSET ?3), -1)",
    )
    .bind(scope_id)
    .bind(id)
    .bind(i64::from(keep))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

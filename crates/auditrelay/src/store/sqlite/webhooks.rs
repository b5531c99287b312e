//! Webhooks in SQLite: one row per configured webhook, keyed by its scope.

use auditrelay_core::Timestamp;
use sqlx::Row;
use sqlx::sqlite::{SqliteConnection, SqliteRow};
use uuid::Uuid;

use super::destinations::save_destination;
use super::events::scope_id;
use super::tx::PoolTx;
use super::{SqliteStore, portal_key, scope_from_row};
use crate::store::{
    AttemptOutcome, Destination, LastAttempt, Result, Scope, StoreError, Webhook, WebhookConfig,
    WebhookStatus,
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
        row.as_ref().map(webhook_from_row).transpose()
    }

    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        let rows = sqlx::query(
            "SELECT w.*, s.org_id, s.region, s.portal_id
             FROM webhooks w JOIN scopes s ON s.id = w.scope_id ORDER BY w.scope_id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(webhook_from_row).collect()
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
            // ingested while it was off are replay's (Decision 2), and a rebind or a re-arm of
            // an enabled webhook must not skip what it has yet to deliver.
            let result = sqlx::query(
                "INSERT INTO webhooks (scope_id, destination_id, enabled, status, cursor, updated_at)
                 VALUES (?1, ?2, ?3, 'active', (SELECT coalesce(max(seq), 0) FROM events), ?4)
                 ON CONFLICT (scope_id) DO UPDATE SET
                     destination_id = excluded.destination_id,
                     enabled = excluded.enabled,
                     status = 'active',
                     cursor = CASE WHEN excluded.enabled AND NOT webhooks.enabled
                                   THEN excluded.cursor ELSE webhooks.cursor END,
                     in_flight_through = CASE WHEN excluded.enabled AND NOT webhooks.enabled
                                   THEN NULL ELSE webhooks.in_flight_through END,
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
        attempt: &LastAttempt,
        outcome: AttemptOutcome,
    ) -> Result<bool> {
        self.write_position(Position::Attempt {
            scope: scope.clone(),
            attempt: attempt.clone(),
            outcome,
        })
        .await
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
        self.backlogs.forget(|s| scopes.contains(s));
        Ok(deleted)
    }
}

fn webhook_from_row(row: &SqliteRow) -> Result<Webhook> {
    let corrupt = |what: &str| StoreError::Corrupt(format!("invalid webhook {what}"));
    let destination: String = row.try_get("destination_id")?;
    let status: String = row.try_get("status")?;
    let attempt_at: Option<i64> = row.try_get("last_attempt_at")?;
    let code: Option<i64> = row.try_get("last_response_code")?;
    let message: Option<String> = row.try_get("last_response_message")?;
    Ok(Webhook {
        scope: scope_from_row(row, "webhook")?,
        destination_id: Uuid::try_parse(&destination).map_err(|_| corrupt("destination id"))?,
        enabled: row.try_get("enabled")?,
        status: WebhookStatus::parse(&status).ok_or_else(|| corrupt("status"))?,
        cursor: row.try_get("cursor")?,
        in_flight_through: row.try_get("in_flight_through")?,
        last_attempt: attempt_at.map(|at| LastAttempt {
            at: Timestamp::from_millis(at),
            code: code.and_then(|c| u16::try_from(c).ok()),
            message: message.unwrap_or_default(),
        }),
        updated_at: Timestamp::from_millis(row.try_get("updated_at")?),
    })
}

/// A write to a webhook's delivery position, run by the writer task (see
/// [`super::events::run_writer`]).
pub enum Position {
    /// The last `seq` of the batch about to be sent.
    InFlight { scope: Scope, through: i64 },
    /// A batch's final attempt (see `Store::record_attempt`).
    Attempt {
        scope: Scope,
        attempt: LastAttempt,
        outcome: AttemptOutcome,
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
        } => {
            let (through, next_in_flight) = match *outcome {
                AttemptOutcome::Delivered {
                    through,
                    next_in_flight,
                } => (Some(through), next_in_flight),
                AttemptOutcome::Failed => (None, None),
            };
            sqlx::query(
                "UPDATE webhooks SET
                     last_attempt_at = ?1, last_response_code = ?2, last_response_message = ?3,
                     status = CASE WHEN ?4 IS NULL THEN 'inactive' ELSE 'active' END,
                     cursor = CASE WHEN ?4 IS NULL THEN cursor ELSE max(cursor, ?4) END,
                     in_flight_through = CASE WHEN ?4 IS NULL THEN in_flight_through ELSE ?8 END
                 WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?5 AND region = ?6 AND portal_id = ?7)",
            )
            .bind(attempt.at.as_millis())
            .bind(attempt.code.map(i64::from))
            .bind(&attempt.message)
            .bind(through)
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .bind(next_in_flight)
            .execute(&mut *conn)
            .await?
        }
    };
    Ok(done.rows_affected() == 1)
}

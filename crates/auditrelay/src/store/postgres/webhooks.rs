//! Webhooks on PostgreSQL: one row per configured webhook, keyed by its scope, and each scope's
//! delivery log.
//!
//! SQLite writes delivery positions on its one writer connection; here they go through the pool,
//! each in its own statement or transaction, and several nodes may write at once. What the one
//! writer gave for free is kept by row locks, always taken in this order so that no two
//! transactions wait on each other in a circle: a scope's row (configuration only, sorted by
//! id), then webhook rows (sorted by scope id), then the delivery log.
//!
//! - A webhook's row is the lock of its scope's delivery log: every append to the log holds it
//!   (`record_attempt` by its update, `log_attempt` by `FOR NO KEY UPDATE`), so a scope's log
//!   ids are drawn in commit order and the trim that follows sees every row before its own.
//! - Live delivery never takes a scope's row: appends hold it while they insert, and a lane's
//!   next batch waits on the position it writes (the reason SQLite writes positions between
//!   group commits, `sqlite/events.rs`).

use auditrelay_core::Timestamp;
use sqlx::postgres::PgConnection;

use super::destinations::save_destination;
use super::leases::check_fence;
use super::tx::PoolTx;
use super::{PgStore, portal_key};
use crate::store::rows;
use crate::store::{
    AttemptOutcome, DeliveryAttempt, Destination, Fence, LoggedAttempt, PageQuery, Result, Scope,
    Seek, StoreError, Webhook, WebhookConfig,
};

impl PgStore {
    pub async fn get_webhook(&self, scope: &Scope) -> Result<Option<Webhook>> {
        let row = sqlx::query(
            "SELECT w.*, s.org_id, s.region, s.portal_id
             FROM webhooks w JOIN scopes s ON s.id = w.scope_id
             WHERE s.org_id = $1 AND s.region = $2 AND s.portal_id = $3",
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
        // Scope rows are made (and committed) before the transaction, as appends make them: one
        // made inside it would be held while this waits for the other scopes' locks.
        let mut configs = Vec::with_capacity(webhooks.len());
        for webhook in webhooks {
            configs.push((self.scope_id(&webhook.scope).await?, webhook));
        }
        // Webhook rows are taken in scope order, as `delete_webhooks` takes them. The sort is
        // stable: a scope configured twice still ends with its last configuration.
        configs.sort_by_key(|(scope_id, _)| *scope_id);
        let mut scope_ids: Vec<i64> = configs.iter().map(|(scope_id, _)| *scope_id).collect();
        scope_ids.dedup();

        let mut tx = PoolTx::begin(&self.pool).await?;
        // A webhook that turns on starts at the newest event (below), which must be newest for
        // good: an append to its scope that drew a lower `seq` and commits after this read
        // would sit behind the cursor, never delivered live. Appends hold their scope's row from
        // before they draw a `seq` until they commit (DECISIONS.md S19), so once this holds the
        // rows, every `seq` drawn in these scopes is committed, and every later one is drawn
        // after this commits, above anything read here. Taken before the destinations are
        // saved, which touch webhook rows: a scope's row comes before its webhook's.
        sqlx::query("SELECT id FROM scopes WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&scope_ids)
            .fetch_all(&mut *tx)
            .await?;
        for destination in managed {
            save_destination(&mut tx, destination).await?;
        }
        for (scope_id, webhook) in configs {
            // The cursor moves to the newest event only when the webhook turns on: events
            // ingested while it was off are replay's (DECISIONS.md D2), and a rebind or a re-arm
            // of an enabled webhook must not skip what it has yet to deliver. The newest `seq`
            // of all scopes, as on SQLite: its cursor is only compared with this scope's, none
            // of which can commit below it while the row is held. The statement's snapshot is
            // taken after the lock above was granted, so it holds the appends that were waited on.
            let result = sqlx::query(
                "INSERT INTO webhooks (scope_id, destination_id, enabled, status, cursor, updated_at)
                 VALUES ($1, $2, $3, 'active', (SELECT coalesce(max(seq), 0) FROM events), $4)
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
                                                OR webhooks.destination_id <> excluded.destination_id
                                   THEN NULL ELSE webhooks.checkpoint_cursor END,
                     checkpoint_stream = CASE WHEN (excluded.enabled AND NOT webhooks.enabled)
                                                OR webhooks.destination_id <> excluded.destination_id
                                   THEN webhooks.checkpoint_stream + 1
                                   ELSE webhooks.checkpoint_stream END,
                     updated_at = excluded.updated_at",
            )
            .bind(scope_id)
            .bind(webhook.destination_id.to_string())
            .bind(webhook.enabled)
            .bind(webhook.updated_at.as_millis())
            .execute(&mut *tx)
            .await;
            match result {
                // Dropping `tx` rolls back the destinations saved above.
                Err(sqlx::Error::Database(e)) if e.is_foreign_key_violation() => {
                    return Err(StoreError::MissingReference("destination"));
                }
                other => other?,
            };
        }
        tx.commit().await
    }

    pub async fn mark_in_flight(&self, fence: &Fence, scope: &Scope, through: i64) -> Result<bool> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(false);
        };
        let mut tx = PoolTx::begin(&self.pool).await?;
        check_fence(&mut tx, fence).await?;
        let done = sqlx::query("UPDATE webhooks SET in_flight_through = $1 WHERE scope_id = $2")
            .bind(through)
            .bind(scope_id)
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn record_attempt(
        &self,
        fence: &Fence,
        scope: &Scope,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
        keep: u32,
    ) -> Result<bool> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(false);
        };
        let (through, next_in_flight, checkpoints, next_at) = match outcome {
            AttemptOutcome::Delivered {
                through,
                next_in_flight,
                checkpoints,
            } => (Some(through), next_in_flight, checkpoints, None),
            AttemptOutcome::Failed { next_at } => (None, None, None, Some(next_at.as_millis())),
        };
        let mut tx = PoolTx::begin(&self.pool).await?;
        check_fence(&mut tx, fence).await?;
        // The update holds the webhook's row until the commit: the delivery log's lock (module
        // doc). It re-reads the row if another transaction changed it first, so `GREATEST`
        // compares with the latest cursor, which therefore never moves back.
        let done = sqlx::query(
            "UPDATE webhooks SET
                 last_attempt_at = $1, last_response_code = $2, last_response_message = $3,
                 status = CASE WHEN $4::bigint IS NULL THEN 'inactive' ELSE 'active' END,
                 consecutive_failures = CASE WHEN $4::bigint IS NULL
                                        THEN consecutive_failures + 1 ELSE 0 END,
                 next_attempt_at = $5,
                 cursor = CASE WHEN $4::bigint IS NULL THEN cursor ELSE GREATEST(cursor, $4) END,
                 in_flight_through = CASE WHEN $4::bigint IS NULL THEN in_flight_through ELSE $6 END,
                 checkpoint_cursor = CASE WHEN $8::bigint IS NOT NULL
                                               AND checkpoint_stream = $10::bigint
                                               AND checkpoint_cursor IS NOT DISTINCT FROM $9::bigint
                                     THEN $8 ELSE checkpoint_cursor END
             WHERE scope_id = $7",
        )
        .bind(attempt.at.as_millis())
        .bind(attempt.code.map(i32::from))
        .bind(super::storable(&attempt.message))
        .bind(through)
        .bind(next_at)
        .bind(next_in_flight)
        .bind(scope_id)
        .bind(checkpoints.map(|c| c.through))
        .bind(checkpoints.and_then(|c| c.from))
        .bind(checkpoints.map(|c| c.stream))
        .execute(&mut *tx)
        .await?;
        if done.rows_affected() == 0 {
            // Nothing was written; committing hands the connection back to the pool.
            tx.commit().await?;
            return Ok(false);
        }
        append_to_log(&mut tx, scope_id, attempt, keep).await?;
        tx.commit().await?;
        Ok(true)
    }

    pub async fn log_attempt(
        &self,
        fence: &Fence,
        scope: &Scope,
        attempt: &DeliveryAttempt,
        keep: u32,
    ) -> Result<()> {
        let scope_id = self.scope_id(scope).await?;
        let mut tx = PoolTx::begin(&self.pool).await?;
        check_fence(&mut tx, fence).await?;
        // The delivery log's lock (module doc), as `record_attempt` holds it. A scope without a
        // webhook (deleted while a replay was sending) has nothing to lock; its log is still
        // trimmed, if not exactly while two appends to it overlap (see `append_to_log`).
        sqlx::query("SELECT scope_id FROM webhooks WHERE scope_id = $1 FOR NO KEY UPDATE")
            .bind(scope_id)
            .fetch_optional(&mut *tx)
            .await?;
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
                "SELECT * FROM delivery_attempts WHERE scope_id = $1 AND id < $2
                 ORDER BY id DESC LIMIT $3",
                after
                    .as_ref()
                    .map_or(i64::MAX, |(key, _)| key.saturating_neg()),
            ),
            Seek::Backward((key, _)) => (
                "SELECT * FROM delivery_attempts WHERE scope_id = $1 AND id > $2
                 ORDER BY id ASC LIMIT $3",
                key.saturating_neg(),
            ),
        };
        self.scope_page(sql, scope, bound, page, rows::attempt)
            .await
    }

    pub async fn rearm_webhook(&self, scope: &Scope, now: Timestamp) -> Result<bool> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(false);
        };
        let done = sqlx::query(
            "UPDATE webhooks SET status = 'active', next_attempt_at = $1, updated_at = $1
             WHERE scope_id = $2",
        )
        .bind(now.as_millis())
        .bind(scope_id)
        .execute(&self.pool)
        .await?;
        Ok(done.rows_affected() == 1)
    }

    pub async fn delete_webhooks(&self, scopes: &[Scope]) -> Result<u64> {
        let mut scope_ids = Vec::with_capacity(scopes.len());
        for scope in scopes {
            // A scope without a row has no webhook to delete.
            if let Some(scope_id) = self.existing_scope_id(scope).await? {
                scope_ids.push(scope_id);
            }
        }
        // In scope order, as `configure_webhooks` takes webhook rows. A scope named twice was
        // counted once on SQLite too: its second delete found nothing.
        scope_ids.sort_unstable();
        scope_ids.dedup();
        let mut tx = PoolTx::begin(&self.pool).await?;
        let mut deleted = 0;
        for scope_id in scope_ids {
            let done = sqlx::query("DELETE FROM webhooks WHERE scope_id = $1")
                .bind(scope_id)
                .execute(&mut *tx)
                .await?;
            deleted += done.rows_affected();
        }
        tx.commit().await?;
        Ok(deleted)
    }
}

/// Adds an attempt to a scope's delivery log, and forgets what is past the newest `keep`. The
/// caller holds the scope's webhook row when it has one (module doc).
async fn append_to_log(
    conn: &mut PgConnection,
    scope_id: i64,
    attempt: &DeliveryAttempt,
    keep: u32,
) -> Result<()> {
    let id: i64 = sqlx::query_scalar(
        "INSERT INTO delivery_attempts
             (scope_id, at, kind, endpoint, events, first_seq, last_seq, response_code, message,
              duration_ms, delivered)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id",
    )
    .bind(scope_id)
    .bind(attempt.at.as_millis())
    .bind(attempt.kind.as_str())
    .bind(&attempt.endpoint)
    .bind(i64::from(attempt.events))
    .bind(attempt.first_seq)
    .bind(attempt.last_seq)
    .bind(attempt.code.map(i32::from))
    .bind(super::storable(&attempt.message))
    .bind(i64::try_from(attempt.duration_ms).unwrap_or(i64::MAX))
    .bind(attempt.delivered)
    .fetch_one(&mut *conn)
    .await?;
    // Ids grow, so the rows to forget are the scope's below the keep-th newest. One indexed
    // range delete per attempt keeps the log's size fixed without a sweeper. Under the webhook's
    // row, this statement's snapshot holds every earlier append to the scope, so the count is
    // exact. Without it (no webhook), an append running alongside is not seen and one row too
    // many may stay until the next trim; none of the newest `keep` is ever deleted, as a
    // snapshot never shows more rows than there are.
    sqlx::query(
        "DELETE FROM delivery_attempts WHERE scope_id = $1 AND id <= coalesce(
             (SELECT id FROM delivery_attempts WHERE scope_id = $1 AND id <= $2
              ORDER BY id DESC LIMIT 1 OFFSET $3), -1)",
    )
    .bind(scope_id)
    .bind(id)
    .bind(i64::from(keep))
    .execute(&mut *conn)
    .await?;
    Ok(())
}

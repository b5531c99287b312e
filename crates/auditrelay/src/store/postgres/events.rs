//! Events on PostgreSQL: appends from any number of nodes, read back in an order that a
//! delivery cursor can follow without skipping one (DECISIONS.md S19).
//!
//! The rule: in each scope, `seq` order is commit order. An append locks the rows of the scopes
//! it writes to (`FOR NO KEY UPDATE`, in id order, so two appends never wait on each other in a
//! circle) before it draws its first `seq`, and holds them until it commits. PostgreSQL makes a
//! transaction visible before it releases its locks, and `events_seq` hands out increasing
//! values (its cache is 1). So when an append to a scope becomes visible, every append to that
//! scope that drew a lower `seq` is already visible or was rolled back, and a reader that has
//! seen `seq` s in a scope will never later find a smaller one there: a cursor at s is safe.
//!
//! Without the lock, two nodes appending to one scope could commit 101 before 100, and a lane
//! that read 101 would move its cursor past 100 for good.

use std::collections::HashMap;
use std::sync::Mutex;

use auditrelay_core::{Event, Timestamp, stored};
use sqlx::Row;
use sqlx::postgres::{PgPool, PgRow};

use super::PgStore;
use super::tx::PoolTx;
use crate::store::{Result, Scope, StoreError, StoredEvent};

impl PgStore {
    /// Stores `events` in one transaction, in their order; returns the `seq` of the last one
    /// (`None` for no events). `Ok` means committed: durable and visible to every node.
    pub async fn append_events(&self, events: &[Event]) -> Result<Option<i64>> {
        if events.is_empty() {
            return Ok(None);
        }
        let mut scope_ids = Vec::with_capacity(events.len());
        let mut ts = Vec::with_capacity(events.len());
        let mut kinds = Vec::with_capacity(events.len());
        let mut bodies = Vec::with_capacity(events.len());
        for event in events {
            scope_ids.push(self.scopes.id(&self.pool, &Scope::of(event)).await?);
            ts.push(event.ts.as_millis());
            kinds.push(kind_column(event));
            let mut body = Vec::with_capacity(160);
            stored::encode_body(event, &mut body);
            bodies.push(body);
        }
        let mut locked = scope_ids.clone();
        locked.sort_unstable();
        locked.dedup();

        let mut tx = PoolTx::begin(&self.pool).await?;
        sqlx::query("SELECT id FROM scopes WHERE id = ANY($1) ORDER BY id FOR NO KEY UPDATE")
            .bind(&locked)
            .fetch_all(&mut *tx)
            .await?;
        // `unnest` yields the rows in the arrays' order, and `seq`'s default draws for each
        // row in that order: the request's order is the ingest order.
        let last: i64 = sqlx::query_scalar(
            "WITH appended AS (
                 INSERT INTO events (scope_id, ts, kind, body)
                 SELECT * FROM unnest($1::bigint[], $2::bigint[], $3::smallint[], $4::bytea[])
                 RETURNING seq
             )
             SELECT max(seq) FROM appended",
        )
        .bind(&scope_ids)
        .bind(&ts)
        .bind(&kinds)
        .bind(&bodies)
        .fetch_one(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(Some(last))
    }

    /// Up to `limit` events of `scope` after `after` and up to `through` (when given), in
    /// `seq` order: what a delivery cursor at `after` sends next.
    pub async fn events_to_deliver(
        &self,
        scope: &Scope,
        after: i64,
        through: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let Some(scope_id) = self.scopes.existing(&self.pool, scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT seq, ts, kind, body FROM events
             WHERE scope_id = $1 AND seq > $2 AND seq <= $3
             ORDER BY seq LIMIT $4",
        )
        .bind(scope_id)
        .bind(after)
        .bind(through.unwrap_or(i64::MAX))
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| decode_row(scope, row)).collect()
    }
}

impl Scope {
    fn of(event: &Event) -> Self {
        Self {
            org_id: event.org_id,
            region: event.region.clone(),
            portal_id: event.portal_id,
        }
    }
}

fn kind_column(event: &Event) -> i16 {
    i16::try_from(stored::kind_code(event.event_type())).expect("kind codes are small")
}

fn decode_row(scope: &Scope, row: &PgRow) -> Result<StoredEvent> {
    let seq: i64 = row.try_get("seq")?;
    let kind: i16 = row.try_get("kind")?;
    let columns = stored::Row {
        org_id: scope.org_id,
        region: &scope.region,
        portal_id: scope.portal_id,
        ts: Timestamp::from_millis(row.try_get("ts")?),
        kind: i64::from(kind),
    };
    let body: &[u8] = row.try_get("body")?;
    let event = stored::decode_event(columns, body)
        .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?;
    Ok(StoredEvent { seq, event })
}

/// Scope ids, remembered once known: a scope's row is never deleted or renumbered.
#[derive(Default)]
pub(super) struct ScopeIds(Mutex<HashMap<Scope, i64>>);

impl ScopeIds {
    fn known(&self, scope: &Scope) -> Option<i64> {
        self.0
            .lock()
            .expect("scope ids poisoned")
            .get(scope)
            .copied()
    }

    fn remember(&self, scope: &Scope, id: i64) {
        self.0
            .lock()
            .expect("scope ids poisoned")
            .insert(scope.clone(), id);
    }

    /// The id of `scope`, creating its row on first use. The row is created and committed on
    /// its own, before any append locks it: created inside an append, a new scope's row would be
    /// held by that append while it waits for another's lock, which could wait for it in turn.
    async fn id(&self, pool: &PgPool, scope: &Scope) -> Result<i64> {
        if let Some(id) = self.known(scope) {
            return Ok(id);
        }
        sqlx::query(
            "INSERT INTO scopes (org_id, region, portal_id) VALUES ($1, $2, $3)
             ON CONFLICT DO NOTHING",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .execute(pool)
        .await?;
        let id = self
            .existing(pool, scope)
            .await?
            .ok_or_else(|| StoreError::Corrupt("a scope vanished as it was made".into()))?;
        Ok(id)
    }

    /// The id of `scope` if it has a row (it has events, or had).
    async fn existing(&self, pool: &PgPool, scope: &Scope) -> Result<Option<i64>> {
        if let Some(id) = self.known(scope) {
            return Ok(Some(id));
        }
        let id: Option<i64> = sqlx::query_scalar(
            "SELECT id FROM scopes WHERE org_id = $1 AND region = $2 AND portal_id = $3",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_optional(pool)
        .await?;
        if let Some(id) = id {
            self.remember(scope, id);
        }
        Ok(id)
    }
}

fn portal_key(scope: &Scope) -> String {
    scope.portal_id.map(|p| p.to_string()).unwrap_or_default()
}

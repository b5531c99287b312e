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

use super::tx::PoolTx;
use super::{PgStore, portal_key};
use crate::store::backlog::{BUCKET_BITS, Bucket, Pruned, Span};
use crate::store::{EventQuery, Result, Scope, StoreError, StoredEvent, rows};

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
        // Consecutive events nearly always share a scope; only a change needs a lookup.
        let mut last: Option<(&Event, i64)> = None;
        for event in events {
            let scope_id = match last {
                Some((prev, id))
                    if prev.org_id == event.org_id
                        && prev.portal_id == event.portal_id
                        && prev.region == event.region =>
                {
                    id
                }
                _ => self.scope_id(&Scope::of(event)).await?,
            };
            last = Some((event, scope_id));
            scope_ids.push(scope_id);
            ts.push(event.ts.as_millis());
            kinds.push(kind_column(event));
            let mut body = Vec::with_capacity(160);
            stored::encode_body(event, &mut body);
            bodies.push(body);
        }
        let mut locked = scope_ids.clone();
        locked.sort_unstable();
        locked.dedup();

        let started = std::time::Instant::now();
        let mut tx = PoolTx::begin(&self.pool).await?;
        // Acknowledged means flushed to the WAL, whatever the role's or database's default:
        // with `off`, a server crash would lose events already answered with 202.
        sqlx::query("SET LOCAL synchronous_commit = on")
            .execute(&mut *tx)
            .await?;
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
        // The transaction's id, to ask about it if the answer to `COMMIT` is lost.
        let xid: String = sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(&mut *tx)
            .await?;
        match tx.commit().await {
            Ok(()) => self.notify_appended(last),
            // The connection failed around `COMMIT`: the append may have committed. Telling
            // the client "not stored" then would have it send the events again, as new ones
            // (new `seq`s, new ids): ask the database what became of the transaction.
            Err(e @ StoreError::Unavailable { .. }) => match self.commit_outcome(&xid).await {
                Some(true) => self.notify_appended(last),
                Some(false) | None => return Err(e),
            },
            Err(e) => return Err(e),
        }
        // The lock wait included: it is what an append costs with several nodes.
        metrics::histogram!("auditrelay_store_commit_seconds").record(started.elapsed());
        metrics::histogram!("auditrelay_store_commit_events").record(events.len() as f64);
        Ok(Some(last))
    }

    /// Tells every listening node of an append that committed, in the background. Not inside
    /// the append: a notifying transaction holds a lock every notifying commit of the cluster
    /// shares until its commit is flushed, which would make appends to different scopes commit
    /// one at a time; and not awaited by it, since even on its own that flush is one at a time
    /// across the cluster (without `synchronous_commit`, as nothing rides on it). Lost (a crash
    /// in between), it only delays a wake-up: every node also looks for appends every second.
    fn notify_appended(&self, last: i64) {
        let pool = self.pool.clone();
        tokio::spawn(async move {
            let _ = sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "BEGIN; SET LOCAL synchronous_commit = off; \
                 NOTIFY {}, '{last}'; COMMIT",
                super::APPENDED
            )))
            .execute(&pool)
            .await;
        });
    }

    /// Whether the transaction `xid` committed (`Some(true)`) or rolled back (`Some(false)`),
    /// asked on a new connection for up to 10 s; `None` when that could not be learned (the
    /// database stays out of reach, or the transaction is too old for PostgreSQL to remember).
    pub async fn commit_outcome(&self, xid: &str) -> Option<bool> {
        let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(10);
        while tokio::time::Instant::now() < deadline {
            let status: std::result::Result<Option<String>, _> =
                sqlx::query_scalar("SELECT pg_xact_status($1::xid8)")
                    .bind(xid)
                    .fetch_one(&self.pool)
                    .await;
            match status.as_ref().map(|s| s.as_deref()) {
                Ok(Some("committed")) => return Some(true),
                Ok(Some("aborted")) => return Some(false),
                // Gone from the commit log: no answer to give.
                Ok(None) => return None,
                // Still in progress (its backend has not noticed the lost connection yet), or
                // the database is out of reach for now.
                _ => tokio::time::sleep(std::time::Duration::from_millis(200)).await,
            }
        }
        None
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
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
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

    /// Up to `q.limit` events of the query's scope in `(ts, seq)` order, after `q.after`.
    pub async fn list_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let scope = q.scope();
        let Some(scope_id) = self.existing_scope_id(&scope).await? else {
            return Ok(Vec::new());
        };
        let (after_ts, after_seq) = q.after.unwrap_or((i64::MIN, i64::MIN));
        // The row comparison is SQLite's `(ts > ?6 OR seq > ?7)` given `ts >= ?6`, in a form
        // PostgreSQL can seek with in `events_scope_ts (scope_id, ts, seq)`. The optional
        // filters are typed: an untyped NULL parameter has no type for PostgreSQL to infer.
        let rows = sqlx::query(
            "SELECT seq, ts, kind, body FROM events
             WHERE scope_id = $1 AND ts >= GREATEST($2, $6) AND ts <= $3
               AND ($4::smallint IS NULL OR kind = $4)
               AND (ts, seq) > ($6, $7)
               AND ($8::bigint IS NULL OR seq <= $8)
             ORDER BY ts, seq LIMIT $5",
        )
        .bind(scope_id)
        .bind(q.ts_from.as_millis())
        .bind(q.ts_to.as_millis())
        .bind(kind_param(q))
        .bind(i64::from(q.limit))
        .bind(after_ts)
        .bind(after_seq)
        .bind(q.through_seq)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| decode_row(&scope, row)).collect()
    }

    /// The last `q.limit` events before `(ts ms, seq)`, returned oldest first.
    pub async fn list_events_before(
        &self,
        q: &EventQuery,
        (before_ts, before_seq): (i64, i64),
    ) -> Result<Vec<StoredEvent>> {
        let scope = q.scope();
        let Some(scope_id) = self.existing_scope_id(&scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT seq, ts, kind, body FROM events
             WHERE scope_id = $1 AND ts >= $2 AND ts <= LEAST($3, $6)
               AND ($4::smallint IS NULL OR kind = $4)
               AND (ts, seq) < ($6, $7)
               AND ($8::bigint IS NULL OR seq <= $8)
             ORDER BY ts DESC, seq DESC LIMIT $5",
        )
        .bind(scope_id)
        .bind(q.ts_from.as_millis())
        .bind(q.ts_to.as_millis())
        .bind(kind_param(q))
        .bind(i64::from(q.limit))
        .bind(before_ts)
        .bind(before_seq)
        .bind(q.through_seq)
        .fetch_all(&self.pool)
        .await?;
        let mut events = rows
            .iter()
            .map(|row| decode_row(&scope, row))
            .collect::<Result<Vec<_>>>()?;
        events.reverse();
        Ok(events)
    }

    pub async fn count_events(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    /// The events of `scope` with these `seq`s, in the order asked (a missing one is left out).
    pub async fn events_by_seq(&self, scope: &Scope, seqs: &[i64]) -> Result<Vec<StoredEvent>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        // One round trip rather than SQLite's one lookup per `seq` (a network hop each here);
        // the ordinality keeps the order asked, and a repeated `seq` is repeated, as there.
        let rows = sqlx::query(
            "SELECT e.seq, e.ts, e.kind, e.body
             FROM unnest($2::bigint[]) WITH ORDINALITY AS asked (seq, n)
             JOIN events e ON e.seq = asked.seq AND e.scope_id = $1
             ORDER BY asked.n",
        )
        .bind(scope_id)
        .bind(seqs)
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(|row| decode_row(scope, row)).collect()
    }

    /// The newest `seq` of `scope`, 0 when it has no events: a backlog summary's head.
    pub async fn scope_head(&self, scope: &Scope) -> Result<i64> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(0);
        };
        let head: i64 =
            sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events WHERE scope_id = $1")
                .bind(scope_id)
                .fetch_one(&self.pool)
                .await?;
        Ok(head)
    }

    /// A scope's events in `(after, through]`, summed per backlog bucket.
    pub async fn backlog_buckets(
        &self,
        scope: &Scope,
        (after, through): Span,
    ) -> Result<Vec<Bucket>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        // `bigint >> integer`: the shift is bound as an int4.
        let rows = sqlx::query(
            "SELECT seq >> $4 AS bucket, count(*) AS n, min(ts) AS oldest FROM events
             WHERE scope_id = $1 AND seq > $2 AND seq <= $3
             GROUP BY bucket",
        )
        .bind(scope_id)
        .bind(after)
        .bind(through)
        .bind(BUCKET_SHIFT)
        .fetch_all(&self.pool)
        .await?;
        rows.iter()
            .map(|row| {
                Ok(Bucket {
                    key: row.try_get("bucket")?,
                    count: row.try_get::<i64, _>("n")? as u64,
                    oldest: row.try_get("oldest")?,
                })
            })
            .collect()
    }

    /// Deletes up to `chunk` events older than `cutoff`, scope by scope; returns how many.
    pub async fn prune_events(&self, cutoff: Timestamp, chunk: u32) -> Result<u64> {
        let scopes: Vec<i64> = sqlx::query_scalar("SELECT id FROM scopes")
            .fetch_all(&self.pool)
            .await?;
        let mut deleted = 0;
        for scope in scopes {
            let room = u64::from(chunk) - deleted;
            if room == 0 {
                break;
            }
            let mut tx = PoolTx::begin(&self.pool).await?;
            // The newest row of all is kept until a newer one arrives, even past its window, as
            // on SQLite (where deleting it would hand its `seq` out again; `events_seq` never
            // does, but the rule stays the same on both stores).
            //
            // `SKIP LOCKED`: two nodes pruning at once take different rows instead of waiting
            // on each other's, which, locking in plan order, could deadlock. A skipped row is
            // the other node's to delete (or the next prune's, if it rolls back).
            let done = sqlx::query(
                "DELETE FROM events WHERE seq IN
                   (SELECT seq FROM events WHERE scope_id = $1 AND ts < $2
                      AND seq < (SELECT max(seq) FROM events)
                      AND seq <= (SELECT coalesce(max(last_seq), 0) FROM logs WHERE scope_id = $1)
                    LIMIT $3
                    FOR UPDATE SKIP LOCKED)",
            )
            .bind(scope)
            .bind(cutoff.as_millis())
            .bind(room as i64)
            .execute(&mut *tx)
            .await?;
            if done.rows_affected() > 0 {
                // In the delete's transaction: every node's backlog summaries read `pruned`,
                // and must see the prune no later than the delete itself (a backlog measured
                // in between would keep counting what is gone).
                sqlx::query(
                    "UPDATE pruned SET deletes = deletes + 1, cutoff = GREATEST(cutoff, $1)",
                )
                .bind(cutoff.as_millis())
                .execute(&mut *tx)
                .await?;
                // A refused event that is gone can no longer be sent again.
                sqlx::query(
                    "DELETE FROM refused_events WHERE scope_id = $1 AND NOT EXISTS
                       (SELECT 1 FROM events WHERE events.seq = refused_events.seq)",
                )
                .bind(scope)
                .execute(&mut *tx)
                .await?;
            }
            tx.commit().await?;
            deleted += done.rows_affected();
        }
        Ok(deleted)
    }

    /// What retention has deleted so far, on any node.
    pub async fn pruned(&self) -> Result<Pruned> {
        let (deletes, before): (i64, i64) = sqlx::query_as("SELECT deletes, cutoff FROM pruned")
            .fetch_one(&self.pool)
            .await?;
        Ok(Pruned {
            deletes: deletes as u64,
            before,
        })
    }
}

/// [`BUCKET_BITS`] as PostgreSQL's `>>` takes it.
const BUCKET_SHIFT: i32 = BUCKET_BITS as i32;

/// The query's `event_type` as the `kind` column holds it.
fn kind_param(q: &EventQuery) -> Option<i16> {
    q.event_type
        .map(|t| i16::try_from(stored::kind_code(t)).expect("kind codes are small"))
}

fn kind_column(event: &Event) -> i16 {
    i16::try_from(stored::kind_code(event.event_type())).expect("kind codes are small")
}

fn decode_row(scope: &Scope, row: &PgRow) -> Result<StoredEvent> {
    let kind: i16 = row.try_get("kind")?;
    let body: &[u8] = row.try_get("body")?;
    rows::event(
        scope,
        row.try_get("seq")?,
        row.try_get("ts")?,
        i64::from(kind),
        body,
    )
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
    pub(super) async fn id(&self, pool: &PgPool, scope: &Scope) -> Result<i64> {
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
    pub(super) async fn existing(&self, pool: &PgPool, scope: &Scope) -> Result<Option<i64>> {
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

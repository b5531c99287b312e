//! Events in SQLite: the group-commit writer (and its connection, replaced whenever its state
//! is in doubt), range reads and retention deletes.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::stored::{encode_body, kind_code};
use auditrelay_core::{Event, Timestamp};
use sqlx::sqlite::{SqliteConnectOptions, SqliteConnection, SqliteRow};
use sqlx::{ConnectOptions, Connection, Row};
use tokio::sync::{mpsc, oneshot};
use tokio::task::JoinHandle;

use super::inserts::{self, MultiRow};
use super::log::LogStep;
use super::packed::{self, packed};
use super::webhooks::{Position, write_position};
use super::{SqliteStore, portal_key, tx};
use crate::clock;
use crate::store::backlog::{BUCKET_BITS, Bucket, Span};
use crate::store::commits::Commits;
use crate::store::health::Health;
use crate::store::rows;
use crate::store::{EventQuery, Result, Scope, StoreError, StoredCheckpoint, StoredEvent};

/// One append request: its events, and where to say that they are committed.
pub struct WriteJob {
    events: Vec<Event>,
    done: oneshot::Sender<Result<()>>,
}

/// A small write that goes ahead of queued appends, and where to say how it went.
pub struct SideJob {
    write: SideWrite,
    done: oneshot::Sender<Result<bool>>,
}

/// The small writes: a delivery position (`false` when its webhook no longer exists), a step
/// of a tamper-evident log (`false` when the log no longer has the size it was read at), and a
/// signed checkpoint.
pub enum SideWrite {
    Position(Position),
    Log(LogStep),
    Checkpoint(Scope, StoredCheckpoint, i64),
}

/// The writer task's two queues; each caller holds a clone, so the writer drains in-flight
/// work before it stops.
#[derive(Clone)]
pub struct Writer {
    appends: mpsc::Sender<WriteJob>,
    side: mpsc::Sender<SideJob>,
}

impl Writer {
    /// Starts the writer task on `conn`; `options` open its replacement when needed.
    pub fn start(
        conn: SqliteConnection,
        options: SqliteConnectOptions,
        commits: Arc<Commits>,
        health: Arc<Health>,
    ) -> (Self, JoinHandle<()>) {
        let (appends, append_jobs) = mpsc::channel(1024);
        let (side, side_jobs) = mpsc::channel(1024);
        let conn = WriterConn::new(conn, options);
        let task = tokio::spawn(run_writer(conn, append_jobs, side_jobs, commits, health));
        (Self { appends, side }, task)
    }
}

/// How many events one group commit takes at most; more waits for the next commit.
const MAX_GROUP_EVENTS: usize = 50_000;

impl SqliteStore {
    pub async fn append_events(&self, events: Vec<Event>) -> Result<()> {
        if events.is_empty() {
            return Ok(());
        }
        let (done, committed) = oneshot::channel();
        self.writer()?
            .appends
            .send(WriteJob { events, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        committed.await.map_err(|_| StoreError::Closed)?
    }

    /// Writes a webhook's delivery position on the writer's connection; `false` when the
    /// webhook no longer exists.
    pub(super) async fn write_position(&self, position: Position) -> Result<bool> {
        self.side_write(SideWrite::Position(position)).await
    }

    /// A small write on the writer's connection, ahead of queued appends.
    pub(super) async fn side_write(&self, write: SideWrite) -> Result<bool> {
        let (done, written) = oneshot::channel();
        self.writer()?
            .side
            .send(SideJob { write, done })
            .await
            .map_err(|_| StoreError::Closed)?;
        written.await.map_err(|_| StoreError::Closed)?
    }

    fn writer(&self) -> Result<Writer> {
        let writer = self.writer.lock().expect("writer lock poisoned").clone();
        writer.ok_or(StoreError::Closed)
    }

    pub async fn list_events(&self, q: &EventQuery) -> Result<Vec<StoredEvent>> {
        let Some(scope_id) = self.scope_of(q).await? else {
            return Ok(Vec::new());
        };
        let scope = q.scope();
        let scope = &scope;
        let page = |(after_ts, after_seq): (i64, i64), rows: u32| async move {
            let packed: Option<Vec<u8>> = sqlx::query_scalar(packed!(
                "SELECT seq, ts, kind, body FROM events
                 WHERE scope_id = ?1 AND ts >= max(?2, ?6) AND ts <= ?3
                   AND (?4 IS NULL OR kind = ?4)
                   AND (ts > ?6 OR seq > ?7)
                   AND (?8 IS NULL OR seq <= ?8)
                 ORDER BY ts, seq LIMIT +?5"
            ))
            .bind(scope_id)
            .bind(q.ts_from.as_millis())
            .bind(q.ts_to.as_millis())
            .bind(q.event_type.map(kind_code))
            .bind(i64::from(rows))
            .bind(after_ts)
            .bind(after_seq)
            .bind(q.through_seq)
            .fetch_one(&self.pool)
            .await?;
            packed::unpack(scope, packed.as_deref())
        };
        let from = q.after.unwrap_or((i64::MIN, i64::MIN));
        let last = |page: &[StoredEvent]| page.iter().map(position).max().unwrap_or(from);
        let mut events = packed::in_pages(q.limit, from, page, last).await?;
        events.sort_unstable_by_key(position);
        Ok(events)
    }

    /// The last `q.limit` events before `(ts ms, seq)`, returned oldest first.
    pub async fn list_events_before(
        &self,
        q: &EventQuery,
        before: (i64, i64),
    ) -> Result<Vec<StoredEvent>> {
        let Some(scope_id) = self.scope_of(q).await? else {
            return Ok(Vec::new());
        };
        let scope = q.scope();
        let scope = &scope;
        let page = |(before_ts, before_seq): (i64, i64), rows: u32| async move {
            let packed: Option<Vec<u8>> = sqlx::query_scalar(packed!(
                "SELECT seq, ts, kind, body FROM events
                 WHERE scope_id = ?1 AND ts >= ?2 AND ts <= min(?3, ?6)
                   AND (?4 IS NULL OR kind = ?4)
                   AND (ts < ?6 OR seq < ?7)
                   AND (?8 IS NULL OR seq <= ?8)
                 ORDER BY ts DESC, seq DESC LIMIT +?5"
            ))
            .bind(scope_id)
            .bind(q.ts_from.as_millis())
            .bind(q.ts_to.as_millis())
            .bind(q.event_type.map(kind_code))
            .bind(i64::from(rows))
            .bind(before_ts)
            .bind(before_seq)
            .bind(q.through_seq)
            .fetch_one(&self.pool)
            .await?;
            packed::unpack(scope, packed.as_deref())
        };
        let first = |page: &[StoredEvent]| page.iter().map(position).min().unwrap_or(before);
        let mut events = packed::in_pages(q.limit, before, page, first).await?;
        events.sort_unstable_by_key(position);
        Ok(events)
    }

    async fn scope_of(&self, q: &EventQuery) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM scopes WHERE org_id = ? AND region = ? AND portal_id = ?",
        )
        .bind(q.org_id.to_string())
        .bind(q.region.as_str())
        .bind(portal_key(&q.scope()))
        .fetch_optional(&self.pool)
        .await?)
    }

    pub async fn count_events(&self) -> Result<u64> {
        let n: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
            .fetch_one(&self.pool)
            .await?;
        Ok(n as u64)
    }

    pub async fn events_to_deliver(
        &self,
        scope: &Scope,
        after: i64,
        through: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        let page = |after: i64, rows: u32| async move {
            let packed: Option<Vec<u8>> = sqlx::query_scalar(packed!(
                "SELECT seq, ts, kind, body FROM events
                 WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?1 AND region = ?2 AND portal_id = ?3)
                   AND seq > ?4 AND seq <= ?5
                 ORDER BY seq LIMIT +?6"
            ))
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .bind(after)
            .bind(through.unwrap_or(i64::MAX))
            .bind(i64::from(rows))
            .fetch_one(&self.pool)
            .await?;
            packed::unpack(scope, packed.as_deref())
        };
        let last = |page: &[StoredEvent]| page.iter().map(|e| e.seq).max().unwrap_or(after);
        let mut events = packed::in_pages(limit, after, page, last).await?;
        events.sort_unstable_by_key(|e| e.seq);
        Ok(events)
    }

    pub async fn events_by_seq(&self, scope: &Scope, seqs: &[i64]) -> Result<Vec<StoredEvent>> {
        let mut events = Vec::with_capacity(seqs.len());
        // One indexed lookup each: the lists are short (a batch's worth at most).
        for seq in seqs {
            let row = sqlx::query(
                "SELECT seq, ts, kind, body FROM events
                 WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?1 AND region = ?2 AND portal_id = ?3)
                   AND seq = ?4",
            )
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .bind(seq)
            .fetch_optional(&self.pool)
            .await?;
            if let Some(row) = row {
                events.push(decode_row(scope, &row)?);
            }
        }
        Ok(events)
    }

    /// The scope's newest `seq` (0 when it has none): how far its backlog reaches.
    pub async fn scope_head(&self, scope: &Scope) -> Result<i64> {
        Ok(sqlx::query_scalar(
            "SELECT coalesce(max(seq), 0) FROM events
             WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?1 AND region = ?2 AND portal_id = ?3)",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_one(&self.pool)
        .await?)
    }

    /// A scope's events in `(after, through]`, summed per backlog bucket.
    pub async fn backlog_buckets(
        &self,
        scope: &Scope,
        (after, through): Span,
    ) -> Result<Vec<Bucket>> {
        let rows = sqlx::query(
            "SELECT seq >> ?6 AS bucket, count(*) AS n, min(ts) AS oldest FROM events
             WHERE scope_id = (SELECT id FROM scopes WHERE org_id = ?1 AND region = ?2 AND portal_id = ?3)
               AND seq > ?4 AND seq <= ?5
             GROUP BY bucket",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .bind(after)
        .bind(through)
        .bind(BUCKET_BITS)
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
            // The newest row of all is kept until a newer one arrives, even past its window:
            // SQLite gives a new row max(seq) + 1, so deleting the newest would hand its `seq`
            // out again, to an event that every cursor already past it would never deliver.
            let done = sqlx::query(
                "DELETE FROM events WHERE seq IN
                   (SELECT seq FROM events WHERE scope_id = ?1 AND ts < ?2
                      AND seq < (SELECT max(seq) FROM events)
                      AND seq <= (SELECT coalesce(max(last_seq), 0) FROM logs WHERE scope_id = ?1)
                    LIMIT +?3)",
            )
            .bind(scope)
            .bind(cutoff.as_millis())
            .bind(room as i64)
            .execute(&self.pool)
            .await?;
            if done.rows_affected() > 0 {
                // A refused event that is gone can no longer be sent again.
                sqlx::query(
                    "DELETE FROM refused_events WHERE scope_id = ?1 AND NOT EXISTS
                       (SELECT 1 FROM events WHERE events.seq = refused_events.seq)",
                )
                .bind(scope)
                .execute(&self.pool)
                .await?;
            }
            deleted += done.rows_affected();
        }
        Ok(deleted)
    }
}

/// An event's place in event-time order, as the window reads take it: `(ts ms, seq)`.
fn position(event: &StoredEvent) -> (i64, i64) {
    (event.event.ts.as_millis(), event.seq)
}

fn decode_row(scope: &Scope, row: &SqliteRow) -> Result<StoredEvent> {
    let body: &[u8] = row.try_get("body")?;
    rows::event(
        scope,
        row.try_get("seq")?,
        row.try_get("ts")?,
        row.try_get("kind")?,
        body,
    )
}

/// Commits submitted appends in groups, and writes delivery positions, until every sender is
/// gone; while the store refuses writes, probes every [`PROBE_EVERY`] whether it accepts them
/// again, so readiness and the gauge recover without waiting for a request.
///
/// Positions go through this one connection rather than the pool because SQLite has one write
/// lock: a pool connection that finds it taken by a group commit sleeps in SQLite's busy
/// handler (1, 2, 5 … 100 ms between tries), which held each delivered batch up by 20–110 ms
/// under heavy ingest. Here a position waits at most for the commit in progress, and goes
/// before any appends queued behind it: it is one small row, and a lane's next batch waits on it.
async fn run_writer(
    mut conn: WriterConn,
    mut jobs: mpsc::Receiver<WriteJob>,
    mut side: mpsc::Receiver<SideJob>,
    commits: Arc<Commits>,
    health: Arc<Health>,
) {
    let mut scopes: HashMap<Scope, i64> = HashMap::new();
    // A deadline kept across turns: requests arriving more often than PROBE_EVERY must not
    // put the probe off for ever.
    let mut next_probe = tokio::time::Instant::now();
    loop {
        let first = tokio::select! {
            biased;
            () = tokio::time::sleep_until(next_probe), if health.refusing().is_some() => {
                health.probed(&conn.probe().await);
                next_probe = tokio::time::Instant::now() + PROBE_EVERY;
                continue;
            }
            Some(job) = side.recv() => {
                let written = conn.side_write(&job.write).await;
                health.observe(&written);
                let _ = job.done.send(written);
                continue;
            }
            job = jobs.recv() => match job {
                Some(job) => job,
                // Appends are closed; the small writes still queued are made before stopping.
                None => {
                    side.close();
                    while let Some(job) = side.recv().await {
                        let _ = job.done.send(conn.side_write(&job.write).await);
                    }
                    conn.discard().await;
                    return;
                }
            },
        };
        let mut group = vec![first];
        let mut total = group[0].events.len();
        while total < MAX_GROUP_EVENTS {
            match jobs.try_recv() {
                Ok(job) => {
                    total += job.events.len();
                    group.push(job);
                }
                Err(_) => break,
            }
        }
        let started = std::time::Instant::now();
        let batches: Vec<&[Event]> = group.iter().map(|j| j.events.as_slice()).collect();
        let result = conn.commit(&mut scopes, &batches).await;
        health.observe(&result);
        match result {
            Ok(Inserted { last, bytes }) => {
                metrics::histogram!("auditrelay_store_commit_seconds").record(started.elapsed());
                metrics::histogram!("auditrelay_store_commit_events").record(total as f64);
                let (batches, done): (Vec<_>, Vec<_>) =
                    group.into_iter().map(|job| (job.events, job.done)).unzip();
                commits.record(last, batches, bytes);
                for done in done {
                    let _ = done.send(Ok(()));
                }
            }
            // One job must not fail the others that shared its transaction: each is tried
            // alone (on a nearly full disk, the smaller ones may still fit).
            Err(_) if group.len() > 1 => {
                for WriteJob { events, done } in group {
                    let result = conn.commit(&mut scopes, &[&events]).await;
                    health.observe(&result);
                    if let Ok(Inserted { last, bytes }) = result {
                        commits.record(last, vec![events], bytes);
                    }
                    let _ = done.send(result.map(drop));
                }
            }
            Err(e) => {
                // A store fault is logged once by `Health`, not once per request.
                if !matches!(e, StoreError::Unavailable { .. }) {
                    tracing::error!(error = %e, "event append failed");
                }
                if let Some(job) = group.pop() {
                    let _ = job.done.send(Err(e));
                }
            }
        }
    }
}

/// How often the writer tries a small commit while the store refuses writes.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// The writer's connection, closed and opened again whenever its state is in doubt (see
/// [`super::tx`]): a commit reported done is always a commit SQLite made.
pub struct WriterConn {
    options: SqliteConnectOptions,
    conn: Option<SqliteConnection>,
}

impl WriterConn {
    pub fn new(conn: SqliteConnection, options: SqliteConnectOptions) -> Self {
        Self {
            options,
            conn: Some(conn),
        }
    }

    async fn get(&mut self) -> Result<&mut SqliteConnection> {
        if self.conn.is_none() {
            self.conn = Some(self.options.connect().await?);
        }
        Ok(self.conn.as_mut().expect("connected just above"))
    }

    /// Closes the connection, which rolls back whatever it has open; the next use opens another.
    async fn discard(&mut self) {
        if let Some(conn) = self.conn.take() {
            let _ = conn.close().await;
        }
    }

    /// Runs `write` in a transaction and commits it. On any failure the transaction is rolled
    /// back, or the connection replaced when even that fails, so the next transaction starts
    /// from nothing open.
    async fn transaction<T>(
        &mut self,
        write: impl AsyncFnOnce(&mut SqliteConnection) -> Result<T>,
    ) -> Result<T> {
        let conn = self.get().await?;
        if let Err(e) = tx::begin(conn).await {
            // BUSY leaves nothing open; "a transaction is already open" would be a bug.
            // Either way a fresh connection is certain.
            self.discard().await;
            return Err(e);
        }
        let result = match write(conn).await {
            Ok(value) => tx::commit(conn).await.map(|()| value),
            Err(e) => Err(e),
        };
        if result.is_err() && tx::rollback(conn).await.is_err() {
            // SQLite may already have rolled back by itself (a full disk, an I/O error), and
            // then ROLLBACK fails: whatever the reason, this connection's state is not known.
            self.discard().await;
        }
        result
    }

    /// Commits the batches in one transaction; returns what it inserted.
    async fn commit(
        &mut self,
        scopes: &mut HashMap<Scope, i64>,
        batches: &[&[Event]],
    ) -> Result<Inserted> {
        let mut new_scopes = Vec::new();
        let result = self
            .transaction(async |conn| insert_events(conn, scopes, &mut new_scopes, batches).await)
            .await;
        if result.is_err() {
            // Scope ids learned inside a rolled-back transaction do not exist.
            for key in new_scopes {
                scopes.remove(&key);
            }
        }
        result
    }

    /// A small write in a transaction of its own: a delivery position (with its delivery-log
    /// row where it has one), or a log step.
    async fn side_write(&mut self, write: &SideWrite) -> Result<bool> {
        match write {
            SideWrite::Position(position) => {
                self.transaction(async |conn| write_position(conn, position).await)
                    .await
            }
            SideWrite::Log(step) => {
                self.transaction(async |conn| super::log::extend_log(conn, step).await)
                    .await
            }
            SideWrite::Checkpoint(scope, checkpoint, after) => {
                self.transaction(async |conn| {
                    super::log::add_checkpoint(conn, scope, checkpoint, *after).await
                })
                .await
            }
        }
    }

    /// A small commit, to learn whether the store accepts writes again. It rewrites 64 KiB, so
    /// that a disk with room for a page or two but not for a request does not count as recovered.
    async fn probe(&mut self) -> Result<()> {
        self.transaction(async |conn| {
            sqlx::query(
                "INSERT INTO store_probe (id, probed_at, padding) VALUES (1, ?, zeroblob(65536))
                 ON CONFLICT (id) DO UPDATE SET probed_at = excluded.probed_at, padding = excluded.padding",
            )
            .bind(clock::now().as_millis())
            .execute(&mut *conn)
            .await?;
            Ok(())
        })
        .await
    }
}

/// What a commit inserted: up to which `seq`, and how many bytes of stored bodies.
struct Inserted {
    last: i64,
    bytes: usize,
}

/// Inserts the batches' events, creating scopes on first use (noted in `new_scopes`).
async fn insert_events(
    conn: &mut SqliteConnection,
    scopes: &mut HashMap<Scope, i64>,
    new_scopes: &mut Vec<Scope>,
    batches: &[&[Event]],
) -> Result<Inserted> {
    let count = batches.iter().map(|b| b.len()).sum();
    // All bodies in one buffer: one allocation per commit, not one per event.
    let mut bodies = Vec::with_capacity(count * 160);
    let mut rows: Vec<NewRow> = Vec::with_capacity(count);
    // Consecutive events nearly always share a scope; only a change needs the map (and a key).
    let mut last: Option<(&Event, i64)> = None;
    for event in batches.iter().flat_map(|b| b.iter()) {
        let scope = match last {
            Some((prev, id)) if Scope::same(prev, event) => id,
            _ => {
                let key = Scope::of(event);
                match scopes.get(&key) {
                    Some(id) => *id,
                    None => {
                        let id = scope_id(conn, &key).await?;
                        scopes.insert(key.clone(), id);
                        new_scopes.push(key);
                        id
                    }
                }
            }
        };
        last = Some((event, scope));
        let start = bodies.len();
        encode_body(event, &mut bodies);
        rows.push(NewRow {
            scope,
            ts: event.ts.as_millis(),
            kind: kind_code(event.event_type()),
            body: start..bodies.len(),
        });
    }
    let last = insert_rows(conn, &rows, &bodies).await?;
    Ok(Inserted {
        last,
        bytes: bodies.len(),
    })
}

/// The id of a scope, creating the scope on first use.
pub(super) async fn scope_id(conn: &mut SqliteConnection, scope: &Scope) -> Result<i64> {
    let (org, region) = (scope.org_id, &scope.region);
    let portal = portal_key(scope);
    sqlx::query(
        "INSERT INTO scopes (org_id, region, portal_id) VALUES (?, ?, ?) ON CONFLICT DO NOTHING",
    )
    .bind(org.to_string())
    .bind(region.as_str())
    .bind(&portal)
    .execute(&mut *conn)
    .await?;
    let id = sqlx::query_scalar(
        "SELECT id FROM scopes WHERE org_id = ? AND region = ? AND portal_id = ?",
    )
    .bind(org.to_string())
    .bind(region.as_str())
    .bind(&portal)
    .fetch_one(&mut *conn)
    .await?;
    Ok(id)
}

/// One event row, its body a range of the commit's body buffer.
struct NewRow {
    scope: i64,
    ts: i64,
    kind: i64,
    body: std::ops::Range<usize>,
}

/// Inserts the rows in order; returns the `seq` of the last.
async fn insert_rows(conn: &mut SqliteConnection, rows: &[NewRow], bodies: &[u8]) -> Result<i64> {
    static INSERT: MultiRow = MultiRow::new(
        "INSERT INTO events (scope_id, ts, kind, body) VALUES",
        "(?, ?, ?, ?)",
        "",
    );
    let mut last = 0;
    for run in inserts::runs(rows.len()) {
        let mut query = sqlx::query(INSERT.sql(run.len()));
        for row in &rows[run] {
            query = query
                .bind(row.scope)
                .bind(row.ts)
                .bind(row.kind)
                .bind(&bodies[row.body.clone()]);
        }
        last = query.execute(&mut *conn).await?.last_insert_rowid();
    }
    Ok(last)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use sqlx::ConnectOptions;
    use sqlx::sqlite::SqliteConnectOptions;

    use super::*;

    /// A database file of its own with a table to write to, and the writer's connection to it.
    async fn writer() -> (WriterConn, SqliteConnectOptions, std::path::PathBuf) {
        let dir = std::env::temp_dir().join(format!("auditrelay-writer-{}", uuid::Uuid::new_v4()));
        std::fs::create_dir_all(&dir).unwrap();
        let options = SqliteConnectOptions::from_str("sqlite:")
            .unwrap()
            .filename(dir.join("t.db"))
            .create_if_missing(true)
            .journal_mode(sqlx::sqlite::SqliteJournalMode::Wal);
        let mut conn = options.connect().await.unwrap();
        sqlx::query("CREATE TABLE t (v INTEGER NOT NULL UNIQUE)")
            .execute(&mut conn)
            .await
            .unwrap();
        (WriterConn::new(conn, options.clone()), options, dir)
    }

    async fn insert(conn: &mut SqliteConnection, v: i64) -> Result<()> {
        sqlx::query("INSERT INTO t (v) VALUES (?)")
            .bind(v)
            .execute(conn)
            .await?;
        Ok(())
    }

    /// What another connection sees: only what was really committed.
    async fn committed(options: &SqliteConnectOptions) -> Vec<i64> {
        let mut other = options.connect().await.unwrap();
        sqlx::query_scalar("SELECT v FROM t ORDER BY v")
            .fetch_all(&mut other)
            .await
            .unwrap()
    }

    /// The sequence that made ingest acknowledge events it never wrote, on a full disk: SQLite
    /// rolls a transaction back by itself (here: a ROLLBACK inside it, as a failed COMMIT on a
    /// full disk does), then a statement fails alone in the next one. With sqlx's nested
    /// `Transaction` bookkeeping the connection was left inside a transaction that never
    /// committed, and every later "commit" released a savepoint inside it.
    #[tokio::test]
    async fn a_commit_reported_done_is_committed_after_sqlite_rolled_back_by_itself() {
        let (mut writer, options, dir) = writer().await;
        writer
            .transaction(async |conn| insert(conn, 1).await)
            .await
            .unwrap();

        let ended_by_sqlite = writer
            .transaction(async |conn| {
                insert(conn, 2).await?;
                sqlx::query("ROLLBACK").execute(&mut *conn).await?;
                Err::<(), _>(StoreError::Closed)
            })
            .await;
        assert!(ended_by_sqlite.is_err());

        // A statement that fails alone: SQLite undoes it and keeps the transaction open.
        let failed_alone = writer
            .transaction(async |conn| {
                insert(conn, 3).await?;
                insert(conn, 1).await
            })
            .await;
        assert!(matches!(failed_alone, Err(StoreError::Database(_))));

        for v in [4, 5] {
            writer
                .transaction(async |conn| insert(conn, v).await)
                .await
                .unwrap();
            assert_eq!(committed(&options).await.last(), Some(&v));
        }
        assert_eq!(committed(&options).await, [1, 4, 5]);
        writer.discard().await;
        let _ = std::fs::remove_dir_all(dir);
    }

    #[tokio::test]
    async fn a_connection_found_inside_a_transaction_is_replaced_not_nested() {
        let (mut writer, options, dir) = writer().await;
        // Left open by someone: a BEGIN with nothing to end it.
        sqlx::query("BEGIN")
            .execute(writer.get().await.unwrap())
            .await
            .unwrap();
        assert!(
            writer
                .transaction(async |conn| insert(conn, 1).await)
                .await
                .is_err(),
            "BEGIN inside a transaction fails rather than nesting"
        );
        writer
            .transaction(async |conn| insert(conn, 2).await)
            .await
            .unwrap();
        assert_eq!(committed(&options).await, [2]);
        writer.discard().await;
        let _ = std::fs::remove_dir_all(dir);
    }
}

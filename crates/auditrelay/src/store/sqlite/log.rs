//! The tamper-evident log's records in SQLite (`store/log.rs`).

use auditrelay_core::Timestamp;
use auditrelay_core::integrity::{CHUNK_LEAVES, Chunk, GROUP_CHUNKS};
use auditrelay_core::merkle::Hash;

use sqlx::sqlite::SqliteConnection;

use super::events::SideWrite;
use super::inserts::{self, MultiRow};
use super::tx::PoolTx;
use super::{SqliteStore, portal_key};
use crate::store::log::{
    ChunkWrite, LogHead, StoredCheckpoint, checkpoint, chunks, encode_frontier, head,
    leaves_through, numbered_roots,
};
use crate::store::{Result, Scope};

impl SqliteStore {
    async fn existing_scope_id(&self, scope: &Scope) -> Result<Option<i64>> {
        Ok(sqlx::query_scalar(
            "SELECT id FROM scopes WHERE org_id = ? AND region = ? AND portal_id = ?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_optional(&self.pool)
        .await?)
    }

    /// Every scope's log head; a scope whose log has taken nothing yet has an empty one.
    pub async fn log_heads(&self) -> Result<Vec<LogHead>> {
        let rows = sqlx::query(
            "SELECT s.org_id, s.region, s.portal_id, coalesce(l.size, 0) AS size,
                    coalesce(l.last_seq, 0) AS last_seq, coalesce(l.frontier, x'') AS frontier
             FROM scopes s LEFT JOIN logs l ON l.scope_id = s.id ORDER BY s.id",
        )
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(head).collect()
    }

    /// Chunks `from..to` of a scope's log that still hold their leaves, in order.
    pub async fn log_chunks(&self, scope: &Scope, from: u64, to: u64) -> Result<Vec<Chunk>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT number, first_seq, seqs, hashes FROM log_chunks
             WHERE scope_id = ? AND number >= ? AND number < ? AND hashes IS NOT NULL
             ORDER BY number",
        )
        .bind(scope_id)
        .bind(from as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        chunks(&rows)
    }

    /// The roots of a scope's full chunks `from..to`, in order; fewer when the log has
    /// fewer, never with a gap.
    pub async fn log_chunk_roots(&self, scope: &Scope, from: u64, to: u64) -> Result<Vec<Hash>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT number, root FROM log_chunks
             WHERE scope_id = ?1 AND number >= ?2 AND number < ?3 AND root IS NOT NULL
             ORDER BY number",
        )
        .bind(scope_id)
        .bind(from as i64)
        .bind(to.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        numbered_roots(&rows, from, "chunk")
    }

    /// The roots of a scope's full groups below `below`, group 0 first, never with a gap.
    pub async fn log_group_roots(&self, scope: &Scope, below: u64) -> Result<Vec<Hash>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT number, root FROM log_groups WHERE scope_id = ?1 AND number < ?2
             ORDER BY number",
        )
        .bind(scope_id)
        .bind(below.min(i64::MAX as u64) as i64)
        .fetch_all(&self.pool)
        .await?;
        numbered_roots(&rows, 0, "group")
    }

    /// Writes `chunks` and moves the log's head to `head`, if the log still has the size
    /// `from`; `false` (nothing written) when it has not. On the writer's connection, like
    /// delivery positions: a transaction of its own on a pool connection would hold SQLite's
    /// one write lock while appends and positions sleep in the busy handler.
    pub async fn extend_log(
        &self,
        from: u64,
        chunks: &[ChunkWrite],
        head: &LogHead,
    ) -> Result<bool> {
        let step = LogStep {
            from,
            chunks: chunks.to_vec(),
            head: head.clone(),
        };
        self.side_write(SideWrite::Log(step)).await
    }

    /// Adds a signed checkpoint unless the scope has one newer than `after` (an id) or larger,
    /// on the writer's connection (as [`Self::extend_log`]); whether it did.
    pub async fn add_checkpoint(
        &self,
        scope: &Scope,
        checkpoint: &StoredCheckpoint,
        after: i64,
    ) -> Result<bool> {
        let write = SideWrite::Checkpoint(scope.clone(), checkpoint.clone(), after);
        self.side_write(write).await
    }

    /// A scope's newest checkpoint.
    pub async fn latest_checkpoint(&self, scope: &Scope) -> Result<Option<StoredCheckpoint>> {
        self.one_checkpoint(
            "SELECT * FROM checkpoints WHERE scope_id = ?1 ORDER BY size DESC, id DESC LIMIT 1",
            scope,
            0,
        )
        .await
    }

    /// The first checkpoint a scope's log had at `size` leaves.
    pub async fn checkpoint_at(
        &self,
        scope: &Scope,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>> {
        self.one_checkpoint(
            "SELECT * FROM checkpoints WHERE scope_id = ?1 AND size = ?2 ORDER BY id LIMIT 1",
            scope,
            size,
        )
        .await
    }

    async fn one_checkpoint(
        &self,
        sql: &'static str,
        scope: &Scope,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(None);
        };
        let row = sqlx::query(sql)
            .bind(scope_id)
            .bind(size as i64)
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(checkpoint).transpose()
    }

    /// The chunks of a scope's log that hold the events after `after` up to `through` (`seq`s),
    /// in order: where a lane finds their places.
    pub async fn log_places(&self, scope: &Scope, after: i64, through: i64) -> Result<Vec<Chunk>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT number, first_seq, seqs, hashes FROM log_chunks
             WHERE scope_id = ?1 AND last_seq > ?2 AND first_seq <= ?3 AND hashes IS NOT NULL
             ORDER BY number",
        )
        .bind(scope_id)
        .bind(after)
        .bind(through)
        .fetch_all(&self.pool)
        .await?;
        chunks(&rows)
    }

    /// The `seq` of the newest event a scope's log has taken; 0 before it took any.
    pub async fn log_reach(&self, scope: &Scope) -> Result<i64> {
        // One query: a lane with `integrity` asks before each read.
        let reach: Option<i64> = sqlx::query_scalar(
            "SELECT l.last_seq FROM logs l JOIN scopes s ON s.id = l.scope_id
             WHERE s.org_id = ? AND s.region = ? AND s.portal_id = ?",
        )
        .bind(scope.org_id.to_string())
        .bind(scope.region.as_str())
        .bind(portal_key(scope))
        .fetch_optional(&self.pool)
        .await?;
        Ok(reach.unwrap_or(0))
    }

    /// How many leaves of a scope's log are events up to `seq`.
    pub async fn log_leaves_through(&self, scope: &Scope, seq: i64) -> Result<u64> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(0);
        };
        let row = sqlx::query(
            "SELECT number, first_seq, last_seq, seqs, hashes FROM log_chunks
             WHERE scope_id = ?1 AND first_seq <= ?2 ORDER BY number DESC LIMIT 1",
        )
        .bind(scope_id)
        .bind(seq)
        .fetch_optional(&self.pool)
        .await?;
        leaves_through(row.as_ref(), seq)
    }

    /// A scope's checkpoints of at most `max_size` leaves after the one of id `after`, oldest
    /// first, at most `limit`; with no `after`, only the newest of them.
    pub async fn checkpoints_after(
        &self,
        scope: &Scope,
        after: Option<i64>,
        max_size: u64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let max_size = max_size.min(i64::MAX as u64) as i64;
        let query = match after {
            Some(after) => sqlx::query(
                "SELECT * FROM checkpoints WHERE scope_id = ?1 AND id > ?2 AND size <= ?3
                 ORDER BY id LIMIT +?4",
            )
            .bind(scope_id)
            .bind(after)
            .bind(max_size)
            .bind(i64::from(limit)),
            None => sqlx::query(
                "SELECT * FROM checkpoints WHERE scope_id = ?1 AND size <= ?2
                 ORDER BY id DESC LIMIT 1",
            )
            .bind(scope_id)
            .bind(max_size),
        };
        let rows = query.fetch_all(&self.pool).await?;
        rows.iter().map(checkpoint).collect()
    }

    /// A scope's checkpoints signed from `from` to `to`, after the one of id `after`, oldest
    /// first, at most `limit`.
    pub async fn checkpoints_signed_between(
        &self,
        scope: &Scope,
        from: Timestamp,
        to: Timestamp,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(
            "SELECT * FROM checkpoints
             WHERE scope_id = ?1 AND signed_at >= ?2 AND signed_at <= ?3 AND id > ?4
             ORDER BY id LIMIT +?5",
        )
        .bind(scope_id)
        .bind(from.as_millis())
        .bind(to.as_millis())
        .bind(after)
        .bind(i64::from(limit))
        .fetch_all(&self.pool)
        .await?;
        rows.iter().map(checkpoint).collect()
    }

    /// Prunes the log records retention no longer needs (see [`Store::prune_log`]); returns
    /// how many chunks and checkpoints it changed.
    ///
    /// [`Store::prune_log`]: crate::store::Store::prune_log
    pub async fn prune_log(&self, window_cutoff: Timestamp, keep_cutoff: Timestamp) -> Result<u64> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        let chunks = sqlx::query(
            "UPDATE log_chunks SET seqs = NULL, hashes = NULL
             WHERE last_ts < ?1 AND root IS NOT NULL AND hashes IS NOT NULL
               AND (number + 1) * ?2 <= (SELECT coalesce(max(size), 0) FROM checkpoints c
                                         WHERE c.scope_id = log_chunks.scope_id)
               AND NOT EXISTS (SELECT 1 FROM checkpoints c
                               WHERE c.scope_id = log_chunks.scope_id
                                 AND c.size > number * ?2 AND c.size < (number + 1) * ?2)",
        )
        .bind(keep_cutoff.as_millis())
        .bind(CHUNK_LEAVES as i64)
        .execute(&mut *tx)
        .await?;
        // Past the window, a checkpoint stays if it is its log's newest or the first of its
        // hour: no other checkpoint of the log before it in the same hour. Both are ranges
        // the scope's indexes answer, not a computation on every row.
        let checkpoints = sqlx::query(
            "DELETE FROM checkpoints WHERE signed_at < ?1
               AND id < (SELECT max(id) FROM checkpoints c WHERE c.scope_id = checkpoints.scope_id)
               AND (signed_at < ?2 OR EXISTS (SELECT 1 FROM checkpoints c
                    WHERE c.scope_id = checkpoints.scope_id
                      AND c.signed_at >= checkpoints.signed_at - checkpoints.signed_at % 3600000
                      AND c.signed_at <= checkpoints.signed_at AND c.id < checkpoints.id))",
        )
        .bind(window_cutoff.as_millis())
        .bind(keep_cutoff.as_millis())
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(chunks.rows_affected() + checkpoints.rows_affected())
    }
}

/// One step of a log, written by the writer task (`events.rs`).
pub struct LogStep {
    from: u64,
    chunks: Vec<ChunkWrite>,
    head: LogHead,
}

/// Writes a log step inside the writer's transaction; `false` when the log no longer has
/// `step.from` leaves (the transaction then writes nothing).
pub(super) async fn extend_log(conn: &mut SqliteConnection, step: &LogStep) -> Result<bool> {
    let scope_id = super::events::scope_id(conn, &step.head.scope).await?;
    let size: i64 =
        sqlx::query_scalar("SELECT coalesce((SELECT size FROM logs WHERE scope_id = ?), 0)")
            .bind(scope_id)
            .fetch_one(&mut *conn)
            .await?;
    if size as u64 != step.from {
        return Ok(false);
    }
    static CHUNKS: MultiRow = MultiRow::new(
        "INSERT INTO log_chunks (scope_id, number, first_seq, last_seq, last_ts, root, seqs, hashes)
         VALUES",
        "(?, ?, ?, ?, ?, ?, ?, ?)",
        "ON CONFLICT (scope_id, number) DO UPDATE SET
           last_seq = excluded.last_seq, last_ts = max(last_ts, excluded.last_ts),
           root = excluded.root, seqs = excluded.seqs, hashes = excluded.hashes",
    );
    for run in inserts::runs(step.chunks.len()) {
        let mut query = sqlx::query(CHUNKS.sql(run.len()));
        for write in &step.chunks[run] {
            let chunk = &write.chunk;
            query = query
                .bind(scope_id)
                .bind(chunk.number as i64)
                .bind(chunk.seqs[0])
                .bind(*chunk.seqs.last().expect("a written chunk has a leaf"))
                .bind(write.last_ts)
                .bind(write.root.map(|r| r.to_vec()))
                .bind(chunk.encode_seqs())
                .bind(chunk.encode_hashes());
        }
        query.execute(&mut *conn).await?;
    }
    for write in &step.chunks {
        if let Some(root) = write.group_root {
            sqlx::query(
                "INSERT INTO log_groups (scope_id, number, root) VALUES (?, ?, ?)
                 ON CONFLICT (scope_id, number) DO NOTHING",
            )
            .bind(scope_id)
            .bind((write.chunk.number / GROUP_CHUNKS) as i64)
            .bind(root.to_vec())
            .execute(&mut *conn)
            .await?;
        }
    }
    let head = &step.head;
    sqlx::query(
        "INSERT INTO logs (scope_id, size, last_seq, frontier) VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (scope_id) DO UPDATE SET
           size = excluded.size, last_seq = excluded.last_seq, frontier = excluded.frontier",
    )
    .bind(scope_id)
    .bind(head.size() as i64)
    .bind(head.last_seq)
    .bind(encode_frontier(&head.frontier))
    .execute(&mut *conn)
    .await?;
    Ok(true)
}

/// Adds a checkpoint inside the writer's transaction, unless one newer than `after` or larger
/// is there already (another writer was faster); whether it did.
pub(super) async fn add_checkpoint(
    conn: &mut SqliteConnection,
    scope: &Scope,
    checkpoint: &StoredCheckpoint,
    after: i64,
) -> Result<bool> {
    let scope_id = super::events::scope_id(conn, scope).await?;
    let done = sqlx::query(
        "INSERT INTO checkpoints (scope_id, size, root, frontier, previous_size, signed_at, note)
         SELECT ?1, ?2, ?3, ?4, ?5, ?6, ?7 WHERE NOT EXISTS
           (SELECT 1 FROM checkpoints WHERE scope_id = ?1 AND (id > ?8 OR size > ?2))",
    )
    .bind(scope_id)
    .bind(checkpoint.size() as i64)
    .bind(checkpoint.root.to_vec())
    .bind(encode_frontier(&checkpoint.frontier))
    .bind(checkpoint.previous_size as i64)
    .bind(checkpoint.signed_at.as_millis())
    .bind(&checkpoint.note)
    .bind(after)
    .execute(&mut *conn)
    .await?;
    Ok(done.rows_affected() == 1)
}

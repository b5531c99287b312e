//! The embedded backend: one SQLite file in the data directory, in WAL mode with full fsync.
//!
//! Reads and configuration writes go through a small connection pool. Event appends go through
//! one writer task with its own connection that commits everything submitted while the previous
//! commit was running as a single transaction (group commit): a burst of concurrent ingest
//! requests costs one fsync, not one each, and each request still hears back only after its
//! events are on disk. Webhooks' delivery positions are written by that task too, ahead of
//! queued appends, so that delivery never sleeps on SQLite's write lock.
//!
//! A `LIMIT` that takes a parameter is written `LIMIT +?N`, never `LIMIT ?N`. SQLite plans a
//! bare `LIMIT ?N` by the value bound to it, and a statement planned by a bound value is
//! prepared again each time that parameter is bound: on every run, since every run binds it.
//! Delivery and replay read a page of events that way four times a batch, and parsing and
//! planning that statement anew took 3 % of a replay's CPU. The unary plus makes the limit an
//! expression evaluated when the statement runs; the plan is the same.

mod destinations;
mod events;
mod inserts;
mod log;
mod packed;
mod portals;
mod principals;
mod refused;
mod replay;
mod tx;
mod webhooks;

use std::path::Path;
use std::str::FromStr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use sqlx::ConnectOptions;
use sqlx::sqlite::{
    SqliteConnectOptions, SqliteJournalMode, SqlitePool, SqlitePoolOptions, SqliteSynchronous,
};
use tokio::task::JoinHandle;

use sqlx::sqlite::SqliteRow;

/// Rows SQLite's worker thread may hand over before the reader takes them: more than the
/// largest read (a batch of 1,000 events, a page of 1,000), so that the worker never blocks on
/// a full channel and is woken again for each row the reader takes (sqlx's default, 50, cost
/// a futex round trip per row when delivery reads behind signing).
const ROW_BUFFER: usize = 4096;

use super::commits::Commits;
use super::health::Health;
use super::{PageQuery, Result, Scope, Seek, StoreError};

pub struct SqliteStore {
    pool: SqlitePool,
    /// What the writer committed last, and when.
    pub commits: Arc<Commits>,
    /// `None` once closed; each write clones it so the writer drains in-flight work first.
    writer: Mutex<Option<events::Writer>>,
    writer_task: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Whether the writer's last commit succeeded.
    pub health: Arc<Health>,
    /// Made once by the migrations; with a `seq`, it makes an event's stable id.
    pub identity: uuid::Uuid,
}

impl SqliteStore {
    pub async fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let options = SqliteConnectOptions::from_str("sqlite:")?
            .filename(path)
            .create_if_missing(true)
            .journal_mode(SqliteJournalMode::Wal)
            // FULL fsyncs the WAL at every commit: an acknowledged event survives power loss,
            // not just a crash of the process.
            .synchronous(SqliteSynchronous::Full)
            .foreign_keys(true)
            // Another process (`auditrelay token create`) may hold the write lock briefly.
            .busy_timeout(Duration::from_secs(10))
            // Multi-row inserts keep a statement journal; in memory it costs no file writes.
            .pragma("temp_store", "MEMORY")
            // 32 MiB of page cache per connection: a group commit's index pages stay cached
            // instead of spilling mid-transaction.
            .pragma("cache_size", "-32768")
            // Checkpoint the WAL into the file every 8,000 pages (about 31 MiB), not SQLite's
            // 1,000: every commit rewrites the same pages at the tables' and indexes' right
            // edges, and a checkpoint copies each page once however often it was rewritten
            // (docs/PERFORMANCE.md, session 17). The WAL file keeps the largest size it reached.
            .pragma("wal_autocheckpoint", "8000")
            .row_buffer_size(ROW_BUFFER)
            .disable_statement_logging();
        let pool = SqlitePoolOptions::new()
            .max_connections(4)
            .min_connections(1)
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/sqlite").run(&pool).await?;
        restrict_permissions(path);

        let newest: i64 = sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(&pool)
            .await?;
        let identity: String = sqlx::query_scalar("SELECT id FROM store_identity")
            .fetch_one(&pool)
            .await?;
        let identity = uuid::Uuid::try_parse(&identity)
            .map_err(|_| StoreError::Corrupt("invalid store identity".into()))?;
        let commits = Arc::new(Commits::new(newest));
        let health = Arc::new(Health::new());
        let conn = options.connect().await?;
        // Its replacements open the database that is there, never a new one in its place.
        let reopen = options.create_if_missing(false);
        let (writer, task) = events::Writer::start(conn, reopen, commits.clone(), health.clone());
        Ok(Self {
            pool,
            commits,
            writer: Mutex::new(Some(writer)),
            writer_task: tokio::sync::Mutex::new(Some(task)),
            health,
            identity,
        })
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        drop(self.writer.lock().expect("writer lock poisoned").take());
        if let Some(task) = self.writer_task.lock().await.take() {
            let _ = task.await;
        }
        self.pool.close().await;
    }
}

/// The database holds hashed tokens and, later, encrypted secrets: keep it owner-only.
fn restrict_permissions(path: &Path) {
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        for suffix in ["", "-wal", "-shm"] {
            let mut file = path.as_os_str().to_owned();
            file.push(suffix);
            let _ = std::fs::set_permissions(&file, std::fs::Permissions::from_mode(0o600));
        }
    }
}

impl SqliteStore {
    /// One keyset page of a scope's rows: `sql` takes the scope as `?1`–`?3`, the seek bound
    /// as `?4` and the limit as `?5`, and reads a backward page in reverse; the rows come back
    /// in the list's order.
    async fn scope_page<T>(
        &self,
        sql: &'static str,
        scope: &Scope,
        bound: i64,
        page: &PageQuery,
        from_row: impl Fn(&SqliteRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let rows = sqlx::query(sql)
            .bind(scope.org_id.to_string())
            .bind(scope.region.as_str())
            .bind(portal_key(scope))
            .bind(bound)
            .bind(i64::from(page.limit))
            .fetch_all(&self.pool)
            .await?;
        let mut list = rows.iter().map(from_row).collect::<Result<Vec<_>>>()?;
        if matches!(page.seek, Seek::Backward(_)) {
            list.reverse();
        }
        Ok(list)
    }
}

/// A scope's `scopes.portal_id`: '' for an org scope (UNIQUE treats NULLs as distinct).
fn portal_key(scope: &Scope) -> String {
    scope.portal_id.map(|p| p.to_string()).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    /// This backend's statements, as written.
    const SOURCES: [(&str, &str); 12] = [
        ("sqlite.rs", include_str!("sqlite.rs")),
        ("destinations.rs", include_str!("sqlite/destinations.rs")),
        ("events.rs", include_str!("sqlite/events.rs")),
        ("inserts.rs", include_str!("sqlite/inserts.rs")),
        ("log.rs", include_str!("sqlite/log.rs")),
        ("packed.rs", include_str!("sqlite/packed.rs")),
        ("portals.rs", include_str!("sqlite/portals.rs")),
        ("principals.rs", include_str!("sqlite/principals.rs")),
        ("refused.rs", include_str!("sqlite/refused.rs")),
        ("replay.rs", include_str!("sqlite/replay.rs")),
        ("tx.rs", include_str!("sqlite/tx.rs")),
        ("webhooks.rs", include_str!("sqlite/webhooks.rs")),
    ];

    /// Nothing a test can time shows the statement prepared again on every run, so the rule
    /// of the module's doc is held to the text.
    #[test]
    fn no_statement_takes_its_limit_as_a_bare_parameter() {
        let modules = SOURCES[0]
            .1
            .lines()
            .filter(|l| l.starts_with("mod ") && l.ends_with(';'))
            .count();
        assert_eq!(SOURCES.len(), modules + 1, "every module is read");
        // Put together, so that this line is not one it finds.
        let bare = concat!("LIMIT ", "?");
        for (file, text) in SOURCES {
            for (n, line) in text.lines().enumerate() {
                let code = !line.trim_start().starts_with("//");
                assert!(
                    !(code && line.contains(bare)),
                    "{file}:{}: a bound LIMIT is written `LIMIT +?N` (see store/sqlite.rs): {}",
                    n + 1,
                    line.trim()
                );
            }
        }
    }
}

//! The PostgreSQL backend, for several `auditrelay serve` processes sharing one database
//! (DECISIONS.md S19). The records are those of the SQLite backend, one module each; what
//! differs is what several writers need: in each scope `seq` order is commit order
//! (`postgres/events.rs`), read-then-write steps lock what they read, and every node hears of
//! every append (`NOTIFY`, below) so that its lanes wake as they do for their own.
//!
//! Its migrations are its own (`migrations/postgres`), embedded and applied at open; sqlx holds
//! PostgreSQL's advisory lock while it migrates, so nodes started together apply each once.

mod destinations;
mod events;
mod portals;
mod principals;
mod refused;
mod replay;
mod tx;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::postgres::{PgConnectOptions, PgConnection, PgListener, PgPool, PgPoolOptions, PgRow};
use sqlx::{ConnectOptions, Connection};
use tokio::task::JoinHandle;

use super::{Commits, Health, PageQuery, Result, Scope, Seek, StoreError};

/// The channel an append notifies, with its last `seq`, when it commits.
const APPENDED: &str = "auditrelay_appended";

/// How often a store that refuses writes tries one again, and the serving lock is checked.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How often every node looks for appends it was not told of (a notification lost with a
/// connection, or with a node that crashed between its commit and its `NOTIFY`).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A handle to the shared database, cheap to share behind an `Arc`.
pub struct PgStore {
    pool: PgPool,
    scopes: events::ScopeIds,
    /// Made once by the migrations; with a `seq` and time, it makes an event's stable id.
    pub identity: uuid::Uuid,
    /// Appends of every node, as they commit: what this node's lanes wait on.
    pub commits: Arc<Commits>,
    /// Whether the database accepts writes.
    pub health: Arc<Health>,
    /// Following other nodes' appends, and probing while the database refuses writes.
    tasks: Vec<JoinHandle<()>>,
    /// How to connect again, for the connection that holds [`PgStore::claim_serving`]'s lock.
    options: PgConnectOptions,
    /// The task that holds that lock, while this process serves.
    serving: tokio::sync::Mutex<Option<JoinHandle<()>>>,
}

/// The advisory lock a serving process holds (`auditrel` in ASCII).
const SERVING_LOCK: i64 = 0x6175_6469_7472_656c;

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies the migrations this binary has and the
    /// database lacks, reads the store's identity, and starts following every node's appends.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("auditrelay")
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A server that went away answers nothing: requests wait this long for a
            // connection, then get a 503 (`FaultKind::NoAnswer`), never hang.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let identity: String = sqlx::query_scalar("SELECT id FROM store_identity")
            .fetch_one(&pool)
            .await?;
        let identity = uuid::Uuid::try_parse(&identity)
            .map_err(|_| StoreError::Corrupt("invalid store identity".into()))?;
        let commits = Arc::new(Commits::new(newest_seq(&pool).await?));
        let health = Arc::new(Health::new());
        // Listening before anything is served: no append after this point goes unheard.
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen(APPENDED).await?;
        let tasks = vec![
            tokio::spawn(follow_appends(listener, Arc::clone(&commits))),
            tokio::spawn(look_for_appends(pool.clone(), Arc::clone(&commits))),
            tokio::spawn(probe_while_refusing(pool.clone(), Arc::clone(&health))),
        ];
        Ok(Self {
            pool,
            scopes: events::ScopeIds::default(),
            identity,
            commits,
            health,
            tasks,
            options,
            serving: tokio::sync::Mutex::new(None),
        })
    }

    /// Makes this process the one that serves from this database; `false` when another does.
    ///
    /// Every serving process would start a lane for every enabled webhook and run every replay
    /// job, and each signs with the keys in its own data directory: until lanes and jobs have
    /// one owner each (issue 21), a second `serve` on the same database is refused at start
    /// rather than deliver everything twice. The lock is held by a connection of its own
    /// for as long as the process serves.
    ///
    /// A session's lock ends with its connection (a database restart, a failover, a network
    /// cut), and another process could then start serving. So the connection is checked every
    /// [`PROBE_EVERY`] and, once lost, the lock taken again on a new one; if another process
    /// holds it by then, this one exits rather than serve beside it.
    pub async fn claim_serving(&self) -> Result<bool> {
        let mut serving = self.serving.lock().await;
        if serving.is_some() {
            return Ok(true);
        }
        let Some(conn) = take_serving_lock(&self.options).await? else {
            return Ok(false);
        };
        *serving = Some(tokio::spawn(hold_serving_lock(conn, self.options.clone())));
        Ok(true)
    }

    pub async fn ping(&self) -> Result<()> {
        sqlx::query("SELECT 1").execute(&self.pool).await?;
        Ok(())
    }

    pub async fn close(&self) {
        for task in &self.tasks {
            task.abort();
        }
        if let Some(holder) = self.serving.lock().await.take() {
            // Its connection closes with it, and the lock with the connection.
            holder.abort();
        }
        self.pool.close().await;
    }
}

/// The serving lock on a connection of its own, or `None` when another session holds it.
async fn take_serving_lock(options: &PgConnectOptions) -> Result<Option<PgConnection>> {
    let mut conn = options.connect().await?;
    // The server must not close it for being idle: the lock would go with it. (The setting
    // is PostgreSQL 14's; on 13, which has no such timeout, the statement fails harmlessly.)
    let _ = sqlx::query("SET idle_session_timeout = 0")
        .execute(&mut conn)
        .await;
    let claimed: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(SERVING_LOCK)
        .fetch_one(&mut conn)
        .await?;
    Ok(claimed.then_some(conn))
}

/// Keeps the serving lock: checks its connection every [`PROBE_EVERY`] and, once that is lost,
/// takes the lock again on a new one. The lost session may live on in the server a while (a
/// connection cut on the way, not closed), still holding the lock: it is this process's own,
/// and is ended rather than taken for another process's. Only a lock held by a session this
/// process never had makes it exit.
async fn hold_serving_lock(mut conn: PgConnection, options: PgConnectOptions) {
    let mut ours = backend_pid(&mut conn).await;
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let alive = tokio::time::timeout(PROBE_EVERY, sqlx::query("SELECT 1").execute(&mut conn));
        if matches!(alive.await, Ok(Ok(_))) {
            continue;
        }
        tracing::warn!("the connection holding the serving lock was lost; taking the lock again");
        drop(conn);
        conn = loop {
            match take_serving_lock(&options).await {
                Ok(Some(conn)) => break conn,
                Ok(None) => match serving_lock_holder(&options).await {
                    Some(holder) if Some(holder) == ours => {
                        end_session(&options, holder).await;
                    }
                    // Released meanwhile, or not learned: try again.
                    None => tokio::time::sleep(PROBE_EVERY).await,
                    Some(_) => {
                        tracing::error!(
                            "another `auditrelay serve` took this database's serving lock while \
                             this process had lost its connection; stopping, so that no webhook \
                             is delivered by both"
                        );
                        std::process::exit(1);
                    }
                },
                Err(e) => {
                    tracing::debug!(error = %e, "taking the serving lock again failed; retrying");
                    tokio::time::sleep(PROBE_EVERY).await;
                }
            }
        };
        ours = backend_pid(&mut conn).await;
        tracing::info!("the serving lock is held again");
    }
}

async fn backend_pid(conn: &mut PgConnection) -> Option<i32> {
    sqlx::query_scalar("SELECT pg_backend_pid()")
        .fetch_one(conn)
        .await
        .ok()
}

/// The server process of the session that holds the serving lock, if one does.
async fn serving_lock_holder(options: &PgConnectOptions) -> Option<i32> {
    let mut conn = options.connect().await.ok()?;
    // A bigint advisory key is kept as two halves: its high and low 32 bits.
    let holder = sqlx::query_scalar(
        "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted
           AND classid = ($1 >> 32)::oid AND objid = ($1 & 4294967295)::oid AND objsubid = 1",
    )
    .bind(SERVING_LOCK)
    .fetch_optional(&mut conn)
    .await
    .ok()
    .flatten();
    let _ = conn.close().await;
    holder
}

async fn end_session(options: &PgConnectOptions, pid: i32) {
    if let Ok(mut conn) = options.connect().await {
        let _ = sqlx::query("SELECT pg_terminate_backend($1)")
            .bind(pid)
            .execute(&mut conn)
            .await;
        let _ = conn.close().await;
    }
}

async fn newest_seq(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(pool)
            .await?,
    )
}

/// Tells this node's lanes of every append as it commits, this node's own included.
async fn follow_appends(mut listener: PgListener, commits: Arc<Commits>) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) => {
                if let Ok(seq) = notification.payload().parse() {
                    commits.record_appended(seq);
                }
            }
            // The connection was lost and is back; what was sent meanwhile is gone, and
            // `look_for_appends` finds it.
            Ok(None) => {}
            Err(e) => {
                tracing::debug!(error = %e, "listening for appends failed; trying again");
                tokio::time::sleep(PROBE_EVERY).await;
            }
        }
    }
}

/// Wakes the lanes for appends no notification told of: a node that crashed between its
/// commit and its `NOTIFY`, or notifications sent while the listening connection was down.
/// Without it, a lane waiting for its scope's next event could wait until another one came.
///
/// Appends to different scopes commit in any order of their `seq`s, so a newest `seq` already
/// heard of does not mean every lower one was: while `seq`s have been drawn that are not
/// visible (appends still running, or rolled back), every look wakes the lanes.
async fn look_for_appends(pool: PgPool, commits: Arc<Commits>) {
    loop {
        tokio::time::sleep(LOOK_EVERY).await;
        let looked: std::result::Result<(i64, i64), _> = sqlx::query_as(
            "SELECT coalesce((SELECT max(seq) FROM events), 0),
                    (SELECT CASE WHEN is_called THEN last_value ELSE 0 END FROM events_seq)",
        )
        .fetch_one(&pool)
        .await;
        if let Ok((visible, drawn)) = looked
            && (visible > commits.newest() || drawn > visible)
        {
            commits.record_appended(visible);
        }
    }
}

/// While the database refuses writes (it is down, restarting, full or read-only), commits 64
/// KiB every [`PROBE_EVERY`]: its success turns "accepting" on again, so readiness recovers
/// without waiting for a request, and only once a batch would fit again.
async fn probe_while_refusing(pool: PgPool, health: Arc<Health>) {
    let padding = vec![0u8; 64 << 10];
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        if health.refusing().is_some() {
            let probe = sqlx::query(
                "INSERT INTO store_probe (probed_at, padding) VALUES ($1, $2)
                 ON CONFLICT (only_row) DO UPDATE
                 SET probed_at = excluded.probed_at, padding = excluded.padding",
            )
            .bind(crate::clock::now().as_millis())
            .bind(&padding)
            .execute(&pool)
            .await
            .map_err(StoreError::from);
            health.probed(&probe);
        }
    }
}

impl PgStore {
    /// The id of `scope`, creating its row on first use (committed on its own: see
    /// [`events::ScopeIds`]).
    pub(super) async fn scope_id(&self, scope: &Scope) -> Result<i64> {
        self.scopes.id(&self.pool, scope).await
    }

    /// The id of `scope` if it has a row; `None` for a scope nothing was ever written to.
    pub(super) async fn existing_scope_id(&self, scope: &Scope) -> Result<Option<i64>> {
        self.scopes.existing(&self.pool, scope).await
    }

    /// One keyset page of a scope's rows: `sql` takes the scope's id as `$1`, the seek bound as
    /// `$2` and the limit as `$3`, and reads a backward page in reverse; the rows come back in
    /// the list's order. A scope without a row has no rows.
    async fn scope_page<T>(
        &self,
        sql: &'static str,
        scope: &Scope,
        bound: i64,
        page: &PageQuery,
        from_row: impl Fn(&PgRow) -> Result<T>,
    ) -> Result<Vec<T>> {
        let Some(scope_id) = self.existing_scope_id(scope).await? else {
            return Ok(Vec::new());
        };
        let rows = sqlx::query(sql)
            .bind(scope_id)
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

/// `text` as PostgreSQL can store it: a `TEXT` value cannot hold NUL, which SQLite keeps. What a
/// receiver wrote (an error message, a refusal's reason) may contain one, and a write that
/// failed on it would stop a lane on the same batch for good; the character becomes U+FFFD.
fn storable(text: &str) -> std::borrow::Cow<'_, str> {
    if text.contains('\0') {
        text.replace('\0', "\u{FFFD}").into()
    } else {
        text.into()
    }
}

/// A scope's `scopes.portal_id`: '' for an org scope (UNIQUE treats NULLs as distinct).
fn portal_key(scope: &Scope) -> String {
    scope.portal_id.map(|p| p.to_string()).unwrap_or_default()
}

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
mod leases;
mod log;
mod portals;
mod principals;
mod refused;
mod replay;
mod sessions;
mod tx;
mod vault;
mod webhooks;

use std::str::FromStr;
use std::sync::Arc;
use std::time::Duration;

use sqlx::ConnectOptions as _;
use sqlx::postgres::{PgConnectOptions, PgListener, PgPool, PgPoolOptions, PgRow};
use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::{Commits, Health, PageQuery, Result, Scope, Seek, StoreError};

/// The channel an append notifies, with its last `seq`, when it commits.
const APPENDED: &str = "auditrelay_appended";

/// The channel a node notifies, with its id, when a webhook, destination or replay job changed
/// through its API: every other node's lanes re-read their configuration, as its own do.
const CHANGED: &str = "auditrelay_changed";

/// How often a store that refuses writes tries one again.
const PROBE_EVERY: Duration = Duration::from_secs(2);

/// How often every node looks for appends it was not told of (a notification lost with a
/// connection, or with a node that crashed between its commit and its `NOTIFY`).
const LOOK_EVERY: Duration = Duration::from_secs(1);

/// A handle to the shared database, cheap to share behind an `Arc`.
pub struct PgStore {
    pool: PgPool,
    /// Renewing this node's leases and saying it is alive, on connections of their own: a
    /// pool busy with ingest must not make a node lose its leases.
    lease_pool: PgPool,
    scopes: events::ScopeIds,
    /// Made once by the migrations; with a `seq` and time, it makes an event's stable id.
    pub identity: uuid::Uuid,
    /// Appends of every node, as they commit: what this node's lanes wait on.
    pub commits: Arc<Commits>,
    /// Whether the database accepts writes.
    pub health: Arc<Health>,
    /// This process among the nodes: the holder of its leases, the sender of its changes.
    pub node: uuid::Uuid,
    /// Counts the changes other nodes announced.
    changed_elsewhere: Arc<watch::Sender<u64>>,
    /// How to connect again, for the connection that holds [`PgStore::join_serving`]'s lock.
    options: PgConnectOptions,
    /// The task that holds that lock, while this process serves.
    serving: tokio::sync::Mutex<Option<JoinHandle<()>>>,
    /// Following other nodes' appends, and probing while the database refuses writes.
    tasks: Vec<JoinHandle<()>>,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies the migrations this binary has and the
    /// database lacks, reads the store's identity, and starts following every node's appends.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("auditrelay")
            // A node frozen (or cut off) inside a transaction would hold its locks, a lease's
            // among them, until it woke: the server ends such a session instead. No transaction
            // of ours waits between its statements for anything but the database.
            .options([("idle_in_transaction_session_timeout", "2s")])
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            // A server that went away answers nothing: requests wait this long for a
            // connection, then get a 503 (`FaultKind::NoAnswer`), never hang.
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await?;
        let lease_pool = PgPoolOptions::new()
            .max_connections(2)
            .acquire_timeout(Duration::from_secs(3))
            .connect_with(options.clone())
            .await?;
        // Before anything changes: a process of the version before leases, serving alone, could
        // not even restart on a database migrated past it.
        if older_version_serving(&pool).await? {
            return Err(StoreError::OlderVersionServing);
        }
        let mut migrator = sqlx::migrate!("./migrations/postgres");
        // During a rolling upgrade, a node of the older version may (re)start on a database a
        // newer one migrated: migrations only add, so it works with what it knows.
        migrator.set_ignore_missing(true);
        migrator.run(&pool).await?;
        let identity: String = sqlx::query_scalar("SELECT id FROM store_identity")
            .fetch_one(&pool)
            .await?;
        let identity = uuid::Uuid::try_parse(&identity)
            .map_err(|_| StoreError::Corrupt("invalid store identity".into()))?;
        let commits = Arc::new(Commits::new(newest_seq(&pool).await?));
        let health = Arc::new(Health::new());
        let node = uuid::Uuid::new_v4();
        let changed_elsewhere = Arc::new(watch::Sender::new(0));
        // Listening before anything is served: no append after this point goes unheard.
        let mut listener = PgListener::connect_with(&pool).await?;
        listener.listen_all([APPENDED, CHANGED]).await?;
        let heard = Heard {
            commits: Arc::clone(&commits),
            node,
            changed_elsewhere: Arc::clone(&changed_elsewhere),
        };
        let tasks = vec![
            tokio::spawn(follow_notifications(listener, heard)),
            tokio::spawn(look_for_appends(pool.clone(), Arc::clone(&commits))),
            tokio::spawn(probe_while_refusing(pool.clone(), Arc::clone(&health))),
        ];
        Ok(Self {
            pool,
            lease_pool,
            scopes: events::ScopeIds::default(),
            identity,
            commits,
            health,
            node,
            changed_elsewhere,
            tasks,
            options,
            serving: tokio::sync::Mutex::new(None),
        })
    }

    /// Tells the other nodes that a webhook, destination or replay job changed, in the
    /// background: the change is committed already, and a lost notification only delays them
    /// until their next look.
    pub fn announce_change(&self) {
        let pool = self.pool.clone();
        let node = self.node.to_string();
        tokio::spawn(async move {
            let sent = sqlx::query("SELECT pg_notify($1, $2)")
                .bind(CHANGED)
                .bind(node)
                .execute(&pool)
                .await;
            if let Err(e) = sent {
                tracing::debug!(error = %e, "telling the other nodes of a change failed");
            }
        });
    }

    /// Counts the changes other nodes announced.
    pub fn changed_elsewhere(&self) -> watch::Receiver<u64> {
        self.changed_elsewhere.subscribe()
    }

    /// Joins the nodes serving from this database; `false` while a process of an earlier
    /// version serves from it. Those held the advisory lock [`SERVING_LOCK`] alone, as the one
    /// serving process, and delivered without leases; nodes of this version hold it shared, so
    /// that neither kind starts while the other serves (an upgrade stops the old process first).
    /// The lock is held on a connection of its own, checked every [`PROBE_EVERY`] and taken
    /// again when lost.
    pub async fn join_serving(&self) -> Result<bool> {
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
        self.lease_pool.close().await;
    }
}

/// The advisory lock serving processes hold (`auditrel` in ASCII): alone in the version before
/// leases, shared since.
const SERVING_LOCK: i64 = 0x6175_6469_7472_656c;

/// The serving lock, shared, on a connection of its own; `None` while a process holds it alone.
async fn take_serving_lock(options: &PgConnectOptions) -> Result<Option<sqlx::PgConnection>> {
    let mut conn = options.connect().await?;
    // The server must not close it for being idle: the lock would go with it. (The setting
    // is PostgreSQL 14's; on 13, which has no such timeout, the statement fails harmlessly.)
    let _ = sqlx::query("SET idle_session_timeout = 0")
        .execute(&mut conn)
        .await;
    let taken: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock_shared($1)")
        .bind(SERVING_LOCK)
        .fetch_one(&mut conn)
        .await?;
    Ok(taken.then_some(conn))
}

/// Keeps the shared serving lock: checks its connection every [`PROBE_EVERY`] and, once that is
/// lost, takes the lock again on a new one.
async fn hold_serving_lock(mut conn: sqlx::PgConnection, options: PgConnectOptions) {
    loop {
        tokio::time::sleep(PROBE_EVERY).await;
        let alive = tokio::time::timeout(PROBE_EVERY, sqlx::query("SELECT 1").execute(&mut conn));
        if matches!(alive.await, Ok(Ok(_))) {
            continue;
        }
        drop(conn);
        conn = loop {
            match take_serving_lock(&options).await {
                Ok(Some(conn)) => break conn,
                Ok(None) => {
                    tracing::error!(
                        "an auditrelay of an earlier version took this database's serving lock \
                         while this node had lost its connection; stopping, so that no webhook \
                         is delivered by both"
                    );
                    std::process::exit(1);
                }
                Err(e) => tracing::debug!(error = %e, "taking the serving lock again failed"),
            }
            tokio::time::sleep(PROBE_EVERY).await;
        };
    }
}

/// Whether a process holds [`SERVING_LOCK`] alone: one of the version before leases, serving.
async fn older_version_serving(pool: &PgPool) -> Result<bool> {
    // A bigint advisory key is kept as two halves: its high and low 32 bits.
    Ok(sqlx::query_scalar(
        "SELECT EXISTS (SELECT 1 FROM pg_locks
             WHERE locktype = 'advisory' AND granted AND mode = 'ExclusiveLock'
               AND database = (SELECT oid FROM pg_database WHERE datname = current_database())
               AND classid = ($1 >> 32)::oid AND objid = ($1 & 4294967295)::oid
               AND objsubid = 1)",
    )
    .bind(SERVING_LOCK)
    .fetch_one(pool)
    .await?)
}

async fn newest_seq(pool: &PgPool) -> Result<i64> {
    Ok(
        sqlx::query_scalar("SELECT coalesce(max(seq), 0) FROM events")
            .fetch_one(pool)
            .await?,
    )
}

/// What the listening connection passes on.
struct Heard {
    commits: Arc<Commits>,
    node: uuid::Uuid,
    changed_elsewhere: Arc<watch::Sender<u64>>,
}

/// Tells this node's lanes of every append as it commits, this node's own included, and of
/// every change another node announces.
async fn follow_notifications(mut listener: PgListener, heard: Heard) {
    loop {
        match listener.try_recv().await {
            Ok(Some(notification)) if notification.channel() == CHANGED => {
                if notification.payload() != heard.node.to_string() {
                    heard.changed_elsewhere.send_modify(|n| *n += 1);
                }
            }
            Ok(Some(notification)) => {
                if let Ok(seq) = notification.payload().parse() {
                    heard.commits.record_appended(seq);
                }
            }
            // The connection was lost and is back; what was sent meanwhile is gone:
            // `look_for_appends` finds the appends, and the lanes re-read their configuration
            // in case something changed.
            Ok(None) => heard.changed_elsewhere.send_modify(|n| *n += 1),
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

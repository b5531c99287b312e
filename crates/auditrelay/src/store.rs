//! Persistence: the one seam every caller goes through, and the only module that knows SQL.
//!
//! [`Store`] holds a backend and what every backend shares: the commit feed delivery waits on
//! ([`Commits`]), whether the store accepts writes ([`Health`]) and the webhooks' backlog
//! summaries (`backlog.rs`). Its inherent async methods dispatch to the backend, so a backend is
//! a variant of [`Backend`] and its module, never a change to callers. The record types here
//! are the store's vocabulary; SQL row structs stay private to each backend.

mod backlog;
mod commits;
mod fault;
mod health;
mod lease;
mod log;
mod postgres;
mod rows;
mod sqlite;

use std::sync::Arc;
use std::time::Duration;

use auditrelay_core::format::Format;
use auditrelay_core::integrity::{Chunk, LogPlace};
use auditrelay_core::kind::Kind;
use auditrelay_core::{Event, EventType, Grant, OrgId, PortalId, Region, Timestamp};
use uuid::Uuid;

use backlog::Backlogs;
pub use commits::{Commits, Committed, Taken};
pub use health::{Health, Refusing};
pub use lease::Fence;
use lease::LocalLeases;
pub use log::{ChunkWrite, LogHead, LogTiles, StoredCheckpoint};
pub use postgres::PgStore;
pub use sqlite::SqliteStore;

use crate::config::{Config, StoreLocation};

/// The store, cheap to clone (a handle to shared state).
#[derive(Clone)]
pub struct Store {
    backend: Backend,
    /// What was committed last, and when; the SQLite writer records into it.
    commits: Arc<Commits>,
    /// Whether the store's last write succeeded.
    health: Arc<Health>,
    /// Webhooks' backlog summaries, brought up to date by each [`Store::undelivered`].
    backlogs: Arc<Backlogs>,
    /// This process among the nodes sharing the store: the holder of its leases.
    node: Uuid,
    /// The leases of a SQLite store, which one process has to itself (PostgreSQL keeps them
    /// in the database).
    local_leases: Arc<LocalLeases>,
}

/// What only a store several nodes share keeps (PostgreSQL; DECISIONS.md S22): the
/// installation's keys, sealed (what `keys/sealed.rs` reads and writes instead of files in a
/// data directory), and the web UI's sessions (`ui/session.rs`, which keeps them in memory
/// otherwise).
#[derive(Clone)]
pub struct Vault(Arc<PgStore>);

/// A web UI session as a shared store keeps it (times in ms since the epoch).
#[derive(Debug, Clone)]
pub struct SessionRow {
    /// The SHA-256 of the cookie's id.
    pub key: [u8; 32],
    pub principal: Uuid,
    pub client: Option<String>,
    /// The API token it calls with, sealed with the secrets key.
    pub sealed_token: Vec<u8>,
    pub csrf: String,
    pub name: String,
    pub grant: Grant,
    pub created_at: i64,
}

/// When sessions end, and how many may be kept, for one step (times in ms since the epoch).
#[derive(Debug, Clone)]
pub struct SessionLimits {
    /// A session whose last request is no later than this is idle too long.
    pub idle_before: i64,
    /// A session signed in no later than this is too old.
    pub created_before: i64,
    pub per_principal: i64,
    pub per_client: i64,
    pub total: i64,
}

/// A signing key as the store keeps it: its seed sealed with the key-encryption key, its life in
/// ms since the epoch.
#[derive(Debug, Clone)]
pub struct SealedKey {
    pub number: i32,
    pub kid: String,
    pub sealed_seed: Vec<u8>,
    pub created_at: i64,
    pub active_from: i64,
    pub retired_at: Option<i64>,
}

impl Vault {
    /// Every signing key, in creation order.
    pub async fn signing_keys(&self) -> Result<Vec<SealedKey>> {
        self.0.signing_keys().await
    }

    /// Number, activation and retirement of each signing key: what a rotation changes.
    pub async fn signing_key_marks(&self) -> Result<Vec<(i32, i64, Option<i64>)>> {
        self.0.signing_key_marks().await
    }

    /// Adds `key` unless its number is taken (`false`), retiring every older key still
    /// signing at `retire_others_at`, in one transaction.
    pub async fn add_signing_key(
        &self,
        key: &SealedKey,
        retire_others_at: Option<i64>,
    ) -> Result<bool> {
        self.0.add_signing_key(key, retire_others_at).await
    }

    /// Adds `keys` in one transaction if there is no signing key yet; `false` when there is.
    pub async fn add_first_signing_keys(&self, keys: &[SealedKey]) -> Result<bool> {
        self.0.add_first_signing_keys(keys).await
    }

    /// The sealed key `name`, if there is one.
    pub async fn sealed_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        self.0.sealed_key(name).await
    }

    /// Whether the database holds destinations or events: made under keys that were kept
    /// somewhere else before, which new keys would not open or verify.
    pub async fn holds_records(&self) -> Result<bool> {
        self.0.holds_records().await
    }

    /// The sealed key `name`, storing `sealed` as it if there is none yet.
    pub async fn sealed_key_or(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        self.0.sealed_key_or(name, sealed).await
    }

    /// Stores a new session, ending expired ones and making room first.
    pub async fn create_session(&self, row: &SessionRow, limits: &SessionLimits) -> Result<()> {
        self.0.create_session(row, limits).await
    }

    /// The live session `key`, its last request now; `Err(true)` when it expired (and was
    /// ended), `Err(false)` when there is none.
    pub async fn touch_session(
        &self,
        key: &[u8; 32],
        now: i64,
        limits: &SessionLimits,
    ) -> Result<std::result::Result<SessionRow, bool>> {
        self.0.touch_session(key, now, limits).await
    }

    pub async fn end_session(&self, key: &[u8; 32]) -> Result<()> {
        self.0.end_session(key).await
    }

    pub async fn set_flash(&self, key: &[u8; 32], flash: &str) -> Result<()> {
        self.0.set_flash(key, flash).await
    }

    /// The session's flash, taken (shown once, whichever node shows it).
    pub async fn take_flash(&self, key: &[u8; 32]) -> Result<Option<String>> {
        self.0.take_flash(key).await
    }

    /// Whether the session's page refresh is due to be audited, noting `now` if so.
    pub async fn refresh_audit_due(
        &self,
        key: &[u8; 32],
        now: i64,
        due_before: i64,
    ) -> Result<bool> {
        self.0.refresh_audit_due(key, now, due_before).await
    }
}

/// Where the records are.
#[derive(Clone)]
enum Backend {
    /// One file, one process: the embedded default.
    Sqlite(Arc<SqliteStore>),
    /// One database, any number of processes (DECISIONS.md S19).
    Postgres(Arc<PgStore>),
}

/// Calls the same method on whichever backend the store has.
macro_rules! backend {
    ($store:expr, $s:ident => $call:expr) => {
        match &$store.backend {
            Backend::Sqlite($s) => $call,
            Backend::Postgres($s) => $call,
        }
    };
}

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A uniqueness rule was broken; the payload names what clashed.
    #[error("conflict: {0}")]
    Conflict(&'static str),
    /// A record refers to another that does not exist (any more); the payload names it.
    #[error("missing reference: {0}")]
    MissingReference(&'static str),
    #[error("the store is shutting down")]
    Closed,
    /// A process of an earlier version (one serving process per database, no leases) serves
    /// from this PostgreSQL database: nothing was changed.
    #[error(
        "an auditrelay of an earlier version is serving from this database as its only process; \
         stop it before starting this version (docs/OPERATIONS.md, rolling upgrades)"
    )]
    OlderVersionServing,
    /// A write carried the fence of a lease this node no longer holds (DECISIONS.md S21):
    /// another node owns what it would have changed, and nothing was written.
    #[error("this node no longer holds the lease {0}")]
    LeaseLost(String),
    /// The store could not do what was asked for a reason of its own (a full disk, an I/O
    /// error): nothing was written, and trying again later may succeed.
    #[error("the store cannot write: {}", kind.describe())]
    Unavailable {
        kind: FaultKind,
        #[source]
        source: sqlx::Error,
    },
    #[error("database error")]
    Database(#[source] sqlx::Error),
    #[error("database migration failed")]
    Migrate(#[from] sqlx::migrate::MigrateError),
    /// A stored value does not decode: the database was changed outside auditrelay.
    #[error("stored data is invalid: {0}")]
    Corrupt(String),
    #[error("could not prepare the data directory")]
    Io(#[from] std::io::Error),
}

impl From<sqlx::Error> for StoreError {
    fn from(e: sqlx::Error) -> Self {
        match fault::fault_kind(&e) {
            Some(kind) => Self::Unavailable { kind, source: e },
            None => Self::Database(e),
        }
    }
}

/// Why the store cannot write now: what clients (507 for `Full`, else 503), readiness and the
/// `auditrelay_store_errors_total` metric are told.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FaultKind {
    /// No room left: the disk, or a size limit of the database.
    Full,
    /// The operating system failed a read or a write, or the file cannot be opened.
    Io,
    /// The database or its directory became read-only.
    ReadOnly,
    /// Another process holds the database longer than the busy timeout.
    Busy,
    /// The database gave no answer, or no connection, in time: PostgreSQL down, restarting or
    /// cut off, or any database overloaded.
    NoAnswer,
}

impl FaultKind {
    /// The metric label.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Full => "full",
            Self::Io => "io",
            Self::ReadOnly => "read_only",
            Self::Busy => "busy",
            Self::NoAnswer => "no_answer",
        }
    }

    /// In words, for problem details and the log.
    pub fn describe(self) -> &'static str {
        match self {
            Self::Full => "the disk holding the data directory is full",
            Self::Io => "the database's storage reported an I/O error",
            Self::ReadOnly => "the database has become read-only",
            Self::Busy => "another process holds the database's write lock",
            Self::NoAnswer => {
                "the database did not answer in time (it is down, restarting or overloaded)"
            }
        }
    }
}

pub type Result<T, E = StoreError> = std::result::Result<T, E>;

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Org {
    pub id: OrgId,
    pub name: String,
    pub created_at: Timestamp,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PrincipalKind {
    /// A person; its tokens are personal access tokens (`kpat_…`).
    User,
    /// A machine (a gateway, a portal, a CI job); its tokens are `spat_…`.
    System,
}

impl PrincipalKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::User => "user",
            Self::System => "system",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "user" => Some(Self::User),
            "system" => Some(Self::System),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    pub kind: PrincipalKind,
    pub grant: Grant,
}

/// A new principal and its first token, as `token create` makes them.
#[derive(Debug, Clone)]
pub struct NewToken {
    pub org_id: OrgId,
    pub name: String,
    pub kind: PrincipalKind,
    pub grant: Grant,
    pub secret_hash: [u8; 32],
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
}

/// What a token lookup finds: the principal, and the token's own state.
#[derive(Debug, Clone)]
pub struct TokenRecord {
    pub id: Uuid,
    pub principal: Principal,
    pub prefix: String,
    pub created_at: Timestamp,
    pub expires_at: Option<Timestamp>,
    pub revoked_at: Option<Timestamp>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Portal {
    pub id: PortalId,
    pub org_id: OrgId,
    pub name: String,
    pub region: Region,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

/// An audit-log destination. The authorization value is sealed by the caller (see
/// `secrets.rs`): the store never sees it in clear.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Destination {
    pub id: Uuid,
    pub org_id: OrgId,
    pub name: String,
    pub endpoint: String,
    pub authorization_sealed: Vec<u8>,
    pub log_format: Format,
    pub skip_ssl_verification: bool,
    /// How its receiver is spoken to (DECISIONS.md D12), with the kind's own settings.
    pub kind: Kind,
    /// Extra headers sent with every delivery (our extension), sealed: a JSON object of name →
    /// value. `None`: none.
    pub headers_sealed: Option<Vec<u8>>,
    /// Whether its lines carry each event's place in the tamper-evident log and the log's
    /// checkpoints travel with them (our extension, DECISIONS.md S27). Off: Konnect's bytes.
    pub integrity: bool,
    /// The region whose v2 inline webhook owns this destination (DECISIONS.md D9); `None` for
    /// destinations made through the destinations API.
    pub managed_region: Option<Region>,
    /// The portal it belongs to; `None`: the organization's (see `rbac`'s destination rules).
    pub portal_id: Option<PortalId>,
    pub created_at: Timestamp,
    pub updated_at: Timestamp,
}

impl Destination {
    /// The endpoint as answers show it (a Sumo Logic token masked).
    pub fn shown_endpoint(&self) -> String {
        self.kind.name().shown_endpoint(&self.endpoint)
    }

    /// Whether `given` is how answers show this destination's endpoint, masked: an update or
    /// a test that gives it back means the saved endpoint.
    pub fn shows_endpoint_as(&self, given: &str) -> bool {
        given != self.endpoint && given == self.shown_endpoint()
    }
}

/// Where events belong and webhooks deliver from: an organization in a region, or one portal
/// (which lives in one region).
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct Scope {
    pub org_id: OrgId,
    pub region: Region,
    pub portal_id: Option<PortalId>,
}

/// Konnect's `webhook_status` of a configured webhook (an unconfigured one has no record).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WebhookStatus {
    /// Ready to send, or the last attempt succeeded.
    Active,
    /// The last attempt failed (Konnect: "last attempt to send data failed"); delivery retries
    /// the batch, then keeps probing.
    Inactive,
}

impl WebhookStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Active => "active",
            Self::Inactive => "inactive",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        match s {
            "active" => Some(Self::Active),
            "inactive" => Some(Self::Inactive),
            _ => None,
        }
    }
}

/// The last delivery attempt, as the status shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LastAttempt {
    pub at: Timestamp,
    /// The HTTP status; `None` when the request got no answer (connection, TLS, timeout).
    pub code: Option<u16>,
    /// The reason phrase or the transport error.
    pub message: String,
}

/// Why a batch was sent: what the delivery log says of each attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptKind {
    /// A batch's first attempt.
    Live,
    /// A batch's attempt after a failed one, on DECISIONS.md D3's schedule.
    Retry,
    /// An attempt of an inactive webhook (DECISIONS.md D4).
    Probe,
    /// A replay job's batch.
    Replay,
}

impl AttemptKind {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Live => "live",
            Self::Retry => "retry",
            Self::Probe => "probe",
            Self::Replay => "replay",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [Self::Live, Self::Retry, Self::Probe, Self::Replay]
            .into_iter()
            .find(|k| k.as_str() == s)
    }
}

/// One attempt to send a batch, as the delivery log keeps it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliveryAttempt {
    pub at: Timestamp,
    pub kind: AttemptKind,
    pub endpoint: String,
    pub events: u32,
    pub first_seq: i64,
    pub last_seq: i64,
    /// The HTTP status; `None` when the request got no answer (see `message`).
    pub code: Option<u16>,
    /// The reason phrase, or the transport error (a TLS error names the certificate problem).
    pub message: String,
    pub duration_ms: u64,
    /// Whether the receiver took the batch: a 2xx, or (syslog) every byte written on an open
    /// connection.
    pub delivered: bool,
}

/// A logged attempt and the scope it was for, as [`Store::list_attempts`] returns it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LoggedAttempt {
    /// The log's own order: later attempts have larger ids.
    pub id: i64,
    pub attempt: DeliveryAttempt,
}

/// An event a receiver refused for good, on a scope's refused list (DECISIONS.md D14).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RefusedEvent {
    pub seq: i64,
    /// The event's time, while it is stored (its stable id is made of it; DECISIONS.md S13);
    /// `None` when writing a refusal, and when retention deleted the event.
    pub event_ts: Option<Timestamp>,
    pub refused_at: Timestamp,
    /// Where it was sent.
    pub endpoint: String,
    /// The receiver's reason, or ours when it was refused before sending.
    pub reason: String,
    /// The replay job that sent it, when one did.
    pub replay_id: Option<Uuid>,
}

/// What a live delivery attempt did to its webhook ([`Store::record_attempt`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AttemptOutcome {
    /// The SIEM took the batch ending at `through`; `next_in_flight` is how far what the lane
    /// holds next reaches (DECISIONS.md S3), `None` for nothing.
    Delivered {
        through: i64,
        next_in_flight: Option<i64>,
        /// For a batch of checkpoint events (DECISIONS.md S27): how the webhook's checkpoint
        /// cursor moves.
        checkpoints: Option<CheckpointsSent>,
    },
    /// The attempt failed and the batch is tried again at `next_at`: a retry while the batch
    /// has retries left, else a probe of the now inactive webhook.
    Failed { next_at: Timestamp },
}

/// A batch of checkpoint events the SIEM took (DECISIONS.md S27). The webhook's checkpoint
/// cursor moves from `from`, the cursor the batch was built after (`None`: a stream's first
/// batch), to `through`, the id of its last checkpoint — only if the webhook is still on the
/// checkpoint stream `stream` and at `from`. A stream started afresh meanwhile (`integrity`
/// turned on again, the webhook re-enabled or rebound) is another stream, which a batch of the
/// one before it must not move, not even from its fresh start.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CheckpointsSent {
    pub stream: i64,
    pub from: Option<i64>,
    pub through: i64,
}

/// A configured webhook: its binding, desired state, status and delivery cursor.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Webhook {
    pub scope: Scope,
    pub destination_id: Uuid,
    pub enabled: bool,
    pub status: WebhookStatus,
    /// The last event `seq` delivered (or skipped because it came before the webhook was
    /// enabled).
    pub cursor: i64,
    /// How far what may have been sent reaches past the cursor (see
    /// [`Store::mark_in_flight`]).
    pub in_flight_through: Option<i64>,
    /// The id of the last checkpoint event delivered, for a destination with `integrity`
    /// (DECISIONS.md S27); `None` until one is.
    pub checkpoint_cursor: Option<i64>,
    /// Which of the webhook's checkpoint streams is current: one more each time the stream
    /// starts afresh ([`CheckpointsSent`]).
    pub checkpoint_stream: i64,
    pub last_attempt: Option<LastAttempt>,
    /// Attempts that failed since the last delivered batch (or configuration change).
    pub consecutive_failures: u32,
    /// When the batch that failed is tried again, while one is waiting.
    pub next_attempt_at: Option<Timestamp>,
    pub updated_at: Timestamp,
}

/// The configuration half of a webhook, as the API writes it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WebhookConfig {
    pub scope: Scope,
    pub destination_id: Uuid,
    pub enabled: bool,
    pub updated_at: Timestamp,
}

/// Where a replay job is in its life (DECISIONS.md K7.2); no job at all is `unconfigured`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ReplayStatus {
    Accepted,
    Pending,
    Running,
    Completed,
    Failed,
}

impl ReplayStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Pending => "pending",
            Self::Running => "running",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        [
            Self::Accepted,
            Self::Pending,
            Self::Running,
            Self::Completed,
            Self::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == s)
    }

    /// Accepted, pending or running: a new job must wait (409).
    pub fn in_progress(self) -> bool {
        matches!(self, Self::Accepted | Self::Pending | Self::Running)
    }
}

/// A scope's replay job: Konnect's fields, our progress fields, and where to resume.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReplayJob {
    pub scope: Scope,
    /// New for every PUT.
    pub id: Uuid,
    pub start_at: Timestamp,
    pub end_at: Timestamp,
    pub status: ReplayStatus,
    pub updated_at: Timestamp,
    /// Counted when the job starts running.
    pub events_total: Option<u64>,
    pub events_sent: u64,
    pub batches_sent: u64,
    pub started_at: Option<Timestamp>,
    pub finished_at: Option<Timestamp>,
    pub failure_reason: Option<String>,
    /// The `(ts ms, seq)` of the last event the SIEM acknowledged.
    pub resume: Option<(i64, i64)>,
    /// The newest `seq` of the window when the job started running: events stored after
    /// that are live delivery's, not the replay's. `None` until then.
    pub through_seq: Option<i64>,
}

impl ReplayJob {
    /// The job a PUT makes: new, accepted, with no progress yet.
    pub fn accepted(scope: Scope, start_at: Timestamp, end_at: Timestamp, now: Timestamp) -> Self {
        Self {
            scope,
            id: Uuid::new_v4(),
            start_at,
            end_at,
            status: ReplayStatus::Accepted,
            updated_at: now,
            events_total: None,
            events_sent: 0,
            batches_sent: 0,
            started_at: None,
            finished_at: None,
            failure_reason: None,
            resume: None,
            through_seq: None,
        }
    }
}

/// Which destinations a list shows: Konnect's `filter[name]` (exact, or containing a
/// substring), and for a portal admin only its portal's.
#[derive(Debug, Clone, Default)]
pub struct DestinationFilter {
    pub equals: Option<String>,
    pub contains: Option<String>,
    /// Only the destinations this portal owns.
    pub portal: Option<PortalId>,
}

/// A position in a list ordered by `(created_at ms, id)`.
pub type SortKey = (i64, String);

/// Where a page of a `(created_at, id)`-ordered list starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Seek {
    /// From the start, or after a key.
    Forward(Option<SortKey>),
    /// The items just before a key (returned in list order).
    Backward(SortKey),
}

#[derive(Debug, Clone)]
pub struct PageQuery {
    pub seek: Seek,
    pub limit: u32,
}

/// Which events to read, in `(ts, seq)` order.
#[derive(Debug, Clone)]
pub struct EventQuery {
    pub org_id: OrgId,
    pub region: Region,
    /// `None` reads the org's own events; `Some` one portal's.
    pub portal_id: Option<PortalId>,
    pub ts_from: Timestamp,
    pub ts_to: Timestamp,
    pub event_type: Option<EventType>,
    /// Resume after this `(ts ms, seq)` position.
    pub after: Option<(i64, i64)>,
    /// Only events stored up to this `seq`.
    pub through_seq: Option<i64>,
    pub limit: u32,
}

impl Scope {
    /// Whether two events belong to the same scope, without making either's.
    pub fn same(a: &Event, b: &Event) -> bool {
        a.org_id == b.org_id && a.portal_id == b.portal_id && a.region == b.region
    }

    /// The scope an event belongs to.
    pub fn of(event: &Event) -> Self {
        Self {
            org_id: event.org_id,
            region: event.region.clone(),
            portal_id: event.portal_id,
        }
    }
}

impl EventQuery {
    pub fn scope(&self) -> Scope {
        Scope {
            org_id: self.org_id,
            region: self.region.clone(),
            portal_id: self.portal_id,
        }
    }
}

/// An event as read back, with its place in the ingest order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredEvent {
    pub seq: i64,
    pub event: Event,
    /// Its place in its scope's tamper-evident log, when delivery to a destination with
    /// `integrity` looked it up (`delivery/ahead.rs`); the store never sets it.
    pub place: Option<LogPlace>,
}

impl Store {
    /// Opens the store `store.url` names (the SQLite file in the data directory by default)
    /// and applies its migrations.
    pub async fn open(config: &Config) -> Result<Self> {
        let (backend, commits, health, node) = match config.store_location() {
            StoreLocation::Sqlite(path) => {
                let sqlite = SqliteStore::open(&path).await?;
                let shared = (Arc::clone(&sqlite.commits), Arc::clone(&sqlite.health));
                let node = Uuid::new_v4();
                (Backend::Sqlite(Arc::new(sqlite)), shared.0, shared.1, node)
            }
            StoreLocation::Postgres(url) => {
                let postgres = PgStore::open(&url).await?;
                let shared = (Arc::clone(&postgres.commits), Arc::clone(&postgres.health));
                let node = postgres.node;
                (
                    Backend::Postgres(Arc::new(postgres)),
                    shared.0,
                    shared.1,
                    node,
                )
            }
        };
        Ok(Self {
            backend,
            commits,
            health,
            backlogs: Arc::default(),
            node,
            local_leases: Arc::default(),
        })
    }

    /// This process among the nodes that share the store, made at open: the holder of the
    /// leases it takes.
    pub fn node(&self) -> Uuid {
        self.node
    }

    /// Joins the processes serving from the store; `false` while one of an earlier version
    /// serves from it alone (PostgreSQL; see [`PgStore::join_serving`]).
    pub async fn join_serving(&self) -> Result<bool> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(true),
            Backend::Postgres(s) => s.join_serving().await,
        }
    }

    /// The sealed keys of a store several nodes share; `None` for SQLite, whose keys are files
    /// in the data directory.
    pub fn vault(&self) -> Option<Vault> {
        match &self.backend {
            Backend::Sqlite(_) => None,
            Backend::Postgres(s) => Some(Vault(Arc::clone(s))),
        }
    }

    /// Takes the lease `name` for this node, for `ttl`, unless another holder has it; each
    /// taking is a new epoch (DECISIONS.md S21).
    pub async fn acquire_lease(&self, name: &str, ttl: Duration) -> Result<Option<Fence>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(self.local_leases.acquire(name, self.node, ttl)),
            Backend::Postgres(s) => s.acquire_lease(name, self.node, ttl).await,
        }
    }

    /// Extends those of `fences` this node still holds by `ttl` from now, and returns them;
    /// one that expired meanwhile is lost, even if nobody else took it.
    pub async fn renew_leases(&self, fences: &[Fence], ttl: Duration) -> Result<Vec<Fence>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(self.local_leases.renew(fences, ttl)),
            Backend::Postgres(s) => s.renew_leases(fences, ttl).await,
        }
    }

    /// The names of the leases some node holds now.
    pub async fn held_leases(&self) -> Result<std::collections::HashSet<String>> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(self.local_leases.held()),
            Backend::Postgres(s) => s.held_leases().await,
        }
    }

    /// Gives a lease up, for another node to take at once.
    pub async fn release_lease(&self, fence: &Fence) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => {
                self.local_leases.release(fence);
                Ok(())
            }
            Backend::Postgres(s) => s.release_lease(fence).await,
        }
    }

    /// Notes this node alive; returns how many nodes share the store now (seen within `ttl`).
    pub async fn node_alive(&self, name: &str, ttl: Duration) -> Result<u64> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(1),
            Backend::Postgres(s) => s.node_alive(self.node, name, ttl).await,
        }
    }

    /// Forgets this node among those sharing the store: it is stopping.
    pub async fn node_gone(&self) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => Ok(()),
            Backend::Postgres(s) => s.node_gone(self.node).await,
        }
    }

    /// Tells the other nodes that a webhook, destination or replay job changed.
    pub fn announce_change(&self) {
        if let Backend::Postgres(s) = &self.backend {
            s.announce_change();
        }
    }

    /// Counts the changes other nodes announced (never, on SQLite).
    pub fn changed_elsewhere(&self) -> tokio::sync::watch::Receiver<u64> {
        match &self.backend {
            Backend::Sqlite(_) => tokio::sync::watch::Sender::new(0).subscribe(),
            Backend::Postgres(s) => s.changed_elsewhere(),
        }
    }

    /// Checks a SQLite write's fence before it is submitted; a PostgreSQL write checks it in
    /// its own transaction (`store/postgres/leases.rs`).
    fn local_fence(&self, fence: &Fence) -> Result<()> {
        match &self.backend {
            Backend::Sqlite(_) => self.local_leases.check(fence),
            Backend::Postgres(_) => Ok(()),
        }
    }

    /// Answers when the database can serve a query (readiness).
    pub async fn ping(&self) -> Result<()> {
        backend!(self, s => s.ping().await)
    }

    /// Stops the background writer after it has committed everything already submitted.
    pub async fn close(&self) {
        backend!(self, s => s.close().await)
    }

    /// The store's identity, made once when it was created: with a `seq`, it makes an event's
    /// stable id (DECISIONS.md D13).
    pub fn identity(&self) -> Uuid {
        backend!(self, s => s.identity)
    }

    /// What was committed last, and when: delivery waits on it and measures latency from it.
    pub fn commits(&self) -> &Commits {
        &self.commits
    }

    /// Why the store refuses writes, and since when; `None` while it accepts them.
    pub fn refusing(&self) -> Option<Refusing> {
        self.health.refusing()
    }

    /// The installation's organization, creating it on first use; `true` when it was created.
    pub async fn ensure_default_org(&self, name: &str, now: Timestamp) -> Result<(Org, bool)> {
        backend!(self, s => s.ensure_default_org(name, now).await)
    }

    pub async fn create_token(&self, token: NewToken) -> Result<TokenRecord> {
        backend!(self, s => s.create_token(token).await)
    }

    pub async fn find_token(&self, secret_hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        backend!(self, s => s.find_token(secret_hash).await)
    }

    pub async fn list_tokens(&self, org: OrgId) -> Result<Vec<TokenRecord>> {
        backend!(self, s => s.list_tokens(org).await)
    }

    /// Revokes by token id; `false` when no live token has that id.
    pub async fn revoke_token(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        backend!(self, s => s.revoke_token(id, now).await)
    }

    pub async fn create_portal(&self, portal: &Portal) -> Result<()> {
        backend!(self, s => s.create_portal(portal).await)
    }

    pub async fn get_portal(&self, org: OrgId, id: PortalId) -> Result<Option<Portal>> {
        backend!(self, s => s.get_portal(org, id).await)
    }

    pub async fn list_portals(&self, org: OrgId, page: &PageQuery) -> Result<Vec<Portal>> {
        backend!(self, s => s.list_portals(org, page).await)
    }

    pub async fn delete_portal(&self, org: OrgId, id: PortalId) -> Result<bool> {
        let deleted = backend!(self, s => s.delete_portal(org, id).await)?;
        self.backlogs
            .forget(|s| s.org_id == org && s.portal_id == Some(id));
        Ok(deleted)
    }

    /// Creates a destination; `Conflict` when its name is taken in the organization.
    pub async fn create_destination(&self, destination: &Destination) -> Result<()> {
        backend!(self, s => s.create_destination(destination).await)
    }

    pub async fn get_destination(&self, org: OrgId, id: Uuid) -> Result<Option<Destination>> {
        backend!(self, s => s.get_destination(org, id).await)
    }

    pub async fn list_destinations(
        &self,
        org: OrgId,
        page: &PageQuery,
        filter: &DestinationFilter,
    ) -> Result<Vec<Destination>> {
        backend!(self, s => s.list_destinations(org, page, filter).await)
    }

    /// Saves every field but `created_at` and re-arms the webhooks that use it (DECISIONS.md D4);
    /// `false` when it no longer exists; `Conflict` on a taken name.
    pub async fn update_destination(&self, destination: &Destination) -> Result<bool> {
        backend!(self, s => s.update_destination(destination).await)
    }

    /// `false` when it does not exist; `Conflict` while a webhook refers to it.
    pub async fn delete_destination(&self, org: OrgId, id: Uuid) -> Result<bool> {
        backend!(self, s => s.delete_destination(org, id).await)
    }

    /// The destination a region's v2 inline webhook writes to, if it has been made.
    pub async fn get_managed_destination(
        &self,
        org: OrgId,
        region: &Region,
    ) -> Result<Option<Destination>> {
        backend!(self, s => s.get_managed_destination(org, region).await)
    }

    pub async fn get_webhook(&self, scope: &Scope) -> Result<Option<Webhook>> {
        backend!(self, s => s.get_webhook(scope).await)
    }

    /// In one transaction: saves the managed destinations (insert or update by id), then creates or
    /// updates each webhook's configuration. Every saved webhook is re-armed to `active`; one that
    /// turns on starts its cursor at the newest event (DECISIONS.md D2). Delivery fields (last
    /// attempt) are kept. `MissingReference` when a destination is gone; `Conflict` when a managed
    /// destination's name is taken.
    pub async fn configure_webhooks(
        &self,
        managed: &[Destination],
        webhooks: &[WebhookConfig],
    ) -> Result<()> {
        backend!(self, s => s.configure_webhooks(managed, webhooks).await)
    }

    /// Every configured webhook, of every organization.
    pub async fn list_webhooks(&self) -> Result<Vec<Webhook>> {
        backend!(self, s => s.list_webhooks().await)
    }

    /// Notes, before a batch is sent, the last `seq` of the range in flight (the batch, and
    /// those it is noted with): after a crash the range is sent again, cut into the same
    /// batches, each with the same Idempotency-Key (DECISIONS.md S3). `false` when the webhook
    /// no longer exists.
    pub async fn mark_in_flight(&self, fence: &Fence, scope: &Scope, through: i64) -> Result<bool> {
        self.local_fence(fence)?;
        match &self.backend {
            Backend::Sqlite(s) => s.mark_in_flight(scope, through).await,
            Backend::Postgres(s) => s.mark_in_flight(fence, scope, through).await,
        }
    }

    /// A scope's events after `after` (and up to `through`), in ingest order.
    pub async fn events_to_deliver(
        &self,
        scope: &Scope,
        after: i64,
        through: Option<i64>,
        limit: u32,
    ) -> Result<Vec<StoredEvent>> {
        backend!(self, s => s.events_to_deliver(scope, after, through, limit).await)
    }

    /// Those of a scope's events whose `seq` is in `seqs` and that are still stored, in the
    /// order of `seqs`.
    pub async fn events_by_seq(&self, scope: &Scope, seqs: &[i64]) -> Result<Vec<StoredEvent>> {
        backend!(self, s => s.events_by_seq(scope, seqs).await)
    }

    /// Adds events to a scope's refused list (DECISIONS.md D14); one already there takes the
    /// new reason, and is no longer waiting to be sent again.
    pub async fn record_refused(
        &self,
        fence: &Fence,
        scope: &Scope,
        events: &[RefusedEvent],
    ) -> Result<()> {
        self.local_fence(fence)?;
        match &self.backend {
            Backend::Sqlite(s) => s.record_refused(scope, events).await,
            Backend::Postgres(s) => s.record_refused(fence, scope, events).await,
        }
    }

    /// A page of a scope's refused list, by `seq`.
    pub async fn list_refused(&self, scope: &Scope, page: &PageQuery) -> Result<Vec<RefusedEvent>> {
        backend!(self, s => s.list_refused(scope, page).await)
    }

    /// How many events a scope's refused list holds.
    pub async fn count_refused(&self, scope: &Scope) -> Result<u64> {
        backend!(self, s => s.count_refused(scope).await)
    }

    /// Marks every event of a scope's refused list to be sent again; how many were marked.
    pub async fn request_resend(&self, scope: &Scope, at: Timestamp) -> Result<u64> {
        backend!(self, s => s.request_resend(scope, at).await)
    }

    /// The scopes with refused events marked to be sent again.
    pub async fn scopes_to_resend(&self) -> Result<Vec<Scope>> {
        backend!(self, s => s.scopes_to_resend().await)
    }

    /// The `seq` of up to `limit` refused events marked to be sent again, oldest first.
    pub async fn refused_to_resend(&self, scope: &Scope, limit: u32) -> Result<Vec<i64>> {
        backend!(self, s => s.refused_to_resend(scope, limit).await)
    }

    /// Removes events from a scope's refused list: delivered at last, or gone.
    pub async fn forget_refused(&self, fence: &Fence, scope: &Scope, seqs: &[i64]) -> Result<()> {
        self.local_fence(fence)?;
        match &self.backend {
            Backend::Sqlite(s) => s.forget_refused(scope, seqs).await,
            Backend::Postgres(s) => s.forget_refused(fence, scope, seqs).await,
        }
    }

    /// How many of a scope's events come after `after`, and the oldest event time among them:
    /// a webhook's backlog, exact, at the cost of what changed since it was last measured.
    pub async fn undelivered(&self, scope: &Scope, after: i64) -> Result<(u64, Option<Timestamp>)> {
        let summary = self.backlogs.of(scope);
        let mut summary = summary.lock().await;
        // Measured on a copy that replaces the summary only once every read is in.
        let mut backlog = summary.clone();
        // Read before the events: a prune that lands during the reads shows next time. On
        // PostgreSQL any node may have pruned, and the database says what.
        let pruned = match &self.backend {
            Backend::Sqlite(_) => self.backlogs.pruned(),
            Backend::Postgres(s) => s.pruned().await?,
        };
        let head = backend!(self, s => s.scope_head(scope).await)?;
        let mut read = Vec::new();
        for span in backlog.advance(after, head, pruned) {
            read.extend(backend!(self, s => s.backlog_buckets(scope, span).await)?);
        }
        backlog.fill(read);
        let (count, oldest) = backlog.totals();
        *summary = backlog;
        Ok((count, oldest.map(Timestamp::from_millis)))
    }

    /// Records a live delivery attempt, as it happens: the webhook's status shows it, and the
    /// delivery log gets it (trimmed to the newest `keep` of the scope), in one transaction.
    /// Delivered: the status turns `active`, the failures are cleared and the cursor moves past
    /// the batch — one statement, so no crash can separate the two; the next batch, when one is
    /// already built, is noted in flight by it too. Failed: the status turns `inactive`, the
    /// failures count up and `next_at` is shown; the cursor and the range in flight stay on the
    /// batch. `false` when the webhook no longer exists.
    pub async fn record_attempt(
        &self,
        fence: &Fence,
        scope: &Scope,
        attempt: &DeliveryAttempt,
        outcome: AttemptOutcome,
        keep: u32,
    ) -> Result<bool> {
        self.local_fence(fence)?;
        match &self.backend {
            Backend::Sqlite(s) => s.record_attempt(scope, attempt, outcome, keep).await,
            Backend::Postgres(s) => s.record_attempt(fence, scope, attempt, outcome, keep).await,
        }
    }

    /// Adds a replay job's attempt to the scope's delivery log (trimmed to the newest `keep`);
    /// the webhook's status is live delivery's and stays as it is.
    pub async fn log_attempt(
        &self,
        fence: &Fence,
        scope: &Scope,
        attempt: &DeliveryAttempt,
        keep: u32,
    ) -> Result<()> {
        self.local_fence(fence)?;
        match &self.backend {
            Backend::Sqlite(s) => s.log_attempt(scope, attempt, keep).await,
            Backend::Postgres(s) => s.log_attempt(fence, scope, attempt, keep).await,
        }
    }

    /// A page of a scope's delivery log, newest first (`Seek::Forward(after)` by id, descending).
    pub async fn list_attempts(
        &self,
        scope: &Scope,
        page: &PageQuery,
    ) -> Result<Vec<LoggedAttempt>> {
        backend!(self, s => s.list_attempts(scope, page).await)
    }

    /// Re-arms a webhook now ("Retry now"): `active`, the next attempt due at once. `false` when
    /// it does not exist.
    pub async fn rearm_webhook(&self, scope: &Scope, now: Timestamp) -> Result<bool> {
        backend!(self, s => s.rearm_webhook(scope, now).await)
    }

    /// Deletes the webhooks of these scopes; returns how many existed.
    pub async fn delete_webhooks(&self, scopes: &[Scope]) -> Result<u64> {
        let deleted = backend!(self, s => s.delete_webhooks(scopes).await)?;
        self.backlogs.forget(|s| scopes.contains(s));
        Ok(deleted)
    }

    pub async fn get_replay_job(&self, scope: &Scope) -> Result<Option<ReplayJob>> {
        backend!(self, s => s.get_replay_job(scope).await)
    }

    /// Jobs that are accepted, pending or running, oldest first.
    pub async fn active_replay_jobs(&self) -> Result<Vec<ReplayJob>> {
        backend!(self, s => s.active_replay_jobs().await)
    }

    /// Makes each of `jobs` its scope's job, all or none: `false`, with nothing changed, when
    /// one scope's current job is still in progress (checked in the write itself, so a PUT
    /// that lost a race to another changes nothing). Each job replaced goes to its scope's
    /// history (the newest 20 are kept).
    pub async fn replace_replay_jobs(&self, jobs: &[ReplayJob]) -> Result<bool> {
        backend!(self, s => s.replace_replay_jobs(jobs).await)
    }

    /// The scope's past jobs, newest first.
    pub async fn replay_history(&self, scope: &Scope, limit: u32) -> Result<Vec<ReplayJob>> {
        backend!(self, s => s.replay_history(scope, limit).await)
    }

    /// Ends the scope's job in progress as `failed` with `reason`; `None` when none was in
    /// progress. Its executor stops at its next save.
    pub async fn cancel_replay_job(
        &self,
        scope: &Scope,
        reason: &str,
        now: Timestamp,
    ) -> Result<Option<ReplayJob>> {
        backend!(self, s => s.cancel_replay_job(scope, reason, now).await)
    }

    /// Saves a job's status and progress; `false` when it was replaced or cancelled meanwhile.
    pub async fn save_replay_job(&self, fence: &Fence, job: &ReplayJob) -> Result<bool> {
        self.local_fence(fence)?;
        match &self.backend {
            Backend::Sqlite(s) => s.save_replay_job(job).await,
            Backend::Postgres(s) => s.save_replay_job(fence, job).await,
        }
    }

    /// How many of a scope's events have `from <= ts <= to`, and the newest `seq` among
    /// them (0 when there are none), read together.
    pub async fn count_events_between(
        &self,
        scope: &Scope,
        from: Timestamp,
        to: Timestamp,
    ) -> Result<(u64, i64)> {
        backend!(self, s => s.count_events_between(scope, from, to).await)
    }

    /// Appends events durably: when this returns `Ok`, they survive a crash of the process
    /// and of the machine. All or nothing.
    pub async fn append_events(&self, events: Vec<Event>) -> Result<()> {
        match &self.backend {
            // Its writer commits in groups, and reports to the feed and the health itself.
            Backend::Sqlite(s) => s.append_events(events).await,
            Backend::Postgres(s) => {
                let appended = s.append_events(&events).await;
                self.health.observe(&appended);
                if let Some(last) = appended? {
                    self.commits.record_appended(last);
                }
                Ok(())
            }
        }
    }

    pub async fn list_events(&self, query: &EventQuery) -> Result<Vec<StoredEvent>> {
        backend!(self, s => s.list_events(query).await)
    }

    /// The last `query.limit` events before `(ts ms, seq)`, oldest first; `query.after` is
    /// ignored. Backward paging of the pull API.
    pub async fn list_events_before(
        &self,
        query: &EventQuery,
        before: (i64, i64),
    ) -> Result<Vec<StoredEvent>> {
        backend!(self, s => s.list_events_before(query, before).await)
    }

    pub async fn count_events(&self) -> Result<u64> {
        backend!(self, s => s.count_events().await)
    }

    /// Deletes at most `chunk` events older than `cutoff`, never the newest event of all (whose
    /// `seq` must not be handed out again) nor one its scope's log has not taken yet (its leaf
    /// is made from its content); returns how many it deleted.
    pub async fn prune_events(&self, cutoff: Timestamp, chunk: u32) -> Result<u64> {
        let deleted = backend!(self, s => s.prune_events(cutoff, chunk).await);
        // After the deletes, never before: a backlog measured in between would keep counting
        // what is gone. Also after a failure, which may come after some scopes were pruned (a
        // note with nothing deleted costs a re-read, no more).
        if deleted.as_ref().is_ok_and(|n| *n > 0) || deleted.is_err() {
            self.backlogs.note_pruned(cutoff.as_millis());
        }
        deleted
    }

    /// Every scope's tamper-evident log head (DECISIONS.md S24).
    pub async fn log_heads(&self) -> Result<Vec<LogHead>> {
        backend!(self, s => s.log_heads().await)
    }

    /// Chunks `from..to` of a scope's log that still hold their leaves, in order.
    pub async fn log_chunks(&self, scope: &Scope, from: u64, to: u64) -> Result<Vec<Chunk>> {
        backend!(self, s => s.log_chunks(scope, from, to).await)
    }

    /// The roots of a scope's full chunks `from..to`, in order (fewer when the log has fewer).
    pub async fn log_chunk_roots(
        &self,
        scope: &Scope,
        from: u64,
        to: u64,
    ) -> Result<Vec<auditrelay_core::merkle::Hash>> {
        backend!(self, s => s.log_chunk_roots(scope, from, to).await)
    }

    /// What a proof ending at `size` in a scope's log is made of (`LogTiles`): the roots of
    /// the full groups below `size`, and for each leaf index in `reach`, its group's chunk
    /// roots and its chunk's leaves. A proof reads O(size / 16,384 + 3 · 128) rows, not
    /// O(size / 128).
    pub async fn log_tiles(&self, scope: &Scope, size: u64, reach: &[u64]) -> Result<LogTiles> {
        use auditrelay_core::integrity::{CHUNK_LEAVES, GROUP_CHUNKS, GROUP_LEAVES};
        let mut tiles = LogTiles {
            groups: backend!(self, s => s.log_group_roots(scope, size / GROUP_LEAVES).await)?,
            ..LogTiles::default()
        };
        let full_chunks = size / CHUNK_LEAVES;
        for &index in reach {
            let group = index / GROUP_LEAVES;
            if tiles.groups_reached.insert(group) {
                let first = group * GROUP_CHUNKS;
                let to = (first + GROUP_CHUNKS).min(full_chunks);
                let roots = self.log_chunk_roots(scope, first, to).await?;
                tiles.roots.extend((first..).zip(roots));
            }
            let number = index / CHUNK_LEAVES;
            if let std::collections::hash_map::Entry::Vacant(slot) = tiles.chunks.entry(number) {
                let chunk = self.log_chunks(scope, number, number + 1).await?;
                if let Some(chunk) = chunk.into_iter().next() {
                    slot.insert(chunk);
                }
            }
        }
        Ok(tiles)
    }

    /// Writes `chunks` and moves the log's head to `head` if the log still has `from` leaves;
    /// `false`, writing nothing, when another writer extended it first.
    pub async fn extend_log(
        &self,
        from: u64,
        chunks: &[ChunkWrite],
        head: &LogHead,
    ) -> Result<bool> {
        backend!(self, s => s.extend_log(from, chunks, head).await)
    }

    /// Adds a signed checkpoint unless the scope has one newer than `after` (the id of the one
    /// it follows, 0 for none) or larger: `false` when another writer was faster.
    pub async fn add_checkpoint(
        &self,
        scope: &Scope,
        checkpoint: &StoredCheckpoint,
        after: i64,
    ) -> Result<bool> {
        backend!(self, s => s.add_checkpoint(scope, checkpoint, after).await)
    }

    /// A scope's newest checkpoint.
    pub async fn latest_checkpoint(&self, scope: &Scope) -> Result<Option<StoredCheckpoint>> {
        backend!(self, s => s.latest_checkpoint(scope).await)
    }

    /// The first checkpoint a scope's log had at `size` leaves.
    pub async fn checkpoint_at(
        &self,
        scope: &Scope,
        size: u64,
    ) -> Result<Option<StoredCheckpoint>> {
        backend!(self, s => s.checkpoint_at(scope, size).await)
    }

    /// The chunks of a scope's log that hold the events after `after` up to `through`
    /// (`seq`s), in order: a lane of a destination with `integrity` finds their places there.
    pub async fn log_places(&self, scope: &Scope, after: i64, through: i64) -> Result<Vec<Chunk>> {
        backend!(self, s => s.log_places(scope, after, through).await)
    }

    /// The `seq` of the newest event a scope's log has taken; 0 before it took any. A lane of
    /// a destination with `integrity` reads no event past it: it could not write its line.
    pub async fn log_reach(&self, scope: &Scope) -> Result<i64> {
        backend!(self, s => s.log_reach(scope).await)
    }

    /// How many leaves of a scope's log are events up to `seq`: where retention emptied the
    /// chunk `seq` falls in, the leaves before that chunk.
    pub async fn log_leaves_through(&self, scope: &Scope, seq: i64) -> Result<u64> {
        backend!(self, s => s.log_leaves_through(scope, seq).await)
    }

    /// A scope's checkpoints signed from `from` to `to`, after the one of id `after`, oldest
    /// first, at most `limit`: those a replay of that window sends again.
    pub async fn checkpoints_signed_between(
        &self,
        scope: &Scope,
        from: Timestamp,
        to: Timestamp,
        after: i64,
        limit: u32,
    ) -> Result<Vec<StoredCheckpoint>> {
        backend!(self, s => s.checkpoints_signed_between(scope, from, to, after, limit).await)
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
        backend!(self, s => s.checkpoints_after(scope, after, max_size, limit).await)
    }

    /// Prunes what the tamper-evident log no longer needs (DECISIONS.md S25):
    /// - a full chunk's leaves, once its newest event is older than `keep_cutoff` and the log's
    ///   newest checkpoint covers it, unless a checkpoint still kept ends inside it (a proof at
    ///   that size needs them); the chunk's root stays;
    /// - checkpoints signed before `window_cutoff` (the events' retention), but each log's
    ///   newest and the first of each hour; and those signed before `keep_cutoff`, but each
    ///   log's newest.
    pub async fn prune_log(&self, window_cutoff: Timestamp, keep_cutoff: Timestamp) -> Result<u64> {
        backend!(self, s => s.prune_log(window_cutoff, keep_cutoff).await)
    }
}

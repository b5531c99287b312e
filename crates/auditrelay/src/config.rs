//! Configuration: the embedded defaults, an optional file, environment variables and flags,
//! merged once at start-up into one typed, validated [`Config`] that is passed explicitly.
//!
//! Layers, later wins: `config.default.toml` (embedded, commented: the reference for every
//! key) → `--config FILE` → `AUDITRELAY_<SECTION>__<KEY>` → command-line flags.

use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use auditrelay_core::batch::BatchLimits;
use auditrelay_core::retry::RetryPolicy;
use auditrelay_core::token;
use auditrelay_core::{FormatConfig, Region};
use serde::{Deserialize, Deserializer};

/// The embedded defaults; also the documentation of every key.
pub const DEFAULT_TOML: &str = include_str!("../config.default.toml");

#[derive(Debug, Clone, Deserialize)]
pub struct Config {
    pub server: ServerConfig,
    #[serde(default)]
    pub store: StoreConfig,
    pub regions: RegionsConfig,
    pub ingest: IngestConfig,
    pub retention: RetentionConfig,
    pub integrity: IntegrityConfig,
    pub delivery: DeliveryConfig,
    pub signing: SigningConfig,
    pub format: FormatSection,
    pub log: LogConfig,
    pub ui: UiConfig,
    #[serde(default)]
    pub metrics: MetricsConfig,
    /// Set by `--dev`: relaxes the endpoint rules for local development.
    #[serde(default)]
    pub dev: bool,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ServerConfig {
    pub listen: SocketAddr,
    pub data_dir: PathBuf,
    #[serde(deserialize_with = "duration")]
    pub shutdown_grace: Duration,
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub header_read_timeout: Duration,
    #[serde(deserialize_with = "duration")]
    pub idle_timeout: Duration,
    pub max_connections: usize,
    /// Peers whose `X-Forwarded-Host` names the host a request was sent to (for its region).
    #[serde(default, deserialize_with = "networks")]
    pub trusted_proxies: Vec<Network>,
    /// PEM files of the certificate chain and its key: with both, the listener speaks TLS.
    #[serde(default)]
    pub tls_cert: Option<PathBuf>,
    #[serde(default)]
    pub tls_key: Option<PathBuf>,
}

/// The address a request came from: the TCP peer, or, when that is one of `trusted`
/// proxies, the nearest address of `X-Forwarded-For` that is not (proxies append the address
/// they heard from, so entries left of an untrusted one are the client's to invent).
pub fn client_ip(
    peer: Option<std::net::IpAddr>,
    forwarded_for: Option<&str>,
    trusted: &[Network],
) -> Option<std::net::IpAddr> {
    let is_trusted = |ip: std::net::IpAddr| trusted.iter().any(|n| n.contains(ip));
    let peer = peer?;
    if !is_trusted(peer) {
        return Some(peer);
    }
    let hops = forwarded_for.unwrap_or_default().split(',').rev();
    for hop in hops {
        match hop.trim().parse::<std::net::IpAddr>() {
            Ok(ip) if is_trusted(ip) => continue,
            Ok(ip) => return Some(ip),
            Err(_) => break,
        }
    }
    Some(peer)
}

/// An address range, `10.0.0.0/8`, or one address.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Network {
    addr: std::net::IpAddr,
    prefix: u8,
}

impl Network {
    pub fn parse(s: &str) -> Option<Self> {
        let (addr, prefix) = match s.split_once('/') {
            Some((addr, prefix)) => (addr, Some(prefix.parse::<u8>().ok()?)),
            None => (s, None),
        };
        let addr: std::net::IpAddr = addr.parse().ok()?;
        let max = if addr.is_ipv4() { 32 } else { 128 };
        let prefix = prefix.unwrap_or(max);
        (prefix <= max).then_some(Self { addr, prefix })
    }

    pub fn contains(&self, ip: std::net::IpAddr) -> bool {
        use std::net::IpAddr::{V4, V6};
        // An IPv4 peer may show as IPv4-mapped IPv6 on a dual-stack socket.
        let ip = match ip {
            V6(v6) => v6.to_ipv4_mapped().map_or(ip, V4),
            v4 => v4,
        };
        match (self.addr, ip) {
            (V4(net), V4(ip)) => {
                let mask = u32::MAX
                    .checked_shl(32 - u32::from(self.prefix))
                    .unwrap_or(0);
                u32::from(net) & mask == u32::from(ip) & mask
            }
            (V6(net), V6(ip)) => {
                let mask = u128::MAX
                    .checked_shl(128 - u32::from(self.prefix))
                    .unwrap_or(0);
                u128::from(net) & mask == u128::from(ip) & mask
            }
            _ => false,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RegionsConfig {
    #[serde(deserialize_with = "regions")]
    pub list: Vec<Region>,
}

impl RegionsConfig {
    /// The region of requests that name none: the first configured one.
    pub fn default_region(&self) -> &Region {
        &self.list[0]
    }

    pub fn get(&self, name: &str) -> Option<&Region> {
        self.list.iter().find(|r| r.as_str() == name)
    }

    /// The configured regions as `us, eu`, for messages.
    pub fn names(&self) -> String {
        self.list
            .iter()
            .map(Region::as_str)
            .collect::<Vec<_>>()
            .join(", ")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IngestConfig {
    #[serde(deserialize_with = "byte_size")]
    pub max_body_bytes: usize,
    pub max_events: usize,
    #[serde(deserialize_with = "duration")]
    pub max_future_skew: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RetentionConfig {
    #[serde(deserialize_with = "duration")]
    pub window: Duration,
    #[serde(deserialize_with = "duration")]
    pub prune_interval: Duration,
    pub prune_chunk: u32,
}

/// The tamper-evident log (PRODUCT Decision 16, docs/INTEGRITY.md).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct IntegrityConfig {
    /// How often every log's checkpoint is signed, also when nothing happened.
    #[serde(deserialize_with = "duration")]
    pub checkpoint_interval: Duration,
    /// How long leaf hashes and checkpoints outlive the events.
    #[serde(deserialize_with = "duration")]
    pub keep_leaves: Duration,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DeliveryConfig {
    pub allow_http_endpoints: bool,
    pub allow_private_endpoints: bool,
    /// A batch is sent once it holds this many events …
    pub batch_max_events: usize,
    /// … or this many uncompressed bytes …
    #[serde(deserialize_with = "byte_size")]
    pub batch_max_bytes: usize,
    /// … or this long after its first event, whichever comes first.
    #[serde(deserialize_with = "duration")]
    pub flush_interval: Duration,
    #[serde(deserialize_with = "duration")]
    pub connect_timeout: Duration,
    /// The whole attempt: connecting, sending the batch and reading the answer.
    #[serde(deserialize_with = "duration")]
    pub request_timeout: Duration,
    /// The first wait before an inactive webhook is tried again; it doubles up to `probe_max`.
    #[serde(deserialize_with = "duration")]
    pub probe_min: Duration,
    #[serde(deserialize_with = "duration")]
    pub probe_max: Duration,
    /// How many attempts the delivery log keeps per webhook.
    pub log_size: u32,
}

impl DeliveryConfig {
    /// DECISIONS.md D3's retries, with the probing of DECISIONS.md D4 as configured.
    pub fn retry_policy(&self) -> RetryPolicy {
        RetryPolicy {
            first_probe: self.probe_min,
            max_probe: self.probe_max,
            ..RetryPolicy::default()
        }
    }

    pub fn batch_limits(&self) -> BatchLimits {
        BatchLimits {
            max_events: self.batch_max_events,
            max_bytes: self.batch_max_bytes,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SigningConfig {
    /// How long a key made by `keys rotate` is published before it signs.
    #[serde(deserialize_with = "duration")]
    pub activation_delay: Duration,
}

/// The names rendered into every log line (CEF header, JSON `event_vendor`, …).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FormatSection {
    pub vendor: String,
    pub org_product: String,
    pub portal_product: String,
    pub host: String,
}

impl FormatSection {
    /// The core's rendering configuration; the CEF device version keeps its default.
    pub fn to_format_config(&self) -> FormatConfig {
        FormatConfig {
            vendor: self.vendor.clone(),
            org_product: self.org_product.clone(),
            portal_product: self.portal_product.clone(),
            host: self.host.clone(),
            ..FormatConfig::default()
        }
    }
}

/// Where the records are (`[store]`).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct StoreConfig {
    /// Empty: `auditrelay.db` in the data directory. A path, or `sqlite://PATH`: that SQLite
    /// file. `postgres://…` (or `postgresql://…`): a PostgreSQL database several nodes share.
    #[serde(default)]
    pub url: StoreUrl,
    /// How long a node's hold on a webhook's lane, a replay job or the pruner lasts without
    /// being renewed (DECISIONS.md S21): after a node dies, another takes over its work within
    /// this and a fifth of it.
    #[serde(deserialize_with = "duration", default = "default_lease_ttl")]
    pub lease_ttl: Duration,
    /// With PostgreSQL: the key-encryption key (32 bytes, base64) that seals the signing keys
    /// and the secrets key in the database. Every node is given the same; it is never stored
    /// beside the data (DECISIONS.md S22).
    #[serde(default)]
    pub key_encryption_key: Option<KeyEncryptionKey>,
}

/// `store.key_encryption_key`: never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct KeyEncryptionKey(String);

impl KeyEncryptionKey {
    /// The key's 32 bytes; `None` when the value is not base64 of 32 bytes.
    pub fn bytes(&self) -> Option<[u8; 32]> {
        use base64::Engine as _;
        let engine = base64::engine::general_purpose::STANDARD;
        engine.decode(self.0.trim()).ok()?.try_into().ok()
    }
}

impl std::str::FromStr for KeyEncryptionKey {
    type Err = std::convert::Infallible;

    fn from_str(key: &str) -> Result<Self, Self::Err> {
        Ok(Self(key.to_owned()))
    }
}

impl std::fmt::Debug for KeyEncryptionKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("\"***\"")
    }
}

fn default_lease_ttl() -> Duration {
    Duration::from_secs(5)
}

impl Default for StoreConfig {
    fn default() -> Self {
        Self {
            url: StoreUrl::default(),
            lease_ttl: default_lease_ttl(),
            key_encryption_key: None,
        }
    }
}

/// The shortest lease: renewed every fifth of it, over a network and a busy database.
const MIN_LEASE_TTL: Duration = Duration::from_secs(2);
/// The longest: a dead node's webhooks wait this long.
const MAX_LEASE_TTL: Duration = Duration::from_secs(120);

/// `store.url`. A PostgreSQL URL may hold a password, so it is never printed whole.
#[derive(Clone, Default, Deserialize)]
#[serde(transparent)]
pub struct StoreUrl(String);

impl std::str::FromStr for StoreUrl {
    type Err = std::convert::Infallible;

    fn from_str(url: &str) -> Result<Self, Self::Err> {
        Ok(Self(url.to_owned()))
    }
}

/// The parameters a PostgreSQL URL may carry (those sqlx reads; it would log any other, value
/// and all). Their values are shown, except a password's.
const POSTGRES_PARAMETERS: &[&str] = &[
    "sslmode",
    "ssl-mode",
    "sslrootcert",
    "ssl-root-cert",
    "ssl-ca",
    "sslcert",
    "ssl-cert",
    "sslkey",
    "ssl-key",
    "statement-cache-capacity",
    "host",
    "hostaddr",
    "port",
    "dbname",
    "user",
    "password",
    "application_name",
    "options",
];

impl std::fmt::Debug for StoreUrl {
    /// The password, in the user part or as a `password` parameter, as `***`; the value of a
    /// parameter not in [`POSTGRES_PARAMETERS`] too (`validate` refuses such a URL).
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let Ok(mut url) = url::Url::parse(&self.0) else {
            return f.write_str("\"(not a URL)\"");
        };
        if url.password().is_some() {
            let _ = url.set_password(Some("***"));
        }
        let secret = |key: &str| key == "password" || !POSTGRES_PARAMETERS.contains(&key);
        if url.query_pairs().any(|(key, _)| secret(&key)) {
            let pairs: Vec<(String, String)> = url
                .query_pairs()
                .map(|(key, value)| {
                    let value = if secret(&key) {
                        "***".into()
                    } else {
                        value.into_owned()
                    };
                    (key.into_owned(), value)
                })
                .collect();
            url.query_pairs_mut().clear().extend_pairs(pairs);
        }
        write!(f, "{:?}", url.as_str())
    }
}

/// Which backend `store.url` names, and where.
#[derive(Clone, PartialEq, Eq)]
pub enum StoreLocation {
    /// The embedded default: one SQLite file, one process.
    Sqlite(PathBuf),
    /// A PostgreSQL database that several `serve` processes share (the URL, as configured).
    Postgres(String),
}

/// Where, in words, for messages: a PostgreSQL URL without its password.
impl std::fmt::Display for StoreLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Sqlite(path) => write!(f, "the SQLite database {}", path.display()),
            Self::Postgres(url) => {
                write!(f, "the PostgreSQL database {:?}", StoreUrl(url.clone()))
            }
        }
    }
}

/// Who may scrape `/metrics`, and where.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct MetricsConfig {
    /// Scrapers present it as a bearer token on the main listener.
    #[serde(default)]
    pub token: Option<MetricsToken>,
    /// A listener of its own that serves `/metrics` alone, without a token.
    #[serde(default)]
    pub listen: Option<SocketAddr>,
}

/// The scrape token; never printed.
#[derive(Clone, Deserialize)]
#[serde(transparent)]
pub struct MetricsToken(String);

impl MetricsToken {
    pub fn new(token: impl Into<String>) -> Self {
        Self(token.into())
    }

    /// Whether `presented` is this token, in time that does not depend on where they differ.
    pub fn matches(&self, presented: &str) -> bool {
        token::constant_time_eq(&token::hash(presented), &token::hash(&self.0))
    }

    fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

impl std::fmt::Debug for MetricsToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// The web UI: its sessions and its wording.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct UiConfig {
    /// A session ends after this long without a request …
    #[serde(deserialize_with = "duration")]
    pub session_idle_timeout: Duration,
    /// … and at the latest this long after its sign-in.
    #[serde(deserialize_with = "duration")]
    pub session_max_age: Duration,
    /// The title of the organization tab and what the UI calls the platform ("Konnect").
    pub product_name: String,
    pub secure_cookie: SecureCookie,
}

/// When the session cookie carries `Secure`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SecureCookie {
    /// When the request came over TLS, as a reverse proxy says with `X-Forwarded-Proto: https`
    /// (auditrelay itself serves plain HTTP).
    Auto,
    /// On every response: for deployments that browsers only ever reach over HTTPS.
    Always,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LogConfig {
    pub format: LogFormat,
    pub level: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    Auto,
    Pretty,
    Json,
}

/// Values given on the command line; they override every other layer.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub config_file: Option<PathBuf>,
    pub listen: Option<SocketAddr>,
    pub data_dir: Option<PathBuf>,
    pub dev: bool,
}

#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    #[error("could not read the configuration: {0}")]
    Load(#[from] config::ConfigError),
    #[error("invalid configuration: {0}")]
    Invalid(String),
}

impl Config {
    /// Loads every layer, reading the process environment.
    pub fn load(overrides: &Overrides) -> Result<Self, ConfigError> {
        Self::load_with_env(overrides, None)
    }

    /// Loads every layer; `env` replaces the process environment (for tests).
    pub fn load_with_env(
        overrides: &Overrides,
        env: Option<config::Map<String, String>>,
    ) -> Result<Self, ConfigError> {
        use config::{Environment, File, FileFormat};

        let mut builder =
            config::Config::builder().add_source(File::from_str(DEFAULT_TOML, FileFormat::Toml));
        if let Some(path) = &overrides.config_file {
            builder = builder.add_source(File::from(path.as_path()).format(FileFormat::Toml));
        }
        builder = builder.add_source(
            Environment::with_prefix("AUDITRELAY")
                .prefix_separator("_")
                .separator("__")
                .list_separator(",")
                .with_list_parse_key("regions.list")
                .with_list_parse_key("server.trusted_proxies")
                .try_parsing(true)
                .source(env),
        );
        if let Some(listen) = overrides.listen {
            builder = builder.set_override("server.listen", listen.to_string())?;
        }
        if let Some(dir) = &overrides.data_dir {
            builder =
                builder.set_override("server.data_dir", dir.to_string_lossy().into_owned())?;
        }
        if overrides.dev {
            builder = builder
                .set_override("dev", true)?
                .set_override("delivery.allow_http_endpoints", true)?
                .set_override("delivery.allow_private_endpoints", true)?;
        }
        let config: Config = builder.build()?.try_deserialize()?;
        config.validate()?;
        Ok(config)
    }

    /// Only the defaults with a data directory: what tests and `token` commands start from.
    pub fn for_data_dir(data_dir: &Path) -> Result<Self, ConfigError> {
        Self::load_with_env(
            &Overrides {
                data_dir: Some(data_dir.to_owned()),
                ..Overrides::default()
            },
            Some(config::Map::new()),
        )
    }

    fn validate(&self) -> Result<(), ConfigError> {
        let invalid = |msg: String| Err(ConfigError::Invalid(msg));
        match self.store_location() {
            StoreLocation::Postgres(url) => {
                let Ok(parsed) = url::Url::parse(&url) else {
                    return invalid(
                        "store.url is not a PostgreSQL URL: write postgres://USER:PASSWORD@HOST[:PORT]/DATABASE[?sslmode=verify-full]"
                            .into(),
                    );
                };
                if parsed.host_str().is_none_or(|h| h.is_empty()) {
                    return invalid("store.url names no PostgreSQL host".into());
                }
                if let Some((key, _)) = parsed
                    .query_pairs()
                    .find(|(key, _)| !POSTGRES_PARAMETERS.contains(&key.as_ref()))
                {
                    return invalid(format!(
                        "store.url has a parameter auditrelay does not know, {key}: the ones it reads are {}",
                        POSTGRES_PARAMETERS.join(", ")
                    ));
                }
            }
            StoreLocation::Sqlite(path) => {
                let scheme = self.store.url.0.split_once("://").map(|(scheme, _)| scheme);
                if scheme.is_some_and(|s| s != "sqlite") {
                    return invalid(format!(
                        "store.url names an unknown backend ({}://): use a path or sqlite://PATH for SQLite, postgres://… for PostgreSQL",
                        scheme.unwrap_or_default()
                    ));
                }
                if path.as_os_str().is_empty() {
                    return invalid("store.url names no SQLite file after sqlite://".into());
                }
            }
        }
        if self.regions.list.is_empty() {
            return invalid("regions.list must name at least one region".into());
        }
        for (i, region) in self.regions.list.iter().enumerate() {
            if region.as_str() == Region::GLOBAL {
                return invalid(
                    "regions.list cannot contain `global`: it means every region".into(),
                );
            }
            if region.as_str() == "ui" {
                return invalid(
                    "regions.list cannot contain `ui`: /ui/ is the web UI's path".into(),
                );
            }
            if self.regions.list[..i].contains(region) {
                return invalid(format!("regions.list names `{region}` twice"));
            }
        }
        if self.server.tls_cert.is_some() != self.server.tls_key.is_some() {
            return invalid(
                "server.tls_cert and server.tls_key go together: set both, or neither".into(),
            );
        }
        if self
            .metrics
            .token
            .as_ref()
            .is_some_and(MetricsToken::is_empty)
        {
            return invalid("metrics.token must not be empty: leave it out instead".into());
        }
        let server = &self.server;
        if server.header_read_timeout.is_zero()
            || server.idle_timeout.is_zero()
            || server.max_connections == 0
        {
            return invalid(
                "server.header_read_timeout, server.idle_timeout and server.max_connections must be above zero".into(),
            );
        }
        if self
            .store
            .key_encryption_key
            .as_ref()
            .is_some_and(|key| key.bytes().is_none())
        {
            return invalid(
                "store.key_encryption_key must be 32 bytes in base64 (for example the output of \
                 `openssl rand -base64 32`)"
                    .into(),
            );
        }
        if !(MIN_LEASE_TTL..=MAX_LEASE_TTL).contains(&self.store.lease_ttl) {
            return invalid("store.lease_ttl must be between 2s and 2m".into());
        }
        if self.retention.window < Duration::from_secs(3600) {
            return invalid("retention.window must be at least 1h".into());
        }
        if !(Duration::from_secs(1)..=Duration::from_secs(3600))
            .contains(&self.integrity.checkpoint_interval)
        {
            return invalid("integrity.checkpoint_interval must be between 1s and 1h".into());
        }
        if self.integrity.keep_leaves < self.retention.window {
            return invalid(
                "integrity.keep_leaves must be at least retention.window: proofs of events still \
                 kept need their leaves"
                    .into(),
            );
        }
        if self.retention.prune_chunk == 0 || self.retention.prune_interval.is_zero() {
            return invalid(
                "retention.prune_chunk and retention.prune_interval must be above zero".into(),
            );
        }
        if self.ingest.max_events == 0 || self.ingest.max_body_bytes == 0 {
            return invalid(
                "ingest.max_events and ingest.max_body_bytes must be above zero".into(),
            );
        }
        let delivery = &self.delivery;
        if !(1..=MAX_BATCH_EVENTS).contains(&delivery.batch_max_events) {
            return invalid(format!(
                "delivery.batch_max_events must be between 1 and {MAX_BATCH_EVENTS}"
            ));
        }
        if !(MIN_BATCH_BYTES..=MAX_BATCH_BYTES).contains(&delivery.batch_max_bytes) {
            return invalid("delivery.batch_max_bytes must be between 1KiB and 64MiB".into());
        }
        if delivery.flush_interval.is_zero() || delivery.flush_interval > MAX_FLUSH_INTERVAL {
            return invalid("delivery.flush_interval must be above zero and at most 1h".into());
        }
        if delivery.connect_timeout.is_zero() || delivery.request_timeout.is_zero() {
            return invalid(
                "delivery.connect_timeout and delivery.request_timeout must be above zero".into(),
            );
        }
        if delivery.probe_min.is_zero()
            || delivery.probe_min > delivery.probe_max
            || delivery.probe_max > MAX_PROBE
        {
            return invalid(
                "delivery.probe_min must be above zero and at most delivery.probe_max, which is at most 5m"
                    .into(),
            );
        }
        if !(1..=10_000).contains(&delivery.log_size) {
            return invalid("delivery.log_size must be 1 to 10000".into());
        }
        if delivery.connect_timeout > delivery.request_timeout {
            // The request timeout covers connecting too; a longer connect timeout would be
            // silently cut short.
            return invalid(
                "delivery.connect_timeout cannot exceed delivery.request_timeout".into(),
            );
        }
        if self.signing.activation_delay >= self.retention.window {
            return invalid(
                "signing.activation_delay must be shorter than retention.window".into(),
            );
        }
        let names = [
            ("format.vendor", &self.format.vendor),
            ("format.org_product", &self.format.org_product),
            ("format.portal_product", &self.format.portal_product),
            ("format.host", &self.format.host),
        ];
        for (key, value) in names {
            // Escaping keeps any character safe in a line, but an empty or multi-line name is
            // a configuration mistake, and the syslog host cannot hold a space.
            if value.trim().is_empty() || value.chars().any(char::is_control) {
                return invalid(format!(
                    "{key} must be non-empty text without control characters"
                ));
            }
        }
        if self.format.host.contains(char::is_whitespace) {
            return invalid("format.host cannot contain spaces".into());
        }
        let ui = &self.ui;
        if ui.session_idle_timeout.is_zero() || ui.session_max_age < ui.session_idle_timeout {
            return invalid(
                "ui.session_idle_timeout must be above zero and at most ui.session_max_age".into(),
            );
        }
        if ui.product_name.trim().is_empty() || ui.product_name.chars().any(char::is_control) {
            return invalid(
                "ui.product_name must be non-empty text without control characters".into(),
            );
        }
        Ok(())
    }

    /// The SQLite file in the data directory: the store when `store.url` is empty.
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("auditrelay.db")
    }

    /// The backend `store.url` names (checked by `validate`).
    pub fn store_location(&self) -> StoreLocation {
        let url = self.store.url.0.trim();
        if url.is_empty() {
            StoreLocation::Sqlite(self.database_path())
        } else if url.starts_with("postgres://") || url.starts_with("postgresql://") {
            StoreLocation::Postgres(url.to_owned())
        } else {
            StoreLocation::Sqlite(PathBuf::from(url.strip_prefix("sqlite://").unwrap_or(url)))
        }
    }
}

/// Bounds of `delivery.*`: wide enough for any receiver we know of (kongctl's listener refuses
/// bodies above 1 MiB decoded), narrow enough to catch a unit mistake.
const MAX_BATCH_EVENTS: usize = 10_000;
const MIN_BATCH_BYTES: usize = 1 << 10;
const MAX_BATCH_BYTES: usize = 64 << 20;
const MAX_FLUSH_INTERVAL: Duration = Duration::from_secs(3600);
/// DECISIONS.md D4: an inactive webhook is tried at least every five minutes.
const MAX_PROBE: Duration = Duration::from_secs(300);

/// Parses a size in bytes: `1048576`, `512B`, `64KiB`, `1MiB`, `1GiB`.
pub fn parse_byte_size(s: &str) -> Option<usize> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: usize = number.parse().ok()?;
    let unit: usize = match unit.trim() {
        "" | "B" => 1,
        "KiB" => 1 << 10,
        "MiB" => 1 << 20,
        "GiB" => 1 << 30,
        _ => return None,
    };
    n.checked_mul(unit)
}

/// A size written as an integer (bytes) or as text with a unit (`1MiB`).
fn byte_size<'de, D: Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    #[derive(Deserialize)]
    #[serde(untagged)]
    enum Size {
        Bytes(u64),
        Text(String),
    }
    let parsed = match Size::deserialize(d)? {
        Size::Bytes(n) => usize::try_from(n).ok(),
        Size::Text(s) => parse_byte_size(&s),
    };
    parsed.ok_or_else(|| {
        serde::de::Error::custom("not a size like 1048576, 512B, 64KiB or 1MiB".to_string())
    })
}

/// Parses `500ms`, `30s`, `5m`, `2h`, `7d`.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let s = s.trim();
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (number, unit) = s.split_at(split);
    let n: u64 = number.parse().ok()?;
    let unit_ms: u64 = match unit.trim() {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        "d" => 86_400_000,
        _ => return None,
    };
    n.checked_mul(unit_ms).map(Duration::from_millis)
}

fn duration<'de, D: Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let s = String::deserialize(d)?;
    parse_duration(&s).ok_or_else(|| {
        serde::de::Error::custom(format!(
            "`{s}` is not a duration like 500ms, 30s, 5m, 2h or 7d"
        ))
    })
}

fn networks<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Network>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .filter(|s| !s.trim().is_empty())
        .map(|s| {
            Network::parse(s.trim()).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{s}` is not an address or a range like 10.0.0.0/8"
                ))
            })
        })
        .collect()
}

fn regions<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<Region>, D::Error> {
    Vec::<String>::deserialize(d)?
        .into_iter()
        .map(|s| {
            Region::parse(s.trim()).ok_or_else(|| {
                serde::de::Error::custom(format!(
                    "`{s}` is not a region label (lowercase letters, digits and hyphens)"
                ))
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &[(&str, &str)]) -> Option<config::Map<String, String>> {
        Some(
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    #[test]
    fn defaults_load() {
        let c = Config::load_with_env(&Overrides::default(), env(&[])).unwrap();
        assert_eq!(c.server.listen.to_string(), "127.0.0.1:8080");
        assert_eq!(c.regions.default_region().as_str(), "us");
        assert_eq!(c.retention.window, Duration::from_secs(7 * 86_400));
        assert!(!c.delivery.allow_http_endpoints && !c.dev);
        assert_eq!(c.signing.activation_delay, Duration::from_secs(600));
        assert_eq!(c.delivery.batch_limits(), BatchLimits::default());
        assert_eq!(c.delivery.flush_interval, Duration::from_secs(1));
        assert_eq!(c.delivery.connect_timeout, Duration::from_secs(10));
        assert_eq!(c.delivery.request_timeout, Duration::from_secs(30));
        assert_eq!(c.ingest.max_body_bytes, 10 << 20);
        let format = c.format.to_format_config();
        assert_eq!(
            (
                format.vendor.as_str(),
                format.org_product.as_str(),
                format.portal_product.as_str(),
                format.host.as_str()
            ),
            ("KongInc", "Konnect", "Dev-Portal", "konghq.com")
        );
        assert_eq!(format.version, FormatConfig::default().version);
        assert_eq!(c.ui.session_idle_timeout, Duration::from_secs(30 * 60));
        assert_eq!(c.ui.session_max_age, Duration::from_secs(12 * 3600));
        assert_eq!(c.ui.product_name, "Konnect");
        assert_eq!(c.ui.secure_cookie, SecureCookie::Auto);
    }

    #[test]
    fn store_url_names_the_backend_and_never_shows_a_password() {
        let load = |url: &str| {
            Config::load_with_env(
                &Overrides::default(),
                env(&[("AUDITRELAY_STORE__URL", url)]),
            )
        };
        let c = Config::load_with_env(&Overrides::default(), env(&[])).unwrap();
        assert!(c.store_location() == StoreLocation::Sqlite(c.database_path()));
        let c = load("sqlite:///var/lib/a.db").unwrap();
        assert!(c.store_location() == StoreLocation::Sqlite("/var/lib/a.db".into()));
        let url =
            "postgres://relay:hunter2@db.internal:5432/audit?sslmode=verify-full&password=hunter3";
        let c = load(url).unwrap();
        assert!(c.store_location() == StoreLocation::Postgres(url.into()));
        for shown in [format!("{c:?}"), c.store_location().to_string()] {
            assert!(!shown.contains("hunter"), "{shown}");
            assert!(shown.contains("relay:***@db.internal"), "{shown}");
        }
        for (bad, says) in [
            ("mysql://db/audit", "unknown backend"),
            ("postgres:///audit", "names no PostgreSQL host"),
            (
                "postgres://db/audit?sslpassword=x",
                "does not know, sslpassword",
            ),
            ("sqlite://", "names no SQLite file"),
        ] {
            let e = load(bad).unwrap_err().to_string();
            assert!(e.contains(says), "{bad}: {e}");
            assert!(!e.contains("=x"), "{e}");
        }
    }

    #[test]
    fn ui_section_is_configurable() {
        let c = Config::load_with_env(
            &Overrides::default(),
            env(&[
                ("AUDITRELAY_UI__SESSION_IDLE_TIMEOUT", "5m"),
                ("AUDITRELAY_UI__PRODUCT_NAME", "Acme Cloud"),
                ("AUDITRELAY_UI__SECURE_COOKIE", "always"),
            ]),
        )
        .unwrap();
        assert_eq!(c.ui.session_idle_timeout, Duration::from_secs(300));
        assert_eq!(c.ui.product_name, "Acme Cloud");
        assert_eq!(c.ui.secure_cookie, SecureCookie::Always);
    }

    #[test]
    fn signing_and_format_sections_are_configurable() {
        let c = Config::load_with_env(
            &Overrides::default(),
            env(&[
                ("AUDITRELAY_SIGNING__ACTIVATION_DELAY", "0s"),
                ("AUDITRELAY_FORMAT__VENDOR", "Acme"),
                ("AUDITRELAY_FORMAT__HOST", "audit.acme.test"),
            ]),
        )
        .unwrap();
        assert_eq!(c.signing.activation_delay, Duration::ZERO);
        let format = c.format.to_format_config();
        assert_eq!(
            (format.vendor.as_str(), format.host.as_str()),
            ("Acme", "audit.acme.test")
        );
        assert_eq!(format.org_product, "Konnect");
    }

    #[test]
    fn delivery_section_is_configurable() {
        let c = Config::load_with_env(
            &Overrides::default(),
            env(&[
                ("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "500"),
                ("AUDITRELAY_DELIVERY__BATCH_MAX_BYTES", "256KiB"),
                ("AUDITRELAY_DELIVERY__FLUSH_INTERVAL", "250ms"),
                ("AUDITRELAY_DELIVERY__CONNECT_TIMEOUT", "2s"),
                ("AUDITRELAY_DELIVERY__REQUEST_TIMEOUT", "5s"),
                ("AUDITRELAY_INGEST__MAX_BODY_BYTES", "2MiB"),
            ]),
        )
        .unwrap();
        assert_eq!(
            c.delivery.batch_limits(),
            BatchLimits {
                max_events: 500,
                max_bytes: 256 << 10
            }
        );
        assert_eq!(c.delivery.flush_interval, Duration::from_millis(250));
        assert_eq!(c.delivery.connect_timeout, Duration::from_secs(2));
        assert_eq!(c.delivery.request_timeout, Duration::from_secs(5));
        assert_eq!(c.ingest.max_body_bytes, 2 << 20);

        // A plain integer is a number of bytes, as before units were accepted.
        let c = Config::load_with_env(
            &Overrides::default(),
            env(&[("AUDITRELAY_DELIVERY__BATCH_MAX_BYTES", "65536")]),
        )
        .unwrap();
        assert_eq!(c.delivery.batch_max_bytes, 65_536);
    }

    #[test]
    fn layers_override_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("c.toml");
        std::fs::write(
            &file,
            "[server]\nlisten = \"127.0.0.1:9000\"\n[retention]\nwindow = \"2d\"\n",
        )
        .unwrap();
        let overrides = Overrides {
            config_file: Some(file),
            dev: true,
            ..Overrides::default()
        };
        let c = Config::load_with_env(
            &overrides,
            env(&[
                ("AUDITRELAY_RETENTION__WINDOW", "3d"),
                ("AUDITRELAY_REGIONS__LIST", "eu,au"),
            ]),
        )
        .unwrap();
        assert_eq!(c.server.listen.port(), 9000, "file overrides defaults");
        assert_eq!(
            c.retention.window,
            Duration::from_secs(3 * 86_400),
            "env overrides file"
        );
        assert_eq!(
            c.regions
                .list
                .iter()
                .map(Region::as_str)
                .collect::<Vec<_>>(),
            ["eu", "au"]
        );
        assert!(c.dev && c.delivery.allow_http_endpoints && c.delivery.allow_private_endpoints);

        let flags = Overrides {
            listen: Some("127.0.0.1:9100".parse().unwrap()),
            ..Overrides::default()
        };
        let c = Config::load_with_env(&flags, env(&[("AUDITRELAY_SERVER__LISTEN", "127.0.0.1:1")]))
            .unwrap();
        assert_eq!(c.server.listen.port(), 9100, "flags override env");
    }

    #[test]
    fn rejects_bad_values() {
        for (key, value) in [
            ("AUDITRELAY_RETENTION__WINDOW", "30m"),
            ("AUDITRELAY_RETENTION__WINDOW", "seven days"),
            ("AUDITRELAY_REGIONS__LIST", "us,US"),
            ("AUDITRELAY_REGIONS__LIST", "us,global"),
            ("AUDITRELAY_REGIONS__LIST", "us,us"),
            ("AUDITRELAY_REGIONS__LIST", "us,ui"),
            ("AUDITRELAY_SERVER__LISTN", "127.0.0.1:1"),
            ("AUDITRELAY_SIGNING__ACTIVATION_DELAY", "soon"),
            ("AUDITRELAY_SIGNING__ACTIVATION_DELAY", "8d"),
            ("AUDITRELAY_SIGNING__DELAY", "1m"),
            ("AUDITRELAY_FORMAT__VENDOR", " "),
            ("AUDITRELAY_FORMAT__HOST", "kong hq"),
            ("AUDITRELAY_FORMAT__COLOUR", "red"),
            ("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "0"),
            ("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "10001"),
            ("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "many"),
            ("AUDITRELAY_DELIVERY__BATCH_MAX_BYTES", "1MB"),
            ("AUDITRELAY_DELIVERY__BATCH_MAX_BYTES", "512"),
            ("AUDITRELAY_DELIVERY__BATCH_MAX_BYTES", "65MiB"),
            ("AUDITRELAY_DELIVERY__FLUSH_INTERVAL", "0s"),
            ("AUDITRELAY_DELIVERY__FLUSH_INTERVAL", "2h"),
            ("AUDITRELAY_DELIVERY__CONNECT_TIMEOUT", "0s"),
            ("AUDITRELAY_DELIVERY__CONNECT_TIMEOUT", "31s"),
            ("AUDITRELAY_DELIVERY__REQUEST_TIMEOUT", "soon"),
            ("AUDITRELAY_INGEST__MAX_BODY_BYTES", "-1"),
            ("AUDITRELAY_UI__SESSION_IDLE_TIMEOUT", "0s"),
            ("AUDITRELAY_UI__SESSION_IDLE_TIMEOUT", "13h"),
            ("AUDITRELAY_UI__PRODUCT_NAME", " "),
            ("AUDITRELAY_UI__SECURE_COOKIE", "sometimes"),
        ] {
            let err = Config::load_with_env(&Overrides::default(), env(&[(key, value)]));
            assert!(err.is_err(), "{key}={value} should be rejected");
        }
    }

    #[test]
    fn client_addresses_behind_trusted_proxies() {
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        let trusted = [Network::parse("10.0.0.0/8").unwrap()];
        let peer = Some(ip("10.1.1.1"));
        // The nearest untrusted hop, not what the client claims to its left.
        assert_eq!(
            client_ip(peer, Some("6.6.6.6, 203.0.113.7, 10.2.2.2"), &trusted),
            Some(ip("203.0.113.7"))
        );
        assert_eq!(client_ip(peer, None, &trusted), peer);
        assert_eq!(client_ip(peer, Some("garbage"), &trusted), peer);
        // An untrusted peer is the client, whatever it says.
        let direct = Some(ip("198.51.100.1"));
        assert_eq!(client_ip(direct, Some("1.2.3.4"), &trusted), direct);
        assert_eq!(client_ip(None, Some("1.2.3.4"), &trusted), None);
    }

    #[test]
    fn networks() {
        let net = |s| Network::parse(s).unwrap();
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(net("10.0.0.0/8").contains(ip("10.255.1.2")));
        assert!(!net("10.0.0.0/8").contains(ip("11.0.0.1")));
        assert!(net("127.0.0.1").contains(ip("127.0.0.1")));
        assert!(!net("127.0.0.1").contains(ip("127.0.0.2")));
        assert!(net("127.0.0.1").contains(ip("::ffff:127.0.0.1")));
        assert!(net("fd00::/8").contains(ip("fd12::1")));
        assert!(net("0.0.0.0/0").contains(ip("8.8.8.8")));
        assert!(!net("::/0").contains(ip("8.8.8.8")));
        for bad in ["10.0.0.0/33", "fd00::/129", "nope", "10.0.0.0/x", ""] {
            assert_eq!(Network::parse(bad), None, "{bad}");
        }
    }

    #[test]
    fn durations() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("7d"), Some(Duration::from_secs(604_800)));
        assert_eq!(parse_duration("5 m"), Some(Duration::from_secs(300)));
        for bad in ["", "5", "m", "5w", "-5s", "1.5h"] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn byte_sizes() {
        assert_eq!(parse_byte_size("1048576"), Some(1 << 20));
        assert_eq!(parse_byte_size("512B"), Some(512));
        assert_eq!(parse_byte_size("64KiB"), Some(64 << 10));
        assert_eq!(parse_byte_size(" 1 MiB "), Some(1 << 20));
        assert_eq!(parse_byte_size("2GiB"), Some(2 << 30));
        for bad in [
            "",
            "MiB",
            "1MB",
            "1mib",
            "1.5MiB",
            "-1",
            "99999999999999999999",
        ] {
            assert_eq!(parse_byte_size(bad), None, "{bad}");
        }
    }
}

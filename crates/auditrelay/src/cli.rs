//! The command line: `serve`, `migrate`, `token create|list|revoke`, `keys list|rotate`,
//! `verify`, `listen` (a local webhook receiver, in [`crate::listen`]), `emit` (sample
//! events for a running server, in [`crate::emit`]) and `replay` (replay jobs, in `replay`).
//!
//! Commands that work on the data directory (`token …`, `keys …`, `migrate`) open the store or
//! the key directory directly, so they work whether or not a server is running on it (SQLite
//! serializes the writers; a running server notices new keys within a second). Commands that
//! talk to a running server (`emit`, `replay`) share [`ApiClient`], [`Token`] and [`refused`],
//! so they take `--url` and `--token` alike and explain a refusal or an unreachable server in
//! the same words.

mod replay;

use std::fmt::{self, Write as _};
use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::PathBuf;
use std::str::FromStr;
use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use auditrelay_core::format::{Signed, verify_line_or_entry};
use auditrelay_core::signing::parse_jwks;
use auditrelay_core::{Grant, PortalId, PublicKey, Region, Role};
use bytes::Bytes;
use clap::{Args, Parser, Subcommand};
use flate2::read::MultiGzDecoder;
use reqwest::{RequestBuilder, StatusCode};
use serde::Deserialize;
use uuid::Uuid;

use crate::config::{Config, Overrides, parse_duration};
use crate::human;
use crate::keys::KeyDir;
use crate::store::{PrincipalKind, Store};
use crate::{app, clock, telemetry, tokens};

#[derive(Debug, Parser)]
#[command(
    name = "auditrelay",
    version,
    about = "Self-hosted audit logs, wire-compatible with Kong Konnect's Audit Logs API"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Serve the API and run the background jobs (retention).
    Serve(ServeArgs),
    /// Upgrade the database schema, then exit (`--create` for a data directory that has none).
    Migrate(MigrateArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
    /// Manage the signing keys.
    #[command(subcommand)]
    Keys(KeysCommand),
    /// Check the signatures of delivered log lines (CEF, JSON or CPS, as a webhook sent them;
    /// gzip is detected) or of pull-API entries (one per line: `jq -c '.data[]'`) against a JWKS.
    Verify(VerifyArgs),
    /// Receive webhook deliveries locally (HTTP or HTTPS) and show what arrived.
    Listen(crate::listen::ListenArgs),
    /// Send sample events of every type (org and Dev Portal) to a running server.
    Emit(crate::emit::EmitArgs),
    /// Re-send a time window of audit logs to a webhook (a replay job), or show the current job.
    Replay(replay::ReplayArgs),
}

#[derive(Debug, Subcommand)]
pub enum KeysCommand {
    /// List the signing keys (never their secrets).
    List(DataArgs),
    /// Add a key: published at once, signing after the activation delay; the current key is
    /// retired then and stays published for the retention window.
    Rotate {
        /// How long the new key is published before it signs (default: signing.activation_delay).
        #[arg(long, value_name = "DURATION")]
        activation_delay: Option<String>,
        #[command(flatten)]
        data: DataArgs,
    },
}

/// The server `verify` (without `--jwks`), `emit` and `replay` talk to unless `$AUDITRELAY_URL`
/// names another.
pub const DEFAULT_URL: &str = "http://127.0.0.1:8080";
/// The JWKS path under a server's base URL.
pub const JWKS_PATH: &str = "/v2/audit-log-webhook/jwks.json";

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A JWKS URL or file [default: $AUDITRELAY_URL, else http://127.0.0.1:8080, plus /v2/audit-log-webhook/jwks.json].
    #[arg(long, value_name = "URL|FILE")]
    pub jwks: Option<String>,
    /// The lines to check, one per line; `-` reads standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub input: String,
}

#[derive(Debug, Args)]
pub struct DataArgs {
    /// Directory holding the database and keys.
    #[arg(long, value_name = "DIR")]
    pub data_dir: Option<PathBuf>,
    /// A TOML file overriding the built-in defaults.
    #[arg(long, value_name = "FILE")]
    pub config: Option<PathBuf>,
}

#[derive(Debug, Args)]
pub struct MigrateArgs {
    /// Create the data directory and its database if there is none (otherwise that is an error:
    /// a mistyped --data-dir must not quietly start a second, empty installation).
    #[arg(long)]
    pub create: bool,
    #[command(flatten)]
    pub data: DataArgs,
}

#[derive(Debug, Args)]
pub struct ServeArgs {
    /// Address to listen on (default 127.0.0.1:8080).
    #[arg(long, value_name = "ADDR")]
    pub listen: Option<SocketAddr>,
    #[command(flatten)]
    pub data: DataArgs,
    /// Development mode: allow http:// and private webhook endpoints.
    #[arg(long)]
    pub dev: bool,
}

#[derive(Debug, Subcommand)]
pub enum TokenCommand {
    /// Create a principal with one role and print its token (alone, on the last line of stdout).
    Create(TokenCreateArgs),
    /// List tokens (never their secrets).
    List(DataArgs),
    /// Revoke a token by id.
    Revoke {
        /// The token id, as `token list` shows it.
        id: Uuid,
        #[command(flatten)]
        data: DataArgs,
    },
}

#[derive(Debug, Args)]
pub struct TokenCreateArgs {
    /// Who or what the token is for; appears as `principal_name` in audit events.
    #[arg(long)]
    pub name: String,
    /// org-admin, audit-logs-admin, audit-logs-viewer, portal-admin or event-producer.
    #[arg(long)]
    pub role: String,
    /// Bind the role to one portal (required for portal-admin; optional for event-producer).
    #[arg(long, value_name = "ID")]
    pub portal: Option<String>,
    /// `user` (a kpat_ token) or `system` (an spat_ token).
    #[arg(long, default_value = "user")]
    pub kind: String,
    /// Let the token expire after this long (for example 90d).
    #[arg(long, value_name = "DURATION")]
    pub ttl: Option<String>,
    #[command(flatten)]
    pub data: DataArgs,
}

impl DataArgs {
    fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&Overrides {
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..Overrides::default()
        })?)
    }

    /// The configuration of a data directory that holds an installation already: the commands
    /// other than `serve` (and `migrate --create`) work on one and never make one, so a wrong
    /// `--data-dir` is an error naming where they looked, not a new empty database.
    fn existing(&self) -> anyhow::Result<Config> {
        let config = self.config()?;
        let database = config.database_path();
        if !database.exists() {
            bail!(
                "No auditrelay installation in {} (there is no {}). Point --data-dir (or \
                 AUDITRELAY_SERVER__DATA_DIR) at the server's data directory; to start a new one, \
                 run `auditrelay serve` or `auditrelay migrate --create` with that directory.",
                config.server.data_dir.display(),
                database.display()
            );
        }
        Ok(config)
    }
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(args) => {
            let config = match args.create {
                true => args.data.config()?,
                false => args.data.existing()?,
            };
            let store = Store::open(&config).await?;
            store.close().await;
            eprintln!(
                "The database in {} is up to date.",
                config.server.data_dir.display()
            );
            Ok(())
        }
        Command::Token(command) => token(command).await,
        Command::Keys(command) => keys(command),
        Command::Verify(args) => verify(args).await,
        Command::Listen(args) => crate::listen::run(args).await,
        Command::Emit(args) => crate::emit::run(args).await,
        Command::Replay(args) => replay::run(args).await,
    }
}

async fn serve(args: ServeArgs) -> anyhow::Result<()> {
    let config = Config::load(&Overrides {
        config_file: args.data.config,
        listen: args.listen,
        data_dir: args.data.data_dir,
        dev: args.dev,
    })?;
    telemetry::init_logging(&config.log);
    if config.dev {
        tracing::warn!(
            "development mode: webhooks may use http:// and private or loopback addresses; never use --dev in production"
        );
    }
    let started = app::start(config).await?;
    if let Some(token) = &started.bootstrap_token {
        // Printed, never logged: it is a secret, shown this once.
        println!(
            "First start: created the organization and an org-admin token. Keep it; it is not shown again:"
        );
        println!("{token}");
    }
    app::shutdown_signal().await;
    tracing::info!("shutting down: finishing in-flight requests");
    started.server.stop().await?;
    tracing::info!("stopped");
    Ok(())
}

async fn token(command: TokenCommand) -> anyhow::Result<()> {
    match command {
        TokenCommand::Create(args) => {
            let config = args.data.existing()?;
            let role = Role::parse(&args.role).with_context(|| {
                let roles: Vec<_> = Role::ALL.iter().map(|r| r.as_str()).collect();
                format!(
                    "Unknown role `{}`: use one of {}",
                    args.role,
                    roles.join(", ")
                )
            })?;
            let portal = args
                .portal
                .as_deref()
                .map(|p| {
                    PortalId::parse(p).with_context(|| format!("`{p}` is not a portal id (a UUID)"))
                })
                .transpose()?;
            let grant = Grant::new(role, portal)?;
            let kind = PrincipalKind::parse(&args.kind)
                .with_context(|| format!("Unknown kind `{}`: use user or system", args.kind))?;
            let ttl = args
                .ttl
                .as_deref()
                .map(|t| {
                    parse_duration(t)
                        .with_context(|| format!("`{t}` is not a duration like 90d or 12h"))
                })
                .transpose()?;
            if args.name.trim().is_empty() {
                bail!("--name cannot be empty");
            }
            let store = Store::open(&config).await?;
            let (org, _) = store
                .ensure_default_org(app::DEFAULT_ORG_NAME, clock::now())
                .await?;
            if let Some(portal) = portal
                && store.get_portal(org.id, portal).await?.is_none()
            {
                store.close().await;
                bail!("No portal has id {portal}");
            }
            let issued = tokens::issue(
                &store,
                org.id,
                args.name.trim(),
                kind,
                grant,
                ttl,
                clock::now(),
            )
            .await?;
            store.close().await;
            eprintln!(
                "Created token {} for {} ({}{}). It is shown once:",
                issued.record.id,
                issued.record.principal.name,
                role,
                portal.map(|p| format!(", portal {p}")).unwrap_or_default()
            );
            println!("{}", issued.secret);
            Ok(())
        }
        TokenCommand::List(data) => {
            let config = data.existing()?;
            let store = Store::open(&config).await?;
            let (org, _) = store
                .ensure_default_org(app::DEFAULT_ORG_NAME, clock::now())
                .await?;
            let tokens = store.list_tokens(org.id).await?;
            store.close().await;
            println!(
                "{:<36}  {:<14}  {:<20}  {:<18}  {:<24}  STATE",
                "ID", "PREFIX", "NAME", "ROLE", "CREATED"
            );
            for t in tokens {
                let state = match (t.revoked_at, t.expires_at) {
                    (Some(at), _) => format!("revoked {}", at.to_rfc3339_seconds()),
                    (None, Some(at)) if at <= clock::now() => {
                        format!("expired {}", at.to_rfc3339_seconds())
                    }
                    (None, Some(at)) => format!("expires {}", at.to_rfc3339_seconds()),
                    (None, None) => "active".to_owned(),
                };
                let role = match t.principal.grant.portal() {
                    Some(p) => format!("{}@{}", t.principal.grant.role(), &p.to_string()[..8]),
                    None => t.principal.grant.role().to_string(),
                };
                println!(
                    "{:<36}  {:<14}  {:<20}  {:<18}  {:<24}  {state}",
                    t.id,
                    format!("{}…", t.prefix),
                    t.principal.name,
                    role,
                    t.created_at.to_rfc3339_seconds()
                );
            }
            Ok(())
        }
        TokenCommand::Revoke { id, data } => {
            let config = data.existing()?;
            let store = Store::open(&config).await?;
            let revoked = store.revoke_token(id, clock::now()).await?;
            store.close().await;
            if !revoked {
                bail!("No active token has id {id}");
            }
            eprintln!("Revoked token {id}.");
            Ok(())
        }
    }
}

/// Below this, a rotation outruns verifiers that refresh the JWKS every few minutes.
const MIN_SAFE_ACTIVATION: std::time::Duration = std::time::Duration::from_secs(60);

fn keys(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List(data) => {
            let config = data.existing()?;
            let dir = KeyDir::in_data_dir(&config.server.data_dir);
            let set = dir
                .open_or_create(clock::now())
                .with_context(|| format!("Failed to open the keys in {}", dir.path().display()))?;
            let now = clock::now();
            println!(
                "{:<40}  {:<20}  {:<20}  {:<20}  STATE",
                "KID", "CREATED", "ACTIVE-FROM", "RETIRED"
            );
            for key in set.keys() {
                println!(
                    "{:<40}  {:<20}  {:<20}  {:<20}  {}",
                    key.kid(),
                    key.created_at.to_rfc3339_seconds(),
                    key.active_from.to_rfc3339_seconds(),
                    key.retired_at
                        .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_seconds()),
                    set.state_at(key, now, config.retention.window).as_str()
                );
            }
            Ok(())
        }
        KeysCommand::Rotate {
            activation_delay,
            data,
        } => {
            let config = data.existing()?;
            let delay = match activation_delay.as_deref() {
                Some(text) => parse_duration(text)
                    .with_context(|| format!("`{text}` is not a duration like 10m or 30s"))?,
                None => config.signing.activation_delay,
            };
            if delay >= config.retention.window {
                bail!("--activation-delay must be shorter than the retention window");
            }
            if delay < MIN_SAFE_ACTIVATION {
                eprintln!(
                    "Warning: the new key signs {}, before verifiers that cached the JWKS (SIEM \
                     rules, `auditrelay listen`) can fetch it; until they do, they report the lines \
                     it signs as invalid. The default delay ({}) leaves them time.",
                    if delay.is_zero() {
                        "at once".to_owned()
                    } else {
                        format!("in {}s", delay.as_secs())
                    },
                    human::setting(config.signing.activation_delay)
                );
            }
            let dir = KeyDir::in_data_dir(&config.server.data_dir);
            let key = dir.rotate(clock::now(), delay).with_context(|| {
                format!("Failed to rotate the keys in {}", dir.path().display())
            })?;
            eprintln!(
                "Created key {}: published now, signing from {}.",
                key.kid(),
                key.active_from.to_rfc3339_millis()
            );
            println!("{}", key.kid());
            Ok(())
        }
    }
}

async fn verify(args: VerifyArgs) -> anyhow::Result<()> {
    let source = match args.jwks {
        Some(source) => source,
        None => {
            let base = std::env::var("AUDITRELAY_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
            format!("{}{JWKS_PATH}", base.trim_end_matches('/'))
        }
    };
    let keys = load_jwks(&source).await?;
    let input = open_lines(&args.input)?;
    let (total, invalid) = verify_lines(input, &keys, &mut io::stdout().lock())?;
    if total == 0 {
        bail!("no lines to verify in {}", args.input);
    }
    if invalid > 0 {
        bail!("{invalid} of {total} lines failed verification");
    }
    eprintln!("{total} lines verified: all valid");
    Ok(())
}

/// The keys of a JWKS at a URL (`http://`, `https://`) or in a file (`verify` and `listen`).
pub(crate) async fn load_jwks(source: &str) -> anyhow::Result<Vec<PublicKey>> {
    let document = if source.starts_with("http://") || source.starts_with("https://") {
        let response = reqwest::Client::new()
            .get(source)
            .timeout(std::time::Duration::from_secs(30))
            .send()
            .await
            .with_context(|| format!("Failed to fetch the JWKS from {source}"))?;
        let status = response.status();
        if !status.is_success() {
            bail!("Failed to fetch the JWKS from {source}: HTTP {status}");
        }
        response
            .bytes()
            .await
            .with_context(|| format!("Failed to read the JWKS from {source}"))?
            .to_vec()
    } else {
        std::fs::read(source).with_context(|| format!("Failed to read the JWKS file {source}"))?
    };
    let keys = parse_jwks(&document).with_context(|| format!("Bad JWKS from {source}"))?;
    if keys.is_empty() {
        bail!("The JWKS from {source} holds no Ed25519 key");
    }
    Ok(keys)
}

/// The input as lines, gunzipped when it starts with gzip's magic bytes.
fn open_lines(input: &str) -> anyhow::Result<Box<dyn BufRead>> {
    let mut reader: Box<dyn Read> = if input == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(input).with_context(|| format!("Failed to open {input}"))?)
    };
    // Read the two magic bytes for sure (a pipe may deliver one at a time), then put them back.
    let mut head = Vec::with_capacity(2);
    (&mut reader)
        .take(2)
        .read_to_end(&mut head)
        .with_context(|| format!("Failed to read {input}"))?;
    let gzip = head == [0x1f, 0x8b];
    let whole = io::Cursor::new(head).chain(reader);
    Ok(if gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(whole)))
    } else {
        Box::new(BufReader::new(whole))
    })
}

/// Verifies every non-blank line, writing one verdict per line; returns (lines, invalid).
fn verify_lines(
    mut input: impl BufRead,
    keys: &[PublicKey],
    out: &mut impl io::Write,
) -> anyhow::Result<(u64, u64)> {
    let mut line = Vec::with_capacity(1024);
    let (mut number, mut total, mut invalid) = (0u64, 0u64, 0u64);
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("Failed to read the input")?
            == 0
        {
            break;
        }
        number += 1;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        total += 1;
        match verify_line_or_entry(&line, keys) {
            Ok((kid, Signed::Line)) => writeln!(out, "line {number}: valid kid={kid}")?,
            Ok((kid, Signed::PullEntry)) => {
                writeln!(out, "line {number}: valid kid={kid} (pull-API entry)")?
            }
            Err(reason) => {
                invalid += 1;
                writeln!(out, "line {number}: invalid: {reason}")?;
            }
        }
    }
    out.flush()?;
    Ok((total, invalid))
}

/// `--url` and `--token` of the commands that talk to a running server. Each command says in
/// its own `--token` help which roles it needs (`#[command(mut_arg("token", …))]`).
#[derive(Debug, Args)]
pub struct ServerArgs {
    /// The server's base URL.
    #[arg(long, value_name = "URL", env = "AUDITRELAY_URL", default_value = DEFAULT_URL)]
    pub url: String,
    /// An API token; never printed.
    #[arg(
        long,
        value_name = "TOKEN",
        env = "AUDITRELAY_TOKEN",
        hide_env_values = true
    )]
    pub token: Token,
}

/// An API token, kept out of `Debug` output so that printing the arguments cannot leak it.
#[derive(Clone)]
pub struct Token(String);

impl FromStr for Token {
    type Err = &'static str;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        // A token pasted from a file or a terminal often brings a newline along.
        let token = s.trim();
        if token.is_empty() {
            return Err("the token is empty");
        }
        Ok(Self(token.to_owned()))
    }
}

impl fmt::Debug for Token {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("Token(<redacted>)")
    }
}

/// `--region` of the client commands; `global` is left to each command to accept or not.
pub(crate) fn parse_region(s: &str) -> Result<Region, String> {
    Region::parse(s).ok_or_else(|| {
        "a region is lowercase letters, digits and hyphens, starting with a letter".into()
    })
}

/// `--portal` of the client commands.
pub(crate) fn parse_portal(s: &str) -> Result<PortalId, String> {
    PortalId::parse(s).ok_or_else(|| "a portal id is a UUID, as GET /v3/portals shows".into())
}

/// A running server's API as a client command sees it: the base URL, the token, and one HTTP
/// client for every request of the run.
pub(crate) struct ApiClient {
    http: reqwest::Client,
    base: String,
    token: Token,
    timeout: Duration,
}

impl ApiClient {
    /// `user_agent` tells the command's own requests apart in the server's self-audit events.
    pub(crate) fn new(
        server: ServerArgs,
        user_agent: &str,
        timeout: Duration,
    ) -> anyhow::Result<Self> {
        let ServerArgs { url, token } = server;
        let url = url.as_str();
        let parsed = url::Url::parse(url).with_context(|| format!("--url {url} is not a URL"))?;
        if !matches!(parsed.scheme(), "http" | "https") {
            bail!("--url {url} must be an http:// or https:// URL");
        }
        let http = reqwest::Client::builder()
            .timeout(timeout)
            .user_agent(user_agent)
            .build()
            .context("Failed to set up the HTTP client")?;
        Ok(Self {
            http,
            base: url.trim_end_matches('/').to_owned(),
            token,
            timeout,
        })
    }

    pub(crate) fn http(&self) -> &reqwest::Client {
        &self.http
    }

    /// The base URL, without a trailing slash.
    pub(crate) fn base(&self) -> &str {
        &self.base
    }

    /// `path` under the base URL, behind the region's prefix when one is given.
    pub(crate) fn url(&self, region: Option<&Region>, path: &str) -> String {
        match region {
            Some(region) => format!("{}/{region}{path}", self.base),
            None => format!("{}{path}", self.base),
        }
    }

    /// Sends a request with the token; `what` names it in errors. Returns the status and body
    /// of any answer; an error means no answer came (the server is unreachable or too slow).
    pub(crate) async fn send(
        &self,
        request: RequestBuilder,
        what: &str,
    ) -> anyhow::Result<(StatusCode, Bytes)> {
        let result = request.bearer_auth(&self.token.0).send().await;
        let response = result.map_err(|e| self.unreachable(e, what))?;
        let status = response.status();
        let body = response
            .bytes()
            .await
            .map_err(|e| self.unreachable(e, what))?;
        Ok((status, body))
    }

    /// A transport failure as a message a new user can act on.
    fn unreachable(&self, e: reqwest::Error, what: &str) -> anyhow::Error {
        let cause = root_cause(&e);
        if e.is_connect() {
            anyhow!(
                "Could not connect to auditrelay at {} ({cause}). Is it running? Start it with `auditrelay serve`, or point --url (or $AUDITRELAY_URL) at it.",
                self.base
            )
        } else if e.is_timeout() {
            anyhow!(
                "{} did not answer {what} within {}s",
                self.base,
                self.timeout.as_secs()
            )
        } else {
            anyhow!("Failed to send {what} to {}: {cause}", self.base)
        }
    }
}

/// A problem+json body, leniently: any of it may be missing when a proxy answered instead.
#[derive(Debug, Default, Deserialize)]
struct ProblemBody {
    detail: Option<String>,
    instance: Option<String>,
    #[serde(default)]
    invalid_parameters: Vec<InvalidParameterBody>,
}

#[derive(Debug, Deserialize)]
struct InvalidParameterBody {
    field: Option<String>,
    rule: Option<String>,
    source: Option<String>,
    reason: Option<String>,
}

/// A non-2xx answer as a readable error: `context`, the status, the problem's detail, one line
/// per invalid parameter, a hint, and the trace id. `hint` is the command's own advice for this
/// status; without one, a 401 gets the advice every command shares.
pub(crate) fn refused(
    context: &str,
    status: StatusCode,
    body: &[u8],
    hint: Option<&str>,
) -> anyhow::Error {
    let problem: Option<ProblemBody> = serde_json::from_slice(body).ok();
    let mut message = format!("{context}: HTTP {status}");
    match problem.as_ref().and_then(|p| p.detail.as_deref()) {
        Some(detail) => {
            message.push_str(": ");
            message.push_str(detail);
        }
        None => {
            // Not problem+json (a proxy, say): show the start of whatever came back.
            let text = String::from_utf8_lossy(body);
            let text = text.trim();
            if !text.is_empty() {
                let short: String = text.chars().take(300).collect();
                message.push_str(": ");
                message.push_str(&short);
            }
        }
    }
    let problem = problem.unwrap_or_default();
    for p in &problem.invalid_parameters {
        let at = p
            .source
            .as_deref()
            .map(|s| format!("{s}: "))
            .unwrap_or_default();
        let field = p.field.as_deref().unwrap_or("?");
        let reason = p.reason.as_deref().unwrap_or("is invalid");
        let rule = p
            .rule
            .as_deref()
            .map(|r| format!(" [{r}]"))
            .unwrap_or_default();
        let _ = write!(message, "\n  {at}{field} {reason}{rule}");
    }
    let hint = hint.or_else(|| {
        (status == StatusCode::UNAUTHORIZED).then_some(
            "The token was not accepted: pass the one `auditrelay serve` printed on first start, or one from `auditrelay token create`, with --token or $AUDITRELAY_TOKEN.",
        )
    });
    if let Some(hint) = hint {
        message.push_str("\n  ");
        message.push_str(hint);
    }
    if let Some(instance) = &problem.instance {
        let _ = write!(message, "\n  (server log and audit trail: {instance})");
    }
    anyhow!(message)
}

/// The innermost cause of an error ("Connection refused (os error 111)"), the part a user
/// can act on; reqwest's outer layers only repeat that a request failed.
fn root_cause(e: &(dyn std::error::Error + 'static)) -> String {
    let mut current = e;
    while let Some(source) = current.source() {
        current = source;
    }
    current.to_string()
}

#[cfg(test)]
mod tests {
    use auditrelay_core::format::{Format, FormatConfig, sign_event};
    use auditrelay_core::{Event, EventDetail, OrgId, Region, SigningKey, Timestamp};

    use super::*;

    fn line(format: Format, key: &SigningKey) -> Vec<u8> {
        let event = Event {
            ts: Timestamp::from_millis(1_800_000_000_000),
            org_id: OrgId::new_v4(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: Some("p".into()),
            principal_name: None,
            actor_id: None,
            client_ip: Some("127.0.0.1".into()),
            uri: Some("/x".into()),
            user_agent: None,
            trace_id: Some("1".into()),
            detail: EventDetail::Access {
                method: "POST".into(),
                query: "{}".into(),
                status_code: 201,
                kong_initiated: None,
            },
        };
        let mut out = Vec::new();
        sign_event(format, &event, &FormatConfig::default(), key, &mut out);
        out
    }

    #[test]
    fn verdicts_per_line_with_blank_lines_skipped_and_crlf_accepted() {
        let key = SigningKey::from_seed(&[3; 32]);
        let mut input = Vec::new();
        input.extend(line(Format::Cef, &key));
        input.extend(b"\r\n\n   \n");
        let mut tampered = line(Format::Json, &key);
        tampered[5] ^= 1;
        input.extend(&tampered);
        input.push(b'\n');
        input.extend(line(Format::Cps, &key));
        let mut out = Vec::new();
        let keys = [key.public_key().clone()];
        let (total, invalid) = verify_lines(&input[..], &keys, &mut out).unwrap();
        assert_eq!((total, invalid), (3, 1));
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("line 1: valid kid={}", key.kid()));
        assert!(lines[1].starts_with("line 4: invalid: "), "{out}");
        assert_eq!(lines[2], format!("line 5: valid kid={}", key.kid()));
    }

    #[test]
    fn the_token_stays_out_of_debug_output() {
        let token: Token = " kpat_secret\n".parse().unwrap();
        assert_eq!(token.0, "kpat_secret");
        assert!(!format!("{token:?}").contains("secret"));
        assert!("  ".parse::<Token>().is_err());
    }
}

//! The command line: its parsing and the dispatch to each command, one module each in `cli/`:
//! `serve` and `migrate` (`serve`), `token create|list|revoke` (`token`), `keys list|rotate`
//! (`keys`), `verify`, `emit` (sample events for a running server), `replay` (replay jobs), and
//! `listen` (a local webhook receiver, in [`crate::listen`], whose pieces the tests share).
//!
//! Commands that work on the data directory (`token …`, `keys …`, `migrate`) open the store or
//! the key directory directly, so they work whether or not a server is running on it (SQLite
//! serializes the writers; a running server notices new keys within a second). Commands that
//! talk to a running server (`emit`, `replay`) take [`ServerArgs`] and go through
//! [`crate::client::ApiClient`], and tell a refusal in the same words (`cli/problem.rs`).

pub mod emit;
mod keys;
mod problem;
mod replay;
mod serve;
mod token;
mod verify;

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::bail;
use auditrelay_core::{PortalId, Region};
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::client::{DEFAULT_URL, Token};
use crate::config::{Config, Overrides, StoreLocation};

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
    Emit(emit::EmitArgs),
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

#[derive(Debug, Args)]
pub struct VerifyArgs {
    /// A JWKS URL or file [default: $AUDITRELAY_URL, else http://127.0.0.1:8080, plus /v2/audit-log-webhook/jwks.json].
    #[arg(long, value_name = "URL|FILE")]
    pub jwks: Option<String>,
    /// The key that signs the tamper-evident log's checkpoints: a verifier key
    /// (`name+hash+key`), a file holding one, or a URL [default: $AUDITRELAY_URL, else
    /// http://127.0.0.1:8080, plus /v3/audit-log-integrity/checkpoint-key].
    #[arg(long, value_name = "KEY|URL|FILE")]
    pub checkpoint_key: Option<String>,
    /// Check an inclusion proof (a `c2sp.org/tlog-proof@v1` bundle from the proofs API)
    /// instead of lines.
    #[arg(long, value_name = "FILE", conflicts_with = "input")]
    pub proof: Option<String>,
    /// With --proof, the leaf's hash (base64, the `leaf_hash` of the event's line) for a bundle
    /// that carries no leaf because retention deleted the event.
    #[arg(long, value_name = "BASE64", requires = "proof")]
    pub leaf_hash: Option<String>,
    /// Where the exported lines end, for lines of destinations with `integrity`: a stream
    /// with no checkpoint from about one interval before then is cut off [RFC 3339; without
    /// it, the tail is not judged, and the report says so].
    #[arg(long, value_name = "TIME", conflicts_with = "proof")]
    pub until: Option<String>,
    /// The lines to check, one per line, in any order and any mix of formats, gzipped or not;
    /// `-` reads standard input.
    #[arg(value_name = "FILE", default_value = "-")]
    pub input: Vec<String>,
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
    pub(crate) fn config(&self) -> anyhow::Result<Config> {
        Ok(Config::load(&Overrides {
            config_file: self.config.clone(),
            data_dir: self.data_dir.clone(),
            ..Overrides::default()
        })?)
    }

    /// The configuration of a data directory that holds an installation already: the commands
    /// other than `serve` (and `migrate --create`) work on one and never make one, so a wrong
    /// `--data-dir` is an error naming where they looked, not a new empty database.
    pub(crate) fn existing(&self) -> anyhow::Result<Config> {
        let config = self.config()?;
        // A PostgreSQL database is there or not for the connection to say; a file is checked
        // here, before opening would create an empty one.
        let StoreLocation::Sqlite(database) = config.store_location() else {
            return Ok(config);
        };
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
        Command::Serve(args) => serve::run(args).await,
        Command::Migrate(args) => serve::migrate(args).await,
        Command::Token(command) => token::run(command).await,
        Command::Keys(command) => keys::run(command).await,
        Command::Verify(args) => verify::run(args).await,
        Command::Listen(args) => crate::listen::run(args).await,
        Command::Emit(args) => emit::run(args).await,
        Command::Replay(args) => replay::run(args).await,
    }
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

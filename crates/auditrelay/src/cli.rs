//! The command line: `serve`, `migrate`, and `token create|list|revoke`.
//!
//! Commands that work on the data directory (`token …`, `migrate`) open the store directly, so
//! they work whether or not a server is running on it (SQLite serializes the writers).

use std::net::SocketAddr;
use std::path::PathBuf;

use anyhow::{Context as _, bail};
use auditrelay_core::{Grant, PortalId, Role};
use clap::{Args, Parser, Subcommand};
use uuid::Uuid;

use crate::config::{Config, Overrides, parse_duration};
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
    /// Serve the API (and run delivery, replay and retention).
    Serve(ServeArgs),
    /// Create or upgrade the database schema, then exit.
    Migrate(DataArgs),
    /// Manage API tokens.
    #[command(subcommand)]
    Token(TokenCommand),
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
}

pub async fn run(cli: Cli) -> anyhow::Result<()> {
    match cli.command {
        Command::Serve(args) => serve(args).await,
        Command::Migrate(data) => {
            let config = data.config()?;
            let store = Store::open(&config).await?;
            store.close().await;
            eprintln!(
                "The database in {} is up to date.",
                config.server.data_dir.display()
            );
            Ok(())
        }
        Command::Token(command) => token(command).await,
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
            let config = args.data.config()?;
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
            let config = data.config()?;
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
            let config = data.config()?;
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

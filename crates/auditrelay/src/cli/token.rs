//! `auditrelay token create|list|revoke`: API tokens, on the data directory (whether or not a
//! server runs on it).

use anyhow::{Context as _, bail};
use auditrelay_core::{Grant, PortalId, Role};

use super::TokenCommand;
use crate::config::parse_duration;
use crate::store::{PrincipalKind, Store};
use crate::{app, clock, tokens};

pub async fn run(command: TokenCommand) -> anyhow::Result<()> {
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
            // The name is every audit event's `principal_name` and a column of `token list`:
            // a newline or an escape sequence in it would forge lines in a terminal.
            if args.name.chars().any(auditrelay_core::format::is_control) {
                bail!("--name cannot contain control characters (newlines, tabs, escapes)");
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

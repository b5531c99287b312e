//! `auditrelay serve` and `auditrelay migrate`: run the service, or bring a data directory's
//! database up to date.

use super::{MigrateArgs, ServeArgs};
use crate::config::{Config, Overrides, StoreLocation};
use crate::store::Store;
use crate::{app, telemetry};

pub async fn run(args: ServeArgs) -> anyhow::Result<()> {
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

pub async fn migrate(args: MigrateArgs) -> anyhow::Result<()> {
    let config = match args.create {
        true => args.data.config()?,
        false => args.data.existing()?,
    };
    let store = Store::open(&config).await?;
    store.close().await;
    match config.store_location() {
        StoreLocation::Sqlite(_) => eprintln!(
            "The database in {} is up to date.",
            config.server.data_dir.display()
        ),
        postgres => eprintln!("Migrated: {postgres} is up to date."),
    }
    Ok(())
}

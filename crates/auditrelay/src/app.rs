//! Running the service: open the store, bootstrap the organization, load (or on a first start
//! create) the signing keys, serve the API, run delivery and the background jobs, and stop
//! gracefully.
//!
//! A stop lets in-flight requests finish (up to `server.shutdown_grace`), then drains the
//! store's writer, so every event that was acknowledged, and every one whose commit had
//! started, is on disk before the process exits.

use std::net::SocketAddr;
use std::sync::Arc;

use anyhow::Context as _;
use auditrelay_core::{Grant, Role};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::changes::Changes;
use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::{self, Delivery};
use crate::keys::{KeyDir, KeyRing};
use crate::secrets::SecretBox;
use crate::state::{AppState, Services};
use crate::store::{PrincipalKind, Store};
use crate::{clock, jobs, serve, telemetry, tokens};

/// The organization a fresh installation creates.
pub const DEFAULT_ORG_NAME: &str = "default";

/// A running server.
pub struct Server {
    addr: SocketAddr,
    state: AppState,
    stop: watch::Sender<bool>,
    task: JoinHandle<anyhow::Result<()>>,
}

/// What [`start`] produced: the server, and on a first start the admin token it minted.
pub struct Started {
    pub server: Server,
    pub bootstrap_token: Option<String>,
}

/// Opens the store and serves on the configured address (port 0 picks a free one).
pub async fn start(config: Config) -> anyhow::Result<Started> {
    // Installed first: the store reports whether it accepts writes from the moment it opens.
    let metrics = telemetry::metrics_handle();
    let location = config.store_location();
    let store = Store::open(&config)
        .await
        .with_context(|| format!("Failed to open {location}"))?;
    if !store.claim_serving().await? {
        anyhow::bail!(
            "Another `auditrelay serve` is already serving from {location}. Several nodes on one \
             database are not supported yet: stop the other process, or give this one a \
             database of its own."
        );
    }
    let (org, bootstrap_token) = bootstrap(&store).await?;
    let keys = KeyRing::open(&config.server.data_dir, clock::now()).with_context(|| {
        format!(
            "Failed to open the signing keys in {}",
            KeyDir::in_data_dir(&config.server.data_dir)
                .path()
                .display()
        )
    })?;
    let keys = Arc::new(keys);
    let secrets = SecretBox::open_or_create(&config.server.data_dir)
        .context("Failed to open the secrets key")?;
    let secrets = Arc::new(secrets);
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let changes = Changes::new();
    let clock = Clock::default();
    let (router, state) = crate::router::service(
        config.clone(),
        Services {
            store: store.clone(),
            org,
            metrics,
            keys: keys.clone(),
            secrets: secrets.clone(),
            delivery: changes.clone(),
            clock: clock.clone(),
        },
    );

    let (stop, stopped) = watch::channel(false);
    let delivery = Delivery::start(
        delivery::Shared {
            store: store.clone(),
            keys,
            secrets,
            format: config.format.to_format_config(),
            config: config.delivery.clone(),
            retention: config.retention.clone(),
            policy: config.delivery.retry_policy(),
        },
        &changes,
        stopped.clone(),
    );
    let retention = tokio::spawn(jobs::retention::run(
        store.clone(),
        config.retention.clone(),
        stopped.clone(),
    ));
    let grace = config.server.shutdown_grace;
    let limits = serve::Limits::of(&config.server);
    let tls = match (&config.server.tls_cert, &config.server.tls_key) {
        (Some(cert), Some(key)) => {
            let acceptor = serve::tls::acceptor(cert, key, clock.clone());
            Some(acceptor.context("Failed to load the TLS certificate")?)
        }
        _ => None,
    };
    let metrics_listener = match config.metrics.listen {
        Some(addr) => Some(
            TcpListener::bind(addr)
                .await
                .with_context(|| format!("Failed to listen on {addr} (metrics.listen)"))?,
        ),
        None => None,
    };
    if let Some(listener) = metrics_listener {
        tracing::info!(listen = %listener.local_addr()?, "serving /metrics");
        let handle = state.metrics.clone();
        let metrics = axum::Router::new().route(
            "/metrics",
            axum::routing::get(move || {
                let handle = handle.clone();
                async move { api::render_metrics(&handle) }
            }),
        );
        tokio::spawn(serve::serve(
            listener,
            metrics,
            limits,
            None,
            stopped.clone(),
        ));
    }
    let task = tokio::spawn(async move {
        let serve = serve::serve(listener, router, limits, tls, stopped.clone());
        let mut deadline = stopped;
        tokio::select! {
            () = serve => {}
            _ = async {
                let _ = deadline.wait_for(|stop| *stop).await;
                tokio::time::sleep(grace).await;
            } => tracing::warn!(grace_s = grace.as_secs(), "requests still running after the shutdown grace period were cut off"),
        }
        let _ = retention.await;
        // Delivery stops mid-batch if it must: the batch stays in flight and is sent again,
        // with the same Idempotency-Key, after the restart.
        delivery.stopped().await;
        store.close().await;
        Ok(())
    });
    tracing::info!(
        listen = %addr,
        tls = config.server.tls_cert.is_some(),
        data_dir = %config.server.data_dir.display(),
        "auditrelay is serving"
    );
    Ok(Started {
        server: Server {
            addr,
            state,
            stop,
            task,
        },
        bootstrap_token,
    })
}

/// Ensures the organization exists; on the very first start also mints an admin token.
async fn bootstrap(store: &Store) -> anyhow::Result<(crate::store::Org, Option<String>)> {
    let (org, created) = store
        .ensure_default_org(DEFAULT_ORG_NAME, clock::now())
        .await?;
    if !created {
        return Ok((org, None));
    }
    let grant = Grant::new(Role::OrgAdmin, None).expect("org-admin takes no portal");
    let issued = tokens::issue(
        store,
        org.id,
        "bootstrap-admin",
        PrincipalKind::User,
        grant,
        None,
        clock::now(),
    )
    .await?;
    Ok((org, Some(issued.secret)))
}

impl Server {
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    pub fn state(&self) -> &AppState {
        &self.state
    }

    /// Stops gracefully and waits until everything is flushed.
    pub async fn stop(self) -> anyhow::Result<()> {
        let _ = self.stop.send(true);
        self.task.await.context("The server task panicked")?
    }
}

/// Resolves on SIGINT or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let terminate = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let terminate = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {}
        _ = terminate => {}
    }
}

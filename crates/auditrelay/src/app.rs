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
use auditrelay_core::integrity::installation_name;
use auditrelay_core::{Grant, Role};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

use crate::api;
use crate::changes::Changes;
use crate::clock::Clock;
use crate::config::Config;
use crate::delivery::{self, Delivery};
use crate::keys::note::NoteSigner;
use crate::keys::{KeyDir, KeyRing, SealedKeys, key_encryption_key};
use crate::leases::{self, Leases};
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
    if !store.join_serving().await? {
        anyhow::bail!(
            "An auditrelay of an earlier version is serving from {location} as its only \
             process. Stop it before starting nodes of this version, which share the database \
             with leases (docs/OPERATIONS.md, rolling upgrades)."
        );
    }
    let (org, bootstrap_token) = bootstrap(&store).await?;
    let (keys, secrets, checkpoint_key) = open_keys(&config, &store).await?;
    let (keys, secrets, checkpoint_key) =
        (Arc::new(keys), Arc::new(secrets), Arc::new(checkpoint_key));
    let listener = TcpListener::bind(config.server.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", config.server.listen))?;
    let addr = listener.local_addr()?;
    let changes = Changes::new();
    let announcer = store.clone();
    changes.announce_with(move || announcer.announce_change());
    let leases = Leases::new(store.clone(), config.store.lease_ttl, leases::node_name());
    let clock = Clock::default();
    let (router, state) = crate::router::service(
        config.clone(),
        Services {
            store: store.clone(),
            org,
            metrics,
            keys: keys.clone(),
            secrets: secrets.clone(),
            checkpoint_key: checkpoint_key.clone(),
            delivery: changes.clone(),
            clock: clock.clone(),
        },
    );

    let (stop, stopped) = watch::channel(false);
    // Counted before delivery takes work, so that its first look takes no more than a share.
    leases.count_nodes().await;
    let delivery = Delivery::start(
        delivery::Shared::new(&config, store.clone(), keys, secrets),
        &changes,
        leases.clone(),
        stopped.clone(),
    );
    tokio::spawn(follow_changes(
        store.changed_elsewhere(),
        changes.clone(),
        stopped.clone(),
    ));
    let keeping = tokio::spawn(leases.clone().keep(stopped.clone()));
    let integrity = tokio::spawn(jobs::integrity::run(
        store.clone(),
        checkpoint_key,
        config.integrity.clone(),
        leases.clone(),
        stopped.clone(),
    ));
    let retention = tokio::spawn(jobs::retention::run(
        store.clone(),
        config.retention.clone(),
        config.integrity.keep_leaves,
        leases,
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
        let _ = integrity.await;
        // Delivery stops mid-batch if it must: the batch stays in flight and is sent again,
        // with the same Idempotency-Key, after the restart.
        delivery.stopped().await;
        // Its leases given up, this node says it is gone.
        let _ = keeping.await;
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

/// The signing keys and the secrets key: in the data directory, or sealed in a store several
/// nodes share (which needs the key-encryption key).
async fn open_keys(
    config: &Config,
    store: &Store,
) -> anyhow::Result<(KeyRing, SecretBox, NoteSigner)> {
    let data_dir = &config.server.data_dir;
    let checkpoint_name = installation_name(&store.identity());
    let Some(vault) = store.vault() else {
        let keys = KeyRing::open(data_dir, clock::now()).with_context(|| {
            let dir = KeyDir::in_data_dir(data_dir);
            format!(
                "Failed to open the signing keys in {}",
                dir.path().display()
            )
        })?;
        let secrets =
            SecretBox::open_or_create(data_dir).context("Failed to open the secrets key")?;
        let checkpoint_key = NoteSigner::in_data_dir(checkpoint_name, data_dir)
            .context("Failed to open the checkpoint key")?;
        return Ok((keys, secrets, checkpoint_key));
    };
    let sealed = SealedKeys::new(vault, &key_encryption_key(config)?);
    let secrets = sealed
        .secrets(data_dir)
        .await
        .context("Failed to open the secrets key in the database")?;
    let checkpoint_seed = sealed
        .checkpoint_seed(data_dir)
        .await
        .context("Failed to open the checkpoint key in the database")?;
    let keys = KeyRing::open_sealed(sealed, data_dir, clock::now())
        .await
        .context("Failed to open the signing keys in the database")?;
    Ok((
        keys,
        secrets,
        NoteSigner::new(checkpoint_name, &checkpoint_seed),
    ))
}

/// Passes the changes other nodes announce to this node's supervisor and lanes.
async fn follow_changes(
    mut elsewhere: watch::Receiver<u64>,
    changes: Changes,
    mut stopped: watch::Receiver<bool>,
) {
    loop {
        tokio::select! {
            changed = elsewhere.changed() => match changed {
                Ok(()) => changes.notify_here(),
                Err(_) => return,
            },
            _ = stopped.wait_for(|stop| *stop) => return,
        }
    }
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

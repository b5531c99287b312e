//! What every lane and replay job shares: the store, the keys, the secrets, the rendering and
//! delivery configuration, the retry policy; and the metrics label of a webhook.

use std::sync::Arc;

use auditrelay_core::FormatConfig;
use auditrelay_core::retry::RetryPolicy;

use tokio::sync::watch;

use crate::config::{Config, DeliveryConfig, RetentionConfig};
use crate::keys::KeyRing;
use crate::leases::Lease;
use crate::secrets::SecretBox;
use crate::store::{Fence, Scope, Store};

/// How long delivery waits after the store failed (or refused a write) before it tries again.
pub const STORE_RETRY: std::time::Duration = std::time::Duration::from_secs(1);

/// What every lane shares.
pub struct Shared {
    pub store: Store,
    pub keys: Arc<KeyRing>,
    pub secrets: Arc<SecretBox>,
    pub format: FormatConfig,
    pub config: DeliveryConfig,
    pub retention: RetentionConfig,
    pub policy: RetryPolicy,
    /// `integrity.checkpoint_interval`: checkpoint events say it, so a verifier knows how far
    /// apart they may be.
    pub checkpoint_interval: std::time::Duration,
}

impl Shared {
    /// What delivery shares, from the server's configuration and what it opened.
    pub fn new(config: &Config, store: Store, keys: Arc<KeyRing>, secrets: Arc<SecretBox>) -> Self {
        Self {
            store,
            keys,
            secrets,
            format: config.format.to_format_config(),
            config: config.delivery.clone(),
            retention: config.retention.clone(),
            policy: config.delivery.retry_policy(),
            checkpoint_interval: config.integrity.checkpoint_interval,
        }
    }

    /// What delivery shares, for unit tests: a store, keys and secrets in `dir`, and the
    /// default configuration.
    #[cfg(test)]
    pub async fn for_tests(dir: &std::path::Path) -> Arc<Self> {
        let config = Config::for_data_dir(dir).unwrap();
        Arc::new(Self::new(
            &config,
            Store::open(&config).await.unwrap(),
            Arc::new(KeyRing::open(dir, crate::clock::now()).unwrap()),
            Arc::new(SecretBox::open_or_create(dir).unwrap()),
        ))
    }
}

/// A lane's, replay job's or resend's hold on its work: the lease whose fence every write it
/// makes carries, and the signal that it must stop (the server stops, or the lease is lost or
/// given up).
pub struct Owner {
    pub lease: Lease,
    pub stop: watch::Receiver<bool>,
}

impl Owner {
    pub fn new(lease: Lease) -> Self {
        Self {
            stop: lease.stopped(),
            lease,
        }
    }

    pub fn fence(&self) -> &Fence {
        self.lease.fence()
    }

    /// Waits until it must stop.
    pub async fn stopped(&mut self) {
        let _ = self.stop.wait_for(|stop| *stop).await;
    }

    pub fn is_stopped(&self) -> bool {
        *self.stop.borrow()
    }
}

/// The metrics label of a webhook: `org/<region>` or `portal/<id>`.
pub fn label(scope: &Scope) -> String {
    match scope.portal_id {
        None => format!("org/{}", scope.region),
        Some(portal) => format!("portal/{portal}"),
    }
}

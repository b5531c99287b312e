//! What every request handler, API and UI alike, can reach: the configuration, the store, the
//! keys, the change signal. Built once by [`crate::router::service`] from what `app::start`
//! opened.

use std::ops::Deref;
use std::sync::Arc;

use auditrelay_core::FormatConfig;
use metrics_exporter_prometheus::PrometheusHandle;

use crate::changes::Changes;
use crate::clock::Clock;
use crate::config::Config;
use crate::keys::KeyRing;
use crate::keys::note::NoteSigner;
use crate::secrets::SecretBox;
use crate::store::{Org, Store};

/// What every handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct AppState(Arc<AppStateInner>);

pub struct AppStateInner {
    pub config: Config,
    pub store: Store,
    /// The installation's organization (self-audit events of unknown callers go here).
    pub org: Org,
    pub metrics: PrometheusHandle,
    /// The signing keys, reloaded when `keys rotate` changes them.
    pub keys: Arc<KeyRing>,
    /// Seals destination authorization values at rest.
    pub secrets: Arc<SecretBox>,
    /// Signs the tamper-evident log's checkpoints; published beside the JWKS.
    pub checkpoint_key: Arc<NoteSigner>,
    /// Tells delivery that a webhook or destination changed.
    pub delivery: Changes,
    /// The names rendered into log lines (`[format]`).
    pub format: FormatConfig,
    /// `/openapi.json`, rendered once.
    pub openapi_json: String,
    /// The monotonic clock intervals are measured by (tests move it forward).
    pub clock: Clock,
}

impl Deref for AppState {
    type Target = AppStateInner;
    fn deref(&self) -> &AppStateInner {
        &self.0
    }
}

/// What the handlers share besides the configuration: opened by `app::start`.
pub struct Services {
    pub store: Store,
    pub org: Org,
    pub metrics: PrometheusHandle,
    pub keys: Arc<KeyRing>,
    pub secrets: Arc<SecretBox>,
    pub checkpoint_key: Arc<NoteSigner>,
    pub delivery: Changes,
    pub clock: Clock,
}

impl AppState {
    pub fn new(config: Config, services: Services, openapi_json: String) -> Self {
        let Services {
            store,
            org,
            metrics,
            keys,
            secrets,
            checkpoint_key,
            delivery,
            clock,
        } = services;
        let format = config.format.to_format_config();
        Self(Arc::new(AppStateInner {
            config,
            store,
            org,
            metrics,
            keys,
            secrets,
            checkpoint_key,
            delivery,
            format,
            openapi_json,
            clock,
        }))
    }
}

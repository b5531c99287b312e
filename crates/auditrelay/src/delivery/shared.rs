//! What every lane and replay job shares: the store, the keys, the secrets, the rendering and
//! delivery configuration, the retry policy; and the metrics label of a webhook.

use std::sync::Arc;

use auditrelay_core::FormatConfig;
use auditrelay_core::retry::RetryPolicy;

use crate::config::{DeliveryConfig, RetentionConfig};
use crate::keys::KeyRing;
use crate::secrets::SecretBox;
use crate::store::{Scope, Store};

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
}

/// The metrics label of a webhook: `org/<region>` or `portal/<id>`.
pub fn label(scope: &Scope) -> String {
    match scope.portal_id {
        None => format!("org/{}", scope.region),
        Some(portal) => format!("portal/{portal}"),
    }
}

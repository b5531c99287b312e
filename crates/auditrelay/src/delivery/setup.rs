//! What a lane or a replay job delivers with: the webhook, its destination and the opened
//! secret, read afresh for each batch; the HTTP client for the destination's certificate
//! choice; and the stamp that tells whether a change concerns a lane.

use std::collections::BTreeMap;

use auditrelay_core::Timestamp;
use auditrelay_core::kind::Kind;

use super::http::DeliveryClient;
use super::shared::Shared;
use super::transport::{ClientIdentity, DeliverySettings};
use crate::store::{Destination, Scope, StoreError, Webhook};

/// The client for a destination's certificate choices (the server's it takes, the one it
/// shows), kept in `cache` while they hold: connections are pooled per client, and a syslog
/// client holds its connection and unconfirmed tail.
pub(super) fn client_for(
    cache: &mut Option<DeliveryClient>,
    shared: &Shared,
    setup: &Setup,
) -> DeliveryClient {
    let destination = &setup.destination;
    let mut settings = DeliverySettings::new(&shared.config, destination.skip_ssl_verification);
    settings.client_identity = client_identity(&destination.kind, &setup.authorization);
    match cache {
        Some(client) if client.settings() == &settings => client.clone(),
        _ => {
            let client =
                DeliveryClient::new(settings).expect("a client with these settings always builds");
            if let (Some(old), Kind::Syslog(_)) = (cache.as_ref(), &destination.kind) {
                // A syslog receiver's unconfirmed batches are not forgotten with the old client.
                client.adopt(old);
            }
            cache.insert(client).clone()
        }
    }
}

/// The certificate a syslog destination shows: its settings' chain with the key sealed as its
/// `authorization`.
pub(super) fn client_identity(kind: &Kind, authorization: &str) -> Option<ClientIdentity> {
    match kind {
        Kind::Syslog(syslog) if !authorization.is_empty() => Some(ClientIdentity {
            certificate_pem: syslog.client_certificate.clone()?,
            key_pem: authorization.to_owned(),
        }),
        _ => None,
    }
}

/// What a lane delivers with: the webhook, its destination, and the opened secret. The stamp
/// tells whether a change affects this lane.
pub(super) struct Setup {
    pub webhook: Webhook,
    pub destination: Destination,
    pub authorization: String,
    /// The destination's extra headers, opened.
    pub headers: BTreeMap<String, String>,
}

/// The scope's webhook, its destination and its opened secrets; `None` when the webhook
/// is gone or disabled.
pub(super) async fn load_setup(
    shared: &Shared,
    scope: &Scope,
) -> Result<Option<Setup>, StoreError> {
    let store = &shared.store;
    let Some(webhook) = store.get_webhook(scope).await? else {
        return Ok(None);
    };
    if !webhook.enabled {
        return Ok(None);
    }
    let destination = store
        .get_destination(scope.org_id, webhook.destination_id)
        .await?;
    let Some(destination) = destination else {
        return Ok(None);
    };
    let authorization = shared
        .secrets
        .open(
            &destination.authorization_sealed,
            &destination.id.to_string(),
        )
        .map_err(|e| StoreError::Corrupt(format!("destination authorization: {e}")))?;
    let headers = shared
        .secrets
        .open_headers(
            &destination.id.to_string(),
            destination.headers_sealed.as_deref(),
        )
        .map_err(|e| StoreError::Corrupt(format!("destination headers: {e}")))?;
    Ok(Some(Setup {
        webhook,
        destination,
        authorization,
        headers,
    }))
}

impl Setup {
    pub(super) fn stamp(&self) -> Stamp {
        stamp(&self.webhook, &self.destination)
    }
}

/// Everything whose change must cut a wait short. The destination whole, not its `updated_at`:
/// two changes within one millisecond (a rename, then the headers cleared) have the same time,
/// and the second must not be missed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Stamp {
    webhook_updated: Timestamp,
    enabled: bool,
    destination: Destination,
}

pub(super) fn stamp(webhook: &Webhook, destination: &Destination) -> Stamp {
    Stamp {
        webhook_updated: webhook.updated_at,
        enabled: webhook.enabled,
        destination: destination.clone(),
    }
}

#[cfg(test)]
mod tests {
    use auditrelay_core::format::Format;
    use auditrelay_core::{OrgId, Region};

    use super::*;
    use crate::store::WebhookStatus;

    /// Two saves of a destination within one millisecond have the same `updated_at`: the
    /// second (here, its extra headers cleared) must still read as a change, or a lane would
    /// go on sending with the first's.
    #[test]
    fn a_change_within_the_same_millisecond_is_a_change() {
        let at = Timestamp::from_millis(1_750_000_000_000);
        let destination = Destination {
            id: uuid::Uuid::new_v4(),
            org_id: OrgId::new_v4(),
            name: "siem".into(),
            endpoint: "https://siem.example/".into(),
            authorization_sealed: vec![1],
            log_format: Format::Cef,
            skip_ssl_verification: false,
            integrity: false,
            kind: Kind::Webhook,
            headers_sealed: Some(vec![2]),
            managed_region: None,
            portal_id: None,
            created_at: at,
            updated_at: at,
        };
        let webhook = Webhook {
            scope: Scope {
                org_id: destination.org_id,
                region: Region::parse("us").unwrap(),
                portal_id: None,
            },
            destination_id: destination.id,
            enabled: true,
            status: WebhookStatus::Active,
            cursor: 0,
            in_flight_through: None,
            checkpoint_cursor: None,
            checkpoint_stream: 0,
            last_attempt: None,
            consecutive_failures: 0,
            next_attempt_at: None,
            updated_at: at,
        };
        let cleared = Destination {
            headers_sealed: None,
            ..destination.clone()
        };
        assert_eq!(
            stamp(&webhook, &destination),
            stamp(&webhook, &destination.clone())
        );
        assert_ne!(stamp(&webhook, &destination), stamp(&webhook, &cleared));
    }
}

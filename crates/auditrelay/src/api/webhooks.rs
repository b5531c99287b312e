//! Webhooks: the org's `/v2|v3/audit-log-webhook` (one per region) and its `/status`
//! (DECISIONS.md K3, K5). Portal webhooks are in `portal_webhooks.rs` and share the binding
//! logic here.
//!
//! One record per scope serves every view, so v2 and v3 cannot disagree: v3 shows the binding
//! (`audit_log_destination_id`, `enabled`); v2 shows the bound destination's fields inline, and a
//! v2 PATCH with inline fields writes them to the region's *managed* destination and binds it
//! (DECISIONS.md D9). A region with no record is unconfigured: v2 answers `endpoint:
//! "unconfigured"`, v3 answers 404. On the `global` region a write applies to every configured
//! region in one transaction, and a read is a 400: there is no single answer.
//!
//! Two additions of ours: the status carries the backlog (`lag_events`, `oldest_undelivered_at`,
//! `seconds_until_data_loss`, from the same store query as the delivery gauges), and
//! `POST …/audit-log-webhook/test-event` sends a test event, the documents' "validate the
//! webhook" step. The test event is not ingested through `POST /v1/events`: that needs the
//! event-producer permission, which the people who configure webhooks (audit-logs admins,
//! portal admins) rightly lack, and a test must not let them inject arbitrary events. Instead the
//! request's own audit events are the test: real, signed, unmistakable (the action `test`, the
//! path `…/test-event`, one trace id), and in the webhook's scope.

use auditrelay_core::format::Format;
use auditrelay_core::kind::Kind;
use auditrelay_core::{OrgId, Permission, Region, Timestamp};
use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::destinations::{LogFormatWire, Problems};
use super::error::{ApiError, InvalidParameter, Problem};
use super::json::ApiJson;
use super::region::RequestRegion;
use crate::clock;
use crate::state::AppState;
use crate::store::{
    Destination, DestinationFilter, PageQuery, Scope, StoreError, Webhook, WebhookConfig,
};

const RESOURCE: &str = "audit-log-webhook";
/// What kongctl's start-up guard looks for in the v2 `endpoint` of a region with no webhook.
const UNCONFIGURED: &str = "unconfigured";

/// Konnect's v2 `AuditLogWebhook`: the bound destination's settings, inline.
#[derive(Debug, Serialize, ToSchema)]
pub struct InlineWebhook {
    /// The bound destination's endpoint, or `unconfigured`.
    pub endpoint: String,
    pub enabled: bool,
    /// `cef`, `json` or `cps`; `ocsf` is our extension.
    pub log_format: String,
    pub skip_ssl_verification: bool,
    /// `0001-01-01T00:00:00Z` while unconfigured.
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// The bound destination (our addition, so v2 clients can find it).
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub audit_log_destination_id: Option<String>,
}

/// Konnect's v2 `UpdateAuditLogWebhook`: every field optional. Without `enabled` a new webhook
/// is created disabled.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct InlineWebhookBody {
    pub endpoint: Option<String>,
    /// Sent verbatim as the `Authorization` header of every delivery; never returned.
    pub authorization: Option<String>,
    pub enabled: Option<bool>,
    pub log_format: Option<LogFormatWire>,
    pub skip_ssl_verification: Option<bool>,
}

impl InlineWebhookBody {
    /// Whether the body changes the destination, not only `enabled`.
    fn has_destination_fields(&self) -> bool {
        self.endpoint.is_some()
            || self.authorization.is_some()
            || self.log_format.is_some()
            || self.skip_ssl_verification.is_some()
    }

    /// Whether the body asks for nothing an unconfigured webhook does not already show: no
    /// endpoint or authorization, not enabled, and `cef` and certificate checks if it names
    /// them. Terraform's `resource "konnect_audit_log" "x" {}` sends exactly such a body
    /// (`{"authorization":null,"enabled":false,"endpoint":null,"log_format":"cef",…}`).
    fn is_unconfigured_view(&self) -> bool {
        self.endpoint.is_none()
            && self.authorization.is_none()
            && self.enabled != Some(true)
            && matches!(self.log_format, None | Some(LogFormatWire::Cef))
            && self.skip_ssl_verification != Some(true)
    }
}

/// Konnect's v3 `AuditLogsWebhook` and portal `PortalAuditLogWebhook`.
#[derive(Debug, Serialize, ToSchema)]
pub struct BoundWebhook {
    #[schema(format = Uuid)]
    pub audit_log_destination_id: String,
    pub enabled: bool,
}

impl From<&Webhook> for BoundWebhook {
    fn from(w: &Webhook) -> Self {
        Self {
            audit_log_destination_id: w.destination_id.to_string(),
            enabled: w.enabled,
        }
    }
}

/// Konnect's v3 `UpdateAuditLogsWebhook` and `UpdatePortalAuditLogWebhook`. The destination
/// id is a string here so a malformed one gets Konnect's own 400.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct BindingBody {
    #[schema(format = Uuid)]
    pub audit_log_destination_id: Option<String>,
    pub enabled: Option<bool>,
}

/// Konnect's `AuditLogWebhookStatus`, with the documented `unconfigured` status.
#[derive(Debug, Serialize, ToSchema)]
pub struct WebhookStatusResponse {
    pub webhook_enabled: bool,
    /// `active`, `inactive` or `unconfigured`.
    pub webhook_status: &'static str,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub last_attempt_at: Option<String>,
    /// Absent when the last attempt got no HTTP answer (see the message).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_response_code: Option<u16>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub last_response_message: Option<String>,
    /// Our extension, while the webhook is enabled: how many of the scope's stored events the
    /// SIEM has not acknowledged yet.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub lag_events: Option<u64>,
    /// Our extension, while events wait: when the oldest of them happened.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub oldest_undelivered_at: Option<String>,
    /// Our extension, while events wait: seconds until retention deletes the oldest of them
    /// (0 when it is due). Whatever is not delivered by then is lost.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub seconds_until_data_loss: Option<u64>,
    /// Our extension, for a configured webhook: whether a batch that failed waits for another
    /// attempt (a retry, or a probe of an inactive webhook).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retrying: Option<bool>,
    /// Our extension, while `retrying`: when the next attempt is due.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub next_attempt_at: Option<String>,
    /// Our extension, for a configured webhook: attempts that failed in a row since the last
    /// delivered batch or configuration change.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub consecutive_failures: Option<u32>,
    /// Our extension, when there are some: how many events the receiver refused for good (see
    /// `…/refused-events`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub refused_events: Option<u64>,
}

impl From<Option<&Webhook>> for WebhookStatusResponse {
    fn from(webhook: Option<&Webhook>) -> Self {
        let Some(w) = webhook else {
            return Self {
                webhook_enabled: false,
                webhook_status: UNCONFIGURED,
                last_attempt_at: None,
                last_response_code: None,
                last_response_message: None,
                lag_events: None,
                oldest_undelivered_at: None,
                seconds_until_data_loss: None,
                retrying: None,
                next_attempt_at: None,
                consecutive_failures: None,
                refused_events: None,
            };
        };
        let attempt = w.last_attempt.as_ref();
        let next = w.next_attempt_at.filter(|_| w.enabled);
        Self {
            webhook_enabled: w.enabled,
            webhook_status: w.status.as_str(),
            last_attempt_at: attempt.map(|a| a.at.to_rfc3339_millis()),
            last_response_code: attempt.and_then(|a| a.code),
            last_response_message: attempt.map(|a| a.message.clone()),
            lag_events: None,
            oldest_undelivered_at: None,
            seconds_until_data_loss: None,
            retrying: Some(next.is_some()),
            next_attempt_at: next.map(Timestamp::to_rfc3339_millis),
            consecutive_failures: Some(w.consecutive_failures),
            refused_events: None,
        }
    }
}

/// A webhook's status with our backlog fields: what delivery has not done yet, read from the
/// same store query that feeds the lag gauges.
pub(super) async fn status_view(
    state: &AppState,
    webhook: Option<&Webhook>,
) -> Result<WebhookStatusResponse, ApiError> {
    let mut view = WebhookStatusResponse::from(webhook);
    if let Some(webhook) = webhook {
        let refused = state.store.count_refused(&webhook.scope).await?;
        view.refused_events = (refused > 0).then_some(refused);
    }
    let Some(webhook) = webhook.filter(|w| w.enabled) else {
        return Ok(view);
    };
    let (lag, oldest) = state
        .store
        .undelivered(&webhook.scope, webhook.cursor)
        .await?;
    view.lag_events = Some(lag);
    if let Some(oldest) = oldest {
        let deleted_at = oldest
            .as_millis()
            .saturating_add(state.config.retention.window.as_millis() as i64);
        let left_ms = deleted_at.saturating_sub(clock::now().as_millis()).max(0);
        view.oldest_undelivered_at = Some(oldest.to_rfc3339_millis());
        view.seconds_until_data_loss = Some((left_ms / 1000) as u64);
    }
    Ok(view)
}

/// Our extension: what `POST …/audit-log-webhook/test-event` sent.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestEventResponse {
    /// The trace id every event of the test carries: search the SIEM for it.
    pub trace_id: String,
    /// When the events happened.
    #[schema(format = DateTime)]
    pub ts: String,
}

impl TestEventResponse {
    pub(super) fn of(caller: &Caller) -> Self {
        Self {
            trace_id: caller.ctx.facts.trace_id.clone(),
            ts: caller.ctx.facts.ts.to_rfc3339_millis(),
        }
    }
}

/// A test event goes nowhere unless the scope's webhook is enabled: say so instead of
/// storing events the SIEM will never see through it.
pub(super) async fn require_enabled(state: &AppState, scope: &Scope) -> Result<(), ApiError> {
    let enabled = state
        .store
        .get_webhook(scope)
        .await?
        .is_some_and(|w| w.enabled);
    if enabled {
        return Ok(());
    }
    Err(ApiError::invalid(
        "webhook is not enabled",
        InvalidParameter::new(
            "webhook",
            Some("invalid"),
            "is not enabled: a test event is sent through the webhook, which must be enabled first",
        ),
    ))
}

/// The org scope a regional action addresses; 400 on `global`.
pub(super) fn org_scope(caller: &Caller) -> Result<Scope, ApiError> {
    Ok(Scope {
        org_id: caller.principal.org_id,
        region: caller.ctx.region()?.clone(),
        portal_id: None,
    })
}

/// The org scope a read addresses. On `global` that is the default region's: a PATCH or PUT on
/// `global` writes every region and answers with the default region's view, so a client that
/// wrote there (Terraform's default server is the global host) reads back what it wrote.
pub(super) fn org_scope_to_read(state: &AppState, caller: &Caller) -> Scope {
    let region = match &caller.ctx.region {
        RequestRegion::One(region) => region,
        RequestRegion::Global => state.config.regions.default_region(),
    };
    Scope {
        org_id: caller.principal.org_id,
        region: region.clone(),
        portal_id: None,
    }
}

/// The org scopes a write addresses: the request's region, or every region on `global`. The
/// first is the one whose webhook the response shows (the default region on `global`).
pub(super) fn org_scopes_to_write(state: &AppState, caller: &Caller) -> Vec<Scope> {
    let org_id = caller.principal.org_id;
    let scope = |region: &Region| Scope {
        org_id,
        region: region.clone(),
        portal_id: None,
    };
    match &caller.ctx.region {
        RequestRegion::One(region) => vec![scope(region)],
        RequestRegion::Global => state.config.regions.list.iter().map(scope).collect(),
    }
}

/// The destination a binding body names, if any: Konnect's 400 for a malformed id, and a
/// `missing_reference` 400 for an id that names no destination the caller may use for every
/// one of `scopes`. A caller uses what it may see (a portal admin: its portal's destinations),
/// and a webhook uses the organization's destinations or its own portal's, never another
/// portal's (whose admin could otherwise redirect it by editing the destination).
pub(super) async fn named_destination(
    state: &AppState,
    caller: &Caller,
    scopes: &[Scope],
    body: &BindingBody,
) -> Result<Option<Uuid>, ApiError> {
    let Some(raw) = body.audit_log_destination_id.as_deref() else {
        return Ok(None);
    };
    let id = Uuid::try_parse(raw)
        .ok()
        .filter(|_| raw.len() == 36)
        .ok_or_else(|| {
            ApiError::invalid(
                "Could not parse destination id",
                InvalidParameter::new(
                    "audit_log_destination_id",
                    None,
                    "destination id format is invalid",
                )
                .with_source("body"),
            )
        })?;
    let grant = &caller.principal.grant;
    let usable = |d: &Destination| {
        grant.allows(Permission::ReadDestination(d.portal_id))
            && scopes
                .iter()
                .all(|s| d.portal_id.is_none() || d.portal_id == s.portal_id)
    };
    match state
        .store
        .get_destination(caller.principal.org_id, id)
        .await?
    {
        Some(d) if usable(&d) => Ok(Some(id)),
        _ => Err(missing_destination()),
    }
}

fn missing_destination() -> ApiError {
    ApiError::invalid(
        "Unknown audit log destination",
        InvalidParameter::new(
            "audit_log_destination_id",
            Some("missing_reference"),
            "no audit log destination has this id",
        )
        .with_source("body"),
    )
}

/// A binding body applied to a scope's current webhook. A new webhook needs a destination;
/// an existing one keeps whatever the body leaves out.
pub(super) fn apply_binding(
    scope: Scope,
    current: Option<&Webhook>,
    destination: Option<Uuid>,
    enabled: Option<bool>,
    now: Timestamp,
) -> Result<WebhookConfig, ApiError> {
    let Some(destination_id) = destination.or(current.map(|w| w.destination_id)) else {
        return Err(ApiError::invalid(
            "Required field missing",
            InvalidParameter::new("audit_log_destination_id", None, "cannot be blank")
                .with_source("body"),
        ));
    };
    Ok(WebhookConfig {
        scope,
        destination_id,
        enabled: enabled.or(current.map(|w| w.enabled)).unwrap_or(false),
        updated_at: now,
    })
}

/// Saves webhook configurations (and managed destinations) with the API's errors.
pub(super) async fn save(
    state: &AppState,
    managed: &[Destination],
    webhooks: &[WebhookConfig],
) -> Result<(), ApiError> {
    match state.store.configure_webhooks(managed, webhooks).await {
        Ok(()) => {
            state.delivery.notify();
            Ok(())
        }
        // The destination was deleted between our check and the write.
        Err(StoreError::MissingReference(_)) => Err(missing_destination()),
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
            "The name of the webhook's managed destination is taken; retry",
        )),
        Err(e) => Err(e.into()),
    }
}

/// Applies a binding PATCH (v3 org, portal) to every scope, all or nothing; returns the first
/// scope's webhook as saved.
pub(super) async fn patch_binding(
    state: &AppState,
    caller: &Caller,
    scopes: Vec<Scope>,
    body: &BindingBody,
) -> Result<Webhook, ApiError> {
    let destination = named_destination(state, caller, &scopes, body).await?;
    let now = clock::now();
    let mut configs = Vec::with_capacity(scopes.len());
    for scope in scopes {
        let current = state.store.get_webhook(&scope).await?;
        configs.push(apply_binding(
            scope,
            current.as_ref(),
            destination,
            body.enabled,
            now,
        )?);
    }
    save(state, &[], &configs).await?;
    saved_webhook(state, &configs[0].scope).await
}

/// A webhook just written (it exists unless deleted concurrently, which a client sees as 404).
pub(super) async fn saved_webhook(state: &AppState, scope: &Scope) -> Result<Webhook, ApiError> {
    state
        .store
        .get_webhook(scope)
        .await?
        .ok_or_else(ApiError::not_found)
}

fn not_configured(scope: &Scope) -> ApiError {
    ApiError::not_found_because(format!(
        "No audit log webhook is configured for region [{}]",
        scope.region
    ))
}

/// The v2 view of a scope's webhook.
async fn inline_view(state: &AppState, scope: &Scope) -> Result<InlineWebhook, ApiError> {
    let Some(webhook) = state.store.get_webhook(scope).await? else {
        return Ok(InlineWebhook {
            endpoint: UNCONFIGURED.to_owned(),
            enabled: false,
            log_format: Format::Cef.as_str().to_owned(),
            skip_ssl_verification: false,
            updated_at: Timestamp::ZERO.to_rfc3339_seconds(),
            audit_log_destination_id: None,
        });
    };
    let destination = bound_destination(state, &webhook).await?;
    Ok(InlineWebhook {
        endpoint: destination.shown_endpoint(),
        enabled: webhook.enabled,
        log_format: destination.log_format.as_str().to_owned(),
        skip_ssl_verification: destination.skip_ssl_verification,
        // Editing the destination edits this view too.
        updated_at: webhook
            .updated_at
            .max(destination.updated_at)
            .to_rfc3339_millis(),
        audit_log_destination_id: Some(destination.id.to_string()),
    })
}

async fn bound_destination(state: &AppState, webhook: &Webhook) -> Result<Destination, ApiError> {
    let found = state
        .store
        .get_destination(webhook.scope.org_id, webhook.destination_id)
        .await?;
    // The foreign key keeps a bound destination alive.
    found.ok_or_else(|| ApiError::internal("a webhook's destination is missing"))
}

/// The v2 PATCH of one scope: the new managed destination, if the body has destination fields,
/// and the webhook configuration; `None` when an unconfigured webhook stays unconfigured.
struct InlinePlan {
    managed: Option<Destination>,
    webhook: Option<WebhookConfig>,
}

/// The destination fields of a v2 body, validated once for every region.
struct InlineFields {
    endpoint: Option<String>,
    authorization: Option<String>,
}

async fn plan_inline(
    state: &AppState,
    scope: Scope,
    body: &InlineWebhookBody,
    fields: &InlineFields,
    problems: &mut Problems,
    now: Timestamp,
) -> Result<InlinePlan, ApiError> {
    let current = state.store.get_webhook(&scope).await?;
    if current.is_none() && body.is_unconfigured_view() {
        // Nothing to configure, and nothing that contradicts the unconfigured view.
        return Ok(InlinePlan {
            managed: None,
            webhook: None,
        });
    }
    if !body.has_destination_fields() {
        let Some(current) = current else {
            // Disabling what does not exist changes nothing; enabling it needs a destination.
            if body.enabled == Some(true) {
                problems.blank_once("endpoint");
                problems.blank_once("authorization");
            }
            return Ok(InlinePlan {
                managed: None,
                webhook: None,
            });
        };
        let config = apply_binding(scope, Some(&current), None, body.enabled, now)?;
        return Ok(InlinePlan {
            managed: None,
            webhook: Some(config),
        });
    }

    // Fields the body leaves out come from the destination the webhook uses now.
    let base = match &current {
        Some(webhook) => Some(bound_destination(state, webhook).await?),
        None => None,
    };
    // A Sumo Logic endpoint given back as answers show it, masked, is the saved one (the
    // body's own text: `fields` holds it parsed, which encodes the mask's brackets).
    let masked = (body.endpoint.as_deref())
        .is_some_and(|given| base.as_ref().is_some_and(|d| d.shows_endpoint_as(given)));
    let given = fields.endpoint.clone().filter(|_| !masked);
    let endpoint = (given.clone()).or_else(|| base.as_ref().map(|d| d.endpoint.clone()));
    let authorization = match (&fields.authorization, &base) {
        (Some(value), _) => Some(value.clone()),
        (None, Some(base)) => Some(
            state
                .secrets
                .open(&base.authorization_sealed, &base.id.to_string())
                .map_err(ApiError::internal)?,
        ),
        (None, None) => None,
    };
    if body.endpoint.is_none() && endpoint.is_none() {
        problems.blank_once("endpoint");
    }
    if body.authorization.is_none() && authorization.is_none() {
        problems.blank_once("authorization");
    }
    let (Some(endpoint), Some(authorization)) = (endpoint, authorization) else {
        return Ok(InlinePlan {
            managed: None,
            webhook: None,
        });
    };

    let org_id = scope.org_id;
    let existing = state
        .store
        .get_managed_destination(org_id, &scope.region)
        .await?;
    let (id, name, created_at) = match &existing {
        Some(d) => (d.id, d.name.clone(), d.created_at),
        None => {
            let id = Uuid::new_v4();
            (
                id,
                managed_name(state, org_id, &scope.region, id).await?,
                now,
            )
        }
    };
    let log_format = body
        .log_format
        .map(Format::from)
        .or(base.as_ref().map(|d| d.log_format))
        .unwrap_or(Format::Cef);
    let skip_ssl_verification = body
        .skip_ssl_verification
        .or(base.as_ref().map(|d| d.skip_ssl_verification))
        .unwrap_or(false);
    // Unchanged credentials keep their sealed bytes, so the store can tell that they did not
    // change (and keeps the status's last attempt).
    let authorization_sealed = match (&fields.authorization, &base) {
        (None, Some(base)) if base.id == id => base.authorization_sealed.clone(),
        _ => state.secrets.seal(&authorization, &id.to_string()),
    };
    // Extra headers (our extension) are not part of the v2 body: they stay as they are, and
    // come along, like the authorization, from a destination the webhook used until now.
    let headers_sealed = match &base {
        Some(base) if base.id == id => base.headers_sealed.clone(),
        Some(base) => {
            let headers = super::destinations::open_headers(state, base)?;
            super::destinations::seal_headers(state, id, &headers)
        }
        None => None,
    };
    // The kind (our extension) is not part of the v2 body either, and comes along the same way;
    // the endpoint and credential the body gives must then suit it (a Datadog destination's
    // endpoint stays Datadog's intake).
    let kind = base
        .as_ref()
        .map_or(Kind::Webhook, |base| base.kind.clone());
    if given.is_some() {
        problems.endpoint_of(kind.name(), &endpoint);
    }
    if let Some(given) = fields
        .authorization
        .as_deref()
        .filter(|_| kind != Kind::Webhook)
        && let Some(key) = problems.credential(kind.name(), Some(given))
    {
        problems.client_identity(&kind, &key);
    }
    // Konnect's v2 body has no `integrity`: what the destinations API set stays.
    let integrity = existing.as_ref().is_some_and(|d| d.integrity);
    let managed = Destination {
        id,
        org_id,
        name,
        endpoint,
        authorization_sealed,
        log_format,
        skip_ssl_verification,
        headers_sealed,
        integrity,
        kind,
        managed_region: Some(scope.region.clone()),
        portal_id: None,
        created_at,
        updated_at: now,
    };
    let webhook = apply_binding(scope, current.as_ref(), Some(id), body.enabled, now)?;
    Ok(InlinePlan {
        managed: Some(managed),
        webhook: Some(webhook),
    })
}

/// `org-webhook-<region>`, unless a destination of that name exists already.
async fn managed_name(
    state: &AppState,
    org: OrgId,
    region: &Region,
    id: Uuid,
) -> Result<String, ApiError> {
    let name = format!("org-webhook-{region}");
    let filter = DestinationFilter {
        equals: Some(name.clone()),
        ..DestinationFilter::default()
    };
    let page = PageQuery {
        seek: crate::store::Seek::Forward(None),
        limit: 1,
    };
    let taken = !state
        .store
        .list_destinations(org, &page, &filter)
        .await?
        .is_empty();
    Ok(if taken {
        format!("{name}-{}", &id.simple().to_string()[..8])
    } else {
        name
    })
}

async fn patch_inline(
    state: &AppState,
    caller: &Caller,
    body: InlineWebhookBody,
) -> Result<InlineWebhook, ApiError> {
    caller.authorize(Permission::WriteAuditLogs, RESOURCE, "edit")?;
    let mut problems = Problems::default();
    let endpoint = match body.endpoint.as_deref() {
        Some(e) => problems.endpoint(e, &state.config.delivery).await,
        None => None,
    };
    let authorization = body
        .authorization
        .as_deref()
        .and_then(|a| problems.authorization(a));
    let fields = InlineFields {
        endpoint,
        authorization,
    };
    let scopes = org_scopes_to_write(state, caller);
    let shown = scopes[0].clone();
    let now = clock::now();
    let mut managed = Vec::new();
    let mut webhooks = Vec::new();
    for scope in scopes {
        let plan = plan_inline(state, scope, &body, &fields, &mut problems, now).await?;
        managed.extend(plan.managed);
        webhooks.extend(plan.webhook);
    }
    problems.into_result()?;
    save(state, &managed, &webhooks).await?;
    inline_view(state, &shown).await
}

/// Get the org's audit-log webhook of a region (v2: the destination's settings inline); on
/// `global`, the default region's.
#[utoipa::path(get, path = "/v2/audit-log-webhook", tag = "Audit Logs",
    operation_id = "get-audit-log-webhook",
    responses(
        (status = 200, body = InlineWebhook),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_webhook_v2(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<InlineWebhook>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    Ok(Json(inline_view(&state, &scope).await?))
}

/// Update the org's audit-log webhook of a region, or of every region on `global` (v2: inline
/// settings, saved to the region's managed destination).
#[utoipa::path(patch, path = "/v2/audit-log-webhook", tag = "Audit Logs",
    operation_id = "update-audit-log-webhook",
    request_body = InlineWebhookBody,
    responses(
        (status = 200, body = InlineWebhook),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn update_webhook_v2(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<InlineWebhookBody>,
) -> Result<Json<InlineWebhook>, ApiError> {
    Ok(Json(patch_inline(&state, &caller, body).await?))
}

/// Get the org's audit-log webhook of a region (v3: its destination binding); 404 while
/// unconfigured.
#[utoipa::path(get, path = "/v3/audit-log-webhook", tag = "Audit Logs",
    operation_id = "get-audit-logs-webhook",
    responses(
        (status = 200, body = BoundWebhook),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_webhook_v3(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<BoundWebhook>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    let webhook = state.store.get_webhook(&scope).await?;
    let webhook = webhook.ok_or_else(|| not_configured(&scope))?;
    Ok(Json((&webhook).into()))
}

/// Bind the org's audit-log webhook of a region (or of every region on `global`) to a
/// destination, or enable or disable it.
#[utoipa::path(patch, path = "/v3/audit-log-webhook", tag = "Audit Logs",
    operation_id = "update-audit-logs-webhook",
    request_body = BindingBody,
    responses(
        (status = 200, body = BoundWebhook),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn update_webhook_v3(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<BindingBody>,
) -> Result<Json<BoundWebhook>, ApiError> {
    caller.authorize(Permission::WriteAuditLogs, RESOURCE, "edit")?;
    let scopes = org_scopes_to_write(&state, &caller);
    let saved = patch_binding(&state, &caller, scopes, &body).await?;
    Ok(Json((&saved).into()))
}

/// Remove the org's audit-log webhook of a region (or of every region on `global`): it becomes
/// unconfigured and its destination is free to delete.
#[utoipa::path(delete, path = "/v3/audit-log-webhook", tag = "Audit Logs",
    operation_id = "delete-audit-logs-webhook",
    responses(
        (status = 204, description = "Removed"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn delete_webhook_v3(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<StatusCode, ApiError> {
    caller.authorize(Permission::WriteAuditLogs, RESOURCE, "delete")?;
    let scopes = org_scopes_to_write(&state, &caller);
    match state.store.delete_webhooks(&scopes).await? {
        0 => Err(not_configured(&scopes[0])),
        _ => {
            state.delivery.notify();
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

async fn org_status(state: &AppState, caller: &Caller) -> Result<WebhookStatusResponse, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(state, caller);
    let webhook = state.store.get_webhook(&scope).await?;
    status_view(state, webhook.as_ref()).await
}

/// The delivery status of the org's audit-log webhook of a region.
#[utoipa::path(get, path = "/v2/audit-log-webhook/status", tag = "Audit Logs",
    operation_id = "get-audit-log-webhook-status",
    responses(
        (status = 200, body = WebhookStatusResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_webhook_status_v2(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookStatusResponse>, ApiError> {
    Ok(Json(org_status(&state, &caller).await?))
}

/// The delivery status of the org's audit-log webhook of a region.
#[utoipa::path(get, path = "/v3/audit-log-webhook/status", tag = "Audit Logs",
    operation_id = "get-audit-logs-webhook-status",
    responses(
        (status = 200, body = WebhookStatusResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_webhook_status_v3(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookStatusResponse>, ApiError> {
    Ok(Json(org_status(&state, &caller).await?))
}

/// Our extension: sends a test event through the org's webhook of a region, the documents'
/// "validate the webhook" step. The events are this request's own self-audit events (its
/// authentication, the `Authz.audit-log-webhook` check with action `test`, and its access
/// event), which belong to the region and reach its SIEM with the next batch, all under the
/// trace id the answer names. 400 while the webhook is not enabled.
#[utoipa::path(post, path = "/v3/audit-log-webhook/test-event", tag = "Audit Logs",
    operation_id = "send-audit-logs-webhook-test-event",
    responses(
        (status = 202, body = TestEventResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn send_test_event_v3(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<TestEventResponse>), ApiError> {
    caller.authorize(Permission::WriteAuditLogs, RESOURCE, "test")?;
    let scope = org_scope(&caller)?;
    require_enabled(&state, &scope).await?;
    Ok((StatusCode::ACCEPTED, Json(TestEventResponse::of(&caller))))
}

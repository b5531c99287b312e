//! Our extensions for the operator: a webhook's delivery log (its recent attempts: live
//! delivery, retries, probes and replays, newest first, with our pagination conventions) and
//! "Retry now", which re-arms a webhook so that the batch it waits on goes at once instead of at
//! the next probe. Both exist for the org's webhook of a region and for a portal's.

use auditrelay_core::Permission;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::pagination::{self, CursorMeta};
use super::portal_webhooks::portal_scope;
use super::webhooks::{WebhookStatusResponse, org_scope, org_scope_to_read, status_view};
use crate::clock;
use crate::state::AppState;
use crate::store::{LoggedAttempt, Scope};

const ORG_RESOURCE: &str = "audit-log-webhook";
const PORTAL_RESOURCE: &str = "portal-audit-log-webhook";

/// One attempt to send a batch.
#[derive(Debug, Serialize, ToSchema)]
pub struct DeliveryAttemptView {
    #[schema(format = DateTime)]
    pub attempted_at: String,
    /// `live` (a batch's first attempt), `retry`, `probe` (of an inactive webhook) or `replay`.
    pub kind: &'static str,
    pub endpoint: String,
    pub events: u32,
    /// The first and last event `seq` of the batch (the `seq` field of each line).
    pub first_seq: i64,
    pub last_seq: i64,
    /// Absent when the request got no HTTP answer: `response_message` says why (connection
    /// refused, timeout, the TLS error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    pub response_message: String,
    pub duration_ms: u64,
    /// Whether the SIEM took the batch: a 2xx, or, for syslog, which has no answer, every
    /// byte written on an open connection.
    pub delivered: bool,
}

impl From<&LoggedAttempt> for DeliveryAttemptView {
    fn from(logged: &LoggedAttempt) -> Self {
        let a = &logged.attempt;
        Self {
            attempted_at: a.at.to_rfc3339_millis(),
            kind: a.kind.as_str(),
            endpoint: a.endpoint.clone(),
            events: a.events,
            first_seq: a.first_seq,
            last_seq: a.last_seq,
            response_code: a.code,
            response_message: a.message.clone(),
            duration_ms: a.duration_ms,
            delivered: a.delivered,
        }
    }
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListDeliveries {
    pub data: Vec<DeliveryAttemptView>,
    pub meta: CursorMeta,
}

async fn list(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    query: Option<&str>,
) -> Result<Json<ListDeliveries>, ApiError> {
    let page = pagination::parse(query, 20, 100)?;
    let attempts = state.store.list_attempts(scope, &page.query()).await?;
    // Newest first: the sort key is the negated id (see `Store::list_attempts`).
    let (attempts, meta) = pagination::finish(attempts, &page, &caller.ctx.facts.uri, |a| {
        (-a.id, String::new())
    });
    Ok(Json(ListDeliveries {
        data: attempts.iter().map(Into::into).collect(),
        meta,
    }))
}

/// Re-arms the webhook and tells its lane, which sends the batch it waits on at once; answers
/// the status as it is then (a 404 when the webhook is not configured).
async fn retry(state: &AppState, scope: &Scope) -> Result<Json<WebhookStatusResponse>, ApiError> {
    if !state.store.rearm_webhook(scope, clock::now()).await? {
        return Err(ApiError::not_found_because(
            "No audit log webhook is configured here",
        ));
    }
    state.delivery.notify();
    let webhook = state.store.get_webhook(scope).await?;
    Ok(Json(status_view(state, webhook.as_ref()).await?))
}

/// Our extension: the recent delivery attempts of the org's webhook of a region, newest first.
#[utoipa::path(get, path = "/v3/audit-log-webhook/deliveries", tag = "Audit Logs",
    operation_id = "list-audit-logs-webhook-deliveries",
    params(
        ("page[size]" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)"),
        ("page[after]" = Option<String>, Query, description = "Cursor from `meta.next`"),
        ("page[before]" = Option<String>, Query, description = "Cursor from `meta.previous`"),
    ),
    responses(
        (status = 200, body = ListDeliveries),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn list_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<ListDeliveries>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, ORG_RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    list(&state, &caller, &scope, query.as_deref()).await
}

/// Our extension: the recent delivery attempts of a portal's webhook, newest first.
#[utoipa::path(get, path = "/v3/portals/{portalId}/audit-log-webhook/deliveries",
    tag = "Portal Audit Logs", operation_id = "list-portal-audit-log-webhook-deliveries",
    params(
        ("portalId" = String, Path, description = "The portal's id (UUID)"),
        ("page[size]" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)"),
        ("page[after]" = Option<String>, Query, description = "Cursor from `meta.next`"),
        ("page[before]" = Option<String>, Query, description = "Cursor from `meta.previous`"),
    ),
    responses(
        (status = 200, body = ListDeliveries),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn list_portal_deliveries(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ListDeliveries>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::ReadPortalAuditLogs,
        PORTAL_RESOURCE,
        "retrieve",
    )
    .await?;
    list(&state, &caller, &scope, query.as_deref()).await
}

/// Our extension, "Retry now": the org's webhook of a region is re-armed (`active`) and the
/// batch it waits on is sent at once, with a fresh round of retries, instead of at the next
/// probe. Answers the status.
#[utoipa::path(post, path = "/v3/audit-log-webhook/retry", tag = "Audit Logs",
    operation_id = "retry-audit-logs-webhook",
    responses(
        (status = 200, body = WebhookStatusResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn retry_webhook(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<WebhookStatusResponse>, ApiError> {
    caller.authorize(Permission::WriteAuditLogs, ORG_RESOURCE, "retry")?;
    let scope = org_scope(&caller)?;
    retry(&state, &scope).await
}

/// Our extension, "Retry now" for a portal's webhook.
#[utoipa::path(post, path = "/v3/portals/{portalId}/audit-log-webhook/retry",
    tag = "Portal Audit Logs", operation_id = "retry-portal-audit-log-webhook",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 200, body = WebhookStatusResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn retry_portal_webhook(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
) -> Result<Json<WebhookStatusResponse>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        PORTAL_RESOURCE,
        "retry",
    )
    .await?;
    retry(&state, &scope).await
}

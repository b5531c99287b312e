//! Our extension: a webhook's refused list (DECISIONS.md D14). Events its receiver refused for
//! good (a mapping error, an entry over its size limit), or that we refused before sending
//! (older than the receiver accepts), are listed with the reason, oldest first, and can be sent
//! again once the cause is fixed. For the org's webhook of a region and for a portal's.

use auditrelay_core::Permission;
use auditrelay_core::ids::event_id;
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::pagination::{self, CursorMeta};
use super::portal_webhooks::portal_scope;
use super::webhooks::{org_scope, org_scope_to_read};
use crate::clock;
use crate::state::AppState;
use crate::store::{RefusedEvent, Scope};

const ORG_RESOURCE: &str = "audit-log-webhook";
const PORTAL_RESOURCE: &str = "portal-audit-log-webhook";

/// One refused event.
#[derive(Debug, Serialize, ToSchema)]
pub struct RefusedEventView {
    /// The event's `seq` (the `seq` field of its line).
    pub seq: i64,
    /// The event's stable id, as the receiver saw it (`_id`, HEC `fields.event_id`…); absent
    /// once retention deleted the event.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub event_id: Option<String>,
    #[schema(format = DateTime)]
    pub refused_at: String,
    pub endpoint: String,
    /// The receiver's reason, or ours when it was refused before sending.
    pub reason: String,
    /// The replay job that sent it, when one did.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub replay_job_id: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListRefusedEvents {
    pub data: Vec<RefusedEventView>,
    pub meta: CursorMeta,
}

/// What `POST …/refused-events/resend` did.
#[derive(Debug, Serialize, ToSchema)]
pub struct ResendResponse {
    /// How many refused events are now marked to be sent again.
    pub marked: u64,
}

fn view(state: &AppState, refused: &RefusedEvent) -> RefusedEventView {
    RefusedEventView {
        seq: refused.seq,
        event_id: refused
            .event_ts
            .map(|ts| event_id(&state.store.identity(), refused.seq, ts).to_string()),
        refused_at: refused.refused_at.to_rfc3339_millis(),
        endpoint: refused.endpoint.clone(),
        reason: refused.reason.clone(),
        replay_job_id: refused.replay_id.map(|id| id.to_string()),
    }
}

async fn list(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
    query: Option<&str>,
) -> Result<Json<ListRefusedEvents>, ApiError> {
    let page = pagination::parse(query, 20, 100)?;
    let refused = state.store.list_refused(scope, &page.query()).await?;
    let (refused, meta) = pagination::finish(refused, &page, &caller.ctx.facts.uri, |r| {
        (r.seq, String::new())
    });
    Ok(Json(ListRefusedEvents {
        data: refused.iter().map(|r| view(state, r)).collect(),
        meta,
    }))
}

/// Marks the scope's refused events to be sent again and tells delivery.
async fn resend(
    state: &AppState,
    scope: &Scope,
) -> Result<(StatusCode, Json<ResendResponse>), ApiError> {
    let marked = state.store.request_resend(scope, clock::now()).await?;
    state.delivery.notify();
    Ok((StatusCode::ACCEPTED, Json(ResendResponse { marked })))
}

/// Our extension: the events the receiver of the org's webhook of a region refused for good,
/// oldest first.
#[utoipa::path(get, path = "/v3/audit-log-webhook/refused-events", tag = "Audit Logs",
    operation_id = "list-audit-logs-webhook-refused-events",
    params(
        ("page[size]" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)"),
        ("page[after]" = Option<String>, Query, description = "Cursor from `meta.next`"),
        ("page[before]" = Option<String>, Query, description = "Cursor from `meta.previous`"),
    ),
    responses(
        (status = 200, body = ListRefusedEvents),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn list_refused(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<ListRefusedEvents>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, ORG_RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    list(&state, &caller, &scope, query.as_deref()).await
}

/// Our extension: the events the receiver of a portal's webhook refused for good.
#[utoipa::path(get, path = "/v3/portals/{portalId}/audit-log-webhook/refused-events",
    tag = "Portal Audit Logs", operation_id = "list-portal-audit-log-webhook-refused-events",
    params(
        ("portalId" = String, Path, description = "The portal's id (UUID)"),
        ("page[size]" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 20)"),
        ("page[after]" = Option<String>, Query, description = "Cursor from `meta.next`"),
        ("page[before]" = Option<String>, Query, description = "Cursor from `meta.previous`"),
    ),
    responses(
        (status = 200, body = ListRefusedEvents),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn list_portal_refused(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ListRefusedEvents>, ApiError> {
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

/// Our extension: marks every refused event of the org's webhook of a region to be sent again
/// (after the cause is fixed); delivery sends them beside the live lane. 202 with how many.
#[utoipa::path(post, path = "/v3/audit-log-webhook/refused-events/resend", tag = "Audit Logs",
    operation_id = "resend-audit-logs-webhook-refused-events",
    responses(
        (status = 202, body = ResendResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn resend_refused(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<(StatusCode, Json<ResendResponse>), ApiError> {
    caller.authorize(Permission::WriteAuditLogs, ORG_RESOURCE, "resend")?;
    let scope = org_scope(&caller)?;
    resend(&state, &scope).await
}

/// Our extension: marks every refused event of a portal's webhook to be sent again.
#[utoipa::path(post, path = "/v3/portals/{portalId}/audit-log-webhook/refused-events/resend",
    tag = "Portal Audit Logs", operation_id = "resend-portal-audit-log-webhook-refused-events",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 202, body = ResendResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn resend_portal_refused(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
) -> Result<(StatusCode, Json<ResendResponse>), ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        PORTAL_RESOURCE,
        "resend",
    )
    .await?;
    resend(&state, &scope).await
}

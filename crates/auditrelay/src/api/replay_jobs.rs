//! Our extensions for managing replay jobs, org (per region) and portal: the scope's past jobs
//! (`…/audit-log-replay-job/history`, newest first, the last 20) and *Cancel* for a job in
//! progress (`…/audit-log-replay-job/cancel`). Konnect's job fields keep their meaning: a
//! cancelled job is `failed`, and its `failure_reason` says who cancelled it.

use auditrelay_core::Permission;
use axum::Json;
use axum::extract::{Path, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::portal_webhooks::portal_scope;
use super::replay::ReplayJobResponse;
use super::webhooks::{org_scope, org_scope_to_read};
use crate::clock;
use crate::state::AppState;
use crate::store::Scope;

const RESOURCE: &str = "audit-log-replay-job";
const PORTAL_RESOURCE: &str = "portal-audit-log-replay-job";
/// As many as the store keeps.
const HISTORY: u32 = 20;

/// A scope's past replay jobs, newest first.
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayHistory {
    pub data: Vec<ReplayJobResponse>,
}

async fn history(state: &AppState, scope: &Scope) -> Result<Json<ReplayHistory>, ApiError> {
    let jobs = state.store.replay_history(scope, HISTORY).await?;
    Ok(Json(ReplayHistory {
        data: jobs
            .iter()
            .map(|j| ReplayJobResponse::from(Some(j)))
            .collect(),
    }))
}

async fn cancel(
    state: &AppState,
    caller: &Caller,
    scope: &Scope,
) -> Result<Json<ReplayJobResponse>, ApiError> {
    let reason = format!(
        "cancelled by {} at {}",
        caller.principal.name,
        clock::now().to_rfc3339_seconds()
    );
    match state
        .store
        .cancel_replay_job(scope, &reason, clock::now())
        .await?
    {
        Some(job) => {
            // The executor is stopped by the delivery engine's next look.
            state.delivery.notify();
            Ok(Json(ReplayJobResponse::from(Some(&job))))
        }
        None => Err(ApiError::conflict("No replay job is in progress")),
    }
}

/// Our extension: the past replay jobs of the org in a region, newest first (the last 20).
#[utoipa::path(get, path = "/v3/audit-log-replay-job/history", tag = "Audit Logs",
    operation_id = "list-audit-log-replay-job-history",
    responses(
        (status = 200, body = ReplayHistory),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_replay_history(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReplayHistory>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, RESOURCE, "list")?;
    let scope = org_scope_to_read(&state, &caller);
    history(&state, &scope).await
}

/// Our extension: the past replay jobs of a portal, newest first (the last 20).
#[utoipa::path(get, path = "/v3/portals/{portalId}/audit-log-replay-job/history",
    tag = "Portal Audit Logs", operation_id = "list-portal-audit-log-replay-job-history",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 200, body = ReplayHistory),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_portal_replay_history(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
) -> Result<Json<ReplayHistory>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::ReadPortalAuditLogs,
        PORTAL_RESOURCE,
        "list",
    )
    .await?;
    history(&state, &scope).await
}

/// Our extension: cancels the org's replay job of a region while it is accepted, pending or
/// running. It ends `failed`, with `failure_reason` naming who cancelled it; what was sent
/// stays sent. 409 when no job is in progress.
#[utoipa::path(post, path = "/v3/audit-log-replay-job/cancel", tag = "Audit Logs",
    operation_id = "cancel-audit-log-replay-job",
    responses(
        (status = 200, body = ReplayJobResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn cancel_replay_job(
    State(state): State<AppState>,
    caller: Caller,
) -> Result<Json<ReplayJobResponse>, ApiError> {
    caller.authorize(Permission::WriteAuditLogs, RESOURCE, "cancel")?;
    let scope = org_scope(&caller)?;
    cancel(&state, &caller, &scope).await
}

/// Our extension: cancels a portal's replay job in progress (see the org's).
#[utoipa::path(post, path = "/v3/portals/{portalId}/audit-log-replay-job/cancel",
    tag = "Portal Audit Logs", operation_id = "cancel-portal-audit-log-replay-job",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 200, body = ReplayJobResponse),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
        (status = 409, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn cancel_portal_replay_job(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
) -> Result<Json<ReplayJobResponse>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        PORTAL_RESOURCE,
        "cancel",
    )
    .await?;
    cancel(&state, &caller, &scope).await
}

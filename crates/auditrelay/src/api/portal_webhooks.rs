//! `/v2|v3/portals/{portalId}/audit-log-webhook` and its `/status` (DECISIONS.md K6): a
//! portal's webhook, always bound to a destination, in the portal's region.
//!
//! The portal id decides the region, so these paths work under any region prefix. A malformed or
//! unknown portal id is a 404 (the documents define no 400 for the path), and the permission is
//! checked on the portal id before the portal is looked up, so a portal admin cannot learn which
//! other portals exist.

use auditrelay_core::{Permission, PortalId};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;

use super::auth::Caller;
use super::error::{ApiError, Problem};
use super::json::ApiJson;
use super::webhooks::{
    BindingBody, BoundWebhook, TestEventResponse, WebhookStatusResponse, patch_binding,
    require_enabled, status_view,
};
use crate::state::AppState;
use crate::store::Scope;

const RESOURCE: &str = "portal-audit-log-webhook";

/// The portal's scope, after the permission check on `resource`; 404 for a malformed or
/// unknown portal.
pub(super) async fn portal_scope(
    state: &AppState,
    caller: &Caller,
    portal_id: &str,
    permission: fn(PortalId) -> Permission,
    resource: &str,
    action: &str,
) -> Result<Scope, ApiError> {
    let id = PortalId::parse(portal_id).ok_or_else(ApiError::not_found)?;
    caller.authorize(permission(id), resource, action)?;
    let org_id = caller.principal.org_id;
    let portal = state.store.get_portal(org_id, id).await?;
    let portal = portal.ok_or_else(ApiError::not_found)?;
    Ok(Scope {
        org_id,
        region: portal.region,
        portal_id: Some(id),
    })
}

fn not_configured() -> ApiError {
    ApiError::not_found_because("No audit log webhook is configured for this portal")
}

async fn get(
    state: AppState,
    caller: Caller,
    portal: String,
) -> Result<Json<BoundWebhook>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::ReadPortalAuditLogs,
        RESOURCE,
        "retrieve",
    )
    .await?;
    let webhook = state.store.get_webhook(&scope).await?;
    let webhook = webhook.ok_or_else(not_configured)?;
    Ok(Json((&webhook).into()))
}

async fn update(
    state: AppState,
    caller: Caller,
    portal: String,
    body: BindingBody,
) -> Result<Json<BoundWebhook>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        RESOURCE,
        "edit",
    )
    .await?;
    let saved = patch_binding(&state, &caller, vec![scope], &body).await?;
    Ok(Json((&saved).into()))
}

async fn delete(state: AppState, caller: Caller, portal: String) -> Result<StatusCode, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        RESOURCE,
        "delete",
    )
    .await?;
    match state.store.delete_webhooks(&[scope]).await? {
        0 => Err(not_configured()),
        _ => {
            state.delivery.notify();
            Ok(StatusCode::NO_CONTENT)
        }
    }
}

async fn status(
    state: AppState,
    caller: Caller,
    portal: String,
) -> Result<Json<WebhookStatusResponse>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::ReadPortalAuditLogs,
        RESOURCE,
        "retrieve",
    )
    .await?;
    let webhook = state.store.get_webhook(&scope).await?;
    Ok(Json(status_view(&state, webhook.as_ref()).await?))
}

/// Our extension: sends a test event through a portal's webhook. Dev Portal logs carry
/// authentication events only, and the request's own self-audit events belong to the org, so
/// the test event is this request's authentication recorded a second time, in the portal's
/// scope (its region, its id), under the same trace id. 400 while the webhook is not enabled.
#[utoipa::path(post, path = "/v3/portals/{portalId}/audit-log-webhook/test-event",
    tag = "Portal Audit Logs", operation_id = "send-portal-audit-log-webhook-test-event",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 202, body = TestEventResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn send_portal_test_event_v3(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
) -> Result<(StatusCode, Json<TestEventResponse>), ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        RESOURCE,
        "test",
    )
    .await?;
    require_enabled(&state, &scope).await?;
    caller
        .ctx
        .trail
        .record_scoped_authentication(&caller.ctx.facts, &scope, &caller.principal);
    Ok((StatusCode::ACCEPTED, Json(TestEventResponse::of(&caller))))
}

/// The same handlers under `/v2` (classic portals) and `/v3`, each with its own operation ids.
macro_rules! versioned_routes {
    ($item:literal, $status:literal, $get:ident, $update:ident, $delete:ident, $status_fn:ident) => {
        /// Get a portal's audit-log webhook; 404 while unconfigured.
        #[utoipa::path(get, path = $item, tag = "Portal Audit Logs",
                    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
                    responses(
                        (status = 200, body = BoundWebhook),
                        (status = 401, body = Problem, content_type = "application/problem+json"),
                        (status = 403, body = Problem, content_type = "application/problem+json"),
                        (status = 404, body = Problem, content_type = "application/problem+json"),
                    ),
                    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $get(
            State(state): State<AppState>,
            caller: Caller,
            Path(portal): Path<String>,
        ) -> Result<Json<BoundWebhook>, ApiError> {
            get(state, caller, portal).await
        }

        /// Bind a portal's audit-log webhook to a destination, or enable or disable it.
        #[utoipa::path(patch, path = $item, tag = "Portal Audit Logs", request_body = BindingBody,
                    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
                    responses(
                        (status = 200, body = BoundWebhook),
                        (status = 400, body = Problem, content_type = "application/problem+json"),
                        (status = 401, body = Problem, content_type = "application/problem+json"),
                        (status = 403, body = Problem, content_type = "application/problem+json"),
                        (status = 404, body = Problem, content_type = "application/problem+json"),
                    ),
                    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $update(
            State(state): State<AppState>,
            caller: Caller,
            Path(portal): Path<String>,
            ApiJson(body): ApiJson<BindingBody>,
        ) -> Result<Json<BoundWebhook>, ApiError> {
            update(state, caller, portal, body).await
        }

        /// Remove a portal's audit-log webhook: it becomes unconfigured and its destination is
        /// free to delete.
        #[utoipa::path(delete, path = $item, tag = "Portal Audit Logs",
                    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
                    responses(
                        (status = 204, description = "Removed"),
                        (status = 401, body = Problem, content_type = "application/problem+json"),
                        (status = 403, body = Problem, content_type = "application/problem+json"),
                        (status = 404, body = Problem, content_type = "application/problem+json"),
                    ),
                    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $delete(
            State(state): State<AppState>,
            caller: Caller,
            Path(portal): Path<String>,
        ) -> Result<StatusCode, ApiError> {
            delete(state, caller, portal).await
        }

        /// The delivery status of a portal's audit-log webhook.
        #[utoipa::path(get, path = $status, tag = "Portal Audit Logs",
                    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
                    responses(
                        (status = 200, body = WebhookStatusResponse),
                        (status = 401, body = Problem, content_type = "application/problem+json"),
                        (status = 403, body = Problem, content_type = "application/problem+json"),
                        (status = 404, body = Problem, content_type = "application/problem+json"),
                    ),
                    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $status_fn(
            State(state): State<AppState>,
            caller: Caller,
            Path(portal): Path<String>,
        ) -> Result<Json<WebhookStatusResponse>, ApiError> {
            status(state, caller, portal).await
        }
    };
}

versioned_routes!(
    "/v2/portals/{portalId}/audit-log-webhook",
    "/v2/portals/{portalId}/audit-log-webhook/status",
    get_portal_webhook_v2,
    update_portal_webhook_v2,
    delete_portal_webhook_v2,
    get_portal_webhook_status_v2
);
versioned_routes!(
    "/v3/portals/{portalId}/audit-log-webhook",
    "/v3/portals/{portalId}/audit-log-webhook/status",
    get_portal_webhook_v3,
    update_portal_webhook_v3,
    delete_portal_webhook_v3,
    get_portal_webhook_status_v3
);

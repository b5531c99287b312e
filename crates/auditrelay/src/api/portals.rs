//! `/v3/portals`: the minimal Dev Portal registry (a subset of Konnect's portal resource) that
//! portal events, portal webhooks and portal replay jobs hang off.

use auditrelay_core::{Permission, PortalId};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, InvalidParameter, Problem};
use super::json::ApiJson;
use super::pagination::{self, CursorMeta};
use crate::clock;
use crate::state::AppState;
use crate::store::{Portal, StoreError};

const RESOURCE: &str = "portals";
const MAX_NAME: usize = 255;

#[derive(Debug, Serialize, ToSchema)]
pub struct PortalResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    /// The region the portal and its audit logs live in.
    pub region: String,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
}

impl From<Portal> for PortalResponse {
    fn from(p: Portal) -> Self {
        Self {
            id: p.id.to_string(),
            name: p.name,
            region: p.region.to_string(),
            created_at: p.created_at.to_rfc3339_millis(),
            updated_at: p.updated_at.to_rfc3339_millis(),
        }
    }
}

#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct CreatePortal {
    /// Unique within the organization; 1 to 255 characters.
    pub name: String,
    /// One of the configured regions; defaults to the region the request addresses.
    pub region: Option<String>,
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListPortalsResponse {
    pub data: Vec<PortalResponse>,
    pub meta: CursorMeta,
}

/// Create a portal.
#[utoipa::path(
    post, path = "/v3/portals", tag = "Portals", operation_id = "create-portal",
    request_body = CreatePortal,
    responses(
        (status = 201, body = PortalResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 409, description = "A portal with that name exists", body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])),
)]
pub async fn create_portal(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<CreatePortal>,
) -> Result<(StatusCode, Json<PortalResponse>), ApiError> {
    caller.authorize(Permission::ManagePortals, RESOURCE, "create")?;
    let name = body.name.trim();
    // Control characters (a NUL, which PostgreSQL cannot even store) are nobody's intent in a
    // name shown in lists, logs and the UI.
    if name.is_empty()
        || name.chars().count() > MAX_NAME
        || name.chars().any(auditrelay_core::format::is_control)
    {
        return Err(ApiError::invalid(
            "Invalid portal name",
            InvalidParameter::new(
                "name",
                Some("invalid"),
                format!("must be 1 to {MAX_NAME} characters, without control characters"),
            )
            .with_source("body"),
        ));
    }
    let region = match body.region.as_deref() {
        None => caller.ctx.region()?.clone(),
        Some(name) => state.config.regions.get(name).cloned().ok_or_else(|| {
            let configured = state.config.regions.list.iter().map(|r| r.as_str());
            ApiError::invalid(
                "Unknown region",
                InvalidParameter::choice("region", configured).with_source("body"),
            )
        })?,
    };
    let now = clock::now();
    let portal = Portal {
        id: PortalId::new_v4(),
        org_id: caller.principal.org_id,
        name: name.to_owned(),
        region,
        created_at: now,
        updated_at: now,
    };
    match state.store.create_portal(&portal).await {
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(format!(
            "A portal named [{}] already exists",
            portal.name
        ))),
        other => other.map_err(ApiError::from),
    }?;
    Ok((StatusCode::CREATED, Json(portal.into())))
}

/// List portals.
#[utoipa::path(
    get, path = "/v3/portals", tag = "Portals", operation_id = "list-portals",
    params(
        ("page[size]" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 10)"),
        ("page[after]" = Option<String>, Query, description = "Cursor from `meta.next`"),
        ("page[before]" = Option<String>, Query, description = "Cursor from `meta.previous`"),
    ),
    responses(
        (status = 200, body = ListPortalsResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])),
)]
pub async fn list_portals(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<ListPortalsResponse>, ApiError> {
    caller.authorize(Permission::ReadPortals, RESOURCE, "list")?;
    let page = pagination::parse(query.as_deref(), 10, 100)?;
    let org = caller.principal.org_id;
    // A portal-bound grant sees exactly its portal.
    let portals = match caller.principal.grant.portal() {
        Some(only) => state
            .store
            .get_portal(org, only)
            .await?
            .into_iter()
            .collect(),
        None => state.store.list_portals(org, &page.query()).await?,
    };
    let (portals, meta) = pagination::finish(portals, &page, &caller.ctx.facts.uri, |p| {
        (p.created_at.as_millis(), p.id.to_string())
    });
    Ok(Json(ListPortalsResponse {
        data: portals.into_iter().map(Into::into).collect(),
        meta,
    }))
}

/// Get a portal.
#[utoipa::path(
    get, path = "/v3/portals/{portalId}", tag = "Portals", operation_id = "get-portal",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 200, body = PortalResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])),
)]
pub async fn get_portal(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal_id): Path<String>,
) -> Result<Json<PortalResponse>, ApiError> {
    let id = parse_portal_id(&portal_id)?;
    caller.authorize(Permission::ReadPortal(id), RESOURCE, "retrieve")?;
    let portal = state.store.get_portal(caller.principal.org_id, id).await?;
    portal
        .map(|p| Json(p.into()))
        .ok_or_else(ApiError::not_found)
}

/// Delete a portal. Its stored events stay until retention removes them.
#[utoipa::path(
    delete, path = "/v3/portals/{portalId}", tag = "Portals", operation_id = "delete-portal",
    params(("portalId" = String, Path, description = "The portal's id (UUID)")),
    responses(
        (status = 204, description = "Deleted"),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])),
)]
pub async fn delete_portal(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal_id): Path<String>,
) -> Result<StatusCode, ApiError> {
    let id = parse_portal_id(&portal_id)?;
    caller.authorize(Permission::ManagePortals, RESOURCE, "delete")?;
    match state
        .store
        .delete_portal(caller.principal.org_id, id)
        .await?
    {
        true => {
            // Its webhook went with it.
            state.delivery.notify();
            Ok(StatusCode::NO_CONTENT)
        }
        false => Err(ApiError::not_found()),
    }
}

pub fn parse_portal_id(s: &str) -> Result<PortalId, ApiError> {
    PortalId::parse(s).ok_or_else(|| {
        ApiError::invalid(
            "Invalid portal id",
            InvalidParameter::new("portalId", Some("is_uuid"), "must be a UUID")
                .with_source("path"),
        )
    })
}

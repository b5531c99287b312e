//! The HTTP API: Konnect-compatible audit-log endpoints, our extensions (`/v1/events`,
//! `/v3/portals`), and operations (`/healthz`, `/readyz`, `/metrics`, `/openapi.json`).
//!
//! Only this module (and the UI) knows HTTP requests. Every route is registered together with
//! its OpenAPI operation (utoipa-axum), so the router and `/openapi.json` cannot drift apart.

mod audit;
mod audit_logs;
mod auth;
mod context;
mod deliveries;
mod destinations;
mod error;
mod events;
mod integrity;
mod json;
mod jwks;
mod ops;
mod pagination;
mod portal_webhooks;
mod portals;
mod refused;
pub mod region;
mod replay;
mod replay_jobs;
mod test_connection;
mod trace;
mod webhooks;

use axum::Router;
use axum::extract::{FromRequestParts, Request, State};
use axum::middleware::{from_fn, from_fn_with_state};
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::timeout::TimeoutLayer;
use utoipa::openapi::security::{HttpAuthScheme, HttpBuilder, SecurityScheme};
use utoipa::{Modify, OpenApi};
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::routes;

pub use context::Unaudited;
pub use error::{ApiError, InvalidParameter, Problem};

use crate::state::AppState;

#[derive(OpenApi)]
#[openapi(
    info(
        title = "auditrelay",
        description = "Self-hosted audit logs, wire-compatible with Kong Konnect's Audit Logs API (v2, v3, portal paths). \
Region: a `/{region}` path prefix or the first label of the Host header; unprefixed paths use the default region.",
        license(name = "MIT OR Apache-2.0"),
    ),
    modifiers(&SecuritySchemes),
    tags(
        (name = "Audit Logs", description = "Konnect's audit-log API: webhooks, destinations, the signing keys and the pull API"),
        (name = "Portal Audit Logs", description = "Konnect's Dev Portal audit-log API: each portal's webhook"),
        (name = "Ingest", description = "Sending events (our extension)"),
        (name = "Portals", description = "The Dev Portal registry (our extension; a subset of Konnect's portal resource)"),
        (name = "Operations", description = "Health, readiness, metrics and this document"),
    )
)]
struct ApiDoc;

struct SecuritySchemes;

impl Modify for SecuritySchemes {
    fn modify(&self, openapi: &mut utoipa::openapi::OpenApi) {
        let components = openapi.components.get_or_insert_with(Default::default);
        for (name, description) in [
            ("personalAccessToken", "A personal access token (`kpat_…`)"),
            (
                "systemAccountAccessToken",
                "A system account token (`spat_…`)",
            ),
            (
                "metricsToken",
                "The scrape token of the configuration (`metrics.token`), not an API token",
            ),
        ] {
            let scheme = HttpBuilder::new()
                .scheme(HttpAuthScheme::Bearer)
                .description(Some(description))
                .build();
            components.add_security_scheme(name, SecurityScheme::Http(scheme));
        }
    }
}

/// Every route with its OpenAPI operation.
fn registered() -> OpenApiRouter<AppState> {
    OpenApiRouter::with_openapi(ApiDoc::openapi())
        .routes(routes!(jwks::get_jwks))
        .routes(routes!(audit_logs::get_audit_logs))
        .routes(routes!(events::ingest_events))
        .routes(routes!(
            destinations::list_destinations_v2,
            destinations::create_destination_v2
        ))
        .routes(routes!(
            destinations::get_destination_v2,
            destinations::update_destination_v2,
            destinations::delete_destination_v2
        ))
        .routes(routes!(
            destinations::list_destinations_v3,
            destinations::create_destination_v3
        ))
        .routes(routes!(test_connection::test_connection))
        .routes(routes!(
            destinations::get_destination_v3,
            destinations::update_destination_v3,
            destinations::delete_destination_v3
        ))
        .routes(routes!(
            webhooks::get_webhook_v2,
            webhooks::update_webhook_v2
        ))
        .routes(routes!(webhooks::get_webhook_status_v2))
        .routes(routes!(
            webhooks::get_webhook_v3,
            webhooks::update_webhook_v3,
            webhooks::delete_webhook_v3
        ))
        .routes(routes!(webhooks::get_webhook_status_v3))
        .routes(routes!(webhooks::send_test_event_v3))
        .routes(routes!(deliveries::list_deliveries))
        .routes(routes!(deliveries::retry_webhook))
        .routes(routes!(refused::list_refused))
        .routes(routes!(refused::resend_refused))
        .routes(routes!(
            portal_webhooks::get_portal_webhook_v2,
            portal_webhooks::update_portal_webhook_v2,
            portal_webhooks::delete_portal_webhook_v2
        ))
        .routes(routes!(portal_webhooks::get_portal_webhook_status_v2))
        .routes(routes!(
            portal_webhooks::get_portal_webhook_v3,
            portal_webhooks::update_portal_webhook_v3,
            portal_webhooks::delete_portal_webhook_v3
        ))
        .routes(routes!(portal_webhooks::get_portal_webhook_status_v3))
        .routes(routes!(portal_webhooks::send_portal_test_event_v3))
        .routes(routes!(deliveries::list_portal_deliveries))
        .routes(routes!(deliveries::retry_portal_webhook))
        .routes(routes!(refused::list_portal_refused))
        .routes(routes!(refused::resend_portal_refused))
        .routes(routes!(
            replay::get_replay_job_v2,
            replay::put_replay_job_v2
        ))
        .routes(routes!(
            replay::get_replay_job_v3,
            replay::put_replay_job_v3
        ))
        .routes(routes!(replay_jobs::get_replay_history))
        .routes(routes!(replay_jobs::cancel_replay_job))
        .routes(routes!(replay_jobs::get_portal_replay_history))
        .routes(routes!(replay_jobs::cancel_portal_replay_job))
        .routes(routes!(
            replay::get_portal_replay_job_v2,
            replay::put_portal_replay_job_v2
        ))
        .routes(routes!(
            replay::get_portal_replay_job_v3,
            replay::put_portal_replay_job_v3
        ))
        .routes(routes!(portals::list_portals, portals::create_portal))
        .routes(routes!(portals::get_portal, portals::delete_portal))
        .routes(routes!(integrity::get_checkpoint_key))
        .routes(routes!(integrity::get_checkpoint))
        .routes(routes!(integrity::get_inclusion_proof))
        .routes(routes!(integrity::get_consistency_proof))
        .routes(routes!(integrity::get_portal_checkpoint))
        .routes(routes!(integrity::get_portal_inclusion_proof))
        .routes(routes!(integrity::get_portal_consistency_proof))
        .routes(routes!(ops::healthz))
        .routes(routes!(ops::readyz))
        .routes(routes!(ops::metrics))
        .routes(routes!(ops::openapi_json))
}

/// The API's routes, each with its OpenAPI operation, and the document they make.
pub fn routes() -> (Router<AppState>, utoipa::openapi::OpenApi) {
    registered().split_for_parts()
}

/// The API as a service: its routes behind their layers and the request middleware.
pub fn service(routes: Router<AppState>, state: &AppState) -> Router {
    let timeout = state.config.server.request_timeout;
    let inner = routes
        .fallback(not_found)
        .layer(from_fn(context::expose_matched_path))
        .layer(CatchPanicLayer::new())
        .layer(TimeoutLayer::with_status_code(
            axum::http::StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
        .with_state(state.clone());
    // The context middleware rewrites region prefixes, so it must run before the inner router
    // matches a route: an outer router hands every request to the inner one as its fallback.
    Router::new()
        .fallback_service(inner)
        .layer(from_fn_with_state(state.clone(), context::middleware))
}

/// Who is behind a token check made outside an API request: the web UI's sign-in.
#[derive(Debug, Clone, Default)]
pub struct ClientFacts {
    /// The path the check was made for (the audit event's `uri`).
    pub uri: String,
    pub client_ip: String,
    pub user_agent: String,
}

/// Whom a token belongs to, as [`check_token`] found them: what a UI session keeps.
#[derive(Debug, Clone)]
pub struct TokenHolder {
    /// The principal's id.
    pub id: uuid::Uuid,
    pub name: String,
    pub grant: auditrelay_core::Grant,
}

/// Checks a token exactly as an API request does, for the web UI's sign-in (there is no API
/// route every role may read to ask "who am I"): the same outcomes, the same authentication
/// event, committed before this returns. A token it does not accept is the API's 401.
pub async fn check_token(
    state: &AppState,
    token: &str,
    client: ClientFacts,
) -> Result<TokenHolder, ApiError> {
    let trace_id = trace::new_trace_id();
    let ctx = context::RequestContext {
        method: axum::http::Method::POST,
        query: None,
        region: region::RequestRegion::One(state.config.regions.default_region().clone()),
        facts: audit::RequestFacts {
            ts: crate::clock::now(),
            org_id: state.org.id,
            region: state.config.regions.default_region().clone(),
            client_ip: client.client_ip,
            uri: client.uri,
            user_agent: client.user_agent,
            trace_id: trace_id.to_string(),
        },
        trail: audit::AuditTrail::default(),
    };
    let checked = auth::authenticate(state, &ctx, Some(token)).await;
    let events = ctx.trail.take_events();
    if let Err(e) = state.store.append_events(events).await {
        return Err(context::self_audit_failed(trace_id, e, false));
    }
    checked.map(|principal| TokenHolder {
        id: principal.id,
        name: principal.name,
        grant: principal.grant,
    })
}

/// The problem+json body for an error answered outside any route (a request the HTTP server
/// could not parse), with a fresh trace id; returns the trace id and the body.
pub fn problem_body(status: axum::http::StatusCode, detail: &str) -> (u64, Vec<u8>) {
    let trace_id = trace::new_trace_id();
    let problem =
        trace::with_trace_id(trace_id, || ApiError::from_status(status, detail).problem());
    let body = serde_json::to_vec(&problem).expect("a problem always serializes");
    (trace_id, body)
}

/// The metrics in Prometheus's text format (for the listener of their own, `metrics.listen`).
pub use ops::render as render_metrics;

/// The media type of every error body.
pub use error::PROBLEM_JSON;

/// No route: 404. A request that presents a token still has it checked and audited (its
/// authentication event, and for a state-changing method the middleware's access event):
/// Konnect's guides "validate" a new webhook by calling one of Konnect's routes, here unknown,
/// and watching the SIEM for the line it causes.
async fn not_found(State(state): State<AppState>, request: Request) -> ApiError {
    let (mut parts, _) = request.into_parts();
    if parts
        .headers
        .contains_key(axum::http::header::AUTHORIZATION)
    {
        // Recorded on the request's trail whatever the outcome; the answer stays 404.
        let _ = auth::Caller::from_request_parts(&mut parts, &state).await;
    }
    ApiError::not_found()
}

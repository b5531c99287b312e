//! Operations endpoints: liveness, readiness, Prometheus metrics, and the OpenAPI document.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderMap, header};
use axum::response::IntoResponse;
use metrics_exporter_prometheus::PrometheusHandle;
use serde::Serialize;
use utoipa::ToSchema;

use super::error::{ApiError, Problem};
use crate::state::AppState;

#[derive(Serialize, ToSchema)]
pub struct Health {
    /// Always `ok` when the process answers.
    pub status: &'static str,
}

/// Liveness: the process answers.
#[utoipa::path(get, path = "/healthz", tag = "Operations", operation_id = "healthz",
    responses((status = 200, body = Health)))]
pub async fn healthz() -> Json<Health> {
    Json(Health { status: "ok" })
}

/// Readiness: the store answers queries and accepts writes.
#[utoipa::path(get, path = "/readyz", tag = "Operations", operation_id = "readyz",
    responses(
        (status = 200, body = Health),
        (status = 503, description = "The store does not answer, or does not accept writes (the detail says why and since when)", body = Problem, content_type = "application/problem+json"),
    ))]
pub async fn readyz(State(state): State<AppState>) -> Result<Json<Health>, ApiError> {
    // The writer's last commit failed: producers get 507 or 503 now. It probes every few
    // seconds, so this turns back by itself once the fault is gone.
    if let Some(refusing) = state.store.refusing() {
        let detail = format!(
            "The store has not accepted writes since {}: {}",
            refusing.since.to_rfc3339_seconds(),
            refusing.kind.describe()
        );
        return Err(ApiError::unavailable(detail).retry_after(5));
    }
    match state.store.ping().await {
        Ok(()) => Ok(Json(Health { status: "ok" })),
        Err(e) => {
            tracing::warn!(error = %e, "readiness check failed");
            Err(ApiError::unavailable("The store is not reachable"))
        }
    }
}

/// Prometheus metrics, for a scraper that presents `metrics.token` as a bearer token. They name
/// portals and count failed sign-ins, so they are not for anyone who asks: without a token
/// configured they are served only by the listener of their own (`metrics.listen`), or to
/// anyone in `--dev` mode.
#[utoipa::path(get, path = "/metrics", tag = "Operations", operation_id = "metrics",
    responses(
        (status = 200, description = "Prometheus text exposition format", body = String, content_type = "text/plain"),
        (status = 401, description = "The request lacks the metrics token", body = Problem, content_type = "application/problem+json"),
        (status = 404, description = "No metrics token is configured: metrics are not served on this listener", body = Problem, content_type = "application/problem+json"),
    ),
    security(("metricsToken" = [])))]
pub async fn metrics(
    State(state): State<AppState>,
    headers: HeaderMap,
) -> Result<impl IntoResponse, ApiError> {
    let config = &state.config;
    match &config.metrics.token {
        _ if config.dev => {}
        None => {
            return Err(ApiError::not_found_because(
                "Metrics are not served on this listener: set metrics.token and scrape with it \
                 as a bearer token, or metrics.listen for a listener of their own",
            ));
        }
        Some(token) => {
            let presented = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "));
            if !presented.is_some_and(|p| token.matches(p)) {
                return Err(ApiError::unauthorized());
            }
        }
    }
    Ok(render(&state.metrics))
}

/// The metrics in Prometheus's text format.
pub fn render(metrics: &PrometheusHandle) -> impl IntoResponse + use<> {
    (
        [(header::CONTENT_TYPE, "text/plain; version=0.0.4")],
        metrics.render(),
    )
}

/// This document.
#[utoipa::path(get, path = "/openapi.json", tag = "Operations", operation_id = "openapi",
    responses((status = 200, description = "The OpenAPI 3.1 document of every route", content_type = "application/json")))]
pub async fn openapi_json(State(state): State<AppState>) -> impl IntoResponse {
    (
        [(header::CONTENT_TYPE, "application/json")],
        state.openapi_json.clone(),
    )
}

//! The outermost request middleware: what every request gets, whatever route it reaches.
//!
//! In order: a trace id (in the log line, in every problem's `instance`, and in the request's
//! self-audit events); the region, with its path prefix stripped before routing; the request's
//! [`AuditTrail`]; after the handler, a problem+json body for any error response that lacks one
//! (axum's 405, a timeout's 408, a panic's 500), the access event of a state-changing request,
//! the durable commit of the trail, the request metric and the log line.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use auditrelay_core::{EventDetail, Region};
use axum::extract::{ConnectInfo, MatchedPath, Request, State};
use axum::http::{Method, StatusCode, Uri, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};

use super::audit::{AuditTrail, RequestFacts, query_as_json};
use super::error::{ApiError, PROBLEM_JSON};
use super::region::{self, RequestRegion};
use super::trace::{self, new_trace_id};
use crate::clock;
use crate::state::AppState;
use crate::store::StoreError;

/// A request extension only the in-process web UI can set (a client cannot send extensions):
/// a read made by a page that refreshes itself, which the person already saw audited when they
/// opened it. None of its self-audit events are stored, or only its authentication event: the
/// UI keeps that one for its first read once a minute (`ui::session::QuietReads`), so an open
/// page adds at most one event a minute. Only `GET` and `HEAD` are affected.
#[derive(Debug, Clone, Copy)]
pub struct Unaudited {
    pub keep_authentication: bool,
}

/// What handlers and extractors know about the request beyond its HTTP parts.
#[derive(Debug)]
pub struct RequestContext {
    pub method: Method,
    /// The raw query string, for the access event.
    pub query: Option<String>,
    pub region: RequestRegion,
    pub facts: RequestFacts,
    pub trail: AuditTrail,
}

impl RequestContext {
    /// This request's self-audit events so far and its access event with `status`, to be
    /// committed in the same transaction as the handler's own change.
    pub fn audit_events_with_access(&self, status: StatusCode) -> Vec<auditrelay_core::Event> {
        let query = query_as_json(self.query.as_deref());
        self.trail
            .take_with_access(&self.facts, self.method.as_str(), query, status.as_u16())
    }

    /// The concrete region, or a 400 when the request addressed `global`.
    pub fn region(&self) -> Result<&Region, ApiError> {
        match &self.region {
            RequestRegion::One(region) => Ok(region),
            RequestRegion::Global => Err(ApiError::invalid(
                "This resource is regional: pick a region",
                super::error::InvalidParameter::new(
                    "region",
                    Some("invalid"),
                    "`global` addresses every region; use a regional prefix such as /us/ instead",
                )
                .with_source("path"),
            )),
        }
    }
}

pub async fn middleware(State(state): State<AppState>, mut req: Request, next: Next) -> Response {
    let started = Instant::now();
    let trace_id = new_trace_id();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let query = req.uri().query().map(str::to_owned);
    let host = addressed_host(&req, &state.config.server.trusted_proxies);

    let resolved = match region::resolve(&path, host.as_deref(), &state.config.regions) {
        Ok(resolved) => resolved,
        Err(unknown) => {
            let detail = format!(
                "Unknown region [{unknown}]; this server serves [{}]",
                state.config.regions.names()
            );
            let response = trace::with_trace_id(trace_id, || {
                ApiError::not_found_because(detail).into_response()
            });
            log_request(
                trace_id,
                &method,
                &path,
                "unmatched",
                response.status(),
                started,
            );
            return response;
        }
    };
    if let Some(routed) = &resolved.routed_path {
        let routed = match &query {
            Some(q) => format!("{routed}?{q}"),
            None => routed.clone(),
        };
        if let Ok(uri) = routed.parse::<Uri>() {
            *req.uri_mut() = uri;
        }
    }

    let audit_region = match &resolved.region {
        RequestRegion::One(region) => region.clone(),
        RequestRegion::Global => state.config.regions.default_region().clone(),
    };
    let user_agent = req
        .headers()
        .get(header::USER_AGENT)
        .and_then(|v| v.to_str().ok())
        .unwrap_or_default()
        .to_owned();
    let facts = RequestFacts {
        ts: clock::now(),
        org_id: state.org.id,
        region: audit_region,
        client_ip: req
            .extensions()
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip().to_string())
            .unwrap_or_default(),
        uri: path.clone(),
        user_agent,
        trace_id: trace_id.to_string(),
    };
    let unaudited = req
        .extensions()
        .get::<Unaudited>()
        .copied()
        .filter(|_| method == Method::GET || method == Method::HEAD);
    let ctx = Arc::new(RequestContext {
        method: method.clone(),
        query: query.clone(),
        region: resolved.region,
        facts,
        trail: AuditTrail::default(),
    });
    req.extensions_mut().insert(ctx.clone());

    let response = trace::serving(trace_id, next.run(req)).await;
    let mut response = trace::with_trace_id(trace_id, || into_problem(response, &method, &path));

    if is_state_changing(&method) && !ctx.trail.access_taken() {
        ctx.trail.record_access(
            &ctx.facts,
            method.as_str(),
            query_as_json(query.as_deref()),
            response.status().as_u16(),
        );
    }
    let mut events = ctx.trail.take_events();
    if let Some(quiet) = unaudited {
        events.retain(|e| {
            quiet.keep_authentication && matches!(e.detail, EventDetail::Authentication { .. })
        });
    }
    if !events.is_empty()
        && let Err(e) = state.store.append_events(events).await
    {
        // The request's audit record did not make it, so its answer cannot stand. A change it
        // made (committed on its own before) is said to have happened.
        let changed = is_state_changing(&method) && response.status().is_success();
        let matched = response.extensions_mut().remove::<MatchedPath>();
        response = trace::with_trace_id(trace_id, || {
            self_audit_failed(trace_id, e, changed).into_response()
        });
        if let Some(matched) = matched {
            response.extensions_mut().insert(matched);
        }
    }

    let route = response
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    metrics::counter!(
        "auditrelay_http_requests_total",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => response.status().as_u16().to_string()
    )
    .increment(1);
    metrics::histogram!("auditrelay_http_request_duration_seconds", "route" => route.clone())
        .record(started.elapsed());
    log_request(trace_id, &method, &path, &route, response.status(), started);
    response
}

/// The answer to a request whose self-audit events could not be stored: the store's 507 or
/// 503 when it refuses writes (logged once by the store, not here), else a logged 500.
/// `changed`: the request's own change was committed before.
pub(super) fn self_audit_failed(trace_id: u64, e: StoreError, changed: bool) -> ApiError {
    metrics::counter!("auditrelay_self_audit_failures_total").increment(1);
    match e {
        StoreError::Unavailable { kind, .. } if changed => ApiError::store_fault_after_change(kind),
        StoreError::Unavailable { kind, .. } => ApiError::store_fault(kind),
        other => {
            tracing::error!(trace_id, error = %other, "self-audit events could not be stored");
            ApiError::internal(other)
        }
    }
}

/// The host the client addressed: `Host` (or the URI's authority), or the first
/// `X-Forwarded-Host` when the peer is a trusted proxy (which may have rewritten `Host`).
fn addressed_host(req: &Request, trusted: &[crate::config::Network]) -> Option<String> {
    let header = |name: &str| req.headers().get(name).and_then(|h| h.to_str().ok());
    let peer = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip());
    let forwarded = peer
        .filter(|ip| trusted.iter().any(|n| n.contains(*ip)))
        .and_then(|_| header("x-forwarded-host"))
        .and_then(|v| v.split(',').next())
        .map(|v| v.trim().to_owned());
    forwarded
        .or_else(|| header(header::HOST.as_str()).map(str::to_owned))
        .or_else(|| req.uri().host().map(str::to_owned))
}

/// Inside the router: copies the matched route onto the response for the metric label.
pub async fn expose_matched_path(req: Request, next: Next) -> Response {
    let matched = req.extensions().get::<MatchedPath>().cloned();
    let mut response = next.run(req).await;
    if let Some(matched) = matched {
        response.extensions_mut().insert(matched);
    }
    response
}

fn log_request(
    trace_id: u64,
    method: &Method,
    path: &str,
    route: &str,
    status: StatusCode,
    started: Instant,
) {
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(trace_id, http.method = %method, http.path = path, http.route = route, http.status = status.as_u16(), duration_ms, "request failed");
    } else {
        tracing::info!(trace_id, http.method = %method, http.path = path, http.route = route, http.status = status.as_u16(), duration_ms, "request");
    }
}

fn is_state_changing(method: &Method) -> bool {
    matches!(
        *method,
        Method::POST | Method::PUT | Method::PATCH | Method::DELETE
    )
}

/// Gives an error response that is not problem+json a problem body, keeping its status.
fn into_problem(response: Response, method: &Method, path: &str) -> Response {
    let status = response.status();
    let is_problem = response
        .headers()
        .get(header::CONTENT_TYPE)
        .is_some_and(|ct| ct.as_bytes().starts_with(PROBLEM_JSON.as_bytes()));
    if !(status.is_client_error() || status.is_server_error()) || is_problem {
        return response;
    }
    let detail = match status {
        StatusCode::NOT_FOUND => "Not Found".to_owned(),
        StatusCode::METHOD_NOT_ALLOWED => format!("Method [{method}] is not allowed on [{path}]"),
        StatusCode::REQUEST_TIMEOUT => "The request took too long to complete".to_owned(),
        StatusCode::PAYLOAD_TOO_LARGE => "The request body is too large".to_owned(),
        StatusCode::INTERNAL_SERVER_ERROR => "Internal Server Error".to_owned(),
        other => other.canonical_reason().unwrap_or("Error").to_owned(),
    };
    let mut problem = ApiError::from_status(status, detail).into_response();
    if let Some(allow) = response.headers().get(header::ALLOW) {
        problem.headers_mut().insert(header::ALLOW, allow.clone());
    }
    problem
}

//! Our extension, "Test connection": one signed sample line sent to an endpoint right now, and
//! its answer (status, message, latency, or the transport or TLS error) returned at once,
//! without waiting for the next batch. It tests a saved destination, a saved one with some
//! fields changed (an edit form before it is saved), or fields alone (a new destination). The
//! endpoint passes the same checks as a destination's (https, public addresses, at connect time
//! too) and the same certificate choice as delivery.

use std::collections::BTreeMap;

use auditrelay_core::format::Format;
use auditrelay_core::kind::{Kind, KindName};
use axum::Json;
use axum::extract::State;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::destinations::{LogFormatWire, Problems, may_write_some, open_headers, writable};
use super::error::{ApiError, InvalidParameter, Problem};
use super::json::ApiJson;
use crate::delivery::sample::{self, Target};
use crate::state::AppState;

const RESOURCE: &str = "audit-log-destinations";

/// What to test. With `audit_log_destination_id`, the saved destination's fields, each one
/// the body gives replacing the saved one; without it, `endpoint` and `authorization` are
/// required.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct TestConnectionBody {
    #[schema(format = Uuid)]
    pub audit_log_destination_id: Option<String>,
    pub endpoint: Option<String>,
    /// Sent as the `Authorization` header; never returned.
    pub authorization: Option<String>,
    pub log_format: Option<LogFormatWire>,
    pub skip_ssl_verification: Option<bool>,
    /// Extra headers, as on a destination; never returned.
    pub headers: Option<BTreeMap<String, String>>,
    /// The kind, as on a destination (default: the saved one's, else `webhook`).
    pub kind: Option<String>,
    /// The kind's settings, as on a destination.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
}

/// What the endpoint answered to the sample line.
#[derive(Debug, Serialize, ToSchema)]
pub struct TestConnectionResponse {
    /// Whether the endpoint took the line (a 2xx), as delivery would count it.
    pub delivered: bool,
    pub endpoint: String,
    /// Absent when there was no HTTP answer: `response_message` says why (connection refused,
    /// timeout, the TLS error).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub response_code: Option<u16>,
    pub response_message: String,
    pub duration_ms: u64,
    /// The sample line is a copy of this request's own authorization event: look for this
    /// trace id at the SIEM.
    pub trace_id: String,
}

/// Our extension: sends one signed sample line to an endpoint now and answers what it said.
/// 200 whatever the endpoint answered (see `delivered`); 400 for fields a destination could not
/// have; 404 for a destination the caller cannot change.
#[utoipa::path(post, path = "/v3/audit-log-destinations/test-connection", tag = "Audit Logs",
    operation_id = "test-audit-log-destination-connection",
    request_body = TestConnectionBody,
    responses(
        (status = 200, body = TestConnectionResponse),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn test_connection(
    State(state): State<AppState>,
    caller: Caller,
    ApiJson(body): ApiJson<TestConnectionBody>,
) -> Result<Json<TestConnectionResponse>, ApiError> {
    // Sending lines somewhere is writing: the same right as changing a destination.
    may_write_some(&caller, "test")?;
    let saved = match body.audit_log_destination_id.as_deref() {
        Some(raw) => {
            let id = Uuid::try_parse(raw)
                .ok()
                .filter(|_| raw.len() == 36)
                .ok_or_else(|| {
                    ApiError::invalid(
                        "Invalid destination id",
                        InvalidParameter::new(
                            "audit_log_destination_id",
                            Some("is_uuid"),
                            "must be a UUID",
                        )
                        .with_source("body"),
                    )
                })?;
            Some(writable(&state, &caller, id).await?)
        }
        None => None,
    };

    let mut problems = Problems::default();
    // A saved Sumo Logic endpoint comes back masked from every answer: given so, it is the
    // saved one.
    let given = body
        .endpoint
        .as_deref()
        .filter(|given| saved.as_ref().is_none_or(|d| !d.shows_endpoint_as(given)));
    let endpoint = match (given, &saved) {
        (Some(endpoint), _) => problems.endpoint(endpoint, &state.config.delivery).await,
        (None, Some(saved)) => Some(saved.endpoint.clone()),
        (None, None) => problems.endpoint("", &state.config.delivery).await,
    };
    let kind = match (body.kind.as_deref(), &body.settings, &saved) {
        (None, None, Some(saved)) => Some(saved.kind.clone()),
        (kind, settings, saved) => {
            let saved_kind = saved.as_ref().map(|d| d.kind.clone());
            let name = kind.or(saved_kind.as_ref().map(|k| k.name().as_str()));
            let settings = settings.clone().or_else(|| {
                saved_kind
                    .filter(|k| Some(k.name().as_str()) == name)?
                    .settings()
            });
            problems.kind(name, settings.as_ref())
        }
    };
    let kind_name = kind.as_ref().map_or(KindName::Webhook, Kind::name);
    if let Some(endpoint) = &endpoint {
        problems.endpoint_of(kind_name, endpoint);
    }
    // A syslog destination's credential is a key, another kind's a header value: tested as
    // the other, the saved one is none.
    let saved_credential = saved
        .as_ref()
        .filter(|s| (s.kind.name() == KindName::Syslog) == (kind_name == KindName::Syslog));
    let authorization = match (body.authorization.as_deref(), &saved_credential) {
        (Some(value), _) => problems.credential(kind_name, Some(value)),
        (None, Some(saved)) => Some(
            state
                .secrets
                .open(&saved.authorization_sealed, &saved.id.to_string())
                .map_err(ApiError::internal)?,
        ),
        (None, None) => problems.credential(kind_name, None),
    };
    if let (Some(kind), Some(key)) = (&kind, &authorization) {
        problems.client_identity(kind, key);
    }
    let headers = match (body.headers, &saved) {
        (Some(headers), _) => problems.headers(headers),
        (None, Some(saved)) => open_headers(&state, saved)?,
        (None, None) => BTreeMap::new(),
    };
    problems.into_result()?;
    let (Some(endpoint), Some(authorization), Some(kind)) = (endpoint, authorization, kind) else {
        unreachable!("every field without a problem has a value");
    };
    let format = body
        .log_format
        .map(Format::from)
        .or(saved.as_ref().map(|d| d.log_format))
        .unwrap_or(Format::Cef);
    let skip_ssl_verification = body
        .skip_ssl_verification
        .or(saved.as_ref().map(|d| d.skip_ssl_verification))
        .unwrap_or(false);

    let facts = &caller.ctx.facts;
    let event = caller
        .ctx
        .trail
        .authorization_event(facts, RESOURCE, "test", true);
    let target = Target {
        kind: &kind,
        destination_id: saved.as_ref().map_or(Uuid::nil(), |d| d.id),
        endpoint: &endpoint,
        authorization: &authorization,
        headers: &headers,
        format,
        skip_ssl_verification,
    };
    let answer = sample::send(
        &state.config.delivery,
        &state.keys,
        &state.format,
        &target,
        &event,
    )
    .await;
    Ok(Json(TestConnectionResponse {
        delivered: answer.delivered,
        endpoint: kind.name().shown_endpoint(&endpoint),
        response_code: answer.code,
        response_message: answer.message,
        duration_ms: u64::try_from(answer.took.as_millis()).unwrap_or(u64::MAX),
        trace_id: facts.trace_id.clone(),
    }))
}

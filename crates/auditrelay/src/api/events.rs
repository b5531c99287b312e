//! `POST /v1/events`: ingest audit events from producers (gateways, portals, scripts).
//!
//! The body is NDJSON (one event per line) or a JSON array of events shaped like Konnect's v3
//! pull API entries, without `signature`. A request is all or nothing: every line is checked
//! first, any bad line rejects the request with 400 naming each line and field at fault, and
//! the 202 comes only after the whole batch is durably committed.

use std::collections::BTreeMap;

use auditrelay_core::intake::{Draft, EventInput, Fault, FieldError, Window};
use auditrelay_core::{Event, Permission, PortalId};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, InvalidParameter, Problem};
use super::json::{self, ParseError};
use crate::body::{self, BodyError, Coding};
use crate::clock;
use crate::config::IngestConfig;
use crate::human;
use crate::state::AppState;
use crate::store::{FaultKind, StoreError};

/// How many field errors one 400 lists at most; the detail still counts every bad event.
const MAX_REPORTED: usize = 100;

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    /// How many events were durably stored.
    pub accepted: usize,
}

/// Ingest audit events.
#[utoipa::path(
    post,
    path = "/v1/events",
    tag = "Ingest",
    operation_id = "ingest-events",
    request_body(
        description = "NDJSON (`application/x-ndjson`) or a JSON array (`application/json`) of events shaped like the v3 pull API's entries, without `signature`.",
        content_type = "application/x-ndjson",
        content = String,
    ),
    responses(
        (status = 202, description = "Every event is durably stored", body = IngestResponse),
        (status = 400, description = "A bad event; nothing was stored", body = Problem, content_type = "application/problem+json"),
        (status = 401, description = "Unauthorized", body = Problem, content_type = "application/problem+json"),
        (status = 403, description = "The token may not send events of this scope", body = Problem, content_type = "application/problem+json"),
        (status = 413, description = "The body or the event count is over the limit", body = Problem, content_type = "application/problem+json"),
        (status = 415, description = "Not JSON or NDJSON", body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])),
)]
pub async fn ingest_events(
    State(state): State<AppState>,
    caller: Caller,
    headers: HeaderMap,
    body: Body,
) -> Result<(StatusCode, Json<IngestResponse>), ApiError> {
    let result = ingest(&state, &caller, &headers, body).await;
    match &result {
        Ok(n) => metrics::counter!("auditrelay_events_ingested_total").increment(*n as u64),
        Err((reason, n, _)) => {
            metrics::counter!("auditrelay_events_rejected_total", "reason" => *reason)
                .increment(*n as u64);
        }
    }
    let accepted = result.map_err(|(_, _, e)| e)?;
    Ok((StatusCode::ACCEPTED, Json(IngestResponse { accepted })))
}

/// A rejection: the metric reason, how many events it rejected, and the error.
type Rejection = (&'static str, usize, ApiError);

async fn ingest(
    state: &AppState,
    caller: &Caller,
    headers: &HeaderMap,
    body: Body,
) -> Result<usize, Rejection> {
    // A caller whose role can never send events is refused before a byte of its body is read
    // (up to 10 MB of it) or parsed; portal-bound producers are checked per event below.
    if !caller.principal.grant.may_ingest() {
        let portal = caller.principal.grant.portal();
        caller
            .authorize(Permission::Ingest { portal }, "events", "create")
            .map_err(|e| ("forbidden", 0, e))?;
    }
    let format = body_format(headers).map_err(|e| ("unsupported_media_type", 0, e))?;
    let bytes = read_body(headers, body, &state.config.ingest).await?;
    let items = split_items(format, &bytes).map_err(|e| ("invalid", 0, e))?;
    let drafts = check_all(state, &items)?;
    let total = drafts.len();
    let events = scoped(state, caller, drafts)
        .await
        .map_err(|(reason, e)| (reason, total, e))?;
    // The request's own audit events (including its 202 access event) ride in the same
    // transaction as the batch: one fsync, and the batch is never stored unaudited.
    let audit = caller.ctx.audit_events_with_access(StatusCode::ACCEPTED);
    let mut all = Vec::with_capacity(audit.len() + events.len());
    all.extend(audit.iter().cloned());
    all.extend(events);
    if let Err(e) = state.store.append_events(all).await {
        caller.ctx.trail.restore(audit);
        let reason = match &e {
            StoreError::Unavailable {
                kind: FaultKind::Full,
                ..
            } => "store_full",
            StoreError::Unavailable { .. } => "store_unavailable",
            _ => "error",
        };
        return Err((reason, total, e.into()));
    }
    Ok(total)
}

/// The body, decoded, within the limit on the events as sent (a gzip body is held to it while
/// it inflates, and one that declares more is not read at all).
async fn read_body(
    headers: &HeaderMap,
    body: Body,
    limits: &IngestConfig,
) -> Result<Vec<u8>, Rejection> {
    let wire_limit = match body::coding(headers) {
        Ok(Coding::Identity) => limits.max_body_bytes,
        Ok(Coding::Gzip) => body::compressed_limit(limits.max_body_bytes),
        Err(e) => return Err(("unsupported_media_type", 0, body_problem(&e, limits))),
    };
    let declared = headers
        .get(header::CONTENT_LENGTH)
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.parse::<u64>().ok());
    if declared.is_some_and(|len| len > wire_limit as u64) {
        body::discard(body).await;
        let e = body_problem(
            &BodyError::TooLarge {
                what: "body",
                limit: wire_limit,
            },
            limits,
        );
        return Err(("too_large", 0, e));
    }
    match body::read(headers, body, limits.max_body_bytes).await {
        Ok(received) => Ok(received.decoded),
        Err(e) => {
            let reason = match e {
                BodyError::TooLarge { .. } => "too_large",
                BodyError::UnsupportedCoding(_) => "unsupported_media_type",
                BodyError::BadGzip(_) | BodyError::Read(_) => "invalid",
            };
            Err((reason, 0, body_problem(&e, limits)))
        }
    }
}

/// Every event checked before anything is touched: all of them valid, or a 400 naming each
/// line and field at fault (up to [`MAX_REPORTED`]).
fn check_all(state: &AppState, items: &[Item<'_>]) -> Result<Vec<(Position, Draft)>, Rejection> {
    let limits = &state.config.ingest;
    if items.len() > limits.max_events {
        let e = ApiError::payload_too_large(format!(
            "The request holds {} events; the limit is {} per request",
            items.len(),
            limits.max_events
        ));
        return Err(("too_large", items.len(), e));
    }
    if items.is_empty() {
        let e = ApiError::invalid(
            "The request holds no events",
            InvalidParameter::new("body", Some("min_items"), "send at least one event"),
        );
        return Err(("invalid", 0, e));
    }
    let total = items.len();
    let now = clock::now();
    let window = Window {
        oldest: now.saturating_sub_millis(state.config.retention.window.as_millis() as i64),
        newest: now.saturating_add_millis(limits.max_future_skew.as_millis() as i64),
        retention: human::setting(state.config.retention.window),
        skew: human::setting(limits.max_future_skew),
    };
    let mut drafts = Vec::with_capacity(total);
    let mut invalid = Vec::new();
    let mut bad_events = 0;
    for item in items {
        match parse_event(item.bytes, &window) {
            Ok(draft) => drafts.push((item.position, draft)),
            Err(errors) => {
                bad_events += 1;
                let source = item.position.to_string();
                let room = MAX_REPORTED.saturating_sub(invalid.len());
                invalid.extend(
                    errors
                        .into_iter()
                        .take(room)
                        .map(|e| e.with_source(source.clone())),
                );
            }
        }
    }
    if bad_events > 0 {
        let detail = if bad_events == 1 {
            format!(
                "Invalid event at {}; nothing was stored",
                invalid[0].source.as_deref().unwrap_or("?")
            )
        } else {
            format!("{bad_events} of {total} events are invalid; nothing was stored")
        };
        return Err(("invalid", total, ApiError::bad_request(detail, invalid)));
    }
    Ok(drafts)
}

/// The events in their scopes: the token's organization, and for portal events a portal the
/// token may write, each in its portal's region; org events in the request's region.
async fn scoped(
    state: &AppState,
    caller: &Caller,
    drafts: Vec<(Position, Draft)>,
) -> Result<Vec<Event>, (&'static str, ApiError)> {
    let org = caller.principal.org_id;
    if let Some((position, _)) = drafts
        .iter()
        .find(|(_, d)| d.org_id.is_some_and(|o| o != org))
    {
        let e = ApiError::forbidden_because(format!(
            "The event at {position} names an organization other than this token's; nothing was stored"
        ));
        return Err(("forbidden", e));
    }
    let mut portals: BTreeMap<Option<PortalId>, Position> = BTreeMap::new();
    for (position, draft) in &drafts {
        portals.entry(draft.portal_id).or_insert(*position);
    }
    for (portal, position) in &portals {
        if caller
            .authorize(Permission::Ingest { portal: *portal }, "events", "create")
            .is_err()
        {
            let scope = portal.map_or_else(
                || "the organization".to_owned(),
                |p| format!("portal [{p}]"),
            );
            let e = ApiError::forbidden_because(format!(
                "This token may not send events of {scope} (first at {position}); nothing was stored"
            ));
            return Err(("forbidden", e));
        }
    }
    let org_region = match portals.contains_key(&None) {
        true => Some(caller.ctx.region().map_err(|e| ("invalid", e))?.clone()),
        false => None,
    };
    let mut regions = BTreeMap::new();
    for (portal, position) in &portals {
        let Some(id) = portal else { continue };
        match state.store.get_portal(org, *id).await {
            Ok(Some(p)) => {
                regions.insert(*id, p.region);
            }
            Ok(None) => {
                let e = ApiError::invalid(
                    format!("Unknown portal at {position}; nothing was stored"),
                    InvalidParameter::new(
                        "portal_id",
                        Some("missing_reference"),
                        format!("no portal has id {id}"),
                    )
                    .with_source(position.to_string()),
                );
                return Err(("invalid", e));
            }
            Err(e) => return Err(("error", e.into())),
        }
    }

    Ok(drafts
        .into_iter()
        .map(|(_, d)| {
            let region = match d.portal_id {
                Some(p) => regions[&p].clone(),
                None => org_region.clone().expect("org events imply an org region"),
            };
            d.into_event(org, region)
        })
        .collect())
}

/// The problem for a body that could not be read as events.
fn body_problem(e: &BodyError, limits: &IngestConfig) -> ApiError {
    match e {
        BodyError::TooLarge { .. } => ApiError::payload_too_large(format!(
            "The body is over the limit of {} bytes (decoded)",
            limits.max_body_bytes
        )),
        BodyError::UnsupportedCoding(coding) => ApiError::unsupported_media_type(format!(
            "Content-Encoding [{coding}] is not supported: send gzip or no encoding"
        )),
        BodyError::BadGzip(_) => ApiError::invalid(
            "Could not read request body",
            InvalidParameter::new(
                "body",
                None,
                "Content-Encoding says gzip, but the body is not valid gzip",
            ),
        ),
        BodyError::Read(_) => ApiError::invalid(
            "Could not read request body",
            InvalidParameter::new("body", None, "the body ended before it was complete"),
        ),
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum BodyFormat {
    Ndjson,
    Json,
}

fn body_format(headers: &HeaderMap) -> Result<BodyFormat, ApiError> {
    let content_type = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    let essence = content_type
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    match essence.as_str() {
        "application/x-ndjson"
        | "application/ndjson"
        | "application/jsonl"
        | "application/x-jsonlines" => Ok(BodyFormat::Ndjson),
        "application/json" => Ok(BodyFormat::Json),
        _ => Err(ApiError::unsupported_media_type(format!(
            "Content-Type [{content_type}] is not supported: send application/x-ndjson (one event per line) or application/json (an array of events)"
        ))),
    }
}

/// Where an event was in the body, for error messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Position {
    Line(usize),
    Element(usize),
}

impl std::fmt::Display for Position {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Line(n) => write!(f, "line {n}"),
            Self::Element(n) => write!(f, "event {n}"),
        }
    }
}

struct Item<'a> {
    position: Position,
    bytes: &'a [u8],
}

fn split_items(format: BodyFormat, bytes: &[u8]) -> Result<Vec<Item<'_>>, ApiError> {
    match format {
        BodyFormat::Ndjson => Ok(bytes
            .split(|b| *b == b'\n')
            .enumerate()
            .map(|(i, line)| Item {
                position: Position::Line(i + 1),
                bytes: line.trim_ascii(),
            })
            .filter(|item| !item.bytes.is_empty())
            .collect()),
        BodyFormat::Json => {
            let trimmed = bytes.trim_ascii();
            if trimmed.first() == Some(&b'{') {
                return Ok(vec![Item {
                    position: Position::Element(1),
                    bytes: trimmed,
                }]);
            }
            let elements: Vec<&RawValue> =
                serde_json::from_slice(trimmed).map_err(|_| ApiError::unparsable_body())?;
            Ok(elements
                .into_iter()
                .enumerate()
                .map(|(i, raw)| Item {
                    position: Position::Element(i + 1),
                    bytes: raw.get().as_bytes(),
                })
                .collect())
        }
    }
}

/// One event: its JSON read with the API's 400 shapes, then the core's rules.
fn parse_event(bytes: &[u8], window: &Window) -> Result<Draft, Vec<InvalidParameter>> {
    let input: EventInput = match json::from_slice(bytes) {
        Ok(input) => input,
        Err(ParseError::Syntax(message)) => {
            return Err(vec![InvalidParameter::new(
                "event",
                None,
                format!("is not valid JSON: {message}"),
            )]);
        }
        Err(ParseError::Field(mut parameter)) => {
            match parameter.field.as_str() {
                "signature" => {
                    parameter.reason =
                        "is computed by auditrelay; send events without it".to_owned()
                }
                "body" => parameter.field = "event".to_owned(),
                _ => {}
            }
            return Err(vec![*parameter]);
        }
    };
    input
        .validate(window)
        .map_err(|errors| errors.into_iter().map(invalid_parameter).collect())
}

/// A fault the core found, in Konnect's `invalid_parameters` shape.
fn invalid_parameter(e: FieldError) -> InvalidParameter {
    match &e.fault {
        Fault::NotOneOf(choices) => InvalidParameter::choice(e.field, choices.iter().copied()),
        Fault::TooLong { max } => {
            InvalidParameter::new(e.field, Some(e.fault.rule()), e.fault.reason())
                .with_maximum(*max as u64)
        }
        fault => InvalidParameter::new(e.field, Some(fault.rule()), fault.reason()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use auditrelay_core::Timestamp;

    fn window() -> Window {
        let now = Timestamp::parse_rfc3339("2026-11-20T12:00:00Z").unwrap();
        Window {
            oldest: now.saturating_sub_millis(7 * 86_400_000),
            newest: now.saturating_add_millis(300_000),
            retention: "7d".into(),
            skew: "5m".into(),
        }
    }

    /// The `(field, rule)` pairs a line gets. (The rules themselves are tested in the core's
    /// `intake`; these are the JSON's shapes and how the core's faults are worded.)
    #[track_caller]
    fn faults(json: &str) -> Vec<(String, String)> {
        match parse_event(json.as_bytes(), &window()) {
            Ok(_) => Vec::new(),
            Err(errors) => errors
                .iter()
                .map(|e| (e.field.clone(), e.rule.unwrap_or("").to_owned()))
                .collect(),
        }
    }

    const AUTHZ: &str = r#"{"type":"authorization","ts":"2026-11-20T10:00:00.123Z","service":"konnect","resource":"control-planes","action":"list","granted":true,"principal_id":"eb999f01-5976-4f4b-9fbc-dd5d514bd675","client_ip":"127.0.0.6","trace_id":"3959872677347089807","user_agent":"grpc-node-js/1.12.4"}"#;

    #[test]
    fn json_faults_name_the_field() {
        let pairs = |p: &[(&str, &str)]| -> Vec<(String, String)> {
            p.iter()
                .map(|(f, r)| (f.to_string(), r.to_string()))
                .collect()
        };
        assert_eq!(faults(AUTHZ), pairs(&[]));
        assert_eq!(faults("{"), pairs(&[("event", "")]));
        assert_eq!(faults("[]"), pairs(&[("event", "is_object")]));
        let Err(errors) = parse_event(b"[]", &window()) else {
            panic!("refused")
        };
        assert_eq!(errors[0].reason, "must be a JSON object");
        assert_eq!(
            faults(&AUTHZ.replace("\"granted\":true", "\"granted\":\"yes\"")),
            pairs(&[("granted", "is_boolean")])
        );
        assert_eq!(
            faults(&AUTHZ.replace("\"action\"", "\"signature\":\"x\",\"action\"")),
            pairs(&[("signature", "unknown_property")])
        );
        assert_eq!(
            faults(&AUTHZ.replace("\"action\"", "\"actoin\"")),
            pairs(&[("actoin", "unknown_property")])
        );
        assert_eq!(
            faults(r#"{"type":"authentication","ts":"2026-11-20T10:00:00Z"} x"#),
            pairs(&[("event", "")])
        );
    }

    #[test]
    fn the_cores_faults_keep_konnects_shape() {
        let Err(errors) = parse_event(
            AUTHZ
                .replace("konnect", &"k".repeat(300))
                .replace("authorization", "login")
                .as_bytes(),
            &window(),
        ) else {
            panic!("refused")
        };
        let json = serde_json::to_value(&errors).unwrap();
        assert_eq!(json[0]["field"], "type");
        assert_eq!(json[0]["rule"], "enum");
        assert_eq!(
            json[0]["choices"],
            serde_json::json!(["authentication", "authorization", "gateway_access"])
        );
        assert_eq!(json[1]["field"], "service");
        assert_eq!(json[1]["rule"], "max_length");
        assert_eq!(json[1]["maximum"], 256);
        assert_eq!(json[1]["reason"], "must be at most 256 bytes");
    }

    #[test]
    fn ndjson_positions_count_blank_lines() {
        let items = split_items(BodyFormat::Ndjson, b"{}\n\n {} \r\n").unwrap();
        let positions: Vec<_> = items.iter().map(|i| i.position.to_string()).collect();
        assert_eq!(positions, ["line 1", "line 3"]);
        assert!(split_items(BodyFormat::Json, b"[{}, 1").is_err());
        assert_eq!(
            split_items(BodyFormat::Json, b" [ {}, {} ] ")
                .unwrap()
                .len(),
            2
        );
        assert_eq!(split_items(BodyFormat::Json, b"{}").unwrap().len(), 1);
    }
}

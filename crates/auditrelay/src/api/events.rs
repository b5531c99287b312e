//! `POST /v1/events`: ingest audit events from producers (gateways, portals, scripts).
//!
//! The body is NDJSON (one event per line) or a JSON array of events shaped like Konnect's v3
//! pull API entries, without `signature`. A request is all or nothing: every line is checked
//! first, any bad line rejects the request with 400 naming each line and field at fault, and
//! the 202 comes only after the whole batch is durably committed.

use std::collections::BTreeMap;

use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, EventType, OrgId, Permission,
    PortalId, Timestamp,
};
use axum::Json;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode, header};
use serde::{Deserialize, Serialize};
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
/// Longest accepted identifier-like value (ids, trace ids, service and action names).
const MAX_ID: usize = 256;
/// Longest accepted free text (URIs, queries, user agents, names, resources).
const MAX_TEXT: usize = 8192;

#[derive(Debug, Serialize, ToSchema)]
pub struct IngestResponse {
    /// How many events were durably stored.
    pub accepted: usize,
}

/// One event as sent. Every field is optional here so that a missing field is reported by
/// name, with the event's line, rather than as a generic parse error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct WireEvent {
    #[serde(rename = "type")]
    kind: Option<String>,
    ts: Option<String>,
    org_id: Option<String>,
    portal_id: Option<String>,
    principal_id: Option<String>,
    principal_name: Option<String>,
    actor_id: Option<String>,
    client_ip: Option<String>,
    uri: Option<String>,
    user_agent: Option<String>,
    trace_id: Option<String>,
    successful: Option<bool>,
    outcome: Option<String>,
    authentication_type: Option<String>,
    service: Option<String>,
    resource: Option<String>,
    action: Option<String>,
    granted: Option<bool>,
    method: Option<String>,
    query: Option<String>,
    status_code: Option<i64>,
    kong_initiated: Option<bool>,
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
    let limits = &state.config.ingest;
    let format = body_format(headers).map_err(|e| ("unsupported_media_type", 0, e))?;
    // The limit is on the events as sent, decoded: a gzip body is held to it while it inflates.
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
    let bytes = match body::read(headers, body, limits.max_body_bytes).await {
        Ok(received) => received.decoded,
        Err(e) => {
            let reason = match e {
                BodyError::TooLarge { .. } => "too_large",
                BodyError::UnsupportedCoding(_) => "unsupported_media_type",
                BodyError::BadGzip(_) | BodyError::Read(_) => "invalid",
            };
            return Err((reason, 0, body_problem(&e, limits)));
        }
    };

    let items = split_items(format, &bytes).map_err(|e| ("invalid", 0, e))?;
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

    // Check every event before touching anything.
    let now = clock::now();
    let window = Window {
        oldest: now.saturating_sub_millis(state.config.retention.window.as_millis() as i64),
        newest: now.saturating_add_millis(state.config.ingest.max_future_skew.as_millis() as i64),
        retention: human::setting(state.config.retention.window),
        skew: human::setting(state.config.ingest.max_future_skew),
    };
    let mut drafts = Vec::with_capacity(total);
    let mut invalid = Vec::new();
    let mut bad_events = 0;
    for item in &items {
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

    // Scope: the token's organization, and for portal events a portal the token may write.
    let org = caller.principal.org_id;
    if let Some((position, _)) = drafts
        .iter()
        .find(|(_, d)| d.org_id.is_some_and(|o| o != org))
    {
        let e = ApiError::forbidden_because(format!(
            "The event at {position} names an organization other than this token's; nothing was stored"
        ));
        return Err(("forbidden", total, e));
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
            return Err(("forbidden", total, e));
        }
    }
    let org_region = match portals.contains_key(&None) {
        true => Some(
            caller
                .ctx
                .region()
                .map_err(|e| ("invalid", total, e))?
                .clone(),
        ),
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
                return Err(("invalid", total, e));
            }
            Err(e) => return Err(("error", total, e.into())),
        }
    }

    let events: Vec<Event> = drafts
        .into_iter()
        .map(|(_, d)| {
            let region = match d.portal_id {
                Some(p) => regions[&p].clone(),
                None => org_region.clone().expect("org events imply an org region"),
            };
            d.into_event(org, region)
        })
        .collect();
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

/// The accepted time range of a batch, fixed once per request.
struct Window {
    oldest: Timestamp,
    newest: Timestamp,
    retention: String,
    skew: String,
}

/// A valid event before its scope is resolved.
struct Draft {
    org_id: Option<OrgId>,
    portal_id: Option<PortalId>,
    ts: Timestamp,
    principal_id: Option<String>,
    principal_name: Option<String>,
    actor_id: Option<String>,
    client_ip: Option<String>,
    uri: Option<String>,
    user_agent: Option<String>,
    trace_id: Option<String>,
    detail: EventDetail,
}

impl Draft {
    fn into_event(self, org_id: OrgId, region: auditrelay_core::Region) -> Event {
        Event {
            ts: self.ts,
            org_id,
            region,
            portal_id: self.portal_id,
            principal_id: self.principal_id,
            principal_name: self.principal_name,
            actor_id: self.actor_id,
            client_ip: self.client_ip,
            uri: self.uri,
            user_agent: self.user_agent,
            trace_id: self.trace_id,
            detail: self.detail,
        }
    }
}

/// Collects field errors for one event.
#[derive(Default)]
struct Checker {
    errors: Vec<InvalidParameter>,
}

impl Checker {
    fn choice<'a>(&mut self, field: &str, choices: impl IntoIterator<Item = &'a str>) {
        self.errors.push(InvalidParameter::choice(field, choices));
    }

    fn fail(&mut self, field: &str, rule: &'static str, reason: impl Into<String>) {
        self.errors
            .push(InvalidParameter::new(field, Some(rule), reason));
    }

    /// A present text field within its length limit.
    fn text(&mut self, field: &str, value: Option<String>, max: usize) -> Option<String> {
        let value = value?;
        if value.len() > max {
            self.errors.push(
                InvalidParameter::new(
                    field,
                    Some("max_length"),
                    format!("must be at most {max} bytes"),
                )
                .with_maximum(max as u64),
            );
            return None;
        }
        Some(value)
    }

    /// `value`, reporting it missing unless the field was already reported (too long, say).
    fn required<T>(&mut self, field: &str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.errors.iter().any(|e| e.field == field) {
            self.fail(field, "required", "is a required field");
        }
        value
    }

    fn forbid(&mut self, field: &str, present: bool, kind: EventType) {
        if present {
            self.fail(
                field,
                "unknown_property",
                format!("is not a field of {kind} events"),
            );
        }
    }
}

fn parse_event(bytes: &[u8], window: &Window) -> Result<Draft, Vec<InvalidParameter>> {
    let wire: WireEvent = match json::from_slice(bytes) {
        Ok(wire) => wire,
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
    validate(wire, window)
}

fn validate(w: WireEvent, window: &Window) -> Result<Draft, Vec<InvalidParameter>> {
    let mut c = Checker::default();
    let kind = match w.kind.as_deref() {
        None => {
            c.fail("type", "required", "is a required field");
            None
        }
        Some(name) => {
            let kind = EventType::parse(name);
            if kind.is_none() {
                c.choice("type", EventType::ALL.map(EventType::as_str));
            }
            kind
        }
    };
    let ts = match c.required("ts", w.ts) {
        None => None,
        Some(s) => match Timestamp::parse_rfc3339(&s) {
            None => {
                c.fail(
                    "ts",
                    "is_date_time",
                    "must be an RFC 3339 date-time such as 2026-11-20T10:00:00.123Z",
                );
                None
            }
            Some(ts) if ts < window.oldest => {
                c.fail(
                    "ts",
                    "invalid",
                    format!("is older than the retention window ({})", window.retention),
                );
                None
            }
            Some(ts) if ts > window.newest => {
                c.fail(
                    "ts",
                    "invalid",
                    format!("is more than {} in the future", window.skew),
                );
                None
            }
            Some(ts) => Some(ts),
        },
    };
    let org_id = c.text("org_id", w.org_id, MAX_ID).and_then(|s| {
        let id = OrgId::parse(&s);
        if id.is_none() {
            c.fail("org_id", "is_uuid", "must be a UUID");
        }
        id
    });
    let portal_id = c.text("portal_id", w.portal_id, MAX_ID).and_then(|s| {
        let id = PortalId::parse(&s);
        if id.is_none() {
            c.fail("portal_id", "is_uuid", "must be a UUID");
        }
        id
    });
    let principal_id = c.text("principal_id", w.principal_id, MAX_ID);
    let principal_name = c.text("principal_name", w.principal_name, MAX_TEXT);
    let actor_id = c.text("actor_id", w.actor_id, MAX_ID);
    let client_ip = c.text("client_ip", w.client_ip, MAX_ID);
    let uri = c.text("uri", w.uri, MAX_TEXT);
    let user_agent = c.text("user_agent", w.user_agent, MAX_TEXT);
    let trace_id = c.text("trace_id", w.trace_id, MAX_ID);
    let service = c.text("service", w.service, MAX_ID);
    let resource = c.text("resource", w.resource, MAX_TEXT);
    let action = c.text("action", w.action, MAX_ID);
    let method = c.text("method", w.method, MAX_ID);
    let query = c.text("query", w.query, MAX_TEXT);

    let detail = kind.and_then(|kind| match kind {
        EventType::Authentication => {
            for (field, present) in [
                ("service", service.is_some()),
                ("resource", resource.is_some()),
                ("action", action.is_some()),
                ("granted", w.granted.is_some()),
                ("method", method.is_some()),
                ("query", query.is_some()),
                ("status_code", w.status_code.is_some()),
                ("kong_initiated", w.kong_initiated.is_some()),
                ("actor_id", actor_id.is_some()),
            ] {
                c.forbid(field, present, kind);
            }
            for (field, value) in [
                ("client_ip", &client_ip),
                ("uri", &uri),
                ("user_agent", &user_agent),
                ("trace_id", &trace_id),
            ] {
                c.required(field, value.as_ref());
            }
            let successful = c.required("successful", w.successful);
            let outcome = c.required("outcome", w.outcome).and_then(|s| {
                let o = AuthenticationOutcome::parse(&s);
                if o.is_none() {
                    c.choice(
                        "outcome",
                        AuthenticationOutcome::ALL.iter().map(|o| o.as_str()),
                    );
                }
                o
            });
            let authentication_type = c
                .required("authentication_type", w.authentication_type)
                .and_then(|s| {
                    let t = AuthenticationType::parse(&s);
                    if t.is_none() {
                        c.choice(
                            "authentication_type",
                            AuthenticationType::ALL.iter().map(|t| t.as_str()),
                        );
                    }
                    t
                });
            if let (Some(successful), Some(outcome)) = (successful, outcome)
                && successful != (outcome == AuthenticationOutcome::Success)
            {
                c.fail(
                    "successful",
                    "invalid",
                    "must be true exactly when outcome is success",
                );
            }
            Some(EventDetail::Authentication {
                outcome: outcome?,
                authentication_type: authentication_type?,
            })
        }
        EventType::Authorization => {
            for (field, present) in [
                ("successful", w.successful.is_some()),
                ("outcome", w.outcome.is_some()),
                ("authentication_type", w.authentication_type.is_some()),
                ("method", method.is_some()),
                ("query", query.is_some()),
                ("status_code", w.status_code.is_some()),
            ] {
                c.forbid(field, present, kind);
            }
            c.required("principal_id", principal_id.as_ref());
            let service = c.required("service", service);
            let resource = c.required("resource", resource);
            let action = c.required("action", action);
            let granted = c.required("granted", w.granted);
            Some(EventDetail::Authorization {
                service: service?,
                resource: resource?,
                action: action?,
                granted: granted?,
                kong_initiated: w.kong_initiated,
            })
        }
        EventType::Access => {
            for (field, present) in [
                ("successful", w.successful.is_some()),
                ("outcome", w.outcome.is_some()),
                ("authentication_type", w.authentication_type.is_some()),
                ("service", service.is_some()),
                ("resource", resource.is_some()),
                ("action", action.is_some()),
                ("granted", w.granted.is_some()),
            ] {
                c.forbid(field, present, kind);
            }
            for (field, value) in [
                ("principal_id", &principal_id),
                ("actor_id", &actor_id),
                ("client_ip", &client_ip),
                ("trace_id", &trace_id),
                ("user_agent", &user_agent),
                ("uri", &uri),
            ] {
                c.required(field, value.as_ref());
            }
            let method = c.required("method", method);
            let query = c.required("query", query);
            let status_code = c.required("status_code", w.status_code).and_then(|code| {
                let valid = (100..=599).contains(&code);
                if !valid {
                    c.fail(
                        "status_code",
                        "invalid",
                        "must be an HTTP status code (100 to 599)",
                    );
                }
                valid.then_some(code as u16)
            });
            Some(EventDetail::Access {
                method: method?,
                query: query?,
                status_code: status_code?,
                kong_initiated: w.kong_initiated,
            })
        }
    });
    if portal_id.is_some() && kind.is_some_and(|k| k != EventType::Authentication) {
        c.fail(
            "portal_id",
            "invalid",
            "only authentication events belong to a Dev Portal",
        );
    }
    match (c.errors.is_empty(), ts, detail) {
        (true, Some(ts), Some(detail)) => Ok(Draft {
            org_id,
            portal_id,
            ts,
            principal_id,
            principal_name,
            actor_id,
            client_ip,
            uri,
            user_agent,
            trace_id,
            detail,
        }),
        _ => Err(c.errors),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn window() -> Window {
        let now = Timestamp::parse_rfc3339("2026-11-20T12:00:00Z").unwrap();
        Window {
            oldest: now.saturating_sub_millis(7 * 86_400_000),
            newest: now.saturating_add_millis(300_000),
            retention: "7d".into(),
            skew: "5m".into(),
        }
    }

    /// `Ok(type)` or the `(field, rule)` pairs reported.
    #[track_caller]
    fn check(json: &str, expect: Result<EventType, &[(&str, &str)]>) {
        let actual = parse_event(json.as_bytes(), &window());
        match (actual, expect) {
            (Ok(d), Ok(kind)) => {
                let event =
                    d.into_event(OrgId::nil(), auditrelay_core::Region::parse("us").unwrap());
                assert_eq!(event.event_type(), kind, "{json}");
            }
            (Err(errors), Err(expected)) => {
                let got: Vec<(String, String)> = errors
                    .iter()
                    .map(|e| (e.field.clone(), e.rule.unwrap_or("").to_owned()))
                    .collect();
                let want: Vec<(String, String)> = expected
                    .iter()
                    .map(|(f, r)| (f.to_string(), r.to_string()))
                    .collect();
                assert_eq!(got, want, "{json}");
            }
            (actual, _) => panic!("{json}: unexpected {:?}", actual.map(|_| ())),
        }
    }

    const AUTHZ: &str = r#"{"type":"authorization","ts":"2026-11-20T10:00:00.123Z","service":"konnect","resource":"control-planes","action":"list","granted":true,"principal_id":"eb999f01-5976-4f4b-9fbc-dd5d514bd675","client_ip":"127.0.0.6","trace_id":"3959872677347089807","user_agent":"grpc-node-js/1.12.4"}"#;

    #[test]
    fn valid_events() {
        check(AUTHZ, Ok(EventType::Authorization));
        check(
            r#"{"type":"authentication","ts":"2026-11-20T10:00:00Z","successful":false,"outcome":"invalid_password","authentication_type":"basic","client_ip":"1.2.3.4","uri":"/api/v2/developer/authenticate","user_agent":"","trace_id":"1","portal_id":"3e551b39-227d-4297-b911-e68fd5d77c17"}"#,
            Ok(EventType::Authentication),
        );
        check(
            r#"{"type":"gateway_access","ts":"2026-11-20T10:00:00Z","principal_id":"p","actor_id":"","client_ip":"1.2.3.4","trace_id":"1","user_agent":"curl","method":"POST","uri":"/x","query":"{}","status_code":201,"kong_initiated":true}"#,
            Ok(EventType::Access),
        );
    }

    #[test]
    fn rejections_name_the_field() {
        check("{", Err(&[("event", "")]));
        check("[]", Err(&[("event", "is_object")]));
        check(
            r#"{"type":"login","ts":"2026-11-20T10:00:00Z"}"#,
            Err(&[("type", "enum")]),
        );
        check(
            r#"{"ts":"2026-11-20T10:00:00Z"}"#,
            Err(&[("type", "required")]),
        );
        check(
            &AUTHZ.replace("\"granted\":true", "\"granted\":\"yes\""),
            Err(&[("granted", "is_boolean")]),
        );
        check(
            &AUTHZ.replace("\"granted\":true,", ""),
            Err(&[("granted", "required")]),
        );
        check(
            &AUTHZ.replace("2026-11-20T10:00:00.123Z", "yesterday"),
            Err(&[("ts", "is_date_time")]),
        );
        check(
            &AUTHZ.replace("2026-11-20T10:00:00.123Z", "2026-11-01T10:00:00Z"),
            Err(&[("ts", "invalid")]),
        );
        check(
            &AUTHZ.replace("2026-11-20T10:00:00.123Z", "2026-11-20T12:06:00Z"),
            Err(&[("ts", "invalid")]),
        );
        check(
            &AUTHZ.replace("\"action\"", "\"signature\":\"x\",\"action\""),
            Err(&[("signature", "unknown_property")]),
        );
        check(
            &AUTHZ.replace("\"action\"", "\"actoin\""),
            Err(&[("actoin", "unknown_property")]),
        );
        check(
            &AUTHZ.replace("\"service\"", "\"outcome\":\"success\",\"service\""),
            Err(&[("outcome", "unknown_property")]),
        );
        check(
            &AUTHZ.replace(
                "\"service\"",
                "\"portal_id\":\"3e551b39-227d-4297-b911-e68fd5d77c17\",\"service\"",
            ),
            Err(&[("portal_id", "invalid")]),
        );
        check(
            &AUTHZ.replace("\"service\"", "\"org_id\":\"acme\",\"service\""),
            Err(&[("org_id", "is_uuid")]),
        );
        check(
            &AUTHZ.replace("konnect", &"k".repeat(300)),
            Err(&[("service", "max_length")]),
        );
        check(
            r#"{"type":"authentication","ts":"2026-11-20T10:00:00Z","successful":true,"outcome":"locked","authentication_type":"pat","client_ip":"","uri":"/","user_agent":"","trace_id":"1"}"#,
            Err(&[("successful", "invalid")]),
        );
        check(
            r#"{"type":"gateway_access","ts":"2026-11-20T10:00:00Z","principal_id":"p","actor_id":"","client_ip":"","trace_id":"1","user_agent":"","method":"GET","uri":"/","query":"","status_code":999}"#,
            Err(&[("status_code", "invalid")]),
        );
        check(
            r#"{"type":"authentication","ts":"2026-11-20T10:00:00Z"} x"#,
            Err(&[("event", "")]),
        );
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

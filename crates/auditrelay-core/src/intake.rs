//! An event as a producer sends it, and the rules that make it an [`Event`]: the fields each
//! type requires and refuses, their formats and lengths, the accepted time window, which events
//! may belong to a Dev Portal, and the agreement of `successful` with `outcome`.
//!
//! The service's ingest endpoint reads the body, parses each event into an [`EventInput`] and
//! turns [`FieldError`]s into its problem format; the rules themselves are here, where they can
//! be tested without HTTP. Every fault of an event is reported, not only the first, so that a
//! producer can fix a line in one go.

use serde::Deserialize;

use crate::event::{AuthenticationOutcome, AuthenticationType, Event, EventDetail, EventType};
use crate::{OrgId, PortalId, Region, Timestamp};

/// Longest accepted identifier-like value (ids, trace ids, service and action names).
pub const MAX_ID: usize = 256;
/// Longest accepted free text (URIs, queries, user agents, names, resources).
pub const MAX_TEXT: usize = 8192;

/// One event as sent: shaped like the v3 pull API's entries, without `signature`. Every field
/// is optional here so that a missing field is reported by name rather than as a parse error.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EventInput {
    #[serde(rename = "type")]
    pub kind: Option<String>,
    pub ts: Option<String>,
    pub org_id: Option<String>,
    pub portal_id: Option<String>,
    pub principal_id: Option<String>,
    pub principal_name: Option<String>,
    pub actor_id: Option<String>,
    pub client_ip: Option<String>,
    pub uri: Option<String>,
    pub user_agent: Option<String>,
    pub trace_id: Option<String>,
    pub successful: Option<bool>,
    pub outcome: Option<String>,
    pub authentication_type: Option<String>,
    pub service: Option<String>,
    pub resource: Option<String>,
    pub action: Option<String>,
    pub granted: Option<bool>,
    pub method: Option<String>,
    pub query: Option<String>,
    pub status_code: Option<i64>,
    pub kong_initiated: Option<bool>,
}

/// The times an event may have, fixed once per request: within the retention window, and not
/// further ahead of now than the allowed clock skew. The two durations are given in words for
/// the messages.
#[derive(Debug, Clone)]
pub struct Window {
    pub oldest: Timestamp,
    pub newest: Timestamp,
    /// The retention window as the configuration writes it (`7d`).
    pub retention: String,
    /// The allowed clock skew as the configuration writes it (`5m`).
    pub skew: String,
}

/// Why one field of an event is refused.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: &'static str,
    pub fault: Fault,
}

/// What is wrong with a field; [`Fault::rule`] and [`Fault::reason`] are the words of the
/// API's `invalid_parameters`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    Required,
    TooLong { max: usize },
    NotOneOf(Vec<&'static str>),
    NotUuid,
    NotDateTime,
    NotAFieldOf(EventType),
    Invalid(String),
}

impl Fault {
    pub fn rule(&self) -> &'static str {
        match self {
            Self::Required => "required",
            Self::TooLong { .. } => "max_length",
            Self::NotOneOf(_) => "enum",
            Self::NotUuid => "is_uuid",
            Self::NotDateTime => "is_date_time",
            Self::NotAFieldOf(_) => "unknown_property",
            Self::Invalid(_) => "invalid",
        }
    }

    pub fn reason(&self) -> String {
        match self {
            Self::Required => "is a required field".to_owned(),
            Self::TooLong { max } => format!("must be at most {max} bytes"),
            Self::NotOneOf(choices) => format!("must be one of {}", choices.join(", ")),
            Self::NotUuid => "must be a UUID".to_owned(),
            Self::NotDateTime => {
                "must be an RFC 3339 date-time such as 2026-11-20T10:00:00.123Z".to_owned()
            }
            Self::NotAFieldOf(kind) => format!("is not a field of {kind} events"),
            Self::Invalid(reason) => reason.clone(),
        }
    }
}

/// A valid event whose scope is not resolved yet: the caller knows the organization and, from
/// the portal or the request, the region.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Draft {
    /// The organization the event names, if it names one; the caller checks it is the token's.
    pub org_id: Option<OrgId>,
    /// Set for Dev Portal events (authentication events only).
    pub portal_id: Option<PortalId>,
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
    pub fn into_event(self, org_id: OrgId, region: Region) -> Event {
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
    errors: Vec<FieldError>,
}

impl Checker {
    fn fail(&mut self, field: &'static str, fault: Fault) {
        self.errors.push(FieldError { field, fault });
    }

    fn invalid(&mut self, field: &'static str, reason: &str) {
        self.fail(field, Fault::Invalid(reason.to_owned()));
    }

    /// A present text field within its length limit.
    fn text(&mut self, field: &'static str, value: Option<String>, max: usize) -> Option<String> {
        let value = value?;
        if value.len() > max {
            self.fail(field, Fault::TooLong { max });
            return None;
        }
        Some(value)
    }

    /// `value`, reporting it missing unless the field was already reported (too long, say).
    fn required<T>(&mut self, field: &'static str, value: Option<T>) -> Option<T> {
        if value.is_none() && !self.errors.iter().any(|e| e.field == field) {
            self.fail(field, Fault::Required);
        }
        value
    }

    fn forbid(&mut self, field: &'static str, present: bool, kind: EventType) {
        if present {
            self.fail(field, Fault::NotAFieldOf(kind));
        }
    }

    /// `value` parsed by `parse`, or `choices` reported.
    fn one_of<T>(
        &mut self,
        field: &'static str,
        value: Option<String>,
        parse: impl Fn(&str) -> Option<T>,
        choices: impl IntoIterator<Item = &'static str>,
    ) -> Option<T> {
        let parsed = parse(&value?);
        if parsed.is_none() {
            self.fail(field, Fault::NotOneOf(choices.into_iter().collect()));
        }
        parsed
    }

    fn uuid<T>(
        &mut self,
        field: &'static str,
        value: Option<String>,
        parse: impl Fn(&str) -> Option<T>,
    ) -> Option<T> {
        let parsed = parse(&self.text(field, value, MAX_ID)?);
        if parsed.is_none() {
            self.fail(field, Fault::NotUuid);
        }
        parsed
    }
}

impl EventInput {
    /// The event this input describes, or every fault it has.
    pub fn validate(self, window: &Window) -> Result<Draft, Vec<FieldError>> {
        let w = self;
        let mut c = Checker::default();
        let kind = match w.kind {
            None => {
                c.fail("type", Fault::Required);
                None
            }
            Some(name) => c.one_of(
                "type",
                Some(name),
                EventType::parse,
                EventType::ALL.map(EventType::as_str),
            ),
        };
        let ts = c
            .required("ts", w.ts)
            .and_then(|s| match Timestamp::parse_rfc3339(&s) {
                None => {
                    c.fail("ts", Fault::NotDateTime);
                    None
                }
                Some(ts) if ts < window.oldest => {
                    let reason =
                        format!("is older than the retention window ({})", window.retention);
                    c.invalid("ts", &reason);
                    None
                }
                Some(ts) if ts > window.newest => {
                    c.invalid("ts", &format!("is more than {} in the future", window.skew));
                    None
                }
                Some(ts) => Some(ts),
            });
        let org_id = c.uuid("org_id", w.org_id, OrgId::parse);
        let portal_id = c.uuid("portal_id", w.portal_id, PortalId::parse);
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
                let outcome = c.required("outcome", w.outcome);
                let outcome = c.one_of(
                    "outcome",
                    outcome,
                    AuthenticationOutcome::parse,
                    AuthenticationOutcome::ALL.iter().map(|o| o.as_str()),
                );
                let authentication_type = c.required("authentication_type", w.authentication_type);
                let authentication_type = c.one_of(
                    "authentication_type",
                    authentication_type,
                    AuthenticationType::parse,
                    AuthenticationType::ALL.iter().map(|t| t.as_str()),
                );
                // The event has no flag of its own: its outcome says whether it succeeded, so
                // a `successful` that says otherwise is refused rather than dropped.
                if let (Some(successful), Some(outcome)) = (successful, outcome)
                    && successful != outcome.is_success()
                {
                    c.invalid("successful", "must be true exactly when outcome is success");
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
                        c.invalid("status_code", "must be an HTTP status code (100 to 599)");
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
            c.invalid(
                "portal_id",
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
        let input: EventInput = serde_json::from_str(json).expect("the test's JSON parses");
        match (input.validate(&window()), expect) {
            (Ok(d), Ok(kind)) => {
                let event = d.into_event(OrgId::nil(), Region::parse("us").unwrap());
                assert_eq!(event.event_type(), kind, "{json}");
            }
            (Err(errors), Err(expected)) => {
                let got: Vec<(&str, &str)> =
                    errors.iter().map(|e| (e.field, e.fault.rule())).collect();
                assert_eq!(got, expected, "{json}");
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
    fn each_fault_is_named_by_field_and_rule() {
        check(
            r#"{"type":"login","ts":"2026-11-20T10:00:00Z"}"#,
            Err(&[("type", "enum")]),
        );
        check(
            r#"{"ts":"2026-11-20T10:00:00Z"}"#,
            Err(&[("type", "required")]),
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
        // Too long is reported once, not also as missing.
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
    }

    #[test]
    fn every_fault_of_an_event_is_reported() {
        check(
            r#"{"type":"authentication","ts":"soon","outcome":"maybe"}"#,
            Err(&[
                ("ts", "is_date_time"),
                ("client_ip", "required"),
                ("uri", "required"),
                ("user_agent", "required"),
                ("trace_id", "required"),
                ("successful", "required"),
                ("outcome", "enum"),
                ("authentication_type", "required"),
            ]),
        );
    }

    #[test]
    fn faults_read_as_the_api_words_them() {
        let p = Fault::NotOneOf(vec!["a", "b"]);
        assert_eq!(
            (p.rule(), p.reason()),
            ("enum", "must be one of a, b".into())
        );
        let p = Fault::TooLong { max: 256 };
        assert_eq!(p.reason(), "must be at most 256 bytes");
        let p = Fault::NotAFieldOf(EventType::Access);
        assert_eq!(p.reason(), "is not a field of gateway_access events");
    }
}

//! The stored form of an event's body: every field that is not a column (scope, time, type),
//! as compact JSON with one- and two-letter keys.
//!
//! This is a storage format, not a wire format: it is private to the store, and it must only
//! ever be extended with new optional keys so that rows written by an older version still
//! decode. Both backends share it.

use std::borrow::Cow;

use auditrelay_core::{AuthenticationOutcome, AuthenticationType, Event, EventDetail, EventType};
use serde::{Deserialize, Serialize};

/// The `kind` column.
pub fn kind_code(t: EventType) -> i64 {
    match t {
        EventType::Authentication => 0,
        EventType::Authorization => 1,
        EventType::Access => 2,
    }
}

fn kind_from_code(code: i64) -> Option<EventType> {
    EventType::ALL.into_iter().find(|t| kind_code(*t) == code)
}

#[derive(Serialize, Deserialize, Default)]
struct Body<'a> {
    #[serde(rename = "p", borrow, skip_serializing_if = "Option::is_none")]
    principal_id: Option<Cow<'a, str>>,
    #[serde(rename = "pn", borrow, skip_serializing_if = "Option::is_none")]
    principal_name: Option<Cow<'a, str>>,
    #[serde(rename = "ac", borrow, skip_serializing_if = "Option::is_none")]
    actor_id: Option<Cow<'a, str>>,
    #[serde(rename = "ip", borrow, skip_serializing_if = "Option::is_none")]
    client_ip: Option<Cow<'a, str>>,
    #[serde(rename = "u", borrow, skip_serializing_if = "Option::is_none")]
    uri: Option<Cow<'a, str>>,
    #[serde(rename = "ua", borrow, skip_serializing_if = "Option::is_none")]
    user_agent: Option<Cow<'a, str>>,
    #[serde(rename = "t", borrow, skip_serializing_if = "Option::is_none")]
    trace_id: Option<Cow<'a, str>>,
    // Authentication.
    #[serde(rename = "ok", skip_serializing_if = "Option::is_none")]
    successful: Option<bool>,
    #[serde(rename = "o", borrow, skip_serializing_if = "Option::is_none")]
    outcome: Option<Cow<'a, str>>,
    #[serde(rename = "at", borrow, skip_serializing_if = "Option::is_none")]
    authentication_type: Option<Cow<'a, str>>,
    // Authorization.
    #[serde(rename = "s", borrow, skip_serializing_if = "Option::is_none")]
    service: Option<Cow<'a, str>>,
    #[serde(rename = "r", borrow, skip_serializing_if = "Option::is_none")]
    resource: Option<Cow<'a, str>>,
    #[serde(rename = "a", borrow, skip_serializing_if = "Option::is_none")]
    action: Option<Cow<'a, str>>,
    #[serde(rename = "g", skip_serializing_if = "Option::is_none")]
    granted: Option<bool>,
    // Access.
    #[serde(rename = "m", borrow, skip_serializing_if = "Option::is_none")]
    method: Option<Cow<'a, str>>,
    #[serde(rename = "q", borrow, skip_serializing_if = "Option::is_none")]
    query: Option<Cow<'a, str>>,
    #[serde(rename = "sc", skip_serializing_if = "Option::is_none")]
    status_code: Option<u16>,
    // Authorization and access.
    #[serde(rename = "ki", skip_serializing_if = "Option::is_none")]
    kong_initiated: Option<bool>,
}

fn borrow(s: &Option<String>) -> Option<Cow<'_, str>> {
    s.as_deref().map(Cow::Borrowed)
}

/// Appends the body of `event` to `out`.
pub fn encode_body(event: &Event, out: &mut Vec<u8>) {
    let mut body = Body {
        principal_id: borrow(&event.principal_id),
        principal_name: borrow(&event.principal_name),
        actor_id: borrow(&event.actor_id),
        client_ip: borrow(&event.client_ip),
        uri: borrow(&event.uri),
        user_agent: borrow(&event.user_agent),
        trace_id: borrow(&event.trace_id),
        ..Body::default()
    };
    match &event.detail {
        EventDetail::Authentication {
            successful,
            outcome,
            authentication_type,
        } => {
            body.successful = Some(*successful);
            body.outcome = Some(outcome.as_str().into());
            body.authentication_type = Some(authentication_type.as_str().into());
        }
        EventDetail::Authorization {
            service,
            resource,
            action,
            granted,
            kong_initiated,
        } => {
            body.service = Some(service.into());
            body.resource = Some(resource.into());
            body.action = Some(action.into());
            body.granted = Some(*granted);
            body.kong_initiated = *kong_initiated;
        }
        EventDetail::Access {
            method,
            query,
            status_code,
            kong_initiated,
        } => {
            body.method = Some(method.into());
            body.query = Some(query.into());
            body.status_code = Some(*status_code);
            body.kong_initiated = *kong_initiated;
        }
    }
    serde_json::to_writer(out, &body).expect("serializing plain strings into a Vec cannot fail");
}

/// The fields a body holds, ready to be completed with the row's scope and time.
pub struct DecodedBody {
    pub principal_id: Option<String>,
    pub principal_name: Option<String>,
    pub actor_id: Option<String>,
    pub client_ip: Option<String>,
    pub uri: Option<String>,
    pub user_agent: Option<String>,
    pub trace_id: Option<String>,
    pub detail: EventDetail,
}

pub fn decode_body(kind: i64, bytes: &[u8]) -> Result<DecodedBody, String> {
    let body: Body<'_> = serde_json::from_slice(bytes).map_err(|e| e.to_string())?;
    let kind = kind_from_code(kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    let missing = |field: &str| format!("{kind} body lacks `{field}`");
    let owned =
        |s: Option<Cow<'_, str>>, field: &str| s.map(Cow::into_owned).ok_or_else(|| missing(field));
    let detail = match kind {
        EventType::Authentication => EventDetail::Authentication {
            successful: body.successful.ok_or_else(|| missing("successful"))?,
            outcome: body
                .outcome
                .as_deref()
                .and_then(AuthenticationOutcome::parse)
                .ok_or_else(|| missing("outcome"))?,
            authentication_type: body
                .authentication_type
                .as_deref()
                .and_then(AuthenticationType::parse)
                .ok_or_else(|| missing("authentication_type"))?,
        },
        EventType::Authorization => EventDetail::Authorization {
            service: owned(body.service, "service")?,
            resource: owned(body.resource, "resource")?,
            action: owned(body.action, "action")?,
            granted: body.granted.ok_or_else(|| missing("granted"))?,
            kong_initiated: body.kong_initiated,
        },
        EventType::Access => EventDetail::Access {
            method: owned(body.method, "method")?,
            query: owned(body.query, "query")?,
            status_code: body.status_code.ok_or_else(|| missing("status_code"))?,
            kong_initiated: body.kong_initiated,
        },
    };
    let own = |s: Option<Cow<'_, str>>| s.map(Cow::into_owned);
    Ok(DecodedBody {
        principal_id: own(body.principal_id),
        principal_name: own(body.principal_name),
        actor_id: own(body.actor_id),
        client_ip: own(body.client_ip),
        uri: own(body.uri),
        user_agent: own(body.user_agent),
        trace_id: own(body.trace_id),
        detail,
    })
}

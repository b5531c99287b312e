//! The stored form of an event's body: every field that is not a column (scope, time, type),
//! as compact JSON with one- and two-letter keys.
//!
//! This is a storage format, not a wire format: only the service's store uses it, and it must
//! only ever be extended with new optional keys so that rows written by an older version still
//! decode. It lives in the core, beside the event model, because it is pure and because the
//! delivery benchmarks measure decoding a stored event as delivery does; every backend shares
//! it.

use std::borrow::Cow;

use crate::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, EventType, OrgId, PortalId,
    Region, Timestamp,
};
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
            outcome,
            authentication_type,
        } => {
            // Written although it is read from `outcome`: a binary that still reads it can
            // read rows this one writes.
            body.successful = Some(outcome.is_success());
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

/// Where and when a stored event happened: the columns of its row and its scope, which the
/// body does not repeat.
#[derive(Debug, Clone, Copy)]
pub struct Row<'a> {
    pub org_id: OrgId,
    pub region: &'a Region,
    pub portal_id: Option<PortalId>,
    pub ts: Timestamp,
    /// The `kind` column ([`kind_code`]).
    pub kind: i64,
}

/// The event a row holds: its columns, completed by its `body`.
pub fn decode_event(row: Row<'_>, body: &[u8]) -> Result<Event, String> {
    let body: Body<'_> = serde_json::from_slice(body).map_err(|e| e.to_string())?;
    let kind = row.kind;
    let kind = kind_from_code(kind).ok_or_else(|| format!("unknown kind {kind}"))?;
    let missing = |field: &str| format!("{kind} body lacks `{field}`");
    let owned =
        |s: Option<Cow<'_, str>>, field: &str| s.map(Cow::into_owned).ok_or_else(|| missing(field));
    let detail = match kind {
        EventType::Authentication => EventDetail::Authentication {
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
    Ok(Event {
        ts: row.ts,
        org_id: row.org_id,
        region: row.region.clone(),
        portal_id: row.portal_id,
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

#[cfg(test)]
mod tests {
    use super::*;

    fn row(event: &Event) -> Row<'_> {
        Row {
            org_id: event.org_id,
            region: &event.region,
            portal_id: event.portal_id,
            ts: event.ts,
            kind: kind_code(event.event_type()),
        }
    }

    fn decode(kind: i64, body: &[u8]) -> Result<Event, String> {
        let region = Region::parse("us").unwrap();
        let row = Row {
            org_id: OrgId::nil(),
            region: &region,
            portal_id: None,
            ts: Timestamp::from_millis(0),
            kind,
        };
        decode_event(row, body)
    }

    fn event(detail: EventDetail) -> Event {
        Event {
            ts: Timestamp::from_millis(1_700_000_000_000),
            org_id: OrgId::nil(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: Some("a3d2699a-0ed3-4417-bb10-d8e74a1513a4".into()),
            principal_name: Some("Ada \"Countess\" Lovelace".into()),
            actor_id: None,
            client_ip: Some("172.71.232.22".into()),
            uri: Some("/v2/x?y=1".into()),
            user_agent: None,
            trace_id: Some("3360194145499877252".into()),
            detail,
        }
    }

    fn details() -> [EventDetail; 3] {
        [
            EventDetail::Authentication {
                outcome: AuthenticationOutcome::ALL[1],
                authentication_type: AuthenticationType::ALL[0],
            },
            EventDetail::Authorization {
                service: "konnect".into(),
                resource: "control-planes".into(),
                action: "list".into(),
                granted: true,
                kong_initiated: Some(false),
            },
            EventDetail::Access {
                method: "POST".into(),
                query: "{}".into(),
                status_code: 201,
                kong_initiated: None,
            },
        ]
    }

    #[test]
    fn every_kind_round_trips() {
        for detail in details() {
            let event = event(detail);
            let mut body = Vec::new();
            encode_body(&event, &mut body);
            assert_eq!(decode_event(row(&event), &body).unwrap(), event);
        }
    }

    /// Rows already on disk must keep decoding: these bytes are what this version writes, and
    /// a change that stops them decoding breaks every existing installation.
    #[test]
    fn bodies_written_by_this_version_decode() {
        let access = br#"{"p":"a","ip":"10.0.0.1","t":"7","m":"GET","q":"{}","sc":200}"#;
        let decoded = decode(2, access).unwrap();
        assert_eq!(decoded.trace_id.as_deref(), Some("7"));
        assert!(matches!(
            decoded.detail,
            EventDetail::Access {
                status_code: 200,
                ..
            }
        ));
        let authz = br#"{"s":"konnect","r":"portals","a":"get","g":false,"ki":true}"#;
        assert!(matches!(
            decode(1, authz).unwrap().detail,
            EventDetail::Authorization {
                granted: false,
                kong_initiated: Some(true),
                ..
            }
        ));
    }

    #[test]
    fn a_body_missing_its_kinds_fields_or_of_an_unknown_kind_is_an_error() {
        assert!(decode(2, br#"{"m":"GET"}"#).unwrap_err().contains("query"));
        assert!(decode(9, b"{}").unwrap_err().contains("unknown kind"));
        assert!(decode(0, b"not json").is_err());
    }
}

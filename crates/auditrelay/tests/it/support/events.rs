//! Sample events in the ingest shape (Konnect's v3 pull API entries without `signature`).

use std::collections::HashMap;

use auditrelay_core::format::parse_line;
use auditrelay_core::{Event, EventDetail, OrgId, PortalId, Region, Timestamp};
use serde_json::{Value, json};

use super::receiver::ReceivedRequest;

/// An authorization event of `org` in `us`, as the store takes it (for tests that append to a
/// store directly, bypassing ingest: events older than ingest accepts, several stores at once).
pub fn stored_authorization(org: OrgId, ts: Timestamp, trace_id: &str) -> Event {
    Event {
        ts,
        org_id: org,
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: Some("p".into()),
        principal_name: None,
        actor_id: None,
        client_ip: None,
        uri: None,
        user_agent: None,
        trace_id: Some(trace_id.into()),
        detail: EventDetail::Authorization {
            service: "s".into(),
            resource: "r".into(),
            action: "a".into(),
            granted: true,
            kong_initiated: None,
        },
    }
}

pub fn authorization(ts: Timestamp, trace_id: &str) -> Value {
    json!({
        "type": "authorization",
        "ts": ts.to_rfc3339_millis(),
        "service": "konnect",
        "resource": "control-planes",
        "action": "list",
        "granted": true,
        "principal_id": "eb999f01-5976-4f4b-9fbc-dd5d514bd675",
        "client_ip": "127.0.0.6",
        "trace_id": trace_id,
        "user_agent": "grpc-node-js/1.12.4",
    })
}

pub fn access(ts: Timestamp, trace_id: &str) -> Value {
    json!({
        "type": "gateway_access",
        "ts": ts.to_rfc3339_millis(),
        "principal_id": "87655c36-8d63-48fe-9a1e-53b28dfbc19b",
        "actor_id": "",
        "client_ip": "127.0.0.6",
        "trace_id": trace_id,
        "user_agent": "Mozilla/5.0",
        "method": "POST",
        "uri": "/konnect-api/api/control_planes",
        "query": "{}",
        "status_code": 201,
        "kong_initiated": false,
    })
}

pub fn portal_login(ts: Timestamp, portal: PortalId, trace_id: &str) -> Value {
    json!({
        "type": "authentication",
        "ts": ts.to_rfc3339_millis(),
        "successful": true,
        "outcome": "success",
        "authentication_type": "basic",
        "principal_id": "a3d2699a-0ed3-4417-bb10-d8e74a1513a4",
        "client_ip": "172.71.232.22",
        "uri": "/api/v2/developer/authenticate",
        "user_agent": "",
        "trace_id": trace_id,
        "portal_id": portal.to_string(),
    })
}

/// A failed org login (wrong password): an authentication event without a portal.
pub fn authentication(ts: Timestamp, trace_id: &str) -> Value {
    json!({
        "type": "authentication",
        "ts": ts.to_rfc3339_millis(),
        "successful": false,
        "outcome": "invalid_password",
        "authentication_type": "basic",
        "principal_id": "b1b0b7a4-3f5a-4a8e-9f3e-1f2a3b4c5d6e",
        "client_ip": "198.51.100.4",
        "uri": "/api/v2/authenticate",
        "user_agent": "curl/8.7",
        "trace_id": trace_id,
    })
}

pub fn ndjson(events: &[Value]) -> String {
    events.iter().map(|e| format!("{e}\n")).collect()
}

/// The trace id a delivered line carries ("" for none).
pub fn trace_of(line: &str) -> String {
    let parsed = parse_line(line.as_bytes()).unwrap_or_else(|e| panic!("{e}: {line}"));
    parsed
        .record
        .extensions
        .iter()
        .find(|e| e.key == "trace_id")
        .map(|e| match &e.value {
            auditrelay_core::format::Value::Str(s) => s.clone(),
            other => panic!("trace_id {other:?}"),
        })
        .unwrap_or_default()
}

/// How often each trace id arrived in accepted requests.
pub fn trace_counts(requests: &[ReceivedRequest]) -> HashMap<String, usize> {
    let mut counts = HashMap::new();
    for line in requests
        .iter()
        .filter(|r| r.accepted())
        .flat_map(|r| &r.lines)
    {
        *counts.entry(trace_of(line)).or_default() += 1;
    }
    counts
}

/// Waits until every one of `traces` arrived, in accepted requests, at least `times` times.
pub async fn wait_until_delivered(
    receiver: &super::receiver::TestReceiver,
    traces: &[String],
    times: usize,
) {
    receiver
        .wait_until(
            std::time::Duration::from_secs(90),
            "every event delivered",
            |requests| {
                let counts = trace_counts(requests);
                traces
                    .iter()
                    .all(|t| counts.get(t).copied().unwrap_or(0) >= times)
                    .then_some(())
            },
        )
        .await;
}

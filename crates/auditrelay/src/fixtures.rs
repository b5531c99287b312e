//! Events for the library's own unit tests, made one way: each test changes only what it is
//! about (a time, an org, a long field) with struct update syntax.

use auditrelay_core::{Event, EventDetail, OrgId, Region, Timestamp};

/// An authorization event of `org_id`'s org scope in `us`, at `ts`, traced as `trace_id`.
pub(crate) fn event(org_id: OrgId, ts: Timestamp, trace_id: String) -> Event {
    Event {
        ts,
        org_id,
        region: Region::parse("us").expect("a region"),
        portal_id: None,
        principal_id: Some("p".into()),
        principal_name: None,
        actor_id: None,
        client_ip: None,
        uri: None,
        user_agent: None,
        trace_id: Some(trace_id),
        detail: EventDetail::Authorization {
            service: "s".into(),
            resource: "r".into(),
            action: "a".into(),
            granted: true,
            kong_initiated: None,
        },
    }
}

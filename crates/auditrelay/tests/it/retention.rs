//! Retention: the pruner deletes events older than the window, and only those.

use auditrelay::jobs::retention;
use auditrelay_core::{Event, EventDetail, Region, Timestamp};

use crate::support::{TestApp, now};

fn event(org: auditrelay_core::OrgId, ts: Timestamp, trace: &str) -> Event {
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
        trace_id: Some(trace.into()),
        detail: EventDetail::Authorization {
            service: "s".into(),
            resource: "r".into(),
            action: "a".into(),
            granted: true,
            kong_initiated: None,
        },
    }
}

#[tokio::test]
async fn prunes_expired_events_in_chunks() {
    let app = TestApp::spawn_with(|c| c.retention.prune_chunk = 7).await;
    let config = app
        .server
        .as_ref()
        .unwrap()
        .state()
        .config
        .retention
        .clone();
    let day = 86_400_000;
    // Stored directly: ingest would rightly refuse events this old.
    let old: Vec<Event> = (0..30)
        .map(|i| event(app.org(), now().saturating_sub_millis(8 * day + i), "old"))
        .collect();
    let fresh: Vec<Event> = (0..5)
        .map(|i| event(app.org(), now().saturating_sub_millis(6 * day + i), "fresh"))
        .collect();
    app.store().append_events(old).await.unwrap();
    app.store().append_events(fresh).await.unwrap();

    let deleted = retention::prune_once(app.store(), &config).await.unwrap();
    assert_eq!(deleted, 30, "all expired events, over several chunks of 7");
    let left = app.stored("us", None, None).await;
    assert_eq!(
        left.iter()
            .filter(|e| e.event.trace_id.as_deref() == Some("fresh"))
            .count(),
        5
    );
    assert!(
        !left
            .iter()
            .any(|e| e.event.trace_id.as_deref() == Some("old"))
    );
    assert_eq!(
        retention::prune_once(app.store(), &config).await.unwrap(),
        0
    );
    app.stop().await;
}

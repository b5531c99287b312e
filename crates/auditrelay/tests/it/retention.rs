//! Retention: the pruner deletes events older than the window, and only those.

use auditrelay::config::Config;
use auditrelay::jobs::retention;
use auditrelay::store::{EventQuery, Store};
use auditrelay_core::{Event, EventDetail, OrgId, Region, Timestamp};

use crate::support::now;

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

/// On a store of its own: a server's background pruner would race the test's pass.
#[tokio::test]
async fn prunes_expired_events_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(dir.path()).unwrap();
    config.retention.prune_chunk = 7;
    let store = Store::open(&config).await.unwrap();
    let org = OrgId::new_v4();
    let day = 86_400_000;
    // Stored directly: ingest would rightly refuse events this old.
    let old: Vec<Event> = (0..30)
        .map(|i| event(org, now().saturating_sub_millis(8 * day + i), "old"))
        .collect();
    let fresh: Vec<Event> = (0..5)
        .map(|i| event(org, now().saturating_sub_millis(6 * day + i), "fresh"))
        .collect();
    store.append_events(old).await.unwrap();
    store.append_events(fresh).await.unwrap();

    let deleted = retention::prune_once(&store, &config.retention)
        .await
        .unwrap();
    assert_eq!(deleted, 30, "all expired events, over several chunks of 7");
    let left = store
        .list_events(&EventQuery {
            org_id: org,
            region: Region::parse("us").unwrap(),
            portal_id: None,
            ts_from: Timestamp::from_millis(0),
            ts_to: now(),
            event_type: None,
            after: None,
            through_seq: None,
            limit: 100,
        })
        .await
        .unwrap();
    let traces: Vec<_> = left.iter().map(|e| e.event.trace_id.as_deref()).collect();
    assert_eq!(
        traces,
        vec![Some("fresh"); 5],
        "only the fresh events are left"
    );
    assert_eq!(
        retention::prune_once(&store, &config.retention)
            .await
            .unwrap(),
        0
    );
}

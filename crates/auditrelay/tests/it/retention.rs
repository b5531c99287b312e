//! Retention: the pruner deletes events older than the window, and only those, except the
//! newest event of all, which waits for a newer one; what it deleted no longer counts in a
//! webhook's backlog.

use auditrelay::config::Config;
use auditrelay::jobs::retention;
use auditrelay::store::{EventQuery, Scope, Store};
use auditrelay_core::{Event, OrgId, Region, Timestamp};

use crate::support::events::stored_authorization;
use crate::support::{fence, now};

const DAY_MS: i64 = 86_400_000;

/// A store of its own in `dir`, and the `us` scope of a new org.
async fn own_store(dir: &std::path::Path) -> (Config, Store, Scope) {
    let config = Config::for_data_dir(dir).unwrap();
    let store = Store::open(&config).await.unwrap();
    let scope = Scope {
        org_id: OrgId::new_v4(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
    };
    (config, store, scope)
}

/// On a store of its own: a server's background pruner would race the test's pass.
#[tokio::test]
async fn prunes_expired_events_in_chunks() {
    let dir = tempfile::tempdir().unwrap();
    let mut config = Config::for_data_dir(dir.path()).unwrap();
    config.retention.prune_chunk = 7;
    let store = Store::open(&config).await.unwrap();
    let org = OrgId::new_v4();
    // Stored directly: ingest would rightly refuse events this old.
    let old: Vec<Event> = (0..30)
        .map(|i| stored_authorization(org, now().saturating_sub_millis(8 * DAY_MS + i), "old"))
        .collect();
    let fresh: Vec<Event> = (0..5)
        .map(|i| stored_authorization(org, now().saturating_sub_millis(6 * DAY_MS + i), "fresh"))
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

/// A webhook's backlog, as the store measures it from what changed, equals counting afresh on
/// a real SQLite file: over several 16,384-`seq` buckets with another scope's events in between,
/// with the cursor moving into a bucket, an event arriving late, and retention deleting some.
#[tokio::test]
async fn a_webhooks_backlog_stays_exact_through_delivery_late_events_and_retention() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store, scope) = own_store(dir.path()).await;
    let (org, other) = (scope.org_id, OrgId::new_v4());
    // Every 1,000th event of the org is past the window (stored directly: ingest refuses them).
    let mut events = Vec::new();
    for i in 0..24_000 {
        let age = if i % 1000 == 0 {
            8 * DAY_MS
        } else {
            DAY_MS - i
        };
        events.push(stored_authorization(
            org,
            now().saturating_sub_millis(age),
            "org",
        ));
        events.push(stored_authorization(other, now(), "other"));
    }
    store.append_events(events).await.unwrap();
    let afresh = async |after: i64| {
        let events = store
            .events_to_deliver(&scope, after, None, u32::MAX)
            .await
            .unwrap();
        let oldest = events.iter().map(|e| e.event.ts).min();
        (events.len() as u64, oldest, events)
    };
    let (count, oldest, all) = afresh(0).await;
    assert_eq!(count, 24_000);
    assert_eq!(store.undelivered(&scope, 0).await.unwrap(), (count, oldest));

    // Delivered up to the middle of a bucket.
    let cursor = all[10_000].seq;
    let (count, oldest, _) = afresh(cursor).await;
    assert_eq!(
        store.undelivered(&scope, cursor).await.unwrap(),
        (count, oldest)
    );

    // More arrive, one of them late: six days old, newer than the expired ones.
    let late = now().saturating_sub_millis(6 * DAY_MS);
    let mut more: Vec<Event> = (0..3_000)
        .map(|_| stored_authorization(org, now(), "more"))
        .collect();
    more[1_500] = stored_authorization(org, late, "late");
    store.append_events(more).await.unwrap();
    let (count, oldest, _) = afresh(cursor).await;
    assert_eq!(count, 16_999);
    assert_eq!(
        store.undelivered(&scope, cursor).await.unwrap(),
        (count, oldest)
    );

    // Retention deletes the expired ones: the late event is the oldest left.
    let deleted = retention::prune_once(&store, &config.retention)
        .await
        .unwrap();
    assert_eq!(deleted, 24);
    let (count, oldest, _) = afresh(cursor).await;
    assert_eq!(oldest, Some(late));
    assert_eq!(
        store.undelivered(&scope, cursor).await.unwrap(),
        (count, oldest)
    );

    // Delivered everything.
    let (_, _, all) = afresh(0).await;
    let head = all.last().unwrap().seq;
    assert_eq!(store.undelivered(&scope, head).await.unwrap(), (0, None));
}

/// A backlog measurement dropped half way, as when a status request's client goes away, leaves
/// the next measurement exact: time-outs of 1 to 32 ms cut a fresh summary's read of 40,000
/// events at different points.
#[tokio::test]
async fn a_backlog_measurement_dropped_half_way_leaves_the_next_one_exact() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store, scope) = own_store(dir.path()).await;
    let org = scope.org_id;
    let events = (0..40_000)
        .map(|i| stored_authorization(org, now().saturating_sub_millis(i), "org"))
        .collect();
    store.append_events(events).await.unwrap();
    let all = store
        .events_to_deliver(&scope, 0, None, u32::MAX)
        .await
        .unwrap();
    let cursor = all[100].seq;
    let waiting = &all[101..];
    let expected = (
        waiting.len() as u64,
        waiting.iter().map(|e| e.event.ts).min(),
    );
    for ms in [1, 2, 4, 8, 16, 32] {
        // Deleting the (absent) webhook drops its summary: the next measurement reads it all.
        store
            .delete_webhooks(std::slice::from_ref(&scope))
            .await
            .unwrap();
        let cut = tokio::time::timeout(
            std::time::Duration::from_millis(ms),
            store.undelivered(&scope, cursor),
        )
        .await;
        assert_eq!(
            store.undelivered(&scope, cursor).await.unwrap(),
            expected,
            "after a measurement cut at {ms} ms (finished: {})",
            cut.is_ok()
        );
    }
}

/// The newest event of all outlives its window until a newer one arrives: deleting it would
/// let SQLite hand its `seq` to the next event, which a webhook whose cursor had reached it
/// would then never deliver.
#[tokio::test]
async fn the_newest_event_is_kept_until_a_newer_one_so_no_seq_is_handed_out_twice() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store, scope) = own_store(dir.path()).await;
    let org = scope.org_id;
    let seqs = async || -> Vec<i64> {
        let events = store
            .events_to_deliver(&scope, 0, None, u32::MAX)
            .await
            .unwrap();
        events.iter().map(|e| e.seq).collect()
    };
    store
        .append_events(vec![stored_authorization(org, now(), "fresh")])
        .await
        .unwrap();
    // Stored directly, as the newest row: ingest takes events up to the window's edge, which
    // expire moments later.
    store
        .append_events(vec![stored_authorization(
            org,
            now().saturating_sub_millis(8 * DAY_MS),
            "old",
        )])
        .await
        .unwrap();
    let before = seqs().await;
    let prune = async || {
        retention::prune_once(&store, &config.retention)
            .await
            .unwrap()
    };
    assert_eq!(prune().await, 0, "the expired event is the newest: kept");
    assert_eq!(seqs().await, before);

    store
        .append_events(vec![stored_authorization(org, now(), "next")])
        .await
        .unwrap();
    let with_next = seqs().await;
    assert!(with_next[2] > before[1], "{with_next:?}");
    assert_eq!(
        prune().await,
        1,
        "a newer event arrived: the expired one goes"
    );
    store
        .append_events(vec![stored_authorization(org, now(), "after")])
        .await
        .unwrap();
    let after = seqs().await;
    assert_eq!(after.len(), 3, "{after:?}");
    assert!(
        after[2] > with_next[2],
        "no seq handed out twice: {after:?}"
    );
}

/// A refused event leaves the refused list with the event: it could not be sent again.
#[tokio::test]
async fn refused_events_go_with_their_events() {
    use auditrelay::store::{PageQuery, RefusedEvent, Seek};
    let dir = tempfile::tempdir().unwrap();
    let (config, store, scope) = own_store(dir.path()).await;
    let old = stored_authorization(scope.org_id, now().saturating_sub_millis(8 * DAY_MS), "old");
    let fresh = stored_authorization(scope.org_id, now(), "fresh");
    store.append_events(vec![old, fresh]).await.unwrap();
    let seqs: Vec<i64> = store
        .events_to_deliver(&scope, 0, None, 10)
        .await
        .unwrap()
        .iter()
        .map(|e| e.seq)
        .collect();
    let refused: Vec<RefusedEvent> = seqs
        .iter()
        .map(|seq| RefusedEvent {
            seq: *seq,
            event_ts: None,
            refused_at: now(),
            endpoint: "https://siem.example/".into(),
            reason: "mapping".into(),
            replay_id: None,
        })
        .collect();
    let fenced = fence(&store).await;
    store
        .record_refused(&fenced, &scope, &refused)
        .await
        .unwrap();
    assert_eq!(store.count_refused(&scope).await.unwrap(), 2);

    let deleted = retention::prune_once(&store, &config.retention)
        .await
        .unwrap();
    assert_eq!(deleted, 1);
    let page = PageQuery {
        seek: Seek::Forward(None),
        limit: 10,
    };
    let left = store.list_refused(&scope, &page).await.unwrap();
    assert_eq!(left.len(), 1);
    assert_eq!(left[0].seq, seqs[1], "the fresh event's refusal stays");
    assert!(left[0].event_ts.is_some());
}

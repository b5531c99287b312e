//! Several nodes on one PostgreSQL (DECISIONS.md S19): what must hold however many
//! `auditrelay serve` processes share the database.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use auditrelay::store::Scope;
use auditrelay_core::{Event, EventDetail, OrgId, Region};

use crate::support::{now, postgres};

fn event(org: OrgId, trace: String) -> Event {
    Event {
        ts: now(),
        org_id: org,
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: Some("p".into()),
        principal_name: None,
        actor_id: None,
        client_ip: None,
        uri: None,
        user_agent: None,
        trace_id: Some(trace),
        detail: EventDetail::Authorization {
            service: "s".into(),
            resource: "r".into(),
            action: "a".into(),
            granted: true,
            kong_initiated: None,
        },
    }
}

/// Three nodes append to one scope at once, four writers each, while a reader follows the
/// scope with a delivery cursor (`seq` > cursor, then the cursor moves to the last `seq` read).
/// The reader must see every appended event, once, in an order that never goes back: with
/// `seq` drawn before commit, a later `seq` that commits first would move the cursor past an
/// earlier one for good.
#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn a_cursor_following_appends_from_three_nodes_misses_none() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let nodes = [
        Arc::new(database.open().await),
        Arc::new(database.open().await),
        Arc::new(database.open().await),
    ];
    let org = OrgId::new_v4();
    let scope = Scope {
        org_id: org,
        region: Region::parse("us").unwrap(),
        portal_id: None,
    };
    const WRITERS_PER_NODE: usize = 4;
    const APPENDS: usize = 150;

    let writing = Arc::new(AtomicBool::new(true));
    let mut writers = Vec::new();
    for (n, node) in nodes.iter().enumerate() {
        for w in 0..WRITERS_PER_NODE {
            let node = Arc::clone(node);
            writers.push(tokio::spawn(async move {
                let mut appended = Vec::new();
                for round in 0..APPENDS {
                    // 1 to 20 events an append, varying between writers and rounds.
                    let count = 1 + (w * 7 + round * 3 + n) % 20;
                    let batch: Vec<Event> = (0..count)
                        .map(|i| event(org, format!("n{n}-w{w}-r{round}-{i}")))
                        .collect();
                    appended.extend(batch.iter().map(|e| e.trace_id.clone().unwrap()));
                    node.append_events(&batch).await.unwrap();
                }
                appended
            }));
        }
    }
    let reader = {
        let node = Arc::clone(&nodes[0]);
        let scope = scope.clone();
        let writing = Arc::clone(&writing);
        tokio::spawn(async move {
            let (mut cursor, mut seen) = (0, Vec::new());
            loop {
                // Read before looking at the flag: a read that began after the writers
                // finished and finds nothing has seen everything.
                let done = !writing.load(Ordering::SeqCst);
                let events = node
                    .events_to_deliver(&scope, cursor, None, 50)
                    .await
                    .unwrap();
                if events.is_empty() && done {
                    return seen;
                }
                for stored in events {
                    assert!(
                        stored.seq > cursor,
                        "the order went back: {} after {cursor}",
                        stored.seq
                    );
                    cursor = stored.seq;
                    seen.push(stored.event.trace_id.unwrap());
                }
            }
        })
    };
    let mut appended = Vec::new();
    for writer in writers {
        appended.extend(writer.await.unwrap());
    }
    writing.store(false, Ordering::SeqCst);
    let seen = reader.await.unwrap();

    let expected = nodes.len() * WRITERS_PER_NODE * APPENDS;
    assert!(
        appended.len() > expected,
        "every append wrote at least one event"
    );
    let distinct: HashSet<&String> = seen.iter().collect();
    assert_eq!(distinct.len(), seen.len(), "the reader saw an event twice");
    let missed: Vec<&String> = appended.iter().filter(|t| !distinct.contains(t)).collect();
    assert!(
        missed.is_empty(),
        "the cursor passed {} of {} events that committed after it moved, e.g. {:?}",
        missed.len(),
        appended.len(),
        &missed[..missed.len().min(5)]
    );
    assert_eq!(seen.len(), appended.len());
}

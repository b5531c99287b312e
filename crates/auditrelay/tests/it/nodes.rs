//! Several nodes on one PostgreSQL (DECISIONS.md S19): what must hold however many
//! `auditrelay serve` processes share the database.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditrelay::app;
use auditrelay::config::Config;
use auditrelay::store::Scope;
use auditrelay_core::{Event, EventDetail, OrgId, Region, Role};
use reqwest::StatusCode;

use crate::support::events::{authorization, ndjson};
use crate::support::postgres::OwnCluster;
use crate::support::{TestApp, eventually, now, postgres};

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

/// Until lanes and replay jobs have one owner each, a second `serve` on a database another
/// process serves from is refused at start, saying why, instead of delivering everything twice;
/// once the first stops, another may start.
#[tokio::test]
async fn a_second_node_is_refused_while_one_serves() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let node = |dir: &std::path::Path| {
        let mut config = Config::for_data_dir(dir).unwrap();
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        // The test cluster trusts loopback and ignores it: a password only to see it masked.
        let with_password = database.url.replacen("postgres@", "postgres:s3cret-pw@", 1);
        config.store.url = with_password.parse().unwrap();
        config
    };
    let (one, two) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let first = app::start(node(one.path())).await.unwrap();
    let refused = app::start(node(two.path())).await.err().expect("refused");
    let message = format!("{refused:#}");
    assert!(
        message
            .contains("Another `auditrelay serve` is already serving from the PostgreSQL database"),
        "{message}"
    );
    assert!(
        !message.contains("postgres://postgres@"),
        "no credentials: {message}"
    );
    first.server.stop().await.unwrap();
    let second = app::start(node(two.path())).await.unwrap();
    second.server.stop().await.unwrap();
}

/// The store's behaviour on PostgreSQL: the modules of this suite that exercise the store
/// through the API (configuration, ingest, pull, delivery, replay, retention, refused events,
/// the delivery log), run again by this binary with every test server on a PostgreSQL database
/// of its own (`AUDITRELAY_TEST_STORE=postgres`). `cargo test` on its own runs them on SQLite.
#[tokio::test]
async fn the_store_behaviour_tests_pass_on_postgresql() {
    if std::env::var_os("AUDITRELAY_TEST_STORE").is_some() {
        return; // Already the run on PostgreSQL.
    }
    if postgres::database().await.is_none() {
        return;
    }
    const MODULES: &[&str] = &[
        "auth::",
        "delivery::",
        "delivery_log::",
        "destinations::",
        "ingest::",
        "kinds::",
        "portals::",
        "pull::",
        "regions::",
        "replay::",
        "retention::",
        "self_audit::",
        "storage::",
        "webhooks::",
    ];
    let out = tokio::process::Command::new(std::env::current_exe().unwrap())
        .args(MODULES)
        .env("AUDITRELAY_TEST_STORE", "postgres")
        .output()
        .await
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    let summary = stdout
        .lines()
        .rfind(|l| l.starts_with("test result:"))
        .unwrap_or("");
    assert!(
        out.status.success(),
        "on PostgreSQL: {summary}\n{stdout}\n{}",
        String::from_utf8_lossy(&out.stderr)
    );
    // The filters matched the modules: a rename must not leave this run empty.
    let passed: u32 = summary
        .split_whitespace()
        .skip_while(|w| *w != "ok.")
        .nth(1)
        .and_then(|n| n.parse().ok())
        .unwrap_or(0);
    assert!(
        passed >= 80,
        "only {passed} store tests ran on PostgreSQL: {summary}"
    );
}

/// `store.url` may require TLS with the server's certificate checked (`sslmode=verify-full`):
/// against the authority that signed it, the store opens; against any other (here the public
/// roots built in), it does not.
#[tokio::test]
async fn tls_to_postgresql_checks_the_server_certificate() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let ca = database.ca.display();
    let verified = format!("{}?sslmode=verify-full&sslrootcert={ca}", database.url);
    let store = auditrelay::store::PgStore::open(&verified).await.unwrap();
    store.close().await;

    let unverifiable = format!("{}?sslmode=verify-full", database.url);
    let refused = auditrelay::store::PgStore::open(&unverifiable).await;
    assert!(
        refused.is_err(),
        "a certificate no trusted authority signed was accepted"
    );
}

/// PostgreSQL stopped mid-ingest, as by a crash, then started again: while it is down, ingest
/// answers 503 (never 202, never 500) and `/readyz` says the database cannot be reached; the
/// server finds it again by itself; every event acknowledged with 202 is there, once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgresql_restarted_mid_ingest_loses_nothing_acknowledged() {
    let Some(cluster) = OwnCluster::start().await else {
        return;
    };
    let url = cluster.url();
    let app = TestApp::spawn_with(|c| c.store.url = url.parse().unwrap()).await;
    let producer = app.token(Role::EventProducer, None).await;
    let mut acknowledged = Vec::new();
    let mut batch_no = 0;
    let ingest = async |batch_no: &mut u32| {
        *batch_no += 1;
        let traces: Vec<String> = (0..20).map(|i| format!("b{batch_no}-{i}")).collect();
        let events: Vec<_> = traces.iter().map(|t| authorization(now(), t)).collect();
        let response = app
            .ingest_ndjson("/v1/events", &producer, ndjson(&events))
            .await;
        (response.status(), traces)
    };
    for _ in 0..10 {
        let (status, traces) = ingest(&mut batch_no).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        acknowledged.extend(traces);
    }

    cluster.stop();
    let mut refused = 0;
    for _ in 0..3 {
        let (status, traces) = ingest(&mut batch_no).await;
        match status {
            StatusCode::ACCEPTED => acknowledged.extend(traces),
            StatusCode::SERVICE_UNAVAILABLE => refused += 1,
            other => panic!("ingest with PostgreSQL down answered {other}"),
        }
    }
    assert!(
        refused > 0,
        "every request was acknowledged with the database down"
    );
    let ready = app.client.get(app.url("/readyz")).send().await.unwrap();
    assert_eq!(ready.status(), StatusCode::SERVICE_UNAVAILABLE);
    let problem: serde_json::Value = ready.json().await.unwrap();
    let detail = problem["detail"].as_str().unwrap_or_default().to_owned();
    assert!(detail.contains("did not answer in time"), "{detail}");

    cluster.start_again().await;
    // The server finds it again by itself: readiness, then ingest.
    eventually(Duration::from_secs(30), || async {
        let ready = app.client.get(app.url("/readyz")).send().await.ok()?;
        (ready.status() == StatusCode::OK).then_some(())
    })
    .await;
    for _ in 0..5 {
        let (status, traces) = ingest(&mut batch_no).await;
        assert_eq!(status, StatusCode::ACCEPTED);
        acknowledged.extend(traces);
    }
    let stored: Vec<String> = app
        .stored("us", None, None)
        .await
        .into_iter()
        .filter_map(|e| e.event.trace_id)
        .filter(|t| t.starts_with('b'))
        .collect();
    let distinct: HashSet<&String> = stored.iter().collect();
    assert_eq!(distinct.len(), stored.len(), "an event stored twice");
    let lost: Vec<&String> = acknowledged
        .iter()
        .filter(|t| !distinct.contains(t))
        .collect();
    assert!(lost.is_empty(), "acknowledged, then lost: {lost:?}");
    app.stop().await;
}

/// When the answer to an append's `COMMIT` is lost with its connection, the append asks what
/// became of its transaction before it answers the client: committed (the events are stored;
/// saying otherwise would have them sent again as new events), rolled back, or still in
/// progress until it ends.
#[tokio::test]
async fn the_fate_of_a_transaction_whose_commit_answer_was_lost_is_found() {
    use sqlx::Executor as _;
    let Some(database) = postgres::database().await else {
        return;
    };
    let store = database.open().await;
    let mut conn = database.connect().await;
    let xid = async |conn: &mut sqlx::postgres::PgConnection| -> String {
        conn.execute("BEGIN").await.unwrap();
        sqlx::query_scalar("SELECT pg_current_xact_id()::text")
            .fetch_one(&mut *conn)
            .await
            .unwrap()
    };

    let committed = xid(&mut conn).await;
    conn.execute("COMMIT").await.unwrap();
    assert_eq!(store.commit_outcome(&committed).await, Some(true));

    let rolled_back = xid(&mut conn).await;
    conn.execute("ROLLBACK").await.unwrap();
    assert_eq!(store.commit_outcome(&rolled_back).await, Some(false));

    // In progress when asked, committed while the store keeps asking: the answer waits for
    // the commit. The commit comes once the store's question is seen running in the server.
    let pending = xid(&mut conn).await;
    let store = std::sync::Arc::new(store);
    let asking = tokio::spawn({
        let (store, pending) = (std::sync::Arc::clone(&store), pending.clone());
        async move { store.commit_outcome(&pending).await }
    });
    let watcher = sqlx::postgres::PgPool::connect(&database.url)
        .await
        .unwrap();
    eventually(Duration::from_secs(10), || {
        let watcher = &watcher;
        async move {
            let asked: i64 = sqlx::query_scalar(
                "SELECT count(*) FROM pg_stat_activity WHERE query LIKE '%pg_xact_status%'
                   AND pid <> pg_backend_pid()",
            )
            .fetch_one(watcher)
            .await
            .ok()?;
            (asked > 0).then_some(())
        }
    })
    .await;
    assert!(
        !asking.is_finished(),
        "answered while the transaction was still open"
    );
    conn.execute("COMMIT").await.unwrap();
    assert_eq!(asking.await.unwrap(), Some(true));
    store.close().await;
}

/// The serving lock lives as long as its connection. When the server ends that connection (as
/// a restart or a network cut would), the serving process takes the lock again on a new one,
/// so a second node is still refused.
#[tokio::test]
async fn the_serving_lock_is_taken_again_after_its_connection_is_lost() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let first = database.open().await;
    assert!(first.claim_serving().await.unwrap());
    let admin = sqlx::postgres::PgPool::connect(&database.url)
        .await
        .unwrap();
    let holder = || async {
        sqlx::query_scalar::<_, i32>(
            "SELECT pid FROM pg_locks WHERE locktype = 'advisory' AND granted AND objsubid = 1",
        )
        .fetch_optional(&admin)
        .await
        .unwrap()
    };
    let lost = holder().await.expect("the serving lock is held");
    sqlx::query("SELECT pg_terminate_backend($1)")
        .bind(lost)
        .execute(&admin)
        .await
        .unwrap();
    eventually(Duration::from_secs(20), || async {
        holder().await.filter(|pid| *pid != lost)
    })
    .await;
    let second = database.open().await;
    assert!(
        !second.claim_serving().await.unwrap(),
        "a second node served while the first did"
    );
    second.close().await;
    first.close().await;
}

//! Several nodes on one PostgreSQL (DECISIONS.md S19): what must hold however many
//! `auditrelay serve` processes share the database.

use std::collections::HashSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use auditrelay::store::{RefusedEvent, Scope, StoreError};
use auditrelay_core::{Event, OrgId, Region, Role};
use reqwest::StatusCode;

use crate::support::events::{
    authorization, ndjson, stored_authorization, trace_counts, wait_until_delivered,
};
use crate::support::nodes::{Nodes, TAKEOVER};
use crate::support::postgres::OwnCluster;
use crate::support::process::bind_org_webhook;
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::signing::{BIN, JWKS_PATH};
use crate::support::{TestApp, eventually, now, postgres};
use crate::ui::Browser;

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
                        .map(|i| {
                            stored_authorization(org, now(), &format!("n{n}-w{w}-r{round}-{i}"))
                        })
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

/// The store's behaviour on PostgreSQL: the modules of this suite that exercise the store
/// through the API (configuration, ingest, pull, delivery, replay, retention, refused events,
/// the delivery log, the web UI's sessions), run again by this binary with every test server on a PostgreSQL database
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
        "integrity::",
        "kinds::",
        "portals::",
        "pull::",
        "regions::",
        "replay::",
        "retention::",
        "self_audit::",
        "storage::",
        "ui::",
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
    let app = TestApp::spawn_with(|c| {
        c.store.url = url.parse().unwrap();
        c.store.key_encryption_key = Some(postgres::KEY_ENCRYPTION_KEY.parse().unwrap());
    })
    .await;
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

/// Posts `traces` as authorization events to `base`; `true` when they were acknowledged (202).
async fn ingest_at(client: &reqwest::Client, base: &str, token: &str, traces: &[String]) -> bool {
    let events: Vec<serde_json::Value> = traces.iter().map(|t| authorization(now(), t)).collect();
    let sent = client
        .post(format!("{base}/us/v1/events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(ndjson(&events))
        .send()
        .await;
    sent.is_ok_and(|resp| resp.status() == StatusCode::ACCEPTED)
}

/// Three `serve` processes share ingest, one webhook's lane runs on one of them; that node is
/// killed (SIGKILL) mid-stream. Another node takes the lane over within the lease's bound (5 s
/// and a fifth, stated as ≤ 10 s), and the SIEM ends with every acknowledged event, at most the
/// batches noted in flight (three) twice.
#[tokio::test]
async fn a_killed_owner_is_taken_over_and_nothing_is_lost() {
    let batch = 500;
    let Some(mut nodes) =
        Nodes::start(3, &[("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "500")]).await
    else {
        return;
    };
    let receiver = TestReceiver::http().await;
    let destination = serde_json::json!({"name": "siem", "endpoint": receiver.url(), "authorization": "Bearer siem"});
    bind_org_webhook(&nodes.nodes[0].base, &nodes.token, destination).await;
    let owner = eventually(TAKEOVER, || nodes.holder("lane/%")).await;

    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let mut killed = None;
    for chunk in 0..24 {
        if chunk == 8 {
            nodes.kill(owner).await;
            killed = Some(std::time::Instant::now());
        }
        let traces: Vec<String> = (0..250).map(|i| format!("n{chunk}-{i:03}")).collect();
        // Spread over the nodes alive, as a load balancer would; a refusal is tried on the next.
        for attempt in 0.. {
            let node = (chunk + attempt) % 3;
            if killed.is_some() && node == owner {
                continue;
            }
            if ingest_at(&client, &nodes.nodes[node].base, &nodes.token, &traces).await {
                break;
            }
            assert!(attempt < 10, "no node took chunk {chunk}");
        }
        acknowledged.extend(traces);
    }
    let new_owner = eventually(TAKEOVER, || async {
        nodes.holder("lane/%").await.filter(|n| *n != owner)
    })
    .await;
    let took = killed.unwrap().elapsed();
    assert!(
        took <= TAKEOVER,
        "node {new_owner} took the lane over {took:?} after the kill"
    );
    wait_until_delivered(&receiver, &acknowledged, 1).await;
    let counts = trace_counts(&receiver.requests());
    // At most what was noted in flight: the batch in hand and those signed ahead of it
    // (DECISIONS.md S3).
    let twice = acknowledged.iter().filter(|t| counts[*t] > 1).count();
    assert!(
        twice <= 3 * batch,
        "{twice} events arrived twice: more than three batches"
    );
}

/// A replay job runs on one node, which is killed while it runs: another node takes the job
/// over, resumes from the progress saved, and completes it; the SIEM has the whole window,
/// at most one batch of it twice.
#[tokio::test]
async fn a_replay_job_whose_node_is_killed_completes_on_another() {
    let batch = 200;
    let Some(mut nodes) =
        Nodes::start(3, &[("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "200")]).await
    else {
        return;
    };
    let receiver = TestReceiver::http().await;
    let destination = serde_json::json!({"name": "siem", "endpoint": receiver.url(), "authorization": "Bearer siem"});
    let base = nodes.nodes[0].base.clone();
    bind_org_webhook(&base, &nodes.token, destination).await;
    let client = reqwest::Client::new();
    let mut window = Vec::new();
    for chunk in 0..10 {
        let traces: Vec<String> = (0..1000).map(|i| format!("r{chunk}-{i:03}")).collect();
        let node = &nodes.nodes[chunk % 3].base;
        assert!(ingest_at(&client, node, &nodes.token, &traces).await);
        window.extend(traces);
    }
    wait_until_delivered(&receiver, &window, 1).await;
    // Slow enough that the job is still running when its node dies.
    receiver.set_default(Behaviour::Delay(Duration::from_millis(100)));

    let from = now().saturating_sub_millis(10 * 60_000).to_rfc3339_millis();
    let to = now().to_rfc3339_millis();
    let job = serde_json::json!({"start_at": from, "end_at": to});
    let resp = client
        .put(format!("{base}/us/v3/audit-log-replay-job"))
        .bearer_auth(&nodes.token)
        .json(&job)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let token = nodes.token.clone();
    let get = |base: String| {
        let request = client
            .get(format!("{base}/us/v3/audit-log-replay-job"))
            .bearer_auth(&token)
            .send();
        async move { request.await.ok()?.json::<serde_json::Value>().await.ok() }
    };
    eventually(Duration::from_secs(60), || async {
        let job = get(base.clone()).await?;
        (job["status"] == "running" && job["events_sent"].as_u64() >= Some(1000)).then_some(())
    })
    .await;
    let runner = nodes.holder("replay/%").await.expect("a node runs the job");
    nodes.kill(runner).await;
    let other = nodes.nodes[(runner + 1) % 3].base.clone();
    let job = get(other.clone()).await.unwrap();
    assert_eq!(job["status"], "running", "killed while it ran: {job}");

    let job = eventually(Duration::from_secs(120), || async {
        let job = get(other.clone()).await?;
        (job["status"] != "running").then_some(job)
    })
    .await;
    assert_eq!(job["status"], "completed", "{job}");
    assert!(nodes.holder("replay/%").await.is_none_or(|n| n != runner));
    wait_until_delivered(&receiver, &window, 2).await;
    let counts = trace_counts(&receiver.requests());
    let thrice = window.iter().filter(|t| counts[*t] > 2).count();
    assert!(
        thrice <= batch,
        "{thrice} events sent again: more than one batch"
    );
}

/// The node that delivers a webhook is frozen (SIGSTOP) while a batch is on its way, and
/// thawed after another node took the webhook over and delivered that batch and the rest. The
/// thawed node then has the SIEM's answer to its old batch in hand, but it records nothing: the
/// delivery log, the status and the cursor are as the new owner left them, and it sends
/// nothing more.
#[tokio::test]
async fn a_frozen_lease_holder_moves_nothing_once_thawed() {
    let Some(nodes) = Nodes::start(3, &[]).await else {
        return;
    };
    let receiver = TestReceiver::http().await;
    let destination = serde_json::json!({"name": "siem", "endpoint": receiver.url(), "authorization": "Bearer siem"});
    let base = nodes.nodes[1].base.clone();
    bind_org_webhook(&base, &nodes.token, destination).await;
    let owner = eventually(TAKEOVER, || nodes.holder("lane/%")).await;
    let epoch = nodes.epoch("lane/%").await.unwrap();
    let client = reqwest::Client::new();
    let first: Vec<String> = (0..20).map(|i| format!("before-{i}")).collect();
    assert!(ingest_at(&client, &base, &nodes.token, &first).await);
    wait_until_delivered(&receiver, &first, 1).await;

    // The next batch is held by the SIEM; its sender is frozen meanwhile.
    receiver.script([Behaviour::Hold]);
    let held: Vec<String> = (0..20).map(|i| format!("held-{i}")).collect();
    let sent = receiver.requests().len();
    assert!(ingest_at(&client, &base, &nodes.token, &held).await);
    receiver
        .wait_for_requests(sent + 1, Duration::from_secs(30))
        .await;
    nodes.freeze(owner);
    let frozen = std::time::Instant::now();

    let new_owner = eventually(TAKEOVER, || async {
        nodes.holder("lane/%").await.filter(|n| *n != owner)
    })
    .await;
    assert!(
        frozen.elapsed() <= TAKEOVER,
        "taken over after {:?}",
        frozen.elapsed()
    );
    assert!(nodes.epoch("lane/%").await.unwrap() > epoch);
    let live = nodes.nodes[new_owner].base.clone();
    let after: Vec<String> = (0..20).map(|i| format!("after-{i}")).collect();
    assert!(ingest_at(&client, &live, &nodes.token, &after).await);
    wait_until_delivered(&receiver, &held, 1).await;
    wait_until_delivered(&receiver, &after, 1).await;

    // What the store holds of the webhook's delivery, read behind the API's back (a request
    // would be audited, and its events delivered), once the new owner has delivered all there
    // is.
    let recorded = || async {
        let mut conn = nodes.connect().await;
        sqlx::query_as::<_, (i64, Option<i64>, Option<i64>, String, i64, i64)>(
            "SELECT w.cursor, w.in_flight_through, w.last_attempt_at, w.status,
                    (SELECT count(*) FROM delivery_attempts),
                    (SELECT max(seq) FROM events)
             FROM webhooks w",
        )
        .fetch_one(&mut conn)
        .await
        .unwrap()
    };
    let before = eventually(Duration::from_secs(30), || async {
        let state = recorded().await;
        (state.0 == state.5).then_some((state, receiver.requests().len()))
    })
    .await;

    // The SIEM answers the old batch (202) and the frozen node wakes to it.
    receiver.release();
    receiver
        .wait_until(TAKEOVER, "the held batch answered", |requests| {
            requests
                .iter()
                .all(|r| !matches!(r.answer, Behaviour::Hold))
                .then_some(())
        })
        .await;
    nodes.thaw(owner);
    eventually(TAKEOVER, || async {
        (nodes.metric(owner, "auditrelay_leases_lost_total").await >= 1.0).then_some(())
    })
    .await;
    let after_thaw = (recorded().await, receiver.requests().len());
    assert_eq!(
        after_thaw, before,
        "the thawed node changed what the new owner recorded"
    );
    assert_eq!(
        nodes.holder("lane/%").await,
        Some(new_owner),
        "the lane stays with the node that took it over"
    );
}

/// A lease's fence, as the store checks it: a write under a lease its node still holds goes
/// through; once the lease expired and another node took it, a write under the old epoch is
/// refused (`LeaseLost`) and changes nothing, while the new holder's goes through.
#[tokio::test]
async fn a_write_under_a_lost_lease_is_refused() {
    let Some(database) = postgres::database().await else {
        return;
    };
    let (one, two) = (database.open().await, database.open().await);
    let (node_one, node_two) = (uuid::Uuid::new_v4(), uuid::Uuid::new_v4());
    let ttl = Duration::from_secs(1);
    let scope = Scope {
        org_id: OrgId::new_v4(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
    };
    let refusal = |seq| RefusedEvent {
        seq,
        event_ts: None,
        refused_at: now(),
        endpoint: "https://siem.example/".into(),
        reason: "mapping".into(),
        replay_id: None,
    };
    let first = one
        .acquire_lease("lane/test", node_one, ttl)
        .await
        .unwrap()
        .unwrap();
    assert!(
        two.acquire_lease("lane/test", node_two, ttl)
            .await
            .unwrap()
            .is_none(),
        "held"
    );
    one.record_refused(&first, &scope, &[refusal(1)])
        .await
        .unwrap();

    let second = eventually(Duration::from_secs(10), || async {
        two.acquire_lease("lane/test", node_two, ttl).await.unwrap()
    })
    .await;
    assert_eq!(second.epoch, first.epoch + 1);
    let refused = one.record_refused(&first, &scope, &[refusal(2)]).await;
    assert!(
        matches!(refused, Err(StoreError::LeaseLost(_))),
        "{refused:?}"
    );
    assert_eq!(
        one.count_refused(&scope).await.unwrap(),
        1,
        "nothing written"
    );
    assert!(
        one.renew_leases(std::slice::from_ref(&first), ttl)
            .await
            .unwrap()
            .is_empty(),
        "a lost lease is not renewed"
    );
    two.record_refused(&second, &scope, &[refusal(3)])
        .await
        .unwrap();
    assert_eq!(two.count_refused(&scope).await.unwrap(), 2);
    one.close().await;
    two.close().await;
}

/// Every node signs with the keys in the database and opens the credentials sealed there,
/// whichever node stored them: the JWKS is the same on each, a rotation made with the CLI
/// reaches both, and no node keeps a seed or the secrets key on its own disk. A node without
/// the key-encryption key, or with another one, does not start, and says why.
#[tokio::test]
async fn every_node_signs_with_the_keys_and_secrets_in_the_database() {
    let Some(nodes) = Nodes::start(2, &[]).await else {
        return;
    };
    let client = reqwest::Client::new();
    let jwks = |i: usize| {
        let url = format!("{}{JWKS_PATH}", nodes.nodes[i].base);
        let client = client.clone();
        async move { client.get(url).send().await.unwrap().text().await.unwrap() }
    };
    let (one, two) = (jwks(0).await, jwks(1).await);
    assert_eq!(one, two, "one signing identity");
    for node in &nodes.nodes {
        let dir = node.data.path();
        assert!(!dir.join("keys").exists() && !dir.join("secret.key").exists());
    }

    // A credential sealed by node 0 opens on whichever node delivers.
    let receiver = TestReceiver::http().await;
    let destination = serde_json::json!({
        "name": "siem", "endpoint": receiver.url(), "authorization": "Bearer from-node-0",
    });
    bind_org_webhook(&nodes.nodes[0].base, &nodes.token, destination).await;
    let traces: Vec<String> = (0..10).map(|i| format!("k-{i}")).collect();
    assert!(ingest_at(&client, &nodes.nodes[1].base, &nodes.token, &traces).await);
    wait_until_delivered(&receiver, &traces, 1).await;
    let keys = auditrelay_core::signing::parse_jwks(one.as_bytes()).unwrap();
    for request in receiver.requests() {
        assert_eq!(request.authorization(), Some("Bearer from-node-0"));
        for line in &request.lines {
            auditrelay_core::format::verify_line(line.as_bytes(), &keys)
                .unwrap_or_else(|e| panic!("{e}: {line}"));
        }
    }

    // A rotation with the CLI, on the shared database, reaches every node.
    let data = tempfile::tempdir().unwrap();
    let rotated = std::process::Command::new(BIN)
        .args(["keys", "rotate", "--activation-delay", "1h", "--data-dir"])
        .arg(data.path())
        .env_remove("RUST_LOG")
        .envs(nodes.env().iter().map(|(k, v)| (k, v)))
        .output()
        .unwrap();
    assert!(
        rotated.status.success(),
        "{}",
        String::from_utf8_lossy(&rotated.stderr)
    );
    let kid = String::from_utf8(rotated.stdout).unwrap().trim().to_owned();
    for i in 0..2 {
        eventually(Duration::from_secs(10), || async {
            jwks(i).await.contains(&kid).then_some(())
        })
        .await;
    }

    // Without the key-encryption key, or with another one, a node does not start.
    let refused = |kek: Option<&str>| {
        let data = tempfile::tempdir().unwrap();
        let mut command = std::process::Command::new(BIN);
        command
            .args(["serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data.path())
            .env_remove("RUST_LOG")
            .envs(nodes.env().iter().map(|(k, v)| (k, v)))
            .env_remove("AUDITRELAY_STORE__KEY_ENCRYPTION_KEY");
        if let Some(kek) = kek {
            command.env("AUDITRELAY_STORE__KEY_ENCRYPTION_KEY", kek);
        }
        let out = command.output().unwrap();
        assert!(!out.status.success());
        String::from_utf8_lossy(&out.stderr).into_owned()
    };
    let missing = refused(None);
    assert!(
        missing.contains("store.key_encryption_key is missing"),
        "{missing}"
    );
    let other = refused(Some("b3RoZXIga2V5LCBub3QgdGhlIG5vZGVzJyBrZXk6KSE="));
    assert!(
        other.contains("does not open the keys in the database"),
        "{other}"
    );
    assert!(!other.contains(postgres::KEY_ENCRYPTION_KEY), "{other}");
}

/// A sign-in on one node works on every node, and a sign-out on any ends it everywhere: the
/// web UI's sessions are in the database.
#[tokio::test]
async fn a_ui_session_started_on_one_node_works_on_another() {
    let Some(nodes) = Nodes::start(2, &[]).await else {
        return;
    };
    let (one, two) = (nodes.nodes[0].base.clone(), nodes.nodes[1].base.clone());
    let mut browser = Browser::at(&one);
    browser.sign_in(&nodes.token).await;
    browser.base = two.clone();
    let page = browser.get("/ui/destinations").await;
    assert_eq!(page.status, StatusCode::OK, "{}", page.html);
    let csrf = page.csrf();

    let id = browser.session_id().unwrap();
    let signed_out = browser.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    assert_eq!(signed_out.status, StatusCode::SEE_OTHER);
    // The cookie kept from before, sent to the node it was made on.
    let mut kept = Browser::with_session(&one, id);
    let page = kept.get("/ui/destinations").await;
    assert_eq!(
        page.status,
        StatusCode::SEE_OTHER,
        "signed out on the other node"
    );
}

/// PostgreSQL stopped while three nodes take ingest, as by a crash, then started again: every
/// node answers 503 while it is down (never 202, never 500), finds the database again by
/// itself, and the SIEM ends with every event any node acknowledged.
#[tokio::test]
async fn several_nodes_ride_out_a_postgresql_restart() {
    let Some(cluster) = OwnCluster::start().await else {
        return;
    };
    let nodes = Nodes::on(&cluster.url(), 3, &[]).await;
    let receiver = TestReceiver::http().await;
    let destination = serde_json::json!({
        "name": "siem", "endpoint": receiver.url(), "authorization": "Bearer siem",
    });
    bind_org_webhook(&nodes.nodes[0].base, &nodes.token, destination).await;
    let client = reqwest::Client::new();
    let mut acknowledged = Vec::new();
    let mut round = 0;
    let mut ingest = async |nodes: &Nodes, acknowledged: &mut Vec<String>| {
        round += 1;
        let mut statuses = Vec::new();
        for (i, node) in nodes.nodes.iter().enumerate() {
            let traces: Vec<String> = (0..20).map(|n| format!("pg{round}-{i}-{n}")).collect();
            let events: Vec<_> = traces.iter().map(|t| authorization(now(), t)).collect();
            let status = client
                .post(format!("{}/us/v1/events", node.base))
                .bearer_auth(&nodes.token)
                .header("content-type", "application/x-ndjson")
                .body(ndjson(&events))
                .send()
                .await
                .unwrap()
                .status();
            if status == StatusCode::ACCEPTED {
                acknowledged.extend(traces);
            }
            statuses.push(status);
        }
        statuses
    };
    for _ in 0..3 {
        let statuses = ingest(&nodes, &mut acknowledged).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
            "{statuses:?}"
        );
    }

    cluster.stop();
    let mut refused = 0;
    for _ in 0..2 {
        for status in ingest(&nodes, &mut acknowledged).await {
            match status {
                StatusCode::SERVICE_UNAVAILABLE => refused += 1,
                // Committed just before the stop.
                StatusCode::ACCEPTED => {}
                other => panic!("ingest with PostgreSQL down answered {other}"),
            }
        }
    }
    assert!(
        refused > 0,
        "every node acknowledged with the database down"
    );
    let down = acknowledged.len();
    cluster.start_again().await;
    for node in &nodes.nodes {
        let ready = format!("{}/readyz", node.base);
        eventually(Duration::from_secs(30), || async {
            let status = client.get(&ready).send().await.ok()?.status();
            (status == StatusCode::OK).then_some(())
        })
        .await;
    }
    for _ in 0..3 {
        let statuses = ingest(&nodes, &mut acknowledged).await;
        assert!(
            statuses.iter().all(|s| *s == StatusCode::ACCEPTED),
            "{statuses:?}"
        );
    }
    assert!(acknowledged.len() > down);
    wait_until_delivered(&receiver, &acknowledged, 1).await;
}

/// A node of this version does not start beside a process of the version before, which served
/// alone (holding the serving lock alone) and delivered without leases; and it does not make
/// new keys for a database that holds destinations or events whose keys were kept in a data
/// directory, which new keys would not open or verify.
#[tokio::test]
async fn a_node_refuses_to_serve_beside_an_older_version_or_to_replace_keys() {
    let Some(database) = postgres::database().await else {
        return;
    };
    // Bounded: a node that wrongly started would serve on.
    let serve = |data: &std::path::Path| {
        std::process::Command::new("timeout")
            .args(["20", BIN, "serve", "--listen", "127.0.0.1:0", "--data-dir"])
            .arg(data)
            .env_remove("RUST_LOG")
            .env("AUDITRELAY_STORE__URL", &database.url)
            .env(
                "AUDITRELAY_STORE__KEY_ENCRYPTION_KEY",
                postgres::KEY_ENCRYPTION_KEY,
            )
            .output()
            .unwrap()
    };
    let mut old = database.connect().await;
    let held: bool = sqlx::query_scalar("SELECT pg_try_advisory_lock($1)")
        .bind(0x6175_6469_7472_656c_i64)
        .fetch_one(&mut old)
        .await
        .unwrap();
    assert!(held);
    let data = tempfile::tempdir().unwrap();
    let refused = serve(data.path());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(message.contains("earlier version is serving"), "{message}");
    drop(old);

    // A database an earlier version used: records, and the keys in a data directory.
    let store = database.open().await;
    let org = store.ensure_default_org("default", now()).await.unwrap().0;
    store
        .append_events(&[stored_authorization(org.id, now(), "before")])
        .await
        .unwrap();
    store.close().await;
    let refused = serve(data.path());
    let message = String::from_utf8_lossy(&refused.stderr);
    assert!(!refused.status.success());
    assert!(
        message.contains("holds destinations or events but no keys"),
        "{message}"
    );
    let mut conn = database.connect().await;
    let keys: i64 = sqlx::query_scalar("SELECT count(*) FROM signing_keys")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    assert_eq!(keys, 0, "no key was made");
}

//! Storage faults with the real binary on a real, small filesystem (a tmpfs the test mounts):
//! a full disk answers 507 and never acknowledges what it did not store, readiness follows
//! the store, ingest resumes by itself once space is freed, delivery and replay neither lose
//! nor skip anything meanwhile; and requests without a valid token cost a bounded number of
//! stored bytes.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use serde_json::{Value, json};
use sqlx::ConnectOptions;
use sqlx::sqlite::SqliteConnection;
use tokio::process::{Child, Command};

use crate::support::disk::SmallDisk;
use crate::support::events::{authorization, ndjson};
use crate::support::process::{bind_org_webhook, create_token, free_port, serve_with};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::signing::BIN;
use crate::support::{eventually, now};

/// The scrape token the tests' servers have.
const METRICS_TOKEN: &str = "storage-test-metrics";

/// `auditrelay serve` (as `--dev` would: webhooks may reach the tests' loopback receiver) on a
/// data directory, with an org-admin token. It logs only errors and the store's turns, as JSON,
/// to a file outside that directory (which may be full): the tests' own 507s would otherwise
/// print a line each, and the turns are what one test counts.
struct Server {
    child: Option<Child>,
    data: PathBuf,
    port: u16,
    base: String,
    token: String,
    client: reqwest::Client,
    log: PathBuf,
    _logs: tempfile::TempDir,
}

impl Server {
    async fn start(data: PathBuf) -> Self {
        let token = create_token(&data, "org-admin");
        let port = free_port();
        let logs = tempfile::tempdir().unwrap();
        let mut server = Self {
            child: None,
            data,
            port,
            base: format!("http://127.0.0.1:{port}"),
            token,
            client: reqwest::Client::new(),
            log: logs.path().join("stderr.log"),
            _logs: logs,
        };
        server.spawn().await;
        server
    }

    async fn spawn(&mut self) {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&self.log)
            .unwrap();
        let mut command = Command::new(BIN);
        command
            .env("AUDITRELAY_DELIVERY__ALLOW_HTTP_ENDPOINTS", "true")
            .env("AUDITRELAY_DELIVERY__ALLOW_PRIVATE_ENDPOINTS", "true")
            .env(
                "AUDITRELAY_LOG__LEVEL",
                "error,auditrelay::store::health=info",
            )
            .env("AUDITRELAY_LOG__FORMAT", "json")
            .env("AUDITRELAY_METRICS__TOKEN", METRICS_TOKEN)
            .stderr(Stdio::from(log));
        self.child = Some(serve_with(command, &self.data, self.port).await);
    }

    /// Stops gracefully (SIGTERM), as an operator's restart does, and starts again.
    async fn restart(&mut self) {
        self.stop().await;
        self.spawn().await;
    }

    async fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let pid = child.id().expect("running").to_string();
        std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("the server stops within its grace period")
            .unwrap();
    }

    /// How many log lines carry `message`.
    fn logged(&self, message: &str) -> usize {
        std::fs::read_to_string(&self.log)
            .unwrap()
            .lines()
            .filter(|line| line.contains(message))
            .count()
    }
}

/// The database file opened read-only, as another process would.
async fn read_only(data: &Path) -> SqliteConnection {
    sqlx::sqlite::SqliteConnectOptions::new()
        .filename(data.join("auditrelay.db"))
        .read_only(true)
        .connect()
        .await
        .unwrap()
}

/// Events per request, each carrying a long `user_agent`: a few dozen requests fill the room
/// the tests leave.
const PER_REQUEST: usize = 20;
const PADDING: usize = 8000;

/// Sends one request of [`PER_REQUEST`] events named `{tag}-{n}`; returns the status, the
/// `Retry-After` header and the body.
async fn send(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    tag: &str,
) -> (StatusCode, Option<String>, Value, Vec<String>) {
    let ids: Vec<String> = (0..PER_REQUEST).map(|n| format!("{tag}-{n}")).collect();
    let padding = "u".repeat(PADDING);
    let events: Vec<Value> = ids
        .iter()
        .map(|id| {
            let mut event = authorization(now(), id);
            event["user_agent"] = json!(padding);
            event
        })
        .collect();
    let response = client
        .post(format!("{base}/v1/events"))
        .bearer_auth(token)
        .header("content-type", "application/x-ndjson")
        .body(ndjson(&events))
        .send()
        .await
        .expect("the server answers");
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = response.json().await.unwrap_or(Value::Null);
    (status, retry_after, body, ids)
}

/// Sends requests until the disk refuses `refusals` of them; every answer must be 202 or a
/// 507 problem with `Retry-After`. Returns the ids of every event acknowledged.
async fn fill_until_refused(
    client: &reqwest::Client,
    base: &str,
    token: &str,
    tag: &str,
    refusals: usize,
) -> Vec<String> {
    let mut acked = Vec::new();
    let mut refused = 0;
    for i in 0..2_000 {
        let (status, retry_after, body, ids) =
            send(client, base, token, &format!("{tag}{i}")).await;
        match status {
            StatusCode::ACCEPTED => acked.extend(ids),
            StatusCode::INSUFFICIENT_STORAGE => {
                assert_eq!(body["status"], 507, "{body}");
                assert!(
                    body["detail"]
                        .as_str()
                        .unwrap()
                        .contains("Nothing was stored"),
                    "{body}"
                );
                assert!(retry_after.is_some(), "a 507 says when to retry");
                refused += 1;
                if refused == refusals {
                    return acked;
                }
            }
            other => panic!("a full disk answered {other}: {body}"),
        }
    }
    panic!("the disk never filled up");
}

/// Every trace id in the org's `us` log, read through the pull API.
async fn pulled(client: &reqwest::Client, base: &str, token: &str) -> HashSet<String> {
    let mut seen = HashSet::new();
    let mut path = "/us/v3/audit-logs?page[size]=1000".to_owned();
    loop {
        let page: Value = client
            .get(format!("{base}{path}"))
            .bearer_auth(token)
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        for entry in page["data"].as_array().expect("a page") {
            if let Some(trace) = entry["trace_id"].as_str() {
                seen.insert(trace.to_owned());
            }
        }
        match page["meta"]["page"]["next"].as_str() {
            Some(next) => path = format!("/us{next}"),
            None => return seen,
        }
    }
}

async fn readyz(client: &reqwest::Client, base: &str) -> (StatusCode, Value) {
    let response = client.get(format!("{base}/readyz")).send().await.unwrap();
    (
        response.status(),
        response.json().await.unwrap_or(Value::Null),
    )
}

async fn metric(client: &reqwest::Client, base: &str, name: &str) -> Option<f64> {
    let text = client
        .get(format!("{base}/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .find(|l| l.starts_with(name))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

fn missing<'a>(acked: &'a [String], stored: &HashSet<String>) -> Vec<&'a String> {
    acked.iter().filter(|id| !stored.contains(*id)).collect()
}

#[tokio::test]
async fn a_full_disk_answers_507_loses_nothing_and_ingest_resumes_by_itself() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let mut server = Server::start(disk.path().join("data")).await;
    let (client, base, token) = (&server.client, &server.base, &server.token);
    assert_eq!(
        metric(client, base, "auditrelay_store_accepting_writes").await,
        Some(1.0)
    );

    disk.fill_leaving(4 << 20);
    let mut acked = fill_until_refused(client, base, token, "full", 5).await;
    assert!(
        acked.len() > PER_REQUEST,
        "some requests fit before the disk was full"
    );
    // Not a byte left: the writer's probes fail too, and readiness stays down.
    disk.fill_leaving(0);
    for i in 0..3 {
        let (status, _, body, _) = send(client, base, token, &format!("none{i}")).await;
        assert_eq!(status, StatusCode::INSUFFICIENT_STORAGE, "{body}");
    }
    // A configuration write says so too, and changes nothing.
    let created = client
        .post(format!("{base}/v3/audit-log-destinations"))
        .bearer_auth(token)
        .json(&json!({"name": "while-full", "endpoint": "https://52.1.2.3/x", "authorization": "Bearer x"}))
        .send()
        .await
        .unwrap();
    assert_eq!(created.status(), StatusCode::INSUFFICIENT_STORAGE);
    assert!(created.headers().contains_key("retry-after"));

    let (status, problem) = readyz(client, base).await;
    assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{problem}");
    assert!(
        problem["detail"].as_str().unwrap().contains("full"),
        "readiness names why: {problem}"
    );
    assert_eq!(
        metric(client, base, "auditrelay_store_accepting_writes").await,
        Some(0.0)
    );
    assert!(
        metric(client, base, "auditrelay_store_errors_total{kind=\"full\"}")
            .await
            .is_some_and(|n| n >= 5.0)
    );

    // Space comes back: readiness, then ingest, without a restart.
    disk.free();
    eventually(Duration::from_secs(15), || {
        let (client, base) = (&client, &base);
        async move { (readyz(client, base).await.0 == StatusCode::OK).then_some(()) }
    })
    .await;
    for i in 0..10 {
        let (status, _, body, ids) = send(client, base, token, &format!("after{i}")).await;
        assert_eq!(
            status,
            StatusCode::ACCEPTED,
            "after space was freed: {body}"
        );
        acked.extend(ids);
    }
    assert_eq!(
        metric(client, base, "auditrelay_store_accepting_writes").await,
        Some(1.0)
    );
    let destinations: Value = client
        .get(format!(
            "{base}/v3/audit-log-destinations?filter[name]=while-full"
        ))
        .bearer_auth(token)
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(
        destinations["data"],
        json!([]),
        "the refused write changed nothing"
    );

    let stored = pulled(client, base, token).await;
    let lost = missing(&acked, &stored);
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events missing, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(3)]
    );

    // The store said when it stopped and when it started again, not once per refusal (there
    // were at least nine).
    let stopped = server.logged("the store stopped accepting writes");
    let resumed = server.logged("the store is accepting writes again");
    assert!(
        (1..=resumed + 1).contains(&stopped) && resumed >= 1 && stopped < 9,
        "{stopped} stops and {resumed} resumes logged"
    );

    server.restart().await;
    let (client, base, token) = (&server.client, &server.base, &server.token);
    let stored = pulled(client, base, token).await;
    let lost = missing(&acked, &stored);
    assert!(
        lost.is_empty(),
        "after a restart {} of {} acknowledged events missing",
        lost.len(),
        acked.len()
    );
    server.stop().await;
}

/// The webhook's cursor as committed, read from the database file as another process would.
async fn committed_cursor(data: &Path) -> i64 {
    let mut conn = read_only(data).await;
    sqlx::query_scalar("SELECT cursor FROM webhooks")
        .fetch_one(&mut conn)
        .await
        .unwrap()
}

/// The trace ids of the stored events with `seq` in `(after, through]`.
async fn traces_between(data: &Path, after: i64, through: i64) -> Vec<String> {
    let mut conn = read_only(data).await;
    sqlx::query_scalar(
        "SELECT json_extract(body, '$.t') FROM events WHERE seq > ? AND seq <= ?
           AND json_extract(body, '$.t') IS NOT NULL",
    )
    .bind(after)
    .bind(through)
    .fetch_all(&mut conn)
    .await
    .unwrap()
}

fn received_traces(receiver: &TestReceiver) -> HashSet<String> {
    receiver
        .lines()
        .iter()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter_map(|line| line["trace_id"].as_str().map(str::to_owned))
        .collect()
}

#[tokio::test]
async fn delivery_and_replay_lose_and_skip_nothing_while_the_disk_is_full() {
    let Some(disk) = SmallDisk::mount(24) else {
        return;
    };
    let mut server = Server::start(disk.path().join("data")).await;
    let (client, base, token, data) = (
        &server.client,
        &server.base,
        &server.token,
        server.data.clone(),
    );
    let receiver = TestReceiver::http().await;

    // Stored before the webhook is on: only the replay reaches these.
    let started = now();
    let mut earlier = Vec::new();
    for i in 0..5 {
        let (status, _, body, ids) = send(client, base, token, &format!("earlier{i}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        earlier.extend(ids);
    }
    // The SIEM holds every request until released: the lane and the replay both have a batch
    // in hand when the disk fills.
    receiver.set_default(Behaviour::Hold);
    bind_org_webhook(base,
        token,
        json!({"name": "siem", "endpoint": receiver.url(), "authorization": "Bearer t", "log_format": "json"}),
    )
    .await;
    let start_cursor = committed_cursor(&data).await;
    let window = json!({
        "start_at": started.saturating_sub_millis(1_000).to_rfc3339_millis(),
        "end_at": now().to_rfc3339_millis(),
    });
    let put = client
        .put(format!("{base}/us/v3/audit-log-replay-job"))
        .bearer_auth(token)
        .json(&window)
        .send()
        .await
        .unwrap();
    assert_eq!(put.status(), StatusCode::ACCEPTED);

    disk.fill_leaving(3 << 20);
    // A few live events, and the lane's and the replay's batches in the SIEM's hands, before
    // the disk fills: waited for, since how soon the disk fills depends on what else writes
    // (the tamper-evident log does).
    let mut live = Vec::new();
    for i in 0..5 {
        let (status, _, body, ids) = send(client, base, token, &format!("first-live{i}")).await;
        assert_eq!(status, StatusCode::ACCEPTED, "{body}");
        live.extend(ids);
    }
    eventually(Duration::from_secs(30), || async {
        (receiver.requests().len() >= 2).then_some(())
    })
    .await;
    live.extend(fill_until_refused(client, base, token, "live", 3).await);
    disk.fill_leaving(0);

    // Delivery goes on against a store that takes no writes: the cursor must never pass an
    // event the SIEM did not take.
    // Checked at every poll until the SIEM has answered the lane's and the replay's batch in
    // hand, and once more after.
    let never_passed_undelivered = async || {
        let cursor = committed_cursor(&data).await;
        let received = received_traces(&receiver);
        let passed = traces_between(&data, start_cursor, cursor).await;
        let skipped: Vec<&String> = passed.iter().filter(|t| !received.contains(*t)).collect();
        assert!(
            skipped.is_empty(),
            "the cursor ({cursor}) passed undelivered events: {:?}",
            &skipped[..skipped.len().min(3)]
        );
    };
    receiver.set_default(Behaviour::ACCEPT);
    receiver.release();
    eventually(Duration::from_secs(30), || async {
        never_passed_undelivered().await;
        let answered = receiver.requests().iter().filter(|r| r.accepted()).count();
        (answered >= 2).then_some(())
    })
    .await;
    never_passed_undelivered().await;

    disk.free();
    // Both finish by themselves: every live event delivered, the replay completed with every
    // earlier event sent.
    eventually(Duration::from_secs(60), || {
        let (client, base, token, receiver, live, earlier) =
            (&client, &base, &token, &receiver, &live, &earlier);
        async move {
            let received = received_traces(receiver);
            let job: Value = client
                .get(format!("{base}/us/v3/audit-log-replay-job"))
                .bearer_auth(token)
                .send()
                .await
                .ok()?
                .json()
                .await
                .ok()?;
            let all_live = live.iter().all(|t| received.contains(t));
            let all_earlier = earlier.iter().all(|t| received.contains(t));
            (all_live && all_earlier && job["status"] == "completed").then_some(())
        }
    })
    .await;
    never_passed_undelivered().await;
    server.stop().await;
}

#[tokio::test]
async fn requests_without_a_valid_token_cost_a_bounded_number_of_stored_bytes() {
    let dir = tempfile::tempdir().unwrap();
    let mut server = Server::start(dir.path().join("data")).await;
    let (client, base, data) = (&server.client, &server.base, server.data.clone());

    let user_agent = "A".repeat(60_000);
    let query = format!("q={}", "b".repeat(30_000));
    let size = || async { used_bytes(&data).await };
    let before = size().await;
    const REQUESTS: u64 = 300;
    for i in 0..REQUESTS {
        let method = if i % 2 == 0 {
            reqwest::Method::PATCH
        } else {
            reqwest::Method::GET
        };
        let response = client
            .request(
                method,
                format!(
                    "{base}/v3/audit-log-destinations/{}?{query}",
                    "p".repeat(3_000)
                ),
            )
            .bearer_auth("kpat_not-a-valid-token")
            .header("user-agent", &user_agent)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), StatusCode::UNAUTHORIZED);
    }
    let grown = size().await - before;
    // The bound stated in docs/OPERATIONS.md: 2 KiB per request, all stored bytes included.
    assert!(
        grown <= REQUESTS * 2048,
        "{REQUESTS} unauthenticated requests grew the store by {grown} bytes ({} per request)",
        grown / REQUESTS
    );
    server.stop().await;
}

/// The bytes of the database's pages in use, as of its latest commit (WAL included).
async fn used_bytes(data: &Path) -> u64 {
    let mut conn = read_only(data).await;
    let pages: i64 = sqlx::query_scalar(
        "SELECT (SELECT page_count FROM pragma_page_count())
              - (SELECT freelist_count FROM pragma_freelist_count())",
    )
    .fetch_one(&mut conn)
    .await
    .unwrap();
    let page_size: i64 = sqlx::query_scalar("PRAGMA page_size")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    (pages * page_size) as u64
}

//! Webhook delivery end to end, against real HTTP and HTTPS receivers on loopback: every event
//! once, signed, in each format; TLS verification; DECISIONS.md D3's retry timing and recovery
//! without replay; isolation between webhooks; the SSRF guard at connect time; and SIGKILL of
//! the real binary mid-stream.

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use auditrelay::config::Config;
use auditrelay::store::{Destination, Scope};
use auditrelay_core::Region;
use auditrelay_core::format::{Format, parse_line, verify_line};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::listen::Listener;
use crate::support::events::{
    access, authentication, authorization, ndjson, portal_login, trace_of,
};
use crate::support::process::{bind_org_webhook, create_token, free_port, serve_dev};
use crate::support::receiver::{Behaviour, ReceivedRequest, TestReceiver};
use crate::support::signing::{BIN, jwks};
use crate::support::{TestApp, eventually, expect_json, now};

const SIEM_SECRET: &str = "Splunk 7a1c0000-delivery-test";

/// Loopback receivers need http and private endpoints; small batches and a short flush keep
/// the tests quick.
pub(crate) fn dev(c: &mut Config) {
    crate::support::dev(c);
    c.delivery.batch_max_events = 250;
    c.delivery.flush_interval = Duration::from_millis(200);
}

/// Creates a destination for `endpoint` and binds the org webhook of `region` to it, enabled.
pub(crate) async fn bind(app: &TestApp, region: &str, endpoint: &str, format: &str) -> String {
    let destination = json!({
        "name": format!("siem-{region}"), "endpoint": endpoint,
        "authorization": SIEM_SECRET, "log_format": format,
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, destination)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let body = json!({"audit_log_destination_id": id, "enabled": true});
    let path = format!("/{region}/v3/audit-log-webhook");
    let resp = app
        .request(Method::PATCH, &path, Some(&app.admin), Some(body))
        .await;
    expect_json(resp, StatusCode::OK).await;
    id
}

/// Ingests `n` org events into `region` (a mix of the three types); returns their trace ids in
/// ingest order.
pub(crate) async fn ingest(app: &TestApp, region: &str, n: usize, tag: &str) -> Vec<String> {
    let traces: Vec<String> = (0..n).map(|i| format!("{tag}-{i:06}")).collect();
    for chunk in traces.chunks(1000) {
        let events: Vec<Value> = chunk
            .iter()
            .enumerate()
            .map(|(i, t)| match i % 3 {
                0 => authorization(now(), t),
                1 => access(now(), t),
                _ => authentication(now(), t),
            })
            .collect();
        let path = format!("/{region}/v1/events");
        let resp = app.ingest_ndjson(&path, &app.admin, ndjson(&events)).await;
        expect_json(resp, StatusCode::ACCEPTED).await;
    }
    traces
}

/// The `trace_id` of a delivered line.
/// Waits until every one of `traces` was accepted by `receiver`; returns the accepted lines.
async fn wait_for_traces(
    receiver: &TestReceiver,
    traces: &[String],
    timeout: Duration,
) -> Vec<String> {
    let wanted: HashSet<&str> = traces.iter().map(String::as_str).collect();
    receiver
        .wait_until(timeout, "every ingested event", |requests| {
            let lines: Vec<String> = requests
                .iter()
                .filter(|r| r.accepted())
                .flat_map(|r| r.lines.clone())
                .collect();
            let seen: HashSet<String> = lines.iter().map(|l| trace_of(l)).collect();
            wanted.iter().all(|t| seen.contains(*t)).then_some(lines)
        })
        .await
}

pub(crate) async fn status(app: &TestApp, region: &str) -> Value {
    let path = format!("/{region}/v3/audit-log-webhook/status");
    expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await
}

async fn wait_for_status(app: &TestApp, region: &str, webhook_status: &str) -> Value {
    wait_for(app, region, |s| s["webhook_status"] == webhook_status).await
}

/// The status once it satisfies `check` (the receiver may see a batch before the lane has
/// recorded the answer).
pub(crate) async fn wait_for(app: &TestApp, region: &str, check: impl Fn(&Value) -> bool) -> Value {
    eventually(Duration::from_secs(60), || async {
        let s = status(app, region).await;
        check(&s).then_some(s)
    })
    .await
}

/// Waits for the status of a webhook whose last batch was accepted.
async fn wait_for_delivered(app: &TestApp, region: &str) -> Value {
    let s = wait_for(app, region, |s| s["last_response_code"] == 202).await;
    assert_eq!(s["webhook_status"], "active", "{s}");
    assert_eq!(s["last_response_message"], "Accepted", "{s}");
    s
}

#[tokio::test]
async fn every_event_arrives_once_signed_in_each_format() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.regions.list = ["us", "eu", "au"]
            .map(|r| Region::parse(r).unwrap())
            .to_vec();
    })
    .await;
    let (_, keys) = jwks(&app).await;
    let cases = [
        ("us", Format::Cef),
        ("eu", Format::Json),
        ("au", Format::Cps),
    ];
    let mut receivers = Vec::new();
    for (region, format) in cases {
        let receiver = TestReceiver::http().await;
        bind(&app, region, &receiver.url(), format.as_str()).await;
        receivers.push(receiver);
    }
    let mut sent = Vec::new();
    for (region, _) in cases {
        sent.push(ingest(&app, region, 600, region).await);
    }

    for ((region, format), (receiver, traces)) in cases.iter().zip(receivers.iter().zip(&sent)) {
        let lines = wait_for_traces(receiver, traces, Duration::from_secs(60)).await;
        // Exactly once, in ingest order; nothing else arrives twice either (self-audit events
        // of the region are delivered too).
        let ours: Vec<String> = lines
            .iter()
            .map(|l| trace_of(l))
            .filter(|t| t.starts_with(region))
            .collect();
        assert_eq!(&ours, traces, "{region}: once each, in ingest order");
        let unique: HashSet<&String> = lines.iter().collect();
        assert_eq!(unique.len(), lines.len(), "{region}: a line arrived twice");
        for line in &lines {
            let parsed = parse_line(line.as_bytes()).unwrap();
            assert_eq!(parsed.format, *format, "{line}");
            verify_line(line.as_bytes(), &keys).unwrap_or_else(|e| panic!("{e}: {line}"));
        }
        let requests = receiver.requests();
        let mut keys_seen = HashSet::new();
        for r in &requests {
            assert!(r.accepted());
            assert!(r.lines.len() <= 250, "{} lines in one batch", r.lines.len());
            let decoded: usize = r.lines.iter().map(|l| l.len() + 1).sum();
            assert!(decoded <= 1 << 20, "{decoded} bytes");
            assert_eq!(r.method, Method::POST);
            assert_eq!(r.authorization(), Some(SIEM_SECRET));
            assert_eq!(r.content_type(), Some("text/plain"));
            assert_eq!(r.content_encoding(), Some("gzip"));
            assert!(r.user_agent().unwrap().starts_with("auditrelay/"));
            let key = r.idempotency_key().expect("an Idempotency-Key");
            assert!(keys_seen.insert(key.to_owned()), "a batch key was reused");
        }
        assert!(requests.len() >= 3, "600 events in batches of at most 250");
        wait_for_delivered(&app, region).await;
    }

    let metrics = app.metrics().await;
    for needle in [
        "auditrelay_delivery_events_total{webhook=\"org/us\"}",
        "auditrelay_delivery_batches_total{webhook=\"org/eu\",outcome=\"delivered\"}",
        "auditrelay_delivery_attempts_total{webhook=\"org/au\",outcome=\"2xx\"}",
        "auditrelay_delivery_latency_seconds",
    ] {
        assert!(metrics.contains(needle), "{needle} missing from /metrics");
    }
    // The gauges come from the supervisor's periodic look.
    eventually(Duration::from_secs(15), || async {
        let metrics = app.metrics().await;
        (metrics.contains("auditrelay_delivery_seconds_until_data_loss{webhook=\"org/us\"}")
            && metrics.contains("auditrelay_delivery_lag_events{webhook=\"org/us\"}"))
        .then_some(())
    })
    .await;
    assert!(!metrics.contains(SIEM_SECRET));
    app.stop().await;
}

#[tokio::test]
async fn a_self_signed_siem_fails_verification_until_skip_ssl_verification() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::https().await;
    let id = bind(&app, "us", &receiver.url(), "json").await;
    let traces = ingest(&app, "us", 10, "tls").await;

    // A certificate failure is final at once (not retried) and says why.
    let s = wait_for_status(&app, "us", "inactive").await;
    assert!(s.get("last_response_code").is_none(), "{s}");
    let message = s["last_response_message"].as_str().unwrap();
    assert!(message.contains("certificate"), "{message}");
    assert!(
        receiver.requests().is_empty(),
        "the handshake never completed"
    );

    // Skipping verification (a destination change) re-arms the webhook; delivery resumes at
    // once and nothing is lost.
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"skip_ssl_verification": true})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    wait_for_traces(&receiver, &traces, Duration::from_secs(30)).await;
    wait_for_delivered(&app, "us").await;
    app.stop().await;
}

/// Asserts the gap between two attempts, with room for scheduling but none for skipping a wait.
fn assert_gap(requests: &[ReceivedRequest], i: usize, expected: Duration) {
    let gap = requests[i].at.duration_since(requests[i - 1].at);
    assert!(
        gap + Duration::from_millis(50) >= expected
            && gap <= expected + Duration::from_millis(1500),
        "attempt {i}: waited {gap:?}, expected {expected:?}"
    );
}

#[tokio::test]
async fn retries_follow_decision_3_through_429_500_timeouts_and_resets() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.connect_timeout = Duration::from_secs(1);
        c.delivery.request_timeout = Duration::from_secs(1);
    })
    .await;
    let receiver = TestReceiver::http().await;
    receiver.script([
        Behaviour::StatusWithRetryAfter(429, "3".into()),
        Behaviour::Status(500),
        Behaviour::Hang,
        Behaviour::Reset,
    ]);
    bind(&app, "us", &receiver.url(), "cef").await;
    let traces = ingest(&app, "us", 50, "retry").await;
    wait_for_traces(&receiver, &traces, Duration::from_secs(60)).await;

    let requests = receiver.requests();
    let first_batch: Vec<&ReceivedRequest> = requests
        .iter()
        .filter(|r| r.idempotency_key() == requests[0].idempotency_key())
        .collect();
    assert_eq!(first_batch.len(), 5, "one attempt and four retries");
    let lines = &first_batch[0].lines;
    assert!(
        first_batch.iter().all(|r| &r.lines == lines),
        "the same batch each time"
    );
    let attempts = &requests[..5];
    assert_gap(attempts, 1, Duration::from_secs(3)); // Retry-After: 3
    assert_gap(attempts, 2, Duration::from_secs(2)); // after a 500: 1 s doubled once
    assert_gap(attempts, 3, Duration::from_secs(1 + 4)); // the 1 s timeout, then 4 s
    assert_gap(attempts, 4, Duration::from_secs(8)); // after a reset: 8 s
    wait_for_delivered(&app, "us").await;
    app.stop().await;
}

#[tokio::test]
async fn a_failed_batch_turns_the_webhook_inactive_and_probing_catches_up() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.probe_min = Duration::from_millis(500);
        c.delivery.probe_max = Duration::from_secs(1);
    })
    .await;
    let receiver = TestReceiver::http().await;
    receiver.set_default(Behaviour::Status(500));
    bind(&app, "us", &receiver.url(), "json").await;
    let mut traces = ingest(&app, "us", 20, "down").await;

    // 1 + 4 attempts over 1 + 2 + 4 + 8 s, each shown as it happens: inactive with the SIEM's
    // answer from the first failure on.
    let s = wait_for(&app, "us", |s| s["consecutive_failures"] == 5).await;
    assert_eq!(s["webhook_status"], "inactive");
    assert_eq!(s["webhook_enabled"], true);
    assert_eq!(s["last_response_code"], 500);
    assert_eq!(s["last_response_message"], "Internal Server Error");
    let attempts = receiver.requests();
    assert!(attempts.len() >= 5, "{} attempts", attempts.len());
    for (i, wait) in [1, 2, 4, 8].into_iter().enumerate() {
        assert_gap(&attempts, i + 1, Duration::from_secs(wait));
    }

    // Still down: probes, one attempt each, keep the same batch (and key).
    receiver.wait_for_requests(7, Duration::from_secs(10)).await;
    let key = attempts[0].idempotency_key().unwrap().to_owned();
    assert!(
        receiver
            .requests()
            .iter()
            .all(|r| r.idempotency_key() == Some(&key))
    );

    // The SIEM recovers: the next probe delivers, and everything follows without a replay.
    traces.extend(ingest(&app, "us", 30, "while-down").await);
    receiver.set_default(Behaviour::ACCEPT);
    let lines = wait_for_traces(&receiver, &traces, Duration::from_secs(30)).await;
    let ours: Vec<String> = lines
        .iter()
        .map(|l| trace_of(l))
        .filter(|t| t.contains("down"))
        .collect();
    assert_eq!(ours, traces, "every event once, in order");
    wait_for_delivered(&app, "us").await;
    app.stop().await;
}

/// The lines of the accepted requests that carry `tag`'s events, with each request's index.
fn accepted_traces(requests: &[ReceivedRequest], tag: &str) -> Vec<(usize, String)> {
    requests
        .iter()
        .enumerate()
        .filter(|(_, r)| r.accepted())
        .flat_map(|(i, r)| r.lines.iter().map(move |l| (i, trace_of(l))))
        .filter(|(_, t)| t.starts_with(tag))
        .collect()
}

/// A backlog goes out batch after batch, the next one built while the previous is sent. A batch
/// that fails in the middle is probed with the same bytes and key, the batch built ahead of it
/// is built again afterwards, and every event arrives once, in order.
#[tokio::test]
async fn a_failure_in_the_middle_of_a_backlog_loses_and_repeats_nothing() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.probe_min = Duration::from_millis(300);
        c.delivery.probe_max = Duration::from_millis(300);
    })
    .await;
    let receiver = TestReceiver::http().await;
    // A 400 is final at once: the third batch turns the webhook inactive, and the first probe
    // fails too.
    receiver.script([
        Behaviour::ACCEPT,
        Behaviour::ACCEPT,
        Behaviour::Status(400),
        Behaviour::Status(400),
    ]);
    bind(&app, "us", &receiver.url(), "cef").await;
    let traces = ingest(&app, "us", 3000, "backlog").await;
    wait_for_traces(&receiver, &traces, Duration::from_secs(60)).await;

    let requests = receiver.requests();
    let ours: Vec<String> = accepted_traces(&requests, "backlog")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(ours, traces, "every event once, in order");
    let keys: Vec<&str> = requests
        .iter()
        .map(|r| r.idempotency_key().unwrap())
        .collect();
    assert_eq!(keys[2], keys[3], "the probe sends the failed batch again");
    assert_eq!(keys[3], keys[4], "and so does the probe that succeeds");
    let distinct: HashSet<&str> = keys.iter().copied().collect();
    assert_eq!(
        distinct.len(),
        keys.len() - 2,
        "no other batch was sent twice"
    );
    for r in &requests {
        assert!(r.lines.len() <= 250, "a batch of {} lines", r.lines.len());
    }

    let s = wait_for_delivered(&app, "us").await;
    assert_eq!(s["webhook_status"], "active");
    app.stop().await;
}

/// Batches cut short by `batch_max_bytes` while a backlog drains: what a batch leaves over
/// goes first into the next one, what was read ahead beyond one batch's worth is read again,
/// and every event arrives once, in order.
#[tokio::test]
async fn byte_limited_batches_drain_a_backlog_once_in_order() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.batch_max_bytes = 8 * 1024;
    })
    .await;
    let receiver = TestReceiver::http().await;
    bind(&app, "us", &receiver.url(), "json").await;
    let traces = ingest(&app, "us", 1500, "bytes").await;
    wait_for_traces(&receiver, &traces, Duration::from_secs(60)).await;
    let requests = receiver.requests();
    let ours: Vec<String> = accepted_traces(&requests, "bytes")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(ours, traces, "every event once, in order");
    for r in &requests {
        let bytes: usize = r.lines.iter().map(|l| l.len() + 1).sum();
        assert!(bytes <= 8 * 1024 + 1, "a batch of {bytes} bytes");
    }
    assert!(requests.len() >= 1500 / 25, "{} requests", requests.len());
    app.stop().await;
}

/// A batch built ahead under the old configuration is not sent: after a change of format,
/// every batch is built in the new one, and no event is lost or sent twice.
#[tokio::test]
async fn a_format_change_mid_backlog_applies_from_the_next_batch() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.probe_min = Duration::from_secs(300);
        c.delivery.probe_max = Duration::from_secs(300);
    })
    .await;
    let receiver = TestReceiver::http().await;
    // The second batch fails for good (the probe is five minutes away), so the lane holds the
    // failed batch and has read past it when the format changes.
    receiver.script([Behaviour::ACCEPT, Behaviour::Status(400)]);
    let destination = bind(&app, "us", &receiver.url(), "cef").await;
    let traces = ingest(&app, "us", 2000, "switch").await;
    wait_for_status(&app, "us", "inactive").await;

    // Changing the destination re-arms the webhook: the held batch is built again in JSON.
    let path = format!("/v3/audit-log-destinations/{destination}");
    let resp = app
        .request(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"log_format": "json"})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    wait_for_traces(&receiver, &traces, Duration::from_secs(60)).await;

    let requests = receiver.requests();
    let ours = accepted_traces(&requests, "switch");
    let in_order: Vec<String> = ours.iter().map(|(_, t)| t.clone()).collect();
    assert_eq!(in_order, traces, "every event once, in order");
    for (i, r) in requests.iter().enumerate().filter(|(_, r)| r.accepted()) {
        let json = r.lines.iter().all(|l| l.starts_with('{'));
        let cef = r.lines.iter().all(|l| l.contains(" CEF:0|"));
        match i {
            0 => assert!(cef, "the first batch went out before the change"),
            _ => assert!(json, "request {i} was built before the change"),
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn a_hanging_siem_does_not_delay_another_webhook() {
    let app = TestApp::spawn_with(dev).await;
    let hanging = TestReceiver::http().await;
    hanging.set_default(Behaviour::Hang);
    let healthy = TestReceiver::http().await;
    bind(&app, "us", &hanging.url(), "cef").await;
    bind(&app, "eu", &healthy.url(), "cef").await;

    ingest(&app, "us", 100, "stuck").await;
    hanging.wait_for_requests(1, Duration::from_secs(10)).await;
    for round in 0..3 {
        let started = Instant::now();
        let traces = ingest(&app, "eu", 100, &format!("eu{round}")).await;
        wait_for_traces(&healthy, &traces, Duration::from_secs(10)).await;
        let took = started.elapsed();
        assert!(
            took < Duration::from_secs(3),
            "round {round}: {took:?} while the other SIEM hangs"
        );
    }
    assert_eq!(
        hanging.requests().len(),
        1,
        "still waiting on its first answer"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_destination_on_loopback_is_refused_at_connect_time() {
    // http is allowed, private addresses are not. The destination is written to the store
    // directly, as if made while the rules were looser (or as if its DNS changed since).
    let app = TestApp::spawn_with(|c| c.delivery.allow_http_endpoints = true).await;
    let receiver = TestReceiver::http().await;
    for (region, endpoint) in [
        ("us", receiver.url()),
        (
            "eu",
            format!("http://localhost:{}/hook", receiver.addr().port()),
        ),
    ] {
        let id = Uuid::new_v4();
        let destination = Destination {
            id,
            org_id: app.org(),
            name: format!("sneaky-{region}"),
            endpoint,
            authorization_sealed: app
                .server
                .as_ref()
                .unwrap()
                .state()
                .secrets
                .seal("x", &id.to_string()),
            log_format: Format::Cef,
            skip_ssl_verification: false,
            integrity: false,
            headers_sealed: None,
            kind: auditrelay_core::kind::Kind::Webhook,
            portal_id: None,
            managed_region: None,
            created_at: now(),
            updated_at: now(),
        };
        app.store().create_destination(&destination).await.unwrap();
        let resp = app
            .request(
                Method::PATCH,
                &format!("/{region}/v3/audit-log-webhook"),
                Some(&app.admin),
                Some(json!({"audit_log_destination_id": id.to_string(), "enabled": true})),
            )
            .await;
        expect_json(resp, StatusCode::OK).await;
        ingest(&app, region, 5, region).await;
        let s = wait_for_status(&app, region, "inactive").await;
        let message = s["last_response_message"].as_str().unwrap();
        assert!(message.contains("private"), "{region}: {message}");
    }
    assert!(receiver.requests().is_empty(), "nothing reached loopback");
    app.stop().await;
}

/// SIGKILL of the real binary while a batch is in flight: after the restart that batch is sent
/// again with the same Idempotency-Key, no event goes under another key than the one it went
/// with, and every event arrives.
#[tokio::test]
async fn sigkill_mid_stream_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let token = create_token(data, "org-admin");
    let port = free_port();
    let start = || {
        serve_dev(
            data,
            port,
            &[("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "500")],
        )
    };
    let mut server = start().await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let receiver = TestReceiver::http().await;
    // Two batches are accepted, the third hangs: it is in flight when the process dies.
    receiver.script([Behaviour::ACCEPT, Behaviour::ACCEPT, Behaviour::Hang]);

    let destination =
        json!({"name": "siem", "endpoint": receiver.url(), "authorization": SIEM_SECRET});
    bind_org_webhook(&base, &token, destination).await;
    let mut traces = Vec::new();
    for chunk in 0..5 {
        let batch: Vec<String> = (0..1000).map(|i| format!("kill-{chunk}-{i:04}")).collect();
        let events: Vec<Value> = batch.iter().map(|t| authorization(now(), t)).collect();
        let resp = client
            .post(format!("{base}/us/v1/events"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(ndjson(&events))
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        traces.extend(batch);
    }
    let hung = receiver.wait_for_requests(3, Duration::from_secs(30)).await;
    let in_flight = hung[2].idempotency_key().unwrap().to_owned();

    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let _restarted = start().await;

    let lines = wait_for_traces(&receiver, &traces, Duration::from_secs(60)).await;
    let mut counts: HashMap<String, usize> = HashMap::new();
    for line in &lines {
        *counts.entry(trace_of(line)).or_default() += 1;
    }
    // Sent again: at most what was noted in flight, the batch in hand and those signed
    // ahead of it (DECISIONS.md S3), each cut as before and under the key it first went with.
    let duplicates = counts.values().filter(|n| **n > 1).count();
    assert!(
        duplicates <= 3 * 500,
        "{duplicates} events arrived twice: more than three batches"
    );
    let mut keys: HashMap<String, HashSet<&str>> = HashMap::new();
    let requests = receiver.requests();
    for request in &requests {
        for line in &request.lines {
            let key = request.idempotency_key().unwrap();
            keys.entry(trace_of(line)).or_default().insert(key);
        }
    }
    let rekeyed: Vec<_> = keys.iter().filter(|(_, keys)| keys.len() > 1).collect();
    assert!(
        rekeyed.is_empty(),
        "events sent under more than one key: {:?}",
        &rekeyed[..rekeyed.len().min(3)]
    );
    let resent = receiver
        .requests()
        .into_iter()
        .filter(|r| r.idempotency_key() == Some(&in_flight))
        .collect::<Vec<_>>();
    assert_eq!(
        resent.len(),
        2,
        "the in-flight batch, sent again after the restart"
    );
    assert_eq!(
        resent[0].lines, resent[1].lines,
        "the same range, the same key"
    );
    assert!(resent[1].accepted());
}

/// The stored cursor never passes an event that was not delivered.
#[tokio::test]
async fn the_cursor_moves_only_after_a_2xx() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.probe_min = Duration::from_secs(300);
        c.delivery.probe_max = Duration::from_secs(300);
    })
    .await;
    let receiver = TestReceiver::http().await;
    receiver.set_default(Behaviour::Status(400));
    bind(&app, "us", &receiver.url(), "cef").await;
    let scope = Scope {
        org_id: app.org(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
    };
    let before = app.store().get_webhook(&scope).await.unwrap().unwrap();
    ingest(&app, "us", 10, "held").await;
    // A 400 is final at once: inactive after one attempt.
    wait_for_status(&app, "us", "inactive").await;
    let after = app.store().get_webhook(&scope).await.unwrap().unwrap();
    assert_eq!(after.cursor, before.cursor, "nothing was delivered");
    assert!(after.in_flight_through.is_some_and(|t| t > after.cursor));
    assert_eq!(receiver.requests().len(), 1);
    app.stop().await;
}

/// The store's writes held back by the test, its reads not: SQLite's write lock taken by a
/// transaction of the test's own, or on PostgreSQL the `webhooks` table locked against
/// changes. Released by rolling back.
enum WriteLock {
    Sqlite(sqlx::SqliteConnection),
    Postgres(sqlx::PgConnection),
}

impl WriteLock {
    async fn take(app: &TestApp) -> Self {
        use sqlx::{Connection, Executor};
        match app.store_url() {
            Some(url) => {
                let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
                conn.execute("BEGIN").await.unwrap();
                conn.execute("LOCK TABLE webhooks IN SHARE MODE")
                    .await
                    .unwrap();
                Self::Postgres(conn)
            }
            None => {
                let options = sqlx::sqlite::SqliteConnectOptions::new()
                    .filename(app.data_dir().join("auditrelay.db"));
                let mut conn = sqlx::SqliteConnection::connect_with(&options)
                    .await
                    .unwrap();
                conn.execute("BEGIN IMMEDIATE").await.unwrap();
                Self::Sqlite(conn)
            }
        }
    }

    async fn release(self) {
        use sqlx::Executor;
        match self {
            Self::Sqlite(mut conn) => conn.execute("ROLLBACK").await.map(drop),
            Self::Postgres(mut conn) => conn.execute("ROLLBACK").await.map(drop),
        }
        .unwrap();
    }
}

/// A server whose batches hold at most 100 events, and its organization's scope in `us`.
async fn app_with_batches_of_100() -> (TestApp, Scope) {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.batch_max_events = 100;
    })
    .await;
    let scope = Scope {
        org_id: app.org(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
    };
    (app, scope)
}

/// A change that reaches the store without its signal (made beside the API, or announced by a
/// node whose connection dropped) still reaches a lane kept busy: one that goes on with its
/// setup while its records are written looks at the stored configuration once a second
/// (`KEEP_UNCHECKED` in `delivery/lane.rs`). Here the destination is pointed at another
/// receiver in the store alone, while a slow SIEM keeps the lane sending batch after batch.
#[tokio::test]
async fn a_busy_lane_sees_a_change_that_was_never_signalled() {
    let (app, scope) = app_with_batches_of_100().await;
    let store = app.store();
    let (first, second) = (TestReceiver::http().await, TestReceiver::http().await);
    // About a quarter of a second per batch: sixteen batches keep the lane busy for four
    // seconds, with the record of the last batch being written at the start of every turn.
    first.set_default(Behaviour::Delay(Duration::from_millis(250)));
    bind(&app, "us", &first.url(), "cef").await;
    let traces = ingest(&app, "us", 1600, "unsignalled").await;
    first.wait_for_requests(1, Duration::from_secs(30)).await;

    let webhook = store.get_webhook(&scope).await.unwrap().unwrap();
    let mut destination = (store.get_destination(scope.org_id, webhook.destination_id))
        .await
        .unwrap()
        .unwrap();
    destination.endpoint = second.url();
    destination.updated_at = now();
    assert!(store.update_destination(&destination).await.unwrap());
    let changed = Instant::now();

    let wanted: HashSet<&str> = traces.iter().map(String::as_str).collect();
    let lines = |receiver: &TestReceiver| -> Vec<String> {
        (receiver.requests().iter())
            .filter(|r| r.accepted())
            .flat_map(|r| r.lines.clone())
            .collect()
    };
    eventually(Duration::from_secs(60), || async {
        let seen: HashSet<String> = [lines(&first), lines(&second)]
            .concat()
            .iter()
            .map(|l| trace_of(l))
            .collect();
        wanted.iter().all(|t| seen.contains(*t)).then_some(())
    })
    .await;
    let switched = (second.requests().first().map(|r| r.at))
        .expect("every batch went to the old endpoint: the lane never looked at the stored change");
    assert!(switched > changed);
    assert!(
        first.requests().iter().all(|r| r.at < switched),
        "the old endpoint got batches after the new one did"
    );
}

/// A lane sends its next batch while the record of the one the SIEM just took is still being
/// written, as long as the store already holds that next batch as in flight (DECISIONS.md
/// S3). Under ingest a record waits behind the writer's group commit: a lane that waited for
/// each one sent a batch per commit and left the cores idle. The test holds the store's writes
/// back: the batch after the one taken still goes, and so does the rest of what is noted, but
/// nothing past it until the store takes writes again.
#[tokio::test]
async fn the_next_batch_goes_while_the_record_of_the_last_waits() {
    let (app, scope) = app_with_batches_of_100().await;
    let store = app.store();
    // The scope's events in `(start, through]`: every batch starts where the last one ended.
    let events_through = async |start: i64, through: Option<i64>| match through {
        Some(through) => store
            .events_to_deliver(&scope, start, Some(through), 100_000)
            .await
            .unwrap()
            .len(),
        None => 0,
    };
    let receiver = TestReceiver::http().await;
    // Each batch is held until the test lets it go.
    receiver.set_default(Behaviour::Hold);
    bind(&app, "us", &receiver.url(), "cef").await;
    let start = store.get_webhook(&scope).await.unwrap().unwrap().cursor;
    let traces = ingest(&app, "us", 800, "piped").await;

    // Batch by batch, until the stored note reaches a whole batch past the one held: the lane
    // notes the batches it has signed ahead with each record, and signs while a batch waits.
    let mut locked = None;
    for held in 1..=6 {
        let requests = receiver
            .wait_for_requests(held, Duration::from_secs(30))
            .await;
        let sent: usize = requests.iter().map(|r| r.lines.len()).sum();
        let webhook = store.get_webhook(&scope).await.unwrap().unwrap();
        let noted = events_through(start, webhook.in_flight_through).await;
        if noted >= sent + 100 {
            locked = Some((WriteLock::take(&app).await, held, noted));
            receiver.release_then(Behaviour::Hold);
            break;
        }
        receiver.release_then(Behaviour::Hold);
    }
    let (lock, held, noted) = locked.expect("the note never reached past the batch held");

    // The SIEM took batch `held`; its record waits for the lock, and the next batch goes.
    let requests = receiver
        .wait_for_requests(held + 1, Duration::from_secs(8))
        .await;
    let sent: usize = requests.iter().map(|r| r.lines.len()).sum();
    let webhook = store.get_webhook(&scope).await.unwrap().unwrap();
    let recorded = events_through(start, Some(webhook.cursor)).await;
    let last_two: usize = requests[held - 1..].iter().map(|r| r.lines.len()).sum();
    assert!(
        recorded <= sent - last_two,
        "the cursor passed {recorded} events: the record of batch {held} was written"
    );
    // Taken at once from now on: the lane sends what is noted, and then waits for the store.
    receiver.release();
    receiver
        .wait_until(Duration::from_secs(8), "every noted event", |requests| {
            let sent: usize = requests.iter().map(|r| r.lines.len()).sum();
            (sent >= noted).then_some(())
        })
        .await;
    let unlocked = Instant::now();
    lock.release().await;

    wait_for_traces(&receiver, &traces, Duration::from_secs(60)).await;
    let requests = receiver.requests();
    let while_locked: usize = requests
        .iter()
        .filter(|r| r.at < unlocked)
        .map(|r| r.lines.len())
        .sum();
    assert_eq!(
        while_locked, noted,
        "sent while the store took no writes: the events noted in flight, no more"
    );
    let ours: Vec<String> = accepted_traces(&requests, "piped")
        .into_iter()
        .map(|(_, t)| t)
        .collect();
    assert_eq!(ours, traces, "every event once, in order");
    let keys: HashSet<&str> = requests
        .iter()
        .map(|r| r.idempotency_key().unwrap())
        .collect();
    assert_eq!(keys.len(), requests.len(), "no batch was sent twice");
    app.stop().await;
}

/// A portal's webhook delivers that portal's developer logins, and nothing of the org's.
#[tokio::test]
async fn a_portal_webhook_delivers_only_its_portals_events() {
    let app = TestApp::spawn_with(dev).await;
    let portal = app.create_portal("Developers", "eu").await;
    let other = app.create_portal("Partners", "eu").await;
    let receiver = TestReceiver::http().await;
    let destination = json!({
        "name": "portal-siem", "endpoint": receiver.url(), "authorization": SIEM_SECRET,
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, destination)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let hook = format!("/v3/portals/{portal}/audit-log-webhook");
    let bind = json!({"audit_log_destination_id": created["id"], "enabled": true});
    let resp = app
        .request(Method::PATCH, &hook, Some(&app.admin), Some(bind))
        .await;
    expect_json(resp, StatusCode::OK).await;

    let logins = |portal, tag: &str| -> (Vec<String>, String) {
        let traces: Vec<String> = (0..20).map(|i| format!("{tag}-{i}")).collect();
        let events: Vec<Value> = traces
            .iter()
            .map(|t| portal_login(now(), portal, t))
            .collect();
        (traces, ndjson(&events))
    };
    let (theirs, body) = logins(other, "partner");
    expect_json(
        app.ingest_ndjson("/v1/events", &app.admin, body).await,
        StatusCode::ACCEPTED,
    )
    .await;
    ingest(&app, "eu", 20, "org").await;
    let (ours, body) = logins(portal, "developer");
    expect_json(
        app.ingest_ndjson("/v1/events", &app.admin, body).await,
        StatusCode::ACCEPTED,
    )
    .await;

    let lines = wait_for_traces(&receiver, &ours, Duration::from_secs(30)).await;
    let delivered: Vec<String> = lines.iter().map(|l| trace_of(l)).collect();
    assert_eq!(delivered, ours, "only this portal's events: {delivered:?}");
    assert!(theirs.iter().all(|t| !delivered.contains(t)));
    for line in &lines {
        assert_eq!(
            parse_line(line.as_bytes()).unwrap().record.header.product,
            "Dev-Portal"
        );
    }
    let status = eventually(Duration::from_secs(30), || async {
        let s = expect_json(
            app.get(&format!("{hook}/status"), &app.admin).await,
            StatusCode::OK,
        )
        .await;
        (s["last_response_code"] == 202).then_some(s)
    })
    .await;
    assert_eq!(status["webhook_status"], "active");
    app.stop().await;
}

/// A newcomer's first five minutes, with the real binaries: `serve`, `listen` as the SIEM,
/// `emit` as the traffic, and `verify` on what arrived.
#[tokio::test]
async fn serve_listen_emit_and_verify_end_to_end() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let token = create_token(&data, "org-admin");
    let port = free_port();
    let _server = serve_dev(&data, port, &[]).await;
    let base = format!("http://127.0.0.1:{port}");
    let jwks = format!("{base}/v2/audit-log-webhook/jwks.json");
    let received = dir.path().join("received.log");
    let listener = Listener::start(&[
        "--authorization",
        SIEM_SECRET,
        "--jwks",
        &jwks,
        "--out",
        received.to_str().unwrap(),
    ])
    .await;

    let destination = json!({
        "name": "local listener", "endpoint": listener.url, "authorization": SIEM_SECRET,
        "log_format": "json",
    });
    bind_org_webhook(&base, &token, destination).await;

    let emitted = tokio::process::Command::new(BIN)
        .args([
            "emit", "--url", &base, "--region", "us", "--count", "2", "--only", "org",
        ])
        .env("AUDITRELAY_TOKEN", &token)
        .output()
        .await
        .unwrap();
    let said = String::from_utf8_lossy(&emitted.stdout);
    assert!(
        emitted.status.success(),
        "{said} {}",
        String::from_utf8_lossy(&emitted.stderr)
    );
    assert!(said.contains("sent 6 org events"), "{said}");

    // The samples come from documentation addresses; the server's own audit events of these
    // requests (from loopback) arrive too.
    let lines = eventually(Duration::from_secs(30), || async {
        let text = std::fs::read_to_string(&received).unwrap_or_default();
        let samples = text.lines().filter(|l| !l.contains("127.0.0.1")).count();
        (samples >= 6).then_some(text)
    })
    .await;
    let verified = tokio::process::Command::new(BIN)
        .args(["verify", "--jwks", &jwks, received.to_str().unwrap()])
        .output()
        .await
        .unwrap();
    let report = String::from_utf8_lossy(&verified.stdout);
    assert!(verified.status.success(), "{report}");
    assert_eq!(
        report.matches(": valid").count(),
        lines.lines().count(),
        "{report}"
    );
    let log = listener.stop().await;
    assert!(!log.contains("INVALID"), "{log}");
    assert!(!log.contains(SIEM_SECRET));
}

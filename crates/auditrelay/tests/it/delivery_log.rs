//! What the operator sees of delivery: a status that shows every attempt as it happens (and
//! forgets an old endpoint's answers when the webhook is re-pointed), the delivery log of recent
//! attempts, bounded per webhook, and "Retry now".

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::{bind, dev, ingest, status, wait_for};
use crate::support::conformance::{Doc, check};
use crate::support::events::{ndjson, portal_login};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::{TestApp, eventually, expect_json, expect_problem, now};

async fn deliveries(app: &TestApp, path: &str) -> Value {
    expect_json(app.get(path, &app.admin).await, StatusCode::OK).await
}

#[tokio::test]
async fn the_status_shows_each_attempt_as_it_happens_and_forgets_a_replaced_endpoint() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
    })
    .await;
    let first = TestReceiver::http().await;
    let destination = bind(&app, "us", &first.url(), "json").await;
    ingest(&app, "us", 5, "fine").await;
    let s = wait_for(&app, "us", |s| s["last_response_code"] == 202).await;
    assert_eq!(s["retrying"], false, "{s}");
    assert_eq!(s["consecutive_failures"], 0, "{s}");
    assert!(s.get("next_attempt_at").is_none(), "{s}");

    // The SIEM fails: the very first failure shows, long before the retries run out (15 s).
    first.set_default(Behaviour::Status(503));
    ingest(&app, "us", 5, "outage").await;
    let s = wait_for(&app, "us", |s| s["last_response_code"] == 503).await;
    check(Doc::V3, "GET", "/audit-log-webhook/status", 200, &s);
    assert_eq!(s["webhook_status"], "inactive", "{s}");
    assert_eq!(s["retrying"], true, "{s}");
    assert!(s["consecutive_failures"].as_u64().unwrap() >= 1, "{s}");
    let next = s["next_attempt_at"]
        .as_str()
        .expect("the next attempt is shown");
    assert!(next > s["last_attempt_at"].as_str().unwrap(), "{s}");
    let s = wait_for(&app, "us", |s| s["consecutive_failures"] == 2).await;
    assert_eq!(s["retrying"], true);

    // Re-pointed to a new endpoint, which holds the batch unanswered for now: nothing the old
    // endpoint said is shown any more.
    let second = TestReceiver::http().await;
    second.set_default(Behaviour::Hold);
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{destination}"),
            Some(&app.admin),
            Some(json!({"endpoint": second.url()})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let s = status(&app, "us").await;
    assert_eq!(s["webhook_status"], "active", "{s}");
    assert_eq!(s["consecutive_failures"], 0, "{s}");
    assert!(s.get("last_response_code").is_none(), "{s}");
    assert!(s.get("last_attempt_at").is_none(), "{s}");
    second.release();
    let s = wait_for(&app, "us", |s| s["last_response_code"] == 202).await;
    assert_eq!(s["webhook_status"], "active");
    assert_eq!(s["retrying"], false);

    // The log: newest first, each attempt with its endpoint, kind, range, answer and time.
    let log = deliveries(&app, "/us/v3/audit-log-webhook/deliveries").await;
    let data = log["data"].as_array().unwrap();
    // The new endpoint's first attempt: the batch the old one failed, sent again.
    let newest = data
        .iter()
        .rev()
        .find(|a| a["endpoint"] == second.url())
        .expect("the new endpoint's attempt");
    assert_eq!(newest["response_code"], 202);
    assert_eq!(newest["delivered"], true);
    assert_eq!(
        newest["kind"], "retry",
        "the batch that failed, again: {newest}"
    );
    assert!(newest["events"].as_u64().unwrap() >= 5, "{newest}");
    assert!(newest["first_seq"].as_i64() <= newest["last_seq"].as_i64());
    let failures: Vec<&Value> = data.iter().filter(|a| a["response_code"] == 503).collect();
    assert!(failures.len() >= 2, "{log}");
    assert!(failures.iter().all(|a| a["endpoint"] == first.url()));
    assert!(failures.iter().any(|a| a["kind"] == "retry"), "{log}");
    assert!(failures.iter().any(|a| a["kind"] == "live"), "{log}");
    assert!(failures.iter().all(|a| a["delivered"] == false));
    let times: Vec<&str> = data
        .iter()
        .map(|a| a["attempted_at"].as_str().unwrap())
        .collect();
    assert!(
        times.windows(2).all(|w| w[0] >= w[1]),
        "newest first: {times:?}"
    );

    let problem = expect_problem(
        app.get(
            "/us/v3/audit-log-webhook/deliveries?page[size]=1000",
            &app.admin,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["invalid_parameters"][0]["field"], "page[size]");
    // Another region's log is its own.
    let eu = deliveries(&app, "/eu/v3/audit-log-webhook/deliveries").await;
    assert_eq!(eu["data"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn retry_now_sends_an_inactive_webhooks_batch_at_once() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        // Without "Retry now", the next probe would be five minutes away.
        c.delivery.probe_min = Duration::from_secs(300);
        c.delivery.probe_max = Duration::from_secs(300);
    })
    .await;
    let receiver = TestReceiver::http().await;
    // A 401 is not retried: the webhook is inactive after one attempt.
    receiver.set_default(Behaviour::Status(401));
    bind(&app, "us", &receiver.url(), "json").await;
    ingest(&app, "us", 3, "refused").await;
    let s = wait_for(&app, "us", |s| s["webhook_status"] == "inactive").await;
    assert_eq!(s["last_response_code"], 401);
    assert_eq!(s["retrying"], true, "a probe is scheduled: {s}");

    // The SIEM's credentials are fixed on its side; the operator asks for a retry now.
    receiver.set_default(Behaviour::ACCEPT);
    let viewer = app
        .token(auditrelay_core::Role::AuditLogsViewer, None)
        .await;
    let refused = app
        .request(
            Method::POST,
            "/us/v3/audit-log-webhook/retry",
            Some(&viewer),
            None,
        )
        .await;
    expect_problem(refused, StatusCode::FORBIDDEN).await;
    let resp = app
        .request(
            Method::POST,
            "/us/v3/audit-log-webhook/retry",
            Some(&app.admin),
            None,
        )
        .await;
    let rearmed = expect_json(resp, StatusCode::OK).await;
    assert_eq!(rearmed["webhook_status"], "active", "{rearmed}");
    let s = wait_for(&app, "us", |s| s["last_response_code"] == 202).await;
    assert_eq!(s["consecutive_failures"], 0);
    // The refused batch went again, as a retry. (The requests above are audited too: later
    // live batches may follow it in the log.)
    let log = deliveries(&app, "/us/v3/audit-log-webhook/deliveries").await;
    let attempts = log["data"].as_array().unwrap();
    let refused = attempts
        .iter()
        .find(|a| a["response_code"] == 401)
        .expect("the refused attempt is logged");
    let again: Vec<&Value> = attempts
        .iter()
        .filter(|a| a["first_seq"] == refused["first_seq"] && a["delivered"] == true)
        .collect();
    assert_eq!(again.len(), 1, "{log}");
    assert_eq!(again[0]["kind"], "retry", "the same batch again: {log}");
    assert_eq!(again[0]["last_seq"], refused["last_seq"], "{log}");

    // Nothing to retry where nothing is configured.
    let missing = app
        .request(
            Method::POST,
            "/eu/v3/audit-log-webhook/retry",
            Some(&app.admin),
            None,
        )
        .await;
    expect_problem(missing, StatusCode::NOT_FOUND).await;
    app.stop().await;
}

/// A portal's scope is quiet (API requests are the org's events), so its log can be read
/// page by page while nothing else is delivered to it.
#[tokio::test]
async fn a_portals_log_is_its_own_bounded_and_paged() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.log_size = 3;
    })
    .await;
    let portal = app.create_portal("Partners", "us").await;
    let receiver = TestReceiver::http().await;
    let created = expect_json(
        app.post(
            "/v3/audit-log-destinations",
            &app.admin,
            json!({"name": "portal-siem", "endpoint": receiver.url(),
                   "authorization": "Bearer p", "log_format": "json"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!("/v3/portals/{portal}/audit-log-webhook");
    let bind = json!({"audit_log_destination_id": created["id"], "enabled": true});
    let resp = app
        .request(Method::PATCH, &path, Some(&app.admin), Some(bind))
        .await;
    expect_json(resp, StatusCode::OK).await;
    // Five batches, one at a time.
    for n in 1..=5 {
        let event = portal_login(now(), portal, &format!("login-{n}"));
        let resp = app
            .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&[event]))
            .await;
        expect_json(resp, StatusCode::ACCEPTED).await;
        receiver.wait_for_requests(n, Duration::from_secs(20)).await;
    }
    // The attempt is logged by the statement that moves the cursor: nothing waits once the
    // status says nothing does.
    eventually(Duration::from_secs(20), || async {
        let status = deliveries(&app, &format!("{path}/status")).await;
        (status["lag_events"] == 0).then_some(())
    })
    .await;
    let log = deliveries(&app, &format!("{path}/deliveries")).await;
    let data = log["data"].as_array().unwrap();
    assert_eq!(data.len(), 3, "bounded by delivery.log_size: {log}");
    assert!(data.iter().all(|a| a["kind"] == "live" && a["events"] == 1));
    let seqs: Vec<i64> = data
        .iter()
        .map(|a| a["first_seq"].as_i64().unwrap())
        .collect();
    assert!(
        seqs.windows(2).all(|w| w[0] > w[1]),
        "newest first: {seqs:?}"
    );

    // Our pagination conventions: page[size], `next` to older attempts, `previous` back.
    let first = deliveries(&app, &format!("{path}/deliveries?page[size]=2")).await;
    assert_eq!(first["data"].as_array().unwrap().as_slice(), &data[..2]);
    assert!(first["meta"]["previous"].is_null());
    let older = deliveries(&app, first["meta"]["next"].as_str().unwrap()).await;
    assert_eq!(older["data"].as_array().unwrap().as_slice(), &data[2..]);
    assert!(older["meta"]["next"].is_null());
    let back = deliveries(&app, older["meta"]["previous"].as_str().unwrap()).await;
    assert_eq!(back["data"], first["data"]);

    let org = deliveries(&app, "/us/v3/audit-log-webhook/deliveries").await;
    assert_eq!(
        org["data"],
        json!([]),
        "the org's log has none of the portal's"
    );
    let retried = app
        .request(
            Method::POST,
            &format!("{path}/retry"),
            Some(&app.admin),
            None,
        )
        .await;
    expect_json(retried, StatusCode::OK).await;
    let portal_admin = app
        .token(auditrelay_core::Role::PortalAdmin, Some(portal))
        .await;
    let own = app.get(&format!("{path}/deliveries"), &portal_admin).await;
    expect_json(own, StatusCode::OK).await;
    let other = app.create_portal("Other", "us").await;
    let foreign = app
        .get(
            &format!("/v3/portals/{other}/audit-log-webhook/deliveries"),
            &portal_admin,
        )
        .await;
    expect_problem(foreign, StatusCode::FORBIDDEN).await;
    app.stop().await;
}

//! Replay jobs: the seeds' recovery scenario for the org and for a portal, DECISIONS.md D1's
//! validation, one job at a time, RBAC, failure, SIGKILL mid-job, and live delivery flowing
//! beside a long replay. Every answer of a documented operation is checked against Konnect's
//! OpenAPI documents.

use std::time::Duration;

use auditrelay::config::Config;
use auditrelay::store::{ReplayJob, ReplayStatus, Scope, Store};
use auditrelay_core::format::{Format, parse_line, verify_line};
use auditrelay_core::{PortalId, Region, Role};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::conformance::{Doc, check};
use crate::support::events::{
    authorization, ndjson, portal_login, trace_counts, trace_of, wait_until_delivered,
};
use crate::support::process::{bind_org_webhook, create_token, free_port, serve_dev};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::signing::jwks;
use crate::support::{
    TestApp, eventually, expect_json, expect_problem, fence, invalid_fields, now,
};

const JOB: &str = "/audit-log-replay-job";
const PORTAL_JOB: &str = "/portals/{portalId}/audit-log-replay-job";

fn dev(c: &mut Config) {
    crate::support::dev(c);
    c.delivery.batch_max_events = 200;
}

/// A destination for `receiver` in `format`; returns its id.
async fn destination(app: &TestApp, receiver: &TestReceiver, format: &str) -> String {
    let body = json!({
        "name": format!("siem-{}", Uuid::new_v4()), "endpoint": receiver.url(),
        "authorization": "Bearer siem", "log_format": format,
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

async fn patch(app: &TestApp, path: &str, body: Value) -> Value {
    let resp = app
        .request(Method::PATCH, path, Some(&app.admin), Some(body))
        .await;
    expect_json(resp, StatusCode::OK).await
}

/// A destination for `receiver` in `format`, bound to the `us` org webhook, enabled; returns the
/// destination's id.
async fn enable_org_webhook(app: &TestApp, receiver: &TestReceiver, format: &str) -> String {
    let id = destination(app, receiver, format).await;
    let bind = json!({"audit_log_destination_id": id, "enabled": true});
    patch(app, "/us/v3/audit-log-webhook", bind).await;
    id
}

/// Events stamped `minutes_ago` (ingested now), with trace ids `<tag>-<i>`.
fn stamped(
    n: usize,
    minutes_ago: i64,
    tag: &str,
    portal: Option<PortalId>,
) -> (Vec<String>, String) {
    let ts = now().saturating_sub_millis(minutes_ago * 60_000);
    let traces: Vec<String> = (0..n).map(|i| format!("{tag}-{i:05}")).collect();
    let events: Vec<Value> = traces
        .iter()
        .map(|t| match portal {
            None => authorization(ts, t),
            Some(p) => portal_login(ts, p, t),
        })
        .collect();
    (traces, ndjson(&events))
}

async fn ingest(app: &TestApp, path: &str, body: String) {
    let resp = app.ingest_ndjson(path, &app.admin, body).await;
    expect_json(resp, StatusCode::ACCEPTED).await;
}

/// Polls the job until it ends, checking every answer against the contract; returns it and
/// every status seen on the way.
async fn wait_for_job(app: &TestApp, path: &str, doc: Doc, template: &str) -> (Value, Vec<String>) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    let mut seen: Vec<String> = Vec::new();
    loop {
        let job = expect_json(app.get(path, &app.admin).await, StatusCode::OK).await;
        check(doc, "GET", template, 200, &job);
        let status = job["status"].as_str().unwrap().to_owned();
        if seen.last() != Some(&status) {
            seen.push(status.clone());
        }
        if matches!(status.as_str(), "completed" | "failed") {
            return (job, seen);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "the job did not end: {job}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

fn window(from_minutes_ago: i64, to_minutes_ago: i64) -> Value {
    let at = |m: i64| now().saturating_sub_millis(m * 60_000).to_rfc3339_seconds();
    json!({"start_at": at(from_minutes_ago), "end_at": at(to_minutes_ago)})
}

/// A job replays its window as it was stored when the job started: events stored later, even
/// with a time inside the window (the PUT's own audit events, a producer's late batch), are
/// live delivery's, so each arrives once and `events_sent` ends equal to `events_total`.
#[tokio::test]
async fn a_job_replays_the_window_as_stored_when_it_started() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    enable_org_webhook(&app, &receiver, "json").await;
    let (early, body) = stamped(300, 20, "early", None);
    ingest(&app, "/us/v1/events", body).await;
    wait_until_delivered(&receiver, &early, 1).await;

    // The SIEM stalls, so the job is still running when late events come in.
    receiver.set_default(Behaviour::Hold);
    let resp = app
        .request(
            Method::PUT,
            "/us/v3/audit-log-replay-job",
            Some(&app.admin),
            Some(window(30, 0)),
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    eventually(Duration::from_secs(30), || async {
        let job = expect_json(
            app.get("/us/v3/audit-log-replay-job", &app.admin).await,
            StatusCode::OK,
        )
        .await;
        (job["status"] == "running" && job["events_total"].is_u64()).then_some(())
    })
    .await;
    let (late, body) = stamped(100, 10, "late", None);
    ingest(&app, "/us/v1/events", body).await;
    receiver.release();

    let (job, _) = wait_for_job(&app, "/us/v3/audit-log-replay-job", Doc::V3, JOB).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["events_sent"], job["events_total"], "{job}");
    wait_until_delivered(&receiver, &early, 2).await;
    wait_until_delivered(&receiver, &late, 1).await;
    let counts = trace_counts(&receiver.requests());
    for t in &late {
        assert_eq!(counts[t], 1, "{t} was stored after the job started");
    }
    app.stop().await;
}

/// A replay whose batches are cut short by `batch_max_bytes`: the leftovers and the events
/// read ahead are sent in order, each once, and nothing of the window is skipped.
#[tokio::test]
async fn a_replay_of_byte_limited_batches_sends_the_window_once() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.batch_max_bytes = 8 * 1024;
    })
    .await;
    let (window_events, body) = stamped(1200, 20, "cut", None);
    ingest(&app, "/us/v1/events", body).await;
    let receiver = TestReceiver::http().await;
    enable_org_webhook(&app, &receiver, "json").await;
    let resp = app
        .request(
            Method::PUT,
            "/us/v3/audit-log-replay-job",
            Some(&app.admin),
            Some(window(25, 15)),
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let (job, _) = wait_for_job(&app, "/us/v3/audit-log-replay-job", Doc::V3, JOB).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["events_sent"], 1200, "{job}");
    wait_until_delivered(&receiver, &window_events, 1).await;
    let replayed: Vec<String> = receiver
        .lines()
        .iter()
        .map(|l| trace_of(l))
        .filter(|t| t.starts_with("cut"))
        .collect();
    assert_eq!(replayed, window_events, "the window once, in order");
    app.stop().await;
}

/// The seeds' scenario: events reached the SIEM, a stretch of them was lost there, a replay of
/// that window sends them again — in the destination's current format, signed, and nothing
/// outside the window.
#[tokio::test]
async fn the_seeds_scenario_for_the_org() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    let id = enable_org_webhook(&app, &receiver, "json").await;
    let (before, body) = stamped(150, 30, "before", None);
    ingest(&app, "/us/v1/events", body).await;
    let (lost, body) = stamped(450, 20, "lost", None);
    ingest(&app, "/us/v1/events", body).await;
    let (after, body) = stamped(150, 10, "after", None);
    ingest(&app, "/us/v1/events", body).await;
    // The other region's events in the window are not this job's.
    let (elsewhere, body) = stamped(50, 20, "eu", None);
    ingest(&app, "/eu/v1/events", body).await;
    let all: Vec<String> = [&before, &lost, &after]
        .into_iter()
        .flatten()
        .cloned()
        .collect();
    wait_until_delivered(&receiver, &all, 1).await;
    let live_requests = receiver.requests().len();

    // The SIEM's operator fixes its parsing and switches the destination to CEF.
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"log_format": "cef"})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let unconfigured = expect_json(
        app.get("/us/v2/audit-log-replay-job", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    check(Doc::V2, "GET", JOB, 200, &unconfigured);
    assert_eq!(
        unconfigured,
        json!({"start_at": "0001-01-01T00:00:00Z", "end_at": "0001-01-01T00:00:00Z",
               "status": "unconfigured", "updated_at": "0001-01-01T00:00:00Z"})
    );

    let resp = app
        .request(
            Method::PUT,
            "/us/v2/audit-log-replay-job",
            Some(&app.admin),
            Some(window(25, 15)),
        )
        .await;
    let accepted = expect_json(resp, StatusCode::ACCEPTED).await;
    check(Doc::V2, "PUT", JOB, 202, &accepted);
    assert_eq!(accepted["status"], "accepted");
    let (job, seen) = wait_for_job(&app, "/us/v3/audit-log-replay-job", Doc::V3, JOB).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(seen.last().unwrap(), "completed", "{seen:?}");
    assert_eq!(job["events_total"], 450);
    assert_eq!(job["events_sent"], 450);
    assert!(job["batches_sent"].as_u64().unwrap() >= 3, "{job}");
    assert!(job["started_at"].is_string() && job["finished_at"].is_string());

    wait_until_delivered(&receiver, &lost, 2).await;
    let counts = trace_counts(&receiver.requests());
    for t in before.iter().chain(&after) {
        assert_eq!(counts[t], 1, "{t} is outside the window");
    }
    for t in &elsewhere {
        assert!(!counts.contains_key(t), "{t} is another region's");
    }
    let (_, keys) = jwks(&app).await;
    let replayed: Vec<String> = receiver.requests()[live_requests..]
        .iter()
        .flat_map(|r| r.lines.clone())
        .filter(|l| trace_of(l).starts_with("lost"))
        .collect();
    assert_eq!(replayed.len(), 450);
    for line in &replayed {
        assert_eq!(
            parse_line(line.as_bytes()).unwrap().format,
            Format::Cef,
            "the current format"
        );
        verify_line(line.as_bytes(), &keys).unwrap();
    }
    app.stop().await;
}

#[tokio::test]
async fn the_seeds_scenario_for_a_portal() {
    let app = TestApp::spawn_with(dev).await;
    let portal = app.create_portal("Developers", "eu").await;
    let receiver = TestReceiver::http().await;
    let id = destination(&app, &receiver, "cps").await;
    let hook = format!("/v2/portals/{portal}/audit-log-webhook");
    patch(
        &app,
        &hook,
        json!({"audit_log_destination_id": id, "enabled": true}),
    )
    .await;
    let (outside, body) = stamped(40, 50, "outside", Some(portal));
    ingest(&app, "/v1/events", body).await;
    let (lost, body) = stamped(60, 20, "lost", Some(portal));
    ingest(&app, "/v1/events", body).await;
    // The org's own events in the window belong to another scope.
    let (org, body) = stamped(30, 20, "org", None);
    ingest(&app, "/eu/v1/events", body).await;
    wait_until_delivered(&receiver, &lost, 1).await;

    let path = format!("/v3/portals/{portal}/audit-log-replay-job");
    let resp = app
        .request(Method::PUT, &path, Some(&app.admin), Some(window(30, 10)))
        .await;
    let accepted = expect_json(resp, StatusCode::ACCEPTED).await;
    check(Doc::PortalV3, "PUT", PORTAL_JOB, 202, &accepted);
    let (job, _) = wait_for_job(&app, &path, Doc::PortalV3, PORTAL_JOB).await;
    assert_eq!(job["status"], "completed", "{job}");
    assert_eq!(job["events_sent"], 60);
    wait_until_delivered(&receiver, &lost, 2).await;
    let counts = trace_counts(&receiver.requests());
    assert!(outside.iter().all(|t| counts[t] == 1));
    assert!(org.iter().all(|t| !counts.contains_key(t)));
    let v2 = expect_json(
        app.get(
            &format!("/v2/portals/{portal}/audit-log-replay-job"),
            &app.admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(v2["status"], "completed");
    app.stop().await;
}

/// DECISIONS.md D1, rule by rule; none of them creates a job.
#[tokio::test]
async fn bad_windows_are_400s_naming_the_field() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.retention.window = Duration::from_secs(7 * 86_400);
    })
    .await;
    let path = "/us/v3/audit-log-replay-job";
    let put = |body: Value| {
        let app = &app;
        async move {
            let resp = app
                .request(Method::PUT, path, Some(&app.admin), Some(body))
                .await;
            let p = expect_problem(resp, StatusCode::BAD_REQUEST).await;
            check(Doc::V3, "PUT", JOB, 400, &p);
            p
        }
    };
    // No enabled webhook yet.
    let p = put(window(20, 10)).await;
    assert_eq!(p["detail"], "webhook is not enabled");
    let receiver = TestReceiver::http().await;
    let id = destination(&app, &receiver, "json").await;
    patch(
        &app,
        "/us/v3/audit-log-webhook",
        json!({"audit_log_destination_id": id}),
    )
    .await;
    assert_eq!(
        put(window(20, 10)).await["detail"],
        "webhook is not enabled",
        "bound but disabled"
    );
    patch(&app, "/us/v3/audit-log-webhook", json!({"enabled": true})).await;

    let ok = now().to_rfc3339_seconds();
    let cases = [
        (json!({"end_at": ok}), ("start_at", "required")),
        (json!({"start_at": ok}), ("end_at", "required")),
        (
            json!({"start_at": "yesterday", "end_at": ok}),
            ("start_at", "is_date_time"),
        ),
        (
            json!({"start_at": ok, "end_at": "2026-13-01T00:00:00Z"}),
            ("end_at", "is_date_time"),
        ),
        (window(8 * 24 * 60, 10), ("start_at", "invalid")),
        (window(10, 20), ("end_at", "invalid")),
        (
            json!({"start_at": ok, "end_at": now().saturating_add_millis(120_000).to_rfc3339_seconds()}),
            ("end_at", "invalid"),
        ),
    ];
    for (body, (field, rule)) in cases {
        let p = put(body.clone()).await;
        assert_eq!(
            invalid_fields(&p),
            [(field.to_owned(), rule.to_owned())],
            "{body}"
        );
    }
    let p = put(json!({"start_at": ok, "end_at": ok, "window": "1h"})).await;
    assert_eq!(invalid_fields(&p)[0].1, "unknown_property");
    let unconfigured = expect_json(app.get(path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(
        unconfigured["status"], "unconfigured",
        "nothing was created"
    );

    // An empty window (start == end, as the docs' own example) is fine. An hour back: at
    // `ok`, a request of this test that came at its very millisecond would have put its own
    // audit events in the window.
    let past = now().saturating_sub_millis(3_600_000).to_rfc3339_seconds();
    let resp = app
        .request(
            Method::PUT,
            path,
            Some(&app.admin),
            Some(json!({"start_at": past, "end_at": past})),
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let (job, _) = wait_for_job(&app, path, Doc::V3, JOB).await;
    assert_eq!(job["status"], "completed");
    assert_eq!(job["events_total"], 0);

    // A read on `global` shows the default region's job, as the PUT there answered.
    let global = expect_json(
        app.get("/global/v3/audit-log-replay-job", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    let us = expect_json(
        app.get("/us/v3/audit-log-replay-job", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    check(Doc::V3, "GET", JOB, 200, &global);
    assert_eq!(global, us);
    app.stop().await;
}

/// A job for `scope` as a PUT makes it, over an empty window ending now.
fn new_job(scope: Scope) -> ReplayJob {
    ReplayJob::accepted(scope, now(), now(), now())
}

/// One job at a time: the store refuses a new job while the current one is accepted, pending or
/// running (the API's 409), and takes it once it ended.
#[tokio::test]
async fn one_job_at_a_time_in_every_in_progress_state() {
    let dir = tempfile::tempdir().unwrap();
    let store = Store::open(&Config::for_data_dir(dir.path()).unwrap())
        .await
        .unwrap();
    let (org, _) = store.ensure_default_org("default", now()).await.unwrap();
    let scope = Scope {
        org_id: org.id,
        region: Region::parse("us").unwrap(),
        portal_id: None,
    };
    let job = |status| ReplayJob {
        status,
        ..new_job(scope.clone())
    };
    let fenced = fence(&store).await;
    let mut current = job(ReplayStatus::Accepted);
    assert!(
        store
            .replace_replay_jobs(std::slice::from_ref(&current))
            .await
            .unwrap()
    );
    for status in [
        ReplayStatus::Accepted,
        ReplayStatus::Pending,
        ReplayStatus::Running,
        ReplayStatus::Completed,
        ReplayStatus::Failed,
    ] {
        current.status = status;
        assert!(store.save_replay_job(&fenced, &current).await.unwrap());
        let next = job(ReplayStatus::Accepted);
        let replaced = store
            .replace_replay_jobs(std::slice::from_ref(&next))
            .await
            .unwrap();
        assert_eq!(replaced, !status.in_progress(), "{status:?}");
        if replaced {
            current = next;
            current.status = status;
        }
    }
    store.close().await;
}

/// A PUT for every region starts every region's job or none (docs/API.md): the store takes
/// them in one write, refused whole when one region's job is still in progress, as when another
/// PUT won the race after the API's check. On SQLite, and on PostgreSQL where it is installed.
#[tokio::test]
async fn the_jobs_of_several_regions_are_replaced_all_or_none() {
    let dir = tempfile::tempdir().unwrap();
    let mut configs = vec![Config::for_data_dir(&dir.path().join("sqlite")).unwrap()];
    if let Some(database) = crate::support::postgres::database().await {
        let mut config = Config::for_data_dir(&dir.path().join("postgres")).unwrap();
        config.store.url = database.url.parse().unwrap();
        configs.push(config);
    }
    for config in configs {
        let store = Store::open(&config).await.unwrap();
        let (org, _) = store.ensure_default_org("default", now()).await.unwrap();
        let job = |region: &str| {
            new_job(Scope {
                org_id: org.id,
                region: Region::parse(region).unwrap(),
                portal_id: None,
            })
        };
        let fenced = fence(&store).await;
        // The US job has ended; the EU job is in progress. (The US scope is made first: on
        // PostgreSQL the scopes are taken in the order of their ids.)
        let mut us = job("us");
        assert!(
            store
                .replace_replay_jobs(std::slice::from_ref(&us))
                .await
                .unwrap()
        );
        us.status = ReplayStatus::Completed;
        assert!(store.save_replay_job(&fenced, &us).await.unwrap());
        let eu = job("eu");
        assert!(
            store
                .replace_replay_jobs(std::slice::from_ref(&eu))
                .await
                .unwrap()
        );

        let both = [job("us"), job("eu")];
        assert!(!store.replace_replay_jobs(&both).await.unwrap());
        let kept = store.get_replay_job(&us.scope).await.unwrap().unwrap();
        assert_eq!(
            (kept.id, kept.status),
            (us.id, ReplayStatus::Completed),
            "the US job was replaced although the EU one could not be"
        );
        assert!(
            store
                .replay_history(&us.scope, 10)
                .await
                .unwrap()
                .is_empty()
        );

        // Once the EU job has ended too, both are replaced.
        let mut eu = eu;
        eu.status = ReplayStatus::Failed;
        assert!(store.save_replay_job(&fenced, &eu).await.unwrap());
        assert!(store.replace_replay_jobs(&both).await.unwrap());
        for job in &both {
            let now_job = store.get_replay_job(&job.scope).await.unwrap().unwrap();
            assert_eq!(now_job.id, job.id);
        }
        store.close().await;
    }
}

/// While a job runs (its SIEM hangs), a PUT is Konnect's 409; RBAC as for webhooks; a portal
/// that does not exist is 404.
#[tokio::test]
async fn conflicts_roles_and_unknown_portals() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    enable_org_webhook(&app, &receiver, "json").await;
    let (_, body) = stamped(5, 20, "held", None);
    ingest(&app, "/us/v1/events", body).await;
    receiver.wait_for_requests(1, Duration::from_secs(10)).await;
    receiver.set_default(Behaviour::Hang);
    let path = "/us/v3/audit-log-replay-job";
    let resp = app
        .request(Method::PUT, path, Some(&app.admin), Some(window(30, 10)))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    eventually(Duration::from_secs(10), || async {
        let job = expect_json(app.get(path, &app.admin).await, StatusCode::OK).await;
        (job["status"] == "running").then_some(())
    })
    .await;
    let resp = app
        .request(Method::PUT, path, Some(&app.admin), Some(window(30, 10)))
        .await;
    let p = expect_problem(resp, StatusCode::CONFLICT).await;
    check(Doc::V3, "PUT", JOB, 409, &p);
    assert_eq!(p["detail"], "A replay job is currently running");
    assert_eq!(p["title"], "Resource Conflict");

    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let producer = app.token(Role::EventProducer, None).await;
    let portal = app.create_portal("A", "us").await;
    let other = app.create_portal("B", "us").await;
    let portal_admin = app.token(Role::PortalAdmin, Some(portal)).await;
    let status = |token: &str, method: Method, path: String| {
        let app = &app;
        let token = token.to_owned();
        async move {
            let body = (method == Method::PUT).then(|| window(30, 10));
            app.request(method, &path, Some(&token), body)
                .await
                .status()
        }
    };
    assert_eq!(
        status(&viewer, Method::GET, path.into()).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&viewer, Method::PUT, path.into()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&producer, Method::GET, path.into()).await,
        StatusCode::FORBIDDEN
    );
    assert_eq!(
        status(&portal_admin, Method::PUT, path.into()).await,
        StatusCode::FORBIDDEN
    );
    let own = format!("/v3/portals/{portal}/audit-log-replay-job");
    let theirs = format!("/v3/portals/{other}/audit-log-replay-job");
    assert_eq!(
        status(&portal_admin, Method::GET, own.clone()).await,
        StatusCode::OK
    );
    assert_eq!(
        status(&portal_admin, Method::GET, theirs.clone()).await,
        StatusCode::FORBIDDEN
    );
    // Its portal has no webhook yet: allowed to ask, told why not.
    assert_eq!(
        status(&portal_admin, Method::PUT, own).await,
        StatusCode::BAD_REQUEST
    );
    for portal in [PortalId::new_v4().to_string(), "nope".into()] {
        let path = format!("/v3/portals/{portal}/audit-log-replay-job");
        let resp = app
            .request(Method::PUT, &path, Some(&app.admin), Some(window(30, 10)))
            .await;
        let p = expect_problem(resp, StatusCode::NOT_FOUND).await;
        check(Doc::PortalV3, "PUT", PORTAL_JOB, 404, &p);
        let p = expect_problem(app.get(&path, &app.admin).await, StatusCode::NOT_FOUND).await;
        check(Doc::PortalV3, "GET", PORTAL_JOB, 404, &p);
    }
    receiver.set_default(Behaviour::ACCEPT);
    app.stop().await;
}

/// A SIEM that refuses fails the job with the reason; a new PUT is then accepted.
#[tokio::test]
async fn a_refusing_siem_fails_the_job_and_a_new_one_is_accepted() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    enable_org_webhook(&app, &receiver, "json").await;
    let (traces, body) = stamped(20, 20, "refused", None);
    ingest(&app, "/us/v1/events", body).await;
    wait_until_delivered(&receiver, &traces, 1).await;

    receiver.set_default(Behaviour::Status(403));
    let path = "/us/v2/audit-log-replay-job";
    let resp = app
        .request(Method::PUT, path, Some(&app.admin), Some(window(30, 10)))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let (job, _) = wait_for_job(&app, path, Doc::V2, JOB).await;
    assert_eq!(job["status"], "failed");
    let reason = job["failure_reason"].as_str().unwrap();
    assert!(
        reason.contains("Forbidden") && reason.contains("403"),
        "{reason}"
    );

    receiver.set_default(Behaviour::ACCEPT);
    let resp = app
        .request(Method::PUT, path, Some(&app.admin), Some(window(30, 10)))
        .await;
    let again = expect_json(resp, StatusCode::ACCEPTED).await;
    assert_eq!(again["status"], "accepted");
    assert!(
        again.get("failure_reason").is_none(),
        "a fresh job: {again}"
    );
    let (job, _) = wait_for_job(&app, path, Doc::V2, JOB).await;
    assert_eq!(job["status"], "completed");
    wait_until_delivered(&receiver, &traces, 2).await;
    app.stop().await;
}

/// Live events keep arriving while a long replay runs to the same SIEM.
#[tokio::test]
async fn live_delivery_flows_during_a_long_replay() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.delivery.batch_max_events = 100;
    })
    .await;
    let receiver = TestReceiver::http().await;
    enable_org_webhook(&app, &receiver, "cef").await;
    let mut window_traces = Vec::new();
    for chunk in 0..10 {
        let (traces, body) = stamped(1000, 20, &format!("old{chunk}"), None);
        ingest(&app, "/us/v1/events", body).await;
        window_traces.extend(traces);
    }
    wait_until_delivered(&receiver, &window_traces, 1).await;

    let path = "/us/v3/audit-log-replay-job";
    let resp = app
        .request(Method::PUT, path, Some(&app.admin), Some(window(30, 10)))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    eventually(Duration::from_secs(10), || async {
        let job = expect_json(app.get(path, &app.admin).await, StatusCode::OK).await;
        (job["status"] == "running" && job["events_sent"].as_u64() > Some(0)).then_some(())
    })
    .await;
    let (live, body) = stamped(20, 0, "live", None);
    ingest(&app, "/us/v1/events", body).await;
    wait_until_delivered(&receiver, &live, 1).await;
    let job = expect_json(app.get(path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(
        job["status"], "running",
        "live events arrived while the replay ran: {job}"
    );
    let (job, _) = wait_for_job(&app, path, Doc::V3, JOB).await;
    assert_eq!(job["events_sent"], 10_000);
    app.stop().await;
}

/// SIGKILL of the real binary while a job runs: after the restart it completes, and the SIEM
/// has the whole window (at most one batch twice).
#[tokio::test]
async fn sigkill_while_running_then_the_job_completes() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path();
    let token = create_token(data, "org-admin");
    let port = free_port();
    let start = || {
        serve_dev(
            data,
            port,
            &[("AUDITRELAY_DELIVERY__BATCH_MAX_EVENTS", "200")],
        )
    };
    let mut server = start().await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let receiver = TestReceiver::http().await;
    let call = |method: Method, path: &str, body: Value| {
        client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token)
            .json(&body)
            .send()
    };
    let destination =
        json!({"name": "siem", "endpoint": receiver.url(), "authorization": "Bearer siem"});
    bind_org_webhook(&base, &token, destination).await;
    let mut traces = Vec::new();
    for chunk in 0..10 {
        let (batch, body) = stamped(1000, 20, &format!("w{chunk}"), None);
        let resp = client
            .post(format!("{base}/us/v1/events"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .unwrap();
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        traces.extend(batch);
    }
    wait_until_delivered(&receiver, &traces, 1).await;

    let resp = call(Method::PUT, "/us/v3/audit-log-replay-job", window(30, 10))
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let get = || async {
        let resp = client
            .get(format!("{base}/us/v3/audit-log-replay-job"))
            .bearer_auth(&token)
            .send()
            .await;
        resp.ok()?.json::<Value>().await.ok()
    };
    eventually(Duration::from_secs(30), || async {
        let job = get().await?;
        (job["status"] == "running" && job["events_sent"].as_u64() >= Some(1000)).then_some(())
    })
    .await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    let sent_before = trace_counts(&receiver.requests())
        .values()
        .filter(|n| **n >= 2)
        .count();
    assert!(
        sent_before < 10_000,
        "the job was still running when it was killed"
    );

    let _restarted = start().await;
    let job = eventually(Duration::from_secs(60), || async {
        let job = get().await?;
        (job["status"] == "completed").then_some(job)
    })
    .await;
    assert!(job["events_sent"].as_u64().unwrap() >= 10_000, "{job}");
    wait_until_delivered(&receiver, &traces, 2).await;
    // Counted over the window's events only: the server's own events of one request share a
    // trace id, so theirs count several times without any resend.
    let counts = trace_counts(&receiver.requests());
    let thrice = traces.iter().filter(|t| counts[*t] > 2).count();
    assert!(
        thrice <= 200,
        "{thrice} events sent again: more than one batch"
    );
}

/// Our extensions: a job in progress can be cancelled (it ends `failed`, saying who cancelled
/// it, and its executor sends nothing more), and each scope keeps its past jobs.
#[tokio::test]
async fn a_running_job_can_be_cancelled_and_past_jobs_are_kept() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    // Stored before the webhook is on: only replays send these.
    let (old, body) = stamped(500, 30, "old", None);
    ingest(&app, "/us/v1/events", body).await;
    enable_org_webhook(&app, &receiver, "json").await;

    // The SIEM holds the first batch: the job is running when it is cancelled.
    receiver.set_default(Behaviour::Hold);
    let put = || {
        app.request(
            Method::PUT,
            "/us/v3/audit-log-replay-job",
            Some(&app.admin),
            Some(window(60, 0)),
        )
    };
    expect_json(put().await, StatusCode::ACCEPTED).await;
    eventually(Duration::from_secs(30), || async {
        let job = expect_json(
            app.get("/us/v3/audit-log-replay-job", &app.admin).await,
            StatusCode::OK,
        )
        .await;
        (job["status"] == "running").then_some(())
    })
    .await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let cancel = |token: String| {
        let app = &app;
        async move {
            app.request(
                Method::POST,
                "/us/v3/audit-log-replay-job/cancel",
                Some(&token),
                None,
            )
            .await
        }
    };
    expect_problem(cancel(viewer).await, StatusCode::FORBIDDEN).await;
    let cancelled = expect_json(cancel(app.admin.clone()).await, StatusCode::OK).await;
    check(Doc::V3, "GET", JOB, 200, &cancelled);
    assert_eq!(cancelled["status"], "failed");
    let reason = cancelled["failure_reason"].as_str().unwrap();
    assert!(
        reason.starts_with("cancelled by bootstrap-admin at "),
        "{reason}"
    );
    let again = expect_problem(cancel(app.admin.clone()).await, StatusCode::CONFLICT).await;
    assert_eq!(again["detail"], "No replay job is in progress");
    receiver.release();

    // A new job is accepted at once, and sends the whole window; the cancelled one sent at
    // most the batch it was holding.
    expect_json(put().await, StatusCode::ACCEPTED).await;
    let (second, _) = wait_for_job(&app, "/us/v3/audit-log-replay-job", Doc::V3, JOB).await;
    assert_eq!(second["status"], "completed", "{second}");
    wait_until_delivered(&receiver, &old, 1).await;
    let sent = trace_counts(&receiver.requests());
    let old_lines: usize = old.iter().map(|t| sent.get(t).copied().unwrap_or(0)).sum();
    assert!(
        (500..=700).contains(&old_lines),
        "the second job's 500, and at most one 200-event batch of the cancelled one: {old_lines}"
    );
    let still = expect_json(
        app.get("/us/v3/audit-log-replay-job", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(still["status"], "completed");

    // A third job: the scope's history holds the two before it, newest first.
    expect_json(put().await, StatusCode::ACCEPTED).await;
    let history = expect_json(
        app.get("/us/v3/audit-log-replay-job/history", &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    let jobs = history["data"].as_array().unwrap();
    assert_eq!(jobs.len(), 2, "{history}");
    assert_eq!(jobs[0]["status"], "completed");
    assert_eq!(jobs[0]["events_sent"], second["events_sent"]);
    assert_eq!(jobs[1]["status"], "failed");
    assert_eq!(jobs[1]["failure_reason"], reason);
    let eu = expect_json(
        app.get("/eu/v3/audit-log-replay-job/history", &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(eu["data"], json!([]));
    wait_for_job(&app, "/us/v3/audit-log-replay-job", Doc::V3, JOB).await;
    app.stop().await;
}

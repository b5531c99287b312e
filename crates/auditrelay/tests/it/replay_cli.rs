//! `auditrelay replay`, the real binary against a live server and a real webhook receiver: a
//! window of the org's and of a portal's logs replayed and followed to `completed`; a SIEM
//! that refuses fails the job (exit 1); a running job is explained on a second start and
//! `--wait` gives up at `--timeout` (exit 2); and what the server or the command line refuses
//! (no enabled webhook, a window outside retention, an unreadable time) says why.

use std::process::Output;
use std::time::Duration;

use auditrelay_core::PortalId;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::events::{access, authentication, authorization, ndjson, portal_login};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::signing::{run, stderr, stdout};
use crate::support::{TestApp, dev, expect_json, now};

/// Runs `replay` against `app` with its admin token and `args`; the token is never printed.
async fn replay(app: &TestApp, args: &[&str]) -> Output {
    let mut all = vec!["replay", "--url", app.base.as_str(), "--token", &app.admin];
    all.extend_from_slice(args);
    let out = run(&all, None).await;
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!printed.contains(&app.admin), "the token is never printed");
    out
}

/// A destination for `receiver`, bound to the webhook at `path` and enabled.
async fn bind(app: &TestApp, path: &str, receiver: &TestReceiver) {
    let destination = json!({
        "name": format!("siem {path}"), "endpoint": receiver.url(),
        "authorization": "Splunk replay-cli-test", "log_format": "json",
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, destination)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let body = json!({"audit_log_destination_id": created["id"], "enabled": true});
    let resp = app
        .request(Method::PATCH, path, Some(&app.admin), Some(body))
        .await;
    expect_json(resp, StatusCode::OK).await;
}

/// Ingests `events` in one request.
async fn ingest(app: &TestApp, events: &[Value]) {
    let resp = app
        .ingest_ndjson("/v1/events", &app.admin, ndjson(events))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
}

/// Ingests one org event of each type, tagged `tag-N`; returns the trace ids.
async fn ingest_org(app: &TestApp, tag: &str) -> Vec<String> {
    let traces: Vec<String> = (0..3).map(|i| format!("{tag}-{i}")).collect();
    let events = [
        authorization(now(), &traces[0]),
        access(now(), &traces[1]),
        authentication(now(), &traces[2]),
    ];
    ingest(app, &events).await;
    traces
}

/// How many accepted lines carry each of `traces`, once every one has arrived.
async fn delivered(receiver: &TestReceiver, traces: &[String]) -> Vec<usize> {
    receiver
        .wait_until(Duration::from_secs(30), "the replayed events", |requests| {
            let lines: Vec<&String> = requests
                .iter()
                .filter(|r| r.accepted())
                .flat_map(|r| &r.lines)
                .collect();
            let counts: Vec<usize> = traces
                .iter()
                .map(|t| {
                    let quoted = format!("\"{t}\"");
                    lines.iter().filter(|l| l.contains(&quoted)).count()
                })
                .collect();
            counts.iter().all(|n| *n > 0).then_some(counts)
        })
        .await
}

async fn job(app: &TestApp, path: &str) -> Value {
    expect_json(app.get(path, &app.admin).await, StatusCode::OK).await
}

#[tokio::test]
async fn replays_the_last_hour_and_waits_until_it_completed() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    // Stored before the webhook is on, so only the replay can deliver them.
    let traces = ingest_org(&app, "before-the-webhook").await;
    bind(&app, "/us/v3/audit-log-webhook", &receiver).await;

    let out = replay(&app, &["--last", "1h", "--region", "us", "--wait"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let job = job(&app, "/us/v3/audit-log-replay-job").await;
    assert_eq!(job["status"], "completed", "{job}");
    // The window also holds the server's own audit events of the test's requests.
    let sent = job["events_sent"].as_u64().unwrap();
    let batches = job["batches_sent"].as_u64().unwrap();
    assert!(sent >= 3, "{job}");
    assert_eq!(job["events_total"], sent, "{job}");

    let printed = stdout(&out);
    let lines: Vec<&str> = printed.lines().collect();
    assert_eq!(lines.len(), 2, "{printed}");
    assert!(lines[0].starts_with("replay job accepted: "), "{printed}");
    assert!(lines[0].ends_with(" (region us)"), "{printed}");
    let noun = if batches == 1 { "batch" } else { "batches" };
    assert!(
        lines[1].starts_with(&format!(
            "replay job completed: {sent} events in {batches} {noun} in "
        )),
        "{printed}"
    );
    // Not a terminal: a line per step, ending with the totals.
    let progress = stderr(&out);
    assert!(progress.starts_with("accepted\n"), "{progress}");
    assert!(
        progress.ends_with(&format!(
            "completed: {sent} / {sent} events (100%), {batches} {noun}\n"
        )),
        "{progress}"
    );

    assert_eq!(delivered(&receiver, &traces).await, [1, 1, 1]);

    // The job stays readable after it ended.
    let out = replay(&app, &["--status", "--region", "us"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let shown = stdout(&out);
    assert!(
        shown.starts_with("replay job of region us: completed\n"),
        "{shown}"
    );
    assert!(
        shown.contains(&format!(
            "\n  progress  {sent} / {sent} events (100%), {batches} {noun}\n"
        )),
        "{shown}"
    );
    app.stop().await;
}

#[tokio::test]
async fn a_portal_job_replays_only_that_portals_logins() {
    let app = TestApp::spawn_with(dev).await;
    let portal = app.create_portal("Developers", "eu").await;
    let receiver = TestReceiver::http().await;
    let traces: Vec<String> = (0..5).map(|i| format!("developer-{i}")).collect();
    let logins: Vec<Value> = traces
        .iter()
        .map(|t| portal_login(now(), portal, t))
        .collect();
    ingest(&app, &logins).await;
    let org = ingest_org(&app, "org").await;
    bind(
        &app,
        &format!("/v3/portals/{portal}/audit-log-webhook"),
        &receiver,
    )
    .await;

    let id = portal.to_string();
    let out = replay(&app, &["--last", "30m", "--portal", &id, "--wait"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains(&format!(" (portal {id})\n")), "{printed}");
    assert!(
        printed.contains("\nreplay job completed: 5 events in 1 batch in "),
        "{printed}"
    );
    assert_eq!(delivered(&receiver, &traces).await, [1; 5]);
    let lines = receiver.lines();
    assert_eq!(lines.len(), 5, "only the portal's logins: {lines:?}");
    assert!(org.iter().all(|t| lines.iter().all(|l| !l.contains(t))));
    app.stop().await;
}

#[tokio::test]
async fn a_siem_that_refuses_fails_the_job_with_its_reason() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    ingest_org(&app, "refused").await;
    bind(&app, "/us/v3/audit-log-webhook", &receiver).await;
    // A 400 is final: no retries, the job fails at its first batch.
    receiver.set_default(Behaviour::Status(400));

    let out = replay(&app, &["--last", "1h", "--wait"]).await;
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with("(the server's default region)\n"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(err.contains("\nerror: replay job failed: "), "{err}");
    assert!(err.contains("(HTTP 400)"), "{err}");
    let job = job(&app, "/v3/audit-log-replay-job").await;
    assert_eq!(job["status"], "failed", "{job}");
    let reason = job["failure_reason"].as_str().unwrap();
    assert!(err.contains(reason), "{err}\n{job}");
    app.stop().await;
}

#[tokio::test]
async fn a_running_job_is_explained_and_wait_gives_up_at_the_timeout() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    ingest_org(&app, "hanging").await;
    bind(&app, "/eu/v3/audit-log-webhook", &receiver).await;
    // The SIEM never answers: the job stays running while its attempt waits for a timeout.
    receiver.set_default(Behaviour::Hang);
    let out = replay(&app, &["--last", "1h", "--region", "eu"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).ends_with(" (region eu)\n"), "{}", stdout(&out));

    let out = replay(&app, &["--last", "2h", "--region", "eu"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "error: The server refused to start the replay job: HTTP 409 Conflict: A replay job is currently running\n  A replay job is already running in this scope: `auditrelay replay --status --region eu` shows it"
        ),
        "{err}"
    );

    let out = replay(
        &app,
        &["--status", "--region", "eu", "--wait", "--timeout", "1s"],
    )
    .await;
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    assert!(
        stdout(&out).starts_with("replay job of region eu: "),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains("after --timeout 1.0s; it goes on in the server: follow it with `auditrelay replay --status --wait --region eu`"),
        "{err}"
    );
    app.stop().await;
}

#[tokio::test]
async fn without_an_enabled_webhook_the_servers_reason_is_shown() {
    let app = TestApp::spawn_with(dev).await;
    ingest_org(&app, "nowhere").await;
    let out = replay(&app, &["--last", "1h", "--region", "us", "--wait"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(stdout(&out), "");
    let err = stderr(&out);
    assert!(
        err.starts_with(
            "error: The server refused to start the replay job: HTTP 400 Bad Request: webhook is not enabled\n  webhook is not enabled: a replay"
        ),
        "{err}"
    );
    assert!(
        err.contains("(server log and audit trail: kong:trace:"),
        "{err}"
    );
    let job = job(&app, "/us/v3/audit-log-replay-job").await;
    assert_eq!(job["status"], "unconfigured", "{job}");
    app.stop().await;
}

#[tokio::test]
async fn windows_the_server_or_the_command_line_refuse_say_why() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    bind(&app, "/us/v3/audit-log-webhook", &receiver).await;

    // Unreadable: refused before anything is sent.
    for args in [
        &["--from", "garbage"][..],
        &["--last", "a while"],
        &["--last", "1h", "--from", "2026-11-22T08:00:00Z"],
    ] {
        let out = replay(&app, args).await;
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        assert!(stderr(&out).starts_with("error: "), "{}", stderr(&out));
    }
    let out = replay(&app, &["--from", "garbage"]).await;
    assert!(
        stderr(&out)
            .contains("invalid value 'garbage' for '--from <TIME>': not an RFC 3339 date-time"),
        "{}",
        stderr(&out)
    );

    // Readable but outside the rules: the server's reasons, a field per line.
    let out = replay(&app, &["--last", "30d"]).await;
    assert_eq!(out.status.code(), Some(1));
    let err = stderr(&out);
    assert!(
        err.contains(
            "HTTP 400 Bad Request: Invalid replay window\n  body: start_at must be within the retention window"
        ),
        "{err}"
    );
    let out = replay(
        &app,
        &[
            "--from",
            &now().saturating_sub_millis(60_000).to_rfc3339_millis(),
            "--to",
            &now().saturating_sub_millis(120_000).to_rfc3339_millis(),
        ],
    )
    .await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("\n  body: end_at must not be before start_at [invalid]"),
        "{}",
        stderr(&out)
    );

    // --status and --wait follow one job; `global` starts several.
    let out = replay(&app, &["--status", "--region", "global"]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(stderr(&out).contains("name a region"), "{}", stderr(&out));

    let job = job(&app, "/us/v3/audit-log-replay-job").await;
    assert_eq!(job["status"], "unconfigured", "nothing started: {job}");
    app.stop().await;
}

#[tokio::test]
async fn status_of_a_scope_without_a_job_is_unconfigured() {
    let app = TestApp::spawn().await;
    for args in [
        &["--status"][..],
        &["--status", "--region", "eu"],
        &["--status", "--wait"],
    ] {
        let out = replay(&app, args).await;
        assert!(out.status.success(), "{args:?}: {}", stderr(&out));
        assert!(
            stdout(&out).ends_with(": unconfigured (none was started)\n"),
            "{args:?}: {}",
            stdout(&out)
        );
    }
    let unknown = PortalId::new_v4().to_string();
    let out = replay(&app, &["--status", "--portal", &unknown]).await;
    assert_eq!(out.status.code(), Some(1));
    assert!(
        stderr(&out).contains("HTTP 404 Not Found"),
        "{}",
        stderr(&out)
    );
    app.stop().await;
}

//! `auditrelay emit`, run as a user would against a live server: every type lands in the org
//! (default region and `--region eu`) and developer logins under the portal (given, found,
//! created or reused by name); refusals (a bad token, a role that may not ingest, an unknown
//! portal) and an unreachable server fail with a message that says what to do. And every
//! sample the generator can make passes the server's own validation.

use std::collections::BTreeMap;
use std::process::Output;

use auditrelay::cli::emit::{TraceIds, org_events, portal_events};
use auditrelay::store::StoredEvent;
use auditrelay_core::{EventType, PortalId, Role};
use reqwest::StatusCode;

use crate::support::events::ndjson;
use crate::support::signing::{run, stderr, stdout};
use crate::support::{TestApp, expect_json, now};

/// Runs `emit` against `app` with `token` and the extra `args`.
async fn emit(app: &TestApp, token: &str, args: &[&str]) -> Output {
    let mut all = vec!["emit", "--url", app.base.as_str(), "--token", token];
    all.extend_from_slice(args);
    let out = run(&all, None).await;
    let printed = format!("{}{}", stdout(&out), stderr(&out));
    assert!(!printed.contains(token), "the token is never printed");
    out
}

/// The samples among `events`: the server's self-audit events of the test's own requests all
/// come from loopback, the samples never do.
fn samples(events: Vec<StoredEvent>) -> Vec<StoredEvent> {
    events
        .into_iter()
        .filter(|e| e.event.client_ip.as_deref() != Some("127.0.0.1"))
        .collect()
}

/// How many samples of each type the org scope of `region` holds.
async fn org_samples(app: &TestApp, region: &str) -> BTreeMap<EventType, usize> {
    let mut counts = BTreeMap::new();
    for e in samples(app.stored(region, None, None).await) {
        *counts.entry(e.event.event_type()).or_default() += 1;
    }
    counts
}

fn each_type(n: usize) -> BTreeMap<EventType, usize> {
    EventType::ALL.into_iter().map(|t| (t, n)).collect()
}

/// The developer logins stored under `portal` (in its region, `eu` in these tests).
async fn portal_samples(app: &TestApp, portal: PortalId) -> Vec<StoredEvent> {
    let events = app.stored("eu", Some(portal), None).await;
    assert!(
        events
            .iter()
            .all(|e| e.event.event_type() == EventType::Authentication),
        "Dev Portal events are logins"
    );
    events
}

#[tokio::test]
async fn sends_every_type_to_the_org_and_logins_to_the_portal() {
    let app = TestApp::spawn().await;
    let portal = app.create_portal("Developer Portal", "eu").await;
    let id = portal.to_string();

    let out = emit(&app, &app.admin, &["--count", "2", "--portal", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!(
            "sent 6 org events (2 authentication, 2 authorization, 2 gateway_access) to the server's default region\n\
             sent 2 portal events (developer logins) to portal {id}\n"
        )
    );
    assert_eq!(org_samples(&app, "us").await, each_type(2));
    assert_eq!(portal_samples(&app, portal).await.len(), 2);

    // Without --portal, the first portal the token can list gets the logins.
    let out = emit(&app, &app.admin, &["--count", "2", "--region", "eu"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    let printed = stdout(&out);
    assert!(printed.contains("to region eu\n"), "{printed}");
    assert!(
        printed.contains(&format!(
            "to portal {id} (Developer Portal, region eu; the first listed)"
        )),
        "{printed}"
    );
    assert_eq!(org_samples(&app, "eu").await, each_type(2));
    assert_eq!(
        org_samples(&app, "us").await,
        each_type(2),
        "us is untouched"
    );
    assert_eq!(portal_samples(&app, portal).await.len(), 4);
    app.stop().await;
}

#[tokio::test]
async fn without_a_portal_it_says_so_and_create_portal_makes_or_reuses_one() {
    let app = TestApp::spawn().await;
    let out = emit(&app, &app.admin, &["--count", "1"]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stdout(&out).ends_with(
            "sent no portal events: no portal exists (add --create-portal NAME to make one)\n"
        ),
        "{}",
        stdout(&out)
    );
    assert_eq!(org_samples(&app, "us").await, each_type(1));

    let out = emit(&app, &app.admin, &["--only", "portal"]).await;
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("--only portal needs a portal, and no portal exists"),
        "{}",
        stderr(&out)
    );

    // Created in --region, then found by name: running the same command twice works.
    let args = [
        "--count",
        "2",
        "--region",
        "eu",
        "--create-portal",
        "Demo portal",
    ];
    for how in ["created", "found by name"] {
        let out = emit(&app, &app.admin, &args).await;
        assert!(out.status.success(), "{}", stderr(&out));
        let printed = stdout(&out);
        assert!(
            printed.contains(&format!("(Demo portal, region eu; {how})")),
            "{printed}"
        );
    }
    let listed = expect_json(app.get("/v3/portals", &app.admin).await, StatusCode::OK).await;
    assert_eq!(listed["data"].as_array().unwrap().len(), 1, "{listed}");
    let portal = PortalId::parse(listed["data"][0]["id"].as_str().unwrap()).unwrap();
    assert_eq!(portal_samples(&app, portal).await.len(), 4);
    assert_eq!(org_samples(&app, "eu").await, each_type(4));
    app.stop().await;
}

#[tokio::test]
async fn a_portal_bound_producer_sends_only_its_portals_logins() {
    let app = TestApp::spawn().await;
    let portal = app.create_portal("Partners", "eu").await;
    let producer = app.token(Role::EventProducer, Some(portal)).await;
    let id = portal.to_string();

    // Its org events are refused, with the way out in the message; nothing was stored.
    let out = emit(&app, &producer, &["--portal", &id]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with("error: The server refused the org events: HTTP 403 Forbidden: "),
        "{err}"
    );
    assert!(err.contains("--only portal --portal ID"), "{err}");
    assert!(
        err.contains("(server log and audit trail: kong:trace:"),
        "{err}"
    );
    assert_eq!(org_samples(&app, "us").await, BTreeMap::new());

    let out = emit(&app, &producer, &["--only", "portal", "--portal", &id]).await;
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(
        stdout(&out),
        format!("sent 3 portal events (developer logins) to portal {id}\n")
    );
    assert_eq!(portal_samples(&app, portal).await.len(), 3);
    assert_eq!(org_samples(&app, "us").await, BTreeMap::new());
    app.stop().await;
}

#[tokio::test]
async fn refusals_fail_with_the_servers_reasons() {
    let app = TestApp::spawn().await;

    // A token the server does not know: nothing is sent, and the message says where to get one.
    let out = emit(&app, "kpat_00000000000000000000000000000000000000000", &[]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("HTTP 401 Unauthorized"), "{err}");
    assert!(err.contains("--token or $AUDITRELAY_TOKEN"), "{err}");
    assert_eq!(stdout(&out), "");

    // An unknown portal: the org events went in, the portal's are refused with the field named.
    let unknown = PortalId::new_v4().to_string();
    let out = emit(&app, &app.admin, &["--count", "1", "--portal", &unknown]).await;
    assert!(!out.status.success());
    assert!(
        stdout(&out).starts_with("sent 3 org events"),
        "{}",
        stdout(&out)
    );
    let err = stderr(&out);
    assert!(
        err.contains(&format!(
            "The server refused the portal events: HTTP 400 Bad Request: Unknown portal at line 1; nothing was stored\n  line 1: portal_id no portal has id {unknown} [missing_reference]"
        )),
        "{err}"
    );

    // A region the server does not serve.
    let out = emit(&app, &app.admin, &["--region", "ap", "--only", "org"]).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(err.contains("HTTP 404 Not Found"), "{err}");
    assert!(err.contains("ap"), "{err}");
    app.stop().await;
}

#[tokio::test]
async fn an_unreachable_server_is_named_with_a_hint() {
    // A port nothing listens on: bound, read, and released.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("http://127.0.0.1:{port}");
    let out = run(&["emit", "--url", &url, "--token", "kpat_x"], None).await;
    assert!(!out.status.success());
    let err = stderr(&out);
    assert!(
        err.starts_with(&format!(
            "error: Could not connect to auditrelay at {url} ("
        )),
        "{err}"
    );
    assert!(err.contains("Start it with `auditrelay serve`"), "{err}");
}

#[tokio::test]
async fn every_sample_passes_the_servers_validation() {
    let app = TestApp::spawn().await;
    let portal = app.create_portal("Every login", "eu").await;
    let mut ids = TraceIds::random().unwrap();
    // Enough of each type to go through every row of every sample table more than once.
    let org = org_events(now(), 50, &mut ids);
    let logins = portal_events(now(), 50, portal, &mut ids);
    for (events, total) in [(org, 150), (logins, 50)] {
        let resp = app
            .ingest_ndjson("/v1/events", &app.admin, ndjson(&events))
            .await;
        let body = expect_json(resp, StatusCode::ACCEPTED).await;
        assert_eq!(body["accepted"], total);
    }
    assert_eq!(org_samples(&app, "us").await, each_type(50));
    assert_eq!(portal_samples(&app, portal).await.len(), 50);
    app.stop().await;
}

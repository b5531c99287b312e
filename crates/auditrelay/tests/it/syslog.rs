//! The `syslog` kind against a real rsyslog (`support::rsyslog`): RFC 5425 over TLS, every
//! event's signed line arriving as a message's MSG and still verifying; a receiver restarted
//! mid-stream loses nothing (the unconfirmed tail is written again after reconnecting); a
//! receiver that asks for a client certificate gets the destination's; a connection test
//! checks the receiver's certificate and sends one line.

use std::collections::BTreeSet;
use std::time::Duration;

use auditrelay_core::format::{Value as FieldValue, parse_line, verify_line};
use auditrelay_core::{PortalId, PublicKey};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::events::{ndjson, portal_login};
use crate::support::rsyslog::{ClientAuth, Rsyslog};
use crate::support::signing::jwks;
use crate::support::{TestApp, bind_webhook, eventually, expect_json, now};

const WAIT: Duration = Duration::from_secs(120);

pub(crate) fn dev(c: &mut auditrelay::config::Config) {
    crate::support::dev(c);
    c.delivery.flush_interval = Duration::from_millis(100);
}

/// A portal (named `name`) whose webhook delivers to a syslog destination with `settings` and
/// `authorization` (and `integrity` when asked); returns the portal.
pub(crate) async fn bind(
    app: &TestApp,
    name: &str,
    endpoint: &str,
    settings: Value,
    authorization: &str,
    integrity: bool,
) -> PortalId {
    let portal = app.create_portal(name, "us").await;
    let mut body = json!({
        "name": name, "endpoint": endpoint, "kind": "syslog", "settings": settings,
        "authorization": authorization, "log_format": "cef", "skip_ssl_verification": true,
    });
    if integrity {
        body["integrity"] = json!(true);
    }
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let destination = created["id"].as_str().unwrap();
    let path = format!("/v3/portals/{portal}/audit-log-webhook");
    bind_webhook(app, &path, destination, true).await;
    portal
}

/// Ingests `n` Dev Portal logins for `portal`, traced `<tag>-<n>`; returns their trace ids.
pub(crate) async fn ingest(app: &TestApp, portal: PortalId, tag: &str, n: usize) -> Vec<String> {
    let traces: Vec<String> = (0..n).map(|i| format!("{tag}-{i:04}")).collect();
    let events: Vec<Value> = traces
        .iter()
        .map(|t| portal_login(now(), portal, t))
        .collect();
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    traces
}

/// The trace ids of the lines received, after checking that each one verifies. A killed
/// rsyslog may leave the line it was writing torn: at most `torn` lines may fail.
fn received(rsyslog: &Rsyslog, keys: &[PublicKey], torn: usize) -> Vec<String> {
    let lines = rsyslog.lines();
    let mut failed = Vec::new();
    let traces = lines
        .iter()
        .filter_map(|line| {
            if let Err(e) = verify_line(line.as_bytes(), keys) {
                failed.push(format!("{e}: {line:?}"));
                return None;
            }
            let parsed = parse_line(line.as_bytes()).unwrap();
            match parsed.record.get("trace_id") {
                Some(FieldValue::Str(trace)) => Some(trace.clone()),
                other => panic!("no trace id: {other:?} in {line}"),
            }
        })
        .collect();
    assert!(failed.len() <= torn, "{failed:#?}\n{}", rsyslog.log());
    traces
}

/// Waits until every one of `traces` was received at least once; returns how many lines came.
async fn all_received(
    rsyslog: &Rsyslog,
    keys: &[PublicKey],
    traces: &[String],
    torn: usize,
) -> usize {
    eventually(WAIT, || async {
        let got = received(rsyslog, keys, torn);
        let set: BTreeSet<&String> = got.iter().collect();
        traces.iter().all(|t| set.contains(t)).then_some(got.len())
    })
    .await
}

#[tokio::test]
async fn every_line_arrives_through_rsyslog_and_still_verifies() {
    let Some(rsyslog) = Rsyslog::start(ClientAuth::Anonymous).await else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let settings = json!({"hostname": "relay-1"});
    let portal = bind(&app, "syslog", &rsyslog.endpoint(), settings, "", false).await;
    let traces = ingest(&app, portal, "s", 300).await;
    let (_, keys) = jwks(&app).await;
    let lines = all_received(&rsyslog, &keys, &traces, 0).await;
    assert_eq!(lines, traces.len(), "each once on a connection never lost");

    // The batch is recorded just after it is written: the lines can arrive first.
    let path = format!("/v3/portals/{portal}/audit-log-webhook/status");
    let status = eventually(WAIT, || async {
        let status = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
        status["last_response_message"]
            .is_string()
            .then_some(status)
    })
    .await;
    assert_eq!(status["webhook_status"], "active", "{status}");
    let message = status["last_response_message"].as_str().unwrap_or_default();
    assert!(message.contains("no acknowledgement"), "{status}");
    let path = format!("/v3/portals/{portal}/audit-log-webhook/deliveries");
    let log = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
    let attempts = log["data"].as_array().unwrap();
    assert!(!attempts.is_empty(), "{log}");
    for attempt in attempts {
        assert_eq!(attempt["delivered"], true, "{attempt}");
        assert_eq!(attempt["response_code"], Value::Null, "{attempt}");
    }
}

/// Events go in all along while the receiver is stopped (SIGTERM) and started again, then
/// hangs (SIGSTOP) and is killed (SIGKILL) and started again: every event arrives at least
/// once. The hung receiver's TCP took bytes it never read, and the kill threw them away; only
/// the unconfirmed tail, written again after reconnecting, brings them back.
#[tokio::test]
async fn a_receiver_restarted_mid_stream_loses_nothing() {
    let Some(mut rsyslog) = Rsyslog::start(ClientAuth::Anonymous).await else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let portal = bind(
        &app,
        "syslog",
        &rsyslog.endpoint(),
        json!({"framing": "lf"}),
        "",
        false,
    )
    .await;
    let (_, keys) = jwks(&app).await;
    let mut traces = Vec::new();
    let mut round = 0;
    let mut stream = async |rounds: usize, pause: u64| {
        for _ in 0..rounds {
            round += 1;
            traces.extend(ingest(&app, portal, &format!("r{round:02}"), 100).await);
            tokio::time::sleep(Duration::from_millis(pause)).await;
        }
    };
    stream(8, 20).await;
    // Hung: its TCP goes on taking batches (written, so counted delivered) that it never reads.
    rsyslog.freeze();
    stream(6, 20).await;
    // Until the lane has written all of them (counted delivered) into the frozen receiver.
    let status_path = format!("/v3/portals/{portal}/audit-log-webhook/status");
    eventually(WAIT, || async {
        let status = expect_json(app.get(&status_path, &app.admin).await, StatusCode::OK).await;
        (status["lag_events"] == 0).then_some(())
    })
    .await;
    // And gone with them.
    rsyslog.kill().await;
    stream(2, 50).await;
    rsyslog.start_again().await;
    stream(8, 20).await;
    rsyslog.stop().await;
    stream(3, 50).await;
    rsyslog.start_again().await;
    stream(8, 20).await;
    let lines = all_received(&rsyslog, &keys, &traces, 1).await;
    assert!(lines >= traces.len());
}

#[tokio::test]
async fn a_receiver_that_asks_for_a_client_certificate_gets_the_destinations() {
    let Some(rsyslog) = Rsyslog::start(ClientAuth::Certificate).await else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let (_, keys) = jwks(&app).await;

    // Without one, rsyslog refuses the connection: nothing arrives, and the status says so.
    let anonymous = bind(&app, "anonymous", &rsyslog.endpoint(), json!({}), "", false).await;
    ingest(&app, anonymous, "anon", 5).await;
    let path = format!("/v3/portals/{anonymous}/audit-log-webhook/status");
    let status = eventually(WAIT, || async {
        let status = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
        (status["webhook_status"] == "inactive").then_some(status)
    })
    .await;
    assert!(rsyslog.lines().is_empty(), "{status}");

    let settings = json!({"client_certificate": rsyslog.client_certificate});
    let portal = bind(
        &app,
        "mtls",
        &rsyslog.endpoint(),
        settings,
        &rsyslog.client_key,
        false,
    )
    .await;
    let traces = ingest(&app, portal, "mtls", 20).await;
    let got = all_received(&rsyslog, &keys, &traces, 0).await;
    assert_eq!(got, traces.len());
}

#[tokio::test]
async fn syslog_destinations_are_checked_when_saved() {
    let app = TestApp::spawn_with(dev).await;
    let create = |body: Value| async {
        let resp = app
            .post("/v3/audit-log-destinations", &app.admin, body)
            .await;
        expect_json(resp, StatusCode::BAD_REQUEST).await
    };
    let base = json!({"name": "s", "endpoint": "tls://127.0.0.1:6514", "kind": "syslog"});
    let with = |change: Value| {
        let mut body = base.clone();
        body.as_object_mut()
            .unwrap()
            .extend(change.as_object().unwrap().clone());
        body
    };
    let fields = |problem: &Value| -> Vec<String> {
        problem["invalid_parameters"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| format!("{}: {}", p["field"], p["reason"]))
            .collect()
    };
    for (change, field) in [
        (json!({"endpoint": "https://siem.example/"}), "endpoint"),
        (json!({"endpoint": "tls://127.0.0.1:6514/x"}), "endpoint"),
        (json!({"kind": "webhook"}), "endpoint"),
        (json!({"settings": {"framing": "crlf"}}), "settings"),
        (
            json!({"settings": {"hostname": "two words"}}),
            "settings.hostname",
        ),
        (
            json!({"settings": {"max_message_bytes": 100}}),
            "settings.max_message_bytes",
        ),
        (
            json!({"settings": {"client_certificate": "not a PEM"}}),
            "settings.client_certificate",
        ),
        (
            json!({"authorization": "-----BEGIN PRIVATE KEY-----\nnot base64\n-----END PRIVATE KEY-----"}),
            "authorization",
        ),
        (json!({"authorization": "secret"}), "authorization"),
    ] {
        let problem = create(with(change.clone())).await;
        let found = fields(&problem);
        assert!(
            found.iter().any(|f| f.starts_with(&format!("\"{field}"))),
            "{change}: {found:?}"
        );
    }
    // A certificate without its key, and a key without its certificate.
    let rsyslog_free_pair = {
        let generated = rcgen::generate_simple_self_signed(vec!["c".to_owned()]).unwrap();
        (generated.cert.pem(), generated.signing_key.serialize_pem())
    };
    let problem = create(with(
        json!({"settings": {"client_certificate": rsyslog_free_pair.0}}),
    ))
    .await;
    assert!(
        fields(&problem)
            .iter()
            .any(|f| f.starts_with("\"authorization")),
        "{problem}"
    );
    let problem = create(with(json!({"authorization": rsyslog_free_pair.1}))).await;
    assert!(
        fields(&problem)
            .iter()
            .any(|f| f.starts_with("\"authorization")),
        "{problem}"
    );

    // A key that is not the certificate's.
    let other_key = rcgen::KeyPair::generate().unwrap().serialize_pem();
    let mismatched = with(json!({
        "settings": {"client_certificate": rsyslog_free_pair.0},
        "authorization": other_key,
    }));
    let problem = create(mismatched).await;
    assert!(
        fields(&problem)
            .iter()
            .any(|f| f.contains("is not the private key")),
        "{problem}"
    );

    let settings = json!({"client_certificate": rsyslog_free_pair.0, "framing": "lf"});
    let body = with(json!({"settings": settings, "authorization": rsyslog_free_pair.1}));
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["kind"], "syslog");
    assert_eq!(created["settings"]["framing"], "lf");
    assert!(created.get("authorization").is_none(), "{created}");

    // Out of syslog: the key is no Datadog API key, so one must be given.
    let path = format!(
        "/v3/audit-log-destinations/{}",
        created["id"].as_str().unwrap()
    );
    let to_datadog = json!({"kind": "datadog", "endpoint": "https://127.0.0.1:9/api/v2/logs"});
    let resp = app
        .request(
            reqwest::Method::PATCH,
            &path,
            Some(&app.admin),
            Some(to_datadog),
        )
        .await;
    let problem = expect_json(resp, StatusCode::BAD_REQUEST).await;
    assert!(
        fields(&problem)
            .iter()
            .any(|f| f.starts_with("\"authorization")),
        "{problem}"
    );
    // Into syslog from a webhook: its header value is forgotten, not taken for a key.
    let hook =
        json!({"name": "h", "endpoint": "https://127.0.0.1:9/hook", "authorization": "Bearer x"});
    let hook = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, hook)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let path = format!(
        "/v3/audit-log-destinations/{}",
        hook["id"].as_str().unwrap()
    );
    let to_syslog = json!({"kind": "syslog", "endpoint": "tls://127.0.0.1:6514"});
    let resp = app
        .request(
            reqwest::Method::PATCH,
            &path,
            Some(&app.admin),
            Some(to_syslog),
        )
        .await;
    let updated = expect_json(resp, StatusCode::OK).await;
    assert_eq!(updated["kind"], "syslog", "{updated}");
}

/// *Test connection* to a syslog receiver: refused on its certificate, which the machine does
/// not trust, unless verification is skipped; then one OCSF line arrives and verifies.
#[tokio::test]
async fn a_connection_test_checks_the_certificate_and_sends_one_ocsf_line() {
    let Some(rsyslog) = Rsyslog::start(ClientAuth::Anonymous).await else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let test = |skip: bool| {
        let body = json!({
            "endpoint": rsyslog.endpoint(), "kind": "syslog", "log_format": "ocsf",
            "skip_ssl_verification": skip,
        });
        let app = &app;
        async move {
            let path = "/v3/audit-log-destinations/test-connection";
            expect_json(app.post(path, &app.admin, body).await, StatusCode::OK).await
        }
    };
    let refused = test(false).await;
    assert_eq!(refused["delivered"], false, "{refused}");
    let message = refused["response_message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("certificate"), "{refused}");

    let answer = test(true).await;
    assert_eq!(answer["delivered"], true, "{answer}");
    assert!(answer.get("response_code").is_none(), "{answer}");
    let (_, keys) = jwks(&app).await;
    let line = eventually(WAIT, || async { rsyslog.lines().into_iter().next() }).await;
    verify_line(line.as_bytes(), &keys).unwrap_or_else(|e| panic!("{e}: {line}"));
    let object: Value = serde_json::from_str(&line).unwrap();
    assert!(object["class_uid"].is_i64(), "{line}");
}

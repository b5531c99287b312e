//! "Test connection": one signed sample line sent to an endpoint at once, and its answer —
//! for a saved destination, a saved one with changed fields, or fields alone; through the same
//! endpoint checks, certificate choice and headers as delivery.

use auditrelay_core::Role;
use auditrelay_core::format::{parse_line, verify_line};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::delivery::dev;
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::signing::jwks;
use crate::support::{TestApp, expect_json, expect_problem, invalid_fields};

const PATH: &str = "/v3/audit-log-destinations/test-connection";

async fn test(app: &TestApp, token: &str, body: Value) -> reqwest::Response {
    app.request(Method::POST, PATH, Some(token), Some(body))
        .await
}

async fn destination(app: &TestApp, endpoint: &str) -> String {
    let body = json!({"name": "SIEM", "endpoint": endpoint,
                      "authorization": "Bearer saved", "log_format": "json"});
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    created["id"].as_str().unwrap().to_owned()
}

#[tokio::test]
async fn a_saved_destination_gets_one_signed_line_now() {
    let app = TestApp::spawn_with(dev).await;
    let siem = TestReceiver::http().await;
    let id = destination(&app, &siem.url()).await;
    let answer = expect_json(
        test(&app, &app.admin, json!({"audit_log_destination_id": id})).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["delivered"], true, "{answer}");
    assert_eq!(answer["response_code"], 202);
    assert_eq!(answer["response_message"], "Accepted");
    assert_eq!(answer["endpoint"], siem.url());
    assert!(answer["duration_ms"].is_u64());

    let requests = siem.requests();
    assert_eq!(requests.len(), 1, "one request, sent before the answer");
    let request = &requests[0];
    assert_eq!(request.authorization(), Some("Bearer saved"));
    assert_eq!(request.content_encoding(), Some("gzip"));
    assert!(request.idempotency_key().is_some());
    assert_eq!(request.lines.len(), 1);
    let line = &request.lines[0];
    let (_, keys) = jwks(&app).await;
    verify_line(line.as_bytes(), &keys).unwrap_or_else(|e| panic!("{e}: {line}"));
    let parsed = parse_line(line.as_bytes()).unwrap();
    assert_eq!(
        parsed.format,
        auditrelay_core::Format::Json,
        "the saved format"
    );
    assert!(
        line.contains(answer["trace_id"].as_str().unwrap()),
        "the line is this request's own authorization event: {line}"
    );

    // The fields of an edit form not yet saved replace the saved ones for the test only.
    let other = TestReceiver::http().await;
    let answer = expect_json(
        test(
            &app,
            &app.admin,
            json!({"audit_log_destination_id": id, "endpoint": other.url(),
                   "authorization": "Bearer typed", "log_format": "cef"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["delivered"], true);
    let request = &other.requests()[0];
    assert_eq!(request.authorization(), Some("Bearer typed"));
    assert!(request.lines[0].contains(" CEF:0|"), "{}", request.lines[0]);
    let saved = expect_json(
        app.get(&format!("/v3/audit-log-destinations/{id}"), &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(saved["endpoint"], siem.url(), "a test changes nothing");
    app.stop().await;
}

#[tokio::test]
async fn the_answer_says_what_went_wrong() {
    let app = TestApp::spawn_with(dev).await;
    // A refusal is an answer.
    let siem = TestReceiver::http().await;
    siem.set_default(Behaviour::Status(401));
    let answer = expect_json(
        test(
            &app,
            &app.admin,
            json!({"endpoint": siem.url(), "authorization": "Bearer wrong"}),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(answer["delivered"], false);
    assert_eq!(answer["response_code"], 401);
    assert_eq!(answer["response_message"], "Unauthorized");

    // A certificate the machine does not trust: the TLS error, unless verification is skipped.
    let tls = TestReceiver::https().await;
    let body = json!({"endpoint": tls.url(), "authorization": "Bearer x"});
    let answer = expect_json(test(&app, &app.admin, body).await, StatusCode::OK).await;
    assert_eq!(answer["delivered"], false);
    assert!(answer.get("response_code").is_none(), "{answer}");
    let message = answer["response_message"].as_str().unwrap().to_lowercase();
    assert!(message.contains("certificate"), "{answer}");
    let body = json!({"endpoint": tls.url(), "authorization": "Bearer x",
                      "skip_ssl_verification": true});
    let answer = expect_json(test(&app, &app.admin, body).await, StatusCode::OK).await;
    assert_eq!(answer["delivered"], true, "{answer}");

    // Nobody listening.
    let body = json!({"endpoint": "http://127.0.0.1:9/siem", "authorization": "Bearer x"});
    let answer = expect_json(test(&app, &app.admin, body).await, StatusCode::OK).await;
    assert_eq!(answer["delivered"], false);
    assert!(answer.get("response_code").is_none(), "{answer}");
    app.stop().await;
}

#[tokio::test]
async fn bad_fields_and_foreign_destinations_are_refused_before_anything_is_sent() {
    // Without --dev: loopback endpoints are refused, as for a destination.
    let app = TestApp::spawn().await;
    let problem = expect_problem(
        test(&app, &app.admin, json!({})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let fields: Vec<String> = invalid_fields(&problem)
        .into_iter()
        .map(|(f, _)| f)
        .collect();
    assert!(fields.contains(&"endpoint".to_owned()), "{problem}");
    assert!(fields.contains(&"authorization".to_owned()), "{problem}");
    let body = json!({"endpoint": "https://127.0.0.1:9/siem", "authorization": "Bearer x"});
    let problem = expect_problem(test(&app, &app.admin, body).await, StatusCode::BAD_REQUEST).await;
    assert_eq!(invalid_fields(&problem)[0].0, "endpoint", "{problem}");
    let problem = expect_problem(
        test(
            &app,
            &app.admin,
            json!({"audit_log_destination_id": "nope"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(invalid_fields(&problem)[0].0, "audit_log_destination_id");
    let unknown = json!({"audit_log_destination_id": uuid::Uuid::new_v4().to_string()});
    expect_problem(test(&app, &app.admin, unknown).await, StatusCode::NOT_FOUND).await;
    let problem = expect_problem(
        test(&app, &app.admin, json!({"endpoint": 5})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(!invalid_fields(&problem).is_empty(), "{problem}");

    // Reading is not enough to send; a portal admin tests only its portal's destinations.
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let body = json!({"endpoint": "https://siem.example.com/x", "authorization": "Bearer x"});
    expect_problem(test(&app, &viewer, body).await, StatusCode::FORBIDDEN).await;
    let portal = app.create_portal("Partners", "us").await;
    let portal_admin = app.token(Role::PortalAdmin, Some(portal)).await;
    let body = json!({"name": "org-siem", "endpoint": "https://52.1.2.3/x",
                      "authorization": "Bearer org"});
    let org_destination = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let foreign = json!({"audit_log_destination_id": org_destination["id"]});
    expect_problem(
        test(&app, &portal_admin, foreign).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

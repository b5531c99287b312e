//! Conformance with Konnect's official OpenAPI documents (`support::conformance`): what the
//! server already serves that the documents define — `GET /v3/audit-logs` (200, 400, 401, 403)
//! and `GET /v2/audit-log-webhook/jwks.json` — validated against the documented response
//! schemas; and the harness itself, shown to reject what the contract forbids so that its
//! passing means something.

use auditrelay_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::conformance::{self, Doc, Outcome, Violation, check_response, validate};
use crate::support::events::{access, authentication, authorization, ndjson};
use crate::support::signing::JWKS_PATH;
use crate::support::{TestApp, now};

const AUDIT_LOGS: &str = "/audit-logs";

/// Ingests two events of each type, an hour ago.
async fn ingest_every_type(app: &TestApp) {
    let base = now().saturating_sub_millis(3_600_000);
    let at = |i: i64| base.saturating_add_millis(i * 1000);
    let events = [
        authorization(at(0), "c-0"),
        access(at(1), "c-1"),
        authentication(at(2), "c-2"),
        authorization(at(3), "c-3"),
        access(at(4), "c-4"),
        authentication(at(5), "c-5"),
    ];
    let producer = app.token(Role::EventProducer, None).await;
    let resp = app
        .ingest_ndjson("/v1/events", &producer, ndjson(&events))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
}

/// Asserts that `validate` found the body valid (or was skipped).
fn assert_conforms(result: Result<Outcome, Violation>) {
    match result {
        Ok(Outcome::Conforms | Outcome::Skipped) => {}
        Ok(other) => panic!("expected a checked body, got {other:?}"),
        Err(v) => panic!("{v}"),
    }
}

/// The violation `validate` found, or `None` when the documents are absent (skipped).
fn violation(result: Result<Outcome, Violation>) -> Option<Violation> {
    match result {
        Err(v) => Some(v),
        Ok(Outcome::Skipped) => None,
        Ok(other) => panic!("expected a violation, got {other:?}"),
    }
}

async fn audit_logs(app: &TestApp, query: &str, token: Option<&str>) -> (StatusCode, Value) {
    let resp = app
        .request(Method::GET, &format!("/v3/audit-logs{query}"), token, None)
        .await;
    check_response(Doc::V3, "GET", AUDIT_LOGS, resp).await
}

#[tokio::test]
async fn audit_logs_pages_with_every_event_type_conform() {
    let app = TestApp::spawn().await;
    ingest_every_type(&app).await;

    // Everything, self-audit entries of this test's own requests included.
    let (status, body) = audit_logs(&app, "?page[size]=1000", Some(&app.admin)).await;
    assert_eq!(status, StatusCode::OK);
    let data = body["data"].as_array().unwrap();
    for kind in ["authorization", "authentication", "gateway_access"] {
        assert!(
            data.iter().any(|e| e["type"] == kind),
            "no {kind} entry was checked: {body}"
        );
    }

    // Pages in the middle carry both links, which have their own `format: path`.
    let (status, first) = audit_logs(&app, "?page[size]=2", Some(&app.admin)).await;
    assert_eq!(status, StatusCode::OK);
    let next = first["meta"]["page"]["next"].as_str().expect("a next link");
    let resp = app.get(next, &app.admin).await;
    let (status, middle) = check_response(Doc::V3, "GET", AUDIT_LOGS, resp).await;
    assert_eq!(status, StatusCode::OK);
    assert!(middle["meta"]["page"]["previous"].is_string(), "{middle}");
    assert!(middle["meta"]["page"]["next"].is_string(), "{middle}");

    // And a filtered, empty page.
    let (status, empty) = audit_logs(
        &app,
        "?filter[type]=gateway_access&filter[ts][lte]=2000-01-01T00:00:00Z",
        Some(&app.admin),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(empty["data"], json!([]));
    app.stop().await;
}

#[tokio::test]
async fn audit_logs_bad_filters_conform() {
    let app = TestApp::spawn().await;
    for query in [
        "?filter[ts][gte]=yesterday",
        "?filter[ts][gte]=2026-01-02T00:00:00Z&filter[ts][lte]=2026-01-01T00:00:00Z",
        "?filter[colour]=blue",
        "?page[size]=0",
        "?page[size]=1001",
        "?page[after]=not-a-cursor",
        "?filter[ts][lte]=nope&page[size]=x&filter[x]=1",
    ] {
        let (status, body) = audit_logs(&app, query, Some(&app.admin)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{query}: {body}");
    }
    app.stop().await;
}

/// An `enum` rule carries its `choices`, as Konnect's `InvalidParameterChoiceItem` requires.
#[tokio::test]
async fn an_enum_violation_lists_its_choices() {
    let app = TestApp::spawn().await;
    let resp = app
        .get("/v3/audit-logs?filter[type]=bogus", &app.admin)
        .await;
    let (status, body) = check_response(Doc::V3, "GET", AUDIT_LOGS, resp).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let parameter = &body["invalid_parameters"][0];
    assert_eq!(parameter["rule"], "enum", "{body}");
    assert_eq!(
        parameter["choices"],
        serde_json::json!(["authentication", "authorization", "gateway_access"])
    );
    app.stop().await;
}

#[tokio::test]
async fn an_undefined_method_is_a_bare_405() {
    let app = TestApp::spawn().await;
    let resp = app
        .request(Method::PUT, "/v3/audit-logs", Some(&app.admin), None)
        .await;
    // The document has no `PUT /audit-logs`: a 405 is how the server says so, unchecked.
    let (status, _) = check_response(Doc::V3, "PUT", AUDIT_LOGS, resp).await;
    assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
    app.stop().await;
}

#[tokio::test]
async fn audit_logs_unauthenticated_and_forbidden_conform() {
    let app = TestApp::spawn().await;
    let (status, _) = audit_logs(&app, "", None).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    let (status, _) = audit_logs(&app, "", Some("kpat_not-a-token")).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let producer = app.token(Role::EventProducer, None).await;
    let (status, _) = audit_logs(&app, "", Some(&producer)).await;
    assert_eq!(status, StatusCode::FORBIDDEN);
    app.stop().await;
}

#[tokio::test]
async fn jwks_conforms() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url(JWKS_PATH)).send().await.unwrap();
    let (status, body) = check_response(Doc::V2, "GET", "/audit-log-webhook/jwks.json", resp).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["keys"].as_array().map(Vec::len), Some(1), "{body}");
    app.stop().await;
}

// The harness itself: each of these must be a violation, or the checks above prove nothing.

fn page() -> Value {
    json!({
        "data": [{
            "type": "authorization",
            "signature": "c2ln",
            "service": "konnect",
            "resource": "control-planes",
            "action": "list",
            "granted": true,
            "org_id": "6945c4c4-3e06-4c5c-87e0-726d0cda4e05",
            "ts": "2026-01-01T00:00:00.000Z",
            "principal_id": "p",
        }],
        "meta": {"page": {"next": null, "previous": "/v3/audit-logs?page[before]=x", "size": 20}},
    })
}

fn problem(status: u16) -> Value {
    json!({
        "status": status,
        "title": "Unauthorized",
        "instance": "kong:trace:1",
        "detail": "Unauthorized",
    })
}

#[test]
fn the_samples_conform_so_the_mutations_below_are_what_fails() {
    for (status, body) in [(200, page()), (401, problem(401)), (403, problem(403))] {
        assert_conforms(validate(Doc::V3, "GET", AUDIT_LOGS, status, &body));
    }
}

#[test]
fn a_missing_required_field_is_a_violation() {
    let mut body = problem(401);
    body.as_object_mut().unwrap().remove("instance");
    if let Some(v) = violation(validate(Doc::V3, "GET", AUDIT_LOGS, 401, &body)) {
        assert!(v.errors.iter().any(|e| e.contains("\"instance\"")), "{v}");
    }

    // Inside an entry, through the `oneOf` of the entry types.
    let mut body = page();
    body["data"][0].as_object_mut().unwrap().remove("signature");
    if let Some(v) = violation(validate(Doc::V3, "GET", AUDIT_LOGS, 200, &body)) {
        assert!(v.errors.iter().any(|e| e.contains("/data/0")), "{v}");
        assert!(v.errors.iter().any(|e| e.contains("\"signature\"")), "{v}");
    }

    // The discriminator makes `type` required, though `AuthenticationLog` does not list it.
    let mut body = page();
    body["data"][0] = json!({
        "successful": true, "signature": "s", "outcome": "success", "authentication_type": "pat",
        "ts": "2026-01-01T00:00:00Z", "client_ip": "", "uri": "/", "user_agent": "", "trace_id": "",
    });
    let mut typed = body.clone();
    typed["data"][0]["type"] = json!("authentication");
    assert_conforms(validate(Doc::V3, "GET", AUDIT_LOGS, 200, &typed));
    violation(validate(Doc::V3, "GET", AUDIT_LOGS, 200, &body));
}

#[test]
fn a_wrong_type_is_a_violation() {
    type Mutation = fn(&mut Value);
    let cases: [(&str, Mutation); 5] = [
        ("/meta/page/size", |b| {
            b["meta"]["page"]["size"] = json!("20")
        }),
        ("/meta/page/next", |b| b["meta"]["page"]["next"] = json!(5)),
        ("/data/0/granted", |b| {
            b["data"][0]["granted"] = json!("yes")
        }),
        // `format: date-time` is asserted, not just annotated.
        ("/data/0/ts", |b| b["data"][0]["ts"] = json!("yesterday")),
        // `format: path`: a pagination link is an absolute path.
        ("/meta/page/previous", |b| {
            b["meta"]["page"]["previous"] = json!("v3/audit-logs");
        }),
    ];
    for (at, mutate) in cases {
        let mut body = page();
        mutate(&mut body);
        if let Some(v) = violation(validate(Doc::V3, "GET", AUDIT_LOGS, 200, &body)) {
            assert!(v.errors.iter().any(|e| e.contains(at)), "{at}: {v}");
        }
    }

    let mut body = problem(401);
    body["status"] = json!("401");
    if let Some(v) = violation(validate(Doc::V3, "GET", AUDIT_LOGS, 401, &body)) {
        assert!(v.errors.iter().any(|e| e.contains("\"/status\"")), "{v}");
    }

    // `additionalProperties: false` on the page.
    let mut body = page();
    body["links"] = json!({});
    violation(validate(Doc::V3, "GET", AUDIT_LOGS, 200, &body));
}

#[test]
fn an_undocumented_status_is_a_violation() {
    // `GET /audit-logs` documents 200, 400, 401 and 403 only.
    for status in [404, 405, 409, 500] {
        if let Some(v) = violation(validate(
            Doc::V3,
            "GET",
            AUDIT_LOGS,
            status,
            &problem(status),
        )) {
            assert!(v.errors[0].contains("not documented"), "{v}");
        }
    }
    // An operation the document lacks: only 404 and 405 are how a server says so.
    let undefined = validate(Doc::V3, "PUT", AUDIT_LOGS, 405, &problem(405)).unwrap();
    assert!(matches!(
        undefined,
        Outcome::Undocumented | Outcome::Skipped
    ));
    if let Some(v) = violation(validate(Doc::V3, "PUT", AUDIT_LOGS, 200, &json!({}))) {
        assert!(v.errors[0].contains("no such operation"), "{v}");
    }
    // A body where the document defines none (`DELETE` answers 204 No Content).
    if let Some(v) = violation(validate(
        Doc::PortalV3,
        "DELETE",
        "/portals/{portalId}/audit-log-webhook",
        204,
        &json!({}),
    )) {
        assert!(v.errors[0].contains("no body"), "{v}");
    }
}

#[test]
fn check_panics_with_the_operation_the_errors_and_the_body() {
    if !conformance::documents_present() {
        return;
    }
    let mut body = problem(403);
    body["detail"] = json!(false);
    let panic = std::panic::catch_unwind(|| {
        conformance::check(Doc::V3, "GET", AUDIT_LOGS, 403, &body);
    })
    .expect_err("check must panic on a violation");
    let message = panic.downcast_ref::<String>().expect("a formatted message");
    for needle in [
        "GET /v3/audit-logs",
        "403",
        "\"/detail\"",
        "\"kong:trace:1\"",
    ] {
        assert!(message.contains(needle), "{needle} missing from: {message}");
    }
}

#[test]
fn nullable_becomes_a_null_type_and_a_null_enum_value() {
    let cases = [
        (
            json!({"type": "string", "nullable": true, "example": "x"}),
            json!({"type": ["string", "null"]}),
        ),
        (
            json!({"type": "string", "enum": ["a"], "nullable": true, "readOnly": true}),
            json!({"type": ["string", "null"], "enum": ["a", null], "readOnly": true}),
        ),
        (
            json!({"type": "array", "items": {}, "nullable": false, "x-examples": {}}),
            json!({"type": "array", "items": {}}),
        ),
        (
            json!({"allOf": [{"$ref": "#/components/schemas/A"}], "nullable": true}),
            json!({"anyOf": [{"type": "null"}, {"allOf": [{"$ref": "#/$defs/A"}]}]}),
        ),
        (
            json!({"oneOf": [{"$ref": "#/components/schemas/A", "description": "ignored"}],
                   "discriminator": {"propertyName": "type"}}),
            json!({"oneOf": [{"$ref": "#/$defs/A"}], "required": ["type"]}),
        ),
        // Property names are not keywords.
        (
            json!({"type": "object", "properties": {"example": {"type": "string"}}}),
            json!({"type": "object", "properties": {"example": {"type": "string"}}}),
        ),
    ];
    for (openapi, expected) in cases {
        assert_eq!(
            conformance::convert(&openapi, "test"),
            expected,
            "{openapi}"
        );
    }
}

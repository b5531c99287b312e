//! Org and portal webhooks (v2 inline, v3 binding, portal paths) and their status: the
//! documents' own flow, kongctl's listener flow and Terraform's semantics end to end, v2 and v3
//! agreeing, the `global` region, Konnect's 400 bodies, RBAC, and a secret never seen again.
//! Every answer from a documented operation is validated against Konnect's OpenAPI documents.

use std::time::Duration;

use auditrelay::store::{
    AttemptKind, AttemptOutcome, CheckpointsSent, DeliveryAttempt, EventQuery, Scope,
};
use auditrelay_core::{OrgId, PortalId, Region, Role, Timestamp};
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::conformance::{Doc, check};
use crate::support::process::{create_token, free_port, serve_with};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::signing::{BIN, event};
use crate::support::{TestApp, expect_json, expect_problem, fence, invalid_fields, now};

/// Sends `"METHOD path"` as `token`, asserts the status (and problem+json for errors), and
/// validates the body against the operation the path names in Konnect's documents (see
/// [`operation`]). Returns the body (`Null` when empty).
async fn call(
    app: &TestApp,
    token: &str,
    request: &str,
    body: Option<Value>,
    status: u16,
) -> Value {
    let (method, path) = request.split_once(' ').expect("\"METHOD path\"");
    let method: Method = method.parse().unwrap();
    let resp = app.request(method.clone(), path, Some(token), body).await;
    let actual = resp.status();
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let text = resp.text().await.unwrap();
    assert_eq!(actual.as_u16(), status, "{request}: {text}");
    let value = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
    };
    if !actual.is_success() {
        assert_eq!(
            content_type.as_deref(),
            Some("application/problem+json"),
            "{value}"
        );
    }
    let (doc, template) = operation(path);
    check(doc, method.as_str(), &template, status, &value);
    value
}

/// The document and path template of a request path: `/eu/v2/audit-log-destinations/<id>?x`
/// → (`V2`, `/audit-log-destinations/{auditLogDestinationId}`). Portal paths use the portal
/// document, whose v3 operations the classic `/v2` portal paths share.
fn operation(path: &str) -> (Doc, String) {
    let path = path.split('?').next().unwrap();
    let mut segments: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    if !matches!(segments[0], "v2" | "v3") {
        segments.remove(0); // the region prefix
    }
    let version = segments.remove(0);
    let mut template = String::new();
    for (i, segment) in segments.iter().enumerate() {
        let parameter = match i.checked_sub(1).map(|j| segments[j]) {
            Some("portals") => "{portalId}",
            Some("audit-log-destinations") => "{auditLogDestinationId}",
            _ => segment,
        };
        template.push('/');
        template.push_str(parameter);
    }
    let doc = match (version, segments[0]) {
        (_, "portals") => Doc::PortalV3,
        ("v2", _) => Doc::V2,
        _ => Doc::V3,
    };
    (doc, template)
}

/// A destination made through the API; returns its id.
async fn destination(app: &TestApp, name: &str, endpoint: &str) -> String {
    let body = json!({
        "name": name, "endpoint": endpoint, "authorization": "Bearer secret-of-destination",
        "log_format": "json",
    });
    let request = "POST /global/v3/audit-log-destinations";
    let created = call(app, &app.admin, request, Some(body), 201).await;
    created["id"].as_str().unwrap().to_owned()
}

/// A status without our backlog fields (`lag_events`, …), whose figures depend on how many
/// self-audit events the test's own requests made: Konnect's part of the body.
fn konnect_fields(mut status: Value) -> Value {
    if let Some(fields) = status.as_object_mut() {
        for ours in [
            "lag_events",
            "oldest_undelivered_at",
            "seconds_until_data_loss",
            "retrying",
            "next_attempt_at",
            "consecutive_failures",
        ] {
            fields.remove(ours);
        }
    }
    status
}

/// An attempt as the delivery engine records it.
fn attempt(code: Option<u16>, message: &str) -> DeliveryAttempt {
    DeliveryAttempt {
        at: now(),
        kind: AttemptKind::Live,
        endpoint: "https://127.0.0.1:9/siem".into(),
        events: 1,
        first_seq: 1,
        last_seq: 1,
        code,
        message: message.into(),
        duration_ms: 3,
        delivered: code.is_some_and(|c| (200..300).contains(&c)),
    }
}

/// A failure whose batch is tried again in a minute.
fn failed() -> AttemptOutcome {
    AttemptOutcome::Failed {
        next_at: now().saturating_add_millis(60_000),
    }
}

fn org_scope(app: &TestApp, region: &str) -> Scope {
    Scope {
        org_id: app.org(),
        region: Region::parse(region).unwrap(),
        portal_id: None,
    }
}

/// The docs' flow: create the Sumo Logic destination, bind it for a region, see it active with
/// no attempt yet, disable, re-enable.
#[tokio::test]
async fn the_documents_flow() {
    // The seeds' endpoint is a real host name; allowing private endpoints skips the DNS check
    // when it is saved, and a batch due only in an hour keeps delivery from trying it (and from
    // turning the status `inactive` while the test reads "no attempt yet": on a slow machine,
    // the API's own audit events were once due, and sent, before the second read).
    let app = TestApp::spawn_with(|c| {
        c.delivery.allow_private_endpoints = true;
        c.delivery.flush_interval = std::time::Duration::from_secs(3600);
    })
    .await;
    let sumo = json!({
        "name": "SumoLogic",
        "endpoint": "https://endpoint4.collection.sumologic.com/receiver/v1/http/1234abcd",
        "authorization": "Bearer sumo-access-token",
        "log_format": "cef",
        "skip_ssl_verification": false,
    });
    let created = call(
        &app,
        &app.admin,
        "POST /global/v2/audit-log-destinations",
        Some(sumo),
        201,
    )
    .await;
    let id = created["id"].as_str().unwrap();

    let bound = call(
        &app,
        &app.admin,
        "PATCH /us/v3/audit-log-webhook",
        Some(json!({"audit_log_destination_id": id, "enabled": true})),
        200,
    )
    .await;
    assert_eq!(
        bound,
        json!({"audit_log_destination_id": id, "enabled": true})
    );

    for version in ["v2", "v3"] {
        let status = call(
            &app,
            &app.admin,
            &format!("GET /us/{version}/audit-log-webhook/status"),
            None,
            200,
        )
        .await;
        assert_eq!(
            konnect_fields(status),
            json!({"webhook_enabled": true, "webhook_status": "active"}),
            "no attempt yet"
        );
    }

    let v2 = call(&app, &app.admin, "GET /us/v2/audit-log-webhook", None, 200).await;
    assert_eq!(v2["endpoint"], created["endpoint"]);
    assert_eq!(v2["log_format"], "cef");
    assert_eq!(v2["enabled"], true);
    assert!(v2.get("authorization").is_none());

    for enabled in [false, true] {
        let patched = call(
            &app,
            &app.admin,
            "PATCH /us/v3/audit-log-webhook",
            Some(json!({"enabled": enabled})),
            200,
        )
        .await;
        assert_eq!(patched["enabled"], enabled);
        assert_eq!(patched["audit_log_destination_id"], id);
        let status = call(
            &app,
            &app.admin,
            "GET /us/v2/audit-log-webhook/status",
            None,
            200,
        )
        .await;
        assert_eq!(status["webhook_enabled"], enabled);
        assert_eq!(status["webhook_status"], "active");
    }
    // The other region was never configured.
    let eu = call(
        &app,
        &app.admin,
        "GET /eu/v3/audit-log-webhook/status",
        None,
        200,
    )
    .await;
    assert_eq!(
        eu,
        json!({"webhook_enabled": false, "webhook_status": "unconfigured"})
    );
    app.stop().await;
}

/// kongctl's `listen` (DECISIONS.md K12), step by step, mixing v2 and v3 as it does.
#[tokio::test]
async fn kongctl_listener_flow() {
    let app = TestApp::spawn().await;
    // 1. The regional v2 webhook must be unconfigured.
    let v2 = call(&app, &app.admin, "GET /eu/v2/audit-log-webhook", None, 200).await;
    assert_eq!(v2["enabled"], false);
    assert_eq!(v2["endpoint"], "unconfigured");
    assert_eq!(v2["updated_at"], "0001-01-01T00:00:00Z");

    // 2. Name check on global, 3. create on global (kongctl's default format is json).
    let listed = call(
        &app,
        &app.admin,
        "GET /global/v3/audit-log-destinations?filter[name][eq]=kongctl-listen",
        None,
        200,
    )
    .await;
    assert_eq!(listed["data"], json!([]));
    let id = destination(&app, "kongctl-listen", "https://52.1.2.3/audit-logs").await;

    // 4. Bind it for the region.
    call(
        &app,
        &app.admin,
        "PATCH /eu/v3/audit-log-webhook",
        Some(json!({"enabled": true, "audit_log_destination_id": id})),
        200,
    )
    .await;
    let v2 = call(&app, &app.admin, "GET /eu/v2/audit-log-webhook", None, 200).await;
    assert_eq!(v2["endpoint"], "https://52.1.2.3/audit-logs");
    assert_eq!(v2["enabled"], true);
    assert_eq!(v2["log_format"], "json");
    assert_eq!(v2["audit_log_destination_id"], id.as_str());

    // While bound, the destination cannot go: the 409 kongctl retries on.
    let path = format!("/eu/v2/audit-log-destinations/{id}");
    let conflict = call(&app, &app.admin, &format!("DELETE {path}"), None, 409).await;
    let detail = conflict["detail"].as_str().unwrap().to_ascii_lowercase();
    assert!(detail.contains("destination is in use"), "{conflict}");

    // 5. Shutdown: v2 disable, v3 delete, then the destination.
    let disabled = call(
        &app,
        &app.admin,
        "PATCH /eu/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["endpoint"], "https://52.1.2.3/audit-logs");
    let v3 = call(&app, &app.admin, "GET /eu/v3/audit-log-webhook", None, 200).await;
    assert_eq!(
        v3,
        json!({"audit_log_destination_id": id, "enabled": false}),
        "v2 and v3 agree"
    );
    // Disabled but still bound: still in use.
    call(&app, &app.admin, &format!("DELETE {path}"), None, 409).await;
    call(
        &app,
        &app.admin,
        "DELETE /eu/v3/audit-log-webhook",
        None,
        204,
    )
    .await;
    let v2 = call(&app, &app.admin, "GET /eu/v2/audit-log-webhook", None, 200).await;
    assert_eq!(v2["endpoint"], "unconfigured");
    assert_eq!(v2["enabled"], false);
    call(&app, &app.admin, "GET /eu/v3/audit-log-webhook", None, 404).await;
    call(&app, &app.admin, &format!("DELETE {path}"), None, 204).await;
    // A second shutdown finds nothing, which kongctl tolerates.
    call(
        &app,
        &app.admin,
        "DELETE /eu/v3/audit-log-webhook",
        None,
        404,
    )
    .await;
    let v2 = call(
        &app,
        &app.admin,
        "PATCH /eu/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(v2["endpoint"], "unconfigured");
    app.stop().await;
}

/// Terraform's `konnect_audit_log` (delete = PATCH `enabled: false`), its destination resource
/// (read after write never shows `authorization`; import by id) and its portal webhook
/// (import by portal id).
#[tokio::test]
async fn terraform_semantics() {
    let app = TestApp::spawn().await;
    let created = call(
        &app,
        &app.admin,
        "PATCH /us/v2/audit-log-webhook",
        Some(json!({
            "endpoint": "https://52.1.2.3/tf", "authorization": "Splunk tf-secret",
            "enabled": true, "log_format": "json", "skip_ssl_verification": false,
        })),
        200,
    )
    .await;
    assert_eq!(created["endpoint"], "https://52.1.2.3/tf");
    assert_eq!(created["enabled"], true);
    assert!(created.get("authorization").is_none());
    let read = call(&app, &app.admin, "GET /us/v2/audit-log-webhook", None, 200).await;
    assert_eq!(read, created);
    let deleted = call(
        &app,
        &app.admin,
        "PATCH /us/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(deleted["enabled"], false);
    assert_eq!(deleted["endpoint"], "https://52.1.2.3/tf");

    // konnect_audit_log_destination: create on v2, import (read) by id.
    let id = destination(&app, "tf-destination", "https://52.1.2.4/x").await;
    let imported = call(
        &app,
        &app.admin,
        &format!("GET /v2/audit-log-destinations/{id}"),
        None,
        200,
    )
    .await;
    assert_eq!(imported["name"], "tf-destination");
    assert!(imported.get("authorization").is_none());

    // konnect_portal_audit_log_webhook: import id = portal id.
    let portal = app.create_portal("tf-portal", "us").await;
    let path = format!("/v3/portals/{portal}/audit-log-webhook");
    call(
        &app,
        &app.admin,
        &format!("PATCH {path}"),
        Some(json!({"audit_log_destination_id": id, "enabled": true})),
        200,
    )
    .await;
    let imported = call(&app, &app.admin, &format!("GET {path}"), None, 200).await;
    assert_eq!(
        imported,
        json!({"audit_log_destination_id": id, "enabled": true})
    );
    app.stop().await;
}

/// A v2 inline PATCH writes the region's managed destination and binds it; fields it leaves out
/// come from whatever the webhook uses now; a user's destination is never edited by v2.
#[tokio::test]
async fn v2_inline_writes_a_managed_destination_and_v3_agrees() {
    let app = TestApp::spawn().await;
    call(
        &app,
        &app.admin,
        "PATCH /us/v2/audit-log-webhook",
        Some(
            json!({"endpoint": "https://52.1.2.3/a", "authorization": "Bearer a", "enabled": true}),
        ),
        200,
    )
    .await;
    let v3 = call(&app, &app.admin, "GET /us/v3/audit-log-webhook", None, 200).await;
    let managed = v3["audit_log_destination_id"].as_str().unwrap().to_owned();
    let shown = call(
        &app,
        &app.admin,
        &format!("GET /v3/audit-log-destinations/{managed}"),
        None,
        200,
    )
    .await;
    assert_eq!(shown["name"], "org-webhook-us");
    assert_eq!(shown["endpoint"], "https://52.1.2.3/a");
    assert_eq!(shown["log_format"], "cef", "the default format");

    // A partial PATCH keeps the endpoint and the stored authorization.
    let v2 = call(
        &app,
        &app.admin,
        "PATCH /us/v2/audit-log-webhook",
        Some(json!({"log_format": "cps"})),
        200,
    )
    .await;
    assert_eq!(v2["log_format"], "cps");
    assert_eq!(v2["endpoint"], "https://52.1.2.3/a");
    assert_eq!(v2["audit_log_destination_id"], managed.as_str());
    let sealed = app
        .store()
        .get_destination(app.org(), managed.parse().unwrap())
        .await
        .unwrap()
        .unwrap()
        .authorization_sealed;
    assert!(!sealed.is_empty());

    // Rebinding through v3 shows the user's destination in v2.
    let mine = destination(&app, "mine", "https://52.1.2.9/mine").await;
    call(
        &app,
        &app.admin,
        "PATCH /us/v3/audit-log-webhook",
        Some(json!({"audit_log_destination_id": mine})),
        200,
    )
    .await;
    let v2 = call(&app, &app.admin, "GET /us/v2/audit-log-webhook", None, 200).await;
    assert_eq!(v2["endpoint"], "https://52.1.2.9/mine");
    assert_eq!(v2["log_format"], "json");
    assert_eq!(v2["enabled"], true, "rebinding keeps enabled");

    // A v2 change while bound to the user's destination goes to the managed one, starting from
    // the user's settings (authorization included, so none is needed in the body).
    let v2 = call(
        &app,
        &app.admin,
        "PATCH /us/v2/audit-log-webhook",
        Some(json!({"skip_ssl_verification": true})),
        200,
    )
    .await;
    assert_eq!(v2["audit_log_destination_id"], managed.as_str());
    assert_eq!(v2["endpoint"], "https://52.1.2.9/mine");
    assert_eq!(v2["log_format"], "json");
    assert_eq!(v2["skip_ssl_verification"], true);
    let untouched = call(
        &app,
        &app.admin,
        &format!("GET /v3/audit-log-destinations/{mine}"),
        None,
        200,
    )
    .await;
    assert_eq!(untouched["skip_ssl_verification"], false);

    // A user destination that already holds the managed name does not block v2 in another region.
    destination(&app, "org-webhook-eu", "https://52.1.2.5/x").await;
    let eu = call(
        &app,
        &app.admin,
        "PATCH /eu/v2/audit-log-webhook",
        Some(json!({"endpoint": "https://52.1.2.3/eu", "authorization": "Bearer eu"})),
        200,
    )
    .await;
    assert_eq!(eu["enabled"], false, "a new webhook starts disabled");
    let id = eu["audit_log_destination_id"].as_str().unwrap();
    let d = expect_json(
        app.get(&format!("/v3/audit-log-destinations/{id}"), &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert!(
        d["name"].as_str().unwrap().starts_with("org-webhook-eu-"),
        "{d}"
    );
    app.stop().await;
}

/// Every bad input: Konnect's documented 400 bodies, plus our own rules; none changes anything.
#[tokio::test]
async fn bad_requests_change_nothing() {
    let app = TestApp::spawn().await;
    let v2 = "/us/v2/audit-log-webhook";
    let bad_v2 = |body: Value| {
        let app = &app;
        async move { call(app, &app.admin, &format!("PATCH {v2}"), Some(body), 400).await }
    };
    let blank =
        |field: &str| json!({"field": field, "reason": "cannot be blank", "source": "body"});

    let p = bad_v2(json!({"enabled": true})).await;
    assert_eq!(p["detail"], "Required field missing");
    assert_eq!(
        p["invalid_parameters"],
        json!([blank("endpoint"), blank("authorization")])
    );
    let p = bad_v2(json!({"endpoint": "https://52.1.2.3/x", "enabled": true})).await;
    assert_eq!(p["invalid_parameters"], json!([blank("authorization")]));
    let p = bad_v2(json!({"endpoint": "", "authorization": "Bearer x"})).await;
    assert_eq!(p["invalid_parameters"], json!([blank("endpoint")]));
    let p = bad_v2(json!({"endpoint": "https://52.1.2.3/x", "authorization": "  "})).await;
    assert_eq!(p["invalid_parameters"], json!([blank("authorization")]));
    let p = bad_v2(json!({"endpoint": "not a url", "authorization": "Bearer x"})).await;
    assert_eq!(p["detail"], "Invalid endpoint");
    assert_eq!(
        p["invalid_parameters"],
        json!([{"field": "endpoint", "reason": "must be a valid URL", "source": "body"}])
    );
    let p = bad_v2(json!({"endpoint": "http://52.1.2.3/x", "authorization": "Bearer x"})).await;
    assert_eq!(
        p["invalid_parameters"][0]["reason"],
        "must use https (http needs delivery.allow_http_endpoints, which serve --dev sets)"
    );
    let p = bad_v2(json!({"endpoint": "https://10.1.2.3/x", "authorization": "Bearer x"})).await;
    assert_eq!(
        p["invalid_parameters"][0]["reason"],
        "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)"
    );
    let p = bad_v2(json!({"endpoint": "https://localhost/x", "authorization": "Bearer x"})).await;
    assert_eq!(invalid_fields(&p), [("endpoint".into(), String::new())]);
    let p = bad_v2(json!({"enabled": false, "endpont": "https://52.1.2.3/x"})).await;
    assert_eq!(
        invalid_fields(&p),
        [("endpont".into(), "unknown_property".into())]
    );
    let p = bad_v2(json!({"enabled": "yes"})).await;
    assert_eq!(invalid_fields(&p)[0].0, "enabled");
    let p = bad_v2(json!({"log_format": "xml", "endpoint": "https://52.1.2.3/x"})).await;
    assert_eq!(invalid_fields(&p), [("log_format".into(), "enum".into())]);

    let resp = app
        .client
        .patch(app.url(v2))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let p = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    check(Doc::V2, "PATCH", "/audit-log-webhook", 400, &p);
    assert_eq!(p["detail"], "Could not parse request body");
    assert_eq!(
        p["invalid_parameters"],
        json!([{"field": "body", "reason": "request format is invalid"}])
    );

    let v3 = "/us/v3/audit-log-webhook";
    let bad_v3 = |body: Value| {
        let app = &app;
        async move { call(app, &app.admin, &format!("PATCH {v3}"), Some(body), 400).await }
    };
    let p = bad_v3(json!({"audit_log_destination_id": "not-a-uuid", "enabled": true})).await;
    assert_eq!(p["detail"], "Could not parse destination id");
    assert_eq!(
        p["invalid_parameters"],
        json!([{"field": "audit_log_destination_id", "reason": "destination id format is invalid", "source": "body"}])
    );
    let p =
        bad_v3(json!({"audit_log_destination_id": "6945c4c4-3e06-4c5c-87e0-726d0cda4e05"})).await;
    assert_eq!(
        invalid_fields(&p),
        [(
            "audit_log_destination_id".into(),
            "missing_reference".into()
        )]
    );
    let p = bad_v3(json!({"enabled": true})).await;
    assert_eq!(
        p["invalid_parameters"],
        json!([blank("audit_log_destination_id")])
    );
    let p = bad_v3(json!({"audit_log_destination_id": null, "endpoint": "x"})).await;
    assert_eq!(invalid_fields(&p)[0].1, "unknown_property");

    // Nothing was configured by any of them.
    let shown = call(&app, &app.admin, &format!("GET {v2}"), None, 200).await;
    assert_eq!(shown["endpoint"], "unconfigured");
    let list = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(
        list["data"],
        json!([]),
        "no managed destination was left behind"
    );

    // And on a configured webhook, a bad PATCH leaves it as it was.
    let good = call(&app, &app.admin, &format!("PATCH {v2}"), Some(json!({"endpoint": "https://52.1.2.3/ok", "authorization": "Bearer ok", "enabled": true})), 200)
    .await;
    bad_v2(json!({"endpoint": "ftp://52.1.2.3/x", "enabled": false})).await;
    bad_v3(json!({"audit_log_destination_id": "6945c4c4-3e06-4c5c-87e0-726d0cda4e05", "enabled": false})).await;
    let after = expect_json(app.get(v2, &app.admin).await, StatusCode::OK).await;
    assert_eq!(after, good);
    app.stop().await;
}

/// An app, and a SIEM for its webhooks, for tests that record delivery attempts themselves, as
/// delivery would: the real lane must record none, so the SIEM holds every request and the
/// request timeout outlasts the test.
async fn app_whose_lane_records_nothing() -> (TestApp, TestReceiver) {
    let app = TestApp::spawn_with(|c| {
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
        c.delivery.request_timeout = Duration::from_secs(3600);
    })
    .await;
    let receiver = TestReceiver::http().await;
    receiver.set_default(Behaviour::Hold);
    (app, receiver)
}

/// A batch of checkpoint events moves the webhook's checkpoint cursor only on the stream and
/// from the cursor it was built on (DECISIONS.md S27). One of the stream before a fresh start
/// (re-enabled, rebound, `integrity` turned on again), delivered after it, leaves the new
/// stream alone — also a first batch, built on no cursor as the new stream's first is — which
/// would otherwise go on from the old stream's checkpoints.
#[tokio::test]
async fn a_checkpoint_batch_moves_only_the_stream_it_was_built_for() {
    let (app, receiver) = app_whose_lane_records_nothing().await;
    let id = destination(&app, "siem", &receiver.url()).await;
    let enable = |on: bool| {
        call(
            &app,
            &app.admin,
            "PATCH /us/v3/audit-log-webhook",
            Some(json!({"audit_log_destination_id": id, "enabled": on})),
            200,
        )
    };
    enable(true).await;
    let scope = org_scope(&app, "us");
    let fenced = fence(app.store()).await;
    let (app_ref, scope, fenced) = (&app, &scope, &fenced);
    let webhook = || async move { app_ref.store().get_webhook(scope).await.unwrap().unwrap() };
    let delivered = |stream: i64, from: Option<i64>, through: i64| async move {
        let ok = attempt(Some(202), "Accepted");
        let outcome = AttemptOutcome::Delivered {
            through: webhook().await.cursor,
            next_in_flight: None,
            checkpoints: Some(CheckpointsSent {
                stream,
                from,
                through,
            }),
        };
        let recorded = app_ref
            .store()
            .record_attempt(fenced, scope, &ok, outcome, 100);
        assert!(recorded.await.unwrap());
        webhook().await.checkpoint_cursor
    };
    let first = webhook().await.checkpoint_stream;
    assert_eq!(
        delivered(first, None, 5).await,
        Some(5),
        "a stream's first batch"
    );
    assert_eq!(delivered(first, Some(5), 9).await, Some(9));
    assert_eq!(
        delivered(first, Some(5), 12).await,
        Some(9),
        "built on a cursor since moved"
    );
    enable(false).await;
    enable(true).await;
    let second = webhook().await;
    assert_eq!(second.checkpoint_cursor, None, "re-enabled: a new stream");
    assert_ne!(second.checkpoint_stream, first);
    let second = second.checkpoint_stream;
    assert_eq!(
        delivered(first, Some(9), 14).await,
        None,
        "the stream before it"
    );
    assert_eq!(
        delivered(first, None, 4).await,
        None,
        "its first batch, sent late"
    );
    assert_eq!(
        delivered(second, None, 3).await,
        Some(3),
        "the new stream's first batch"
    );
    app.stop().await;
}

/// Delivery positions are written by the store's writer between its group commits: recorded
/// while appends stream in from other tasks, every one lands, in order, and the appends do too.
#[tokio::test]
async fn positions_are_written_between_group_commits() {
    let (app, receiver) = app_whose_lane_records_nothing().await;
    let id = destination(&app, "siem", &receiver.url()).await;
    call(
        &app,
        &app.admin,
        "PATCH /us/v3/audit-log-webhook",
        Some(json!({"audit_log_destination_id": id, "enabled": true})),
        200,
    )
    .await;
    let scope = org_scope(&app, "us");
    let store = app.store().clone();
    let fenced = fence(&store).await;
    let start = store.get_webhook(&scope).await.unwrap().unwrap().cursor;

    // Four producers keep the writer busy with group commits of another organization's events.
    let other = OrgId::new_v4();
    let producers: Vec<_> = (0..4)
        .map(|p| {
            let store = store.clone();
            tokio::spawn(async move {
                for batch in 0..25 {
                    let events = (0..200)
                        .map(|i| {
                            let mut e = event(p * 10_000 + batch * 200 + i);
                            e.org_id = other;
                            e
                        })
                        .collect();
                    store.append_events(events).await.unwrap();
                }
            })
        })
        .collect();
    for n in 1..=100 {
        let through = start + n;
        let attempt = attempt(Some(202), &format!("batch {n}"));
        let outcome = AttemptOutcome::Delivered {
            through,
            next_in_flight: Some(through + 1),
            checkpoints: None,
        };
        assert!(
            store
                .record_attempt(&fenced, &scope, &attempt, outcome, 100)
                .await
                .unwrap()
        );
        let webhook = store.get_webhook(&scope).await.unwrap().unwrap();
        assert_eq!(webhook.cursor, through, "position {n} is read back at once");
    }
    for producer in producers {
        producer.await.unwrap();
    }
    let webhook = store.get_webhook(&scope).await.unwrap().unwrap();
    assert_eq!(webhook.cursor, start + 100);
    assert_eq!(webhook.last_attempt.unwrap().message, "batch 100");
    let stored = store
        .list_events(&EventQuery {
            org_id: other,
            region: Region::parse("us").unwrap(),
            portal_id: None,
            ts_from: Timestamp::from_millis(0),
            ts_to: Timestamp::from_millis(i64::MAX / 2),
            event_type: None,
            after: None,
            through_seq: None,
            limit: 100_000,
        })
        .await
        .unwrap();
    assert_eq!(stored.len(), 4 * 25 * 200, "every append committed");
    app.stop().await;
}

/// The enabled × status table of DECISIONS.md K3.3, and the transitions a configuration
/// change causes: a PATCH of the webhook or of its destination re-arms an inactive webhook.
#[tokio::test]
async fn status_follows_konnects_table() {
    let (app, receiver) = app_whose_lane_records_nothing().await;
    let status = || async {
        call(
            &app,
            &app.admin,
            "GET /us/v3/audit-log-webhook/status",
            None,
            200,
        )
        .await
    };
    let patch = |body: Value| async {
        call(
            &app,
            &app.admin,
            "PATCH /us/v3/audit-log-webhook",
            Some(body),
            200,
        )
        .await
    };
    assert_eq!(
        konnect_fields(status().await),
        json!({"webhook_enabled": false, "webhook_status": "unconfigured"})
    );
    let id = destination(&app, "siem", &receiver.url()).await;
    patch(json!({"audit_log_destination_id": id})).await;
    assert_eq!(
        konnect_fields(status().await),
        json!({"webhook_enabled": false, "webhook_status": "active"}),
        "saved, not shipping"
    );
    patch(json!({"enabled": true})).await;
    assert_eq!(
        konnect_fields(status().await),
        json!({"webhook_enabled": true, "webhook_status": "active"})
    );

    // Delivery records a failed batch (the delivery engine's call).
    let scope = org_scope(&app, "us");
    let fenced = fence(app.store()).await;
    let unauthorized = attempt(Some(401), "Unauthorized");
    assert!(
        app.store()
            .record_attempt(&fenced, &scope, &unauthorized, failed(), 100)
            .await
            .unwrap()
    );
    let s = status().await;
    assert_eq!(s["webhook_enabled"], true);
    assert_eq!(s["webhook_status"], "inactive");
    assert_eq!(s["last_response_code"], 401);
    assert_eq!(s["last_response_message"], "Unauthorized");
    assert_eq!(
        s["last_attempt_at"].as_str().unwrap(),
        unauthorized.at.to_rfc3339_millis()
    );

    // Turned off after the failure: false × inactive.
    app.store()
        .record_attempt(&fenced, &scope, &unauthorized, failed(), 100)
        .await
        .unwrap();
    let off = app
        .request(
            Method::PATCH,
            "/us/v2/audit-log-webhook",
            Some(&app.admin),
            Some(json!({"enabled": false})),
        )
        .await;
    expect_json(off, StatusCode::OK).await;
    // A PATCH re-arms: disabling is a configuration change too, so the status is active again,
    // and the last attempt stays visible for debugging.
    let s = status().await;
    assert_eq!(s["webhook_enabled"], false);
    assert_eq!(s["webhook_status"], "active");
    assert_eq!(s["last_response_code"], 401);
    // A failure recorded while disabled (a probe in flight) shows as false × inactive.
    app.store()
        .record_attempt(&fenced, &scope, &unauthorized, failed(), 100)
        .await
        .unwrap();
    assert_eq!(status().await["webhook_status"], "inactive");

    // Fixing the destination re-arms every webhook that uses it.
    patch(json!({"enabled": true})).await;
    app.store()
        .record_attempt(&fenced, &scope, &unauthorized, failed(), 100)
        .await
        .unwrap();
    assert_eq!(status().await["webhook_status"], "inactive");
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"authorization": "Bearer the-right-one"})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    assert_eq!(status().await["webhook_status"], "active");

    // A transport failure has no response code.
    let refused = attempt(None, "connection refused");
    app.store()
        .record_attempt(&fenced, &scope, &refused, failed(), 100)
        .await
        .unwrap();
    let s = status().await;
    assert!(s.get("last_response_code").is_none(), "{s}");
    assert_eq!(s["last_response_message"], "connection refused");
    // Success: active again, the cursor moved.
    let ok = attempt(Some(202), "Accepted");
    app.store()
        .record_attempt(
            &fenced,
            &scope,
            &ok,
            AttemptOutcome::Delivered {
                through: 1,
                next_in_flight: None,
                checkpoints: None,
            },
            100,
        )
        .await
        .unwrap();
    let s = status().await;
    assert_eq!(s["webhook_status"], "active");
    assert_eq!(s["last_response_code"], 202);

    // Deleting the webhook forgets it all.
    let resp = app.delete("/us/v3/audit-log-webhook", &app.admin).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    assert_eq!(
        konnect_fields(status().await),
        json!({"webhook_enabled": false, "webhook_status": "unconfigured"})
    );
    app.stop().await;
}

/// Enabling starts the cursor at the newest event (DECISIONS.md D2); rebinding or re-arming an
/// enabled webhook keeps it; re-enabling starts from that moment again.
#[tokio::test]
async fn enabling_starts_delivery_at_that_moment() {
    let app = TestApp::spawn().await;
    let scope = org_scope(&app, "us");
    let cursor = || async {
        app.store()
            .get_webhook(&scope)
            .await
            .unwrap()
            .unwrap()
            .cursor
    };
    // Requests write self-audit events, so the newest seq grows with every call.
    let newest = || async {
        let events = app.stored("us", None, None).await;
        events.iter().map(|e| e.seq).max().unwrap_or(0)
    };
    let id = destination(&app, "siem", "https://52.1.2.3/siem").await;
    let bind = |body: Value| async {
        let resp = app
            .request(
                Method::PATCH,
                "/us/v3/audit-log-webhook",
                Some(&app.admin),
                Some(body),
            )
            .await;
        expect_json(resp, StatusCode::OK).await
    };
    bind(json!({"audit_log_destination_id": id, "enabled": true})).await;
    let first = cursor().await;
    assert!(first > 0, "self-audit events exist before the webhook");
    assert!(first <= newest().await);

    bind(json!({"enabled": true})).await;
    assert_eq!(
        cursor().await,
        first,
        "re-arming an enabled webhook keeps its place"
    );
    let other = destination(&app, "other", "https://52.1.2.4/x").await;
    bind(json!({"audit_log_destination_id": other})).await;
    assert_eq!(cursor().await, first, "rebinding keeps its place");

    bind(json!({"enabled": false})).await;
    let before = newest().await;
    bind(json!({"enabled": true})).await;
    let restarted = cursor().await;
    assert!(
        restarted >= before && restarted > first,
        "{restarted} vs {before}"
    );
    app.stop().await;
}

/// `global`: writes fan out to every configured region in one transaction; reads show the
/// default region's view, the one the write answered with (Terraform's default server is the
/// global host, and it reads back what it wrote).
#[tokio::test]
async fn global_writes_every_region_and_reads_the_default_region() {
    let app = TestApp::spawn().await;
    let id = destination(&app, "everywhere", "https://52.1.2.3/all").await;
    let bound = call(
        &app,
        &app.admin,
        "PATCH /global/v3/audit-log-webhook",
        Some(json!({"audit_log_destination_id": id, "enabled": true})),
        200,
    )
    .await;
    assert_eq!(bound["enabled"], true);
    let regions = ["us", "eu"];
    for region in regions {
        let got = expect_json(
            app.get(&format!("/{region}/v3/audit-log-webhook"), &app.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(got, bound, "{region}");
    }

    let read = call(
        &app,
        &app.admin,
        "GET /global/v3/audit-log-webhook",
        None,
        200,
    )
    .await;
    assert_eq!(
        read, bound,
        "the global read is what the global write answered"
    );
    let global = call(
        &app,
        &app.admin,
        "GET /global/v2/audit-log-webhook",
        None,
        200,
    )
    .await;
    let us = call(&app, &app.admin, "GET /us/v2/audit-log-webhook", None, 200).await;
    assert_eq!(global, us);
    // The status too (its figures move with delivery attempts, so only its shape is compared).
    for path in [
        "/v2/audit-log-webhook/status",
        "/v3/audit-log-webhook/status",
    ] {
        call(&app, &app.admin, &format!("GET /global{path}"), None, 200).await;
    }
    // The global host label reads the same way.
    let resp = app
        .client
        .get(app.url("/v3/audit-log-webhook"))
        .header("host", "global.api.example.com")
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(expect_json(resp, StatusCode::OK).await, bound);

    // v2 disable on global (Terraform's delete against the global host).
    let v2 = call(
        &app,
        &app.admin,
        "PATCH /global/v2/audit-log-webhook",
        Some(json!({"enabled": false})),
        200,
    )
    .await;
    assert_eq!(v2["enabled"], false);
    for region in regions {
        let got = expect_json(
            app.get(&format!("/{region}/v3/audit-log-webhook"), &app.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(got["enabled"], false, "{region}");
    }

    // All or nothing: enabling on global when one region cannot be enabled changes no region.
    let resp = app.delete("/eu/v3/audit-log-webhook", &app.admin).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let p = call(
        &app,
        &app.admin,
        "PATCH /global/v3/audit-log-webhook",
        Some(json!({"enabled": true})),
        400,
    )
    .await;
    assert_eq!(invalid_fields(&p)[0].0, "audit_log_destination_id");
    let us = expect_json(
        app.get("/us/v3/audit-log-webhook", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(us["enabled"], false, "us was not enabled alone");

    // Inline on global: each region gets its own managed destination.
    call(
        &app,
        &app.admin,
        "PATCH /global/v2/audit-log-webhook",
        Some(
            json!({"endpoint": "https://52.1.2.3/g", "authorization": "Bearer g", "enabled": true}),
        ),
        200,
    )
    .await;
    let mut managed = Vec::new();
    for region in regions {
        let got = expect_json(
            app.get(&format!("/{region}/v2/audit-log-webhook"), &app.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(got["endpoint"], "https://52.1.2.3/g", "{region}");
        assert_eq!(got["enabled"], true, "{region}");
        managed.push(got["audit_log_destination_id"].clone());
    }
    assert_ne!(managed[0], managed[1]);

    call(
        &app,
        &app.admin,
        "DELETE /global/v3/audit-log-webhook",
        None,
        204,
    )
    .await;
    for region in regions {
        let got = expect_json(
            app.get(&format!("/{region}/v2/audit-log-webhook"), &app.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(got["endpoint"], "unconfigured", "{region}");
    }
    call(
        &app,
        &app.admin,
        "DELETE /global/v3/audit-log-webhook",
        None,
        404,
    )
    .await;
    app.stop().await;
}

/// Portal webhooks on `/v2` and `/v3`: always bound, 404 for unknown or malformed portals,
/// status, delete, and the destination they hold.
#[tokio::test]
async fn portal_webhooks() {
    let app = TestApp::spawn().await;
    let portal = app.create_portal("Developers", "eu").await;
    let id = destination(&app, "portal-siem", "https://52.1.2.3/p").await;
    for version in ["v2", "v3"] {
        let hook = format!("/{version}/portals/{portal}/audit-log-webhook");
        let status = format!("{hook}/status");
        let get = |path: String, code: u16| {
            let app = &app;
            async move { call(app, &app.admin, &format!("GET {path}"), None, code).await }
        };
        get(hook.clone(), 404).await;
        assert_eq!(
            get(status.clone(), 200).await,
            json!({"webhook_enabled": false, "webhook_status": "unconfigured"})
        );
        let p = call(
            &app,
            &app.admin,
            &format!("PATCH {hook}"),
            Some(json!({"enabled": true})),
            400,
        )
        .await;
        assert_eq!(invalid_fields(&p)[0].0, "audit_log_destination_id");
        let bound = call(
            &app,
            &app.admin,
            &format!("PATCH {hook}"),
            Some(json!({"audit_log_destination_id": id, "enabled": true})),
            200,
        )
        .await;
        assert_eq!(
            bound,
            json!({"audit_log_destination_id": id, "enabled": true})
        );
        // Any region prefix reaches the portal's webhook.
        let via_us = expect_json(
            app.get(&format!("/us{hook}"), &app.admin).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(via_us, bound);
        assert_eq!(
            konnect_fields(get(status.clone(), 200).await),
            json!({"webhook_enabled": true, "webhook_status": "active"})
        );
        // The portal's scope is its own: the org webhook of its region is untouched.
        let org = expect_json(
            app.get("/eu/v2/audit-log-webhook", &app.admin).await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(org["endpoint"], "unconfigured");

        let resp = app
            .delete(&format!("/v3/audit-log-destinations/{id}"), &app.admin)
            .await;
        assert_eq!(
            resp.status(),
            StatusCode::CONFLICT,
            "a portal webhook holds it"
        );
        call(&app, &app.admin, &format!("DELETE {hook}"), None, 204).await;
        get(hook.clone(), 404).await;
        call(&app, &app.admin, &format!("DELETE {hook}"), None, 404).await;
    }

    let unknown = PortalId::new_v4();
    for portal in [unknown.to_string(), "not-a-uuid".to_owned()] {
        let hook = format!("/v3/portals/{portal}/audit-log-webhook");
        let bind = json!({"audit_log_destination_id": id});
        for (request, body) in [
            (format!("GET {hook}"), None),
            (format!("PATCH {hook}"), Some(bind)),
            (format!("DELETE {hook}"), None),
            (format!("GET {hook}/status"), None),
        ] {
            call(&app, &app.admin, &request, body, 404).await;
        }
    }

    // Deleting the portal removes its webhook, which frees the destination.
    let hook = format!("/v3/portals/{portal}/audit-log-webhook");
    let resp = app
        .request(
            Method::PATCH,
            &hook,
            Some(&app.admin),
            Some(json!({"audit_log_destination_id": id})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let resp = app
        .delete(&format!("/v3/portals/{portal}"), &app.admin)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    let resp = app
        .delete(&format!("/v3/audit-log-destinations/{id}"), &app.admin)
        .await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    app.stop().await;
}

/// Who may do what: admins write, viewers read, a portal admin manages only its portal's
/// webhook, producers nothing. Every change is self-audited.
#[tokio::test]
async fn roles() {
    let app = TestApp::spawn().await;
    let portal_a = app.create_portal("A", "us").await;
    let portal_b = app.create_portal("B", "us").await;
    let id = destination(&app, "siem", "https://52.1.2.3/siem").await;
    let audit_admin = app.token(Role::AuditLogsAdmin, None).await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let portal_admin = app.token(Role::PortalAdmin, Some(portal_a)).await;
    let producer = app.token(Role::EventProducer, None).await;
    let bind = json!({"audit_log_destination_id": id, "enabled": true});

    let org = "/us/v3/audit-log-webhook";
    call(
        &app,
        &audit_admin,
        &format!("PATCH {org}"),
        Some(bind.clone()),
        200,
    )
    .await;
    for token in [&app.admin, &audit_admin, &viewer] {
        call(&app, token, &format!("GET {org}"), None, 200).await;
        call(
            &app,
            token,
            "GET /us/v2/audit-log-webhook/status",
            None,
            200,
        )
        .await;
    }
    for token in [&viewer, &portal_admin, &producer] {
        call(
            &app,
            token,
            &format!("PATCH {org}"),
            Some(bind.clone()),
            403,
        )
        .await;
        call(
            &app,
            token,
            "PATCH /us/v2/audit-log-webhook",
            Some(json!({"enabled": false})),
            403,
        )
        .await;
        call(&app, token, &format!("DELETE {org}"), None, 403).await;
    }
    for token in [&portal_admin, &producer] {
        call(&app, token, &format!("GET {org}"), None, 403).await;
    }

    let hook_a = format!("/v3/portals/{portal_a}/audit-log-webhook");
    let hook_b = format!("/v3/portals/{portal_b}/audit-log-webhook");
    // The organization's destination is not the portal admin's to bind; its portal's own is.
    call(
        &app,
        &portal_admin,
        &format!("PATCH {hook_a}"),
        Some(bind.clone()),
        400,
    )
    .await;
    let own = call(
        &app,
        &portal_admin,
        "POST /v3/audit-log-destinations",
        Some(json!({"name": "a-siem", "endpoint": "https://52.1.2.3/a", "authorization": "Bearer a"})),
        201,
    )
    .await;
    let bind_own = json!({"audit_log_destination_id": own["id"], "enabled": true});
    call(
        &app,
        &portal_admin,
        &format!("PATCH {hook_a}"),
        Some(bind_own),
        200,
    )
    .await;
    call(
        &app,
        &portal_admin,
        &format!("GET {hook_a}/status"),
        None,
        200,
    )
    .await;
    call(
        &app,
        &portal_admin,
        &format!("PATCH {hook_b}"),
        Some(bind.clone()),
        403,
    )
    .await;
    call(&app, &portal_admin, &format!("GET {hook_b}"), None, 403).await;
    call(&app, &viewer, &format!("GET {hook_a}"), None, 200).await;
    call(&app, &viewer, &format!("DELETE {hook_a}"), None, 403).await;
    call(&app, &producer, &format!("GET {hook_a}"), None, 403).await;
    call(&app, &portal_admin, &format!("DELETE {hook_a}"), None, 204).await;

    // The changes are in the self-audit log: an authorization and an access event each.
    let events = app.stored("us", None, None).await;
    let writes: Vec<_> = events
        .iter()
        .filter_map(|e| match &e.event.detail {
            auditrelay_core::EventDetail::Access {
                method,
                status_code,
                ..
            } if method != "GET"
                && e.event
                    .uri
                    .as_deref()
                    .is_some_and(|u| u.contains("audit-log-webhook")) =>
            {
                Some((method.clone(), *status_code, e.event.uri.clone().unwrap()))
            }
            _ => None,
        })
        .collect();
    assert!(
        writes.contains(&("PATCH".into(), 200, org.into())),
        "{writes:?}"
    );
    assert!(
        writes.contains(&("PATCH".into(), 403, org.into())),
        "{writes:?}"
    );
    assert!(
        writes.contains(&("DELETE".into(), 204, hook_a.clone())),
        "{writes:?}"
    );
    app.stop().await;
}

/// The authorization value of a webhook is never in a response, a log line, a metric or the
/// database file: the real binary at debug level, its stderr captured.
#[tokio::test]
async fn the_authorization_value_never_leaks() {
    const SECRET: &str = "Splunk 0c0ffee0-aaaa-4bbb-8ccc-000000000001";
    const BAD: &str = "Splunk 0c0ffee0-aaaa-4bbb-8ccc-000000000002";
    let dir = tempfile::tempdir().unwrap();
    let log = dir.path().join("stderr.log");
    let data = dir.path().join("data");
    std::fs::create_dir_all(&data).unwrap();
    let token = create_token(&data, "org-admin");
    let port = free_port();
    let mut command = tokio::process::Command::new(BIN);
    command
        .env("AUDITRELAY_LOG__LEVEL", "debug")
        .env("AUDITRELAY_LOG__FORMAT", "json")
        // Scraped with the same bearer token as the API requests below.
        .env("AUDITRELAY_METRICS__TOKEN", &token)
        .stderr(std::fs::File::create(&log).unwrap());
    let mut child = serve_with(command, &data, port).await;
    let base = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();

    let mut seen = String::new();
    let mut send = async |method: Method, path: &str, body: Option<Value>| {
        let mut req = client
            .request(method, format!("{base}{path}"))
            .bearer_auth(&token);
        if let Some(body) = body {
            req = req.json(&body);
        }
        let resp = req.send().await.unwrap();
        let status = resp.status();
        seen.push_str(&format!("{:?}", resp.headers()));
        seen.push_str(&resp.text().await.unwrap());
        status
    };
    let inline =
        json!({"endpoint": "https://52.1.2.3/x", "authorization": SECRET, "enabled": true});
    assert_eq!(
        send(Method::PATCH, "/us/v2/audit-log-webhook", Some(inline)).await,
        StatusCode::OK
    );
    // A rejected request carrying another secret must not echo or log it either.
    let bad = json!({"endpoint": "ftp://nowhere", "authorization": BAD});
    assert_eq!(
        send(Method::PATCH, "/us/v2/audit-log-webhook", Some(bad)).await,
        StatusCode::BAD_REQUEST
    );
    let bad =
        json!({"name": "x", "endpoint": "https://52.1.2.3/x", "authorization": BAD, "extra": 1});
    assert_eq!(
        send(Method::POST, "/v3/audit-log-destinations", Some(bad)).await,
        StatusCode::BAD_REQUEST
    );
    for path in [
        "/us/v2/audit-log-webhook",
        "/us/v3/audit-log-webhook",
        "/us/v2/audit-log-webhook/status",
        "/v2/audit-log-destinations",
        "/v3/audit-logs?page[size]=1000",
        "/metrics",
    ] {
        assert_eq!(
            send(Method::GET, path, None).await,
            StatusCode::OK,
            "{path}"
        );
    }
    // Stop gracefully so every log line is written.
    let pid = child.id().unwrap();
    std::process::Command::new("kill")
        .args(["-TERM", &pid.to_string()])
        .status()
        .unwrap();
    tokio::time::timeout(Duration::from_secs(30), child.wait())
        .await
        .unwrap()
        .unwrap();

    let logs = std::fs::read_to_string(&log).unwrap();
    assert!(
        logs.contains("audit-log-webhook"),
        "the requests were logged: {logs}"
    );
    for secret in [SECRET, BAD, "0c0ffee0-aaaa"] {
        assert!(!seen.contains(secret), "{secret} in a response");
        assert!(!logs.contains(secret), "{secret} in a log line");
        for file in ["auditrelay.db", "auditrelay.db-wal"] {
            let bytes = std::fs::read(data.join(file)).unwrap_or_default();
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in clear in {file}"
            );
        }
    }
}

/// Our extensions beside Konnect's webhook API: `POST …/audit-log-webhook/test-event` (org
/// and portal) delivers a labelled test event, and the status shows the backlog while events
/// wait.
#[tokio::test]
async fn test_events_and_the_backlog() {
    use crate::support::receiver::{Behaviour, TestReceiver};

    let app = TestApp::spawn_with(|c| {
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
        c.delivery.flush_interval = Duration::from_millis(50);
    })
    .await;
    let receiver = TestReceiver::http().await;
    let id = destination(&app, "siem", &receiver.url()).await;
    let test = "/us/v3/audit-log-webhook/test-event";

    // Nothing to deliver it: 400, naming the webhook.
    let resp = app
        .request(Method::POST, test, Some(&app.admin), None)
        .await;
    let p = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&p),
        [("webhook".to_owned(), "invalid".to_owned())]
    );
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let resp = app.request(Method::POST, test, Some(&viewer), None).await;
    expect_problem(resp, StatusCode::FORBIDDEN).await;
    let resp = app
        .request(
            Method::POST,
            "/global/v3/audit-log-webhook/test-event",
            Some(&app.admin),
            None,
        )
        .await;
    expect_problem(resp, StatusCode::BAD_REQUEST).await;

    let body = json!({"audit_log_destination_id": id, "enabled": true});
    call(
        &app,
        &app.admin,
        "PATCH /us/v3/audit-log-webhook",
        Some(body),
        200,
    )
    .await;
    let resp = app
        .request(Method::POST, test, Some(&app.admin), None)
        .await;
    let sent = expect_json(resp, StatusCode::ACCEPTED).await;
    let trace = sent["trace_id"].as_str().unwrap().to_owned();
    assert!(sent["ts"].is_string(), "{sent}");
    let lines = receiver
        .wait_until(Duration::from_secs(10), "the test event", |requests| {
            let lines: Vec<String> = requests
                .iter()
                .flat_map(|r| r.lines.clone())
                .filter(|l| l.contains(&format!("\"trace_id\":\"{trace}\"")))
                .collect();
            (lines.len() >= 3).then_some(lines)
        })
        .await;
    assert!(
        lines
            .iter()
            .any(|l| l.contains("\"name\":\"Authz.audit-log-webhook\"")
                && l.contains("\"action\":\"test\"")),
        "{lines:#?}"
    );

    // A portal's test event is an authentication event of the portal, in its region.
    let portal = app.create_portal("Developer Portal", "eu").await;
    let body = json!({"audit_log_destination_id": id, "enabled": true});
    let path = format!("PATCH /v3/portals/{portal}/audit-log-webhook");
    call(&app, &app.admin, &path, Some(body), 200).await;
    let resp = app
        .request(
            Method::POST,
            &format!("/v3/portals/{portal}/audit-log-webhook/test-event"),
            Some(&app.admin),
            None,
        )
        .await;
    let sent = expect_json(resp, StatusCode::ACCEPTED).await;
    let trace = sent["trace_id"].as_str().unwrap().to_owned();
    let line = receiver
        .wait_until(
            Duration::from_secs(10),
            "the portal's test event",
            |requests| {
                requests
                    .iter()
                    .flat_map(|r| &r.lines)
                    .find(|l| {
                        l.contains(&format!("\"trace_id\":\"{trace}\""))
                            && l.contains(&portal.to_string())
                    })
                    .cloned()
            },
        )
        .await;
    assert!(
        line.contains("\"name\":\"AUTHENTICATION_OUTCOME_SUCCESS\""),
        "{line}"
    );
    assert!(line.contains("/audit-log-webhook/test-event"), "{line}");
    let stored = app
        .stored(
            "eu",
            Some(portal),
            Some(auditrelay_core::EventType::Authentication),
        )
        .await;
    assert!(
        stored
            .iter()
            .any(|e| e.event.trace_id.as_deref() == Some(trace.as_str())),
        "the test event belongs to the portal"
    );

    // While the SIEM does not answer, the status counts what waits.
    receiver.set_default(Behaviour::Hang);
    let status = call(
        &app,
        &app.admin,
        "GET /us/v3/audit-log-webhook/status",
        None,
        200,
    )
    .await;
    assert!(status["lag_events"].is_u64(), "{status}");
    let body = crate::support::events::ndjson(&[crate::support::events::authorization(
        now().saturating_sub_millis(3_600_000),
        "waiting",
    )]);
    let resp = app.ingest_ndjson("/us/v1/events", &app.admin, body).await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let status = call(
        &app,
        &app.admin,
        "GET /us/v3/audit-log-webhook/status",
        None,
        200,
    )
    .await;
    assert!(status["lag_events"].as_u64().unwrap() >= 1, "{status}");
    let left = status["seconds_until_data_loss"].as_u64().unwrap();
    let week = 7 * 86_400;
    assert!((week - 3_700..=week - 3_500).contains(&left), "{status}");
    assert!(status["oldest_undelivered_at"].is_string(), "{status}");

    // A disabled webhook has no backlog: nothing is waiting to be sent.
    let body = json!({"enabled": false});
    call(
        &app,
        &app.admin,
        "PATCH /us/v3/audit-log-webhook",
        Some(body),
        200,
    )
    .await;
    let status = call(
        &app,
        &app.admin,
        "GET /us/v3/audit-log-webhook/status",
        None,
        200,
    )
    .await;
    assert!(status.get("lag_events").is_none(), "{status}");
    app.stop().await;
}

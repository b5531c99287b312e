//! `POST /v1/events`: what is accepted is stored exactly; every rejection stores nothing.

use auditrelay_core::{EventDetail, PortalId, Role};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::events::{access, authorization, ndjson, portal_login};
use crate::support::{TestApp, expect_json, expect_problem, invalid_fields, now};

#[tokio::test]
async fn ndjson_and_arrays_are_stored_as_sent() {
    let app = TestApp::spawn().await;
    let producer = app.token(Role::EventProducer, None).await;
    let portal = app.create_portal("Developers", "eu").await;
    let t = now().saturating_sub_millis(60_000);

    let mut authz = authorization(t, "t-authz");
    authz["principal_name"] = json!("Ada");
    authz["kong_initiated"] = json!(true);
    authz["uri"] = json!("/v2/control-planes");
    authz["actor_id"] = json!("impersonator");
    let batch = [
        authz,
        access(t, "t-access"),
        portal_login(t, portal, "t-portal"),
    ];
    let resp = app
        .ingest_ndjson("/v1/events", &producer, ndjson(&batch))
        .await;
    assert_eq!(
        expect_json(resp, StatusCode::ACCEPTED).await,
        json!({"accepted": 3})
    );

    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&producer)
        .json(&json!([
            authorization(t, "t-array-1"),
            authorization(t, "t-array-2")
        ]))
        .send()
        .await
        .unwrap();
    assert_eq!(
        expect_json(resp, StatusCode::ACCEPTED).await,
        json!({"accepted": 2})
    );

    let org_events = app.stored("us", None, None).await;
    let ours: Vec<_> = org_events
        .iter()
        .filter(|e| {
            e.event
                .trace_id
                .as_deref()
                .is_some_and(|t| t.starts_with("t-"))
        })
        .collect();
    assert_eq!(
        ours.len(),
        4,
        "two from NDJSON (the portal one is elsewhere) and two from the array"
    );
    let authz = &ours[0].event;
    assert_eq!(authz.ts, t);
    assert_eq!(authz.org_id, app.org());
    assert_eq!(authz.principal_name.as_deref(), Some("Ada"));
    assert_eq!(authz.actor_id.as_deref(), Some("impersonator"));
    assert_eq!(authz.uri.as_deref(), Some("/v2/control-planes"));
    assert_eq!(authz.client_ip.as_deref(), Some("127.0.0.6"));
    assert_eq!(
        authz.detail,
        EventDetail::Authorization {
            service: "konnect".into(),
            resource: "control-planes".into(),
            action: "list".into(),
            granted: true,
            kong_initiated: Some(true),
        }
    );
    let access = &ours[1].event;
    assert!(matches!(
        &access.detail,
        EventDetail::Access { method, status_code: 201, kong_initiated: Some(false), .. } if method == "POST"
    ));
    assert_eq!(access.severity(), 1);

    // The portal event took its portal's region, not the request's.
    let portal_events = app.stored("eu", Some(portal), None).await;
    assert_eq!(portal_events.len(), 1);
    assert_eq!(portal_events[0].event.portal_id, Some(portal));
    assert_eq!(portal_events[0].event.user_agent.as_deref(), Some(""));
    app.stop().await;
}

/// Sends `body` and checks the status, the rejected `(field, rule)` pairs (for 400s), and that
/// nothing new was stored.
async fn rejects(
    app: &TestApp,
    token: &str,
    content_type: &str,
    body: String,
    status: StatusCode,
) -> Value {
    let before = app.store().count_events().await.unwrap();
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(token)
        .header("content-type", content_type)
        .body(body)
        .send()
        .await
        .unwrap();
    let problem = expect_problem(resp, status).await;
    // Only this request's own self-audit events (authentication, authorization, access) may
    // have been added; none of the sent events.
    let after = app.store().count_events().await.unwrap();
    assert!(
        after - before <= 3,
        "events were stored by a rejected request: {problem}"
    );
    problem
}

const NDJSON: &str = "application/x-ndjson";

#[tokio::test]
async fn every_bad_input_is_rejected_with_the_line_and_field() {
    let app = TestApp::spawn_with(|c| {
        c.ingest.max_body_bytes = 64 * 1024;
        c.ingest.max_events = 50;
    })
    .await;
    let producer = app.token(Role::EventProducer, None).await;
    let good = authorization(now(), "ok");
    let with = |edit: &dyn Fn(&mut Value)| {
        let mut e = good.clone();
        edit(&mut e);
        e
    };
    let cases: Vec<(&str, Vec<Value>, &str, &str)> = vec![
        (
            "missing field",
            vec![
                good.clone(),
                with(&|e| drop(e.as_object_mut().unwrap().remove("action"))),
            ],
            "action",
            "required",
        ),
        (
            "mistyped field",
            vec![good.clone(), with(&|e| e["granted"] = json!("yes"))],
            "granted",
            "is_boolean",
        ),
        (
            "unknown type",
            vec![good.clone(), with(&|e| e["type"] = json!("login"))],
            "type",
            "enum",
        ),
        (
            "unknown field",
            vec![good.clone(), with(&|e| e["colour"] = json!("red"))],
            "colour",
            "unknown_property",
        ),
        (
            "a signature",
            vec![good.clone(), with(&|e| e["signature"] = json!("abc"))],
            "signature",
            "unknown_property",
        ),
        (
            "too old",
            vec![
                good.clone(),
                with(&|e| {
                    e["ts"] = json!(
                        now()
                            .saturating_sub_millis(8 * 86_400_000)
                            .to_rfc3339_millis()
                    )
                }),
            ],
            "ts",
            "invalid",
        ),
        (
            "too far ahead",
            vec![
                good.clone(),
                with(&|e| {
                    e["ts"] = json!(now().saturating_add_millis(600_000).to_rfc3339_millis())
                }),
            ],
            "ts",
            "invalid",
        ),
        (
            "not a date",
            vec![good.clone(), with(&|e| e["ts"] = json!("2026-11-20"))],
            "ts",
            "is_date_time",
        ),
    ];
    for (name, events, field, rule) in cases {
        let problem = rejects(
            &app,
            &producer,
            NDJSON,
            ndjson(&events),
            StatusCode::BAD_REQUEST,
        )
        .await;
        let params = problem["invalid_parameters"].as_array().unwrap();
        assert_eq!(
            invalid_fields(&problem),
            [(field.to_owned(), rule.to_owned())],
            "{name}: {problem}"
        );
        assert_eq!(params[0]["source"], "line 2", "{name}");
        assert!(
            problem["detail"].as_str().unwrap().contains("line 2"),
            "{name}: {problem}"
        );
    }

    // Unparsable JSON on one line, and several bad lines counted in the detail.
    let problem = rejects(
        &app,
        &producer,
        NDJSON,
        format!("{good}\n{{oops\n"),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&problem),
        [("event".to_owned(), String::new())]
    );
    let bad = with(&|e| e["type"] = json!("x"));
    let problem = rejects(
        &app,
        &producer,
        NDJSON,
        ndjson(&[bad.clone(), good.clone(), bad]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        problem["detail"],
        "2 of 3 events are invalid; nothing was stored"
    );

    // A JSON array reports positions as events; a broken array is Konnect's unparsable body.
    let problem = rejects(
        &app,
        &producer,
        "application/json",
        json!([good, {"type": "x"}]).to_string(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["invalid_parameters"][0]["source"], "event 2");
    let problem = rejects(
        &app,
        &producer,
        "application/json",
        "[{}".to_owned(),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(problem["detail"], "Could not parse request body");
    rejects(
        &app,
        &producer,
        NDJSON,
        "\n\n".to_owned(),
        StatusCode::BAD_REQUEST,
    )
    .await;

    // Unknown portal.
    let ghost = PortalId::new_v4();
    let problem = rejects(
        &app,
        &producer,
        NDJSON,
        ndjson(&[portal_login(now(), ghost, "g")]),
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&problem),
        [("portal_id".to_owned(), "missing_reference".to_owned())]
    );

    // Scope: another organization, and a portal-bound producer sending org events.
    let foreign = with(&|e| e["org_id"] = json!("11111111-2222-4333-8444-555555555555"));
    rejects(
        &app,
        &producer,
        NDJSON,
        ndjson(&[foreign]),
        StatusCode::FORBIDDEN,
    )
    .await;
    let portal = app.create_portal("P", "us").await;
    let bound = app.token(Role::EventProducer, Some(portal)).await;
    let problem = rejects(
        &app,
        &bound,
        NDJSON,
        ndjson(&[portal_login(now(), portal, "p"), good.clone()]),
        StatusCode::FORBIDDEN,
    )
    .await;
    assert!(
        problem["detail"].as_str().unwrap().contains("line 2"),
        "{problem}"
    );

    // Media type and limits.
    rejects(
        &app,
        &producer,
        "text/plain",
        ndjson(std::slice::from_ref(&good)),
        StatusCode::UNSUPPORTED_MEDIA_TYPE,
    )
    .await;
    let many = vec![good.clone(); 51];
    rejects(
        &app,
        &producer,
        NDJSON,
        ndjson(&many),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;
    let mut huge = good.clone();
    huge["user_agent"] = json!("x".repeat(8000));
    let big = vec![huge; 10];
    rejects(
        &app,
        &producer,
        NDJSON,
        ndjson(&big),
        StatusCode::PAYLOAD_TOO_LARGE,
    )
    .await;

    // A request on the `global` pseudo-region cannot place org events.
    let resp = app
        .ingest_ndjson(
            "/global/v1/events",
            &producer,
            ndjson(std::slice::from_ref(&good)),
        )
        .await;
    expect_problem(resp, StatusCode::BAD_REQUEST).await;

    assert_eq!(
        app.stored("us", None, Some(auditrelay_core::EventType::Authorization))
            .await
            .iter()
            .filter(|e| e.event.trace_id.as_deref() == Some("ok"))
            .count(),
        0
    );
    app.stop().await;
}

#[tokio::test]
async fn a_body_streamed_past_the_limit_is_413() {
    let app = TestApp::spawn_with(|c| c.ingest.max_body_bytes = 1024).await;
    let producer = app.token(Role::EventProducer, None).await;
    // No Content-Length: the limit must hold on the stream itself.
    let chunks: Vec<Result<Vec<u8>, std::io::Error>> =
        (0..8).map(|_| Ok(vec![b' '; 512])).collect();
    let resp = app
        .client
        .post(app.url("/v1/events"))
        .bearer_auth(&producer)
        .header("content-type", NDJSON)
        .body(reqwest::Body::wrap_stream(futures_util::stream::iter(
            chunks,
        )))
        .send()
        .await
        .unwrap();
    expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;
    app.stop().await;
}

#[tokio::test]
async fn a_role_that_can_never_ingest_is_refused_before_its_body_is_read() {
    let app = TestApp::spawn().await;
    let portal = app.create_portal("P", "us").await;
    let roles = [
        (Role::AuditLogsViewer, None),
        (Role::AuditLogsAdmin, None),
        (Role::PortalAdmin, Some(portal)),
    ];
    for (role, bound) in roles {
        let token = app.token(role, bound).await;
        // An invalid body is not even parsed: 403, not a 400 listing what is wrong with it.
        let resp = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(&token)
            .header("content-type", NDJSON)
            .body("{\"type\":\"nonsense\"}\nnot json at all")
            .send()
            .await
            .unwrap();
        expect_problem(resp, StatusCode::FORBIDDEN).await;

        // A body that never ends is not waited for.
        let first: Vec<Result<Vec<u8>, std::io::Error>> = vec![Ok(b"{\"type\":".to_vec())];
        let endless = futures_util::StreamExt::chain(
            futures_util::stream::iter(first),
            futures_util::stream::pending(),
        );
        let resp = tokio::time::timeout(
            std::time::Duration::from_secs(10),
            app.client
                .post(app.url("/v1/events"))
                .bearer_auth(&token)
                .header("content-type", NDJSON)
                .body(reqwest::Body::wrap_stream(endless))
                .send(),
        )
        .await
        .expect("answered without waiting for the body")
        .unwrap();
        expect_problem(resp, StatusCode::FORBIDDEN).await;
    }
    // The refusal is audited like any permission check.
    let denied = app
        .stored("us", None, Some(auditrelay_core::EventType::Authorization))
        .await
        .into_iter()
        .filter(|e| {
            matches!(&e.event.detail, EventDetail::Authorization { resource, granted: false, .. } if resource == "events")
        })
        .count();
    assert_eq!(denied, 6);
    app.stop().await;
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    use std::io::Write as _;
    let mut encoder = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

#[tokio::test]
async fn gzip_bodies_are_decoded_within_the_limit_and_other_encodings_are_415() {
    let app = TestApp::spawn_with(|c| c.ingest.max_body_bytes = 64 * 1024).await;
    let producer = app.token(Role::EventProducer, None).await;
    let send = |body: Vec<u8>, encoding: &'static str| {
        app.client
            .post(app.url("/v1/events"))
            .bearer_auth(&producer)
            .header("content-type", NDJSON)
            .header("content-encoding", encoding)
            .body(body)
            .send()
    };
    let events = ndjson(&[authorization(now(), "gz-1"), authorization(now(), "gz-2")]);

    let resp = send(gzip(events.as_bytes()), "gzip").await.unwrap();
    assert_eq!(expect_json(resp, StatusCode::ACCEPTED).await["accepted"], 2);
    let stored = app
        .stored("us", None, Some(auditrelay_core::EventType::Authorization))
        .await;
    for trace in ["gz-1", "gz-2"] {
        assert!(
            stored
                .iter()
                .any(|e| e.event.trace_id.as_deref() == Some(trace)),
            "{trace}"
        );
    }

    // Labelled gzip but plain: refused, not stored as if it were plain.
    let resp = send(events.clone().into_bytes(), "gzip").await.unwrap();
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&problem),
        [("body".to_owned(), String::new())]
    );

    // A small gzip that inflates past the limit stops inflating at it.
    let bomb = gzip(&vec![b' '; 10 * 1024 * 1024]);
    assert!(bomb.len() < 64 * 1024);
    let resp = send(bomb, "gzip").await.unwrap();
    expect_problem(resp, StatusCode::PAYLOAD_TOO_LARGE).await;

    for encoding in ["br", "deflate", "gzip, br", "compress"] {
        let resp = send(events.clone().into_bytes(), encoding).await.unwrap();
        let problem = expect_problem(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("Content-Encoding"),
            "{problem}"
        );
    }
    let resp = send(events.clone().into_bytes(), "identity").await.unwrap();
    assert_eq!(expect_json(resp, StatusCode::ACCEPTED).await["accepted"], 2);

    // Nothing of the refused requests was stored.
    let stored = app
        .stored("us", None, Some(auditrelay_core::EventType::Authorization))
        .await;
    let gz = stored
        .iter()
        .filter(|e| {
            e.event
                .trace_id
                .as_deref()
                .is_some_and(|t| t.starts_with("gz-"))
        })
        .count();
    assert_eq!(gz, 4);
    app.stop().await;
}

//! Self-audit: our own API records authentication, authorization and access events, all
//! carrying the request's trace id.

use auditrelay_core::{AuthenticationOutcome, AuthenticationType, EventDetail, Role};
use reqwest::StatusCode;
use serde_json::json;

use crate::support::{TestApp, expect_json, expect_problem};

#[tokio::test]
async fn a_state_change_records_authentication_authorization_and_access() {
    let app = TestApp::spawn().await;
    let resp = app
        .client
        .post(app.url("/eu/v3/portals?source=test"))
        .bearer_auth(&app.admin)
        .header("user-agent", "self-audit-test/1.0")
        .json(&json!({"name": "Audited"}))
        .send()
        .await
        .unwrap();
    expect_json(resp, StatusCode::CREATED).await;

    let events = app.stored("eu", None, None).await;
    let trace = events.last().unwrap().event.trace_id.clone().unwrap();
    let ours: Vec<_> = events
        .iter()
        .filter(|e| e.event.trace_id.as_deref() == Some(&trace))
        .collect();
    assert_eq!(ours.len(), 3, "{ours:#?}");
    for e in &ours {
        assert_eq!(e.event.uri.as_deref(), Some("/eu/v3/portals"));
        assert_eq!(e.event.user_agent.as_deref(), Some("self-audit-test/1.0"));
        assert_eq!(e.event.client_ip.as_deref(), Some("127.0.0.1"));
        assert_eq!(e.event.principal_name.as_deref(), Some("bootstrap-admin"));
        assert!(
            e.event
                .principal_id
                .as_deref()
                .is_some_and(|p| !p.is_empty())
        );
        assert_eq!(e.event.org_id, app.org());
    }
    assert_eq!(
        ours[0].event.detail,
        EventDetail::Authentication {
            outcome: AuthenticationOutcome::Success,
            authentication_type: AuthenticationType::Pat,
        }
    );
    assert_eq!(
        ours[1].event.detail,
        EventDetail::Authorization {
            service: "auditrelay".into(),
            resource: "portals".into(),
            action: "create".into(),
            granted: true,
            kong_initiated: None,
        }
    );
    assert_eq!(
        ours[2].event.detail,
        EventDetail::Access {
            method: "POST".into(),
            query: r#"{"source":"test"}"#.into(),
            status_code: 201,
            kong_initiated: None,
        }
    );
    app.stop().await;
}

#[tokio::test]
async fn denied_checks_and_reads_are_audited_too() {
    let app = TestApp::spawn().await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;

    // A read: authentication and authorization, no access event.
    expect_json(app.get("/v3/portals", &viewer).await, StatusCode::OK).await;
    // A denied write: the authorization event says granted=false; the access event has 403.
    let body = expect_problem(
        app.post("/v3/portals", &viewer, json!({"name": "x"})).await,
        StatusCode::FORBIDDEN,
    )
    .await;
    let trace = body["instance"]
        .as_str()
        .unwrap()
        .trim_start_matches("kong:trace:")
        .to_owned();

    let events = app.stored("us", None, None).await;
    let denied: Vec<_> = events
        .iter()
        .filter(|e| e.event.trace_id.as_deref() == Some(&trace))
        .collect();
    assert_eq!(denied.len(), 3);
    assert!(
        matches!(&denied[1].event.detail, EventDetail::Authorization { granted: false, action, .. } if action == "create")
    );
    assert_eq!(denied[1].event.severity(), 6);
    assert!(matches!(
        denied[2].event.detail,
        EventDetail::Access {
            status_code: 403,
            ..
        }
    ));
    assert_eq!(denied[2].event.severity(), 6);

    let reads = events
        .iter()
        .filter(|e| matches!(&e.event.detail, EventDetail::Authorization { action, .. } if action == "list"))
        .count();
    assert_eq!(reads, 1);
    let accesses_without_writes = events
        .iter()
        .filter(
            |e| matches!(&e.event.detail, EventDetail::Access { method, .. } if method == "GET"),
        )
        .count();
    assert_eq!(
        accesses_without_writes, 0,
        "reads do not record access events"
    );

    // An unauthenticated write still records its access event, attributed to nobody.
    let resp = app
        .request(reqwest::Method::DELETE, "/v3/portals/x", None, None)
        .await;
    let body = expect_problem(resp, StatusCode::UNAUTHORIZED).await;
    let trace = body["instance"]
        .as_str()
        .unwrap()
        .trim_start_matches("kong:trace:")
        .to_owned();
    let events = app.stored("us", None, None).await;
    let access = events
        .iter()
        .find(|e| {
            e.event.trace_id.as_deref() == Some(&trace)
                && matches!(e.event.detail, EventDetail::Access { .. })
        })
        .expect("access event");
    assert_eq!(access.event.principal_id.as_deref(), Some(""));
    assert!(matches!(
        access.event.detail,
        EventDetail::Access {
            status_code: 401,
            ..
        }
    ));
    app.stop().await;
}

#[tokio::test]
async fn an_accepted_ingest_is_audited_once_in_the_same_commit() {
    let app = TestApp::spawn().await;
    let producer = app.token(Role::EventProducer, None).await;
    let body = crate::support::events::ndjson(&[crate::support::events::authorization(
        crate::support::now(),
        "payload",
    )]);
    expect_json(
        app.ingest_ndjson("/v1/events", &producer, body).await,
        StatusCode::ACCEPTED,
    )
    .await;

    let mut events = app.stored("us", None, None).await;
    events.sort_by_key(|e| e.seq); // ingest order, not event time
    let payload = events
        .iter()
        .position(|e| e.event.trace_id.as_deref() == Some("payload"))
        .expect("stored");
    // The request's own events come just before its batch, in one commit.
    let trace = events[payload - 1].event.trace_id.clone().unwrap();
    let audit: Vec<_> = events
        .iter()
        .filter(|e| e.event.trace_id.as_deref() == Some(&trace))
        .collect();
    assert_eq!(audit.len(), 3, "{audit:#?}");
    assert!(matches!(
        audit[0].event.detail,
        EventDetail::Authentication {
            outcome: AuthenticationOutcome::Success,
            ..
        }
    ));
    assert!(
        matches!(&audit[1].event.detail, EventDetail::Authorization { resource, granted: true, .. } if resource == "events")
    );
    assert!(
        matches!(&audit[2].event.detail, EventDetail::Access { status_code: 202, method, .. } if method == "POST")
    );
    assert!(audit.iter().all(|e| e.seq < events[payload].seq));
    app.stop().await;
}

/// Konnect's guides check a new webhook by calling one of Konnect's routes
/// (`GET /v2/control-planes`) and watching the SIEM. Unknown here, it still checks and audits
/// the token, so the step puts a line in the SIEM; a request without a token records nothing.
#[tokio::test]
async fn a_token_sent_to_an_unknown_route_is_still_audited() {
    let app = TestApp::spawn().await;
    let trace_of = |problem: &serde_json::Value| {
        problem["instance"]
            .as_str()
            .unwrap()
            .trim_start_matches("kong:trace:")
            .to_owned()
    };
    let get = app.request(
        reqwest::Method::GET,
        "/v2/control-planes",
        Some(&app.admin),
        None,
    );
    let got = trace_of(&expect_problem(get.await, StatusCode::NOT_FOUND).await);
    let post = app.request(
        reqwest::Method::POST,
        "/v2/control-planes",
        Some("kpat_wrong"),
        Some(json!({})),
    );
    let posted = trace_of(&expect_problem(post.await, StatusCode::NOT_FOUND).await);
    let anonymous = app.request(reqwest::Method::GET, "/v2/control-planes", None, None);
    let nobody = trace_of(&expect_problem(anonymous.await, StatusCode::NOT_FOUND).await);

    let events = app.stored("us", None, None).await;
    let of = |trace: &str| -> Vec<EventDetail> {
        events
            .iter()
            .filter(|e| e.event.trace_id.as_deref() == Some(trace))
            .map(|e| e.event.detail.clone())
            .collect()
    };
    assert!(
        matches!(
            of(&got).as_slice(),
            [EventDetail::Authentication {
                outcome: AuthenticationOutcome::Success,
                ..
            }]
        ),
        "{:?}",
        of(&got)
    );
    assert!(
        matches!(
            of(&posted).as_slice(),
            [
                EventDetail::Authentication {
                    outcome: AuthenticationOutcome::NotFound,
                    ..
                },
                EventDetail::Access {
                    status_code: 404,
                    ..
                }
            ]
        ),
        "{:?}",
        of(&posted)
    );
    assert!(of(&nobody).is_empty());
    app.stop().await;
}

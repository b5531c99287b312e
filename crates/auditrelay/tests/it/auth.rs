//! Authentication: each 401 case (with Konnect's exact body and its self-audit outcome), and
//! the role × route-group matrix.

use std::time::Duration;

use auditrelay::store::PrincipalKind;
use auditrelay_core::{AuthenticationOutcome, AuthenticationType, EventDetail, EventType, Role};
use reqwest::{Method, StatusCode};
use serde_json::json;

use crate::support::events::{authorization, ndjson, portal_login};
use crate::support::{TestApp, expect_problem, now};

#[tokio::test]
async fn every_401_case_has_konnects_body_and_an_authentication_event() {
    let app = TestApp::spawn().await;
    let revoked = app.token(Role::AuditLogsViewer, None).await;
    let tokens = app.store().list_tokens(app.org()).await.unwrap();
    let revoked_id = tokens.last().unwrap().id;
    assert!(app.store().revoke_token(revoked_id, now()).await.unwrap());
    let expired = app
        .token_with(
            Role::AuditLogsViewer,
            None,
            PrincipalKind::User,
            // Expires the moment it is made: no waiting needed.
            Some(Duration::ZERO),
        )
        .await;

    let cases: [(Option<String>, AuthenticationType, AuthenticationOutcome); 6] = [
        (
            None,
            AuthenticationType::Invalid,
            AuthenticationOutcome::Invalid,
        ),
        (
            Some("Basic dXNlcjpwdw==".into()),
            AuthenticationType::Invalid,
            AuthenticationOutcome::Invalid,
        ),
        (
            Some("Bearer not-a-token".into()),
            AuthenticationType::Invalid,
            AuthenticationOutcome::Invalid,
        ),
        (
            Some("Bearer kpat_0000000000000000000000000000000000000000".into()),
            AuthenticationType::Pat,
            AuthenticationOutcome::NotFound,
        ),
        (
            Some(format!("Bearer {revoked}")),
            AuthenticationType::Spat,
            AuthenticationOutcome::Disabled,
        ),
        (
            Some(format!("Bearer {expired}")),
            AuthenticationType::Pat,
            AuthenticationOutcome::TokenExpired,
        ),
    ];
    for (header, kind, outcome) in cases {
        let mut req = app.client.get(app.url("/v3/portals"));
        if let Some(h) = &header {
            req = req.header("authorization", h);
        }
        let body = expect_problem(req.send().await.unwrap(), StatusCode::UNAUTHORIZED).await;
        assert_eq!(body["title"], "Unauthorized");
        assert_eq!(body["detail"], "Unauthorized");
        assert_eq!(
            body.as_object().unwrap().len(),
            4,
            "exactly status, title, instance, detail: {body}"
        );

        let trace = body["instance"]
            .as_str()
            .unwrap()
            .trim_start_matches("kong:trace:")
            .to_owned();
        let events = app
            .stored("us", None, Some(EventType::Authentication))
            .await;
        let event = events
            .iter()
            .find(|e| e.event.trace_id.as_deref() == Some(trace.as_str()))
            .unwrap_or_else(|| panic!("no authentication event for {header:?}"));
        assert_eq!(
            event.event.detail,
            EventDetail::Authentication {
                outcome,
                authentication_type: kind
            },
            "{header:?}"
        );
        assert_eq!(event.event.uri.as_deref(), Some("/v3/portals"));
    }
    app.stop().await;
}

/// What each route group answers per role: `true` = allowed (2xx), `false` = 403.
#[tokio::test]
async fn role_matrix() {
    let app = TestApp::spawn().await;
    let portal_a = app.create_portal("A", "us").await;
    let portal_b = app.create_portal("B", "eu").await;

    let roles = [
        ("org-admin", app.token(Role::OrgAdmin, None).await),
        (
            "audit-logs-admin",
            app.token(Role::AuditLogsAdmin, None).await,
        ),
        (
            "audit-logs-viewer",
            app.token(Role::AuditLogsViewer, None).await,
        ),
        (
            "portal-admin(A)",
            app.token(Role::PortalAdmin, Some(portal_a)).await,
        ),
        ("event-producer", app.token(Role::EventProducer, None).await),
        (
            "event-producer(A)",
            app.token(Role::EventProducer, Some(portal_a)).await,
        ),
    ];
    type Expect = [bool; 6];
    let groups: [(&str, Expect); 8] = [
        (
            "ingest org events",
            [true, false, false, false, true, false],
        ),
        (
            "ingest portal A events",
            [true, false, false, false, true, true],
        ),
        (
            "ingest portal B events",
            [true, false, false, false, true, false],
        ),
        ("list portals", [true, true, true, true, false, false]),
        ("get portal A", [true, true, true, true, false, false]),
        ("get portal B", [true, true, true, false, false, false]),
        ("create portal", [true, false, false, false, false, false]),
        ("delete portal", [true, false, false, false, false, false]),
    ];
    for (group, expected) in groups {
        for (i, (role, token)) in roles.iter().enumerate() {
            let resp = match group {
                "ingest org events" => {
                    app.ingest_ndjson("/v1/events", token, ndjson(&[authorization(now(), "m")]))
                        .await
                }
                "ingest portal A events" => {
                    app.ingest_ndjson(
                        "/v1/events",
                        token,
                        ndjson(&[portal_login(now(), portal_a, "m")]),
                    )
                    .await
                }
                "ingest portal B events" => {
                    app.ingest_ndjson(
                        "/v1/events",
                        token,
                        ndjson(&[portal_login(now(), portal_b, "m")]),
                    )
                    .await
                }
                "list portals" => app.get("/v3/portals", token).await,
                "get portal A" => app.get(&format!("/v3/portals/{portal_a}"), token).await,
                "get portal B" => app.get(&format!("/v3/portals/{portal_b}"), token).await,
                "create portal" => {
                    app.post("/v3/portals", token, json!({"name": format!("P-{i}")}))
                        .await
                }
                "delete portal" => {
                    // A portal of its own per attempt, so an allowed delete leaves the others.
                    let victim = app.create_portal(&format!("victim-{i}"), "us").await;
                    app.request(
                        Method::DELETE,
                        &format!("/v3/portals/{victim}"),
                        Some(token),
                        None,
                    )
                    .await
                }
                other => unreachable!("{other}"),
            };
            let status = resp.status();
            if expected[i] {
                assert!(
                    status.is_success(),
                    "{role} should be allowed to {group}, got {status}"
                );
            } else {
                let body = expect_problem(resp, StatusCode::FORBIDDEN).await;
                assert_eq!(body["title"], "Forbidden", "{role} {group}");
                if !group.starts_with("ingest") {
                    assert_eq!(
                        body["detail"],
                        "You do not have permission to perform this action"
                    );
                }
            }
        }
    }
    app.stop().await;
}

#[tokio::test]
async fn portal_admin_lists_only_its_portal() {
    let app = TestApp::spawn().await;
    let mine = app.create_portal("Mine", "us").await;
    app.create_portal("Other", "us").await;
    let token = app.token(Role::PortalAdmin, Some(mine)).await;
    let body =
        crate::support::expect_json(app.get("/v3/portals", &token).await, StatusCode::OK).await;
    let ids: Vec<&str> = body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids, [mine.to_string()]);
    app.stop().await;
}

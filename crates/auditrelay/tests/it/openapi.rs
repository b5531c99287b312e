//! `/openapi.json` covers every route, and every operation it documents is really routed.

use reqwest::{Method, StatusCode};

use crate::support::{TestApp, expect_json};

#[tokio::test]
async fn every_documented_operation_is_routed() {
    let app = TestApp::spawn().await;
    let doc = expect_json(
        app.request(Method::GET, "/openapi.json", None, None).await,
        StatusCode::OK,
    )
    .await;
    assert!(
        doc["openapi"].as_str().unwrap().starts_with("3."),
        "{}",
        doc["openapi"]
    );
    let paths = doc["paths"].as_object().unwrap();

    let mut operations = Vec::new();
    for (path, item) in paths {
        for (method, op) in item.as_object().unwrap() {
            let Ok(method) = method.to_uppercase().parse::<Method>() else {
                continue;
            };
            assert!(
                op["operationId"].is_string(),
                "{method} {path} has no operationId"
            );
            assert!(
                op["responses"].as_object().is_some_and(|r| !r.is_empty()),
                "{method} {path} has no responses"
            );
            operations.push((method, path.clone()));
        }
    }
    // The routes this server has today; a new route must be added here and, by construction
    // (utoipa-axum registers route and operation together), appears in the document.
    let mut expected = vec![
        (Method::GET, "/v2/audit-log-webhook/jwks.json"),
        (Method::GET, "/v3/audit-logs"),
        (Method::POST, "/v1/events"),
        (Method::GET, "/v2/audit-log-destinations"),
        (Method::POST, "/v2/audit-log-destinations"),
        (
            Method::GET,
            "/v2/audit-log-destinations/{auditLogDestinationId}",
        ),
        (
            Method::PATCH,
            "/v2/audit-log-destinations/{auditLogDestinationId}",
        ),
        (
            Method::DELETE,
            "/v2/audit-log-destinations/{auditLogDestinationId}",
        ),
        (Method::GET, "/v3/audit-log-destinations"),
        (Method::POST, "/v3/audit-log-destinations"),
        (
            Method::GET,
            "/v3/audit-log-destinations/{auditLogDestinationId}",
        ),
        (
            Method::PATCH,
            "/v3/audit-log-destinations/{auditLogDestinationId}",
        ),
        (
            Method::DELETE,
            "/v3/audit-log-destinations/{auditLogDestinationId}",
        ),
        (Method::GET, "/v2/audit-log-webhook"),
        (Method::PATCH, "/v2/audit-log-webhook"),
        (Method::GET, "/v2/audit-log-webhook/status"),
        (Method::GET, "/v3/audit-log-webhook"),
        (Method::PATCH, "/v3/audit-log-webhook"),
        (Method::DELETE, "/v3/audit-log-webhook"),
        (Method::GET, "/v3/audit-log-webhook/status"),
        (Method::POST, "/v3/audit-log-webhook/test-event"),
        (Method::GET, "/v3/audit-log-webhook/deliveries"),
        (Method::GET, "/v3/audit-log-replay-job/history"),
        (Method::POST, "/v3/audit-log-replay-job/cancel"),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-replay-job/history",
        ),
        (
            Method::POST,
            "/v3/portals/{portalId}/audit-log-replay-job/cancel",
        ),
        (Method::POST, "/v3/audit-log-destinations/test-connection"),
        (Method::POST, "/v3/audit-log-webhook/retry"),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-webhook/deliveries",
        ),
        (
            Method::POST,
            "/v3/portals/{portalId}/audit-log-webhook/retry",
        ),
        (Method::GET, "/v2/portals/{portalId}/audit-log-webhook"),
        (Method::PATCH, "/v2/portals/{portalId}/audit-log-webhook"),
        (Method::DELETE, "/v2/portals/{portalId}/audit-log-webhook"),
        (
            Method::GET,
            "/v2/portals/{portalId}/audit-log-webhook/status",
        ),
        (Method::GET, "/v3/portals/{portalId}/audit-log-webhook"),
        (Method::PATCH, "/v3/portals/{portalId}/audit-log-webhook"),
        (Method::DELETE, "/v3/portals/{portalId}/audit-log-webhook"),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-webhook/status",
        ),
        (
            Method::POST,
            "/v3/portals/{portalId}/audit-log-webhook/test-event",
        ),
        (Method::GET, "/v3/audit-log-webhook/refused-events"),
        (Method::POST, "/v3/audit-log-webhook/refused-events/resend"),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-webhook/refused-events",
        ),
        (
            Method::POST,
            "/v3/portals/{portalId}/audit-log-webhook/refused-events/resend",
        ),
        (Method::GET, "/v2/audit-log-replay-job"),
        (Method::PUT, "/v2/audit-log-replay-job"),
        (Method::GET, "/v3/audit-log-replay-job"),
        (Method::PUT, "/v3/audit-log-replay-job"),
        (Method::GET, "/v2/portals/{portalId}/audit-log-replay-job"),
        (Method::PUT, "/v2/portals/{portalId}/audit-log-replay-job"),
        (Method::GET, "/v3/portals/{portalId}/audit-log-replay-job"),
        (Method::PUT, "/v3/portals/{portalId}/audit-log-replay-job"),
        (Method::GET, "/v3/audit-log-integrity/checkpoint-key"),
        (Method::GET, "/v3/audit-log-integrity/checkpoint"),
        (Method::GET, "/v3/audit-log-integrity/proofs/inclusion"),
        (Method::GET, "/v3/audit-log-integrity/proofs/consistency"),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-integrity/checkpoint",
        ),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-integrity/proofs/inclusion",
        ),
        (
            Method::GET,
            "/v3/portals/{portalId}/audit-log-integrity/proofs/consistency",
        ),
        (Method::GET, "/v3/portals"),
        (Method::POST, "/v3/portals"),
        (Method::GET, "/v3/portals/{portalId}"),
        (Method::DELETE, "/v3/portals/{portalId}"),
        (Method::GET, "/healthz"),
        (Method::GET, "/readyz"),
        (Method::GET, "/metrics"),
        (Method::GET, "/openapi.json"),
    ];
    expected.sort_by(|a, b| (a.1, a.0.as_str()).cmp(&(b.1, b.0.as_str())));
    let mut actual: Vec<(Method, &str)> = operations
        .iter()
        .map(|(m, p)| (m.clone(), p.as_str()))
        .collect();
    actual.sort_by(|a, b| (a.1, a.0.as_str()).cmp(&(b.1, b.0.as_str())));
    assert_eq!(actual, expected);

    // Each documented operation reaches a handler: never the router's 404 or 405.
    for (method, path) in &operations {
        let concrete = path
            .replace("{portalId}", "3e551b39-227d-4297-b911-e68fd5d77c17")
            .replace(
                "{auditLogDestinationId}",
                "9cb77dc2-ff99-4d47-84ab-7c5c1b3ef939",
            );
        let resp = app.request(method.clone(), &concrete, None, None).await;
        let status = resp.status();
        let body = resp.text().await.unwrap();
        assert_ne!(status, StatusCode::METHOD_NOT_ALLOWED, "{method} {path}");
        let routed = status != StatusCode::NOT_FOUND || !body.contains("\"detail\":\"Not Found\"");
        assert!(
            routed,
            "{method} {path} is documented but not routed: {status} {body}"
        );
    }
    app.stop().await;
}

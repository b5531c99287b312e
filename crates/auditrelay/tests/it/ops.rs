//! Operations endpoints: health, readiness, and the metrics an operator alerts on.

use auditrelay_core::Role;
use reqwest::{Method, StatusCode};

use crate::support::events::{authorization, ndjson};
use crate::support::{TestApp, expect_json, now};

#[tokio::test]
async fn health_readiness_and_metrics() {
    let app = TestApp::spawn().await;
    assert_eq!(
        expect_json(
            app.request(Method::GET, "/healthz", None, None).await,
            StatusCode::OK
        )
        .await["status"],
        "ok"
    );
    assert_eq!(
        expect_json(
            app.request(Method::GET, "/readyz", None, None).await,
            StatusCode::OK
        )
        .await["status"],
        "ok"
    );

    let producer = app.token(Role::EventProducer, None).await;
    app.ingest_ndjson(
        "/v1/events",
        &producer,
        ndjson(&[authorization(now(), "m")]),
    )
    .await;
    app.ingest_ndjson("/v1/events", &producer, "{oops".into())
        .await;

    let resp = app.request(Method::GET, "/metrics", None, None).await;
    assert!(
        resp.headers()["content-type"]
            .to_str()
            .unwrap()
            .starts_with("text/plain")
    );
    let text = resp.text().await.unwrap();
    for needle in [
        r#"auditrelay_http_requests_total{method="POST",route="/v1/events",status="202"}"#,
        r#"auditrelay_http_requests_total{method="POST",route="/v1/events",status="400"}"#,
        "auditrelay_events_ingested_total",
        r#"auditrelay_events_rejected_total{reason="invalid"}"#,
        "auditrelay_store_commit_seconds_bucket",
        r#"auditrelay_authentications_total{outcome="success"}"#,
    ] {
        assert!(text.contains(needle), "/metrics lacks {needle}");
    }
    assert!(!text.contains(&producer), "metrics never carry tokens");
    app.stop().await;
}

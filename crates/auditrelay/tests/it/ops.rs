//! Operations endpoints: health, readiness, and the metrics an operator alerts on.

use auditrelay_core::Role;
use reqwest::{Method, StatusCode};

use crate::support::events::{authorization, ndjson};
use crate::support::{METRICS_TOKEN, TestApp, expect_json, expect_problem, now};

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

    let resp = app
        .client
        .get(app.url("/metrics"))
        .bearer_auth(METRICS_TOKEN)
        .send()
        .await
        .unwrap();
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

#[tokio::test]
async fn metrics_need_the_scrape_token_or_a_listener_of_their_own() {
    let app = TestApp::spawn().await;
    // No token, the wrong one, or an API token: 401, and nothing is audited for it.
    let before = app.stored("us", None, None).await.len();
    for token in [None, Some("nope"), Some(app.admin.as_str())] {
        let resp = app.request(Method::GET, "/metrics", token, None).await;
        expect_problem(resp, StatusCode::UNAUTHORIZED).await;
    }
    assert!(
        app.metrics()
            .await
            .contains("auditrelay_http_requests_total")
    );
    assert_eq!(
        app.stored("us", None, None).await.len(),
        before,
        "scrapes are not audited"
    );
    app.stop().await;

    // Without a token configured, the main listener does not serve them at all...
    let metrics_port = crate::support::process::free_port();
    let app = TestApp::spawn_with(|c| {
        c.metrics.token = None;
        c.metrics.listen = Some(format!("127.0.0.1:{metrics_port}").parse().unwrap());
    })
    .await;
    let problem = expect_problem(
        app.request(Method::GET, "/metrics", None, None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(
        problem["detail"]
            .as_str()
            .unwrap()
            .contains("metrics.token"),
        "{problem}"
    );
    // ... and the listener of their own serves them, and nothing else, without a token.
    let own = format!("http://127.0.0.1:{metrics_port}");
    let text = app
        .client
        .get(format!("{own}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(text.status(), StatusCode::OK);
    assert!(text.text().await.unwrap().contains("auditrelay_"));
    let other = app
        .client
        .get(format!("{own}/v3/portals"))
        .send()
        .await
        .unwrap();
    assert_eq!(other.status(), StatusCode::NOT_FOUND);
    app.stop().await;

    // --dev serves them to anyone.
    let app = TestApp::spawn_with(|c| {
        c.metrics.token = None;
        c.dev = true;
    })
    .await;
    let resp = app.request(Method::GET, "/metrics", None, None).await;
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

//! Region selection: path prefix, Host header, default; unknown prefixes are 404.

use auditrelay_core::Role;
use reqwest::StatusCode;

use crate::support::events::{authorization, ndjson};
use crate::support::{TestApp, expect_json, expect_problem, now};

#[tokio::test]
async fn events_land_in_the_region_the_request_names() {
    let app = TestApp::spawn_with(|c| {
        c.regions.list = ["us", "eu", "au"]
            .map(|r| auditrelay_core::Region::parse(r).unwrap())
            .to_vec()
    })
    .await;
    let producer = app.token(Role::EventProducer, None).await;

    let cases = [
        ("/v1/events", None, "us", "default"),
        ("/eu/v1/events", None, "eu", "prefix"),
        ("/v1/events", Some("au.audit.example.com"), "au", "host"),
    ];
    for (path, host, region, trace) in cases {
        let mut req = app
            .client
            .post(app.url(path))
            .bearer_auth(&producer)
            .header("content-type", "application/x-ndjson")
            .body(ndjson(&[authorization(now(), trace)]));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        expect_json(req.send().await.unwrap(), StatusCode::ACCEPTED).await;
        let stored = app.stored(region, None, None).await;
        assert!(
            stored
                .iter()
                .any(|e| e.event.trace_id.as_deref() == Some(trace)),
            "{trace} not in {region}"
        );
    }
    // Each went to exactly one region.
    for (region, trace) in [("us", "prefix"), ("eu", "host"), ("au", "default")] {
        let stored = app.stored(region, None, None).await;
        assert!(
            !stored
                .iter()
                .any(|e| e.event.trace_id.as_deref() == Some(trace)),
            "{trace} leaked into {region}"
        );
    }

    let body = expect_problem(
        app.get("/sg/v3/portals", &app.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("sg"), "{body}");
    // Non-API paths are never region prefixes.
    expect_json(app.get("/healthz", &app.admin).await, StatusCode::OK).await;
    app.stop().await;
}

/// A Konnect region this server does not serve is a 404 naming the served ones, by `Host` as by
/// prefix: an update sent to `au.…` must not change the `us` webhook.
#[tokio::test]
async fn an_unserved_konnect_region_is_404_by_host_and_by_prefix() {
    let app = TestApp::spawn().await;
    for (path, host) in [
        ("/v3/audit-log-webhook", Some("au.api.konghq.com")),
        ("/v2/audit-log-webhook", Some("me.api.konghq.com:443")),
        ("/au/v3/audit-log-webhook", None),
    ] {
        let mut req = app
            .client
            .patch(app.url(path))
            .bearer_auth(&app.admin)
            .json(&serde_json::json!({"enabled": false}));
        if let Some(host) = host {
            req = req.header("host", host);
        }
        let problem = expect_problem(req.send().await.unwrap(), StatusCode::NOT_FOUND).await;
        assert!(
            problem["detail"]
                .as_str()
                .unwrap()
                .contains("this server serves [us, eu]"),
            "{path} {host:?}: {problem}"
        );
    }
    // Hosts that name no region still reach the default one.
    let resp = app
        .client
        .get(app.url("/v2/audit-log-webhook"))
        .header("host", "audit.example.com")
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

/// Behind a proxy that rewrites `Host`, its `X-Forwarded-Host` names the region — believed only
/// from a configured trusted proxy.
#[tokio::test]
async fn x_forwarded_host_counts_from_a_trusted_proxy_only() {
    let send = async |app: &TestApp, producer: &str, trace: &str| {
        let resp = app
            .client
            .post(app.url("/v1/events"))
            .bearer_auth(producer)
            .header("content-type", "application/x-ndjson")
            .header("host", "backend.internal:8080")
            .header(
                "x-forwarded-host",
                "eu.audit.example.com, other.example.com",
            )
            .body(ndjson(&[authorization(now(), trace)]))
            .send()
            .await
            .unwrap();
        expect_json(resp, StatusCode::ACCEPTED).await;
    };
    let trusted = TestApp::spawn_with(|c| {
        c.server.trusted_proxies = vec![auditrelay::config::Network::parse("127.0.0.0/8").unwrap()];
    })
    .await;
    let producer = trusted.token(Role::EventProducer, None).await;
    send(&trusted, &producer, "via-trusted").await;
    let in_eu = trusted.stored("eu", None, None).await;
    assert!(
        in_eu
            .iter()
            .any(|e| e.event.trace_id.as_deref() == Some("via-trusted"))
    );
    trusted.stop().await;

    let untrusted = TestApp::spawn().await;
    let producer = untrusted.token(Role::EventProducer, None).await;
    send(&untrusted, &producer, "via-untrusted").await;
    let in_us = untrusted.stored("us", None, None).await;
    assert!(
        in_us
            .iter()
            .any(|e| e.event.trace_id.as_deref() == Some("via-untrusted"))
    );
    untrusted.stop().await;
}

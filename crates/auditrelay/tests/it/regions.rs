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

//! `GET /v3/audit-logs`: filters, cursor pages in both directions, signatures that verify
//! against the JWKS, Konnect's response shape, parameter errors, RBAC and regions.

use auditrelay_core::format::pull::verify_pull_entry;
use auditrelay_core::{Role, Timestamp};
use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::events::{access, authentication, authorization, ndjson};
use crate::support::signing::{assert_pull_page_shape, jwks};
use crate::support::{TestApp, expect_json, expect_problem, invalid_fields, now};

async fn ingest(app: &TestApp, path: &str, events: &[Value]) {
    let producer = app.token(Role::EventProducer, None).await;
    let resp = app.ingest_ndjson(path, &producer, ndjson(events)).await;
    let status = resp.status();
    assert_eq!(
        status,
        StatusCode::ACCEPTED,
        "{}",
        resp.text().await.unwrap()
    );
}

fn window(from: Timestamp, to: Timestamp) -> String {
    format!(
        "filter[ts][gte]={}&filter[ts][lte]={}",
        from.to_rfc3339_millis(),
        to.to_rfc3339_millis()
    )
}

/// GETs a page, checks its shape and every entry's signature, and returns it.
async fn pull(app: &TestApp, path_and_query: &str, token: &str) -> Value {
    let body = expect_json(app.get(path_and_query, token).await, StatusCode::OK).await;
    assert_pull_page_shape(&body);
    let (_, keys) = jwks(app).await;
    for entry in body["data"].as_array().unwrap() {
        let bytes = serde_json::to_vec(entry).unwrap();
        verify_pull_entry(&bytes, &keys).unwrap_or_else(|e| panic!("{e}: {entry}"));
    }
    body
}

fn traces(body: &Value) -> Vec<String> {
    body["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["trace_id"].as_str().unwrap_or_default().to_owned())
        .collect()
}

#[tokio::test]
async fn filters_by_type_and_inclusive_time_and_signs_every_entry() {
    let app = TestApp::spawn().await;
    let base = now().saturating_sub_millis(3_600_000);
    let at = |i: i64| base.saturating_add_millis(i * 1000);
    let events = [
        authorization(at(0), "p-0"),
        access(at(1), "p-1"),
        authentication(at(2), "p-2"),
        authorization(at(3), "p-3"),
        access(at(4), "p-4"),
        authorization(at(5), "p-5"),
    ];
    ingest(&app, "/v1/events", &events).await;

    let all = pull(
        &app,
        &format!("/v3/audit-logs?{}", window(at(0), at(5))),
        &app.admin,
    )
    .await;
    assert_eq!(traces(&all), ["p-0", "p-1", "p-2", "p-3", "p-4", "p-5"]);
    assert_eq!(
        all["meta"]["page"],
        json!({"next": null, "previous": null, "size": 20})
    );
    // What was sent comes back, plus the org and the signature.
    let first = all["data"][0].as_object().unwrap();
    for (field, value) in events[0].as_object().unwrap() {
        assert_eq!(&first[field], value, "{field}");
    }
    assert_eq!(first["org_id"], app.org().to_string());
    assert_eq!(first["signature"].as_str().unwrap().len(), 86);

    let only = pull(
        &app,
        &format!(
            "/v3/audit-logs?{}&filter[type]=authorization",
            window(at(0), at(5))
        ),
        &app.admin,
    )
    .await;
    assert_eq!(traces(&only), ["p-0", "p-3", "p-5"]);
    let only = pull(
        &app,
        &format!(
            "/v3/audit-logs?{}&filter[type]=gateway_access",
            window(at(0), at(5))
        ),
        &app.admin,
    )
    .await;
    assert_eq!(traces(&only), ["p-1", "p-4"]);

    let inner = pull(
        &app,
        &format!("/v3/audit-logs?{}", window(at(1), at(3))),
        &app.admin,
    )
    .await;
    assert_eq!(
        traces(&inner),
        ["p-1", "p-2", "p-3"],
        "both bounds are inclusive"
    );

    // Only an upper bound: the lower one is the retention window before it.
    let upto = pull(
        &app,
        &format!(
            "/v3/audit-logs?filter[ts][lte]={}",
            at(2).to_rfc3339_millis()
        ),
        &app.admin,
    )
    .await;
    assert_eq!(traces(&upto), ["p-0", "p-1", "p-2"]);

    // No filters: the retention window up to now, this test's own API calls included (whose
    // self-audit entries must have the required fields too), oldest first.
    let everything = pull(&app, "/v3/audit-logs?page[size]=1000", &app.admin).await;
    let found = traces(&everything);
    assert!(found.starts_with(&traces(&all)), "{found:?}");
    assert!(
        found.len() > 6,
        "self-audit entries are listed too: {found:?}"
    );
    let times: Vec<Timestamp> = everything["data"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| Timestamp::parse_rfc3339(e["ts"].as_str().unwrap()).unwrap())
        .collect();
    assert!(times.windows(2).all(|w| w[0] <= w[1]), "{times:?}");
    app.stop().await;
}

#[tokio::test]
async fn pages_visit_every_event_once_forward_and_backward() {
    let app = TestApp::spawn().await;
    let base = now().saturating_sub_millis(600_000);
    let at = |i: i64| base.saturating_add_millis(i * 1000);
    // Two events share a timestamp: the cursor must tell them apart.
    let events: Vec<Value> = (0..7)
        .map(|i| authorization(at(if i == 4 { 3 } else { i }), &format!("e-{i}")))
        .collect();
    ingest(&app, "/v1/events", &events).await;
    let expected: Vec<String> = (0..7).map(|i| format!("e-{i}")).collect();

    let mut path = format!("/v3/audit-logs?{}&page[size]=2", window(at(0), at(6)));
    let mut seen = Vec::new();
    let mut pages = Vec::new();
    loop {
        let page = pull(&app, &path, &app.admin).await;
        let meta = &page["meta"]["page"];
        assert_eq!(meta["size"], 2);
        assert_eq!(meta["previous"].is_null(), pages.is_empty(), "{meta}");
        let entries = traces(&page);
        assert!(!entries.is_empty() && entries.len() <= 2, "{page}");
        seen.extend(entries);
        pages.push(page.clone());
        match meta["next"].as_str() {
            Some(next) => {
                assert!(next.starts_with("/v3/audit-logs?"), "{next}");
                path = next.to_owned();
            }
            None => break,
        }
        assert!(pages.len() < 10, "the walk does not end");
    }
    assert_eq!(seen, expected);
    assert_eq!(pages.len(), 4);

    // Back from the last page through `previous`, page by page.
    let mut page = pages.last().unwrap().clone();
    let mut index = pages.len() - 1;
    while let Some(previous) = page["meta"]["page"]["previous"].as_str() {
        page = pull(&app, previous, &app.admin).await;
        index -= 1;
        assert_eq!(traces(&page), traces(&pages[index]), "page {index}");
        assert!(page["meta"]["page"]["next"].is_string());
    }
    assert_eq!(index, 0, "previous leads back to the first page");

    // Without a window the links pin the one the first page resolved, so the walk ends even
    // though every request adds self-audit events at "now".
    let mut path = "/v3/audit-logs?page[size]=2".to_owned();
    let mut walked = Vec::new();
    for _ in 0..100 {
        let page = pull(&app, &path, &app.admin).await;
        walked.extend(traces(&page));
        match page["meta"]["page"]["next"].as_str() {
            Some(next) => path = next.to_owned(),
            None => break,
        }
    }
    assert!(walked.starts_with(&expected), "{walked:?}");
    assert!(walked.len() < 100, "the walk ends: {}", walked.len());
    app.stop().await;
}

#[tokio::test]
async fn bad_parameters_are_400_naming_the_parameter() {
    let app = TestApp::spawn().await;
    let t = now();
    let later = t.saturating_add_millis(1000).to_rfc3339_millis();
    let cases = [
        ("filter[ts][gte]=yesterday".to_owned(), "filter[ts][gte]"),
        (
            "filter[ts][lte]=2026-13-01T00:00:00Z".to_owned(),
            "filter[ts][lte]",
        ),
        ("filter[type]=login".to_owned(), "filter[type]"),
        ("page[size]=0".to_owned(), "page[size]"),
        ("page[size]=1001".to_owned(), "page[size]"),
        ("page[size]=ten".to_owned(), "page[size]"),
        ("filter[actor_id]=x".to_owned(), "filter[actor_id]"),
        (
            "filter[ts][gt]=2026-01-01T00:00:00Z".to_owned(),
            "filter[ts][gt]",
        ),
        ("page[after]=not-a-cursor".to_owned(), "page[after]"),
        (
            format!(
                "filter[ts][gte]={later}&filter[ts][lte]={}",
                t.to_rfc3339_millis()
            ),
            "filter[ts][gte]",
        ),
    ];
    for (query, field) in cases {
        let problem = expect_problem(
            app.get(&format!("/v3/audit-logs?{query}"), &app.admin)
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        let fields = invalid_fields(&problem);
        assert!(fields.iter().any(|(f, _)| f == field), "{query}: {problem}");
        assert_eq!(
            problem["invalid_parameters"][0]["source"], "query",
            "{problem}"
        );
    }
    // The same fault twice is listed once (the schema says `uniqueItems`).
    let problem = expect_problem(
        app.get(
            "/v3/audit-logs?filter[ts]=2026-01-01&filter[ts]=2026-01-01&page[size]=5&page[size]=5&page[size]=5",
            &app.admin,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    let entries = problem["invalid_parameters"].as_array().unwrap();
    for (i, entry) in entries.iter().enumerate() {
        assert!(!entries[..i].contains(entry), "{problem}");
    }
    app.stop().await;
}

#[tokio::test]
async fn viewers_read_producers_do_not() {
    let app = TestApp::spawn().await;
    for (role, status) in [
        (Role::AuditLogsViewer, StatusCode::OK),
        (Role::AuditLogsAdmin, StatusCode::OK),
        (Role::EventProducer, StatusCode::FORBIDDEN),
    ] {
        let token = app.token(role, None).await;
        let resp = app.get("/v3/audit-logs", &token).await;
        assert_eq!(resp.status(), status, "{role}");
        if status == StatusCode::FORBIDDEN {
            expect_problem(resp, status).await;
        }
    }
    let resp = app
        .request(reqwest::Method::GET, "/v3/audit-logs", None, None)
        .await;
    expect_problem(resp, StatusCode::UNAUTHORIZED).await;
    app.stop().await;
}

#[tokio::test]
async fn each_region_pulls_its_own_events() {
    let app = TestApp::spawn().await;
    let base = now().saturating_sub_millis(60_000);
    let at = |i: i64| base.saturating_add_millis(i * 1000);
    ingest(
        &app,
        "/eu/v1/events",
        &[authorization(at(0), "eu-0"), authorization(at(1), "eu-1")],
    )
    .await;
    ingest(&app, "/v1/events", &[authorization(at(2), "us-2")]).await;
    let query = format!("{}&filter[type]=authorization", window(at(0), at(2)));

    let eu = pull(&app, &format!("/eu/v3/audit-logs?{query}"), &app.admin).await;
    assert_eq!(traces(&eu), ["eu-0", "eu-1"]);
    let us = pull(&app, &format!("/v3/audit-logs?{query}"), &app.admin).await;
    assert_eq!(traces(&us), ["us-2"]);
    let us = pull(&app, &format!("/us/v3/audit-logs?{query}"), &app.admin).await;
    assert_eq!(traces(&us), ["us-2"]);

    // A page link stays in its region.
    let first = pull(
        &app,
        &format!("/eu/v3/audit-logs?{query}&page[size]=1"),
        &app.admin,
    )
    .await;
    let next = first["meta"]["page"]["next"].as_str().unwrap();
    assert!(next.starts_with("/eu/v3/audit-logs?"), "{next}");
    assert_eq!(traces(&pull(&app, next, &app.admin).await), ["eu-1"]);

    let problem = expect_problem(
        app.get("/global/v3/audit-logs", &app.admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(invalid_fields(&problem)[0].0, "region");
    app.stop().await;
}

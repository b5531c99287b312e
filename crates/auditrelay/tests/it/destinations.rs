//! `/v2|v3/audit-log-destinations`: CRUD on both versions and every region prefix, Konnect's
//! exact 400 bodies, endpoint rules, name rules, RBAC, and a secret that is never seen again.

use std::time::Duration;

use auditrelay_core::Role;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::conformance::{Doc, check};
use crate::support::{TestApp, expect_json, expect_problem, invalid_fields};

const COLLECTION: &str = "/audit-log-destinations";
const ITEM: &str = "/audit-log-destinations/{auditLogDestinationId}";
const SECRET: &str = "Splunk 5e1f0000-dead-beef-8000-0123456789ab";

/// The seeds' Sumo Logic example.
fn sumo() -> Value {
    json!({
        "name": "Sumo Logic",
        // A public address literal: validation needs no DNS, and no test traffic leaves the
        // machine.
        "endpoint": "https://52.1.2.3/receiver/v1/http/abc",
        "authorization": SECRET,
        "log_format": "cef",
        "skip_ssl_verification": false,
    })
}

#[tokio::test]
async fn crud_on_both_versions_and_every_region_never_shows_the_secret() {
    let app = TestApp::spawn().await;
    let created = expect_json(
        app.post("/global/v3/audit-log-destinations", &app.admin, sumo())
            .await,
        StatusCode::CREATED,
    )
    .await;
    check(Doc::V3, "POST", COLLECTION, 201, &created);
    let id = created["id"].as_str().unwrap().to_owned();
    assert_eq!(created["name"], "Sumo Logic");
    assert_eq!(created["log_format"], "cef");
    assert_eq!(created["skip_ssl_verification"], false);
    assert!(
        created.get("authorization").is_none(),
        "write-only: {created}"
    );

    // Global: the same object under every version and region prefix.
    for prefix in ["", "/us", "/eu", "/global"] {
        for version in ["v2", "v3"] {
            let got = expect_json(
                app.get(
                    &format!("{prefix}/{version}/audit-log-destinations/{id}"),
                    &app.admin,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            let doc = if version == "v2" { Doc::V2 } else { Doc::V3 };
            check(doc, "GET", ITEM, 200, &got);
            assert_eq!(got, created, "{prefix}/{version}");
        }
    }

    // Partial update keeps the rest; the authorization can be changed but is never returned.
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v2/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"log_format": "json", "authorization": "Bearer other"})),
        )
        .await;
    let updated = expect_json(resp, StatusCode::OK).await;
    check(Doc::V2, "PATCH", ITEM, 200, &updated);
    assert_eq!(updated["log_format"], "json");
    assert_eq!(updated["name"], "Sumo Logic");
    assert_eq!(updated["created_at"], created["created_at"]);
    assert!(updated.get("authorization").is_none());

    let list = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    check(Doc::V3, "GET", COLLECTION, 200, &list);
    assert_eq!(list["data"].as_array().unwrap().len(), 1);
    assert_eq!(
        list["meta"],
        json!({"next": null, "previous": null, "size": 100})
    );

    // The secret appears in no response, no metric, and not in clear in the database files.
    for path in [
        "/v3/audit-log-destinations",
        &format!("/v3/audit-log-destinations/{id}"),
    ] {
        let text = app.get(path, &app.admin).await.text().await.unwrap();
        assert!(
            !text.contains("Splunk") && !text.contains("Bearer other"),
            "{text}"
        );
    }
    let metrics = app.metrics().await;
    assert!(!metrics.contains("Splunk"));
    for file in ["auditrelay.db", "auditrelay.db-wal"] {
        let bytes = std::fs::read(app.data_dir().join(file)).unwrap_or_default();
        for secret in [SECRET, "Bearer other"] {
            assert!(
                !bytes.windows(secret.len()).any(|w| w == secret.as_bytes()),
                "{secret} in clear in {file}"
            );
        }
    }

    assert_eq!(
        app.delete(&format!("/v2/audit-log-destinations/{id}"), &app.admin)
            .await
            .status(),
        StatusCode::NO_CONTENT
    );
    expect_problem(
        app.get(&format!("/v3/audit-log-destinations/{id}"), &app.admin)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        app.delete(&format!("/v3/audit-log-destinations/{id}"), &app.admin)
            .await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

/// Konnect's documented 400 bodies, word for word (DECISIONS.md K2.3).
#[tokio::test]
async fn documented_bad_requests() {
    let app = TestApp::spawn().await;
    let with = |key: &str, value: Value| {
        let mut body = sumo();
        body[key] = value;
        body
    };
    let without = |key: &str| {
        let mut body = sumo();
        body.as_object_mut().unwrap().remove(key);
        body
    };
    let cases = [
        (
            with("authorization", json!("")),
            "Required field missing",
            "authorization",
            "cannot be blank",
        ),
        (
            without("authorization"),
            "Required field missing",
            "authorization",
            "cannot be blank",
        ),
        (
            with("endpoint", json!("")),
            "Required field missing",
            "endpoint",
            "cannot be blank",
        ),
        (
            with("endpoint", json!("not a url")),
            "Invalid endpoint",
            "endpoint",
            "must be a valid URL",
        ),
        (
            with("endpoint", json!("ftp://example.com/x")),
            "Invalid endpoint",
            "endpoint",
            "must be a valid URL",
        ),
        (
            with("endpoint", json!("http://example.com/x")),
            "Invalid endpoint",
            "endpoint",
            "must use https (http needs delivery.allow_http_endpoints, which serve --dev sets)",
        ),
        (
            with("endpoint", json!("https://127.0.0.1/x")),
            "Invalid endpoint",
            "endpoint",
            "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)",
        ),
        (
            with("endpoint", json!("https://10.1.2.3/x")),
            "Invalid endpoint",
            "endpoint",
            "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)",
        ),
        (
            with("endpoint", json!("https://[::1]:8443/x")),
            "Invalid endpoint",
            "endpoint",
            "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)",
        ),
        (
            with("endpoint", json!("https://localhost/x")),
            "Invalid endpoint",
            "endpoint",
            "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)",
        ),
    ];
    // IPv6 forms that embed a loopback or private IPv4 address, and reserved IPv4: the
    // classifier's own test lists every range; these check that the API uses it.
    let disguised = [
        "https://[::127.0.0.1]/",
        "https://[::ffff:0:127.0.0.1]/",
        "https://[2002:7f00:1::1]/",
        "https://[64:ff9b::7f00:1]/",
        "https://[2001:0:4136:e378:8000:63bf:3fff:fdd2]/",
        "https://240.0.0.1/",
        "https://[fec0::1]/",
    ];
    let cases = cases.into_iter().chain(disguised.map(|endpoint| {
        (
            with("endpoint", json!(endpoint)),
            "Invalid endpoint",
            "endpoint",
            "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)",
        )
    }));
    for (body, detail, field, reason) in cases {
        let problem = expect_problem(
            app.post("/v3/audit-log-destinations", &app.admin, body.clone())
                .await,
            StatusCode::BAD_REQUEST,
        )
        .await;
        check(Doc::V3, "POST", COLLECTION, 400, &problem);
        assert_eq!(problem["detail"], detail, "{body}");
        assert_eq!(problem["invalid_parameters"][0]["field"], field, "{body}");
        assert_eq!(problem["invalid_parameters"][0]["reason"], reason, "{body}");
    }
    // Exactly Konnect's shape for a blank authorization: no rule.
    let problem = expect_problem(
        app.post(
            "/v3/audit-log-destinations",
            &app.admin,
            with("authorization", json!("")),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        problem["invalid_parameters"],
        json!([{"field": "authorization", "reason": "cannot be blank", "source": "body"}])
    );

    // Names: too long, duplicated.
    let problem = expect_problem(
        app.post(
            "/v3/audit-log-destinations",
            &app.admin,
            with("name", json!("n".repeat(256))),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&problem),
        [("name".to_owned(), "max_length".to_owned())]
    );
    assert_eq!(problem["invalid_parameters"][0]["maximum"], 255);
    check(Doc::V3, "POST", COLLECTION, 400, &problem);
    // A control character (here a NUL, which PostgreSQL cannot store): the client's mistake.
    let problem = expect_problem(
        app.post(
            "/v3/audit-log-destinations",
            &app.admin,
            with("name", json!("siem\u{0}prod")),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&problem),
        [("name".to_owned(), "invalid".to_owned())]
    );
    expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, sumo())
            .await,
        StatusCode::CREATED,
    )
    .await;
    let problem = expect_problem(
        app.post("/v2/audit-log-destinations", &app.admin, sumo())
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(problem["detail"].as_str().unwrap().contains("Sumo Logic"));

    // Unknown fields, a bad format, a bad id, and an unparsable body.
    let list = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    let id = list["data"][0]["id"].as_str().unwrap().to_owned();
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"enabled": true})),
        )
        .await;
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&problem),
        [("enabled".to_owned(), "unknown_property".to_owned())]
    );
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"log_format": "xml"})),
        )
        .await;
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&problem),
        [("log_format".to_owned(), "enum".to_owned())]
    );
    check(Doc::V3, "PATCH", ITEM, 400, &problem);
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{id}"),
            Some(&app.admin),
            Some(json!({"endpoint": ""})),
        )
        .await;
    assert_eq!(
        expect_problem(resp, StatusCode::BAD_REQUEST).await["detail"],
        "Required field missing"
    );
    // A malformed id names no destination: 404, the only answer the documents define.
    let problem = expect_problem(
        app.get("/v3/audit-log-destinations/nope", &app.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    check(Doc::V3, "GET", ITEM, 404, &problem);
    let resp = app
        .client
        .post(app.url("/v3/audit-log-destinations"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{")
        .send()
        .await
        .unwrap();
    let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(problem["detail"], "Could not parse request body");

    // Nothing bad changed anything: still the one destination, unchanged.
    let after = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(after, list);
    app.stop().await;
}

#[tokio::test]
async fn dev_mode_allows_http_and_private_endpoints() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
    })
    .await;
    let mut body = sumo();
    body["endpoint"] = json!("http://127.0.0.1:9999/logs");
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["endpoint"], "http://127.0.0.1:9999/logs");
    app.stop().await;
}

#[tokio::test]
async fn filters_and_pages() {
    let app = TestApp::spawn().await;
    for name in ["alpha", "beta", "alphabet", "gamma", "delta"] {
        let mut body = sumo();
        body["name"] = json!(name);
        expect_json(
            app.post("/v3/audit-log-destinations", &app.admin, body)
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    let names = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect()
    };
    for (query, expected) in [
        ("filter[name]=alpha", vec!["alpha"]),
        ("filter%5Bname%5D%5Beq%5D=beta", vec!["beta"]),
        ("filter[name][contains]=alpha", vec!["alpha", "alphabet"]),
        ("filter[name][contains]=zzz", vec![]),
    ] {
        let body = expect_json(
            app.get(&format!("/v3/audit-log-destinations?{query}"), &app.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        assert_eq!(names(&body), expected, "{query}");
    }
    expect_problem(
        app.get("/v3/audit-log-destinations?filter[endpoint]=x", &app.admin)
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    expect_problem(
        app.get(
            "/v3/audit-log-destinations?filter[name]=a&filter[name][contains]=b",
            &app.admin,
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let first = expect_json(
        app.get("/v3/audit-log-destinations?page[size]=2", &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&first), ["alpha", "beta"]);
    let next = first["meta"]["next"].as_str().unwrap();
    let second = expect_json(app.get(next, &app.admin).await, StatusCode::OK).await;
    assert_eq!(names(&second), ["alphabet", "gamma"]);
    let back = expect_json(
        app.get(second["meta"]["previous"].as_str().unwrap(), &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(names(&back), ["alpha", "beta"]);
    app.stop().await;
}

#[tokio::test]
async fn roles() {
    let app = TestApp::spawn().await;
    let portal = app.create_portal("P", "us").await;
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, sumo())
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap();
    // The org's destination; a portal admin neither sees it nor makes one of the org's (its
    // own portal's it may: see `destination_ownership_matrix`).
    let cases = [
        (app.token(Role::AuditLogsAdmin, None).await, true, true),
        (app.token(Role::AuditLogsViewer, None).await, true, false),
        (
            app.token(Role::PortalAdmin, Some(portal)).await,
            false,
            true,
        ),
        (app.token(Role::EventProducer, None).await, false, false),
    ];
    for (i, (token, read, write)) in cases.iter().enumerate() {
        let status = app
            .get(&format!("/v3/audit-log-destinations/{id}"), token)
            .await
            .status();
        assert_eq!(status.is_success(), *read, "role {i} read: {status}");
        let mut body = sumo();
        body["name"] = json!(format!("d{i}"));
        let status = app
            .post("/v3/audit-log-destinations", token, body)
            .await
            .status();
        assert_eq!(
            status == StatusCode::CREATED,
            *write,
            "role {i} write: {status}"
        );
        if !write {
            assert_eq!(status, StatusCode::FORBIDDEN);
        }
    }
    app.stop().await;
}

/// Who may see, change, bind and replay through which destination: the organization's are
/// the organization roles' (a viewer may look), a portal's are also its admin's, and a portal
/// admin never reaches another portal's or the organization's — not by listing, by id, by
/// binding its webhook, nor by replaying through a webhook an org admin bound.
#[tokio::test]
async fn destination_ownership_matrix() {
    let app = TestApp::spawn_with(|c| {
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
    })
    .await;
    let receiver = crate::support::receiver::TestReceiver::http().await;
    let (a, b) = (
        app.create_portal("A", "us").await,
        app.create_portal("B", "us").await,
    );
    let admin_a = app.token(Role::PortalAdmin, Some(a)).await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let logs_admin = app.token(Role::AuditLogsAdmin, None).await;
    let dest = |name: &str, portal: Option<String>| {
        let mut body =
            json!({"name": name, "endpoint": receiver.url(), "authorization": "Bearer t"});
        if let Some(portal) = portal {
            body["portal_id"] = json!(portal);
        }
        body
    };
    let create =
        async |token: &str, body: Value| app.post("/v3/audit-log-destinations", token, body).await;
    let org_dest = expect_json(
        create(&app.admin, dest("org", None)).await,
        StatusCode::CREATED,
    )
    .await;
    assert!(
        org_dest.get("portal_id").is_none(),
        "an org destination shows as Konnect's"
    );
    // A portal admin's destination is its portal's without saying so.
    let a_dest = expect_json(create(&admin_a, dest("a", None)).await, StatusCode::CREATED).await;
    assert_eq!(a_dest["portal_id"], a.to_string());
    let b_dest = expect_json(
        create(&logs_admin, dest("b", Some(b.to_string()))).await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(b_dest["portal_id"], b.to_string());
    for (token, body) in [
        (&admin_a, dest("a2", Some(b.to_string()))),
        (
            &admin_a,
            dest(
                "a3",
                // No portal has this id.
                Some(uuid::Uuid::nil().to_string()),
            ),
        ),
        (&viewer, dest("v", None)),
    ] {
        let status = create(token, body).await.status();
        assert!(
            matches!(status, StatusCode::FORBIDDEN | StatusCode::BAD_REQUEST),
            "{status}"
        );
    }
    let id = |d: &Value| d["id"].as_str().unwrap().to_owned();
    let (org_id, a_id, b_id) = (id(&org_dest), id(&a_dest), id(&b_dest));

    // Lists: each sees what it may, on v2 and v3.
    let names = async |token: &str, version: &str| {
        let list = expect_json(
            app.get(
                &format!("/{version}/audit-log-destinations?page[size]=100"),
                token,
            )
            .await,
            StatusCode::OK,
        )
        .await;
        let mut names: Vec<String> = list["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|d| d["name"].as_str().unwrap().to_owned())
            .collect();
        names.sort();
        names
    };
    for version in ["v2", "v3"] {
        assert_eq!(names(&admin_a, version).await, ["a"]);
        assert_eq!(names(&viewer, version).await, ["a", "b", "org"]);
        assert_eq!(names(&app.admin, version).await, ["a", "b", "org"]);
    }
    // By id: another owner's is not there for a portal admin.
    for (token, id, status) in [
        (&admin_a, &org_id, StatusCode::NOT_FOUND),
        (&admin_a, &b_id, StatusCode::NOT_FOUND),
        (&admin_a, &a_id, StatusCode::OK),
        (&viewer, &b_id, StatusCode::OK),
    ] {
        let resp = app
            .get(&format!("/v3/audit-log-destinations/{id}"), token)
            .await;
        assert_eq!(resp.status(), status, "GET {id}");
        let resp = app
            .request(
                Method::PATCH,
                &format!("/v3/audit-log-destinations/{id}"),
                Some(token),
                Some(json!({"log_format": "json"})),
            )
            .await;
        let expected = match (token == &viewer, status) {
            (true, _) => StatusCode::FORBIDDEN,
            (false, s) => s,
        };
        assert_eq!(resp.status(), expected, "PATCH {id}");
    }
    let resp = app
        .delete(&format!("/v3/audit-log-destinations/{b_id}"), &admin_a)
        .await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let patch = |body: Value| body;
    let resp = app
        .request(
            Method::PATCH,
            &format!("/v3/audit-log-destinations/{a_id}"),
            Some(&app.admin),
            Some(patch(json!({"portal_id": b.to_string()}))),
        )
        .await;
    expect_problem(resp, StatusCode::BAD_REQUEST).await;

    // Binding: a portal admin binds its portal's destinations only.
    let portal_hook = format!("/v3/portals/{a}/audit-log-webhook");
    let bind = async |token: &str, path: &str, destination: &str| {
        app.request(
            Method::PATCH,
            path,
            Some(token),
            Some(json!({"audit_log_destination_id": destination, "enabled": true})),
        )
        .await
        .status()
    };
    assert_eq!(
        bind(&admin_a, &portal_hook, &org_id).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        bind(&admin_a, &portal_hook, &b_id).await,
        StatusCode::BAD_REQUEST
    );
    // Organization roles bind the organization's or the portal's own, never another portal's.
    assert_eq!(
        bind(&app.admin, &portal_hook, &b_id).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        bind(&app.admin, "/us/v3/audit-log-webhook", &a_id).await,
        StatusCode::BAD_REQUEST
    );
    assert_eq!(
        bind(&app.admin, "/us/v3/audit-log-webhook", &org_id).await,
        StatusCode::OK
    );
    assert_eq!(
        bind(&app.admin, &portal_hook, &org_id).await,
        StatusCode::OK
    );

    // Replay through the organization's destination: not for the portal admin.
    let window = json!({
        "start_at": crate::support::now().saturating_sub_millis(60_000).to_rfc3339_millis(),
        "end_at": crate::support::now().to_rfc3339_millis(),
    });
    let replay = format!("/v3/portals/{a}/audit-log-replay-job");
    let put = async |token: &str| {
        app.request(Method::PUT, &replay, Some(token), Some(window.clone()))
            .await
    };
    expect_problem(put(&admin_a).await, StatusCode::FORBIDDEN).await;
    // Through its own, once it is bound to it.
    assert_eq!(bind(&admin_a, &portal_hook, &a_id).await, StatusCode::OK);
    assert_eq!(put(&admin_a).await.status(), StatusCode::ACCEPTED);
    app.stop().await;
}

/// The destinations list documents 200, 401 and 403 only, so a page request it cannot use gets
/// a 200 all the same: `page[size]` clamped into 1–100, and a cursor that is not ours read as
/// past the end (an empty last page) — never a 400 an SDK reports as an unknown status.
#[tokio::test]
async fn list_page_requests_it_cannot_use_still_get_a_documented_answer() {
    let app = TestApp::spawn().await;
    for i in 0..3 {
        let mut body = sumo();
        body["name"] = json!(format!("d{i}"));
        expect_json(
            app.post("/v3/audit-log-destinations", &app.admin, body)
                .await,
            StatusCode::CREATED,
        )
        .await;
    }
    for (query, size, count) in [
        ("page[size]=1000", 100, 3),
        ("page[size]=0", 100, 3),
        ("page[size]=abc", 100, 3),
        ("page[after]=not-a-cursor", 100, 0),
        ("page[before]=not-a-cursor", 100, 0),
        // A cursor of ours in form, holding a NUL: PostgreSQL would refuse it in text.
        ("page[after]=WzAsIlx1MDAwMCJd", 100, 0),
        ("page[before]=WzAsIlx1MDAwMCJd", 100, 0),
        ("page[number]=2", 100, 3),
    ] {
        for version in ["v2", "v3"] {
            let path = format!("/{version}/audit-log-destinations?{query}");
            let page = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
            let doc = if version == "v2" { Doc::V2 } else { Doc::V3 };
            check(doc, "GET", COLLECTION, 200, &page);
            assert_eq!(page["meta"]["size"], size, "{path}");
            assert_eq!(page["data"].as_array().unwrap().len(), count, "{path}");
            assert!(page["meta"]["next"].is_null(), "{path}");
        }
    }
    // A filter holding a NUL (no name holds one, and PostgreSQL refuses one in text) is the
    // client's mistake: a 400 naming it, never a 500.
    for (query, field) in [
        ("filter[name]=%00", "filter[name]"),
        ("filter[name][contains]=a%00b", "filter[name][contains]"),
    ] {
        let path = format!("/v3/audit-log-destinations?{query}");
        let problem =
            expect_problem(app.get(&path, &app.admin).await, StatusCode::BAD_REQUEST).await;
        assert_eq!(invalid_fields(&problem)[0].0, field, "{problem}");
    }
    app.stop().await;
}

/// Our extension: extra headers a webhook destination sends with every delivery and with a
/// connection test. Their values are write-only (responses name them only), they are checked
/// like any field (nothing changes on a 400), an update without them keeps them, `{}` removes
/// them, and changing them counts as new credentials.
#[tokio::test]
async fn extra_headers_go_with_every_delivery_and_are_never_shown() {
    use crate::support::events::{authorization, ndjson};
    use crate::support::receiver::TestReceiver;
    use crate::support::{dev, now};

    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    let body = json!({
        "name": "sumo", "endpoint": receiver.url(), "authorization": "Bearer siem",
        "log_format": "json",
        "headers": {"X-Sumo-Category": "audit/konnect", "X-API-Key": "sesame"},
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let names = json!(["x-api-key", "x-sumo-category"]);
    assert_eq!(created["header_names"], names, "{created}");
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v3/audit-log-destinations/{id}");
    for read in [path.clone(), "/v2/audit-log-destinations".to_owned()] {
        let text = app.get(&read, &app.admin).await.text().await.unwrap();
        assert!(text.contains("x-sumo-category"), "{text}");
        assert!(
            !text.contains("sesame") && !text.contains("audit/konnect"),
            "{text}"
        );
    }

    // Refused, each for its reason, and nothing changes.
    let mut many = serde_json::Map::new();
    for n in 0..21 {
        many.insert(format!("x-h{n}"), json!("v"));
    }
    for (headers, field) in [
        (json!({"Content-Type": "text/csv"}), "headers.Content-Type"),
        (json!({"Authorization": "x"}), "headers.Authorization"),
        (json!({"Proxy-Anything": "x"}), "headers.Proxy-Anything"),
        (json!({"Bad Name": "x"}), "headers.Bad Name"),
        (json!({"x-a": "line\nbreak"}), "headers.x-a"),
        (json!({"x-a": "  "}), "headers.x-a"),
        (json!({"X-A": "1", "x-a": "2"}), "headers.x-a"),
        (Value::Object(many), "headers"),
    ] {
        let resp = app
            .request(
                Method::PATCH,
                &path,
                Some(&app.admin),
                Some(json!({ "headers": headers })),
            )
            .await;
        let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
        let fields = invalid_fields(&problem);
        assert!(fields.iter().any(|(f, _)| f == field), "{field}: {problem}");
    }
    let read = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(read["header_names"], names, "{read}");

    // Every delivery carries them.
    crate::support::bind_webhook(&app, "/us/v3/audit-log-webhook", &id, true).await;
    let sent = |trace: &str| ndjson(&[authorization(now(), trace)]);
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, sent("headed-1"))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let request = receiver
        .wait_until(Duration::from_secs(20), "the first batch", |requests| {
            requests
                .iter()
                .find(|r| r.lines.iter().any(|l| l.contains("headed-1")))
                .cloned()
        })
        .await;
    assert_eq!(request.headers["x-api-key"], "sesame");
    assert_eq!(request.headers["x-sumo-category"], "audit/konnect");
    assert_eq!(request.headers["authorization"], "Bearer siem");
    assert_eq!(request.headers["content-type"], "text/plain");

    // So does a connection test, with the saved ones or those it is given.
    let test = |headers: Option<Value>| {
        let mut body = json!({ "audit_log_destination_id": id });
        if let Some(headers) = headers {
            body["headers"] = headers;
        }
        app.post(
            "/v3/audit-log-destinations/test-connection",
            &app.admin,
            body,
        )
    };
    expect_json(test(None).await, StatusCode::OK).await;
    expect_json(test(Some(json!({"x-trial": "1"}))).await, StatusCode::OK).await;
    let tests = receiver
        .wait_until(
            Duration::from_secs(20),
            "both connection tests",
            |requests| {
                let tests: Vec<_> = requests
                    .iter()
                    .filter(|r| r.lines.iter().any(|l| l.contains("\"action\":\"test\"")))
                    .cloned()
                    .collect();
                (tests.len() == 2).then_some(tests)
            },
        )
        .await;
    assert_eq!(tests[0].headers["x-api-key"], "sesame");
    assert_eq!(tests[1].headers["x-trial"], "1");
    assert!(tests[1].headers.get("x-api-key").is_none());

    // An update without them keeps them; `{}` removes them.
    let renamed = expect_json(
        app.request(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"name": "sumo logic"})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(renamed["header_names"], names, "{renamed}");
    let cleared = expect_json(
        app.request(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"headers": {}})),
        )
        .await,
        StatusCode::OK,
    )
    .await;
    assert!(cleared.get("header_names").is_none(), "{cleared}");
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, sent("headed-2"))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let request = receiver
        .wait_until(Duration::from_secs(20), "a batch after", |requests| {
            requests
                .iter()
                .find(|r| r.lines.iter().any(|l| l.contains("headed-2")))
                .cloned()
        })
        .await;
    assert!(request.headers.get("x-api-key").is_none());
    app.stop().await;
}

//! `/v3/portals`: create, get, list with cursor pagination both ways, delete.

use reqwest::StatusCode;
use serde_json::{Value, json};

use crate::support::{TestApp, expect_json, expect_problem, invalid_fields};

#[tokio::test]
async fn crud() {
    let app = TestApp::spawn().await;
    let created = expect_json(
        app.post("/eu/v3/portals", &app.admin, json!({"name": "Developers"}))
            .await,
        StatusCode::CREATED,
    )
    .await;
    assert_eq!(created["name"], "Developers");
    assert_eq!(created["region"], "eu", "defaults to the request's region");
    let id = created["id"].as_str().unwrap();
    assert_eq!(created["created_at"], created["updated_at"]);

    let got = expect_json(
        app.get(&format!("/v3/portals/{id}"), &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(got, created);

    let body = expect_problem(
        app.post("/v3/portals", &app.admin, json!({"name": "Developers"}))
            .await,
        StatusCode::CONFLICT,
    )
    .await;
    assert!(body["detail"].as_str().unwrap().contains("Developers"));
    let body = expect_problem(
        app.post(
            "/v3/portals",
            &app.admin,
            json!({"name": "X", "region": "mars"}),
        )
        .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&body),
        [("region".to_owned(), "enum".to_owned())]
    );
    let body = expect_problem(
        app.post("/v3/portals", &app.admin, json!({"name": " "}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&body),
        [("name".to_owned(), "invalid".to_owned())]
    );
    let long = "n".repeat(256);
    expect_problem(
        app.post("/v3/portals", &app.admin, json!({"name": long}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    // A control character (a NUL, which PostgreSQL cannot store) is the client's mistake.
    expect_problem(
        app.post("/v3/portals", &app.admin, json!({"name": "dev\u{0}portal"}))
            .await,
        StatusCode::BAD_REQUEST,
    )
    .await;

    let body = expect_problem(
        app.get("/v3/portals/not-a-uuid", &app.admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&body),
        [("portalId".to_owned(), "is_uuid".to_owned())]
    );
    expect_problem(
        app.get(
            "/v3/portals/3e551b39-227d-4297-b911-e68fd5d77c17",
            &app.admin,
        )
        .await,
        StatusCode::NOT_FOUND,
    )
    .await;

    let resp = app.delete(&format!("/v3/portals/{id}"), &app.admin).await;
    assert_eq!(resp.status(), StatusCode::NO_CONTENT);
    expect_problem(
        app.get(&format!("/v3/portals/{id}"), &app.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    expect_problem(
        app.delete(&format!("/v3/portals/{id}"), &app.admin).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

#[tokio::test]
async fn pagination_walks_forward_and_back() {
    let app = TestApp::spawn().await;
    let mut names = Vec::new();
    for i in 0..23 {
        let name = format!("portal-{i:02}");
        app.create_portal(&name, "us").await;
        names.push(name);
    }
    let page = |link: &str| {
        let link = link.to_owned();
        let app = &app;
        async move { expect_json(app.get(&link, &app.admin).await, StatusCode::OK).await }
    };
    let names_of = |body: &Value| -> Vec<String> {
        body["data"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| p["name"].as_str().unwrap().to_owned())
            .collect()
    };

    let mut seen = Vec::new();
    let mut body = page("/v3/portals?page[size]=10").await;
    assert!(body["meta"]["previous"].is_null());
    assert_eq!(body["meta"]["size"], 10);
    let mut pages = vec![body.clone()];
    loop {
        seen.extend(names_of(&body));
        let Some(next) = body["meta"]["next"].as_str() else {
            break;
        };
        body = page(next).await;
        pages.push(body.clone());
    }
    assert_eq!(seen, names, "every portal once, in creation order");
    assert_eq!(pages.len(), 3);
    assert_eq!(names_of(&pages[2]).len(), 3);

    // Back from the last page.
    let previous = pages[2]["meta"]["previous"].as_str().unwrap();
    assert_eq!(names_of(&page(previous).await), names[10..20]);

    let body = expect_problem(
        app.get("/v3/portals?page[size]=1000", &app.admin).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert_eq!(
        invalid_fields(&body),
        [("page[size]".to_owned(), "invalid".to_owned())]
    );
    // Garbage, and a cursor of ours in form holding a NUL (PostgreSQL would refuse it).
    for cursor in ["garbage", "WzAsIlx1MDAwMCJd"] {
        let path = format!("/v3/portals?page[after]={cursor}");
        expect_problem(app.get(&path, &app.admin).await, StatusCode::BAD_REQUEST).await;
    }
    app.stop().await;
}

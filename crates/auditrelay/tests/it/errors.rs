//! Every error is problem+json: unknown routes, wrong methods, unparsable and unknown bodies.

use reqwest::{Method, StatusCode};

use crate::support::{TestApp, expect_problem, invalid_fields};

#[tokio::test]
async fn unknown_route_wrong_method_and_bad_bodies_are_problems() {
    let app = TestApp::spawn().await;

    let body = expect_problem(
        app.request(Method::GET, "/v9/nothing", None, None).await,
        StatusCode::NOT_FOUND,
    )
    .await;
    assert_eq!(body["title"], "Not Found");

    let resp = app
        .request(Method::PUT, "/v3/portals", Some(&app.admin), None)
        .await;
    let allow = resp
        .headers()
        .get("allow")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = expect_problem(resp, StatusCode::METHOD_NOT_ALLOWED).await;
    assert!(body["detail"].as_str().unwrap().contains("PUT"), "{body}");
    assert!(allow.unwrap().contains("POST"));

    // Konnect's exact body for an unparsable JSON body.
    let resp = app
        .client
        .post(app.url("/v3/portals"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/json")
        .body("{not json")
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["detail"], "Could not parse request body");
    assert_eq!(
        body["invalid_parameters"],
        serde_json::json!([{"field": "body", "reason": "request format is invalid"}])
    );

    let resp = app
        .post(
            "/v3/portals",
            &app.admin,
            serde_json::json!({"name": "x", "colour": "red"}),
        )
        .await;
    let body = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&body),
        [("colour".to_owned(), "unknown_property".to_owned())]
    );

    let resp = app
        .post(
            "/v3/portals",
            &app.admin,
            serde_json::json!({"region": "us"}),
        )
        .await;
    let body = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&body),
        [("name".to_owned(), "required".to_owned())]
    );

    let resp = app
        .post("/v3/portals", &app.admin, serde_json::json!({"name": 5}))
        .await;
    let body = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&body),
        [("name".to_owned(), "is_string".to_owned())]
    );

    let resp = app
        .client
        .post(app.url("/v3/portals"))
        .bearer_auth(&app.admin)
        .body("name=x")
        .send()
        .await
        .unwrap();
    expect_problem(resp, StatusCode::UNSUPPORTED_MEDIA_TYPE).await;

    // Nothing above created a portal.
    let list =
        crate::support::expect_json(app.get("/v3/portals", &app.admin).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);
    app.stop().await;
}

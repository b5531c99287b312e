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

    // Without a Content-Type the body is read as JSON (Konnect documents no 415 here)...
    let resp = app
        .client
        .post(app.url("/v3/portals"))
        .bearer_auth(&app.admin)
        .body("name=x")
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(body["detail"], "Could not parse request body");
    // ... and one declared as something else is a 400 naming the header.
    let resp = app
        .client
        .post(app.url("/v3/portals"))
        .bearer_auth(&app.admin)
        .header("content-type", "application/x-www-form-urlencoded")
        .body("name=x")
        .send()
        .await
        .unwrap();
    let body = expect_problem(resp, StatusCode::BAD_REQUEST).await;
    assert_eq!(
        invalid_fields(&body),
        [("Content-Type".to_owned(), "enum".to_owned())]
    );

    // Nothing above created a portal.
    let list =
        crate::support::expect_json(app.get("/v3/portals", &app.admin).await, StatusCode::OK).await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0);

    // A JSON body sent without a Content-Type is taken.
    let resp = app
        .client
        .post(app.url("/v3/portals"))
        .bearer_auth(&app.admin)
        .body(r#"{"name": "No Content-Type"}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::CREATED);
    app.stop().await;
}

/// Requests the HTTP layer cannot parse get problem bodies like every other error: a URI over
/// 64 KiB (414), header fields over the buffer (431), what is not HTTP (400).
#[tokio::test]
async fn unparsable_requests_get_problem_bodies() {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let app = TestApp::spawn().await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let cases = [
        (
            format!("GET /{} HTTP/1.1\r\nHost: x\r\n\r\n", "a".repeat(70_000)),
            414,
        ),
        (
            format!(
                "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Big: {}\r\n\r\n",
                "b".repeat(500_000)
            ),
            431,
        ),
        (
            "GET /healthz HTTP/1.1\r\nHost: x\r\nno colon here\r\n\r\n".to_owned(),
            400,
        ),
    ];
    for (request, status) in cases {
        let mut stream = tokio::net::TcpStream::connect(&addr).await.unwrap();
        let _ = stream.write_all(request.as_bytes()).await;
        let mut answer = Vec::new();
        let _ = stream.read_to_end(&mut answer).await;
        let answer = String::from_utf8_lossy(&answer);
        let (head, body) = answer.split_once("\r\n\r\n").expect("a whole answer");
        assert!(head.starts_with(&format!("HTTP/1.1 {status} ")), "{head}");
        assert!(
            head.contains("content-type: application/problem+json"),
            "{head}"
        );
        let problem: serde_json::Value = serde_json::from_str(body).expect(body);
        assert_eq!(problem["status"], status, "{problem}");
        assert!(
            problem["instance"]
                .as_str()
                .unwrap()
                .starts_with("kong:trace:"),
            "{problem}"
        );
        assert!(!problem["detail"].as_str().unwrap().is_empty());
    }
    app.stop().await;
}

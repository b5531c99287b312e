//! The browser-test harness (`support::browser`) itself: headless Chromium reaches a server
//! running in-process, the helpers find controls by their labels, and a failing body leaves a
//! screenshot and the page HTML behind. The UI walks build on this.

use axum::Router;
use axum::extract::RawQuery;
use axum::response::Html;
use axum::routing::get;
use tokio::net::TcpListener;

use super::WAIT;
use crate::support::TestApp;
use crate::support::browser::{Browser, WINDOW};

#[tokio::test]
async fn chromium_loads_a_page_from_the_server() {
    let Some(browser) =
        Browser::start("browser::harness::chromium_loads_a_page_from_the_server").await
    else {
        return;
    };
    let app = TestApp::spawn().await;
    browser
        .run(async |b| {
            b.goto(&app.url("/healthz")).await?;
            let text = b.wait_for_text("body", r#""status":"ok""#, WAIT).await?;
            assert_eq!(text.trim(), r#"{"status":"ok"}"#);
            assert_eq!(b.current_path().await?, "/healthz");
            let viewport = b
                .client()
                .execute("return [window.innerWidth, window.innerHeight];", vec![])
                .await?;
            assert_eq!(viewport, serde_json::json!([WINDOW.0, WINDOW.1]));
            Ok(())
        })
        .await;
    app.stop().await;
}

/// A form in the shapes the UI uses: a `label[for]`, a control inside its label, a select, a
/// checkbox, an `aria-label`led date input, a disabled fieldset, two buttons with one text, a
/// link, two links with one text (one in a `nav`), and a hidden panel with a second "Name".
const FORM: &str = r#"<!doctype html>
<html lang="en"><head><title>Fixture</title></head><body>
<form action="/echo" method="get">
  <label for="name">Name</label> <input id="name" name="name" value="old">
  <label>Endpoint <input name="endpoint"></label>
  <label for="format">Log Format</label>
  <select id="format" name="format"><option>cef</option><option>json</option></select>
  <label for="enabled">Enabled</label> <input type="checkbox" id="enabled" name="enabled" value="yes">
  <input type="datetime-local" name="start" aria-label="Starts at">
  <fieldset disabled><label for="locked">Locked</label> <input id="locked" name="locked"></fieldset>
  <button type="button">Replay</button> <button type="button">Replay</button>
  <button type="submit">Save</button>
</form>
<a href="/echo?via=link">Status</a>
<a href="/echo?via=top">Setup</a>
<nav id="card"><a href="/echo?via=card">Setup</a></nav>
<div hidden><label for="other-name">Name</label> <input id="other-name"></div>
</body></html>"#;

/// Serves [`FORM`] at `/` and echoes a submitted query, one `key=value` per line, at `/echo`.
async fn form_server() -> String {
    let router = Router::new()
        .route("/", get(|| async { Html(FORM) }))
        .route(
            "/echo",
            get(|RawQuery(query): RawQuery| async move {
                let pairs: Vec<(String, String)> =
                    serde_urlencoded::from_str(&query.unwrap_or_default()).unwrap();
                let lines: Vec<String> = pairs.iter().map(|(k, v)| format!("{k}={v}")).collect();
                Html(format!(
                    "<!doctype html><title>Echo</title><pre id=echo>{}</pre>",
                    lines.join("\n")
                ))
            }),
        );
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let base = format!("http://{}", listener.local_addr().unwrap());
    tokio::spawn(async move { axum::serve(listener, router).await.unwrap() });
    base
}

#[tokio::test]
async fn the_helpers_find_controls_the_way_a_user_names_them() {
    let Some(browser) =
        Browser::start("browser::harness::the_helpers_find_controls_the_way_a_user_names_them")
            .await
    else {
        return;
    };
    let base = form_server().await;
    browser
        .run(async |b| {
            b.goto(&format!("{base}/")).await?;
            b.fill("Name", "New name").await?;
            b.fill("Endpoint", "https://siem.example/hook").await?;
            b.select("Log Format", "json").await?;
            b.check("Enabled", true).await?;
            b.fill("Starts at", "2026-11-22T10:15").await?;
            assert!(b.is_enabled("Name").await?);
            assert!(!b.is_enabled("Locked").await?, "disabled by its fieldset");
            assert_eq!(b.buttons().await?, ["Replay", "Replay", "Save"]);
            assert_eq!(b.links().await?, ["Status", "Setup", "Setup"]);

            let missing = b.fill("Nmae", "x").await.unwrap_err();
            assert!(
                format!("{missing:#}").contains(r#""Name","Endpoint","Log Format","Enabled""#),
                "{missing:#}"
            );
            let ambiguous = b.click_button("Replay").await.unwrap_err();
            assert!(
                format!("{ambiguous:#}").contains("2 visible elements match"),
                "{ambiguous:#}"
            );

            b.click_button("Save").await?;
            let echoed = b.wait_for_text("#echo", "name=", WAIT).await?;
            assert_eq!(
                echoed.lines().collect::<Vec<_>>(),
                [
                    "name=New name",
                    "endpoint=https://siem.example/hook",
                    "format=json",
                    "enabled=yes",
                    "start=2026-11-22T10:15",
                ]
            );
            assert_eq!(b.current_path().await?, "/echo");

            b.goto("/").await?; // relative to the current page
            b.click_link("Status").await?;
            b.wait_for_text("#echo", "via=link", WAIT).await?;
            b.goto("/").await?;
            let ambiguous = b.click_link("Setup").await.unwrap_err();
            assert!(
                format!("{ambiguous:#}").contains("2 visible elements match"),
                "{ambiguous:#}"
            );
            let absent = b.click_link_in("#nowhere", "Setup").await.unwrap_err();
            assert!(
                format!("{absent:#}").contains(r##"nothing on the page matches "#nowhere""##),
                "{absent:#}"
            );
            b.click_link_in("#card", "Setup").await?;
            b.wait_for_text("#echo", "via=card", WAIT).await?;
            Ok(())
        })
        .await;
}

#[tokio::test]
async fn a_failing_body_leaves_a_screenshot_and_the_page_html() {
    let Some(browser) =
        Browser::start("browser::harness::a_failing_body_leaves_a_screenshot_and_the_page_html")
            .await
    else {
        return;
    };
    let dir = browser.artifacts_dir();
    let failure = browser
        .try_run(async |b| {
            b.goto("data:text/html,<h1>artifact marker</h1>").await?;
            b.wait_for_text("h1", "artifact marker", WAIT).await?;
            assert_eq!(1 + 1, 3, "the deliberate failure");
            Ok(())
        })
        .await
        .expect_err("the body failed");

    assert!(
        failure.message.contains("the deliberate failure"),
        "{failure}"
    );
    assert_eq!(failure.dir, dir);
    let png = std::fs::read(failure.screenshot.as_ref().expect("a screenshot")).unwrap();
    assert!(png.starts_with(b"\x89PNG\r\n\x1a\n"), "not a PNG");
    let html = std::fs::read_to_string(failure.html.as_ref().expect("the page HTML")).unwrap();
    assert!(html.contains("<h1>artifact marker</h1>"), "{html}");
    assert!(dir.join("chromedriver.log").is_file());
}

//! The operator's view in the browser: during an outage the Status page says what is happening
//! now (the failure, the next attempt, the count), its delivery log shows each attempt, *Retry
//! now* sends the waiting batch at once; and at a phone's width (400 px) no page runs off the
//! screen.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{SLOW, WAIT, dev, refresh_until, script, shot, sign_in};
use crate::support::browser::Browser;
use crate::support::events::{authorization, ndjson};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::{TestApp, expect_json, now};

#[tokio::test]
async fn the_status_page_during_an_outage_and_retry_now() {
    let Some(browser) = Browser::start("the_status_page_during_an_outage_and_retry_now").await
    else {
        return;
    };
    let app = TestApp::spawn_with(|c| {
        dev(c);
        // The next probe is far away: only "Retry now" brings the batch back soon.
        c.delivery.probe_min = Duration::from_secs(300);
        c.delivery.probe_max = Duration::from_secs(300);
    })
    .await;
    let siem = TestReceiver::http().await;
    // The SIEM refuses the credentials: not retried, so the webhook is inactive at once.
    siem.set_default(Behaviour::Status(401));
    let body = json!({"name": "SumoLogic", "endpoint": siem.url(),
                      "authorization": "Bearer wrong", "log_format": "cef"});
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let bind = json!({"audit_log_destination_id": created["id"], "enabled": true});
    let resp = app
        .request(
            Method::PATCH,
            "/us/v3/audit-log-webhook",
            Some(&app.admin),
            Some(bind),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let events = ndjson(&[authorization(now(), "outage-1")]);
    let resp = app.ingest_ndjson("/us/v1/events", &app.admin, events).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let base = app.base.clone();
    let admin = app.admin.clone();
    let siem = &siem;
    browser
        .run(async |b: &Browser| {
            sign_in(b, &base, &admin).await?;
            b.goto(&format!("{base}/ui/audit-logs/regions/us/status"))
                .await?;
            let facts = refresh_until(b, "#webhook-status", "Retrying", SLOW).await?;
            anyhow::ensure!(facts.contains("Inactive"), "{facts}");
            anyhow::ensure!(facts.contains("401"), "{facts}");
            anyhow::ensure!(
                facts.contains("the next attempt is in 4 minutes")
                    || facts.contains("the next attempt is in 5 minutes"),
                "{facts}"
            );
            anyhow::ensure!(facts.contains("1 in a row"), "{facts}");
            let log = b.text("#deliveries").await?;
            anyhow::ensure!(log.contains("Failed: 401 Unauthorized"), "{log}");
            anyhow::ensure!(log.contains(&siem.url()), "{log}");
            shot(b, "status-inactive").await?;

            // The SIEM's side is fixed; the operator does not wait for the probe.
            siem.set_default(Behaviour::ACCEPT);
            b.click_button("Retry now").await?;
            b.wait_for_text("main", "Retrying now", WAIT).await?;
            let facts = refresh_until(b, "#webhook-status", "202", SLOW).await?;
            anyhow::ensure!(facts.contains("Active"), "{facts}");
            anyhow::ensure!(!facts.contains("Retrying"), "{facts}");
            let log = b.text("#deliveries").await?;
            anyhow::ensure!(log.contains("Retry"), "{log}");
            anyhow::ensure!(log.contains("202 Accepted"), "{log}");
            anyhow::ensure!(
                !b.buttons().await?.iter().any(|n| n == "Retry now"),
                "nothing waits any more"
            );
            shot(b, "status-delivered").await?;

            // A phone's width: nothing runs off the page.
            b.resize(400).await?;
            for page in [
                "/ui/audit-logs/regions/us/status",
                "/ui/audit-logs/regions/us/replay",
                "/ui/audit-logs/regions/us/setup",
                "/ui/destinations",
                "/ui/portals",
            ] {
                b.goto(&format!("{base}{page}")).await?;
                b.wait_for_text("header", "Signed in as", WAIT).await?;
                // The page's width, and the element that sticks out furthest, to name it.
                let widths = script(
                    b,
                    r#"let widest = null, right = 0;
                       for (const el of document.body.querySelectorAll("*")) {
                         const r = el.getBoundingClientRect().right;
                         if (r > right) { right = r; widest = el; }
                       }
                       const name = widest ? widest.localName + "." + widest.className : "";
                       return document.documentElement.scrollWidth + " " + window.innerWidth
                         + " " + name;"#,
                )
                .await?;
                let mut parts = widths.splitn(3, ' ');
                let (page_width, window, widest) = (
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                    parts.next().unwrap_or_default(),
                );
                anyhow::ensure!(
                    page_width.parse::<u32>()? <= window.parse::<u32>()?,
                    "{page} is {page_width} px wide in a {window} px window (widest: {widest})"
                );
            }
            shot(b, "status-narrow").await
        })
        .await;
    app.stop().await;
}

/// *Test connection* on the New Webhook form (before anything is saved, keeping what was typed,
/// the Authorization Header included) and on the Status page.
#[tokio::test]
async fn test_connection_from_the_form_and_the_status_page() {
    let Some(browser) = Browser::start("test_connection_from_the_form_and_the_status_page").await
    else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let siem = TestReceiver::http().await;
    let untrusted = TestReceiver::https().await;
    let base = app.base.clone();
    let admin = app.admin.clone();
    let (siem, untrusted, api) = (&siem, &untrusted, &app);
    browser
        .run(async |b: &Browser| {
            sign_in(b, &base, &admin).await?;
            b.goto(&format!("{base}/ui/destinations/new")).await?;
            b.fill("Name", "SumoLogic").await?;
            b.fill("Endpoint", &untrusted.url()).await?;
            b.fill("Authorization Header", "Bearer typed-once").await?;
            b.click_button("Test connection").await?;
            let result = b
                .wait_for_text("#connection-result", "No answer", WAIT)
                .await?;
            anyhow::ensure!(result.to_lowercase().contains("certificate"), "{result}");
            shot(b, "destination-test-failed").await?;

            // Everything typed is still there: only the endpoint needs changing.
            let typed = script(b, "return document.getElementById('authorization').value;").await?;
            anyhow::ensure!(typed == "Bearer typed-once", "{typed:?}");
            b.fill("Endpoint", &siem.url()).await?;
            b.click_button("Test connection").await?;
            let result = b
                .wait_for_text("#connection-result", "It works", WAIT)
                .await?;
            anyhow::ensure!(result.contains("202 Accepted"), "{result}");
            anyhow::ensure!(siem.requests().len() == 1, "one sample line");
            anyhow::ensure!(
                siem.requests()[0].authorization() == Some("Bearer typed-once"),
                "the typed header was sent"
            );
            b.click_button("Save").await?;
            b.wait_for_path("/ui/destinations", WAIT).await?;
            b.wait_for_text("main", "created", WAIT).await?;

            // The saved destination, bound to the US webhook (disabled: only the test sends),
            // tested from its Status page.
            let list = expect_json(
                api.get("/v3/audit-log-destinations", &api.admin).await,
                StatusCode::OK,
            )
            .await;
            let bind = json!({"audit_log_destination_id": list["data"][0]["id"], "enabled": false});
            let resp = api
                .request(
                    Method::PATCH,
                    "/us/v3/audit-log-webhook",
                    Some(&api.admin),
                    Some(bind),
                )
                .await;
            expect_json(resp, StatusCode::OK).await;
            b.goto(&format!("{base}/ui/audit-logs/regions/us/status"))
                .await?;
            b.click_button("Test connection").await?;
            let result = b
                .wait_for_text("#connection-result", "It works", WAIT)
                .await?;
            anyhow::ensure!(result.contains("202 Accepted"), "{result}");
            anyhow::ensure!(siem.requests().len() == 2, "a second sample line");
            shot(b, "status-test-connection").await
        })
        .await;
    app.stop().await;
}

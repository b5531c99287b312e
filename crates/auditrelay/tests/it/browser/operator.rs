//! The operator's view in the browser: during an outage the Status page says what is happening
//! now (the failure, the next attempt, the count), its delivery log shows each attempt, *Retry
//! now* sends the waiting batch at once; and at a phone's width (400 px) no page runs off the
//! screen.

use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::json;

use super::{SLOW, WAIT, bound_destination, dev, refresh_until, script, shot, sign_in};
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
    bound_destination(&app, &siem.url()).await;
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

/// The Replay tab in a browser five and a half hours ahead of UTC: a custom range typed in
/// local time runs over the UTC window it names (shown under each field), the form keeps the
/// choice after sending, Send waits while a job runs, Cancel ends it, and earlier replays are
/// listed.
#[tokio::test]
async fn replays_in_local_time_with_cancel_and_history() {
    let Some(browser) = Browser::start_in(
        "replays_in_local_time_with_cancel_and_history",
        Some("Asia/Kolkata"),
    )
    .await
    else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let siem = TestReceiver::http().await;
    bound_destination(&app, &siem.url()).await;
    let two_hours_ago = now().saturating_sub_millis(2 * 3_600_000);
    let events = ndjson(&[authorization(two_hours_ago, "two-hours-ago")]);
    let resp = app.ingest_ndjson("/us/v1/events", &app.admin, events).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // The window from three hours ago to an hour ago, as a clock in India shows it.
    let utc = |hours_ago: i64| {
        let t = time::OffsetDateTime::now_utc() - time::Duration::hours(hours_ago);
        t.replace_second(0).unwrap().replace_nanosecond(0).unwrap()
    };
    let (start, end) = (utc(3), utc(1));
    let india = time::UtcOffset::from_hms(5, 30, 0).unwrap();
    let input = time::macros::format_description!("[year]-[month]-[day]T[hour]:[minute]:[second]");
    let rfc3339 = time::format_description::well_known::Rfc3339;
    let local = |t: time::OffsetDateTime| t.to_offset(india).format(&input).unwrap();
    let (start_local, end_local) = (local(start), local(end));
    let (start_utc, end_utc) = (
        start.format(&rfc3339).unwrap(),
        end.format(&rfc3339).unwrap(),
    );

    let base = app.base.clone();
    let admin = app.admin.clone();
    let (siem, api) = (&siem, &app);
    browser
        .run(async |b: &Browser| {
            sign_in(b, &base, &admin).await?;
            let replay = format!("{base}/ui/audit-logs/regions/us/replay");
            b.goto(&replay).await?;
            b.select("Replay Time Range", "Custom range").await?;
            let label = b.text("label[for=start_at]").await?;
            anyhow::ensure!(label.contains("(your time, UTC+05:30)"), "{label}");
            b.fill("#start_at", &start_local).await?;
            b.fill("#end_at", &end_local).await?;
            let shown = b.text("#start_at-utc").await?;
            anyhow::ensure!(
                shown.contains(&start_utc.replace('T', " ").replace('Z', "")),
                "{shown} for {start_utc}"
            );
            shot(b, "replay-local-time").await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("[role=status]", "Replay requested (Custom range: ", WAIT)
                .await?;
            let job = expect_json(
                api.get("/us/v3/audit-log-replay-job", &api.admin).await,
                StatusCode::OK,
            )
            .await;
            let at = |v: &serde_json::Value| {
                time::OffsetDateTime::parse(v.as_str().unwrap(), &rfc3339).unwrap()
            };
            anyhow::ensure!(at(&job["start_at"]) == start, "{job} for {start_utc}");
            anyhow::ensure!(at(&job["end_at"]) == end, "{job} for {end_utc}");
            // The form kept the choice, shown in local time again.
            let kept = script(
                b,
                "return document.getElementById('range').value + ' ' + \
                 document.getElementById('start_at').value;",
            )
            .await?;
            // (Chromium leaves out `:00` seconds in a datetime-local value.)
            anyhow::ensure!(
                kept.starts_with(&format!("custom {}", &start_local[..16])),
                "{kept}"
            );
            b.wait_for_text("#replay-job tbody", "Completed", SLOW)
                .await?;

            // A replay the SIEM holds: Send waits, Cancel ends it.
            siem.set_default(Behaviour::Hold);
            b.select("Replay Time Range", "Last 6 hours").await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("#replay-job tbody", "Running", SLOW)
                .await?;
            let disabled = script(
                b,
                "return String(document.getElementById('send-replay').disabled);",
            )
            .await?;
            anyhow::ensure!(disabled == "true", "Send waits while a job runs");
            b.click_button("Cancel replay").await?;
            b.client().accept_alert().await?;
            b.wait_for_text("[role=status]", "Replay cancelled", WAIT)
                .await?;
            let current = b.text("#replay-job tbody").await?;
            anyhow::ensure!(current.contains("Failed"), "{current}");
            anyhow::ensure!(
                current.contains("cancelled by bootstrap-admin"),
                "{current}"
            );
            siem.release();

            // The next replay lists the ones before it.
            b.select("Replay Time Range", "Last 15 minutes").await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("[role=status]", "Replay requested", WAIT)
                .await?;
            let history = b.text("#replay-history").await?;
            anyhow::ensure!(history.contains("Failed"), "{history}");
            anyhow::ensure!(
                history.contains("cancelled by bootstrap-admin"),
                "{history}"
            );
            shot(b, "replay-history").await
        })
        .await;
    app.stop().await;
}

/// Two dead ends a new user met: a region not set up offered Replay and Send test event and
/// then refused them in jargon; and a form sent after a restart (sessions live in memory) was
/// lost without a word. Now the tabs point to Setup, and the lost form is explained and the
/// person lands back on its page after signing in.
#[tokio::test]
async fn before_setup_and_after_a_restart_the_ui_says_what_to_do() {
    let Some(browser) =
        Browser::start("before_setup_and_after_a_restart_the_ui_says_what_to_do").await
    else {
        return;
    };
    let mut app = TestApp::spawn_with(dev).await;
    let base = app.base.clone();
    let admin = app.admin.clone();
    let app_ref = &mut app;
    browser
        .run(async |b: &Browser| {
            sign_in(b, &base, &admin).await?;
            let region = format!("{base}/ui/audit-logs/regions/us");
            for (tab, action) in [("replay", "Send Replay"), ("status", "Send test event")] {
                b.goto(&format!("{region}/{tab}")).await?;
                b.wait_for_text(
                    "main",
                    "which is not enabled. Set it up in Setup first.",
                    WAIT,
                )
                .await?;
                anyhow::ensure!(
                    !b.buttons().await?.iter().any(|n| n == action),
                    "{tab} offers {action}"
                );
                if tab == "replay" {
                    shot(b, "replay-before-setup").await?;
                }
                b.click_link("Set it up in Setup").await?;
                b.wait_for_path("/ui/audit-logs/regions/us/setup", WAIT)
                    .await?;
            }

            b.goto(&format!("{base}/ui/destinations/new")).await?;
            b.fill("Name", "SumoLogic").await?;
            b.fill("Endpoint", "https://siem.example.com/ingest")
                .await?;
            app_ref.restart().await;
            b.click_button("Save").await?;
            b.wait_for_path("/ui/sign-in", WAIT).await?;
            let notice = b.text("main").await?;
            anyhow::ensure!(
                notice.contains("Your session is no longer known to the server")
                    && notice.contains("What you submitted was not saved"),
                "{notice}"
            );
            shot(b, "session-ended").await?;
            b.fill("Token", &admin).await?;
            b.click_button("Sign in").await?;
            b.wait_for_path("/ui/destinations/new", WAIT).await?;
            b.wait_for_text("main", "Endpoint", WAIT).await?;
            Ok(())
        })
        .await;
    let list = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    assert_eq!(list["data"], json!([]), "nothing was saved");
    app.stop().await;
}

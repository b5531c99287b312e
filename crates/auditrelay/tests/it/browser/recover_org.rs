//! "Recover Konnect audit logs" (seeds), in the browser: the prerequisites (a destination on
//! the Webhook Destination tab, the US region's webhook on the Konnect tab, an API call that
//! reaches the SIEM), then the SIEM loses a stretch, and Replay → Last 6 hours → Send Replay
//! brings it back.

use auditrelay_core::Timestamp;
use auditrelay_core::format::verify_line;
use reqwest::StatusCode;
use reqwest::header::USER_AGENT;
use serde_json::Value;

use super::{
    SLOW, WAIT, dev, mark_page, open_tab, refresh_until, same_page, shot, sign_in, trace_id_in,
    values, wait_for_values,
};
use crate::support::browser::Browser;
use crate::support::receiver::{Behaviour, ReceivedRequest, TestReceiver};
use crate::support::signing::jwks;
use crate::support::{TestApp, expect_json};

/// What the SIEM gave the "Authorization Header" field.
const SIEM_TOKEN: &str = "Bearer sumo-7c1d-walk";
/// API calls made while the SIEM loses what it receives.
const LOST_CALLS: usize = 8;

/// A Konnect API request, as the how-to's validation step sends one, told apart by its user
/// agent (every audit event of the request carries it).
async fn api_call(app: &TestApp, user_agent: &str) {
    let resp = app
        .client
        .get(app.url("/us/v2/audit-log-webhook"))
        .bearer_auth(&app.admin)
        .header(USER_AGENT, user_agent)
        .send()
        .await
        .expect("request sent");
    assert_eq!(resp.status(), StatusCode::OK);
}

fn kept(r: &ReceivedRequest) -> bool {
    r.accepted()
}

fn discarded(r: &ReceivedRequest) -> bool {
    r.answer == Behaviour::Discard
}

#[tokio::test]
async fn recover_org_audit_logs() {
    let Some(browser) = Browser::start("browser::recover_org::recover_org_audit_logs").await else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    browser
        .run(async |b| {
            b.goto(&app.url("/")).await?;
            b.wait_for_path("/ui/sign-in", WAIT).await?;
            shot(b, "01-sign-in").await?;
            sign_in(b, &app.base, &app.admin).await?;

            // Webhook Destination → New Webhook: Name, Endpoint, Authorization Header, Log
            // Format "cef" → Save.
            b.wait_for_path("/ui/destinations", WAIT).await?;
            b.wait_for_text("main h2", "Webhook Destination", WAIT)
                .await?;
            b.click_link_in(".toolbar", "New Webhook").await?;
            b.wait_for_text("main h2", "New Webhook", WAIT).await?;
            b.fill("Name", "SumoLogic").await?;
            b.fill("Endpoint", &receiver.url()).await?;
            b.fill("Authorization Header", SIEM_TOKEN).await?;
            b.select("Log Format", "CEF").await?;
            shot(b, "03-new-webhook").await?;
            b.click_button("Save").await?;
            b.wait_for_path("/ui/destinations", WAIT).await?;
            b.wait_for_text(
                "[role=status]",
                "Webhook destination “SumoLogic” created.",
                WAIT,
            )
            .await?;
            let row = b
                .wait_for_text("#destinations tbody", "SumoLogic", WAIT)
                .await?;
            assert!(
                row.contains(&receiver.url()) && row.contains("CEF") && row.contains("Not used"),
                "{row}"
            );
            shot(b, "02-webhook-destination").await?;

            // The Konnect tab → the US region → Setup: Enabled, Endpoint → Save.
            open_tab(b, "Konnect").await?;
            b.wait_for_path("/ui/audit-logs", WAIT).await?;
            let card = b
                .wait_for_text("#region-us", "US - North America Webhook", WAIT)
                .await?;
            assert!(card.contains("Not configured"), "{card}");
            b.click_link_in("#region-us", "Setup").await?;
            b.wait_for_path("/ui/audit-logs/regions/us/setup", WAIT)
                .await?;
            b.check("Enabled", true).await?;
            b.select("Endpoint", "SumoLogic").await?;
            b.click_button("Save").await?;
            b.wait_for_text(
                "[role=status]",
                "Saved: the US - North America Webhook is enabled.",
                WAIT,
            )
            .await?;
            b.wait_for_text("#region-us-title .badge", "Active", WAIT)
                .await?;
            shot(b, "05-setup").await?;
            let webhook = expect_json(
                app.get("/us/v3/audit-log-webhook", &app.admin).await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(webhook["enabled"], true, "{webhook}");
            let destination = expect_json(
                app.get(
                    &format!(
                        "/v3/audit-log-destinations/{}",
                        webhook["audit_log_destination_id"].as_str().unwrap()
                    ),
                    &app.admin,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(destination["name"], "SumoLogic", "{destination}");
            assert_eq!(destination["endpoint"], receiver.url(), "{destination}");
            assert_eq!(destination["log_format"], "cef", "{destination}");
            open_tab(b, "Konnect").await?;
            b.wait_for_text("#region-us .badge", "Active", WAIT).await?;
            b.wait_for_text("#region-us", "SumoLogic", WAIT).await?;
            b.wait_for_text("#region-eu .badge", "Not configured", WAIT)
                .await?;
            shot(b, "04-konnect").await?;

            // Validate: an API request triggers a log at the SIEM, sent with its token.
            api_call(&app, "walk/validate").await;
            wait_for_values(
                &receiver,
                "the validation call's events",
                kept,
                "user_agent",
                &["walk/validate".to_owned()],
            )
            .await;
            for request in receiver.requests() {
                assert_eq!(request.authorization(), Some(SIEM_TOKEN));
            }

            // And the Status tab's Send test event; the attempt shows there.
            b.click_link_in("#region-us", "Status").await?;
            b.wait_for_path("/ui/audit-logs/regions/us/status", WAIT)
                .await?;
            b.click_button("Send test event").await?;
            let flash = b
                .wait_for_text("[role=status]", "Test event sent with trace id", WAIT)
                .await?;
            let trace = trace_id_in(&flash)?;
            wait_for_values(&receiver, "the test event", kept, "trace_id", &[trace]).await;
            let status = refresh_until(b, "#webhook-status", "Accepted", SLOW).await?;
            assert!(
                status.contains("202") && !status.contains("None yet"),
                "{status}"
            );
            shot(b, "06-status").await?;

            // The SIEM loses a stretch: it acknowledges what it gets and keeps none of it.
            receiver.set_default(Behaviour::Discard);
            let lost: Vec<String> = (0..LOST_CALLS).map(|i| format!("walk/lost-{i}")).collect();
            for user_agent in &lost {
                api_call(&app, user_agent).await;
            }
            wait_for_values(
                &receiver,
                "the lost stretch",
                discarded,
                "user_agent",
                &lost,
            )
            .await;
            receiver.set_default(Behaviour::ACCEPT);
            let kept_before = values(&receiver.requests(), kept, "user_agent");
            assert!(
                lost.iter().all(|l| !kept_before.contains(l)),
                "nothing of the stretch was kept"
            );

            // Replay → Last 6 hours → Send Replay. The receiver holds the replay's batches until
            // the table has been seen in progress, so the page's own refresh is what shows the end.
            receiver.set_default(Behaviour::Hold);
            b.click_link("Replay").await?;
            b.wait_for_path("/ui/audit-logs/regions/us/replay", WAIT)
                .await?;
            b.wait_for_text("#replay-job", "No replay has been requested yet.", WAIT)
                .await?;
            b.select("Replay Time Range", "Last 6 hours").await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("[role=status]", "Replay requested (Last 6 hours: ", WAIT)
                .await?;
            b.wait_for_text("#replay-job tbody", "Running", SLOW)
                .await?;
            b.wait_for_text("#replay-status", "this table updates by itself", WAIT)
                .await?;
            mark_page(b).await?;
            receiver.release();
            let row = b
                .wait_for_text("#replay-job tbody", "Completed", SLOW)
                .await?;
            assert!(
                same_page(b).await?,
                "the table updated in place, without a reload"
            );
            let job = expect_json(
                app.get("/us/v3/audit-log-replay-job", &app.admin).await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(job["status"], "completed", "{job}");
            let total = job["events_total"].as_u64().unwrap();
            let sent = job["events_sent"].as_u64().unwrap();
            assert!(total as usize > LOST_CALLS, "{job}");
            // Exactly the window as stored when the job started: the audit events of the very
            // request that asked for it are live delivery's.
            assert_eq!(sent, total, "{job}");
            assert!(row.contains(&format!("{sent} / {total} events")), "{row}");
            let millis = |at: &Value| {
                Timestamp::parse_rfc3339(at.as_str().unwrap())
                    .unwrap()
                    .as_millis()
            };
            assert_eq!(
                millis(&job["end_at"]) - millis(&job["start_at"]),
                6 * 3_600_000
            );
            // The refresh link loads the page again, with the same table.
            b.click_link("Refresh").await?;
            b.wait_for_text("#replay-job tbody", "Completed", WAIT)
                .await?;
            assert!(!same_page(b).await?, "Refresh loaded the page again");
            let text = b.text("#replay-status").await?;
            assert!(!text.contains("updates by itself"), "{text}");
            shot(b, "07-replay").await?;

            // Validate: the SIEM now has the lost stretch, signed.
            wait_for_values(&receiver, "the replayed stretch", kept, "user_agent", &lost).await;
            let (_, keys) = jwks(&app).await;
            for request in receiver.requests().iter().filter(|r| r.accepted()) {
                for line in &request.lines {
                    verify_line(line.as_bytes(), &keys).unwrap_or_else(|e| panic!("{e}: {line}"));
                }
            }
            Ok(())
        })
        .await;
    app.stop().await;
}

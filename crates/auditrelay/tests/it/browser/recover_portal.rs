//! "Recover Dev Portal audit logs" (seeds), in the browser: a destination, then Dev Portal →
//! New Dev Portal Audit Log (View region, Dev Portal, Enabled, Endpoint) → Save; developer
//! sign-ins reach the SIEM; the SIEM loses a stretch of them; the portal → Replay → Last 6 hours
//! → Send Replay brings it back.

use auditrelay_core::format::{Format, parse_line};
use auditrelay_core::{PortalId, Role};
use reqwest::StatusCode;
use serde_json::Value;

use super::{
    SLOW, WAIT, dev, mark_page, open_tab, same_page, script, shot, sign_in, values, wait_for_values,
};
use crate::support::browser::Browser;
use crate::support::events::{ndjson, portal_login};
use crate::support::receiver::{Behaviour, ReceivedRequest, TestReceiver};
use crate::support::{TestApp, expect_json, now};

/// Developer sign-ins lost at the SIEM.
const LOST_LOGINS: usize = 25;

/// Developers signing in to the portal: the portal reports each as an authentication event
/// (`POST /v1/events` with its event-producer token). Returns their trace ids.
async fn developer_logins(
    app: &TestApp,
    producer: &str,
    portal: PortalId,
    tag: &str,
    n: usize,
) -> Vec<String> {
    let traces: Vec<String> = (0..n).map(|i| format!("{tag}-{i:03}")).collect();
    let events: Vec<Value> = traces
        .iter()
        .map(|t| portal_login(now(), portal, t))
        .collect();
    let resp = app
        .ingest_ndjson("/v1/events", producer, ndjson(&events))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    traces
}

fn kept(r: &ReceivedRequest) -> bool {
    r.accepted()
}

#[tokio::test]
async fn recover_dev_portal_audit_logs() {
    let Some(browser) =
        Browser::start("browser::recover_portal::recover_dev_portal_audit_logs").await
    else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    // Portals are registered through the API; one in another region is offered under its own.
    let portal = app.create_portal("Developer Portal", "eu").await;
    app.create_portal("Partner Portal", "us").await;
    let producer = app.token(Role::EventProducer, Some(portal)).await;
    let receiver = TestReceiver::http().await;
    browser
        .run(async |b| {
            sign_in(b, &app.base, &app.admin).await?;

            // The destination, as in the org how-to.
            b.click_link_in(".toolbar", "New Webhook").await?;
            b.fill("Name", "SumoLogic").await?;
            b.fill("Endpoint", &receiver.url()).await?;
            b.fill("Authorization Header", "Bearer sumo-portal").await?;
            b.select("Log Format", "JSON").await?;
            b.click_button("Save").await?;
            b.wait_for_text("#destinations tbody", "SumoLogic", WAIT)
                .await?;

            // Dev Portal → New Dev Portal Audit Log → View region, Dev Portal, Enabled,
            // Endpoint → Save.
            open_tab(b, "Dev Portal").await?;
            b.wait_for_path("/ui/portals", WAIT).await?;
            let rows = b
                .wait_for_text("#portal-webhooks tbody", "Developer Portal", WAIT)
                .await?;
            assert!(rows.contains("Not configured"), "{rows}");
            b.click_link("New Dev Portal Audit Log").await?;
            b.wait_for_path("/ui/portals/new", WAIT).await?;
            // The portal of the other region is not offered under this one.
            b.select("View region", "EU - Europe").await?;
            let offered = script(
                b,
                "return [...document.getElementById('portal').options]\
                   .filter((o) => !o.disabled).map((o) => o.text).join('|');",
            )
            .await?;
            assert_eq!(offered, "Select a Dev Portal|Developer Portal");
            b.select("Dev Portal", "Developer Portal").await?;
            b.check("Enabled", true).await?;
            b.select("Endpoint", "SumoLogic").await?;
            shot(b, "09-new-dev-portal-audit-log").await?;
            b.click_button("Save").await?;
            b.wait_for_path("/ui/portals", WAIT).await?;
            b.wait_for_text(
                "[role=status]",
                "Saved: the Dev Portal “Developer Portal” Webhook is enabled.",
                WAIT,
            )
            .await?;
            let row = b
                .wait_for_text(&format!("#portal-{portal}"), "Active", WAIT)
                .await?;
            for cell in ["EU - Europe", "Yes", "SumoLogic"] {
                assert!(row.contains(cell), "{cell} not in {row:?}");
            }
            shot(b, "08-dev-portal").await?;
            let webhook = expect_json(
                app.get(
                    &format!("/v3/portals/{portal}/audit-log-webhook"),
                    &app.admin,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(webhook["enabled"], true, "{webhook}");

            // Validate: a developer signs in to the portal, and the SIEM gets the log.
            let first = developer_logins(&app, &producer, portal, "login", 1).await;
            wait_for_values(
                &receiver,
                "the developer's sign-in",
                kept,
                "trace_id",
                &first,
            )
            .await;
            let line = receiver.lines()[0].clone();
            let parsed = parse_line(line.as_bytes()).unwrap();
            assert_eq!(parsed.format, Format::Json, "{line}");
            assert_eq!(super::field(&line, "portal_id"), Some(portal.to_string()));

            // The SIEM loses a stretch of sign-ins.
            receiver.set_default(Behaviour::Discard);
            let lost = developer_logins(&app, &producer, portal, "lost", LOST_LOGINS).await;
            wait_for_values(
                &receiver,
                "the lost stretch",
                |r| r.answer == Behaviour::Discard,
                "trace_id",
                &lost,
            )
            .await;
            receiver.set_default(Behaviour::ACCEPT);
            let kept_before = values(&receiver.requests(), kept, "trace_id");
            assert!(lost.iter().all(|t| !kept_before.contains(t)));

            // Dev Portal → the portal → Replay → Last 6 hours → Send Replay.
            receiver.set_default(Behaviour::Hold);
            open_tab(b, "Dev Portal").await?;
            b.wait_for_path("/ui/portals", WAIT).await?;
            b.click_link("Developer Portal").await?;
            b.wait_for_path(&format!("/ui/portals/{portal}/status"), WAIT)
                .await?;
            b.click_link("Replay").await?;
            b.wait_for_path(&format!("/ui/portals/{portal}/replay"), WAIT)
                .await?;
            b.select("Replay Time Range", "Last 6 hours").await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("[role=status]", "Replay requested (Last 6 hours: ", WAIT)
                .await?;
            b.wait_for_text("#replay-job tbody", "Running", SLOW)
                .await?;
            mark_page(b).await?;
            receiver.release();
            let row = b
                .wait_for_text("#replay-job tbody", "Completed", SLOW)
                .await?;
            assert!(same_page(b).await?, "the table updated in place");
            let job = expect_json(
                app.get(
                    &format!("/v3/portals/{portal}/audit-log-replay-job"),
                    &app.admin,
                )
                .await,
                StatusCode::OK,
            )
            .await;
            assert_eq!(job["status"], "completed", "{job}");
            // The portal's events only: the first sign-in and the lost ones.
            let total = 1 + LOST_LOGINS;
            assert_eq!(job["events_total"], total, "{job}");
            assert_eq!(job["events_sent"], total, "{job}");
            assert!(
                row.contains(&format!("{total} / {total} events, 2 batches")),
                "{row}"
            );
            shot(b, "10-dev-portal-replay").await?;

            // Validate: the SIEM has the lost sign-ins now.
            wait_for_values(&receiver, "the replayed stretch", kept, "trace_id", &lost).await;
            let replayed = values(&receiver.requests(), kept, "trace_id");
            for t in &lost {
                assert_eq!(replayed.iter().filter(|r| *r == t).count(), 1, "{t}");
            }
            Ok(())
        })
        .await;
    app.stop().await;
}

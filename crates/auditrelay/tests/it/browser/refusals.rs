//! What the UI must refuse, in the browser: a wrong token (and the keyboard's way through the
//! sign-in form), a viewer's changes even when the disabled form is forced, and a second replay
//! while one runs (Konnect's 409, in plain words).

use auditrelay_core::Role;
use fantoccini::key::Key;
use reqwest::StatusCode;
use serde_json::Value;

use super::{SLOW, WAIT, bound_destination, dev, open_tab, script, shot, sign_in};
use crate::support::browser::Browser;
use crate::support::events::{authorization, ndjson};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::{TestApp, expect_json, now};

async fn api(app: &TestApp, path: &str) -> Value {
    expect_json(app.get(path, &app.admin).await, StatusCode::OK).await
}

/// Presses Tab where the focus is, and describes what has it then: its tag, id or text, and
/// whether it shows a visible focus (`:focus-visible` with the stylesheet's outline).
async fn tab(b: &Browser) -> anyhow::Result<(String, bool)> {
    b.client()
        .active_element()
        .await?
        .send_keys(&Key::Tab)
        .await?;
    let focused = b
        .client()
        .execute(
            r##"const el = document.activeElement;
               const style = getComputedStyle(el);
               const name = el.id ? "#" + el.id : (el.innerText || "").trim();
               return [el.localName + " " + name,
                       el.matches(":focus-visible") && style.outlineStyle === "solid"
                         && parseFloat(style.outlineWidth) >= 2];"##,
            vec![],
        )
        .await?;
    Ok(serde_json::from_value(focused)?)
}

/// A wrong token is refused in words and signs nobody in; the keyboard reaches every control
/// of the form in order, each with a visible focus; the right token signs in, and out.
#[tokio::test]
async fn a_wrong_token_is_refused_and_the_form_works_from_the_keyboard() {
    let Some(browser) = Browser::start(
        "browser::refusals::a_wrong_token_is_refused_and_the_form_works_from_the_keyboard",
    )
    .await
    else {
        return;
    };
    let app = TestApp::spawn().await;
    browser
        .run(async |b| {
            b.goto(&app.url("/")).await?;
            b.wait_for_path("/ui/sign-in", WAIT).await?;
            assert_eq!(tab(b).await?, ("a Skip to main content".to_owned(), true));
            assert_eq!(tab(b).await?, ("input #token".to_owned(), true));
            b.client()
                .active_element()
                .await?
                .send_keys("kpat_not_a_token")
                .await?;
            assert_eq!(tab(b).await?, ("button Sign in".to_owned(), true));
            // Enter on the focused button submits, as a keyboard user would.
            b.client()
                .active_element()
                .await?
                .send_keys(&Key::Enter)
                .await?;
            b.wait_for_text("[role=alert]", "That token was not accepted.", WAIT)
                .await?;
            assert_eq!(b.current_path().await?, "/ui/sign-in");
            let header = b.text("header").await?;
            assert!(!header.contains("Signed in as"), "{header}");
            let cookies = b.client().get_all_cookies().await?;
            assert!(
                cookies.iter().all(|c| c.name() != "auditrelay_session"),
                "{cookies:?}"
            );
            assert_eq!(
                script(
                    b,
                    "return document.getElementById('token').getAttribute('aria-invalid');"
                )
                .await?,
                "true"
            );
            sign_in(b, &app.base, &app.admin).await?;
            assert_eq!(b.current_path().await?, "/ui/destinations");
            b.click_button("Sign out").await?;
            b.wait_for_text("[role=status]", "You are signed out.", WAIT)
                .await?;
            b.goto("/ui/destinations").await?;
            b.wait_for_path("/ui/sign-in", WAIT).await?;
            Ok(())
        })
        .await;
    app.stop().await;
}

/// Enables the fieldsets of the form `id` again, as someone who edits the page would, so that
/// the server, not the disabled controls, has to refuse what is sent.
async fn unlock(b: &Browser, id: &str) -> anyhow::Result<()> {
    script(
        b,
        &format!(
            "document.getElementById('{id}').querySelectorAll('fieldset')\
               .forEach((f) => f.disabled = false);\
             return null;"
        ),
    )
    .await?;
    Ok(())
}

/// Submits the form `id` (it has no submit button to click) and expects the refusal.
async fn submit_refused(b: &Browser, id: &str) -> anyhow::Result<()> {
    script(
        b,
        &format!("document.getElementById('{id}').submit(); return null;"),
    )
    .await?;
    b.wait_for_text("[role=alert]", "Your role can't change this.", WAIT)
        .await?;
    Ok(())
}

/// A viewer sees every tab with disabled controls and no button that changes anything; forms
/// forced through anyway are refused, and nothing changed.
#[tokio::test]
async fn a_viewer_cannot_change_anything() {
    let Some(browser) = Browser::start("browser::refusals::a_viewer_cannot_change_anything").await
    else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let id = bound_destination(&app, "http://127.0.0.1:9/hook").await;
    app.create_portal("Developer Portal", "us").await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    browser
        .run(async |b| {
            sign_in(b, &app.base, &viewer).await?;
            b.wait_for_path("/ui/destinations", WAIT).await?;
            b.wait_for_text("header", "audit-logs-viewer", WAIT).await?;
            b.wait_for_text(
                "[role=status]",
                "Your role (audit-logs-viewer) can view destinations but not change it.",
                WAIT,
            )
            .await?;
            assert_eq!(b.buttons().await?, ["Sign out"]);
            assert!(!b.links().await?.iter().any(|l| l == "New Webhook"));

            // The destination: every field disabled; a forced save changes nothing.
            b.click_link("View SumoLogic").await?;
            for field in ["Name", "Endpoint", "Authorization Header", "Log Format"] {
                assert!(!b.is_enabled(field).await?, "{field} is enabled");
            }
            assert_eq!(b.buttons().await?, ["Sign out"]);
            unlock(b, "destination-form").await?;
            b.fill("Name", "Renamed").await?;
            submit_refused(b, "destination-form").await?;
            let destination = api(&app, &format!("/v3/audit-log-destinations/{id}")).await;
            assert_eq!(destination["name"], "SumoLogic");

            // The region's Setup.
            open_tab(b, "Konnect").await?;
            b.click_link_in("#region-us", "Setup").await?;
            b.wait_for_path("/ui/audit-logs/regions/us/setup", WAIT)
                .await?;
            assert!(!b.is_enabled("Enabled").await?);
            assert!(!b.is_enabled("Endpoint").await?);
            assert_eq!(b.buttons().await?, ["Sign out"]);
            unlock(b, "webhook-form").await?;
            b.check("Enabled", false).await?;
            submit_refused(b, "webhook-form").await?;
            assert_eq!(b.current_path().await?, "/ui/audit-logs/regions/us/setup");
            let webhook = api(&app, "/us/v3/audit-log-webhook").await;
            assert_eq!(webhook["enabled"], true, "{webhook}");

            // Status: no test event to send.
            b.click_link("Status").await?;
            b.wait_for_text(
                "main",
                "Your role (audit-logs-viewer) cannot send a test event.",
                WAIT,
            )
            .await?;
            assert_eq!(b.buttons().await?, ["Sign out"]);

            // Replay.
            b.click_link("Replay").await?;
            b.wait_for_path("/ui/audit-logs/regions/us/replay", WAIT)
                .await?;
            assert!(!b.is_enabled("Replay Time Range").await?);
            assert_eq!(b.buttons().await?, ["Sign out"]);
            unlock(b, "replay-form").await?;
            b.select("Replay Time Range", "Last 1 hour").await?;
            submit_refused(b, "replay-form").await?;
            let job = api(&app, "/us/v3/audit-log-replay-job").await;
            assert_eq!(job["status"], "unconfigured", "{job}");

            // Dev Portal: no new webhook, and the form refuses.
            open_tab(b, "Dev Portal").await?;
            b.wait_for_text("#portal-webhooks", "Developer Portal", WAIT)
                .await?;
            assert!(
                !b.links()
                    .await?
                    .iter()
                    .any(|l| l == "New Dev Portal Audit Log")
            );
            Ok(())
        })
        .await;
    app.stop().await;
}

/// While a replay runs (its SIEM holds the batches), a second Send Replay is Konnect's 409,
/// told in plain words on the same page; the running job is untouched, and once it completed
/// the next one is accepted.
#[tokio::test]
async fn a_second_replay_while_one_runs_is_refused_in_plain_words() {
    let Some(browser) = Browser::start(
        "browser::refusals::a_second_replay_while_one_runs_is_refused_in_plain_words",
    )
    .await
    else {
        return;
    };
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    bound_destination(&app, &receiver.url()).await;
    let events: Vec<Value> = (0..50)
        .map(|i| {
            authorization(
                now().saturating_sub_millis(30 * 60_000),
                &format!("old-{i}"),
            )
        })
        .collect();
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    receiver.wait_for_lines(50, SLOW).await;
    receiver.set_default(Behaviour::Hold);
    browser
        .run(async |b| {
            sign_in(b, &app.base, &app.admin).await?;
            b.goto("/ui/audit-logs/regions/us/replay").await?;
            b.select("Replay Time Range", "Last 1 hour").await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("#replay-job tbody", "Running", SLOW)
                .await?;
            let running = api(&app, "/us/v3/audit-log-replay-job").await;

            // The range picker kept its choice; Send waits for the job, which can be
            // cancelled instead.
            assert_eq!(
                script(b, "return document.getElementById('range').value;").await?,
                "1h",
                "the form keeps the range just sent"
            );
            assert_eq!(
                script(
                    b,
                    "return String(document.getElementById('send-replay').disabled);"
                )
                .await?,
                "true",
                "Send waits for the job"
            );
            b.wait_for_text("main", "A replay is in progress", WAIT)
                .await?;
            assert!(b.buttons().await?.iter().any(|n| n == "Cancel replay"));

            // Forced anyway (a page opened before the job started), it is Konnect's 409 in
            // plain words.
            b.select("Replay Time Range", "Last 15 minutes").await?;
            script(
                b,
                "document.getElementById('send-replay').disabled = false; return null;",
            )
            .await?;
            b.click_button("Send Replay").await?;
            let alert = b
                .wait_for_text(
                    "[role=alert]",
                    "A replay is already running for this webhook.",
                    WAIT,
                )
                .await?;
            assert!(
                alert.contains("Wait until it has finished"),
                "says what to do: {alert}"
            );
            assert_eq!(b.current_path().await?, "/ui/audit-logs/regions/us/replay");
            assert_eq!(
                script(b, "return document.getElementById('range').value;").await?,
                "15m",
                "the form keeps what was chosen"
            );
            b.wait_for_text("#replay-job tbody", "Running", WAIT)
                .await?;
            let job = api(&app, "/us/v3/audit-log-replay-job").await;
            assert_eq!(job["status"], "running", "{job}");
            assert_eq!(job["start_at"], running["start_at"], "the same job");
            shot(b, "11-replay-already-running").await?;

            // The running job ends; the page sees it by itself, and a new replay is accepted.
            receiver.release();
            b.wait_for_text("#replay-job tbody", "Completed", SLOW)
                .await?;
            b.click_button("Send Replay").await?;
            b.wait_for_text("[role=status]", "Replay requested (Last 15 minutes: ", WAIT)
                .await?;
            Ok(())
        })
        .await;
    app.stop().await;
}

//! The web UI in real headless Chromium (`support::browser`), against a server running
//! in-process on a real port and a webhook receiver on loopback (`support::receiver`).
//!
//! The walks follow the seeds' how-tos click by click, the way their steps are written:
//! `recover_org` is "Recover Konnect audit logs" (a destination, the region's webhook, an API
//! call that reaches the SIEM, a stretch the SIEM lost, Replay → Last 6 hours → Send Replay →
//! Completed → the lost events are there), `recover_portal` is "Recover Dev Portal audit logs",
//! and `refusals` is what must not work: a wrong token, a viewer's changes, a second replay
//! while one runs. `harness` tests the harness itself.
//!
//! With `AUDITRELAY_SCREENSHOTS=docs/screenshots` (a directory, relative to the repository
//! root) the walks also save the screenshots the README shows; without it they save nothing.

mod harness;
mod operator;
mod recover_org;
mod recover_portal;
mod refusals;

use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use auditrelay::config::Config;
use auditrelay_core::format::{Value as FieldValue, parse_line};

use crate::support::browser::Browser;
use crate::support::receiver::{ReceivedRequest, TestReceiver};
use crate::support::{TestApp, expect_json};
use reqwest::StatusCode;
use serde_json::json;

/// How long a page may take to show what a step expects.
const WAIT: Duration = Duration::from_secs(10);
/// How long delivery and replay jobs may take to get somewhere (a loaded 2-core machine).
const SLOW: Duration = Duration::from_secs(60);

/// Loopback receivers need http and private endpoints; small batches (a replay of a walk's
/// events takes several) and a short flush keep the walks quick.
fn dev(c: &mut Config) {
    crate::support::dev(c);
    c.delivery.batch_max_events = 20;
}

/// A destination "SumoLogic" for `endpoint`, bound to the US region's webhook, enabled.
pub(super) async fn bound_destination(app: &TestApp, endpoint: &str) -> String {
    let body = json!({
        "name": "SumoLogic", "endpoint": endpoint, "authorization": "Bearer siem",
        "log_format": "cef",
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    crate::support::bind_webhook(app, "/us/v3/audit-log-webhook", &id, true).await;
    id
}

/// The sign-in page, the token, "Sign in", and the first page of the token's role.
async fn sign_in(b: &Browser, base: &str, token: &str) -> anyhow::Result<()> {
    b.goto(&format!("{base}/")).await?;
    b.wait_for_path("/ui/sign-in", WAIT).await?;
    b.fill("Token", token).await?;
    b.click_button("Sign in").await?;
    b.wait_for_text("header", "Signed in as", WAIT).await?;
    Ok(())
}

/// Clicks one of Audit Logs Setup's tabs ("Webhook Destination", "Konnect", "Dev Portal"). A
/// breadcrumb may have a link with the same name.
async fn open_tab(b: &Browser, name: &str) -> anyhow::Result<()> {
    b.click_link_in("nav.tabs", name).await
}

/// Saves a screenshot of the whole page as `<name>.png` in `$AUDITRELAY_SCREENSHOTS`, when it
/// is set; see the module docs.
async fn shot(b: &Browser, name: &str) -> anyhow::Result<()> {
    let Some(dir) = std::env::var_os("AUDITRELAY_SCREENSHOTS") else {
        return Ok(());
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..");
    let path = root.join(dir).join(format!("{name}.png"));
    // Keyboard focus and the mouse's hover would end up in the picture.
    b.client()
        .execute(
            "document.activeElement && document.activeElement.blur();",
            vec![],
        )
        .await?;
    b.save_page_screenshot(&path).await
}

/// Follows the page's "Refresh" link until the text of `css` contains `needle` (for pages that
/// do not update themselves, like Status).
async fn refresh_until(
    b: &Browser,
    css: &str,
    needle: &str,
    timeout: Duration,
) -> anyhow::Result<String> {
    let deadline = Instant::now() + timeout;
    loop {
        b.click_link("Refresh").await?;
        if let Ok(text) = b
            .wait_for_text(css, needle, Duration::from_millis(500))
            .await
        {
            return Ok(text);
        }
        if Instant::now() >= deadline {
            let text = b.text(css).await.unwrap_or_default();
            bail!("no {needle:?} in {css:?} within {timeout:?}; the text there: {text:?}");
        }
    }
}

/// Runs a script in the page and returns its answer as text (`null` as "").
async fn script(b: &Browser, js: &str) -> anyhow::Result<String> {
    let value = b.client().execute(js, vec![]).await?;
    Ok(match value {
        serde_json::Value::String(s) => s,
        serde_json::Value::Null => String::new(),
        other => other.to_string(),
    })
}

/// Marks the page, for [`same_page`] to tell a page updated in place from one loaded again.
async fn mark_page(b: &Browser) -> anyhow::Result<()> {
    script(b, "window.walkMark = 'this page'; return null;").await?;
    Ok(())
}

async fn same_page(b: &Browser) -> anyhow::Result<bool> {
    Ok(script(b, "return window.walkMark || null;").await? == "this page")
}

/// The trace id in the "Test event sent with trace id N." message.
fn trace_id_in(flash: &str) -> anyhow::Result<String> {
    let rest = flash
        .split("trace id ")
        .nth(1)
        .with_context(|| format!("no trace id in {flash:?}"))?;
    let id: String = rest.chars().take_while(char::is_ascii_digit).collect();
    anyhow::ensure!(!id.is_empty(), "no trace id in {flash:?}");
    Ok(id)
}

/// The value of the extension `key` of a delivered line, whatever its format.
fn field(line: &str, key: &str) -> Option<String> {
    let parsed = parse_line(line.as_bytes()).ok()?;
    let ext = parsed
        .record
        .extensions
        .into_iter()
        .find(|e| e.key == key)?;
    Some(match ext.value {
        FieldValue::Str(s) => s,
        FieldValue::Int(i) => i.to_string(),
        FieldValue::Bool(b) => b.to_string(),
    })
}

/// The `key` values of the lines of the requests `which` picks.
fn values(
    requests: &[ReceivedRequest],
    which: impl Fn(&ReceivedRequest) -> bool,
    key: &str,
) -> Vec<String> {
    requests
        .iter()
        .filter(|r| which(r))
        .flat_map(|r| &r.lines)
        .filter_map(|line| field(line, key))
        .collect()
}

/// Waits until, among the requests `which` picks, lines with each of `wanted` as their `key`
/// have arrived. Panics (the walk's failure, with what did arrive) after [`SLOW`].
async fn wait_for_values(
    receiver: &TestReceiver,
    what: &str,
    which: impl Fn(&ReceivedRequest) -> bool,
    key: &str,
    wanted: &[String],
) {
    receiver
        .wait_until(SLOW, what, |requests| {
            let seen = values(requests, &which, key);
            wanted.iter().all(|w| seen.contains(w)).then_some(())
        })
        .await;
}

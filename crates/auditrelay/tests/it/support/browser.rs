//! Browser tests in real headless Chromium, driven over WebDriver: one `chromedriver` per test
//! on a free loopback port, one fresh profile, and a thin API over `fantoccini` that finds
//! controls the way a user does (by their `<label>`, a button by its text).
//!
//! ```ignore
//! let Some(browser) = Browser::start("ui::sign_in").await else { return };
//! browser
//!     .run(async |b| {
//!         b.goto(&app.url("/")).await?;
//!         b.fill("Token", &app.admin).await?;
//!         b.click_button("Sign in").await?;
//!         b.wait_for_text("h1", "Audit Logs Setup", WAIT).await?;
//!         Ok(())
//!     })
//!     .await;
//! ```
//!
//! `chromedriver` and `chromium` are looked up on `PATH` and in `/usr/bin` (overridden by the
//! `CHROMEDRIVER` and `CHROMIUM` variables). When either is missing the test prints why and
//! returns early, except under `CI=true`, where a browser test that ran nothing must not look
//! green (the same rule as the conformance documents in `conformance.rs`).
//!
//! [`Browser::run`] is the way to write a test: when the body returns an error or panics, it
//! saves a screenshot, the page HTML and the chromedriver log under
//! `target/browser-artifacts/<test name>/` (`$CARGO_TARGET_DIR` when set), says where, and fails
//! the test; either way it ends the session and the driver. Errors are `anyhow` errors: a test
//! body is a top, and each helper adds what it was looking for to the message.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use fantoccini::elements::{Element, ElementRef};
use fantoccini::wd::Capabilities;
use fantoccini::{Client, ClientBuilder, Locator};
use futures_util::FutureExt as _;
use hyper_util::client::legacy::connect::HttpConnector;
use serde_json::{Value, json};
use tempfile::TempDir;
use tokio::process::{Child, Command};

/// The viewport every test gets (a committed screenshot is as wide, and as tall as its page).
pub const WINDOW: (u32, u32) = (1280, 900);

/// Chromium's switches. Without the background-networking ones it keeps calling Google's
/// services (component updates, sync, field trials), which on a closed network means retries
/// and noise; `--no-sandbox` because the tests run as root in a container.
const CHROMIUM_ARGS: &[&str] = &[
    "--headless=new",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-default-apps",
    "--disable-extensions",
];

/// How long chromedriver may take to answer `/status`, and a session to open, before the test
/// fails. Generous: a cold Chromium on a loaded 2-core machine takes seconds.
const DRIVER_READY: Duration = Duration::from_secs(20);
const SESSION_ATTEMPTS: u32 = 3;

/// A headless Chromium session, its chromedriver and its profile; see the module docs.
pub struct Browser {
    name: String,
    client: Client,
    /// How much taller the window is than the page's viewport.
    frame: u32,
    // Declared after `client` so it drops after it: the driver outlives the session handle.
    driver: Driver,
    /// Holds the profile (`profile/`) and the chromedriver log; removed last.
    _work: TempDir,
}

/// The failure [`Browser::try_run`] reports: the body's error or panic message, and where the
/// artifacts went (`None` when the browser could no longer produce one).
#[derive(Debug)]
pub struct BrowserFailure {
    pub message: String,
    pub screenshot: Option<PathBuf>,
    pub html: Option<PathBuf>,
    pub dir: PathBuf,
}

impl std::fmt::Display for BrowserFailure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "browser test failed: {}", self.message)?;
        write!(f, "\n  artifacts: {}", self.dir.display())?;
        for (what, path) in [("screenshot", &self.screenshot), ("page HTML", &self.html)] {
            match path {
                Some(path) => write!(f, "\n  {what}: {}", path.display())?,
                None => write!(f, "\n  {what}: not captured")?,
            }
        }
        Ok(())
    }
}

impl Browser {
    /// Starts chromedriver and opens a session, or returns `None` (after saying why) when
    /// Chromium is not installed and this is not CI. Panics when the tools are there but do
    /// not start: a broken browser setup is a failure, not a skip.
    pub async fn start(test_name: &str) -> Option<Browser> {
        Self::start_in(test_name, None).await
    }

    /// Like [`start`](Self::start), with the browser's time zone set (`TZ`, an IANA name such
    /// as `America/New_York`), for pages that show local times.
    pub async fn start_in(test_name: &str, time_zone: Option<&str>) -> Option<Browser> {
        let (chromedriver, chromium) = tools()?;
        let name = sanitize(test_name);
        let artifacts = artifacts_dir(&name);
        // A directory left by an earlier failing run would be mistaken for this run's.
        if artifacts.exists() {
            std::fs::remove_dir_all(&artifacts)
                .unwrap_or_else(|e| panic!("cannot clear {}: {e}", artifacts.display()));
        }
        let work = tempfile::tempdir().expect("temp dir");
        let driver = Driver::start(&chromedriver, work.path(), time_zone)
            .await
            .unwrap_or_else(|e| panic!("chromedriver does not start: {e:#}"));
        let caps = capabilities(&chromium, &work.path().join("profile"));
        let client = match open_session(&driver.url, caps).await {
            Ok(client) => client,
            Err(e) => panic!(
                "no Chromium session through {}: {e:#}\n{}",
                chromedriver.display(),
                driver.log_tail()
            ),
        };
        // Headless Chromium keeps room for a window frame: the window is made that much
        // taller so that the page itself gets `WINDOW`.
        let frame = match client.execute(FRAME_HEIGHT, vec![]).await {
            Ok(frame) => frame
                .as_u64()
                .and_then(|f| u32::try_from(f).ok())
                .unwrap_or(0),
            Err(e) => panic!("no window measurements: {e}"),
        };
        if frame > 0
            && let Err(e) = client.set_window_size(WINDOW.0, WINDOW.1 + frame).await
        {
            panic!("cannot size the window: {e}");
        }
        Some(Browser {
            name,
            client,
            frame,
            driver,
            _work: work,
        })
    }

    /// Makes the page `width` CSS pixels wide (a phone is about 400), keeping its height.
    pub async fn resize(&self, width: u32) -> anyhow::Result<()> {
        self.client
            .set_window_size(width, WINDOW.1 + self.frame)
            .await?;
        Ok(())
    }

    /// Runs a test body against this browser and ends the session. On an error or a panic it
    /// saves the artifacts (see the module docs) and fails the test with their paths.
    pub async fn run(self, body: impl AsyncFnOnce(&Browser) -> anyhow::Result<()>) {
        if let Err(failure) = self.try_run(body).await {
            panic!("{failure}");
        }
    }

    /// [`run`](Self::run), but reports the failure instead of panicking.
    pub async fn try_run(
        self,
        body: impl AsyncFnOnce(&Browser) -> anyhow::Result<()>,
    ) -> Result<(), BrowserFailure> {
        let outcome = std::panic::AssertUnwindSafe(body(&self))
            .catch_unwind()
            .await;
        let message = match outcome {
            Ok(Ok(())) => None,
            Ok(Err(e)) => Some(format!("{e:#}")),
            Err(panic) => Some(panic_message(&*panic)),
        };
        let result = match message {
            None => Ok(()),
            Some(message) => Err(self.save_artifacts(message).await),
        };
        self.close().await;
        result
    }

    /// Ends the session and stops chromedriver. [`run`](Self::run) calls it; a test that does
    /// not use `run` should. (Dropping a `Browser` also stops both, less politely.)
    pub async fn close(self) {
        if let Err(e) = self.client.clone().close().await {
            eprintln!("[{}] closing the WebDriver session: {e}", self.name);
        }
        self.driver.stop().await;
    }

    /// The fantoccini client, for what the helpers below do not cover.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Navigates to `url`, absolute or relative to the current page (`/setup` once on the app).
    pub async fn goto(&self, url: &str) -> anyhow::Result<()> {
        self.client
            .goto(url)
            .await
            .with_context(|| format!("goto {url}"))
    }

    pub async fn current_url(&self) -> anyhow::Result<url::Url> {
        Ok(self.client.current_url().await?)
    }

    /// The path of the current URL, without query or fragment (`/setup/webhooks`).
    pub async fn current_path(&self) -> anyhow::Result<String> {
        Ok(self.current_url().await?.path().to_owned())
    }

    /// Types `value` into the control labelled `field` (or matching `field` as a CSS selector
    /// when no label has that text), replacing what was there. Date and time inputs are set
    /// directly: typing into them depends on the browser's locale.
    pub async fn fill(&self, field: &str, value: &str) -> anyhow::Result<()> {
        let control = self.control(field).await?;
        let kind = control.attr("type").await?.unwrap_or_default();
        if matches!(
            kind.as_str(),
            "date" | "time" | "datetime-local" | "month" | "week"
        ) {
            self.client
                .execute(
                    SET_VALUE,
                    vec![serde_json::to_value(&control)?, json!(value)],
                )
                .await
                .with_context(|| format!("set {field:?} to {value:?}"))?;
            return Ok(());
        }
        control
            .clear()
            .await
            .with_context(|| format!("clear {field:?}"))?;
        control
            .send_keys(value)
            .await
            .with_context(|| format!("type into {field:?}"))
    }

    /// Chooses the option whose text is `option` in the `<select>` labelled `field`.
    pub async fn select(&self, field: &str, option: &str) -> anyhow::Result<()> {
        let control = self.control(field).await?;
        let found = self
            .client
            .execute(
                FIND_OPTION,
                vec![serde_json::to_value(&control)?, json!(option)],
            )
            .await?;
        let option_el = self.element_or_error(found, &format!("option {option:?} of {field:?}"))?;
        option_el
            .click()
            .await
            .with_context(|| format!("choose {option:?} in {field:?}"))
    }

    /// Ticks (`true`) or clears (`false`) the checkbox, switch or radio labelled `field`.
    pub async fn check(&self, field: &str, checked: bool) -> anyhow::Result<()> {
        let control = self.control(field).await?;
        if control.is_selected().await? != checked {
            control
                .click()
                .await
                .with_context(|| format!("click {field:?}"))?;
        }
        let now = control.is_selected().await?;
        anyhow::ensure!(now == checked, "{field:?} is still checked={now}");
        Ok(())
    }

    /// Clicks the one visible button (`<button>`, an `<input>` button, `role=button|tab`)
    /// whose text or accessible name is `text`.
    pub async fn click_button(&self, text: &str) -> anyhow::Result<()> {
        self.find("button", text)
            .await?
            .click()
            .await
            .with_context(|| format!("click button {text:?}"))
    }

    /// Clicks the one visible link whose text or accessible name is `text`.
    pub async fn click_link(&self, text: &str) -> anyhow::Result<()> {
        self.find("link", text)
            .await?
            .click()
            .await
            .with_context(|| format!("click link {text:?}"))
    }

    /// [`click_link`](Self::click_link) among the descendants of the element matching
    /// `within` (a CSS selector): the "Setup" of one region's card, where every card has one.
    pub async fn click_link_in(&self, within: &str, text: &str) -> anyhow::Result<()> {
        self.find_in(Some(within), "link", text)
            .await?
            .click()
            .await
            .with_context(|| format!("click link {text:?} in {within:?}"))
    }

    /// Whether the control labelled `field` can be used (not disabled, itself or by its
    /// fieldset).
    pub async fn is_enabled(&self, field: &str) -> anyhow::Result<bool> {
        let control = self.control(field).await?;
        Ok(control.is_enabled().await?)
    }

    /// The names of the visible buttons, as [`click_button`](Self::click_button) reads them:
    /// what a test asserts a button's absence against.
    pub async fn buttons(&self) -> anyhow::Result<Vec<String>> {
        self.visible_names("button").await
    }

    /// The names of the visible links.
    pub async fn links(&self) -> anyhow::Result<Vec<String>> {
        self.visible_names("link").await
    }

    async fn visible_names(&self, kind: &str) -> anyhow::Result<Vec<String>> {
        let names = self
            .client
            .execute(VISIBLE_NAMES, vec![json!(kind)])
            .await
            .with_context(|| format!("list the visible {kind}s"))?;
        Ok(serde_json::from_value(names)?)
    }

    /// The rendered text of the first element matching `css`.
    pub async fn text(&self, css: &str) -> anyhow::Result<String> {
        let el = self
            .client
            .find(Locator::Css(css))
            .await
            .with_context(|| format!("find {css:?}"))?;
        Ok(el.text().await?)
    }

    /// Polls until the rendered text of the elements matching `css` contains `needle`, and
    /// returns that text; fails after `timeout` with what was there instead. Use it after
    /// anything that navigates or updates the page, instead of sleeping.
    pub async fn wait_for_text(
        &self,
        css: &str,
        needle: &str,
        timeout: Duration,
    ) -> anyhow::Result<String> {
        let deadline = Instant::now() + timeout;
        loop {
            let text = self.client.execute(TEXT_OF_ALL, vec![json!(css)]).await?;
            let text = text.as_str().unwrap_or_default().to_owned();
            if text.contains(needle) {
                return Ok(text);
            }
            if Instant::now() >= deadline {
                bail!("no {needle:?} in {css:?} within {timeout:?}; the text there: {text:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Polls until the current path is `path`; fails after `timeout` with the path seen.
    pub async fn wait_for_path(&self, path: &str, timeout: Duration) -> anyhow::Result<()> {
        let deadline = Instant::now() + timeout;
        loop {
            let now = self.current_path().await?;
            if now == path {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("still at {now:?} after {timeout:?}, expected {path:?}");
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// The current page as the browser holds it now (after scripts), not as it was served.
    pub async fn html(&self) -> anyhow::Result<String> {
        Ok(self.client.source().await?)
    }

    /// A PNG of the viewport.
    pub async fn screenshot_png(&self) -> anyhow::Result<Vec<u8>> {
        Ok(self.client.screenshot().await?)
    }

    /// Writes a PNG of the viewport to `path`.
    pub async fn save_screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let png = self.screenshot_png().await?;
        write_png(path, &png)
    }

    /// Writes a PNG of the whole page to `path` (for the screenshots committed under
    /// `docs/`): the window takes the height of the page's content for the shot (at least
    /// 400 pixels, at most four times [`WINDOW`]'s), then returns to [`WINDOW`].
    pub async fn save_page_screenshot(&self, path: &Path) -> anyhow::Result<()> {
        let height = self
            .client
            .execute(PAGE_HEIGHT, vec![])
            .await?
            .as_u64()
            .context("the page's height")?;
        let height = u32::try_from(height)
            .unwrap_or(u32::MAX)
            .clamp(400, 4 * WINDOW.1);
        self.client
            .set_window_size(WINDOW.0, height + self.frame)
            .await?;
        let png = self.screenshot_png().await;
        self.client
            .set_window_size(WINDOW.0, WINDOW.1 + self.frame)
            .await?;
        write_png(path, &png?)
    }

    /// The directory this test's failure artifacts go to.
    pub fn artifacts_dir(&self) -> PathBuf {
        artifacts_dir(&self.name)
    }

    /// The form control for `field`: by label text, then `aria-label`, then as a CSS selector.
    async fn control(&self, field: &str) -> anyhow::Result<Element> {
        self.find("control", field).await
    }

    async fn find(&self, kind: &str, text: &str) -> anyhow::Result<Element> {
        self.find_in(None, kind, text).await
    }

    async fn find_in(
        &self,
        within: Option<&str>,
        kind: &str,
        text: &str,
    ) -> anyhow::Result<Element> {
        let what = match within {
            Some(within) => format!("{kind} {text:?} in {within:?}"),
            None => format!("{kind} {text:?}"),
        };
        let found = self
            .client
            .execute(FIND, vec![json!(kind), json!(text), json!(within)])
            .await
            .with_context(|| format!("look for {what}"))?;
        self.element_or_error(found, &what)
    }

    /// A script's answer: an element reference, or `{"error": "..."}` saying what was wrong.
    fn element_or_error(&self, found: Value, what: &str) -> anyhow::Result<Element> {
        if let Some(id) = found.get(ELEMENT_KEY).and_then(Value::as_str) {
            return Ok(Element::from_element_id(
                self.client.clone(),
                ElementRef::from(id.to_owned()),
            ));
        }
        match found.get("error").and_then(Value::as_str) {
            Some(error) => bail!("{what}: {error}"),
            None => bail!("{what}: unexpected script result {found}"),
        }
    }

    async fn save_artifacts(&self, message: String) -> BrowserFailure {
        let dir = self.artifacts_dir();
        let mut failure = BrowserFailure {
            message,
            screenshot: None,
            html: None,
            dir: dir.clone(),
        };
        if let Err(e) = std::fs::create_dir_all(&dir) {
            eprintln!("[{}] cannot create {}: {e}", self.name, dir.display());
            return failure;
        }
        let png = dir.join("screenshot.png");
        match self.screenshot_png().await {
            Ok(bytes) => match std::fs::write(&png, bytes) {
                Ok(()) => failure.screenshot = Some(png),
                Err(e) => eprintln!("[{}] writing {}: {e}", self.name, png.display()),
            },
            Err(e) => eprintln!("[{}] no screenshot: {e:#}", self.name),
        }
        let html = dir.join("page.html");
        let source = match (self.current_url().await, self.html().await) {
            // The URL is not in the HTML, and it is the first thing one asks.
            (Ok(url), Ok(source)) => Ok(format!("<!-- {url} -->\n{source}")),
            (_, source) => source,
        };
        match source {
            Ok(source) => match std::fs::write(&html, source) {
                Ok(()) => failure.html = Some(html),
                Err(e) => eprintln!("[{}] writing {}: {e}", self.name, html.display()),
            },
            Err(e) => eprintln!("[{}] no page HTML: {e:#}", self.name),
        }
        let _ = std::fs::copy(&self.driver.log, dir.join("chromedriver.log"));
        failure
    }
}

/// The W3C key of an element reference in a script result.
const ELEMENT_KEY: &str = "element-6066-11e4-a52e-4f735466cecf";

/// Finds one element of a kind by its text, the way a user names it; names are compared with
/// whitespace collapsed. A control is found by its `<label>` (`for`, or the control inside), then
/// `aria-label`, then as a CSS selector. Of several matches only the visible ones count (a
/// hidden tab's form has the same labels), and more than one is an error: clicking the first of
/// two "Replay" buttons is how a test passes for the wrong reason. A third argument, a CSS
/// selector, limits the search to that element's descendants.
const FIND: &str = r#"
const [kind, wanted, within] = arguments;
const root = within ? document.querySelector(within) : document;
if (!root) return { error: `nothing on the page matches ${JSON.stringify(within)}` };
const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
const visible = (el) => el.getClientRects().length > 0;
// A checkbox styled as a switch may be hidden behind its visible label.
const usable = (el) => visible(el) || [...(el.labels || [])].some(visible);
const name = (el) => norm(el.innerText || el.value || el.getAttribute("aria-label"));
let hits = [];
let seen = [];
if (kind === "control") {
  for (const label of root.querySelectorAll("label")) {
    const text = norm(label.innerText || label.textContent);
    if (visible(label)) seen.push(text);
    if (text === wanted && label.control) hits.push(label.control);
  }
  if (hits.length === 0) {
    hits = [...root.querySelectorAll("input, select, textarea")].filter(
      (el) => norm(el.getAttribute("aria-label")) === wanted);
  }
  if (hits.length === 0) {
    try { hits = [...root.querySelectorAll(wanted)]; } catch (_) { /* not a selector */ }
  }
  hits = [...new Set(hits)];
} else {
  const selector = kind === "link" ? "a[href], [role=link]"
    : "button, input[type=submit], input[type=button], input[type=reset], [role=button], [role=tab]";
  const all = [...root.querySelectorAll(selector)];
  seen = all.filter(visible).map(name);
  hits = all.filter((el) => name(el) === wanted || norm(el.getAttribute("aria-label")) === wanted);
}
if (hits.length > 1) hits = hits.filter(usable);
if (hits.length === 1) return hits[0];
if (hits.length === 0) {
  const what = kind === "control" ? "labels" : kind + "s";
  return { error: `not found; the visible ${what} on the page: ${JSON.stringify(seen)}` };
}
return { error: `${hits.length} visible elements match; name one with a CSS selector or make the text unique` };
"#;

/// The `<option>` of a `<select>` whose text is the one wanted.
const FIND_OPTION: &str = r#"
const [select, wanted] = arguments;
const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
if (!select.options) return { error: `is a <${select.localName}>, not a <select>` };
const options = [...select.options];
const hit = options.find((o) => norm(o.text) === wanted);
return hit || { error: `no such option; the options: ${JSON.stringify(options.map((o) => norm(o.text)))}` };
"#;

/// Sets an input's value as a user's edit would, events included.
const SET_VALUE: &str = r#"
const [input, value] = arguments;
input.focus();
input.value = value;
input.dispatchEvent(new Event("input", { bubbles: true }));
input.dispatchEvent(new Event("change", { bubbles: true }));
"#;

/// The names of the visible links or buttons, read as `FIND` reads them.
const VISIBLE_NAMES: &str = r#"
const norm = (s) => (s || "").replace(/\s+/g, " ").trim();
const selector = arguments[0] === "link" ? "a[href], [role=link]"
  : "button, input[type=submit], input[type=button], input[type=reset], [role=button], [role=tab]";
return [...document.querySelectorAll(selector)]
  .filter((el) => el.getClientRects().length > 0)
  .map((el) => norm(el.innerText || el.value || el.getAttribute("aria-label")));
"#;

/// The height of the page's content, in CSS pixels (the document's own height is at least the
/// viewport's).
const PAGE_HEIGHT: &str = r#"
return Math.ceil(document.body.getBoundingClientRect().height);
"#;

/// How much taller the window is than its viewport.
const FRAME_HEIGHT: &str = r#"
return Math.max(0, window.outerHeight - window.innerHeight);
"#;

/// The rendered text of every element matching a selector, one per line.
const TEXT_OF_ALL: &str = r#"
return [...document.querySelectorAll(arguments[0])].map((el) => el.innerText).join("\n");
"#;

/// A running chromedriver on a loopback port, with its log file.
struct Driver {
    child: Child,
    url: String,
    log: PathBuf,
    stopped: bool,
}

impl Driver {
    /// Starts chromedriver on a free port and waits until it answers. A port taken between
    /// choosing it and chromedriver binding it makes chromedriver exit; that is retried.
    async fn start(
        chromedriver: &Path,
        work: &Path,
        time_zone: Option<&str>,
    ) -> anyhow::Result<Driver> {
        let log = work.join("chromedriver.log");
        let mut last_error = None;
        for _ in 0..3 {
            let port = super::process::free_port();
            let mut command = Command::new(chromedriver);
            if let Some(zone) = time_zone {
                // Chromium takes its time zone from the environment it inherits.
                command.env("TZ", zone);
            }
            let child = command
                .arg(format!("--port={port}"))
                .arg(format!("--log-path={}", log.display()))
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .with_context(|| format!("spawn {}", chromedriver.display()))?;
            let mut driver = Driver {
                child,
                url: format!("http://127.0.0.1:{port}"),
                log: log.clone(),
                stopped: false,
            };
            match driver.wait_ready().await {
                Ok(()) => return Ok(driver),
                Err(e) => last_error = Some(e.context(driver.log_tail())),
            }
        }
        Err(last_error.expect("at least one attempt"))
    }

    async fn wait_ready(&mut self) -> anyhow::Result<()> {
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(2))
            .build()?;
        let deadline = Instant::now() + DRIVER_READY;
        loop {
            if let Some(status) = self.child.try_wait()? {
                bail!("chromedriver exited: {status}");
            }
            if let Ok(resp) = http.get(format!("{}/status", self.url)).send().await
                && let Ok(body) = resp.json::<Value>().await
                && body["value"]["ready"] == true
            {
                return Ok(());
            }
            if Instant::now() >= deadline {
                bail!("chromedriver did not answer within {DRIVER_READY:?}");
            }
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    }

    /// Asks chromedriver to quit its browsers and exit, then makes sure it has.
    async fn stop(mut self) {
        self.stopped = true;
        let http = reqwest::Client::builder()
            .timeout(Duration::from_secs(5))
            .build()
            .expect("HTTP client");
        let _ = http.get(format!("{}/shutdown", self.url)).send().await;
        if tokio::time::timeout(Duration::from_secs(5), self.child.wait())
            .await
            .is_err()
        {
            let _ = self.child.kill().await;
        }
    }

    /// The end of chromedriver's log, for a message about why it or a session failed.
    fn log_tail(&self) -> String {
        let log = std::fs::read_to_string(&self.log).unwrap_or_default();
        let lines: Vec<&str> = log.lines().collect();
        let tail = lines[lines.len().saturating_sub(30)..].join("\n");
        format!(
            "chromedriver log ({}), last lines:\n{tail}",
            self.log.display()
        )
    }
}

impl Drop for Driver {
    /// Reached without [`Driver::stop`] when a test panicked outside [`Browser::run`]. Killing
    /// chromedriver alone (`kill_on_drop`) would leave Chromium running, so it is first asked
    /// to shut down, synchronously, since `Drop` cannot wait for a future.
    fn drop(&mut self) {
        if self.stopped {
            return;
        }
        use std::io::{Read as _, Write as _};
        let addr = self.url.trim_start_matches("http://");
        if let Ok(mut stream) = std::net::TcpStream::connect(addr) {
            let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
            let _ = stream.write_all(
                format!("GET /shutdown HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n")
                    .as_bytes(),
            );
            let _ = stream.read_to_end(&mut Vec::new());
        }
    }
}

/// Opens a session, retrying briefly: under load, Chromium occasionally fails to start
/// ("DevToolsActivePort file doesn't exist", "chrome not reachable") and the next try works.
async fn open_session(driver_url: &str, caps: Capabilities) -> anyhow::Result<Client> {
    let mut attempt = 1;
    loop {
        let result = ClientBuilder::new(HttpConnector::new())
            .capabilities(caps.clone())
            .connect(driver_url)
            .await;
        match result {
            Ok(client) => return Ok(client),
            Err(e) if attempt < SESSION_ATTEMPTS => {
                eprintln!("opening a Chromium session failed (attempt {attempt}), retrying: {e}");
                attempt += 1;
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            Err(e) => return Err(e).context(format!("{SESSION_ATTEMPTS} attempts")),
        }
    }
}

fn capabilities(chromium: &Path, profile: &Path) -> Capabilities {
    let mut args: Vec<String> = CHROMIUM_ARGS.iter().map(|&a| a.to_owned()).collect();
    args.push(format!("--user-data-dir={}", profile.display()));
    args.push(format!("--window-size={},{}", WINDOW.0, WINDOW.1));
    let caps = json!({
        "browserName": "chrome",
        // Lets a test serve the UI over TLS with a generated certificate (`Secure` cookies).
        "acceptInsecureCerts": true,
        // No implicit waits (tests poll with a deadline); a hung page fails within a minute.
        "timeouts": { "implicit": 0, "pageLoad": 30_000, "script": 10_000 },
        "goog:chromeOptions": {
            "binary": chromium.display().to_string(),
            "args": args,
        },
    });
    match caps {
        Value::Object(map) => map,
        _ => unreachable!("a JSON object literal"),
    }
}

/// The chromedriver and Chromium binaries, or `None` (after saying why) when one is missing.
fn tools() -> Option<(PathBuf, PathBuf)> {
    let chromedriver = locate("CHROMEDRIVER", "chromedriver");
    let chromium = locate("CHROMIUM", "chromium");
    match (chromedriver, chromium) {
        (Some(driver), Some(chromium)) => Some((driver, chromium)),
        (driver, chromium) => {
            let missing: Vec<&str> = [("chromedriver", driver), ("chromium", chromium)]
                .into_iter()
                .filter(|(_, path)| path.is_none())
                .map(|(name, _)| name)
                .collect();
            let reason = format!(
                "{} not found ($CHROMEDRIVER/$CHROMIUM, PATH, /usr/bin): install chromium \
                 chromium-driver",
                missing.join(" and ")
            );
            super::skip_unless_ci(&reason);
            None
        }
    }
}

/// `$var` when set (and a file), else `name` on `PATH`, else `/usr/bin/<name>`.
fn locate(var: &str, name: &str) -> Option<PathBuf> {
    if let Some(path) = std::env::var_os(var) {
        let path = PathBuf::from(path);
        assert!(
            path.is_file(),
            "${var} is {}, which is not a file",
            path.display()
        );
        return Some(path);
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .chain([PathBuf::from("/usr/bin")])
        .map(|dir| dir.join(name))
        .find(|candidate| candidate.is_file())
}

fn write_png(path: &Path, png: &[u8]) -> anyhow::Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent).with_context(|| format!("create {}", parent.display()))?;
    }
    std::fs::write(path, png).with_context(|| format!("write {}", path.display()))
}

/// `<target>/browser-artifacts/<name>`. The target directory is the one this test binary was
/// built into (`$CARGO_TARGET_DIR` or the workspace's `target/`), known from
/// `CARGO_TARGET_TMPDIR`, which Cargo sets to `<target>/tmp` for integration tests.
fn artifacts_dir(name: &str) -> PathBuf {
    let tmp = Path::new(env!("CARGO_TARGET_TMPDIR"));
    tmp.parent()
        .unwrap_or(tmp)
        .join("browser-artifacts")
        .join(name)
}

/// A test name as one directory name (`ui::sign_in` → `ui-sign_in`).
fn sanitize(name: &str) -> String {
    let name = name.replace("::", "-");
    name.chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.') {
                c
            } else {
                '_'
            }
        })
        .collect()
}

fn panic_message(panic: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = panic.downcast_ref::<&str>() {
        format!("panicked: {s}")
    } else if let Some(s) = panic.downcast_ref::<String>() {
        format!("panicked: {s}")
    } else {
        "panicked".to_owned()
    }
}

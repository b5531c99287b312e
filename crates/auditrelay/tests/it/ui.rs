//! The web UI at the HTTP level, with a cookie-keeping client that follows no redirects (so
//! each 303 is seen): signing in and out, session expiry, CSRF and origin checks, every form
//! with its result checked through the API, the write-only authorization value, the 409s in
//! plain words, each role's view, the security headers and the embedded assets.

use std::time::{Duration, Instant};

use auditrelay_core::{EventType, PortalId, Role};
use reqwest::header::HeaderMap;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};
use uuid::Uuid;

use crate::support::events::{authorization, ndjson};
use crate::support::receiver::{Behaviour, TestReceiver};
use crate::support::{TestApp, bind_webhook, dev, eventually, expect_json, now};

/// A browser without JavaScript: keeps the session cookie, sends `Origin` like a browser does
/// on a form POST, and shows every redirect instead of following it.
pub(crate) struct Browser {
    pub(crate) base: String,
    client: reqwest::Client,
    cookie: Option<String>,
    /// The `Set-Cookie` of the last answer that had one.
    last_set_cookie: Option<String>,
}

/// One answer, with its body as text.
pub(crate) struct Page {
    pub(crate) status: StatusCode,
    headers: HeaderMap,
    pub(crate) html: String,
}

impl Page {
    /// The body with askama's escapes undone, as a person reads it.
    fn text(&self) -> String {
        self.html
            .replace("&#39;", "'")
            .replace("&#34;", "\"")
            .replace("&#60;", "<")
            .replace("&#62;", ">")
            .replace("&#38;", "&")
    }

    pub(crate) fn has(&self, needle: &str) -> bool {
        self.text().contains(needle)
    }

    #[track_caller]
    fn assert_has(&self, needle: &str) {
        assert!(self.has(needle), "{needle:?} not in:\n{}", self.html);
    }

    #[track_caller]
    fn assert_lacks(&self, needle: &str) {
        assert!(
            !self.has(needle),
            "{needle:?} unexpectedly in:\n{}",
            self.html
        );
    }

    fn location(&self) -> Option<&str> {
        self.headers.get("location").and_then(|v| v.to_str().ok())
    }

    #[track_caller]
    fn assert_redirect(&self, to: &str) {
        assert_eq!(self.status, StatusCode::SEE_OTHER, "{}", self.html);
        assert_eq!(self.location(), Some(to));
    }

    /// The CSRF token of the page's forms.
    #[track_caller]
    pub(crate) fn csrf(&self) -> String {
        let marker = "name=\"csrf\" value=\"";
        let start = self.html.find(marker).expect("a form with a CSRF token") + marker.len();
        let end = self.html[start..].find('"').unwrap();
        self.html[start..start + end].to_owned()
    }

    fn header(&self, name: &str) -> Option<String> {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    }

    /// The `role="alert"` message, which a page has when something was refused.
    #[track_caller]
    fn assert_alert(&self, message: &str) {
        let text = self.text();
        let alert = text
            .find("role=\"alert\"")
            .unwrap_or_else(|| panic!("no alert in:\n{}", self.html));
        let end = text[alert..]
            .find("</div>")
            .map_or(text.len(), |e| alert + e);
        assert!(
            text[alert..end].contains(message),
            "{message:?} not in the alert {:?}",
            &text[alert..end]
        );
    }
}

/// Where a request without a session goes: the sign-in page, saying why (`why`, a query
/// prefix such as `"expired=1&"`), and back to `path` afterwards.
fn sign_in_then(path: &str, why: &str) -> String {
    let next: String = url::form_urlencoded::byte_serialize(path.as_bytes()).collect();
    format!("/ui/sign-in?{why}next={next}")
}

impl Browser {
    fn new(app: &TestApp) -> Self {
        Self::at(&app.base)
    }

    /// The id of its session, as its cookie holds it.
    pub(crate) fn session_id(&self) -> Option<String> {
        self.cookie.clone()
    }

    /// A browser that sends `id` as its session's cookie (one kept from before, say).
    pub(crate) fn with_session(base: &str, id: String) -> Self {
        Self {
            cookie: Some(id),
            ..Self::at(base)
        }
    }

    /// A browser with no session yet, whose requests go to `base`.
    pub(crate) fn at(base: &str) -> Self {
        Self {
            base: base.to_owned(),
            client: reqwest::Client::builder()
                .redirect(reqwest::redirect::Policy::none())
                .timeout(Duration::from_secs(30))
                .build()
                .unwrap(),
            cookie: None,
            last_set_cookie: None,
        }
    }

    async fn send(&mut self, request: reqwest::RequestBuilder) -> Page {
        let request = match &self.cookie {
            Some(id) => request.header("cookie", format!("auditrelay_session={id}")),
            None => request,
        };
        let response = request.send().await.expect("request sent");
        let status = response.status();
        let headers = response.headers().clone();
        if let Some(set) = headers.get("set-cookie").and_then(|v| v.to_str().ok()) {
            self.last_set_cookie = Some(set.to_owned());
            let value = set
                .split(';')
                .next()
                .and_then(|pair| pair.strip_prefix("auditrelay_session="))
                .unwrap_or_default();
            self.cookie = (!value.is_empty() && !set.contains("Max-Age=0")).then(|| value.into());
        }
        let html = response.text().await.unwrap();
        Page {
            status,
            headers,
            html,
        }
    }

    pub(crate) async fn get(&mut self, path: &str) -> Page {
        let request = self.client.get(format!("{}{path}", self.base));
        self.send(request).await
    }

    /// A page's own refresh, as `app.js` fetches it.
    async fn refresh(&mut self, path: &str) -> Page {
        let request = self
            .client
            .get(format!("{}{path}", self.base))
            .header("x-auditrelay-refresh", "1");
        self.send(request).await
    }

    /// A form POST as a browser sends it (same-origin `Origin`, urlencoded).
    pub(crate) async fn post(&mut self, path: &str, fields: &[(&str, &str)]) -> Page {
        let request = self
            .client
            .post(format!("{}{path}", self.base))
            .header("origin", self.base.clone());
        self.send(urlencoded(request, fields)).await
    }

    /// Reloads `path` until it shows `needle`.
    async fn wait_for(&mut self, path: &str, needle: &str, timeout: Duration) -> Page {
        let deadline = Instant::now() + timeout;
        loop {
            let page = self.get(path).await;
            if page.has(needle) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} never on {path}:\n{}",
                page.html
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Reloads `path` until it no longer shows `needle`.
    async fn wait_for_absence(&mut self, path: &str, needle: &str, timeout: Duration) -> Page {
        let deadline = Instant::now() + timeout;
        loop {
            let page = self.get(path).await;
            if !page.has(needle) {
                return page;
            }
            assert!(
                Instant::now() < deadline,
                "{needle:?} still on {path}:\n{}",
                page.html
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Opens `page`, takes its CSRF token, and posts `fields` to `action`.
    async fn submit(&mut self, page: &str, action: &str, fields: &[(&str, &str)]) -> Page {
        let opened = self.get(page).await;
        assert_eq!(opened.status, StatusCode::OK, "{page}: {}", opened.html);
        let csrf = opened.csrf();
        let mut fields = fields.to_vec();
        fields.push(("csrf", &csrf));
        self.post(action, &fields).await
    }

    pub(crate) async fn sign_in(&mut self, token: &str) -> Page {
        let page = self.post("/ui/sign-in", &[("token", token)]).await;
        assert_eq!(page.status, StatusCode::SEE_OTHER, "{}", page.html);
        assert!(self.cookie.is_some(), "signed in without a cookie");
        page
    }
}

/// A urlencoded form body, as a browser sends it.
fn urlencoded(
    request: reqwest::RequestBuilder,
    fields: &[(&str, &str)],
) -> reqwest::RequestBuilder {
    request
        .header("content-type", "application/x-www-form-urlencoded")
        .body(serde_urlencoded::to_string(fields).unwrap())
}

/// A destination made through the API; returns its id.
async fn destination(app: &TestApp, name: &str, endpoint: &str) -> String {
    let body = json!({
        "name": name, "endpoint": endpoint, "authorization": "Bearer siem", "log_format": "json",
    });
    let resp = app
        .post("/v3/audit-log-destinations", &app.admin, body)
        .await;
    let created = expect_json(resp, StatusCode::CREATED).await;
    created["id"].as_str().unwrap().to_owned()
}

async fn api_get(app: &TestApp, path: &str) -> (StatusCode, Value) {
    let resp = app.get(path, &app.admin).await;
    let status = resp.status();
    let text = resp.text().await.unwrap();
    (status, serde_json::from_str(&text).unwrap_or(Value::Null))
}

async fn destination_count(app: &TestApp) -> usize {
    let (_, list) = api_get(app, "/v3/audit-log-destinations?page%5Bsize%5D=100").await;
    list["data"].as_array().unwrap().len()
}

/// Signing in with a token, the 401 for a wrong one, the cookie's flags, and signing out.
#[tokio::test]
async fn signing_in_and_out() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);

    let page = browser.get("/ui/sign-in").await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_has(r#"<form id="sign-in" action="/ui/sign-in" method="post""#);
    page.assert_has(r#"<label for="token">Token</label>"#);
    page.assert_has(r#"<input id="token" name="token" type="password" autocomplete="off""#);
    page.assert_has(r#"<button type="submit">Sign in</button>"#);

    for wrong in ["kpat_notatoken", "", "Bearer x"] {
        let page = browser.post("/ui/sign-in", &[("token", wrong)]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED, "{wrong:?}");
        page.assert_alert("That token was not accepted.");
        assert!(browser.last_set_cookie.is_none(), "a cookie for {wrong:?}");
    }

    let page = browser.sign_in(&app.admin).await;
    page.assert_redirect("/ui/destinations");
    let cookie = browser.last_set_cookie.clone().unwrap();
    assert!(cookie.starts_with("auditrelay_session="), "{cookie}");
    for flag in ["HttpOnly", "SameSite=Strict", "Path=/"] {
        assert!(cookie.contains(flag), "{flag} missing: {cookie}");
    }
    assert!(!cookie.contains("Secure"), "plain HTTP: {cookie}");
    let id = browser.cookie.clone().unwrap();
    assert_eq!(id.len(), 64, "256 bits, hex");

    let page = browser.get("/ui/destinations").await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_has("Signed in as <strong>bootstrap-admin</strong>");
    page.assert_has("org-admin");
    page.assert_has(r#"<form action="/ui/sign-out" method="post">"#);
    page.assert_has(r#"<button type="submit">Sign out</button>"#);

    // Signing in is audited like any token use: the failures and the success.
    let attempts: Vec<String> = app
        .stored("us", None, Some(EventType::Authentication))
        .await
        .into_iter()
        .filter(|e| e.event.uri.as_deref() == Some("/ui/sign-in"))
        .map(|e| match e.event.detail {
            auditrelay_core::EventDetail::Authentication { outcome, .. } => {
                outcome.as_str().to_owned()
            }
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(attempts, ["not_found", "invalid", "invalid", "success"]);

    // Signing out ends the session on the server: the old cookie is worthless.
    let csrf = page.csrf();
    let page = browser.post("/ui/sign-out", &[("csrf", &csrf)]).await;
    page.assert_redirect("/ui/sign-in?signed_out=1");
    assert!(page.header("set-cookie").unwrap().contains("Max-Age=0"));
    browser.cookie = Some(id);
    browser
        .get("/ui/destinations")
        .await
        .assert_redirect(&sign_in_then("/ui/destinations", "unknown=1&"));
    let page = browser.get("/ui/sign-in?signed_out=1").await;
    page.assert_has("You are signed out.");

    // Behind a TLS-terminating proxy the cookie is Secure.
    let mut proxied = Browser::new(&app);
    let request = proxied
        .client
        .post(format!("{}/ui/sign-in", app.base))
        .header("x-forwarded-proto", "https");
    let page = proxied
        .send(urlencoded(request, &[("token", app.admin.as_str())]))
        .await;
    assert_eq!(page.status, StatusCode::SEE_OTHER);
    assert!(page.header("set-cookie").unwrap().ends_with("; Secure"));
    app.stop().await;
}

/// `ui.secure_cookie = "always"` marks the cookie Secure on plain HTTP too.
#[tokio::test]
async fn the_cookie_can_always_be_secure() {
    let app = TestApp::spawn_with(|c| {
        c.ui.secure_cookie = auditrelay::config::SecureCookie::Always;
    })
    .await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    assert!(browser.last_set_cookie.unwrap().ends_with("; Secure"));
    app.stop().await;
}

/// With SQLite, sessions live in memory, so a restart ends them all. A form sent into that is
/// not saved, and the person is told so, signs in, and lands back on the form's page to send it
/// again; a `next` that points anywhere but a page of the UI is ignored.
#[tokio::test]
async fn a_form_sent_after_a_restart_says_why_and_returns_to_its_page() {
    let mut app = TestApp::spawn_with(dev).await;
    if app.store_url().is_some() {
        // On PostgreSQL sessions are in the database and outlive a restart (`nodes.rs`).
        return app.stop().await;
    }
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let form = "/ui/destinations/new";
    let csrf = browser.get(form).await.csrf();

    app.restart().await;
    let request = browser
        .client
        .post(format!("{}/ui/destinations", app.base))
        .header("origin", app.base.clone())
        .header("referer", format!("{}{form}", app.base));
    let fields = [
        ("csrf", csrf.as_str()),
        ("name", "SIEM"),
        ("endpoint", "http://127.0.0.1:9/"),
        ("log_format", "cef"),
    ];
    let page = browser.send(urlencoded(request, &fields)).await;
    let to = sign_in_then(form, "unknown=1&unsaved=1&");
    page.assert_redirect(&to);
    assert!(page.header("set-cookie").unwrap().contains("Max-Age=0"));
    let (_, list) = api_get(&app, "/v3/audit-log-destinations").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");

    let page = browser.get(&to).await;
    page.assert_has("Your session is no longer known to the server");
    page.assert_has("What you submitted was not saved: you will be back on its page");
    page.assert_has(r#"<input type="hidden" name="next" value="/ui/destinations/new">"#);
    let page = browser
        .post("/ui/sign-in", &[("token", &app.admin), ("next", form)])
        .await;
    page.assert_redirect(form);
    assert_eq!(browser.get(form).await.status, StatusCode::OK);

    // Never somewhere else, whatever the link says.
    for next in [
        "https://evil.example/",
        "//evil.example/ui/",
        "/\\evil.example",
        "/api/x",
        "/ui/sign-in",
    ] {
        let mut other = Browser::new(&app);
        let page = other
            .post("/ui/sign-in", &[("token", &app.admin), ("next", next)])
            .await;
        page.assert_redirect("/ui/destinations");
        other
            .get(&format!("/ui/sign-in?unknown=1&next={next}"))
            .await
            .assert_lacks(r#"name="next""#);
    }
    app.stop().await;
}

/// A session ends after its idle time without a request, and at its maximum age whatever
/// happens. The server's clock is moved forward rather than waited for.
#[tokio::test]
async fn sessions_expire() {
    let app = TestApp::spawn_with(|c| {
        c.ui.session_idle_timeout = Duration::from_secs(60);
        c.ui.session_max_age = Duration::from_secs(150);
    })
    .await;

    let mut idle = Browser::new(&app);
    idle.sign_in(&app.admin).await;
    assert_eq!(idle.get("/ui/destinations").await.status, StatusCode::OK);
    app.advance_clock(Duration::from_secs(59));
    assert_eq!(idle.get("/ui/destinations").await.status, StatusCode::OK);
    app.advance_clock(Duration::from_secs(60));
    let page = idle.get("/ui/destinations").await;
    page.assert_redirect(&sign_in_then("/ui/destinations", "expired=1&"));
    assert!(page.header("set-cookie").unwrap().contains("Max-Age=0"));
    idle.get("/ui/sign-in?expired=1")
        .await
        .assert_has("Your session expired. Sign in again.");

    // Busy, a request every 50 s, but past its maximum age.
    let mut busy = Browser::new(&app);
    busy.sign_in(&app.admin).await;
    for _ in 0..2 {
        app.advance_clock(Duration::from_secs(50));
        assert_eq!(busy.get("/ui/audit-logs").await.status, StatusCode::OK);
    }
    app.advance_clock(Duration::from_secs(50));
    let page = busy.get("/ui/audit-logs").await;
    page.assert_redirect(&sign_in_then("/ui/audit-logs", "expired=1&"));
    app.stop().await;
}

/// Revoking a token ends its sessions at their next request: every page calls the API with it.
#[tokio::test]
async fn a_revoked_token_ends_the_session() {
    let app = TestApp::spawn().await;
    for role in [Role::AuditLogsViewer, Role::AuditLogsAdmin] {
        let token = app.token(role, None).await;
        let mut browser = Browser::new(&app);
        let home = browser.sign_in(&token).await;
        let home = home.location().unwrap().to_owned();
        assert_eq!(browser.get(&home).await.status, StatusCode::OK);

        let record = app
            .store()
            .list_tokens(app.org())
            .await
            .unwrap()
            .into_iter()
            .find(|t| token.starts_with(&t.prefix) && t.revoked_at.is_none())
            .unwrap();
        assert!(app.store().revoke_token(record.id, now()).await.unwrap());

        let page = browser.get(&home).await;
        page.assert_redirect("/ui/sign-in?ended=1");
        browser
            .get("/ui/sign-in?ended=1")
            .await
            .assert_has("Your token is no longer accepted");
        browser
            .get(&home)
            .await
            .assert_redirect(&sign_in_then(&home, ""));
        // And it cannot start a new one.
        let page = browser.post("/ui/sign-in", &[("token", &token)]).await;
        assert_eq!(page.status, StatusCode::UNAUTHORIZED);
    }
    app.stop().await;
}

/// A form needs the session's CSRF token and must come from this site; otherwise 403 and
/// nothing changes.
#[tokio::test]
async fn forms_need_their_csrf_token_and_this_origin() {
    let app = TestApp::spawn_with(dev).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let mut other = Browser::new(&app);
    other.sign_in(&app.admin).await;
    let foreign = other.get("/ui/destinations").await.csrf();
    let csrf = browser.get("/ui/destinations/new").await.csrf();
    assert_ne!(csrf, foreign, "a token per session");

    let fields = [
        ("name", "forged"),
        ("endpoint", "http://127.0.0.1:9/hook"),
        ("authorization", "Bearer x"),
        ("log_format", "json"),
    ];
    let with = |token: &str| {
        let mut f = fields.to_vec();
        f.push(("csrf", token));
        f.into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect::<Vec<_>>()
    };
    for (case, form) in [
        (
            "missing",
            fields
                .iter()
                .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
                .collect(),
        ),
        ("wrong", with("0000")),
        ("another session's", with(&foreign)),
    ] {
        let form: Vec<(String, String)> = form;
        let borrowed: Vec<(&str, &str)> =
            form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        let page = browser.post("/ui/destinations", &borrowed).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{case}");
        page.assert_alert("nothing was changed");
    }

    // The right token, sent from another site.
    let form = with(&csrf);
    let borrowed: Vec<(&str, &str)> = form.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
    for (header, value) in [
        ("origin", "https://evil.example"),
        ("origin", "null"),
        ("sec-fetch-site", "cross-site"),
    ] {
        let request = browser
            .client
            .post(format!("{}/ui/destinations", app.base))
            .header(header, value);
        let page = browser.send(urlencoded(request, &borrowed)).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{header}: {value}");
        page.assert_alert("sent from another site");
    }
    assert_eq!(destination_count(&app).await, 0);

    // Sign-in from another site is refused too (and no session starts).
    let mut stranger = Browser::new(&app);
    let request = stranger
        .client
        .post(format!("{}/ui/sign-in", app.base))
        .header("origin", "https://evil.example");
    let page = stranger
        .send(urlencoded(request, &[("token", app.admin.as_str())]))
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(stranger.cookie.is_none());

    // The same form with everything right goes through.
    let page = browser.post("/ui/destinations", &borrowed).await;
    page.assert_redirect("/ui/destinations");
    assert_eq!(destination_count(&app).await, 1);
    app.stop().await;
}

/// New Webhook, edit and delete through the forms, the result read back through the API; the
/// authorization value is never on a page and is kept unless a new one is typed.
#[tokio::test]
async fn destinations_through_the_forms() {
    let app = TestApp::spawn_with(dev).await;
    let server = app.server.as_ref().unwrap().state();
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let secret = "Bearer s3cret-never-shown";

    let list = browser.get("/ui/destinations").await;
    list.assert_has(r#"<table id="destinations">"#);
    for column in [
        "Name",
        "Endpoint",
        "Log Format",
        "SSL verification",
        "Used by",
    ] {
        list.assert_has(&format!(r#"<th scope="col">{column}</th>"#));
    }
    list.assert_has(r#"<a class="button" href="/ui/destinations/new">New Webhook</a>"#);
    list.assert_has(r#"<nav class="tabs" aria-label="Audit Logs Setup">"#);
    list.assert_has(r#"<a href="/ui/destinations" aria-current="page">Webhook Destination</a>"#);
    list.assert_has(r#"<a href="/ui/audit-logs">Konnect</a>"#);
    list.assert_has(r#"<a href="/ui/portals">Dev Portal</a>"#);

    let form = browser.get("/ui/destinations/new").await;
    form.assert_has(r#"<form id="destination-form" action="/ui/destinations" method="post""#);
    for (id, label) in [
        ("name", "Name"),
        ("endpoint", "Endpoint"),
        ("authorization", "Authorization Header"),
        ("log_format", "Log Format"),
        ("skip_ssl_verification", "Disable SSL Verification"),
    ] {
        form.assert_has(&format!(r#"<label for="{id}">{label}</label>"#));
    }
    form.assert_has(r#"name="authorization" type="password" autocomplete="off" value="""#);
    for format in ["cef", "json", "cps"] {
        form.assert_has(&format!(r#"<option value="{format}""#));
    }
    form.assert_has("<strong>Warning:</strong> with SSL verification disabled");
    form.assert_has(r#"<button type="submit">Save</button>"#);

    // The API's 400, field by field; the secret just typed comes back in its masked field
    // only, so that it need not be typed again (pages are `no-store`), and nowhere else.
    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &[
                ("name", ""),
                ("endpoint", "not a url"),
                ("authorization", secret),
                ("log_format", "json"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("Name cannot be blank.");
    page.assert_alert("Endpoint must be a valid URL.");
    page.assert_has(
        r#"<p class="field-error" id="endpoint-error">Endpoint must be a valid URL.</p>"#,
    );
    page.assert_has(r#"value="not a url""#);
    page.assert_has(&format!(
        r#"name="authorization" type="password" autocomplete="off" value="{secret}""#
    ));
    assert_eq!(page.html.matches("s3cret").count(), 1, "{}", page.html);
    assert_eq!(destination_count(&app).await, 0);

    let receiver = TestReceiver::http().await;
    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &[
                ("name", "Splunk"),
                ("endpoint", &receiver.url()),
                ("authorization", secret),
                ("log_format", "json"),
                ("skip_ssl_verification", "on"),
            ],
        )
        .await;
    page.assert_redirect("/ui/destinations");
    let list = browser.get("/ui/destinations").await;
    list.assert_has(r#"<div class="flash flash-success" role="status"><p>Webhook destination “Splunk” created.</p></div>"#);
    list.assert_has("<th scope=\"row\">Splunk</th>");
    list.assert_has("Off (disabled)");
    list.assert_has("Not used");
    list.assert_lacks("s3cret");
    // The message is shown once.
    browser
        .get("/ui/destinations")
        .await
        .assert_lacks("created.");

    let (_, listed) = api_get(&app, "/v3/audit-log-destinations").await;
    let created = &listed["data"][0];
    assert_eq!(created["name"], "Splunk");
    assert_eq!(created["endpoint"], receiver.url());
    assert_eq!(created["log_format"], "json");
    assert_eq!(created["skip_ssl_verification"], true);
    let id = created["id"].as_str().unwrap().to_owned();
    let uuid = Uuid::parse_str(&id).unwrap();
    let saved_secret = || async {
        let d = app
            .store()
            .get_destination(app.org(), uuid)
            .await
            .unwrap()
            .unwrap();
        server.secrets.open(&d.authorization_sealed, &id).unwrap()
    };
    assert_eq!(saved_secret().await, secret);

    // Editing: the value is "Saved", never shown, and kept when left empty.
    let edit_path = format!("/ui/destinations/{id}/edit");
    let edit = browser.get(&edit_path).await;
    edit.assert_has(&format!(
        r#"<form id="destination-form" action="/ui/destinations/{id}""#
    ));
    edit.assert_has(r#"type="password" autocomplete="off" value="" placeholder="Saved""#);
    edit.assert_has(r#"value="Splunk""#);
    edit.assert_has(r#"<option value="json" selected>"#);
    edit.assert_lacks("s3cret");

    let action = format!("/ui/destinations/{id}");
    let page = browser
        .submit(
            &edit_path,
            &action,
            &[
                ("name", "Splunk Cloud"),
                ("endpoint", &receiver.url()),
                ("authorization", ""),
                ("log_format", "cef"),
            ],
        )
        .await;
    page.assert_redirect("/ui/destinations");
    let (_, got) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert_eq!(got["name"], "Splunk Cloud");
    assert_eq!(got["log_format"], "cef");
    assert_eq!(got["skip_ssl_verification"], false);
    assert_eq!(saved_secret().await, secret, "kept when left empty");

    let page = browser
        .submit(
            &edit_path,
            &action,
            &[
                ("name", "Splunk Cloud"),
                ("endpoint", &receiver.url()),
                ("authorization", "Splunk new-value"),
                ("log_format", "cef"),
            ],
        )
        .await;
    page.assert_redirect("/ui/destinations");
    assert_eq!(saved_secret().await, "Splunk new-value");

    // A taken name is the API's 409, told in plain words.
    let other = destination(&app, "Elastic", &receiver.url()).await;
    let page = browser
        .submit(
            &format!("/ui/destinations/{other}/edit"),
            &format!("/ui/destinations/{other}"),
            &[
                ("name", "Splunk Cloud"),
                ("endpoint", &receiver.url()),
                ("log_format", "json"),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    page.assert_alert("Another destination is already called “Splunk Cloud”");

    // Delete: without JavaScript, a confirmation page first; nothing is deleted until then.
    let page = browser
        .submit(
            "/ui/destinations",
            &format!("/ui/destinations/{id}/delete"),
            &[],
        )
        .await;
    assert_eq!(page.status, StatusCode::OK);
    page.assert_has("Delete “Splunk Cloud”?");
    page.assert_has(r#"<input type="hidden" name="confirmed" value="yes">"#);
    let before = destination_count(&app).await;
    let again = browser.get("/ui/destinations").await;
    again.assert_has("Splunk Cloud");
    assert_eq!(destination_count(&app).await, before, "nothing deleted yet");
    let page = browser
        .submit(
            "/ui/destinations",
            &format!("/ui/destinations/{id}/delete"),
            &[("confirmed", "yes")],
        )
        .await;
    page.assert_redirect("/ui/destinations");
    browser
        .get("/ui/destinations")
        .await
        .assert_has("Webhook destination “Splunk Cloud” deleted.");
    let (status, _) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // An id that is no destination.
    let page = browser.get("/ui/destinations/not-an-id/edit").await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    let page = browser
        .get(&format!("/ui/destinations/{}/edit", Uuid::new_v4()))
        .await;
    assert_eq!(page.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// Deleting a destination that webhooks use is the API's 409, explained with the webhooks
/// named; the webhooks are set up through the forms.
#[tokio::test]
async fn deleting_a_destination_in_use_names_its_webhooks() {
    let app = TestApp::spawn_with(dev).await;
    let portal = app.create_portal("Developer Portal", "eu").await;
    let id = destination(&app, "SIEM", "http://127.0.0.1:9/hook").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;

    let setup = "/ui/audit-logs/regions/us/setup";
    let page = browser
        .submit(setup, setup, &[("enabled", "on"), ("endpoint", &id)])
        .await;
    page.assert_redirect(setup);

    let new = browser.get("/ui/portals/new").await;
    new.assert_has(r#"<form id="portal-webhook-form" action="/ui/portals" method="post""#);
    for (field, label) in [
        ("region", "View region"),
        ("portal", "Dev Portal"),
        ("enabled", "Enabled"),
        ("endpoint", "Endpoint"),
    ] {
        new.assert_has(&format!(r#"<label for="{field}">{label}</label>"#));
    }
    new.assert_has(&format!(r#"<option value="{portal}" data-region="eu""#));
    let portal_id = portal.to_string();
    // The region must be the portal's.
    let page = browser
        .submit(
            "/ui/portals/new",
            "/ui/portals",
            &[
                ("region", "us"),
                ("portal", &portal_id),
                ("enabled", "on"),
                ("endpoint", &id),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("“Developer Portal” is in EU - Europe");
    let page = browser
        .submit(
            "/ui/portals/new",
            "/ui/portals",
            &[
                ("region", "eu"),
                ("portal", &portal_id),
                ("enabled", "on"),
                ("endpoint", &id),
            ],
        )
        .await;
    page.assert_redirect("/ui/portals");
    let (_, webhook) = api_get(&app, &format!("/v3/portals/{portal}/audit-log-webhook")).await;
    assert_eq!(
        webhook,
        json!({"audit_log_destination_id": id, "enabled": true})
    );

    let list = browser.get("/ui/destinations").await;
    list.assert_has("US - North America webhook, Dev Portal “Developer Portal” webhook");

    let page = browser
        .submit(
            "/ui/destinations",
            &format!("/ui/destinations/{id}/delete"),
            &[("confirmed", "yes")],
        )
        .await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    page.assert_alert("“SIEM” can't be deleted");
    page.assert_alert(
        "Used by: US - North America webhook, Dev Portal “Developer Portal” webhook.",
    );
    let (status, _) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert_eq!(status, StatusCode::OK, "still there");

    // Remove both through the forms; then it goes.
    let page = browser
        .submit(
            setup,
            "/ui/audit-logs/regions/us/remove",
            &[("confirmed", "yes")],
        )
        .await;
    page.assert_redirect(setup);
    let portal_setup = format!("/ui/portals/{portal}/setup");
    let page = browser
        .submit(
            &portal_setup,
            &format!("/ui/portals/{portal}/remove"),
            &[("confirmed", "yes")],
        )
        .await;
    page.assert_redirect(&portal_setup);
    let page = browser
        .submit(
            "/ui/destinations",
            &format!("/ui/destinations/{id}/delete"),
            &[("confirmed", "yes")],
        )
        .await;
    page.assert_redirect("/ui/destinations");
    app.stop().await;
}

/// The org tab: a card per region with its state in words; the Setup form enables, disables
/// and shows the API's 400.
#[tokio::test]
async fn region_webhooks_through_the_setup_form() {
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.ui.product_name = "Acme Cloud".into();
    })
    .await;
    // A SIEM that answers: the status must read Active once the webhook is on.
    let siem = crate::support::receiver::TestReceiver::http().await;
    let id = destination(&app, "SIEM", &siem.url()).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;

    let tab = browser.get("/ui/audit-logs").await;
    tab.assert_has(r#"<a href="/ui/audit-logs" aria-current="page">Acme Cloud</a>"#);
    for (region, title) in [
        ("us", "US - North America Webhook"),
        ("eu", "EU - Europe Webhook"),
    ] {
        tab.assert_has(&format!(r#"<section id="region-{region}" class="card""#));
        tab.assert_has(title);
        for sub in ["setup", "status", "replay"] {
            tab.assert_has(&format!(r#"href="/ui/audit-logs/regions/{region}/{sub}""#));
        }
    }
    tab.assert_has(r#"<span class="badge badge-unconfigured" title="No endpoint is set up.">Not configured</span>"#);

    let setup = "/ui/audit-logs/regions/us/setup";
    let page = browser.get(setup).await;
    page.assert_has(
        r#"<form id="webhook-form" action="/ui/audit-logs/regions/us/setup" method="post""#,
    );
    page.assert_has(r#"<input type="checkbox" id="enabled" name="enabled" value="on""#);
    page.assert_has(r#"<label for="enabled">Enabled</label>"#);
    page.assert_has(r#"<label for="endpoint">Endpoint</label>"#);
    page.assert_has(&format!(r#"<option value="{id}">SIEM</option>"#));
    page.assert_has(r#"<a href="/ui/audit-logs/regions/us/setup" aria-current="page">Setup</a>"#);

    // No endpoint chosen: the API's 400, on the field.
    let page = browser
        .submit(setup, setup, &[("enabled", "on"), ("endpoint", "")])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("Endpoint cannot be blank.");
    page.assert_has(r#"aria-invalid="true" aria-describedby="endpoint-error""#);
    let (status, _) = api_get(&app, "/us/v3/audit-log-webhook").await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    let page = browser
        .submit(setup, setup, &[("enabled", "on"), ("endpoint", &id)])
        .await;
    page.assert_redirect(setup);
    let (_, webhook) = api_get(&app, "/us/v3/audit-log-webhook").await;
    assert_eq!(
        webhook,
        json!({"audit_log_destination_id": id, "enabled": true})
    );
    let page = browser.get(setup).await;
    page.assert_has("Saved: the US - North America Webhook is enabled.");
    page.assert_has(r#"name="enabled" value="on" checked"#);
    page.assert_has(&format!(r#"<option value="{id}" selected>SIEM</option>"#));
    let tab = browser.get("/ui/audit-logs").await;
    tab.assert_has(">Active</span>");

    let page = browser.submit(setup, setup, &[("endpoint", &id)]).await;
    page.assert_redirect(setup);
    let (_, webhook) = api_get(&app, "/us/v3/audit-log-webhook").await;
    assert_eq!(webhook["enabled"], false);
    browser
        .get("/ui/audit-logs")
        .await
        .assert_has(">Disabled</span>");

    // The other region is untouched; an unknown region has no page.
    let (status, _) = api_get(&app, "/eu/v3/audit-log-webhook").await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    for path in [
        "/ui/audit-logs/regions/ap/setup",
        "/ui/audit-logs/regions/US/setup",
    ] {
        assert_eq!(
            browser.get(path).await.status,
            StatusCode::NOT_FOUND,
            "{path}"
        );
    }
    browser
        .get("/ui/audit-logs/regions/eu")
        .await
        .assert_redirect("/ui/audit-logs/regions/eu/setup");
    app.stop().await;
}

/// The Status tab shows what Konnect's hides, and Send test event delivers a test event to
/// the SIEM, for a region and for a Dev Portal.
#[tokio::test]
async fn status_and_test_events() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    let id = destination(&app, "SIEM", &receiver.url()).await;
    let portal = app.create_portal("Developer Portal", "eu").await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;

    let status = "/ui/audit-logs/regions/us/status";
    let page = browser.get(status).await;
    page.assert_has("Not configured");
    page.assert_has("None yet");
    // Not enabled: no action that would be refused, but the way to Setup; the same on the
    // Replay tab.
    let set_up = r#"<a href="/ui/audit-logs/regions/us/setup">Set it up in Setup</a> first."#;
    page.assert_lacks("Send test event</button>");
    page.assert_has("A test event is sent through the webhook for the organization");
    page.assert_has(set_up);
    let replay = browser.get("/ui/audit-logs/regions/us/replay").await;
    replay.assert_lacks("Send Replay</button>");
    replay.assert_lacks(r#"id="replay-form""#);
    replay.assert_has("A replay is sent through the webhook for the organization");
    replay.assert_has(set_up);
    // A page opened before the webhook was disabled: the API refuses, in words.
    let page = browser
        .submit(status, "/ui/audit-logs/regions/us/test-event", &[])
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert(
        "The webhook is not enabled: a test event is sent through the webhook, which must be \
         enabled first",
    );
    page.assert_has(set_up);

    bind_webhook(&app, "/us/v3/audit-log-webhook", &id, true).await;
    let page = browser
        .submit(status, "/ui/audit-logs/regions/us/test-event", &[])
        .await;
    page.assert_redirect(status);
    let page = browser.get(status).await;
    page.assert_has("Test event sent with trace id ");
    let text = page.text();
    let start = text.find("trace id ").unwrap() + "trace id ".len();
    let trace = text[start..].split('.').next().unwrap().to_owned();
    let lines = receiver
        .wait_until(Duration::from_secs(10), "the test event", |requests| {
            let lines: Vec<String> = requests
                .iter()
                .flat_map(|r| r.lines.clone())
                .filter(|l| l.contains(&trace))
                .collect();
            lines
                .iter()
                .any(|l| l.contains("\"action\":\"test\""))
                .then_some(lines)
        })
        .await;
    assert!(
        lines.iter().any(|l| l.contains("Authz.audit-log-webhook")),
        "{lines:?}"
    );
    let page = browser
        .wait_for(status, "<dd>202</dd>", Duration::from_secs(10))
        .await;
    page.assert_has("SIEM (");
    page.assert_has("Waiting to be delivered");
    page.assert_has(">Active</span>");

    // A Dev Portal's test event is one of its own authentication events.
    bind_webhook(
        &app,
        &format!("/v3/portals/{portal}/audit-log-webhook"),
        &id,
        true,
    )
    .await;
    let portal_status = format!("/ui/portals/{portal}/status");
    let page = browser
        .submit(
            &portal_status,
            &format!("/ui/portals/{portal}/test-event"),
            &[],
        )
        .await;
    page.assert_redirect(&portal_status);
    let text = browser.get(&portal_status).await.text();
    let start = text.find("trace id ").unwrap() + "trace id ".len();
    let trace = text[start..].split('.').next().unwrap().to_owned();
    receiver
        .wait_until(
            Duration::from_secs(10),
            "the portal's test event",
            |requests| {
                requests
                    .iter()
                    .flat_map(|r| &r.lines)
                    .find(|l| l.contains(&trace) && l.contains(&portal.to_string()))
                    .cloned()
            },
        )
        .await;

    // While the SIEM does not answer, the backlog and the time left before retention deletes it.
    receiver.set_default(Behaviour::Hang);
    let body = ndjson(&[authorization(
        now().saturating_sub_millis(60_000),
        "waiting",
    )]);
    let resp = app.ingest_ndjson("/us/v1/events", &app.admin, body).await;
    expect_json(resp, StatusCode::ACCEPTED).await;
    let page = browser.get(status).await;
    page.assert_has("Waiting to be delivered");
    page.assert_has("Oldest undelivered event");
    page.assert_has("Time until data loss");
    page.assert_has("6 days 23 hours");
    app.stop().await;
}

/// The Replay tab: presets start a job (seen through the API), the table follows it, the API's
/// 400 and 409 are shown in plain words.
#[tokio::test]
async fn replay_through_the_form() {
    let app = TestApp::spawn_with(dev).await;
    let receiver = TestReceiver::http().await;
    let id = destination(&app, "SIEM", &receiver.url()).await;
    bind_webhook(&app, "/us/v3/audit-log-webhook", &id, true).await;
    let events: Vec<Value> = (0..5)
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
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;

    let replay = "/ui/audit-logs/regions/us/replay";
    let page = browser.get(replay).await;
    page.assert_has(
        r#"<form id="replay-form" action="/ui/audit-logs/regions/us/replay" method="post""#,
    );
    page.assert_has(r#"<label for="range">Replay Time Range</label>"#);
    for (value, label) in [
        ("15m", "Last 15 minutes"),
        ("1h", "Last 1 hour"),
        ("6h", "Last 6 hours"),
        ("12h", "Last 12 hours"),
        ("24h", "Last 24 hours"),
        ("custom", "Custom range"),
    ] {
        assert!(
            page.has(&format!(r#"<option value="{value}">{label}</option>"#))
                || page.has(&format!(
                    r#"<option value="{value}" selected>{label}</option>"#
                )),
            "{value}"
        );
    }
    page.assert_has("Request data within the last seven days.");
    // Without JavaScript the custom times are UTC, and the page says so.
    page.assert_has(r#"<label for="start_at">Start <span class="zone">(UTC)</span></label>"#);
    page.assert_has(r#"<label for="end_at">End <span class="zone">(UTC)</span></label>"#);
    page.assert_has(r#"type="datetime-local""#);
    page.assert_has(r#"<button type="submit" id="send-replay">Send Replay</button>"#);
    page.assert_has(r#"<table id="replay-job""#);
    for column in ["Status", "Starts at", "End at", "Updated at", "Progress"] {
        page.assert_has(&format!(r#"<th scope="col">{column}</th>"#));
    }
    page.assert_has("No replay has been requested yet.");

    // The API's 400s, on their fields.
    let old = "2000-01-01T10:00";
    let page = browser
        .submit(
            replay,
            replay,
            &[("range", "custom"), ("start_at", old), ("end_at", "")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("Start (UTC) must be within the retention window");
    page.assert_alert("End (UTC) is required.");
    page.assert_has(r#"aria-describedby="start_at-utc start_at-error" aria-invalid="true""#);
    // Shown again as it was read: UTC, to the second.
    page.assert_has(&format!(r#"value="{old}:00""#));
    let (_, job) = api_get(&app, "/us/v3/audit-log-replay-job").await;
    assert_eq!(job["status"], "unconfigured");

    // A custom range in UTC.
    let start = now()
        .saturating_sub_millis(40 * 60_000)
        .to_rfc3339_seconds();
    let end = now()
        .saturating_sub_millis(20 * 60_000)
        .to_rfc3339_seconds();
    let (start_local, end_local) = (&start[..16], &end[..16]);
    let page = browser
        .submit(
            replay,
            replay,
            &[
                ("range", "custom"),
                ("start_at", start_local),
                ("end_at", end_local),
            ],
        )
        .await;
    // Back to the tab, which keeps the choice just sent.
    page.assert_redirect(&format!(
        "{replay}?range=custom&start_at={}%3A00Z&end_at={}%3A00Z",
        start_local.replace(':', "%3A"),
        end_local.replace(':', "%3A")
    ));
    let kept = browser.get(page.location().unwrap()).await;
    kept.assert_has("Replay requested (Custom range: ");
    kept.assert_has(r#"<option value="custom" selected>Custom range</option>"#);
    kept.assert_has(&format!(r#"value="{start_local}:00""#));
    let (_, job) = api_get(&app, "/us/v3/audit-log-replay-job").await;
    assert_eq!(job["start_at"], format!("{start_local}:00.000Z"));
    assert_eq!(job["end_at"], format!("{end_local}:00.000Z"));

    let done = browser
        .wait_for(replay, "<td>Completed</td>", Duration::from_secs(30))
        .await;
    done.assert_has("5 / 5 events, 1 batch");
    done.assert_lacks("data-refresh");

    // A preset.
    let page = browser.submit(replay, replay, &[("range", "6h")]).await;
    page.assert_redirect(&format!("{replay}?range=6h"));
    browser
        .get(page.location().unwrap())
        .await
        .assert_has(r#"<option value="6h" selected>Last 6 hours</option>"#);
    let (_, job) = api_get(&app, "/us/v3/audit-log-replay-job").await;
    let start =
        auditrelay_core::Timestamp::parse_rfc3339(job["start_at"].as_str().unwrap()).unwrap();
    let end = auditrelay_core::Timestamp::parse_rfc3339(job["end_at"].as_str().unwrap()).unwrap();
    assert_eq!(end.as_millis() - start.as_millis(), 6 * 3_600_000);
    assert!((now().as_millis() - end.as_millis()).abs() < 60_000);

    // While a job runs, another is the API's 409, told in words; the table refreshes itself.
    eventually(Duration::from_secs(30), || async {
        let (_, job) = api_get(&app, "/us/v3/audit-log-replay-job").await;
        (job["status"] == "completed").then_some(())
    })
    .await;
    receiver.set_default(Behaviour::Hang);
    let page = browser.submit(replay, replay, &[("range", "1h")]).await;
    page.assert_redirect(&format!("{replay}?range=1h"));
    eventually(Duration::from_secs(10), || async {
        let (_, job) = api_get(&app, "/us/v3/audit-log-replay-job").await;
        (job["status"] == "running").then_some(())
    })
    .await;
    let page = browser.get(replay).await;
    page.assert_has(r#"<div id="replay-status" aria-live="polite" data-refresh="true">"#);
    page.assert_has("<td>Running</td>");
    let page = browser.submit(replay, replay, &[("range", "15m")]).await;
    assert_eq!(page.status, StatusCode::CONFLICT);
    page.assert_alert("A replay is already running for this webhook.");

    // A region whose webhook is not enabled.
    let eu = "/ui/audit-logs/regions/eu/replay";
    let page = browser.submit(eu, eu, &[("range", "1h")]).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("The webhook is not enabled");
    app.stop().await;
}

/// A viewer sees every tab with its forms disabled and no write buttons; a forced POST is the
/// API's 403, shown as "Your role can't change this.", and nothing changes.
#[tokio::test]
async fn a_viewer_sees_everything_read_only() {
    let app = TestApp::spawn_with(dev).await;
    let id = destination(&app, "SIEM", "http://127.0.0.1:9/hook").await;
    bind_webhook(&app, "/us/v3/audit-log-webhook", &id, true).await;
    let portal = app.create_portal("Developer Portal", "us").await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let mut browser = Browser::new(&app);
    browser
        .sign_in(&viewer)
        .await
        .assert_redirect("/ui/destinations");

    let list = browser.get("/ui/destinations").await;
    assert_eq!(list.status, StatusCode::OK);
    list.assert_has("<th scope=\"row\">SIEM</th>");
    list.assert_has("US - North America webhook");
    list.assert_has("can view destinations but not change it");
    list.assert_lacks("New Webhook");
    list.assert_lacks(">Delete</button>");
    let pages = [
        format!("/ui/destinations/{id}/edit"),
        "/ui/audit-logs/regions/us/setup".to_owned(),
        "/ui/audit-logs/regions/us/replay".to_owned(),
        format!("/ui/portals/{portal}/setup"),
        "/ui/portals/new".to_owned(),
    ];
    for path in &pages {
        let page = browser.get(path).await;
        assert_eq!(page.status, StatusCode::OK, "{path}");
        page.assert_has("<fieldset disabled>");
        page.assert_lacks("<button type=\"submit\">Save</button>");
        page.assert_lacks("Send Replay</button>");
        page.assert_has("audit-logs-viewer");
    }
    let status = browser.get("/ui/audit-logs/regions/us/status").await;
    status.assert_lacks("Send test event</button>");
    browser
        .get("/ui/portals")
        .await
        .assert_lacks("New Dev Portal Audit Log</a>");

    // Forced writes, each with the viewer's own valid CSRF token.
    /// A page to take the CSRF token from, the form's action, its fields.
    type Forced<'a> = (&'a str, String, Vec<(&'a str, &'a str)>);
    let us = "/ui/audit-logs/regions/us";
    let forced: Vec<Forced<'_>> = vec![
        (
            "/ui/destinations",
            "/ui/destinations".into(),
            vec![
                ("name", "x"),
                ("endpoint", "http://127.0.0.1:9/x"),
                ("authorization", "Bearer y"),
            ],
        ),
        (
            "/ui/destinations",
            format!("/ui/destinations/{id}/delete"),
            vec![],
        ),
        (
            "/ui/audit-logs",
            format!("{us}/setup"),
            vec![("endpoint", id.as_str())],
        ),
        (
            "/ui/audit-logs",
            format!("{us}/replay"),
            vec![("range", "1h")],
        ),
        ("/ui/audit-logs", format!("{us}/test-event"), vec![]),
    ];
    for (page, action, fields) in &forced {
        let answer = browser.submit(page, action, fields).await;
        assert_eq!(
            answer.status,
            StatusCode::FORBIDDEN,
            "{action}: {}",
            answer.html
        );
        answer.assert_alert("Your role can't change this.");
    }
    assert_eq!(destination_count(&app).await, 1);
    let (_, webhook) = api_get(&app, "/us/v3/audit-log-webhook").await;
    assert_eq!(webhook["enabled"], true);
    let (_, job) = api_get(&app, "/us/v3/audit-log-replay-job").await;
    assert_eq!(job["status"], "unconfigured");
    app.stop().await;
}

/// A portal admin sees the Dev Portal tab with its own portal only, and can set up its webhook.
#[tokio::test]
async fn a_portal_admin_sees_only_its_portal() {
    let app = TestApp::spawn_with(dev).await;
    let own = app.create_portal("Partner Portal", "us").await;
    let other = app.create_portal("Internal Portal", "eu").await;
    // The organization's destinations are not a portal admin's: this one is its portal's.
    destination(&app, "Org SIEM", "http://127.0.0.1:9/org").await;
    let body = json!({
        "name": "SIEM", "endpoint": "http://127.0.0.1:9/hook", "authorization": "Bearer siem",
        "portal_id": own.to_string(),
    });
    let resp = app
        .post("/v3/audit-log-destinations", &app.admin, body)
        .await;
    let id = expect_json(resp, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let token = app.token(Role::PortalAdmin, Some(own)).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&token).await.assert_redirect("/ui/portals");

    let list = browser.get("/ui/portals").await;
    assert_eq!(list.status, StatusCode::OK);
    list.assert_has(r#"<table id="portal-webhooks">"#);
    list.assert_has("Partner Portal");
    list.assert_lacks("Internal Portal");
    list.assert_lacks(">Webhook Destination</a>");
    list.assert_lacks(r#"href="/ui/audit-logs""#);
    list.assert_has(r#"<a href="/ui/portals" aria-current="page">Dev Portal</a>"#);

    for path in [
        format!("/ui/portals/{other}/status"),
        format!("/ui/portals/{other}/setup"),
        "/ui/destinations".to_owned(),
        "/ui/audit-logs".to_owned(),
        "/ui/audit-logs/regions/us/setup".to_owned(),
    ] {
        let page = browser.get(&path).await;
        assert_eq!(page.status, StatusCode::FORBIDDEN, "{path}");
        page.assert_alert("Your role can't see this.");
    }

    let new = browser.get("/ui/portals/new").await;
    new.assert_lacks("Internal Portal");
    new.assert_lacks("Org SIEM");
    let own_id = own.to_string();
    let page = browser
        .submit(
            "/ui/portals/new",
            "/ui/portals",
            &[
                ("region", "us"),
                ("portal", &own_id),
                ("enabled", "on"),
                ("endpoint", &id),
            ],
        )
        .await;
    page.assert_redirect("/ui/portals");
    let (_, webhook) = api_get(&app, &format!("/v3/portals/{own}/audit-log-webhook")).await;
    assert_eq!(webhook["enabled"], true);
    browser
        .get("/ui/portals")
        .await
        .assert_has(">Active</span>");

    let other_id = other.to_string();
    let page = browser
        .submit(
            "/ui/portals/new",
            "/ui/portals",
            &[
                ("region", "eu"),
                ("portal", &other_id),
                ("enabled", "on"),
                ("endpoint", &id),
            ],
        )
        .await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    page.assert_alert("Your role can't change this.");
    let (status, _) = api_get(&app, &format!("/v3/portals/{other}/audit-log-webhook")).await;
    assert_eq!(status, StatusCode::NOT_FOUND);

    // Its own portal's pages work, sub-tabs and all.
    let setup = format!("/ui/portals/{own}/setup");
    let page = browser.get(&setup).await;
    page.assert_has(&format!(r#"<section id="portal-{own}" class="card""#));
    page.assert_has("Dev Portal “Partner Portal” Webhook");
    page.assert_has(&format!(r#"<a href="/ui/portals/{own}/replay">Replay</a>"#));
    let page = browser.submit(&setup, &setup, &[("endpoint", &id)]).await;
    page.assert_redirect(&setup);
    let (_, webhook) = api_get(&app, &format!("/v3/portals/{own}/audit-log-webhook")).await;
    assert_eq!(webhook["enabled"], false);
    assert_eq!(
        browser
            .get(&format!("/ui/portals/{}/setup", PortalId::new_v4()))
            .await
            .status,
        StatusCode::FORBIDDEN,
        "any other portal id is refused before it is looked up"
    );
    app.stop().await;
}

/// An event producer has nothing to see in the UI: it is told so at sign-in and gets no
/// session (so its token cannot fill the session table either).
#[tokio::test]
async fn an_event_producer_cannot_sign_in() {
    let app = TestApp::spawn().await;
    let token = app.token(Role::EventProducer, None).await;
    let mut browser = Browser::new(&app);
    let page = browser.post("/ui/sign-in", &[("token", &token)]).await;
    assert_eq!(page.status, StatusCode::FORBIDDEN);
    assert!(browser.cookie.is_none(), "no session");
    page.assert_has("This token's role (event-producer) sends events");
    page.assert_lacks("<nav class=\"tabs\"");
    browser.get("/").await.assert_redirect("/ui/sign-in");
    for path in ["/ui/destinations", "/ui/audit-logs", "/ui/portals"] {
        browser
            .get(path)
            .await
            .assert_redirect(&sign_in_then(path, ""));
    }
    app.stop().await;
}

/// Every UI answer carries the security headers; pages are not cached and run no inline
/// script or style.
#[tokio::test]
async fn pages_carry_security_headers() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let signed_out = browser.get("/ui/sign-in").await;
    let redirect = browser.get("/").await;
    browser.sign_in(&app.admin).await;
    let mut pages = vec![signed_out, redirect];
    for path in [
        "/ui/destinations",
        "/ui/audit-logs",
        "/ui/portals",
        "/ui/nowhere",
    ] {
        pages.push(browser.get(path).await);
    }
    for page in &pages {
        let csp = page.header("content-security-policy").expect("a CSP");
        for directive in [
            "default-src 'self'",
            "script-src 'self'",
            "frame-ancestors 'none'",
        ] {
            assert!(csp.contains(directive), "{directive} missing: {csp}");
        }
        assert!(!csp.contains("unsafe-inline"), "{csp}");
        assert_eq!(page.header("x-frame-options").as_deref(), Some("DENY"));
        assert_eq!(
            page.header("referrer-policy").as_deref(),
            Some("same-origin")
        );
        assert_eq!(
            page.header("x-content-type-options").as_deref(),
            Some("nosniff")
        );
        assert_eq!(page.header("cache-control").as_deref(), Some("no-store"));
        for script in page.html.split("<script").skip(1) {
            assert!(
                script.trim_start().starts_with("src="),
                "inline script: {script}"
            );
        }
        assert!(!page.html.contains(" style="), "inline style");
    }
    assert_eq!(pages.last().unwrap().status, StatusCode::NOT_FOUND);
    let page = &pages[2];
    page.assert_has(r##"<a class="skip-link" href="#main">Skip to main content</a>"##);
    page.assert_has(r#"<main id="main" tabindex="-1">"#);
    // The API keeps its own answers.
    let resp = app
        .client
        .get(app.url("/v3/audit-log-destinations"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::UNAUTHORIZED);
    assert!(resp.headers().get("content-security-policy").is_none());
    app.stop().await;
}

/// The stylesheet, script and icon come from the binary, under hashed names cached for a year.
#[tokio::test]
async fn assets_are_embedded_and_cached() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    let page = browser.get("/ui/sign-in").await;
    let href = |prefix: &str| {
        let start = page.html.find(prefix).unwrap_or_else(|| panic!("{prefix}")) + prefix.len();
        let end = page.html[start..].find('"').unwrap();
        page.html[start..start + end].to_owned()
    };
    for (path, content_type, marker) in [
        (
            href(r#"<link rel="stylesheet" href=""#),
            "text/css; charset=utf-8",
            ":focus-visible",
        ),
        (
            href(r#"<script src=""#),
            "text/javascript; charset=utf-8",
            "replay-status",
        ),
        (href(r#"<link rel="icon" href=""#), "image/svg+xml", "<svg"),
    ] {
        assert!(path.starts_with("/ui/assets/"), "{path}");
        let resp = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.headers()["content-type"], content_type);
        assert_eq!(
            resp.headers()["cache-control"],
            "public, max-age=31536000, immutable"
        );
        assert!(resp.text().await.unwrap().contains(marker), "{path}");
    }
    let missing = browser.get("/ui/assets/app-0000000000.css").await;
    assert_eq!(missing.status, StatusCode::NOT_FOUND);
    app.stop().await;
}

/// `/` and `/ui` lead to the sign-in page, or to the role's first tab; the API keeps its paths.
#[tokio::test]
async fn the_way_in() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    for path in ["/", "/ui", "/ui/"] {
        browser.get(path).await.assert_redirect("/ui/sign-in");
    }
    browser
        .get("/ui/destinations")
        .await
        .assert_redirect(&sign_in_then("/ui/destinations", ""));
    browser.sign_in(&app.admin).await;
    browser.get("/").await.assert_redirect("/ui/destinations");
    browser
        .get("/ui/sign-in")
        .await
        .assert_redirect("/ui/destinations");
    let resp = app.client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = app
        .client
        .get(app.url("/us/v3/audit-log-webhook"))
        .send()
        .await
        .unwrap();
    assert_eq!(resp.headers()["content-type"], "application/problem+json");
    app.stop().await;
}

/// An open page refreshing itself (the Replay tab while a job runs fetches itself every two
/// seconds) adds at most one audit event a minute; what the person does is audited in full.
#[tokio::test]
async fn a_page_refreshing_itself_is_audited_once_a_minute() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let count = || async { app.stored("us", None, None).await.len() };
    let page = "/ui/audit-logs/regions/us/replay";

    let before = count().await;
    assert_eq!(browser.get(page).await.status, StatusCode::OK);
    let per_load = count().await - before;
    assert!(
        per_load >= 2,
        "a page load reads the API more than once: {per_load}"
    );

    let before = count().await;
    for _ in 0..10 {
        assert_eq!(browser.refresh(page).await.status, StatusCode::OK);
    }
    assert_eq!(
        count().await - before,
        1,
        "ten refreshes within a minute: the first one's first read"
    );

    // A page the person loads is audited in full, refreshes or not.
    let before = count().await;
    browser.get(page).await;
    assert_eq!(count().await - before, per_load);
    // The header means nothing to the API itself: only the UI's own reads can be quiet.
    let before = count().await;
    let resp = app
        .client
        .get(app.url("/us/v3/audit-log-webhook/status"))
        .header("x-auditrelay-refresh", "1")
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let events = app.stored("us", None, None).await;
    let kinds: Vec<EventType> = events[before..]
        .iter()
        .map(|e| e.event.event_type())
        .collect();
    assert_eq!(
        kinds,
        [EventType::Authentication, EventType::Authorization],
        "a direct API read is audited in full"
    );
    app.stop().await;
}

/// A Dev Portal can be added in the UI, and "New Dev Portal Audit Log" for a portal that has a
/// webhook already shows that one instead of replacing it.
#[tokio::test]
async fn dev_portals_are_added_and_an_existing_webhook_is_never_replaced() {
    let app = TestApp::spawn().await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    browser
        .get("/ui/portals")
        .await
        .assert_has(r#"href="/ui/portals/add">New Dev Portal</a>"#);

    let page = browser
        .submit(
            "/ui/portals/add",
            "/ui/portals/add",
            &[("name", ""), ("region", "us")],
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_has(r#"aria-invalid="true" aria-describedby="name-error""#);
    let page = browser
        .submit(
            "/ui/portals/add",
            "/ui/portals/add",
            &[("name", "Partners"), ("region", "eu")],
        )
        .await;
    let (_, portals) = api_get(&app, "/v3/portals").await;
    let portal = portals["data"][0].clone();
    assert_eq!(portal["name"], "Partners");
    assert_eq!(portal["region"], "eu");
    let id = portal["id"].as_str().unwrap().to_owned();
    page.assert_redirect(&format!("/ui/portals/{id}/setup"));

    // Its webhook, set up through the API (disabled: nothing is sent).
    let destination = expect_json(
        app.post(
            "/v3/audit-log-destinations",
            &app.admin,
            json!({"name": "p", "endpoint": "https://52.1.2.3/x", "authorization": "Bearer p"}),
        )
        .await,
        StatusCode::CREATED,
    )
    .await;
    let webhook = format!("/v3/portals/{id}/audit-log-webhook");
    let bind = json!({"audit_log_destination_id": destination["id"], "enabled": false});
    let resp = app
        .request(Method::PATCH, &webhook, Some(&app.admin), Some(bind))
        .await;
    expect_json(resp, StatusCode::OK).await;
    let page = browser
        .submit(
            "/ui/portals/new",
            "/ui/portals",
            &[
                ("region", "eu"),
                ("portal", &id),
                ("enabled", "on"),
                ("endpoint", ""),
            ],
        )
        .await;
    page.assert_redirect(&format!("/ui/portals/{id}/setup"));
    let (_, after) = api_get(&app, &webhook).await;
    assert_eq!(
        after,
        json!({"audit_log_destination_id": destination["id"], "enabled": false}),
        "unchanged"
    );
    browser
        .get(&format!("/ui/portals/{id}/setup"))
        .await
        .assert_has("already has a webhook: it is shown here, unchanged.");

    // A viewer may not add portals, and is not offered to.
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let mut other = Browser::new(&app);
    other.sign_in(&viewer).await;
    other
        .get("/ui/portals")
        .await
        .assert_lacks("New Dev Portal</a>");
    app.stop().await;
}

/// Extra headers through the destination form: typed as `Name: value` lines, never shown
/// again (only their names), kept by an edit that leaves the box empty, removed on request;
/// a line that is no header, or a header the API refuses, is said in words and the typed text
/// stays.
#[tokio::test]
async fn extra_headers_through_the_form() {
    let app = TestApp::spawn_with(dev).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let fields = |headers: &'static str| {
        vec![
            ("name", "SIEM"),
            ("endpoint", "http://127.0.0.1:9/hook"),
            ("authorization", "Bearer siem"),
            ("log_format", "json"),
            ("headers", headers),
        ]
    };

    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &fields("no colon here"),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("Extra Headers: line 1 is not “Name: value”.");
    page.assert_has(">no colon here</textarea>");
    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &fields("Content-Type: text/csv"),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert(
        "Extra Headers: Content-Type is set by delivery itself, not by a destination.",
    );
    let (_, list) = api_get(&app, "/v3/audit-log-destinations").await;
    assert_eq!(list["data"].as_array().unwrap().len(), 0, "{list}");

    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &fields("X-API-Key: sesame\n\nX-Sumo-Category:  audit/konnect  "),
        )
        .await;
    page.assert_redirect("/ui/destinations");
    let (_, list) = api_get(&app, "/v3/audit-log-destinations").await;
    let saved = &list["data"][0];
    assert_eq!(
        saved["header_names"],
        json!(["x-api-key", "x-sumo-category"])
    );
    let id = saved["id"].as_str().unwrap().to_owned();
    let edit = format!("/ui/destinations/{id}/edit");
    let action = format!("/ui/destinations/{id}");
    let page = browser.get(&edit).await;
    page.assert_has("Saved: <code>x-api-key, x-sumo-category</code>");
    page.assert_lacks("sesame");
    page.assert_lacks("audit/konnect");

    // Saved without touching them: kept. Then removed.
    let mut keep = fields("");
    keep.push(("saved_headers", "x-api-key,x-sumo-category"));
    keep.retain(|(name, _)| *name != "authorization");
    let page = browser.submit(&edit, &action, &keep).await;
    page.assert_redirect("/ui/destinations");
    let (_, read) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert_eq!(
        read["header_names"],
        json!(["x-api-key", "x-sumo-category"])
    );
    let mut clear = keep.clone();
    clear.push(("clear_headers", "on"));
    let page = browser.submit(&edit, &action, &clear).await;
    page.assert_redirect("/ui/destinations");
    let (_, read) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert!(read.get("header_names").is_none(), "{read}");
    browser
        .get(&edit)
        .await
        .assert_lacks("Remove the saved headers");
    app.stop().await;
}

/// The form offers each kind with its own settings; only the chosen kind's are saved, and an
/// edit shows them again.
#[tokio::test]
async fn kinds_through_the_form() {
    let app = TestApp::spawn_with(dev).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let page = browser.get("/ui/destinations/new").await;
    page.assert_has(r#"<option value="datadog">Datadog Logs</option>"#);
    page.assert_has(r#"<fieldset class="kind-settings" data-kind="loki">"#);
    let datadog = |endpoint: &'static str| {
        vec![
            ("name", "DD"),
            ("kind", "datadog"),
            ("endpoint", endpoint),
            ("authorization", "dd-api-key"),
            ("log_format", "cef"),
            ("s.datadog.service", "kong"),
            ("s.datadog.ddtags", "env:prod"),
            ("s.datadog.hostname", ""),
            // Another kind's field, filled before the kind was changed: not sent.
            ("s.splunk_hec.index", "audit"),
        ]
    };
    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &datadog("https://127.0.0.1:9/v1/input"),
        )
        .await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("Endpoint must be Datadog's log intake");
    page.assert_has(r#"<option value="datadog" selected>"#);
    page.assert_has(r#"value="kong""#);
    assert_eq!(destination_count(&app).await, 0);

    let endpoint = "https://127.0.0.1:9/api/v2/logs";
    let page = browser
        .submit(
            "/ui/destinations/new",
            "/ui/destinations",
            &datadog(endpoint),
        )
        .await;
    page.assert_redirect("/ui/destinations");
    let (_, list) = api_get(&app, "/v3/audit-log-destinations").await;
    let saved = &list["data"][0];
    assert_eq!(saved["kind"], "datadog");
    assert_eq!(
        saved["settings"],
        json!({"service": "kong", "ddtags": "env:prod"})
    );
    let id = saved["id"].as_str().unwrap().to_owned();
    let edit = format!("/ui/destinations/{id}/edit");
    let page = browser.get(&edit).await;
    page.assert_has(r#"<option value="datadog" selected>"#);
    page.assert_has(
        r#"id="s-datadog-ddtags" name="s.datadog.ddtags" type="text" value="env:prod""#,
    );
    page.assert_lacks("dd-api-key");

    // To Loki, with labels; a label Loki keeps for itself is refused in words.
    let action = format!("/ui/destinations/{id}");
    let loki = |labels: &'static str| {
        vec![
            ("name", "DD"),
            ("kind", "loki"),
            ("endpoint", "https://127.0.0.1:9/loki/api/v1/push"),
            ("log_format", "cef"),
            ("s.loki.labels", labels),
        ]
    };
    let page = browser.submit(&edit, &action, &loki("__name__=x")).await;
    assert_eq!(page.status, StatusCode::BAD_REQUEST);
    page.assert_alert("Settings: labels.__name__ names a label reserved for Loki itself.");
    let page = browser
        .submit(&edit, &action, &loki("env=prod\nteam = sec"))
        .await;
    page.assert_redirect("/ui/destinations");
    let (_, read) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert_eq!(read["kind"], "loki");
    assert_eq!(
        read["settings"],
        json!({"labels": {"env": "prod", "team": "sec"}})
    );
    browser
        .get(&edit)
        .await
        .assert_has(">env=prod\nteam=sec</textarea>");

    // And back to a webhook: Konnect's shape again, nothing of kinds in the answer.
    let webhook = [
        ("name", "DD"),
        ("kind", "webhook"),
        ("endpoint", "https://127.0.0.1:9/hook"),
        ("log_format", "cef"),
    ];
    browser
        .submit(&edit, &action, &webhook)
        .await
        .assert_redirect("/ui/destinations");
    let (_, read) = api_get(&app, &format!("/v3/audit-log-destinations/{id}")).await;
    assert!(
        read.get("kind").is_none() && read.get("settings").is_none(),
        "{read}"
    );
}

/// Syslog over TLS and OCSF lines through the form: the client certificate's key goes in a
/// field of its own (PEM has several lines) and is saved as the authorization, never shown;
/// the form says that syslog has no acknowledgement.
#[tokio::test]
async fn a_syslog_destination_with_ocsf_lines_through_the_form() {
    let app = TestApp::spawn_with(dev).await;
    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let page = browser.get("/ui/destinations/new").await;
    page.assert_has(r#"<option value="syslog">Syslog over TLS (RFC 5425)</option>"#);
    page.assert_has(r#"<option value="ocsf">OCSF 1.8.0"#);
    page.assert_has("Syslog has no acknowledgement");
    let generated = rcgen::generate_simple_self_signed(vec!["relay".to_owned()]).unwrap();
    let (certificate, key) = (generated.cert.pem(), generated.signing_key.serialize_pem());
    let form = [
        ("name", "Collector"),
        ("kind", "syslog"),
        ("endpoint", "tls://127.0.0.1:6514"),
        ("log_format", "ocsf"),
        ("s.syslog.framing", "lf"),
        ("s.syslog.hostname", "relay-1"),
        ("s.syslog.client_certificate", certificate.as_str()),
        ("s.syslog.client_key", key.as_str()),
    ];
    browser
        .submit("/ui/destinations/new", "/ui/destinations", &form)
        .await
        .assert_redirect("/ui/destinations");
    let (_, list) = api_get(&app, "/v3/audit-log-destinations").await;
    let saved = &list["data"][0];
    assert_eq!(saved["kind"], "syslog");
    assert_eq!(saved["log_format"], "ocsf");
    assert_eq!(saved["settings"]["framing"], "lf");
    assert_eq!(saved["settings"]["hostname"], "relay-1");
    assert_eq!(saved["settings"]["client_certificate"], certificate.trim());
    let id = saved["id"].as_str().unwrap();
    let page = browser.get(&format!("/ui/destinations/{id}/edit")).await;
    page.assert_has(r#"<option value="syslog" selected>"#);
    page.assert_lacks(key.lines().nth(1).unwrap());
}

/// A portal webhook whose receiver refused events shows them on its Status page, and *Send
/// them again* sends them.
#[tokio::test]
async fn refused_events_on_the_status_page() {
    use crate::support::siem::{Fault, SiemKind, TOKEN, TestSiem};
    let app = TestApp::spawn_with(dev).await;
    let siem = TestSiem::start(SiemKind::Elasticsearch).await;
    let portal = app.create_portal("Refusals", "us").await;
    let body = json!({
        "name": "es", "endpoint": siem.url("audit"), "authorization": format!("ApiKey {TOKEN}"),
        "kind": "elasticsearch",
    });
    let created = expect_json(
        app.post("/v3/audit-log-destinations", &app.admin, body)
            .await,
        StatusCode::CREATED,
    )
    .await;
    let webhook = format!("/v3/portals/{portal}/audit-log-webhook");
    bind_webhook(&app, &webhook, created["id"].as_str().unwrap(), true).await;
    siem.script([Fault::BulkItems(
        vec![0, 1],
        400,
        "mapper_parsing_exception",
    )]);
    let events: Vec<Value> = ["a", "b"]
        .iter()
        .map(|t| crate::support::events::portal_login(now(), portal, t))
        .collect();
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;

    let mut browser = Browser::new(&app);
    browser.sign_in(&app.admin).await;
    let status = format!("/ui/portals/{portal}/status");
    let page = browser
        .wait_for(&status, "Refused events", Duration::from_secs(30))
        .await;
    page.assert_has("mapper_parsing_exception: scripted item failure");
    page.assert_has("Send them again");
    let page = browser
        .submit(
            &status,
            &format!("/ui/portals/{portal}/resend-refused"),
            &[],
        )
        .await;
    page.assert_redirect(&status);
    eventually(Duration::from_secs(30), || async {
        (siem.counts().len() == 2).then_some(())
    })
    .await;
    // They leave the list once the resend has recorded the SIEM's answer, a moment after it.
    browser
        .wait_for_absence(&status, "Refused events", Duration::from_secs(30))
        .await;
}

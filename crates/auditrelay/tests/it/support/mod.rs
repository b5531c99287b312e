//! Test helpers: an in-process server on a real socket, tokens for every role, request
//! shorthands, problem+json assertions, a scriptable webhook receiver (`receiver`) and headless
//! Chromium for the UI tests (`browser`).

#![allow(dead_code)]

pub mod browser;
pub mod conformance;
pub mod disk;
pub mod events;
pub mod nodes;
pub mod postgres;
pub mod process;
pub mod receiver;
pub mod rsyslog;
pub mod siem;
pub mod signing;

use std::path::Path;
use std::time::Duration;

use auditrelay::app::{self, Server};
use auditrelay::clock;
use auditrelay::config::{Config, MetricsToken};
use auditrelay::store::{EventQuery, PrincipalKind, Store, StoredEvent};
use auditrelay::tokens;
use auditrelay_core::{EventType, Grant, OrgId, PortalId, Region, Role, Timestamp};
use reqwest::{Method, Response, StatusCode};
use serde_json::Value;
use tempfile::TempDir;

/// The scrape token every in-process test server has (`metrics.token`).
pub const METRICS_TOKEN: &str = "test-metrics-token";

pub struct TestApp {
    pub server: Option<Server>,
    pub base: String,
    pub admin: String,
    pub client: reqwest::Client,
    pub dir: TempDir,
    /// What it was started with, for [`TestApp::restart`].
    config: Config,
}

impl TestApp {
    pub async fn spawn() -> Self {
        Self::spawn_with(|_| {}).await
    }

    /// Spawns with a config adjusted by `adjust` (limits, regions, …).
    ///
    /// On SQLite in its data directory, or, with `AUDITRELAY_TEST_STORE=postgres`, on a
    /// PostgreSQL database of its own (`support::postgres`): the whole suite runs on either.
    pub async fn spawn_with(adjust: impl FnOnce(&mut Config)) -> Self {
        let dir = tempfile::tempdir().expect("temp dir");
        let mut config = Config::for_data_dir(dir.path()).expect("default config");
        config.server.listen = "127.0.0.1:0".parse().unwrap();
        if std::env::var("AUDITRELAY_TEST_STORE").as_deref() == Ok("postgres") {
            let database = postgres::database()
                .await
                .expect("AUDITRELAY_TEST_STORE=postgres needs the PostgreSQL server binaries");
            config.store.url = database.url.parse().unwrap();
            config.store.key_encryption_key = Some(postgres::KEY_ENCRYPTION_KEY.parse().unwrap());
        }
        config.metrics.token = Some(MetricsToken::new(METRICS_TOKEN));
        adjust(&mut config);
        let started = app::start(config.clone()).await.expect("server starts");
        let base = format!("http://{}", started.server.addr());
        let admin = started
            .bootstrap_token
            .expect("a fresh data directory bootstraps an admin token");
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        Self {
            server: Some(started.server),
            base,
            admin,
            client,
            dir,
            config,
        }
    }

    /// Stops the server and starts it again on the same port and data directory: what a
    /// restart does to whatever lives only in memory (UI sessions, lanes' timers).
    pub async fn restart(&mut self) {
        let server = self.server.take().expect("running");
        let addr = server.addr();
        server.stop().await.unwrap();
        let mut config = self.config.clone();
        config.server.listen = addr;
        let started = app::start(config).await.expect("server starts again");
        self.server = Some(started.server);
    }

    /// Moves the server's monotonic clock forward (sessions' ages), instead of sleeping.
    pub fn advance_clock(&self, by: Duration) {
        self.server
            .as_ref()
            .expect("running")
            .state()
            .clock
            .advance(by);
    }

    /// `store.url` when it is not the SQLite default: what a command run beside the server
    /// needs to reach the same store.
    pub fn store_url(&self) -> Option<String> {
        match self.config.store_location() {
            auditrelay::config::StoreLocation::Postgres(url) => Some(url),
            auditrelay::config::StoreLocation::Sqlite(_) => None,
        }
    }

    pub fn store(&self) -> &Store {
        &self.server.as_ref().expect("running").state().store
    }

    pub fn org(&self) -> OrgId {
        self.server.as_ref().expect("running").state().org.id
    }

    pub fn data_dir(&self) -> &Path {
        self.dir.path()
    }

    /// A fresh token for `role` (bound to `portal` where given).
    pub async fn token(&self, role: Role, portal: Option<PortalId>) -> String {
        self.token_with(role, portal, PrincipalKind::System, None)
            .await
    }

    pub async fn token_with(
        &self,
        role: Role,
        portal: Option<PortalId>,
        kind: PrincipalKind,
        ttl: Option<Duration>,
    ) -> String {
        let grant = Grant::new(role, portal).unwrap();
        let name = format!("{role}-test");
        tokens::issue(
            self.store(),
            self.org(),
            &name,
            kind,
            grant,
            ttl,
            clock::now(),
        )
        .await
        .unwrap()
        .secret
    }

    pub fn url(&self, path: &str) -> String {
        format!("{}{path}", self.base)
    }

    pub async fn request(
        &self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Response {
        let mut req = self.client.request(method, self.url(path));
        if let Some(token) = token {
            req = req.bearer_auth(token);
        }
        if let Some(body) = body {
            req = req.json(&body);
        }
        req.send().await.expect("request sent")
    }

    pub async fn get(&self, path: &str, token: &str) -> Response {
        self.request(Method::GET, path, Some(token), None).await
    }

    pub async fn post(&self, path: &str, token: &str, body: Value) -> Response {
        self.request(Method::POST, path, Some(token), Some(body))
            .await
    }

    pub async fn delete(&self, path: &str, token: &str) -> Response {
        self.request(Method::DELETE, path, Some(token), None).await
    }

    /// POSTs an NDJSON body to `/v1/events` (or a region-prefixed variant).
    pub async fn ingest_ndjson(&self, path: &str, token: &str, body: String) -> Response {
        self.client
            .post(self.url(path))
            .bearer_auth(token)
            .header("content-type", "application/x-ndjson")
            .body(body)
            .send()
            .await
            .expect("request sent")
    }

    pub async fn create_portal(&self, name: &str, region: &str) -> PortalId {
        let resp = self
            .post(
                "/v3/portals",
                &self.admin,
                serde_json::json!({"name": name, "region": region}),
            )
            .await;
        let body = expect_json(resp, StatusCode::CREATED).await;
        PortalId::parse(body["id"].as_str().unwrap()).unwrap()
    }

    /// Every stored event of a scope in the last day, oldest first.
    pub async fn stored(
        &self,
        region: &str,
        portal: Option<PortalId>,
        kind: Option<EventType>,
    ) -> Vec<StoredEvent> {
        let now = clock::now();
        self.store()
            .list_events(&EventQuery {
                org_id: self.org(),
                region: Region::parse(region).unwrap(),
                portal_id: portal,
                ts_from: Timestamp::from_millis(0),
                ts_to: now.saturating_add_millis(600_000),
                event_type: kind,
                after: None,
                through_seq: None,
                limit: 100_000,
            })
            .await
            .unwrap()
    }

    /// `/metrics` as a scraper with the metrics token reads it.
    pub async fn metrics(&self) -> String {
        let resp = self
            .client
            .get(self.url("/metrics"))
            .bearer_auth(METRICS_TOKEN)
            .send()
            .await
            .expect("request sent");
        assert_eq!(resp.status(), StatusCode::OK);
        resp.text().await.unwrap()
    }

    pub async fn stop(mut self) {
        if let Some(server) = self.server.take() {
            server.stop().await.unwrap();
        }
    }
}

/// What `serve --dev` allows, so that receivers on loopback can be endpoints, with batches that
/// leave every 100 ms instead of every second.
pub fn dev(c: &mut Config) {
    c.dev = true;
    c.delivery.allow_http_endpoints = true;
    c.delivery.allow_private_endpoints = true;
    c.delivery.flush_interval = Duration::from_millis(100);
}

/// A test that needs something this machine lacks says why and is skipped; under `CI=true`,
/// where `.ci/run` installs everything, it fails instead.
pub fn skip_unless_ci(reason: &str) {
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
}

/// Binds the webhook at `path` (v3 or portal) to `destination`, enabled or not, as the admin.
pub async fn bind_webhook(app: &TestApp, path: &str, destination: &str, enabled: bool) {
    let body = serde_json::json!({"audit_log_destination_id": destination, "enabled": enabled});
    let resp = app
        .request(Method::PATCH, path, Some(&app.admin), Some(body))
        .await;
    expect_json(resp, StatusCode::OK).await;
}

/// Asserts the status and returns the JSON body.
pub async fn expect_json(resp: Response, status: StatusCode) -> Value {
    let actual = resp.status();
    let text = resp.text().await.unwrap();
    assert_eq!(actual, status, "body: {text}");
    serde_json::from_str(&text).unwrap_or_else(|e| panic!("not JSON ({e}): {text}"))
}

/// Asserts a problem+json response with this status and returns its body.
pub async fn expect_problem(resp: Response, status: StatusCode) -> Value {
    let content_type = resp
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap().to_owned());
    let body = expect_json(resp, status).await;
    assert_eq!(
        content_type.as_deref(),
        Some("application/problem+json"),
        "{body}"
    );
    assert_eq!(body["status"], status.as_u16(), "{body}");
    for field in ["title", "detail", "instance"] {
        assert!(body[field].is_string(), "problem lacks {field}: {body}");
    }
    assert!(
        body["instance"]
            .as_str()
            .unwrap()
            .starts_with("kong:trace:"),
        "{body}"
    );
    body
}

/// The `(field, rule)` pairs of a 400's `invalid_parameters`.
pub fn invalid_fields(problem: &Value) -> Vec<(String, String)> {
    problem["invalid_parameters"]
        .as_array()
        .map(|a| {
            a.iter()
                .map(|p| {
                    (
                        p["field"].as_str().unwrap().to_owned(),
                        p["rule"].as_str().unwrap_or("").to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}

/// Polls `check` until it returns `Some`, failing after `timeout`.
pub async fn eventually<T, F, Fut>(timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = tokio::time::Instant::now() + timeout;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "condition not reached within {timeout:?}"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

pub fn now() -> Timestamp {
    clock::now()
}

/// A fence of a lease of the test's own, for calling the store's fenced writes (DECISIONS.md
/// S21) as delivery would.
pub async fn fence(store: &auditrelay::store::Store) -> auditrelay::store::Fence {
    let name = format!("test/{}", uuid::Uuid::new_v4());
    store
        .acquire_lease(&name, Duration::from_secs(3600))
        .await
        .unwrap()
        .expect("a lease of the test's own is free")
}

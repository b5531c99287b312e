//! Konnect's own clients, replayed request by request: the Terraform provider (v3.19) and its
//! generated SDK, the Go SDK's portal operations (v0.62) and `kongctl listen audit-logs`. Each
//! request carries the headers and the exact body bytes the client's source sends (compact,
//! keys sorted by the generated SDKs, unset fields as `null`); each answer must carry the status
//! the client accepts, a `Content-Type` its SDK decodes (`application/json` for success,
//! `application/problem+json` for errors), a body the operation's schema allows, and the values
//! the client sent (Terraform fails an apply whose answer differs from its plan).

use std::net::SocketAddr;
use std::time::Duration;

use reqwest::{Method, StatusCode};
use serde_json::Value;

use crate::support::conformance::{Doc, check_response};
use crate::support::receiver::TestReceiver;
use crate::support::{TestApp, eventually};

/// Terraform's SDK: `Accept` for GET/POST/PATCH (DELETE sends `application/problem+json`).
const TERRAFORM_ACCEPT: &str = "application/json;q=1, application/problem+json;q=0";
const TERRAFORM_AGENT: &str = "speakeasy-sdk/terraform 3.19.0 2.897.1 2.0.0 github.com/kong/terraform-provider-konnect/v3/internal/sdk";
const GO_SDK_AGENT: &str = "speakeasy-sdk/go 0.62.0 2.932.9 3.15.0 github.com/Kong/sdk-konnect-go";
const KONGCTL_AGENT: &str = "kongctl/v1.13.0";

/// One client: where it sends requests and the headers it always sets.
struct Client<'a> {
    http: reqwest::Client,
    /// `http://127.0.0.1:PORT` or `https://global.api.konghq.com:PORT`.
    base: String,
    /// A `Host` to send instead of the base's (the server is reached by address).
    host: Option<&'static str>,
    /// A path prefix (`/us`), for a client configured with a regional path.
    prefix: &'static str,
    token: &'a str,
    accept: &'static str,
    agent: &'static str,
}

impl Client<'_> {
    /// Sends `body` byte for byte; `Content-Type: application/json` only with a body, as every
    /// one of these clients does. DELETE uses `application/problem+json` as `Accept`, as the
    /// generated SDKs do.
    async fn send(&self, method: Method, path: &str, body: Option<&str>) -> reqwest::Response {
        let accept = if method == Method::DELETE {
            "application/problem+json"
        } else {
            self.accept
        };
        let mut request = self
            .http
            .request(method, format!("{}{}{path}", self.base, self.prefix))
            .bearer_auth(self.token)
            .header("accept", accept)
            .header("user-agent", self.agent);
        if let Some(host) = self.host {
            request = request.header("host", host);
        }
        if let Some(body) = body {
            request = request
                .header("content-type", "application/json")
                .body(body.to_owned());
        }
        request.send().await.expect("request sent")
    }
}

/// Sends, checks the answer against the document, and requires `expected`.
async fn call(
    client: &Client<'_>,
    method: Method,
    path: &str,
    body: Option<&str>,
    (doc, template): (Doc, &str),
    expected: StatusCode,
) -> Value {
    let resp = client.send(method.clone(), path, body).await;
    let (status, body) = check_response(doc, method.as_str(), template, resp).await;
    assert_eq!(status, expected, "{method} {path}: {body}");
    body
}

fn terraform<'a>(app: &'a TestApp, host: Option<&'static str>, prefix: &'static str) -> Client<'a> {
    Client {
        http: app.client.clone(),
        base: app.base.clone(),
        host,
        prefix,
        token: &app.admin,
        accept: TERRAFORM_ACCEPT,
        agent: TERRAFORM_AGENT,
    }
}

/// Loopback endpoints are what these tests point webhooks at, so nothing leaves the machine.
async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| {
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
    })
    .await
}

const WEBHOOK: (Doc, &str) = (Doc::V2, "/audit-log-webhook");
const DESTINATIONS: (Doc, &str) = (Doc::V2, "/audit-log-destinations");
const DESTINATION: (Doc, &str) = (Doc::V2, "/audit-log-destinations/{auditLogDestinationId}");
const PORTAL_WEBHOOK: (Doc, &str) = (Doc::PortalV3, "/portals/{portalId}/audit-log-webhook");

/// `konnect_audit_log` on Terraform's default base (the `global` host), on a regional host and
/// on a regional path: create (minimal and full), refresh, update with an attribute removed,
/// and delete, which is a PATCH disabling the webhook.
#[tokio::test]
async fn terraform_audit_log_on_the_global_and_a_regional_base() {
    let app = spawn().await;
    for (host, prefix) in [
        (Some("global.api.konghq.com"), ""),
        (Some("us.api.konghq.com"), ""),
        (None, "/eu"),
    ] {
        let tf = terraform(&app, host, prefix);
        let label = format!("{host:?}{prefix}");

        // `resource "konnect_audit_log" "x" {}`: every key sent, the unset ones as null.
        let created = call(
            &tf,
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(r#"{"authorization":null,"enabled":false,"endpoint":null,"log_format":"cef","skip_ssl_verification":false}"#),
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(created["enabled"], false, "{label}: {created}");
        assert_eq!(created["log_format"], "cef", "{label}: {created}");

        // The documented example, with an `&` as Go's encoder writes it.
        let endpoint = "https://127.0.0.1:9/audit-logs?source=konnect&v=2";
        let full = r#"{"authorization":"Bearer sometoken","enabled":true,"endpoint":"https://127.0.0.1:9/audit-logs?source=konnect\u0026v=2","log_format":"json","skip_ssl_verification":false}"#;
        let updated = call(
            &tf,
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(full),
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        for (key, value) in [
            ("endpoint", Value::from(endpoint)),
            ("enabled", true.into()),
            ("log_format", "json".into()),
            ("skip_ssl_verification", false.into()),
        ] {
            assert_eq!(updated[key], value, "{label}: {key} echoed: {updated}");
        }
        assert!(updated.get("authorization").is_none(), "never read back");

        // Refresh: the plan's values, from the same base.
        let read = call(
            &tf,
            Method::GET,
            "/v2/audit-log-webhook",
            None,
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(read["endpoint"], endpoint, "{label}: {read}");
        assert_eq!(read["enabled"], true, "{label}: {read}");
        assert_eq!(read["log_format"], "json", "{label}: {read}");

        // Update with `authorization` removed from the configuration: sent as null, kept.
        let changed = call(
            &tf,
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(r#"{"authorization":null,"enabled":true,"endpoint":"https://127.0.0.1:9/audit-logs","log_format":"cps","skip_ssl_verification":true}"#),
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(changed["endpoint"], "https://127.0.0.1:9/audit-logs");
        assert_eq!(changed["log_format"], "cps");
        assert_eq!(changed["skip_ssl_verification"], true);

        // Delete: Terraform's "delete-audit-log-webhook" is this PATCH.
        let deleted = call(
            &tf,
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(r#"{"enabled":false}"#),
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(deleted["enabled"], false, "{label}: {deleted}");
        let refreshed = call(
            &tf,
            Method::GET,
            "/v2/audit-log-webhook",
            None,
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(refreshed["enabled"], false, "{label}: {refreshed}");
    }
    app.stop().await;
}

/// `konnect_audit_log_destination`: create (exactly 201), refresh, update (all five keys),
/// import (a read by id), delete (204), then the refresh and delete that find it gone (404 as
/// problem+json, which is what drops it from state).
#[tokio::test]
async fn terraform_destination_lifecycle() {
    let app = spawn().await;
    let tf = terraform(&app, Some("global.api.konghq.com"), "");
    let created = call(
        &tf,
        Method::POST,
        "/v2/audit-log-destinations",
        Some(r#"{"authorization":"Bearer sometoken","endpoint":"https://127.0.0.1:9/audit-logs","log_format":"cef","name":"My Destination","skip_ssl_verification":false}"#),
        DESTINATIONS,
        StatusCode::CREATED,
    )
    .await;
    let id = created["id"].as_str().unwrap().to_owned();
    let path = format!("/v2/audit-log-destinations/{id}");
    assert_eq!(created["name"], "My Destination");
    assert_eq!(created["log_format"], "cef");

    let read = call(&tf, Method::GET, &path, None, DESTINATION, StatusCode::OK).await;
    assert_eq!(read["endpoint"], "https://127.0.0.1:9/audit-logs");

    let updated = call(
        &tf,
        Method::PATCH,
        &path,
        Some(r#"{"authorization":"Bearer sometoken","endpoint":"https://127.0.0.1:9/audit-logs","log_format":"json","name":"My Destination","skip_ssl_verification":false}"#),
        DESTINATION,
        StatusCode::OK,
    )
    .await;
    assert_eq!(updated["log_format"], "json");
    assert_eq!(updated["name"], "My Destination");
    assert!(updated.get("authorization").is_none(), "write-only");

    // `terraform import` sets the id and refreshes: a read on the regional host finds the
    // destination created on the global one (destinations are the organization's).
    let regional = terraform(&app, Some("us.api.konghq.com"), "");
    let imported = call(
        &regional,
        Method::GET,
        &path,
        None,
        DESTINATION,
        StatusCode::OK,
    )
    .await;
    assert_eq!(imported["id"], id.as_str());
    assert_eq!(imported["log_format"], "json");

    call(
        &tf,
        Method::DELETE,
        &path,
        None,
        DESTINATION,
        StatusCode::NO_CONTENT,
    )
    .await;
    call(
        &tf,
        Method::GET,
        &path,
        None,
        DESTINATION,
        StatusCode::NOT_FOUND,
    )
    .await;
    call(
        &tf,
        Method::DELETE,
        &path,
        None,
        DESTINATION,
        StatusCode::NOT_FOUND,
    )
    .await;
    app.stop().await;
}

/// `konnect_portal_audit_log_webhook` as in the provider's example: a destination, the portal's
/// webhook bound to it, refresh, import by portal id, update to no destination, delete, and
/// the destination deleted after it.
#[tokio::test]
async fn terraform_portal_webhook_lifecycle() {
    let app = spawn().await;
    let portal = app.create_portal("Developer Portal", "us").await;
    let tf = terraform(&app, Some("us.api.konghq.com"), "");
    let destination = call(
        &tf,
        Method::POST,
        "/v2/audit-log-destinations",
        Some(r#"{"authorization":"Bearer portal","endpoint":"https://127.0.0.1:9/portal","log_format":"json","name":"portal-siem","skip_ssl_verification":false}"#),
        DESTINATIONS,
        StatusCode::CREATED,
    )
    .await;
    let destination = destination["id"].as_str().unwrap().to_owned();
    let path = format!("/v3/portals/{portal}/audit-log-webhook");

    let bind = format!(r#"{{"audit_log_destination_id":"{destination}","enabled":true}}"#);
    let created = call(
        &tf,
        Method::PATCH,
        &path,
        Some(&bind),
        PORTAL_WEBHOOK,
        StatusCode::OK,
    )
    .await;
    assert_eq!(created["audit_log_destination_id"], destination.as_str());
    assert_eq!(created["enabled"], true);

    for _refresh_then_import in 0..2 {
        let read = call(
            &tf,
            Method::GET,
            &path,
            None,
            PORTAL_WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(read["audit_log_destination_id"], destination.as_str());
        assert_eq!(read["enabled"], true);
    }

    let unbound = call(
        &tf,
        Method::PATCH,
        &path,
        Some(r#"{"audit_log_destination_id":null,"enabled":false}"#),
        PORTAL_WEBHOOK,
        StatusCode::OK,
    )
    .await;
    assert_eq!(unbound["enabled"], false, "{unbound}");

    call(
        &tf,
        Method::DELETE,
        &path,
        None,
        PORTAL_WEBHOOK,
        StatusCode::NO_CONTENT,
    )
    .await;
    call(
        &tf,
        Method::GET,
        &path,
        None,
        PORTAL_WEBHOOK,
        StatusCode::NOT_FOUND,
    )
    .await;
    call(
        &tf,
        Method::DELETE,
        &path,
        None,
        PORTAL_WEBHOOK,
        StatusCode::NOT_FOUND,
    )
    .await;
    let destination_path = format!("/v2/audit-log-destinations/{destination}");
    call(
        &tf,
        Method::DELETE,
        &destination_path,
        None,
        DESTINATION,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.stop().await;
}

/// The Go SDK's portal operations, as kongctl's declarative portal webhooks use them: read
/// while absent, bind (`enabled` always sent), status, replay (exactly 202), replay status,
/// disable with only `enabled`, delete.
#[tokio::test]
async fn go_sdk_portal_operations() {
    let app = spawn().await;
    let portal = app.create_portal("Go SDK", "us").await;
    let admin = terraform(&app, None, "");
    let destination = call(
        &admin,
        Method::POST,
        "/v2/audit-log-destinations",
        Some(r#"{"authorization":"Bearer go","endpoint":"https://127.0.0.1:9/go","log_format":"json","name":"go-sdk","skip_ssl_verification":false}"#),
        DESTINATIONS,
        StatusCode::CREATED,
    )
    .await;
    let destination = destination["id"].as_str().unwrap().to_owned();
    let sdk = Client {
        accept: "application/json",
        agent: GO_SDK_AGENT,
        ..terraform(&app, Some("us.api.konghq.com"), "")
    };
    let webhook = format!("/v3/portals/{portal}/audit-log-webhook");

    call(
        &sdk,
        Method::GET,
        &webhook,
        None,
        PORTAL_WEBHOOK,
        StatusCode::NOT_FOUND,
    )
    .await;
    let bind = format!(r#"{{"audit_log_destination_id":"{destination}","enabled":true}}"#);
    call(
        &sdk,
        Method::PATCH,
        &webhook,
        Some(&bind),
        PORTAL_WEBHOOK,
        StatusCode::OK,
    )
    .await;
    let status = call(
        &sdk,
        Method::GET,
        &format!("{webhook}/status"),
        None,
        (
            Doc::PortalV3,
            "/portals/{portalId}/audit-log-webhook/status",
        ),
        StatusCode::OK,
    )
    .await;
    assert_eq!(status["webhook_enabled"], true, "{status}");

    let end = time::OffsetDateTime::now_utc() - time::Duration::minutes(1);
    let start = end - time::Duration::hours(1);
    let rfc3339 = |t: time::OffsetDateTime| {
        t.replace_nanosecond(0)
            .unwrap()
            .format(&time::format_description::well_known::Rfc3339)
            .unwrap()
    };
    let replay = format!(
        r#"{{"end_at":"{}","start_at":"{}"}}"#,
        rfc3339(end),
        rfc3339(start)
    );
    let job_path = format!("/v3/portals/{portal}/audit-log-replay-job");
    let job_doc = (Doc::PortalV3, "/portals/{portalId}/audit-log-replay-job");
    call(
        &sdk,
        Method::PUT,
        &job_path,
        Some(&replay),
        job_doc,
        StatusCode::ACCEPTED,
    )
    .await;
    let job = call(&sdk, Method::GET, &job_path, None, job_doc, StatusCode::OK).await;
    let parse = |v: &Value| {
        time::OffsetDateTime::parse(
            v.as_str().unwrap(),
            &time::format_description::well_known::Rfc3339,
        )
        .unwrap()
    };
    assert_eq!(
        parse(&job["start_at"]),
        start.replace_nanosecond(0).unwrap(),
        "{job}"
    );

    let disabled = call(
        &sdk,
        Method::PATCH,
        &webhook,
        Some(r#"{"enabled":false}"#),
        PORTAL_WEBHOOK,
        StatusCode::OK,
    )
    .await;
    assert_eq!(disabled["enabled"], false);
    assert_eq!(disabled["audit_log_destination_id"], destination.as_str());
    call(
        &sdk,
        Method::DELETE,
        &webhook,
        None,
        PORTAL_WEBHOOK,
        StatusCode::NO_CONTENT,
    )
    .await;
    app.stop().await;
}

/// `kongctl listen audit-logs`, twice, following the recipe in `OPERATIONS.md`: the TLS
/// listener with a certificate for Konnect's host names, which resolve to this server (kongctl
/// hard-codes `https://global.api.konghq.com` for destinations). Its name check reads only the
/// first page of destinations without `page[size]`, so that page must hold more than a dozen,
/// the managed `org-webhook-<region>` one included.
#[tokio::test]
async fn kongctl_listen_audit_logs_by_the_recipe() {
    let files = tempfile::tempdir().unwrap();
    let names = ["global.api.konghq.com", "us.api.konghq.com"];
    let generated = rcgen::generate_simple_self_signed(names.map(str::to_owned).to_vec()).unwrap();
    let (cert, key) = (files.path().join("api.crt"), files.path().join("api.key"));
    std::fs::write(&cert, generated.cert.pem()).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    let app = TestApp::spawn_with(|c| {
        c.server.tls_cert = Some(cert.clone());
        c.server.tls_key = Some(key.clone());
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
    })
    .await;
    let addr: SocketAddr = app.base.trim_start_matches("http://").parse().unwrap();
    let port = addr.port();
    // What `/etc/hosts` and the system's trust store do in the recipe.
    let mut http = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(generated.cert.pem().as_bytes()).unwrap()])
        .https_only(true)
        .timeout(Duration::from_secs(10));
    for name in names {
        http = http.resolve(name, addr);
    }
    let http = http.build().unwrap();
    let kongctl = |base: &str| Client {
        http: http.clone(),
        base: format!("https://{base}:{port}"),
        host: None,
        prefix: "",
        token: &app.admin,
        accept: "application/json",
        agent: KONGCTL_AGENT,
    };
    let global = kongctl("global.api.konghq.com");
    let regional = kongctl("us.api.konghq.com");

    // An organization with a dozen destinations and the managed one of another region's
    // inline webhook.
    for n in 0..12 {
        let body = format!(
            r#"{{"name":"team-{n}","endpoint":"https://127.0.0.1:9/{n}","log_format":"json","skip_ssl_verification":false,"authorization":"Bearer t"}}"#
        );
        let d = (Doc::V3, "/audit-log-destinations");
        call(
            &global,
            Method::POST,
            "/v3/audit-log-destinations",
            Some(&body),
            d,
            StatusCode::CREATED,
        )
        .await;
    }
    let eu = Client {
        prefix: "/eu",
        ..kongctl("us.api.konghq.com")
    };
    call(
        &eu,
        Method::PATCH,
        "/v2/audit-log-webhook",
        Some(
            r#"{"endpoint":"https://127.0.0.1:9/eu","authorization":"Bearer eu","enabled":false}"#,
        ),
        WEBHOOK,
        StatusCode::OK,
    )
    .await;

    // A name already taken, even the last one created, is seen on the first page, so kongctl
    // stops before creating anything.
    let taken = call(
        &global,
        Method::GET,
        "/v3/audit-log-destinations",
        None,
        (Doc::V3, "/audit-log-destinations"),
        StatusCode::OK,
    )
    .await;
    let listed: Vec<&str> = taken["data"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|d| d["name"].as_str())
        .collect();
    assert!(
        listed.contains(&"team-11") && listed.contains(&"org-webhook-eu"),
        "the first page without page[size] holds every destination: {listed:?}"
    );

    let listener = TestReceiver::http().await;
    for run in 0..2 {
        let name = format!("kongctl-buildhost-{}", 4242 + run);
        // 1. The regional webhook must be unconfigured.
        let webhook = call(
            &regional,
            Method::GET,
            "/v2/audit-log-webhook",
            None,
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        assert_eq!(webhook["enabled"], false, "run {run}: {webhook}");
        assert_eq!(webhook["endpoint"], "unconfigured", "run {run}: {webhook}");
        // 2. The name is free on the first page.
        let page = call(
            &global,
            Method::GET,
            "/v3/audit-log-destinations",
            None,
            (Doc::V3, "/audit-log-destinations"),
            StatusCode::OK,
        )
        .await;
        assert!(!page.to_string().contains(&name));
        // 3. Create the destination on the global host, v3.
        let body = format!(
            r#"{{"name":"{name}","endpoint":"{}","log_format":"json","skip_ssl_verification":false,"authorization":"Bearer listener-secret"}}"#,
            listener.url()
        );
        let created = call(
            &global,
            Method::POST,
            "/v3/audit-log-destinations",
            Some(&body),
            (Doc::V3, "/audit-log-destinations"),
            StatusCode::CREATED,
        )
        .await;
        let id = created["id"].as_str().unwrap().to_owned();
        // 4. Bind the regional webhook to it.
        let bind = format!(r#"{{"audit_log_destination_id":"{id}","enabled":true}}"#);
        call(
            &regional,
            Method::PATCH,
            "/v3/audit-log-webhook",
            Some(&bind),
            (Doc::V3, "/audit-log-webhook"),
            StatusCode::OK,
        )
        .await;
        // 5. The listener receives lines: the requests above were audited in `us`.
        let before = listener.lines().len();
        eventually(Duration::from_secs(20), || async {
            (listener.lines().len() > before).then_some(())
        })
        .await;
        assert!(
            listener
                .requests()
                .iter()
                .all(|r| r.authorization() == Some("Bearer listener-secret")),
            "kongctl's listener refuses any other Authorization"
        );
        // 6. Clean up: disable (v2), delete the webhook (v3), delete the destination (v2 on
        //    the regional host), retrying a 409 that says the destination is in use.
        call(
            &regional,
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(r#"{"enabled":false}"#),
            WEBHOOK,
            StatusCode::OK,
        )
        .await;
        call(
            &regional,
            Method::DELETE,
            "/v3/audit-log-webhook",
            None,
            (Doc::V3, "/audit-log-webhook"),
            StatusCode::NO_CONTENT,
        )
        .await;
        let path = format!("/v2/audit-log-destinations/{id}");
        let mut wait = Duration::from_millis(250);
        loop {
            let resp = regional.send(Method::DELETE, &path, None).await;
            let (status, body) = check_response(Doc::V2, "DELETE", DESTINATION.1, resp).await;
            if status == StatusCode::CONFLICT
                && body
                    .to_string()
                    .to_lowercase()
                    .contains("destination is in use")
                && wait < Duration::from_secs(5)
            {
                tokio::time::sleep(wait).await;
                wait *= 2;
                continue;
            }
            assert_eq!(status, StatusCode::NO_CONTENT, "run {run}: {body}");
            break;
        }
    }
    app.stop().await;
}

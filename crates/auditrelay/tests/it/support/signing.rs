//! Helpers for the signing tests: the real binary run asynchronously (so an in-process server
//! keeps answering while it runs), the server's JWKS and key files, sample signed lines, and
//! the shape checks of a pull-API page against Konnect's `GetAuditLogs` schema.

use std::path::Path;
use std::process::{Output, Stdio};
use std::time::Duration;

use auditrelay::keys::{KeyDir, KeySet};
use auditrelay_core::format::{Format, FormatConfig, sign_event};
use auditrelay_core::signing::parse_jwks;
use auditrelay_core::{Event, EventDetail, OrgId, PublicKey, Region, SigningKey, Timestamp};
use reqwest::StatusCode;
use serde_json::Value;
use tokio::io::AsyncWriteExt as _;

use super::{TestApp, eventually};

pub const BIN: &str = env!("CARGO_BIN_EXE_auditrelay");
pub const JWKS_PATH: &str = "/v2/audit-log-webhook/jwks.json";

/// Runs the binary with `args`, feeding `stdin`, without blocking the test's runtime.
pub async fn run(args: &[&str], stdin: Option<&[u8]>) -> Output {
    let mut child = tokio::process::Command::new(BIN)
        .args(args)
        .env_remove("RUST_LOG")
        .env_remove("AUDITRELAY_URL")
        .stdin(if stdin.is_some() {
            Stdio::piped()
        } else {
            Stdio::null()
        })
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .kill_on_drop(true)
        .spawn()
        .expect("the binary runs");
    if let Some(bytes) = stdin {
        let mut pipe = child.stdin.take().expect("piped stdin");
        pipe.write_all(bytes).await.expect("stdin written");
        drop(pipe);
    }
    tokio::time::timeout(Duration::from_secs(60), child.wait_with_output())
        .await
        .expect("the binary finishes within a minute")
        .expect("the binary's output is read")
}

pub fn stdout(out: &Output) -> String {
    String::from_utf8_lossy(&out.stdout).into_owned()
}

pub fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `keys rotate` against the app's data directory (and its store); returns the new kid.
pub async fn rotate(app: &TestApp, activation_delay: &str) -> String {
    let dir = app.data_dir().to_str().unwrap();
    let mut command = tokio::process::Command::new(BIN);
    command
        .args([
            "keys",
            "rotate",
            "--data-dir",
            dir,
            "--activation-delay",
            activation_delay,
        ])
        .env_remove("RUST_LOG")
        .env_remove("AUDITRELAY_URL")
        .stdin(Stdio::null())
        .kill_on_drop(true);
    if let Some(url) = app.store_url() {
        command.env("AUDITRELAY_STORE__URL", url).env(
            "AUDITRELAY_STORE__KEY_ENCRYPTION_KEY",
            super::postgres::KEY_ENCRYPTION_KEY,
        );
    }
    let out = tokio::time::timeout(Duration::from_secs(60), command.output())
        .await
        .expect("the binary finishes within a minute")
        .expect("the binary runs");
    assert!(out.status.success(), "{}", stderr(&out));
    stdout(&out).lines().last().expect("the kid").to_owned()
}

/// The server's JWKS document and its keys.
pub async fn jwks(app: &TestApp) -> (String, Vec<PublicKey>) {
    let resp = app.client.get(app.url(JWKS_PATH)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let body = resp.text().await.unwrap();
    let keys = parse_jwks(body.as_bytes()).expect("a valid JWKS");
    (body, keys)
}

/// Polls the JWKS until it publishes `kid`.
pub async fn wait_for_published(app: &TestApp, kid: &str) -> Vec<PublicKey> {
    eventually(Duration::from_secs(10), || async move {
        let (_, keys) = jwks(app).await;
        keys.iter().any(|k| k.kid().as_str() == kid).then_some(keys)
    })
    .await
}

/// The keys in the app's data directory, read as another process would.
pub fn key_files(data_dir: &Path) -> KeySet {
    KeyDir::in_data_dir(data_dir)
        .load()
        .expect("the key files read")
        .expect("there are keys")
}

/// The signing key with this kid from the data directory.
pub fn signing_key(data_dir: &Path, kid: &str) -> SigningKey {
    key_files(data_dir)
        .keys()
        .iter()
        .find(|k| k.kid().as_str() == kid)
        .unwrap_or_else(|| panic!("no key {kid}"))
        .key
        .clone()
}

/// An access event numbered `n`, whose trace id is `trace-<n>`.
pub fn event(n: u32) -> Event {
    Event {
        ts: Timestamp::from_millis(1_800_000_000_000 + i64::from(n) * 1000),
        org_id: OrgId::new_v4(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: Some(format!("user-{n}")),
        principal_name: Some("Ada | \"Lovelace\"".into()),
        actor_id: Some(String::new()),
        client_ip: Some("192.0.2.7".into()),
        uri: Some("/v2/things".into()),
        user_agent: Some("curl/8 = x\\y".into()),
        trace_id: Some(format!("trace-{n}")),
        detail: EventDetail::Access {
            method: "POST".into(),
            query: "{}".into(),
            status_code: 201,
            kong_initiated: Some(false),
        },
    }
}

/// One signed line of `event(n)` in `format`.
pub fn signed_line(format: Format, n: u32, key: &SigningKey) -> Vec<u8> {
    let mut out = Vec::new();
    sign_event(format, &event(n), &FormatConfig::default(), key, &mut out);
    out
}

/// Checks a `GET /v3/audit-logs` body against the required parts of Konnect's `GetAuditLogs`:
/// only `data` and `meta`; `meta.page` with `next`, `previous` (string or null) and `size`;
/// every entry with the required fields of its type and their JSON types.
pub fn assert_pull_page_shape(body: &Value) {
    let top = body.as_object().expect("an object");
    let mut keys: Vec<&str> = top.keys().map(String::as_str).collect();
    keys.sort_unstable();
    assert_eq!(keys, ["data", "meta"], "{body}");
    let meta = top["meta"].as_object().expect("meta is an object");
    assert_eq!(meta.keys().collect::<Vec<_>>(), ["page"], "{body}");
    let page = meta["page"].as_object().expect("meta.page is an object");
    for link in ["next", "previous"] {
        assert!(
            page.get(link).is_some_and(|v| v.is_null() || v.is_string()),
            "meta.page.{link}: {body}"
        );
    }
    assert!(page.get("size").is_some_and(Value::is_number), "{body}");
    for entry in top["data"].as_array().expect("data is an array") {
        let required: &[&str] = match entry["type"].as_str() {
            Some("authorization") => &[
                "type",
                "signature",
                "service",
                "resource",
                "action",
                "granted",
                "org_id",
                "ts",
                "principal_id",
            ],
            Some("gateway_access") => &[
                "type",
                "ts",
                "org_id",
                "principal_id",
                "actor_id",
                "client_ip",
                "trace_id",
                "user_agent",
                "method",
                "uri",
                "query",
                "status_code",
                "signature",
            ],
            Some("authentication") => &[
                "successful",
                "signature",
                "outcome",
                "authentication_type",
                "ts",
                "client_ip",
                "uri",
                "user_agent",
                "trace_id",
            ],
            other => panic!("unknown entry type {other:?}: {entry}"),
        };
        for field in required {
            assert!(entry.get(*field).is_some(), "{field} missing: {entry}");
        }
        for (field, ok) in [
            (
                "granted",
                entry.get("granted").is_none_or(Value::is_boolean),
            ),
            (
                "successful",
                entry.get("successful").is_none_or(Value::is_boolean),
            ),
            (
                "status_code",
                entry.get("status_code").is_none_or(Value::is_i64),
            ),
        ] {
            assert!(ok, "{field} has the wrong type: {entry}");
        }
        for (field, value) in entry.as_object().unwrap() {
            if !["granted", "successful", "status_code", "kong_initiated"].contains(&field.as_str())
            {
                assert!(value.is_string(), "{field} is not a string: {entry}");
            }
        }
        assert!(
            Timestamp::parse_rfc3339(entry["ts"].as_str().unwrap()).is_some(),
            "{entry}"
        );
    }
}

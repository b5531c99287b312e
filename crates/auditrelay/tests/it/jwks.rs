//! `GET /v2/audit-log-webhook/jwks.json`: public, per region prefix, Konnect's shape; and key
//! rotation by `auditrelay keys rotate` while the server runs, with its activation delay.

use std::time::Duration;

use auditrelay::app;
use auditrelay::config::Config;
use auditrelay_core::PublicKey;
use auditrelay_core::format::pull::verify_pull_entry;
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use reqwest::StatusCode;
use serde_json::Value;

use crate::support::events::{authorization, ndjson};
use crate::support::signing::{JWKS_PATH, jwks, key_files, rotate, wait_for_published};
use crate::support::{TestApp, eventually, expect_json, now};

#[tokio::test]
async fn jwks_is_public_and_shaped_like_konnects() {
    let app = TestApp::spawn().await;
    let resp = app.client.get(app.url(JWKS_PATH)).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    let header = |name: &str| {
        resp.headers()
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
    };
    assert_eq!(header("content-type").as_deref(), Some("application/json"));
    assert_eq!(header("cache-control").as_deref(), Some("max-age=60"));
    let body = resp.text().await.unwrap();
    let doc: Value = serde_json::from_str(&body).unwrap();

    let keys = doc["keys"].as_array().expect("keys is an array");
    assert_eq!(keys.len(), 1, "{doc}");
    let jwk = keys[0].as_object().unwrap();
    let mut members: Vec<&str> = jwk.keys().map(String::as_str).collect();
    members.sort_unstable();
    assert_eq!(members, ["alg", "crv", "kid", "kty", "x"]);
    assert_eq!(jwk["kty"], "OKP");
    assert_eq!(jwk["alg"], "EdDSA");
    assert_eq!(jwk["crv"], "Ed25519");
    let x = jwk["x"].as_str().unwrap();
    assert_eq!(x.len(), 43, "base64url of 32 bytes without padding");
    let raw: [u8; 32] = URL_SAFE_NO_PAD.decode(x).unwrap().try_into().unwrap();
    let kid = jwk["kid"].as_str().unwrap();
    assert!(
        kid.len() == 40
            && kid
                .bytes()
                .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b)),
        "{kid}"
    );
    // The kid is the hex SHA-1 of the raw key, so anyone can recompute it from `x`.
    assert_eq!(PublicKey::from_bytes(&raw).unwrap().kid().as_str(), kid);
    // It is the key in the data directory.
    let files = key_files(app.data_dir());
    assert_eq!(files.keys()[0].kid().as_str(), kid);
    assert_eq!(files.keys()[0].key.public_key().to_bytes(), raw);

    // The same document under a region prefix, and with a token too.
    for path in [format!("/eu{JWKS_PATH}"), format!("/us{JWKS_PATH}")] {
        let resp = app.client.get(app.url(&path)).send().await.unwrap();
        assert_eq!(resp.status(), StatusCode::OK, "{path}");
        assert_eq!(resp.text().await.unwrap(), body, "{path}");
    }
    let resp = app.get(JWKS_PATH, &app.admin).await;
    assert_eq!(resp.text().await.unwrap(), body);
    app.stop().await;
}

#[tokio::test]
async fn keys_survive_a_restart() {
    let mut app = TestApp::spawn().await;
    let (before, _) = jwks(&app).await;
    app.server.take().unwrap().stop().await.unwrap();

    let mut config = Config::for_data_dir(app.data_dir()).unwrap();
    config.server.listen = "127.0.0.1:0".parse().unwrap();
    let restarted = app::start(config).await.unwrap().server;
    let url = format!("http://{}{JWKS_PATH}", restarted.addr());
    let after = app
        .client
        .get(url)
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    assert_eq!(after, before, "the same key, not a new one");
    assert_eq!(key_files(app.data_dir()).keys().len(), 1);
    restarted.stop().await.unwrap();
}

/// Pulls the entries of the test's one event and returns the kid that verifies the first.
async fn pull_kid(app: &TestApp, keys: &[PublicKey]) -> String {
    let body = expect_json(
        app.get(
            "/v3/audit-logs?filter[type]=authorization&page[size]=1",
            &app.admin,
        )
        .await,
        StatusCode::OK,
    )
    .await;
    let entry = serde_json::to_vec(&body["data"][0]).unwrap();
    verify_pull_entry(&entry, keys)
        .unwrap_or_else(|e| panic!("{e}: {body}"))
        .to_string()
}

#[tokio::test]
async fn rotation_publishes_at_once_and_signs_after_the_activation_delay() {
    let app = TestApp::spawn().await;
    let resp = app
        .ingest_ndjson(
            "/v1/events",
            &app.admin,
            ndjson(&[authorization(
                now().saturating_sub_millis(60_000),
                "t-rotate",
            )]),
        )
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let (_, keys) = jwks(&app).await;
    assert_eq!(keys.len(), 1);
    let old = keys[0].kid().to_string();
    assert_eq!(pull_kid(&app, &keys).await, old);

    // Long enough that the server (which looks at the key directory once a second) publishes
    // the new key well before it signs.
    let new = rotate(&app, "3s").await;
    assert_ne!(new, old);
    let keys = wait_for_published(&app, &new).await;
    assert_eq!(keys.len(), 2, "both keys are published");
    assert!(keys.iter().any(|k| k.kid().as_str() == old));

    let files = key_files(app.data_dir());
    let pending = files
        .keys()
        .iter()
        .find(|k| k.kid().as_str() == new)
        .unwrap();
    let activation = pending.active_from;
    let retired = files
        .keys()
        .iter()
        .find(|k| k.kid().as_str() == old)
        .unwrap();
    assert_eq!(retired.retired_at, Some(activation));

    // Published but not yet active: the old key still signs.
    assert!(
        now().saturating_add_millis(500) < activation,
        "the new key was published too late to check the delay"
    );
    assert_eq!(pull_kid(&app, &keys).await, old, "signed before activation");

    // Once active, the new key signs; the old one stays published.
    let (app_ref, keys_ref, new_ref) = (&app, &keys, new.as_str());
    let kid = eventually(Duration::from_secs(15), || async move {
        let kid = pull_kid(app_ref, keys_ref).await;
        (kid == new_ref).then_some(kid)
    })
    .await;
    assert_eq!(kid, new);
    assert!(
        now() >= activation,
        "signed by the new key only after activation"
    );
    let (_, published) = jwks(&app).await;
    let mut kids: Vec<String> = published.iter().map(|k| k.kid().to_string()).collect();
    kids.sort();
    let mut both = vec![old, new];
    both.sort();
    assert_eq!(kids, both);
    app.stop().await;
}

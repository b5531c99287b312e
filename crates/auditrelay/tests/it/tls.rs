//! The API over HTTPS with HTTP/2 and HTTP/1.1 (ALPN), in clear with HTTP/2 by prior knowledge
//! (h2c), and a renewed certificate served without a restart.

use std::path::{Path, PathBuf};
use std::time::Duration;

use auditrelay_core::Role;
use reqwest::{StatusCode, Version};
use serde_json::json;

use crate::support::events::{authorization, ndjson};
use crate::support::{TestApp, now};

/// A certificate for `localhost` written as PEM files in `dir`; returns (cert, key, cert PEM).
fn certificate(dir: &Path, name: &str) -> (PathBuf, PathBuf, String) {
    let generated = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let (cert, key) = (
        dir.join(format!("{name}.crt")),
        dir.join(format!("{name}.key")),
    );
    let pem = generated.cert.pem();
    std::fs::write(&cert, &pem).unwrap();
    std::fs::write(&key, generated.signing_key.serialize_pem()).unwrap();
    (cert, key, pem)
}

/// A client that trusts exactly `pem`; `http1` keeps it to HTTP/1.1.
fn client(pem: &str, http1: bool) -> reqwest::Client {
    let mut builder = reqwest::Client::builder()
        .tls_certs_only([reqwest::Certificate::from_pem(pem.as_bytes()).unwrap()])
        .https_only(true)
        .timeout(Duration::from_secs(10));
    if http1 {
        builder = builder.http1_only();
    }
    builder.build().unwrap()
}

#[tokio::test]
async fn the_whole_api_over_https_with_http2_and_http1() {
    let files = tempfile::tempdir().unwrap();
    let (cert, key, pem) = certificate(files.path(), "first");
    let app = TestApp::spawn_with(|c| {
        c.server.tls_cert = Some(cert.clone());
        c.server.tls_key = Some(key.clone());
    })
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let base = format!("https://localhost:{port}");
    let producer = app.token(Role::EventProducer, None).await;
    for (http1, version) in [(false, Version::HTTP_2), (true, Version::HTTP_11)] {
        let client = client(&pem, http1);
        let health = client.get(format!("{base}/healthz")).send().await.unwrap();
        assert_eq!(health.version(), version);
        assert_eq!(health.status(), StatusCode::OK);

        let trace = format!("over-{version:?}");
        let ingest = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&producer)
            .header("content-type", "application/x-ndjson")
            .body(ndjson(&[authorization(now(), &trace)]))
            .send()
            .await
            .unwrap();
        assert_eq!(ingest.version(), version);
        assert_eq!(ingest.status(), StatusCode::ACCEPTED);

        let name = format!("siem-{}", if http1 { "h1" } else { "h2" });
        let created = client
            .post(format!("{base}/v3/audit-log-destinations"))
            .bearer_auth(&app.admin)
            .json(&json!({"name": name, "endpoint": "https://52.1.2.3/x", "authorization": "Bearer x"}))
            .send()
            .await
            .unwrap();
        assert_eq!(created.status(), StatusCode::CREATED);
        let id = created.json::<serde_json::Value>().await.unwrap()["id"]
            .as_str()
            .unwrap()
            .to_owned();
        let bound = client
            .patch(format!("{base}/us/v3/audit-log-webhook"))
            .bearer_auth(&app.admin)
            .json(&json!({"audit_log_destination_id": id, "enabled": false}))
            .send()
            .await
            .unwrap();
        assert_eq!(bound.status(), StatusCode::OK);
        let pulled = client
            .get(format!("{base}/v3/audit-logs?page[size]=1000"))
            .bearer_auth(&app.admin)
            .send()
            .await
            .unwrap();
        assert_eq!(pulled.version(), version);
        let text = pulled.text().await.unwrap();
        assert!(
            text.contains(&trace),
            "the event sent over {version:?} reads back"
        );
        // Errors are problem+json over either protocol.
        let missing = client
            .get(format!("{base}/v9/nothing"))
            .send()
            .await
            .unwrap();
        assert_eq!(missing.status(), StatusCode::NOT_FOUND);
        assert_eq!(
            missing.headers()["content-type"],
            "application/problem+json"
        );
    }
    // Plain HTTP to the TLS port is not served.
    let plain = reqwest::Client::new()
        .get(format!("http://localhost:{port}/healthz"))
        .timeout(Duration::from_secs(10))
        .send()
        .await;
    assert!(plain.map_or(true, |r| !r.status().is_success()));
    app.stop().await;
}

#[tokio::test]
async fn a_renewed_certificate_is_served_without_a_restart() {
    let files = tempfile::tempdir().unwrap();
    let (cert, key, first) = certificate(files.path(), "live");
    let app = TestApp::spawn_with(|c| {
        c.server.tls_cert = Some(cert.clone());
        c.server.tls_key = Some(key.clone());
    })
    .await;
    let port = app.base.rsplit(':').next().unwrap().to_owned();
    let url = format!("https://localhost:{port}/healthz");
    assert!(client(&first, false).get(&url).send().await.is_ok());

    // Renewal writes new files over the old ones.
    let (new_cert, new_key, second) = certificate(files.path(), "renewed");
    std::fs::rename(&new_key, &key).unwrap();
    std::fs::rename(&new_cert, &cert).unwrap();
    // The files are looked at once a second, by the server's clock: moved on, not waited for.
    app.advance_clock(Duration::from_millis(1_100));
    assert!(client(&second, false).get(&url).send().await.is_ok());
    assert!(
        client(&first, false).get(&url).send().await.is_err(),
        "the old certificate is no longer served"
    );

    // A broken renewal keeps the last good certificate in service.
    std::fs::write(&cert, "not a certificate").unwrap();
    app.advance_clock(Duration::from_millis(1_100));
    assert!(client(&second, false).get(&url).send().await.is_ok());
    app.stop().await;
}

#[tokio::test]
async fn http2_in_clear_by_prior_knowledge() {
    let app = TestApp::spawn().await;
    let client = reqwest::Client::builder()
        .http2_prior_knowledge()
        .build()
        .unwrap();
    let resp = client.get(app.url("/healthz")).send().await.unwrap();
    assert_eq!(resp.version(), Version::HTTP_2);
    assert_eq!(resp.status(), StatusCode::OK);
    let resp = client
        .get(app.url("/v2/audit-log-webhook"))
        .bearer_auth(&app.admin)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    app.stop().await;
}

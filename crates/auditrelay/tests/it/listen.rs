//! `auditrelay listen`, run as a developer would: gzip batches over HTTP and HTTPS printed and
//! appended to a file, the Authorization check, the body limits, refusals on purpose, and
//! signatures checked against a JWKS file.

use std::io::Write as _;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay_core::SigningKey;
use auditrelay_core::format::Format;
use auditrelay_core::signing::render_jwks;
use flate2::Compression;
use flate2::write::GzEncoder;
use reqwest::StatusCode;
use tokio::io::{AsyncRead, AsyncReadExt as _};
use tokio::process::{Child, Command};
use tokio::task::JoinHandle;

use crate::support::eventually;
use crate::support::signing::{BIN, signed_line};

/// A running `auditrelay listen` and what it has written so far.
pub struct Listener {
    child: Child,
    pub url: String,
    stdout: Arc<Mutex<String>>,
    stderr: Arc<Mutex<String>>,
    readers: [JoinHandle<()>; 2],
}

/// Collects a pipe into a string as it arrives, until it closes.
fn collect(pipe: impl AsyncRead + Unpin + Send + 'static) -> (Arc<Mutex<String>>, JoinHandle<()>) {
    let text = Arc::new(Mutex::new(String::new()));
    let sink = Arc::clone(&text);
    let reader = tokio::spawn(async move {
        let mut pipe = pipe;
        let mut buf = [0u8; 8192];
        while let Ok(n) = pipe.read(&mut buf).await {
            if n == 0 {
                break;
            }
            sink.lock()
                .unwrap()
                .push_str(&String::from_utf8_lossy(&buf[..n]));
        }
    });
    (text, reader)
}

impl Listener {
    /// Starts `listen` on a free port with `args`, and waits until it says where it listens.
    pub async fn start(args: &[&str]) -> Self {
        let mut child = Command::new(BIN)
            .args(["listen", "--listen", "127.0.0.1:0"])
            .args(args)
            .env_remove("RUST_LOG")
            .env_remove("AUDITRELAY_LISTEN_AUTHORIZATION")
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .kill_on_drop(true)
            .spawn()
            .expect("the binary runs");
        let (stdout, stdout_reader) = collect(child.stdout.take().unwrap());
        let (stderr, stderr_reader) = collect(child.stderr.take().unwrap());
        let log = Arc::clone(&stderr);
        let url = eventually(Duration::from_secs(30), || {
            let text = log.lock().unwrap().clone();
            async move {
                let start = text.find("listening on ")? + "listening on ".len();
                let rest = &text[start..];
                let end = rest.find(|c: char| c == '"' || c.is_whitespace())?;
                Some(rest[..end].to_owned())
            }
        })
        .await;
        Self {
            child,
            url,
            stdout,
            stderr,
            readers: [stdout_reader, stderr_reader],
        }
    }

    pub fn stdout(&self) -> String {
        self.stdout.lock().unwrap().clone()
    }

    pub fn stderr(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    /// Waits until standard output holds `n` lines; returns them.
    pub async fn wait_for_stdout_lines(&self, n: usize) -> Vec<String> {
        eventually(Duration::from_secs(10), || {
            let text = self.stdout();
            async move {
                let lines: Vec<String> = text.lines().map(str::to_owned).collect();
                (lines.len() >= n).then_some(lines)
            }
        })
        .await
    }

    /// Sends SIGTERM, waits for a clean exit, and returns everything it logged.
    pub async fn stop(mut self) -> String {
        let pid = self.child.id().expect("still running").to_string();
        let status = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .unwrap();
        assert!(status.success());
        let exit = tokio::time::timeout(Duration::from_secs(15), self.child.wait())
            .await
            .expect("listen stops within the grace period")
            .unwrap();
        // The pipes close with the process; what it wrote last is read once they have.
        for reader in self.readers {
            reader.await.unwrap();
        }
        let log = self.stderr.lock().unwrap().clone();
        assert!(exit.success(), "{exit:?}: {log}");
        log
    }
}

fn gzip(bytes: &[u8]) -> Vec<u8> {
    let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
    encoder.write_all(bytes).unwrap();
    encoder.finish().unwrap()
}

fn client() -> reqwest::Client {
    reqwest::Client::builder()
        .tls_danger_accept_invalid_certs(true)
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap()
}

/// POSTs `body` as it is, with these headers.
async fn post(
    url: &str,
    headers: &[(&str, &str)],
    body: impl Into<reqwest::Body>,
) -> reqwest::Response {
    let mut request = client().post(url).body(body);
    for (name, value) in headers {
        request = request.header(*name, *value);
    }
    request.send().await.expect("listen answers")
}

/// POSTs `body` gzipped, as a delivery does.
async fn post_gzip(url: &str, authorization: Option<&str>, body: &[u8]) -> reqwest::Response {
    let mut headers = vec![
        ("content-type", "text/plain"),
        ("content-encoding", "gzip"),
        ("idempotency-key", "batch-1"),
    ];
    headers.extend(authorization.map(|value| ("authorization", value)));
    post(url, &headers, gzip(body)).await
}

#[tokio::test]
async fn listen_prints_a_gzip_batch_appends_it_to_a_file_and_stops_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("received.log");
    std::fs::write(&out, "earlier\n").unwrap();
    let listener = Listener::start(&["--path", "/hook", "--out", out.to_str().unwrap()]).await;
    assert!(
        listener.url.starts_with("http://127.0.0.1:"),
        "{}",
        listener.url
    );
    assert!(listener.url.ends_with("/hook"), "{}", listener.url);

    let resp = post_gzip(&listener.url, None, b"first line\r\n\n  \nsecond line\n").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    // Konnect's documented coding, and no coding at all, are accepted too.
    let gzip_as_documented = [("content-encoding", "application/gzip")];
    let resp = post(&listener.url, &gzip_as_documented, gzip(b"third line")).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let resp = post(&listener.url, &[], "fourth line\n").await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let lines = listener.wait_for_stdout_lines(4).await;
    assert_eq!(
        lines,
        ["first line", "second line", "third line", "fourth line"]
    );
    assert_eq!(
        std::fs::read_to_string(&out).unwrap(),
        "earlier\nfirst line\nsecond line\nthird line\nfourth line\n"
    );

    // Only POST, only on the path.
    let base = listener.url.trim_end_matches("/hook");
    let resp = post(&format!("{base}/other"), &[], "x").await;
    assert_eq!(resp.status(), StatusCode::NOT_FOUND);
    let resp = client().get(&listener.url).send().await.unwrap();
    assert_eq!(resp.status(), StatusCode::METHOD_NOT_ALLOWED);
    assert_eq!(resp.headers()["allow"], "POST");
    let resp = post(&listener.url, &[("content-encoding", "br")], "x").await;
    assert_eq!(resp.status(), StatusCode::UNSUPPORTED_MEDIA_TYPE);

    let log = listener.stop().await;
    assert!(log.contains("batch 1: 2 lines"), "{log}");
    assert!(log.contains("stopped"), "{log}");
}

#[tokio::test]
async fn listen_over_tls_checks_authorization_and_the_body_limits() {
    let secret = "Splunk s3cr3t-value";
    let listener = Listener::start(&[
        "--tls-self-signed",
        "--authorization",
        secret,
        "--max-body-bytes",
        "1000",
    ])
    .await;
    assert!(
        listener.url.starts_with("https://127.0.0.1:"),
        "{}",
        listener.url
    );
    let log = listener.stderr();
    let fingerprint_at = log
        .find("SHA-256 fingerprint ")
        .expect("the fingerprint is logged")
        + "SHA-256 fingerprint ".len();
    let fingerprint = &log[fingerprint_at..fingerprint_at + 95];
    assert_eq!(fingerprint.matches(':').count(), 31, "{fingerprint}");

    // A client that verifies certificates refuses the self-signed one: it really is TLS.
    assert!(
        reqwest::Client::new()
            .post(&listener.url)
            .body("x")
            .send()
            .await
            .is_err()
    );

    assert_eq!(
        post_gzip(&listener.url, None, b"line\n").await.status(),
        StatusCode::UNAUTHORIZED
    );
    for wrong in [
        "Splunk s3cr3t-valu",
        "Splunk s3cr3t-value2",
        "splunk s3cr3t-value",
    ] {
        assert_eq!(
            post_gzip(&listener.url, Some(wrong), b"line\n")
                .await
                .status(),
            StatusCode::UNAUTHORIZED,
            "{wrong}"
        );
    }
    assert_eq!(
        post_gzip(&listener.url, Some(secret), b"allowed line\n")
            .await
            .status(),
        StatusCode::ACCEPTED
    );

    // 1001 decoded bytes from a tiny gzip body: 413, however small the compressed body is.
    let oversize = vec![b'x'; 1001];
    assert_eq!(
        post_gzip(&listener.url, Some(secret), &oversize)
            .await
            .status(),
        StatusCode::PAYLOAD_TOO_LARGE
    );
    // A plain body over the limit is refused too, and so is a huge compressed body.
    let plain = [("authorization", secret)];
    let resp = post(&listener.url, &plain, oversize).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let gzipped = [("authorization", secret), ("content-encoding", "gzip")];
    let resp = post(&listener.url, &gzipped, vec![0u8; 64 * 1024]).await;
    assert_eq!(resp.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let resp = post(&listener.url, &gzipped, "this is not gzip").await;
    assert_eq!(resp.status(), StatusCode::BAD_REQUEST);

    assert_eq!(listener.wait_for_stdout_lines(1).await, ["allowed line"]);
    let log = listener.stop().await;
    assert!(log.contains("wrong or missing Authorization"), "{log}");
    assert!(
        !log.contains("s3cr3t"),
        "the authorization value is never printed: {log}"
    );
}

#[tokio::test]
async fn fail_status_refuses_every_delivery_and_fail_first_only_the_first() {
    let always = Listener::start(&["--fail-status", "500"]).await;
    for _ in 0..2 {
        assert_eq!(
            post_gzip(&always.url, None, b"line\n").await.status(),
            StatusCode::INTERNAL_SERVER_ERROR
        );
    }
    assert_eq!(always.stdout(), "");

    let flaky = Listener::start(&["--fail-first", "2", "--fail-status", "503"]).await;
    let mut statuses = Vec::new();
    for n in 0..3 {
        let resp = post_gzip(&flaky.url, None, format!("line {n}\n").as_bytes()).await;
        statuses.push(resp.status().as_u16());
    }
    assert_eq!(statuses, [503, 503, 202]);
    assert_eq!(flaky.wait_for_stdout_lines(1).await, ["line 2"]);
    // Every post carried the same Idempotency-Key: a sender's retries of batch 1.
    let log = flaky.stop().await;
    assert!(log.contains("batch 1: refused on purpose"), "{log}");
    assert!(
        log.contains("batch 2 (a retry of batch 1): refused on purpose"),
        "{log}"
    );
    assert!(
        log.contains("batch 3 (a retry of batch 1): 1 lines"),
        "{log}"
    );
}

#[tokio::test]
async fn jwks_verification_reports_tampered_lines_but_accepts_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let key = SigningKey::from_seed(&[11; 32]);
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, render_jwks(&[key.public_key().clone()])).unwrap();
    let listener = Listener::start(&["--jwks", jwks.to_str().unwrap(), "--summary"]).await;

    let good_cef = signed_line(Format::Cef, 1, &key);
    let tampered = String::from_utf8(signed_line(Format::Json, 2, &key))
        .unwrap()
        .replacen("trace-2", "trace-9", 1);
    let good_cps = signed_line(Format::Cps, 3, &key);
    let mut body = Vec::new();
    for line in [&good_cef[..], tampered.as_bytes(), &good_cps[..]] {
        body.extend_from_slice(line);
        body.push(b'\n');
    }
    let compressed_len = gzip(&body).len();
    let resp = post_gzip(&listener.url, None, &body).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    let summary = listener.wait_for_stdout_lines(1).await;
    let summary: serde_json::Value = serde_json::from_str(&summary[0]).unwrap();
    assert_eq!(summary["lines"], 3, "{summary}");
    assert_eq!(summary["verified"], 2, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    assert_eq!(summary["bytes"], compressed_len, "{summary}");
    assert_eq!(summary["decoded_bytes"], body.len(), "{summary}");
    assert_eq!(summary["idempotency_key"], "batch-1", "{summary}");
    assert!(
        summary["received_at"].as_str().unwrap().ends_with('Z'),
        "{summary}"
    );
    let log = listener.stop().await;
    assert!(
        log.contains("batch 1, line 2: INVALID signature: no known key verifies the signature"),
        "{log}"
    );
    assert!(
        !log.contains("line 1: INVALID") && !log.contains("line 3: INVALID"),
        "{log}"
    );
}

/// After `keys rotate`, lines come signed by a key the JWKS had not published when `listen`
/// loaded it: it fetches the JWKS again before calling them invalid, and a tampered line is
/// still caught.
#[tokio::test]
async fn a_rotated_key_is_fetched_again_instead_of_a_false_alarm() {
    let dir = tempfile::tempdir().unwrap();
    let old = SigningKey::from_seed(&[21; 32]);
    let new = SigningKey::from_seed(&[22; 32]);
    let jwks = dir.path().join("jwks.json");
    std::fs::write(&jwks, render_jwks(&[old.public_key().clone()])).unwrap();
    let listener = Listener::start(&["--jwks", jwks.to_str().unwrap(), "--summary"]).await;

    // The rotation publishes the new key beside the old one.
    let both = [old.public_key().clone(), new.public_key().clone()];
    std::fs::write(&jwks, render_jwks(&both)).unwrap();
    let tampered = String::from_utf8(signed_line(Format::Json, 2, &new))
        .unwrap()
        .replacen("trace-2", "trace-9", 1);
    let mut body = Vec::new();
    for line in [&signed_line(Format::Cef, 1, &new)[..], tampered.as_bytes()] {
        body.extend_from_slice(line);
        body.push(b'\n');
    }
    let resp = post_gzip(&listener.url, None, &body).await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let summary = listener.wait_for_stdout_lines(1).await;
    let summary: serde_json::Value = serde_json::from_str(&summary[0]).unwrap();
    assert_eq!(summary["verified"], 1, "{summary}");
    assert_eq!(summary["failed"], 1, "{summary}");
    let log = listener.stop().await;
    assert!(log.contains("reloaded the JWKS"), "{log}");
    assert!(!log.contains("line 1: INVALID"), "{log}");
    assert!(log.contains("batch 1, line 2: INVALID signature"), "{log}");
}

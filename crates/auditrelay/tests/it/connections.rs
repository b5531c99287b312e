//! What the server does with clients that hold connections without using them: slow request
//! heads, idle keep-alive connections, more connections than descriptors. The real binary, with
//! its open-files limit lowered to 256 (`prlimit`), as the security review ran it.

use std::process::Stdio;
use std::time::Duration;

use reqwest::StatusCode;
use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;
use tokio::process::{Child, Command};

use crate::support::events::{authorization, ndjson};
use crate::support::now;
use crate::support::process::{create_token, free_port, serve_with};
use crate::support::signing::BIN;

/// The binary under `prlimit --nofile=256`, with `env` on top; `None` (skipped) without prlimit.
async fn serve_with_few_descriptors(
    data: &std::path::Path,
    port: u16,
    env: &[(&str, &str)],
) -> Option<Child> {
    if std::process::Command::new("prlimit")
        .arg("--version")
        .output()
        .is_err()
    {
        crate::support::skip_unless_ci("prlimit (util-linux) is not installed");
        return None;
    }
    let mut command = Command::new("prlimit");
    command
        .args(["--nofile=256:256", BIN])
        .env("AUDITRELAY_LOG__LEVEL", "error")
        .envs(env.iter().copied())
        .stderr(Stdio::inherit());
    Some(serve_with(command, data, port).await)
}

/// Opens `n` connections that send the start of a request head and nothing more.
async fn slow_heads(port: u16, n: usize) -> Vec<TcpStream> {
    let mut held = Vec::new();
    for _ in 0..n {
        match TcpStream::connect(("127.0.0.1", port)).await {
            Ok(mut stream) => {
                let _ = stream.write_all(b"GET / HTTP/1.1\r\n").await;
                held.push(stream);
            }
            // The server's backlog may fill while it makes room: that is its business.
            Err(_) => tokio::time::sleep(Duration::from_millis(5)).await,
        }
    }
    held
}

#[tokio::test]
async fn slow_heads_beyond_the_descriptor_limit_do_not_lock_out_healthz_or_ingest() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "event-producer");
    let port = free_port();
    // A long header timeout: what keeps the server answerable here is making room, not timing
    // the slow clients out.
    let env = [("AUDITRELAY_SERVER__HEADER_READ_TIMEOUT", "5m")];
    let Some(mut server) = serve_with_few_descriptors(dir.path(), port, &env).await else {
        return;
    };
    let held = slow_heads(port, 300).await;
    assert!(
        held.len() >= 200,
        "the test opened {} connections",
        held.len()
    );

    let client = reqwest::Client::builder()
        .timeout(Duration::from_secs(10))
        .build()
        .unwrap();
    let base = format!("http://127.0.0.1:{port}");
    for _ in 0..5 {
        let health = client.get(format!("{base}/healthz")).send().await;
        assert_eq!(health.expect("/healthz answers").status(), StatusCode::OK);
        let ingest = client
            .post(format!("{base}/v1/events"))
            .bearer_auth(&token)
            .header("content-type", "application/x-ndjson")
            .body(ndjson(&[authorization(now(), "while-held")]))
            .send()
            .await;
        assert_eq!(
            ingest.expect("ingest answers").status(),
            StatusCode::ACCEPTED
        );
    }
    drop(held);
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

#[tokio::test]
async fn a_slow_head_is_cut_off_and_an_idle_connection_closed() {
    let dir = tempfile::tempdir().unwrap();
    create_token(dir.path(), "event-producer");
    let port = free_port();
    let env = [
        ("AUDITRELAY_SERVER__HEADER_READ_TIMEOUT", "1s"),
        ("AUDITRELAY_SERVER__IDLE_TIMEOUT", "2s"),
    ];
    let Some(mut server) = serve_with_few_descriptors(dir.path(), port, &env).await else {
        return;
    };

    // A head that never completes: the server closes the connection.
    let mut slow = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    slow.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n")
        .await
        .unwrap();
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), slow.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "a slow head is not waited for");

    // A kept-alive connection after its request: open until the idle timeout, then closed.
    let mut idle = TcpStream::connect(("127.0.0.1", port)).await.unwrap();
    idle.write_all(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
        .await
        .unwrap();
    let mut answer = [0u8; 512];
    let n = idle.read(&mut answer).await.unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 200"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    let mut rest = Vec::new();
    let closed = tokio::time::timeout(Duration::from_secs(20), idle.read_to_end(&mut rest)).await;
    assert!(closed.is_ok(), "an idle connection is closed");
    server.start_kill().unwrap();
    let _ = server.wait().await;
}

/// A UI form whose body never arrives is cut off at the request timeout like an API request,
/// so such requests cannot hold connection slots (they count as busy) for ever.
#[tokio::test]
async fn a_ui_form_whose_body_never_arrives_times_out() {
    let app = crate::support::TestApp::spawn_with(|c| {
        c.server.request_timeout = Duration::from_secs(1);
    })
    .await;
    let addr = app.base.trim_start_matches("http://").to_owned();
    let mut stream = TcpStream::connect(&addr).await.unwrap();
    stream
        .write_all(
            b"POST /ui/sign-in HTTP/1.1\r\nHost: x\r\n\
              Content-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\n\r\n",
        )
        .await
        .unwrap();
    let mut answer = [0u8; 64];
    let n = tokio::time::timeout(Duration::from_secs(20), stream.read(&mut answer))
        .await
        .expect("answered at the request timeout")
        .unwrap();
    assert!(
        answer[..n].starts_with(b"HTTP/1.1 408"),
        "{}",
        String::from_utf8_lossy(&answer[..n])
    );
    app.stop().await;
}

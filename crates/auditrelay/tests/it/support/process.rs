//! The real binary as a separate process: its CLI on a data directory, `serve` on a port of
//! its own (waiting until it is ready), and the set-up a test of it needs (a token, a bound
//! webhook, a free port).

use std::path::Path;
use std::process::Stdio;
use std::time::Duration;

use auditrelay::client::ApiClient;
use auditrelay_core::Region;
use reqwest::StatusCode;
use serde_json::Value;
use tokio::process::{Child, Command};

use super::eventually;
use super::signing::BIN;

pub fn cli(args: &[&str], data_dir: &Path) -> std::process::Output {
    std::process::Command::new(BIN)
        .args(args)
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .output()
        .expect("the binary runs")
}

pub fn create_token(data_dir: &Path, role: &str) -> String {
    // `token` works on an installation and never makes one: the tests' fresh directories get
    // theirs as an operator would.
    if !data_dir.join("auditrelay.db").exists() {
        let made = cli(&["migrate", "--create"], data_dir);
        assert!(
            made.status.success(),
            "{}",
            String::from_utf8_lossy(&made.stderr)
        );
    }
    let out = cli(
        &[
            "token", "create", "--name", "test", "--role", role, "--kind", "system",
        ],
        data_dir,
    );
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let stdout = String::from_utf8(out.stdout).unwrap();
    stdout
        .lines()
        .last()
        .expect("the token is the last line")
        .to_owned()
}

pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

/// Runs `serve` on `port` as `--dev` would, so webhooks may reach the tests' loopback
/// receivers over http, with `env` (`AUDITRELAY_SECTION__KEY` pairs) on top.
pub async fn serve_dev(data_dir: &Path, port: u16, env: &[(&str, &str)]) -> Child {
    let mut command = Command::new(BIN);
    command
        .env("AUDITRELAY_DELIVERY__ALLOW_HTTP_ENDPOINTS", "true")
        .env("AUDITRELAY_DELIVERY__ALLOW_PRIVATE_ENDPOINTS", "true")
        .env("AUDITRELAY_LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .stderr(Stdio::inherit());
    serve_with(command, data_dir, port).await
}

/// Creates `destination` on the server at `base` and binds the `us` org webhook to it, enabled,
/// through the project's API client.
pub async fn bind_org_webhook(base: &str, token: &str, destination: Value) {
    let api = ApiClient::new(
        base,
        token.parse().unwrap(),
        "auditrelay-tests",
        Duration::from_secs(30),
    )
    .unwrap();
    let us = Region::parse("us").unwrap();
    if let Err(e) = api.bind_new_destination(&us, &destination).await {
        panic!("binding the us webhook: {e}");
    }
}

/// Runs `serve` on `port` with whatever else `command` (a `Command` for the binary, see
/// [`BIN`]) says — arguments after `serve`'s own, environment, stderr — and waits until it is
/// ready.
pub async fn serve_with(mut command: Command, data_dir: &Path, port: u16) -> Child {
    let child = command
        .args(["serve", "--listen", &format!("127.0.0.1:{port}")])
        .arg("--data-dir")
        .arg(data_dir)
        .env_remove("RUST_LOG")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .expect("serve starts");
    let client = reqwest::Client::new();
    let url = format!("http://127.0.0.1:{port}/readyz");
    eventually(Duration::from_secs(30), || {
        let req = client.get(&url).send();
        async move {
            req.await
                .ok()
                .filter(|r| r.status() == StatusCode::OK)
                .map(drop)
        }
    })
    .await;
    child
}

//! Durability with the real binary: every acknowledged event survives SIGKILL; `token create`
//! works while a server runs on the same data directory.

use std::collections::HashSet;
use std::path::Path;
use std::process::Stdio;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use auditrelay::config::Config;
use auditrelay::store::{EventQuery, Store};
use auditrelay_core::{Region, Timestamp};
use reqwest::StatusCode;
use tokio::process::{Child, Command};

use crate::support::events::{authorization, ndjson};
use crate::support::process::{create_token, free_port, serve_with};
use crate::support::signing::BIN;
use crate::support::{eventually, now};

async fn serve(data_dir: &Path, port: u16) -> Child {
    let mut command = Command::new(BIN);
    command
        .env("AUDITRELAY_LOG__LEVEL", "warn")
        .stderr(Stdio::inherit());
    serve_with(command, data_dir, port).await
}

async fn stored_traces(data_dir: &Path) -> HashSet<String> {
    let store = Store::open(&Config::for_data_dir(data_dir).unwrap())
        .await
        .unwrap();
    let (org, _) = store.ensure_default_org("default", now()).await.unwrap();
    let events = store
        .list_events(&EventQuery {
            org_id: org.id,
            region: Region::parse("us").unwrap(),
            portal_id: None,
            ts_from: Timestamp::from_millis(0),
            ts_to: now().saturating_add_millis(600_000),
            event_type: None,
            after: None,
            through_seq: None,
            limit: 1_000_000,
        })
        .await
        .unwrap();
    store.close().await;
    events
        .into_iter()
        .filter_map(|e| e.event.trace_id)
        .collect()
}

#[tokio::test]
async fn acknowledged_events_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "event-producer");
    let port = free_port();
    let mut server = serve(dir.path(), port).await;

    let (acked, writers) = spawn_writers(port, &token, 4);
    // Kill while the writers are mid-stream.
    wait_for_acks(&acked, 3000).await;
    server.start_kill().unwrap();
    server.wait().await.unwrap();
    for w in writers {
        w.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();

    // Restart on the same data directory, then read what is there.
    let mut restarted = serve(dir.path(), port).await;
    let stored = stored_traces(dir.path()).await;
    let lost: Vec<&String> = acked.iter().filter(|t| !stored.contains(*t)).collect();
    assert!(
        lost.is_empty(),
        "{} of {} acknowledged events lost, e.g. {:?}",
        lost.len(),
        acked.len(),
        &lost[..lost.len().min(5)]
    );
    restarted.start_kill().unwrap();
    restarted.wait().await.unwrap();
}

/// Starts `writers` clients that send 100-event batches until the server stops answering;
/// returns the trace ids the server acknowledged.
fn spawn_writers(
    port: u16,
    token: &str,
    writers: usize,
) -> (Arc<Mutex<Vec<String>>>, Vec<tokio::task::JoinHandle<()>>) {
    let acked: Arc<Mutex<Vec<String>>> = Arc::default();
    let client = reqwest::Client::new();
    let tasks = (0..writers)
        .map(|writer| {
            let (client, token, acked) = (client.clone(), token.to_owned(), acked.clone());
            tokio::spawn(async move {
                for batch in 0.. {
                    let ts = now();
                    let traces: Vec<String> = (0..100)
                        .map(|i| format!("w{writer}-b{batch}-e{i}"))
                        .collect();
                    let events: Vec<_> = traces.iter().map(|t| authorization(ts, t)).collect();
                    let sent = client
                        .post(format!("http://127.0.0.1:{port}/v1/events"))
                        .bearer_auth(&token)
                        .header("content-type", "application/x-ndjson")
                        .body(ndjson(&events))
                        .send()
                        .await;
                    match sent {
                        Ok(resp) if resp.status() == StatusCode::ACCEPTED => {
                            acked.lock().unwrap().extend(traces)
                        }
                        _ => return,
                    }
                }
            })
        })
        .collect();
    (acked, tasks)
}

async fn wait_for_acks(acked: &Arc<Mutex<Vec<String>>>, n: usize) {
    eventually(Duration::from_secs(60), || {
        let have = acked.lock().unwrap().len();
        async move { (have >= n).then_some(()) }
    })
    .await;
}

#[tokio::test]
async fn sigterm_finishes_in_flight_requests_and_exits_cleanly() {
    let dir = tempfile::tempdir().unwrap();
    let token = create_token(dir.path(), "event-producer");
    let port = free_port();
    let mut server = serve(dir.path(), port).await;
    let (acked, writers) = spawn_writers(port, &token, 4);
    wait_for_acks(&acked, 2000).await;

    let pid = server.id().expect("running").to_string();
    let status = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(status.success());
    let exit = tokio::time::timeout(Duration::from_secs(30), server.wait())
        .await
        .expect("stops in time")
        .unwrap();
    assert!(exit.success(), "a graceful stop exits 0, got {exit}");
    for w in writers {
        w.await.unwrap();
    }
    let acked: Vec<String> = acked.lock().unwrap().clone();
    let stored = stored_traces(dir.path()).await;
    let lost = acked.iter().filter(|t| !stored.contains(*t)).count();
    assert_eq!(
        lost,
        0,
        "{lost} of {} acknowledged events lost",
        acked.len()
    );
}

#[tokio::test]
async fn tokens_can_be_created_while_the_server_runs() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let mut server = serve(dir.path(), port).await;
    let token = create_token(dir.path(), "org-admin");
    let resp = reqwest::Client::new()
        .get(format!("http://127.0.0.1:{port}/v3/portals"))
        .bearer_auth(&token)
        .send()
        .await
        .unwrap();
    assert_eq!(resp.status(), StatusCode::OK);
    server.start_kill().unwrap();
    server.wait().await.unwrap();
}

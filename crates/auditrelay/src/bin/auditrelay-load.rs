//! `auditrelay-load`: the whole-service load tool. It starts an `auditrelay serve` on a fresh
//! data directory (or targets `--url` with `--token`), runs a named scenario, and prints a
//! human summary and, with `--json`, one JSON object for tracking figures over time.
//!
//! Every figure is put next to the single-core Ed25519 signing rate measured in the same run,
//! because that rate is the ceiling the product's performance claims are stated against.
//!
//! Scenarios: `ingest` — N events through `POST /v1/events` in batches, with C concurrent
//! clients; events/s counts only events the server acknowledged (202, durably stored).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use auditrelay_core::format::{Format, sign_event};
use auditrelay_core::{Event, EventDetail, FormatConfig, OrgId, Region, SigningKey, Timestamp};
use clap::{Parser, Subcommand};
use serde_json::json;
use tokio::process::{Child, Command};

#[derive(Debug, Parser)]
#[command(
    name = "auditrelay-load",
    about = "Load tool for auditrelay: ingest throughput and more, measured against the signing limit"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Target a running server instead of starting one (needs --token).
    #[arg(long, global = true, requires = "token")]
    url: Option<String>,
    /// A token with ingest rights on the --url server.
    #[arg(long, global = true)]
    token: Option<String>,
    /// The `auditrelay` binary to start (default: next to this one).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// Print one JSON object with every figure to stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Subcommand)]
enum Scenario {
    /// Events through POST /v1/events: events/s durably stored.
    Ingest {
        #[arg(long, default_value_t = 1_000_000)]
        events: u64,
        #[arg(long, default_value_t = 1000)]
        batch: u64,
        #[arg(long, default_value_t = 4)]
        concurrency: u64,
    },
}

/// A started server and where it lives.
struct Target {
    url: String,
    token: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

impl Target {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let signing_rate = single_core_signing_rate();
    eprintln!("single-core Ed25519 render+sign rate (CEF): {signing_rate:.0} events/s");

    let mut target = match (&cli.url, &cli.token) {
        (Some(url), Some(token)) => Target {
            url: url.clone(),
            token: token.clone(),
            child: None,
            _dir: None,
        },
        _ => start_server(cli.server_bin.as_deref()).await?,
    };
    let report = match cli.scenario {
        Scenario::Ingest {
            events,
            batch,
            concurrency,
        } => ingest(&target, events, batch, concurrency, signing_rate).await?,
    };
    if let Some(mut child) = target.child.take() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    if cli.json {
        println!("{report}");
    }
    Ok(())
}

/// Renders and signs a typical event repeatedly on this thread for about a second.
fn single_core_signing_rate() -> f64 {
    let key = SigningKey::from_seed(&[7; 32]);
    let config = FormatConfig::default();
    let event = sample_event();
    let mut buf = Vec::with_capacity(512);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        for _ in 0..100 {
            buf.clear();
            sign_event(Format::Cef, &event, &config, &key, &mut buf);
        }
        n += 100;
    }
    n as f64 / started.elapsed().as_secs_f64()
}

fn sample_event() -> Event {
    Event {
        ts: Timestamp::from_millis(1_750_280_466_889),
        org_id: OrgId::nil(),
        region: Region::parse("us").expect("valid"),
        portal_id: None,
        principal_id: Some("eb999f01-5976-4f4b-9fbc-dd5d514bd675".into()),
        principal_name: None,
        actor_id: None,
        client_ip: Some("127.0.0.6".into()),
        uri: None,
        user_agent: Some("grpc-node-js/1.12.4".into()),
        trace_id: Some("3959872677347089807".into()),
        detail: EventDetail::Authorization {
            service: "konnect".into(),
            resource: "control-planes".into(),
            action: "list".into(),
            granted: true,
            kong_initiated: None,
        },
    }
}

async fn start_server(bin: Option<&Path>) -> anyhow::Result<Target> {
    let bin = match bin {
        Some(bin) => bin.to_owned(),
        None => std::env::current_exe()?.with_file_name("auditrelay"),
    };
    if !bin.exists() {
        bail!(
            "{} does not exist: build it first (cargo build --release --bins)",
            bin.display()
        );
    }
    let dir = tempfile::tempdir()?;
    let out = std::process::Command::new(&bin)
        .args([
            "token",
            "create",
            "--name",
            "load",
            "--role",
            "event-producer",
            "--kind",
            "system",
            "--data-dir",
        ])
        .arg(dir.path())
        .output()
        .context("Failed to run `auditrelay token create`")?;
    if !out.status.success() {
        bail!(
            "token create failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    let token = String::from_utf8(out.stdout)?
        .lines()
        .last()
        .context("no token printed")?
        .to_owned();
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(&bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir.path())
        .env("AUDITRELAY_LOG__LEVEL", "warn")
        .stdout(Stdio::null())
        .kill_on_drop(true)
        .spawn()
        .context("Failed to start `auditrelay serve`")?;
    let url = format!("http://127.0.0.1:{port}");
    let client = reqwest::Client::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Ok(resp) = client.get(format!("{url}/readyz")).send().await
            && resp.status().is_success()
        {
            break;
        }
        if Instant::now() > deadline {
            bail!("the server did not become ready within 30 s");
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    eprintln!(
        "started {} on {url} (data in {})",
        bin.display(),
        dir.path().display()
    );
    Ok(Target {
        url,
        token,
        child: Some(child),
        _dir: Some(dir),
    })
}

/// An NDJSON body of `batch` events stamped just before `now`, ascending, with unique trace
/// ids: what a gateway sends. Built from a template so that the client spends its CPU
/// sending rather than formatting JSON.
fn body(batch: u64, request: u64) -> axum::body::Bytes {
    const HEAD: &str = r#"{"type":"authorization","ts":""#;
    const TAIL: &str = r#"","service":"konnect","resource":"control-planes","action":"list","granted":true,"principal_id":"eb999f01-5976-4f4b-9fbc-dd5d514bd675","client_ip":"127.0.0.6","user_agent":"grpc-node-js/1.12.4","trace_id":""#;
    let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc());
    let mut body = String::with_capacity(batch as usize * 300);
    for i in 0..batch {
        let ts = now
            .saturating_sub_millis((batch - i) as i64)
            .to_rfc3339_millis();
        body.push_str(HEAD);
        body.push_str(&ts);
        body.push_str(TAIL);
        body.push_str(&format!("{request}-{i}\"}}\n"));
    }
    axum::body::Bytes::from(body)
}

async fn ingest(
    target: &Target,
    events: u64,
    batch: u64,
    concurrency: u64,
    signing_rate: f64,
) -> anyhow::Result<serde_json::Value> {
    let batches = events.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(concurrency as usize)
        .build()?;
    let cpu_before = target.pid().and_then(cpu_seconds);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (client, next, acked) = (client.clone(), next.clone(), acked.clone());
        let url = format!("{}/v1/events", target.url);
        let token = target.token.clone();
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= batches {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let sent = Instant::now();
                let resp = client
                    .post(&url)
                    .bearer_auth(&token)
                    .header("content-type", "application/x-ndjson")
                    .body(body(batch, i))
                    .send()
                    .await?;
                if resp.status() != reqwest::StatusCode::ACCEPTED {
                    bail!(
                        "batch {i}: {} {}",
                        resp.status(),
                        resp.text().await.unwrap_or_default()
                    );
                }
                latencies.push(sent.elapsed());
                acked.fetch_add(batch, Ordering::Relaxed);
            }
        }));
    }
    let progress = {
        let acked = acked.clone();
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let done = acked.load(Ordering::Relaxed);
                eprint!(
                    "\r  {done:>10} / {events} events acknowledged ({:>3.0}%)",
                    100.0 * done as f64 / events as f64
                );
            }
        })
    };
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    progress.abort();
    eprintln!();
    let elapsed = started.elapsed().as_secs_f64();
    let stored = acked.load(Ordering::Relaxed);
    let rate = stored as f64 / elapsed;
    latencies.sort();
    let pct =
        |p: f64| latencies[((latencies.len() as f64 - 1.0) * p) as usize].as_secs_f64() * 1000.0;
    let cpu = match (cpu_before, target.pid().and_then(cpu_seconds)) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss_mb = target.pid().and_then(peak_rss_mb);
    let db_bytes = target._dir.as_ref().map(|d| dir_size(d.path()));

    eprintln!("ingest: {stored} events in {elapsed:.2} s = {rate:.0} events/s durably stored");
    eprintln!(
        "        batch {batch}, concurrency {concurrency}; request latency p50 {:.1} ms, p99 {:.1} ms",
        pct(0.5),
        pct(0.99)
    );
    if let Some(cpu) = cpu {
        eprintln!(
            "        server CPU {cpu:.1} s ({:.2} ms per 1,000 events)",
            cpu * 1e6 / stored as f64
        );
    }
    if let Some(rss) = rss_mb {
        eprintln!("        server peak RSS {rss:.0} MB");
    }
    if let Some(bytes) = db_bytes {
        eprintln!(
            "        data directory {:.1} MB ({:.0} bytes per event, before checkpoint)",
            bytes as f64 / 1e6,
            bytes as f64 / stored as f64
        );
    }
    eprintln!(
        "        {:.2} × the single-core signing rate",
        rate / signing_rate
    );
    Ok(json!({
        "scenario": "ingest",
        "events": stored,
        "batch": batch,
        "concurrency": concurrency,
        "seconds": elapsed,
        "events_per_second": rate,
        "latency_ms": {"p50": pct(0.5), "p95": pct(0.95), "p99": pct(0.99)},
        "server_cpu_seconds": cpu,
        "server_cpu_ms_per_1000_events": cpu.map(|c| c * 1e6 / stored as f64),
        "server_peak_rss_mb": rss_mb,
        "data_dir_bytes": db_bytes,
        "signing_rate_single_core": signing_rate,
        "ratio_to_signing_rate": rate / signing_rate,
    }))
}

/// User + system CPU seconds of a process (Linux `/proc/<pid>/stat`, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name, which is in parentheses and may contain spaces.
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let utime: f64 = fields.get(11)?.parse().ok()?;
    let stime: f64 = fields.get(12)?.parse().ok()?;
    Some((utime + stime) / 100.0)
}

/// Peak resident set size (VmHWM) in MB.
fn peak_rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

fn dir_size(path: &Path) -> u64 {
    std::fs::read_dir(path)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

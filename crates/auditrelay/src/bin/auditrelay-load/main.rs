//! `auditrelay-load`: the whole-service load tool. It starts an `auditrelay serve` on a fresh
//! data directory (or targets `--url` with `--token`), runs a named scenario, and prints a
//! human summary and, with `--json`, one JSON object for tracking figures over time.
//!
//! Every figure is put next to the single-core Ed25519 signing rate measured in the same run,
//! because that rate is the ceiling the product's performance claims are stated against. The
//! rate is measured before the scenario and again after it: the machines we run on drift, and
//! two figures that disagree say the run is not to be trusted.
//!
//! Scenarios:
//! - `ingest` ([`ingest`]) — N events through `POST /v1/events` in batches, with C concurrent
//!   clients; events/s counts only events the server acknowledged (202, durably stored);
//! - `deliver` ([`deliver`]) — events ingested and delivered by the org webhook to a receiver
//!   inside this tool ([`receiver`]): delivered events/s end to end, or ingest → receipt latency
//!   at a steady rate, with every event checked to arrive exactly once;
//! - `replay` ([`replay`]) — a window of N past events, ingested before the webhook existed,
//!   re-sent by a replay job to the same receiver: replayed events/s and the server's peak RSS
//!   while it runs, with every event checked to arrive exactly once.

mod deliver;
mod ingest;
mod receiver;
mod replay;

use std::path::{Path, PathBuf};
use std::process::Stdio;
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
    about = "Load tool for auditrelay: ingest and delivery, measured against the signing limit"
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Target a running server instead of starting one (needs --token).
    #[arg(long, global = true, requires = "token")]
    url: Option<String>,
    /// A token with ingest rights on the --url server (`deliver` also configures the webhook
    /// with it, so it must be an org-admin's).
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
    /// Events ingested and delivered by the org webhook to a receiver in this tool: delivered
    /// events/s (throughput, the default) or ingest → receipt latency at a steady --rate.
    ///
    /// With --url, the server must allow http and private webhook endpoints (`serve --dev`),
    /// and --token must be an org admin's: it configures the `us` org webhook.
    Deliver(deliver::DeliverArgs),
    /// A window of past events, ingested before the org webhook is enabled, replayed by
    /// `PUT /us/v3/audit-log-replay-job` to a receiver in this tool: replayed events/s and the
    /// server's peak RSS during the replay.
    ///
    /// With --url, the same conditions as for `deliver`.
    Replay(replay::ReplayArgs),
}

/// A server to load, and the tokens to do it with.
pub struct Target {
    pub url: String,
    /// Ingests (an event producer's token, or --token).
    pub token: String,
    /// Configures webhooks (an org admin's token, or --token).
    pub admin_token: String,
    child: Option<Child>,
    dir: Option<tempfile::TempDir>,
}

impl Target {
    fn pid(&self) -> Option<u32> {
        self.child.as_ref().and_then(Child::id)
    }

    /// The server's CPU seconds so far, when this tool started it.
    pub fn cpu_seconds(&self) -> Option<f64> {
        self.pid().and_then(cpu_seconds)
    }

    /// The server's peak resident set size in MB, when this tool started it.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        self.pid().and_then(peak_rss_mb)
    }

    /// Lowers the server's recorded peak RSS to its current RSS (Linux: `5` written to
    /// `/proc/<pid>/clear_refs`), so that [`Self::peak_rss_mb`] covers only what follows;
    /// whether it did.
    pub fn reset_peak_rss(&self) -> bool {
        self.pid()
            .is_some_and(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    }

    /// The size of the data directory, when this tool made it.
    pub fn data_dir_bytes(&self) -> Option<u64> {
        self.dir.as_ref().map(|d| dir_size(d.path()))
    }
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let signing_rate = single_core_signing_rate();
    eprintln!("single-core Ed25519 render+sign rate (CEF): {signing_rate:.0} events/s");

    // Delivery to the tool's own receiver goes over http to loopback, which a server refuses
    // unless told otherwise; the ingest scenario has no webhook, so the settings change nothing.
    let env: &[(&str, &str)] = match cli.scenario {
        Scenario::Ingest { .. } => &[],
        Scenario::Deliver(_) | Scenario::Replay(_) => &[
            ("AUDITRELAY_DELIVERY__ALLOW_HTTP_ENDPOINTS", "true"),
            ("AUDITRELAY_DELIVERY__ALLOW_PRIVATE_ENDPOINTS", "true"),
        ],
    };
    let mut target = match (&cli.url, &cli.token) {
        (Some(url), Some(token)) => Target {
            url: url.clone(),
            token: token.clone(),
            admin_token: token.clone(),
            child: None,
            dir: None,
        },
        _ => start_server(cli.server_bin.as_deref(), env).await?,
    };
    let result = match cli.scenario {
        Scenario::Ingest {
            events,
            batch,
            concurrency,
        } => ingest::ingest(&target, events, batch, concurrency, signing_rate).await,
        Scenario::Deliver(args) => deliver::deliver(&target, &args, signing_rate).await,
        Scenario::Replay(args) => replay::replay(&target, &args, signing_rate).await,
    };
    if let Some(mut child) = target.child.take() {
        let _ = child.start_kill();
        let _ = child.wait().await;
    }
    let mut report = result?;
    let after = single_core_signing_rate();
    eprintln!(
        "single-core signing rate after the run: {after:.0} events/s ({:+.0}% from before)",
        100.0 * (after / signing_rate - 1.0)
    );
    report["signing_rate_single_core_after"] = json!(after);
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

/// Starts `auditrelay serve` on a fresh data directory with `env` added to its environment,
/// after minting an event producer's token and an org admin's.
async fn start_server(bin: Option<&Path>, env: &[(&str, &str)]) -> anyhow::Result<Target> {
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
    let token = create_token(&bin, dir.path(), "load", "event-producer", "system")?;
    let admin_token = create_token(&bin, dir.path(), "load-admin", "org-admin", "user")?;
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
        .envs(env.iter().copied())
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
        admin_token,
        child: Some(child),
        dir: Some(dir),
    })
}

/// Runs `auditrelay token create` on `data_dir` and returns the token it prints last.
fn create_token(
    bin: &Path,
    data_dir: &Path,
    name: &str,
    role: &str,
    kind: &str,
) -> anyhow::Result<String> {
    let out = std::process::Command::new(bin)
        .args([
            "token", "create", "--name", name, "--role", role, "--kind", kind,
        ])
        .arg("--data-dir")
        .arg(data_dir)
        .output()
        .context("Failed to run `auditrelay token create`")?;
    if !out.status.success() {
        bail!(
            "token create --role {role} failed: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Ok(String::from_utf8(out.stdout)?
        .lines()
        .last()
        .context("no token printed")?
        .to_owned())
}

/// `resp` if it has the `expected` status; otherwise an error naming `what` was attempted, with
/// the status and the body, which holds the server's explanation (problem+json).
pub async fn expect_status(
    resp: reqwest::Response,
    expected: reqwest::StatusCode,
    what: &str,
) -> anyhow::Result<reqwest::Response> {
    if resp.status() != expected {
        bail!(
            "{what}: {} {}",
            resp.status(),
            resp.text().await.unwrap_or_default()
        );
    }
    Ok(resp)
}

/// The `p` quantile (0 to 1) of sorted durations, in milliseconds; 0 when there are none.
pub fn percentile_ms(sorted: &[Duration], p: f64) -> f64 {
    if sorted.is_empty() {
        return 0.0;
    }
    let i = ((sorted.len() as f64 - 1.0) * p) as usize;
    sorted[i].as_secs_f64() * 1000.0
}

/// User + system CPU seconds of a process (Linux `/proc/<pid>/stat`, in clock ticks of 1/100 s).
pub fn cpu_seconds(pid: u32) -> Option<f64> {
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

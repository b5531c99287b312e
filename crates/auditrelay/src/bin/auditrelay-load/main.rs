//! `auditrelay-load`: the whole-service load tool. It starts an `auditrelay serve` on a fresh
//! data directory (or targets `--url` with `--token`), runs a named scenario, and prints a
//! human summary on stderr and, with `--json`, one JSON object on stdout for tracking figures
//! over time.
//!
//! Every figure is put next to the single-core Ed25519 signing rate measured in the same run,
//! because that rate is the ceiling the product's performance claims are stated against. The
//! rate is measured before the scenario and again after it: the machines we run on drift, and
//! two figures that disagree say the run is not to be trusted. Beside it, the rate of signing a
//! share's lines together on one core, as the server signs a batch (DECISIONS.md S29), is
//! measured before: each throughput is also stated against it, since that is what signing
//! costs the server.
//!
//! Scenarios (the names of issue 8):
//! - `ingest` ([`ingest`]) — N events through `POST /v1/events` in batches, with C concurrent
//!   clients; events/s counts only events the server acknowledged (202, durably stored);
//! - `deliver` ([`deliver`]) — N events ingested as fast as possible and delivered by the org
//!   webhook to a receiver inside this tool ([`receiver`]): delivered events/s end to end, with
//!   every event checked to arrive exactly once;
//! - `latency` ([`latency`]) — a steady rate R for T seconds through the same webhook:
//!   p50/p95/p99 of ingest → receipt;
//! - `replay` ([`replay`]) — a window of N past events, ingested before the webhook existed,
//!   re-sent by a replay job to the same receiver: replayed events/s and the server's peak RSS
//!   while it runs, with every event checked to arrive exactly once;
//! - `backlog` ([`backlog`]) — N events ingested while the webhook's SIEM refuses every
//!   connection: the status request's latency and the server's CPU at rest with that backlog;
//! - `all` — the four throughput scenarios above `backlog` in turn at their default size, each against a fresh server, with
//!   one combined summary and one JSON object;
//! - `kinds` — `deliver` (or `replay`) through each destination kind in turn (`--kind`,
//!   [`kind`]), each against a fresh server, with each kind's rate as a ratio to `webhook`'s.
//!
//! Whatever the scenario, the figures the issue asks of each come out in one shape
//! ([`Report`], completed into a [`Finished`]): each throughput as a ratio to the signing rate
//! before and after, the server's CPU per 1,000 events and peak RSS, and, when this tool started
//! the server, bytes per stored event after a checkpoint ([`Storage`]). Long phases show a
//! progress line on stderr ([`progress`]).

mod backlog;
mod deliver;
mod ingest;
mod kind;
mod latency;
mod progress;
mod receiver;
mod replay;

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use auditrelay::client::ApiClient;
use auditrelay::human;
use auditrelay_core::format::{Format, Unsigned, sign_event};
use auditrelay_core::{Event, EventDetail, FormatConfig, OrgId, Region, SigningKey, Timestamp};
use clap::{Parser, Subcommand};
use serde_json::{Value, json};
use tokio::process::{Child, Command};

/// The `User-Agent` of the load tool's own configuration requests.
const USER_AGENT: &str = concat!("auditrelay-load/", env!("CARGO_PKG_VERSION"));

/// The server's database in its data directory (`Config::database_path`).
const DB_FILE: &str = "auditrelay.db";

/// How long a server gets to stop after SIGTERM before it is killed.
const STOP_GRACE: Duration = Duration::from_secs(60);

#[derive(Debug, Parser)]
#[command(
    name = "auditrelay-load",
    about = "Load tool for auditrelay: ingest, delivery, latency and replay, measured against the signing limit",
    long_about = "Load tool for auditrelay: ingest, delivery, latency and replay, measured against the signing limit.\n\n\
        Starts `auditrelay serve` on a fresh data directory (or targets --url), runs a scenario, and \
        reports each throughput beside the single-core signing rate measured before and after it, \
        the server's CPU per 1,000 events and peak RSS, and bytes per stored event after a \
        checkpoint. The summary goes to stderr, the JSON (--json) to stdout."
)]
struct Cli {
    #[command(subcommand)]
    scenario: Scenario,
    /// Target a running server instead of starting one (needs --token; not with `all`).
    #[arg(long, global = true, requires = "token")]
    url: Option<String>,
    /// A token with ingest rights on the --url server (`deliver`, `latency` and `replay` also
    /// configure the webhook with it, so it must be an org admin's).
    #[arg(long, global = true)]
    token: Option<String>,
    /// The `auditrelay` binary to start (default: next to this one).
    #[arg(long, global = true)]
    server_bin: Option<PathBuf>,
    /// The `store.url` of the server started: an empty PostgreSQL database
    /// (`postgres://USER@HOST:PORT/DATABASE`) to measure on PostgreSQL instead of SQLite.
    #[arg(long, global = true, conflicts_with = "url")]
    store_url: Option<String>,
    /// How many `serve` processes to start on the --store-url database; events are sent to
    /// each in turn, as a load balancer would.
    #[arg(long, global = true, default_value_t = 1, requires = "store_url",
          value_parser = clap::value_parser!(u32).range(1..=16))]
    nodes: u32,
    /// Print one JSON object with every figure to stdout.
    #[arg(long, global = true)]
    json: bool,
}

#[derive(Debug, Clone, Subcommand)]
enum Scenario {
    /// N events through POST /v1/events: events/s durably stored, and bytes per stored event
    /// after a checkpoint.
    Ingest(ingest::IngestArgs),
    /// N events ingested as fast as possible and delivered by the org webhook to a receiver in
    /// this tool: delivered events/s end to end, each event checked to arrive exactly once.
    ///
    /// With --url, the server must allow http and private webhook endpoints (`serve --dev`),
    /// and --token must be an org admin's: it configures the `us` org webhook.
    Deliver(deliver::DeliverArgs),
    /// A steady --rate of events for --seconds, delivered as in `deliver`: p50/p95/p99 of the
    /// time from each event's 202 to its receipt.
    ///
    /// With --url, the same conditions as for `deliver`.
    Latency(latency::LatencyArgs),
    /// A window of past events, ingested before the org webhook is enabled, replayed by
    /// `PUT /us/v3/audit-log-replay-job` to a receiver in this tool: replayed events/s and the
    /// server's peak RSS during the replay.
    ///
    /// With --url, the same conditions as for `deliver`.
    Replay(replay::ReplayArgs),
    /// N events ingested while the org webhook's SIEM refuses every connection: the webhook
    /// status request's latency and the server's CPU at rest with that backlog stored.
    ///
    /// With --url, the same conditions as for `deliver`.
    Backlog(backlog::BacklogArgs),
    /// The throughput scenarios in turn (ingest, deliver, latency, replay) at their default size, each
    /// against a fresh server: one combined summary, and with --json one object holding each.
    All(AllArgs),
    /// `deliver` (or with --replay, `replay`) through each destination kind in turn, each
    /// against a fresh server: one combined summary with each kind's rate as a ratio to
    /// `webhook`'s in the same run.
    Kinds(KindsArgs),
}

#[derive(Debug, Clone, clap::Args)]
struct KindsArgs {
    /// Events per kind instead of the scenario's default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    events: Option<u64>,
    /// Replay each kind instead of delivering live.
    #[arg(long)]
    replay: bool,
}

impl KindsArgs {
    fn scenarios(&self) -> anyhow::Result<Vec<Scenario>> {
        kind::Kind::ALL
            .into_iter()
            .map(|kind| {
                let name = if self.replay { "replay" } else { "deliver" };
                let mut args = vec![name.to_owned(), "--kind".to_owned()];
                args.push(
                    clap::ValueEnum::to_possible_value(&kind)
                        .expect("a value")
                        .get_name()
                        .to_owned(),
                );
                if let Some(events) = self.events {
                    args.extend(["--events".to_owned(), events.to_string()]);
                }
                Ok(One::try_parse_from(args)?.scenario)
            })
            .collect()
    }
}

#[derive(Debug, Clone, clap::Args)]
struct AllArgs {
    /// Events for `ingest`, `deliver` and `replay` instead of each one's default (a quick check).
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    events: Option<u64>,
    /// Seconds of `latency` instead of its default.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: Option<u64>,
}

/// One scenario as it would be given on the command line: `all` builds its list through it, so
/// each scenario runs with exactly the defaults it has on its own.
#[derive(Debug, Parser)]
#[command(no_binary_name = true)]
struct One {
    #[command(subcommand)]
    scenario: Scenario,
}

impl AllArgs {
    fn scenarios(&self) -> anyhow::Result<Vec<Scenario>> {
        ["ingest", "deliver", "latency", "replay"]
            .into_iter()
            .map(|name| {
                let mut args = vec![name.to_owned()];
                let size = match name {
                    "latency" => self.seconds.map(|s| ("--seconds", s)),
                    _ => self.events.map(|n| ("--events", n)),
                };
                if let Some((flag, value)) = size {
                    args.extend([flag.to_owned(), value.to_string()]);
                }
                Ok(One::try_parse_from(args)?.scenario)
            })
            .collect()
    }
}

impl Scenario {
    fn name(&self) -> &'static str {
        match self {
            Self::Ingest(_) => "ingest",
            Self::Deliver(_) => "deliver",
            Self::Latency(_) => "latency",
            Self::Replay(_) => "replay",
            Self::Backlog(_) => "backlog",
            Self::All(_) => "all",
            Self::Kinds(_) => "kinds",
        }
    }
}

/// A server to load, and the tokens to do it with.
pub struct Target {
    /// Where webhooks are configured: the first node.
    pub url: String,
    /// Every node events are sent to, in turn (one unless --nodes).
    pub urls: Vec<String>,
    /// Ingests (an event producer's token, or --token).
    pub token: String,
    /// Configures webhooks (an org admin's token, or --token).
    pub admin_token: String,
    /// The servers this tool started (none with --url).
    servers: Vec<Server>,
    /// The shared store's URL, with --store-url.
    store_url: Option<String>,
}

/// One `auditrelay serve` this tool started, and its data directory.
struct Server {
    child: Child,
    dir: tempfile::TempDir,
}

impl Target {
    /// The API as the org admin, through the project's client.
    pub fn admin_api(&self) -> anyhow::Result<ApiClient> {
        let token = self
            .admin_token
            .parse()
            .map_err(|e| anyhow::anyhow!("the admin token: {e}"))?;
        ApiClient::new(&self.url, token, USER_AGENT, Duration::from_secs(60))
    }

    /// The process ids of the servers still running that this tool started.
    fn pids(&self) -> Vec<u32> {
        self.servers.iter().filter_map(|s| s.child.id()).collect()
    }

    /// The servers' CPU seconds so far, added up, when this tool started them.
    pub fn cpu_seconds(&self) -> Option<f64> {
        let pids = self.pids();
        (!pids.is_empty()).then(|| pids.into_iter().filter_map(cpu_seconds).sum())
    }

    /// The highest peak resident set size of the servers, in MB, when this tool started them.
    pub fn peak_rss_mb(&self) -> Option<f64> {
        self.pids()
            .into_iter()
            .filter_map(peak_rss_mb)
            .reduce(f64::max)
    }

    /// Lowers each server's recorded peak RSS to its current RSS (Linux: `5` written to
    /// `/proc/<pid>/clear_refs`), so that [`Self::peak_rss_mb`] covers only what follows;
    /// whether it did.
    pub fn reset_peak_rss(&self) -> bool {
        let pids = self.pids();
        !pids.is_empty()
            && pids
                .into_iter()
                .all(|pid| std::fs::write(format!("/proc/{pid}/clear_refs"), "5").is_ok())
    }

    /// The size of the data directories' files, when this tool made them.
    fn data_dir_bytes(&self) -> Option<u64> {
        let dirs = self.servers.iter().map(|s| dir_size(s.dir.path()));
        (!self.servers.is_empty()).then(|| dirs.sum())
    }

    /// Kills (SIGKILL) the node that holds the webhook's lane lease now, as a crash would; its
    /// process id. (A node's name in the store ends with its process id.)
    pub async fn kill_lane_owner(&self) -> anyhow::Result<u32> {
        use sqlx::Connection as _;
        let url = self.store_url().context("failover needs --store-url")?;
        let mut conn = sqlx::postgres::PgConnection::connect(url).await?;
        let name: String = sqlx::query_scalar(
            "SELECT n.name FROM leases l JOIN nodes n ON n.id = l.holder
             WHERE l.name LIKE 'lane/%' AND l.expires_at > clock_timestamp()",
        )
        .fetch_optional(&mut conn)
        .await?
        .context("no node holds the webhook's lane")?;
        conn.close().await?;
        let pid: u32 = name
            .rsplit(' ')
            .next()
            .and_then(|pid| pid.parse().ok())
            .with_context(|| format!("no process id in the node's name {name:?}"))?;
        if !self.pids().contains(&pid) {
            bail!("the webhook's owner (pid {pid}) is not one of this tool's nodes");
        }
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid.to_string()])
            .status()?;
        anyhow::ensure!(killed.success(), "kill -KILL {pid} failed");
        Ok(pid)
    }

    /// The shared store's URL, with --store-url.
    pub fn store_url(&self) -> Option<&str> {
        self.store_url.as_deref()
    }

    /// Stops the servers this tool started as an operator would, with SIGTERM, and waits for
    /// each to exit (killing it after [`STOP_GRACE`]); the first one's data directory, which
    /// lives as long as the result. `None` for a `--url` server, which is left alone.
    async fn stop(mut self) -> Option<Stopped> {
        let mut servers = std::mem::take(&mut self.servers).into_iter();
        let first = servers.next()?;
        for other in servers {
            stop_server(other.child).await;
        }
        let clean_exit = stop_server(first.child).await;
        Some(Stopped {
            dir: first.dir,
            clean_exit,
        })
    }
}

/// Stops one server with SIGTERM, killing it after [`STOP_GRACE`]; whether it exited cleanly
/// (not one the scenario killed).
async fn stop_server(mut child: Child) -> bool {
    if let Ok(Some(_)) = child.try_wait() {
        return false;
    }
    let terminated = child.id().is_some_and(|pid| {
        std::process::Command::new("kill")
            .args(["-TERM", &pid.to_string()])
            .status()
            .is_ok_and(|s| s.success())
    });
    let exited = if terminated {
        tokio::time::timeout(STOP_GRACE, child.wait()).await.ok()
    } else {
        None
    };
    match exited {
        Some(Ok(status)) => status.success(),
        _ => {
            eprintln!("the server did not stop on SIGTERM: killed");
            let _ = child.kill().await;
            false
        }
    }
}

/// A server this tool started, after it stopped.
struct Stopped {
    dir: tempfile::TempDir,
    /// It exited with success after SIGTERM.
    clean_exit: bool,
}

/// CPU seconds of the server and of this tool at one moment; [`Meter::cost`] turns it into
/// what the part of a scenario since then cost.
pub struct Meter {
    server: Option<f64>,
    tool: Option<f64>,
}

impl Meter {
    pub fn start(target: &Target) -> Self {
        Self {
            server: target.cpu_seconds(),
            tool: cpu_seconds(std::process::id()),
        }
    }

    /// CPU used since `self`, and the server's peak RSS so far.
    pub fn cost(&self, target: &Target) -> Cost {
        let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        Cost {
            server_cpu_seconds: used(self.server, target.cpu_seconds()),
            tool_cpu_seconds: used(self.tool, cpu_seconds(std::process::id())),
            server_peak_rss_mb: target.peak_rss_mb(),
        }
    }
}

/// What the measured part of a scenario cost. The server's figures are known only when this
/// tool started it.
#[derive(Debug, Clone, Copy)]
pub struct Cost {
    pub server_cpu_seconds: Option<f64>,
    /// This tool's clients and receiver: how much of the machine the load itself took.
    pub tool_cpu_seconds: Option<f64>,
    pub server_peak_rss_mb: Option<f64>,
}

/// A scenario's result, in the shape every scenario shares; its own figures are in `details`.
pub struct Report {
    pub scenario: &'static str,
    /// The events the scenario sent and measured: the per-1,000-events figures are per these.
    pub events: u64,
    /// Its throughputs, the headline first, each to be stated as a ratio to the signing rate.
    pub rates: Vec<Rate>,
    /// What `cost` covers ("ingest and delivery").
    pub measured: &'static str,
    pub cost: Cost,
    /// Each event's time from its request's 202 to its receipt, for the scenarios that time
    /// every event.
    pub latency: Option<Quantiles>,
    /// The scenario's own figures, a JSON object.
    pub details: Value,
}

/// A throughput in events/s, named as in the JSON (`delivered_events_per_second`).
pub struct Rate {
    pub name: &'static str,
    pub events_per_second: f64,
}

impl Rate {
    pub fn new(name: &'static str, events_per_second: f64) -> Self {
        Self {
            name,
            events_per_second,
        }
    }
}

/// The single-core signing rate, measured just before and just after a scenario, one line at
/// a time; and the rate of signing a share's lines together on one core, as the server signs
/// a batch (DECISIONS.md S29), measured just before.
#[derive(Debug, Clone, Copy)]
struct Signing {
    before: f64,
    after: f64,
    together: f64,
}

/// Disk use of the server's database, read after the server stopped.
#[derive(Debug, Clone)]
struct Storage {
    /// The data directory's files just before the server stopped: the database, its WAL and
    /// shared-memory file.
    data_dir_bytes_before_stop: u64,
    /// The WAL the server left behind on exit (none when its last connection checkpointed).
    wal_bytes_after_stop: u64,
    clean_exit: bool,
    /// `PRAGMA wal_checkpoint(TRUNCATE)` could not finish (nothing else should hold the file).
    checkpoint_busy: bool,
    /// The main database file after the checkpoint.
    db_bytes: u64,
    /// Rows in `events`: this tool's events and the server's own audit events.
    rows: u64,
}

/// A scenario's [`Report`] with what is measured around it.
struct Finished {
    report: Report,
    signing: Signing,
    storage: Option<Storage>,
    started_at: Timestamp,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let cli = Cli::parse();
    let scenarios = match &cli.scenario {
        Scenario::All(_) | Scenario::Kinds(_) if cli.url.is_some() || cli.store_url.is_some() => {
            bail!(
                "`all` and `kinds` start a fresh server for each scenario; with --url or \
                 --store-url (an empty database each), run the scenarios one by one"
            )
        }
        Scenario::All(all) => all.scenarios()?,
        Scenario::Kinds(kinds) => kinds.scenarios()?,
        one => vec![one.clone()],
    };
    let several = scenarios.len() > 1;
    let mut finished = Vec::new();
    for scenario in scenarios {
        let name = scenario.name();
        if several {
            eprintln!("\n=== {name} ===");
        }
        let done = run(&cli, scenario)
            .await
            .with_context(|| format!("scenario `{name}`"))?;
        done.print();
        finished.push(done);
    }
    if several {
        print_table(&finished);
    }
    if cli.json {
        let json = match finished.as_slice() {
            [one] => one.to_json(),
            all => json!({"scenarios": all.iter().map(Finished::to_json).collect::<Vec<_>>()}),
        };
        println!("{json}");
    }
    Ok(())
}

/// Runs one scenario between two measurements of the signing rate, on a server started for it
/// (or --url), and measures the server's storage after stopping it.
async fn run(cli: &Cli, scenario: Scenario) -> anyhow::Result<Finished> {
    let started_at = Timestamp::from_datetime(time::OffsetDateTime::now_utc());
    let before = single_core_signing_rate();
    let together = single_core_signing_together_rate();
    eprintln!(
        "single-core Ed25519 render+sign rate (CEF): {before:.0} events/s one line at a time; \
         {together:.0} events/s ({:.2} ×) signed together in shares of {SHARE_LINES}, as the server signs",
        together / before
    );
    // Delivery to the tool's own receiver goes over http to loopback, which a server refuses
    // unless told otherwise; the ingest scenario has no webhook, so the settings change nothing.
    let env: &[(&str, &str)] = match scenario {
        Scenario::Ingest(_) => &[],
        _ => &[
            ("AUDITRELAY_DELIVERY__ALLOW_HTTP_ENDPOINTS", "true"),
            ("AUDITRELAY_DELIVERY__ALLOW_PRIVATE_ENDPOINTS", "true"),
        ],
    };
    let target = match (&cli.url, &cli.token) {
        (Some(url), Some(token)) => Target {
            url: url.clone(),
            urls: vec![url.clone()],
            token: token.clone(),
            admin_token: token.clone(),
            servers: Vec::new(),
            store_url: None,
        },
        _ => {
            let bin = cli.server_bin.as_deref();
            start_servers(bin, env, cli.store_url.as_deref(), cli.nodes).await?
        }
    };
    let result = match &scenario {
        Scenario::Ingest(args) => ingest::ingest(&target, args).await,
        Scenario::Deliver(args) => deliver::deliver(&target, args).await,
        Scenario::Latency(args) => latency::latency(&target, args).await,
        Scenario::Replay(args) => replay::replay(&target, args).await,
        Scenario::Backlog(args) => backlog::backlog(&target, args).await,
        Scenario::All(_) | Scenario::Kinds(_) => {
            unreachable!("`all` and `kinds` are expanded before running")
        }
    };
    let data_dir_bytes = target.data_dir_bytes();
    let stopped = target.stop().await;
    let report = result?;
    let storage = match (stopped, data_dir_bytes) {
        (Some(stopped), Some(before_stop)) => match match &cli.store_url {
            Some(url) => measure_postgres(url, before_stop).await,
            None => measure_storage(&stopped, before_stop).await,
        } {
            Ok(storage) => Some(storage),
            Err(e) => {
                eprintln!("storage not measured: {e:#}");
                None
            }
        },
        _ => None,
    };
    let after = single_core_signing_rate();
    Ok(Finished {
        report,
        signing: Signing {
            before,
            after,
            together,
        },
        storage,
        started_at,
    })
}

/// Checkpoints the stopped server's WAL into the database file, truncating it, and counts the
/// stored events. `serve` closes its connections on SIGTERM, and SQLite checkpoints and removes
/// the WAL when the last connection closes, but that did not always happen (two small ingest
/// runs in six left 4–4.5 MB of WAL behind), and a server killed after its grace period does
/// not close them at all. The explicit checkpoint makes the figure the same either way.
async fn measure_storage(stopped: &Stopped, data_dir_bytes: u64) -> anyhow::Result<Storage> {
    use sqlx::ConnectOptions as _;
    use sqlx::Connection as _;

    let db = stopped.dir.path().join(DB_FILE);
    let wal_bytes_after_stop = file_len(&wal_path(&db));
    let mut conn = sqlx::sqlite::SqliteConnectOptions::new()
        .filename(&db)
        .create_if_missing(false)
        .disable_statement_logging()
        .connect()
        .await
        .with_context(|| format!("opening {}", db.display()))?;
    // (busy, WAL frames, frames checkpointed); after a TRUNCATE that succeeded, both counts
    // are of the emptied WAL, so only `busy` says anything.
    let (busy, _, _): (i64, i64, i64) = sqlx::query_as("PRAGMA wal_checkpoint(TRUNCATE)")
        .fetch_one(&mut conn)
        .await?;
    let rows: i64 = sqlx::query_scalar("SELECT count(*) FROM events")
        .fetch_one(&mut conn)
        .await?;
    conn.close().await?;
    Ok(Storage {
        data_dir_bytes_before_stop: data_dir_bytes,
        wal_bytes_after_stop,
        clean_exit: stopped.clean_exit,
        checkpoint_busy: busy != 0,
        db_bytes: file_len(&db),
        rows: rows as u64,
    })
}

/// On PostgreSQL: the events table with its indexes and TOAST, after a `VACUUM` has brought its
/// statistics up to date, and its rows. (`data_dir_bytes` is then only the keys.)
async fn measure_postgres(url: &str, data_dir_bytes: u64) -> anyhow::Result<Storage> {
    use sqlx::Connection as _;

    let mut conn = sqlx::postgres::PgConnection::connect(url)
        .await
        .context("connecting to the store")?;
    sqlx::query("VACUUM events").execute(&mut conn).await?;
    let (bytes, rows): (i64, i64) =
        sqlx::query_as("SELECT pg_total_relation_size('events'), (SELECT count(*) FROM events)")
            .fetch_one(&mut conn)
            .await?;
    conn.close().await?;
    Ok(Storage {
        data_dir_bytes_before_stop: data_dir_bytes,
        wal_bytes_after_stop: 0,
        clean_exit: true,
        checkpoint_busy: false,
        db_bytes: u64::try_from(bytes)?,
        rows: u64::try_from(rows)?,
    })
}

fn wal_path(db: &Path) -> PathBuf {
    let mut wal = db.as_os_str().to_owned();
    wal.push("-wal");
    wal.into()
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map_or(0, |m| m.len())
}

impl Finished {
    /// The ratio of `rate` to the signing rate before and after.
    fn ratios(&self, rate: f64) -> (f64, f64) {
        (rate / self.signing.before, rate / self.signing.after)
    }

    fn cpu_ms_per_1000_events(&self) -> Option<f64> {
        let events = self.report.events.max(1) as f64;
        self.report
            .cost
            .server_cpu_seconds
            .map(|cpu| cpu * 1e6 / events)
    }

    /// The human summary, on stderr, after the scenario's own lines.
    fn print(&self) {
        let Self {
            report, signing, ..
        } = self;
        eprintln!(
            "{} summary, against the single-core signing rate {} /s before and {} /s after ({:+.0}%):",
            report.scenario,
            human::rounded(signing.before),
            human::rounded(signing.after),
            100.0 * (signing.after / signing.before - 1.0)
        );
        for rate in &report.rates {
            let (before, after) = self.ratios(rate.events_per_second);
            eprintln!(
                "  {:<40} {:>10} = {before:.2} / {after:.2} × the signing rate before / after; {:.2} × signing together",
                rate.name.replace('_', " "),
                human::rounded(rate.events_per_second),
                rate.events_per_second / signing.together
            );
        }
        if let Some(latency) = report.latency {
            eprintln!("  ingest (202) → receipt: {latency}");
        }
        if let (Some(cpu), Some(per_1000)) = (
            report.cost.server_cpu_seconds,
            self.cpu_ms_per_1000_events(),
        ) {
            eprintln!(
                "  server CPU ({}) {cpu:.2} s = {per_1000:.1} ms per 1,000 of {} events (signing alone: {:.1} ms one at a time, {:.1} ms together)",
                report.measured,
                human::rounded(report.events as f64),
                1e6 / signing.before,
                1e6 / signing.together
            );
        }
        if let Some(rss) = report.cost.server_peak_rss_mb {
            eprintln!("  server peak RSS {rss:.0} MB");
        }
        if let Some(tool) = report.cost.tool_cpu_seconds {
            eprintln!("  load tool CPU {tool:.2} s (its clients and receiver)");
        }
        if let Some(s) = &self.storage {
            let events = report.events.max(1) as f64;
            eprintln!(
                "  storage: {:.0} bytes per stored event after a checkpoint ({:.1} MB ÷ {} rows in `events`: {} of this run and {} of the server's own audit events; {:.0} bytes per event of this run)",
                s.db_bytes as f64 / s.rows.max(1) as f64,
                s.db_bytes as f64 / 1e6,
                human::rounded(s.rows as f64),
                human::rounded(report.events as f64),
                human::rounded(s.rows.saturating_sub(report.events) as f64),
                s.db_bytes as f64 / events
            );
            eprintln!(
                "           before it, {:.0} bytes per event of this run (data directory {:.1} MB, WAL included); the server {} and left a {:.1} MB WAL",
                s.data_dir_bytes_before_stop as f64 / events,
                s.data_dir_bytes_before_stop as f64 / 1e6,
                if s.clean_exit {
                    "stopped on SIGTERM"
                } else {
                    "was killed"
                },
                s.wal_bytes_after_stop as f64 / 1e6
            );
            if s.checkpoint_busy {
                eprintln!(
                    "           (the checkpoint found the database busy: the WAL may hold more)"
                );
            }
        }
    }

    fn to_json(&self) -> Value {
        let report = &self.report;
        let rates: serde_json::Map<String, Value> = report
            .rates
            .iter()
            .map(|rate| {
                let (before, after) = self.ratios(rate.events_per_second);
                let value = json!({
                    "events_per_second": rate.events_per_second,
                    "ratio_to_signing_rate": {"before": before, "after": after},
                });
                (rate.name.to_owned(), value)
            })
            .collect();
        let events = report.events.max(1) as f64;
        let storage = self.storage.as_ref().map(|s| {
            json!({
                "bytes_per_stored_event": s.db_bytes as f64 / s.rows.max(1) as f64,
                "bytes_per_event_of_run": s.db_bytes as f64 / events,
                "db_bytes": s.db_bytes,
                "rows": s.rows,
                "server_audit_rows": s.rows.saturating_sub(report.events),
                "bytes_per_event_of_run_before_checkpoint": s.data_dir_bytes_before_stop as f64 / events,
                "data_dir_bytes_before_stop": s.data_dir_bytes_before_stop,
                "wal_bytes_after_stop": s.wal_bytes_after_stop,
                "clean_exit": s.clean_exit,
                "checkpoint_busy": s.checkpoint_busy,
            })
        });
        json!({
            "scenario": report.scenario,
            "started_at": self.started_at.to_rfc3339_millis(),
            "events": report.events,
            "signing_rate_single_core": {
                "before": self.signing.before,
                "after": self.signing.after,
                "together": self.signing.together,
            },
            "headline": report.rates.first().map(|rate| rate.name),
            "rates": rates,
            "latency_from_202_ms": report.latency.map(Quantiles::to_json),
            "server": {
                "measured": report.measured,
                "cpu_seconds": report.cost.server_cpu_seconds,
                "cpu_ms_per_1000_events": self.cpu_ms_per_1000_events(),
                "peak_rss_mb": report.cost.server_peak_rss_mb,
            },
            "tool_cpu_seconds": report.cost.tool_cpu_seconds,
            "storage": storage,
            "details": report.details,
        })
    }
}

/// The scenarios side by side, by their headline throughput; a scenario run through several
/// destination kinds also as a ratio to its `webhook` run (each run's rate over its own signing
/// rate, so that the machine's drift between runs cancels out).
fn print_table(finished: &[Finished]) {
    let kind_of = |done: &Finished| done.report.details["kind"].as_str().map(str::to_owned);
    let normalized = |done: &Finished| {
        let rate = done
            .report
            .rates
            .first()
            .map_or(0.0, |r| r.events_per_second);
        let (before, after) = done.ratios(rate);
        (before + after) / 2.0
    };
    let webhook = |scenario: &str| {
        finished
            .iter()
            .find(|d| d.report.scenario == scenario && kind_of(d).as_deref() == Some("webhook"))
            .map(normalized)
    };
    eprintln!(
        "\n{:<24} {:<40} {:>10} {:>17} {:>10} {:>9} {:>10} {:>9} {:>12}",
        "scenario",
        "headline",
        "events/s",
        "× signing (b/a)",
        "× webhook",
        "p99 ms",
        "CPU ms/1k",
        "peak RSS",
        "bytes/event"
    );
    let or_dash = |v: Option<String>| v.unwrap_or_else(|| "-".into());
    for done in finished {
        let Some(rate) = done.report.rates.first() else {
            continue;
        };
        let (before, after) = done.ratios(rate.events_per_second);
        let kind = kind_of(done);
        let label = match &kind {
            Some(kind) if kind != "webhook" || webhook(done.report.scenario).is_some() => {
                format!("{}/{kind}", done.report.scenario)
            }
            _ => done.report.scenario.to_owned(),
        };
        let vs_webhook = webhook(done.report.scenario)
            .filter(|_| kind.is_some())
            .map(|w| format!("{:.2}", normalized(done) / w));
        eprintln!(
            "{:<24} {:<40} {:>10} {:>17} {:>10} {:>9} {:>10} {:>9} {:>12}",
            label,
            rate.name,
            human::rounded(rate.events_per_second),
            format!("{before:.2} / {after:.2}"),
            or_dash(vs_webhook),
            or_dash(done.report.latency.map(|l| format!("{:.0}", l.p99))),
            or_dash(done.cpu_ms_per_1000_events().map(|c| format!("{c:.1}"))),
            or_dash(
                done.report
                    .cost
                    .server_peak_rss_mb
                    .map(|r| format!("{r:.0} MB"))
            ),
            or_dash(
                done.storage
                    .as_ref()
                    .map(|s| format!("{:.0}", s.db_bytes as f64 / s.rows.max(1) as f64))
            ),
        );
    }
}

/// Lines per share when the server signs a batch of 1,000 on two cores (`delivery/encode.rs`:
/// four shares per thread).
const SHARE_LINES: usize = 125;

/// Renders a typical event into shares of [`SHARE_LINES`] lines and signs each share's lines
/// together, as the server does, on this thread for about a second.
fn single_core_signing_together_rate() -> f64 {
    let key = SigningKey::from_seed(&[7; 32]);
    let config = FormatConfig::default();
    let event = sample_event();
    let mut buf = Vec::with_capacity(512 * SHARE_LINES);
    let started = Instant::now();
    let mut n = 0u64;
    while started.elapsed() < Duration::from_secs(1) {
        let mut unsigned = Unsigned::new(Format::Cef, SHARE_LINES);
        let lines: Vec<usize> = (0..SHARE_LINES)
            .map(|_| unsigned.push_event(&event, None, None, &config))
            .collect();
        let signatures = unsigned.sign(&key);
        buf.clear();
        for line in lines {
            signatures.write(line, &mut buf);
        }
        n += SHARE_LINES as u64;
    }
    n as f64 / started.elapsed().as_secs_f64()
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

/// Starts `nodes` `auditrelay serve` processes, each on a fresh data directory, with `env` added
/// to their environment, after minting an event producer's token and an org admin's. More than
/// one needs a shared store (`store_url`).
async fn start_servers(
    bin: Option<&Path>,
    env: &[(&str, &str)],
    store_url: Option<&str>,
    nodes: u32,
) -> anyhow::Result<Target> {
    // Every command the tool runs uses the same store, and on PostgreSQL a key-encryption key
    // made for the run.
    let kek = store_url.map(|_| {
        use base64::Engine as _;
        let mut key = [0u8; 32];
        getrandom::fill(&mut key).expect("the operating system's random source failed");
        base64::engine::general_purpose::STANDARD.encode(key)
    });
    let mut store: Vec<(&str, &str)> = Vec::new();
    if let (Some(url), Some(kek)) = (store_url, kek.as_deref()) {
        store.push(("AUDITRELAY_STORE__URL", url));
        store.push(("AUDITRELAY_STORE__KEY_ENCRYPTION_KEY", kek));
    }
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
    // `token create` never invents an installation: make one first.
    let created = std::process::Command::new(&bin)
        .args(["migrate", "--create", "--data-dir"])
        .arg(dir.path())
        .envs(store.iter().copied())
        .output()
        .context("Failed to run `auditrelay migrate --create`")?;
    if !created.status.success() {
        bail!(
            "migrate --create failed: {}",
            String::from_utf8_lossy(&created.stderr)
        );
    }
    let token = create_token(&bin, dir.path(), &store, "load", "event-producer", "system")?;
    let admin_token = create_token(&bin, dir.path(), &store, "load-admin", "org-admin", "user")?;
    let mut servers = Vec::new();
    let mut urls = Vec::new();
    let mut dir = Some(dir);
    for _ in 0..nodes {
        // The first node gets the directory the tokens were made in (SQLite's store is there).
        let dir = match dir.take() {
            Some(dir) => dir,
            None => tempfile::tempdir()?,
        };
        let (url, child) = start_server(&bin, dir.path(), env, &store).await?;
        urls.push(url);
        servers.push(Server { child, dir });
    }
    Ok(Target {
        url: urls[0].clone(),
        urls,
        token,
        admin_token,
        servers,
        store_url: store_url.map(str::to_owned),
    })
}

/// Starts one `auditrelay serve` on `dir` and waits until it is ready; its URL.
async fn start_server(
    bin: &Path,
    dir: &Path,
    env: &[(&str, &str)],
    store: &[(&str, &str)],
) -> anyhow::Result<(String, Child)> {
    let port = std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port();
    let child = Command::new(bin)
        .args([
            "serve",
            "--listen",
            &format!("127.0.0.1:{port}"),
            "--data-dir",
        ])
        .arg(dir)
        .env("AUDITRELAY_LOG__LEVEL", "warn")
        .envs(env.iter().copied())
        .envs(store.iter().copied())
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
        dir.display()
    );
    Ok((url, child))
}

/// Runs `auditrelay token create` on `data_dir` and returns the token it prints last.
fn create_token(
    bin: &Path,
    data_dir: &Path,
    store: &[(&str, &str)],
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
        .envs(store.iter().copied())
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

/// The p50, p95, p99 and max of a set of durations, in milliseconds; shown as a person reads
/// them, [`Quantiles::to_json`] for the JSON.
#[derive(Debug, Clone, Copy)]
pub struct Quantiles {
    p50: f64,
    p95: f64,
    p99: f64,
    max: f64,
}

impl Quantiles {
    pub fn of(sorted: &[Duration]) -> Self {
        Self {
            p50: percentile_ms(sorted, 0.5),
            p95: percentile_ms(sorted, 0.95),
            p99: percentile_ms(sorted, 0.99),
            max: percentile_ms(sorted, 1.0),
        }
    }

    pub fn to_json(self) -> Value {
        json!({"p50": self.p50, "p95": self.p95, "p99": self.p99, "max": self.max})
    }
}

impl std::fmt::Display for Quantiles {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            self.p50, self.p95, self.p99, self.max
        )
    }
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_runs_each_scenario_with_its_own_defaults_or_the_size_given() {
        let all = AllArgs {
            events: None,
            seconds: None,
        };
        let names: Vec<_> = all
            .scenarios()
            .unwrap()
            .iter()
            .map(Scenario::name)
            .collect();
        assert_eq!(names, ["ingest", "deliver", "latency", "replay"]);

        let quick = AllArgs {
            events: Some(20_000),
            seconds: Some(3),
        };
        let scenarios = quick.scenarios().unwrap();
        let debug = format!("{scenarios:?}");
        assert_eq!(debug.matches("events: 20000").count(), 3, "{debug}");
        assert!(debug.contains("seconds: 3"), "{debug}");
    }
}

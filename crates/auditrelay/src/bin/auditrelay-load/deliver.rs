//! The `deliver` scenario: events go in through `POST /v1/events` and come out of the org
//! webhook of region `us` into the tool's own [`Receiver`], over http on loopback.
//!
//! Two modes. **Throughput** (the default) sends `--events` as fast as `--concurrency` clients
//! can and reports delivered events/s: the events over the time from the first request sent to
//! the last event received, beside the single-core signing rate, which is the ceiling a single
//! webhook's lane can reach. **Steady** (`--rate`) sends a request of `--batch` events every
//! `batch / rate` seconds for `--seconds`, and reports how long each event took from its
//! request's 202 (durably stored, so visible to delivery) to its receipt, and from the request's
//! sending. Both check that every event arrived exactly once; the server's own audit events,
//! which the webhook delivers too, are counted apart.
//!
//! The webhook is configured through the API, as an operator would: a destination pointing at
//! the receiver, then the org webhook bound to it and enabled. It is enabled before the first
//! event is sent because enabling moves its cursor to the newest event. Against a server this
//! tool did not start (`--url`), that server must allow http and private endpoints.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use reqwest::StatusCode;
use serde_json::{Value, json};
use tokio::task::JoinSet;

use crate::ingest::{Producer, Stamps, request_len, send_all};
use crate::receiver::{Expected, Receiver, Tally};
use crate::{Target, cpu_seconds, expect_status, percentile_ms};

/// Steady mode also reports the latency of the events sent in each window of this length.
const WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, clap::Args)]
pub struct DeliverArgs {
    /// Throughput mode: ingest this many events as fast as possible.
    #[arg(long, default_value_t = 200_000, conflicts_with = "rate")]
    events: u64,
    /// Steady mode: ingest this many events per second, paced, instead.
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..))]
    rate: Option<u64>,
    /// Steady mode: for this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Events per request [default: 1000 for throughput, 100 with --rate].
    #[arg(long, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: Option<u64>,
    /// Throughput mode: clients sending at once.
    #[arg(long, default_value_t = 4, conflicts_with = "rate")]
    concurrency: u64,
    /// The destination's log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Cef)]
    format: LogFormat,
    /// Stop waiting for deliveries once no new event has arrived for this many seconds.
    #[arg(long, default_value_t = 30)]
    stall_seconds: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Cef,
    Json,
    Cps,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cef => "cef",
            Self::Json => "json",
            Self::Cps => "cps",
        }
    }
}

/// CPU seconds of the server and of this tool at one moment.
pub struct Cpu {
    pub server: Option<f64>,
    pub tool: Option<f64>,
}

impl Cpu {
    pub fn now(target: &Target) -> Self {
        Self {
            server: target.cpu_seconds(),
            tool: cpu_seconds(std::process::id()),
        }
    }

    /// CPU seconds used since `self`.
    pub fn since(&self, target: &Target) -> Self {
        let used = |before: Option<f64>, after: Option<f64>| Some(after? - before?);
        Self {
            server: used(self.server, target.cpu_seconds()),
            tool: used(self.tool, cpu_seconds(std::process::id())),
        }
    }
}

pub async fn deliver(
    target: &Target,
    args: &DeliverArgs,
    signing_rate: f64,
) -> anyhow::Result<Value> {
    let (events, batch) = match args.rate {
        None => (args.events, args.batch.unwrap_or(1000)),
        Some(rate) => (rate * args.seconds, args.batch.unwrap_or(100)),
    };
    let epoch = Instant::now();
    let receiver = Receiver::start(epoch, Expected { events, batch }).await?;
    configure(target, &receiver.url, args.format).await?;
    eprintln!(
        "the org webhook (us) delivers {} to {}",
        args.format.as_str(),
        receiver.url
    );
    let run = Run {
        target,
        receiver: &receiver,
        epoch,
        events,
        batch,
        stall: Duration::from_secs(args.stall_seconds),
    };
    let before = Cpu::now(target);
    let mut report = match args.rate {
        None => throughput(&run, args.concurrency, signing_rate).await?,
        Some(rate) => steady(&run, rate).await?,
    };
    let cpu = before.since(target);
    let tally = receiver.tally();
    summarize(&mut report, target, &tally, &cpu, events, signing_rate);
    report["format"] = json!(args.format.as_str());
    Ok(report)
}

/// What both modes work with.
struct Run<'a> {
    target: &'a Target,
    receiver: &'a Receiver,
    /// The receiver's times count from here.
    epoch: Instant,
    events: u64,
    batch: u64,
    stall: Duration,
}

impl Run<'_> {
    /// `at` as the receiver counts time.
    fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// Waits for the deliveries, showing their progress each second.
    async fn wait_for_deliveries(&self) -> bool {
        let waiting = self.receiver.wait_for_all(self.stall);
        tokio::pin!(waiting);
        let events = self.events;
        loop {
            tokio::select! {
                all = &mut waiting => {
                    eprintln!("\r  {:>10} / {events} events delivered", self.receiver.unique());
                    return all;
                }
                () = tokio::time::sleep(Duration::from_secs(1)) => {
                    eprint!("\r  {:>10} / {events} events delivered", self.receiver.unique());
                }
            }
        }
    }
}

/// Creates a destination for `endpoint` and binds the org webhook of `us` to it, enabled.
pub async fn configure(target: &Target, endpoint: &str, format: LogFormat) -> anyhow::Result<()> {
    let client = reqwest::Client::new();
    let resp = client
        .post(format!("{}/v3/audit-log-destinations", target.url))
        .bearer_auth(&target.admin_token)
        .json(&json!({
            "name": "auditrelay-load",
            "endpoint": endpoint,
            "authorization": "Bearer auditrelay-load",
            "log_format": format.as_str(),
        }))
        .send()
        .await?;
    let created: Value = expect_status(resp, StatusCode::CREATED, "creating the destination")
        .await?
        .json()
        .await?;
    let id = created["id"]
        .as_str()
        .context("the created destination has no id")?;
    let resp = client
        .patch(format!("{}/us/v3/audit-log-webhook", target.url))
        .bearer_auth(&target.admin_token)
        .json(&json!({"audit_log_destination_id": id, "enabled": true}))
        .send()
        .await?;
    expect_status(resp, StatusCode::OK, "enabling the webhook").await?;
    Ok(())
}

/// Throughput mode: as fast as possible, end to end.
async fn throughput(run: &Run<'_>, concurrency: u64, signing_rate: f64) -> anyhow::Result<Value> {
    let batch = run.batch;
    let sent = send_all(run.target, run.events, batch, concurrency, Stamps::Now).await?;
    let ingest_rate = sent.events as f64 / sent.seconds();
    eprintln!(
        "ingest:  {} events in {:.2} s = {ingest_rate:.0} events/s (batch {batch}, concurrency {concurrency}); {} delivered meanwhile",
        sent.events,
        sent.seconds(),
        run.receiver.unique()
    );
    run.wait_for_deliveries().await;
    let tally = run.receiver.tally();
    let last = tally
        .last_new
        .context("no event was delivered: see the server's log")?;
    let seconds = last.saturating_sub(run.offset(sent.started)).as_secs_f64();
    let rate = tally.unique as f64 / seconds;
    let after_ingest = last.saturating_sub(run.offset(sent.finished)).as_secs_f64();
    eprintln!(
        "deliver: {} events received {seconds:.2} s after the first was sent = {rate:.0} events/s end to end",
        tally.unique
    );
    eprintln!(
        "         {:.2} × the single-core signing rate; the last arrived {after_ingest:.2} s after the last 202",
        rate / signing_rate
    );
    Ok(json!({
        "scenario": "deliver",
        "mode": "throughput",
        "batch": batch,
        "concurrency": concurrency,
        "ingest_seconds": sent.seconds(),
        "ingest_events_per_second": ingest_rate,
        "ingest_latency_ms": {
            "p50": percentile_ms(&sent.latencies, 0.5),
            "p99": percentile_ms(&sent.latencies, 0.99),
        },
        "seconds": seconds,
        "delivered_events_per_second": rate,
        "ratio_to_signing_rate": rate / signing_rate,
        "last_receipt_after_last_202_seconds": after_ingest,
    }))
}

/// When one request was sent and acknowledged, after the epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Sending {
    sent: Duration,
    acked: Duration,
}

/// Steady mode: a request of `batch` events every `batch / rate` seconds, each on its own task
/// so that a slow answer does not delay the next request; ticks missed because the tool fell
/// behind are caught up at once, which keeps the average rate.
async fn steady(run: &Run<'_>, rate: u64) -> anyhow::Result<Value> {
    let (events, batch, epoch) = (run.events, run.batch, run.epoch);
    let requests = events.div_ceil(batch);
    let period = Duration::from_secs_f64(batch as f64 / rate as f64);
    let producer = Producer::new(run.target, 64, Stamps::Now)?;
    let mut sendings = vec![Sending::default(); requests as usize];
    let mut in_flight = JoinSet::new();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut late = Duration::ZERO;
    let mut shown = Instant::now();
    for request in 0..requests {
        let tick = ticks.tick().await;
        late = late.max(tick.elapsed());
        let producer = producer.clone();
        let len = request_len(events, batch, request);
        in_flight.spawn(async move {
            let sent = epoch.elapsed();
            producer.post(len, request).await?;
            let acked = epoch.elapsed();
            Ok::<_, anyhow::Error>((request, Sending { sent, acked }))
        });
        while let Some(done) = in_flight.try_join_next() {
            let (request, sending) = done??;
            sendings[request as usize] = sending;
        }
        if shown.elapsed() >= Duration::from_secs(1) {
            shown = Instant::now();
            eprint!(
                "\r  {:>10} / {events} events sent, {:>10} delivered",
                request * batch,
                run.receiver.unique()
            );
        }
    }
    while let Some(done) = in_flight.join_next().await {
        let (request, sending) = done??;
        sendings[request as usize] = sending;
    }
    eprintln!();
    let first_sent = sendings.first().map_or(Duration::ZERO, |s| s.sent);
    let last_sent = sendings.last().map_or(Duration::ZERO, |s| s.sent);
    let sent_rate = events as f64 / (last_sent - first_sent + period).as_secs_f64();
    run.wait_for_deliveries().await;

    let receipts = run.receiver.first_receipts();
    let mut from_ack = Vec::with_capacity(events as usize);
    let mut from_send = Vec::with_capacity(events as usize);
    // The same, by window of sending: a tail from a stall shows as one bad window, a lane that
    // cannot keep up as windows that get worse and worse.
    let mut windows: Vec<Vec<Duration>> = Vec::new();
    let mut before_ack = 0u64;
    for (request, sending) in (0..requests).zip(&sendings) {
        let window = ((sending.sent - first_sent).as_secs() / WINDOW.as_secs()) as usize;
        if windows.len() <= window {
            windows.resize_with(window + 1, Vec::new);
        }
        for index in 0..request_len(events, batch, request) {
            let Some(at) = receipts(request, index) else {
                continue;
            };
            before_ack += u64::from(at < sending.acked);
            from_ack.push(at.saturating_sub(sending.acked));
            from_send.push(at.saturating_sub(sending.sent));
            windows[window].push(at.saturating_sub(sending.acked));
        }
    }
    from_ack.sort();
    from_send.sort();
    let p99_by_window: Vec<f64> = windows
        .iter_mut()
        .map(|window| {
            window.sort();
            percentile_ms(window, 0.99).round()
        })
        .collect();
    let mut ingest: Vec<Duration> = sendings.iter().map(|s| s.acked - s.sent).collect();
    ingest.sort();
    let quantiles = |sorted: &[Duration]| {
        json!({
            "p50": percentile_ms(sorted, 0.5),
            "p95": percentile_ms(sorted, 0.95),
            "p99": percentile_ms(sorted, 0.99),
            "max": percentile_ms(sorted, 1.0),
        })
    };
    let show = |sorted: &[Duration]| {
        format!(
            "p50 {:.0} ms, p95 {:.0} ms, p99 {:.0} ms, max {:.0} ms",
            percentile_ms(sorted, 0.5),
            percentile_ms(sorted, 0.95),
            percentile_ms(sorted, 0.99),
            percentile_ms(sorted, 1.0)
        )
    };
    eprintln!(
        "steady:  {events} events at {rate}/s in requests of {batch} every {:.1} ms: sent at {sent_rate:.0}/s, a tick at most {:.1} ms late",
        period.as_secs_f64() * 1000.0,
        late.as_secs_f64() * 1000.0
    );
    eprintln!("         ingest request (send → 202): {}", show(&ingest));
    eprintln!("         202 → receipt:  {}", show(&from_ack));
    eprintln!("         send → receipt: {}", show(&from_send));
    eprintln!(
        "         202 → receipt p99 by {} s of sending: {p99_by_window:?} ms",
        WINDOW.as_secs()
    );
    if before_ack > 0 {
        eprintln!(
            "         {before_ack} events arrived before their request's 202 reached the tool (counted as 0 ms)"
        );
    }
    Ok(json!({
        "scenario": "deliver",
        "mode": "steady",
        "rate": rate,
        "seconds": events as f64 / rate as f64,
        "batch": batch,
        "sent_events_per_second": sent_rate,
        "max_tick_lateness_ms": late.as_secs_f64() * 1000.0,
        "ingest_latency_ms": quantiles(&ingest),
        "latency_from_202_ms": quantiles(&from_ack),
        "latency_from_send_ms": quantiles(&from_send),
        "latency_from_202_p99_ms_by_window": p99_by_window,
        "window_seconds": WINDOW.as_secs(),
        "events_received_before_their_202": before_ack,
    }))
}

/// Adds what both modes (and the `replay` scenario) report: exactly once, what travelled, and
/// what it cost.
pub fn summarize(
    report: &mut Value,
    target: &Target,
    tally: &Tally,
    cpu: &Cpu,
    events: u64,
    signing_rate: f64,
) {
    let missing = events - tally.unique;
    let verdict = if missing == 0 && tally.duplicates == 0 && tally.strays == 0 {
        "every event arrived exactly once"
    } else {
        "NOT exactly once"
    };
    eprintln!(
        "         {verdict}: {} of {events} received, {missing} missing, {} duplicates, {} strays; plus {} of the server's own audit events",
        tally.unique, tally.duplicates, tally.strays, tally.other
    );
    let lines = tally.unique + tally.duplicates + tally.strays + tally.other;
    let per_delivery = lines as f64 / tally.deliveries.max(1) as f64;
    eprintln!(
        "         {} deliveries ({per_delivery:.0} lines each), {:.0} bytes per line gzipped ({:.0} decoded); receiver busy {:.2} s",
        tally.deliveries,
        tally.compressed_bytes as f64 / lines.max(1) as f64,
        tally.decoded_bytes as f64 / lines.max(1) as f64,
        tally.handler.as_secs_f64()
    );
    let rss_mb = target.peak_rss_mb();
    if let Some(server) = cpu.server {
        eprintln!(
            "         server CPU {server:.1} s ({:.1} ms per 1,000 events; signing alone would be {:.1} ms)",
            server * 1e6 / events as f64,
            1e6 / signing_rate
        );
    }
    if let Some(tool) = cpu.tool {
        eprintln!("         load tool CPU {tool:.1} s (clients and receiver)");
    }
    if let Some(rss) = rss_mb {
        eprintln!("         server peak RSS {rss:.0} MB");
    }
    let fields = json!({
        "events": events,
        "received": tally.unique,
        "missing": missing,
        "duplicates": tally.duplicates,
        "strays": tally.strays,
        "server_audit_lines": tally.other,
        "deliveries": tally.deliveries,
        "lines_per_delivery": per_delivery,
        "compressed_bytes": tally.compressed_bytes,
        "decoded_bytes": tally.decoded_bytes,
        "receiver_busy_seconds": tally.handler.as_secs_f64(),
        "server_cpu_seconds": cpu.server,
        "server_cpu_ms_per_1000_events": cpu.server.map(|c| c * 1e6 / events as f64),
        "tool_cpu_seconds": cpu.tool,
        "server_peak_rss_mb": rss_mb,
        "signing_rate_single_core": signing_rate,
    });
    if let (Value::Object(report), Value::Object(fields)) = (report, fields) {
        report.extend(fields);
    }
}

//! The `backlog` scenario: what a SIEM outage costs the server. The org webhook of `us` points at
//! a loopback port nobody listens on, so every batch is refused and the webhook turns
//! `inactive` and probes; meanwhile `--events` are ingested as fast as the clients go.
//!
//! It reports:
//! - the webhook status request (`GET /us/v3/audit-log-webhook/status`), whose `lag_events`,
//!   `oldest_undelivered_at` and `seconds_until_data_loss` measure the backlog: timed every
//!   500 ms while the events go in (as an operator watching the outage would), then p50/p99
//!   over `--requests` sequential requests with the backlog stored, and the `lag_events` the
//!   last one saw, which should count at least every event sent;
//! - the server's CPU at rest for `--rest-seconds`: no requests, only the lane's probes and the
//!   lag gauges, which the delivery supervisor refreshes every 5 s.
//!
//! Both should stay flat however large the backlog: an outage is when an operator reads them.

use std::time::{Duration, Instant};

use std::sync::Arc;

use anyhow::Context as _;
use auditrelay::client::ApiClient;
use auditrelay::client::wire::WebhookStatus;
use auditrelay_core::Region;
use serde_json::json;

use crate::deliver::{LogFormat, configure};
use crate::ingest::{Stamps, send_all};
use crate::kind::Kind;
use crate::{Meter, Quantiles, Rate, Report, Target};

/// How often the status is read while the events go in.
const WATCH_EVERY: Duration = Duration::from_millis(500);

#[derive(Debug, Clone, clap::Args)]
pub struct BacklogArgs {
    /// Events to ingest while the SIEM is down.
    #[arg(long, default_value_t = 2_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Clients sending at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// Status requests to time, one after another.
    #[arg(long, default_value_t = 50, value_parser = clap::value_parser!(u64).range(1..))]
    requests: u64,
    /// Seconds of rest over which the server's CPU is measured.
    #[arg(long, default_value_t = 20, value_parser = clap::value_parser!(u64).range(1..))]
    rest_seconds: u64,
}

pub async fn backlog(target: &Target, args: &BacklogArgs) -> anyhow::Result<Report> {
    let endpoint = refused_endpoint()?;
    configure(target, &endpoint, LogFormat::Cef, Kind::Webhook, false).await?;
    eprintln!("the org webhook (us) delivers to {endpoint}, where nothing listens");

    // An operator watching the status while the backlog grows.
    let api = Arc::new(target.admin_api()?);
    let (stop, mut stopped) = tokio::sync::watch::channel(false);
    let watcher = {
        let api = api.clone();
        tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                latencies.push(read_status(&api).await?.0);
                tokio::select! {
                    _ = stopped.changed() => return anyhow::Ok(latencies),
                    () = tokio::time::sleep(WATCH_EVERY) => {}
                }
            }
        })
    };
    let meter = Meter::start(target);
    let sent = send_all(
        target,
        args.events,
        args.batch,
        args.concurrency,
        Stamps::Now,
    )
    .await?;
    let ingest_cost = meter.cost(target);
    let _ = stop.send(true);
    let mut during = watcher.await??;
    during.sort_unstable();
    let during_ingest = Quantiles::of(&during);
    let ingest_rate = sent.events as f64 / sent.seconds();
    eprintln!(
        "ingest:  {} events in {:.2} s = {ingest_rate:.0} events/s with the SIEM down; status read every {} ms meanwhile: {during_ingest} ({} reads)",
        sent.events,
        sent.seconds(),
        WATCH_EVERY.as_millis(),
        during.len()
    );

    let mut latencies = Vec::new();
    let mut last = None;
    for _ in 0..args.requests {
        let (took, status) = read_status(&api).await?;
        latencies.push(took);
        last = Some(status);
    }
    let last = last.context("no status was read (--requests 0)")?;
    latencies.sort_unstable();
    let status = Quantiles::of(&latencies);
    let lag = last
        .lag_events
        .with_context(|| format!("the status has no lag_events: {last:?}"))?;
    // Not an error: a server that caps the count (as ours did before the exact backlog) is
    // still measured, and says so.
    let counts_all = lag >= sent.events;
    eprintln!(
        "status:  {status} over {} requests after ingest; lag_events {lag}{}, webhook_status {}, seconds_until_data_loss {}",
        args.requests,
        if counts_all {
            ""
        } else {
            " (FEWER than were sent)"
        },
        last.webhook_status,
        json!(last.seconds_until_data_loss)
    );

    let rest = Meter::start(target);
    tokio::time::sleep(Duration::from_secs(args.rest_seconds)).await;
    let rest_cpu = rest.cost(target).server_cpu_seconds;
    let rest_share = rest_cpu.map(|cpu| cpu / args.rest_seconds as f64);
    if let Some(share) = rest_share {
        eprintln!(
            "rest:    the server used {:.1}% of a core over {} s with {lag} events undelivered",
            share * 100.0,
            args.rest_seconds
        );
    }

    Ok(Report {
        scenario: "backlog",
        events: sent.events,
        rates: vec![Rate::new("ingested_events_per_second", ingest_rate)],
        measured: "ingest with the SIEM down",
        cost: ingest_cost,
        latency: None,
        details: json!({
            "batch": args.batch,
            "concurrency": args.concurrency,
            "lag_events": lag,
            "lag_counts_every_event_sent": counts_all,
            "webhook_status": last.webhook_status,
            "status_requests": args.requests,
            "status_latency_ms": status.to_json(),
            "status_reads_during_ingest": during.len(),
            "status_latency_during_ingest_ms": during_ingest.to_json(),
            "rest_seconds": args.rest_seconds,
            "rest_server_cpu_seconds": rest_cpu,
            "rest_server_core_share": rest_share,
        }),
    })
}

/// One `GET` of the `us` webhook's status: how long it took, and the status.
async fn read_status(api: &ApiClient) -> anyhow::Result<(Duration, WebhookStatus)> {
    let us = Region::parse("us").expect("a region");
    let started = Instant::now();
    let status = api
        .get(
            Some(&us),
            "/v3/audit-log-webhook/status",
            "the webhook status",
        )
        .await
        .context("Failed to read the webhook status")?;
    Ok((started.elapsed(), status))
}

/// An http endpoint on loopback that refuses connections: a port the kernel just handed out
/// and that nothing listens on once the listener is dropped.
fn refused_endpoint() -> anyhow::Result<String> {
    let listener = std::net::TcpListener::bind("127.0.0.1:0")?;
    let port = listener.local_addr()?.port();
    drop(listener);
    Ok(format!("http://127.0.0.1:{port}/siem-down"))
}

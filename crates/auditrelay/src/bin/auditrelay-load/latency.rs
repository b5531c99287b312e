//! The `latency` scenario: a steady rate of events through the same webhook as `deliver`
//! ([`Delivery`]), and how long each event took from its request's 202 (durably stored, so
//! visible to delivery) to its receipt, and from the request's sending.
//!
//! A request of `--batch` events goes out every `batch / rate` seconds for `--seconds`, each on
//! its own task so that a slow answer does not delay the next. Besides the run's quantiles it
//! reports the p99 of each [`WINDOW`] of sending: a tail from one stall shows as one bad
//! window, a lane that cannot keep up as windows that get worse and worse.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use serde_json::json;
use tokio::task::JoinSet;

use crate::deliver::{Delivery, WebhookArgs, extend};
use crate::ingest::{Producer, Stamps, request_len};
use crate::progress::Progress;
use crate::{Meter, Quantiles, Rate, Report, Target, percentile_ms};

/// The latency of the events sent in each window of this length is also reported.
const WINDOW: Duration = Duration::from_secs(5);

#[derive(Debug, Clone, clap::Args)]
pub struct LatencyArgs {
    /// Events per second, paced.
    #[arg(long, default_value_t = 10_000, value_parser = clap::value_parser!(u64).range(1..))]
    rate: u64,
    /// For this many seconds.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    seconds: u64,
    /// Events per request.
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// With --nodes: kill (SIGKILL) the node that delivers the webhook this many seconds into
    /// the run, to measure failover (events keep going to the other nodes).
    #[arg(long)]
    kill_owner_after: Option<u64>,
    #[command(flatten)]
    webhook: WebhookArgs,
}

/// When one request was sent and acknowledged, after the epoch.
#[derive(Debug, Clone, Copy, Default)]
struct Sending {
    sent: Duration,
    acked: Duration,
}

/// The `latency` scenario. Ticks missed because the tool fell behind are caught up at once,
/// which keeps the average rate.
pub async fn latency(target: &Target, args: &LatencyArgs) -> anyhow::Result<Report> {
    let (rate, batch) = (args.rate, args.batch);
    let events = rate * args.seconds;
    let run = Delivery::start(target, events, batch, &args.webhook).await?;
    let epoch = run.epoch;
    let meter = Meter::start(target);
    let requests = events.div_ceil(batch);
    let period = Duration::from_secs_f64(batch as f64 / rate as f64);
    let producer = Producer::new(target, 64, Stamps::Now)?;
    let mut sendings = vec![Sending::default(); requests as usize];
    let mut in_flight = JoinSet::new();
    let mut ticks = tokio::time::interval(period);
    ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Burst);
    let mut late = Duration::ZERO;
    let sent_so_far = Arc::new(AtomicU64::new(0));
    let progress = Progress::start("events sent", events, {
        let sent = sent_so_far.clone();
        move || sent.load(Ordering::Relaxed)
    });
    let kill_at = args.kill_owner_after.map(Duration::from_secs);
    if kill_at.is_some() && target.urls.len() < 2 {
        anyhow::bail!("--kill-owner-after needs --nodes 2 or more");
    }
    let mut killed: Option<Duration> = None;
    for request in 0..requests {
        let tick = ticks.tick().await;
        if let Some(at) = kill_at
            && killed.is_none()
            && epoch.elapsed() >= at
        {
            let pid = target.kill_lane_owner().await?;
            killed = Some(epoch.elapsed());
            eprintln!(
                "killed node pid {pid}, the webhook's owner, {:.1} s into the run",
                at.as_secs_f64()
            );
        }
        late = late.max(tick.elapsed());
        let producer = producer.clone();
        let len = request_len(events, batch, request);
        in_flight.spawn(async move {
            let sent = epoch.elapsed();
            producer.post(len, request).await?;
            let acked = epoch.elapsed();
            Ok::<_, anyhow::Error>((request, Sending { sent, acked }))
        });
        sent_so_far.fetch_add(len, Ordering::Relaxed);
        while let Some(done) = in_flight.try_join_next() {
            let (request, sending) = done??;
            sendings[request as usize] = sending;
        }
    }
    while let Some(done) = in_flight.join_next().await {
        let (request, sending) = done??;
        sendings[request as usize] = sending;
    }
    progress.finish();
    let first_sent = sendings.first().map_or(Duration::ZERO, |s| s.sent);
    let last_sent = sendings.last().map_or(Duration::ZERO, |s| s.sent);
    let sent_rate = events as f64 / (last_sent - first_sent + period).as_secs_f64();
    run.wait_for_deliveries().await;
    let cost = meter.cost(target);

    let receipts = run.receiver.first_receipts();
    let mut from_ack = Vec::with_capacity(events as usize);
    let mut from_send = Vec::with_capacity(events as usize);
    let mut windows: Vec<Vec<Duration>> = Vec::new();
    let mut before_ack = 0u64;
    // After a kill: the slowest event sent from then on, and when the first arrived.
    let mut after_kill: Vec<Duration> = Vec::new();
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
            if killed.is_some_and(|k| sending.sent >= k) {
                after_kill.push(at.saturating_sub(sending.acked));
            }
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
    eprintln!(
        "latency: {events} events at {rate}/s in requests of {batch} every {:.1} ms: sent at {sent_rate:.0}/s, a tick at most {:.1} ms late",
        period.as_secs_f64() * 1000.0,
        late.as_secs_f64() * 1000.0
    );
    eprintln!(
        "         ingest request (send → 202): {}",
        Quantiles::of(&ingest)
    );
    let latency = Quantiles::of(&from_ack);
    eprintln!("         202 → receipt:  {latency}");
    eprintln!("         send → receipt: {}", Quantiles::of(&from_send));
    eprintln!(
        "         202 → receipt p99 by {} s of sending: {p99_by_window:?} ms",
        WINDOW.as_secs()
    );
    if before_ack > 0 {
        eprintln!(
            "         {before_ack} events arrived before their request's 202 reached the tool (counted as 0 ms)"
        );
    }
    let failover_ms = killed.map(|_| {
        let worst = after_kill.iter().max().copied().unwrap_or_default();
        worst.as_secs_f64() * 1000.0
    });
    if let Some(ms) = failover_ms {
        eprintln!(
            "         failover: the slowest event sent after the kill took {:.1} s from its 202 to receipt",
            ms / 1000.0
        );
    }
    let mut details = run.tally();
    let own = json!({
        "rate": rate,
        "seconds": args.seconds,
        "batch": batch,
        "max_tick_lateness_ms": late.as_secs_f64() * 1000.0,
        "ingest_request_latency_ms": Quantiles::of(&ingest).to_json(),
        "latency_from_send_ms": Quantiles::of(&from_send).to_json(),
        "latency_from_202_p99_ms_by_window": p99_by_window,
        "window_seconds": WINDOW.as_secs(),
        "events_received_before_their_202": before_ack,
        "nodes": target.urls.len(),
        "killed_owner_at_s": killed.map(|k| k.as_secs_f64()),
        "failover_slowest_202_to_receipt_ms": failover_ms,
    });
    extend(&mut details, own);
    Ok(Report {
        scenario: "latency",
        events,
        rates: vec![Rate::new("sent_events_per_second", sent_rate)],
        measured: "steady ingest and delivery",
        cost,
        latency: Some(latency),
        details,
    })
}

//! The `replay` scenario: a window of past events re-sent by a replay job to the tool's own
//! [`Receiver`], as fast as the server's replay executor goes.
//!
//! The events are ingested first, with timestamps spread over a window that ended a minute
//! before the run began, and only then is the org webhook of `us` configured: enabling it moves
//! its cursor to the newest event, so live delivery never sends them and the replay is the only
//! way they can arrive. The server's own audit events (of the ingest requests, the
//! configuration, the job) are all stamped after the window, so it holds exactly the tool's
//! events. Then `PUT /us/v3/audit-log-replay-job` with that window, and `GET` every
//! [`POLL`] until the job is `completed` or `failed`.
//!
//! Replayed events/s is the events over the time from the PUT to the last event received, and
//! also to the poll that saw `completed`. The server's peak RSS is reset just before the PUT
//! (where Linux allows it), so it is the replay's, with the ingest's reported apart.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use auditrelay::client::wire::ReplayJob;
use auditrelay_core::Region;
use auditrelay_core::Timestamp;
use reqwest::Method;
use serde_json::json;

use crate::deliver::{LogFormat, configure, extend, tally};
use crate::ingest::{Stamps, send_all};
use crate::kind::Kind;
use crate::progress::Progress;
use crate::receiver::{Expected, Receiver};
use crate::{Meter, Rate, Report, Target};

/// How often the job's status is read.
const POLL: Duration = Duration::from_millis(200);

#[derive(Debug, Clone, clap::Args)]
pub struct ReplayArgs {
    /// Events in the window to replay.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Events per ingest request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Clients ingesting at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    /// The destination's log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Cef)]
    format: LogFormat,
    /// The destination's kind: the receiver in this tool takes that kind's requests.
    #[arg(long, value_enum, default_value_t = Kind::Webhook)]
    kind: Kind,
    /// The destination has `integrity`: each line carries its place in the tamper-evident log.
    #[arg(long)]
    integrity: bool,
    /// The events' timestamps are spread over this many minutes, ending a minute before the
    /// run starts.
    #[arg(long, default_value_t = 30, value_parser = clap::value_parser!(u64).range(1..))]
    span_minutes: u64,
    /// Give up once the job's progress has not moved for this many seconds.
    #[arg(long, default_value_t = 30)]
    stall_seconds: u64,
}

pub async fn replay(target: &Target, args: &ReplayArgs) -> anyhow::Result<Report> {
    let (events, batch) = (args.events, args.batch);
    let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc());
    // A minute of margin: the server's own audit events of this run must all fall after it.
    let end_at = now.saturating_sub_millis(60_000);
    let span_ms = args.span_minutes as i64 * 60_000;
    let start_at = end_at.saturating_sub_millis(span_ms);
    let stamps = Stamps::Spread {
        start: start_at,
        span_ms,
        events,
        batch,
    };
    let epoch = Instant::now();
    let receiver = Receiver::start(epoch, Expected { events, batch }, args.kind).await?;

    let sent = send_all(target, events, batch, args.concurrency, stamps).await?;
    let ingest_rate = sent.events as f64 / sent.seconds();
    let ingest_rss_mb = target.peak_rss_mb();
    eprintln!(
        "ingest:  {} events in {:.2} s = {ingest_rate:.0} events/s, stamped {} ..= {}, before any webhook",
        sent.events,
        sent.seconds(),
        start_at.to_rfc3339_millis(),
        end_at.to_rfc3339_millis()
    );
    configure(
        target,
        &receiver.url,
        args.format,
        args.kind,
        args.integrity,
    )
    .await?;
    eprintln!(
        "the org webhook (us) delivers {} as {} to {}",
        args.format.as_str(),
        args.kind.as_str(),
        receiver.url
    );

    // VmHWM would otherwise still hold the ingest's peak.
    let rss_reset = target.reset_peak_rss();
    let meter = Meter::start(target);
    let api = target.admin_api()?;
    let us = Region::parse("us").expect("a region");
    let job_path = "/v3/audit-log-replay-job";
    let put_at = Instant::now();
    let window = json!({
        "start_at": start_at.to_rfc3339_millis(),
        "end_at": end_at.to_rfc3339_millis(),
    });
    let _: ReplayJob = api
        .send_json(
            Method::PUT,
            Some(&us),
            job_path,
            &window,
            "the replay job's start",
        )
        .await
        .context("Failed to start the replay job")?;

    let stall = Duration::from_secs(args.stall_seconds);
    let progress = Progress::start("events replayed", events, receiver.counter());
    let mut moved = (0, Instant::now());
    let (job, done_at) = loop {
        tokio::time::sleep(POLL).await;
        let job: ReplayJob = api
            .get(Some(&us), job_path, "the replay job's progress")
            .await
            .context("Failed to read the replay job")?;
        let sent_so_far = job.events_sent.unwrap_or(0);
        if matches!(job.status.as_str(), "completed" | "failed") {
            break (job, Instant::now());
        }
        if sent_so_far != moved.0 {
            moved = (sent_so_far, Instant::now());
        } else if moved.1.elapsed() > stall {
            bail!("the replay job made no progress for {stall:?}: {job:?}");
        }
    };
    progress.finish();
    // A completed job has had a 2xx for every batch, so everything has arrived; a failed one
    // gets a moment for nothing.
    receiver.wait_for_all(Duration::from_secs(1)).await;
    let cost = meter.cost(target);
    let received = receiver.tally();
    let status = job.status.clone();
    if status == "failed" {
        eprintln!(
            "replay:  FAILED: {}",
            job.failure_reason.as_deref().unwrap_or("(no reason given)")
        );
    }

    let put = put_at.saturating_duration_since(epoch);
    let last = received
        .last_new
        .context("no event was replayed: see the server's log")?;
    let to_last = last.saturating_sub(put).as_secs_f64();
    let to_done = (done_at - put_at).as_secs_f64();
    let (rate_last, rate_done) = (received.unique as f64 / to_last, events as f64 / to_done);
    // The server's own account, without the tool's polling granularity.
    let server_seconds = match (
        job.started_at.as_deref().and_then(Timestamp::parse_rfc3339),
        job.finished_at
            .as_deref()
            .and_then(Timestamp::parse_rfc3339),
    ) {
        (Some(started), Some(finished)) => {
            Some((finished.as_millis() - started.as_millis()) as f64 / 1000.0)
        }
        _ => None,
    };
    eprintln!(
        "replay:  {status}: {} events received {to_last:.2} s after the PUT = {rate_last:.0} events/s",
        received.unique
    );
    eprintln!(
        "         `{status}` seen {to_done:.2} s after the PUT = {rate_done:.0} events/s; the job's started_at → finished_at {}",
        server_seconds.map_or("unknown".into(), |s| format!("{s:.2} s"))
    );
    eprintln!(
        "         job: events_total {}, events_sent {}, batches_sent {}",
        json!(job.events_total),
        json!(job.events_sent),
        json!(job.batches_sent)
    );
    if let Some(rss) = ingest_rss_mb {
        eprintln!("         server peak RSS during the ingest before it {rss:.0} MB");
    }
    if !rss_reset {
        eprintln!("         (the peak RSS could not be reset: the summary's includes the ingest)");
    }
    let mut details = tally(&received, events);
    let own = json!({
        "format": args.format.as_str(),
        "kind": args.kind.as_str(),
        "status": status,
        "failure_reason": job.failure_reason,
        "batch": batch,
        "concurrency": args.concurrency,
        "window": {"start_at": job.start_at, "end_at": job.end_at},
        "ingest_seconds": sent.seconds(),
        "ingest_peak_rss_mb": ingest_rss_mb,
        "peak_rss_is_replay_only": rss_reset,
        "events_total": job.events_total,
        "events_sent": job.events_sent,
        "batches_sent": job.batches_sent,
        "seconds_to_last_receipt": to_last,
        "seconds_to_completed": to_done,
        "server_job_seconds": server_seconds,
    });
    extend(&mut details, own);
    Ok(Report {
        scenario: "replay",
        events,
        rates: vec![
            Rate::new("replayed_events_per_second", rate_last),
            Rate::new("replayed_events_per_second_to_completed", rate_done),
            Rate::new("ingest_events_per_second", ingest_rate),
        ],
        measured: "the replay, from the PUT",
        cost,
        latency: None,
        details,
    })
}

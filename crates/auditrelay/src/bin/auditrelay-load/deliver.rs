//! The `deliver` scenario, and what it shares with `latency` ([`crate::latency`]): events go in
//! through `POST /v1/events` and come out of the org webhook of region `us` into the tool's own
//! [`Receiver`], over http on loopback.
//!
//! `deliver` sends `--events` as fast as `--concurrency` clients can and reports delivered
//! events/s: the events over the time from the first request sent to the last event received,
//! beside the single-core signing rate, which is the ceiling a single webhook's lane can reach.
//! Both scenarios check that every event arrived exactly once ([`Delivery::tally`]); the
//! server's own audit events, which the webhook delivers too, are counted apart.
//!
//! The webhook is configured through the API, as an operator would: a destination pointing at
//! the receiver, then the org webhook bound to it and enabled. It is enabled before the first
//! event is sent because enabling moves its cursor to the newest event. Against a server this
//! tool did not start (`--url`), that server must allow http and private endpoints.

use std::time::{Duration, Instant};

use anyhow::Context as _;
use auditrelay_core::Region;
use serde_json::{Value, json};

use crate::ingest::{Stamps, send_all};
use crate::kind::Kind;
use crate::progress::Progress;
use crate::receiver::{Expected, Receiver, Tally};
use crate::{Meter, Quantiles, Rate, Report, Target};

#[derive(Debug, Clone, clap::Args)]
pub struct DeliverArgs {
    /// Events to ingest, as fast as possible.
    #[arg(long, default_value_t = 200_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Clients sending at once.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
    #[command(flatten)]
    webhook: WebhookArgs,
}

/// The options of the scenarios that deliver through the org webhook as events arrive.
#[derive(Debug, Clone, clap::Args)]
pub struct WebhookArgs {
    /// The destination's log format.
    #[arg(long, value_enum, default_value_t = LogFormat::Cef)]
    pub format: LogFormat,
    /// The destination's kind: the receiver in this tool takes that kind's requests.
    #[arg(long, value_enum, default_value_t = Kind::Webhook)]
    pub kind: Kind,
    /// The destination has `integrity`: each line carries its place in the tamper-evident log,
    /// and checkpoint events travel with the lines (they count as the server's own lines).
    #[arg(long)]
    pub integrity: bool,
    /// Stop waiting for deliveries once no new event has arrived for this many seconds.
    #[arg(long, default_value_t = 30)]
    pub stall_seconds: u64,
}

#[derive(Debug, Clone, Copy, clap::ValueEnum)]
pub enum LogFormat {
    Cef,
    Json,
    Cps,
    Ocsf,
}

impl LogFormat {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cef => "cef",
            Self::Json => "json",
            Self::Cps => "cps",
            Self::Ocsf => "ocsf",
        }
    }
}

/// A receiver expecting `events` sent in requests of `batch`, with the org webhook of `us`
/// delivering to it: what `deliver` and `latency` run on.
pub struct Delivery {
    pub receiver: Receiver,
    /// The receiver's times count from here.
    pub epoch: Instant,
    pub events: u64,
    webhook: WebhookArgs,
}

impl Delivery {
    /// Starts the receiver and points the webhook at it.
    pub async fn start(
        target: &Target,
        events: u64,
        batch: u64,
        webhook: &WebhookArgs,
    ) -> anyhow::Result<Self> {
        let epoch = Instant::now();
        let receiver = Receiver::start(epoch, Expected { events, batch }, webhook.kind).await?;
        let (format, kind) = (webhook.format, webhook.kind);
        configure(target, &receiver.url, format, kind, webhook.integrity).await?;
        eprintln!(
            "the org webhook (us) delivers {} as {}{} to {}",
            webhook.format.as_str(),
            webhook.kind.as_str(),
            if webhook.integrity {
                " with integrity"
            } else {
                ""
            },
            receiver.url
        );
        Ok(Self {
            receiver,
            epoch,
            events,
            webhook: webhook.clone(),
        })
    }

    /// `at` as the receiver counts time.
    pub fn offset(&self, at: Instant) -> Duration {
        at.saturating_duration_since(self.epoch)
    }

    /// Waits for the deliveries, showing their progress, until all have arrived or none has
    /// for `--stall-seconds`.
    pub async fn wait_for_deliveries(&self) -> bool {
        let _progress = Progress::start("events delivered", self.events, self.receiver.counter());
        self.receiver
            .wait_for_all(Duration::from_secs(self.webhook.stall_seconds))
            .await
    }

    /// What arrived, printed and as the scenario's details, with the format.
    pub fn tally(&self) -> Value {
        let mut details = tally(&self.receiver.tally(), self.events);
        details["format"] = json!(self.webhook.format.as_str());
        details["kind"] = json!(self.webhook.kind.as_str());
        details["integrity"] = json!(self.webhook.integrity);
        details
    }
}

/// Creates a destination of `kind` (with `integrity` when asked) for the receiver at `url` and
/// binds the org webhook of `us` to it, enabled.
pub async fn configure(
    target: &Target,
    url: &str,
    format: LogFormat,
    kind: Kind,
    integrity: bool,
) -> anyhow::Result<()> {
    let mut destination = kind.destination(url, format.as_str());
    if integrity {
        destination["integrity"] = json!(true);
    }
    target
        .admin_api()?
        .bind_new_destination(&Region::parse("us").expect("a region"), &destination)
        .await
        .context("Failed to configure the webhook")?;
    Ok(())
}

/// The `deliver` scenario: as fast as possible, end to end.
pub async fn deliver(target: &Target, args: &DeliverArgs) -> anyhow::Result<Report> {
    let (batch, concurrency) = (args.batch, args.concurrency);
    let run = Delivery::start(target, args.events, batch, &args.webhook).await?;
    let meter = Meter::start(target);
    let sent = send_all(target, run.events, batch, concurrency, Stamps::Now).await?;
    let ingest_rate = sent.events as f64 / sent.seconds();
    eprintln!(
        "ingest:  {} events in {:.2} s = {ingest_rate:.0} events/s (batch {batch}, concurrency {concurrency}); {} delivered meanwhile",
        sent.events,
        sent.seconds(),
        run.receiver.unique()
    );
    eprintln!(
        "         request (send → 202) {}",
        Quantiles::of(&sent.latencies)
    );
    run.wait_for_deliveries().await;
    let cost = meter.cost(target);
    let received = run.receiver.tally();
    let last = received
        .last_new
        .context("no event was delivered: see the server's log")?;
    let seconds = last.saturating_sub(run.offset(sent.started)).as_secs_f64();
    let rate = received.unique as f64 / seconds;
    let after_ingest = last.saturating_sub(run.offset(sent.finished)).as_secs_f64();
    eprintln!(
        "deliver: {} events received {seconds:.2} s after the first was sent = {rate:.0} events/s end to end; the last {after_ingest:.2} s after the last 202",
        received.unique
    );
    let mut details = run.tally();
    let own = json!({
        "batch": batch,
        "concurrency": concurrency,
        "ingest_seconds": sent.seconds(),
        "ingest_request_latency_ms": Quantiles::of(&sent.latencies).to_json(),
        "seconds": seconds,
        "last_receipt_after_last_202_seconds": after_ingest,
    });
    extend(&mut details, own);
    Ok(Report {
        scenario: "deliver",
        events: run.events,
        rates: vec![
            Rate::new("delivered_events_per_second", rate),
            Rate::new("ingest_events_per_second", ingest_rate),
        ],
        measured: "ingest and delivery",
        cost,
        latency: None,
        details,
    })
}

/// What arrived of `events` sent, as JSON, after saying it on stderr: whether exactly once, and
/// what travelled. `deliver`, `latency` and `replay` report it alike.
pub fn tally(tally: &Tally, events: u64) -> Value {
    let missing = events.saturating_sub(tally.unique);
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
    json!({
        "exactly_once": missing == 0 && tally.duplicates == 0 && tally.strays == 0,
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
    })
}

/// Adds the fields of the JSON object `more` to the object `details`.
pub fn extend(details: &mut Value, more: Value) {
    if let (Value::Object(details), Value::Object(more)) = (details, more) {
        details.extend(more);
    }
}

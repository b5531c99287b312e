//! Producing events: NDJSON bodies shaped like a gateway's, sent through `POST /v1/events` by
//! concurrent clients as fast as the server acknowledges them; and the `ingest` scenario, which
//! reports that rate. The `deliver`, `latency` and `replay` scenarios send their events with the
//! same pieces.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditrelay_core::Timestamp;
use serde_json::json;

use crate::progress::Progress;
use crate::{Meter, Quantiles, Rate, Report, Target, expect_status};

#[derive(Debug, Clone, clap::Args)]
pub struct IngestArgs {
    /// Events to send.
    #[arg(long, default_value_t = 1_000_000, value_parser = clap::value_parser!(u64).range(1..))]
    events: u64,
    /// Events per request.
    #[arg(long, default_value_t = 1000, value_parser = clap::value_parser!(u64).range(1..=10_000))]
    batch: u64,
    /// Clients sending at once, each its next request as soon as its last is acknowledged.
    #[arg(long, default_value_t = 4, value_parser = clap::value_parser!(u64).range(1..))]
    concurrency: u64,
}

/// How events are stamped.
#[derive(Debug, Clone, Copy)]
pub enum Stamps {
    /// Just before now, ascending within a request, as a gateway sends them.
    Now,
    /// Spread evenly over a window that has passed: event `k` of the run (request × `batch` +
    /// index) at `start` + `k` × `span_ms` ÷ `events`, so the window `start ..= start + span_ms`
    /// holds exactly the run's events whatever order the requests arrive in. The `replay`
    /// scenario replays such a window.
    Spread {
        start: Timestamp,
        span_ms: i64,
        events: u64,
        batch: u64,
    },
}

impl Stamps {
    /// The timestamp of event `index` of a request of `len` events, request `request`.
    fn at(self, now: Timestamp, len: u64, request: u64, index: u64) -> Timestamp {
        match self {
            Self::Now => now.saturating_sub_millis((len - index) as i64),
            Self::Spread {
                start,
                span_ms,
                events,
                batch,
            } => {
                let k = request * batch + index;
                // In i128 because `k × span_ms` can pass i64 for long runs over long spans.
                let offset = i128::from(k) * i128::from(span_ms) / i128::from(events.max(1));
                start.saturating_add_millis(offset as i64)
            }
        }
    }
}

/// An NDJSON body of `len` events stamped by `stamps`, ascending, as a gateway sends them.
/// Event `i` carries the trace id `r{request}-{i}`, which tells a receiver which request an
/// event came from (the server's own events have decimal trace ids). Built from a template so
/// that the client spends its CPU sending rather than formatting JSON.
pub fn body(len: u64, request: u64, stamps: Stamps) -> axum::body::Bytes {
    const HEAD: &str = r#"{"type":"authorization","ts":""#;
    const TAIL: &str = r#"","service":"konnect","resource":"control-planes","action":"list","granted":true,"principal_id":"eb999f01-5976-4f4b-9fbc-dd5d514bd675","client_ip":"127.0.0.6","user_agent":"grpc-node-js/1.12.4","trace_id":""#;
    let now = Timestamp::from_datetime(time::OffsetDateTime::now_utc());
    let mut body = String::with_capacity(len as usize * 300);
    for i in 0..len {
        let ts = stamps.at(now, len, request, i).to_rfc3339_millis();
        body.push_str(HEAD);
        body.push_str(&ts);
        body.push_str(TAIL);
        body.push_str(&format!("r{request}-{i}\"}}\n"));
    }
    axum::body::Bytes::from(body)
}

/// How many events request `request` carries when `events` are sent `batch` to a request: a
/// full batch, except for a shorter last one.
pub fn request_len(events: u64, batch: u64, request: u64) -> u64 {
    batch.min(events.saturating_sub(request * batch))
}

/// A client that posts events with one token, to one server or to each of several nodes in
/// turn. Cheap to clone.
#[derive(Clone)]
pub struct Producer {
    client: reqwest::Client,
    /// Each node's ingest URL: request `n` goes to the `n`-th, round the nodes.
    urls: Arc<[String]>,
    token: Arc<str>,
    stamps: Stamps,
}

impl Producer {
    /// Keeps up to `connections` idle connections, one per client that will send at once, and
    /// stamps events by `stamps`.
    pub fn new(target: &Target, connections: usize, stamps: Stamps) -> anyhow::Result<Self> {
        Ok(Self {
            client: reqwest::Client::builder()
                .pool_max_idle_per_host(connections)
                .build()?,
            urls: target
                .urls
                .iter()
                .map(|url| format!("{url}/v1/events"))
                .collect(),
            token: target.token.as_str().into(),
            stamps,
        })
    }

    /// Sends request `request` of `len` events; fails unless the server answers 202 (durably
    /// stored).
    pub async fn post(&self, len: u64, request: u64) -> anyhow::Result<()> {
        // As a load balancer would: a node that does not take the connection, or dies with the
        // request (`latency --kill-owner-after`), is skipped, and the request sent to the next.
        let nodes = self.urls.len();
        let mut tried = 0;
        let resp = loop {
            let url = &self.urls[(request as usize + tried) % nodes];
            let sent = self
                .client
                .post(url)
                .bearer_auth(&self.token)
                .header("content-type", "application/x-ndjson")
                .body(body(len, request, self.stamps))
                .send()
                .await;
            match sent {
                Err(_) if tried + 1 < nodes => tried += 1,
                sent => break sent?,
            }
        };
        let what = format!("request {request}");
        expect_status(resp, reqwest::StatusCode::ACCEPTED, &what).await?;
        Ok(())
    }
}

/// What [`send_all`] did.
pub struct Sent {
    /// Events the server acknowledged.
    pub events: u64,
    /// Each request's time from sending to its 202, sorted.
    pub latencies: Vec<Duration>,
    pub started: Instant,
    pub finished: Instant,
}

impl Sent {
    pub fn seconds(&self) -> f64 {
        (self.finished - self.started).as_secs_f64()
    }
}

/// Sends `events` in requests of `batch` from `concurrency` clients, each sending its next
/// request as soon as the previous one is acknowledged, stamped by `stamps`, and shows the
/// progress on stderr.
pub async fn send_all(
    target: &Target,
    events: u64,
    batch: u64,
    concurrency: u64,
    stamps: Stamps,
) -> anyhow::Result<Sent> {
    let requests = events.div_ceil(batch);
    let next = Arc::new(AtomicU64::new(0));
    let acked = Arc::new(AtomicU64::new(0));
    let producer = Producer::new(target, concurrency as usize, stamps)?;
    let progress = Progress::start("events acknowledged", events, {
        let acked = acked.clone();
        move || acked.load(Ordering::Relaxed)
    });
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..concurrency {
        let (producer, next, acked) = (producer.clone(), next.clone(), acked.clone());
        tasks.push(tokio::spawn(async move {
            let mut latencies = Vec::new();
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= requests {
                    return Ok::<_, anyhow::Error>(latencies);
                }
                let len = request_len(events, batch, i);
                let sent = Instant::now();
                producer.post(len, i).await?;
                latencies.push(sent.elapsed());
                acked.fetch_add(len, Ordering::Relaxed);
            }
        }));
    }
    let mut latencies = Vec::new();
    for task in tasks {
        latencies.extend(task.await??);
    }
    let finished = Instant::now();
    progress.finish();
    latencies.sort();
    Ok(Sent {
        events: acked.load(Ordering::Relaxed),
        latencies,
        started,
        finished,
    })
}

/// The `ingest` scenario: events/s durably stored.
pub async fn ingest(target: &Target, args: &IngestArgs) -> anyhow::Result<Report> {
    let IngestArgs {
        events,
        batch,
        concurrency,
    } = *args;
    let meter = Meter::start(target);
    let sent = send_all(target, events, batch, concurrency, Stamps::Now).await?;
    let cost = meter.cost(target);
    let elapsed = sent.seconds();
    let stored = sent.events;
    let rate = stored as f64 / elapsed;
    eprintln!("ingest: {stored} events in {elapsed:.2} s = {rate:.0} events/s durably stored");
    eprintln!(
        "        batch {batch}, concurrency {concurrency}; request (send → 202) {}",
        Quantiles::of(&sent.latencies)
    );
    Ok(Report {
        scenario: "ingest",
        events: stored,
        rates: vec![Rate::new("stored_events_per_second", rate)],
        measured: "ingest",
        cost,
        latency: None,
        details: json!({
            "batch": batch,
            "concurrency": concurrency,
            "seconds": elapsed,
            "request_latency_ms": Quantiles::of(&sent.latencies).to_json(),
        }),
    })
}

//! Producing events: NDJSON bodies shaped like a gateway's, sent through `POST /v1/events` by
//! concurrent clients as fast as the server acknowledges them; and the `ingest` scenario, which
//! reports that rate. The `deliver` and `replay` scenarios send their events with the same
//! pieces.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use auditrelay_core::Timestamp;
use serde_json::json;

use crate::{Target, expect_status, percentile_ms};

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

/// A client that posts events to one server with one token. Cheap to clone.
#[derive(Clone)]
pub struct Producer {
    client: reqwest::Client,
    url: Arc<str>,
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
            url: format!("{}/v1/events", target.url).into(),
            token: target.token.as_str().into(),
            stamps,
        })
    }

    /// Sends request `request` of `len` events; fails unless the server answers 202 (durably
    /// stored).
    pub async fn post(&self, len: u64, request: u64) -> anyhow::Result<()> {
        let resp = self
            .client
            .post(&*self.url)
            .bearer_auth(&self.token)
            .header("content-type", "application/x-ndjson")
            .body(body(len, request, self.stamps))
            .send()
            .await?;
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
    let finished = Instant::now();
    progress.abort();
    eprintln!();
    latencies.sort();
    Ok(Sent {
        events: acked.load(Ordering::Relaxed),
        latencies,
        started,
        finished,
    })
}

/// The `ingest` scenario: events/s durably stored.
pub async fn ingest(
    target: &Target,
    events: u64,
    batch: u64,
    concurrency: u64,
    signing_rate: f64,
) -> anyhow::Result<serde_json::Value> {
    let cpu_before = target.cpu_seconds();
    let sent = send_all(target, events, batch, concurrency, Stamps::Now).await?;
    let elapsed = sent.seconds();
    let stored = sent.events;
    let rate = stored as f64 / elapsed;
    let pct = |p: f64| percentile_ms(&sent.latencies, p);
    let cpu = match (cpu_before, target.cpu_seconds()) {
        (Some(a), Some(b)) => Some(b - a),
        _ => None,
    };
    let rss_mb = target.peak_rss_mb();
    let db_bytes = target.data_dir_bytes();

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

//! `TestSiem`: one SIEM's intake on loopback, for the destination-kind tests. Each kind
//! implements its receiver's documented contract (`reference/siem-receivers.md` beside the
//! product spec) strictly, refusing what the real one refuses: a JSON array sent to Splunk's
//! HEC, a `_bulk` body without its final newline, an `index` action on a data stream, a
//! Datadog body of more than 1,000 entries, a request without its credential…
//!
//! What it accepts it *indexes*, keyed by the event id the record carries (or by the line,
//! where a kind has no place for one), counting every time a key is indexed: a test checks
//! that every event was indexed exactly once, or is on the refused list. Failures are scripted
//! per request: a status (with `Retry-After`), Elasticsearch per-item errors, Splunk's
//! `invalid-event-number`, Loki's ignored entries, indexer acknowledgements that come late or
//! never.

use std::collections::{BTreeMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use auditrelay::body::{self, DEFAULT_MAX_BODY_BYTES};
use auditrelay::listen::server;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use serde_json::{Value, json};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// Which receiver it plays.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SiemKind {
    SplunkHec,
    Datadog,
    /// Elasticsearch `_bulk`; an index whose name starts with `logs-` is a data stream, which
    /// accepts `create` actions only.
    Elasticsearch,
    SumoLogic,
    Loki,
}

/// The credential each kind expects (Sumo Logic's is in its URL).
pub const TOKEN: &str = "s3cr3t-token";

/// A scripted failure for the next request of the intake (acknowledgement queries excepted).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Fault {
    /// Answer this status, with a `Retry-After` when given, indexing nothing.
    Status(u16, Option<&'static str>),
    /// Elasticsearch: index the body, but fail the items at these positions with this status
    /// and error type.
    BulkItems(Vec<usize>, u16, &'static str),
    /// Splunk: the envelope at this position is invalid (code 6); those before it are indexed.
    HecInvalidEvent(usize),
    /// Loki: the entries at these positions are ignored as too far behind.
    LokiIgnore(Vec<usize>),
    /// Splunk with acknowledgement: index the batch, but confirm it only on the n-th query.
    AckAfter(u32),
    /// Splunk with acknowledgement: take the batch (200 and an ack id) and lose it: it is
    /// never indexed nor confirmed.
    AckNever,
}

/// One request as the intake saw it.
#[derive(Debug, Clone)]
pub struct SiemRequest {
    pub method: Method,
    pub path: String,
    pub headers: HeaderMap,
    /// The decoded body.
    pub body: Vec<u8>,
    pub status: u16,
    /// The answer's body.
    pub answer: String,
}

impl SiemRequest {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }
}

#[derive(Default)]
struct Index {
    /// Key (event id, or the line) → how many times it was indexed.
    counts: BTreeMap<String, u32>,
    /// Key → the signed line it carried.
    lines: BTreeMap<String, String>,
    /// Entries Datadog accepted and dropped for their age.
    dropped_old: u32,
}

struct Pending {
    /// Confirmed on this query (counting down); `None`: never.
    confirm_in: Option<u32>,
}

#[derive(Default)]
struct Inner {
    script: VecDeque<Fault>,
    requests: Vec<SiemRequest>,
    index: Index,
    /// Splunk: whether the token has indexer acknowledgement on.
    ack: bool,
    next_ack: u64,
    acks: BTreeMap<u64, Pending>,
    /// Loki: each stream's newest entry, in nanoseconds.
    newest: BTreeMap<String, i128>,
}

struct Shared {
    kind: SiemKind,
    inner: Mutex<Inner>,
    changed: watch::Sender<u64>,
}

pub struct TestSiem {
    kind: SiemKind,
    addr: SocketAddr,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

/// How far behind a stream's newest entry Loki still accepts one (half of the default
/// `max_chunk_age`).
const LOKI_WINDOW_NANOS: i128 = 3_600 * 1_000_000_000;
/// Datadog drops entries older than this.
const DATADOG_MAX_AGE_MS: i64 = 18 * 3_600_000;

impl TestSiem {
    pub async fn start(kind: SiemKind) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            kind,
            inner: Mutex::new(Inner::default()),
            changed: watch::Sender::new(0),
        });
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let server = tokio::spawn(server::serve(
            listener,
            None,
            app,
            std::future::pending(),
            Duration::ZERO,
        ));
        Self {
            kind,
            addr,
            shared,
            server,
        }
    }

    /// Splunk: turns indexer acknowledgement on for the token.
    pub fn with_ack(self) -> Self {
        self.lock().ack = true;
        self
    }

    /// Splunk: turns indexer acknowledgement on or off for the token, from the next request.
    pub fn set_ack(&self, on: bool) {
        self.lock().ack = on;
    }

    fn lock(&self) -> MutexGuard<'_, Inner> {
        lock(&self.shared.inner)
    }

    /// The intake's URL: `index` names the Elasticsearch index or data stream; the path
    /// picks Splunk's event or raw endpoint.
    pub fn url(&self, index: &str) -> String {
        let base = format!("http://{}", self.addr);
        match self.kind {
            SiemKind::SplunkHec => format!("{base}/services/collector/{index}"),
            SiemKind::Datadog => format!("{base}/api/v2/logs"),
            SiemKind::Elasticsearch => format!("{base}/{index}/_bulk"),
            SiemKind::SumoLogic => format!("{base}/receiver/v1/http/{TOKEN}"),
            SiemKind::Loki => format!("{base}/loki/api/v1/push"),
        }
    }

    pub fn script(&self, faults: impl IntoIterator<Item = Fault>) {
        self.lock().script.extend(faults);
    }

    pub fn requests(&self) -> Vec<SiemRequest> {
        self.lock().requests.clone()
    }

    /// How many times each key (event id, or line) was indexed.
    pub fn counts(&self) -> BTreeMap<String, u32> {
        self.lock().index.counts.clone()
    }

    /// The signed lines indexed, by key.
    pub fn lines(&self) -> BTreeMap<String, String> {
        self.lock().index.lines.clone()
    }

    /// Entries Datadog accepted and silently dropped for their age.
    pub fn dropped_old(&self) -> u32 {
        self.lock().index.dropped_old
    }

    /// Waits until `n` keys are indexed; returns the counts. Panics after `timeout`.
    pub async fn wait_for_indexed(&self, n: usize, timeout: Duration) -> BTreeMap<String, u32> {
        let mut changed = self.shared.changed.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let counts = self.counts();
            if counts.len() >= n {
                return counts;
            }
            if !matches!(
                tokio::time::timeout_at(deadline, changed.changed()).await,
                Ok(Ok(()))
            ) {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| format!("{} {} → {} {}", r.method, r.path, r.status, r.answer))
                    .collect();
                panic!(
                    "{n} documents not indexed within {timeout:?} ({} are); requests: {seen:#?}",
                    counts.len()
                );
            }
        }
    }
}

impl Drop for TestSiem {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

/// One answer: a status, a JSON (or text) body, and a `Retry-After` when it asks for one.
struct Answer(u16, String, Option<&'static str>);

impl Answer {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Self(status, body.into(), None)
    }

    fn json(status: u16, body: Value) -> Self {
        Self(status, body.to_string(), None)
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let path = uri
        .path_and_query()
        .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned());
    let decoded = body::read(&headers, body, DEFAULT_MAX_BODY_BYTES * 16).await;
    let Answer(status, answer, retry_after) = {
        let mut inner = lock(&shared.inner);
        match &decoded {
            Err(e) => Answer::text(e.status().as_u16(), e.to_string()),
            Ok(received) => intake(
                shared.kind,
                &mut inner,
                &method,
                &path,
                &headers,
                &received.decoded,
            ),
        }
    };
    lock(&shared.inner).requests.push(SiemRequest {
        method,
        path,
        headers,
        body: decoded.map(|r| r.decoded.to_vec()).unwrap_or_default(),
        status,
        answer: answer.clone(),
    });
    shared.changed.send_modify(|n| *n += 1);
    let mut response = (StatusCode::from_u16(status).unwrap(), answer).into_response();
    if let Some(retry_after) = retry_after {
        response
            .headers_mut()
            .insert("retry-after", retry_after.parse().unwrap());
    }
    response
}

fn intake(
    kind: SiemKind,
    inner: &mut Inner,
    method: &Method,
    path: &str,
    headers: &HeaderMap,
    body: &[u8],
) -> Answer {
    if method != Method::POST {
        return Answer::text(405, "method not allowed");
    }
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    // Splunk's acknowledgement queries are not intake requests: no fault applies to them.
    if kind == SiemKind::SplunkHec && path.starts_with("/services/collector/ack") {
        return hec_ack(
            inner,
            header("authorization"),
            header("x-splunk-request-channel"),
            body,
        );
    }
    if let Some(fault) = inner.script.front()
        && let Fault::Status(status, retry_after) = fault
    {
        let (status, retry_after) = (*status, *retry_after);
        inner.script.pop_front();
        return Answer(status, "scripted failure".into(), retry_after);
    }
    match kind {
        SiemKind::SplunkHec => hec(inner, path, headers, body),
        SiemKind::Datadog => datadog(inner, path, headers, body),
        SiemKind::Elasticsearch => bulk(inner, path, headers, body),
        SiemKind::SumoLogic => sumo(inner, path, body),
        SiemKind::Loki => loki(inner, path, headers, body),
    }
}

fn index(inner: &mut Inner, key: &str, line: &str) {
    *inner.index.counts.entry(key.to_owned()).or_default() += 1;
    inner.index.lines.insert(key.to_owned(), line.to_owned());
}

fn hec(inner: &mut Inner, path: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if header("authorization") != Some(&format!("Splunk {TOKEN}")) {
        return Answer::json(401, json!({"text": "Invalid authorization", "code": 3}));
    }
    let channel = header("x-splunk-request-channel");
    let raw = path.starts_with("/services/collector/raw");
    if (raw || inner.ack) && channel.is_none_or(|c| uuid::Uuid::parse_str(c).is_err()) {
        return Answer::json(400, json!({"text": "Data channel is missing", "code": 10}));
    }
    let fault = inner.script.pop_front();
    // Each event: its key and line.
    let mut events: Vec<(String, String)> = Vec::new();
    if raw {
        for line in body::lines(body) {
            let line = String::from_utf8_lossy(line).into_owned();
            events.push((line.clone(), line));
        }
    } else if path
        .trim_end_matches('/')
        .ends_with("/services/collector/event")
        || path.trim_end_matches('/').ends_with("/services/collector")
    {
        let stream = serde_json::Deserializer::from_slice(body).into_iter::<Value>();
        for (i, envelope) in stream.enumerate() {
            let valid = envelope.ok().filter(|e| {
                e.is_object()
                    && e.get("event").is_some_and(|v| !v.is_null())
                    && e.get("time").is_none_or(Value::is_number)
            });
            let Some(envelope) = valid else {
                // An array, a bare value, an envelope without `event`: refused here, and
                // everything before it was indexed.
                for (key, line) in &events {
                    index(inner, key, line);
                }
                return Answer::json(
                    400,
                    json!({"text": "Invalid data format", "code": 6, "invalid-event-number": i}),
                );
            };
            let line = envelope["event"].as_str().unwrap_or_default().to_owned();
            let key = envelope["fields"]["event_id"]
                .as_str()
                .map_or_else(|| line.clone(), str::to_owned);
            events.push((key, line));
        }
    } else {
        return Answer::json(
            404,
            json!({"text": "The requested URL was not found on this server.", "code": 404}),
        );
    }
    if events.is_empty() {
        return Answer::json(400, json!({"text": "No data", "code": 5}));
    }
    let mut confirm_in = Some(0);
    match fault {
        Some(Fault::HecInvalidEvent(at)) if at < events.len() => {
            for (key, line) in &events[..at] {
                index(inner, key, line);
            }
            return Answer::json(
                400,
                json!({"text": "Invalid data format", "code": 6, "invalid-event-number": at}),
            );
        }
        Some(Fault::AckAfter(n)) => confirm_in = Some(n),
        Some(Fault::AckNever) => confirm_in = None,
        Some(other) => inner.script.push_front(other),
        None => {}
    }
    if confirm_in.is_some() {
        for (key, line) in &events {
            index(inner, key, line);
        }
    }
    if !inner.ack {
        return Answer::json(200, json!({"text": "Success", "code": 0}));
    }
    let id = inner.next_ack;
    inner.next_ack += 1;
    inner.acks.insert(id, Pending { confirm_in });
    Answer::json(200, json!({"text": "Success", "code": 0, "ackId": id}))
}

fn hec_ack(inner: &mut Inner, auth: Option<&str>, channel: Option<&str>, body: &[u8]) -> Answer {
    if auth != Some(&format!("Splunk {TOKEN}")) {
        return Answer::json(401, json!({"text": "Invalid authorization", "code": 3}));
    }
    if !inner.ack {
        return Answer::json(400, json!({"text": "ACK is disabled", "code": 14}));
    }
    if channel.is_none() {
        return Answer::json(400, json!({"text": "Data channel is missing", "code": 10}));
    }
    let Ok(query) = serde_json::from_slice::<Value>(body) else {
        return Answer::json(400, json!({"text": "Invalid data format", "code": 6}));
    };
    let mut acks = serde_json::Map::new();
    for id in query["acks"].as_array().into_iter().flatten() {
        let Some(id) = id.as_u64() else { continue };
        let done = match inner.acks.get_mut(&id) {
            Some(Pending {
                confirm_in: Some(0),
            }) => true,
            Some(Pending {
                confirm_in: Some(n),
            }) => {
                *n -= 1;
                false
            }
            Some(Pending { confirm_in: None }) | None => false,
        };
        acks.insert(id.to_string(), Value::Bool(done));
    }
    Answer::json(200, json!({ "acks": acks }))
}

fn datadog(inner: &mut Inner, path: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if path != "/api/v2/logs" {
        return Answer::text(404, "not found");
    }
    if header("dd-api-key") != Some(TOKEN) {
        return Answer::json(
            403,
            json!({"errors": [{"status": "403", "title": "Forbidden"}]}),
        );
    }
    if !header("content-type").is_some_and(|c| c.starts_with("application/json")) {
        return Answer::json(
            400,
            json!({"errors": [{"status": "400", "title": "Bad Request"}]}),
        );
    }
    if body.len() > 5_000_000 {
        return Answer::json(
            413,
            json!({"errors": [{"status": "413", "title": "Payload too large"}]}),
        );
    }
    let Ok(Value::Array(entries)) = serde_json::from_slice::<Value>(body) else {
        return Answer::json(
            400,
            json!({"errors": [{"status": "400", "title": "Bad Request", "detail": "not a JSON array"}]}),
        );
    };
    if entries.len() > 1000 {
        return Answer::json(
            400,
            json!({"errors": [{"status": "400", "title": "Bad Request", "detail": "more than 1000 entries"}]}),
        );
    }
    let now = auditrelay::clock::now().as_millis();
    for entry in &entries {
        let line = entry["message"].as_str().unwrap_or_default();
        if entry["timestamp"]
            .as_i64()
            .is_some_and(|ts| now - ts > DATADOG_MAX_AGE_MS)
        {
            // Accepted, and dropped without a word: what auditrelay must never let happen.
            inner.index.dropped_old += 1;
            continue;
        }
        let key = entry["event_id"].as_str().unwrap_or(line).to_owned();
        index(inner, &key, line);
    }
    Answer::json(202, json!({}))
}

fn bulk(inner: &mut Inner, path: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    let Some(target) = path
        .strip_suffix("/_bulk")
        .map(|p| p.trim_start_matches('/'))
    else {
        return Answer::text(404, "not found");
    };
    if header("authorization") != Some(&format!("ApiKey {TOKEN}")) {
        return Answer::json(
            401,
            json!({"error": {"type": "security_exception", "reason": "missing authentication credentials"}, "status": 401}),
        );
    }
    if header("content-type") != Some("application/x-ndjson") {
        return Answer::json(
            406,
            json!({"error": "Content-Type header is not supported", "status": 406}),
        );
    }
    if !body.ends_with(b"\n") {
        return Answer::json(
            400,
            json!({"error": {"type": "illegal_argument_exception", "reason": "The bulk request must be terminated by a newline [\\n]"}, "status": 400}),
        );
    }
    let data_stream = target.starts_with("logs-");
    let lines: Vec<&[u8]> = body
        .split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    if !lines.len().is_multiple_of(2) {
        return Answer::json(
            400,
            json!({"error": {"type": "illegal_argument_exception", "reason": "Malformed action/metadata line"}, "status": 400}),
        );
    }
    let fault = inner.script.pop_front();
    let (failing, fail_status, fail_type) = match fault {
        Some(Fault::BulkItems(at, status, kind)) => (at, status, kind),
        Some(other) => {
            inner.script.push_front(other);
            (Vec::new(), 0, "")
        }
        None => (Vec::new(), 0, ""),
    };
    let mut items = Vec::new();
    let mut errors = false;
    for (i, pair) in lines.chunks(2).enumerate() {
        let (Ok(action), Ok(source)) = (
            serde_json::from_slice::<Value>(pair[0]),
            serde_json::from_slice::<Value>(pair[1]),
        ) else {
            return Answer::json(
                400,
                json!({"error": {"type": "x_content_parse_exception", "reason": "not JSON"}, "status": 400}),
            );
        };
        let (op, meta) = match action.as_object().and_then(|o| o.iter().next()) {
            Some((op, meta)) => (op.clone(), meta.clone()),
            None => {
                return Answer::json(
                    400,
                    json!({"error": {"type": "illegal_argument_exception", "reason": "Malformed action/metadata line"}, "status": 400}),
                );
            }
        };
        let id = meta["_id"].as_str().unwrap_or_default().to_owned();
        let item = |status: u16, error: Option<(&str, &str)>| {
            let mut result = json!({"_index": target, "_id": id, "status": status});
            if let Some((kind, reason)) = error {
                result["error"] = json!({"type": kind, "reason": reason});
            }
            json!({ op.clone(): result })
        };
        if data_stream && op != "create" {
            errors = true;
            items.push(item(
                400,
                Some((
                    "illegal_argument_exception",
                    "only write ops with an op_type of create are allowed in data streams",
                )),
            ));
            continue;
        }
        if failing.contains(&i) {
            errors = true;
            items.push(item(
                fail_status,
                Some((fail_type, "scripted item failure")),
            ));
            continue;
        }
        if op == "create" && inner.index.counts.contains_key(&id) {
            errors = true;
            items.push(item(
                409,
                Some((
                    "version_conflict_engine_exception",
                    "document already exists",
                )),
            ));
            continue;
        }
        let line = source["message"].as_str().unwrap_or_default();
        let key = if id.is_empty() {
            line.to_owned()
        } else {
            id.clone()
        };
        index(inner, &key, line);
        items.push(item(201, None));
    }
    Answer::json(200, json!({"took": 1, "errors": errors, "items": items}))
}

fn sumo(inner: &mut Inner, path: &str, body: &[u8]) -> Answer {
    if path.split('?').next() != Some(&format!("/receiver/v1/http/{TOKEN}")) {
        return Answer::text(401, "invalid source");
    }
    if body.len() > 1_000_000 {
        return Answer::text(413, "request larger than 1 MB");
    }
    for line in body::lines(body) {
        let line = String::from_utf8_lossy(line).into_owned();
        index(inner, &line.clone(), &line);
    }
    Answer::text(200, "")
}

fn loki(inner: &mut Inner, path: &str, headers: &HeaderMap, body: &[u8]) -> Answer {
    let header = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
    if path != "/loki/api/v1/push" {
        return Answer::text(404, "404 page not found");
    }
    if header("content-type") != Some("application/json") {
        return Answer::text(415, "unsupported content type");
    }
    let Ok(push) = serde_json::from_slice::<Value>(body) else {
        return Answer::text(400, "error parsing push request: not JSON");
    };
    let fault = inner.script.pop_front();
    let ignore = match fault {
        Some(Fault::LokiIgnore(at)) => at,
        Some(other) => {
            inner.script.push_front(other);
            Vec::new()
        }
        None => Vec::new(),
    };
    let mut messages = Vec::new();
    let (mut total, mut position) = (0, 0);
    for stream in push["streams"].as_array().into_iter().flatten() {
        let Some(labels) = stream["stream"].as_object().filter(|l| !l.is_empty()) else {
            return Answer::text(400, "error at least one label pair is required per stream");
        };
        let name = serde_json::to_string(labels).unwrap();
        for value in stream["values"].as_array().into_iter().flatten() {
            total += 1;
            let ts = value[0].as_str().and_then(|t| t.parse::<i128>().ok());
            let (Some(ts), Some(line)) = (ts, value[1].as_str()) else {
                return Answer::text(400, "error parsing push request: invalid entry");
            };
            let newest = inner.newest.get(&name).copied().unwrap_or(i128::MIN);
            let behind = newest != i128::MIN && ts < newest - LOKI_WINDOW_NANOS;
            if behind || ignore.contains(&position) {
                messages.push(format!(
                    "entry with timestamp {} ignored, reason: 'entry too far behind, oldest acceptable timestamp is: {}', for stream: {name},",
                    go_time(ts),
                    go_time(newest.max(ts) - LOKI_WINDOW_NANOS)
                ));
            } else {
                inner.newest.insert(name.clone(), newest.max(ts));
                let key = value[2]["event_id"].as_str().unwrap_or(line).to_owned();
                index(inner, &key, line);
            }
            position += 1;
        }
    }
    if messages.is_empty() {
        return Answer::text(204, "");
    }
    Answer::text(
        400,
        format!(
            "{}\ntotal ignored: {} out of {total}",
            messages.join("\n"),
            messages.len()
        ),
    )
}

/// Nanoseconds since the epoch as Go's `time.Time.String()` writes them in UTC.
fn go_time(nanos: i128) -> String {
    let at = time::OffsetDateTime::from_unix_timestamp_nanos(nanos).unwrap();
    let fraction = format!("{:09}", at.nanosecond());
    let fraction = fraction.trim_end_matches('0');
    let fraction = if fraction.is_empty() {
        String::new()
    } else {
        format!(".{fraction}")
    };
    format!(
        "{:04}-{:02}-{:02} {:02}:{:02}:{:02}{fraction} +0000 UTC",
        at.year(),
        u8::from(at.month()),
        at.day(),
        at.hour(),
        at.minute(),
        at.second()
    )
}

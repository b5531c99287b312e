//! `auditrelay listen`: a local webhook receiver for developers and tests, which accepts
//! deliveries the way a SIEM would (DECISIONS.md K8.2) and shows what arrived.
//!
//! It answers `POST` on one path with 202, after checking the `Authorization` header,
//! inflating gzip within a size limit and, with `--jwks`, verifying every line's signature. A
//! batch with bad signatures is still accepted: the point is to show them to the developer,
//! not to make the sender retry. `--fail-status` (with `--fail-first`) makes it refuse
//! deliveries on purpose, to watch a sender's retries and recovery.
//!
//! The server pieces ([`server`], [`tls`], [`body`]) are shared with the integration tests'
//! scriptable receiver, so both read requests the same way.

pub mod server;
pub mod tls;

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use anyhow::{Context as _, bail};
use auditrelay_core::format::{is_control, verify_line};
use auditrelay_core::{PublicKey, Timestamp};
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::header::{ALLOW, AUTHORIZATION, HeaderValue};
use axum::http::{HeaderMap, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use clap::Args;
use sha2::{Digest as _, Sha256};
use tokio::net::TcpListener;

use crate::config::{LogConfig, LogFormat};
use crate::{app, body, client, clock, telemetry};

/// How long requests in flight may take to finish after SIGINT or SIGTERM.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(5);

#[derive(Debug, Args)]
pub struct ListenArgs {
    /// Address to listen on (port 0 picks a free one; the log says which).
    #[arg(long, value_name = "ADDR", default_value = "127.0.0.1:9000")]
    pub listen: SocketAddr,
    /// The path that accepts deliveries; other paths get 404.
    #[arg(long, default_value = "/")]
    pub path: String,
    /// Serve HTTPS with a certificate generated at start-up for localhost, 127.0.0.1 and ::1;
    /// its SHA-256 fingerprint is logged.
    #[arg(long)]
    pub tls_self_signed: bool,
    /// Answer 401 unless the Authorization header is exactly this value.
    #[arg(
        long,
        value_name = "VALUE",
        env = "AUDITRELAY_LISTEN_AUTHORIZATION",
        hide_env_values = true
    )]
    pub authorization: Option<String>,
    /// Answer 413 when a decoded body is larger than this.
    #[arg(long, value_name = "BYTES", default_value_t = body::DEFAULT_MAX_BODY_BYTES)]
    pub max_body_bytes: usize,
    /// Verify each line's signature against this JWKS (URL or file) and report bad ones.
    #[arg(long, value_name = "URL|FILE")]
    pub jwks: Option<String>,
    /// Print one JSON object per batch instead of its lines.
    #[arg(long)]
    pub summary: bool,
    /// Also append every received line to this file (flushed after each batch).
    #[arg(long, value_name = "FILE")]
    pub out: Option<PathBuf>,
    /// Refuse deliveries with this status (all of them, or the first --fail-first).
    #[arg(long, value_name = "CODE", value_parser = clap::value_parser!(u16).range(100..=599))]
    pub fail_status: Option<u16>,
    /// Refuse only the first N deliveries (with --fail-status, 500 by default), then accept.
    #[arg(long, value_name = "N")]
    pub fail_first: Option<u64>,
}

/// What the handler needs, built once from the arguments.
struct Receiver {
    path: String,
    /// SHA-256 of the expected value: the value itself is not kept where a log could reach it.
    authorization: Option<[u8; 32]>,
    max_body_bytes: usize,
    keys: Option<Keys>,
    summary: bool,
    out: Option<File>,
    fail: Option<Failure>,
    /// Deliveries so far (POSTs to the path), numbering batches and counting `--fail-first`.
    deliveries: AtomicU64,
    /// The number each Idempotency-Key was first delivered under: a sender's retry carries the
    /// same key, and is shown as a retry of that batch rather than as a new one.
    first_delivery: Mutex<std::collections::HashMap<String, u64>>,
    /// Held while a batch is written, so concurrent batches do not interleave their lines.
    output: Mutex<()>,
}

/// One delivery that passed the checks, with what the output reports about it.
struct Batch {
    number: u64,
    /// The batch this delivery repeats (the same Idempotency-Key), if any.
    retry_of: Option<u64>,
    received_at: Timestamp,
    idempotency_key: Option<String>,
    body: body::Received,
}

#[derive(Debug, Clone, Copy)]
struct Failure {
    status: StatusCode,
    /// Only the first this many deliveries fail; all of them when `None`.
    first: Option<u64>,
}

pub async fn run(args: ListenArgs) -> anyhow::Result<()> {
    telemetry::init_logging(&LogConfig {
        format: LogFormat::Auto,
        level: "info".to_owned(),
    });
    if !args.path.starts_with('/') {
        bail!("--path must start with `/`");
    }
    if args.max_body_bytes == 0 {
        bail!("--max-body-bytes must be at least 1");
    }
    if args.authorization.as_deref() == Some("") {
        bail!("--authorization cannot be empty");
    }
    let fail = match (args.fail_status, args.fail_first) {
        (None, None) => None,
        (status, first) => Some(Failure {
            status: StatusCode::from_u16(status.unwrap_or(500))
                .context("--fail-status is not an HTTP status")?,
            first,
        }),
    };
    let keys = match &args.jwks {
        Some(source) => {
            let keys = client::load_jwks(source).await?;
            tracing::info!(keys = keys.len(), "verifying signatures against {source}");
            Some(Keys::new(source.clone(), keys))
        }
        None => None,
    };
    let out = match &args.out {
        Some(path) => Some(
            OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("Failed to open {} for appending", path.display()))?,
        ),
        None => None,
    };
    let tls = if args.tls_self_signed {
        Some(tls::SelfSigned::generate()?)
    } else {
        None
    };
    let listener = TcpListener::bind(args.listen)
        .await
        .with_context(|| format!("Failed to listen on {}", args.listen))?;
    let addr = listener.local_addr()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let url = format!("{scheme}://{addr}{}", args.path);
    if let Some(tls) = &tls {
        let fingerprint = tls.fingerprint();
        tracing::info!(
            tls.fingerprint_sha256 = %fingerprint,
            "self-signed certificate for {}; SHA-256 fingerprint {fingerprint}",
            tls::NAMES.join(", ")
        );
    }
    if let Some(fail) = fail {
        match fail.first {
            Some(n) => tracing::info!("the first {n} deliveries will get {}", fail.status),
            None => tracing::info!("every delivery will get {}", fail.status),
        }
    }
    let receiver = Arc::new(Receiver {
        authorization: args
            .authorization
            .as_deref()
            .map(|value| Sha256::digest(value.as_bytes()).into()),
        path: args.path,
        max_body_bytes: args.max_body_bytes,
        keys,
        summary: args.summary,
        out,
        fail,
        deliveries: AtomicU64::new(0),
        first_delivery: Mutex::new(std::collections::HashMap::new()),
        output: Mutex::new(()),
    });
    if receiver.keys.is_some() {
        // Keys rotate (published before they sign): keep up without waiting for a failure.
        let receiver = receiver.clone();
        tokio::spawn(async move {
            let mut every = tokio::time::interval(JWKS_REFRESH);
            every.tick().await;
            loop {
                every.tick().await;
                if let Some(keys) = &receiver.keys {
                    keys.refresh().await;
                }
            }
        });
    }
    let router = Router::new().fallback(receive).with_state(receiver);
    tracing::info!(url = %url, "listening on {url}");
    server::serve(
        listener,
        tls.map(|t| t.acceptor()),
        router,
        app::shutdown_signal(),
        SHUTDOWN_GRACE,
    )
    .await;
    tracing::info!("stopped");
    Ok(())
}

fn text(status: StatusCode, message: impl Into<String>) -> Response {
    let mut message = message.into();
    message.push('\n');
    (status, message).into_response()
}

async fn receive(
    State(receiver): State<Arc<Receiver>>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let (number, retry_of) = match receiver.admit(&method, &uri, &headers) {
        Ok(admitted) => admitted,
        Err((status, message)) => {
            body::discard(body).await;
            let mut response = text(status, message);
            if status == StatusCode::METHOD_NOT_ALLOWED {
                response
                    .headers_mut()
                    .insert(ALLOW, HeaderValue::from_static("POST"));
            }
            return response;
        }
    };
    let received_at = clock::now();
    let idempotency_key = headers
        .get("idempotency-key")
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let body = match body::read(&headers, body, receiver.max_body_bytes).await {
        Ok(received) => received,
        Err(e) => {
            let status = e.status();
            tracing::warn!(
                batch.number = number,
                http.status = status.as_u16(),
                "batch {number}: {e}"
            );
            return text(status, e.to_string());
        }
    };
    // Verifying signatures is CPU work and writing to a pipe can block: both stay off the
    // async workers.
    let batch = Arc::new(Batch {
        number,
        retry_of,
        received_at,
        idempotency_key,
        body,
    });
    // A line that fails may be signed by a key published since the JWKS was loaded (after
    // `keys rotate`): fetch it again (at most every few seconds) and check once more before
    // calling anything invalid.
    let mut failures = verify_off_thread(&receiver, &batch).await;
    if !failures.is_empty()
        && let Some(keys) = &receiver.keys
        && keys.refresh_after_failure().await
    {
        failures = verify_off_thread(&receiver, &batch).await;
    }
    let report = tokio::task::spawn_blocking(move || receiver.take_batch(&batch, &failures)).await;
    match report
        .map_err(std::io::Error::other)
        .and_then(|written| written)
    {
        Ok(lines) => text(StatusCode::ACCEPTED, format!("accepted {lines} lines")),
        Err(e) => {
            tracing::error!(batch.number = number, error = %e, "batch {number}: could not write it out");
            text(
                StatusCode::INTERNAL_SERVER_ERROR,
                "could not write the batch out",
            )
        }
    }
}

impl Receiver {
    /// Decides whether a request is a delivery to take (returning its number) or one to refuse
    /// (returning the status and message to answer) before its body is read.
    fn admit(
        &self,
        method: &Method,
        uri: &Uri,
        headers: &HeaderMap,
    ) -> Result<(u64, Option<u64>), (StatusCode, String)> {
        if uri.path() != self.path {
            let message = format!("not found: deliveries go to {}", self.path);
            return Err((StatusCode::NOT_FOUND, message));
        }
        if method != Method::POST {
            let message = "method not allowed: use POST".to_owned();
            return Err((StatusCode::METHOD_NOT_ALLOWED, message));
        }
        let number = self.deliveries.fetch_add(1, Ordering::Relaxed) + 1;
        let key = headers.get("idempotency-key").and_then(|v| v.to_str().ok());
        let retry_of = self.retry_of(key, number);
        let name = batch_name(number, retry_of);
        if let Some(fail) = self.fail
            && fail.first.is_none_or(|first| number <= first)
        {
            tracing::warn!(
                batch.number = number,
                batch.retry_of = retry_of,
                http.status = fail.status.as_u16(),
                "{name}: refused on purpose with {}",
                fail.status
            );
            let message = "refused on purpose (auditrelay listen --fail-status)".to_owned();
            return Err((fail.status, message));
        }
        if !self.authorized(headers.get(AUTHORIZATION)) {
            tracing::warn!(
                batch.number = number,
                http.status = 401,
                "{name}: wrong or missing Authorization header"
            );
            let message = "wrong or missing Authorization header".to_owned();
            return Err((StatusCode::UNAUTHORIZED, message));
        }
        Ok((number, retry_of))
    }

    /// The earlier delivery with the same Idempotency-Key, remembering this one's number if it
    /// is the first. Bounded: past 10,000 keys the oldest memory is dropped wholesale.
    fn retry_of(&self, key: Option<&str>, number: u64) -> Option<u64> {
        let key = key?;
        let mut first = self
            .first_delivery
            .lock()
            .unwrap_or_else(|e| e.into_inner());
        if first.len() >= 10_000 && !first.contains_key(key) {
            first.clear();
        }
        let earlier = *first.entry(key.to_owned()).or_insert(number);
        (earlier != number).then_some(earlier)
    }

    /// Compares digests, not values: the time taken then depends neither on the expected
    /// value's length nor on where the two first differ, and every byte is compared.
    fn authorized(&self, given: Option<&HeaderValue>) -> bool {
        let Some(expected) = &self.authorization else {
            return true;
        };
        let Some(given) = given else {
            return false;
        };
        let given: [u8; 32] = Sha256::digest(given.as_bytes()).into();
        let difference = expected
            .iter()
            .zip(given.iter())
            .fold(0u8, |acc, (a, b)| acc | (a ^ b));
        difference == 0
    }

    /// The lines of a batch whose signature no known key verifies: `(line number, reason)`.
    fn verify(&self, batch: &Batch) -> Vec<(usize, String)> {
        let Some(keys) = &self.keys else {
            return Vec::new();
        };
        let keys = keys.current();
        body::lines(&batch.body.decoded)
            .enumerate()
            .filter_map(|(index, line)| {
                verify_line(line, &keys)
                    .err()
                    .map(|reason| (index + 1, reason.to_string()))
            })
            .collect()
    }

    /// Reports, prints and appends one accepted batch whose `failures` are known; returns its
    /// number of lines.
    fn take_batch(&self, batch: &Batch, failures: &[(usize, String)]) -> std::io::Result<usize> {
        let (number, received) = (batch.number, &batch.body);
        let idempotency_key = batch.idempotency_key.as_deref();
        let lines: Vec<&[u8]> = body::lines(&received.decoded).collect();
        for (at, reason) in failures {
            tracing::warn!(
                batch.number = number,
                batch.line = at,
                "batch {number}, line {at}: INVALID signature: {reason}"
            );
        }
        let failed = failures.len();
        let verified = match &self.keys {
            Some(_) => lines.len() - failed,
            None => 0,
        };
        let mut joined = Vec::with_capacity(received.decoded.len() + 1);
        for line in &lines {
            joined.extend_from_slice(line);
            joined.push(b'\n');
        }
        let _writing = self.output.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(mut out) = self.out.as_ref() {
            out.write_all(&joined)?;
            out.flush()?;
        }
        let mut stdout = std::io::stdout().lock();
        if self.summary {
            let summary = serde_json::json!({
                "received_at": batch.received_at.to_rfc3339_millis(),
                "lines": lines.len(),
                "bytes": received.compressed_len,
                "decoded_bytes": received.decoded.len(),
                "verified": verified,
                "failed": failed,
                "idempotency_key": idempotency_key,
                "retry_of": batch.retry_of,
            });
            writeln!(stdout, "{summary}")?;
        } else {
            // The file keeps the bytes as received (for `verify`); the terminal gets no control
            // sequence a sender could have put in a line.
            for line in &lines {
                writeln!(stdout, "{}", printable(line))?;
            }
        }
        stdout.flush()?;
        let signatures = match &self.keys {
            Some(_) if failed > 0 => format!(", {verified} verified, {failed} INVALID"),
            Some(_) => format!(", all {verified} verified"),
            None => String::new(),
        };
        tracing::info!(
            batch.number = number,
            batch.retry_of = batch.retry_of,
            batch.lines = lines.len(),
            batch.bytes = received.compressed_len,
            batch.decoded_bytes = received.decoded.len(),
            batch.verified = verified,
            batch.failed = failed,
            batch.gzip = received.coding == body::Coding::Gzip,
            idempotency_key,
            "{}: {} lines, {} bytes ({} decoded){signatures}",
            batch_name(number, batch.retry_of),
            lines.len(),
            received.compressed_len,
            received.decoded.len(),
        );
        Ok(lines.len())
    }
}

/// `batch 5`, or `batch 5 (a retry of batch 3)`.
fn batch_name(number: u64, retry_of: Option<u64>) -> String {
    match retry_of {
        Some(first) => format!("batch {number} (a retry of batch {first})"),
        None => format!("batch {number}"),
    }
}

/// How often `--jwks` is fetched again in any case, and how soon after one fetch a failing line
/// may cause another.
const JWKS_REFRESH: Duration = Duration::from_secs(300);
const JWKS_RETRY: Duration = Duration::from_secs(5);

/// The published keys lines are checked against, fetched again as they rotate.
struct Keys {
    source: String,
    current: std::sync::RwLock<Arc<Vec<PublicKey>>>,
    /// When a failing line last caused a fetch (`None`: never).
    retried: Mutex<Option<std::time::Instant>>,
}

impl Keys {
    fn new(source: String, keys: Vec<PublicKey>) -> Self {
        Self {
            source,
            current: std::sync::RwLock::new(Arc::new(keys)),
            retried: Mutex::new(None),
        }
    }

    fn current(&self) -> Arc<Vec<PublicKey>> {
        self.current
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// Fetches the keys again; `true` when that gave a different set.
    async fn refresh(&self) -> bool {
        match client::load_jwks(&self.source).await {
            Ok(keys) => {
                let mut current = self.current.write().unwrap_or_else(|e| e.into_inner());
                let changed = **current != keys;
                if changed {
                    tracing::info!(keys = keys.len(), "reloaded the JWKS from {}", self.source);
                    *current = Arc::new(keys);
                }
                changed
            }
            Err(e) => {
                tracing::warn!(error = %e, "could not reload the JWKS; keeping the keys loaded before");
                false
            }
        }
    }

    /// [`Keys::refresh`] for a line that failed, unless one did within [`JWKS_RETRY`] (a
    /// stream of tampered lines must not become a stream of fetches).
    async fn refresh_after_failure(&self) -> bool {
        {
            let mut retried = self.retried.lock().unwrap_or_else(|e| e.into_inner());
            if retried.is_some_and(|at| at.elapsed() < JWKS_RETRY) {
                return false;
            }
            *retried = Some(std::time::Instant::now());
        }
        self.refresh().await
    }
}

/// [`Receiver::verify`] on the blocking pool: signatures are CPU work.
async fn verify_off_thread(receiver: &Arc<Receiver>, batch: &Arc<Batch>) -> Vec<(usize, String)> {
    let (receiver, batch) = (receiver.clone(), batch.clone());
    tokio::task::spawn_blocking(move || receiver.verify(&batch))
        .await
        .unwrap_or_default()
}

/// A received line as text safe to show on a terminal: invalid UTF-8 as U+FFFD, and every
/// control character (ESC, NUL, TAB, C1, U+2028, … see [`is_control`]) as its `\u{…}` escape.
fn printable(line: &[u8]) -> std::borrow::Cow<'_, str> {
    let text = String::from_utf8_lossy(line);
    if !text.chars().any(is_control) {
        return text;
    }
    let mut shown = String::with_capacity(text.len() + 16);
    for c in text.chars() {
        if is_control(c) {
            shown.extend(c.escape_unicode());
        } else {
            shown.push(c);
        }
    }
    std::borrow::Cow::Owned(shown)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_shown_without_control_sequences() {
        assert_eq!(printable(b"plain CEF:0|line"), "plain CEF:0|line");
        let shown = printable(b"a\x1b[31mred\x00\tb\xc2\x85c\xe2\x80\xa8d\xff");
        assert_eq!(
            shown,
            "a\\u{1b}[31mred\\u{0}\\u{9}b\\u{85}c\\u{2028}d\u{fffd}"
        );
        assert!(!shown.chars().any(is_control));
    }

    fn receiver(authorization: Option<&str>) -> Receiver {
        Receiver {
            path: "/".into(),
            authorization: authorization.map(|v| Sha256::digest(v.as_bytes()).into()),
            max_body_bytes: 10,
            keys: None,
            summary: false,
            out: None,
            fail: None,
            deliveries: AtomicU64::new(0),
            first_delivery: Mutex::new(std::collections::HashMap::new()),
            output: Mutex::new(()),
        }
    }

    #[test]
    fn authorization_must_match_the_whole_value() {
        let open = receiver(None);
        assert!(open.authorized(None));
        let guarded = receiver(Some("Splunk abc"));
        assert!(guarded.authorized(Some(&HeaderValue::from_static("Splunk abc"))));
        for wrong in ["Splunk ab", "Splunk abcd", "splunk abc", "", "Splunk abc "] {
            assert!(
                !guarded.authorized(Some(&HeaderValue::from_static(wrong))),
                "{wrong:?}"
            );
        }
        assert!(!guarded.authorized(None));
    }
}

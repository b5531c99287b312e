//! `TestReceiver`: a webhook receiver on loopback for the delivery tests, over plain HTTP or
//! HTTPS with a generated certificate, built on the same server, TLS and body-reading pieces as
//! `auditrelay listen` (`auditrelay::listen::{server, tls, body}`).
//!
//! It records every request (arrival time, headers, sizes, decoded lines) and answers from a
//! script: a queue of behaviours for the next requests, then a default that a test can switch
//! (fail for a while, then recover). A behaviour can also hang (the sender must time out) or
//! reset the connection (the sender sees a connection error). Tests wait for what they expect
//! with deadlines (`wait_for_lines`, `wait_for_requests`), never with blind sleeps.
//!
//! Two behaviours play the seeds' SIEM: `Discard` answers 202 but loses the batch (the stretch
//! a replay must recover), and `Hold` keeps requests waiting until the test calls `release`
//! (a replay job that stays running exactly as long as the test needs, without timing).

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use auditrelay::body::{self, DEFAULT_MAX_BODY_BYTES};
use auditrelay::clock;
use auditrelay::listen::server::{self, Connection};
use auditrelay::listen::tls::SelfSigned;
use auditrelay_core::Timestamp;
use axum::Router;
use axum::body::Body;
use axum::extract::{Extension, State};
use axum::http::header::RETRY_AFTER;
use axum::http::{HeaderMap, HeaderValue, Method, StatusCode, Uri};
use axum::response::{IntoResponse as _, Response};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// The path in [`TestReceiver::url`].
pub const PATH: &str = "/hook";

/// How the receiver answers one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Behaviour {
    /// Answer with this status (202 accepts the batch).
    Status(u16),
    /// Answer with this status and a `Retry-After` header of this value.
    StatusWithRetryAfter(u16, String),
    /// Read the request, then never answer: the sender must time out.
    Hang,
    /// Read the request, then reset the connection (TCP RST) without answering.
    Reset,
    /// Answer 202 but lose the batch, as a SIEM that drops a stretch it acknowledged: the
    /// sender sees success, yet the request does not count as [accepted](ReceivedRequest::accepted)
    /// and its lines are not in [`TestReceiver::lines`].
    Discard,
    /// Read the request and keep it waiting until [`TestReceiver::release`]; then answer 202,
    /// and the recorded answer becomes `Status(202)`.
    Hold,
    /// Answer 202 after this long: a slow SIEM.
    Delay(Duration),
}

impl Behaviour {
    pub const ACCEPT: Self = Self::Status(202);

    /// Panics, in the test that scripts it, on a behaviour the receiver could not carry out.
    fn check(&self) {
        if let Self::Status(code) | Self::StatusWithRetryAfter(code, _) = self {
            assert!((100..=599).contains(code), "{code} is not an HTTP status");
        }
        if let Self::StatusWithRetryAfter(_, after) = self {
            assert!(
                HeaderValue::from_str(after).is_ok(),
                "{after:?} cannot be a header value"
            );
        }
    }
}

/// One request as the receiver saw it.
#[derive(Debug, Clone)]
pub struct ReceivedRequest {
    /// When its head arrived (monotonic, for measuring a sender's backoff).
    pub at: Instant,
    /// The same moment on the wall clock.
    pub wall: Timestamp,
    pub method: Method,
    /// The path and query.
    pub path: String,
    pub headers: HeaderMap,
    /// The body's size on the wire (compressed when it was gzip); 0 when it was refused.
    pub compressed_len: usize,
    /// The decoded body's log lines (trimmed, blank lines dropped); empty when it did not decode.
    pub lines: Vec<String>,
    /// Why the body could not be read or decoded, if it could not.
    pub body_error: Option<String>,
    /// How it was answered. A body that fails to decode turns a scripted 2xx into the
    /// receiver's error status (400, 413 or 415), as a real receiver would answer.
    pub answer: Behaviour,
}

impl ReceivedRequest {
    /// A header's value as text (the first, when repeated).
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub fn authorization(&self) -> Option<&str> {
        self.header("authorization")
    }

    pub fn content_type(&self) -> Option<&str> {
        self.header("content-type")
    }

    pub fn content_encoding(&self) -> Option<&str> {
        self.header("content-encoding")
    }

    pub fn user_agent(&self) -> Option<&str> {
        self.header("user-agent")
    }

    pub fn idempotency_key(&self) -> Option<&str> {
        self.header("idempotency-key")
    }

    /// Whether it was answered with a 2xx and kept, that is, delivered (not `Discard`ed).
    pub fn accepted(&self) -> bool {
        matches!(self.answer, Behaviour::Status(s) | Behaviour::StatusWithRetryAfter(s, _) if (200..300).contains(&s))
            || matches!(self.answer, Behaviour::Delay(_))
    }
}

struct Shared {
    script: Mutex<VecDeque<Behaviour>>,
    default: Mutex<Behaviour>,
    requests: Mutex<Vec<ReceivedRequest>>,
    /// Bumped after each recorded request (and each change to one), so waiters wake instead
    /// of polling.
    recorded: watch::Sender<usize>,
    /// Bumped by `release`: a `Hold`ing request answers once it changes.
    released: watch::Sender<u64>,
    max_body_bytes: usize,
}

pub struct TestReceiver {
    addr: SocketAddr,
    tls: Option<SelfSigned>,
    shared: Arc<Shared>,
    server: JoinHandle<()>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|e| e.into_inner())
}

impl TestReceiver {
    /// A plain-HTTP receiver that accepts everything (202) until scripted otherwise.
    pub async fn http() -> Self {
        Self::start(false, DEFAULT_MAX_BODY_BYTES).await
    }

    /// An HTTPS receiver with a freshly generated self-signed certificate.
    pub async fn https() -> Self {
        Self::start(true, DEFAULT_MAX_BODY_BYTES).await
    }

    /// A receiver with a chosen limit on decoded bodies (larger ones are answered 413).
    pub async fn start(tls: bool, max_body_bytes: usize) -> Self {
        let tls = tls.then(|| SelfSigned::generate().expect("a self-signed certificate"));
        let listener = TcpListener::bind("127.0.0.1:0")
            .await
            .expect("bind a loopback port");
        let addr = listener.local_addr().unwrap();
        let shared = Arc::new(Shared {
            script: Mutex::new(VecDeque::new()),
            default: Mutex::new(Behaviour::ACCEPT),
            requests: Mutex::new(Vec::new()),
            recorded: watch::Sender::new(0),
            released: watch::Sender::new(0),
            max_body_bytes,
        });
        let app = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        // No shutdown signal: dropping the receiver aborts the server with its connections.
        let server = tokio::spawn(server::serve(
            listener,
            tls.as_ref().map(SelfSigned::acceptor),
            app,
            std::future::pending(),
            Duration::ZERO,
        ));
        Self {
            addr,
            tls,
            shared,
            server,
        }
    }

    /// `http://127.0.0.1:PORT/hook` or `https://…`.
    pub fn url(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        format!("{scheme}://{}{PATH}", self.addr)
    }

    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The certificate (PEM) of an HTTPS receiver, for a client that should trust it.
    pub fn cert_pem(&self) -> Option<&str> {
        self.tls.as_ref().map(SelfSigned::cert_pem)
    }

    /// Queues behaviours for the next requests, after any already queued.
    pub fn script(&self, behaviours: impl IntoIterator<Item = Behaviour>) {
        let behaviours: Vec<Behaviour> = behaviours.into_iter().collect();
        behaviours.iter().for_each(Behaviour::check);
        lock(&self.shared.script).extend(behaviours);
    }

    /// The behaviour for requests once the script is used up.
    pub fn set_default(&self, behaviour: Behaviour) {
        behaviour.check();
        *lock(&self.shared.default) = behaviour;
    }

    /// Lets every `Hold`ing request answer 202, and accepts what comes next (the default
    /// becomes [`Behaviour::ACCEPT`]; queued behaviours still come first).
    pub fn release(&self) {
        self.release_then(Behaviour::ACCEPT);
    }

    /// Lets every `Hold`ing request answer 202; `next` becomes the default at the same time,
    /// so that no request comes in between under the old one.
    pub fn release_then(&self, next: Behaviour) {
        next.check();
        *lock(&self.shared.default) = next;
        self.shared.released.send_modify(|n| *n += 1);
    }

    /// Every request so far, in arrival order.
    pub fn requests(&self) -> Vec<ReceivedRequest> {
        lock(&self.shared.requests).clone()
    }

    /// The lines of every accepted (2xx) request so far, in arrival order.
    pub fn lines(&self) -> Vec<String> {
        accepted_lines(&lock(&self.shared.requests))
    }

    /// Waits until `n` requests have arrived; returns them all. Panics after `timeout`.
    pub async fn wait_for_requests(&self, n: usize, timeout: Duration) -> Vec<ReceivedRequest> {
        self.wait_until(timeout, &format!("{n} requests"), |requests| {
            (requests.len() >= n).then(|| requests.to_vec())
        })
        .await
    }

    /// Waits until accepted requests carry at least `n` lines; returns them all. Panics after
    /// `timeout`.
    pub async fn wait_for_lines(&self, n: usize, timeout: Duration) -> Vec<String> {
        self.wait_until(timeout, &format!("{n} accepted lines"), |requests| {
            let lines = accepted_lines(requests);
            (lines.len() >= n).then_some(lines)
        })
        .await
    }

    /// Waits until `check` sees what it wants in the recorded requests. Panics after `timeout`.
    pub async fn wait_until<T>(
        &self,
        timeout: Duration,
        what: &str,
        mut check: impl FnMut(&[ReceivedRequest]) -> Option<T>,
    ) -> T {
        // Subscribing before the first check means no request can slip in between unseen.
        let mut recorded = self.shared.recorded.subscribe();
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            if let Some(found) = check(&lock(&self.shared.requests)) {
                return found;
            }
            if !matches!(
                tokio::time::timeout_at(deadline, recorded.changed()).await,
                Ok(Ok(()))
            ) {
                let seen: Vec<String> = self
                    .requests()
                    .iter()
                    .map(|r| {
                        format!(
                            "{} {} → {:?} ({} lines)",
                            r.method,
                            r.path,
                            r.answer,
                            r.lines.len()
                        )
                    })
                    .collect();
                panic!("{what} not received within {timeout:?}; received: {seen:#?}");
            }
        }
    }
}

impl Drop for TestReceiver {
    fn drop(&mut self) {
        self.server.abort();
    }
}

fn accepted_lines(requests: &[ReceivedRequest]) -> Vec<String> {
    requests
        .iter()
        .filter(|r| r.accepted())
        .flat_map(|r| r.lines.iter().cloned())
        .collect()
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    Extension(connection): Extension<Connection>,
    method: Method,
    uri: Uri,
    headers: HeaderMap,
    body: Body,
) -> Response {
    let at = Instant::now();
    let wall = clock::now();
    // Taken on arrival: a `release` from now on lets this request go if it is held.
    let mut released = shared.released.subscribe();
    let read = body::read(&headers, body, shared.max_body_bytes).await;
    let scripted = lock(&shared.script).pop_front();
    let mut answer = scripted.unwrap_or_else(|| lock(&shared.default).clone());
    let (compressed_len, lines, body_error) = match read {
        Ok(received) => (
            received.compressed_len,
            body::lines(&received.decoded)
                .map(|line| String::from_utf8_lossy(line).into_owned())
                .collect(),
            None,
        ),
        Err(e) => {
            if matches!(answer, Behaviour::Status(s) if (200..300).contains(&s))
                || matches!(
                    answer,
                    Behaviour::Discard | Behaviour::Hold | Behaviour::Delay(_)
                )
            {
                answer = Behaviour::Status(e.status().as_u16());
            }
            (0, Vec::new(), Some(e.to_string()))
        }
    };
    let index = {
        let mut requests = lock(&shared.requests);
        requests.push(ReceivedRequest {
            at,
            wall,
            method,
            path: uri
                .path_and_query()
                .map_or_else(|| uri.path().to_owned(), |p| p.as_str().to_owned()),
            headers,
            compressed_len,
            lines,
            body_error: body_error.clone(),
            answer: answer.clone(),
        });
        requests.len() - 1
    };
    shared.recorded.send_modify(|n| *n += 1);
    // Scripted behaviours were checked when they were scripted.
    let status = |code: u16| StatusCode::from_u16(code).expect("checked");
    match answer {
        Behaviour::Status(code) => (status(code), body_error.unwrap_or_default()).into_response(),
        Behaviour::StatusWithRetryAfter(code, after) => {
            let mut response = status(code).into_response();
            response
                .headers_mut()
                .insert(RETRY_AFTER, HeaderValue::from_str(&after).expect("checked"));
            response
        }
        Behaviour::Hang => std::future::pending().await,
        Behaviour::Reset => {
            connection.reset();
            std::future::pending().await
        }
        Behaviour::Discard => StatusCode::ACCEPTED.into_response(),
        Behaviour::Delay(delay) => {
            tokio::time::sleep(delay).await;
            StatusCode::ACCEPTED.into_response()
        }
        Behaviour::Hold => {
            // The sender gone (it timed out) drops this future: nothing to record then.
            let _ = released.changed().await;
            lock(&shared.requests)[index].answer = Behaviour::ACCEPT;
            shared.recorded.send_modify(|n| *n += 1);
            StatusCode::ACCEPTED.into_response()
        }
    }
}

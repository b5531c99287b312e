//! The HTTP server under the API and the UI: HTTP/1.1 and HTTP/2, in clear (h2c by prior
//! knowledge) or over TLS (`serve/tls.rs`: ALPN, certificates reloaded when their files change),
//! in an accept loop that stays answerable when clients misbehave or descriptors run out.
//!
//! - **Slow request heads** (a client that sends `GET / HTTP/1.1\r\n` and nothing more) are cut
//!   off after `server.header_read_timeout` (hyper's own timer).
//! - **Idle kept-alive connections** are closed after `server.idle_timeout` without a request.
//! - **At most `server.max_connections`** are served at once, and never more than the process's
//!   descriptor limit leaves room for (less [`RESERVED_DESCRIPTORS`] for the store's files and
//!   the webhooks' connections). At the cap, a new connection is taken in by closing the one that
//!   has been idle longest (no request in progress: waiting for a head, or kept alive between
//!   requests), so a flood of idle connections cannot lock out `/healthz` or ingest. Only when
//!   every connection is busy does accepting wait.
//! - **Accept errors** (out of descriptors) free an idle connection and back off, doubling from
//!   10 ms to 1 s, with one log line per episode instead of one per failed accept.
//!
//! Every request carries `ConnectInfo<SocketAddr>`, as `axum::serve` would give it; requests
//! hyper cannot parse are answered with a problem body too (`serve/parse_errors.rs`).

mod parse_errors;
pub mod tls;

use std::collections::HashMap;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use axum::Router;
use axum::extract::ConnectInfo;
use hyper::body::Incoming;
use hyper_util::rt::{TokioExecutor, TokioIo, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

use crate::config::ServerConfig;

/// A request extension: the request reached this server over TLS (the UI's cookie is then
/// `Secure` without a proxy saying so).
#[derive(Debug, Clone, Copy)]
pub struct OverTls;

/// Descriptors kept for everything but client connections: the store's files (three per
/// SQLite connection), the signing keys, the webhooks' outgoing connections, logs.
pub const RESERVED_DESCRIPTORS: usize = 128;

/// What bounds the server puts on its clients.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub header_read_timeout: Duration,
    pub idle_timeout: Duration,
    pub max_connections: usize,
}

impl Limits {
    /// The bounds `server.*` sets.
    pub fn of(server: &ServerConfig) -> Self {
        Self {
            header_read_timeout: server.header_read_timeout,
            idle_timeout: server.idle_timeout,
            max_connections: server.max_connections,
        }
    }

    /// The cap actually applied: the configured one, or what the descriptor limit leaves room
    /// for if that is less (at least 16).
    pub fn effective_max_connections(&self) -> usize {
        match descriptor_limit() {
            Some(limit) => self
                .max_connections
                .min(limit.saturating_sub(RESERVED_DESCRIPTORS).max(16)),
            None => self.max_connections,
        }
    }
}

/// The process's soft limit on open files, from `/proc/self/limits` (Linux); `None` elsewhere
/// or when unlimited.
fn descriptor_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

/// Serves `app` on `listener` (through TLS when `tls` is given) until `stop` turns true, then
/// lets each connection finish its current request (hyper's graceful shutdown) and returns when
/// all have ended. The caller bounds that wait by dropping this future, which cuts off the rest.
pub async fn serve(
    listener: TcpListener,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    mut stop: watch::Receiver<bool>,
) {
    let cap = limits.effective_max_connections();
    tracing::debug!(max_connections = cap, "accepting connections");
    let registry = Arc::new(Registry::default());
    let mut connections = JoinSet::new();
    let mut backoff = Backoff::default();
    // Each connection watches its own copy, to shut down gracefully.
    let stopping = stop.clone();
    loop {
        // At the cap: make room by closing the longest-idle connection, or wait for one to end.
        while connections.len() >= cap {
            if registry.close_longest_idle() {
                // Its task ends at once; reap it so the count is right.
                let _ = connections.join_next().await;
                continue;
            }
            tokio::select! {
                _ = stop.wait_for(|stop| *stop) => break,
                _ = connections.join_next() => {}
                () = registry.became_idle.notified() => {}
            }
        }
        let pause = tokio::select! {
            _ = stop.wait_for(|stop| *stop) => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => None,
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    backoff.succeeded();
                    let entry = registry.add();
                    connections.spawn(connection(stream, peer, app.clone(), limits, tls.clone(), entry, stopping.clone()));
                    None
                }
                Err(e) => {
                    // Out of descriptors, most likely: an idle connection gives one back.
                    registry.close_longest_idle();
                    Some(backoff.failed(&e))
                }
            },
        };
        if let Some(pause) = pause {
            tokio::time::sleep(pause).await;
        }
    }
    drop(listener);
    // Each connection saw `stop` and shuts down gracefully; the caller bounds how long this
    // may take by dropping this future.
    while connections.join_next().await.is_some() {}
}

/// How long an idle connection asked to close may take to do so.
const DRAIN_GRACE: Duration = Duration::from_secs(10);
/// HTTP/2 keep-alive: a PING this often, and the connection closed when one goes unanswered.
const H2_PING_EVERY: Duration = Duration::from_secs(30);
const H2_PING_TIMEOUT: Duration = Duration::from_secs(10);

/// Resolves at `deadline`, or never without one.
async fn sleep_until_some(deadline: Option<tokio::time::Instant>) {
    match deadline {
        Some(deadline) => tokio::time::sleep_until(deadline).await,
        None => std::future::pending().await,
    }
}

/// Doubling waits after failed accepts, and one log line per episode.
#[derive(Default)]
struct Backoff {
    failures: u32,
}

impl Backoff {
    fn failed(&mut self, e: &std::io::Error) -> Duration {
        if self.failures == 0 {
            tracing::warn!(error = %e, "could not accept connections; backing off until it works again");
        }
        self.failures += 1;
        Duration::from_millis(10 << self.failures.min(7)).min(Duration::from_secs(1))
    }

    fn succeeded(&mut self) {
        if self.failures > 0 {
            tracing::info!(
                failed_accepts = self.failures,
                "accepting connections again"
            );
            self.failures = 0;
        }
    }
}

/// The open connections, each with how many requests it is serving and since when it is idle.
#[derive(Default)]
struct Registry {
    next_id: AtomicU64,
    open: Mutex<HashMap<u64, Arc<Entry>>>,
    /// Notified whenever a connection becomes idle (a candidate to make room).
    became_idle: Notify,
}

struct Entry {
    id: u64,
    registry: std::sync::Weak<Registry>,
    in_request: AtomicUsize,
    /// When the last request ended (or the connection opened): milliseconds since `epoch`.
    idle_since: AtomicU64,
    epoch: Instant,
    /// Asks the connection to close (to make room for a new one).
    close: Notify,
    /// Notified when its last request in progress ends.
    idle: Notify,
}

impl Registry {
    fn add(self: &Arc<Self>) -> Arc<Entry> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let entry = Arc::new(Entry {
            id,
            registry: Arc::downgrade(self),
            in_request: AtomicUsize::new(0),
            idle_since: AtomicU64::new(0),
            epoch: Instant::now(),
            close: Notify::new(),
            idle: Notify::new(),
        });
        self.lock().insert(id, entry.clone());
        entry
    }

    /// Asks the connection idle longest to close; `false` when none is idle.
    fn close_longest_idle(&self) -> bool {
        let open = self.lock();
        let longest = open
            .values()
            .filter(|e| e.in_request.load(Ordering::Acquire) == 0)
            .min_by_key(|e| e.idle_at());
        match longest {
            Some(entry) => {
                entry.close.notify_one();
                true
            }
            None => false,
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HashMap<u64, Arc<Entry>>> {
        self.open
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Entry {
    /// When the connection became idle, comparable across connections.
    fn idle_at(&self) -> Instant {
        self.epoch + Duration::from_millis(self.idle_since.load(Ordering::Acquire))
    }

    fn request_started(&self) {
        self.in_request.fetch_add(1, Ordering::AcqRel);
    }

    fn request_ended(&self) {
        let millis = self.epoch.elapsed().as_millis() as u64;
        self.idle_since.store(millis, Ordering::Release);
        if self.in_request.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.idle.notify_one();
            if let Some(registry) = self.registry.upgrade() {
                registry.became_idle.notify_one();
            }
        }
    }
}

/// Counts a request in progress for as long as its future lives.
struct InRequest(Arc<Entry>);

impl InRequest {
    fn new(entry: Arc<Entry>) -> Self {
        entry.request_started();
        Self(entry)
    }
}

impl Drop for InRequest {
    fn drop(&mut self) {
        self.0.request_ended();
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    tls: Option<TlsAcceptor>,
    entry: Arc<Entry>,
    stop: watch::Receiver<bool>,
) {
    // Leaves the registry however the task ends (a panic included), so that a stale entry can
    // never be picked, again and again, as the one to close.
    let _registered = Registered(entry.clone());
    // Answers are small; Nagle's algorithm would hold them back waiting for an ACK.
    let _ = stream.set_nodelay(true);
    match tls {
        None => drive(stream, peer, app, limits, false, &entry, stop).await,
        Some(acceptor) => {
            // The handshake is part of the request head a client owes within the timeout.
            let handshake = acceptor.accept(stream);
            tokio::select! {
                done = tokio::time::timeout(limits.header_read_timeout, handshake) => match done {
                    Ok(Ok(stream)) => drive(stream, peer, app, limits, true, &entry, stop).await,
                    Ok(Err(e)) => tracing::debug!(peer = %peer, error = %e, "TLS handshake failed"),
                    Err(_) => tracing::debug!(peer = %peer, "TLS handshake timed out"),
                },
                () = entry.close.notified() => {}
            }
        }
    }
}

/// A connection's place in the registry, given up on drop.
struct Registered(Arc<Entry>);

impl Drop for Registered {
    fn drop(&mut self) {
        if let Some(registry) = self.0.registry.upgrade() {
            registry.lock().remove(&self.0.id);
        }
    }
}

/// Serves HTTP/1.1 or HTTP/2 (by ALPN over TLS, by the connection preface in clear: h2c) on
/// one connection until it ends, is closed to make room, idles out, or the server stops.
async fn drive<I>(
    io: I,
    peer: SocketAddr,
    app: Router,
    limits: Limits,
    over_tls: bool,
    entry: &Arc<Entry>,
    mut stop: watch::Receiver<bool>,
) where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let counted = entry.clone();
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(ConnectInfo(peer));
        if over_tls {
            request.extensions_mut().insert(OverTls);
        }
        let in_request = InRequest::new(counted.clone());
        let response = app.clone().oneshot(request);
        async move {
            let response = response.await;
            drop(in_request);
            response
        }
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_read_timeout);
    // A peer that vanished without closing is found by its unanswered PINGs.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(Some(H2_PING_EVERY))
        .keep_alive_timeout(H2_PING_TIMEOUT);
    let conn = builder.serve_connection(
        TokioIo::new(parse_errors::ProblemOnParseError::new(io)),
        service,
    );
    tokio::pin!(conn);
    let mut draining = false;
    // When an idle connection is asked to close: an HTTP/2 close waits for the peer's answer to
    // a PING, which a vanished peer never sends.
    let mut drain_deadline = None;
    loop {
        let idle_deadline = entry.idle_at() + limits.idle_timeout;
        let busy = entry.in_request.load(Ordering::Acquire) > 0;
        tokio::select! {
            () = sleep_until_some(drain_deadline) => return,
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(peer = %peer, error = %e, "connection ended with an error");
                }
                return;
            }
            () = entry.close.notified() => {
                tracing::debug!(peer = %peer, "idle connection closed to make room for a new one");
                return;
            }
            () = tokio::time::sleep_until(idle_deadline.into()), if !busy && !draining => {
                // Still idle (a request may have come and gone meanwhile): close it.
                if entry.in_request.load(Ordering::Acquire) == 0
                    && entry.idle_at() + limits.idle_timeout <= Instant::now()
                {
                    draining = true;
                    drain_deadline = Some(tokio::time::Instant::now() + DRAIN_GRACE);
                    conn.as_mut().graceful_shutdown();
                }
            }
            // The idle wait starts again once the requests in progress end.
            () = entry.idle.notified(), if busy => {}
            _ = stop.wait_for(|stop| *stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

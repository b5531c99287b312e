//! The receiving end of the `deliver`, `latency` and `replay` scenarios: a webhook receiver
//! inside the load tool that answers every delivery with 202 and notes, for each event the tool
//! sent, how many times it arrived and when it first did.
//!
//! It reads requests the way `auditrelay listen` does (the same server, the same bounded gzip
//! reading and line splitting), but looks at no more of a line than its trace id: the tool
//! stamps event `i` of request `r` with `r{r}-{i}`, so finding `trace_id` and reading two
//! numbers places a line, in any of the three formats, for a small fraction of what signing it
//! cost. Lines with any other trace id are the server's own audit events, counted apart. For a
//! destination kind other than `webhook`, the lines are first taken out of the kind's framing
//! ([`Kind::lines`]), and each request is answered as that kind's receiver answers.

use std::net::{Ipv4Addr, SocketAddr};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use auditrelay::body;
use auditrelay::listen::server;
use axum::Router;
use axum::body::Body;
use axum::extract::State;
use axum::http::{HeaderMap, StatusCode};
use tokio::net::TcpListener;
use tokio::sync::{oneshot, watch};
use tokio::task::JoinHandle;

use crate::ingest::request_len;
use auditrelay::listen::tls::SelfSigned;

use crate::kind::Kind;

/// The largest decoded batch accepted: the largest `delivery.batch_max_bytes` a server allows,
/// so that no configuration under test is refused here.
const MAX_BODY_BYTES: usize = 64 << 20;

/// A running receiver. Dropping it stops the server.
pub struct Receiver {
    /// Where deliveries go: `http://127.0.0.1:<port>/`.
    pub url: String,
    shared: Arc<Shared>,
    stop: Option<oneshot::Sender<()>>,
    task: JoinHandle<()>,
}

struct Shared {
    /// Receipt times are kept as offsets from this moment, the start of the scenario.
    epoch: Instant,
    kind: Kind,
    expected: Expected,
    ledger: Mutex<Ledger>,
    /// Expected events received at least once so far.
    unique: watch::Sender<u64>,
}

/// The events the tool sends: `events` in requests of `batch`.
#[derive(Debug, Clone, Copy)]
pub struct Expected {
    pub events: u64,
    pub batch: u64,
}

impl Expected {
    /// The index of event `index` of request `request`, if the tool sent such an event.
    fn slot(&self, request: u64, index: u64) -> Option<usize> {
        let sent = request < self.events.div_ceil(self.batch)
            && index < request_len(self.events, self.batch, request);
        sent.then(|| (request * self.batch + index) as usize)
    }
}

struct Ledger {
    /// How many times each expected event arrived (saturating), by slot.
    receipts: Vec<u8>,
    /// When each expected event first arrived, in microseconds after the epoch; `u32::MAX`
    /// while it has not.
    first: Vec<u32>,
    tally: Tally,
}

/// What has arrived so far.
#[derive(Debug, Clone, Default)]
pub struct Tally {
    /// Expected events received at least once.
    pub unique: u64,
    /// Receipts of an expected event beyond its first.
    pub duplicates: u64,
    /// Lines with another trace id: the server's own audit events.
    pub other: u64,
    /// Lines with a tool-made trace id the tool never sent (should stay zero).
    pub strays: u64,
    /// Deliveries (HTTP requests) and their sizes.
    pub deliveries: u64,
    pub compressed_bytes: u64,
    pub decoded_bytes: u64,
    /// Time spent in the handler, reading and inflating bodies included: an upper bound on the
    /// receiver's share of this tool's CPU.
    pub handler: Duration,
    /// When the last expected event arrived for the first time, after the epoch.
    pub last_new: Option<Duration>,
}

impl Receiver {
    /// Starts a receiver of `kind` on a free loopback port, expecting `expected`.
    pub async fn start(epoch: Instant, expected: Expected, kind: Kind) -> anyhow::Result<Self> {
        let listener = TcpListener::bind(SocketAddr::from((Ipv4Addr::LOCALHOST, 0))).await?;
        let url = match kind {
            Kind::Syslog => format!("tls://{}", listener.local_addr()?),
            _ => format!("http://{}/", listener.local_addr()?),
        };
        let slots = expected.events as usize;
        let shared = Arc::new(Shared {
            epoch,
            kind,
            expected,
            ledger: Mutex::new(Ledger {
                receipts: vec![0; slots],
                first: vec![u32::MAX; slots],
                tally: Tally::default(),
            }),
            unique: watch::Sender::new(0),
        });
        let (stop, stopped) = oneshot::channel::<()>();
        if kind == Kind::Syslog {
            let acceptor = SelfSigned::generate()?.acceptor();
            let task = tokio::spawn(syslog::serve(listener, acceptor, Arc::clone(&shared)));
            return Ok(Self {
                url,
                shared,
                stop: Some(stop),
                task,
            });
        }
        let router = Router::new()
            .fallback(receive)
            .with_state(Arc::clone(&shared));
        let task = tokio::spawn(server::serve(
            listener,
            None,
            router,
            async move {
                let _ = stopped.await;
            },
            Duration::from_secs(1),
        ));
        Ok(Self {
            url,
            shared,
            stop: Some(stop),
            task,
        })
    }

    /// Expected events received at least once so far.
    pub fn unique(&self) -> u64 {
        *self.shared.unique.borrow()
    }

    /// Reads [`Self::unique`] from anywhere, for as long as it is kept.
    pub fn counter(&self) -> impl Fn() -> u64 + Send + 'static {
        let unique = self.shared.unique.subscribe();
        move || *unique.borrow()
    }

    /// Waits until every expected event has arrived, or until none has arrived for `stall`;
    /// returns whether all did.
    pub async fn wait_for_all(&self, stall: Duration) -> bool {
        let mut unique = self.shared.unique.subscribe();
        loop {
            if *unique.borrow_and_update() >= self.shared.expected.events {
                return true;
            }
            match tokio::time::timeout(stall, unique.changed()).await {
                Ok(Ok(())) => {}
                Ok(Err(_)) | Err(_) => return false,
            }
        }
    }

    pub fn tally(&self) -> Tally {
        self.shared.ledger().tally.clone()
    }

    /// When event `index` of request `request` first arrived, after the epoch.
    pub fn first_receipts(&self) -> impl Fn(u64, u64) -> Option<Duration> {
        let ledger = self.shared.ledger();
        let expected = self.shared.expected;
        let first = ledger.first.clone();
        move |request, index| {
            let at = first[expected.slot(request, index)?];
            (at != u32::MAX).then(|| Duration::from_micros(at.into()))
        }
    }
}

impl Drop for Receiver {
    fn drop(&mut self) {
        if let Some(stop) = self.stop.take() {
            let _ = stop.send(());
        }
        self.task.abort();
    }
}

impl Shared {
    fn ledger(&self) -> std::sync::MutexGuard<'_, Ledger> {
        self.ledger.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Counts one decoded batch that arrived `at` after the epoch, in a handler that started
    /// at `started`.
    fn take(
        &self,
        lines: &[std::borrow::Cow<'_, [u8]>],
        received: &body::Received,
        at: Duration,
        started: Instant,
    ) {
        let traces: Vec<Option<(u64, u64)>> = lines.iter().map(|l| trace(l)).collect();
        let micros = u32::try_from(at.as_micros()).unwrap_or(u32::MAX - 1);
        let mut ledger = self.ledger();
        let ledger = &mut *ledger;
        let tally = &mut ledger.tally;
        tally.deliveries += 1;
        tally.compressed_bytes += received.compressed_len as u64;
        tally.decoded_bytes += received.decoded.len() as u64;
        for trace in traces {
            let Some((request, index)) = trace else {
                tally.other += 1;
                continue;
            };
            let Some(slot) = self.expected.slot(request, index) else {
                tally.strays += 1;
                continue;
            };
            let receipts = &mut ledger.receipts[slot];
            if *receipts == 0 {
                ledger.first[slot] = micros;
                tally.unique += 1;
                tally.last_new = Some(at);
            } else {
                tally.duplicates += 1;
            }
            *receipts = receipts.saturating_add(1);
        }
        tally.handler += started.elapsed();
        self.unique.send_replace(tally.unique);
    }
}

async fn receive(
    State(shared): State<Arc<Shared>>,
    headers: HeaderMap,
    body: Body,
) -> (StatusCode, &'static str) {
    let started = Instant::now();
    let received = match body::read(&headers, body, MAX_BODY_BYTES).await {
        Ok(received) => received,
        Err(e) => {
            eprintln!("\nreceiver: refused a delivery: {e}");
            return (e.status(), "");
        }
    };
    let Some(lines) = shared.kind.lines(&received.decoded) else {
        eprintln!(
            "\nreceiver: refused a delivery: not a {} body",
            shared.kind.as_str()
        );
        return (StatusCode::BAD_REQUEST, "");
    };
    shared.take(&lines, &received, shared.epoch.elapsed(), started);
    shared.kind.answer()
}

/// The syslog side: a TLS listener taking octet-counted messages, each connection's stream
/// counted as it comes, message by whole message.
mod syslog {
    use std::sync::Arc;
    use std::time::Instant;

    use auditrelay::body::{Coding, Received};
    use tokio::io::AsyncReadExt;
    use tokio::net::TcpListener;
    use tokio_rustls::TlsAcceptor;

    use super::Shared;

    pub async fn serve(listener: TcpListener, acceptor: TlsAcceptor, shared: Arc<Shared>) {
        while let Ok((tcp, _)) = listener.accept().await {
            let (acceptor, shared) = (acceptor.clone(), Arc::clone(&shared));
            tokio::spawn(async move {
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut pending = Vec::new();
                let mut chunk = vec![0u8; 256 << 10];
                while let Ok(n) = tls.read(&mut chunk).await {
                    if n == 0 {
                        break;
                    }
                    let started = Instant::now();
                    pending.extend_from_slice(&chunk[..n]);
                    let whole = complete(&pending);
                    if whole == 0 {
                        if pending.len() > 8 << 20 {
                            eprintln!("\nreceiver: a syslog stream that is not octet-counted");
                            return;
                        }
                        continue;
                    }
                    let decoded: Vec<u8> = pending.drain(..whole).collect();
                    let Some(lines) = shared.kind.lines(&decoded) else {
                        eprintln!("\nreceiver: a syslog stream that is not octet-counted RFC 5424");
                        return;
                    };
                    let received = Received {
                        coding: Coding::Identity,
                        compressed_len: decoded.len(),
                        decoded: decoded.clone(),
                    };
                    shared.take(&lines, &received, shared.epoch.elapsed(), started);
                }
            });
        }
    }

    /// How many bytes at the start of `stream` are whole octet-counted messages.
    fn complete(stream: &[u8]) -> usize {
        let mut at = 0;
        loop {
            let rest = &stream[at..];
            let Some(space) = rest.iter().position(|b| *b == b' ') else {
                return at;
            };
            let Some(len) = std::str::from_utf8(&rest[..space])
                .ok()
                .and_then(|d| d.parse::<usize>().ok())
            else {
                return at;
            };
            if rest.len() < space + 1 + len {
                return at;
            }
            at += space + 1 + len;
        }
    }
}

/// The request and index in a line's trace id when the tool made it (`r{request}-{index}`);
/// `None` for any other trace id, or none. The value follows `trace_id` after `=` in CEF and
/// after `":"` in JSON and CPS; OCSF has it as `metadata.correlation_uid`.
fn trace(line: &[u8]) -> Option<(u64, u64)> {
    let after = |key: &[u8]| {
        let at = line.windows(key.len()).position(|w| w == key)?;
        Some(at + key.len())
    };
    let at = after(b"trace_id").or_else(|| after(b"\"correlation_uid\""))?;
    let rest = &line[at..];
    let value = rest
        .iter()
        .take(4)
        .position(|&b| !matches!(b, b'=' | b'"' | b':'))?;
    let rest = rest[value..].strip_prefix(b"r")?;
    let (request, rest) = number(rest)?;
    let (index, _) = number(rest.strip_prefix(b"-")?)?;
    Some((request, index))
}

/// A decimal number at the start of `bytes`, and what follows it.
fn number(bytes: &[u8]) -> Option<(u64, &[u8])> {
    let len = bytes.iter().take_while(|b| b.is_ascii_digit()).count();
    let digits = std::str::from_utf8(&bytes[..len]).ok()?;
    Some((digits.parse().ok()?, &bytes[len..]))
}

#[cfg(test)]
mod tests {
    use auditrelay_core::format::{Format, sign_event};
    use auditrelay_core::{FormatConfig, SigningKey};

    use super::*;

    /// The lines a server sends, in every format: the tool's trace ids are found, the server's
    /// own (decimal) ones and absent ones are not.
    #[test]
    fn finds_the_tools_trace_ids_in_every_format() {
        let key = SigningKey::from_seed(&[1; 32]);
        let config = FormatConfig::default();
        for format in Format::ALL {
            for (trace_id, expected) in [
                (Some("r12-345"), Some((12, 345))),
                (Some("r0-0"), Some((0, 0))),
                (Some("3959872677347089807"), None),
                (Some("r12"), None),
                (None, None),
            ] {
                let mut event = crate::sample_event();
                event.trace_id = trace_id.map(Into::into);
                let mut line = Vec::new();
                sign_event(format, &event, &config, &key, &mut line);
                let text = String::from_utf8_lossy(&line);
                assert_eq!(trace(&line), expected, "{format:?}: {text}");
            }
        }
    }

    #[test]
    fn slots_cover_exactly_what_was_sent() {
        let expected = Expected {
            events: 250,
            batch: 100,
        };
        assert_eq!(expected.slot(0, 0), Some(0));
        assert_eq!(expected.slot(1, 99), Some(199));
        assert_eq!(expected.slot(2, 49), Some(249));
        assert_eq!(expected.slot(2, 50), None, "the last request is short");
        assert_eq!(expected.slot(0, 100), None);
        assert_eq!(expected.slot(3, 0), None);
    }
}

//! The syslog transport (RFC 5425): one TLS connection per lane to a `tls://host:port`
//! receiver, on which each batch's messages (framed by `kind::Framer`) are written as they are.
//!
//! Syslog has no acknowledgement of its own (DECISIONS.md S18). A batch counts as delivered
//! once it is written and flushed on a connection that is still open; what that cannot prove is
//! that the receiver read it, so the batches written in the last [`CONFIRM_AFTER`] (10 s) stay
//! in hand, unconfirmed. A batch is confirmed when the connection has stayed open that long
//! after it was written: the connection's `TCP_USER_TIMEOUT` is 3 s, so by then the receiver's
//! TCP has acknowledged it (or the connection would have been closed), and a receiver closing
//! (a restart, a crash) has been seen by the task that reads the connection. When the
//! connection is lost, the next attempt connects again and writes the unconfirmed tail first,
//! then its batch: at least once. What this cannot see is a receiver that stops reading for
//! longer than 10 s while its TCP keeps taking bytes, and is then killed: RELP, which
//! acknowledges, would be the fix. A replay job or a resend waits for its tail to be confirmed
//! before it ends ([`SyslogClient::drain`]); a lane's client hands its tail to the next when
//! its certificates change ([`SyslogClient::adopt`]).
//!
//! The guard is the HTTP transport's (DECISIONS.md D10): every address the name resolves to
//! must be public unless `delivery.allow_private_endpoints`; the certificate is checked as for
//! HTTPS unless the destination skips that; a client certificate is shown when the destination
//! has one.

use std::collections::VecDeque;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_core::endpoint::{is_localhost, is_non_public};
use auditrelay_core::retry::{Attempt, TransportError};
use bytes::Bytes;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{ClientConfig, DigitallySignedStruct, SignatureScheme};
use rustls_platform_verifier::BuilderVerifierExt;
use tokio::io::{AsyncReadExt, AsyncWriteExt, WriteHalf};
use tokio::net::TcpStream;
use tokio::sync::Mutex;
use tokio::task::JoinHandle;
use tokio_rustls::TlsConnector;
use tokio_rustls::client::TlsStream;
use url::{Host, Url};

use super::transport::{DeliverySettings, SendOutcome};

/// The connection's `TCP_USER_TIMEOUT`: bytes the receiver's TCP has not acknowledged in this
/// time close the connection.
const USER_TIMEOUT: Duration = Duration::from_secs(3);

/// How long a written batch stays unconfirmed: the user timeout with room to spare (for the
/// reading task to see a close, for bytes still in our send buffer when the batch was written).
pub const CONFIRM_AFTER: Duration = Duration::from_secs(10);

/// The most unconfirmed bytes kept in hand, as the batches came (gzipped); past it, a batch
/// waits for the oldest to be confirmed before it is written. Held inflated, 64 MiB was ten
/// seconds of about 17,000 events a second: delivery could go no faster, whatever the cores.
const MAX_TAIL_BYTES: usize = 64 << 20;

/// How long a new connection must stay open after its handshake before anything is written
/// on it: twice the handshake's time, at least [`SETTLE_MIN`] and at most [`SETTLE_MAX`]. With
/// TLS 1.3 a receiver refuses a client certificate (or its absence) only after the client's
/// side of the handshake is done, a round trip later: written at once, a batch would go to a
/// connection already being closed, and count as delivered.
const SETTLE_MIN: Duration = Duration::from_millis(250);
const SETTLE_MAX: Duration = Duration::from_secs(3);

/// RFC 5425's port.
pub const DEFAULT_PORT: u16 = 6514;

/// One lane's syslog connection and its unconfirmed tail. Cheap to clone; clones share both.
#[derive(Clone)]
pub struct SyslogClient {
    settings: DeliverySettings,
    state: Arc<Mutex<State>>,
    /// [`MAX_TAIL_BYTES`], but in tests.
    max_tail_bytes: usize,
}

#[derive(Default)]
struct State {
    live: Option<Live>,
    /// Batches written and not yet confirmed, oldest first.
    tail: VecDeque<Written>,
    tail_bytes: usize,
    /// The endpoint last written to: its connection is kept while the stream goes there.
    endpoint: String,
}

struct Live {
    writer: WriteHalf<TlsStream<TcpStream>>,
    /// Set by the reading task when the receiver closes or the connection fails: when, and
    /// how (a close, a TLS alert, a reset).
    ended: Arc<std::sync::Mutex<Option<Ended>>>,
    reader: JoinHandle<()>,
}

#[derive(Clone)]
struct Ended {
    /// When, if it was seen at once: a close or a reset is, but a connection the keepalive
    /// found dead had ended unseen up to two minutes before.
    at: Option<Instant>,
    why: String,
}

impl Live {
    fn ended(&self) -> Option<Ended> {
        (self.ended.lock())
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }
}

impl Drop for Live {
    fn drop(&mut self) {
        self.reader.abort();
    }
}

struct Written {
    at: Instant,
    /// The batch as it came: gzipped, as delivery keeps batches, about a fifth of its messages'
    /// size; inflated again when it is written again.
    payload: Payload,
}

/// A batch's messages, gzipped or as they are.
#[derive(Clone)]
pub struct Payload {
    pub body: Bytes,
    pub gzipped: bool,
}

impl Payload {
    /// The messages: the body, inflated if it is gzipped.
    fn messages(&self) -> Result<Bytes, SendOutcome> {
        if !self.gzipped {
            return Ok(self.body.clone());
        }
        let mut plain = Vec::with_capacity(self.body.len() * 4);
        let mut reader = flate2::read::MultiGzDecoder::new(&self.body[..]);
        match std::io::Read::read_to_end(&mut reader, &mut plain) {
            Ok(_) => Ok(Bytes::from(plain)),
            Err(e) => Err(SendOutcome::transport(
                TransportError::Protocol,
                format!("the batch does not inflate: {e}"),
            )),
        }
    }
}

impl State {
    fn is_open(&self) -> bool {
        self.live.as_ref().is_some_and(|l| l.ended().is_none())
    }

    /// Lets go of the batches the connection held open long enough after them: until now
    /// while it is open, until it ended once it has. (Asked only when the next batch comes, a
    /// connection that ended in between still confirms what it held for long enough before.)
    fn confirm(&mut self) {
        let Some(live) = &self.live else {
            return;
        };
        let held_until = match live.ended() {
            None => Instant::now(),
            Some(Ended { at: Some(at), .. }) => at,
            Some(Ended { at: None, .. }) => return,
        };
        for _ in 0..confirmed(&self.tail, held_until) {
            let oldest = self.tail.pop_front().expect("counted among the tail");
            self.tail_bytes -= oldest.payload.body.len();
        }
    }
}

/// How many of `tail`'s oldest batches a connection held open until `held_until` confirms.
fn confirmed(tail: &VecDeque<Written>, held_until: Instant) -> usize {
    tail.iter()
        .take_while(|w| w.at + CONFIRM_AFTER <= held_until)
        .count()
}

impl SyslogClient {
    pub fn new(settings: DeliverySettings) -> Self {
        Self {
            settings,
            state: Arc::new(Mutex::new(State::default())),
            max_tail_bytes: MAX_TAIL_BYTES,
        }
    }

    /// Takes over `old`'s unconfirmed tail (its connection is not taken: this client's
    /// settings differ), so that a change of certificates does not forget what the receiver may
    /// not have read. The tail is written on this client's first connection. Both clients are
    /// their lane's alone and idle between batches, so neither lock can be held.
    pub fn adopt(&self, old: &SyslogClient) {
        if let (Ok(mut old), Ok(mut state)) = (old.state.try_lock(), self.state.try_lock()) {
            // What the old connection held long enough is confirmed, not handed on.
            old.confirm();
            state.tail = std::mem::take(&mut old.tail);
            state.tail_bytes = std::mem::take(&mut old.tail_bytes);
            state.endpoint = std::mem::take(&mut old.endpoint);
        } else {
            tracing::warn!("a syslog tail could not be handed to the new client: it is dropped");
        }
    }

    /// Forgets the connection and the tail: the destination no longer speaks syslog, and a
    /// syslog tail means nothing to its new receiver.
    pub fn forget(&self) {
        if let Ok(mut state) = self.state.try_lock()
            && (state.live.is_some() || !state.tail.is_empty())
        {
            *state = State::default();
        }
    }

    /// Writes one batch's messages to `endpoint`, connecting first if need be and then
    /// writing the unconfirmed tail of the lost connection. The tail goes wherever the stream
    /// now goes: a re-pointed webhook's new receiver gets what the old one may have missed,
    /// rather than nobody.
    pub async fn send(&self, endpoint: &str, payload: Payload) -> SendOutcome {
        let messages = match payload.messages() {
            Ok(messages) => messages,
            Err(outcome) => return outcome,
        };
        let mut state = self.state.lock().await;
        let resent = match self.connected(&mut state, endpoint).await {
            Ok(resent) => resent,
            Err(outcome) => return outcome,
        };
        // Back-pressure: the tail is bounded, and only time on an open connection confirms it.
        while state.tail_bytes > self.max_tail_bytes {
            let oldest = state.tail.front().map_or_else(Instant::now, |w| w.at);
            tokio::time::sleep_until((oldest + CONFIRM_AFTER).into()).await;
            state.confirm();
            if !state.is_open() {
                state.live = None;
                return SendOutcome::transport(
                    TransportError::Connect,
                    "the syslog receiver closed the connection",
                );
            }
        }
        let state = &mut *state;
        // Out of the state while it is written: a write cut short (its attempt cancelled)
        // leaves half a message on the connection, which then must not be used again.
        let Some(mut live) = state.live.take() else {
            unreachable!("connected above");
        };
        if let Err(outcome) = write(&self.settings, &mut live, &messages).await {
            return outcome;
        }
        state.live = Some(live);
        state.tail_bytes += payload.body.len();
        state.tail.push_back(Written {
            at: Instant::now(),
            payload,
        });
        let message = match resent {
            0 => "written (syslog has no acknowledgement)".to_owned(),
            n => format!(
                "written after {n} unconfirmed {} of the lost connection (syslog has no acknowledgement)",
                if n == 1 { "batch" } else { "batches" }
            ),
        };
        SendOutcome {
            attempt: Attempt::Written,
            code: None,
            message,
            body: Bytes::new(),
        }
    }

    /// Waits until every batch written is confirmed, connecting again and writing the tail
    /// when the connection is lost meanwhile: what a replay job or a resend does before it
    /// ends, since nothing would write its tail again after. Gives up after `tries` lost
    /// connections, saying why.
    pub async fn drain(&self, tries: u32) -> Result<(), String> {
        let mut lost = 0;
        loop {
            let mut state = self.state.lock().await;
            let endpoint = state.endpoint.clone();
            state.confirm();
            let Some(oldest) = state.tail.front().map(|w| w.at) else {
                return Ok(());
            };
            if !state.is_open() {
                lost += 1;
                if lost > tries {
                    return Err(format!(
                        "{} batches written to the syslog receiver could not be confirmed: the connection was lost {tries} times",
                        state.tail.len()
                    ));
                }
                match self.connected(&mut state, &endpoint).await {
                    Ok(_) => {}
                    Err(outcome) if lost == tries => return Err(outcome.message),
                    Err(_) => {
                        drop(state);
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
                continue;
            }
            drop(state);
            tokio::time::sleep_until((oldest + CONFIRM_AFTER).into()).await;
        }
    }

    /// An open connection to `endpoint`: the one there is, or a new one with the unconfirmed
    /// tail written on it first; returns how many batches of the tail were written again.
    async fn connected(&self, state: &mut State, endpoint: &str) -> Result<usize, SendOutcome> {
        state.confirm();
        if state.endpoint != endpoint || !state.is_open() {
            state.live = None;
            state.endpoint = endpoint.to_owned();
        }
        if state.live.is_some() {
            return Ok(0);
        }
        let connecting = tokio::time::timeout(
            self.settings.connect_timeout + SETTLE_MAX,
            connect(&self.settings, endpoint),
        );
        let mut live = match connecting.await {
            Ok(Ok(live)) => live,
            Ok(Err((kind, message))) => return Err(SendOutcome::transport(kind, message)),
            Err(_) => {
                return Err(SendOutcome::transport(
                    TransportError::Timeout,
                    "timed out connecting to the syslog receiver",
                ));
            }
        };
        let mut resent = 0;
        for written in state.tail.iter_mut() {
            write(&self.settings, &mut live, &written.payload.messages()?).await?;
            written.at = Instant::now();
            resent += 1;
        }
        state.live = Some(live);
        Ok(resent)
    }
}

/// Writes and flushes `bytes`, within the request timeout.
async fn write(
    settings: &DeliverySettings,
    live: &mut Live,
    bytes: &[u8],
) -> Result<(), SendOutcome> {
    let writing = async {
        live.writer.write_all(bytes).await?;
        live.writer.flush().await
    };
    match tokio::time::timeout(settings.request_timeout, writing).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(e)) => Err(SendOutcome::transport(
            TransportError::Connect,
            format!("the syslog connection failed while writing: {e}"),
        )),
        Err(_) => Err(SendOutcome::transport(
            TransportError::Timeout,
            "timed out writing to the syslog receiver",
        )),
    }
}

type Failure = (TransportError, String);

/// The host and port of a `tls://host[:port]` endpoint, behind the guard's checks that need
/// no resolving.
fn target(settings: &DeliverySettings, endpoint: &str) -> Result<(String, u16), Failure> {
    let refused = |message: &str| (TransportError::Refused, message.to_owned());
    let url =
        Url::parse(endpoint).map_err(|_| refused("refused: the endpoint is not a valid URL"))?;
    if url.scheme() != "tls" {
        return Err(refused("refused: a syslog endpoint is tls://host:port"));
    }
    let private = match url.host() {
        None => return Err(refused("refused: the endpoint is not a valid URL")),
        Some(Host::Ipv4(ip)) => is_non_public(ip.into()),
        Some(Host::Ipv6(ip)) => is_non_public(ip.into()),
        Some(Host::Domain(name)) => is_localhost(name),
    };
    if private && !settings.allow_private_endpoints {
        return Err(refused(PRIVATE));
    }
    let host = match url.host() {
        Some(Host::Ipv6(ip)) => ip.to_string(),
        Some(host) => host.to_string(),
        None => unreachable!("checked above"),
    };
    Ok((host, url.port().unwrap_or(DEFAULT_PORT)))
}

const PRIVATE: &str = "refused: the endpoint resolves to a private address";

/// Connects, checks every address the name resolves to first, and makes the TLS handshake.
async fn connect(settings: &DeliverySettings, endpoint: &str) -> Result<Live, Failure> {
    let (host, port) = target(settings, endpoint)?;
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host((host.as_str(), port))
        .await
        .map_err(|e| {
            (
                TransportError::Connect,
                format!("{host} does not resolve: {e}"),
            )
        })?
        .collect();
    // All or nothing, as for HTTP: one private address among public ones could be the one.
    if !settings.allow_private_endpoints && addrs.iter().any(|a| is_non_public(a.ip())) {
        return Err((TransportError::Refused, PRIVATE.to_owned()));
    }
    // Each address gets its share of the connect timeout, as hyper gives them for HTTP.
    let each = settings.connect_timeout / u32::try_from(addrs.len()).unwrap_or(u32::MAX).max(1);
    let tcp = connect_first(&addrs, each).await.map_err(|why| {
        (
            TransportError::Connect,
            format!("could not connect to {host}:{port}: {why}"),
        )
    })?;
    let socket = socket2::SockRef::from(&tcp);
    // Unacknowledged bytes close the connection after USER_TIMEOUT (see the module comment);
    // keepalives find a receiver that vanished while nothing was being sent.
    let keepalive = socket2::TcpKeepalive::new()
        .with_time(Duration::from_secs(30))
        .with_interval(Duration::from_secs(10));
    let tuned = socket
        .set_tcp_user_timeout(Some(USER_TIMEOUT))
        .and_then(|()| socket.set_tcp_keepalive(&keepalive))
        .and_then(|()| tcp.set_nodelay(true));
    if let Err(e) = tuned {
        return Err((TransportError::Other, format!("socket options: {e}")));
    }
    let config = client_config(settings)?;
    let name = ServerName::try_from(host.clone()).map_err(|_| {
        (
            TransportError::Refused,
            format!("{host} is not a valid TLS name"),
        )
    })?;
    let handshake = Instant::now();
    let tls = TlsConnector::from(Arc::new(config))
        .connect(name, tcp)
        .await
        .map_err(|e| {
            (
                TransportError::Tls,
                format!("TLS handshake with {host} failed: {e}"),
            )
        })?;
    let (mut reader, writer) = tokio::io::split(tls);
    let ended = Arc::new(std::sync::Mutex::new(None));
    let reader = tokio::spawn({
        let ended = Arc::clone(&ended);
        async move {
            // A syslog receiver sends nothing: a read ends only when the connection does.
            let mut buf = [0u8; 512];
            let (why, seen_at_once) = loop {
                match reader.read(&mut buf).await {
                    Ok(0) => break ("the receiver closed the connection".to_owned(), true),
                    Ok(_) => {}
                    Err(e) => {
                        let timed_out = e.kind() == std::io::ErrorKind::TimedOut;
                        break (format!("the connection failed: {e}"), !timed_out);
                    }
                }
            };
            let at = seen_at_once.then(Instant::now);
            *ended
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(Ended { at, why });
        }
    });
    let live = Live {
        writer,
        ended,
        reader,
    };
    tokio::time::sleep((handshake.elapsed() * 2).clamp(SETTLE_MIN, SETTLE_MAX)).await;
    if let Some(Ended { why, .. }) = live.ended() {
        return Err((
            TransportError::Tls,
            format!(
                "{host} ended the connection right after the TLS handshake ({why}); does it require a client certificate?"
            ),
        ));
    }
    Ok(live)
}

/// A TCP connection to the first of `addrs` that takes one within `each`, or why none did.
/// Without a time of its own, an address that drops every packet (a firewalled IPv6, a dead
/// collector among several) would hold the attempt until its whole timeout ran out, and the
/// next address would never be tried.
async fn connect_first(addrs: &[SocketAddr], each: Duration) -> Result<TcpStream, String> {
    let mut last = None;
    for addr in addrs {
        match tokio::time::timeout(each, TcpStream::connect(addr)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => last = Some(e.to_string()),
            Err(_) => last = Some(format!("{addr} did not answer within {each:?}")),
        }
    }
    Err(last.unwrap_or_else(|| "no address".to_owned()))
}

/// The TLS client for the destination: the platform's roots (as for HTTPS), or any
/// certificate when it skips verification; its client certificate when it has one.
fn client_config(settings: &DeliverySettings) -> Result<ClientConfig, Failure> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let tls_error = |e: rustls::Error| (TransportError::Tls, format!("TLS set-up: {e}"));
    let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
        .with_safe_default_protocol_versions()
        .map_err(tls_error)?;
    let builder = if settings.skip_ssl_verification {
        builder
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(AnyCertificate(provider)))
    } else {
        builder.with_platform_verifier().map_err(tls_error)?
    };
    let Some(identity) = &settings.client_identity else {
        return Ok(builder.with_no_client_auth());
    };
    let unreadable = |what: &str| {
        (
            TransportError::Protocol,
            format!("the client certificate's {what} cannot be read"),
        )
    };
    let chain: Vec<CertificateDer<'static>> =
        CertificateDer::pem_slice_iter(identity.certificate_pem.as_bytes())
            .collect::<Result<_, _>>()
            .map_err(|_| unreadable("chain"))?;
    let key = PrivateKeyDer::from_pem_slice(identity.key_pem.as_bytes())
        .map_err(|_| unreadable("private key"))?;
    builder.with_client_auth_cert(chain, key).map_err(|e| {
        (
            TransportError::Protocol,
            format!("the client certificate: {e}"),
        )
    })
}

/// `skip_ssl_verification`: any certificate is taken, but the handshake's signatures are still
/// checked (a peer must hold the key of the certificate it shows).
#[derive(Debug)]
struct AnyCertificate(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyCertificate {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn written(at: Instant) -> Written {
        Written {
            at,
            payload: Payload {
                body: Bytes::from_static(b"8 <110>1 x"),
                gzipped: false,
            },
        }
    }

    /// An address that takes no connection (its listener's queue is full, so the kernel drops
    /// the handshake's first packet) does not keep the next one from being tried.
    #[cfg(target_os = "linux")]
    #[tokio::test]
    async fn an_address_that_does_not_answer_gives_way_to_the_next() {
        let full =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        full.bind(&SocketAddr::from(([127, 0, 0, 1], 0)).into())
            .unwrap();
        full.listen(1).unwrap();
        let silent = full.local_addr().unwrap().as_socket().unwrap();
        // Linux queues one connection more than the backlog; nobody accepts them, and later
        // ones get no answer.
        let second = Duration::from_secs(1);
        let mut queued = Vec::new();
        for _ in 0..2 {
            let connecting = tokio::time::timeout(second, TcpStream::connect(silent));
            queued.push(connecting.await.unwrap().unwrap());
        }
        let open = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let answering = open.local_addr().unwrap();

        let each = Duration::from_millis(300);
        let addrs = [silent, answering];
        let connecting = connect_first(&addrs, each);
        let tcp = tokio::time::timeout(10 * second, connecting)
            .await
            .expect("the silent address held the attempt")
            .unwrap();
        assert_eq!(tcp.peer_addr().unwrap(), answering);
        let why = connect_first(&[silent], each).await.unwrap_err();
        assert!(why.contains("did not answer within"), "{why}");
    }

    /// The tail is bounded by what the batches take in hand, gzipped: a batch whose messages
    /// alone are over the bound does not hold up the next one for the ten seconds a
    /// confirmation takes (which capped syslog delivery at about 17,000 events a second).
    #[tokio::test]
    async fn the_tail_holds_batches_as_they_came_gzipped() {
        let tls = crate::listen::tls::SelfSigned::generate().unwrap();
        let acceptor = tls.acceptor();
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        let received = tokio::spawn(async move {
            let (tcp, _) = listener.accept().await.unwrap();
            let mut stream = acceptor.accept(tcp).await.unwrap();
            let mut all = Vec::new();
            let _ = stream.read_to_end(&mut all).await;
            all.len()
        });
        let mut client = SyslogClient::new(DeliverySettings {
            skip_ssl_verification: true,
            allow_private_endpoints: true,
            ..DeliverySettings::default()
        });
        client.max_tail_bytes = 64 << 10;
        let message = format!("<110>1 {}", "x".repeat(1000));
        let framed = format!("{} {message}", message.len());
        let messages = framed.repeat(client.max_tail_bytes / framed.len() + 1);
        let mut gzip = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        std::io::Write::write_all(&mut gzip, messages.as_bytes()).unwrap();
        let payload = Payload {
            body: Bytes::from(gzip.finish().unwrap()),
            gzipped: true,
        };
        let endpoint = format!("tls://127.0.0.1:{port}");
        let wait = Duration::from_secs(5);
        for _ in 0..2 {
            let sending = client.send(&endpoint, payload.clone());
            let sent = tokio::time::timeout(wait, sending)
                .await
                .expect("the batch waited for the one before to be confirmed");
            assert!(matches!(sent.attempt, Attempt::Written), "{}", sent.message);
        }
        let state = client.state.lock().await;
        assert_eq!(state.tail_bytes, 2 * payload.body.len());
        drop(state);
        client.forget();
        let received = tokio::time::timeout(wait, received).await.unwrap();
        assert_eq!(received.unwrap(), 2 * messages.len());
    }

    /// A connection confirms what it held open for [`CONFIRM_AFTER`] after writing it, also
    /// when it has ended since: a quiet stream's last batches are not written again on the
    /// next connection because that one ended an hour later.
    #[test]
    fn a_connection_confirms_what_it_held_long_enough_before_it_ended() {
        let start = Instant::now();
        let second = Duration::from_secs(1);
        let tail: VecDeque<Written> = [0, 5, 40].map(|s| written(start + s * second)).into();
        // Still open, 12 s in: the first only.
        assert_eq!(confirmed(&tail, start + 12 * second), 1);
        // Ended 20 s in, seen an hour later: the two written 10 s or more before it.
        assert_eq!(confirmed(&tail, start + 20 * second), 2);
        // Ended right after the last was written: not that one.
        assert_eq!(confirmed(&tail, start + 45 * second), 2);
        assert_eq!(confirmed(&tail, start + 50 * second), 3);
    }
}

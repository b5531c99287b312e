//! The HTTP side of one webhook destination: a client built from its settings, and one attempt
//! at a batch, reported as the core's [`Attempt`] plus what the webhook status shows (response
//! code and a readable message).
//!
//! The client refuses what DECISIONS.md D10 forbids at connect time as well as at validation time:
//! a name is resolved by a resolver that fails when any of its addresses is non-public, so a
//! DNS answer that changed since the endpoint was accepted (DNS rebinding) cannot reach an
//! internal service. Redirects are not followed (a 3xx is a failure): following one would
//! send the batch, and its authorization value, somewhere nobody configured. No proxy is
//! used: a proxy would resolve the name itself, out of the guard's reach.

use std::error::Error as StdError;
use std::io;
use std::net::SocketAddr;

use auditrelay_core::endpoint::{is_localhost, is_non_public};
use auditrelay_core::retry::{Attempt, TransportError};
use bytes::Bytes;
use reqwest::dns::{Addrs, Name, Resolve, Resolving};
use reqwest::header::{self, HeaderValue};
use url::{Host, Url};

use super::request::Request;
use super::syslog::{self, SyslogClient};
use super::transport::{DeliverySettings, SendOutcome};
use crate::human;

/// The `User-Agent` of every delivery.
pub const USER_AGENT: &str = concat!("auditrelay/", env!("CARGO_PKG_VERSION"));

/// How much of a response body is read and kept for a kind that judges it (an Elasticsearch
/// `_bulk` answer for 1,000 documents, errors and all, is a few hundred kilobytes); a longer
/// one is cut off, which such kinds judge as an answer that proves nothing.
const MAX_JUDGED_BODY: usize = 8 << 20;

/// How much of any other response body is read, and dropped: a short answer ends cleanly, so
/// its connection can be reused, and a long one is cut off.
const MAX_DRAINED_BODY: usize = 4096;

/// One destination's client: HTTP, pooled, or a syslog connection (`tls://` endpoints).
/// Cheap to clone; clones share connections.
#[derive(Clone)]
pub struct DeliveryClient {
    client: reqwest::Client,
    syslog: SyslogClient,
    settings: DeliverySettings,
}

impl std::fmt::Debug for DeliveryClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DeliveryClient")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

impl DeliveryClient {
    pub fn new(settings: DeliverySettings) -> Result<Self, reqwest::Error> {
        let mut builder = reqwest::Client::builder()
            .user_agent(USER_AGENT)
            .redirect(reqwest::redirect::Policy::none())
            .no_proxy()
            .https_only(!settings.allow_http_endpoints)
            .tls_danger_accept_invalid_certs(settings.skip_ssl_verification)
            .connect_timeout(settings.connect_timeout)
            .timeout(settings.request_timeout);
        if !settings.allow_private_endpoints {
            builder = builder.dns_resolver(PublicOnlyResolver);
        }
        Ok(Self {
            client: builder.build()?,
            syslog: SyslogClient::new(settings.clone()),
            settings,
        })
    }

    pub fn settings(&self) -> &DeliverySettings {
        &self.settings
    }

    /// Sends one built request, behind the guard: an endpoint it forbids, or a header value HTTP
    /// cannot carry, is a failed attempt that never left.
    pub async fn send(&self, request: Request) -> SendOutcome {
        if request.endpoint.starts_with("tls://") {
            return self.send_syslog(request).await;
        }
        // A destination that spoke syslog until now: its connection and tail go.
        self.syslog.forget();
        let url = match self.check_endpoint(&request.endpoint) {
            Ok(url) => url,
            Err(refused) => return SendOutcome::transport(TransportError::Refused, refused),
        };
        let mut built = self
            .client
            .post(url)
            .header(header::CONTENT_TYPE, request.content_type);
        if let Some(encoding) = request.content_encoding {
            built = built.header(header::CONTENT_ENCODING, encoding);
        }
        for h in &request.headers {
            let Ok(mut value) = HeaderValue::from_str(&h.value) else {
                return SendOutcome::transport(
                    TransportError::Protocol,
                    format!("{} cannot be sent as an HTTP header", h.what),
                );
            };
            value.set_sensitive(h.sensitive);
            built = built.header(h.name.clone(), value);
        }
        let keep = request.keep_answer;
        match built.body(request.body).send().await {
            Ok(response) => answered(response, keep).await,
            Err(error) => {
                let (kind, message) = self.describe(&error);
                SendOutcome::transport(kind, message)
            }
        }
    }

    /// Waits for what a syslog connection wrote to be confirmed (see `syslog.rs`); at once for
    /// HTTP, whose answers confirm each batch. A replay job or a resend calls it before it ends.
    pub async fn drain(&self) -> Result<(), String> {
        self.syslog.drain(3).await
    }

    /// Takes over `old`'s unconfirmed syslog tail, as its replacement after a settings change.
    pub fn adopt(&self, old: &DeliveryClient) {
        self.syslog.adopt(&old.syslog);
    }

    /// A syslog batch, written to the destination's connection.
    async fn send_syslog(&self, request: Request) -> SendOutcome {
        let payload = syslog::Payload {
            gzipped: request.content_encoding == Some("gzip"),
            body: request.body,
        };
        self.syslog.send(&request.endpoint, payload).await
    }

    /// The checks the resolver cannot make: reqwest connects to an IP-literal host without
    /// resolving it, and the scheme and credentials are the URL's own business.
    fn check_endpoint(&self, endpoint: &str) -> Result<Url, &'static str> {
        let url = Url::parse(endpoint).map_err(|_| "refused: the endpoint is not a valid URL")?;
        match url.scheme() {
            "https" => {}
            "http" if self.settings.allow_http_endpoints => {}
            "http" => return Err("refused: http:// endpoints are not allowed"),
            _ => return Err("refused: the endpoint's scheme is not https"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            // reqwest would turn them into a Basic Authorization header beside ours.
            return Err("refused: the endpoint URL contains credentials");
        }
        let private = match url.host() {
            None => return Err("refused: the endpoint is not a valid URL"),
            Some(Host::Ipv4(ip)) => is_non_public(ip.into()),
            Some(Host::Ipv6(ip)) => is_non_public(ip.into()),
            Some(Host::Domain(name)) => is_localhost(name),
        };
        if private && !self.settings.allow_private_endpoints {
            return Err(PrivateAddress::MESSAGE);
        }
        Ok(url)
    }

    /// The retry kind of a failed request, and a message made of its cause chain (without the
    /// URL, which reqwest puts first and the status already shows).
    fn describe(&self, error: &reqwest::Error) -> (TransportError, String) {
        if causes(error).any(|e| e.is::<PrivateAddress>()) {
            return (TransportError::Refused, PrivateAddress::MESSAGE.into());
        }
        if let Some(tls) = causes(error).find_map(|e| e.downcast_ref::<rustls::Error>()) {
            // A refused certificate stays refused; other handshake failures may be transient.
            let kind = match tls {
                rustls::Error::InvalidCertificate(_)
                | rustls::Error::NoCertificatesPresented
                | rustls::Error::InvalidCertRevocationList(_) => TransportError::Tls,
                _ => TransportError::Other,
            };
            return (kind, format!("TLS error: {tls}"));
        }
        if error.is_timeout() {
            let message = if error.is_connect() {
                format!(
                    "connect timed out after {}",
                    human::setting(self.settings.connect_timeout)
                )
            } else {
                format!(
                    "timed out after {}",
                    human::setting(self.settings.request_timeout)
                )
            };
            return (TransportError::Timeout, message);
        }
        if error.is_connect() {
            let io_kind =
                causes(error).find_map(|e| e.downcast_ref::<io::Error>().map(io::Error::kind));
            let message = match io_kind {
                Some(io::ErrorKind::ConnectionRefused) => "connection refused".into(),
                Some(io::ErrorKind::ConnectionReset) => "connection reset".into(),
                // The innermost cause says it best ("failed to lookup address information:
                // Name or service not known"); the layers above only say "connect".
                _ => match causes(error).last() {
                    Some(cause) => format!("connection failed: {cause}"),
                    None => "connection failed".into(),
                },
            };
            return (TransportError::Connect, message);
        }
        let kind = if error.is_builder() || error.is_redirect() {
            TransportError::Protocol
        } else {
            TransportError::Other
        };
        (kind, cause_text(error))
    }
}

/// An answer: its status and `Retry-After` for the policy, its reason phrase for the status.
/// The attempt an answer makes; its body kept when `keep`.
async fn answered(mut response: reqwest::Response, keep: bool) -> SendOutcome {
    let status = response.status();
    let retry_after = response
        .headers()
        .get(header::RETRY_AFTER)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let limit = if keep {
        MAX_JUDGED_BODY
    } else {
        MAX_DRAINED_BODY
    };
    let (mut body, mut read) = (Vec::new(), 0);
    while read < limit {
        match response.chunk().await {
            Ok(Some(chunk)) => {
                read += chunk.len();
                if keep {
                    body.extend_from_slice(&chunk);
                }
            }
            // A body that ends badly is judged as far as it came.
            Ok(None) | Err(_) => break,
        }
    }
    body.truncate(limit);
    SendOutcome {
        attempt: Attempt::Response {
            status: status.as_u16(),
            retry_after,
        },
        code: Some(status.as_u16()),
        message: status
            .canonical_reason()
            .map_or_else(|| format!("HTTP {}", status.as_u16()), str::to_owned),
        body: Bytes::from(body),
    }
}

/// The resolver of clients that may reach public addresses only.
struct PublicOnlyResolver;

impl Resolve for PublicOnlyResolver {
    fn resolve(&self, name: Name) -> Resolving {
        let name = name.as_str().to_owned();
        Box::pin(async move {
            if is_localhost(&name) {
                return Err(PrivateAddress.into());
            }
            // Port 0: reqwest puts the URL's port in.
            let addrs: Vec<SocketAddr> =
                tokio::net::lookup_host((name.as_str(), 0)).await?.collect();
            // All or nothing: a name with one private address among public ones could be
            // connected to that one.
            if addrs.iter().any(|addr| is_non_public(addr.ip())) {
                return Err(PrivateAddress.into());
            }
            Ok(Box::new(addrs.into_iter()) as Addrs)
        })
    }
}

/// The resolver's refusal, found again in reqwest's error chain.
#[derive(Debug)]
struct PrivateAddress;

impl PrivateAddress {
    const MESSAGE: &str = "refused: the endpoint resolves to a private address";
}

impl std::fmt::Display for PrivateAddress {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(Self::MESSAGE)
    }
}

impl StdError for PrivateAddress {}

/// The errors below `error`, looking inside `io::Error`s too: their `source()` skips the
/// error they wrap, which is where rustls and resolver errors sit.
fn causes<'a>(error: &'a reqwest::Error) -> impl Iterator<Item = &'a (dyn StdError + 'static)> {
    std::iter::successors(error.source(), |&e| match e.downcast_ref::<io::Error>() {
        Some(io) => io.get_ref().map(|inner| inner as &(dyn StdError + 'static)),
        None => e.source(),
    })
}

/// The cause chain as `a: b: c`, dropping a cause whose text its parent already shows.
fn cause_text(error: &reqwest::Error) -> String {
    let mut parts: Vec<String> = Vec::new();
    for cause in causes(error) {
        let text = cause.to_string();
        if !parts.last().is_some_and(|parent| parent.contains(&text)) {
            parts.push(text);
        }
    }
    if parts.is_empty() {
        "request failed".into()
    } else {
        parts.join(": ")
    }
}

#[cfg(test)]
mod tests {
    use std::str::FromStr as _;
    use std::time::Duration;

    use auditrelay_core::Timestamp;
    use auditrelay_core::retry::{RetryPolicy, Verdict};
    use axum::Router;
    use axum::extract::{Path, State};
    use axum::http::{HeaderMap, StatusCode};
    use axum::response::{IntoResponse, Response};
    use axum::routing::post;
    use std::collections::BTreeMap;

    use bytes::Bytes;
    use tokio::sync::mpsc;

    use super::*;

    /// What the test receiver saw of one request.
    struct Received {
        path: String,
        headers: HeaderMap,
        body: Bytes,
    }

    struct Receiver {
        base: String,
        port: u16,
        requests: mpsc::UnboundedReceiver<Received>,
    }

    /// A receiver on 127.0.0.1 that records every request and answers `/status/{code}` with
    /// that code (503 with `Retry-After: 7`, 302 redirecting to `/status/200`) and `/slow`
    /// after five seconds.
    async fn receiver() -> Receiver {
        async fn status(
            State(tx): State<mpsc::UnboundedSender<Received>>,
            Path(code): Path<u16>,
            headers: HeaderMap,
            body: Bytes,
        ) -> Response {
            let path = format!("/status/{code}");
            tx.send(Received {
                path,
                headers,
                body,
            })
            .unwrap();
            let mut response = StatusCode::from_u16(code).unwrap().into_response();
            let extra = response.headers_mut();
            match code {
                503 => extra.insert(header::RETRY_AFTER, HeaderValue::from_static("7")),
                302 => extra.insert(header::LOCATION, HeaderValue::from_static("/status/200")),
                _ => None,
            };
            response
        }
        async fn slow() -> StatusCode {
            tokio::time::sleep(Duration::from_secs(5)).await;
            StatusCode::OK
        }
        let (tx, requests) = mpsc::unbounded_channel();
        let app = Router::new()
            .route("/status/{code}", post(status))
            .route("/slow", post(slow))
            .with_state(tx);
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = listener.local_addr().unwrap().port();
        tokio::spawn(async move { axum::serve(listener, app).await.unwrap() });
        Receiver {
            base: format!("http://127.0.0.1:{port}"),
            port,
            requests,
        }
    }

    /// A client with the given endpoint rules and default timeouts.
    fn client(allow_http_endpoints: bool, allow_private_endpoints: bool) -> DeliveryClient {
        DeliveryClient::new(DeliverySettings {
            allow_http_endpoints,
            allow_private_endpoints,
            ..DeliverySettings::default()
        })
        .unwrap()
    }

    /// A client that may reach the local receiver.
    fn local_client() -> DeliveryClient {
        client(true, true)
    }

    #[track_caller]
    fn assert_transport(outcome: &SendOutcome, kind: TransportError, message: &str) {
        let got = (&outcome.attempt, outcome.code, outcome.message.as_str());
        assert_eq!(got, (&Attempt::Transport(kind), None, message));
    }

    async fn send(client: &DeliveryClient, url: &str) -> SendOutcome {
        let body = Bytes::from_static(b"gz");
        client
            .send(Request::webhook(
                url,
                "Splunk secret-token",
                &BTreeMap::new(),
                body,
                "key-1",
            ))
            .await
    }

    fn verdict(outcome: &SendOutcome) -> Verdict {
        RetryPolicy::default().next(0, &outcome.attempt, Timestamp::from_millis(0))
    }

    #[tokio::test]
    async fn sends_the_batch_with_its_headers() {
        let mut rx = receiver().await;
        let body = Bytes::from_static(b"\x1f\x8b not really gzip");
        let url = format!("{}/status/202", rx.base);
        let request = Request::webhook(
            &url,
            "Splunk  tok=en/+",
            &BTreeMap::new(),
            body.clone(),
            "0f5c-key",
        );
        let outcome = local_client().send(request).await;
        assert_eq!(outcome.code, Some(202));
        assert_eq!(outcome.message, "Accepted");
        assert_eq!(verdict(&outcome), Verdict::Delivered);

        let got = rx.requests.recv().await.unwrap();
        assert_eq!(got.path, "/status/202");
        assert_eq!(got.body, body);
        let h = |name: &str| got.headers.get(name).unwrap().to_str().unwrap().to_owned();
        assert_eq!(h("authorization"), "Splunk  tok=en/+");
        assert_eq!(h("content-type"), "text/plain");
        assert_eq!(h("content-encoding"), "gzip");
        assert_eq!(h("idempotency-key"), "0f5c-key");
        assert_eq!(
            h("user-agent"),
            format!("auditrelay/{}", env!("CARGO_PKG_VERSION"))
        );
    }

    #[tokio::test]
    async fn maps_statuses_to_verdicts() {
        let mut rx = receiver().await;
        let client = local_client();
        let cases = [
            (200, "OK", None, Verdict::Delivered),
            (202, "Accepted", None, Verdict::Delivered),
            (
                500,
                "Internal Server Error",
                None,
                Verdict::RetryAfter(Duration::from_secs(1)),
            ),
            (
                503,
                "Service Unavailable",
                Some("7"),
                Verdict::RetryAfter(Duration::from_secs(7)),
            ),
            (501, "Not Implemented", None, Verdict::Failed),
            (401, "Unauthorized", None, Verdict::Failed),
            (
                429,
                "Too Many Requests",
                None,
                Verdict::RetryAfter(Duration::from_secs(1)),
            ),
            (302, "Found", None, Verdict::Failed),
            (
                599,
                "HTTP 599",
                None,
                Verdict::RetryAfter(Duration::from_secs(1)),
            ),
        ];
        for (code, message, retry_after, expected) in cases {
            let outcome = send(&client, &format!("{}/status/{code}", rx.base)).await;
            assert_eq!(
                outcome.attempt,
                Attempt::Response {
                    status: code,
                    retry_after: retry_after.map(str::to_owned)
                }
            );
            assert_eq!(
                (outcome.code, outcome.message.as_str()),
                (Some(code), message)
            );
            assert_eq!(verdict(&outcome), expected, "{code}");
            // One request each: in particular the 302 was not followed to /status/200.
            assert_eq!(
                rx.requests.recv().await.unwrap().path,
                format!("/status/{code}")
            );
            assert!(
                rx.requests.try_recv().is_err(),
                "{code} sent a second request"
            );
        }
    }

    #[tokio::test]
    async fn times_out() {
        let rx = receiver().await;
        let client = DeliveryClient::new(DeliverySettings {
            request_timeout: Duration::from_millis(200),
            ..local_client().settings().clone()
        })
        .unwrap();
        let outcome = send(&client, &format!("{}/slow", rx.base)).await;
        assert_transport(&outcome, TransportError::Timeout, "timed out after 200ms");
        assert_eq!(
            verdict(&outcome),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
    }

    #[tokio::test]
    async fn connection_refused_is_retried() {
        let closed = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let port = closed.local_addr().unwrap().port();
        drop(closed);
        let outcome = send(&local_client(), &format!("http://127.0.0.1:{port}/")).await;
        assert_transport(&outcome, TransportError::Connect, "connection refused");
        assert_eq!(
            verdict(&outcome),
            Verdict::RetryAfter(Duration::from_secs(1))
        );
    }

    #[tokio::test]
    async fn refuses_private_endpoints_unless_allowed() {
        let mut rx = receiver().await;
        let public_only = client(true, false);
        for url in [
            format!("{}/status/200", rx.base),
            format!("http://localhost:{}/status/200", rx.port),
            format!("http://app.localhost.:{}/status/200", rx.port),
            format!("http://[::ffff:127.0.0.1]:{}/status/200", rx.port),
        ] {
            let outcome = send(&public_only, &url).await;
            assert_transport(&outcome, TransportError::Refused, PrivateAddress::MESSAGE);
            assert_eq!(verdict(&outcome), Verdict::Failed, "{url}");
        }
        assert!(
            rx.requests.try_recv().is_err(),
            "nothing reached the receiver"
        );

        let outcome = send(
            &local_client(),
            &format!("http://localhost:{}/status/200", rx.port),
        )
        .await;
        assert_eq!(outcome.code, Some(200));
        assert_eq!(rx.requests.recv().await.unwrap().path, "/status/200");
    }

    #[tokio::test]
    async fn the_resolver_refuses_at_connect_time() {
        // Past the pre-send check, straight to reqwest: the name is refused when it is
        // resolved, which is what defeats a DNS answer that changed after validation.
        let rx = receiver().await;
        let client = client(true, false);
        let url = format!("http://localhost:{}/status/200", rx.port);
        let error = client.client.post(url).send().await.unwrap_err();
        assert_eq!(
            client.describe(&error),
            (TransportError::Refused, PrivateAddress::MESSAGE.to_owned())
        );

        let error = PublicOnlyResolver
            .resolve(Name::from_str("localhost").unwrap())
            .await
            .err()
            .unwrap();
        assert!(error.is::<PrivateAddress>());
    }

    #[tokio::test]
    async fn refuses_what_the_url_forbids() {
        let https_only = client(false, true);
        for (url, message) in [
            (
                "http://127.0.0.1:1/",
                "refused: http:// endpoints are not allowed",
            ),
            (
                "ftp://example.com/",
                "refused: the endpoint's scheme is not https",
            ),
            ("not a url", "refused: the endpoint is not a valid URL"),
            (
                "https://user:pw@example.com/",
                "refused: the endpoint URL contains credentials",
            ),
        ] {
            assert_transport(
                &send(&https_only, url).await,
                TransportError::Refused,
                message,
            );
        }
        // The message says what is wrong without echoing the value.
        let request = Request::webhook(
            "https://example.com/",
            "line\nbreak",
            &BTreeMap::new(),
            Bytes::new(),
            "k",
        );
        let outcome = https_only.send(request).await;
        assert_transport(
            &outcome,
            TransportError::Protocol,
            "the authorization value cannot be sent as an HTTP header",
        );
    }
}

//! The HTTP server under `auditrelay listen` and the tests' webhook receiver: an accept loop
//! that serves an axum [`Router`] over HTTP/1.1, in plain text or TLS, with graceful shutdown.
//!
//! It exists, rather than `axum::serve`, for one failure a delivery engine must survive: a
//! connection that is reset with no answer. Every request carries a [`Connection`] extension
//! whose [`Connection::reset`] drops the connection with `SO_LINGER` 0, so the peer sees a TCP
//! RST. HTTP/1.1 is all a webhook sender needs, and keeps the reset meaning "this request".

use std::future::Future;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use hyper::body::Incoming;
use hyper::server::conn::http1;
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Notify, watch};
use tokio::task::JoinSet;
use tokio_rustls::TlsAcceptor;
use tower::ServiceExt as _;

/// How long a client may take to complete the TLS handshake.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The connection a request arrived on, as a request extension.
#[derive(Debug, Clone)]
pub struct Connection {
    peer: SocketAddr,
    reset: Arc<Notify>,
}

impl Connection {
    pub fn peer(&self) -> SocketAddr {
        self.peer
    }

    /// Drops the connection without an answer: the peer sees a TCP reset. The handler that
    /// calls this should then never return (its future is dropped with the connection).
    pub fn reset(&self) {
        self.reset.notify_one();
    }
}

/// Serves `app` on `listener` (through TLS when `tls` is given) until `shutdown` resolves, then
/// lets open connections finish their current request for up to `grace`, and cuts off the rest.
pub async fn serve(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: Router,
    shutdown: impl Future<Output = ()>,
    grace: Duration,
) {
    let (stop, stopping) = watch::channel(false);
    // Owning the connection tasks means dropping this future (a test's receiver going away)
    // aborts them all, hung requests included.
    let mut connections = JoinSet::new();
    tokio::pin!(shutdown);
    loop {
        tokio::select! {
            () = &mut shutdown => break,
            Some(_) = connections.join_next(), if !connections.is_empty() => {}
            accepted = listener.accept() => match accepted {
                Ok((stream, peer)) => {
                    connections.spawn(connection(
                        stream,
                        peer,
                        tls.clone(),
                        app.clone(),
                        stopping.clone(),
                    ));
                }
                Err(e) => {
                    // Out of file descriptors, most likely: accepting again at once would spin.
                    tracing::warn!(error = %e, "could not accept a connection");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            },
        }
    }
    drop(listener);
    let _ = stop.send(true);
    let drained = tokio::time::timeout(grace, async {
        while connections.join_next().await.is_some() {}
    })
    .await;
    if drained.is_err() {
        tracing::warn!(
            connections = connections.len(),
            "connections still busy after the shutdown grace period were cut off"
        );
    }
}

async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tls: Option<TlsAcceptor>,
    app: Router,
    stopping: watch::Receiver<bool>,
) {
    // Answers are small; Nagle's algorithm would hold them back waiting for an ACK.
    let _ = stream.set_nodelay(true);
    // A second descriptor of the same socket: hyper owns the stream, and a reset must set
    // SO_LINGER 0 on the socket before its last descriptor closes.
    let Ok((stream, twin)) = stream.into_std().and_then(|std| {
        let twin = std.try_clone()?;
        Ok((TcpStream::from_std(std)?, twin))
    }) else {
        return;
    };
    let connection = Connection {
        peer,
        reset: Arc::new(Notify::new()),
    };
    let reset = match tls {
        None => drive(stream, app, connection, stopping).await,
        Some(acceptor) => {
            match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                Ok(Ok(stream)) => drive(stream, app, connection, stopping).await,
                Ok(Err(e)) => {
                    tracing::debug!(peer = %peer, error = %e, "TLS handshake failed");
                    false
                }
                Err(_) => {
                    tracing::debug!(peer = %peer, "TLS handshake timed out");
                    false
                }
            }
        }
    };
    if reset {
        let _ = socket2::SockRef::from(&twin).set_linger(Some(Duration::ZERO));
    }
}

/// Serves one connection; returns whether a handler asked for it to be reset.
async fn drive<I>(
    io: I,
    app: Router,
    connection: Connection,
    mut stopping: watch::Receiver<bool>,
) -> bool
where
    I: AsyncRead + AsyncWrite + Unpin + Send + 'static,
{
    let reset = Arc::clone(&connection.reset);
    let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
        request.extensions_mut().insert(connection.clone());
        app.clone().oneshot(request)
    });
    let conn = http1::Builder::new()
        // With a timer, hyper's 30 s limit on reading a request head applies.
        .timer(TokioTimer::new())
        .serve_connection(TokioIo::new(io), service);
    tokio::pin!(conn);
    let mut draining = false;
    loop {
        tokio::select! {
            result = conn.as_mut() => {
                if let Err(e) = result {
                    tracing::debug!(error = %e, "connection ended with an error");
                }
                return false;
            }
            () = reset.notified() => return true,
            _ = stopping.wait_for(|stop| *stop), if !draining => {
                draining = true;
                conn.as_mut().graceful_shutdown();
            }
        }
    }
}

//! Problem bodies for the requests hyper cannot parse.
//!
//! hyper answers a request it cannot parse itself, before any service sees it: `414` for a URI
//! over its 64 KiB limit, `431` for header fields over its buffer, `400` for what is not HTTP.
//! It writes the head alone (`connection: close`, `content-length: 0`) and closes. Every other
//! error of ours is problem+json with a trace id, so this adapter, around each connection's
//! socket, replaces exactly that answer with the same status carrying a problem body. It
//! recognises hyper's answer by its shape, which none of ours has: a 4xx with no body that
//! closes the connection (our error responses always carry a problem body).

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll, ready};

use axum::http::StatusCode;
use tokio::io::{AsyncRead, AsyncWrite, ReadBuf};

use crate::api::{self, PROBLEM_JSON};

/// The socket of one connection, its parse-error answers given problem bodies.
pub struct ProblemOnParseError<IO> {
    inner: IO,
    /// A replacement answer still to be written, and how much of it is.
    pending: Option<(Vec<u8>, usize)>,
}

impl<IO> ProblemOnParseError<IO> {
    pub fn new(inner: IO) -> Self {
        Self {
            inner,
            pending: None,
        }
    }
}

/// The status of hyper's own answer to an unparsable request, if `buf` begins with one.
fn parse_error_status(buf: &[u8]) -> Option<StatusCode> {
    let head_end = buf.windows(4).position(|w| w == b"\r\n\r\n")?;
    let head = std::str::from_utf8(&buf[..head_end]).ok()?;
    let mut lines = head.split("\r\n");
    let status = lines.next()?.strip_prefix("HTTP/1.1 4")?;
    let code: u16 = format!("4{}", status.get(..2)?).parse().ok()?;
    let mut close = false;
    let mut empty = false;
    for line in lines {
        let (name, value) = line.split_once(':')?;
        let value = value.trim();
        if name.eq_ignore_ascii_case("connection") && value.eq_ignore_ascii_case("close") {
            close = true;
        }
        if name.eq_ignore_ascii_case("content-length") && value == "0" {
            empty = true;
        }
        if name.eq_ignore_ascii_case("content-type") {
            return None;
        }
    }
    (close && empty && buf.len() == head_end + 4)
        .then(|| StatusCode::from_u16(code).ok())
        .flatten()
}

/// The whole answer that replaces hyper's: the same status, a problem body, a fresh trace id.
fn replacement(status: StatusCode) -> Vec<u8> {
    let detail = match status {
        StatusCode::URI_TOO_LONG => "The request's URI is longer than the 64 KiB the server reads",
        StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE => {
            "The request's header fields are larger than the server reads"
        }
        _ => "The request is not valid HTTP/1.1",
    };
    let (trace_id, body) = api::problem_body(status, detail);
    tracing::info!(
        trace_id,
        http.status = status.as_u16(),
        http.route = "unparsed",
        "request"
    );
    let mut answer = format!(
        "HTTP/1.1 {} {}\r\nconnection: close\r\ncontent-type: {PROBLEM_JSON}\r\ncontent-length: {}\r\n\r\n",
        status.as_u16(),
        status.canonical_reason().unwrap_or("Error"),
        body.len()
    )
    .into_bytes();
    answer.extend_from_slice(&body);
    answer
}

impl<IO: AsyncWrite + Unpin> ProblemOnParseError<IO> {
    /// Writes what is left of a replacement answer.
    fn poll_pending(&mut self, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        while let Some((bytes, written)) = &mut self.pending {
            let n = ready!(Pin::new(&mut self.inner).poll_write(cx, &bytes[*written..]))?;
            if n == 0 {
                return Poll::Ready(Err(io::ErrorKind::WriteZero.into()));
            }
            *written += n;
            if *written == bytes.len() {
                self.pending = None;
            }
        }
        Poll::Ready(Ok(()))
    }
}

impl<IO: AsyncRead + Unpin> AsyncRead for ProblemOnParseError<IO> {
    fn poll_read(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &mut ReadBuf<'_>,
    ) -> Poll<io::Result<()>> {
        Pin::new(&mut self.inner).poll_read(cx, buf)
    }
}

impl<IO: AsyncWrite + Unpin> AsyncWrite for ProblemOnParseError<IO> {
    fn poll_write(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        buf: &[u8],
    ) -> Poll<io::Result<usize>> {
        ready!(self.poll_pending(cx))?;
        if let Some(status) = parse_error_status(buf) {
            self.pending = Some((replacement(status), 0));
            // hyper's bytes count as written; ours go out in their place.
            let _ = self.poll_pending(cx)?;
            return Poll::Ready(Ok(buf.len()));
        }
        Pin::new(&mut self.inner).poll_write(cx, buf)
    }

    fn poll_flush(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_flush(cx)
    }

    fn poll_shutdown(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        ready!(self.poll_pending(cx))?;
        Pin::new(&mut self.inner).poll_shutdown(cx)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn recognises_hypers_answers_and_nothing_of_ours() {
        let hyper = |status: &str| {
            format!(
                "HTTP/1.1 {status}\r\nconnection: close\r\ncontent-length: 0\r\ndate: Wed, 02 Dec 2026 17:29:44 GMT\r\n\r\n"
            )
        };
        assert_eq!(
            parse_error_status(hyper("414 URI Too Long").as_bytes()),
            Some(StatusCode::URI_TOO_LONG)
        );
        assert_eq!(
            parse_error_status(hyper("431 Request Header Fields Too Large").as_bytes()),
            Some(StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE)
        );
        assert_eq!(
            parse_error_status(hyper("400 Bad Request").as_bytes()),
            Some(StatusCode::BAD_REQUEST)
        );
        for ours in [
            "HTTP/1.1 200 OK\r\nconnection: close\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 404 Not Found\r\ncontent-type: application/problem+json\r\ncontent-length: 2\r\n\r\n{}",
            "HTTP/1.1 400 Bad Request\r\ncontent-length: 0\r\n\r\n",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\nmore",
            "HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n",
        ] {
            assert_eq!(parse_error_status(ours.as_bytes()), None, "{ours:?}");
        }
    }
}

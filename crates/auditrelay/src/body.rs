//! Request bodies as auditrelay reads them — producers' events at `POST /v1/events`, and
//! webhook batches at the receiver of `auditrelay listen` (DECISIONS.md K8.2) — which content
//! coding was applied (gzip or none), the body read with a bound on its compressed size,
//! inflated with a bound on its decoded size, and cut into log lines.
//!
//! Both bounds are enforced while reading, not after: a sender cannot make the receiver hold
//! more than the limit, whatever `Content-Length` says, and a gzip bomb stops inflating at the
//! limit instead of filling memory.
//!
//! A body that is refused is still read, up to a bound, and thrown away ([`discard`]) before
//! the answer goes out. Closing a connection with unread bytes makes the kernel send a reset,
//! and a sender still writing its body would then see a broken connection instead of the 401
//! or 413 that explains what went wrong.

use std::io::Read as _;
use std::time::Duration;

use axum::body::Body;
use axum::http::header::CONTENT_ENCODING;
use axum::http::{HeaderMap, StatusCode};
use flate2::read::MultiGzDecoder;
use http_body_util::BodyExt as _;

/// kongctl's default limit on a decoded batch, which Konnect's deliveries are known to fit.
pub const DEFAULT_MAX_BODY_BYTES: usize = 1024 * 1024;

/// How much of a refused body [`discard`] reads, and for how long, before giving up on it.
const DISCARD_BYTES: usize = 16 * 1024 * 1024;
const DISCARD_TIME: Duration = Duration::from_secs(5);

/// The content coding of a request body.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Coding {
    Identity,
    Gzip,
}

#[derive(Debug, thiserror::Error)]
pub enum BodyError {
    #[error("the {what} exceeds the limit of {limit} bytes")]
    TooLarge { what: &'static str, limit: usize },
    #[error("the body is not valid gzip: {0}")]
    BadGzip(std::io::Error),
    #[error("unsupported Content-Encoding `{0}`: send gzip or no encoding")]
    UnsupportedCoding(String),
    #[error("the body could not be read: {0}")]
    Read(String),
}

impl BodyError {
    /// The status a receiver answers this error with.
    pub fn status(&self) -> StatusCode {
        match self {
            Self::TooLarge { .. } => StatusCode::PAYLOAD_TOO_LARGE,
            Self::BadGzip(_) | Self::Read(_) => StatusCode::BAD_REQUEST,
            Self::UnsupportedCoding(_) => StatusCode::UNSUPPORTED_MEDIA_TYPE,
        }
    }
}

/// A body as received: its size on the wire and its decoded bytes.
#[derive(Debug, Clone)]
pub struct Received {
    pub coding: Coding,
    pub compressed_len: usize,
    pub decoded: Vec<u8>,
}

/// The coding named by `Content-Encoding`: gzip when a token is `gzip` (or its old alias
/// `x-gzip`), or when the whole value is `application/gzip` as Konnect's documentation says it
/// sends; none when the header is absent or says `identity`. Tokens are comma-separated and
/// case-insensitive, and may be spread over several header lines.
pub fn coding(headers: &HeaderMap) -> Result<Coding, BodyError> {
    let mut gzip = 0;
    for value in headers.get_all(CONTENT_ENCODING) {
        let text = value.to_str().map_err(|_| {
            BodyError::UnsupportedCoding(String::from_utf8_lossy(value.as_bytes()).into_owned())
        })?;
        for token in text.split(',').map(str::trim) {
            if token.is_empty() || token.eq_ignore_ascii_case("identity") {
                continue;
            }
            if token.eq_ignore_ascii_case("gzip")
                || token.eq_ignore_ascii_case("x-gzip")
                || token.eq_ignore_ascii_case("application/gzip")
            {
                gzip += 1;
            } else {
                return Err(BodyError::UnsupportedCoding(text.to_owned()));
            }
        }
    }
    match gzip {
        0 => Ok(Coding::Identity),
        1 => Ok(Coding::Gzip),
        // gzip applied twice would need inflating twice; no sender does that on purpose.
        _ => Err(BodyError::UnsupportedCoding("gzip, gzip".to_owned())),
    }
}

/// The most compressed bytes accepted for a decoded limit of `max_decoded`: gzip of data that
/// does not compress is slightly larger than the data (5 bytes per 64 KiB stored block, plus
/// its header and trailer), so an honest body at the limit must still fit.
pub fn compressed_limit(max_decoded: usize) -> usize {
    max_decoded
        .saturating_add(max_decoded / 1024)
        .saturating_add(1024)
}

/// Reads and decodes a request body, enforcing both limits as the bytes arrive. A body over
/// the limit, or in a coding this cannot decode, is discarded before the error returns.
pub async fn read(
    headers: &HeaderMap,
    mut body: Body,
    max_decoded: usize,
) -> Result<Received, BodyError> {
    let coding = match coding(headers) {
        Ok(coding) => coding,
        Err(e) => {
            discard(body).await;
            return Err(e);
        }
    };
    let (limit, what) = match coding {
        Coding::Identity => (max_decoded, "body"),
        Coding::Gzip => (compressed_limit(max_decoded), "compressed body"),
    };
    let mut bytes = Vec::new();
    while let Some(frame) = body.frame().await {
        let frame = frame.map_err(|e| BodyError::Read(e.to_string()))?;
        let Ok(data) = frame.into_data() else {
            continue; // trailers
        };
        if bytes.len() + data.len() > limit {
            discard(body).await;
            return Err(BodyError::TooLarge { what, limit });
        }
        bytes.extend_from_slice(&data);
    }
    let compressed_len = bytes.len();
    let decoded = match coding {
        Coding::Identity => bytes,
        Coding::Gzip => gunzip(&bytes, max_decoded)?,
    };
    Ok(Received {
        coding,
        compressed_len,
        decoded,
    })
}

/// Reads the rest of a body that will not be used, so the answer reaches a sender that is still
/// writing (see the module documentation); gives up after 16 MiB or 5 seconds, after which the
/// connection closes with whatever the sender sees.
pub async fn discard(mut body: Body) {
    let drain = async {
        let mut seen = 0usize;
        while let Some(Ok(frame)) = body.frame().await {
            seen += frame.data_ref().map_or(0, |data| data.len());
            if seen > DISCARD_BYTES {
                break;
            }
        }
    };
    let _ = tokio::time::timeout(DISCARD_TIME, drain).await;
}

/// Inflates gzip (one member or several, as RFC 1952 allows), stopping with
/// [`BodyError::TooLarge`] as soon as the output would exceed `max` bytes.
pub fn gunzip(compressed: &[u8], max: usize) -> Result<Vec<u8>, BodyError> {
    if compressed.is_empty() {
        return Ok(Vec::new());
    }
    let mut decoded = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "over it".
    MultiGzDecoder::new(compressed)
        .take(u64::try_from(max).unwrap_or(u64::MAX).saturating_add(1))
        .read_to_end(&mut decoded)
        .map_err(BodyError::BadGzip)?;
    if decoded.len() > max {
        return Err(BodyError::TooLarge {
            what: "decoded body",
            limit: max,
        });
    }
    Ok(decoded)
}

/// The log lines of a decoded batch: split on `\n`, trimmed of whitespace (and so of `\r`),
/// empty lines dropped.
pub fn lines(decoded: &[u8]) -> impl Iterator<Item = &[u8]> {
    decoded
        .split(|b| *b == b'\n')
        .map(<[u8]>::trim_ascii)
        .filter(|line| !line.is_empty())
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use axum::http::HeaderValue;
    use flate2::Compression;
    use flate2::write::GzEncoder;

    use super::*;

    fn gzip(bytes: &[u8]) -> Vec<u8> {
        let mut encoder = GzEncoder::new(Vec::new(), Compression::default());
        encoder.write_all(bytes).unwrap();
        encoder.finish().unwrap()
    }

    fn headers(values: &[&str]) -> HeaderMap {
        let mut headers = HeaderMap::new();
        for value in values {
            headers.append(CONTENT_ENCODING, HeaderValue::from_str(value).unwrap());
        }
        headers
    }

    #[test]
    fn content_encoding_names_the_coding() {
        for (values, expected) in [
            (&[][..], Some(Coding::Identity)),
            (&["identity"][..], Some(Coding::Identity)),
            (&["gzip"][..], Some(Coding::Gzip)),
            (&["GZip"][..], Some(Coding::Gzip)),
            (&["x-gzip"][..], Some(Coding::Gzip)),
            (&["application/gzip"][..], Some(Coding::Gzip)),
            (&["identity, gzip"][..], Some(Coding::Gzip)),
            (&["identity", " gzip "][..], Some(Coding::Gzip)),
            (&["br"][..], None),
            (&["gzip, br"][..], None),
            (&["gzip", "gzip"][..], None),
        ] {
            let got = coding(&headers(values)).ok();
            assert_eq!(got, expected, "{values:?}");
        }
    }

    #[test]
    fn gunzip_stops_at_the_limit() {
        let plain = vec![b'a'; 10_000];
        let packed = gzip(&plain);
        assert_eq!(gunzip(&packed, 10_000).unwrap(), plain);
        assert!(matches!(
            gunzip(&packed, 9_999),
            Err(BodyError::TooLarge { limit: 9_999, .. })
        ));
        // A bomb: 64 MiB of zeros is ~64 KiB of gzip; inflating stops just past the limit.
        let bomb = gzip(&vec![0; 64 << 20]);
        assert!(bomb.len() < compressed_limit(DEFAULT_MAX_BODY_BYTES));
        assert_eq!(
            gunzip(&bomb, DEFAULT_MAX_BODY_BYTES).unwrap_err().status(),
            StatusCode::PAYLOAD_TOO_LARGE
        );
    }

    #[test]
    fn gunzip_accepts_several_members_and_rejects_junk() {
        let mut two = gzip(b"one\n");
        two.extend(gzip(b"two\n"));
        assert_eq!(gunzip(&two, 100).unwrap(), b"one\ntwo\n");
        let err = gunzip(b"not gzip at all", 100).unwrap_err();
        assert_eq!(err.status(), StatusCode::BAD_REQUEST);
        let mut truncated = gzip(b"some text that is long enough");
        truncated.truncate(truncated.len() - 6);
        assert!(matches!(
            gunzip(&truncated, 100),
            Err(BodyError::BadGzip(_))
        ));
    }

    #[test]
    fn an_incompressible_body_at_the_limit_fits_the_compressed_limit() {
        // Bytes from a simple generator do not compress; gzip stores them with a little overhead.
        let mut state = 0x2545_f491_4f6c_dd1d_u64;
        let noise: Vec<u8> = (0..DEFAULT_MAX_BODY_BYTES)
            .map(|_| {
                state ^= state << 13;
                state ^= state >> 7;
                state ^= state << 17;
                state.to_le_bytes()[0]
            })
            .collect();
        let packed = gzip(&noise);
        assert!(packed.len() > noise.len());
        assert!(packed.len() <= compressed_limit(noise.len()));
    }

    #[test]
    fn lines_are_trimmed_and_blank_lines_dropped() {
        let body = b"one\r\n\n  \r\n two \ntwo-and-a-half\r\nlast";
        let got: Vec<&[u8]> = lines(body).collect();
        assert_eq!(got, [&b"one"[..], b"two", b"two-and-a-half", b"last"]);
        assert_eq!(lines(b"").count(), 0);
    }
}

//! The request stage: what one batch is sent as. Every destination is of the `webhook` kind
//! today, Konnect's shape: a `POST` of the gzip lines as `text/plain`, with the destination's
//! `Authorization` and the batch's `Idempotency-Key`. The transport (`http.rs`) sends whatever
//! is built here, behind its guard; other kinds build their own shapes here.

use std::collections::BTreeMap;

use bytes::Bytes;
use reqwest::header::{self, HeaderName};

/// One request, built but not checked: the transport refuses an endpoint the guard forbids, or
/// a header value HTTP cannot carry, as a failed attempt.
#[derive(Debug, Clone)]
pub struct Request {
    pub endpoint: String,
    pub content_type: &'static str,
    pub content_encoding: Option<&'static str>,
    /// In the order they are checked and sent.
    pub headers: Vec<Header>,
    /// Cheap to clone for a retry.
    pub body: Bytes,
}

/// A header of a request; a sensitive one (a credential) appears in no debug output.
#[derive(Clone)]
pub struct Header {
    pub name: HeaderName,
    pub value: String,
    pub sensitive: bool,
    /// What it is, for the message when its value cannot be sent ("the authorization value").
    pub what: &'static str,
}

impl std::fmt::Debug for Header {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let value = if self.sensitive {
            "<redacted>"
        } else {
            &self.value
        };
        write!(f, "{}: {value}", self.name)
    }
}

const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");

impl Request {
    /// Konnect's webhook request for a gzip `body` of lines, with the destination's extra
    /// headers (our extension; their values may be credentials, so all are sensitive).
    pub fn webhook(
        endpoint: &str,
        authorization: &str,
        extra: &BTreeMap<String, String>,
        body: Bytes,
        idempotency_key: &str,
    ) -> Self {
        let mut headers = vec![Header {
            name: header::AUTHORIZATION,
            value: authorization.to_owned(),
            sensitive: true,
            what: "the authorization value",
        }];
        headers.extend(extra.iter().filter_map(|(name, value)| {
            // Names were checked when the destination was saved; one that no longer parses
            // is left out rather than failing every batch.
            Some(Header {
                name: HeaderName::from_bytes(name.as_bytes()).ok()?,
                value: value.clone(),
                sensitive: true,
                what: "an extra header's value",
            })
        }));
        headers.push(Header {
            name: IDEMPOTENCY_KEY,
            value: idempotency_key.to_owned(),
            sensitive: false,
            what: "the idempotency key",
        });
        Self {
            endpoint: endpoint.to_owned(),
            content_type: "text/plain",
            content_encoding: Some("gzip"),
            headers,
            body,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_credential_stays_out_of_debug_output() {
        let extra = BTreeMap::from([("x-api-key".to_owned(), "sesame".to_owned())]);
        let request = Request::webhook(
            "https://siem.example/",
            "Bearer hunter2",
            &extra,
            Bytes::new(),
            "k",
        );
        let shown = format!("{request:?}");
        assert!(!shown.contains("hunter2"), "{shown}");
        assert!(!shown.contains("sesame"), "{shown}");
        assert!(shown.contains("idempotency-key: k"), "{shown}");
    }
}

//! The request stage: what one batch is sent as, for the destination's kind. A `webhook` is
//! Konnect's shape: a `POST` of the gzip lines as `text/plain`, with the destination's
//! `Authorization` and the batch's `Idempotency-Key`. Other kinds take the content type,
//! headers and query of their framing (`kind::Framer`), and their credential in their own
//! header. The transport (`http.rs`) sends whatever is built here, behind its guard.

use std::collections::BTreeMap;

use auditrelay_core::kind::{Framer, Kind, judge};
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
    /// Whether the answer's body is kept, for a kind that judges it (else it is read, to free
    /// the connection, and dropped).
    pub keep_answer: bool,
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
    /// The request for a gzip `body` framed by `framer` for `kind`, with the destination's
    /// credential and extra headers (our extension; their values may be credentials, so all
    /// are sensitive). An extra header the kind sets itself (a webhook's `X-Sumo-Category`
    /// kept after the destination became `sumo_logic`) gives way to the kind's.
    pub fn batch(
        kind: &Kind,
        framer: &Framer,
        endpoint: &str,
        credential: &str,
        extra: &BTreeMap<String, String>,
        body: Bytes,
        idempotency_key: &str,
    ) -> Self {
        let mut headers = own_headers(kind, framer, credential);
        let extras: Vec<Header> = extra
            .iter()
            .filter_map(|(name, value)| {
                // Names were checked when the destination was saved; one that no longer parses
                // is left out rather than failing every batch.
                Some(Header {
                    name: HeaderName::from_bytes(name.as_bytes()).ok()?,
                    value: value.clone(),
                    sensitive: true,
                    what: "an extra header's value",
                })
            })
            .filter(|extra| headers.iter().all(|own| own.name != extra.name))
            .collect();
        headers.extend(extras);
        headers.push(Header {
            name: IDEMPOTENCY_KEY,
            value: idempotency_key.to_owned(),
            sensitive: false,
            what: "the idempotency key",
        });
        Self {
            endpoint: with_query(endpoint, framer.query()),
            content_type: framer.content_type(),
            content_encoding: Some("gzip"),
            headers,
            body,
            keep_answer: kind.judges_body(),
        }
    }

    /// Konnect's webhook request, for the transport's tests.
    #[cfg(test)]
    pub fn webhook(
        endpoint: &str,
        authorization: &str,
        extra: &BTreeMap<String, String>,
        body: Bytes,
        idempotency_key: &str,
    ) -> Self {
        let framer = Framer::lines();
        Self::batch(
            &Kind::Webhook,
            &framer,
            endpoint,
            authorization,
            extra,
            body,
            idempotency_key,
        )
    }

    /// Splunk's acknowledgement query for the batch acknowledged as `id`, on the channel of
    /// `framer`, to the collector that `endpoint` (an event or raw endpoint) belongs to.
    pub fn hec_ack(
        kind: &Kind,
        framer: &Framer,
        endpoint: &str,
        credential: &str,
        id: u64,
    ) -> Self {
        let headers = own_headers(kind, framer, credential);
        Self {
            endpoint: hec_ack_endpoint(endpoint),
            content_type: "application/json",
            content_encoding: None,
            keep_answer: true,
            headers,
            body: Bytes::from(judge::ack_query(id)),
        }
    }
}

/// The headers a kind sets itself: its credential's, then its settings'.
fn own_headers(kind: &Kind, framer: &Framer, credential: &str) -> Vec<Header> {
    let settings = framer.headers().iter().map(|(name, value)| Header {
        name: HeaderName::from_static(name),
        value: value.clone(),
        sensitive: false,
        what: "a setting's value",
    });
    credential_header(kind, credential)
        .into_iter()
        .chain(settings)
        .collect()
}

/// The header that carries a kind's credential; `None` when it takes none (Sumo Logic's is in
/// its URL; Loki's is optional).
fn credential_header(kind: &Kind, credential: &str) -> Option<Header> {
    let (name, value, what) = match kind {
        Kind::Webhook => (
            header::AUTHORIZATION,
            credential.to_owned(),
            "the authorization value",
        ),
        Kind::SplunkHec(_) => {
            // Taken as the bare token, or as the whole header value if written so.
            let value = if credential.starts_with("Splunk ") {
                credential.to_owned()
            } else {
                format!("Splunk {credential}")
            };
            (header::AUTHORIZATION, value, "the HEC token")
        }
        Kind::Datadog(_) => (
            HeaderName::from_static("dd-api-key"),
            credential.to_owned(),
            "the API key",
        ),
        Kind::Elasticsearch | Kind::Loki(_) if !credential.is_empty() => (
            header::AUTHORIZATION,
            credential.to_owned(),
            "the authorization value",
        ),
        // A syslog destination's credential is its client certificate's private key, shown
        // to nobody: it stays in the TLS handshake.
        Kind::Elasticsearch | Kind::Loki(_) | Kind::SumoLogic(_) | Kind::Syslog(_) => {
            return None;
        }
    };
    Some(Header {
        name,
        value,
        sensitive: true,
        what,
    })
}

/// `endpoint` with `query` appended; unchanged when there is none to add or it is not a URL
/// (the transport refuses it then).
fn with_query(endpoint: &str, query: &[(&str, String)]) -> String {
    if query.is_empty() {
        return endpoint.to_owned();
    }
    let Ok(mut url) = url::Url::parse(endpoint) else {
        return endpoint.to_owned();
    };
    url.query_pairs_mut()
        .extend_pairs(query.iter().map(|(k, v)| (*k, v.as_str())));
    url.into()
}

/// The acknowledgement endpoint beside a collector endpoint: `…/services/collector/ack`.
fn hec_ack_endpoint(endpoint: &str) -> String {
    let Ok(mut url) = url::Url::parse(endpoint) else {
        return endpoint.to_owned();
    };
    let path = url.path().trim_end_matches('/');
    let base = path
        .strip_suffix("/event")
        .or_else(|| path.strip_suffix("/raw"))
        .unwrap_or(path);
    url.set_path(&format!("{base}/ack"));
    url.set_query(None);
    url.into()
}

#[cfg(test)]
mod tests {
    use auditrelay_core::kind::{Datadog, SplunkHec, Stream};
    use auditrelay_core::{OrgId, Region};

    use super::*;

    fn framer(kind: &Kind, endpoint: &str) -> Framer {
        let stream = Stream {
            org_id: OrgId::nil(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            replay: None,
        };
        Framer::new(kind, &stream, endpoint, uuid::Uuid::nil())
    }

    fn header<'a>(request: &'a Request, name: &str) -> Option<&'a str> {
        request
            .headers
            .iter()
            .find(|h| h.name == name)
            .map(|h| h.value.as_str())
    }

    #[test]
    fn each_kind_carries_its_credential_in_its_own_header() {
        let endpoint = "https://splunk.example:8088/services/collector/raw";
        let hec = Kind::SplunkHec(SplunkHec {
            index: Some("audit".into()),
            ..SplunkHec::default()
        });
        let request = Request::batch(
            &hec,
            &framer(&hec, endpoint),
            endpoint,
            "tok",
            &BTreeMap::new(),
            Bytes::new(),
            "k",
        );
        assert_eq!(header(&request, "authorization"), Some("Splunk tok"));
        assert_eq!(
            request.endpoint,
            "https://splunk.example:8088/services/collector/raw?index=audit"
        );
        assert_eq!(request.content_type, "text/plain");
        let dd = Kind::Datadog(Datadog::default());
        let endpoint = "https://http-intake.logs.datadoghq.eu/api/v2/logs";
        let request = Request::batch(
            &dd,
            &framer(&dd, endpoint),
            endpoint,
            "key",
            &BTreeMap::new(),
            Bytes::new(),
            "k",
        );
        assert_eq!(header(&request, "dd-api-key"), Some("key"));
        assert_eq!(header(&request, "authorization"), None);
        assert_eq!(request.content_type, "application/json");
    }

    #[test]
    fn the_ack_query_goes_to_the_collectors_ack_endpoint() {
        let hec = Kind::SplunkHec(SplunkHec::default());
        for endpoint in [
            "https://s:8088/services/collector/event",
            "https://s:8088/services/collector/raw/?channel=x",
            "https://s:8088/services/collector",
        ] {
            let ack = Request::hec_ack(&hec, &framer(&hec, endpoint), endpoint, "Splunk t", 3);
            assert_eq!(ack.endpoint, "https://s:8088/services/collector/ack");
            assert_eq!(header(&ack, "authorization"), Some("Splunk t"));
            assert!(header(&ack, "x-splunk-request-channel").is_some());
        }
    }

    #[test]
    fn a_credential_stays_out_of_debug_output() {
        let extra = BTreeMap::from([("x-api-key".to_owned(), "sesame".to_owned())]);
        let request = Request::batch(
            &Kind::Webhook,
            &framer(&Kind::Webhook, "https://siem.example/"),
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

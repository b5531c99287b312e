//! `--kind`: the destination kind the `deliver`, `latency` and `replay` scenarios go through,
//! and what the tool's receiver makes of each kind's requests: where they are posted, the
//! credential they carry, how a body splits into records (one signed line each, unescaped from
//! the JSON that carries it), and the answer each receiver gives a request it took whole.

use std::borrow::Cow;

use axum::http::StatusCode;
use serde::Deserialize;
use serde_json::{Value, json};

#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Webhook,
    SplunkHec,
    Datadog,
    Elasticsearch,
    SumoLogic,
    Loki,
    /// Syslog over TLS (RFC 5425), octet-counted, to the receiver's TLS listener.
    Syslog,
}

impl Kind {
    pub const ALL: [Self; 7] = [
        Self::Webhook,
        Self::SplunkHec,
        Self::Datadog,
        Self::Elasticsearch,
        Self::SumoLogic,
        Self::Loki,
        Self::Syslog,
    ];

    /// The API's name of the kind.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::SplunkHec => "splunk_hec",
            Self::Datadog => "datadog",
            Self::Elasticsearch => "elasticsearch",
            Self::SumoLogic => "sumo_logic",
            Self::Loki => "loki",
            Self::Syslog => "syslog",
        }
    }

    /// The destination delivering lines in `format` (`cef`, `json`, `cps`) to the receiver at
    /// `url` (which ends in `/`).
    pub fn destination(self, url: &str, format: &str) -> Value {
        let (path, authorization) = match self {
            Self::Webhook => ("", Some("Bearer auditrelay-load")),
            Self::SplunkHec => ("services/collector/event", Some("auditrelay-load")),
            Self::Datadog => ("api/v2/logs", Some("auditrelay-load")),
            Self::Elasticsearch => ("logs-auditrelay-load/_bulk", Some("ApiKey auditrelay-load")),
            Self::SumoLogic => ("receiver/v1/http/auditrelay-load", None),
            Self::Loki => ("loki/api/v1/push", None),
            Self::Syslog => ("", None),
        };
        let mut destination = json!({
            "name": "auditrelay-load",
            "endpoint": format!("{url}{path}"),
            "log_format": format,
        });
        if self == Self::Syslog {
            // The receiver's certificate is made for the run.
            destination["skip_ssl_verification"] = json!(true);
        }
        if let Some(authorization) = authorization {
            destination["authorization"] = json!(authorization);
        }
        if self != Self::Webhook {
            destination["kind"] = json!(self.as_str());
        }
        destination
    }

    /// The answer of this kind's receiver to a request it took whole.
    pub fn answer(self) -> (StatusCode, &'static str) {
        match self {
            Self::Webhook | Self::Datadog => (StatusCode::ACCEPTED, "{}"),
            Self::SplunkHec => (StatusCode::OK, r#"{"text":"Success","code":0}"#),
            Self::Elasticsearch => (StatusCode::OK, r#"{"took":1,"errors":false,"items":[]}"#),
            Self::SumoLogic => (StatusCode::OK, ""),
            Self::Loki => (StatusCode::NO_CONTENT, ""),
            Self::Syslog => (StatusCode::OK, ""),
        }
    }

    /// The signed lines of a decoded body, in order; `None` when it is not this kind's body.
    pub fn lines(self, decoded: &[u8]) -> Option<Vec<Cow<'_, [u8]>>> {
        let lines = auditrelay::body::lines(decoded);
        Some(match self {
            Self::Webhook | Self::SumoLogic => lines.map(Cow::Borrowed).collect(),
            Self::SplunkHec => lines
                .map(|envelope| {
                    Some(owned(
                        serde_json::from_slice::<Hec<'_>>(envelope).ok()?.event,
                    ))
                })
                .collect::<Option<_>>()?,
            Self::Elasticsearch => lines
                // Action lines (`{"create": …}`) and documents alternate.
                .skip(1)
                .step_by(2)
                .map(|doc| Some(owned(serde_json::from_slice::<Doc<'_>>(doc).ok()?.message)))
                .collect::<Option<_>>()?,
            Self::Datadog => serde_json::from_slice::<Vec<Doc<'_>>>(decoded)
                .ok()?
                .into_iter()
                .map(|entry| owned(entry.message))
                .collect(),
            Self::Loki => serde_json::from_slice::<Push>(decoded)
                .ok()?
                .streams
                .into_iter()
                .flat_map(|stream| stream.values)
                .map(|value| Cow::Owned(value.1.into_bytes()))
                .collect(),
            Self::Syslog => syslog_lines(decoded)?,
        })
    }
}

/// The MSG of each octet-counted RFC 5424 message (`LEN SP <PRI>1 TS HOST APP PROCID MSGID
/// SD MSG`) in `stream`, which holds whole messages only; `None` for anything else.
fn syslog_lines(mut stream: &[u8]) -> Option<Vec<Cow<'_, [u8]>>> {
    let mut lines = Vec::new();
    while !stream.is_empty() {
        let space = stream.iter().position(|b| *b == b' ')?;
        let len: usize = std::str::from_utf8(&stream[..space]).ok()?.parse().ok()?;
        let message = stream.get(space + 1..space + 1 + len)?;
        // The header's seven fields each end with a space; the message follows.
        let mut at = 0;
        for _ in 0..7 {
            at += message[at..].iter().position(|b| *b == b' ')? + 1;
        }
        lines.push(Cow::Borrowed(&message[at..]));
        stream = &stream[space + 1 + len..];
    }
    Some(lines)
}

fn owned(text: Cow<'_, str>) -> Cow<'_, [u8]> {
    match text {
        Cow::Borrowed(s) => Cow::Borrowed(s.as_bytes()),
        Cow::Owned(s) => Cow::Owned(s.into_bytes()),
    }
}

#[derive(Deserialize)]
struct Hec<'a> {
    #[serde(borrow)]
    event: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Doc<'a> {
    #[serde(borrow)]
    message: Cow<'a, str>,
}

#[derive(Deserialize)]
struct Push {
    streams: Vec<Stream>,
}

#[derive(Deserialize)]
struct Stream {
    values: Vec<(String, String, serde::de::IgnoredAny)>,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_kind_body_gives_back_its_lines() {
        let first = "<110>1 2023-11-14T22:13:20.123Z - auditrelay - authentication - a";
        let second = "<107>1 2023-11-14T22:13:20.124Z - auditrelay - authorization - b";
        let syslog = format!("{} {first}{} {second}", first.len(), second.len());
        let cases: [(Kind, &str); 7] = [
            (Kind::Syslog, &syslog),
            (Kind::Webhook, "a\nb"),
            (Kind::SumoLogic, "a\nb"),
            (
                Kind::SplunkHec,
                "{\"time\":1.0,\"event\":\"a\"}\n{\"event\":\"b\",\"index\":\"x\"}",
            ),
            (
                Kind::Elasticsearch,
                "{\"create\":{\"_id\":\"1\"}}\n{\"message\":\"a\"}\n{\"create\":{\"_id\":\"2\"}}\n{\"message\":\"b\"}\n",
            ),
            (
                Kind::Datadog,
                "[{\"message\":\"a\",\"service\":\"s\"},{\"message\":\"b\"}]",
            ),
            (
                Kind::Loki,
                "{\"streams\":[{\"stream\":{\"l\":\"v\"},\"values\":[[\"1\",\"a\",{}],[\"2\",\"b\",{}]]}]}",
            ),
        ];
        for (kind, body) in cases {
            let lines = kind.lines(body.as_bytes()).unwrap();
            let lines: Vec<&[u8]> = lines.iter().map(|l| l.as_ref()).collect();
            assert_eq!(lines, [b"a".as_slice(), b"b"], "{kind:?}");
        }
        assert!(Kind::Datadog.lines(b"a\nb").is_none());
    }
}

//! How one batch is framed for a kind: the request's content type, headers and query that are
//! not secrets, what opens and closes the body, what separates two records, and how one signed
//! line becomes a record.
//!
//! The signed line travels unchanged in every kind (as the record itself, or as a JSON string
//! inside it), so `auditrelay verify` checks it from any SIEM. The event's stable id
//! (DECISIONS.md D13) goes where the kind has a place for it: the `_bulk` action's `_id`, HEC
//! `fields`, a Datadog attribute, Loki structured metadata.

use serde_json::Value;
use uuid::Uuid;

use super::settings::{Kind, LOKI_REPLAY_LABEL, SyslogFraming};
use crate::batch::Frame;
use crate::ids::{OrgId, PortalId, Region};
use crate::timestamp::Timestamp;

/// What a batch is sent for: the scope its events belong to, and the replay job sending it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stream {
    pub org_id: OrgId,
    pub region: Region,
    pub portal_id: Option<PortalId>,
    /// The replay job, when the batch is a replay's.
    pub replay: Option<Uuid>,
}

impl Stream {
    /// `template` with its placeholders filled in (`settings`' module documentation).
    pub fn expand(&self, template: &str) -> String {
        template
            .replace("{org_id}", &self.org_id.to_string())
            .replace("{region}", self.region.as_str())
            .replace(
                "{portal_id}",
                &self.portal_id.map(|p| p.to_string()).unwrap_or_default(),
            )
    }
}

/// What a record says about its event besides the line.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordMeta {
    pub seq: i64,
    pub ts: Timestamp,
    pub id: Uuid,
    /// A syslog message's MSGID (the event's type, or `checkpoint` for a checkpoint event) and
    /// the CEF severity (0–10) its PRI is made from.
    pub msgid: &'static str,
    pub severity: u8,
}

impl RecordMeta {
    pub fn key(&self) -> RecordKey {
        RecordKey {
            seq: self.seq,
            ts: self.ts,
        }
    }
}

/// A record as a receiver's answer can name it: by its place in the batch, or by its event's
/// `seq` and time. (What judging an answer needs: no event id, which costs a SHA-256.)
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RecordKey {
    pub seq: i64,
    pub ts: Timestamp,
}

impl RecordKey {
    /// The event's Loki timestamp in nanoseconds: its millisecond time, with the last six
    /// digits of its `seq` as the nanoseconds, so that two events of one millisecond are two
    /// entries (Loki keeps one of two entries with the same time and line), the value is the
    /// same whenever the event is sent, and an ignored entry named by its time is found again.
    pub fn loki_nanos(&self) -> i128 {
        i128::from(self.ts.as_millis()) * 1_000_000 + i128::from(self.seq.rem_euclid(1_000_000))
    }
}

/// The framing of one kind's batches for one [`Stream`].
#[derive(Debug, Clone)]
pub struct Framer {
    shape: Shape,
    content_type: &'static str,
    headers: Vec<(&'static str, String)>,
    query: Vec<(&'static str, String)>,
    open: Vec<u8>,
    separator: &'static [u8],
    close: Vec<u8>,
    /// The fields every record of the batch shares, ready to append (JSON members with a
    /// leading comma), for the shapes that have them.
    shared: Vec<u8>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Shape {
    /// The signed lines as they are, one per line.
    Lines,
    HecEvent,
    Datadog,
    Bulk,
    Loki,
    /// RFC 5424 messages, counted (`MSG-LEN SP MSG`, RFC 5425) or ended by a line feed.
    Syslog {
        octet_counting: bool,
    },
}

impl Framer {
    /// The framing of `kind`'s batches for `stream`, to `endpoint` (Splunk's path picks the
    /// shape) from the destination `destination_id` (Splunk's channel).
    pub fn new(kind: &Kind, stream: &Stream, endpoint: &str, destination_id: Uuid) -> Self {
        let mut framer = Self::lines();
        let expand = |value: &Option<String>| value.as_deref().map(|v| stream.expand(v));
        match kind {
            Kind::Webhook => {}
            Kind::SplunkHec(hec) => {
                // A channel is required by the raw endpoint and by acknowledgement; the
                // destination's id is a stable one.
                framer
                    .headers
                    .push(("x-splunk-request-channel", destination_id.to_string()));
                let metadata = [
                    ("host", expand(&hec.host)),
                    ("source", expand(&hec.source)),
                    ("sourcetype", expand(&hec.sourcetype)),
                    ("index", expand(&hec.index)),
                ];
                if is_hec_raw(endpoint) {
                    framer.query = metadata
                        .into_iter()
                        .filter_map(|(name, value)| Some((name, value?)))
                        .collect();
                } else {
                    framer.shape = Shape::HecEvent;
                    framer.content_type = "application/json";
                    framer.shared = members(metadata);
                }
            }
            Kind::Datadog(dd) => {
                framer.shape = Shape::Datadog;
                framer.content_type = "application/json";
                framer.open = b"[".to_vec();
                framer.separator = b",";
                framer.close = b"]".to_vec();
                framer.shared = members([
                    (
                        "ddsource",
                        Some(expand(&dd.ddsource).unwrap_or_else(|| "auditrelay".into())),
                    ),
                    (
                        "service",
                        Some(expand(&dd.service).unwrap_or_else(|| "auditrelay".into())),
                    ),
                    ("ddtags", expand(&dd.ddtags)),
                    ("hostname", expand(&dd.hostname)),
                ]);
            }
            Kind::Elasticsearch => {
                framer.shape = Shape::Bulk;
                framer.content_type = "application/x-ndjson";
                // `_bulk` requires the body's final newline.
                framer.close = b"\n".to_vec();
            }
            Kind::SumoLogic(sumo) => {
                framer.headers = [
                    ("x-sumo-category", expand(&sumo.category)),
                    ("x-sumo-name", expand(&sumo.name)),
                    ("x-sumo-host", expand(&sumo.host)),
                    ("x-sumo-fields", expand(&sumo.fields)),
                ]
                .into_iter()
                .filter_map(|(name, value)| Some((name, value?)))
                .collect();
            }
            Kind::Loki(loki) => {
                framer.shape = Shape::Loki;
                framer.content_type = "application/json";
                framer.separator = b",";
                let mut labels = serde_json::Map::new();
                labels.insert("source".into(), "auditrelay".into());
                labels.insert("org_id".into(), stream.org_id.to_string().into());
                labels.insert("region".into(), stream.region.as_str().into());
                if let Some(portal) = stream.portal_id {
                    labels.insert("portal_id".into(), portal.to_string().into());
                }
                for (name, value) in &loki.labels {
                    labels.insert(name.clone(), stream.expand(value).into());
                }
                if let Some(job) = stream.replay {
                    labels.insert(LOKI_REPLAY_LABEL.into(), job.to_string().into());
                }
                framer.open = format!(
                    r#"{{"streams":[{{"stream":{},"values":["#,
                    Value::Object(labels)
                )
                .into_bytes();
                framer.close = b"]}]}".to_vec();
            }
            Kind::Syslog(syslog) => {
                let octet_counting = syslog.framing == SyslogFraming::OctetCounting;
                framer.shape = Shape::Syslog { octet_counting };
                framer.content_type = "application/syslog";
                if octet_counting {
                    framer.separator = b"";
                } else {
                    framer.close = b"\n".to_vec();
                }
                // Expanded, it may be empty (`{portal_id}` for the organization's events) or
                // longer than RFC 5424's 255: the nil value, or the first 255 bytes (ASCII).
                let mut hostname = expand(&syslog.hostname).unwrap_or_default();
                hostname.truncate(255);
                if hostname.is_empty() {
                    hostname.push('-');
                }
                framer.shared = hostname.into_bytes();
            }
        }
        framer
    }

    /// Konnect's framing, the `webhook` kind's: the signed lines as `text/plain`, one per line,
    /// whatever the stream.
    pub fn lines() -> Self {
        Self {
            shape: Shape::Lines,
            content_type: "text/plain",
            headers: Vec::new(),
            query: Vec::new(),
            open: Vec::new(),
            separator: b"\n",
            close: Vec::new(),
            shared: Vec::new(),
        }
    }

    pub fn content_type(&self) -> &'static str {
        self.content_type
    }

    /// Headers every request of the batch carries, none of them a secret.
    pub fn headers(&self) -> &[(&'static str, String)] {
        &self.headers
    }

    /// Query parameters added to the endpoint (Splunk's raw endpoint takes its metadata so).
    pub fn query(&self) -> &[(&'static str, String)] {
        &self.query
    }

    /// How a batch's body lays its records out: what opens and closes it, what separates two.
    pub fn frame(&self) -> Frame<'_> {
        Frame {
            open: &self.open,
            separator: self.separator,
            close: &self.close,
        }
    }

    /// Whether records are the signed lines as they are (a batch is then built without a
    /// copy of each line).
    pub fn is_lines(&self) -> bool {
        self.shape == Shape::Lines
    }

    /// Appends the record of the signed `line` of the event `meta`.
    pub fn write_record(&self, meta: &RecordMeta, line: &[u8], out: &mut Vec<u8>) {
        let id = meta.id.hyphenated();
        match self.shape {
            Shape::Lines => out.extend_from_slice(line),
            Shape::HecEvent => {
                let millis = meta.ts.as_millis();
                out.extend_from_slice(
                    format!(
                        r#"{{"time":{}.{:03},"fields":{{"event_id":"{id}"}},"event":"#,
                        millis.div_euclid(1000),
                        millis.rem_euclid(1000)
                    )
                    .as_bytes(),
                );
                json_string(line, out);
                out.extend_from_slice(&self.shared);
                out.push(b'}');
            }
            Shape::Datadog => {
                out.extend_from_slice(
                    format!(
                        r#"{{"event_id":"{id}","timestamp":{},"message":"#,
                        meta.ts.as_millis()
                    )
                    .as_bytes(),
                );
                json_string(line, out);
                out.extend_from_slice(&self.shared);
                out.push(b'}');
            }
            Shape::Bulk => {
                out.extend_from_slice(
                    format!(
                        "{{\"create\":{{\"_id\":\"{id}\"}}}}\n{{\"@timestamp\":\"{}\",\"event_id\":\"{id}\",\"message\":",
                        meta.ts.to_rfc3339_millis()
                    )
                    .as_bytes(),
                );
                json_string(line, out);
                out.push(b'}');
            }
            Shape::Loki => {
                out.extend_from_slice(format!(r#"["{}","#, meta.key().loki_nanos()).as_bytes());
                json_string(line, out);
                out.extend_from_slice(format!(r#",{{"event_id":"{id}"}}]"#).as_bytes());
            }
            Shape::Syslog { octet_counting } => {
                // PRI: facility 13 (log audit) and the severity; VERSION 1; TIMESTAMP to the
                // millisecond; HOSTNAME; APP-NAME; no PROCID; MSGID the event's type; no
                // STRUCTURED-DATA; MSG the signed line (RFC 5424 §6).
                let header = format!(
                    "<{}>1 {} {} auditrelay - {} - ",
                    13 * 8 + syslog_severity(meta.severity),
                    meta.ts.to_rfc3339_millis(),
                    String::from_utf8_lossy(&self.shared),
                    meta.msgid,
                );
                if octet_counting {
                    let len = header.len() + line.len();
                    out.extend_from_slice(len.to_string().as_bytes());
                    out.push(b' ');
                }
                out.extend_from_slice(header.as_bytes());
                out.extend_from_slice(line);
            }
        }
    }
}

/// The syslog severity (RFC 5424 §6.2.1: 2 critical … 6 informational) of a CEF severity.
pub fn syslog_severity(cef: u8) -> u8 {
    match cef {
        0..=1 => 6,
        2..=3 => 5,
        4..=6 => 4,
        7..=8 => 3,
        _ => 2,
    }
}

/// Whether a Splunk endpoint is the raw one (`…/services/collector/raw`).
pub fn is_hec_raw(endpoint: &str) -> bool {
    let path = endpoint.split(['?', '#']).next().unwrap_or(endpoint);
    path.trim_end_matches('/').ends_with("/raw")
}

/// `,"name":"value"` for each member that has a value.
fn members<const N: usize>(members: [(&str, Option<String>); N]) -> Vec<u8> {
    let mut out = Vec::new();
    for (name, value) in members {
        if let Some(value) = value {
            out.extend_from_slice(format!(",\"{name}\":").as_bytes());
            json_string(value.as_bytes(), &mut out);
        }
    }
    out
}

/// Appends `text` as a JSON string. Lines are UTF-8 (the formats render from strings); bytes
/// that are not would be replaced rather than make the body invalid JSON.
fn json_string(text: &[u8], out: &mut Vec<u8>) {
    let text = String::from_utf8_lossy(text);
    serde_json::to_writer(&mut *out, text.as_ref()).expect("writing into a Vec cannot fail");
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::event::EventType;
    use crate::kind::settings::{Datadog, Loki, SplunkHec, SumoLogic};

    fn stream(replay: Option<Uuid>) -> Stream {
        Stream {
            org_id: OrgId::from_uuid(Uuid::from_u128(1)),
            region: Region::parse("eu").unwrap(),
            portal_id: None,
            replay,
        }
    }

    fn meta(ts_ms: i64, seq: i64) -> RecordMeta {
        RecordMeta {
            seq,
            ts: Timestamp::from_millis(ts_ms),
            id: Uuid::from_u128(seq as u128),
            msgid: EventType::Authentication.as_str(),
            severity: 1,
        }
    }

    /// The body of a batch of `lines` (one event each, `seq` 1, 2, …).
    fn body(framer: &Framer, lines: &[&str]) -> String {
        let frame = framer.frame();
        let mut out = frame.open.to_vec();
        for (i, line) in lines.iter().enumerate() {
            if i > 0 {
                out.extend_from_slice(frame.separator);
            }
            framer.write_record(
                &meta(1_700_000_000_123, i as i64 + 1),
                line.as_bytes(),
                &mut out,
            );
        }
        out.extend_from_slice(frame.close);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn a_webhook_gets_the_lines_as_they_are() {
        let framer = Framer::new(&Kind::Webhook, &stream(None), "https://x/", Uuid::nil());
        assert_eq!(body(&framer, &["a", "b"]), "a\nb");
        assert!(framer.is_lines());
        assert_eq!(framer.content_type(), "text/plain");
    }

    #[test]
    fn hec_events_are_envelopes_one_after_another_not_an_array() {
        let kind = Kind::SplunkHec(SplunkHec {
            index: Some("audit".into()),
            sourcetype: Some("kong:{region}".into()),
            ..SplunkHec::default()
        });
        let endpoint = "https://splunk:8088/services/collector/event";
        let framer = Framer::new(&kind, &stream(None), endpoint, Uuid::from_u128(9));
        let text = body(&framer, &["CEF:0|a", "CEF:0|\"b\""]);
        let envelopes: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(
            envelopes[1],
            json!({
                "time": 1_700_000_000.123,
                "event": "CEF:0|\"b\"",
                "fields": {"event_id": Uuid::from_u128(2).to_string()},
                "sourcetype": "kong:eu",
                "index": "audit",
            })
        );
        assert_eq!(
            framer.headers()[0],
            ("x-splunk-request-channel", Uuid::from_u128(9).to_string())
        );
    }

    #[test]
    fn hec_raw_takes_lines_and_its_metadata_in_the_query() {
        let kind = Kind::SplunkHec(SplunkHec {
            source: Some("auditrelay".into()),
            ..SplunkHec::default()
        });
        let endpoint = "https://splunk:8088/services/collector/raw/";
        let framer = Framer::new(&kind, &stream(None), endpoint, Uuid::nil());
        assert_eq!(body(&framer, &["a", "b"]), "a\nb");
        assert_eq!(framer.query(), [("source", "auditrelay".to_owned())]);
    }

    #[test]
    fn datadog_gets_one_array_with_its_attributes() {
        let kind = Kind::Datadog(Datadog {
            ddtags: Some("env:prod,org:{org_id}".into()),
            ..Datadog::default()
        });
        let framer = Framer::new(&kind, &stream(None), "https://x/api/v2/logs", Uuid::nil());
        let entries: serde_json::Value = serde_json::from_str(&body(&framer, &["a", "b"])).unwrap();
        assert_eq!(
            entries[0],
            json!({
                "message": "a",
                "event_id": Uuid::from_u128(1).to_string(),
                "timestamp": 1_700_000_000_123_i64,
                "ddsource": "auditrelay",
                "service": "auditrelay",
                "ddtags": format!("env:prod,org:{}", Uuid::from_u128(1)),
            })
        );
        assert_eq!(entries.as_array().unwrap().len(), 2);
    }

    #[test]
    fn bulk_pairs_a_create_action_with_each_document_and_ends_in_a_newline() {
        let framer = Framer::new(
            &Kind::Elasticsearch,
            &stream(None),
            "https://x/_bulk",
            Uuid::nil(),
        );
        let text = body(&framer, &["a", "b"]);
        assert!(text.ends_with("}\n"), "{text}");
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert_eq!(lines.len(), 4);
        assert_eq!(
            lines[2],
            json!({"create": {"_id": Uuid::from_u128(2).to_string()}})
        );
        assert_eq!(
            lines[3],
            json!({
                "@timestamp": "2023-11-14T22:13:20.123Z",
                "event_id": Uuid::from_u128(2).to_string(),
                "message": "b",
            })
        );
        assert_eq!(framer.content_type(), "application/x-ndjson");
    }

    #[test]
    fn sumo_settings_become_its_headers() {
        let kind = Kind::SumoLogic(SumoLogic {
            category: Some("kong/{region}".into()),
            fields: Some("org={org_id}".into()),
            ..SumoLogic::default()
        });
        let framer = Framer::new(
            &kind,
            &stream(None),
            "https://x/receiver/v1/http/t",
            Uuid::nil(),
        );
        assert_eq!(
            framer.headers(),
            [
                ("x-sumo-category", "kong/eu".to_owned()),
                ("x-sumo-fields", format!("org={}", Uuid::from_u128(1))),
            ]
        );
        assert_eq!(body(&framer, &["a", "b"]), "a\nb");
    }

    #[test]
    fn loki_gets_one_stream_and_a_replay_gets_its_own() {
        let kind = Kind::Loki(Loki {
            labels: [("env".to_owned(), "prod".to_owned())].into(),
        });
        let job = Uuid::from_u128(77);
        let framer = Framer::new(
            &kind,
            &stream(Some(job)),
            "https://x/loki/api/v1/push",
            Uuid::nil(),
        );
        let push: serde_json::Value = serde_json::from_str(&body(&framer, &["a", "b"])).unwrap();
        assert_eq!(
            push["streams"][0]["stream"],
            json!({
                "source": "auditrelay",
                "org_id": Uuid::from_u128(1).to_string(),
                "region": "eu",
                "env": "prod",
                "auditrelay_replay": job.to_string(),
            })
        );
        assert_eq!(
            push["streams"][0]["values"][1],
            json!(["1700000000123000002", "b", {"event_id": Uuid::from_u128(2).to_string()}])
        );
    }

    #[test]
    fn loki_nanos_tell_the_events_of_one_millisecond_apart() {
        let nanos = |ts, seq| meta(ts, seq).key().loki_nanos();
        assert_eq!(nanos(5, 1_000_001), 5_000_001);
        assert_ne!(nanos(5, 1), nanos(5, 2));
    }

    /// RFC 5424 messages: PRI from facility 13 and the event's severity, the time to the
    /// millisecond, the hostname (or `-`), `auditrelay`, the event's type as MSGID, the line
    /// as MSG; counted as RFC 5425 frames them, or each ended by a line feed.
    #[test]
    fn syslog_messages_are_counted_or_ended_by_a_line_feed() {
        use crate::kind::settings::{Syslog, SyslogFraming};
        let counted = Kind::Syslog(Syslog {
            hostname: Some("relay-1".into()),
            ..Syslog::default()
        });
        let framer = Framer::new(&counted, &stream(None), "tls://siem:6514", Uuid::nil());
        let mut denied = meta(1_700_000_000_123, 2);
        denied.severity = 7;
        denied.msgid = EventType::Authorization.as_str();
        let mut out = Vec::new();
        framer.write_record(&meta(1_700_000_000_123, 1), b"CEF:0|a", &mut out);
        out.extend_from_slice(framer.frame().separator);
        framer.write_record(&denied, b"CEF:0|b", &mut out);
        out.extend_from_slice(framer.frame().close);
        let first = "<110>1 2023-11-14T22:13:20.123Z relay-1 auditrelay - authentication - CEF:0|a";
        let second = "<107>1 2023-11-14T22:13:20.123Z relay-1 auditrelay - authorization - CEF:0|b";
        assert_eq!(
            String::from_utf8(out).unwrap(),
            format!("{} {first}{} {second}", first.len(), second.len())
        );

        let lf = Kind::Syslog(Syslog {
            framing: SyslogFraming::Lf,
            ..Syslog::default()
        });
        let framer = Framer::new(&lf, &stream(None), "tls://siem:6514", Uuid::nil());
        assert_eq!(
            body(&framer, &["x", "y"]),
            "<110>1 2023-11-14T22:13:20.123Z - auditrelay - authentication - x\n\
             <110>1 2023-11-14T22:13:20.123Z - auditrelay - authentication - y\n"
        );
        assert_eq!(syslog_severity(10), 2);
        assert_eq!(syslog_severity(0), 6);
    }
}

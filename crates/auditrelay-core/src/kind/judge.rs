//! How a receiver's answer to one batch is judged: as a whole, by the retry policy from its
//! status (DECISIONS.md D3), or record by record where the receiver answers so, and what
//! Splunk's indexer acknowledgement says.
//!
//! Partial answers differ by receiver (`reference/siem-receivers.md`):
//! - Elasticsearch and OpenSearch answer `200` with `"errors": true` and one result per item.
//!   A `create` whose `_id` is already indexed fails with `409`: the event is there, so it
//!   counts as delivered, which makes every retry and replay idempotent;
//! - Splunk's HEC answers `400` (code 6) with the index of the first invalid envelope: those
//!   before it were indexed, the rest were not;
//! - Loki answers `400` naming each ignored entry by its time, and "total ignored: N out of
//!   M": the others were accepted.

use serde::Deserialize;

use super::frame::RecordKey;
use super::settings::Kind;

/// How an answer is judged.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judgement {
    /// The answer is about the batch as a whole: the retry policy judges its status.
    Whole,
    /// Splunk took the batch and will tell whether it is indexed: ask with this id.
    AwaitAck(u64),
    /// Splunk took the batch, with acknowledgement on, but gave no id to ask about it: nothing
    /// will say it is indexed, so the attempt failed, for this reason.
    Unacknowledged(String),
    /// Each record was answered on its own: one item per record, in the batch's order.
    PerRecord(Vec<Item>),
}

/// What became of one record.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Item {
    Delivered,
    /// Refused for now (back-pressure): send it again.
    Retry,
    /// Refused for good, with the receiver's reason: it goes to the refused list.
    Refused(String),
}

/// The longest reason kept for a refused record.
pub const MAX_REASON: usize = 500;

impl Kind {
    /// Whether answers are judged by their body, not by their status alone.
    pub fn judges_body(&self) -> bool {
        matches!(
            self,
            Self::SplunkHec(_) | Self::Elasticsearch | Self::Loki(_)
        )
    }

    /// Judges the answer `status` / `body` to a batch of `records`.
    pub fn judge(&self, status: u16, body: &[u8], records: &[RecordKey]) -> Judgement {
        match self {
            Self::SplunkHec(hec) => judge_hec(hec.ack, status, body, records.len()),
            Self::Elasticsearch => judge_bulk(status, body, records.len()),
            Self::Loki(_) => judge_loki(status, body, records),
            Self::Webhook | Self::Datadog(_) | Self::SumoLogic(_) | Self::Syslog(_) => {
                Judgement::Whole
            }
        }
    }
}

/// HEC's answer body.
#[derive(Deserialize)]
struct HecAnswer {
    #[serde(default)]
    code: Option<i64>,
    #[serde(default)]
    text: Option<String>,
    #[serde(rename = "ackId")]
    ack_id: Option<u64>,
    #[serde(rename = "invalid-event-number")]
    invalid_event_number: Option<usize>,
}

/// HEC's status code for "Invalid data format".
const HEC_INVALID_DATA_FORMAT: i64 = 6;

fn judge_hec(ack: bool, status: u16, body: &[u8], records: usize) -> Judgement {
    let answer = serde_json::from_slice::<HecAnswer>(body);
    if (200..300).contains(&status) && ack {
        // Without an id, a 2xx only says the data looked valid (a token without
        // acknowledgement, or an answer cut short): the batch would count as delivered on no
        // word that it is indexed, which is what acknowledgement was turned on to have.
        return match answer {
            Ok(HecAnswer {
                ack_id: Some(id), ..
            }) => Judgement::AwaitAck(id),
            _ => Judgement::Unacknowledged(
                "Splunk HEC answered without an ackId, so nothing confirms the batch is indexed: \
                 turn indexer acknowledgement on for this token, or off for this destination"
                    .to_owned(),
            ),
        };
    }
    let Ok(answer) = answer else {
        return Judgement::Whole;
    };
    if (200..300).contains(&status) {
        return Judgement::Whole;
    }
    match (status, answer.code, answer.invalid_event_number) {
        (400, Some(HEC_INVALID_DATA_FORMAT), Some(invalid)) if invalid < records => {
            let reason = reason_text(&format!(
                "Splunk HEC: {} (code 6)",
                answer.text.as_deref().unwrap_or("Invalid data format")
            ));
            Judgement::PerRecord(
                (0..records)
                    .map(|i| match i.cmp(&invalid) {
                        std::cmp::Ordering::Less => Item::Delivered,
                        std::cmp::Ordering::Equal => Item::Refused(reason.clone()),
                        std::cmp::Ordering::Greater => Item::Retry,
                    })
                    .collect(),
            )
        }
        _ => Judgement::Whole,
    }
}

/// What an acknowledgement query says about one batch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Ack {
    /// Indexed: the batch is delivered.
    Indexed,
    /// Not yet: ask again later.
    Pending,
    /// The receiver no longer knows the id or the channel: send the batch again.
    Lost(String),
}

/// The body of an acknowledgement query for `id`.
pub fn ack_query(id: u64) -> Vec<u8> {
    serde_json::to_vec(&serde_json::json!({ "acks": [id] })).expect("JSON always serializes")
}

/// Judges the answer to an acknowledgement query for `id`.
pub fn judge_ack(status: u16, body: &[u8], id: u64) -> Ack {
    #[derive(Deserialize)]
    struct Acks {
        acks: std::collections::BTreeMap<String, bool>,
    }
    if !(200..300).contains(&status) {
        // Busy or down: the batch may still be indexed; ask again until the wait runs out.
        return match status {
            429 | 500..=599 => Ack::Pending,
            _ => Ack::Lost(format!("the acknowledgement query was answered {status}")),
        };
    }
    match serde_json::from_slice::<Acks>(body) {
        Ok(acks) => match acks.acks.get(&id.to_string()) {
            Some(true) => Ack::Indexed,
            Some(false) => Ack::Pending,
            None => Ack::Lost(format!("the answer does not mention ack {id}")),
        },
        Err(_) => Ack::Lost("the acknowledgement answer is not what Splunk sends".into()),
    }
}

/// A `_bulk` answer.
#[derive(Deserialize)]
struct BulkAnswer {
    errors: bool,
    #[serde(default)]
    items: Vec<std::collections::BTreeMap<String, BulkItem>>,
}

#[derive(Deserialize)]
struct BulkItem {
    status: u16,
    #[serde(default)]
    error: Option<BulkError>,
}

#[derive(Deserialize)]
struct BulkError {
    #[serde(rename = "type", default)]
    kind: String,
    #[serde(default)]
    reason: String,
}

fn judge_bulk(status: u16, body: &[u8], records: usize) -> Judgement {
    if status != 200 {
        return Judgement::Whole;
    }
    let answer = match serde_json::from_slice::<BulkAnswer>(body) {
        Ok(answer) if !answer.errors => return Judgement::Whole,
        Ok(answer) if answer.items.len() == records => answer,
        // Not an answer to this body: nothing says what was indexed. `create` is idempotent,
        // so sending everything again is safe.
        _ => return Judgement::PerRecord(vec![Item::Retry; records]),
    };
    Judgement::PerRecord(
        answer
            .items
            .into_iter()
            .map(|item| {
                let Some(result) = item.into_values().next() else {
                    return Item::Retry;
                };
                match result.status {
                    200..=299 => Item::Delivered,
                    // Already indexed under this event's id.
                    409 => Item::Delivered,
                    429 | 500..=599 => Item::Retry,
                    status => {
                        let reason = result.error.map_or_else(
                            || format!("status {status}"),
                            |e| format!("{}: {}", e.kind, e.reason),
                        );
                        Item::Refused(reason_text(&format!("Elasticsearch: {reason}")))
                    }
                }
            })
            .collect(),
    )
}

fn judge_loki(status: u16, body: &[u8], records: &[RecordKey]) -> Judgement {
    let text = String::from_utf8_lossy(body);
    if status != 400 || !text.contains("total ignored:") {
        return Judgement::Whole;
    }
    let ignored: Vec<(i128, String)> = text
        .split("entry with timestamp ")
        .skip(1)
        .filter_map(|part| {
            let (time, rest) = part.split_once(" ignored, reason: '")?;
            let reason = rest.split_once("',").map_or(rest, |(reason, _)| reason);
            Some((parse_go_time(time)?, reason.to_owned()))
        })
        .collect();
    let items: Vec<Item> = records
        .iter()
        .map(|record| {
            let nanos = record.loki_nanos();
            match ignored.iter().find(|(at, _)| *at == nanos) {
                Some((_, reason)) => Item::Refused(reason_text(&format!("Loki: {reason}"))),
                None => Item::Delivered,
            }
        })
        .collect();
    let refused = items
        .iter()
        .filter(|i| matches!(i, Item::Refused(_)))
        .count();
    let said = text
        .split("total ignored: ")
        .nth(1)
        .and_then(|t| t.split_whitespace().next())
        .and_then(|n| n.parse::<usize>().ok());
    if said.is_some_and(|n| n != refused) {
        // The entries could not all be told apart: rather than count an ignored one as
        // delivered, every record is refused with Loki's words, to be sent again by hand.
        let reason = reason_text(&format!("Loki: {}", text.trim()));
        return Judgement::PerRecord(vec![Item::Refused(reason); records.len()]);
    }
    Judgement::PerRecord(items)
}

/// Go's `time.Time.String()` in UTC, as Loki writes an entry's time
/// (`2023-11-14 22:13:20.123000002 +0000 UTC`), in nanoseconds since the epoch.
fn parse_go_time(text: &str) -> Option<i128> {
    let text = text.strip_suffix(" +0000 UTC")?;
    let (date, clock) = text.split_once(' ')?;
    let (seconds, fraction) = clock.split_once('.').unwrap_or((clock, ""));
    let rfc3339 = format!("{date}T{seconds}Z");
    let whole =
        time::OffsetDateTime::parse(&rfc3339, &time::format_description::well_known::Rfc3339)
            .ok()?;
    if fraction.len() > 9 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let nanos: i128 = format!("{fraction:0<9}").parse().ok()?;
    Some(whole.unix_timestamp_nanos() + nanos)
}

/// `reason` cut to [`MAX_REASON`] bytes on a character boundary.
fn reason_text(reason: &str) -> String {
    let mut end = reason.len().min(MAX_REASON);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    reason[..end].to_owned()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;
    use crate::kind::settings::{Loki, SplunkHec};
    use crate::timestamp::Timestamp;

    fn records(n: usize) -> Vec<RecordKey> {
        (0..n)
            .map(|i| RecordKey {
                seq: i as i64 + 1,
                ts: Timestamp::from_millis(1_700_000_000_123),
            })
            .collect()
    }

    fn hec(ack: bool) -> Kind {
        Kind::SplunkHec(SplunkHec {
            ack,
            ..SplunkHec::default()
        })
    }

    fn bytes(value: serde_json::Value) -> Vec<u8> {
        serde_json::to_vec(&value).unwrap()
    }

    #[test]
    fn hec_success_is_whole_unless_an_ack_is_awaited() {
        let body = bytes(json!({"text": "Success", "code": 0, "ackId": 7}));
        assert_eq!(hec(false).judge(200, &body, &records(2)), Judgement::Whole);
        assert_eq!(
            hec(true).judge(200, &body, &records(2)),
            Judgement::AwaitAck(7)
        );
        let no_id = bytes(json!({"text": "Success", "code": 0}));
        assert_eq!(hec(false).judge(200, &no_id, &records(2)), Judgement::Whole);
    }

    /// With acknowledgement on, a 2xx that gives no id to ask about (a token without it, an
    /// answer cut short) is a failed attempt, never a delivery on no word that it is indexed.
    #[test]
    fn hec_success_without_an_ack_id_is_unacknowledged_when_acks_are_on() {
        let no_id = bytes(json!({"text": "Success", "code": 0}));
        for body in [
            &no_id[..],
            b"",
            b"<html>ok</html>",
            &no_id[..no_id.len() / 2],
        ] {
            let Judgement::Unacknowledged(why) = hec(true).judge(200, body, &records(2)) else {
                panic!("{:?}", String::from_utf8_lossy(body));
            };
            assert!(why.contains("without an ackId"), "{why}");
        }
        // A refusal is still the status's to judge.
        assert_eq!(hec(true).judge(503, b"", &records(2)), Judgement::Whole);
    }

    #[test]
    fn hec_invalid_event_number_splits_the_batch_there() {
        let body =
            bytes(json!({"text": "Invalid data format", "code": 6, "invalid-event-number": 1}));
        let Judgement::PerRecord(items) = hec(false).judge(400, &body, &records(3)) else {
            panic!("judged as a whole");
        };
        assert_eq!(items[0], Item::Delivered);
        assert!(matches!(&items[1], Item::Refused(r) if r.contains("Invalid data format")));
        assert_eq!(items[2], Item::Retry);
        // Other refusals are the batch's.
        let busy = bytes(json!({"text": "Server is busy", "code": 9}));
        assert_eq!(hec(false).judge(503, &busy, &records(3)), Judgement::Whole);
    }

    #[test]
    fn acks_are_read_for_the_id_asked() {
        let ok = bytes(json!({"acks": {"7": true}}));
        assert_eq!(judge_ack(200, &ok, 7), Ack::Indexed);
        assert_eq!(
            judge_ack(200, &bytes(json!({"acks": {"7": false}})), 7),
            Ack::Pending
        );
        assert!(matches!(judge_ack(200, &ok, 8), Ack::Lost(_)));
        assert_eq!(judge_ack(503, b"", 7), Ack::Pending);
        assert!(matches!(judge_ack(400, b"", 7), Ack::Lost(_)));
        assert_eq!(ack_query(7), br#"{"acks":[7]}"#);
    }

    #[test]
    fn bulk_items_are_judged_one_by_one_and_a_conflict_is_already_indexed() {
        let body = bytes(json!({"errors": true, "items": [
            {"create": {"_id": "a", "status": 201}},
            {"create": {"_id": "b", "status": 409, "error": {"type": "version_conflict_engine_exception", "reason": "exists"}}},
            {"create": {"_id": "c", "status": 429, "error": {"type": "es_rejected_execution_exception", "reason": "busy"}}},
            {"create": {"_id": "d", "status": 400, "error": {"type": "mapper_parsing_exception", "reason": "failed to parse field [rt]"}}},
        ]}));
        let Judgement::PerRecord(items) = Kind::Elasticsearch.judge(200, &body, &records(4)) else {
            panic!("judged as a whole");
        };
        assert_eq!(items[..3], [Item::Delivered, Item::Delivered, Item::Retry]);
        assert_eq!(
            items[3],
            Item::Refused(
                "Elasticsearch: mapper_parsing_exception: failed to parse field [rt]".into()
            )
        );
        let clean = bytes(json!({"errors": false, "items": []}));
        assert_eq!(
            Kind::Elasticsearch.judge(200, &clean, &records(4)),
            Judgement::Whole
        );
        assert_eq!(
            Kind::Elasticsearch.judge(429, b"", &records(4)),
            Judgement::Whole
        );
    }

    #[test]
    fn a_bulk_answer_that_is_not_about_this_body_sends_everything_again() {
        let body = bytes(json!({"errors": true, "items": [{"create": {"status": 500}}]}));
        assert_eq!(
            Kind::Elasticsearch.judge(200, &body, &records(2)),
            Judgement::PerRecord(vec![Item::Retry, Item::Retry])
        );
        // A 200 without Elasticsearch's answer (a proxy's, a body cut short) proves nothing.
        assert_eq!(
            Kind::Elasticsearch.judge(200, b"OK", &records(2)),
            Judgement::PerRecord(vec![Item::Retry, Item::Retry])
        );
    }

    #[test]
    fn loki_ignored_entries_are_found_by_their_time() {
        let batch = records(3);
        let second = batch[1].loki_nanos();
        assert_eq!(second, 1_700_000_000_123_000_002);
        let body = "entry with timestamp 2023-11-14 22:13:20.123000002 +0000 UTC ignored, \
                    reason: 'entry too far behind, oldest acceptable timestamp is: \
                    2023-11-14T22:00:00Z', for stream: {source=\"auditrelay\"},\n\
                    total ignored: 1 out of 3";
        let loki = Kind::Loki(Loki::default());
        let Judgement::PerRecord(items) = loki.judge(400, body.as_bytes(), &batch) else {
            panic!("judged as a whole");
        };
        assert_eq!(items[0], Item::Delivered);
        assert!(
            matches!(&items[1], Item::Refused(r) if r.starts_with("Loki: entry too far behind"))
        );
        assert_eq!(items[2], Item::Delivered);
        // A 400 about the request is the batch's.
        assert_eq!(
            loki.judge(400, b"error parsing labels", &batch),
            Judgement::Whole
        );
    }

    #[test]
    fn loki_entries_that_cannot_be_told_apart_are_all_refused() {
        let body =
            b"entry with timestamp sometime ignored, reason: 'x',\ntotal ignored: 1 out of 2";
        let Judgement::PerRecord(items) = Kind::Loki(Loki::default()).judge(400, body, &records(2))
        else {
            panic!("judged as a whole");
        };
        assert!(items.iter().all(|i| matches!(i, Item::Refused(_))));
    }

    #[test]
    fn go_times_parse_with_any_fraction() {
        assert_eq!(
            parse_go_time("1970-01-01 00:00:01 +0000 UTC"),
            Some(1_000_000_000)
        );
        assert_eq!(
            parse_go_time("1970-01-01 00:00:00.5 +0000 UTC"),
            Some(500_000_000)
        );
        assert_eq!(parse_go_time("1970-01-01 00:00:00.5 +0100 CET"), None);
    }
}

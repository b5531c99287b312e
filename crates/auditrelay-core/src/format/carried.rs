//! What a line of a destination with `integrity` carries of the tamper-evident log
//! (DECISIONS.md S27), read back in any of our formats: an event's place in its log, or a
//! checkpoint event. This is what `verify` feeds the completeness check (`completeness`) with.
//!
//! Where each format keeps it:
//! - CEF, JSON and CPS: an event's `log`, `log_index` and `leaf_hash` extensions; a checkpoint
//!   event is the record named `Log checkpoint`, with `rt`, `log`, `previous_size`,
//!   `previous_frontier`, `checkpoint_interval` and `checkpoint`.
//! - OCSF: an event's `metadata.log_name`, `metadata.sequence` and `unmapped.leaf_hash`; a
//!   checkpoint event is a Base Event [0] with the same members as the record in `unmapped`,
//!   its log in `metadata.log_name` and its time in `time`.
//!
//! Reading says nothing of a line's signature: the caller verifies it first.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde_json::{Map, Value as Json};

use super::error::ParseError;
use super::parse::parse_line;
use super::pull::parse_object;
use super::record::{CHECKPOINT_NAME, Record, Value};
use crate::integrity::CheckpointEvent;
use crate::merkle::Hash;
use crate::timestamp::Timestamp;

/// What a line carries of the log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Carried {
    /// An event, at `index` in `log`, whose leaf hash is `leaf_hash`.
    Leaf {
        log: String,
        index: u64,
        leaf_hash: Hash,
    },
    Checkpoint(CheckpointEvent),
}

fn field(key: &str, what: &'static str) -> ParseError {
    ParseError::Field {
        key: key.to_owned(),
        what,
    }
}

/// What `line` carries of the log: `None` for a line of a destination without `integrity`.
pub fn carried(line: &[u8]) -> Result<Option<Carried>, ParseError> {
    if super::ocsf::is_ocsf(line) {
        let object = parse_object(line).map_err(|what| ParseError::Json { at: 0, what })?;
        return from_ocsf(&object);
    }
    from_record(&parse_line(line)?.record)
}

fn from_record(record: &Record) -> Result<Option<Carried>, ParseError> {
    let text = |key: &'static str| match record.get(key) {
        Some(Value::Str(s)) => Ok(s.as_str()),
        Some(_) => Err(field(key, "must be text")),
        None => Err(field(key, "is missing")),
    };
    let number = |key: &'static str| match record.get(key) {
        Some(Value::Int(n)) => u64::try_from(*n).map_err(|_| field(key, "must not be negative")),
        Some(_) => Err(field(key, "must be a whole number")),
        None => Err(field(key, "is missing")),
    };
    if record.header.name == CHECKPOINT_NAME {
        let signed_at = match record.get("rt") {
            Some(Value::Int(ms)) => Timestamp::from_millis(*ms),
            _ => return Err(field("rt", "must be the checkpoint's time in milliseconds")),
        };
        return Ok(Some(Carried::Checkpoint(CheckpointEvent {
            log: text("log")?.to_owned(),
            portal: false,
            signed_at,
            note: text("checkpoint")?.to_owned(),
            previous_size: number("previous_size")?,
            previous_frontier: frontier(text("previous_frontier")?)?,
            interval_secs: number("checkpoint_interval")?,
        })));
    }
    if record.get("log_index").is_none() {
        return Ok(None);
    }
    Ok(Some(Carried::Leaf {
        log: text("log")?.to_owned(),
        index: number("log_index")?,
        leaf_hash: leaf_hash(text("leaf_hash")?)?,
    }))
}

fn from_ocsf(object: &Map<String, Json>) -> Result<Option<Carried>, ParseError> {
    let empty = Map::new();
    let member = |key: &str| object.get(key).and_then(Json::as_object).unwrap_or(&empty);
    let (metadata, unmapped) = (member("metadata"), member("unmapped"));
    fn text<'m>(from: &'m Map<String, Json>, key: &'static str) -> Result<&'m str, ParseError> {
        from.get(key)
            .and_then(Json::as_str)
            .ok_or_else(|| field(key, "must be text"))
    }
    let number = |from: &Map<String, Json>, key: &'static str| {
        from.get(key)
            .and_then(Json::as_u64)
            .ok_or_else(|| field(key, "must be a whole number"))
    };
    if object.get("class_uid").and_then(Json::as_i64) == Some(0) {
        let signed_at = object
            .get("time")
            .and_then(Json::as_i64)
            .ok_or_else(|| field("time", "must be the checkpoint's time in milliseconds"))?;
        return Ok(Some(Carried::Checkpoint(CheckpointEvent {
            log: text(metadata, "log_name")?.to_owned(),
            portal: false,
            signed_at: Timestamp::from_millis(signed_at),
            note: text(unmapped, "checkpoint")?.to_owned(),
            previous_size: number(unmapped, "previous_size")?,
            previous_frontier: frontier(text(unmapped, "previous_frontier")?)?,
            interval_secs: number(unmapped, "checkpoint_interval")?,
        })));
    }
    if !unmapped.contains_key("leaf_hash") {
        return Ok(None);
    }
    Ok(Some(Carried::Leaf {
        log: text(metadata, "log_name")?.to_owned(),
        index: number(metadata, "sequence")?,
        leaf_hash: leaf_hash(text(unmapped, "leaf_hash")?)?,
    }))
}

fn leaf_hash(text: &str) -> Result<Hash, ParseError> {
    STANDARD
        .decode(text)
        .ok()
        .and_then(|bytes| Hash::try_from(bytes).ok())
        .ok_or_else(|| field("leaf_hash", "must be base64 of 32 bytes"))
}

fn frontier(text: &str) -> Result<Vec<Hash>, ParseError> {
    CheckpointEvent::parse_frontier(text).ok_or_else(|| {
        field(
            "previous_frontier",
            "must be base64 hashes, comma-separated",
        )
    })
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;
    use crate::format::{Format, FormatConfig, sign_checkpoint, sign_event_with_id};
    use crate::integrity::LogPlace;
    use crate::signing::SigningKey;
    use crate::{Event, EventDetail, OrgId, Region};

    fn event() -> Event {
        Event {
            ts: Timestamp::from_millis(1_750_688_927_556),
            org_id: OrgId::from_uuid(uuid::Uuid::from_u128(7)),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: Some("p".into()),
            principal_name: None,
            actor_id: None,
            client_ip: None,
            uri: None,
            user_agent: None,
            trace_id: None,
            detail: EventDetail::Access {
                method: "GET".into(),
                query: "a=b".into(),
                status_code: 200,
                kong_initiated: None,
            },
        }
    }

    fn checkpoint() -> CheckpointEvent {
        CheckpointEvent {
            log: "auditrelay/01/org/us".into(),
            portal: false,
            signed_at: Timestamp::from_millis(1_750_688_987_000),
            note: "auditrelay/01/org/us\n3\nAAAA=\n\n\u{2014} auditrelay/01 AAAA\n".into(),
            previous_size: 2,
            previous_frontier: vec![[1; 32], [2; 32]],
            interval_secs: 60,
        }
    }

    /// In every format, an event line carries its place and a checkpoint line its event; a
    /// line without `integrity` carries nothing.
    #[test]
    fn every_format_reads_back_what_it_carries() {
        let key = SigningKey::from_seed(&[3; 32]);
        let cfg = FormatConfig::default();
        let place = LogPlace {
            log: Arc::from("auditrelay/01/org/us"),
            index: 41,
            leaf_hash: [5; 32],
        };
        for format in Format::ALL {
            let mut line = Vec::new();
            sign_event_with_id(format, &event(), None, Some(&place), &cfg, &key, &mut line);
            assert_eq!(
                carried(&line).unwrap(),
                Some(Carried::Leaf {
                    log: place.log.to_string(),
                    index: 41,
                    leaf_hash: [5; 32]
                }),
                "{format}: {}",
                String::from_utf8_lossy(&line)
            );
            line.clear();
            sign_event_with_id(format, &event(), None, None, &cfg, &key, &mut line);
            assert_eq!(carried(&line).unwrap(), None, "{format}");
            line.clear();
            sign_checkpoint(format, &checkpoint(), &cfg, &key, &mut line);
            assert_eq!(
                carried(&line).unwrap(),
                Some(Carried::Checkpoint(checkpoint())),
                "{format}: {}",
                String::from_utf8_lossy(&line)
            );
            assert!(
                crate::format::verify_line(&line, &[key.public_key().clone()]).is_ok(),
                "{format}: a checkpoint line is signed like any other"
            );
        }
    }
}

//! The format-independent shape of a log line: a CEF-like header and ordered, typed extensions.
//!
//! CEF, JSON and CPS all carry the same fields; only the syntax differs. The mapping from an
//! [`Event`] to those fields (which keys, in which order, with which types) lives here once, so
//! the three renderers cannot drift apart and a parsed line compares equal to the record it came
//! from.
//!
//! There are two forms. [`Record`] is owned and public: what the parser returns and what tests
//! compare. [`View`] is the borrowed form the renderers read; building it from an event copies
//! no strings and allocates nothing, which keeps rendering off the allocator on the hot path.

use uuid::Uuid;

use crate::event::{Event, EventDetail};
use crate::timestamp::Timestamp;

/// The constant parts of every line. The defaults are Konnect's own values (DECISIONS.md K9.1).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FormatConfig {
    /// CEF "Device Vendor" (`event_vendor` in JSON).
    pub vendor: String,
    /// CEF "Device Product" of organization events.
    pub org_product: String,
    /// CEF "Device Product" of Dev Portal events (events with a `portal_id`).
    pub portal_product: String,
    /// The syslog host in front of a CEF line; JSON and CPS do not carry it.
    pub host: String,
    /// CEF "Device Version".
    pub version: String,
}

impl Default for FormatConfig {
    fn default() -> Self {
        Self {
            vendor: "KongInc".into(),
            org_product: "Konnect".into(),
            portal_product: "Dev-Portal".into(),
            host: "konghq.com".into(),
            version: "1.0".into(),
        }
    }
}

/// One log line's content, independent of its syntax.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    pub header: Header,
    /// In CEF order; JSON sorts them on output and the parser restores this order.
    pub extensions: Vec<Extension>,
}

/// The CEF header fields (and the `event_*`, `name`, `severity` keys of JSON).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Header {
    /// RFC 3339 UTC to the second, e.g. `2025-06-18T21:02:36Z`.
    pub event_ts: String,
    pub vendor: String,
    pub product: String,
    pub version: String,
    pub event_class_id: String,
    pub name: String,
    pub severity: u8,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Extension {
    pub key: String,
    pub value: Value,
}

/// An extension value with the JSON type DECISIONS.md D7 gives its key.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value {
    Str(String),
    Int(i64),
    Bool(bool),
}

/// How a key's value is typed in JSON, and so how CEF text is read back (DECISIONS.md D7).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Kind {
    Str,
    Int,
    Bool,
}

pub(crate) fn kind_of(key: &str) -> Kind {
    match key {
        "rt" | "status" | "log_index" | "previous_size" | "checkpoint_interval" => Kind::Int,
        "success" | "granted" => Kind::Bool,
        _ => Kind::Str,
    }
}

/// The extension order of each event type, every optional key included (DECISIONS.md K9.1).
/// JSON sorts keys, so the parser needs this to give back the order the CEF form uses.
pub(crate) const AUTHENTICATION_ORDER: &[&str] = &[
    "rt",
    "src",
    "request",
    "success",
    "org_id",
    "portal_id",
    "principal_id",
    "trace_id",
    "user_agent",
    "principal_name",
    // A destination with `integrity` adds the event's place in its log (DECISIONS.md S27).
    "log",
    "log_index",
    "leaf_hash",
];
pub(crate) const AUTHORIZATION_ORDER: &[&str] = &[
    "rt",
    "src",
    "action",
    "granted",
    "org_id",
    "principal_id",
    "actor_id",
    "kong_initiated",
    "trace_id",
    "user_agent",
    "principal_name",
    // A destination with `integrity` adds the event's place in its log (DECISIONS.md S27).
    "log",
    "log_index",
    "leaf_hash",
];
pub(crate) const ACCESS_ORDER: &[&str] = &[
    "rt",
    "src",
    "request",
    "act",
    "status",
    "org_id",
    "principal_id",
    "actor_id",
    "user_agent",
    "trace_id",
    "query",
    "kong_initiated",
    "principal_name",
    // A destination with `integrity` adds the event's place in its log (DECISIONS.md S27).
    "log",
    "log_index",
    "leaf_hash",
];

const AUTHENTICATION_CLASS_PREFIX: &str = "AUTHENTICATION_TYPE_";
const AUTHENTICATION_NAME_PREFIX: &str = "AUTHENTICATION_OUTCOME_";
const AUTHORIZATION_NAME_PREFIX: &str = "Authz.";
const ACCESS_CLASS: &str = "KongGateway";
const ACCESS_NAME: &str = "Ingress";

/// The class id and name of a checkpoint event (DECISIONS.md S27), and its keys in CEF order.
pub(crate) const CHECKPOINT_CLASS: &str = "LogCheckpoint";
pub(crate) const CHECKPOINT_NAME: &str = "Log checkpoint";
pub(crate) const CHECKPOINT_ORDER: &[&str] = &[
    "rt",
    "log",
    "previous_size",
    "previous_frontier",
    "checkpoint_interval",
    "checkpoint",
];

/// The key order for a record with this CEF name; `None` for a name we do not produce.
/// The name, not the class id, identifies the type (DECISIONS.md K9.2).
pub(crate) fn order_for_name(name: &str) -> Option<&'static [&'static str]> {
    if name.starts_with(AUTHENTICATION_NAME_PREFIX) {
        Some(AUTHENTICATION_ORDER)
    } else if name.starts_with(AUTHORIZATION_NAME_PREFIX) {
        Some(AUTHORIZATION_ORDER)
    } else if name == ACCESS_NAME {
        Some(ACCESS_ORDER)
    } else if name == CHECKPOINT_NAME {
        Some(CHECKPOINT_ORDER)
    } else {
        None
    }
}

impl Record {
    /// The record of `event` under `cfg`.
    pub fn from_event(event: &Event, cfg: &FormatConfig) -> Self {
        View::from_event(event, cfg).to_record()
    }

    pub fn get(&self, key: &str) -> Option<&Value> {
        self.extensions
            .iter()
            .find(|e| e.key == key)
            .map(|e| &e.value)
    }
}

/// The record of a checkpoint event (DECISIONS.md S27): the header of an event of its log's
/// product, then `rt` (when it was signed), `log`, `previous_size`, `previous_frontier`,
/// `checkpoint_interval` (seconds) and `checkpoint` (the signed note).
pub(crate) fn checkpoint_record(
    checkpoint: &crate::integrity::CheckpointEvent,
    cfg: &FormatConfig,
) -> Record {
    let product = if checkpoint.portal {
        &cfg.portal_product
    } else {
        &cfg.org_product
    };
    let text = |key: &str, value: String| Extension {
        key: key.to_owned(),
        value: Value::Str(value),
    };
    let int = |key: &str, value: u64| Extension {
        key: key.to_owned(),
        value: Value::Int(i64::try_from(value).unwrap_or(i64::MAX)),
    };
    Record {
        header: Header {
            event_ts: checkpoint.signed_at.to_rfc3339_seconds(),
            vendor: cfg.vendor.clone(),
            product: product.clone(),
            version: cfg.version.clone(),
            event_class_id: CHECKPOINT_CLASS.to_owned(),
            name: CHECKPOINT_NAME.to_owned(),
            severity: 1,
        },
        extensions: vec![
            Extension {
                key: "rt".into(),
                value: Value::Int(checkpoint.signed_at.as_millis()),
            },
            text("log", checkpoint.log.clone()),
            int("previous_size", checkpoint.previous_size),
            text("previous_frontier", checkpoint.frontier_text()),
            int("checkpoint_interval", checkpoint.interval_secs),
            text("checkpoint", checkpoint.note.clone()),
        ],
    }
}

// ---------------------------------------------------------------------------------------------
// The borrowed form.

/// Header text, kept in pieces so that nothing has to be concatenated or formatted ahead of
/// writing it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Text<'a> {
    Str(&'a str),
    /// A constant prefix and a borrowed rest (`Authz.` + resource).
    Prefixed(&'static str, &'a str),
    /// An instant, written as RFC 3339 UTC to the second.
    Seconds(Timestamp),
}

/// A value as the renderers see it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum ValueRef<'a> {
    Str(&'a str),
    Int(i64),
    Bool(bool),
    /// Written in its hyphenated form; a string in every format.
    Uuid(Uuid),
}

/// Longest extension list an event produces (an access event with every option set, and its
/// place in its log).
const MAX_EVENT_EXTENSIONS: usize = 16;

#[derive(Debug, Clone)]
#[expect(
    clippy::large_enum_variant,
    reason = "the inline list is what keeps an event's view off the heap; views live on the stack"
)]
pub(crate) enum Extensions<'a> {
    Record(&'a [Extension]),
    Inline {
        items: [(&'static str, ValueRef<'a>); MAX_EVENT_EXTENSIONS],
        len: usize,
    },
}

/// What a renderer needs of a line, borrowed from an [`Event`] or a [`Record`].
#[derive(Debug, Clone)]
pub(crate) struct View<'a> {
    pub event_ts: Text<'a>,
    pub vendor: &'a str,
    pub product: &'a str,
    pub version: &'a str,
    pub event_class_id: Text<'a>,
    pub name: Text<'a>,
    pub severity: u8,
    pub extensions: Extensions<'a>,
}

/// Collects an event's extensions without allocating.
struct Inline<'a> {
    items: [(&'static str, ValueRef<'a>); MAX_EVENT_EXTENSIONS],
    len: usize,
}

impl<'a> Inline<'a> {
    fn push(&mut self, key: &'static str, value: ValueRef<'a>) {
        // The mapping below is the only caller and pushes at most MAX_EVENT_EXTENSIONS items.
        self.items[self.len] = (key, value);
        self.len += 1;
    }

    /// An always-present key: an absent value is written as the empty string (`user_agent=`).
    fn text(&mut self, key: &'static str, value: &'a Option<String>) {
        self.push(key, ValueRef::Str(value.as_deref().unwrap_or("")));
    }

    /// A bracketed key: present only when the value is set.
    fn opt(&mut self, key: &'static str, value: &'a Option<String>) {
        if let Some(v) = value {
            self.push(key, ValueRef::Str(v));
        }
    }

    /// `kong_initiated` is a string in every format (DECISIONS.md D7), and omitted rather than
    /// false.
    fn kong_initiated(&mut self, value: Option<bool>) {
        if let Some(v) = value {
            self.push(
                "kong_initiated",
                ValueRef::Str(if v { "true" } else { "false" }),
            );
        }
    }
}

impl<'a> View<'a> {
    pub(crate) fn from_event(event: &'a Event, cfg: &'a FormatConfig) -> Self {
        let mut x = Inline {
            items: [("", ValueRef::Int(0)); MAX_EVENT_EXTENSIONS],
            len: 0,
        };
        x.push("rt", ValueRef::Int(event.ts.as_millis()));
        x.text("src", &event.client_ip);
        let org_id = ValueRef::Uuid(*event.org_id.as_uuid());
        let (class, name) = match &event.detail {
            EventDetail::Authentication {
                outcome,
                authentication_type,
            } => {
                x.text("request", &event.uri);
                x.push("success", ValueRef::Bool(outcome.is_success()));
                x.push("org_id", org_id);
                if let Some(portal) = event.portal_id {
                    x.push("portal_id", ValueRef::Uuid(*portal.as_uuid()));
                }
                x.text("principal_id", &event.principal_id);
                x.text("trace_id", &event.trace_id);
                x.text("user_agent", &event.user_agent);
                (
                    Text::Prefixed(AUTHENTICATION_CLASS_PREFIX, authentication_type.as_upper()),
                    Text::Prefixed(AUTHENTICATION_NAME_PREFIX, outcome.as_upper()),
                )
            }
            EventDetail::Authorization {
                service,
                resource,
                action,
                granted,
                kong_initiated,
            } => {
                x.push("action", ValueRef::Str(action));
                x.push("granted", ValueRef::Bool(*granted));
                x.push("org_id", org_id);
                x.text("principal_id", &event.principal_id);
                x.opt("actor_id", &event.actor_id);
                x.kong_initiated(*kong_initiated);
                x.text("trace_id", &event.trace_id);
                x.text("user_agent", &event.user_agent);
                (
                    Text::Str(service),
                    Text::Prefixed(AUTHORIZATION_NAME_PREFIX, resource),
                )
            }
            EventDetail::Access {
                method,
                query,
                status_code,
                kong_initiated,
            } => {
                x.text("request", &event.uri);
                x.push("act", ValueRef::Str(method));
                x.push("status", ValueRef::Int(i64::from(*status_code)));
                x.push("org_id", org_id);
                x.text("principal_id", &event.principal_id);
                x.opt("actor_id", &event.actor_id);
                x.text("user_agent", &event.user_agent);
                x.text("trace_id", &event.trace_id);
                x.push("query", ValueRef::Str(query));
                x.kong_initiated(*kong_initiated);
                (Text::Str(ACCESS_CLASS), Text::Str(ACCESS_NAME))
            }
        };
        x.opt("principal_name", &event.principal_name);
        let product = if event.portal_id.is_some() {
            &cfg.portal_product
        } else {
            &cfg.org_product
        };
        View {
            event_ts: Text::Seconds(event.ts),
            vendor: &cfg.vendor,
            product,
            version: &cfg.version,
            event_class_id: class,
            name,
            severity: event.severity(),
            extensions: Extensions::Inline {
                items: x.items,
                len: x.len,
            },
        }
    }

    /// Adds the event's place in its log (DECISIONS.md S27): `log`, `log_index` and
    /// `leaf_hash` (standard base64, which the caller keeps), after every other extension.
    pub(crate) fn with_place(mut self, log: &'a str, index: u64, leaf_hash: &'a str) -> Self {
        if let Extensions::Inline { items, len } = &mut self.extensions {
            let index = i64::try_from(index).unwrap_or(i64::MAX);
            for item in [
                ("log", ValueRef::Str(log)),
                ("log_index", ValueRef::Int(index)),
                ("leaf_hash", ValueRef::Str(leaf_hash)),
            ] {
                items[*len] = item;
                *len += 1;
            }
        } else {
            unreachable!("a place is added to an event's view, never to a record's");
        }
        self
    }

    pub(crate) fn from_record(record: &'a Record) -> Self {
        let h = &record.header;
        View {
            event_ts: Text::Str(&h.event_ts),
            vendor: &h.vendor,
            product: &h.product,
            version: &h.version,
            event_class_id: Text::Str(&h.event_class_id),
            name: Text::Str(&h.name),
            severity: h.severity,
            extensions: Extensions::Record(&record.extensions),
        }
    }

    pub(crate) fn extension_count(&self) -> usize {
        match &self.extensions {
            Extensions::Record(list) => list.len(),
            Extensions::Inline { len, .. } => *len,
        }
    }

    /// Calls `f` with each extension, in CEF order.
    pub(crate) fn for_each_extension(&self, mut f: impl FnMut(&'a str, ValueRef<'a>)) {
        match &self.extensions {
            Extensions::Record(list) => {
                for e in *list {
                    let value = match &e.value {
                        Value::Str(s) => ValueRef::Str(s),
                        Value::Int(i) => ValueRef::Int(*i),
                        Value::Bool(b) => ValueRef::Bool(*b),
                    };
                    f(&e.key, value);
                }
            }
            Extensions::Inline { items, len } => {
                for (key, value) in &items[..*len] {
                    f(key, *value);
                }
            }
        }
    }

    pub(crate) fn to_record(&self) -> Record {
        let mut extensions = Vec::with_capacity(self.extension_count());
        self.for_each_extension(|key, value| {
            let value = match value {
                ValueRef::Str(s) => Value::Str(s.to_owned()),
                ValueRef::Int(i) => Value::Int(i),
                ValueRef::Bool(b) => Value::Bool(b),
                ValueRef::Uuid(u) => Value::Str(u.hyphenated().to_string()),
            };
            extensions.push(Extension {
                key: key.to_owned(),
                value,
            });
        });
        Record {
            header: Header {
                event_ts: self.event_ts.to_owned_string(),
                vendor: self.vendor.to_owned(),
                product: self.product.to_owned(),
                version: self.version.to_owned(),
                event_class_id: self.event_class_id.to_owned_string(),
                name: self.name.to_owned_string(),
                severity: self.severity,
            },
            extensions,
        }
    }
}

impl Text<'_> {
    /// Calls `f` with the text's pieces in order; a timestamp is formatted on the stack.
    pub(crate) fn with_pieces(&self, mut f: impl FnMut(&str)) {
        match *self {
            Text::Str(s) => f(s),
            Text::Prefixed(prefix, rest) => {
                f(prefix);
                f(rest);
            }
            Text::Seconds(ts) => {
                let digits = rfc3339_seconds(ts);
                // Only ASCII digits and separators were written, so this cannot fail.
                f(std::str::from_utf8(&digits).unwrap_or_default());
            }
        }
    }

    fn to_owned_string(self) -> String {
        let mut s = String::new();
        self.with_pieces(|piece| s.push_str(piece));
        s
    }
}

/// Appends the decimal form of `n`; cheaper than `write!`, which shows in a per-line profile.
pub(crate) fn push_int(n: i64, out: &mut Vec<u8>) {
    let mut digits = [0u8; 20];
    let mut rest = n.unsigned_abs();
    let mut at = digits.len();
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    if n < 0 {
        out.push(b'-');
    }
    out.extend_from_slice(&digits[at..]);
}

/// `YYYY-MM-DDTHH:MM:SSZ` without allocating. [`Timestamp`] keeps years within 1..=9999, so the
/// form is always exactly 20 bytes.
pub(crate) fn rfc3339_seconds(ts: Timestamp) -> [u8; 20] {
    fn put(out: &mut [u8], mut n: u32) {
        for slot in out.iter_mut().rev() {
            *slot = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }
    let dt = ts.to_datetime();
    let mut out = *b"0000-00-00T00:00:00Z";
    put(&mut out[0..4], dt.year().unsigned_abs());
    put(&mut out[5..7], u32::from(u8::from(dt.month())));
    put(&mut out[8..10], u32::from(dt.day()));
    put(&mut out[11..13], u32::from(dt.hour()));
    put(&mut out[14..16], u32::from(dt.minute()));
    put(&mut out[17..19], u32::from(dt.second()));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seconds_form_matches_timestamp() {
        for ms in [
            Timestamp::ZERO.as_millis(),
            -1,
            0,
            1_750_280_466_889,
            253_402_300_799_999,
        ] {
            let ts = Timestamp::from_millis(ms);
            assert_eq!(
                std::str::from_utf8(&rfc3339_seconds(ts)).unwrap(),
                ts.to_rfc3339_seconds()
            );
        }
    }

    #[test]
    fn integers() {
        for n in [0, 7, -7, 10, 1_750_280_466_889, i64::MAX, i64::MIN] {
            let mut out = Vec::new();
            push_int(n, &mut out);
            assert_eq!(String::from_utf8(out).unwrap(), n.to_string());
        }
    }

    #[test]
    fn typed_keys() {
        assert_eq!(kind_of("rt"), Kind::Int);
        assert_eq!(kind_of("status"), Kind::Int);
        assert_eq!(kind_of("success"), Kind::Bool);
        assert_eq!(kind_of("granted"), Kind::Bool);
        assert_eq!(kind_of("trace_id"), Kind::Str);
        assert_eq!(kind_of("kong_initiated"), Kind::Str);
    }
}

//! Entries of the v3 pull API (`GET /v3/audit-logs`) and their `signature`.
//!
//! Konnect does not document what a pull entry's signature covers (DECISIONS.md K5). Ours
//! covers the entry's canonical JSON without `signature`: keys in byte order, no whitespace,
//! standard escaping, every field the event has and no other. The signed entry is the same
//! canonical object with `"signature":"<base64url>"` in its sorted place, so it is canonical too.
//! A client may re-serialize an entry in any key order or spacing; verification parses it,
//! drops `signature`, re-canonicalizes and checks the bytes, so it does not care.

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::{Map, Value as Json};

use super::error::VerifyError;
use super::json::write_str;
use super::record::{push_int, rfc3339_seconds};
use crate::event::{Event, EventDetail};
use crate::signing::{Kid, PublicKey, SigningKey, decode_signature_b64, find_signer};
use crate::timestamp::Timestamp;

/// One member of an entry: text, a flag or a whole number; an id or a time is text written
/// without first making a `String` of it (the log writes a leaf for every event).
#[derive(Debug, Clone)]
pub(crate) enum Member<'a> {
    Text(std::borrow::Cow<'a, str>),
    Flag(bool),
    Number(u64),
    /// Text: the hyphenated lowercase form.
    Uuid(uuid::Uuid),
    /// Text: RFC 3339 UTC to the millisecond.
    Millis(Timestamp),
}

impl Member<'_> {
    fn to_json(&self) -> Json {
        match self {
            Self::Text(text) => Json::String(text.to_string()),
            Self::Flag(flag) => Json::Bool(*flag),
            Self::Number(n) => Json::from(*n),
            Self::Uuid(id) => Json::String(id.hyphenated().to_string()),
            Self::Millis(ts) => Json::String(ts.to_rfc3339_millis()),
        }
    }

    /// Appends the member's value as canonical JSON writes it.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        match self {
            Self::Text(text) => write_str(text, out),
            Self::Flag(true) => out.extend_from_slice(b"true"),
            Self::Flag(false) => out.extend_from_slice(b"false"),
            Self::Number(n) => push_int(i64::try_from(*n).unwrap_or(i64::MAX), out),
            // Neither form has a character JSON escapes.
            Self::Uuid(id) => {
                out.push(b'"');
                out.extend_from_slice(id.hyphenated().encode_lower(&mut [0; 36]).as_bytes());
                out.push(b'"');
            }
            Self::Millis(ts) => {
                out.push(b'"');
                out.extend_from_slice(&rfc3339_seconds(*ts)[..19]);
                let ms = ts.as_millis().rem_euclid(1000);
                out.extend_from_slice(&[
                    b'.',
                    b'0' + (ms / 100) as u8,
                    b'0' + (ms / 10 % 10) as u8,
                    b'0' + (ms % 10) as u8,
                    b'Z',
                    b'"',
                ]);
            }
        }
    }
}

/// Calls `put` with every member of `event`'s entry, without `signature`, in no set order:
/// the one list of what an entry holds, for the entry as a JSON object ([`pull_entry`]) and for
/// writers that need no object (the tamper-evident log's leaf, `integrity::event_leaf`).
pub(crate) fn entry_members<'a>(event: &'a Event, mut put: impl FnMut(&'static str, Member<'a>)) {
    use Member::{Flag, Millis, Number, Text, Uuid};
    put("type", Text(event.event_type().as_str().into()));
    put("ts", Millis(event.ts));
    put("org_id", Uuid(*event.org_id.as_uuid()));
    if let Some(portal) = event.portal_id {
        put("portal_id", Uuid(*portal.as_uuid()));
    }
    let optional = [
        ("principal_id", &event.principal_id),
        ("principal_name", &event.principal_name),
        ("actor_id", &event.actor_id),
        ("client_ip", &event.client_ip),
        ("uri", &event.uri),
        ("user_agent", &event.user_agent),
        ("trace_id", &event.trace_id),
    ];
    for (key, value) in optional {
        if let Some(value) = value {
            put(key, Text(value.as_str().into()));
        }
    }
    match &event.detail {
        EventDetail::Authentication {
            outcome,
            authentication_type,
        } => {
            put("successful", Flag(outcome.is_success()));
            put("outcome", Text(outcome.as_str().into()));
            put(
                "authentication_type",
                Text(authentication_type.as_str().into()),
            );
        }
        EventDetail::Authorization {
            service,
            resource,
            action,
            granted,
            kong_initiated,
        } => {
            put("service", Text(service.as_str().into()));
            put("resource", Text(resource.as_str().into()));
            put("action", Text(action.as_str().into()));
            put("granted", Flag(*granted));
            if let Some(k) = kong_initiated {
                put("kong_initiated", Flag(*k));
            }
        }
        EventDetail::Access {
            method,
            query,
            status_code,
            kong_initiated,
        } => {
            put("method", Text(method.as_str().into()));
            put("query", Text(query.as_str().into()));
            put("status_code", Number(u64::from(*status_code)));
            if let Some(k) = kong_initiated {
                put("kong_initiated", Flag(*k));
            }
        }
    }
}

/// The entry of `event`, as a JSON object, without `signature`.
pub fn pull_entry(event: &Event) -> Map<String, Json> {
    let mut entry = Map::new();
    entry_members(event, |key, value| {
        entry.insert(key.to_owned(), value.to_json());
    });
    entry
}

/// Appends members as one canonical JSON object: keys in byte order (each key once).
pub(crate) fn write_canonical_members(members: &mut [(&str, Member<'_>)], out: &mut Vec<u8>) {
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (n, (key, value)) in members.iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        value.write(out);
    }
    out.push(b'}');
}

/// Appends the canonical bytes of `event`'s entry without `signature`: what is signed.
pub fn write_pull_entry(event: &Event, out: &mut Vec<u8>) {
    write_canonical_object(&pull_entry(event), out);
}

/// Appends the signed entry of `event`: the canonical object with `signature` in its place.
pub fn write_signed_pull_entry(event: &Event, key: &SigningKey, out: &mut Vec<u8>) {
    let mut entry = pull_entry(event);
    let mut canonical = Vec::with_capacity(512);
    write_canonical_object(&entry, &mut canonical);
    let signature = URL_SAFE_NO_PAD.encode(key.sign(&canonical));
    entry.insert("signature".into(), signature.into());
    write_canonical_object(&entry, out);
}

/// Verifies an entry as served by the pull API (any key order or spacing) and names its key.
pub fn verify_pull_entry(entry: &[u8], keys: &[PublicKey]) -> Result<Kid, VerifyError> {
    let unparsable = |what| super::error::ParseError::Json { at: 0, what };
    let mut object = parse_object(entry).map_err(unparsable)?;
    let signature = match object.remove("signature") {
        Some(Json::String(s)) => s,
        Some(_) => return Err(VerifyError::BadBase64),
        None => return Err(VerifyError::NoSignature),
    };
    let signature = decode_signature_b64(signature.as_bytes()).ok_or(VerifyError::BadBase64)?;
    let mut canonical = Vec::with_capacity(entry.len());
    write_canonical_object(&object, &mut canonical);
    find_signer(keys, &canonical, &signature)
        .map(|k| k.kid().clone())
        .ok_or(VerifyError::NoKeyMatches)
}

/// Reads one JSON object strictly: a key given twice, at any depth, is refused. A lenient
/// reader keeps the last of two values, and another reader (or a person) the first, so a line
/// with a signed value and a forged one beside it would verify while saying the forged one.
pub(crate) fn parse_object(bytes: &[u8]) -> Result<Map<String, Json>, &'static str> {
    match serde_json::from_slice::<Strict>(bytes) {
        Ok(Strict(Json::Object(object))) => Ok(object),
        Ok(_) => Err("not a JSON object"),
        Err(e) if e.to_string().starts_with(TWICE) => Err(TWICE),
        Err(_) => Err("not a JSON object"),
    }
}

const TWICE: &str = "a key appears twice in one object";

/// A JSON value read by [`parse_object`]'s rules.
struct Strict(Json);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_any(StrictVisitor)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Strict;

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("a JSON value")
    }

    fn visit_bool<E: de::Error>(self, v: bool) -> Result<Strict, E> {
        Ok(Strict(Json::Bool(v)))
    }

    fn visit_i64<E: de::Error>(self, v: i64) -> Result<Strict, E> {
        Ok(Strict(Json::from(v)))
    }

    fn visit_u64<E: de::Error>(self, v: u64) -> Result<Strict, E> {
        Ok(Strict(Json::from(v)))
    }

    fn visit_f64<E: de::Error>(self, v: f64) -> Result<Strict, E> {
        Ok(Strict(Json::from(v)))
    }

    fn visit_str<E: de::Error>(self, v: &str) -> Result<Strict, E> {
        Ok(Strict(Json::String(v.to_owned())))
    }

    fn visit_string<E: de::Error>(self, v: String) -> Result<Strict, E> {
        Ok(Strict(Json::String(v)))
    }

    fn visit_unit<E: de::Error>(self) -> Result<Strict, E> {
        Ok(Strict(Json::Null))
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Strict, A::Error> {
        let mut items = Vec::new();
        while let Some(Strict(item)) = seq.next_element()? {
            items.push(item);
        }
        Ok(Strict(Json::Array(items)))
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Strict, A::Error> {
        let mut object = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            let Strict(value) = map.next_value()?;
            if object.insert(key, value).is_some() {
                return Err(de::Error::custom(TWICE));
            }
        }
        Ok(Strict(Json::Object(object)))
    }
}

/// Sorts keys itself rather than trusting `Map`'s order, which the `preserve_order` feature of
/// serde_json (enabled by any crate in a build) would change.
pub(crate) fn write_canonical_object(object: &Map<String, Json>, out: &mut Vec<u8>) {
    let mut members: Vec<(&String, &Json)> = object.iter().collect();
    members.sort_unstable_by(|a, b| a.0.cmp(b.0));
    out.push(b'{');
    for (n, (key, value)) in members.into_iter().enumerate() {
        if n > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        write_canonical(value, out);
    }
    out.push(b'}');
}

fn write_canonical(value: &Json, out: &mut Vec<u8>) {
    match value {
        Json::Null => out.extend_from_slice(b"null"),
        Json::Bool(b) => out.extend_from_slice(if *b { b"true" } else { b"false" }),
        Json::Number(n) => out.extend_from_slice(n.to_string().as_bytes()),
        Json::String(s) => write_str(s, out),
        Json::Array(items) => {
            out.push(b'[');
            for (n, item) in items.iter().enumerate() {
                if n > 0 {
                    out.push(b',');
                }
                write_canonical(item, out);
            }
            out.push(b']');
        }
        Json::Object(object) => write_canonical_object(object, out),
    }
}

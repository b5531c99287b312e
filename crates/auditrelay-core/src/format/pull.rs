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
use crate::signing::{Kid, PublicKey, Signature, SigningKey, decode_signature_b64, find_signer};
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

/// Declares [`Key`] from one list of `Variant => "name"`, in the names' byte order, with
/// [`Key::ALL`] and [`Key::as_str`] made from the same list, so the three cannot drift apart.
macro_rules! keys {
    ($($variant:ident => $name:literal,)*) => {
        /// A key of an entry, or of the tamper-evident log's leaf, which adds `event_id`, `log`
        /// and `log_index` (`integrity::event_leaf`). Declared in the byte order of their names,
        /// so members written in the order of their keys are in canonical JSON's order without
        /// sorting them.
        #[derive(Debug, Clone, Copy, PartialEq, Eq)]
        pub(crate) enum Key {
            $($variant,)*
        }

        impl Key {
            /// Every key, in order: `Key::ALL[key as usize] == key`.
            pub(crate) const ALL: &'static [Self] = &[$(Self::$variant,)*];

            pub(crate) const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $name,)*
                }
            }
        }
    };
}

keys! {
    Action => "action",
    ActorId => "actor_id",
    AuthenticationType => "authentication_type",
    ClientIp => "client_ip",
    EventId => "event_id",
    Granted => "granted",
    KongInitiated => "kong_initiated",
    Log => "log",
    LogIndex => "log_index",
    Method => "method",
    OrgId => "org_id",
    Outcome => "outcome",
    PortalId => "portal_id",
    PrincipalId => "principal_id",
    PrincipalName => "principal_name",
    Query => "query",
    Resource => "resource",
    Service => "service",
    StatusCode => "status_code",
    Successful => "successful",
    TraceId => "trace_id",
    Ts => "ts",
    Type => "type",
    Uri => "uri",
    UserAgent => "user_agent",
}

/// The members of one object, each under its key, written in the keys' order: canonical JSON
/// without sorting anything (the log writes a leaf for every event).
pub(crate) struct Members<'a>([Option<Member<'a>>; Key::ALL.len()]);

impl<'a> Members<'a> {
    pub(crate) fn new() -> Self {
        Self(std::array::from_fn(|_| None))
    }

    pub(crate) fn put(&mut self, key: Key, value: Member<'a>) {
        let slot = &mut self.0[key as usize];
        // Twice would write the key twice: no longer canonical JSON, nor a leaf a verifier
        // can rebuild.
        assert!(slot.is_none(), "{key:?} given twice");
        *slot = Some(value);
    }

    /// Appends the object. No key needs escaping.
    pub(crate) fn write(&self, out: &mut Vec<u8>) {
        out.push(b'{');
        let present = Key::ALL.iter().zip(&self.0);
        for (n, (key, value)) in present
            .filter_map(|(k, v)| Some((k, v.as_ref()?)))
            .enumerate()
        {
            if n > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_str().as_bytes());
            out.extend_from_slice(b"\":");
            value.write(out);
        }
        out.push(b'}');
    }
}

/// Calls `put` with every member of `event`'s entry, without `signature`, in no set order:
/// the one list of what an entry holds, for the entry as a JSON object ([`pull_entry`]) and for
/// writers that need no object (the tamper-evident log's leaf, `integrity::event_leaf`).
pub(crate) fn entry_members<'a>(event: &'a Event, mut put: impl FnMut(Key, Member<'a>)) {
    use Member::{Flag, Millis, Number, Text, Uuid};
    put(Key::Type, Text(event.event_type().as_str().into()));
    put(Key::Ts, Millis(event.ts));
    put(Key::OrgId, Uuid(*event.org_id.as_uuid()));
    if let Some(portal) = event.portal_id {
        put(Key::PortalId, Uuid(*portal.as_uuid()));
    }
    let optional = [
        (Key::PrincipalId, &event.principal_id),
        (Key::PrincipalName, &event.principal_name),
        (Key::ActorId, &event.actor_id),
        (Key::ClientIp, &event.client_ip),
        (Key::Uri, &event.uri),
        (Key::UserAgent, &event.user_agent),
        (Key::TraceId, &event.trace_id),
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
            put(Key::Successful, Flag(outcome.is_success()));
            put(Key::Outcome, Text(outcome.as_str().into()));
            put(
                Key::AuthenticationType,
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
            put(Key::Service, Text(service.as_str().into()));
            put(Key::Resource, Text(resource.as_str().into()));
            put(Key::Action, Text(action.as_str().into()));
            put(Key::Granted, Flag(*granted));
            if let Some(k) = kong_initiated {
                put(Key::KongInitiated, Flag(*k));
            }
        }
        EventDetail::Access {
            method,
            query,
            status_code,
            kong_initiated,
        } => {
            put(Key::Method, Text(method.as_str().into()));
            put(Key::Query, Text(query.as_str().into()));
            put(Key::StatusCode, Number(u64::from(*status_code)));
            if let Some(k) = kong_initiated {
                put(Key::KongInitiated, Flag(*k));
            }
        }
    }
}

/// The entry of `event`, as a JSON object, without `signature`.
pub fn pull_entry(event: &Event) -> Map<String, Json> {
    let mut entry = Map::new();
    entry_members(event, |key, value| {
        entry.insert(key.as_str().to_owned(), value.to_json());
    });
    entry
}

/// Appends the canonical bytes of `event`'s entry without `signature`: what is signed.
pub fn write_pull_entry(event: &Event, out: &mut Vec<u8>) {
    write_canonical_object(&pull_entry(event), out);
}

/// Appends the signed entry of `event`: the canonical object with `signature` in its place.
pub fn write_signed_pull_entry(event: &Event, key: &SigningKey, out: &mut Vec<u8>) {
    let entry = pull_entry(event);
    let signature = key.sign(&canonical(&entry));
    write_sealed(entry, &signature, out);
}

/// The signed entries of `events`, in order, each as [`write_signed_pull_entry`] writes it,
/// signed together ([`SigningKey::sign_all`]): a page of the pull API costs a fifth less.
pub fn signed_pull_entries<'e>(
    events: impl IntoIterator<Item = &'e Event>,
    key: &SigningKey,
) -> Vec<Vec<u8>> {
    let entries: Vec<Map<String, Json>> = events.into_iter().map(pull_entry).collect();
    let canonical: Vec<Vec<u8>> = entries.iter().map(canonical).collect();
    let messages: Vec<&[u8]> = canonical.iter().map(Vec::as_slice).collect();
    let signatures = key.sign_all(&messages);
    (entries.into_iter().zip(&signatures))
        .map(|(entry, signature)| {
            let mut out = Vec::with_capacity(640);
            write_sealed(entry, signature, &mut out);
            out
        })
        .collect()
}

/// The canonical bytes of `entry`: what its signature covers.
fn canonical(entry: &Map<String, Json>) -> Vec<u8> {
    let mut canonical = Vec::with_capacity(512);
    write_canonical_object(entry, &mut canonical);
    canonical
}

/// Appends `entry` with `signature` in its place.
fn write_sealed(mut entry: Map<String, Json>, signature: &Signature, out: &mut Vec<u8>) {
    let signature = URL_SAFE_NO_PAD.encode(signature);
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

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::{AuthenticationOutcome, AuthenticationType};
    use crate::ids::{OrgId, PortalId, Region};
    use crate::timestamp::Timestamp;

    /// `Key`'s order is its names' byte order, and `ALL` holds each key at its own number:
    /// what lets `Members` write canonical JSON without sorting.
    #[test]
    fn keys_are_declared_in_byte_order() {
        for (n, key) in Key::ALL.iter().enumerate() {
            assert_eq!(*key as usize, n, "{key:?}");
        }
        for pair in Key::ALL.windows(2) {
            assert!(pair[0].as_str() < pair[1].as_str(), "{pair:?}");
        }
    }

    /// Members written in their keys' order are the canonical object `write_canonical_object`
    /// writes of the same entry, for every type of event, with and without optional fields.
    #[test]
    fn members_write_the_canonical_entry() {
        let bare = Event {
            ts: Timestamp::from_millis(1_750_280_466_889),
            org_id: OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: None,
            principal_name: None,
            actor_id: None,
            client_ip: None,
            uri: None,
            user_agent: None,
            trace_id: None,
            detail: EventDetail::Authentication {
                outcome: AuthenticationOutcome::Success,
                authentication_type: AuthenticationType::Basic,
            },
        };
        let mut full = bare.clone();
        full.portal_id = Some(PortalId::parse("5f9e0a1c-2b3d-4e5f-8a9b-0c1d2e3f4a5b").unwrap());
        for (field, text) in [
            (&mut full.principal_id, "p\"1"),
            (&mut full.principal_name, "Ada\\ \u{7f}"),
            (&mut full.actor_id, "a"),
            (&mut full.client_ip, "::1"),
            (&mut full.uri, "/x?y=1"),
            (&mut full.user_agent, "curl/8 \u{2028}"),
            (&mut full.trace_id, "7"),
        ] {
            *field = Some(text.into());
        }
        let details = [
            EventDetail::Authentication {
                outcome: AuthenticationOutcome::Success,
                authentication_type: AuthenticationType::Basic,
            },
            EventDetail::Authorization {
                service: "konnect".into(),
                resource: "r".into(),
                action: "edit".into(),
                granted: true,
                kong_initiated: Some(false),
            },
            EventDetail::Access {
                method: "POST".into(),
                query: "{\"a\":1}".into(),
                status_code: 201,
                kong_initiated: Some(true),
            },
        ];
        for base in [bare, full] {
            for detail in details.clone() {
                let event = Event {
                    detail,
                    ..base.clone()
                };
                let mut members = Members::new();
                entry_members(&event, |key, value| members.put(key, value));
                let mut written = Vec::new();
                members.write(&mut written);
                let mut canonical = Vec::new();
                write_pull_entry(&event, &mut canonical);
                assert_eq!(
                    String::from_utf8(written).unwrap(),
                    String::from_utf8(canonical).unwrap()
                );
            }
        }
    }
}

//! The OCSF line (`log_format: ocsf`, our extension): an event as an object of the Open
//! Cybersecurity Schema Framework 1.8.0, signed like a JSON line (DECISIONS.md D6, S17).
//!
//! Authentication events (organization and Dev Portal logins) are Authentication [3002], activity
//! Logon; authorization decisions and access events are API Activity [6003], their activity taken
//! from the action or the HTTP method. `docs/OCSF.md` gives the mapping field by field.
//!
//! The object is canonical JSON: keys in byte order at every level, no whitespace, the JSON
//! line's escaping, integers only. The signature covers that object; the line carries it as
//! `sig`, appended last like a JSON line's. Because the form is canonical, a line a SIEM stored
//! with its keys re-ordered or re-spaced still verifies: [`verify`] parses it, drops `sig` and
//! writes the canonical form again (as the pull API's entries do), rather than cutting bytes.
//!
//! Like the other renderers it writes straight into the caller's buffer and allocates nothing.

use std::net::IpAddr;

use serde_json::Value as Json;
use uuid::Uuid;

use super::error::{ParseError, VerifyError};
use super::json::{escape_into, write_str};
use super::pull::{parse_object, write_canonical_object};
use super::record::{FormatConfig, push_int};
use crate::event::{AuthenticationOutcome, AuthenticationType, Event, EventDetail};
use crate::integrity::{CheckpointEvent, LogPlace};
use crate::signing::{Kid, PublicKey, decode_signature_b64, find_signer};

/// The schema version every line states in `metadata.version`.
pub const OCSF_VERSION: &str = "1.8.0";

/// An OCSF class: its category and its own uid, and the captions that go beside them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Class {
    pub category_uid: i64,
    pub category_name: &'static str,
    /// `category_uid * 1000 + the class's uid`.
    pub class_uid: i64,
    pub class_name: &'static str,
}

pub const AUTHENTICATION: Class = Class {
    category_uid: 3,
    category_name: "Identity & Access Management",
    class_uid: 3002,
    class_name: "Authentication",
};

pub const API_ACTIVITY: Class = Class {
    category_uid: 6,
    category_name: "Application Activity",
    class_uid: 6003,
    class_name: "API Activity",
};

/// The class, activity id and activity caption of `event`.
pub fn classify(event: &Event) -> (Class, i64, &str) {
    match &event.detail {
        EventDetail::Authentication { .. } => (AUTHENTICATION, 1, "Logon"),
        EventDetail::Authorization { action, .. } => {
            let (id, name) = activity_of_action(action);
            (API_ACTIVITY, id, name.unwrap_or(action))
        }
        EventDetail::Access { method, .. } => {
            let (id, name) = activity_of_method(method);
            (API_ACTIVITY, id, name.unwrap_or(method))
        }
    }
}

/// API Activity's id for an authorization's action; 99 (Other, named by the action itself) for
/// an action that is none of create, read, update and delete.
fn activity_of_action(action: &str) -> (i64, Option<&'static str>) {
    const VERBS: [(&[&str], i64, &str); 4] = [
        (&["create", "add"], 1, "Create"),
        (&["read", "retrieve", "get", "list", "view"], 2, "Read"),
        (&["update", "edit", "modify", "patch"], 3, "Update"),
        (&["delete", "remove"], 4, "Delete"),
    ];
    VERBS
        .iter()
        .find(|(words, _, _)| words.iter().any(|w| w.eq_ignore_ascii_case(action)))
        .map_or((99, None), |&(_, id, name)| (id, Some(name)))
}

/// API Activity's id for an access event's HTTP method.
fn activity_of_method(method: &str) -> (i64, Option<&'static str>) {
    const METHODS: [(&str, i64, &str); 7] = [
        ("POST", 1, "Create"),
        ("GET", 2, "Read"),
        ("HEAD", 2, "Read"),
        ("OPTIONS", 2, "Read"),
        ("PUT", 3, "Update"),
        ("PATCH", 3, "Update"),
        ("DELETE", 4, "Delete"),
    ];
    METHODS
        .iter()
        .find(|(name, _, _)| name.eq_ignore_ascii_case(method))
        .map_or((99, None), |&(_, id, caption)| (id, Some(caption)))
}

/// `http_request.http_method` is an enum of these names: a method that is none of them is
/// left out there (it is still `api.operation`).
const HTTP_METHODS: [&str; 9] = [
    "CONNECT", "DELETE", "GET", "HEAD", "OPTIONS", "PATCH", "POST", "PUT", "TRACE",
];

/// `value` unless it is absent or empty: Konnect's producers send `""` for what they do not
/// know.
fn known(value: &Option<String>) -> Option<&str> {
    value.as_deref().filter(|v| !v.is_empty())
}

/// OCSF's severity id and caption for the event's CEF severity (0–10).
pub fn severity(cef: u8) -> (i64, &'static str) {
    match cef {
        0..=1 => (1, "Informational"),
        2..=3 => (2, "Low"),
        4..=6 => (3, "Medium"),
        7..=8 => (4, "High"),
        _ => (5, "Critical"),
    }
}

/// OCSF's `auth_protocol_id` and caption for the credential presented; 99 (Other) names it.
fn auth_protocol(kind: AuthenticationType) -> (i64, &'static str) {
    match kind {
        AuthenticationType::Invalid => (0, "Unknown"),
        AuthenticationType::Basic => (11, "Basic Authentication"),
        // Google and Microsoft accounts sign in with OpenID Connect, GitHub with OAuth 2.0.
        AuthenticationType::Google | AuthenticationType::WindowsLive => (4, "OpenID"),
        AuthenticationType::Github => (6, "OAUTH 2.0"),
        AuthenticationType::Sso => (99, "SSO"),
        AuthenticationType::Pat => (99, "Personal Access Token"),
        AuthenticationType::Spat => (99, "System Account Token"),
        AuthenticationType::Federated => (99, "Federated"),
    }
}

/// Appends the object of `event` without `sig`. `id` is the event's stable id
/// (DECISIONS.md D13), written as `metadata.uid` when known. `place` is the event's place in
/// its log and its leaf hash in base64, for a destination with `integrity` (DECISIONS.md S27):
/// `metadata.log_name` and `metadata.sequence` are its log and index, `unmapped.leaf_hash` its
/// leaf hash.
pub(crate) fn render(
    event: &Event,
    id: Option<Uuid>,
    place: Option<(&LogPlace, &str)>,
    cfg: &FormatConfig,
    out: &mut Vec<u8>,
) {
    let (class, activity_id, activity_name) = classify(event);
    let (severity_id, severity_name) = severity(event.severity());
    let success = match &event.detail {
        EventDetail::Authentication { outcome, .. } => outcome.is_success(),
        EventDetail::Authorization { granted, .. } => *granted,
        EventDetail::Access { status_code, .. } => *status_code < 400,
    };
    let product = if event.portal_id.is_some() {
        &cfg.portal_product
    } else {
        &cfg.org_product
    };
    let trace = (class == API_ACTIVITY)
        .then_some(known(&event.trace_id))
        .flatten();

    let mut o = Obj::open(out);
    o.int("activity_id", activity_id);
    o.str("activity_name", activity_name);
    match &event.detail {
        EventDetail::Authentication {
            authentication_type,
            ..
        } => {
            // A login has no principal of its own: the impersonator is its actor.
            if let Some(actor) = known(&event.actor_id) {
                o.obj("actor", |a| a.obj("user", |u| u.str("uid", actor)));
            }
            let (protocol_id, protocol) = auth_protocol(*authentication_type);
            o.str("auth_protocol", protocol);
            o.int("auth_protocol_id", protocol_id);
        }
        EventDetail::Authorization { service, .. } => {
            o.obj("actor", |a| principal(event, a));
            o.obj("api", |api| {
                api.str("operation", activity_source(event));
                api.obj("service", |s| s.str("name", service));
            });
        }
        EventDetail::Access { method, .. } => {
            o.obj("actor", |a| principal(event, a));
            o.obj("api", |api| api.str("operation", method));
        }
    }
    o.str("category_name", class.category_name);
    o.int("category_uid", class.category_uid);
    o.str("class_name", class.class_name);
    o.int("class_uid", class.class_uid);
    http(event, &mut o);
    o.text("message", |put| message(event, put));
    o.obj("metadata", |m| {
        if let Some(trace) = known(&event.trace_id) {
            m.str("correlation_uid", trace);
        }
        if let Some((place, _)) = place {
            m.str("log_name", &place.log);
        }
        m.obj("product", |p| {
            p.str("name", product);
            p.str("vendor_name", &cfg.vendor);
            p.str("version", &cfg.version);
        });
        if trace.is_some() {
            m.strs("profiles", &["trace"]);
        }
        if let Some((place, _)) = place {
            m.int("sequence", i64::try_from(place.index).unwrap_or(i64::MAX));
        }
        m.uuid("tenant_uid", *event.org_id.as_uuid());
        if let Some(id) = id {
            m.uuid("uid", id);
        }
        m.str("version", OCSF_VERSION);
    });
    if let EventDetail::Authorization { resource, .. } = &event.detail {
        o.one_obj_array("resources", |r| r.str("name", resource));
    }
    if class == AUTHENTICATION {
        o.obj("service", |s| {
            s.str("name", product);
            if let Some(portal) = event.portal_id {
                s.uuid("uid", *portal.as_uuid());
            }
        });
    }
    o.str("severity", severity_name);
    o.int("severity_id", severity_id);
    match known(&event.client_ip) {
        Some(ip) if ip.parse::<IpAddr>().is_ok() => o.obj("src_endpoint", |s| s.str("ip", ip)),
        // An address that is not one is kept as the endpoint's name rather than dropped.
        Some(name) => o.obj("src_endpoint", |s| s.str("name", name)),
        // API Activity requires the source endpoint.
        None if class == API_ACTIVITY => o.obj("src_endpoint", |s| s.str("name", "unknown")),
        None => {}
    }
    o.str("status", if success { "Success" } else { "Failure" });
    match &event.detail {
        EventDetail::Authentication { outcome, .. } => o.str("status_detail", outcome.as_str()),
        EventDetail::Authorization { granted, .. } => {
            o.str("status_detail", if *granted { "granted" } else { "denied" });
        }
        EventDetail::Access { .. } => {}
    }
    o.int("status_id", if success { 1 } else { 2 });
    o.int("time", event.ts.as_millis());
    if let Some(trace) = trace {
        o.obj("trace", |t| t.str("uid", trace));
    }
    // The type's caption is OCSF's, by `type_uid`: "Other" for 99, whatever the source
    // called it (that is `activity_name`).
    o.text("type_name", |put| {
        put(class.class_name);
        put(": ");
        put(if activity_id == 99 {
            "Other"
        } else {
            activity_name
        });
    });
    o.int("type_uid", class.class_uid * 100 + activity_id);
    let kong_initiated = match &event.detail {
        EventDetail::Authentication { .. } => None,
        EventDetail::Authorization { kong_initiated, .. }
        | EventDetail::Access { kong_initiated, .. } => *kong_initiated,
    };
    // API Activity's actor is the principal: the impersonator has no place beside it.
    let impersonator = (class == API_ACTIVITY)
        .then_some(known(&event.actor_id))
        .flatten();
    // Several credentials share one `auth_protocol_id` (Google's and Microsoft's: OpenID).
    let credential = match &event.detail {
        EventDetail::Authentication {
            authentication_type,
            ..
        } => Some(authentication_type.as_str()),
        _ => None,
    };
    let leaf_hash = place.map(|(_, leaf)| leaf);
    if impersonator.is_some()
        || kong_initiated.is_some()
        || credential.is_some()
        || leaf_hash.is_some()
    {
        o.obj("unmapped", |u| {
            if let Some(actor) = impersonator {
                u.str("actor_id", actor);
            }
            if let Some(credential) = credential {
                u.str("authentication_type", credential);
            }
            if let Some(k) = kong_initiated {
                u.bool("kong_initiated", k);
            }
            if let Some(leaf_hash) = leaf_hash {
                u.str("leaf_hash", leaf_hash);
            }
        });
    }
    if class == AUTHENTICATION {
        o.obj("user", |u| {
            match (known(&event.principal_name), known(&event.principal_id)) {
                (None, None) => {
                    // Konnect's login events do not name who tried; the class requires a user.
                    u.str("name", "unknown");
                    u.str("type", "Unknown");
                    u.int("type_id", 0);
                }
                (name, uid) => {
                    if let Some(name) = name {
                        u.str("name", name);
                    }
                    if let Some(uid) = uid {
                        u.str("uid", uid);
                    }
                }
            }
        });
    }
    o.close();
}

/// API Activity's actor: the principal as the user (ingest requires one with these events;
/// an empty one is named `unknown`, as `user` needs a name or a uid).
fn principal(event: &Event, a: &mut Obj<'_>) {
    let (name, uid) = (known(&event.principal_name), known(&event.principal_id));
    a.obj("user", |u| {
        if name.is_none() && uid.is_none() {
            u.str("name", "unknown");
        }
        if let Some(name) = name {
            u.str("name", name);
        }
        if let Some(uid) = uid {
            u.str("uid", uid);
        }
    });
}

/// The event's own word for what it did: the action, or the method.
fn activity_source(event: &Event) -> &str {
    match &event.detail {
        EventDetail::Authorization { action, .. } => action,
        EventDetail::Access { method, .. } => method,
        EventDetail::Authentication { .. } => "",
    }
}

/// `http_request` (the path, query, method and user agent the event has) and, for an access
/// event, `http_response` with its status code.
fn http(event: &Event, o: &mut Obj<'_>) {
    let (method, query) = match &event.detail {
        EventDetail::Access { method, query, .. } => (Some(method.as_str()), Some(query.as_str())),
        _ => (None, None),
    };
    // `{}` is how Konnect's producers write "no query".
    let query = query.filter(|q| !q.is_empty() && *q != "{}");
    let path = event.uri.as_deref().filter(|p| !p.is_empty());
    let agent = event.user_agent.as_deref().filter(|a| !a.is_empty());
    if method.is_some() || path.is_some() || agent.is_some() {
        o.obj("http_request", |h| {
            let standard = method.and_then(|m| {
                HTTP_METHODS
                    .into_iter()
                    .find(|name| name.eq_ignore_ascii_case(m))
            });
            if let Some(method) = standard {
                h.str("http_method", method);
            }
            if let Some(path) = path {
                h.obj("url", |u| {
                    u.str("path", path);
                    if let Some(query) = query {
                        u.str("query_string", query);
                    }
                });
            }
            if let Some(agent) = agent {
                h.str("user_agent", agent);
            }
        });
    }
    if let EventDetail::Access { status_code, .. } = &event.detail {
        o.obj("http_response", |h| h.int("code", i64::from(*status_code)));
    }
}

/// A sentence for a person reading the SIEM; every fact in it is also in a field.
fn message(event: &Event, put: &mut dyn FnMut(&str)) {
    match &event.detail {
        EventDetail::Authentication {
            outcome,
            authentication_type,
        } => {
            if *outcome == AuthenticationOutcome::Success {
                put("Login succeeded");
            } else {
                put("Login failed: ");
                put(outcome.as_str());
            }
            put(" (");
            put(authentication_type.as_str());
            put(")");
        }
        EventDetail::Authorization {
            service,
            resource,
            action,
            granted,
            ..
        } => {
            put(if *granted {
                "Permission granted: "
            } else {
                "Permission denied: "
            });
            put(action);
            put(" on ");
            put(resource);
            put(" (");
            put(service);
            put(")");
        }
        EventDetail::Access {
            method,
            status_code,
            ..
        } => {
            put(method);
            if let Some(uri) = event.uri.as_deref().filter(|u| !u.is_empty()) {
                put(" ");
                put(uri);
            }
            put(" answered ");
            let mut digits = [0u8; 5];
            put(decimal(*status_code, &mut digits));
        }
    }
}

/// `n` in decimal, written into `buf`.
fn decimal(mut n: u16, buf: &mut [u8; 5]) -> &str {
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    std::str::from_utf8(&buf[at..]).unwrap_or("0")
}

/// Whether `line` looks like one of our OCSF lines rather than a Konnect JSON line, before
/// parsing it: an object with a `class_uid` key. A Konnect line never has that key, and the
/// text cannot appear quoted and followed by `:` inside one of its strings (their quotes are
/// escaped).
pub fn is_ocsf(line: &[u8]) -> bool {
    const KEY: &[u8] = b"\"class_uid\"";
    if !line.trim_ascii_start().starts_with(b"{") {
        return false;
    }
    line.windows(KEY.len())
        .enumerate()
        .filter(|(_, w)| *w == KEY)
        .any(|(at, _)| line[at + KEY.len()..].trim_ascii_start().starts_with(b":"))
}

/// Verifies an OCSF line, in the key order and spacing we wrote it or any other, and names the
/// key that signed it.
pub fn verify(line: &[u8], keys: &[PublicKey]) -> Result<Kid, VerifyError> {
    let mut object = parse_object(line).map_err(|what| ParseError::Json { at: 0, what })?;
    let signature = match object.remove("sig") {
        Some(Json::String(s)) => s,
        Some(_) => return Err(VerifyError::BadBase64),
        None => return Err(VerifyError::NoSignature),
    };
    let signature = decode_signature_b64(signature.as_bytes()).ok_or(VerifyError::BadBase64)?;
    let mut canonical = Vec::with_capacity(line.len());
    write_canonical_object(&object, &mut canonical);
    find_signer(keys, &canonical, &signature)
        .map(|k| k.kid().clone())
        .ok_or(VerifyError::NoKeyMatches)
}

/// Appends the object of a checkpoint event (DECISIONS.md S27) without `sig`: a Base Event
/// [0] of activity Other, its log in `metadata.log_name`, and in `unmapped` the signed note
/// (`checkpoint`), the interval, and the previous size and frontier.
pub(crate) fn render_checkpoint(
    checkpoint: &CheckpointEvent,
    cfg: &FormatConfig,
    out: &mut Vec<u8>,
) {
    let product = if checkpoint.portal {
        &cfg.portal_product
    } else {
        &cfg.org_product
    };
    let mut o = Obj::open(out);
    o.int("activity_id", 99);
    o.str("activity_name", "Other");
    o.str("category_name", "Uncategorized");
    o.int("category_uid", 0);
    o.str("class_name", "Base Event");
    o.int("class_uid", 0);
    o.text("message", |put| {
        put("Checkpoint of the tamper-evident log ");
        put(&checkpoint.log);
    });
    o.obj("metadata", |m| {
        m.str("log_name", &checkpoint.log);
        m.obj("product", |p| {
            p.str("name", product);
            p.str("vendor_name", &cfg.vendor);
            p.str("version", &cfg.version);
        });
        m.str("version", OCSF_VERSION);
    });
    o.str("severity", "Informational");
    o.int("severity_id", 1);
    o.int("time", checkpoint.signed_at.as_millis());
    o.str("type_name", "Base Event: Other");
    o.int("type_uid", 99);
    o.obj("unmapped", |u| {
        u.str("checkpoint", &checkpoint.note);
        u.int(
            "checkpoint_interval",
            i64::try_from(checkpoint.interval_secs).unwrap_or(i64::MAX),
        );
        u.str("previous_frontier", &checkpoint.frontier_text());
        u.int(
            "previous_size",
            i64::try_from(checkpoint.previous_size).unwrap_or(i64::MAX),
        );
    });
    o.close();
}

/// A JSON object being written: members go in as they come, and must come in byte order of
/// their keys (checked in debug builds), which keeps the output canonical without sorting.
struct Obj<'o> {
    out: &'o mut Vec<u8>,
    last: Option<&'static str>,
}

impl<'o> Obj<'o> {
    fn open(out: &'o mut Vec<u8>) -> Self {
        out.push(b'{');
        Self { out, last: None }
    }

    fn key(&mut self, key: &'static str) {
        debug_assert!(
            self.last.is_none_or(|last| last < key),
            "OCSF key `{key}` written after `{:?}`: keys must come in byte order",
            self.last
        );
        if self.last.is_some() {
            self.out.push(b',');
        }
        self.last = Some(key);
        write_str(key, self.out);
        self.out.push(b':');
    }

    fn str(&mut self, key: &'static str, value: &str) {
        self.key(key);
        write_str(value, self.out);
    }

    /// A string member written in pieces, each escaped as it comes (nothing is concatenated
    /// first).
    fn text(&mut self, key: &'static str, write: impl FnOnce(&mut dyn FnMut(&str))) {
        self.key(key);
        self.out.push(b'"');
        write(&mut |piece| escape_into(piece, self.out));
        self.out.push(b'"');
    }

    fn uuid(&mut self, key: &'static str, id: Uuid) {
        self.key(key);
        self.out.push(b'"');
        self.out
            .extend_from_slice(id.hyphenated().encode_lower(&mut [0; 36]).as_bytes());
        self.out.push(b'"');
    }

    fn int(&mut self, key: &'static str, value: i64) {
        self.key(key);
        push_int(value, self.out);
    }

    fn bool(&mut self, key: &'static str, value: bool) {
        self.key(key);
        self.out
            .extend_from_slice(if value { b"true" } else { b"false" });
    }

    fn strs(&mut self, key: &'static str, values: &[&str]) {
        self.key(key);
        self.out.push(b'[');
        for (i, value) in values.iter().enumerate() {
            if i > 0 {
                self.out.push(b',');
            }
            write_str(value, self.out);
        }
        self.out.push(b']');
    }

    fn obj(&mut self, key: &'static str, write: impl FnOnce(&mut Obj<'_>)) {
        self.key(key);
        let mut inner = Obj::open(self.out);
        write(&mut inner);
        inner.close();
    }

    /// An array holding one object.
    fn one_obj_array(&mut self, key: &'static str, write: impl FnOnce(&mut Obj<'_>)) {
        self.key(key);
        self.out.push(b'[');
        let mut inner = Obj::open(self.out);
        write(&mut inner);
        inner.close();
        self.out.push(b']');
    }

    fn close(self) {
        self.out.push(b'}');
    }
}

#[cfg(test)]
mod tests {
    use serde_json::Map;

    use super::*;
    use crate::event::{AuthenticationOutcome, AuthenticationType};
    use crate::ids::{OrgId, PortalId, Region};
    use crate::signing::SigningKey;
    use crate::timestamp::Timestamp;

    fn key() -> SigningKey {
        SigningKey::from_seed(&[7; 32])
    }

    fn base(detail: EventDetail) -> Event {
        Event {
            ts: Timestamp::from_millis(1_750_688_927_556),
            org_id: OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: Some("a3d2699a-0ed3-4417-bb10-d8e74a1513a4".into()),
            principal_name: None,
            actor_id: None,
            client_ip: Some("172.71.232.22".into()),
            uri: Some("/v2/control-planes".into()),
            user_agent: Some("kongctl/0.3".into()),
            trace_id: Some("3360194145499877252".into()),
            detail,
        }
    }

    fn events() -> Vec<Event> {
        let access = |method: &str, status_code| EventDetail::Access {
            method: method.into(),
            query: "page[size]=10".into(),
            status_code,
            kong_initiated: Some(false),
        };
        vec![
            Event {
                principal_id: None,
                portal_id: Some(PortalId::parse("3e551b39-227d-4297-b911-e68fd5d77c17").unwrap()),
                ..base(EventDetail::Authentication {
                    outcome: AuthenticationOutcome::InvalidPassword,
                    authentication_type: AuthenticationType::Basic,
                })
            },
            Event {
                principal_name: Some("Ops \"bot\"\\svc\nline=2\u{7f}\u{2028}".into()),
                actor_id: Some("user_abc".into()),
                client_ip: None,
                trace_id: None,
                ..base(EventDetail::Authorization {
                    service: "konnect".into(),
                    resource: "control-planes".into(),
                    action: "rename".into(),
                    granted: false,
                    kong_initiated: Some(true),
                })
            },
            base(access("DELETE", 204)),
            Event {
                client_ip: Some("not an address".into()),
                ..base(access("PROPFIND", 503))
            },
        ]
    }

    fn rendered(event: &Event) -> Vec<u8> {
        let mut out = Vec::new();
        render(
            event,
            Some(Uuid::from_u128(42)),
            None,
            &FormatConfig::default(),
            &mut out,
        );
        out
    }

    /// The bytes we write are the canonical form a verifier writes again from the parsed
    /// object: that is what lets a re-serialized line verify.
    #[test]
    fn the_object_is_canonical_json() {
        for event in events() {
            let line = rendered(&event);
            let object: Map<String, Json> = serde_json::from_slice(&line).unwrap();
            let mut again = Vec::new();
            write_canonical_object(&object, &mut again);
            assert_eq!(
                String::from_utf8(again).unwrap(),
                String::from_utf8(line).unwrap()
            );
        }
    }

    #[test]
    fn a_signed_line_verifies_in_any_key_order_and_not_once_changed() {
        let key = key();
        let keys = [key.public_key().clone()];
        for event in events() {
            let mut line = Vec::new();
            sign_event_line(&event, &key, &mut line);
            assert!(is_ocsf(&line));
            assert_eq!(verify(&line, &keys).unwrap(), *key.kid());
            assert_eq!(super::super::verify_line(&line, &keys).unwrap(), *key.kid());

            // A SIEM that stores the object with its members in reverse and spaced out.
            let object: Map<String, Json> = serde_json::from_slice(&line).unwrap();
            let members: Vec<String> = object
                .iter()
                .rev()
                .map(|(k, v)| format!("{} : {}", Json::from(k.as_str()), v))
                .collect();
            let reordered = format!(" {{ {} }}", members.join(" , "));
            assert!(!reordered.starts_with(" { \"activity_id\""), "{reordered}");
            assert!(is_ocsf(reordered.as_bytes()), "{reordered}");
            assert_eq!(verify(reordered.as_bytes(), &keys).unwrap(), *key.kid());
            let verified = super::super::verify_line(reordered.as_bytes(), &keys);
            assert_eq!(verified.unwrap(), *key.kid());

            // A forged value beside the signed one: readers disagree on which counts.
            let forged = format!("{{\"status_id\":1,{}", &text_of(&line)[1..]);
            assert!(matches!(
                verify(forged.as_bytes(), &keys),
                Err(VerifyError::Unparsable(_))
            ));

            let text = String::from_utf8(line).unwrap();
            let tampered = text.replacen("\"status_id\":", "\"status_id\":9", 1);
            assert_eq!(
                verify(tampered.as_bytes(), &keys),
                Err(VerifyError::NoKeyMatches)
            );
            let unsigned = rendered(&event);
            assert_eq!(verify(&unsigned, &keys), Err(VerifyError::NoSignature));
        }
    }

    fn text_of(line: &[u8]) -> String {
        String::from_utf8(line.to_vec()).unwrap()
    }

    /// Konnect's JSON lines are never taken for OCSF, whatever their strings hold.
    #[test]
    fn only_an_object_with_a_class_uid_key_is_ocsf() {
        assert!(is_ocsf(br#"{"class_uid":6003}"#));
        assert!(is_ocsf(b" {\n  \"class_uid\" : 6003}"));
        assert!(!is_ocsf(br#"{"principal_name":"class_uid","x":1}"#));
        assert!(!is_ocsf(br#"{"principal_name":"\"class_uid\":"}"#));
        assert!(!is_ocsf(br#"CEF:0|KongInc|"class_uid":|"#));
    }

    fn sign_event_line(event: &Event, key: &SigningKey, out: &mut Vec<u8>) {
        crate::format::sign_event_with_id(
            crate::format::Format::Ocsf,
            event,
            Some(Uuid::from_u128(42)),
            None,
            &FormatConfig::default(),
            key,
            out,
        );
    }

    #[test]
    fn class_activity_and_type_agree() {
        for event in events() {
            let object: Json = serde_json::from_slice(&rendered(&event)).unwrap();
            let class = object["class_uid"].as_i64().unwrap();
            assert_eq!(class / 1000, object["category_uid"].as_i64().unwrap());
            assert_eq!(
                object["type_uid"].as_i64().unwrap(),
                class * 100 + object["activity_id"].as_i64().unwrap()
            );
        }
        let [login, rename, delete, propfind] = &events()[..] else {
            unreachable!()
        };
        assert_eq!(classify(login), (AUTHENTICATION, 1, "Logon"));
        assert_eq!(classify(rename), (API_ACTIVITY, 99, "rename"));
        let object: Json = serde_json::from_slice(&rendered(rename)).unwrap();
        assert_eq!(object["activity_name"], "rename");
        assert_eq!(object["type_name"], "API Activity: Other");
        assert_eq!(classify(delete), (API_ACTIVITY, 4, "Delete"));
        assert_eq!(classify(propfind), (API_ACTIVITY, 99, "PROPFIND"));
    }

    /// One line pinned in full, read against `docs/OCSF.md` by eye.
    #[test]
    fn an_access_event_renders_as_documented() {
        let line = String::from_utf8(rendered(&events()[2])).unwrap();
        assert_eq!(
            line,
            concat!(
                r#"{"activity_id":4,"activity_name":"Delete","#,
                r#""actor":{"user":{"uid":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4"}},"#,
                r#""api":{"operation":"DELETE"},"#,
                r#""category_name":"Application Activity","category_uid":6,"#,
                r#""class_name":"API Activity","class_uid":6003,"#,
                r#""http_request":{"http_method":"DELETE","url":{"path":"/v2/control-planes","query_string":"page[size]=10"},"user_agent":"kongctl/0.3"},"#,
                r#""http_response":{"code":204},"#,
                r#""message":"DELETE /v2/control-planes answered 204","#,
                r#""metadata":{"correlation_uid":"3360194145499877252","product":{"name":"Konnect","vendor_name":"KongInc","version":"1.0"},"profiles":["trace"],"tenant_uid":"998db3e4-5cb7-4dd5-b51c-9878096a6999","uid":"00000000-0000-0000-0000-00000000002a","version":"1.8.0"},"#,
                r#""severity":"Informational","severity_id":1,"#,
                r#""src_endpoint":{"ip":"172.71.232.22"},"#,
                r#""status":"Success","status_id":1,"time":1750688927556,"#,
                r#""trace":{"uid":"3360194145499877252"},"#,
                r#""type_name":"API Activity: Delete","type_uid":600304,"#,
                r#""unmapped":{"kong_initiated":false}}"#,
            )
        );
    }
}

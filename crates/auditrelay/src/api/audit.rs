//! Self-audit: auditrelay's own API produces the events Konnect's would.
//!
//! Every token use records an authentication event (success and each failure outcome), every
//! permission check an authorization event (`Authz.<resource>`), and every state-changing
//! request an access event with its final status. They collect on the request's [`AuditTrail`]
//! and are committed by the request middleware before the response leaves, so an audited action
//! is never acknowledged without its audit record.

use std::sync::Mutex;

use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, OrgId, Region, Timestamp,
};

use crate::store::{Principal, PrincipalKind, Scope};

/// The `service` of authorization events we emit (CEF "Device Event Class ID").
pub const SERVICE: &str = "auditrelay";

/// What a request's own text may take of its self-audit events, in bytes. A client chooses
/// these strings before any token is checked, so they are cut: an unauthenticated request then
/// costs at most about 1.7 KB of stored events (one authentication event, and for a
/// state-changing method an access event too), whatever it sends. Each is well within
/// ingest's limits for the same fields (256 for ids, 8 KiB for text), so every self-audit
/// event is one a producer could have sent. A cut string ends in `…`.
pub const MAX_USER_AGENT: usize = 256;
pub const MAX_URI: usize = 256;
/// The access event's `query`: its JSON object, parameters kept whole in order while they fit.
pub const MAX_QUERY: usize = 256;
/// An HTTP method is any token; ours are at most 7 bytes.
pub const MAX_METHOD: usize = 16;

/// Who the request turned out to be, once a token was checked.
#[derive(Debug, Clone)]
pub struct Actor {
    pub org_id: OrgId,
    pub principal_id: String,
    pub principal_name: String,
}

impl From<&Principal> for Actor {
    fn from(p: &Principal) -> Self {
        Self {
            org_id: p.org_id,
            principal_id: p.id.to_string(),
            principal_name: p.name.clone(),
        }
    }
}

/// The request facts every self-audit event repeats.
#[derive(Debug, Clone)]
pub struct RequestFacts {
    pub ts: Timestamp,
    pub org_id: OrgId,
    pub region: Region,
    pub client_ip: String,
    pub uri: String,
    pub user_agent: String,
    pub trace_id: String,
}

/// The events one request produced, and the actor they are attributed to.
#[derive(Debug, Default)]
pub struct AuditTrail {
    inner: Mutex<TrailState>,
}

#[derive(Debug, Default)]
struct TrailState {
    actor: Option<Actor>,
    events: Vec<Event>,
    /// A handler took the access event to commit with its own change.
    access_taken: bool,
}

impl AuditTrail {
    pub fn take_events(&self) -> Vec<Event> {
        std::mem::take(&mut self.lock().events)
    }

    /// Whether a handler already took this request's access event (see
    /// [`AuditTrail::take_with_access`]).
    pub fn access_taken(&self) -> bool {
        self.lock().access_taken
    }

    /// The events so far plus the access event for `status`, for a handler that commits them
    /// in the same transaction as its own change: one commit instead of two, and the audit
    /// record and the change stand or fall together. If that commit fails, hand the events
    /// back with [`AuditTrail::restore`] so the real outcome is recorded instead.
    pub fn take_with_access(
        &self,
        facts: &RequestFacts,
        method: &str,
        query: String,
        status_code: u16,
    ) -> Vec<Event> {
        self.record_access(facts, method, query, status_code);
        let mut state = self.lock();
        state.access_taken = true;
        std::mem::take(&mut state.events)
    }

    /// Puts back events from [`AuditTrail::take_with_access`], dropping its access event.
    pub fn restore(&self, mut events: Vec<Event>) {
        events.pop();
        let mut state = self.lock();
        events.append(&mut state.events);
        state.events = events;
        state.access_taken = false;
    }

    pub fn record_authentication(
        &self,
        facts: &RequestFacts,
        authentication_type: AuthenticationType,
        outcome: AuthenticationOutcome,
        actor: Option<Actor>,
    ) {
        let mut state = self.lock();
        let event = base_event(
            facts,
            actor.as_ref(),
            EventDetail::Authentication {
                outcome,
                authentication_type,
            },
        );
        state.events.push(event);
        state.actor = actor;
    }

    /// A successful authentication of `principal` recorded again in another scope (a portal's),
    /// for a test event that must reach that scope's webhook.
    pub fn record_scoped_authentication(
        &self,
        facts: &RequestFacts,
        scope: &Scope,
        principal: &Principal,
    ) {
        let authentication_type = match principal.kind {
            PrincipalKind::User => AuthenticationType::Pat,
            PrincipalKind::System => AuthenticationType::Spat,
        };
        let actor = Actor::from(principal);
        let mut event = base_event(
            facts,
            Some(&actor),
            EventDetail::Authentication {
                outcome: AuthenticationOutcome::Success,
                authentication_type,
            },
        );
        event.region = scope.region.clone();
        event.portal_id = scope.portal_id;
        self.lock().events.push(event);
    }

    pub fn record_authorization(
        &self,
        facts: &RequestFacts,
        resource: &str,
        action: &str,
        granted: bool,
    ) {
        let event = self.authorization_event(facts, resource, action, granted);
        self.lock().events.push(event);
    }

    /// The authorization event [`record_authorization`](Self::record_authorization) records,
    /// without recording it: the connection test sends a copy of its own as the sample line.
    pub fn authorization_event(
        &self,
        facts: &RequestFacts,
        resource: &str,
        action: &str,
        granted: bool,
    ) -> Event {
        base_event(
            facts,
            self.lock().actor.as_ref(),
            EventDetail::Authorization {
                service: SERVICE.to_owned(),
                resource: resource.to_owned(),
                action: action.to_owned(),
                granted,
                kong_initiated: None,
            },
        )
    }

    pub fn record_access(
        &self,
        facts: &RequestFacts,
        method: &str,
        query: String,
        status_code: u16,
    ) {
        let mut state = self.lock();
        let mut event = base_event(
            facts,
            state.actor.as_ref(),
            EventDetail::Access {
                method: cut(method, MAX_METHOD),
                query,
                status_code,
                kong_initiated: None,
            },
        );
        // The pull API's access entry requires both, even when nobody was authenticated.
        event.principal_id.get_or_insert_with(String::new);
        event.actor_id = Some(String::new());
        state.events.push(event);
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, TrailState> {
        // A panic while holding this lock cannot leave the trail half-written: every
        // operation is a single push or take.
        self.inner
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn base_event(facts: &RequestFacts, actor: Option<&Actor>, detail: EventDetail) -> Event {
    Event {
        ts: facts.ts,
        org_id: actor.map_or(facts.org_id, |a| a.org_id),
        region: facts.region.clone(),
        portal_id: None,
        principal_id: actor.map(|a| a.principal_id.clone()),
        principal_name: actor.map(|a| a.principal_name.clone()),
        actor_id: None,
        client_ip: Some(facts.client_ip.clone()),
        uri: Some(cut(&facts.uri, MAX_URI)),
        user_agent: Some(cut(&facts.user_agent, MAX_USER_AGENT)),
        trace_id: Some(facts.trace_id.clone()),
        detail,
    }
}

/// Konnect renders an access event's query as a JSON object of its parameters (`{}` when
/// there are none); repeated keys keep their last value, as most frameworks do. Within
/// [`MAX_QUERY`] bytes: each key and value is cut to a quarter of it, and parameters that do
/// not fit are left out, counted under the key `…`.
pub fn query_as_json(query: Option<&str>) -> String {
    let part = MAX_QUERY / 4;
    let mut map = serde_json::Map::new();
    for (k, v) in form_pairs(query.unwrap_or_default()) {
        map.insert(cut(&k, part), serde_json::Value::String(cut(&v, part)));
    }
    let whole = serde_json::Value::Object(map.clone()).to_string();
    if whole.len() <= MAX_QUERY {
        return whole;
    }
    // Room for the count entry (`,"…":"99999 more"`), then parameters while they fit.
    let budget = MAX_QUERY - 24;
    let mut kept = serde_json::Map::new();
    let mut size = 2;
    let total = map.len();
    for (k, v) in map {
        let entry = serde_json::to_string(&k).map_or(0, |k| k.len()) + v.to_string().len() + 2;
        if size + entry > budget {
            break;
        }
        size += entry;
        kept.insert(k, v);
    }
    let left_out = total - kept.len();
    kept.insert(
        "…".to_owned(),
        serde_json::Value::String(format!("{left_out} more")),
    );
    serde_json::Value::Object(kept).to_string()
}

/// `s` if it fits in `max` bytes, else its longest prefix (on a character boundary) that fits
/// with `…` after it.
pub fn cut(s: &str, max: usize) -> String {
    if s.len() <= max {
        return s.to_owned();
    }
    let mut end = max.saturating_sub('…'.len_utf8());
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    format!("{}…", &s[..end])
}

fn form_pairs(query: &str) -> Vec<(String, String)> {
    serde_urlencoded::from_str::<Vec<(String, String)>>(query).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cut_keeps_whole_characters_and_marks_the_cut() {
        assert_eq!(cut("short", 8), "short");
        assert_eq!(cut("exactly8", 8), "exactly8");
        assert_eq!(cut("abcdefghij", 8), "abcde…");
        // "é" is two bytes: never split.
        assert_eq!(cut("ééééé", 8), "éé…");
        assert!(cut(&"x".repeat(60_000), MAX_USER_AGENT).len() <= MAX_USER_AGENT);
    }

    #[test]
    fn a_long_query_stays_within_its_bound_and_valid_json() {
        let long = format!(
            "a={}&b=2&{}",
            "x".repeat(30_000),
            (0..500)
                .map(|i| format!("k{i}=v"))
                .collect::<Vec<_>>()
                .join("&")
        );
        let json = query_as_json(Some(&long));
        assert!(json.len() <= MAX_QUERY, "{} bytes", json.len());
        let parsed: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(&json).unwrap();
        assert!(parsed["a"].as_str().unwrap().ends_with('…'));
        assert_eq!(parsed["b"], "2");
        let kept = parsed.len() - 1;
        assert_eq!(parsed["…"], format!("{} more", 502 - kept).as_str());
    }

    #[test]
    fn query_rendering() {
        assert_eq!(query_as_json(None), "{}");
        assert_eq!(query_as_json(Some("")), "{}");
        assert_eq!(
            query_as_json(Some("page%5Bsize%5D=10&filter[name]=a+b")),
            r#"{"filter[name]":"a b","page[size]":"10"}"#
        );
    }
}

//! Sign-in sessions: server-side, in memory, behind a random cookie.
//!
//! A session is created by signing in with an API token and holds that token, so every page the
//! person opens calls the API as them. The cookie `auditrelay_session` carries 256 random bits;
//! the map is keyed by their SHA-256, so not even the raw id is kept in memory. The cookie is
//! `HttpOnly; SameSite=Strict; Path=/`, and `Secure` when the request came over HTTPS (see
//! [`crate::config::SecureCookie`]). A session ends on sign-out, after `ui.session_idle_timeout`
//! without a request, `ui.session_max_age` after its sign-in, or as soon as the API stops
//! accepting its token (revoked or expired). With SQLite, sessions live in memory: a restart
//! signs everyone out, which costs a sign-in and keeps tokens off the disk. With a store several
//! nodes share (PostgreSQL), they live in it, keyed the same way, the token sealed with the
//! secrets key: a sign-in on one node works on every node, and a sign-out ends it everywhere.

use std::collections::HashMap;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};
use std::time::{Duration, Instant};

use auditrelay_core::{Grant, Permission, Role};
use axum::extract::{ConnectInfo, FromRequestParts};
use axum::http::request::Parts;
use axum::http::{HeaderMap, HeaderValue, Method, Uri, header};
use axum::response::{IntoResponse, Response};
use sha2::{Digest, Sha256};

use super::UiState;
use super::client::Api;
use crate::api::{TokenHolder, Unaudited};
use crate::clock::Clock;
use crate::config::{SecureCookie, UiConfig};
use crate::secrets::SecretBox;
use crate::store::{SessionLimits, SessionRow, StoreError, Vault};

pub const COOKIE: &str = "auditrelay_session";
/// Sessions of one principal: a person on a few browsers and devices. The 17th sign-in ends
/// that principal's session idle the longest, and nobody else's.
const MAX_PER_PRINCIPAL: usize = 16;
/// Sessions from one client address (an office behind one NAT has many people); beyond it the
/// address's own session idle the longest makes room.
const MAX_PER_CLIENT: usize = 64;
/// Enough for every person of an organization several times over; beyond it, the last resort,
/// the session idle the longest makes room.
const MAX_SESSIONS: usize = 10_000;

/// A secret that never shows in logs or debug output.
#[derive(Clone)]
pub struct Secret(String);

impl Secret {
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("<redacted>")
    }
}

/// Who signed in, as the pages show it and decide what to offer. The API decides what is
/// allowed; this only keeps the pages from offering what it would refuse.
#[derive(Debug, Clone)]
pub struct Who {
    pub name: String,
    pub grant: Grant,
}

impl Who {
    pub fn role(&self) -> Role {
        self.grant.role()
    }

    pub fn may(&self, permission: Permission) -> bool {
        self.grant.allows(permission)
    }

    /// Whether some destination is this person's to create and change (a portal admin's
    /// portal's, or any for organization admins).
    pub fn may_write_destinations(&self) -> bool {
        self.may(Permission::WriteDestination(self.grant.destination_owner()))
    }
}

/// A success message shown once, on the page a redirect leads to. (Failures are shown on the
/// page that answers the form, never carried over a redirect.)
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Flash(pub String);

/// The header `app.js` sends when a page fetches itself to refresh.
pub const REFRESH_HEADER: &str = "x-auditrelay-refresh";

struct Session {
    principal: uuid::Uuid,
    client: Option<IpAddr>,
    token: Secret,
    csrf: String,
    who: Who,
    created: Instant,
    last_seen: Instant,
    flash: Option<Flash>,
    /// When a page's own refresh was last audited (see [`QuietReads`]).
    refresh_audited: Option<Instant>,
}

/// How often a page that refreshes itself (the Replay tab while a job runs) is audited: its
/// first read once per this long, the rest not at all. What a person does — loading a page,
/// submitting a form — is audited every time.
pub const REFRESH_AUDIT_EVERY: Duration = Duration::from_secs(60);

/// Which of a request's API reads are audited. A page's own refresh (it sends
/// `X-Auditrelay-Refresh`) is quiet, but for the authentication event of its first read once a
/// minute; anything else is audited in full.
pub struct QuietReads {
    refresh: bool,
    /// Whether the next read may still be audited: the first read of a refresh that is due.
    allowance: AtomicBool,
}

impl QuietReads {
    fn audited() -> Self {
        Self {
            refresh: false,
            allowance: AtomicBool::new(true),
        }
    }

    /// How much of the next read's audit trail is left out: `None` for all of it kept.
    pub fn next(&self) -> Option<Unaudited> {
        self.refresh.then(|| Unaudited {
            keep_authentication: self.allowance.swap(false, Ordering::Relaxed),
        })
    }
}

pub type Key = [u8; 32];

/// Every live session. Cheap to clone.
#[derive(Clone)]
pub struct Sessions(Arc<SessionsInner>);

struct SessionsInner {
    keeper: Keeper,
    /// Where idle and maximum ages are measured (tests move it forward).
    clock: Clock,
    idle: Duration,
    max_age: Duration,
    secure: SecureCookie,
}

/// Where sessions are kept.
enum Keeper {
    /// In this process's memory (SQLite: one process).
    Memory(Mutex<HashMap<Key, Session>>),
    /// In the database several nodes share, the token sealed with the secrets key: a sign-in
    /// on one node works on every node.
    Shared {
        vault: Vault,
        secrets: Arc<SecretBox>,
    },
}

/// What a cookie led to.
enum Lookup {
    Found(Box<SignedInParts>),
    Expired,
    Missing,
    /// The database did not answer.
    Unavailable,
}

struct SignedInParts {
    key: Key,
    token: Secret,
    csrf: String,
    who: Who,
}

impl Sessions {
    /// Sessions kept in memory.
    pub fn new(config: &UiConfig, clock: Clock) -> Self {
        Self::keeping(Keeper::Memory(Mutex::new(HashMap::new())), config, clock)
    }

    /// Sessions kept in a shared store's `vault`, their tokens sealed by `secrets`.
    pub fn shared(config: &UiConfig, clock: Clock, vault: Vault, secrets: Arc<SecretBox>) -> Self {
        Self::keeping(Keeper::Shared { vault, secrets }, config, clock)
    }

    fn keeping(keeper: Keeper, config: &UiConfig, clock: Clock) -> Self {
        Self(Arc::new(SessionsInner {
            keeper,
            clock,
            idle: config.session_idle_timeout,
            max_age: config.session_max_age,
            secure: config.secure_cookie,
        }))
    }

    fn lock(map: &Mutex<HashMap<Key, Session>>) -> MutexGuard<'_, HashMap<Key, Session>> {
        // Every operation is a single insert, lookup or removal: a panic cannot leave a
        // session half-written.
        map.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Starts a session for a token the API accepted, from `client`; returns the cookie value.
    /// Room is made within the same principal first, then the same client address, so signing
    /// in again and again signs out only the one doing it.
    pub async fn create(
        &self,
        token: &str,
        principal: &TokenHolder,
        client: Option<IpAddr>,
    ) -> Result<String, StoreError> {
        let id = hex::encode(random_bytes());
        let csrf = hex::encode(random_bytes());
        let who = Who {
            name: principal.name.clone(),
            grant: principal.grant,
        };
        let map = match &self.0.keeper {
            Keeper::Memory(map) => map,
            Keeper::Shared { vault, secrets } => {
                let key = key_of(&id);
                let row = SessionRow {
                    key,
                    principal: principal.id,
                    client: client.map(|ip| ip.to_string()),
                    sealed_token: secrets.seal(token, &hex::encode(key)),
                    csrf,
                    name: who.name,
                    grant: who.grant,
                    created_at: self.0.clock.wall().as_millis(),
                };
                vault.create_session(&row, &self.limits()).await?;
                return Ok(id);
            }
        };
        let now = self.0.clock.instant();
        let session = Session {
            principal: principal.id,
            client,
            token: Secret(token.to_owned()),
            csrf,
            who,
            created: now,
            last_seen: now,
            flash: None,
            refresh_audited: None,
        };
        let mut map = Self::lock(map);
        // Sessions nobody comes back to would otherwise keep their tokens in memory.
        map.retain(|_, s| !self.expired(s, now));
        make_room(&mut map, MAX_PER_PRINCIPAL, |s| s.principal == principal.id);
        if client.is_some() {
            make_room(&mut map, MAX_PER_CLIENT, |s| s.client == client);
        }
        make_room(&mut map, MAX_SESSIONS, |_| true);
        map.insert(key_of(&id), session);
        Ok(id)
    }

    /// When a shared store's sessions end, as of now.
    fn limits(&self) -> SessionLimits {
        let now = self.0.clock.wall();
        let before = |age: Duration| {
            now.saturating_sub_millis(i64::try_from(age.as_millis()).unwrap_or(i64::MAX))
                .as_millis()
        };
        SessionLimits {
            idle_before: before(self.0.idle),
            created_before: before(self.0.max_age),
            per_principal: MAX_PER_PRINCIPAL as i64,
            per_client: MAX_PER_CLIENT as i64,
            total: MAX_SESSIONS as i64,
        }
    }

    fn expired(&self, session: &Session, now: Instant) -> bool {
        now.duration_since(session.last_seen) >= self.0.idle
            || now.duration_since(session.created) >= self.0.max_age
    }

    async fn lookup(&self, id: &str) -> Lookup {
        let key = key_of(id);
        let map = match &self.0.keeper {
            Keeper::Memory(map) => map,
            Keeper::Shared { vault, secrets } => {
                let now = self.0.clock.wall().as_millis();
                return match vault.touch_session(&key, now, &self.limits()).await {
                    Ok(Ok(row)) => match secrets.open(&row.sealed_token, &hex::encode(key)) {
                        Ok(token) => Lookup::Found(Box::new(SignedInParts {
                            key,
                            token: Secret(token),
                            csrf: row.csrf,
                            who: Who {
                                name: row.name,
                                grant: row.grant,
                            },
                        })),
                        // Not this installation's seal: as good as no session.
                        Err(_) => Lookup::Missing,
                    },
                    Ok(Err(true)) => Lookup::Expired,
                    Ok(Err(false)) => Lookup::Missing,
                    Err(e) => {
                        tracing::warn!(error = %e, "a UI session could not be read");
                        Lookup::Unavailable
                    }
                };
            }
        };
        let now = self.0.clock.instant();
        let mut map = Self::lock(map);
        let Some(session) = map.get_mut(&key) else {
            return Lookup::Missing;
        };
        if self.expired(session, now) {
            map.remove(&key);
            return Lookup::Expired;
        }
        session.last_seen = now;
        Lookup::Found(Box::new(SignedInParts {
            key,
            token: session.token.clone(),
            csrf: session.csrf.clone(),
            who: session.who.clone(),
        }))
    }

    /// Ends a session (sign-out, or a token the API no longer accepts).
    async fn end(&self, key: &Key) {
        match &self.0.keeper {
            Keeper::Memory(map) => {
                Self::lock(map).remove(key);
            }
            Keeper::Shared { vault, .. } => {
                if let Err(e) = vault.end_session(key).await {
                    tracing::warn!(error = %e, "a UI session could not be ended; it expires by itself");
                }
            }
        }
    }

    /// Ends the session a cookie names, if any.
    pub async fn end_by_cookie(&self, headers: &HeaderMap) {
        if let Some(id) = cookie_value(headers) {
            self.end(&key_of(&id)).await;
        }
    }

    async fn set_flash(&self, key: &Key, flash: Flash) {
        match &self.0.keeper {
            Keeper::Memory(map) => {
                if let Some(session) = Self::lock(map).get_mut(key) {
                    session.flash = Some(flash);
                }
            }
            Keeper::Shared { vault, .. } => {
                // A message not shown is not worth failing the request that saved something.
                if let Err(e) = vault.set_flash(key, &flash.0).await {
                    tracing::warn!(error = %e, "a UI message could not be kept for the next page");
                }
            }
        }
    }

    /// Whether a refresh of this session's page is due to be audited (and, if so, notes that
    /// it is).
    async fn refresh_audit_due(&self, key: &Key) -> bool {
        let map = match &self.0.keeper {
            Keeper::Memory(map) => map,
            Keeper::Shared { vault, .. } => {
                let now = self.0.clock.wall();
                let every = i64::try_from(REFRESH_AUDIT_EVERY.as_millis()).unwrap_or(i64::MAX);
                let due_before = now.saturating_sub_millis(every).as_millis();
                // In doubt, audited.
                return vault
                    .refresh_audit_due(key, now.as_millis(), due_before)
                    .await
                    .unwrap_or(true);
            }
        };
        let now = self.0.clock.instant();
        let mut sessions = Self::lock(map);
        let Some(session) = sessions.get_mut(key) else {
            return true;
        };
        let due = session
            .refresh_audited
            .is_none_or(|at| now.duration_since(at) >= REFRESH_AUDIT_EVERY);
        if due {
            session.refresh_audited = Some(now);
        }
        due
    }

    async fn take_flash(&self, key: &Key) -> Option<Flash> {
        match &self.0.keeper {
            Keeper::Memory(map) => Self::lock(map).get_mut(key).and_then(|s| s.flash.take()),
            Keeper::Shared { vault, .. } => match vault.take_flash(key).await {
                Ok(flash) => flash.map(Flash),
                Err(e) => {
                    tracing::warn!(error = %e, "a UI message could not be read");
                    None
                }
            },
        }
    }

    /// The `Set-Cookie` value that hands the browser a session id.
    /// `over_tls`: the request reached this server over TLS (its own listener's).
    pub fn cookie(&self, id: &str, headers: &HeaderMap, over_tls: bool) -> HeaderValue {
        let secure = match self.0.secure {
            SecureCookie::Always => true,
            SecureCookie::Auto => over_tls || forwarded_https(headers),
        };
        let value = format!(
            "{COOKIE}={id}; HttpOnly; SameSite=Strict; Path=/{}",
            if secure { "; Secure" } else { "" }
        );
        HeaderValue::from_str(&value).expect("a hex id makes a valid header value")
    }

    /// The `Set-Cookie` value that makes the browser forget its session id.
    pub fn clear_cookie() -> HeaderValue {
        HeaderValue::from_static(
            "auditrelay_session=; Max-Age=0; HttpOnly; SameSite=Strict; Path=/",
        )
    }
}

/// `X-Forwarded-Proto: https` (the first value, when a chain of proxies lists several).
pub fn forwarded_https(headers: &HeaderMap) -> bool {
    headers
        .get("x-forwarded-proto")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.split(',').next())
        .is_some_and(|proto| proto.trim().eq_ignore_ascii_case("https"))
}

/// Ends the sessions idle longest among those `which` selects until fewer than `max` are left.
fn make_room(map: &mut HashMap<Key, Session>, max: usize, which: impl Fn(&Session) -> bool) {
    let mut selected: Vec<(Instant, Key)> = map
        .iter()
        .filter(|(_, s)| which(s))
        .map(|(k, s)| (s.last_seen, *k))
        .collect();
    if selected.len() < max {
        return;
    }
    selected.sort_unstable();
    for (_, key) in &selected[..=selected.len() - max] {
        map.remove(key);
    }
}

fn key_of(id: &str) -> Key {
    Sha256::digest(id.as_bytes()).into()
}

fn random_bytes() -> [u8; 32] {
    let mut bytes = [0u8; 32];
    getrandom::fill(&mut bytes).expect("the operating system's random source failed");
    bytes
}

/// The session id a request's `Cookie` headers carry.
pub fn cookie_value(headers: &HeaderMap) -> Option<String> {
    headers
        .get_all(header::COOKIE)
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(';'))
        .filter_map(|pair| pair.trim().split_once('='))
        .find(|(name, _)| *name == COOKIE)
        .map(|(_, value)| value.to_owned())
        .filter(|v| !v.is_empty())
}

/// Who the browser's request comes from, passed on to the API so its audit events name the
/// real client.
#[derive(Debug, Clone, Default)]
pub struct Client {
    pub addr: Option<SocketAddr>,
    pub user_agent: Option<HeaderValue>,
}

impl Client {
    pub fn of(parts: &Parts) -> Self {
        Self {
            addr: parts
                .extensions
                .get::<ConnectInfo<SocketAddr>>()
                .map(|c| c.0),
            user_agent: parts.headers.get(header::USER_AGENT).cloned(),
        }
    }

    pub fn ip(&self) -> String {
        self.addr.map(|a| a.ip().to_string()).unwrap_or_default()
    }

    pub fn user_agent(&self) -> String {
        self.user_agent
            .as_ref()
            .and_then(|v| v.to_str().ok())
            .unwrap_or_default()
            .to_owned()
    }
}

/// A request from a signed-in person. Extracting it renews the session's idle time; without a
/// live session the request is sent to the sign-in page.
pub struct SignedIn {
    key: Key,
    token: Secret,
    pub csrf: String,
    pub who: Who,
    pub client: Client,
    sessions: Sessions,
    quiet: QuietReads,
}

impl SignedIn {
    /// The API, as this person.
    pub fn api<'a>(&'a self, ui: &'a UiState) -> Api<'a> {
        Api::new(
            &ui.api,
            &self.token,
            &self.client,
            &self.sessions,
            self.key,
            &self.quiet,
        )
    }

    pub async fn flash(&self, flash: Flash) {
        self.sessions.set_flash(&self.key, flash).await;
    }

    pub async fn take_flash(&self) -> Option<Flash> {
        self.sessions.take_flash(&self.key).await
    }

    pub async fn sign_out(&self) {
        self.sessions.end(&self.key).await;
    }
}

/// Why a request has no session: it goes to sign in, saying why when a session ended, and
/// with the page to come back to.
pub struct NotSignedIn {
    ended: Option<Ended>,
    /// The sessions' database did not answer: not a sign-in's matter.
    unavailable: bool,
    /// A form was submitted (and so not saved).
    unsaved: bool,
    /// The page to return to after signing in: the page itself for a read, the page the form
    /// was on for a submission.
    back: Option<String>,
}

/// How the session a cookie named came to an end.
#[derive(Clone, Copy)]
enum Ended {
    /// Idle or maximum age reached.
    Expired,
    /// The server does not know it: it restarted (with SQLite, sessions live in memory), or the
    /// session made room for others.
    Unknown,
}

impl NotSignedIn {
    fn of(parts: &Parts, ended: Option<Ended>) -> Self {
        let reads = matches!(parts.method, Method::GET | Method::HEAD);
        let back = match reads {
            true => parts.uri.path_and_query().map(|p| p.as_str().to_owned()),
            false => parts
                .headers
                .get(header::REFERER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.parse::<Uri>().ok())
                .and_then(|uri| uri.path_and_query().map(|p| p.as_str().to_owned())),
        };
        Self {
            ended,
            unavailable: false,
            unsaved: !reads,
            back: back.filter(|path| return_path(path).is_some()),
        }
    }
}

/// `path` when it is a page of the UI a sign-in may return to: a path of our own (never
/// another site, whatever the Referer or a crafted link says), under `/ui/` after a browser
/// resolves it (no `.` or `..` segment, written plainly or percent-encoded), fit for a
/// `Location` header (visible ASCII), and not the sign-in itself.
pub fn return_path(path: &str) -> Option<&str> {
    let route = path.split(['?', '#']).next().unwrap_or_default();
    let dot_segment = route.split('/').any(|segment| {
        let segment = segment.to_ascii_lowercase().replace("%2e", ".");
        segment == "." || segment == ".."
    });
    let ours = path.starts_with("/ui/")
        && path.bytes().all(|b| b.is_ascii_graphic())
        && !path.contains('\\')
        && !dot_segment
        && !path.starts_with("/ui/sign-");
    ours.then_some(path)
}

impl IntoResponse for NotSignedIn {
    fn into_response(self) -> Response {
        if self.unavailable {
            return super::views::error_page(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "Try again in a moment",
                "The server could not reach its database to find your session.",
            );
        }
        let mut query = url::form_urlencoded::Serializer::new(String::new());
        match self.ended {
            Some(Ended::Expired) => query.append_pair("expired", "1"),
            Some(Ended::Unknown) => query.append_pair("unknown", "1"),
            None => &mut query,
        };
        if self.ended.is_some() && self.unsaved {
            query.append_pair("unsaved", "1");
        }
        if let Some(back) = &self.back {
            query.append_pair("next", back);
        }
        let query = query.finish();
        let to = match query.is_empty() {
            true => "/ui/sign-in".to_owned(),
            false => format!("/ui/sign-in?{query}"),
        };
        let mut response = super::see_other(&to);
        if self.ended.is_some() {
            response
                .headers_mut()
                .insert(header::SET_COOKIE, Sessions::clear_cookie());
        }
        response
    }
}

impl FromRequestParts<UiState> for SignedIn {
    type Rejection = NotSignedIn;

    async fn from_request_parts(parts: &mut Parts, ui: &UiState) -> Result<Self, NotSignedIn> {
        let Some(id) = cookie_value(&parts.headers) else {
            return Err(NotSignedIn::of(parts, None));
        };
        match ui.sessions.lookup(&id).await {
            Lookup::Found(found) => {
                let quiet = match parts.headers.contains_key(REFRESH_HEADER) {
                    true => QuietReads {
                        refresh: true,
                        allowance: AtomicBool::new(ui.sessions.refresh_audit_due(&found.key).await),
                    },
                    false => QuietReads::audited(),
                };
                Ok(SignedIn {
                    key: found.key,
                    token: found.token,
                    csrf: found.csrf,
                    who: found.who,
                    client: Client::of(parts),
                    sessions: ui.sessions.clone(),
                    quiet,
                })
            }
            Lookup::Expired => Err(NotSignedIn::of(parts, Some(Ended::Expired))),
            Lookup::Missing => Err(NotSignedIn::of(parts, Some(Ended::Unknown))),
            Lookup::Unavailable => Err(NotSignedIn {
                unavailable: true,
                ..NotSignedIn::of(parts, None)
            }),
        }
    }
}

/// Ends the session behind an API client whose token stopped working.
pub(super) async fn end_session(sessions: &Sessions, key: &Key) {
    sessions.end(key).await;
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(idle_ms: u64, max_ms: u64) -> UiConfig {
        UiConfig {
            session_idle_timeout: Duration::from_millis(idle_ms),
            session_max_age: Duration::from_millis(max_ms),
            product_name: "Konnect".into(),
            secure_cookie: SecureCookie::Auto,
        }
    }

    fn principal() -> TokenHolder {
        TokenHolder {
            id: uuid::Uuid::nil(),
            name: "admin".into(),
            grant: Grant::new(Role::OrgAdmin, None).unwrap(),
        }
    }

    fn principal_with(id: u128) -> TokenHolder {
        TokenHolder {
            id: uuid::Uuid::from_u128(id),
            ..principal()
        }
    }

    fn memory(sessions: &Sessions) -> MutexGuard<'_, HashMap<Key, Session>> {
        match &sessions.0.keeper {
            Keeper::Memory(map) => Sessions::lock(map),
            Keeper::Shared { .. } => unreachable!("these tests keep sessions in memory"),
        }
    }

    fn count(sessions: &Sessions, which: impl Fn(&Session) -> bool) -> usize {
        memory(sessions).values().filter(|s| which(s)).count()
    }

    #[tokio::test]
    async fn signing_in_again_and_again_signs_out_only_the_one_doing_it() {
        let sessions = Sessions::new(&config(60_000, 60_000), Clock::default());
        let office: IpAddr = "192.0.2.1".parse().unwrap();
        let mut others = Vec::new();
        for n in 0..5 {
            let holder = principal_with(100 + n);
            let id = sessions.create("kpat_x", &holder, Some(office)).await;
            others.push(id.unwrap());
        }
        let flooder = principal_with(1);
        let mut last = String::new();
        for _ in 0..MAX_SESSIONS + 1 {
            let client = Some("198.51.100.7".parse().unwrap());
            last = sessions.create("kpat_f", &flooder, client).await.unwrap();
        }
        assert_eq!(
            count(&sessions, |s| s.principal == flooder.id),
            MAX_PER_PRINCIPAL
        );
        assert!(
            matches!(sessions.lookup(&last).await, Lookup::Found(_)),
            "the newest stays"
        );
        for id in &others {
            assert!(
                matches!(sessions.lookup(id).await, Lookup::Found(_)),
                "others stay signed in"
            );
        }
    }

    #[tokio::test]
    async fn one_client_address_makes_room_among_its_own_sessions() {
        let sessions = Sessions::new(&config(60_000, 60_000), Clock::default());
        let elsewhere = sessions
            .create(
                "kpat_e",
                &principal_with(999),
                Some("203.0.113.5".parse().unwrap()),
            )
            .await
            .unwrap();
        let nat: IpAddr = "192.0.2.1".parse().unwrap();
        for n in 0..(MAX_PER_CLIENT as u128 * 2) {
            let holder = principal_with(n);
            sessions.create("kpat_n", &holder, Some(nat)).await.unwrap();
        }
        assert_eq!(count(&sessions, |s| s.client == Some(nat)), MAX_PER_CLIENT);
        assert!(matches!(
            sessions.lookup(&elsewhere).await,
            Lookup::Found(_)
        ));
    }

    #[tokio::test]
    async fn ids_are_random_and_only_their_hash_is_kept() {
        let sessions = Sessions::new(&config(60_000, 60_000), Clock::default());
        let a = sessions.create("kpat_a", &principal(), None).await.unwrap();
        let b = sessions.create("kpat_a", &principal(), None).await.unwrap();
        assert_ne!(a, b);
        assert_eq!(a.len(), 64);
        let map = memory(&sessions);
        assert!(map.contains_key(&key_of(&a)));
        assert!(map.keys().all(|k| hex::encode(k) != a));
    }

    #[tokio::test]
    async fn sessions_expire_and_end() {
        let sessions = Sessions::new(&config(60_000, 60_000), Clock::default());
        let id = sessions.create("kpat_a", &principal(), None).await.unwrap();
        assert!(matches!(sessions.lookup(&id).await, Lookup::Found(_)));
        assert!(matches!(sessions.lookup("nope").await, Lookup::Missing));
        sessions.end(&key_of(&id)).await;
        assert!(matches!(sessions.lookup(&id).await, Lookup::Missing));

        let sessions = Sessions::new(&config(0, 0), Clock::default());
        let id = sessions.create("kpat_a", &principal(), None).await.unwrap();
        assert!(matches!(sessions.lookup(&id).await, Lookup::Expired));
        assert!(matches!(sessions.lookup(&id).await, Lookup::Missing));
    }

    #[test]
    fn a_sign_in_returns_only_to_a_page_of_the_ui() {
        for ours in [
            "/ui/destinations",
            "/ui/destinations/new?x=1",
            "/ui/portals/a.b",
        ] {
            assert_eq!(return_path(ours), Some(ours));
        }
        for other in [
            "https://evil.example/",
            "//evil.example/ui/",
            "/ui\\evil",
            "/ui/\\evil.example",
            "/ui/../v3/audit-log-destinations",
            "/ui/%2E%2e/v3",
            "/ui/./sign-in",
            "/ui/é",
            "/ui/a b",
            "/ui/a\r\nSet-Cookie: x",
            "/ui/sign-in",
            "/api/x",
        ] {
            assert_eq!(return_path(other), None, "{other:?}");
        }
    }

    #[test]
    fn cookies() {
        let sessions = Sessions::new(&config(60_000, 60_000), Clock::default());
        let plain = sessions.cookie("abc", &HeaderMap::new(), false);
        assert!(
            sessions
                .cookie("abc", &HeaderMap::new(), true)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );
        assert_eq!(
            plain.to_str().unwrap(),
            "auditrelay_session=abc; HttpOnly; SameSite=Strict; Path=/"
        );
        let mut proxied = HeaderMap::new();
        proxied.insert("x-forwarded-proto", HeaderValue::from_static("HTTPS, http"));
        assert!(
            sessions
                .cookie("abc", &proxied, false)
                .to_str()
                .unwrap()
                .ends_with("; Secure")
        );

        let mut headers = HeaderMap::new();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("a=1; auditrelay_session=xyz"),
        );
        assert_eq!(cookie_value(&headers).as_deref(), Some("xyz"));
        headers.clear();
        headers.append(
            header::COOKIE,
            HeaderValue::from_static("auditrelay_session="),
        );
        assert_eq!(cookie_value(&headers), None);
    }
}

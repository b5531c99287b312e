//! `auditrelay emit`: sends sample events of every type to a running server through
//! `POST /v1/events`, so a new installation shows stored (and, with a webhook, delivered)
//! events within minutes, before any real producer is wired up.
//!
//! The org events (authentication, authorization, gateway access) go in one NDJSON request to
//! the region `--region` names; Dev Portal events, which are developer logins only, go in a
//! second request to the portal `--portal` names, the one `--create-portal` makes (or finds by
//! name), or else the first portal the token can list. A new user should not have to know the
//! ingest rules to see them work, so the samples are built by [`org_events`] and
//! [`portal_events`], whose every output the server accepts (the integration tests send them).
//!
//! The token only ever goes into the `Authorization` header (marked sensitive): it is never
//! printed, logged, or shown by `Debug`.

use std::time::Duration;

use anyhow::{Context as _, anyhow, bail};
use auditrelay_core::{
    AuthenticationOutcome as Outcome, AuthenticationType as Method, EventType, PortalId, Region,
    Timestamp,
};
use clap::{Args, ValueEnum};
use reqwest::StatusCode;
use serde_json::{Map, Value, json};

use super::{ServerArgs, parse_portal, parse_region, problem};
use crate::client::ApiClient;
use crate::client::wire::{Accepted, ListPage, Portal};
use crate::clock;

/// How long one request may take; an ingest waits for a durable commit, which is quick.
const REQUEST_TIMEOUT: Duration = Duration::from_secs(30);
/// The `User-Agent` of emit's own requests, distinct from every sample's, so the server's
/// self-audit events of the run are easy to tell from the samples.
const USER_AGENT: &str = concat!("auditrelay-emit/", env!("CARGO_PKG_VERSION"));
/// The most events of each type one run sends: 3,000 org events stay well inside the server's
/// default limits (10,000 events and 10 MiB a request).
const MAX_COUNT: u16 = 1000;

const EXAMPLES: &str = "\
Examples:
  auditrelay emit --token \"$TOKEN\"                    3 events of each type, default region
  auditrelay emit --region eu --count 10              the token from $AUDITRELAY_TOKEN
  auditrelay emit --create-portal \"Developer Portal\"  make (or reuse) a portal for the logins
  auditrelay emit --only portal --portal <ID>         with a token bound to that portal";

#[derive(Debug, Args)]
#[command(after_help = EXAMPLES)]
#[command(mut_arg("token", |a| a.help("A token that may ingest (org-admin, or event-producer); never printed")))]
pub struct EmitArgs {
    #[command(flatten)]
    pub server: ServerArgs,
    /// The region of the org events, sent as a path prefix (`eu` → /eu/v1/events)
    /// [default: the server's default region].
    #[arg(long, value_name = "REGION", value_parser = parse_one_region)]
    pub region: Option<Region>,
    /// How many events of each type to send (1 to 1000).
    #[arg(
        long,
        value_name = "N",
        default_value_t = 3,
        value_parser = clap::value_parser!(u16).range(1..=i64::from(MAX_COUNT))
    )]
    pub count: u16,
    /// Send the Dev Portal events to this portal [default: the first portal the token can
    /// list; none when it can list none].
    #[arg(long, value_name = "ID", value_parser = parse_portal, conflicts_with = "create_portal")]
    pub portal: Option<PortalId>,
    /// Create a portal with this name (in --region) for the Dev Portal events, or use the
    /// portal that already has this name. Needs an org-admin token.
    #[arg(long, value_name = "NAME")]
    pub create_portal: Option<String>,
    /// Send only the org events, or only the Dev Portal events.
    #[arg(long, value_name = "SCOPE", value_enum)]
    pub only: Option<Only>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Only {
    /// Authentication, authorization and gateway_access events of the organization.
    Org,
    /// Developer logins of one portal.
    Portal,
}

fn parse_one_region(s: &str) -> Result<Region, String> {
    if s == Region::GLOBAL {
        return Err("`global` addresses every region; emit sends to one, such as `eu`".into());
    }
    parse_region(s)
}

pub async fn run(args: EmitArgs) -> anyhow::Result<()> {
    if args.only == Some(Only::Org) && (args.portal.is_some() || args.create_portal.is_some()) {
        bail!("--only org sends no Dev Portal events: drop --portal and --create-portal");
    }
    let server = Server {
        api: ApiClient::new(
            &args.server.url,
            args.server.token,
            USER_AGENT,
            REQUEST_TIMEOUT,
        )?,
    };
    let region = args.region.as_ref();
    // Before anything is sent: a bad token or an unreachable server fails here, sending nothing.
    let portal = match args.only {
        Some(Only::Org) => None,
        _ => {
            Some(choose_portal(&server, args.portal, args.create_portal.as_deref(), region).await?)
        }
    };
    if args.only == Some(Only::Portal)
        && let Some(PortalChoice::Skip(why)) = &portal
    {
        bail!("--only portal needs a portal, and {why}");
    }

    let now = clock::now();
    let count = usize::from(args.count);
    let mut ids = TraceIds::random()?;
    if args.only != Some(Only::Portal) {
        let events = org_events(now, count, &mut ids);
        server.ingest(region, &events, "org events").await?;
        let to = region.map_or_else(
            || "the server's default region".to_owned(),
            |r| format!("region {r}"),
        );
        println!(
            "sent {} org events ({count} authentication, {count} authorization, {count} gateway_access) to {to}",
            events.len()
        );
    }
    match portal {
        None => {}
        Some(PortalChoice::Skip(why)) => println!("sent no portal events: {why}"),
        Some(PortalChoice::Send(target)) => {
            let events = portal_events(now, count, target.id, &mut ids);
            server.ingest(region, &events, "portal events").await?;
            let n = events.len();
            let noun = if n == 1 { "event" } else { "events" };
            println!(
                "sent {n} portal {noun} (developer logins) to portal {}{}",
                target.id, target.about
            );
        }
    }
    Ok(())
}

/// Trace ids shaped like the server's own (unsigned 64-bit decimals). SplitMix64 over a
/// counter: its mixing step is a bijection, so one run never repeats an id, and a test can fix
/// the seed to get the same ids every time.
#[derive(Debug, Clone)]
pub struct TraceIds(u64);

impl TraceIds {
    pub fn from_seed(seed: u64) -> Self {
        Self(seed)
    }

    /// Seeded from the operating system, so runs do not repeat each other's ids.
    pub fn random() -> anyhow::Result<Self> {
        Ok(Self(getrandom::u64().map_err(|e| {
            anyhow!("the operating system's random source failed: {e}")
        })?))
    }

    fn next_id(&mut self) -> String {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        (z ^ (z >> 31)).to_string()
    }
}

/// People and systems of the organization: `(principal_id, principal_name)`.
const MEMBERS: [(&str, &str); 4] = [
    ("5f0b8d6e-3c1a-4f27-9a8e-2d4b6c8e0f13", "alice@example.com"),
    ("9c2e4a71-8b3d-4e5f-a6c7-1d2e3f4a5b6c", "bob@example.com"),
    ("e1d2c3b4-a5f6-4789-8abc-def012345678", "ci-deploy"),
    ("0a1b2c3d-4e5f-4a6b-8c7d-9e0f1a2b3c4d", "carol@example.com"),
];

/// Developers of the portal: `(principal_id, principal_name)`.
const DEVELOPERS: [(&str, &str); 3] = [
    (
        "a3d2699a-0ed3-4417-bb10-d8e74a1513a4",
        "dana@partner.example",
    ),
    ("7e6f5d4c-3b2a-4190-8f7e-6d5c4b3a2910", "eve@example.org"),
    ("c0ffee00-1234-4abc-9def-0123456789ab", "frank@example.net"),
];

const USER_AGENTS: [&str; 6] = [
    "Mozilla/5.0 (Macintosh; Intel Mac OS X 14_5) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.5 Safari/605.1.15",
    "curl/8.7.1",
    "kongctl/0.3.0",
    "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/126.0.0.0 Safari/537.36",
    "terraform-provider-konnect/2.4.1",
    "deck/1.39.0",
];

/// Org logins: a success first, then failures, so even `--count 1`… `3` shows both kinds.
const ORG_LOGINS: [(Outcome, Method, &str); 9] = [
    (Outcome::Success, Method::Basic, "/api/v2/authenticate"),
    (
        Outcome::InvalidPassword,
        Method::Basic,
        "/api/v2/authenticate",
    ),
    (Outcome::TokenExpired, Method::Pat, "/v2/control-planes"),
    (Outcome::Success, Method::Sso, "/api/v2/authenticate/sso"),
    (Outcome::Locked, Method::Basic, "/api/v2/authenticate"),
    (Outcome::Success, Method::Spat, "/v3/audit-logs"),
    (Outcome::Disabled, Method::Pat, "/v2/control-planes"),
    (
        Outcome::NotFound,
        Method::Github,
        "/api/v2/authenticate/github",
    ),
    (Outcome::Invalid, Method::Invalid, "/v2/teams"),
];

/// Developer logins to a portal.
const PORTAL_LOGINS: [(Outcome, Method, &str); 5] = [
    (
        Outcome::Success,
        Method::Basic,
        "/api/v2/developer/authenticate",
    ),
    (
        Outcome::InvalidPassword,
        Method::Basic,
        "/api/v2/developer/authenticate",
    ),
    (
        Outcome::NotFound,
        Method::Basic,
        "/api/v2/developer/authenticate",
    ),
    (
        Outcome::Success,
        Method::Sso,
        "/api/v2/developer/authenticate/sso",
    ),
    (
        Outcome::Locked,
        Method::Basic,
        "/api/v2/developer/authenticate",
    ),
];

/// Permission checks: `(resource, action, granted, kong_initiated)`.
const CHECKS: [(&str, &str, bool, Option<bool>); 6] = [
    ("control-planes", "list", true, None),
    ("audit-log-webhook", "edit", false, None),
    ("api-products", "create", true, None),
    ("teams", "delete", false, None),
    ("control-planes", "retrieve", true, Some(true)),
    ("portals", "edit", true, None),
];

/// Requests through the API: `(method, uri, query, status_code)`. The query is a JSON object
/// rendered as text, as Konnect's access entries carry it.
const REQUESTS: [(&str, &str, &str, u16); 8] = [
    ("GET", "/v2/control-planes", r#"{"page[size]":"10"}"#, 200),
    ("POST", "/v2/control-planes", "{}", 201),
    ("PATCH", "/v2/audit-log-webhook", "{}", 403),
    (
        "DELETE",
        "/v2/control-planes/4c5f2a1e-9b8d-4e7f-a6c5-3b2a1f0e9d8c",
        "{}",
        204,
    ),
    (
        "GET",
        "/v3/audit-logs",
        r#"{"filter[type]":"authentication"}"#,
        200,
    ),
    (
        "PUT",
        "/v2/teams/6a7b8c9d-0e1f-4a2b-8c3d-4e5f6a7b8c9d/users",
        "{}",
        404,
    ),
    ("POST", "/v2/api-products", "{}", 500),
    ("GET", "/v2/portals", "{}", 401),
];

/// `count` org events of each type, interleaved as a live stream would be, all at `now`.
pub fn org_events(now: Timestamp, count: usize, ids: &mut TraceIds) -> Vec<Value> {
    let ts = now.to_rfc3339_millis();
    let mut events = Vec::with_capacity(3 * count);
    for i in 0..count {
        let (principal_id, principal_name) = MEMBERS[i % MEMBERS.len()];
        let (outcome, method, uri) = ORG_LOGINS[i % ORG_LOGINS.len()];
        events.push(login(
            &ts,
            i,
            ids,
            outcome,
            method,
            uri,
            (principal_id, principal_name),
        ));

        let (resource, action, granted, kong_initiated) = CHECKS[i % CHECKS.len()];
        events.push(sample(
            EventType::Authorization,
            &ts,
            i,
            ids,
            [
                ("service", "konnect".into()),
                ("resource", resource.into()),
                ("action", action.into()),
                ("granted", granted.into()),
                ("principal_id", principal_id.into()),
                ("principal_name", principal_name.into()),
                ("uri", format!("/v2/{resource}").into()),
                ("kong_initiated", kong_initiated.into()),
            ],
        ));

        let (method, uri, query, status_code) = REQUESTS[i % REQUESTS.len()];
        events.push(sample(
            EventType::Access,
            &ts,
            i,
            ids,
            [
                ("principal_id", principal_id.into()),
                ("principal_name", principal_name.into()),
                // Empty unless someone acts through another's token; every fifth request does.
                (
                    "actor_id",
                    if i % 5 == 4 { MEMBERS[0].0 } else { "" }.into(),
                ),
                ("method", method.into()),
                ("uri", uri.into()),
                ("query", query.into()),
                ("status_code", status_code.into()),
            ],
        ));
    }
    events
}

/// `count` developer logins to `portal`, all at `now`.
pub fn portal_events(
    now: Timestamp,
    count: usize,
    portal: PortalId,
    ids: &mut TraceIds,
) -> Vec<Value> {
    let ts = now.to_rfc3339_millis();
    (0..count)
        .map(|i| {
            let (outcome, method, uri) = PORTAL_LOGINS[i % PORTAL_LOGINS.len()];
            let mut event = login(
                &ts,
                i,
                ids,
                outcome,
                method,
                uri,
                DEVELOPERS[i % DEVELOPERS.len()],
            );
            event["portal_id"] = portal.to_string().into();
            event
        })
        .collect()
}

/// An authentication event; who logged in is unknown when the account was not found or the
/// credentials were unreadable, as in Konnect's entries.
fn login(
    ts: &str,
    i: usize,
    ids: &mut TraceIds,
    outcome: Outcome,
    method: Method,
    uri: &str,
    (principal_id, principal_name): (&str, &str),
) -> Value {
    let known = !matches!(outcome, Outcome::NotFound | Outcome::Invalid);
    sample(
        EventType::Authentication,
        ts,
        i,
        ids,
        [
            ("successful", (outcome == Outcome::Success).into()),
            ("outcome", outcome.as_str().into()),
            ("authentication_type", method.as_str().into()),
            ("uri", uri.into()),
            ("principal_id", known.then_some(principal_id).into()),
            ("principal_name", known.then_some(principal_name).into()),
        ],
    )
}

/// The `i`-th sample of a type: the fields every type carries, then `fields`, where `null`
/// marks an optional field this sample leaves out (the server keeps exactly the fields sent).
fn sample<const N: usize>(
    kind: EventType,
    ts: &str,
    i: usize,
    ids: &mut TraceIds,
    fields: [(&str, Value); N],
) -> Value {
    let mut event = Map::new();
    event.insert("type".into(), kind.as_str().into());
    event.insert("ts".into(), ts.into());
    event.insert("client_ip".into(), client_ip(i).into());
    event.insert(
        "user_agent".into(),
        USER_AGENTS[i % USER_AGENTS.len()].into(),
    );
    event.insert("trace_id".into(), ids.next_id().into());
    for (key, value) in fields {
        if !value.is_null() {
            event.insert(key.into(), value);
        }
    }
    Value::Object(event)
}

/// Addresses from the documentation ranges (RFC 5737, RFC 3849), which name no real host.
fn client_ip(i: usize) -> String {
    let n = 10 + i % 200;
    match i % 4 {
        0 => format!("203.0.113.{n}"),
        1 => format!("198.51.100.{n}"),
        2 => format!("192.0.2.{n}"),
        _ => format!("2001:db8::{n:x}"),
    }
}

/// The server, with the requests emit makes of it.
struct Server {
    api: ApiClient,
}

/// Where the Dev Portal events go, or why they are not sent.
enum PortalChoice {
    Send(PortalTarget),
    Skip(String),
}

struct PortalTarget {
    id: PortalId,
    /// What the summary adds after the id, `" (Developer Portal, region eu; created)"`, when
    /// emit looked the portal up.
    about: String,
}

impl Server {
    /// Sends `events` as one NDJSON request; all of them are stored, or an error says why not.
    async fn ingest(
        &self,
        region: Option<&Region>,
        events: &[Value],
        what: &str,
    ) -> anyhow::Result<()> {
        let body: String = events.iter().map(|e| format!("{e}\n")).collect();
        let request = self
            .api
            .http()
            .post(self.api.url(region, "/v1/events"))
            .header(reqwest::header::CONTENT_TYPE, "application/x-ndjson")
            .body(body);
        let (status, body) = self.api.send(request, what).await?;
        if !status.is_success() {
            return Err(refused(
                &format!("The server refused the {what}"),
                status,
                &body,
            ));
        }
        let accepted = serde_json::from_slice::<Accepted>(&body)
            .map(|b| b.accepted)
            .with_context(|| {
                format!("The server accepted the {what} but its answer is not {{\"accepted\": N}}")
            })?;
        if accepted != events.len() {
            bail!("The server accepted {accepted} of {} {what}", events.len());
        }
        Ok(())
    }

    /// One page of `GET /v3/portals` (oldest first); `None` when the token may not list them.
    async fn portal_page(&self, url: &str) -> anyhow::Result<Option<ListPage<Portal>>> {
        let (status, body) = self
            .api
            .send(self.api.http().get(url), "the portal list request")
            .await?;
        match status {
            StatusCode::FORBIDDEN => Ok(None),
            s if s.is_success() => serde_json::from_slice(&body)
                .map(Some)
                .context("GET /v3/portals answered something other than a portal list"),
            s => Err(refused("The server refused to list the portals", s, &body)),
        }
    }

    /// Creates a portal named `name`, or finds the one that has that name already.
    async fn create_portal(
        &self,
        region: Option<&Region>,
        name: &str,
    ) -> anyhow::Result<(Portal, bool)> {
        let request = self
            .api
            .http()
            .post(self.api.url(region, "/v3/portals"))
            .json(&json!({ "name": name }));
        let (status, body) = self
            .api
            .send(request, "the portal creation request")
            .await?;
        match status {
            StatusCode::CREATED => Ok((
                serde_json::from_slice(&body)
                    .context("POST /v3/portals answered something other than a portal")?,
                true,
            )),
            // Running the same command twice should work: the portal from the first run is reused.
            StatusCode::CONFLICT => match self.find_portal(name).await? {
                Some(portal) => Ok((portal, false)),
                None => Err(refused(
                    "The server refused to create the portal",
                    status,
                    &body,
                )),
            },
            s => Err(refused("The server refused to create the portal", s, &body)),
        }
    }

    /// The portal named `name`, page by page (names are unique in the organization).
    async fn find_portal(&self, name: &str) -> anyhow::Result<Option<Portal>> {
        let mut url = self.api.url(None, "/v3/portals?page%5Bsize%5D=100");
        while let Some(page) = self.portal_page(&url).await? {
            if let Some(portal) = page.data.into_iter().find(|p| p.name == name.trim()) {
                return Ok(Some(portal));
            }
            // `next` is a path with its query, relative to the base URL.
            match page.meta.next {
                Some(next) => url = format!("{}{next}", self.api.base()),
                None => break,
            }
        }
        Ok(None)
    }
}

/// Decides where the Dev Portal events go.
async fn choose_portal(
    server: &Server,
    given: Option<PortalId>,
    create: Option<&str>,
    region: Option<&Region>,
) -> anyhow::Result<PortalChoice> {
    if let Some(id) = given {
        return Ok(PortalChoice::Send(PortalTarget {
            id,
            about: String::new(),
        }));
    }
    let (portal, how) = match create {
        Some(name) => {
            let (portal, created) = server.create_portal(region, name).await?;
            (portal, if created { "created" } else { "found by name" })
        }
        None => {
            let first = server.api.url(None, "/v3/portals?page%5Bsize%5D=1");
            let Some(page) = server.portal_page(&first).await? else {
                return Ok(PortalChoice::Skip(
                    "this token may not list portals (pass --portal ID)".to_owned(),
                ));
            };
            let Some(portal) = page.data.into_iter().next() else {
                return Ok(PortalChoice::Skip(
                    "no portal exists (add --create-portal NAME to make one)".to_owned(),
                ));
            };
            (portal, "the first listed")
        }
    };
    let id = PortalId::parse(&portal.id).with_context(|| {
        format!(
            "The server named a portal with the id `{}`, not a UUID",
            portal.id
        )
    })?;
    Ok(PortalChoice::Send(PortalTarget {
        id,
        about: format!(" ({}, region {}; {how})", portal.name, portal.region),
    }))
}

/// A non-2xx answer as a readable error, with emit's advice when the token's role falls short.
fn refused(context: &str, status: StatusCode, body: &[u8]) -> anyhow::Error {
    let hint = (status == StatusCode::FORBIDDEN).then_some(
        "The token's role does not allow this: sending events needs org-admin or event-producer (a token bound to one portal sends only that portal's events: --only portal --portal ID), and --create-portal needs org-admin.",
    );
    problem::refused(context, status, body, hint)
}

#[cfg(test)]
mod tests {
    use std::collections::{BTreeMap, HashSet};

    use super::*;

    fn now() -> Timestamp {
        Timestamp::parse_rfc3339("2026-11-20T10:00:00.123Z").unwrap()
    }

    fn kinds(events: &[Value]) -> BTreeMap<String, usize> {
        let mut counts = BTreeMap::new();
        for e in events {
            *counts
                .entry(e["type"].as_str().unwrap().to_owned())
                .or_default() += 1;
        }
        counts
    }

    #[test]
    fn org_events_hold_count_of_each_type_at_now_with_unique_trace_ids() {
        let mut ids = TraceIds::from_seed(7);
        let events = org_events(now(), 20, &mut ids);
        let expected: BTreeMap<String, usize> = EventType::ALL
            .iter()
            .map(|t| (t.as_str().to_owned(), 20))
            .collect();
        assert_eq!(kinds(&events), expected);
        let portal = portal_events(now(), 20, PortalId::new_v4(), &mut ids);
        let traces: HashSet<&str> = events
            .iter()
            .chain(&portal)
            .map(|e| e["trace_id"].as_str().unwrap())
            .collect();
        assert_eq!(traces.len(), 80, "every trace id is new");
        for e in events.iter().chain(&portal) {
            assert_eq!(e["ts"], "2026-11-20T10:00:00.123Z");
            assert!(e.get("org_id").is_none(), "the token's organization: {e}");
        }
        assert!(events.iter().all(|e| e.get("portal_id").is_none()));
    }

    #[test]
    fn the_first_three_show_both_sides_of_every_type() {
        let events = org_events(now(), 3, &mut TraceIds::from_seed(1));
        let of = |kind: EventType| events.iter().filter(move |e| e["type"] == kind.as_str());
        let successes: HashSet<bool> = of(EventType::Authentication)
            .map(|e| e["successful"].as_bool().unwrap())
            .collect();
        assert_eq!(successes.len(), 2, "successful and failed logins");
        let granted: HashSet<bool> = of(EventType::Authorization)
            .map(|e| e["granted"].as_bool().unwrap())
            .collect();
        assert_eq!(granted.len(), 2, "granted and denied checks");
        let statuses: HashSet<u64> = of(EventType::Access)
            .map(|e| e["status_code"].as_u64().unwrap() / 100)
            .collect();
        assert!(
            statuses.contains(&2) && statuses.contains(&4),
            "{statuses:?}"
        );
    }

    #[test]
    fn logins_agree_with_their_outcome() {
        let mut ids = TraceIds::from_seed(3);
        let portal = PortalId::new_v4();
        let org = org_events(now(), ORG_LOGINS.len(), &mut ids);
        let developers = portal_events(now(), PORTAL_LOGINS.len(), portal, &mut ids);
        let logins = org
            .iter()
            .filter(|e| e["type"] == "authentication")
            .chain(&developers);
        for e in logins {
            let success = e["outcome"] == "success";
            assert_eq!(e["successful"], success, "{e}");
            assert!(Outcome::parse(e["outcome"].as_str().unwrap()).is_some());
            assert!(Method::parse(e["authentication_type"].as_str().unwrap()).is_some());
        }
        for e in &developers {
            assert_eq!(e["portal_id"], portal.to_string());
            assert!(
                e["uri"]
                    .as_str()
                    .unwrap()
                    .starts_with("/api/v2/developer/authenticate"),
                "{e}"
            );
        }
    }

    #[test]
    fn trace_ids_repeat_for_a_seed_and_differ_between_seeds() {
        let take = |seed| {
            let mut ids = TraceIds::from_seed(seed);
            (0..3).map(|_| ids.next_id()).collect::<Vec<_>>()
        };
        assert_eq!(take(1), take(1));
        assert_ne!(take(1), take(2));
    }

    #[test]
    fn refusals_show_detail_parameters_hint_and_trace() {
        let body = br#"{"status":400,"title":"Bad Request","instance":"kong:trace:42","detail":"Invalid event at line 2; nothing was stored","invalid_parameters":[{"field":"ts","rule":"invalid","source":"line 2","reason":"is more than 5m in the future"}]}"#;
        let e = refused(
            "The server refused the org events",
            StatusCode::BAD_REQUEST,
            body,
        );
        assert_eq!(
            e.to_string(),
            "The server refused the org events: HTTP 400 Bad Request: Invalid event at line 2; nothing was stored\n  line 2: ts is more than 5m in the future [invalid]\n  (server log and audit trail: kong:trace:42)"
        );
        let e = refused(
            "x",
            StatusCode::UNAUTHORIZED,
            br#"{"detail":"Unauthorized"}"#,
        );
        assert!(
            e.to_string().contains("--token or $AUDITRELAY_TOKEN"),
            "{e}"
        );
        let e = refused("x", StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>\n");
        assert_eq!(
            e.to_string(),
            "x: HTTP 502 Bad Gateway: <html>bad gateway</html>"
        );
    }
}

//! `/v2|v3/audit-log-destinations`: where webhooks send logs (DECISIONS.md K4).
//!
//! Destinations are global: the same objects under every region prefix, `global` included. The
//! `authorization` value is write-only: accepted on create and update, sealed before it is stored,
//! and never returned or logged. Endpoints must be absolute `https` URLs that do not reach private,
//! loopback or link-local addresses unless the operator allows it (DECISIONS.md D10). Validation
//! errors use Konnect's documented bodies word for word.
//!
//! Our extensions: a destination's `kind` and its `settings` (DECISIONS.md D12; absent is
//! Konnect's `webhook`, and responses then say nothing of it), its extra `headers`, and the
//! `portal_id` that owns it.

use std::collections::BTreeMap;
use std::collections::btree_map::Entry;
use std::net::IpAddr;
use std::time::Duration;

use auditrelay_core::Permission;
use auditrelay_core::endpoint::{is_localhost, is_non_public};
use auditrelay_core::format::Format;
use auditrelay_core::kind::settings::MAX_CERTIFICATE_PEM;
use auditrelay_core::kind::{Kind, KindName};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::StatusCode;
use rustls::pki_types::pem::PemObject;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use super::auth::Caller;
use super::error::{ApiError, InvalidParameter, Problem};
use super::json::ApiJson;
use super::pagination::{self, CursorMeta};
use crate::clock;
use crate::config::DeliveryConfig;
use crate::state::AppState;
use crate::store::{Destination, DestinationFilter, StoreError};

const RESOURCE: &str = "audit-log-destinations";
const MAX_NAME: usize = 255;
const MAX_AUTHORIZATION: usize = 8192;
const MAX_ENDPOINT: usize = 2048;
/// At most this many extra headers per destination.
const MAX_HEADERS: usize = 20;
const MAX_HEADER_NAME: usize = 256;
const MAX_HEADER_VALUE: usize = 8192;
/// Headers delivery sets itself, or that would change how the request is framed or routed:
/// not a destination's to add. (`authorization` has its own field.)
const RESERVED_HEADERS: &[&str] = &[
    "authorization",
    "connection",
    "content-encoding",
    "content-length",
    "content-type",
    "expect",
    "host",
    "idempotency-key",
    "keep-alive",
    "proxy-authorization",
    "proxy-connection",
    "te",
    "trailer",
    "transfer-encoding",
    "upgrade",
    "user-agent",
];
/// How long endpoint validation waits for DNS; an unresolvable name is checked again when
/// delivery connects.
const RESOLVE_TIMEOUT: Duration = Duration::from_secs(2);

/// Konnect's `AuditLogDestination`.
#[derive(Debug, Serialize, ToSchema)]
pub struct DestinationResponse {
    #[schema(format = Uuid)]
    pub id: String,
    pub name: String,
    pub endpoint: String,
    /// `cef`, `json` or `cps`; `ocsf` is our extension.
    pub log_format: String,
    pub skip_ssl_verification: bool,
    #[schema(format = DateTime)]
    pub created_at: String,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// Our extension: the portal this destination belongs to; absent for the organization's.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = Uuid)]
    pub portal_id: Option<String>,
    /// Our extension: the names of the extra headers every delivery carries (their values are
    /// write-only, like `authorization`); absent when there are none.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub header_names: Vec<String>,
    /// Our extension: how the receiver is spoken to; absent for Konnect's `webhook`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub kind: Option<String>,
    /// Our extension: the kind's own settings; absent for a kind without any.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Our extension: `true` when lines carry each event's place in the tamper-evident log
    /// and the log's checkpoints travel with them (docs/INTEGRITY.md); absent when off.
    #[serde(skip_serializing_if = "std::ops::Not::not")]
    pub integrity: bool,
}

impl DestinationResponse {
    /// The response for `d`, naming its extra headers.
    fn of(state: &AppState, d: &Destination) -> Result<Self, ApiError> {
        let mut response = Self::from(d);
        response.header_names = open_headers(state, d)?.into_keys().collect();
        Ok(response)
    }
}

impl From<&Destination> for DestinationResponse {
    fn from(d: &Destination) -> Self {
        Self {
            id: d.id.to_string(),
            name: d.name.clone(),
            endpoint: d.shown_endpoint(),
            log_format: d.log_format.as_str().to_owned(),
            skip_ssl_verification: d.skip_ssl_verification,
            created_at: d.created_at.to_rfc3339_millis(),
            updated_at: d.updated_at.to_rfc3339_millis(),
            portal_id: d.portal_id.map(|p| p.to_string()),
            header_names: Vec::new(),
            kind: (d.kind != Kind::Webhook).then(|| d.kind.name().as_str().to_owned()),
            settings: d.kind.settings(),
            integrity: d.integrity,
        }
    }
}

/// Seals a destination's extra headers; `None` for none.
pub(super) fn seal_headers(
    state: &AppState,
    id: Uuid,
    headers: &BTreeMap<String, String>,
) -> Option<Vec<u8>> {
    state.secrets.seal_headers(&id.to_string(), headers)
}

/// A destination's extra headers, opened (sorted by name).
pub(super) fn open_headers(
    state: &AppState,
    d: &Destination,
) -> Result<BTreeMap<String, String>, ApiError> {
    state
        .secrets
        .open_headers(&d.id.to_string(), d.headers_sealed.as_deref())
        .map_err(ApiError::internal)
}

#[derive(Debug, Serialize, ToSchema)]
pub struct ListDestinations {
    pub data: Vec<DestinationResponse>,
    pub meta: CursorMeta,
}

#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub enum LogFormatWire {
    Cef,
    Json,
    Cps,
    /// Our extension: OCSF 1.8.0 objects (docs/OCSF.md).
    Ocsf,
}

impl From<LogFormatWire> for Format {
    fn from(f: LogFormatWire) -> Self {
        match f {
            LogFormatWire::Cef => Format::Cef,
            LogFormatWire::Json => Format::Json,
            LogFormatWire::Cps => Format::Cps,
            LogFormatWire::Ocsf => Format::Ocsf,
        }
    }
}

/// The body of a create (every field but `skip_ssl_verification` required; `log_format`
/// defaults to `cef`) and of an update (every field optional). Fields are `Option` so a missing
/// one gets Konnect's "cannot be blank" rather than a generic parse error.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct DestinationBody {
    pub name: Option<String>,
    pub endpoint: Option<String>,
    /// Sent verbatim as the `Authorization` header of every delivery; never returned. Other
    /// kinds read it as their one credential (Splunk's token, Datadog's API key).
    pub authorization: Option<String>,
    pub log_format: Option<LogFormatWire>,
    pub skip_ssl_verification: Option<bool>,
    /// Our extension, on create only: the portal the destination belongs to. A portal admin's
    /// are its portal's whether it says so or not; organization roles may name any portal.
    #[schema(format = Uuid)]
    pub portal_id: Option<String>,
    /// Our extension: extra headers sent with every delivery, name → value (at most 20; not
    /// the ones delivery sets itself). Write-only: responses list `header_names`. On an update,
    /// absent or `null` keeps them, an object replaces them all, `{}` removes them.
    pub headers: Option<BTreeMap<String, String>>,
    /// Our extension: `webhook` (the default: Konnect's request shape), `splunk_hec`,
    /// `datadog`, `elasticsearch` (OpenSearch too), `sumo_logic`, `loki` or `syslog` (over
    /// TLS, to a `tls://host:port` endpoint).
    pub kind: Option<String>,
    /// Our extension: the kind's own settings (see docs/API.md). On an update, absent keeps
    /// them unless the kind changes.
    #[schema(value_type = Option<Object>)]
    pub settings: Option<serde_json::Value>,
    /// Our extension: lines carry each event's place in the tamper-evident log (its log,
    /// index and leaf hash, inside what they sign), and the log's checkpoints travel after the
    /// events they cover (docs/INTEGRITY.md). Off by default: Konnect's bytes exactly.
    pub integrity: Option<bool>,
}

async fn list(
    state: AppState,
    caller: Caller,
    query: Option<String>,
) -> Result<Json<ListDestinations>, ApiError> {
    caller.authorize(Permission::ReadDestinations, RESOURCE, "list")?;
    // Konnect documents 200, 401 and 403 here, and nothing else: see `Strictness`.
    // The default page is the largest: kongctl reads the first page only, without `page[size]`,
    // to check a name is free and to find a destination by name.
    let page = pagination::parse_with(
        query.as_deref(),
        100,
        100,
        pagination::Strictness::Accommodate,
    )?;
    let mut filter = name_filter(query.as_deref())?;
    // A portal admin sees its portal's destinations, and no other.
    filter.portal = caller.principal.grant.destination_owner();
    let list = state
        .store
        .list_destinations(caller.principal.org_id, &page.query(), &filter)
        .await?;
    let (list, meta) = pagination::finish(list, &page, &caller.ctx.facts.uri, |d| {
        (d.created_at.as_millis(), d.id.to_string())
    });
    let data = list
        .iter()
        .map(|d| DestinationResponse::of(&state, d))
        .collect::<Result<_, _>>()?;
    Ok(Json(ListDestinations { data, meta }))
}

async fn create(
    state: AppState,
    caller: Caller,
    body: DestinationBody,
) -> Result<(StatusCode, Json<DestinationResponse>), ApiError> {
    let owner = match body.portal_id.as_deref() {
        None => caller.principal.grant.destination_owner(),
        Some(raw) => Some(named_portal(&state, &caller, raw).await?),
    };
    caller.authorize(Permission::WriteDestination(owner), RESOURCE, "create")?;
    let mut problems = Problems::default();
    let name = problems.name(body.name.as_deref().unwrap_or(""));
    let endpoint = problems
        .endpoint(
            body.endpoint.as_deref().unwrap_or(""),
            &state.config.delivery,
        )
        .await;
    let kind = problems.kind(body.kind.as_deref(), body.settings.as_ref());
    // The kind named, even when its settings are refused: its credential rule still holds.
    let kind_name = body
        .kind
        .as_deref()
        .and_then(KindName::parse)
        .unwrap_or(KindName::Webhook);
    if let Some(endpoint) = &endpoint {
        problems.endpoint_of(kind_name, endpoint);
    }
    let authorization = problems.credential(kind_name, body.authorization.as_deref());
    if let (Some(kind), Some(key)) = (&kind, &authorization) {
        problems.client_identity(kind, key);
    }
    let headers = problems.headers(body.headers.unwrap_or_default());
    let integrity = body.integrity.unwrap_or(false);
    problems.into_result()?;
    let (Some(name), Some(endpoint), Some(authorization), Some(kind)) =
        (name, endpoint, authorization, kind)
    else {
        unreachable!("every field without a problem has a value");
    };
    let now = clock::now();
    let id = Uuid::new_v4();
    let destination = Destination {
        id,
        org_id: caller.principal.org_id,
        name,
        endpoint,
        authorization_sealed: state.secrets.seal(&authorization, &id.to_string()),
        log_format: body.log_format.map_or(Format::Cef, Format::from),
        skip_ssl_verification: body.skip_ssl_verification.unwrap_or(false),
        headers_sealed: seal_headers(&state, id, &headers),
        integrity,
        kind,
        managed_region: None,
        portal_id: owner,
        created_at: now,
        updated_at: now,
    };
    match state.store.create_destination(&destination).await {
        Err(StoreError::Conflict(_)) => Err(name_taken(&destination.name)),
        other => other.map_err(ApiError::from),
    }?;
    let response = DestinationResponse::of(&state, &destination)?;
    Ok((StatusCode::CREATED, Json(response)))
}

async fn get(
    state: AppState,
    caller: Caller,
    id: String,
) -> Result<Json<DestinationResponse>, ApiError> {
    caller.authorize(Permission::ReadDestinations, RESOURCE, "retrieve")?;
    let id = parse_id(&id)?;
    let destination = state
        .store
        .get_destination(caller.principal.org_id, id)
        .await?;
    destination
        .as_ref()
        .filter(|d| {
            caller
                .principal
                .grant
                .allows(Permission::ReadDestination(d.portal_id))
        })
        .ok_or_else(ApiError::not_found)
        .and_then(|d| DestinationResponse::of(&state, d).map(Json))
}

/// Refuses (403, audited) a caller who may not change any destination, before anything is
/// looked up: a portal admin may change its portal's, organization admins any.
pub(super) fn may_write_some(caller: &Caller, action: &str) -> Result<(), ApiError> {
    let owner = caller.principal.grant.destination_owner();
    caller.authorize(Permission::WriteDestination(owner), RESOURCE, action)
}

/// The destination `id` if the caller may change it; 404 (as if it did not exist) for one of
/// another owner, which the caller may not even see.
pub(super) async fn writable(
    state: &AppState,
    caller: &Caller,
    id: Uuid,
) -> Result<Destination, ApiError> {
    state
        .store
        .get_destination(caller.principal.org_id, id)
        .await?
        .filter(|d| {
            caller
                .principal
                .grant
                .allows(Permission::WriteDestination(d.portal_id))
        })
        .ok_or_else(ApiError::not_found)
}

/// The portal a create names as the owner: 400 `missing_reference` when there is none of that
/// id in the organization.
async fn named_portal(
    state: &AppState,
    caller: &Caller,
    raw: &str,
) -> Result<auditrelay_core::PortalId, ApiError> {
    let missing = || {
        ApiError::invalid(
            "Unknown portal",
            InvalidParameter::new(
                "portal_id",
                Some("missing_reference"),
                "no portal has this id",
            )
            .with_source("body"),
        )
    };
    let id = auditrelay_core::PortalId::parse(raw).ok_or_else(missing)?;
    match state.store.get_portal(caller.principal.org_id, id).await? {
        Some(_) => Ok(id),
        None => Err(missing()),
    }
}

async fn update(
    state: AppState,
    caller: Caller,
    id: String,
    body: DestinationBody,
) -> Result<Json<DestinationResponse>, ApiError> {
    may_write_some(&caller, "edit")?;
    let id = parse_id(&id)?;
    let mut destination = writable(&state, &caller, id).await?;
    if body.portal_id.is_some() {
        return Err(ApiError::invalid(
            "A destination's owner cannot change",
            InvalidParameter::new(
                "portal_id",
                Some("read_only"),
                "is set when the destination is created",
            )
            .with_source("body"),
        ));
    }
    // A syslog destination's credential is a private key, another kind's a header value:
    // neither means anything to the other.
    let was_syslog = destination.kind.name() == KindName::Syslog;
    let mut problems = Problems::default();
    if let Some(name) = body.name.as_deref().map(|n| problems.name(n)) {
        destination.name = name.unwrap_or_default();
    }
    // A Sumo Logic endpoint given back as answers show it, masked, is the saved one.
    let given = body
        .endpoint
        .as_deref()
        .filter(|given| !destination.shows_endpoint_as(given));
    if let Some(endpoint) = given {
        destination.endpoint = problems
            .endpoint(endpoint, &state.config.delivery)
            .await
            .unwrap_or_default();
    }
    if body.kind.is_some() || body.settings.is_some() {
        let name = body
            .kind
            .as_deref()
            .or(Some(destination.kind.name().as_str()));
        // Settings not given stay as they are, unless the kind changes.
        let settings = match (&body.settings, body.kind.as_deref()) {
            (Some(settings), _) => Some(settings.clone()),
            (None, Some(kind)) if kind != destination.kind.name().as_str() => None,
            (None, _) => destination.kind.settings(),
        };
        if let Some(kind) = problems.kind(name, settings.as_ref()) {
            destination.kind = kind;
        }
    }
    let kind_name = destination.kind.name();
    if body.endpoint.is_some() || body.kind.is_some() {
        problems.endpoint_of(kind_name, &destination.endpoint.clone());
    }
    match body.authorization.as_deref() {
        Some(given) => {
            let authorization = problems.credential(kind_name, Some(given));
            if let Some(key) = &authorization {
                problems.client_identity(&destination.kind, key);
            }
            destination.authorization_sealed = state
                .secrets
                .seal(&authorization.unwrap_or_default(), &id.to_string());
        }
        // Into or out of syslog without a new one: the old one is no credential of the new
        // kind. It is forgotten, and a kind that needs one must be given one.
        None if was_syslog != (kind_name == KindName::Syslog) => {
            destination.authorization_sealed = state.secrets.seal("", &id.to_string());
            if kind_name.requires_credential() {
                problems.blank("authorization");
            }
            problems.client_identity(&destination.kind, "");
        }
        None if kind_name == KindName::Syslog => {
            let stored = state
                .secrets
                .open(&destination.authorization_sealed, &id.to_string())
                .map_err(ApiError::internal)?;
            problems.client_identity(&destination.kind, &stored);
        }
        // A kind that needs a credential, given none before: it is blank.
        None if kind_name.requires_credential() => {
            let stored = state
                .secrets
                .open(&destination.authorization_sealed, &id.to_string())
                .map_err(ApiError::internal)?;
            if stored.is_empty() {
                problems.blank("authorization");
            }
        }
        None => {}
    }
    if let Some(headers) = body.headers {
        let headers = problems.headers(headers);
        destination.headers_sealed = seal_headers(&state, id, &headers);
    }
    if let Some(integrity) = body.integrity {
        destination.integrity = integrity;
    }
    problems.into_result()?;
    if let Some(format) = body.log_format {
        destination.log_format = format.into();
    }
    if let Some(skip) = body.skip_ssl_verification {
        destination.skip_ssl_verification = skip;
    }
    destination.updated_at = clock::now();
    match state.store.update_destination(&destination).await {
        Err(StoreError::Conflict(_)) => Err(name_taken(&destination.name)),
        Ok(false) => Err(ApiError::not_found()),
        other => other.map(drop).map_err(ApiError::from),
    }?;
    // Lanes bound to it send their next batch with the new settings, at once if they wait.
    state.delivery.notify();
    Ok(Json(DestinationResponse::of(&state, &destination)?))
}

async fn delete(state: AppState, caller: Caller, id: String) -> Result<StatusCode, ApiError> {
    may_write_some(&caller, "delete")?;
    let id = parse_id(&id)?;
    writable(&state, &caller, id).await?;
    match state
        .store
        .delete_destination(caller.principal.org_id, id)
        .await
    {
        Ok(true) => Ok(StatusCode::NO_CONTENT),
        Ok(false) => Err(ApiError::not_found()),
        // kongctl looks for "destination is in use" in the detail and retries.
        Err(StoreError::Conflict(_)) => Err(ApiError::conflict(
            "The audit log destination is in use by a webhook: delete the webhook or bind it to another destination first",
        )),
        Err(e) => Err(e.into()),
    }
}

fn name_taken(name: &str) -> ApiError {
    ApiError::conflict(format!("A destination named [{name}] already exists"))
}

/// A malformed id names no destination: 404, as Konnect's documents list for these paths
/// (they define no 400 for a path parameter).
pub(super) fn parse_id(s: &str) -> Result<Uuid, ApiError> {
    Uuid::try_parse(s)
        .ok()
        .filter(|_| s.len() == 36)
        .ok_or_else(ApiError::not_found)
}

/// `filter[name]=x`, `filter[name][eq]=x` or `filter[name][contains]=x` (exactly one).
fn name_filter(query: Option<&str>) -> Result<DestinationFilter, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or_default()).unwrap_or_default();
    let bad = |field: &str, rule, reason: &str| {
        ApiError::invalid(
            "Invalid filter",
            InvalidParameter::new(field, Some(rule), reason).with_source("query"),
        )
    };
    let mut filter = DestinationFilter::default();
    for (key, value) in pairs {
        // No name holds one (names are refused with them), and PostgreSQL refuses a NUL in
        // text: a client's mistake, not a query to run.
        if key.starts_with("filter[name]") && value.chars().any(char::is_control) {
            return Err(bad(
                &key,
                "invalid",
                "holds a control character, as no name does",
            ));
        }
        match key.as_str() {
            "filter[name]" | "filter[name][eq]" => filter.equals = Some(value),
            "filter[name][contains]" => filter.contains = Some(value),
            other if other.starts_with("filter[") => {
                return Err(bad(
                    other,
                    "unknown_property",
                    "is not a filter of destinations (use filter[name])",
                ));
            }
            _ => {}
        }
    }
    if filter.equals.is_some() && filter.contains.is_some() {
        return Err(bad(
            "filter[name]",
            "invalid",
            "takes exactly one operator: eq or contains",
        ));
    }
    Ok(filter)
}

/// The validation problems of one request. Konnect's detail is that of the first problem.
#[derive(Default)]
pub(super) struct Problems {
    detail: Option<&'static str>,
    parameters: Vec<InvalidParameter>,
}

impl Problems {
    pub(super) fn add(&mut self, detail: &'static str, parameter: InvalidParameter) {
        self.detail.get_or_insert(detail);
        self.parameters.push(parameter.with_source("body"));
    }

    pub(super) fn blank(&mut self, field: &str) {
        // Konnect's documented body: no rule, just the reason.
        self.add(
            "Required field missing",
            InvalidParameter::new(field, None, "cannot be blank"),
        );
    }

    /// [`Self::blank`], unless the field is reported already (a write to every region checks
    /// each region).
    pub(super) fn blank_once(&mut self, field: &str) {
        if !self.parameters.iter().any(|p| p.field == field) {
            self.blank(field);
        }
    }

    fn too_long(&mut self, field: &str, max: usize) {
        let reason = format!("must be at most {max} characters");
        self.add(
            "Invalid parameters",
            InvalidParameter::new(field, Some("max_length"), reason).with_maximum(max as u64),
        );
    }

    fn name(&mut self, name: &str) -> Option<String> {
        let name = name.trim();
        match name.chars().count() {
            0 => self.blank("name"),
            n if n > MAX_NAME => self.too_long("name", MAX_NAME),
            // A name is shown in lists, logs and the UI, where a control character (a NUL,
            // which PostgreSQL cannot even store) is nobody's intent.
            _ if name.chars().any(auditrelay_core::format::is_control) => self.add(
                "Invalid parameters",
                InvalidParameter::new(
                    "name",
                    Some("invalid"),
                    "must not contain control characters",
                ),
            ),
            _ => return Some(name.to_owned()),
        }
        None
    }

    /// The kind `name` (default `webhook`) with `settings`, checked.
    pub(super) fn kind(
        &mut self,
        name: Option<&str>,
        settings: Option<&serde_json::Value>,
    ) -> Option<Kind> {
        let name = match name.map(|n| (n, KindName::parse(n))) {
            None => KindName::Webhook,
            Some((_, Some(name))) => name,
            Some((given, None)) => {
                let names: Vec<&str> = KindName::ALL.iter().map(|k| k.as_str()).collect();
                let reason = format!("{given:?} is not a kind: one of {}", names.join(", "));
                self.add(
                    "Invalid parameters",
                    InvalidParameter::new("kind", Some("enum"), reason),
                );
                return None;
            }
        };
        match Kind::from_parts(name, settings) {
            Ok(kind) => Some(kind),
            Err(errors) => {
                for e in errors {
                    self.add(
                        "Invalid settings",
                        InvalidParameter::new(e.field, Some("invalid"), e.reason),
                    );
                }
                None
            }
        }
    }

    /// Checks that `endpoint` (already a valid URL) can be a `kind`'s receiver.
    pub(super) fn endpoint_of(&mut self, kind: KindName, endpoint: &str) {
        let Ok(url) = reqwest::Url::parse(endpoint) else {
            return;
        };
        let syslog = url.scheme() == "tls";
        if syslog != (kind == KindName::Syslog) {
            let reason = if syslog {
                "must be an https URL: tls:// is for the syslog kind".to_owned()
            } else {
                "must be tls://<host>[:<port>] (syslog over TLS, port 6514 by default)".to_owned()
            };
            self.add(
                "Invalid endpoint",
                InvalidParameter::new("endpoint", Some("invalid"), reason),
            );
            return;
        }
        if let Some(reason) = kind.endpoint_problem(url.path()) {
            self.add(
                "Invalid endpoint",
                InvalidParameter::new("endpoint", Some("invalid"), reason),
            );
        }
    }

    /// The credential a `kind` is given: required, optional or refused, as the kind takes
    /// one; `Some("")` for none.
    pub(super) fn credential(&mut self, kind: KindName, value: Option<&str>) -> Option<String> {
        if kind == KindName::Syslog {
            return self.private_key(value.unwrap_or(""));
        }
        match (kind.credential(), value) {
            (None, Some(v)) if !v.is_empty() => {
                let reason = format!(
                    "is not used by the {} kind (its token is part of the endpoint URL)",
                    kind.as_str()
                );
                self.add(
                    "Invalid parameters",
                    InvalidParameter::new("authorization", Some("invalid"), reason),
                );
                None
            }
            (_, None) if !kind.requires_credential() => Some(String::new()),
            (_, Some("")) if !kind.requires_credential() => Some(String::new()),
            (_, value) => self.authorization(value.unwrap_or("")),
        }
    }

    /// A syslog destination's credential: the private key of its client certificate, PEM
    /// (several lines, unlike a header value), or nothing.
    fn private_key(&mut self, value: &str) -> Option<String> {
        let value = value.trim();
        let pem = value.starts_with("-----BEGIN ") && value.contains("PRIVATE KEY-----");
        if value.is_empty() {
            return Some(String::new());
        }
        let reason = if value.len() > MAX_CERTIFICATE_PEM {
            format!("must be at most {MAX_CERTIFICATE_PEM} bytes")
        } else if !pem
            || rustls::pki_types::PrivateKeyDer::from_pem_slice(value.as_bytes()).is_err()
        {
            "must be the client certificate's private key, PEM (-----BEGIN PRIVATE KEY-----)"
                .to_owned()
        } else {
            return Some(value.to_owned());
        };
        self.add(
            "Invalid parameters",
            InvalidParameter::new("authorization", Some("invalid"), reason),
        );
        None
    }

    /// A syslog client certificate and its key (`key`, PEM, or empty) come together, and
    /// must belong together: a certificate that cannot be read, or a key that is not its own,
    /// would fail every connection.
    pub(super) fn client_identity(&mut self, kind: &Kind, key: &str) {
        let Kind::Syslog(syslog) = kind else {
            return;
        };
        let (field, reason) = match (&syslog.client_certificate, key.is_empty()) {
            (Some(_), true) => (
                "authorization",
                "is required with settings.client_certificate: its private key (PEM)",
            ),
            (None, false) => (
                "authorization",
                "is the private key of settings.client_certificate, which is not set",
            ),
            (Some(pem), false) => match identity_problem(pem, key) {
                Some(problem) => problem,
                None => return,
            },
            (None, true) => return,
        };
        self.add(
            "Invalid parameters",
            InvalidParameter::new(field, Some("invalid"), reason),
        );
    }

    pub(super) fn authorization(&mut self, value: &str) -> Option<String> {
        if value.trim().is_empty() {
            self.blank("authorization");
        } else if value.len() > MAX_AUTHORIZATION {
            self.too_long("authorization", MAX_AUTHORIZATION);
        } else if value.contains(['\r', '\n']) {
            // A header value cannot hold a line break; it would split the request.
            let p = InvalidParameter::new(
                "authorization",
                Some("invalid"),
                "must not contain line breaks",
            );
            self.add("Invalid parameters", p);
        } else {
            return Some(value.to_owned());
        }
        None
    }

    /// Extra headers, each name a valid header name that delivery does not set itself, each
    /// value one line of visible text; names compared without regard to case (HTTP's own rule),
    /// kept in lowercase.
    pub(super) fn headers(
        &mut self,
        headers: BTreeMap<String, String>,
    ) -> BTreeMap<String, String> {
        let mut valid = BTreeMap::new();
        if headers.len() > MAX_HEADERS {
            let reason = format!("must hold at most {MAX_HEADERS} headers");
            self.add(
                "Invalid parameters",
                InvalidParameter::new("headers", Some("max_items"), reason)
                    .with_maximum(MAX_HEADERS as u64),
            );
            return valid;
        }
        for (name, value) in headers {
            let field = format!("headers.{name}");
            let lower = name.to_ascii_lowercase();
            let reason = if name.is_empty()
                || name.len() > MAX_HEADER_NAME
                || reqwest::header::HeaderName::from_bytes(name.as_bytes()).is_err()
            {
                Some(format!(
                    "is not a header name (letters, digits and !#$%&'*+-.^_`|~, at most \
                     {MAX_HEADER_NAME} characters)"
                ))
            } else if RESERVED_HEADERS.contains(&lower.as_str()) || lower.starts_with("proxy-") {
                Some("is set by delivery itself, not by a destination".to_owned())
            } else if value.trim().is_empty() {
                Some("cannot be blank".to_owned())
            } else if value.len() > MAX_HEADER_VALUE {
                Some(format!("must be at most {MAX_HEADER_VALUE} characters"))
            } else if !value
                .bytes()
                .all(|b| b == b'\t' || (b' '..=b'~').contains(&b))
            {
                Some("must be one line of visible ASCII text".to_owned())
            } else {
                match valid.entry(lower) {
                    Entry::Vacant(entry) => {
                        entry.insert(value);
                        None
                    }
                    Entry::Occupied(_) => Some(
                        "names a header already given (names are not case-sensitive)".to_owned(),
                    ),
                }
            };
            if let Some(reason) = reason {
                self.add(
                    "Invalid headers",
                    InvalidParameter::new(field, Some("invalid"), reason),
                );
            }
        }
        valid
    }

    pub(super) async fn endpoint(
        &mut self,
        endpoint: &str,
        rules: &DeliveryConfig,
    ) -> Option<String> {
        let endpoint = endpoint.trim();
        if endpoint.is_empty() {
            self.blank("endpoint");
            return None;
        }
        if endpoint.len() > MAX_ENDPOINT {
            self.too_long("endpoint", MAX_ENDPOINT);
            return None;
        }
        let invalid = |this: &mut Self, reason: &str| {
            this.add(
                "Invalid endpoint",
                InvalidParameter::new("endpoint", None, reason),
            );
            None
        };
        let Ok(url) = reqwest::Url::parse(endpoint) else {
            return invalid(self, "must be a valid URL");
        };
        let Some(host) = url.host() else {
            return invalid(self, "must be a valid URL");
        };
        match url.scheme() {
            // `tls://` is the syslog kind's; `endpoint_of` checks that the two go together.
            "https" | "tls" => {}
            "http" if rules.allow_http_endpoints => {}
            "http" => {
                return invalid(
                    self,
                    "must use https (http needs delivery.allow_http_endpoints, which serve --dev sets)",
                );
            }
            _ => return invalid(self, "must be a valid URL"),
        }
        if !url.username().is_empty() || url.password().is_some() {
            return invalid(
                self,
                "must not contain credentials; send them as the authorization value",
            );
        }
        if !rules.allow_private_endpoints {
            let private = match host {
                url::Host::Ipv4(ip) => is_non_public(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => is_non_public(IpAddr::V6(ip)),
                url::Host::Domain(name) => {
                    let port = url
                        .port_or_known_default()
                        .unwrap_or(if url.scheme() == "tls" { 6514 } else { 443 });
                    resolves_to_non_public(name, port).await
                }
            };
            if private {
                return invalid(
                    self,
                    "must not reach a private, loopback or link-local address (that needs delivery.allow_private_endpoints, which serve --dev sets)",
                );
            }
        }
        Some(url.to_string())
    }

    pub(super) fn into_result(self) -> Result<(), ApiError> {
        match self.detail {
            None => Ok(()),
            Some(detail) => Err(ApiError::bad_request(detail, self.parameters)),
        }
    }
}

/// Why a client certificate chain (PEM) and a private key (PEM) cannot be shown together, if
/// they cannot: the field to blame and the reason.
fn identity_problem(chain: &str, key: &str) -> Option<(&'static str, &'static str)> {
    use rustls::pki_types::{CertificateDer, PrivateKeyDer};
    let chain: Vec<CertificateDer<'static>> =
        match CertificateDer::pem_slice_iter(chain.as_bytes()).collect::<Result<Vec<_>, _>>() {
            Ok(chain) if !chain.is_empty() => chain,
            _ => {
                return Some((
                    "settings.client_certificate",
                    "must be a PEM certificate chain that can be read",
                ));
            }
        };
    let Ok(key) = PrivateKeyDer::from_pem_slice(key.as_bytes()) else {
        return Some((
            "authorization",
            "must be a PEM private key that can be read",
        ));
    };
    let provider = rustls::crypto::aws_lc_rs::default_provider();
    match rustls::sign::CertifiedKey::from_der(chain, key, &provider) {
        Ok(_) => None,
        Err(_) => Some((
            "authorization",
            "is not the private key of settings.client_certificate",
        )),
    }
}

/// `localhost` names, or a name any of whose addresses is non-public. A name that does not
/// resolve now passes: delivery checks the addresses again when it connects.
async fn resolves_to_non_public(name: &str, port: u16) -> bool {
    if is_localhost(name) {
        return true;
    }
    match tokio::time::timeout(RESOLVE_TIMEOUT, tokio::net::lookup_host((name, port))).await {
        Ok(Ok(mut addrs)) => addrs.any(|a| is_non_public(a.ip())),
        _ => false,
    }
}

/// The same handlers under `/v2` and `/v3`, each documented with its own operation id.
macro_rules! versioned_routes {
    ($tag:literal, $collection:literal, $item:literal,
     $list:ident, $create:ident, $get:ident, $update:ident, $delete:ident) => {
        /// List audit-log destinations (`filter[name]`, `filter[name][eq]`,
        /// `filter[name][contains]`).
        #[utoipa::path(get, path = $collection, tag = $tag,
            params(
                ("page[size]" = Option<u32>, Query, description = "Items per page, 1 to 100 (default 100)"),
                ("page[after]" = Option<String>, Query, description = "Cursor from `meta.next`"),
                ("page[before]" = Option<String>, Query, description = "Cursor from `meta.previous`"),
                ("filter[name]" = Option<String>, Query, description = "Exact name; also `filter[name][eq]` and `filter[name][contains]`"),
            ),
            responses(
                (status = 200, body = ListDestinations),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $list(State(state): State<AppState>, caller: Caller, RawQuery(query): RawQuery) -> Result<Json<ListDestinations>, ApiError> {
            list(state, caller, query).await
        }

        /// Create an audit-log destination.
        #[utoipa::path(post, path = $collection, tag = $tag, request_body = DestinationBody,
            responses(
                (status = 201, body = DestinationResponse),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $create(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<DestinationBody>) -> Result<(StatusCode, Json<DestinationResponse>), ApiError> {
            create(state, caller, body).await
        }

        /// Get an audit-log destination.
        #[utoipa::path(get, path = $item, tag = $tag,
            params(("auditLogDestinationId" = String, Path, description = "The destination's id (UUID)")),
            responses(
                (status = 200, body = DestinationResponse),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 404, body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $get(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<Json<DestinationResponse>, ApiError> {
            get(state, caller, id).await
        }

        /// Update an audit-log destination (every field optional).
        #[utoipa::path(patch, path = $item, tag = $tag, request_body = DestinationBody,
            params(("auditLogDestinationId" = String, Path, description = "The destination's id (UUID)")),
            responses(
                (status = 200, body = DestinationResponse),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 404, body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "The name is taken", body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $update(State(state): State<AppState>, caller: Caller, Path(id): Path<String>, ApiJson(body): ApiJson<DestinationBody>) -> Result<Json<DestinationResponse>, ApiError> {
            update(state, caller, id, body).await
        }

        /// Delete an audit-log destination.
        #[utoipa::path(delete, path = $item, tag = $tag,
            params(("auditLogDestinationId" = String, Path, description = "The destination's id (UUID)")),
            responses(
                (status = 204, description = "Deleted"),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 404, body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "A webhook uses the destination", body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $delete(State(state): State<AppState>, caller: Caller, Path(id): Path<String>) -> Result<StatusCode, ApiError> {
            delete(state, caller, id).await
        }
    };
}

versioned_routes!(
    "Audit Log Destinations",
    "/v2/audit-log-destinations",
    "/v2/audit-log-destinations/{auditLogDestinationId}",
    list_destinations_v2,
    create_destination_v2,
    get_destination_v2,
    update_destination_v2,
    delete_destination_v2
);
versioned_routes!(
    "Audit Log Destinations",
    "/v3/audit-log-destinations",
    "/v3/audit-log-destinations/{auditLogDestinationId}",
    list_destinations_v3,
    create_destination_v3,
    get_destination_v3,
    update_destination_v3,
    delete_destination_v3
);

//! Our extension: the tamper-evident log (PRODUCT Decision 16, docs/INTEGRITY.md). For the org's
//! log of a region and for a portal's:
//!
//! - `GET …/audit-log-integrity/checkpoint`: the latest signed checkpoint, or with `size` the
//!   first one signed at that size;
//! - `GET …/audit-log-integrity/proofs/inclusion?log_index=N[&size=M]`: leaf `N`'s inclusion
//!   proof as a `c2sp.org/tlog-proof@v1` bundle, which `auditrelay verify --proof` checks
//!   offline (the leaf itself is its `extra` while the event is kept);
//! - `GET …/audit-log-integrity/proofs/consistency?from=M&to=N`: that the checkpoint at `N`
//!   extends the one at `M`.
//!
//! And, public like the JWKS, `GET /v3/audit-log-integrity/checkpoint-key`: the key that signs
//! checkpoints, which is not a line-signing key and not in the JWKS.

use auditrelay_core::Permission;
use auditrelay_core::checkpoint::{Checkpoint, unchecked_text};
use axum::Json;
use axum::extract::{Path, RawQuery, State};
use axum::http::header;
use axum::response::{IntoResponse, Response};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use serde::Serialize;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, InvalidParameter, Problem};
use super::portal_webhooks::portal_scope;
use super::webhooks::org_scope_to_read;
use crate::integrity::{self, ProofRefused};
use crate::state::AppState;
use crate::store::{Scope, StoredCheckpoint};

const ORG_RESOURCE: &str = "audit-log-integrity";
const PORTAL_RESOURCE: &str = "portal-audit-log-integrity";

/// The key that signs checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointKey {
    /// The key's name: the one every checkpoint's signature line carries, and the prefix of
    /// every log's origin.
    pub name: String,
    /// The signed-note key hash (4 bytes, hex) that signature lines start with.
    pub key_id: String,
    /// The key as signed-note tools take it: `name+key_id+base64(0x01 ‖ public key)`.
    pub verifier_key: String,
    /// The raw Ed25519 public key, base64.
    pub public_key: String,
}

/// A signed checkpoint.
#[derive(Debug, Serialize, ToSchema)]
pub struct CheckpointView {
    /// The log's name (the note's first line).
    pub origin: String,
    pub size: u64,
    /// The root hash, base64.
    pub root: String,
    #[schema(format = DateTime)]
    pub signed_at: String,
    /// The size of the checkpoint signed before this one.
    pub previous_size: u64,
    /// The checkpoint as a C2SP signed note.
    pub note: String,
}

/// A consistency proof between two checkpoints.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConsistencyView {
    pub from: CheckpointView,
    pub to: CheckpointView,
    /// RFC 9162 §2.1.4's proof, base64 hashes, bottom first.
    pub proof: Vec<String>,
}

/// Get the key that signs the tamper-evident log's checkpoints. No authentication.
#[utoipa::path(get, path = "/v3/audit-log-integrity/checkpoint-key", tag = "Audit Logs",
    operation_id = "get-audit-log-checkpoint-key",
    responses((status = 200, body = CheckpointKey)))]
pub async fn get_checkpoint_key(State(state): State<AppState>) -> Response {
    let key = &state.checkpoint_key;
    (
        [(header::CACHE_CONTROL, "max-age=300")],
        Json(CheckpointKey {
            name: key.name().to_owned(),
            key_id: key.key_id(),
            verifier_key: key.verifier_key(),
            public_key: STANDARD.encode(key.public_key().to_bytes()),
        }),
    )
        .into_response()
}

/// Our extension: the latest checkpoint of the org's log of the request's region, or the first
/// signed at `size`.
#[utoipa::path(get, path = "/v3/audit-log-integrity/checkpoint", tag = "Audit Logs",
    operation_id = "get-audit-log-checkpoint",
    params(("size" = Option<u64>, Query, description = "The tree size of the checkpoint wanted; the latest without it")),
    responses(
        (status = 200, body = CheckpointView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<CheckpointView>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, ORG_RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    checkpoint(&state, &scope, query.as_deref()).await
}

/// Our extension: leaf `log_index`'s inclusion proof in the org's log of the request's region,
/// as a `c2sp.org/tlog-proof@v1` bundle.
#[utoipa::path(get, path = "/v3/audit-log-integrity/proofs/inclusion", tag = "Audit Logs",
    operation_id = "get-audit-log-inclusion-proof",
    params(
        ("log_index" = u64, Query, description = "The leaf's index (the `log_index` of its line)"),
        ("size" = Option<u64>, Query, description = "The checkpoint's tree size; the latest without it"),
    ),
    responses(
        (status = 200, description = "The bundle", content_type = "text/plain", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_inclusion_proof(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, ORG_RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    inclusion(&state, &scope, query.as_deref()).await
}

/// Our extension: that the org's log of the request's region at `to` leaves extends it at
/// `from` leaves (both sizes of signed checkpoints).
#[utoipa::path(get, path = "/v3/audit-log-integrity/proofs/consistency", tag = "Audit Logs",
    operation_id = "get-audit-log-consistency-proof",
    params(
        ("from" = u64, Query, description = "The older checkpoint's tree size"),
        ("to" = u64, Query, description = "The newer checkpoint's tree size"),
    ),
    responses(
        (status = 200, body = ConsistencyView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_consistency_proof(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<ConsistencyView>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, ORG_RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    consistency(&state, &scope, query.as_deref()).await
}

/// Our extension: a portal's latest checkpoint, or the first signed at `size`.
#[utoipa::path(get, path = "/v3/portals/{portalId}/audit-log-integrity/checkpoint",
    tag = "Portal Audit Logs", operation_id = "get-portal-audit-log-checkpoint",
    params(
        ("portalId" = String, Path, description = "The portal's id (UUID)"),
        ("size" = Option<u64>, Query, description = "The tree size of the checkpoint wanted; the latest without it"),
    ),
    responses(
        (status = 200, body = CheckpointView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_portal_checkpoint(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<CheckpointView>, ApiError> {
    let scope = portal_scope_to_read(&state, &caller, &portal).await?;
    checkpoint(&state, &scope, query.as_deref()).await
}

/// Our extension: leaf `log_index`'s inclusion proof in a portal's log.
#[utoipa::path(get, path = "/v3/portals/{portalId}/audit-log-integrity/proofs/inclusion",
    tag = "Portal Audit Logs", operation_id = "get-portal-audit-log-inclusion-proof",
    params(
        ("portalId" = String, Path, description = "The portal's id (UUID)"),
        ("log_index" = u64, Query, description = "The leaf's index (the `log_index` of its line)"),
        ("size" = Option<u64>, Query, description = "The checkpoint's tree size; the latest without it"),
    ),
    responses(
        (status = 200, description = "The bundle", content_type = "text/plain", body = String),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_portal_inclusion_proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Response, ApiError> {
    let scope = portal_scope_to_read(&state, &caller, &portal).await?;
    inclusion(&state, &scope, query.as_deref()).await
}

/// Our extension: that a portal's log at `to` leaves extends it at `from` leaves.
#[utoipa::path(get, path = "/v3/portals/{portalId}/audit-log-integrity/proofs/consistency",
    tag = "Portal Audit Logs", operation_id = "get-portal-audit-log-consistency-proof",
    params(
        ("portalId" = String, Path, description = "The portal's id (UUID)"),
        ("from" = u64, Query, description = "The older checkpoint's tree size"),
        ("to" = u64, Query, description = "The newer checkpoint's tree size"),
    ),
    responses(
        (status = 200, body = ConsistencyView),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
        (status = 404, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
pub async fn get_portal_consistency_proof(
    State(state): State<AppState>,
    caller: Caller,
    Path(portal): Path<String>,
    RawQuery(query): RawQuery,
) -> Result<Json<ConsistencyView>, ApiError> {
    let scope = portal_scope_to_read(&state, &caller, &portal).await?;
    consistency(&state, &scope, query.as_deref()).await
}

async fn portal_scope_to_read(
    state: &AppState,
    caller: &Caller,
    portal: &str,
) -> Result<Scope, ApiError> {
    portal_scope(
        state,
        caller,
        portal,
        Permission::ReadPortalAuditLogs,
        PORTAL_RESOURCE,
        "retrieve",
    )
    .await
}

async fn checkpoint(
    state: &AppState,
    scope: &Scope,
    query: Option<&str>,
) -> Result<Json<CheckpointView>, ApiError> {
    let [size] = numbers(query, [("size", false)])?;
    let found = integrity::checkpoint_for(&state.store, scope, size)
        .await
        .map_err(refused)?;
    Ok(Json(view(&found)?))
}

async fn inclusion(
    state: &AppState,
    scope: &Scope,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let [index, size] = numbers(query, [("log_index", true), ("size", false)])?;
    let index = index.expect("required");
    let bundle = integrity::inclusion(&state.store, scope, index, size)
        .await
        .map_err(refused)?;
    Ok((
        [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
        bundle.text(),
    )
        .into_response())
}

async fn consistency(
    state: &AppState,
    scope: &Scope,
    query: Option<&str>,
) -> Result<Json<ConsistencyView>, ApiError> {
    let [from, to] = numbers(query, [("from", true), ("to", true)])?;
    let (from, to) = (from.expect("required"), to.expect("required"));
    if from > to {
        return Err(ApiError::invalid(
            "Invalid query parameters",
            InvalidParameter::new("from", Some("invalid"), "must not be above `to`")
                .with_source("query"),
        ));
    }
    let (older, newer, proof) = integrity::consistency(&state.store, scope, from, to)
        .await
        .map_err(refused)?;
    Ok(Json(ConsistencyView {
        from: view(&older)?,
        to: view(&newer)?,
        proof: proof.iter().map(|h| STANDARD.encode(h)).collect(),
    }))
}

fn view(checkpoint: &StoredCheckpoint) -> Result<CheckpointView, ApiError> {
    let signed = unchecked_text(&checkpoint.note)
        .and_then(Checkpoint::parse)
        .map_err(|_| ApiError::internal("a stored checkpoint note does not parse"))?;
    // Size and root as the note says them, which the client checks against the checkpoint
    // key: the row's columns are unsigned. (`previous_size` is the row's.)
    Ok(CheckpointView {
        origin: signed.origin,
        size: signed.size,
        root: STANDARD.encode(signed.root),
        signed_at: checkpoint.signed_at.to_rfc3339_millis(),
        previous_size: checkpoint.previous_size,
        note: checkpoint.note.clone(),
    })
}

fn refused(e: ProofRefused) -> ApiError {
    match e {
        ProofRefused::Store(e) => e.into(),
        other => ApiError::not_found_because(other.to_string()),
    }
}

/// The named decimal query parameters, each required or not; any other parameter, a repeated
/// one or a value that is not a decimal number is a 400.
fn numbers<const N: usize>(
    query: Option<&str>,
    names: [(&'static str, bool); N],
) -> Result<[Option<u64>; N], ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| {
            ApiError::invalid(
                "Invalid query string",
                InvalidParameter::new("query", None, "is not URL-encoded").with_source("query"),
            )
        })?;
    let mut values = [None; N];
    let mut invalid = Vec::new();
    for (key, value) in &pairs {
        let Some(at) = names.iter().position(|(name, _)| name == key) else {
            let known: Vec<&str> = names.iter().map(|(name, _)| *name).collect();
            invalid.push(InvalidParameter::new(
                key,
                Some("unknown_property"),
                format!("is not a parameter here (use {})", known.join(", ")),
            ));
            continue;
        };
        if values[at].is_some() {
            invalid.push(InvalidParameter::new(
                key,
                Some("invalid"),
                "is given more than once",
            ));
            continue;
        }
        match value.parse::<u64>() {
            Ok(n) if !value.starts_with('+') => values[at] = Some(n),
            _ => invalid.push(InvalidParameter::new(
                key,
                Some("type"),
                "must be a whole number, 0 or above",
            )),
        }
    }
    for ((name, required), value) in names.iter().zip(&values) {
        if *required && value.is_none() && !pairs.iter().any(|(k, _)| k == name) {
            invalid.push(InvalidParameter::new(
                *name,
                Some("required"),
                "is required",
            ));
        }
    }
    if !invalid.is_empty() {
        let invalid = invalid
            .into_iter()
            .map(|p| p.with_source("query"))
            .collect();
        return Err(ApiError::bad_request("Invalid query parameters", invalid));
    }
    Ok(values)
}

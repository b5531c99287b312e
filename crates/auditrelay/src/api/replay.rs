//! Replay jobs: `/v2|v3/audit-log-replay-job` (the org's, per region) and
//! `/v2|v3/portals/{portalId}/audit-log-replay-job` (DECISIONS.md K7, DECISIONS.md D1).
//!
//! A PUT replaces the scope's job with a new `accepted` one, unless the current job is still
//! accepted, pending or running (409, checked in the same statement as the write). The delivery
//! engine runs it. The body is Konnect's `{start_at, end_at, status, updated_at}`, plus our
//! progress fields, which only ever add to it. On `global` a PUT starts a job in every region
//! whose webhook is enabled; a GET there is a 400.

use auditrelay_core::{Permission, Timestamp};
use axum::Json;
use axum::extract::{Path, State};
use axum::http::StatusCode;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, InvalidParameter, Problem};
use super::json::ApiJson;
use super::portal_webhooks::portal_scope;
use super::webhooks::{org_scope_to_read, org_scopes_to_write};
use crate::state::AppState;
use crate::store::{Destination, ReplayJob, Scope};
use crate::{clock, human};

const RESOURCE: &str = "audit-log-replay-job";
const PORTAL_RESOURCE: &str = "portal-audit-log-replay-job";
/// How far past now `end_at` may be (and before the window `start_at`): clocks differ a
/// little, and requests take time.
const FUTURE_SKEW_MS: i64 = 60_000;

/// Konnect's `AuditLogReplayJob`, with our progress fields (absent while unconfigured).
#[derive(Debug, Serialize, ToSchema)]
pub struct ReplayJobResponse {
    #[schema(format = DateTime)]
    pub start_at: String,
    #[schema(format = DateTime)]
    pub end_at: String,
    /// `unconfigured`, `accepted`, `pending`, `running`, `completed` or `failed`.
    pub status: &'static str,
    #[schema(format = DateTime)]
    pub updated_at: String,
    /// How many events the window holds, counted when the job starts running.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_total: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub events_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub batches_sent: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub started_at: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(format = DateTime)]
    pub finished_at: Option<String>,
    /// Why a `failed` job failed.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub failure_reason: Option<String>,
}

impl From<Option<&ReplayJob>> for ReplayJobResponse {
    fn from(job: Option<&ReplayJob>) -> Self {
        let Some(job) = job else {
            let zero = Timestamp::ZERO.to_rfc3339_seconds();
            return Self {
                start_at: zero.clone(),
                end_at: zero.clone(),
                status: "unconfigured",
                updated_at: zero,
                events_total: None,
                events_sent: None,
                batches_sent: None,
                started_at: None,
                finished_at: None,
                failure_reason: None,
            };
        };
        Self {
            start_at: job.start_at.to_rfc3339_millis(),
            end_at: job.end_at.to_rfc3339_millis(),
            status: job.status.as_str(),
            updated_at: job.updated_at.to_rfc3339_millis(),
            events_total: job.events_total,
            events_sent: Some(job.events_sent),
            batches_sent: Some(job.batches_sent),
            started_at: job.started_at.map(Timestamp::to_rfc3339_millis),
            finished_at: job.finished_at.map(Timestamp::to_rfc3339_millis),
            failure_reason: job.failure_reason.clone(),
        }
    }
}

/// Konnect's `ReplaceAuditLogReplayJob`: both times required, RFC 3339.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct ReplayJobBody {
    #[schema(format = DateTime)]
    pub start_at: Option<String>,
    #[schema(format = DateTime)]
    pub end_at: Option<String>,
}

/// DECISIONS.md D1's rules: both present and RFC 3339, inside the retention window, `start_at <=
/// end_at`, `end_at` not in the future. Every fault is named at once.
fn window(state: &AppState, body: &ReplayJobBody) -> Result<(Timestamp, Timestamp), ApiError> {
    let now = clock::now();
    let retention = state.config.retention.window;
    // The same slack as for the future: "the last 7 days" typed by a client a moment ago is
    // a few milliseconds older by the time it arrives.
    let oldest = now.saturating_sub_millis(retention.as_millis() as i64 + FUTURE_SKEW_MS);
    let mut faults = Vec::new();
    let mut parse = |field: &str, value: Option<&str>| {
        let fault = |rule, reason: String| {
            InvalidParameter::new(field, Some(rule), reason).with_source("body")
        };
        let Some(value) = value else {
            faults.push(fault("required", "is required".into()));
            return None;
        };
        let Some(t) = Timestamp::parse_rfc3339(value) else {
            faults.push(fault(
                "is_date_time",
                "must be an RFC 3339 date-time such as 2026-11-20T10:00:00Z".into(),
            ));
            return None;
        };
        if t < oldest {
            let days = retention.as_secs() / 86_400;
            let reason = format!(
                "must be within the retention window: not before {} (the last {days} days)",
                oldest.to_rfc3339_seconds()
            );
            faults.push(fault("invalid", reason));
            return None;
        }
        if t > now.saturating_add_millis(FUTURE_SKEW_MS) {
            faults.push(fault("invalid", "must not be in the future".into()));
            return None;
        }
        Some(t)
    };
    let start = parse("start_at", body.start_at.as_deref());
    let end = parse("end_at", body.end_at.as_deref());
    if let (Some(start), Some(end)) = (start, end)
        && end < start
    {
        faults.push(
            InvalidParameter::new("end_at", Some("invalid"), "must not be before start_at")
                .with_source("body"),
        );
    }
    match (start, end) {
        (Some(start), Some(end)) if faults.is_empty() => Ok((start, end)),
        _ => Err(ApiError::bad_request("Invalid replay window", faults)),
    }
}

/// A window reaching further back than the destination's receiver accepts events (Datadog
/// drops those older than 18 hours, unseen) is refused here, rather than its oldest events
/// ending on the refused list (DECISIONS.md D14).
fn too_old_for(destination: &Destination, start_at: Timestamp) -> Result<(), ApiError> {
    let Some(max_age) = destination.kind.limits().max_age_ms else {
        return Ok(());
    };
    // A minute's slack: the job starts a moment after the PUT.
    let oldest = clock::now().saturating_sub_millis(max_age - 60_000);
    if start_at >= oldest {
        return Ok(());
    }
    let reason = format!(
        "reaches further back than the {} destination's receiver accepts events ({}): start at {} or later",
        destination.kind.name().as_str(),
        human::words(u64::try_from(max_age / 1000).unwrap_or(0)),
        oldest.to_rfc3339_seconds()
    );
    Err(ApiError::bad_request(
        "Invalid replay window",
        vec![InvalidParameter::new("start_at", Some("invalid"), reason).with_source("body")],
    ))
}

fn running() -> ApiError {
    ApiError::conflict("A replay job is currently running")
}

fn webhook_not_enabled() -> ApiError {
    ApiError::invalid(
        "webhook is not enabled",
        InvalidParameter::new(
            "webhook",
            Some("invalid"),
            "is not enabled: a replay is sent through the webhook, which must be enabled first",
        ),
    )
}

/// Starts a job in each scope (all or none); returns the first scope's job. A job sends
/// through the webhook's destination with its stored credentials, so the caller must be one
/// who may use that destination (a portal admin: its portal's own; see `rbac`).
async fn start_jobs(
    state: &AppState,
    caller: &Caller,
    scopes: Vec<Scope>,
    body: &ReplayJobBody,
) -> Result<ReplayJob, ApiError> {
    let (start_at, end_at) = window(state, body)?;
    let mut ready = Vec::new();
    for scope in scopes {
        let Some(webhook) = state.store.get_webhook(&scope).await? else {
            continue;
        };
        if !webhook.enabled {
            continue;
        }
        let destination = state
            .store
            .get_destination(scope.org_id, webhook.destination_id)
            .await?;
        let owner = destination.as_ref().and_then(|d| d.portal_id);
        caller
            .authorize(
                Permission::ReadDestination(owner),
                "audit-log-destinations",
                "replay",
            )
            .map_err(|_| {
                ApiError::forbidden_because(
                    "The webhook sends to a destination of the organization: a replay through \
                     it needs an organization role",
                )
            })?;
        if let Some(destination) = &destination {
            too_old_for(destination, start_at)?;
        }
        let current = state.store.get_replay_job(&scope).await?;
        if current.is_some_and(|job| job.status.in_progress()) {
            return Err(running());
        }
        ready.push(scope);
    }
    if ready.is_empty() {
        return Err(webhook_not_enabled());
    }
    let now = clock::now();
    let jobs: Vec<ReplayJob> = (ready.into_iter())
        .map(|scope| ReplayJob::accepted(scope, start_at, end_at, now))
        .collect();
    // Every region's job or none: another PUT may have won since the check above.
    if !state.store.replace_replay_jobs(&jobs).await? {
        return Err(running());
    }
    state.delivery.notify();
    Ok(jobs
        .into_iter()
        .next()
        .expect("at least one scope is ready"))
}

async fn get_org(state: AppState, caller: Caller) -> Result<Json<ReplayJobResponse>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, RESOURCE, "retrieve")?;
    let scope = org_scope_to_read(&state, &caller);
    let job = state.store.get_replay_job(&scope).await?;
    Ok(Json(job.as_ref().into()))
}

async fn put_org(
    state: AppState,
    caller: Caller,
    body: ReplayJobBody,
) -> Result<(StatusCode, Json<ReplayJobResponse>), ApiError> {
    caller.authorize(Permission::WriteAuditLogs, RESOURCE, "edit")?;
    let scopes = org_scopes_to_write(&state, &caller);
    let job = start_jobs(&state, &caller, scopes, &body).await?;
    Ok((StatusCode::ACCEPTED, Json(Some(&job).into())))
}

async fn get_portal(
    state: AppState,
    caller: Caller,
    portal: String,
) -> Result<Json<ReplayJobResponse>, ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::ReadPortalAuditLogs,
        PORTAL_RESOURCE,
        "retrieve",
    )
    .await?;
    let job = state.store.get_replay_job(&scope).await?;
    Ok(Json(job.as_ref().into()))
}

async fn put_portal(
    state: AppState,
    caller: Caller,
    portal: String,
    body: ReplayJobBody,
) -> Result<(StatusCode, Json<ReplayJobResponse>), ApiError> {
    let scope = portal_scope(
        &state,
        &caller,
        &portal,
        Permission::WritePortalAuditLogs,
        PORTAL_RESOURCE,
        "edit",
    )
    .await?;
    let job = start_jobs(&state, &caller, vec![scope], &body).await?;
    Ok((StatusCode::ACCEPTED, Json(Some(&job).into())))
}

/// The org handlers under `/v2` and `/v3`.
macro_rules! org_routes {
    ($path:literal, $get:ident, $put:ident) => {
        /// Get the org's replay job of a region.
        #[utoipa::path(get, path = $path, tag = "Audit Logs",
            responses(
                (status = 200, body = ReplayJobResponse),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $get(State(state): State<AppState>, caller: Caller) -> Result<Json<ReplayJobResponse>, ApiError> {
            get_org(state, caller).await
        }

        /// Re-send a window of the org's audit logs of a region (on `global`: of every region
        /// whose webhook is enabled) to its webhook.
        #[utoipa::path(put, path = $path, tag = "Audit Logs", request_body = ReplayJobBody,
            responses(
                (status = 202, body = ReplayJobResponse),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "A replay job is currently running", body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $put(State(state): State<AppState>, caller: Caller, ApiJson(body): ApiJson<ReplayJobBody>) -> Result<(StatusCode, Json<ReplayJobResponse>), ApiError> {
            put_org(state, caller, body).await
        }
    };
}

/// The portal handlers under `/v2` and `/v3`.
macro_rules! portal_routes {
    ($path:literal, $get:ident, $put:ident) => {
        /// Get a portal's replay job.
        #[utoipa::path(get, path = $path, tag = "Portal Audit Logs",
            params(("portalId" = String, Path, description = "The portal's id (UUID)")),
            responses(
                (status = 200, body = ReplayJobResponse),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 404, body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $get(State(state): State<AppState>, caller: Caller, Path(portal): Path<String>) -> Result<Json<ReplayJobResponse>, ApiError> {
            get_portal(state, caller, portal).await
        }

        /// Re-send a window of a portal's audit logs to its webhook.
        #[utoipa::path(put, path = $path, tag = "Portal Audit Logs", request_body = ReplayJobBody,
            params(("portalId" = String, Path, description = "The portal's id (UUID)")),
            responses(
                (status = 202, body = ReplayJobResponse),
                (status = 400, body = Problem, content_type = "application/problem+json"),
                (status = 401, body = Problem, content_type = "application/problem+json"),
                (status = 403, body = Problem, content_type = "application/problem+json"),
                (status = 404, body = Problem, content_type = "application/problem+json"),
                (status = 409, description = "A replay job is currently running", body = Problem, content_type = "application/problem+json"),
            ),
            security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])))]
        pub async fn $put(State(state): State<AppState>, caller: Caller, Path(portal): Path<String>, ApiJson(body): ApiJson<ReplayJobBody>) -> Result<(StatusCode, Json<ReplayJobResponse>), ApiError> {
            put_portal(state, caller, portal, body).await
        }
    };
}

org_routes!(
    "/v2/audit-log-replay-job",
    get_replay_job_v2,
    put_replay_job_v2
);
org_routes!(
    "/v3/audit-log-replay-job",
    get_replay_job_v3,
    put_replay_job_v3
);
portal_routes!(
    "/v2/portals/{portalId}/audit-log-replay-job",
    get_portal_replay_job_v2,
    put_portal_replay_job_v2
);
portal_routes!(
    "/v3/portals/{portalId}/audit-log-replay-job",
    get_portal_replay_job_v3,
    put_portal_replay_job_v3
);

//! The pages of one webhook — the org's in a region, or a Dev Portal's — with their **Setup**,
//! **Status** and **Replay** sub-tabs. Both kinds share these handlers and templates; a
//! [`Scope`] says which API paths serve the webhook and how the pages call it.

use auditrelay_core::Permission;
use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path, Query, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode};
use axum::response::{IntoResponse, Response};
use serde::Deserialize;
use serde::de::IgnoredAny;
use serde_json::{Value, json};

use super::client::{Failure, wire};
use super::guard::{Confirmation, Form, cross_site_refused, same_origin};
use super::messages::{self, Alert, Badge, REPLAY_LABELS, WEBHOOK_LABELS, capitalized, explain};
use super::session::{Flash, SignedIn};
use super::views::{
    Choice, Chrome, ConfirmPage, ConnectionResult, DeliveryRow, JobView, RANGES, RefusedRow,
    ReplayForm, ReplayPage, ScopeHeader, Section, SetupForm, SetupPage, StatusPage, StatusView,
};
use super::{Refused, UiState, failed, render, see_other};
use crate::{clock, human};

/// One webhook as the UI addresses it.
pub struct Scope {
    /// The `id` of its card: `region-us`, `portal-<id>`.
    pub id: String,
    pub title: String,
    /// What it sends, for sentences.
    pub what: String,
    /// Its UI pages' path.
    pub base: String,
    pub section: Section,
    pub back_href: &'static str,
    pub back_label: String,
    /// The API path of the webhook (`…/status` and `…/test-event` hang off it) …
    pub api_webhook: String,
    /// … and of its replay job.
    pub api_replay: String,
    /// What the API asks of a change.
    pub write: Permission,
    /// What its test event is, for the Status tab.
    pub test_what: &'static str,
}

impl Scope {
    /// The org webhook of a configured region.
    pub fn region(ui: &UiState, code: &str) -> Option<Self> {
        let region = ui.app.config.regions.get(code)?;
        let name = messages::region_name(region.as_str());
        Some(Self {
            id: format!("region-{region}"),
            title: format!("{name} Webhook"),
            what: format!("the organization's audit logs of {name}"),
            base: format!("/ui/audit-logs/regions/{region}"),
            section: Section::Org,
            back_href: "/ui/audit-logs",
            back_label: ui.app.config.ui.product_name.clone(),
            api_webhook: format!("/{region}/v3/audit-log-webhook"),
            api_replay: format!("/{region}/v3/audit-log-replay-job"),
            write: Permission::WriteAuditLogs,
            test_what: "the audit events of the request that sends it (an authorization \
                event Authz.audit-log-webhook with the action “test”, and its access event) \
                go through this webhook.",
        })
    }

    /// A Dev Portal's webhook, addressed in the portal's region (unprefixed should that region
    /// no longer be served: the portal decides the region anyway).
    pub fn portal(ui: &UiState, portal: &wire::Portal, id: auditrelay_core::PortalId) -> Self {
        let prefix = match ui.app.config.regions.get(&portal.region) {
            Some(region) => format!("/{region}"),
            None => String::new(),
        };
        Self {
            id: format!("portal-{id}"),
            title: format!("Dev Portal “{}” Webhook", portal.name),
            what: format!("the audit logs of the Dev Portal “{}”", portal.name),
            base: format!("/ui/portals/{id}"),
            section: Section::Portals,
            back_href: "/ui/portals",
            back_label: "Dev Portal".to_owned(),
            api_webhook: format!("{prefix}/v3/portals/{id}/audit-log-webhook"),
            api_replay: format!("{prefix}/v3/portals/{id}/audit-log-replay-job"),
            write: Permission::WritePortalAuditLogs(id),
            test_what: "an authentication event of the Dev Portal (your own, for the request \
                that sends it) goes through this webhook.",
        }
    }

    fn header(&self, badge: Badge, current: &'static str) -> ScopeHeader {
        ScopeHeader {
            id: self.id.clone(),
            title: self.title.clone(),
            what: self.what.clone(),
            badge,
            base: self.base.clone(),
            current,
            back_href: self.back_href,
            back_label: self.back_label.clone(),
        }
    }

    fn status_path(&self) -> String {
        format!("{}/status", self.api_webhook)
    }
}

/// The webhook a sub-page addresses — `/ui/audit-logs/regions/{region}/…` or
/// `/ui/portals/{portal}/…` — resolved, and checked against the person's role, so that one
/// handler serves each sub-page for regions and portals alike.
pub struct Target(pub Scope);

impl FromRequestParts<UiState> for Target {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, ui: &UiState) -> Result<Self, Response> {
        let user = SignedIn::from_request_parts(parts, ui)
            .await
            .map_err(IntoResponse::into_response)?;
        // A form's checks come before any API call, even the read that resolves a portal.
        if parts.method != Method::GET && !same_origin(parts) {
            return Err(cross_site_refused());
        }
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, ui)
            .await
            .map_err(IntoResponse::into_response)?;
        let resolved = match (params.get("region"), params.get("portal")) {
            (Some(region), _) => super::org::region_scope(ui, &user, region),
            (None, Some(portal)) => super::portals::portal_scope(ui, &user, portal).await,
            (None, None) => Err(Refused::NotFound("There is no page at this address.")),
        };
        resolved
            .map(Target)
            .map_err(|refused| refused.page(ui, &user))
    }
}

/// The badge of a webhook status.
pub fn badge_of(status: &wire::WebhookStatus) -> Badge {
    Badge::of(&status.webhook_status, status.webhook_enabled)
}

// ----- Setup -----

/// The Setup form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct SetupData {
    pub enabled: Option<String>,
    pub endpoint: String,
}

pub async fn setup(State(ui): State<UiState>, user: SignedIn, Target(scope): Target) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    setup_page(ui, user, scope, None, Alert::default(), StatusCode::OK).await
}

async fn setup_page(
    ui: &UiState,
    user: &SignedIn,
    scope: &Scope,
    submitted: Option<SetupForm>,
    alert: Alert,
    status: StatusCode,
) -> Response {
    let api = user.api(ui);
    let read = async {
        let state: wire::WebhookStatus = api.get(&scope.status_path()).await?;
        let webhook: Option<wire::Webhook> = api.get_optional(&scope.api_webhook).await?;
        let destinations: Vec<wire::Destination> =
            api.list_all("/v3/audit-log-destinations").await?;
        Ok::<_, Failure>((state, webhook, destinations))
    };
    let (state, webhook, destinations) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(ui, user, failure),
    };
    let form = submitted.unwrap_or_else(|| SetupForm {
        enabled: webhook.as_ref().is_some_and(|w| w.enabled),
        endpoint: webhook
            .as_ref()
            .map(|w| w.audit_log_destination_id.clone())
            .unwrap_or_default(),
    });
    let page = SetupPage {
        chrome: Chrome::showing_flash(ui, user, scope.section).await,
        scope: scope.header(badge_of(&state), "setup"),
        form,
        destinations: destinations
            .into_iter()
            .map(|d| Choice {
                id: d.id,
                name: d.name,
            })
            .collect(),
        configured: webhook.is_some(),
        can_write: user.who.may(scope.write),
        // The destinations tab, where the link leads, is the organization roles'.
        can_create_destination: user.who.may(Permission::WriteDestination(None)),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

pub async fn save_setup(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, data }: Form<SetupData>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let enabled = data.enabled.is_some();
    let mut body = json!({ "enabled": enabled });
    if !data.endpoint.is_empty() {
        body["audit_log_destination_id"] = Value::String(data.endpoint.clone());
    }
    let saved = user
        .api(ui)
        .send::<wire::Webhook>(Method::PATCH, &scope.api_webhook, &body)
        .await;
    match saved {
        Ok(webhook) => {
            let state = if webhook.enabled {
                "enabled"
            } else {
                "disabled"
            };
            user.flash(Flash(format!("Saved: the {} is {state}.", scope.title)))
                .await;
            see_other(&format!("{}/setup", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let submitted = SetupForm {
                enabled,
                endpoint: data.endpoint,
            };
            let alert = explain(&problem, WEBHOOK_LABELS);
            setup_page(ui, user, scope, Some(submitted), alert, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

pub async fn remove(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, data }: Form<Confirmation>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    // Someone who may not remove it is refused by the API, not asked.
    if !data.given() && user.who.may(scope.write) {
        let page = ConfirmPage {
            chrome: Chrome::showing_flash(ui, user, scope.section).await,
            heading: format!("Remove the {}?", scope.title),
            question: format!(
                "The {} stops sending, and its destination is free to delete. Events stay \
                 stored; a webhook set up again later reaches them with a replay.",
                scope.title
            ),
            action: format!("{}/remove", scope.base),
            button: "Remove",
            cancel_href: format!("{}/setup", scope.base),
        };
        return render(StatusCode::OK, &page);
    }
    match user.api(ui).delete(&scope.api_webhook).await {
        Ok(()) => {
            user.flash(Flash(format!(
                "Removed: the {} no longer sends anything.",
                scope.title
            )))
            .await;
            see_other(&format!("{}/setup", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let alert = match problem.status {
                404 => Alert::one("There is no webhook to remove: it is not configured."),
                _ => explain(&problem, WEBHOOK_LABELS),
            };
            setup_page(ui, user, scope, None, alert, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

// ----- Status -----

pub async fn status(State(ui): State<UiState>, user: SignedIn, Target(scope): Target) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    status_page(ui, user, scope, Alert::default(), None, StatusCode::OK).await
}

async fn status_page(
    ui: &UiState,
    user: &SignedIn,
    scope: &Scope,
    alert: Alert,
    connection: Option<ConnectionResult>,
    code: StatusCode,
) -> Response {
    let api = user.api(ui);
    let read = async {
        let state: wire::WebhookStatus = api.get(&scope.status_path()).await?;
        let webhook: Option<wire::Webhook> = api.get_optional(&scope.api_webhook).await?;
        let destination: Option<wire::Destination> = match &webhook {
            Some(w) => {
                let path = format!("/v3/audit-log-destinations/{}", w.audit_log_destination_id);
                api.get_optional(&path).await?
            }
            None => None,
        };
        let log: wire::Deliveries = api
            .get(&format!("{}/deliveries?page[size]=20", scope.api_webhook))
            .await?;
        let refused: wire::RefusedEvents = match state.refused_events {
            Some(_) => {
                let path = format!("{}/refused-events?page[size]=20", scope.api_webhook);
                api.get(&path).await?
            }
            None => wire::RefusedEvents { data: Vec::new() },
        };
        Ok::<_, Failure>((state, webhook, destination, log, refused))
    };
    let (state, webhook, destination, log, refused) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(ui, user, failure),
    };
    let attempted = state.last_attempt_at.is_some();
    let view = StatusView {
        enabled: state.webhook_enabled,
        configured: webhook.is_some(),
        endpoint: match (&webhook, destination) {
            (None, _) => "Not configured".to_owned(),
            (Some(_), Some(d)) => format!("{} ({})", d.name, d.endpoint),
            (Some(w), None) => w.audit_log_destination_id.clone(),
        },
        last_attempt: state.last_attempt_at.as_deref().map(messages::time),
        last_response_code: match (attempted, state.last_response_code) {
            (false, _) => "None yet".to_owned(),
            (true, Some(code)) => code.to_string(),
            (true, None) => "No HTTP answer (see the message)".to_owned(),
        },
        last_response_message: state
            .last_response_message
            .clone()
            .filter(|m| !m.is_empty())
            .unwrap_or_else(|| "None yet".to_owned()),
        lag: state.lag_events.map(|n| match n {
            0 => "Nothing: every event has been delivered.".to_owned(),
            1 => "1 event".to_owned(),
            n => format!("{} events", human::count(n)),
        }),
        oldest: state.oldest_undelivered_at.as_deref().map(messages::time),
        data_loss: state.seconds_until_data_loss.map(|s| match s {
            0 => "Now: the oldest undelivered events are being deleted.".to_owned(),
            s => human::words(s),
        }),
        retention: human::words(ui.app.config.retention.window.as_secs()),
        retrying: retrying(&state),
        failures: state
            .consecutive_failures
            .filter(|n| *n > 0)
            .map(|n| format!("{} in a row", human::count(u64::from(n)))),
        can_retry: state.webhook_enabled && state.retrying == Some(true),
        deliveries: log.data.iter().map(delivery_row).collect(),
        refused_count: state.refused_events.unwrap_or(0),
        refused: refused
            .data
            .into_iter()
            .map(|r| RefusedRow {
                seq: r.seq,
                event_id: r
                    .event_id
                    .unwrap_or_else(|| "deleted by retention".to_owned()),
                at: messages::time(&r.refused_at),
                reason: r.reason,
                by: if r.replay_job_id.is_some() {
                    "Replay"
                } else {
                    "Delivery"
                },
            })
            .collect(),
    };
    let page = StatusPage {
        chrome: Chrome::showing_flash(ui, user, scope.section).await,
        scope: scope.header(badge_of(&state), "status"),
        status: view,
        connection,
        log_size: ui.app.config.delivery.log_size,
        test_what: scope.test_what,
        can_write: user.who.may(scope.write),
        role: user.who.role().as_str(),
        alert,
    };
    render(code, &page)
}

/// "Retrying: the next attempt is in 8 seconds (at …)", while a failed batch waits.
fn retrying(state: &wire::WebhookStatus) -> Option<String> {
    let next = state
        .next_attempt_at
        .as_deref()
        .filter(|_| state.retrying == Some(true))?;
    let at = auditrelay_core::Timestamp::parse_rfc3339(next)?;
    let left = at.as_millis().saturating_sub(clock::now().as_millis());
    let when = match u64::try_from(left.saturating_add(999) / 1000) {
        Ok(0) | Err(_) => "now".to_owned(),
        Ok(seconds) => format!("in {}", human::words(seconds)),
    };
    Some(format!(
        "Retrying: the next attempt is {when} ({}).",
        messages::time(next)
    ))
}

fn delivery_row(d: &wire::Delivery) -> DeliveryRow {
    DeliveryRow {
        at: messages::time(&d.attempted_at),
        kind: match d.kind.as_str() {
            "live" => "Delivery",
            "retry" => "Retry",
            "probe" => "Probe",
            "replay" => "Replay",
            _ => "Attempt",
        },
        endpoint: d.endpoint.clone(),
        events: match d.events {
            1 => format!("1 (seq {})", d.first_seq),
            n => format!(
                "{} (seq {}–{})",
                human::count(u64::from(n)),
                d.first_seq,
                d.last_seq
            ),
        },
        answer: match d.response_code {
            Some(code) => format!("{code} {}", d.response_message),
            None => format!("No HTTP answer: {}", d.response_message),
        },
        delivered: d.delivered,
        duration: format!("{} ms", human::count(d.duration_ms)),
    }
}

/// *Retry now*: the API re-arms the webhook and its batch goes at once.
pub async fn retry_now(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, .. }: Form<IgnoredAny>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let path = format!("{}/retry", scope.api_webhook);
    match user.api(ui).post_empty::<wire::WebhookStatus>(&path).await {
        Ok(_) => {
            user.flash(Flash(
                "Retrying now: the waiting batch is being sent again. Its answer appears below \
                 in a moment."
                    .to_owned(),
            ))
            .await;
            see_other(&format!("{}/status", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let alert = explain(&problem, WEBHOOK_LABELS);
            status_page(ui, user, scope, alert, None, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

/// *Send them again*: the API marks the refused events to be sent again; delivery does it.
pub async fn resend_refused(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, .. }: Form<IgnoredAny>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let path = format!("{}/refused-events/resend", scope.api_webhook);
    match user.api(ui).post_empty::<wire::Resend>(&path).await {
        Ok(resend) => {
            user.flash(Flash(format!(
                "Sending {} again: delivered ones leave the list below; refused ones stay, with                  the receiver's new reason.",
                match resend.marked {
                    1 => "1 refused event".to_owned(),
                    n => format!("{} refused events", human::count(n)),
                }
            ))).await;
            see_other(&format!("{}/status", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let alert = explain(&problem, WEBHOOK_LABELS);
            status_page(ui, user, scope, alert, None, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

/// *Test connection* on the Status page: one signed sample line to the bound destination now,
/// and its answer on the page.
pub async fn test_connection(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, .. }: Form<IgnoredAny>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let api = user.api(ui);
    let webhook: Option<wire::Webhook> = match api.get_optional(&scope.api_webhook).await {
        Ok(webhook) => webhook,
        Err(failure) => return failed(ui, user, failure),
    };
    let Some(webhook) = webhook else {
        let alert = Alert::one(
            "There is nothing to test yet: choose a destination on the Setup tab first.",
        );
        return status_page(ui, user, scope, alert, None, StatusCode::BAD_REQUEST).await;
    };
    let body = json!({"audit_log_destination_id": webhook.audit_log_destination_id});
    let tested = api
        .send::<wire::ConnectionTest>(
            Method::POST,
            "/v3/audit-log-destinations/test-connection",
            &body,
        )
        .await;
    match tested {
        Ok(test) => {
            let connection = ConnectionResult {
                delivered: test.delivered,
                summary: messages::connection_summary(&test),
                trace_id: test.trace_id,
            };
            status_page(
                ui,
                user,
                scope,
                Alert::default(),
                Some(connection),
                StatusCode::OK,
            )
            .await
        }
        Err(Failure::Problem(problem)) => {
            let alert = explain(&problem, WEBHOOK_LABELS);
            status_page(ui, user, scope, alert, None, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

pub async fn test_event(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, .. }: Form<IgnoredAny>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let path = format!("{}/test-event", scope.api_webhook);
    match user.api(ui).post_empty::<wire::TestEvent>(&path).await {
        Ok(sent) => {
            user.flash(Flash(format!(
                "Test event sent with trace id {}. It reaches the endpoint with the next batch; \
                 refresh this page to see the attempt.",
                sent.trace_id
            )))
            .await;
            see_other(&format!("{}/status", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let alert = explain(&problem, WEBHOOK_LABELS);
            status_page(ui, user, scope, alert, None, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

// ----- Replay -----

/// *Cancel* on the Replay tab: the API cancels the job in progress.
pub async fn cancel_replay(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, .. }: Form<IgnoredAny>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let path = format!("{}/cancel", scope.api_replay);
    match user.api(ui).post_empty::<wire::ReplayJob>(&path).await {
        Ok(_) => {
            user.flash(Flash(
                "Replay cancelled. What was sent stays sent; send another replay when you are \
                 ready."
                    .to_owned(),
            ))
            .await;
            see_other(&format!("{}/replay", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let alert = match problem.status {
                409 => Alert::one("There is no replay in progress to cancel: it has ended."),
                _ => explain(&problem, REPLAY_LABELS),
            };
            replay_page(ui, user, scope, None, alert, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

/// The Replay form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ReplayData {
    pub range: String,
    /// A custom range as typed: UTC, or the browser's local time when `app.js` runs, which
    /// then also sends the UTC value (`*_utc`).
    pub start_at: String,
    pub end_at: String,
    pub start_at_utc: String,
    pub end_at_utc: String,
}

impl ReplayData {
    /// The custom range in UTC, as the API takes it: what the browser converted, or else what
    /// was typed, read as UTC (the form's word without JavaScript).
    fn custom(&self) -> [(&'static str, String); 2] {
        let pick = |utc_value: &str, typed: &str| match utc_value.trim() {
            "" => utc(typed),
            converted => converted.to_owned(),
        };
        [
            ("start_at", pick(&self.start_at_utc, &self.start_at)),
            ("end_at", pick(&self.end_at_utc, &self.end_at)),
        ]
    }

    /// The form as it is shown again: the custom range in UTC, as the page always shows it
    /// (`app.js` turns it into local time).
    fn shown(self) -> Self {
        let [(_, start), (_, end)] = self.custom();
        let input = |value: String| {
            auditrelay_core::Timestamp::parse_rfc3339(&value).map_or(value, local_input)
        };
        Self {
            start_at: input(start),
            end_at: input(end),
            start_at_utc: String::new(),
            end_at_utc: String::new(),
            ..self
        }
    }
}

/// The Replay tab; `?range=…` (and a custom range's `start_at`/`end_at`) keeps the choice of
/// the replay just sent.
pub async fn replay(
    State(ui): State<UiState>,
    user: SignedIn,
    Target(scope): Target,
    Query(chosen): Query<ReplayData>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let chosen = RANGES
        .iter()
        .any(|(value, _)| *value == chosen.range)
        .then_some(chosen);
    replay_page(ui, user, scope, chosen, Alert::default(), StatusCode::OK).await
}

/// `2026-11-20T10:00:00`, UTC: what a `datetime-local` input holds.
fn local_input(t: auditrelay_core::Timestamp) -> String {
    let mut s = t.to_rfc3339_seconds();
    s.pop();
    s
}

async fn replay_page(
    ui: &UiState,
    user: &SignedIn,
    scope: &Scope,
    submitted: Option<ReplayData>,
    alert: Alert,
    status: StatusCode,
) -> Response {
    let api = user.api(ui);
    let read = async {
        let state: wire::WebhookStatus = api.get(&scope.status_path()).await?;
        let job: wire::ReplayJob = api.get(&scope.api_replay).await?;
        let history: wire::ReplayHistory =
            api.get(&format!("{}/history", scope.api_replay)).await?;
        Ok::<_, Failure>((state, job, history))
    };
    let (state, job, history) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(ui, user, failure),
    };
    let now = clock::now();
    let retention = ui.app.config.retention.window;
    let submitted = match submitted {
        Some(submitted) => submitted.shown(),
        None => ReplayData {
            range: "15m".to_owned(),
            start_at: local_input(now.saturating_sub_millis(3_600_000)),
            end_at: local_input(now),
            ..ReplayData::default()
        },
    };
    let form = ReplayForm {
        range: submitted.range,
        start_at: submitted.start_at,
        end_at: submitted.end_at,
        min: local_input(now.saturating_sub_millis(retention.as_millis() as i64)),
        max: local_input(now),
    };
    let page = ReplayPage {
        chrome: Chrome::showing_flash(ui, user, scope.section).await,
        scope: scope.header(badge_of(&state), "replay"),
        form,
        ranges: RANGES,
        retention: match retention.as_secs() {
            604_800 => "seven days".to_owned(),
            secs => human::words(secs),
        },
        job: job_view(&job, now),
        webhook_enabled: state.webhook_enabled,
        history: history.data.iter().map(|j| job_view(j, now)).collect(),
        can_write: user.who.may(scope.write),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

fn job_view(job: &wire::ReplayJob, now: auditrelay_core::Timestamp) -> JobView {
    let in_progress = matches!(job.status.as_str(), "accepted" | "pending" | "running");
    let progress = match job.status.as_str() {
        "unconfigured" => String::new(),
        "accepted" | "pending" => "Waiting to start".to_owned(),
        _ => {
            let sent = job.events_sent.unwrap_or(0);
            let batches = job.batches_sent.unwrap_or(0);
            let total = job
                .events_total
                .map_or_else(|| "?".to_owned(), human::count);
            let mut line = format!(
                "{} / {total} events, {} {}",
                human::count(sent),
                human::count(batches),
                if batches == 1 { "batch" } else { "batches" }
            );
            if let Some(pace) = pace(job, now) {
                line.push_str(&pace);
            }
            line
        }
    };
    JobView {
        configured: job.status != "unconfigured",
        in_progress,
        status: capitalized(&job.status),
        start_at: messages::time(&job.start_at),
        end_at: messages::time(&job.end_at),
        updated_at: messages::time(&job.updated_at),
        progress,
        failure_reason: job.failure_reason.clone(),
    }
}

/// ", 1,200 events/s, about 8 seconds left" while running; ", 1,200 events/s" once ended.
fn pace(job: &wire::ReplayJob, now: auditrelay_core::Timestamp) -> Option<String> {
    let parse = |t: &Option<String>| {
        t.as_deref()
            .and_then(auditrelay_core::Timestamp::parse_rfc3339)
    };
    let started = parse(&job.started_at)?;
    let until = parse(&job.finished_at).unwrap_or(now);
    let millis = until.as_millis().saturating_sub(started.as_millis());
    let sent = job.events_sent.unwrap_or(0);
    if millis < 1_000 || sent == 0 {
        return None;
    }
    let rate = sent as f64 * 1000.0 / millis as f64;
    let mut out = format!(", {} events/s", human::count(rate.round() as u64));
    if job.status == "running"
        && let Some(total) = job.events_total
    {
        let left = (total.saturating_sub(sent) as f64 / rate).ceil() as u64;
        out.push_str(&format!(", about {} left", human::words(left.max(1))));
    }
    Some(out)
}

/// A `datetime-local` value (UTC by the form's word) as RFC 3339; anything else is passed on
/// for the API to judge.
fn utc(value: &str) -> String {
    let value = value.trim();
    let has_zone = value.ends_with(['Z', 'z'])
        || value
            .get(19..)
            .is_some_and(|tail| tail.contains(['+', '-']));
    match value.len() {
        16 if !has_zone => format!("{value}:00Z"),
        19.. if !has_zone && value.as_bytes().get(10) == Some(&b'T') => format!("{value}Z"),
        _ => value.to_owned(),
    }
}

pub async fn send_replay(
    State(ui): State<UiState>,
    Target(scope): Target,
    Form { user, data }: Form<ReplayData>,
) -> Response {
    let (ui, user, scope) = (&ui, &user, &scope);
    let minutes = match data.range.as_str() {
        "15m" => Some(15),
        "1h" => Some(60),
        "6h" => Some(360),
        "12h" => Some(720),
        "24h" => Some(1440),
        "custom" => None,
        _ => {
            let alert = Alert::one("Replay Time Range: choose one of the ranges offered.");
            return replay_page(ui, user, scope, Some(data), alert, StatusCode::BAD_REQUEST).await;
        }
    };
    let mut body = json!({});
    match minutes {
        Some(minutes) => {
            let now = clock::now();
            body["start_at"] = Value::String(
                now.saturating_sub_millis(minutes * 60_000)
                    .to_rfc3339_millis(),
            );
            body["end_at"] = Value::String(now.to_rfc3339_millis());
        }
        None => {
            // An empty field is left out, and the API names it as required.
            for (field, value) in data.custom() {
                if !value.is_empty() {
                    body[field] = Value::String(value);
                }
            }
        }
    }
    let sent = user
        .api(ui)
        .send::<wire::ReplayJob>(Method::PUT, &scope.api_replay, &body)
        .await;
    match sent {
        Ok(job) => {
            let label = RANGES
                .iter()
                .find(|(value, _)| *value == data.range)
                .map_or("Custom range", |(_, label)| label);
            user.flash(Flash(format!(
                "Replay requested ({label}: {} to {}, UTC). The table below shows its progress.",
                messages::time(&job.start_at),
                messages::time(&job.end_at)
            )))
            .await;
            // The form keeps its choice: the same range, or the same custom times.
            let mut query = vec![("range", data.range.clone())];
            if minutes.is_none() {
                for (field, value) in data.custom() {
                    query.push((field, value));
                }
            }
            let query = serde_urlencoded::to_string(query).unwrap_or_default();
            see_other(&format!("{}/replay?{query}", scope.base))
        }
        Err(Failure::Problem(problem)) => {
            let alert = match problem.status {
                409 => Alert::one(
                    "A replay is already running for this webhook. Wait until it has finished \
                     (the table below shows its progress), then send another.",
                ),
                _ => explain(&problem, REPLAY_LABELS),
            };
            replay_page(ui, user, scope, Some(data), alert, problem.status()).await
        }
        Err(failure) => failed(ui, user, failure),
    }
}

#[cfg(test)]
mod tests {
    use super::{pace, utc, wire};
    use auditrelay_core::Timestamp;

    fn job(
        status: &str,
        sent: u64,
        total: u64,
        started: &str,
        finished: Option<&str>,
    ) -> wire::ReplayJob {
        wire::ReplayJob {
            start_at: String::new(),
            end_at: String::new(),
            status: status.to_owned(),
            updated_at: String::new(),
            events_total: Some(total),
            events_sent: Some(sent),
            batches_sent: Some(1),
            started_at: Some(started.to_owned()),
            finished_at: finished.map(str::to_owned),
            failure_reason: None,
        }
    }

    #[test]
    fn the_progress_line_gives_the_rate_and_the_time_left() {
        let now = Timestamp::parse_rfc3339("2026-12-02T10:00:10Z").unwrap();
        let running = job("running", 20_000, 100_000, "2026-12-02T10:00:00Z", None);
        assert_eq!(
            pace(&running, now).as_deref(),
            Some(", 2,000 events/s, about 40 seconds left")
        );
        let done = job(
            "completed",
            100_000,
            100_000,
            "2026-12-02T10:00:00Z",
            Some("2026-12-02T10:00:50Z"),
        );
        assert_eq!(pace(&done, now).as_deref(), Some(", 2,000 events/s"));
        // Under a second, or nothing sent yet: no rate worth showing.
        let early = job("running", 0, 100, "2026-12-02T10:00:09.500Z", None);
        assert_eq!(pace(&early, now), None);
    }

    #[test]
    fn local_times_become_utc() {
        assert_eq!(utc("2026-11-20T10:00"), "2026-11-20T10:00:00Z");
        assert_eq!(utc("2026-11-20T10:00:30"), "2026-11-20T10:00:30Z");
        assert_eq!(utc("2026-11-20T10:00:30Z"), "2026-11-20T10:00:30Z");
        assert_eq!(
            utc("2026-11-20T10:00:30+02:00"),
            "2026-11-20T10:00:30+02:00"
        );
        assert_eq!(utc(" yesterday "), "yesterday");
    }
}

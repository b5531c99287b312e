//! The Dev Portal tab: every portal the person may see with its webhook's state, the **New Dev
//! Portal Audit Log** form, and each portal's Setup, Status and Replay pages (shared with the
//! org's regions, in `scope`). A portal admin sees exactly its own portal: the API lists no
//! other.

use std::collections::HashMap;

use auditrelay_core::{Permission, PortalId};
use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Value, json};

use super::client::{Failure, wire};
use super::guard::Form;
use super::messages::{self, Alert, PORTAL_LABELS, WEBHOOK_LABELS, explain};
use super::scope::{Scope, badge_of};
use super::session::{Flash, SignedIn};
use super::views::{
    AddPortalPage, Choice, Chrome, NewPortalForm, NewPortalPage, PortalChoice, PortalRow,
    PortalsPage, RegionChoice, Section,
};
use super::{Refused, UiState, failed, hidden_section, render, see_other};

/// Whether the person may change some portal's webhook (the API decides per portal).
fn may_write_some(user: &SignedIn) -> bool {
    match user.who.grant.portal() {
        Some(own) => user.who.may(Permission::WritePortalAuditLogs(own)),
        None => user
            .who
            .may(Permission::WritePortalAuditLogs(PortalId::nil())),
    }
}

/// `GET /ui/portals`.
pub async fn list(State(ui): State<UiState>, user: SignedIn) -> Response {
    if !Section::Portals.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let api = user.api(&ui);
    let read = async {
        let portals: Vec<wire::Portal> = api.list_all("/v3/portals").await?;
        let destinations: Vec<wire::Destination> =
            api.list_all("/v3/audit-log-destinations").await?;
        let mut rows = Vec::with_capacity(portals.len());
        for portal in portals {
            let Some(id) = PortalId::parse(&portal.id) else {
                continue;
            };
            let scope = Scope::portal(&ui, &portal, id);
            let state: wire::WebhookStatus =
                api.get(&format!("{}/status", scope.api_webhook)).await?;
            let webhook: Option<wire::Webhook> = api.get_optional(&scope.api_webhook).await?;
            rows.push((portal, state, webhook));
        }
        Ok::<_, Failure>((rows, destinations))
    };
    let (found, destinations) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(&ui, &user, failure),
    };
    let names: HashMap<&str, &str> = destinations
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str()))
        .collect();
    let rows = found
        .iter()
        .map(|(portal, state, webhook)| PortalRow {
            id: portal.id.clone(),
            name: portal.name.clone(),
            region: messages::region_name(&portal.region),
            enabled: match webhook {
                None => "Not configured",
                Some(w) if w.enabled => "Yes",
                Some(_) => "No",
            },
            endpoint: match webhook {
                None => "None".to_owned(),
                Some(w) => names
                    .get(w.audit_log_destination_id.as_str())
                    .map_or_else(|| w.audit_log_destination_id.clone(), |n| (*n).to_owned()),
            },
            badge: badge_of(state),
        })
        .collect();
    let page = PortalsPage {
        chrome: Chrome::showing_flash(&ui, &user, Section::Portals).await,
        rows,
        can_write: may_write_some(&user),
        can_add_portal: user.who.may(Permission::ManagePortals),
    };
    render(StatusCode::OK, &page)
}

/// The New Dev Portal form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct AddPortalData {
    pub name: String,
    pub region: String,
}

/// `GET /ui/portals/add`: the New Dev Portal form (the registry's `POST /v3/portals`).
pub async fn add(State(ui): State<UiState>, user: SignedIn) -> Response {
    if !Section::Portals.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let data = AddPortalData {
        name: String::new(),
        region: ui.app.config.regions.list[0].to_string(),
    };
    add_page(&ui, &user, data, Alert::default(), StatusCode::OK)
}

fn add_page(
    ui: &UiState,
    user: &SignedIn,
    data: AddPortalData,
    alert: Alert,
    status: StatusCode,
) -> Response {
    let page = AddPortalPage {
        chrome: Chrome::new(ui, user, Section::Portals),
        name: data.name,
        region: data.region,
        regions: ui
            .app
            .config
            .regions
            .list
            .iter()
            .map(|r| RegionChoice {
                code: r.to_string(),
                name: messages::region_name(r.as_str()),
            })
            .collect(),
        can_write: user.who.may(Permission::ManagePortals),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

/// `POST /ui/portals/add`: creates the portal, then offers its webhook's form.
pub async fn add_portal(
    State(ui): State<UiState>,
    Form { user, data }: Form<AddPortalData>,
) -> Response {
    if !Section::Portals.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let body = json!({"name": data.name, "region": data.region});
    match user
        .api(&ui)
        .send::<wire::Portal>(Method::POST, "/v3/portals", &body)
        .await
    {
        Ok(portal) => {
            user.flash(Flash(format!(
                "Dev Portal “{}” added in {}. Set up its webhook here.",
                portal.name,
                messages::region_name(&portal.region)
            )))
            .await;
            see_other(&format!("/ui/portals/{}/setup", portal.id))
        }
        Err(Failure::Problem(problem)) => {
            let alert = explain(&problem, PORTAL_LABELS);
            add_page(&ui, &user, data, alert, problem.status())
        }
        Err(failure) => failed(&ui, &user, failure),
    }
}

/// The New Dev Portal Audit Log form as posted.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct NewData {
    pub region: String,
    pub portal: String,
    pub enabled: Option<String>,
    pub endpoint: String,
}

/// `GET /ui/portals/new`.
pub async fn new(State(ui): State<UiState>, user: SignedIn) -> Response {
    if !Section::Portals.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    new_page(&ui, &user, None, Alert::default(), StatusCode::OK).await
}

async fn new_page(
    ui: &UiState,
    user: &SignedIn,
    submitted: Option<NewData>,
    alert: Alert,
    status: StatusCode,
) -> Response {
    let api = user.api(ui);
    let read = async {
        let portals: Vec<wire::Portal> = api.list_all("/v3/portals").await?;
        let destinations: Vec<wire::Destination> =
            api.list_all("/v3/audit-log-destinations").await?;
        Ok::<_, Failure>((portals, destinations))
    };
    let (portals, destinations) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(ui, user, failure),
    };
    let regions = &ui.app.config.regions.list;
    let form = match submitted {
        Some(data) => NewPortalForm {
            region: data.region,
            portal: data.portal,
            enabled: data.enabled.is_some(),
            endpoint: data.endpoint,
        },
        None => NewPortalForm {
            // The region of the first portal, so that the portal choices are not empty.
            region: portals
                .first()
                .map_or_else(|| regions[0].to_string(), |p| p.region.clone()),
            portal: String::new(),
            enabled: true,
            endpoint: String::new(),
        },
    };
    let page = NewPortalPage {
        chrome: Chrome::showing_flash(ui, user, Section::Portals).await,
        form,
        regions: regions
            .iter()
            .map(|r| RegionChoice {
                code: r.to_string(),
                name: messages::region_name(r.as_str()),
            })
            .collect(),
        portals: portals
            .into_iter()
            .map(|p| PortalChoice {
                id: p.id,
                name: p.name,
                region: p.region,
            })
            .collect(),
        destinations: destinations
            .into_iter()
            .map(|d| Choice {
                id: d.id,
                name: d.name,
            })
            .collect(),
        can_write: may_write_some(user),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

/// `POST /ui/portals`: New Dev Portal Audit Log.
pub async fn create(State(ui): State<UiState>, Form { user, data }: Form<NewData>) -> Response {
    if !Section::Portals.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let field = |message: &str| Alert {
        messages: vec![message.to_owned()],
        fields: vec![("portal".to_owned(), message.to_owned())],
    };
    let Some(id) = PortalId::parse(data.portal.trim()) else {
        let alert = field("Dev Portal: choose a Dev Portal.");
        return new_page(&ui, &user, Some(data), alert, StatusCode::BAD_REQUEST).await;
    };
    let api = user.api(&ui);
    let portal = match api.get::<wire::Portal>(&format!("/v3/portals/{id}")).await {
        Ok(portal) => portal,
        Err(Failure::Problem(problem)) => {
            let alert = match problem.status {
                404 => field("Dev Portal: that Dev Portal no longer exists."),
                _ => explain(&problem, WEBHOOK_LABELS),
            };
            return new_page(&ui, &user, Some(data), alert, problem.status()).await;
        }
        Err(failure) => return failed(&ui, &user, failure),
    };
    // "View region" narrows the choices; a portal of another region is a mismatch to point
    // out, not to guess about.
    if portal.region != data.region {
        let alert = field(&format!(
            "Dev Portal: “{}” is in {}. Choose that region, or another Dev Portal.",
            portal.name,
            messages::region_name(&portal.region)
        ));
        return new_page(&ui, &user, Some(data), alert, StatusCode::BAD_REQUEST).await;
    }
    let scope = Scope::portal(&ui, &portal, id);
    // A portal has one webhook: a "new" one for a portal that has it already would replace
    // (and perhaps disable) it unseen. Show the existing one instead.
    match api.get_optional::<wire::Webhook>(&scope.api_webhook).await {
        Ok(Some(_)) => {
            user.flash(Flash(format!(
                "“{}” already has a webhook: it is shown here, unchanged. Change it on this page.",
                portal.name
            )))
            .await;
            return see_other(&format!("{}/setup", scope.base));
        }
        Ok(None) => {}
        Err(failure) => return failed(&ui, &user, failure),
    }
    let enabled = data.enabled.is_some();
    let mut body = json!({ "enabled": enabled });
    if !data.endpoint.is_empty() {
        body["audit_log_destination_id"] = Value::String(data.endpoint.clone());
    }
    match api
        .send::<wire::Webhook>(Method::PATCH, &scope.api_webhook, &body)
        .await
    {
        Ok(webhook) => {
            let state = if webhook.enabled {
                "enabled"
            } else {
                "disabled"
            };
            user.flash(Flash(format!("Saved: the {} is {state}.", scope.title)))
                .await;
            see_other("/ui/portals")
        }
        Err(Failure::Problem(problem)) => {
            let alert = explain(&problem, WEBHOOK_LABELS);
            new_page(&ui, &user, Some(data), alert, problem.status()).await
        }
        Err(failure) => failed(&ui, &user, failure),
    }
}

/// The portal a path names, read through the API (which refuses a portal admin any other).
pub(super) async fn portal_scope(
    ui: &UiState,
    user: &SignedIn,
    portal: &str,
) -> Result<Scope, Refused> {
    if !Section::Portals.visible_to(user.who.role()) {
        return Err(Refused::Hidden);
    }
    let not_found = Refused::NotFound("There is no such Dev Portal.");
    let Some(id) = PortalId::parse(portal) else {
        return Err(not_found);
    };
    match user
        .api(ui)
        .get::<wire::Portal>(&format!("/v3/portals/{id}"))
        .await
    {
        Ok(found) => Ok(Scope::portal(ui, &found, id)),
        Err(Failure::Problem(problem)) if problem.status == 404 => Err(not_found),
        Err(failure) => Err(Refused::Failed(failure)),
    }
}

/// `GET /ui/portals/{portal}`: its Status.
pub async fn portal_home(
    State(ui): State<UiState>,
    user: SignedIn,
    Path(portal): Path<String>,
) -> Response {
    match portal_scope(&ui, &user, &portal).await {
        Ok(scope) => see_other(&format!("{}/status", scope.base)),
        Err(refused) => refused.page(&ui, &user),
    }
}

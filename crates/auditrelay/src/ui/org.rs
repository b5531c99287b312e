//! The organization's tab (titled by `ui.product_name`, "Konnect" by default): one card per
//! configured region with its webhook's state, and each region's Setup, Status and Replay
//! pages (shared with Dev Portals, in `scope`).

use std::collections::HashMap;

use axum::extract::{Path, State};
use axum::http::StatusCode;
use axum::response::Response;

use super::client::{Failure, wire};
use super::scope::{Scope, badge_of};
use super::session::SignedIn;
use super::views::{self, Chrome, OrgPage, ScopeCard, Section};
use super::{Refused, UiState, failed, hidden_section, render, see_other};

/// `GET /ui/audit-logs`.
pub async fn overview(State(ui): State<UiState>, user: SignedIn) -> Response {
    if !Section::Org.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let api = user.api(&ui);
    let regions = &ui.app.config.regions.list;
    let read = async {
        let destinations: Vec<wire::Destination> =
            api.list_all("/v3/audit-log-destinations").await?;
        let mut found = Vec::with_capacity(regions.len());
        for region in regions {
            let scope = Scope::region(&ui, region.as_str()).expect("a configured region");
            let state: wire::WebhookStatus =
                api.get(&format!("{}/status", scope.api_webhook)).await?;
            let webhook: Option<wire::Webhook> = api.get_optional(&scope.api_webhook).await?;
            found.push((scope, state, webhook));
        }
        Ok::<_, Failure>((destinations, found))
    };
    let (destinations, found) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(&ui, &user, failure),
    };
    let names: HashMap<&str, &str> = destinations
        .iter()
        .map(|d| (d.id.as_str(), d.name.as_str()))
        .collect();
    let cards = found
        .iter()
        .map(|(scope, state, webhook)| {
            let endpoint = match webhook {
                None => "Not configured".to_owned(),
                Some(w) => names
                    .get(w.audit_log_destination_id.as_str())
                    .map_or_else(|| w.audit_log_destination_id.clone(), |n| (*n).to_owned()),
            };
            ScopeCard {
                header: views::ScopeHeader {
                    id: scope.id.clone(),
                    title: scope.title.clone(),
                    what: scope.what.clone(),
                    badge: badge_of(state),
                    base: scope.base.clone(),
                    current: "",
                    back_href: scope.back_href,
                    back_label: scope.back_label.clone(),
                },
                endpoint,
            }
        })
        .collect();
    let page = OrgPage {
        chrome: Chrome::showing_flash(&ui, &user, Section::Org).await,
        product: ui.app.config.ui.product_name.clone(),
        cards,
    };
    render(StatusCode::OK, &page)
}

/// The region a path names.
pub(super) fn region_scope(ui: &UiState, user: &SignedIn, region: &str) -> Result<Scope, Refused> {
    if !Section::Org.visible_to(user.who.role()) {
        return Err(Refused::Hidden);
    }
    Scope::region(ui, region).ok_or(Refused::NotFound("This server has no such region."))
}

/// `GET /ui/audit-logs/regions/{region}`: its first sub-tab.
pub async fn region_home(
    State(ui): State<UiState>,
    user: SignedIn,
    Path(region): Path<String>,
) -> Response {
    match region_scope(&ui, &user, &region) {
        Ok(scope) => see_other(&format!("{}/setup", scope.base)),
        Err(refused) => refused.page(&ui, &user),
    }
}

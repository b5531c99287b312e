//! The web UI, "Audit Logs Setup": server-rendered pages at `/` and `/ui/…` for webhook
//! destinations, the org webhook of each region, Dev Portal webhooks, their status, test events
//! and replay jobs (DECISIONS.md K11).
//!
//! **The UI is a client of our own API.** It holds no rules of its own: every read and write is
//! an in-process request to the API router (`client`), made with the signed-in person's token,
//! so permissions, validation, self-audit events, 409s, re-arming and delivery notification are
//! exactly the API's, and the UI renders the API's answers (problem+json included) in plain
//! words. The one thing it does outside the API is checking a token at sign-in, through the
//! API's own check (`api::check_token`).
//!
//! Pages work without JavaScript: every form is a POST answered with a 303 redirect, or with the
//! form again (4xx) and the reason. `assets/app.js` only adds comfort (confirmations, a live
//! replay table). Sessions, CSRF and the security headers are in `session` and `guard`.

mod assets;
mod client;
mod destinations;
mod guard;
mod messages;
mod org;
mod portals;
mod scope;
mod session;
mod sign_in;
mod views;

use std::sync::Arc;

use askama::Template;
use axum::Router;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::from_fn;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, get, post};
use tower_http::catch_panic::CatchPanicLayer;

use crate::state::AppState;
use session::Sessions;

/// What every UI handler can reach. Cheap to clone.
#[derive(Clone)]
pub struct UiState(Arc<UiInner>);

pub struct UiInner {
    pub app: AppState,
    /// The API, called in process on the signed-in person's behalf.
    pub api: Router,
    pub sessions: Sessions,
}

impl std::ops::Deref for UiState {
    type Target = UiInner;
    fn deref(&self) -> &UiInner {
        &self.0
    }
}

/// The UI's routes; the caller adds the API as the fallback. Security headers and the log
/// line apply to these routes only.
pub fn router(app: AppState, api: Router) -> Router {
    let sessions = match app.store.vault() {
        Some(vault) => Sessions::shared(
            &app.config.ui,
            app.clock.clone(),
            vault,
            app.secrets.clone(),
        ),
        None => Sessions::new(&app.config.ui, app.clock.clone()),
    };
    let timeout = app.config.server.request_timeout;
    let state = UiState(Arc::new(UiInner { app, api, sessions }));
    Router::new()
        .route("/", get(sign_in::home))
        .route("/ui", get(sign_in::home))
        .route("/ui/", get(sign_in::home))
        .route("/ui/sign-in", get(sign_in::page).post(sign_in::submit))
        .route("/ui/sign-out", post(sign_in::sign_out))
        .route(
            "/ui/destinations",
            get(destinations::list).post(destinations::create),
        )
        .route("/ui/destinations/new", get(destinations::new))
        .route("/ui/destinations/{id}", post(destinations::update))
        .route("/ui/destinations/{id}/edit", get(destinations::edit))
        .route("/ui/destinations/{id}/delete", post(destinations::delete))
        .route("/ui/audit-logs", get(org::overview))
        .route("/ui/audit-logs/regions/{region}", get(org::region_home))
        .route(
            "/ui/audit-logs/regions/{region}/setup",
            get(scope::setup).post(scope::save_setup),
        )
        .route(
            "/ui/audit-logs/regions/{region}/remove",
            post(scope::remove),
        )
        .route("/ui/audit-logs/regions/{region}/status", get(scope::status))
        .route(
            "/ui/audit-logs/regions/{region}/test-event",
            post(scope::test_event),
        )
        .route(
            "/ui/audit-logs/regions/{region}/retry",
            post(scope::retry_now),
        )
        .route(
            "/ui/audit-logs/regions/{region}/resend-refused",
            post(scope::resend_refused),
        )
        .route(
            "/ui/audit-logs/regions/{region}/test-connection",
            post(scope::test_connection),
        )
        .route(
            "/ui/audit-logs/regions/{region}/replay",
            get(scope::replay).post(scope::send_replay),
        )
        .route(
            "/ui/audit-logs/regions/{region}/replay/cancel",
            post(scope::cancel_replay),
        )
        .route("/ui/portals", get(portals::list).post(portals::create))
        .route("/ui/portals/new", get(portals::new))
        .route(
            "/ui/portals/add",
            get(portals::add).post(portals::add_portal),
        )
        .route("/ui/portals/{portal}", get(portals::portal_home))
        .route(
            "/ui/portals/{portal}/setup",
            get(scope::setup).post(scope::save_setup),
        )
        .route("/ui/portals/{portal}/remove", post(scope::remove))
        .route("/ui/portals/{portal}/status", get(scope::status))
        .route("/ui/portals/{portal}/test-event", post(scope::test_event))
        .route("/ui/portals/{portal}/retry", post(scope::retry_now))
        .route(
            "/ui/portals/{portal}/resend-refused",
            post(scope::resend_refused),
        )
        .route(
            "/ui/portals/{portal}/test-connection",
            post(scope::test_connection),
        )
        .route(
            "/ui/portals/{portal}/replay",
            get(scope::replay).post(scope::send_replay),
        )
        .route(
            "/ui/portals/{portal}/replay/cancel",
            post(scope::cancel_replay),
        )
        .route("/ui/assets/{file}", get(assets::serve))
        .route("/ui/{*rest}", any(not_found))
        .with_state(state)
        .route_layer(from_fn(guard::headers_and_log))
        .route_layer(CatchPanicLayer::custom(guard::panic_page))
        // As for the API: a form whose body never arrives must not hold its connection (and
        // a slot under the connection cap) for ever.
        .route_layer(tower_http::timeout::TimeoutLayer::with_status_code(
            StatusCode::REQUEST_TIMEOUT,
            timeout,
        ))
}

/// A `/ui/…` path that names no page. (Paths outside `/ui` are the API's.)
async fn not_found() -> Response {
    views::error_page(
        StatusCode::NOT_FOUND,
        "Page not found",
        "There is no page at this address.",
    )
}

/// A rendered page with its status.
pub(crate) fn render(status: StatusCode, template: &impl Template) -> Response {
    match template.render() {
        Ok(html) => {
            let mut response = (status, html).into_response();
            response.headers_mut().insert(
                header::CONTENT_TYPE,
                HeaderValue::from_static("text/html; charset=utf-8"),
            );
            response
        }
        Err(e) => {
            tracing::error!(error = %e, "a UI template failed to render");
            (
                StatusCode::INTERNAL_SERVER_ERROR,
                "The page could not be rendered.",
            )
                .into_response()
        }
    }
}

/// The answer to a successful POST: see the result at `to`.
pub(crate) fn see_other(to: &str) -> Response {
    let mut response = StatusCode::SEE_OTHER.into_response();
    if let Ok(location) = HeaderValue::from_str(to) {
        response.headers_mut().insert(header::LOCATION, location);
    }
    response
}

/// The page for a read the API refused or failed; a person whose token stopped working goes
/// to sign in again.
pub(crate) fn failed(ui: &UiState, user: &session::SignedIn, failure: client::Failure) -> Response {
    let problem = match failure {
        client::Failure::SignedOut => return signed_out(),
        client::Failure::Problem(problem) => problem,
    };
    let (title, message) = match problem.status {
        403 => ("Not allowed", messages::CANNOT_SEE.to_owned()),
        400 | 404 => (
            "Not found",
            "There is nothing here: it may have been removed meanwhile.".to_owned(),
        ),
        _ => (
            "Something went wrong",
            format!(
                "The server could not show this page. Try again in a moment.{}",
                if problem.instance.is_empty() {
                    String::new()
                } else {
                    format!(" (Reference: {}.)", problem.instance)
                }
            ),
        ),
    };
    let status = match problem.status {
        400 => StatusCode::NOT_FOUND,
        _ => problem.status(),
    };
    views::signed_in_error(ui, user, status, title, &message)
}

/// The session ended because the API stopped accepting its token: sign in again.
pub(crate) fn signed_out() -> Response {
    let mut response = see_other("/ui/sign-in?ended=1");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, session::Sessions::clear_cookie());
    response
}

/// A signed-in page of a section the person's role does not see.
pub(crate) fn hidden_section(ui: &UiState, user: &session::SignedIn) -> Response {
    views::signed_in_error(
        ui,
        user,
        StatusCode::FORBIDDEN,
        "Not allowed",
        messages::CANNOT_SEE,
    )
}

/// Why a signed-in page is not shown; [`Refused::page`] says so.
pub(crate) enum Refused {
    /// The person's role does not see this tab.
    Hidden,
    /// Nothing is at this address; the message says what was looked for.
    NotFound(&'static str),
    /// The API refused or failed a read.
    Failed(client::Failure),
}

impl Refused {
    pub(crate) fn page(self, ui: &UiState, user: &session::SignedIn) -> Response {
        match self {
            Self::Hidden => hidden_section(ui, user),
            Self::NotFound(message) => {
                views::signed_in_error(ui, user, StatusCode::NOT_FOUND, "Not found", message)
            }
            Self::Failed(failure) => failed(ui, user, failure),
        }
    }
}

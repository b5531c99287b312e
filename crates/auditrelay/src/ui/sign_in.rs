//! Signing in and out, the way in (`/`), and the page of a role with nothing to see.
//!
//! Signing in checks the token with the API's own check (`api::check_token`: same outcomes,
//! same audited authentication event) and starts a session; a wrong token gets a 401 page and
//! no cookie. Each start makes a new session id, so an id planted before sign-in is worthless.

use auditrelay_core::Role;
use axum::extract::{Query, Request, State};
use axum::http::{StatusCode, header};
use axum::response::Response;
use serde::Deserialize;

use super::guard::{Form, cross_site_refused, read_form, same_origin};
use super::session::{Client, Sessions, SignedIn, cookie_value, return_path};
use super::views::{Chrome, SignInPage, error_page, home_of};
use super::{UiState, render, see_other};
use crate::api::{self, ClientFacts};

/// `GET /`: the first page of the signed-in person's role, or the sign-in page.
pub async fn home(user: Option<SignedIn>) -> Response {
    match user {
        Some(user) => see_other(home_of(user.who.role())),
        None => see_other("/ui/sign-in"),
    }
}

/// Why the sign-in page was shown again, and where to go after signing in.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct Notice {
    signed_out: Option<String>,
    expired: Option<String>,
    unknown: Option<String>,
    ended: Option<String>,
    unsaved: Option<String>,
    next: Option<String>,
}

impl Notice {
    fn text(&self) -> Option<String> {
        let why = if self.signed_out.is_some() {
            "You are signed out."
        } else if self.expired.is_some() {
            "Your session expired. Sign in again."
        } else if self.unknown.is_some() {
            "Your session is no longer known to the server: it was signed out, made room for \
             newer ones, or the server restarted. Sign in again."
        } else if self.ended.is_some() {
            "Your token is no longer accepted (it was revoked or has expired). Sign in with another one."
        } else {
            return None;
        };
        let mut text = why.to_owned();
        if self.unsaved.is_some() {
            text.push_str(" What you submitted was not saved");
            text.push_str(match self.next() {
                Some(_) => ": you will be back on its page to send it again.",
                None => ".",
            });
        }
        Some(text)
    }

    fn next(&self) -> Option<&str> {
        self.next.as_deref().and_then(return_path)
    }
}

/// `GET /ui/sign-in`.
pub async fn page(user: Option<SignedIn>, Query(notice): Query<Notice>) -> Response {
    if let Some(user) = user {
        return see_other(home_of(user.who.role()));
    }
    let page = SignInPage {
        chrome: Chrome::anonymous(),
        notice: notice.text(),
        error: None,
        next: notice.next().map(str::to_owned),
    };
    render(StatusCode::OK, &page)
}

// No `Debug`: it holds a secret, which must never reach a log line.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct SignInData {
    token: String,
    /// The page to return to (see [`return_path`]).
    next: String,
}

/// `POST /ui/sign-in`.
pub async fn submit(State(ui): State<UiState>, request: Request) -> Response {
    let (parts, body) = request.into_parts();
    if !same_origin(&parts) {
        return cross_site_refused();
    }
    let data = match read_form::<SignInData>(body).await {
        Ok((data, _)) => data,
        Err(page) => return page,
    };
    let client = Client::of(&parts);
    let facts = ClientFacts {
        uri: parts.uri.path().to_owned(),
        client_ip: client.ip(),
        user_agent: client.user_agent(),
    };
    let token = data.token.trim();
    match api::check_token(&ui.app, token, facts).await {
        // Nothing in Audit Logs Setup is an event producer's to see: no session, so its token
        // cannot be used to fill the session table either.
        Ok(principal) if principal.grant.role() == Role::EventProducer => {
            let page = SignInPage {
                chrome: Chrome::anonymous(),
                notice: None,
                next: return_path(&data.next).map(str::to_owned),
                error: Some(
                    "This token's role (event-producer) sends events; Audit Logs Setup has nothing \
                     for it. Sign in with a token of the audit-logs-admin or org-admin role, or \
                     audit-logs-viewer to look without changing anything."
                        .to_owned(),
                ),
            };
            render(StatusCode::FORBIDDEN, &page)
        }
        Ok(principal) => {
            // A new session every time; one the browser had before is over.
            ui.sessions.end_by_cookie(&parts.headers).await;
            // Behind a trusted proxy every browser shares its address: the per-address cap is
            // meant for the browser's own.
            let forwarded_for = parts
                .headers
                .get("x-forwarded-for")
                .and_then(|v| v.to_str().ok());
            let address = crate::config::client_ip(
                client.addr.map(|a| a.ip()),
                forwarded_for,
                &ui.app.config.server.trusted_proxies,
            );
            let id = match ui.sessions.create(token, &principal, address).await {
                Ok(id) => id,
                Err(e) => {
                    tracing::warn!(error = %e, "a UI session could not be stored");
                    return error_page(
                        StatusCode::SERVICE_UNAVAILABLE,
                        "Sign-in failed",
                        "The server could not store your session. Try again in a moment.",
                    );
                }
            };
            tracing::info!(
                principal.id = %principal.id,
                principal.role = principal.grant.role().as_str(),
                "ui sign-in"
            );
            let to = return_path(&data.next).unwrap_or(home_of(principal.grant.role()));
            let mut response = see_other(to);
            response.headers_mut().insert(header::SET_COOKIE, {
                let over_tls = parts.extensions.get::<crate::serve::OverTls>().is_some();
                ui.sessions.cookie(&id, &parts.headers, over_tls)
            });
            response
        }
        Err(e) if e.status() == StatusCode::UNAUTHORIZED => {
            let page = SignInPage {
                chrome: Chrome::anonymous(),
                notice: None,
                error: Some("That token was not accepted.".to_owned()),
                next: return_path(&data.next).map(str::to_owned),
            };
            render(StatusCode::UNAUTHORIZED, &page)
        }
        Err(e) => {
            // Logged where it happened (the store).
            error_page(
                e.status(),
                "Sign-in failed",
                "The server could not check the token. Try again in a moment.",
            )
        }
    }
}

/// `POST /ui/sign-out`: the session ends here, whatever the browser does with the cookie.
pub async fn sign_out(Form { user, .. }: Form<serde::de::IgnoredAny>) -> Response {
    user.sign_out().await;
    let mut response = see_other("/ui/sign-in?signed_out=1");
    response
        .headers_mut()
        .insert(header::SET_COOKIE, Sessions::clear_cookie());
    response
}

/// `Option<SignedIn>`: pages that also serve people who are not signed in.
impl axum::extract::OptionalFromRequestParts<UiState> for SignedIn {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut axum::http::request::Parts,
        ui: &UiState,
    ) -> Result<Option<Self>, Self::Rejection> {
        if cookie_value(&parts.headers).is_none() {
            return Ok(None);
        }
        Ok(
            <SignedIn as axum::extract::FromRequestParts<UiState>>::from_request_parts(parts, ui)
                .await
                .ok(),
        )
    }
}

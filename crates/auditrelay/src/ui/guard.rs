//! What guards every UI request: the security headers and the log line on every answer, and
//! the checks a form must pass before anything it asks for is done.
//!
//! Cross-site request forgery is stopped twice. Every POST form of a signed-in page carries the
//! session's CSRF token (hidden field `csrf`, compared in constant time), and a request whose
//! `Origin` names another site, or whose `Sec-Fetch-Site` says it came from one, is refused
//! before its body is read. The sign-in form has no session yet, so no token: there the
//! `SameSite=Strict` cookie and the origin check are enough, because a forged sign-in needs a
//! cross-site POST, which every current browser marks with those headers — and what it could
//! achieve (signing a victim in as the attacker) needs the attacker's own valid token.

use std::any::Any;
use std::time::Instant;

use axum::extract::{FromRequest, FromRequestParts, MatchedPath, Request};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use http_body_util::{BodyExt, Limited};
use serde::de::DeserializeOwned;

use super::UiState;
use super::session::SignedIn;
use super::views::error_page;
use auditrelay_core::token::constant_time_eq;

/// Forms are a few short fields.
const MAX_FORM_BYTES: usize = 64 * 1024;

const CSP: &str = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; \
connect-src 'self'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'; object-src 'none'";

/// Security headers, `Cache-Control: no-store` on pages (assets set their own), the request
/// metric and the log line of every UI request. The path is logged without its query.
pub async fn headers_and_log(req: Request, next: Next) -> Response {
    let started = Instant::now();
    let method = req.method().clone();
    let path = req.uri().path().to_owned();
    let route = req
        .extensions()
        .get::<MatchedPath>()
        .map_or_else(|| "unmatched".to_owned(), |p| p.as_str().to_owned());
    let mut response = next.run(req).await;
    let headers = response.headers_mut();
    for (name, value) in [
        ("content-security-policy", CSP),
        ("x-frame-options", "DENY"),
        ("referrer-policy", "same-origin"),
        ("x-content-type-options", "nosniff"),
    ] {
        headers.insert(name, HeaderValue::from_static(value));
    }
    if !headers.contains_key(header::CACHE_CONTROL) {
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    }
    let status = response.status();
    metrics::counter!(
        "auditrelay_http_requests_total",
        "method" => method.to_string(),
        "route" => route.clone(),
        "status" => status.as_u16().to_string()
    )
    .increment(1);
    let duration_ms = started.elapsed().as_secs_f64() * 1000.0;
    if status.is_server_error() {
        tracing::warn!(http.method = %method, http.path = path, http.route = route, http.status = status.as_u16(), duration_ms, "ui request failed");
    } else {
        tracing::info!(http.method = %method, http.path = path, http.route = route, http.status = status.as_u16(), duration_ms, "ui request");
    }
    response
}

/// A panicking handler still answers with a page (and the panic is logged).
pub fn panic_page(_: Box<dyn Any + Send + 'static>) -> Response {
    tracing::error!("a UI handler panicked");
    error_page(
        StatusCode::INTERNAL_SERVER_ERROR,
        "Something went wrong",
        "The server could not show this page. Nothing you did was lost; try again.",
    )
}

/// Whether a request comes from this site, as far as the browser says: `Sec-Fetch-Site` must
/// be `same-origin` (or `none`, a person's own navigation), and `Origin` must name the host the
/// request was sent to (`X-Forwarded-Host` behind a proxy). Requests without either header
/// (old browsers, scripts) pass here and meet the CSRF token.
pub fn same_origin(parts: &Parts) -> bool {
    let headers = &parts.headers;
    let value = |name| {
        headers
            .get(name)
            .and_then(|v: &HeaderValue| v.to_str().ok())
    };
    if let Some(site) = value("sec-fetch-site")
        && !matches!(site, "same-origin" | "none")
    {
        return false;
    }
    let Some(origin) = value("origin") else {
        return true;
    };
    // HTTP/2 carries the host as the URI's authority, not as a `Host` header.
    let host = value("x-forwarded-host")
        .and_then(|h| h.split(',').next())
        .or_else(|| value("host"))
        .or_else(|| parts.uri.authority().map(|a| a.as_str()))
        .map(str::trim);
    let authority = origin.split_once("://").map(|(_, authority)| authority);
    matches!((authority, host), (Some(a), Some(h)) if a.eq_ignore_ascii_case(h))
}

pub fn cross_site_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form was sent from another site, so nothing was changed. Open Audit Logs Setup \
         directly and try again.",
    )
}

fn csrf_refused() -> Response {
    error_page(
        StatusCode::FORBIDDEN,
        "Request refused",
        "This form has expired or did not come from this page, so nothing was changed. Go back, \
         reload the page and try again.",
    )
}

fn unreadable_form() -> Response {
    error_page(
        StatusCode::BAD_REQUEST,
        "Form not understood",
        "The form could not be read, so nothing was changed. Reload the page and try again.",
    )
}

/// Reads a small urlencoded body into `T`.
pub async fn read_form<T: DeserializeOwned>(
    body: axum::body::Body,
) -> Result<(T, Vec<(String, String)>), Response> {
    let bytes = match Limited::new(body, MAX_FORM_BYTES).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => return Err(unreadable_form()),
    };
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_bytes(&bytes).map_err(|_| unreadable_form())?;
    let data = serde_urlencoded::from_bytes(&bytes).map_err(|_| unreadable_form())?;
    Ok((data, pairs))
}

/// A POST form from a signed-in person that passed the origin and CSRF checks. Without a
/// session the request goes to the sign-in page; nothing else runs in either case.
pub struct Form<T> {
    pub user: SignedIn,
    pub data: T,
}

impl<T: DeserializeOwned + Send> FromRequest<UiState> for Form<T> {
    type Rejection = Response;

    async fn from_request(req: Request, ui: &UiState) -> Result<Self, Response> {
        let (mut parts, body) = req.into_parts();
        let user = SignedIn::from_request_parts(&mut parts, ui)
            .await
            .map_err(IntoResponse::into_response)?;
        if !same_origin(&parts) {
            return Err(cross_site_refused());
        }
        let (data, pairs) = read_form::<T>(body).await?;
        let presented = pairs.iter().find(|(name, _)| name == "csrf");
        match presented {
            // The length of a CSRF token is no secret.
            Some((_, token)) if constant_time_eq(token.as_bytes(), user.csrf.as_bytes()) => {
                Ok(Form { user, data })
            }
            _ => Err(csrf_refused()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn headers(pairs: &[(&'static str, &'static str)]) -> Parts {
        let mut request = axum::http::Request::builder().uri("/ui/sign-in");
        for (k, v) in pairs {
            request = request.header(*k, *v);
        }
        request.body(()).unwrap().into_parts().0
    }

    #[test]
    fn http2_names_the_host_in_the_uri() {
        let (mut parts, ()) = axum::http::Request::builder()
            .uri("https://audit.example.com/ui/sign-in")
            .header("origin", "https://audit.example.com")
            .body(())
            .unwrap()
            .into_parts();
        assert!(same_origin(&parts));
        parts
            .headers
            .insert("origin", HeaderValue::from_static("https://evil.example"));
        assert!(!same_origin(&parts));
    }

    #[test]
    fn origins() {
        assert!(same_origin(&headers(&[("host", "127.0.0.1:8080")])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("origin", "http://127.0.0.1:8080"),
            ("sec-fetch-site", "same-origin"),
        ])));
        assert!(same_origin(&headers(&[
            ("host", "127.0.0.1:8080"),
            ("x-forwarded-host", "audit.example.com"),
            ("origin", "https://audit.example.com"),
        ])));
        for bad in [
            headers(&[("host", "a:1"), ("origin", "https://evil.example")]),
            headers(&[("host", "a:1"), ("origin", "null")]),
            headers(&[("origin", "http://a:1")]),
            headers(&[("host", "a:1"), ("sec-fetch-site", "cross-site")]),
            headers(&[("host", "a:1"), ("sec-fetch-site", "same-site")]),
        ] {
            assert!(!same_origin(&bad), "{:?}", bad.headers);
        }
    }
}

/// The `confirmed` field of a form that destroys something: `yes` once the person confirmed
/// (in the browser's dialog, or on the confirmation page).
#[derive(Debug, Default, serde::Deserialize)]
#[serde(default)]
pub struct Confirmation {
    pub confirmed: String,
}

impl Confirmation {
    pub fn given(&self) -> bool {
        self.confirmed == "yes"
    }
}

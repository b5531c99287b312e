//! The UI's API client: in-process requests to the API router (`tower::ServiceExt::oneshot`),
//! made with the signed-in person's token, as a browser's script would make them over HTTP.
//!
//! Each call passes through the whole API stack — region prefix, token check, permission
//! checks, validation, self-audit, the log line — with the browser's address and user agent, so
//! the audit trail names the real client. Answers are read into the UI's own wire types (the
//! API's response types only serialize); a problem+json answer becomes a [`Failure`] the page
//! explains. A 401 means the token stopped working: the session ends there and then.

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use axum::http::{HeaderValue, Method, Request, StatusCode, header};
use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde_json::Value;
use tower::ServiceExt;

use super::session::{self, Client, Key, QuietReads, Secret, Sessions};
use crate::client::wire::ListPage;
pub use crate::client::wire::{self, Problem};

/// Far above any answer the pages ask for (lists come 100 at a time).
const MAX_ANSWER_BYTES: usize = 16 << 20;
/// A list longer than this many pages of 100 is shown truncated.
const MAX_PAGES: usize = 100;

/// A failure of the UI's own making, shown like the API's 500s.
fn internal(detail: &str) -> Problem {
    Problem {
        status: 500,
        detail: detail.to_owned(),
        ..Problem::default()
    }
}

/// Why a call did not give what the page needed.
#[derive(Debug)]
pub enum Failure {
    /// The API no longer accepts the session's token; the session has been ended.
    SignedOut,
    /// The API refused or failed: its problem.
    Problem(Problem),
}

/// The API as one signed-in person.
pub struct Api<'a> {
    router: &'a Router,
    token: &'a Secret,
    client: &'a Client,
    sessions: &'a Sessions,
    key: Key,
    quiet: &'a QuietReads,
}

impl<'a> Api<'a> {
    pub(super) fn new(
        router: &'a Router,
        token: &'a Secret,
        client: &'a Client,
        sessions: &'a Sessions,
        key: Key,
        quiet: &'a QuietReads,
    ) -> Self {
        Self {
            router,
            token,
            client,
            sessions,
            key,
            quiet,
        }
    }

    /// One request; any answer but a 401 comes back as is.
    async fn call(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<(StatusCode, Bytes), Failure> {
        let mut authorization = HeaderValue::try_from(format!("Bearer {}", self.token.expose()))
            .map_err(|_| Failure::SignedOut)?;
        authorization.set_sensitive(true);
        let mut builder = Request::builder()
            .method(method)
            .uri(path)
            .header(header::AUTHORIZATION, authorization)
            .header(header::ACCEPT, "application/json");
        if let Some(agent) = &self.client.user_agent {
            builder = builder.header(header::USER_AGENT, agent);
        }
        let body = match body {
            Some(json) => {
                builder = builder.header(header::CONTENT_TYPE, "application/json");
                Body::from(json.to_string())
            }
            None => Body::empty(),
        };
        let mut request = builder
            .body(body)
            .map_err(|_| Failure::Problem(internal("The request could not be built")))?;
        if let Some(addr) = self.client.addr {
            request.extensions_mut().insert(ConnectInfo(addr));
        }
        if request.method() == Method::GET
            && let Some(quiet) = self.quiet.next()
        {
            request.extensions_mut().insert(quiet);
        }
        let response = match self.router.clone().oneshot(request).await {
            Ok(response) => response,
            Err(never) => match never {},
        };
        let status = response.status();
        let bytes = axum::body::to_bytes(response.into_body(), MAX_ANSWER_BYTES)
            .await
            .map_err(|_| Failure::Problem(internal("The answer could not be read")))?;
        if status == StatusCode::UNAUTHORIZED {
            session::end_session(self.sessions, &self.key).await;
            return Err(Failure::SignedOut);
        }
        Ok((status, bytes))
    }

    /// A 2xx answer's JSON, or the problem.
    async fn expect<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: Option<&Value>,
    ) -> Result<T, Failure> {
        let (status, bytes) = self.call(method, path, body).await?;
        if !status.is_success() {
            return Err(Failure::Problem(Problem::of_answer(status, &bytes)));
        }
        let json = if bytes.is_empty() {
            &b"null"[..]
        } else {
            &bytes
        };
        serde_json::from_slice(json).map_err(|e| {
            tracing::error!(http.path = path, error = %e, "the UI could not read an API answer");
            Failure::Problem(internal("The API's answer could not be read"))
        })
    }

    pub async fn get<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.expect(Method::GET, path, None).await
    }

    /// A resource that may not exist (404 is `None`).
    pub async fn get_optional<T: DeserializeOwned>(
        &self,
        path: &str,
    ) -> Result<Option<T>, Failure> {
        match self.get(path).await {
            Ok(value) => Ok(Some(value)),
            Err(Failure::Problem(p)) if p.status == 404 => Ok(None),
            Err(e) => Err(e),
        }
    }

    /// Every item of a paginated list, following `meta.next`.
    pub async fn list_all<T: DeserializeOwned>(&self, path: &str) -> Result<Vec<T>, Failure> {
        let mut next = Some(format!("{path}?page%5Bsize%5D=100"));
        let mut items = Vec::new();
        for _ in 0..MAX_PAGES {
            let Some(page_path) = next.take() else { break };
            let page: ListPage<T> = self.get(&page_path).await?;
            items.extend(page.data);
            next = page.meta.next;
        }
        Ok(items)
    }

    /// A write with a JSON body; the answer's JSON.
    pub async fn send<T: DeserializeOwned>(
        &self,
        method: Method,
        path: &str,
        body: &Value,
    ) -> Result<T, Failure> {
        self.expect(method, path, Some(body)).await
    }

    pub async fn delete(&self, path: &str) -> Result<(), Failure> {
        let (status, bytes) = self.call(Method::DELETE, path, None).await?;
        if status.is_success() {
            Ok(())
        } else {
            Err(Failure::Problem(Problem::of_answer(status, &bytes)))
        }
    }

    /// A POST without a body; the answer's JSON.
    pub async fn post_empty<T: DeserializeOwned>(&self, path: &str) -> Result<T, Failure> {
        self.expect(Method::POST, path, None).await
    }
}

//! The one API error type, rendered as Konnect's problem+json (`status, title, detail,
//! instance`, plus `invalid_parameters` on 400).
//!
//! `instance` carries the request's trace id (`kong:trace:<id>`), the same id its log line and
//! self-audit events carry, so a user reporting an error hands over the one key that finds
//! everything. Internal errors are logged here, once, with their cause chain; the client only
//! ever sees a generic 500.

use std::fmt::Write as _;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use serde::Serialize;
use utoipa::ToSchema;

use super::trace;
use crate::store::{FaultKind, StoreError};

/// A problem+json body.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Problem {
    pub status: u16,
    pub title: String,
    pub instance: String,
    pub detail: String,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub invalid_parameters: Vec<InvalidParameter>,
}

/// One entry of `invalid_parameters`: which field, why, by which rule, and where.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct InvalidParameter {
    pub field: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub rule: Option<&'static str>,
    /// Where the field is: `body`, `query`, `path`, or `line N` / `event N` for ingest.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    pub reason: String,
    /// For `max_length` and `max_items` rules.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub maximum: Option<u64>,
    /// For the `enum` rule: the accepted values (Konnect's `InvalidParameterChoiceItem`
    /// requires them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub choices: Option<Vec<String>>,
}

impl InvalidParameter {
    pub fn new(
        field: impl Into<String>,
        rule: Option<&'static str>,
        reason: impl Into<String>,
    ) -> Self {
        Self {
            field: field.into(),
            rule,
            source: None,
            reason: reason.into(),
            maximum: None,
            choices: None,
        }
    }

    /// A value outside a closed set: rule `enum`, the accepted `choices`, and a reason
    /// naming them.
    pub fn choice<I, S>(field: impl Into<String>, choices: I) -> Self
    where
        I: IntoIterator<Item = S>,
        S: Into<String>,
    {
        let choices: Vec<String> = choices.into_iter().map(Into::into).collect();
        let mut p = Self::new(
            field,
            Some("enum"),
            format!("must be one of {}", choices.join(", ")),
        );
        p.choices = Some(choices);
        p
    }

    pub fn with_source(mut self, source: impl Into<String>) -> Self {
        self.source = Some(source.into());
        self
    }

    pub fn with_maximum(mut self, maximum: u64) -> Self {
        self.maximum = Some(maximum);
        self
    }
}

/// An API error: a status, a title and a detail for the client, and for 500s a cause kept
/// for the log.
#[derive(Debug)]
pub struct ApiError {
    status: StatusCode,
    title: &'static str,
    detail: String,
    invalid_parameters: Vec<InvalidParameter>,
    cause: Option<Box<dyn std::error::Error + Send + Sync>>,
    /// Seconds for a `Retry-After` header: when trying again may succeed.
    retry_after: Option<u32>,
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            invalid_parameters: Vec::new(),
            cause: None,
            retry_after: None,
        }
    }

    /// Adds a `Retry-After` of `seconds`.
    pub fn retry_after(mut self, seconds: u32) -> Self {
        self.retry_after = Some(seconds);
        self
    }

    /// 400 with the fields at fault. `detail` is the summary ("Invalid parameters"). The same
    /// fault named twice (a repeated query parameter) is listed once: Konnect's schema says
    /// `uniqueItems`.
    pub fn bad_request(detail: impl Into<String>, invalid: Vec<InvalidParameter>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail);
        let mut unique: Vec<InvalidParameter> = Vec::with_capacity(invalid.len());
        for parameter in invalid {
            if !unique.contains(&parameter) {
                unique.push(parameter);
            }
        }
        e.invalid_parameters = unique;
        e
    }

    /// 400 for one field.
    pub fn invalid(detail: impl Into<String>, parameter: InvalidParameter) -> Self {
        Self::bad_request(detail, vec![parameter])
    }

    /// Konnect's body for a request body that is not JSON.
    pub fn unparsable_body() -> Self {
        Self::invalid(
            "Could not parse request body",
            InvalidParameter::new("body", None, "request format is invalid"),
        )
    }

    /// Konnect's exact 401 body.
    pub fn unauthorized() -> Self {
        Self::new(StatusCode::UNAUTHORIZED, "Unauthorized", "Unauthorized")
    }

    /// Konnect's exact 403 body.
    pub fn forbidden() -> Self {
        Self::forbidden_because("You do not have permission to perform this action")
    }

    pub fn forbidden_because(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, "Forbidden", detail)
    }

    pub fn not_found() -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", "Not Found")
    }

    pub fn not_found_because(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, "Not Found", detail)
    }

    pub fn conflict(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, "Resource Conflict", detail)
    }

    pub fn payload_too_large(detail: impl Into<String>) -> Self {
        Self::new(StatusCode::PAYLOAD_TOO_LARGE, "Payload Too Large", detail)
    }

    pub fn unsupported_media_type(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "Unsupported Media Type",
            detail,
        )
    }

    pub fn unavailable(detail: impl Into<String>) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "Service Unavailable",
            detail,
        )
    }

    /// A failure that is ours, not the client's. The cause is logged, never sent.
    pub fn internal(cause: impl Into<Box<dyn std::error::Error + Send + Sync>>) -> Self {
        let mut e = Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "Internal Server Error",
            "Internal Server Error",
        );
        e.cause = Some(cause.into());
        e
    }

    /// A problem for a bare status (used to dress up responses that were not ours, like 405).
    pub fn from_status(status: StatusCode, detail: impl Into<String>) -> Self {
        Self::new(status, status.canonical_reason().unwrap_or("Error"), detail)
    }

    pub fn status(&self) -> StatusCode {
        self.status
    }

    pub fn problem(&self) -> Problem {
        Problem {
            status: self.status.as_u16(),
            title: self.title.to_owned(),
            instance: format!(
                "kong:trace:{}",
                trace::current_trace_id().unwrap_or_default()
            ),
            detail: self.detail.clone(),
            invalid_parameters: self.invalid_parameters.clone(),
        }
    }
}

impl From<StoreError> for ApiError {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::Closed => Self::unavailable("The server is shutting down"),
            // Not logged here: the store logs when it stops and starts accepting writes, once
            // each, not once per request.
            StoreError::Unavailable { kind, .. } => Self::store_fault(kind),
            other => Self::internal(other),
        }
    }
}

/// `Retry-After` for a full disk: freeing space takes someone a while.
const RETRY_FULL_SECS: u32 = 30;
/// `Retry-After` for other store faults, which often pass by themselves (a lock, an I/O hiccup).
const RETRY_FAULT_SECS: u32 = 5;

impl ApiError {
    /// 507 when the store is full, else 503; both with `Retry-After`, both saying that nothing
    /// of the request was stored.
    pub fn store_fault(kind: FaultKind) -> Self {
        let detail = format!("Nothing was stored: {}. Try again later", kind.describe());
        match kind {
            FaultKind::Full => Self::new(
                StatusCode::INSUFFICIENT_STORAGE,
                "Insufficient Storage",
                detail,
            )
            .retry_after(RETRY_FULL_SECS),
            _ => Self::unavailable(detail).retry_after(RETRY_FAULT_SECS),
        }
    }

    /// As [`ApiError::store_fault`], for a request whose change was committed but whose audit
    /// record then could not be: the client learns that the change stands.
    pub fn store_fault_after_change(kind: FaultKind) -> Self {
        let mut e = Self::store_fault(kind);
        e.detail = format!(
            "The change was made, but its audit record could not be stored: {}",
            kind.describe()
        );
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        if let Some(cause) = &self.cause {
            let mut chain = cause.to_string();
            let mut source = cause.source();
            while let Some(s) = source {
                let _ = write!(chain, ": {s}");
                source = s.source();
            }
            tracing::error!(error.chain = %chain, "request failed");
        }
        let mut response = problem_response(&self.problem());
        if let Some(seconds) = self.retry_after {
            response
                .headers_mut()
                .insert(header::RETRY_AFTER, HeaderValue::from(seconds));
        }
        response
    }
}

pub fn problem_response(problem: &Problem) -> Response {
    let status = StatusCode::from_u16(problem.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
    let body = serde_json::to_vec(problem).expect("a problem always serializes");
    let mut response = (status, body).into_response();
    response
        .headers_mut()
        .insert(header::CONTENT_TYPE, HeaderValue::from_static(PROBLEM_JSON));
    response
}

pub const PROBLEM_JSON: &str = "application/problem+json";

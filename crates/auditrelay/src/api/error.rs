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

use super::context;
use crate::store::StoreError;

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
}

impl ApiError {
    fn new(status: StatusCode, title: &'static str, detail: impl Into<String>) -> Self {
        Self {
            status,
            title,
            detail: detail.into(),
            invalid_parameters: Vec::new(),
            cause: None,
        }
    }

    /// 400 with the fields at fault. `detail` is the summary ("Invalid parameters").
    pub fn bad_request(detail: impl Into<String>, invalid: Vec<InvalidParameter>) -> Self {
        let mut e = Self::new(StatusCode::BAD_REQUEST, "Bad Request", detail);
        e.invalid_parameters = invalid;
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
                context::current_trace_id().unwrap_or_default()
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
            other => Self::internal(other),
        }
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
        problem_response(&self.problem())
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

//! JSON request bodies: [`ApiJson`] extracts one with Konnect's 400 shapes for every failure
//! (unparsable, unknown field, missing field, wrong type) instead of axum's plain-text
//! rejections, and [`describe`] turns a deserialization error into the field it is about.

use axum::extract::{FromRequest, Request};
use axum::http::header;
use http_body_util::{BodyExt, LengthLimitError, Limited};
use serde::de::DeserializeOwned;

use super::error::{ApiError, InvalidParameter};

/// Configuration bodies are small; this bounds what a client can make us buffer.
const MAX_BODY: usize = 1024 * 1024;

/// A JSON body, parsed strictly.
pub struct ApiJson<T>(pub T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequest<S> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, _: &S) -> Result<Self, ApiError> {
        let content_type = req
            .headers()
            .get(header::CONTENT_TYPE)
            .and_then(|v| v.to_str().ok())
            .unwrap_or("");
        // Konnect documents 400 (not 415) for these operations, and SDKs report any other
        // code as "unknown": a body without a Content-Type is read as the JSON it must be, and
        // one declared as something else is a 400 naming the header.
        let essence = content_type.split(';').next().unwrap_or("").trim();
        let json = essence.is_empty()
            || essence.eq_ignore_ascii_case("application/json")
            || essence.ends_with("+json");
        if !json {
            return Err(ApiError::invalid(
                "Invalid Content-Type",
                InvalidParameter::choice("Content-Type", ["application/json"])
                    .with_source("header"),
            ));
        }
        let bytes = match Limited::new(req.into_body(), MAX_BODY).collect().await {
            Ok(collected) => collected.to_bytes(),
            Err(e) if e.downcast_ref::<LengthLimitError>().is_some() => {
                return Err(ApiError::payload_too_large(format!(
                    "The body is over the limit of {MAX_BODY} bytes"
                )));
            }
            Err(_) => return Err(ApiError::unparsable_body()),
        };
        match from_slice(&bytes) {
            Ok(value) => Ok(ApiJson(value)),
            Err(ParseError::Syntax(_)) => Err(ApiError::unparsable_body()),
            Err(ParseError::Field(parameter)) => Err(ApiError::invalid(
                "Invalid request body",
                (*parameter).with_source("body"),
            )),
        }
    }
}

/// Why a JSON document did not deserialize.
#[derive(Debug)]
pub enum ParseError {
    /// Not JSON at all, or trailing content after it; the message says where.
    Syntax(String),
    /// JSON, but a field is unknown, missing or of the wrong type.
    Field(Box<InvalidParameter>),
}

/// Deserializes exactly one JSON document, naming the field at fault on failure.
pub fn from_slice<T: DeserializeOwned>(bytes: &[u8]) -> Result<T, ParseError> {
    // The fast path tracks no field paths; only a failure pays for a second, tracking parse.
    if let Ok(value) = serde_json::from_slice(bytes) {
        return Ok(value);
    }
    let syntax = |e: &serde_json::Error| {
        let message = e.to_string();
        ParseError::Syntax(
            message
                .split(" at line ")
                .next()
                .unwrap_or(&message)
                .to_owned(),
        )
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let value = serde_path_to_error::deserialize(&mut de).map_err(|e| {
        if e.inner().is_syntax() || e.inner().is_eof() {
            syntax(e.inner())
        } else {
            ParseError::Field(Box::new(describe(&e)))
        }
    })?;
    de.end().map_err(|e| syntax(&e))?;
    Ok(value)
}

/// Names the field a (non-syntax) deserialization error is about, with a Konnect rule.
fn describe(e: &serde_path_to_error::Error<serde_json::Error>) -> InvalidParameter {
    let message = e.inner().to_string();
    let message = message
        .split(" at line ")
        .next()
        .unwrap_or(&message)
        .to_owned();
    let path = e.path().to_string();
    let quoted = |prefix: &str| {
        message
            .strip_prefix(prefix)
            .and_then(|m| m.split('`').next())
            .map(str::to_owned)
    };
    let join = |name: &str| {
        if path == "." {
            name.to_owned()
        } else {
            format!("{path}.{name}")
        }
    };
    if let Some(name) = quoted("unknown field `") {
        // The path already ends at the unknown field itself.
        let field = if path.ends_with(name.as_str()) {
            path.clone()
        } else {
            join(&name)
        };
        return InvalidParameter::new(field, Some("unknown_property"), "is not a known field");
    }
    if let Some(name) = quoted("missing field `") {
        return InvalidParameter::new(join(&name), Some("required"), "is a required field");
    }
    let rule = if message.contains("expected a boolean") {
        "is_boolean"
    } else if message.contains("expected a string") {
        "is_string"
    } else if message.contains("expected i") || message.contains("expected u") {
        "is_integer"
    } else if message.contains("expected struct") || message.contains("expected a map") {
        "is_object"
    } else if message.starts_with("unknown variant") {
        // serde lists the variants: "unknown variant `xml`, expected one of `cef`, `json`".
        let choices = message.split("expected ").nth(1).unwrap_or("");
        let choices = choices
            .trim_start_matches("one of ")
            .split(", ")
            .map(|c| c.trim_matches('`'));
        let field = if path == "." { "body".to_owned() } else { path };
        return InvalidParameter::choice(field, choices);
    } else {
        "type"
    };
    let field = if path == "." { "body".to_owned() } else { path };
    // serde's words for a wrong type name our Rust types ("expected struct EventInput"),
    // which mean nothing to a client.
    let reason = match rule {
        "is_object" => "must be a JSON object".to_owned(),
        _ => message,
    };
    InvalidParameter::new(field, Some(rule), reason)
}

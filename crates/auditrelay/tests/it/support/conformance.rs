//! Machine-checked conformance with Kong Konnect's official OpenAPI documents: every response a
//! test passes through [`check`] (or [`check_response`]) is validated against the response
//! schema of the matching operation, so a drift from the contract fails the test that saw it.
//!
//! The documents are read from `<workspace>/../shared/reference/konnect/` (they are Konnect's,
//! not ours, so they are not vendored into the repository). Without that directory the checks
//! are skipped with a message, except under `CI=true`, where a missing contract is an error.
//!
//! OpenAPI 3.0 schemas are not JSON Schema, so each is converted (see [`convert`]) and handed to
//! the `jsonschema` crate as a draft 2020-12 schema whose `$defs` are the document's
//! `components.schemas`. The conversion knows exactly the keywords the three documents use and
//! panics on any other, so a new keyword in an updated document cannot be silently ignored.
//!
//! One documented deviation is applied to the documents as loaded: `webhook_status` may be
//! `unconfigured` (see [`allow_documented_unconfigured_status`]).
//!
//! Rules beyond the schema itself:
//! - A status the operation does not list (and no `default`) is a violation.
//! - An operation the document does not define is a violation too, except a 404 or 405: that
//!   is how a server answers a route it does not have, and the contract says nothing about it,
//!   so the answer is [`Outcome::Undocumented`] and nothing is validated.
//! - A response without `content` in the document must have no body; [`check_response`] also
//!   requires the `Content-Type` to be one the document lists.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::sync::OnceLock;

use reqwest::{Response, StatusCode};
use serde_json::{Map, Value, json};

/// One of Konnect's OpenAPI documents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Doc {
    /// `audit-logs-v2.openapi.yaml` (served under `/v2`).
    V2,
    /// `audit-logs-v3.openapi.yaml` (served under `/v3`).
    V3,
    /// `portal-audit-logs-v3.openapi.yaml` (served under `/v3`).
    PortalV3,
}

impl Doc {
    fn file_name(self) -> &'static str {
        match self {
            Doc::V2 => "audit-logs-v2.openapi.yaml",
            Doc::V3 => "audit-logs-v3.openapi.yaml",
            Doc::PortalV3 => "portal-audit-logs-v3.openapi.yaml",
        }
    }

    fn index(self) -> usize {
        match self {
            Doc::V2 => 0,
            Doc::V3 => 1,
            Doc::PortalV3 => 2,
        }
    }
}

/// What a successful check established.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The body is valid against the documented response schema (or, for a response without
    /// content, there is no body).
    Conforms,
    /// A 404 or 405 for an operation the document does not define: nothing to check against.
    Undocumented,
    /// The documents are not on this machine (and this is not CI); nothing was checked.
    Skipped,
}

/// A drift from the contract: which operation and status, and every reason.
#[derive(Debug, Clone)]
pub struct Violation {
    pub operation: String,
    pub status: u16,
    /// One line per problem; schema errors carry their instance path (`/data/0/ts`).
    pub errors: Vec<String>,
    pub body: Value,
}

impl std::fmt::Display for Violation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        writeln!(
            f,
            "response does not conform to Konnect's contract: {} answered {}",
            self.operation, self.status
        )?;
        for error in &self.errors {
            writeln!(f, "  - {error}")?;
        }
        let body = serde_json::to_string_pretty(&self.body).unwrap_or_default();
        write!(f, "body: {body}")
    }
}

/// The directory holding Konnect's documents.
pub fn reference_dir() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/konnect")
}

/// Whether the documents are present. Absent: prints why the checks are skipped, or panics
/// under `CI=true` (a CI run that validated nothing must not look green).
pub fn documents_present() -> bool {
    static PRESENT: OnceLock<bool> = OnceLock::new();
    *PRESENT.get_or_init(|| {
        let dir = reference_dir();
        if dir.is_dir() {
            return true;
        }
        let reason = format!(
            "Konnect's OpenAPI documents are not at {}: conformance checks are skipped",
            dir.display()
        );
        super::skip_unless_ci(&reason);
        false
    })
}

/// Validates `body` as the response `status` of `method path_template` in `doc`, without
/// panicking. `path_template` is the document's key, without `/v2` or `/v3`
/// (`"/audit-logs"`, `"/portals/{portalId}/audit-log-webhook"`); a body-less response is
/// `Value::Null`.
pub fn validate(
    doc: Doc,
    method: &str,
    path_template: &str,
    status: u16,
    body: &Value,
) -> Result<Outcome, Violation> {
    validate_with_content_type(doc, method, path_template, status, None, body)
}

/// Like [`validate`], but panics with every reason on a violation. The one-line check for a
/// test: `conformance::check(Doc::V3, "GET", "/audit-logs", 200, &body);`
pub fn check(doc: Doc, method: &str, path_template: &str, status: u16, body: &Value) -> Outcome {
    validate(doc, method, path_template, status, body).unwrap_or_else(|v| panic!("{v}"))
}

/// Reads a response, checks its path against `path_template` (under the document's base path,
/// after any region prefix), its `Content-Type` and its body, and returns its status and JSON
/// body (`Value::Null` when empty). Panics on any violation.
pub async fn check_response(
    doc: Doc,
    method: &str,
    path_template: &str,
    resp: Response,
) -> (StatusCode, Value) {
    let status = resp.status();
    let path = resp.url().path().to_owned();
    let content_type = resp
        .headers()
        .get(reqwest::header::CONTENT_TYPE)
        .map(|v| v.to_str().expect("ASCII content-type").to_owned());
    let text = resp.text().await.expect("response body");
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text).unwrap_or_else(|e| {
            panic!("{method} {path} answered {status} with non-JSON ({e}): {text}")
        })
    };
    if documents_present() {
        let base = loaded(doc).base_path.as_str();
        assert!(
            path_matches(&path, base, path_template),
            "{method} {path} is not {base}{path_template} of {}: wrong template passed to check_response",
            doc.file_name()
        );
    }
    validate_with_content_type(
        doc,
        method,
        path_template,
        status.as_u16(),
        Some(content_type.as_deref().unwrap_or("")),
        &body,
    )
    .unwrap_or_else(|v| panic!("{v}"));
    (status, body)
}

/// `content_type`: `None` to skip the media-type check (a bare body has none).
pub fn validate_with_content_type(
    doc: Doc,
    method: &str,
    path_template: &str,
    status: u16,
    content_type: Option<&str>,
    body: &Value,
) -> Result<Outcome, Violation> {
    if !documents_present() {
        return Ok(Outcome::Skipped);
    }
    let loaded = loaded(doc);
    let operation = format!(
        "{} {}{} ({})",
        method.to_ascii_uppercase(),
        loaded.base_path,
        path_template,
        doc.file_name()
    );
    let violation = |errors: Vec<String>| Violation {
        operation: operation.clone(),
        status,
        errors,
        body: body.clone(),
    };

    let Some(op) = loaded
        .raw
        .pointer(&format!("/paths/{}", escape_pointer(path_template)))
        .and_then(|item| item.get(method.to_ascii_lowercase()))
    else {
        if status == 404 || status == 405 {
            return Ok(Outcome::Undocumented);
        }
        return Err(violation(vec![
            "the document defines no such operation".into(),
        ]));
    };
    let responses = op["responses"]
        .as_object()
        .unwrap_or_else(|| panic!("{operation} has no responses in the document"));
    let code = status.to_string();
    let range = format!("{}XX", status / 100);
    let Some(response) = responses
        .get(&code)
        .or_else(|| responses.get(&range))
        .or_else(|| responses.get("default"))
    else {
        let listed: Vec<&String> = responses.keys().collect();
        return Err(violation(vec![format!(
            "status {status} is not documented for this operation (documented: {listed:?})"
        )]));
    };
    let response = resolve_response(&loaded.raw, response);

    let Some(content) = response.get("content").and_then(Value::as_object) else {
        if body.is_null() {
            return Ok(Outcome::Conforms);
        }
        return Err(violation(vec![
            "the document defines no body for this response, but there is one".into(),
        ]));
    };
    let media = match content_type {
        Some(actual) => {
            let essence = actual.split(';').next().unwrap_or("").trim();
            match content.get_key_value(essence) {
                Some(found) => found,
                None => {
                    let listed: Vec<&String> = content.keys().collect();
                    return Err(violation(vec![format!(
                        "Content-Type {actual:?} is not one the document lists ({listed:?})"
                    )]));
                }
            }
        }
        None => ["application/json", "application/problem+json"]
            .iter()
            .find_map(|m| content.get_key_value(*m))
            .unwrap_or_else(|| panic!("{operation} {status}: no JSON media type in the document")),
    };
    let Some(schema) = media.1.get("schema") else {
        // A media type without a schema allows any body.
        return Ok(Outcome::Conforms);
    };

    let mut root = match convert(schema, &format!("{operation} {status} {}", media.0)) {
        Value::Object(map) => map,
        other => {
            let mut map = Map::new();
            map.insert("allOf".into(), json!([other]));
            map
        }
    };
    root.insert("$defs".into(), loaded.defs.clone());
    let validator = jsonschema::draft202012::options()
        .should_validate_formats(true)
        // An unknown format in an updated document must fail loudly, not be skipped.
        .should_ignore_unknown_formats(false)
        // `path` (pagination links) is Konnect's own format: a URI path, absolute.
        .with_format("path", |s: &str| s.starts_with('/'))
        // `int32` annotates integers; formats only ever check strings, so this never runs.
        .with_format("int32", |_: &str| true)
        .build(&Value::Object(root))
        .unwrap_or_else(|e| panic!("{operation} {status}: converted schema does not compile: {e}"));

    let mut errors: Vec<String> = validator
        .iter_errors(body)
        .map(|e| format!("at {:?}: {e}", e.instance_path().as_str()))
        .collect();
    if errors.is_empty() {
        return Ok(Outcome::Conforms);
    }
    // `oneOf` only says "no branch matched"; the evaluation says why each branch failed.
    if errors
        .iter()
        .any(|e| e.contains("oneOf") || e.contains("anyOf"))
    {
        let evaluation = validator.evaluate(body);
        let details: BTreeSet<String> = evaluation
            .iter_errors()
            .map(|e| {
                format!(
                    "  (branch) at {:?}: {} [schema {}]",
                    e.instance_location.as_str(),
                    e.error,
                    e.schema_location
                )
            })
            .collect();
        errors.extend(details);
    }
    Err(violation(errors))
}

/// One operation of a document, with what a request generator needs: its parameters and its
/// request body, as converted schemas that refer to [`definitions`].
#[derive(Debug, Clone)]
pub struct Operation {
    pub doc: Doc,
    /// Upper case (`PATCH`).
    pub method: String,
    /// The document's path key (`/audit-log-destinations/{auditLogDestinationId}`).
    pub template: String,
    /// The servers' path (`/v2`), which `template` leaves out.
    pub base_path: String,
    /// Path and query parameters, the path item's own first.
    pub parameters: Vec<Parameter>,
    /// The `application/json` request body's schema, when the operation takes one.
    pub body: Option<Value>,
    /// The documented response codes (`"200"`, `"4XX"`, `"default"`).
    pub statuses: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Parameter {
    pub name: String,
    /// `path` or `query`.
    pub location: String,
    /// `deepObject` for `filter` (`filter[ts][gte]=…`), `form` otherwise.
    pub deep_object: bool,
    pub schema: Value,
}

/// Every operation `doc` defines (empty when the documents are absent).
pub fn operations(doc: Doc) -> Vec<Operation> {
    if !documents_present() {
        return Vec::new();
    }
    let loaded = loaded(doc);
    let raw = &loaded.raw;
    let mut out = Vec::new();
    for (template, item) in raw["paths"].as_object().expect("paths") {
        let shared = item["parameters"].as_array().cloned().unwrap_or_default();
        for (method, op) in item.as_object().expect("path item") {
            if method == "parameters" {
                continue;
            }
            let at = format!("{} {method} {template}", doc.file_name());
            let own = op["parameters"].as_array().cloned().unwrap_or_default();
            let parameters = shared
                .iter()
                .chain(&own)
                .map(|p| {
                    let p = resolve(raw, p, "/components/parameters/");
                    Parameter {
                        name: p["name"].as_str().expect("parameter name").to_owned(),
                        location: p["in"].as_str().expect("parameter in").to_owned(),
                        deep_object: p["style"] == "deepObject",
                        schema: convert(&p["schema"], &at),
                    }
                })
                .collect();
            let body = op.get("requestBody").map(|b| {
                let b = resolve(raw, b, "/components/requestBodies/");
                convert(&b["content"]["application/json"]["schema"], &at)
            });
            out.push(Operation {
                doc,
                method: method.to_ascii_uppercase(),
                template: template.clone(),
                base_path: loaded.base_path.clone(),
                parameters,
                body,
                statuses: op["responses"]
                    .as_object()
                    .expect("responses")
                    .keys()
                    .cloned()
                    .collect(),
            });
        }
    }
    out
}

/// `components.schemas` of `doc`, converted: what a converted schema's `#/$defs/X` names.
pub fn definitions(doc: Doc) -> &'static Value {
    &loaded(doc).defs
}

/// Follows a `$ref` into `#<prefix>X`; anything else is returned as it is.
fn resolve<'a>(raw: &'a Value, value: &'a Value, prefix: &str) -> &'a Value {
    match value.get("$ref").and_then(Value::as_str) {
        Some(reference) => {
            let pointer = reference
                .strip_prefix('#')
                .filter(|p| p.starts_with(prefix))
                .unwrap_or_else(|| panic!("unsupported $ref {reference}"));
            raw.pointer(pointer)
                .unwrap_or_else(|| panic!("dangling $ref {reference}"))
        }
        None => value,
    }
}

/// A parsed document with its converted schemas, loaded once per test process.
struct Loaded {
    raw: Value,
    /// `components.schemas`, converted, for the validator's `$defs`.
    defs: Value,
    /// The path of the document's servers (`/v2`, `/v3`), which its path keys leave out.
    base_path: String,
}

fn loaded(doc: Doc) -> &'static Loaded {
    static DOCS: [OnceLock<Loaded>; 3] = [OnceLock::new(), OnceLock::new(), OnceLock::new()];
    DOCS[doc.index()].get_or_init(|| load(doc))
}

fn load(doc: Doc) -> Loaded {
    let path = reference_dir().join(doc.file_name());
    let text = std::fs::read_to_string(&path)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", path.display()));
    let mut raw: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("{} is not valid YAML: {e}", path.display()));
    allow_documented_unconfigured_status(&mut raw, doc);

    let bases: BTreeSet<String> = raw["servers"]
        .as_array()
        .unwrap_or_else(|| panic!("{} lists no servers", doc.file_name()))
        .iter()
        .map(|s| server_path(s["url"].as_str().expect("server url")))
        .collect();
    assert_eq!(
        bases.len(),
        1,
        "{}: servers disagree on the base path: {bases:?}",
        doc.file_name()
    );
    let base_path = bases.into_iter().next().unwrap();

    let mut defs = Map::new();
    if let Some(schemas) = raw
        .pointer("/components/schemas")
        .and_then(Value::as_object)
    {
        for (name, schema) in schemas {
            let at = format!("{}#/components/schemas/{name}", doc.file_name());
            defs.insert(name.clone(), convert(schema, &at));
        }
    }
    Loaded {
        raw,
        defs: Value::Object(defs),
        base_path,
    }
}

/// Konnect's reference page (`audit-logs-reference.md`, the `webhook_enabled` ×
/// `webhook_status` table) documents `webhook_status: unconfigured` for a region whose webhook
/// is not configured, but the status schemas' enum lists only `active` and `inactive`. The
/// prose is the behaviour clients meet, so the enum is widened here, and only here. Panics if a
/// document no longer has the status schema, so a renamed response cannot silently skip this.
fn allow_documented_unconfigured_status(raw: &mut Value, doc: Doc) {
    let mut widened = 0;
    if let Some(responses) = raw
        .pointer_mut("/components/responses")
        .and_then(Value::as_object_mut)
    {
        for (name, response) in responses {
            if !name.ends_with("WebhookStatus") {
                continue;
            }
            let values = response
                .pointer_mut("/content/application~1json/schema/properties/webhook_status/enum")
                .and_then(Value::as_array_mut)
                .unwrap_or_else(|| panic!("{name} has no webhook_status enum"));
            values.push(json!("unconfigured"));
            widened += 1;
        }
    }
    assert!(
        widened > 0,
        "{}: no webhook status response to widen",
        doc.file_name()
    );
}

/// The path part of a server URL (`https://us.api.konghq.com/v3` → `/v3`).
fn server_path(url: &str) -> String {
    let after_scheme = url.split_once("://").map_or(url, |(_, rest)| rest);
    let path = after_scheme.find('/').map_or("", |i| &after_scheme[i..]);
    path.trim_end_matches('/').to_owned()
}

/// Whether a request path is `base` + `template` (with `{param}` matching one segment),
/// possibly after a region prefix (`/eu/v3/audit-logs`).
fn path_matches(path: &str, base: &str, template: &str) -> bool {
    let full = format!("{base}{template}");
    let expected: Vec<&str> = full.split('/').filter(|s| !s.is_empty()).collect();
    let actual: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    actual.len() >= expected.len()
        && actual[actual.len() - expected.len()..]
            .iter()
            .zip(&expected)
            .all(|(a, e)| (e.starts_with('{') && e.ends_with('}')) || a == e)
}

/// Follows `#/components/responses/X` references to the response object.
fn resolve_response<'a>(raw: &'a Value, mut response: &'a Value) -> &'a Value {
    for _ in 0..8 {
        let Some(reference) = response.get("$ref").and_then(Value::as_str) else {
            return response;
        };
        let pointer = reference
            .strip_prefix('#')
            .filter(|p| p.starts_with("/components/responses/"))
            .unwrap_or_else(|| panic!("unsupported response $ref {reference}"));
        response = raw
            .pointer(pointer)
            .unwrap_or_else(|| panic!("dangling response $ref {reference}"));
    }
    panic!("response $ref chain too long")
}

fn escape_pointer(key: &str) -> String {
    key.replace('~', "~0").replace('/', "~1")
}

/// Converts an OpenAPI 3.0 schema object into a JSON Schema (draft 2020-12) one.
///
/// - `$ref` to `#/components/schemas/X` becomes `#/$defs/X`; its siblings are dropped, as
///   OpenAPI 3.0 ignores them.
/// - `nullable: true` adds `"null"` to `type` (and `null` to an `enum`, which would otherwise
///   still reject it); without a `type` the schema is wrapped in `anyOf [null, schema]`.
///   `nullable: false` is the default and is dropped.
/// - `discriminator` is dropped, but its property becomes required: a discriminator cannot pick
///   a branch without it, and the `oneOf` branches' own `enum`s then do the picking.
/// - `example`, `examples`, `xml`, `externalDocs`, `deprecated` and `x-*` are dropped;
///   `readOnly`, `writeOnly`, `title`, `description` and `default` stay as annotations.
/// - Subschemas (`properties`, `items`, `additionalProperties`, `allOf`, `oneOf`, `anyOf`,
///   `not`) are converted recursively; property *names* are never mistaken for keywords.
/// - Any other keyword panics, naming where it is.
pub fn convert(schema: &Value, at: &str) -> Value {
    let Some(object) = schema.as_object() else {
        return match schema {
            Value::Bool(_) => schema.clone(),
            other => panic!("{at}: a schema must be an object, found {other}"),
        };
    };
    if let Some(reference) = object.get("$ref") {
        let reference = reference.as_str().expect("$ref is a string");
        let name = reference
            .strip_prefix("#/components/schemas/")
            .unwrap_or_else(|| panic!("{at}: unsupported schema $ref {reference}"));
        return json!({ "$ref": format!("#/$defs/{}", escape_pointer(name)) });
    }

    let mut out = Map::new();
    let mut nullable = false;
    let mut discriminator = None;
    for (keyword, value) in object {
        let here = format!("{at}/{keyword}");
        match keyword.as_str() {
            "type" | "format" | "enum" | "required" | "minItems" | "maxItems" | "uniqueItems"
            | "minimum" | "maximum" | "title" | "description" | "default" | "readOnly"
            | "writeOnly" => {
                out.insert(keyword.clone(), value.clone());
            }
            "nullable" => nullable = value.as_bool().expect("nullable is a boolean"),
            "discriminator" => {
                discriminator = Some(
                    value["propertyName"]
                        .as_str()
                        .expect("discriminator.propertyName")
                        .to_owned(),
                );
            }
            "example" | "examples" | "xml" | "externalDocs" | "deprecated" => {}
            k if k.starts_with("x-") => {}
            "properties" => {
                let properties = value
                    .as_object()
                    .unwrap_or_else(|| panic!("{here}: properties must be an object"))
                    .iter()
                    .map(|(name, s)| (name.clone(), convert(s, &format!("{here}/{name}"))))
                    .collect();
                out.insert(keyword.clone(), Value::Object(properties));
            }
            "items" | "additionalProperties" | "not" => {
                out.insert(keyword.clone(), convert(value, &here));
            }
            "allOf" | "oneOf" | "anyOf" => {
                let branches = value
                    .as_array()
                    .unwrap_or_else(|| panic!("{here}: must be an array"))
                    .iter()
                    .enumerate()
                    .map(|(i, s)| convert(s, &format!("{here}/{i}")))
                    .collect();
                out.insert(keyword.clone(), Value::Array(branches));
            }
            other => panic!("{at}: OpenAPI keyword `{other}` is not handled by the conversion"),
        }
    }

    if let Some(property) = discriminator {
        let required = out
            .entry("required")
            .or_insert_with(|| json!([]))
            .as_array_mut()
            .expect("required is an array");
        if !required.iter().any(|r| r == property.as_str()) {
            required.push(Value::String(property));
        }
    }
    if nullable {
        if let Some(values) = out.get_mut("enum").and_then(Value::as_array_mut)
            && !values.contains(&Value::Null)
        {
            values.push(Value::Null);
        }
        match out.get_mut("type") {
            Some(Value::String(t)) => {
                let t = std::mem::take(t);
                out.insert("type".into(), json!([t, "null"]));
            }
            Some(other) => panic!("{at}: nullable with an unexpected type {other}"),
            None => return json!({ "anyOf": [{ "type": "null" }, Value::Object(out)] }),
        }
    }
    Value::Object(out)
}

//! Property-based conformance: requests generated from Konnect's three OpenAPI documents —
//! every operation, its parameters and request body drawn from their schemas, valid or
//! damaged, with or without a token or a `Content-Type` — must never meet a server error, and
//! every answer must be one of the operation's documented codes with a body its schema allows.
//! The only exceptions are the deviations `docs/API.md` lists, and [`DEVIATIONS`] checks that
//! it still lists each one.
//!
//! proptest shrinks a failure to a smallest request before reporting it; the server keeps the
//! state earlier cases left (deleted destinations, running replay jobs), which is part of what
//! is tested: no sequence of client requests may lead to a 5xx.

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::Duration as StdDuration;

use auditrelay_core::Role;
use proptest::prelude::*;
use proptest::sample::{Index, select};
use proptest::strategy::Union;
use proptest::test_runner::{Config as ProptestConfig, TestCaseError, TestRunner};
use reqwest::{Method, StatusCode};
use serde_json::{Map, Value, json};
use time::format_description::well_known::Rfc3339;
use time::{Duration, OffsetDateTime};

use crate::support::conformance::{self, Doc, Operation};
use crate::support::{TestApp, expect_json};

/// Requests per run. Each is one round trip to an in-process server (a few milliseconds).
const CASES: u32 = 1500;
/// Rounds the cases are split into, each on fresh fixtures.
const ROUNDS: u32 = 10;
/// Rounds at most, after those, for the operations not yet answered both ways.
const TOP_UP: u32 = 5;

/// The deviations from Konnect's documented codes that `docs/API.md` records:
/// `(method, document path key, status, words API.md must contain)`.
const DEVIATIONS: &[(&str, &str, u16, &str)] = &[
    (
        "POST",
        "/audit-log-destinations",
        409,
        "`409` for a duplicate destination name on `POST`",
    ),
    (
        "PATCH",
        "/audit-log-destinations/{auditLogDestinationId}",
        409,
        "on a `PATCH` that renames a destination to a name another one has",
    ),
    (
        "GET",
        "/audit-log-destinations",
        400,
        "`400` for a bad `filter[name]` on the destinations list",
    ),
];

/// What one generated request is.
#[derive(Debug, Clone)]
struct Case {
    operation: usize,
    /// Path parameters by name, already chosen.
    path: BTreeMap<String, String>,
    /// `name=value` pairs, not yet encoded.
    query: Vec<(String, String)>,
    body: Body,
    token: TokenChoice,
    content_type: Option<&'static str>,
    /// Konnect's generated SDKs send this `Accept`; curl and browsers send others.
    accept: Option<&'static str>,
}

#[derive(Debug, Clone)]
enum Body {
    None,
    Json(Value),
    /// Bytes that are not the JSON the schema describes (or not JSON at all).
    Raw(&'static str),
}

#[derive(Debug, Clone, Copy)]
enum TokenChoice {
    Admin,
    Viewer,
    Missing,
    Unknown,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn generated_requests_meet_only_documented_answers() {
    let operations: Vec<Operation> = [Doc::V2, Doc::V3, Doc::PortalV3]
        .into_iter()
        .flat_map(conformance::operations)
        .collect();
    if operations.is_empty() {
        return; // documents_present() said why (and failed under CI=true)
    }
    let api_md = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/API.md"),
    )
    .expect("docs/API.md");
    for (method, path, status, words) in DEVIATIONS {
        assert!(
            api_md.contains(words),
            "docs/API.md no longer records the deviation {status} on {method} {path} ({words:?})"
        );
    }

    // Generated endpoints include loopback ones, so that delivery attempts stay on this machine.
    let app = TestApp::spawn_with(|c| {
        c.delivery.allow_http_endpoints = true;
        c.delivery.allow_private_endpoints = true;
    })
    .await;
    let viewer = app.token(Role::AuditLogsViewer, None).await;
    let handle = tokio::runtime::Handle::current();
    let seen = Mutex::new(BTreeMap::<(usize, u16), u32>::new());
    // Cases delete what they find, so each round starts from fresh resources: otherwise the
    // later cases would meet nothing but 404s. The rounds after `ROUNDS` draw only operations
    // not yet answered both ways (see below), up to `TOP_UP` of them.
    let all: Vec<usize> = (0..operations.len()).collect();
    for round in 0..ROUNDS + TOP_UP {
        let wanted = match round < ROUNDS {
            true => all.clone(),
            false => lacking(&operations, &seen.lock().unwrap()),
        };
        if wanted.is_empty() {
            break;
        }
        let ids = fixtures(&app, round).await;
        let strategy = case(&operations, &wanted, &ids);
        let mut runner = TestRunner::new(ProptestConfig {
            cases: CASES / ROUNDS,
            // The persistence file would land in the source tree; a failure prints its case.
            failure_persistence: None,
            ..ProptestConfig::default()
        });
        let result = tokio::task::block_in_place(|| {
            runner
                .run(&strategy, |case| {
                    let status = handle.block_on(send(&app, &viewer, &operations, &case))?;
                    *seen
                        .lock()
                        .unwrap()
                        .entry((case.operation, status))
                        .or_default() += 1;
                    Ok(())
                })
                .map_err(|e| e.to_string())
        });
        if let Err(e) = result {
            panic!("{e}");
        }
    }

    // A generator that only ever produced 401s would pass the checks above and test nothing:
    // every operation must have been answered both with success and with a client error. A
    // success can take several draws coming together (a replay job's PUT needs the admin's
    // token, the round's portal, its enabled webhook and a valid window), so an operation that
    // had none in `ROUNDS` gets rounds of its own, on fresh fixtures, before this fails.
    let seen = seen.into_inner().unwrap();
    let mut tally = String::new();
    for (index, op) in operations.iter().enumerate() {
        let statuses: Vec<String> = seen
            .iter()
            .filter(|((i, _), _)| *i == index)
            .map(|((_, status), n)| format!("{status}×{n}"))
            .collect();
        tally.push_str(&format!(
            "  {} {}{}: {}\n",
            op.method,
            op.base_path,
            op.template,
            statuses.join(" ")
        ));
    }
    eprintln!("answers per operation:\n{tally}");
    if let Some(&i) = lacking(&operations, &seen).first() {
        let op = &operations[i];
        panic!(
            "{} {}{} was never answered with a success or never with a client error, \
             in {TOP_UP} more rounds of its own:\n{tally}",
            op.method, op.base_path, op.template
        );
    }
}

/// The operations not yet answered with a success, or with a client error where one is
/// documented, in `seen` (by operation and status).
fn lacking(operations: &[Operation], seen: &BTreeMap<(usize, u16), u32>) -> Vec<usize> {
    let answered = |op: &Operation, class: u16| {
        // v2 and v3 share their destination operations' code, so either answering counts.
        let same =
            |i: usize| operations[i].method == op.method && operations[i].template == op.template;
        seen.keys().any(|(i, s)| same(*i) && s / 100 == class)
    };
    (0..operations.len())
        .filter(|i| {
            let op = &operations[*i];
            // The JWKS is public and takes no input: nothing to get wrong.
            let errs = op.statuses.iter().any(|s| s.starts_with('4'));
            !answered(op, 2) || (errs && !answered(op, 4))
        })
        .collect()
}

/// A portal and six destinations, with the organization's and the portal's webhooks enabled
/// and bound to two of them.
async fn fixtures(app: &TestApp, round: u32) -> Ids {
    let portal = app.create_portal(&format!("Generated {round}"), "us").await;
    let mut destinations = Vec::new();
    for name in ["first", "second", "third", "fourth", "fifth", "sixth"] {
        let created = expect_json(
            app.post(
                "/v2/audit-log-destinations",
                &app.admin,
                json!({
                    "name": format!("{name} {round}"),
                    "endpoint": "https://127.0.0.1:9/siem",
                    "authorization": "Bearer fixture",
                    "log_format": "json",
                }),
            )
            .await,
            StatusCode::CREATED,
        )
        .await;
        destinations.push(created["id"].as_str().unwrap().to_owned());
    }
    for (path, body) in [
        (
            "/v3/audit-log-webhook".to_owned(),
            json!({"audit_log_destination_id": destinations[0], "enabled": true}),
        ),
        (
            format!("/v3/portals/{portal}/audit-log-webhook"),
            json!({"audit_log_destination_id": destinations[1], "enabled": true}),
        ),
    ] {
        let resp = app
            .request(Method::PATCH, &path, Some(&app.admin), Some(body))
            .await;
        expect_json(resp, StatusCode::OK).await;
    }
    Ids {
        destinations,
        portals: vec![portal.to_string()],
    }
}

/// Ids that exist when a round starts, so path parameters sometimes name a real resource.
struct Ids {
    destinations: Vec<String>,
    portals: Vec<String>,
}

async fn send(
    app: &TestApp,
    viewer: &str,
    operations: &[Operation],
    case: &Case,
) -> Result<u16, TestCaseError> {
    let op = &operations[case.operation];
    let mut path = format!("{}{}", op.base_path, op.template);
    for (name, value) in &case.path {
        path = path.replace(&format!("{{{name}}}"), &encode(value));
    }
    if !case.query.is_empty() {
        let query: Vec<String> = case
            .query
            .iter()
            .map(|(k, v)| format!("{}={}", encode(k), encode(v)))
            .collect();
        path = format!("{path}?{}", query.join("&"));
    }
    let method: Method = op.method.parse().unwrap();
    let mut request = app
        .client
        .request(method, app.url(&path))
        .timeout(StdDuration::from_secs(10));
    request = match case.token {
        TokenChoice::Admin => request.bearer_auth(&app.admin),
        TokenChoice::Viewer => request.bearer_auth(viewer),
        TokenChoice::Missing => request,
        TokenChoice::Unknown => {
            request.bearer_auth("kpat_notatokenweissued0000000000000000000000000")
        }
    };
    if let Some(accept) = case.accept {
        request = request.header("accept", accept);
    }
    if let Some(content_type) = case.content_type {
        request = request.header("content-type", content_type);
    }
    request = match &case.body {
        Body::None => request,
        Body::Json(value) => request.body(value.to_string()),
        Body::Raw(text) => request.body(*text),
    };
    let response = request.send().await.expect("request sent");
    let status = response.status().as_u16();
    let content_type = response
        .headers()
        .get("content-type")
        .map(|v| v.to_str().unwrap_or("").to_owned());
    let text = response.text().await.expect("response body");
    let what = format!("{} {path} answered {status}: {text}", op.method);
    prop_assert!(status < 500, "a server error: {}", what);
    let body = if text.is_empty() {
        Value::Null
    } else {
        serde_json::from_str(&text)
            .map_err(|e| TestCaseError::fail(format!("not JSON ({e}): {what}")))?
    };
    if DEVIATIONS
        .iter()
        .any(|(m, t, s, _)| *m == op.method && *t == op.template && *s == status)
    {
        return Ok(status);
    }
    conformance::validate_with_content_type(
        op.doc,
        &op.method,
        &op.template,
        status,
        Some(content_type.as_deref().unwrap_or("")),
        &body,
    )
    .map_err(|v| TestCaseError::fail(format!("{v}\nrequest: {case:?}")))?;
    Ok(status)
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
fn encode(s: &str) -> String {
    let mut out = String::new();
    for byte in s.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            out.push(byte as char);
        } else {
            out.push_str(&format!("%{byte:02X}"));
        }
    }
    out
}

/// A request to one of the `wanted` operations (indexes into `operations`).
fn case(operations: &[Operation], wanted: &[usize], ids: &Ids) -> BoxedStrategy<Case> {
    // Deletes are drawn less often, so what a round's fixtures set up lasts long enough for the
    // requests that need it (a replay needs an enabled webhook) to be tried.
    let per_operation: Vec<(u32, BoxedStrategy<Case>)> = wanted
        .iter()
        .map(|&index| {
            let op = &operations[index];
            let weight = if op.method == "DELETE" { 2 } else { 5 };
            (weight, operation_case(index, op, ids))
        })
        .collect();
    Union::new_weighted(per_operation).boxed()
}

fn operation_case(index: usize, op: &Operation, ids: &Ids) -> BoxedStrategy<Case> {
    let generator = Gen {
        defs: conformance::definitions(op.doc),
        known: ids
            .destinations
            .iter()
            .chain(&ids.portals)
            .cloned()
            .collect(),
    };
    let mut path: Vec<BoxedStrategy<(String, String)>> = Vec::new();
    let mut query: Vec<BoxedStrategy<Vec<(String, String)>>> = Vec::new();
    for p in &op.parameters {
        let name = p.name.clone();
        if p.location == "path" {
            let known = match name.as_str() {
                "portalId" => ids.portals.clone(),
                _ => ids.destinations.clone(),
            };
            let value = prop_oneof![
                4 => select(known),
                2 => any::<u128>().prop_map(|n| uuid::Uuid::from_u128(n).to_string()),
                1 => Just("not-a-uuid".to_owned()),
                1 => Just(" ".to_owned()),
            ];
            path.push(value.prop_map(move |v| (name.clone(), v)).boxed());
        } else {
            let deep = p.deep_object;
            let value = generator.value(&p.schema, 0);
            let pairs = prop_oneof![
                3 => value.prop_map(move |v| query_pairs(&name, &v, deep)),
                1 => ("[a-z]{1,6}", "[ -~]{0,8}").prop_map({
                    let name = p.name.clone();
                    move |(key, junk)| {
                        if deep {
                            vec![(format!("{name}[{key}]"), junk)]
                        } else {
                            vec![(name.clone(), junk)]
                        }
                    }
                }),
            ];
            query.push(
                prop::option::of(pairs)
                    .prop_map(Option::unwrap_or_default)
                    .boxed(),
            );
        }
    }
    let body = match &op.body {
        Some(schema) => body(schema, &generator),
        None => prop_oneof![9 => Just(Body::None), 1 => Just(Body::Raw("{}"))].boxed(),
    };
    let token = prop_oneof![
        16 => Just(TokenChoice::Admin),
        1 => Just(TokenChoice::Viewer),
        1 => Just(TokenChoice::Missing),
        1 => Just(TokenChoice::Unknown),
    ];
    let content_type = prop_oneof![
        14 => Just(Some("application/json")),
        2 => Just(None),
        1 => Just(Some("text/plain")),
        1 => Just(Some("application/json; charset=utf-8")),
    ];
    let accept = prop_oneof![
        Just(None),
        Just(Some("application/json;q=1, application/problem+json;q=0")),
        Just(Some("application/json")),
        Just(Some("*/*")),
    ];
    (path, query, body, token, content_type, accept)
        .prop_map(
            move |(path, query, body, token, content_type, accept)| Case {
                operation: index,
                path: path.into_iter().collect(),
                query: query.into_iter().flatten().collect(),
                body,
                token,
                content_type,
                accept,
            },
        )
        .boxed()
}

/// `filter={"ts":{"gte":"…"}}` as a deepObject is `filter[ts][gte]=…`; a form parameter is
/// `name=value`.
fn query_pairs(name: &str, value: &Value, deep: bool) -> Vec<(String, String)> {
    fn flatten(prefix: String, value: &Value, out: &mut Vec<(String, String)>) {
        match value {
            Value::Object(map) => {
                for (k, v) in map {
                    flatten(format!("{prefix}[{k}]"), v, out);
                }
            }
            Value::String(s) => out.push((prefix, s.clone())),
            Value::Null => out.push((prefix, String::new())),
            other => out.push((prefix, other.to_string())),
        }
    }
    let mut out = Vec::new();
    if deep {
        flatten(name.to_owned(), value, &mut out);
    } else {
        match value {
            Value::String(s) => out.push((name.to_owned(), s.clone())),
            other => out.push((name.to_owned(), other.to_string())),
        }
    }
    out
}

/// A request body: mostly one the schema allows, sometimes that body damaged in one place, and
/// sometimes bytes that are not that kind of JSON at all.
fn body(schema: &Value, generator: &Gen) -> BoxedStrategy<Body> {
    let valid = generator.value(schema, 0);
    prop_oneof![
        8 => valid.clone().prop_map(Body::Json),
        2 => (valid, any::<Index>(), 0..4u8).prop_map(|(v, at, how)| Body::Json(damage(v, at, how))),
        1 => select(vec!["", "{", "[]", "null", "\"endpoint\"", "{\"enabled\": tru}", "{\"a\":1}{}"])
            .prop_map(Body::Raw),
    ]
    .boxed()
}

/// Damages one field of an object: `null`, the wrong type, removed, or an unknown field added.
fn damage(value: Value, at: Index, how: u8) -> Value {
    let Value::Object(mut map) = value else {
        return json!([value]);
    };
    let keys: Vec<String> = map.keys().cloned().collect();
    match (keys.is_empty(), how) {
        (true, _) | (_, 3) => {
            map.insert("unexpected_field".into(), json!({"nested": [1, 2]}));
        }
        (false, 0) => {
            map.insert(at.get(&keys).clone(), Value::Null);
        }
        (false, 1) => {
            let key = at.get(&keys).clone();
            let wrong = match &map[&key] {
                Value::String(_) => json!(12345),
                Value::Bool(_) => json!("yes"),
                Value::Number(_) => json!("many"),
                _ => json!(true),
            };
            map.insert(key, wrong);
        }
        (false, _) => {
            map.remove(at.get(&keys).as_str());
        }
    }
    Value::Object(map)
}

/// Draws values for the converted schemas of one document.
#[derive(Clone)]
struct Gen {
    defs: &'static Value,
    /// Ids of things that exist: a `uuid` field mostly names one, so that requests get past
    /// "not found" to the rules behind it.
    known: Vec<String>,
}

impl Gen {
    /// A value the converted schema allows (as far as this generator knows the keywords: the ones
    /// [`conformance::convert`] emits).
    fn value(&self, schema: &Value, depth: usize) -> BoxedStrategy<Value> {
        let defs = self.defs;
        assert!(depth < 16, "schema nesting too deep: {schema}");
        if let Some(reference) = schema.get("$ref").and_then(Value::as_str) {
            let name = reference
                .strip_prefix("#/$defs/")
                .expect("a $defs reference");
            return self.value(&defs[name], depth + 1);
        }
        if let Some(values) = schema.get("enum").and_then(Value::as_array) {
            return select(values.clone()).boxed();
        }
        for keyword in ["anyOf", "oneOf"] {
            if let Some(branches) = schema.get(keyword).and_then(Value::as_array) {
                let branches: Vec<_> = branches.iter().map(|b| self.value(b, depth + 1)).collect();
                return Union::new(branches).boxed();
            }
        }
        if let Some(parts) = schema.get("allOf").and_then(Value::as_array) {
            let parts: Vec<_> = parts.iter().map(|p| self.value(p, depth + 1)).collect();
            return parts
                .prop_map(|parts| {
                    let mut merged = Map::new();
                    for part in parts {
                        if let Value::Object(map) = part {
                            merged.extend(map);
                        }
                    }
                    Value::Object(merged)
                })
                .boxed();
        }
        let types: Vec<&str> = match &schema["type"] {
            Value::String(t) => vec![t.as_str()],
            Value::Array(ts) => ts.iter().filter_map(Value::as_str).collect(),
            _ => vec!["object"],
        };
        let per_type: Vec<BoxedStrategy<Value>> = types
            .into_iter()
            .map(|t| self.typed(t, schema, depth))
            .collect();
        Union::new(per_type).boxed()
    }

    fn typed(&self, kind: &str, schema: &Value, depth: usize) -> BoxedStrategy<Value> {
        match kind {
        "null" => Just(Value::Null).boxed(),
        // Mostly true: `enabled: true` keeps webhooks on, which replay jobs need.
        "boolean" => prop_oneof![3 => Just(json!(true)), 1 => Just(json!(false))].boxed(),
        "integer" => {
            let low = schema["minimum"].as_i64().unwrap_or(-5);
            let high = schema["maximum"].as_i64().unwrap_or(200);
            prop_oneof![
                4 => (low..=high).prop_map(|n| json!(n)),
                1 => Just(json!(high + 1)),
                1 => Just(json!(i64::MAX)),
            ]
            .boxed()
        }
        "string" => match schema["format"].as_str() {
            Some("uuid") => prop_oneof![
                3 => select(self.known.clone()).prop_map(Value::String),
                1 => any::<u128>().prop_map(|n| json!(uuid::Uuid::from_u128(n).to_string())),
            ]
            .boxed(),
            Some("date-time") => prop_oneof![
                // Mostly inside the seven days kept, sometimes outside, sometimes ahead.
                6 => (-7 * 86_400 + 3600..-60i64).prop_map(|s| json!(rfc3339(Duration::seconds(s)))),
                1 => (-30 * 86_400..30 * 86_400i64)
                    .prop_map(|s| json!(rfc3339(Duration::seconds(s)))),
                1 => Just(json!("2024-13-45T25:61:00Z")),
            ]
            .boxed(),
            _ => prop_oneof![
                3 => "[A-Za-z0-9 _.-]{0,24}".prop_map(|s| json!(s)),
                1 => Just(json!("https://127.0.0.1:9/siem")),
                1 => Just(json!("http://203.0.113.9/siem")),
                1 => Just(json!("Bearer abc\r\nX-Injected: 1")),
                1 => "\\PC{0,12}".prop_map(|s| json!(s)),
            ]
            .boxed(),
        },
        "array" => {
            let items = self.value(&schema["items"], depth + 1);
            prop::collection::vec(items, 0..3)
                .prop_map(Value::Array)
                .boxed()
        }
        "object" => {
            let required: Vec<&str> = schema["required"]
                .as_array()
                .map(|r| r.iter().filter_map(Value::as_str).collect())
                .unwrap_or_default();
            let properties: Vec<BoxedStrategy<Option<(String, Value)>>> = schema["properties"]
                .as_object()
                .map(|p| p.iter().collect::<Vec<_>>())
                .unwrap_or_default()
                .into_iter()
                .filter(|(_, s)| s["readOnly"] != true)
                .map(|(name, s)| {
                    let is_required = required.contains(&name.as_str());
                    let name = name.clone();
                    let present = self.value(s, depth + 1).prop_map(move |v| (name.clone(), v));
                    if is_required {
                        present.prop_map(Some).boxed()
                    } else {
                        prop::option::of(present).boxed()
                    }
                })
                .collect();
            let fields = properties
                .prop_map(|fields| Value::Object(fields.into_iter().flatten().collect()));
            // A replay window's ends are drawn independently; mostly put them in order, so
            // that the rules behind the window's shape are reached too.
            (fields, 0..4u8)
                .prop_map(|(mut object, coin)| {
                    if coin > 0
                        && let (Some(Value::String(start)), Some(Value::String(end))) =
                            (object.get("start_at"), object.get("end_at"))
                        && start > end
                    {
                        let (start, end) = (start.clone(), end.clone());
                        object["start_at"] = json!(end);
                        object["end_at"] = json!(start);
                    }
                    object
                })
                .boxed()
        }
        other => panic!("the generator does not know the type {other:?}"),
    }
    }
}

fn rfc3339(offset: Duration) -> String {
    (OffsetDateTime::now_utc() + offset)
        .format(&Rfc3339)
        .unwrap()
}

//! OCSF lines checked against the OCSF 1.8.0 schema sources, not by eye.
//!
//! The schema is read from `<workspace>/../shared/reference/ocsf-1.8.0/` (OCSF's own files, which
//! we do not copy into the repository) in its metaschema form: a class `extends` its parent down to
//! `base_event`, `$include` pulls in profiles, an attribute's type comes from `dictionary.json`
//! (a scalar type or an object of `objects/`, which extend too), and `enum` lists the valid ids.
//! Every rendered sample must have each required attribute of its class and of every object in it
//! (attributes of a profile only when the line states that profile), no attribute the schema does
//! not define there (besides our `sig`), every value of its type, every enum id defined and its
//! caption beside it, each object's `at_least_one`/`just_one` constraint met, and class, category
//! and type ids that agree. Absent files: skipped with a reason, a failure under `CI=true`.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use auditrelay_core::format::{Format, sign_checkpoint, sign_event_with_id};
use auditrelay_core::integrity::LogPlace;
use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, FormatConfig, Timestamp,
};
use serde_json::{Map, Value};
use uuid::Uuid;

use crate::support::{
    access, authorization, checkpoint_event, key, org_authentication, portal_authentication,
};

fn schema_dir() -> Option<PathBuf> {
    let dir =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../../shared/reference/ocsf-1.8.0");
    if dir.join("dictionary.json").is_file() {
        return Some(dir);
    }
    let reason = format!(
        "the OCSF 1.8.0 schema is not at {}: the OCSF schema check is skipped",
        dir.display()
    );
    assert!(std::env::var("CI").as_deref() != Ok("true"), "{reason}");
    eprintln!("skipped: {reason}");
    None
}

fn read(path: &Path) -> Value {
    let text = std::fs::read(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_slice(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// One attribute as a class or object defines it, merged over its parents' definitions.
#[derive(Debug, Clone, Default)]
struct Attribute {
    requirement: Option<String>,
    /// The profile that brought it in; `None` when it belongs to the class or object itself.
    profile: Option<String>,
    /// Enum ids defined here, on top of the dictionary's.
    enum_ids: BTreeMap<String, String>,
}

/// A class or object with everything it inherits.
#[derive(Debug, Default)]
struct Shape {
    attributes: BTreeMap<String, Attribute>,
    at_least_one: Vec<String>,
    just_one: Vec<String>,
}

struct Schema {
    dir: PathBuf,
    dictionary: Map<String, Value>,
    types: Map<String, Value>,
    categories: Map<String, Value>,
}

impl Schema {
    fn load(dir: PathBuf) -> Self {
        let dictionary = read(&dir.join("dictionary.json"));
        let categories = read(&dir.join("categories.json"));
        Self {
            dictionary: dictionary["attributes"].as_object().unwrap().clone(),
            types: dictionary["types"]["attributes"]
                .as_object()
                .unwrap()
                .clone(),
            categories: categories["attributes"].as_object().unwrap().clone(),
            dir,
        }
    }

    /// The class file named `name` anywhere under `events/`.
    fn class_file(&self, name: &str) -> PathBuf {
        fn find(dir: &Path, file: &str) -> Option<PathBuf> {
            for entry in std::fs::read_dir(dir).ok()? {
                let path = entry.ok()?.path();
                if path.is_dir() {
                    if let Some(found) = find(&path, file) {
                        return Some(found);
                    }
                } else if path.file_name().is_some_and(|f| f == file) {
                    return Some(path);
                }
            }
            None
        }
        find(&self.dir.join("events"), &format!("{name}.json"))
            .unwrap_or_else(|| panic!("no class `{name}` in the schema"))
    }

    /// A class's or object's definition, `extends` resolved: the ancestor's attributes first,
    /// each descendant's merged over them.
    fn shape(&self, file: &Path, parent: &dyn Fn(&str) -> Option<PathBuf>) -> (Shape, Value) {
        let own = read(file);
        let mut shape = match own["extends"].as_str().and_then(parent) {
            Some(parent_file) => self.shape(&parent_file, parent).0,
            None => Shape::default(),
        };
        let attributes = own["attributes"].as_object().cloned().unwrap_or_default();
        if let Some(includes) = attributes.get("$include").and_then(Value::as_array) {
            for include in includes {
                let include = include.as_str().unwrap();
                let included = read(&self.dir.join(include));
                let profile = include
                    .starts_with("profiles/")
                    .then(|| included["name"].as_str().unwrap().to_owned());
                for (name, definition) in included["attributes"].as_object().unwrap() {
                    merge(&mut shape, name, definition, profile.clone());
                }
            }
        }
        for (name, definition) in &attributes {
            if name != "$include" {
                merge(&mut shape, name, definition, None);
            }
        }
        let constraint = |kind: &str| -> Vec<String> {
            own["constraints"][kind]
                .as_array()
                .map(|names| {
                    names
                        .iter()
                        .map(|n| n.as_str().unwrap().to_owned())
                        .collect()
                })
                .unwrap_or_default()
        };
        if own.get("constraints").is_some() {
            shape.at_least_one = constraint("at_least_one");
            shape.just_one = constraint("just_one");
        }
        (shape, own)
    }

    fn class(&self, name: &str) -> (Shape, Value) {
        self.shape(&self.class_file(name), &|parent| {
            Some(self.class_file(parent))
        })
    }

    fn object(&self, name: &str) -> Shape {
        let file = self.dir.join("objects").join(format!("{name}.json"));
        self.shape(&file, &|parent| {
            let file = self.dir.join("objects").join(format!("{parent}.json"));
            file.is_file().then_some(file)
        })
        .0
    }

    fn is_object_type(&self, type_name: &str) -> bool {
        self.dir
            .join("objects")
            .join(format!("{type_name}.json"))
            .is_file()
    }

    /// The scalar type a dictionary type stands for (`timestamp_t` → `long_t`, …).
    fn base_type<'t>(&'t self, mut type_name: &'t str) -> &'t str {
        while let Some(parent) = self.types.get(type_name).and_then(|t| t["type"].as_str()) {
            type_name = parent;
        }
        type_name
    }
}

/// Merges one definition over what the shape has for `name`. A definition that says
/// `"profile": null` takes the attribute out of its profile (API Activity does so for `actor`
/// and `api`, which the cloud profile also brings).
fn merge(shape: &mut Shape, name: &str, definition: &Value, profile: Option<String>) {
    let attribute = shape.attributes.entry(name.to_owned()).or_default();
    if let Some(requirement) = definition["requirement"].as_str() {
        attribute.requirement = Some(requirement.to_owned());
    }
    match definition.get("profile") {
        Some(Value::Null) => attribute.profile = None,
        Some(Value::String(p)) => attribute.profile = Some(p.clone()),
        _ if profile.is_some() => attribute.profile = profile,
        _ => {}
    }
    if let Some(ids) = definition["enum"].as_object() {
        for (id, value) in ids {
            let caption = value["caption"].as_str().unwrap_or_default().to_owned();
            attribute.enum_ids.insert(id.clone(), caption);
        }
    }
}

/// What the checks found wrong, one line each, with the path to the value.
struct Findings(Vec<String>);

impl Findings {
    fn add(&mut self, at: &str, what: impl std::fmt::Display) {
        self.0.push(format!("{at}: {what}"));
    }
}

fn check_members(
    schema: &Schema,
    shape: &Shape,
    object: &Map<String, Value>,
    at: &str,
    profiles: &BTreeSet<String>,
    findings: &mut Findings,
) {
    for (name, attribute) in &shape.attributes {
        let applies = attribute
            .profile
            .as_ref()
            .is_none_or(|p| profiles.contains(p));
        if applies
            && attribute.requirement.as_deref() == Some("required")
            && !object.contains_key(name)
        {
            findings.add(at, format!("the required attribute `{name}` is missing"));
        }
    }
    for (name, value) in object {
        let path = format!("{at}.{name}");
        let Some(attribute) = shape.attributes.get(name) else {
            findings.add(&path, "is not an attribute of this class or object");
            continue;
        };
        if let Some(profile) = &attribute.profile
            && !profiles.contains(profile)
        {
            findings.add(
                &path,
                format!(
                    "belongs to the profile `{profile}`, which metadata.profiles does not state"
                ),
            );
        }
        check_value(
            schema, name, attribute, value, object, &path, profiles, findings,
        );
    }
    let present = |names: &[String]| names.iter().filter(|n| object.contains_key(*n)).count();
    if !shape.at_least_one.is_empty() && present(&shape.at_least_one) == 0 {
        findings.add(
            at,
            format!("needs at least one of {:?}", shape.at_least_one),
        );
    }
    if !shape.just_one.is_empty() && present(&shape.just_one) != 1 {
        findings.add(at, format!("needs exactly one of {:?}", shape.just_one));
    }
}

#[expect(
    clippy::too_many_arguments,
    reason = "the walk's state, passed down as it is"
)]
fn check_value(
    schema: &Schema,
    name: &str,
    attribute: &Attribute,
    value: &Value,
    siblings: &Map<String, Value>,
    at: &str,
    profiles: &BTreeSet<String>,
    findings: &mut Findings,
) {
    let Some(definition) = schema.dictionary.get(name) else {
        findings.add(at, "is not in the dictionary");
        return;
    };
    let type_name = definition["type"].as_str().unwrap();
    if definition["is_array"].as_bool() == Some(true) {
        match value.as_array() {
            Some(items) => {
                for (i, item) in items.iter().enumerate() {
                    check_one(
                        schema,
                        type_name,
                        item,
                        &format!("{at}[{i}]"),
                        profiles,
                        findings,
                    );
                }
            }
            None => findings.add(at, format!("must be an array of {type_name}")),
        }
    } else {
        check_one(schema, type_name, value, at, profiles, findings);
    }
    let mut ids: BTreeMap<String, String> = definition["enum"]
        .as_object()
        .map(|ids| {
            ids.iter()
                .map(|(id, v)| {
                    (
                        id.clone(),
                        v["caption"].as_str().unwrap_or_default().to_owned(),
                    )
                })
                .collect()
        })
        .unwrap_or_default();
    ids.extend(attribute.enum_ids.clone());
    // The class and category ids are the schema compiler's to fill in (the base event's enum
    // holds only 0); `check_line` checks them against the class and its category.
    if !ids.is_empty() && !matches!(name, "class_uid" | "category_uid") {
        // Most enums are integer ids; a few (`http_method`) list the strings themselves.
        let id = match value {
            Value::String(s) => s.clone(),
            other => other.as_i64().map(|i| i.to_string()).unwrap_or_default(),
        };
        match ids.get(&id) {
            None => findings.add(
                at,
                format!("{value} is not one of the ids {:?}", ids.keys()),
            ),
            // The caption goes beside the id; for 99 (Other) it names the source's own value.
            Some(caption) => {
                if let Some(sibling) = definition["sibling"].as_str() {
                    match siblings.get(sibling).and_then(Value::as_str) {
                        None => findings.add(at, format!("has no `{sibling}` beside it")),
                        Some(text) if id != "99" && text != caption => findings.add(
                            at,
                            format!("`{sibling}` is {text:?}, the caption of {id} is {caption:?}"),
                        ),
                        Some(_) => {}
                    }
                }
            }
        }
    }
}

fn check_one(
    schema: &Schema,
    type_name: &str,
    value: &Value,
    at: &str,
    profiles: &BTreeSet<String>,
    findings: &mut Findings,
) {
    if type_name == "object" {
        if !value.is_object() {
            findings.add(at, "must be an object");
        }
        return;
    }
    if schema.is_object_type(type_name) {
        match value.as_object() {
            Some(object) => {
                let shape = schema.object(type_name);
                check_members(schema, &shape, object, at, profiles, findings);
            }
            None => findings.add(at, format!("must be a `{type_name}` object")),
        }
        return;
    }
    let ok = match schema.base_type(type_name) {
        "string_t" => value.is_string(),
        "integer_t" | "long_t" => value.is_i64(),
        "float_t" => value.is_number(),
        "boolean_t" => value.is_boolean(),
        "json_t" => true,
        other => panic!("{at}: no check for the type `{other}`"),
    } && match type_name {
        "ip_t" => value.as_str().is_some_and(|s| s.parse::<IpAddr>().is_ok()),
        "uuid_t" => value.as_str().is_some_and(|s| Uuid::parse_str(s).is_ok()),
        "port_t" => value.as_i64().is_some_and(|p| (0..=65535).contains(&p)),
        _ => true,
    };
    if !ok {
        findings.add(at, format!("{value} is not a valid {type_name}"));
    }
}

/// Every finding for one rendered line.
fn check_line(schema: &Schema, line: &[u8]) -> Vec<String> {
    let mut findings = Findings(Vec::new());
    let mut object: Map<String, Value> = serde_json::from_slice(line).unwrap();
    // Our signature (DECISIONS.md D6): the one member that is not OCSF's.
    assert!(
        object.remove("sig").is_some_and(|s| s.is_string()),
        "the line carries `sig`"
    );
    let class_uid = object["class_uid"].as_i64().unwrap();
    let name = match class_uid {
        3002 => "authentication",
        6003 => "api_activity",
        // The tamper-evident log's checkpoint events (DECISIONS.md S27).
        0 => "base_event",
        other => panic!("a class we do not render: {other}"),
    };
    let (shape, class) = schema.class(name);
    let category = class["category"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| {
            // The class names its category through the parent it extends.
            let parent = read(&schema.class_file(class["extends"].as_str().unwrap()));
            parent["category"].as_str().unwrap().to_owned()
        });
    // The Base Event stands outside every category ("other", Uncategorized [0]) and has no
    // uid of its own: its class_uid is 0.
    let (category_uid, uid, category_caption) = if name == "base_event" {
        (0, 0, Some("Uncategorized"))
    } else {
        let category = &schema.categories[&category];
        let category_uid = category["uid"].as_i64().unwrap();
        let caption = category["caption"].as_str();
        (category_uid, class["uid"].as_i64().unwrap(), caption)
    };
    let expected_class = category_uid * 1000 + uid;
    if class_uid != expected_class {
        findings.add(
            "class_uid",
            format!("{class_uid}, the schema gives {expected_class}"),
        );
    }
    if object["category_uid"].as_i64() != Some(category_uid) {
        findings.add("category_uid", format!("is not {category_uid}"));
    }
    let captions = [
        ("class_name", class["caption"].as_str()),
        ("category_name", category_caption),
    ];
    for (key, caption) in captions {
        if object.get(key).and_then(Value::as_str) != caption {
            findings.add(key, format!("is not the schema's caption {caption:?}"));
        }
    }
    let activity = object["activity_id"].as_i64().unwrap_or(-1);
    if object["type_uid"].as_i64() != Some(class_uid * 100 + activity) {
        findings.add("type_uid", "is not class_uid × 100 + activity_id");
    }
    let profiles: BTreeSet<String> = object["metadata"]["profiles"]
        .as_array()
        .map(|p| {
            p.iter()
                .filter_map(|p| p.as_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default();
    let known: BTreeSet<&String> = shape
        .attributes
        .values()
        .filter_map(|a| a.profile.as_ref())
        .collect();
    for profile in &profiles {
        if !known.contains(profile) {
            findings.add(
                "metadata.profiles",
                format!("`{profile}` is not a profile of this class"),
            );
        }
    }
    check_members(schema, &shape, &object, "$", &profiles, &mut findings);
    findings.0
}

/// Events covering every branch of the mapping: each outcome and credential, organization and
/// Dev Portal logins with and without a principal, each kind of action and method, missing
/// and malformed optional fields.
fn samples() -> Vec<Event> {
    let mut events = vec![
        org_authentication(),
        portal_authentication(),
        authorization(),
        access(),
    ];
    for outcome in AuthenticationOutcome::ALL {
        for kind in AuthenticationType::ALL {
            let mut event = portal_authentication();
            event.detail = EventDetail::Authentication {
                outcome: *outcome,
                authentication_type: *kind,
            };
            events.push(event);
        }
    }
    for action in [
        "create", "list", "retrieve", "update", "delete", "approve", "",
    ] {
        for granted in [true, false] {
            let mut event = authorization();
            event.detail = EventDetail::Authorization {
                service: "konnect".into(),
                resource: "portals".into(),
                action: action.into(),
                granted,
                kong_initiated: None,
            };
            event.trace_id = Some("1".into());
            events.push(event);
        }
    }
    for (method, status_code) in [
        ("GET", 200),
        ("POST", 401),
        ("PATCH", 403),
        ("DELETE", 500),
        ("TRACE", 302),
    ] {
        let mut event = access();
        if let EventDetail::Access {
            method: m,
            status_code: s,
            ..
        } = &mut event.detail
        {
            *m = method.into();
            *s = status_code;
        }
        events.push(event);
    }
    for method in ["get", "PROPFIND"] {
        let mut event = access();
        if let EventDetail::Access { method: m, .. } = &mut event.detail {
            *m = method.into();
        }
        events.push(event);
    }
    let mut impersonated_login = org_authentication();
    impersonated_login.actor_id = Some("user_abc".into());
    events.push(impersonated_login);
    let mut unknowns = authorization();
    unknowns.actor_id = Some("".into());
    unknowns.principal_id = Some("".into());
    unknowns.principal_name = None;
    events.push(unknowns);
    let mut bare = access();
    bare.client_ip = Some("".into());
    bare.uri = Some("".into());
    bare.user_agent = Some("".into());
    events.push(bare);
    let mut ipv6 = authorization();
    ipv6.client_ip = Some("2001:db8::1".into());
    events.push(ipv6);
    let mut no_ip = authorization();
    no_ip.client_ip = None;
    events.push(no_ip);
    events
}

#[test]
fn every_rendered_sample_conforms_to_ocsf_1_8_0() {
    let Some(dir) = schema_dir() else { return };
    let schema = Schema::load(dir);
    let cfg = FormatConfig::default();
    let mut failures = Vec::new();
    let mut lines = Vec::new();
    for (n, event) in samples().into_iter().enumerate() {
        let mut line = Vec::new();
        let ts = Timestamp::from_millis(1_750_688_927_556 + n as i64);
        let event = Event { ts, ..event };
        // Each event as Konnect's destinations get it, and with its place in the
        // tamper-evident log (`integrity`).
        let place = LogPlace {
            log: "auditrelay/00/org/us".into(),
            index: n as u64,
            leaf_hash: [n as u8; 32],
        };
        for place in [None, Some(&place)] {
            line.clear();
            sign_event_with_id(
                Format::Ocsf,
                &event,
                Some(Uuid::from_u128(n as u128)),
                place,
                &cfg,
                &key(),
                &mut line,
            );
            lines.push(line.clone());
        }
    }
    let mut checkpoint = Vec::new();
    sign_checkpoint(
        Format::Ocsf,
        &checkpoint_event(),
        &cfg,
        &key(),
        &mut checkpoint,
    );
    lines.push(checkpoint);
    for line in lines {
        let findings = check_line(&schema, &line);
        if !findings.is_empty() {
            failures.push(format!(
                "{}\n  {}",
                String::from_utf8_lossy(&line),
                findings.join("\n  ")
            ));
        }
    }
    assert!(
        failures.is_empty(),
        "lines that do not conform:\n{}",
        failures.join("\n")
    );
}

/// The checker itself finds what it is there to find: a missing required attribute, an
/// attribute of no class, a wrong type, an undefined enum id, a caption that does not match,
/// an unmet object constraint, a profile attribute without its profile, and ids that disagree.
#[test]
fn the_schema_check_finds_each_kind_of_fault() {
    let Some(dir) = schema_dir() else { return };
    let schema = Schema::load(dir);
    let mut line = Vec::new();
    sign_event_with_id(
        Format::Ocsf,
        &access(),
        Some(Uuid::nil()),
        None,
        &FormatConfig::default(),
        &key(),
        &mut line,
    );
    let good: Map<String, Value> = serde_json::from_slice(&line).unwrap();
    assert_eq!(check_line(&schema, &line), Vec::<String>::new());
    let damaged = |change: &dyn Fn(&mut Map<String, Value>)| {
        let mut object = good.clone();
        change(&mut object);
        check_line(&schema, &serde_json::to_vec(&object).unwrap())
    };
    let expect = |findings: Vec<String>, what: &str| {
        assert!(
            findings.iter().any(|f| f.contains(what)),
            "expected a finding containing {what:?}, got {findings:?}"
        );
    };
    expect(
        damaged(&|o| drop(o.remove("src_endpoint"))),
        "`src_endpoint` is missing",
    );
    expect(
        damaged(&|o| drop(o["metadata"].as_object_mut().unwrap().remove("version"))),
        "`version` is missing",
    );
    expect(
        damaged(&|o| drop(o.insert("colour".into(), "red".into()))),
        "$.colour: is not an attribute",
    );
    expect(
        damaged(&|o| drop(o.insert("time".into(), "yesterday".into()))),
        "not a valid timestamp_t",
    );
    expect(
        damaged(&|o| drop(o.insert("severity_id".into(), 7.into()))),
        "is not one of the ids",
    );
    expect(
        damaged(&|o| drop(o.insert("severity".into(), "Low".into()))),
        "`severity` is \"Low\", the caption of 5",
    );
    expect(
        damaged(&|o| drop(o.insert("src_endpoint".into(), serde_json::json!({"port": 1})))),
        "needs at least one of",
    );
    expect(
        damaged(&|o| drop(o.insert("src_endpoint".into(), serde_json::json!({"ip": "1.2.3"})))),
        "not a valid ip_t",
    );
    expect(
        damaged(&|o| drop(o["metadata"].as_object_mut().unwrap().remove("profiles"))),
        "belongs to the profile `trace`",
    );
    expect(
        damaged(&|o| drop(o.insert("type_uid".into(), 600399.into()))),
        "type_uid",
    );
    expect(
        damaged(&|o| drop(o.insert("category_uid".into(), 3.into()))),
        "category_uid: is not 6",
    );
    expect(
        damaged(&|o| {
            drop(
                o["metadata"]
                    .as_object_mut()
                    .unwrap()
                    .insert("profiles".into(), serde_json::json!(["trace", "container"])),
            )
        }),
        "`container` is not a profile",
    );
}

//! A destination's kind and the settings of its own, as the API takes them and the store keeps
//! them: a name (`kind`) and an object (`settings`) whose fields depend on the name. Secrets
//! are not settings: each kind's one credential is the destination's write-only
//! `authorization` (DECISIONS.md D12).
//!
//! Text settings may hold placeholders, filled in per batch from what the batch is sent for
//! ([`super::Stream`]): `{org_id}`, `{region}`, `{portal_id}` (empty for an organization's
//! events). An unknown placeholder is refused when the destination is saved.

use std::collections::BTreeMap;

use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

/// The kinds by name, as the API and the store spell them.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum KindName {
    Webhook,
    SplunkHec,
    Datadog,
    Elasticsearch,
    SumoLogic,
    Loki,
    Syslog,
}

impl KindName {
    pub const ALL: [Self; 7] = [
        Self::Webhook,
        Self::SplunkHec,
        Self::Datadog,
        Self::Elasticsearch,
        Self::SumoLogic,
        Self::Loki,
        Self::Syslog,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::Webhook => "webhook",
            Self::SplunkHec => "splunk_hec",
            Self::Datadog => "datadog",
            Self::Elasticsearch => "elasticsearch",
            Self::SumoLogic => "sumo_logic",
            Self::Loki => "loki",
            Self::Syslog => "syslog",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|k| k.as_str() == s)
    }

    /// What the destination's `authorization` is to this kind, for messages and help text;
    /// `None` when the kind takes none.
    pub fn credential(self) -> Option<&'static str> {
        match self {
            Self::Webhook => Some("the Authorization header's value"),
            Self::SplunkHec => Some("the HEC token (sent as `Splunk <token>`)"),
            Self::Datadog => Some("the Datadog API key (sent as DD-API-KEY)"),
            Self::Elasticsearch => {
                Some("the Authorization header's value (`ApiKey …`, `Basic …` or `Bearer …`)")
            }
            // The token is the last part of the source's URL.
            Self::SumoLogic => None,
            Self::Loki => Some("the Authorization header's value, if a proxy asks for one"),
            Self::Syslog => Some(
                "the private key (PEM) of settings.client_certificate, for a receiver that asks for one",
            ),
        }
    }

    /// The endpoint's URL scheme: `tls://host:port` for syslog over TLS (RFC 5425; the port
    /// defaults to 6514), `https` for every HTTP kind.
    pub fn scheme(self) -> &'static str {
        match self {
            Self::Syslog => "tls",
            _ => "https",
        }
    }

    /// Why an endpoint with this URL `path` cannot be this kind's receiver, if it cannot.
    pub fn endpoint_problem(self, path: &str) -> Option<&'static str> {
        let path = path.trim_end_matches('/');
        let fits = match self {
            Self::Webhook => true,
            Self::SplunkHec => [
                "/services/collector",
                "/services/collector/event",
                "/services/collector/raw",
            ]
            .iter()
            .any(|end| path.ends_with(end)),
            Self::Datadog => path.ends_with("/api/v2/logs"),
            Self::Elasticsearch => path.ends_with("/_bulk"),
            Self::SumoLogic => path
                .split_once("/receiver/v1/http/")
                .is_some_and(|(_, token)| !token.is_empty()),
            Self::Loki => path.ends_with("/loki/api/v1/push"),
            Self::Syslog => path.is_empty(),
        };
        (!fits).then(|| match self {
            Self::Webhook => unreachable!("any path is a webhook's"),
            Self::SplunkHec => {
                "must be Splunk's HEC endpoint: …/services/collector/event or …/services/collector/raw"
            }
            Self::Datadog => "must be Datadog's log intake: https://http-intake.logs.<site>/api/v2/logs",
            Self::Elasticsearch => "must be a _bulk endpoint: https://<host>/<index or data stream>/_bulk",
            Self::SumoLogic => "must be the HTTP source's URL: …/receiver/v1/http/<token>",
            Self::Loki => "must be Loki's push endpoint: …/loki/api/v1/push",
            Self::Syslog => "must be tls://<host>[:<port>] without a path (port 6514 by default)",
        })
    }

    /// `endpoint` as it may be shown (API answers, the delivery log, the refused list): a Sumo
    /// Logic source's URL is its credential, so the token at its end is masked.
    pub fn shown_endpoint(self, endpoint: &str) -> String {
        const SOURCE: &str = "/receiver/v1/http/";
        match (self, endpoint.find(SOURCE)) {
            (Self::SumoLogic, Some(at)) => {
                format!("{}{SOURCE}{MASKED_TOKEN}", &endpoint[..at])
            }
            _ => endpoint.to_owned(),
        }
    }

    /// Whether a destination of this kind must have an `authorization`.
    pub fn requires_credential(self) -> bool {
        matches!(
            self,
            Self::Webhook | Self::SplunkHec | Self::Datadog | Self::Elasticsearch
        )
    }
}

/// A destination's kind, with its settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    /// Konnect's request shape, byte for byte.
    Webhook,
    SplunkHec(SplunkHec),
    Datadog(Datadog),
    /// Elasticsearch or OpenSearch `_bulk`; the index or data stream is in the endpoint's path.
    Elasticsearch,
    SumoLogic(SumoLogic),
    Loki(Loki),
    Syslog(Syslog),
}

/// Syslog over TLS (RFC 5425): each record an RFC 5424 message whose MSG is the signed line.
/// Syslog has no acknowledgement of its own (DECISIONS.md S18).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Syslog {
    /// How messages are delimited on the stream.
    pub framing: SyslogFraming,
    /// The messages' HOSTNAME; default `-`, the nil value.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
    /// The certificate (PEM, with its chain) shown to a receiver that asks for one; its
    /// private key is the destination's `authorization`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub client_certificate: Option<String>,
    /// The longest message the receiver takes (default 8192, rsyslog's own): a longer one is
    /// refused here rather than truncated there.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub max_message_bytes: Option<u32>,
}

/// How syslog messages are delimited.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum SyslogFraming {
    /// `MSG-LEN SP SYSLOG-MSG`, as RFC 5425 requires.
    #[default]
    OctetCounting,
    /// Each message ends with a line feed, for receivers that only split on newlines (our
    /// lines never hold one).
    Lf,
}

/// RFC 5425: a receiver must take messages of 2,048 bytes and should take 8,192.
pub const SYSLOG_DEFAULT_MAX_MESSAGE: u32 = 8192;
const SYSLOG_MIN_MAX_MESSAGE: u32 = 2048;
const SYSLOG_MAX_MAX_MESSAGE: u32 = 1 << 20;
/// The longest client certificate chain taken, in PEM.
pub const MAX_CERTIFICATE_PEM: usize = 16 * 1024;

impl Syslog {
    pub fn max_message_bytes(&self) -> usize {
        self.max_message_bytes.unwrap_or(SYSLOG_DEFAULT_MAX_MESSAGE) as usize
    }
}

/// Splunk's HTTP Event Collector. The endpoint's path picks the shape: `…/collector/raw` gets
/// the lines as they are, `…/collector` or `…/collector/event` gets JSON envelopes.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SplunkHec {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub index: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub source: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub sourcetype: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// Wait for indexer acknowledgement before a batch counts as delivered.
    pub ack: bool,
    /// How long to wait for an acknowledgement before sending the batch again (default 60).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ack_timeout_seconds: Option<u32>,
}

/// Datadog's log intake.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Datadog {
    /// Default `auditrelay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddsource: Option<String>,
    /// Default `auditrelay`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub service: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub ddtags: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub hostname: Option<String>,
}

/// A Sumo Logic HTTP source; each setting becomes its `X-Sumo-…` header.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SumoLogic {
    #[serde(skip_serializing_if = "Option::is_none")]
    pub category: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// `key=value,key=value`.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fields: Option<String>,
}

/// Grafana Loki's push API.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Loki {
    /// Labels added to (or replacing) the defaults: `source="auditrelay"`, `org_id`,
    /// `region`, and `portal_id` for a portal's events.
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
}

/// What stands for a Sumo Logic token in a shown endpoint. Given back as the endpoint of an
/// update, it means "the same endpoint".
pub const MASKED_TOKEN: &str = "<token>";

/// The labels every Loki stream of ours has (`portal_id` for a portal's events only).
pub const LOKI_OWN_LABELS: [&str; 4] = ["source", "org_id", "region", "portal_id"];

/// The label that puts a replay job's entries in a stream of their own: Loki refuses entries
/// far behind a stream's newest, which a replay's always are.
pub const LOKI_REPLAY_LABEL: &str = "auditrelay_replay";

/// Why one setting is refused: the field (`settings.index`) and the reason.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SettingError {
    pub field: String,
    pub reason: String,
}

impl SettingError {
    fn new(field: impl Into<String>, reason: impl Into<String>) -> Self {
        Self {
            field: field.into(),
            reason: reason.into(),
        }
    }
}

/// The longest text setting, placeholders unexpanded.
pub const MAX_SETTING: usize = 512;
/// Loki's default `max_label_names_per_series`.
const MAX_LOKI_LABELS: usize = 15;
/// The longest acknowledgement wait a destination may ask for.
const MAX_ACK_TIMEOUT_SECONDS: u32 = 600;
/// The placeholders a text setting may use.
pub const PLACEHOLDERS: [&str; 3] = ["{org_id}", "{region}", "{portal_id}"];

impl Kind {
    pub fn name(&self) -> KindName {
        match self {
            Self::Webhook => KindName::Webhook,
            Self::SplunkHec(_) => KindName::SplunkHec,
            Self::Datadog(_) => KindName::Datadog,
            Self::Elasticsearch => KindName::Elasticsearch,
            Self::SumoLogic(_) => KindName::SumoLogic,
            Self::Loki(_) => KindName::Loki,
            Self::Syslog(_) => KindName::Syslog,
        }
    }

    /// The kind `name` with `settings` (absent or `null`: the defaults), checked; every
    /// problem is reported, each under `settings.<field>`.
    pub fn from_parts(
        name: KindName,
        settings: Option<&serde_json::Value>,
    ) -> Result<Self, Vec<SettingError>> {
        let settings = settings.filter(|v| !v.is_null());
        let kind = match name {
            KindName::Webhook | KindName::Elasticsearch => {
                if settings.is_some_and(|v| v.as_object().is_none_or(|o| !o.is_empty())) {
                    let reason = format!("the {} kind has no settings", name.as_str());
                    return Err(vec![SettingError::new("settings", reason)]);
                }
                if name == KindName::Webhook {
                    Self::Webhook
                } else {
                    Self::Elasticsearch
                }
            }
            KindName::SplunkHec => Self::SplunkHec(parse(settings)?),
            KindName::Datadog => Self::Datadog(parse(settings)?),
            KindName::SumoLogic => Self::SumoLogic(parse(settings)?),
            KindName::Loki => Self::Loki(parse(settings)?),
            KindName::Syslog => Self::Syslog(parse(settings)?),
        };
        let problems = kind.problems();
        if problems.is_empty() {
            Ok(kind)
        } else {
            Err(problems)
        }
    }

    /// The settings as the store keeps them and the API shows them; `None` for a kind
    /// without settings.
    pub fn settings(&self) -> Option<serde_json::Value> {
        let value = match self {
            Self::Webhook | Self::Elasticsearch => return None,
            Self::SplunkHec(s) => serde_json::to_value(s),
            Self::Datadog(s) => serde_json::to_value(s),
            Self::SumoLogic(s) => serde_json::to_value(s),
            Self::Loki(s) => serde_json::to_value(s),
            Self::Syslog(s) => serde_json::to_value(s),
        };
        Some(value.expect("settings always serialize"))
    }

    /// Every text setting with its field name.
    fn texts(&self) -> Vec<(String, &str)> {
        match self {
            Self::Webhook | Self::Elasticsearch => Vec::new(),
            Self::SplunkHec(s) => named_texts(&[
                ("index", &s.index),
                ("source", &s.source),
                ("sourcetype", &s.sourcetype),
                ("host", &s.host),
            ]),
            Self::Datadog(s) => named_texts(&[
                ("ddsource", &s.ddsource),
                ("service", &s.service),
                ("ddtags", &s.ddtags),
                ("hostname", &s.hostname),
            ]),
            Self::SumoLogic(s) => named_texts(&[
                ("category", &s.category),
                ("name", &s.name),
                ("host", &s.host),
                ("fields", &s.fields),
            ]),
            Self::Loki(s) => s
                .labels
                .iter()
                .map(|(name, value)| (format!("settings.labels.{name}"), value.as_str()))
                .collect(),
            // The certificate is PEM, several lines: checked on its own.
            Self::Syslog(s) => named_texts(&[("hostname", &s.hostname)]),
        }
    }

    fn problems(&self) -> Vec<SettingError> {
        let mut problems: Vec<SettingError> = self
            .texts()
            .into_iter()
            .filter_map(|(field, value)| text_problem(value).map(|r| SettingError::new(field, r)))
            .collect();
        match self {
            Self::SplunkHec(s) => {
                if let Some(t) = s.ack_timeout_seconds
                    && !(1..=MAX_ACK_TIMEOUT_SECONDS).contains(&t)
                {
                    problems.push(SettingError::new(
                        "settings.ack_timeout_seconds",
                        format!("must be from 1 to {MAX_ACK_TIMEOUT_SECONDS}"),
                    ));
                }
            }
            Self::SumoLogic(SumoLogic {
                fields: Some(fields),
                ..
            }) => {
                let pair = |p: &str| p.split_once('=').is_some_and(|(k, _)| !k.trim().is_empty());
                if !fields.split(',').all(pair) {
                    problems.push(SettingError::new(
                        "settings.fields",
                        "must be key=value pairs separated by commas",
                    ));
                }
            }
            Self::Loki(s) => {
                // Ours: source, org_id, region, portal_id, and a replay's own label. A label
                // of the settings that replaces one of ours adds none.
                let added = s
                    .labels
                    .keys()
                    .filter(|name| !LOKI_OWN_LABELS.contains(&name.as_str()))
                    .count();
                let room = MAX_LOKI_LABELS - LOKI_OWN_LABELS.len() - 1;
                if added > room {
                    problems.push(SettingError::new(
                        "settings.labels",
                        format!(
                            "must add at most {room} labels to source, org_id, region and portal_id (Loki allows {MAX_LOKI_LABELS} per stream, and a replay adds one)"
                        ),
                    ));
                }
                for name in s.labels.keys() {
                    if let Some(reason) = label_problem(name) {
                        problems.push(SettingError::new(format!("settings.labels.{name}"), reason));
                    }
                }
            }
            Self::Syslog(s) => {
                // RFC 5424's HOSTNAME: 1 to 255 printable US-ASCII characters, no spaces.
                if let Some(host) = &s.hostname
                    && (host.len() > 255 || !host.bytes().all(|b| (33..=126).contains(&b)))
                {
                    problems.push(SettingError::new(
                        "settings.hostname",
                        "must be at most 255 printable ASCII characters without spaces (RFC 5424)",
                    ));
                }
                if let Some(pem) = &s.client_certificate
                    && (pem.len() > MAX_CERTIFICATE_PEM
                        || !pem.trim_start().starts_with("-----BEGIN CERTIFICATE-----"))
                {
                    problems.push(SettingError::new(
                        "settings.client_certificate",
                        format!(
                            "must be a PEM certificate (-----BEGIN CERTIFICATE-----), at most {MAX_CERTIFICATE_PEM} bytes"
                        ),
                    ));
                }
                if let Some(max) = s.max_message_bytes
                    && !(SYSLOG_MIN_MAX_MESSAGE..=SYSLOG_MAX_MAX_MESSAGE).contains(&max)
                {
                    problems.push(SettingError::new(
                        "settings.max_message_bytes",
                        format!(
                            "must be from {SYSLOG_MIN_MAX_MESSAGE} to {SYSLOG_MAX_MAX_MESSAGE}"
                        ),
                    ));
                }
            }
            _ => {}
        }
        problems
    }
}

/// The text settings that are set, each under its field name.
fn named_texts<'a>(fields: &[(&str, &'a Option<String>)]) -> Vec<(String, &'a str)> {
    fields
        .iter()
        .filter_map(|(name, value)| value.as_deref().map(|v| (format!("settings.{name}"), v)))
        .collect()
}

/// Settings of one kind from JSON: unknown fields and wrong types are refused.
fn parse<T: DeserializeOwned + Default>(
    settings: Option<&serde_json::Value>,
) -> Result<T, Vec<SettingError>> {
    let Some(value) = settings else {
        return Ok(T::default());
    };
    if !value.is_object() {
        return Err(vec![SettingError::new("settings", "must be an object")]);
    }
    T::deserialize(value).map_err(|e| {
        // serde names the offending field in its message; that message is the reason.
        let message = e.to_string();
        let field = message
            .split('`')
            .nth(1)
            .filter(|_| message.starts_with("unknown field"))
            .map_or_else(|| "settings".to_owned(), |f| format!("settings.{f}"));
        let reason = if message.starts_with("unknown field") {
            "is not a setting of this kind".to_owned()
        } else {
            message
        };
        vec![SettingError::new(field, reason)]
    })
}

/// What is wrong with a text setting, if anything.
fn text_problem(value: &str) -> Option<String> {
    if value.trim().is_empty() {
        return Some("cannot be blank".to_owned());
    }
    if value.chars().count() > MAX_SETTING {
        return Some(format!("must be at most {MAX_SETTING} characters"));
    }
    if value.chars().any(char::is_control) {
        return Some("must be one line of text without control characters".to_owned());
    }
    let mut rest = value;
    while let Some(open) = rest.find('{') {
        let after = &rest[open..];
        let Some(close) = after.find('}') else {
            return Some("has a `{` without its `}`".to_owned());
        };
        let placeholder = &after[..=close];
        if !PLACEHOLDERS.contains(&placeholder) {
            return Some(format!(
                "uses {placeholder}, which is not a placeholder (use {})",
                PLACEHOLDERS.join(", ")
            ));
        }
        rest = &after[close + 1..];
    }
    None
}

/// What is wrong with a Loki label name, if anything (Prometheus' rule, less what is ours).
fn label_problem(name: &str) -> Option<String> {
    let mut chars = name.chars();
    let valid = chars
        .next()
        .is_some_and(|c| c.is_ascii_alphabetic() || c == '_')
        && chars.all(|c| c.is_ascii_alphanumeric() || c == '_');
    if !valid {
        Some("is not a label name (a letter or _, then letters, digits or _)".to_owned())
    } else if name.starts_with("__") {
        Some("names a label reserved for Loki itself".to_owned())
    } else if name == LOKI_REPLAY_LABEL {
        Some("names the label replays are sent with".to_owned())
    } else {
        None
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    fn fields(errors: Vec<SettingError>) -> Vec<String> {
        errors.into_iter().map(|e| e.field).collect()
    }

    #[test]
    fn names_round_trip() {
        for name in KindName::ALL {
            assert_eq!(KindName::parse(name.as_str()), Some(name));
        }
        assert_eq!(KindName::parse("Webhook"), None);
    }

    #[test]
    fn endpoints_must_be_the_kinds_receiver() {
        let ok = [
            (KindName::SplunkHec, "/services/collector/event"),
            (KindName::SplunkHec, "/services/collector/raw/"),
            (KindName::Datadog, "/api/v2/logs"),
            (KindName::Elasticsearch, "/logs-kong-audit/_bulk"),
            (KindName::SumoLogic, "/receiver/v1/http/ZaVnC4dhaV3"),
            (KindName::Loki, "/loki/api/v1/push"),
            (KindName::Webhook, "/anything"),
        ];
        for (kind, path) in ok {
            assert_eq!(kind.endpoint_problem(path), None, "{path}");
        }
        let bad = [
            (KindName::SplunkHec, "/services/collector/ack"),
            (KindName::Datadog, "/v1/input"),
            (KindName::Elasticsearch, "/index/_doc"),
            (KindName::SumoLogic, "/receiver/v1/http/"),
            (KindName::Loki, "/api/prom/push"),
        ];
        for (kind, path) in bad {
            assert!(kind.endpoint_problem(path).is_some(), "{path}");
        }
    }

    #[test]
    fn a_sumo_token_is_never_shown() {
        let url = "https://endpoint4.collection.sumologic.com/receiver/v1/http/ZaVnC4dhaV3uTKlva";
        let shown = KindName::SumoLogic.shown_endpoint(url);
        assert_eq!(
            shown,
            "https://endpoint4.collection.sumologic.com/receiver/v1/http/<token>"
        );
        assert_eq!(KindName::Webhook.shown_endpoint(url), url);
    }

    #[test]
    fn absent_settings_are_the_defaults_and_store_as_nothing_set() {
        let kind = Kind::from_parts(KindName::Datadog, None).unwrap();
        assert_eq!(kind, Kind::Datadog(Datadog::default()));
        assert_eq!(kind.settings(), Some(json!({})));
        assert_eq!(
            Kind::from_parts(KindName::Webhook, None)
                .unwrap()
                .settings(),
            None
        );
    }

    #[test]
    fn settings_round_trip_through_what_the_store_keeps() {
        let given = json!({"index": "audit", "sourcetype": "kong:{region}", "ack": true});
        let kind = Kind::from_parts(KindName::SplunkHec, Some(&given)).unwrap();
        let kept = kind.settings().unwrap();
        assert_eq!(kept, given);
        assert_eq!(
            Kind::from_parts(KindName::SplunkHec, Some(&kept)).unwrap(),
            kind
        );
    }

    #[test]
    fn an_unknown_setting_is_named() {
        let err = Kind::from_parts(KindName::Datadog, Some(&json!({"api_key": "x"}))).unwrap_err();
        assert_eq!(fields(err), ["settings.api_key"]);
    }

    #[test]
    fn kinds_without_settings_refuse_some() {
        let err = Kind::from_parts(KindName::Webhook, Some(&json!({"index": "x"}))).unwrap_err();
        assert_eq!(fields(err), ["settings"]);
        assert!(Kind::from_parts(KindName::Elasticsearch, Some(&json!({}))).is_ok());
    }

    #[test]
    fn text_settings_are_checked_with_their_placeholders() {
        let err = Kind::from_parts(
            KindName::SumoLogic,
            Some(&json!({
                "category": "audit/{tenant}",
                "name": " ",
                "host": "a\nb",
                "fields": "env=prod,oops",
            })),
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "settings.category",
                "settings.name",
                "settings.host",
                "settings.fields"
            ]
        );
        assert!(
            Kind::from_parts(
                KindName::SumoLogic,
                Some(&json!({"category": "kong/{region}/{portal_id}", "fields": "org={org_id}"}))
            )
            .is_ok()
        );
    }

    #[test]
    fn loki_labels_follow_prometheus_names_and_leave_ours_alone() {
        let err = Kind::from_parts(
            KindName::Loki,
            Some(&json!({"labels": {"9lives": "x", "__name__": "x", "auditrelay_replay": "x", "env": "prod"}})),
        )
        .unwrap_err();
        assert_eq!(
            fields(err),
            [
                "settings.labels.9lives",
                "settings.labels.__name__",
                "settings.labels.auditrelay_replay"
            ]
        );
    }

    #[test]
    fn loki_labels_leave_room_for_ours_and_a_replays() {
        let labels = |n: usize| {
            let mut labels: serde_json::Map<String, serde_json::Value> =
                (0..n).map(|i| (format!("l{i}"), json!("v"))).collect();
            // Replacing one of ours adds no label.
            labels.insert("region".into(), json!("eu"));
            json!({ "labels": labels })
        };
        assert!(Kind::from_parts(KindName::Loki, Some(&labels(10))).is_ok());
        let err = Kind::from_parts(KindName::Loki, Some(&labels(11))).unwrap_err();
        assert_eq!(fields(err), ["settings.labels"]);
    }

    #[test]
    fn the_ack_timeout_is_bounded() {
        let err = Kind::from_parts(
            KindName::SplunkHec,
            Some(&json!({"ack": true, "ack_timeout_seconds": 0})),
        )
        .unwrap_err();
        assert_eq!(fields(err), ["settings.ack_timeout_seconds"]);
    }
}

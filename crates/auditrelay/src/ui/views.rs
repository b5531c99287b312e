//! The pages' templates (askama, in `templates/`) and the view structs they render: what a page
//! shows, already in words. Handlers build these from API answers; templates only lay them out.

use std::collections::BTreeMap;

use askama::Template;
use auditrelay_core::Role;
use axum::http::StatusCode;
use axum::response::Response;

use super::assets::{self, Hrefs};
use super::messages::{Alert, Badge};
use super::session::{Flash, SignedIn};
use super::{UiState, render};

/// Where a page belongs in the tabs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Section {
    Destinations,
    Org,
    Portals,
    /// A page outside the tabs (errors, the page of a role with nothing to see).
    None,
}

impl Section {
    /// Whether a role sees this tab: a portal admin sees only the Dev Portal tab, an event
    /// producer none.
    pub fn visible_to(self, role: Role) -> bool {
        match role {
            Role::OrgAdmin | Role::AuditLogsAdmin | Role::AuditLogsViewer => true,
            Role::PortalAdmin => matches!(self, Self::Portals | Self::None),
            Role::EventProducer => self == Self::None,
        }
    }
}

/// The first page of a role.
pub fn home_of(role: Role) -> &'static str {
    match role {
        Role::OrgAdmin | Role::AuditLogsAdmin | Role::AuditLogsViewer => "/ui/destinations",
        Role::PortalAdmin => "/ui/portals",
        // Refused at sign-in: it never has a session.
        Role::EventProducer => "/ui/sign-in",
    }
}

pub struct Tab {
    pub label: String,
    pub href: &'static str,
    pub current: bool,
}

pub struct WhoView {
    pub name: String,
    pub role: &'static str,
}

pub struct FlashView {
    pub class: &'static str,
    pub role: &'static str,
    pub text: String,
}

/// What every page has around its content: assets, who is signed in, the tabs, the CSRF token
/// for its forms and a message left by the last redirect.
pub struct Chrome {
    pub assets: &'static Hrefs,
    pub who: Option<WhoView>,
    pub csrf: String,
    pub tabs: Vec<Tab>,
    pub flash: Option<FlashView>,
}

impl Chrome {
    /// A page outside any session (sign-in, refusals).
    pub fn anonymous() -> Self {
        Self {
            assets: assets::hrefs(),
            who: None,
            csrf: String::new(),
            tabs: Vec::new(),
            flash: None,
        }
    }

    /// A signed-in page in `section`, without the session's pending message (a form shown
    /// again, an error: the message waits for the page it was meant for).
    pub fn new(ui: &UiState, user: &SignedIn, section: Section) -> Self {
        let role = user.who.role();
        let tabs = [
            (
                Section::Destinations,
                "Webhook Destination".to_owned(),
                "/ui/destinations",
            ),
            (
                Section::Org,
                ui.app.config.ui.product_name.clone(),
                "/ui/audit-logs",
            ),
            (Section::Portals, "Dev Portal".to_owned(), "/ui/portals"),
        ]
        .into_iter()
        .filter(|(s, _, _)| s.visible_to(role))
        .map(|(s, label, href)| Tab {
            label,
            href,
            current: s == section,
        })
        .collect();
        Self {
            assets: assets::hrefs(),
            who: Some(WhoView {
                name: user.who.name.clone(),
                role: role.as_str(),
            }),
            csrf: user.csrf.clone(),
            tabs,
            flash: None,
        }
    }

    /// A signed-in page in `section` that shows the session's pending message (the page a
    /// redirect after a change leads to), taking it.
    pub async fn showing_flash(ui: &UiState, user: &SignedIn, section: Section) -> Self {
        let flash = user.take_flash().await.map(|Flash(text)| FlashView {
            class: "flash-success",
            role: "status",
            text,
        });
        Self {
            flash,
            ..Self::new(ui, user, section)
        }
    }
}

#[derive(Template)]
#[template(path = "error.html")]
pub struct ErrorPage {
    pub chrome: Chrome,
    pub title: String,
    pub message: String,
}

/// A page that only says what went wrong, outside any session.
pub fn error_page(status: StatusCode, title: &str, message: &str) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::anonymous(),
            title: title.to_owned(),
            message: message.to_owned(),
        },
    )
}

/// The same, for a signed-in person (with the header and tabs).
pub fn signed_in_error(
    ui: &UiState,
    user: &SignedIn,
    status: StatusCode,
    title: &str,
    message: &str,
) -> Response {
    render(
        status,
        &ErrorPage {
            chrome: Chrome::new(ui, user, Section::None),
            title: title.to_owned(),
            message: message.to_owned(),
        },
    )
}

#[derive(Template)]
#[template(path = "sign_in.html")]
pub struct SignInPage {
    pub chrome: Chrome,
    pub notice: Option<String>,
    pub error: Option<String>,
    /// The page to return to after signing in.
    pub next: Option<String>,
}

/// One row of the destinations table.
pub struct DestinationRow {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub log_format: String,
    pub ssl_verified: bool,
    pub used_by: Vec<String>,
}

#[derive(Template)]
#[template(path = "destinations.html")]
pub struct DestinationsPage {
    pub chrome: Chrome,
    pub product: String,
    pub rows: Vec<DestinationRow>,
    pub can_write: bool,
    pub role: &'static str,
    pub alert: Alert,
}

/// The destination form's values (never the authorization value itself).
pub struct DestinationForm {
    pub action: String,
    pub editing: bool,
    pub name: String,
    pub endpoint: String,
    /// What the person typed in this submission, shown again so that a refused save or a
    /// connection test does not make them type it twice; never the saved value.
    pub authorization: String,
    pub log_format: String,
    pub skip_ssl_verification: bool,
    /// The extra headers typed in this submission (`Name: value` lines); like the
    /// authorization, never the saved values.
    pub headers: String,
    /// The names of the saved extra headers, shown (their values never are).
    pub header_names: Vec<String>,
    /// *Remove the saved headers* was ticked.
    pub clear_headers: bool,
    /// The kind's API name (`webhook`, `datadog`…).
    pub kind: String,
    /// The kinds' settings as typed or saved, keyed `<kind>.<setting>`; a check box's is `on`.
    pub settings: BTreeMap<String, String>,
}

impl DestinationForm {
    pub fn has_format(&self, value: &str) -> bool {
        self.log_format == value
    }

    pub fn has_kind(&self, kind: &str) -> bool {
        self.kind == kind
    }

    /// The setting `name` of `kind`, as typed or saved; empty when it has none.
    pub fn setting(&self, kind: &str, name: &str) -> &str {
        self.settings
            .get(&format!("{kind}.{name}"))
            .map_or("", String::as_str)
    }

    /// The settings a kind's fieldset shows.
    pub fn fields_of(&self, kind: &str) -> Vec<&'static KindField> {
        KIND_FIELDS.iter().filter(|f| f.kind == kind).collect()
    }
}

/// The kinds of destination, by API name, as the form offers them.
pub const KINDS: [(&str, &str); 7] = [
    ("webhook", "Webhook (Konnect's format)"),
    ("splunk_hec", "Splunk HTTP Event Collector"),
    ("datadog", "Datadog Logs"),
    ("elasticsearch", "Elasticsearch / OpenSearch"),
    ("sumo_logic", "Sumo Logic HTTP Source"),
    ("loki", "Grafana Loki"),
    ("syslog", "Syslog over TLS (RFC 5425)"),
];

/// One of a kind's own settings, as the destination form shows it.
pub struct KindField {
    pub kind: &'static str,
    /// The setting's API name.
    pub name: &'static str,
    pub label: &'static str,
    pub hint: &'static str,
    pub input: FieldInput,
}

#[derive(Clone, Copy, PartialEq, Eq)]
pub enum FieldInput {
    Text,
    Number,
    Check,
    /// `name=value` per line (Loki's labels).
    Pairs,
    /// A PEM document (a certificate chain).
    Pem,
    /// A PEM private key: not a setting but the destination's `authorization`, which a
    /// one-line field cannot hold.
    Key,
}

impl KindField {
    pub fn is_text(&self) -> bool {
        self.input == FieldInput::Text
    }

    pub fn is_number(&self) -> bool {
        self.input == FieldInput::Number
    }

    pub fn is_check(&self) -> bool {
        self.input == FieldInput::Check
    }

    /// What an empty multi-line field shows.
    pub fn placeholder(&self) -> &'static str {
        match self.input {
            FieldInput::Pem => "-----BEGIN CERTIFICATE-----",
            FieldInput::Key => "-----BEGIN PRIVATE KEY-----",
            _ => "env=prod",
        }
    }

    /// The range a number field takes.
    pub fn number_range(&self) -> (u32, u32) {
        match self.name {
            "max_message_bytes" => (2048, 1 << 20),
            _ => (1, 600),
        }
    }
}

/// Placeholders a text setting may use, for the hints.
const PLACEHOLDERS: &str = "May use {region}, {org_id} and {portal_id}.";

pub const KIND_FIELDS: &[KindField] = &[
    KindField {
        kind: "splunk_hec",
        name: "index",
        label: "Index",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "splunk_hec",
        name: "sourcetype",
        label: "Source Type",
        hint: "For example kong:audit. May use {region}, {org_id} and {portal_id}.",
        input: FieldInput::Text,
    },
    KindField {
        kind: "splunk_hec",
        name: "source",
        label: "Source",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "splunk_hec",
        name: "host",
        label: "Host",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "splunk_hec",
        name: "ack",
        label: "Wait for indexer acknowledgement",
        hint: "A batch counts as delivered only once Splunk says it is indexed. Acknowledgement must be on for the token: without it, every batch fails.",
        input: FieldInput::Check,
    },
    KindField {
        kind: "splunk_hec",
        name: "ack_timeout_seconds",
        label: "Acknowledgement timeout (seconds)",
        hint: "How long to wait before sending a batch again (default 60).",
        input: FieldInput::Number,
    },
    KindField {
        kind: "datadog",
        name: "service",
        label: "Service",
        hint: "Default auditrelay.",
        input: FieldInput::Text,
    },
    KindField {
        kind: "datadog",
        name: "ddsource",
        label: "Source (ddsource)",
        hint: "Default auditrelay.",
        input: FieldInput::Text,
    },
    KindField {
        kind: "datadog",
        name: "ddtags",
        label: "Tags (ddtags)",
        hint: "For example env:prod,team:security. May use {region}, {org_id} and {portal_id}.",
        input: FieldInput::Text,
    },
    KindField {
        kind: "datadog",
        name: "hostname",
        label: "Hostname",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "sumo_logic",
        name: "category",
        label: "Source Category (X-Sumo-Category)",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "sumo_logic",
        name: "name",
        label: "Source Name (X-Sumo-Name)",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "sumo_logic",
        name: "host",
        label: "Source Host (X-Sumo-Host)",
        hint: PLACEHOLDERS,
        input: FieldInput::Text,
    },
    KindField {
        kind: "sumo_logic",
        name: "fields",
        label: "Fields (X-Sumo-Fields)",
        hint: "key=value pairs separated by commas. May use {region}, {org_id} and {portal_id}.",
        input: FieldInput::Text,
    },
    KindField {
        kind: "loki",
        name: "labels",
        label: "Labels",
        hint: "One name=value per line, added to source, org_id, region and portal_id. Values may use {region}, {org_id} and {portal_id}.",
        input: FieldInput::Pairs,
    },
    KindField {
        kind: "syslog",
        name: "framing",
        label: "Framing",
        hint: "octet_counting (RFC 5425, the default) or lf, for a receiver that only splits on newlines. Syslog has no acknowledgement: a batch counts as delivered once written on an open connection, and what was written in the last 10 seconds before a connection was lost is written again after reconnecting (at least once).",
        input: FieldInput::Text,
    },
    KindField {
        kind: "syslog",
        name: "hostname",
        label: "Hostname",
        hint: "The messages' HOSTNAME; - when empty.",
        input: FieldInput::Text,
    },
    KindField {
        kind: "syslog",
        name: "max_message_bytes",
        label: "Longest message (bytes)",
        hint: "What the receiver takes (8192 when empty, rsyslog's default); a longer event is refused and listed, not truncated.",
        input: FieldInput::Number,
    },
    KindField {
        kind: "syslog",
        name: "client_certificate",
        label: "Client certificate",
        hint: "For a receiver that asks for one (mutual TLS): the certificate and its chain, PEM.",
        input: FieldInput::Pem,
    },
    KindField {
        kind: "syslog",
        name: "client_key",
        label: "Client certificate's private key",
        hint: "PEM. Stored encrypted as the destination's authorization, and never shown again; leave empty on an edit to keep the saved one.",
        input: FieldInput::Key,
    },
];

pub const LOG_FORMATS: [(&str, &str); 4] = [
    ("cef", "CEF"),
    ("json", "JSON"),
    ("cps", "CPS (CrowdStrike Parsing Standard)"),
    ("ocsf", "OCSF 1.8.0 (Open Cybersecurity Schema Framework)"),
];

#[derive(Template)]
#[template(path = "destination_form.html")]
pub struct DestinationFormPage {
    pub chrome: Chrome,
    pub heading: String,
    pub form: DestinationForm,
    /// What *Test connection* found, after one.
    pub connection: Option<ConnectionResult>,
    /// The alert's first line when it lists several problems.
    pub alert_lead: &'static str,
    pub formats: [(&'static str, &'static str); 4],
    pub kinds: [(&'static str, &'static str); 7],
    pub can_write: bool,
    pub role: &'static str,
    pub alert: Alert,
}

/// The heading, badge and sub-tabs of one webhook: an org region's or a Dev Portal's.
pub struct ScopeHeader {
    /// The `id` of its `<section>`: `region-us`, `portal-<id>`.
    pub id: String,
    /// "US - North America Webhook", "Dev Portal “Developer Portal” Webhook".
    pub title: String,
    /// What the webhook sends, for sentences: "the organization's audit logs in US - North
    /// America".
    pub what: String,
    pub badge: Badge,
    /// The UI path of its pages: `/ui/audit-logs/regions/us`.
    pub base: String,
    pub current: &'static str,
    pub back_href: &'static str,
    pub back_label: String,
}

/// A region's card on the organization tab.
pub struct ScopeCard {
    pub header: ScopeHeader,
    pub endpoint: String,
}

#[derive(Template)]
#[template(path = "org.html")]
pub struct OrgPage {
    pub chrome: Chrome,
    pub product: String,
    pub cards: Vec<ScopeCard>,
}

/// A destination as a choice of the Endpoint select.
pub struct Choice {
    pub id: String,
    pub name: String,
}

pub struct SetupForm {
    pub enabled: bool,
    pub endpoint: String,
}

#[derive(Template)]
#[template(path = "scope_setup.html")]
pub struct SetupPage {
    pub chrome: Chrome,
    pub scope: ScopeHeader,
    pub form: SetupForm,
    pub destinations: Vec<Choice>,
    pub configured: bool,
    pub can_write: bool,
    pub can_create_destination: bool,
    pub role: &'static str,
    pub alert: Alert,
}

/// The Status tab, in words.
pub struct StatusView {
    pub enabled: bool,
    /// Whether a destination is bound (there is something to test).
    pub configured: bool,
    pub endpoint: String,
    pub last_attempt: Option<String>,
    pub last_response_code: String,
    pub last_response_message: String,
    pub lag: Option<String>,
    pub oldest: Option<String>,
    pub data_loss: Option<String>,
    pub retention: String,
    /// "Retrying: the next attempt is in 8 seconds", while a failed batch waits.
    pub retrying: Option<String>,
    /// "3 in a row", after a failure.
    pub failures: Option<String>,
    /// Whether *Retry now* applies: the webhook is enabled and a failed batch waits.
    pub can_retry: bool,
    /// The delivery log, newest first.
    pub deliveries: Vec<DeliveryRow>,
    /// How many events the receiver refused for good (0: none).
    pub refused_count: u64,
    /// The oldest of them, in words.
    pub refused: Vec<RefusedRow>,
}

/// One event of the refused list, in words.
pub struct RefusedRow {
    pub seq: i64,
    pub event_id: String,
    pub at: String,
    pub reason: String,
    /// "Replay" when a replay job sent it.
    pub by: &'static str,
}

/// What *Test connection* found, in words.
pub struct ConnectionResult {
    pub delivered: bool,
    /// "The endpoint answered 202 Accepted in 12 ms."
    pub summary: String,
    pub trace_id: String,
}

/// One row of the Status page's delivery log, in words.
pub struct DeliveryRow {
    pub at: String,
    pub kind: &'static str,
    pub endpoint: String,
    pub events: String,
    pub answer: String,
    pub delivered: bool,
    pub duration: String,
}

#[derive(Template)]
#[template(path = "scope_status.html")]
pub struct StatusPage {
    pub chrome: Chrome,
    pub scope: ScopeHeader,
    pub status: StatusView,
    /// What *Test connection* found, after one.
    pub connection: Option<ConnectionResult>,
    /// `delivery.log_size`.
    pub log_size: u32,
    pub test_what: &'static str,
    pub can_write: bool,
    pub role: &'static str,
    pub alert: Alert,
}

pub const RANGES: [(&str, &str); 6] = [
    ("15m", "Last 15 minutes"),
    ("1h", "Last 1 hour"),
    ("6h", "Last 6 hours"),
    ("12h", "Last 12 hours"),
    ("24h", "Last 24 hours"),
    ("custom", "Custom range"),
];

pub struct ReplayForm {
    pub range: String,
    pub start_at: String,
    pub end_at: String,
    /// `datetime-local` bounds: the retention window, in UTC.
    pub min: String,
    pub max: String,
}

impl ReplayForm {
    pub fn has_range(&self, value: &str) -> bool {
        self.range == value
    }
}

/// The replay job, in words.
pub struct JobView {
    pub configured: bool,
    pub in_progress: bool,
    pub status: String,
    pub start_at: String,
    pub end_at: String,
    pub updated_at: String,
    pub progress: String,
    pub failure_reason: Option<String>,
}

#[derive(Template)]
#[template(path = "scope_replay.html")]
pub struct ReplayPage {
    pub chrome: Chrome,
    pub scope: ScopeHeader,
    pub form: ReplayForm,
    pub ranges: [(&'static str, &'static str); 6],
    pub retention: String,
    pub job: JobView,
    /// Whether the webhook is enabled; a replay needs it.
    pub webhook_enabled: bool,
    /// Past jobs, newest first.
    pub history: Vec<JobView>,
    pub can_write: bool,
    pub role: &'static str,
    pub alert: Alert,
}

/// One row of the Dev Portal table.
pub struct PortalRow {
    pub id: String,
    pub name: String,
    pub region: String,
    pub enabled: &'static str,
    pub endpoint: String,
    pub badge: Badge,
}

#[derive(Template)]
#[template(path = "portals.html")]
pub struct PortalsPage {
    pub chrome: Chrome,
    pub rows: Vec<PortalRow>,
    pub can_write: bool,
    /// Whether the person may add Dev Portals to the registry (org admins).
    pub can_add_portal: bool,
}

#[derive(Template)]
#[template(path = "portal_add.html")]
pub struct AddPortalPage {
    pub chrome: Chrome,
    pub name: String,
    pub region: String,
    pub regions: Vec<RegionChoice>,
    pub can_write: bool,
    pub role: &'static str,
    pub alert: Alert,
}

/// A portal as a choice of the Dev Portal select.
pub struct PortalChoice {
    pub id: String,
    pub name: String,
    pub region: String,
}

pub struct RegionChoice {
    pub code: String,
    pub name: String,
}

pub struct NewPortalForm {
    pub region: String,
    pub portal: String,
    pub enabled: bool,
    pub endpoint: String,
}

#[derive(Template)]
#[template(path = "portal_new.html")]
pub struct NewPortalPage {
    pub chrome: Chrome,
    pub form: NewPortalForm,
    pub regions: Vec<RegionChoice>,
    pub portals: Vec<PortalChoice>,
    pub destinations: Vec<Choice>,
    pub can_write: bool,
    pub role: &'static str,
    pub alert: Alert,
}

/// The confirmation step of a form that destroys something, for a browser without JavaScript
/// (with it, the form asks with a dialog and says so in `confirmed`).
#[derive(Template)]
#[template(path = "confirm.html")]
pub struct ConfirmPage {
    pub chrome: Chrome,
    pub heading: String,
    pub question: String,
    pub action: String,
    pub button: &'static str,
    pub cancel_href: String,
}

//! The Webhook Destination tab: the destinations, which webhooks use each, and the New
//! Webhook / edit / delete forms.
//!
//! The authorization value is write-only here as in the API: a form never shows the saved
//! value, and an edit leaves it as it is unless a new value is typed. What the person typed in
//! a submission comes back (masked) when the form is shown again after a refused save or a
//! connection test, so it need not be typed twice.
//!
//! *Test connection*, a second button of the same form, sends the form's values (over the
//! saved ones, on an edit) to the API's connection test and shows the answer above the form,
//! which keeps everything typed: nothing is saved.

use std::collections::{BTreeMap, HashMap};

use axum::extract::{Path, State};
use axum::http::{Method, StatusCode};
use axum::response::Response;
use serde::Deserialize;
use serde_json::{Map, Value};
use uuid::Uuid;

use super::client::{Api, Failure, wire};
use super::guard::{Confirmation, Form};
use super::messages::{self, Alert, DESTINATION_LABELS, explain};
use super::scope::Scope;
use super::session::{Flash, SignedIn};
use super::views::{
    Chrome, ConfirmPage, ConnectionResult, DestinationForm, DestinationFormPage, DestinationRow,
    DestinationsPage, FieldInput, KIND_FIELDS, KINDS, LOG_FORMATS, Section,
};
use super::{Refused, UiState, failed, hidden_section, render, see_other};

/// `GET /ui/destinations`.
pub async fn list(State(ui): State<UiState>, user: SignedIn) -> Response {
    list_page(&ui, &user, Alert::default(), StatusCode::OK).await
}

async fn list_page(ui: &UiState, user: &SignedIn, alert: Alert, status: StatusCode) -> Response {
    if !Section::Destinations.visible_to(user.who.role()) {
        return hidden_section(ui, user);
    }
    let api = user.api(ui);
    let read = async {
        let destinations: Vec<wire::Destination> =
            api.list_all("/v3/audit-log-destinations").await?;
        let users = webhook_users(ui, &api).await?;
        Ok::<_, Failure>((destinations, users))
    };
    let (destinations, mut users) = match read.await {
        Ok(read) => read,
        Err(failure) => return failed(ui, user, failure),
    };
    let rows = destinations
        .into_iter()
        .map(|d| DestinationRow {
            used_by: users.remove(&d.id).unwrap_or_default(),
            log_format: d.log_format.to_uppercase(),
            ssl_verified: !d.skip_ssl_verification,
            id: d.id,
            name: d.name,
            endpoint: d.endpoint,
        })
        .collect();
    let page = DestinationsPage {
        chrome: Chrome::showing_flash(ui, user, Section::Destinations).await,
        product: ui.app.config.ui.product_name.clone(),
        rows,
        can_write: user.who.may_write_destinations(),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

/// Which webhooks use each destination (by destination id), as the pages name them: "US -
/// North America webhook", "Dev Portal “Developer Portal” webhook". A webhook counts while it
/// is bound, enabled or not: that is what keeps its destination from being deleted.
async fn webhook_users(
    ui: &UiState,
    api: &Api<'_>,
) -> Result<HashMap<String, Vec<String>>, Failure> {
    let mut users: HashMap<String, Vec<String>> = HashMap::new();
    let mut note = |webhook: wire::Webhook, name: String| {
        let label = if webhook.enabled {
            name
        } else {
            format!("{name} (disabled)")
        };
        users
            .entry(webhook.audit_log_destination_id)
            .or_default()
            .push(label);
    };
    for region in &ui.app.config.regions.list {
        let scope = Scope::region(ui, region.as_str()).expect("a configured region");
        if let Some(webhook) = api.get_optional(&scope.api_webhook).await? {
            note(
                webhook,
                format!("{} webhook", messages::region_name(region.as_str())),
            );
        }
    }
    let portals: Vec<wire::Portal> = api.list_all("/v3/portals").await?;
    for portal in portals {
        let Some(id) = auditrelay_core::PortalId::parse(&portal.id) else {
            continue;
        };
        let scope = Scope::portal(ui, &portal, id);
        if let Some(webhook) = api.get_optional(&scope.api_webhook).await? {
            note(webhook, format!("Dev Portal “{}” webhook", portal.name));
        }
    }
    Ok(users)
}

/// The destination form as posted.
// No `Debug`: it holds a secret, which must never reach a log line.
#[derive(Default, Deserialize)]
#[serde(default)]
pub struct DestinationData {
    pub name: String,
    pub endpoint: String,
    pub authorization: String,
    pub log_format: String,
    pub skip_ssl_verification: Option<String>,
    /// Extra headers, one `Name: value` per line; empty on an edit keeps the saved ones.
    pub headers: String,
    pub clear_headers: Option<String>,
    /// The saved headers' names, carried by the form (comma-separated; no secret).
    pub saved_headers: String,
    /// `test` from the *Test connection* button; anything else saves.
    pub intent: String,
    /// The kind's API name; empty is `webhook`.
    pub kind: String,
    /// Every other field: among them the kinds' settings, named `s.<kind>.<setting>`.
    #[serde(flatten)]
    pub rest: BTreeMap<String, String>,
}

impl DestinationData {
    /// The form to show again, as typed.
    fn form(&self, action: String, editing: bool) -> DestinationForm {
        DestinationForm {
            action,
            editing,
            name: self.name.clone(),
            endpoint: self.endpoint.clone(),
            authorization: self.authorization.clone(),
            log_format: self.log_format.clone(),
            skip_ssl_verification: self.skip_ssl_verification.is_some(),
            headers: self.headers.clone(),
            header_names: self
                .saved_headers
                .split(',')
                .filter(|n| !n.is_empty())
                .map(str::to_owned)
                .collect(),
            clear_headers: self.clear_headers.is_some(),
            kind: self.kind().to_owned(),
            // A syslog client key is shown again to nobody: typed once more after an error.
            settings: self
                .rest
                .iter()
                .filter(|(key, _)| key.as_str() != "s.syslog.client_key")
                .filter_map(|(key, value)| {
                    Some((key.strip_prefix("s.")?.to_owned(), value.clone()))
                })
                .collect(),
        }
    }

    fn kind(&self) -> &str {
        if self.kind.is_empty() {
            "webhook"
        } else {
            &self.kind
        }
    }

    /// The chosen kind's settings as the API takes them; `None` for a kind without any.
    /// Blank fields are left out (the kind's default); a number that is not one goes as typed,
    /// for the API to say what is wrong with it.
    fn settings_field(&self) -> Option<Value> {
        let kind = self.kind();
        let fields: Vec<_> = KIND_FIELDS.iter().filter(|f| f.kind == kind).collect();
        if fields.is_empty() {
            return None;
        }
        let mut settings = Map::new();
        for field in fields {
            let typed = self
                .rest
                .get(&format!("s.{kind}.{}", field.name))
                .map_or("", |v| v.trim());
            let value = match field.input {
                // The key goes as the authorization (`typed_authorization`).
                FieldInput::Key => continue,
                FieldInput::Check => Value::Bool(!typed.is_empty()),
                _ if typed.is_empty() => continue,
                FieldInput::Text | FieldInput::Pem => typed.into(),
                FieldInput::Number => typed
                    .parse::<u64>()
                    .map_or_else(|_| typed.into(), Value::from),
                FieldInput::Pairs => Value::Object(
                    typed
                        .lines()
                        .filter_map(|line| {
                            let (name, value) = line.split_once('=')?;
                            Some((name.trim().to_owned(), value.trim().into()))
                        })
                        .collect(),
                ),
            };
            settings.insert(field.name.into(), value);
        }
        Some(Value::Object(settings))
    }

    /// The authorization typed: a syslog destination's is its client key, typed in its own
    /// multi-line field.
    fn typed_authorization(&self) -> String {
        if self.kind() == "syslog" {
            let key = self.rest.get("s.syslog.client_key");
            return key.map_or("", |v| v.trim()).to_owned();
        }
        self.authorization.clone()
    }

    /// Adds the kind and its settings to an API body: always on an edit (the kind may have
    /// changed back to `webhook`), and on a create for any kind but Konnect's default.
    fn add_kind(&self, body: &mut Map<String, Value>, editing: bool) {
        if editing || self.kind() != "webhook" {
            body.insert("kind".into(), self.kind().into());
        }
        if let Some(settings) = self.settings_field() {
            body.insert("settings".into(), settings);
        }
    }

    /// The typed headers as the API takes them, or the alert for a line that is not
    /// `Name: value`; `None` when nothing was typed.
    fn typed_headers(&self) -> Result<Option<Map<String, Value>>, Alert> {
        let mut headers = Map::new();
        for (n, line) in self.headers.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let Some((name, value)) = line.split_once(':') else {
                let message = format!("Extra Headers: line {} is not “Name: value”.", n + 1);
                return Err(Alert {
                    messages: vec![message.clone()],
                    fields: vec![("headers".to_owned(), message)],
                });
            };
            headers.insert(name.trim().to_owned(), value.trim().into());
        }
        Ok((!headers.is_empty()).then_some(headers))
    }

    /// The `headers` of an API body: those typed, or `{}` to remove the saved ones, or nothing
    /// (the saved ones stay, or there are none).
    fn headers_field(&self) -> Result<Option<Value>, Alert> {
        Ok(match self.typed_headers()? {
            Some(headers) => Some(Value::Object(headers)),
            None if self.clear_headers.is_some() => Some(Value::Object(Map::new())),
            None => None,
        })
    }

    fn is_test(&self) -> bool {
        self.intent == "test"
    }

    /// The connection test's body: the form's delivery fields, over the saved destination's
    /// (`saved`) on an edit, where an empty authorization means the saved one.
    fn test_body(&self, saved: Option<Uuid>) -> Result<Value, Alert> {
        let mut body = Map::new();
        if let Some(id) = saved {
            body.insert("audit_log_destination_id".into(), id.to_string().into());
        }
        body.insert("endpoint".into(), self.endpoint.clone().into());
        let authorization = self.typed_authorization();
        if !authorization.is_empty() || saved.is_none() {
            body.insert("authorization".into(), authorization.into());
        }
        if !self.log_format.is_empty() {
            body.insert("log_format".into(), self.log_format.clone().into());
        }
        body.insert(
            "skip_ssl_verification".into(),
            self.skip_ssl_verification.is_some().into(),
        );
        if let Some(headers) = self.headers_field()? {
            body.insert("headers".into(), headers);
        }
        self.add_kind(&mut body, saved.is_some());
        Ok(Value::Object(body))
    }

    /// The API body: every field of the form; on an edit, the authorization value only when
    /// one was typed. (There is no removing it: the API requires one, as Konnect does.)
    fn body(&self, editing: bool) -> Result<Value, Alert> {
        let mut body = Map::new();
        body.insert("name".into(), self.name.clone().into());
        body.insert("endpoint".into(), self.endpoint.clone().into());
        if !self.log_format.is_empty() {
            body.insert("log_format".into(), self.log_format.clone().into());
        }
        body.insert(
            "skip_ssl_verification".into(),
            self.skip_ssl_verification.is_some().into(),
        );
        let typed = self.typed_authorization();
        let authorization = if !typed.is_empty() {
            Some(typed)
        } else if !editing {
            Some(String::new())
        } else {
            None
        };
        if let Some(value) = authorization {
            body.insert("authorization".into(), value.into());
        }
        if let Some(headers) = self.headers_field()? {
            body.insert("headers".into(), headers);
        }
        self.add_kind(&mut body, editing);
        Ok(Value::Object(body))
    }
}

fn form_page(
    ui: &UiState,
    user: &SignedIn,
    heading: String,
    form: DestinationForm,
    alert: Alert,
    status: StatusCode,
) -> Response {
    let page = DestinationFormPage {
        chrome: Chrome::new(ui, user, Section::Destinations),
        heading,
        form,
        connection: None,
        alert_lead: "The destination was not saved:",
        formats: LOG_FORMATS,
        kinds: KINDS,
        can_write: user.who.may_write_destinations(),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

/// `GET /ui/destinations/new`: the New Webhook form.
pub async fn new(State(ui): State<UiState>, user: SignedIn) -> Response {
    if !Section::Destinations.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let form = DestinationForm {
        action: "/ui/destinations".to_owned(),
        editing: false,
        name: String::new(),
        endpoint: String::new(),
        authorization: String::new(),
        log_format: "cef".to_owned(),
        skip_ssl_verification: false,
        headers: String::new(),
        header_names: Vec::new(),
        clear_headers: false,
        kind: "webhook".to_owned(),
        settings: BTreeMap::new(),
    };
    let heading = "New Webhook".to_owned();
    form_page(&ui, &user, heading, form, Alert::default(), StatusCode::OK)
}

/// What a refused save says: a taken name in plain words, anything else as the API put it.
fn save_refused(problem: &super::client::Problem, name: &str) -> Alert {
    if problem.status == 409 {
        let message =
            format!("Another destination is already called “{name}”: choose another name.");
        return Alert {
            messages: vec![message.clone()],
            fields: vec![("name".to_owned(), message)],
        };
    }
    explain(problem, DESTINATION_LABELS)
}

/// *Test connection*: the API's connection test with the form's values, and the form again
/// with its answer (or with what is wrong with the values).
async fn test_connection(
    ui: &UiState,
    user: &SignedIn,
    heading: String,
    form: DestinationForm,
    body: Value,
) -> Response {
    let tested = user
        .api(ui)
        .send::<wire::ConnectionTest>(
            Method::POST,
            "/v3/audit-log-destinations/test-connection",
            &body,
        )
        .await;
    let (connection, alert, status) = match tested {
        Ok(test) => (
            Some(ConnectionResult {
                delivered: test.delivered,
                summary: messages::connection_summary(&test),
                trace_id: test.trace_id,
            }),
            Alert::default(),
            StatusCode::OK,
        ),
        Err(Failure::Problem(problem)) => (
            None,
            explain(&problem, DESTINATION_LABELS),
            problem.status(),
        ),
        Err(failure) => return failed(ui, user, failure),
    };
    let page = DestinationFormPage {
        chrome: Chrome::showing_flash(ui, user, Section::Destinations).await,
        heading,
        form,
        connection,
        alert_lead: "The connection was not tested:",
        formats: LOG_FORMATS,
        kinds: KINDS,
        can_write: user.who.may_write_destinations(),
        role: user.who.role().as_str(),
        alert,
    };
    render(status, &page)
}

/// `POST /ui/destinations`.
pub async fn create(
    State(ui): State<UiState>,
    Form { user, data }: Form<DestinationData>,
) -> Response {
    if !Section::Destinations.visible_to(user.who.role()) {
        return hidden_section(&ui, &user);
    }
    let form = || data.form("/ui/destinations".to_owned(), false);
    let heading = || "New Webhook".to_owned();
    let body = match data.is_test() {
        true => data.test_body(None),
        false => data.body(false),
    };
    let body = match body {
        Ok(body) => body,
        Err(alert) => {
            return form_page(
                &ui,
                &user,
                heading(),
                form(),
                alert,
                StatusCode::BAD_REQUEST,
            );
        }
    };
    if data.is_test() {
        return test_connection(&ui, &user, heading(), form(), body).await;
    }
    let created = user
        .api(&ui)
        .send::<wire::Destination>(Method::POST, "/v3/audit-log-destinations", &body)
        .await;
    match created {
        Ok(destination) => {
            user.flash(Flash(format!(
                "Webhook destination “{}” created.",
                destination.name
            )))
            .await;
            see_other("/ui/destinations")
        }
        Err(Failure::Problem(problem)) => {
            let alert = save_refused(&problem, data.name.trim());
            let form = data.form("/ui/destinations".to_owned(), false);
            let heading = "New Webhook".to_owned();
            form_page(&ui, &user, heading, form, alert, problem.status())
        }
        Err(failure) => failed(&ui, &user, failure),
    }
}

/// A destination id from a path; anything else names no destination.
fn destination_id(user: &SignedIn, id: &str) -> Result<Uuid, Refused> {
    if !Section::Destinations.visible_to(user.who.role()) {
        return Err(Refused::Hidden);
    }
    Uuid::try_parse(id).map_err(|_| Refused::NotFound("There is no such webhook destination."))
}

/// `GET /ui/destinations/{id}/edit`.
pub async fn edit(State(ui): State<UiState>, user: SignedIn, Path(id): Path<String>) -> Response {
    let id = match destination_id(&user, &id) {
        Ok(id) => id,
        Err(refused) => return refused.page(&ui, &user),
    };
    let path = format!("/v3/audit-log-destinations/{id}");
    let destination = match user.api(&ui).get::<wire::Destination>(&path).await {
        Ok(destination) => destination,
        Err(failure) => return failed(&ui, &user, failure),
    };
    let heading = edit_heading(&user, &destination.name);
    let form = DestinationForm {
        action: format!("/ui/destinations/{id}"),
        editing: true,
        name: destination.name,
        endpoint: destination.endpoint,
        authorization: String::new(),
        log_format: destination.log_format,
        skip_ssl_verification: destination.skip_ssl_verification,
        headers: String::new(),
        header_names: destination.header_names,
        clear_headers: false,
        settings: saved_settings(destination.kind.as_deref(), destination.settings.as_ref()),
        kind: destination.kind.unwrap_or_else(|| "webhook".to_owned()),
    };
    form_page(&ui, &user, heading, form, Alert::default(), StatusCode::OK)
}

/// A saved destination's settings as the form shows them (`<kind>.<setting>` → text).
fn saved_settings(kind: Option<&str>, settings: Option<&Value>) -> BTreeMap<String, String> {
    let (Some(kind), Some(Value::Object(settings))) = (kind, settings) else {
        return BTreeMap::new();
    };
    settings
        .iter()
        .map(|(name, value)| {
            let text = match value {
                Value::String(s) => s.clone(),
                Value::Bool(true) => "on".to_owned(),
                Value::Bool(false) => String::new(),
                Value::Object(pairs) => pairs
                    .iter()
                    .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
                    .collect::<Vec<_>>()
                    .join("\n"),
                other => other.to_string(),
            };
            (format!("{kind}.{name}"), text)
        })
        .collect()
}

fn edit_heading(user: &SignedIn, name: &str) -> String {
    if user.who.may_write_destinations() {
        format!("Edit “{name}”")
    } else {
        format!("Webhook destination “{name}”")
    }
}

/// `POST /ui/destinations/{id}`.
pub async fn update(
    State(ui): State<UiState>,
    Path(id): Path<String>,
    Form { user, data }: Form<DestinationData>,
) -> Response {
    let id = match destination_id(&user, &id) {
        Ok(id) => id,
        Err(refused) => return refused.page(&ui, &user),
    };
    let body = match data.is_test() {
        true => data.test_body(Some(id)),
        false => data.body(true),
    };
    let body = match body {
        Ok(body) => body,
        Err(alert) => {
            let heading = edit_heading(&user, data.name.trim());
            let form = data.form(format!("/ui/destinations/{id}"), true);
            return form_page(&ui, &user, heading, form, alert, StatusCode::BAD_REQUEST);
        }
    };
    if data.is_test() {
        let heading = edit_heading(&user, data.name.trim());
        let form = data.form(format!("/ui/destinations/{id}"), true);
        return test_connection(&ui, &user, heading, form, body).await;
    }
    let path = format!("/v3/audit-log-destinations/{id}");
    let saved = user
        .api(&ui)
        .send::<wire::Destination>(Method::PATCH, &path, &body)
        .await;
    match saved {
        Ok(destination) => {
            user.flash(Flash(format!(
                "Webhook destination “{}” saved.",
                destination.name
            )))
            .await;
            see_other("/ui/destinations")
        }
        Err(Failure::Problem(problem)) if problem.status == 404 => {
            failed(&ui, &user, Failure::Problem(problem))
        }
        Err(Failure::Problem(problem)) => {
            let alert = save_refused(&problem, data.name.trim());
            let heading = edit_heading(&user, data.name.trim());
            let form = data.form(format!("/ui/destinations/{id}"), true);
            form_page(&ui, &user, heading, form, alert, problem.status())
        }
        Err(failure) => failed(&ui, &user, failure),
    }
}

/// `POST /ui/destinations/{id}/delete`. A destination in use is the API's 409; the page then
/// names the webhooks that use it.
pub async fn delete(
    State(ui): State<UiState>,
    Path(id): Path<String>,
    Form { user, data }: Form<Confirmation>,
) -> Response {
    let id = match destination_id(&user, &id) {
        Ok(id) => id,
        Err(refused) => return refused.page(&ui, &user),
    };
    let api = user.api(&ui);
    let path = format!("/v3/audit-log-destinations/{id}");
    let destination = match api.get::<wire::Destination>(&path).await {
        Ok(destination) => destination,
        Err(Failure::Problem(problem)) if problem.status == 404 => {
            user.flash(Flash(
                "That webhook destination was already deleted.".to_owned(),
            ))
            .await;
            return see_other("/ui/destinations");
        }
        Err(failure) => return failed(&ui, &user, failure),
    };
    // Someone who may not delete it is refused by the API, not asked.
    if !data.given() && user.who.may_write_destinations() {
        let page = ConfirmPage {
            chrome: Chrome::showing_flash(&ui, &user, Section::Destinations).await,
            heading: format!("Delete “{}”?", destination.name),
            question: format!(
                "The destination “{}” ({}) will be deleted. This cannot be undone.",
                destination.name, destination.endpoint
            ),
            action: format!("/ui/destinations/{id}/delete"),
            button: "Delete",
            cancel_href: "/ui/destinations".to_owned(),
        };
        return render(StatusCode::OK, &page);
    }
    match api.delete(&path).await {
        Ok(()) => {
            user.flash(Flash(format!(
                "Webhook destination “{}” deleted.",
                destination.name
            )))
            .await;
            see_other("/ui/destinations")
        }
        Err(Failure::Problem(problem)) if problem.status == 409 => {
            let users = match webhook_users(&ui, &api).await {
                Ok(mut users) => users.remove(&destination.id).unwrap_or_default(),
                Err(failure) => return failed(&ui, &user, failure),
            };
            let used_by = if users.is_empty() {
                "a webhook".to_owned()
            } else {
                users.join(", ")
            };
            let alert = Alert::one(format!(
                "“{}” can't be deleted: webhooks use it. Used by: {used_by}. Bind them to \
                 another destination, or remove them, then delete it.",
                destination.name
            ));
            list_page(&ui, &user, alert, StatusCode::CONFLICT).await
        }
        Err(Failure::Problem(problem)) => {
            let status = problem.status();
            list_page(&ui, &user, explain(&problem, DESTINATION_LABELS), status).await
        }
        Err(failure) => failed(&ui, &user, failure),
    }
}

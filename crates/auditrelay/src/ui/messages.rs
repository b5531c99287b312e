//! Words: Konnect's names for regions and webhook states, the API's problems retold in plain
//! sentences for the form they concern, and numbers, times and durations as people read them.

use auditrelay_core::Timestamp;

use super::client::{Problem, wire};
use crate::human;

/// Konnect's name of a region ("US - North America"); an unknown code upper-cased.
pub fn region_name(code: &str) -> String {
    let known = match code {
        "us" => "US - North America",
        "eu" => "EU - Europe",
        "au" => "AU - Australia",
        "me" => "ME - Middle East",
        "in" => "IN - India",
        "sg" => "SG - Singapore",
        other => return other.to_uppercase(),
    };
    known.to_owned()
}

/// A webhook's state as its badge says it, in words (never by colour alone).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Badge {
    Active,
    Inactive,
    Disabled,
    NotConfigured,
}

impl Badge {
    /// From the status API's `webhook_status` and `webhook_enabled`.
    pub fn of(webhook_status: &str, enabled: bool) -> Self {
        match (webhook_status, enabled) {
            ("unconfigured", _) => Self::NotConfigured,
            (_, false) => Self::Disabled,
            ("inactive", true) => Self::Inactive,
            _ => Self::Active,
        }
    }

    pub fn text(self) -> &'static str {
        match self {
            Self::Active => "Active",
            Self::Inactive => "Inactive",
            Self::Disabled => "Disabled",
            Self::NotConfigured => "Not configured",
        }
    }

    /// The CSS modifier (the colour repeats what the text says).
    pub fn class(self) -> &'static str {
        match self {
            Self::Active => "badge-active",
            Self::Inactive => "badge-inactive",
            Self::Disabled => "badge-disabled",
            Self::NotConfigured => "badge-unconfigured",
        }
    }

    pub fn meaning(self) -> &'static str {
        match self {
            Self::Active => "Delivering: the last attempt succeeded, or none was needed yet.",
            Self::Inactive => {
                "Failing: the last attempt did not reach the SIEM. Delivery keeps trying the \
                 same batch and catches up when the SIEM recovers; nothing is skipped."
            }
            Self::Disabled => "Configured but switched off: nothing is sent.",
            Self::NotConfigured => "No endpoint is set up.",
        }
    }
}

/// What went wrong with a form, in plain words: the messages in order, and for the fields they
/// concern, each field's own message (shown beside it).
#[derive(Debug, Clone, Default)]
pub struct Alert {
    pub messages: Vec<String>,
    pub fields: Vec<(String, String)>,
}

impl Alert {
    pub fn one(message: impl Into<String>) -> Self {
        Self {
            messages: vec![message.into()],
            fields: Vec::new(),
        }
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    /// The message about one form field (by its `name`).
    pub fn field(&self, name: &str) -> Option<&str> {
        self.fields
            .iter()
            .find(|(field, _)| field == name)
            .map(|(_, message)| message.as_str())
    }
}

/// How a form's fields are called: the API's field name, the form field's `name`, its label.
pub type Labels = &'static [(&'static str, &'static str, &'static str)];

pub const DESTINATION_LABELS: Labels = &[
    ("name", "name", "Name"),
    ("endpoint", "endpoint", "Endpoint"),
    ("authorization", "authorization", "Authorization Header"),
    ("log_format", "log_format", "Log Format"),
    (
        "skip_ssl_verification",
        "skip_ssl_verification",
        "Disable SSL Verification",
    ),
    ("headers", "headers", "Extra Headers"),
    ("kind", "kind", "Kind"),
    ("settings", "settings", "Settings"),
];

pub const WEBHOOK_LABELS: Labels = &[
    ("audit_log_destination_id", "endpoint", "Endpoint"),
    ("enabled", "enabled", "Enabled"),
    ("webhook", "", "The webhook"),
];

pub const PORTAL_LABELS: Labels = &[("name", "name", "Name"), ("region", "region", "Region")];

pub const REPLAY_LABELS: Labels = &[
    ("start_at", "start_at", "Start (UTC)"),
    ("end_at", "end_at", "End (UTC)"),
    ("webhook", "", "The webhook"),
];

/// Retells a problem the API answered a write with.
pub fn explain(problem: &Problem, labels: Labels) -> Alert {
    let reference = || {
        if problem.instance.is_empty() {
            String::new()
        } else {
            format!(" (Reference: {}.)", problem.instance)
        }
    };
    match problem.status {
        400 if !problem.invalid_parameters.is_empty() => {
            let mut alert = Alert::default();
            for p in &problem.invalid_parameters {
                // A fault inside an object field (`headers.X-Api-Key`) belongs to that field.
                let inner = |api: &str| {
                    p.field
                        .strip_prefix(api)
                        .and_then(|rest| rest.strip_prefix('.'))
                        .map(str::to_owned)
                };
                let found = labels.iter().find_map(|(api, field, label)| {
                    if *api == p.field {
                        Some((*field, sentence(label, &p.reason)))
                    } else {
                        let key = inner(api)?;
                        Some((*field, sentence(&format!("{label}: {key}"), &p.reason)))
                    }
                });
                let (field, message) = match found {
                    Some((field, message)) => (field, message),
                    None => (
                        "",
                        sentence(&problem.detail, &format!("({} {})", p.field, p.reason)),
                    ),
                };
                if !field.is_empty() && alert.field(field).is_none() {
                    alert.fields.push((field.to_owned(), message.clone()));
                }
                alert.messages.push(message);
            }
            alert
        }
        403 => Alert::one(CANNOT_CHANGE),
        404 => Alert::one(
            "It no longer exists: someone may have removed it meanwhile. Reload the page.",
        ),
        // The store refuses writes (a full disk) or the server is stopping: its detail says
        // so in plain words, and whether anything was changed.
        503 | 507 => Alert::one(format!("{}{}", end_sentence(&problem.detail), reference())),
        500..=599 => Alert::one(format!(
            "The server could not do this; nothing was changed. Try again.{}",
            reference()
        )),
        _ => Alert::one(end_sentence(&problem.detail)),
    }
}

/// What a write refused by the API's permission check says.
pub const CANNOT_CHANGE: &str = "Your role can't change this.";
/// What a page whose reads the API refuses says.
pub const CANNOT_SEE: &str = "Your role can't see this.";

/// `Name` + `cannot be blank` → "Name cannot be blank."
fn sentence(subject: &str, rest: &str) -> String {
    end_sentence(&format!("{subject} {rest}"))
}

fn end_sentence(text: &str) -> String {
    let text = text.trim();
    let mut chars = text.chars();
    let mut out: String = match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => return String::new(),
    };
    if !out.ends_with(['.', '!', '?']) {
        out.push('.');
    }
    out
}

/// `completed` → `Completed`.
pub fn capitalized(word: &str) -> String {
    let mut chars = word.chars();
    match chars.next() {
        Some(first) => first.to_uppercase().chain(chars).collect(),
        None => String::new(),
    }
}

/// An API time as the tables show it: RFC 3339 to the second, UTC.
pub fn time(rfc3339: &str) -> String {
    Timestamp::parse_rfc3339(rfc3339)
        .map(Timestamp::to_rfc3339_seconds)
        .unwrap_or_else(|| rfc3339.to_owned())
}

/// What a connection test found, in one sentence.
pub fn connection_summary(test: &wire::ConnectionTest) -> String {
    let took = format!("{} ms", human::count(test.duration_ms));
    match test.response_code {
        Some(code) if test.delivered => format!(
            "It works: the endpoint answered {code} {} in {took}.",
            test.response_message
        ),
        Some(code) => format!(
            "The endpoint answered {code} {} in {took}: it did not accept the line.",
            test.response_message
        ),
        // A syslog receiver answers nothing: written on an open connection is all there is.
        None if test.delivered => format!(
            "It works: the line was {} in {took}.",
            test.response_message
        ),
        None => format!(
            "No answer from the endpoint after {took}: {}.",
            test.response_message
        ),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::client::wire::InvalidParameter;

    fn problem(status: u16, detail: &str, params: &[(&str, &str)]) -> Problem {
        Problem {
            status,
            detail: detail.into(),
            instance: "kong:trace:42".into(),
            invalid_parameters: params
                .iter()
                .map(|(f, r)| InvalidParameter {
                    field: (*f).into(),
                    reason: (*r).into(),
                    ..InvalidParameter::default()
                })
                .collect(),
        }
    }

    #[test]
    fn problems_in_plain_words() {
        let alert = explain(
            &problem(
                400,
                "Required field missing",
                &[("name", "cannot be blank"), ("endpoint", "must use https")],
            ),
            DESTINATION_LABELS,
        );
        assert_eq!(
            alert.messages,
            ["Name cannot be blank.", "Endpoint must use https."]
        );
        assert_eq!(alert.field("endpoint"), Some("Endpoint must use https."));
        assert_eq!(alert.field("authorization"), None);

        let alert = explain(
            &problem(
                400,
                "Invalid replay window",
                &[("start_at", "must not be in the future")],
            ),
            REPLAY_LABELS,
        );
        assert_eq!(alert.messages, ["Start (UTC) must not be in the future."]);

        let alert = explain(
            &problem(
                400,
                "Could not parse request body",
                &[("body", "request format is invalid")],
            ),
            WEBHOOK_LABELS,
        );
        assert_eq!(
            alert.messages,
            ["Could not parse request body (body request format is invalid)."]
        );
        assert!(alert.fields.is_empty());

        assert_eq!(
            explain(&problem(403, "Forbidden", &[]), WEBHOOK_LABELS).messages,
            [CANNOT_CHANGE]
        );
        assert!(
            explain(&problem(500, "x", &[]), WEBHOOK_LABELS).messages[0].contains("kong:trace:42")
        );
        // A full disk is said as the API says it, not as "try again" alone.
        let full =
            "Nothing was stored: the disk holding the data directory is full. Try again later";
        let message = &explain(&problem(507, full, &[]), WEBHOOK_LABELS).messages[0];
        assert!(message.starts_with(&format!("{full}.")), "{message}");
        assert!(message.contains("kong:trace:42"), "{message}");
    }

    #[test]
    fn words_and_numbers() {
        assert_eq!(region_name("us"), "US - North America");
        assert_eq!(region_name("xx"), "XX");
        assert_eq!(Badge::of("unconfigured", false), Badge::NotConfigured);
        assert_eq!(Badge::of("active", false), Badge::Disabled);
        assert_eq!(Badge::of("inactive", true), Badge::Inactive);
        assert_eq!(Badge::of("active", true).text(), "Active");
        assert_eq!(capitalized("completed"), "Completed");
        assert_eq!(time("2026-11-22T11:13:45.123Z"), "2026-11-22T11:13:45Z");
    }
}

//! The API's answers as its clients read them: the fields they use, leniently (a field a
//! client does not read may be missing or new). The API's own response types only serialize;
//! these only deserialize, so each side can grow without the other.

use reqwest::StatusCode;
use serde::Deserialize;

/// Konnect's problem+json. Every field may be missing or `null` when something other than
/// auditrelay answered (a proxy, say); a missing `status` is 0 (see [`Problem::status`]).
#[derive(Debug, Clone, Default, Deserialize)]
pub struct Problem {
    #[serde(default, deserialize_with = "or_default")]
    pub status: u16,
    #[serde(default, deserialize_with = "or_default")]
    pub detail: String,
    /// `kong:trace:<id>`: the key to the API's log line and audit events.
    #[serde(default, deserialize_with = "or_default")]
    pub instance: String,
    #[serde(default, deserialize_with = "or_default")]
    pub invalid_parameters: Vec<InvalidParameter>,
}

impl Problem {
    /// The status as a type; a problem without a valid one counts as a 500.
    pub fn status(&self) -> StatusCode {
        StatusCode::from_u16(self.status).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR)
    }

    /// The problem an error answer with `status` carries; one that says no status of its own
    /// takes the answer's, and a body that is no problem at all is told by its status alone.
    pub fn of_answer(status: StatusCode, body: &[u8]) -> Self {
        match serde_json::from_slice::<Self>(body) {
            Ok(problem) if problem.status != 0 => problem,
            Ok(problem) => Self {
                status: status.as_u16(),
                ..problem
            },
            Err(_) => Self {
                status: status.as_u16(),
                detail: status.canonical_reason().unwrap_or("Error").to_owned(),
                ..Self::default()
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn problems_are_read_leniently() {
        let p = Problem::of_answer(StatusCode::NOT_FOUND, br#"{"detail":null,"instance":"x"}"#);
        assert_eq!(
            (p.status, p.detail.as_str(), p.instance.as_str()),
            (404, "", "x")
        );
        let p = Problem::of_answer(StatusCode::BAD_GATEWAY, b"<html>bad gateway</html>");
        assert_eq!((p.status, p.detail.as_str()), (502, "Bad Gateway"));
        let p = Problem::of_answer(
            StatusCode::BAD_REQUEST,
            br#"{"status":400,"invalid_parameters":[{"field":null,"reason":"r"}]}"#,
        );
        assert_eq!(p.invalid_parameters[0].reason, "r");
        assert_eq!(p.invalid_parameters[0].field, "");
    }
}

#[derive(Debug, Clone, Default, Deserialize)]
pub struct InvalidParameter {
    #[serde(default, deserialize_with = "or_default")]
    pub field: String,
    pub rule: Option<String>,
    /// `body`, `query`, or `line N` / `event N` for ingest.
    pub source: Option<String>,
    #[serde(default, deserialize_with = "or_default")]
    pub reason: String,
}

/// `null` read as the type's default, like a missing field.
fn or_default<'de, D, T>(deserializer: D) -> Result<T, D::Error>
where
    D: serde::Deserializer<'de>,
    T: Default + Deserialize<'de>,
{
    Option::<T>::deserialize(deserializer).map(Option::unwrap_or_default)
}

/// A list answer: Konnect's `{data, meta: {next}}`.
#[derive(Debug, Clone, Deserialize)]
pub struct ListPage<T> {
    pub data: Vec<T>,
    pub meta: ListMeta,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ListMeta {
    pub next: Option<String>,
}

/// `POST /v1/events`'s 202.
#[derive(Debug, Clone, Deserialize)]
pub struct Accepted {
    pub accepted: usize,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Destination {
    pub id: String,
    pub name: String,
    pub endpoint: String,
    pub log_format: String,
    pub skip_ssl_verification: bool,
    /// Our extension: the extra headers' names (their values are never returned).
    #[serde(default)]
    pub header_names: Vec<String>,
    /// Our extension: the kind; absent for Konnect's `webhook`.
    #[serde(default)]
    pub kind: Option<String>,
    /// Our extension: the kind's settings.
    #[serde(default)]
    pub settings: Option<serde_json::Value>,
}

/// A v3 or portal webhook: its binding.
#[derive(Debug, Clone, Deserialize)]
pub struct Webhook {
    pub audit_log_destination_id: String,
    pub enabled: bool,
}

#[derive(Debug, Clone, Deserialize)]
pub struct WebhookStatus {
    pub webhook_enabled: bool,
    pub webhook_status: String,
    pub last_attempt_at: Option<String>,
    pub last_response_code: Option<u16>,
    pub last_response_message: Option<String>,
    pub lag_events: Option<u64>,
    /// Our extension: how many events the receiver refused for good, when there are some.
    #[serde(default)]
    pub refused_events: Option<u64>,
    pub oldest_undelivered_at: Option<String>,
    pub seconds_until_data_loss: Option<u64>,
    pub retrying: Option<bool>,
    pub next_attempt_at: Option<String>,
    pub consecutive_failures: Option<u32>,
}

/// One attempt of the delivery log.
#[derive(Debug, Clone, Deserialize)]
pub struct Delivery {
    pub attempted_at: String,
    pub kind: String,
    pub endpoint: String,
    pub events: u32,
    pub first_seq: i64,
    pub last_seq: i64,
    pub response_code: Option<u16>,
    pub response_message: String,
    pub duration_ms: u64,
    pub delivered: bool,
}

/// What the API's connection test found.
#[derive(Debug, Clone, Deserialize)]
pub struct ConnectionTest {
    pub delivered: bool,
    pub response_code: Option<u16>,
    pub response_message: String,
    pub duration_ms: u64,
    pub trace_id: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Deliveries {
    pub data: Vec<Delivery>,
}

/// One event on a webhook's refused list (our extension).
#[derive(Debug, Clone, Deserialize)]
pub struct RefusedEvent {
    pub seq: i64,
    pub event_id: Option<String>,
    pub refused_at: String,
    pub reason: String,
    pub replay_job_id: Option<String>,
}

/// A page of a webhook's refused list.
#[derive(Debug, Clone, Deserialize)]
pub struct RefusedEvents {
    pub data: Vec<RefusedEvent>,
}

/// What asking to send the refused events again did.
#[derive(Debug, Clone, Deserialize)]
pub struct Resend {
    pub marked: u64,
}

/// Konnect's `AuditLogReplayJob` with our progress fields, which a server that does not count
/// progress leaves out.
#[derive(Debug, Clone, Deserialize)]
pub struct ReplayJob {
    pub start_at: String,
    pub end_at: String,
    pub status: String,
    pub updated_at: String,
    pub events_total: Option<u64>,
    pub events_sent: Option<u64>,
    pub batches_sent: Option<u64>,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    pub failure_reason: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct ReplayHistory {
    pub data: Vec<ReplayJob>,
}

#[derive(Debug, Clone, Deserialize)]
pub struct Portal {
    pub id: String,
    pub name: String,
    pub region: String,
}

#[derive(Debug, Clone, Deserialize)]
pub struct TestEvent {
    pub trace_id: String,
}

//! Records read out of rows, once for every backend: each decoder reads its columns through
//! [`Columns`], which SQLite's and PostgreSQL's rows both implement, so the two backends cannot
//! come to read a record differently. (Their SQL differs; what a row means does not.)

use auditrelay_core::format::Format;
use auditrelay_core::kind::{Kind, KindName};
use auditrelay_core::{Grant, OrgId, PortalId, Region, Role, Timestamp};
use sqlx::Row as _;
use sqlx::postgres::PgRow;
use sqlx::sqlite::SqliteRow;
use uuid::Uuid;

use super::{
    AttemptKind, DeliveryAttempt, Destination, LastAttempt, LoggedAttempt, Org, Portal, Principal,
    PrincipalKind, RefusedEvent, ReplayJob, ReplayStatus, Result, Scope, StoreError, StoredEvent,
    TokenRecord, Webhook, WebhookStatus,
};

/// A row's columns by name, in the store's own types: text, 64-bit integers (whatever width the
/// column has), flags and bytes.
pub(super) trait Columns {
    fn text(&self, column: &str) -> Result<String>;
    fn maybe_text(&self, column: &str) -> Result<Option<String>>;
    fn int(&self, column: &str) -> Result<i64>;
    fn maybe_int(&self, column: &str) -> Result<Option<i64>>;
    fn flag(&self, column: &str) -> Result<bool>;
    fn maybe_flag(&self, column: &str) -> Result<Option<bool>>;
    fn bytes(&self, column: &str) -> Result<Vec<u8>>;
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>>;
}

impl Columns for SqliteRow {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column)?)
    }
    fn maybe_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column)?)
    }
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }
    fn maybe_flag(&self, column: &str) -> Result<Option<bool>> {
        Ok(self.try_get(column)?)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

impl Columns for PgRow {
    fn text(&self, column: &str) -> Result<String> {
        Ok(self.try_get(column)?)
    }
    fn maybe_text(&self, column: &str) -> Result<Option<String>> {
        Ok(self.try_get(column)?)
    }
    /// PostgreSQL's integers have their width in their type: `BIGINT` for times and counters,
    /// `INTEGER` for response codes and failure counts, `SMALLINT` for an event's kind.
    fn int(&self, column: &str) -> Result<i64> {
        Ok(self.try_get(column).or_else(|e| match self.width(column) {
            Some(4) => self.try_get::<i32, _>(column).map(i64::from),
            Some(2) => self.try_get::<i16, _>(column).map(i64::from),
            _ => Err(e),
        })?)
    }
    fn maybe_int(&self, column: &str) -> Result<Option<i64>> {
        Ok(self.try_get(column).or_else(|e| match self.width(column) {
            Some(4) => Ok(self.try_get::<Option<i32>, _>(column)?.map(i64::from)),
            Some(2) => Ok(self.try_get::<Option<i16>, _>(column)?.map(i64::from)),
            _ => Err(e),
        })?)
    }
    fn flag(&self, column: &str) -> Result<bool> {
        Ok(self.try_get(column)?)
    }
    fn maybe_flag(&self, column: &str) -> Result<Option<bool>> {
        Ok(self.try_get(column)?)
    }
    fn bytes(&self, column: &str) -> Result<Vec<u8>> {
        Ok(self.try_get(column)?)
    }
    fn maybe_bytes(&self, column: &str) -> Result<Option<Vec<u8>>> {
        Ok(self.try_get(column)?)
    }
}

/// PostgreSQL's narrower integer columns, by their width in bytes: `INTEGER` (response codes,
/// failure counts) and `SMALLINT` (an event's kind); `None` for anything else, whose decoding
/// error is then the one reported.
trait Width {
    fn width(&self, column: &str) -> Option<u8>;
}

impl Width for PgRow {
    fn width(&self, column: &str) -> Option<u8> {
        use sqlx::{Column as _, TypeInfo as _};
        let column = self.columns().iter().find(|c| c.name() == column)?;
        match column.type_info().name() {
            "INT4" => Some(4),
            "INT2" => Some(2),
            _ => None,
        }
    }
}

fn corrupt(record: &str, what: &str) -> StoreError {
    StoreError::Corrupt(format!("invalid {record} {what}"))
}

fn millis(row: &impl Columns, column: &str) -> Result<Timestamp> {
    Ok(Timestamp::from_millis(row.int(column)?))
}

fn maybe_millis(row: &impl Columns, column: &str) -> Result<Option<Timestamp>> {
    Ok(row.maybe_int(column)?.map(Timestamp::from_millis))
}

fn uuid(row: &impl Columns, column: &str, record: &str) -> Result<Uuid> {
    Uuid::try_parse(&row.text(column)?).map_err(|_| corrupt(record, column))
}

/// The scope of a row joined with `scopes` (`org_id`, `region`, `portal_id`); `record` names
/// the record for the error.
pub(super) fn scope(row: &impl Columns, record: &str) -> Result<Scope> {
    let org = row.text("org_id")?;
    let region = row.text("region")?;
    let portal = row.text("portal_id")?;
    Ok(Scope {
        org_id: OrgId::parse(&org).ok_or_else(|| corrupt(record, "org id"))?,
        region: Region::parse(&region).ok_or_else(|| corrupt(record, "region"))?,
        portal_id: match portal.as_str() {
            "" => None,
            p => Some(PortalId::parse(p).ok_or_else(|| corrupt(record, "portal id"))?),
        },
    })
}

pub(super) fn org(row: &impl Columns) -> Result<Org> {
    Ok(Org {
        id: OrgId::parse(&row.text("id")?).ok_or_else(|| corrupt("org", "id"))?,
        name: row.text("name")?,
        created_at: millis(row, "created_at")?,
    })
}

/// A token joined with its principal.
pub(super) fn token(row: &impl Columns) -> Result<TokenRecord> {
    let role = Role::parse(&row.text("role")?).ok_or_else(|| corrupt("token", "role"))?;
    let portal = row
        .maybe_text("portal_id")?
        .map(|p| PortalId::parse(&p).ok_or_else(|| corrupt("token", "portal id")))
        .transpose()?;
    let kind = row.text("kind")?;
    Ok(TokenRecord {
        id: uuid(row, "id", "token")?,
        principal: Principal {
            id: uuid(row, "principal_id", "token")?,
            org_id: OrgId::from_uuid(uuid(row, "org_id", "token")?),
            name: row.text("name")?,
            kind: PrincipalKind::parse(&kind).ok_or_else(|| corrupt("token", "principal kind"))?,
            grant: Grant::new(role, portal).map_err(|_| corrupt("token", "grant"))?,
        },
        prefix: row.text("prefix")?,
        created_at: millis(row, "created_at")?,
        expires_at: maybe_millis(row, "expires_at")?,
        revoked_at: maybe_millis(row, "revoked_at")?,
    })
}

pub(super) fn portal(row: &impl Columns) -> Result<Portal> {
    let region = row.text("region")?;
    Ok(Portal {
        id: PortalId::parse(&row.text("id")?).ok_or_else(|| corrupt("portal", "id"))?,
        org_id: OrgId::parse(&row.text("org_id")?).ok_or_else(|| corrupt("portal", "org id"))?,
        name: row.text("name")?,
        region: Region::parse(&region).ok_or_else(|| corrupt("portal", "region"))?,
        created_at: millis(row, "created_at")?,
        updated_at: millis(row, "updated_at")?,
    })
}

pub(super) fn destination(row: &impl Columns) -> Result<Destination> {
    let bad = |what: &str| corrupt("destination", what);
    let format = row.text("log_format")?;
    let settings = row
        .maybe_text("kind_settings")?
        .map(|s| serde_json::from_str::<serde_json::Value>(&s))
        .transpose()
        .map_err(|_| bad("kind settings"))?;
    let kind = KindName::parse(&row.text("kind")?).ok_or_else(|| bad("kind"))?;
    let kind = Kind::from_parts(kind, settings.as_ref()).map_err(|_| bad("kind settings"))?;
    Ok(Destination {
        id: uuid(row, "id", "destination")?,
        org_id: OrgId::parse(&row.text("org_id")?).ok_or_else(|| bad("org id"))?,
        name: row.text("name")?,
        endpoint: row.text("endpoint")?,
        authorization_sealed: row.bytes("authorization_sealed")?,
        log_format: Format::parse(&format).ok_or_else(|| bad("log format"))?,
        skip_ssl_verification: row.flag("skip_ssl_verification")?,
        headers_sealed: row.maybe_bytes("headers_sealed")?,
        integrity: row.flag("integrity")?,
        kind,
        managed_region: row
            .maybe_text("managed_region")?
            .map(|r| Region::parse(&r).ok_or_else(|| bad("managed region")))
            .transpose()?,
        portal_id: row
            .maybe_text("portal_id")?
            .map(|p| PortalId::parse(&p).ok_or_else(|| bad("portal id")))
            .transpose()?,
        created_at: millis(row, "created_at")?,
        updated_at: millis(row, "updated_at")?,
    })
}

/// A webhook joined with its scope.
pub(super) fn webhook(row: &impl Columns) -> Result<Webhook> {
    let bad = |what: &str| corrupt("webhook", what);
    let status = row.text("status")?;
    let code = row.maybe_int("last_response_code")?;
    let message = row.maybe_text("last_response_message")?;
    Ok(Webhook {
        scope: scope(row, "webhook")?,
        destination_id: uuid(row, "destination_id", "webhook")?,
        enabled: row.flag("enabled")?,
        status: WebhookStatus::parse(&status).ok_or_else(|| bad("status"))?,
        cursor: row.int("cursor")?,
        in_flight_through: row.maybe_int("in_flight_through")?,
        checkpoint_cursor: row.maybe_int("checkpoint_cursor")?,
        checkpoint_stream: row.int("checkpoint_stream")?,
        last_attempt: maybe_millis(row, "last_attempt_at")?.map(|at| LastAttempt {
            at,
            code: code.and_then(|c| u16::try_from(c).ok()),
            message: message.unwrap_or_default(),
        }),
        consecutive_failures: u32::try_from(row.int("consecutive_failures")?)
            .map_err(|_| bad("failure count"))?,
        next_attempt_at: maybe_millis(row, "next_attempt_at")?,
        updated_at: millis(row, "updated_at")?,
    })
}

pub(super) fn attempt(row: &impl Columns) -> Result<LoggedAttempt> {
    let bad = |what: &str| corrupt("delivery attempt", what);
    let kind = row.text("kind")?;
    let code = row.maybe_int("response_code")?;
    let delivered = row.maybe_flag("delivered")?;
    Ok(LoggedAttempt {
        id: row.int("id")?,
        attempt: DeliveryAttempt {
            at: millis(row, "at")?,
            kind: AttemptKind::parse(&kind).ok_or_else(|| bad("kind"))?,
            endpoint: row.text("endpoint")?,
            events: u32::try_from(row.int("events")?).map_err(|_| bad("event count"))?,
            first_seq: row.int("first_seq")?,
            last_seq: row.int("last_seq")?,
            code: code.and_then(|c| u16::try_from(c).ok()),
            message: row.text("message")?,
            duration_ms: u64::try_from(row.int("duration_ms")?).map_err(|_| bad("duration"))?,
            // Rows from before SQLite's migration 0015: a 2xx was the only way to be delivered.
            delivered: delivered.unwrap_or(code.is_some_and(|c| (200..300).contains(&c))),
        },
    })
}

/// A replay job (or a finished one from the history) joined with its scope.
pub(super) fn replay_job(row: &impl Columns) -> Result<ReplayJob> {
    let status = row.text("status")?;
    let count = |column: &str| -> Result<u64> {
        u64::try_from(row.int(column)?).map_err(|_| corrupt("replay job", column))
    };
    Ok(ReplayJob {
        scope: scope(row, "replay job")?,
        id: uuid(row, "id", "replay job")?,
        start_at: millis(row, "start_at")?,
        end_at: millis(row, "end_at")?,
        status: ReplayStatus::parse(&status).ok_or_else(|| corrupt("replay job", "status"))?,
        updated_at: millis(row, "updated_at")?,
        events_total: row
            .maybe_int("events_total")?
            .map(|n| u64::try_from(n).map_err(|_| corrupt("replay job", "events_total")))
            .transpose()?,
        events_sent: count("events_sent")?,
        batches_sent: count("batches_sent")?,
        started_at: maybe_millis(row, "started_at")?,
        finished_at: maybe_millis(row, "finished_at")?,
        failure_reason: row.maybe_text("failure_reason")?,
        resume: row
            .maybe_int("resume_ts")?
            .zip(row.maybe_int("resume_seq")?),
        through_seq: row.maybe_int("through_seq")?,
    })
}

/// A stored event of `scope` from its columns, however they were read: row by row, or packed
/// into one value (`sqlite/packed.rs`).
pub(super) fn event(
    scope: &Scope,
    seq: i64,
    ts: i64,
    kind: i64,
    body: &[u8],
) -> Result<StoredEvent> {
    let columns = auditrelay_core::stored::Row {
        org_id: scope.org_id,
        region: &scope.region,
        portal_id: scope.portal_id,
        ts: Timestamp::from_millis(ts),
        kind,
    };
    let event = auditrelay_core::stored::decode_event(columns, body)
        .map_err(|e| StoreError::Corrupt(format!("event {seq}: {e}")))?;
    Ok(StoredEvent {
        seq,
        event,
        place: None,
    })
}

/// A refused event, with its event's time when the event is still stored (`event_ts`).
pub(super) fn refused(row: &impl Columns) -> Result<RefusedEvent> {
    Ok(RefusedEvent {
        seq: row.int("seq")?,
        event_ts: maybe_millis(row, "event_ts")?,
        refused_at: millis(row, "refused_at")?,
        endpoint: row.text("endpoint")?,
        reason: row.text("reason")?,
        replay_id: row
            .maybe_text("replay_id")?
            .map(|r| Uuid::try_parse(&r))
            .transpose()
            .map_err(|_| StoreError::Corrupt("invalid refused event replay id".into()))?,
    })
}

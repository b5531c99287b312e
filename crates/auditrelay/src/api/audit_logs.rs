//! `GET /v3/audit-logs`: Konnect's pull API, the org's audit events of the request's region,
//! oldest first, each entry signed (DECISIONS.md K5).
//!
//! Filters are Konnect's: `filter[ts][gte]` and `filter[ts][lte]` (RFC 3339, inclusive; by
//! default the retention window up to now) and `filter[type]`; pages are `page[size]` (1 to
//! 1000, default 20) with opaque cursors over the store's `(ts, seq)` order in `page[after]` and
//! `page[before]`. The `next` and `previous` links repeat the window the first page resolved,
//! so walking the pages reads one fixed window: without that, the self-audit events of the
//! walk itself (every request records its authentication and authorization) would keep
//! extending a window that ends "now", and the walk would never end.
//!
//! Each entry is the core's canonical signed entry, embedded in the body as written (a raw
//! JSON value), since re-serializing it could change the bytes a client verifies; the key is
//! the one that signs at the time of the request.

use auditrelay_core::format::pull::signed_pull_entries;
use auditrelay_core::{EventType, Permission, Timestamp};
use axum::Json;
use axum::extract::{RawQuery, State};
use serde::Serialize;
use serde_json::value::RawValue;
use utoipa::ToSchema;

use super::auth::Caller;
use super::error::{ApiError, InvalidParameter, Problem};
use super::pagination::{decode_cursor, encode_cursor};
use crate::clock;
use crate::state::AppState;
use crate::store::{EventQuery, StoredEvent};

const DEFAULT_SIZE: u32 = 20;
const MAX_SIZE: u32 = 1000;

const GTE: &str = "filter[ts][gte]";
const LTE: &str = "filter[ts][lte]";
const TYPE: &str = "filter[type]";
const SIZE: &str = "page[size]";
const AFTER: &str = "page[after]";
const BEFORE: &str = "page[before]";

/// A page of audit logs, as Konnect's `GetAuditLogs` response (no other members).
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogsPage {
    /// `AuditLog` entries (authentication, authorization or gateway_access), each with its
    /// `signature`: Ed25519 over the entry's canonical JSON without `signature`, base64url.
    #[schema(value_type = Vec<Object>)]
    pub data: Vec<Box<RawValue>>,
    pub meta: AuditLogsMeta,
}

/// Konnect's `CursorMeta`.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditLogsMeta {
    pub page: CursorMetaPage,
}

/// Konnect's `CursorMetaPage`: `next`, `previous` and `size` are always present.
#[derive(Debug, Serialize, ToSchema)]
pub struct CursorMetaPage {
    /// URI of the next page; `null` on the last page.
    pub next: Option<String>,
    /// URI of the previous page; `null` on the first page.
    pub previous: Option<String>,
    /// The requested page size.
    pub size: u32,
}

/// Where a page starts, as a position `(ts ms, seq)` in the store's order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Seek {
    First,
    After((i64, i64)),
    Before((i64, i64)),
}

/// The query, parsed; the time bounds not yet defaulted.
#[derive(Debug, PartialEq, Eq)]
struct PullQuery {
    gte: Option<Timestamp>,
    lte: Option<Timestamp>,
    event_type: Option<EventType>,
    size: u32,
    seek: Seek,
}

/// Get audit logs.
#[utoipa::path(
    get, path = "/v3/audit-logs", tag = "Audit Logs", operation_id = "get-audit-logs",
    description = "Returns the organization's audit logs of the request's region, oldest first, each signed.",
    params(
        ("page[size]" = Option<u32>, Query, description = "Entries per page, 1 to 1000 (default 20)"),
        ("page[after]" = Option<String>, Query, description = "Cursor from `meta.page.next`"),
        ("page[before]" = Option<String>, Query, description = "Cursor from `meta.page.previous`"),
        ("filter[ts][gte]" = Option<String>, Query, format = DateTime, description = "RFC 3339 lower bound (inclusive); defaults to the retention window before `filter[ts][lte]`"),
        ("filter[ts][lte]" = Option<String>, Query, format = DateTime, description = "RFC 3339 upper bound (inclusive); defaults to now"),
        ("filter[type]" = Option<String>, Query, description = "authentication, authorization or gateway_access; omit for all"),
    ),
    responses(
        (status = 200, body = AuditLogsPage),
        (status = 400, body = Problem, content_type = "application/problem+json"),
        (status = 401, body = Problem, content_type = "application/problem+json"),
        (status = 403, body = Problem, content_type = "application/problem+json"),
    ),
    security(("personalAccessToken" = []), ("systemAccountAccessToken" = [])),
)]
pub async fn get_audit_logs(
    State(state): State<AppState>,
    caller: Caller,
    RawQuery(query): RawQuery,
) -> Result<Json<AuditLogsPage>, ApiError> {
    caller.authorize(Permission::ReadAuditLogs, "audit-logs", "list")?;
    let region = caller.ctx.region()?.clone();
    let query = parse(query.as_deref())?;
    let now = clock::now();
    let lte = query.lte.unwrap_or(now);
    let retention_ms = i64::try_from(state.config.retention.window.as_millis()).unwrap_or(i64::MAX);
    let gte = query.gte.unwrap_or(lte.saturating_sub_millis(retention_ms));
    if gte > lte {
        return Err(ApiError::invalid(
            "Invalid query parameters",
            InvalidParameter::new(
                GTE,
                Some("invalid"),
                format!("must not be later than {LTE}"),
            )
            .with_source("query"),
        ));
    }

    let mut store_query = EventQuery {
        org_id: caller.principal.org_id,
        region,
        portal_id: None,
        ts_from: gte,
        ts_to: lte,
        event_type: query.event_type,
        after: None,
        through_seq: None,
        // One more than the page, to learn whether more lie beyond.
        limit: query.size + 1,
    };
    let size = query.size as usize;
    let (events, has_next, has_previous) = match query.seek {
        Seek::First | Seek::After(_) => {
            if let Seek::After(after) = query.seek {
                store_query.after = Some(after);
            }
            let mut events = state.store.list_events(&store_query).await?;
            let more = events.len() > size;
            events.truncate(size);
            (events, more, query.seek != Seek::First)
        }
        Seek::Before(before) => {
            let mut events = state.store.list_events_before(&store_query, before).await?;
            let more = events.len() > size;
            if more {
                events.remove(0);
            }
            (events, true, more)
        }
    };

    let key_of = |e: &StoredEvent| (e.event.ts.as_millis(), e.seq);
    // An empty page still links back to where it started, so a client can turn around.
    let next_anchor = events.last().map(key_of).or(match query.seek {
        Seek::Before(before) => Some(before),
        _ => None,
    });
    let previous_anchor = events.first().map(key_of).or(match query.seek {
        Seek::After(after) => Some(after),
        _ => None,
    });
    let link = |param: &str, anchor: (i64, i64)| {
        let mut pairs = vec![
            (GTE, gte.to_rfc3339_millis()),
            (LTE, lte.to_rfc3339_millis()),
        ];
        if let Some(kind) = query.event_type {
            pairs.push((TYPE, kind.as_str().to_owned()));
        }
        pairs.push((SIZE, query.size.to_string()));
        pairs.push((param, encode_cursor(&anchor)));
        let encoded = serde_urlencoded::to_string(&pairs).expect("pairs of strings encode");
        format!("{}?{encoded}", caller.ctx.facts.uri)
    };
    let page = CursorMetaPage {
        next: next_anchor
            .filter(|_| has_next)
            .map(|anchor| link(AFTER, anchor)),
        previous: previous_anchor
            .filter(|_| has_previous)
            .map(|anchor| link(BEFORE, anchor)),
        size: query.size,
    };

    // Signing is the expensive part (a page holds up to 1000 signatures, signed together,
    // DECISIONS.md S29): off the runtime.
    let keys = state.keys.snapshot().await;
    let key = keys.signing_key_at(now).key.clone();
    let data = tokio::task::spawn_blocking(move || {
        let entries = signed_pull_entries(events.iter().map(|stored| &stored.event), &key);
        (entries.into_iter())
            .map(|entry| {
                let text = String::from_utf8(entry).map_err(ApiError::internal)?;
                RawValue::from_string(text).map_err(ApiError::internal)
            })
            .collect::<Result<Vec<_>, ApiError>>()
    })
    .await
    .map_err(ApiError::internal)??;
    Ok(Json(AuditLogsPage {
        data,
        meta: AuditLogsMeta { page },
    }))
}

/// Reads the query string, reporting every bad parameter at once.
fn parse(query: Option<&str>) -> Result<PullQuery, ApiError> {
    let pairs: Vec<(String, String)> = serde_urlencoded::from_str(query.unwrap_or_default())
        .map_err(|_| {
            ApiError::invalid(
                "Invalid query string",
                InvalidParameter::new("query", None, "is not URL-encoded").with_source("query"),
            )
        })?;
    let mut parsed = PullQuery {
        gte: None,
        lte: None,
        event_type: None,
        size: DEFAULT_SIZE,
        seek: Seek::First,
    };
    let mut after = None;
    let mut before = None;
    let mut seen: Vec<&str> = Vec::new();
    let mut invalid = Vec::new();
    let mut bad = |parameter: InvalidParameter| invalid.push(parameter.with_source("query"));
    for (key, value) in &pairs {
        let known = [GTE, LTE, TYPE, SIZE, AFTER, BEFORE]
            .into_iter()
            .find(|k| *k == key.as_str());
        let Some(name) = known else {
            if key.starts_with("filter[") {
                bad(InvalidParameter::new(
                    key,
                    Some("unknown_property"),
                    format!("is not a filter (use {GTE}, {LTE} or {TYPE})"),
                ));
            } else if key.starts_with("page[") {
                bad(InvalidParameter::new(
                    key,
                    Some("unknown_property"),
                    format!("is not a pagination parameter (use {SIZE}, {AFTER} or {BEFORE})"),
                ));
            }
            continue;
        };
        if seen.contains(&name) {
            bad(InvalidParameter::new(
                name,
                Some("invalid"),
                "is given more than once",
            ));
            continue;
        }
        seen.push(name);
        // Konnect allows empty values for the page parameters: they mean "not given".
        if value.is_empty() && [SIZE, AFTER, BEFORE].contains(&name) {
            continue;
        }
        let time = |value: &str| Timestamp::parse_rfc3339(value.trim());
        match name {
            GTE | LTE => match time(value) {
                Some(t) if name == GTE => parsed.gte = Some(t),
                Some(t) => parsed.lte = Some(t),
                None => bad(InvalidParameter::new(
                    name,
                    Some("is_date_time"),
                    "must be an RFC 3339 date-time, such as 2026-11-20T10:00:00Z",
                )),
            },
            TYPE => match EventType::parse(value) {
                Some(kind) => parsed.event_type = Some(kind),
                None => bad(InvalidParameter::choice(
                    name,
                    EventType::ALL.map(EventType::as_str),
                )),
            },
            SIZE => match value.parse::<u32>() {
                Ok(n) if (1..=MAX_SIZE).contains(&n) => parsed.size = n,
                _ => bad(InvalidParameter::new(
                    name,
                    Some("invalid"),
                    format!("must be an integer from 1 to {MAX_SIZE}"),
                )),
            },
            _ => match decode_cursor::<(i64, i64)>(value) {
                Some(cursor) if name == AFTER => after = Some(cursor),
                Some(cursor) => before = Some(cursor),
                None => bad(InvalidParameter::new(
                    name,
                    Some("invalid"),
                    "is not a cursor from a previous page",
                )),
            },
        }
    }
    parsed.seek = match (after, before) {
        (Some(_), Some(_)) => {
            bad(InvalidParameter::new(
                BEFORE,
                Some("invalid"),
                format!("cannot be combined with {AFTER}"),
            ));
            Seek::First
        }
        (Some(after), None) => Seek::After(after),
        (None, Some(before)) => Seek::Before(before),
        (None, None) => Seek::First,
    };
    if invalid.is_empty() {
        Ok(parsed)
    } else {
        Err(ApiError::bad_request("Invalid query parameters", invalid))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fields(query: &str) -> Vec<String> {
        let err = parse(Some(query)).expect_err(query);
        err.problem()
            .invalid_parameters
            .into_iter()
            .map(|p| p.field)
            .collect()
    }

    #[test]
    fn parses_filters_and_pages() {
        let cursor = encode_cursor(&(1_700_000_000_000_i64, 42_i64));
        let q = parse(Some(&format!(
            "filter%5Bts%5D%5Bgte%5D=2026-11-20T10:00:00Z&filter[ts][lte]=2026-11-20T12:00:00.5%2B01:00\
             &filter[type]=gateway_access&page[size]=1000&page[after]={cursor}&other=ignored"
        )))
        .unwrap();
        assert_eq!(
            q,
            PullQuery {
                gte: Timestamp::parse_rfc3339("2026-11-20T10:00:00Z"),
                lte: Timestamp::parse_rfc3339("2026-11-20T11:00:00.500Z"),
                event_type: Some(EventType::Access),
                size: 1000,
                seek: Seek::After((1_700_000_000_000, 42)),
            }
        );
        let q = parse(Some("page[size]=&page[after]=")).unwrap();
        assert_eq!((q.size, q.seek), (DEFAULT_SIZE, Seek::First));
        assert_eq!(parse(None).unwrap().size, DEFAULT_SIZE);
        let q = parse(Some(&format!("page[before]={cursor}"))).unwrap();
        assert_eq!(q.seek, Seek::Before((1_700_000_000_000, 42)));
    }

    #[test]
    fn names_every_bad_parameter() {
        assert_eq!(fields("filter[ts][gte]=yesterday"), [GTE]);
        assert_eq!(fields("filter[type]=login"), [TYPE]);
        assert_eq!(fields("page[size]=0"), [SIZE]);
        assert_eq!(fields("page[size]=1001"), [SIZE]);
        assert_eq!(fields("page[size]=-1"), [SIZE]);
        assert_eq!(fields("page[after]=bm9wZQ"), [AFTER]);
        assert_eq!(fields("filter[actor]=x"), ["filter[actor]"]);
        assert_eq!(fields("page[number]=2"), ["page[number]"]);
        assert_eq!(
            fields("filter[type]=authorization&filter[type]=authentication"),
            [TYPE]
        );
        let c = encode_cursor(&(1_i64, 1_i64));
        assert_eq!(
            fields(&format!("page[after]={c}&page[before]={c}")),
            [BEFORE]
        );
        assert_eq!(
            fields("filter[ts][lte]=never&page[size]=x&filter[type]=all"),
            [LTE, SIZE, TYPE]
        );
    }

    #[test]
    fn cursors_round_trip() {
        let key = (1_700_000_000_123, 9_007_199_254_740_993);
        assert_eq!(decode_cursor::<(i64, i64)>(&encode_cursor(&key)), Some(key));
        assert_eq!(decode_cursor::<(i64, i64)>("!!"), None);
    }
}

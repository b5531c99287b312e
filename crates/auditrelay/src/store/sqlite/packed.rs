//! Range reads of events in one row: the page's rows packed into one value by SQLite.
//!
//! sqlx hands each row of a result from its worker thread to the reading task through a
//! channel, and the reading task, with nothing else to do, is woken for every one: a batch of
//! 1,000 events cost 1,000 wake-ups and as many copies of each row's values. A read that asks
//! SQLite for the page as one `group_concat` value is handed over once ([`PAGE_ROWS`] rows at
//! most, to bound the value's size). Its frames are `seq ts kind length ` in decimal, then
//! `length` bytes of the body: the numbers say where each body ends, so a body may hold any
//! bytes. Delivery lanes, replay jobs and the pull API read their pages this way
//! (docs/PERFORMANCE.md, session 18).

use crate::store::{Result, Scope, StoreError, StoredEvent, rows};

/// `SELECT seq, ts, kind, body …` (with its `ORDER BY` and `LIMIT`) as a query of one value
/// holding every row it selects, framed for [`unpack`]; `NULL` when it selects none.
///
/// The frames come in no particular order (`group_concat` does not promise the subquery's),
/// so the caller sorts what [`unpack`] returns. `octet_length`, not `length`: the frame
/// counts bytes, and `length` counts the characters of a body stored as text.
macro_rules! packed {
    ($select:literal) => {
        concat!(
            "SELECT group_concat(printf('%d %d %d %d ', seq, ts, kind, octet_length(body)) || body, '') FROM (",
            $select,
            ")"
        )
    };
}
pub(super) use packed;

/// One row of a packed value; the body is borrowed from it.
#[derive(Debug, PartialEq, Eq)]
struct Frame<'a> {
    seq: i64,
    ts: i64,
    kind: i64,
    body: &'a [u8],
}

/// The most rows one packed value holds. One value may hold at most 1 GB (SQLite's
/// `SQLITE_MAX_LENGTH`) and is copied twice on its way to us (by sqlx, then into our buffer);
/// an event's body can reach about 200 KB (four texts of 8 KiB written as `\u00XX` escapes), so
/// 256 of them stay near 50 MB. A typical page of 256 is about 100 KB, and the four statements
/// of a batch of 1,000 cost far less than the thousand hand-overs they replace.
pub(super) const PAGE_ROWS: u32 = 256;

/// Up to `limit` events, read [`PAGE_ROWS`] at a time: `page(from, rows)` reads, packed, the
/// next `rows` events from position `from` on, and `next` gives the position after a full page.
/// The pages come in the order read; the caller sorts them.
pub(super) async fn in_pages<P: Copy, F: Future<Output = Result<Vec<StoredEvent>>>>(
    limit: u32,
    mut from: P,
    page: impl Fn(P, u32) -> F,
    next: impl Fn(&[StoredEvent]) -> P,
) -> Result<Vec<StoredEvent>> {
    let mut events = Vec::new();
    let mut left = limit;
    while left > 0 {
        let rows = left.min(PAGE_ROWS);
        let read = page(from, rows).await?;
        let full = read.len() == rows as usize;
        if full {
            from = next(&read);
        }
        events.extend(read);
        if !full {
            break;
        }
        left -= rows;
    }
    Ok(events)
}

/// The events of `scope` in a value read with [`packed!`], in no particular order.
pub(super) fn unpack(scope: &Scope, packed: Option<&[u8]>) -> Result<Vec<StoredEvent>> {
    frames(packed.unwrap_or_default())?
        .into_iter()
        .map(|f| rows::event(scope, f.seq, f.ts, f.kind, f.body))
        .collect()
}

/// The frames of a packed value, in its order.
fn frames(mut rest: &[u8]) -> Result<Vec<Frame<'_>>> {
    let mut frames = Vec::new();
    while !rest.is_empty() {
        let seq = number(&mut rest)?;
        let ts = number(&mut rest)?;
        let kind = number(&mut rest)?;
        let len = usize::try_from(number(&mut rest)?)
            .ok()
            .filter(|len| *len <= rest.len())
            .ok_or_else(|| damaged("a body longer than what is left"))?;
        let (body, after) = rest.split_at(len);
        rest = after;
        frames.push(Frame {
            seq,
            ts,
            kind,
            body,
        });
    }
    Ok(frames)
}

/// The decimal number at the front of `rest`, and the space after it, taken off.
fn number(rest: &mut &[u8]) -> Result<i64> {
    let space = rest
        .iter()
        .position(|b| *b == b' ')
        .ok_or_else(|| damaged("a number without its space"))?;
    let (digits, after) = rest.split_at(space);
    let n = std::str::from_utf8(digits)
        .ok()
        .and_then(|d| d.parse().ok())
        .ok_or_else(|| damaged("not a number"))?;
    *rest = &after[1..];
    Ok(n)
}

/// A packed value that is not what [`packed!`] writes: the database was changed by hand.
fn damaged(what: &str) -> StoreError {
    StoreError::Corrupt(format!("a packed read of events holds {what}"))
}

#[cfg(test)]
mod tests {
    use auditrelay_core::{Event, OrgId, Region, Timestamp};
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;
    use crate::fixtures::event;
    use crate::store::EventQuery;
    use crate::store::sqlite::SqliteStore;

    /// Bodies that would fool framing by separators: spaces, digits, newlines, a NUL, bytes
    /// that are no UTF-8, a body stored as text with characters of several bytes, an empty one.
    #[tokio::test]
    async fn a_packed_read_gives_back_every_row_byte_for_byte() {
        let pool = SqlitePoolOptions::new()
            .max_connections(1)
            .connect("sqlite::memory:")
            .await
            .unwrap();
        sqlx::query(
            "CREATE TABLE events (seq INTEGER PRIMARY KEY, ts INTEGER, kind INTEGER, body BLOB)",
        )
        .execute(&pool)
        .await
        .unwrap();
        let bodies: Vec<Vec<u8>> = vec![
            b"12 34 5 6 ".to_vec(),
            b"line\nnext\0after".to_vec(),
            vec![0xff, 0xfe, b' ', 0x80],
            Vec::new(),
            br#"{"p":"x"}"#.to_vec(),
        ];
        for (i, body) in bodies.iter().enumerate() {
            let seq = i64::try_from(i).unwrap() + 1;
            sqlx::query("INSERT INTO events VALUES (?, ?, ?, ?)")
                .bind(seq)
                .bind(-5 + seq * 1_000_000_000_000)
                .bind(seq % 3)
                .bind(body)
                .execute(&pool)
                .await
                .unwrap();
        }
        sqlx::query("INSERT INTO events VALUES (6, 7, 1, 'é → ✓')")
            .execute(&pool)
            .await
            .unwrap();
        // The extremes `printf('%d')` must write in full, and a time before 1970.
        for (seq, ts) in [(7, i64::MIN), (8, i64::MAX), (9, -62_135_596_800_000)] {
            sqlx::query("INSERT INTO events VALUES (?, ?, -1, x'20')")
                .bind(seq)
                .bind(ts)
                .execute(&pool)
                .await
                .unwrap();
        }

        let packed: Option<Vec<u8>> = sqlx::query_scalar(packed!(
            "SELECT seq, ts, kind, body FROM events ORDER BY seq"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        let mut got = frames(packed.as_deref().unwrap()).unwrap();
        got.sort_by_key(|f| f.seq);

        let mut want: Vec<Frame<'_>> = bodies
            .iter()
            .enumerate()
            .map(|(i, body)| {
                let seq = i64::try_from(i).unwrap() + 1;
                Frame {
                    seq,
                    ts: -5 + seq * 1_000_000_000_000,
                    kind: seq % 3,
                    body,
                }
            })
            .collect();
        want.push(Frame {
            seq: 6,
            ts: 7,
            kind: 1,
            body: "é → ✓".as_bytes(),
        });
        for (seq, ts) in [(7, i64::MIN), (8, i64::MAX), (9, -62_135_596_800_000)] {
            want.push(Frame {
                seq,
                ts,
                kind: -1,
                body: b" ",
            });
        }
        assert_eq!(got, want);

        let none: Option<Vec<u8>> = sqlx::query_scalar(packed!(
            "SELECT seq, ts, kind, body FROM events WHERE seq > 99"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(none, None);
    }

    /// Reads longer than a page come back whole and in order, forward and backward, with
    /// events stored out of time order (so `seq` order is not event-time order).
    #[tokio::test]
    async fn reads_longer_than_a_page_are_whole_and_in_order() {
        let dir = tempfile::tempdir().unwrap();
        let store = SqliteStore::open(&dir.path().join("auditrelay.db"))
            .await
            .unwrap();
        let org = OrgId::new_v4();
        let n = 3 * PAGE_ROWS as usize + 7;
        // Event times go back and forth, and repeat, as `seq` rises.
        let ts = |i: usize| 1_750_000_000_000 + i64::try_from((i * 7919) % 500).unwrap();
        let events: Vec<Event> = (0..n)
            .map(|i| event(org, Timestamp::from_millis(ts(i)), format!("t{i}")))
            .collect();
        store.append_events(events).await.unwrap();

        let scope = Scope {
            org_id: org,
            region: Region::parse("us").unwrap(),
            portal_id: None,
        };
        let all = (store.events_to_deliver(&scope, 0, None, u32::try_from(n).unwrap() + 10))
            .await
            .unwrap();
        assert_eq!(all.len(), n);
        let traces = |events: &[StoredEvent]| -> Vec<String> {
            events
                .iter()
                .map(|e| e.event.trace_id.clone().unwrap())
                .collect()
        };
        let mut by_time = all.clone();
        by_time.sort_by_key(|e| (e.event.ts, e.seq));

        let limit = 2 * PAGE_ROWS + 5;
        let ahead = store
            .events_to_deliver(&scope, 0, None, limit)
            .await
            .unwrap();
        let want: Vec<String> = (0..limit as usize).map(|i| format!("t{i}")).collect();
        assert_eq!(traces(&ahead), want, "in seq order");

        let query = EventQuery {
            org_id: org,
            region: scope.region.clone(),
            portal_id: None,
            ts_from: Timestamp::from_millis(0),
            ts_to: Timestamp::from_millis(i64::MAX / 2),
            event_type: None,
            after: None,
            through_seq: None,
            limit,
        };
        let forward = store.list_events(&query).await.unwrap();
        assert_eq!(traces(&forward), traces(&by_time[..limit as usize]));

        let end = by_time.last().unwrap();
        let before = (end.event.ts.as_millis() + 1, 0);
        let backward = store.list_events_before(&query, before).await.unwrap();
        assert_eq!(traces(&backward), traces(&by_time[n - limit as usize..]));
    }

    #[test]
    fn a_damaged_packed_value_is_corrupt_not_a_panic() {
        for damaged in [
            &b"1 2 3 10 short"[..],
            b"1 2 3",
            b"1 2 x 0 ",
            b"1 2 3 -1 ",
            b"1 2 3 0 4 5 6 ",
        ] {
            assert!(
                matches!(frames(damaged), Err(StoreError::Corrupt(_))),
                "{}",
                String::from_utf8_lossy(damaged)
            );
        }
        assert_eq!(
            frames(b"1 2 3 0 4 5 6 1 x").unwrap(),
            vec![
                Frame {
                    seq: 1,
                    ts: 2,
                    kind: 3,
                    body: b""
                },
                Frame {
                    seq: 4,
                    ts: 5,
                    kind: 6,
                    body: b"x"
                },
            ]
        );
    }
}

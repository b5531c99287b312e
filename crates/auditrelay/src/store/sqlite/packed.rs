//! Range reads of events in one row: the page's rows packed into one value by SQLite.
//!
//! sqlx hands each row of a result from its worker thread to the reading task through a
//! channel, and the reading task, with nothing else to do, is woken for every one: a batch of
//! 1,000 events cost 1,000 wake-ups and as many copies of each row's values. A read that asks
//! SQLite for the page as one `group_concat` value is handed over once. Its frames are
//! `seq ts kind length ` in decimal, then `length` bytes of the body: the numbers say where
//! each body ends, so a body may hold any bytes. Delivery lanes, replay jobs and the pull API
//! read their pages this way (docs/PERFORMANCE.md, session 18).

use auditrelay_core::Timestamp;
use auditrelay_core::stored;

use crate::store::{Result, Scope, StoreError, StoredEvent};

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

/// The events of `scope` in a value read with [`packed!`], in no particular order.
pub(super) fn unpack(scope: &Scope, packed: Option<&[u8]>) -> Result<Vec<StoredEvent>> {
    let frames = frames(packed.unwrap_or_default())?;
    frames
        .into_iter()
        .map(|frame| {
            let columns = stored::Row {
                org_id: scope.org_id,
                region: &scope.region,
                portal_id: scope.portal_id,
                ts: Timestamp::from_millis(frame.ts),
                kind: frame.kind,
            };
            let event = stored::decode_event(columns, frame.body)
                .map_err(|e| StoreError::Corrupt(format!("event {}: {e}", frame.seq)))?;
            Ok(StoredEvent {
                seq: frame.seq,
                event,
                place: None,
            })
        })
        .collect()
}

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

fn damaged(what: &str) -> StoreError {
    StoreError::Corrupt(format!("a packed read of events holds {what}"))
}

#[cfg(test)]
mod tests {
    use sqlx::sqlite::SqlitePoolOptions;

    use super::*;

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
        assert_eq!(got, want);

        let none: Option<Vec<u8>> = sqlx::query_scalar(packed!(
            "SELECT seq, ts, kind, body FROM events WHERE seq > 99"
        ))
        .fetch_one(&pool)
        .await
        .unwrap();
        assert_eq!(none, None);
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

//! Which errors are faults of the store's own — what clients are told with 507 or 503, never
//! 500 or 202 (DECISIONS.md S2) — for each backend: SQLite's result codes, PostgreSQL's
//! SQLSTATEs, and failures below either (a file, a connection).

use sqlx::error::DatabaseError;
use sqlx::postgres::PgDatabaseError;
use sqlx::sqlite::SqliteError;

use super::FaultKind;

/// Why the store could not do something, when the reason is the store's and not the request's.
pub(super) fn fault_kind(e: &sqlx::Error) -> Option<FaultKind> {
    match e {
        sqlx::Error::Database(db) => sqlite(db.as_ref()).or_else(|| postgres(db.as_ref())),
        sqlx::Error::Io(io) => Some(match io.kind() {
            std::io::ErrorKind::StorageFull => FaultKind::Full,
            // PostgreSQL's connection, refused, reset or cut: the server is down or restarting.
            std::io::ErrorKind::ConnectionRefused
            | std::io::ErrorKind::ConnectionReset
            | std::io::ErrorKind::ConnectionAborted
            | std::io::ErrorKind::BrokenPipe
            | std::io::ErrorKind::NotConnected
            | std::io::ErrorKind::UnexpectedEof
            | std::io::ErrorKind::TimedOut => FaultKind::NoAnswer,
            _ => FaultKind::Io,
        }),
        // A connection cut mid-message reads as a protocol error.
        sqlx::Error::Tls(_) | sqlx::Error::PoolClosed | sqlx::Error::Protocol(_) => {
            Some(FaultKind::NoAnswer)
        }
        sqlx::Error::WorkerCrashed => Some(FaultKind::Io),
        // No connection within the pool's timeout: every one stayed busy, or (PostgreSQL) the
        // server refused new ones all along, as a stopped server does.
        sqlx::Error::PoolTimedOut => Some(FaultKind::NoAnswer),
        _ => None,
    }
}

/// SQLite's primary result code (the low byte of the extended code).
fn sqlite(db: &dyn DatabaseError) -> Option<FaultKind> {
    // https://www.sqlite.org/rescode.html
    const BUSY: i64 = 5;
    const LOCKED: i64 = 6;
    const READONLY: i64 = 8;
    const IOERR: i64 = 10;
    const FULL: i64 = 13;
    const CANTOPEN: i64 = 14;
    let db = db.try_downcast_ref::<SqliteError>()?;
    let code: i64 = db.code()?.parse().ok()?;
    match code & 0xff {
        FULL => Some(FaultKind::Full),
        IOERR | CANTOPEN => Some(FaultKind::Io),
        READONLY => Some(FaultKind::ReadOnly),
        BUSY | LOCKED => Some(FaultKind::Busy),
        _ => None,
    }
}

/// PostgreSQL's SQLSTATE (https://www.postgresql.org/docs/current/errcodes-appendix.html).
fn postgres(db: &dyn DatabaseError) -> Option<FaultKind> {
    let db = db.try_downcast_ref::<PgDatabaseError>()?;
    let code = db.code();
    Some(match code {
        "53100" => FaultKind::Full,
        "58030" => FaultKind::Io,
        // After a failover, a node still connected to the old primary, now a standby.
        "25006" => FaultKind::ReadOnly,
        // Class 57: shutting down, starting up, a statement cancelled or timed out, a session
        // closed for idling. Class 08: the connection failed. Class 28 (credentials refused, a
        // rotated password) and 3D000 (no such database): the operator's to fix, not the
        // request's.
        _ if code.starts_with("57") || code.starts_with("08") || code.starts_with("28") => {
            FaultKind::NoAnswer
        }
        "3D000" | "25P03" => FaultKind::NoAnswer,
        // Out of memory or connections; a serialization failure or deadlock, which a retry
        // resolves; a lock not taken in time.
        _ if code.starts_with("53") => FaultKind::Busy,
        "40001" | "40P01" | "55P03" => FaultKind::Busy,
        _ => return None,
    })
}

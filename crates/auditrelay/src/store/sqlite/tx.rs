//! Transactions begun and ended with plain `BEGIN IMMEDIATE` / `COMMIT` / `ROLLBACK`, so that
//! "committed" is something SQLite itself said, never a driver's bookkeeping.
//!
//! sqlx's `Transaction` counts nesting in the driver and turns a `begin` at depth > 0 into a
//! `SAVEPOINT` and its commit into `RELEASE SAVEPOINT`. The count changes only when a
//! statement succeeds, and SQLite may roll a transaction back by itself (a full disk, an I/O
//! error): the driver's `ROLLBACK` then fails ("no transaction is active") and the count stays
//! at 1 with no transaction open. The next `begin` is a `SAVEPOINT` that opens a transaction of
//! its own; if a statement in it fails with only that statement undone, the driver's
//! `ROLLBACK TO SAVEPOINT` succeeds but leaves the transaction open (that is what `ROLLBACK TO`
//! does), and from then on every "commit" releases an inner savepoint of a transaction that never
//! commits. Ingest answered 202 for events that were never written, until a restart lost them.
//!
//! Here there is no count to disagree with SQLite: a plain `BEGIN` fails if a transaction is
//! open, and a plain `COMMIT` succeeds only by ending the one transaction there is, after its
//! fsync (`synchronous=FULL`). Whenever the state of a connection is in doubt, it is not
//! repaired but closed (closing rolls back whatever is open) and another one opened.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::sqlite::{SqliteConnection, SqlitePool};
use sqlx::{Executor, Sqlite};

use crate::store::Result;

/// Opens a write transaction, taking SQLite's write lock now rather than at the first write
/// (where a deferred transaction could fail with `SQLITE_BUSY` half-way). Fails, changing
/// nothing, when a transaction is already open on `conn`.
pub(super) async fn begin(conn: &mut SqliteConnection) -> Result<()> {
    conn.execute("BEGIN IMMEDIATE").await?;
    Ok(())
}

/// Commits the open transaction: `Ok` means it is durable and the connection is outside any
/// transaction. On `Err` the transaction may still be open; call [`rollback`] or close the
/// connection.
pub(super) async fn commit(conn: &mut SqliteConnection) -> Result<()> {
    conn.execute("COMMIT").await?;
    Ok(())
}

/// Ends whatever transaction is open. `Ok` means the connection is certainly outside any
/// transaction. `Err` (including SQLite's "no transaction is active", after it rolled back by
/// itself) means its state is not known, and the connection must be closed.
pub(super) async fn rollback(conn: &mut SqliteConnection) -> Result<()> {
    conn.execute("ROLLBACK").await?;
    Ok(())
}

/// A write transaction on a pool connection. Dropped without [`PoolTx::commit`] (an error
/// returned with `?`, a cancelled request), its connection is closed instead of going back to
/// the pool, which rolls the transaction back and leaves no connection of unknown state behind.
pub(super) struct PoolTx {
    conn: PoolConnection<Sqlite>,
    open: bool,
}

impl PoolTx {
    pub async fn begin(pool: &SqlitePool) -> Result<Self> {
        let mut tx = Self {
            conn: pool.acquire().await?,
            open: true,
        };
        begin(&mut tx.conn).await?;
        Ok(tx)
    }

    pub async fn commit(mut self) -> Result<()> {
        commit(&mut self.conn).await?;
        self.open = false;
        Ok(())
    }

    /// Undoes the transaction, for a write that found nothing to change (a 404, a missing
    /// reference) and returns early; if even that fails, the connection is closed on drop.
    pub async fn rollback(mut self) {
        if rollback(&mut self.conn).await.is_ok() {
            self.open = false;
        }
    }
}

impl Deref for PoolTx {
    type Target = SqliteConnection;

    fn deref(&self) -> &SqliteConnection {
        &self.conn
    }
}

impl DerefMut for PoolTx {
    fn deref_mut(&mut self) -> &mut SqliteConnection {
        &mut self.conn
    }
}

impl Drop for PoolTx {
    fn drop(&mut self) {
        if self.open {
            self.conn.close_on_drop();
        }
    }
}

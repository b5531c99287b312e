//! Transactions begun and ended with plain `BEGIN` / `COMMIT`, as on SQLite (DECISIONS.md S1):
//! "committed" is what PostgreSQL said, and a connection whose state is in doubt is closed,
//! never repaired.
//!
//! One difference matters here: PostgreSQL answers `COMMIT` in a transaction that an error
//! aborted by rolling it back, without an error. Nothing here commits after an error (every
//! failed statement returns early with `?`, and the dropped transaction closes its connection),
//! so a `COMMIT` that succeeds is one that committed.

use std::ops::{Deref, DerefMut};

use sqlx::pool::PoolConnection;
use sqlx::postgres::{PgConnection, PgPool};
use sqlx::{Executor, Postgres};

use crate::store::Result;

/// A transaction on a pool connection. Dropped without [`PoolTx::commit`] (an error returned
/// with `?`, a cancelled request), its connection is closed instead of going back to the pool,
/// which rolls the transaction back and leaves no connection of unknown state behind.
pub(super) struct PoolTx {
    conn: PoolConnection<Postgres>,
    open: bool,
}

impl PoolTx {
    pub async fn begin(pool: &PgPool) -> Result<Self> {
        // Counted open before `BEGIN` is sent: a `BEGIN` that fails or is cancelled after it
        // left closes the connection, rather than return one to the pool inside a transaction.
        let mut tx = Self {
            conn: pool.acquire().await?,
            open: true,
        };
        tx.conn.execute("BEGIN").await?;
        Ok(tx)
    }

    /// `Ok` means durable (with the session's `synchronous_commit`) and visible to others.
    pub async fn commit(mut self) -> Result<()> {
        self.conn.execute("COMMIT").await?;
        self.open = false;
        Ok(())
    }

    /// Undoes the transaction, for a write that found nothing to do (a lost race) and returns
    /// early; the connection goes back to the pool. If even that fails, it is closed on drop.
    pub async fn rollback(mut self) {
        if self.conn.execute("ROLLBACK").await.is_ok() {
            self.open = false;
        }
    }
}

impl Deref for PoolTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        &self.conn
    }
}

impl DerefMut for PoolTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
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

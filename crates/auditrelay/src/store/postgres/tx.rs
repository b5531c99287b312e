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
    /// `None` only once [`PoolTx::commit_keeping`] has handed it back.
    conn: Option<PoolConnection<Postgres>>,
    open: bool,
}

impl PoolTx {
    pub async fn begin(pool: &PgPool) -> Result<Self> {
        let mut conn = pool.acquire().await?;
        conn.execute("BEGIN").await?;
        Ok(Self {
            conn: Some(conn),
            open: true,
        })
    }

    /// `Ok` means durable (with the session's `synchronous_commit`) and visible to others.
    pub async fn commit(self) -> Result<()> {
        self.commit_keeping().await.map(drop)
    }

    /// Commits, and hands the connection back (outside any transaction) for what follows.
    pub async fn commit_keeping(mut self) -> Result<PoolConnection<Postgres>> {
        self.execute_commit().await?;
        self.open = false;
        Ok(self.conn.take().expect("a transaction has its connection"))
    }

    async fn execute_commit(&mut self) -> Result<()> {
        self.deref_mut().execute("COMMIT").await?;
        Ok(())
    }
}

impl Deref for PoolTx {
    type Target = PgConnection;

    fn deref(&self) -> &PgConnection {
        self.conn
            .as_ref()
            .expect("a transaction has its connection")
    }
}

impl DerefMut for PoolTx {
    fn deref_mut(&mut self) -> &mut PgConnection {
        self.conn
            .as_mut()
            .expect("a transaction has its connection")
    }
}

impl Drop for PoolTx {
    fn drop(&mut self) {
        if self.open
            && let Some(conn) = &mut self.conn
        {
            conn.close_on_drop();
        }
    }
}

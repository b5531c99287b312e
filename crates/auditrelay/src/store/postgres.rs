//! The PostgreSQL backend, for several `auditrelay serve` processes sharing one database
//! (DECISIONS.md S19). It is being built record by record and is not yet a [`super::Store`]
//! variant: so far it holds events, with the rule that makes several writers safe for delivery
//! (in each scope, `seq` order is commit order; `postgres/events.rs`).
//!
//! Its migrations are its own (`migrations/postgres`), embedded and applied at open; sqlx holds
//! PostgreSQL's advisory lock while it migrates, so nodes started together apply each once.

mod events;
mod tx;

use sqlx::ConnectOptions;
use sqlx::postgres::{PgConnectOptions, PgPool, PgPoolOptions};
use std::str::FromStr;

use super::{Result, StoreError};

/// A handle to the shared database, cheap to share behind an `Arc`.
pub struct PgStore {
    pool: PgPool,
    scopes: events::ScopeIds,
    /// Made once by the migrations; with a `seq` and time, it makes an event's stable id.
    pub identity: uuid::Uuid,
}

impl PgStore {
    /// Connects to `url` (`postgres://…`), applies the migrations this binary has and the
    /// database lacks, and reads the store's identity.
    pub async fn open(url: &str) -> Result<Self> {
        let options = PgConnectOptions::from_str(url)?
            .application_name("auditrelay")
            .disable_statement_logging();
        let pool = PgPoolOptions::new()
            .max_connections(8)
            .connect_with(options)
            .await?;
        sqlx::migrate!("./migrations/postgres").run(&pool).await?;
        let identity: String = sqlx::query_scalar("SELECT id FROM store_identity")
            .fetch_one(&pool)
            .await?;
        let identity = uuid::Uuid::try_parse(&identity)
            .map_err(|_| StoreError::Corrupt("invalid store identity".into()))?;
        Ok(Self {
            pool,
            scopes: events::ScopeIds::default(),
            identity,
        })
    }

    pub async fn close(&self) {
        self.pool.close().await;
    }
}

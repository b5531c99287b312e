//! The installation's sealed keys on PostgreSQL (DECISIONS.md S22): the signing keys and the
//! secrets key, which every node reads and none keeps on its own disk. Sealing and opening
//! happen above the store (`keys/sealed.rs`); here they are bytes.

use sqlx::Row as _;
use sqlx::postgres::{PgConnection, PgRow};

use super::PgStore;
use super::tx::PoolTx;
use crate::store::{Result, SealedKey};

impl PgStore {
    /// Every signing key, in creation order.
    pub async fn signing_keys(&self) -> Result<Vec<SealedKey>> {
        let rows = sqlx::query(
            "SELECT number, kid, sealed_seed, created_at, active_from, retired_at
             FROM signing_keys ORDER BY number",
        )
        .fetch_all(&self.pool)
        .await?;
        let key = |row: &PgRow| -> std::result::Result<SealedKey, sqlx::Error> {
            Ok(SealedKey {
                number: row.try_get("number")?,
                kid: row.try_get("kid")?,
                sealed_seed: row.try_get("sealed_seed")?,
                created_at: row.try_get("created_at")?,
                active_from: row.try_get("active_from")?,
                retired_at: row.try_get("retired_at")?,
            })
        };
        Ok(rows
            .iter()
            .map(key)
            .collect::<std::result::Result<_, _>>()?)
    }

    /// What changes when a key is added or retired: number, activation and retirement of
    /// each, without the seeds.
    pub async fn signing_key_marks(&self) -> Result<Vec<(i32, i64, Option<i64>)>> {
        Ok(sqlx::query_as(
            "SELECT number, active_from, retired_at FROM signing_keys ORDER BY number",
        )
        .fetch_all(&self.pool)
        .await?)
    }

    /// Adds `key` unless its number is taken (`false`), and in the same transaction retires
    /// every older key not yet retired at `retire_others_at`.
    pub async fn add_signing_key(
        &self,
        key: &SealedKey,
        retire_others_at: Option<i64>,
    ) -> Result<bool> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        if !insert_signing_key(&mut tx, key).await? {
            return Ok(false);
        }
        if let Some(at) = retire_others_at {
            sqlx::query(
                "UPDATE signing_keys SET retired_at = $1
                 WHERE number < $2 AND retired_at IS NULL",
            )
            .bind(at)
            .bind(key.number)
            .execute(&mut *tx)
            .await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// Adds `keys` (numbered from 1) in one transaction if there is no signing key yet;
    /// `false` when there is one (another node's came first).
    pub async fn add_first_signing_keys(&self, keys: &[SealedKey]) -> Result<bool> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        // Nodes starting at once wait here for each other; the first one's keys stay.
        sqlx::query("LOCK TABLE signing_keys IN EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        let any: bool = sqlx::query_scalar("SELECT EXISTS (SELECT 1 FROM signing_keys)")
            .fetch_one(&mut *tx)
            .await?;
        if any {
            return Ok(false);
        }
        for key in keys {
            insert_signing_key(&mut tx, key).await?;
        }
        tx.commit().await?;
        Ok(true)
    }

    /// The sealed key `name`, if there is one.
    pub async fn sealed_key(&self, name: &str) -> Result<Option<Vec<u8>>> {
        Ok(
            sqlx::query_scalar("SELECT sealed FROM sealed_keys WHERE name = $1")
                .bind(name)
                .fetch_optional(&self.pool)
                .await?,
        )
    }

    /// Whether the database holds what keys made before sealed or signed: destinations (their
    /// credentials) or events (lines signed and delivered already).
    pub async fn holds_records(&self) -> Result<bool> {
        Ok(sqlx::query_scalar(
            "SELECT EXISTS (SELECT 1 FROM destinations) OR EXISTS (SELECT 1 FROM events)",
        )
        .fetch_one(&self.pool)
        .await?)
    }

    /// The sealed key `name`, storing `sealed` first if there is none: of nodes starting at
    /// once, the first one's is every node's.
    pub async fn sealed_key_or(&self, name: &str, sealed: &[u8]) -> Result<Vec<u8>> {
        sqlx::query(
            "INSERT INTO sealed_keys (name, sealed) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        )
        .bind(name)
        .bind(sealed)
        .execute(&self.pool)
        .await?;
        Ok(
            sqlx::query_scalar("SELECT sealed FROM sealed_keys WHERE name = $1")
                .bind(name)
                .fetch_one(&self.pool)
                .await?,
        )
    }
}

/// Inserts `key` unless its number is taken; whether it did.
async fn insert_signing_key(tx: &mut PgConnection, key: &SealedKey) -> Result<bool> {
    let inserted = sqlx::query(
        "INSERT INTO signing_keys (number, kid, sealed_seed, created_at, active_from, retired_at)
         VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT DO NOTHING",
    )
    .bind(key.number)
    .bind(&key.kid)
    .bind(&key.sealed_seed)
    .bind(key.created_at)
    .bind(key.active_from)
    .bind(key.retired_at)
    .execute(tx)
    .await?;
    Ok(inserted.rows_affected() == 1)
}

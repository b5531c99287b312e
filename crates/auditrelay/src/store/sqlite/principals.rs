//! Organizations, principals and tokens in SQLite.

use auditrelay_core::{OrgId, Timestamp};
use uuid::Uuid;

use super::SqliteStore;
use super::tx::PoolTx;
use crate::store::rows;
use crate::store::{NewToken, Org, Principal, Result, TokenRecord};

/// `SELECT <token columns> FROM tokens JOIN principals <tail>`, built at compile time so the
/// query stays a `&'static str`.
macro_rules! token_query {
    ($tail:literal) => {
        concat!(
            "SELECT t.id, t.prefix, t.created_at, t.expires_at, t.revoked_at, ",
            "p.id AS principal_id, p.org_id, p.name, p.kind, p.role, p.portal_id ",
            "FROM tokens t JOIN principals p ON p.id = t.principal_id ",
            $tail
        )
    };
}

impl SqliteStore {
    pub async fn ensure_default_org(&self, name: &str, now: Timestamp) -> Result<(Org, bool)> {
        let mut tx = PoolTx::begin(&self.pool).await?;
        let existing =
            sqlx::query("SELECT id, name, created_at FROM orgs ORDER BY created_at LIMIT 1")
                .fetch_optional(&mut *tx)
                .await?;
        if let Some(row) = existing {
            tx.rollback().await;
            return Ok((rows::org(&row)?, false));
        }
        let org = Org {
            id: OrgId::new_v4(),
            name: name.to_owned(),
            created_at: now,
        };
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES (?, ?, ?)")
            .bind(org.id.to_string())
            .bind(&org.name)
            .bind(now.as_millis())
            .execute(&mut *tx)
            .await?;
        tx.commit().await?;
        Ok((org, true))
    }

    pub async fn create_token(&self, t: NewToken) -> Result<TokenRecord> {
        let principal = Principal {
            id: Uuid::new_v4(),
            org_id: t.org_id,
            name: t.name,
            kind: t.kind,
            grant: t.grant,
        };
        let token_id = Uuid::new_v4();
        let mut tx = PoolTx::begin(&self.pool).await?;
        sqlx::query(
            "INSERT INTO principals (id, org_id, name, kind, role, portal_id, created_at)
             VALUES (?, ?, ?, ?, ?, ?, ?)",
        )
        .bind(principal.id.to_string())
        .bind(principal.org_id.to_string())
        .bind(&principal.name)
        .bind(principal.kind.as_str())
        .bind(principal.grant.role().as_str())
        .bind(principal.grant.portal().map(|p| p.to_string()))
        .bind(t.created_at.as_millis())
        .execute(&mut *tx)
        .await?;
        sqlx::query(
            "INSERT INTO tokens (id, principal_id, secret_hash, prefix, created_at, expires_at)
             VALUES (?, ?, ?, ?, ?, ?)",
        )
        .bind(token_id.to_string())
        .bind(principal.id.to_string())
        .bind(t.secret_hash.as_slice())
        .bind(&t.prefix)
        .bind(t.created_at.as_millis())
        .bind(t.expires_at.map(Timestamp::as_millis))
        .execute(&mut *tx)
        .await?;
        tx.commit().await?;
        Ok(TokenRecord {
            id: token_id,
            principal,
            prefix: t.prefix,
            created_at: t.created_at,
            expires_at: t.expires_at,
            revoked_at: None,
        })
    }

    pub async fn find_token(&self, secret_hash: &[u8; 32]) -> Result<Option<TokenRecord>> {
        const SQL: &str = token_query!("WHERE t.secret_hash = ?");
        let row = sqlx::query(SQL)
            .bind(secret_hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::token).transpose()
    }

    pub async fn list_tokens(&self, org: OrgId) -> Result<Vec<TokenRecord>> {
        const SQL: &str = token_query!("WHERE p.org_id = ? ORDER BY t.created_at, t.id");
        let rows = sqlx::query(SQL)
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::token).collect()
    }

    pub async fn revoke_token(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = ? WHERE id = ? AND revoked_at IS NULL")
                .bind(now.as_millis())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

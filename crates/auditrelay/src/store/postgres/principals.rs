//! Organizations, principals and tokens on PostgreSQL: the same records and answers as the
//! SQLite store's (`sqlite/principals.rs`), safe with several nodes writing at once.

use auditrelay_core::{OrgId, Timestamp};
use uuid::Uuid;

use super::PgStore;
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

/// The oldest org: the default one.
const OLDEST_ORG: &str = "SELECT id, name, created_at FROM orgs ORDER BY created_at, id LIMIT 1";

impl PgStore {
    pub async fn ensure_default_org(&self, name: &str, now: Timestamp) -> Result<(Org, bool)> {
        // Every start but the first finds the org here, without taking the lock below.
        if let Some(row) = sqlx::query(OLDEST_ORG).fetch_optional(&self.pool).await? {
            return Ok((rows::org(&row)?, false));
        }
        let mut tx = PoolTx::begin(&self.pool).await?;
        // Nodes started together on an empty database all get here, and no row exists yet for
        // them to lock: the table lock makes the look and the insert one step, so exactly one
        // org is made. SHARE ROW EXCLUSIVE conflicts with itself and with inserts, not with
        // reads or the foreign-key checks of other tables' writes. At READ COMMITTED the look
        // after it sees whatever the node that held it before committed.
        sqlx::query("LOCK TABLE orgs IN SHARE ROW EXCLUSIVE MODE")
            .execute(&mut *tx)
            .await?;
        if let Some(row) = sqlx::query(OLDEST_ORG).fetch_optional(&mut *tx).await? {
            // Nothing written: dropping the transaction rolls it back and releases the lock.
            drop(tx);
            return Ok((rows::org(&row)?, false));
        }
        let org = Org {
            id: OrgId::new_v4(),
            name: name.to_owned(),
            created_at: now,
        };
        sqlx::query("INSERT INTO orgs (id, name, created_at) VALUES ($1, $2, $3)")
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
             VALUES ($1, $2, $3, $4, $5, $6, $7)",
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
             VALUES ($1, $2, $3, $4, $5, $6)",
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
        const SQL: &str = token_query!("WHERE t.secret_hash = $1");
        let row = sqlx::query(SQL)
            .bind(secret_hash.as_slice())
            .fetch_optional(&self.pool)
            .await?;
        row.as_ref().map(rows::token).transpose()
    }

    pub async fn list_tokens(&self, org: OrgId) -> Result<Vec<TokenRecord>> {
        const SQL: &str = token_query!("WHERE p.org_id = $1 ORDER BY t.created_at, t.id");
        let rows = sqlx::query(SQL)
            .bind(org.to_string())
            .fetch_all(&self.pool)
            .await?;
        rows.iter().map(rows::token).collect()
    }

    /// One statement: of two nodes revoking a token at once, the second finds `revoked_at`
    /// set (the update re-reads the row it waited for) and answers `false`.
    pub async fn revoke_token(&self, id: Uuid, now: Timestamp) -> Result<bool> {
        let done =
            sqlx::query("UPDATE tokens SET revoked_at = $1 WHERE id = $2 AND revoked_at IS NULL")
                .bind(now.as_millis())
                .bind(id.to_string())
                .execute(&self.pool)
                .await?;
        Ok(done.rows_affected() == 1)
    }
}

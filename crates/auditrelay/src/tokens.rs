//! API tokens: minting and issuing.
//!
//! A token is shown once, when it is made, and only its digest is stored (the rules, hashing
//! and comparison included, are the core's `token` module). The prefix names the principal kind
//! the way Konnect's do (`kpat_` personal access token, `spat_` system-account token).

use std::time::Duration;

use auditrelay_core::token;
use auditrelay_core::{Grant, OrgId, Timestamp};

use crate::store::{NewToken, PrincipalKind, Store, StoreError, TokenRecord};

const ALPHABET: &[u8] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const SECRET_CHARS: usize = 40;
/// How much of a token `token list` shows: the kind prefix plus seven characters.
const SHOWN_PREFIX: usize = 12;

/// A freshly issued token: the secret (shown once) and what was stored.
pub struct IssuedToken {
    pub secret: String,
    pub record: TokenRecord,
}

impl std::fmt::Debug for IssuedToken {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("IssuedToken")
            .field("secret", &"<redacted>")
            .field("record", &self.record)
            .finish()
    }
}

fn prefix_of(kind: PrincipalKind) -> &'static str {
    match kind {
        PrincipalKind::User => token::PERSONAL_PREFIX,
        PrincipalKind::System => token::SYSTEM_PREFIX,
    }
}

fn mint(kind: PrincipalKind) -> String {
    let mut secret = String::with_capacity(5 + SECRET_CHARS);
    secret.push_str(prefix_of(kind));
    let mut buf = [0u8; 64];
    while secret.len() < 5 + SECRET_CHARS {
        getrandom::fill(&mut buf).expect("the operating system's random source failed");
        // Rejection sampling keeps every character equally likely (248 = 4 × 62).
        for b in buf.iter().filter(|b| **b < 248) {
            if secret.len() == 5 + SECRET_CHARS {
                break;
            }
            secret.push(ALPHABET[usize::from(*b) % ALPHABET.len()] as char);
        }
    }
    secret
}

/// Makes a principal with one role and its first token.
pub async fn issue(
    store: &Store,
    org: OrgId,
    name: &str,
    kind: PrincipalKind,
    grant: Grant,
    ttl: Option<Duration>,
    now: Timestamp,
) -> Result<IssuedToken, StoreError> {
    let secret = mint(kind);
    let record = store
        .create_token(NewToken {
            org_id: org,
            name: name.to_owned(),
            kind,
            grant,
            secret_hash: token::hash(&secret),
            prefix: secret[..SHOWN_PREFIX].to_owned(),
            created_at: now,
            expires_at: ttl.map(|ttl| now.saturating_add_millis(ttl.as_millis() as i64)),
        })
        .await?;
    Ok(IssuedToken { secret, record })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn minted_tokens_are_prefixed_random_alphanumerics() {
        let a = mint(PrincipalKind::User);
        let b = mint(PrincipalKind::System);
        assert!(a.starts_with("kpat_") && b.starts_with("spat_"));
        assert_eq!(a.len(), 45);
        assert!(a[5..].bytes().all(|c| c.is_ascii_alphanumeric()));
        assert_ne!(mint(PrincipalKind::User), a);
        assert_eq!(
            token::authentication_type(&a),
            auditrelay_core::AuthenticationType::Pat
        );
        assert_eq!(
            token::authentication_type(&b),
            auditrelay_core::AuthenticationType::Spat
        );
    }
}

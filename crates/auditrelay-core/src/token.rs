//! API tokens' pure rules: the authentication type a token claims by its prefix, the digest
//! that is stored instead of the token, and comparison in constant time.
//!
//! Plain SHA-256 (not a password hash) is right for the digest because a token's secret is 238
//! random bits, not something a person chose: there is nothing to brute-force.

use sha2::{Digest, Sha256};

use crate::AuthenticationType;

/// The prefix of a personal access token (Konnect's `kpat_`).
pub const PERSONAL_PREFIX: &str = "kpat_";
/// The prefix of a system account token (Konnect's `spat_`).
pub const SYSTEM_PREFIX: &str = "spat_";

/// The digest a token is stored and looked up by.
pub fn hash(secret: &str) -> [u8; 32] {
    Sha256::digest(secret.as_bytes()).into()
}

/// Equal, in time that does not depend on where the first difference is (the length is no
/// secret: compare digests where it would be).
pub fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    a.len() == b.len() && a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

/// The authentication type a presented token claims by its prefix.
pub fn authentication_type(secret: &str) -> AuthenticationType {
    if secret.starts_with(PERSONAL_PREFIX) {
        AuthenticationType::Pat
    } else if secret.starts_with(SYSTEM_PREFIX) {
        AuthenticationType::Spat
    } else {
        AuthenticationType::Invalid
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn token_comparison() {
        assert!(constant_time_eq(b"abcd", b"abcd"));
        assert!(!constant_time_eq(b"abcd", b"abce"));
        assert!(!constant_time_eq(b"abcd", b"abc"));
        assert!(!constant_time_eq(b"", b"a"));
    }

    #[test]
    fn the_prefix_names_the_authentication_type() {
        assert_eq!(authentication_type("kpat_x"), AuthenticationType::Pat);
        assert_eq!(authentication_type("spat_x"), AuthenticationType::Spat);
        assert_eq!(authentication_type("abc"), AuthenticationType::Invalid);
        assert_ne!(hash("kpat_a"), hash("kpat_b"));
    }
}

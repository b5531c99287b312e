//! The JWKS document: rendering our keys, reading any JWKS back to Ed25519 keys.

use auditrelay_core::SigningKey;
use auditrelay_core::signing::{JwksError, parse_jwks, render_jwks};
use sha1::{Digest as _, Sha1};

use crate::support::key;

#[test]
fn renders_and_reads_back() {
    let second = SigningKey::from_seed(&[0xee; 32]);
    let keys = [key().public_key().clone(), second.public_key().clone()];
    let doc = render_jwks(&keys);
    let first = r#"{"kty":"OKP","alg":"EdDSA","kid":"fd81a6db64d6faf7f702c07971a82c25c1dc3c90","crv":"Ed25519","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"}"#;
    assert!(doc.starts_with(&format!("{{\"keys\":[{first},{{")), "{doc}");
    assert_eq!(parse_jwks(doc.as_bytes()).unwrap(), keys);
    assert_eq!(render_jwks(&[]), r#"{"keys":[]}"#);

    // The kid is the hex SHA-1 of the raw key.
    let digest = Sha1::digest(key().public_key().to_bytes());
    let hex: String = digest.iter().map(|b| format!("{b:02x}")).collect();
    assert_eq!(key().kid().as_str(), hex);
}

#[test]
fn skips_foreign_keys_and_keeps_given_kids() {
    let doc = br#"{"keys":[
        {"kty":"RSA","n":"xyz","e":"AQAB","kid":"rsa-1"},
        {"kty":"OKP","crv":"X25519","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg"},
        {"kty":"OKP","crv":"Ed25519","kid":"konnect-2025","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg","use":"sig"}
    ]}"#;
    let keys = parse_jwks(doc).unwrap();
    assert_eq!(keys.len(), 1);
    assert_eq!(keys[0].kid().as_str(), "konnect-2025");
    assert_eq!(keys[0].to_bytes(), key().public_key().to_bytes());
}

#[test]
fn refuses_broken_documents() {
    assert!(matches!(parse_jwks(b"{}"), Err(JwksError::Json(_))));
    assert!(matches!(parse_jwks(b"not json"), Err(JwksError::Json(_))));
    let short = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}"#;
    assert!(matches!(
        parse_jwks(short),
        Err(JwksError::BadX { index: 0 })
    ));
    let missing = br#"{"keys":[{"kty":"OKP","crv":"Ed25519"}]}"#;
    assert!(matches!(
        parse_jwks(missing),
        Err(JwksError::BadX { index: 0 })
    ));
    let padded = br#"{"keys":[{"kty":"OKP","crv":"Ed25519","x":"A6EHv_POEL4dcN0Y50vAmWfk1jCbpQ1fHdyGZBJVMbg="}]}"#;
    assert!(matches!(
        parse_jwks(padded),
        Err(JwksError::BadX { index: 0 })
    ));
}

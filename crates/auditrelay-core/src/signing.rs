//! Ed25519 keys, key ids, signatures in base64url, and the JWKS that publishes the public keys.
//!
//! Every delivered line and every pull-API entry is signed (DECISIONS.md D6). Log lines carry no
//! key id, so a verifier tries each published key; the `kid` in the JWKS is the lowercase hex SHA-1
//! of the raw 32-byte public key, which any party can recompute from `x` alone.
//!
//! Randomness is the caller's: a [`SigningKey`] is made from a 32-byte seed the caller drew.

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use ed25519_dalek::Signer as _;
use sha1::{Digest as _, Sha1};

/// Length of an Ed25519 signature in base64url without padding.
pub const SIGNATURE_B64_LEN: usize = 86;

/// An Ed25519 signature.
pub type Signature = [u8; 64];

/// A key id: lowercase hex SHA-1 of the raw public key, or the `kid` a foreign JWKS gave it.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Kid(String);

impl Kid {
    pub fn as_str(&self) -> &str {
        &self.0
    }

    fn of(public: &[u8; 32]) -> Self {
        let digest = Sha1::digest(public);
        let mut hex = String::with_capacity(40);
        for byte in digest {
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte >> 4)]));
            hex.push(char::from(b"0123456789abcdef"[usize::from(byte & 0xf)]));
        }
        Self(hex)
    }
}

impl fmt::Display for Kid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// A private signing key with its public half and kid.
#[derive(Clone)]
pub struct SigningKey {
    inner: ed25519_dalek::SigningKey,
    public: PublicKey,
}

impl SigningKey {
    /// The key whose RFC 8032 private key is `seed`; the caller supplies the randomness.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying_key(inner.verifying_key());
        Self { inner, public }
    }

    /// The seed, for storing the key; treat it as a secret.
    pub fn to_seed(&self) -> [u8; 32] {
        self.inner.to_bytes()
    }

    pub fn public_key(&self) -> &PublicKey {
        &self.public
    }

    pub fn kid(&self) -> &Kid {
        &self.public.kid
    }

    pub fn sign(&self, message: &[u8]) -> Signature {
        self.inner.sign(message).to_bytes()
    }
}

impl fmt::Debug for SigningKey {
    // Never print the secret half.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("kid", &self.public.kid)
            .finish_non_exhaustive()
    }
}

/// A public key that verifies signatures, with its kid.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PublicKey {
    key: ed25519_dalek::VerifyingKey,
    kid: Kid,
}

/// The bytes are not an Ed25519 public key.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("not an Ed25519 public key")]
pub struct InvalidPublicKey;

impl PublicKey {
    /// The key from its raw 32 bytes (the JWK `x`); its kid is computed from them.
    pub fn from_bytes(raw: &[u8; 32]) -> Result<Self, InvalidPublicKey> {
        let key = ed25519_dalek::VerifyingKey::from_bytes(raw).map_err(|_| InvalidPublicKey)?;
        Ok(Self::from_verifying_key(key))
    }

    fn from_verifying_key(key: ed25519_dalek::VerifyingKey) -> Self {
        let kid = Kid::of(key.as_bytes());
        Self { key, kid }
    }

    pub fn to_bytes(&self) -> [u8; 32] {
        self.key.to_bytes()
    }

    pub fn kid(&self) -> &Kid {
        &self.kid
    }

    /// Strict RFC 8032 verification: a non-canonical or small-order signature does not pass,
    /// so one message has exactly one accepted signature per key.
    pub fn verify(&self, message: &[u8], signature: &Signature) -> bool {
        let sig = ed25519_dalek::Signature::from_bytes(signature);
        self.key.verify_strict(message, &sig).is_ok()
    }
}

/// Appends the base64url (no padding) form of `signature`, without allocating.
pub fn push_signature_b64(signature: &Signature, out: &mut Vec<u8>) {
    let mut text = [0u8; SIGNATURE_B64_LEN];
    let written = URL_SAFE_NO_PAD
        .encode_slice(signature, &mut text)
        .expect("86 bytes hold the base64 of 64");
    out.extend_from_slice(&text[..written]);
}

/// Decodes a base64url signature; `None` unless it is exactly 64 bytes in canonical form.
pub fn decode_signature_b64(text: &[u8]) -> Option<Signature> {
    if text.len() != SIGNATURE_B64_LEN {
        return None;
    }
    let mut out = [0u8; 66];
    let n = URL_SAFE_NO_PAD.decode_slice(text, &mut out).ok()?;
    out[..n].try_into().ok()
}

/// Tries every key; the first that verifies names the signer.
pub(crate) fn find_signer<'k>(
    keys: &'k [PublicKey],
    message: &[u8],
    signature: &Signature,
) -> Option<&'k PublicKey> {
    keys.iter().find(|k| k.verify(message, signature))
}

// ---------------------------------------------------------------------------------------------
// JWKS

/// Why a JWKS document was refused.
#[derive(Debug, thiserror::Error)]
pub enum JwksError {
    #[error("not a JWKS document: {0}")]
    Json(#[from] serde_json::Error),
    #[error("key {index}: `x` is not base64url of 32 bytes")]
    BadX { index: usize },
    #[error("key {index}: not a valid Ed25519 public key")]
    BadKey { index: usize },
}

mod wire {
    //! The JSON shape of a JWKS, kept apart from the domain types.

    use serde::{Deserialize, Serialize};

    #[derive(Serialize, Deserialize)]
    pub(super) struct Jwks<'a> {
        #[serde(borrow)]
        pub keys: Vec<Jwk<'a>>,
    }

    /// Field order here is the order written: `kty, alg, kid, crv, x`.
    #[derive(Serialize, Deserialize)]
    pub(super) struct Jwk<'a> {
        #[serde(borrow)]
        pub kty: std::borrow::Cow<'a, str>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        pub alg: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        pub kid: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        pub crv: Option<std::borrow::Cow<'a, str>>,
        #[serde(borrow, default, skip_serializing_if = "Option::is_none")]
        pub x: Option<std::borrow::Cow<'a, str>>,
    }
}

/// The JWKS document publishing `keys`, compact: `{"keys":[{"kty":"OKP","alg":"EdDSA",…}]}`.
pub fn render_jwks(keys: &[PublicKey]) -> String {
    let doc = wire::Jwks {
        keys: keys
            .iter()
            .map(|k| wire::Jwk {
                kty: "OKP".into(),
                alg: Some("EdDSA".into()),
                kid: Some(k.kid.as_str().into()),
                crv: Some("Ed25519".into()),
                x: Some(URL_SAFE_NO_PAD.encode(k.to_bytes()).into()),
            })
            .collect(),
    };
    serde_json::to_string(&doc).expect("a JWKS of strings always serializes")
}

/// The Ed25519 keys of a JWKS document. Keys of other types (RSA, EC, other OKP curves) are
/// skipped, since a JWKS may legitimately mix them; a key that claims to be Ed25519 but is not
/// valid fails the whole document, because silently dropping it would hide a publishing bug.
/// A key keeps the document's `kid` when it has one.
pub fn parse_jwks(document: &[u8]) -> Result<Vec<PublicKey>, JwksError> {
    let doc: wire::Jwks<'_> = serde_json::from_slice(document)?;
    let mut keys = Vec::new();
    for (index, jwk) in doc.keys.iter().enumerate() {
        if jwk.kty != "OKP" || jwk.crv.as_deref() != Some("Ed25519") {
            continue;
        }
        let x = jwk.x.as_deref().ok_or(JwksError::BadX { index })?;
        let raw: [u8; 32] = URL_SAFE_NO_PAD
            .decode(x)
            .ok()
            .and_then(|v| v.try_into().ok())
            .ok_or(JwksError::BadX { index })?;
        let mut key = PublicKey::from_bytes(&raw).map_err(|_| JwksError::BadKey { index })?;
        if let Some(kid) = &jwk.kid {
            key.kid = Kid(kid.clone().into_owned());
        }
        keys.push(key);
    }
    Ok(keys)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signature_base64_is_86_chars_and_round_trips() {
        let key = SigningKey::from_seed(&[9; 32]);
        let sig = key.sign(b"hello");
        let mut text = Vec::new();
        push_signature_b64(&sig, &mut text);
        assert_eq!(text.len(), SIGNATURE_B64_LEN);
        assert_eq!(decode_signature_b64(&text), Some(sig));
        assert!(key.public_key().verify(b"hello", &sig));
        assert!(!key.public_key().verify(b"hellp", &sig));
        // Padding, a short form and a non-canonical last character are all refused.
        assert_eq!(
            decode_signature_b64(&[text.clone(), b"==".to_vec()].concat()),
            None
        );
        assert_eq!(decode_signature_b64(&text[..85]), None);
        let last = text[85];
        let mut tweaked = text.clone();
        tweaked[85] = if last == b'A' { b'B' } else { b'A' };
        assert_ne!(decode_signature_b64(&tweaked), Some(sig));
    }

    #[test]
    fn debug_hides_the_seed() {
        let key = SigningKey::from_seed(&[0xab; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid().as_str()));
        assert!(!shown.contains("171"), "{shown}");
    }
}

//! Ed25519 keys, key ids, signatures in base64url, and the JWKS that publishes the public keys.
//!
//! Every delivered line and every pull-API entry is signed (DECISIONS.md D6). Log lines carry no
//! key id, so a verifier tries each published key; the `kid` in the JWKS is the lowercase hex SHA-1
//! of the raw 32-byte public key, which any party can recompute from `x` alone.
//!
//! Randomness is the caller's: a [`SigningKey`] is made from a 32-byte seed the caller drew.
//!
//! A batch's lines are signed together ([`SigningKey::sign_all`]): the same signatures as one
//! by one, for about four fifths of the CPU (DECISIONS.md S29).

use std::fmt;

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use curve25519_dalek::{EdwardsPoint, Scalar};
use ed25519_dalek::Signer as _;
use sha1::{Digest as _, Sha1};
use sha2::Sha512;
use zeroize::{Zeroize as _, Zeroizing};

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
    expanded: Expanded,
    public: PublicKey,
}

/// The secret scalar and the nonce prefix that RFC 8032 (§5.1.5) derives from the seed, for
/// [`SigningKey::sign_all`]; wiped when dropped, as ed25519-dalek wipes its own.
#[derive(Clone)]
struct Expanded {
    scalar: Scalar,
    prefix: [u8; 32],
}

impl Expanded {
    fn from_seed(seed: &[u8; 32]) -> Self {
        let mut hash: [u8; 64] = Sha512::digest(seed).into();
        let mut lower = [0u8; 32];
        lower.copy_from_slice(&hash[..32]);
        let scalar = Scalar::from_bytes_mod_order(curve25519_dalek::scalar::clamp_integer(lower));
        let mut prefix = [0u8; 32];
        prefix.copy_from_slice(&hash[32..]);
        hash.zeroize();
        lower.zeroize();
        Self { scalar, prefix }
    }
}

impl Drop for Expanded {
    fn drop(&mut self) {
        self.scalar.zeroize();
        self.prefix.zeroize();
    }
}

impl SigningKey {
    /// The key whose RFC 8032 private key is `seed`; the caller supplies the randomness.
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        let inner = ed25519_dalek::SigningKey::from_bytes(seed);
        let public = PublicKey::from_verifying_key(inner.verifying_key());
        Self {
            inner,
            expanded: Expanded::from_seed(seed),
            public,
        }
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

    /// The signature of each of `messages`, in order: the same bytes as [`Self::sign`] gives
    /// one by one (Ed25519 is deterministic), for about four fifths of the CPU.
    ///
    /// A signature's commitment `R = r·B` comes out of the scalar multiplication in projective
    /// coordinates, and encoding it takes a field inversion: about a fifth of the signature's
    /// cost. Here the points of all the messages are encoded with one inversion between them
    /// (Montgomery's trick, curve25519-dalek's `compress_batch_alloc`). Every other step is
    /// RFC 8032 §5.1.6 as ed25519-dalek takes it, on the same constant-time arithmetic; the
    /// tests hold each signature to ed25519-dalek's.
    pub fn sign_all(&self, messages: &[&[u8]]) -> Vec<Signature> {
        let Expanded { scalar, prefix } = &self.expanded;
        // The nonces are as secret as the key: one of them and its signature give the key. The
        // points are wiped too: their projective coordinates say more about a nonce than the
        // encoded commitment does.
        let mut nonces = Zeroizing::new(Vec::with_capacity(messages.len()));
        let mut points = Zeroizing::new(Vec::with_capacity(messages.len()));
        for message in messages {
            let r = hash_to_scalar(&[prefix, message]);
            points.push(EdwardsPoint::mul_base(&r));
            nonces.push(r);
        }
        let public = self.public.to_bytes();
        let commitments = EdwardsPoint::compress_batch_alloc(&points);
        messages
            .iter()
            .zip(nonces.iter())
            .zip(&commitments)
            .map(|((message, r), commitment)| {
                let k = hash_to_scalar(&[commitment.as_bytes(), &public, message]);
                let s = k * scalar + r;
                let mut signature = [0u8; 64];
                signature[..32].copy_from_slice(commitment.as_bytes());
                signature[32..].copy_from_slice(s.as_bytes());
                signature
            })
            .collect()
    }
}

/// SHA-512 of `parts` one after another, reduced modulo the group order. (Not
/// `Scalar::from_hash`: curve25519-dalek 5 takes digest 0.11's hashers, the workspace's `sha2`
/// is 0.10, as ed25519-dalek 2's.)
fn hash_to_scalar(parts: &[&[u8]]) -> Scalar {
    let mut hash = Sha512::new();
    for part in parts {
        hash.update(part);
    }
    Scalar::from_bytes_mod_order_wide(&hash.finalize().into())
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

    proptest::proptest! {
        /// Signed together, each message gets exactly the signature it gets alone from
        /// ed25519-dalek, and it verifies.
        #[test]
        fn signing_together_gives_each_message_its_own_signature(
            seed in proptest::array::uniform32(proptest::num::u8::ANY),
            messages in proptest::collection::vec(proptest::collection::vec(proptest::num::u8::ANY, 0..600), 0..40),
        ) {
            let key = SigningKey::from_seed(&seed);
            let slices: Vec<&[u8]> = messages.iter().map(Vec::as_slice).collect();
            let together = key.sign_all(&slices);
            proptest::prop_assert_eq!(together.len(), messages.len());
            for (message, signature) in messages.iter().zip(&together) {
                proptest::prop_assert_eq!(*signature, key.sign(message));
                proptest::prop_assert!(key.public_key().verify(message, signature));
            }
        }
    }

    /// RFC 8032's test vectors 1–3 (§7.1: messages of 0, 1 and 2 bytes), each signed together
    /// with other messages, and checked against the RFC, not against ed25519-dalek.
    #[test]
    fn signing_together_matches_rfc_8032() {
        let vectors = [
            (
                "9d61b19deffd5a60ba844af492ec2cc44449c5697b326919703bac031cae7f60",
                "",
                "e5564300c360ac729086e2cc806e828a84877f1eb8e5d974d873e065224901555fb8821590a33bacc61e39701cf9b46bd25bf5f0595bbe24655141438e7a100b",
            ),
            (
                "4ccd089b28ff96da9db6c346ec114e0f5b8a319f35aba624da8cf6ed4fb8a6fb",
                "72",
                "92a009a9f0d4cab8720e820b5f642540a2b27b5416503f8fb3762223ebdb69da085ac1e43e15996e458f3613d0f11d8c387b2eaeb4302aeeb00d291612bb0c00",
            ),
            (
                "c5aa8df43f9f837bedb7442f31dcb7b166d38535076f094b85ce3a2e0b4458f7",
                "af82",
                "6291d657deec24024827e69c3abe01a30ce548a284743a445e3680d7db5ac3ac18ff9b538d16f290ae67f760984dc6594a7c15e9716ed28dc027beceea1ec40a",
            ),
        ];
        for (seed, message, expected) in vectors {
            let key = SigningKey::from_seed(&hex_bytes(seed).try_into().unwrap());
            let message = hex_bytes(message);
            let signatures = key.sign_all(&[b"before", &message, b"after"]);
            assert_eq!(signatures[1].to_vec(), hex_bytes(expected));
        }
    }

    fn hex_bytes(s: &str) -> Vec<u8> {
        (0..s.len())
            .step_by(2)
            .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
            .collect()
    }

    #[test]
    fn debug_hides_the_seed() {
        let key = SigningKey::from_seed(&[0xab; 32]);
        let shown = format!("{key:?}");
        assert!(shown.contains(key.kid().as_str()));
        assert!(!shown.contains("171"), "{shown}");
    }
}

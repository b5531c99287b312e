//! A log's checkpoint (origin, size, root hash) as a signed note, in the C2SP formats
//! `tlog-checkpoint` and `signed-note` (PRODUCT Decision 16): what a verifier trusts a Merkle
//! tree's root by, signed with a note key of its own (never the key that signs log lines).
//!
//! A checkpoint's text is three lines, each ending in a newline: the log's origin (a name that
//! is the log's alone), the tree size in decimal, and the root hash in standard base64. A signed
//! note is the text, an empty line, and one signature line per signer:
//! `— <key name> <base64(key hash ‖ signature)>` (the dash is U+2014). An Ed25519 signature is
//! over the text exactly; the key hash is the first four bytes of
//! `SHA-256(key name ‖ "\n" ‖ 0x01 ‖ public key)`, so a verifier finds its key's line among
//! others'. A verifier key is written `<key name>+<key hash, hex>+<base64(0x01 ‖ public key)>`.

use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use sha2::{Digest as _, Sha256};

use crate::merkle::Hash;
use crate::signing::{PublicKey, SigningKey};

/// The signature algorithm byte of Ed25519 in signed notes.
const ED25519: u8 = 0x01;

/// What a note's signature line starts with.
const SIGNATURE_PREFIX: &str = "\u{2014} ";

/// A log's state at one moment: its name, how many leaves it has, and their root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Checkpoint {
    pub origin: String,
    pub size: u64,
    pub root: Hash,
}

/// Why a note or checkpoint is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NoteError {
    #[error("not a signed note: {0}")]
    Malformed(&'static str),
    #[error("no signature by the key {0}")]
    NotSignedBy(String),
    #[error("the signature by {0} does not verify")]
    BadSignature(String),
    #[error("not a checkpoint: {0}")]
    NotACheckpoint(&'static str),
}

/// A note signer: an Ed25519 key under a name.
pub struct NoteKey<'a> {
    pub name: &'a str,
    pub key: &'a SigningKey,
}

impl Checkpoint {
    /// The checkpoint's text, newline-terminated, as it is signed.
    pub fn text(&self) -> String {
        format!(
            "{}\n{}\n{}\n",
            self.origin,
            self.size,
            STANDARD.encode(self.root)
        )
    }

    /// Reads a checkpoint's text (extension lines after the third are allowed and ignored).
    pub fn parse(text: &str) -> Result<Self, NoteError> {
        let body = text.strip_suffix('\n').ok_or(NoteError::NotACheckpoint(
            "its text does not end with a newline",
        ))?;
        let mut lines = body.split('\n');
        let origin = lines
            .next()
            .filter(|o| !o.is_empty())
            .ok_or(NoteError::NotACheckpoint("no origin"))?;
        let size = lines
            .next()
            .filter(|s| !s.starts_with('0') || *s == "0")
            .and_then(|s| s.parse::<u64>().ok())
            .ok_or(NoteError::NotACheckpoint(
                "the size is not a decimal number",
            ))?;
        let root = lines
            .next()
            .and_then(|r| STANDARD.decode(r).ok())
            .and_then(|r| Hash::try_from(r).ok())
            .ok_or(NoteError::NotACheckpoint(
                "the root is not base64 of 32 bytes",
            ))?;
        Ok(Self {
            origin: origin.to_owned(),
            size,
            root,
        })
    }

    /// The checkpoint as a note signed by `signer`.
    pub fn sign(&self, signer: &NoteKey<'_>) -> String {
        sign_note(&self.text(), signer)
    }

    /// The checkpoint of a note that `name`'s `key` signed; other signatures are ignored.
    pub fn open(note: &str, name: &str, key: &PublicKey) -> Result<Self, NoteError> {
        Self::parse(verify_note(note, name, key)?)
    }
}

/// `text` (newline-terminated) as a note signed by `signer`.
pub fn sign_note(text: &str, signer: &NoteKey<'_>) -> String {
    let signature = signer.key.sign(text.as_bytes());
    let mut blob = key_hash(signer.name, signer.key.public_key()).to_vec();
    blob.extend_from_slice(&signature);
    format!(
        "{text}\n{SIGNATURE_PREFIX}{} {}\n",
        signer.name,
        STANDARD.encode(blob)
    )
}

/// The text of a note that `name`'s `key` signed.
pub fn verify_note<'a>(note: &'a str, name: &str, key: &PublicKey) -> Result<&'a str, NoteError> {
    let split = note
        .find("\n\n")
        .ok_or(NoteError::Malformed("no empty line before the signatures"))?;
    let (text, signatures) = (&note[..=split], &note[split + 2..]);
    let signatures = signatures
        .strip_suffix('\n')
        .ok_or(NoteError::Malformed("it does not end with a newline"))?;
    let wanted = key_hash(name, key);
    for line in signatures.split('\n') {
        let (signer, blob) = line
            .strip_prefix(SIGNATURE_PREFIX)
            .and_then(|rest| rest.split_once(' '))
            .ok_or(NoteError::Malformed(
                "a signature line is not `— name signature`",
            ))?;
        let blob = STANDARD
            .decode(blob)
            .map_err(|_| NoteError::Malformed("a signature is not base64"))?;
        if signer != name || blob.len() != 68 || blob[..4] != wanted {
            continue;
        }
        let signature: [u8; 64] = blob[4..].try_into().expect("68 bytes less the key hash");
        return match key.verify(text.as_bytes(), &signature) {
            true => Ok(text),
            false => Err(NoteError::BadSignature(name.to_owned())),
        };
    }
    Err(NoteError::NotSignedBy(name.to_owned()))
}

/// The first four bytes of `SHA-256(name ‖ "\n" ‖ 0x01 ‖ public key)`.
pub fn key_hash(name: &str, key: &PublicKey) -> [u8; 4] {
    let mut hasher = Sha256::new();
    hasher.update(name.as_bytes());
    hasher.update(b"\n");
    hasher.update([ED25519]);
    hasher.update(key.to_bytes());
    let digest = hasher.finalize();
    [digest[0], digest[1], digest[2], digest[3]]
}

/// A verifier key as signed-note tools read it: `name+hash+base64(0x01 ‖ public key)`.
pub fn verifier_key(name: &str, key: &PublicKey) -> String {
    let mut raw = vec![ED25519];
    raw.extend_from_slice(&key.to_bytes());
    let hash: String = key_hash(name, key)
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect();
    format!("{name}+{hash}+{}", STANDARD.encode(raw))
}

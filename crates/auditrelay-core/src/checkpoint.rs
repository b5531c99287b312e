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

/// A note's text (newline-terminated) and its signature lines, neither checked.
fn split_note(note: &str) -> Result<(&str, &str), NoteError> {
    let split = note
        .find("\n\n")
        .ok_or(NoteError::Malformed("no empty line before the signatures"))?;
    Ok((&note[..=split], &note[split + 2..]))
}

/// A note's text, read without checking any signature: for a note whose key is not at hand.
pub fn unchecked_text(note: &str) -> Result<&str, NoteError> {
    split_note(note).map(|(text, _)| text)
}

/// The text of a note that `name`'s `key` signed.
pub fn verify_note<'a>(note: &'a str, name: &str, key: &PublicKey) -> Result<&'a str, NoteError> {
    let (text, signatures) = split_note(note)?;
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

/// Reads a verifier key written by [`verifier_key`]: its name and public key.
pub fn parse_verifier_key(text: &str) -> Result<(String, PublicKey), NoteError> {
    let bad = NoteError::Malformed("a verifier key is `name+hash+base64(0x01 ‖ key)`");
    // A name holds no `+`; the base64 key may.
    let mut parts = text.trim().splitn(3, '+');
    let (Some(name), Some(hash), Some(raw)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(bad);
    };
    let raw = STANDARD.decode(raw).map_err(|_| bad.clone())?;
    let key = match raw.split_first() {
        Some((&ED25519, key)) => <&[u8; 32]>::try_from(key)
            .ok()
            .and_then(|key| PublicKey::from_bytes(key).ok())
            .ok_or(bad.clone())?,
        _ => return Err(NoteError::Malformed("a verifier key is not an Ed25519 key")),
    };
    if name.is_empty() || verifier_key(name, &key) != text.trim() || hash.len() != 8 {
        return Err(NoteError::Malformed(
            "a verifier key's hash does not match its name and key",
        ));
    }
    Ok((name.to_owned(), key))
}

/// What opens a `c2sp.org/tlog-proof@v1` bundle.
const PROOF_HEADER: &str = "c2sp.org/tlog-proof@v1";

/// An inclusion proof that verifies offline, as a `c2sp.org/tlog-proof@v1` bundle: the leaf's
/// index, its audit path and the signed checkpoint of the tree it leads to. Our `extra` is the
/// leaf itself (an event's canonical encoding, `integrity::event_leaf`), so the bundle names
/// the event it proves and needs nothing else beside the log's verifier key. Once retention has
/// deleted the event, the bundle has no `extra`, and the leaf's hash comes from elsewhere (the
/// event's line in the SIEM carries it).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InclusionBundle {
    pub leaf: Option<Vec<u8>>,
    pub index: u64,
    pub path: Vec<Hash>,
    /// The checkpoint as a signed note.
    pub note: String,
}

/// What a bundle proves once it verifies: the leaf, its place, and the checkpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Included {
    pub leaf: Option<Vec<u8>>,
    pub leaf_hash: Hash,
    pub index: u64,
    pub checkpoint: Checkpoint,
}

/// Why a bundle does not prove its leaf.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BundleError {
    #[error("not a c2sp.org/tlog-proof@v1 bundle: {0}")]
    Malformed(&'static str),
    #[error("its checkpoint: {0}")]
    Checkpoint(#[from] NoteError),
    #[error("its inclusion proof: {0}")]
    Proof(#[from] crate::merkle::ProofError),
    #[error("it carries no leaf (retention deleted the event): give the leaf's hash")]
    NoLeaf,
    #[error("the leaf it carries is not the one given")]
    OtherLeaf,
    #[error("the leaf it carries names another place ({0}) than the proof's")]
    LeafElsewhere(String),
}

impl InclusionBundle {
    /// The bundle's text.
    pub fn text(&self) -> String {
        let mut out = format!("{PROOF_HEADER}\n");
        if let Some(leaf) = &self.leaf {
            out.push_str(&format!("extra {}\n", STANDARD.encode(leaf)));
        }
        out.push_str(&format!("index {}\n", self.index));
        for hash in &self.path {
            out.push_str(&STANDARD.encode(hash));
            out.push('\n');
        }
        out.push('\n');
        out.push_str(&self.note);
        out
    }

    /// Reads a bundle's text.
    pub fn parse(text: &str) -> Result<Self, BundleError> {
        let (head, note) = text.split_once("\n\n").ok_or(BundleError::Malformed(
            "no empty line before the checkpoint",
        ))?;
        let mut lines = head.split('\n');
        if lines.next() != Some(PROOF_HEADER) {
            return Err(BundleError::Malformed("its first line is not the header"));
        }
        let mut line = lines.next();
        let leaf = match line.and_then(|l| l.strip_prefix("extra ")) {
            Some(extra) => {
                line = lines.next();
                Some(
                    STANDARD
                        .decode(extra)
                        .map_err(|_| BundleError::Malformed("its `extra` is not base64"))?,
                )
            }
            None => None,
        };
        let index = line
            .and_then(|l| l.strip_prefix("index "))
            .filter(|n| n.bytes().all(|b| b.is_ascii_digit()))
            .filter(|n| !n.starts_with('0') || *n == "0")
            .and_then(|n| n.parse().ok())
            .ok_or(BundleError::Malformed(
                "no `index` line with a decimal index",
            ))?;
        let path = lines
            .map(|l| {
                STANDARD
                    .decode(l)
                    .ok()
                    .and_then(|h| Hash::try_from(h).ok())
                    .ok_or(BundleError::Malformed(
                        "a proof line is not base64 of 32 bytes",
                    ))
            })
            .collect::<Result<_, _>>()?;
        Ok(Self {
            leaf,
            index,
            path,
            note: note.to_owned(),
        })
    }

    /// Checks the checkpoint's signature by `name`'s `key`, then the leaf's path to its root.
    /// The leaf is the bundle's own, or `leaf_hash` when given (which must then be the hash of
    /// the bundle's leaf, if it has one).
    pub fn verify(
        &self,
        name: &str,
        key: &PublicKey,
        leaf_hash: Option<&Hash>,
    ) -> Result<Included, BundleError> {
        let checkpoint = Checkpoint::open(&self.note, name, key)?;
        let carried = self.leaf.as_deref().map(crate::merkle::leaf_hash);
        let leaf_hash = match (carried, leaf_hash) {
            (Some(carried), Some(given)) if carried != *given => {
                return Err(BundleError::OtherLeaf);
            }
            (_, Some(given)) => *given,
            (Some(carried), None) => carried,
            (None, None) => return Err(BundleError::NoLeaf),
        };
        if let Some(leaf) = &self.leaf {
            check_place(leaf, &checkpoint.origin, self.index)?;
        }
        crate::merkle::verify_inclusion(
            &leaf_hash,
            self.index,
            checkpoint.size,
            &self.path,
            &checkpoint.root,
        )?;
        Ok(Included {
            leaf: self.leaf.clone(),
            leaf_hash,
            index: self.index,
            checkpoint,
        })
    }
}

/// An event's leaf names its log and index (`integrity::event_leaf`): a leaf proved at
/// another place than the one it names does not pass. A leaf that is not an event's (no such
/// fields) is taken as it is.
fn check_place(leaf: &[u8], origin: &str, index: u64) -> Result<(), BundleError> {
    let Ok(serde_json::Value::Object(fields)) = serde_json::from_slice(leaf) else {
        return Ok(());
    };
    let (log, log_index) = (fields.get("log"), fields.get("log_index"));
    if log.is_none() && log_index.is_none() {
        return Ok(());
    }
    if log.and_then(|l| l.as_str()) != Some(origin)
        || log_index.and_then(|i| i.as_u64()) != Some(index)
    {
        return Err(BundleError::LeafElsewhere(format!(
            "log {}, index {}",
            log.map_or("none".into(), ToString::to_string),
            log_index.map_or("none".into(), ToString::to_string)
        )));
    }
    Ok(())
}

//! The checkpoint key: the Ed25519 key that signs the tamper-evident log's checkpoints as
//! signed notes (PRODUCT Decision 16), and nothing else. It is not a line-signing key and is
//! never in the JWKS: a line signed with it would not verify, and a checkpoint signed with a
//! line key would not either, so neither key can stand in for the other.
//!
//! Its seed is 32 random bytes in `<data_dir>/checkpoint.key` (mode 0600), made on first use,
//! or, with a store several nodes share, sealed in the database (`keys/sealed.rs`). Its name,
//! which every signature line carries, is the installation's: `auditrelay/<store identity>`,
//! the prefix of every log's origin (`auditrelay_core::integrity::log_origin`).

use std::path::Path;

use auditrelay_core::checkpoint::{Checkpoint, NoteKey, key_hash, verifier_key};
use auditrelay_core::{PublicKey, SigningKey};

use super::KeyError;
use crate::secrets::key_in;

/// The file under the data directory that holds the seed.
pub const KEY_FILE: &str = "checkpoint.key";

/// Signs checkpoints under the installation's name.
pub struct NoteSigner {
    name: String,
    key: SigningKey,
}

impl NoteSigner {
    pub fn new(name: String, seed: &[u8; 32]) -> Self {
        Self {
            name,
            key: SigningKey::from_seed(seed),
        }
    }

    /// The key in `data_dir`, made on first use.
    pub fn in_data_dir(name: String, data_dir: &Path) -> Result<Self, KeyError> {
        Ok(Self::new(name, &key_in(data_dir, KEY_FILE)?))
    }

    /// The name signature lines carry.
    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn public_key(&self) -> &PublicKey {
        self.key.public_key()
    }

    /// The key as signed-note tools take it: `name+hash+key`.
    pub fn verifier_key(&self) -> String {
        verifier_key(&self.name, self.public_key())
    }

    /// The key's id: its signed-note key hash in hex, as signature lines carry it.
    pub fn key_id(&self) -> String {
        key_hash(&self.name, self.public_key())
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect()
    }

    /// `checkpoint` as a signed note.
    pub fn sign(&self, checkpoint: &Checkpoint) -> String {
        checkpoint.sign(&NoteKey {
            name: &self.name,
            key: &self.key,
        })
    }
}

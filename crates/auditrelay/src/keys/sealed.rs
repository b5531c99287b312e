//! The keys of an installation whose store several nodes share (PostgreSQL; DECISIONS.md S22):
//! the signing keys and the secrets key live in the database, each sealed with the
//! key-encryption key every node is given by configuration (`store.key_encryption_key`) and
//! that is never stored beside the data. A node without it does not start; one given another
//! key finds that the keys do not open, and does not start either.
//!
//! The first node to start on a database without keys brings its data directory's, if it has
//! any (an installation that ran on one node with its keys on disk keeps its signing identity
//! and its destinations' credentials), or makes new ones. Nodes that start at once agree: a key
//! is added only under a number nobody took, and the secrets key only if there is none.

use std::path::Path;

use auditrelay_core::{SigningKey, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::{Fingerprint, KeyDir, KeyError, KeySet, StoredKey, random_seed};
use crate::config::Config;
use crate::secrets::{SecretBox, existing_key_in};
use crate::store::{SealedKey, Vault};

/// The name of the sealed secrets key.
const SECRETS: &str = "secrets";
/// The name of the sealed checkpoint (note) key.
const CHECKPOINT: &str = "checkpoint";

/// The key-encryption key `config` gives, or why a node on a shared store cannot start.
pub fn key_encryption_key(config: &Config) -> anyhow::Result<[u8; 32]> {
    let Some(key) = &config.store.key_encryption_key else {
        anyhow::bail!(
            "store.key_encryption_key is missing. With PostgreSQL, the signing keys and the \
             destinations' credentials are kept in the database, sealed with a key-encryption \
             key that every node must be given (32 random bytes in base64, for example from \
             `openssl rand -base64 32`), through AUDITRELAY_STORE__KEY_ENCRYPTION_KEY or the \
             configuration file. Give every node the same one, and keep it apart from the \
             database's backups."
        );
    };
    key.bytes()
        .ok_or_else(|| anyhow::anyhow!("store.key_encryption_key must be 32 bytes in base64"))
}

/// The installation's keys in a shared store.
pub struct SealedKeys {
    vault: Vault,
    /// Seals the keys in the vault.
    kek: SecretBox,
}

impl SealedKeys {
    pub fn new(vault: Vault, key_encryption_key: &[u8; 32]) -> Self {
        Self {
            vault,
            kek: SecretBox::from_key(key_encryption_key),
        }
    }

    /// The secrets key (what seals destinations' credentials): the stored one, else
    /// `data_dir`'s `secret.key`, else a new one.
    pub async fn secrets(&self, data_dir: &Path) -> Result<SecretBox, KeyError> {
        let stored = match self.vault.sealed_key(SECRETS).await? {
            Some(stored) => stored,
            None => self.store_secrets_key(data_dir).await?,
        };
        Ok(SecretBox::from_key(&self.open_bytes(&stored, SECRETS)?))
    }

    /// Stores `data_dir`'s secrets key, or a new one, unless another node stored one first;
    /// the sealed key the database then holds.
    async fn store_secrets_key(&self, data_dir: &Path) -> Result<Vec<u8>, KeyError> {
        let key = match SecretBox::existing_key(data_dir).map_err(secrets_error)? {
            Some(key) => key,
            None => {
                if let Err(refused) = self.refuse_new_keys("secret.key", data_dir).await {
                    // Another node starting at once may have stored it meanwhile.
                    return self.vault.sealed_key(SECRETS).await?.ok_or(refused);
                }
                random_seed()?
            }
        };
        let offered = self.kek.seal(&URL_SAFE_NO_PAD.encode(key), SECRETS);
        Ok(self.vault.sealed_key_or(SECRETS, &offered).await?)
    }

    /// The seed of the key that signs the tamper-evident log's checkpoints (`keys/note.rs`):
    /// the stored one, else `data_dir`'s, else a new one. Unlike the signing keys, a new one
    /// for a database with records is no loss: it signs checkpoints from now on, and each
    /// checkpoint names its key.
    pub async fn checkpoint_seed(&self, data_dir: &Path) -> Result<[u8; 32], KeyError> {
        let stored = match self.vault.sealed_key(CHECKPOINT).await? {
            Some(stored) => stored,
            None => {
                let seed = match existing_key_in(data_dir, super::note::KEY_FILE)
                    .map_err(secrets_error)?
                {
                    Some(seed) => seed,
                    None => random_seed()?,
                };
                let offered = self.kek.seal(&URL_SAFE_NO_PAD.encode(seed), CHECKPOINT);
                self.vault.sealed_key_or(CHECKPOINT, &offered).await?
            }
        };
        self.open_bytes(&stored, CHECKPOINT)
    }

    /// Reads the signing keys, first adding one when there are none: `data_dir`'s, if it has
    /// keys, else a new key that signs from `now`.
    pub async fn open_or_create(
        &self,
        now: Timestamp,
        data_dir: &Path,
    ) -> Result<KeySet, KeyError> {
        if let Some(set) = self.load().await? {
            return Ok(set);
        }
        let on_disk = KeyDir::in_data_dir(data_dir);
        let brought = match on_disk.path().exists() {
            true => on_disk.load()?.map(|set| set.keys().to_vec()),
            false => None,
        };
        let bringing = brought.is_some();
        let keys = match brought {
            Some(keys) => keys,
            None => {
                if let Err(refused) = self.refuse_new_keys("keys/", data_dir).await {
                    // Another node starting at once may have stored them meanwhile.
                    return self.load().await?.ok_or(refused);
                }
                let seed = random_seed()?;
                vec![stored(SigningKey::from_seed(&seed), now, now, None, 1)]
            }
        };
        let sealed: Vec<SealedKey> = (1..)
            .zip(&keys)
            .map(|(number, key)| self.seal(key, number))
            .collect();
        // All of them or none: another node's stay, if it stored its own first.
        if self.vault.add_first_signing_keys(&sealed).await? && bringing {
            tracing::info!(keys.count = keys.len(), keys.dir = %on_disk.path().display(), "signing keys brought into the database");
        }
        self.load().await?.ok_or_else(|| KeyError::Sealed {
            reason: "the first signing key vanished right after it was stored".into(),
        })
    }

    /// New keys for a database that holds destinations or events would not open their
    /// credentials, or not verify what was delivered: it was used by a version that kept its
    /// keys in a data directory, and the node that has them must bring them first.
    async fn refuse_new_keys(&self, what: &str, data_dir: &Path) -> Result<(), KeyError> {
        if !self.vault.holds_records().await? {
            return Ok(());
        }
        Err(KeyError::Sealed {
            reason: format!(
                "the database holds destinations or events but no keys, and {} has no {what}: \
                 it was used by a version that kept its keys in a data directory. Start a node \
                 whose data directory holds them (keys/ and secret.key) first; it brings them \
                 into the database.",
                data_dir.display()
            ),
        })
    }

    /// Adds a key that is published now and signs from `now + activation_delay`, retiring
    /// every other at that moment (DECISIONS.md D6), as [`KeyDir::rotate`] does on disk.
    pub async fn rotate(
        &self,
        now: Timestamp,
        activation_delay: std::time::Duration,
        data_dir: &Path,
    ) -> Result<StoredKey, KeyError> {
        let current = self.open_or_create(now, data_dir).await?;
        let delay_ms = i64::try_from(activation_delay.as_millis()).unwrap_or(i64::MAX);
        let active_from = now.saturating_add_millis(delay_ms);
        let seed = random_seed()?;
        let mut number = current.keys().iter().map(number_of).max().unwrap_or(0) + 1;
        loop {
            let key = stored(SigningKey::from_seed(&seed), now, active_from, None, number);
            let sealed = self.seal(&key, number);
            if self
                .vault
                .add_signing_key(&sealed, Some(active_from.as_millis()))
                .await?
            {
                return Ok(key);
            }
            // Another rotation took this number first: take the next.
            number += 1;
        }
    }

    /// Every signing key; `None` when there is none.
    pub async fn load(&self) -> Result<Option<KeySet>, KeyError> {
        let rows = self.vault.signing_keys().await?;
        let fingerprint = fingerprint(rows.iter().map(|k| (k.number, k.active_from, k.retired_at)));
        let mut keys = Vec::with_capacity(rows.len());
        for row in &rows {
            keys.push(self.open(row)?);
        }
        Ok((!keys.is_empty()).then(|| KeySet::new(keys, fingerprint)))
    }

    /// Reads the keys again only if one was added or retired since `known` was read.
    pub async fn reload_if_changed(&self, known: &KeySet) -> Result<Option<KeySet>, KeyError> {
        let marks = self.vault.signing_key_marks().await?;
        if fingerprint(marks.into_iter()) == known.fingerprint {
            return Ok(None);
        }
        self.load().await
    }

    fn seal(&self, key: &StoredKey, number: i32) -> SealedKey {
        let kid = key.kid().to_string();
        SealedKey {
            number,
            sealed_seed: self.kek.seal(
                &URL_SAFE_NO_PAD.encode(key.key.to_seed()),
                &seed_context(&kid),
            ),
            kid,
            created_at: key.created_at.as_millis(),
            active_from: key.active_from.as_millis(),
            retired_at: key.retired_at.map(Timestamp::as_millis),
        }
    }

    fn open(&self, row: &SealedKey) -> Result<StoredKey, KeyError> {
        let seed = self.open_bytes(&row.sealed_seed, &seed_context(&row.kid))?;
        let key = SigningKey::from_seed(&seed);
        if key.kid().as_str() != row.kid {
            return Err(KeyError::Sealed {
                reason: format!("signing key {} does not match its kid", row.number),
            });
        }
        Ok(stored(
            key,
            Timestamp::from_millis(row.created_at),
            Timestamp::from_millis(row.active_from),
            row.retired_at.map(Timestamp::from_millis),
            row.number,
        ))
    }

    /// Opens 32 sealed bytes; a failure means this node was given another key-encryption
    /// key than the one the keys were sealed with.
    fn open_bytes(&self, sealed: &[u8], context: &str) -> Result<[u8; 32], KeyError> {
        let wrong_key = || KeyError::Sealed {
            reason: "store.key_encryption_key does not open the keys in the database: this \
                     node was given another key-encryption key than the nodes that stored them"
                .into(),
        };
        let text = self.kek.open(sealed, context).map_err(|_| wrong_key())?;
        URL_SAFE_NO_PAD
            .decode(text)
            .ok()
            .and_then(|bytes| bytes.try_into().ok())
            .ok_or_else(wrong_key)
    }
}

/// A seed is sealed bound to its key's id: a sealed seed copied onto another row does not
/// open.
fn seed_context(kid: &str) -> String {
    format!("signing-key/{kid}")
}

fn stored(
    key: SigningKey,
    created_at: Timestamp,
    active_from: Timestamp,
    retired_at: Option<Timestamp>,
    number: i32,
) -> StoredKey {
    StoredKey {
        key,
        created_at,
        active_from,
        retired_at,
        file: format!("{number:04}.json"),
    }
}

/// A key's number: its place in creation order, as in its on-disk name `NNNN.json`.
fn number_of(key: &StoredKey) -> i32 {
    key.file
        .strip_suffix(".json")
        .and_then(|n| n.parse().ok())
        .unwrap_or(0)
}

fn fingerprint(marks: impl Iterator<Item = (i32, i64, Option<i64>)>) -> Fingerprint {
    Fingerprint(
        marks
            .map(|(number, active_from, retired_at)| {
                let retired = retired_at.unwrap_or(i64::MIN);
                (format!("{number:04}.json"), 0, 0, active_from, retired)
            })
            .collect(),
    )
}

fn secrets_error(e: crate::secrets::SecretError) -> KeyError {
    KeyError::Sealed {
        reason: e.to_string(),
    }
}

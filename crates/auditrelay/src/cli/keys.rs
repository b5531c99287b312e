//! `auditrelay keys list|rotate`: the signing keys, in the data directory or (PostgreSQL) sealed
//! in the database. A running server, every node of one, notices a rotation within a second.

use anyhow::{Context as _, bail};

use super::KeysCommand;
use crate::config::Config;
use crate::config::parse_duration;
use crate::keys::{KeyDir, KeySet, SealedKeys, StoredKey, key_encryption_key};
use crate::store::Store;
use crate::{clock, human};

/// Below this, a rotation outruns verifiers that refresh the JWKS every few minutes.
const MIN_SAFE_ACTIVATION: std::time::Duration = std::time::Duration::from_secs(60);

pub async fn run(command: KeysCommand) -> anyhow::Result<()> {
    match command {
        KeysCommand::List(data) => {
            let config = data.existing()?;
            let set = Keys::open(&config).await?.read().await?;
            let now = clock::now();
            println!(
                "{:<40}  {:<20}  {:<20}  {:<20}  STATE",
                "KID", "CREATED", "ACTIVE-FROM", "RETIRED"
            );
            for key in set.keys() {
                println!(
                    "{:<40}  {:<20}  {:<20}  {:<20}  {}",
                    key.kid(),
                    key.created_at.to_rfc3339_seconds(),
                    key.active_from.to_rfc3339_seconds(),
                    key.retired_at
                        .map_or_else(|| "-".to_owned(), |t| t.to_rfc3339_seconds()),
                    set.state_at(key, now, config.retention.window).as_str()
                );
            }
            Ok(())
        }
        KeysCommand::Rotate {
            activation_delay,
            data,
        } => {
            let config = data.existing()?;
            let delay = match activation_delay.as_deref() {
                Some(text) => parse_duration(text)
                    .with_context(|| format!("`{text}` is not a duration like 10m or 30s"))?,
                None => config.signing.activation_delay,
            };
            if delay >= config.retention.window {
                bail!("--activation-delay must be shorter than the retention window");
            }
            if delay < MIN_SAFE_ACTIVATION {
                eprintln!(
                    "Warning: the new key signs {}, before verifiers that cached the JWKS (SIEM \
                     rules, `auditrelay listen`) can fetch it; until they do, they report the lines \
                     it signs as invalid. The default delay ({}) leaves them time.",
                    if delay.is_zero() {
                        "at once".to_owned()
                    } else {
                        format!("in {}s", delay.as_secs())
                    },
                    human::setting(config.signing.activation_delay)
                );
            }
            let key = Keys::open(&config).await?.rotate(&config, delay).await?;
            eprintln!(
                "Created key {}: published now, signing from {}.",
                key.kid(),
                key.active_from.to_rfc3339_millis()
            );
            println!("{}", key.kid());
            Ok(())
        }
    }
}

/// Where the installation's keys are: its data directory, or its shared store.
enum Keys {
    Dir(KeyDir),
    Sealed(Store, SealedKeys),
}

impl Keys {
    async fn open(config: &Config) -> anyhow::Result<Self> {
        let store_url = config.store_location();
        if !matches!(store_url, crate::config::StoreLocation::Postgres(_)) {
            return Ok(Self::Dir(KeyDir::in_data_dir(&config.server.data_dir)));
        }
        let kek = key_encryption_key(config)?;
        let store = Store::open(config)
            .await
            .with_context(|| format!("Failed to open {store_url}"))?;
        let vault = store.vault().expect("a PostgreSQL store has a vault");
        Ok(Self::Sealed(store, SealedKeys::new(vault, &kek)))
    }

    async fn read(self) -> anyhow::Result<KeySet> {
        let now = clock::now();
        match self {
            Self::Dir(dir) => dir
                .open_or_create(now)
                .with_context(|| format!("Failed to open the keys in {}", dir.path().display())),
            Self::Sealed(store, keys) => {
                // Read only: the first node to start makes or brings the keys, not a listing.
                let set = keys.load().await;
                store.close().await;
                set.context("Failed to open the keys in the database")?.context(
                    "The database holds no signing keys yet: the first node to start makes them",
                )
            }
        }
    }

    async fn rotate(
        self,
        config: &Config,
        delay: std::time::Duration,
    ) -> anyhow::Result<StoredKey> {
        let now = clock::now();
        match self {
            Self::Dir(dir) => dir
                .rotate(now, delay)
                .with_context(|| format!("Failed to rotate the keys in {}", dir.path().display())),
            Self::Sealed(store, keys) => {
                let key = keys.rotate(now, delay, &config.server.data_dir).await;
                store.close().await;
                key.context("Failed to rotate the keys in the database")
            }
        }
    }
}

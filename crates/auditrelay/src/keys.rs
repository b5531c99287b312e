//! The signing key ring: Ed25519 keys persisted in `<data_dir>/keys/`, which key signs at a
//! given time, which keys the JWKS publishes, and noticing keys another process added.
//!
//! Each key is one small JSON file (`0001.json`, `0002.json`, … in creation order) holding its
//! seed and its life: `created_at`, `active_from` (when it starts signing) and `retired_at`
//! (when it stopped). The directory is 0700 and every file 0600, because the seeds are the
//! whole of the installation's signing identity; a file is written to a temporary name, synced,
//! and then linked or renamed into place, so a crash never leaves a half-written key.
//!
//! Rotation (DECISIONS.md D6) publishes a new key at once but lets it sign only after an activation
//! delay, so verifiers that cache the JWKS fetch it before the first line it signs; the keys it
//! replaces are retired at that moment and stay published for the retention window, as long as
//! lines they signed can still be delivered or replayed. `auditrelay keys rotate` runs in its
//! own process while a server runs, so [`KeyRing::snapshot`] re-reads the directory when its
//! listing changed, checking at most once a second.
//!
//! With a store several nodes share (PostgreSQL), the keys are kept in it instead, sealed with
//! the key-encryption key (`keys/sealed.rs`); the ring reads them there, by the same rules.

pub mod note;
mod sealed;

use std::fs::{self, File, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::{
    DirBuilderExt as _, MetadataExt as _, OpenOptionsExt as _, PermissionsExt,
};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, Instant};

use auditrelay_core::{Kid, PublicKey, SigningKey, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use serde::{Deserialize, Serialize};

use crate::store::StoreError;
pub use sealed::{SealedKeys, key_encryption_key};

/// How often, at most, a running server looks at the key directory for changes.
pub const RELOAD_INTERVAL: Duration = Duration::from_secs(1);

/// The directory under the data directory that holds the keys.
pub const KEYS_DIR: &str = "keys";

const FILE_MODE: u32 = 0o600;
const DIR_MODE: u32 = 0o700;

#[derive(Debug, thiserror::Error)]
pub enum KeyError {
    #[error("{action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        #[source]
        source: io::Error,
    },
    /// A key file does not decode; never includes the file's content, which holds a seed.
    #[error("key file {path} is invalid: {reason}")]
    Invalid { path: PathBuf, reason: String },
    #[error("could not draw random bytes for a new key: {0}")]
    Random(getrandom::Error),
    #[error("the keys in the database: {0}")]
    Store(#[from] StoreError),
    /// The sealed keys in the database do not open; never includes a key.
    #[error("{reason}")]
    Sealed { reason: String },
    /// A key file beside the data (`checkpoint.key`) could not be read or made.
    #[error(transparent)]
    File(#[from] crate::secrets::SecretError),
}

fn io_error<'a>(action: &'static str, path: &'a Path) -> impl FnOnce(io::Error) -> KeyError + 'a {
    move |source| KeyError::Io {
        action,
        path: path.to_owned(),
        source,
    }
}

/// One key of the ring with its life times.
#[derive(Debug, Clone)]
pub struct StoredKey {
    pub key: SigningKey,
    pub created_at: Timestamp,
    /// From when it signs (if no newer key is active by then).
    pub active_from: Timestamp,
    /// When it stopped signing; it stays published for the retention window after that.
    pub retired_at: Option<Timestamp>,
    /// Its file name in the key directory.
    pub file: String,
}

impl StoredKey {
    pub fn kid(&self) -> &Kid {
        self.key.kid()
    }
}

/// Where a key is in its life, as `keys list` shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KeyState {
    /// Published, not signing yet.
    Pending,
    /// The key that signs now.
    Signing,
    /// No longer signing, still published so older lines verify.
    Published,
    /// Retired longer than the retention window ago: no longer published.
    Expired,
}

impl KeyState {
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Pending => "pending",
            Self::Signing => "signing",
            Self::Published => "published",
            Self::Expired => "expired",
        }
    }
}

/// The keys as read from the directory at one moment. Never empty.
#[derive(Debug, Clone)]
pub struct KeySet {
    /// Oldest first.
    keys: Vec<StoredKey>,
    fingerprint: Fingerprint,
}

impl KeySet {
    fn new(mut keys: Vec<StoredKey>, fingerprint: Fingerprint) -> Self {
        keys.sort_by(|a, b| (a.created_at, &a.file).cmp(&(b.created_at, &b.file)));
        Self { keys, fingerprint }
    }

    /// Every key, oldest first.
    pub fn keys(&self) -> &[StoredKey] {
        &self.keys
    }

    /// The key that signs at `t`: the latest to become active by then. Before any key is
    /// active (only possible if someone removed the older files) the first to activate signs,
    /// because a line must always be signed by a published key rather than not at all.
    pub fn signing_key_at(&self, t: Timestamp) -> &StoredKey {
        let order = |a: &&StoredKey, b: &&StoredKey| {
            (a.active_from, a.created_at, &a.file).cmp(&(b.active_from, b.created_at, &b.file))
        };
        self.keys
            .iter()
            .filter(|k| k.active_from <= t)
            .max_by(order)
            .or_else(|| self.keys.iter().min_by(order))
            .expect("a key set is never empty")
    }

    /// The keys the JWKS publishes at `t`: every key not retired, or retired less than
    /// `retention` ago. The key that signs at `t` is always among them.
    pub fn published_at(&self, t: Timestamp, retention: Duration) -> Vec<PublicKey> {
        self.keys
            .iter()
            .filter(|k| self.state_at(k, t, retention) != KeyState::Expired)
            .map(|k| k.key.public_key().clone())
            .collect()
    }

    pub fn state_at(&self, key: &StoredKey, t: Timestamp, retention: Duration) -> KeyState {
        if self.signing_key_at(t).file == key.file {
            return KeyState::Signing;
        }
        let retention_ms = i64::try_from(retention.as_millis()).unwrap_or(i64::MAX);
        match key.retired_at {
            Some(retired) if retired.saturating_add_millis(retention_ms) <= t => KeyState::Expired,
            // A key retired before it ever signed (rotated twice within the delay) is not
            // pending any more, but it is published like any retired key.
            Some(retired) if retired <= t => KeyState::Published,
            _ if key.active_from > t => KeyState::Pending,
            _ => KeyState::Published,
        }
    }
}

/// What the directory listing looked like when a [`KeySet`] was read: each key file's name,
/// inode, size and modification time. Every write replaces a file by a new inode, so any
/// change shows here even where modification times are coarse.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
struct Fingerprint(Vec<(String, u64, u64, i64, i64)>);

/// The key directory: reading, creating and rotating keys. Every write is atomic.
#[derive(Debug, Clone)]
pub struct KeyDir {
    path: PathBuf,
}

/// A key file's content.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct KeyFile {
    kid: String,
    /// The RFC 8032 private key, base64url without padding.
    seed: String,
    created_at: String,
    active_from: String,
    retired_at: Option<String>,
}

impl KeyDir {
    /// The key directory of a data directory; nothing is touched yet.
    pub fn in_data_dir(data_dir: &Path) -> Self {
        Self {
            path: data_dir.join(KEYS_DIR),
        }
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Reads the keys, first creating the directory and, when it holds none, one key that
    /// signs from `now`: what every command that needs keys starts with.
    pub fn open_or_create(&self, now: Timestamp) -> Result<KeySet, KeyError> {
        self.ensure_dir()?;
        if let Some(set) = self.load()? {
            return Ok(set);
        }
        let seed = random_seed()?;
        // Two processes starting on an empty directory at once both try `0001.json`; the
        // link that publishes it refuses to overwrite, so exactly one first key exists.
        match self.write_new("0001.json", &new_record(&seed, now, now)) {
            Ok(()) => {}
            Err(KeyError::Io { source, .. }) if source.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(e),
        }
        self.load()?.ok_or_else(|| KeyError::Invalid {
            path: self.path.clone(),
            reason: "the first key vanished right after it was written".into(),
        })
    }

    /// Adds a key that is published now and signs from `now + activation_delay`; every key
    /// not yet retired is retired at that moment. Returns the new key.
    pub fn rotate(
        &self,
        now: Timestamp,
        activation_delay: Duration,
    ) -> Result<StoredKey, KeyError> {
        let current = self.open_or_create(now)?;
        let delay_ms = i64::try_from(activation_delay.as_millis()).unwrap_or(i64::MAX);
        let active_from = now.saturating_add_millis(delay_ms);
        let seed = random_seed()?;
        let record = new_record(&seed, now, active_from);
        // The new key goes in first: if the process dies between the two steps, the old keys
        // are merely published longer than needed, never unpublished too early.
        let mut number = next_number(current.keys());
        let file = loop {
            let name = format!("{number:04}.json");
            match self.write_new(&name, &record) {
                Ok(()) => break name,
                // Another rotation took this number first: take the next.
                Err(KeyError::Io { source, .. })
                    if source.kind() == io::ErrorKind::AlreadyExists =>
                {
                    number += 1;
                }
                Err(e) => return Err(e),
            }
        };
        for old in current.keys() {
            if old.retired_at.is_none() {
                let mut retired = to_record(old);
                retired.retired_at = Some(active_from.to_rfc3339_millis());
                self.replace(&old.file, &retired)?;
            }
        }
        Ok(StoredKey {
            key: SigningKey::from_seed(&seed),
            created_at: now,
            active_from,
            retired_at: None,
            file,
        })
    }

    /// Reads every key file; `None` when there is none.
    pub fn load(&self) -> Result<Option<KeySet>, KeyError> {
        let fingerprint = self.fingerprint()?;
        let mut keys = Vec::with_capacity(fingerprint.0.len());
        for (name, ..) in &fingerprint.0 {
            keys.push(self.read_key(name)?);
        }
        Ok((!keys.is_empty()).then(|| KeySet::new(keys, fingerprint)))
    }

    /// Reads the keys again only if the listing differs from `known`'s.
    fn reload_if_changed(&self, known: &KeySet) -> Result<Option<KeySet>, KeyError> {
        if self.fingerprint()? == known.fingerprint {
            return Ok(None);
        }
        self.load()
    }

    fn ensure_dir(&self) -> Result<(), KeyError> {
        match fs::DirBuilder::new().mode(DIR_MODE).create(&self.path) {
            Ok(()) => sync_dir(self.path.parent().unwrap_or(Path::new("."))),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                let meta = fs::metadata(&self.path).map_err(io_error("read", &self.path))?;
                if !meta.is_dir() {
                    return Err(KeyError::Invalid {
                        path: self.path.clone(),
                        reason: "is not a directory".into(),
                    });
                }
                // Tighten a directory someone loosened: the seeds must stay the owner's.
                if meta.permissions().mode() & 0o077 != 0 {
                    fs::set_permissions(&self.path, fs::Permissions::from_mode(DIR_MODE))
                        .map_err(io_error("restrict the permissions of", &self.path))?;
                }
                Ok(())
            }
            Err(e) => Err(io_error("create", &self.path)(e)),
        }
    }

    fn fingerprint(&self) -> Result<Fingerprint, KeyError> {
        let entries = fs::read_dir(&self.path).map_err(io_error("read", &self.path))?;
        let mut files = Vec::new();
        for entry in entries {
            let entry = entry.map_err(io_error("read", &self.path))?;
            let name = entry.file_name().to_string_lossy().into_owned();
            // Temporary files start with a dot; anything else not `*.json` is not ours.
            if name.starts_with('.') || !name.ends_with(".json") {
                continue;
            }
            let path = entry.path();
            let meta = match fs::metadata(&path) {
                Ok(meta) => meta,
                // Replaced between the listing and the stat: the next look sees the new one.
                Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
                Err(e) => return Err(io_error("read", &path)(e)),
            };
            files.push((
                name,
                meta.ino(),
                meta.len(),
                meta.mtime(),
                meta.mtime_nsec(),
            ));
        }
        files.sort();
        Ok(Fingerprint(files))
    }

    fn read_key(&self, name: &str) -> Result<StoredKey, KeyError> {
        let path = self.path.join(name);
        let invalid = |reason: &str| KeyError::Invalid {
            path: path.clone(),
            reason: reason.to_owned(),
        };
        let bytes = fs::read(&path).map_err(io_error("read", &path))?;
        // The parse error is not shown: serde quotes input, and this input holds a seed.
        let file: KeyFile = serde_json::from_slice(&bytes).map_err(|_| {
            invalid("not a key file (kid, seed, created_at, active_from, retired_at)")
        })?;
        let seed: [u8; 32] = URL_SAFE_NO_PAD
            .decode(file.seed.as_bytes())
            .ok()
            .and_then(|s| s.try_into().ok())
            .ok_or_else(|| invalid("`seed` is not base64url of 32 bytes"))?;
        let key = SigningKey::from_seed(&seed);
        if key.kid().as_str() != file.kid {
            return Err(invalid("`kid` does not match the key"));
        }
        let time = |field: &str, value: &str| {
            Timestamp::parse_rfc3339(value)
                .ok_or_else(|| invalid(&format!("`{field}` is not an RFC 3339 time")))
        };
        Ok(StoredKey {
            created_at: time("created_at", &file.created_at)?,
            active_from: time("active_from", &file.active_from)?,
            retired_at: file
                .retired_at
                .as_deref()
                .map(|t| time("retired_at", t))
                .transpose()?,
            key,
            file: name.to_owned(),
        })
    }

    /// Writes `record` as a new file `name`, failing with `AlreadyExists` if it exists.
    fn write_new(&self, name: &str, record: &KeyFile) -> Result<(), KeyError> {
        let temp = self.write_temp(name, record)?;
        let target = self.path.join(name);
        // A hard link publishes the complete file and, unlike rename, never overwrites.
        let linked = fs::hard_link(&temp, &target);
        let _ = fs::remove_file(&temp);
        linked.map_err(io_error("create", &target))?;
        sync_dir(&self.path)
    }

    /// Replaces the file `name` by `record` atomically.
    fn replace(&self, name: &str, record: &KeyFile) -> Result<(), KeyError> {
        let temp = self.write_temp(name, record)?;
        let target = self.path.join(name);
        if let Err(e) = fs::rename(&temp, &target) {
            let _ = fs::remove_file(&temp);
            return Err(io_error("replace", &target)(e));
        }
        sync_dir(&self.path)
    }

    fn write_temp(&self, name: &str, record: &KeyFile) -> Result<PathBuf, KeyError> {
        let mut unique = [0u8; 8];
        getrandom::fill(&mut unique).map_err(KeyError::Random)?;
        let temp = self
            .path
            .join(format!(".{name}.{}.tmp", hex::encode(unique)));
        let json = serde_json::to_vec_pretty(record).expect("a key file serializes");
        let result = (|| {
            let mut file = OpenOptions::new()
                .write(true)
                .create_new(true)
                .mode(FILE_MODE)
                .open(&temp)?;
            file.write_all(&json)?;
            file.write_all(b"\n")?;
            file.sync_all()
        })();
        if let Err(e) = result {
            let _ = fs::remove_file(&temp);
            return Err(io_error("write", &temp)(e));
        }
        Ok(temp)
    }
}

/// A running server's view of its keys, refreshed when another process changed them.
pub struct KeyRing {
    home: KeyHome,
    current: RwLock<Arc<KeySet>>,
    /// When the directory was last looked at; claimed by one caller at a time.
    checked: Mutex<Instant>,
}

/// Where the keys are kept.
enum KeyHome {
    /// Files in the data directory (SQLite).
    Dir(KeyDir),
    /// The shared store, sealed (PostgreSQL).
    Sealed(SealedKeys),
}

impl std::fmt::Display for KeyHome {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Dir(dir) => write!(f, "{}", dir.path().display()),
            Self::Sealed(_) => f.write_str("the database"),
        }
    }
}

impl KeyRing {
    /// Opens the key directory of `data_dir`, creating the first key if there is none.
    pub fn open(data_dir: &Path, now: Timestamp) -> Result<Self, KeyError> {
        let dir = KeyDir::in_data_dir(data_dir);
        let set = dir.open_or_create(now)?;
        Ok(Self::holding(KeyHome::Dir(dir), set))
    }

    /// Opens the keys in a shared store, first bringing in `data_dir`'s (or making one) if it
    /// has none.
    pub async fn open_sealed(
        keys: SealedKeys,
        data_dir: &Path,
        now: Timestamp,
    ) -> Result<Self, KeyError> {
        let set = keys.open_or_create(now, data_dir).await?;
        Ok(Self::holding(KeyHome::Sealed(keys), set))
    }

    fn holding(home: KeyHome, set: KeySet) -> Self {
        Self {
            home,
            current: RwLock::new(Arc::new(set)),
            checked: Mutex::new(Instant::now()),
        }
    }

    /// The current keys. Looks for changes on disk when the last look is older than
    /// [`RELOAD_INTERVAL`]; a directory that cannot be read keeps the keys already known
    /// (with a warning) rather than leaving the server unable to sign.
    pub async fn snapshot(&self) -> Arc<KeySet> {
        let known = self.current.read().expect("key ring lock poisoned").clone();
        let due = {
            let mut checked = self.checked.lock().expect("key ring lock poisoned");
            let due = checked.elapsed() >= RELOAD_INTERVAL;
            if due {
                *checked = Instant::now();
            }
            due
        };
        if !due {
            return known;
        }
        let reloaded = match &self.home {
            KeyHome::Dir(dir) => {
                let (dir, base) = (dir.clone(), known.clone());
                match tokio::task::spawn_blocking(move || dir.reload_if_changed(&base)).await {
                    Ok(reloaded) => reloaded,
                    Err(e) => {
                        tracing::warn!(error = %e, "the signing key reload task failed");
                        return known;
                    }
                }
            }
            KeyHome::Sealed(keys) => keys.reload_if_changed(&known).await,
        };
        match reloaded {
            Ok(Some(set)) => {
                let set = Arc::new(set);
                tracing::info!(
                    keys.count = set.keys().len(),
                    keys.home = %self.home,
                    "signing keys reloaded"
                );
                *self.current.write().expect("key ring lock poisoned") = set.clone();
                set
            }
            Ok(None) => known,
            Err(e) => {
                tracing::warn!(error = %e, "could not reload the signing keys; keeping the known ones");
                known
            }
        }
    }
}

pub(crate) fn random_seed() -> Result<[u8; 32], KeyError> {
    let mut seed = [0u8; 32];
    getrandom::fill(&mut seed).map_err(KeyError::Random)?;
    Ok(seed)
}

fn new_record(seed: &[u8; 32], created_at: Timestamp, active_from: Timestamp) -> KeyFile {
    KeyFile {
        kid: SigningKey::from_seed(seed).kid().to_string(),
        seed: URL_SAFE_NO_PAD.encode(seed),
        created_at: created_at.to_rfc3339_millis(),
        active_from: active_from.to_rfc3339_millis(),
        retired_at: None,
    }
}

fn to_record(key: &StoredKey) -> KeyFile {
    KeyFile {
        kid: key.kid().to_string(),
        seed: URL_SAFE_NO_PAD.encode(key.key.to_seed()),
        created_at: key.created_at.to_rfc3339_millis(),
        active_from: key.active_from.to_rfc3339_millis(),
        retired_at: key.retired_at.map(Timestamp::to_rfc3339_millis),
    }
}

/// One more than the highest `NNNN.json` in use.
fn next_number(keys: &[StoredKey]) -> u32 {
    keys.iter()
        .filter_map(|k| k.file.strip_suffix(".json")?.parse::<u32>().ok())
        .max()
        .unwrap_or(0)
        + 1
}

/// Makes a directory entry change durable (a new, renamed or linked file).
fn sync_dir(path: &Path) -> Result<(), KeyError> {
    File::open(path)
        .and_then(|d| d.sync_all())
        .map_err(io_error("sync", path))
}

#[cfg(test)]
mod tests {
    use super::*;

    const DAY: Duration = Duration::from_secs(86_400);

    fn t(ms: i64) -> Timestamp {
        Timestamp::from_millis(1_800_000_000_000 + ms)
    }

    #[test]
    fn first_key_is_created_once_with_owner_only_permissions() {
        let data = tempfile::tempdir().unwrap();
        let dir = KeyDir::in_data_dir(data.path());
        let set = dir.open_or_create(t(0)).unwrap();
        assert_eq!(set.keys().len(), 1);
        let again = dir.open_or_create(t(5)).unwrap();
        assert_eq!(again.keys().len(), 1);
        assert_eq!(again.keys()[0].kid(), set.keys()[0].kid());
        assert_eq!(again.keys()[0].key.to_seed(), set.keys()[0].key.to_seed());

        let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(dir.path()), DIR_MODE);
        assert_eq!(mode(&dir.path().join("0001.json")), FILE_MODE);
        let leftovers: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .filter(|n| n.to_string_lossy().starts_with('.'))
            .collect();
        assert!(leftovers.is_empty(), "{leftovers:?}");
    }

    #[test]
    fn rotation_publishes_first_signs_later_and_retires_the_old_key() {
        let data = tempfile::tempdir().unwrap();
        let dir = KeyDir::in_data_dir(data.path());
        let first = dir.open_or_create(t(0)).unwrap().keys()[0].clone();
        let second = dir.rotate(t(1_000), Duration::from_secs(600)).unwrap();
        assert_eq!(second.file, "0002.json");
        assert_ne!(second.kid(), first.kid());

        let set = dir.load().unwrap().unwrap();
        assert_eq!(set.keys().len(), 2);
        let activation = t(601_000);
        let old = &set.keys()[0];
        assert_eq!(old.retired_at, Some(activation));
        // Before activation both are published and the old one signs.
        let before = t(600_999);
        assert_eq!(set.signing_key_at(before).kid(), first.kid());
        assert_eq!(set.published_at(before, 7 * DAY).len(), 2);
        assert_eq!(set.state_at(&set.keys()[1], before, DAY), KeyState::Pending);
        // From activation the new one signs; the old stays published for the window.
        assert_eq!(set.signing_key_at(activation).kid(), second.kid());
        assert_eq!(set.state_at(old, activation, DAY), KeyState::Published);
        let window_end = activation.saturating_add_millis(86_400_000);
        assert_eq!(
            set.state_at(old, window_end.saturating_sub_millis(1), DAY),
            KeyState::Published
        );
        assert_eq!(set.state_at(old, window_end, DAY), KeyState::Expired);
        let published = set.published_at(window_end, DAY);
        assert_eq!(published.len(), 1);
        assert_eq!(published[0].kid(), second.kid());
    }

    #[test]
    fn reload_sees_only_real_changes() {
        let data = tempfile::tempdir().unwrap();
        let dir = KeyDir::in_data_dir(data.path());
        let set = dir.open_or_create(t(0)).unwrap();
        assert!(dir.reload_if_changed(&set).unwrap().is_none());
        // A stray temporary file is not a key.
        fs::write(dir.path().join(".0002.json.x.tmp"), b"{").unwrap();
        assert!(dir.reload_if_changed(&set).unwrap().is_none());
        dir.rotate(t(10), Duration::ZERO).unwrap();
        let reloaded = dir.reload_if_changed(&set).unwrap().expect("changed");
        assert_eq!(reloaded.keys().len(), 2);
        assert_eq!(reloaded.signing_key_at(t(10)).file, "0002.json");
    }

    #[test]
    fn a_damaged_key_file_is_refused_without_showing_its_content() {
        let data = tempfile::tempdir().unwrap();
        let dir = KeyDir::in_data_dir(data.path());
        let set = dir.open_or_create(t(0)).unwrap();
        let path = dir.path().join("0001.json");
        let text = fs::read_to_string(&path).unwrap();
        let seed = URL_SAFE_NO_PAD.encode(set.keys()[0].key.to_seed());
        fs::write(&path, text.replace("\"kid\"", "\"kidd\"")).unwrap();
        let err = dir.load().unwrap_err().to_string();
        assert!(err.contains("0001.json") && !err.contains(&seed), "{err}");
        fs::write(&path, text.replace(&seed, "AAAA")).unwrap();
        let err = dir.load().unwrap_err().to_string();
        assert!(err.contains("seed"), "{err}");
    }

    #[test]
    fn before_any_activation_the_first_key_signs() {
        let key = |n: u8, from: i64| StoredKey {
            key: SigningKey::from_seed(&[n; 32]),
            created_at: t(0),
            active_from: t(from),
            retired_at: None,
            file: format!("{n:04}.json"),
        };
        let set = KeySet::new(vec![key(2, 200), key(1, 100)], Fingerprint::default());
        assert_eq!(set.signing_key_at(t(0)).file, "0001.json");
        assert_eq!(set.signing_key_at(t(150)).file, "0001.json");
        assert_eq!(set.signing_key_at(t(200)).file, "0002.json");
    }
}

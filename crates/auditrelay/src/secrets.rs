//! Secrets at rest: destination authorization values and extra headers are stored sealed
//! (XChaCha20-Poly1305), never in clear, so a copy of the database alone does not leak the SIEM
//! credentials.
//!
//! The key is 32 random bytes in `<data_dir>/secret.key` (mode 0600), made on first use. A
//! fresh random 24-byte nonce per seal makes accidental nonce reuse practically impossible, and
//! the record's id is bound in as associated data, so a sealed value copied onto another row
//! does not open.

use std::collections::BTreeMap;
use std::fs::{self, OpenOptions};
use std::io::{self, Write as _};
use std::os::unix::fs::OpenOptionsExt as _;
use std::path::{Path, PathBuf};

use chacha20poly1305::aead::{Aead, KeyInit, Payload};
use chacha20poly1305::{XChaCha20Poly1305, XNonce};

/// The file under the data directory that holds the key.
pub const KEY_FILE: &str = "secret.key";
const NONCE_LEN: usize = 24;

#[derive(Debug, thiserror::Error)]
pub enum SecretError {
    #[error("could not {action} {path}: {source}")]
    Io {
        action: &'static str,
        path: PathBuf,
        source: io::Error,
    },
    #[error("{0} does not hold a 32-byte key")]
    BadKey(PathBuf),
    #[error("a sealed secret does not open with this installation's key")]
    Open,
}

/// Seals and opens secrets with the installation's key.
#[derive(Clone)]
pub struct SecretBox {
    cipher: XChaCha20Poly1305,
}

impl std::fmt::Debug for SecretBox {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("SecretBox(<key>)")
    }
}

impl SecretBox {
    /// Seals with `key` (the secrets key a shared store keeps sealed, `keys/sealed.rs`).
    pub fn from_key(key: &[u8; 32]) -> Self {
        Self {
            cipher: XChaCha20Poly1305::new(key.into()),
        }
    }

    /// The key in the data directory, if there is one, without making one.
    pub fn existing_key(data_dir: &Path) -> Result<Option<[u8; 32]>, SecretError> {
        existing_key_in(data_dir, KEY_FILE)
    }

    /// Reads the key from the data directory, creating it on first use.
    pub fn open_or_create(data_dir: &Path) -> Result<Self, SecretError> {
        Ok(Self::from_key(&key_in(data_dir, KEY_FILE)?))
    }

    /// `nonce || ciphertext`, bound to `context` (the owning record's id).
    pub fn seal(&self, plaintext: &str, context: &str) -> Vec<u8> {
        let mut nonce = [0u8; NONCE_LEN];
        getrandom::fill(&mut nonce).expect("the operating system's random source failed");
        let sealed = self
            .cipher
            .encrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: plaintext.as_bytes(),
                    aad: context.as_bytes(),
                },
            )
            .expect("encryption of a bounded message cannot fail");
        let mut out = nonce.to_vec();
        out.extend(sealed);
        out
    }

    pub fn open(&self, sealed: &[u8], context: &str) -> Result<String, SecretError> {
        if sealed.len() < NONCE_LEN {
            return Err(SecretError::Open);
        }
        let (nonce, ciphertext) = sealed.split_at(NONCE_LEN);
        let nonce: [u8; NONCE_LEN] = nonce.try_into().expect("split at the nonce length");
        let plain = self
            .cipher
            .decrypt(
                &XNonce::from(nonce),
                Payload {
                    msg: ciphertext,
                    aad: context.as_bytes(),
                },
            )
            .map_err(|_| SecretError::Open)?;
        String::from_utf8(plain).map_err(|_| SecretError::Open)
    }

    /// A destination's extra headers (name → value) sealed as one JSON object, bound to the
    /// destination `id` apart from its authorization; `None` for none.
    pub fn seal_headers(&self, id: &str, headers: &BTreeMap<String, String>) -> Option<Vec<u8>> {
        (!headers.is_empty()).then(|| {
            let json = serde_json::to_string(headers).expect("a map of strings serializes");
            self.seal(&json, &headers_context(id))
        })
    }

    /// What [`Self::seal_headers`] sealed for destination `id` (nothing for `None`).
    pub fn open_headers(
        &self,
        id: &str,
        sealed: Option<&[u8]>,
    ) -> Result<BTreeMap<String, String>, SecretError> {
        let Some(sealed) = sealed else {
            return Ok(BTreeMap::new());
        };
        let json = self.open(sealed, &headers_context(id))?;
        serde_json::from_str(&json).map_err(|_| SecretError::Open)
    }
}

fn headers_context(id: &str) -> String {
    format!("{id}/headers")
}

/// The 32-byte key in `data_dir/file`, if there is one, without making one.
pub fn existing_key_in(data_dir: &Path, file: &str) -> Result<Option<[u8; 32]>, SecretError> {
    let path = data_dir.join(file);
    match fs::read(&path) {
        Ok(bytes) => Ok(Some(
            bytes.try_into().map_err(|_| SecretError::BadKey(path))?,
        )),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(source) => Err(SecretError::Io {
            action: "read",
            path,
            source,
        }),
    }
}

/// The 32-byte key in `data_dir/file` (mode 0600), made of random bytes on first use. The new
/// key is written and synced under a name of its own, then linked into place, which fails if
/// another process linked one first (that one is used): a reader never sees a half-written
/// key, and a crash never leaves one.
pub fn key_in(data_dir: &Path, file: &str) -> Result<[u8; 32], SecretError> {
    let path = data_dir.join(file);
    let io = |action, path: &Path| {
        let path = path.to_path_buf();
        move |source| SecretError::Io {
            action,
            path,
            source,
        }
    };
    if let Some(key) = existing_key_in(data_dir, file)? {
        return Ok(key);
    }
    let mut key = [0u8; 32];
    getrandom::fill(&mut key).expect("the operating system's random source failed");
    let mut suffix = [0u8; 8];
    getrandom::fill(&mut suffix).expect("the operating system's random source failed");
    let temp = data_dir.join(format!(".{file}.{}", u64::from_le_bytes(suffix)));
    let written = OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&temp)
        .map_err(io("create", &temp))
        .and_then(|mut file| {
            file.write_all(&key).map_err(io("write", &temp))?;
            file.sync_all().map_err(io("sync", &temp))
        });
    // The temporary name goes whatever happened: it must not keep a key nobody uses.
    let linked = written.map(|()| fs::hard_link(&temp, &path));
    let _ = fs::remove_file(&temp);
    let linked = linked?;
    match linked {
        Ok(()) => {
            // The new name itself must survive a crash.
            fs::File::open(data_dir)
                .and_then(|dir| dir.sync_all())
                .map_err(io("sync", data_dir))?;
            Ok(key)
        }
        Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
            existing_key_in(data_dir, file)?.ok_or(SecretError::BadKey(path))
        }
        Err(e) => Err(io("link", &path)(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A key file is made once, 0600, 32 bytes, with no temporary name left behind; the next
    /// call reads the same key; a file that is not a key is an error, not replaced.
    #[test]
    fn a_key_file_is_made_once_and_whole() {
        use std::os::unix::fs::PermissionsExt as _;
        let dir = tempfile::tempdir().unwrap();
        let first = key_in(dir.path(), "checkpoint.key").unwrap();
        assert_eq!(key_in(dir.path(), "checkpoint.key").unwrap(), first);
        let meta = fs::metadata(dir.path().join("checkpoint.key")).unwrap();
        assert_eq!((meta.len(), meta.permissions().mode() & 0o777), (32, 0o600));
        let names: Vec<_> = fs::read_dir(dir.path())
            .unwrap()
            .map(|e| e.unwrap().file_name())
            .collect();
        assert_eq!(names, ["checkpoint.key"]);
        fs::write(dir.path().join("short.key"), b"not a key").unwrap();
        assert!(matches!(
            key_in(dir.path(), "short.key"),
            Err(SecretError::BadKey(_))
        ));
    }

    #[test]
    fn headers_are_sealed_apart_from_the_authorization() {
        let dir = tempfile::tempdir().unwrap();
        let sb = SecretBox::open_or_create(dir.path()).unwrap();
        assert_eq!(sb.seal_headers("d", &BTreeMap::new()), None);
        let headers = BTreeMap::from([("x-api-key".to_owned(), "k-123".to_owned())]);
        let sealed = sb.seal_headers("d", &headers).unwrap();
        assert!(!sealed.windows(5).any(|w| w == b"k-123"));
        assert_eq!(sb.open_headers("d", Some(&sealed)).unwrap(), headers);
        assert!(sb.open_headers("e", Some(&sealed)).is_err());
        // Not under the authorization's context either.
        assert!(sb.open(&sealed, "d").is_err());
        assert_eq!(sb.open_headers("d", None).unwrap(), BTreeMap::new());
    }

    #[test]
    fn seals_opens_and_binds_to_the_record() {
        let dir = tempfile::tempdir().unwrap();
        let sb = SecretBox::open_or_create(dir.path()).unwrap();
        let sealed = sb.seal("Splunk 1234-secret", "dest-1");
        assert!(
            !sealed.windows(6).any(|w| w == b"Splunk"),
            "no plaintext in the sealed bytes"
        );
        assert_eq!(sb.open(&sealed, "dest-1").unwrap(), "Splunk 1234-secret");
        assert!(sb.open(&sealed, "dest-2").is_err(), "bound to its record");
        assert_ne!(
            sb.seal("x", "a"),
            sb.seal("x", "a"),
            "fresh nonce each time"
        );

        // The same key is found again, with owner-only permissions.
        let again = SecretBox::open_or_create(dir.path()).unwrap();
        assert_eq!(again.open(&sealed, "dest-1").unwrap(), "Splunk 1234-secret");
        use std::os::unix::fs::PermissionsExt;
        let mode = fs::metadata(dir.path().join(KEY_FILE))
            .unwrap()
            .permissions()
            .mode();
        assert_eq!(mode & 0o777, 0o600);
    }
}

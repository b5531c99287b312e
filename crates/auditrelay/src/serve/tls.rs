//! TLS for the API's listener: the certificate chain and key from two PEM files, ALPN `h2` and
//! `http/1.1`, and the files read again when they change, so a renewed certificate (certbot,
//! cert-manager) is served without a restart.
//!
//! The files are looked at, at most once a second, when a client connects; a pair that does not
//! load (a half-written renewal, a key that does not match) is logged and the previous
//! certificate stays in service.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime};

use rustls::ServerConfig;
use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject as _;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{ClientHello, ResolvesServerCert};
use rustls::sign::CertifiedKey;
use tokio_rustls::TlsAcceptor;

use crate::clock::Clock;

/// How often the files may be looked at for a change.
const CHECK_EVERY: Duration = Duration::from_secs(1);

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not read {path}: {reason}")]
    Read { path: PathBuf, reason: String },
    #[error("{0} holds no certificate")]
    NoCertificate(PathBuf),
    #[error("the key does not fit the certificate, or is of a kind not supported: {0}")]
    Key(rustls::Error),
    #[error("could not configure TLS: {0}")]
    Configure(#[from] rustls::Error),
}

/// An acceptor serving the pair in `cert` and `key`, read again whenever they change (looked
/// at once a second by `clock`).
pub fn acceptor(cert: &Path, key: &Path, clock: Clock) -> Result<TlsAcceptor, TlsError> {
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let resolver = Reloading::new(cert.to_owned(), key.to_owned(), provider.clone(), clock)?;
    let mut config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(resolver));
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

#[derive(Debug)]
struct Reloading {
    cert: PathBuf,
    key: PathBuf,
    provider: Arc<CryptoProvider>,
    state: Mutex<Loaded>,
    /// When to look at the files again (tests move it forward).
    clock: Clock,
}

#[derive(Debug)]
struct Loaded {
    key: Arc<CertifiedKey>,
    /// The files' modification times when `key` was read.
    stamp: Stamp,
    /// Those of a pair that did not load, logged once; tried again each second, since a
    /// renewal may be completed without the times changing.
    failed: Option<Stamp>,
    checked: Instant,
}

type Stamp = (Option<SystemTime>, Option<SystemTime>);

impl Reloading {
    fn new(
        cert: PathBuf,
        key: PathBuf,
        provider: Arc<CryptoProvider>,
        clock: Clock,
    ) -> Result<Self, TlsError> {
        let stamp = stamp(&cert, &key);
        let loaded = load(&cert, &key, &provider)?;
        Ok(Self {
            cert,
            key,
            provider,
            state: Mutex::new(Loaded {
                key: loaded,
                stamp,
                failed: None,
                checked: clock.instant(),
            }),
            clock,
        })
    }

    fn current(&self) -> Arc<CertifiedKey> {
        let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
        let now = self.clock.instant();
        if now.duration_since(state.checked) >= CHECK_EVERY {
            state.checked = now;
            let stamp = stamp(&self.cert, &self.key);
            if stamp != state.stamp {
                match load(&self.cert, &self.key, &self.provider) {
                    Ok(key) => {
                        state.key = key;
                        state.stamp = stamp;
                        state.failed = None;
                        tracing::info!(tls.cert = %self.cert.display(), "TLS certificate reloaded");
                    }
                    Err(e) => {
                        if state.failed != Some(stamp) {
                            state.failed = Some(stamp);
                            tracing::error!(
                                tls.cert = %self.cert.display(),
                                error = %e,
                                "TLS certificate changed but does not load; the previous one stays in service"
                            );
                        }
                    }
                }
            }
        }
        state.key.clone()
    }
}

impl ResolvesServerCert for Reloading {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(self.current())
    }
}

fn stamp(cert: &Path, key: &Path) -> Stamp {
    let modified = |p: &Path| std::fs::metadata(p).and_then(|m| m.modified()).ok();
    (modified(cert), modified(key))
}

fn load(cert: &Path, key: &Path, provider: &CryptoProvider) -> Result<Arc<CertifiedKey>, TlsError> {
    let read = |path: &Path| {
        std::fs::read(path).map_err(|e| TlsError::Read {
            path: path.to_owned(),
            reason: e.to_string(),
        })
    };
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<_, _>>()
        .map_err(|e| TlsError::Read {
            path: cert.to_owned(),
            reason: e.to_string(),
        })?;
    if chain.is_empty() {
        return Err(TlsError::NoCertificate(cert.to_owned()));
    }
    let key = PrivateKeyDer::from_pem_slice(&read(key)?).map_err(|e| TlsError::Read {
        path: key.to_owned(),
        reason: e.to_string(),
    })?;
    let certified = CertifiedKey::from_der(chain, key, provider).map_err(TlsError::Key)?;
    Ok(Arc::new(certified))
}

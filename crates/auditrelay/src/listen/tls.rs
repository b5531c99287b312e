//! Self-signed TLS for local receivers (`listen --tls-self-signed` and the tests' receiver):
//! a certificate for `localhost`, `127.0.0.1` and `::1` made at start-up with rcgen, and a
//! rustls acceptor on the aws-lc-rs provider, the only provider in this build.
//!
//! The key lives only in memory, so every start has a fresh certificate. Clients either skip
//! verification or trust [`SelfSigned::cert_pem`]; the fingerprint lets a person check by eye
//! that they reached the receiver they started.

use std::sync::Arc;

use rustls::ServerConfig;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer};
use sha2::{Digest as _, Sha256};
use tokio_rustls::TlsAcceptor;

/// The names the certificate is valid for: every way to say "this machine" in a URL.
pub const NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    #[error("could not generate the certificate: {0}")]
    Generate(#[from] rcgen::Error),
    #[error("could not configure TLS: {0}")]
    Configure(#[from] rustls::Error),
}

/// A freshly generated certificate and the acceptor that serves it.
#[derive(Clone)]
pub struct SelfSigned {
    cert: CertificateDer<'static>,
    cert_pem: String,
    acceptor: TlsAcceptor,
}

impl SelfSigned {
    pub fn generate() -> Result<Self, TlsError> {
        let names: Vec<String> = NAMES.iter().map(|n| (*n).to_owned()).collect();
        // rcgen makes a SAN of each name, an IP address SAN where the name parses as one.
        let generated = rcgen::generate_simple_self_signed(names)?;
        let cert = generated.cert.der().clone();
        let key = PrivatePkcs8KeyDer::from(generated.signing_key.serialize_der());
        // The provider is named rather than taken from the process default, so a test binary
        // that never installed one gets the same TLS as the `auditrelay` binary.
        let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
        let mut config = ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], PrivateKeyDer::Pkcs8(key))?;
        // The server speaks HTTP/1.1 only; saying so stops a client from trying h2.
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        Ok(Self {
            cert,
            cert_pem: generated.cert.pem(),
            acceptor: TlsAcceptor::from(Arc::new(config)),
        })
    }

    /// The certificate in PEM, for a client that should trust exactly this receiver.
    pub fn cert_pem(&self) -> &str {
        &self.cert_pem
    }

    /// The certificate in DER.
    pub fn cert_der(&self) -> &[u8] {
        &self.cert
    }

    /// The SHA-256 fingerprint of the certificate as `openssl x509 -fingerprint -sha256` shows
    /// it: upper-case hex pairs joined by colons.
    pub fn fingerprint(&self) -> String {
        let digest = Sha256::digest(&self.cert);
        let pairs: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
        pairs.join(":")
    }

    pub fn acceptor(&self) -> TlsAcceptor {
        self.acceptor.clone()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_certificate_is_fresh_and_has_a_readable_fingerprint() {
        let one = SelfSigned::generate().unwrap();
        let two = SelfSigned::generate().unwrap();
        assert_ne!(one.fingerprint(), two.fingerprint());
        let fingerprint = one.fingerprint();
        assert_eq!(fingerprint.len(), 32 * 3 - 1, "{fingerprint}");
        assert!(fingerprint.split(':').all(|pair| {
            pair.len() == 2
                && pair
                    .chars()
                    .all(|c| c.is_ascii_hexdigit() && !c.is_ascii_lowercase())
        }));
        assert!(one.cert_pem().starts_with("-----BEGIN CERTIFICATE-----"));
    }
}

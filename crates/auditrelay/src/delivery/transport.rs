//! What every transport shares: the settings a destination's client is built with, and one
//! attempt's outcome as the retry policy and the webhook status see it. HTTP (`http.rs`) and
//! syslog (`syslog.rs`) both speak in these; neither depends on the other for them.

use std::time::Duration;

use auditrelay_core::retry::{Attempt, TransportError};
use bytes::Bytes;

use crate::config::DeliveryConfig;

/// A client certificate chain and its private key, both PEM, as a syslog destination holds them
/// (the certificate in its settings, the key sealed as its `authorization`).
#[derive(Clone, PartialEq, Eq)]
pub struct ClientIdentity {
    pub certificate_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for ClientIdentity {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("ClientIdentity { key: <redacted> }")
    }
}

/// What a destination's client may do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeliverySettings {
    /// The destination's `skip_ssl_verification`: accept any certificate.
    pub skip_ssl_verification: bool,
    pub allow_private_endpoints: bool,
    pub allow_http_endpoints: bool,
    pub connect_timeout: Duration,
    /// The whole attempt: connecting, sending and reading the answer.
    pub request_timeout: Duration,
    /// The certificate a syslog destination shows a receiver that asks for one.
    pub client_identity: Option<ClientIdentity>,
}

impl Default for DeliverySettings {
    fn default() -> Self {
        Self {
            skip_ssl_verification: false,
            allow_private_endpoints: false,
            allow_http_endpoints: false,
            connect_timeout: Duration::from_secs(10),
            request_timeout: Duration::from_secs(30),
            client_identity: None,
        }
    }
}

impl DeliverySettings {
    /// The installation's rules and timeouts with one destination's certificate choice.
    pub fn new(config: &DeliveryConfig, skip_ssl_verification: bool) -> Self {
        Self {
            skip_ssl_verification,
            allow_private_endpoints: config.allow_private_endpoints,
            allow_http_endpoints: config.allow_http_endpoints,
            connect_timeout: config.connect_timeout,
            request_timeout: config.request_timeout,
            client_identity: None,
        }
    }
}

/// The result of one attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SendOutcome {
    /// What the retry policy judges.
    pub attempt: Attempt,
    /// The HTTP status, when there was an answer.
    pub code: Option<u16>,
    /// The reason phrase of the answer (`Internal Server Error`), or why there was none
    /// (`connection refused`); at most [`MAX_MESSAGE_BYTES`].
    pub message: String,
    /// The answer's body, for a request that keeps it, as far as it was read (at most
    /// the HTTP transport's limit); empty otherwise, and when there was no answer.
    pub body: Bytes,
}

impl SendOutcome {
    pub fn transport(error: TransportError, message: impl Into<String>) -> Self {
        Self {
            attempt: Attempt::Transport(error),
            code: None,
            message: truncate(message.into()),
            body: Bytes::new(),
        }
    }
}

/// Longest status message, in bytes: it is stored with the webhook and shown by the API.
pub const MAX_MESSAGE_BYTES: usize = 256;

/// Cuts to [`MAX_MESSAGE_BYTES`] without splitting a character.
pub(super) fn truncate(mut message: String) -> String {
    if message.len() > MAX_MESSAGE_BYTES {
        let mut end = MAX_MESSAGE_BYTES;
        while !message.is_char_boundary(end) {
            end -= 1;
        }
        message.truncate(end);
    }
    message
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_cut_on_a_character_boundary() {
        assert_eq!(truncate("short".into()), "short");
        let long = "é".repeat(200);
        let cut = truncate(long);
        assert_eq!(cut.len(), 256);
        assert!(cut.chars().all(|c| c == 'é'));
        assert_eq!(truncate(format!("a{}", "é".repeat(200))).len(), 255);
    }
}

//! Why a line is not one of ours, and why its signature was not accepted: what every reader
//! of our lines (Konnect's formats, OCSF, pull-API entries) reports.

/// Why a line is not one of ours.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    #[error("the line is not UTF-8")]
    NotUtf8,
    #[error("the line is neither CEF, JSON, CPS nor OCSF")]
    UnknownFormat,
    #[error("malformed CEF: {0}")]
    Cef(&'static str),
    #[error("malformed JSON at byte {at}: {what}")]
    Json { at: usize, what: &'static str },
    #[error("field `{key}`: {what}")]
    Field { key: String, what: &'static str },
}

/// Why a line's signature was not accepted.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VerifyError {
    #[error("unparsable line: {0}")]
    Unparsable(#[from] ParseError),
    #[error("the line has no signature")]
    NoSignature,
    #[error("the signature is not base64url (no padding) of 64 bytes")]
    BadBase64,
    #[error("no known key verifies the signature")]
    NoKeyMatches,
}

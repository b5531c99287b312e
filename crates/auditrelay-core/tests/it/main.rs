//! The one integration test binary of auditrelay-core: log formats, signatures, JWKS and pull
//! entries, OCSF lines against the OCSF schema, the tamper-evident log's Merkle tree against
//! RFC 6962's reference values, checked against pinned bytes, Konnect's published samples, properties over arbitrary
//! events, and an independent Ed25519 implementation (the `openssl` CLI).

mod support;

mod errors;
mod golden;
mod integrity_doc;
mod jwks;
mod konnect_samples;
mod merkle;
mod ocsf;
mod openssl;
mod properties;
mod pull;

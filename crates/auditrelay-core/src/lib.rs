//! The pure core of auditrelay: the rules every part of the service shares, with no I/O.
//!
//! - the event model and its rules ([`event`]), identifiers ([`ids`]) and time ([`timestamp`]);
//! - who may do what ([`rbac`]) and what an API token's prefix and digest are ([`token`]);
//! - the log formats, CEF, JSON and CPS, their parser and the pull API's entries
//!   ([`format`](mod@format));
//! - Ed25519 signing, key ids and the JWKS ([`signing`]);
//! - a delivery batch ([`batch`]), the retry and probe policy ([`retry`]), which addresses
//!   a webhook may reach ([`endpoint`]), and what each destination kind's receiver accepts
//!   ([`kind`]);
//! - the stored form of an event's body, shared by every store backend ([`stored`]).
//!
//! The choices behind them are in the repository's `docs/DECISIONS.md`.
//!
//! Nothing in this crate does I/O: no sockets, files, clocks or randomness beyond what a caller
//! passes in. That is what lets it be tested exhaustively, property-tested and fuzzed on its own,
//! and it is enforced by its dependency list (no tokio, axum, sqlx or reqwest).

pub mod batch;
pub mod checkpoint;
pub mod completeness;
pub mod endpoint;
pub mod event;
pub mod format;
pub mod ids;
pub mod intake;
pub mod integrity;
pub mod kind;
pub mod merkle;
pub mod rbac;
pub mod retry;
pub mod signing;
pub mod stored;
pub mod timestamp;
pub mod token;

pub use event::{AuthenticationOutcome, AuthenticationType, Event, EventDetail, EventType};
pub use format::{Format, FormatConfig, Record};
pub use ids::{InvalidId, OrgId, PortalId, Region};
pub use rbac::{Grant, Permission, Role};
pub use signing::{Kid, PublicKey, SigningKey};
pub use timestamp::Timestamp;

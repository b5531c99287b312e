//! The pure core of auditrelay: the event model, identifiers, time and the RBAC policy, and (as
//! they land) the log formats, signing, and the replay and retry rules.
//!
//! Nothing in this crate does I/O: no sockets, files, clocks or randomness beyond what a caller
//! passes in. That is what lets it be tested exhaustively, property-tested and fuzzed on its own,
//! and it is enforced by its dependency list (no tokio, axum, sqlx or reqwest).

pub mod batch;
pub mod endpoint;
pub mod event;
pub mod format;
pub mod ids;
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

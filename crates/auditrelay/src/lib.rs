//! auditrelay: a self-hosted audit-log service, wire-compatible with Kong Konnect's Audit
//! Logs API. This crate holds everything that does I/O; the pure rules live in
//! `auditrelay-core`. See ARCHITECTURE.md for the map.

pub mod api;
pub mod app;
pub mod body;
pub mod changes;
pub mod cli;
pub mod client;
pub mod clock;
pub mod config;
pub mod delivery;
#[cfg(test)]
mod fixtures;
pub mod human;
pub mod integrity;
pub mod jobs;
pub mod keys;
pub mod leases;
pub mod listen;
pub mod router;
pub mod secrets;
pub mod serve;
pub mod state;
pub mod store;
pub mod telemetry;
pub mod tokens;
pub mod ui;

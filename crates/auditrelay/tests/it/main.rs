//! The integration tests of the `auditrelay` crate: one test binary, one module per feature,
//! shared helpers in `support`. Servers run in-process on real sockets (port 0) with a fresh
//! data directory each; the durability tests run the real binary.

mod support;

mod auth;
mod browser;
mod cli;
mod clients;
mod conformance;
mod connections;
mod delivery;
mod delivery_log;
mod destinations;
mod durability;
mod emit;
mod errors;
mod ingest;
mod integrity;
mod jwks;
mod keys;
mod kinds;
mod listen;
mod nodes;
mod openapi;
mod ops;
mod portals;
mod properties;
mod pull;
mod readme;
mod receiver;
mod regions;
mod replay;
mod replay_cli;
mod retention;
mod self_audit;
mod storage;
mod syslog;
mod test_connection;
mod tls;
mod ui;
mod verify;
mod webhooks;

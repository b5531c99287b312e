//! Webhook delivery: rendered, signed lines leave in gzip batches for each enabled webhook's
//! destination, retried and probed by the core's retry policy (DECISIONS.md D2 to D5 and D10).
//!
//! Split by stage, as a reader follows a batch:
//! - `engine` — the supervisor: one lane per enabled webhook, and the lag gauges;
//! - `lane` — one webhook's loop: read after the cursor, batch, sign, send, retry, record;
//! - `replay` — one replay job: the window's events in event-time order, through the same
//!   stages, with its progress saved after every batch;
//! - `resend` — a scope's refused events, sent again when an operator asks;
//! - `setup` — what a batch is delivered with: webhook, destination, secret, client;
//! - `ahead` — the events after the batch being sent, read ahead, and the batches after it,
//!   signed ahead, in ingest order for a lane and event-time order for a replay job;
//! - `encode` — render, sign, frame for the destination's kind and gzip a batch on every core;
//! - `request` — what a batch is sent as, for the destination's kind;
//! - `http` — the network side of one destination: one guarded HTTP client that sends a built
//!   request, one attempt;
//! - `judge` — what an attempt did: the answer as the kind reads it, as a whole or record by
//!   record, and Splunk's acknowledgement;
//! - `outcome` — an attempt's answer as the delivery log, the metrics and the refused list
//!   keep it;
//! - `shared` — what every lane and job shares;
//! - `sample` — one signed sample line sent at once: the API's connection test.
//!
//! Lanes and replay jobs use the stages; neither imports the other, and the engine above them
//! imports both.

mod ahead;
mod encode;
mod engine;
pub mod http;
mod judge;
mod lane;
mod outcome;
mod records;
mod replay;
mod request;
mod resend;
pub mod sample;
mod setup;
mod shared;
mod syslog;
mod transport;

pub use engine::Delivery;
pub use shared::Shared;

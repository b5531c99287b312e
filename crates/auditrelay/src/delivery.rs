//! Webhook delivery: rendered, signed lines leave in gzip batches for each enabled webhook's
//! destination, retried and probed by the core's retry policy (DECISIONS.md D2 to D5 and D10).
//!
//! Split by stage, as a reader follows a batch:
//! - `engine` — the supervisor: one lane per enabled webhook, and the lag gauges;
//! - `lane` — one webhook's loop: read after the cursor, batch, sign, send, retry, record;
//! - `replay` — one replay job: the window's events in event-time order, through the same
//!   batching, signing and retries, with its progress saved after every batch;
//! - `http` — the network side of one destination: one guarded HTTP client, one attempt;
//! - `sample` — one signed sample line sent at once: the API's connection test.

mod engine;
pub mod http;
mod lane;
mod replay;
pub mod sample;

pub use engine::{Delivery, Shared};

//! Webhook delivery: rendered, signed lines leave in gzip batches for each enabled webhook's
//! destination, retried and probed by the core's retry policy (Decisions 3 to 5 and 10).
//!
//! `http` is the network side of one destination: one guarded HTTP client and one attempt at a
//! time. The engine that reads events, builds batches and keeps cursors sits on top of it.

pub mod http;

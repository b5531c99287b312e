//! One signed sample line, sent to an endpoint right now: the "test connection" of the API and
//! the UI. It goes through exactly what a batch goes through — the line rendered and signed in
//! the destination's format with the current key, gzip, the same guarded client (SSRF guard at
//! connect time, no redirects, the destination's certificate choice) and the same headers — but
//! once, without retries, and nothing is recorded: the answer is shown to the person who asked.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auditrelay_core::batch::{BatchBuilder, idempotency_key};
use auditrelay_core::format::{Format, sign_event};
use auditrelay_core::{Event, FormatConfig};
use bytes::Bytes;

use super::http::{DeliveryClient, DeliverySettings};
use super::request::Request;
use crate::clock;
use crate::config::DeliveryConfig;
use crate::keys::KeyRing;

/// Where and how the sample goes: a destination's delivery fields.
pub struct Target<'a> {
    pub endpoint: &'a str,
    pub authorization: &'a str,
    /// Extra headers, name → value.
    pub headers: &'a BTreeMap<String, String>,
    pub format: Format,
    pub skip_ssl_verification: bool,
}

/// What the endpoint answered.
pub struct Answer {
    /// The HTTP status; `None` when there was no HTTP answer.
    pub code: Option<u16>,
    /// The reason phrase, or why there was no answer (refused, timed out, the TLS error).
    pub message: String,
    pub took: Duration,
}

impl Answer {
    /// Whether the endpoint took the line, as delivery would count it (a 2xx).
    pub fn delivered(&self) -> bool {
        self.code.is_some_and(|c| (200..300).contains(&c))
    }
}

/// Renders and signs `event` as one line in `target.format`, and sends it, once.
pub async fn send(
    config: &DeliveryConfig,
    keys: &KeyRing,
    format: &FormatConfig,
    target: &Target<'_>,
    event: &Event,
) -> Answer {
    let key_set = keys.snapshot().await;
    let key = &key_set.signing_key_at(clock::now()).key;
    let mut line = Vec::new();
    sign_event(target.format, event, format, key, &mut line);
    let mut batch = BatchBuilder::new(config.batch_limits());
    batch
        .push(0, &line)
        .expect("the first line of a batch always fits");
    let batch = batch.finish().expect("one line");
    let client = DeliveryClient::new(DeliverySettings::new(config, target.skip_ssl_verification))
        .expect("a client with these settings always builds");
    let trace = event.trace_id.as_deref().unwrap_or_default();
    let key = idempotency_key(&format!("connection-test/{trace}"), 0, 0);
    let started = Instant::now();
    let request = Request::webhook(
        target.endpoint,
        target.authorization,
        target.headers,
        Bytes::from(batch.body),
        &key,
    );
    let sent = client.send(request).await;
    Answer {
        code: sent.code,
        message: sent.message,
        took: started.elapsed(),
    }
}

//! One signed sample line, sent to an endpoint right now: the "test connection" of the API and
//! the UI. It goes through exactly what a batch goes through — the line rendered and signed in
//! the destination's format with the current key, gzip, the same guarded client (SSRF guard at
//! connect time, no redirects, the destination's certificate choice) and the same headers — but
//! once, without retries, and nothing is recorded: the answer is shown to the person who asked.
//! It is framed for the destination's kind and its answer judged as the kind's are; Splunk's
//! indexer acknowledgement is not awaited.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use auditrelay_core::batch::{BatchBuilder, GZIP_LEVEL, idempotency_key};
use auditrelay_core::format::{Format, sign_event_with_id};
use auditrelay_core::kind::{Framer, Item, Judgement, Kind, RecordMeta, Stream};
use auditrelay_core::retry::Attempt;
use auditrelay_core::{Event, FormatConfig};
use bytes::Bytes;
use uuid::Uuid;

use super::http::DeliveryClient;
use super::request::Request;
use super::setup::client_identity;
use super::transport::{DeliverySettings, truncate};
use crate::clock;
use crate::config::DeliveryConfig;
use crate::keys::KeyRing;

/// Where and how the sample goes: a destination's delivery fields.
pub struct Target<'a> {
    pub kind: &'a Kind,
    /// The destination's id (Splunk's channel), nil for one not saved.
    pub destination_id: Uuid,
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
    /// The reason phrase, or why there was no answer (refused, timed out, the TLS error), or
    /// why the receiver refused the line.
    pub message: String,
    pub took: Duration,
    /// Whether the endpoint took the line, as delivery would count it.
    pub delivered: bool,
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
    // Not a stored event: a fresh id, so a receiver that deduplicates takes every test.
    let meta = RecordMeta {
        seq: 0,
        ts: event.ts,
        id: Uuid::new_v4(),
        msgid: event.event_type().as_str(),
        severity: event.severity(),
    };
    let mut line = Vec::new();
    sign_event_with_id(
        target.format,
        event,
        Some(meta.id),
        None,
        format,
        key,
        &mut line,
    );
    let stream = Stream {
        org_id: event.org_id,
        region: event.region.clone(),
        portal_id: event.portal_id,
        replay: None,
    };
    let framer = Framer::new(target.kind, &stream, target.endpoint, target.destination_id);
    let mut record = Vec::new();
    framer.write_record(&meta, &line, &mut record);
    let mut batch = BatchBuilder::framed(config.batch_limits(), framer.frame(), GZIP_LEVEL);
    batch
        .push(0, &record)
        .expect("the first record of a batch always fits");
    let batch = batch.finish().expect("one record");
    let mut settings = DeliverySettings::new(config, target.skip_ssl_verification);
    settings.client_identity = client_identity(target.kind, target.authorization);
    let client = DeliveryClient::new(settings).expect("a client with these settings always builds");
    let trace = event.trace_id.as_deref().unwrap_or_default();
    let key = idempotency_key(&format!("connection-test/{trace}"), 0, 0);
    let started = Instant::now();
    let request = Request::batch(
        target.kind,
        &framer,
        target.endpoint,
        target.authorization,
        target.headers,
        Bytes::from(batch.body),
        &key,
    );
    let sent = client.send(request).await;
    let mut answer = Answer {
        code: sent.code,
        message: sent.message,
        took: started.elapsed(),
        delivered: false,
    };
    // A syslog receiver says nothing: written on an open connection is all there is.
    answer.delivered = sent.attempt == Attempt::Written;
    if let Attempt::Response { status, .. } = sent.attempt {
        answer.delivered = match target.kind.judge(status, &sent.body, &[meta.key()]) {
            Judgement::Whole | Judgement::AwaitAck(_) => (200..300).contains(&status),
            Judgement::Unacknowledged(why) => {
                answer.message = why;
                false
            }
            Judgement::PerRecord(items) => match items.into_iter().next() {
                Some(Item::Delivered) => true,
                Some(Item::Refused(reason)) => {
                    answer.message = truncate(reason);
                    false
                }
                Some(Item::Retry) | None => false,
            },
        };
    }
    answer
}

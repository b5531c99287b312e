//! An attempt's answer as the records keep it: the delivery log's entry, the metrics' outcome
//! label, and the refused list. Shared by live lanes and replay jobs.

use std::time::Duration;

use auditrelay_core::Timestamp;
use auditrelay_core::batch::Batch;
use auditrelay_core::retry::{Attempt, TransportError};
use uuid::Uuid;

use super::shared::{Owner, STORE_RETRY, Shared, label};
use super::transport::{SendOutcome, truncate};
use crate::clock;
use crate::store::{AttemptKind, DeliveryAttempt, RefusedEvent, Scope, StoreError};

/// What the delivery log keeps of a batch whose every event was refused before sending:
/// nothing went out, and the log says why.
pub(super) fn nothing_sent(batch: &Batch, endpoint: &str, at: Timestamp) -> DeliveryAttempt {
    let reason = batch
        .refused
        .first()
        .map_or("", |(_, reason)| reason.as_str());
    DeliveryAttempt {
        at,
        kind: AttemptKind::Live,
        endpoint: endpoint.to_owned(),
        events: 0,
        first_seq: batch.first_seq,
        last_seq: batch.last_seq,
        code: None,
        message: truncate(format!(
            "not sent: {} events refused before sending ({reason})",
            batch.refused.len()
        )),
        duration_ms: 0,
        delivered: false,
    }
}

/// Adds `refused` to the scope's refused list (DECISIONS.md D14), trying again while the store
/// refuses writes; `false` when stopped first. Recorded before the cursor or the replay's
/// progress passes them: a crash between the two sends the batch again, and its events are
/// refused and recorded again, once.
pub(super) async fn record_refused(
    shared: &Shared,
    owner: &mut Owner,
    scope: &Scope,
    refused: &[(i64, String)],
    endpoint: &str,
    replay: Option<Uuid>,
) -> Result<bool, StoreError> {
    if refused.is_empty() {
        return Ok(true);
    }
    let at = clock::now();
    let events: Vec<RefusedEvent> = refused
        .iter()
        .map(|(seq, reason)| RefusedEvent {
            seq: *seq,
            event_ts: None,
            refused_at: at,
            endpoint: endpoint.to_owned(),
            reason: reason.clone(),
            replay_id: replay,
        })
        .collect();
    loop {
        match shared
            .store
            .record_refused(owner.fence(), scope, &events)
            .await
        {
            Ok(()) => break,
            Err(StoreError::Unavailable { .. }) => {
                tokio::select! {
                    _ = owner.stopped() => return Ok(false),
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
            Err(e) => return Err(e),
        }
    }
    metrics::counter!("auditrelay_refused_events_total", "webhook" => label(scope))
        .increment(refused.len() as u64);
    tracing::warn!(
        webhook = %label(scope),
        refused = refused.len(),
        reason = %refused[0].1,
        "the receiver refused events for good; they are in the refused list"
    );
    Ok(true)
}

/// What the delivery log keeps of one attempt to send `batch`.
pub(super) fn logged(
    sent: &SendOutcome,
    kind: AttemptKind,
    endpoint: &str,
    batch: &Batch,
    at: Timestamp,
    took: Duration,
) -> DeliveryAttempt {
    DeliveryAttempt {
        at,
        kind,
        endpoint: endpoint.to_owned(),
        events: u32::try_from(batch.events).unwrap_or(u32::MAX),
        first_seq: batch.first_seq,
        last_seq: batch.last_seq,
        code: sent.code,
        message: sent.message.clone(),
        duration_ms: u64::try_from(took.as_millis()).unwrap_or(u64::MAX),
        delivered: matches!(
            sent.attempt,
            Attempt::Response {
                status: 200..=299,
                ..
            } | Attempt::Written
        ),
    }
}

/// The `outcome` label of an attempt: `2xx`…`5xx`, or the transport failure.
pub(super) fn attempt_outcome(sent: &SendOutcome) -> &'static str {
    match &sent.attempt {
        Attempt::Response { status, .. } => match status / 100 {
            2 => "2xx",
            3 => "3xx",
            4 => "4xx",
            _ => "5xx",
        },
        Attempt::Transport(kind) => match kind {
            TransportError::Connect => "connect",
            TransportError::Timeout => "timeout",
            TransportError::Tls => "tls",
            TransportError::Protocol => "protocol",
            TransportError::Refused => "refused",
            TransportError::Other => "other",
        },
        Attempt::Written => "written",
    }
}

//! An attempt's answer as the records keep it: the delivery log's entry and the metrics'
//! outcome label. Shared by live lanes and replay jobs.

use std::time::Duration;

use auditrelay_core::Timestamp;
use auditrelay_core::batch::Batch;
use auditrelay_core::retry::{Attempt, TransportError};

use super::http::SendOutcome;
use crate::store::{AttemptKind, DeliveryAttempt};

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
    }
}

//! Destination kinds (DECISIONS.md D12): what each receiver accepts, described as data.
//!
//! A destination's kind says how a batch of signed lines reaches its receiver:
//! - [`settings`] — the kind and its own settings (Splunk's index, Datadog's service, Loki's
//!   labels…), checked when a destination is saved, with the placeholders they may use;
//! - [`frame`] — how one batch is framed: what opens and closes the body, what separates two
//!   records, and how one signed line becomes a record (an HEC envelope, a `_bulk` pair, a
//!   Datadog entry, a Loki value), carrying the event's stable id where the kind has a place
//!   for it (DECISIONS.md D13);
//! - [`judge`] — how an answer is judged: as a whole (the retry policy decides from the status)
//!   or record by record (Elasticsearch's per-item results, Splunk's `invalid-event-number`,
//!   Loki's ignored entries), and what Splunk's indexer acknowledgement says.
//!
//! The limits of each kind ([`Kind::limits`]) narrow the configured batch limits; an event
//! whose record alone breaks a limit, or older than the receiver accepts, is refused before it
//! is sent (DECISIONS.md D14) rather than truncated or dropped by the receiver unseen.
//!
//! Facts about each receiver, with sources: `reference/siem-receivers.md` beside the product
//! spec.

pub mod frame;
pub mod judge;
pub mod settings;

pub use frame::{Framer, RecordKey, RecordMeta, Stream};
pub use judge::{Ack, Item, Judgement};
pub use settings::{Datadog, Kind, KindName, Loki, SplunkHec, SumoLogic, Syslog, SyslogFraming};

use crate::batch::BatchLimits;

/// What one kind's receiver accepts, beyond the configured batch limits.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// At most this many records per request.
    pub max_events: Option<usize>,
    /// At most this many bytes per request, uncompressed, framing included.
    pub max_bytes: Option<usize>,
    /// At most this many bytes in one record (the receiver truncates or refuses longer ones).
    pub max_record_bytes: Option<usize>,
    /// Events older than this, in milliseconds, are dropped by the receiver (silently, for
    /// Datadog): refused here instead, and a replay reaching past it is refused at `PUT`.
    pub max_age_ms: Option<i64>,
}

impl Limits {
    const NONE: Self = Self {
        max_events: None,
        max_bytes: None,
        max_record_bytes: None,
        max_age_ms: None,
    };

    /// `configured` narrowed to what the receiver accepts.
    pub fn narrow(&self, configured: BatchLimits) -> BatchLimits {
        BatchLimits {
            max_events: self
                .max_events
                .map_or(configured.max_events, |max| max.min(configured.max_events)),
            max_bytes: self
                .max_bytes
                .map_or(configured.max_bytes, |max| max.min(configured.max_bytes)),
        }
    }
}

/// One megabyte as Sumo Logic and Datadog count it.
const MB: usize = 1_000_000;

/// Datadog drops log entries whose timestamp is more than 18 hours in the past.
const DATADOG_MAX_AGE_MS: i64 = 18 * 3_600_000;

impl Kind {
    /// What this kind's receiver accepts (`reference/siem-receivers.md`).
    pub fn limits(&self) -> Limits {
        match self {
            // Konnect's shape: the configured limits are the whole contract.
            Self::Webhook => Limits::NONE,
            // Splunk Cloud's documented request size; Enterprise accepts far more.
            Self::SplunkHec(_) => Limits {
                max_bytes: Some(MB),
                ..Limits::NONE
            },
            Self::Datadog(_) => Limits {
                max_events: Some(1000),
                max_bytes: Some(5 * MB),
                max_record_bytes: Some(MB),
                max_age_ms: Some(DATADOG_MAX_AGE_MS),
            },
            // Amazon OpenSearch Service's common 10 MiB is the smallest deployed limit.
            Self::Elasticsearch => Limits {
                max_bytes: Some(10 << 20),
                ..Limits::NONE
            },
            Self::SumoLogic(_) => Limits {
                max_bytes: Some(MB),
                ..Limits::NONE
            },
            Self::Loki(_) => Limits::NONE,
            // A message longer than the receiver takes would be truncated or split there. The
            // record is the message and, counting octets, its length and a space before it.
            Self::Syslog(syslog) => {
                let max = syslog.max_message_bytes();
                let prefix = match syslog.framing {
                    SyslogFraming::OctetCounting => max.to_string().len() + 1,
                    SyslogFraming::Lf => 0,
                };
                Limits {
                    max_record_bytes: Some(max + prefix),
                    ..Limits::NONE
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_narrow_the_configured_ones_and_never_widen_them() {
        let configured = BatchLimits {
            max_events: 500,
            max_bytes: 2 << 20,
        };
        let datadog = Kind::Datadog(Datadog::default()).limits();
        assert_eq!(
            datadog.narrow(configured),
            BatchLimits {
                max_events: 500,
                max_bytes: 2 << 20
            }
        );
        let sumo = Kind::SumoLogic(SumoLogic::default()).limits();
        assert_eq!(sumo.narrow(configured).max_bytes, 1_000_000);
        assert_eq!(Kind::Webhook.limits().narrow(configured), configured);
    }
}

//! The judging stage: what one attempt did to a batch, as the destination's kind reads the
//! answer (`kind::judge` in the core). Most answers are about the batch as a whole, and the
//! retry policy judges their status. Some are about each record: those refused for good go to
//! the refused list (DECISIONS.md D14), those refused for now go again on their own, the rest
//! are delivered. Splunk's indexer acknowledgement is awaited here: a batch counts as
//! delivered only once Splunk says it is indexed.
//!
//! [`InHand`] is a batch across its attempts, as lanes, replay jobs and resends all keep it:
//! what it took, what the answers so far delivered or refused, and the narrower batch that
//! goes again when records were refused for now.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_core::batch::{Batch, idempotency_key};
use auditrelay_core::kind::{Ack, Item, Judgement, Kind, RecordKey, judge};
use auditrelay_core::retry::{Attempt, RetryPolicy, TransportError, Verdict};

use super::encode::{Encoding, narrow, record_keys};
use super::http::DeliveryClient;
use super::request::Request;
use super::setup::Setup;
use super::shared::Shared;
use super::transport::SendOutcome;
use crate::store::StoredEvent;

/// A batch in hand, across its attempts.
pub(super) struct InHand {
    pub batch: Batch,
    pub encoding: Arc<Encoding>,
    /// The events the batch took, in its order (refused ones too); once narrowed, those it
    /// still sends.
    pub events: Vec<StoredEvent>,
    /// Refused for good so far: before sending, or by an answer.
    pub refused: Vec<(i64, String)>,
    /// Delivered so far.
    pub delivered: Vec<i64>,
    /// How many times it was narrowed: part of its `Idempotency-Key`, so that a narrower body
    /// never goes out under the key of a wider one.
    narrowed: u32,
}

impl InHand {
    pub fn new(batch: Batch, encoding: Arc<Encoding>, events: Vec<StoredEvent>) -> Self {
        Self {
            refused: batch.refused.clone(),
            batch,
            encoding,
            events,
            delivered: Vec::new(),
            narrowed: 0,
        }
    }

    /// Whether nothing is left to send: every event left was refused before sending.
    pub fn is_spent(&self) -> bool {
        self.batch.events == 0
    }

    /// Called before each attempt: refuses the records that grew older than the receiver
    /// accepts while the batch waited (for a retry, or for the SIEM through an inactive
    /// webhook's probes), as signing refuses them (DECISIONS.md D14), and signs the rest anew.
    /// Sent as they were, the receiver would take them with the rest and drop them unseen
    /// (Datadog past 18 hours), and they would count as delivered.
    pub async fn refuse_aged(&mut self, shared: &Arc<Shared>) {
        let Some(max_age) = self.encoding.max_age_ms else {
            return;
        };
        let oldest = crate::clock::now().as_millis().saturating_sub(max_age);
        let aged = |e: &&StoredEvent| e.event.ts.as_millis() < oldest;
        // Usually none is: the records are looked up only then (events refused when signed
        // are aged too, and stay in `events`).
        if !self.events.iter().any(|e| aged(&e)) {
            return;
        }
        let records: HashSet<i64> = self.batch.seqs.iter().copied().collect();
        if !self
            .events
            .iter()
            .filter(aged)
            .any(|e| records.contains(&e.seq))
        {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let seqs = self.batch.seqs.clone();
        let (batch, events) = narrow(shared, &self.encoding, events, &seqs).await;
        self.refused.extend(batch.refused.iter().cloned());
        (self.batch, self.events) = (batch, events);
        self.narrowed += 1;
    }

    /// Sends the batch once for `sender` (the identity its `Idempotency-Key` is made from), and
    /// judges the answer.
    pub async fn attempt(
        &self,
        client: &DeliveryClient,
        setup: &Setup,
        sender: &str,
    ) -> (SendOutcome, Judged) {
        let batch = &self.batch;
        let sender = match self.narrowed {
            0 => sender.to_owned(),
            n => format!("{sender}/narrowed/{n}"),
        };
        let key = idempotency_key(&sender, batch.first_seq, batch.last_seq);
        let destination = &setup.destination;
        let request = Request::batch(
            &destination.kind,
            &self.encoding.framer,
            &destination.endpoint,
            &setup.authorization,
            &setup.headers,
            bytes::Bytes::from(batch.body.clone()),
            &key,
        );
        let records = record_keys(&self.events, batch);
        let mut sent = client.send(request).await;
        let judged = judge(client, setup, &self.encoding, &mut sent, &records).await;
        (sent, judged)
    }

    /// Takes in what an attempt did, judged so with `verdict`: the records delivered and
    /// refused, and, when some were refused for now, the batch narrowed to them, signed anew
    /// (those now too old are refused instead).
    pub async fn take(&mut self, shared: &Arc<Shared>, judged: Judged, verdict: &Verdict) {
        let unsettled: HashSet<i64> = judged
            .again
            .iter()
            .copied()
            .chain(judged.refused.iter().map(|(seq, _)| *seq))
            .collect();
        if judged.per_record || matches!(verdict, Verdict::Delivered) {
            let delivered = self.batch.seqs.iter().filter(|s| !unsettled.contains(s));
            self.delivered.extend(delivered);
        }
        self.refused.extend(judged.refused);
        if judged.again.is_empty() {
            return;
        }
        let events = std::mem::take(&mut self.events);
        let (batch, events) = narrow(shared, &self.encoding, events, &judged.again).await;
        self.refused.extend(batch.refused.iter().cloned());
        (self.batch, self.events) = (batch, events);
        self.narrowed += 1;
    }
}

/// What an attempt did, beyond its status.
#[derive(Debug, Default)]
pub(super) struct Judged {
    /// Whether each record was answered on its own: the batch is then settled, whatever the
    /// status, once none is left to send again.
    pub per_record: bool,
    /// Refused for good: `(seq, the receiver's reason)`.
    pub refused: Vec<(i64, String)>,
    /// Refused for now: the `seq` of each record to send again.
    pub again: Vec<i64>,
    /// The batch goes again whole, as under back-pressure: a batch of checkpoints that the
    /// receiver refused, for now only, in part.
    pub whole_again: bool,
}

impl Judged {
    /// What an answer about each record means for a batch of checkpoint events: they are not
    /// events, so none joins the refused list or is narrowed out to go again alone. Records
    /// refused for now only (back-pressure: an item's 429, an answer that proves nothing) send
    /// the whole batch again, which the receivers that answer so take idempotently. Where one
    /// was refused for good, the batch is taken as answered: sent whole again it would be
    /// refused again (Splunk stops at an invalid envelope). That one, and any refused for now
    /// beside it, are missing from the SIEM, which `verify` names; it is said here.
    pub fn for_checkpoints(self, webhook: &str) -> Self {
        if self.refused.is_empty() && !self.again.is_empty() {
            return Self {
                per_record: false,
                refused: Vec::new(),
                again: Vec::new(),
                whole_again: true,
            };
        }
        if !self.refused.is_empty() {
            tracing::warn!(
                webhook,
                refused = self.refused.len() + self.again.len(),
                reason = self.refused[0].1.as_str(),
                "the receiver refused checkpoint events: the SIEM will lack them"
            );
        }
        Self {
            per_record: self.per_record,
            refused: Vec::new(),
            again: Vec::new(),
            whole_again: false,
        }
    }
}

/// How long Splunk is given to acknowledge a batch when the destination does not say.
const DEFAULT_ACK_TIMEOUT: Duration = Duration::from_secs(60);
/// The longest pause between two acknowledgement queries.
const MAX_ACK_POLL: Duration = Duration::from_secs(5);

/// What the retry policy is shown when records were refused for now: back-pressure, retried
/// like a whole batch's 429.
const BACK_PRESSURE: Attempt = Attempt::Response {
    status: 429,
    retry_after: None,
};

/// The retry policy's verdict on an attempt judged so, `retries` retries into its batch. An
/// answer about each record settles the batch, whatever its status (Loki's and Splunk's are
/// 400s), unless records were refused for now: those are retried, as under back-pressure, and
/// so is a batch to go again whole.
pub(super) fn verdict(
    policy: &RetryPolicy,
    retries: u32,
    sent: &SendOutcome,
    judged: &Judged,
) -> Verdict {
    let now = crate::clock::now();
    if judged.whole_again {
        return policy.next(retries, &BACK_PRESSURE, now);
    }
    match (judged.per_record, judged.again.is_empty()) {
        (false, _) => policy.next(retries, &sent.attempt, now),
        (true, true) => Verdict::Delivered,
        (true, false) => policy.next(retries, &BACK_PRESSURE, now),
    }
}

/// Judges the answer `sent` to a batch of `records` (in the body's order). When the answer is
/// about the batch as a whole, `sent` is left for the retry policy to judge; a Splunk batch
/// that is not acknowledged in time, or given no id to ask about, turns into a failed attempt
/// saying so.
async fn judge(
    client: &DeliveryClient,
    setup: &Setup,
    encoding: &Encoding,
    sent: &mut SendOutcome,
    records: &[RecordKey],
) -> Judged {
    let Attempt::Response { status, .. } = sent.attempt else {
        return Judged::default();
    };
    let kind = &setup.destination.kind;
    match kind.judge(status, &sent.body, records) {
        Judgement::Whole => Judged::default(),
        Judgement::AwaitAck(id) => {
            if let Err(why) = await_ack(client, setup, encoding, id).await {
                *sent = unacknowledged(sent, why);
            }
            Judged::default()
        }
        Judgement::Unacknowledged(why) => {
            *sent = unacknowledged(sent, why);
            Judged::default()
        }
        Judgement::PerRecord(items) => {
            let mut judged = Judged {
                per_record: true,
                ..Judged::default()
            };
            for (record, item) in records.iter().zip(items) {
                match item {
                    Item::Delivered => {}
                    Item::Retry => judged.again.push(record.seq),
                    Item::Refused(reason) => judged.refused.push((record.seq, reason)),
                }
            }
            judged
        }
    }
}

/// An attempt whose 2xx Splunk did not confirm with an acknowledgement: failed, for `why`, and
/// retried as one that timed out.
fn unacknowledged(sent: &SendOutcome, why: String) -> SendOutcome {
    SendOutcome {
        code: sent.code,
        ..SendOutcome::transport(TransportError::Timeout, why)
    }
}

/// Asks Splunk whether the batch acknowledged as `id` is indexed, more and more slowly, until
/// it is or the destination's wait runs out.
async fn await_ack(
    client: &DeliveryClient,
    setup: &Setup,
    encoding: &Encoding,
    id: u64,
) -> Result<(), String> {
    let kind = &setup.destination.kind;
    let timeout = match kind {
        Kind::SplunkHec(hec) => hec
            .ack_timeout_seconds
            .map_or(DEFAULT_ACK_TIMEOUT, |s| Duration::from_secs(u64::from(s))),
        _ => DEFAULT_ACK_TIMEOUT,
    };
    let deadline = Instant::now() + timeout;
    let mut pause = Duration::from_millis(100);
    loop {
        let query = Request::hec_ack(
            kind,
            &encoding.framer,
            &setup.destination.endpoint,
            &setup.authorization,
            id,
        );
        let answer = client.send(query).await;
        let ack = match answer.attempt {
            Attempt::Response { status, .. } => judge::judge_ack(status, &answer.body, id),
            // The network hiccuped: the batch may still be indexed. (No stream receiver
            // acknowledges.)
            Attempt::Transport(_) | Attempt::Written => Ack::Pending,
        };
        match ack {
            Ack::Indexed => return Ok(()),
            Ack::Lost(why) => return Err(format!("Splunk lost the acknowledgement: {why}")),
            Ack::Pending if Instant::now() + pause >= deadline => {
                return Err(format!(
                    "Splunk did not acknowledge the batch within {}s",
                    timeout.as_secs()
                ));
            }
            Ack::Pending => {
                tokio::time::sleep(pause).await;
                pause = (pause * 2).min(MAX_ACK_POLL);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use auditrelay_core::batch::BatchLimits;
    use auditrelay_core::{OrgId, Timestamp};
    use uuid::Uuid;

    use super::*;
    use crate::delivery::encode::sign_batch;
    use crate::{clock, fixtures};

    /// A batch signed while its events were young enough, kept past the receiver's age limit
    /// for a retry: before it goes again its aged records are refused, with signing's reason,
    /// and the rest are signed anew, under a key of their own. One with none aged stays as it is.
    #[tokio::test]
    async fn records_that_aged_while_their_batch_waited_are_refused_before_it_goes_again() {
        let dir = tempfile::tempdir().unwrap();
        let shared = Shared::for_tests(dir.path()).await;
        let now = clock::now();
        let hour = 3_600_000;
        let stored = |seq: i64, age_ms: i64| StoredEvent {
            seq,
            event: fixtures::event(
                OrgId::from_uuid(Uuid::from_u128(1)),
                Timestamp::from_millis(now.as_millis() - age_ms),
                format!("t{seq}"),
            ),
            place: None,
        };
        let encoding = |max_age_ms| Encoding::cef_lines(BatchLimits::default(), None, max_age_ms);
        let events = vec![stored(1, 0), stored(2, 2 * hour), stored(3, 0)];
        // Signed with no limit, as when the second event was still young enough for an hour's.
        let (batch, events) = sign_batch(&shared, &encoding(None), events).await;
        let mut hand = InHand::new(batch.unwrap(), encoding(Some(hour)), events);
        assert_eq!(hand.batch.seqs, [1, 2, 3]);

        hand.refuse_aged(&shared).await;
        assert_eq!(hand.batch.seqs, [1, 3]);
        assert_eq!(hand.batch.events, 2);
        assert_eq!(hand.refused.len(), 1, "{:?}", hand.refused);
        assert_eq!(hand.refused[0].0, 2);
        assert!(
            hand.refused[0]
                .1
                .starts_with("older than the receiver accepts")
        );
        // The batch still took all three: one is refused, not left for another batch.
        assert_eq!(hand.batch.taken(), 3);
        let seqs: Vec<i64> = hand.events.iter().map(|e| e.seq).collect();
        assert_eq!(seqs, [1, 2, 3]);
        assert_eq!(
            hand.narrowed, 1,
            "a narrower body goes under a key of its own"
        );

        let body = hand.batch.body.clone();
        hand.refuse_aged(&shared).await;
        assert_eq!((hand.narrowed, hand.refused.len()), (1, 1));
        assert_eq!(hand.batch.body, body);
    }

    /// A batch of checkpoints answered record by record: refused for now only, it goes again
    /// whole, as under back-pressure, with nothing taken as delivered; with one refused for
    /// good, it is taken as answered (sent again it would be refused again).
    #[test]
    fn checkpoints_refused_for_now_go_again_whole() {
        let policy = RetryPolicy::default();
        let ok = SendOutcome {
            attempt: Attempt::Response {
                status: 200,
                retry_after: None,
            },
            code: Some(200),
            message: "OK".to_owned(),
            body: Default::default(),
        };
        let answered = |refused: Vec<(i64, String)>, again: Vec<i64>| Judged {
            per_record: true,
            refused,
            again,
            whole_again: false,
        };
        let busy = answered(Vec::new(), vec![2, 3]).for_checkpoints("org/us");
        assert!(busy.whole_again && busy.again.is_empty() && busy.refused.is_empty());
        assert!(
            matches!(verdict(&policy, 0, &ok, &busy), Verdict::RetryAfter(_)),
            "{:?}",
            verdict(&policy, 0, &ok, &busy)
        );
        let invalid = answered(vec![(2, "code 6".to_owned())], vec![3]).for_checkpoints("org/us");
        assert!(!invalid.whole_again);
        assert_eq!(verdict(&policy, 0, &ok, &invalid), Verdict::Delivered);
        let taken = answered(Vec::new(), Vec::new()).for_checkpoints("org/us");
        assert_eq!(verdict(&policy, 0, &ok, &taken), Verdict::Delivered);
    }
}

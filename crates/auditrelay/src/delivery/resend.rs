//! Sending refused events again (DECISIONS.md D14). Once an operator asks (after fixing the
//! index mapping, say), a scope's refused events marked for it go through the stages every
//! batch goes through, encoded for the destination as it is now, with the retries of
//! DECISIONS.md D3, judged by its kind. Delivered ones leave the refused list. Those refused
//! again stay on it with the new reason; those of a batch that failed as a whole stay on it
//! with the failure as their reason. Either way they are no longer marked: the operator asks
//! again. An event retention deleted meanwhile leaves the list, with a warning.
//!
//! It runs beside the lane, like a replay job: the lane's cursor is not touched. Each run
//! sends under an identity of its own, as a replay does, so that Loki puts what it sends in a
//! stream of its own: refused events are old, and a stream's newest entries would have them
//! refused again.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Instant;

use auditrelay_core::retry::Verdict;
use uuid::Uuid;

use super::ahead::place;
use super::encode::{Encoding, sign_batch};
use super::http::DeliveryClient;
use super::judge::{InHand, verdict};
use super::outcome::{logged, record_refused};
use super::setup::{client_for, load_setup};
use super::shared::{Owner, STORE_RETRY, Shared, label};
use crate::clock;
use crate::integrity;
use crate::leases::Lease;
use crate::store::{AttemptKind, Scope, StoreError};

/// Sends the scope's refused events marked to be sent again, until none is left, or until
/// its lease says stop.
pub async fn run(shared: Arc<Shared>, scope: Scope, lease: Lease) {
    let mut owner = Owner::new(lease);
    let run = Uuid::new_v4();
    let mut client = None;
    loop {
        match step(&shared, &scope, run, &mut client, &mut owner).await {
            Ok(true) => {}
            Ok(false) => {
                // A syslog receiver's last batches confirmed (nothing would write them again),
                // unless the server is stopping.
                let drained = match &client {
                    Some(client) if !owner.is_stopped() => tokio::select! {
                        drained = client.drain() => drained,
                        _ = owner.stopped() => Ok(()),
                    },
                    _ => Ok(()),
                };
                if let Err(why) = drained {
                    tracing::warn!(webhook = %label(&scope), reason = %why, "events sent again may not have reached the syslog receiver");
                }
                return;
            }
            // Another node sends them now.
            Err(StoreError::LeaseLost(_)) => return owner.lease.refused(),
            Err(e) => {
                tracing::warn!(webhook = %label(&scope), error = %e, "sending refused events again hit a store error; will retry");
                tokio::select! {
                    _ = owner.stopped() => return,
                    _ = tokio::time::sleep(STORE_RETRY) => {}
                }
            }
        }
    }
}

/// One batch of marked events; `Ok(false)` when there is nothing more to do.
async fn step(
    shared: &Arc<Shared>,
    scope: &Scope,
    run: Uuid,
    client: &mut Option<DeliveryClient>,
    owner: &mut Owner,
) -> Result<bool, StoreError> {
    let store = &shared.store;
    let seqs = store
        .refused_to_resend(scope, shared.config.batch_max_events as u32)
        .await?;
    if seqs.is_empty() || owner.is_stopped() {
        return Ok(false);
    }
    let Some(setup) = load_setup(shared, scope).await? else {
        let why = "not sent again: the webhook is not enabled".to_owned();
        let unsent: Vec<(i64, String)> = seqs.iter().map(|s| (*s, why.clone())).collect();
        record_refused(shared, owner, scope, &unsent, "", None).await?;
        return Ok(false);
    };
    let mut events = store.events_by_seq(scope, &seqs).await?;
    // In event-time order, as a replay sends: a receiver that keeps its streams in time order
    // (Loki) takes them so, however far apart they are.
    events.sort_by_key(|e| (e.event.ts, e.seq));
    let found: HashSet<i64> = events.iter().map(|e| e.seq).collect();
    let gone: Vec<i64> = seqs.into_iter().filter(|s| !found.contains(s)).collect();
    if !gone.is_empty() {
        tracing::warn!(webhook = %label(scope), events = gone.len(), "refused events deleted by retention before they were sent again");
        store.forget_refused(owner.fence(), scope, &gone).await?;
    }
    if setup.destination.integrity {
        // Their lines carry their places in the log, as the lane's did.
        let log = Arc::from(integrity::origin(store, scope));
        events = place(shared, scope, &log, events).await?;
    }
    let encoding = Encoding::new(shared, &setup, Some(run));
    let (batch, mut events) = sign_batch(shared, &encoding, events).await;
    let Some(batch) = batch else {
        return Ok(true);
    };
    // Those that did not fit stay marked, for the next batch.
    events.truncate(batch.taken());
    let mut hand = InHand::new(batch, encoding, events);
    let client = client_for(client, shared, &setup);
    // Shown in the delivery log; the hand is borrowed mutably below.
    let endpoint = hand.encoding.endpoint.clone();
    let sender = format!("resend/{run}");
    let mut retries = 0;
    loop {
        hand.refuse_aged(shared).await;
        if hand.is_spent() {
            break;
        }
        if !owner.lease.wait_held().await {
            return Ok(false);
        }
        let (at, started) = (clock::now(), Instant::now());
        let (sent, judged) = tokio::select! {
            sent = hand.attempt(&client, &setup, &sender) => sent,
            // Still marked: sent again after a restart.
            _ = owner.stopped() => return Ok(false),
        };
        let attempt = logged(
            &sent,
            AttemptKind::Retry,
            &endpoint,
            &hand.batch,
            at,
            started.elapsed(),
        );
        if let Err(e) = store
            .log_attempt(owner.fence(), scope, &attempt, shared.config.log_size)
            .await
        {
            tracing::warn!(webhook = %label(scope), error = %e, "a resend attempt was not logged");
        }
        let verdict = verdict(&shared.policy, retries, &sent, &judged);
        hand.take(shared, judged, &verdict).await;
        match verdict {
            Verdict::Delivered => break,
            Verdict::RetryAfter(wait) => {
                retries += 1;
                tokio::select! {
                    _ = owner.stopped() => return Ok(false),
                    _ = tokio::time::sleep(wait) => {}
                }
            }
            Verdict::Failed => {
                // What is still to send: the whole batch, or the records refused for now.
                let code = sent
                    .code
                    .map(|c| format!(" (HTTP {c})"))
                    .unwrap_or_default();
                let why = format!("sent again, not delivered: {}{code}", sent.message);
                let unsent = hand.batch.seqs.iter().map(|seq| (*seq, why.clone()));
                hand.refused.extend(unsent.collect::<Vec<_>>());
                break;
            }
        }
    }
    // Refused first (it clears their marks), then the delivered ones leave the list.
    if !record_refused(shared, owner, scope, &hand.refused, &endpoint, None).await? {
        return Ok(false);
    }
    store
        .forget_refused(owner.fence(), scope, &hand.delivered)
        .await?;
    tracing::info!(
        webhook = %label(scope),
        delivered = hand.delivered.len(),
        refused = hand.refused.len(),
        "refused events sent again"
    );
    Ok(true)
}

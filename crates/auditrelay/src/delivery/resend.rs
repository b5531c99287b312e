//! Sending refused events again (DECISIONS.md D14). Once an operator asks (after fixing the
//! index mapping, say), a scope's refused events marked for it go through the stages every
//! batch goes through, encoded for the destination as it is now, with the retries of
//! DECISIONS.md D3, judged by its kind. Delivered ones leave the refused list. Those refused
//! again stay on it with the new reason; those of a batch that failed as a whole stay on it
//! with the failure as their reason. Either way they are no longer marked: the operator asks
//! again. An event retention deleted meanwhile leaves the list, with a warning.
//!
//! It runs beside the lane, like a replay job: the lane's cursor is not touched.

use std::collections::HashSet;
use std::sync::Arc;
use std::time::{Duration, Instant};

use auditrelay_core::batch::idempotency_key;
use auditrelay_core::retry::Verdict;
use bytes::Bytes;
use tokio::sync::watch;

use super::encode::{Encoding, narrow, sign_batch};
use super::http::{DeliveryClient, DeliverySettings};
use super::judge::{send_judged, verdict};
use super::outcome::{logged, record_refused};
use super::request::Request;
use super::setup::load_setup;
use super::shared::{Shared, label};
use crate::clock;
use crate::store::{AttemptKind, Scope, StoreError};

/// How long it waits after the store failed before it tries again.
const STORE_RETRY: Duration = Duration::from_secs(1);

/// Sends the scope's refused events marked to be sent again, until none is left or `stop`.
pub async fn run(shared: Arc<Shared>, scope: Scope, mut stop: watch::Receiver<bool>) {
    loop {
        match step(&shared, &scope, &mut stop).await {
            Ok(true) => {}
            Ok(false) => return,
            Err(e) => {
                tracing::warn!(webhook = %label(&scope), error = %e, "sending refused events again hit a store error; will retry");
                tokio::select! {
                    _ = stop.wait_for(|stop| *stop) => return,
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
    stop: &mut watch::Receiver<bool>,
) -> Result<bool, StoreError> {
    let store = &shared.store;
    let seqs = store
        .refused_to_resend(scope, shared.config.batch_max_events as u32)
        .await?;
    if seqs.is_empty() || *stop.borrow() {
        return Ok(false);
    }
    let Some(setup) = load_setup(shared, scope).await? else {
        let why = "not sent again: the webhook is not enabled".to_owned();
        let unsent: Vec<(i64, String)> = seqs.iter().map(|s| (*s, why.clone())).collect();
        record_refused(shared, scope, &unsent, "", None, stop).await?;
        return Ok(false);
    };
    let events = store.events_by_seq(scope, &seqs).await?;
    let found: HashSet<i64> = events.iter().map(|e| e.seq).collect();
    let gone: Vec<i64> = seqs.into_iter().filter(|s| !found.contains(s)).collect();
    if !gone.is_empty() {
        tracing::warn!(webhook = %label(scope), events = gone.len(), "refused events deleted by retention before they were sent again");
        store.forget_refused(scope, &gone).await?;
    }
    let encoding = Encoding::new(shared, &setup, None);
    let (batch, mut events) = sign_batch(shared, &encoding, events).await;
    let Some(mut batch) = batch else {
        return Ok(true);
    };
    // Those that did not fit stay marked, for the next batch.
    events.truncate(batch.taken());
    let mut refused = batch.refused.clone();
    let mut delivered: Vec<i64> = Vec::new();
    let settings = DeliverySettings::new(&shared.config, setup.destination.skip_ssl_verification);
    let client = DeliveryClient::new(settings).expect("a client with these settings always builds");
    let endpoint = &setup.destination.endpoint;
    let mut retries = 0;
    while batch.events > 0 {
        let key = idempotency_key(
            &format!("resend/{}", label(scope)),
            batch.first_seq,
            batch.last_seq,
        );
        let request = Request::batch(
            &setup.destination.kind,
            &encoding.framer,
            endpoint,
            &setup.authorization,
            &setup.headers,
            Bytes::from(batch.body.clone()),
            &key,
        );
        let records = encoding.records(&events, &batch);
        let (at, started) = (clock::now(), Instant::now());
        let (sent, judged) = tokio::select! {
            sent = send_judged(&client, &setup, &encoding, request, &records) => sent,
            // Still marked: sent again after a restart.
            _ = stop.wait_for(|stop| *stop) => return Ok(false),
        };
        let attempt = logged(
            &sent,
            AttemptKind::Retry,
            endpoint,
            &batch,
            at,
            started.elapsed(),
        );
        if let Err(e) = store
            .log_attempt(scope, &attempt, shared.config.log_size)
            .await
        {
            tracing::warn!(webhook = %label(scope), error = %e, "a resend attempt was not logged");
        }
        let verdict = verdict(&shared.policy, retries, &sent, &judged);
        let unsettled: HashSet<i64> = judged
            .again
            .iter()
            .copied()
            .chain(judged.refused.iter().map(|(seq, _)| *seq))
            .collect();
        if judged.per_record || matches!(verdict, Verdict::Delivered) {
            delivered.extend(batch.seqs.iter().filter(|s| !unsettled.contains(s)));
        }
        refused.extend(judged.refused);
        match verdict {
            Verdict::Delivered if judged.again.is_empty() => break,
            Verdict::Delivered | Verdict::RetryAfter(_) => {
                if !judged.again.is_empty() {
                    let (narrowed, left) = narrow(
                        shared,
                        &encoding,
                        std::mem::take(&mut events),
                        &judged.again,
                    )
                    .await;
                    refused.extend(narrowed.refused.iter().cloned());
                    (batch, events) = (narrowed, left);
                }
                if let Verdict::RetryAfter(wait) = verdict {
                    retries += 1;
                    tokio::select! {
                        _ = stop.wait_for(|stop| *stop) => return Ok(false),
                        _ = tokio::time::sleep(wait) => {}
                    }
                }
            }
            Verdict::Failed => {
                let code = sent
                    .code
                    .map(|c| format!(" (HTTP {c})"))
                    .unwrap_or_default();
                let why = format!("sent again, not delivered: {}{code}", sent.message);
                refused.extend(batch.seqs.iter().map(|seq| (*seq, why.clone())));
                break;
            }
        }
    }
    // Refused first (it clears their marks), then the delivered ones leave the list.
    if !record_refused(shared, scope, &refused, endpoint, None, stop).await? {
        return Ok(false);
    }
    store.forget_refused(scope, &delivered).await?;
    tracing::info!(
        webhook = %label(scope),
        delivered = delivered.len(),
        refused = refused.len(),
        "refused events sent again"
    );
    Ok(true)
}

//! A lane's records of delivered batches, written in order behind its sends.
//!
//! Under ingest the store's writer takes a lane's record only after the group commit in
//! progress. A lane that waited for each record before it sent the next batch sent one batch
//! per commit, and left the cores idle meanwhile. So a lane sends on while its records are
//! written, but never past what the store holds as in flight (DECISIONS.md S3): each record
//! notes how far the batches the lane holds reach, and a batch goes out before the records
//! before it are stored only when a note already stored covers it. After a crash, a restart
//! sends again what is noted, cut into the same batches (`lane.rs`).
//!
//! Each write is a task that waits for the one before it, so the store takes them in the order
//! the SIEM took the batches, and none is written after one that failed. While the store
//! refuses writes (a full disk), a write is tried again every second until it is taken or the
//! lane stops, as S3 asks; the lane meanwhile sends nothing past the stored note.

use std::sync::Arc;

use tokio::sync::watch;
use tokio::task::JoinHandle;

use super::shared::STORE_RETRY;
use crate::store::{AttemptOutcome, DeliveryAttempt, Fence, Scope, Store, StoreError};

/// No note: nothing in flight, or not known.
const NONE: i64 = i64::MIN;

pub(super) struct Records {
    store: Store,
    scope: Scope,
    /// How many attempts the delivery log keeps.
    keep: u32,
    stop: watch::Receiver<bool>,
    /// The last write issued; it waits for those before it. `false`: the webhook is gone.
    last: Option<JoinHandle<Result<bool, StoreError>>>,
    /// The in-flight note the last write issued leaves.
    issued: i64,
    /// The in-flight note the store certainly holds: the last one written (by a write that
    /// finished, or by the lane itself once nothing was pending).
    stored: Arc<watch::Sender<i64>>,
}

impl Records {
    pub fn new(store: Store, scope: Scope, keep: u32, stop: watch::Receiver<bool>) -> Self {
        Self {
            store,
            scope,
            keep,
            stop,
            last: None,
            issued: NONE,
            stored: Arc::new(watch::Sender::new(NONE)),
        }
    }

    /// The in-flight note the store certainly holds.
    pub fn stored(&self) -> Option<i64> {
        some(*self.stored.borrow())
    }

    /// The in-flight note the store will hold once every write issued is done.
    pub fn issued(&self) -> Option<i64> {
        some(self.issued)
    }

    /// The store holds `note`, written by the lane itself with nothing pending (or read from
    /// the store).
    pub fn set(&mut self, note: Option<i64>) {
        debug_assert!(self.last.is_none(), "a note set while writes are pending");
        let note = note.unwrap_or(NONE);
        self.issued = note;
        self.stored.send_replace(note);
    }

    /// Whether a write is still under way.
    pub fn pending(&self) -> bool {
        self.last.as_ref().is_some_and(|last| !last.is_finished())
    }

    /// Writes, behind those issued before, the record of a delivered batch of events.
    ///
    /// Panics unless `outcome` is a delivery of events whose note reaches as far as the one
    /// issued last, where that went past the batch: batches it covers may be out already. (A
    /// note may shrink only once nothing is pending, through [`Records::written`] and
    /// `Store::mark_in_flight`.)
    pub fn behind(&mut self, fence: Fence, attempt: DeliveryAttempt, outcome: AttemptOutcome) {
        let AttemptOutcome::Delivered {
            through,
            next_in_flight,
            checkpoints: None,
        } = outcome
        else {
            panic!("only a delivered batch of events is recorded behind the sends");
        };
        let note = next_in_flight.unwrap_or(NONE);
        assert!(
            note >= self.issued || self.issued <= through,
            "a note shrank behind the sends"
        );
        self.issued = note;
        let before = self.last.take();
        let (store, scope, keep) = (self.store.clone(), self.scope.clone(), self.keep);
        let (mut stop, stored) = (self.stop.clone(), Arc::clone(&self.stored));
        self.last = Some(tokio::spawn(async move {
            // A write after one that failed would move the cursor past a batch not recorded.
            if let Some(before) = before
                && !joined(before.await)?
            {
                return Ok(false);
            }
            loop {
                match store
                    .record_attempt(&fence, &scope, &attempt, outcome, keep)
                    .await
                {
                    Ok(true) => {
                        stored.send_replace(note);
                        return Ok(true);
                    }
                    // The webhook is gone: its note is not the store's.
                    Ok(false) => return Ok(false),
                    Err(StoreError::Unavailable { kind, source }) => {
                        tokio::select! {
                            // Not recorded: after a restart the batch goes again, as noted.
                            _ = stop.wait_for(|stop| *stop) => {
                                return Err(StoreError::Unavailable { kind, source });
                            }
                            () = tokio::time::sleep(STORE_RETRY) => {}
                        }
                    }
                    Err(e) => return Err(e),
                }
            }
        }));
    }

    /// Waits until every write issued is done; the first that failed, if one did, says why,
    /// and `false` says the webhook is gone. On `Ok(true)` the store holds
    /// [`Records::issued`].
    pub async fn written(&mut self) -> Result<bool, StoreError> {
        match self.last.take() {
            Some(last) => joined(last.await),
            None => Ok(true),
        }
    }

    /// Waits until the store holds a note that `covers`, or until every write issued is done
    /// (then the store holds [`Records::issued`], whether or not it covers). Whichever write
    /// notes it first ends the wait, not the last one issued.
    pub async fn until_stored(
        &mut self,
        covers: impl Fn(Option<i64>) -> bool,
    ) -> Result<bool, StoreError> {
        let mut stored = self.stored.subscribe();
        loop {
            if covers(some(*stored.borrow_and_update())) {
                return Ok(true);
            }
            let Some(last) = self.last.as_mut() else {
                return Ok(true);
            };
            tokio::select! {
                done = last => {
                    self.last = None;
                    return joined(done);
                }
                _ = stored.changed() => {}
            }
        }
    }

    /// What [`Records::written`] says once the writes issued are done; `Ok(true)` while they
    /// are under way.
    pub async fn check(&mut self) -> Result<bool, StoreError> {
        if self.last.as_ref().is_some_and(JoinHandle::is_finished) {
            return self.written().await;
        }
        Ok(true)
    }
}

fn some(note: i64) -> Option<i64> {
    (note != NONE).then_some(note)
}

/// The result of a write's task: its panic goes on in the caller.
fn joined(
    result: Result<Result<bool, StoreError>, tokio::task::JoinError>,
) -> Result<bool, StoreError> {
    match result {
        Ok(written) => written,
        Err(e) => match e.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(_) => Err(StoreError::Closed),
        },
    }
}

//! When events were committed: the newest `seq` (which delivery lanes wait on) and, for recent
//! commits, the moment they became durable, so delivery can measure ingest → SIEM latency
//! without storing a time with every event.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use tokio::sync::watch;

/// How many recent commits keep their time; older events fall back to their own `ts`.
const REMEMBERED: usize = 65_536;

pub struct Commits {
    newest: watch::Sender<i64>,
    recent: Mutex<Recent>,
}

struct Recent {
    /// Events up to here were committed before the remembered ones (or by an earlier process).
    floor: i64,
    /// `(last seq of a commit, when it committed)`, oldest first.
    commits: VecDeque<(i64, Instant)>,
}

impl Commits {
    /// `newest`: the newest `seq` already in the store.
    pub fn new(newest: i64) -> Self {
        Self {
            newest: watch::Sender::new(newest),
            recent: Mutex::new(Recent {
                floor: newest,
                commits: VecDeque::new(),
            }),
        }
    }

    /// Called by the writer after a commit whose last event is `seq`.
    pub fn record(&self, seq: i64) {
        let mut recent = self.recent.lock().expect("commit log poisoned");
        if recent.commits.len() == REMEMBERED
            && let Some((last, _)) = recent.commits.pop_front()
        {
            recent.floor = last;
        }
        recent.commits.push_back((seq, Instant::now()));
        self.newest.send_replace(seq);
    }

    /// Called for an append another node committed (or this one, heard back from the
    /// database), whose last event is `seq`. Appends to different scopes commit in any order
    /// of their `seq`s, so this one may be older than the newest already heard of: it still
    /// wakes every lane (its scope's lane has something new), and `seq` only ever grows.
    pub fn record_appended(&self, seq: i64) {
        // Under the lock of the recent commits, like every other change: two callers at once
        // cannot move `newest` back, nor put the recent commits out of order.
        let mut recent = self.recent.lock().expect("commit log poisoned");
        if seq > *self.newest.borrow() {
            if recent.commits.len() == REMEMBERED
                && let Some((last, _)) = recent.commits.pop_front()
            {
                recent.floor = last;
            }
            recent.commits.push_back((seq, Instant::now()));
            self.newest.send_replace(seq);
        } else {
            self.newest.send_modify(|_| {});
        }
    }

    /// The newest `seq` known to be committed.
    pub fn newest(&self) -> i64 {
        *self.newest.borrow()
    }

    /// The newest committed `seq`, which changes after every commit.
    pub fn subscribe(&self) -> watch::Receiver<i64> {
        self.newest.subscribe()
    }

    /// When the event `seq` was committed, if that was recent and in this process.
    ///
    /// An event newer than every recorded commit was committed a moment ago: a reader can see
    /// it before the writer, back from its commit, records it here. It counts as committed
    /// now, not as one from before this process (which a lane would send at once, without
    /// waiting for its batch to fill).
    pub fn committed_at(&self, seq: i64) -> Option<Instant> {
        let recent = self.recent.lock().expect("commit log poisoned");
        if seq <= recent.floor {
            return None;
        }
        let i = recent.commits.partition_point(|(last, _)| *last < seq);
        Some(
            recent
                .commits
                .get(i)
                .map_or_else(Instant::now, |(_, at)| *at),
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_commit_of_a_seq() {
        let commits = Commits::new(3);
        let mut rx = commits.subscribe();
        commits.record(10);
        commits.record(25);
        assert!(rx.has_changed().unwrap());
        assert_eq!(*rx.borrow_and_update(), 25);
        assert_eq!(
            commits.committed_at(3),
            None,
            "committed before this process"
        );
        let first = commits.committed_at(4).unwrap();
        assert_eq!(commits.committed_at(10), Some(first));
        let second = commits.committed_at(11).unwrap();
        assert!(second >= first);
        assert_eq!(commits.committed_at(25), Some(second));
        let seen_early = commits.committed_at(26).unwrap();
        assert!(
            seen_early >= second,
            "read before its commit is recorded: committed now"
        );
    }
}

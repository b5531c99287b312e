//! When events were committed: the newest `seq` (which delivery lanes wait on) and, for recent
//! commits, the moment they became durable, so delivery can measure ingest → SIEM latency
//! without storing a time with every event.
//!
//! It also keeps a **feed** of the committed events themselves, for the tamper-evident log
//! (`jobs/integrity.rs`), which then need not read back and decode every event it takes. The
//! feed vouches for completeness, or for nothing: it holds every event committed after it was
//! opened, in `seq` order and without a gap, or it is broken and says so. Only the SQLite
//! writer fills it, with what each of its transactions inserted. A commit it did not see (by
//! another process on the same file) shows as a gap in `seq`s and breaks it; so does any
//! append on PostgreSQL, where several nodes commit; so does falling too far behind. Then the
//! log reads the store again. `auditrelay_log_feed_breaks_total{reason}` counts the breaks.

use std::collections::VecDeque;
use std::sync::Mutex;
use std::time::Instant;

use auditrelay_core::Event;
use tokio::sync::watch;

/// How many recent commits keep their time; older events fall back to their own `ts`.
const REMEMBERED: usize = 65_536;

/// How much the feed holds at most, counted in the events' stored bytes (a decoded event takes
/// two to three times as much memory): about 100,000 typical events, more than a group commit
/// holds (50,000). The log takes them a tenth of a second or so after a commit (up to 15,000 events at full
/// ingest); a log that falls further behind reads the store instead, rather than holding ever
/// more events in memory. (While the log takes one feed's worth, the next one fills: twice this
/// at most.)
const FEED_CAP_BYTES: usize = 16 << 20;

pub struct Commits {
    newest: watch::Sender<i64>,
    recent: Mutex<Recent>,
}

struct Recent {
    /// Events up to here were committed before the remembered ones (or by an earlier process).
    floor: i64,
    /// `(last seq of a commit, when it committed)`, oldest first.
    commits: VecDeque<(i64, Instant)>,
    feed: Feed,
}

/// The events of one commit, which took the `seq`s from `first` on, one each, in order.
pub struct Committed {
    pub first: i64,
    pub events: Vec<Event>,
}

/// Events committed since the feed was opened, for one reader.
enum Feed {
    Closed,
    Open {
        /// The `seq` the next commit must start at for the feed to stay whole.
        next: i64,
        commits: Vec<Committed>,
        /// The stored bytes of the events in `commits`.
        bytes: usize,
    },
    /// A commit it did not see or an append it was not given, or more than [`FEED_CAP_BYTES`]
    /// waiting.
    Broken,
}

/// What [`Commits::take_feed`] found.
pub enum Taken {
    /// Every event committed since the feed was opened or last taken, in `seq` order.
    Whole(Vec<Committed>),
    /// The feed is closed or broken: the store must be read.
    Broken,
}

impl Commits {
    /// `newest`: the newest `seq` already in the store.
    pub fn new(newest: i64) -> Self {
        Self {
            newest: watch::Sender::new(newest),
            recent: Mutex::new(Recent {
                floor: newest,
                commits: VecDeque::new(),
                feed: Feed::Closed,
            }),
        }
    }

    /// Called by the writer after a commit whose last event is `seq`, with the events it
    /// inserted (the batches in the order they took their `seq`s) and their stored size.
    pub fn record(&self, seq: i64, batches: Vec<Vec<Event>>, bytes: usize) {
        let unfed = {
            let mut recent = self.recent.lock().expect("commit log poisoned");
            recent.remember(seq);
            // Fed under the same lock that moves `newest`: a feed opened at `newest` misses
            // no commit after it.
            let unfed = recent.feed.push(seq, batches, bytes);
            self.newest.send_replace(seq);
            unfed
        };
        // Dropped outside the lock: a group commit may hold 50,000 events.
        drop(unfed);
    }

    /// Opens the feed afresh (dropping whatever it held); returns the newest committed `seq`,
    /// after which it holds every commit it sees.
    pub fn open_feed(&self) -> i64 {
        let (newest, old) = {
            let mut recent = self.recent.lock().expect("commit log poisoned");
            let newest = *self.newest.borrow();
            let open = Feed::Open {
                next: newest + 1,
                commits: Vec::new(),
                bytes: 0,
            };
            (newest, std::mem::replace(&mut recent.feed, open))
        };
        drop(old);
        newest
    }

    /// Takes what the feed holds, leaving it open and empty, or says that it is broken (and
    /// closes it).
    pub fn take_feed(&self) -> Taken {
        let mut recent = self.recent.lock().expect("commit log poisoned");
        match &mut recent.feed {
            Feed::Open { commits, bytes, .. } => {
                *bytes = 0;
                Taken::Whole(std::mem::take(commits))
            }
            Feed::Closed | Feed::Broken => {
                recent.feed = Feed::Closed;
                Taken::Broken
            }
        }
    }

    /// Closes the feed and drops what it held: its reader no longer takes it.
    pub fn close_feed(&self) {
        let old = {
            let mut recent = self.recent.lock().expect("commit log poisoned");
            std::mem::replace(&mut recent.feed, Feed::Closed)
        };
        // Outside the lock, like every drop of many events here.
        drop(old);
    }

    /// Called for an append another node committed (or this one, heard back from the
    /// database), whose last event is `seq`. Appends to different scopes commit in any order
    /// of their `seq`s, so this one may be older than the newest already heard of: it still
    /// wakes every lane (its scope's lane has something new), and `seq` only ever grows.
    pub fn record_appended(&self, seq: i64) {
        // Under the lock of the recent commits, like every other change: two callers at once
        // cannot move `newest` back, nor put the recent commits out of order.
        let mut recent = self.recent.lock().expect("commit log poisoned");
        // The feed cannot vouch for appends it was not given. What it held is dropped with
        // the lock held: on PostgreSQL, where this is called, nothing feeds it.
        drop(recent.feed.break_off("appended"));
        if seq > *self.newest.borrow() {
            recent.remember(seq);
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

impl Recent {
    /// Notes that a commit ended at `seq` now.
    fn remember(&mut self, seq: i64) {
        if self.commits.len() == REMEMBERED
            && let Some((last, _)) = self.commits.pop_front()
        {
            self.floor = last;
        }
        self.commits.push_back((seq, Instant::now()));
    }
}

impl Feed {
    /// Adds a commit whose last event is `last` and whose events take `size` stored bytes.
    /// Gives back what it does not keep, to be dropped outside the lock: the commit's events
    /// when it is closed or broken, and with them everything it held when this commit breaks it.
    fn push(
        &mut self,
        last: i64,
        batches: Vec<Vec<Event>>,
        size: usize,
    ) -> (Vec<Vec<Event>>, Vec<Committed>) {
        let Self::Open {
            next,
            commits,
            bytes,
        } = self
        else {
            return (batches, Vec::new());
        };
        let count: usize = batches.iter().map(Vec::len).sum();
        // One transaction of the one writer: its events took consecutive `seq`s.
        let first = last - count as i64 + 1;
        if first != *next {
            return (batches, self.break_off("gap"));
        }
        if *bytes + size > FEED_CAP_BYTES {
            return (batches, self.break_off("behind"));
        }
        *next = last + 1;
        *bytes += size;
        commits.extend(
            batches
                .into_iter()
                .scan(first, |at, events| {
                    let batch = Committed { first: *at, events };
                    *at += batch.events.len() as i64;
                    Some(batch)
                })
                .filter(|batch| !batch.events.is_empty()),
        );
        (Vec::new(), Vec::new())
    }

    /// Breaks an open feed, for `reason` (a metric label); returns what it held.
    fn break_off(&mut self, reason: &'static str) -> Vec<Committed> {
        match std::mem::replace(self, Self::Broken) {
            Self::Open { commits, .. } => {
                metrics::counter!("auditrelay_log_feed_breaks_total", "reason" => reason)
                    .increment(1);
                commits
            }
            Self::Closed => {
                *self = Self::Closed;
                Vec::new()
            }
            Self::Broken => Vec::new(),
        }
    }
}

#[cfg(test)]
mod tests {
    use auditrelay_core::{EventDetail, OrgId, Region, Timestamp};

    use super::*;

    fn events(n: usize) -> Vec<Event> {
        let event = Event {
            ts: Timestamp::from_millis(1_750_280_466_889),
            org_id: OrgId::nil(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: None,
            principal_name: None,
            actor_id: None,
            client_ip: None,
            uri: None,
            user_agent: None,
            trace_id: None,
            detail: EventDetail::Access {
                method: "GET".into(),
                query: "{}".into(),
                status_code: 200,
                kong_initiated: None,
            },
        };
        vec![event; n]
    }

    /// `(first seq, events)` of each commit the feed holds, or `None` when it is broken.
    fn take(commits: &Commits) -> Option<Vec<(i64, usize)>> {
        match commits.take_feed() {
            Taken::Whole(held) => Some(held.iter().map(|c| (c.first, c.events.len())).collect()),
            Taken::Broken => None,
        }
    }

    #[test]
    fn the_feed_holds_every_commit_after_it_was_opened_in_seq_order() {
        let commits = Commits::new(10);
        commits.record(12, vec![events(2)], 300);
        assert_eq!(take(&commits), None, "never opened");
        assert_eq!(commits.open_feed(), 12);
        commits.record(15, vec![events(1), Vec::new(), events(2)], 450);
        commits.record(16, vec![events(1)], 150);
        assert_eq!(take(&commits), Some(vec![(13, 1), (14, 2), (16, 1)]));
        assert_eq!(take(&commits), Some(vec![]), "taken, and still open");
        commits.record(20, vec![events(4)], 600);
        assert_eq!(take(&commits), Some(vec![(17, 4)]));
        commits.close_feed();
        commits.record(21, vec![events(1)], 150);
        assert_eq!(take(&commits), None, "closed");
    }

    #[test]
    fn the_feed_breaks_at_a_commit_it_did_not_see() {
        let commits = Commits::new(0);
        commits.open_feed();
        commits.record(3, vec![events(3)], 450);
        // Seq 4 was committed by someone else (another process on the same file).
        commits.record(6, vec![events(2)], 300);
        assert_eq!(take(&commits), None, "a gap");
        assert_eq!(take(&commits), None, "closed once found broken");

        commits.open_feed();
        commits.record(7, vec![events(1)], 150);
        commits.record_appended(9);
        commits.record(10, vec![events(1)], 150);
        assert_eq!(take(&commits), None, "an append it was not given");
    }

    #[test]
    fn the_feed_breaks_rather_than_hold_too_much() {
        let commits = Commits::new(0);
        commits.open_feed();
        let half = FEED_CAP_BYTES / 2;
        commits.record(2, vec![events(2)], half);
        commits.record(3, vec![events(1)], FEED_CAP_BYTES - half);
        assert_eq!(take(&commits), Some(vec![(1, 2), (3, 1)]), "up to the cap");
        // What was taken no longer counts; one byte more than the cap waiting breaks it.
        commits.record(4, vec![events(1)], 1);
        commits.record(5, vec![events(1)], FEED_CAP_BYTES);
        assert_eq!(take(&commits), None, "one byte over the cap");
    }

    #[test]
    fn finds_the_commit_of_a_seq() {
        let commits = Commits::new(3);
        let mut rx = commits.subscribe();
        commits.record(10, Vec::new(), 0);
        commits.record(25, Vec::new(), 0);
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

//! Completeness (PRODUCT Decision 16, DECISIONS.md S27): what a set of lines exported from a
//! SIEM proves about the logs they carry, from the lines alone and the checkpoint key — that
//! no event between two checkpoints was deleted, altered, reordered or inserted, and that no
//! checkpoint is missing.
//!
//! The lines come in any order and any mix of formats; each has had its signature checked by
//! the caller. For each log:
//!
//! - every checkpoint's note must verify under the checkpoint key and name the log;
//! - a checkpoint carries the frontier of the tree at the size before it: its root must be the
//!   previous checkpoint's, and that frontier with the leaves in between must give the
//!   checkpoint's root. So each interval between two checkpoints is proven whole by its own
//!   lines, and a missing or altered line is named by its index;
//! - checkpoints are signed every `checkpoint_interval` even when nothing happened, so a gap
//!   between two of them longer than [`allowed_gap`], or between the last one and `until`, is
//!   checkpoints (and perhaps lines) removed: a truncated tail shows so.
//!
//! From the export's first line to its last checkpoint, every index must be there. What no
//! export can prove is said, not failed: the root of the interval the export starts in (a
//! stream's first checkpoint may cover events sent before it began), and the leaves after its
//! last checkpoint.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use sha2::{Digest as _, Sha256};

use crate::checkpoint::Checkpoint;
use crate::integrity::CheckpointEvent;
use crate::merkle::{Frontier, Hash};
use crate::signing::PublicKey;
use crate::timestamp::Timestamp;

/// The longest gap between two checkpoints that is not a checkpoint missing: the interval,
/// and half of it again (at least five seconds) for rounds that run late — a node taking the
/// integrity job over, a store refusing writes for a moment. One missing checkpoint makes a
/// gap of twice the interval.
pub fn allowed_gap(interval_secs: u64) -> i64 {
    let ms = interval_secs.saturating_mul(1_000);
    let slack = (ms / 2).max(5_000);
    i64::try_from(ms.saturating_add(slack)).unwrap_or(i64::MAX)
}

/// The digest a line is told apart from others by ([`Audit::leaf`]).
pub fn line_digest(line: &[u8]) -> [u8; 32] {
    Sha256::digest(line).into()
}

/// What the check found in one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Finding {
    /// No line of an index between two checkpoints: deleted.
    Missing { first: u64, last: u64 },
    /// A line of this index is there but does not verify: altered.
    Altered { index: u64 },
    /// Two lines of this index carry different leaf hashes.
    Conflicting { index: u64 },
    /// A checkpoint line does not verify: altered.
    AlteredCheckpoint,
    /// A checkpoint's note does not verify under the checkpoint key, or is not this log's.
    BadCheckpoint { why: String },
    /// Two checkpoints of one size with different roots: two different trees.
    Forked { size: u64 },
    /// A checkpoint's previous frontier is not the tree of the checkpoint before it.
    Inconsistent { size: u64 },
    /// The leaves up to a checkpoint do not give its root.
    WrongRoot { size: u64 },
    /// Checkpoints are missing between two: the later one's previous size is not the earlier
    /// one's size.
    CheckpointsMissing { after: Timestamp, before: Timestamp },
    /// No checkpoint was signed between two times for longer than [`allowed_gap`], though none
    /// is missing (their sizes chain): the service was not signing; not a failure.
    Quiet { after: Timestamp, before: Timestamp },
    /// No `until` was given, so a tail cut off would not show; not a failure.
    TailNotJudged,
    /// No checkpoint after `last` up to `until`: the stream's tail is cut off.
    TailTruncated { last: Timestamp, until: Timestamp },
    /// Lines of the log but no checkpoint: nothing about completeness can be proven.
    NoCheckpoint,
    /// Identical lines of one index, `copies` of them: a resend (a replay, a retry); not a
    /// failure.
    Duplicated { index: u64, copies: u32 },
    /// Leaves no checkpoint interval of the export proves; not a failure.
    Unproven {
        first: u64,
        last: u64,
        why: Unproven,
    },
}

/// Why leaves are not proven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unproven {
    /// In the interval the export starts in (or before it): there and signed, but that
    /// interval's root needs the leaves before them.
    BeforeFirstInterval,
    /// After the last checkpoint.
    AfterLastCheckpoint,
}

impl Finding {
    /// Whether the finding means the export is not whole (rather than telling what it
    /// cannot prove, or that a line came twice).
    pub fn is_failure(&self) -> bool {
        !matches!(
            self,
            Self::Duplicated { .. }
                | Self::Unproven { .. }
                | Self::Quiet { .. }
                | Self::TailNotJudged
        )
    }
}

impl fmt::Display for Finding {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Missing { first, last } if first == last => {
                write!(f, "index {first} is missing")
            }
            Self::Missing { first, last } => write!(f, "indices {first} to {last} are missing"),
            Self::Altered { index } => {
                write!(f, "index {index} is altered: its line does not verify")
            }
            Self::Conflicting { index } => {
                write!(f, "index {index} has lines with different leaf hashes")
            }
            Self::AlteredCheckpoint => {
                write!(f, "a checkpoint line is altered: it does not verify")
            }
            Self::BadCheckpoint { why } => write!(f, "a checkpoint is not valid: {why}"),
            Self::Forked { size } => {
                write!(f, "two checkpoints of size {size} have different roots")
            }
            Self::Inconsistent { size } => write!(
                f,
                "the checkpoint of size {size} does not extend the tree of the one before it"
            ),
            Self::WrongRoot { size } => write!(
                f,
                "the leaves up to the checkpoint of size {size} do not give its root"
            ),
            Self::CheckpointsMissing { after, before } => write!(
                f,
                "checkpoints are missing between {} and {}",
                after.to_rfc3339_seconds(),
                before.to_rfc3339_seconds()
            ),
            Self::TailTruncated { last, until } => write!(
                f,
                "no checkpoint after {} up to {}: the tail of the stream is cut off",
                last.to_rfc3339_seconds(),
                until.to_rfc3339_seconds()
            ),
            Self::Quiet { after, before } => write!(
                f,
                "no checkpoint was signed between {} and {}, and none is missing",
                after.to_rfc3339_seconds(),
                before.to_rfc3339_seconds()
            ),
            Self::TailNotJudged => write!(
                f,
                "the tail is not judged: give the time the export ends (--until) to know it is \
                 not cut off"
            ),
            Self::NoCheckpoint => write!(f, "no checkpoint: completeness cannot be proven"),
            Self::Duplicated { index, copies } => {
                write!(f, "index {index} came {copies} times, identical (a resend)")
            }
            Self::Unproven { first, last, why } => {
                let why = match why {
                    Unproven::BeforeFirstInterval => {
                        "they are in the interval the export starts in, whose root needs the \
                         leaves before them"
                    }
                    Unproven::AfterLastCheckpoint => "after the last checkpoint",
                };
                write!(f, "indices {first} to {last} are not proven: {why}")
            }
        }
    }
}

/// What the check concluded about one log.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogReport {
    pub log: String,
    /// Distinct indices with a valid line.
    pub leaves: u64,
    /// Distinct valid checkpoints.
    pub checkpoints: u64,
    /// The indices proven whole, when the log is: from the export's first line to the last
    /// checkpoint's size (exclusive). (Those in the interval the export starts in are all
    /// there and signed, but that interval's root is not recomputed: see its `Unproven`.)
    pub proven: Option<(u64, u64)>,
    pub findings: Vec<Finding>,
}

impl LogReport {
    pub fn is_whole(&self) -> bool {
        !self.findings.iter().any(Finding::is_failure)
    }
}

/// A valid line of one index: its leaf hash and the digests of the lines that carried it.
struct Leaf {
    hash: Hash,
    lines: BTreeMap<[u8; 32], u32>,
}

#[derive(Default)]
struct LogLines {
    leaves: BTreeMap<u64, Leaf>,
    conflicting: BTreeSet<u64>,
    altered: BTreeSet<u64>,
    altered_checkpoints: u32,
    checkpoints: Vec<CheckpointEvent>,
}

/// The lines seen so far, by log.
pub struct Audit {
    /// The checkpoint key's name and key.
    name: String,
    key: PublicKey,
    logs: BTreeMap<String, LogLines>,
}

impl Audit {
    pub fn new(name: &str, key: PublicKey) -> Self {
        Self {
            name: name.to_owned(),
            key,
            logs: BTreeMap::new(),
        }
    }

    /// A verified line of an event at `index` in `log`; `line` is a digest of its bytes
    /// ([`line_digest`]), by which identical copies are told from the same event in another
    /// format.
    pub fn leaf(&mut self, log: &str, index: u64, leaf_hash: Hash, line: [u8; 32]) {
        let lines = self.logs.entry(log.to_owned()).or_default();
        let digest = line;
        let leaf = lines.leaves.entry(index).or_insert_with(|| Leaf {
            hash: leaf_hash,
            lines: BTreeMap::new(),
        });
        if leaf.hash != leaf_hash {
            lines.conflicting.insert(index);
        }
        *leaf.lines.entry(digest).or_default() += 1;
    }

    /// A verified checkpoint line.
    pub fn checkpoint(&mut self, checkpoint: CheckpointEvent) {
        let lines = self.logs.entry(checkpoint.log.clone()).or_default();
        lines.checkpoints.push(checkpoint);
    }

    /// A line that does not verify but says it is the event at `index` in `log`.
    pub fn altered_leaf(&mut self, log: &str, index: u64) {
        self.logs
            .entry(log.to_owned())
            .or_default()
            .altered
            .insert(index);
    }

    /// A line that does not verify but says it is a checkpoint of `log`.
    pub fn altered_checkpoint(&mut self, log: &str) {
        self.logs
            .entry(log.to_owned())
            .or_default()
            .altered_checkpoints += 1;
    }

    /// The conclusion for every log seen; `until` is when the export ends (a tail without a
    /// checkpoint up to then is cut off), `None` to not judge the tail.
    pub fn finish(self, until: Option<Timestamp>) -> Vec<LogReport> {
        self.logs
            .into_iter()
            .map(|(log, lines)| check_log(&self.name, &self.key, log, lines, until))
            .collect()
    }
}

/// A checkpoint whose note verified.
struct Verified {
    event: CheckpointEvent,
    checkpoint: Checkpoint,
}

fn check_log(
    name: &str,
    key: &PublicKey,
    log: String,
    lines: LogLines,
    until: Option<Timestamp>,
) -> LogReport {
    let mut findings = Vec::new();
    for _ in 0..lines.altered_checkpoints {
        findings.push(Finding::AlteredCheckpoint);
    }
    let mut checkpoints = verified_checkpoints(name, key, &log, lines.checkpoints, &mut findings);
    let leaves = &lines.leaves;
    let leaf = |index: u64| leaves.get(&index).map(|l| l.hash);

    // Each interval, in order of size.
    // Below this, leaves are not proven: before the first checkpoint's interval, or in it when
    // the export starts inside it.
    let mut unproven_below = checkpoints.first().map_or(0, |cp| cp.event.previous_size);
    let mut after_previous: Option<Frontier> = None;
    let mut missing = BTreeSet::new();
    for n in 0..checkpoints.len() {
        let cp = &checkpoints[n];
        let (size, root) = (cp.checkpoint.size, cp.checkpoint.root);
        let previous_size = cp.event.previous_size;
        let given = Frontier::from_parts(previous_size, cp.event.previous_frontier.clone());
        let Some(given) = given.filter(|_| previous_size <= size) else {
            findings.push(Finding::Inconsistent { size });
            after_previous = None;
            continue;
        };
        if let Some(previous) = n.checked_sub(1).map(|p| &checkpoints[p]) {
            let previous_size_was = previous.checkpoint.size;
            if previous_size == previous_size_was {
                if given.root() != previous.checkpoint.root {
                    findings.push(Finding::Inconsistent { size });
                }
            } else if previous_size < previous_size_was {
                findings.push(Finding::Inconsistent { size });
            } else {
                // The checkpoints between are missing; the leaves between are checked against
                // this checkpoint's previous frontier instead.
                findings.push(Finding::CheckpointsMissing {
                    after: previous.event.signed_at,
                    before: cp.event.signed_at,
                });
            }
            let between = previous_size_was..previous_size;
            if let Some(mut frontier) = after_previous.take().filter(|_| !between.is_empty())
                && extend(&mut frontier, between, &leaf, &mut missing)
                && frontier != given
            {
                findings.push(Finding::Inconsistent { size });
            }
        }
        let interval = previous_size..size;
        if n == 0 && interval.clone().any(|i| leaf(i).is_none()) {
            // A stream's first checkpoint covers its first line, and may cover events sent
            // before the stream began (without places): the export starts inside this
            // interval, whose root cannot be recomputed. From its first line on it must be
            // whole (below). Every later checkpoint comes after all of its lines, so every
            // later interval is whole.
            unproven_below = size;
            after_previous = None;
            continue;
        }
        let mut frontier = given;
        if extend(&mut frontier, interval.clone(), &leaf, &mut missing) {
            if frontier.root() == root {
                after_previous = Some(frontier);
                continue;
            }
            findings.push(Finding::WrongRoot { size });
        }
        after_previous = None;
    }
    // From the export's first line to its last checkpoint, every index: a line deleted after
    // the first is missing whether or not the checkpoints around it were kept.
    let first_line = leaves.keys().chain(&lines.altered).min().copied();
    let last_size = checkpoints.iter().map(|cp| cp.checkpoint.size).max();
    if let (Some(first), Some(end)) = (first_line, last_size) {
        all_present(first..end, &leaf, &mut missing);
    }
    // Missing indices, the altered ones named as such.
    let mut ranges: Vec<(u64, u64)> = Vec::new();
    for index in missing {
        if lines.altered.contains(&index) {
            continue;
        }
        match ranges.last_mut() {
            Some((_, last)) if *last + 1 == index => *last = index,
            _ => ranges.push((index, index)),
        }
    }
    findings.extend(
        ranges
            .into_iter()
            .map(|(first, last)| Finding::Missing { first, last }),
    );
    findings.extend(
        lines
            .altered
            .iter()
            .map(|&index| Finding::Altered { index }),
    );
    findings.extend(
        lines
            .conflicting
            .iter()
            .map(|&index| Finding::Conflicting { index }),
    );

    // Gaps in time. Between two checkpoints whose sizes chain, none is missing that held
    // events (the chain says so): a gap there is the log not being signed for a while (the
    // service was down), which is worth saying but proves nothing removed. At the end, time is
    // all there is: a tail cut off takes its checkpoints with it.
    checkpoints.sort_by_key(|cp| cp.event.signed_at);
    for pair in checkpoints.windows(2) {
        let (a, b) = (&pair[0].event, &pair[1].event);
        let allowed = allowed_gap(a.interval_secs.max(b.interval_secs));
        let missing = Finding::CheckpointsMissing {
            after: a.signed_at,
            before: b.signed_at,
        };
        if b.signed_at.as_millis() - a.signed_at.as_millis() > allowed
            && !findings.contains(&missing)
        {
            findings.push(Finding::Quiet {
                after: a.signed_at,
                before: b.signed_at,
            });
        }
    }
    let last = checkpoints.iter().max_by_key(|cp| cp.checkpoint.size);
    if until.is_none() && !checkpoints.is_empty() {
        findings.push(Finding::TailNotJudged);
    }
    match (checkpoints.last(), until) {
        (Some(newest), Some(until))
            if until.as_millis() - newest.event.signed_at.as_millis()
                > allowed_gap(newest.event.interval_secs) =>
        {
            findings.push(Finding::TailTruncated {
                last: newest.event.signed_at,
                until,
            });
        }
        _ => {}
    }
    let end = last.map_or(0, |cp| cp.checkpoint.size);
    if last.is_none() && (!leaves.is_empty() || !lines.altered.is_empty()) {
        findings.push(Finding::NoCheckpoint);
    }
    let before: Vec<u64> = (leaves.keys().copied())
        .take_while(|i| *i < unproven_below)
        .collect();
    if let (Some(&first), Some(&last)) = (before.first(), before.last()) {
        findings.push(Finding::Unproven {
            first,
            last,
            why: Unproven::BeforeFirstInterval,
        });
    }
    if let Some((&newest, _)) = leaves.last_key_value().filter(|(i, _)| **i >= end) {
        findings.push(Finding::Unproven {
            first: end,
            last: newest,
            why: Unproven::AfterLastCheckpoint,
        });
    }
    for (&index, leaf) in leaves {
        for &copies in leaf.lines.values().filter(|c| **c > 1) {
            findings.push(Finding::Duplicated { index, copies });
        }
    }
    let whole = !findings.iter().any(Finding::is_failure);
    LogReport {
        log,
        leaves: leaves.len() as u64,
        checkpoints: checkpoints.len() as u64,
        proven: first_line
            .filter(|_| whole)
            .map(|from| (from, end.max(from))),
        findings,
    }
}

/// Whether every leaf of `range` is there; the absent ones are added to `missing`.
fn all_present(
    range: std::ops::Range<u64>,
    leaf: &impl Fn(u64) -> Option<Hash>,
    missing: &mut BTreeSet<u64>,
) -> bool {
    let before = missing.len();
    missing.extend(range.filter(|i| leaf(*i).is_none()));
    missing.len() == before
}

/// Adds the leaves of `range` to `frontier`; `false` (and the absent indices added to
/// `missing`) when some are absent.
fn extend(
    frontier: &mut Frontier,
    range: std::ops::Range<u64>,
    leaf: &impl Fn(u64) -> Option<Hash>,
    missing: &mut BTreeSet<u64>,
) -> bool {
    if !all_present(range.clone(), leaf, missing) {
        return false;
    }
    for index in range {
        frontier.push(leaf(index).expect("checked above"));
    }
    true
}

/// The checkpoints whose notes verify and name `log`, one of each, in order of size; the others
/// are findings.
fn verified_checkpoints(
    name: &str,
    key: &PublicKey,
    log: &str,
    events: Vec<CheckpointEvent>,
    findings: &mut Vec<Finding>,
) -> Vec<Verified> {
    let mut seen = BTreeSet::new();
    let mut verified = Vec::new();
    for event in events {
        if !seen.insert((event.note.clone(), event.signed_at)) {
            continue;
        }
        match Checkpoint::open(&event.note, name, key) {
            Ok(checkpoint) if checkpoint.origin == log => {
                verified.push(Verified { event, checkpoint })
            }
            Ok(checkpoint) => findings.push(Finding::BadCheckpoint {
                why: format!(
                    "its note is of the log {}, its line says {log}",
                    checkpoint.origin
                ),
            }),
            Err(e) => findings.push(Finding::BadCheckpoint { why: e.to_string() }),
        }
    }
    // Of one size, the checkpoint that grew the tree to it comes first (nodes' clocks may
    // disagree about which was signed first).
    verified.sort_by_key(|cp| {
        (
            cp.checkpoint.size,
            cp.event.previous_size,
            cp.event.signed_at,
        )
    });
    for pair in verified.windows(2) {
        let (a, b) = (&pair[0].checkpoint, &pair[1].checkpoint);
        if a.size == b.size && a.root != b.root {
            findings.push(Finding::Forked { size: a.size });
        }
    }
    verified
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::checkpoint::NoteKey;
    use crate::merkle::leaf_hash;
    use crate::signing::SigningKey;

    const NAME: &str = "auditrelay/test";
    const LOG: &str = "auditrelay/test/org/us";

    fn note_key() -> SigningKey {
        SigningKey::from_seed(&[9; 32])
    }

    /// A stream: `leaves` events, and a checkpoint after each size in `sizes` (repeated sizes
    /// are checkpoints of a quiet minute), one a minute from time 0.
    struct Stream {
        leaves: Vec<Hash>,
        checkpoints: Vec<CheckpointEvent>,
    }

    fn stream(leaves: u64, sizes: &[u64]) -> Stream {
        let hashes: Vec<Hash> = (0..leaves).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let key = note_key();
        let signer = NoteKey {
            name: NAME,
            key: &key,
        };
        let mut frontier = Frontier::new();
        let mut checkpoints = Vec::new();
        for (n, &size) in sizes.iter().enumerate() {
            let previous = frontier.clone();
            while frontier.size() < size {
                frontier.push(hashes[frontier.size() as usize]);
            }
            let checkpoint = Checkpoint {
                origin: LOG.into(),
                size,
                root: frontier.root(),
            };
            checkpoints.push(CheckpointEvent {
                log: LOG.into(),
                portal: false,
                signed_at: Timestamp::from_millis(60_000 * n as i64),
                note: checkpoint.sign(&signer),
                previous_size: previous.size(),
                previous_frontier: previous.subtrees().to_vec(),
                interval_secs: 60,
            });
        }
        Stream {
            leaves: hashes,
            checkpoints,
        }
    }

    impl Stream {
        fn audit(&self, skip: &[u64]) -> Audit {
            let mut audit = Audit::new(NAME, note_key().public_key().clone());
            for (index, hash) in self.leaves.iter().enumerate() {
                let index = index as u64;
                if !skip.contains(&index) {
                    audit.leaf(LOG, index, *hash, line_digest(&index.to_be_bytes()));
                }
            }
            for checkpoint in &self.checkpoints {
                audit.checkpoint(checkpoint.clone());
            }
            audit
        }
    }

    fn failures(report: &LogReport) -> Vec<&Finding> {
        report.findings.iter().filter(|f| f.is_failure()).collect()
    }

    #[test]
    fn a_whole_stream_is_proven_whole() {
        let stream = stream(100, &[10, 10, 40, 77, 77, 100]);
        let reports = stream
            .audit(&[])
            .finish(Some(Timestamp::from_millis(5 * 60_000)));
        assert_eq!(reports.len(), 1);
        let report = &reports[0];
        assert!(report.is_whole(), "{:?}", report.findings);
        assert_eq!(report.proven, Some((0, 100)));
        assert_eq!((report.leaves, report.checkpoints), (100, 6));
    }

    #[test]
    fn a_missing_line_is_named_by_its_index() {
        let stream = stream(100, &[10, 40, 77, 100]);
        let report = &stream.audit(&[50, 60, 61]).finish(None)[0];
        assert_eq!(
            failures(report),
            [
                &Finding::Missing {
                    first: 50,
                    last: 50
                },
                &Finding::Missing {
                    first: 60,
                    last: 61
                }
            ]
        );
        assert_eq!(report.proven, None);
    }

    #[test]
    fn an_altered_line_is_named_as_altered_not_missing() {
        let stream = stream(100, &[10, 40, 77, 100]);
        let mut audit = stream.audit(&[33]);
        audit.altered_leaf(LOG, 33);
        let report = &audit.finish(None)[0];
        assert_eq!(failures(report), [&Finding::Altered { index: 33 }]);
    }

    #[test]
    fn a_line_with_another_leaf_hash_is_caught() {
        let stream = stream(100, &[10, 40, 77, 100]);
        let mut audit = stream.audit(&[]);
        audit.leaf(LOG, 20, [0; 32], line_digest(b"forged"));
        let report = &audit.finish(None)[0];
        assert_eq!(failures(report), [&Finding::Conflicting { index: 20 }]);
        // Alone, a forged leaf hash gives the wrong root.
        let mut audit = stream.audit(&[20]);
        audit.leaf(LOG, 20, [0; 32], line_digest(b"forged"));
        let report = &audit.finish(None)[0];
        assert_eq!(failures(report), [&Finding::WrongRoot { size: 40 }]);
    }

    #[test]
    fn a_cut_tail_shows_as_missing_checkpoints_up_to_the_end() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        // The last 30 lines, the last two checkpoints with them.
        stream.checkpoints.truncate(2);
        stream.leaves.truncate(70);
        let report = &stream
            .audit(&[])
            .finish(Some(Timestamp::from_millis(4 * 60_000)))[0];
        assert_eq!(
            failures(report),
            [&Finding::TailTruncated {
                last: Timestamp::from_millis(60_000),
                until: Timestamp::from_millis(4 * 60_000)
            }]
        );
        assert!(report.findings.contains(&Finding::Unproven {
            first: 40,
            last: 69,
            why: Unproven::AfterLastCheckpoint
        }));
    }

    #[test]
    fn a_missing_checkpoint_in_the_middle_is_a_gap_and_its_leaves_still_count() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        stream.checkpoints.remove(2);
        let report = &stream.audit(&[]).finish(None)[0];
        assert_eq!(
            failures(report),
            [&Finding::CheckpointsMissing {
                after: Timestamp::from_millis(60_000),
                before: Timestamp::from_millis(180_000)
            }]
        );
        let report = &stream.audit(&[50]).finish(None)[0];
        assert!(report.findings.contains(&Finding::Missing {
            first: 50,
            last: 50
        }));
    }

    #[test]
    fn identical_copies_are_named_but_not_failed() {
        let stream = stream(20, &[10, 20]);
        let mut audit = stream.audit(&[]);
        audit.leaf(LOG, 5, stream.leaves[5], line_digest(&5u64.to_be_bytes()));
        // The same event in another format is no copy.
        audit.leaf(LOG, 6, stream.leaves[6], line_digest(b"another format"));
        for checkpoint in &stream.checkpoints {
            audit.checkpoint(checkpoint.clone());
        }
        let report = &audit.finish(Some(Timestamp::from_millis(60_000)))[0];
        assert!(report.is_whole(), "{:?}", report.findings);
        assert_eq!(
            report.findings,
            [Finding::Duplicated {
                index: 5,
                copies: 2
            }]
        );
    }

    /// A stream's first checkpoint covers its first line: the export is whole from that line,
    /// and the roots are recomputed from its next checkpoint on.
    #[test]
    fn a_stream_that_starts_inside_an_interval_is_whole_from_its_first_line() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        stream.checkpoints.remove(0);
        let report = &stream.audit(&(0..25).collect::<Vec<_>>()).finish(None)[0];
        assert!(report.is_whole(), "{:?}", report.findings);
        assert_eq!(report.proven, Some((25, 100)));
        assert_eq!(
            report.findings,
            [
                Finding::TailNotJudged,
                Finding::Unproven {
                    first: 25,
                    last: 39,
                    why: Unproven::BeforeFirstInterval
                }
            ]
        );
        // Only checkpoints, no line: nothing to prove, nothing missing.
        let mut audit = Audit::new(NAME, note_key().public_key().clone());
        audit.checkpoint(stream.checkpoints[0].clone());
        let report = &audit.finish(None)[0];
        assert!(report.is_whole(), "{:?}", report.findings);
    }

    #[test]
    fn a_line_missing_after_the_first_line_of_an_export_is_named_even_in_its_first_interval() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        stream.checkpoints.remove(0);
        let mut skip: Vec<u64> = (0..25).collect();
        skip.push(30);
        let report = &stream.audit(&skip).finish(None)[0];
        assert_eq!(
            failures(report),
            [&Finding::Missing {
                first: 30,
                last: 30
            }]
        );
    }

    /// Lines deleted from the start of an export whose checkpoints were kept: every interval
    /// after the first checkpoint must be whole.
    #[test]
    fn lines_deleted_before_the_last_kept_checkpoint_are_named() {
        let stream = stream(100, &[10, 40, 77, 100]);
        let report = &stream.audit(&(0..40).collect::<Vec<_>>()).finish(None)[0];
        assert_eq!(
            failures(report),
            [&Finding::Missing {
                first: 10,
                last: 39
            }]
        );
    }

    /// A line kept before the checkpoints that were kept does not let the lines between go.
    #[test]
    fn lines_deleted_after_the_first_line_with_their_checkpoints_are_named() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        stream.checkpoints.drain(..2);
        let report = &stream.audit(&(1..40).collect::<Vec<_>>()).finish(None)[0];
        assert_eq!(failures(report), [&Finding::Missing { first: 1, last: 39 }]);
    }

    /// Checkpoints far apart in time whose sizes chain: the service did not sign for a while,
    /// and nothing is missing.
    #[test]
    fn a_quiet_spell_is_said_but_not_failed() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        stream.checkpoints[3].signed_at = Timestamp::from_millis(3_600_000);
        let report = &stream
            .audit(&[])
            .finish(Some(Timestamp::from_millis(3_600_000)))[0];
        assert!(report.is_whole(), "{:?}", report.findings);
        assert_eq!(
            report.findings,
            [Finding::Quiet {
                after: Timestamp::from_millis(120_000),
                before: Timestamp::from_millis(3_600_000)
            }]
        );
    }

    #[test]
    fn a_checkpoint_not_signed_by_the_key_or_of_another_tree_fails() {
        let mut stream = stream(100, &[10, 40, 77, 100]);
        stream.checkpoints[1].note = stream.checkpoints[1].note.replace("40\n", "41\n");
        let report = &stream.audit(&[]).finish(None)[0];
        assert!(
            failures(report)
                .iter()
                .any(|f| matches!(f, Finding::BadCheckpoint { .. })),
            "{:?}",
            report.findings
        );
        let mut stream = self::stream(100, &[10, 40, 77, 100]);
        stream.checkpoints[2].previous_frontier = vec![[1; 32], [2; 32], [3; 32]];
        stream.checkpoints[2].previous_size = 0b1011;
        let report = &stream.audit(&[]).finish(None)[0];
        assert!(
            failures(report).contains(&&Finding::Inconsistent { size: 77 }),
            "{:?}",
            report.findings
        );
    }
}

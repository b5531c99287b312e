//! The records of the tamper-evident log (PRODUCT Decision 16, DECISIONS.md S24) as both
//! backends store them: a log's head, its chunks of leaves, and its signed checkpoints. What
//! goes into them is decided in `integrity.rs`; the store keeps them and guards one rule: a
//! log only grows from the size its writer read (two writers cannot both extend it).

use std::collections::{HashMap, HashSet};

use auditrelay_core::Timestamp;
use auditrelay_core::integrity::{CHUNK_HEIGHT, CHUNK_LEAVES, Chunk, GROUP_HEIGHT, GROUP_LEAVES};
use auditrelay_core::merkle::{Frontier, Hash, Subtrees, root, root_of_parts};

use super::rows::Columns;
use super::{Result, Scope, StoreError};

/// A log's head: its size, the last event it took, and its frontier.
#[derive(Debug, Clone)]
pub struct LogHead {
    pub scope: Scope,
    /// The `seq` of the last event in the log (0 for an empty log).
    pub last_seq: i64,
    pub frontier: Frontier,
}

impl LogHead {
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }
}

/// A chunk to write, with its root once full, the time of its newest event (leaf retention
/// goes by it), and the root of its group when it is the group's last chunk.
#[derive(Debug, Clone)]
pub struct ChunkWrite {
    pub chunk: Chunk,
    /// `Some` exactly when the chunk is full.
    pub root: Option<Hash>,
    pub last_ts: i64,
    pub group_root: Option<Hash>,
}

impl ChunkWrite {
    /// `root`: the full chunk's root as the log's frontier worked it out while its leaves were
    /// pushed (`Frontier::push_completing`), so they are not hashed again.
    pub fn new(chunk: Chunk, root: Option<Hash>, last_ts: i64) -> Self {
        debug_assert_eq!(root, chunk.root(), "a chunk's root is its leaves'");
        Self {
            chunk,
            root,
            last_ts,
            group_root: None,
        }
    }
}

/// A checkpoint as signed and kept.
#[derive(Debug, Clone)]
pub struct StoredCheckpoint {
    pub id: i64,
    pub root: Hash,
    /// The frontier at this checkpoint's size (its size is the frontier's).
    pub frontier: Frontier,
    /// The size of the checkpoint before this one (0 for the first).
    pub previous_size: u64,
    pub signed_at: Timestamp,
    /// The signed note.
    pub note: String,
}

impl StoredCheckpoint {
    pub fn size(&self) -> u64 {
        self.frontier.size()
    }
}

/// The hashes a proof in a log of `size` leaves is made of: the root of every full group below
/// `size`, and, for the groups and chunks a proof reaches into (the leaf's, and those at the
/// tree sizes' edges), their chunks' roots and their leaves. Enough for any inclusion or
/// consistency proof ending at `size` that touches only those (`merkle::Subtrees`).
#[derive(Debug, Default)]
pub struct LogTiles {
    /// Full groups' roots, group 0 first.
    pub groups: Vec<Hash>,
    /// Some full chunks' roots, by chunk number.
    pub roots: HashMap<u64, Hash>,
    /// Some chunks, with their leaves and their events' `seq`s, by chunk number.
    pub chunks: HashMap<u64, Chunk>,
    /// The groups whose chunks' roots are loaded (a group may have none full yet).
    pub groups_reached: HashSet<u64>,
}

impl Subtrees for LogTiles {
    fn perfect(&self, start: u64, height: u32) -> Option<Hash> {
        if height >= GROUP_HEIGHT {
            let first = usize::try_from(start / GROUP_LEAVES).ok()?;
            let count = 1usize << (height - GROUP_HEIGHT);
            return Some(root_of_parts(self.groups.get(first..first + count)?));
        }
        let number = start / CHUNK_LEAVES;
        if height >= CHUNK_HEIGHT {
            let count = 1u64 << (height - CHUNK_HEIGHT);
            let roots: Option<Vec<Hash>> = (number..number + count)
                .map(|n| self.roots.get(&n).copied())
                .collect();
            return Some(root_of_parts(&roots?));
        }
        let leaves = &self.chunks.get(&number)?.hashes;
        let from = usize::try_from(start % CHUNK_LEAVES).ok()?;
        Some(root(leaves.get(from..from + (1 << height))?))
    }
}

/// A frontier as stored: its subtrees' roots concatenated.
pub(super) fn encode_frontier(frontier: &Frontier) -> Vec<u8> {
    frontier.subtrees().concat()
}

pub(super) fn decode_frontier(size: i64, bytes: &[u8]) -> Result<Frontier> {
    let corrupt = || StoreError::Corrupt(format!("a log frontier of size {size} is damaged"));
    if !bytes.len().is_multiple_of(32) {
        return Err(corrupt());
    }
    let subtrees = bytes
        .chunks_exact(32)
        .map(|h| h.try_into().expect("32 bytes"))
        .collect();
    Frontier::from_parts(u64::try_from(size).map_err(|_| corrupt())?, subtrees).ok_or_else(corrupt)
}

pub(super) fn decode_hash(bytes: &[u8], what: &str) -> Result<Hash> {
    bytes
        .try_into()
        .map_err(|_| StoreError::Corrupt(format!("{what} is not 32 bytes")))
}

/// A log head from a row of `scopes` joined with `logs` (`size`, `last_seq`, `frontier`).
pub(super) fn head(row: &impl Columns) -> Result<LogHead> {
    Ok(LogHead {
        scope: super::rows::scope(row, "log")?,
        last_seq: row.int("last_seq")?,
        frontier: decode_frontier(row.int("size")?, &row.bytes("frontier")?)?,
    })
}

/// A chunk's leaves from its row, or `None` once retention emptied it.
pub(super) fn chunk(row: &impl Columns) -> Result<Option<Chunk>> {
    let number = row.int("number")?;
    let (Some(seqs), Some(hashes)) = (row.maybe_bytes("seqs")?, row.maybe_bytes("hashes")?) else {
        return Ok(None);
    };
    Chunk::decode(number as u64, row.int("first_seq")?, &seqs, &hashes)
        .map(Some)
        .map_err(|e| StoreError::Corrupt(format!("log chunk {number}: {e}")))
}

/// How many leaves of a log are events up to `seq`, at least, from the row of the last chunk
/// whose first event is at or before it (`None`: no chunk is, so none).
pub(super) fn leaves_through(row: Option<&impl Columns>, seq: i64) -> Result<u64> {
    let Some(row) = row else {
        return Ok(0);
    };
    let number = row.int("number")? as u64;
    if seq >= row.int("last_seq")? {
        // The whole chunk: retention empties only full ones.
        let held = row
            .maybe_bytes("hashes")?
            .map_or(CHUNK_LEAVES, |h| h.len() as u64 / 32);
        return Ok(number * CHUNK_LEAVES + held);
    }
    let Some(chunk) = chunk(row)? else {
        // Retention emptied it while its events waited (an outage longer than `keep_leaves`):
        // they are gone, and where `seq` falls among them is not known any more. Counted as
        // none, a checkpoint over them waits until delivery is past the chunk, which the next
        // batch is: the events after it are the next to go.
        return Ok(number * CHUNK_LEAVES);
    };
    let within = chunk.seqs.partition_point(|s| *s <= seq) as u64;
    Ok(chunk.first_index() + within)
}

/// The chunks of rows, skipping those retention emptied.
pub(super) fn chunks<R: Columns>(rows: &[R]) -> Result<Vec<Chunk>> {
    let mut out = Vec::with_capacity(rows.len());
    for row in rows {
        out.extend(chunk(row)?);
    }
    Ok(out)
}

/// Roots from rows of `number, root`, which must be `first`, `first + 1`, … in order: a gap is
/// damage, not a shorter log.
pub(super) fn numbered_roots<R: Columns>(rows: &[R], first: u64, what: &str) -> Result<Vec<Hash>> {
    let mut roots = Vec::with_capacity(rows.len());
    for (at, row) in rows.iter().enumerate() {
        let expected = first + at as u64;
        let number = row.int("number")?;
        if number != expected as i64 {
            return Err(StoreError::Corrupt(format!(
                "log {what} {expected} has no root, but {what} {number} has"
            )));
        }
        roots.push(decode_hash(&row.bytes("root")?, "a log root")?);
    }
    Ok(roots)
}

pub(super) fn checkpoint(row: &impl Columns) -> Result<StoredCheckpoint> {
    Ok(StoredCheckpoint {
        id: row.int("id")?,
        root: decode_hash(&row.bytes("root")?, "a checkpoint's root")?,
        frontier: decode_frontier(row.int("size")?, &row.bytes("frontier")?)?,
        previous_size: row.int("previous_size")? as u64,
        signed_at: Timestamp::from_millis(row.int("signed_at")?),
        note: row.text("note")?,
    })
}

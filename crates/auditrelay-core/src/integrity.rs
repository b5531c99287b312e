//! What the tamper-evident log holds of an event (PRODUCT Decision 16): its leaf, a canonical,
//! format-independent encoding whose RFC 6962 hash (`merkle::leaf_hash`) is the log's leaf.
//!
//! The leaf is the canonical JSON (keys in byte order at every level, no whitespace, standard
//! escaping — the form pull-API entries are signed in, `format/pull.rs`) of one object:
//!
//! - every field the event's pull-API entry has, under Konnect's v3 names (`type`, `ts` in
//!   RFC 3339 with milliseconds, `org_id`, `portal_id`, the principal, client and detail
//!   fields), and no other;
//! - `event_id`: the event's stable id (DECISIONS.md S13);
//! - `log`: the origin of the log it is in (one per scope), and `log_index`: its place there.
//!
//! So a leaf is the same whatever format a destination renders the event in, and whatever the
//! installation's vendor or product names are: nothing of a line's syntax or header is in it.
//! Its place and log are in it, so a leaf copied into another log or place does not pass.

use uuid::Uuid;

use crate::event::Event;
use crate::format::pull::{Key, Member, Members, entry_members};
use crate::ids::{OrgId, PortalId, Region};
use crate::merkle::{Hash, leaf_hash};

/// The installation's name in the tamper-evident log: its checkpoint key's name, and the
/// prefix of every log's origin. Made of the store's identity, so two installations never
/// share a log's name.
pub fn installation_name(store: &Uuid) -> String {
    format!("auditrelay/{}", store.simple())
}

/// The origin of a scope's log (a checkpoint's first line): the installation's name, then the
/// org and region, then the portal for a portal's log.
pub fn log_origin(
    installation: &str,
    org: OrgId,
    region: &Region,
    portal: Option<PortalId>,
) -> String {
    match portal {
        None => format!("{installation}/{org}/{region}"),
        Some(portal) => format!("{installation}/{org}/{region}/{portal}"),
    }
}

/// The leaf of `event`, whose stable id is `id`, at `index` in the log `origin`. Written
/// straight from the entry's members, in their keys' order, without building a JSON object or
/// sorting: the log takes every event, and a lane with `integrity` checks every line's leaf.
pub fn event_leaf(origin: &str, index: u64, id: &Uuid, event: &Event) -> Vec<u8> {
    let mut members = Members::new();
    entry_members(event, |key, value| members.put(key, value));
    members.put(Key::EventId, Member::Uuid(*id));
    members.put(Key::Log, Member::Text(origin.into()));
    members.put(Key::LogIndex, Member::Number(index));
    // Room for a long leaf (an access event with a user agent and a query), written once.
    let mut out = Vec::with_capacity(1024);
    members.write(&mut out);
    out
}

/// The hash of [`event_leaf`]: the event's leaf in the log's Merkle tree.
pub fn event_leaf_hash(origin: &str, index: u64, id: &Uuid, event: &Event) -> Hash {
    leaf_hash(&event_leaf(origin, index, id, event))
}

/// How many leaves a chunk of the stored log holds: `2^CHUNK_HEIGHT`. Chunk `c` holds leaves
/// `[c·128, (c + 1)·128)`, a perfect subtree of the log, so a full chunk's root stands for its
/// leaves in every proof once retention has deleted them (DECISIONS.md S24).
pub const CHUNK_HEIGHT: u32 = 7;
/// `2^CHUNK_HEIGHT`.
pub const CHUNK_LEAVES: u64 = 1 << CHUNK_HEIGHT;

/// How many chunks a group holds: group `g` is chunks `[128g, 128g + 128)`, leaves
/// `[16384g, 16384g + 16384)`, a perfect subtree whose root the store keeps, so that a proof
/// reads a group's root where it would otherwise read 128 chunks' (DECISIONS.md S24).
pub const GROUP_CHUNKS: u64 = 128;
/// The height of a group's subtree: `CHUNK_HEIGHT + 7`.
pub const GROUP_HEIGHT: u32 = CHUNK_HEIGHT + GROUP_CHUNKS.trailing_zeros();
/// The leaves of a group.
pub const GROUP_LEAVES: u64 = CHUNK_LEAVES * GROUP_CHUNKS;

/// One chunk of a log as the store keeps it: its leaves' hashes, and the `seq` of the event
/// each leaf is, so an event's place in its log is found from its `seq`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chunk {
    /// The chunk's number: its first leaf is `number · CHUNK_LEAVES`.
    pub number: u64,
    /// The events' `seq`s, increasing, one per leaf.
    pub seqs: Vec<i64>,
    pub hashes: Vec<Hash>,
}

/// Why a stored chunk does not read back.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("a stored log chunk is damaged: {0}")]
pub struct ChunkError(&'static str);

impl Chunk {
    pub fn new(number: u64) -> Self {
        Self {
            number,
            seqs: Vec::new(),
            hashes: Vec::new(),
        }
    }

    /// The index of the chunk's first leaf.
    pub fn first_index(&self) -> u64 {
        self.number * CHUNK_LEAVES
    }

    pub fn is_full(&self) -> bool {
        self.hashes.len() as u64 == CHUNK_LEAVES
    }

    /// Adds a leaf; the caller starts a new chunk once this one [`is_full`](Self::is_full).
    pub fn push(&mut self, seq: i64, hash: Hash) {
        debug_assert!(!self.is_full());
        debug_assert!(self.seqs.last().is_none_or(|last| *last < seq));
        self.seqs.push(seq);
        self.hashes.push(hash);
    }

    /// The root of a full chunk's subtree.
    pub fn root(&self) -> Option<Hash> {
        self.is_full().then(|| crate::merkle::root(&self.hashes))
    }

    /// The `seq`s as stored: each after the first as its distance from the one before, in
    /// LEB128 (one byte while events of one scope follow each other closely, as they do).
    pub fn encode_seqs(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(self.seqs.len());
        for pair in self.seqs.windows(2) {
            let mut gap = (pair[1] - pair[0]) as u64;
            loop {
                let byte = (gap & 0x7f) as u8;
                gap >>= 7;
                if gap == 0 {
                    out.push(byte);
                    break;
                }
                out.push(byte | 0x80);
            }
        }
        out
    }

    /// The hashes as stored: concatenated.
    pub fn encode_hashes(&self) -> Vec<u8> {
        self.hashes.concat()
    }

    /// Reads a chunk back from its first `seq` and the two encodings.
    pub fn decode(
        number: u64,
        first_seq: i64,
        seqs: &[u8],
        hashes: &[u8],
    ) -> Result<Self, ChunkError> {
        if hashes.is_empty()
            || !hashes.len().is_multiple_of(32)
            || hashes.len() as u64 > CHUNK_LEAVES * 32
        {
            return Err(ChunkError("its hashes are not 1 to 128 of 32 bytes"));
        }
        let hashes: Vec<Hash> = hashes
            .chunks_exact(32)
            .map(|h| h.try_into().expect("32 bytes"))
            .collect();
        let mut out = Vec::with_capacity(hashes.len());
        out.push(first_seq);
        let (mut gap, mut shift) = (0u64, 0u32);
        for byte in seqs {
            if shift > 56 {
                return Err(ChunkError("a seq gap is too long"));
            }
            gap |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                let last = *out.last().expect("first_seq is there");
                let next = i64::try_from(gap)
                    .ok()
                    .filter(|g| *g > 0)
                    .and_then(|g| last.checked_add(g))
                    .ok_or(ChunkError("a seq gap is out of range"))?;
                out.push(next);
                (gap, shift) = (0, 0);
            } else {
                shift += 7;
            }
        }
        if shift != 0 || out.len() != hashes.len() {
            return Err(ChunkError("it has not one seq per hash"));
        }
        Ok(Self {
            number,
            seqs: out,
            hashes,
        })
    }

    /// The index and leaf hash of the event `seq`, if it is in this chunk.
    pub fn find(&self, seq: i64) -> Option<(u64, Hash)> {
        let at = self.seqs.binary_search(&seq).ok()?;
        Some((self.first_index() + at as u64, self.hashes[at]))
    }
}

/// An event's place in its log, as the lines of a destination with `integrity` carry it
/// inside their signed content (DECISIONS.md S27): the log's origin, the event's index there
/// and its leaf hash. With the checkpoint events of the same stream, a verifier holding only
/// the lines proves that none between two checkpoints is missing (`completeness`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogPlace {
    pub log: std::sync::Arc<str>,
    pub index: u64,
    pub leaf_hash: Hash,
}

/// A checkpoint as it travels in a stream (DECISIONS.md S27): the signed note, and what a
/// verifier needs to recompute its root from the checkpoint before it and the leaves in
/// between — that checkpoint's size and the frontier of the tree at that size.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CheckpointEvent {
    /// The log's origin (the note's first line).
    pub log: String,
    /// Whether the log is a portal's: its lines name the Dev Portal product. (Reading a line
    /// back does not say: a verifier has no use for it, and gets `false`.)
    pub portal: bool,
    pub signed_at: crate::Timestamp,
    /// The signed note (a `tlog-checkpoint` in `signed-note` form), newline-terminated.
    pub note: String,
    pub previous_size: u64,
    /// The roots of the perfect subtrees of the tree of `previous_size` leaves, largest first.
    pub previous_frontier: Vec<Hash>,
    /// The installation's checkpoint interval, in seconds: a gap between two checkpoints
    /// longer than about twice this is missing checkpoints.
    pub interval_secs: u64,
}

impl CheckpointEvent {
    /// `previous_frontier` as the lines carry it: standard base64, comma-separated.
    pub fn frontier_text(&self) -> String {
        use base64::Engine as _;
        let encoded: Vec<String> = self
            .previous_frontier
            .iter()
            .map(|h| base64::engine::general_purpose::STANDARD.encode(h))
            .collect();
        encoded.join(",")
    }

    /// Reads `previous_frontier` back from [`frontier_text`](Self::frontier_text)'s form.
    pub fn parse_frontier(text: &str) -> Option<Vec<Hash>> {
        use base64::Engine as _;
        if text.is_empty() {
            return Some(Vec::new());
        }
        text.split(',')
            .map(|part| {
                base64::engine::general_purpose::STANDARD
                    .decode(part)
                    .ok()
                    .and_then(|bytes| Hash::try_from(bytes).ok())
            })
            .collect()
    }
}

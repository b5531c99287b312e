//! The tamper-evident log (PRODUCT Decision 16; DECISIONS.md S24, S25): taking committed events
//! into their scope's Merkle log, signing checkpoints, and the proofs the API serves.
//!
//! - **Taking events** ([`integrate`]): after events are committed, each scope's new events
//!   are read in `seq` order (which is commit order in a scope, S19) and appended as leaves
//!   (`auditrelay_core::integrity::event_leaf`) at the next indexes, with the log's frontier,
//!   in one transaction that holds only if the log still had the size it was read at. Ingest
//!   pays nothing for it, and both backends share this one algorithm. The events come from the
//!   store ([`integrate_stored`]) or, on SQLite, straight from the writer's commit feed
//!   ([`integrate_committed`]); both end in the same step, [`extend`].
//! - **Checkpoints** ([`checkpoint_all`]): every interval, also when nothing happened, each
//!   log's size and root are signed as a C2SP signed note with the checkpoint key
//!   (`keys/note.rs`). The new root is computed from the previous checkpoint's frontier and the
//!   stored leaves after it, and must equal the head's: a checkpoint is never signed for a tree
//!   that does not extend the one signed before, or that the stored leaves do not make.
//! - **Proofs** ([`inclusion`], [`consistency`]): built from full chunks' roots and the leaves
//!   of the chunks a proof reaches into (`store::LogTiles`), so they keep working after
//!   retention emptied old chunks.

use std::collections::HashMap;
use std::time::Duration;

use auditrelay_core::checkpoint::{
    Checkpoint, InclusionBundle, NoteError, unchecked_text, verify_note,
};
use auditrelay_core::ids::event_id;
use auditrelay_core::integrity::{
    CHUNK_HEIGHT, CHUNK_LEAVES, CheckpointEvent, Chunk, GROUP_CHUNKS, event_leaf, event_leaf_hash,
    installation_name, log_origin,
};
use auditrelay_core::merkle::{
    Frontier, Hash, Subtrees as _, consistency_proof_in, inclusion_proof_in, leaf_hash,
    root_of_parts,
};
use auditrelay_core::{Event, Timestamp};

use crate::keys::note::NoteSigner;
use crate::store::{
    ChunkWrite, Committed, LogHead, Result, Scope, Store, StoreError, StoredCheckpoint,
};

/// How many events one step takes into a log at most.
const STEP: u32 = 4096;

/// How many chunks are read at a time when a checkpoint's root is recomputed.
const CHUNK_PAGE: u64 = 256;

/// The origin of `scope`'s log in `store`.
pub fn origin(store: &Store, scope: &Scope) -> String {
    log_origin(
        &installation_name(&store.identity()),
        scope.org_id,
        &scope.region,
        scope.portal_id,
    )
}

/// Takes every committed event not yet in its scope's log into it; returns how many. A scope
/// that fails does not hold the others up: the first error is returned after all were tried.
pub async fn integrate(store: &Store) -> Result<u64> {
    integrate_stored(store).await.map(|round| round.taken)
}

/// How a round of taking events into the logs went.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Round {
    pub taken: u64,
    /// Every log took every event it was given (or, read from the store, every event the store
    /// held when the round read it). `false` when another writer was faster somewhere.
    pub whole: bool,
}

/// [`integrate`], and whether the round was whole.
pub async fn integrate_stored(store: &Store) -> Result<Round> {
    let mut round = Round {
        taken: 0,
        whole: true,
    };
    let mut failed = None;
    for head in store.log_heads().await? {
        match integrate_scope(store, head).await {
            Ok(scope) => {
                round.taken += scope.taken;
                round.whole &= scope.whole;
            }
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    count_taken(round.taken);
    match failed {
        Some(e) => Err(e),
        None => Ok(round),
    }
}

/// Takes the events of `commits` into their logs without reading them back from the store:
/// `commits` must hold every event committed since a whole [`integrate_stored`] round began
/// (the commit feed, `store/commits.rs`). Events a log already holds are passed over. Not
/// whole when a log was extended by another writer meanwhile: the store must then be read.
pub async fn integrate_committed(store: &Store, commits: &[Committed]) -> Result<Round> {
    let mut round = Round {
        taken: 0,
        whole: true,
    };
    if commits.iter().all(|c| c.events.is_empty()) {
        return Ok(round);
    }
    // Each scope's events, in `seq` order. Consecutive events nearly always share a scope.
    let mut scopes: Vec<(Scope, Vec<(i64, &Event)>)> = Vec::new();
    let mut at: HashMap<Scope, usize> = HashMap::new();
    let mut last: Option<(&Event, usize)> = None;
    for commit in commits {
        for (seq, event) in (commit.first..).zip(&commit.events) {
            let slot = match last {
                Some((prev, slot)) if Scope::same(prev, event) => slot,
                _ => *at.entry(Scope::of(event)).or_insert_with_key(|scope| {
                    scopes.push((scope.clone(), Vec::new()));
                    scopes.len() - 1
                }),
            };
            scopes[slot].1.push((seq, event));
            last = Some((event, slot));
        }
    }
    let mut heads: HashMap<Scope, LogHead> = store
        .log_heads()
        .await?
        .into_iter()
        .map(|head| (head.scope.clone(), head))
        .collect();
    let identity = store.identity();
    // A scope that fails does not hold the others up, as in `integrate_stored`.
    let mut failed = None;
    for (scope, events) in scopes {
        let Some(mut head) = heads.remove(&scope) else {
            // Its events were committed, so its scope exists: the store changed under us.
            round.whole = false;
            continue;
        };
        let origin = origin(store, &scope);
        let fresh: Vec<(i64, &Event)> = events
            .into_iter()
            .filter(|(seq, _)| *seq > head.last_seq)
            .collect();
        for step in fresh.chunks(STEP as usize) {
            match extend(store, &origin, &identity, head, step).await {
                Ok(Some(extended)) => head = extended,
                Ok(None) => {
                    round.whole = false;
                    break;
                }
                Err(e) => {
                    round.whole = false;
                    failed.get_or_insert(e);
                    break;
                }
            }
            round.taken += step.len() as u64;
        }
    }
    count_taken(round.taken);
    match failed {
        Some(e) => Err(e),
        None => Ok(round),
    }
}

fn count_taken(taken: u64) {
    if taken > 0 {
        metrics::counter!("auditrelay_log_leaves_total").increment(taken);
    }
}

async fn integrate_scope(store: &Store, mut head: LogHead) -> Result<Round> {
    let origin = origin(store, &head.scope);
    let identity = store.identity();
    let mut taken = 0;
    loop {
        let events = store
            .events_to_deliver(&head.scope, head.last_seq, None, STEP)
            .await?;
        if events.is_empty() {
            return Ok(Round { taken, whole: true });
        }
        let step: Vec<(i64, &Event)> = events.iter().map(|s| (s.seq, &s.event)).collect();
        let Some(extended) = extend(store, &origin, &identity, head, &step).await? else {
            // Another writer took these events first; it carries on from here.
            return Ok(Round {
                taken,
                whole: false,
            });
        };
        head = extended;
        taken += events.len() as u64;
        if events.len() < STEP as usize {
            return Ok(Round { taken, whole: true });
        }
    }
}

/// Appends `events`, the scope's next in `seq` order, to the log at `head` in one transaction;
/// returns the log's new head, or `None` when another writer extended the log first.
async fn extend(
    store: &Store,
    origin: &str,
    identity: &uuid::Uuid,
    mut head: LogHead,
    events: &[(i64, &Event)],
) -> Result<Option<LogHead>> {
    let from = head.size();
    let Some(mut chunk) = tail_chunk(store, &head.scope, from).await? else {
        return Ok(None);
    };
    let mut writes = Vec::new();
    let mut last_ts = i64::MIN;
    // The chunk's root once its last leaf is pushed, as the frontier works it out.
    let mut root = None;
    for &(seq, event) in events {
        if chunk.is_full() {
            let next = Chunk::new(chunk.number + 1);
            writes.push(ChunkWrite::new(
                std::mem::replace(&mut chunk, next),
                root.take(),
                last_ts,
            ));
            last_ts = i64::MIN;
        }
        let index = head.frontier.size();
        let id = event_id(identity, seq, event.ts);
        let hash = event_leaf_hash(origin, index, &id, event);
        root = head.frontier.push_completing(hash, CHUNK_HEIGHT);
        head.last_seq = seq;
        chunk.push(seq, hash);
        last_ts = last_ts.max(event.ts.as_millis());
    }
    writes.push(ChunkWrite::new(chunk, root, last_ts));
    add_group_roots(store, &head.scope, &mut writes).await?;
    Ok(store
        .extend_log(from, &writes, &head)
        .await?
        .then_some(head))
}

/// Gives each write that completes a group (its chunk full and the group's last) the group's
/// root, from the chunks' roots: those stored before and those being written.
async fn add_group_roots(store: &Store, scope: &Scope, writes: &mut [ChunkWrite]) -> Result<()> {
    for at in 0..writes.len() {
        let number = writes[at].chunk.number;
        if !writes[at].chunk.is_full() || !(number + 1).is_multiple_of(GROUP_CHUNKS) {
            continue;
        }
        let first = number + 1 - GROUP_CHUNKS;
        let written: Vec<Hash> = writes[..=at]
            .iter()
            .filter(|w| w.chunk.number >= first)
            .filter_map(|w| w.root)
            .collect();
        let stored_to = first + GROUP_CHUNKS - written.len() as u64;
        let mut roots = store.log_chunk_roots(scope, first, stored_to).await?;
        roots.extend(written);
        if roots.len() as u64 != GROUP_CHUNKS {
            return Err(StoreError::Corrupt(format!(
                "group {} of the log of {} lacks chunk roots",
                number / GROUP_CHUNKS,
                origin(store, scope)
            )));
        }
        writes[at].group_root = Some(root_of_parts(&roots));
    }
    Ok(())
}

/// The chunk the leaf at `size` goes into: a new one, or the log's last, partly filled;
/// `None` when the log already holds more than `size` leaves (another writer was faster).
async fn tail_chunk(store: &Store, scope: &Scope, size: u64) -> Result<Option<Chunk>> {
    let number = size / CHUNK_LEAVES;
    let chunk = store.log_chunks(scope, number, number + 1).await?.pop();
    let end = chunk.as_ref().map_or(number * CHUNK_LEAVES, |c| {
        c.first_index() + c.hashes.len() as u64
    });
    match (chunk, end.cmp(&size)) {
        (_, std::cmp::Ordering::Greater) => Ok(None),
        (Some(chunk), std::cmp::Ordering::Equal) => Ok(Some(chunk)),
        (None, std::cmp::Ordering::Equal) => Ok(Some(Chunk::new(number))),
        (_, std::cmp::Ordering::Less) => Err(StoreError::Corrupt(format!(
            "the log of {} has {size} leaves but its last chunk ends at {end}",
            origin(store, scope)
        ))),
    }
}

/// Signs a checkpoint of every log whose newest is older than half of `interval` (so a round
/// that comes a little early still signs); returns how many it signed.
pub async fn checkpoint_all(
    store: &Store,
    signer: &NoteSigner,
    interval: Duration,
    now: Timestamp,
) -> Result<u64> {
    let mut signed = 0;
    let mut failed = None;
    let recent = now.saturating_sub_millis((interval.as_millis() / 2) as i64);
    for head in store.log_heads().await? {
        if head.size() == 0 {
            continue;
        }
        match checkpoint_one(store, signer, &head, recent, now).await {
            Ok(true) => signed += 1,
            Ok(false) => {}
            Err(e) => {
                failed.get_or_insert(e);
            }
        }
    }
    if signed > 0 {
        metrics::counter!("auditrelay_checkpoints_signed_total").increment(signed);
    }
    match failed {
        Some(e) => Err(e),
        None => Ok(signed),
    }
}

/// Signs `head`'s log's checkpoint unless its newest was signed after `recent`; whether it did.
async fn checkpoint_one(
    store: &Store,
    signer: &NoteSigner,
    head: &LogHead,
    recent: Timestamp,
    now: Timestamp,
) -> Result<bool> {
    let previous = store.latest_checkpoint(&head.scope).await?;
    if previous.as_ref().is_some_and(|p| p.signed_at > recent) {
        return Ok(false);
    }
    let checkpoint = next_checkpoint(store, signer, head, previous.as_ref(), now).await?;
    let after = previous.as_ref().map_or(0, |p| p.id);
    // `false`: another node signed one meanwhile; this one is dropped unsigned-for.
    store.add_checkpoint(&head.scope, &checkpoint, after).await
}

/// The checkpoint after `previous` for the log at `head`: its root recomputed from the
/// previous frontier and the stored leaves, and checked against the head's.
async fn next_checkpoint(
    store: &Store,
    signer: &NoteSigner,
    head: &LogHead,
    previous: Option<&StoredCheckpoint>,
    now: Timestamp,
) -> Result<StoredCheckpoint> {
    let origin = origin(store, &head.scope);
    let inconsistent = |why: &str| {
        metrics::counter!("auditrelay_checkpoints_refused_total").increment(1);
        StoreError::Corrupt(format!(
            "no checkpoint signed for {origin}: {why}; the log needs an operator's look"
        ))
    };
    let mut frontier = match previous {
        Some(p) => {
            // The row's size, root and frontier are columns anyone with the database can
            // change along with the log; only its note is signed. A tree that is not the one
            // the note signs is not extended. A note by another checkpoint key (the key was
            // replaced, as OPERATIONS.md allows) can be read, not checked.
            let text = match verify_note(&p.note, signer.name(), signer.public_key()) {
                Ok(text) => Ok(text),
                Err(NoteError::NotSignedBy(_)) => unchecked_text(&p.note),
                Err(e) => Err(e),
            };
            let signed = text.and_then(Checkpoint::parse).map_err(|e| {
                inconsistent(&format!("the last checkpoint's note does not hold ({e})"))
            })?;
            let note = (&signed.origin, signed.size, signed.root);
            if note != (&origin, p.size(), p.root) || p.frontier.root() != p.root {
                return Err(inconsistent(
                    "the last checkpoint's stored tree is not the one its note signs",
                ));
            }
            if p.size() > head.size() {
                return Err(inconsistent("the log is smaller than its last checkpoint"));
            }
            p.frontier.clone()
        }
        None => Frontier::new(),
    };
    extend_from_chunks(store, &head.scope, &mut frontier, head.size()).await?;
    if frontier.size() != head.size() {
        return Err(inconsistent("leaves after the last checkpoint are missing"));
    }
    let root = frontier.root();
    if root != head.frontier.root() {
        return Err(inconsistent("the stored leaves do not make the log's root"));
    }
    let note = signer.sign(&Checkpoint {
        origin,
        size: head.size(),
        root,
    });
    Ok(StoredCheckpoint {
        id: 0,
        root,
        frontier,
        previous_size: previous.map_or(0, StoredCheckpoint::size),
        signed_at: now,
        note,
    })
}

/// Pushes the stored leaves from `frontier.size()` up to `size` onto `frontier`, reading a page
/// of chunks at a time; stops early at a chunk that is missing.
async fn extend_from_chunks(
    store: &Store,
    scope: &Scope,
    frontier: &mut Frontier,
    size: u64,
) -> Result<()> {
    let last = size.div_ceil(CHUNK_LEAVES);
    let mut number = frontier.size() / CHUNK_LEAVES;
    while number < last {
        let page = store
            .log_chunks(scope, number, (number + CHUNK_PAGE).min(last))
            .await?;
        for chunk in &page {
            if chunk.number != number || frontier.size() < chunk.first_index() {
                return Ok(());
            }
            let skip = (frontier.size() - chunk.first_index()) as usize;
            let take = (size - frontier.size()) as usize;
            for hash in chunk.hashes.iter().skip(skip).take(take) {
                frontier.push(*hash);
            }
            number += 1;
        }
        if page.is_empty() {
            return Ok(());
        }
    }
    Ok(())
}

/// Why a proof cannot be given.
#[derive(Debug, thiserror::Error)]
pub enum ProofRefused {
    #[error("the log has no checkpoint at that size")]
    NoCheckpoint,
    #[error("the log has no such leaf, or retention deleted it (integrity.keep_leaves)")]
    NoLeaf,
    #[error(
        "the leaf is not in a checkpoint yet; the next one, within the checkpoint interval, has it"
    )]
    NotYetCheckpointed,
    #[error("the leaf is beyond that checkpoint's size")]
    NotInThatCheckpoint,
    #[error("{0}")]
    Store(#[from] StoreError),
}

/// The inclusion proof of leaf `index` of `scope`'s log, as a tlog-proof bundle against the
/// latest checkpoint, or against the first checkpoint at `size` if given. The bundle carries
/// the leaf while its event is kept; after retention deleted it, only the proof.
pub async fn inclusion(
    store: &Store,
    scope: &Scope,
    index: u64,
    size: Option<u64>,
) -> Result<InclusionBundle, ProofRefused> {
    let checkpoint = checkpoint_for(store, scope, size).await?;
    if index >= checkpoint.size() {
        return Err(match size {
            Some(_) => ProofRefused::NotInThatCheckpoint,
            None => ProofRefused::NotYetCheckpointed,
        });
    }
    let number = index / CHUNK_LEAVES;
    let tiles = store
        .log_tiles(scope, checkpoint.size(), &[index, checkpoint.size() - 1])
        .await?;
    let path = inclusion_proof_in(&tiles, index, checkpoint.size()).ok_or(ProofRefused::NoLeaf)?;
    let at = (index % CHUNK_LEAVES) as usize;
    let (seq, hash) = tiles
        .chunks
        .get(&number)
        .and_then(|c| Some((*c.seqs.get(at)?, c.hashes[at])))
        .ok_or(ProofRefused::NoLeaf)?;
    let leaf = match store.events_by_seq(scope, &[seq]).await?.pop() {
        Some(stored) => {
            let id = event_id(&store.identity(), seq, stored.event.ts);
            let leaf = event_leaf(&origin(store, scope), index, &id, &stored.event);
            // The event as stored now must still be the leaf taken into the log.
            if leaf_hash(&leaf) != hash {
                return Err(ProofRefused::Store(StoreError::Corrupt(format!(
                    "leaf {index} of {} does not match its event",
                    origin(store, scope)
                ))));
            }
            Some(leaf)
        }
        None => None,
    };
    Ok(InclusionBundle {
        leaf,
        index,
        path,
        note: checkpoint.note,
    })
}

/// The frontier of `scope`'s log at `size` leaves: a kept checkpoint's at that size, else made
/// from the stored subtrees' roots (retention thins old checkpoints; a stream that fell behind
/// may still owe the one after a thinned one).
pub async fn frontier_at(store: &Store, scope: &Scope, size: u64) -> Result<Frontier> {
    if size == 0 {
        return Ok(Frontier::new());
    }
    if let Some(checkpoint) = store.checkpoint_at(scope, size).await? {
        return Ok(checkpoint.frontier);
    }
    let tiles = store.log_tiles(scope, size, &[size - 1]).await?;
    let mut subtrees = Vec::with_capacity(size.count_ones() as usize);
    let mut start = 0;
    for height in (0..u64::BITS).rev() {
        let len = 1u64 << height;
        if size & len != 0 {
            subtrees.push(tiles.perfect(start, height).ok_or_else(|| {
                StoreError::Corrupt(format!(
                    "the log of {} has no leaves or roots left for its first {size} leaves",
                    origin(store, scope)
                ))
            })?);
            start += len;
        }
    }
    Ok(Frontier::from_parts(size, subtrees).expect("one subtree per set bit"))
}

/// `checkpoints` of `scope`'s log as a stream carries them (DECISIONS.md S27), each with its
/// id: with the frontier of the tree at its previous size, from which a verifier recomputes its
/// root.
pub async fn checkpoint_events(
    store: &Store,
    scope: &Scope,
    checkpoints: Vec<StoredCheckpoint>,
    interval: std::time::Duration,
) -> Result<Vec<(i64, CheckpointEvent)>> {
    let log = origin(store, scope);
    let mut events = Vec::with_capacity(checkpoints.len());
    for checkpoint in checkpoints {
        let previous = frontier_at(store, scope, checkpoint.previous_size).await?;
        let event = CheckpointEvent {
            log: log.clone(),
            portal: scope.portal_id.is_some(),
            signed_at: checkpoint.signed_at,
            note: checkpoint.note,
            previous_size: checkpoint.previous_size,
            previous_frontier: previous.subtrees().to_vec(),
            interval_secs: interval.as_secs(),
        };
        events.push((checkpoint.id, event));
    }
    Ok(events)
}

/// The checkpoint at `size`, or the latest.
pub async fn checkpoint_for(
    store: &Store,
    scope: &Scope,
    size: Option<u64>,
) -> Result<StoredCheckpoint, ProofRefused> {
    let found = match size {
        Some(size) => store.checkpoint_at(scope, size).await?,
        None => store.latest_checkpoint(scope).await?,
    };
    found.ok_or(ProofRefused::NoCheckpoint)
}

/// The consistency proof between the checkpoints at `first` and `second` leaves.
pub async fn consistency(
    store: &Store,
    scope: &Scope,
    first: u64,
    second: u64,
) -> Result<(StoredCheckpoint, StoredCheckpoint, Vec<Hash>), ProofRefused> {
    let older = checkpoint_for(store, scope, Some(first)).await?;
    let newer = checkpoint_for(store, scope, Some(second)).await?;
    let mut reach = vec![second.max(1) - 1];
    if first > 0 {
        reach.push(first - 1);
    }
    let tiles = store.log_tiles(scope, second, &reach).await?;
    let proof = consistency_proof_in(&tiles, first, second).ok_or(ProofRefused::NoLeaf)?;
    Ok((older, newer, proof))
}

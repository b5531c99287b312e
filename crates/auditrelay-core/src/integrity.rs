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

use serde_json::Value as Json;
use uuid::Uuid;

use crate::event::Event;
use crate::format::pull::{pull_entry, write_canonical_object};
use crate::merkle::{Hash, leaf_hash};

/// The keys the log adds to the entry's.
const ADDED: [&str; 3] = ["event_id", "log", "log_index"];

/// The leaf of `event`, whose stable id is `id`, at `index` in the log `origin`.
pub fn event_leaf(origin: &str, index: u64, id: &Uuid, event: &Event) -> Vec<u8> {
    let mut object = pull_entry(event);
    debug_assert!(ADDED.iter().all(|key| !object.contains_key(*key)));
    object.insert("event_id".into(), id.to_string().into());
    object.insert("log".into(), origin.into());
    object.insert("log_index".into(), Json::from(index));
    let mut out = Vec::with_capacity(512);
    write_canonical_object(&object, &mut out);
    out
}

/// The hash of [`event_leaf`]: the event's leaf in the log's Merkle tree.
pub fn event_leaf_hash(origin: &str, index: u64, id: &Uuid, event: &Event) -> Hash {
    leaf_hash(&event_leaf(origin, index, id, event))
}

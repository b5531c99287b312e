//! The Merkle tree of the tamper-evident log against RFC 6962's reference values (the tree of
//! eight leaves Certificate Transparency's implementations all test with: its roots, audit paths
//! and consistency proofs), and properties over trees of every shape: every proof the module
//! makes verifies, and none survives a changed leaf, index, size, root or proof hash.

use auditrelay_core::SigningKey;
use auditrelay_core::checkpoint::{
    BundleError, Checkpoint, InclusionBundle, NoteError, NoteKey, parse_verifier_key, sign_note,
    verifier_key, verify_note,
};
use auditrelay_core::integrity::{CHUNK_HEIGHT, CHUNK_LEAVES, Chunk};
use auditrelay_core::merkle::{
    Frontier, Hash, ProofError, Subtrees, consistency_proof, consistency_proof_in, empty_root,
    inclusion_proof, inclusion_proof_in, leaf_hash, root, verify_consistency, verify_inclusion,
};
use proptest::prelude::*;

fn h(hex: &str) -> Hash {
    let bytes: Vec<u8> = (0..hex.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).unwrap())
        .collect();
    bytes.try_into().unwrap()
}

/// The reference leaves' data.
const LEAVES: [&[u8]; 8] = [
    b"",
    b"\x00",
    b"\x10",
    b"\x20\x21",
    b"\x30\x31",
    b"\x40\x41\x42\x43",
    b"\x50\x51\x52\x53\x54\x55\x56\x57",
    b"\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
];

/// The roots of the first 1..=8 of them.
const ROOTS: [&str; 8] = [
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
];

fn reference() -> Vec<Hash> {
    LEAVES.iter().map(|leaf| leaf_hash(leaf)).collect()
}

#[test]
fn roots_match_rfc_6962() {
    assert_eq!(
        empty_root(),
        h("e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
    );
    let leaves = reference();
    let mut frontier = Frontier::new();
    for (n, expected) in ROOTS.iter().enumerate() {
        assert_eq!(root(&leaves[..=n]), h(expected), "size {}", n + 1);
        frontier.push(leaves[n]);
        assert_eq!(frontier.root(), h(expected), "frontier of size {}", n + 1);
    }
}

#[test]
fn audit_paths_match_rfc_6962() {
    let leaves = reference();
    let cases: [(usize, usize, &[&str]); 3] = [
        (
            0,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            5,
            8,
            &[
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            3,
            &["fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"],
        ),
    ];
    for (index, size, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        let proof = inclusion_proof(&leaves[..size], index).unwrap();
        assert_eq!(proof, expected, "leaf {index} of {size}");
        let root = h(ROOTS[size - 1]);
        verify_inclusion(&leaves[index], index as u64, size as u64, &proof, &root).unwrap();
    }
}

#[test]
fn consistency_proofs_match_rfc_6962() {
    let leaves = reference();
    let cases: [(usize, usize, &[&str]); 4] = [
        (1, 1, &[]),
        (
            1,
            8,
            &[
                "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
            ],
        ),
        (
            6,
            8,
            &[
                "0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
            ],
        ),
        (
            2,
            5,
            &[
                "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
            ],
        ),
    ];
    for (first, second, expected) in cases {
        let expected: Vec<Hash> = expected.iter().map(|x| h(x)).collect();
        let proof = consistency_proof(&leaves[..second], first).unwrap();
        assert_eq!(proof, expected, "{first} → {second}");
        let (a, b) = (h(ROOTS[first - 1]), h(ROOTS[second - 1]));
        verify_consistency(first as u64, second as u64, &a, &b, &proof).unwrap();
    }
}

/// Distinct leaves for a tree of `n`.
fn leaves(n: usize, salt: u8) -> Vec<Hash> {
    (0..n)
        .map(|i| leaf_hash(&[salt, (i >> 8) as u8, i as u8]))
        .collect()
}

/// A push that completes a perfect subtree of the height asked for gives that subtree's root,
/// the one its leaves make, and any other push gives none; the frontier grows as `push` does.
#[test]
fn a_push_gives_the_root_of_the_subtree_it_completes() {
    let leaves = leaves(700, 9);
    for height in [0, 1, 3, CHUNK_HEIGHT] {
        let span = 1usize << height;
        let mut frontier = Frontier::new();
        for (i, leaf) in leaves.iter().enumerate() {
            let size = i + 1;
            let expected = size
                .is_multiple_of(span)
                .then(|| root(&leaves[size - span..size]));
            let completed = frontier.push_completing(*leaf, height);
            assert_eq!(completed, expected, "height {height}, size {size}");
        }
        assert_eq!(frontier.root(), root(&leaves), "height {height}");
    }
}

/// `hash` with one bit flipped.
fn flipped(hash: &Hash, bit: usize) -> Hash {
    let mut out = *hash;
    out[bit / 8 % 32] ^= 1 << (bit % 8);
    out
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn inclusion_holds_and_nothing_changed_passes(
        n in 1usize..300, pick in any::<usize>(), bit in 0usize..256, salt in any::<u8>(),
    ) {
        let leaves = leaves(n, salt);
        let index = pick % n;
        let root = root(&leaves);
        let proof = inclusion_proof(&leaves, index).unwrap();
        let (i, size) = (index as u64, n as u64);
        prop_assert_eq!(verify_inclusion(&leaves[index], i, size, &proof, &root), Ok(()));
        // Another leaf, root or index, another size, a changed or missing proof hash: refused.
        prop_assert!(verify_inclusion(&flipped(&leaves[index], bit), i, size, &proof, &root).is_err());
        prop_assert!(verify_inclusion(&leaves[index], i, size, &proof, &flipped(&root, bit)).is_err());
        if n > 1 {
            let other = (index + 1) % n;
            prop_assert!(verify_inclusion(&leaves[index], other as u64, size, &proof, &root).is_err());
            let mut changed = proof.clone();
            let k = bit % changed.len();
            changed[k] = flipped(&changed[k], bit);
            prop_assert!(verify_inclusion(&leaves[index], i, size, &changed, &root).is_err());
            prop_assert!(verify_inclusion(&leaves[index], i, size, &proof[1..], &root).is_err());
        }
        // Nor against the tree one leaf later: the proof is of this tree. (A size alone, with
        // this root, is a claim no tree makes; a signed checkpoint pairs them.)
        let mut grown = leaves.clone();
        grown.push(leaf_hash(b"one more"));
        let grown_root = auditrelay_core::merkle::root(&grown);
        prop_assert!(verify_inclusion(&leaves[index], i, size + 1, &proof, &grown_root).is_err());
        prop_assert_eq!(
            verify_inclusion(&leaves[index], size, size, &proof, &root),
            Err(ProofError::IndexBeyondSize { index: size, size })
        );
    }

    #[test]
    fn consistency_holds_and_nothing_changed_passes(
        second in 1usize..300, pick in any::<usize>(), bit in 0usize..256, salt in any::<u8>(),
    ) {
        let leaves = leaves(second, salt);
        let first = 1 + pick % second;
        let (a, b) = (root(&leaves[..first]), root(&leaves));
        let proof = consistency_proof(&leaves, first).unwrap();
        let (m, n) = (first as u64, second as u64);
        prop_assert_eq!(verify_consistency(m, n, &a, &b, &proof), Ok(()));
        prop_assert!(verify_consistency(m, n, &flipped(&a, bit), &b, &proof).is_err());
        prop_assert!(verify_consistency(m, n, &a, &flipped(&b, bit), &proof).is_err());
        if !proof.is_empty() {
            let mut changed = proof.clone();
            let k = bit % changed.len();
            changed[k] = flipped(&changed[k], bit);
            prop_assert!(verify_consistency(m, n, &a, &b, &changed).is_err());
        }
        if first < second {
            // A tree whose history was rewritten: one earlier leaf altered.
            let mut rewritten = leaves.clone();
            rewritten[pick % first] = flipped(&rewritten[pick % first], bit);
            let forged = root(&rewritten);
            prop_assert!(verify_consistency(m, n, &a, &forged, &proof).is_err());
            let mut grown = leaves.clone();
            grown.push(leaf_hash(b"one more"));
            let grown_root = root(&grown);
            prop_assert!(verify_consistency(m, n + 1, &a, &grown_root, &proof).is_err());
            prop_assert!(verify_consistency(n, m, &b, &a, &proof).is_err());
        }
    }

    #[test]
    fn a_frontier_computes_every_root_and_resumes_from_its_parts(
        n in 0usize..300, cut in any::<usize>(), salt in any::<u8>(),
    ) {
        let leaves = leaves(n, salt);
        let cut = if n == 0 { 0 } else { cut % (n + 1) };
        let mut frontier = Frontier::new();
        for leaf in &leaves[..cut] {
            frontier.push(*leaf);
        }
        prop_assert_eq!(frontier.root(), root(&leaves[..cut]));
        // What a checkpoint event carries is enough to go on from.
        let parts = (frontier.size(), frontier.subtrees().to_vec());
        let mut resumed = Frontier::from_parts(parts.0, parts.1).unwrap();
        for leaf in &leaves[cut..] {
            resumed.push(*leaf);
        }
        prop_assert_eq!(resumed.root(), root(&leaves));
        prop_assert_eq!(resumed.size(), n as u64);
    }
}

#[test]
fn a_frontier_needs_one_subtree_per_set_bit() {
    assert!(Frontier::from_parts(5, vec![[0; 32]]).is_none());
    assert!(Frontier::from_parts(5, vec![[0; 32], [1; 32]]).is_some());
    assert!(Frontier::from_parts(0, vec![]).is_some());
}

/// The signed-note format against its published example (the Go `sumdb/note` key
/// PeterNeumann): Ed25519 is deterministic, so the note must come out byte for byte.
#[test]
fn a_signed_note_matches_the_published_example() {
    use base64::Engine as _;
    let raw = base64::engine::general_purpose::STANDARD
        .decode("AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz")
        .unwrap();
    assert_eq!(raw[0], 1, "an Ed25519 key");
    let key = auditrelay_core::SigningKey::from_seed(&raw[1..].try_into().unwrap());
    let text = "If you think cryptography is the answer to your problem,\n\
                then you don't know what your problem is.\n";
    let note = sign_note(
        text,
        &NoteKey {
            name: "PeterNeumann",
            key: &key,
        },
    );
    assert_eq!(
        note,
        format!(
            "{text}\n\u{2014} PeterNeumann x08go/ZJkuBS9UG/SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n"
        )
    );
    assert_eq!(
        verifier_key("PeterNeumann", key.public_key()),
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW"
    );
    assert_eq!(
        verify_note(&note, "PeterNeumann", key.public_key()),
        Ok(text)
    );
    let altered = note.replace("cryptography", "cryptographY");
    assert_eq!(
        verify_note(&altered, "PeterNeumann", key.public_key()),
        Err(NoteError::BadSignature("PeterNeumann".into()))
    );
    assert_eq!(
        verify_note(&note, "Someone", key.public_key()),
        Err(NoteError::NotSignedBy("Someone".into()))
    );
}

/// A checkpoint signs and opens as itself; its text is the C2SP checkpoint's three lines.
#[test]
fn a_checkpoint_is_a_signed_note() {
    let key = auditrelay_core::SigningKey::from_seed(&[7; 32]);
    let signer = NoteKey {
        name: "auditrelay.example/org/us",
        key: &key,
    };
    let checkpoint = Checkpoint {
        origin: "auditrelay.example/org/us".into(),
        size: 8,
        root: h(ROOTS[7]),
    };
    assert_eq!(
        checkpoint.text(),
        "auditrelay.example/org/us\n8\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n"
    );
    let note = checkpoint.sign(&signer);
    assert_eq!(
        Checkpoint::open(&note, signer.name, key.public_key()),
        Ok(checkpoint.clone())
    );
    let other = auditrelay_core::SigningKey::from_seed(&[8; 32]);
    assert!(Checkpoint::open(&note, signer.name, other.public_key()).is_err());
    let grown = note.replacen("\n8\n", "\n9\n", 1);
    assert!(Checkpoint::open(&grown, signer.name, key.public_key()).is_err());
    assert!(
        Checkpoint::parse("origin\n08\nXcnaeacGWamtVZy3Ad7ZoqudgjqtL0lgz+Nw7/RgQyg=\n").is_err()
    );
    assert!(Checkpoint::parse("origin\n8\nnot base64\n").is_err());
}

/// An event's leaf is the canonical JSON of its pull-API entry with its id and its place in
/// its log: pinned here byte for byte, since every checkpoint ever signed depends on it.
#[test]
fn an_events_leaf_is_its_canonical_entry_with_its_place() {
    use auditrelay_core::integrity::{event_leaf, event_leaf_hash};
    let event = crate::support::authorization();
    let id = uuid::Uuid::from_u128(0x0123_4567_89ab_cdef_0123_4567_89ab_cdef);
    let leaf = String::from_utf8(event_leaf("auditrelay.example/org/us", 7, &id, &event)).unwrap();
    let mut entry = Vec::new();
    auditrelay_core::format::pull::write_pull_entry(&event, &mut entry);
    let entry: serde_json::Map<String, serde_json::Value> = serde_json::from_slice(&entry).unwrap();
    let parsed: serde_json::Map<String, serde_json::Value> = serde_json::from_str(&leaf).unwrap();
    // The entry's fields, and three more.
    for (key, value) in &entry {
        assert_eq!(parsed.get(key), Some(value), "{key}");
    }
    assert_eq!(parsed.len(), entry.len() + 3);
    assert_eq!(parsed["event_id"], "01234567-89ab-cdef-0123-456789abcdef");
    assert_eq!(parsed["log"], "auditrelay.example/org/us");
    assert_eq!(parsed["log_index"], 7);
    // Canonical: keys in byte order, no whitespace.
    let keys: Vec<&String> = parsed.keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
    assert!(!leaf.contains(": ") && !leaf.contains(", "));
    assert_eq!(
        leaf,
        concat!(
            r#"{"action":"edit","actor_id":"user_abcdef1234567890","client_ip":"172.71.232.22","#,
            r#""event_id":"01234567-89ab-cdef-0123-456789abcdef","granted":false,"#,
            r#""kong_initiated":true,"log":"auditrelay.example/org/us","log_index":7,"#,
            r#""org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","#,
            r#""principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","#,
            r#""principal_name":"Ops \"bot\"\\svc\nline=2|x","#,
            r#""resource":"control-planes/7f3c|a=b","service":"konnect","#,
            r#""ts":"2025-06-23T14:28:47.556Z","type":"authorization","#,
            r#""user_agent":"grpc-node-js/1.12.4"}"#
        )
    );
    // Its place and log are part of it.
    let hash = event_leaf_hash("auditrelay.example/org/us", 7, &id, &event);
    assert_eq!(hash, leaf_hash(leaf.as_bytes()));
    assert_ne!(
        hash,
        event_leaf_hash("auditrelay.example/org/us", 8, &id, &event)
    );
    assert_ne!(
        hash,
        event_leaf_hash("auditrelay.example/org/eu", 7, &id, &event)
    );
}

proptest! {
    /// A chunk reads back exactly from its stored encodings, whatever the gaps between `seq`s.
    #[test]
    fn a_chunk_round_trips(first in 1i64..1 << 40, gaps in proptest::collection::vec(1i64..1 << 35, 0..127)) {
        let mut chunk = Chunk::new(7);
        let mut seq = first;
        chunk.push(seq, leaf_hash(&seq.to_be_bytes()));
        for gap in gaps {
            seq += gap;
            chunk.push(seq, leaf_hash(&seq.to_be_bytes()));
        }
        let back = Chunk::decode(7, first, &chunk.encode_seqs(), &chunk.encode_hashes()).unwrap();
        prop_assert_eq!(&back, &chunk);
        prop_assert_eq!(back.find(seq), Some((7 * CHUNK_LEAVES + chunk.seqs.len() as u64 - 1, chunk.hashes[chunk.seqs.len() - 1])));
        prop_assert_eq!(back.find(seq + 1), None);
    }

    /// Proofs built from perfect subtrees only (a full chunk's root in place of its leaves, the
    /// leaves of the chunks at the edges) are the proofs built from every leaf.
    #[test]
    fn proofs_from_chunk_roots_are_proofs_from_leaves(size in 1u64..700, index in 0u64..700, first in 0u64..700) {
        let index = index % size;
        let first = first % (size + 1);
        let leaves: Vec<Hash> = (0..size).map(|i| leaf_hash(&i.to_be_bytes())).collect();
        let kept = |i: u64| i / CHUNK_LEAVES == index / CHUNK_LEAVES
            || i / CHUNK_LEAVES == (size - 1) / CHUNK_LEAVES
            || (first > 0 && i / CHUNK_LEAVES == (first - 1) / CHUNK_LEAVES);
        let tiles = Tiles { leaves: &leaves, kept: &kept };
        prop_assert_eq!(inclusion_proof_in(&tiles, index, size), inclusion_proof(&leaves, index as usize));
        prop_assert_eq!(consistency_proof_in(&tiles, first, size), consistency_proof(&leaves, first as usize));
    }
}

/// A log that keeps a chunk's leaves only where `kept` says, and every full chunk's root.
struct Tiles<'a> {
    leaves: &'a [Hash],
    kept: &'a dyn Fn(u64) -> bool,
}

impl Subtrees for Tiles<'_> {
    fn perfect(&self, start: u64, height: u32) -> Option<Hash> {
        let end = start + (1 << height);
        if height < CHUNK_HEIGHT && !(self.kept)(start) {
            return None;
        }
        if height >= CHUNK_HEIGHT {
            let roots: Vec<Hash> = (start..end)
                .step_by(CHUNK_LEAVES as usize)
                .map(|c| root(&self.leaves[c as usize..(c + CHUNK_LEAVES) as usize]))
                .collect();
            return Some(root(&roots));
        }
        self.leaves[start as usize..end as usize]
            .try_into()
            .ok()
            .map(|l: &[Hash]| root(l))
    }
}

/// A bundle made of a leaf, its path and the signed checkpoint reads back, verifies, and fails
/// for a changed leaf, index, path, checkpoint or key.
#[test]
fn an_inclusion_bundle_verifies_offline_and_nothing_changed_passes() {
    let key = SigningKey::from_seed(&[9; 32]);
    let other = SigningKey::from_seed(&[8; 32]);
    let name = "auditrelay.example/log";
    let leaves_bytes: Vec<Vec<u8>> = (0..13u8).map(|i| vec![b'e', i]).collect();
    let leaves: Vec<Hash> = leaves_bytes.iter().map(|l| leaf_hash(l)).collect();
    let checkpoint = Checkpoint {
        origin: "auditrelay.example/log/o/us".into(),
        size: 13,
        root: root(&leaves),
    };
    let note = checkpoint.sign(&NoteKey { name, key: &key });
    let bundle = InclusionBundle {
        leaf: Some(leaves_bytes[5].clone()),
        index: 5,
        path: inclusion_proof(&leaves, 5).unwrap(),
        note,
    };
    let text = bundle.text();
    assert!(text.starts_with("c2sp.org/tlog-proof@v1\nextra ZQU=\nindex 5\n"));
    let back = InclusionBundle::parse(&text).unwrap();
    assert_eq!(back, bundle);
    let public = key.public_key();
    let included = back.verify(name, public, None).unwrap();
    assert_eq!(
        (included.index, included.checkpoint.clone()),
        (5, checkpoint.clone())
    );
    assert_eq!(included.leaf_hash, leaves[5]);

    // Without its leaf (retention deleted the event), the leaf's hash is given.
    let bare = InclusionBundle {
        leaf: None,
        ..bundle.clone()
    };
    let bare = InclusionBundle::parse(&bare.text()).unwrap();
    assert_eq!(bare.leaf, None);
    assert!(matches!(
        bare.verify(name, public, None),
        Err(BundleError::NoLeaf)
    ));
    assert!(bare.verify(name, public, Some(&leaves[5])).is_ok());
    assert!(matches!(
        bare.verify(name, public, Some(&leaves[6])),
        Err(BundleError::Proof(_))
    ));
    assert!(matches!(
        bundle.verify(name, public, Some(&leaves[6])),
        Err(BundleError::OtherLeaf)
    ));

    let (vkey_name, vkey) = parse_verifier_key(&verifier_key(name, public)).unwrap();
    // Keys whose base64 holds a `+` read back too.
    for seed in 0..32u8 {
        let key = SigningKey::from_seed(&[seed; 32]);
        let vkey = verifier_key(name, key.public_key());
        let (_, back) = parse_verifier_key(&vkey).unwrap();
        assert_eq!(back.to_bytes(), key.public_key().to_bytes(), "{vkey}");
    }
    assert_eq!(
        (vkey_name.as_str(), vkey.to_bytes()),
        (name, public.to_bytes())
    );
    assert!(
        parse_verifier_key(&verifier_key(name, public).replacen("auditrelay", "x", 1)).is_err()
    );

    let mut changed = bundle.clone();
    changed.leaf.as_mut().unwrap()[1] = 6;
    assert!(matches!(
        changed.verify(name, public, None),
        Err(BundleError::Proof(_))
    ));
    let mut changed = bundle.clone();
    changed.index = 4;
    assert!(matches!(
        changed.verify(name, public, None),
        Err(BundleError::Proof(_))
    ));
    let mut changed = bundle.clone();
    changed.path[0][0] ^= 1;
    assert!(matches!(
        changed.verify(name, public, None),
        Err(BundleError::Proof(_))
    ));
    let mut changed = bundle.clone();
    changed.note = changed.note.replacen("\n13\n", "\n14\n", 1);
    assert!(matches!(
        changed.verify(name, public, None),
        Err(BundleError::Checkpoint(_))
    ));
    assert!(matches!(
        bundle.verify(name, other.public_key(), None),
        Err(BundleError::Checkpoint(_))
    ));
    assert!(InclusionBundle::parse(&text.replacen("index 5", "index 05", 1)).is_err());
}

/// An event's leaf names its log and index: proved at another place, it does not pass.
#[test]
fn a_leaf_proved_elsewhere_than_it_names_does_not_pass() {
    let key = SigningKey::from_seed(&[4; 32]);
    let name = "auditrelay/x";
    let origin = "auditrelay/x/o/us";
    let leaf = |index: u64| format!(r#"{{"log":"{origin}","log_index":{index}}}"#).into_bytes();
    // Leaf 1 names index 2: a log that put it at 1 cannot prove it there.
    let leaves_bytes = [leaf(0), leaf(2), leaf(2)];
    let leaves: Vec<Hash> = leaves_bytes.iter().map(|l| leaf_hash(l)).collect();
    let note = Checkpoint {
        origin: origin.into(),
        size: 3,
        root: root(&leaves),
    }
    .sign(&NoteKey { name, key: &key });
    let bundle = |index: usize| InclusionBundle {
        leaf: Some(leaves_bytes[index].clone()),
        index: index as u64,
        path: inclusion_proof(&leaves, index).unwrap(),
        note: note.clone(),
    };
    assert!(bundle(0).verify(name, key.public_key(), None).is_ok());
    assert!(bundle(2).verify(name, key.public_key(), None).is_ok());
    assert!(matches!(
        bundle(1).verify(name, key.public_key(), None),
        Err(BundleError::LeafElsewhere(_))
    ));
}

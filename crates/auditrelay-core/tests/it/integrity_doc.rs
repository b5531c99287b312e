//! The worked example of `docs/INTEGRITY.md`, rebuilt from its inputs: every value the
//! document shows (a leaf, its hash, the root, the signed checkpoint, the inclusion proof) must
//! be what the code makes, so an auditor who follows it by hand reaches the same bytes.
//! `AUDITRELAY_PRINT_EXAMPLE=1` prints the values, to write the document from.

use auditrelay_core::checkpoint::{Checkpoint, InclusionBundle, NoteKey, verifier_key};
use auditrelay_core::integrity::{event_leaf, installation_name, log_origin};
use auditrelay_core::merkle::{Hash, inclusion_proof, leaf_hash, node_hash, root};
use auditrelay_core::{Event, EventDetail, OrgId, Region, SigningKey, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;

fn hex(hash: &Hash) -> String {
    hash.iter().map(|b| format!("{b:02x}")).collect()
}

fn access(ts: &str, trace: &str, status: u16) -> Event {
    Event {
        ts: Timestamp::parse_rfc3339(ts).unwrap(),
        org_id: OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: Some("a3d2699a-0ed3-4417-bb10-d8e74a1513a4".into()),
        principal_name: None,
        actor_id: None,
        client_ip: Some("203.0.113.7".into()),
        uri: Some("/v3/audit-logs".into()),
        user_agent: None,
        trace_id: Some(trace.into()),
        detail: EventDetail::Access {
            method: "GET".into(),
            query: "{}".into(),
            status_code: status,
            kong_initiated: None,
        },
    }
}

/// The example: a log of three events, its checkpoint and leaf 2's proof.
struct Example {
    leaves: Vec<String>,
    hashes: Vec<Hash>,
    node01: Hash,
    root: Hash,
    note: String,
    verifier_key: String,
    bundle: String,
}

fn example() -> Example {
    let store = uuid::Uuid::from_u128(0x5f0e_7a1c_2b3d_4e5f_8091_a2b3_c4d5_e6f7);
    let name = installation_name(&store);
    let org = OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap();
    let origin = log_origin(&name, org, &Region::parse("us").unwrap(), None);
    let events = [
        access("2026-12-03T10:00:00.000Z", "1001", 200),
        access("2026-12-03T10:00:01.250Z", "1002", 200),
        access("2026-12-03T10:00:02.500Z", "1003", 403),
    ];
    let leaves: Vec<String> = events
        .iter()
        .enumerate()
        .map(|(index, event)| {
            let id = uuid::Uuid::from_u128(0x1000 + index as u128);
            String::from_utf8(event_leaf(&origin, index as u64, &id, event)).unwrap()
        })
        .collect();
    let hashes: Vec<Hash> = leaves.iter().map(|l| leaf_hash(l.as_bytes())).collect();
    let node01 = node_hash(&hashes[0], &hashes[1]);
    let root = root(&hashes);
    let key = SigningKey::from_seed(&[0x42; 32]);
    let note = Checkpoint {
        origin,
        size: 3,
        root,
    }
    .sign(&NoteKey {
        name: &name,
        key: &key,
    });
    let bundle = InclusionBundle {
        leaf: Some(leaves[2].clone().into_bytes()),
        index: 2,
        path: inclusion_proof(&hashes, 2).unwrap(),
        note: note.clone(),
    }
    .text();
    Example {
        verifier_key: verifier_key(&name, key.public_key()),
        leaves,
        hashes,
        node01,
        root,
        note,
        bundle,
    }
}

#[test]
fn the_worked_example_is_what_the_code_makes() {
    let example = example();
    if std::env::var("AUDITRELAY_PRINT_EXAMPLE").is_ok() {
        for (i, (leaf, hash)) in example.leaves.iter().zip(&example.hashes).enumerate() {
            println!("leaf {i}: {leaf}\nhash {i}: {}", hex(hash));
        }
        println!("node01: {}", hex(&example.node01));
        println!(
            "root: {} = {}",
            hex(&example.root),
            STANDARD.encode(example.root)
        );
        println!("note:\n{}", example.note);
        println!("vkey: {}", example.verifier_key);
        println!("bundle:\n{}", example.bundle);
    }
    // The root is the node of (leaves 0 and 1) and leaf 2, as the document computes it.
    assert_eq!(example.root, node_hash(&example.node01, &example.hashes[2]));
    let document = std::fs::read_to_string(
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../../docs/INTEGRITY.md"),
    )
    .expect("docs/INTEGRITY.md is in the repository");
    let mut shown = vec![
        example.leaves[2].clone(),
        hex(&example.hashes[0]),
        hex(&example.hashes[1]),
        hex(&example.hashes[2]),
        hex(&example.node01),
        hex(&example.root),
        STANDARD.encode(example.root),
        example.verifier_key.clone(),
    ];
    shown.extend(example.note.lines().map(str::to_owned));
    shown.extend(example.bundle.lines().map(str::to_owned));
    for value in shown.iter().filter(|v| !v.is_empty()) {
        assert!(
            document.contains(value.as_str()),
            "docs/INTEGRITY.md does not show `{value}`"
        );
    }
}

//! The tamper-evident log (PRODUCT Decision 16): every event in its scope's Merkle log, signed
//! checkpoints every interval (also when nothing happened), inclusion proofs that
//! `auditrelay verify --proof` checks offline, consistency proofs between checkpoints, and
//! proofs that outlive the events.

use std::collections::{HashMap, HashSet};
use std::time::Duration;

use auditrelay::config::Config;
use auditrelay::integrity::{self, Round};
use auditrelay::jobs::retention;
use auditrelay::keys::note::NoteSigner;
use auditrelay::store::{Scope, Store, Taken};
use auditrelay_core::checkpoint::{Checkpoint, InclusionBundle, parse_verifier_key};
use auditrelay_core::format::carried::{Carried, carried};
use auditrelay_core::integrity::{CheckpointEvent, installation_name};
use auditrelay_core::merkle::{Hash, verify_consistency};
use auditrelay_core::{Event, OrgId, Region, Timestamp};
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use reqwest::{Method, StatusCode};
use serde_json::{Value, json};

use crate::support::events::{authorization, ndjson, portal_login, stored_authorization};
use crate::support::receiver::TestReceiver;
use crate::support::signing::{run, stderr, stdout};
use crate::support::{TestApp, bind_webhook, eventually, expect_json, expect_problem, now};

const CHECKPOINT: &str = "/v3/audit-log-integrity/checkpoint";
const INCLUSION: &str = "/v3/audit-log-integrity/proofs/inclusion";
const CONSISTENCY: &str = "/v3/audit-log-integrity/proofs/consistency";
const KEY: &str = "/v3/audit-log-integrity/checkpoint-key";

async fn spawn() -> TestApp {
    TestApp::spawn_with(|c| c.integrity.checkpoint_interval = Duration::from_secs(1)).await
}

/// The published checkpoint key: its name and public key, from the verifier key.
async fn checkpoint_key(app: &TestApp) -> (String, auditrelay_core::PublicKey, String) {
    let resp = app.client.get(app.url(KEY)).send().await.unwrap();
    let key = expect_json(resp, StatusCode::OK).await;
    let vkey = key["verifier_key"].as_str().unwrap().to_owned();
    let (name, public) = parse_verifier_key(&vkey).unwrap();
    assert_eq!(key["name"], name.as_str());
    assert_eq!(
        key["public_key"],
        STANDARD.encode(public.to_bytes()).as_str()
    );
    (name, public, vkey)
}

#[tokio::test]
async fn every_event_proves_its_inclusion_offline_and_checkpoints_extend_each_other() {
    let app = spawn().await;
    let work = tempfile::tempdir().unwrap();
    let events: Vec<Value> = (0..300)
        .map(|i| authorization(now(), &format!("integrity-{i}")))
        .collect();
    let resp = app
        .ingest_ndjson("/v1/events", &app.admin, ndjson(&events))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);

    // The checkpoint key is public, named after the installation, and not a line key.
    let (name, public, vkey) = checkpoint_key(&app).await;
    assert_eq!(name, installation_name(&app.store().identity()));
    let jwks = expect_json(
        app.client
            .get(app.url("/v2/audit-log-webhook/jwks.json"))
            .send()
            .await
            .unwrap(),
        StatusCode::OK,
    )
    .await;
    let x = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(public.to_bytes());
    assert!(
        jwks["keys"]
            .as_array()
            .unwrap()
            .iter()
            .all(|k| k["x"] != x.as_str()),
        "the checkpoint key is not in the JWKS"
    );

    // A checkpoint that holds the 300 (and the requests' own audit events before them).
    let first = eventually(Duration::from_secs(20), || async {
        let resp = app.get(CHECKPOINT, &app.admin).await;
        // 404 until the first checkpoint is signed.
        (resp.status() == StatusCode::OK).then_some(())?;
        let body: Value = resp.json().await.unwrap();
        (body["size"].as_u64().unwrap() >= 300).then_some(body)
    })
    .await;
    let origin = format!("{name}/{}/us", app.org());
    assert_eq!(first["origin"], origin.as_str());
    let opened = Checkpoint::open(first["note"].as_str().unwrap(), &name, &public).unwrap();
    assert_eq!(opened.size, first["size"].as_u64().unwrap());
    assert_eq!(
        STANDARD.encode(opened.root),
        first["root"].as_str().unwrap()
    );

    // Every ingested event's leaf proves its inclusion against that checkpoint.
    let size = opened.size;
    let mut found = 0;
    for index in 0..size {
        let resp = app
            .get(
                &format!("{INCLUSION}?log_index={index}&size={size}"),
                &app.admin,
            )
            .await;
        assert_eq!(resp.status(), StatusCode::OK);
        assert!(
            resp.headers()["content-type"]
                .to_str()
                .unwrap()
                .starts_with("text/plain")
        );
        let bundle = InclusionBundle::parse(&resp.text().await.unwrap()).unwrap();
        let included = bundle.verify(&name, &public, None).unwrap();
        let leaf: Value = serde_json::from_slice(included.leaf.as_ref().unwrap()).unwrap();
        assert_eq!(leaf["log_index"], index);
        assert_eq!(leaf["log"], origin.as_str());
        if leaf["trace_id"]
            .as_str()
            .is_some_and(|t| t.starts_with("integrity-"))
        {
            found += 1;
        }
        if index == 150 {
            // The CLI checks the same bundle offline, with the key by value or by URL.
            let file = work.path().join("150.tlog-proof");
            std::fs::write(&file, bundle.text()).unwrap();
            let path = file.to_str().unwrap();
            let out = run(
                &["verify", "--proof", path, "--checkpoint-key", &vkey],
                None,
            )
            .await;
            assert!(out.status.success(), "{}", stderr(&out));
            assert!(
                stdout(&out).contains("inclusion proof valid: leaf 150"),
                "{}",
                stdout(&out)
            );
            let url = app.url(KEY);
            let out = run(&["verify", "--proof", path, "--checkpoint-key", &url], None).await;
            assert!(out.status.success(), "{}", stderr(&out));
            // A changed bundle fails, naming why.
            let tampered = bundle.text().replacen("index 150", "index 151", 1);
            std::fs::write(&file, tampered).unwrap();
            let out = run(
                &["verify", "--proof", path, "--checkpoint-key", &vkey],
                None,
            )
            .await;
            assert_eq!(out.status.code(), Some(1));
            assert!(
                stderr(&out).contains("does not prove its leaf"),
                "{}",
                stderr(&out)
            );
        }
    }
    assert_eq!(found, 300, "each ingested event is a leaf, once");

    // A later checkpoint extends it, and the consistency proof says so.
    let later = eventually(Duration::from_secs(20), || async {
        let body = expect_json(app.get(CHECKPOINT, &app.admin).await, StatusCode::OK).await;
        (body["size"].as_u64().unwrap() > size).then_some(body)
    })
    .await;
    let to = later["size"].as_u64().unwrap();
    let proof = expect_json(
        app.get(&format!("{CONSISTENCY}?from={size}&to={to}"), &app.admin)
            .await,
        StatusCode::OK,
    )
    .await;
    let hashes: Vec<Hash> = proof["proof"]
        .as_array()
        .unwrap()
        .iter()
        .map(|h| {
            STANDARD
                .decode(h.as_str().unwrap())
                .unwrap()
                .try_into()
                .unwrap()
        })
        .collect();
    let newer = Checkpoint::open(proof["to"]["note"].as_str().unwrap(), &name, &public).unwrap();
    verify_consistency(size, to, &opened.root, &newer.root, &hashes).unwrap();
    assert!(later["previous_size"].as_u64().unwrap() >= size);
    app.stop().await;
}

#[tokio::test]
async fn proof_requests_that_cannot_be_answered_say_why() {
    let app = spawn().await;
    let size = eventually(Duration::from_secs(20), || async {
        let resp = app.get(CHECKPOINT, &app.admin).await;
        (resp.status() == StatusCode::OK).then_some(())?;
        let body: Value = resp.json().await.unwrap();
        body["size"].as_u64()
    })
    .await;
    for (query, field) in [
        ("", "log_index"),
        ("log_index=abc", "log_index"),
        ("log_index=-1", "log_index"),
        ("log_index=1&log_index=2", "log_index"),
        ("log_index=1&sise=2", "sise"),
    ] {
        let resp = app.get(&format!("{INCLUSION}?{query}"), &app.admin).await;
        let problem = expect_problem(resp, StatusCode::BAD_REQUEST).await;
        assert_eq!(problem["invalid_parameters"][0]["field"], field, "{query}");
    }
    let resp = app
        .get(&format!("{CONSISTENCY}?from=5&to=2"), &app.admin)
        .await;
    expect_problem(resp, StatusCode::BAD_REQUEST).await;
    let resp = app.get(&format!("{CHECKPOINT}?size=x"), &app.admin).await;
    expect_problem(resp, StatusCode::BAD_REQUEST).await;

    // Not yet checkpointed, no such checkpoint: 404 with the reason.
    let resp = app
        .get(
            &format!("{INCLUSION}?log_index={}&size={size}", size + 1000),
            &app.admin,
        )
        .await;
    let problem = expect_problem(resp, StatusCode::NOT_FOUND).await;
    assert!(problem["detail"].as_str().unwrap().contains("checkpoint"));
    let resp = app
        .get(
            &format!("{CHECKPOINT}?size={}", size + 1_000_000),
            &app.admin,
        )
        .await;
    expect_problem(resp, StatusCode::NOT_FOUND).await;

    // A token that may not read audit logs may not read proofs either.
    let producer = app.token(auditrelay_core::Role::EventProducer, None).await;
    let resp = app.get(CHECKPOINT, &producer).await;
    assert!(matches!(
        resp.status(),
        StatusCode::FORBIDDEN | StatusCode::UNAUTHORIZED
    ));
    app.stop().await;
}

#[tokio::test]
async fn a_quiet_log_is_checkpointed_every_interval_and_a_portal_has_its_own() {
    let app = spawn().await;
    let portal = app.create_portal("checkpointed", "us").await;
    let events: Vec<Value> = (0..5)
        .map(|i| portal_login(now(), portal, &format!("p-{i}")))
        .collect();
    let resp = app
        .ingest_ndjson("/v1/events", &app.admin, ndjson(&events))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    let scope = Scope {
        org_id: app.org(),
        region: Region::parse("us").unwrap(),
        portal_id: Some(portal),
    };
    // Two checkpoints of the same five leaves, the second after the first: nothing happened
    // in between, and it is signed all the same.
    let (first, second) = eventually(Duration::from_secs(20), || async {
        let latest = app.store().latest_checkpoint(&scope).await.unwrap()?;
        let first = app.store().checkpoint_at(&scope, 5).await.unwrap()?;
        (latest.id != first.id && latest.size() == 5).then_some((first, latest))
    })
    .await;
    assert_eq!(second.previous_size, 5);
    assert!(second.signed_at > first.signed_at);
    assert_eq!(first.previous_size, 0);

    let path = format!("/v3/portals/{portal}/audit-log-integrity/checkpoint");
    let body = expect_json(app.get(&path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(body["size"], 5);
    assert!(
        body["origin"]
            .as_str()
            .unwrap()
            .ends_with(&format!("/us/{portal}"))
    );
    let path = format!("/v3/portals/{portal}/audit-log-integrity/proofs/inclusion?log_index=4");
    let resp = app.get(&path, &app.admin).await;
    assert_eq!(resp.status(), StatusCode::OK);
    let (name, public, _) = checkpoint_key(&app).await;
    let bundle = InclusionBundle::parse(&resp.text().await.unwrap()).unwrap();
    bundle.verify(&name, &public, None).unwrap();
    app.stop().await;
}

/// The org's log of region `us`.
fn us(org: OrgId) -> Scope {
    Scope {
        org_id: org,
        region: Region::parse("us").unwrap(),
        portal_id: None,
    }
}

/// A connection of its own to the SQLite database in `dir`, as someone with the file has.
async fn database(dir: &std::path::Path) -> sqlx::SqliteConnection {
    let db = dir.join("auditrelay.db");
    let url = format!("sqlite://{}", db.display());
    <sqlx::SqliteConnection as sqlx::Connection>::connect(&url)
        .await
        .unwrap()
}

/// A store of its own, apart from any server's (whose jobs would race the test's steps): in
/// the data directory, or on a PostgreSQL database of its own when the suite runs there.
async fn own_store(dir: &std::path::Path) -> (Config, Store) {
    let mut config = Config::for_data_dir(dir).unwrap();
    if std::env::var("AUDITRELAY_TEST_STORE").as_deref() == Ok("postgres") {
        let database = crate::support::postgres::database()
            .await
            .expect("AUDITRELAY_TEST_STORE=postgres needs the PostgreSQL server binaries");
        config.store.url = database.url.parse().unwrap();
    }
    let store = Store::open(&config).await.unwrap();
    (config, store)
}

/// On a store of its own: retention deletes the events, then (much later) the old leaves, and
/// proofs keep working from what stays — the bundle then carries no leaf, and the leaf's hash
/// from the SIEM's line stands in for it.
#[tokio::test]
async fn proofs_outlive_the_events_and_their_leaves() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = own_store(dir.path()).await;
    let org = OrgId::new_v4();
    let scope = us(org);
    const DAY_MS: i64 = 86_400_000;
    let old = |from: i64, to: i64| -> Vec<Event> {
        (from..to)
            .map(|i| stored_authorization(org, now().saturating_sub_millis(8 * DAY_MS - i), "old"))
            .collect()
    };
    let signer = NoteSigner::new(installation_name(&store.identity()), &[7; 32]);
    let minute = Duration::from_secs(60);
    // A checkpoint at 200 leaves, inside chunk 1, and one at 301.
    store.append_events(old(0, 200)).await.unwrap();
    assert_eq!(integrity::integrate(&store).await.unwrap(), 200);
    integrity::checkpoint_all(
        &store,
        &signer,
        minute,
        now().saturating_sub_millis(120_000),
    )
    .await
    .unwrap();
    store.append_events(old(200, 300)).await.unwrap();
    store
        .append_events(vec![stored_authorization(org, now(), "fresh")])
        .await
        .unwrap();
    assert_eq!(integrity::integrate(&store).await.unwrap(), 101);
    integrity::checkpoint_all(&store, &signer, minute, now())
        .await
        .unwrap();
    let before = integrity::inclusion(&store, &scope, 10, None)
        .await
        .unwrap();
    let leaf_hash = before
        .verify(signer.name(), signer.public_key(), None)
        .unwrap()
        .leaf_hash;

    // The events go; their leaves stay, and so does the proof, without its leaf.
    assert_eq!(
        retention::prune_once(&store, &config.retention)
            .await
            .unwrap(),
        300
    );
    let after = integrity::inclusion(&store, &scope, 10, None)
        .await
        .unwrap();
    assert_eq!(after.leaf, None);
    assert_eq!(after.path, before.path);
    after
        .verify(signer.name(), signer.public_key(), Some(&leaf_hash))
        .unwrap();

    // Long after, old full chunks keep only their roots, except chunk 1, where the checkpoint
    // at 200 ends (a proof at that size needs its leaves): the fresh event still proves its
    // inclusion through the roots, and the log at 301 its consistency with the log at 200.
    let later = now().saturating_add_millis(DAY_MS);
    let keep_cutoff = now().saturating_sub_millis(DAY_MS);
    assert_eq!(store.prune_log(later, keep_cutoff).await.unwrap(), 1);
    // A webhook whose cursor stayed inside the emptied chunk (its SIEM was away for longer
    // than `keep_leaves`) has delivered the leaves before the chunk: the chunk's events are
    // gone, and its lane goes on past them instead of failing on the chunk.
    let fresh_seq = store.events_to_deliver(&scope, 0, None, 1).await.unwrap()[0].seq;
    let first_seq = fresh_seq - 300;
    let through = |seq| store.log_leaves_through(&scope, seq);
    assert_eq!(through(first_seq + 49).await.unwrap(), 0);
    assert_eq!(through(first_seq + 127).await.unwrap(), 128);
    assert_eq!(through(first_seq + 149).await.unwrap(), 150);
    assert!(
        integrity::inclusion(&store, &scope, 10, None)
            .await
            .is_err()
    );
    assert!(
        integrity::inclusion(&store, &scope, 150, None)
            .await
            .is_ok()
    );
    let (older, newer, proof) = integrity::consistency(&store, &scope, 200, 301)
        .await
        .unwrap();
    verify_consistency(200, 301, &older.root, &newer.root, &proof).unwrap();
    let fresh = integrity::inclusion(&store, &scope, 300, None)
        .await
        .unwrap();
    let included = fresh
        .verify(signer.name(), signer.public_key(), None)
        .unwrap();
    assert_eq!(included.checkpoint.size, 301);
    store
        .append_events(vec![stored_authorization(org, now(), "fresher")])
        .await
        .unwrap();
    assert_eq!(integrity::integrate(&store).await.unwrap(), 1);
    let signed = integrity::checkpoint_all(&store, &signer, Duration::from_secs(60), later)
        .await
        .unwrap();
    assert_eq!(signed, 1);
    store.close().await;
}

/// An event's leaf is made from its content: retention leaves alone what its log has not
/// taken, and deletes it once the log has.
#[tokio::test]
async fn retention_deletes_no_event_its_log_has_not_taken() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = own_store(dir.path()).await;
    let org = OrgId::new_v4();
    let old: Vec<Event> = (0..10)
        .map(|i| stored_authorization(org, now().saturating_sub_millis(8 * 86_400_000 - i), "old"))
        .collect();
    store.append_events(old).await.unwrap();
    store
        .append_events(vec![stored_authorization(org, now(), "fresh")])
        .await
        .unwrap();
    let cutoff = now().saturating_sub_millis(7 * 86_400_000);
    assert_eq!(store.prune_events(cutoff, 100).await.unwrap(), 0);
    assert_eq!(integrity::integrate(&store).await.unwrap(), 11);
    assert_eq!(store.prune_events(cutoff, 100).await.unwrap(), 10);
    store.close().await;
}

/// A checkpoint is signed only for the tree the stored leaves make, extending the last one:
/// a changed leaf makes the next round refuse, and sign nothing.
#[tokio::test]
async fn no_checkpoint_is_signed_over_a_changed_leaf() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_data_dir(dir.path()).unwrap();
    let store = Store::open(&config).await.unwrap();
    let org = OrgId::new_v4();
    let scope = us(org);
    let signer = NoteSigner::new(installation_name(&store.identity()), &[5; 32]);
    let events: Vec<Event> = (0..20)
        .map(|i| stored_authorization(org, now(), &format!("e{i}")))
        .collect();
    store.append_events(events).await.unwrap();
    integrity::integrate(&store).await.unwrap();
    let interval = Duration::from_secs(60);
    assert_eq!(
        integrity::checkpoint_all(&store, &signer, interval, now())
            .await
            .unwrap(),
        1
    );
    store
        .append_events(vec![stored_authorization(org, now(), "after")])
        .await
        .unwrap();
    integrity::integrate(&store).await.unwrap();

    // Someone with the database changes the leaf taken since the last checkpoint (older
    // leaves are the signed tree's: a change to them fails every proof that uses them).
    let mut conn = database(dir.path()).await;
    let mut hashes: Vec<u8> = sqlx::query_scalar("SELECT hashes FROM log_chunks")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    hashes[20 * 32] ^= 1;
    sqlx::query("UPDATE log_chunks SET hashes = ?")
        .bind(hashes)
        .execute(&mut conn)
        .await
        .unwrap();
    let later = now().saturating_add_millis(61_000);
    let refused = integrity::checkpoint_all(&store, &signer, interval, later).await;
    assert!(refused.is_err(), "{refused:?}");
    let latest = store.latest_checkpoint(&scope).await.unwrap().unwrap();
    assert_eq!(latest.size(), 20, "nothing signed after the change");
    store.close().await;
}

/// Someone with the database, not the checkpoint key, puts a whole other log in place of one
/// (here another scope's, which is consistent in itself) and makes its last checkpoint's row
/// agree with it. The row's tree is not what its note signs: nothing is signed on top of it.
#[tokio::test]
async fn no_checkpoint_is_signed_over_a_log_rewritten_with_its_checkpoint_row() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_data_dir(dir.path()).unwrap();
    let store = Store::open(&config).await.unwrap();
    let signer = NoteSigner::new(installation_name(&store.identity()), &[5; 32]);
    let interval = Duration::from_secs(60);
    let (victim, template) = (OrgId::new_v4(), OrgId::new_v4());
    for (org, trace) in [(victim, "v"), (template, "t")] {
        let events: Vec<Event> = (0..20)
            .map(|i| stored_authorization(org, now(), &format!("{trace}{i}")))
            .collect();
        store.append_events(events).await.unwrap();
        integrity::integrate(&store).await.unwrap();
        // One checkpoint each: the victim's first (id 1), then the template's (id 2).
        let signed = integrity::checkpoint_all(&store, &signer, interval, now()).await;
        assert_eq!(signed.unwrap(), 1);
    }
    for (org, trace) in [(victim, "v-after"), (template, "t-after")] {
        let event = stored_authorization(org, now(), trace);
        store.append_events(vec![event]).await.unwrap();
    }
    integrity::integrate(&store).await.unwrap();

    let mut conn = database(dir.path()).await;
    for statement in [
        "UPDATE logs SET (size, last_seq, frontier) = \
         (SELECT size, last_seq, frontier FROM logs WHERE scope_id = \
          (SELECT scope_id FROM checkpoints WHERE id = 2)) \
         WHERE scope_id = (SELECT scope_id FROM checkpoints WHERE id = 1)",
        "DELETE FROM log_chunks WHERE scope_id = (SELECT scope_id FROM checkpoints WHERE id = 1)",
        "INSERT INTO log_chunks SELECT (SELECT scope_id FROM checkpoints WHERE id = 1), number, \
         first_seq, last_seq, last_ts, root, seqs, hashes FROM log_chunks \
         WHERE scope_id = (SELECT scope_id FROM checkpoints WHERE id = 2)",
        "UPDATE checkpoints SET (root, frontier) = \
         (SELECT root, frontier FROM checkpoints WHERE id = 2) WHERE id = 1",
    ] {
        sqlx::query(statement).execute(&mut conn).await.unwrap();
    }

    let later = now().saturating_add_millis(61_000);
    let refused = integrity::checkpoint_all(&store, &signer, interval, later).await;
    let why = refused
        .expect_err("the rewritten log is not signed")
        .to_string();
    assert!(why.contains("not the one its note signs"), "{why}");
    let latest = store.latest_checkpoint(&us(victim)).await.unwrap().unwrap();
    assert_eq!(latest.id, 1, "nothing signed over the rewritten log");
    let untouched = store
        .latest_checkpoint(&us(template))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(untouched.size(), 21, "the other log goes on");
    store.close().await;
}

/// A replaced checkpoint key (its file lost: OPERATIONS.md) does not stop the log: the last
/// checkpoint's note names another key, and is read rather than checked.
#[tokio::test]
async fn a_replaced_checkpoint_key_signs_on() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_data_dir(dir.path()).unwrap();
    let store = Store::open(&config).await.unwrap();
    let name = installation_name(&store.identity());
    let old = NoteSigner::new(name.clone(), &[5; 32]);
    let new = NoteSigner::new(name, &[6; 32]);
    let org = OrgId::new_v4();
    let interval = Duration::from_secs(60);
    let later = now().saturating_add_millis(61_000);
    for (signer, at, trace) in [(&old, now(), "before"), (&new, later, "after")] {
        let event = stored_authorization(org, now(), trace);
        store.append_events(vec![event]).await.unwrap();
        integrity::integrate(&store).await.unwrap();
        let signed = integrity::checkpoint_all(&store, signer, interval, at).await;
        assert_eq!(signed.unwrap(), 1, "{trace}");
    }
    let latest = store.latest_checkpoint(&us(org)).await.unwrap().unwrap();
    assert_eq!(latest.size(), 2);
    let opened = Checkpoint::open(&latest.note, new.name(), new.public_key()).unwrap();
    assert_eq!(opened.size, 2);
    store.close().await;
}

/// A log of more than two groups (16,384 leaves each): proofs read the groups' roots instead
/// of every chunk's, and still verify, for leaves in every group and across group edges.
#[tokio::test]
async fn proofs_in_a_log_of_several_groups() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = own_store(dir.path()).await;
    let org = OrgId::new_v4();
    let scope = us(org);
    let signer = NoteSigner::new(installation_name(&store.identity()), &[6; 32]);
    let minute = Duration::from_secs(60);
    let append = |n: usize| {
        let events: Vec<Event> = (0..n)
            .map(|i| stored_authorization(org, now(), &format!("g{i}")))
            .collect();
        store.append_events(events)
    };
    append(20_000).await.unwrap();
    integrity::integrate(&store).await.unwrap();
    let earlier = now().saturating_sub_millis(120_000);
    integrity::checkpoint_all(&store, &signer, minute, earlier)
        .await
        .unwrap();
    append(20_000).await.unwrap();
    integrity::integrate(&store).await.unwrap();
    integrity::checkpoint_all(&store, &signer, minute, now())
        .await
        .unwrap();
    let latest = store.latest_checkpoint(&scope).await.unwrap().unwrap();
    assert_eq!(latest.size(), 40_000);

    for index in [0, 127, 128, 16_383, 16_384, 20_000, 32_767, 32_768, 39_999] {
        let bundle = integrity::inclusion(&store, &scope, index, None)
            .await
            .unwrap();
        let included = bundle
            .verify(signer.name(), signer.public_key(), None)
            .unwrap_or_else(|e| panic!("leaf {index}: {e}"));
        assert_eq!(included.index, index);
        let at_20k = integrity::inclusion(&store, &scope, index.min(19_999), Some(20_000))
            .await
            .unwrap();
        at_20k
            .verify(signer.name(), signer.public_key(), None)
            .unwrap_or_else(|e| panic!("leaf {index} at 20,000: {e}"));
    }
    let (older, newer, proof) = integrity::consistency(&store, &scope, 20_000, 40_000)
        .await
        .unwrap();
    verify_consistency(20_000, 40_000, &older.root, &newer.root, &proof).unwrap();
    store.close().await;
}

/// How many leaves `scope`'s log holds.
async fn log_size(store: &Store, scope: &Scope) -> u64 {
    let heads = store.log_heads().await.unwrap();
    heads.iter().find(|h| &h.scope == scope).unwrap().size()
}

/// Each of `indexes` has an inclusion proof in `scope`'s newest checkpoint that verifies.
async fn proves_inclusion(store: &Store, scope: &Scope, signer: &NoteSigner, indexes: &[u64]) {
    for &index in indexes {
        let bundle = integrity::inclusion(store, scope, index, None)
            .await
            .unwrap();
        bundle
            .verify(signer.name(), signer.public_key(), None)
            .unwrap_or_else(|e| panic!("index {index}: {e}"));
    }
}

/// Two writers taking the same events into the log at once (two nodes, or retention beside
/// the job) never fork it: one wins each step, the other stops, and the log ends with every
/// event once, in order, its stored leaves making its root.
#[tokio::test]
async fn two_writers_at_once_leave_one_log() {
    let dir = tempfile::tempdir().unwrap();
    let (_, store) = own_store(dir.path()).await;
    let org = OrgId::new_v4();
    let scope = us(org);
    let signer = NoteSigner::new(installation_name(&store.identity()), &[3; 32]);
    for round in 0..5 {
        let events: Vec<Event> = (0..3_000)
            .map(|i| stored_authorization(org, now(), &format!("r{round}-{i}")))
            .collect();
        store.append_events(events).await.unwrap();
        let (a, b) = tokio::join!(integrity::integrate(&store), integrity::integrate(&store));
        assert_eq!(
            a.unwrap() + b.unwrap(),
            3_000,
            "round {round}: each event once"
        );
    }
    assert_eq!(integrity::integrate(&store).await.unwrap(), 0);
    assert_eq!(log_size(&store, &scope).await, 15_000);
    integrity::checkpoint_all(&store, &signer, Duration::from_secs(60), now())
        .await
        .unwrap();
    // Two checkpoint rounds at once sign one checkpoint, not two after the same one.
    let later = now().saturating_add_millis(61_000);
    let minute = Duration::from_secs(60);
    let (a, b) = tokio::join!(
        integrity::checkpoint_all(&store, &signer, minute, later),
        integrity::checkpoint_all(&store, &signer, minute, later)
    );
    assert_eq!(a.unwrap() + b.unwrap(), 1);
    proves_inclusion(&store, &scope, &signer, &[0, 2_999, 3_000, 7_777, 14_999]).await;
    store.close().await;
}

/// The log takes events from the commit feed, as the writer committed them, rather than
/// reading them back. The feed vouches for every event committed after it was opened, or
/// breaks: an event committed by another process on the same file between two of the writer's
/// commits breaks it, and the store is read, so no event is passed over. On PostgreSQL, where
/// several nodes commit, it never vouches.
#[tokio::test]
async fn the_log_takes_the_commit_feed_and_reads_the_store_when_the_feed_breaks() {
    let dir = tempfile::tempdir().unwrap();
    let (config, store) = own_store(dir.path()).await;
    let postgres = std::env::var("AUDITRELAY_TEST_STORE").as_deref() == Ok("postgres");
    let org = OrgId::new_v4();
    let scope = us(org);
    let batch = |name: &str, n: usize| -> Vec<Event> {
        (0..n)
            .map(|i| stored_authorization(org, now(), &format!("{name}-{i}")))
            .collect()
    };
    let whole = |taken| Round { taken, whole: true };

    store.append_events(batch("before", 100)).await.unwrap();
    store.commits().open_feed();
    assert_eq!(
        integrity::integrate_stored(&store).await.unwrap(),
        whole(100)
    );
    store.append_events(batch("fed", 3_000)).await.unwrap();
    store.append_events(batch("fed-again", 10)).await.unwrap();
    match store.commits().take_feed() {
        Taken::Whole(committed) => {
            assert!(!postgres, "the feed vouched on PostgreSQL");
            let taken = integrity::integrate_committed(&store, &committed).await;
            assert_eq!(taken.unwrap(), whole(3_010));
            let again = integrity::integrate_committed(&store, &committed).await;
            assert_eq!(
                again.unwrap(),
                whole(0),
                "events in the log are passed over"
            );
        }
        Taken::Broken => {
            assert!(postgres, "the writer feeds every commit it makes");
            assert_eq!(
                integrity::integrate_stored(&store).await.unwrap(),
                whole(3_010)
            );
        }
    }
    assert_eq!(integrity::integrate_stored(&store).await.unwrap(), whole(0));

    // Another process (`auditrelay token create`, say) commits one event, then the server
    // commits more: the feed, which never saw the first, breaks.
    store.commits().open_feed();
    let other = Store::open(&config).await.unwrap();
    other.append_events(batch("other", 1)).await.unwrap();
    other.close().await;
    store.append_events(batch("after", 5)).await.unwrap();
    assert!(matches!(store.commits().take_feed(), Taken::Broken));
    assert_eq!(integrity::integrate_stored(&store).await.unwrap(), whole(6));

    assert_eq!(log_size(&store, &scope).await, 3_116, "every event once");
    let signer = NoteSigner::new(installation_name(&store.identity()), &[3; 32]);
    integrity::checkpoint_all(&store, &signer, Duration::from_secs(60), now())
        .await
        .unwrap();
    proves_inclusion(&store, &scope, &signer, &[0, 100, 3_109, 3_110, 3_115]).await;
    store.close().await;
}

/// Past the events' window, a log's checkpoints are thinned to the first of each hour and its
/// newest; past `keep_leaves`, to its newest.
#[tokio::test]
async fn old_checkpoints_are_thinned_to_one_an_hour_then_to_the_newest() {
    let dir = tempfile::tempdir().unwrap();
    let config = Config::for_data_dir(dir.path()).unwrap();
    let store = Store::open(&config).await.unwrap();
    let org = OrgId::new_v4();
    let signer = NoteSigner::new(installation_name(&store.identity()), &[2; 32]);
    store
        .append_events(vec![stored_authorization(org, now(), "only")])
        .await
        .unwrap();
    integrity::integrate(&store).await.unwrap();
    const HOUR: i64 = 3_600_000;
    let hour = Timestamp::from_millis((now().as_millis() / HOUR - 48) * HOUR);
    // Minutes 1, 11 and 21 of one hour, 1 and 11 of the next.
    let minutes = [1, 11, 21, 61, 71];
    for minute in minutes {
        let at = hour.saturating_add_millis(minute * 60_000);
        let signed = integrity::checkpoint_all(&store, &signer, Duration::from_secs(60), at)
            .await
            .unwrap();
        assert_eq!(signed, 1);
    }
    let signed_minutes = || async {
        let mut conn = database(dir.path()).await;
        let times: Vec<i64> = sqlx::query_scalar("SELECT signed_at FROM checkpoints ORDER BY id")
            .fetch_all(&mut conn)
            .await
            .unwrap();
        times
            .into_iter()
            .map(|t| (t - hour.as_millis()) / 60_000)
            .collect::<Vec<_>>()
    };
    let window_cutoff = hour.saturating_add_millis(3 * HOUR);
    let keep_cutoff = hour.saturating_sub_millis(HOUR);
    store.prune_log(window_cutoff, keep_cutoff).await.unwrap();
    assert_eq!(
        signed_minutes().await,
        [1, 61, 71],
        "first of each hour, and the newest"
    );
    store.prune_log(window_cutoff, window_cutoff).await.unwrap();
    assert_eq!(signed_minutes().await, [71], "the newest");
    store.close().await;
}

/// Waits until every trace of `traces` arrived in `lines()` and at least `checkpoints`
/// checkpoint events cover every leaf the lines carry; returns the lines and the newest
/// checkpoint's time (where the export ends).
async fn settled_stream(
    lines: impl Fn() -> Vec<String>,
    traces: &[String],
    checkpoints: usize,
) -> (Vec<String>, Timestamp) {
    let deadline = tokio::time::Instant::now() + Duration::from_secs(60);
    loop {
        let lines = lines();
        let seen: HashSet<&str> = lines.iter().filter_map(|l| trace_of(l)).collect();
        let arrived = traces.iter().all(|t| seen.contains(t.as_str()));
        let leaves = lines
            .iter()
            .filter_map(|l| match carried_of(l) {
                Some(Carried::Leaf { index, .. }) => Some(index + 1),
                _ => None,
            })
            .max()
            .unwrap_or(0);
        let sent: Vec<CheckpointEvent> = lines
            .iter()
            .filter_map(|l| match carried_of(l) {
                Some(Carried::Checkpoint(cp)) => Some(cp),
                _ => None,
            })
            .collect();
        let sizes: Vec<u64> = sent
            .iter()
            .map(|cp| {
                let text = cp.note.split_inclusive('\n').take(3).collect::<String>();
                Checkpoint::parse(&text).unwrap().size
            })
            .collect();
        if arrived && sizes.iter().filter(|s| **s >= leaves).count() >= checkpoints {
            let until = sent.iter().map(|c| c.signed_at).max().unwrap();
            return (lines, until);
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{} lines, all events: {arrived}, checkpoint sizes {sizes:?}, leaves {leaves}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
}

/// The trace id of one of the test's JSON or CEF lines.
fn trace_of(line: &str) -> Option<&str> {
    let (_, rest) = line
        .split_once("\"trace_id\":\"")
        .or_else(|| line.split_once(" trace_id="))?;
    rest.split(['"', ' ']).next()
}

/// What a line of an `integrity` stream carries, read back.
fn carried_of(line: &str) -> Option<Carried> {
    carried(line.as_bytes()).expect("our lines read back")
}

/// Runs `verify` on `lines` (written to a file in `dir`, gzipped when `gzip`) against the app's
/// keys, judging the tail against `until`; returns whether it passed, and its output.
async fn verify_stream(
    app: &TestApp,
    dir: &std::path::Path,
    lines: &[String],
    gzip: bool,
    until: Timestamp,
) -> (bool, String) {
    use std::io::Write as _;
    let path = dir.join(format!("export-{}.txt", uuid::Uuid::new_v4()));
    let text = lines.join("\n");
    if gzip {
        let file = std::fs::File::create(&path).unwrap();
        let mut encoder = flate2::write::GzEncoder::new(file, flate2::Compression::fast());
        encoder.write_all(text.as_bytes()).unwrap();
        encoder.finish().unwrap();
    } else {
        std::fs::write(&path, text).unwrap();
    }
    let jwks = app.url("/v2/audit-log-webhook/jwks.json");
    let key = app.url(KEY);
    let until = until.to_rfc3339_millis();
    let args = [
        "verify",
        "--jwks",
        &jwks,
        "--checkpoint-key",
        &key,
        "--until",
        &until,
        path.to_str().unwrap(),
    ];
    let out = run(&args, None).await;
    let report: String = stdout(&out)
        .lines()
        .filter(|l| !l.starts_with("line ") || l.contains("invalid"))
        .map(|l| format!("{l}\n"))
        .collect();
    (out.status.success(), format!("{report}{}", stderr(&out)))
}

/// Decision 16 end to end: destinations with `integrity` (JSON lines for one region's log,
/// CEF lines for another's, one SIEM) get each event's place in its log inside its signed line
/// and the checkpoints after the events they cover. From the exported lines alone, `verify`
/// proves each log whole — shuffled and gzipped too — and names exactly a line removed from
/// the middle, a line altered, a line sent twice, and a tail cut off with its checkpoints. A
/// replayed window resends the same bytes, so the stream with it still verifies.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn verify_proves_a_delivered_stream_whole_and_names_what_was_taken_from_it() {
    let app = TestApp::spawn_with(|c| {
        crate::support::dev(c);
        c.regions.list = ["us", "eu"].map(|r| Region::parse(r).unwrap()).to_vec();
        c.integrity.checkpoint_interval = Duration::from_secs(1);
        c.delivery.batch_max_events = 300;
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let receiver = TestReceiver::http().await;
    for (region, format) in [("us", "json"), ("eu", "cef")] {
        let body = json!({
            "name": format!("siem-{region}"), "endpoint": receiver.url(),
            "authorization": "Bearer siem", "log_format": format, "integrity": true,
        });
        let resp = app
            .post("/v3/audit-log-destinations", &app.admin, body)
            .await;
        let created = expect_json(resp, StatusCode::CREATED).await;
        assert_eq!(created["integrity"], true, "{created}");
        let id = created["id"].as_str().unwrap();
        bind_webhook(&app, &format!("/{region}/v3/audit-log-webhook"), id, true).await;
    }
    let started = now();
    // A few thousand events, in commits spread over several checkpoints.
    let mut traces = Vec::new();
    for round in 0..6 {
        for (region, n) in [("us", 400), ("eu", 60)] {
            let events: Vec<Value> = (0..n)
                .map(|i| {
                    let trace = format!("{region}-{round}-{i}");
                    traces.push(trace.clone());
                    authorization(now(), &trace)
                })
                .collect();
            let resp = app
                .ingest_ndjson(&format!("/{region}/v1/events"), &app.admin, ndjson(&events))
                .await;
            assert_eq!(resp.status(), StatusCode::ACCEPTED);
        }
        // The next round only once a new checkpoint was signed: the rounds span several.
        let scope = us(app.org());
        let before = app
            .store()
            .latest_checkpoint(&scope)
            .await
            .unwrap()
            .map(|c| c.id);
        eventually(Duration::from_secs(30), || async {
            let latest = app.store().latest_checkpoint(&scope).await.unwrap()?;
            (Some(latest.id) != before).then_some(())
        })
        .await;
    }

    // Every event arrives with its place, and checkpoints cover them all and go on for a
    // while after (the cut tail below takes several seconds of them).
    let all_in = now();
    let deadline = tokio::time::Instant::now() + Duration::from_secs(90);
    let lines = loop {
        let lines = receiver.lines();
        let seen: HashSet<&str> = lines.iter().filter_map(|l| trace_of(l)).collect();
        let arrived = traces.iter().all(|t| seen.contains(t.as_str()));
        // Per log: its leaves, its newest checkpoint's time, its largest checkpoint's size.
        let mut logs: HashMap<String, (u64, Timestamp, u64)> = HashMap::new();
        for line in &lines {
            match carried_of(line) {
                Some(Carried::Leaf { log, index, .. }) => {
                    let entry = logs.entry(log).or_insert((0, Timestamp::ZERO, 0));
                    entry.0 = entry.0.max(index + 1);
                }
                Some(Carried::Checkpoint(cp)) => {
                    let text = cp.note.split_inclusive('\n').take(3).collect::<String>();
                    let size = Checkpoint::parse(&text).unwrap().size;
                    let entry = logs.entry(cp.log).or_insert((0, Timestamp::ZERO, 0));
                    entry.1 = entry.1.max(cp.signed_at);
                    entry.2 = entry.2.max(size);
                }
                None => {}
            }
        }
        let settled = logs.len() == 2
            && logs.values().all(|(leaves, newest, size)| {
                *size >= *leaves && newest.as_millis() > all_in.as_millis() + 7_000
            });
        if arrived && settled {
            break lines;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "not all arrived: {} lines, all events: {arrived}, logs: {logs:?}",
            lines.len()
        );
        tokio::time::sleep(Duration::from_millis(500)).await;
    };
    let checkpoints: Vec<CheckpointEvent> = lines
        .iter()
        .filter_map(|l| match carried_of(l) {
            Some(Carried::Checkpoint(cp)) => Some(cp),
            _ => None,
        })
        .collect();
    let until = checkpoints.iter().map(|c| c.signed_at).max().unwrap();
    // Each line carries its place inside what it signs, and the event's leaf is the log's.
    let places: Vec<(usize, String, u64)> = lines
        .iter()
        .enumerate()
        .filter_map(|(n, l)| match carried_of(l) {
            Some(Carried::Leaf { log, index, .. }) => Some((n, log, index)),
            _ => None,
        })
        .collect();
    assert!(places.len() >= traces.len());
    let us_log = places
        .iter()
        .find(|(n, ..)| lines[*n].contains("\"us-0-0\""))
        .map(|(_, log, _)| log.clone())
        .unwrap();
    assert!(us_log.ends_with("/us"), "{us_log}");
    assert!(
        lines
            .iter()
            .any(|l| l.contains("CEF:0|") && l.contains(" log_index="))
    );

    // The untouched export is whole, also shuffled and gzipped.
    let (ok, report) = verify_stream(&app, work.path(), &lines, false, until).await;
    assert!(ok, "{report}");
    assert_eq!(report.matches(": whole from index ").count(), 2, "{report}");
    let mut shuffled = lines.clone();
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    for i in (1..shuffled.len()).rev() {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        shuffled.swap(i, (state % (i as u64 + 1)) as usize);
    }
    let (ok, report) = verify_stream(&app, work.path(), &shuffled, true, until).await;
    assert!(ok, "shuffled: {report}");

    // An event from the middle of the US log.
    let (middle, _, index) = places
        .iter()
        .filter(|(_, log, _)| *log == us_log)
        .nth(1_200)
        .cloned()
        .unwrap();
    let mut removed = lines.clone();
    removed.remove(middle);
    let (ok, report) = verify_stream(&app, work.path(), &removed, false, until).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!("FAIL: index {index} is missing\n")),
        "{report}"
    );

    let mut altered = lines.clone();
    let line = &lines[middle];
    let trace = line
        .split("\"trace_id\":\"")
        .nth(1)
        .and_then(|rest| rest.split('"').next())
        .unwrap();
    altered[middle] = line.replace(trace, &format!("{trace}9"));
    let (ok, report) = verify_stream(&app, work.path(), &altered, false, until).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains(&format!("FAIL: index {index} is altered")),
        "{report}"
    );

    let mut doubled = lines.clone();
    doubled.push(lines[middle].clone());
    let (ok, report) = verify_stream(&app, work.path(), &doubled, false, until).await;
    assert!(ok, "an identical copy is no failure: {report}");
    assert!(
        report.contains(&format!("note: index {index} came 2 times")),
        "{report}"
    );

    // The last lines of the stream, checkpoints among them: everything received after the
    // first checkpoint signed in the last six seconds.
    let cut_at = lines
        .iter()
        .position(|l| {
            matches!(carried_of(l), Some(Carried::Checkpoint(cp))
                if cp.signed_at.as_millis() > until.as_millis() - 6_000)
        })
        .unwrap();
    let (ok, report) = verify_stream(&app, work.path(), &lines[..cut_at], false, until).await;
    assert!(!ok, "{report}");
    assert!(
        report.contains("the tail of the stream is cut off"),
        "{report}"
    );

    // A replay of the US window sends the same lines again, byte for byte.
    replay_us_since(&app, started).await;
    eventually(Duration::from_secs(60), || async {
        let job = expect_json(
            app.get("/us/v3/audit-log-replay-job", &app.admin).await,
            StatusCode::OK,
        )
        .await;
        (job["status"] == "completed").then_some(())
    })
    .await;
    let after = receiver.lines();
    let replayed: Vec<String> = after[lines.len()..]
        .iter()
        .filter(|l| l.contains("\"us-"))
        .cloned()
        .collect();
    assert!(replayed.len() >= 2_400, "{}", replayed.len());
    for line in &replayed {
        assert!(lines.contains(line), "a replayed line differs: {line}");
    }
    let with_replay: Vec<String> = lines.iter().chain(&replayed).cloned().collect();
    let (ok, report) = verify_stream(&app, work.path(), &with_replay, false, until).await;
    assert!(ok, "with the replay: {report}");
    assert!(report.contains("came 2 times"), "{report}");
    // The replay sent the window's checkpoints after its events: on its own, it verifies.
    // (Live delivery goes on meanwhile, with checkpoints signed after `until`.)
    let replay_only: Vec<String> = after[lines.len()..]
        .iter()
        .filter(|l| match carried_of(l) {
            Some(Carried::Leaf { log, .. }) => log == us_log,
            Some(Carried::Checkpoint(cp)) => cp.log == us_log && cp.signed_at <= until,
            None => false,
        })
        .cloned()
        .collect();
    assert!(
        replay_only.iter().any(|l| l.contains("Log checkpoint")),
        "the replay sent no checkpoint"
    );
    let (ok, report) = verify_stream(&app, work.path(), &replay_only, false, until).await;
    assert!(ok, "the replay alone: {report}");
}

/// `integrity` is off unless asked for (Konnect's answers stay as they were), is taken by every
/// kind, turned on and off by an update, and kept by the v2 inline webhook.
#[tokio::test]
async fn integrity_is_an_extension_field_of_every_kind() {
    let app = spawn().await;
    let create = |body: Value| app.post("/v3/audit-log-destinations", &app.admin, body);
    let plain = json!({"name": "plain", "endpoint": "https://w.example/", "authorization": "k"});
    let plain = expect_json(create(plain).await, StatusCode::CREATED).await;
    assert!(plain.get("integrity").is_none(), "{plain}");
    let datadog = json!({"name": "dd", "endpoint": "https://http-intake.logs.datadoghq.eu/api/v2/logs",
                         "authorization": "key", "kind": "datadog", "integrity": true});
    let datadog = expect_json(create(datadog).await, StatusCode::CREATED).await;
    assert_eq!(datadog["integrity"], true, "{datadog}");

    let path = format!(
        "/v3/audit-log-destinations/{}",
        plain["id"].as_str().unwrap()
    );
    let patch = |body: Value| app.request(Method::PATCH, &path, Some(&app.admin), Some(body));
    let on = expect_json(patch(json!({"integrity": true})).await, StatusCode::OK).await;
    assert_eq!(on["integrity"], true, "{on}");
    let problem = expect_problem(
        patch(json!({"integrity": "yes"})).await,
        StatusCode::BAD_REQUEST,
    )
    .await;
    assert!(problem.to_string().contains("integrity"), "{problem}");
    let off = expect_json(patch(json!({"integrity": false})).await, StatusCode::OK).await;
    assert!(off.get("integrity").is_none(), "{off}");

    // The v2 inline webhook keeps what the destinations API set on its destination.
    let v2 = json!({"endpoint": "https://v2.example/", "authorization": "k", "enabled": true});
    let resp = app
        .request(
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(&app.admin),
            Some(v2.clone()),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let list = expect_json(
        app.get("/v3/audit-log-destinations", &app.admin).await,
        StatusCode::OK,
    )
    .await;
    let managed = list["data"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["endpoint"] == "https://v2.example/")
        .unwrap()
        .clone();
    let managed_path = format!(
        "/v3/audit-log-destinations/{}",
        managed["id"].as_str().unwrap()
    );
    let resp = app
        .request(
            Method::PATCH,
            &managed_path,
            Some(&app.admin),
            Some(json!({"integrity": true})),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let resp = app
        .request(
            Method::PATCH,
            "/v2/audit-log-webhook",
            Some(&app.admin),
            Some(v2),
        )
        .await;
    expect_json(resp, StatusCode::OK).await;
    let managed = expect_json(app.get(&managed_path, &app.admin).await, StatusCode::OK).await;
    assert_eq!(managed["integrity"], true, "{managed}");
}

/// A destination with `integrity` and its org webhook (`us`) to `receiver`, in JSON; returns
/// the destination's id.
async fn integrity_webhook(app: &TestApp, receiver: &TestReceiver) -> String {
    let body = json!({
        "name": "siem", "endpoint": receiver.url(), "authorization": "Bearer siem",
        "log_format": "json", "integrity": true,
    });
    let resp = app
        .post("/v3/audit-log-destinations", &app.admin, body)
        .await;
    let id = expect_json(resp, StatusCode::CREATED).await["id"]
        .as_str()
        .unwrap()
        .to_owned();
    bind_webhook(app, "/us/v3/audit-log-webhook", &id, true).await;
    id
}

/// Puts a replay job for the `us` org webhook: from a minute before `started` to now.
async fn replay_us_since(app: &TestApp, started: Timestamp) {
    let window = json!({
        "start_at": started.saturating_sub_millis(60_000).to_rfc3339_seconds(),
        "end_at": now().to_rfc3339_millis(),
    });
    let resp = app
        .request(
            Method::PUT,
            "/us/v3/audit-log-replay-job",
            Some(&app.admin),
            Some(window),
        )
        .await;
    expect_json(resp, StatusCode::ACCEPTED).await;
}

/// Changes the first byte of leaf `index`'s hash in the store (the only log: one scope).
async fn flip_leaf(app: &TestApp, index: u64) {
    use sqlx::Connection as _;
    let at = i64::try_from(index * 32).unwrap();
    if let Some(url) = app.store_url() {
        let mut conn = sqlx::PgConnection::connect(&url).await.unwrap();
        sqlx::query(
            "UPDATE log_chunks SET hashes = set_byte(hashes, $1, get_byte(hashes, $1) # 1)
             WHERE number = 0",
        )
        .bind(i32::try_from(at).unwrap())
        .execute(&mut conn)
        .await
        .unwrap();
        return;
    }
    let db = app.data_dir().join("auditrelay.db");
    let mut conn = sqlx::SqliteConnection::connect(&format!("sqlite://{}", db.display()))
        .await
        .unwrap();
    let mut hashes: Vec<u8> = sqlx::query_scalar("SELECT hashes FROM log_chunks WHERE number = 0")
        .fetch_one(&mut conn)
        .await
        .unwrap();
    hashes[at as usize] ^= 1;
    sqlx::query("UPDATE log_chunks SET hashes = ? WHERE number = 0")
        .bind(hashes)
        .execute(&mut conn)
        .await
        .unwrap();
}

/// An event changed in the store after the log took it is not signed with the leaf hash of
/// what it was: a replay refuses it, and the refused list says why. (Here the leaf is the one
/// changed, which is the same disagreement seen from the other side.)
#[tokio::test]
async fn an_event_that_no_longer_matches_its_leaf_is_refused_not_signed() {
    let app = TestApp::spawn_with(|c| {
        crate::support::dev(c);
        c.integrity.checkpoint_interval = Duration::from_secs(1);
    })
    .await;
    let receiver = TestReceiver::http().await;
    integrity_webhook(&app, &receiver).await;
    let started = now();
    let events: Vec<Value> = (0..20)
        .map(|i| authorization(now(), &format!("changed-{i}")))
        .collect();
    let resp = app
        .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
        .await;
    assert_eq!(resp.status(), StatusCode::ACCEPTED);
    eventually(Duration::from_secs(30), || async {
        let lines = receiver.lines();
        (0..20)
            .all(|i| {
                lines
                    .iter()
                    .any(|l| l.contains(&format!("\"changed-{i}\"")))
            })
            .then_some(())
    })
    .await;
    // The first line's place, and its leaf changed in the store.
    let lines = receiver.lines();
    let first = lines.iter().find(|l| l.contains("\"changed-0\"")).unwrap();
    let Some(Carried::Leaf { index, .. }) = carried_of(first) else {
        panic!("{first}")
    };
    flip_leaf(&app, index).await;

    replay_us_since(&app, started).await;
    let refused = eventually(Duration::from_secs(30), || async {
        let list = expect_json(
            app.get("/v3/audit-log-webhook/refused-events", &app.admin)
                .await,
            StatusCode::OK,
        )
        .await;
        let data = list["data"].as_array().unwrap().clone();
        (!data.is_empty()).then_some(data)
    })
    .await;
    assert_eq!(refused.len(), 1, "{refused:?}");
    let reason = refused[0]["reason"].as_str().unwrap_or_default();
    assert!(
        reason.contains(&format!("no longer matches leaf {index}")),
        "{}",
        refused[0]
    );
    // The others went again, byte for byte.
    let again = receiver.lines();
    let resent = again[lines.len()..]
        .iter()
        .filter(|l| l.contains("\"changed-"))
        .count();
    assert_eq!(resent, 19);
}

/// Turning `integrity` off and on again starts the stream's checkpoints afresh: the next one
/// sent is the newest, not every one signed while the lines carried no places.
#[tokio::test]
async fn integrity_turned_on_again_starts_its_checkpoints_afresh() {
    let app = TestApp::spawn_with(|c| {
        crate::support::dev(c);
        c.integrity.checkpoint_interval = Duration::from_secs(1);
    })
    .await;
    let receiver = TestReceiver::http().await;
    let id = integrity_webhook(&app, &receiver).await;
    let scope = us(app.org());
    let cursor = || async {
        let webhook = app.store().get_webhook(&scope).await.unwrap().unwrap();
        webhook.checkpoint_cursor
    };
    eventually(Duration::from_secs(30), || async { cursor().await }).await;
    let path = format!("/v3/audit-log-destinations/{id}");
    let patch = |on: bool| {
        app.request(
            Method::PATCH,
            &path,
            Some(&app.admin),
            Some(json!({"integrity": on})),
        )
    };
    expect_json(patch(false).await, StatusCode::OK).await;
    let off_from = cursor().await.unwrap();
    // Checkpoints go on being signed meanwhile.
    eventually(Duration::from_secs(30), || async {
        let newest = app.store().latest_checkpoint(&scope).await.unwrap()?;
        (newest.id > off_from + 2).then_some(())
    })
    .await;
    expect_json(patch(true).await, StatusCode::OK).await;
    assert_eq!(cursor().await, None, "the stream's checkpoints start again");
    let newest = app
        .store()
        .latest_checkpoint(&scope)
        .await
        .unwrap()
        .unwrap();
    let next = eventually(Duration::from_secs(30), || async { cursor().await }).await;
    assert!(
        next >= newest.id,
        "{next} < {}: an old checkpoint was sent",
        newest.id
    );
}

/// A stream that starts in a log that already has events and checkpoints (a webhook enabled
/// later) does not send the checkpoint its first events had reached: its first checkpoint
/// covers its first line, and `verify` proves it whole from there.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_started_in_a_busy_log_verifies_whole() {
    let app = TestApp::spawn_with(|c| {
        crate::support::dev(c);
        c.integrity.checkpoint_interval = Duration::from_secs(1);
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let scope = us(app.org());
    let ingest = |tag: &'static str| {
        let events: Vec<Value> = (0..300)
            .map(|i| authorization(now(), &format!("{tag}-{i}")))
            .collect();
        app.ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
    };
    assert_eq!(ingest("before").await.status(), StatusCode::ACCEPTED);
    eventually(Duration::from_secs(30), || async {
        let latest = app.store().latest_checkpoint(&scope).await.unwrap()?;
        (latest.size() >= 300).then_some(())
    })
    .await;
    let receiver = TestReceiver::http().await;
    integrity_webhook(&app, &receiver).await;
    assert_eq!(ingest("after").await.status(), StatusCode::ACCEPTED);
    let traces: Vec<String> = (0..300).map(|i| format!("after-{i}")).collect();
    let (lines, until) = settled_stream(|| receiver.lines(), &traces, 1).await;
    assert!(!lines.iter().any(|l| l.contains("\"before-")));
    let (ok, report) = verify_stream(&app, work.path(), &lines, false, until).await;
    assert!(ok, "{report}");
    assert!(report.contains(": whole from index "), "{report}");
}

/// Kinds that frame each record from its event (Elasticsearch's documents, Datadog's entries,
/// Splunk's event envelopes, Loki's streams) carry checkpoint events as records of their own,
/// and the lines the SIEM indexed verify whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_kind_carries_the_log_and_verifies_whole() {
    use crate::support::siem::{SiemKind, TOKEN, TestSiem};
    for (kind, name, index, credential) in [
        (
            SiemKind::Elasticsearch,
            "elasticsearch",
            "logs-audit",
            Some(format!("ApiKey {TOKEN}")),
        ),
        (SiemKind::Datadog, "datadog", "", Some(TOKEN.to_owned())),
        (
            SiemKind::SplunkHec,
            "splunk_hec",
            "event",
            Some(TOKEN.to_owned()),
        ),
        (SiemKind::Loki, "loki", "", None),
    ] {
        let app = TestApp::spawn_with(|c| {
            crate::support::dev(c);
            c.integrity.checkpoint_interval = Duration::from_secs(1);
        })
        .await;
        let work = tempfile::tempdir().unwrap();
        let siem = TestSiem::start(kind).await;
        let mut body = json!({
            "name": "siem", "endpoint": siem.url(index), "log_format": "json", "kind": name,
            "integrity": true,
        });
        if let Some(credential) = credential {
            body["authorization"] = json!(credential);
        }
        let resp = app
            .post("/v3/audit-log-destinations", &app.admin, body)
            .await;
        let id = expect_json(resp, StatusCode::CREATED).await["id"]
            .as_str()
            .unwrap()
            .to_owned();
        bind_webhook(&app, "/us/v3/audit-log-webhook", &id, true).await;
        let events: Vec<Value> = (0..200)
            .map(|i| authorization(now(), &format!("{name}-{i}")))
            .collect();
        let resp = app
            .ingest_ndjson("/us/v1/events", &app.admin, ndjson(&events))
            .await;
        assert_eq!(resp.status(), StatusCode::ACCEPTED);
        let traces: Vec<String> = (0..200).map(|i| format!("{name}-{i}")).collect();
        // Two checkpoints at the full size: the interval to it is recomputed.
        let indexed = || siem.lines().into_values().collect();
        let (lines, until) = settled_stream(indexed, &traces, 2).await;
        let (ok, report) = verify_stream(&app, work.path(), &lines, false, until).await;
        assert!(ok, "{name}: {report}");
        assert!(report.contains(": whole from index "), "{name}: {report}");
    }
}

/// The `syslog` kind through a real rsyslog (RFC 5425 over TLS): each checkpoint event is a
/// message of its own with MSGID `checkpoint`, each event's line one with its event's, and the
/// lines rsyslog wrote (a portal's log, CEF) verify whole.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_through_rsyslog_verifies_whole() {
    use crate::support::rsyslog::{ClientAuth, Rsyslog};
    use crate::syslog::{bind, dev, ingest};
    let Some(rsyslog) = Rsyslog::start(ClientAuth::Anonymous).await else {
        return;
    };
    let app = TestApp::spawn_with(|c| {
        dev(c);
        c.integrity.checkpoint_interval = Duration::from_secs(1);
    })
    .await;
    let work = tempfile::tempdir().unwrap();
    let settings = json!({"hostname": "relay-1"});
    let portal = bind(&app, "syslog", &rsyslog.endpoint(), settings, "", true).await;
    let traces = ingest(&app, portal, "syslog", 200).await;
    // The messages with their MSGIDs, from the one file rsyslog writes them to together.
    let lines = || rsyslog.messages().into_iter().map(|(_, msg)| msg).collect();
    let (lines, until) = settled_stream(lines, &traces, 2).await;
    let (ok, report) = verify_stream(&app, work.path(), &lines, false, until).await;
    assert!(ok, "{report}\n{}", rsyslog.log());
    assert!(report.contains(": whole from index "), "{report}");
    // Each line once, whatever a reconnection may have sent again.
    let messages: HashSet<(String, String)> = rsyslog.messages().into_iter().collect();
    let mut msgids = HashMap::new();
    for (msgid, line) in messages {
        let carried = match carried_of(&line) {
            Some(Carried::Checkpoint(_)) => "checkpoint",
            Some(Carried::Leaf { .. }) => "event",
            None => panic!("a line without its place: {line}"),
        };
        *msgids.entry((carried, msgid)).or_insert(0) += 1;
    }
    let checkpoints = msgids.get(&("checkpoint", "checkpoint".to_owned()));
    assert!(checkpoints.is_some_and(|n| *n >= 2), "{msgids:?}");
    assert_eq!(
        msgids.get(&("event", "authentication".to_owned())),
        Some(&200),
        "{msgids:?}"
    );
    assert_eq!(msgids.len(), 2, "{msgids:?}");
}

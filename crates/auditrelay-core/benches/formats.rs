//! What a delivered line costs, one core, in events/s (every benchmark has a `Throughput` in
//! events, so criterion prints the rate):
//!
//! - `line/render/<format>`: rendering an event;
//! - `line/raw_sign/<format>`: ed25519-dalek itself signing the very bytes the renderer
//!   produces, so that `render_sign ÷ raw_sign` is what formatting costs beside the signature;
//! - `line/render_sign/<format>`: a signed line, as delivery makes it;
//! - `line/parse/<format>`: reading a signed line back;
//! - `share_125/alone/<format>` and `share_125/together/<format>`: a share's 125 lines (a
//!   1,000-event batch on two cores), each signed alone, and signed together as delivery signs
//!   them (`Unsigned`, DECISIONS.md S29);
//! - `stored/…`: what delivery does per stored event before gzip, from the bytes the store
//!   holds: decoding the body into an `Event` (`auditrelay_core::stored`, the store's codec),
//!   then rendering, then signing;
//! - `batch_1000/gzip/<format>`: a 1000-line delivery batch built and gzipped at the level
//!   delivery uses (`GZIP_LEVEL`), and at the default level 6 for comparison;
//! - `batch_1000/stored_to_batch/<format>`: the whole pure part of a delivery batch, 1000
//!   stored events decoded, signed and gzipped; `stored_to_batch_integrity/<format>` the same
//!   for a destination with `integrity` (each event's id and leaf checked, its place in the line);
//! - `log/leaf_hash`: what the tamper-evident log spends per event (its leaf, the canonical
//!   entry with id and place, hashed), and `log/stored_to_leaf` the same from the stored bytes,
//!   as the log's job does it; `log/signed_line` is `line/render_sign/cef` beside them.
//!
//! The figure that matters is render + sign against raw signing: the product goal is that
//! Ed25519 is the bottleneck, so the ratio should stay at or above 0.9.
//!
//! `cargo test --benches` runs each benchmark once, as a check that they all work.

use std::hint::black_box;

use auditrelay_core::batch::{BatchBuilder, BatchLimits, GZIP_LEVEL};
use auditrelay_core::format::{
    Format, Unsigned, parse_line, render_event, sign_event, sign_event_with_id,
};
use auditrelay_core::ids::event_id;
use auditrelay_core::integrity::{LogPlace, event_leaf_hash};
use auditrelay_core::stored;
use auditrelay_core::{Event, EventDetail, FormatConfig, OrgId, Region, SigningKey, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use ed25519_dalek::Signer as _;

/// A typical access event: the longest of the three types.
fn event() -> Event {
    Event {
        ts: Timestamp::from_millis(1_750_688_927_556),
        org_id: OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: Some("a3d2699a-0ed3-4417-bb10-d8e74a1513a4".into()),
        principal_name: Some("Ada Lovelace".into()),
        actor_id: None,
        client_ip: Some("172.71.232.22".into()),
        uri: Some("/konnect-api/api/control_planes/1c026712/services".into()),
        user_agent: Some("grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)".into()),
        trace_id: Some("3360194145499877252".into()),
        detail: EventDetail::Access {
            method: "POST".into(),
            query: "{\"end\":\"1684270800\",\"start\":\"1684098000\"}".into(),
            status_code: 201,
            kong_initiated: None,
        },
    }
}

fn formats(c: &mut Criterion) {
    let event = event();
    let cfg = FormatConfig::default();
    let key = SigningKey::from_seed(&[42; 32]);
    let dalek = ed25519_dalek::SigningKey::from_bytes(&[42; 32]);
    let mut buf = Vec::with_capacity(1024);

    let mut group = c.benchmark_group("line");
    group.throughput(Throughput::Elements(1));
    for format in Format::ALL {
        group.bench_function(format!("render/{format}"), |b| {
            b.iter(|| {
                buf.clear();
                render_event(format, black_box(&event), &cfg, &mut buf);
                black_box(buf.len())
            })
        });
    }
    for format in Format::ALL {
        let mut unsigned = Vec::new();
        render_event(format, &event, &cfg, &mut unsigned);
        group.bench_function(format!("raw_sign/{format}"), |b| {
            b.iter(|| black_box(dalek.sign(black_box(&unsigned)).to_bytes()))
        });
        group.bench_function(format!("render_sign/{format}"), |b| {
            b.iter(|| {
                buf.clear();
                sign_event(format, black_box(&event), &cfg, &key, &mut buf);
                black_box(buf.len())
            })
        });
        let mut signed = Vec::new();
        sign_event(format, &event, &cfg, &key, &mut signed);
        group.bench_function(format!("parse/{format}"), |b| {
            b.iter(|| black_box(parse_line(black_box(&signed)).is_ok()))
        });
    }
    group.finish();

    let mut group = c.benchmark_group("share_125");
    group.throughput(Throughput::Elements(125));
    let share: Vec<Event> = (0..125)
        .map(|i| {
            let mut e = event.clone();
            e.ts = e.ts.saturating_add_millis(i * 7);
            e
        })
        .collect();
    for format in Format::ALL {
        group.bench_function(format!("alone/{format}"), |b| {
            b.iter(|| {
                buf.clear();
                for event in &share {
                    sign_event(format, black_box(event), &cfg, &key, &mut buf);
                }
                black_box(buf.len())
            })
        });
        group.bench_function(format!("together/{format}"), |b| {
            b.iter(|| {
                buf.clear();
                let mut unsigned = Unsigned::new(format, share.len());
                for event in &share {
                    unsigned.push_event(black_box(event), None, None, &cfg);
                }
                let signatures = unsigned.sign(&key);
                for line in 0..share.len() {
                    signatures.write(line, &mut buf);
                }
                black_box(buf.len())
            })
        });
    }
    group.finish();

    // The stored form of the same event, decoded as delivery decodes it (the store's rows hold
    // `ts` and `kind` as columns and the rest as this body).
    let mut body = Vec::new();
    stored::encode_body(&event, &mut body);
    let row = stored::Row {
        org_id: event.org_id,
        region: &event.region,
        portal_id: event.portal_id,
        ts: event.ts,
        kind: stored::kind_code(event.event_type()),
    };
    let decode = |row: stored::Row<'_>| stored::decode_event(row, &body).expect("it decodes");
    assert_eq!(decode(row), event, "the stored form round-trips");
    let mut group = c.benchmark_group("stored");
    group.throughput(Throughput::Elements(1));
    group.bench_function("decode", |b| b.iter(|| black_box(decode(black_box(row)))));
    for format in Format::ALL {
        group.bench_function(format!("decode_render/{format}"), |b| {
            b.iter(|| {
                buf.clear();
                let event = decode(black_box(row));
                render_event(format, &event, &cfg, &mut buf);
                black_box(buf.len())
            })
        });
        group.bench_function(format!("decode_render_sign/{format}"), |b| {
            b.iter(|| {
                buf.clear();
                let event = decode(black_box(row));
                sign_event(format, &event, &cfg, &key, &mut buf);
                black_box(buf.len())
            })
        });
    }
    group.finish();

    // Gzip through the delivery path itself: lines pushed one by one into a `BatchBuilder`,
    // which compresses as they arrive. The sizes go to stderr because the choice of
    // `GZIP_LEVEL` trades time against bytes on the wire.
    let mut group = c.benchmark_group("batch_1000");
    group.throughput(Throughput::Elements(1000));
    for format in Format::ALL {
        let lines: Vec<Vec<u8>> = (0..1000)
            .map(|i| {
                let mut e = event.clone();
                e.ts = e.ts.saturating_add_millis(i * 7);
                let mut line = Vec::new();
                sign_event(format, &e, &cfg, &key, &mut line);
                line
            })
            .collect();
        let build = |mut batch: BatchBuilder<'_>| {
            for (seq, line) in (0..).zip(&lines) {
                batch.push(seq, black_box(line)).unwrap();
            }
            batch.finish().unwrap()
        };
        // 1,000 OCSF lines (about 1 KB each) pass the default 1 MiB: room for them all, as
        // with a larger `delivery.batch_max_bytes`.
        let limits = BatchLimits {
            max_bytes: 4 << 20,
            ..BatchLimits::default()
        };
        let delivered = build(BatchBuilder::new(limits));
        let level6 = build(BatchBuilder::with_level(limits, 6));
        eprintln!(
            "batch_1000/{format}: {} bytes plain, gzip level {GZIP_LEVEL} (delivery's): {}, level 6: {}",
            delivered.uncompressed_bytes,
            delivered.body.len(),
            level6.body.len()
        );
        group.bench_function(format!("gzip/{format}"), |b| {
            b.iter(|| black_box(build(BatchBuilder::new(limits)).body.len()))
        });
        if GZIP_LEVEL != 6 {
            group.bench_function(format!("gzip_level6/{format}"), |b| {
                b.iter(|| black_box(build(BatchBuilder::with_level(limits, 6)).body.len()))
            });
        }
        // 1000 stored events, a millisecond apart, through decode, render + sign and gzip:
        // a delivery batch's CPU without the SQLite read and the HTTP POST.
        let rows: Vec<stored::Row<'_>> = (0..1000)
            .map(|i| stored::Row {
                ts: row.ts.saturating_add_millis(i),
                ..row
            })
            .collect();
        group.bench_function(format!("stored_to_batch/{format}"), |b| {
            let mut line = Vec::with_capacity(1024);
            b.iter(|| {
                let mut batch = BatchBuilder::new(limits);
                for (seq, row) in (0..).zip(&rows) {
                    line.clear();
                    let event = decode(black_box(*row));
                    sign_event(format, &event, &cfg, &key, &mut line);
                    batch.push(seq, &line).unwrap();
                }
                black_box(batch.finish().unwrap().body.len())
            })
        });
        // The same for a destination with `integrity`, as a lane does it: each event's id,
        // its leaf checked against the one the log took, and its place in the line.
        let log: std::sync::Arc<str> =
            "auditrelay/0123456789abcdef0123456789abcdef/998db3e4-5cb7-4dd5-b51c-9878096a6999/us"
                .into();
        let store = uuid::Uuid::from_u128(7);
        let places: Vec<LogPlace> = (0..)
            .zip(&rows)
            .map(|(seq, row)| {
                let event = decode(*row);
                let id = event_id(&store, seq, event.ts);
                let index = 1_000_000 + seq as u64;
                let leaf_hash = event_leaf_hash(&log, index, &id, &event);
                LogPlace {
                    log: log.clone(),
                    index,
                    leaf_hash,
                }
            })
            .collect();
        group.bench_function(format!("stored_to_batch_integrity/{format}"), |b| {
            let mut line = Vec::with_capacity(1024);
            b.iter(|| {
                let mut batch = BatchBuilder::new(limits);
                for ((seq, row), place) in (0..).zip(&rows).zip(&places) {
                    line.clear();
                    let event = decode(black_box(*row));
                    let id = event_id(&store, seq, event.ts);
                    let leaf = event_leaf_hash(&place.log, place.index, &id, &event);
                    assert_eq!(leaf, place.leaf_hash);
                    let id = (format == Format::Ocsf).then_some(id);
                    sign_event_with_id(format, &event, id, Some(place), &cfg, &key, &mut line);
                    batch.push(seq, &line).unwrap();
                }
                black_box(batch.finish().unwrap().body.len())
            })
        });
    }
    group.finish();
}

/// The tamper-evident log's work per event, beside a signed line's.
fn log(c: &mut Criterion) {
    let event = event();
    let id = uuid::Uuid::from_u128(7);
    let origin = "auditrelay/0123456789abcdef0123456789abcdef/org/us";
    let mut row = Vec::new();
    stored::encode_body(&event, &mut row);
    let columns = || stored::Row {
        org_id: event.org_id,
        region: &event.region,
        portal_id: None,
        ts: event.ts,
        kind: stored::kind_code(event.event_type()),
    };
    let key = SigningKey::from_seed(&[42; 32]);
    let cfg = FormatConfig::default();
    let mut buf = Vec::with_capacity(1024);
    let mut group = c.benchmark_group("log");
    group.throughput(Throughput::Elements(1));
    group.bench_function("leaf_hash", |b| {
        b.iter(|| black_box(event_leaf_hash(origin, 12_345, &id, black_box(&event))))
    });
    group.bench_function("stored_to_leaf", |b| {
        b.iter(|| {
            let event = stored::decode_event(columns(), black_box(&row)).unwrap();
            black_box(event_leaf_hash(origin, 12_345, &id, &event))
        })
    });
    group.bench_function("signed_line", |b| {
        b.iter(|| {
            buf.clear();
            sign_event(Format::Cef, black_box(&event), &cfg, &key, &mut buf);
            black_box(buf.len())
        })
    });
    group.finish();
}

criterion_group!(benches, formats, log);
criterion_main!(benches);

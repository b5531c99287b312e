//! What a delivered line costs: rendering per format, raw Ed25519 signing of the same bytes,
//! render + sign per format, parsing, and a 1000-line delivery batch built and gzipped at levels 1
//! and 6. Throughput is in events.
//!
//! The figure that matters is render + sign against raw signing: the product goal is that
//! Ed25519 is the bottleneck, so the ratio should stay at or above 0.9.

use std::hint::black_box;

use auditrelay_core::batch::{BatchBuilder, BatchLimits};
use auditrelay_core::format::{Format, parse_line, render_event, sign_event};
use auditrelay_core::{Event, EventDetail, FormatConfig, OrgId, Region, SigningKey, Timestamp};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};

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
            b.iter(|| black_box(key.sign(black_box(&unsigned))))
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

    // Gzip levels through the delivery path itself: lines pushed one by one into a
    // `BatchBuilder`, which compresses as they arrive. The sizes go to stderr because the
    // choice of `GZIP_LEVEL` trades time against bytes on the wire.
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
        let build = |level: u32| {
            let mut batch = BatchBuilder::with_level(BatchLimits::default(), level);
            for (seq, line) in (0..).zip(&lines) {
                batch.push(seq, black_box(line)).unwrap();
            }
            batch.finish().unwrap()
        };
        let plain = build(1).uncompressed_bytes;
        let sizes = [1, 6].map(|level| build(level).body.len());
        eprintln!(
            "batch_1000/{format}: {plain} bytes plain, gzip level 1: {}, level 6: {}",
            sizes[0], sizes[1]
        );
        for level in [1, 6] {
            group.bench_function(format!("gzip_level{level}/{format}"), |b| {
                b.iter(|| black_box(build(level).body.len()))
            });
        }
    }
    group.finish();
}

criterion_group!(benches, formats);
criterion_main!(benches);

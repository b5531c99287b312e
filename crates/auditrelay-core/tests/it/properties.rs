//! Properties over arbitrary events and header configurations, in every format: one line with no
//! raw control character, exact round trip, a signature that verifies, and no single-byte change
//! that still verifies.

use auditrelay_core::format::{
    Format, Record, Unsigned, is_control, parse_line, render_event, render_record, sign_event,
    sign_event_with_id, sign_record, verify_line,
};
use auditrelay_core::integrity::LogPlace;
use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, FormatConfig, OrgId, PortalId,
    Region, SigningKey, Timestamp,
};
use proptest::prelude::*;
use uuid::Uuid;

/// Any Unicode, plus text dense in the characters every format has to escape.
fn text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<String>(),
        "[a-z |=\\\\\n\r\t\"{}:,\u{0}\u{1b}\u{1f}\u{7f}\u{80}\u{85}\u{9f}é\u{2028}\u{2029}😀]{0,12}",
        Just(String::new()),
        Just("sig=AAAA".to_owned()),
        Just(" CEF:0|".to_owned()),
    ]
}

fn opt_text() -> impl Strategy<Value = Option<String>> {
    proptest::option::of(text())
}

fn detail() -> impl Strategy<Value = EventDetail> {
    prop_oneof![
        (
            proptest::sample::select(AuthenticationOutcome::ALL),
            proptest::sample::select(AuthenticationType::ALL),
        )
            .prop_map(|(outcome, authentication_type)| {
                EventDetail::Authentication {
                    outcome,
                    authentication_type,
                }
            }),
        (text(), text(), text(), any::<bool>(), any::<Option<bool>>()).prop_map(
            |(service, resource, action, granted, kong_initiated)| EventDetail::Authorization {
                service,
                resource,
                action,
                granted,
                kong_initiated,
            }
        ),
        (text(), text(), any::<u16>(), any::<Option<bool>>()).prop_map(
            |(method, query, status_code, kong_initiated)| EventDetail::Access {
                method,
                query,
                status_code,
                kong_initiated,
            }
        ),
    ]
}

fn event() -> impl Strategy<Value = Event> {
    (
        (any::<i64>(), any::<u128>(), any::<Option<u128>>()),
        (opt_text(), opt_text(), opt_text(), opt_text()),
        (opt_text(), opt_text(), opt_text()),
        detail(),
    )
        .prop_map(
            |(
                (ts, org, portal),
                (principal_id, principal_name, actor_id, client_ip),
                (uri, user_agent, trace_id),
                detail,
            )| Event {
                ts: Timestamp::from_millis(ts),
                org_id: OrgId::from_uuid(Uuid::from_u128(org)),
                region: Region::parse("eu").unwrap(),
                portal_id: portal.map(|p| PortalId::from_uuid(Uuid::from_u128(p))),
                principal_id,
                principal_name,
                actor_id,
                client_ip,
                uri,
                user_agent,
                trace_id,
                detail,
            },
        )
}

fn config() -> impl Strategy<Value = FormatConfig> {
    prop_oneof![
        3 => Just(FormatConfig::default()),
        1 => (text(), text(), text(), text(), text()).prop_map(
            |(vendor, org_product, portal_product, host, version)| FormatConfig {
                vendor,
                org_product,
                portal_product,
                host,
                version,
            }
        ),
    ]
}

fn format() -> impl Strategy<Value = Format> {
    proptest::sample::select(Format::KONNECT.to_vec())
}

fn key() -> impl Strategy<Value = SigningKey> {
    any::<[u8; 32]>().prop_map(|seed| SigningKey::from_seed(&seed))
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn signed_lines_round_trip_and_verify(
        event in event(),
        cfg in config(),
        format in format(),
        key in key(),
    ) {
        let record = Record::from_event(&event, &cfg);
        let mut line = Vec::new();
        sign_event(format, &event, &cfg, &key, &mut line);

        let text = std::str::from_utf8(&line).expect("lines are UTF-8");
        prop_assert!(
            !text.chars().any(is_control),
            "a raw control character in {}", text.escape_debug()
        );
        let parsed = parse_line(&line).map_err(|e| {
            TestCaseError::fail(format!("{e}: {}", String::from_utf8_lossy(&line)))
        })?;
        prop_assert_eq!(parsed.format, format);
        prop_assert_eq!(&parsed.record, &record);
        let expected_host = (format == Format::Cef).then(|| cfg.host.clone());
        prop_assert_eq!(parsed.host, expected_host);
        let kid = verify_line(&line, std::slice::from_ref(key.public_key()));
        prop_assert_eq!(kid.as_ref(), Ok(key.kid()));

        // Rendering the owned record gives the very same bytes as rendering the event.
        let mut again = Vec::new();
        sign_record(format, &record, &cfg.host, &key, &mut again);
        prop_assert_eq!(&again, &line);
        let mut unsigned = Vec::new();
        render_event(format, &event, &cfg, &mut unsigned);
        let mut unsigned_record = Vec::new();
        render_record(format, &record, &cfg.host, &mut unsigned_record);
        prop_assert_eq!(&unsigned, &unsigned_record);
        prop_assert_eq!(&parse_line(&unsigned).unwrap().record, &record);
    }

    /// A batch's lines, signed together, are the lines signed one by one, in every format, with
    /// and without ids and places in the log.
    #[test]
    fn lines_signed_together_are_the_lines_signed_alone(
        events in proptest::collection::vec((event(), any::<Option<u128>>(), any::<Option<(u64, [u8; 32])>>()), 0..12),
        cfg in config(),
        format in proptest::sample::select(Format::ALL.to_vec()),
        key in key(),
    ) {
        let place = |p: &Option<(u64, [u8; 32])>| p.map(|(index, leaf_hash)| LogPlace {
            log: "auditrelay.test/log".into(),
            index,
            leaf_hash,
        });
        let mut unsigned = Unsigned::new(format, events.len());
        let indexes: Vec<usize> = events
            .iter()
            .map(|(event, id, at)| {
                unsigned.push_event(event, id.map(Uuid::from_u128), place(at).as_ref(), &cfg)
            })
            .collect();
        let signatures = unsigned.sign(&key);
        for ((event, id, at), index) in events.iter().zip(indexes) {
            let mut together = Vec::new();
            signatures.write(index, &mut together);
            let mut alone = Vec::new();
            let id = id.map(Uuid::from_u128);
            sign_event_with_id(format, event, id, place(at).as_ref(), &cfg, &key, &mut alone);
            prop_assert_eq!(
                String::from_utf8_lossy(&together),
                String::from_utf8_lossy(&alone)
            );
        }
    }

    #[test]
    fn any_single_byte_change_is_detected(
        event in event(),
        format in format(),
        key in key(),
        at in any::<proptest::sample::Index>(),
        flip in 1u8..=255,
    ) {
        let mut line = Vec::new();
        sign_event(format, &event, &FormatConfig::default(), &key, &mut line);
        let i = at.index(line.len());
        line[i] ^= flip;
        prop_assert!(
            verify_line(&line, std::slice::from_ref(key.public_key())).is_err(),
            "byte {} ^ {:#x} still verifies: {}", i, flip, String::from_utf8_lossy(&line)
        );
    }

    #[test]
    fn parser_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = parse_line(&bytes);
    }

    #[test]
    fn parser_never_panics_on_near_misses(
        event in event(),
        format in format(),
        at in any::<proptest::sample::Index>(),
        cut in any::<bool>(),
        byte in prop_oneof![Just(b'\\'), Just(b'|'), Just(b'='), Just(b' '), Just(b'"'), Just(b'{'), Just(b'}'), any::<u8>()],
    ) {
        let mut line = Vec::new();
        sign_event(format, &event, &FormatConfig::default(), &SigningKey::from_seed(&[1; 32]), &mut line);
        let i = at.index(line.len());
        if cut { line.truncate(i) } else { line[i] = byte }
        let _ = parse_line(&line);
    }
}

//! Arbitrary events and header configurations: every format renders one line that parses back
//! to the same record and verifies.

#![no_main]

use arbitrary::Arbitrary;
use auditrelay_core::format::{Format, Record, parse_line, sign_event, verify_line};
use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, FormatConfig, OrgId, PortalId,
    Region, SigningKey, Timestamp,
};
use libfuzzer_sys::fuzz_target;
use uuid::Uuid;

#[derive(Debug, Arbitrary)]
enum Detail {
    Authentication {
        successful: bool,
        outcome: u8,
        kind: u8,
    },
    Authorization {
        service: String,
        resource: String,
        action: String,
        granted: bool,
        kong_initiated: Option<bool>,
    },
    Access {
        method: String,
        query: String,
        status_code: u16,
        kong_initiated: Option<bool>,
    },
}

#[derive(Debug, Arbitrary)]
struct Input {
    ts: i64,
    org: u128,
    portal: Option<u128>,
    principal_id: Option<String>,
    principal_name: Option<String>,
    actor_id: Option<String>,
    client_ip: Option<String>,
    uri: Option<String>,
    user_agent: Option<String>,
    trace_id: Option<String>,
    detail: Detail,
    config: Option<(String, String, String, String, String)>,
    seed: [u8; 32],
}

fuzz_target!(|input: Input| {
    let detail = match input.detail {
        Detail::Authentication {
            successful,
            outcome,
            kind,
        } => EventDetail::Authentication {
            successful,
            outcome: AuthenticationOutcome::ALL
                [usize::from(outcome) % AuthenticationOutcome::ALL.len()],
            authentication_type: AuthenticationType::ALL
                [usize::from(kind) % AuthenticationType::ALL.len()],
        },
        Detail::Authorization {
            service,
            resource,
            action,
            granted,
            kong_initiated,
        } => EventDetail::Authorization {
            service,
            resource,
            action,
            granted,
            kong_initiated,
        },
        Detail::Access {
            method,
            query,
            status_code,
            kong_initiated,
        } => EventDetail::Access {
            method,
            query,
            status_code,
            kong_initiated,
        },
    };
    let event = Event {
        ts: Timestamp::from_millis(input.ts),
        org_id: OrgId::from_uuid(Uuid::from_u128(input.org)),
        region: Region::parse("us").expect("a valid region"),
        portal_id: input
            .portal
            .map(|p| PortalId::from_uuid(Uuid::from_u128(p))),
        principal_id: input.principal_id,
        principal_name: input.principal_name,
        actor_id: input.actor_id,
        client_ip: input.client_ip,
        uri: input.uri,
        user_agent: input.user_agent,
        trace_id: input.trace_id,
        detail,
    };
    let cfg = match input.config {
        Some((vendor, org_product, portal_product, host, version)) => FormatConfig {
            vendor,
            org_product,
            portal_product,
            host,
            version,
        },
        None => FormatConfig::default(),
    };
    let key = SigningKey::from_seed(&input.seed);
    let record = Record::from_event(&event, &cfg);
    // OCSF lines do not read back as a record; they verify, in any key order.
    let mut ocsf = Vec::new();
    sign_event(Format::Ocsf, &event, &cfg, &key, &mut ocsf);
    assert!(!ocsf.contains(&b'\n') && !ocsf.contains(&b'\r'), "ocsf: raw newline");
    assert_eq!(
        verify_line(&ocsf, std::slice::from_ref(key.public_key())).as_ref(),
        Ok(key.kid()),
        "ocsf"
    );
    for format in Format::KONNECT {
        let mut line = Vec::new();
        sign_event(format, &event, &cfg, &key, &mut line);
        assert!(
            !line.contains(&b'\n') && !line.contains(&b'\r'),
            "{format}: raw newline"
        );
        let parsed = parse_line(&line)
            .unwrap_or_else(|e| panic!("{format}: {e}: {}", String::from_utf8_lossy(&line)));
        assert_eq!(parsed.record, record, "{format}");
        assert_eq!(
            verify_line(&line, std::slice::from_ref(key.public_key())).as_ref(),
            Ok(key.kid()),
            "{format}"
        );
    }
});

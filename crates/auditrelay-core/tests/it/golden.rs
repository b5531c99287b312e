//! Pinned bytes for every format × event type, signed with the fixed test key.
//!
//! Ed25519 is deterministic, so a signature is as pinnable as the text it covers. Each line was
//! written from the implementation once and then checked by eye against DECISIONS.md K9 and
//! DECISIONS.md D6–D8: key order and presence per type, header and extension escaping, JSON typing,
//! `sig` placement.

use auditrelay_core::format::{Format, parse_line, sign_event, verify_line};
use auditrelay_core::{Event, FormatConfig};

use crate::support::{access, authorization, key, org_authentication, portal_authentication};

#[track_caller]
fn check(format: Format, event: Event, expected: &str) {
    let mut line = b"previous line\n".to_vec();
    sign_event(format, &event, &FormatConfig::default(), &key(), &mut line);
    // The renderer appends: what was in the buffer stays, and no newline is added.
    let line = line.strip_prefix(b"previous line\n").unwrap();
    assert_eq!(String::from_utf8_lossy(line), expected);

    let kid = verify_line(line, std::slice::from_ref(key().public_key())).unwrap();
    assert_eq!(&kid, key().kid());
    assert_eq!(parse_line(line).unwrap().format, format);

    // Every single-byte change breaks the line, wherever it falls.
    let mut tampered = line.to_vec();
    for i in 0..tampered.len() {
        let original = tampered[i];
        tampered[i] ^= 0x01;
        assert!(
            verify_line(&tampered, std::slice::from_ref(key().public_key())).is_err(),
            "flipping byte {i} of {expected}"
        );
        tampered[i] = original;
    }
}

#[test]
fn cef() {
    check(
        Format::Cef,
        org_authentication(),
        "2025-06-23T14:28:47Z konghq.com CEF:0|KongInc|Konnect|1.0|AUTHENTICATION_TYPE_PAT|AUTHENTICATION_OUTCOME_TOKEN_EXPIRED|1|rt=1750688927556 src=172.71.232.22 request=/api/v1/personal-access-tokens/introspect success=false org_id=998db3e4-5cb7-4dd5-b51c-9878096a6999 principal_id= trace_id=3360194145499877252 user_agent= sig=4knzdwWUESpz2t4GLGNHRguWLqZwMxOtW0e3Z9sSlV_i8yc8SSYx4RNRlNh0sl4LoWba0FGhOvYwOw1KpBdODw",
    );
    check(
        Format::Cef,
        portal_authentication(),
        "2025-06-23T14:28:47Z konghq.com CEF:0|KongInc|Dev-Portal|1.0|AUTHENTICATION_TYPE_BASIC|AUTHENTICATION_OUTCOME_SUCCESS|0|rt=1750688927556 src=172.71.232.22 request=/api/v2/developer/authenticate success=true org_id=998db3e4-5cb7-4dd5-b51c-9878096a6999 portal_id=3e551b39-227d-4297-b911-e68fd5d77c17 principal_id=a3d2699a-0ed3-4417-bb10-d8e74a1513a4 trace_id=3360194145499877252 user_agent=Mozilla/5.0 (X11; Linux x86_64) principal_name=Ada Lovelace sig=mJgRAXgQKyK2TG4c36qhdq7Zz2iyS9Oq9ePZT_aimveGRCJy8eIfSluS9T53cEFhcjO9nNlw0egzf7eVOP7aBA",
    );
    check(
        Format::Cef,
        authorization(),
        r#"2025-06-23T14:28:47Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.control-planes/7f3c\|a=b|6|rt=1750688927556 src=172.71.232.22 action=edit granted=false org_id=998db3e4-5cb7-4dd5-b51c-9878096a6999 principal_id=a3d2699a-0ed3-4417-bb10-d8e74a1513a4 actor_id=user_abcdef1234567890 kong_initiated=true trace_id= user_agent=grpc-node-js/1.12.4 principal_name=Ops "bot"\\svc\nline\=2|x sig=l8Lox2BV28cs0SS1StuKVQvd2Vn_CL95WO_x0aVnNgoA9tdb1CzQbuRe4f8UGa_vdnrg1-bL6xr_gYoy-PaJCQ"#,
    );
    check(
        Format::Cef,
        access(),
        r#"2025-06-23T14:28:47Z konghq.com CEF:0|KongInc|Konnect|1.0|KongGateway|Ingress|10|rt=1750688927556 src= request=/konnect-api/api/control_planes/1c026712/services act=POST status=503 org_id=998db3e4-5cb7-4dd5-b51c-9878096a6999 principal_id=a3d2699a-0ed3-4417-bb10-d8e74a1513a4 user_agent=grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges) trace_id=3360194145499877252 query={"end":"1684270800","start":"1684098000"} kong_initiated=false sig=xZJX0Nc90YucwqODwoHTqh9LLewlbt9zIAwwXOpIsMdxOz-Y5FSyOjkg-OBRAvMfqBk881qpb_dMLRMBdkrgBQ"#,
    );
}

#[test]
fn json() {
    check(
        Format::Json,
        org_authentication(),
        r#"{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_PAT","event_product":"Konnect","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","name":"AUTHENTICATION_OUTCOME_TOKEN_EXPIRED","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"","request":"/api/v1/personal-access-tokens/introspect","rt":1750688927556,"severity":1,"src":"172.71.232.22","success":false,"trace_id":"3360194145499877252","user_agent":"","sig":"rfJaDJndPnNJOv0R8PgH3T7l6Ng81rSkWEu-mFDXIoD18hfyTylgVYAVXXqS5R7z5HA0Z3Ie1-wbPHBkOUWVAg"}"#,
    );
    check(
        Format::Json,
        portal_authentication(),
        r#"{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_BASIC","event_product":"Dev-Portal","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","name":"AUTHENTICATION_OUTCOME_SUCCESS","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","portal_id":"3e551b39-227d-4297-b911-e68fd5d77c17","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","principal_name":"Ada Lovelace","request":"/api/v2/developer/authenticate","rt":1750688927556,"severity":0,"src":"172.71.232.22","success":true,"trace_id":"3360194145499877252","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","sig":"vJHqebtCOXkFAwybSEO_XH_aVY2C-FDUYtoLqOc7ZeI8ZmI40zf-88ub3RtpieQ2ed8NOy5W2LdU1TphbKpFAA"}"#,
    );
    check(
        Format::Json,
        authorization(),
        r#"{"action":"edit","actor_id":"user_abcdef1234567890","cef_version":0,"event_class_id":"konnect","event_product":"Konnect","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","granted":false,"kong_initiated":"true","name":"Authz.control-planes/7f3c|a=b","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","principal_name":"Ops \"bot\"\\svc\nline=2|x","rt":1750688927556,"severity":6,"src":"172.71.232.22","trace_id":"","user_agent":"grpc-node-js/1.12.4","sig":"RdcoSmWrInTyub2SWoTP2sgg2PRFyQFv3bLffNd8AqfBQiVaMeRT91oqO1WzTqX9rQhRGXGSfYhKasGTE5qpCQ"}"#,
    );
    check(
        Format::Json,
        access(),
        r#"{"act":"POST","cef_version":0,"event_class_id":"KongGateway","event_product":"Konnect","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","kong_initiated":"false","name":"Ingress","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","query":"{\"end\":\"1684270800\",\"start\":\"1684098000\"}","request":"/konnect-api/api/control_planes/1c026712/services","rt":1750688927556,"severity":10,"src":"","status":503,"trace_id":"3360194145499877252","user_agent":"grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)","sig":"XCAbSDjZ_IypCZqqePLkG3RljwkpIv0-uWuCG42IJsIz5AjmyHiqAngOiQwob3IlvylIMH01SlcS7yHSSq6gCg"}"#,
    );
}

/// CPS signs the inner object exactly as JSON does, so each `sig` equals the JSON line's.
#[test]
fn cps() {
    check(
        Format::Cps,
        org_authentication(),
        r#"{"event":{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_PAT","event_product":"Konnect","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","name":"AUTHENTICATION_OUTCOME_TOKEN_EXPIRED","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"","request":"/api/v1/personal-access-tokens/introspect","rt":1750688927556,"severity":1,"src":"172.71.232.22","success":false,"trace_id":"3360194145499877252","user_agent":"","sig":"rfJaDJndPnNJOv0R8PgH3T7l6Ng81rSkWEu-mFDXIoD18hfyTylgVYAVXXqS5R7z5HA0Z3Ie1-wbPHBkOUWVAg"}}"#,
    );
    check(
        Format::Cps,
        portal_authentication(),
        r#"{"event":{"cef_version":0,"event_class_id":"AUTHENTICATION_TYPE_BASIC","event_product":"Dev-Portal","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","name":"AUTHENTICATION_OUTCOME_SUCCESS","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","portal_id":"3e551b39-227d-4297-b911-e68fd5d77c17","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","principal_name":"Ada Lovelace","request":"/api/v2/developer/authenticate","rt":1750688927556,"severity":0,"src":"172.71.232.22","success":true,"trace_id":"3360194145499877252","user_agent":"Mozilla/5.0 (X11; Linux x86_64)","sig":"vJHqebtCOXkFAwybSEO_XH_aVY2C-FDUYtoLqOc7ZeI8ZmI40zf-88ub3RtpieQ2ed8NOy5W2LdU1TphbKpFAA"}}"#,
    );
    check(
        Format::Cps,
        authorization(),
        r#"{"event":{"action":"edit","actor_id":"user_abcdef1234567890","cef_version":0,"event_class_id":"konnect","event_product":"Konnect","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","granted":false,"kong_initiated":"true","name":"Authz.control-planes/7f3c|a=b","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","principal_name":"Ops \"bot\"\\svc\nline=2|x","rt":1750688927556,"severity":6,"src":"172.71.232.22","trace_id":"","user_agent":"grpc-node-js/1.12.4","sig":"RdcoSmWrInTyub2SWoTP2sgg2PRFyQFv3bLffNd8AqfBQiVaMeRT91oqO1WzTqX9rQhRGXGSfYhKasGTE5qpCQ"}}"#,
    );
    check(
        Format::Cps,
        access(),
        r#"{"event":{"act":"POST","cef_version":0,"event_class_id":"KongGateway","event_product":"Konnect","event_ts":"2025-06-23T14:28:47Z","event_vendor":"KongInc","event_version":"1.0","kong_initiated":"false","name":"Ingress","org_id":"998db3e4-5cb7-4dd5-b51c-9878096a6999","principal_id":"a3d2699a-0ed3-4417-bb10-d8e74a1513a4","query":"{\"end\":\"1684270800\",\"start\":\"1684098000\"}","request":"/konnect-api/api/control_planes/1c026712/services","rt":1750688927556,"severity":10,"src":"","status":503,"trace_id":"3360194145499877252","user_agent":"grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)","sig":"XCAbSDjZ_IypCZqqePLkG3RljwkpIv0-uWuCG42IJsIz5AjmyHiqAngOiQwob3IlvylIMH01SlcS7yHSSq6gCg"}}"#,
    );
}

/// A configured vendor, products, host and version replace Konnect's defaults everywhere.
#[test]
fn configured_header() {
    let cfg = FormatConfig {
        vendor: "Acme".into(),
        org_product: "Platform".into(),
        portal_product: "Portal".into(),
        host: "audit.acme.test".into(),
        version: "2.1".into(),
    };
    let mut line = Vec::new();
    auditrelay_core::format::render_event(Format::Cef, &portal_authentication(), &cfg, &mut line);
    assert!(
        line.starts_with(b"2025-06-23T14:28:47Z audit.acme.test CEF:0|Acme|Portal|2.1|"),
        "{}",
        String::from_utf8_lossy(&line)
    );
    line.clear();
    auditrelay_core::format::render_event(Format::Json, &access(), &cfg, &mut line);
    let text = String::from_utf8(line).unwrap();
    assert!(
        text.contains(r#""event_product":"Platform","event_ts":"2025-06-23T14:28:47Z","event_vendor":"Acme","event_version":"2.1""#),
        "{text}"
    );
}

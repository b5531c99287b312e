//! Pinned bytes for every format × event type, signed with the fixed test key.
//!
//! Ed25519 is deterministic, so a signature is as pinnable as the text it covers. Each line was
//! written from the implementation once and then checked by eye against DECISIONS.md K9 and
//! DECISIONS.md D6–D8: key order and presence per type, header and extension escaping, JSON typing,
//! `sig` placement.

use auditrelay_core::format::{
    Format, Unsigned, parse_line, sign_checkpoint, sign_event, sign_event_with_id, verify_line,
};
use auditrelay_core::integrity::LogPlace;
use auditrelay_core::{Event, FormatConfig};
use uuid::Uuid;

use crate::support::{
    access, authorization, checkpoint_event, key, org_authentication, portal_authentication,
};

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

/// Lines that name their event by id (OCSF), carry a place in the tamper-evident log, or are
/// checkpoint events, pinned as the renderer wrote them one at a time before a share's lines
/// were signed together (DECISIONS.md S29): signed alone or together, they stay these bytes.
#[test]
fn ocsf_placed_and_checkpoint_lines_are_pinned() {
    let cfg = FormatConfig::default();
    let id = Some(Uuid::from_u128(42));
    let place = LogPlace {
        log: "auditrelay.test/log".into(),
        index: 7,
        leaf_hash: [9; 32],
    };
    let both = |format: Format, event: &Event, place: Option<&LogPlace>, expected: &str| {
        let mut alone = Vec::new();
        sign_event_with_id(format, event, id, place, &cfg, &key(), &mut alone);
        assert_eq!(String::from_utf8_lossy(&alone), expected);
        let mut unsigned = Unsigned::new(format, 2);
        unsigned.push_event(&access(), None, None, &cfg);
        let line = unsigned.push_event(event, id, place, &cfg);
        let mut together = Vec::new();
        unsigned.sign(&key()).write(line, &mut together);
        assert_eq!(String::from_utf8_lossy(&together), expected);
    };
    let ocsf = [
        (
            org_authentication(),
            "{\"activity_id\":1,\"activity_name\":\"Logon\",\"auth_protocol\":\"Personal Access Token\",\"auth_protocol_id\":99,\"category_name\":\"Identity & Access Management\",\"category_uid\":3,\"class_name\":\"Authentication\",\"class_uid\":3002,\"http_request\":{\"url\":{\"path\":\"/api/v1/personal-access-tokens/introspect\"}},\"message\":\"Login failed: token_expired (pat)\",\"metadata\":{\"correlation_uid\":\"3360194145499877252\",\"product\":{\"name\":\"Konnect\",\"vendor_name\":\"KongInc\",\"version\":\"1.0\"},\"tenant_uid\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"uid\":\"00000000-0000-0000-0000-00000000002a\",\"version\":\"1.8.0\"},\"service\":{\"name\":\"Konnect\"},\"severity\":\"Informational\",\"severity_id\":1,\"src_endpoint\":{\"ip\":\"172.71.232.22\"},\"status\":\"Failure\",\"status_detail\":\"token_expired\",\"status_id\":2,\"time\":1750688927556,\"type_name\":\"Authentication: Logon\",\"type_uid\":300201,\"unmapped\":{\"authentication_type\":\"pat\"},\"user\":{\"name\":\"unknown\",\"type\":\"Unknown\",\"type_id\":0},\"sig\":\"3ixVBw-4agrDH85koTd5axXk7UvOokp1zOAZyJWnhlQaEHIOBjuJebgo-2r6LD1PvWvgLO0g2tmRnVQv85ihBw\"}",
        ),
        (
            portal_authentication(),
            "{\"activity_id\":1,\"activity_name\":\"Logon\",\"auth_protocol\":\"Basic Authentication\",\"auth_protocol_id\":11,\"category_name\":\"Identity & Access Management\",\"category_uid\":3,\"class_name\":\"Authentication\",\"class_uid\":3002,\"http_request\":{\"url\":{\"path\":\"/api/v2/developer/authenticate\"},\"user_agent\":\"Mozilla/5.0 (X11; Linux x86_64)\"},\"message\":\"Login succeeded (basic)\",\"metadata\":{\"correlation_uid\":\"3360194145499877252\",\"product\":{\"name\":\"Dev-Portal\",\"vendor_name\":\"KongInc\",\"version\":\"1.0\"},\"tenant_uid\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"uid\":\"00000000-0000-0000-0000-00000000002a\",\"version\":\"1.8.0\"},\"service\":{\"name\":\"Dev-Portal\",\"uid\":\"3e551b39-227d-4297-b911-e68fd5d77c17\"},\"severity\":\"Informational\",\"severity_id\":1,\"src_endpoint\":{\"ip\":\"172.71.232.22\"},\"status\":\"Success\",\"status_detail\":\"success\",\"status_id\":1,\"time\":1750688927556,\"type_name\":\"Authentication: Logon\",\"type_uid\":300201,\"unmapped\":{\"authentication_type\":\"basic\"},\"user\":{\"name\":\"Ada Lovelace\",\"uid\":\"a3d2699a-0ed3-4417-bb10-d8e74a1513a4\"},\"sig\":\"wZwgusdhfUhtmbdQED1QoXX3w58o8VeURTF6yJhxlTGY7HxbIQhG6EjRrS-yURg6bi8z5HpULVyN39h8ilQODw\"}",
        ),
        (
            authorization(),
            "{\"activity_id\":3,\"activity_name\":\"Update\",\"actor\":{\"user\":{\"name\":\"Ops \\\"bot\\\"\\\\svc\\nline=2|x\",\"uid\":\"a3d2699a-0ed3-4417-bb10-d8e74a1513a4\"}},\"api\":{\"operation\":\"edit\",\"service\":{\"name\":\"konnect\"}},\"category_name\":\"Application Activity\",\"category_uid\":6,\"class_name\":\"API Activity\",\"class_uid\":6003,\"http_request\":{\"user_agent\":\"grpc-node-js/1.12.4\"},\"message\":\"Permission denied: edit on control-planes/7f3c|a=b (konnect)\",\"metadata\":{\"product\":{\"name\":\"Konnect\",\"vendor_name\":\"KongInc\",\"version\":\"1.0\"},\"tenant_uid\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"uid\":\"00000000-0000-0000-0000-00000000002a\",\"version\":\"1.8.0\"},\"resources\":[{\"name\":\"control-planes/7f3c|a=b\"}],\"severity\":\"Medium\",\"severity_id\":3,\"src_endpoint\":{\"ip\":\"172.71.232.22\"},\"status\":\"Failure\",\"status_detail\":\"denied\",\"status_id\":2,\"time\":1750688927556,\"type_name\":\"API Activity: Update\",\"type_uid\":600303,\"unmapped\":{\"actor_id\":\"user_abcdef1234567890\",\"kong_initiated\":true},\"sig\":\"Eh9gyvXvqrljnaX2JvX3NDxLmE2azLYOoUUPcOnrJ_nyYPHdXAItCZ9lcTWaxveMBZkxxogJmp7Jc72TwZMLCQ\"}",
        ),
        (
            access(),
            "{\"activity_id\":1,\"activity_name\":\"Create\",\"actor\":{\"user\":{\"uid\":\"a3d2699a-0ed3-4417-bb10-d8e74a1513a4\"}},\"api\":{\"operation\":\"POST\"},\"category_name\":\"Application Activity\",\"category_uid\":6,\"class_name\":\"API Activity\",\"class_uid\":6003,\"http_request\":{\"http_method\":\"POST\",\"url\":{\"path\":\"/konnect-api/api/control_planes/1c026712/services\",\"query_string\":\"{\\\"end\\\":\\\"1684270800\\\",\\\"start\\\":\\\"1684098000\\\"}\"},\"user_agent\":\"grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)\"},\"http_response\":{\"code\":503},\"message\":\"POST /konnect-api/api/control_planes/1c026712/services answered 503\",\"metadata\":{\"correlation_uid\":\"3360194145499877252\",\"product\":{\"name\":\"Konnect\",\"vendor_name\":\"KongInc\",\"version\":\"1.0\"},\"profiles\":[\"trace\"],\"tenant_uid\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"uid\":\"00000000-0000-0000-0000-00000000002a\",\"version\":\"1.8.0\"},\"severity\":\"Critical\",\"severity_id\":5,\"src_endpoint\":{\"name\":\"unknown\"},\"status\":\"Failure\",\"status_id\":2,\"time\":1750688927556,\"trace\":{\"uid\":\"3360194145499877252\"},\"type_name\":\"API Activity: Create\",\"type_uid\":600301,\"unmapped\":{\"kong_initiated\":false},\"sig\":\"px_0gWquDmK93zaY5_p2wZojonv-hU0UclJsbFw1nmEtRGRd64_5WnWAckixxH0qMlQYyJ5S2n-NSEcYCutwBg\"}",
        ),
    ];
    for (event, expected) in ocsf {
        both(Format::Ocsf, &event, None, expected);
    }
    let placed = [
        (
            Format::Cef,
            "2025-06-23T14:28:47Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.control-planes/7f3c\\|a=b|6|rt=1750688927556 src=172.71.232.22 action=edit granted=false org_id=998db3e4-5cb7-4dd5-b51c-9878096a6999 principal_id=a3d2699a-0ed3-4417-bb10-d8e74a1513a4 actor_id=user_abcdef1234567890 kong_initiated=true trace_id= user_agent=grpc-node-js/1.12.4 principal_name=Ops \"bot\"\\\\svc\\nline\\=2|x log=auditrelay.test/log log_index=7 leaf_hash=CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk\\= sig=yrpLYkKfjOxK7CJDvWm7mBJR312hLw_7u2bkd1o1bo0dhL_-afhy23A-lf-QQzzKA1qdpUmGmNNt08j8RgQXAQ",
        ),
        (
            Format::Json,
            "{\"action\":\"edit\",\"actor_id\":\"user_abcdef1234567890\",\"cef_version\":0,\"event_class_id\":\"konnect\",\"event_product\":\"Konnect\",\"event_ts\":\"2025-06-23T14:28:47Z\",\"event_vendor\":\"KongInc\",\"event_version\":\"1.0\",\"granted\":false,\"kong_initiated\":\"true\",\"leaf_hash\":\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\",\"log\":\"auditrelay.test/log\",\"log_index\":7,\"name\":\"Authz.control-planes/7f3c|a=b\",\"org_id\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"principal_id\":\"a3d2699a-0ed3-4417-bb10-d8e74a1513a4\",\"principal_name\":\"Ops \\\"bot\\\"\\\\svc\\nline=2|x\",\"rt\":1750688927556,\"severity\":6,\"src\":\"172.71.232.22\",\"trace_id\":\"\",\"user_agent\":\"grpc-node-js/1.12.4\",\"sig\":\"7aF0deytF4oBla8EJQwXgspoMOW_1-tML8GaexhvG5C9MMKUfzIaPxpie4rNqWoD8BJ0Uf7VJ1GPqpe3afiKCw\"}",
        ),
        (
            Format::Cps,
            "{\"event\":{\"action\":\"edit\",\"actor_id\":\"user_abcdef1234567890\",\"cef_version\":0,\"event_class_id\":\"konnect\",\"event_product\":\"Konnect\",\"event_ts\":\"2025-06-23T14:28:47Z\",\"event_vendor\":\"KongInc\",\"event_version\":\"1.0\",\"granted\":false,\"kong_initiated\":\"true\",\"leaf_hash\":\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\",\"log\":\"auditrelay.test/log\",\"log_index\":7,\"name\":\"Authz.control-planes/7f3c|a=b\",\"org_id\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"principal_id\":\"a3d2699a-0ed3-4417-bb10-d8e74a1513a4\",\"principal_name\":\"Ops \\\"bot\\\"\\\\svc\\nline=2|x\",\"rt\":1750688927556,\"severity\":6,\"src\":\"172.71.232.22\",\"trace_id\":\"\",\"user_agent\":\"grpc-node-js/1.12.4\",\"sig\":\"7aF0deytF4oBla8EJQwXgspoMOW_1-tML8GaexhvG5C9MMKUfzIaPxpie4rNqWoD8BJ0Uf7VJ1GPqpe3afiKCw\"}}",
        ),
        (
            Format::Ocsf,
            "{\"activity_id\":3,\"activity_name\":\"Update\",\"actor\":{\"user\":{\"name\":\"Ops \\\"bot\\\"\\\\svc\\nline=2|x\",\"uid\":\"a3d2699a-0ed3-4417-bb10-d8e74a1513a4\"}},\"api\":{\"operation\":\"edit\",\"service\":{\"name\":\"konnect\"}},\"category_name\":\"Application Activity\",\"category_uid\":6,\"class_name\":\"API Activity\",\"class_uid\":6003,\"http_request\":{\"user_agent\":\"grpc-node-js/1.12.4\"},\"message\":\"Permission denied: edit on control-planes/7f3c|a=b (konnect)\",\"metadata\":{\"log_name\":\"auditrelay.test/log\",\"product\":{\"name\":\"Konnect\",\"vendor_name\":\"KongInc\",\"version\":\"1.0\"},\"sequence\":7,\"tenant_uid\":\"998db3e4-5cb7-4dd5-b51c-9878096a6999\",\"uid\":\"00000000-0000-0000-0000-00000000002a\",\"version\":\"1.8.0\"},\"resources\":[{\"name\":\"control-planes/7f3c|a=b\"}],\"severity\":\"Medium\",\"severity_id\":3,\"src_endpoint\":{\"ip\":\"172.71.232.22\"},\"status\":\"Failure\",\"status_detail\":\"denied\",\"status_id\":2,\"time\":1750688927556,\"type_name\":\"API Activity: Update\",\"type_uid\":600303,\"unmapped\":{\"actor_id\":\"user_abcdef1234567890\",\"kong_initiated\":true,\"leaf_hash\":\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\"},\"sig\":\"HhpeiNejVnFPoB2Wri18IrWjt7ynUG9AHgkKXLETMJwEraCeNca6uvrF4Zx4y4qOiPpKSA8v1WUIS9uHdkhkCg\"}",
        ),
    ];
    for (format, expected) in placed {
        both(format, &authorization(), Some(&place), expected);
    }
    let checkpoints = [
        (
            Format::Cef,
            "2025-06-23T14:29:47Z konghq.com CEF:0|KongInc|Konnect|1.0|LogCheckpoint|Log checkpoint|1|rt=1750688987000 log=auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us previous_size=2 previous_frontier=CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk\\= checkpoint_interval=60 checkpoint=auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\\n3\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA\\=\\n\\n— auditrelay/0123 AAAAAA\\=\\=\\n sig=IGB_dB2OIbakuY2USuucd6cD99wxSFxl20NgvH8j0u0OEGhDadhNmHpP2PUjLl0jddf_xqG-_Tgts2N3Mhs_Bg",
        ),
        (
            Format::Json,
            "{\"cef_version\":0,\"checkpoint\":\"auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\\n3\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\n\\n— auditrelay/0123 AAAAAA==\\n\",\"checkpoint_interval\":60,\"event_class_id\":\"LogCheckpoint\",\"event_product\":\"Konnect\",\"event_ts\":\"2025-06-23T14:29:47Z\",\"event_vendor\":\"KongInc\",\"event_version\":\"1.0\",\"log\":\"auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\",\"name\":\"Log checkpoint\",\"previous_frontier\":\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\",\"previous_size\":2,\"rt\":1750688987000,\"severity\":1,\"sig\":\"olaI72_dwb18lrO1lTj4rqx0fLI58UDOERH8QCQmmLcbZ5gCAbTK7xPnqEPatrOrvHrY3C3TSV2kFiW-LgU9CA\"}",
        ),
        (
            Format::Cps,
            "{\"event\":{\"cef_version\":0,\"checkpoint\":\"auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\\n3\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\n\\n— auditrelay/0123 AAAAAA==\\n\",\"checkpoint_interval\":60,\"event_class_id\":\"LogCheckpoint\",\"event_product\":\"Konnect\",\"event_ts\":\"2025-06-23T14:29:47Z\",\"event_vendor\":\"KongInc\",\"event_version\":\"1.0\",\"log\":\"auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\",\"name\":\"Log checkpoint\",\"previous_frontier\":\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\",\"previous_size\":2,\"rt\":1750688987000,\"severity\":1,\"sig\":\"olaI72_dwb18lrO1lTj4rqx0fLI58UDOERH8QCQmmLcbZ5gCAbTK7xPnqEPatrOrvHrY3C3TSV2kFiW-LgU9CA\"}}",
        ),
        (
            Format::Ocsf,
            "{\"activity_id\":99,\"activity_name\":\"Other\",\"category_name\":\"Uncategorized\",\"category_uid\":0,\"class_name\":\"Base Event\",\"class_uid\":0,\"message\":\"Checkpoint of the tamper-evident log auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\",\"metadata\":{\"log_name\":\"auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\",\"product\":{\"name\":\"Konnect\",\"vendor_name\":\"KongInc\",\"version\":\"1.0\"},\"version\":\"1.8.0\"},\"severity\":\"Informational\",\"severity_id\":1,\"time\":1750688987000,\"type_name\":\"Base Event: Other\",\"type_uid\":99,\"unmapped\":{\"checkpoint\":\"auditrelay/0123/998db3e4-5cb7-4dd5-b51c-9878096a6999/us\\n3\\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\\n\\n— auditrelay/0123 AAAAAA==\\n\",\"checkpoint_interval\":60,\"previous_frontier\":\"CQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQk=\",\"previous_size\":2},\"sig\":\"Z5TMnVMGzCmz3IA0luS3D9PyNUMEVw5JDuKoo3jnG63QLY7WfDrQ1VKrxnM9torm-NL8fg7P3KIDWEeY0mm6Bw\"}",
        ),
    ];
    for (format, expected) in checkpoints {
        let mut line = Vec::new();
        sign_checkpoint(format, &checkpoint_event(), &cfg, &key(), &mut line);
        assert_eq!(String::from_utf8_lossy(&line), expected);
    }
}

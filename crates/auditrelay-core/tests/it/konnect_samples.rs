//! Konnect's published CEF lines (DECISIONS.md K9.1) parse, and our renderer reproduces them
//! byte for byte up to ` sig=`. Their signatures cannot be checked: Kong publishes no key for them.

use auditrelay_core::format::record::Value;
use auditrelay_core::format::{Format, Record, parse_line, render_record};
use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, FormatConfig, OrgId, PortalId,
    Region, Timestamp,
};

const AUTHZ: &str = "2025-06-18T21:02:36Z konghq.com CEF:0|KongInc|Konnect|1.0|konnect|Authz.control-planes|1|rt=1750280466889 src=127.0.0.6 action=list granted=true org_id=777db3e4-5cb7-4dd5-b51c-9878096a6999 principal_id=eb999f01-5976-4f4b-9fbc-dd5d514bd675 trace_id=3959872677347089807 user_agent=grpc-node-js/1.12.4 sig=KbLaBhQFnggT_8CyC95b777R1_fGvvLVDn7awjZK8eZLdGPrSvnS-sxJw63j930eKr-VTsQv8-TQTD_GVmAPAQ";
const PORTAL_LOGIN: &str = "2025-06-23T14:28:47Z konghq.com CEF:0|KongInc|Dev-Portal|1.0|AUTHENTICATION_TYPE_BASIC|AUTHENTICATION_OUTCOME_SUCCESS|0|rt=1750688927556 src=172.71.232.22 request=/api/v2/developer/authenticate success=true org_id=998db3e4-5cb7-4dd5-b51c-9878096a6999 portal_id=3e551b39-227d-4297-b911-e68fd5d77c17 principal_id=a3d2699a-0ed3-4417-bb10-d8e74a1513a4 trace_id=3360194145499877252 user_agent= sig=XQC3OSFxLbi5dy2-o4xAXHT-x8oW5Df-zVsACWQLMU9Q-sPnEyk5CVs4JHwuRcwO0QNLsNaP1wsyrXYPeneXDQ";

fn event(detail: EventDetail) -> Event {
    Event {
        ts: Timestamp::from_millis(0),
        org_id: OrgId::nil(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: None,
        principal_name: None,
        actor_id: None,
        client_ip: None,
        uri: None,
        user_agent: None,
        trace_id: None,
        detail,
    }
}

/// Renders `record` unsigned and compares it with `sample` minus its ` sig=…`.
#[track_caller]
fn reproduces(record: &Record, sample: &str) {
    let (unsigned, sig) = sample.rsplit_once(" sig=").unwrap();
    assert_eq!(sig.len(), 86);
    let mut line = Vec::new();
    render_record(Format::Cef, record, "konghq.com", &mut line);
    assert_eq!(String::from_utf8(line).unwrap(), unsigned);
}

#[test]
fn authorization_sample() {
    let parsed = parse_line(AUTHZ.as_bytes()).unwrap();
    assert_eq!(parsed.format, Format::Cef);
    assert_eq!(parsed.host.as_deref(), Some("konghq.com"));
    assert_eq!(
        &*parsed.signed,
        AUTHZ.rsplit_once(" sig=").unwrap().0.as_bytes()
    );
    assert_eq!(
        parsed.signature.as_deref(),
        Some(
            "KbLaBhQFnggT_8CyC95b777R1_fGvvLVDn7awjZK8eZLdGPrSvnS-sxJw63j930eKr-VTsQv8-TQTD_GVmAPAQ"
        )
    );
    let r = &parsed.record;
    assert_eq!(r.header.name, "Authz.control-planes");
    assert_eq!(r.header.severity, 1);
    assert_eq!(r.get("rt"), Some(&Value::Int(1_750_280_466_889)));
    assert_eq!(r.get("granted"), Some(&Value::Bool(true)));
    assert_eq!(
        r.get("trace_id"),
        Some(&Value::Str("3959872677347089807".into()))
    );

    let event = Event {
        ts: Timestamp::from_millis(1_750_280_466_889),
        org_id: OrgId::parse("777db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap(),
        principal_id: Some("eb999f01-5976-4f4b-9fbc-dd5d514bd675".into()),
        client_ip: Some("127.0.0.6".into()),
        user_agent: Some("grpc-node-js/1.12.4".into()),
        trace_id: Some("3959872677347089807".into()),
        ..event(EventDetail::Authorization {
            service: "konnect".into(),
            resource: "control-planes".into(),
            action: "list".into(),
            granted: true,
            kong_initiated: None,
        })
    };
    let mut ours = Record::from_event(&event, &FormatConfig::default());
    // Konnect stamped this line 90 s after the event (`rt`): its header time is the time the
    // line was emitted. Everything else is derived from the event.
    assert_eq!(ours.header.event_ts, "2025-06-18T21:01:06Z");
    ours.header.event_ts = "2025-06-18T21:02:36Z".into();
    assert_eq!(&ours, r);
    reproduces(&ours, AUTHZ);
}

#[test]
fn portal_authentication_sample() {
    let parsed = parse_line(PORTAL_LOGIN.as_bytes()).unwrap();
    let r = &parsed.record;
    assert_eq!(r.header.product, "Dev-Portal");
    assert_eq!(r.get("success"), Some(&Value::Bool(true)));
    assert_eq!(r.get("user_agent"), Some(&Value::Str(String::new())));

    let event = Event {
        ts: Timestamp::from_millis(1_750_688_927_556),
        org_id: OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap(),
        portal_id: Some(PortalId::parse("3e551b39-227d-4297-b911-e68fd5d77c17").unwrap()),
        principal_id: Some("a3d2699a-0ed3-4417-bb10-d8e74a1513a4".into()),
        client_ip: Some("172.71.232.22".into()),
        uri: Some("/api/v2/developer/authenticate".into()),
        trace_id: Some("3360194145499877252".into()),
        ..event(EventDetail::Authentication {
            outcome: AuthenticationOutcome::Success,
            authentication_type: AuthenticationType::Basic,
        })
    };
    let ours = Record::from_event(&event, &FormatConfig::default());
    assert_eq!(&ours, r);
    reproduces(&ours, PORTAL_LOGIN);
    // This one was stamped in the second of its event, so the event renders it unchanged.
    let mut line = Vec::new();
    auditrelay_core::format::render_event(Format::Cef, &event, &FormatConfig::default(), &mut line);
    assert_eq!(
        String::from_utf8(line).unwrap(),
        PORTAL_LOGIN.rsplit_once(" sig=").unwrap().0
    );
}

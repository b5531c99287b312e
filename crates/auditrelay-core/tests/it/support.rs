//! Fixed keys and events shared by the tests.

use auditrelay_core::{
    AuthenticationOutcome, AuthenticationType, Event, EventDetail, OrgId, PortalId, Region,
    SigningKey, Timestamp,
};

/// The key every pinned signature was made with: seed bytes 0, 1, …, 31.
pub fn key() -> SigningKey {
    SigningKey::from_seed(&std::array::from_fn(|i| i as u8))
}

pub fn org() -> OrgId {
    OrgId::parse("998db3e4-5cb7-4dd5-b51c-9878096a6999").unwrap()
}

pub fn portal() -> PortalId {
    PortalId::parse("3e551b39-227d-4297-b911-e68fd5d77c17").unwrap()
}

fn base(detail: EventDetail) -> Event {
    Event {
        ts: Timestamp::from_millis(1_750_688_927_556),
        org_id: org(),
        region: Region::parse("us").unwrap(),
        portal_id: None,
        principal_id: Some("a3d2699a-0ed3-4417-bb10-d8e74a1513a4".into()),
        principal_name: None,
        actor_id: None,
        client_ip: Some("172.71.232.22".into()),
        uri: None,
        user_agent: None,
        trace_id: Some("3360194145499877252".into()),
        detail,
    }
}

/// An org login with a PAT that failed; no user agent was sent.
pub fn org_authentication() -> Event {
    Event {
        uri: Some("/api/v1/personal-access-tokens/introspect".into()),
        principal_id: None,
        ..base(EventDetail::Authentication {
            outcome: AuthenticationOutcome::TokenExpired,
            authentication_type: AuthenticationType::Pat,
        })
    }
}

/// A developer login to a Dev Portal, with a display name.
pub fn portal_authentication() -> Event {
    Event {
        portal_id: Some(portal()),
        uri: Some("/api/v2/developer/authenticate".into()),
        user_agent: Some("Mozilla/5.0 (X11; Linux x86_64)".into()),
        principal_name: Some("Ada Lovelace".into()),
        ..base(EventDetail::Authentication {
            outcome: AuthenticationOutcome::Success,
            authentication_type: AuthenticationType::Basic,
        })
    }
}

/// A denied, impersonated, platform-initiated permission check whose strings need escaping.
pub fn authorization() -> Event {
    Event {
        actor_id: Some("user_abcdef1234567890".into()),
        user_agent: Some("grpc-node-js/1.12.4".into()),
        principal_name: Some("Ops \"bot\"\\svc\nline=2|x".into()),
        trace_id: None,
        ..base(EventDetail::Authorization {
            service: "konnect".into(),
            resource: "control-planes/7f3c|a=b".into(),
            action: "edit".into(),
            granted: false,
            kong_initiated: Some(true),
        })
    }
}

/// A failed write through the gateway, with a JSON-ish query and a user agent with spaces.
pub fn access() -> Event {
    Event {
        uri: Some("/konnect-api/api/control_planes/1c026712/services".into()),
        user_agent: Some("grpc-node/1.24.11 grpc-c/8.0.0 (linux; chttp2; ganges)".into()),
        client_ip: None,
        ..base(EventDetail::Access {
            method: "POST".into(),
            query: "{\"end\":\"1684270800\",\"start\":\"1684098000\"}".into(),
            status_code: 503,
            kong_initiated: Some(false),
        })
    }
}

/// A checkpoint event of a log of three leaves, after one of two.
pub fn checkpoint_event() -> auditrelay_core::integrity::CheckpointEvent {
    auditrelay_core::integrity::CheckpointEvent {
        log: format!("auditrelay/0123/{}/us", org()),
        portal: false,
        signed_at: Timestamp::from_millis(1_750_688_987_000),
        note: format!(
            "auditrelay/0123/{}/us\n3\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n\n\u{2014} auditrelay/0123 AAAAAA==\n",
            org()
        ),
        previous_size: 2,
        previous_frontier: vec![[9; 32]],
        interval_secs: 60,
    }
}

//! The audit event: what happened, to whom, where and when.
//!
//! An [`Event`] is stored structurally and rendered per destination format only at delivery
//! time, so one stored event can be sent as CEF to one SIEM and as JSON to another, and a replay
//! can use a format chosen after the event was stored. The fields follow Konnect's v3 pull API
//! entries (`AuthorizationLog`, `GatewayAccessLog`, `AuthenticationLog`) plus the two
//! documented extras `principal_name` and `kong_initiated`.
//!
//! Optional fields stay `Option` rather than defaulting to `""`: an entry read back from the
//! pull API must show exactly the fields that were sent, and a CEF line renders an absent value
//! and an empty one the same way (`user_agent=`).

use std::fmt;

use crate::timestamp::Timestamp;
use crate::{OrgId, PortalId, Region};

/// One audit record, in its scope (org + region, or a Dev Portal), with its type's fields.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    /// When it happened (`ts` in the pull API, `rt` in the log formats).
    pub ts: Timestamp,
    pub org_id: OrgId,
    /// The region the event belongs to; a portal event has its portal's region.
    pub region: Region,
    /// Set for Dev Portal events, which are authentication events only.
    pub portal_id: Option<PortalId>,
    /// The user, system account or developer; free-form, as in Konnect (`user_1234…` or a UUID).
    pub principal_id: Option<String>,
    /// Resolved display name of the principal.
    pub principal_name: Option<String>,
    /// The impersonating person, when an actor token was used.
    pub actor_id: Option<String>,
    /// The originator's IP address (`src` in CEF).
    pub client_ip: Option<String>,
    /// The request path (`request` in CEF).
    pub uri: Option<String>,
    pub user_agent: Option<String>,
    /// Correlation id shared by every entry one request produced.
    pub trace_id: Option<String>,
    pub detail: EventDetail,
}

/// The fields that depend on the event's type.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EventDetail {
    /// Whether it succeeded is its outcome's to say ([`AuthenticationOutcome::is_success`]):
    /// no separate flag that could contradict it.
    Authentication {
        outcome: AuthenticationOutcome,
        authentication_type: AuthenticationType,
    },
    Authorization {
        /// The service that made the permission check (CEF "Device Event Class ID").
        service: String,
        /// The resource checked; the CEF name is `Authz.<resource>`.
        resource: String,
        action: String,
        granted: bool,
        /// True for checks the platform made on its own behalf; `None` when not sent.
        kong_initiated: Option<bool>,
    },
    Access {
        method: String,
        /// The query parameters as the producer rendered them (`{}` or `a=b`).
        query: String,
        status_code: u16,
        kong_initiated: Option<bool>,
    },
}

/// The three kinds of event, as named by the pull API's `type` and `filter[type]`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum EventType {
    Authentication,
    Authorization,
    Access,
}

impl EventType {
    pub const ALL: [EventType; 3] = [Self::Authentication, Self::Authorization, Self::Access];

    /// The wire name (`type` in the pull API and the ingest body).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Authentication => "authentication",
            Self::Authorization => "authorization",
            Self::Access => "gateway_access",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|t| t.as_str() == s)
    }
}

impl fmt::Display for EventType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl Event {
    pub fn event_type(&self) -> EventType {
        match self.detail {
            EventDetail::Authentication { .. } => EventType::Authentication,
            EventDetail::Authorization { .. } => EventType::Authorization,
            EventDetail::Access { .. } => EventType::Access,
        }
    }

    /// The CEF severity, by Konnect's documented rules (DECISIONS.md K9.2).
    pub fn severity(&self) -> u8 {
        match &self.detail {
            EventDetail::Authentication { outcome, .. } => outcome.severity(),
            EventDetail::Authorization { granted: true, .. } => 1,
            EventDetail::Authorization { granted: false, .. } => 6,
            EventDetail::Access { status_code, .. } => match status_code {
                401 | 403 => 6,
                500..=599 => 10,
                _ => 1,
            },
        }
    }
}

/// Declares a closed set of wire names: the enum, its lowercase names (pull API), its
/// uppercase names (CEF `AUTHENTICATION_*_<NAME>`), and parsing.
macro_rules! wire_enum {
    ($(#[$meta:meta])* $name:ident { $($variant:ident => $wire:literal, $upper:literal;)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($variant),+ }

        impl $name {
            pub const ALL: &'static [$name] = &[$(Self::$variant),+];

            /// The lowercase name used by the pull API and the ingest body.
            pub fn as_str(self) -> &'static str {
                match self { $(Self::$variant => $wire),+ }
            }

            /// The uppercase name used in CEF headers.
            pub fn as_upper(self) -> &'static str {
                match self { $(Self::$variant => $upper),+ }
            }

            pub fn parse(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_str() == s)
            }

            pub fn parse_upper(s: &str) -> Option<Self> {
                Self::ALL.iter().copied().find(|v| v.as_upper() == s)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str(self.as_str())
            }
        }
    };
}

wire_enum! {
    /// How an authentication attempt ended (CEF name `AUTHENTICATION_OUTCOME_<NAME>`).
    AuthenticationOutcome {
        Success => "success", "SUCCESS";
        NotFound => "not_found", "NOT_FOUND";
        InvalidPassword => "invalid_password", "INVALID_PASSWORD";
        TokenExpired => "token_expired", "TOKEN_EXPIRED";
        Locked => "locked", "LOCKED";
        Disabled => "disabled", "DISABLED";
        Invalid => "invalid", "INVALID";
    }
}

wire_enum! {
    /// The credential that was presented (CEF class id `AUTHENTICATION_TYPE_<NAME>`).
    AuthenticationType {
        Invalid => "invalid", "INVALID";
        Basic => "basic", "BASIC";
        Sso => "sso", "SSO";
        Pat => "pat", "PAT";
        Spat => "spat", "SPAT";
        Google => "google", "GOOGLE";
        Github => "github", "GITHUB";
        WindowsLive => "windowslive", "WINDOWSLIVE";
        Federated => "federated", "FEDERATED";
    }
}

impl AuthenticationOutcome {
    /// The `successful` of the wire forms: true exactly for `success`.
    pub fn is_success(self) -> bool {
        self == Self::Success
    }

    /// 0 success; 1 a credential failure; 6 a locked or disabled account; 7 unknown or invalid.
    pub fn severity(self) -> u8 {
        match self {
            Self::Success => 0,
            Self::NotFound | Self::InvalidPassword | Self::TokenExpired => 1,
            Self::Locked | Self::Disabled => 6,
            Self::Invalid => 7,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn event(detail: EventDetail) -> Event {
        Event {
            ts: Timestamp::from_millis(1_750_280_466_889),
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

    fn access(status_code: u16) -> Event {
        event(EventDetail::Access {
            method: "GET".into(),
            query: "{}".into(),
            status_code,
            kong_initiated: None,
        })
    }

    fn authz(granted: bool) -> Event {
        event(EventDetail::Authorization {
            service: "konnect".into(),
            resource: "control-planes".into(),
            action: "list".into(),
            granted,
            kong_initiated: None,
        })
    }

    #[test]
    fn severity_follows_konnect_rules() {
        let cases = [
            (access(200), 1),
            (access(201), 1),
            (access(401), 6),
            (access(403), 6),
            (access(404), 1),
            (access(500), 10),
            (access(503), 10),
            (authz(true), 1),
            (authz(false), 6),
        ];
        for (event, expected) in cases {
            assert_eq!(event.severity(), expected, "{:?}", event.detail);
        }
        let outcomes = [
            (AuthenticationOutcome::Success, 0),
            (AuthenticationOutcome::NotFound, 1),
            (AuthenticationOutcome::InvalidPassword, 1),
            (AuthenticationOutcome::TokenExpired, 1),
            (AuthenticationOutcome::Locked, 6),
            (AuthenticationOutcome::Disabled, 6),
            (AuthenticationOutcome::Invalid, 7),
        ];
        for (outcome, expected) in outcomes {
            assert_eq!(outcome.severity(), expected, "{outcome}");
        }
    }

    #[test]
    fn wire_names_round_trip() {
        for outcome in AuthenticationOutcome::ALL {
            assert_eq!(
                AuthenticationOutcome::parse(outcome.as_str()),
                Some(*outcome)
            );
            assert_eq!(
                AuthenticationOutcome::parse_upper(outcome.as_upper()),
                Some(*outcome)
            );
        }
        for kind in AuthenticationType::ALL {
            assert_eq!(AuthenticationType::parse(kind.as_str()), Some(*kind));
            assert_eq!(
                AuthenticationType::parse_upper(kind.as_upper()),
                Some(*kind)
            );
        }
        for t in EventType::ALL {
            assert_eq!(EventType::parse(t.as_str()), Some(t));
        }
        assert_eq!(EventType::parse("access"), None);
        assert_eq!(AuthenticationType::parse("PAT"), None);
    }
}

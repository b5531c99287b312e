//! Who may do what: roles, their optional portal binding, and the permission check.
//!
//! The policy is a pure function so that the whole role × permission matrix is tested here,
//! table-driven, and the API layer only names the permission a route needs.

use std::fmt;

use crate::PortalId;

/// A role a principal holds. Konnect's "Organization Admin" and "Audit Logs / Admin" map to the
/// first two; the others are ours.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Role {
    /// Everything in the organization.
    OrgAdmin,
    /// Reads and writes all audit-log configuration; no portal registry writes.
    AuditLogsAdmin,
    /// Reads all audit-log configuration and logs; writes nothing.
    AuditLogsViewer,
    /// Reads and writes the audit-log webhook of one portal.
    PortalAdmin,
    /// Sends events, and nothing else; optionally only for one portal.
    EventProducer,
}

impl Role {
    pub const ALL: [Role; 5] = [
        Self::OrgAdmin,
        Self::AuditLogsAdmin,
        Self::AuditLogsViewer,
        Self::PortalAdmin,
        Self::EventProducer,
    ];

    pub fn as_str(self) -> &'static str {
        match self {
            Self::OrgAdmin => "org-admin",
            Self::AuditLogsAdmin => "audit-logs-admin",
            Self::AuditLogsViewer => "audit-logs-viewer",
            Self::PortalAdmin => "portal-admin",
            Self::EventProducer => "event-producer",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|r| r.as_str() == s)
    }
}

impl fmt::Display for Role {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A role as granted to a principal: with its portal binding where the role takes one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Grant {
    role: Role,
    portal: Option<PortalId>,
}

/// Why a role and portal binding do not fit together.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum GrantError {
    #[error("the portal-admin role needs a portal")]
    PortalRequired,
    #[error("the {0} role cannot be bound to a portal")]
    PortalNotAllowed(Role),
}

impl Grant {
    pub fn new(role: Role, portal: Option<PortalId>) -> Result<Self, GrantError> {
        match (role, portal) {
            (Role::PortalAdmin, None) => Err(GrantError::PortalRequired),
            (Role::PortalAdmin | Role::EventProducer, _) | (_, None) => Ok(Self { role, portal }),
            (role, Some(_)) => Err(GrantError::PortalNotAllowed(role)),
        }
    }

    pub fn role(&self) -> Role {
        self.role
    }

    /// The one portal this grant is limited to, if any.
    pub fn portal(&self) -> Option<PortalId> {
        self.portal
    }

    /// The one portal whose destinations are all this grant sees (a portal admin's), or `None`
    /// when it sees every destination of the organization.
    pub fn destination_owner(&self) -> Option<PortalId> {
        match self.role {
            Role::PortalAdmin => self.portal,
            _ => None,
        }
    }

    /// Whether this grant may send events of some scope: the check that lets ingest refuse a
    /// caller before reading a byte of its body.
    pub fn may_ingest(&self) -> bool {
        self.allows(Permission::Ingest { portal: None })
            || self.allows(Permission::Ingest {
                portal: self.portal,
            })
    }

    pub fn allows(&self, permission: Permission) -> bool {
        use Permission as P;
        use Role as R;
        match (self.role, permission) {
            (R::OrgAdmin, _) => true,
            (R::AuditLogsAdmin, P::Ingest { .. } | P::ManagePortals) => false,
            (R::AuditLogsAdmin, _) => true,
            (
                R::AuditLogsViewer,
                P::ReadAuditLogs
                | P::ReadDestinations
                | P::ReadPortals
                | P::ReadPortal(_)
                | P::ReadPortalAuditLogs(_),
            ) => true,
            (R::AuditLogsViewer, P::ReadDestination(_)) => true,
            (R::PortalAdmin, P::ReadDestinations | P::ReadPortals) => true,
            (
                R::PortalAdmin,
                P::ReadPortal(p) | P::ReadPortalAuditLogs(p) | P::WritePortalAuditLogs(p),
            ) => self.portal == Some(p),
            // A portal's own destinations only: never the organization's or another portal's.
            (R::PortalAdmin, P::ReadDestination(owner) | P::WriteDestination(owner)) => {
                owner.is_some() && owner == self.portal
            }
            (R::EventProducer, P::Ingest { portal }) => {
                self.portal.is_none() || self.portal == portal
            }
            _ => false,
        }
    }
}

/// What a request asks to do. Portal-scoped permissions name the portal, so a binding is checked
/// against the very portal the request touches.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Permission {
    /// Org webhooks, their status and replay jobs, and the pull API.
    ReadAuditLogs,
    WriteAuditLogs,
    /// Listing audit-log destinations (what a list shows is narrowed by
    /// [`Grant::destination_owner`]).
    ReadDestinations,
    /// Seeing one destination, and binding a webhook to it or replaying through it, by its
    /// owner: the organization (`None`) or one portal.
    ReadDestination(Option<PortalId>),
    /// Creating, changing or deleting a destination of that owner.
    WriteDestination(Option<PortalId>),
    /// Listing portals; a portal-bound grant sees only its own.
    ReadPortals,
    ReadPortal(PortalId),
    /// Creating and deleting portals.
    ManagePortals,
    ReadPortalAuditLogs(PortalId),
    WritePortalAuditLogs(PortalId),
    /// Sending events of the org (`portal: None`) or of one portal.
    Ingest {
        portal: Option<PortalId>,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: PortalId = PortalId::from_uuid(uuid::Uuid::from_u128(1));
    const B: PortalId = PortalId::from_uuid(uuid::Uuid::from_u128(2));

    fn grant(role: Role, portal: Option<PortalId>) -> Grant {
        Grant::new(role, portal).unwrap()
    }

    #[test]
    fn who_may_ingest_at_all() {
        assert!(grant(Role::OrgAdmin, None).may_ingest());
        assert!(grant(Role::EventProducer, None).may_ingest());
        assert!(grant(Role::EventProducer, Some(A)).may_ingest());
        assert!(!grant(Role::AuditLogsAdmin, None).may_ingest());
        assert!(!grant(Role::AuditLogsViewer, None).may_ingest());
        assert!(!grant(Role::PortalAdmin, Some(A)).may_ingest());
    }

    /// One row per permission; columns: org-admin, audit-logs-admin, viewer,
    /// portal-admin of A, producer, producer of A.
    #[test]
    fn permission_matrix() {
        let grants = [
            grant(Role::OrgAdmin, None),
            grant(Role::AuditLogsAdmin, None),
            grant(Role::AuditLogsViewer, None),
            grant(Role::PortalAdmin, Some(A)),
            grant(Role::EventProducer, None),
            grant(Role::EventProducer, Some(A)),
        ];
        let rows: [(Permission, [bool; 6]); 19] = [
            (
                Permission::ReadAuditLogs,
                [true, true, true, false, false, false],
            ),
            (
                Permission::WriteAuditLogs,
                [true, true, false, false, false, false],
            ),
            (
                Permission::ReadDestinations,
                [true, true, true, true, false, false],
            ),
            (
                Permission::ReadDestination(None),
                [true, true, true, false, false, false],
            ),
            (
                Permission::ReadDestination(Some(A)),
                [true, true, true, true, false, false],
            ),
            (
                Permission::ReadDestination(Some(B)),
                [true, true, true, false, false, false],
            ),
            (
                Permission::WriteDestination(None),
                [true, true, false, false, false, false],
            ),
            (
                Permission::WriteDestination(Some(A)),
                [true, true, false, true, false, false],
            ),
            (
                Permission::WriteDestination(Some(B)),
                [true, true, false, false, false, false],
            ),
            (
                Permission::ReadPortals,
                [true, true, true, true, false, false],
            ),
            (
                Permission::ReadPortal(A),
                [true, true, true, true, false, false],
            ),
            (
                Permission::ReadPortal(B),
                [true, true, true, false, false, false],
            ),
            (
                Permission::ManagePortals,
                [true, false, false, false, false, false],
            ),
            (
                Permission::ReadPortalAuditLogs(A),
                [true, true, true, true, false, false],
            ),
            (
                Permission::WritePortalAuditLogs(A),
                [true, true, false, true, false, false],
            ),
            (
                Permission::WritePortalAuditLogs(B),
                [true, true, false, false, false, false],
            ),
            (
                Permission::Ingest { portal: None },
                [true, false, false, false, true, false],
            ),
            (
                Permission::Ingest { portal: Some(A) },
                [true, false, false, false, true, true],
            ),
            (
                Permission::Ingest { portal: Some(B) },
                [true, false, false, false, true, false],
            ),
        ];
        for (permission, expected) in rows {
            let actual = grants.map(|g| g.allows(permission));
            assert_eq!(actual, expected, "{permission:?}");
        }
    }

    #[test]
    fn portal_bindings() {
        assert_eq!(
            Grant::new(Role::PortalAdmin, None),
            Err(GrantError::PortalRequired)
        );
        assert_eq!(
            Grant::new(Role::AuditLogsViewer, Some(A)),
            Err(GrantError::PortalNotAllowed(Role::AuditLogsViewer))
        );
        assert!(Grant::new(Role::EventProducer, None).is_ok());
        for role in Role::ALL {
            assert_eq!(Role::parse(role.as_str()), Some(role));
        }
    }
}

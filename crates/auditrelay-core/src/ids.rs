//! Identifiers with their invariants in the type: organizations, portals, regions; and the
//! stable id of a stored event.

use std::fmt;
use std::str::FromStr;

use uuid::Uuid;

use crate::timestamp::Timestamp;

macro_rules! uuid_id {
    ($(#[$meta:meta])* $name:ident) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub struct $name(Uuid);

        impl $name {
            pub fn new_v4() -> Self {
                Self(Uuid::new_v4())
            }

            pub const fn from_uuid(id: Uuid) -> Self {
                Self(id)
            }

            pub const fn nil() -> Self {
                Self(Uuid::nil())
            }

            pub fn as_uuid(&self) -> &Uuid {
                &self.0
            }

            /// Accepts the hyphenated form only, which is what Konnect documents and returns.
            pub fn parse(s: &str) -> Option<Self> {
                (s.len() == 36).then(|| Uuid::try_parse(s).ok()).flatten().map(Self)
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                self.0.hyphenated().fmt(f)
            }
        }

        impl FromStr for $name {
            type Err = InvalidId;
            fn from_str(s: &str) -> Result<Self, InvalidId> {
                Self::parse(s).ok_or(InvalidId)
            }
        }
    };
}

uuid_id! {
    /// An organization (tenant). Every token, event and configuration belongs to one.
    OrgId
}

uuid_id! {
    /// A developer portal of an organization.
    PortalId
}

/// The input was not a hyphenated UUID.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("must be a UUID")]
pub struct InvalidId;

/// A region label (`us`, `eu`, …): 1 to 32 lowercase ASCII letters, digits or hyphens,
/// starting with a letter, so it can be a path segment and a host label unchanged.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Region(String);

impl Region {
    /// The pseudo-region that addresses every region at once (Konnect's `global` host).
    pub const GLOBAL: &'static str = "global";

    pub fn parse(s: &str) -> Option<Self> {
        let mut chars = s.chars();
        let valid = s.len() <= 32
            && chars.next().is_some_and(|c| c.is_ascii_lowercase())
            && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-');
        valid.then(|| Self(s.to_owned()))
    }

    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// The stable id of the event stored as `seq`, of time `ts`, in the store whose identity is
/// `store` (DECISIONS.md D13, S13): the same on every retry, replay and node, since none of the
/// three changes; unlike any other store's, so two installations writing into one SIEM index
/// never collide (Elasticsearch would take the second for a copy of the first); and, with the
/// event's time, unlike the id of an event that had its `seq` in a store restored from an older
/// backup. A UUID (version 8) made of the first 16 bytes of a SHA-256 over the three.
pub fn event_id(store: &Uuid, seq: i64, ts: Timestamp) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"auditrelay event-id v1\0");
    hash.update(store.as_bytes());
    hash.update(seq.to_be_bytes());
    hash.update(ts.as_millis().to_be_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.finalize()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

/// The stable id of checkpoint `id` of the log `origin`, as a checkpoint event carries it
/// where a kind has a place for an id (DECISIONS.md S27): made like [`event_id`], under another
/// label, so it is never an event's.
pub fn checkpoint_id(store: &Uuid, origin: &str, id: i64) -> Uuid {
    use sha2::{Digest, Sha256};
    let mut hash = Sha256::new();
    hash.update(b"auditrelay checkpoint-id v1\0");
    hash.update(store.as_bytes());
    hash.update(origin.as_bytes());
    hash.update(b"\0");
    hash.update(id.to_be_bytes());
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&hash.finalize()[..16]);
    uuid::Builder::from_custom_bytes(bytes).into_uuid()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn event_ids_are_stable_per_store_seq_and_time() {
        let store = Uuid::from_u128(1);
        let ts = Timestamp::from_millis(1_700_000_000_123);
        let id = event_id(&store, 5, ts);
        assert_eq!(id, event_id(&store, 5, ts));
        assert_ne!(id, event_id(&store, 6, ts));
        assert_ne!(id, event_id(&Uuid::from_u128(2), 5, ts));
        // A store restored from a backup hands `seq` 5 out again, to a later event.
        assert_ne!(id, event_id(&store, 5, ts.saturating_add_millis(1)));
        assert_eq!(id.get_version_num(), 8);
        // Pinned (checked against an independent SHA-256): a change would make every SIEM
        // see every event anew.
        assert_eq!(id.to_string(), "6b364dca-edef-84ac-9c68-10bfc4add270");
    }

    #[test]
    fn region_labels() {
        for ok in ["us", "eu", "ap-southeast-1", "sg"] {
            assert_eq!(Region::parse(ok).unwrap().as_str(), ok);
        }
        for bad in [
            "",
            "US",
            "1us",
            "us_east",
            "us.east",
            "-us",
            &"a".repeat(33),
        ] {
            assert!(Region::parse(bad).is_none(), "{bad}");
        }
    }

    #[test]
    fn ids_are_hyphenated_uuids() {
        let s = "3e551b39-227d-4297-b911-e68fd5d77c17";
        assert_eq!(PortalId::parse(s).unwrap().to_string(), s);
        assert!(PortalId::parse("3e551b39227d4297b911e68fd5d77c17").is_none());
        assert!(OrgId::parse("not-a-uuid").is_none());
        assert_eq!("x".parse::<OrgId>(), Err(InvalidId));
    }
}

//! The wall clock, read in one place so time-dependent code names where "now" comes from.

use auditrelay_core::Timestamp;
use time::OffsetDateTime;

pub fn now() -> Timestamp {
    Timestamp::from_datetime(OffsetDateTime::now_utc())
}

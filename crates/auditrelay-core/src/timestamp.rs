//! Event time: milliseconds since the Unix epoch, and its RFC 3339 form.
//!
//! Konnect's log formats carry time as `rt` (epoch milliseconds) and its API as RFC 3339 text;
//! one integer type keeps the two views exact, with no float or sub-millisecond state to lose.

use std::fmt;

use time::format_description::well_known::Rfc3339;
use time::{OffsetDateTime, UtcOffset};

/// Milliseconds since 1970-01-01T00:00:00Z.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

/// The earliest instant we represent: Go's zero time, which Konnect shows for never-set times.
const MIN_MILLIS: i64 = -62_135_596_800_000;
/// 9999-12-31T23:59:59.999Z, the last instant RFC 3339 can write with a four-digit year.
const MAX_MILLIS: i64 = 253_402_300_799_999;

impl Timestamp {
    /// Go's zero time (`0001-01-01T00:00:00Z`), which Konnect uses for "never".
    pub const ZERO: Timestamp = Timestamp(MIN_MILLIS);

    /// Clamps to the range RFC 3339 can express, so formatting never fails.
    pub fn from_millis(ms: i64) -> Self {
        Self(ms.clamp(MIN_MILLIS, MAX_MILLIS))
    }

    pub fn as_millis(self) -> i64 {
        self.0
    }

    /// Truncates to whole milliseconds.
    pub fn from_datetime(dt: OffsetDateTime) -> Self {
        Self::from_millis((dt.unix_timestamp_nanos() / 1_000_000) as i64)
    }

    pub fn to_datetime(self) -> OffsetDateTime {
        OffsetDateTime::from_unix_timestamp_nanos(i128::from(self.0) * 1_000_000)
            .expect("the constructor keeps timestamps inside the representable range")
    }

    /// Parses RFC 3339 with any offset and any fraction, truncating to milliseconds.
    pub fn parse_rfc3339(s: &str) -> Option<Self> {
        let dt = OffsetDateTime::parse(s, &Rfc3339).ok()?;
        let ms = (dt.unix_timestamp_nanos() / 1_000_000) as i64;
        (MIN_MILLIS..=MAX_MILLIS).contains(&ms).then_some(Self(ms))
    }

    /// `2026-11-20T10:00:00.123Z`: UTC, always three fraction digits (the pull API's form).
    pub fn to_rfc3339_millis(self) -> String {
        let dt = self.to_datetime();
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second(),
            dt.millisecond()
        )
    }

    /// `2026-11-20T10:00:00Z`: UTC to the second (CEF header time, Konnect's API timestamps).
    pub fn to_rfc3339_seconds(self) -> String {
        let dt = self.to_datetime().to_offset(UtcOffset::UTC);
        format!(
            "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
            dt.year(),
            u8::from(dt.month()),
            dt.day(),
            dt.hour(),
            dt.minute(),
            dt.second()
        )
    }

    pub fn saturating_add_millis(self, ms: i64) -> Self {
        Self::from_millis(self.0.saturating_add(ms))
    }

    pub fn saturating_sub_millis(self, ms: i64) -> Self {
        Self::from_millis(self.0.saturating_sub(ms))
    }
}

impl fmt::Display for Timestamp {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_rfc3339_millis())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, millis: Option<i64>, rendered: &str) {
        let ts = Timestamp::parse_rfc3339(input);
        assert_eq!(ts.map(Timestamp::as_millis), millis, "{input}");
        if let Some(ts) = ts {
            assert_eq!(ts.to_rfc3339_millis(), rendered);
        }
    }

    #[test]
    fn parses_and_renders_rfc3339() {
        check(
            "2025-06-18T21:01:06.889Z",
            Some(1_750_280_466_889),
            "2025-06-18T21:01:06.889Z",
        );
        check(
            "2025-06-18T21:01:06Z",
            Some(1_750_280_466_000),
            "2025-06-18T21:01:06.000Z",
        );
        check(
            "2025-06-18T23:01:06.889+02:00",
            Some(1_750_280_466_889),
            "2025-06-18T21:01:06.889Z",
        );
        check(
            "2025-06-18T21:01:06.889999Z",
            Some(1_750_280_466_889),
            "2025-06-18T21:01:06.889Z",
        );
        check(
            "1969-12-31T23:59:59.999Z",
            Some(-1),
            "1969-12-31T23:59:59.999Z",
        );
        check("2025-06-18 21:01:06Z", None, "");
        check("2025-06-18T21:01:06", None, "");
        check("yesterday", None, "");
    }

    #[test]
    fn zero_time_is_gos_zero() {
        assert_eq!(Timestamp::ZERO.to_rfc3339_seconds(), "0001-01-01T00:00:00Z");
        assert_eq!(Timestamp::from_millis(i64::MIN), Timestamp::ZERO);
        assert_eq!(
            Timestamp::from_millis(i64::MAX).to_rfc3339_millis(),
            "9999-12-31T23:59:59.999Z"
        );
    }

    #[test]
    fn seconds_form_truncates() {
        let ts = Timestamp::from_millis(1_750_280_466_889);
        assert_eq!(ts.to_rfc3339_seconds(), "2025-06-18T21:01:06Z");
    }
}

//! The retry policy of webhook delivery, as data (DECISIONS.md D3 and D4): what an attempt's
//! outcome means, how long to wait before the next one, and how often an `inactive` webhook is
//! probed.
//!
//! DECISIONS.md D3 is Konnect's documented rule, which matches the defaults of
//! `hashicorp/go-retryablehttp`: wait 1 s before the first retry, doubling, capped at 30 s, at most
//! 4 retries (5 attempts); retry on connection errors, timeouts, 429 and 5xx except 501; honour
//! `Retry-After`, capped at 5 minutes. Any 2xx is success; every other answer (a redirect, which is
//! not followed, a 4xx other than 429, a 501) and a refused certificate or endpoint is final at
//! once, because waiting a few seconds will not change it. DECISIONS.md D4 goes further than
//! Konnect: once the retries are spent the webhook turns `inactive` and keeps being probed, at most
//! 5 minutes apart, until its SIEM answers 2xx again.
//!
//! The caller brings the clock: `now` is only needed to turn a `Retry-After` date into a wait.

use std::time::Duration;

use time::PrimitiveDateTime;
use time::format_description::BorrowedFormatItem;
use time::macros::format_description;

use crate::Timestamp;

/// What one delivery attempt came back with, independent of any HTTP client library.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Attempt {
    /// The endpoint answered with this status. `retry_after` is its raw `Retry-After` header
    /// value, kept unparsed because an HTTP-date only means something relative to `now`.
    Response {
        status: u16,
        retry_after: Option<String>,
    },
    /// No HTTP answer came back.
    Transport(TransportError),
    /// A stream receiver (syslog) took every byte: written, flushed, and acknowledged by the
    /// receiver's TCP on a connection still open. Such a receiver has no answer of its own, so
    /// this is as delivered as it gets (DECISIONS.md S18).
    Written,
}

/// Why an attempt got no HTTP answer.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum TransportError {
    /// No connection: the name did not resolve, or the connection was refused or reset.
    /// Retried: the endpoint may be restarting.
    Connect,
    /// No answer in time (connecting or waiting for the response). Retried.
    Timeout,
    /// The endpoint's TLS certificate was refused. Not retried: a certificate does not fix
    /// itself within seconds, and the status should say so at once.
    Tls,
    /// The exchange could not be made as asked: a header the request cannot carry, a redirect
    /// loop. Not retried: the same request would fail the same way.
    Protocol,
    /// We refused to send: an invalid URL, a scheme that is not allowed, an endpoint that is
    /// (or resolves to) a non-public address (DECISIONS.md D10). Not retried.
    Refused,
    /// Anything else, such as a connection closed mid-answer. Retried, as go-retryablehttp
    /// retries every transport error it does not know to be permanent.
    Other,
}

impl TransportError {
    pub fn is_retryable(self) -> bool {
        match self {
            Self::Connect | Self::Timeout | Self::Other => true,
            Self::Tls | Self::Protocol | Self::Refused => false,
        }
    }
}

/// What to do after an attempt.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// The endpoint answered 2xx: the batch is delivered.
    Delivered,
    /// Try the same batch again after this wait.
    RetryAfter(Duration),
    /// Final failure: the outcome is not retryable, or the retries are spent. The webhook
    /// becomes `inactive` and is probed (see [`RetryPolicy::probe_delay`]).
    Failed,
}

/// The numbers of DECISIONS.md D3 and D4. `Default` is the documented schedule; the fields exist so
/// tests and a future configuration can shorten it, not to invite tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Retries after the first attempt.
    pub max_retries: u32,
    /// The wait before the first retry; each further wait doubles.
    pub first_wait: Duration,
    /// No doubled wait exceeds this.
    pub max_wait: Duration,
    /// A `Retry-After` longer than this is shortened to it, so one answer cannot stall a
    /// webhook for hours.
    pub max_retry_after: Duration,
    /// The wait before the first probe of an `inactive` webhook; each further wait doubles.
    pub first_probe: Duration,
    /// Probes of an `inactive` webhook are never further apart than this.
    pub max_probe: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            // DECISIONS.md D3: 1 s, 2 s, 4 s, 8 s (the 30 s cap is reached only by longer
            // schedules).
            max_retries: 4,
            first_wait: Duration::from_secs(1),
            max_wait: Duration::from_secs(30),
            max_retry_after: Duration::from_secs(5 * 60),
            // DECISIONS.md D4: 30 s, 1 min, 2 min, 4 min, then every 5 min.
            first_probe: Duration::from_secs(30),
            max_probe: Duration::from_secs(5 * 60),
        }
    }
}

impl RetryPolicy {
    /// The verdict on an attempt, after `retries_done` retries of the same batch (0 after its
    /// first attempt). A retryable answer with a parseable `Retry-After` waits that long instead
    /// of the doubled wait, as go-retryablehttp does, up to [`RetryPolicy::max_retry_after`].
    pub fn next(&self, retries_done: u32, outcome: &Attempt, now: Timestamp) -> Verdict {
        if is_success(outcome) {
            return Verdict::Delivered;
        }
        if !is_retryable(outcome) || retries_done >= self.max_retries {
            return Verdict::Failed;
        }
        let asked = match outcome {
            Attempt::Response {
                retry_after: Some(value),
                ..
            } => parse_retry_after(value, now),
            _ => None,
        };
        Verdict::RetryAfter(match asked {
            Some(wait) => wait.min(self.max_retry_after),
            None => self.backoff(retries_done),
        })
    }

    /// The doubled wait before retry number `retries_done + 1`: `first_wait · 2^retries_done`,
    /// capped at `max_wait`.
    pub fn backoff(&self, retries_done: u32) -> Duration {
        doubling(self.first_wait, self.max_wait, retries_done)
    }

    /// The wait before the next probe of an `inactive` webhook, after `failed_rounds` failed
    /// probes since it turned inactive (0 right after its batch failed). A probe is one attempt
    /// of the failed batch; when it is delivered the webhook is active again.
    pub fn probe_delay(&self, failed_rounds: u32) -> Duration {
        doubling(self.first_probe, self.max_probe, failed_rounds)
    }

    /// The longest a batch can spend waiting between its first attempt and its verdict (the
    /// attempts' own durations aside): each retry waits at most the longer of its doubled wait
    /// and the `Retry-After` cap.
    pub fn max_total_wait(&self) -> Duration {
        (0..self.max_retries)
            .map(|i| self.backoff(i).max(self.max_retry_after))
            .fold(Duration::ZERO, Duration::saturating_add)
    }
}

fn is_success(outcome: &Attempt) -> bool {
    matches!(
        outcome,
        Attempt::Response {
            status: 200..=299,
            ..
        } | Attempt::Written
    )
}

fn is_retryable(outcome: &Attempt) -> bool {
    match outcome {
        // 501 says the server will never support the request: asking again cannot help.
        Attempt::Response { status, .. } => {
            *status == 429 || ((500..=599).contains(status) && *status != 501)
        }
        Attempt::Transport(error) => error.is_retryable(),
        Attempt::Written => false,
    }
}

/// `first · 2^n`, capped at `cap`, without overflowing for any `n`.
fn doubling(first: Duration, cap: Duration, n: u32) -> Duration {
    1u32.checked_shl(n)
        .and_then(|factor| first.checked_mul(factor))
        .map_or(cap, |wait| wait.min(cap))
}

/// How long a `Retry-After` value asks to wait, from `now`: delta-seconds (`120`) or an
/// HTTP-date in any of the three forms RFC 9110 §5.6.7 obliges a recipient to accept
/// (`Sun, 06 Nov 1994 08:49:37 GMT`, `Sunday, 06-Nov-94 08:49:37 GMT`,
/// `Sun Nov  6 08:49:37 1994`). A date in the past means no wait. `None` for anything else.
/// The result is not capped; [`RetryPolicy::next`] does that.
pub fn parse_retry_after(value: &str, now: Timestamp) -> Option<Duration> {
    let value = value.trim();
    if !value.is_empty() && value.bytes().all(|b| b.is_ascii_digit()) {
        // All digits and still unparseable means too large for u64: a very long wait.
        return Some(Duration::from_secs(value.parse().unwrap_or(u64::MAX)));
    }
    let at = parse_http_date(value, now)?;
    let millis = at.as_millis().saturating_sub(now.as_millis());
    Some(Duration::from_millis(u64::try_from(millis).unwrap_or(0)))
}

const IMF_FIXDATE: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short], [day] [month repr:short] [year] [hour]:[minute]:[second] GMT"
);
const ASCTIME: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:short] [month repr:short] [day padding:space] [hour]:[minute]:[second] [year]"
);
/// RFC 850 after its two-digit year has been widened (see [`widen_rfc850_year`]).
const RFC850_WIDENED: &[BorrowedFormatItem<'_>] = format_description!(
    "[weekday repr:long], [day]-[month repr:short]-[year] [hour]:[minute]:[second] GMT"
);

fn parse_http_date(value: &str, now: Timestamp) -> Option<Timestamp> {
    let parsed = PrimitiveDateTime::parse(value, IMF_FIXDATE)
        .or_else(|_| PrimitiveDateTime::parse(value, ASCTIME))
        .ok()
        .or_else(|| {
            let widened = widen_rfc850_year(value, now)?;
            PrimitiveDateTime::parse(&widened, RFC850_WIDENED).ok()
        })?;
    Some(Timestamp::from_datetime(parsed.assume_utc()))
}

/// Rewrites `Sunday, 06-Nov-94 …` with a four-digit year. RFC 9110 §5.6.7: a two-digit year
/// that would lie more than 50 years in the future belongs to the previous century.
fn widen_rfc850_year(value: &str, now: Timestamp) -> Option<String> {
    let (weekday, rest) = value.split_once(", ")?;
    // `06-Nov-94 08:49:37 GMT`: the year is bytes 7..9, between a `-` and a space.
    let bytes = rest.as_bytes();
    if bytes.len() < 10 || bytes[6] != b'-' || bytes[9] != b' ' {
        return None;
    }
    let two_digits: i32 = rest.get(7..9)?.parse().ok()?;
    let this_year = now.to_datetime().year();
    let mut year = this_year - this_year.rem_euclid(100) + two_digits;
    if year > this_year + 50 {
        year -= 100;
    }
    Some(format!("{weekday}, {}{year:04}{}", &rest[..7], &rest[9..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// 2026-11-20T10:00:00Z.
    const NOW: i64 = 1_795_168_800_000;

    fn now() -> Timestamp {
        Timestamp::from_millis(NOW)
    }

    fn status(code: u16) -> Attempt {
        Attempt::Response {
            status: code,
            retry_after: None,
        }
    }

    fn status_after(code: u16, retry_after: &str) -> Attempt {
        Attempt::Response {
            status: code,
            retry_after: Some(retry_after.into()),
        }
    }

    fn secs(s: u64) -> Verdict {
        Verdict::RetryAfter(Duration::from_secs(s))
    }

    #[track_caller]
    fn check(retries_done: u32, outcome: Attempt, expected: Verdict) {
        let verdict = RetryPolicy::default().next(retries_done, &outcome, now());
        assert_eq!(
            verdict, expected,
            "{outcome:?} after {retries_done} retries"
        );
    }

    #[test]
    fn default_schedule_is_decision_3() {
        let policy = RetryPolicy::default();
        let waits: Vec<_> = (0..policy.max_retries).map(|i| policy.backoff(i)).collect();
        assert_eq!(waits, [1, 2, 4, 8].map(Duration::from_secs));
        // The cap, for schedules that run long enough to reach it.
        assert_eq!(policy.backoff(5), Duration::from_secs(30));
        assert_eq!(policy.backoff(u32::MAX), Duration::from_secs(30));
    }

    #[test]
    fn success_is_any_2xx() {
        for code in [200, 201, 202, 204, 299] {
            check(0, status(code), Verdict::Delivered);
            // Even on the last allowed attempt, and whatever Retry-After says.
            check(4, status_after(code, "60"), Verdict::Delivered);
        }
    }

    /// A syslog batch written on an open connection is as delivered as syslog gets.
    #[test]
    fn written_to_a_stream_is_delivered() {
        check(0, Attempt::Written, Verdict::Delivered);
        check(4, Attempt::Written, Verdict::Delivered);
    }

    #[test]
    fn retryable_answers_back_off() {
        for code in [429, 500, 502, 503, 504, 599] {
            check(0, status(code), secs(1));
            check(1, status(code), secs(2));
            check(2, status(code), secs(4));
            check(3, status(code), secs(8));
            check(4, status(code), Verdict::Failed);
        }
        for error in [
            TransportError::Connect,
            TransportError::Timeout,
            TransportError::Other,
        ] {
            check(0, Attempt::Transport(error), secs(1));
            check(3, Attempt::Transport(error), secs(8));
            check(4, Attempt::Transport(error), Verdict::Failed);
        }
    }

    #[test]
    fn final_answers_fail_at_once() {
        for code in [
            100, 0, 301, 302, 304, 307, 308, 400, 401, 403, 404, 408, 413, 422, 501, 600, 999,
        ] {
            check(0, status(code), Verdict::Failed);
            check(0, status_after(code, "1"), Verdict::Failed);
        }
        for error in [
            TransportError::Tls,
            TransportError::Protocol,
            TransportError::Refused,
        ] {
            check(0, Attempt::Transport(error), Verdict::Failed);
        }
    }

    #[test]
    fn retry_after_replaces_the_backoff_up_to_five_minutes() {
        check(0, status_after(429, "7"), secs(7));
        check(3, status_after(503, "0"), secs(0));
        check(0, status_after(503, "120"), secs(120));
        check(0, status_after(503, "301"), secs(300));
        check(0, status_after(503, "99999999999999999999999"), secs(300));
        check(
            0,
            status_after(429, "Fri, 20 Nov 2026 10:00:42 GMT"),
            secs(42),
        );
        check(
            0,
            status_after(429, "Fri, 20 Nov 2026 11:00:00 GMT"),
            secs(300),
        );
        check(
            0,
            status_after(429, "Fri, 20 Nov 2026 09:00:00 GMT"),
            secs(0),
        );
        // Unreadable: the ordinary backoff.
        check(2, status_after(503, "soon"), secs(4));
        check(2, status_after(503, "-5"), secs(4));
        // It does not buy an extra retry.
        check(4, status_after(503, "1"), Verdict::Failed);
    }

    #[test]
    fn parses_retry_after_forms() {
        let cases: &[(&str, Option<u64>)] = &[
            ("0", Some(0)),
            ("120", Some(120)),
            (" 5 ", Some(5)),
            ("18446744073709551616", Some(u64::MAX)),
            ("Fri, 20 Nov 2026 10:01:00 GMT", Some(60)),
            ("Fri Nov 20 10:01:00 2026", Some(60)),
            ("Fri Nov  6 10:00:00 2026", Some(0)),
            ("Friday, 20-Nov-26 10:01:00 GMT", Some(60)),
            ("Sun, 06 Nov 1994 08:49:37 GMT", Some(0)),
            ("Sunday, 06-Nov-94 08:49:37 GMT", Some(0)),
            ("", None),
            ("1.5", None),
            ("+5", None),
            ("5s", None),
            ("Fri, 20 Nov 2026 10:01:00 UTC", None),
            ("2026-11-20T10:01:00Z", None),
            ("Friday, 20-Nov-26", None),
        ];
        for (value, secs) in cases {
            assert_eq!(
                parse_retry_after(value, now()),
                secs.map(Duration::from_secs),
                "{value:?}"
            );
        }
    }

    #[test]
    fn rfc850_years_are_never_more_than_50_years_ahead() {
        // In 2026, `76` is 2076 (50 years ahead) but `77` is 1977.
        let in_2076 = parse_retry_after("Wednesday, 01-Jan-76 00:00:00 GMT", now()).unwrap();
        assert!(in_2076 > Duration::from_secs(49 * 365 * 86_400));
        assert_eq!(
            parse_retry_after("Saturday, 01-Jan-77 00:00:00 GMT", now()),
            Some(Duration::ZERO)
        );
    }

    #[test]
    fn probes_back_off_to_five_minutes() {
        let policy = RetryPolicy::default();
        let delays: Vec<_> = (0..7).map(|n| policy.probe_delay(n)).collect();
        assert_eq!(
            delays,
            [30, 60, 120, 240, 300, 300, 300].map(Duration::from_secs)
        );
        assert_eq!(policy.probe_delay(u32::MAX), Duration::from_secs(300));
    }

    #[test]
    fn total_wait_bound_of_the_default() {
        assert_eq!(
            RetryPolicy::default().max_total_wait(),
            Duration::from_secs(4 * 300)
        );
    }

    fn outcome() -> impl Strategy<Value = Attempt> {
        let retry_after = prop_oneof![
            any::<u64>().prop_map(|n| n.to_string()),
            "[0-9]{1,30}",
            (-10_000_000_000_000i64..10_000_000_000_000).prop_map(|ms| {
                let dt = Timestamp::from_millis(ms).to_datetime();
                dt.format(IMF_FIXDATE)
                    .expect("every year we generate has four digits")
            }),
            ".{0,40}",
        ];
        let transport = prop_oneof![
            Just(TransportError::Connect),
            Just(TransportError::Timeout),
            Just(TransportError::Tls),
            Just(TransportError::Protocol),
            Just(TransportError::Refused),
            Just(TransportError::Other),
        ];
        prop_oneof![
            (0u16..1000, proptest::option::of(retry_after)).prop_map(|(status, retry_after)| {
                Attempt::Response {
                    status,
                    retry_after,
                }
            }),
            transport.prop_map(Attempt::Transport),
        ]
    }

    proptest! {
        /// Whatever a failing endpoint answers, a batch gets at most `max_retries` retries and
        /// waits at most `max_total_wait` (20 minutes by default) before its verdict; without
        /// `Retry-After` the waits add up to exactly DECISIONS.md D3's 15 seconds at most.
        #[test]
        fn total_wait_of_a_failing_batch_is_bounded(
            outcomes in proptest::collection::vec(outcome(), 1..12),
            now_ms in -1_000_000_000_000i64..4_000_000_000_000,
        ) {
            let policy = RetryPolicy::default();
            let now = Timestamp::from_millis(now_ms);
            let (mut retries, mut total, mut asked) = (0u32, Duration::ZERO, false);
            for outcome in &outcomes {
                match policy.next(retries, outcome, now) {
                    Verdict::RetryAfter(wait) => {
                        prop_assert!(wait <= policy.max_retry_after.max(policy.max_wait));
                        total += wait;
                        retries += 1;
                        asked |= matches!(outcome, Attempt::Response { retry_after: Some(_), .. });
                    }
                    Verdict::Delivered | Verdict::Failed => break,
                }
            }
            prop_assert!(retries <= policy.max_retries);
            prop_assert!(total <= policy.max_total_wait());
            prop_assert!(total <= Duration::from_secs(20 * 60));
            if !asked {
                prop_assert!(total <= Duration::from_secs(1 + 2 + 4 + 8));
            }
        }

        #[test]
        fn probes_are_never_more_than_five_minutes_apart(rounds in any::<u32>()) {
            let delay = RetryPolicy::default().probe_delay(rounds);
            prop_assert!(delay >= Duration::from_secs(30) && delay <= Duration::from_secs(300));
        }
    }
}

//! Numbers and durations as people read them, in one place for the CLI, the UI, API messages
//! and the load tool: counts with thousands separators, durations in words ("6 days 23
//! hours"), in the configuration's own notation ("7d", "200ms"), and as a stopwatch
//! ("1m 05s").

use std::time::Duration;

/// `1234567` → `1,234,567`.
pub fn count(n: u64) -> String {
    group_thousands(&n.to_string())
}

/// A rate or mean rounded to a whole number, grouped: `1234567.8` → `1,234,568`, `-1500.2` →
/// `-1,500`.
pub fn rounded(x: f64) -> String {
    let grouped = group_thousands(&format!("{:.0}", x.abs()));
    if x <= -0.5 {
        format!("-{grouped}")
    } else {
        grouped
    }
}

fn group_thousands(digits: &str) -> String {
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// A duration in its two largest units: "6 days 23 hours", "12 minutes", "40 seconds".
pub fn words(seconds: u64) -> String {
    const UNITS: [(u64, &str); 4] = [
        (86_400, "day"),
        (3_600, "hour"),
        (60, "minute"),
        (1, "second"),
    ];
    let plural = |n: u64, name: &str| format!("{n} {name}{}", if n == 1 { "" } else { "s" });
    let Some(i) = UNITS.iter().position(|(size, _)| seconds >= *size) else {
        return "0 seconds".to_owned();
    };
    let (size, name) = UNITS[i];
    let mut out = plural(seconds / size, name);
    if let Some((next_size, next_name)) = UNITS.get(i + 1) {
        let rest = (seconds % size) / next_size;
        if rest > 0 {
            out.push(' ');
            out.push_str(&plural(rest, next_name));
        }
    }
    out
}

/// A duration the way the configuration writes it: the largest whole unit (`7d`, `5m`,
/// `30s`), or milliseconds when it is not a whole number of seconds (`200ms`, `1500ms`).
pub fn setting(d: Duration) -> String {
    let s = d.as_secs();
    match s {
        _ if d.is_zero() || d.subsec_millis() != 0 => format!("{}ms", d.as_millis()),
        s if s.is_multiple_of(86_400) => format!("{}d", s / 86_400),
        s if s.is_multiple_of(3_600) => format!("{}h", s / 3_600),
        s if s.is_multiple_of(60) => format!("{}m", s / 60),
        s => format!("{s}s"),
    }
}

/// An elapsed time as a stopwatch shows it: `350ms`, `4.2s`, `1m 05s`, `2h 03m`.
pub fn stopwatch(d: Duration) -> String {
    let secs = d.as_secs();
    match secs {
        0 => format!("{}ms", d.as_millis()),
        1..60 => format!("{:.1}s", d.as_secs_f64()),
        60..3600 => format!("{}m {:02}s", secs / 60, secs % 60),
        _ => format!("{}h {:02}m", secs / 3600, secs % 3600 / 60),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_are_grouped_by_thousands() {
        assert_eq!(count(0), "0");
        assert_eq!(count(999), "999");
        assert_eq!(count(1_000), "1,000");
        assert_eq!(count(1_234_567), "1,234,567");
        assert_eq!(rounded(1_234_567.8), "1,234,568");
        assert_eq!(rounded(999.4), "999");
        assert_eq!(rounded(-1_500.2), "-1,500");
        assert_eq!(rounded(-0.2), "0");
    }

    #[test]
    fn durations_in_words_take_the_two_largest_units() {
        assert_eq!(words(0), "0 seconds");
        assert_eq!(words(1), "1 second");
        assert_eq!(words(40), "40 seconds");
        assert_eq!(words(12 * 60), "12 minutes");
        assert_eq!(words(90), "1 minute 30 seconds");
        assert_eq!(words(7 * 86_400 - 3_600), "6 days 23 hours");
        assert_eq!(words(86_400 + 59), "1 day");
    }

    #[test]
    fn settings_read_like_the_configuration() {
        assert_eq!(setting(Duration::from_secs(7 * 86_400)), "7d");
        assert_eq!(setting(Duration::from_secs(7_200)), "2h");
        assert_eq!(setting(Duration::from_secs(300)), "5m");
        assert_eq!(setting(Duration::from_secs(90)), "90s");
        assert_eq!(setting(Duration::from_secs(30)), "30s");
        assert_eq!(setting(Duration::from_millis(200)), "200ms");
        assert_eq!(setting(Duration::from_millis(1500)), "1500ms");
        assert_eq!(setting(Duration::ZERO), "0ms");
    }

    #[test]
    fn a_stopwatch_shows_what_matters_at_each_scale() {
        assert_eq!(stopwatch(Duration::from_millis(350)), "350ms");
        assert_eq!(stopwatch(Duration::from_millis(4_200)), "4.2s");
        assert_eq!(stopwatch(Duration::from_secs(65)), "1m 05s");
        assert_eq!(stopwatch(Duration::from_secs(7_380)), "2h 03m");
    }
}

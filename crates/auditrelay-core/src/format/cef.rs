//! CEF lines: `{event_ts} {host} CEF:0|vendor|product|version|class|name|severity|k=v …`.
//!
//! Escaping follows DECISIONS.md D8, extended so that a line can never be split by a receiver that
//! reads newline-delimited batches: header fields escape `\` and `|`, extension values escape `\`
//! and `=`, and both escape LF as `\n` and CR as `\r`, and every other control character (see
//! [`super::is_control`]: TAB, NUL, ESC, DEL, NEL, U+2028, …) as `\uXXXX`, which CEF does not
//! define but no literal backslash can be mistaken for (it is written `\\`). The syslog prefix
//! (time and host) uses the header rules too, so a host cannot smuggle in a newline or a fake
//! `CEF:0|` marker either.

use super::record::{Text, ValueRef, View, push_int};

/// Appends the line for `view`, without `sig` and without a trailing newline.
pub(crate) fn render(view: &View<'_>, host: &str, out: &mut Vec<u8>) {
    write_header_text(&view.event_ts, out);
    out.push(b' ');
    escape_header(host, out);
    out.extend_from_slice(b" CEF:0|");
    escape_header(view.vendor, out);
    out.push(b'|');
    escape_header(view.product, out);
    out.push(b'|');
    escape_header(view.version, out);
    out.push(b'|');
    write_header_text(&view.event_class_id, out);
    out.push(b'|');
    write_header_text(&view.name, out);
    out.push(b'|');
    push_int(i64::from(view.severity), out);
    out.push(b'|');
    let mut first = true;
    view.for_each_extension(|key, value| {
        if !first {
            out.push(b' ');
        }
        first = false;
        // Keys are plain identifiers in every record we build; escaping them anyway keeps the
        // one-line guarantee for hand-made records.
        escape_extension(key, out);
        out.push(b'=');
        match value {
            ValueRef::Str(s) => escape_extension(s, out),
            ValueRef::Int(i) => push_int(i, out),
            ValueRef::Bool(b) => out.extend_from_slice(if b { b"true" } else { b"false" }),
            ValueRef::Uuid(u) => {
                out.extend_from_slice(u.hyphenated().encode_lower(&mut [0; 36]).as_bytes())
            }
        }
    });
}

fn write_header_text(text: &Text<'_>, out: &mut Vec<u8>) {
    text.with_pieces(|piece| escape_header(piece, out));
}

fn escape_header(s: &str, out: &mut Vec<u8>) {
    escape(s, out, b'|');
}

fn escape_extension(s: &str, out: &mut Vec<u8>) {
    escape(s, out, b'=');
}

/// Escapes `\`, LF, CR, the other control characters and the one delimiter of the context.
fn escape(s: &str, out: &mut Vec<u8>, delimiter: u8) {
    const HEADER: super::Specials = super::specials([b'\\', b'|']);
    const EXTENSION: super::Specials = super::specials([b'\\', b'=']);
    let special = if delimiter == b'|' {
        &HEADER
    } else {
        &EXTENSION
    };
    super::escape_into(s, out, special, |b| match b {
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'|' if delimiter == b'|' => Some(b"\\|"),
        b'=' if delimiter == b'=' => Some(b"\\="),
        _ => None,
    });
}

/// Undoes [`escape`] for one context. `None` on a dangling or unknown escape: we only ever
/// write these escapes, so anything else is not one of our lines.
pub(crate) fn unescape(s: &str, delimiter: u8) -> Option<String> {
    if !s.contains('\\') {
        return Some(s.to_owned());
    }
    let mut out = String::with_capacity(s.len());
    let mut chars = s.chars();
    while let Some(c) = chars.next() {
        if c != '\\' {
            out.push(c);
            continue;
        }
        match chars.next()? {
            '\\' => out.push('\\'),
            'n' => out.push('\n'),
            'r' => out.push('\r'),
            'u' => {
                // Exactly what `escape` writes: four lowercase hex digits of a control
                // character other than LF and CR (those are `\n` and `\r`).
                let hex: String = chars.by_ref().take(4).collect();
                let lower_hex = |c: char| c.is_ascii_digit() || ('a'..='f').contains(&c);
                if hex.len() != 4 || !hex.chars().all(lower_hex) {
                    return None;
                }
                let c = char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?;
                if !super::is_control(c) || c == '\n' || c == '\r' {
                    return None;
                }
                out.push(c);
            }
            c if c == char::from(delimiter) => out.push(c),
            _ => return None,
        }
    }
    Some(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[track_caller]
    fn check(input: &str, delimiter: u8, expected: &str) {
        let mut out = Vec::new();
        escape(input, &mut out, delimiter);
        assert_eq!(String::from_utf8(out).unwrap(), expected);
        assert_eq!(unescape(expected, delimiter).as_deref(), Some(input));
    }

    #[test]
    fn escapes_per_context() {
        check("plain text", b'=', "plain text");
        check("a=b|c\\d\ne\rf", b'=', "a\\=b|c\\\\d\\ne\\rf");
        check("a=b|c\\d\ne\rf", b'|', "a=b\\|c\\\\d\\ne\\rf");
        check("", b'|', "");
        check("ünï=cødé", b'=', "ünï\\=cødé");
    }

    #[test]
    fn control_characters_become_unicode_escapes() {
        check(
            "nul\u{0}tab\tesc\u{1b}del\u{7f}nel\u{85}ls\u{2028}ps\u{2029}é",
            b'=',
            "nul\\u0000tab\\u0009esc\\u001bdel\\u007fnel\\u0085ls\\u2028ps\\u2029é",
        );
        // A literal backslash before `u` is escaped, so it cannot read as one of ours.
        check("\\u0041", b'|', "\\\\u0041");
        // Only control characters are ever written this way.
        assert_eq!(unescape("\\u0041", b'='), None);
        assert_eq!(unescape("\\u00", b'='), None);
        for not_ours in ["\\u+07f", "\\u001B", "\\u000a", "\\u000d"] {
            assert_eq!(unescape(not_ours, b'='), None, "{not_ours}");
        }
    }

    #[test]
    fn refuses_unknown_escapes() {
        assert_eq!(unescape("a\\|b", b'='), None);
        assert_eq!(unescape("a\\=b", b'|'), None);
        assert_eq!(unescape("dangling\\", b'='), None);
        assert_eq!(unescape("\\t", b'='), None);
    }
}

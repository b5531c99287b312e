//! CEF lines: `{event_ts} {host} CEF:0|vendor|product|version|class|name|severity|k=v …`.
//!
//! Escaping follows Decision 8, extended so that a line can never be split by a receiver that
//! reads newline-delimited batches: header fields escape `\` and `|`, extension values escape `\`
//! and `=`, and both escape LF as `\n` and CR as `\r`. The syslog prefix (time and host) uses the
//! header rules too, so a host cannot smuggle in a newline or a fake `CEF:0|` marker either.

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

/// Escapes `\`, LF, CR and the one delimiter of the context; copies clean runs in one piece.
fn escape(s: &str, out: &mut Vec<u8>, delimiter: u8) {
    let bytes = s.as_bytes();
    let mut clean_from = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let replacement: &[u8] = match b {
            b'\\' => b"\\\\",
            b'\n' => b"\\n",
            b'\r' => b"\\r",
            _ if b == delimiter => {
                if b == b'|' {
                    b"\\|"
                } else {
                    b"\\="
                }
            }
            _ => continue,
        };
        out.extend_from_slice(&bytes[clean_from..i]);
        out.extend_from_slice(replacement);
        clean_from = i + 1;
    }
    out.extend_from_slice(&bytes[clean_from..]);
}

/// Undoes [`escape`] for one context. `None` on a dangling or unknown escape: we only ever
/// write the four escapes, so anything else is not one of our lines.
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
    fn refuses_unknown_escapes() {
        assert_eq!(unescape("a\\|b", b'='), None);
        assert_eq!(unescape("a\\=b", b'|'), None);
        assert_eq!(unescape("dangling\\", b'='), None);
        assert_eq!(unescape("\\t", b'='), None);
    }
}

//! The JSON line: one compact object, keys in byte order, `sig` appended last (DECISIONS.md D6,
//! D7).
//!
//! Header fields become `cef_version`, `event_class_id`, `event_product`, `event_ts`,
//! `event_vendor`, `event_version`, `name` and `severity`; extensions become top-level keys with
//! the types the record gives them. The key order is computed per line on the stack, so a line is
//! written straight into the caller's buffer.
//!
//! Strings use standard JSON escaping only: `"`, `\` and control characters; no HTML escaping,
//! and non-ASCII is written as UTF-8. The same escaper serves the canonical pull-API entries.

use super::record::{Text, ValueRef, View, push_int};

#[derive(Clone, Copy)]
enum Item<'a> {
    Text(Text<'a>),
    Value(ValueRef<'a>),
}

/// Room for the 8 header keys and the at most 13 extensions of an event.
const INLINE_ITEMS: usize = 24;

/// Appends the object for `view`, without `sig`.
pub(crate) fn render(view: &View<'_>, out: &mut Vec<u8>) {
    let header: [(&str, Item<'_>); 8] = [
        ("cef_version", Item::Value(ValueRef::Int(0))),
        ("event_class_id", Item::Text(view.event_class_id)),
        ("event_product", Item::Text(Text::Str(view.product))),
        ("event_ts", Item::Text(view.event_ts)),
        ("event_vendor", Item::Text(Text::Str(view.vendor))),
        ("event_version", Item::Text(Text::Str(view.version))),
        ("name", Item::Text(view.name)),
        (
            "severity",
            Item::Value(ValueRef::Int(i64::from(view.severity))),
        ),
    ];
    let total = header.len() + view.extension_count();
    // Events always fit on the stack; only a hand-made record with many keys needs the heap.
    let mut inline = [("", Item::Value(ValueRef::Int(0))); INLINE_ITEMS];
    let mut heap = Vec::new();
    let items: &mut [(&str, Item<'_>)] = if total <= INLINE_ITEMS {
        &mut inline[..total]
    } else {
        heap.resize(total, ("", Item::Value(ValueRef::Int(0))));
        &mut heap
    };
    items[..header.len()].copy_from_slice(&header);
    let mut n = header.len();
    view.for_each_extension(|key, value| {
        items[n] = (key, Item::Value(value));
        n += 1;
    });
    // Byte order of the keys; most pairs differ in their first eight bytes, which compare as
    // one integer.
    items.sort_unstable_by(|a, b| prefix(a.0).cmp(&prefix(b.0)).then_with(|| a.0.cmp(b.0)));

    out.push(b'{');
    for (i, (key, item)) in items.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        write_str(key, out);
        out.push(b':');
        match item {
            Item::Text(text) => {
                out.push(b'"');
                text.with_pieces(|piece| escape_into(piece, out));
                out.push(b'"');
            }
            Item::Value(ValueRef::Str(s)) => write_str(s, out),
            Item::Value(ValueRef::Int(i)) => push_int(*i, out),
            Item::Value(ValueRef::Bool(b)) => {
                out.extend_from_slice(if *b { b"true" } else { b"false" })
            }
            Item::Value(ValueRef::Uuid(u)) => {
                out.push(b'"');
                out.extend_from_slice(u.hyphenated().encode_lower(&mut [0; 36]).as_bytes());
                out.push(b'"');
            }
        }
    }
    out.push(b'}');
}

/// The first eight bytes of `key`, zero-padded, as a big-endian integer: ordered like the keys.
fn prefix(key: &str) -> u64 {
    let mut bytes = [0u8; 8];
    let n = key.len().min(8);
    bytes[..n].copy_from_slice(&key.as_bytes()[..n]);
    u64::from_be_bytes(bytes)
}

/// Appends `s` as a JSON string literal.
pub(crate) fn write_str(s: &str, out: &mut Vec<u8>) {
    out.push(b'"');
    escape_into(s, out);
    out.push(b'"');
}

/// Appends the JSON-escaped body of `s`. Besides what JSON requires (`"`, `\\` and C0), DEL,
/// the C1 controls and U+2028/U+2029 are escaped too (see [`super::is_control`]).
pub(crate) fn escape_into(s: &str, out: &mut Vec<u8>) {
    const SPECIAL: super::Specials = super::specials([b'"', b'\\']);
    super::escape_into(s, out, &SPECIAL, |b| match b {
        b'"' => Some(b"\\\""),
        b'\\' => Some(b"\\\\"),
        b'\n' => Some(b"\\n"),
        b'\r' => Some(b"\\r"),
        b'\t' => Some(b"\\t"),
        0x08 => Some(b"\\b"),
        0x0c => Some(b"\\f"),
        _ => None,
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Standard JSON escapes, and beyond them every control character (DEL, C1, U+2028/9) as
    /// `\uXXXX`; other non-ASCII text stays as it is.
    #[test]
    fn escapes_like_standard_json_and_every_control_character() {
        let text = "a\"b\\c\nd\re\tf\u{8}\u{c}\u{1}\u{1f}<>&é\u{2028}\u{2029}\u{7f}\u{80}\u{85}\u{9f}\u{a0}\u{2027}😀";
        let mut out = Vec::new();
        write_str(text, &mut out);
        assert_eq!(
            String::from_utf8(out.clone()).unwrap(),
            "\"a\\\"b\\\\c\\nd\\re\\tf\\b\\f\\u0001\\u001f<>&é\\u2028\\u2029\\u007f\\u0080\\u0085\\u009f\u{a0}\u{2027}😀\""
        );
        // serde_json reads back what we wrote.
        let back: String = serde_json::from_slice(&out).unwrap();
        assert_eq!(back, text);
    }
}

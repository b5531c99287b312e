//! Log lines: rendering an event as CEF, JSON, CPS or OCSF, signing it, and reading our lines
//! back.
//!
//! A line is written in three steps: what its format puts before the bytes its signature covers
//! (CPS's `{"event":`), those bytes, and the signature spliced in where the format puts it
//! (DECISIONS.md D6: CEF appends ` sig=…`; JSON, OCSF and the object inside CPS end with
//! `,"sig":"…"`). One line is written in one pass over one caller-owned buffer, signed in place,
//! with nothing allocated per line. A batch's lines are rendered first and signed together
//! ([`Unsigned`]): the same lines, for a cheaper signature (DECISIONS.md S29).
//!
//! Every function appends to the buffer and writes no newline, so a batch is built by calling
//! them in a loop with `b'\n'` pushed in between.

pub mod carried;
mod cef;
mod error;
mod json;
pub mod ocsf;
pub mod parse;
pub mod pull;
pub mod record;

use std::fmt;

use crate::event::Event;
use crate::integrity::{CheckpointEvent, LogPlace};
use crate::signing::{Signature, SigningKey, push_signature_b64};
use record::View;
use uuid::Uuid;

pub use error::{ParseError, VerifyError};
pub use parse::{ParsedLine, Signed, parse_line, verify_line, verify_line_or_entry};

/// The characters no line we write carries raw, in any format: the C0 controls (NUL, TAB, ESC,
/// LF, …), DEL, the C1 controls (NEL among them) and the Unicode line and paragraph separators.
/// NUL truncates a line in C-string pipelines, ESC starts terminal control sequences, and the
/// others split or reflow lines in some readers. JSON writes them as `\uXXXX` escapes (`\n`,
/// `\t`, … for the usual ones); CEF as `\n`, `\r`, and `\uXXXX` for the rest. Either way the
/// text decodes back to what the event held, and the signature covers the escaped bytes.
pub fn is_control(c: char) -> bool {
    c.is_control() || matches!(c, '\u{2028}' | '\u{2029}')
}

/// The bytes an escaper must look at: `extra` (its own two specials) and every byte that can
/// start a character of [`is_control`] in UTF-8. Everything else is copied as it is, in runs.
pub(crate) struct Specials {
    table: [bool; 256],
    /// Each of `extra` in every byte of a word, for [`Specials::may_hold`].
    extra: [u64; 2],
}

pub(crate) const fn specials(extra: [u8; 2]) -> Specials {
    let mut table = [false; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = true;
        b += 1;
    }
    table[0x7f] = true;
    table[0xc2] = true;
    table[0xe2] = true;
    table[extra[0] as usize] = true;
    table[extra[1] as usize] = true;
    Specials {
        table,
        extra: [ONES * extra[0] as u64, ONES * extra[1] as u64],
    }
}

/// `0x01` in every byte of a word, and `0x80`.
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;

impl Specials {
    /// Where the first special byte of `bytes` is. Eight bytes at a time: most text in events
    /// is ASCII with nothing to escape, and looking at it byte by byte was a third of what a
    /// leaf of the tamper-evident log cost.
    fn find(&self, bytes: &[u8]) -> Option<usize> {
        let is_special = |b: &u8| self.table[usize::from(*b)];
        let mut words = bytes.chunks_exact(8);
        let mut at = 0;
        for word in &mut words {
            let value = u64::from_le_bytes(word.try_into().expect("eight bytes"));
            if self.may_hold(value)
                && let Some(i) = word.iter().position(is_special)
            {
                return Some(at + i);
            }
            at += 8;
        }
        words
            .remainder()
            .iter()
            .position(is_special)
            .map(|i| at + i)
    }

    /// False only if none of the eight bytes of `word` is special; true may be wrong (a borrow
    /// or carry between bytes), never the other way. A byte is special if it is below 0x20 (C0),
    /// 0x7f or above (DEL, and every non-ASCII byte, among them the lead bytes of C1 and of
    /// U+2028/9), or one of the extras.
    fn may_hold(&self, word: u64) -> bool {
        let has_zero = |v: u64| v.wrapping_sub(ONES) & !v & HIGHS;
        let below_space = word.wrapping_sub(ONES * 0x20) & !word & HIGHS;
        let del_or_above = (word | word.wrapping_add(ONES)) & HIGHS;
        (below_space
            | del_or_above
            | has_zero(word ^ self.extra[0])
            | has_zero(word ^ self.extra[1]))
            != 0
    }
}

/// Appends `s` escaped, the one loop of every format: a byte `special` flags is replaced by
/// what `short` gives for it, else a character of [`is_control`] starting there becomes
/// `\uXXXX`; everything else is copied in runs (the bytes in between are looked at eight at a
/// time, [`Specials::find`], which keeps rendering cheap).
pub(crate) fn escape_into(
    s: &str,
    out: &mut Vec<u8>,
    special: &Specials,
    short: impl Fn(u8) -> Option<&'static [u8]>,
) {
    let bytes = s.as_bytes();
    let mut clean_from = 0;
    let mut i = 0;
    while let Some(skip) = special.find(&bytes[i..]) {
        i += skip;
        if let Some(replacement) = short(bytes[i]) {
            out.extend_from_slice(&bytes[clean_from..i]);
            out.extend_from_slice(replacement);
            i += 1;
            clean_from = i;
        } else if let Some((code, len)) = control_at(bytes, i) {
            out.extend_from_slice(&bytes[clean_from..i]);
            push_unicode_escape(code, out);
            i += len;
            clean_from = i;
        } else {
            // A lead byte of some other character (0xC2, 0xE2): nothing to escape.
            i += 1;
        }
    }
    out.extend_from_slice(&bytes[clean_from..]);
}

/// The character of [`is_control`] that starts at `bytes[i]` (UTF-8), as its code point and
/// length.
fn control_at(bytes: &[u8], i: usize) -> Option<(u32, usize)> {
    match bytes[i] {
        b @ (0x00..=0x1f | 0x7f) => Some((u32::from(b), 1)),
        // U+0080..U+009F.
        0xc2 => match bytes.get(i + 1) {
            Some(&b @ 0x80..=0x9f) => Some((u32::from(b), 2)),
            _ => None,
        },
        // U+2028, U+2029.
        0xe2 if bytes.get(i + 1) == Some(&0x80) => match bytes.get(i + 2) {
            Some(&b @ (0xa8 | 0xa9)) => Some((0x2000 | u32::from(b - 0x80), 3)),
            _ => None,
        },
        _ => None,
    }
}

/// Appends `\uXXXX` for a code point of the Basic Multilingual Plane.
fn push_unicode_escape(code: u32, out: &mut Vec<u8>) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    out.extend_from_slice(b"\\u");
    for shift in [12, 8, 4, 0] {
        out.push(HEX[((code >> shift) & 0xf) as usize]);
    }
}
pub use record::{Extension, FormatConfig, Header, Record, Value};

/// A destination's `log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Cef,
    Json,
    Cps,
    /// An OCSF 1.8.0 object ([`ocsf`]); our extension, not one of Konnect's values.
    Ocsf,
}

impl Format {
    pub const ALL: [Format; 4] = [Self::Cef, Self::Json, Self::Cps, Self::Ocsf];

    /// Konnect's three formats: the lines that read back as a [`Record`] ([`parse_line`]).
    pub const KONNECT: [Format; 3] = [Self::Cef, Self::Json, Self::Cps];

    /// The wire name used by the destinations API (`cef`, `json`, `cps`, `ocsf`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cef => "cef",
            Self::Json => "json",
            Self::Cps => "cps",
            Self::Ocsf => "ocsf",
        }
    }

    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|f| f.as_str() == s)
    }
}

impl fmt::Display for Format {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

/// The opening of a CPS line; the JSON object follows and one `}` closes it.
pub(crate) const CPS_PREFIX: &[u8] = b"{\"event\":";

/// Appends the unsigned line of `event`.
pub fn render_event(format: Format, event: &Event, cfg: &FormatConfig, out: &mut Vec<u8>) {
    write_line(format, None, out, |out| {
        render_covered(format, event, None, None, cfg, out)
    });
}

/// Appends the signed line of `event`.
pub fn sign_event(
    format: Format,
    event: &Event,
    cfg: &FormatConfig,
    key: &SigningKey,
    out: &mut Vec<u8>,
) {
    sign_event_with_id(format, event, None, None, cfg, key, out);
}

/// Appends the signed line of `event`, naming it by its stable id (DECISIONS.md D13) where the
/// format has a place for one: OCSF's `metadata.uid`. Konnect's formats do not change. With
/// `place` (a destination with `integrity`, DECISIONS.md S27) the line also carries the event's
/// log, index and leaf hash inside what it signs.
pub fn sign_event_with_id(
    format: Format,
    event: &Event,
    id: Option<Uuid>,
    place: Option<&LogPlace>,
    cfg: &FormatConfig,
    key: &SigningKey,
    out: &mut Vec<u8>,
) {
    write_line(format, Some(key), out, |out| {
        render_covered(format, event, id, place, cfg, out)
    });
}

/// Lines rendered one by one and signed together ([`SigningKey::sign_all`]): the same lines as
/// [`sign_event_with_id`] writes, for about four fifths of the signing CPU. A batch's shares
/// are signed so (DECISIONS.md S29).
///
/// The bytes each line's signature covers are kept until [`Self::sign`]; [`Signatures::write`]
/// then appends the whole line, sealed with its signature, wherever the caller wants it.
pub struct Unsigned {
    format: Format,
    /// The covered bytes of every line, one after another.
    bytes: Vec<u8>,
    /// Where each line's covered bytes end in `bytes`.
    ends: Vec<usize>,
}

impl Unsigned {
    /// Room for about `lines` lines of `format`.
    pub fn new(format: Format, lines: usize) -> Self {
        Self {
            format,
            bytes: Vec::with_capacity(lines * 512),
            ends: Vec::with_capacity(lines),
        }
    }

    /// Renders `event`'s line as [`sign_event_with_id`] would sign it; returns its index.
    pub fn push_event(
        &mut self,
        event: &Event,
        id: Option<Uuid>,
        place: Option<&LogPlace>,
        cfg: &FormatConfig,
    ) -> usize {
        render_covered(self.format, event, id, place, cfg, &mut self.bytes);
        self.ends.push(self.bytes.len());
        self.ends.len() - 1
    }

    /// Signs every line pushed so far with `key`, together.
    pub fn sign(&self, key: &SigningKey) -> Signatures<'_> {
        let messages: Vec<&[u8]> = (0..self.ends.len()).map(|i| self.message(i)).collect();
        Signatures {
            signatures: key.sign_all(&messages),
            lines: self,
        }
    }

    fn message(&self, index: usize) -> &[u8] {
        let start = index.checked_sub(1).map_or(0, |before| self.ends[before]);
        &self.bytes[start..self.ends[index]]
    }
}

/// The signatures of an [`Unsigned`]'s lines.
pub struct Signatures<'u> {
    lines: &'u Unsigned,
    signatures: Vec<Signature>,
}

impl Signatures<'_> {
    /// Appends line `index`, signed.
    pub fn write(&self, index: usize, out: &mut Vec<u8>) {
        let format = self.lines.format;
        open(format, out);
        out.extend_from_slice(self.lines.message(index));
        seal(format, Some(&self.signatures[index]), out);
    }
}

/// Appends what a line of `format` has before its covered bytes: CPS's `{"event":`.
fn open(format: Format, out: &mut Vec<u8>) {
    if format == Format::Cps {
        out.extend_from_slice(CPS_PREFIX);
    }
}

/// Appends a line of `format` whose covered bytes `render` appends, signed with `key` (or
/// unsigned without one).
fn write_line(
    format: Format,
    key: Option<&SigningKey>,
    out: &mut Vec<u8>,
    render: impl FnOnce(&mut Vec<u8>),
) {
    open(format, out);
    let start = out.len();
    render(out);
    let signature = key.map(|key| key.sign(&out[start..]));
    seal(format, signature.as_ref(), out);
}

/// Appends the bytes of `event`'s line that its signature covers (DECISIONS.md D6): CEF's
/// whole line without ` sig=…`, the JSON or OCSF object without `sig`, CPS's inner object
/// without it.
fn render_covered(
    format: Format,
    event: &Event,
    id: Option<Uuid>,
    place: Option<&LogPlace>,
    cfg: &FormatConfig,
    out: &mut Vec<u8>,
) {
    let mut leaf = [0u8; LEAF_B64];
    let place = place.map(|p| (p, leaf_hash_b64(&p.leaf_hash, &mut leaf)));
    match format {
        Format::Ocsf => ocsf::render(event, id, place, cfg, out),
        _ => {
            let view = View::from_event(event, cfg);
            let view = match place {
                Some((p, leaf)) => view.with_place(&p.log, p.index, leaf),
                None => view,
            };
            render_view(format, &view, &cfg.host, out);
        }
    }
}

/// Appends the covered bytes of `view`'s line in one of Konnect's formats.
fn render_view(format: Format, view: &View<'_>, host: &str, out: &mut Vec<u8>) {
    match format {
        Format::Cef => cef::render(view, host, out),
        Format::Json | Format::Cps => json::render(view, out),
        Format::Ocsf => panic!("an OCSF line is written from its event, not from a record"),
    }
}

/// Finishes the line whose covered bytes end `out`: splices `signature` in where `format` puts
/// it (CEF appends ` sig=…`; the JSON and OCSF objects, and the one inside CPS, end with
/// `,"sig":"…"`), and closes what [`open`] opened.
fn seal(format: Format, signature: Option<&Signature>, out: &mut Vec<u8>) {
    if let Some(signature) = signature {
        match format {
            Format::Cef => {
                out.extend_from_slice(b" sig=");
                push_signature_b64(signature, out);
            }
            Format::Json | Format::Cps | Format::Ocsf => {
                // Reopen the object: the covered bytes end with its `}`, the line carries `sig`
                // last.
                out.pop();
                out.extend_from_slice(b",\"sig\":\"");
                push_signature_b64(signature, out);
                out.extend_from_slice(b"\"}");
            }
        }
    }
    if format == Format::Cps {
        out.push(b'}');
    }
}

/// The length of a 32-byte hash in standard base64.
const LEAF_B64: usize = 44;

/// `hash` in standard base64, written into `buf`.
fn leaf_hash_b64<'b>(hash: &[u8; 32], buf: &'b mut [u8; LEAF_B64]) -> &'b str {
    use base64::Engine as _;
    let n = base64::engine::general_purpose::STANDARD
        .encode_slice(hash, buf)
        .expect("32 bytes fit 44 in base64");
    std::str::from_utf8(&buf[..n]).expect("base64 is ASCII")
}

/// Appends the signed line of a checkpoint event (DECISIONS.md S27) in `format`.
pub fn sign_checkpoint(
    format: Format,
    checkpoint: &CheckpointEvent,
    cfg: &FormatConfig,
    key: &SigningKey,
    out: &mut Vec<u8>,
) {
    write_line(format, Some(key), out, |out| match format {
        Format::Ocsf => ocsf::render_checkpoint(checkpoint, cfg, out),
        _ => {
            let record = record::checkpoint_record(checkpoint, cfg);
            render_view(format, &View::from_record(&record), &cfg.host, out);
        }
    });
}

/// Appends the unsigned line of `record`; `host` is used by CEF only.
///
/// # Panics
/// For [`Format::Ocsf`]: a record is the content of Konnect's formats, and an OCSF line is
/// written from its event.
pub fn render_record(format: Format, record: &Record, host: &str, out: &mut Vec<u8>) {
    let view = View::from_record(record);
    write_line(format, None, out, |out| {
        render_view(format, &view, host, out)
    });
}

/// Appends the signed line of `record`; `host` is used by CEF only.
///
/// # Panics
/// For [`Format::Ocsf`], as [`render_record`].
pub fn sign_record(
    format: Format,
    record: &Record,
    host: &str,
    key: &SigningKey,
    out: &mut Vec<u8>,
) {
    let view = View::from_record(record);
    write_line(format, Some(key), out, |out| {
        render_view(format, &view, host, out)
    });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    const SPECIALS: Specials = specials([b'"', b'|']);

    fn escape(s: &str) -> String {
        let mut out = Vec::new();
        escape_into(s, &mut out, &SPECIALS, |b| (b == b'|').then_some(b"\\|"));
        String::from_utf8(out).unwrap()
    }

    /// What escaping one character at a time gives. (`"` is special to the scan but has no
    /// short form here: copied as it is.)
    fn one_by_one(s: &str) -> String {
        s.chars()
            .map(|c| match c {
                '|' => "\\|".to_owned(),
                c if is_control(c) => format!("\\u{:04x}", u32::from(c)),
                c => c.to_string(),
            })
            .collect()
    }

    /// The word-at-a-time scan finds every special character wherever it stands in a long
    /// run of plain text, and passes over characters that are not special (`é`, U+00A0,
    /// U+2027) as the byte-by-byte one did.
    #[test]
    fn escaping_finds_a_special_character_at_any_place() {
        let mut characters: Vec<char> = (0..0x20u8).map(char::from).collect();
        characters.extend(['|', '"', '\u{7f}', '\u{80}', '\u{85}', '\u{9f}', '\u{2028}']);
        characters.extend(['\u{2029}', 'é', '\u{a0}', '\u{2027}', '😀', '~', ' ', '!']);
        for c in characters {
            for at in 0..40 {
                let text: String = (0..40).map(|i| if i == at { c } else { 'a' }).collect();
                assert_eq!(escape(&text), one_by_one(&text), "{c:?} at {at}");
            }
        }
    }

    proptest! {
        /// Any mix, dense in the bytes at the scan's edges (0x00, 0x1f, 0x20, 0x7e, 0x7f, the
        /// lead and continuation bytes of C1, U+00FF's 0xc3 0xbf, U+2028's 0xe2 0x80 0xa8, a
        /// four-byte character), escapes as one character at a time does.
        #[test]
        fn escaping_a_word_at_a_time_is_escaping_one_character_at_a_time(
            text in "[a \\x00\\x1f~\\x7f\\u{80}\\u{85}\\u{9f}\\u{a0}\\u{ff}\\u{2027}\\u{2028}\\u{2029}\\u{ffff}😀\"|=\\\\]{0,64}"
        ) {
            prop_assert_eq!(escape(&text), one_by_one(&text));
        }
    }
}

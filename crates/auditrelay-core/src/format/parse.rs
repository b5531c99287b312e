//! Reading our own lines back: format detection, unescaping, the signed bytes and the signature.
//!
//! This serves `auditrelay verify` and `listen`, and the round-trip tests: a parsed line compares
//! equal to the [`Record`] it was rendered from, whatever the format. The parser is strict where
//! strictness costs nothing (unknown escapes, non-integer numbers, duplicate keys are refused),
//! since every line it is meant for was written by our renderers or by Konnect's, which use the
//! same grammar. It never panics on any input; the fuzz target `parse_line` holds it to that.
//!
//! The signed bytes of a CEF, JSON or CPS line are cut out of it exactly as DECISIONS.md D6
//! describes, never re-rendered, so verification does not depend on the parser and renderer
//! agreeing on anything. OCSF lines are the exception: they are verified by writing their
//! canonical form again (`ocsf::verify`, DECISIONS.md S17).

use std::borrow::Cow;

use super::cef::unescape;
use super::error::{ParseError, VerifyError};
use super::record::{Extension, Header, Kind, Record, Value, kind_of, order_for_name};
use super::{CPS_PREFIX, Format};
use crate::signing::{Kid, PublicKey, decode_signature_b64, find_signer};

/// A line taken apart.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ParsedLine<'a> {
    pub format: Format,
    /// The syslog host of a CEF line; JSON and CPS carry none.
    pub host: Option<String>,
    pub record: Record,
    /// Exactly the bytes the signature covers.
    pub signed: Cow<'a, [u8]>,
    /// The `sig` value as written (base64url), when the line has one.
    pub signature: Option<Cow<'a, str>>,
}

/// Takes one line (without its newline) apart.
pub fn parse_line(line: &[u8]) -> Result<ParsedLine<'_>, ParseError> {
    let text = std::str::from_utf8(line).map_err(|_| ParseError::NotUtf8)?;
    if line.starts_with(CPS_PREFIX) {
        let inner = text
            .strip_suffix('}')
            .and_then(|t| t.get(CPS_PREFIX.len()..))
            .ok_or(ParseError::Json {
                at: line.len(),
                what: "a CPS line must end with the `}` of its wrapper",
            })?;
        let (record, signed, signature) = parse_json(inner, CPS_PREFIX.len())?;
        Ok(ParsedLine {
            format: Format::Cps,
            host: None,
            record,
            signed,
            signature,
        })
    } else if line.starts_with(b"{") {
        let (record, signed, signature) = parse_json(text, 0)?;
        Ok(ParsedLine {
            format: Format::Json,
            host: None,
            record,
            signed,
            signature,
        })
    } else if text.contains("CEF:0|") {
        parse_cef(text)
    } else {
        Err(ParseError::UnknownFormat)
    }
}

/// Verifies a line against every key (lines carry no kid) and names the key that signed it.
/// An OCSF line, which does not read back as a [`Record`], is verified as such
/// ([`super::ocsf::verify`]).
pub fn verify_line(line: &[u8], keys: &[PublicKey]) -> Result<Kid, VerifyError> {
    if super::ocsf::is_ocsf(line) {
        return super::ocsf::verify(line, keys);
    }
    parse_line(line)?.verify(keys)
}

/// What a verified line was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Signed {
    /// A delivered line: CEF, JSON, CPS or OCSF, as a webhook sends it.
    Line,
    /// An entry of the pull API (`GET /v3/audit-logs`'s `data`), one per line.
    PullEntry,
}

/// Verifies a delivered line or, failing that, a pull-API entry (`jq -c '.data[]'` writes
/// them one per line). A line that is neither says why it fails as what it most looks like.
pub fn verify_line_or_entry(line: &[u8], keys: &[PublicKey]) -> Result<(Kid, Signed), VerifyError> {
    let as_line = match verify_line(line, keys) {
        Ok(kid) => return Ok((kid, Signed::Line)),
        Err(e) => e,
    };
    if !line.starts_with(b"{") {
        return Err(as_line);
    }
    match super::pull::verify_pull_entry(line, keys) {
        Ok(kid) => Ok((kid, Signed::PullEntry)),
        // Not one of our delivered lines at all: the entry's reason is the one that means
        // something.
        Err(as_entry) if matches!(as_line, VerifyError::Unparsable(_)) => Err(as_entry),
        Err(_) => Err(as_line),
    }
}

impl ParsedLine<'_> {
    pub fn verify(&self, keys: &[PublicKey]) -> Result<Kid, VerifyError> {
        let text = self.signature.as_deref().ok_or(VerifyError::NoSignature)?;
        let signature = decode_signature_b64(text.as_bytes()).ok_or(VerifyError::BadBase64)?;
        find_signer(keys, &self.signed, &signature)
            .map(|key| key.kid().clone())
            .ok_or(VerifyError::NoKeyMatches)
    }
}

fn field_error(key: &str, what: &'static str) -> ParseError {
    ParseError::Field {
        key: key.to_owned(),
        what,
    }
}

/// The typed value of an extension read from CEF text, where the key decides the type.
/// Text that does not have the key's form stays a string, so nothing is lost.
fn typed(key: &str, raw: String) -> Value {
    match kind_of(key) {
        Kind::Int if is_canonical_integer(&raw) => raw.parse().map_or(Value::Str(raw), Value::Int),
        Kind::Bool if raw == "true" => Value::Bool(true),
        Kind::Bool if raw == "false" => Value::Bool(false),
        _ => Value::Str(raw),
    }
}

/// The form an `i64` is written in: optional `-`, digits, no leading zero.
fn is_canonical_integer(s: &str) -> bool {
    let digits = s.strip_prefix('-').unwrap_or(s);
    !digits.is_empty()
        && digits.bytes().all(|b| b.is_ascii_digit())
        && (digits == "0" || !digits.starts_with('0'))
        && s != "-0"
}

// ---------------------------------------------------------------------------------------------
// CEF

/// Positions of the bytes in `s` equal to `target` and not preceded by an escaping `\`.
/// `None` if the text ends inside an escape.
fn unescaped_positions(s: &[u8], target: u8, limit: usize) -> Option<Vec<usize>> {
    let mut found = Vec::new();
    let mut i = 0;
    while i < s.len() && found.len() < limit {
        match s[i] {
            b'\\' if i + 1 >= s.len() => return None,
            b'\\' => i += 2,
            b if b == target => {
                found.push(i);
                i += 1;
            }
            _ => i += 1,
        }
    }
    Some(found)
}

fn parse_cef(text: &str) -> Result<ParsedLine<'_>, ParseError> {
    const MARK: &str = " CEF:0|";
    let mark = text.find(MARK).ok_or(ParseError::Cef(
        "expected `{time} {host} CEF:0|` at the start",
    ))?;
    let (event_ts, host) = text[..mark].split_once(' ').ok_or(ParseError::Cef(
        "expected a time and a host before `CEF:0|`",
    ))?;
    let unescape_header = |s: &str| unescape(s, b'|').ok_or(ParseError::Cef("bad header escape"));
    let event_ts = unescape_header(event_ts)?;
    let host = unescape_header(host)?;

    let header_start = mark + MARK.len();
    let rest = &text[header_start..];
    let pipes = unescaped_positions(rest.as_bytes(), b'|', 6)
        .ok_or(ParseError::Cef("dangling escape in the header"))?;
    if pipes.len() < 6 {
        return Err(ParseError::Cef(
            "the header needs seven `|`-separated fields",
        ));
    }
    let mut fields = Vec::with_capacity(6);
    let mut from = 0;
    for &at in &pipes {
        fields.push(unescape_header(&rest[from..at])?);
        from = at + 1;
    }
    let severity_text = &fields[5];
    let severity = is_canonical_integer(severity_text)
        .then(|| severity_text.parse::<u8>().ok())
        .flatten()
        .ok_or(ParseError::Cef("severity must be an integer from 0 to 255"))?;
    let ext_start = header_start + from;
    let (extensions, signature) = parse_extensions(text, ext_start)?;

    let signed = match &signature {
        Some((key_start, _)) => &text.as_bytes()[..key_start - 1],
        None => text.as_bytes(),
    };
    let mut fields = fields.into_iter();
    let mut next = || fields.next().unwrap_or_default();
    let header = Header {
        event_ts,
        vendor: next(),
        product: next(),
        version: next(),
        event_class_id: next(),
        name: next(),
        severity,
    };
    Ok(ParsedLine {
        format: Format::Cef,
        host: Some(host),
        record: Record { header, extensions },
        signed: Cow::Borrowed(signed),
        signature: signature.map(|(_, sig)| Cow::Borrowed(sig)),
    })
}

/// Splits `text[start..]` into `key=value` pairs. A key is the run of non-space text before an
/// unescaped `=`, and a value runs to the single space before the next key, so values may hold
/// spaces and may be empty. A trailing `sig` is returned apart, with its key's position.
#[expect(clippy::type_complexity, reason = "a private helper's one result")]
fn parse_extensions(
    text: &str,
    start: usize,
) -> Result<(Vec<Extension>, Option<(usize, &str)>), ParseError> {
    let ext = &text[start..];
    let equals = unescaped_positions(ext.as_bytes(), b'=', usize::MAX)
        .ok_or(ParseError::Cef("dangling escape in the extensions"))?;
    if equals.is_empty() {
        return if ext.is_empty() {
            Ok((Vec::new(), None))
        } else {
            Err(ParseError::Cef("extension text without `key=value`"))
        };
    }
    // The start of each key: just after the last space before its `=`.
    let mut key_starts = Vec::with_capacity(equals.len());
    let mut floor = 0;
    for (n, &eq) in equals.iter().enumerate() {
        let key_start = match ext[floor..eq].rfind(' ') {
            Some(space) => floor + space + 1,
            None if n == 0 => 0,
            None => return Err(ParseError::Cef("a value runs into the next key")),
        };
        if key_start == eq {
            return Err(ParseError::Cef("empty extension key"));
        }
        key_starts.push(key_start);
        floor = eq + 1;
    }

    let mut extensions = Vec::with_capacity(equals.len());
    let mut signature = None;
    for (n, (&key_start, &eq)) in key_starts.iter().zip(&equals).enumerate() {
        let raw_key = &ext[key_start..eq];
        let is_last = n + 1 == equals.len();
        let value_end = if is_last {
            ext.len()
        } else {
            key_starts[n + 1] - 1
        };
        let raw_value = &ext[eq + 1..value_end];
        if n == 0 && key_start != 0 {
            // Only a lone `sig` on a record without extensions follows the header's `|` with
            // the space the signing rule puts in front of ` sig=`.
            if !(is_last && raw_key == "sig" && key_start == 1) {
                return Err(ParseError::Cef("text before the first extension"));
            }
        }
        if raw_key == "sig" {
            if !is_last {
                return Err(ParseError::Cef("`sig` must be the last extension"));
            }
            if key_start == 0 {
                // The signed bytes end before ` sig=`; without the space there is no such cut.
                return Err(ParseError::Cef("`sig` must follow a space"));
            }
            signature = Some((start + key_start, raw_value));
            continue;
        }
        let key =
            unescape(raw_key, b'=').ok_or(ParseError::Cef("bad escape in an extension key"))?;
        let value =
            unescape(raw_value, b'=').ok_or(ParseError::Cef("bad escape in an extension value"))?;
        if extensions.iter().any(|e: &Extension| e.key == key) {
            return Err(field_error(&key, "appears twice"));
        }
        extensions.push(Extension {
            value: typed(&key, value),
            key,
        });
    }
    Ok((extensions, signature))
}

// ---------------------------------------------------------------------------------------------
// JSON

enum JsonValue<'a> {
    Str(Cow<'a, str>),
    Int(i64),
    Bool(bool),
}

struct Member<'a> {
    key: Cow<'a, str>,
    value: JsonValue<'a>,
    /// Where the member starts in the object text, counting its preceding comma if it has one.
    lead: usize,
    /// Just past its value.
    end: usize,
}

/// A reader for the flat objects our lines are: string keys; string, integer or boolean values.
struct Reader<'a> {
    text: &'a str,
    at: usize,
    /// Offset of `text` in the line, for error positions.
    base: usize,
}

impl<'a> Reader<'a> {
    fn err<T>(&self, what: &'static str) -> Result<T, ParseError> {
        Err(ParseError::Json {
            at: self.base + self.at,
            what,
        })
    }

    fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while matches!(self.peek(), Some(b' ' | b'\t' | b'\n' | b'\r')) {
            self.at += 1;
        }
    }

    fn eat(&mut self, byte: u8, what: &'static str) -> Result<(), ParseError> {
        if self.peek() == Some(byte) {
            self.at += 1;
            Ok(())
        } else {
            self.err(what)
        }
    }

    fn string(&mut self) -> Result<Cow<'a, str>, ParseError> {
        self.eat(b'"', "expected a string")?;
        let start = self.at;
        let bytes = self.text.as_bytes();
        // Fast path: no escapes, borrow the text.
        while let Some(&b) = bytes.get(self.at) {
            match b {
                b'"' => {
                    self.at += 1;
                    return Ok(Cow::Borrowed(&self.text[start..self.at - 1]));
                }
                b'\\' => break,
                0x00..=0x1f => return self.err("raw control character in a string"),
                _ => self.at += 1,
            }
        }
        let mut out = String::from(&self.text[start..self.at]);
        loop {
            let Some(c) = self.text[self.at..].chars().next() else {
                return self.err("unterminated string");
            };
            self.at += c.len_utf8();
            match c {
                '"' => return Ok(Cow::Owned(out)),
                '\\' => {
                    let Some(e) = self.peek() else {
                        return self.err("unterminated escape");
                    };
                    self.at += 1;
                    match e {
                        b'"' => out.push('"'),
                        b'\\' => out.push('\\'),
                        b'/' => out.push('/'),
                        b'b' => out.push('\u{8}'),
                        b'f' => out.push('\u{c}'),
                        b'n' => out.push('\n'),
                        b'r' => out.push('\r'),
                        b't' => out.push('\t'),
                        b'u' => out.push(self.unicode_escape()?),
                        _ => return self.err("unknown escape"),
                    }
                }
                '\u{0}'..='\u{1f}' => return self.err("raw control character in a string"),
                c => out.push(c),
            }
        }
    }

    fn hex4(&mut self) -> Result<u32, ParseError> {
        let digits = self.text.get(self.at..self.at + 4);
        match digits.and_then(|d| {
            d.bytes()
                .all(|b| b.is_ascii_hexdigit())
                .then(|| u32::from_str_radix(d, 16).ok())
                .flatten()
        }) {
            Some(n) => {
                self.at += 4;
                Ok(n)
            }
            None => self.err("expected four hex digits"),
        }
    }

    /// After `\u`: one code point, joining a surrogate pair.
    fn unicode_escape(&mut self) -> Result<char, ParseError> {
        let first = self.hex4()?;
        let code = match first {
            0xd800..=0xdbff => {
                if !self.text[self.at..].starts_with("\\u") {
                    return self.err("unpaired surrogate");
                }
                self.at += 2;
                let second = self.hex4()?;
                if !(0xdc00..=0xdfff).contains(&second) {
                    return self.err("unpaired surrogate");
                }
                0x10000 + ((first - 0xd800) << 10) + (second - 0xdc00)
            }
            0xdc00..=0xdfff => return self.err("unpaired surrogate"),
            n => n,
        };
        match char::from_u32(code) {
            Some(c) => Ok(c),
            None => self.err("invalid code point"),
        }
    }

    fn value(&mut self) -> Result<JsonValue<'a>, ParseError> {
        match self.peek() {
            Some(b'"') => Ok(JsonValue::Str(self.string()?)),
            Some(b't') if self.text[self.at..].starts_with("true") => {
                self.at += 4;
                Ok(JsonValue::Bool(true))
            }
            Some(b'f') if self.text[self.at..].starts_with("false") => {
                self.at += 5;
                Ok(JsonValue::Bool(false))
            }
            Some(b'-' | b'0'..=b'9') => {
                let start = self.at;
                if self.peek() == Some(b'-') {
                    self.at += 1;
                }
                while matches!(self.peek(), Some(b'0'..=b'9')) {
                    self.at += 1;
                }
                if matches!(self.peek(), Some(b'.' | b'e' | b'E')) {
                    return self.err("only integers are expected");
                }
                let digits = &self.text[start..self.at];
                if !is_canonical_integer(digits) {
                    return self.err("malformed integer");
                }
                match digits.parse() {
                    Ok(n) => Ok(JsonValue::Int(n)),
                    Err(_) => self.err("integer out of range"),
                }
            }
            _ => self.err("expected a string, an integer or a boolean"),
        }
    }

    /// The members of one flat object that must make up the whole text.
    fn object(&mut self) -> Result<Vec<Member<'a>>, ParseError> {
        let mut members = Vec::with_capacity(24);
        self.eat(b'{', "expected `{`")?;
        self.skip_ws();
        if self.peek() == Some(b'}') {
            self.at += 1;
        } else {
            let mut lead = self.at;
            loop {
                self.skip_ws();
                let key = self.string()?;
                self.skip_ws();
                self.eat(b':', "expected `:`")?;
                self.skip_ws();
                let value = self.value()?;
                members.push(Member {
                    key,
                    value,
                    lead,
                    end: self.at,
                });
                self.skip_ws();
                match self.peek() {
                    Some(b',') => {
                        // The comma belongs to the next member: DECISIONS.md D6 removes `,"sig":…`.
                        lead = self.at;
                        self.at += 1;
                    }
                    Some(b'}') => {
                        self.at += 1;
                        break;
                    }
                    _ => return self.err("expected `,` or `}`"),
                }
            }
        }
        self.skip_ws();
        if self.at != self.text.len() {
            return self.err("text after the object");
        }
        Ok(members)
    }
}

const HEADER_KEYS: [&str; 8] = [
    "cef_version",
    "event_class_id",
    "event_product",
    "event_ts",
    "event_vendor",
    "event_version",
    "name",
    "severity",
];

#[expect(clippy::type_complexity, reason = "a private helper's one result")]
fn parse_json(
    text: &str,
    base: usize,
) -> Result<(Record, Cow<'_, [u8]>, Option<Cow<'_, str>>), ParseError> {
    let mut reader = Reader { text, at: 0, base };
    let members = reader.object()?;

    let mut signed = Cow::Borrowed(text.as_bytes());
    let mut signature = None;
    if let Some(n) = members.iter().position(|m| m.key == "sig") {
        let sig = &members[n];
        let JsonValue::Str(value) = &sig.value else {
            return Err(field_error("sig", "must be a string"));
        };
        // Cut out `,"sig":"…"`; a leading sig takes its following comma instead.
        let (cut_from, cut_to) = match (n, members.get(1)) {
            (0, Some(next)) => (sig.lead, next.lead + 1),
            _ => (sig.lead, sig.end),
        };
        let mut bytes = Vec::with_capacity(text.len() - (cut_to - cut_from));
        bytes.extend_from_slice(&text.as_bytes()[..cut_from]);
        bytes.extend_from_slice(&text.as_bytes()[cut_to..]);
        signed = Cow::Owned(bytes);
        signature = Some(value.clone());
    }

    let mut header: [Option<&JsonValue<'_>>; 8] = [None; 8];
    let mut extensions = Vec::with_capacity(members.len());
    for (n, member) in members.iter().enumerate() {
        if members[..n].iter().any(|m| m.key == member.key) {
            return Err(field_error(&member.key, "appears twice"));
        }
        if member.key == "sig" {
            continue;
        }
        if let Some(slot) = HEADER_KEYS.iter().position(|k| *k == member.key) {
            header[slot] = Some(&member.value);
            continue;
        }
        let value = match &member.value {
            JsonValue::Str(s) => Value::Str(s.clone().into_owned()),
            JsonValue::Int(i) => Value::Int(*i),
            JsonValue::Bool(b) => Value::Bool(*b),
        };
        extensions.push(Extension {
            key: member.key.clone().into_owned(),
            value,
        });
    }

    let [
        cef_version,
        class,
        product,
        event_ts,
        vendor,
        version,
        name,
        severity,
    ] = header;
    match cef_version {
        Some(JsonValue::Int(0)) => {}
        // Konnect's older examples quote it.
        Some(JsonValue::Str(s)) if s == "0" => {}
        Some(_) => return Err(field_error("cef_version", "must be 0")),
        None => return Err(field_error("cef_version", "is missing")),
    }
    let text_field = |value: Option<&JsonValue<'_>>, key: &str| match value {
        Some(JsonValue::Str(s)) => Ok(s.clone().into_owned()),
        Some(_) => Err(field_error(key, "must be a string")),
        None => Err(field_error(key, "is missing")),
    };
    let severity = match severity {
        Some(JsonValue::Int(n)) => {
            u8::try_from(*n).map_err(|_| field_error("severity", "must be from 0 to 255"))?
        }
        Some(_) => return Err(field_error("severity", "must be an integer")),
        None => return Err(field_error("severity", "is missing")),
    };
    let header = Header {
        event_ts: text_field(event_ts, "event_ts")?,
        vendor: text_field(vendor, "event_vendor")?,
        product: text_field(product, "event_product")?,
        version: text_field(version, "event_version")?,
        event_class_id: text_field(class, "event_class_id")?,
        name: text_field(name, "name")?,
        severity,
    };
    // JSON sorts keys; give the extensions back in the order the CEF form and the record use.
    if let Some(order) = order_for_name(&header.name) {
        extensions.sort_by_key(|e| order.iter().position(|k| *k == e.key).unwrap_or(usize::MAX));
    }
    Ok((Record { header, extensions }, signed, signature))
}

//! Log lines: rendering an event as CEF, JSON or CPS, signing it, and reading our lines back.
//!
//! Rendering and signing are one pass over one caller-owned buffer: the unsigned form is written,
//! its bytes are signed in place, and the signature is spliced in (Decision 6: CEF appends
//! ` sig=…`; JSON and the object inside CPS end with `,"sig":"…"`). Nothing is allocated per
//! line, so the cost of a signed line is the Ed25519 signature and little else.
//!
//! Every function appends to the buffer and writes no newline, so a batch is built by calling
//! them in a loop with `b'\n'` pushed in between.

mod cef;
mod json;
pub mod parse;
pub mod pull;
pub mod record;

use std::fmt;

use crate::event::Event;
use crate::signing::{SigningKey, push_signature_b64};
use record::View;

pub use parse::{ParseError, ParsedLine, VerifyError, parse_line, verify_line};
pub use record::{Extension, FormatConfig, Header, Record, Value};

/// A destination's `log_format`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Format {
    Cef,
    Json,
    Cps,
}

impl Format {
    pub const ALL: [Format; 3] = [Self::Cef, Self::Json, Self::Cps];

    /// The wire name used by the destinations API (`cef`, `json`, `cps`).
    pub fn as_str(self) -> &'static str {
        match self {
            Self::Cef => "cef",
            Self::Json => "json",
            Self::Cps => "cps",
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
    write(format, &View::from_event(event, cfg), &cfg.host, None, out);
}

/// Appends the signed line of `event`.
pub fn sign_event(
    format: Format,
    event: &Event,
    cfg: &FormatConfig,
    key: &SigningKey,
    out: &mut Vec<u8>,
) {
    write(
        format,
        &View::from_event(event, cfg),
        &cfg.host,
        Some(key),
        out,
    );
}

/// Appends the unsigned line of `record`; `host` is used by CEF only.
pub fn render_record(format: Format, record: &Record, host: &str, out: &mut Vec<u8>) {
    write(format, &View::from_record(record), host, None, out);
}

/// Appends the signed line of `record`; `host` is used by CEF only.
pub fn sign_record(
    format: Format,
    record: &Record,
    host: &str,
    key: &SigningKey,
    out: &mut Vec<u8>,
) {
    write(format, &View::from_record(record), host, Some(key), out);
}

fn write(format: Format, view: &View<'_>, host: &str, key: Option<&SigningKey>, out: &mut Vec<u8>) {
    match format {
        Format::Cef => {
            let start = out.len();
            cef::render(view, host, out);
            if let Some(key) = key {
                let signature = key.sign(&out[start..]);
                out.extend_from_slice(b" sig=");
                push_signature_b64(&signature, out);
            }
        }
        Format::Json => write_json(view, key, out),
        Format::Cps => {
            out.extend_from_slice(CPS_PREFIX);
            write_json(view, key, out);
            out.push(b'}');
        }
    }
}

fn write_json(view: &View<'_>, key: Option<&SigningKey>, out: &mut Vec<u8>) {
    let start = out.len();
    json::render(view, out);
    if let Some(key) = key {
        let signature = key.sign(&out[start..]);
        // Reopen the object: the signed bytes end with its `}`, the line carries `sig` last.
        out.pop();
        out.extend_from_slice(b",\"sig\":\"");
        push_signature_b64(&signature, out);
        out.extend_from_slice(b"\"}");
    }
}

//! Lines that are not ours, or not intact, are refused with the error that says why.

use auditrelay_core::format::{
    Format, ParseError, VerifyError, parse_line, render_event, sign_event, verify_line,
};
use auditrelay_core::{FormatConfig, SigningKey};

use crate::support::{authorization, key};

fn signed(format: Format) -> String {
    let mut line = Vec::new();
    sign_event(
        format,
        &authorization(),
        &FormatConfig::default(),
        &key(),
        &mut line,
    );
    String::from_utf8(line).unwrap()
}

fn verify(line: &str) -> Result<String, VerifyError> {
    verify_line(line.as_bytes(), std::slice::from_ref(key().public_key()))
        .map(|kid| kid.to_string())
}

/// A line and what its error must look like.
type Case = (&'static [u8], fn(&ParseError) -> bool);

#[test]
fn unparsable_lines() {
    let cases: &[Case] = &[
        (b"", |e| *e == ParseError::UnknownFormat),
        (b"hello world", |e| *e == ParseError::UnknownFormat),
        (b"\xff{}", |e| *e == ParseError::NotUtf8),
        (b"{", |e| matches!(e, ParseError::Json { at: 1, .. })),
        (
            b"{}",
            |e| matches!(e, ParseError::Field { key, .. } if key == "cef_version"),
        ),
        (b"{\"cef_version\":1.5}", |e| {
            matches!(e, ParseError::Json { .. })
        }),
        (
            b"{\"a\":1,\"a\":2}",
            |e| matches!(e, ParseError::Field { key, .. } if key == "a"),
        ),
        (b"{\"event\":{}", |e| matches!(e, ParseError::Json { .. })),
        (b"{\"event\":{}} ", |e| matches!(e, ParseError::Json { .. })),
        (b"CEF:0|a|b|c|d|e|1|", |e| matches!(e, ParseError::Cef(_))),
        (b"t h CEF:0|a|b|c|d|e|", |e| matches!(e, ParseError::Cef(_))),
        (b"t h CEF:0|a|b|c|d|e|x|", |e| {
            matches!(e, ParseError::Cef(_))
        }),
        (b"t h CEF:0|a|b|c|d|e|1|k=v\\", |e| {
            matches!(e, ParseError::Cef(_))
        }),
        (b"t h CEF:0|a|b|c|d|e|1|k=v\\t", |e| {
            matches!(e, ParseError::Cef(_))
        }),
        (b"t h CEF:0|a|b|c|d|e|1|junk k=v", |e| {
            matches!(e, ParseError::Cef(_))
        }),
        (b"t h CEF:0|a|b|c|d|e|1|k=v=w", |e| {
            matches!(e, ParseError::Cef(_))
        }),
        (b"t h CEF:0|a|b|c|d|e|1|sig=x k=v", |e| {
            matches!(e, ParseError::Cef(_))
        }),
    ];
    for (line, expected) in cases {
        let err = parse_line(line).expect_err(&String::from_utf8_lossy(line));
        assert!(expected(&err), "{}: {err:?}", String::from_utf8_lossy(line));
    }
}

#[test]
fn verification_errors() {
    for format in Format::KONNECT {
        let line = signed(format);
        assert_eq!(verify(&line), Ok(key().kid().to_string()), "{format}");

        let mut unsigned = Vec::new();
        render_event(
            format,
            &authorization(),
            &FormatConfig::default(),
            &mut unsigned,
        );
        assert_eq!(
            verify(std::str::from_utf8(&unsigned).unwrap()),
            Err(VerifyError::NoSignature),
            "{format}"
        );

        let marker = if format == Format::Cef {
            " sig="
        } else {
            "\"sig\":\""
        };
        let sig_start = line.find(marker).unwrap() + marker.len();
        let sig = &line[sig_start..sig_start + 86];
        let padded = line.replacen(sig, &format!("{sig}=="), 1);
        let short = line.replacen(sig, &sig[..85], 1);
        let bad_char = line.replacen(sig, &format!("{}+", &sig[..85]), 1);
        for broken in [padded, short, bad_char] {
            assert!(
                matches!(
                    verify(&broken),
                    Err(VerifyError::BadBase64 | VerifyError::Unparsable(_))
                ),
                "{format}: {broken}"
            );
        }

        let other = SigningKey::from_seed(&[7; 32]);
        assert_eq!(
            verify_line(line.as_bytes(), std::slice::from_ref(other.public_key())),
            Err(VerifyError::NoKeyMatches)
        );
        assert_eq!(
            verify_line(line.as_bytes(), &[]),
            Err(VerifyError::NoKeyMatches)
        );
        // Entries carry no kid: any key of the set may be the signer.
        let both = [other.public_key().clone(), key().public_key().clone()];
        assert_eq!(
            verify_line(line.as_bytes(), &both).as_ref(),
            Ok(key().kid())
        );
    }
}

/// Signed bytes are cut out of the line, so whitespace a JSON producer added is covered too,
/// and a line whose `sig` is not last is still read by DECISIONS.md D6's rule.
#[test]
fn json_signed_bytes_follow_the_line() {
    let line = signed(Format::Json);
    let parsed = parse_line(line.as_bytes()).unwrap();
    let (body, _) = line.rsplit_once(",\"sig\":").unwrap();
    assert_eq!(&*parsed.signed, format!("{body}}}").as_bytes());

    // `sig` moved to the front: the same object remains once it is cut out, so it verifies.
    let sig_member = &line[body.len() + 1..line.len() - 1];
    let moved = format!("{{{sig_member},{}", &body[1..]) + "}";
    assert_eq!(verify(&moved), Ok(key().kid().to_string()), "{moved}");
    // Spacing is part of the signed bytes: added spaces break the signature, not the parse.
    let spaced = line.replacen("\":", "\": ", 1);
    assert_eq!(verify(&spaced), Err(VerifyError::NoKeyMatches));
}

/// A hand-made record without extensions still gets ` sig=` with its space, and reads back.
#[test]
fn record_without_extensions() {
    let mut record =
        auditrelay_core::Record::from_event(&authorization(), &FormatConfig::default());
    record.extensions.clear();
    for format in Format::KONNECT {
        let mut line = Vec::new();
        auditrelay_core::format::sign_record(format, &record, "h", &key(), &mut line);
        let parsed = parse_line(&line).unwrap();
        assert_eq!(parsed.record, record, "{format}");
        assert_eq!(
            parsed
                .verify(std::slice::from_ref(key().public_key()))
                .as_ref(),
            Ok(key().kid())
        );
    }
}

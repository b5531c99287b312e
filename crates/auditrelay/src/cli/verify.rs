//! `auditrelay verify`: checks the signatures of delivered lines and pull-API entries against a
//! JWKS, naming every line that fails; and, for the lines of destinations with `integrity`,
//! that their logs are whole between checkpoints (`completeness` in the core), naming every
//! index missing, altered or duplicated and every gap in checkpoints.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};

use anyhow::{Context as _, bail};
use auditrelay_core::PublicKey;
use auditrelay_core::Timestamp;
use auditrelay_core::checkpoint::InclusionBundle;
use auditrelay_core::completeness::{Audit, LogReport, line_digest};
use auditrelay_core::format::carried::{Carried, carried};
use auditrelay_core::format::{Signed, verify_line_or_entry};
use auditrelay_core::merkle::Hash;
use base64::Engine as _;
use base64::engine::general_purpose::STANDARD;
use flate2::read::MultiGzDecoder;

use super::VerifyArgs;
use crate::client::{CHECKPOINT_KEY_PATH, DEFAULT_URL, JWKS_PATH, load_checkpoint_key, load_jwks};

pub async fn run(args: VerifyArgs) -> anyhow::Result<()> {
    if let Some(proof) = &args.proof {
        return verify_proof(proof, &args).await;
    }
    let source = match &args.jwks {
        Some(source) => source.clone(),
        None => server_url(JWKS_PATH),
    };
    let keys = load_jwks(&source).await?;
    let mut seen = Seen::default();
    let mut out = io::stdout().lock();
    let named = args.input.len() > 1;
    for input in &args.input {
        let lines = open_lines(input)?;
        let prefix = if named {
            format!("{input}: ")
        } else {
            String::new()
        };
        verify_lines(lines, &keys, &prefix, &mut seen, &mut out)?;
    }
    drop(out);
    let Seen {
        total,
        invalid,
        carried,
    } = seen;
    if total == 0 {
        bail!("no lines to verify in {}", args.input.join(", "));
    }
    let mut failed = Vec::new();
    if invalid > 0 {
        failed.push(format!("{invalid} of {total} lines failed verification"));
    }
    if !carried.is_empty() {
        // Lines of a destination with `integrity`: what they prove of their logs.
        let source = match &args.checkpoint_key {
            Some(source) => source.clone(),
            None => server_url(CHECKPOINT_KEY_PATH),
        };
        let (name, key) = load_checkpoint_key(&source).await?;
        let until = match &args.until {
            Some(until) => Some(
                Timestamp::parse_rfc3339(until)
                    .with_context(|| format!("--until {until} is not an RFC 3339 time"))?,
            ),
            None => None,
        };
        let mut audit = Audit::new(&name, key);
        for line in carried {
            line.feed(&mut audit);
        }
        for report in audit.finish(until) {
            print_report(&report);
            if !report.is_whole() {
                failed.push(format!("the log {} is not whole", report.log));
            }
        }
    }
    if !failed.is_empty() {
        bail!("{}", failed.join("; "));
    }
    eprintln!("{total} lines verified: all valid");
    Ok(())
}

/// What the lines read so far added up to.
#[derive(Default)]
struct Seen {
    total: u64,
    invalid: u64,
    /// What the lines of destinations with `integrity` carry of their logs.
    carried: Vec<CarriedLine>,
}

/// A line's part in its log, and whether its signature held.
struct CarriedLine {
    carried: Carried,
    valid: bool,
    /// The line's bytes' digest: identical copies are told from the same event in another
    /// format by it.
    digest: [u8; 32],
}

impl CarriedLine {
    fn feed(self, audit: &mut Audit) {
        match (self.carried, self.valid) {
            (
                Carried::Leaf {
                    log,
                    index,
                    leaf_hash,
                },
                true,
            ) => audit.leaf(&log, index, leaf_hash, self.digest),
            (Carried::Leaf { log, index, .. }, false) => audit.altered_leaf(&log, index),
            (Carried::Checkpoint(checkpoint), true) => audit.checkpoint(checkpoint),
            (Carried::Checkpoint(checkpoint), false) => audit.altered_checkpoint(&checkpoint.log),
        }
    }
}

/// Prints what the completeness check found in one log.
fn print_report(report: &LogReport) {
    let verdict = match (report.is_whole(), report.proven) {
        (true, Some((from, to))) => format!("whole from index {from} to {}", to.saturating_sub(1)),
        (true, None) => "nothing proven missing, nothing proven whole".to_owned(),
        (false, _) => "NOT WHOLE".to_owned(),
    };
    println!(
        "log {}: {} events, {} checkpoints: {verdict}",
        report.log, report.leaves, report.checkpoints
    );
    for finding in &report.findings {
        let mark = if finding.is_failure() { "FAIL" } else { "note" };
        println!("  {mark}: {finding}");
    }
}

/// The server's URL for `path`, from `$AUDITRELAY_URL` or the default.
fn server_url(path: &str) -> String {
    let base = std::env::var("AUDITRELAY_URL").unwrap_or_else(|_| DEFAULT_URL.to_owned());
    format!("{}{path}", base.trim_end_matches('/'))
}

/// Checks an inclusion bundle against the checkpoint key, and says what it proves.
async fn verify_proof(path: &str, args: &VerifyArgs) -> anyhow::Result<()> {
    let source = match &args.checkpoint_key {
        Some(source) => source.clone(),
        None => server_url(CHECKPOINT_KEY_PATH),
    };
    let (name, key) = load_checkpoint_key(&source).await?;
    let text = std::fs::read_to_string(path).with_context(|| format!("Failed to read {path}"))?;
    let bundle = InclusionBundle::parse(&text).with_context(|| path.to_string())?;
    let given = match &args.leaf_hash {
        Some(b64) => Some(
            STANDARD
                .decode(b64.trim())
                .ok()
                .and_then(|h| Hash::try_from(h).ok())
                .context("--leaf-hash is not base64 of 32 bytes")?,
        ),
        None => None,
    };
    let included = bundle
        .verify(&name, &key, given.as_ref())
        .with_context(|| format!("{path} does not prove its leaf"))?;
    let checkpoint = &included.checkpoint;
    println!(
        "inclusion proof valid: leaf {} of {} is in its checkpoint of {} leaves (root {}), signed by {name}",
        included.index,
        checkpoint.origin,
        checkpoint.size,
        STANDARD.encode(checkpoint.root),
    );
    println!("leaf hash: {}", STANDARD.encode(included.leaf_hash));
    if let Some(leaf) = &included.leaf {
        println!("leaf: {}", String::from_utf8_lossy(leaf));
    }
    Ok(())
}

/// The input as lines, gunzipped when it starts with gzip's magic bytes.
fn open_lines(input: &str) -> anyhow::Result<Box<dyn BufRead>> {
    let mut reader: Box<dyn Read> = if input == "-" {
        Box::new(io::stdin().lock())
    } else {
        Box::new(File::open(input).with_context(|| format!("Failed to open {input}"))?)
    };
    // Read the two magic bytes for sure (a pipe may deliver one at a time), then put them back.
    let mut head = Vec::with_capacity(2);
    (&mut reader)
        .take(2)
        .read_to_end(&mut head)
        .with_context(|| format!("Failed to read {input}"))?;
    let gzip = head == [0x1f, 0x8b];
    let whole = io::Cursor::new(head).chain(reader);
    Ok(if gzip {
        Box::new(BufReader::new(MultiGzDecoder::new(whole)))
    } else {
        Box::new(BufReader::new(whole))
    })
}

/// Verifies every non-blank line, writing one verdict per line (after `prefix`), and keeps
/// what lines of destinations with `integrity` carry of their logs in `seen`.
fn verify_lines(
    mut input: impl BufRead,
    keys: &[PublicKey],
    prefix: &str,
    seen: &mut Seen,
    out: &mut impl io::Write,
) -> anyhow::Result<()> {
    let mut line = Vec::with_capacity(1024);
    let mut number = 0u64;
    loop {
        line.clear();
        if input
            .read_until(b'\n', &mut line)
            .context("Failed to read the input")?
            == 0
        {
            break;
        }
        number += 1;
        while line.last().is_some_and(|b| *b == b'\n' || *b == b'\r') {
            line.pop();
        }
        if line.iter().all(u8::is_ascii_whitespace) {
            continue;
        }
        seen.total += 1;
        let verdict = verify_line_or_entry(&line, keys);
        match &verdict {
            Ok((kid, Signed::Line)) => writeln!(out, "{prefix}line {number}: valid kid={kid}")?,
            Ok((kid, Signed::PullEntry)) => writeln!(
                out,
                "{prefix}line {number}: valid kid={kid} (pull-API entry)"
            )?,
            Err(reason) => {
                seen.invalid += 1;
                writeln!(out, "{prefix}line {number}: invalid: {reason}")?;
            }
        }
        // What the line says of its log counts once its signature holds; a line that does not
        // verify but says where it was is named as altered there.
        if let Ok(Some(carried)) = carried(&line) {
            seen.carried.push(CarriedLine {
                carried,
                valid: matches!(verdict, Ok((_, Signed::Line))),
                digest: line_digest(&line),
            });
        }
    }
    out.flush()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use auditrelay_core::format::{Format, FormatConfig, sign_event};
    use auditrelay_core::{Event, EventDetail, OrgId, Region, SigningKey, Timestamp};

    use super::*;

    fn line(format: Format, key: &SigningKey) -> Vec<u8> {
        let event = Event {
            ts: Timestamp::from_millis(1_800_000_000_000),
            org_id: OrgId::new_v4(),
            region: Region::parse("us").unwrap(),
            portal_id: None,
            principal_id: Some("p".into()),
            principal_name: None,
            actor_id: None,
            client_ip: Some("127.0.0.1".into()),
            uri: Some("/x".into()),
            user_agent: None,
            trace_id: Some("1".into()),
            detail: EventDetail::Access {
                method: "POST".into(),
                query: "{}".into(),
                status_code: 201,
                kong_initiated: None,
            },
        };
        let mut out = Vec::new();
        sign_event(format, &event, &FormatConfig::default(), key, &mut out);
        out
    }

    #[test]
    fn verdicts_per_line_with_blank_lines_skipped_and_crlf_accepted() {
        let key = SigningKey::from_seed(&[3; 32]);
        let mut input = Vec::new();
        input.extend(line(Format::Cef, &key));
        input.extend(b"\r\n\n   \n");
        let mut tampered = line(Format::Json, &key);
        tampered[5] ^= 1;
        input.extend(&tampered);
        input.push(b'\n');
        input.extend(line(Format::Cps, &key));
        input.push(b'\n');
        input.extend(line(Format::Ocsf, &key));
        input.push(b'\n');
        let ocsf = String::from_utf8(line(Format::Ocsf, &key)).unwrap();
        input.extend(
            ocsf.replacen("\"status_id\":1", "\"status_id\":2", 1)
                .as_bytes(),
        );
        let mut out = Vec::new();
        let keys = [key.public_key().clone()];
        let mut seen = Seen::default();
        verify_lines(&input[..], &keys, "", &mut seen, &mut out).unwrap();
        assert_eq!((seen.total, seen.invalid), (5, 2));
        assert!(seen.carried.is_empty(), "Konnect's lines carry no log");
        let out = String::from_utf8(out).unwrap();
        let lines: Vec<&str> = out.lines().collect();
        assert_eq!(lines[0], format!("line 1: valid kid={}", key.kid()));
        assert!(lines[1].starts_with("line 4: invalid: "), "{out}");
        assert_eq!(lines[2], format!("line 5: valid kid={}", key.kid()));
        assert_eq!(lines[3], format!("line 6: valid kid={}", key.kid()));
        assert_eq!(
            lines[4], "line 7: invalid: no known key verifies the signature",
            "{out}"
        );
    }
}

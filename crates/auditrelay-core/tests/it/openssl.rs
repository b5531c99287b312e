//! An independent check: the `openssl` CLI derives the same public key from our seed, computes
//! the same kid, and accepts our signatures (and refuses a tampered message).

use std::path::Path;
use std::process::Command;

use auditrelay_core::format::{Format, parse_line, sign_event};
use auditrelay_core::{FormatConfig, SigningKey};
use base64::Engine as _;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};

use crate::support::{access, key};

/// False when openssl is not installed; in CI a missing openssl is a failure, not a skip.
fn openssl_available() -> bool {
    let found = Command::new("openssl")
        .arg("version")
        .output()
        .is_ok_and(|o| o.status.success());
    if !found {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "openssl is required in CI for the independent signature check"
        );
        eprintln!("skipping the openssl cross-check: `openssl` is not installed");
    }
    found
}

fn pem(label: &str, der: &[u8]) -> String {
    format!(
        "-----BEGIN {label}-----\n{}\n-----END {label}-----\n",
        STANDARD.encode(der)
    )
}

fn openssl(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("openssl")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap()
}

#[test]
fn openssl_derives_the_key_and_accepts_signatures() {
    if !openssl_available() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let key: SigningKey = key();
    let public = key.public_key().to_bytes();

    // Public key: openssl derives it from the PKCS#8 form of our seed.
    let pkcs8 = [
        hex("302e020100300506032b657004220420"),
        key.to_seed().to_vec(),
    ]
    .concat();
    std::fs::write(dir.path().join("priv.pem"), pem("PRIVATE KEY", &pkcs8)).unwrap();
    let derived = openssl(
        dir.path(),
        &["pkey", "-in", "priv.pem", "-pubout", "-outform", "DER"],
    );
    assert!(
        derived.status.success(),
        "{}",
        String::from_utf8_lossy(&derived.stderr)
    );
    let spki = [hex("302a300506032b6570032100"), public.to_vec()].concat();
    assert_eq!(derived.stdout, spki);

    // Kid: hex SHA-1 of the raw 32-byte key.
    std::fs::write(dir.path().join("raw.key"), public).unwrap();
    let digest = openssl(dir.path(), &["dgst", "-sha1", "-r", "raw.key"]);
    let digest = String::from_utf8(digest.stdout).unwrap();
    assert_eq!(digest.split_whitespace().next(), Some(key.kid().as_str()));

    // Signatures: the signed bytes and the decoded `sig` of a line of each format.
    std::fs::write(dir.path().join("pub.pem"), pem("PUBLIC KEY", &spki)).unwrap();
    for format in Format::KONNECT {
        let mut line = Vec::new();
        sign_event(format, &access(), &FormatConfig::default(), &key, &mut line);
        let parsed = parse_line(&line).unwrap();
        let sig = URL_SAFE_NO_PAD
            .decode(parsed.signature.as_deref().unwrap())
            .unwrap();
        std::fs::write(dir.path().join("msg"), &*parsed.signed).unwrap();
        std::fs::write(dir.path().join("sig"), &sig).unwrap();
        let verify = [
            "pkeyutl", "-verify", "-pubin", "-inkey", "pub.pem", "-rawin", "-in", "msg",
            "-sigfile", "sig",
        ];
        let ok = openssl(dir.path(), &verify);
        assert!(
            ok.status.success()
                && String::from_utf8_lossy(&ok.stdout).contains("Verified Successfully"),
            "{format}: {}{}",
            String::from_utf8_lossy(&ok.stdout),
            String::from_utf8_lossy(&ok.stderr)
        );
        let mut tampered = parsed.signed.to_vec();
        tampered[0] ^= 1;
        std::fs::write(dir.path().join("msg"), tampered).unwrap();
        assert!(
            !openssl(dir.path(), &verify).status.success(),
            "{format}: tampered message passed"
        );
    }
}

fn hex(s: &str) -> Vec<u8> {
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

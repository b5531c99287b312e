//! Any bytes: the line parser (and verification, which runs it) must return, never panic.

#![no_main]

use auditrelay_core::SigningKey;
use auditrelay_core::format::{parse_line, verify_line};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(parsed) = parse_line(data) {
        // What the parser calls signed bytes is always a piece of what it was given.
        assert!(parsed.signed.len() <= data.len());
    }
    let key = SigningKey::from_seed(&[1; 32]);
    let _ = verify_line(data, std::slice::from_ref(key.public_key()));
});

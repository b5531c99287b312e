//! A batch of signed log lines on its way to one webhook (Decision 5): at most 1000 events and
//! 1 MiB uncompressed, the lines joined by `\n`, the body gzip-compressed, and an
//! `Idempotency-Key` that stays the same whenever the same range of events is sent again.
//!
//! Lines are compressed as they are pushed, so a batch never exists twice in memory (once
//! plain, once compressed); gzip into a `Vec` is computation, not I/O.

use std::io::Write as _;

use flate2::Compression;
use flate2::write::GzEncoder;
use sha2::{Digest, Sha256};

/// The gzip level of delivered bodies. Level 1 compresses a batch of 1000 signed lines about
/// four times faster than the default level 6 (2.3–2.5 ms against 10–11.5 ms, in one run of
/// `benches/formats.rs`, group `batch_1000`) for a body 7–10% larger. Compression shares the
/// core with Ed25519 signing, which must stay the bottleneck of delivery; a few more bytes on
/// the wire cost less.
pub const GZIP_LEVEL: u32 = 1;

/// When a batch is full. Both limits are on what the receiver decodes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchLimits {
    pub max_events: usize,
    /// Uncompressed bytes: the lines and the `\n` between them.
    pub max_bytes: usize,
}

impl Default for BatchLimits {
    fn default() -> Self {
        Self {
            max_events: 1000,
            max_bytes: 1 << 20,
        }
    }
}

/// A finished batch, ready to be sent (and sent again, unchanged, on a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The gzip of the lines joined by `\n` (no trailing newline).
    pub body: Vec<u8>,
    pub events: usize,
    pub uncompressed_bytes: usize,
    /// The `seq` of the first and of the last line pushed.
    pub first_seq: i64,
    pub last_seq: i64,
}

/// [`BatchBuilder::push`] refused a line because it would break a limit; the caller keeps it
/// for the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch is full")]
pub struct BatchFull;

/// Builds a [`Batch`] line by line.
pub struct BatchBuilder {
    limits: BatchLimits,
    gzip: GzEncoder<Vec<u8>>,
    events: usize,
    uncompressed_bytes: usize,
    /// First and last `seq` pushed; `None` while empty.
    seqs: Option<(i64, i64)>,
}

impl BatchBuilder {
    pub fn new(limits: BatchLimits) -> Self {
        Self::with_level(limits, GZIP_LEVEL)
    }

    /// With another gzip level (0–9), for measuring the choice of [`GZIP_LEVEL`].
    pub fn with_level(limits: BatchLimits, level: u32) -> Self {
        Self {
            limits,
            gzip: GzEncoder::new(Vec::new(), Compression::new(level)),
            events: 0,
            uncompressed_bytes: 0,
            seqs: None,
        }
    }

    /// Adds one line (without its `\n`) carrying the event sequence number `seq`; lines are
    /// expected in ascending `seq`. Refuses a line that would take the batch past either limit,
    /// except the first line of an empty batch, which is always accepted however long it is:
    /// otherwise an event whose line alone exceeds `max_bytes` could never be delivered, and
    /// would block its webhook for good.
    pub fn push(&mut self, seq: i64, line: &[u8]) -> Result<(), BatchFull> {
        debug_assert!(
            !line.contains(&b'\n'),
            "a rendered line never holds a raw newline (Decision 8)"
        );
        let separator = usize::from(self.events > 0);
        let bytes = self.uncompressed_bytes + separator + line.len();
        if self.events > 0
            && (self.events >= self.limits.max_events || bytes > self.limits.max_bytes)
        {
            return Err(BatchFull);
        }
        if separator == 1 {
            self.write(b"\n");
        }
        self.write(line);
        self.events += 1;
        self.uncompressed_bytes = bytes;
        self.seqs = Some(match self.seqs {
            None => (seq, seq),
            Some((first, _)) => (first, seq),
        });
        Ok(())
    }

    fn write(&mut self, bytes: &[u8]) {
        self.gzip
            .write_all(bytes)
            .expect("gzip into a Vec cannot fail");
    }

    pub fn is_empty(&self) -> bool {
        self.events == 0
    }

    /// True when no further non-empty line fits, so the caller can send now instead of
    /// discovering it with the next push.
    pub fn is_full(&self) -> bool {
        self.events > 0
            && (self.events >= self.limits.max_events
                || self.uncompressed_bytes + 2 > self.limits.max_bytes)
    }

    pub fn events(&self) -> usize {
        self.events
    }

    pub fn uncompressed_bytes(&self) -> usize {
        self.uncompressed_bytes
    }

    /// The compressed batch, or `None` if nothing was pushed (there is nothing to send).
    pub fn finish(self) -> Option<Batch> {
        let (first_seq, last_seq) = self.seqs?;
        let body = self.gzip.finish().expect("gzip into a Vec cannot fail");
        Some(Batch {
            body,
            events: self.events,
            uncompressed_bytes: self.uncompressed_bytes,
            first_seq,
            last_seq,
        })
    }
}

/// The `Idempotency-Key` of the batch holding events `first_seq..=last_seq`, sent by `webhook`
/// (the sending lane's stable identity): a UUID (version 8) made of the first 16 bytes of a
/// SHA-256 over the three values, so every retry, and a resend of the same range after a
/// restart, carries the same key. A replay that must not be deduplicated against the live
/// delivery of the same range passes an identity that includes its replay job.
pub fn idempotency_key(webhook: &str, first_seq: i64, last_seq: i64) -> String {
    let mut hash = Sha256::new();
    // Domain separation and a length prefix: no other input of ours hashes the same bytes.
    hash.update(b"auditrelay idempotency-key v1\0");
    hash.update((webhook.len() as u64).to_be_bytes());
    hash.update(webhook.as_bytes());
    hash.update(first_seq.to_be_bytes());
    hash.update(last_seq.to_be_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    uuid::Builder::from_custom_bytes(bytes)
        .into_uuid()
        .hyphenated()
        .to_string()
}

#[cfg(test)]
mod tests {
    use std::io::Read as _;

    use super::*;

    fn gunzip(body: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        flate2::read::GzDecoder::new(body)
            .read_to_end(&mut out)
            .unwrap();
        out
    }

    fn limits(max_events: usize, max_bytes: usize) -> BatchLimits {
        BatchLimits {
            max_events,
            max_bytes,
        }
    }

    #[test]
    fn default_limits_are_decision_5() {
        assert_eq!(BatchLimits::default(), limits(1000, 1_048_576));
    }

    #[test]
    fn round_trips_through_gzip() {
        let mut b = BatchBuilder::new(BatchLimits::default());
        let lines = ["first line", "second=line with spaces", "ü ñ €"];
        for (i, line) in lines.iter().enumerate() {
            b.push(10 + i as i64, line.as_bytes()).unwrap();
        }
        let batch = b.finish().unwrap();
        let plain = gunzip(&batch.body);
        assert_eq!(plain, lines.join("\n").as_bytes());
        assert_eq!(batch.uncompressed_bytes, plain.len());
        assert_eq!(batch.events, 3);
        assert_eq!((batch.first_seq, batch.last_seq), (10, 12));
    }

    #[test]
    fn every_level_round_trips() {
        for level in 0..=9 {
            let mut b = BatchBuilder::with_level(BatchLimits::default(), level);
            b.push(1, b"a").unwrap();
            b.push(2, b"b").unwrap();
            assert_eq!(gunzip(&b.finish().unwrap().body), b"a\nb", "level {level}");
        }
    }

    #[test]
    fn refuses_the_line_past_the_event_limit() {
        let mut b = BatchBuilder::new(limits(3, 1 << 20));
        for seq in 1..=3 {
            assert!(!b.is_full());
            b.push(seq, b"line").unwrap();
        }
        assert!(b.is_full());
        assert_eq!(b.push(4, b"line"), Err(BatchFull));
        let batch = b.finish().unwrap();
        assert_eq!((batch.events, batch.first_seq, batch.last_seq), (3, 1, 3));
        assert_eq!(gunzip(&batch.body), b"line\nline\nline");
    }

    #[test]
    fn byte_limit_counts_the_separators() {
        // "aaaa" + "\n" + "bbbb" = 9 bytes: fits 9, not 8.
        let mut b = BatchBuilder::new(limits(1000, 9));
        b.push(1, b"aaaa").unwrap();
        assert!(!b.is_full());
        b.push(2, b"bbbb").unwrap();
        assert_eq!(b.uncompressed_bytes(), 9);
        assert!(b.is_full());
        assert_eq!(b.push(3, b""), Err(BatchFull));

        let mut b = BatchBuilder::new(limits(1000, 8));
        b.push(1, b"aaaa").unwrap();
        assert_eq!(b.push(2, b"bbbb"), Err(BatchFull));
        // A refused line changes nothing: a shorter one still fits.
        b.push(3, b"bbb").unwrap();
        let batch = b.finish().unwrap();
        assert_eq!(gunzip(&batch.body), b"aaaa\nbbb");
        assert_eq!((batch.uncompressed_bytes, batch.last_seq), (8, 3));
    }

    #[test]
    fn an_oversized_first_line_is_accepted_alone() {
        let huge = vec![b'x'; 100];
        let mut b = BatchBuilder::new(limits(1000, 10));
        b.push(7, &huge).unwrap();
        assert!(b.is_full());
        assert_eq!(b.push(8, b"y"), Err(BatchFull));
        let batch = b.finish().unwrap();
        assert_eq!((batch.events, batch.uncompressed_bytes), (1, 100));
        assert_eq!((batch.first_seq, batch.last_seq), (7, 7));
        assert_eq!(gunzip(&batch.body), huge);
    }

    #[test]
    fn an_empty_builder_has_nothing_to_send() {
        let b = BatchBuilder::new(BatchLimits::default());
        assert!(b.is_empty() && !b.is_full());
        assert_eq!((b.events(), b.uncompressed_bytes()), (0, 0));
        assert_eq!(b.finish(), None);
    }

    #[test]
    fn idempotency_keys_are_stable_and_distinct() {
        let key = idempotency_key("webhook-1", 100, 199);
        // Pinned: a key must not change between versions, or a resend after an upgrade would
        // look new to a receiver that deduplicates.
        assert_eq!(key, idempotency_key("webhook-1", 100, 199));
        assert_eq!(key, "dc10d46c-69ae-8492-a58d-8dd930fde895");
        let parsed = uuid::Uuid::parse_str(&key).unwrap();
        assert_eq!(parsed.get_version_num(), 8);
        for other in [
            idempotency_key("webhook-2", 100, 199),
            idempotency_key("webhook-1", 101, 199),
            idempotency_key("webhook-1", 100, 200),
            idempotency_key("webhook-", 1100, 199),
            idempotency_key("", 100, 199),
        ] {
            assert_ne!(key, other);
        }
    }
}

//! A batch of signed log lines on its way to one webhook (DECISIONS.md D5): at most 1000 events and
//! 1 MiB uncompressed, the lines joined by `\n`, the body gzip-compressed, and an
//! `Idempotency-Key` that stays the same whenever the same range of events is sent again.
//!
//! Lines are compressed as they are pushed, so a batch never exists twice in memory (once
//! plain, once compressed); gzip into a `Vec` is computation, not I/O.
//!
//! A batch can also be built in [`Share`]s, runs of consecutive lines that several threads
//! render, sign and compress at once. Each share is a raw DEFLATE stream ending in a sync flush
//! (so it ends on a byte boundary and is not final); [`join`] lays them end to end behind one
//! gzip header, closes the stream and appends the combined CRC-32. The result is one ordinary
//! gzip member, as `BatchBuilder` makes: unlike concatenated gzip members, which some
//! receivers' decoders stop reading after the first, every gzip decoder reads all of it.

use std::io::Write as _;

use flate2::write::GzEncoder;
use flate2::{Compress, Compression, FlushCompress, Status};
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
    /// Uncompressed bytes: the records, what goes between them, and what opens and closes the
    /// body.
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

/// How records are laid out in a body: what opens it, what goes between two records, and what
/// closes it. Konnect's shape is [`Frame::LINES`]; other destination kinds frame a JSON array,
/// a Loki push or a `_bulk` body (`kind::Framer`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    pub open: &'a [u8],
    /// Never the start of a record; empty only where each record says its own length
    /// (syslog's octet counting).
    pub separator: &'static [u8],
    pub close: &'a [u8],
}

impl Frame<'static> {
    /// Lines joined by `\n`, nothing before or after: Konnect's webhook body.
    pub const LINES: Self = Self {
        open: b"",
        separator: b"\n",
        close: b"",
    };
}

/// A finished batch, ready to be sent (and sent again, unchanged, on a retry).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Batch {
    /// The gzip of the framed records (for lines: joined by `\n`, no trailing newline).
    pub body: Vec<u8>,
    /// How many records the body holds.
    pub events: usize,
    pub uncompressed_bytes: usize,
    /// The `seq` of the first and of the last event taken, sent or refused.
    pub first_seq: i64,
    pub last_seq: i64,
    /// The `seq` of each record, in the body's order.
    pub seqs: Vec<i64>,
    /// The events taken into the batch but refused before it was sent (over a receiver's
    /// limit), each with the reason, in the order taken.
    pub refused: Vec<(i64, String)>,
}

impl Batch {
    /// How many events the batch took: those it sends and those it refused.
    pub fn taken(&self) -> usize {
        self.events + self.refused.len()
    }
}

/// [`BatchBuilder::push`] refused a line because it would break a limit; the caller keeps it
/// for the next batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("the batch is full")]
pub struct BatchFull;

/// Builds a [`Batch`] record by record.
pub struct BatchBuilder<'f> {
    limits: BatchLimits,
    frame: Frame<'f>,
    gzip: GzEncoder<Vec<u8>>,
    /// The bytes written so far: the opening, the records and the separators.
    uncompressed_bytes: usize,
    seqs: Vec<i64>,
    refused: Vec<(i64, String)>,
    /// First and last `seq` taken; `None` while empty.
    taken: Option<(i64, i64)>,
}

impl BatchBuilder<'static> {
    /// A batch of lines ([`Frame::LINES`]).
    pub fn new(limits: BatchLimits) -> Self {
        Self::with_level(limits, GZIP_LEVEL)
    }

    /// With another gzip level (0–9), for measuring the choice of [`GZIP_LEVEL`].
    pub fn with_level(limits: BatchLimits, level: u32) -> Self {
        Self::framed(limits, Frame::LINES, level)
    }
}

impl<'f> BatchBuilder<'f> {
    /// A batch of records laid out by `frame`, compressed at `level`.
    pub fn framed(limits: BatchLimits, frame: Frame<'f>, level: u32) -> Self {
        let mut builder = Self {
            limits,
            frame,
            gzip: GzEncoder::new(Vec::new(), Compression::new(level)),
            uncompressed_bytes: frame.open.len(),
            seqs: Vec::new(),
            refused: Vec::new(),
            taken: None,
        };
        builder.write(frame.open);
        builder
    }

    /// Adds one record (for lines: without its `\n`) carrying the event sequence number `seq`.
    /// Refuses a record that would take the batch past either limit, except the first record
    /// of an empty batch, which is always accepted however long it is: otherwise an event
    /// whose record alone exceeds `max_bytes` could never be delivered, and would block its
    /// webhook for good.
    pub fn push(&mut self, seq: i64, record: &[u8]) -> Result<(), BatchFull> {
        debug_assert!(
            self.frame != Frame::LINES || !record.contains(&b'\n'),
            "a rendered line never holds a raw newline (DECISIONS.md D8)"
        );
        let events = self.seqs.len();
        let separator = if events > 0 {
            self.frame.separator
        } else {
            b""
        };
        let bytes = self.uncompressed_bytes + separator.len() + record.len();
        if events > 0
            && (events >= self.limits.max_events
                || bytes + self.frame.close.len() > self.limits.max_bytes)
        {
            return Err(BatchFull);
        }
        self.write(separator);
        self.write(record);
        self.uncompressed_bytes = bytes;
        self.seqs.push(seq);
        self.take(seq);
        Ok(())
    }

    /// Takes the event `seq` into the batch without a record: it was refused before sending,
    /// for `reason`.
    pub fn refuse(&mut self, seq: i64, reason: String) {
        self.refused.push((seq, reason));
        self.take(seq);
    }

    fn take(&mut self, seq: i64) {
        self.taken = Some(match self.taken {
            None => (seq, seq),
            Some((first, _)) => (first, seq),
        });
    }

    fn write(&mut self, bytes: &[u8]) {
        self.gzip
            .write_all(bytes)
            .expect("gzip into a Vec cannot fail");
    }

    pub fn is_empty(&self) -> bool {
        self.taken.is_none()
    }

    /// True when no further non-empty record fits, so the caller can send now instead of
    /// discovering it with the next push.
    pub fn is_full(&self) -> bool {
        let events = self.seqs.len();
        events > 0
            && (events >= self.limits.max_events
                || self.uncompressed_bytes
                    + self.frame.separator.len()
                    + 1
                    + self.frame.close.len()
                    > self.limits.max_bytes)
    }

    pub fn events(&self) -> usize {
        self.seqs.len()
    }

    pub fn uncompressed_bytes(&self) -> usize {
        self.uncompressed_bytes + self.frame.close.len()
    }

    /// The compressed batch, or `None` if nothing was taken (there is nothing to send).
    pub fn finish(mut self) -> Option<Batch> {
        let (first_seq, last_seq) = self.taken?;
        let close = self.frame.close;
        self.write(close);
        let body = self.gzip.finish().expect("gzip into a Vec cannot fail");
        Some(Batch {
            body,
            events: self.seqs.len(),
            uncompressed_bytes: self.uncompressed_bytes + close.len(),
            first_seq,
            last_seq,
            seqs: self.seqs,
            refused: self.refused,
        })
    }
}

/// A run of consecutive events of a batch, built and compressed apart from the others (see the
/// module documentation). Made by a [`ShareBuilder`]; joined into a batch by [`join`].
pub struct Share {
    /// The bytes this share adds to the batch: its records, each but the batch's first
    /// preceded by the separator.
    plain: Vec<u8>,
    /// Each event taken, in order.
    slots: Vec<Slot>,
    /// How many of the slots are records.
    records: usize,
    deflated: Vec<u8>,
    crc: crc32fast::Hasher,
}

/// One event of a share: a record (where it starts and ends in `plain`), or a refusal.
enum Slot {
    Record { seq: i64, start: usize, end: usize },
    Refused { seq: i64, reason: String },
}

impl Slot {
    fn seq(&self) -> i64 {
        match self {
            Self::Record { seq, .. } | Self::Refused { seq, .. } => *seq,
        }
    }
}

/// Builds one [`Share`] record by record.
pub struct ShareBuilder {
    plain: Vec<u8>,
    slots: Vec<Slot>,
    separator: &'static [u8],
    /// Whether records are lines ([`Frame::LINES`]), which never hold a raw newline.
    lines: bool,
    /// Whether the first record follows one of an earlier share, and so needs a separator.
    follows: bool,
    records: usize,
}

impl ShareBuilder {
    /// The share at `index` in its batch (0 for the first), for about `lines` lines joined by
    /// `\n`.
    pub fn new(index: usize, lines: usize) -> Self {
        Self::framed(index, lines, Frame::LINES)
    }

    /// The share at `index` in its batch, for about `records` records laid out by `frame`.
    pub fn framed(index: usize, records: usize, frame: Frame<'_>) -> Self {
        Self {
            plain: Vec::with_capacity(records * 512),
            slots: Vec::with_capacity(records),
            separator: frame.separator,
            lines: frame == Frame::LINES,
            follows: index > 0,
            records: 0,
        }
    }

    /// Adds the record that `render` appends to the buffer it is given (for lines: without a
    /// `\n`), for the event `seq`.
    pub fn push_with(&mut self, seq: i64, render: impl FnOnce(&mut Vec<u8>)) {
        if self.follows || self.records > 0 {
            self.plain.extend_from_slice(self.separator);
        }
        let start = self.plain.len();
        render(&mut self.plain);
        debug_assert!(
            !self.lines || !self.plain[start..].contains(&b'\n'),
            "a rendered line never holds a raw newline (DECISIONS.md D8)"
        );
        self.slots.push(Slot::Record {
            seq,
            start,
            end: self.plain.len(),
        });
        self.records += 1;
    }

    /// Takes the event `seq` without a record: it is refused before sending, for `reason`.
    pub fn refuse(&mut self, seq: i64, reason: String) {
        self.slots.push(Slot::Refused { seq, reason });
    }

    /// Compresses the share at `level` (see [`GZIP_LEVEL`]).
    pub fn finish(self, level: u32) -> Share {
        let mut crc = crc32fast::Hasher::new();
        crc.update(&self.plain);
        Share {
            deflated: deflate_sync(&self.plain, level),
            crc,
            plain: self.plain,
            slots: self.slots,
            records: self.records,
        }
    }
}

/// `input` as raw DEFLATE ending in a sync flush: byte-aligned and not final, so that more
/// DEFLATE data may follow it.
fn deflate_sync(input: &[u8], level: u32) -> Vec<u8> {
    let mut deflate = Compress::new(Compression::new(level), false);
    let mut out = Vec::with_capacity(input.len() / 3 + 64);
    loop {
        let read = deflate.total_in() as usize;
        let status = deflate
            .compress_vec(&input[read..], &mut out, FlushCompress::Sync)
            .expect("DEFLATE into a Vec cannot fail");
        // The flush is complete once all input is taken and the output did not fill up.
        let done = deflate.total_in() as usize == input.len() && out.len() < out.capacity();
        if done || status == Status::StreamEnd {
            return out;
        }
        out.reserve(out.capacity().max(4096));
    }
}

/// The last DEFLATE block: empty, fixed Huffman codes, marked final (BFINAL=1, BTYPE=01, then
/// the end-of-block code), as zlib writes it on a finish after a sync flush.
const FINAL_EMPTY_BLOCK: [u8; 2] = [0x03, 0x00];

/// The batch made of `shares`, in order, laid out by `frame`, as far as `limits` allow; `None`
/// when they took no event. When all of them fit (the usual case) their compressed streams are
/// joined as they are; otherwise the records that fit are compressed again, in one piece.
pub fn join(shares: Vec<Share>, limits: BatchLimits, frame: Frame<'_>) -> Option<Batch> {
    let events: usize = shares.iter().map(|s| s.records).sum();
    let bytes: usize =
        frame.open.len() + shares.iter().map(|s| s.plain.len()).sum::<usize>() + frame.close.len();
    // Joined as they are only if the separators are where the batch needs them: none before the
    // first record, one before every other (a share without a record would break that).
    // (Records that carry their own length have no separator: nothing to check then.)
    let laid_out = shares.iter().enumerate().all(|(i, share)| {
        share.records > 0
            && (frame.separator.is_empty() || share.plain.starts_with(frame.separator) == (i > 0))
    });
    let fits = events <= limits.max_events && (bytes <= limits.max_bytes || events == 1);
    if !(laid_out && fits) {
        return rebuild(shares, limits, frame);
    }
    let first_seq = shares.first()?.slots.first()?.seq();
    let last_seq = shares.last()?.slots.last()?.seq();
    let mut crc = crc32fast::Hasher::new();
    let compressed: usize = shares.iter().map(|s| s.deflated.len()).sum();
    let mut body = Vec::with_capacity(GZIP_HEADER.len() + compressed + 10);
    body.extend_from_slice(&GZIP_HEADER);
    add_framing(&mut body, &mut crc, frame.open);
    let mut seqs = Vec::with_capacity(events);
    let mut refused = Vec::new();
    for share in shares {
        body.extend_from_slice(&share.deflated);
        crc.combine(&share.crc);
        for slot in share.slots {
            match slot {
                Slot::Record { seq, .. } => seqs.push(seq),
                Slot::Refused { seq, reason } => refused.push((seq, reason)),
            }
        }
    }
    add_framing(&mut body, &mut crc, frame.close);
    body.extend_from_slice(&FINAL_EMPTY_BLOCK);
    body.extend_from_slice(&crc.finalize().to_le_bytes());
    // ISIZE is the length modulo 2^32 (RFC 1952).
    body.extend_from_slice(&(bytes as u32).to_le_bytes());
    Some(Batch {
        body,
        events,
        uncompressed_bytes: bytes,
        first_seq,
        last_seq,
        seqs,
        refused,
    })
}

/// Appends what opens or closes a body, compressed apart. Nothing at all for an empty one: a
/// body of lines is byte for byte what it was before bodies were framed.
fn add_framing(body: &mut Vec<u8>, crc: &mut crc32fast::Hasher, bytes: &[u8]) {
    if !bytes.is_empty() {
        body.extend_from_slice(&deflate_sync(bytes, GZIP_LEVEL));
        crc.update(bytes);
    }
}

/// The events of `shares` that fit `limits`, compressed in one piece.
fn rebuild(shares: Vec<Share>, limits: BatchLimits, frame: Frame<'_>) -> Option<Batch> {
    let mut builder = BatchBuilder::framed(limits, frame, GZIP_LEVEL);
    for share in shares {
        for slot in share.slots {
            match slot {
                Slot::Record { seq, start, end } => {
                    if builder.push(seq, &share.plain[start..end]).is_err() {
                        return builder.finish();
                    }
                }
                Slot::Refused { seq, reason } => builder.refuse(seq, reason),
            }
        }
    }
    builder.finish()
}

/// A gzip member header (RFC 1952): DEFLATE, no flags, no modification time, "extra flags" 0,
/// operating system unknown (255).
const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

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

    /// The shares of `lines` split at `cuts` (ascending line indexes), `seq` = 100 + index.
    fn shares(lines: &[&[u8]], cuts: &[usize], level: u32) -> Vec<Share> {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(lines.len());
        bounds
            .windows(2)
            .enumerate()
            .map(|(index, w)| {
                let mut share = ShareBuilder::new(index, w[1] - w[0]);
                for (i, line) in lines.iter().enumerate().take(w[1]).skip(w[0]) {
                    share.push_with(100 + i as i64, |buf| buf.extend_from_slice(line));
                }
                share.finish(level)
            })
            .collect()
    }

    /// What `BatchBuilder` makes of the same lines.
    fn serial(lines: &[&[u8]], limits: BatchLimits) -> Option<Batch> {
        let mut b = BatchBuilder::new(limits);
        for (i, line) in lines.iter().enumerate() {
            if b.push(100 + i as i64, line).is_err() {
                break;
            }
        }
        b.finish()
    }

    /// Everything but the compressed bytes, which differ from `BatchBuilder`'s.
    fn shape(batch: &Batch) -> (Vec<u8>, usize, usize, i64, i64) {
        let plain = gunzip(&batch.body);
        (
            plain,
            batch.events,
            batch.uncompressed_bytes,
            batch.first_seq,
            batch.last_seq,
        )
    }

    #[test]
    fn joined_shares_are_one_gzip_member_of_all_the_lines() {
        let lines: Vec<Vec<u8>> = (0..300)
            .map(|i| format!("CEF:0|Kong|line {i}|{}", "x".repeat(i % 97)).into_bytes())
            .collect();
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        for level in [0, 1, 6, 9] {
            let batch = join(
                shares(&lines, &[1, 120, 250], level),
                BatchLimits::default(),
                Frame::LINES,
            )
            .unwrap();
            // `GzDecoder` reads one member and checks its CRC-32 and length: a second member
            // would be left unread, a wrong trailer would fail.
            assert_eq!(
                shape(&batch),
                shape(&serial(&lines, BatchLimits::default()).unwrap()),
                "level {level}"
            );
            // Joined as they are, not compressed again: each share ends in a sync flush's
            // empty stored block.
            let flushes = batch
                .body
                .windows(4)
                .filter(|w| w == &[0, 0, 0xff, 0xff])
                .count();
            assert!(flushes >= 4, "level {level}: {flushes} sync flushes");
            let mut rest = Vec::new();
            let mut decoder = flate2::read::GzDecoder::new(batch.body.as_slice());
            decoder.read_to_end(&mut rest).unwrap();
            assert!(decoder.into_inner().is_empty(), "nothing after the member");
        }
    }

    #[test]
    fn shares_past_a_limit_are_cut_like_the_builder_cuts() {
        let lines: Vec<&[u8]> = vec![b"aaaa", b"bbbb", b"cccc", b"dddd", b"eeee"];
        // 14 bytes hold "aaaa\nbbbb\ncccc"; three events hold the same.
        for limits in [limits(1000, 14), limits(3, 1 << 20)] {
            let batch = join(shares(&lines, &[2, 4], GZIP_LEVEL), limits, Frame::LINES).unwrap();
            assert_eq!(shape(&batch), shape(&serial(&lines, limits).unwrap()));
            assert_eq!((batch.events, batch.last_seq), (3, 102));
        }
        // An oversized first line goes alone, as with the builder.
        let huge = vec![b'x'; 100];
        let lines: Vec<&[u8]> = vec![&huge, b"y"];
        let batch = join(
            shares(&lines, &[1], GZIP_LEVEL),
            limits(1000, 10),
            Frame::LINES,
        )
        .unwrap();
        assert_eq!((batch.events, gunzip(&batch.body)), (1, huge.clone()));
        let batch = join(
            shares(&lines[..1], &[], GZIP_LEVEL),
            limits(1000, 10),
            Frame::LINES,
        )
        .unwrap();
        assert_eq!((batch.events, gunzip(&batch.body)), (1, huge));
    }

    #[test]
    fn empty_shares_are_laid_out_again() {
        let lines: Vec<&[u8]> = vec![b"a", b"b", b"c"];
        // An empty share in the middle, and none at all.
        let batch = join(
            shares(&lines, &[1, 1], GZIP_LEVEL),
            BatchLimits::default(),
            Frame::LINES,
        )
        .unwrap();
        assert_eq!(gunzip(&batch.body), b"a\nb\nc");
        assert_eq!(join(Vec::new(), BatchLimits::default(), Frame::LINES), None);
        assert_eq!(
            join(
                shares(&[], &[], GZIP_LEVEL),
                BatchLimits::default(),
                Frame::LINES
            ),
            None
        );
    }

    proptest::proptest! {
        #[test]
        fn any_split_joins_to_the_builders_lines(
            lines in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 1..200), 1..60),
            mut cuts in proptest::collection::vec(0usize..60, 0..6),
            max_events in 1usize..80,
            max_bytes in 1usize..6000,
        ) {
            let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            cuts.iter_mut().for_each(|c| *c = (*c).min(lines.len()));
            cuts.sort_unstable();
            let limits = limits(max_events, max_bytes);
            let joined = join(shares(&lines, &cuts, GZIP_LEVEL), limits, Frame::LINES).unwrap();
            proptest::prop_assert_eq!(shape(&joined), shape(&serial(&lines, limits).unwrap()));
        }
    }

    /// A JSON array's framing, for the tests of framed bodies.
    const ARRAY: Frame<'static> = Frame {
        open: b"[",
        separator: b",",
        close: b"]",
    };

    /// Builds `lines` (seq = 100 + index) as shares split at `cuts` and serially, framed by
    /// `frame`, the lines whose index `refused` picks taken without a record.
    fn both_ways(
        lines: &[&[u8]],
        cuts: &[usize],
        limits: BatchLimits,
        frame: Frame<'_>,
        refused: impl Fn(usize) -> bool,
    ) -> (Option<Batch>, Option<Batch>) {
        let mut bounds = vec![0];
        bounds.extend_from_slice(cuts);
        bounds.push(lines.len());
        let shares = bounds
            .windows(2)
            .enumerate()
            .map(|(index, w)| {
                let mut share = ShareBuilder::framed(index, w[1] - w[0], frame);
                for (i, line) in lines.iter().enumerate().take(w[1]).skip(w[0]) {
                    if refused(i) {
                        share.refuse(100 + i as i64, format!("refused {i}"));
                    } else {
                        share.push_with(100 + i as i64, |buf| buf.extend_from_slice(line));
                    }
                }
                share.finish(GZIP_LEVEL)
            })
            .collect();
        let mut serial = BatchBuilder::framed(limits, frame, GZIP_LEVEL);
        for (i, line) in lines.iter().enumerate() {
            if refused(i) {
                serial.refuse(100 + i as i64, format!("refused {i}"));
            } else if serial.push(100 + i as i64, line).is_err() {
                break;
            }
        }
        (join(shares, limits, frame), serial.finish())
    }

    /// Records that follow one another with nothing between them (syslog's octet counting)
    /// are joined as compressed too, not compressed again in one piece.
    #[test]
    fn shares_of_records_without_a_separator_are_joined_as_they_are() {
        const COUNTED: Frame<'static> = Frame {
            open: b"",
            separator: b"",
            close: b"",
        };
        let lines: Vec<Vec<u8>> = (0..40)
            .map(|i| format!("{} <110>1 record {i}", 14 + i.to_string().len()).into_bytes())
            .collect();
        let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
        let (joined, serial) =
            both_ways(&lines, &[10, 25], BatchLimits::default(), COUNTED, |_| {
                false
            });
        let joined = joined.unwrap();
        assert_eq!(shape(&joined), shape(&serial.unwrap()));
        assert_eq!(gunzip(&joined.body), lines.concat());
        let flushes = (joined.body.windows(4))
            .filter(|w| w == &[0, 0, 0xff, 0xff])
            .count();
        assert!(flushes >= 3, "{flushes} sync flushes: compressed again");
    }

    #[test]
    fn a_framed_body_opens_separates_and_closes() {
        let lines: Vec<&[u8]> = vec![b"1", b"2", b"3", b"4"];
        let (joined, serial) = both_ways(&lines, &[2], BatchLimits::default(), ARRAY, |i| i == 1);
        let joined = joined.unwrap();
        assert_eq!(gunzip(&joined.body), b"[1,3,4]");
        assert_eq!(joined.uncompressed_bytes, 7);
        assert_eq!(joined.seqs, [100, 102, 103]);
        assert_eq!(joined.refused, [(101, "refused 1".to_owned())]);
        assert_eq!(
            (joined.first_seq, joined.last_seq, joined.taken()),
            (100, 103, 4)
        );
        assert_eq!(shape(&joined), shape(&serial.unwrap()));
        // The closing bracket counts against the limit: "[1,3]" is 5 bytes.
        let (joined, _) = both_ways(&lines, &[2], limits(1000, 5), ARRAY, |i| i == 1);
        let joined = joined.unwrap();
        assert_eq!(gunzip(&joined.body), b"[1,3]");
        assert_eq!(joined.last_seq, 102);
    }

    #[test]
    fn a_batch_of_refusals_only_is_taken_but_holds_no_record() {
        let lines: Vec<&[u8]> = vec![b"1", b"2"];
        let (joined, serial) = both_ways(&lines, &[1], BatchLimits::default(), ARRAY, |_| true);
        let joined = joined.unwrap();
        assert_eq!((joined.events, joined.taken()), (0, 2));
        assert_eq!(gunzip(&joined.body), b"[]");
        assert_eq!(shape(&joined), shape(&serial.unwrap()));
    }

    proptest::proptest! {
        #[test]
        fn any_framed_split_with_refusals_joins_to_the_builders(
            lines in proptest::collection::vec(proptest::collection::vec(b'a'..=b'z', 1..200), 1..60),
            mut cuts in proptest::collection::vec(0usize..60, 0..6),
            refused in proptest::collection::vec(proptest::bool::weighted(0.2), 60),
            max_events in 1usize..80,
            max_bytes in 1usize..6000,
        ) {
            let lines: Vec<&[u8]> = lines.iter().map(Vec::as_slice).collect();
            cuts.iter_mut().for_each(|c| *c = (*c).min(lines.len()));
            cuts.sort_unstable();
            let (joined, serial) =
                both_ways(&lines, &cuts, limits(max_events, max_bytes), ARRAY, |i| refused[i]);
            let (joined, serial) = (joined.unwrap(), serial.unwrap());
            proptest::prop_assert_eq!(shape(&joined), shape(&serial));
            proptest::prop_assert_eq!(&joined.seqs, &serial.seqs);
            proptest::prop_assert_eq!(&joined.refused, &serial.refused);
        }
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

//! The bytes of a segment file: an 8-byte magic, then frames.
//!
//! Frame: `[len u32 LE][crc32c u32 LE][seq u64 LE][t_ms u64 LE][dir u8][offset u64 LE][data]`,
//! where `len` counts the bytes after the checksum (25 + data) and the CRC-32C covers exactly
//! those bytes. A frame is either whole and checked, damaged (its checksum does not match:
//! skipped, never decoded), or torn (the file ends inside it: a write cut short).

use crate::store::record::{Dir, Event};

/// First bytes of every segment file (format 1 of the segment layout).
pub(crate) const MAGIC: [u8; 8] = *b"SHTRSEG1";

/// Bytes before a frame's data.
pub(crate) const HEADER: usize = 8 + BODY_HEADER;

/// Bytes of the checked part before the data: seq, time, direction, offset.
const BODY_HEADER: usize = 8 + 8 + 1 + 8;

/// One step of decoding a segment from a position.
#[derive(Debug, PartialEq, Eq)]
pub(crate) enum Step {
    /// A whole, checked frame; the next one starts at `next`.
    Frame { event: Event, next: usize },
    /// A whole frame whose checksum or contents are wrong; decoding resumes at `next`.
    Damaged { reason: String, next: usize },
    /// The frame's length field cannot be right: nothing after `at` in this file can be
    /// found again.
    Lost { reason: String },
    /// The file ends inside a frame (a write that was cut short).
    Torn,
    /// The file ends exactly here.
    End,
}

/// Appends the frame of `event` (or of `data` with `event`'s header fields) to `out`.
pub(crate) fn encode(seq: u64, t_ms: u64, dir: Dir, offset: u64, data: &[u8], out: &mut Vec<u8>) {
    let len = (BODY_HEADER + data.len()) as u32;
    let start = out.len();
    out.extend_from_slice(&len.to_le_bytes());
    out.extend_from_slice(&[0; 4]);
    out.extend_from_slice(&seq.to_le_bytes());
    out.extend_from_slice(&t_ms.to_le_bytes());
    out.push(dir.code());
    out.extend_from_slice(&offset.to_le_bytes());
    out.extend_from_slice(data);
    let crc = crc32c::crc32c(&out[start + 8..]);
    out[start + 4..start + 8].copy_from_slice(&crc.to_le_bytes());
}

/// Decodes the frame at `pos` of a segment's bytes. `max_len` bounds a plausible length
/// field (a frame never exceeds its segment).
pub(crate) fn decode(buf: &[u8], pos: usize, max_len: usize) -> Step {
    let rest = &buf[pos.min(buf.len())..];
    if rest.is_empty() {
        return Step::End;
    }
    if rest.len() < 8 {
        return Step::Torn;
    }
    let len = u32::from_le_bytes(rest[..4].try_into().expect("4 bytes")) as usize;
    if !(BODY_HEADER..=max_len).contains(&len) {
        return Step::Lost {
            reason: format!("frame length {len} at byte {pos} is impossible"),
        };
    }
    if rest.len() < 8 + len {
        return Step::Torn;
    }
    let next = pos + 8 + len;
    let stored = u32::from_le_bytes(rest[4..8].try_into().expect("4 bytes"));
    let body = &rest[8..8 + len];
    let computed = crc32c::crc32c(body);
    if stored != computed {
        return Step::Damaged {
            reason: format!(
                "checksum mismatch at byte {pos} (stored {stored:08x}, computed {computed:08x})"
            ),
            next,
        };
    }
    let u64_at = |i: usize| u64::from_le_bytes(body[i..i + 8].try_into().expect("8 bytes"));
    let Some(dir) = Dir::from_code(body[16]) else {
        return Step::Damaged {
            reason: format!("unknown direction {} at byte {pos}", body[16]),
            next,
        };
    };
    Step::Frame {
        event: Event {
            seq: u64_at(0),
            t_ms: u64_at(8),
            dir,
            offset: u64_at(17),
            data: body[BODY_HEADER..].to_vec(),
        },
        next,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn frame(seq: u64, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        encode(seq, 1_700_000_000_000, Dir::Stdout, 42, data, &mut out);
        out
    }

    #[test]
    fn a_frame_decodes_to_what_was_encoded() {
        let buf = frame(7, b"hello\n");
        match decode(&buf, 0, 1 << 20) {
            Step::Frame { event, next } => {
                assert_eq!(next, buf.len());
                assert_eq!(
                    (event.seq, event.dir, event.offset, &event.data[..]),
                    (7, Dir::Stdout, 42, &b"hello\n"[..])
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(decode(&buf, buf.len(), 1 << 20), Step::End);
    }

    #[test]
    fn every_flipped_byte_is_caught_and_never_decoded() {
        let mut buf = frame(1, b"some output");
        buf.extend(frame(2, b"more"));
        let first = HEADER + b"some output".len();
        for i in 0..first {
            let mut damaged = buf.clone();
            damaged[i] ^= 0x41;
            match decode(&damaged, 0, 1 << 20) {
                Step::Frame { .. } => panic!("flip at {i} decoded as a frame"),
                Step::Damaged { next, .. } if i >= 4 => {
                    assert_eq!(next, first, "flip at {i}");
                    assert!(matches!(
                        decode(&damaged, next, 1 << 20),
                        Step::Frame { .. }
                    ));
                }
                // A damaged length field may point anywhere; it is never trusted further.
                _ => assert!(i < 4, "flip at {i}"),
            }
        }
    }

    #[test]
    fn a_cut_frame_is_torn() {
        let buf = frame(1, b"0123456789");
        for cut in 1..buf.len() {
            assert_eq!(decode(&buf[..cut], 0, 1 << 20), Step::Torn, "cut at {cut}");
        }
    }
}

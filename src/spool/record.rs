//! One spool record: its bytes on disk, how it is encoded, and how it is
//! checked before anything trusts it.
//!
//! ```text
//! offset size  field
//!      0    4  len      total record length in bytes, header included (u32 LE)
//!      4    4  crc      CRC-32C (Castagnoli) of bytes 0..4 and 8..len (u32 LE)
//!      8    8  seq      sequence number, strictly increasing in the journal (u64 LE)
//!     16    1  kind     1 checkpoint, 2 accepted, 3 delivered, 4 session
//!     17    3  reserved zero
//!     20    .  body     by kind:
//!                       checkpoint: magic "MSPL", version u16 = 1, zero u16, delivered u64
//!                       accepted:   sender u64, arrival ms u64, message bytes
//!                       delivered:  up_to u64
//!                       session:    see session_record.rs (also a delivered mark)
//! ```
//!
//! A `len` of 0 is the preallocated (zeroed) space after the last record.

use super::session_record::{SessionState, SESSION_LEN};
use crate::time::Instant;

/// Bytes before the body.
pub(crate) const HEADER_LEN: usize = 20;
/// Body bytes of an accepted record before its message.
pub(crate) const ACCEPTED_META: usize = 16;
/// A whole checkpoint record.
pub(crate) const CHECKPOINT_LEN: usize = HEADER_LEN + 16;
/// A whole delivered record.
pub(crate) const MARK_LEN: usize = HEADER_LEN + 8;

const MAGIC: &[u8; 4] = b"MSPL";
const VERSION: u16 = 1;
const KIND_CHECKPOINT: u8 = 1;
const KIND_ACCEPTED: u8 = 2;
const KIND_DELIVERED: u8 = 3;
const KIND_SESSION: u8 = 4;

/// Slice-by-16 tables: the record CRC is on the commit path of every message.
static CRC32C: crc::Crc<u32, crc::Table<16>> =
    crc::Crc::<u32, crc::Table<16>>::new(&crc::CRC_32_ISCSI);

/// What a record says, borrowed from the bytes it was decoded from.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Body<'a> {
    /// First record of every segment: the delivered mark when it was started.
    Checkpoint { delivered: u64 },
    /// A message taken in.
    Accepted {
        sender: u64,
        arrival: Instant,
        message: &'a [u8],
    },
    /// Every accepted message with a sequence number up to `up_to` is delivered.
    Delivered { up_to: u64 },
    /// The upstream session's state, and a delivered mark (`delivered`).
    Session(SessionState),
}

impl Body<'_> {
    /// The whole record's length on disk.
    pub(crate) fn encoded_len(&self) -> usize {
        match self {
            Body::Checkpoint { .. } => CHECKPOINT_LEN,
            Body::Accepted { message, .. } => HEADER_LEN + ACCEPTED_META + message.len(),
            Body::Delivered { .. } => MARK_LEN,
            Body::Session(_) => SESSION_LEN,
        }
    }

    /// The delivered mark this record carries, if any.
    pub(crate) fn delivered(&self) -> Option<u64> {
        match *self {
            Body::Checkpoint { delivered } => Some(delivered),
            Body::Delivered { up_to } => Some(up_to),
            Body::Session(s) => Some(s.delivered),
            Body::Accepted { .. } => None,
        }
    }
}

/// A record that passed every check.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Record<'a> {
    pub(crate) seq: u64,
    pub(crate) body: Body<'a>,
}

/// What a header alone says about the bytes that follow.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Peek {
    /// Zeroed space: no record here.
    Empty,
    /// The length cannot be a record that fits: the rest of the segment is unreadable.
    Implausible,
    /// A record of this many bytes, still to be checked.
    Record(usize),
}

/// Reads the length in `header` against the `room` left in the segment.
pub(crate) fn peek(header: &[u8; HEADER_LEN], room: usize, max_len: usize) -> Peek {
    let len = u32::from_le_bytes([header[0], header[1], header[2], header[3]]) as usize;
    if len == 0 {
        Peek::Empty
    } else if len < HEADER_LEN || len > room || len > max_len {
        Peek::Implausible
    } else {
        Peek::Record(len)
    }
}

/// Writes the record into `out[..body.encoded_len()]` and returns that length.
/// `out` must be at least that long (the journal checks room before encoding).
pub(crate) fn encode(seq: u64, body: &Body<'_>, out: &mut [u8]) -> usize {
    let len = body.encoded_len();
    let out = &mut out[..len];
    // Lengths are bounded by the segment size, itself a u32 (checked at open).
    out[0..4].copy_from_slice(&(len as u32).to_le_bytes());
    out[8..16].copy_from_slice(&seq.to_le_bytes());
    out[17..20].fill(0);
    encode_body(body, &mut out[HEADER_LEN..]);
    out[16] = match body {
        Body::Checkpoint { .. } => KIND_CHECKPOINT,
        Body::Accepted { .. } => KIND_ACCEPTED,
        Body::Delivered { .. } => KIND_DELIVERED,
        Body::Session(_) => KIND_SESSION,
    };
    let crc = checksum(out);
    out[4..8].copy_from_slice(&crc.to_le_bytes());
    len
}

fn encode_body(body: &Body<'_>, out: &mut [u8]) {
    match *body {
        Body::Checkpoint { delivered } => {
            out[0..4].copy_from_slice(MAGIC);
            out[4..6].copy_from_slice(&VERSION.to_le_bytes());
            out[6..8].fill(0);
            out[8..16].copy_from_slice(&delivered.to_le_bytes());
        }
        Body::Accepted {
            sender,
            arrival,
            message,
        } => {
            out[0..8].copy_from_slice(&sender.to_le_bytes());
            out[8..16].copy_from_slice(&arrival.as_millis().to_le_bytes());
            out[16..].copy_from_slice(message);
        }
        Body::Delivered { up_to } => out[0..8].copy_from_slice(&up_to.to_le_bytes()),
        Body::Session(s) => s.encode(out),
    }
}

/// CRC-32C of the length field and everything after the CRC field.
fn checksum(record: &[u8]) -> u32 {
    let mut digest = CRC32C.digest();
    digest.update(&record[0..4]);
    digest.update(&record[8..]);
    digest.finalize()
}

fn u64_at(bytes: &[u8], at: usize) -> Option<u64> {
    let b: [u8; 8] = bytes.get(at..at.checked_add(8)?)?.try_into().ok()?;
    Some(u64::from_le_bytes(b))
}

/// Checks and decodes exactly one record (`bytes` is the whole record).
/// `None` for anything damaged: wrong length, CRC, kind or body.
pub(crate) fn decode(bytes: &[u8]) -> Option<Record<'_>> {
    if bytes.len() < HEADER_LEN {
        return None;
    }
    let len = u32::from_le_bytes(bytes[0..4].try_into().ok()?) as usize;
    let crc = u32::from_le_bytes(bytes[4..8].try_into().ok()?);
    if len != bytes.len() || crc != checksum(bytes) || bytes[17..20] != [0, 0, 0] {
        return None;
    }
    let seq = u64_at(bytes, 8)?;
    let body = &bytes[HEADER_LEN..];
    let body = match bytes[16] {
        KIND_CHECKPOINT if body.len() == 16 && &body[0..4] == MAGIC => {
            if u16::from_le_bytes([body[4], body[5]]) != VERSION {
                return None;
            }
            Body::Checkpoint {
                delivered: u64_at(body, 8)?,
            }
        }
        KIND_ACCEPTED if body.len() >= ACCEPTED_META => Body::Accepted {
            sender: u64_at(body, 0)?,
            arrival: Instant::from_millis(u64_at(body, 8)?),
            message: &body[ACCEPTED_META..],
        },
        KIND_DELIVERED if body.len() == 8 => Body::Delivered {
            up_to: u64_at(body, 0)?,
        },
        KIND_SESSION => Body::Session(SessionState::decode(body)?),
        _ => return None,
    };
    Some(Record { seq, body })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn roundtrip(seq: u64, body: Body<'_>) {
        let mut buf = [0u8; 128];
        let n = encode(seq, &body, &mut buf);
        assert_eq!(n, body.encoded_len());
        assert_eq!(decode(&buf[..n]), Some(Record { seq, body }));
        let header: [u8; HEADER_LEN] = buf[..HEADER_LEN].try_into().unwrap();
        assert_eq!(peek(&header, n, n), Peek::Record(n));
        assert_eq!(peek(&header, n - 1, n), Peek::Implausible);
    }

    #[test]
    fn every_kind_round_trips() {
        roundtrip(1, Body::Checkpoint { delivered: 7 });
        roundtrip(
            u64::MAX,
            Body::Accepted {
                sender: 3,
                arrival: Instant::from_millis(99),
                message: b"MSH|^~\\&|A",
            },
        );
        roundtrip(
            2,
            Body::Accepted {
                sender: 0,
                arrival: Instant::ZERO,
                message: b"",
            },
        );
        roundtrip(5, Body::Delivered { up_to: 4 });
        roundtrip(
            6,
            Body::Session(SessionState {
                delivered: 5,
                id: 42,
                token: [7; crate::wire::TOKEN_LEN],
                next: 9,
                received: 2,
            }),
        );
    }

    #[test]
    fn any_flipped_bit_or_cut_is_rejected() {
        let mut buf = [0u8; 64];
        let body = Body::Accepted {
            sender: 1,
            arrival: Instant::from_millis(5),
            message: b"hello",
        };
        let n = encode(9, &body, &mut buf);
        for byte in 0..n {
            for bit in 0..8 {
                let mut bad = buf;
                bad[byte] ^= 1 << bit;
                assert_eq!(decode(&bad[..n]), None, "byte {byte} bit {bit}");
            }
        }
        for cut in 0..n {
            assert_eq!(decode(&buf[..cut]), None);
        }
    }

    #[test]
    fn zeros_are_empty_space() {
        assert_eq!(peek(&[0; HEADER_LEN], 100, 100), Peek::Empty);
        assert_eq!(decode(&[0; 40]), None);
    }

    #[test]
    fn crc_is_castagnoli() {
        // The CRC-32C check value from the catalogue of parametrised CRCs.
        assert_eq!(CRC32C.checksum(b"123456789"), 0xE306_9283);
    }
}

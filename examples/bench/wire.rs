//! Framing shared by the client and the servers that do not use a library
//! codec, and the test payloads.

#[allow(unused_imports)]
use crate::*;

/// Largest frame any server accepts (mooring's default `max_frame`).
pub(crate) const MAX_FRAME: usize = 1 << 20;
/// The reply of the `stream` workload's servers: one per `ack_every` messages.
pub(crate) const ACK: &[u8] = b"ACK";
/// Sequence number at the front of every payload, in hex (MLLP-safe).
pub(crate) const SEQ_DIGITS: usize = 16;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Wire {
    Mllp,
    Len32,
}

impl Wire {
    pub(crate) fn parse(s: &str) -> Option<Wire> {
        match s {
            "mllp" => Some(Wire::Mllp),
            "len32" => Some(Wire::Len32),
            _ => None,
        }
    }

    pub(crate) fn name(self) -> &'static str {
        match self {
            Wire::Mllp => "mllp",
            Wire::Len32 => "len32",
        }
    }

    pub(crate) fn overhead(self) -> usize {
        match self {
            Wire::Mllp => 3,
            Wire::Len32 => 4,
        }
    }

    pub(crate) fn header(self, len: usize, out: &mut [u8]) -> usize {
        match self {
            Wire::Mllp => {
                out[0] = 0x0B;
                1
            }
            Wire::Len32 => {
                out[..4].copy_from_slice(&(len as u32).to_be_bytes());
                4
            }
        }
    }

    pub(crate) fn trailer(self, out: &mut [u8]) -> usize {
        match self {
            Wire::Mllp => {
                out[..2].copy_from_slice(&[0x1C, 0x0D]);
                2
            }
            Wire::Len32 => 0,
        }
    }

    /// The whole frame of `payload` into `out`; returns its length.
    pub(crate) fn encode(self, payload: &[u8], out: &mut [u8]) -> usize {
        let h = self.header(payload.len(), out);
        out[h..h + payload.len()].copy_from_slice(payload);
        h + payload.len() + self.trailer(&mut out[h + payload.len()..])
    }

    /// The payload of a frame of exactly `len` payload bytes at the front of
    /// `buf`: `Ok(None)` until all of it is there, `Err` when the bytes are not that frame.
    pub(crate) fn expect(self, buf: &[u8], len: usize) -> Result<Option<&[u8]>, String> {
        let total = len + self.overhead();
        match self {
            Wire::Mllp => {
                if let Some(&b) = buf.first() {
                    if b != 0x0B {
                        return Err(format!("MLLP start byte {b:#04x}"));
                    }
                }
                if buf.len() < total {
                    return Ok(None);
                }
                if buf[1 + len..total] != [0x1C, 0x0D] {
                    return Err(format!("no MLLP end block after {len} bytes"));
                }
                Ok(Some(&buf[1..1 + len]))
            }
            Wire::Len32 => {
                if buf.len() >= 4 {
                    let got = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
                    if got != len {
                        return Err(format!("length prefix {got}, expected {len}"));
                    }
                }
                if buf.len() < total {
                    return Ok(None);
                }
                Ok(Some(&buf[4..total]))
            }
        }
    }
}

/// The test payload of message `seq`: its sequence number in hex, then a filler
/// byte that depends on it.
pub(crate) fn fill_payload(seq: u64, out: &mut [u8]) {
    hex_seq(seq, out);
    out[SEQ_DIGITS..].fill(filler(seq));
}

pub(crate) fn filler(seq: u64) -> u8 {
    b'a' + (seq % 26) as u8
}

pub(crate) fn check_payload(seq: u64, p: &[u8], size: usize) -> Result<(), String> {
    if p.len() != size {
        return Err(format!(
            "message {seq}: {} bytes back, sent {size}",
            p.len()
        ));
    }
    let mut want = [0u8; SEQ_DIGITS];
    let mut tmp = [0u8; SEQ_DIGITS + 1];
    fill_payload(seq, &mut tmp);
    want.copy_from_slice(&tmp[..SEQ_DIGITS]);
    if p[..SEQ_DIGITS] != want {
        return Err(format!(
            "expected message {seq}, got {:?}",
            String::from_utf8_lossy(&p[..SEQ_DIGITS])
        ));
    }
    let f = filler(seq);
    if !p[SEQ_DIGITS..].iter().all(|&b| b == f) {
        return Err(format!("message {seq}: payload corrupted"));
    }
    Ok(())
}

/// Start of every `hl7` workload message up to its MSH-10, which is the
/// sequence number in hex; the rest of the message follows in [`HL7_MIDDLE`].
const HL7_HEAD: &[u8] =
    b"MSH|^~\\&|BENCH|SENDER FACILITY|MOORING|RECEIVER FACILITY|20261201000000||ADT^A01^ADT_A01|";
/// After MSH-10: the rest of MSH, EVN, and a PID whose last field is padding.
const HL7_MIDDLE: &[u8] =
    b"|P|2.5.1\rEVN|A01|20261201000000\rPV1|1|I|2000^2012^01\rPID|1||PATID1234^^^BENCH^MR||DOE^JANE||19700101|F|||";

/// Most bytes an ACK to an `hl7` message takes (the client's buffer sizing).
pub(crate) const HL7_ACK_ROOM: usize = 256;

/// Shortest `hl7` message: head, id, middle, segment end.
pub(crate) const HL7_MIN: usize = HL7_HEAD.len() + SEQ_DIGITS + HL7_MIDDLE.len() + 1;

/// The `hl7` workload's message `seq`, exactly `out.len()` bytes (at least
/// [`HL7_MIN`]): an ADT^A01 whose MSH-10 is `seq` in hex, padded in its last
/// PID field.
pub(crate) fn fill_hl7(seq: u64, out: &mut [u8]) {
    let (head, rest) = out.split_at_mut(HL7_HEAD.len());
    head.copy_from_slice(HL7_HEAD);
    let (id, rest) = rest.split_at_mut(SEQ_DIGITS);
    hex_seq(seq, id);
    let (middle, rest) = rest.split_at_mut(HL7_MIDDLE.len());
    middle.copy_from_slice(HL7_MIDDLE);
    if let Some((last, pad)) = rest.split_last_mut() {
        pad.fill(filler(seq).to_ascii_uppercase());
        *last = b'\r';
    }
}

/// `seq` as `SEQ_DIGITS` hex digits.
fn hex_seq(seq: u64, out: &mut [u8]) {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    for (i, b) in out[..SEQ_DIGITS].iter_mut().enumerate() {
        *b = HEX[((seq >> (60 - 4 * i)) & 0xF) as usize];
    }
}

/// Checks that `p` is an HL7 ACK accepting message `seq`: an MSH segment
/// first, and `MSA|AA|<MSH-10 of seq>` as its last segment (MSA-2 == MSH-10).
pub(crate) fn check_ack(seq: u64, p: &[u8]) -> Result<(), String> {
    const MSA: &[u8] = b"\rMSA|AA|";
    let mut want = [0u8; MSA.len() + SEQ_DIGITS + 1];
    want[..MSA.len()].copy_from_slice(MSA);
    hex_seq(seq, &mut want[MSA.len()..]);
    want[MSA.len() + SEQ_DIGITS] = b'\r';
    if p.starts_with(b"MSH|") && p.ends_with(&want) {
        Ok(())
    } else {
        Err(format!(
            "message {seq}: not its ACK: {:?}",
            String::from_utf8_lossy(p)
        ))
    }
}

impl Wire {
    /// The first whole frame at the front of `buf`, of any length: its payload
    /// and the bytes it takes; `Ok(None)` until it is all there.
    pub(crate) fn next_frame(self, buf: &[u8]) -> Result<Option<(&[u8], usize)>, String> {
        match self {
            Wire::Mllp => {
                match buf.first() {
                    None => return Ok(None),
                    Some(&0x0B) => {}
                    Some(&b) => return Err(format!("MLLP start byte {b:#04x}")),
                }
                let Some(end) = buf.iter().position(|&b| b == 0x1C) else {
                    return Ok(None);
                };
                match buf.get(end + 1) {
                    None => Ok(None),
                    Some(&0x0D) => Ok(Some((&buf[1..end], end + 2))),
                    Some(_) => Err("no CR after the MLLP end byte".into()),
                }
            }
            Wire::Len32 => {
                let Some(prefix) = buf.get(..4) else {
                    return Ok(None);
                };
                let len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]) as usize;
                if len > MAX_FRAME {
                    return Err(format!("length prefix {len}"));
                }
                Ok(buf.get(4..4 + len).map(|p| (p, 4 + len)))
            }
        }
    }
}

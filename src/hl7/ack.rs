//! Building an HL7 ACK for a message, in one pass over its parsed MSH.

use super::{Msh, Writer, SEGMENT_END};

/// Acknowledgment code for [`build_ack`] (original-mode MSA-1 values).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckCode {
    /// `AA`: message accepted.
    Accept,
    /// `AE`: message had an error; the sender should not resend it unchanged.
    Error,
    /// `AR`: message rejected (e.g. not HL7, or unsupported).
    Reject,
}

impl AckCode {
    /// The MSA-1 text for this code.
    pub fn as_str(self) -> &'static str {
        match self {
            AckCode::Accept => "AA",
            AckCode::Error => "AE",
            AckCode::Reject => "AR",
        }
    }

    /// The two bytes of [`AckCode::as_str`].
    fn as_bytes(self) -> [u8; 2] {
        match self {
            AckCode::Accept => *b"AA",
            AckCode::Error => *b"AE",
            AckCode::Reject => *b"AR",
        }
    }
}

/// MSA-3 of the `AR` answering an HL7 message without MSH-10.
pub const MISSING_CONTROL_ID: &[u8] = b"MSH-10 (message control id) is missing";

impl AckCode {
    /// The one rule every mooring responder (listen, the relay, the C
    /// example) applies to a message: `AA` for HL7 with an MSH-10; `AR` for
    /// HL7 without one (HL7 requires MSH-10: the ACK's MSA-3 says it is
    /// missing, see [`build_ack_for`]) and for a payload that is not HL7.
    pub fn for_message(msh: Option<&Msh<'_>>) -> AckCode {
        AckCode::for_control_id(msh.and_then(Msh::control_id))
    }

    /// [`AckCode::for_message`] from the message's MSH-10 (`None` also when
    /// it is not HL7).
    fn for_control_id(id: Option<&[u8]>) -> AckCode {
        match id {
            Some(_) => AckCode::Accept,
            None => AckCode::Reject,
        }
    }
}

/// Write an HL7 ACK for `msg` into `out`, returning its length, or `None` if
/// `out` is too small (the contents of `out` are then unspecified).
///
/// For an HL7 message the ACK's MSH keeps the field separator and encoding
/// characters, swaps sending (MSH-3/4) and receiving (MSH-5/6) app/facility,
/// sets MSH-7 to `timestamp`, MSH-9 to `ACK` (plus component separator and
/// the trigger event from MSH-9.2 when present, e.g. `ACK^A01`), MSH-10 to
/// `A` followed by the original control id (no length limit is applied, so
/// ids longer than 19 characters give an MSH-10 over HL7's 20-character
/// limit; most receivers accept it and it keeps the ACK traceable), and
/// copies MSH-11 and MSH-12. It is followed by `MSA|<code>|<original MSH-10>`.
/// Both segments end with CR. An HL7 message without MSH-10 answered with a
/// code other than `AA` gets MSA-3 [`MISSING_CONTROL_ID`].
///
/// For a payload that is not HL7 a minimal valid ACK is written, with
/// separators `|^~\&`, empty app/facility fields, MSH-9 `ACK`, MSH-10 `A`,
/// MSH-11 `P`, MSH-12 `2.5` and an empty MSA-2. `code` is used as given
/// (normally [`AckCode::Reject`] here).
///
/// Bytes of `timestamp` that are separators, encoding characters or line
/// ends are skipped, so that the ACK always parses back.
pub fn build_ack(msg: &[u8], code: AckCode, timestamp: &[u8], out: &mut [u8]) -> Option<usize> {
    build_ack_for(Msh::parse(msg).as_ref(), code, timestamp, out)
}

/// [`build_ack`] from an MSH already parsed ([`Msh::parse`] of the message,
/// `None` when it is not HL7), so that a caller that also needs the control id
/// or the message key parses the message once. Writes the ACK in one pass over
/// the fields.
pub fn build_ack_for(
    msh: Option<&Msh<'_>>,
    code: AckCode,
    timestamp: &[u8],
    out: &mut [u8],
) -> Option<usize> {
    let id = msh.and_then(Msh::control_id);
    write_ack(msh, id, code, timestamp, out).map(|(n, _)| n)
}

/// An ACK written by [`build_ack_for_message`]: its bytes, and whether they
/// are known to hold no control byte but the segment ends (CR).
#[derive(Clone, Copy, Debug)]
pub struct Ack<'o> {
    bytes: &'o [u8],
    plain: bool,
}

impl<'o> Ack<'o> {
    /// The ACK's bytes.
    pub fn as_bytes(&self) -> &'o [u8] {
        self.bytes
    }

    /// True when the builder knows the ACK holds no byte below 0x20 but CR:
    /// the fields it copied and its timestamp hold none. Then no framing
    /// needs to scan it for bytes it cannot carry (MLLP's 0x0B and 0x1C), and
    /// [`crate::Node::send_ack`] does not. False says only that it was not
    /// shown (a field or timestamp with a tab, or such a byte after MSH-12).
    pub fn is_plain(&self) -> bool {
        self.plain
    }

    /// The ACK built as `bytes`, whose [`Ack::is_plain`] was `plain`: for a
    /// holder of the bytes that could not keep the borrow ([`crate::Server`]'s
    /// reply buffer). Only a builder's own flag may be passed.
    pub(crate) fn rebuilt(bytes: &'o [u8], plain: bool) -> Ack<'o> {
        Ack { bytes, plain }
    }
}

/// The ACK every mooring responder sends for a message: [`build_ack_for`]
/// with the code of [`AckCode::for_message`], its MSH-10 found once for both.
/// Returns the code with the ACK (`None` if `out` is too small).
pub fn build_ack_for_message<'o>(
    msh: Option<&Msh<'_>>,
    timestamp: &[u8],
    out: &'o mut [u8],
) -> (AckCode, Option<Ack<'o>>) {
    let id = msh.and_then(Msh::control_id);
    let code = AckCode::for_control_id(id);
    (code, ack_into(msh, id, code, timestamp, out))
}

/// [`build_ack_for`] as an [`Ack`] (which says whether it is plain), for a
/// responder that chooses the code itself ([`crate::Reply::ack`]).
pub(crate) fn build_ack_coded<'o>(
    msh: Option<&Msh<'_>>,
    code: AckCode,
    timestamp: &[u8],
    out: &'o mut [u8],
) -> Option<Ack<'o>> {
    ack_into(msh, msh.and_then(Msh::control_id), code, timestamp, out)
}

/// [`write_ack`] as an [`Ack`] over the bytes written.
#[inline(always)]
fn ack_into<'o>(
    msh: Option<&Msh<'_>>,
    id: Option<&[u8]>,
    code: AckCode,
    timestamp: &[u8],
    out: &'o mut [u8],
) -> Option<Ack<'o>> {
    let (n, plain) = write_ack(msh, id, code, timestamp, out)?;
    let out: &'o [u8] = out;
    out.get(..n).map(|bytes| Ack::rebuilt(bytes, plain))
}

/// [`build_ack_for`] with MSH-10 given (`id`: [`Msh::control_id`] of `msh`):
/// the length, and whether the ACK is plain ([`Ack::is_plain`]).
#[inline(always)]
fn write_ack(
    msh: Option<&Msh<'_>>,
    id: Option<&[u8]>,
    code: AckCode,
    timestamp: &[u8],
    out: &mut [u8],
) -> Option<(usize, bool)> {
    let default_msh;
    let (msh, hl7) = match msh {
        Some(m) => (m, true),
        None => {
            default_msh = Msh::default_view();
            (&default_msh, false)
        }
    };
    let sep = msh.field_sep();
    let id = id.unwrap_or(&[]);

    let mut w = Writer::new(out);
    // Fields that need no trimming are copied as they lie, several in one
    // piece with the separators between and after them, and the fixed bytes
    // between them in one piece each.
    w.put(msh.head());
    put_fields(&mut w, msh, 5..=6, true);
    put_fields(&mut w, msh, 3..=4, true);
    // Fields, head and constants are plain or not as the MSH is; a
    // timestamp of digits is.
    let mut plain = msh.is_plain();
    // Digits are never structural (separators are punctuation): the usual
    // timestamp is copied whole instead of checked byte by byte.
    if all_digits(timestamp) {
        w.put(timestamp);
    } else {
        for &b in timestamp {
            if !msh.is_structural(b) {
                plain &= b >= 0x20;
                w.put_byte(b);
            }
        }
    }
    // MSH-8 (security) stays empty.
    w.put(&[sep, sep, b'A', b'C', b'K']);
    if let Some(trigger) = msh.component_and_trigger() {
        w.put(trigger);
    }
    w.put(&[sep, b'A']);
    if hl7 {
        // MSH-10 as it lies is `id` (its trimmed value), or needs trimming.
        put_fields(&mut w, msh, 10..=12, false);
    } else {
        w.put(id);
        w.put_byte(sep);
        w.put(b"P");
        w.put_byte(sep);
        w.put(b"2.5");
    }
    let [c1, c2] = code.as_bytes();
    w.put(&[SEGMENT_END, b'M', b'S', b'A', sep, c1, c2, sep]);
    w.put(id);
    if hl7 && id.is_empty() && code != AckCode::Accept {
        // MSA-3 (text message) says why: HL7 requires MSH-10.
        w.put_byte(sep);
        w.put(MISSING_CONTROL_ID);
    }
    w.put_byte(SEGMENT_END);
    w.finish().ok().map(|n| (n, plain))
}

/// The MSH fields `fields` (trimmed) with a separator between each two and,
/// when `sep_after`, after the last: in one copy when they lie so.
#[inline(always)]
fn put_fields(
    w: &mut Writer<'_>,
    msh: &Msh<'_>,
    fields: core::ops::RangeInclusive<usize>,
    sep_after: bool,
) {
    if let Some(span) = msh.span(*fields.start(), *fields.end(), sep_after) {
        w.put(span);
        return;
    }
    let last = *fields.end();
    for n in fields {
        w.put(msh.field(n));
        if n < last || sep_after {
            w.put_byte(msh.field_sep());
        }
    }
}

/// Whether every byte of `text` is an ASCII digit, eight bytes at a time.
fn all_digits(text: &[u8]) -> bool {
    let mut chunks = text.chunks_exact(8);
    let full = chunks
        .by_ref()
        .all(|c| digits8(<[u8; 8]>::try_from(c).map_or(0, u64::from_le_bytes)));
    if chunks.remainder().is_empty() {
        return full;
    }
    // The last eight bytes, overlapping those checked: no copy (the usual
    // 14-byte timestamp).
    let tail = text.len().checked_sub(8).and_then(|at| text.get(at..));
    if let Some(last) = tail.and_then(<[u8]>::first_chunk::<8>) {
        return full && digits8(u64::from_le_bytes(*last));
    }
    let mut last = [b'0'; 8];
    for (w, b) in last.iter_mut().zip(chunks.remainder()) {
        *w = *b;
    }
    full && digits8(u64::from_le_bytes(last))
}

/// Whether all 8 bytes of `x` are ASCII digits. For a byte below 0x80, adding
/// 0x80 - c sets its high bit exactly when it is at least c, without carrying
/// into the next byte; a byte of 0x80 or more fails on its own (`!x`).
fn digits8(x: u64) -> bool {
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    let at_least_0 = x.wrapping_add(u64::from_ne_bytes([0x80 - b'0'; 8]));
    let above_9 = x.wrapping_add(u64::from_ne_bytes([0x80 - b':'; 8]));
    at_least_0 & !above_9 & !x & HIGH == HIGH
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn all_digits_agrees_with_checking_each_byte() {
        let mut text = [0u8; 20];
        for len in 0..=text.len() {
            for b in 0..=255u8 {
                for at in 0..len {
                    text[..len].fill(b'7');
                    text[at] = b;
                    let t = &text[..len];
                    assert_eq!(all_digits(t), t.iter().all(u8::is_ascii_digit), "{t:?}");
                }
            }
        }
        assert!(all_digits(b"20261122233000"));
        assert!(all_digits(b""));
    }
}

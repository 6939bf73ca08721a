//! HL7 v2 helpers: just enough parsing to correlate requests with ACKs and to
//! answer a message with an ACK.
//!
//! Everything here works on borrowed byte slices and caller-provided buffers,
//! so it allocates nothing and never panics, whatever arrives off the wire:
//! link code can call it on every message without extra failure modes.

/// The HL7 v2 segment terminator written by this module.
const SEGMENT_END: u8 = b'\r';

/// Separators used when the input gives none (non-HL7 payloads).
const DEFAULT_SEPARATOR: u8 = b'|';
/// Default MSH-2 encoding characters: component, repetition, escape, subcomponent.
const DEFAULT_ENCODING: &[u8] = b"^~\\&";
/// The start of an MSH segment with the default separators, through MSH-2's end.
const DEFAULT_HEAD: &[u8] = b"MSH|^~\\&|";

/// Line ends accepted when parsing; HL7 says `\r`, but files and sloppy senders use `\n`.
fn is_line_end(b: u8) -> bool {
    b == b'\r' || b == b'\n'
}

/// Bytes acceptable as a delimiter: printable punctuation, so that a letter or
/// digit after "MSH" (e.g. "MSHOW") is not mistaken for a message.
fn is_delimiter_char(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// Splits into segments on `\r` or `\n`; empty pieces from `\r\n` are harmless to callers.
fn segments(msg: &[u8]) -> impl Iterator<Item = &[u8]> {
    msg.split(|&b| is_line_end(b))
}

/// Trims trailing whitespace and maps an empty field to `None`, because an
/// empty control id or code is as good as absent for correlation.
fn non_empty(field: &[u8]) -> Option<&[u8]> {
    let field = field.trim_ascii_end();
    if field.is_empty() {
        None
    } else {
        Some(field)
    }
}

mod ack;
mod batch;
mod msh;
mod time;

pub(crate) use ack::build_ack_coded;
pub use ack::{build_ack, build_ack_for, build_ack_for_message, Ack, AckCode, MISSING_CONTROL_ID};
pub use batch::{batch_frame_into, BatchEnvelope, Messages, ENVELOPE_SEGMENTS};
pub use msh::Msh;
pub use time::{timestamp_utc, TimestampCache};

/// Field value of MSH-10 (message control id) of an HL7 v2 message, if the
/// payload starts with "MSH" and has it.
///
/// The value is returned without trailing whitespace; an empty field gives
/// `None` because it cannot be used for correlation.
pub fn control_id(msg: &[u8]) -> Option<&[u8]> {
    Msh::parse(msg).and_then(|m| m.control_id())
}

/// What makes a message the same message again, for duplicate detection:
/// `[MSH-3, MSH-4, MSH-10]` (sending application, sending facility, control
/// id), each trimmed like [`control_id`]; MSH-3 and MSH-4 may be empty. `None`
/// without an MSH-10.
///
/// MSH-10 is unique only per sender: two devices with independent counters
/// reuse each other's ids. Nothing of the link (the peer's address or port)
/// is part of the key, so a resend over a new connection is still the same
/// message. Works on a whole message or on its MSH segment alone.
pub fn message_key(msg: &[u8]) -> Option<[&[u8]; 3]> {
    Msh::parse(msg)?.message_key()
}

/// MSA-1 (acknowledgment code, e.g. `b"AA"`) of an ACK message, if it has an
/// MSA segment.
///
/// The payload must start with a valid MSH segment, since that is where the
/// field separator comes from.
pub fn ack_code(msg: &[u8]) -> Option<&[u8]> {
    Msh::parse(msg).and_then(|m| m.msa_field(msg, 1))
}

/// MSA-2 (control id of the message being acknowledged), if present and non-empty.
///
/// Used to tell the ACK for the message in flight from a late ACK for an
/// earlier one.
pub fn acked_control_id(msg: &[u8]) -> Option<&[u8]> {
    Msh::parse(msg).and_then(|m| m.msa_field(msg, 2))
}

/// True when the payload looks like an HL7 v2 message: starts with "MSH",
/// a field separator byte and 1 to 5 distinct encoding characters ended by
/// the field separator.
///
/// Separators must be ASCII punctuation; this keeps arbitrary binary or text
/// payloads that happen to start with "MSH" from being treated as HL7.
pub fn is_hl7(msg: &[u8]) -> bool {
    Msh::parse(msg).is_some()
}

/// Whether `reply` is the reply to `request`.
///
/// True when either side has no control id to compare (request without
/// MSH-10 or reply without MSA-2): non-HL7 traffic can't be correlated, so it
/// is accepted. Otherwise true only when the reply's MSA-2 equals the
/// request's MSH-10; false means a late ACK for an earlier message.
pub fn reply_matches(request: &[u8], reply: &[u8]) -> bool {
    match (control_id(request), acked_control_id(reply)) {
        (Some(sent), Some(acked)) => sent == acked,
        _ => true,
    }
}

/// Writes into a fixed buffer and keeps counting past its end, so callers
/// learn the size that would have been needed without any allocation.
pub(crate) struct Writer<'o> {
    /// The part of the buffer not written yet: each piece is split off its
    /// front, one length check per piece. Empty once a piece did not fit, so
    /// that nothing after it is written.
    free: &'o mut [u8],
    /// The buffer's length less what was left unwritten before a piece that
    /// did not fit: what fitted is this less `free`'s length.
    cap: usize,
    /// Bytes of the pieces that did not fit (each at least one): counted
    /// only then, so a piece that fits costs no addition.
    over: usize,
}

impl<'o> Writer<'o> {
    pub(crate) fn new(out: &'o mut [u8]) -> Self {
        Writer {
            cap: out.len(),
            free: out,
            over: 0,
        }
    }

    pub(crate) fn put(&mut self, bytes: &[u8]) {
        let free = core::mem::take(&mut self.free);
        let left = free.len();
        match free.split_at_mut_checked(bytes.len()) {
            Some((dst, free)) => {
                copy_short(dst, bytes);
                self.free = free;
            }
            None => self.missed(left, bytes.len()),
        }
    }

    /// A piece of `len` bytes did not fit in the `left` bytes free.
    #[cold]
    fn missed(&mut self, left: usize, len: usize) {
        self.cap -= left;
        self.over = self.over.saturating_add(len);
    }

    pub(crate) fn put_byte(&mut self, b: u8) {
        // A single store, not a copy: an ACK has some twenty of these.
        match core::mem::take(&mut self.free).split_first_mut() {
            Some((slot, free)) => {
                *slot = b;
                self.free = free;
            }
            // Nothing was free.
            None => self.missed(0, 1),
        }
    }

    /// `Ok(len)` when everything fitted, otherwise `Err(needed)`.
    pub(crate) fn finish(self) -> Result<usize, usize> {
        let fitted = self.cap - self.free.len();
        if self.over == 0 {
            Ok(fitted)
        } else {
            Err(fitted.saturating_add(self.over))
        }
    }
}

/// `dst.copy_from_slice(src)` (same lengths), without a call to `memcpy` for
/// the short pieces an ACK is made of: two overlapping loads and stores of a
/// fixed size cover any length between that size and twice it.
#[inline(always)]
fn copy_short(dst: &mut [u8], src: &[u8]) {
    let n = src.len();
    if dst.len() != n {
        return;
    }
    match n {
        0 => {}
        // The first, middle and last byte: all of one to three.
        1..=3 => {
            for i in [0, n / 2, n - 1] {
                if let (Some(d), Some(s)) = (dst.get_mut(i), src.get(i)) {
                    *d = *s;
                }
            }
        }
        4..=7 => copy_ends::<4>(dst, src),
        8..=16 => copy_ends::<8>(dst, src),
        17..=32 => copy_ends::<16>(dst, src),
        _ => dst.copy_from_slice(src),
    }
}

/// Copies the first and the last `W` bytes of `src` (`W <= src.len() <= 2W`,
/// `dst` as long): all of it.
#[inline(always)]
fn copy_ends<const W: usize>(dst: &mut [u8], src: &[u8]) {
    let tail = src.len().saturating_sub(W);
    if let (Some(d), Some(s)) = (dst.first_chunk_mut::<W>(), src.first_chunk::<W>()) {
        *d = *s;
    }
    if let (Some(d), Some(s)) = (
        dst.get_mut(tail..).and_then(|d| d.first_chunk_mut::<W>()),
        src.get(tail..).and_then(|s| s.first_chunk::<W>()),
    ) {
        *d = *s;
    }
}

#[cfg(test)]
mod tests;

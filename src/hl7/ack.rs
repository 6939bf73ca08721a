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
/// Both segments end with CR.
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
    let default_msh = Msh::default_view();
    let (msh, hl7) = match msh {
        Some(m) => (m, true),
        None => (&default_msh, false),
    };
    let sep = msh.field_sep();
    let id = msh.control_id().unwrap_or(&[]);
    let (processing_id, version): (&[u8], &[u8]) = if hl7 {
        (msh.field(11), msh.field(12))
    } else {
        (b"P", b"2.5")
    };

    let mut w = Writer::new(out);
    w.put(b"MSH");
    w.put_byte(sep);
    w.put(msh.encoding());
    for field in [msh.field(5), msh.field(6), msh.field(3), msh.field(4)] {
        w.put_byte(sep);
        w.put(field);
    }
    w.put_byte(sep);
    // Digits are never structural (separators are punctuation): the usual
    // timestamp is copied whole instead of checked byte by byte.
    if timestamp.iter().all(u8::is_ascii_digit) {
        w.put(timestamp);
    } else {
        for &b in timestamp {
            if !msh.is_structural(b) {
                w.put_byte(b);
            }
        }
    }
    w.put_byte(sep); // MSH-8 (security) stays empty.
    w.put_byte(sep);
    w.put(b"ACK");
    if let Some(trigger) = msh.trigger_event() {
        w.put_byte(msh.component_sep());
        w.put(trigger);
    }
    w.put_byte(sep);
    w.put_byte(b'A');
    w.put(id);
    w.put_byte(sep);
    w.put(processing_id);
    w.put_byte(sep);
    w.put(version);
    w.put_byte(SEGMENT_END);
    w.put(b"MSA");
    w.put_byte(sep);
    w.put(code.as_str().as_bytes());
    w.put_byte(sep);
    w.put(id);
    w.put_byte(SEGMENT_END);
    w.finish().ok()
}

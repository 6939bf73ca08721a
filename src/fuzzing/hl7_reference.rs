//! A plain HL7 ACK builder, the oracle for the fast one ([`crate::hl7::build_ack`]):
//! it splits the first segment on the separator and concatenates, following
//! the documented rules word for word, with no care for speed. The fuzz target
//! and the unit tests compare the two byte for byte.

use crate::hl7::{AckCode, MISSING_CONTROL_ID};

/// Punctuation, as MSH-1 and MSH-2 must be.
fn punctuation(b: u8) -> bool {
    b.is_ascii_graphic() && !b.is_ascii_alphanumeric()
}

/// MSH-1 and MSH-2 of `msg` when it starts with a valid MSH segment.
fn separators(msg: &[u8]) -> Option<(u8, &[u8])> {
    let rest = msg.strip_prefix(b"MSH")?;
    let (&sep, rest) = rest.split_first()?;
    let n = rest.iter().take(6).position(|&b| b == sep)?;
    let enc = rest.get(..n)?;
    let distinct = (0..enc.len()).all(|i| !enc[..i].contains(&enc[i]));
    (punctuation(sep) && !enc.is_empty() && enc.iter().all(|&c| punctuation(c)) && distinct)
        .then_some((sep, enc))
}

/// The ACK [`crate::hl7::build_ack`] must write for `msg`.
pub fn reference_ack(msg: &[u8], code: AckCode, timestamp: &[u8]) -> Vec<u8> {
    let hl7 = separators(msg);
    let (sep, enc) = hl7.unwrap_or((b'|', b"^~\\&"));
    let segment = match hl7 {
        Some(_) => msg
            .split(|&b| b == b'\r' || b == b'\n')
            .next()
            .unwrap_or(&[]),
        None => &[],
    };
    // fields[0] is "MSH", fields[n - 1] is MSH-n for n >= 2.
    let fields: Vec<&[u8]> = segment.split(|&b| b == sep).collect();
    let field = |n: usize| fields.get(n - 1).map_or(&[][..], |f| f.trim_ascii_end());
    let id = field(10);
    let cs = enc[0];
    let trigger = field(9)
        .split(|&b| b == cs)
        .nth(1)
        .map(<[u8]>::trim_ascii_end)
        .filter(|t| !t.is_empty());

    let mut ack = b"MSH".to_vec();
    ack.push(sep);
    ack.extend_from_slice(enc);
    for n in [5, 6, 3, 4] {
        ack.push(sep);
        ack.extend_from_slice(field(n));
    }
    ack.push(sep);
    let structural = |b: &u8| *b == sep || *b == b'\r' || *b == b'\n' || enc.contains(b);
    ack.extend(timestamp.iter().filter(|b| !structural(b)));
    ack.extend_from_slice(&[sep, sep]);
    ack.extend_from_slice(b"ACK");
    if let Some(t) = trigger {
        ack.push(cs);
        ack.extend_from_slice(t);
    }
    ack.push(sep);
    ack.push(b'A');
    ack.extend_from_slice(id);
    ack.push(sep);
    if hl7.is_some() {
        ack.extend_from_slice(field(11));
        ack.push(sep);
        ack.extend_from_slice(field(12));
    } else {
        ack.extend_from_slice(b"P|2.5");
    }
    ack.extend_from_slice(b"\rMSA");
    ack.push(sep);
    ack.extend_from_slice(code.as_str().as_bytes());
    ack.push(sep);
    ack.extend_from_slice(id);
    if hl7.is_some() && id.is_empty() && code != AckCode::Accept {
        ack.push(sep);
        ack.extend_from_slice(MISSING_CONTROL_ID);
    }
    ack.push(b'\r');
    ack
}

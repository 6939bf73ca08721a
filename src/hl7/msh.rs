//! The parsed MSH segment: every field the crate and the CLI read, found in
//! one pass over the segment, so that correlating, keying and acknowledging a
//! message never scans it again.

use super::{is_delimiter_char, is_line_end, non_empty};

/// The last MSH field kept by [`Msh::parse`]: MSH-12 (version id). Fields
/// beyond it are found on demand by [`Msh::field`].
const LAST_KEPT: usize = 12;

/// Number of kept fields: MSH-3 ..= MSH-12.
const KEPT: usize = LAST_KEPT - 2;

/// A parsed MSH segment: separators and fields MSH-3 to MSH-12, each trimmed of
/// trailing whitespace, borrowed from the message.
///
/// [`Msh::parse`] validates MSH-1 and MSH-2 (see [`super::is_hl7`]) and walks
/// the segment once; the accessors only index.
#[derive(Clone, Copy, Debug)]
pub struct Msh<'a> {
    /// The field separator (MSH-1).
    sep: u8,
    /// The encoding characters (MSH-2); the first one is the component separator.
    enc: &'a [u8],
    /// MSH-3 ..= MSH-12, trimmed; empty when absent.
    fields: [&'a [u8]; KEPT],
    /// What follows MSH-12's separator when the segment goes on (otherwise
    /// empty): read only for fields beyond MSH-12.
    more: &'a [u8],
}

impl<'a> Msh<'a> {
    /// Parses the MSH segment at the start of `msg`, validating MSH-1 and MSH-2
    /// so that a random payload starting with "MSH" is not taken for HL7.
    /// `None` when `msg` does not start with a valid MSH segment.
    pub fn parse(msg: &'a [u8]) -> Option<Self> {
        let after_msh = msg.strip_prefix(b"MSH")?;
        let (&sep, after_sep) = after_msh.split_first()?;
        if !is_delimiter_char(sep) {
            return None;
        }
        // MSH-2: 1 to 5 distinct punctuation characters ended by `sep`. They are
        // printable, so MSH-2 never runs past a line end.
        let enc_len = after_sep.iter().position(|&b| b == sep)?;
        let (enc, after_enc) = after_sep.split_at(enc_len);
        if enc.is_empty() || enc.len() > 5 {
            return None;
        }
        for (i, &c) in enc.iter().enumerate() {
            let repeated = enc.get(i + 1..).is_some_and(|later| later.contains(&c));
            if !is_delimiter_char(c) || repeated {
                return None;
            }
        }
        // `after_enc` starts with the separator that ends MSH-2.
        let mut rest = after_enc.get(1..).unwrap_or(&[]);
        let mut fields: [&'a [u8]; KEPT] = [&[]; KEPT];
        let mut more: &'a [u8] = &[];
        for (i, slot) in fields.iter_mut().enumerate() {
            let end = rest
                .iter()
                .position(|&b| b == sep || is_line_end(b))
                .unwrap_or(rest.len());
            let (field, tail) = rest.split_at(end);
            *slot = field.trim_ascii_end();
            match tail.split_first() {
                Some((&b, after)) if b == sep => {
                    rest = after;
                    if i + 1 == KEPT {
                        more = after;
                    }
                }
                // A line end or the end of the message: the segment is over.
                _ => break,
            }
        }
        Some(Msh {
            sep,
            enc,
            fields,
            more,
        })
    }

    /// The field separator (MSH-1).
    pub fn field_sep(&self) -> u8 {
        self.sep
    }

    /// The encoding characters (MSH-2), 1 to 5 distinct punctuation bytes.
    pub fn encoding(&self) -> &'a [u8] {
        self.enc
    }

    /// The component separator (first encoding character).
    pub fn component_sep(&self) -> u8 {
        self.enc.first().copied().unwrap_or(b'^')
    }

    /// MSH-`n` (HL7 numbering, `n >= 2`), trimmed of trailing whitespace, or
    /// empty when absent. MSH-2 is [`Msh::encoding`]; MSH-1 (the separator
    /// itself) and `n == 0` give empty.
    pub fn field(&self, n: usize) -> &'a [u8] {
        match n {
            0 | 1 => &[],
            2 => self.enc,
            _ => match self.fields.get(n - 3) {
                Some(field) => field,
                None => self.field_beyond(n),
            },
        }
    }

    /// MSH-`n` for `n > 12`, scanned from what follows MSH-12.
    fn field_beyond(&self, n: usize) -> &'a [u8] {
        let segment_rest = self.more.split(|&b| is_line_end(b)).next().unwrap_or(&[]);
        if self.more.is_empty() {
            return &[];
        }
        n.checked_sub(LAST_KEPT + 1)
            .and_then(|i| segment_rest.split(|&b| b == self.sep).nth(i))
            .map_or(&[][..], <[u8]>::trim_ascii_end)
    }

    /// MSH-10 (message control id), `None` when empty.
    pub fn control_id(&self) -> Option<&'a [u8]> {
        non_empty(self.field(10))
    }

    /// `[MSH-3, MSH-4, MSH-10]`, see [`super::message_key`].
    pub fn message_key(&self) -> Option<[&'a [u8]; 3]> {
        Some([self.field(3), self.field(4), self.control_id()?])
    }

    /// The trigger event (MSH-9.2, e.g. `A01` of `ADT^A01`), `None` when empty.
    pub fn trigger_event(&self) -> Option<&'a [u8]> {
        let cs = self.component_sep();
        self.field(9).split(|&b| b == cs).nth(1).and_then(non_empty)
    }

    /// Whether `b` would break the structure of a segment if copied into a field.
    pub(super) fn is_structural(&self, b: u8) -> bool {
        b == self.sep || is_line_end(b) || self.enc.contains(&b)
    }

    /// A view with the default separators `|^~\&` and no fields, used to answer
    /// a payload that is not HL7.
    pub(super) fn default_view() -> Msh<'static> {
        Msh {
            sep: super::DEFAULT_SEPARATOR,
            enc: super::DEFAULT_ENCODING,
            fields: [&[]; KEPT],
            more: &[],
        }
    }

    /// MSA-`n` (`n >= 1`) from the first MSA segment of `msg`, trimmed; `None`
    /// when absent or empty. `msg` is the message this MSH was parsed from.
    pub(super) fn msa_field(&self, msg: &'a [u8], n: usize) -> Option<&'a [u8]> {
        let sep = self.sep;
        let msa = super::segments(msg)
            .find(|seg| seg.strip_prefix(b"MSA").and_then(|r| r.first()) == Some(&sep))?;
        msa.split(|&b| b == sep).nth(n).and_then(non_empty)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The field as the earlier implementation found it: split the first
    /// segment on the separator each time (slow, obviously right).
    fn reference_field(msg: &[u8], sep: u8, n: usize) -> &[u8] {
        let segment = super::super::segments(msg).next().unwrap_or(&[]);
        n.checked_sub(1)
            .and_then(|i| segment.split(|&b| b == sep).nth(i))
            .map_or(&[][..], <[u8]>::trim_ascii_end)
    }

    #[test]
    fn one_pass_fields_agree_with_splitting_the_segment() {
        let mut state = 0x9E37_79B9_7F4A_7C15u64;
        let mut next = move || {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            state
        };
        const ALPHABET: &[u8] = b"|#^~\\&AB12 \r\n";
        let mut buf = [0u8; 96];
        let mut parsed = 0;
        for round in 0..20_000 {
            let prefix: &[u8] = if round % 2 == 0 {
                b"MSH|^~\\&|"
            } else {
                b"MSH#^~#"
            };
            let len = prefix.len() + (next() % (buf.len() - prefix.len()) as u64) as usize;
            buf[..prefix.len()].copy_from_slice(prefix);
            for b in &mut buf[prefix.len()..len] {
                *b = ALPHABET[(next() % ALPHABET.len() as u64) as usize];
            }
            let msg = &buf[..len];
            let Some(msh) = Msh::parse(msg) else {
                continue;
            };
            parsed += 1;
            for n in 2..=20 {
                assert_eq!(
                    msh.field(n),
                    reference_field(msg, msh.field_sep(), n),
                    "MSH-{n} of {:?}",
                    String::from_utf8_lossy(msg)
                );
            }
        }
        assert!(parsed > 10_000, "most inputs should parse, got {parsed}");
    }

    #[test]
    fn view_gives_what_the_cli_needs() {
        let msg = b"MSH|^~\\&|APP|FAC|RAPP|RFAC|20260101||ADT^A04|CTRL-42 |T|2.3|||AL\rPID|1\r";
        let m = Msh::parse(msg).unwrap();
        assert_eq!(m.field_sep(), b'|');
        assert_eq!(m.encoding(), b"^~\\&");
        assert_eq!(m.component_sep(), b'^');
        assert_eq!(m.control_id(), Some(&b"CTRL-42"[..]));
        assert_eq!(m.message_key(), Some([&b"APP"[..], b"FAC", b"CTRL-42"]));
        assert_eq!(m.trigger_event(), Some(&b"A04"[..]));
        assert_eq!(m.field(12), b"2.3");
        assert_eq!(m.field(15), b"AL");
        assert_eq!(m.field(16), b"");
    }
}

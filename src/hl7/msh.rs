//! The parsed MSH segment: every field the crate and the CLI read, found in
//! one pass over the segment, so that correlating, keying and acknowledging a
//! message never scans it again.

use super::{is_delimiter_char, is_line_end, non_empty};

/// The last MSH field kept by [`Msh::parse`]: MSH-12 (version id). Fields
/// beyond it are found on demand by [`Msh::field`].
const LAST_KEPT: usize = 12;

/// Number of kept fields: MSH-3 ..= MSH-12.
const KEPT: usize = LAST_KEPT - 2;

/// Eight copies of a byte, one per byte of a word.
const fn splat(b: u8) -> u64 {
    u64::from_ne_bytes([b; 8])
}

/// The high bit of each byte of `x` that is zero, and no other bit (exact:
/// no false positives, so every bit is a byte to look at).
const fn zero_bytes(x: u64) -> u64 {
    const LOW7: u64 = splat(0x7F);
    !(((x & LOW7).wrapping_add(LOW7)) | x | LOW7)
}

/// Where the fields after MSH-2 end: `ends[i]` is the index in `segment` just
/// past MSH-(3+i) (its separator, or the segment's end for the last field);
/// `count` of them are present. `more`: what follows MSH-12's separator.
/// `plain`: no byte of MSH-3 ..= MSH-12 is below 0x20.
struct Splits {
    ends: [usize; KEPT],
    count: usize,
    more: bool,
    plain: bool,
}

/// The high bit of each byte of `x`.
const HIGH: u64 = splat(0x80);

/// Has a high bit when some byte of `x` is below 0x20 (a control byte: a
/// line end, a tab, one of MLLP's block bytes), and none when none is: as a
/// yes or no, exact. A mark above a control byte may be false (a borrow
/// runs on past it), one below the lowest control byte never is.
const fn control_marks(x: u64) -> u64 {
    x.wrapping_sub(splat(0x20)) & !x & HIGH
}

/// Finds the field separators of the MSH segment (`rest` starts at MSH-3 and
/// runs to the end of the message) and stops after MSH-12 or at the
/// segment's end (CR or LF), whichever comes first.
///
/// One pass, eight bytes at a time with word arithmetic: each word is checked
/// for control bytes, and its separator marks are taken one by one as field
/// ends. Only a word with a control byte (normally the one where the segment
/// ends) is looked at closer, in [`Splits::control_word`]. Not inlined: on
/// its own it keeps its state in registers (measured: inlined into
/// [`Msh::parse`], each word cost some ten instructions more).
#[inline(never)]
fn split_fields(rest: &[u8], sep: u8) -> Splits {
    let seps = splat(sep);
    let mut s = Splits {
        ends: [0; KEPT],
        count: 0,
        more: false,
        plain: true,
    };
    // Where the current word starts in `rest`.
    let mut at = 0;
    let mut words = rest.chunks_exact(8);
    for word in words.by_ref() {
        let x = <[u8; 8]>::try_from(word).map_or(0, u64::from_le_bytes);
        if control_marks(x) != 0 {
            if s.control_word(x, seps, at) {
                return s;
            }
        } else if s.take(zero_bytes(x ^ seps), at) {
            return s;
        }
        at += 8;
    }
    let tail = words.remainder();
    if !tail.is_empty() {
        // The last few bytes, then spaces: never a separator (those are
        // printable) nor a control byte.
        let mut word = [b' '; 8];
        for (w, b) in word.iter_mut().zip(tail) {
            *w = *b;
        }
        let x = u64::from_le_bytes(word);
        if s.control_word(x, seps, at) {
            return s;
        }
    }
    s.last_field(rest.len());
    s
}

impl Splits {
    /// Takes the separator `marks` of the word at `at` as field ends; true
    /// when that was the last field kept (then `more`).
    #[inline(always)]
    fn take(&mut self, mut marks: u64, at: usize) -> bool {
        while marks != 0 {
            if let Some(end) = self.ends.get_mut(self.count) {
                *end = at + (marks.trailing_zeros() / 8) as usize;
            }
            self.count += 1;
            if self.count == KEPT {
                self.more = true;
                return true;
            }
            marks &= marks - 1;
        }
        false
    }

    /// [`Splits::take`] for a word that may hold a control byte: a line end
    /// ends the segment there, any control byte before it makes the fields
    /// not plain. True when the fields are all found.
    fn control_word(&mut self, x: u64, seps: u64, at: usize) -> bool {
        let line = zero_bytes(x ^ splat(b'\r')) | zero_bytes(x ^ splat(b'\n'));
        // Every bit below the first line end's mark (all of them without
        // one): the bytes of this word in the segment.
        let within = (line & line.wrapping_neg()).wrapping_sub(1);
        self.plain &= control_marks(x) & within == 0;
        if self.take(zero_bytes(x ^ seps) & within, at) {
            return true;
        }
        if line == 0 {
            return false;
        }
        self.last_field(at + (line.trailing_zeros() / 8) as usize);
        true
    }

    /// The segment ends at `segment_end` after `count` separators (fewer than
    /// fields): the last field runs to it.
    fn last_field(&mut self, segment_end: usize) {
        if let Some(end) = self.ends.get_mut(self.count) {
            *end = segment_end;
        }
        self.count = (self.count + 1).min(KEPT);
    }
}

/// The first `b` in `bytes` at or after `from`.
fn position_from(bytes: &[u8], b: u8, from: usize) -> Option<usize> {
    let found = bytes.get(from..)?.iter().position(|&c| c == b)?;
    Some(from + found)
}

/// A parsed MSH segment: its separators and where fields MSH-3 to MSH-12 lie,
/// borrowed from the message.
///
/// [`Msh::parse`] validates MSH-1 and MSH-2 (see [`super::is_hl7`]) and walks
/// the segment once; the accessors only index (and trim).
#[derive(Clone, Copy, Debug)]
pub struct Msh<'a> {
    /// The field separator (MSH-1).
    sep: u8,
    /// The encoding characters (MSH-2); the first one is the component separator.
    enc: &'a [u8],
    /// The segment from its start through the separator that ends MSH-2
    /// (`MSH|^~\&|`): what an ACK's MSH starts with.
    head: &'a [u8],
    /// The message from MSH-3 on.
    rest: &'a [u8],
    /// Where MSH-3 ..= MSH-12 end in `rest`.
    ends: [usize; KEPT],
    /// How many of them the segment has.
    count: usize,
    /// Whether MSH-12 is followed by a separator (more fields).
    more: bool,
    /// No byte of MSH-3 ..= MSH-12 is below 0x20 (see [`Msh::is_plain`]).
    plain: bool,
}

impl<'a> Msh<'a> {
    /// Parses the MSH segment at the start of `msg`, validating MSH-1 and MSH-2
    /// so that a random payload starting with "MSH" is not taken for HL7.
    /// `None` when `msg` does not start with a valid MSH segment.
    pub fn parse(msg: &'a [u8]) -> Option<Self> {
        // Nearly every message starts with the default separators: one
        // comparison of nine bytes instead of validating them one by one.
        let (sep, enc_len) = if msg.starts_with(super::DEFAULT_HEAD) {
            (super::DEFAULT_SEPARATOR, super::DEFAULT_ENCODING.len())
        } else {
            Self::separators(msg)?
        };
        // "MSH", MSH-1, MSH-2 and the separator after it.
        let (head, rest) = msg.split_at_checked(enc_len + 5)?;
        let enc = head.get(4..4 + enc_len)?;
        let Splits {
            ends,
            count,
            more,
            plain,
        } = split_fields(rest, sep);
        Some(Msh {
            sep,
            enc,
            head,
            rest,
            ends,
            count,
            more,
            plain,
        })
    }

    /// Validates MSH-1 and MSH-2 at the start of `msg`: the field separator
    /// and the number of encoding characters.
    fn separators(msg: &[u8]) -> Option<(u8, usize)> {
        let after_msh = msg.strip_prefix(b"MSH")?;
        let (&sep, after_sep) = after_msh.split_first()?;
        if !is_delimiter_char(sep) {
            return None;
        }
        // MSH-2: 1 to 5 distinct punctuation characters ended by `sep`. They are
        // printable, so MSH-2 never runs past a line end.
        let enc_len = after_sep.iter().take(6).position(|&b| b == sep)?;
        let enc = after_sep.get(..enc_len)?;
        if enc.is_empty() {
            return None;
        }
        // Distinct: one bit per ASCII byte seen (delimiters are ASCII).
        let mut seen = 0u128;
        for &c in enc {
            let bit = 1u128.checked_shl(u32::from(c)).unwrap_or(0);
            if !is_delimiter_char(c) || seen & bit != 0 {
                return None;
            }
            seen |= bit;
        }
        Some((sep, enc_len))
    }

    /// MSH-`n` for `3 <= n <= 12` as it lies in the message, untrimmed; empty
    /// when absent.
    fn raw(&self, n: usize) -> &'a [u8] {
        let Some(i) = n.checked_sub(3).filter(|&i| i < self.count) else {
            return &[];
        };
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before).map_or(0, |&e| e + 1),
            None => 0,
        };
        let end = self.ends.get(i).copied().unwrap_or(0);
        self.rest.get(start..end).unwrap_or(&[])
    }

    /// MSH-`first` through MSH-`last` (`3 <= first <= last <= 12`) as they
    /// lie in the message, with the separators between them and, when
    /// `sep_after`, the one after MSH-`last`; when they are all present (and
    /// the field after, for `sep_after`) and none needs trimming: an ACK
    /// copies them in one piece.
    #[inline(always)]
    pub(super) fn span(&self, first: usize, last: usize, sep_after: bool) -> Option<&'a [u8]> {
        let i = first.checked_sub(3)?;
        let j = last.checked_sub(3)?;
        if j + usize::from(sep_after) >= self.count {
            return None;
        }
        let start = match i.checked_sub(1) {
            Some(before) => self.ends.get(before)? + 1,
            None => 0,
        };
        // A field needs trimming when it is not empty and ends in whitespace;
        // the byte before an empty field's end is a separator (or none), and
        // separators are printable.
        for k in i..=j {
            let end = *self.ends.get(k)?;
            let before = end.checked_sub(1).and_then(|at| self.rest.get(at));
            if before.is_some_and(u8::is_ascii_whitespace) {
                return None;
            }
        }
        let end = *self.ends.get(j)? + usize::from(sep_after);
        self.rest.get(start..end)
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
            3..=LAST_KEPT => self.raw(n).trim_ascii_end(),
            _ => self.field_beyond(n),
        }
    }

    /// MSH-`n` for `n > 12`, scanned from what follows MSH-12.
    fn field_beyond(&self, n: usize) -> &'a [u8] {
        if !self.more {
            return &[];
        }
        let after = self.ends.get(KEPT - 1).map_or(0, |&e| e + 1);
        let segment = self.rest.get(after..).unwrap_or(&[]);
        let segment = segment.split(|&b| is_line_end(b)).next().unwrap_or(&[]);
        n.checked_sub(LAST_KEPT + 1)
            .and_then(|i| segment.split(|&b| b == self.sep).nth(i))
            .map_or(&[][..], <[u8]>::trim_ascii_end)
    }

    /// Whether MSH-3 ..= MSH-12 hold no control byte (none below 0x20), so
    /// that an ACK made of them, separators (printable) and CRs holds neither
    /// of MLLP's block bytes (0x0B, 0x1C). False may also mean only that a
    /// byte past MSH-12 was looked at and is one.
    pub(super) fn is_plain(&self) -> bool {
        self.plain
    }

    /// The segment's start through MSH-2's separator (`MSH|^~\&|`).
    pub(super) fn head(&self) -> &'a [u8] {
        self.head
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
        self.component_and_trigger()?.get(1..)
    }

    /// [`Msh::trigger_event`] with the component separator before it, as
    /// they lie in MSH-9 (`^A01`): what an ACK's MSH-9 ends with.
    pub(super) fn component_and_trigger(&self) -> Option<&'a [u8]> {
        let cs = self.component_sep();
        let msh9 = self.field(9);
        // The usual MSH-9 (`ADT^A01^ADT_A01`) has both separators in its
        // first eight bytes: one word instead of two loops over bytes.
        let (first, second) = match msh9.first_chunk::<8>() {
            Some(word) => {
                let marks = zero_bytes(u64::from_le_bytes(*word) ^ splat(cs));
                let at = |m: u64| (m.trailing_zeros() / 8) as usize;
                let rest = marks & marks.wrapping_sub(1);
                match (marks, rest) {
                    (0, _) => (position_from(msh9, cs, 8)?, None),
                    (_, 0) => (at(marks), None),
                    _ => (at(marks), Some(at(rest))),
                }
            }
            None => (msh9.iter().position(|&b| b == cs)?, None),
        };
        let end = match second {
            Some(end) => end,
            None => position_from(msh9, cs, first + 1).unwrap_or(msh9.len()),
        };
        let from_cs = msh9.get(first..end)?;
        from_cs.get(..=non_empty(from_cs.get(1..)?)?.len())
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
            head: super::DEFAULT_HEAD,
            rest: &[],
            ends: [0; KEPT],
            count: 0,
            more: false,
            plain: true,
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
    fn plain_means_no_control_byte_in_the_kept_fields() {
        // Plain must never be claimed for fields holding a control byte (an
        // ACK copying them would go out unscanned), and must be claimed when
        // the segment has none (else every ACK is scanned).
        let mut rng = crate::rng::XorShift64::new(7);
        const ALPHABET: &[u8] = b"|^&AB1 \t\x0b\x1c\x7f\r\n";
        let mut buf = [0u8; 120];
        let (mut plain, mut not_plain) = (0, 0);
        for _ in 0..50_000 {
            let prefix = b"MSH|^~\\&|";
            let len = prefix.len() + rng.below((buf.len() - prefix.len()) as u64) as usize;
            buf[..prefix.len()].copy_from_slice(prefix);
            for b in &mut buf[prefix.len()..len] {
                // Mostly printable, so that long plain segments occur.
                *b = match rng.below(4) {
                    0 => ALPHABET[rng.below(ALPHABET.len() as u64) as usize],
                    _ => ALPHABET[rng.below(7) as usize],
                };
            }
            let msg = &buf[..len];
            let msh = Msh::parse(msg).expect("default head");
            let control = |b: &u8| *b < 0x20;
            let in_fields = (3..=12).any(|n| msh.raw(n).iter().any(control));
            let segment = super::super::segments(msg).next().unwrap_or(&[]);
            let in_segment = segment.iter().any(control);
            if msh.is_plain() {
                plain += 1;
                assert!(!in_fields, "{msg:?}");
            } else {
                not_plain += 1;
                assert!(in_segment, "a plain segment not seen as plain: {msg:?}");
            }
        }
        assert!(plain > 5_000 && not_plain > 5_000, "{plain} / {not_plain}");
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

//! Splitting a text file of HL7 messages into messages.

use super::{is_line_end, segments, Writer, SEGMENT_END};

/// Iterator over the HL7 messages in a text file (e.g. a batch export or a
/// test fixture), yielding each one normalised to CR segment separators.
///
/// A message starts at a line beginning with "MSH"; lines may end with
/// `\r\n`, `\n` or `\r`; blank lines are dropped; text before the first MSH
/// line (and a leading UTF-8 byte order mark) is ignored. A batch file's
/// envelope segments (FHS, BHS, BTS, FTS: see [`BatchEnvelope`]) end a message
/// and are skipped: they never become part of one. Messages are written
/// into a caller buffer by [`Messages::next_into`] rather than returned, since
/// normalising line ends needs somewhere to write and this module does not
/// allocate.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    /// Unread text, starting at an MSH line (or empty).
    rest: &'a [u8],
}

/// The batch envelope's segments: file header, batch header, batch trailer,
/// file trailer (HL7 v2 batch protocol). They wrap messages; they are not part
/// of any message.
pub const ENVELOPE_SEGMENTS: [&[u8; 3]; 4] = [b"FHS", b"BHS", b"BTS", b"FTS"];

/// The envelope segment `line` is (an index into [`ENVELOPE_SEGMENTS`]), if it
/// is one: its name then a field separator or the line's end.
fn envelope_segment(line: &[u8]) -> Option<usize> {
    let after = line.get(3).copied();
    if after.is_some_and(|b| !is_line_end(b) && b.is_ascii_alphanumeric()) {
        return None;
    }
    ENVELOPE_SEGMENTS
        .iter()
        .position(|name| line.starts_with(&name[..]))
}

/// Which envelope segments a text file holds (an HL7 batch file has some of
/// FHS, BHS ... BTS, FTS around its messages).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct BatchEnvelope {
    /// Present, in the order of [`ENVELOPE_SEGMENTS`].
    pub present: [bool; 4],
}

impl BatchEnvelope {
    /// Scans `text` line by line.
    pub fn of(text: &[u8]) -> Self {
        let mut env = BatchEnvelope::default();
        for line in segments(text) {
            if let Some(i) = envelope_segment(line) {
                env.present[i] = true;
            }
        }
        env
    }

    /// True when the text has no envelope segment (not a batch file).
    pub fn is_empty(&self) -> bool {
        !self.present.iter().any(|&p| p)
    }

    /// The names of the present segments among `which` (indexes into
    /// [`ENVELOPE_SEGMENTS`]).
    pub fn names(&self, which: core::ops::Range<usize>) -> impl Iterator<Item = &'static str> + '_ {
        which.filter(|&i| self.present[i]).map(|i| match i {
            0 => "FHS",
            1 => "BHS",
            2 => "BTS",
            _ => "FTS",
        })
    }
}

/// Writes every non-blank line of `text` from its first MSH or envelope line
/// on, CR-terminated, into `out`: a whole batch file as one payload. Returns
/// the length, or `Err(needed_len)` when `out` is too small.
pub fn batch_frame_into(text: &[u8], out: &mut [u8]) -> Result<usize, usize> {
    let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
    let mut w = Writer::new(out);
    let mut started = false;
    for line in segments(text).filter(|l| !l.trim_ascii().is_empty()) {
        started = started || line.starts_with(b"MSH") || envelope_segment(line).is_some();
        if started {
            w.put(line);
            w.put_byte(SEGMENT_END);
        }
    }
    w.finish()
}

/// Index of the first line start in `text` that begins with "MSH" (or, when
/// `at_envelope`, that is an envelope segment), skipping the line at index 0
/// when `skip_first` (to find the *next* message), or `text.len()` when there
/// is none.
fn find_msh_line(text: &[u8], skip_first: bool) -> usize {
    find_line(text, skip_first, false)
}

/// See [`find_msh_line`].
fn find_line(text: &[u8], skip_first: bool, at_envelope: bool) -> usize {
    let mut start = 0;
    let mut first = true;
    loop {
        let line = text.get(start..).unwrap_or(&[]);
        if !(first && skip_first)
            && (line.starts_with(b"MSH") || (at_envelope && envelope_segment(line).is_some()))
        {
            return start;
        }
        first = false;
        match line.iter().position(|&b| is_line_end(b)) {
            // `start + p + 1 <= text.len()`, so this cannot overflow.
            Some(p) => start = start.saturating_add(p).saturating_add(1),
            None => return text.len(),
        }
    }
}

impl<'a> Messages<'a> {
    /// Starts iterating over the messages in `text`.
    pub fn new(text: &'a [u8]) -> Self {
        let text = text.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(text);
        let start = find_msh_line(text, false);
        Messages {
            rest: text.get(start..).unwrap_or(&[]),
        }
    }

    /// Write the next message, normalised to CR separators, into `out`.
    ///
    /// Returns `Ok(Some(len))` for a message, `Ok(None)` at the end, or
    /// `Err(needed_len)` when `out` is too small; in that case the iterator
    /// does not advance (so the caller can retry with a bigger buffer) and
    /// the contents of `out` are unspecified.
    pub fn next_into(&mut self, out: &mut [u8]) -> Result<Option<usize>, usize> {
        if self.rest.is_empty() {
            return Ok(None);
        }
        // A message ends at the next MSH or at an envelope segment (a batch's
        // BTS/FTS are not the last message's segments); what follows an
        // envelope segment up to the next MSH is skipped.
        let end = find_line(self.rest, true, true);
        let (message, rest) = self.rest.split_at(end.min(self.rest.len()));
        let rest = rest.get(find_msh_line(rest, false)..).unwrap_or(&[]);
        let mut w = Writer::new(out);
        for line in segments(message).filter(|l| !l.trim_ascii().is_empty()) {
            w.put(line);
            w.put_byte(SEGMENT_END);
        }
        let len = w.finish()?;
        self.rest = rest;
        Ok(Some(len))
    }
}

//! Splitting a text file of HL7 messages into messages.

use super::{is_line_end, segments, Writer, SEGMENT_END};

/// Iterator over the HL7 messages in a text file (e.g. a batch export or a
/// test fixture), yielding each one normalised to CR segment separators.
///
/// A message starts at a line beginning with "MSH"; lines may end with
/// `\r\n`, `\n` or `\r`; blank lines are dropped; text before the first MSH
/// line (and a leading UTF-8 byte order mark) is ignored. Messages are written
/// into a caller buffer by [`Messages::next_into`] rather than returned, since
/// normalising line ends needs somewhere to write and this module does not
/// allocate.
#[derive(Clone, Debug)]
pub struct Messages<'a> {
    /// Unread text, starting at an MSH line (or empty).
    rest: &'a [u8],
}

/// Index of the first line start in `text` that begins with "MSH", skipping
/// the line at index 0 when `skip_first` (to find the *next* message), or
/// `text.len()` when there is none.
fn find_msh_line(text: &[u8], skip_first: bool) -> usize {
    let mut start = 0;
    let mut first = true;
    loop {
        let line = text.get(start..).unwrap_or(&[]);
        if !(first && skip_first) && line.starts_with(b"MSH") {
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
        let end = find_msh_line(self.rest, true);
        let (message, rest) = self.rest.split_at(end.min(self.rest.len()));
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

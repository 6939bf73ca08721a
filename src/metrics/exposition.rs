//! The Prometheus text exposition format, version 0.0.4, written into a
//! caller's buffer: no allocation, and a clear error when it does not fit.
//!
//! Each family is a `# HELP` line, a `# TYPE` line and its samples
//! (`name{label="value",...} value`), one per line, `\n`-terminated. HELP text
//! escapes `\` and line feeds; label values escape `\`, `"` and line feeds.
//! Names are the program's own (`[a-zA-Z_:][a-zA-Z0-9_:]*`), not escaped.

use core::fmt::{self, Write as _};

/// The `Content-Type` of this format.
pub const CONTENT_TYPE: &str = "text/plain; version=0.0.4; charset=utf-8";

/// The exposition did not fit the buffer; nothing usable was written.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TooSmall {
    /// The buffer's size in bytes.
    pub capacity: usize,
}

impl fmt::Display for TooSmall {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "the metrics exposition does not fit its {}-byte buffer",
            self.capacity
        )
    }
}

impl std::error::Error for TooSmall {}

/// A metric family's type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Only ever goes up (names end in `_total`).
    Counter,
    /// Goes up and down.
    Gauge,
}

impl Kind {
    fn as_str(self) -> &'static str {
        match self {
            Kind::Counter => "counter",
            Kind::Gauge => "gauge",
        }
    }
}

/// A sample's value.
#[derive(Clone, Copy, Debug, PartialEq)]
pub enum Value {
    /// A count.
    Int(u64),
    /// A measure (seconds); written as Prometheus reads floats.
    Float(f64),
}

/// Writes families into a fixed buffer. Once something did not fit, the rest
/// is skipped and [`Writer::finish`] reports [`TooSmall`].
pub struct Writer<'b> {
    buf: &'b mut [u8],
    len: usize,
    overflow: bool,
}

impl<'b> Writer<'b> {
    /// A writer filling `buf` from its start.
    pub fn new(buf: &'b mut [u8]) -> Self {
        Writer {
            buf,
            len: 0,
            overflow: false,
        }
    }

    /// Starts a family: its `# HELP` and `# TYPE` lines.
    pub fn family(&mut self, name: &str, kind: Kind, help: &str) {
        self.raw("# HELP ");
        self.raw(name);
        self.raw(" ");
        self.escaped(help, false);
        self.raw("\n# TYPE ");
        self.raw(name);
        self.raw(" ");
        self.raw(kind.as_str());
        self.raw("\n");
    }

    /// One sample of the current family.
    pub fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: Value) {
        self.raw(name);
        if !labels.is_empty() {
            self.raw("{");
            for (i, (k, v)) in labels.iter().enumerate() {
                if i > 0 {
                    self.raw(",");
                }
                self.raw(k);
                self.raw("=\"");
                self.escaped(v, true);
                self.raw("\"");
            }
            self.raw("}");
        }
        self.raw(" ");
        // Formatting into the slice cannot fail but for room, which `raw` notes.
        let _ = match value {
            Value::Int(n) => write!(self, "{n}"),
            Value::Float(x) if x.is_nan() => write!(self, "NaN"),
            Value::Float(x) if x.is_infinite() => {
                write!(self, "{}", if x > 0.0 { "+Inf" } else { "-Inf" })
            }
            Value::Float(x) => write!(self, "{x}"),
        };
        self.raw("\n");
    }

    /// A family of one unlabelled sample.
    pub fn single(&mut self, name: &str, kind: Kind, help: &str, value: Value) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }

    /// Bytes written, or [`TooSmall`] when something did not fit.
    pub fn finish(self) -> Result<usize, TooSmall> {
        if self.overflow {
            return Err(TooSmall {
                capacity: self.buf.len(),
            });
        }
        Ok(self.len)
    }

    fn raw(&mut self, s: &str) {
        self.bytes(s.as_bytes());
    }

    fn bytes(&mut self, b: &[u8]) {
        if self.overflow {
            return;
        }
        match self.buf.get_mut(self.len..self.len.saturating_add(b.len())) {
            Some(dst) => {
                dst.copy_from_slice(b);
                self.len += b.len();
            }
            None => self.overflow = true,
        }
    }

    /// `s` with `\` and line feeds escaped, and `"` too in a label value.
    fn escaped(&mut self, s: &str, quote: bool) {
        let mut from = 0;
        for (i, c) in s.bytes().enumerate() {
            let esc: &[u8] = match c {
                b'\\' => b"\\\\",
                b'\n' => b"\\n",
                b'"' if quote => b"\\\"",
                _ => continue,
            };
            self.bytes(&s.as_bytes()[from..i]);
            self.bytes(esc);
            from = i + 1;
        }
        self.bytes(&s.as_bytes()[from..]);
    }
}

impl fmt::Write for Writer<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        self.raw(s);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn text(buf: &[u8], n: usize) -> &str {
        std::str::from_utf8(&buf[..n]).expect("the exposition is UTF-8")
    }

    #[test]
    fn a_family_is_help_type_and_samples() {
        let mut buf = [0u8; 512];
        let mut w = Writer::new(&mut buf);
        w.family("mooring_x_total", Kind::Counter, "Things.");
        w.sample(
            "mooring_x_total",
            &[("reason", "IdleTimeout")],
            Value::Int(3),
        );
        w.sample(
            "mooring_x_total",
            &[("reason", "Reset"), ("b", "c")],
            Value::Int(0),
        );
        w.single(
            "mooring_age_seconds",
            Kind::Gauge,
            "Age.",
            Value::Float(1.5),
        );
        let n = w.finish().expect("fits");
        assert_eq!(
            text(&buf, n),
            "# HELP mooring_x_total Things.\n# TYPE mooring_x_total counter\n\
             mooring_x_total{reason=\"IdleTimeout\"} 3\n\
             mooring_x_total{reason=\"Reset\",b=\"c\"} 0\n\
             # HELP mooring_age_seconds Age.\n# TYPE mooring_age_seconds gauge\n\
             mooring_age_seconds 1.5\n"
        );
    }

    #[test]
    fn help_and_label_values_are_escaped() {
        let mut buf = [0u8; 256];
        let mut w = Writer::new(&mut buf);
        w.family("m", Kind::Gauge, "a\\b\nc \"q\"");
        w.sample("m", &[("v", "x\\y\"z\nw")], Value::Int(1));
        let n = w.finish().expect("fits");
        assert_eq!(
            text(&buf, n),
            "# HELP m a\\\\b\\nc \"q\"\n# TYPE m gauge\nm{v=\"x\\\\y\\\"z\\nw\"} 1\n"
        );
    }

    #[test]
    fn floats_are_written_as_prometheus_reads_them() {
        let mut buf = [0u8; 128];
        let mut w = Writer::new(&mut buf);
        for x in [0.0, 3.05, f64::INFINITY, f64::NEG_INFINITY, f64::NAN] {
            w.sample("m", &[], Value::Float(x));
        }
        let n = w.finish().expect("fits");
        assert_eq!(text(&buf, n), "m 0\nm 3.05\nm +Inf\nm -Inf\nm NaN\n");
    }

    #[test]
    fn too_small_a_buffer_is_an_error_at_every_size() {
        let mut full = [0u8; 256];
        let mut w = Writer::new(&mut full);
        w.single("mooring_a_total", Kind::Counter, "A \"b\".", Value::Int(42));
        let need = w.finish().expect("fits");
        for cap in 0..need {
            let mut buf = vec![0u8; cap];
            let mut w = Writer::new(&mut buf);
            w.single("mooring_a_total", Kind::Counter, "A \"b\".", Value::Int(42));
            assert_eq!(w.finish(), Err(TooSmall { capacity: cap }));
        }
        let mut buf = vec![0u8; need];
        let mut w = Writer::new(&mut buf);
        w.single("mooring_a_total", Kind::Counter, "A \"b\".", Value::Int(42));
        assert_eq!(w.finish(), Ok(need));
    }
}

//! Event lines: space-separated `key=value` pairs, one line per event, flushed at
//! once, so that operators' scripts can split them with `tr ' ' '\n'` and `cut -d=`.
//!
//! Values the program makes up (names, numbers, addresses) never contain a space
//! or '='. Values that come off the wire (HL7 control ids) might, so they go
//! through [`escape`] first.

use std::fmt::{Display, Write as _};
use std::io::Write as _;
use std::time::Duration;

use mooring::session::SessionEnd;
use mooring::{LivenessConfig, Protocol, SessionNote};

/// One line under construction.
pub struct Line(String);

impl Line {
    /// A line starting with `first=value` (usually `event=...` or `scenario=...`).
    pub fn new(first: &str, value: impl Display) -> Line {
        Line::empty().kv(first, value)
    }

    /// An empty line, for callers that append every key themselves.
    pub fn empty() -> Line {
        Line(String::with_capacity(96))
    }

    /// Appends `key=value`.
    pub fn kv(mut self, key: &str, value: impl Display) -> Line {
        if !self.0.is_empty() {
            self.0.push(' ');
        }
        // Writing into a String cannot fail.
        let _ = write!(self.0, "{key}={value}");
        self
    }

    /// Appends `key=value` when there is a value; nothing when `None`.
    pub fn kv_opt(self, key: &str, value: Option<impl Display>) -> Line {
        match value {
            Some(v) => self.kv(key, v),
            None => self,
        }
    }

    /// Appends `key=value` for bytes from the wire, escaped; nothing when `None`.
    pub fn wire(self, key: &str, value: Option<&[u8]>) -> Line {
        match value {
            Some(v) => {
                let v = escape(v);
                self.kv(key, v)
            }
            None => self,
        }
    }

    /// The text so far.
    #[cfg(test)]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Writes the line to stdout and flushes it. A closed stdout is ignored: a
    /// listener keeps serving even when nobody reads its report.
    pub fn print(mut self) {
        self.0.push('\n');
        let mut out = std::io::stdout().lock();
        let _ = out.write_all(self.0.as_bytes());
        let _ = out.flush();
    }
}

/// A duration as integer milliseconds with its unit: `3050ms`.
pub fn ms(d: Duration) -> String {
    format!("{}ms", d.as_millis())
}

/// `ms(d)`, or `off` when the setting is off.
fn ms_or_off(d: Option<Duration>) -> String {
    d.map_or_else(|| "off".to_string(), ms)
}

/// The `event=liveness` line `listen` and `send` print at start: the settings
/// and the detection bound, so an operator can check it against the idle limit
/// of the middleboxes on the path.
///
/// `event=liveness protocol=mooring heartbeat=1000ms heartbeat_timeout=3000ms
/// keepalive=off tcp_keepalive=45000ms,10000ms,3 tcp_user_timeout=off
/// detection_bound=3050ms`; `heartbeat_timeout` follows `heartbeat` only when it
/// is on, `keepalive_timeout` (a duration or `off`) follows `keepalive` likewise,
/// and `detection_bound=none` when no mechanism bounds the detection.
pub fn liveness(cfg: &LivenessConfig) -> Line {
    let mut l = Line::new("event", "liveness").kv(
        "protocol",
        match cfg.protocol {
            Protocol::Raw => "raw",
            Protocol::Mooring => "mooring",
        },
    );
    l = match cfg.heartbeat {
        Some(h) => l
            .kv("heartbeat", ms(h.interval))
            .kv("heartbeat_timeout", ms(h.timeout)),
        None => l.kv("heartbeat", "off"),
    };
    l = match &cfg.keepalive {
        Some(k) => l
            .kv("keepalive", ms(k.every))
            .kv("keepalive_timeout", ms_or_off(k.timeout)),
        None => l.kv("keepalive", "off"),
    };
    l = match cfg.tcp_keepalive {
        Some(k) => l.kv(
            "tcp_keepalive",
            format_args!("{},{},{}", ms(k.idle), ms(k.interval), k.count),
        ),
        None => l.kv("tcp_keepalive", "off"),
    };
    l.kv("tcp_user_timeout", ms_or_off(cfg.tcp_user_timeout))
        .kv(
            "detection_bound",
            cfg.detection_bound().map_or_else(|| "none".to_string(), ms),
        )
}

/// Appends the keys of a session note (after `event=session session=N`):
/// `note=established resumed=true replaying=3`, `note=reconnecting attempt=2
/// delay_ms=180`, `note=ended how=Expired undelivered=4`.
pub fn session_note(line: Line, note: &SessionNote) -> Line {
    match *note {
        SessionNote::Established { resumed, replaying } => line
            .kv("note", "established")
            .kv("resumed", resumed)
            .kv("replaying", replaying),
        SessionNote::Reconnecting { attempt, delay } => line
            .kv("note", "reconnecting")
            .kv("attempt", attempt)
            .kv("delay_ms", delay.as_millis()),
        SessionNote::Ended(how) => {
            let (name, undelivered) = end_parts(how);
            line.kv("note", "ended")
                .kv("how", name)
                .kv("undelivered", undelivered)
        }
    }
}

/// The name of a session end (`Lost`, `Expired`, `QueueFull`, `Closed`) and its
/// count of messages not confirmed delivered (0 for `Closed`).
pub fn end_parts(how: SessionEnd) -> (&'static str, u64) {
    match how {
        SessionEnd::Lost { undelivered } => ("Lost", undelivered),
        SessionEnd::Expired { undelivered } => ("Expired", undelivered),
        SessionEnd::QueueFull { undelivered } => ("QueueFull", undelivered),
        SessionEnd::Evicted { undelivered } => ("Evicted", undelivered),
        SessionEnd::Closed => ("Closed", 0),
    }
}

/// The `event=tls` line after a handshake (its first keys already in `line`):
/// `event=tls peer=127.0.0.1:40112 version=TLSv1_3
/// suite=TLS13_AES_256_GCM_SHA384 peer_identity=device-1.example`; the
/// identity is the certificate's first name (DNS, URI, IP SAN, else the
/// subject CN), escaped as it comes off the wire, `-` when the peer sent no
/// certificate.
#[cfg(feature = "tls")]
pub fn tls(line: Line, peer: std::net::SocketAddr, h: &mooring::tls::Handshake) -> Line {
    let line = line
        .kv("event", "tls")
        .kv("peer", peer)
        .kv("version", h.version_name())
        .kv("suite", &h.suite);
    match &h.peer {
        Some(id) => line.wire("peer_identity", Some(id.to_string().as_bytes())),
        None => line.kv("peer_identity", "-"),
    }
}

/// Makes wire bytes safe for a `key=value` line: printable ASCII other than '='
/// is kept, every other byte (space, '=', control characters, non-ASCII) becomes
/// '_'. An id is thus never split, and never forged into extra keys.
pub fn escape(bytes: &[u8]) -> String {
    mooring::relay::Escaped(bytes).to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wire_values_cannot_break_the_line() {
        assert_eq!(escape(b"MSG00001"), "MSG00001");
        assert_eq!(escape(b"a b=c\r\xc3\xa9"), "a_b_c___");
        let l = Line::new("event", "message")
            .kv("bytes", 3)
            .wire("id", Some(b"x y"))
            .wire("ack", None);
        assert_eq!(l.as_str(), "event=message bytes=3 id=x_y");
    }

    #[test]
    fn no_byte_value_escapes_its_field() {
        // Every byte, including LF, CR, ESC and DEL: one value, printable, no '='.
        let all: Vec<u8> = (0..=255u8).collect();
        let e = escape(&all);
        assert_eq!(e.len(), 256);
        assert!(e.bytes().all(|b| b.is_ascii_graphic() && b != b'='), "{e}");
        let l = Line::new("event", "message").wire("id", Some(b"A\nevent=forged x"));
        assert_eq!(l.as_str(), "event=message id=A_event_forged_x");
    }

    #[test]
    fn session_notes_have_stable_keys() {
        let l = |n| session_note(Line::new("event", "session").kv("session", 1), &n);
        assert_eq!(
            l(SessionNote::Established {
                resumed: true,
                replaying: 3
            })
            .as_str(),
            "event=session session=1 note=established resumed=true replaying=3"
        );
        assert_eq!(
            l(SessionNote::Reconnecting {
                attempt: 2,
                delay: Duration::from_millis(180)
            })
            .as_str(),
            "event=session session=1 note=reconnecting attempt=2 delay_ms=180"
        );
        assert_eq!(
            l(SessionNote::Ended(SessionEnd::Expired { undelivered: 4 })).as_str(),
            "event=session session=1 note=ended how=Expired undelivered=4"
        );
    }

    #[test]
    fn liveness_line_shows_settings_and_bound_in_ms() {
        use mooring::{Heartbeat, TcpKeepalive};
        let mut cfg = LivenessConfig::default();
        assert_eq!(
            liveness(&cfg).as_str(),
            "event=liveness protocol=raw heartbeat=off keepalive=off tcp_keepalive=off \
             tcp_user_timeout=off detection_bound=none"
        );
        cfg.protocol = Protocol::Mooring;
        cfg.heartbeat = Some(Heartbeat {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
        });
        cfg.tcp_keepalive = Some(TcpKeepalive::default());
        assert_eq!(
            liveness(&cfg).as_str(),
            "event=liveness protocol=mooring heartbeat=1000ms heartbeat_timeout=3000ms \
             keepalive=off tcp_keepalive=45000ms,10000ms,3 tcp_user_timeout=off \
             detection_bound=3050ms"
        );
    }
}

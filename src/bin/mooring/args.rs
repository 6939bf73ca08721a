//! Command-line parsing: subcommands, flags and their values (durations, sizes,
//! addresses).
//!
//! Hand-written rather than a parser crate: the CLI has a dozen flags, and the
//! binary is meant to be small and static on edge boxes. Every mistake becomes a
//! [`UsageError`] that names the flag, so that `main` can print it on one line and
//! exit with status 2 (scripts tell usage errors from run-time failures by that).

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::time::Duration;

use mooring::error::ConfigError;
use mooring::liveness::MAX_KEEPALIVE;
use mooring::session::{Backoff, SessionConfig};
use mooring::{
    hl7, AllowList, Cidr, FrameTimeout, Framing, Heartbeat, KeepAliveMessage, LivenessConfig,
    Protocol, TcpKeepalive,
};

/// The top-level usage, printed by `mooring --help`.
pub const USAGE: &str = "\
mooring: keeps TCP message links (HL7 MLLP, len32) healthy

Usage:
  mooring listen [--bind ADDR] [flags]     serve, print one line per event
  mooring send ADDR [FILE|-] [flags]       send HL7 messages, print one line per reply
  mooring relay --listen ADDR --upstream ADDR [flags]
                                           forward devices' messages upstream, in order
  mooring demo                             run the built-in scenarios on loopback

Global flags (anywhere on the line):
  -v, -vv    log debug / trace to stderr      -q   log errors only (default: warnings)
  -h, --help this text (or `mooring listen --help`, `mooring send --help`)

Output: one line per event on stdout, space-separated key=value pairs.
Exit status: 0 success, 1 run-time failure, 2 bad command line or configuration.
";

/// The liveness flags' help, shared by `listen`, `send` (and `relay` by reference).
macro_rules! liveness_help {
    () => {
        "Liveness (notice a dead peer within a bound; see the README):
  --protocol raw|mooring  raw: payloads as they are, any HL7 peer (default);
                          mooring: the mooring session protocol, both ends
  --heartbeat DUR         mooring: PING after DUR without sending (default off)
  --heartbeat-timeout DUR mooring: dead after DUR without a byte (default 3 x
                          --heartbeat)
  --keepalive-message FILE
                          raw peers: send FILE's first HL7 message (or its bytes
                          as they are, if it holds none; at most 1024) on a link
                          that received nothing for --keepalive-every
  --keepalive-every DUR   with --keepalive-message (required with it)
  --keepalive-timeout DUR some frame must come back within DUR (default: none
                          expected)
  --tcp-keepalive IDLE,INTVL,COUNT
                          OS keepalive, e.g. 45s,10s,3 (default off)
  --tcp-user-timeout DUR  TCP_USER_TIMEOUT: the OS closes a link whose written
                          data stays unacknowledged for DUR (default off)
  --handshake-timeout DUR mooring: the handshake must complete within DUR
                          (default 10s)
  --frame-timeout DUR     slow peers: a frame must be complete DUR after its
                          first byte, plus 1 s per --frame-min-rate bytes of it
                          received, at most 10m in all; else the link closes
                          with FrameTimeout (default 30s; 0 or off: no limit)
  --frame-min-rate N      bytes per second that buy a frame more time
                          (default 500; 0: a fixed --frame-timeout)
"
    };
}

/// Usage of `mooring listen`.
pub const LISTEN_USAGE: &str = concat!(
    "\
Usage: mooring listen [flags]

  --bind ADDR             address to listen on (default 127.0.0.1:2575; port 0 picks one)
  --framing mllp|len32    framing (default mllp)
  --max-conns N           connections served at once; more are rejected (default 10)
  --max-conns-per-ip N    links one peer address may hold at once; more are
                          rejected (TooManyConnectionsFromPeer); 0 or off: no
                          limit (default off)
  --idle-timeout DUR      close a link that received nothing for DUR (default off)
  --stale-recovery DUR    with --max-conns 1: a newcomer replaces a link idle for DUR
  --close-after-reply     close each link once its first message is answered
  --allow IP_OR_CIDR      accept only these peers (repeatable; default everyone)
  --reply hl7-ack|echo|none
                          hl7-ack: HL7 ACK (AA; AR for a payload that is not HL7);
                          echo: the payload back; none: no reply (default hl7-ack)
  --max-frame BYTES       largest frame accepted (default 1048576)
  --write-timeout DUR     close a link whose queued replies make no progress for
                          DUR: a peer that sends but never reads (WriteTimeout;
                          default 10s). Until then its link is read no further.
  --mllp-commit-ack       MLLP release 2: answer every frame with a commit ACK
  --quiet                 no event=message lines (other events still print)

",
    liveness_help!(),
    "
Reliable sessions (mooring clients that resume after a lost link, nothing
lost, nothing repeated; see the README):
  --session               serve sessions (needs --protocol mooring); replies go
                          through the client's session
  --resume-window DUR     keep a disconnected session this long for its client
                          to resume it (default 60s); then it ends as Expired
  --queue N               unacknowledged messages kept per session while
                          connected (default 1000); 10 x N while disconnected
                          (replies: 10 x N, connected or not)
  --queue-bytes BYTES     ... and at most BYTES of them (default 8388608, one
                          ring per session allocated at its first use: memory
                          is at most 2 x --max-conns x BYTES)
  --max-sessions-per-ip N sessions one address may hold (connected or waiting
                          for a resume; default: no limit); at the limit its
                          new session replaces its own session disconnected
                          longest, or is closed TooManySessionsFromPeer
  A full session table (2 x --max-conns) gives a new session the slot of the
  session disconnected longest; that one ends how=Evicted.

DUR is a number with a unit: 500ms, 10s, 5m, 1h.

Lines (stdout, flushed at once):
  event=listening addr=127.0.0.1:2575
  event=liveness protocol=raw heartbeat=off keepalive=off tcp_keepalive=off
                 tcp_user_timeout=off detection_bound=none   (one line; see below)
  event=connected peer=IP:PORT
  event=message peer=IP:PORT bytes=N [id=MSH-10]
  event=commit_ack peer=IP:PORT accepted=true|false
  event=closed peer=IP:PORT reason=IdleTimeout|HeartbeatTimeout|HandshakeTimeout|...
                 [peer_reason=R]   (mooring: the reason the peer's CLOSE claimed;
                                    reason is then PeerClosed)
  event=rejected peer=IP:PORT reason=TooManyConnections|NotAllowed|TooManyConnectionsFromPeer
With --session (session=N numbers the sessions of this process, from 1):
  event=session session=N note=established resumed=true|false replaying=K
  event=session_message session=N bytes=N [id=MSH-10]   (in order, exactly once)
  event=session session=N note=ended how=Lost|Expired|QueueFull|Closed|Evicted undelivered=K
replaying: replies sent again on a resumed link (the client lacked them);
undelivered: replies whose delivery is not confirmed (Expired: the client
did not resume within --resume-window; Lost: a side could not replay what
the other missed). --quiet drops event=session_message lines too.
id is printed only for HL7 payloads; bytes outside printable ASCII, spaces and
'=' in it are replaced with '_' so that every line splits on spaces and '='.
The event=liveness line (printed at start) shows the settings as integer ms
and detection_bound: the worst-case time to notice a silently dead peer with
the mechanisms that are on (heartbeat, keep-alive message with a timeout, OS
keepalive), or none when nothing bounds it. TCP_USER_TIMEOUT only bounds links
with unacknowledged data: it counts together with a keep-alive message (which
is such data), as every + user timeout + 1 s of retransmit slack.
Runs until killed.
"
);

/// Usage of `mooring send`.
pub const SEND_USAGE: &str = concat!(
    "\
Usage: mooring send ADDR [FILE|-] [flags]

Reads FILE (stdin when - or absent), splits it into HL7 messages (each starts at
a line beginning with MSH; line ends become CR) and sends them one by one,
waiting for each reply.

  --framing mllp|len32    framing (default mllp)
  --close-each            one connection per message (default: keep one open)
  --response-timeout DUR  wait this long for each reply (default 10s)
  --connect-timeout DUR   wait this long to connect (default 5s)
  --retries N             resend a failed message up to N times (default 0),
                          after a pause of 200 ms per attempt (at most 2 s)
  --no-correlate          take any reply, even one whose MSA-2 is another id
  --hold DUR              after the last message keep the link open and idle for
                          DUR (heartbeats and keep-alive messages go on); a close
                          meanwhile prints event=closed and ends the hold
  --pace DUR              wait DUR between messages (default: none)
  --write-timeout DUR     close the link when queued bytes make no progress for
                          DUR (WriteTimeout; default 10s)

",
    liveness_help!(),
    "
Reliable session (one session for the whole file; a lost link is resumed
with nothing lost or repeated; the listener needs --session too):
  --session               send through a session (needs --protocol mooring):
                          messages go out without waiting for replies (up to
                          --queue unacknowledged), replies come back in order;
                          --response-timeout bounds the wait for the next reply
                          (the session keeps everything across reconnects);
                          --retries and --close-each do not apply
  --resume-window DUR     how long this side keeps the session (default 60s)
  --queue N               unacknowledged messages kept while connected
                          (default 1000; 10 x N while disconnected); a full
                          queue holds the next message back until acknowledged
  --queue-bytes BYTES     ... and at most BYTES of them (default 8388608)
  --reconnect-min DUR     first reconnect waits up to DUR, doubling each attempt
  --reconnect-max DUR     ... up to DUR (defaults 1s and 30s; full jitter,
                          unlimited attempts)

Lines (stdout):
  event=liveness protocol=raw heartbeat=off keepalive=off tcp_keepalive=off
                 tcp_user_timeout=off detection_bound=none   (one line, first)
  event=reply n=1 [id=MSG00001] [ack=AA] bytes=95 ms=3
  event=retry n=2 attempt=1 error=ResponseTimeout
  event=error n=2 [id=MSG00002] error=ResponseTimeout
  event=error n=2 [id=MSG00002] error=IncompleteResponse reason=TcpTimeout
  event=closed reason=HeartbeatTimeout        (the link closed during --hold)
  event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0
With --session (session=1: the one session of this run):
  event=session session=1 note=established resumed=true|false replaying=K
  event=closed reason=HeartbeatTimeout [peer_reason=R]   (the session's link
                                              was lost; R: the peer's claim)
  event=session session=1 note=reconnecting attempt=N delay_ms=D
  event=session session=1 note=ended how=Lost|Expired|QueueFull|Closed undelivered=K
  event=error n=7 [id=MSG00007] error=SessionExpired|SessionLost|QueueFull|
                 SessionClosed|ResponseTimeout|TooLarge   (messages not replied)
replaying: our messages sent again on a resumed link; undelivered: ours not
confirmed delivered when the session ended (Expired: the listener no longer
had it when we came back). The run ends with note=ended how=Closed. A reply
whose MSA-2 is not the message's id is an error (unless --no-correlate).
reason= (on error lines) is how the link closed, when it closed.
The event=liveness line (printed at start) shows the settings as integer ms
and detection_bound: the worst-case time to notice a silently dead peer with
the mechanisms that are on (heartbeat, keep-alive message with a timeout, OS
keepalive), or none when nothing bounds it. TCP_USER_TIMEOUT only bounds links
with unacknowledged data: it counts together with a keep-alive message (which
is such data), as every + user timeout + 1 s of retransmit slack.
Exit status 0 only if every message got a reply (and there was at least one);
a close during --hold is reported but does not change it (nor does a session
that ends during --hold after every reply came).
"
);

/// A command line that cannot be run: printed as `error: <message>`, status 2.
#[derive(Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Shorthand for returning a [`UsageError`].
pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// How much the binary logs to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// The default: warnings and errors.
    Normal,
    /// `-v`: debug.
    Debug,
    /// `-vv`: trace.
    Trace,
}

/// What `listen` answers to each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// An HL7 ACK: `AA` for HL7, `AR` for a payload that is not HL7.
    Hl7Ack,
    /// The payload itself.
    Echo,
    /// Nothing.
    None,
}

/// Options of `mooring listen`.
#[derive(Clone, Debug)]
pub struct ListenOpts {
    /// `--bind`.
    pub bind: SocketAddr,
    /// `--framing`.
    pub framing: Framing,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--max-conns-per-ip` (`None`: off).
    pub max_conns_per_ip: Option<usize>,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--stale-recovery`.
    pub stale_recovery: Option<Duration>,
    /// `--close-after-reply`.
    pub close_after_reply: bool,
    /// `--allow`, every occurrence.
    pub allow: AllowList,
    /// `--reply`.
    pub reply: ReplyMode,
    /// `--max-frame`.
    pub max_frame: usize,
    /// `--mllp-commit-ack`.
    pub mllp_commit_ack: bool,
    /// `--write-timeout`.
    pub write_timeout: Duration,
    /// `--quiet`.
    pub quiet: bool,
    /// `--protocol`, `--heartbeat`, `--keepalive-*`, `--tcp-*`, `--handshake-timeout`.
    pub liveness: LivenessConfig,
    /// `--session`, `--resume-window`, `--queue`: serve reliable sessions.
    pub session: Option<SessionConfig>,
    /// `--max-sessions-per-ip`.
    pub max_sessions_per_ip: Option<usize>,
}

impl Default for ListenOpts {
    fn default() -> Self {
        ListenOpts {
            bind: SocketAddr::from(([127, 0, 0, 1], 2575)),
            framing: Framing::Mllp,
            max_conns: 10,
            max_conns_per_ip: None,
            idle_timeout: None,
            stale_recovery: None,
            close_after_reply: false,
            allow: AllowList::default(),
            reply: ReplyMode::Hl7Ack,
            max_frame: mooring::config::DEFAULT_MAX_FRAME,
            mllp_commit_ack: false,
            write_timeout: mooring::config::DEFAULT_WRITE_TIMEOUT,
            quiet: false,
            liveness: LivenessConfig::default(),
            session: None,
            max_sessions_per_ip: None,
        }
    }
}

/// Where `send` reads its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-` or no FILE).
    Stdin,
    /// A file.
    File(PathBuf),
}

/// Options of `mooring send`.
#[derive(Clone, Debug)]
pub struct SendOpts {
    /// ADDR.
    pub addr: SocketAddr,
    /// FILE or `-`.
    pub input: Input,
    /// `--framing`.
    pub framing: Framing,
    /// `--close-each`.
    pub close_each: bool,
    /// `--response-timeout`.
    pub response_timeout: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--retries`.
    pub retries: u32,
    /// Not `--no-correlate`.
    pub correlate: bool,
    /// `--hold`.
    pub hold: Option<Duration>,
    /// `--pace`.
    pub pace: Option<Duration>,
    /// `--write-timeout`.
    pub write_timeout: Duration,
    /// `--protocol`, `--heartbeat`, `--keepalive-*`, `--tcp-*`, `--handshake-timeout`.
    pub liveness: LivenessConfig,
    /// `--session`, `--resume-window`, `--queue`: send through a reliable session.
    pub session: Option<SessionConfig>,
    /// `--reconnect-min`, `--reconnect-max`.
    pub backoff: Backoff,
}

/// A subcommand with its options.
#[derive(Debug)]
pub enum Command {
    /// Print this text to stdout and exit 0.
    Help(&'static str),
    /// `mooring listen`.
    Listen(Box<ListenOpts>),
    /// `mooring send`.
    Send(Box<SendOpts>),
    /// `mooring demo`.
    Demo,
}

/// The parsed command line.
#[derive(Debug)]
pub struct Cli {
    /// From `-v`, `-vv`, `-q`.
    pub verbosity: Verbosity,
    /// What to run.
    pub command: Command,
}

/// Parses a duration: digits then `ms`, `s`, `m` or `h`. A unit is required because a
/// bare `30` is seconds to one operator and milliseconds to the next.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis)
}

/// Resolves `host:port` (an IP literal, or a name such as `localhost:2575`) to its
/// first address.
pub(crate) fn parse_addr(flag: &str, s: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    match s.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(a)) => Ok(a),
        _ => err(format!(
            "{flag}: bad address \"{s}\" (use HOST:PORT, e.g. 127.0.0.1:2575)"
        )),
    }
}

/// `--framing`: `mllp` or `len32`.
pub(crate) fn parse_framing(s: &str) -> Result<Framing, UsageError> {
    match s {
        "mllp" => Ok(Framing::Mllp),
        "len32" => Ok(Framing::Len32),
        _ => err(format!("--framing: bad value \"{s}\" (use mllp or len32)")),
    }
}

/// A count or size for `flag`: a plain decimal number.
fn parse_count<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, UsageError> {
    s.parse()
        .or_else(|_| err(format!("{flag}: bad number \"{s}\"")))
}

/// A limit for `flag`: a count, or `0`/`off` for none (`None`).
pub(crate) fn parse_limit(flag: &str, s: &str) -> Result<Option<usize>, UsageError> {
    if s == "off" {
        return Ok(None);
    }
    Ok(Some(parse_count::<usize>(flag, s)?).filter(|&n| n > 0))
}

/// A duration for `flag`, with the error line operators see for a bad one.
pub(crate) fn parse_dur(flag: &str, s: &str) -> Result<Duration, UsageError> {
    parse_duration(s).map_or_else(
        || err(format!("{flag}: bad duration \"{s}\" (use 500ms, 10s, 5m)")),
        Ok,
    )
}

/// The session flags `listen` and `send` share, as given; [`SessionFlags::finish`]
/// checks them together.
#[derive(Debug, Default)]
struct SessionFlags {
    /// `--session`.
    on: bool,
    /// `--resume-window`.
    resume_window: Option<Duration>,
    /// `--queue`.
    queue: Option<usize>,
    /// `--queue-bytes`.
    queue_bytes: Option<usize>,
    /// `--reconnect-min` (send only).
    reconnect_min: Option<Duration>,
    /// `--reconnect-max` (send only).
    reconnect_max: Option<Duration>,
}

impl SessionFlags {
    /// Takes `flag` (and its value) if it is a session flag (`--reconnect-*`
    /// only when `client`); false otherwise.
    fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut Words<I>,
        client: bool,
    ) -> Result<bool, UsageError> {
        match flag {
            "--session" => {
                if inline.is_some() {
                    return err("--session: takes no value");
                }
                self.on = true;
            }
            "--resume-window" => {
                let d = parse_dur(flag, &words.value(flag, inline)?)?;
                if d.is_zero() {
                    return err("--resume-window: must be more than 0");
                }
                self.resume_window = Some(d);
            }
            "--queue" => {
                let n: usize = parse_count(flag, &words.value(flag, inline)?)?;
                if n == 0 {
                    return err("--queue: must be at least 1");
                }
                self.queue = Some(n);
            }
            "--queue-bytes" => {
                let n: usize = parse_count(flag, &words.value(flag, inline)?)?;
                if n == 0 {
                    return err("--queue-bytes: must be at least 1");
                }
                self.queue_bytes = Some(n);
            }
            "--reconnect-min" | "--reconnect-max" if client => {
                let d = parse_dur(flag, &words.value(flag, inline)?)?;
                if d.is_zero() {
                    return err(format!("{flag}: must be more than 0"));
                }
                if flag == "--reconnect-min" {
                    self.reconnect_min = Some(d);
                } else {
                    self.reconnect_max = Some(d);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the flags against each other and the protocol; the session
    /// settings (`None` without `--session`) and the reconnection strategy.
    fn finish(self, protocol: Protocol) -> Result<(Option<SessionConfig>, Backoff), UsageError> {
        if !self.on {
            let given = [
                ("--resume-window", self.resume_window.is_some()),
                ("--queue", self.queue.is_some()),
                ("--queue-bytes", self.queue_bytes.is_some()),
                ("--reconnect-min", self.reconnect_min.is_some()),
                ("--reconnect-max", self.reconnect_max.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return err(format!("{flag}: needs --session"));
            }
            return Ok((None, Backoff::default()));
        }
        if protocol != Protocol::Mooring {
            return err("--session: needs --protocol mooring (on both ends)");
        }
        let backoff = backoff_from(self.reconnect_min, self.reconnect_max)?;
        let defaults = SessionConfig::default();
        let depth = self.queue.unwrap_or(defaults.max_depth);
        Ok((
            Some(SessionConfig {
                max_depth: depth,
                max_depth_disconnected: depth.saturating_mul(10),
                max_bytes: self.queue_bytes.unwrap_or(defaults.max_bytes),
                reconnect_timeout: self.resume_window.unwrap_or(defaults.reconnect_timeout),
                ..defaults
            }),
            backoff,
        ))
    }
}

/// The liveness flags `listen` and `send` share, as given; [`LivenessFlags::finish`]
/// checks them together and builds the library's [`LivenessConfig`].
#[derive(Debug, Default)]
struct LivenessFlags {
    /// `--protocol`.
    protocol: Protocol,
    /// `--heartbeat`.
    heartbeat: Option<Duration>,
    /// `--heartbeat-timeout`.
    heartbeat_timeout: Option<Duration>,
    /// `--keepalive-message`.
    keepalive_message: Option<PathBuf>,
    /// `--keepalive-every`.
    keepalive_every: Option<Duration>,
    /// `--keepalive-timeout`.
    keepalive_timeout: Option<Duration>,
    /// `--tcp-keepalive`.
    tcp_keepalive: Option<TcpKeepalive>,
    /// `--tcp-user-timeout`.
    tcp_user_timeout: Option<Duration>,
    /// `--handshake-timeout`.
    handshake_timeout: Option<Duration>,
    /// `--frame-timeout` (`Some(None)`: `0` or `off`).
    frame_timeout: Option<Option<Duration>>,
    /// `--frame-min-rate`.
    frame_min_rate: Option<u32>,
}

/// `--tcp-keepalive IDLE,INTVL,COUNT`, e.g. `45s,10s,3`.
fn parse_tcp_keepalive(s: &str) -> Result<TcpKeepalive, UsageError> {
    let bad = || {
        err(format!(
            "--tcp-keepalive: bad value \"{s}\" (use IDLE,INTVL,COUNT, e.g. 45s,10s,3)"
        ))
    };
    let mut parts = s.split(',');
    let (Some(idle), Some(intvl), Some(count), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad();
    };
    match (parse_duration(idle), parse_duration(intvl), count.parse()) {
        (Some(idle), Some(interval), Ok(count)) => Ok(TcpKeepalive {
            idle,
            interval,
            count,
        }),
        _ => bad(),
    }
}

/// The keep-alive payload from `path`: its first HL7 message, normalised to CR
/// segment separators, or the file's bytes as they are when it holds no HL7
/// message.
///
/// Leaked on purpose: [`KeepAliveMessage`] takes a `&'static [u8]` so links can
/// send it without owning a copy. The CLI reads it once at start and the payload
/// lives as long as the process, so one `Box::leak` of at most
/// [`MAX_KEEPALIVE`] bytes is exactly that lifetime.
fn read_keepalive(path: &PathBuf) -> Result<&'static [u8], UsageError> {
    let text = std::fs::read(path).or_else(|e| {
        err(format!(
            "--keepalive-message: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let mut buf = vec![0u8; text.len() + 1];
    let payload = match hl7::Messages::new(&text).next_into(&mut buf) {
        Ok(Some(n)) => {
            buf.truncate(n);
            buf
        }
        // No MSH line, or (not expected: normalising never grows a message by more
        // than one CR) no room: send the bytes as they are.
        _ => text,
    };
    if payload.is_empty() {
        return err(format!("--keepalive-message: {} is empty", path.display()));
    }
    if payload.len() > MAX_KEEPALIVE {
        return err(format!(
            "--keepalive-message: {} is {} bytes; at most {MAX_KEEPALIVE}",
            path.display(),
            payload.len()
        ));
    }
    Ok(Box::leak(payload.into_boxed_slice()))
}

/// The flag a configuration field comes from, for error lines.
fn liveness_flag_of(field: &str) -> &'static str {
    match field {
        "handshake_timeout" => "--handshake-timeout",
        "heartbeat" | "heartbeat.interval" => "--heartbeat",
        "heartbeat.timeout" => "--heartbeat-timeout",
        "keepalive.every" => "--keepalive-every",
        "keepalive.timeout" => "--keepalive-timeout",
        "keepalive.payload" => "--keepalive-message",
        "tcp_user_timeout" => "--tcp-user-timeout",
        "frame_timeout" => "--frame-timeout",
        f if f.starts_with("tcp_keepalive") => "--tcp-keepalive",
        _ => "liveness flags",
    }
}

impl LivenessFlags {
    /// Takes `flag` (and its value) if it is a liveness flag; false otherwise.
    fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut Words<I>,
    ) -> Result<bool, UsageError> {
        let known = [
            "--protocol",
            "--heartbeat",
            "--heartbeat-timeout",
            "--keepalive-message",
            "--keepalive-every",
            "--keepalive-timeout",
            "--tcp-keepalive",
            "--tcp-user-timeout",
            "--handshake-timeout",
            "--frame-timeout",
            "--frame-min-rate",
        ];
        if !known.contains(&flag) {
            return Ok(false);
        }
        let v = words.value(flag, inline)?;
        match flag {
            "--protocol" => {
                self.protocol = match v.as_str() {
                    "raw" => Protocol::Raw,
                    "mooring" => Protocol::Mooring,
                    _ => {
                        return err(format!(
                            "--protocol: bad value \"{v}\" (use raw or mooring)"
                        ))
                    }
                }
            }
            "--heartbeat" => self.heartbeat = Some(parse_dur(flag, &v)?),
            "--heartbeat-timeout" => self.heartbeat_timeout = Some(parse_dur(flag, &v)?),
            "--keepalive-message" => self.keepalive_message = Some(PathBuf::from(v)),
            "--keepalive-every" => self.keepalive_every = Some(parse_dur(flag, &v)?),
            "--keepalive-timeout" => self.keepalive_timeout = Some(parse_dur(flag, &v)?),
            "--tcp-keepalive" => self.tcp_keepalive = Some(parse_tcp_keepalive(&v)?),
            "--tcp-user-timeout" => self.tcp_user_timeout = Some(parse_dur(flag, &v)?),
            "--frame-timeout" => {
                self.frame_timeout = Some(match v.as_str() {
                    "0" | "off" => None,
                    _ => Some(parse_dur(flag, &v)?),
                })
            }
            "--frame-min-rate" => self.frame_min_rate = Some(parse_count(flag, &v)?),
            _ => self.handshake_timeout = Some(parse_dur(flag, &v)?),
        }
        Ok(true)
    }

    /// Checks the flags together (naming the flag at fault), reads the keep-alive
    /// message file, and builds the configuration.
    fn finish(self) -> Result<LivenessConfig, UsageError> {
        let mooring = self.protocol == Protocol::Mooring;
        if self.heartbeat.is_some() && !mooring {
            return err("--heartbeat: needs --protocol mooring (on both ends)");
        }
        if self.heartbeat_timeout.is_some() && self.heartbeat.is_none() {
            return err("--heartbeat-timeout: needs --heartbeat");
        }
        if self.handshake_timeout.is_some() && !mooring {
            return err(
                "--handshake-timeout: needs --protocol mooring (raw links have no handshake)",
            );
        }
        let keepalive = match (self.keepalive_message, self.keepalive_every) {
            (Some(path), Some(every)) => Some(KeepAliveMessage {
                payload: read_keepalive(&path)?,
                every,
                timeout: self.keepalive_timeout,
            }),
            (Some(_), None) => return err("--keepalive-message: needs --keepalive-every DUR"),
            (None, Some(_)) => return err("--keepalive-every: needs --keepalive-message FILE"),
            (None, None) if self.keepalive_timeout.is_some() => {
                return err("--keepalive-timeout: needs --keepalive-message and --keepalive-every")
            }
            (None, None) => None,
        };
        let frame_timeout = match (self.frame_timeout, self.frame_min_rate) {
            (Some(None), Some(_)) => {
                return err("--frame-min-rate: needs --frame-timeout (it is off)")
            }
            (Some(None), None) => None,
            (timeout, min_rate) => {
                let d = FrameTimeout::default();
                Some(FrameTimeout {
                    timeout: timeout.flatten().unwrap_or(d.timeout),
                    min_rate: min_rate.unwrap_or(d.min_rate),
                    ..d
                })
            }
        };
        let defaults = LivenessConfig::default();
        let cfg = LivenessConfig {
            protocol: self.protocol,
            heartbeat: self.heartbeat.map(|interval| Heartbeat {
                interval,
                timeout: self
                    .heartbeat_timeout
                    .unwrap_or_else(|| interval.saturating_mul(3)),
            }),
            keepalive,
            tcp_keepalive: self.tcp_keepalive,
            tcp_user_timeout: self.tcp_user_timeout,
            handshake_timeout: self.handshake_timeout.unwrap_or(defaults.handshake_timeout),
            frame_timeout,
        };
        cfg.validate().map_err(|e| {
            let flag = match e {
                ConfigError::ZeroTimeout { field }
                | ConfigError::ZeroSize { field }
                | ConfigError::TooLarge { field }
                | ConfigError::NeedsMooringProtocol { field } => liveness_flag_of(field),
                ConfigError::HeartbeatTimeoutNotAfterInterval => "--heartbeat-timeout",
                _ => "liveness flags",
            };
            UsageError(format!("{flag}: {e}"))
        })?;
        Ok(cfg)
    }
}

/// Walks the arguments of one subcommand: flags, `--flag=value` or `--flag value`,
/// and positionals.
struct Words<I: Iterator<Item = String>> {
    rest: I,
}

/// One word of a subcommand's arguments.
enum Word {
    /// `--name` (value, if given as `--name=value`).
    Flag(String, Option<String>),
    /// Anything else (including `-`).
    Positional(String),
}

impl<I: Iterator<Item = String>> Words<I> {
    fn next_word(&mut self) -> Option<Word> {
        let w = self.rest.next()?;
        if w.starts_with("--") {
            return Some(match w.split_once('=') {
                Some((name, value)) => Word::Flag(name.to_string(), Some(value.to_string())),
                None => Word::Flag(w, None),
            });
        }
        if w.starts_with('-') && w.len() > 1 {
            return Some(Word::Flag(w, None));
        }
        Some(Word::Positional(w))
    }

    /// The value of `flag`: inline (`--flag=v`) or the next word.
    fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, UsageError> {
        match inline.or_else(|| self.rest.next()) {
            Some(v) => Ok(v),
            None => err(format!("{flag}: missing value")),
        }
    }
}

/// Handles the flags valid everywhere; false when `flag` is not one of them.
pub(crate) fn global_flag(flag: &str, verbosity: &mut Verbosity, help: &mut bool) -> bool {
    match flag {
        "-v" | "--verbose" => {
            *verbosity = match *verbosity {
                Verbosity::Debug | Verbosity::Trace => Verbosity::Trace,
                _ => Verbosity::Debug,
            }
        }
        "-vv" | "-vvv" => *verbosity = Verbosity::Trace,
        "-q" => *verbosity = Verbosity::Quiet,
        "-h" | "--help" => *help = true,
        _ => return false,
    }
    true
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, UsageError> {
    let mut words = Words {
        rest: args.into_iter(),
    };
    let mut verbosity = Verbosity::Normal;
    let mut help = false;
    let sub = loop {
        match words.next_word() {
            None => break None,
            Some(Word::Flag(f, inline)) => {
                if inline.is_some() || !global_flag(&f, &mut verbosity, &mut help) {
                    return err(format!("unknown flag {f} (see mooring --help)"));
                }
            }
            Some(Word::Positional(p)) => break Some(p),
        }
    };
    let command = match sub.as_deref() {
        None if help => Command::Help(USAGE),
        None => return err("missing subcommand: listen, send or demo (see mooring --help)"),
        Some("help") => Command::Help(USAGE),
        Some("listen") => parse_listen(&mut words, &mut verbosity, &mut help)?,
        Some("send") => parse_send(&mut words, &mut verbosity, &mut help)?,
        Some("demo") => {
            while let Some(w) = words.next_word() {
                match w {
                    Word::Flag(f, None) if global_flag(&f, &mut verbosity, &mut help) => {}
                    Word::Flag(f, _) => return err(format!("unknown flag {f} for demo")),
                    Word::Positional(p) => {
                        return err(format!("unexpected argument \"{p}\" for demo"))
                    }
                }
            }
            Command::Demo
        }
        Some(other) => {
            return err(format!(
                "unknown subcommand \"{other}\" (use listen, send or demo)"
            ))
        }
    };
    let command = match command {
        Command::Listen(_) if help => Command::Help(LISTEN_USAGE),
        Command::Send(_) if help => Command::Help(SEND_USAGE),
        Command::Demo if help => Command::Help(USAGE),
        c => c,
    };
    Ok(Cli { verbosity, command })
}

/// The flags of `mooring listen`.
fn parse_listen<I: Iterator<Item = String>>(
    words: &mut Words<I>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<Command, UsageError> {
    let mut o = ListenOpts::default();
    let mut live = LivenessFlags::default();
    let mut sess = SessionFlags::default();
    while let Some(w) = words.next_word() {
        let (flag, inline) = match w {
            Word::Positional(p) => {
                return err(format!(
                    "unexpected argument \"{p}\" for listen (use --bind ADDR)"
                ))
            }
            Word::Flag(f, inline) => (f, inline),
        };
        // Switches take no value; refuse `--quiet=yes` rather than guess.
        let switch = |inline: &Option<String>| match inline {
            Some(_) => err(format!("{flag}: takes no value")),
            None => Ok(true),
        };
        match flag.as_str() {
            "--bind" => o.bind = parse_addr(&flag, &words.value(&flag, inline)?)?,
            "--framing" => o.framing = parse_framing(&words.value(&flag, inline)?)?,
            "--max-conns" => o.max_conns = parse_count(&flag, &words.value(&flag, inline)?)?,
            "--max-conns-per-ip" => {
                o.max_conns_per_ip = parse_limit(&flag, &words.value(&flag, inline)?)?
            }
            "--idle-timeout" => {
                o.idle_timeout = Some(parse_dur(&flag, &words.value(&flag, inline)?)?)
            }
            "--stale-recovery" => {
                o.stale_recovery = Some(parse_dur(&flag, &words.value(&flag, inline)?)?)
            }
            "--close-after-reply" => o.close_after_reply = switch(&inline)?,
            "--allow" => {
                let v = words.value(&flag, inline)?;
                let net: Cidr = v.parse().or_else(|_| {
                    err(format!(
                        "--allow: bad value \"{v}\" (use an IP or a CIDR such as 10.0.0.0/8)"
                    ))
                })?;
                o.allow
                    .push(net)
                    .or_else(|e| err(format!("--allow: {e}")))?;
            }
            "--reply" => {
                o.reply = match words.value(&flag, inline)?.as_str() {
                    "hl7-ack" => ReplyMode::Hl7Ack,
                    "echo" => ReplyMode::Echo,
                    "none" => ReplyMode::None,
                    v => {
                        return err(format!(
                            "--reply: bad value \"{v}\" (use hl7-ack, echo or none)"
                        ))
                    }
                }
            }
            "--max-frame" => o.max_frame = parse_count(&flag, &words.value(&flag, inline)?)?,
            "--mllp-commit-ack" => o.mllp_commit_ack = switch(&inline)?,
            "--write-timeout" => o.write_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?,
            "--quiet" => o.quiet = switch(&inline)?,
            "--max-sessions-per-ip" => {
                let n = parse_count(&flag, &words.value(&flag, inline)?)?;
                if n == 0 {
                    return err("--max-sessions-per-ip: must be at least 1");
                }
                o.max_sessions_per_ip = Some(n);
            }
            f if live.parse(f, inline.clone(), words)? => {}
            f if sess.parse(f, inline.clone(), words, false)? => {}
            f if inline.is_none() && global_flag(f, verbosity, help) => {}
            f => {
                return err(format!(
                    "unknown flag {f} for listen (see mooring listen --help)"
                ))
            }
        }
    }
    if !*help {
        o.liveness = live.finish()?;
        o.session = sess.finish(o.liveness.protocol)?.0;
        if o.session.is_some() && o.close_after_reply {
            return err("--close-after-reply: cannot be used with --session");
        }
        if o.session.is_none() && o.max_sessions_per_ip.is_some() {
            return err("--max-sessions-per-ip: needs --session");
        }
    }
    Ok(Command::Listen(Box::new(o)))
}

/// The positionals and flags of `mooring send`.
fn parse_send<I: Iterator<Item = String>>(
    words: &mut Words<I>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<Command, UsageError> {
    let mut addr = None;
    let mut input = None;
    let mut framing = Framing::Mllp;
    let mut close_each = false;
    let mut response_timeout = Duration::from_secs(10);
    let mut connect_timeout = Duration::from_secs(5);
    let mut retries = 0;
    let mut correlate = true;
    let mut hold = None;
    let mut pace = None;
    let mut write_timeout = mooring::config::DEFAULT_WRITE_TIMEOUT;
    let mut live = LivenessFlags::default();
    let mut sess = SessionFlags::default();
    while let Some(w) = words.next_word() {
        let (flag, inline) = match w {
            Word::Positional(p) if addr.is_none() => {
                addr = Some(p);
                continue;
            }
            Word::Positional(p) if input.is_none() => {
                input = Some(if p == "-" {
                    Input::Stdin
                } else {
                    Input::File(PathBuf::from(p))
                });
                continue;
            }
            Word::Positional(p) => {
                return err(format!(
                    "unexpected argument \"{p}\" for send (one FILE only)"
                ))
            }
            Word::Flag(f, inline) => (f, inline),
        };
        let switch = |inline: &Option<String>| match inline {
            Some(_) => err(format!("{flag}: takes no value")),
            None => Ok(true),
        };
        match flag.as_str() {
            "--framing" => framing = parse_framing(&words.value(&flag, inline)?)?,
            "--close-each" => close_each = switch(&inline)?,
            "--response-timeout" => {
                response_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?
            }
            "--connect-timeout" => {
                connect_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?
            }
            "--retries" => retries = parse_count(&flag, &words.value(&flag, inline)?)?,
            "--no-correlate" => correlate = !switch(&inline)?,
            "--hold" => hold = Some(parse_dur(&flag, &words.value(&flag, inline)?)?),
            "--pace" => pace = Some(parse_dur(&flag, &words.value(&flag, inline)?)?),
            "--write-timeout" => write_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?,
            f if live.parse(f, inline.clone(), words)? => {}
            f if sess.parse(f, inline.clone(), words, true)? => {}
            f if inline.is_none() && global_flag(f, verbosity, help) => {}
            f => {
                return err(format!(
                    "unknown flag {f} for send (see mooring send --help)"
                ))
            }
        }
    }
    if *help {
        // `mooring send --help` needs no ADDR.
        return Ok(Command::Help(SEND_USAGE));
    }
    let Some(addr) = addr else {
        return err("send: missing ADDR (e.g. mooring send 127.0.0.1:2575 messages.hl7)");
    };
    let liveness = live.finish()?;
    let (session, backoff) = sess.finish(liveness.protocol)?;
    if session.is_some() && close_each {
        return err("--close-each: cannot be used with --session");
    }
    Ok(Command::Send(Box::new(SendOpts {
        addr: parse_addr("ADDR", &addr)?,
        input: input.unwrap_or(Input::Stdin),
        framing,
        close_each,
        response_timeout,
        connect_timeout,
        retries,
        correlate,
        hold,
        pace,
        write_timeout,
        liveness,
        session,
        backoff,
    })))
}

/// The reconnection strategy from `--reconnect-min` / `--reconnect-max`: either
/// bound alone moves the other so that min <= max; both given must agree.
pub(crate) fn backoff_from(
    min: Option<Duration>,
    max: Option<Duration>,
) -> Result<Backoff, UsageError> {
    let mut backoff = Backoff::default();
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return err("--reconnect-min: more than --reconnect-max");
        }
    }
    if let Some(max) = max {
        backoff.max = max;
        backoff.min = backoff.min.min(max);
    }
    if let Some(min) = min {
        backoff.min = min;
        backoff.max = backoff.max.max(min);
    }
    Ok(backoff)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Result<Cli, UsageError> {
        parse(args.iter().map(|s| s.to_string()))
    }

    #[test]
    fn durations_need_a_unit() {
        assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
        assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
        assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
        assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
        for bad in [
            "",
            "5",
            "5x",
            "ms",
            "-1s",
            "1.5s",
            "99999999999999999999s",
            "1 s",
        ] {
            assert_eq!(parse_duration(bad), None, "{bad}");
        }
    }

    #[test]
    fn a_bad_duration_names_its_flag() {
        let e = run(&["listen", "--idle-timeout", "5x"]).unwrap_err();
        assert_eq!(
            e.0,
            "--idle-timeout: bad duration \"5x\" (use 500ms, 10s, 5m)"
        );
    }

    #[test]
    fn listen_flags_fill_their_options() {
        let cli = run(&[
            "-v",
            "listen",
            "--bind=127.0.0.1:0",
            "--framing",
            "len32",
            "--max-conns",
            "1",
            "--max-conns-per-ip",
            "3",
            "--stale-recovery",
            "300ms",
            "--allow",
            "10.0.0.0/8",
            "--allow",
            "127.0.0.1",
            "--reply",
            "echo",
            "--quiet",
        ])
        .unwrap();
        assert_eq!(cli.verbosity, Verbosity::Debug);
        let Command::Listen(o) = cli.command else {
            panic!("not listen")
        };
        assert_eq!(o.bind.port(), 0);
        assert_eq!(o.framing, Framing::Len32);
        assert_eq!(o.max_conns, 1);
        assert_eq!(o.max_conns_per_ip, Some(3));
        assert_eq!(o.stale_recovery, Some(Duration::from_millis(300)));
        assert!(o.allow.allows("127.0.0.1".parse().unwrap()));
        assert!(!o.allow.allows("192.0.2.1".parse().unwrap()));
        assert_eq!(o.reply, ReplyMode::Echo);
        assert!(o.quiet);
    }

    #[test]
    fn max_conns_per_ip_is_off_by_default_and_with_0_or_off() {
        for (args, want) in [
            (&["listen"][..], None),
            (&["listen", "--max-conns-per-ip", "0"][..], None),
            (&["listen", "--max-conns-per-ip=off"][..], None),
            (&["listen", "--max-conns-per-ip", "2"][..], Some(2)),
        ] {
            let Command::Listen(o) = run(args).unwrap().command else {
                panic!("not listen")
            };
            assert_eq!(o.max_conns_per_ip, want, "{args:?}");
        }
    }

    #[test]
    fn write_timeout_is_10s_unless_given_on_listen_and_send() {
        let listen = |args: &[&str]| match run(args).unwrap().command {
            Command::Listen(o) => o.write_timeout,
            _ => panic!("not listen"),
        };
        let send = |args: &[&str]| match run(args).unwrap().command {
            Command::Send(o) => o.write_timeout,
            _ => panic!("not send"),
        };
        assert_eq!(listen(&["listen"]), Duration::from_secs(10));
        assert_eq!(
            listen(&["listen", "--write-timeout", "750ms"]),
            Duration::from_millis(750)
        );
        assert_eq!(send(&["send", "127.0.0.1:2575"]), Duration::from_secs(10));
        assert_eq!(
            send(&["send", "127.0.0.1:2575", "--write-timeout=2s"]),
            Duration::from_secs(2)
        );
        let e = run(&["listen", "--write-timeout", "5"]).unwrap_err();
        assert!(e.0.starts_with("--write-timeout: bad duration"), "{}", e.0);
    }

    #[test]
    fn send_takes_addr_then_file() {
        let cli = run(&["send", "127.0.0.1:2575", "a.hl7", "--retries", "2", "-vv"]).unwrap();
        assert_eq!(cli.verbosity, Verbosity::Trace);
        let Command::Send(o) = cli.command else {
            panic!("not send")
        };
        assert_eq!(o.input, Input::File("a.hl7".into()));
        assert_eq!(o.retries, 2);
        assert!(o.correlate);
        let cli = run(&["send", "127.0.0.1:2575", "-", "--no-correlate"]).unwrap();
        let Command::Send(o) = cli.command else {
            panic!("not send")
        };
        assert_eq!(o.input, Input::Stdin);
        assert!(!o.correlate);
    }

    #[test]
    fn liveness_flags_build_the_config() {
        let cli = run(&[
            "send",
            "127.0.0.1:2575",
            "--protocol",
            "mooring",
            "--heartbeat=2s",
            "--tcp-keepalive",
            "45s,10s,3",
            "--tcp-user-timeout",
            "90s",
            "--handshake-timeout",
            "500ms",
            "--hold",
            "30s",
        ])
        .unwrap();
        let Command::Send(o) = cli.command else {
            panic!("not send")
        };
        let l = o.liveness;
        assert_eq!(l.protocol, Protocol::Mooring);
        assert_eq!(
            l.heartbeat,
            Some(Heartbeat {
                interval: Duration::from_secs(2),
                timeout: Duration::from_secs(6),
            }),
            "timeout defaults to 3 x interval"
        );
        assert_eq!(l.tcp_keepalive, Some(TcpKeepalive::default()));
        assert_eq!(l.tcp_user_timeout, Some(Duration::from_secs(90)));
        assert_eq!(l.handshake_timeout, Duration::from_millis(500));
        assert_eq!(o.hold, Some(Duration::from_secs(30)));
        let Command::Listen(o) = run(&["listen"]).unwrap().command else {
            panic!("not listen")
        };
        assert_eq!(o.liveness, LivenessConfig::default());
    }

    #[test]
    fn frame_timeout_flags_build_the_config_on_listen_and_send() {
        let frame = |args: &[&str]| match run(args).map(|c| c.command) {
            Ok(Command::Listen(o)) => Ok(o.liveness.frame_timeout),
            Ok(Command::Send(o)) => Ok(o.liveness.frame_timeout),
            Ok(_) => panic!("not listen or send"),
            Err(e) => Err(e.0),
        };
        assert_eq!(frame(&["listen"]), Ok(Some(FrameTimeout::default())));
        assert_eq!(
            frame(&[
                "listen",
                "--frame-timeout",
                "300ms",
                "--frame-min-rate",
                "0"
            ]),
            Ok(Some(FrameTimeout {
                timeout: Duration::from_millis(300),
                min_rate: 0,
                ..FrameTimeout::default()
            }))
        );
        assert_eq!(
            frame(&["send", "127.0.0.1:1", "--frame-min-rate=8000"]),
            Ok(Some(FrameTimeout {
                min_rate: 8000,
                ..FrameTimeout::default()
            }))
        );
        assert_eq!(
            frame(&["send", "127.0.0.1:1", "--frame-timeout", "off"]),
            Ok(None)
        );
        assert_eq!(frame(&["listen", "--frame-timeout", "0"]), Ok(None));
        for (args, want) in [
            (
                &["listen", "--frame-timeout", "30"][..],
                "--frame-timeout: bad duration",
            ),
            (
                &["listen", "--frame-min-rate", "fast"],
                "--frame-min-rate: bad number",
            ),
            (
                &["listen", "--frame-timeout", "off", "--frame-min-rate", "9"],
                "--frame-min-rate: needs --frame-timeout",
            ),
        ] {
            let e = frame(args).unwrap_err();
            assert!(e.starts_with(want), "{args:?}: {e}");
        }
    }

    #[test]
    fn keepalive_file_yields_its_first_hl7_message_or_its_bytes() {
        let dir = std::env::temp_dir();
        let hl7 = dir.join(format!("mooring-args-{}-ka.hl7", std::process::id()));
        let raw = dir.join(format!("mooring-args-{}-ka.bin", std::process::id()));
        std::fs::write(&hl7, b"junk\nMSH|^~\\&|A|B\nPID|1\nMSH|^~\\&|SECOND\n").unwrap();
        std::fs::write(&raw, b"PING\n").unwrap();
        let got = (read_keepalive(&hl7), read_keepalive(&raw));
        let _ = std::fs::remove_file(&hl7);
        let _ = std::fs::remove_file(&raw);
        assert_eq!(got.0.unwrap(), b"MSH|^~\\&|A|B\rPID|1\r");
        assert_eq!(got.1.unwrap(), b"PING\n");
    }

    #[test]
    fn mistakes_name_what_is_wrong() {
        let cases: &[(&[&str], &str)] = &[
            (&["listen", "--bogus"], "--bogus"),
            (&["listen", "--bind"], "--bind: missing value"),
            (&["listen", "--max-conns", "x"], "--max-conns"),
            (
                &["listen", "--max-conns-per-ip", "-1"],
                "--max-conns-per-ip",
            ),
            (&["listen", "--reply", "ack"], "--reply"),
            (&["listen", "--allow", "10.0.0.0/40"], "--allow"),
            (&["listen", "--quiet=1"], "--quiet"),
            (&["send"], "ADDR"),
            (&["send", "nonsense"], "ADDR"),
            (&["frobnicate"], "frobnicate"),
            (&[], "missing subcommand"),
        ];
        for (args, needle) in cases {
            let e = run(args).unwrap_err();
            assert!(e.0.contains(needle), "{args:?}: {}", e.0);
        }
    }

    #[test]
    fn session_flags_build_the_session_and_backoff() {
        let cli = run(&[
            "send",
            "127.0.0.1:2575",
            "--protocol",
            "mooring",
            "--session",
            "--resume-window",
            "10s",
            "--queue",
            "50",
            "--queue-bytes",
            "65536",
            "--reconnect-min",
            "100ms",
            "--reconnect-max=500ms",
            "--pace",
            "10ms",
        ])
        .unwrap();
        let Command::Send(o) = cli.command else {
            panic!("not send")
        };
        let s = o.session.expect("session");
        assert_eq!(s.max_depth, 50);
        assert_eq!(s.max_depth_disconnected, 500);
        assert_eq!(s.max_bytes, 65536);
        assert_eq!(s.reconnect_timeout, Duration::from_secs(10));
        assert_eq!(o.backoff.min, Duration::from_millis(100));
        assert_eq!(o.backoff.max, Duration::from_millis(500));
        assert_eq!(o.pace, Some(Duration::from_millis(10)));
        let Command::Listen(o) = run(&["listen", "--protocol", "mooring", "--session"])
            .unwrap()
            .command
        else {
            panic!("not listen")
        };
        assert_eq!(o.session, Some(SessionConfig::default()));
        let cases: &[(&[&str], &str)] = &[
            (
                &["listen", "--session"],
                "--session: needs --protocol mooring",
            ),
            (&["listen", "--queue", "5"], "--queue: needs --session"),
            (
                &["listen", "--queue-bytes", "5"],
                "--queue-bytes: needs --session",
            ),
            (
                &[
                    "listen",
                    "--protocol",
                    "mooring",
                    "--session",
                    "--queue",
                    "0",
                ],
                "--queue",
            ),
            (
                &["listen", "--reconnect-min", "1s"],
                "unknown flag --reconnect-min",
            ),
            (
                &["send", "127.0.0.1:1", "--resume-window", "1s"],
                "--resume-window: needs --session",
            ),
            (
                &[
                    "send",
                    "127.0.0.1:1",
                    "--protocol",
                    "mooring",
                    "--session",
                    "--reconnect-min",
                    "2s",
                    "--reconnect-max",
                    "1s",
                ],
                "--reconnect-min",
            ),
        ];
        for (args, needle) in cases {
            let e = run(args).unwrap_err();
            assert!(e.0.starts_with(needle), "{args:?}: {}", e.0);
        }
    }

    #[test]
    fn max_sessions_per_ip_needs_sessions_and_a_positive_count() {
        let Command::Listen(o) = run(&[
            "listen",
            "--protocol",
            "mooring",
            "--session",
            "--max-sessions-per-ip",
            "3",
        ])
        .unwrap()
        .command
        else {
            panic!("not listen")
        };
        assert_eq!(o.max_sessions_per_ip, Some(3));
        let cases: &[(&[&str], &str)] = &[
            (
                &["listen", "--max-sessions-per-ip", "2"],
                "--max-sessions-per-ip: needs --session",
            ),
            (
                &[
                    "listen",
                    "--protocol",
                    "mooring",
                    "--session",
                    "--max-sessions-per-ip=0",
                ],
                "--max-sessions-per-ip: must be at least 1",
            ),
        ];
        for (args, needle) in cases {
            let e = run(args).unwrap_err();
            assert!(e.0.starts_with(needle), "{args:?}: {}", e.0);
        }
    }

    #[test]
    fn help_wins_over_missing_arguments() {
        assert!(matches!(
            run(&["--help"]).unwrap().command,
            Command::Help(USAGE)
        ));
        assert!(matches!(
            run(&["send", "-h"]).unwrap().command,
            Command::Help(SEND_USAGE)
        ));
        assert!(matches!(
            run(&["listen", "--help"]).unwrap().command,
            Command::Help(LISTEN_USAGE)
        ));
    }
}

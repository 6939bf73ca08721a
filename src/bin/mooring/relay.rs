//! `mooring relay`: an edge relay. Local devices (third-party HL7 senders over
//! raw MLLP or len32) connect to its listener; every new message is queued and
//! forwarded, in order, over ONE keep-open upstream link that is re-established
//! with backoff whenever it drops. All of it is one [`Node`] on one thread.
//!
//! Per device message (keyed by its sender and MSH-10: MSH-3, MSH-4, MSH-10, see
//! [`hl7::message_key`]; MSH-10 alone is unique only per sender):
//!
//! 1. A message whose key the relay saw before (a [`DedupWindow`] of the last
//!    `--dedup-window` keys) is acknowledged again (AA) and not forwarded again:
//!    `event=duplicate`. With `--ack-after upstream`, a resend of a message that
//!    is still waiting for the upstream's acknowledgement takes over its pending
//!    ACK (the ACK goes to the newest link) and is not forwarded again either.
//! 2. A new message goes into the upstream queue, a [`Ledger`] of `--queue`
//!    messages. If the queue is full (or the message is larger than the queue's
//!    byte ring) the device gets MSA|AR at once: `event=queue_full`. It never gets
//!    AA for a message that was not kept.
//! 3. `--ack-after queued` (default): the device gets AA as soon as the message
//!    is in the queue. `--ack-after upstream`: only once the upstream
//!    acknowledged it (raw: the upstream's HL7 ACK whose MSA-2 is the message's
//!    MSH-10, and the device gets the upstream's MSA-1 code; mooring: the
//!    upstream's session acknowledged delivery to its application, and the
//!    device gets AA). A device still waiting when `--response-timeout` has
//!    passed since its message arrived (the upstream is down or slow) gets
//!    MSA|AR then: `event=reply_timeout`. The message stays queued and goes
//!    upstream when it can; its resend is a duplicate (AA once delivered).
//!
//! Upstream, raw (`--protocol raw`): one message in flight (MLLP is
//! request/response). A reply is credited only if its MSA-2 matches the
//! message's MSH-10 (`hl7::reply_matches`); anything else is
//! `event=unexpected_reply`. No matching reply within `--response-timeout`
//! closes the link: the message is then in doubt and resent after the
//! reconnect, up to `--retries` times, after which it fails (`event=failed`).
//!
//! Upstream, mooring (`--protocol mooring`): a reliable session
//! ([`Node::open_session`]); the session resumes lost links by itself with
//! nothing lost or repeated. The ledger still holds every message until the
//! session acknowledged it, so if the session itself ends (the upstream
//! restarted and lost it: Expired, or Lost) the messages it had not
//! acknowledged are in doubt and resent on a new session, up to `--retries`
//! times.
//!
//! Memory is fixed at start: the ledger's ring, the duplicate window, the link
//! slots. Pending-message records (MSH-10 and MSH segment, for the lines and
//! the deferred ACK) are recycled, so after warm-up the only per-message
//! allocations are the printed lines themselves (`Line` builds a `String`).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mooring::dedup::DedupWindow;
use mooring::hl7::{self, AckCode};
use mooring::ledger::{Delivery, InDoubt, Ledger, LedgerConfig, MsgId};
use mooring::rng::XorShift64;
use mooring::session::{Backoff, SessionConfig, SessionError};
use mooring::time::earliest;
use mooring::{
    CloseReason, ConnectConfig, Event, Framing, Instant, LinkId, ListenConfig, ListenerId,
    LivenessConfig, Node, NodeConfig, Protocol, SendError, SessionId, SessionNote, SetupError,
};

use crate::args::{self, err as usage, global_flag, parse_addr, Command, UsageError, Verbosity};
use crate::line::{self, Line};
use crate::listen::Seen;

/// Usage of `mooring relay`.
pub const RELAY_USAGE: &str = "\
Usage: mooring relay --listen ADDR --upstream ADDR [flags]

Accepts HL7 messages from local devices (raw MLLP or len32: any HL7 sender) and
forwards them in order over ONE keep-open link to the upstream, which is
re-established with backoff whenever it drops. Each message is acknowledged
to its device with an HL7 ACK (MSA|AA, or MSA|AR when it was not kept).

  --listen ADDR           where devices connect (port 0 picks one)
  --upstream ADDR         where messages go
  --framing mllp|len32    framing, devices and upstream (default mllp)
  --protocol raw|mooring  upstream protocol: raw (any HL7 receiver that answers
                          with an HL7 ACK; default) or mooring (a reliable
                          session; the upstream runs `mooring listen --protocol
                          mooring --session`)
  --queue N               messages held for the upstream (default 1000); a
                          device message arriving when it is full gets MSA|AR
  --ack-after queued|upstream
                          queued (default): the device gets AA once the message
                          is in the queue; upstream: only once the upstream
                          acknowledged it (raw: its HL7 ACK, whose MSA-1 the
                          device gets; mooring: the session's acknowledgement),
                          or MSA|AR if that takes longer than
                          --response-timeout (the message stays queued)
  --retries N             resends of a message in doubt before it fails
                          (default 3)
  --response-timeout DUR  raw: the upstream's ACK must come within DUR, else the
                          link is closed and the message is in doubt (default 10s);
                          --ack-after upstream: a device waiting DUR for its
                          ACK gets MSA|AR
  --reconnect-min DUR     first reconnect waits up to DUR, doubling each attempt
  --reconnect-max DUR     ... up to DUR (defaults 1s and 30s; full jitter,
                          unlimited attempts)
  --connect-timeout DUR   each connect attempt (default 5s)
  --dedup-window N        messages remembered to spot resends (default 10000);
                          a resend has the same MSH-3, MSH-4 and MSH-10
  --max-conns N           devices served at once (default 10)
  --max-conns-per-ip N    links one device address may hold at once; more are
                          rejected (TooManyConnectionsFromPeer); 0 or off: no
                          limit (default off)
  --write-timeout DUR     close a link (device or upstream) whose queued bytes
                          make no progress for DUR (WriteTimeout; default 10s)

Liveness of the upstream link (as on listen/send): --heartbeat DUR,
--heartbeat-timeout DUR (mooring), --keepalive-message FILE, --keepalive-every
DUR, --keepalive-timeout DUR, --tcp-keepalive IDLE,INTVL,COUNT,
--tcp-user-timeout DUR, --handshake-timeout DUR (mooring), --frame-timeout DUR
and --frame-min-rate N (slow peers; defaults 30s and 500). --tcp-keepalive,
--tcp-user-timeout, --frame-timeout and --frame-min-rate apply to device links
too.

Guarantees:
  Messages go upstream in the order the relay accepted them. A message is
  reported acked only after the upstream acknowledged it. A message whose
  sender (MSH-3, MSH-4) and MSH-10 are in the duplicate window is acknowledged
  again, not forwarded again; the same MSH-10 from another sender is another
  message.
  Raw upstream: at least once. A message written when the link dropped (or
  whose ACK did not come in time) is in doubt: it is resent after the
  reconnect, so the upstream may see it twice (HL7 receivers deduplicate by
  MSH-10). After --retries resends it fails.
  Mooring upstream: exactly once while the session lives (resumed across lost
  links); if the session ends (e.g. the upstream restarted), what it had not
  acknowledged is resent on a new session (at least once), up to --retries.
  --ack-after queued: the device's AA means \"kept by the relay\"; the relay
  holds the queue in memory, so a message in the queue is LOST if the relay
  dies, and a message that fails (out of retries) was already acknowledged:
  the relay prints event=failed and logs an error. That is the documented loss
  case; use --ack-after upstream to avoid it (a failed message then gets MSA|AR
  and the device may resend it).
  Messages without an MSH-10 (or not HL7) are answered MSA|AR, not forwarded.

Lines (stdout, flushed at once):
  event=listening addr=127.0.0.1:2576
  event=liveness protocol=raw ...            (the upstream link; as on listen)
  event=connected peer=IP:PORT               (a device)
  event=message peer=IP:PORT bytes=N [id=MSH-10]
  event=duplicate peer=IP:PORT id=MSH-10 [pending=true]
  event=queue_full peer=IP:PORT id=MSH-10 queued=N
  event=refused peer=IP:PORT bytes=N reason=NotHl7|NoControlId
  event=queued peer=IP:PORT id=MSH-10 seq=N
  event=reply_timeout peer=IP:PORT id=MSH-10 seq=N ack=AR
                 (--ack-after upstream: no upstream ACK within
                  --response-timeout; the message stays queued)
  event=closed peer=IP:PORT reason=... [peer_reason=R]
  event=rejected peer=IP:PORT reason=TooManyConnections|NotAllowed|TooManyConnectionsFromPeer
  event=upstream state=connecting addr=ADDR attempt=N
  event=upstream state=connected addr=ADDR [resumed=B replaying=K]
  event=upstream state=lost addr=ADDR reason=R in_doubt=FIRST-LAST|none
                 resent=N failed=N           (one line; mooring link: unacked=N)
  event=upstream state=reconnecting addr=ADDR [reason=R] attempt=N delay_ms=D
  event=forwarded id=MSH-10 seq=N attempt=N
  event=acked id=MSH-10 seq=N ms=M [ack=AA]  (ms: since the relay received it)
  event=unexpected_reply [id=MSA-2] [ack=CODE]
  event=upstream_reply [id=MSA-2] [ack=CODE] (mooring: the upstream's replies)
  event=failed id=MSH-10 seq=N attempts=N acked_to_device=true|false
seq numbers the messages the relay accepted, from 1; in_doubt names seqs.
Runs until killed.
";

/// Room for an ACK beyond an MSH segment (swapped fields, MSA, timestamp).
const ACK_HEADROOM: usize = 512;
/// Spare link slots (see `listen`): closed links wait in their slots until
/// their events are pulled.
const MAX_SPARE_SLOTS: usize = 64;
/// Longest wait in one poll (deadlines wake it earlier).
const MAX_WAIT: Duration = Duration::from_secs(1);

/// When the device gets its ACK.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum AckAfter {
    /// Once the message is in the queue.
    Queued,
    /// Once the upstream acknowledged it.
    Upstream,
}

/// Options of `mooring relay`.
#[derive(Clone, Debug)]
pub struct RelayOpts {
    /// `--listen`.
    pub listen: SocketAddr,
    /// `--upstream`.
    pub upstream: SocketAddr,
    /// `--framing`.
    pub framing: Framing,
    /// `--queue`.
    pub queue: usize,
    /// `--ack-after`.
    pub ack_after: AckAfter,
    /// `--retries`.
    pub retries: u32,
    /// `--response-timeout`.
    pub response_timeout: Duration,
    /// `--reconnect-min`, `--reconnect-max`.
    pub backoff: Backoff,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--dedup-window`.
    pub dedup_window: usize,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--max-conns-per-ip` (`None`: off).
    pub max_conns_per_ip: Option<usize>,
    /// `--write-timeout`.
    pub write_timeout: Duration,
    /// Liveness flags (upstream link), `--protocol` included.
    pub liveness: LivenessConfig,
}

/// The liveness flags, all taking a value, parsed by `listen`'s parser.
const LIVENESS_FLAGS: [&str; 11] = [
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

/// What the command line asks of the relay.
enum Parsed {
    Help,
    Run(Box<RelayOpts>),
}

/// Runs `mooring relay` if that is the subcommand (the first word that is not
/// a flag); `None` otherwise, for `args::parse` to handle.
pub fn dispatch(argv: &[String]) -> Option<ExitCode> {
    if argv
        .iter()
        .find(|a| !a.starts_with('-'))
        .map(String::as_str)
        != Some("relay")
    {
        return None;
    }
    let mut verbosity = Verbosity::Normal;
    let parsed = parse(argv, &mut verbosity);
    crate::logger::init(verbosity);
    Some(match parsed {
        Ok(Parsed::Help) => {
            print!("{RELAY_USAGE}");
            ExitCode::SUCCESS
        }
        Ok(Parsed::Run(o)) => run(&o),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    })
}

/// A duration that must be more than zero (every relay timer).
fn parse_dur(flag: &str, s: &str) -> Result<Duration, UsageError> {
    match args::parse_dur(flag, s)? {
        d if d.is_zero() => usage(format!("{flag}: must be more than 0")),
        d => Ok(d),
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + From<u8>>(
    flag: &str,
    s: &str,
    min: u8,
) -> Result<T, UsageError> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(min) => Ok(n),
        Ok(_) => usage(format!("{flag}: must be at least {min}")),
        Err(_) => usage(format!("{flag}: bad number \"{s}\"")),
    }
}

/// Parses `[global flags] relay [flags]`.
fn parse(argv: &[String], verbosity: &mut Verbosity) -> Result<Parsed, UsageError> {
    let mut help = false;
    let mut words = argv.iter().cloned();
    // Global flags before the subcommand.
    for w in words.by_ref() {
        if w == "relay" {
            break;
        }
        if !global_flag(&w, verbosity, &mut help) {
            return usage(format!("unknown flag {w} (see mooring --help)"));
        }
    }
    let mut listen = None;
    let mut upstream = None;
    let mut framing = Framing::Mllp;
    let mut queue = 1000usize;
    let mut ack_after = AckAfter::Queued;
    let mut retries = 3u32;
    let mut response_timeout = Duration::from_secs(10);
    let mut reconnect_min = None;
    let mut reconnect_max = None;
    let mut connect_timeout = Duration::from_secs(5);
    let mut dedup_window = 10_000usize;
    let mut max_conns = 10usize;
    let mut max_conns_per_ip = None;
    let mut write_timeout = mooring::config::DEFAULT_WRITE_TIMEOUT;
    // Liveness flags are handed to `listen`'s parser as they are, so that they
    // are checked exactly as on listen/send.
    let mut live: Vec<String> = vec!["listen".to_string()];
    while let Some(w) = words.next() {
        if !w.starts_with('-') || w == "-" {
            return usage(format!("unexpected argument \"{w}\" for relay"));
        }
        let (flag, inline) = match w.split_once('=') {
            Some((f, v)) if w.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (w.clone(), None),
        };
        if LIVENESS_FLAGS.contains(&flag.as_str()) {
            live.push(flag.clone());
            match inline.or_else(|| words.next()) {
                Some(v) => live.push(v),
                None => return usage(format!("{flag}: missing value")),
            }
            continue;
        }
        if inline.is_none() && global_flag(&flag, verbosity, &mut help) {
            continue;
        }
        let mut value = || match inline.clone().or_else(|| words.next()) {
            Some(v) => Ok(v),
            None => usage(format!("{flag}: missing value")),
        };
        match flag.as_str() {
            "--listen" => listen = Some(parse_addr(&flag, &value()?)?),
            "--upstream" => upstream = Some(parse_addr(&flag, &value()?)?),
            "--framing" => framing = args::parse_framing(&value()?)?,
            "--queue" => queue = parse_num(&flag, &value()?, 1)?,
            "--ack-after" => {
                ack_after = match value()?.as_str() {
                    "queued" => AckAfter::Queued,
                    "upstream" => AckAfter::Upstream,
                    v => {
                        return usage(format!(
                            "--ack-after: bad value \"{v}\" (use queued or upstream)"
                        ))
                    }
                }
            }
            "--retries" => retries = parse_num(&flag, &value()?, 0)?,
            "--response-timeout" => response_timeout = parse_dur(&flag, &value()?)?,
            "--reconnect-min" => reconnect_min = Some(parse_dur(&flag, &value()?)?),
            "--reconnect-max" => reconnect_max = Some(parse_dur(&flag, &value()?)?),
            "--connect-timeout" => connect_timeout = parse_dur(&flag, &value()?)?,
            "--dedup-window" => dedup_window = parse_num(&flag, &value()?, 1)?,
            "--max-conns" => max_conns = parse_num(&flag, &value()?, 1)?,
            "--max-conns-per-ip" => max_conns_per_ip = args::parse_limit(&flag, &value()?)?,
            "--write-timeout" => write_timeout = parse_dur(&flag, &value()?)?,
            f => {
                return usage(format!(
                    "unknown flag {f} for relay (see mooring relay --help)"
                ))
            }
        }
    }
    if help {
        return Ok(Parsed::Help);
    }
    let Some(listen) = listen else {
        return usage("relay: missing --listen ADDR");
    };
    let Some(upstream) = upstream else {
        return usage("relay: missing --upstream ADDR");
    };
    let liveness = match args::parse(live)? {
        args::Cli {
            command: Command::Listen(o),
            ..
        } => o.liveness,
        _ => return usage("relay: liveness flags"),
    };
    let backoff = args::backoff_from(reconnect_min, reconnect_max)?;
    Ok(Parsed::Run(Box::new(RelayOpts {
        listen,
        upstream,
        framing,
        queue,
        ack_after,
        retries,
        response_timeout,
        backoff,
        connect_timeout,
        dedup_window,
        max_conns,
        max_conns_per_ip,
        write_timeout,
        liveness,
    })))
}

/// A message accepted from a device and not yet acknowledged or failed.
struct Entry {
    /// Its ledger id (`seq=` in the lines).
    seq: MsgId,
    /// The device link waiting for its ACK (`--ack-after upstream`).
    link: Option<LinkId>,
    /// When that device gets MSA|AR if the upstream has not acknowledged.
    reply_by: Instant,
    peer: SocketAddr,
    /// MSH-10.
    id: Vec<u8>,
    /// The MSH segment: all `build_ack` needs to answer it later.
    msh: Vec<u8>,
    received: Instant,
    /// Times written upstream.
    writes: u32,
    /// The upstream's MSA-1 (raw), for the device's deferred ACK.
    code: AckCode,
}

/// The raw upstream link.
enum RawLink {
    /// Waiting to dial (at `retry_at`).
    Down { retry_at: Instant },
    /// Connect in progress.
    Connecting(LinkId),
    /// Open.
    Up(LinkId),
}

/// The message written and awaiting its reply (raw: one at a time).
struct InFlight {
    seq: MsgId,
    deadline: Instant,
}

enum Upstream {
    Raw {
        link: RawLink,
        attempt: u32,
        in_flight: Option<InFlight>,
        /// Why we closed the link ourselves (reported instead of LocalClose).
        closing: Option<CloseReason>,
    },
    Session {
        id: Option<SessionId>,
        /// Messages handed to the current session and not yet credited.
        in_session: u64,
        connected: bool,
        /// Why the last connect failed (for the reconnecting line).
        last_reason: Option<CloseReason>,
        /// Sessions ended in a row without one established (backoff attempt).
        ends: u32,
        /// When to open the next session after one ended.
        reopen_at: Option<Instant>,
    },
}

/// Everything but the node (so that events, which borrow the node, can be
/// handled while this is borrowed mutably).
struct Relay {
    o: RelayOpts,
    connect: ConnectConfig,
    ledger: Ledger,
    dedup: DedupWindow,
    pending: VecDeque<Entry>,
    spare: Vec<Entry>,
    devices: Vec<Option<(LinkId, SocketAddr)>>,
    ack_buf: Vec<u8>,
    up: Upstream,
    rng: XorShift64,
    /// MSH-10 of the keep-alive message: its replies are not unexpected.
    keepalive_id: Option<Vec<u8>>,
    /// The node's time when the current event was pulled.
    now: Instant,
    /// The earliest `reply_by` of an entry whose device waits (upstream mode).
    next_reply_by: Option<Instant>,
}

fn unspecified() -> SocketAddr {
    SocketAddr::from(([0, 0, 0, 0], 0))
}

/// The MSH segment of `msg` (up to its first line end).
fn msh_segment(msg: &[u8]) -> &[u8] {
    let end = msg
        .iter()
        .position(|&b| b == b'\r' || b == b'\n')
        .unwrap_or(msg.len());
    &msg[..end]
}

fn ack_code_of(reply: &[u8]) -> AckCode {
    match hl7::ack_code(reply) {
        Some(b"AE") | Some(b"CE") => AckCode::Error,
        Some(b"AR") | Some(b"CR") => AckCode::Reject,
        _ => AckCode::Accept,
    }
}

fn in_doubt_text(d: &InDoubt) -> String {
    match d.ids {
        Some((a, b)) => format!("{a}-{b}"),
        None => "none".to_string(),
    }
}

/// Writes an ACK for `msg` (a message or its MSH segment) into `buf`.
fn build_ack(msg: &[u8], code: AckCode, buf: &mut [u8]) -> Option<usize> {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut ts = [0u8; 14];
    let ts = hl7::timestamp_utc(secs, &mut ts);
    let n = hl7::build_ack(msg, code, ts, buf);
    if n.is_none() {
        log::warn!("ACK larger than the reply buffer: not sent");
    }
    n
}

impl Relay {
    fn is_device(&self, link: LinkId) -> bool {
        matches!(self.devices.get(link.slot() as usize), Some(Some((l, _))) if *l == link)
    }

    fn device_peer(&self, link: LinkId) -> SocketAddr {
        match self.devices.get(link.slot() as usize) {
            Some(Some((l, p))) if *l == link => *p,
            _ => unspecified(),
        }
    }

    fn mooring(&self) -> bool {
        matches!(self.up, Upstream::Session { .. })
    }

    /// A device's message. Returns the ACK to send now (its length in `ack_buf`).
    fn on_device_message(
        &mut self,
        link: LinkId,
        payload: &[u8],
        now: Instant,
    ) -> Option<(LinkId, usize)> {
        let peer = self.device_peer(link);
        let key = hl7::message_key(payload);
        Seen::Message {
            peer,
            bytes: payload.len(),
            id: key.map(|[.., id]| id),
        }
        .append_to(Line::empty())
        .print();
        let Some(key) = key else {
            let reason = if hl7::is_hl7(payload) {
                "NoControlId"
            } else {
                "NotHl7"
            };
            Line::new("event", "refused")
                .kv("peer", peer)
                .kv("bytes", payload.len())
                .kv("reason", reason)
                .print();
            return build_ack(payload, AckCode::Reject, &mut self.ack_buf).map(|n| (link, n));
        };
        let [.., id] = key;
        // A resend of a message still waiting for the upstream: the ACK it waits
        // for goes to this link.
        if self.o.ack_after == AckAfter::Upstream {
            let reply_by = self.reply_by(now);
            // Same MSH-10 first (cheap), then the same sender.
            let resent = |e: &&mut Entry| e.id == id && hl7::message_key(&e.msh) == Some(key);
            if let Some(e) = self.pending.iter_mut().find(resent) {
                e.link = Some(link);
                e.peer = peer;
                e.reply_by = reply_by;
                self.next_reply_by = earliest(self.next_reply_by, Some(e.reply_by));
                Line::new("event", "duplicate")
                    .kv("peer", peer)
                    .wire("id", Some(id))
                    .kv("pending", true)
                    .print();
                return None;
            }
        }
        if !self.dedup.first_time(&key) {
            Line::new("event", "duplicate")
                .kv("peer", peer)
                .wire("id", Some(id))
                .print();
            return build_ack(payload, AckCode::Accept, &mut self.ack_buf).map(|n| (link, n));
        }
        let seq = if self.ledger.len() < self.o.queue {
            self.ledger.push(payload).ok()
        } else {
            None
        };
        let Some(seq) = seq else {
            // Not kept: a resend is a new message.
            self.dedup.forget(&key);
            Line::new("event", "queue_full")
                .kv("peer", peer)
                .wire("id", Some(id))
                .kv("queued", self.ledger.len())
                .print();
            return build_ack(payload, AckCode::Reject, &mut self.ack_buf).map(|n| (link, n));
        };
        let mut e = self.spare.pop().unwrap_or_else(|| Entry {
            seq: 0,
            link: None,
            reply_by: now,
            peer,
            id: Vec::new(),
            msh: Vec::new(),
            received: now,
            writes: 0,
            code: AckCode::Accept,
        });
        e.seq = seq;
        e.peer = peer;
        e.id.clear();
        e.id.extend_from_slice(id);
        e.msh.clear();
        e.msh.extend_from_slice(msh_segment(payload));
        e.received = now;
        e.writes = 0;
        e.code = AckCode::Accept;
        e.link = (self.o.ack_after == AckAfter::Upstream).then_some(link);
        e.reply_by = self.reply_by(now);
        if e.link.is_some() {
            self.next_reply_by = earliest(self.next_reply_by, Some(e.reply_by));
        }
        self.pending.push_back(e);
        Line::new("event", "queued")
            .kv("peer", peer)
            .wire("id", Some(id))
            .kv("seq", seq)
            .print();
        match self.o.ack_after {
            AckAfter::Queued => {
                build_ack(payload, AckCode::Accept, &mut self.ack_buf).map(|n| (link, n))
            }
            AckAfter::Upstream => None,
        }
    }

    fn entry(&mut self, seq: MsgId) -> Option<&mut Entry> {
        let base = self.pending.front()?.seq;
        let i = seq.checked_sub(base)?;
        self.pending.get_mut(i as usize)
    }

    /// A frame from the raw upstream.
    fn on_upstream_reply(&mut self, payload: &[u8]) {
        let Upstream::Raw { in_flight, .. } = &mut self.up else {
            return;
        };
        let awaited = in_flight.as_ref().map(|f| f.seq);
        let acked = hl7::acked_control_id(payload);
        let keepalive = acked.is_some() && acked == self.keepalive_id.as_deref();
        if let Some(seq) = awaited {
            let matches = match (self.entry(seq).map(|e| e.id.as_slice()), acked) {
                (Some(sent), Some(got)) => sent == got,
                _ => true,
            };
            if keepalive && !matches {
                log::debug!("upstream answered the keep-alive message");
                return;
            }
            if matches {
                if let Some(e) = self.entry(seq) {
                    e.code = ack_code_of(payload);
                }
                if let Upstream::Raw { in_flight, .. } = &mut self.up {
                    *in_flight = None;
                }
                if self.ledger.handle_reply().is_none() {
                    log::warn!("upstream reply with nothing awaited in the ledger");
                }
                return;
            }
        } else if keepalive {
            log::debug!("upstream answered the keep-alive message");
            return;
        }
        Line::new("event", "unexpected_reply")
            .wire("id", acked)
            .wire("ack", hl7::ack_code(payload))
            .print();
    }

    /// Prints the lost line for what a dropped link (or session) left in doubt.
    fn print_lost(&self, reason: impl std::fmt::Display, d: &InDoubt) {
        Line::new("event", "upstream")
            .kv("state", "lost")
            .kv("addr", self.o.upstream)
            .kv("reason", reason)
            .kv("in_doubt", in_doubt_text(d))
            .kv("resent", d.resent)
            .kv("failed", d.failed)
            .print();
    }

    /// Raw: schedules the next connect attempt.
    fn schedule_redial(&mut self, now: Instant, reason: Option<CloseReason>) {
        let random = self.rng.next_u64();
        let Upstream::Raw { link, attempt, .. } = &mut self.up else {
            return;
        };
        let delay = self
            .o
            .backoff
            .delay(*attempt, random)
            .unwrap_or(self.o.backoff.max);
        *attempt += 1;
        *link = RawLink::Down {
            retry_at: now + delay,
        };
        let mut l = Line::new("event", "upstream")
            .kv("state", "reconnecting")
            .kv("addr", self.o.upstream);
        if let Some(r) = reason {
            l = l.kv("reason", r);
        }
        l.kv("attempt", *attempt)
            .kv("delay_ms", delay.as_millis())
            .print();
    }

    /// Handles one event; returns an ACK to send now.
    fn on_event(&mut self, ev: Event<'_>, now: Instant) -> Option<(LinkId, usize)> {
        self.now = now;
        match ev {
            Event::Connected {
                link,
                peer,
                listener: Some(_),
            } => {
                if let Some(d) = self.devices.get_mut(link.slot() as usize) {
                    *d = Some((link, peer));
                }
                Seen::Connected { peer }.append_to(Line::empty()).print();
            }
            Event::Connected {
                link,
                listener: None,
                ..
            } => {
                if let Upstream::Raw {
                    link: state,
                    attempt,
                    ..
                } = &mut self.up
                {
                    if matches!(state, RawLink::Connecting(l) if *l == link) {
                        *state = RawLink::Up(link);
                        *attempt = 0;
                        Line::new("event", "upstream")
                            .kv("state", "connected")
                            .kv("addr", self.o.upstream)
                            .print();
                    }
                }
            }
            Event::Message { link, payload } => {
                if self.is_device(link) {
                    return self.on_device_message(link, payload, now);
                }
                if matches!(&self.up, Upstream::Raw { link: RawLink::Up(l), .. } if *l == link) {
                    self.on_upstream_reply(payload);
                } else {
                    log::debug!("frame from a stale upstream link dropped");
                }
            }
            Event::Closed {
                link,
                peer,
                reason,
                peer_reason,
                ..
            } => {
                if self.is_device(link) {
                    if let Some(d) = self.devices.get_mut(link.slot() as usize) {
                        *d = None;
                    }
                    Seen::Closed {
                        peer,
                        reason,
                        peer_reason,
                    }
                    .append_to(Line::empty())
                    .print();
                    return None;
                }
                self.on_upstream_closed(link, reason, now);
            }
            Event::Rejected { peer, reason, .. } => {
                Seen::Rejected { peer, reason }
                    .append_to(Line::empty())
                    .print();
            }
            Event::SessionMessage { payload, .. } => {
                Line::new("event", "upstream_reply")
                    .wire("id", hl7::acked_control_id(payload))
                    .wire("ack", hl7::ack_code(payload))
                    .print();
            }
            Event::Session { session, note } => self.on_session_note(session, note),
            _ => {}
        }
        None
    }

    fn on_upstream_closed(&mut self, link: LinkId, reason: CloseReason, now: Instant) {
        match &mut self.up {
            Upstream::Raw {
                link: state,
                in_flight,
                closing,
                ..
            } => match *state {
                RawLink::Connecting(l) if l == link => self.schedule_redial(now, Some(reason)),
                RawLink::Up(l) if l == link => {
                    *in_flight = None;
                    let reason = closing.take().unwrap_or(reason);
                    let d = self.ledger.handle_link_lost();
                    self.print_lost(reason, &d);
                    self.schedule_redial(now, None);
                }
                _ => {}
            },
            Upstream::Session {
                connected,
                last_reason,
                id,
                ..
            } => {
                if *connected {
                    *connected = false;
                    let id = *id;
                    let mut l = Line::new("event", "upstream")
                        .kv("state", "lost")
                        .kv("addr", self.o.upstream)
                        .kv("reason", reason);
                    if let Some(u) = id.and_then(|_| self.unacked_hint()) {
                        l = l.kv("unacked", u);
                    }
                    l.print();
                } else {
                    *last_reason = Some(reason);
                }
            }
        }
    }

    /// Messages handed to the session and not yet acknowledged.
    fn unacked_hint(&self) -> Option<u64> {
        match &self.up {
            Upstream::Session { in_session, .. } => Some(*in_session),
            Upstream::Raw { .. } => None,
        }
    }

    fn on_session_note(&mut self, session: SessionId, note: SessionNote) {
        let random = self.rng.next_u64();
        let now = self.now;
        let Upstream::Session {
            id,
            in_session,
            connected,
            last_reason,
            ends,
            reopen_at,
        } = &mut self.up
        else {
            return;
        };
        if *id != Some(session) {
            return;
        }
        match note {
            SessionNote::Established { resumed, replaying } => {
                *connected = true;
                *ends = 0;
                Line::new("event", "upstream")
                    .kv("state", "connected")
                    .kv("addr", self.o.upstream)
                    .kv("resumed", resumed)
                    .kv("replaying", replaying)
                    .print();
            }
            SessionNote::Reconnecting { attempt, delay } => {
                let mut l = Line::new("event", "upstream")
                    .kv("state", "reconnecting")
                    .kv("addr", self.o.upstream);
                if let Some(r) = last_reason.take() {
                    l = l.kv("reason", r);
                }
                l.kv("attempt", attempt)
                    .kv("delay_ms", delay.as_millis())
                    .print();
            }
            SessionNote::Ended(how) => {
                let (name, undelivered) = line::end_parts(how);
                // What the session acknowledged before it ended is delivered.
                let acked = in_session.saturating_sub(undelivered);
                for _ in 0..acked {
                    let _ = self.ledger.handle_reply();
                }
                *in_session = 0;
                *connected = false;
                *id = None;
                // A new session follows, after a backoff delay: an upstream that
                // ends every session at once is not hammered.
                let delay = self
                    .o
                    .backoff
                    .delay(*ends, random)
                    .unwrap_or(self.o.backoff.max);
                *ends += 1;
                *reopen_at = Some(now + delay);
                let attempt = *ends;
                let d = self.ledger.handle_link_lost();
                self.print_lost(format_args!("Session{name}"), &d);
                Line::new("event", "upstream")
                    .kv("state", "reconnecting")
                    .kv("addr", self.o.upstream)
                    .kv("attempt", attempt)
                    .kv("delay_ms", delay.as_millis())
                    .print();
            }
        }
    }

    /// Credits what the session acknowledged since last time.
    fn credit_session(&mut self, node: &Node) {
        let Upstream::Session {
            id: Some(sid),
            in_session,
            ..
        } = &mut self.up
        else {
            return;
        };
        let Some(unacked) = node.session_unacked(*sid) else {
            return;
        };
        while *in_session > unacked {
            *in_session -= 1;
            if self.ledger.handle_reply().is_none() {
                log::warn!("session acknowledged more than the ledger awaited");
            }
        }
    }

    /// When a device whose message arrived at `now` gets MSA|AR at the latest.
    /// One millisecond more than `--response-timeout`: the clock counts whole
    /// milliseconds, and the device must never hear before the full timeout.
    fn reply_by(&self, now: Instant) -> Instant {
        now + self.o.response_timeout + Duration::from_millis(1)
    }

    /// Answers MSA|AR to each device whose message the upstream has not
    /// acknowledged within `--response-timeout` (`--ack-after upstream`). The
    /// message stays queued; a later upstream ACK is only reported.
    fn answer_overdue(&mut self, node: &mut Node, now: Instant) {
        if self.next_reply_by.is_none_or(|t| t > now) {
            return;
        }
        let mut next = None;
        for e in self.pending.iter_mut() {
            let Some(link) = e.link else { continue };
            if e.reply_by > now {
                next = earliest(next, Some(e.reply_by));
                continue;
            }
            e.link = None;
            Line::new("event", "reply_timeout")
                .kv("peer", e.peer)
                .wire("id", Some(&e.id))
                .kv("seq", e.seq)
                .kv("ack", AckCode::Reject.as_str())
                .print();
            if let Some(n) = build_ack(&e.msh, AckCode::Reject, &mut self.ack_buf) {
                send_ack(node, link, &self.ack_buf[..n], e.peer);
            }
        }
        self.next_reply_by = next;
    }

    /// Dials, times out, writes: whatever is due.
    fn drive(&mut self, node: &mut Node) {
        let now = node.now();
        self.answer_overdue(node, now);
        let upstream = self.o.upstream;
        match &mut self.up {
            Upstream::Raw {
                link,
                attempt,
                in_flight,
                closing,
            } => {
                if let RawLink::Down { retry_at } = *link {
                    if retry_at <= now {
                        Line::new("event", "upstream")
                            .kv("state", "connecting")
                            .kv("addr", upstream)
                            .kv("attempt", *attempt)
                            .print();
                        match node.connect(upstream, &self.connect) {
                            Ok(l) => *link = RawLink::Connecting(l),
                            Err(e) => {
                                log::warn!("connect to {upstream}: {e}");
                                let reason = match e {
                                    SetupError::Io(e)
                                        if e.kind() == io::ErrorKind::ConnectionRefused =>
                                    {
                                        CloseReason::ConnectionRefused
                                    }
                                    _ => CloseReason::Io,
                                };
                                self.schedule_redial(now, Some(reason));
                                return;
                            }
                        }
                    }
                }
                if let (RawLink::Up(l), Some(f)) = (&*link, in_flight.as_ref()) {
                    if f.deadline <= now {
                        log::warn!("no reply from {upstream} for message {}", f.seq);
                        *closing = Some(CloseReason::ResponseTimeout);
                        *in_flight = None;
                        node.close(*l);
                        return;
                    }
                }
                let RawLink::Up(l) = *link else { return };
                if in_flight.is_some() {
                    return;
                }
                let Some((seq, payload)) = self.ledger.poll_transmit() else {
                    return;
                };
                match node.send_request(l, payload, self.o.response_timeout) {
                    Ok(()) => {
                        self.ledger.handle_written(seq);
                        *in_flight = Some(InFlight {
                            seq,
                            deadline: now + self.o.response_timeout,
                        });
                        self.forwarded(seq);
                    }
                    Err(e) => log::debug!("upstream write deferred: {e}"),
                }
            }
            Upstream::Session { id, reopen_at, .. } => {
                let sid = match *id {
                    Some(s) => s,
                    None if reopen_at.is_some_and(|t| t > now) => return,
                    None => {
                        *reopen_at = None;
                        Line::new("event", "upstream")
                            .kv("state", "connecting")
                            .kv("addr", upstream)
                            .kv("attempt", 0)
                            .print();
                        match node.open_session(upstream, &self.connect) {
                            Ok(s) => {
                                *id = Some(s);
                                s
                            }
                            Err(e) => {
                                log::error!("cannot open a session to {upstream}: {e}");
                                return;
                            }
                        }
                    }
                };
                while let Some((seq, payload)) = self.ledger.poll_transmit() {
                    match node.session_send(sid, payload) {
                        Ok(_) => {
                            self.ledger.handle_written(seq);
                            if let Upstream::Session { in_session, .. } = &mut self.up {
                                *in_session += 1;
                            }
                            self.forwarded(seq);
                        }
                        Err(SessionError::QueueFull) => break,
                        Err(e) => {
                            log::warn!("session send: {e:?}");
                            break;
                        }
                    }
                }
            }
        }
    }

    fn forwarded(&mut self, seq: MsgId) {
        if let Some(e) = self.entry(seq) {
            e.writes += 1;
            let writes = e.writes;
            Line::new("event", "forwarded")
                .wire("id", Some(&e.id))
                .kv("seq", seq)
                .kv("attempt", writes)
                .print();
        }
    }

    /// Reports outcomes and sends the deferred ACKs.
    fn outcomes(&mut self, node: &mut Node) {
        let now = node.now();
        while let Some((seq, how)) = self.ledger.poll_outcome() {
            let Some(e) = self.pending.pop_front() else {
                log::error!("outcome for unknown message {seq}");
                continue;
            };
            if e.seq != seq {
                log::error!("outcome for {seq} but {} was oldest", e.seq);
            }
            let upstream_mode = self.o.ack_after == AckAfter::Upstream;
            let code = match how {
                Delivery::Acknowledged => {
                    let mut l = Line::new("event", "acked")
                        .wire("id", Some(&e.id))
                        .kv("seq", seq)
                        .kv("ms", now.saturating_since(e.received).as_millis());
                    if !self.mooring() {
                        l = l.kv("ack", e.code.as_str());
                    }
                    l.print();
                    e.code
                }
                _ => {
                    Line::new("event", "failed")
                        .wire("id", Some(&e.id))
                        .kv("seq", seq)
                        .kv("attempts", e.writes)
                        .kv("acked_to_device", !upstream_mode)
                        .print();
                    if upstream_mode {
                        log::warn!(
                            "message {} failed after {} attempts: device answered AR",
                            line::escape(&e.id),
                            e.writes
                        );
                    } else {
                        log::error!(
                            "message {} LOST: failed after {} attempts, the device already had AA",
                            line::escape(&e.id),
                            e.writes
                        );
                    }
                    // Not delivered: a resend is a new message.
                    if let Some(key) = hl7::message_key(&e.msh) {
                        self.dedup.forget(&key);
                    }
                    AckCode::Reject
                }
            };
            if let (true, Some(link)) = (upstream_mode, e.link) {
                if let Some(n) = build_ack(&e.msh, code, &mut self.ack_buf) {
                    send_ack(node, link, &self.ack_buf[..n], e.peer);
                }
            }
            self.spare.push(e);
        }
    }

    /// How long the next poll may wait.
    fn wait(&self, now: Instant) -> Duration {
        let mut at = self.next_reply_by;
        if let Upstream::Session {
            reopen_at: Some(t), ..
        } = &self.up
        {
            at = earliest(at, Some(*t));
        }
        if let Upstream::Raw {
            link, in_flight, ..
        } = &self.up
        {
            if let RawLink::Down { retry_at } = link {
                at = earliest(at, Some(*retry_at));
            }
            if let Some(f) = in_flight {
                at = earliest(at, Some(f.deadline));
            }
        }
        match at {
            Some(t) => t.saturating_since(now).min(MAX_WAIT),
            None => MAX_WAIT,
        }
    }
}

/// Sends a device its ACK. One refused for room (the device sends but does not
/// read its ACKs; the node holds its link meanwhile) closes the device's link
/// rather than drop the ACK unseen: the device learns the link ended and
/// resends what it holds no ACK for.
fn send_ack(node: &mut Node, link: LinkId, ack: &[u8], peer: SocketAddr) {
    match node.send(link, ack) {
        Ok(()) => {}
        Err(SendError::TxFull) => {
            log::warn!("ACK to {peer} not queued (the device is not reading): closing its link");
            node.close(link);
        }
        Err(e) => log::warn!("ACK to {peer} not sent: {e}"),
    }
}

/// Runs `mooring relay` until killed.
pub fn run(o: &RelayOpts) -> ExitCode {
    let mooring = o.liveness.protocol == Protocol::Mooring;
    let spare = o.max_conns.clamp(1, MAX_SPARE_SLOTS);
    let node_cfg = NodeConfig {
        max_links: o.max_conns.saturating_add(spare).saturating_add(2),
        framing: o.framing,
        max_sessions: if mooring { 2 } else { 0 },
        write_timeout: o.write_timeout,
        ..NodeConfig::default()
    };
    let ledger_cfg = LedgerConfig {
        capacity: o.queue,
        window: if mooring { o.queue } else { 1 },
        retries: o.retries,
        ..LedgerConfig::default()
    };
    let session = mooring.then(|| SessionConfig {
        max_depth: o.queue,
        max_depth_disconnected: o.queue,
        max_bytes: ledger_cfg.max_bytes,
        ..SessionConfig::default()
    });
    let connect = ConnectConfig {
        connect_timeout: o.connect_timeout,
        liveness: o.liveness,
        session,
        backoff: o.backoff,
        ..ConnectConfig::default()
    };
    let listen_cfg = ListenConfig {
        max_connections: o.max_conns,
        max_connections_per_ip: o.max_conns_per_ip,
        liveness: LivenessConfig {
            tcp_keepalive: o.liveness.tcp_keepalive,
            tcp_user_timeout: o.liveness.tcp_user_timeout,
            frame_timeout: o.liveness.frame_timeout,
            ..LivenessConfig::default()
        },
        ..ListenConfig::default()
    };
    let checked = node_cfg
        .validate()
        .and_then(|()| listen_cfg.validate(&node_cfg))
        .and_then(|()| connect.validate());
    if let Err(e) = checked {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    let max_frame = node_cfg.max_frame;
    let mut node = match Node::new(node_cfg) {
        Ok(n) => n,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let listener: ListenerId = match node.listen(o.listen, listen_cfg) {
        Ok(l) => l,
        Err(SetupError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: --listen {}: {e}", o.listen);
            return ExitCode::from(1);
        }
    };
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let now = node.now();
    let mut relay = Relay {
        connect,
        ledger: Ledger::new(ledger_cfg),
        dedup: DedupWindow::new(o.dedup_window),
        pending: VecDeque::with_capacity(o.queue),
        spare: Vec::with_capacity(o.queue),
        devices: vec![None; node.config().max_links],
        ack_buf: vec![0; max_frame.saturating_add(ACK_HEADROOM)],
        up: if mooring {
            Upstream::Session {
                id: None,
                in_session: 0,
                connected: false,
                last_reason: None,
                ends: 0,
                reopen_at: None,
            }
        } else {
            Upstream::Raw {
                link: RawLink::Down { retry_at: now },
                attempt: 0,
                in_flight: None,
                closing: None,
            }
        },
        rng: XorShift64::new(seed),
        keepalive_id: o
            .liveness
            .keepalive
            .and_then(|k| hl7::control_id(k.payload).map(<[u8]>::to_vec)),
        o: o.clone(),
        now,
        next_reply_by: None,
    };
    Line::new("event", "listening")
        .kv(
            "addr",
            node.local_addr(listener).unwrap_or_else(unspecified),
        )
        .print();
    line::liveness(&o.liveness).print();
    loop {
        relay.drive(&mut node);
        let wait = relay.wait(node.now());
        if let Err(e) = node.poll(Some(wait)) {
            eprintln!("error: poll failed: {e}");
            return ExitCode::from(1);
        }
        loop {
            let now = node.now();
            let Some(ev) = node.next_event() else { break };
            if let Some((link, n)) = relay.on_event(ev, now) {
                let peer = relay.device_peer(link);
                send_ack(&mut node, link, &relay.ack_buf[..n], peer);
            }
            // Outcomes may follow any event (a reply, a lost link): report them
            // in the order they happened.
            relay.credit_session(&node);
            relay.outcomes(&mut node);
        }
        relay.credit_session(&node);
        relay.outcomes(&mut node);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn p(args: &[&str]) -> Result<Parsed, UsageError> {
        let argv: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        let mut v = Verbosity::Normal;
        parse(&argv, &mut v)
    }

    #[test]
    fn flags_fill_the_options() {
        let Ok(Parsed::Run(o)) = p(&[
            "-v",
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream=127.0.0.1:2575",
            "--queue",
            "5",
            "--ack-after",
            "upstream",
            "--retries",
            "0",
            "--reconnect-min",
            "100ms",
            "--reconnect-max",
            "2s",
            "--protocol",
            "mooring",
            "--heartbeat=1s",
            "--frame-timeout",
            "2s",
            "--write-timeout",
            "3s",
        ]) else {
            panic!("not parsed")
        };
        assert_eq!(
            o.liveness.frame_timeout.map(|f| f.timeout),
            Some(Duration::from_secs(2))
        );
        assert_eq!(o.write_timeout, Duration::from_secs(3));
        assert_eq!(o.queue, 5);
        assert_eq!(o.ack_after, AckAfter::Upstream);
        assert_eq!(o.retries, 0);
        assert_eq!(o.backoff.min, Duration::from_millis(100));
        assert_eq!(o.backoff.max, Duration::from_secs(2));
        assert_eq!(o.liveness.protocol, Protocol::Mooring);
        assert!(o.liveness.heartbeat.is_some());
        assert_eq!(o.dedup_window, 10_000);
    }

    #[test]
    fn mistakes_name_the_flag() {
        let cases: &[(&[&str], &str)] = &[
            (&["relay", "--upstream", "127.0.0.1:1"], "missing --listen"),
            (&["relay", "--listen", "127.0.0.1:0"], "missing --upstream"),
            (&["relay", "--queue", "0"], "--queue: must be at least 1"),
            (&["relay", "--ack-after", "later"], "--ack-after"),
            (
                &[
                    "relay",
                    "--listen",
                    "127.0.0.1:0",
                    "--upstream",
                    "127.0.0.1:1",
                    "--heartbeat",
                    "1s",
                ],
                "--heartbeat: needs --protocol mooring",
            ),
            (&["relay", "--bogus"], "unknown flag --bogus"),
        ];
        for (args, needle) in cases {
            match p(args) {
                Err(e) => assert!(e.0.contains(needle), "{args:?}: {}", e.0),
                Ok(_) => panic!("{args:?} parsed"),
            }
        }
        assert!(matches!(p(&["relay", "--help"]), Ok(Parsed::Help)));
    }

    #[test]
    fn the_ack_for_a_stored_msh_segment_names_the_message() {
        let msg = b"MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101||ADT^A01|MSG7|P|2.5\rPID|1\r";
        let mut buf = [0u8; 512];
        let n = build_ack(msh_segment(msg), AckCode::Reject, &mut buf).unwrap();
        let ack = &buf[..n];
        assert_eq!(hl7::acked_control_id(ack), Some(&b"MSG7"[..]));
        assert_eq!(hl7::ack_code(ack), Some(&b"AR"[..]));
    }
}

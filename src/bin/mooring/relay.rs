//! `mooring relay`: flag parsing and printing around the library's relay
//! engine ([`mooring::relay::Relay`], which documents what happens to each
//! message). Local devices connect to its listener; every new message is
//! forwarded, in order, over ONE keep-open upstream link. All of it is one
//! [`Node`] on one thread; each [`RelayEvent`] is printed as one line.

use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use mooring::relay::{LostReason, Relay, RelayConfig, RelayEvent};
use mooring::session::Backoff;
use mooring::{Framing, ListenConfig, ListenerId, LivenessConfig, Node, NodeConfig, SetupError};

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

/// Spare link slots (see `listen`): closed links wait in their slots until
/// their events are pulled.
const MAX_SPARE_SLOTS: usize = 64;
/// Longest wait in one poll (deadlines wake it earlier).
const MAX_WAIT: Duration = Duration::from_secs(1);

pub use mooring::relay::AckAfter;

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

/// The relay's settings from its options.
fn relay_config(o: &RelayOpts, seed: u64) -> RelayConfig {
    RelayConfig {
        queue: o.queue,
        ack_after: o.ack_after,
        retries: o.retries,
        response_timeout: o.response_timeout,
        backoff: o.backoff,
        connect_timeout: o.connect_timeout,
        dedup_window: o.dedup_window,
        liveness: o.liveness,
        seed,
        ..RelayConfig::new(o.upstream)
    }
}

/// Prints one relay event as its line (`upstream`: the `addr=` of the
/// upstream lines).
fn print(ev: &RelayEvent<'_>, upstream: SocketAddr) {
    let up = |state: &str| {
        Line::new("event", "upstream")
            .kv("state", state)
            .kv("addr", upstream)
    };
    match *ev {
        RelayEvent::DeviceConnected { peer } => {
            Seen::Connected { peer }.append_to(Line::empty()).print()
        }
        RelayEvent::DeviceMessage { peer, bytes, id } => Seen::Message { peer, bytes, id }
            .append_to(Line::empty())
            .print(),
        RelayEvent::Refused {
            peer,
            bytes,
            reason,
        } => Line::new("event", "refused")
            .kv("peer", peer)
            .kv("bytes", bytes)
            .kv("reason", reason.as_str())
            .print(),
        RelayEvent::Duplicate { peer, id, pending } => {
            let l = Line::new("event", "duplicate")
                .kv("peer", peer)
                .wire("id", Some(id));
            if pending { l.kv("pending", true) } else { l }.print()
        }
        RelayEvent::QueueFull { peer, id, queued } => Line::new("event", "queue_full")
            .kv("peer", peer)
            .wire("id", Some(id))
            .kv("queued", queued)
            .print(),
        RelayEvent::Queued { peer, id, seq } => Line::new("event", "queued")
            .kv("peer", peer)
            .wire("id", Some(id))
            .kv("seq", seq)
            .print(),
        RelayEvent::ReplyTimeout { peer, id, seq, ack } => Line::new("event", "reply_timeout")
            .kv("peer", peer)
            .wire("id", Some(id))
            .kv("seq", seq)
            .kv("ack", ack.as_str())
            .print(),
        RelayEvent::DeviceClosed {
            peer,
            reason,
            peer_reason,
        } => Seen::Closed {
            peer,
            reason,
            peer_reason,
        }
        .append_to(Line::empty())
        .print(),
        RelayEvent::Rejected { peer, reason } => Seen::Rejected { peer, reason }
            .append_to(Line::empty())
            .print(),
        RelayEvent::UpstreamConnecting { attempt } => {
            up("connecting").kv("attempt", attempt).print()
        }
        RelayEvent::UpstreamConnected { session: None } => up("connected").print(),
        RelayEvent::UpstreamConnected {
            session: Some((resumed, replaying)),
        } => up("connected")
            .kv("resumed", resumed)
            .kv("replaying", replaying)
            .print(),
        RelayEvent::UpstreamLost {
            reason,
            in_doubt,
            resent,
            failed,
        } => {
            let l = up("lost");
            let l = match reason {
                LostReason::Link(r) => l.kv("reason", r),
                LostReason::Session(how) => {
                    l.kv("reason", format_args!("Session{}", line::end_parts(how).0))
                }
            };
            let in_doubt = match in_doubt {
                Some((a, b)) => format!("{a}-{b}"),
                None => "none".to_string(),
            };
            l.kv("in_doubt", in_doubt)
                .kv("resent", resent)
                .kv("failed", failed)
                .print()
        }
        RelayEvent::UpstreamLinkLost { reason, unacked } => {
            let l = up("lost").kv("reason", reason);
            match unacked {
                Some(u) => l.kv("unacked", u),
                None => l,
            }
            .print()
        }
        RelayEvent::UpstreamReconnecting {
            reason,
            attempt,
            delay,
        } => {
            let l = up("reconnecting");
            match reason {
                Some(r) => l.kv("reason", r),
                None => l,
            }
            .kv("attempt", attempt)
            .kv("delay_ms", delay.as_millis())
            .print()
        }
        RelayEvent::Forwarded { id, seq, attempt } => Line::new("event", "forwarded")
            .wire("id", Some(id))
            .kv("seq", seq)
            .kv("attempt", attempt)
            .print(),
        RelayEvent::Acked {
            id,
            seq,
            elapsed,
            ack,
        } => {
            let l = Line::new("event", "acked")
                .wire("id", Some(id))
                .kv("seq", seq)
                .kv("ms", elapsed.as_millis());
            match ack {
                Some(a) => l.kv("ack", a.as_str()),
                None => l,
            }
            .print()
        }
        RelayEvent::UnexpectedReply { id, ack } => Line::new("event", "unexpected_reply")
            .wire("id", id)
            .wire("ack", ack)
            .print(),
        RelayEvent::UpstreamReply { id, ack } => Line::new("event", "upstream_reply")
            .wire("id", id)
            .wire("ack", ack)
            .print(),
        RelayEvent::Failed {
            id,
            seq,
            attempts,
            acked_to_device,
        } => Line::new("event", "failed")
            .wire("id", Some(id))
            .kv("seq", seq)
            .kv("attempts", attempts)
            .kv("acked_to_device", acked_to_device)
            .print(),
    }
}

/// Runs `mooring relay` until killed.
pub fn run(o: &RelayOpts) -> ExitCode {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let cfg = relay_config(o, seed);
    let spare = o.max_conns.clamp(1, MAX_SPARE_SLOTS);
    let node_cfg = NodeConfig {
        max_links: o.max_conns.saturating_add(spare).saturating_add(2),
        framing: o.framing,
        max_sessions: cfg.node_sessions(),
        write_timeout: o.write_timeout,
        ..NodeConfig::default()
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
        .and_then(|()| cfg.connect_config().validate());
    if let Err(e) = checked {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
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
    let mut relay = match Relay::new(cfg, &node) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    Line::new("event", "listening")
        .kv(
            "addr",
            node.local_addr(listener)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        )
        .print();
    line::liveness(&o.liveness).print();
    let upstream = o.upstream;
    let mut out = |ev: RelayEvent<'_>| print(&ev, upstream);
    loop {
        if let Err(e) = relay.turn(&mut node, MAX_WAIT, &mut out) {
            eprintln!("error: poll failed: {e}");
            return ExitCode::from(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use mooring::Protocol;

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
}

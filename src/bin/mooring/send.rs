//! `mooring send`: splits a file of HL7 messages and sends them one by one with a
//! [`Client`], one line per reply, error or retry, and a summary; with `--hold`,
//! keeps the link open and idle afterwards (heartbeats go on) and reports a close.
//!
//! With `--session` the messages go through one reliable session of a [`Node`]
//! driven here: they are queued without waiting for replies (as far as the
//! session's queue allows), and the replies come back in order, one per message,
//! across lost links and resumes.

use std::collections::VecDeque;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mooring::internals::rng::XorShift64;
use mooring::internals::wire;
use mooring::session::{Backoff, SessionConfig, SessionEnd, SessionError};
use mooring::{
    hl7, Client, ClientConfig, ClientPolicy, CloseReason, ConnectConfig, Event, Node, NodeConfig,
    RequestError, SessionId, SessionNote, SetupError,
};

use crate::args::{SendOpts, ServiceOpts};
use crate::line::Line;
use crate::service::Service;

/// Pauses between retries, by the library's one [`Backoff`]: a refused
/// connection or a restarting server is not fixed by hammering it. Retry `n`
/// (from 1) waits a random time up to `200 ms x 2^(n-1)`, at most 2 s (full
/// jitter: senders restarted together do not retry in lockstep), so a script
/// never hangs long.
const RETRY_BACKOFF: Backoff = Backoff {
    min: Duration::from_millis(200),
    max: Duration::from_secs(2),
    max_attempts: None,
};

/// The pause before retry number `attempt` (from 1), jittered by `rng`.
fn retry_pause(attempt: u32, rng: &mut XorShift64) -> Duration {
    RETRY_BACKOFF
        .delay(attempt.saturating_sub(1), rng.next_u64())
        .unwrap_or(RETRY_BACKOFF.max)
}

/// A jitter source seeded from the time of day (spread, not secrecy).
fn jitter_source() -> XorShift64 {
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    XorShift64::new(seed)
}

/// The exit for a node or client that could not be set up: 2 for a
/// configuration the user can fix, 1 for an OS refusal.
fn setup_failed(e: SetupError) -> ExitCode {
    eprintln!("error: {e}");
    ExitCode::from(if matches!(e, SetupError::Config(_)) {
        2
    } else {
        1
    })
}

/// Runs `mooring send`.
pub fn run(o: &SendOpts, svc: &ServiceOpts) -> ExitCode {
    if let Some(scfg) = o.session {
        return run_session(o, scfg, svc);
    }
    let cfg = ClientConfig {
        node: NodeConfig {
            max_links: 2,
            framing: o.framing,
            max_frame: o.max_frame,
            write_timeout: o.write_timeout,
            ..NodeConfig::default()
        },
        connect: ConnectConfig {
            connect_timeout: o.connect_timeout,
            idle_timeout: None,
            liveness: o.liveness.clone(),
            #[cfg(feature = "tls")]
            tls: o.tls.clone(),
            ..ConnectConfig::default()
        },
        policy: if o.close_each {
            ClientPolicy::ClosePerMessage
        } else {
            ClientPolicy::KeepOpen
        },
        response_timeout: o.response_timeout,
        correlate_hl7: o.correlate,
        // `--retries` is handled here (with pauses and event=retry lines), so the
        // library's own retries stay at their default.
        ..ClientConfig::default()
    };
    let mut client = match Client::new(o.addr, cfg) {
        Ok(c) => c,
        Err(e) => return setup_failed(e),
    };
    let Some(mut service) = catch_signals(client.node(), svc) else {
        return ExitCode::from(1);
    };
    crate::line::liveness(&o.liveness).print();
    let messages = match crate::input::load_messages(&o.input, o.batch_as_frame) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let (mut replied, mut failed, mut rejected) = (0u64, 0u64, 0u64);
    // On SIGTERM/SIGINT: the message in flight gets its reply (or its
    // timeout), the rest is not sent.
    let mut sent = messages.len();
    for (i, msg) in messages.iter().enumerate() {
        if service.after_turn(client.node()).is_some() {
            sent = i;
            break;
        }
        if let (Some(pace), true) = (o.pace, i > 0) {
            // Heartbeats go on meanwhile; a close is found (and the link
            // reopened) by the next request.
            if let Some(reason) = client.maintain(pace) {
                log::debug!("link closed while pacing: {reason}");
            }
        }
        let n = i + 1;
        let id = hl7::control_id(msg);
        match send_one(&mut client, o.addr, msg, n, id, o.retries) {
            Some(reply_rejected) => {
                replied += 1;
                rejected += u64::from(reply_rejected);
            }
            None => failed += 1,
        }
    }
    if let (Some(hold), false) = (o.hold, service.is_stopping()) {
        // Idle on purpose: heartbeats and keep-alive messages keep the link, and
        // a dead peer is noticed within the detection bound. Nothing to hold when
        // no link is open (--close-each, or the last message failed).
        let closed = client.maintain(hold);
        tls_lines(&mut client, o.addr);
        if let Some(reason) = closed {
            Line::new("event", "closed")
                .kv("reason", reason)
                .kv_opt("peer_reason", client.last_peer_reason())
                .print();
        }
    }
    let stats = client.stats();
    let unsent = messages.len() - sent;
    if service.is_stopping() {
        service.stopped_line(true).kv("unsent", unsent).print();
    }
    Line::new("event", "summary")
        .kv("sent", sent)
        .kv("replied", replied)
        .kv("failed", failed)
        .kv("resends", stats.resends)
        .kv("unexpected", stats.unexpected_replies)
        .kv("rejected", rejected)
        .print();
    exit_code(failed == 0 && unsent == 0 && !messages.is_empty(), rejected)
}

/// SIGTERM and SIGINT for `send` (`None`, with the error printed, when they
/// cannot be caught).
fn catch_signals(node: &mut Node, svc: &ServiceOpts) -> Option<Service> {
    match Service::new(node, svc) {
        Ok(s) => Some(s),
        Err(e) => {
            eprintln!("error: cannot catch signals: {e}");
            None
        }
    }
}

/// Exit status when some reply rejected its message (AR, AE, CR or CE) and
/// nothing else failed: the peer answered, but did not take everything.
/// Distinct from 1 (run-time failure) and 2 (usage) so that a script can tell
/// "rejected" from "not delivered".
pub const EXIT_REJECTED: u8 = 3;

/// The exit for a run: 1 unless `delivered` (every message answered), then 3
/// when any answer was a rejection, else 0.
fn exit_code(delivered: bool, rejected: u64) -> ExitCode {
    match (delivered, rejected) {
        (false, _) => ExitCode::from(1),
        (true, 0) => ExitCode::SUCCESS,
        (true, _) => ExitCode::from(EXIT_REJECTED),
    }
}

/// True when `reply` is an HL7 ACK refusing its message: MSA-1 `AR`, `AE`
/// (application reject/error) or `CR`, `CE` (their commit-level forms).
fn is_rejection(reply: &[u8]) -> bool {
    matches!(hl7::ack_code(reply), Some(b"AR" | b"AE" | b"CR" | b"CE"))
}

/// How the link closed, for errors that are a close (`IncompleteResponse`,
/// `Closed`): `TcpTimeout`, `HeartbeatTimeout`, `PeerClosed`...
fn close_reason(e: &RequestError) -> Option<CloseReason> {
    match *e {
        RequestError::IncompleteResponse { reason, .. } | RequestError::Closed(reason) => {
            Some(reason)
        }
        _ => None,
    }
}

/// TLS: prints `event=tls` for a handshake the client completed since the
/// last call, and `event=closed peer=ADDR reason=Tls... detail=...` for a
/// TLS failure (the error or retry line that follows names the reason too).
#[cfg(feature = "tls")]
fn tls_lines(client: &mut Client, addr: std::net::SocketAddr) {
    if let Some((peer, h)) = client.take_tls_handshake() {
        crate::line::tls(Line::empty(), peer, &h).print();
    }
    if let Some(e) = client.take_tls_error() {
        Line::new("event", "closed")
            .kv("peer", addr)
            .kv("reason", CloseReason::from(e.reason))
            .wire("detail", Some(e.detail.as_bytes()))
            .print();
    }
}

/// Without TLS there is nothing to report.
#[cfg(not(feature = "tls"))]
fn tls_lines(_: &mut Client, _: std::net::SocketAddr) {}

/// Sends one message, retrying up to `retries` times; prints its lines.
/// `Some(rejected)` when it got a reply (`rejected`: the reply refused it, see
/// [`is_rejection`]), `None` when it got none.
fn send_one(
    client: &mut Client,
    addr: std::net::SocketAddr,
    msg: &[u8],
    n: usize,
    id: Option<&[u8]>,
    retries: u32,
) -> Option<bool> {
    let mut attempt = 0;
    let mut rng = jitter_source();
    loop {
        let started = Instant::now();
        // The reply's line is built while the reply is borrowed, and printed
        // after the TLS lines of the link it came on.
        let res = client.request(msg).map(|reply| {
            let line = Line::new("event", "reply")
                .kv("n", n)
                .wire("id", id)
                .wire("ack", hl7::ack_code(reply))
                .kv("bytes", reply.len())
                .kv("ms", started.elapsed().as_millis());
            (line, is_rejection(reply))
        });
        tls_lines(client, addr);
        let err = match res {
            Ok((line, rejected)) => {
                line.print();
                return Some(rejected);
            }
            Err(e) => e,
        };
        log::debug!("message {n}: {err}");
        // A frame too large for the link will be too large on every attempt.
        if attempt >= retries || err == RequestError::FrameTooLarge {
            Line::new("event", "error")
                .kv("n", n)
                .wire("id", id)
                .kv("error", err.as_str())
                .kv_opt("reason", close_reason(&err))
                .print();
            return None;
        }
        attempt += 1;
        Line::new("event", "retry")
            .kv("n", n)
            .kv("attempt", attempt)
            .kv("error", err.as_str())
            .kv_opt("reason", close_reason(&err))
            .print();
        std::thread::sleep(retry_pause(attempt, &mut rng));
    }
}

/// The `error=` name for messages left without a reply when the session ended.
fn end_error(how: SessionEnd) -> &'static str {
    match how {
        SessionEnd::Lost { .. } => "SessionLost",
        SessionEnd::Expired { .. } => "SessionExpired",
        SessionEnd::QueueFull { .. } => "QueueFull",
        SessionEnd::Evicted { .. } => "Evicted",
        SessionEnd::Closed => "SessionClosed",
    }
}

/// An `event=error` line for message `i` (0-based).
fn error_line(messages: &[Vec<u8>], i: usize, error: &str) {
    Line::new("event", "error")
        .kv("n", i + 1)
        .wire("id", hl7::control_id(&messages[i]))
        .kv("error", error)
        .print();
}

/// One reliable session carrying a file of messages.
struct Stream<'m> {
    node: Node,
    session: SessionId,
    messages: &'m [Vec<u8>],
    correlate: bool,
    /// Messages queued on the session and not yet answered (index, when queued),
    /// in order: replies come back in this order.
    waiting: VecDeque<(usize, Instant)>,
    /// The next message to queue.
    next: usize,
    replied: u64,
    failed: u64,
    /// Replies that refused their message (see [`is_rejection`]).
    rejected: u64,
    unexpected: u64,
    /// Our messages sent again on resumed links.
    resends: u64,
    /// When the last reply arrived (or the stream started).
    last_reply: Instant,
    /// How the session ended, if it did.
    ended: Option<SessionEnd>,
    /// The text of a TLS failure, for the `Closed` line that follows it.
    tls_detail: Option<String>,
}

impl Stream<'_> {
    /// Handles every event the node has, printing lines.
    fn drain(&mut self) {
        while let Some(ev) = self.node.next_event() {
            match ev {
                Event::SessionMessage { payload, .. } => {
                    let Some((i, queued)) = self.waiting.pop_front() else {
                        log::warn!("a reply with no message waiting for it");
                        self.unexpected += 1;
                        continue;
                    };
                    let id = hl7::control_id(&self.messages[i]);
                    let acked = hl7::acked_control_id(payload);
                    if self.correlate && acked.is_some() && id.is_some() && acked != id {
                        Line::new("event", "error")
                            .kv("n", i + 1)
                            .wire("id", id)
                            .kv("error", "WrongReply")
                            .wire("acked", acked)
                            .print();
                        self.failed += 1;
                    } else {
                        Line::new("event", "reply")
                            .kv("n", i + 1)
                            .wire("id", id)
                            .wire("ack", hl7::ack_code(payload))
                            .kv("bytes", payload.len())
                            .kv("ms", queued.elapsed().as_millis())
                            .print();
                        self.replied += 1;
                        self.rejected += u64::from(is_rejection(payload));
                    }
                    self.last_reply = Instant::now();
                }
                Event::Session { note, .. } => {
                    crate::line::session_note(
                        Line::new("event", "session").kv("session", 1),
                        &note,
                    )
                    .print();
                    match note {
                        // On the first link "replaying" counts messages queued before it.
                        SessionNote::Established {
                            resumed: true,
                            replaying,
                        } => self.resends += replaying,
                        SessionNote::Established { .. } => {}
                        SessionNote::Ended(how) => self.ended = Some(how),
                        SessionNote::Reconnecting { .. } => {}
                    }
                }
                Event::Closed {
                    reason,
                    peer_reason,
                    ..
                } => {
                    Line::new("event", "closed")
                        .kv("reason", reason)
                        .kv_opt("peer_reason", peer_reason)
                        .wire(
                            "detail",
                            self.tls_detail.take().as_deref().map(str::as_bytes),
                        )
                        .print();
                }
                #[cfg(feature = "tls")]
                Event::TlsEstablished {
                    peer, handshake, ..
                } => crate::line::tls(Line::empty(), peer, handshake).print(),
                #[cfg(feature = "tls")]
                Event::TlsFailed { error, .. } => self.tls_detail = Some(error.detail.clone()),
                _ => {}
            }
        }
    }

    /// Polls up to `wait` and handles what came. False when polling failed.
    fn turn(&mut self, wait: Duration) -> bool {
        if let Err(e) = self.node.poll(Some(wait)) {
            eprintln!("error: poll failed: {e}");
            return false;
        }
        self.drain();
        true
    }

    /// Queues every due message the session takes; true when the session's
    /// queue is full (the rest waits for acknowledgements).
    fn queue_due(&mut self, pace: Option<Duration>, next_at: &mut Instant) -> bool {
        let max_payload = self
            .node
            .config()
            .max_frame
            .saturating_sub(wire::data_header(0).len());
        while self.next < self.messages.len() && Instant::now() >= *next_at {
            let i = self.next;
            let msg = &self.messages[i];
            if msg.len() > max_payload {
                error_line(self.messages, i, "FrameTooLarge");
                self.failed += 1;
                self.next += 1;
                continue;
            }
            match self.node.session_send(self.session, msg) {
                Ok(_) => {
                    let now = Instant::now();
                    self.waiting.push_back((i, now));
                    self.next += 1;
                    if let Some(p) = pace {
                        *next_at = now + p;
                    }
                }
                Err(SessionError::QueueFull) => return true,
                Err(SessionError::TooLarge) => {
                    error_line(self.messages, i, "FrameTooLarge");
                    self.failed += 1;
                    self.next += 1;
                }
                Err(SessionError::Unframeable) => {
                    error_line(self.messages, i, "Unframeable");
                    self.failed += 1;
                    self.next += 1;
                }
                // The session ended: its note is among the next events.
                Err(SessionError::Ended) => return false,
                // A refusal added later: this message fails by its name.
                Err(e) => {
                    error_line(self.messages, i, &format!("{e:?}"));
                    self.failed += 1;
                    self.next += 1;
                }
            }
        }
        false
    }
}

/// Runs `mooring send --session`.
fn run_session(o: &SendOpts, scfg: SessionConfig, svc: &ServiceOpts) -> ExitCode {
    let node_cfg = NodeConfig {
        max_links: 2,
        framing: o.framing,
        max_frame: o.max_frame,
        max_sessions: 1,
        write_timeout: o.write_timeout,
        ..NodeConfig::default()
    };
    let connect = ConnectConfig {
        connect_timeout: o.connect_timeout,
        idle_timeout: None,
        liveness: o.liveness.clone(),
        session: Some(scfg),
        backoff: o.backoff,
        redial: false,
        #[cfg(feature = "tls")]
        tls: o.tls.clone(),
    };
    let mut node = match Node::new(node_cfg) {
        Ok(n) => n,
        Err(e) => return setup_failed(e),
    };
    if let Err(e) = connect.validate() {
        eprintln!("error: {e}");
        return ExitCode::from(2);
    }
    crate::line::liveness(&o.liveness).print();
    let messages = match crate::input::load_messages(&o.input, o.batch_as_frame) {
        Ok(m) => m,
        Err(code) => return code,
    };
    let session = match node.open_session(o.addr, &connect) {
        Ok(s) => s,
        Err(e) => return setup_failed(e),
    };
    let Some(mut service) = catch_signals(&mut node, svc) else {
        return ExitCode::from(1);
    };
    let started = Instant::now();
    let mut s = Stream {
        node,
        session,
        messages: &messages,
        correlate: o.correlate,
        waiting: VecDeque::new(),
        next: 0,
        replied: 0,
        failed: 0,
        rejected: 0,
        unexpected: 0,
        resends: 0,
        last_reply: started,
        ended: None,
        tls_detail: None,
    };
    let mut next_at = started;
    let mut timed_out = false;
    // On SIGTERM/SIGINT nothing more is queued; the replies to what was sent
    // are awaited up to --shutdown-timeout.
    let mut stop_by = None;
    while s.ended.is_none()
        && ((s.next < messages.len() && stop_by.is_none()) || !s.waiting.is_empty())
    {
        if service.after_turn(&mut s.node).is_some() {
            stop_by = Some(Instant::now() + svc.shutdown_timeout);
        }
        if stop_by.is_some_and(|t| t <= Instant::now()) {
            break;
        }
        let full = stop_by.is_some() || s.queue_due(o.pace, &mut next_at);
        let now = Instant::now();
        // The next reply is due within --response-timeout of its message being
        // queued or of the previous reply, whichever is later.
        let reply_due = s
            .waiting
            .front()
            .map(|&(_, at)| at.max(s.last_reply) + o.response_timeout);
        if reply_due.is_some_and(|d| d <= now) {
            timed_out = true;
            break;
        }
        let mut wait = reply_due.map_or(o.response_timeout, |d| d - now);
        if !full && s.next < messages.len() {
            wait = wait.min(next_at.saturating_duration_since(now));
        }
        if !s.turn(service.max_wait(wait)) {
            return ExitCode::from(1);
        }
    }
    let sent = s.next;
    // Every message without a reply is reported, once.
    let why = match s.ended {
        Some(how) => Some(end_error(how)),
        None if timed_out => Some("ResponseTimeout"),
        None if !s.waiting.is_empty() => Some("Stopped"),
        None => None,
    };
    if let Some(why) = why {
        let unanswered: Vec<usize> = s
            .waiting
            .drain(..)
            .map(|(i, _)| i)
            // Stopped by a signal: what was not sent is counted as unsent.
            .chain(
                if stop_by.is_some() {
                    messages.len()
                } else {
                    s.next
                }..messages.len(),
            )
            .collect();
        for i in unanswered {
            error_line(&messages, i, why);
            s.failed += 1;
        }
        s.next = messages.len();
    }
    if let (Some(hold), None, false) = (o.hold, s.ended, service.is_stopping()) {
        // Idle on purpose: heartbeats go on, a lost link is resumed; the
        // session ending ends the hold.
        let until = Instant::now() + hold;
        while s.ended.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !s.turn(left) {
                break;
            }
        }
    }
    if s.ended.is_none() {
        // Let our batched acknowledgement of the last replies go out (it is
        // due within the session's ACK delay), then close.
        let until = Instant::now() + scfg.ack_delay.saturating_mul(2);
        while s.ended.is_none() {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() || !s.turn(left) {
                break;
            }
        }
        s.node.close_session(s.session);
        // The session's end (Closed) is reported; our own close of its link is not.
        while let Some(ev) = s.node.next_event() {
            if let Event::Session { note, .. } = ev {
                crate::line::session_note(Line::new("event", "session").kv("session", 1), &note)
                    .print();
            }
        }
    }
    let unsent = messages.len() - sent;
    if service.is_stopping() {
        service
            .stopped_line(s.failed == 0)
            .kv("unsent", unsent)
            .print();
    }
    Line::new("event", "summary")
        .kv("sent", sent)
        .kv("replied", s.replied)
        .kv("failed", s.failed)
        .kv("resends", s.resends)
        .kv("unexpected", s.unexpected)
        .kv("rejected", s.rejected)
        .print();
    // A session that ended during --hold, after every reply, does not count.
    exit_code(
        s.failed == 0 && unsent == 0 && s.replied == messages.len() as u64 && !messages.is_empty(),
        s.rejected,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn retry_pauses_are_the_library_backoff_jittered_up_to_a_doubling_ceiling() {
        let mut rng = XorShift64::new(7);
        for attempt in 1..=12u32 {
            let ceiling = Duration::from_millis(200 << (attempt - 1)).min(Duration::from_secs(2));
            let pauses: Vec<Duration> = (0..200).map(|_| retry_pause(attempt, &mut rng)).collect();
            assert!(
                pauses.iter().all(|p| *p <= ceiling),
                "retry {attempt}: a pause above {ceiling:?}"
            );
            // Full jitter: pauses spread over the range instead of one fixed
            // value per attempt, and reach into its upper half.
            let distinct: std::collections::BTreeSet<_> = pauses.iter().collect();
            assert!(distinct.len() > 20, "retry {attempt}: {distinct:?}");
            assert!(pauses.iter().any(|p| *p > ceiling / 2), "retry {attempt}");
        }
        assert!(retry_pause(u32::MAX, &mut rng) <= Duration::from_secs(2));
    }
}

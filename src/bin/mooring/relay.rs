//! `mooring relay`: flag parsing and printing around the library's relay
//! engine ([`mooring::relay::Relay`], which documents what happens to each
//! message). Local devices connect to its listener; every new message is
//! forwarded, in order, over ONE keep-open upstream link. All of it is one
//! [`Node`] on one thread; each [`RelayEvent`] is printed as one line.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::process::ExitCode;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mooring::metrics::{MetricsServer, RelaySnapshot, RelayTally, Snapshot};
use mooring::relay::{
    DeviceSide, LostReason, Pressure, Relay, RelayConfig, RelayEvent, StartError, Started,
    SwitchReason,
};

/// The upstream messages go to, for the `addr=` and `active=` of the upstream
/// lines: the primary at start, then as `event=upstream state=switched` says.
#[derive(Clone, Copy)]
struct Active {
    addr: SocketAddr,
    /// Its position in the `--upstream` list (0: the primary).
    index: usize,
}
use mooring::spool::SpoolError;
use mooring::Node;

use crate::args::{RelayOpts, ServiceOpts};
use crate::line::{self, Line};
use crate::listen::Seen;
use crate::service::Service;

/// Longest wait in one poll (deadlines wake it earlier).
const MAX_WAIT: Duration = Duration::from_secs(1);

/// The relay's settings from its options, its backoff jitter seeded with `seed`.
fn relay_config(o: &RelayOpts, seed: u64) -> RelayConfig {
    RelayConfig {
        seed,
        ..o.relay.clone()
    }
}

/// Unexpected upstream replies (a peer that repeats old ACKs sends thousands),
/// counted per interval: the first of an interval prints its
/// `event=unexpected_reply` line (so scripts still see one), the rest are
/// counted, and when the interval is over one
/// `event=unexpected_replies count=N interval_s=S` line gives how many came in
/// it (N includes the first; printed only when more than one came).
pub struct ReplyFlood {
    interval: Duration,
    /// When the current interval started (its first reply), if one is open.
    since: Option<Instant>,
    /// Replies in the current interval.
    count: u64,
}

impl ReplyFlood {
    /// Counting per `interval`.
    pub fn new(interval: Duration) -> Self {
        ReplyFlood {
            interval,
            since: None,
            count: 0,
        }
    }

    /// One unexpected reply at `now`: true when its own line is to be printed.
    pub fn admit(&mut self, now: Instant) -> bool {
        self.flush(now);
        self.count = self.count.saturating_add(1);
        if self.since.is_none() {
            self.since = Some(now);
            return true;
        }
        false
    }

    /// Closes an interval that is over at `now`: its summary, when more than
    /// the first reply came (`None` otherwise).
    pub fn take_summary(&mut self, now: Instant) -> Option<u64> {
        let since = self.since?;
        if now.saturating_duration_since(since) < self.interval {
            return None;
        }
        let count = std::mem::take(&mut self.count);
        self.since = None;
        Some(count).filter(|&c| c > 1)
    }

    /// Prints the summary of an interval that is over.
    pub fn flush(&mut self, now: Instant) {
        if let Some(count) = self.take_summary(now) {
            Line::new("event", "unexpected_replies")
                .kv("count", count)
                .kv("interval_s", self.interval.as_secs())
                .print();
        }
    }
}

/// Prints one relay event as its line (`active`: the upstream of the
/// upstream lines, updated on a switch; `flood`: the unexpected replies'
/// counter; `details`: the text of a device's TLS failure, kept for the
/// close line that follows it).
fn print(
    ev: &RelayEvent<'_>,
    active: &mut Active,
    flood: &mut ReplyFlood,
    details: &mut HashMap<SocketAddr, String>,
) {
    if let RelayEvent::UpstreamSwitched { to, active: i, .. } = *ev {
        *active = Active { addr: to, index: i };
    }
    let upstream = active.addr;
    let index = active.index;
    let up_at = |state: &str, addr: SocketAddr| {
        Line::new("event", "upstream")
            .kv("state", state)
            .kv("addr", addr)
            .kv("active", index)
    };
    let up = |state: &str| up_at(state, upstream);
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
            detail: details.remove(&peer).as_deref(),
        }
        .append_to(Line::empty())
        .print(),
        #[cfg(feature = "tls")]
        RelayEvent::Tls {
            peer, handshake, ..
        } => line::tls(Line::empty(), peer, handshake).print(),
        // A device's failure text goes on its close line; the upstream's
        // close is its lost/reconnecting lines, so it gets a line of its own.
        #[cfg(feature = "tls")]
        RelayEvent::TlsFailed {
            peer,
            upstream: false,
            error,
        } => {
            details.insert(peer, error.detail.clone());
        }
        #[cfg(feature = "tls")]
        RelayEvent::TlsFailed {
            peer,
            upstream: true,
            error,
        } => Line::new("event", "closed")
            .kv("peer", peer)
            .kv("reason", mooring::CloseReason::from(error.reason))
            .wire("detail", Some(error.detail.as_bytes()))
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
                LostReason::NoSessions => l.kv("reason", "NoSessions"),
                LostReason::ReplyOutOfOrder => l.kv("reason", "ReplyOutOfOrder"),
                LostReason::Failover => l.kv("reason", "Failover"),
            };
            let in_doubt = match in_doubt {
                Some((a, b)) => format!("{a}-{b}"),
                None => "none".to_string(),
            };
            let l = l
                .kv("in_doubt", in_doubt)
                .kv("resent", resent)
                .kv("failed", failed);
            if matches!(reason, LostReason::NoSessions) {
                log::warn!(
                    "upstream {upstream} keeps no sessions: start it with --session \
                     (mooring listen --protocol mooring --session), or use --protocol raw"
                );
                l.kv("hint", "start_the_upstream_with_--session").print()
            } else {
                l.print()
            }
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
        RelayEvent::ReplyOutOfOrder { expected, id } => Line::new("event", "reply_out_of_order")
            .wire("expected", Some(expected))
            .wire("id", Some(id))
            .print(),
        RelayEvent::PrimaryProbe { addr, attempt } => {
            up_at("probing", addr).kv("attempt", attempt).print()
        }
        RelayEvent::PrimaryAnswered { addr } => up_at("primary_answered", addr).print(),
        RelayEvent::UpstreamSwitched { from, reason, .. } => {
            let l = up("switched")
                .kv("from", from)
                .kv("reason", reason.as_str());
            match reason {
                SwitchReason::Failover { failures } => l.kv("failures", failures),
                _ => l,
            }
            .print()
        }
        RelayEvent::UnexpectedReply { id, ack } => {
            if flood.admit(Instant::now()) {
                Line::new("event", "unexpected_reply")
                    .wire("id", id)
                    .wire("ack", ack)
                    .print()
            }
        }
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
        RelayEvent::SpoolOpened {
            dir,
            size,
            recovered,
            corrupt,
        } => Line::new("event", "spool")
            .kv("dir", dir.display())
            .kv("size", size)
            .kv("recovered", recovered)
            .kv("corrupt", corrupt)
            .print(),
        RelayEvent::SpoolPressure {
            state,
            used,
            records,
        } => {
            let l = Line::new("event", "spool_pressure").kv("state", state.as_str());
            match state {
                Pressure::DiskError(e) => l.kv("cause", spool_cause(e)),
                _ => l,
            }
            .kv("used", used)
            .kv("records", records)
            .print()
        }
        RelayEvent::SpoolRefused { peer, id, cause } => {
            let l = Line::new("event", "spool_refused")
                .kv("peer", peer)
                .wire("id", Some(id))
                .kv("reason", cause.as_str());
            match cause {
                Pressure::DiskError(e) => l.kv("cause", spool_cause(e)),
                _ => l,
            }
            .print()
        }
        RelayEvent::SpoolSession {
            resumed,
            session,
            possible_duplicates,
        } => Line::new("event", "spool_session")
            .kv("state", if resumed { "resumed" } else { "new" })
            .kv("session", session)
            .kv("possible_duplicates", possible_duplicates)
            .print(),
    }
}

/// A disk error's name for `cause=` (ENOSPC, EIO, or the OS error number).
fn spool_cause(e: SpoolError) -> String {
    match e {
        SpoolError::NoSpace => "ENOSPC".to_string(),
        SpoolError::Io { errno: Some(5), .. } => "EIO".to_string(),
        SpoolError::Io { errno: Some(n), .. } => format!("errno_{n}"),
        SpoolError::Io { kind, .. } => format!("{kind:?}"),
        e => format!("{e:?}"),
    }
}

/// Runs `mooring relay` until SIGTERM or SIGINT (then a graceful shutdown:
/// the spool synced, the replies due written, `event=stopped`).
pub fn run(o: &RelayOpts, svc: &ServiceOpts) -> ExitCode {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos() as u64)
        ^ u64::from(std::process::id());
    let cfg = relay_config(o, seed);
    let devices = DeviceSide {
        framing: o.framing,
        max_frame: o.max_frame,
        max_connections: o.max_conns,
        max_connections_per_ip: o.max_conns_per_ip,
        write_timeout: o.write_timeout,
        #[cfg(feature = "tls")]
        tls: o.device_tls.clone(),
        ..DeviceSide::new(o.listen)
    };
    let Started {
        mut node,
        listener,
        mut relay,
    } = match devices.start(cfg) {
        Ok(s) => s,
        Err(StartError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(StartError::Node(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
        Err(StartError::Listen(e)) => {
            eprintln!("error: --listen {}: {e}", o.listen);
            return ExitCode::from(1);
        }
        Err(StartError::Relay(e)) => {
            eprintln!("error: --spool: {e}");
            return ExitCode::from(1);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    let mut service = match Service::new(&mut node, svc) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("error: cannot catch signals: {e}");
            return ExitCode::from(1);
        }
    };
    Line::new("event", "listening")
        .kv(
            "addr",
            node.local_addr(listener)
                .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0))),
        )
        .print();
    line::liveness(&o.relay.liveness).print();
    let mut metrics = match o.metrics {
        Some(addr) => match crate::metrics::bind(&mut node, addr) {
            Ok(m) => Some(m),
            Err(e) => return crate::metrics::bind_failed(addr, &e),
        },
        None => None,
    };
    let bound = o.relay.liveness.detection_bound();
    service.ready();
    let mut active = Active {
        addr: o.relay.upstream,
        index: 0,
    };
    let mut flood = ReplyFlood::new(mooring::internals::ratelimit::DEFAULT_INTERVAL);
    // At most one entry per device link, removed at its close.
    let mut details = HashMap::new();
    let mut tally = RelayTally::default();
    loop {
        let mut out = |ev: RelayEvent<'_>| {
            tally.observe(&ev);
            print(&ev, &mut active, &mut flood, &mut details)
        };
        if let Err(e) = relay.turn(&mut node, service.max_wait(MAX_WAIT), &mut out) {
            eprintln!("error: poll failed: {e}");
            return ExitCode::from(1);
        }
        if service.after_turn(&mut node).is_some() {
            relay.begin_shutdown(&mut node, &mut out);
        }
        if service.is_stopping() && (relay.is_drained(&node) || service.expired()) {
            let drained = relay.is_drained(&node);
            let left = relay.finish_shutdown(&mut node);
            // The last closes' lines (the node does not redial: no drive).
            if let Err(e) = node.poll(Some(Duration::ZERO)) {
                log::warn!("poll at shutdown: {e}");
            }
            loop {
                let now = node.now();
                let Some(ev) = node.next_event() else { break };
                relay.handle_event(ev, now, &mut out);
            }
            service
                .stopped_line(drained)
                .kv("queued", left.queued)
                .kv("spooled", left.spooled)
                .print();
            if let Some(e) = left.sync_error {
                eprintln!("error: --spool: sync at shutdown failed: {e}");
                return ExitCode::from(1);
            }
            return ExitCode::SUCCESS;
        }
        // A turn lasts at most MAX_WAIT: a summary is at most that late.
        flood.flush(Instant::now());
        if let Some(m) = metrics.as_mut() {
            serve_metrics(m, &mut node, &mut relay, &tally, bound);
        }
    }
}

/// Answers what is ready on the metrics server: the node's counters and the
/// relay's queue, spool and upstream.
fn serve_metrics(
    m: &mut MetricsServer,
    node: &mut Node,
    relay: &mut Relay,
    tally: &RelayTally,
    detection_bound: Option<Duration>,
) {
    m.serve(node, &mut |node, server, buf| {
        let now = node.now();
        Snapshot {
            detection_bound,
            relay: Some(RelaySnapshot {
                queue: relay.queue_stats(now),
                spool: relay.spool_stats(now),
                tally: *tally,
            }),
            server: Some(server),
            ..Snapshot::of_node(node.stats())
        }
        .write(buf)
    });
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_flood_of_unexpected_replies_is_one_line_and_one_count_per_interval() {
        let t0 = Instant::now();
        let at = |ms: u64| t0 + Duration::from_millis(ms);
        let mut f = ReplyFlood::new(Duration::from_secs(10));
        assert!(f.admit(at(0)), "the first of an interval is printed");
        for ms in 1..=4_949 {
            assert!(!f.admit(at(ms)), "the rest are counted");
        }
        assert_eq!(f.take_summary(at(9_999)), None, "the interval is not over");
        assert_eq!(f.take_summary(at(10_000)), Some(4_950), "all of them, once");
        assert_eq!(f.take_summary(at(30_000)), None, "nothing more came");
        // A lone reply gets its line and no summary.
        assert!(f.admit(at(40_000)));
        assert_eq!(f.take_summary(at(50_000)), None);
        // A new interval after a quiet one starts with a printed line again.
        assert!(f.admit(at(60_000)));
        assert!(!f.admit(at(60_001)));
        assert!(f.admit(at(70_001)), "the next interval's first is printed");
    }
}

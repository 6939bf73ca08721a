//! Failover and the raw upstream window, on virtual time: a real [`Node`] on a
//! [`ManualClock`] hands out link ids (nothing is polled: the node events are
//! made here), the relay's state is set where a test says so.

use std::net::SocketAddr;
use std::time::Duration;

use super::failover::{Failover, Probe};
use super::upstream::{InFlight, RawLink, Upstream};
use super::*;
use crate::time::ManualClock;
use crate::{CloseReason, LinkStats, ListenConfig, NodeConfig};

const P: &str = "127.0.0.1:9";
const B: &str = "127.0.0.1:10";

fn msg(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101||ADT^A01|{id}|P|2.5\rPID|1\r").into_bytes()
}

fn ack(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101||ACK|A{id}|P|2.5\rMSA|AA|{id}\r").into_bytes()
}

fn addr(s: &str) -> SocketAddr {
    s.parse().unwrap()
}

/// Each event, reduced to what the tests compare.
fn summary(ev: RelayEvent<'_>) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match ev {
        RelayEvent::UpstreamSwitched {
            from, to, reason, ..
        } => format!("switched {from}->{to} {reason:?}"),
        RelayEvent::UpstreamConnecting { attempt } => format!("connecting {attempt}"),
        RelayEvent::UpstreamReconnecting { attempt, .. } => format!("reconnecting {attempt}"),
        RelayEvent::UpstreamConnected { .. } => "connected".into(),
        RelayEvent::PrimaryProbe { addr, attempt } => format!("probe {addr} {attempt}"),
        RelayEvent::PrimaryAnswered { addr } => format!("answered {addr}"),
        RelayEvent::ReplyOutOfOrder { expected, id } => {
            format!("out_of_order expected={} got={}", s(expected), s(id))
        }
        RelayEvent::UpstreamLost {
            reason,
            in_doubt,
            resent,
            failed,
        } => format!("lost {reason:?} {in_doubt:?} resent={resent} failed={failed}"),
        RelayEvent::Acked { id, seq, .. } => format!("acked {} seq={seq}", s(id)),
        RelayEvent::Forwarded { id, .. } => format!("forwarded {}", s(id)),
        RelayEvent::UnexpectedReply { id, .. } => {
            format!("unexpected {}", id.map(s).unwrap_or_default())
        }
        other => format!("{other:?}"),
    }
}

struct Bench {
    node: Node,
    clock: ManualClock,
    relay: Relay,
    device: LinkId,
    seen: Vec<String>,
}

impl Bench {
    fn new(cfg: RelayConfig) -> Bench {
        let clock = ManualClock::new(Instant::from_millis(1_000));
        let node_cfg = NodeConfig {
            max_sessions: cfg.node_sessions(),
            ..NodeConfig::default()
        };
        let mut node = Node::with_clock(node_cfg, Box::new(clock.clone())).expect("node");
        let listener = node
            .listen(addr("127.0.0.1:0"), ListenConfig::default())
            .expect("listen");
        let local = node.local_addr(listener).expect("addr");
        let device = node.connect(local, &ConnectConfig::default()).expect("id");
        let relay = Relay::new(cfg, &node).expect("relay");
        let mut b = Bench {
            node,
            clock,
            relay,
            device,
            seen: Vec::new(),
        };
        b.event(Event::Connected {
            link: device,
            peer: addr("127.0.0.1:40000"),
            listener: Some(listener),
        });
        b.take();
        b
    }

    fn advance(&mut self, ms: u64) {
        self.clock.advance(Duration::from_millis(ms));
    }

    fn event(&mut self, ev: Event<'_>) {
        let now = self.node.now();
        let seen = &mut self.seen;
        self.relay
            .handle_event(ev, now, &mut |e| seen.push(summary(e)));
        self.relay
            .settle(&mut self.node, &mut |e| seen.push(summary(e)));
    }

    fn drive(&mut self) {
        let seen = &mut self.seen;
        self.relay
            .drive(&mut self.node, &mut |e| seen.push(summary(e)));
    }

    fn closed(&mut self, link: LinkId, reason: CloseReason) {
        self.event(Event::Closed {
            link,
            peer: addr(P),
            reason,
            stats: LinkStats::default(),
            peer_reason: None,
        });
    }

    fn connected(&mut self, link: LinkId) {
        self.event(Event::Connected {
            link,
            peer: addr(P),
            listener: None,
        });
    }

    fn device_sends(&mut self, id: &str) {
        let m = msg(id);
        self.event(Event::Message {
            link: self.device,
            payload: &m,
        });
    }

    fn reply(&mut self, link: LinkId, id: &str) {
        let a = ack(id);
        self.event(Event::Message { link, payload: &a });
    }

    /// The raw link being dialled (or up).
    fn raw_link(&self) -> LinkId {
        match &self.relay.up {
            Upstream::Raw {
                link: RawLink::Connecting(l) | RawLink::Up(l),
                ..
            } => *l,
            _ => panic!("no raw link"),
        }
    }

    /// Lets the next redial (or probe) come due and drives.
    fn next_turn(&mut self) {
        let now = self.node.now();
        if let Some(t) = self.relay.poll_timeout() {
            self.advance(t.saturating_since(now).as_millis() as u64);
        }
        self.drive();
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.seen)
    }
}

fn backoff() -> crate::session::Backoff {
    crate::session::Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(400),
        max_attempts: None,
    }
}

fn two_upstreams() -> RelayConfig {
    RelayConfig {
        backup_upstreams: vec![addr(B)],
        failover_after: 2,
        backoff: backoff(),
        seed: 3,
        ..RelayConfig::new(addr(P))
    }
}

#[test]
fn the_failover_counts_failed_attempts_in_a_row_and_wraps_around() {
    let cfg = RelayConfig {
        backup_upstreams: vec![addr(B), addr("127.0.0.1:11")],
        failover_after: 3,
        ..RelayConfig::new(addr(P))
    };
    let mut f = Failover::new(&cfg);
    assert_eq!(f.active_addr(), addr(P));
    assert_eq!(f.attempt(true), None);
    assert_eq!(f.attempt(true), None);
    assert_eq!(f.attempt(false), None, "a good attempt resets the count");
    assert_eq!(f.attempt(true), None);
    assert_eq!(f.attempt(true), None);
    assert_eq!(f.attempt(true), Some((addr(P), addr(B), 3)));
    assert_eq!(f.active(), 1);
    f.link_up();
    assert!(
        f.link_lost_failed(true),
        "lost in doubt, nothing acknowledged"
    );
    assert!(
        !f.link_lost_failed(false),
        "an idle link that drops is no failure"
    );
    f.acked();
    assert!(!f.link_lost_failed(true), "the upstream acknowledged on it");
    for _ in 0..2 {
        assert_eq!(f.attempt(true), None);
    }
    assert_eq!(f.attempt(true), Some((addr(B), addr("127.0.0.1:11"), 3)));
    for _ in 0..2 {
        assert_eq!(f.attempt(true), None);
    }
    assert_eq!(
        f.attempt(true),
        Some((addr("127.0.0.1:11"), addr(P), 3)),
        "after the last: the primary again"
    );
    // One upstream: never a switch.
    let mut one = Failover::new(&RelayConfig::new(addr(P)));
    for _ in 0..10 {
        assert_eq!(one.attempt(true), None);
    }
}

#[test]
fn a_raw_relay_fails_over_probes_the_primary_and_returns_between_messages() {
    let mut b = Bench::new(two_upstreams());
    b.drive();
    assert_eq!(b.take(), ["connecting 0"]);
    let l = b.raw_link();
    b.closed(l, CloseReason::ConnectionRefused);
    assert_eq!(b.take(), ["reconnecting 1"]);
    b.next_turn();
    assert_eq!(b.take(), ["connecting 1"]);
    let l = b.raw_link();
    b.closed(l, CloseReason::ConnectionRefused);
    assert_eq!(
        b.take(),
        [format!("switched {P}->{B} Failover {{ failures: 2 }}")]
    );
    assert_eq!(b.relay.active_upstream(), addr(B));
    // The backup is dialled at once.
    b.drive();
    assert_eq!(b.take(), ["connecting 0"]);
    let backup = b.raw_link();
    b.connected(backup);
    assert_eq!(b.take(), ["connected"]);
    // A message goes to the backup and is in flight there.
    b.device_sends("M1");
    b.take();
    let (seq, _) = b.relay.queue.poll_transmit().expect("M1");
    b.relay.queue.handle_written(seq);
    if let Upstream::Raw { in_flight, .. } = &mut b.relay.up {
        *in_flight = Some(InFlight {
            seq,
            deadline: b.node.now() + Duration::from_secs(10),
        });
    }
    // The primary is probed after the backoff; it answers.
    assert!(matches!(b.relay.failover.probe, Probe::Waiting));
    b.next_turn();
    assert_eq!(b.take(), [format!("probe {P} 1")]);
    let Probe::Dialing(probe) = b.relay.failover.probe else {
        panic!("no probe link: {:?}", b.relay.failover.probe);
    };
    b.connected(probe);
    assert_eq!(b.take(), [format!("answered {P}")]);
    // M1 is in flight on the backup: no switch yet, and nothing new is written.
    b.device_sends("M2");
    b.take();
    b.drive();
    assert!(b.take().is_empty(), "no switch with a message in flight");
    assert_eq!(b.relay.active_upstream(), addr(B));
    // The backup acknowledges M1: the relay returns to the primary over the
    // probe's link, before M2 is written.
    b.reply(backup, "M1");
    assert_eq!(b.take(), ["acked M1 seq=1"]);
    b.drive();
    assert_eq!(
        b.take(),
        [format!("switched {B}->{P} PrimaryBack"), "connected".into()]
    );
    assert_eq!(b.relay.active_upstream(), addr(P));
    assert_eq!(b.raw_link(), probe, "the probe's link is the upstream link");
    assert_eq!(b.relay.failover.probe, Probe::Off);
    // The backup's close is no loss (nothing was in flight on it).
    b.closed(backup, CloseReason::LocalClose);
    assert!(b.take().is_empty());
    assert_eq!(b.relay.queued(), 1, "M2 waits for the primary");
}

#[test]
fn a_link_lost_with_messages_in_doubt_and_no_ack_counts_as_a_failed_attempt() {
    let mut b = Bench::new(two_upstreams());
    b.drive();
    b.device_sends("M1");
    let l = b.raw_link();
    b.connected(l);
    b.take();
    for round in 0..2 {
        let (seq, _) = b.relay.queue.poll_transmit().expect("M1");
        b.relay.queue.handle_written(seq);
        if let Upstream::Raw { in_flight, .. } = &mut b.relay.up {
            *in_flight = Some(InFlight {
                seq,
                deadline: b.node.now() + Duration::from_secs(10),
            });
        }
        let l = b.raw_link();
        b.closed(l, CloseReason::ResponseTimeout);
        let seen = b.take();
        assert!(
            seen[0].starts_with("lost Link(ResponseTimeout)"),
            "{seen:?}"
        );
        if round == 1 {
            assert_eq!(
                seen[1],
                format!("switched {P}->{B} Failover {{ failures: 2 }}")
            );
            break;
        }
        b.next_turn();
        let l = b.raw_link();
        b.connected(l);
        b.take();
    }
    assert_eq!(b.relay.active_upstream(), addr(B));
    assert_eq!(b.relay.queued(), 1, "M1 is resent to the backup");
}

/// Window 3: M1, M2, M3 written; returns the upstream link.
fn three_in_flight(b: &mut Bench) -> LinkId {
    b.drive();
    let l = b.raw_link();
    b.connected(l);
    b.take();
    for id in ["M1", "M2", "M3"] {
        b.device_sends(id);
    }
    b.take();
    let now = b.node.now();
    for _ in 0..3 {
        let (seq, _) = b.relay.queue.poll_transmit().expect("room in the window");
        b.relay.queue.handle_written(seq);
        let f = InFlight {
            seq,
            deadline: now + Duration::from_secs(10),
        };
        match &mut b.relay.up {
            Upstream::Raw {
                in_flight: in_flight @ None,
                ..
            } => *in_flight = Some(f),
            _ => b.relay.window.push(f),
        }
    }
    assert!(
        b.relay.queue.poll_transmit().is_none(),
        "the window is full"
    );
    l
}

fn windowed() -> RelayConfig {
    RelayConfig {
        upstream_window: 3,
        ..RelayConfig::new(addr(P))
    }
}

#[test]
fn with_a_window_acks_are_credited_in_order() {
    let mut b = Bench::new(windowed());
    let l = three_in_flight(&mut b);
    for id in ["M1", "M2", "M3"] {
        b.reply(l, id);
    }
    assert_eq!(
        b.take(),
        ["acked M1 seq=1", "acked M2 seq=2", "acked M3 seq=3"]
    );
    assert_eq!(b.relay.up.deadline(), None, "nothing in flight");
    assert_eq!(b.relay.queued(), 0);
    // A repeated ACK answers nothing in flight.
    b.reply(l, "M3");
    assert_eq!(b.take(), ["unexpected M3"]);
}

#[test]
fn an_ack_out_of_order_closes_the_link_and_resends_what_was_in_flight_once() {
    let mut b = Bench::new(windowed());
    let l = three_in_flight(&mut b);
    b.reply(l, "M1");
    b.reply(l, "M3");
    assert_eq!(
        b.take(),
        ["acked M1 seq=1", "out_of_order expected=M2 got=M3"]
    );
    // Closed by the relay at the settle; a late ACK on the closing link is
    // not credited.
    b.reply(l, "M2");
    assert_eq!(b.take(), ["unexpected M2"]);
    b.closed(l, CloseReason::LocalClose);
    assert_eq!(
        b.take(),
        [
            "lost ReplyOutOfOrder Some((2, 3)) resent=2 failed=0",
            "reconnecting 1"
        ]
    );
    // M2 and M3 are queued again, in order, and were credited to nobody.
    assert_eq!(b.relay.queued(), 2);
    assert_eq!(b.relay.queue.poll_transmit().map(|(s, _)| s), Some(2));
}

fn durable(b: &Bench) -> &spool::Durable {
    b.relay.spool.as_ref().expect("spool")
}

fn session_note(b: &mut Bench, session: crate::SessionId, note: crate::SessionNote) {
    b.event(Event::Session { session, note });
}

fn session_id(b: &Bench) -> Option<crate::SessionId> {
    match &b.relay.up {
        Upstream::Session { id, .. } => *id,
        _ => None,
    }
}

#[test]
fn a_mooring_relay_fails_over_and_returns_to_the_primarys_session_resending_what_was_in_doubt() {
    use crate::{Protocol, SessionNote};
    let mut b = Bench::new(RelayConfig {
        liveness: LivenessConfig {
            protocol: Protocol::Mooring,
            ..LivenessConfig::default()
        },
        ..two_upstreams()
    });
    b.drive();
    assert_eq!(b.take(), ["connecting 0"]);
    let s1 = session_id(&b).expect("a session to the primary");
    let reconnecting = SessionNote::Reconnecting {
        attempt: 1,
        delay: Duration::from_millis(50),
    };
    session_note(&mut b, s1, reconnecting);
    assert_eq!(b.take(), ["reconnecting 1"]);
    session_note(&mut b, s1, reconnecting);
    assert_eq!(
        b.take(),
        [
            "reconnecting 1".to_string(),
            format!("switched {P}->{B} Failover {{ failures: 2 }}")
        ]
    );
    // The next drive ends that session (nothing was in it) and opens one to
    // the backup.
    b.drive();
    assert_eq!(b.take(), ["connecting 0"]);
    let s2 = session_id(&b).expect("a session to the backup");
    assert_ne!(s1, s2);
    assert_eq!(b.relay.active_upstream(), addr(B));
    let up = SessionNote::Established {
        resumed: false,
        replaying: 0,
    };
    session_note(&mut b, s2, up);
    assert_eq!(b.take(), ["connected"]);
    // M1 goes into the backup's session, not yet acknowledged there.
    b.device_sends("M1");
    b.take();
    b.drive();
    assert_eq!(b.take(), ["forwarded M1"]);
    // The primary is probed with a session of its own, which comes up.
    b.next_turn();
    assert_eq!(b.take(), [format!("probe {P} 1")]);
    let Probe::Opening(s3) = b.relay.failover.probe else {
        panic!("no probe session: {:?}", b.relay.failover.probe);
    };
    session_note(&mut b, s3, up);
    assert_eq!(b.take(), [format!("answered {P}")]);
    // M1 is unacknowledged on a connected backup: no switch, nothing new sent.
    b.device_sends("M2");
    b.take();
    b.drive();
    assert!(b.take().is_empty(), "the backup drains first");
    // The backup's link drops: M1 would wait for its resume; the relay takes
    // the primary's session instead and resends M1 there, first.
    if let Upstream::Session { connected, .. } = &mut b.relay.up {
        *connected = false;
    }
    b.drive();
    assert_eq!(
        b.take(),
        [
            "lost Failover Some((1, 1)) resent=1 failed=0".to_string(),
            format!("switched {B}->{P} PrimaryBack"),
            "connected".into(),
            "forwarded M1".into(),
            "forwarded M2".into(),
        ]
    );
    assert_eq!(
        session_id(&b),
        Some(s3),
        "the probe's session is the upstream's"
    );
    assert_eq!(b.relay.active_upstream(), addr(P));
    // The backup's session ending is not ours any more.
    session_note(
        &mut b,
        s2,
        SessionNote::Ended(crate::session::SessionEnd::Closed),
    );
    assert!(b.take().is_empty());
}

#[test]
fn with_a_spool_a_delivered_mark_waits_for_the_next_commit_instead_of_a_sync_of_its_own() {
    let dir = std::env::temp_dir().join(format!("mooring-relay-marks-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let mut b = Bench::new(RelayConfig {
        spool: Some(SpoolSettings {
            size: 4 << 20,
            ..SpoolSettings::new(&dir)
        }),
        ..RelayConfig::new(addr(P))
    });
    b.drive();
    let l = b.raw_link();
    b.connected(l);
    b.device_sends("M1");
    b.drive(); // commits M1 (its AA) and writes it upstream
    b.take();
    assert!(!durable(&b).commit_due(b.node.now()), "M1 is committed");
    let (seq, _) = b.relay.queue.poll_transmit().expect("M1");
    b.relay.queue.handle_written(seq);
    if let Upstream::Raw { in_flight, .. } = &mut b.relay.up {
        *in_flight = Some(InFlight {
            seq,
            deadline: b.node.now() + Duration::from_secs(10),
        });
    }
    b.reply(l, "M1");
    assert_eq!(b.take(), ["acked M1 seq=1"]);
    // Delivered: marked, but no commit (no fdatasync) for that alone.
    let now = b.node.now();
    assert!(
        !durable(&b).commit_due(now),
        "no sync per acknowledged message"
    );
    assert_eq!(b.relay.poll_timeout(), Some(now + SPOOL_MARKS_WITHIN));
    // It rides along with the next commit of a new message...
    b.device_sends("M2");
    assert!(durable(&b).commit_due(b.node.now()));
    b.drive();
    assert_eq!(durable(&b).marks_by, None, "written with M2");
    // ... or is written when its time comes.
    let (seq, _) = b.relay.queue.poll_transmit().expect("M2");
    b.relay.queue.handle_written(seq);
    if let Upstream::Raw { in_flight, .. } = &mut b.relay.up {
        *in_flight = Some(InFlight {
            seq,
            deadline: b.node.now() + Duration::from_secs(10),
        });
    }
    b.reply(l, "M2");
    b.advance(99);
    assert!(!durable(&b).commit_due(b.node.now()));
    b.advance(1);
    assert!(
        durable(&b).commit_due(b.node.now()),
        "due after MARKS_WITHIN"
    );
    b.drive();
    assert_eq!(durable(&b).marks_by, None);
    assert_eq!(durable(&b).journal.stats().undelivered, 0);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn the_relay_never_gives_up_redialling_it_waits_the_maximum_once_attempts_are_exhausted() {
    let mut b = Bench::new(RelayConfig {
        backoff: crate::session::Backoff {
            max_attempts: Some(1),
            ..backoff()
        },
        ..RelayConfig::new(addr(P))
    });
    b.drive();
    assert_eq!(b.take(), ["connecting 0"]);
    for attempt in 1..=3 {
        let l = b.raw_link();
        b.closed(l, CloseReason::ConnectionRefused);
        assert_eq!(b.take(), [format!("reconnecting {attempt}")]);
        let wait = b
            .relay
            .poll_timeout()
            .map(|t| t.saturating_since(b.node.now()));
        if attempt > 1 {
            assert_eq!(wait, Some(backoff().max), "attempt {attempt}: unjittered");
        }
        b.next_turn();
        assert_eq!(b.take(), [format!("connecting {attempt}")]);
    }
}

//! A raw outbound link that redials by itself (`ConnectConfig::redial`), on
//! a virtual clock over loopback: the waits between attempts pass only when
//! the test moves the clock, so the backoff is checked to the millisecond and
//! without waiting for it. Every wait is far longer than the wall-clock limit
//! that bounds the loops.

use std::net::SocketAddr;
use std::time::Duration;

use mooring::session::Backoff;
use mooring::{
    CloseReason, ConnectConfig, Event, Instant, LinkId, ListenConfig, ManualClock, Node,
    NodeConfig, SendError,
};

/// How long a test may wait on real sockets before it is declared stuck.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rec {
    Connected(LinkId),
    Message(Vec<u8>),
    Closed(LinkId, CloseReason),
    Redialing {
        link: LinkId,
        reason: CloseReason,
        attempt: u32,
        after: Duration,
        unsent: u64,
    },
}

fn record(node: &mut Node, seen: &mut Vec<Rec>) {
    node.poll(Some(Duration::from_millis(1))).expect("poll");
    while let Some(ev) = node.next_event() {
        seen.push(match ev {
            Event::Connected { link, .. } => Rec::Connected(link),
            Event::Message { payload, .. } => Rec::Message(payload.to_vec()),
            Event::Closed { link, reason, .. } => Rec::Closed(link, reason),
            Event::Redialing {
                link,
                reason,
                attempt,
                after,
                unsent_bytes,
                ..
            } => Rec::Redialing {
                link,
                reason,
                attempt,
                after,
                unsent: unsent_bytes,
            },
            other => panic!("unexpected event: {other:?}"),
        });
    }
}

/// A client node on a manual clock, and (when up) a server node on the same
/// clock at a fixed loopback address.
struct Bench {
    clock: ManualClock,
    client: Node,
    server: Option<Node>,
    addr: SocketAddr,
    client_seen: Vec<Rec>,
    server_seen: Vec<Rec>,
}

fn node_on(clock: &ManualClock) -> Node {
    Node::with_clock(NodeConfig::default(), Box::new(clock.clone())).expect("node builds")
}

/// A loopback address nothing listens on (bound once, then released).
fn refused_addr() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("addr")
}

impl Bench {
    /// With a server listening when `server_up`.
    fn new(server_up: bool) -> Bench {
        let clock = ManualClock::new(Instant::from_millis(1_000));
        let mut b = Bench {
            client: node_on(&clock),
            server: None,
            addr: refused_addr(),
            clock,
            client_seen: Vec::new(),
            server_seen: Vec::new(),
        };
        if server_up {
            b.start_server();
        }
        b
    }

    /// (Re)starts the server on `addr` (its port: the same one each time).
    fn start_server(&mut self) {
        let mut s = node_on(&self.clock);
        let l = s
            .listen(self.addr, ListenConfig::default())
            .expect("listener binds");
        self.addr = s.local_addr(l).expect("bound");
        self.server = Some(s);
    }

    fn pump(&mut self) {
        if let Some(s) = self.server.as_mut() {
            record(s, &mut self.server_seen);
        }
        record(&mut self.client, &mut self.client_seen);
    }

    /// Pumps until the client (or the server) records a matching event;
    /// takes it out and returns it.
    fn wait(&mut self, what: &str, server: bool, pred: impl Fn(&Rec) -> bool) -> Rec {
        let limit = std::time::Instant::now() + PATIENCE;
        loop {
            let seen = if server {
                &mut self.server_seen
            } else {
                &mut self.client_seen
            };
            if let Some(k) = seen.iter().position(&pred) {
                return seen.remove(k);
            }
            assert!(
                std::time::Instant::now() < limit,
                "stuck waiting for {what}; client saw {:?}, server saw {:?}",
                self.client_seen,
                self.server_seen
            );
            self.pump();
        }
    }

    /// Pumps a few rounds with the clock standing still.
    fn settle(&mut self) {
        for _ in 0..10 {
            self.pump();
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Connects the client to `addr`, redialing by the backoff given.
    fn dial(&mut self, min_ms: u64, max_ms: u64, max_attempts: Option<u32>) -> LinkId {
        self.client
            .connect(self.addr, &redialing(min_ms, max_ms, max_attempts))
            .expect("connect")
    }

    fn next_redial(&mut self) -> (LinkId, CloseReason, u32, Duration) {
        match self.wait("Redialing", false, |r| matches!(r, Rec::Redialing { .. })) {
            Rec::Redialing {
                link,
                reason,
                attempt,
                after,
                ..
            } => (link, reason, attempt, after),
            _ => unreachable!(),
        }
    }
}

fn redialing(min_ms: u64, max_ms: u64, max_attempts: Option<u32>) -> ConnectConfig {
    ConnectConfig {
        redial: true,
        backoff: Backoff {
            min: Duration::from_millis(min_ms),
            max: Duration::from_millis(max_ms),
            max_attempts,
        },
        ..ConnectConfig::default()
    }
}

/// The ceiling of attempt `n` (from 1): `min x 2^(n-1)`, at most `max`.
fn ceiling(min_ms: u64, max_ms: u64, attempt: u32) -> Duration {
    Duration::from_millis((min_ms << (attempt - 1).min(20)).min(max_ms))
}

#[test]
fn a_redialing_link_comes_back_with_its_id_when_its_server_returns() {
    let mut b = Bench::new(true);
    let link = b.dial(100, 1_000, None);
    assert_eq!(
        b.wait("connected", false, |r| matches!(r, Rec::Connected(_))),
        Rec::Connected(link)
    );
    b.client.send(link, b"before").expect("send");
    b.wait("first message", true, |r| {
        *r == Rec::Message(b"before".to_vec())
    });

    // The server goes away: the link is lost, not closed.
    b.server = None;
    let (l, reason, attempt, after) = b.next_redial();
    assert_eq!(l, link, "the link keeps its id");
    assert!(
        matches!(reason, CloseReason::PeerClosed | CloseReason::Reset),
        "{reason:?}"
    );
    assert_eq!(attempt, 1);
    assert!(after <= ceiling(100, 1_000, 1), "{after:?}");
    assert!(!b.client.is_open(link));
    assert_eq!(b.client.send(link, b"lost"), Err(SendError::NotOpen));
    assert!(
        !b.client_seen.iter().any(|r| matches!(r, Rec::Closed(..))),
        "a redialing link is not reported closed: {:?}",
        b.client_seen
    );

    // Nobody listens: the next attempt is refused and waits longer.
    b.clock.advance(after);
    let (l, reason, attempt, after) = b.next_redial();
    assert_eq!(
        (l, reason, attempt),
        (link, CloseReason::ConnectionRefused, 2)
    );
    assert!(after <= ceiling(100, 1_000, 2), "{after:?}");

    // The server comes back on the same port: the link reconnects with the
    // same id, and traffic flows both ways.
    b.start_server();
    b.clock.advance(after);
    // A zero wait (full jitter allows it) dialed at once, before the server
    // was back: that refusal schedules the next attempt, which the clock is
    // then moved to.
    for round in 0.. {
        assert!(round < 10, "still refused after the server came back");
        match b.wait("reconnected", false, |r| {
            matches!(r, Rec::Connected(_) | Rec::Redialing { .. })
        }) {
            Rec::Redialing {
                link: l,
                reason,
                after,
                ..
            } => {
                assert_eq!((l, reason), (link, CloseReason::ConnectionRefused));
                b.clock.advance(after);
            }
            connected => {
                assert_eq!(connected, Rec::Connected(link));
                break;
            }
        }
    }
    assert!(b.client.is_open(link));
    b.client
        .send(link, b"after")
        .expect("send after the redial");
    b.wait("message after the redial", true, |r| {
        *r == Rec::Message(b"after".to_vec())
    });
    let Rec::Connected(at_server) = b.wait("server link", true, |r| matches!(r, Rec::Connected(_)))
    else {
        unreachable!()
    };
    b.server
        .as_mut()
        .expect("server up")
        .send(at_server, b"reply")
        .expect("reply");
    b.wait("reply", false, |r| *r == Rec::Message(b"reply".to_vec()));

    // A later loss starts the backoff over from the first attempt.
    b.server = None;
    let (_, _, attempt, _) = b.next_redial();
    assert_eq!(attempt, 1, "a completed connect resets the backoff");
}

#[test]
fn a_refused_redial_waits_by_the_backoff_on_the_nodes_clock() {
    let (min, max) = (10, 400);
    let mut b = Bench::new(false);
    let link = b.dial(min, max, None);
    let mut waits = Vec::new();
    for n in 1..=9u32 {
        let (l, reason, attempt, after) = b.next_redial();
        assert_eq!(
            (l, reason, attempt),
            (link, CloseReason::ConnectionRefused, n)
        );
        assert!(after <= ceiling(min, max, n), "attempt {n}: {after:?}");
        waits.push(after);
        // Not one millisecond early: with the clock short of the wait,
        // nothing is dialed.
        if let Some(early) = after.checked_sub(Duration::from_millis(1)) {
            b.clock.advance(early);
            b.settle();
            assert!(
                b.client_seen.is_empty(),
                "attempt {n} dialed before its wait of {after:?}: {:?}",
                b.client_seen
            );
            b.clock.advance(after - early);
        } else {
            b.clock.advance(after);
        }
    }
    // Full jitter over growing ceilings (10 ms for the first attempt, 400 ms
    // from the seventh on): the later waits exceed the first ceiling.
    let late = waits[5..].iter().max().copied().unwrap_or_default();
    assert!(
        late > ceiling(min, max, 1),
        "the waits do not grow: {waits:?}"
    );
    assert!(b.client.links_in_use() == 1, "the slot stays with the link");
}

#[test]
fn a_redialing_link_closes_when_its_attempts_run_out() {
    let mut b = Bench::new(false);
    let link = b
        .client
        .connect(b.addr, &redialing(5, 5, Some(2)))
        .expect("connect");
    for n in 1..=2 {
        let (_, _, attempt, after) = b.next_redial();
        assert_eq!(attempt, n);
        b.clock.advance(after);
    }
    assert_eq!(
        b.wait("closed", false, |r| matches!(r, Rec::Closed(..))),
        Rec::Closed(link, CloseReason::ConnectionRefused)
    );
    assert_eq!(b.client.links_in_use(), 0);
}

#[test]
fn a_loss_is_reported_in_the_round_of_events_that_found_it() {
    // The report must not wait for the next poll: that poll's timers could
    // redial first, and a refused attempt would then replace the loss's
    // report (its reason and attempt 1) before the application saw it. The
    // backoff here is long, so no attempt is due: the test sees only when the
    // report comes.
    let mut b = Bench::new(true);
    let link = b.dial(60_000, 60_000, None);
    b.wait("connected", false, |r| matches!(r, Rec::Connected(_)));
    b.server = None;
    let limit = std::time::Instant::now() + PATIENCE;
    while b.client.is_open(link) {
        assert!(std::time::Instant::now() < limit, "the loss was never seen");
        record(&mut b.client, &mut b.client_seen);
    }
    // The round that found the loss has ended (`next_event` gave `None`).
    assert!(
        b.client_seen
            .iter()
            .any(|r| matches!(r, Rec::Redialing { attempt: 1, .. })),
        "the link is down but its loss was not reported in that round: {:?}",
        b.client_seen
    );
}

#[test]
fn a_local_close_stops_redialing() {
    // Waiting between attempts: closed and reported at once.
    let mut b = Bench::new(false);
    let link = b.dial(50, 50, None);
    let (_, _, _, after) = b.next_redial();
    b.client.close(link);
    b.clock.advance(after + Duration::from_secs(60));
    b.settle();
    assert_eq!(
        b.client_seen,
        vec![Rec::Closed(link, CloseReason::LocalClose)],
        "closed once, no attempt after the close"
    );
    assert_eq!(b.client.links_in_use(), 0);

    // Connected: closed as any link, and not dialed again.
    let mut b = Bench::new(true);
    let link = b.dial(50, 50, None);
    b.wait("connected", false, |r| matches!(r, Rec::Connected(_)));
    b.wait("accepted", true, |r| matches!(r, Rec::Connected(_)));
    b.client.close(link);
    b.wait("server sees the close", true, |r| {
        matches!(r, Rec::Closed(..))
    });
    b.clock.advance(Duration::from_secs(60));
    b.settle();
    assert_eq!(
        b.client_seen,
        vec![Rec::Closed(link, CloseReason::LocalClose)]
    );
    assert!(
        !b.server_seen.iter().any(|r| matches!(r, Rec::Connected(_))),
        "no redial after a local close: {:?}",
        b.server_seen
    );

    // `close_all` stops a waiting redial too.
    let mut b = Bench::new(false);
    let link = b.dial(50, 50, None);
    b.next_redial();
    b.client.close_all();
    b.clock.advance(Duration::from_secs(60));
    b.settle();
    assert_eq!(
        b.client_seen,
        vec![Rec::Closed(link, CloseReason::LocalClose)]
    );
}

#[test]
fn without_redial_a_lost_link_stays_closed() {
    let mut b = Bench::new(false);
    let link = b
        .client
        .connect(b.addr, &ConnectConfig::default())
        .expect("connect");
    assert_eq!(
        b.wait("closed", false, |r| matches!(r, Rec::Closed(..))),
        Rec::Closed(link, CloseReason::ConnectionRefused)
    );
    b.clock.advance(Duration::from_secs(60));
    b.settle();
    assert!(b.client_seen.is_empty(), "{:?}", b.client_seen);
}

#[test]
fn frames_queued_on_a_lost_connection_are_reported_unsent() {
    let mut b = Bench::new(true);
    let link = b.dial(100, 100, None);
    b.wait("connected", false, |r| matches!(r, Rec::Connected(_)));
    b.wait("accepted", true, |r| matches!(r, Rec::Connected(_)));
    // The server stops reading: the client's frames fill the kernel's
    // buffers, then its own transmit queue (`TxFull`).
    let frame = vec![b'x'; 8 * 1024];
    let limit = std::time::Instant::now() + PATIENCE;
    let mut full_polls = 0;
    while full_polls < 20 {
        assert!(std::time::Instant::now() < limit, "the queue never filled");
        match b.client.send(link, &frame) {
            Ok(()) => full_polls = 0,
            Err(SendError::TxFull) => {
                full_polls += 1;
                record(&mut b.client, &mut b.client_seen);
            }
            Err(e) => panic!("send: {e}"),
        }
    }
    let queued = b.client.tx_pending(link) as u64;
    assert!(queued > 0);
    // The server goes away with unread bytes (a reset): what the client had
    // queued was never written, and says so.
    b.server = None;
    let lost = b.wait("Redialing", false, |r| matches!(r, Rec::Redialing { .. }));
    let Rec::Redialing {
        link: l, unsent, ..
    } = lost
    else {
        unreachable!()
    };
    assert_eq!(l, link);
    assert!(
        unsent > 0 && unsent <= queued,
        "unsent {unsent} of {queued} queued"
    );
    assert_eq!(b.client.tx_pending(link), 0, "nothing is carried over");
}

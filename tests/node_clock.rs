//! Two real nodes on one virtual clock over loopback: the driver's glue (poll,
//! deadlines, expiry, close) runs as in production, but time moves only when
//! the test advances it, so timeouts are checked to the millisecond and
//! without waiting for them. Every timeout is far longer than the wall-clock
//! limit that bounds the loops: only virtual time can make it pass.

use std::net::SocketAddr;
use std::time::Duration;

use mooring::{
    Clock as _, CloseReason, ConnectConfig, Event, Heartbeat, Instant, LinkId, ListenConfig,
    LivenessConfig, ManualClock, Node, NodeConfig, Protocol,
};

/// How long a test may wait on real sockets before it is declared stuck.
const PATIENCE: Duration = Duration::from_secs(5);

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Side {
    Server,
    Client,
}

#[derive(Clone, Debug, PartialEq, Eq)]
enum Rec {
    Connected(LinkId),
    Message(Vec<u8>),
    Closed(CloseReason),
}

/// A server node and a client node sharing one manual clock.
struct Pair {
    clock: ManualClock,
    server: Node,
    client: Node,
    addr: SocketAddr,
    seen: Vec<(Side, Rec)>,
}

impl Pair {
    fn new(listen: ListenConfig) -> Pair {
        let clock = ManualClock::new(Instant::from_millis(1_000));
        let on = |c: &ManualClock| {
            Node::with_clock(NodeConfig::default(), Box::new(c.clone())).expect("node builds")
        };
        let mut server = on(&clock);
        let l = server
            .listen(SocketAddr::from(([127, 0, 0, 1], 0)), listen)
            .expect("listener binds");
        let addr = server.local_addr(l).expect("bound");
        Pair {
            client: on(&clock),
            server,
            clock,
            addr,
            seen: Vec::new(),
        }
    }

    /// One short poll of each node given (`client` only: the server hangs).
    fn pump(&mut self, server_too: bool) {
        let sides: &[Side] = if server_too {
            &[Side::Server, Side::Client]
        } else {
            &[Side::Client]
        };
        for &side in sides {
            let node = match side {
                Side::Server => &mut self.server,
                Side::Client => &mut self.client,
            };
            node.poll(Some(Duration::from_millis(1))).expect("poll");
            while let Some(ev) = node.next_event() {
                let rec = match ev {
                    Event::Connected { link, .. } => Rec::Connected(link),
                    Event::Message { payload, .. } => Rec::Message(payload.to_vec()),
                    Event::Closed { reason, .. } => Rec::Closed(reason),
                    other => panic!("unexpected event: {other:?}"),
                };
                self.seen.push((side, rec));
            }
        }
    }

    /// Pumps until an event matches; returns it and takes it out of `seen`.
    fn wait_for(&mut self, what: &str, server_too: bool, pred: impl Fn(Side, &Rec) -> bool) -> Rec {
        let limit = std::time::Instant::now() + PATIENCE;
        loop {
            if let Some(k) = self.seen.iter().position(|(s, r)| pred(*s, r)) {
                return self.seen.remove(k).1;
            }
            assert!(
                std::time::Instant::now() < limit,
                "stuck waiting for {what}; seen: {:?}",
                self.seen
            );
            self.pump(server_too);
        }
    }

    /// Pumps a few rounds with the clock standing still: lets bytes in flight
    /// on loopback arrive.
    fn settle(&mut self, server_too: bool) {
        for _ in 0..5 {
            self.pump(server_too);
        }
    }

    fn closes(&self) -> Vec<(Side, CloseReason)> {
        self.seen
            .iter()
            .filter_map(|(s, r)| match r {
                Rec::Closed(c) => Some((*s, *c)),
                _ => None,
            })
            .collect()
    }

    /// Connects the client; returns the client's link once both ends report it.
    fn connect(&mut self, cfg: &ConnectConfig) -> LinkId {
        let id = self.client.connect(self.addr, cfg).expect("connect starts");
        self.wait_for("the server's Connected", true, |s, r| {
            s == Side::Server && matches!(r, Rec::Connected(_))
        });
        self.wait_for("the client's Connected", true, |s, r| {
            s == Side::Client && matches!(r, Rec::Connected(_))
        });
        id
    }
}

#[test]
fn the_idle_timeout_closes_a_quiet_link_exactly_when_virtual_time_reaches_it() {
    let idle = Duration::from_secs(60);
    let mut p = Pair::new(ListenConfig {
        idle_timeout: Some(idle),
        ..ListenConfig::default()
    });
    let link = p.connect(&ConnectConfig::default());
    p.client.send(link, b"hello").expect("queued");
    let got = p.wait_for("the message", true, |s, r| {
        s == Side::Server && matches!(r, Rec::Message(_))
    });
    assert_eq!(got, Rec::Message(b"hello".to_vec()));
    let last = p.clock.now();

    // One millisecond short of the idle timeout: nothing closes.
    p.clock.advance(idle - Duration::from_millis(1));
    p.settle(true);
    assert_eq!(p.closes(), [], "closed before the idle timeout");

    // The idle timeout, counted from the last byte: the server closes it, and
    // the client hears the close.
    p.clock.advance(Duration::from_millis(1));
    let r = p.wait_for("the idle close", true, |s, r| {
        s == Side::Server && matches!(r, Rec::Closed(_))
    });
    assert_eq!(r, Rec::Closed(CloseReason::IdleTimeout));
    assert_eq!(p.clock.now() - last, idle);
    let r = p.wait_for("the client's close", true, |s, r| {
        s == Side::Client && matches!(r, Rec::Closed(_))
    });
    assert_eq!(r, Rec::Closed(CloseReason::PeerClosed));
}

fn mooring_liveness(heartbeat: Option<Heartbeat>) -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        heartbeat,
        ..LivenessConfig::default()
    }
}

#[test]
fn heartbeats_keep_a_live_link_and_a_hung_peer_is_closed_at_the_heartbeat_timeout() {
    let hb = Heartbeat {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    };
    let mut p = Pair::new(ListenConfig {
        liveness: mooring_liveness(None),
        ..ListenConfig::default()
    });
    p.connect(&ConnectConfig {
        liveness: mooring_liveness(Some(hb)),
        ..ConnectConfig::default()
    });

    // Both nodes running: PING and PONG keep the link open for ten heartbeat
    // timeouts of virtual time.
    for _ in 0..60 {
        p.clock.advance(Duration::from_secs(5));
        p.settle(true);
    }
    assert_eq!(p.closes(), [], "a live link closed");

    // The server hangs (never polled again). The 60th step was a heartbeat
    // interval, so its PONG, the server's last byte, arrived at `last`: the
    // client gives up at `last + timeout`, not a millisecond earlier.
    p.settle(true);
    let last = p.clock.now();
    p.clock.advance(hb.timeout - Duration::from_millis(1));
    p.settle(false);
    assert_eq!(p.closes(), [], "closed before the heartbeat timeout");
    p.clock.advance(Duration::from_millis(1));
    let r = p.wait_for("the heartbeat close", false, |s, r| {
        s == Side::Client && matches!(r, Rec::Closed(_))
    });
    assert_eq!(r, Rec::Closed(CloseReason::HeartbeatTimeout));
    assert_eq!(p.clock.now() - last, hb.timeout);
}

//! A flood of session openings cannot lock out new sessions (hardening issue,
//! item 7), over real loopback sockets. `connect, HELLO, close` leaves a
//! disconnected session that keeps its slot for the resume window; once the
//! table is full, a new session takes the slot of the session disconnected
//! longest (which ends `Evicted`), and `max_sessions_per_ip` keeps one address
//! from displacing another's sessions.

mod common;

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, Instant};

use common::{Peer, LOCALHOST, LOCALHOST_2, PATIENCE};
use mooring::internals::wire::{self, Greeting, Msg};
use mooring::session::{Backoff, SessionConfig, SessionEnd};
use mooring::{
    CloseReason, ConnectConfig, Event, ListenConfig, LivenessConfig, Node, NodeConfig, Protocol,
    SessionNote,
};

/// Session slots of the server: the flood is five times that.
const TABLE: usize = 4;
const FLOOD: usize = 20;

fn mooring() -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        handshake_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn session_cfg() -> SessionConfig {
    SessionConfig {
        max_bytes: 64 * 1024,
        ..SessionConfig::default() // a 60 s resume window
    }
}

/// A session server with `TABLE` session slots.
fn server(per_ip: Option<usize>) -> (Node, SocketAddr) {
    server_with(per_ip, session_cfg())
}

fn server_with(per_ip: Option<usize>, scfg: SessionConfig) -> (Node, SocketAddr) {
    let (node, l) = common::listening_node(
        NodeConfig {
            max_links: 8,
            max_sessions: TABLE,
            ..NodeConfig::default()
        },
        ListenConfig {
            max_connections: 8,
            liveness: mooring(),
            session: Some(scfg),
            max_sessions_per_ip: per_ip,
            ..ListenConfig::default()
        },
    );
    let addr = node.local_addr(l).unwrap();
    (node, addr)
}

/// What the server reported, kept across polls.
#[derive(Default)]
struct Log {
    established: usize,
    evicted: Vec<u64>,
    closes: Vec<CloseReason>,
    messages: Vec<Vec<u8>>,
}

/// Polls the server (echoing session messages) until `done`, within `PATIENCE`.
fn run_until(server: &mut Node, log: &mut Log, mut done: impl FnMut(&Log) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        server.poll(Some(Duration::from_millis(2))).unwrap();
        let mut echo = Vec::new();
        while let Some(ev) = server.next_event() {
            match ev {
                Event::Session { note, .. } => match note {
                    SessionNote::Established { .. } => log.established += 1,
                    SessionNote::Ended(SessionEnd::Evicted { undelivered }) => {
                        log.evicted.push(undelivered)
                    }
                    _ => {}
                },
                Event::SessionMessage { session, payload } => {
                    log.messages.push(payload.to_vec());
                    echo.push((session, payload.to_vec()));
                }
                Event::Closed { reason, .. } => log.closes.push(reason),
                _ => {}
            }
        }
        for (s, p) in echo {
            server.session_send(s, &p).unwrap();
        }
        if done(log) {
            return true;
        }
    }
    false
}

fn hello(g: Greeting) -> Vec<u8> {
    common::wire_mllp(&Msg::Hello(g))
}

/// One `connect, HELLO, close` from `src`, waited through on the server: the
/// session it opens (if the server did not refuse it) is left disconnected.
fn open_and_abandon(server: &mut Node, log: &mut Log, src: IpAddr, addr: SocketAddr) {
    let mut p = Peer::connect_from(src, addr);
    p.send(&hello(Greeting::new_session()));
    let (est, closes) = (log.established, log.closes.len());
    assert!(
        run_until(server, log, |l| l.established > est
            || l.closes.len() > closes),
        "the server answered the HELLO"
    );
    let refused = log.closes.len() > closes;
    drop(p);
    let closes = log.closes.len();
    assert!(
        refused || run_until(server, log, |l| l.closes.len() > closes),
        "the server saw the close"
    );
}

/// A raw client's session: HELLO, then its WELCOME (with the server polled).
fn raw_session(server: &mut Node, log: &mut Log, p: &mut Peer, g: Greeting) -> Option<Greeting> {
    p.send(&hello(g));
    let (est, closes) = (log.established, log.closes.len());
    run_until(server, log, |l| {
        l.established > est || l.closes.len() > closes
    });
    // The WELCOME goes out as the server keeps polling.
    let start = Instant::now();
    while start.elapsed() < PATIENCE {
        match p.read_mllp(Duration::from_millis(5)) {
            Ok(frame) => {
                return match wire::decode(&frame) {
                    Ok(Msg::Welcome(w)) => Some(w),
                    _ => None,
                }
            }
            Err(common::ReadEnd::Closed) => return None,
            Err(common::ReadEnd::TimedOut) => {
                run_until(server, log, |_| true);
            }
        }
    }
    None
}

#[test]
fn a_legitimate_session_is_established_and_served_during_a_flood_of_openings() {
    let (mut server, addr) = server(None);
    let mut log = Log::default();
    for _ in 0..FLOOD {
        open_and_abandon(&mut server, &mut log, LOCALHOST, addr);
    }
    // A real client, during the flood's resume window: it gets a session and
    // its messages are served.
    let mut client = Node::new(NodeConfig {
        max_sessions: 1,
        ..NodeConfig::default()
    })
    .unwrap();
    let connect = ConnectConfig {
        liveness: mooring(),
        session: Some(session_cfg()),
        backoff: Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_attempts: Some(3),
        },
        ..ConnectConfig::default()
    };
    let id = client.open_session(addr, &connect).unwrap();
    client.session_send(id, b"MSG1").unwrap();
    let mut echoed = false;
    let start = Instant::now();
    while !echoed && start.elapsed() < PATIENCE {
        run_until(&mut server, &mut log, |_| true);
        client.poll(Some(Duration::from_millis(2))).unwrap();
        while let Some(ev) = client.next_event() {
            match ev {
                Event::SessionMessage { payload, .. } => echoed = payload == b"MSG1",
                Event::Session {
                    note: SessionNote::Ended(how),
                    ..
                } => panic!("the legitimate session ended: {how:?}"),
                _ => {}
            }
        }
    }
    assert!(echoed, "the legitimate session was served during the flood");
    assert_eq!(log.messages, vec![b"MSG1".to_vec()]);
    assert_eq!(log.established, FLOOD + 1, "every opening got a session");
    assert_eq!(
        log.evicted,
        vec![0; FLOOD + 1 - TABLE],
        "each beyond the table evicted the session disconnected longest"
    );
    assert_eq!(server.stats().sessions_evicted, (FLOOD - TABLE + 1) as u64);
}

#[test]
fn with_max_sessions_per_ip_a_flood_from_one_address_cannot_take_anothers_session() {
    let (mut server, addr) = server(Some(2));
    let mut log = Log::default();
    // A client on 127.0.0.2 opens a session, then loses its link.
    let mut b = Peer::connect_from(LOCALHOST_2, addr);
    let w = raw_session(&mut server, &mut log, &mut b, Greeting::new_session())
        .expect("WELCOME for 127.0.0.2");
    drop(b);
    let closes = log.closes.len();
    assert!(run_until(&mut server, &mut log, |l| l.closes.len() > closes));
    // It has waited longest when 127.0.0.1 floods the table.
    for _ in 0..FLOOD {
        open_and_abandon(&mut server, &mut log, LOCALHOST, addr);
    }
    assert_eq!(
        log.evicted.len(),
        FLOOD - 2,
        "the flood only replaced its own sessions"
    );
    // 127.0.0.2 resumes its session: still there, same id.
    let mut b = Peer::connect_from(LOCALHOST_2, addr);
    let resumed = raw_session(
        &mut server,
        &mut log,
        &mut b,
        Greeting {
            session: w.session,
            token: w.token,
            ..Greeting::new_session()
        },
    );
    assert_eq!(resumed.map(|g| g.session), Some(w.session));
    assert!(!log.closes.contains(&CloseReason::SessionExpired));
    // And a connected address at its limit is refused by name.
    let mut held = Vec::new();
    for _ in 0..2 {
        let mut p = Peer::connect_from(LOCALHOST, addr);
        raw_session(&mut server, &mut log, &mut p, Greeting::new_session())
            .expect("within the limit");
        held.push(p);
    }
    let mut third = Peer::connect_from(LOCALHOST, addr);
    third.send(&hello(Greeting::new_session()));
    let closes = log.closes.len();
    assert!(run_until(&mut server, &mut log, |l| l.closes.len() > closes));
    assert_eq!(
        log.closes.last(),
        Some(&CloseReason::TooManySessionsFromPeer)
    );
}

/// A session's replay ring is allocated when its slot is first used, from the
/// configuration: one the host cannot provide refuses that session by name and
/// leaves the node serving.
#[test]
fn a_replay_ring_the_host_cannot_allocate_refuses_the_session_not_the_process() {
    let (mut server, addr) = server_with(
        None,
        SessionConfig {
            // More than any host can give (usize::MAX on a 32-bit target).
            max_bytes: (1u64 << 60).min(usize::MAX as u64) as usize,
            ..session_cfg()
        },
    );
    let mut log = Log::default();
    let mut p = Peer::connect_from(LOCALHOST, addr);
    p.send(&hello(Greeting::new_session()));
    assert!(run_until(&mut server, &mut log, |l| !l.closes.is_empty()));
    assert_eq!(log.closes, vec![CloseReason::TooManyConnections]);
    assert_eq!(log.established, 0);
    // The node goes on: another link is accepted and closed the same way.
    let mut q = Peer::connect_from(LOCALHOST, addr);
    q.send(&hello(Greeting::new_session()));
    assert!(run_until(&mut server, &mut log, |l| l.closes.len() == 2));
}

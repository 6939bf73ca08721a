//! Reliable sessions over real loopback sockets, through the node: links cut
//! mid-stream are resumed with nothing lost or repeated; a wrong token is
//! refused; a client that stays away past the resume window is told its session
//! expired, as is the server's application.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use mooring::internals::wire::{self, Greeting, Msg};
use mooring::session::{Backoff, SessionConfig, SessionEnd};
use mooring::{
    CloseReason, ConnectConfig, Event, LinkId, ListenConfig, LivenessConfig, Node, NodeConfig,
    Protocol, SessionId, SessionNote,
};

const LIMIT: Duration = Duration::from_secs(20);

fn mooring() -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        handshake_timeout: Duration::from_secs(5),
        ..Default::default()
    }
}

fn session_cfg(resume: Duration) -> SessionConfig {
    SessionConfig {
        max_depth: 64,
        max_depth_disconnected: 256,
        max_bytes: 256 * 1024,
        reconnect_timeout: resume,
        ..SessionConfig::default()
    }
}

fn nodes(resume: Duration) -> (Node, Node, std::net::SocketAddr, ConnectConfig) {
    let cfg = NodeConfig {
        max_sessions: 4,
        ..NodeConfig::default()
    };
    let mut server = Node::new(cfg.clone()).unwrap();
    let l = server
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                liveness: mooring(),
                session: Some(session_cfg(resume)),
                ..ListenConfig::default()
            },
        )
        .unwrap();
    let addr = server.local_addr(l).unwrap();
    let client = Node::new(cfg).unwrap();
    let connect = ConnectConfig {
        liveness: mooring(),
        session: Some(session_cfg(resume)),
        backoff: Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_attempts: None,
        },
        ..ConnectConfig::default()
    };
    (server, client, addr, connect)
}

fn index(payload: &[u8]) -> u32 {
    std::str::from_utf8(payload)
        .ok()
        .and_then(|s| s.strip_prefix("MSG"))
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("unexpected payload {payload:?}"))
}

#[derive(Default)]
struct Seen {
    server_got: Vec<u32>,
    client_got: Vec<u32>,
    server_links: Vec<LinkId>,
    server_session: Option<SessionId>,
    resumed: u32,
    reconnecting: u32,
    ended: Vec<(bool, SessionEnd)>,
    /// Echoes the server's session refused (backpressure), retried next turn.
    echo_backlog: std::collections::VecDeque<(SessionId, u32)>,
}

/// One turn of both nodes: the server echoes every session message back.
fn turn(server: &mut Node, client: &mut Node, seen: &mut Seen) {
    server.poll(Some(Duration::from_millis(2))).unwrap();
    while let Some(ev) = server.next_event() {
        match ev {
            Event::SessionMessage { session, payload } => {
                let n = index(payload);
                seen.server_got.push(n);
                seen.echo_backlog.push_back((session, n));
            }
            Event::Connected { link, .. } => seen.server_links.push(link),
            Event::Session { session, note } => match note {
                SessionNote::Established { resumed, .. } => {
                    seen.server_session = Some(session);
                    seen.resumed += u32::from(resumed);
                }
                SessionNote::Ended(how) => seen.ended.push((true, how)),
                SessionNote::Reconnecting { .. } => panic!("servers do not reconnect"),
            },
            _ => {}
        }
    }
    // Echo in order; a full session queue is backpressure: retry next turn.
    while let Some(&(s, n)) = seen.echo_backlog.front() {
        match server.session_send(s, format!("MSG{n}").as_bytes()) {
            Ok(_) => {
                seen.echo_backlog.pop_front();
            }
            Err(mooring::session::SessionError::QueueFull) => break,
            Err(e) => panic!("echo refused: {e:?}"),
        }
    }
    client.poll(Some(Duration::from_millis(2))).unwrap();
    while let Some(ev) = client.next_event() {
        match ev {
            Event::SessionMessage { payload, .. } => seen.client_got.push(index(payload)),
            Event::Session { note, .. } => match note {
                SessionNote::Reconnecting { .. } => seen.reconnecting += 1,
                SessionNote::Ended(how) => seen.ended.push((false, how)),
                SessionNote::Established { .. } => {}
            },
            _ => {}
        }
    }
}

#[test]
fn links_cut_mid_stream_are_resumed_with_every_message_exactly_once_in_order() {
    let (mut server, mut client, addr, connect) = nodes(Duration::from_secs(30));
    let id = client.open_session(addr, &connect).unwrap();
    let mut seen = Seen::default();
    let total = 600u32;
    let mut next = 1u32;
    let start = Instant::now();
    let mut cuts = 0;
    while (seen.server_got.len() < total as usize || seen.client_got.len() < total as usize)
        && start.elapsed() < LIMIT
    {
        // Send in bursts, as far as the session's bound allows.
        while next <= total {
            match client.session_send(id, format!("MSG{next}").as_bytes()) {
                Ok(_) => next += 1,
                Err(_) => break, // QueueFull: backpressure, try again next turn
            }
            if next.is_multiple_of(50) {
                break;
            }
        }
        turn(&mut server, &mut client, &mut seen);
        // Cut the server's link mid-stream, several times.
        let got = seen.server_got.len();
        // Cuts at 80, 160, ... 400 of 600: each must be resumed to finish.
        if cuts < 5 && got > 80 * (cuts + 1) {
            if let Some(&link) = seen.server_links.last() {
                if server.is_open(link) {
                    server.close(link);
                    cuts += 1;
                }
            }
        }
    }
    let expected: Vec<u32> = (1..=total).collect();
    assert_eq!(cuts, 5, "the test cut the link five times");
    assert_eq!(
        seen.server_got, expected,
        "server got every message once, in order"
    );
    assert_eq!(
        seen.client_got, expected,
        "client got every echo once, in order"
    );
    assert!(seen.reconnecting >= 5, "each cut made the client reconnect");
    assert!(seen.resumed >= 5, "each reconnect resumed the same session");
    assert!(seen.ended.is_empty(), "no session ended: {:?}", seen.ended);
    assert!(seen.server_links.len() >= 6);
}

/// A HELLO in an MLLP frame, as a raw peer writes it.
fn hello_frame(g: Greeting) -> Vec<u8> {
    common::wire_mllp(&Msg::Hello(g))
}

/// Polls the server until a link closes; its reason.
fn next_close(server: &mut Node) -> Option<CloseReason> {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        server.poll(Some(Duration::from_millis(5))).unwrap();
        while let Some(ev) = server.next_event() {
            if let Event::Closed { reason, .. } = ev {
                return Some(reason);
            }
        }
    }
    None
}

#[test]
fn a_hello_claiming_u64_max_received_closes_its_link_as_session_lost_and_the_server_serves_on() {
    let (mut server, mut client, addr, connect) = nodes(Duration::from_secs(30));
    for claim in [u64::MAX, 1 << 63] {
        let mut hostile = std::net::TcpStream::connect(addr).unwrap();
        let g = Greeting {
            last_received: claim,
            ..Greeting::new_session()
        };
        hostile.write_all(&hello_frame(g)).unwrap();
        assert_eq!(next_close(&mut server), Some(CloseReason::SessionLost));
    }
    let id = client.open_session(addr, &connect).unwrap();
    let mut seen = Seen::default();
    client.session_send(id, b"MSG1").unwrap();
    let start = Instant::now();
    while seen.client_got.is_empty() && start.elapsed() < LIMIT {
        turn(&mut server, &mut client, &mut seen);
    }
    assert_eq!(seen.client_got, vec![1], "a legitimate session is served");
}

#[test]
fn a_resume_with_the_wrong_token_is_refused_and_counted() {
    let (mut server, mut client, addr, connect) = nodes(Duration::from_secs(30));
    let id = client.open_session(addr, &connect).unwrap();
    let mut seen = Seen::default();
    client.session_send(id, b"MSG1").unwrap();
    let start = Instant::now();
    while seen.server_got.is_empty() && start.elapsed() < LIMIT {
        turn(&mut server, &mut client, &mut seen);
    }
    // An intruder knows the session id (ids are small numbers) but not the token.
    let mut intruder = std::net::TcpStream::connect(addr).unwrap();
    let g = Greeting {
        session: 1,
        token: [0xAA; wire::TOKEN_LEN],
        ..Greeting::new_session()
    };
    intruder.write_all(&hello_frame(g)).unwrap();
    assert_eq!(next_close(&mut server), Some(CloseReason::BadToken));
    assert_eq!(server.stats().bad_tokens, 1);
    // The real session is untouched.
    client.session_send(id, b"MSG2").unwrap();
    let start = Instant::now();
    while seen.client_got.len() < 2 && start.elapsed() < LIMIT {
        turn(&mut server, &mut client, &mut seen);
    }
    assert_eq!(seen.server_got, vec![1, 2]);
    assert_eq!(seen.client_got, vec![1, 2]);
}

#[test]
fn a_client_away_past_the_resume_window_and_the_server_both_learn_the_session_expired() {
    let resume = Duration::from_millis(300);
    let (mut server, mut client, addr, connect) = nodes(resume);
    let id = client.open_session(addr, &connect).unwrap();
    let mut seen = Seen::default();
    client.session_send(id, b"MSG1").unwrap();
    let start = Instant::now();
    // Until both ends have everything acknowledged (ACKs are batched).
    while start.elapsed() < LIMIT
        && !(seen.client_got == [1]
            && client.session_unacked(id) == Some(0)
            && seen
                .server_session
                .is_some_and(|s| server.session_unacked(s) == Some(0)))
    {
        turn(&mut server, &mut client, &mut seen);
    }
    // Cut the link, then keep the client away (not polled) past the window while
    // the server still has a message for it.
    let link = *seen.server_links.last().unwrap();
    server.close(link);
    let s = seen.server_session.unwrap();
    server.session_send(s, b"MSG99").unwrap();
    let away = Instant::now();
    while away.elapsed() < resume + Duration::from_millis(200) {
        server.poll(Some(Duration::from_millis(20))).unwrap();
        while let Some(ev) = server.next_event() {
            if let Event::Session {
                note: SessionNote::Ended(how),
                ..
            } = ev
            {
                seen.ended.push((true, how));
            }
        }
    }
    assert_eq!(
        seen.ended,
        vec![(true, SessionEnd::Expired { undelivered: 1 })],
        "the server's application learns the session expired, with the message in doubt"
    );
    let start = Instant::now();
    while seen.ended.len() < 2 && start.elapsed() < LIMIT {
        turn(&mut server, &mut client, &mut seen);
    }
    assert_eq!(
        seen.ended[1],
        (false, SessionEnd::Expired { undelivered: 0 }),
        "the client learns it on its resume"
    );
}

/// A session opened to a server that speaks the protocol but keeps no
/// sessions: its link closes naming that (`NoSessions`, before the session's
/// end is reported), and the session ends.
#[test]
fn a_session_to_a_server_without_sessions_closes_its_link_with_no_sessions() {
    let (_, mut client, _, connect) = nodes(Duration::from_secs(5));
    let mut server = Node::new(NodeConfig::default()).unwrap();
    let l = server
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                liveness: mooring(),
                ..ListenConfig::default()
            },
        )
        .unwrap();
    let addr = server.local_addr(l).unwrap();
    let s = client.open_session(addr, &connect).unwrap();
    let deadline = Instant::now() + LIMIT;
    let mut seen = Vec::new();
    while !seen.iter().any(|e: &String| e.starts_with("ended")) {
        assert!(
            Instant::now() < deadline,
            "no end within {LIMIT:?}: {seen:?}"
        );
        server.poll(Some(Duration::from_millis(2))).unwrap();
        while server.next_event().is_some() {}
        client.poll(Some(Duration::from_millis(2))).unwrap();
        while let Some(ev) = client.next_event() {
            match ev {
                Event::Closed { reason, .. } => seen.push(format!("closed {reason}")),
                Event::Session { session, note } => {
                    assert_eq!(session, s);
                    if let SessionNote::Ended(how) = note {
                        seen.push(format!("ended {how:?}"));
                    }
                }
                _ => {}
            }
        }
    }
    assert_eq!(seen[0], "closed NoSessions", "{seen:?}");
    assert!(seen[1].starts_with("ended Lost"), "{seen:?}");
}

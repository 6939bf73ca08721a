//! The library's graceful shutdown ([`Node::begin_shutdown`]) and wake sources
//! ([`Node::register_wake_source`]), driven on loopback from the test thread.

use std::io::Write;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mooring::{
    CloseReason, ConnectConfig, Event, LinkId, ListenConfig, LivenessConfig, Node, NodeConfig,
    Protocol,
};

mod common;

use common::{acked_id, hl7_ack_for, hl7_msg, mllp, Peer, ReadEnd, PATIENCE};

/// What the test saw of one node's events.
#[derive(Debug, PartialEq)]
enum Seen {
    Connected(LinkId),
    Message(LinkId, String),
    Closed(CloseReason, Option<CloseReason>),
    Other,
}

/// Polls `node` once (up to `wait`) and returns its events.
fn turn(node: &mut Node, wait: Duration) -> Vec<Seen> {
    node.poll(Some(wait)).expect("poll");
    let mut out = Vec::new();
    while let Some(ev) = node.next_event() {
        out.push(match ev {
            Event::Connected { link, .. } => Seen::Connected(link),
            Event::Message { link, payload } => Seen::Message(link, common::control_id(payload)),
            Event::Closed {
                reason,
                peer_reason,
                ..
            } => Seen::Closed(reason, peer_reason),
            _ => Seen::Other,
        });
    }
    out
}

fn server(protocol: Protocol) -> (Node, std::net::SocketAddr) {
    let mut node = Node::new(NodeConfig::default()).expect("node");
    let listen = ListenConfig {
        liveness: LivenessConfig {
            protocol,
            ..LivenessConfig::default()
        },
        ..ListenConfig::default()
    };
    let l = node.listen(common::any_port(), listen).expect("listen");
    let addr = node.local_addr(l).expect("addr");
    (node, addr)
}

#[test]
fn a_shutdown_answers_what_was_taken_refuses_newcomers_and_closes_accepted_links() {
    let (mut node, addr) = server(Protocol::Raw);
    let mut peer = Peer::connect(addr);
    // Two messages in one write: the node takes the first, the second waits.
    let mut both = mllp(&hl7_msg("TAKEN"));
    both.extend_from_slice(&mllp(&hl7_msg("UNREAD")));
    peer.send(&both);
    let deadline = Instant::now() + PATIENCE;
    let link = loop {
        assert!(Instant::now() < deadline, "no message");
        node.poll(Some(Duration::from_millis(50))).expect("poll");
        let mut got = None;
        while let Some(ev) = node.next_event() {
            if let Event::Message { link, .. } = ev {
                got = Some(link);
                break; // the second message stays unread
            }
        }
        if let Some(l) = got {
            break l;
        }
    };
    node.send(link, &hl7_ack_for("TAKEN"))
        .expect("reply queued");
    assert!(!node.is_shutting_down());
    node.begin_shutdown();
    assert!(node.is_shutting_down());
    // The listener stopped listening: a newcomer is refused.
    let refused = TcpStream::connect_timeout(&addr, PATIENCE);
    assert!(refused.is_err(), "connected after begin_shutdown");
    let mut closes = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !node.is_drained() {
        assert!(Instant::now() < deadline, "not drained: {closes:?}");
        closes.extend(turn(&mut node, Duration::from_millis(50)));
    }
    closes.extend(turn(&mut node, Duration::ZERO));
    assert!(
        closes.contains(&Seen::Closed(CloseReason::LocalClose, None)),
        "{closes:?}"
    );
    assert!(
        !closes.iter().any(|s| matches!(s, Seen::Message(..))),
        "nothing more taken after begin_shutdown: {closes:?}"
    );
    // The peer got the reply to what was taken, then the close; no reply to
    // the unread message (its sender will send it again).
    assert_eq!(acked_id(&peer.read_mllp(PATIENCE).expect("reply")), "TAKEN");
    assert_eq!(peer.read_mllp(PATIENCE), Err(ReadEnd::Closed));
}

#[test]
fn mooring_peers_hear_why_the_link_closed_and_outbound_links_stay_for_the_application() {
    let (mut srv, addr) = server(Protocol::Mooring);
    let mut cli = Node::new(NodeConfig::default()).expect("client node");
    let cfg = ConnectConfig {
        liveness: LivenessConfig {
            protocol: Protocol::Mooring,
            ..LivenessConfig::default()
        },
        ..ConnectConfig::default()
    };
    let out = cli.connect(addr, &cfg).expect("connect");
    // Both sides see the link up (after the handshake).
    let (mut up_srv, mut up_cli) = (false, false);
    let deadline = Instant::now() + PATIENCE;
    while !(up_srv && up_cli) {
        assert!(Instant::now() < deadline, "no handshake");
        up_srv |= turn(&mut srv, Duration::from_millis(5))
            .iter()
            .any(|s| matches!(s, Seen::Connected(_)));
        up_cli |= turn(&mut cli, Duration::from_millis(5))
            .iter()
            .any(|s| matches!(s, Seen::Connected(_)));
    }
    // The client node shutting down leaves its outbound link alone...
    cli.begin_shutdown();
    assert!(cli.is_drained(), "no accepted link to wait for");
    assert!(
        cli.is_open(out),
        "outbound links are the application's to close"
    );
    // ...the server's accepted link closes with a CLOSE that says LocalClose.
    srv.begin_shutdown();
    let mut heard = Vec::new();
    let deadline = Instant::now() + PATIENCE;
    while !heard.iter().any(|s| matches!(s, Seen::Closed(..))) {
        assert!(
            Instant::now() < deadline,
            "the client heard nothing: {heard:?}"
        );
        turn(&mut srv, Duration::from_millis(5));
        heard.extend(turn(&mut cli, Duration::from_millis(5)));
    }
    assert!(
        heard.contains(&Seen::Closed(
            CloseReason::PeerClosed,
            Some(CloseReason::LocalClose)
        )),
        "{heard:?}"
    );
    // close_all ends what is left.
    let (mut srv2, addr2) = server(Protocol::Raw);
    let out2 = cli
        .connect(addr2, &ConnectConfig::default())
        .expect("connect");
    let deadline = Instant::now() + PATIENCE;
    while !cli.is_open(out2) {
        assert!(Instant::now() < deadline, "no connect");
        turn(&mut srv2, Duration::from_millis(5));
        turn(&mut cli, Duration::from_millis(5));
    }
    cli.close_all();
    assert!(!cli.is_open(out2));
    assert_eq!(
        cli.links_in_use(),
        0,
        "every slot free: {:?}",
        turn(&mut cli, Duration::ZERO)
    );
}

#[test]
fn a_wake_source_ends_the_poll_and_is_reported_once() {
    let mut node = Node::new(NodeConfig::default()).expect("node");
    let (mut rx, mut tx) = mio::net::UnixStream::pair().expect("pair");
    node.register_wake_source(&mut rx).expect("register");
    assert!(!node.take_wakeup());
    tx.write_all(b"x").expect("write");
    let t0 = Instant::now();
    node.poll(Some(Duration::from_secs(10))).expect("poll");
    assert!(
        t0.elapsed() < Duration::from_secs(5),
        "woken, not timed out"
    );
    assert!(node.take_wakeup());
    assert!(!node.take_wakeup(), "reported once");
}

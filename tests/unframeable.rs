//! Payloads a framing cannot carry are refused by name at send time: MLLP
//! frames are delimited by `0x0B … 0x1C 0x0D`, so a payload holding `0x0B` or
//! `0x1C` would break the peer's stream (raw links) or stall a session that
//! replays the same broken frame at every resume. Len32 carries any byte.

mod common;

use std::time::{Duration, Instant};

use mooring::session::{SessionConfig, SessionError};
use mooring::{
    hl7, Client, ClientConfig, ConnectConfig, Event, Framing, LinkId, ListenConfig, Node,
    NodeConfig, RequestError, SendError, SessionId, SessionNote,
};

/// A node that is both ends of one reliable session over loopback.
fn session_node(framing: Framing) -> (Node, SessionId) {
    common::session_loopback(framing, SessionConfig::default())
}

/// Sends `msg` from the client; the server side echoes it back. Panics when
/// the echo does not come back within 10 s (a stall) or a session ends.
fn echo(node: &mut Node, client: SessionId, msg: &[u8]) {
    node.session_send(client, msg).expect("queued");
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut buf = [0u8; 64];
    loop {
        assert!(
            Instant::now() < deadline,
            "session exchange of {msg:?} stalled"
        );
        node.poll(Some(Duration::from_millis(50))).expect("poll");
        while let Some(ev) = node.next_event() {
            let reply = match ev {
                Event::Session {
                    note: SessionNote::Ended(how),
                    ..
                } => panic!("session ended: {how:?}"),
                Event::SessionMessage { session, payload } if session == client => {
                    assert_eq!(payload, msg, "the echo of this message");
                    return;
                }
                Event::SessionMessage { session, payload } => {
                    buf[..payload.len()].copy_from_slice(payload);
                    Some((session, payload.len()))
                }
                _ => None,
            };
            if let Some((s, n)) = reply {
                node.session_send(s, &buf[..n]).expect("echo queued");
            }
        }
    }
}

#[test]
fn an_mllp_session_refuses_block_bytes_by_name_and_keeps_running() {
    let (mut node, client) = session_node(Framing::Mllp);
    for n in 0u32..3 {
        echo(&mut node, client, &n.to_le_bytes());
    }
    for bad in [11u32, 28, 0x0B00, 0x1C0D_0000] {
        assert_eq!(
            node.session_send(client, &bad.to_le_bytes()),
            Err(SessionError::Unframeable),
            "payload {:02x?}",
            bad.to_le_bytes()
        );
    }
    // Nothing was queued: the session carries on.
    for n in 12u32..15 {
        echo(&mut node, client, &n.to_le_bytes());
    }
}

#[test]
fn a_len32_session_carries_every_byte() {
    let (mut node, client) = session_node(Framing::Len32);
    for n in [0u32, 11, 28, 0x1C0D_0B00, u32::MAX] {
        echo(&mut node, client, &n.to_le_bytes());
    }
}

/// Polls until a message arrives; returns its payload.
fn next_message(node: &mut Node) -> Vec<u8> {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        assert!(Instant::now() < deadline, "no message");
        node.poll(Some(Duration::from_millis(20))).expect("poll");
        while let Some(ev) = node.next_event() {
            if let Event::Message { payload, .. } = ev {
                return payload.to_vec();
            }
        }
    }
}

/// A node connected to its own listener over loopback: the node and the
/// link it dialled (what it sends there, it receives as a message).
fn self_link(framing: Framing) -> (Node, LinkId) {
    let mut node = Node::new(NodeConfig {
        framing,
        ..NodeConfig::default()
    })
    .unwrap();
    let l = node
        .listen("127.0.0.1:0".parse().unwrap(), ListenConfig::default())
        .unwrap();
    let addr = node.local_addr(l).unwrap();
    let link = node.connect(addr, &ConnectConfig::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut connected = false;
    while !connected {
        assert!(Instant::now() < deadline, "{framing:?}: not connected");
        node.poll(Some(Duration::from_millis(20))).expect("poll");
        while let Some(ev) = node.next_event() {
            connected |= matches!(ev, Event::Connected { link: c, .. } if c == link);
        }
    }
    (node, link)
}

#[test]
fn node_send_refuses_mllp_block_bytes_and_len32_carries_them() {
    // A 0x1C 0x0D inside would end an MLLP frame early and leave the rest as noise.
    let payload = b"A\x1c\rB\x0bC";
    for framing in [Framing::Mllp, Framing::Len32] {
        let (mut node, link) = self_link(framing);
        if framing == Framing::Mllp {
            assert_eq!(node.send(link, payload), Err(SendError::Unframeable));
            assert_eq!(node.send(link, &payload[..1]), Ok(()));
            assert_eq!(next_message(&mut node), b"A", "the stream stays intact");
        } else {
            assert_eq!(node.send(link, payload), Ok(()));
            assert_eq!(next_message(&mut node), payload, "len32 carries any byte");
        }
    }
}

#[test]
fn node_send_ack_skips_no_check_an_ack_needs() {
    // `send_ack` queues a plain ACK unscanned; an ACK copying a block byte
    // from its message (one that came over len32, or from anywhere) is not
    // plain and is refused exactly as `send` refuses it, and one copying a
    // tab (not plain, but carried) goes out whole.
    let (mut node, link) = self_link(Framing::Mllp);
    let stamp = b"20260101000000";
    for (msg, plain, sent) in [
        (
            &b"MSH|^~\\&|APP|FAC|||1||ADT^A01|ID1|P|2.5\r"[..],
            true,
            true,
        ),
        (b"MSH|^~\\&|APP|F\tAC|||1||ADT^A01|ID2|P|2.5\r", false, true),
        (
            b"MSH|^~\\&|AP\x0bP|FAC|||1||ADT^A01|ID3|P|2.5\r",
            false,
            false,
        ),
        (
            b"MSH|^~\\&|APP|FAC|||1||ADT^A01|ID4|P|2\x1c\r",
            false,
            false,
        ),
    ] {
        let mut out = [0u8; 256];
        let msh = hl7::Msh::parse(msg);
        let (_, ack) = hl7::build_ack_for_message(msh.as_ref(), stamp, &mut out);
        let ack = ack.expect("fits");
        assert_eq!(ack.is_plain(), plain, "{msg:?}");
        let bytes = ack.as_bytes().to_vec();
        if sent {
            assert_eq!(node.send_ack(link, ack), Ok(()), "{msg:?}");
            assert_eq!(next_message(&mut node), bytes, "the ACK, whole");
        } else {
            assert_eq!(
                node.send_ack(link, ack),
                Err(SendError::Unframeable),
                "{msg:?}"
            );
        }
    }
    // The stream stayed intact: what was refused left nothing behind.
    assert_eq!(node.send(link, b"after"), Ok(()));
    assert_eq!(next_message(&mut node), b"after");
}

#[test]
fn client_request_refuses_mllp_block_bytes_by_name() {
    // A listener that never reads: nothing may reach it anyway.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let cfg = ClientConfig {
        response_timeout: Duration::from_secs(1),
        ..ClientConfig::default()
    };
    let mut c = Client::new(addr, cfg).expect("client builds");
    assert_eq!(
        c.request(b"MSH|^~\\&|\x1c\r"),
        Err(RequestError::Unframeable)
    );
}

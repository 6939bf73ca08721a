//! `Node::forward`: a received message goes out again (echo on its own link, or
//! forwarded to another) copied once, from the receive buffer into the link's
//! transmit buffer; and only while that message is still held.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mooring::{Event, LinkId, ListenConfig, Node, NodeConfig, SendError};

fn mllp(payload: &[u8]) -> Vec<u8> {
    let mut v = vec![0x0B];
    v.extend_from_slice(payload);
    v.extend_from_slice(&[0x1C, 0x0D]);
    v
}

fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let mut chunk = [0u8; 65536];
    while !buf.ends_with(&[0x1C, 0x0D]) {
        let n = s.read(&mut chunk).expect("read within the timeout");
        assert!(n > 0, "closed before a whole frame");
        buf.extend_from_slice(&chunk[..n]);
    }
    buf[1..buf.len() - 2].to_vec()
}

fn node_with_listener(cfg: NodeConfig) -> (Node, std::net::SocketAddr) {
    let mut node = Node::new(cfg).unwrap();
    let l = node
        .listen("127.0.0.1:0".parse().unwrap(), ListenConfig::default())
        .unwrap();
    let addr = node.local_addr(l).unwrap();
    (node, addr)
}

/// Runs the node until `links` peers are connected; returns their links in order.
fn accept(node: &mut Node, links: usize) -> Vec<LinkId> {
    let mut got = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(5);
    while got.len() < links {
        assert!(Instant::now() < deadline, "peers never connected");
        node.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = node.next_event() {
            if let Event::Connected { link, .. } = ev {
                got.push(link);
            }
        }
    }
    got
}

#[test]
fn forward_echoes_small_and_large_messages_on_their_own_link() {
    let (mut node, addr) = node_with_listener(NodeConfig {
        buffer_size: 1024,
        max_frame: 256 * 1024,
        ..NodeConfig::default()
    });
    let mut peer = TcpStream::connect(addr).unwrap();
    peer.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    accept(&mut node, 1);
    for len in [5usize, 1000, 1021, 5000, 200_000] {
        let msg: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        peer.write_all(&mllp(&msg)).unwrap();
        let deadline = Instant::now() + Duration::from_secs(5);
        let mut echoed = false;
        while !echoed {
            assert!(Instant::now() < deadline, "no message of {len} bytes");
            node.poll(Some(Duration::from_millis(10))).unwrap();
            while let Some(ev) = node.next_event() {
                if let Event::Message { link, .. } = ev {
                    node.forward(link).unwrap();
                    echoed = true;
                }
            }
        }
        node.flush();
        assert_eq!(read_frame(&mut peer), msg, "{len} bytes echoed intact");
    }
}

#[test]
fn forward_sends_a_message_on_to_another_link_and_only_while_it_is_held() {
    let (mut node, addr) = node_with_listener(NodeConfig::default());
    let mut device = TcpStream::connect(addr).unwrap();
    let mut upstream = TcpStream::connect(addr).unwrap();
    upstream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    let links = accept(&mut node, 2);
    let (from_device, to_upstream) = (links[0], links[1]);
    assert_eq!(
        node.forward(to_upstream),
        Err(SendError::NoMessage),
        "nothing received yet"
    );
    device
        .write_all(&mllp(b"MSH|^~\\&|DEV|||||ORU^R01|F1|P|2.5"))
        .unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut forwarded = false;
    while !forwarded {
        assert!(Instant::now() < deadline, "no message");
        node.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = node.next_event() {
            if let Event::Message { link, .. } = ev {
                assert_eq!(link, from_device);
                node.forward(to_upstream).unwrap();
                forwarded = true;
            }
        }
    }
    // The next call consumed the message: it cannot be forwarded again.
    assert!(node.next_event().is_none());
    assert_eq!(node.forward(to_upstream), Err(SendError::NoMessage));
    node.flush();
    assert_eq!(
        read_frame(&mut upstream),
        b"MSH|^~\\&|DEV|||||ORU^R01|F1|P|2.5"
    );
}

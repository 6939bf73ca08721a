//! `Node::forward`: a received message goes out again (echo on its own link, or
//! forwarded to another) copied once, from the receive buffer into the link's
//! transmit buffer; and only while that message is still held.

mod common;

use std::time::{Duration, Instant};

use common::Peer;

use mooring::{Event, LinkId, ListenConfig, Node, NodeConfig, SendError};

/// Bound on reading one frame back.
const WAIT: Duration = Duration::from_secs(5);

fn node_with_listener(cfg: NodeConfig) -> (Node, std::net::SocketAddr) {
    let (node, l) = common::listening_node(cfg, ListenConfig::default());
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
    let mut peer = Peer::connect(addr);
    accept(&mut node, 1);
    for len in [5usize, 1000, 1021, 5000, 200_000] {
        let msg: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
        peer.send_mllp(&msg);
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
        assert_eq!(
            peer.read_mllp(WAIT).expect("a whole frame"),
            msg,
            "{len} bytes echoed intact"
        );
    }
}

#[test]
fn forward_sends_a_message_on_to_another_link_and_only_while_it_is_held() {
    let (mut node, addr) = node_with_listener(NodeConfig::default());
    let mut device = Peer::connect(addr);
    let mut upstream = Peer::connect(addr);
    let links = accept(&mut node, 2);
    let (from_device, to_upstream) = (links[0], links[1]);
    assert_eq!(
        node.forward(to_upstream),
        Err(SendError::NoMessage),
        "nothing received yet"
    );
    device.send_mllp(b"MSH|^~\\&|DEV|||||ORU^R01|F1|P|2.5");
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
        upstream.read_mllp(WAIT).expect("a whole frame"),
        b"MSH|^~\\&|DEV|||||ORU^R01|F1|P|2.5"
    );
}

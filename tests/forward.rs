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

#[test]
fn a_pipelined_burst_echoes_intact_and_in_order_across_block_ends() {
    // Replies fill the working transmit block, its tail runs short, the queue
    // passes the 32 KiB write mark: small frames are queued inline while they
    // fit the block's tail, by the general path otherwise. Every reply, by
    // `forward` and by `send` alike, must arrive intact and in order.
    for framing in [mooring::Framing::Mllp, mooring::Framing::Len32] {
        let (mut node, addr) = node_with_listener(NodeConfig {
            framing,
            buffer_size: 4096,
            max_frame: 64 * 1024,
            ..NodeConfig::default()
        });
        let mut peer = Peer::connect(addr);
        accept(&mut node, 1);
        let msgs: Vec<Vec<u8>> = (0..400usize)
            .map(|n| {
                let len = [0, 1, 7, 300, 1500, 2047, 4000, 40_000][n % 8] + n % 3;
                (0..len).map(|i| b'a' + ((i + n) % 26) as u8).collect()
            })
            .collect();
        let mut wire = Vec::new();
        for m in &msgs {
            match framing {
                mooring::Framing::Mllp => {
                    wire.push(0x0B);
                    wire.extend_from_slice(m);
                    wire.extend_from_slice(&[0x1C, 0x0D]);
                }
                _ => wire.extend_from_slice(&common::len32(m)),
            }
        }
        // The peer writes from its own thread while the node echoes, so
        // neither side's socket buffer has to hold the whole burst.
        let mut writer = peer.stream.try_clone().expect("clone");
        let sender = std::thread::spawn(move || {
            use std::io::Write;
            writer.write_all(&wire).unwrap();
        });
        let mut got = Vec::new();
        let deadline = Instant::now() + Duration::from_secs(20);
        let mut n = 0usize;
        while got.len() < msgs.len() {
            assert!(
                Instant::now() < deadline,
                "{framing:?}: {} of {} echoed",
                got.len(),
                msgs.len()
            );
            node.poll(Some(Duration::from_millis(5))).unwrap();
            while let Some(ev) = node.next_event() {
                if let Event::Message { link, payload } = ev {
                    if n.is_multiple_of(2) {
                        node.forward(link).unwrap();
                    } else {
                        let copy = payload.to_vec();
                        node.send(link, &copy).unwrap();
                    }
                    n += 1;
                }
            }
            node.flush();
            while let Ok(m) = match framing {
                mooring::Framing::Mllp => peer.read_mllp(Duration::from_millis(1)),
                _ => peer.read_len32(Duration::from_millis(1)),
            } {
                got.push(m);
            }
        }
        sender.join().unwrap();
        assert_eq!(got.len(), msgs.len(), "{framing:?}");
        for (i, (g, m)) in got.iter().zip(&msgs).enumerate() {
            assert!(g == m, "{framing:?}: reply {i} ({} bytes) differs", m.len());
        }
    }
}

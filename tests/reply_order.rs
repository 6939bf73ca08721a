//! Replies queued while a poll's events are handled go out in the order their
//! links were served: the link read first is answered first. (Last in, first
//! out made the first link served wait for every other link's write, and its
//! peer's next frames then came last: the wide latency tail of many links.)

use std::collections::HashMap;
use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mooring::{CloseReason, Event, Framing, LinkId, ListenConfig, NodeConfig, ServerPolicy};

mod common;
use common::{len32, listening_node};

const LIMIT: Duration = Duration::from_secs(20);
const LINKS: usize = 6;

/// Each link closes once its reply is written, so the order of the `Closed`
/// reports is the order of the writes.
#[test]
fn replies_are_written_in_the_order_their_links_were_served() {
    let cfg = NodeConfig {
        framing: Framing::Len32,
        ..NodeConfig::default()
    };
    let listen = ListenConfig {
        policy: ServerPolicy::CloseAfterReply,
        ..ListenConfig::default()
    };
    let (mut node, l) = listening_node(cfg, listen);
    let addr = node.local_addr(l).expect("bound");
    let mut clients: Vec<TcpStream> = (0..LINKS)
        .map(|_| TcpStream::connect(addr).expect("connect"))
        .collect();
    let by_peer: HashMap<SocketAddr, usize> = clients
        .iter()
        .enumerate()
        .map(|(k, c)| (c.local_addr().expect("local"), k))
        .collect();
    let mut link_of: HashMap<LinkId, usize> = HashMap::new();
    let deadline = Instant::now() + LIMIT;
    while link_of.len() < LINKS {
        assert!(
            Instant::now() < deadline,
            "{} links accepted",
            link_of.len()
        );
        node.poll(Some(Duration::from_millis(20))).expect("poll");
        while let Some(ev) = node.next_event() {
            if let Event::Connected { link, peer, .. } = ev {
                link_of.insert(link, by_peer[&peer]);
            }
        }
    }
    // Every link readable before the node polls (loopback writes land at
    // once): one poll finds them all, in the order written (epoll's).
    for (k, c) in clients.iter_mut().enumerate().rev() {
        c.write_all(&len32(format!("m{k}").as_bytes()))
            .expect("write");
    }
    node.poll(Some(LIMIT)).expect("poll");
    let mut served = Vec::new();
    while let Some(ev) = node.next_event() {
        if let Event::Message { link, .. } = ev {
            served.push(link_of[&link]);
            node.forward(link).expect("echo queued");
        }
    }
    assert_eq!(
        served.len(),
        LINKS,
        "one poll served every link: {served:?}"
    );
    let mut written = Vec::new();
    while written.len() < LINKS {
        assert!(Instant::now() < deadline, "closed so far: {written:?}");
        node.poll(Some(Duration::from_millis(20))).expect("poll");
        while let Some(ev) = node.next_event() {
            if let Event::Closed { link, reason, .. } = ev {
                assert_eq!(reason, CloseReason::ClosedAfterReply);
                written.push(link_of[&link]);
            }
        }
    }
    assert_eq!(written, served, "replies written in the order served");
}

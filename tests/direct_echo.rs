//! Large echoes written straight from the receive block (`Node::forward`, as
//! `Reply::echo` uses it) over real loopback sockets: when the socket takes
//! only part of a frame the rest follows from the transmit block, a large
//! frame never overtakes replies already queued, and every frame and byte is
//! counted as on the copying path.

mod common;

use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use common::*;
use mooring::{Event, Framing, LinkId, ListenConfig, Node, NodeConfig};

/// Frames of this size or more are written straight out.
const DIRECT: usize = 8 * 1024;

/// A large frame: large enough that a peer which does not read soon leaves
/// the node's socket with no room for a whole one.
const BIG: usize = 200_000;

/// The messages the peer sends. First large ones, each echoed onto an empty
/// queue, more than a loopback socket's send buffer holds (4 MiB at most):
/// the peer reads nothing until one is taken only in part. Then a small one
/// before every `BIG` one, so that a small reply is still queued when a
/// large frame is echoed, and one of another size after it.
fn messages() -> Vec<Vec<u8>> {
    (0..60u32)
        .map(|n| {
            let len = match n % 3 {
                _ if n < 24 => 300_000 + 10 * n as usize,
                0 => 100,
                1 => BIG,
                _ => 9_000 + 1_000 * n as usize,
            };
            let mut m = format!("{n:06}|").into_bytes();
            m.extend((0..len).map(|i| b'A' + ((i + n as usize) % 26) as u8));
            m
        })
        .collect()
}

fn framed(framing: Framing, payload: &[u8]) -> Vec<u8> {
    match framing {
        Framing::Mllp => {
            let mut w = vec![0x0B];
            w.extend_from_slice(payload);
            w.extend_from_slice(&[0x1C, 0x0D]);
            w
        }
        _ => len32(payload),
    }
}

/// A client whose receive window is small, so the node's socket fills soon.
fn small_window_client(addr: SocketAddr) -> Peer {
    use socket2::{Domain, Socket, Type};
    let s = Socket::new(Domain::IPV4, Type::STREAM, None).expect("socket");
    s.set_recv_buffer_size(8 * 1024).expect("SO_RCVBUF");
    s.connect(&addr.into()).expect("connect");
    Peer::wrap(s.into())
}

fn accept_one(node: &mut Node) -> LinkId {
    let deadline = Instant::now() + PATIENCE;
    loop {
        assert!(Instant::now() < deadline, "never connected");
        node.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = node.next_event() {
            if let Event::Connected { link, .. } = ev {
                return link;
            }
        }
    }
}

/// What the echo loop saw of the node's transmit queue around each large echo.
#[derive(Default)]
struct Seen {
    /// Large frames echoed onto an empty queue that the socket took only in part.
    partial: usize,
    /// Large frames echoed while replies were already queued.
    behind_queued: usize,
}

#[test]
fn large_echoes_the_socket_takes_in_part_arrive_whole_in_order_and_behind_queued_replies() {
    for framing in [Framing::Mllp, Framing::Len32] {
        let (mut node, l) = listening_node(
            NodeConfig {
                framing,
                buffer_size: 4096,
                max_frame: 512 * 1024,
                ..NodeConfig::default()
            },
            ListenConfig::default(),
        );
        let peer = small_window_client(node.local_addr(l).unwrap());
        let link = accept_one(&mut node);

        let msgs = messages();
        let wire: Vec<u8> = msgs.iter().flat_map(|m| framed(framing, m)).collect();
        let mut writer = peer.stream.try_clone().expect("clone");
        let total = wire.len();
        let sender = std::thread::spawn(move || {
            use std::io::Write;
            writer.write_all(&wire)
        });
        // The reader starts once the node's socket has pushed back (or all is
        // echoed), so the first large echoes meet a full socket.
        let (go, wait) = mpsc::channel::<()>();
        let count = msgs.len();
        let reader = std::thread::spawn(move || {
            let _ = wait.recv();
            let mut p = peer;
            (0..count)
                .map(|_| match framing {
                    Framing::Mllp => p.read_mllp(PATIENCE),
                    Framing::Len32 => p.read_len32(PATIENCE),
                })
                .collect::<Result<Vec<_>, _>>()
        });

        let mut go = Some(go);
        let mut seen = Seen::default();
        let mut echoed = 0;
        let deadline = Instant::now() + 4 * PATIENCE;
        while echoed < count || node.tx_pending(link) > 0 {
            assert!(
                Instant::now() < deadline,
                "{framing:?}: {echoed} of {count} echoed, {} bytes queued",
                node.tx_pending(link)
            );
            node.poll(Some(Duration::from_millis(10))).unwrap();
            while let Some(ev) = node.next_event() {
                match ev {
                    Event::Message { link: l, payload } => {
                        assert_eq!(l, link);
                        let len = framed(framing, payload).len();
                        let before = node.tx_pending(link);
                        node.forward(link)
                            .unwrap_or_else(|e| panic!("{framing:?}: echo {echoed}: {e}"));
                        let after = node.tx_pending(link);
                        if len >= DIRECT {
                            seen.partial += usize::from(before == 0 && after > 0 && after < len);
                            seen.behind_queued += usize::from(before > 0);
                            if after > 0 {
                                // Pushed back: time to read.
                                go.take().map(|g| g.send(()));
                            }
                        }
                        echoed += 1;
                    }
                    Event::Closed { reason, .. } => panic!("{framing:?}: closed: {reason}"),
                    _ => {}
                }
            }
        }
        go.take().map(|g| g.send(()));
        sender.join().unwrap().expect("the peer sent every message");
        let got = reader.join().unwrap().expect("every echo");
        for (n, (got, want)) in got.iter().zip(&msgs).enumerate() {
            assert!(
                got == want,
                "{framing:?}: echo {n} differs ({} bytes, {} sent)",
                got.len(),
                want.len()
            );
        }
        assert!(
            seen.partial > 0,
            "{framing:?}: no large echo was taken only in part"
        );
        assert!(
            seen.behind_queued > 0,
            "{framing:?}: no large echo met a queued reply"
        );
        let st = node.link_stats(link).expect("open");
        assert_eq!(
            (st.frames_in, st.frames_out),
            (count as u64, count as u64),
            "{framing:?}"
        );
        assert_eq!(
            (st.bytes_in, st.bytes_out),
            (total as u64, total as u64),
            "{framing:?}"
        );
        let ns = node.stats();
        assert_eq!(
            (ns.frames_out, ns.bytes_out),
            (count as u64, total as u64),
            "{framing:?}"
        );
    }
}

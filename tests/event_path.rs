//! The node's per-frame fast path (`Node::next_event` for plain links: raw
//! protocol, no session, no reply policy) against the general path, where
//! they could part ways: frames of a session link, of a close-after-reply link
//! and of a plain link arriving in the same bursts, on one node, and a plain
//! link held for backpressure mid-burst then released. Each link must get
//! exactly what its own rules give, whichever path took its frames.
//! The first frame after each read takes the general
//! path, so each test here sends bursts: the frames behind it are the fast
//! path's to take or to leave.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mooring::internals::simnet::{SimConfig, SimNet};
use mooring::session::SessionConfig;
use mooring::{
    CloseReason, ConnectConfig, Event, Framing, LinkId, ListenConfig, LivenessConfig, ManualClock,
    Node, NodeConfig, Protocol, ServerPolicy, SessionNote,
};

const LIMIT: Duration = Duration::from_secs(20);

/// Frames each client writes in one burst (several frames per read).
const BURST: usize = 200;

fn payload(n: usize) -> Vec<u8> {
    format!("MSG{n:06}|padding so that frames share reads").into_bytes()
}

#[test]
fn a_session_link_never_takes_the_raw_fast_path() {
    let (mut node, client) = common::session_loopback(Framing::Len32, SessionConfig::default());
    // Queued at once: they go out, and arrive, in bursts of frames.
    for n in 0..BURST {
        node.session_send(client, &payload(n)).expect("queued");
    }
    let mut got = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while got.len() < BURST {
        assert!(
            Instant::now() < deadline,
            "{} of {BURST} arrived",
            got.len()
        );
        node.poll(Some(Duration::from_millis(20))).expect("poll");
        while let Some(ev) = node.next_event() {
            match ev {
                // The DATA header taken off, in order, once each.
                Event::SessionMessage { session, payload } if session != client => {
                    got.push(payload.to_vec())
                }
                Event::Message { payload, .. } => panic!(
                    "a session's frame was delivered as a raw message: {:?}",
                    String::from_utf8_lossy(payload)
                ),
                Event::Session {
                    note: SessionNote::Ended(how),
                    ..
                } => panic!("session ended: {how:?}"),
                _ => {}
            }
        }
    }
    for (n, p) in got.iter().enumerate() {
        assert_eq!(p, &payload(n), "message {n}");
    }
}

/// Reads len32 frames from `s` until `count` arrived or the peer closed;
/// returns them and whether it closed.
fn read_frames(s: &mut TcpStream, count: usize) -> (Vec<Vec<u8>>, bool) {
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut frames = Vec::new();
    let mut head = [0u8; 4];
    while frames.len() < count {
        if s.read_exact(&mut head).is_err() {
            return (frames, true);
        }
        let mut p = vec![0u8; u32::from_be_bytes(head) as usize];
        s.read_exact(&mut p).expect("a whole frame");
        frames.push(p);
    }
    (frames, false)
}

#[test]
fn plain_and_close_after_reply_links_on_one_node_each_keep_their_rules() {
    let (mut node, plain) = common::listening_node(
        NodeConfig {
            framing: Framing::Len32,
            ..NodeConfig::default()
        },
        ListenConfig::default(),
    );
    let once = node
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                policy: ServerPolicy::CloseAfterReply,
                ..ListenConfig::default()
            },
        )
        .expect("listens");
    let burst: Vec<u8> = (0..BURST)
        .flat_map(|n| common::len32(&payload(n)))
        .collect();
    let mut a = TcpStream::connect(node.local_addr(plain).unwrap()).expect("connect");
    let mut b = TcpStream::connect(node.local_addr(once).unwrap()).expect("connect");
    a.write_all(&burst).expect("burst a");
    b.write_all(&burst).expect("burst b");
    // The node echoes every message it delivers, in the same turn.
    let driver = std::thread::spawn(move || {
        let mut delivered: Vec<(LinkId, Vec<u8>)> = Vec::new();
        let mut closed = Vec::new();
        let deadline = Instant::now() + LIMIT;
        while delivered.len() < BURST + 1 || closed.is_empty() {
            assert!(Instant::now() < deadline, "{} delivered", delivered.len());
            node.poll(Some(Duration::from_millis(20))).expect("poll");
            while let Some(ev) = node.next_event() {
                match ev {
                    Event::Message { link, payload } => {
                        delivered.push((link, payload.to_vec()));
                        node.forward(link).expect("echo queued");
                    }
                    Event::Closed { link, reason, .. } => closed.push((link, reason)),
                    _ => {}
                }
            }
        }
        (delivered, closed)
    });
    let (echoes_a, closed_a) = read_frames(&mut a, BURST);
    let (echoes_b, closed_b) = read_frames(&mut b, 2);
    let (delivered, closed) = driver.join().expect("driver");
    assert!(!closed_a, "the plain link stays open");
    for (n, p) in echoes_a.iter().enumerate() {
        assert_eq!(p, &payload(n), "plain link: echo {n}");
    }
    assert_eq!(echoes_b, [payload(0)], "close-after-reply: its first only");
    assert!(closed_b, "close-after-reply: closed after its reply");
    assert_eq!(closed.len(), 1, "{closed:?}");
    let (once_link, reason) = closed[0];
    assert_eq!(reason, CloseReason::ClosedAfterReply);
    let of_once = delivered.iter().filter(|(l, _)| *l == once_link).count();
    assert_eq!(of_once, 1, "frames after the first were delivered");
}

#[test]
fn a_mooring_protocol_link_without_a_session_delivers_payloads_past_their_header() {
    let mooring = LivenessConfig {
        protocol: Protocol::Mooring,
        ..LivenessConfig::default()
    };
    let (mut node, l) = common::listening_node(
        NodeConfig::default(),
        ListenConfig {
            liveness: mooring.clone(),
            ..ListenConfig::default()
        },
    );
    let addr = node.local_addr(l).unwrap();
    let cfg = ConnectConfig {
        liveness: mooring,
        ..ConnectConfig::default()
    };
    let client = node.connect(addr, &cfg).expect("connect");
    let mut sent = 0;
    let mut got = Vec::new();
    let deadline = Instant::now() + LIMIT;
    while got.len() < BURST {
        assert!(
            Instant::now() < deadline,
            "{} of {BURST} arrived",
            got.len()
        );
        node.poll(Some(Duration::from_millis(20))).expect("poll");
        while let Some(ev) = node.next_event() {
            match ev {
                // Handshake done: the whole burst queued at once.
                Event::Connected { link, .. } if link == client => {
                    while sent < BURST {
                        node.send(client, &payload(sent)).expect("queued");
                        sent += 1;
                    }
                }
                Event::Message { link, payload } if link != client => got.push(payload.to_vec()),
                Event::Closed { reason, .. } => panic!("closed: {reason:?}"),
                _ => {}
            }
        }
    }
    for (n, p) in got.iter().enumerate() {
        assert_eq!(
            p,
            &payload(n),
            "message {n}: the DATA header is not the payload's"
        );
    }
}

#[test]
fn a_commit_ack_link_answers_every_frame_of_a_burst() {
    let (mut node, l) = common::listening_node(
        NodeConfig {
            mllp_commit_ack: true,
            ..NodeConfig::default()
        },
        ListenConfig::default(),
    );
    let mut s = TcpStream::connect(node.local_addr(l).unwrap()).expect("connect");
    let burst: Vec<u8> = (0..BURST).flat_map(|n| common::mllp(&payload(n))).collect();
    s.write_all(&burst).expect("burst");
    // The application replies nothing: every frame back is the link's own ACK.
    let driver = std::thread::spawn(move || {
        let mut delivered = 0;
        let deadline = Instant::now() + LIMIT;
        while delivered < BURST {
            assert!(Instant::now() < deadline, "{delivered} delivered");
            node.poll(Some(Duration::from_millis(20))).expect("poll");
            while let Some(ev) = node.next_event() {
                if let Event::Message { .. } = ev {
                    delivered += 1;
                }
            }
        }
        // Until the ACKs are written.
        while Instant::now() < deadline && node.stats().bytes_out < (BURST * 4) as u64 {
            node.poll(Some(Duration::from_millis(20))).expect("poll");
        }
        node
    });
    s.set_read_timeout(Some(LIMIT)).expect("timeout");
    let mut acks = vec![0u8; BURST * 4];
    s.read_exact(&mut acks).expect("an ACK per frame");
    let _node = driver.join().expect("driver");
    for (n, a) in acks.chunks(4).enumerate() {
        assert_eq!(a, common::mllp(&[0x06]), "frame {n}'s commit ACK");
    }
}

/// On a simulated network (virtual time, a 1 KiB pipe each way): a peer
/// writes four frames a millisecond (the server reads them at once: frames
/// wait in its buffer) and reads nothing, so the echoes it does
/// not read pile up on the server link until the link is held (its queue
/// past half a working buffer). Then the peer reads 256 bytes a millisecond
/// and goes on writing: each frame it writes makes the held link ready
/// again. A held link stays held until its queue drains to a quarter of a
/// working buffer (no flapping around one mark), whichever path looks at it.
#[test]
fn a_plain_link_held_mid_burst_stays_held_until_its_queue_drains_to_a_quarter() {
    let clock = ManualClock::new(mooring::Instant::from_millis(1_000));
    let sim = SimConfig {
        pipe_bytes: 1024,
        latency_ms: (1, 1),
        jitter_ms: 0,
        ..SimConfig::default()
    };
    let net = SimNet::new(sim, clock.clone());
    let cfg = NodeConfig {
        framing: Framing::Len32,
        ..NodeConfig::default()
    };
    let (half, quarter) = (cfg.buffer_size / 2, cfg.buffer_size / 4);
    let mut node = Node::with_sim(cfg, &net, 1).expect("node");
    let l = node
        .listen("127.0.0.1:7000".parse().unwrap(), ListenConfig::default())
        .expect("listens");
    let peer = net
        .dial(net.attach(), node.local_addr(l).unwrap())
        .expect("dial");
    let frame = common::len32(&[b'x'; 100]);
    let mut out: Vec<u8> = Vec::new();
    let mut inbuf = [0u8; 256];
    let mut held_at = None;
    let mut resumed_with = None;
    for ms in 0..20_000u32 {
        if peer.peer_addr().is_ok() {
            for _ in 0..4 {
                out.extend_from_slice(&frame);
            }
            while let Ok(n) = peer.write(&out) {
                out.drain(..n);
                if out.is_empty() || n == 0 {
                    break;
                }
            }
            if held_at.is_some() {
                let _ = peer.read(&mut inbuf);
            }
        }
        node.poll(Some(Duration::ZERO)).expect("poll");
        while let Some(ev) = node.next_event() {
            if let Event::Message { link, .. } = ev {
                let queued = node.tx_pending(link);
                if held_at.is_some() && resumed_with.is_none() {
                    resumed_with = Some(queued);
                }
                node.forward(link).expect("echo queued");
                // Past the mark with the peer reading nothing: held at its
                // next turn (nothing can be written to make room).
                if held_at.is_none() && node.tx_pending(link) > half {
                    held_at = Some(ms);
                }
            }
        }
        if resumed_with.is_some() {
            break;
        }
        clock.advance(Duration::from_millis(1));
    }
    let held_at = held_at.expect("the link was never held");
    let queued = resumed_with.expect("the held link never resumed");
    assert!(
        queued <= quarter,
        "held at {held_at} ms, the link delivered again with {queued} bytes queued \
         (more than a quarter buffer, {quarter})"
    );
}

//! Slow peers (slowloris) over real loopback sockets: peers that start a frame
//! and trickle it must not hold the listener's slots or the node's large
//! buffers, a slow but steady large frame must not be cut, and a link waiting
//! for a large buffer must not be closed as idle. Each test measures a
//! legitimate client alongside the attackers.

mod common;

use std::io::Write;
use std::net::{SocketAddr, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use mooring::{CloseReason, FrameTimeout, ListenConfig, LivenessConfig, NodeConfig};

/// Connections that each send `head`, then one more `byte` every `every`, a
/// frame that never ends, until dropped (at most 20 s).
struct Trickle {
    peers: Vec<SocketAddr>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl Trickle {
    fn start(addr: SocketAddr, n: usize, head: &[u8], every: Duration) -> Trickle {
        let mut streams: Vec<TcpStream> = (0..n)
            .map(|_| TcpStream::connect(addr).expect("connect"))
            .collect();
        for s in &mut streams {
            s.set_nodelay(true).expect("nodelay");
            s.write_all(head).expect("head");
        }
        let peers = streams.iter().map(|s| s.local_addr().unwrap()).collect();
        let stop = Arc::new(AtomicBool::new(false));
        let stop2 = stop.clone();
        let thread = std::thread::spawn(move || {
            let end = Instant::now() + Duration::from_secs(20);
            while !stop2.load(Ordering::Relaxed) && Instant::now() < end {
                for s in &mut streams {
                    // Closed by the server: the write fails, which is the point.
                    let _ = s.write(b"x");
                }
                std::thread::sleep(every);
            }
        });
        Trickle {
            peers,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Trickle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A listener whose frames must be complete `timeout` after their first byte,
/// plus 1 s per `min_rate` bytes received.
fn listen_with(timeout: Duration, min_rate: u32, idle: Option<Duration>) -> ListenConfig {
    ListenConfig {
        idle_timeout: idle,
        liveness: LivenessConfig {
            frame_timeout: Some(FrameTimeout {
                timeout,
                min_rate,
                ..FrameTimeout::default()
            }),
            ..LivenessConfig::default()
        },
        ..ListenConfig::default()
    }
}

/// An HL7 message of about `size` bytes (a long OBX segment) with MSH-10 `id`.
fn big_hl7(id: &str, size: usize) -> Vec<u8> {
    let mut m = hl7_msg(id);
    m.extend_from_slice(b"OBX|1|TX|||");
    m.resize(size, b'x');
    m.push(b'\r');
    m
}

/// One request on a new connection: the MLLP reply, or `None` when the server
/// refused or closed the link (write errors count as refusal too).
fn try_request(addr: SocketAddr, msg: &[u8], within: Duration) -> Option<Vec<u8>> {
    let mut p = Peer::wrap(TcpStream::connect(addr).ok()?);
    p.stream.write_all(&mllp(msg)).ok()?;
    p.read_mllp(within).ok()
}

/// The reasons the server closed the links from `peers` with.
fn closes_of(h: &mut Harness, peers: &[SocketAddr]) -> Vec<CloseReason> {
    peers
        .iter()
        .map(|&p| h.close_reason("an attacker's close", p))
        .collect()
}

#[test]
fn trickling_peers_holding_every_slot_are_closed_and_a_legitimate_client_is_served() {
    let frame_timeout = Duration::from_millis(300);
    // 1,000 bytes/s: each trickled byte buys 1 ms, far less than it costs.
    let mut h = Harness::acking(listen_with(frame_timeout, 1_000, None));
    let attackers = Trickle::start(
        h.addr,
        10, // the default --max-conns: every slot
        b"\x0bMSH|",
        Duration::from_millis(50),
    );
    for _ in 0..10 {
        h.wait_for("an attacker's link", PATIENCE, |e| {
            matches!(e, Rec::Connected { .. })
        });
    }
    let first_try = Instant::now();
    let mut refused = 0;
    let reply = loop {
        if let Some(r) = try_request(h.addr, &hl7_msg("LEGIT1"), Duration::from_millis(500)) {
            break r;
        }
        refused += 1;
        assert!(
            first_try.elapsed() < PATIENCE,
            "the legitimate client was refused {refused} times in {:?}",
            first_try.elapsed()
        );
        std::thread::sleep(Duration::from_millis(20));
    };
    let waited = first_try.elapsed();
    assert_eq!(acked_id(&reply), "LEGIT1");
    let reasons = closes_of(&mut h, &attackers.peers);
    assert!(
        reasons.iter().all(|&r| r == CloseReason::FrameTimeout),
        "{reasons:?}"
    );
    println!(
        "legitimate client served after {waited:?} ({refused} refusals; frame timeout \
         {frame_timeout:?})"
    );
    assert!(
        waited < frame_timeout + Duration::from_secs(2),
        "served only after {waited:?}"
    );
}

#[test]
fn a_large_frame_arriving_slowly_above_the_minimum_rate_is_not_cut_and_one_below_it_is() {
    let frame_timeout = Duration::from_millis(300);
    let min_rate = 10_000; // bytes/s: 10 bytes buy 1 ms
    let mut h = Harness::start(
        NodeConfig::default(),
        listen_with(frame_timeout, min_rate, None),
        Reply::Ack,
    );
    // 40 KB (a large buffer's worth: more than the 16 KiB working buffer) in
    // 1,000-byte chunks every 20 ms: about 50 kB/s, so it takes 800 ms, well
    // past the 300 ms a frame gets without the data it brings.
    let msg = big_hl7("STEADY", 40_000);
    let wire = mllp(&msg);
    let mut steady = Peer::connect(h.addr);
    let t0 = Instant::now();
    for chunk in wire.chunks(1_000) {
        if let Err(e) = steady.stream.write_all(chunk) {
            panic!(
                "the steady sender was cut after {:?} ({e}); events: {:?}",
                t0.elapsed(),
                h.events()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let took = t0.elapsed();
    let reply = steady.read_mllp(PATIENCE).unwrap_or_else(|e| {
        panic!(
            "the steady sender got no reply ({e:?}) after {took:?}; events: {:?}",
            h.events()
        )
    });
    assert_eq!(acked_id(&reply), "STEADY");
    assert!(
        took > frame_timeout * 2,
        "the frame took {took:?}: not slow enough to prove anything"
    );
    println!("a 40 KB frame over {took:?} was served");

    // The same frame at about 5 kB/s (half the minimum rate) is cut.
    let mut slow = Peer::connect(h.addr);
    let from = slow.local_addr();
    let t0 = Instant::now();
    for chunk in wire.chunks(100) {
        if slow.stream.write_all(chunk).is_err() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        if t0.elapsed() > PATIENCE {
            break;
        }
    }
    assert_eq!(
        h.close_reason("the slow sender's close", from),
        CloseReason::FrameTimeout
    );
}

#[test]
fn links_holding_the_large_buffers_are_closed_and_a_waiting_link_is_not_idle() {
    let frame_timeout = Duration::from_millis(600);
    let idle = Duration::from_millis(200);
    // The default node: 2 large buffers, 16 KiB working buffers. 1 MB/s: the
    // attackers' 20 KB buy them 20 ms.
    let mut h = Harness::start(
        NodeConfig::default(),
        listen_with(frame_timeout, 1_000_000, Some(idle)),
        Reply::Ack,
    );
    // Three unfinished 20 KB frames, kept alive against the idle timer.
    let mut head = vec![0x0B];
    head.extend_from_slice(&big_hl7("ATTACK", 20_000));
    let attackers = Trickle::start(h.addr, 3, &head, Duration::from_millis(50));
    for _ in 0..3 {
        h.wait_for("an attacker's link", PATIENCE, |e| {
            matches!(e, Rec::Connected { .. })
        });
    }
    // No event marks a large buffer taken: give the server a moment to read
    // the attackers' frames (the check on `waited` below proves the legitimate
    // link did wait for a buffer).
    h.settle(Duration::from_millis(100));
    let mut legit = Peer::connect(h.addr);
    let from = legit.local_addr();
    let t0 = Instant::now();
    legit.send_mllp(&big_hl7("LEGIT2", 100_000));
    let reply = legit.read_mllp(PATIENCE);
    let waited = t0.elapsed();
    let evs = h.events();
    let legit_close = evs.iter().find_map(|e| e.is_closed_from(from));
    assert_eq!(
        legit_close, None,
        "the waiting legitimate link was closed after {waited:?}"
    );
    let reply = reply.unwrap_or_else(|e| panic!("no reply ({e:?}) after {waited:?}"));
    assert_eq!(acked_id(&reply), "LEGIT2");
    let reasons = closes_of(&mut h, &attackers.peers);
    assert!(
        reasons.iter().all(|&r| r == CloseReason::FrameTimeout),
        "{reasons:?}"
    );
    println!(
        "100 KB message answered after {waited:?} (idle timeout {idle:?}, \
         frame timeout {frame_timeout:?})"
    );
    assert!(
        waited < frame_timeout * 2 + Duration::from_secs(2),
        "answered only after {waited:?}"
    );
    assert!(
        waited > idle,
        "answered after {waited:?}, within the idle timeout: the scenario did not \
         make the legitimate link wait"
    );
    let (_, stats) = h.stop();
    assert!(stats.large_buffer_waits > 0);
}

use super::*;
use std::time::Duration;

const OWNER_A: u32 = 1;
const OWNER_B: u32 = 2;

fn net(cfg: SimConfig) -> SimNet {
    SimNet::new(cfg, ManualClock::new(Instant::from_millis(1_000)))
}

fn fixed(latency: u64) -> SimConfig {
    SimConfig {
        latency_ms: (latency, latency),
        jitter_ms: 0,
        ..SimConfig::default()
    }
}

fn addr(port: u16) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], port))
}

fn step(n: &SimNet, ms: u64) {
    n.clock().advance(Duration::from_millis(ms));
}

fn to(n: &SimNet, t: Instant) {
    n.clock().advance(t.saturating_since(n.clock().now()));
}

fn kind<T: std::fmt::Debug>(r: io::Result<T>) -> io::ErrorKind {
    r.expect_err("an error").kind()
}

/// A listener of B's, a dial of A's accepted; both ends registered.
fn pair(n: &SimNet) -> (SimListener, SimEnd, SimEnd) {
    let lis = n.listen(OWNER_B, addr(7000)).expect("listen");
    lis.set_token(OWNER_B, Some(100));
    let a = n.dial(OWNER_A, addr(7000)).expect("dial");
    a.set_token(OWNER_A, Some(1));
    let (b, peer) = loop {
        match lis.accept() {
            Ok(x) => break x,
            Err(_) => to(n, n.next_change().expect("a SYN on its way")),
        }
    };
    assert_eq!(peer.ip(), addr(0).ip());
    b.set_token(OWNER_B, Some(2));
    while a.peer_addr().is_err() {
        to(n, n.next_change().expect("connecting"));
    }
    while n.next_ready(OWNER_A).is_some() {}
    while n.next_ready(OWNER_B).is_some() {}
    (lis, a, b)
}

#[test]
fn a_dial_arrives_after_its_latency_and_connects_a_latency_later() {
    let n = net(fixed(10));
    let lis = n.listen(OWNER_B, addr(7000)).expect("listen");
    lis.set_token(OWNER_B, Some(100));
    let a = n.dial(OWNER_A, addr(7000)).expect("dial");
    a.set_token(OWNER_A, Some(1));
    assert_eq!(kind(lis.accept()), io::ErrorKind::WouldBlock);
    assert_eq!(n.next_change(), Some(Instant::from_millis(1_010)));
    step(&n, 10);
    let ev = n.next_ready(OWNER_B).expect("an accept edge");
    assert_eq!((ev.token, ev.readable), (100, true));
    assert!(n.next_ready(OWNER_B).is_none(), "one edge per SYN");
    let (b, _) = lis.accept().expect("queued");
    assert_eq!(kind(a.peer_addr()), io::ErrorKind::NotConnected);
    assert!(n.next_ready(OWNER_A).is_none());
    step(&n, 10);
    let ev = n.next_ready(OWNER_A).expect("connected");
    assert!(ev.writable);
    assert!(a.take_error().expect("ok").is_none());
    assert_eq!(a.peer_addr().expect("connected"), addr(7000));
    drop(b);
}

#[test]
fn bytes_arrive_in_order_after_the_latency_with_one_edge_per_arrival() {
    let n = net(fixed(5));
    let (_l, a, b) = pair(&n);
    assert_eq!(a.write(b"hello ").expect("room"), 6);
    step(&n, 1);
    assert_eq!(a.write(b"world").expect("room"), 5);
    let mut buf = [0u8; 64];
    assert_eq!(kind(b.read(&mut buf)), io::ErrorKind::WouldBlock);
    step(&n, 4);
    let ev = n.next_ready(OWNER_B).expect("readable");
    assert!(ev.readable && !ev.read_closed);
    assert!(n.next_ready(OWNER_B).is_none(), "no new bytes, no new edge");
    assert_eq!(b.read(&mut buf).expect("bytes"), 6);
    assert_eq!(&buf[..6], b"hello ");
    assert_eq!(kind(b.read(&mut buf)), io::ErrorKind::WouldBlock);
    step(&n, 1);
    assert!(n.next_ready(OWNER_B).is_some_and(|e| e.readable));
    assert_eq!(b.read(&mut buf).expect("bytes"), 5);
    assert_eq!(&buf[..5], b"world");
}

#[test]
fn jitter_never_reorders_one_stream() {
    let n = net(SimConfig {
        latency_ms: (1, 30),
        jitter_ms: 30,
        seed: 7,
        ..SimConfig::default()
    });
    let (_l, a, b) = pair(&n);
    let mut got = Vec::new();
    let mut buf = [0u8; 16];
    for i in 0..200u8 {
        a.write(&[i]).expect("room");
        step(&n, 1);
        while let Ok(k) = b.read(&mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
    }
    while let Some(t) = n.next_change() {
        to(&n, t);
        while let Ok(k) = b.read(&mut buf) {
            got.extend_from_slice(&buf[..k]);
        }
    }
    assert_eq!(got, (0..200u8).collect::<Vec<_>>());
}

#[test]
fn a_full_pipe_blocks_the_writer_until_the_reader_makes_room() {
    let n = net(SimConfig {
        pipe_bytes: 8,
        ..fixed(1)
    });
    let (_l, a, b) = pair(&n);
    assert_eq!(a.write(b"0123456789").expect("part"), 8);
    assert_eq!(kind(a.write(b"89")), io::ErrorKind::WouldBlock);
    step(&n, 1);
    assert!(n.next_ready(OWNER_A).is_none(), "still full");
    let mut buf = [0u8; 3];
    assert_eq!(b.read(&mut buf).expect("bytes"), 3);
    let ev = n.next_ready(OWNER_A).expect("room came back");
    assert!(ev.writable);
    assert_eq!(a.write(b"89").expect("room"), 2);
}

#[test]
fn a_cut_keeps_a_prefix_then_both_ends_see_a_reset() {
    for seed in 0..50 {
        let n = net(SimConfig { seed, ..fixed(5) });
        let (_l, a, b) = pair(&n);
        let sent: Vec<u8> = (0..100).collect();
        for c in sent.chunks(10) {
            a.write(c).expect("room");
        }
        b.write(b"xyz").expect("room");
        step(&n, 2);
        assert_eq!(n.cut_all(), 1);
        assert_eq!(kind(a.write(b"more")), io::ErrorKind::ConnectionReset);
        let mut got = Vec::new();
        let mut buf = [0u8; 7];
        let end = loop {
            match b.read(&mut buf) {
                Ok(k) => got.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => match n.next_change() {
                    Some(t) => to(&n, t),
                    None => step(&n, 1),
                },
                Err(e) => break e.kind(),
            }
        };
        assert_eq!(end, io::ErrorKind::ConnectionReset, "seed {seed}");
        assert_eq!(got[..], sent[..got.len()], "seed {seed}: a prefix");
        let mut buf = [0u8; 8];
        let a_end = loop {
            match a.read(&mut buf) {
                Ok(k) => assert!(k > 0 && buf[..k] == b"xyz"[..k]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => step(&n, 1),
                Err(e) => break e.kind(),
            }
        };
        assert_eq!(a_end, io::ErrorKind::ConnectionReset);
    }
}

#[test]
fn a_closed_end_sends_eof_after_its_bytes() {
    let n = net(fixed(3));
    let (_l, a, b) = pair(&n);
    a.write(b"bye").expect("room");
    drop(a);
    step(&n, 3);
    let ev = n.next_ready(OWNER_B).expect("readable");
    assert!(ev.readable);
    let mut buf = [0u8; 8];
    assert_eq!(b.read(&mut buf).expect("bytes"), 3);
    assert_eq!(b.read(&mut buf).expect("eof"), 0);
    assert_eq!(n.links_in_use(), 1, "the acceptor still holds it");
    drop(b);
    assert_eq!(n.links_in_use(), 0, "both ends gone: the record is free");
}

#[test]
fn dials_are_refused_without_a_listener_and_during_a_partition() {
    let n = net(fixed(4));
    let a = n.dial(OWNER_A, addr(7000)).expect("dial");
    a.set_token(OWNER_A, Some(1));
    step(&n, 8);
    assert!(n.next_ready(OWNER_A).is_some_and(|e| e.writable));
    assert_eq!(
        a.take_error().expect("ok").map(|e| e.kind()),
        Some(io::ErrorKind::ConnectionRefused)
    );
    drop(a);
    let lis = n.listen(OWNER_B, addr(7000)).expect("listen");
    n.partition(Instant::from_millis(1_100));
    let a = n.dial(OWNER_A, addr(7000)).expect("dial");
    step(&n, 8);
    assert!(
        a.take_error().expect("ok").is_some(),
        "refused in the partition"
    );
    assert_eq!(kind(lis.accept()), io::ErrorKind::WouldBlock);
    to(&n, Instant::from_millis(1_100));
    let a = n.dial(OWNER_A, addr(7000)).expect("dial");
    step(&n, 4);
    assert!(lis.accept().is_ok(), "healed");
    drop(a);
    assert_eq!(n.stats().refused, 2);
}

#[test]
fn a_slow_links_bytes_are_overtaken_by_a_faster_links() {
    let n = net(SimConfig {
        latency_ms: (1, 200),
        jitter_ms: 0,
        seed: 3,
        ..SimConfig::default()
    });
    let lis = n.listen(OWNER_B, addr(7000)).expect("listen");
    let mut ends = Vec::new();
    for _ in 0..8 {
        let a = n.dial(OWNER_A, addr(7000)).expect("dial");
        ends.push(a);
    }
    step(&n, 500);
    while let Ok((b, _)) = lis.accept() {
        ends.push(b);
    }
    for e in &ends[..8] {
        e.write(b"x").expect("room");
    }
    assert!(n.stats().overtakes > 0, "{:?}", n.stats());
}

#[test]
fn link_records_are_bounded_and_reused() {
    let n = net(SimConfig {
        max_links: 2,
        ..fixed(1)
    });
    let a = n.dial(OWNER_A, addr(7000)).expect("dial");
    let b = n.dial(OWNER_A, addr(7000)).expect("dial");
    assert_eq!(
        kind(n.dial(OWNER_A, addr(7000))),
        io::ErrorKind::AddrNotAvailable
    );
    step(&n, 5);
    drop(a);
    assert!(n.dial(OWNER_A, addr(7000)).is_ok());
    drop(b);
}

//! What the TLS layer allocates: per message in steady state, and what one
//! established link holds (rustls's state plus this layer's buffers).
//! Figures are printed (`--nocapture`).
//!
//! The target is zero allocations per message; rustls 0.23.46 misses it on
//! both sides, even through its unbuffered API: it encrypts each record into
//! an owned `Vec` (`PrefixedPayload`) and then copies it into the caller's
//! buffer, and it decrypts each received record into a `Vec` it hands out.
//! So: one allocation and one free per record sent and per record received,
//! nothing kept. These tests pin exactly that, so a change either way shows.
//!
//! Counts are per thread (thread-local, const-initialised), as in
//! tests/no_alloc.rs.
#![cfg(feature = "tls")]

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::net::SocketAddr;

use mooring::tls::{ClientAuth, TlsClientConfig, TlsLink, TlsLinkSizes, TlsServerConfig};

mod tls_pki;

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
    /// Bytes allocated minus bytes freed while measuring.
    static LIVE: Cell<i64> = const { Cell::new(0) };
}

fn note(allocs: u64, frees: u64, bytes: i64) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        let _ = ALLOCS.try_with(|c| c.set(c.get() + allocs));
        let _ = FREES.try_with(|c| c.set(c.get() + frees));
        let _ = LIVE.try_with(|c| c.set(c.get() + bytes));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        note(1, 0, layout.size() as i64);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        note(1, 0, layout.size() as i64);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        note(1, 0, new_size as i64 - layout.size() as i64);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        note(0, 1, -(layout.size() as i64));
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// (allocations, frees, live bytes) counted on this thread while `f` runs.
fn count<T>(f: impl FnOnce() -> T) -> (T, (u64, u64, i64)) {
    let start = (
        ALLOCS.with(Cell::get),
        FREES.with(Cell::get),
        LIVE.with(Cell::get),
    );
    MEASURING.with(|m| m.set(true));
    let out = f();
    MEASURING.with(|m| m.set(false));
    let end = (
        ALLOCS.with(Cell::get),
        FREES.with(Cell::get),
        LIVE.with(Cell::get),
    );
    (out, (end.0 - start.0, end.1 - start.1, end.2 - start.2))
}

struct Pki {
    server: TlsServerConfig,
    client: TlsClientConfig,
}

/// A CA, a server and a client certificate (P-256), mutual authentication.
fn pki() -> Pki {
    let p = tls_pki::pki();
    Pki {
        server: tls_pki::server_cfg(&p, ClientAuth::Required),
        client: tls_pki::client_cfg(&p, true),
    }
}

/// Moves all of `a`'s ciphertext into `b`.
fn carry(a: &mut TlsLink, b: &mut TlsLink) {
    while !a.ciphertext().is_empty() {
        let n = b.feed(a.ciphertext()).unwrap();
        assert!(n > 0, "receiver full");
        a.ciphertext_written(n).unwrap();
    }
}

fn established(p: &Pki) -> (TlsLink, TlsLink) {
    let addr: SocketAddr = "127.0.0.1:2575".parse().unwrap();
    let mut s = TlsLink::server(&p.server.build().unwrap(), TlsLinkSizes::default()).unwrap();
    let mut c = TlsLink::client(&p.client.build().unwrap(), addr, TlsLinkSizes::default()).unwrap();
    for _ in 0..20 {
        carry(&mut c, &mut s);
        carry(&mut s, &mut c);
    }
    assert!(s.handshake().is_some() && c.handshake().is_some());
    (s, c)
}

/// One message from `a` to `b`, taken out of `b`'s plaintext.
fn message(a: &mut TlsLink, b: &mut TlsLink, msg: &[u8]) {
    assert_eq!(a.write_plaintext(msg).unwrap(), msg.len());
    carry(a, b);
    assert_eq!(b.plaintext(), msg);
    let n = b.plaintext().len();
    b.consume_plaintext(n).unwrap();
}

#[test]
fn steady_state_allocations_per_message_are_measured_and_bounded() {
    let p = pki();
    let (mut s, mut c) = established(&p);
    let msg = [b'M'; 256];
    for _ in 0..100 {
        message(&mut c, &mut s, &msg);
        message(&mut s, &mut c, &msg);
    }
    const N: u64 = 1_000;
    // The sending side alone: encrypt into the fixed buffer, hand it out.
    let ((), (send_allocs, send_frees, _)) = count(|| {
        for _ in 0..N {
            assert_eq!(c.write_plaintext(&msg).unwrap(), msg.len());
            let n = c.ciphertext().len();
            // Throw the records away: only the sender is measured here.
            c.ciphertext_written(n).unwrap();
        }
    });
    // Both sides, one thread: a request and a reply per round.
    let (mut s, mut c) = established(&p);
    for _ in 0..100 {
        message(&mut c, &mut s, &msg);
        message(&mut s, &mut c, &msg);
    }
    let ((), (allocs, frees, live)) = count(|| {
        for _ in 0..N {
            message(&mut c, &mut s, &msg);
            message(&mut s, &mut c, &msg);
        }
    });
    println!(
        "tls steady state, {N} rounds of two 256-byte messages: {allocs} allocations, {frees} frees, \
         {live} bytes kept; sending alone: {send_allocs} allocations, {send_frees} frees per {N} messages"
    );
    // One record per 256-byte message: one allocation (and free) to encrypt
    // it, one to decrypt it (see the top of this file).
    assert_eq!((send_allocs, send_frees), (N, N), "per record encrypted");
    assert_eq!(
        (allocs, frees, live),
        (4 * N, 4 * N, 0),
        "per record sent and received"
    );
}

#[test]
fn one_established_link_costs_measured_bytes() {
    let p = pki();
    let s_tls = p.server.build().unwrap();
    let c_tls = p.client.build().unwrap();
    let addr: SocketAddr = "127.0.0.1:2575".parse().unwrap();
    const LINKS: usize = 20;
    let ((servers, clients), (_, _, live)) = count(|| {
        let mut servers = Vec::with_capacity(LINKS);
        let mut clients = Vec::with_capacity(LINKS);
        for _ in 0..LINKS {
            let mut s = TlsLink::server(&s_tls, TlsLinkSizes::default()).unwrap();
            let mut c = TlsLink::client(&c_tls, addr, TlsLinkSizes::default()).unwrap();
            for _ in 0..20 {
                carry(&mut c, &mut s);
                carry(&mut s, &mut c);
            }
            assert!(s.handshake().is_some());
            servers.push(s);
            clients.push(c);
        }
        (servers, clients)
    });
    let buffers = TlsLinkSizes::default().total() as i64;
    let vecs = (2 * LINKS * size_of::<TlsLink>()) as i64;
    let per_link = (live - vecs) / (2 * LINKS as i64);
    println!(
        "one established TLS link (mutual auth, P-256): {per_link} bytes held, of which {buffers} \
         are this layer's fixed buffers and {} rustls's state",
        per_link - buffers
    );
    assert!(per_link >= buffers);
    assert!(
        per_link - buffers < 64 * 1024,
        "rustls state: {}",
        per_link - buffers
    );
    drop((servers, clients));
}

/// Through the node: a TLS client node sends a message, a TLS server node
/// echoes it, one at a time, both nodes turned by this thread. The node adds
/// no allocation of its own: what is counted is rustls's one allocation per
/// record encrypted and per record decrypted (four per round trip), all freed.
#[test]
fn node_tls_links_in_steady_state_allocate_only_what_rustls_does_per_record() {
    use mooring::{ConnectConfig, Event, ListenConfig, Node, NodeConfig};
    use std::time::{Duration, Instant};

    let p = pki();
    let mut server = Node::new(NodeConfig::default()).unwrap();
    let l = server
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                tls: Some(p.server.clone()),
                ..ListenConfig::default()
            },
        )
        .unwrap();
    let addr = server.local_addr(l).unwrap();
    let mut client = Node::new(NodeConfig::default()).unwrap();
    let mut cfg = p.client.clone();
    cfg.server_name = Some("127.0.0.1".into());
    let link = client
        .connect(
            addr,
            &ConnectConfig {
                tls: Some(cfg),
                ..ConnectConfig::default()
            },
        )
        .unwrap();
    let msg = [b'M'; 256];
    // One round: send, then turn both nodes until the echo is back.
    let round = |server: &mut Node, client: &mut Node| -> bool {
        let deadline = Instant::now() + Duration::from_secs(10);
        client.send(link, &msg).is_ok_and(|()| loop {
            if Instant::now() > deadline {
                break false;
            }
            server.poll(Some(Duration::ZERO)).unwrap();
            while let Some(ev) = server.next_event() {
                if let Event::Message { link, .. } = ev {
                    server.forward(link).unwrap();
                }
            }
            client.poll(Some(Duration::ZERO)).unwrap();
            let mut back = false;
            while let Some(ev) = client.next_event() {
                back |= matches!(ev, Event::Message { .. });
            }
            if back {
                break true;
            }
        })
    };
    let deadline = Instant::now() + Duration::from_secs(10);
    while !client.is_open(link) && Instant::now() < deadline {
        client.poll(Some(Duration::from_millis(1))).unwrap();
        while client.next_event().is_some() {}
        server.poll(Some(Duration::ZERO)).unwrap();
        while server.next_event().is_some() {}
    }
    for _ in 0..200 {
        assert!(round(&mut server, &mut client), "warm-up echo");
    }
    const N: u64 = 1_000;
    let (ok, (allocs, frees, live)) = count(|| (0..N).all(|_| round(&mut server, &mut client)));
    assert!(ok, "every echo came back");
    println!(
        "node over TLS, {N} round trips of a 256-byte message: {allocs} allocations, {frees} \
         frees, {live} bytes kept ({:.1} allocations per message each way)",
        allocs as f64 / (2 * N) as f64
    );
    // rustls: one per record encrypted, one per record decrypted; a round trip
    // is one record each way, each encrypted once and decrypted once.
    assert_eq!(allocs, 4 * N, "rustls's, per record");
    assert_eq!(allocs, frees, "nothing kept");
    assert_eq!(live, 0, "no growth");
}

//! The steady state allocates nothing: a counting global allocator watches
//! 10,000 request/response exchanges over real loopback sockets, after a
//! warm-up, and must see zero allocations (and zero frees).
//!
//! Counts are kept per thread (thread-local, const-initialised, so counting
//! never allocates): only the threads doing the exchange are counted, and the
//! tests of this binary, which run in parallel, cannot disturb each other.

mod common;

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::thread::LocalKey;
use std::time::{Duration, Instant};

use mooring::{
    hl7, Client, ClientConfig, ConnectConfig, Event, LinkId, ListenConfig, Node, NodeConfig, Server,
};

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
    static FREES: Cell<u64> = const { Cell::new(0) };
}

fn bump(counter: &'static LocalKey<Cell<u64>>) {
    if MEASURING.try_with(Cell::get).unwrap_or(false) {
        let _ = counter.try_with(|c| c.set(c.get() + 1));
    }
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        bump(&ALLOCS);
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        bump(&ALLOCS);
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        bump(&FREES);
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

/// Starts counting this thread's allocations and frees.
fn start_counting() -> (u64, u64) {
    MEASURING.with(|m| m.set(true));
    (ALLOCS.with(Cell::get), FREES.with(Cell::get))
}

/// Stops counting; returns (allocations, frees) since `start`.
fn stop_counting(start: (u64, u64)) -> (u64, u64) {
    MEASURING.with(|m| m.set(false));
    (
        ALLOCS.with(Cell::get) - start.0,
        FREES.with(Cell::get) - start.1,
    )
}

fn counting() -> bool {
    MEASURING.with(Cell::get)
}

/// A node of 4 link slots listening on loopback for at most 2 links: the
/// setup several steady-state checks share.
fn small_listening_node() -> (Node, mooring::ListenerId) {
    common::listening_node(
        NodeConfig {
            max_links: 4,
            ..NodeConfig::default()
        },
        ListenConfig {
            max_connections: 2,
            ..ListenConfig::default()
        },
    )
}

#[test]
fn the_counting_allocator_counts_an_allocation_and_its_free() {
    let start = start_counting();
    drop(std::hint::black_box(vec![1u8; 100]));
    assert_eq!(stop_counting(start), (1, 1));
}

const WARM_UP: u32 = 200;
const STEADY: u32 = 10_000;
const TIMESTAMP: &[u8] = b"20261122120000";
const ID_PREFIX: &[u8] = b"MSG";
const ID_DIGITS: usize = 8;

/// An HL7 message whose MSH-10 is `MSG` + 8 digits, rewritten in place per message.
struct Message {
    bytes: Vec<u8>,
    id_at: usize,
}

impl Message {
    fn new() -> Message {
        let bytes = b"MSH|^~\\&|LAB|HOSP|EHR|HOSP|20261122120000||ORU^R01|MSG00000000|P|2.5\rPID|1||12345^^^HOSP||DOE^JANE\rOBX|1|NM|GLU^Glucose||5.4|mmol/L\r".to_vec();
        let id_at = bytes
            .windows(ID_PREFIX.len() + ID_DIGITS)
            .position(|w| w == b"MSG00000000")
            .expect("id placeholder");
        Message { bytes, id_at }
    }

    /// Sets the control id to `MSG{n:08}` without formatting machinery.
    fn set_id(&mut self, mut n: u32) {
        let digits = &mut self.bytes[self.id_at + ID_PREFIX.len()..][..ID_DIGITS];
        for d in digits.iter_mut().rev() {
            *d = b'0' + (n % 10) as u8;
            n /= 10;
        }
    }

    fn id(&self) -> &[u8] {
        &self.bytes[self.id_at..self.id_at + ID_PREFIX.len() + ID_DIGITS]
    }
}

/// One exchange on a node that is both ends: the outbound link sends a request,
/// the accepted link answers with an HL7 ACK, the outbound link checks it.
fn exchange(node: &mut Node, out: LinkId, msg: &Message, ack: &mut [u8], deadline: Instant) {
    node.send_request(out, &msg.bytes, Duration::from_secs(5))
        .expect("request queued");
    let mut answered = false;
    while !answered {
        assert!(Instant::now() < deadline, "exchange stalled");
        node.poll(Some(Duration::from_millis(100))).expect("poll");
        loop {
            let reply = match node.next_event() {
                None => break,
                Some(Event::Message { link, payload }) if link == out => {
                    assert_eq!(hl7::acked_control_id(payload), Some(msg.id()));
                    assert_eq!(hl7::ack_code(payload), Some(&b"AA"[..]));
                    answered = true;
                    None
                }
                Some(Event::Message { link, payload }) => {
                    let n = hl7::build_ack(payload, hl7::AckCode::Accept, TIMESTAMP, ack)
                        .expect("ack fits");
                    Some((link, n))
                }
                Some(Event::Closed { reason, .. }) => panic!("link closed: {reason}"),
                Some(_) => None,
            };
            if let Some((link, n)) = reply {
                node.send(link, &ack[..n]).expect("reply queued");
            }
        }
    }
}

#[test]
fn steady_exchange_of_ten_thousand_requests_on_one_node_allocates_nothing() {
    let (mut node, l) = small_listening_node();
    let addr = node.local_addr(l).unwrap();
    let out = node.connect(addr, &ConnectConfig::default()).unwrap();
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut links = 0;
    while links < 2 {
        assert!(Instant::now() < deadline, "never connected");
        node.poll(Some(Duration::from_millis(50))).unwrap();
        while let Some(ev) = node.next_event() {
            if let Event::Connected { .. } = ev {
                links += 1;
            }
        }
    }

    let mut msg = Message::new();
    let mut ack = [0u8; 512];
    let deadline = Instant::now() + Duration::from_secs(60);
    for i in 0..WARM_UP {
        msg.set_id(i);
        exchange(&mut node, out, &msg, &mut ack, deadline);
    }

    let start = start_counting();
    for i in WARM_UP..WARM_UP + STEADY {
        msg.set_id(i);
        exchange(&mut node, out, &msg, &mut ack, deadline);
    }
    let (allocs, frees) = stop_counting(start);

    let stats = node.link_stats(out).expect("still open");
    assert_eq!(stats.frames_out, u64::from(WARM_UP + STEADY));
    assert_eq!(stats.frames_in, u64::from(WARM_UP + STEADY));
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations / frees during {STEADY} steady exchanges"
    );
}

/// Large frames (100 KiB, above the working buffer) sent and echoed back: the
/// echo goes out straight from the receive block (one vectored write, the
/// rest through the transmit block) and is read back a whole frame at a time,
/// with nothing allocated once warm.
#[test]
fn steady_echo_of_large_frames_allocates_nothing() {
    let (mut node, l) = common::listening_node(
        NodeConfig {
            max_links: 4,
            large_buffers: 6,
            ..NodeConfig::default()
        },
        ListenConfig {
            max_connections: 2,
            ..ListenConfig::default()
        },
    );
    let addr = node.local_addr(l).unwrap();
    let out = node.connect(addr, &ConnectConfig::default()).unwrap();
    let mut links = 0;
    let deadline = Instant::now() + Duration::from_secs(5);
    while links < 2 {
        assert!(Instant::now() < deadline, "never connected");
        node.poll(Some(Duration::from_millis(50))).unwrap();
        while let Some(ev) = node.next_event() {
            links += usize::from(matches!(ev, Event::Connected { .. }));
        }
    }
    let mut frames: Vec<Vec<u8>> = (0..2u8)
        .map(|k| {
            (0..100 * 1024)
                .map(|i| b'A' + ((i + k as usize) % 26) as u8)
                .collect()
        })
        .collect();
    const ROUNDS: u32 = 300;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut start = (0, 0);
    let (mut sent, mut echoed, mut back) = (0u32, 0u32, 0u32);
    while back < WARM_UP / 4 + ROUNDS {
        assert!(Instant::now() < deadline, "echo stalled at {back}");
        if back == WARM_UP / 4 && !counting() {
            start = start_counting();
        }
        // Two in flight from the outbound link, each numbered in its first bytes.
        while sent < back + 2 {
            let f = &mut frames[sent as usize % 2];
            f[..4].copy_from_slice(&digits(sent));
            node.send(out, f).expect("room for two large frames");
            sent += 1;
        }
        node.poll(Some(Duration::from_millis(100))).expect("poll");
        while let Some(ev) = node.next_event() {
            match ev {
                Event::Message { link, payload } if link == out => {
                    assert_eq!(payload.len(), 100 * 1024);
                    assert_eq!(payload[..4], digits(back), "echo {back}");
                    assert_eq!(payload[4..], frames[back as usize % 2][4..]);
                    back += 1;
                }
                Event::Message { link, .. } => {
                    node.forward(link).expect("echo queued");
                    echoed += 1;
                }
                Event::Closed { reason, .. } => panic!("link closed: {reason}"),
                _ => {}
            }
        }
    }
    let (allocs, frees) = stop_counting(start);
    assert!(echoed >= back, "{echoed} echoed, {back} back");
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations / frees during {ROUNDS} large echoes"
    );
}

/// `n` (below 10,000) as four ASCII digits, which every framing carries.
fn digits(n: u32) -> [u8; 4] {
    let mut d = [b'0'; 4];
    for (k, b) in d.iter_mut().rev().enumerate() {
        *b += (n / 10u32.pow(k as u32) % 10) as u8;
    }
    d
}

/// The same with the `Client` and `Server` wrappers, each in its own thread:
/// each thread counts its own side.
#[test]
fn steady_exchange_through_client_and_server_allocates_nothing_on_either_side() {
    let mut server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig::default(),
        ListenConfig::default(),
    )
    .unwrap();
    let addr = server.local_addr();
    let server_thread = std::thread::spawn(move || {
        let mut start = (0, 0);
        let mut handled = 0u32;
        let mut closed = false;
        let deadline = Instant::now() + Duration::from_secs(60);
        let mut counted = (0, 0);
        while !closed {
            assert!(Instant::now() < deadline, "server stalled");
            server
                .serve(Some(Duration::from_millis(100)), |ev, reply| match ev {
                    Event::Message { payload, .. } => {
                        reply.write_with(|buf| {
                            hl7::build_ack(payload, hl7::AckCode::Accept, TIMESTAMP, buf)
                        });
                        handled += 1;
                        if handled == WARM_UP {
                            start = start_counting();
                        }
                    }
                    Event::Closed { .. } => closed = true,
                    _ => {}
                })
                .unwrap();
            if handled == WARM_UP + STEADY && counting() {
                // The last reply is queued: write it, then stop counting (the client's
                // close that follows is not steady state).
                server.node().flush();
                counted = stop_counting(start);
            }
        }
        (handled, counted)
    });

    let mut client = Client::new(
        addr,
        ClientConfig {
            correlate_hl7: true,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let mut msg = Message::new();
    for i in 0..WARM_UP {
        msg.set_id(i);
        client.request(&msg.bytes).expect("reply");
    }
    let start = start_counting();
    for i in WARM_UP..WARM_UP + STEADY {
        msg.set_id(i);
        let reply = client.request(&msg.bytes).expect("reply");
        assert_eq!(hl7::acked_control_id(reply), Some(msg.id()));
    }
    let client_side = stop_counting(start);
    assert_eq!(client.stats().connects, 1);
    drop(client);
    let (handled, server_side) = server_thread.join().expect("server thread");
    assert_eq!(handled, WARM_UP + STEADY);
    assert_eq!(server_side, (0, 0), "server-side allocations / frees");
    assert_eq!(client_side, (0, 0), "client-side allocations / frees");
}

/// Accepting, refusing (per-address limit) and closing links, cycle after
/// cycle, allocates nothing once warm: the per-address table and the accept
/// path use only what was sized at start.
#[test]
fn accepting_refusing_and_closing_links_with_a_per_address_limit_allocates_nothing() {
    let (mut node, l) = common::listening_node(
        NodeConfig {
            max_links: 8,
            ..NodeConfig::default()
        },
        ListenConfig {
            max_connections: 4,
            max_connections_per_ip: Some(1),
            ..ListenConfig::default()
        },
    );
    let addr = node.local_addr(l).unwrap();
    let deadline = Instant::now() + Duration::from_secs(60);
    // One cycle: two outbound links to the listener; the first is accepted,
    // the second refused (same address); then both close.
    let cycle = |node: &mut Node| {
        let a = node.connect(addr, &ConnectConfig::default()).unwrap();
        let b = node.connect(addr, &ConnectConfig::default()).unwrap();
        let (mut accepted, mut rejected, mut closed) = (0, 0, 0);
        while !(accepted == 1 && rejected == 1 && closed == 3) {
            assert!(Instant::now() < deadline, "cycle stuck");
            node.poll(Some(Duration::from_millis(50))).unwrap();
            while let Some(ev) = node.next_event() {
                match ev {
                    Event::Connected {
                        listener: Some(_), ..
                    } => {
                        accepted += 1;
                        node.close(a);
                    }
                    Event::Rejected { .. } => rejected += 1,
                    Event::Closed { .. } => closed += 1,
                    _ => {}
                }
            }
            if rejected == 1 && node.is_open(b) {
                node.close(b);
            }
        }
    };
    for _ in 0..20 {
        cycle(&mut node);
    }
    let start = start_counting();
    for _ in 0..200 {
        cycle(&mut node);
    }
    let (allocs, frees) = stop_counting(start);
    assert_eq!(node.stats().rejected_from_peer, 220);
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations / frees over 200 cycles"
    );
}

/// The spool's steady state on a real directory: append, group commit (with
/// fdatasync), read back, mark delivered, and segments recycled many times
/// over, after a warm-up, allocate nothing.
#[test]
fn steady_spool_append_commit_read_and_delivery_allocate_nothing() {
    use mooring::spool::{FsStorage, Fsync, Journal, SpoolConfig};
    let dir = std::env::temp_dir().join(format!("mooring-no-alloc-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let cfg = SpoolConfig {
        segment_bytes: 16 << 10,
        segments: 4,
        max_message_bytes: 512,
        batch_bytes: 8 << 10,
        index_entries: 256,
        fsync: Fsync::Batch,
    };
    let (mut j, _) = Journal::open(FsStorage::open(&dir).unwrap(), cfg).unwrap();
    let mut buf = [0u8; 512];
    let payload = [b'M'; 300];
    let mut turn = |j: &mut Journal<FsStorage>, i: u64| {
        for _ in 0..16 {
            j.append(i % 7, mooring::Instant::from_millis(i), &payload)
                .unwrap();
        }
        j.commit(mooring::Instant::from_millis(i)).unwrap();
        let mut last = 0;
        for e in j.undelivered().take(16) {
            last = e.seq;
        }
        let e = j.undelivered().next().unwrap();
        assert_eq!(j.read(e, &mut buf).unwrap().len, payload.len());
        j.mark_delivered(last).unwrap();
    };
    for i in 0..20 {
        turn(&mut j, i);
    }
    let start = start_counting();
    // 200 turns of 16 messages of ~330 bytes: 1 MB through 64 KB of segments.
    for i in 20..220 {
        turn(&mut j, i);
    }
    let (allocs, frees) = stop_counting(start);
    drop(j);
    let _ = std::fs::remove_dir_all(&dir);
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations / frees in the spool's steady state"
    );
}

/// The relay engine (`mooring::relay::Relay`, what `mooring relay` runs) in
/// steady state: a device (a plain socket) sends messages, the relay queues,
/// acknowledges and forwards each over its raw upstream link, the upstream (a
/// second node on this thread) answers with an ACK, and the relay reports it
/// acked. After warm-up (the upstream dialled, the pending records grown) none
/// of it allocates.
#[test]
fn a_relay_forwarding_in_steady_state_allocates_nothing() {
    relay_steady_state(None);
}

/// The same with the durable spool: every message appended, group-committed
/// (fdatasync) before its AA, and marked delivered as the upstream acknowledges.
#[test]
fn a_relay_with_a_spool_in_steady_state_allocates_nothing() {
    let dir = std::env::temp_dir().join(format!("mooring-noalloc-spool-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    relay_steady_state(Some(mooring::relay::SpoolSettings {
        size: 4 << 20,
        ..mooring::relay::SpoolSettings::new(&dir)
    }));
    let _ = std::fs::remove_dir_all(&dir);
}

/// The same through the C API (`mooring_relay_poll`, every event taken with
/// `mooring_relay_next_event`), with a spool: the events kept between polls
/// and their texts live in memory sized at `mooring_relay_new`.
#[test]
fn a_c_relay_with_a_spool_in_steady_state_allocates_nothing() {
    let dir = std::env::temp_dir().join(format!("mooring-noalloc-c-relay-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    relay_steady_state_on(
        Some(mooring::relay::SpoolSettings {
            size: 4 << 20,
            ..mooring::relay::SpoolSettings::new(&dir)
        }),
        true,
    );
    let _ = std::fs::remove_dir_all(&dir);
}

fn relay_steady_state(spool: Option<mooring::relay::SpoolSettings>) {
    relay_steady_state_on(spool, false);
}

/// A relay engine for [`relay_steady_state_on`]: the Rust type on a node, or
/// the C handle.
enum Engine {
    Rust(Box<(Node, mooring::relay::Relay)>),
    C(*mut mooring::internals::ffi::mooring_relay),
}

impl Engine {
    /// A relay to `upstream` with `spool`, devices on 127.0.0.1 (2 at most);
    /// it and its device address.
    fn new(
        upstream: std::net::SocketAddr,
        spool: Option<mooring::relay::SpoolSettings>,
        via_c: bool,
    ) -> (Engine, std::net::SocketAddr) {
        use mooring::internals::ffi::*;
        use mooring::relay::{Relay, RelayConfig};
        use std::ffi::{CStr, CString};
        if !via_c {
            let mut node = Node::new(NodeConfig {
                max_links: 8,
                ..NodeConfig::default()
            })
            .unwrap();
            let dl = node
                .listen(
                    "127.0.0.1:0".parse().unwrap(),
                    ListenConfig {
                        max_connections: 2,
                        ..ListenConfig::default()
                    },
                )
                .unwrap();
            let cfg = RelayConfig {
                spool,
                ..RelayConfig::new(upstream)
            };
            let relay = Relay::new(cfg, &node).unwrap();
            let addr = node.local_addr(dl).unwrap();
            return (Engine::Rust(Box::new((node, relay))), addr);
        }
        let up = CString::new(upstream.to_string()).unwrap();
        let dir = spool
            .as_ref()
            .map(|s| CString::new(s.dir.to_str().unwrap()).unwrap());
        let mut c = std::mem::MaybeUninit::uninit();
        // SAFETY: valid pointers; the strings outlive mooring_relay_new.
        unsafe {
            assert_eq!(
                mooring_relay_config_default(c.as_mut_ptr()),
                mooring_result::Ok
            );
            let mut c = c.assume_init();
            c.listen = c"127.0.0.1:0".as_ptr();
            c.upstream = up.as_ptr();
            c.max_connections = 2;
            c.ack_after = mooring_ack_after::Queued as u32;
            if let (Some(s), Some(d)) = (&spool, &dir) {
                (c.spool, c.spool_dir, c.spool_size) =
                    (mooring_spool_kind::Directory as u32, d.as_ptr(), s.size);
            }
            let mut r = std::ptr::null_mut();
            assert_eq!(mooring_relay_new(&c, &mut r), mooring_result::Ok);
            let mut buf = [0 as std::ffi::c_char; MOORING_ADDR_MAX];
            assert_eq!(
                mooring_relay_local_addr(r, buf.as_mut_ptr(), buf.len()),
                mooring_result::Ok
            );
            let addr = CStr::from_ptr(buf.as_ptr())
                .to_str()
                .unwrap()
                .parse()
                .unwrap();
            (Engine::C(r), addr)
        }
    }

    /// One loop turn; `acked` counts the upstream's acknowledgements.
    fn turn(&mut self, acked: &Cell<u64>) {
        use mooring::internals::ffi::*;
        use mooring::relay::RelayEvent;
        match self {
            Engine::Rust(nr) => {
                let (node, relay) = &mut **nr;
                let mut out = |ev: RelayEvent<'_>| {
                    if let RelayEvent::Acked { .. } = ev {
                        acked.set(acked.get() + 1);
                    }
                };
                relay
                    .turn(node, Duration::from_millis(1), &mut out)
                    .expect("relay turn");
            }
            // SAFETY: a live relay; `ev` is writable.
            Engine::C(r) => unsafe {
                assert_eq!(mooring_relay_poll(*r, 1), mooring_result::Ok);
                let mut ev = std::mem::MaybeUninit::<mooring_relay_event>::uninit();
                while mooring_relay_next_event(*r, ev.as_mut_ptr()) == mooring_result::Ok {
                    if ev.assume_init_ref().kind == mooring_relay_event_kind::Acked {
                        acked.set(acked.get() + 1);
                    }
                }
                let mut s = mooring_relay_stats::default();
                assert_eq!(mooring_relay_get_stats(*r, &mut s), mooring_result::Ok);
                assert_eq!(s.events_dropped, 0);
            },
        }
    }
}

impl Drop for Engine {
    fn drop(&mut self) {
        if let Engine::C(r) = *self {
            // SAFETY: from mooring_relay_new, freed once.
            unsafe { mooring::internals::ffi::mooring_relay_free(r) };
        }
    }
}

fn relay_steady_state_on(spool: Option<mooring::relay::SpoolSettings>, via_c: bool) {
    use std::cell::Cell;
    use std::io::{ErrorKind, Read, Write};
    use std::net::TcpStream;

    const STEADY_RELAYED: u32 = 1_000;
    let (mut up, ul) = small_listening_node();
    let (mut engine, device_addr) = Engine::new(up.local_addr(ul).unwrap(), spool, via_c);
    let mut device = TcpStream::connect(device_addr).unwrap();
    device.set_nonblocking(true).unwrap();

    let acked = Cell::new(0u64);
    let mut msg = Message::new();
    let mut frame = vec![0u8; msg.bytes.len() + 3];
    let last = frame.len() - 2;
    frame[0] = 0x0b;
    frame[last..].copy_from_slice(&[0x1c, 0x0d]);
    let mut ack = [0u8; 512];
    let mut rx = [0u8; 1024];
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut relay_one = |n: u32, msg: &mut Message| {
        msg.set_id(n);
        frame[1..last].copy_from_slice(&msg.bytes);
        device.write_all(&frame).expect("device write");
        let want = acked.get() + 1;
        let mut got = 0;
        while !(got > 2 && rx[got - 2..got] == [0x1c, 0x0d]) || acked.get() < want {
            assert!(Instant::now() < deadline, "relay stalled at message {n}");
            engine.turn(&acked);
            up.poll(Some(Duration::ZERO)).expect("upstream poll");
            loop {
                let reply = match up.next_event() {
                    None => break,
                    Some(Event::Message { link, payload }) => {
                        assert_eq!(hl7::control_id(payload), Some(msg.id()));
                        let n = hl7::build_ack(payload, hl7::AckCode::Accept, TIMESTAMP, &mut ack)
                            .expect("ack fits");
                        Some((link, n))
                    }
                    Some(Event::Closed { reason, .. }) => panic!("upstream closed: {reason}"),
                    Some(_) => None,
                };
                if let Some((link, n)) = reply {
                    up.send(link, &ack[..n]).expect("upstream reply queued");
                }
            }
            match device.read(&mut rx[got..]) {
                Ok(0) => panic!("the relay closed the device link"),
                Ok(k) => got += k,
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("device read: {e}"),
            }
        }
        let ack = &rx[1..got - 2];
        assert_eq!(hl7::acked_control_id(ack), Some(msg.id()));
        assert_eq!(hl7::ack_code(ack), Some(&b"AA"[..]));
    };
    for i in 0..WARM_UP {
        relay_one(i, &mut msg);
    }
    let start = start_counting();
    for i in WARM_UP..WARM_UP + STEADY_RELAYED {
        relay_one(i, &mut msg);
    }
    let (allocs, frees) = stop_counting(start);
    assert_eq!(acked.get(), u64::from(WARM_UP + STEADY_RELAYED));
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations / frees while relaying {STEADY_RELAYED} messages"
    );
}

/// A reliable session in steady state (DATA, batched ACKs, replies through the
/// session, the replay ring freed by ACKs) allocates nothing: a node that is
/// both ends of a session, 2,000 exchanges after a warm-up.
#[test]
fn steady_session_exchange_allocates_nothing() {
    use mooring::session::SessionConfig;
    use mooring::SessionNote;

    let session = SessionConfig {
        max_depth: 64,
        max_depth_disconnected: 256,
        max_bytes: 64 * 1024,
        ..SessionConfig::default()
    };
    let (mut node, client) = common::session_loopback(NodeConfig::default().framing, session);
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut server = None;
    let mut buf = [0u8; 64];
    let mut exchange = |node: &mut Node, server: &mut Option<mooring::SessionId>, n: u32| {
        let mut msg = *b"REQ00000000";
        let mut k = n;
        for d in msg[3..].iter_mut().rev() {
            *d = b'0' + (k % 10) as u8;
            k /= 10;
        }
        node.session_send(client, &msg).expect("queued");
        let mut answered = false;
        while !answered {
            assert!(Instant::now() < deadline, "session exchange stalled");
            node.poll(Some(Duration::from_millis(100))).expect("poll");
            loop {
                let reply = match node.next_event() {
                    None => break,
                    Some(Event::Session {
                        session,
                        note: SessionNote::Established { .. },
                    }) if session != client => {
                        *server = Some(session);
                        None
                    }
                    Some(Event::Session {
                        note: SessionNote::Ended(how),
                        ..
                    }) => panic!("session ended: {how:?}"),
                    Some(Event::SessionMessage { session, payload }) if session == client => {
                        assert_eq!(payload, msg, "the reply to this request");
                        answered = true;
                        None
                    }
                    Some(Event::SessionMessage { session, payload }) => {
                        buf[..payload.len()].copy_from_slice(payload);
                        Some((session, payload.len()))
                    }
                    Some(_) => None,
                };
                if let Some((session, n)) = reply {
                    node.session_send(session, &buf[..n]).expect("reply queued");
                }
            }
        }
    };
    for i in 0..WARM_UP {
        exchange(&mut node, &mut server, i);
    }
    assert!(server.is_some(), "the server's session was established");
    let start = start_counting();
    for i in WARM_UP..WARM_UP + 2_000 {
        exchange(&mut node, &mut server, i);
    }
    let (allocs, frees) = stop_counting(start);
    assert_eq!(
        (allocs, frees),
        (0, 0),
        "allocations / frees during 2,000 steady session exchanges"
    );
}

//! A scrape allocates nothing: a counting global allocator watches the node's
//! thread while another thread scrapes `GET /metrics` 50 times, after one
//! warm-up scrape. Counts are per thread (as in tests/no_alloc.rs): only the
//! thread that polls, accepts, renders and answers is counted.

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mooring::metrics::{MetricsLimits, MetricsServer, Snapshot};
use mooring::{ListenConfig, Node, NodeConfig};

struct Counting;

thread_local! {
    static MEASURING: Cell<bool> = const { Cell::new(false) };
    static ALLOCS: Cell<u64> = const { Cell::new(0) };
}

unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if MEASURING.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc(layout) }
    }
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if MEASURING.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        }
        unsafe { System.alloc_zeroed(layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if MEASURING.try_with(Cell::get).unwrap_or(false) {
            let _ = ALLOCS.try_with(|c| c.set(c.get() + 1));
        }
        unsafe { System.realloc(ptr, layout, new_size) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        unsafe { System.dealloc(ptr, layout) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

const SCRAPES: usize = 50;
const WITHIN: Duration = Duration::from_secs(20);

fn scrape(addr: std::net::SocketAddr) -> String {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WITHIN)).expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("write");
    let mut out = String::new();
    s.read_to_string(&mut out).expect("read");
    out
}

#[test]
fn scrapes_allocate_nothing_on_the_nodes_thread() {
    let mut node = Node::new(NodeConfig {
        max_links: 4,
        ..NodeConfig::default()
    })
    .expect("node");
    node.listen(
        "127.0.0.1:0".parse().unwrap(),
        ListenConfig {
            max_connections: 2,
            ..ListenConfig::default()
        },
    )
    .expect("listen");
    let mut m = MetricsServer::bind(
        &mut node,
        "127.0.0.1:0".parse().unwrap(),
        MetricsLimits::default(),
    )
    .expect("metrics");
    let addr = m.local_addr();
    let (tx, done) = mpsc::channel();
    let client = std::thread::spawn(move || {
        for i in 0..=SCRAPES {
            let answer = scrape(addr);
            assert!(answer.starts_with("HTTP/1.1 200 OK\r\n"), "{answer}");
            assert!(answer.contains("\nmooring_links_open 0\n"), "{answer}");
            // The first is the warm-up: counting starts after it.
            tx.send(i).expect("main thread");
        }
    });
    let deadline = Instant::now() + WITHIN;
    let mut answered = 0;
    let mut render = |node: &Node, server, buf: &mut [u8]| {
        Snapshot {
            server: Some(server),
            ..Snapshot::of_node(node.stats())
        }
        .write(buf)
    };
    while answered <= SCRAPES {
        assert!(Instant::now() < deadline, "{answered} scrapes answered");
        node.poll(Some(Duration::from_millis(10))).expect("poll");
        while node.next_event().is_some() {}
        m.serve(&mut node, &mut render);
        while let Ok(i) = done.try_recv() {
            answered = i + 1;
            if i == 0 {
                MEASURING.with(|c| c.set(true));
            }
        }
    }
    MEASURING.with(|c| c.set(false));
    client.join().expect("client");
    assert_eq!(m.stats().scrapes as usize, SCRAPES + 1);
    assert_eq!(
        ALLOCS.with(Cell::get),
        0,
        "allocations during {SCRAPES} scrapes"
    );
}

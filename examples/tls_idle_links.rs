//! The idle cost of TLS links: a server node accepts N links with TLS (mutual
//! authentication, P-256 certificates generated at start by rcgen) from a
//! child process, and reports how much its resident memory grew once they are
//! all established and idle (Linux: `/proc/self/status` VmRSS). `plain` runs
//! the same without TLS, for comparison.
//!
//! `cargo run --release --example tls_idle_links -- [N] [plain]` (default
//! 1000; needs `ulimit -n` above N).

use std::io::Read;
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use mooring::tls::{ClientAuth, PemSource, TlsClientConfig, TlsLinkSizes};
use mooring::{ConnectConfig, Event, ListenConfig, Node, NodeConfig};

// The tests' certificate generator (rcgen): one CA, a server and a client leaf.
#[path = "../tests/tls_pki/mod.rs"]
mod tls_pki;

const LIMIT: Duration = Duration::from_secs(120);

fn rss_kib() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = s.lines().find(|l| l.starts_with("VmRSS:"))?;
    line.split_whitespace().nth(1)?.parse().ok()
}

fn node(links: usize) -> Node {
    Node::new(NodeConfig {
        max_links: links,
        ..NodeConfig::default()
    })
    .expect("node")
}

/// Counts the events that say a link is ready: TLS established, or (plain)
/// connected.
fn ready(n: &mut Node, tls: bool) -> usize {
    let mut k = 0;
    while let Some(ev) = n.next_event() {
        match ev {
            Event::TlsEstablished { .. } if tls => k += 1,
            Event::Connected { .. } if !tls => k += 1,
            Event::Rejected { reason, .. } => {
                eprintln!("{}: a connection was refused: {reason}", std::process::id());
            }
            Event::Closed { reason, .. } => {
                eprintln!("{}: a link closed: {reason}", std::process::id());
            }
            _ => {}
        }
    }
    k
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("client") {
        return client(&args[2..]);
    }
    let n: usize = args.get(1).and_then(|s| s.parse().ok()).unwrap_or(1000);
    let tls = args.get(2).map(String::as_str) != Some("plain");
    let dir = std::env::temp_dir().join(format!("mooring-tls-idle-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");

    let pki = tls_pki::pki();
    for (name, pem) in [
        ("ca.pem", pki.ca.pem_bytes()),
        ("client.pem", pki.client.cert.clone()),
        ("client.key", pki.client.key.clone()),
    ] {
        std::fs::write(dir.join(name), pem).expect("write pem");
    }

    let mut server = node(n + 1);
    let mut server_tls = tls_pki::server_cfg(&pki, ClientAuth::Required);
    // A thousand handshakes at once queue up behind one thread.
    server_tls.handshake_timeout = LIMIT;
    let l = server
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                max_connections: n,
                tls: tls.then_some(server_tls),
                ..ListenConfig::default()
            },
        )
        .expect("listen");
    let addr = server.local_addr(l).unwrap();
    for _ in 0..10 {
        server.poll(Some(Duration::from_millis(10))).unwrap();
    }
    let before = rss_kib();

    let mut child = Command::new(std::env::current_exe().unwrap())
        .arg("client")
        .arg(addr.to_string())
        .arg(n.to_string())
        .arg(&dir)
        .arg(if tls { "tls" } else { "plain" })
        .stdin(Stdio::piped())
        .spawn()
        .expect("client process");
    let start = Instant::now();
    let mut up = 0;
    while up < n && start.elapsed() < LIMIT {
        server.poll(Some(Duration::from_millis(10))).unwrap();
        up += ready(&mut server, tls);
    }
    let setup = start.elapsed();
    // Idle for a second: nothing more should be held.
    let idle = Instant::now();
    while idle.elapsed() < Duration::from_secs(1) {
        server.poll(Some(Duration::from_millis(50))).unwrap();
        up += ready(&mut server, tls);
    }
    let after = rss_kib();
    drop(child.stdin.take());
    let _ = child.wait();
    let _ = std::fs::remove_dir_all(&dir);

    let kind = if tls {
        "TLS (mutual auth, P-256)"
    } else {
        "plain"
    };
    println!("{up} idle {kind} links established in {setup:.2?} (server side)");
    if let (Some(b), Some(a)) = (before, after) {
        let delta = a.saturating_sub(b);
        println!(
            "server RSS {b} KiB -> {a} KiB: +{delta} KiB, {:.1} KiB per link",
            delta as f64 / up.max(1) as f64
        );
    }
    if tls {
        println!(
            "per TLS link: {} bytes of fixed TLS buffers (TlsLinkSizes::default().total()) and a {}-byte TlsLink record (boxed, with the node's handshake timeout and flag), plus rustls's state (tests/tls_alloc.rs measures it); every slot, TLS or not, holds one more pointer",
            TlsLinkSizes::default().total(),
            size_of::<mooring::tls::TlsLink>()
        );
    }
}

/// The child: connects N links and keeps them until stdin closes.
fn client(args: &[String]) {
    let addr: SocketAddr = args[0].parse().expect("addr");
    let n: usize = args[1].parse().expect("n");
    let dir = std::path::PathBuf::from(&args[2]);
    let tls = args[3] == "tls";
    let mut cfg = TlsClientConfig::new(PemSource::File(dir.join("ca.pem")));
    cfg.client_cert = Some(PemSource::File(dir.join("client.pem")));
    cfg.client_key = Some(PemSource::File(dir.join("client.key")));
    cfg.handshake_timeout = LIMIT;
    let connect = ConnectConfig {
        connect_timeout: LIMIT,
        tls: tls.then_some(cfg),
        ..ConnectConfig::default()
    };
    let mut node = node(n);
    // In batches: a thousand SYNs at once overflow the listen queue, and a
    // plain client that sends nothing never learns its connection was dropped
    // (SYN cookies).
    for k in 0..n {
        node.connect(addr, &connect).expect("connect");
        if k % 50 == 49 {
            node.poll(Some(Duration::from_millis(20))).unwrap();
            ready(&mut node, tls);
        }
    }
    let done = Arc::new(AtomicBool::new(false));
    let d = done.clone();
    std::thread::spawn(move || {
        let mut b = [0u8; 1];
        let _ = std::io::stdin().read(&mut b);
        d.store(true, Ordering::Relaxed);
    });
    let start = Instant::now();
    while !done.load(Ordering::Relaxed) && start.elapsed() < LIMIT {
        node.poll(Some(Duration::from_millis(10))).unwrap();
        ready(&mut node, tls);
    }
}

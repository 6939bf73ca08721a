//! Holds many idle, heartbeating links and measures what they cost the server.
//!
//! ```sh
//! cargo run --release --example bench_idle -- [--links 10000] [--secs 30] [--interval 1s]
//! ```
//!
//! The server node runs in this process; the client node (all the outbound
//! links) runs in a child process it starts, so each side stays under the fd
//! limit. Both speak the mooring protocol with heartbeats (PING after
//! `interval` without sending, dead after 3 x interval of silence). After every
//! link is up, the server's CPU time (utime + stime from /proc) and RSS are
//! measured over `secs` seconds. Loopback only; the child is stopped by PID.

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use mooring::{
    ConnectConfig, Event, Heartbeat, ListenConfig, LivenessConfig, Node, NodeConfig, Protocol,
};

fn liveness(interval: Duration) -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        heartbeat: Some(Heartbeat {
            interval,
            timeout: interval * 3,
        }),
        handshake_timeout: Duration::from_secs(30),
        ..Default::default()
    }
}

fn node_config(links: usize) -> NodeConfig {
    NodeConfig {
        max_links: links + 16,
        ..NodeConfig::default()
    }
}

/// (user + system CPU seconds, RSS bytes) of this process.
fn usage() -> (f64, u64) {
    let stat = std::fs::read_to_string("/proc/self/stat").unwrap_or_default();
    // Fields after the command name (which may hold spaces) start after ')'.
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based); here offset by 3.
    let cpu = (ticks(11) + ticks(12)) / 100.0;
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let rss_kb = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse::<u64>().ok())
        .unwrap_or(0);
    (cpu, rss_kb * 1024)
}

fn arg<T: std::str::FromStr>(args: &[String], name: &str, default: T) -> T {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.trim_end_matches('s').parse().ok())
        .unwrap_or(default)
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).map(String::as_str) == Some("--client") {
        client(&args);
        return;
    }
    let links: usize = arg(&args, "--links", 10_000);
    let secs: u64 = arg(&args, "--secs", 30);
    let interval = Duration::from_secs(arg(&args, "--interval", 1));

    let (_, rss_start) = usage();
    let mut node = Node::new(node_config(links)).expect("server node");
    let listen = ListenConfig {
        max_connections: links,
        liveness: liveness(interval),
        ..ListenConfig::default()
    };
    let l = node
        .listen("127.0.0.1:0".parse().expect("addr"), listen)
        .expect("listen");
    let addr = node.local_addr(l).expect("bound");
    let (_, rss_built) = usage();

    let exe = std::env::current_exe().expect("own path");
    let mut child = Command::new(exe)
        .args(["--client", &addr.to_string(), &links.to_string()])
        .args(["--interval", &interval.as_secs().to_string()])
        .stdout(Stdio::piped())
        .spawn()
        .expect("start the client process");
    let child_out = child.stdout.take().expect("piped");
    // The child prints one line when all its links are up.
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(child_out).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });

    let mut up = 0usize;
    let mut closed = 0usize;
    let deadline = Instant::now() + Duration::from_secs(120);
    while up < links && Instant::now() < deadline {
        node.poll(Some(Duration::from_millis(100))).expect("poll");
        while let Some(ev) = node.next_event() {
            match ev {
                Event::Connected { .. } => up += 1,
                Event::Closed { .. } | Event::Rejected { .. } => closed += 1,
                _ => {}
            }
        }
    }
    let (cpu0, rss_up) = usage();
    let t0 = Instant::now();
    let measure = Duration::from_secs(secs);
    while t0.elapsed() < measure {
        node.poll(Some(measure.saturating_sub(t0.elapsed())))
            .expect("poll");
        while let Some(ev) = node.next_event() {
            if let Event::Closed { reason, .. } = ev {
                closed += 1;
                eprintln!("closed during the run: {reason}");
            }
        }
    }
    let (cpu1, rss_end) = usage();
    let wall = t0.elapsed().as_secs_f64();
    let _ = child.kill();
    let _ = child.wait();
    let _ = rx.try_recv();

    let per_link = rss_end.saturating_sub(rss_built) as f64 / up.max(1) as f64;
    println!(
        "bench_idle: links={up}/{links} interval={}s measured={wall:.1}s",
        interval.as_secs()
    );
    println!(
        "server_cpu_percent={:.2} (user+sys {:.2}s over {wall:.1}s)",
        100.0 * (cpu1 - cpu0) / wall,
        cpu1 - cpu0
    );
    println!(
        "rss_start={}KiB rss_node_built={}KiB rss_links_up={}KiB rss_end={}KiB rss_per_link={per_link:.0}B",
        rss_start / 1024,
        rss_built / 1024,
        rss_up / 1024,
        rss_end / 1024
    );
    println!("closed_links={closed} (0 expected: heartbeats keep every link alive)");
}

/// The child: `links` outbound links to the server, heartbeating until killed.
fn client(args: &[String]) {
    let addr: SocketAddr = args[2].parse().expect("server address");
    let links: usize = args[3].parse().expect("link count");
    let interval = Duration::from_secs(arg(args, "--interval", 1));
    let mut node = Node::new(node_config(links)).expect("client node");
    let cfg = ConnectConfig {
        connect_timeout: Duration::from_secs(30),
        liveness: liveness(interval),
        ..ConnectConfig::default()
    };
    let mut started = 0;
    let mut up = 0;
    let mut announced = false;
    loop {
        // Connect in batches so the listener's accept queue never overflows.
        while started < links && started - up < 256 {
            node.connect(addr, &cfg).expect("connect");
            started += 1;
        }
        node.poll(Some(Duration::from_millis(100))).expect("poll");
        while let Some(ev) = node.next_event() {
            match ev {
                Event::Connected { .. } => up += 1,
                Event::Closed { reason, .. } => eprintln!("client link closed: {reason}"),
                _ => {}
            }
        }
        if up == links && !announced {
            println!("all {links} links up");
            announced = true;
        }
    }
}

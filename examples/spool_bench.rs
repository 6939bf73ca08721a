//! The relay's durable intake against the disk's own floor (issue 13).
//!
//! `cargo run --release --example spool_bench [DIR]` (DIR: where the spool and
//! the floor's file go; default the system temp dir, which must be on the
//! disk to measure, not a tmpfs).
//!
//! - Disk floor: `write` + `fdatasync` of 64 records of 256 B per sync, and of
//!   one record per sync.
//! - Relay intake: the library relay on loopback, devices each with one
//!   message in flight (HL7 devices wait for each ACK), every message with its
//!   own MSH-10, `--ack-after queued`: with a 32 MiB spool (`Fsync::Batch`, an
//!   AA only after the fdatasync that covers it) and in memory. The upstream
//!   is down, so this is intake alone; the devices run on the relay's thread
//!   (busy polling: `Relay::turn` with a zero wait).
//! - End to end (issue 13, "forwarding must keep up with intake"): the same
//!   64 devices, `--ack-after queued`, with an upstream that answers every
//!   message (raw: an MLLP receiver on its own thread that answers pipelined
//!   messages in order; mooring: a session server, a [`Node`] on its own
//!   thread, answering each message with an HL7 ACK through the session).
//!   Intake rate (AAs/s), end-to-end rate (messages/s from the first device
//!   write to the upstream's ACK of the last), and the backlog (messages
//!   accepted and not yet acknowledged upstream) sampled every 250 ms: raw
//!   with a window of 1, 8 and 32, and mooring; with the spool and in memory.
//!
//! `spool_bench [DIR] [intake|forward]` runs one half only; `spool64` only
//! the spool's intake with 64 devices (for `strace -c` or `perf`).

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mooring::relay::{Relay, RelayConfig, RelayEvent, SpoolSettings};
use mooring::session::{Overflow, SessionConfig};
use mooring::{Event, ListenConfig, LivenessConfig, Node, NodeConfig, Protocol};

/// Messages per relay run (all stay queued: the upstream is down).
const MESSAGES: usize = 20_000;

fn floor(dir: &Path, per_sync: usize, syncs: usize) -> f64 {
    let path = dir.join("mooring-floor.bin");
    let f = OpenOptions::new()
        .create(true)
        .truncate(true)
        .read(true)
        .write(true)
        .open(&path)
        .expect("floor file");
    let total = (per_sync * syncs * 256) as u64;
    f.write_all_at(&vec![0u8; total as usize], 0)
        .expect("preallocate");
    f.sync_all().expect("sync");
    let batch = vec![7u8; per_sync * 256];
    let start = Instant::now();
    for i in 0..syncs {
        f.write_all_at(&batch, (i * batch.len()) as u64)
            .expect("write");
        f.sync_data().expect("fdatasync");
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    (per_sync * syncs) as f64 / secs
}

fn message(dev: usize, n: usize) -> Vec<u8> {
    let mut m = format!(
        "\x0bMSH|^~\\&|DEV{dev}|WARD|EHR|HOSP|20260101120000||ORU^R01|M{dev}-{n}|P|2.5\rPID|1||{dev}\r"
    )
    .into_bytes();
    m.extend_from_slice(b"OBX|1|NM|8867-4^Heart rate^LN||72|/min|||||F\r\x1c\r");
    m
}

/// Messages per second the devices got AA for.
fn intake(devices: usize, spool: Option<&Path>) -> f64 {
    let down = down_addr();
    let cfg = RelayConfig {
        queue: MESSAGES + devices,
        spool: spool.map(|d| SpoolSettings {
            size: 32 << 20,
            ..SpoolSettings::new(d)
        }),
        ..RelayConfig::new(down)
    };
    run(devices, cfg).intake
}

/// One relay run's figures.
struct Run {
    /// AAs per second (after the first round).
    intake: f64,
    /// Messages per second from the first device write to the upstream's ACK
    /// of the last (0: the upstream is down).
    end_to_end: f64,
    /// Backlog (accepted, not yet acknowledged upstream) every 250 ms.
    backlog: Vec<usize>,
}

/// Drives `devices` devices (each with one message in flight, MESSAGES in
/// all) through a relay of `cfg`; with an upstream that answers, until it
/// acknowledged every message.
fn run(devices: usize, cfg: RelayConfig) -> Run {
    let mut node = Node::new(NodeConfig {
        max_links: devices + 8,
        max_sessions: cfg.node_sessions(),
        ..NodeConfig::default()
    })
    .expect("node");
    let l = node
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                max_connections: devices + 1,
                ..ListenConfig::default()
            },
        )
        .expect("listen");
    let addr = node.local_addr(l).expect("addr");
    let mut relay = Relay::new(cfg, &node).expect("relay");
    let mut upstream_acks = 0usize;
    let mut devs: Vec<(TcpStream, usize, Vec<u8>)> = (0..devices)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, 0, Vec::new())
        })
        .collect();
    let per_dev = MESSAGES / devices;
    let total = per_dev * devices;
    let mut acked = 0usize;
    let mut started = None;
    // Wait for the upstream first, when there is one that answers.
    let forward = relay.config().upstream != down_addr();
    let up_by = Instant::now() + Duration::from_secs(10);
    while forward && !upstream_up(&mut relay, &mut node) {
        assert!(Instant::now() < up_by, "upstream not connected");
    }
    let t_first = Instant::now();
    for (d, (s, n, _)) in devs.iter_mut().enumerate() {
        s.write_all(&message(d, *n)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(300);
    let mut buf = [0u8; 4096];
    let mut backlog = Vec::new();
    let mut next_sample = t_first + Duration::from_millis(250);
    let mut intake_done = None;
    while acked < total || (forward && upstream_acks < total) {
        assert!(
            Instant::now() < deadline,
            "stalled at {acked} AAs, {upstream_acks} upstream ACKs"
        );
        relay
            .turn(&mut node, Duration::ZERO, &mut |ev| {
                if let RelayEvent::Acked { .. } = ev {
                    upstream_acks += 1;
                }
            })
            .expect("turn");
        if Instant::now() >= next_sample {
            backlog.push(relay.queued());
            next_sample += Duration::from_millis(250);
        }
        if acked == total {
            intake_done.get_or_insert_with(Instant::now);
            continue;
        }
        for (d, (s, n, rx)) in devs.iter_mut().enumerate() {
            match s.read(&mut buf) {
                Ok(0) => panic!("relay closed device {d}"),
                Ok(k) => rx.extend_from_slice(&buf[..k]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => continue,
                Err(e) => panic!("read: {e}"),
            }
            while let Some(end) = rx.windows(2).position(|w| w == [0x1c, 0x0d]) {
                assert!(
                    rx[..end].windows(6).any(|w| w == b"MSA|AA"),
                    "not AA: {}",
                    String::from_utf8_lossy(&rx[..end])
                );
                rx.drain(..end + 2);
                acked += 1;
                *n += 1;
                // The first round warms up (connects, first commit).
                if started.is_none() && acked == devices {
                    started = Some((Instant::now(), acked));
                }
                if *n < per_dev {
                    s.write_all(&message(d, *n)).unwrap();
                }
            }
        }
    }
    let (t0, base) = started.expect("started");
    let t_intake = intake_done.unwrap_or_else(Instant::now);
    Run {
        intake: (acked - base) as f64 / t_intake.duration_since(t0).as_secs_f64(),
        end_to_end: if forward {
            total as f64 / t_first.elapsed().as_secs_f64()
        } else {
            0.0
        },
        backlog,
    }
}

/// The address intake runs forward to: nothing listens there.
fn down_addr() -> std::net::SocketAddr {
    use std::sync::OnceLock;
    static DOWN: OnceLock<std::net::SocketAddr> = OnceLock::new();
    *DOWN.get_or_init(|| {
        std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
    })
}

/// One turn; true once the upstream reported connected.
fn upstream_up(relay: &mut Relay, node: &mut Node) -> bool {
    let mut up = false;
    relay
        .turn(node, Duration::from_millis(10), &mut |ev| {
            if let RelayEvent::UpstreamConnected { .. } = ev {
                up = true;
            }
        })
        .expect("turn");
    up
}

/// MSH-10 of `m`.
fn msh10(m: &[u8]) -> &[u8] {
    m.split(|&b| b == b'|').nth(9).unwrap_or(b"")
}

/// A raw upstream on its own thread: answers every message AA (MSA-2 its
/// MSH-10), in order, pipelined messages included; one write per read.
fn raw_upstream() -> std::net::SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().unwrap();
    std::thread::spawn(move || {
        for c in l.incoming() {
            let Ok(mut c) = c else { return };
            c.set_nodelay(true).unwrap();
            std::thread::spawn(move || {
                let mut rx = Vec::new();
                let mut tx = Vec::new();
                let mut buf = [0u8; 65536];
                loop {
                    match c.read(&mut buf) {
                        Ok(0) | Err(_) => return,
                        Ok(k) => rx.extend_from_slice(&buf[..k]),
                    }
                    let mut used = 0;
                    while let Some(end) = rx[used..].windows(2).position(|w| w == [0x1c, 0x0d]) {
                        let frame = &rx[used + 1..used + end];
                        tx.extend_from_slice(
                            b"\x0bMSH|^~\\&|EHR|HOSP|DEV|WARD|20260101120000||ACK|A|P|2.5\rMSA|AA|",
                        );
                        tx.extend_from_slice(msh10(frame));
                        tx.extend_from_slice(b"\r\x1c\r");
                        used += end + 2;
                    }
                    rx.drain(..used);
                    if !tx.is_empty() && c.write_all(&tx).is_err() {
                        return;
                    }
                    tx.clear();
                }
            });
        }
    });
    addr
}

/// A mooring session server on its own thread (as `mooring listen --protocol
/// mooring --session`): answers each message with an HL7 ACK through the
/// session; the session acknowledges delivery cumulatively.
fn mooring_upstream() -> std::net::SocketAddr {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut node = Node::new(NodeConfig {
            max_links: 16,
            max_sessions: 4,
            ..NodeConfig::default()
        })
        .expect("server node");
        let l = node
            .listen(
                "127.0.0.1:0".parse().unwrap(),
                ListenConfig {
                    liveness: LivenessConfig {
                        protocol: Protocol::Mooring,
                        ..LivenessConfig::default()
                    },
                    session: Some(SessionConfig {
                        overflow: Overflow::CloseSession,
                        reserve_reply: true,
                        ..SessionConfig::default()
                    }),
                    ..ListenConfig::default()
                },
            )
            .expect("server listen");
        tx.send(node.local_addr(l).expect("addr")).unwrap();
        let mut ack = vec![0u8; 4096];
        let mut ts = [0u8; 14];
        let ts = mooring::hl7::timestamp_utc(1_767_225_600, &mut ts).to_vec();
        loop {
            node.poll(Some(Duration::from_millis(100))).expect("poll");
            while let Some(ev) = node.next_event() {
                if let Event::SessionMessage { session, payload } = ev {
                    let n = mooring::hl7::build_ack(
                        payload,
                        mooring::hl7::AckCode::Accept,
                        &ts,
                        &mut ack,
                    );
                    if let Some(n) = n {
                        let _ = node.session_send(session, &ack[..n]);
                    }
                }
            }
        }
    });
    rx.recv().expect("server address")
}

/// Where an end-to-end run forwards.
#[derive(Clone, Copy)]
enum Upstream {
    Raw { window: usize },
    Mooring,
}

/// End to end through `up`, in memory or with the spool in `spool`.
fn end_to_end(devices: usize, up: Upstream, spool: Option<&Path>) -> Run {
    let (addr, window, liveness) = match up {
        Upstream::Raw { window } => (raw_upstream(), window, LivenessConfig::default()),
        Upstream::Mooring => (
            mooring_upstream(),
            1,
            LivenessConfig {
                protocol: Protocol::Mooring,
                ..LivenessConfig::default()
            },
        ),
    };
    let cfg = RelayConfig {
        queue: MESSAGES + devices,
        upstream_window: window,
        liveness,
        spool: spool.map(|d| SpoolSettings {
            size: 32 << 20,
            ..SpoolSettings::new(d)
        }),
        ..RelayConfig::new(addr)
    };
    run(devices, cfg)
}

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, PathBuf::from);
    let only = std::env::args().nth(2);
    println!("dir={}", dir.display());
    if only.as_deref() == Some("spool64") {
        // One figure, for profiling (strace -c, perf): 64 devices, spool.
        let spool = dir.join(format!("mooring-bench-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&spool);
        println!(
            "intake devices=64 spool_batch_msgs_per_s={:.0}",
            intake(64, Some(&spool))
        );
        let _ = std::fs::remove_dir_all(&spool);
        return;
    }
    if only.as_deref() != Some("forward") {
        intake_and_floor(&dir);
    }
    if only.as_deref() != Some("intake") {
        forward(&dir);
    }
}

/// The end-to-end table: 64 devices, each upstream kind, spool and memory.
fn forward(dir: &Path) {
    let ups = [
        ("raw_window_1", Upstream::Raw { window: 1 }),
        ("raw_window_8", Upstream::Raw { window: 8 }),
        ("raw_window_32", Upstream::Raw { window: 32 }),
        ("mooring", Upstream::Mooring),
    ];
    for (name, up) in ups {
        for durable in [true, false] {
            let spool = dir.join(format!("mooring-bench-spool-{}", std::process::id()));
            let _ = std::fs::remove_dir_all(&spool);
            let r = end_to_end(64, up, durable.then_some(spool.as_path()));
            let _ = std::fs::remove_dir_all(&spool);
            let peak = r.backlog.iter().max().copied().unwrap_or(0);
            let trace: Vec<String> = r.backlog.iter().map(|b| b.to_string()).collect();
            println!(
                "forward devices=64 upstream={name} queue={} intake_msgs_per_s={:.0} end_to_end_msgs_per_s={:.0} backlog_peak={peak} backlog_every_250ms={}",
                if durable { "spool_batch" } else { "memory" },
                r.intake,
                r.end_to_end,
                trace.join(",")
            );
        }
    }
}

/// The disk's floor and the relay's intake (upstream down).
fn intake_and_floor(dir: &Path) {
    let f64r = floor(dir, 64, 300);
    let f1 = floor(dir, 1, 1000);
    println!(
        "floor records_per_sync=64 msgs_per_s={f64r:.0} syncs_per_s={:.0}",
        f64r / 64.0
    );
    println!("floor records_per_sync=1 msgs_per_s={f1:.0} syncs_per_s={f1:.0}");
    for devices in [1, 16, 64] {
        let spool = dir.join(format!("mooring-bench-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&spool);
        // The disk's floor for as many records per sync, just before and
        // just after: on a shared disk it moves a lot between runs, so the
        // ratio is taken against the floor of the same minute.
        let syncs = if devices == 1 { 500 } else { 200 };
        let before = floor(dir, devices, syncs);
        let durable = intake(devices, Some(&spool));
        let after = floor(dir, devices, syncs);
        let _ = std::fs::remove_dir_all(&spool);
        let memory = intake(devices, None);
        let floor_now = (before + after) / 2.0;
        println!(
            "intake devices={devices} spool_batch_msgs_per_s={durable:.0} memory_msgs_per_s={memory:.0} floor_same_records_per_sync_msgs_per_s={before:.0}..{after:.0} spool_vs_floor={:.0}%",
            100.0 * durable / floor_now
        );
    }
}

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

use std::fs::OpenOptions;
use std::io::{ErrorKind, Read, Write};
use std::net::TcpStream;
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use mooring::relay::{Relay, RelayConfig, SpoolSettings};
use mooring::{ListenConfig, Node, NodeConfig};

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
    let mut node = Node::new(NodeConfig {
        max_links: devices + 8,
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
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap();
    let cfg = RelayConfig {
        queue: MESSAGES + devices,
        spool: spool.map(|d| SpoolSettings {
            size: 32 << 20,
            ..SpoolSettings::new(d)
        }),
        ..RelayConfig::new(down)
    };
    let mut relay = Relay::new(cfg, &node).expect("relay");
    let mut out = |_: mooring::relay::RelayEvent<'_>| {};
    let mut devs: Vec<(TcpStream, usize, Vec<u8>)> = (0..devices)
        .map(|_| {
            let s = TcpStream::connect(addr).expect("connect");
            s.set_nodelay(true).unwrap();
            s.set_nonblocking(true).unwrap();
            (s, 0, Vec::new())
        })
        .collect();
    let per_dev = MESSAGES / devices;
    let mut acked = 0usize;
    let mut started = None;
    for (d, (s, n, _)) in devs.iter_mut().enumerate() {
        s.write_all(&message(d, *n)).unwrap();
    }
    let deadline = Instant::now() + Duration::from_secs(120);
    let mut buf = [0u8; 4096];
    while acked < per_dev * devices {
        assert!(Instant::now() < deadline, "stalled at {acked}");
        relay
            .turn(&mut node, Duration::ZERO, &mut out)
            .expect("turn");
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
    (acked - base) as f64 / t0.elapsed().as_secs_f64()
}

fn main() {
    let dir: PathBuf = std::env::args()
        .nth(1)
        .map_or_else(std::env::temp_dir, PathBuf::from);
    println!("dir={}", dir.display());
    let f64r = floor(&dir, 64, 300);
    let f1 = floor(&dir, 1, 1000);
    println!(
        "floor records_per_sync=64 msgs_per_s={f64r:.0} syncs_per_s={:.0}",
        f64r / 64.0
    );
    println!("floor records_per_sync=1 msgs_per_s={f1:.0} syncs_per_s={f1:.0}");
    for devices in [1, 16, 64] {
        let spool = dir.join(format!("mooring-bench-spool-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&spool);
        let durable = intake(devices, Some(&spool));
        let _ = std::fs::remove_dir_all(&spool);
        let memory = intake(devices, None);
        println!(
            "intake devices={devices} spool_batch_msgs_per_s={durable:.0} memory_msgs_per_s={memory:.0}"
        );
    }
}

//! A session client that never acknowledges cannot grow the server's memory
//! (hardening issue, item 3): `mooring listen --protocol mooring --session`
//! against a raw client that sends DATA with a 400 KB MSH-10 (each HL7 ACK
//! quotes it twice) and never acknowledges a reply. The server takes a message
//! only while its session's replay queue (one byte ring of
//! `SessionConfig::max_bytes`, 8 MiB, allocated once) has room for a reply as
//! large; then it stops reading the link and closes it (`SessionQueueFull`), so
//! nothing is stored aside.

mod support;
// The MLLP framing the library tests use.
mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use common::mllp;
use mooring::internals::wire::{self, Greeting, Msg};
use support::{Proc, WITHIN};

/// Bytes of the hostile MSH-10.
const MSH10: usize = 400 * 1024;
/// DATA messages the client tries to send (60 MB of payload).
const MESSAGES: u64 = 150;
/// Peak RSS the server may reach: the replay ring (8 MiB), the node's buffers
/// (2 large of 1 MiB, the burst buffer, working buffers) and the reply buffer
/// (1 MiB), with room for the allocator and the binary. Before the fix, the
/// reply backlog alone held one 800 KB copy per message sent.
const RSS_BOUND_KIB: u64 = 40 * 1024;

/// A `/proc/PID/status` field in KiB (Linux).
fn status_kib(pid: u32, key: &str) -> u64 {
    let text = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("proc status");
    text.lines()
        .find_map(|l| l.strip_prefix(key))
        .and_then(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("{key} not in /proc/{pid}/status"))
}

/// One hostile session: HELLO, then up to `count` DATA whose MSH-10 has
/// `msh10` bytes, replies read and thrown away, never acknowledged. Returns how
/// many DATA were written before the server stopped reading or closed.
fn hostile_session(addr: std::net::SocketAddr, msh10: usize, count: u64, pid: u32) -> (u64, u64) {
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_write_timeout(Some(Duration::from_millis(500)))
        .expect("timeout");
    let mut r = s.try_clone().expect("clone");
    let reader = std::thread::spawn(move || {
        let mut buf = vec![0u8; 64 * 1024];
        r.set_read_timeout(Some(Duration::from_secs(20))).ok();
        while let Ok(n) = r.read(&mut buf) {
            if n == 0 {
                break;
            }
        }
    });
    s.write_all(&common::wire_mllp(&Msg::Hello(Greeting::new_session())))
        .expect("HELLO");
    let id = "X".repeat(msh10);
    let msg = format!("MSH|^~\\&|A|B|C|D|20260101||ADT^A01|{id}|P|2.5\r");
    let mut written = 0;
    let mut peak = 0;
    for seq in 1..=count {
        let mut body = wire::data_header(seq).to_vec();
        body.extend_from_slice(msg.as_bytes());
        if s.write_all(&mllp(&body)).is_err() {
            break; // the server stopped reading, or closed the link
        }
        written += 1;
        peak = peak.max(status_kib(pid, "VmRSS:"));
    }
    let _ = s.shutdown(std::net::Shutdown::Both);
    let _ = reader.join();
    (written, peak)
}

/// Waits a bounded while for the server to work through what it read, then
/// returns its peak RSS (stops early once over `bound`).
fn settled_peak(pid: u32, bound: u64) -> u64 {
    let deadline = Instant::now() + Duration::from_secs(3);
    while Instant::now() < deadline && status_kib(pid, "VmHWM:") <= bound {
        std::thread::sleep(Duration::from_millis(50));
    }
    status_kib(pid, "VmHWM:")
}

#[test]
fn a_session_client_that_never_acknowledges_cannot_grow_the_servers_memory() {
    let (mut listen, addr) = Proc::listen(&["--protocol", "mooring", "--session", "--quiet"]);
    let pid = listen.pid();
    let start_kib = status_kib(pid, "VmRSS:");
    let (written, peak) = hostile_session(addr, MSH10, MESSAGES, pid);
    let hwm = settled_peak(pid, RSS_BOUND_KIB);
    eprintln!(
        "server RSS: start {start_kib} KiB, peak sampled {peak} KiB, VmHWM {hwm} KiB; \
         {written} of {MESSAGES} DATA written"
    );
    assert!(
        hwm <= RSS_BOUND_KIB,
        "server peak RSS {hwm} KiB over {RSS_BOUND_KIB} KiB (start {start_kib} KiB)"
    );
    // The refusal has a name: the link closes with SessionQueueFull (or the
    // session ends QueueFull when one reply outgrows the room left).
    let line = listen.expect_line(
        |l| l.contains("reason=SessionQueueFull") || l.contains("how=QueueFull"),
        WITHIN,
    );
    eprintln!("{line}");
    // The server still serves.
    let _ = TcpStream::connect(addr).expect("still accepting");
}

/// Many hostile sessions, one after another: the total stays within the
/// session table's rings (`2 x --max-conns` of `--queue-bytes`), reused by
/// eviction, not one more per session.
#[test]
fn many_sessions_that_never_acknowledge_stay_within_the_table_of_rings() {
    let (_listen, addr) = Proc::listen(&[
        "--protocol",
        "mooring",
        "--session",
        "--quiet",
        "--max-conns",
        "2",
        "--queue-bytes",
        "2097152",
    ]);
    let pid = _listen.pid();
    let start_kib = status_kib(pid, "VmRSS:");
    // 4 rings of 2 MiB, the node's buffers (2 large of 1 MiB, burst, working)
    // and the reply buffer, over the idle process.
    let bound = start_kib + 24 * 1024;
    let mut written = 0;
    for _ in 0..8 {
        written += hostile_session(addr, 200 * 1024, 40, pid).0;
    }
    let hwm = settled_peak(pid, bound);
    eprintln!(
        "server RSS: start {start_kib} KiB, VmHWM {hwm} KiB; {written} DATA written in 8 sessions"
    );
    assert!(hwm <= bound, "server peak RSS {hwm} KiB over {bound} KiB");
}

/// The other side of the bound: a requester that keeps at most `--queue`
/// requests in flight (as `send --session` does) never meets a full reply
/// queue, so nothing is held or cut while it pipelines.
#[test]
fn a_pipelining_requester_within_its_queue_is_never_refused() {
    let file = std::env::temp_dir().join(format!("mooring-pipeline-{}.hl7", std::process::id()));
    let mut text = String::new();
    for i in 0..3000 {
        text.push_str(&format!(
            "MSH|^~\\&|A|B|C|D|20260101||ADT^A01|MSG{i:05}|P|2.5\nPID|1||{i}\n\n"
        ));
    }
    std::fs::write(&file, text).expect("write messages");
    let session = ["--protocol", "mooring", "--session", "--queue", "100"];
    let mut args = vec!["--quiet"];
    args.extend_from_slice(&session);
    let (mut listen, addr) = Proc::listen(&args);
    let addr = addr.to_string();
    let mut send = vec!["send", &addr, file.to_str().expect("path")];
    send.extend_from_slice(&session);
    let r = support::run(support::mooring(&send), None);
    let _ = std::fs::remove_file(&file);
    assert_eq!(
        r.lines().last().copied(),
        Some("event=summary sent=3000 replied=3000 failed=0 resends=0 unexpected=0 rejected=0"),
        "{}",
        r.stderr
    );
    listen.expect_line(|l| l.contains("how=Closed"), WITHIN);
    let refused: Vec<&String> = listen
        .seen()
        .iter()
        .filter(|l| l.contains("SessionQueueFull"))
        .collect();
    assert!(refused.is_empty(), "refused while pipelining: {refused:?}");
}

//! Seed 000: the pairings of keep-open and close-after-reply, idle eviction
//! and stale recovery.

use std::io::Read;
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mooring::{ClientPolicy, CloseReason};

use crate::args::ListenOpts;
use crate::line::Line;

use super::harness::{client, loopback, request, ServerThread};
use super::{Outcome, EXPECT_WITHIN, MESSAGES};

/// Seed 000: the four pairings of client and server "keep connection open".
/// Every pairing must deliver each message exactly once and get its ACK,
/// including the one HL7 Soup says not to use (keep-open client, close-after-reply
/// server): the client notices the close, or resends once when its write crossed it.
pub(super) fn pairings() -> Outcome {
    const NAME: &str = "pairings";
    let cases = [
        (ClientPolicy::KeepOpen, false, 1),
        (ClientPolicy::KeepOpen, true, MESSAGES.len()),
        (ClientPolicy::ClosePerMessage, false, MESSAGES.len()),
        (ClientPolicy::ClosePerMessage, true, MESSAGES.len()),
    ];
    for (policy, close_after_reply, want_connects) in cases {
        let cname = match policy {
            ClientPolicy::KeepOpen => "keep-open",
            ClientPolicy::ClosePerMessage => "close-each",
        };
        let sname = if close_after_reply {
            "close-after-reply"
        } else {
            "keep-open"
        };
        let server = ServerThread::start(
            NAME,
            ListenOpts {
                close_after_reply,
                ..loopback()
            },
        )?;
        let mut c = client(server.addr, policy)?;
        let line = || {
            Line::new("scenario", NAME)
                .kv("client", cname)
                .kv("server", sname)
        };
        for n in 1..=MESSAGES.len() {
            request(&mut c, line, n)?;
        }
        let stats = c.stats();
        drop(c);
        // The server saw each message exactly once, in order (a resend only ever
        // repeats a message the server did not process).
        let mut ids = Vec::new();
        let want_ids: Vec<String> = (1..=MESSAGES.len()).map(|n| format!("MSG{n:05}")).collect();
        let deadline = Instant::now() + EXPECT_WITHIN;
        while ids.len() < want_ids.len() && Instant::now() < deadline {
            let left = deadline.saturating_duration_since(Instant::now());
            if let Ok(s) = server.seen.recv_timeout(left) {
                if s.kind == "message" {
                    ids.push(s.id.unwrap_or_default());
                }
            }
        }
        ids.extend(
            server
                .drain()
                .into_iter()
                .filter(|s| s.kind == "message")
                .map(|s| s.id.unwrap_or_default()),
        );
        line()
            .kv("event", "done")
            .kv("replies", stats.replies)
            .kv("connects", stats.connects)
            .kv("resends", stats.resends)
            .kv("server_messages", ids.len())
            .print();
        if ids != want_ids {
            return Err(format!("{cname}/{sname}: server saw {ids:?}"));
        }
        if stats.replies != MESSAGES.len() as u64 || stats.connects != want_connects as u64 {
            return Err(format!(
                "{cname}/{sname}: {} replies, {} connects (want {want_connects})",
                stats.replies, stats.connects
            ));
        }
    }
    Ok(())
}

/// Seed 001, many connections: a peer that goes quiet is closed with
/// `IdleTimeout`, not before; the client then reconnects transparently.
pub(super) fn idle() -> Outcome {
    const NAME: &str = "idle";
    const IDLE: Duration = Duration::from_millis(300);
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            idle_timeout: Some(IDLE),
            ..loopback()
        },
    )?;
    let mut c = client(server.addr, ClientPolicy::KeepOpen)?;
    let line = || Line::new("scenario", NAME);
    request(&mut c, line, 1)?;
    let quiet_since = Instant::now();
    let connected = server.expect("connected", |s| s.kind == "connected")?;
    // Time passing is the point here: nothing may close the link before IDLE.
    server.quiet_until(quiet_since + IDLE - Duration::from_millis(50), |s| {
        s.kind == "closed"
    })?;
    let closed = server.expect("closed", |s| s.kind == "closed")?;
    let after = quiet_since.elapsed();
    line()
        .kv("event", "evicted")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("after_ms", after.as_millis())
        .print();
    if closed.reason != Some(CloseReason::IdleTimeout) || closed.peer != connected.peer {
        return Err(format!(
            "want IdleTimeout for {}, got {closed:?}",
            connected.peer
        ));
    }
    // The client finds the link closed before writing and reconnects.
    request(&mut c, line, 2)?;
    let stats = c.stats();
    line()
        .kv("event", "done")
        .kv("connects", stats.connects)
        .kv("resends", stats.resends)
        .print();
    if stats.connects != 2 {
        return Err(format!("want 2 connects, got {}", stats.connects));
    }
    Ok(())
}

/// Seed 001, one connection: a silently dropped peer holds the only slot; a
/// second peer is refused while the first is fresh, and replaces it once it has
/// been idle for the stale timeout.
pub(super) fn stale() -> Outcome {
    const NAME: &str = "stale";
    const STALE: Duration = Duration::from_millis(300);
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            max_conns: 1,
            stale_recovery: Some(STALE),
            ..loopback()
        },
    )?;
    let line = || Line::new("scenario", NAME);
    // The silent peer: connects, then never sends (as if its network went away).
    let mut silent = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    server.expect("the silent peer's connect", |s| {
        s.kind == "connected" && s.peer == silent_addr
    })?;
    // Taken once the server reports the accept, so the link's idle time (counted
    // from the accept) is at least the time elapsed since this instant.
    let silent_since = Instant::now();
    // A second peer right away: the slot is taken and not stale yet.
    let early = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let early_addr = early.local_addr().map_err(|e| e.to_string())?;
    let rejected = server.expect("the early peer's rejection", |s| s.peer == early_addr)?;
    if rejected.kind != "rejected" || rejected.reason != Some(CloseReason::TooManyConnections) {
        return Err(format!(
            "early peer: want TooManyConnections, got {rejected:?}"
        ));
    }
    drop(early);
    // Wait out the stale timeout (the point of the scenario), watching for surprises.
    server.quiet_until(silent_since + STALE + Duration::from_millis(20), |s| {
        s.kind == "closed" && s.peer == silent_addr
    })?;
    // A third peer, a real client, replaces the stale link and is served.
    let mut c = client(server.addr, ClientPolicy::KeepOpen)?;
    request(&mut c, line, 1)?;
    let closed = server.expect("the stale link's close", |s| {
        s.kind == "closed" && s.peer == silent_addr
    })?;
    line()
        .kv("event", "replaced")
        .kv("peer", silent_addr)
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("idle_ms", silent_since.elapsed().as_millis())
        .print();
    if closed.reason != Some(CloseReason::StaleReplaced) {
        return Err(format!("want StaleReplaced, got {closed:?}"));
    }
    // The silent peer's socket really was closed: it reads EOF (or a reset).
    let _ = silent.set_read_timeout(Some(EXPECT_WITHIN));
    let mut b = [0u8; 16];
    match silent.read(&mut b) {
        Ok(0) => {}
        Err(e)
            if e.kind() != std::io::ErrorKind::WouldBlock
                && e.kind() != std::io::ErrorKind::TimedOut => {}
        other => return Err(format!("stale peer's socket still open: {other:?}")),
    }
    Ok(())
}

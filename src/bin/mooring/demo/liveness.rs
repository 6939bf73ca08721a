//! Liveness: a peer that never says HELLO and one that answers no PING are
//! closed; a heartbeating client keeps its idle link.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use mooring::internals::wire::{self, Greeting, Msg, WireReason};
use mooring::{ClientPolicy, CloseReason, Heartbeat, LivenessConfig, Protocol};

use crate::args::ListenOpts;
use crate::line::Line;

use super::harness::{client_with, loopback, request, ServerThread};
use super::{Outcome, EXPECT_WITHIN};

/// Seeds 002-004: dead and silent peers are noticed within the bound. A
/// mooring-protocol server with heartbeat 200ms/600ms closes (a) a raw peer that
/// never says HELLO (`HandshakeTimeout`, 300 ms) and (b) a peer that completes the
/// handshake and then answers no PING (`HeartbeatTimeout`, within the detection
/// bound); (c) a heartbeating mooring client keeps its idle link across 1 s, far
/// past the server's heartbeat timeout, and is answered on it.
pub(super) fn liveness() -> Outcome {
    const NAME: &str = "liveness";
    const HANDSHAKE: Duration = Duration::from_millis(300);
    let live = LivenessConfig {
        protocol: Protocol::Mooring,
        heartbeat: Some(Heartbeat {
            interval: Duration::from_millis(200),
            timeout: Duration::from_millis(600),
        }),
        handshake_timeout: HANDSHAKE,
        ..LivenessConfig::default()
    };
    let bound = live
        .detection_bound()
        .ok_or("no detection bound with a heartbeat")?;
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            liveness: live.clone(),
            ..loopback()
        },
    )?;
    let line = || Line::new("scenario", NAME);

    // (a) Connects and says nothing: the slot is released after the handshake timeout.
    let silent = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let connected_at = Instant::now();
    let silent_addr = silent.local_addr().map_err(|e| e.to_string())?;
    let closed = server.expect("the silent peer's close", |s| {
        s.kind == "closed" && s.peer == silent_addr
    })?;
    let after = connected_at.elapsed();
    line()
        .kv("event", "closed")
        .kv("peer_kind", "no-hello")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("after_ms", after.as_millis())
        .print();
    if closed.reason != Some(CloseReason::HandshakeTimeout) {
        return Err(format!(
            "no-hello peer: want HandshakeTimeout, got {closed:?}"
        ));
    }
    // Taken after connect() returned, so the server's timer started before it.
    if after + Duration::from_millis(5) < HANDSHAKE {
        return Err(format!("no-hello peer closed early, after {after:?}"));
    }
    drop(silent);

    // (b) Says HELLO, gets WELCOME, then goes silent: never answers PING.
    let mut mute = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
    let mute_addr = mute.local_addr().map_err(|e| e.to_string())?;
    let mut buf = [0u8; wire::MAX_CONTROL];
    let n =
        wire::encode(&Msg::Hello(Greeting::new_session()), &mut buf).ok_or("HELLO does not fit")?;
    let mut hello = vec![0x0B];
    hello.extend_from_slice(&buf[..n]);
    hello.extend_from_slice(b"\x1c\r");
    mute.write_all(&hello)
        .map_err(|e| format!("write HELLO: {e}"))?;
    // The server's last inbound byte is the HELLO: silence starts now at the latest.
    let silent_since = Instant::now();
    server.expect("the mute peer's handshake", |s| {
        s.kind == "connected" && s.peer == mute_addr
    })?;
    let closed = server.expect("the mute peer's close", |s| {
        s.kind == "closed" && s.peer == mute_addr
    })?;
    let after = silent_since.elapsed();
    // What the mute peer was sent: WELCOME, PINGs it never answered, the CLOSE.
    let got = read_frames(&mut mute)?;
    let pings = got.iter().filter(|m| **m == Sent::Ping).count();
    line()
        .kv("event", "closed")
        .kv("peer_kind", "no-pong")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .kv("after_ms", after.as_millis())
        .kv("bound_ms", bound.as_millis())
        .kv("pings_unanswered", pings)
        .print();
    if closed.reason != Some(CloseReason::HeartbeatTimeout) {
        return Err(format!(
            "no-pong peer: want HeartbeatTimeout, got {closed:?}"
        ));
    }
    if after > bound {
        return Err(format!(
            "no-pong peer noticed after {after:?}, beyond the bound {bound:?}"
        ));
    }
    if got.first() != Some(&Sent::Welcome)
        || pings == 0
        || got.last() != Some(&Sent::Close(CloseReason::HeartbeatTimeout))
    {
        return Err(format!(
            "no-pong peer was sent {got:?} (want WELCOME, PINGs, CLOSE)"
        ));
    }

    // (c) A heartbeating client stays connected across idleness, then is served.
    let mut c = client_with(server.addr, ClientPolicy::KeepOpen, live)?;
    request(&mut c, line, 1)?;
    const IDLE: Duration = Duration::from_secs(1);
    if let Some(r) = c.maintain(IDLE) {
        return Err(format!("heartbeating client's link closed while idle: {r}"));
    }
    request(&mut c, line, 2)?;
    let stats = c.stats();
    let server_closes = server
        .drain()
        .into_iter()
        .filter(|s| s.kind == "closed")
        .count();
    line()
        .kv("event", "done")
        .kv("idle_ms", IDLE.as_millis())
        .kv("connects", stats.connects)
        .kv("server_closes", server_closes)
        .print();
    if stats.connects != 1 || server_closes != 0 {
        return Err(format!(
            "heartbeating client: {} connects, {server_closes} closes (want 1 and 0)",
            stats.connects
        ));
    }
    Ok(())
}

/// A protocol message the mute peer of [`liveness`] was sent.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Sent {
    /// WELCOME.
    Welcome,
    /// PING.
    Ping,
    /// CLOSE with its reason.
    Close(CloseReason),
    /// Anything else.
    Other,
}

/// Reads MLLP frames of protocol messages until the peer closes (bounded by
/// [`EXPECT_WITHIN`]).
fn read_frames(s: &mut TcpStream) -> Result<Vec<Sent>, String> {
    s.set_read_timeout(Some(EXPECT_WITHIN))
        .map_err(|e| e.to_string())?;
    let mut bytes = Vec::new();
    let mut buf = [0u8; 512];
    loop {
        match s.read(&mut buf) {
            Ok(0) => break,
            Ok(n) => bytes.extend_from_slice(&buf[..n]),
            // A reset after the CLOSE is an end too.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break,
            Err(e) => return Err(format!("reading the server's frames: {e}")),
        }
    }
    Ok(bytes
        .split(|&b| b == 0x0B)
        .filter(|f| !f.is_empty())
        .map(|f| {
            let payload = f.strip_suffix(b"\x1c\r").unwrap_or(f);
            match wire::decode(payload) {
                Ok(Msg::Welcome(_)) => Sent::Welcome,
                Ok(Msg::Ping) => Sent::Ping,
                Ok(Msg::Close(WireReason::Known(r))) => Sent::Close(r),
                _ => Sent::Other,
            }
        })
        .collect())
}

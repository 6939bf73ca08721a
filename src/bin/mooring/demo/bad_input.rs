//! Bad input: an oversized frame and a broken MLLP frame close only their own
//! link.

use std::io::Write;
use std::net::TcpStream;

use mooring::{ClientPolicy, CloseReason};

use crate::args::ListenOpts;
use crate::line::Line;

use super::harness::{client, loopback, request, ServerThread};
use super::{Outcome, MESSAGES};

/// The scenario's name in its lines.
const NAME: &str = "bad-input";

/// Bad input closes only the offending link, with its reason: an oversized frame
/// (`FrameTooLarge`) and a broken MLLP frame (`BadFrame`), while a good client
/// keeps its link and its replies.
pub(super) fn bad_input() -> Outcome {
    const MAX_FRAME: usize = 4096;
    let server = ServerThread::start(
        NAME,
        ListenOpts {
            max_frame: MAX_FRAME,
            ..loopback()
        },
    )?;
    let line = || Line::new("scenario", NAME);
    let mut good = client(server.addr, ClientPolicy::KeepOpen)?;
    request(&mut good, line, 1)?;

    let cases: [(&str, Vec<u8>, CloseReason); 2] = [
        (
            "oversized",
            oversized_frame(MAX_FRAME),
            CloseReason::FrameTooLarge,
        ),
        ("malformed", malformed_frame(), CloseReason::BadFrame),
    ];
    // The server warns about each bad peer: expected here, and said so.
    crate::logger::expect_warnings(true);
    let checked = bad_peers(&server, &mut good, cases);
    crate::logger::expect_warnings(false);
    checked?;
    for n in 4..=MESSAGES.len() {
        request(&mut good, line, n)?;
    }
    let stats = good.stats();
    line()
        .kv("event", "done")
        .kv("good_replies", stats.replies)
        .kv("good_connects", stats.connects)
        .print();
    if stats.connects != 1 {
        return Err(format!(
            "good client reconnected ({} connects)",
            stats.connects
        ));
    }
    Ok(())
}

/// Each bad peer in turn: its close and reason, then the good client served.
fn bad_peers(
    server: &ServerThread,
    good: &mut mooring::Client,
    cases: [(&str, Vec<u8>, CloseReason); 2],
) -> Outcome {
    let line = || Line::new("scenario", NAME);
    for (n, (what, bytes, want)) in cases.into_iter().enumerate() {
        let mut bad = TcpStream::connect(server.addr).map_err(|e| format!("connect: {e}"))?;
        let addr = bad.local_addr().map_err(|e| e.to_string())?;
        // The server may close before reading it all; that is the expected outcome.
        if let Err(e) = bad.write_all(&bytes) {
            log::debug!("{what} peer: write ended early: {e}");
        }
        let closed = server.expect("the bad peer's close", |s| {
            s.kind == "closed" && s.peer == addr
        })?;
        line()
            .kv("event", "closed")
            .kv("peer_kind", what)
            .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
            .print();
        if closed.reason != Some(want) {
            return Err(format!("{what} peer: want {want}, got {closed:?}"));
        }
        // The good client is still served, on its same link.
        request(good, line, n + 2)?;
    }
    Ok(())
}

/// An MLLP frame announcing more than `max` bytes: start block and `2 * max`
/// bytes, no end block.
fn oversized_frame(max: usize) -> Vec<u8> {
    let mut v = vec![0x0B];
    v.resize(1 + 2 * max, b'A');
    v
}

/// A frame whose end block is not followed by CR, which MLLP requires.
fn malformed_frame() -> Vec<u8> {
    let mut v = vec![0x0B];
    v.extend_from_slice(MESSAGES[0].as_bytes());
    v.extend_from_slice(b"\x1cX");
    v
}

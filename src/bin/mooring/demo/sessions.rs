//! Reliable sessions: a stream across cut links arrives once and in order.

use std::time::{Duration, Instant};

use mooring::session::{Backoff, SessionConfig, SessionError};
use mooring::{hl7, ConnectConfig, Event, LivenessConfig, Node, NodeConfig, Protocol, SessionNote};

use crate::args::{ListenOpts, ReplyMode};
use crate::line::{escape, Line};

use super::harness::{loopback, ServerThread};
use super::{Outcome, EXPECT_WITHIN};

/// Seed 002 (reliable reconnection): a client streams [`SESSION_MESSAGES`]
/// messages through a reliable session while the server cuts the session's
/// link twice mid-stream (a server-side close, at 60 and 130 messages
/// received). The client reconnects, both sides resume the session and replay
/// what the other missed; the server must see every message exactly once and
/// in order, and the client every reply (an AA for its message), likewise.
/// The replay queues are small (16, connected or not) so the stream is still
/// flowing at each cut.
pub(super) fn sessions() -> Outcome {
    const NAME: &str = "sessions";
    const CUTS: &[usize] = &[60, 130];
    let live = LivenessConfig {
        protocol: Protocol::Mooring,
        handshake_timeout: EXPECT_WITHIN,
        ..LivenessConfig::default()
    };
    let scfg = SessionConfig {
        max_depth: 16,
        max_depth_disconnected: 16,
        max_bytes: 64 * 1024,
        ack_every: 8,
        ..SessionConfig::default()
    };
    let server = ServerThread::start_cutting(
        NAME,
        ListenOpts {
            liveness: live.clone(),
            session: Some(scfg),
            reply: ReplyMode::Hl7Ack,
            ..loopback()
        },
        CUTS,
    )?;
    let line = || Line::new("scenario", NAME);
    let mut node = Node::new(NodeConfig {
        max_links: 2,
        max_sessions: 1,
        ..NodeConfig::default()
    })
    .map_err(|e| format!("client node: {e}"))?;
    let connect = ConnectConfig {
        connect_timeout: EXPECT_WITHIN,
        liveness: live,
        session: Some(scfg),
        backoff: Backoff {
            min: Duration::from_millis(10),
            max: Duration::from_millis(50),
            max_attempts: None,
        },
        ..ConnectConfig::default()
    };
    let id = node
        .open_session(server.addr, &connect)
        .map_err(|e| format!("open_session: {e}"))?;
    let ids: Vec<String> = (1..=SESSION_MESSAGES).map(|n| format!("S{n:05}")).collect();
    let messages: Vec<String> = ids
        .iter()
        .enumerate()
        .map(|(i, id)| {
            format!(
                "MSH|^~\\&|DEMO|A|DEMO|B|20260114083000||ADT^A08|{id}|P|2.5.1\rPID|1||MRN{}\r",
                i + 1
            )
        })
        .collect();
    let started = Instant::now();
    let deadline = started + EXPECT_WITHIN;
    let (mut next, mut replies, mut resumes) = (0, Vec::new(), 0);
    while replies.len() < SESSION_MESSAGES {
        // As many as the session's queue takes; the rest once it is acknowledged.
        while next < SESSION_MESSAGES {
            match node.session_send(id, messages[next].as_bytes()) {
                Ok(_) => next += 1,
                Err(SessionError::QueueFull) => break,
                Err(e) => return Err(format!("session_send: {e}")),
            }
        }
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{} of {SESSION_MESSAGES} replies within {EXPECT_WITHIN:?}",
                replies.len()
            ));
        }
        node.poll(Some(left)).map_err(|e| format!("poll: {e}"))?;
        while let Some(ev) = node.next_event() {
            match ev {
                Event::SessionMessage { payload, .. } => {
                    let acked = hl7::acked_control_id(payload).map(escape);
                    if hl7::ack_code(payload) != Some(b"AA") {
                        return Err(format!("reply {} is not an AA", replies.len() + 1));
                    }
                    replies.push(acked.unwrap_or_default());
                }
                Event::Session {
                    note:
                        SessionNote::Established {
                            resumed: true,
                            replaying,
                        },
                    ..
                } => {
                    resumes += 1;
                    line()
                        .kv("event", "resumed")
                        .kv("replaying", replaying)
                        .print();
                }
                Event::Session {
                    note: SessionNote::Ended(how),
                    ..
                } => {
                    return Err(format!(
                        "the client's session ended: how={} undelivered={}",
                        crate::line::end_parts(how).0,
                        crate::line::end_parts(how).1
                    ))
                }
                _ => {}
            }
        }
    }
    node.close_session(id);
    // What the server delivered, in order (every reply came, so every message
    // was delivered before).
    let mut got = Vec::new();
    let mut cuts = 0;
    let mut server_resumes = 0;
    for r in server.drain() {
        match r.kind {
            "session_message" => got.push(r.id.unwrap_or_default()),
            "cut" if r.at < SESSION_MESSAGES => cuts += 1,
            "cut" => return Err(format!("a cut came after the stream, at {}", r.at)),
            "session" => {
                if let Some(SessionNote::Established { resumed: true, .. }) = r.note {
                    server_resumes += 1;
                }
            }
            _ => {}
        }
    }
    let mut unique = got.clone();
    unique.sort();
    unique.dedup();
    let duplicates = got.len() - unique.len();
    line()
        .kv("event", "done")
        .kv("sent", next)
        .kv("delivered", got.len())
        .kv("duplicates", duplicates)
        .kv("cuts", cuts)
        .kv("resumes", resumes)
        .print();
    log::debug!("sessions scenario took {:?}", started.elapsed());
    if got != ids {
        return Err(format!(
            "server delivered {} messages, not each of {SESSION_MESSAGES} once in order",
            got.len()
        ));
    }
    if replies != ids {
        return Err("the client's replies are not one per message, in order".into());
    }
    if cuts != CUTS.len() || resumes != CUTS.len() || server_resumes != CUTS.len() {
        return Err(format!(
            "{cuts} cuts, {resumes} client resumes, {server_resumes} server resumes \
             (want {} each)",
            CUTS.len()
        ));
    }
    Ok(())
}

/// Messages the `sessions` scenario streams.
const SESSION_MESSAGES: usize = 200;

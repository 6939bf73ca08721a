//! The session layer: one session fed hostile greetings and sequence numbers,
//! and a client/server pair over a lossy link that must lose nothing silently.

use std::collections::VecDeque;

use super::Input;
use crate::session::{
    Backoff, Overflow, Received, Sent, Session, SessionConfig, SessionEnd, SessionError,
    SessionEvent, Transmit,
};
use crate::time::Instant;
use crate::wire::{self, Msg, TOKEN_LEN};

fn config(input: &mut Input<'_>) -> SessionConfig {
    let max_depth = 1 + usize::from(input.u8() % 16);
    SessionConfig {
        max_depth,
        max_depth_disconnected: max_depth + usize::from(input.u8() % 16),
        max_bytes: usize::from(input.u16() % 4096),
        reconnect_timeout: input.millis(),
        ack_every: 1 + u32::from(input.u8() % 8),
        ack_delay: input.millis(),
        overflow: if input.bool() {
            Overflow::CloseSession
        } else {
            Overflow::Backpressure
        },
        reserve_reply: input.bool(),
    }
}

/// The session layer. The first byte picks the mode: one session driven by
/// arbitrary greetings, DATA, SKIP and ACK with sequence numbers near its own
/// and at the extremes (no panic, bounded queue, an ended session refuses
/// everything), or a client/server pair whose link is cut at random (every
/// message arrives exactly once and in order, or an end reports at least the
/// messages that did not arrive).
pub fn session(data: &[u8]) {
    let mut input = Input::new(data);
    if input.bool() {
        pair(&mut input);
    } else {
        single(&mut input);
    }
}

fn single(input: &mut Input<'_>) {
    let cfg = config(input);
    let mut now = Instant::from_millis(u64::from(input.u32()));
    let client = input.bool();
    let mut s = if client {
        Session::client(cfg, now)
    } else {
        Session::server(cfg, 1 + u64::from(input.u8()), [7; TOKEN_LEN], now)
    };
    // Highest sequence number sent to the peer, to aim ACKs and greetings at.
    let mut last_sent = 0u64;
    for _ in 0..512 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 12 {
            0 => {
                let payload = input.short_bytes();
                let r = if input.bool() {
                    s.send_keyed(payload, u64::from(input.u8() % 4))
                } else {
                    s.send(payload)
                };
                if let Ok(seq) = r {
                    last_sent = seq;
                }
            }
            1 => {
                let g = input.greeting(s.id(), last_sent);
                s.handle_greeting(now, g);
            }
            2 | 3 => {
                let before = s.delivered();
                let seq = input.seq(before.wrapping_add(1));
                let r = match input.u8() % 3 {
                    0 => s.handle_skip(now, seq),
                    1 => s.handle_data(now, seq),
                    _ => s.handle_data_sized(now, seq, usize::from(input.u16())),
                };
                match r {
                    Received::Deliver | Received::Skipped => {
                        assert_eq!(Some(seq), before.checked_add(1));
                        assert_eq!(s.delivered(), seq);
                    }
                    Received::Refused => {
                        assert_eq!(Some(seq), before.checked_add(1));
                        assert_eq!(s.delivered(), before, "a refused message is not taken");
                    }
                    Received::Duplicate => assert!(seq <= before),
                    Received::Lost => assert!(s.ended().is_some()),
                }
            }
            4 => s.handle_ack(input.seq(last_sent)),
            5 => {
                for _ in 0..8 {
                    let Some(t) = s.poll_transmit() else { break };
                    let sent = t.sent();
                    s.handle_transmitted(sent);
                }
            }
            6 => s.handle_link_lost(now),
            7 => {
                now = now + input.millis();
                s.handle_timeout(now);
            }
            8 => s.flush_ack(),
            9 => {
                s.restart(1 + u64::from(input.u8()), [3; TOKEN_LEN], input.bool(), now);
                last_sent = 0;
            }
            10 => {
                let b = Backoff {
                    min: core::time::Duration::from_millis(input.u64()),
                    max: core::time::Duration::from_millis(input.u64()),
                    max_attempts: input.bool().then(|| u32::from(input.u8())),
                };
                let (attempt, random) = (input.u32(), input.u64());
                if let Some(d) = b.delay(attempt, random) {
                    assert!(d <= b.max.max(b.min));
                }
            }
            _ => s.end(SessionEnd::Closed),
        }
        assert!(s.unacked() as usize <= cfg.max_depth_disconnected.max(cfg.max_depth));
        while s.poll_event().is_some() {}
        if s.ended().is_some() {
            assert_eq!(s.send(b"x"), Err(SessionError::Ended));
            assert!(s.poll_transmit().is_none() && s.poll_timeout().is_none());
        }
    }
}

/// One side of the pair, with what it sent and what it delivered.
struct Side {
    s: Session,
    sent: Vec<Vec<u8>>,
    delivered: Vec<Vec<u8>>,
    /// Frames on their way to the other side.
    in_flight: VecDeque<Vec<u8>>,
    end: Option<SessionEnd>,
}

impl Side {
    fn new(s: Session) -> Self {
        Side {
            s,
            sent: Vec::new(),
            delivered: Vec::new(),
            in_flight: VecDeque::new(),
            end: None,
        }
    }

    fn send(&mut self, payload: &[u8]) {
        if let Ok(seq) = self.s.send(payload) {
            self.sent.push(payload.to_vec());
            assert_eq!(
                seq,
                self.sent.len() as u64,
                "sequence numbers are 1, 2, 3, ..."
            );
        }
    }

    /// Queues up to `n` frames for the peer, encoded as on the wire.
    fn transmit(&mut self, n: usize) {
        for _ in 0..n {
            let Some(t) = self.s.poll_transmit() else {
                break;
            };
            let msg = match t {
                Transmit::Ack(seq) => Msg::Ack(seq),
                Transmit::Skip(seq) => Msg::Skip(seq),
                Transmit::Data { seq, payload } => Msg::Data { seq, payload },
            };
            let mut frame = vec![0u8; wire::DATA_HEADER + 256];
            let len = wire::encode(&msg, &mut frame).expect("fits");
            frame.truncate(len);
            let sent: Sent = t.sent();
            self.s.handle_transmitted(sent);
            self.in_flight.push_back(frame);
        }
    }

    fn events(&mut self) {
        while let Some(e) = self.s.poll_event() {
            if let SessionEvent::Ended(how) = e {
                self.end = Some(how);
            }
        }
    }
}

/// Delivers one in-flight frame from `from` to `to`. False when `to` refused
/// a DATA (no room for its reply): the driver then cuts the link.
#[must_use]
fn deliver_one(from: &mut Side, to: &mut Side, now: Instant) -> bool {
    let Some(frame) = from.in_flight.pop_front() else {
        return true;
    };
    match wire::decode(&frame).expect("frames we encoded decode") {
        Msg::Data { seq, payload } => match to.s.handle_data_sized(now, seq, payload.len()) {
            Received::Deliver => to.delivered.push(payload.to_vec()),
            Received::Refused => return false,
            _ => {}
        },
        Msg::Skip(seq) => {
            let _ = to.s.handle_skip(now, seq);
        }
        Msg::Ack(seq) => to.s.handle_ack(seq),
        m => panic!("a session sends only DATA, SKIP and ACK, not {m:?}"),
    }
    true
}

/// A new link: HELLO from the client, WELCOME back, as the node does it.
fn reconnect(c: &mut Side, s: &mut Side, now: Instant) {
    let hello = c.s.greeting();
    s.s.handle_greeting(now, hello);
    let mut welcome = s.s.greeting();
    if s.end.is_some() {
        // The server no longer has the session: the node answers with a new one.
        welcome.session += 1;
        welcome.last_received = 0;
    }
    c.s.handle_greeting(now, welcome);
}

/// `refuser` refused a DATA of `other`: the driver holds the link a moment
/// ([`crate::session::REFUSAL_HOLD`]) so that what `refuser` already wrote
/// reaches `other`, then cuts it.
fn refused(refuser: &mut Side, other: &mut Side, c_first: bool, now: Instant) {
    while !refuser.in_flight.is_empty() {
        if !deliver_one(refuser, other, now) {
            break;
        }
    }
    let (c, s) = if c_first {
        (refuser, other)
    } else {
        (other, refuser)
    };
    cut(c, s, now);
}

fn cut(c: &mut Side, s: &mut Side, now: Instant) {
    c.in_flight.clear();
    s.in_flight.clear();
    c.s.handle_link_lost(now);
    s.s.handle_link_lost(now);
}

/// Nothing lost silently: what `from` sent and `to` did not deliver is either
/// still on its way (both sessions live) or counted in `from`'s end.
fn check_loss(from: &Side, to: &Side) {
    assert!(to.delivered.len() <= from.sent.len());
    assert_eq!(
        &from.sent[..to.delivered.len()],
        &to.delivered[..],
        "order or content"
    );
    let missing = (from.sent.len() - to.delivered.len()) as u64;
    match from.end {
        Some(SessionEnd::Lost { undelivered })
        | Some(SessionEnd::Expired { undelivered })
        | Some(SessionEnd::QueueFull { undelivered })
        | Some(SessionEnd::Evicted { undelivered }) => {
            assert!(
                undelivered >= missing,
                "{missing} missing, {undelivered} reported"
            );
        }
        Some(SessionEnd::Closed) | None => {}
    }
}

fn pair(input: &mut Input<'_>) {
    let cfg = config(input);
    let mut now = Instant::from_millis(u64::from(input.u16()));
    // `reserve_reply` is for the answering side (`listen --session`): with it on
    // both ends, two full queues refuse each other's DATA for ever.
    let client_cfg = SessionConfig {
        reserve_reply: false,
        ..cfg
    };
    let mut c = Side::new(Session::client(client_cfg, now));
    let mut s = Side::new(Session::server(cfg, 42, [5; TOKEN_LEN], now));
    reconnect(&mut c, &mut s, now);
    let mut connected = true;
    let mut counter = 0u32;
    for _ in 0..512 {
        if input.is_empty() {
            break;
        }
        let from_client = input.bool();
        let (a, b) = if from_client {
            (&mut c, &mut s)
        } else {
            (&mut s, &mut c)
        };
        match input.u8() % 8 {
            0 | 1 => {
                counter += 1;
                let len = usize::from(input.u8() % 64);
                let mut payload = counter.to_be_bytes().to_vec();
                payload.resize(4 + len, b'x');
                a.send(&payload);
            }
            2 if connected => a.transmit(1 + usize::from(input.u8() % 4)),
            3 if connected => {
                if !deliver_one(a, b, now) {
                    refused(b, a, !from_client, now);
                    connected = false;
                }
            }
            4 if connected => {
                cut(&mut c, &mut s, now);
                connected = false;
            }
            5 if !connected => {
                reconnect(&mut c, &mut s, now);
                connected = true;
            }
            6 => {
                now = now + input.millis();
                c.s.handle_timeout(now);
                s.s.handle_timeout(now);
            }
            _ => a.s.flush_ack(),
        }
        c.events();
        s.events();
        check_loss(&c, &s);
        check_loss(&s, &c);
    }
    // Settle: a last link that carries everything (if both sessions live).
    if c.end.is_some() || s.end.is_some() {
        return;
    }
    if !connected {
        cut(&mut c, &mut s, now);
        reconnect(&mut c, &mut s, now);
    }
    for _ in 0..4 * (c.sent.len() + s.sent.len() + 4) {
        c.s.flush_ack();
        s.s.flush_ack();
        c.transmit(1);
        s.transmit(1);
        if !deliver_one(&mut c, &mut s, now) {
            refused(&mut s, &mut c, false, now);
            reconnect(&mut c, &mut s, now);
        } else if !deliver_one(&mut s, &mut c, now) {
            refused(&mut c, &mut s, true, now);
            reconnect(&mut c, &mut s, now);
        }
    }
    c.events();
    s.events();
    if c.end.is_none() && s.end.is_none() {
        assert_eq!(
            s.delivered, c.sent,
            "client to server: everything, once, in order"
        );
        assert_eq!(
            c.delivered, s.sent,
            "server to client: everything, once, in order"
        );
        assert_eq!((c.s.unacked(), s.s.unacked()), (0, 0), "all acknowledged");
    } else {
        check_loss(&c, &s);
        check_loss(&s, &c);
    }
}

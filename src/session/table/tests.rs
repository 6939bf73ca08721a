//! The table on virtual time, with seeded entropy: its decisions, without a
//! node.

use core::time::Duration;
use std::net::SocketAddr;

use super::*;
use crate::rng::XorShift64;
use crate::session::REFUSAL_HOLD;
use crate::wire::Greeting;

struct Seeded(XorShift64);

impl Entropy for Seeded {
    fn token(&mut self) -> [u8; TOKEN_LEN] {
        [self.0.next_u64() as u8; TOKEN_LEN]
    }
    fn jitter(&mut self) -> u64 {
        self.0.next_u64()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn cfg() -> SessionConfig {
    SessionConfig {
        max_depth: 4,
        max_depth_disconnected: 6,
        max_bytes: 64,
        ..Default::default()
    }
}

fn from(last: u8) -> SocketAddr {
    SocketAddr::from(([127, 0, 0, last], 1000))
}

type Table = SessionTable<u32, &'static str>;

/// A server table with session `idx` on link 1 for a new client.
fn server_with_one(slots: usize, e: &mut Seeded) -> (Table, u32) {
    let mut s = Table::new(slots, 16).unwrap();
    let hello = Greeting::new_session();
    let idx = s
        .handle_hello(1, from(1), cfg(), None, hello, t(0), e)
        .unwrap();
    assert_eq!(s.link(idx), Some(1));
    (s, idx)
}

#[test]
fn a_client_redials_by_its_backoff_until_its_attempts_run_out() {
    let mut e = Seeded(XorShift64::new(7));
    let mut c = Table::new(1, 16).unwrap();
    let backoff = Backoff {
        min: Duration::from_millis(100),
        max: Duration::from_millis(100),
        max_attempts: Some(2),
    };
    let idx = c.open(cfg(), "server", backoff, t(0)).unwrap().unwrap();
    assert_eq!(c.dial_target(idx), Some(&"server"));
    c.handle_dial_failed(idx, t(0), &mut e);
    let Some((_, SessionNote::Reconnecting { attempt: 1, delay })) = c.next_note() else {
        panic!("a Reconnecting note");
    };
    assert!(delay <= Duration::from_millis(100));
    assert_eq!(c.poll_timeout(idx), Some(t(0) + delay));
    assert!(c.handle_timeout(idx, t(0) + delay, &mut e), "dial now");
    c.handle_dialed(idx, 5);
    c.handle_link_lost(idx, CloseReason::Reset, t(200), &mut e);
    assert!(matches!(
        c.next_note(),
        Some((_, SessionNote::Reconnecting { attempt: 2, .. }))
    ));
    // Attempts exhausted: the session ends Lost, by name.
    c.handle_dial_failed(idx, t(400), &mut e);
    assert_eq!(
        c.next_note().map(|n| n.1),
        Some(SessionNote::Ended(SessionEnd::Lost { undelivered: 0 }))
    );
}

#[test]
fn a_resume_needs_the_token_and_a_known_session() {
    let mut e = Seeded(XorShift64::new(1));
    let (mut s, idx) = server_with_one(2, &mut e);
    s.handle_link_lost(idx, CloseReason::Reset, t(1), &mut e);
    let mut hello = s.greeting(idx);
    hello.last_received = 0;
    hello.token[0] ^= 1;
    assert_eq!(
        s.handle_hello(2, from(1), cfg(), None, hello, t(2), &mut e),
        None
    );
    assert_eq!(s.poll_close(), Some((2, CloseReason::BadToken)));
    assert_eq!(s.stats().bad_tokens, 1);
    hello.token[0] ^= 1;
    hello.session += 1;
    assert_eq!(
        s.handle_hello(3, from(1), cfg(), None, hello, t(3), &mut e),
        None
    );
    assert_eq!(s.poll_close(), Some((3, CloseReason::SessionExpired)));
    hello.session -= 1;
    assert_eq!(
        s.handle_hello(4, from(1), cfg(), None, hello, t(4), &mut e),
        Some(idx)
    );
    assert_eq!(s.link(idx), Some(4));
}

#[test]
fn a_session_bound_to_an_identity_is_resumed_only_by_that_identity() {
    let mut e = Seeded(XorShift64::new(3));
    let mut s = Table::new(2, 16).unwrap();
    let (x, y) = (Some([7u8; 32]), Some([8u8; 32]));
    let idx = s
        .handle_authenticated_hello(
            1,
            from(1),
            x,
            cfg(),
            None,
            Greeting::new_session(),
            t(0),
            &mut e,
        )
        .unwrap();
    s.handle_link_lost(idx, CloseReason::Reset, t(1), &mut e);
    let mut hello = s.greeting(idx);
    hello.last_received = 0;
    // The right token from another identity, or from none: refused, by name.
    for (link, other) in [(2, y), (3, None)] {
        assert_eq!(
            s.handle_authenticated_hello(link, from(1), other, cfg(), None, hello, t(2), &mut e),
            None
        );
        assert_eq!(s.poll_close(), Some((link, CloseReason::BadToken)));
    }
    assert_eq!(s.stats().bad_tokens, 2);
    // The same identity resumes it.
    assert_eq!(
        s.handle_authenticated_hello(4, from(2), x, cfg(), None, hello, t(3), &mut e),
        Some(idx)
    );
    assert_eq!(s.link(idx), Some(4));
}

#[test]
fn a_full_table_evicts_the_session_waiting_longest() {
    let mut e = Seeded(XorShift64::new(2));
    let (mut s, first) = server_with_one(1, &mut e);
    s.send(s.id(first), b"undelivered", None).unwrap();
    s.handle_link_lost(first, CloseReason::Reset, t(1), &mut e);
    let new = Greeting::new_session();
    let idx = s
        .handle_hello(2, from(2), cfg(), None, new, t(2), &mut e)
        .unwrap();
    assert_eq!(idx, first, "its slot");
    assert_eq!(s.stats().evicted, 1);
    let ended = core::iter::from_fn(|| s.next_note()).find_map(|(_, n)| match n {
        SessionNote::Ended(how) => Some(how),
        _ => None,
    });
    assert_eq!(ended, Some(SessionEnd::Evicted { undelivered: 1 }));
    // Connected sessions are never evicted: the next is refused by name.
    assert_eq!(
        s.handle_hello(3, from(3), cfg(), None, new, t(3), &mut e),
        None
    );
    assert_eq!(s.poll_close(), Some((3, CloseReason::TooManyConnections)));
}

#[test]
fn a_resume_on_a_new_link_closes_the_old_one() {
    let mut e = Seeded(XorShift64::new(3));
    let (mut s, idx) = server_with_one(1, &mut e);
    let hello = s.greeting(idx);
    let mut resume = hello;
    resume.last_received = 0;
    assert_eq!(
        s.handle_hello(2, from(1), cfg(), None, resume, t(1), &mut e),
        Some(idx)
    );
    assert_eq!(s.poll_close(), Some((1, CloseReason::StaleReplaced)));
}

#[test]
fn a_refusal_held_too_long_closes_the_link_and_the_server_waits() {
    let mut e = Seeded(XorShift64::new(4));
    let mut s = Table::new(1, 16).unwrap();
    let rr = SessionConfig {
        reserve_reply: true,
        ..cfg()
    };
    let hello = Greeting::new_session();
    let idx = s
        .handle_hello(1, from(1), rr, None, hello, t(0), &mut e)
        .unwrap();
    for seq in 1..=6 {
        assert_eq!(s.handle_data(idx, t(1), Some(seq), 1), Received::Deliver);
        s.send(s.id(idx), b"r", None).unwrap();
    }
    assert_eq!(s.handle_data(idx, t(2), Some(7), 1), Received::Refused);
    assert!(s.is_refusing(idx));
    assert!(!s.handle_timeout(idx, t(2) + REFUSAL_HOLD, &mut e));
    assert_eq!(s.poll_close(), Some((1, CloseReason::SessionQueueFull)));
    assert_eq!(s.stats().queue_full, 1);
    assert_eq!(s.link(idx), None, "waiting for the resume");
    assert!(s.session(idx).is_some_and(|x| x.ended().is_none()));
}

#[test]
fn control_frames_are_encoded_by_the_core() {
    let mut scratch = [0u8; crate::wire::MAX_CONTROL];
    for tx in [
        Transmit::Ack(7),
        Transmit::Skip(u64::MAX),
        Transmit::Data {
            seq: 3,
            payload: b"p",
        },
    ] {
        let (head, payload) = tx.encode(&mut scratch);
        let mut frame = head.to_vec();
        frame.extend_from_slice(payload);
        let back = match crate::wire::decode(&frame).unwrap() {
            crate::wire::Msg::Ack(s) => Transmit::Ack(s),
            crate::wire::Msg::Skip(s) => Transmit::Skip(s),
            crate::wire::Msg::Data { seq, payload } => Transmit::Data { seq, payload },
            m => panic!("{m:?}"),
        };
        assert_eq!(back, tx);
    }
}

#[test]
fn the_stats_count_sessions_started_resumed_ended_and_live() {
    let mut e = Seeded(XorShift64::new(4));
    let (mut s, idx) = server_with_one(2, &mut e);
    let st = s.stats();
    assert_eq!((st.started, st.resumed, st.live), (1, 0, 1));
    s.handle_link_lost(idx, CloseReason::Reset, t(1), &mut e);
    let mut resume = s.greeting(idx);
    resume.last_received = 0;
    assert_eq!(
        s.handle_hello(2, from(1), cfg(), None, resume, t(2), &mut e),
        Some(idx)
    );
    let st = s.stats();
    assert_eq!((st.started, st.resumed, st.live), (1, 1, 1));
    s.end(idx, SessionEnd::Closed);
    let st = s.stats();
    assert_eq!(st.ended.closed, 1);
    assert_eq!(st.ended.by_name().iter().map(|(_, n)| n).sum::<u64>(), 1);
    assert_eq!(st.live, 0, "ended, though its slot waits for the note");
}

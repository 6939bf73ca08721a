//! Tests of the pure session: virtual time, two sessions joined by hand.

use core::time::Duration;

use super::*;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn cfg() -> SessionConfig {
    SessionConfig {
        max_depth: 4,
        max_depth_disconnected: 6,
        max_bytes: 64,
        ack_every: 2,
        ..Default::default()
    }
}

fn connected_pair() -> (Session, Session) {
    let mut s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
    let mut c = Session::client(cfg(), t(0));
    s.handle_greeting(t(0), c.greeting());
    c.handle_greeting(t(0), s.greeting());
    assert_eq!(c.id(), 7);
    (c, s)
}

/// Moves everything `a` wants to send into `b`; returns delivered sequences.
fn flow(a: &mut Session, b: &mut Session, now: Instant) -> Vec<u64> {
    let mut got = Vec::new();
    while let Some(sent) = a.poll_transmit().map(|tx| tx.sent()) {
        match sent {
            Sent::Ack(seq) => b.handle_ack(seq),
            Sent::Data(seq) => {
                if b.handle_data(now, seq) == Received::Deliver {
                    got.push(seq);
                }
            }
            Sent::Skip(seq) => {
                let _ = b.handle_skip(now, seq);
            }
        }
        a.handle_transmitted(sent);
    }
    got
}

#[test]
fn messages_flow_in_order_and_acks_free_the_replay_queue() {
    let (mut c, mut s) = connected_pair();
    for m in [b"a", b"b", b"c"] {
        c.send(m).unwrap();
    }
    assert_eq!(flow(&mut c, &mut s, t(1)), vec![1, 2, 3]);
    assert_eq!(c.unacked(), 3);
    flow(&mut s, &mut c, t(1)); // ack_every = 2 reached: one ACK covers all 3
    assert_eq!(c.unacked(), 0);
}

#[test]
fn a_lone_message_is_acknowledged_after_the_ack_delay() {
    let (mut c, mut s) = connected_pair();
    c.send(b"a").unwrap();
    assert_eq!(flow(&mut c, &mut s, t(1)), vec![1]);
    assert_eq!(s.poll_transmit(), None, "batched: not yet");
    assert_eq!(s.poll_timeout(), Some(t(21)));
    s.handle_timeout(t(21));
    flow(&mut s, &mut c, t(21));
    assert_eq!(c.unacked(), 0);
}

#[test]
fn resume_replays_only_what_the_peer_missed_and_never_twice() {
    let (mut c, mut s) = connected_pair();
    for m in [b"1", b"2", b"3", b"4"] {
        c.send(m).unwrap();
    }
    // Only 1 and 2 made it before the link died.
    for _ in 0..2 {
        let sent = c.poll_transmit().map(|tx| tx.sent());
        let Some(Sent::Data(seq)) = sent else {
            panic!("expected DATA, got {sent:?}");
        };
        assert_eq!(s.handle_data(t(1), seq), Received::Deliver);
        c.handle_transmitted(Sent::Data(seq));
    }
    c.handle_transmitted(Sent::Data(3)); // written, but lost in flight
    c.handle_link_lost(t(2));
    s.handle_link_lost(t(2));
    c.send(b"5").unwrap();
    // Resume: each side learns what the other has.
    s.handle_greeting(t(3), c.greeting());
    c.handle_greeting(t(3), s.greeting());
    assert_eq!(
        c.poll_event(),
        Some(SessionEvent::Established {
            resumed: false,
            replaying: 0
        })
    );
    assert_eq!(
        c.poll_event(),
        Some(SessionEvent::Established {
            resumed: true,
            replaying: 3
        })
    );
    assert_eq!(flow(&mut c, &mut s, t(4)), vec![3, 4, 5]);
    assert_eq!(c.unacked(), 3, "1 and 2 were acknowledged by the resume");
}

#[test]
fn a_replayed_message_the_peer_already_had_is_dropped() {
    let (mut c, mut s) = connected_pair();
    c.send(b"x").unwrap();
    assert_eq!(flow(&mut c, &mut s, t(1)), vec![1]);
    assert_eq!(s.handle_data(t(2), 1), Received::Duplicate);
    assert_eq!(s.duplicates(), 1);
}

#[test]
fn a_gap_ends_the_session_as_lost() {
    let (_, mut s) = connected_pair();
    assert_eq!(s.handle_data(t(1), 2), Received::Lost);
    assert_eq!(
        s.poll_event().and_then(|_| s.poll_event()),
        Some(SessionEvent::Ended(SessionEnd::Lost { undelivered: 0 }))
    );
}

#[test]
fn a_peer_that_forgot_acknowledged_messages_ends_the_session_with_the_count() {
    let (mut c, mut s) = connected_pair();
    for m in [b"1", b"2", b"3"] {
        c.send(m).unwrap();
    }
    for seq in 1..=2 {
        c.handle_transmitted(Sent::Data(seq));
        assert_eq!(s.handle_data(t(1), seq), Received::Deliver);
    }
    assert_eq!(s.poll_transmit(), Some(Transmit::Ack(2)));
    c.handle_ack(2);
    c.handle_transmitted(Sent::Data(3)); // written; its ACK never comes
    c.handle_link_lost(t(2));
    let mut forgetful = s.greeting();
    forgetful.last_received = 0; // a restarted peer
    c.handle_greeting(t(3), forgetful);
    assert_eq!(
        c.ended(),
        Some(SessionEnd::Lost { undelivered: 1 }),
        "message 3 is in doubt"
    );
}

#[test]
fn server_expires_a_session_whose_client_stays_away() {
    let (mut c, mut s) = connected_pair();
    s.send(b"to client").unwrap();
    s.handle_link_lost(t(10));
    c.handle_link_lost(t(10));
    s.handle_timeout(t(10 + 59_999));
    assert_eq!(s.ended(), None);
    s.handle_timeout(t(10 + 60_000));
    assert_eq!(s.ended(), Some(SessionEnd::Expired { undelivered: 1 }));
    // The client, greeted by a new session, learns its own is gone.
    let fresh = Session::server(cfg(), 8, [1; TOKEN_LEN], t(60_011));
    c.handle_greeting(t(60_011), fresh.greeting());
    assert_eq!(c.ended(), Some(SessionEnd::Expired { undelivered: 0 }));
}

#[test]
fn full_queue_is_backpressure_and_a_larger_bound_applies_while_disconnected() {
    let (mut c, _) = connected_pair();
    for _ in 0..4 {
        c.send(b"m").unwrap();
    }
    assert_eq!(c.send(b"m"), Err(SessionError::QueueFull));
    c.handle_link_lost(t(1));
    c.send(b"m").unwrap();
    c.send(b"m").unwrap();
    assert_eq!(c.send(b"m"), Err(SessionError::QueueFull));
    assert_eq!(c.unacked(), 6);
}

#[test]
fn byte_bound_applies_and_the_ring_wraps() {
    let (mut c, mut s) = connected_pair();
    let big = [7u8; 30];
    c.send(&big).unwrap();
    c.send(&big).unwrap();
    assert_eq!(c.send(&big), Err(SessionError::QueueFull), "64-byte ring");
    flow(&mut c, &mut s, t(1));
    flow(&mut s, &mut c, t(1)); // ACK 2 frees both
    c.send(&big).unwrap();
    c.send(&big).unwrap();
    assert_eq!(c.send(&[0u8; 65]), Err(SessionError::TooLarge));
}

#[test]
fn overflow_can_close_the_session_instead() {
    let mut c = Session::client(
        SessionConfig {
            overflow: Overflow::CloseSession,
            ..cfg()
        },
        t(0),
    );
    for _ in 0..6 {
        c.send(b"m").unwrap();
    }
    assert_eq!(c.send(b"m"), Err(SessionError::QueueFull));
    assert_eq!(c.ended(), Some(SessionEnd::QueueFull { undelivered: 6 }));
}

#[test]
fn a_keyed_message_supersedes_the_unwritten_one_with_its_key() {
    let (mut c, mut s) = connected_pair();
    c.send_keyed(b"temp=20", 1).unwrap();
    assert_eq!(
        flow(&mut c, &mut s, t(1)),
        vec![1],
        "written: not conflated any more"
    );
    c.handle_link_lost(t(2));
    s.handle_link_lost(t(2));
    c.send_keyed(b"temp=21", 1).unwrap(); // seq 2
    c.send(b"alarm").unwrap(); // seq 3
    c.send_keyed(b"temp=22", 1).unwrap(); // seq 4 supersedes 2
    assert_eq!(c.superseded(), 1);
    s.handle_greeting(t(3), c.greeting());
    c.handle_greeting(t(3), s.greeting());
    let mut delivered = Vec::new();
    while let Some(tx) = c.poll_transmit() {
        let sent = tx.sent();
        match tx {
            Transmit::Skip(seq) => assert_eq!(s.handle_skip(t(4), seq), Received::Skipped),
            Transmit::Data { seq, payload } => {
                assert_eq!(s.handle_data(t(4), seq), Received::Deliver);
                delivered.push(payload.to_vec());
            }
            Transmit::Ack(_) => {}
        }
        c.handle_transmitted(sent);
    }
    assert_eq!(delivered, vec![b"alarm".to_vec(), b"temp=22".to_vec()]);
    assert_eq!(
        s.delivered(),
        4,
        "sequence stays contiguous: no gap, no loss"
    );
    assert!(s.ended().is_none());
}

/// Greetings from a hostile peer: `last_received` at the extremes of u64.
#[test]
fn a_greeting_claiming_impossible_receipts_ends_the_session_by_name() {
    for claim in [u64::MAX, u64::MAX - 1, 1 << 63, 5] {
        // Server: a HELLO for a new session that claims DATA never sent.
        let mut s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
        let hello = Greeting {
            last_received: claim,
            ..Greeting::new_session()
        };
        s.handle_greeting(t(0), hello);
        assert_eq!(s.ended(), Some(SessionEnd::Lost { undelivered: 0 }));
        // Client: the same in a WELCOME, with messages queued.
        let mut c = Session::client(cfg(), t(0));
        c.send(b"queued").unwrap();
        let mut welcome = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0)).greeting();
        welcome.last_received = claim;
        c.handle_greeting(t(0), welcome);
        assert_eq!(c.ended(), Some(SessionEnd::Lost { undelivered: 1 }));
    }
    // And a resume that forgets everything (0) after acknowledged messages.
    let (mut c, mut s) = connected_pair();
    c.send(b"a").unwrap();
    flow(&mut c, &mut s, t(1));
    s.handle_timeout(t(100));
    flow(&mut s, &mut c, t(100));
    c.send(b"b").unwrap();
    c.handle_link_lost(t(101));
    let mut forgot = s.greeting();
    forgot.last_received = 0;
    c.handle_greeting(t(102), forgot);
    assert_eq!(c.ended(), Some(SessionEnd::Lost { undelivered: 1 }));
}

/// DATA, SKIP and ACK with sequence numbers at the extremes of u64, or far
/// ahead/behind: a named outcome each, never a panic (tests run with
/// overflow checks).
#[test]
fn extreme_sequence_numbers_are_named_outcomes() {
    for seq in [u64::MAX, u64::MAX - 1, 1 << 63, 3] {
        let (_, mut s) = connected_pair();
        assert_eq!(s.handle_data(t(1), seq), Received::Lost, "DATA {seq}");
        assert_eq!(s.ended(), Some(SessionEnd::Lost { undelivered: 0 }));
        let (_, mut s) = connected_pair();
        assert_eq!(s.handle_skip(t(1), seq), Received::Lost, "SKIP {seq}");
        let (mut c, _) = connected_pair();
        c.send(b"m").unwrap();
        c.handle_ack(seq);
        assert_eq!(
            c.ended(),
            Some(SessionEnd::Lost { undelivered: 1 }),
            "ACK {seq} of nothing written"
        );
    }
    // Zero and "behind": duplicates and no-ops, counted, the session lives.
    let (mut c, mut s) = connected_pair();
    assert_eq!(s.handle_data(t(1), 0), Received::Duplicate);
    assert_eq!(s.handle_data(t(1), 1), Received::Deliver);
    assert_eq!(s.handle_data(t(1), 1), Received::Duplicate);
    assert_eq!(s.handle_skip(t(1), 0), Received::Duplicate);
    c.handle_ack(0);
    assert_eq!((c.ended(), s.ended()), (None, None));
    assert_eq!(s.duplicates(), 3);
}

#[test]
fn with_reserve_reply_a_message_waits_for_room_for_its_reply() {
    let rr = SessionConfig {
        reserve_reply: true,
        ..cfg()
    };
    let mut s = Session::server(rr, 7, [9; TOKEN_LEN], t(0));
    let mut c = Session::client(cfg(), t(0));
    s.handle_greeting(t(0), c.greeting());
    c.handle_greeting(t(0), s.greeting());
    // Six replies fill the queue (max_depth_disconnected, connected too):
    // the seventh request waits.
    for seq in 1..=6 {
        assert_eq!(s.handle_data_sized(t(1), seq, 1), Received::Deliver);
        s.send(b"r").unwrap();
    }
    assert_eq!(s.handle_data_sized(t(2), 7, 1), Received::Refused);
    assert!(s.is_refusing());
    assert_eq!(s.delivered(), 6, "not taken");
    s.handle_timeout(t(21)); // the ACK of the six goes out
    s.handle_transmitted(Sent::Ack(6));
    assert_eq!(
        s.poll_timeout(),
        Some(t(2) + REFUSAL_HOLD),
        "the hold's end"
    );
    assert!(!s.refusal_expired(t(2) + (REFUSAL_HOLD - Duration::from_millis(1))));
    assert!(s.refusal_expired(t(2) + REFUSAL_HOLD));
    // The driver cut the link; the resume acknowledges the replies it got.
    s.handle_link_lost(t(3));
    assert!(!s.is_refusing());
    let mut hello = c.greeting();
    hello.last_received = 6;
    s.handle_greeting(t(4), hello);
    assert_eq!(s.handle_data_sized(t(4), 7, 1), Received::Deliver);
    // Bytes count too: a message larger than the room left waits.
    s.send(b"r").unwrap(); // seq 7, one byte of the 64-byte ring
    assert_eq!(s.handle_data_sized(t(5), 8, 64), Received::Refused);
    // But with nothing to acknowledge, waiting cannot help: taken.
    s.handle_transmitted(Sent::Data(7));
    s.handle_ack(7);
    assert_eq!(s.unacked(), 0);
    assert_eq!(s.handle_data_sized(t(6), 8, 65), Received::Deliver);
    // Without reserve_reply nothing is refused.
    let (_, mut plain) = connected_pair();
    for _ in 0..4 {
        plain.send(b"r").unwrap();
    }
    assert_eq!(plain.handle_data_sized(t(1), 1, 1), Received::Deliver);
}

#[test]
fn data_goes_out_behind_an_ack_of_everything_delivered() {
    let (mut c, mut s) = connected_pair();
    s.send(b"reply").unwrap();
    flow(&mut s, &mut c, t(1));
    assert_eq!(c.poll_transmit(), None, "batched: no ACK due yet");
    c.send(b"next").unwrap();
    assert_eq!(c.poll_transmit(), Some(Transmit::Ack(1)), "ACK first");
    c.handle_transmitted(Sent::Ack(1));
    assert!(matches!(
        c.poll_transmit(),
        Some(Transmit::Data { seq: 1, .. })
    ));
}

#[test]
fn tokens_are_compared_exactly() {
    let s = Session::server(cfg(), 7, [9; TOKEN_LEN], t(0));
    assert!(s.token_matches(&[9; TOKEN_LEN]));
    let mut bad = [9; TOKEN_LEN];
    bad[15] = 8;
    assert!(!s.token_matches(&bad));
}

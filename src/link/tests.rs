use super::*;
use crate::frame::FrameError;
use crate::frame_deadline::FrameTimeout;

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn cfg() -> LinkConfig {
    LinkConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        write_timeout: Duration::from_millis(50),
        connect_timeout: Duration::from_millis(30),
        close_after_reply: false,
        mllp_commit_ack: false,
        liveness: LivenessConfig::default(),
    }
}

/// [`cfg`] without the idle timeout.
fn quiet() -> LinkConfig {
    LinkConfig {
        idle_timeout: None,
        ..cfg()
    }
}

/// A quiet accepted link whose request (40 ms response timeout) is written at t=1.
fn awaiting_reply() -> Link {
    let mut l = Link::accepted(quiet(), t(0));
    l.handle_queued(t(0), Some(Duration::from_millis(40)));
    assert_eq!(l.handle_written(t(1), 10, true), None);
    l
}

fn deliver(l: &mut Link, now: Instant) -> bool {
    matches!(
        l.handle_frame(now, b"MSH|"),
        FrameAction::Deliver { offset: 0, .. }
    )
}

#[test]
fn silent_link_closes_at_exactly_the_idle_timeout() {
    let mut l = Link::accepted(cfg(), t(0));
    assert_eq!(l.poll_timeout(), Some(t(100)));
    assert_eq!(l.handle_timeout(t(99)), None);
    assert_eq!(l.handle_timeout(t(100)), Some(CloseReason::IdleTimeout));
}

#[test]
fn inbound_bytes_push_the_idle_deadline_without_rescheduling() {
    let mut l = Link::accepted(cfg(), t(0));
    l.handle_input(t(60), 5);
    assert_eq!(l.poll_timeout(), Some(t(100)), "lazy: still the old check");
    assert_eq!(l.handle_timeout(t(100)), None);
    assert_eq!(l.poll_timeout(), Some(t(160)));
    assert_eq!(l.handle_timeout(t(160)), Some(CloseReason::IdleTimeout));
}

#[test]
fn activity_exactly_at_the_deadline_keeps_the_link() {
    let mut l = Link::accepted(cfg(), t(0));
    l.handle_input(t(100), 1);
    assert_eq!(l.handle_timeout(t(100)), None);
    assert_eq!(l.poll_timeout(), Some(t(200)));
}

#[test]
fn outbound_connect_times_out() {
    let mut l = Link::outbound(cfg(), t(0));
    assert_eq!(l.poll_timeout(), Some(t(30)));
    assert_eq!(l.handle_timeout(t(30)), Some(CloseReason::ConnectTimeout));
}

#[test]
fn connected_link_stops_the_connect_timer_and_starts_idle() {
    let mut l = Link::outbound(cfg(), t(0));
    l.handle_connected(t(10));
    assert_eq!(l.poll_timeout(), Some(t(110)));
}

#[test]
fn reply_clears_the_response_timer() {
    let mut l = awaiting_reply();
    l.handle_input(t(5), 3);
    assert_eq!(l.stats().partial_reply_bytes, 3);
    assert!(deliver(&mut l, t(6)));
    assert_eq!(l.stats().partial_reply_bytes, 0);
    assert_eq!(l.poll_timeout(), None);
}

#[test]
fn missing_reply_is_a_response_timeout() {
    let mut l = awaiting_reply();
    assert_eq!(l.handle_timeout(t(40)), Some(CloseReason::ResponseTimeout));
}

#[test]
fn stuck_writes_are_a_write_timeout_and_progress_refreshes_it() {
    let mut l = Link::accepted(quiet(), t(0));
    l.handle_queued(t(0), None);
    assert_eq!(
        l.poll_timeout(),
        None,
        "no timer while writes complete at once"
    );
    l.handle_write_blocked(t(10));
    assert_eq!(l.poll_timeout(), Some(t(60)));
    assert_eq!(l.handle_written(t(30), 4, false), None);
    assert_eq!(l.handle_timeout(t(60)), None);
    assert_eq!(l.handle_timeout(t(80)), Some(CloseReason::WriteTimeout));
}

#[test]
fn a_frame_without_a_buffer_for_write_timeout_is_a_write_timeout_unless_room_comes_back() {
    let quiet = quiet();
    let mut l = Link::accepted(quiet.clone(), t(0));
    l.handle_no_room(t(10));
    assert_eq!(l.poll_timeout(), Some(t(60)));
    assert_eq!(l.handle_timeout(t(60)), Some(CloseReason::WriteTimeout));

    let mut l = Link::accepted(quiet, t(0));
    l.handle_no_room(t(10));
    l.handle_room();
    assert_eq!(l.poll_timeout(), None, "room came back: nothing is stuck");
}

#[test]
fn close_after_reply_delivers_one_message_and_closes_once_the_reply_is_written() {
    let mut l = Link::accepted(
        LinkConfig {
            close_after_reply: true,
            ..cfg()
        },
        t(0),
    );
    assert!(l.may_read());
    assert!(deliver(&mut l, t(1)));
    assert!(
        !l.may_read(),
        "nothing after the first message is processed"
    );
    assert!(!deliver(&mut l, t(2)));
    assert_eq!(l.stats().discarded_frames, 1);
    assert!(!l.closes_once_written());
    l.handle_queued(t(3), None);
    assert!(l.closes_once_written(), "the reply is queued");
    assert_eq!(l.handle_written(t(4), 2, false), None);
    assert_eq!(
        l.handle_written(t(5), 2, true),
        Some(CloseReason::ClosedAfterReply)
    );
}

#[test]
fn closed_link_has_no_deadline() {
    let mut l = Link::accepted(cfg(), t(0));
    l.close(CloseReason::LocalClose);
    assert_eq!(l.poll_timeout(), None);
    assert_eq!(l.state(), LinkState::Closed(CloseReason::LocalClose));
    l.close(CloseReason::Reset);
    assert_eq!(
        l.state(),
        LinkState::Closed(CloseReason::LocalClose),
        "first reason wins"
    );
}

/// Idle off unless given; frame timeout `ms` + 1 ms per byte (1000 B/s),
/// at most 10 s.
fn slow_cfg(frame_ms: u64, idle_ms: Option<u64>) -> LinkConfig {
    LinkConfig {
        idle_timeout: idle_ms.map(Duration::from_millis),
        liveness: LivenessConfig {
            frame_timeout: Some(FrameTimeout {
                timeout: Duration::from_millis(frame_ms),
                min_rate: 1000,
                max: Duration::from_secs(10),
            }),
            ..LivenessConfig::default()
        },
        ..cfg()
    }
}

#[test]
fn a_stalled_frame_closes_at_its_deadline_which_its_bytes_extend() {
    let mut l = Link::accepted(slow_cfg(300, None), t(0));
    assert_eq!(l.poll_timeout(), None, "no frame, no deadline");
    assert!(l.handle_partial_frame(t(10), 1), "first byte: schedule");
    assert_eq!(l.poll_timeout(), Some(t(311)));
    assert!(!l.handle_partial_frame(t(200), 100), "lazy: no reschedule");
    assert_eq!(l.handle_timeout(t(311)), None);
    assert_eq!(l.poll_timeout(), Some(t(410)), "100 bytes bought 100 ms");
    assert_eq!(l.handle_timeout(t(409)), None);
    assert_eq!(l.handle_timeout(t(410)), Some(CloseReason::FrameTimeout));
}

#[test]
fn a_whole_frame_stops_its_deadline_and_the_next_frame_starts_its_own() {
    let mut l = Link::accepted(slow_cfg(300, None), t(0));
    assert!(l.handle_partial_frame(t(0), 5_000));
    assert_eq!(l.handle_timeout(t(300)), None);
    assert_eq!(l.poll_timeout(), Some(t(5_300)));
    assert!(deliver(&mut l, t(400)));
    // The next frame's deadline is earlier than the entry the last one left.
    assert!(l.handle_partial_frame(t(500), 1));
    assert_eq!(l.poll_timeout(), Some(t(801)));
    assert!(deliver(&mut l, t(600)));
    assert_eq!(l.handle_timeout(t(801)), None, "whole: no close");
    assert_eq!(l.poll_timeout(), None, "and the entry cleared itself");
}

#[test]
fn a_trickle_keeps_the_idle_timer_quiet_but_not_the_frame_deadline() {
    let mut cfg = slow_cfg(1_000, Some(100));
    if let Some(f) = cfg.liveness.frame_timeout.as_mut() {
        f.min_rate = 1; // a byte buys a second: the trickle would live 10 s
    }
    let mut l = Link::accepted(cfg, t(0));
    let mut closed = None;
    for ms in (0..20_000).step_by(10) {
        if ms % 50 == 0 {
            // One byte every 50 ms of a frame that never ends.
            l.handle_input(t(ms), 1);
            if l.handle_partial_frame(t(ms), 1 + ms as usize / 50) {
                assert!(l.poll_timeout().is_some());
            }
        }
        if l.poll_timeout().is_some_and(|at| at <= t(ms)) {
            if let Some(r) = l.handle_timeout(t(ms)) {
                closed = Some((ms, r));
                break;
            }
        }
    }
    assert_eq!(
        closed,
        Some((10_000, CloseReason::FrameTimeout)),
        "cut at the maximum"
    );
}

#[test]
fn a_link_paused_for_a_buffer_is_neither_idle_nor_late_until_resumed() {
    let mut l = Link::accepted(
        LinkConfig {
            liveness: LivenessConfig {
                frame_timeout: Some(FrameTimeout {
                    min_rate: 0,
                    ..FrameTimeout::default()
                }),
                ..LivenessConfig::default()
            },
            ..slow_cfg(0, Some(100))
        },
        t(0),
    );
    l.handle_input(t(0), 16_000);
    assert!(l.handle_partial_frame(t(0), 16_000));
    l.pause_reads(t(50));
    for ms in [100, 1_000, 30_000, 600_000] {
        assert_eq!(l.handle_timeout(t(ms)), None, "paused at {ms} ms");
    }
    assert_eq!(l.poll_timeout(), None, "nothing runs while paused");
    assert!(l.resume_reads(t(600_000)));
    assert!(!l.resume_reads(t(600_001)), "once");
    assert_eq!(
        l.poll_timeout(),
        Some(t(600_100)),
        "idle counts from resume"
    );
    // The peer trickles on: idle stays quiet, and the frame gets its 30 s
    // without the pause: 50 ms before it, 29,950 ms after.
    let mut closed = None;
    for ms in (600_050..700_000).step_by(50) {
        l.handle_input(t(ms), 1);
        if let Some(r) = l.handle_timeout(t(ms)) {
            closed = Some((ms, r));
            break;
        }
    }
    assert_eq!(closed, Some((629_950, CloseReason::FrameTimeout)));
}

#[test]
fn huge_pending_counts_are_capped_not_overflowed_and_off_means_off() {
    let mut l = Link::accepted(slow_cfg(300, None), t(u64::MAX - 20_000));
    assert!(l.handle_partial_frame(t(u64::MAX - 20_000), usize::MAX));
    assert_eq!(l.handle_timeout(t(u64::MAX - 19_700)), None);
    assert_eq!(l.poll_timeout(), Some(t(u64::MAX - 10_000)), "the 10 s cap");
    assert_eq!(
        l.handle_timeout(t(u64::MAX)),
        Some(CloseReason::FrameTimeout)
    );
    let mut off = Link::accepted(
        LinkConfig {
            liveness: LivenessConfig {
                frame_timeout: None,
                ..LivenessConfig::default()
            },
            ..cfg()
        },
        t(0),
    );
    off.handle_input(t(0), 1);
    assert!(!off.handle_partial_frame(t(0), 1));
    assert_eq!(
        off.handle_timeout(t(u64::MAX)),
        Some(CloseReason::IdleTimeout)
    );
}

#[test]
fn admission_checks_allow_list_then_capacity_then_staleness() {
    let s = Duration::from_secs;
    assert_eq!(
        admit(false, 0, 10, None),
        Admission::Reject(CloseReason::NotAllowed)
    );
    assert_eq!(admit(true, 9, 10, None), Admission::Accept);
    assert_eq!(
        admit(true, 10, 10, None),
        Admission::Reject(CloseReason::TooManyConnections)
    );
    assert_eq!(
        admit(true, 1, 1, Some((s(119), s(120)))),
        Admission::Reject(CloseReason::TooManyConnections)
    );
    assert_eq!(
        admit(true, 1, 1, Some((s(120), s(120)))),
        Admission::ReplaceStale
    );
    assert_eq!(
        admit(false, 1, 1, Some((s(500), s(120)))),
        Admission::Reject(CloseReason::NotAllowed)
    );
}

fn mooring_cfg(heartbeat: Option<(u64, u64)>) -> LinkConfig {
    LinkConfig {
        idle_timeout: None,
        liveness: LivenessConfig {
            protocol: Protocol::Mooring,
            heartbeat: heartbeat.map(|(i, d)| liveness::Heartbeat {
                interval: Duration::from_millis(i),
                timeout: Duration::from_millis(d),
            }),
            ..LivenessConfig::default()
        },
        ..cfg()
    }
}

fn wire_frame(m: Msg<'_>) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    let n = wire::encode(&m, &mut b).unwrap();
    b.truncate(n);
    b
}

/// A server link that received HELLO and queued its WELCOME.
fn greeted_server(cfg: LinkConfig) -> Link {
    let mut s = Link::accepted(cfg, t(0));
    let hello = wire_frame(Msg::Hello(Greeting::new_session()));
    assert!(matches!(
        s.handle_frame(t(0), &hello),
        FrameAction::Established(_)
    ));
    let mut out = [0u8; CONTROL_SCRATCH];
    let (c, _) = s.poll_transmit(&mut out).unwrap();
    s.handle_transmitted(t(0), c);
    s
}

#[test]
fn a_server_link_with_commit_acks_writes_the_ack_itself_and_takes_ack_nak_as_replies() {
    let commit = LinkConfig {
        mllp_commit_ack: true,
        ..cfg()
    };
    let mut l = Link::accepted(commit.clone(), t(0));
    assert!(deliver(&mut l, t(1)));
    assert_eq!(l.handle_delivery(b"MSH|"), None, "a message, not a reply");
    let mut out = [0u8; CONTROL_SCRATCH];
    assert_eq!(l.poll_transmit(&mut out), Some((Control::CommitAck, 1)));
    assert_eq!(&out[..1], MLLP_ACK);
    l.handle_transmitted(t(1), Control::CommitAck);
    assert_eq!(
        l.stats().frames_out,
        1,
        "an application message on the wire"
    );
    assert_eq!(l.handle_delivery(MLLP_ACK), Some(true));
    assert_eq!(l.handle_delivery(MLLP_NAK), Some(false));
    assert!(!l.wants_transmit(), "a commit ACK is not acknowledged");

    let mut c = Link::outbound(commit, t(0));
    c.handle_connected(t(0));
    assert_eq!(c.handle_delivery(b"MSH|"), None);
    assert!(!c.wants_transmit(), "the sending side does not commit-ACK");
    let mut off = Link::accepted(cfg(), t(0));
    assert_eq!(
        off.handle_delivery(MLLP_ACK),
        None,
        "off: an ACK is a message"
    );
    assert!(!off.wants_transmit());
}

#[test]
fn the_link_writes_the_close_frame_when_the_peer_should_hear_why() {
    let mut b = [0u8; FAREWELL_SCRATCH];
    let raw = Link::accepted(cfg(), t(0));
    assert_eq!(raw.farewell(CloseReason::IdleTimeout, &mut b), None, "raw");
    let s = Link::accepted(mooring_cfg(None), t(0));
    assert_eq!(
        s.farewell(CloseReason::IdleTimeout, &mut b),
        None,
        "no HELLO yet"
    );
    let n = s.farewell(CloseReason::VersionMismatch, &mut b).unwrap();
    assert_eq!(
        wire::decode(&b[..n]),
        Ok(Msg::Close(WireReason::Known(CloseReason::VersionMismatch)))
    );
    let mut s = greeted_server(mooring_cfg(None));
    let n = s.farewell(CloseReason::IdleTimeout, &mut b).unwrap();
    assert_eq!(
        wire::decode(&b[..n]),
        Ok(Msg::Close(WireReason::Known(CloseReason::IdleTimeout)))
    );
    assert_eq!(s.farewell(CloseReason::Reset, &mut b), None, "peer side");
    let close = wire_frame(Msg::Close(WireReason::Known(CloseReason::StaleReplaced)));
    assert_eq!(
        s.handle_frame(t(1), &close),
        FrameAction::Close(CloseReason::PeerClosed)
    );
    assert_eq!(s.peer_reason(), Some(CloseReason::StaleReplaced));
    assert_eq!(
        s.farewell(CloseReason::PeerClosed, &mut b),
        None,
        "the peer ended it"
    );
}

#[test]
fn codec_errors_map_to_their_close_reasons_in_the_link() {
    let l = Link::accepted(cfg(), t(0));
    assert_eq!(
        l.handle_decode_error(FrameError::TooLarge),
        CloseReason::FrameTooLarge
    );
    assert_eq!(
        l.handle_decode_error(FrameError::Bad),
        CloseReason::BadFrame
    );
}

#[test]
fn policy_and_liveness_deadlines_share_one_table_and_one_last_rx() {
    let mut l = greeted_server(LinkConfig {
        idle_timeout: Some(Duration::from_millis(100)),
        ..mooring_cfg(Some((200, 300)))
    });
    // Idle at 100, heartbeat PING at 300 (accepting side: 1.5 x), dead at 300.
    assert_eq!(l.poll_timeout(), Some(t(100)));
    l.handle_input(t(50), 1);
    assert_eq!(l.handle_timeout(t(100)), None, "idle moved to 150");
    assert_eq!(l.poll_timeout(), Some(t(150)));
    assert_eq!(l.handle_timeout(t(150)), Some(CloseReason::IdleTimeout));

    let mut l = greeted_server(mooring_cfg(Some((200, 300))));
    l.handle_input(t(250), 1);
    assert_eq!(
        l.handle_timeout(t(300)),
        None,
        "the same byte feeds liveness"
    );
    let mut out = [0u8; CONTROL_SCRATCH];
    assert_eq!(l.poll_transmit(&mut out).map(|p| p.0), Some(Control::Ping));
    assert_eq!(
        l.handle_timeout(t(550)),
        Some(CloseReason::HeartbeatTimeout)
    );
}

#[test]
fn resumed_reads_count_as_receipt_for_every_silence_deadline() {
    // The heartbeat's silence is measured from the same `last_rx` as idle: a
    // pause for want of a buffer is not the peer's silence.
    let mut l = greeted_server(mooring_cfg(Some((200, 300))));
    l.pause_reads(t(50));
    assert!(l.resume_reads(t(250)));
    assert_eq!(l.handle_timeout(t(300)), None, "not dead at 300");
    assert_eq!(
        l.handle_timeout(t(550)),
        Some(CloseReason::HeartbeatTimeout)
    );
}

#[test]
fn keepalive_payloads_are_shared_not_copied_per_link() {
    let k = liveness::KeepAlivePayload::new(b"KA");
    let per_link = k.clone();
    assert!(core::ptr::eq(k.as_bytes(), per_link.as_bytes()));
    assert_eq!(per_link, b"KA");
}

/// A plain link ([`Link::is_plain_open`]) with a keep-alive message every 100
/// ms that needs a reply within 50 ms, sent at t=100 and awaiting that reply.
fn keepalive_sent() -> Link {
    let ka = liveness::KeepAliveMessage {
        payload: b"KA"[..].into(),
        every: Duration::from_millis(100),
        timeout: Some(Duration::from_millis(50)),
    };
    let liveness = LivenessConfig {
        keepalive: Some(ka),
        ..LivenessConfig::default()
    };
    let mut l = Link::accepted(
        LinkConfig {
            liveness,
            ..quiet()
        },
        t(0),
    );
    assert_eq!(l.handle_timeout(t(100)), None);
    let mut out = [0u8; CONTROL_SCRATCH];
    let (c, _) = l.poll_transmit(&mut out).expect("the keep-alive is due");
    l.handle_transmitted(t(100), c);
    assert_eq!(l.poll_timeout(), Some(t(150)), "its reply timer runs");
    l
}

#[test]
fn a_plain_frame_changes_a_link_exactly_as_handle_frame_does() {
    // Every state a frame can find a plain link in: idle timer running, a
    // keep-alive awaiting its reply, a request awaiting its reply, a frame
    // half read (its deadline running).
    let mut half_read = Link::accepted(cfg(), t(0));
    assert!(half_read.handle_partial_frame(t(5), 3));
    let cases = [
        ("idle timer", Link::accepted(cfg(), t(0)), false),
        ("keep-alive sent", keepalive_sent(), true),
        ("awaiting reply", awaiting_reply(), true),
        ("frame half read", half_read, false),
    ];
    for (name, link, moves) in cases {
        assert!(link.is_plain_open(), "{name}");
        let before = link.poll_timeout();
        let (mut fast, mut slow) = (link.clone(), link);
        let moved = fast.handle_plain_frame(2);
        slow.handle_skipped(2);
        assert_eq!(
            slow.handle_frame(t(120), b"MSH|"),
            FrameAction::Deliver {
                offset: 0,
                seq: None
            },
            "{name}"
        );
        // Field for field the same link (`Debug` shows every field).
        assert_eq!(format!("{fast:?}"), format!("{slow:?}"), "{name}");
        // "Moved" exactly when the deadline did: a driver that reschedules
        // only then keeps its deadline heap exact.
        assert_eq!(moved, moves, "{name}");
        assert_eq!(moved, fast.poll_timeout() != before, "{name}");
    }
}

#[test]
fn only_an_open_raw_link_without_reply_policies_is_plain() {
    assert!(Link::accepted(cfg(), t(0)).is_plain_open());
    let mut closed = Link::accepted(cfg(), t(0));
    closed.close(CloseReason::LocalClose);
    assert!(!closed.is_plain_open(), "closed");
    assert!(!Link::outbound(cfg(), t(0)).is_plain_open(), "connecting");
    let not_plain = [
        LinkConfig {
            close_after_reply: true,
            ..cfg()
        },
        LinkConfig {
            mllp_commit_ack: true,
            ..cfg()
        },
        LinkConfig {
            liveness: LivenessConfig {
                protocol: Protocol::Mooring,
                ..LivenessConfig::default()
            },
            ..cfg()
        },
    ];
    for c in not_plain {
        assert!(!Link::accepted(c.clone(), t(0)).is_plain_open(), "{c:?}");
    }
}

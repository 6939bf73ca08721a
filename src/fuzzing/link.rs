//! The link state machine (with its liveness) driven by random events and times.

use core::time::Duration;

use super::Input;
use crate::error::CloseReason;
use crate::frame_deadline::FrameTimeout;
use crate::link::{Control, FrameAction, Link, LinkConfig, CONTROL_SCRATCH, FAREWELL_SCRATCH};
use crate::liveness::{Heartbeat, KeepAliveMessage, LivenessConfig, Protocol};
use crate::time::Instant;
use crate::wire::{self, Msg};
use crate::LinkState;

/// Reasons the driver closes a link for on its own.
const DRIVER_REASONS: [CloseReason; 4] = [
    CloseReason::LocalClose,
    CloseReason::PeerClosed,
    CloseReason::FrameTooLarge,
    CloseReason::Io,
];

/// A valid link configuration from the input.
fn config(input: &mut Input<'_>) -> LinkConfig {
    let protocol = if input.bool() {
        Protocol::Mooring
    } else {
        Protocol::Raw
    };
    let flags = input.u8();
    let heartbeat = (flags & 1 != 0 && protocol == Protocol::Mooring).then(|| {
        let interval = input.millis();
        Heartbeat {
            interval,
            timeout: interval + input.millis(),
        }
    });
    let keepalive = (flags & 2 != 0).then(|| KeepAliveMessage {
        payload: b"MSH|^~\\&|KEEPALIVE|||||||PING|P|2.5\r".into(),
        every: input.millis(),
        timeout: (flags & 4 != 0).then(|| input.millis()),
    });
    let frame_timeout = (flags & 32 != 0).then(|| FrameTimeout {
        timeout: input.millis(),
        min_rate: if input.bool() { input.u32() } else { 0 },
        max: Duration::from_millis(u64::from(input.u32())),
    });
    let liveness = LivenessConfig {
        protocol,
        heartbeat,
        keepalive,
        handshake_timeout: input.millis(),
        frame_timeout,
        ..LivenessConfig::default()
    };
    assert_eq!(liveness.validate(), Ok(()));
    LinkConfig {
        idle_timeout: (flags & 8 != 0).then(|| input.millis()),
        write_timeout: input.millis(),
        connect_timeout: input.millis(),
        close_after_reply: flags & 16 != 0,
        mllp_commit_ack: flags & 64 != 0,
        liveness,
    }
}

/// Closes `link` for `reason` as the driver does.
fn close(link: &mut Link, reason: CloseReason) {
    link.close(reason);
    assert_eq!(link.state(), LinkState::Closed(reason));
}

/// The link state machine: random frames (valid protocol messages with random
/// fields, or garbage), byte counts, partial frames, read pauses (frame
/// timeout), writes, queued requests and time steps
/// (small, and jumps toward the end of time). Properties: no panic; a timer
/// never fires before `poll_timeout` says; after a quiet `handle_timeout` the
/// next deadline lies in the future (no busy loop); control frames fit
/// [`CONTROL_SCRATCH`] and decode; a peer's CLOSE closes as `PeerClosed`
/// whatever it claims; a closed link keeps its first reason, has
/// no deadline and sends nothing (then the run ends: the driver frees it).
pub fn link(data: &[u8]) {
    let mut input = Input::new(data);
    let cfg = config(&mut input);
    let mut now = Instant::from_millis(u64::from(input.u32()));
    let mooring = cfg.liveness.protocol == Protocol::Mooring;
    let mut link = if input.bool() {
        Link::accepted(cfg, now)
    } else {
        Link::outbound(cfg, now)
    };
    let mut scratch = [0u8; CONTROL_SCRATCH];
    let mut frame = [0u8; 600];
    for _ in 0..512 {
        if input.is_empty() {
            break;
        }
        match input.u8() % 19 {
            0 => now = now + Duration::from_millis(u64::from(input.u16())),
            1 => {
                let jump = input.u64() >> (input.u8() % 64);
                now = Instant::from_millis(now.as_millis().saturating_add(jump));
            }
            2 => link.handle_connected(now),
            // The driver reads (and decodes) only while the link is open.
            3 if link.is_open() => link.handle_input(now, usize::from(input.u16())),
            4 => link.handle_skipped(usize::from(input.u8())),
            5 if link.is_open() => {
                let n = if input.bool() {
                    let payload = input.short_bytes();
                    let msg = input.message(payload);
                    wire::encode(&msg, &mut frame).expect("fits")
                } else {
                    let raw = input.short_bytes();
                    frame[..raw.len()].copy_from_slice(raw);
                    raw.len()
                };
                match link.handle_frame(now, &frame[..n]) {
                    FrameAction::Deliver { offset, seq } => {
                        assert!(offset <= n);
                        assert_eq!(seq.is_some(), mooring);
                        let _ = link.handle_delivery(&frame[offset..n]);
                    }
                    FrameAction::Close(r) => {
                        if let Ok(Msg::Close(_)) = wire::decode(&frame[..n]) {
                            // The peer's claim is kept apart, never the reason.
                            assert!(mooring && r == CloseReason::PeerClosed, "{r:?}");
                        }
                        close(&mut link, r);
                    }
                    _ => {}
                }
            }
            6 => link.handle_queued(now, input.bool().then(|| input.millis())),
            7 => link.handle_write_blocked(now),
            8 => {
                let (n, empty) = (usize::from(input.u16()), input.bool());
                if let Some(r) = link.handle_written(now, n, empty) {
                    close(&mut link, r);
                }
            }
            9 => {
                let due = link.poll_timeout();
                let fired = link.handle_timeout(now);
                if due.is_none_or(|t| t > now) {
                    assert_eq!(fired, None, "fired before its deadline {due:?} at {now:?}");
                }
                match fired {
                    Some(r) => close(&mut link, r),
                    // Saturated deadlines at the end of time may equal `now`.
                    None if now.as_millis() < u64::MAX / 2 => {
                        let next = link.poll_timeout();
                        assert!(
                            next.is_none_or(|t| t > now),
                            "busy loop: {next:?} at {now:?}"
                        );
                    }
                    None => {}
                }
            }
            10 => {
                for _ in 0..8 {
                    let Some((c, n)) = link.poll_transmit(&mut scratch) else {
                        break;
                    };
                    assert!(n <= CONTROL_SCRATCH);
                    if !matches!(c, Control::KeepAlive | Control::CommitAck) {
                        let msg = wire::decode(&scratch[..n]).expect("control frames decode");
                        assert!(!matches!(msg, Msg::Data { .. }));
                    }
                    link.handle_transmitted(now, c);
                }
            }
            11 => link.keep_awaiting_reply(now + input.millis()),
            12 => {
                let (session, last) = (input.u64(), input.u64());
                let g = input.greeting(session, last);
                link.set_greeting(g);
            }
            13 => {
                let reason = DRIVER_REASONS[usize::from(input.u8() % 4)];
                let mut out = [0u8; FAREWELL_SCRATCH];
                if let Some(n) = link.farewell(reason, &mut out) {
                    assert!(mooring);
                    assert!(matches!(wire::decode(&out[..n]), Ok(Msg::Close(_))));
                }
                close(&mut link, reason);
            }
            14 if link.is_open() => {
                let _ = link.handle_partial_frame(now, usize::from(input.u16()));
            }
            15 => link.pause_reads(now),
            16 => {
                let _ = link.resume_reads(now);
            }
            17 => link.handle_no_room(now),
            18 => link.handle_room(),
            _ => {}
        }
        if let Some(h) = link.next_data_header() {
            assert!(matches!(wire::decode(&h), Ok(Msg::Data { .. })));
        }
        if let LinkState::Closed(reason) = link.state() {
            assert_eq!(link.poll_timeout(), None);
            assert!(!link.is_open() && !link.may_read() && !link.may_send());
            assert_eq!(link.poll_transmit(&mut scratch), None);
            // A second close keeps the first reason; then the driver frees the slot.
            link.close(CloseReason::Reset);
            assert_eq!(link.state(), LinkState::Closed(reason));
            break;
        }
    }
}

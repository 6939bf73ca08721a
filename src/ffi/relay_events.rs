//! The relay's events as `mooring_relay_event`s, kept between polls: a
//! [`RelayEvent`] borrows wire bytes for the callback only, so each one is
//! converted at once and its bytes (ids, ACK codes, texts) copied into a byte
//! area sized at start. Both the queue and the area are fixed: an event that
//! does not fit is counted (`events_dropped`), never allocated for. The
//! counters of `mooring_relay_stats` are taken from every event, kept or not.

use core::fmt::{self, Write as _};
use core::ptr;
use std::collections::VecDeque;

use super::events::{c_reason, c_session_end};
use super::relay_types::*;
use super::types::{mooring_close_reason, mooring_session_end, MOORING_ADDR_MAX};
use super::write_c;
use crate::fallible::AllocError;
use crate::metrics::RelayTally;
use crate::relay::{LostReason, Pressure, Refusal, RelayEvent, SwitchReason};

/// Bytes of an event's text field.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Text {
    None,
    Static(&'static str),
    /// In the byte area.
    Kept {
        at: usize,
        len: usize,
    },
}

/// An event waiting for `mooring_relay_next_event` (its pointers NULL; the
/// texts say where their bytes are).
#[derive(Clone, Copy)]
struct Waiting {
    ev: mooring_relay_event,
    id: Text,
    ack: Text,
    detail: Text,
}

/// The byte area ran out.
#[derive(Debug)]
struct Full;

/// Copies texts into the area, within its capacity (so it never moves).
struct Area<'a>(&'a mut Vec<u8>);

impl Area<'_> {
    fn keep(&mut self, b: &[u8]) -> Result<Text, Full> {
        let at = self.0.len();
        if self.0.capacity() - at < b.len() {
            return Err(Full);
        }
        self.0.extend_from_slice(b);
        Ok(Text::Kept { at, len: b.len() })
    }

    fn keep_opt(&mut self, b: Option<&[u8]>) -> Result<Text, Full> {
        b.map_or(Ok(Text::None), |b| self.keep(b))
    }

    fn keep_fmt(&mut self, args: fmt::Arguments<'_>) -> Result<Text, Full> {
        struct W<'b>(&'b mut Vec<u8>);
        impl fmt::Write for W<'_> {
            fn write_str(&mut self, s: &str) -> fmt::Result {
                if self.0.capacity() - self.0.len() < s.len() {
                    return Err(fmt::Error);
                }
                self.0.extend_from_slice(s.as_bytes());
                Ok(())
            }
        }
        let at = self.0.len();
        if W(self.0).write_fmt(args).is_err() {
            return Err(Full);
        }
        Ok(Text::Kept {
            at,
            len: self.0.len() - at,
        })
    }
}

/// Counters over every event (`mooring_relay_stats`): the metrics' tally
/// and what the C stats add to it.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Counts {
    /// The counters `mooring relay --metrics` exports.
    pub(super) tally: RelayTally,
    pub(super) devices: u64,
    pub(super) received: u64,
    /// Every upstream acknowledgement (a session's has no ACK code).
    pub(super) acked: u64,
    pub(super) reply_timeouts: u64,
    pub(super) dropped: u64,
}

impl Counts {
    fn count(&mut self, ev: &RelayEvent<'_>) {
        self.tally.observe(ev);
        let bump = |c: &mut u64| *c = c.saturating_add(1);
        match ev {
            RelayEvent::DeviceConnected { .. } => bump(&mut self.devices),
            RelayEvent::DeviceClosed { .. } => self.devices = self.devices.saturating_sub(1),
            RelayEvent::DeviceMessage { .. } => bump(&mut self.received),
            RelayEvent::Acked { .. } => bump(&mut self.acked),
            RelayEvent::ReplyTimeout { .. } => bump(&mut self.reply_timeouts),
            _ => {}
        }
    }
}

/// The relay's events between polls, and its counters.
pub(super) struct RelayEvents {
    queue: VecDeque<Waiting>,
    /// Bytes of the waiting events' texts, in their order.
    area: Vec<u8>,
    pub(super) counts: Counts,
}

impl RelayEvents {
    /// Room for `entries` events and `bytes` of their texts, reserved now.
    pub(super) fn new(entries: usize, bytes: usize) -> Result<Self, AllocError> {
        let mut queue = VecDeque::new();
        queue.try_reserve_exact(entries).map_err(|_| AllocError {
            what: "C relay event queue",
            bytes: entries.saturating_mul(core::mem::size_of::<Waiting>()),
        })?;
        let area = crate::fallible::vec_with_capacity(bytes, "C relay event texts")?;
        Ok(RelayEvents {
            queue,
            area,
            counts: Counts::default(),
        })
    }

    /// Counts `ev` and keeps it for C, or counts it as dropped.
    pub(super) fn record(&mut self, ev: &RelayEvent<'_>) {
        self.counts.count(ev);
        let mark = self.area.len();
        let kept = if self.queue.len() < self.queue.capacity() {
            waiting(ev, &mut Area(&mut self.area)).ok()
        } else {
            None
        };
        match kept {
            Some(w) => self.queue.push_back(w),
            None => {
                self.area.truncate(mark);
                self.counts.dropped = self.counts.dropped.saturating_add(1);
            }
        }
    }

    /// The oldest waiting event, its pointers into the area (valid until the
    /// next [`RelayEvents::compact`]).
    pub(super) fn next(&mut self) -> Option<mooring_relay_event> {
        let w = self.queue.pop_front()?;
        let mut ev = w.ev;
        (ev.id, ev.id_len) = self.resolve(w.id);
        (ev.ack, ev.ack_len) = self.resolve(w.ack);
        (ev.detail, ev.detail_len) = self.resolve(w.detail);
        Some(ev)
    }

    fn resolve(&self, t: Text) -> (*const u8, usize) {
        match t {
            Text::None => (ptr::null(), 0),
            Text::Static(s) => (s.as_ptr(), s.len()),
            Text::Kept { at, len } => match self.area.get(at..at.saturating_add(len)) {
                Some(b) => (b.as_ptr(), len),
                None => (ptr::null(), 0),
            },
        }
    }

    /// Frees the bytes of the events already taken (their pointers end here):
    /// the waiting events' bytes move to the front.
    pub(super) fn compact(&mut self) {
        let first = self.queue.iter().find_map(|w| {
            [w.id, w.ack, w.detail].into_iter().find_map(|t| match t {
                Text::Kept { at, .. } => Some(at),
                _ => None,
            })
        });
        let Some(from) = first else {
            self.area.clear();
            return;
        };
        self.area.copy_within(from.., 0);
        self.area.truncate(self.area.len() - from);
        for w in &mut self.queue {
            for t in [&mut w.id, &mut w.ack, &mut w.detail] {
                if let Text::Kept { at, .. } = t {
                    *at -= from;
                }
            }
        }
    }

    /// Events waiting.
    #[cfg(test)]
    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }
}

/// A `mooring_spool_pressure` value.
pub(super) fn c_pressure(p: Pressure) -> u32 {
    (match p {
        Pressure::Ok => mooring_spool_pressure::Ok,
        Pressure::Full => mooring_spool_pressure::Full,
        Pressure::DiskError(_) => mooring_spool_pressure::DiskError,
        Pressure::Recovering => mooring_spool_pressure::Recovering,
    }) as u32
}

/// A pressure's name, or its disk error's text.
fn pressure_text(p: Pressure, area: &mut Area<'_>) -> Result<Text, Full> {
    match p {
        Pressure::DiskError(e) => area.keep_fmt(format_args!("{e}")),
        p => Ok(Text::Static(p.as_str())),
    }
}

/// The name `mooring relay` prints for a session's end (`reason=Session...`).
fn session_end_name(end: mooring_session_end) -> &'static str {
    match end {
        mooring_session_end::None => "",
        mooring_session_end::Lost => "SessionLost",
        mooring_session_end::Expired => "SessionExpired",
        mooring_session_end::QueueFull => "SessionQueueFull",
        mooring_session_end::Closed => "SessionClosed",
        mooring_session_end::Evicted => "SessionEvicted",
    }
}

/// An event with every field empty.
fn empty(kind: mooring_relay_event_kind) -> mooring_relay_event {
    mooring_relay_event {
        kind,
        peer: [0; MOORING_ADDR_MAX],
        id: ptr::null(),
        id_len: 0,
        ack: ptr::null(),
        ack_len: 0,
        detail: ptr::null(),
        detail_len: 0,
        bytes: 0,
        seq: 0,
        reason: mooring_close_reason::None as u32,
        peer_reason: mooring_close_reason::None as u32,
        refusal: mooring_relay_refusal::None as u32,
        lost: mooring_relay_lost::None as u32,
        session_end: mooring_session_end::None as u32,
        pressure: mooring_spool_pressure::None as u32,
        attempt: 0,
        delay_ms: 0,
        elapsed_ms: 0,
        pending: 0,
        acked_to_device: 0,
        session: 0,
        resumed: 0,
        replaying: 0,
        queued: 0,
        in_doubt_first: 0,
        in_doubt_last: 0,
        resent: 0,
        failed: 0,
        unacked: 0,
        size: 0,
        recovered: 0,
        corrupt: 0,
        used: 0,
        records: 0,
        active: 0,
        upstream: 0,
        possible_duplicates: 0,
    }
}

fn ms64(d: core::time::Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// The C form of `ev`, its bytes copied into `area`.
fn waiting(ev: &RelayEvent<'_>, area: &mut Area<'_>) -> Result<Waiting, Full> {
    use mooring_relay_event_kind as K;
    let mut id = Text::None;
    let mut ack = Text::None;
    let mut detail = Text::None;
    let c = match *ev {
        #[cfg(feature = "tls")]
        RelayEvent::Tls {
            peer,
            upstream,
            handshake,
        } => {
            let mut c = empty(K::Tls);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.upstream = u32::from(upstream);
            ack = Text::Static(handshake.version_name());
            id = area.keep(handshake.suite.as_bytes())?;
            if let Some(who) = &handshake.peer {
                detail = area.keep_fmt(format_args!("{who}"))?;
            }
            c
        }
        #[cfg(feature = "tls")]
        RelayEvent::TlsFailed {
            peer,
            upstream,
            error,
        } => {
            let mut c = empty(K::TlsFailed);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.upstream = u32::from(upstream);
            c.reason = c_reason(error.reason.into());
            detail = area.keep(error.detail.as_bytes())?;
            c
        }
        RelayEvent::DeviceConnected { peer } => {
            let mut c = empty(K::DeviceConnected);
            write_c(&mut c.peer, format_args!("{peer}"));
            c
        }
        RelayEvent::DeviceMessage {
            peer,
            bytes,
            id: msg_id,
        } => {
            let mut c = empty(K::DeviceMessage);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.bytes = bytes as u64;
            id = area.keep_opt(msg_id)?;
            c
        }
        RelayEvent::Refused {
            peer,
            bytes,
            reason,
        } => {
            let mut c = empty(K::Refused);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.bytes = bytes as u64;
            c.refusal = match reason {
                Refusal::NotHl7 => mooring_relay_refusal::NotHl7,
                Refusal::NoControlId => mooring_relay_refusal::NoControlId,
            } as u32;
            detail = Text::Static(reason.as_str());
            c
        }
        RelayEvent::Duplicate {
            peer,
            id: msg_id,
            pending,
        } => {
            let mut c = empty(K::Duplicate);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.pending = u32::from(pending);
            id = area.keep(msg_id)?;
            c
        }
        RelayEvent::QueueFull {
            peer,
            id: msg_id,
            queued,
        } => {
            let mut c = empty(K::QueueFull);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.queued = queued as u64;
            id = area.keep(msg_id)?;
            c
        }
        RelayEvent::Queued {
            peer,
            id: msg_id,
            seq,
        } => {
            let mut c = empty(K::Queued);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.seq = seq;
            id = area.keep(msg_id)?;
            c
        }
        RelayEvent::ReplyTimeout {
            peer,
            id: msg_id,
            seq,
            ack: code,
        } => {
            let mut c = empty(K::ReplyTimeout);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.seq = seq;
            id = area.keep(msg_id)?;
            ack = Text::Static(code.as_str());
            c
        }
        RelayEvent::DeviceClosed {
            peer,
            reason,
            peer_reason,
        } => {
            let mut c = empty(K::DeviceClosed);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.reason = c_reason(reason);
            c.peer_reason = peer_reason.map_or(mooring_close_reason::None as u32, c_reason);
            detail = Text::Static(reason.as_str());
            c
        }
        RelayEvent::Rejected { peer, reason } => {
            let mut c = empty(K::Rejected);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.reason = c_reason(reason);
            detail = Text::Static(reason.as_str());
            c
        }
        RelayEvent::UpstreamConnecting { attempt } => {
            let mut c = empty(K::UpstreamConnecting);
            c.attempt = attempt;
            c
        }
        RelayEvent::UpstreamConnected { session } => {
            let mut c = empty(K::UpstreamConnected);
            if let Some((resumed, replaying)) = session {
                c.session = 1;
                c.resumed = u32::from(resumed);
                c.replaying = replaying;
            }
            c
        }
        RelayEvent::UpstreamLost {
            reason,
            in_doubt,
            resent,
            failed,
        } => {
            let mut c = empty(K::UpstreamLost);
            let lost;
            (lost, detail) = match reason {
                LostReason::Link(r) => {
                    c.reason = c_reason(r);
                    (mooring_relay_lost::Link, Text::Static(r.as_str()))
                }
                LostReason::Session(how) => {
                    let end = c_session_end(how).0;
                    c.session_end = end as u32;
                    (
                        mooring_relay_lost::Session,
                        Text::Static(session_end_name(end)),
                    )
                }
                LostReason::NoSessions => {
                    (mooring_relay_lost::NoSessions, Text::Static("NoSessions"))
                }
                LostReason::ReplyOutOfOrder => (
                    mooring_relay_lost::ReplyOutOfOrder,
                    Text::Static("ReplyOutOfOrder"),
                ),
                LostReason::Failover => (mooring_relay_lost::Failover, Text::Static("Failover")),
            };
            c.lost = lost as u32;
            (c.in_doubt_first, c.in_doubt_last) = in_doubt.unwrap_or((0, 0));
            (c.resent, c.failed) = (resent, failed);
            c
        }
        RelayEvent::UpstreamLinkLost { reason, unacked } => {
            let mut c = empty(K::UpstreamLinkLost);
            c.reason = c_reason(reason);
            c.unacked = unacked.map_or(-1, |u| i64::try_from(u).unwrap_or(i64::MAX));
            detail = Text::Static(reason.as_str());
            c
        }
        RelayEvent::UpstreamReconnecting {
            reason,
            attempt,
            delay,
        } => {
            let mut c = empty(K::UpstreamReconnecting);
            if let Some(r) = reason {
                c.reason = c_reason(r);
                detail = Text::Static(r.as_str());
            }
            c.attempt = attempt;
            c.delay_ms = u32::try_from(delay.as_millis()).unwrap_or(u32::MAX);
            c
        }
        RelayEvent::Forwarded {
            id: msg_id,
            seq,
            attempt,
        } => {
            let mut c = empty(K::Forwarded);
            (c.seq, c.attempt) = (seq, attempt);
            id = area.keep(msg_id)?;
            c
        }
        RelayEvent::Acked {
            id: msg_id,
            seq,
            elapsed,
            ack: code,
        } => {
            let mut c = empty(K::Acked);
            (c.seq, c.elapsed_ms) = (seq, ms64(elapsed));
            id = area.keep(msg_id)?;
            ack = code.map_or(Text::None, |a| Text::Static(a.as_str()));
            c
        }
        RelayEvent::UnexpectedReply { id: msg_id, ack: a } => {
            id = area.keep_opt(msg_id)?;
            ack = area.keep_opt(a)?;
            empty(K::UnexpectedReply)
        }
        RelayEvent::UpstreamReply { id: msg_id, ack: a } => {
            id = area.keep_opt(msg_id)?;
            ack = area.keep_opt(a)?;
            empty(K::UpstreamReply)
        }
        RelayEvent::Failed {
            id: msg_id,
            seq,
            attempts,
            acked_to_device,
        } => {
            let mut c = empty(K::Failed);
            (c.seq, c.attempt) = (seq, attempts);
            c.acked_to_device = u32::from(acked_to_device);
            id = area.keep(msg_id)?;
            c
        }
        RelayEvent::SpoolOpened {
            dir,
            size,
            recovered,
            corrupt,
        } => {
            let mut c = empty(K::SpoolOpened);
            (c.size, c.recovered, c.corrupt) = (size, recovered, corrupt);
            detail = area.keep_fmt(format_args!("{}", dir.display()))?;
            c
        }
        RelayEvent::SpoolPressure {
            state,
            used,
            records,
        } => {
            let mut c = empty(K::SpoolPressure);
            c.pressure = c_pressure(state);
            (c.used, c.records) = (used, records as u64);
            detail = pressure_text(state, area)?;
            c
        }
        RelayEvent::SpoolRefused {
            peer,
            id: msg_id,
            cause,
        } => {
            let mut c = empty(K::SpoolRefused);
            write_c(&mut c.peer, format_args!("{peer}"));
            c.pressure = c_pressure(cause);
            id = area.keep(msg_id)?;
            detail = pressure_text(cause, area)?;
            c
        }
        RelayEvent::SpoolSession {
            resumed,
            possible_duplicates,
            ..
        } => {
            let mut c = empty(K::SpoolSession);
            c.session = 1;
            c.resumed = u32::from(resumed);
            c.possible_duplicates = possible_duplicates;
            c
        }
        RelayEvent::ReplyOutOfOrder {
            expected,
            id: msg_id,
        } => {
            id = area.keep(msg_id)?;
            detail = area.keep(expected)?;
            empty(K::ReplyOutOfOrder)
        }
        RelayEvent::PrimaryProbe { addr, attempt } => {
            let mut c = empty(K::PrimaryProbe);
            write_c(&mut c.peer, format_args!("{addr}"));
            c.attempt = attempt;
            c
        }
        RelayEvent::PrimaryAnswered { addr } => {
            let mut c = empty(K::PrimaryAnswered);
            write_c(&mut c.peer, format_args!("{addr}"));
            c
        }
        RelayEvent::UpstreamSwitched {
            to, active, reason, ..
        } => {
            let mut c = empty(K::UpstreamSwitched);
            write_c(&mut c.peer, format_args!("{to}"));
            c.active = u32::try_from(active).unwrap_or(u32::MAX);
            if let SwitchReason::Failover { failures } = reason {
                c.attempt = failures;
            }
            detail = Text::Static(reason.as_str());
            c
        }
    };
    Ok(Waiting {
        ev: c,
        id,
        ack,
        detail,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::hl7::AckCode;
    use crate::session::SessionEnd;
    use crate::spool::SpoolError;
    use crate::CloseReason;
    use core::ffi::CStr;
    use core::time::Duration;
    use std::net::SocketAddr;
    use std::path::Path;

    fn peer() -> SocketAddr {
        "127.0.0.1:4242".parse().unwrap()
    }

    /// The bytes behind a pointer and length of a taken event.
    fn bytes<'a>(p: *const u8, len: usize) -> Option<&'a [u8]> {
        // SAFETY: the pointers of an event taken from `RelayEvents::next`,
        // valid until the next `compact` (the tests read them before it).
        (!p.is_null()).then(|| unsafe { core::slice::from_raw_parts(p, len) })
    }

    fn id(ev: &mooring_relay_event) -> Option<&[u8]> {
        bytes(ev.id, ev.id_len)
    }

    fn ack(ev: &mooring_relay_event) -> Option<&[u8]> {
        bytes(ev.ack, ev.ack_len)
    }

    fn detail(ev: &mooring_relay_event) -> Option<&str> {
        bytes(ev.detail, ev.detail_len).map(|b| core::str::from_utf8(b).unwrap())
    }

    fn peer_text(ev: &mooring_relay_event) -> &str {
        // SAFETY: `write_c` NUL-terminates within the array.
        unsafe { CStr::from_ptr(ev.peer.as_ptr()) }
            .to_str()
            .unwrap()
    }

    /// One event through the queue and back out, as C reads it (with the
    /// queue, which owns its bytes).
    fn through(ev: RelayEvent<'_>) -> (RelayEvents, mooring_relay_event) {
        let mut q = RelayEvents::new(4, 1024).unwrap();
        q.record(&ev);
        let ev = q.next().expect("kept");
        (q, ev)
    }

    #[test]
    fn device_events_carry_the_peer_the_id_and_named_reasons() {
        let (_q, ev) = through(RelayEvent::Queued {
            peer: peer(),
            id: b"MSG1",
            seq: 7,
        });
        assert_eq!(ev.kind, mooring_relay_event_kind::Queued);
        assert_eq!(
            (peer_text(&ev), id(&ev), ev.seq),
            ("127.0.0.1:4242", Some(&b"MSG1"[..]), 7)
        );
        assert_eq!((ack(&ev), detail(&ev)), (None, None));

        let (_q, ev) = through(RelayEvent::DeviceMessage {
            peer: peer(),
            bytes: 321,
            id: None,
        });
        assert_eq!((ev.bytes, id(&ev)), (321, None), "no MSH-10: NULL");

        let (_q, ev) = through(RelayEvent::Refused {
            peer: peer(),
            bytes: 5,
            reason: Refusal::NoControlId,
        });
        assert_eq!(ev.refusal, mooring_relay_refusal::NoControlId as u32);
        assert_eq!(detail(&ev), Some("NoControlId"));

        let (_q, ev) = through(RelayEvent::DeviceClosed {
            peer: peer(),
            reason: CloseReason::PeerClosed,
            peer_reason: Some(CloseReason::IdleTimeout),
        });
        assert_eq!(ev.reason, c_reason(CloseReason::PeerClosed));
        assert_eq!(ev.peer_reason, c_reason(CloseReason::IdleTimeout));
        assert_eq!(detail(&ev), Some("PeerClosed"));

        let (_q, ev) = through(RelayEvent::ReplyTimeout {
            peer: peer(),
            id: b"X",
            seq: 3,
            ack: AckCode::Reject,
        });
        assert_eq!((ack(&ev), ev.seq), (Some(&b"AR"[..]), 3));

        let (_q, ev) = through(RelayEvent::Duplicate {
            peer: peer(),
            id: b"D",
            pending: true,
        });
        assert_eq!((ev.pending, id(&ev)), (1, Some(&b"D"[..])));
    }

    #[test]
    fn upstream_events_name_why_and_count_what_was_in_doubt() {
        let (_q, ev) = through(RelayEvent::UpstreamLost {
            reason: LostReason::Session(SessionEnd::Expired { undelivered: 4 }),
            in_doubt: Some((5, 8)),
            resent: 3,
            failed: 1,
        });
        assert_eq!(ev.lost, mooring_relay_lost::Session as u32);
        assert_eq!(ev.session_end, mooring_session_end::Expired as u32);
        assert_eq!(ev.reason, mooring_close_reason::None as u32);
        assert_eq!(detail(&ev), Some("SessionExpired"));
        assert_eq!(
            (ev.in_doubt_first, ev.in_doubt_last, ev.resent, ev.failed),
            (5, 8, 3, 1)
        );

        let (_q, ev) = through(RelayEvent::UpstreamLost {
            reason: LostReason::Link(CloseReason::ResponseTimeout),
            in_doubt: None,
            resent: 0,
            failed: 0,
        });
        assert_eq!(ev.lost, mooring_relay_lost::Link as u32);
        assert_eq!(ev.reason, c_reason(CloseReason::ResponseTimeout));
        assert_eq!(
            (detail(&ev), ev.in_doubt_first),
            (Some("ResponseTimeout"), 0)
        );

        let (_q, ev) = through(RelayEvent::UpstreamLinkLost {
            reason: CloseReason::HeartbeatTimeout,
            unacked: None,
        });
        assert_eq!(ev.unacked, -1, "not known");

        let (_q, ev) = through(RelayEvent::UpstreamReconnecting {
            reason: None,
            attempt: 2,
            delay: Duration::from_millis(1500),
        });
        assert_eq!((ev.attempt, ev.delay_ms, detail(&ev)), (2, 1500, None));

        let (_q, ev) = through(RelayEvent::UpstreamConnected {
            session: Some((true, 9)),
        });
        assert_eq!((ev.session, ev.resumed, ev.replaying), (1, 1, 9));

        let (_q, ev) = through(RelayEvent::Acked {
            id: b"A1",
            seq: 1,
            elapsed: Duration::from_millis(42),
            ack: Some(AckCode::Error),
        });
        assert_eq!((ev.elapsed_ms, ack(&ev)), (42, Some(&b"AE"[..])));

        let (_q, ev) = through(RelayEvent::UnexpectedReply {
            id: Some(b"old"),
            ack: None,
        });
        assert_eq!((id(&ev), ack(&ev)), (Some(&b"old"[..]), None));
    }

    #[test]
    fn failover_events_name_the_upstream_its_position_and_why() {
        let backup: SocketAddr = "127.0.0.1:7001".parse().unwrap();
        let (_q, ev) = through(RelayEvent::UpstreamSwitched {
            from: peer(),
            to: backup,
            active: 1,
            reason: SwitchReason::Failover { failures: 3 },
        });
        assert_eq!(ev.kind, mooring_relay_event_kind::UpstreamSwitched);
        assert_eq!(
            (peer_text(&ev), ev.active, ev.attempt, detail(&ev)),
            ("127.0.0.1:7001", 1, 3, Some("failover"))
        );

        let (_q, ev) = through(RelayEvent::UpstreamSwitched {
            from: backup,
            to: peer(),
            active: 0,
            reason: SwitchReason::PrimaryBack,
        });
        assert_eq!(
            (peer_text(&ev), ev.active, ev.attempt, detail(&ev)),
            ("127.0.0.1:4242", 0, 0, Some("primary_back"))
        );

        let (_q, ev) = through(RelayEvent::PrimaryProbe {
            addr: peer(),
            attempt: 4,
        });
        assert_eq!(
            (ev.kind, peer_text(&ev), ev.attempt),
            (mooring_relay_event_kind::PrimaryProbe, "127.0.0.1:4242", 4)
        );

        let (_q, ev) = through(RelayEvent::PrimaryAnswered { addr: peer() });
        assert_eq!(ev.kind, mooring_relay_event_kind::PrimaryAnswered);

        let (_q, ev) = through(RelayEvent::ReplyOutOfOrder {
            expected: b"M2",
            id: b"M3",
        });
        assert_eq!(
            (ev.kind, id(&ev), detail(&ev)),
            (
                mooring_relay_event_kind::ReplyOutOfOrder,
                Some(&b"M3"[..]),
                Some("M2")
            )
        );

        let (_q, ev) = through(RelayEvent::UpstreamLost {
            reason: LostReason::Failover,
            in_doubt: Some((2, 3)),
            resent: 2,
            failed: 0,
        });
        assert_eq!(
            (ev.lost, detail(&ev)),
            (mooring_relay_lost::Failover as u32, Some("Failover"))
        );
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_events_give_the_side_the_handshake_and_the_named_failure() {
        use crate::tls::{Handshake, TlsError, TlsFailure, TlsVersion};
        let hs = Handshake {
            version: TlsVersion::Tls13,
            suite: "TLS13_AES_256_GCM_SHA384".to_string(),
            peer: None,
        };
        let (_q, ev) = through(RelayEvent::Tls {
            peer: peer(),
            upstream: true,
            handshake: &hs,
        });
        assert_eq!(
            (ev.kind, ev.upstream, ack(&ev), id(&ev), detail(&ev)),
            (
                mooring_relay_event_kind::Tls,
                1,
                Some(&b"TLSv1_3"[..]),
                Some(&b"TLS13_AES_256_GCM_SHA384"[..]),
                None
            )
        );

        let err = TlsError {
            reason: TlsFailure::UnknownCa,
            detail: "invalid peer certificate: UnknownIssuer".to_string(),
        };
        let (_q, ev) = through(RelayEvent::TlsFailed {
            peer: peer(),
            upstream: false,
            error: &err,
        });
        assert_eq!(
            (ev.kind, ev.upstream, ev.reason, detail(&ev)),
            (
                mooring_relay_event_kind::TlsFailed,
                0,
                c_reason(CloseReason::TlsUnknownCa),
                Some("invalid peer certificate: UnknownIssuer")
            )
        );
    }

    #[test]
    fn spool_events_give_the_directory_the_state_and_the_disk_error() {
        let (_q, ev) = through(RelayEvent::SpoolOpened {
            dir: Path::new("/var/spool/mooring"),
            size: 1 << 20,
            recovered: 3,
            corrupt: 1,
        });
        assert_eq!(detail(&ev), Some("/var/spool/mooring"));
        assert_eq!((ev.size, ev.recovered, ev.corrupt), (1 << 20, 3, 1));

        let (_q, ev) = through(RelayEvent::SpoolPressure {
            state: Pressure::DiskError(SpoolError::NoSpace),
            used: 100,
            records: 2,
        });
        assert_eq!(ev.pressure, mooring_spool_pressure::DiskError as u32);
        assert_eq!(detail(&ev), Some(SpoolError::NoSpace.to_string().as_str()));
        assert_eq!((ev.used, ev.records), (100, 2));

        let (_q, ev) = through(RelayEvent::SpoolRefused {
            peer: peer(),
            id: b"S",
            cause: Pressure::Full,
        });
        assert_eq!(ev.pressure, mooring_spool_pressure::Full as u32);
        assert_eq!((detail(&ev), id(&ev)), (Some("full"), Some(&b"S"[..])));
    }

    #[test]
    fn a_full_queue_or_byte_area_drops_and_counts_and_compaction_keeps_the_rest() {
        // Room for 3 events and 8 bytes of text.
        let mut q = RelayEvents::new(3, 8).unwrap();
        let fwd = |id: &'static [u8], seq| RelayEvent::Forwarded {
            id,
            seq,
            attempt: 1,
        };
        q.record(&fwd(b"aaaa", 1));
        q.record(&fwd(b"bbbbb", 2)); // 4 + 5 > 8: dropped
        q.record(&fwd(b"cc", 3));
        q.record(&RelayEvent::UpstreamConnecting { attempt: 1 });
        q.record(&RelayEvent::UpstreamConnecting { attempt: 2 }); // 3 waiting: dropped
        assert_eq!(
            (q.len(), q.counts.dropped, q.counts.tally.forwarded),
            (3, 2, 3)
        );
        let first = q.next().unwrap();
        assert_eq!((first.seq, id(&first)), (1, Some(&b"aaaa"[..])));
        // The next poll frees the taken bytes; the waiting ones move and stay right.
        q.compact();
        q.record(&fwd(b"dddddd", 4));
        let ids: Vec<_> = core::iter::from_fn(|| q.next())
            .map(|e| (e.seq, id(&e).map(<[u8]>::to_vec)))
            .collect();
        assert_eq!(
            ids,
            [
                (3, Some(b"cc".to_vec())),
                (0, None),
                (4, Some(b"dddddd".to_vec()))
            ]
        );
        assert_eq!(q.counts.dropped, 2);
        q.compact();
        assert!(q.area.is_empty(), "nothing waits: the area is empty again");
    }

    #[test]
    fn counters_follow_devices_and_the_upstream() {
        let mut q = RelayEvents::new(1, 0).unwrap();
        q.record(&RelayEvent::DeviceConnected { peer: peer() });
        q.record(&RelayEvent::DeviceConnected { peer: peer() });
        q.record(&RelayEvent::DeviceClosed {
            peer: peer(),
            reason: CloseReason::PeerClosed,
            peer_reason: None,
        });
        q.record(&RelayEvent::UpstreamConnected { session: None });
        q.record(&RelayEvent::QueueFull {
            peer: peer(),
            id: b"",
            queued: 1,
        });
        let c = q.counts;
        assert_eq!(
            (c.devices, c.tally.upstream_up, c.tally.queue_full),
            (1, true, 1)
        );
        q.record(&RelayEvent::UpstreamLost {
            reason: LostReason::NoSessions,
            in_doubt: None,
            resent: 0,
            failed: 0,
        });
        assert!(!q.counts.tally.upstream_up);
        // One event kept, the rest counted as dropped (none allocated for).
        assert_eq!((q.len(), q.counts.dropped), (1, 5));
    }
}

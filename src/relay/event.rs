//! What the relay reports: one [`RelayEvent`] per fact, in the order it
//! happened. The CLI prints each as one `event=...` line; a library user may
//! count, log or ignore them. Borrowed bytes (ids, ACK codes) are wire bytes,
//! valid for the call only, so reporting allocates nothing.

use std::net::SocketAddr;
use std::time::Duration;

use std::path::Path;

use super::spool::Pressure;
use crate::hl7::AckCode;
use crate::ledger::MsgId;
use crate::session::SessionEnd;
use crate::CloseReason;

/// Why a device message was answered MSA|AR without being queued.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Refusal {
    /// The payload is not HL7 (no MSH segment).
    NotHl7,
    /// HL7 without an MSH-10: it could not be deduplicated or matched.
    NoControlId,
}

impl Refusal {
    /// The name in `reason=`.
    pub fn as_str(self) -> &'static str {
        match self {
            Refusal::NotHl7 => "NotHl7",
            Refusal::NoControlId => "NoControlId",
        }
    }
}

/// Why the upstream lost what it had in flight.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LostReason {
    /// The raw upstream link closed.
    Link(CloseReason),
    /// The mooring session ended.
    Session(SessionEnd),
    /// The upstream speaks the mooring protocol but keeps no sessions (e.g.
    /// `mooring listen` started without `--session`): retried with backoff,
    /// it cannot work until the upstream is started with sessions on.
    NoSessions,
    /// Raw, with a window: an ACK named a later message than the oldest
    /// awaited (the receiver does not answer in order): the relay closed the
    /// link, and resends what it had in flight after the reconnect.
    ReplyOutOfOrder,
    /// The relay moved to another upstream (failover, or back to the
    /// primary) while the session it left had messages unacknowledged: they
    /// are resent to the new upstream.
    Failover,
}

/// Why the relay moved to another upstream.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SwitchReason {
    /// The active upstream failed `failures` attempts in a row.
    Failover {
        /// Failed attempts on the upstream left.
        failures: u32,
    },
    /// The primary answered a probe again; the relay returned to it between
    /// messages, with none in flight.
    PrimaryBack,
}

impl SwitchReason {
    /// The name in `reason=`.
    pub fn as_str(self) -> &'static str {
        match self {
            SwitchReason::Failover { .. } => "failover",
            SwitchReason::PrimaryBack => "primary_back",
        }
    }
}

/// One fact the relay reports.
#[derive(Debug)]
pub enum RelayEvent<'a> {
    /// TLS: a link's handshake completed: a device's, or the upstream's.
    #[cfg(feature = "tls")]
    Tls {
        /// The device's or the upstream's address.
        peer: SocketAddr,
        /// True for the upstream link.
        upstream: bool,
        /// Version, suite and the peer's identity.
        handshake: &'a crate::tls::Handshake,
    },
    /// TLS: a link failed for a TLS reason. Its close follows
    /// ([`RelayEvent::DeviceClosed`], or the upstream's lost and reconnecting
    /// events) with the matching `Tls...` reason.
    #[cfg(feature = "tls")]
    TlsFailed {
        /// The device's or the upstream's address.
        peer: SocketAddr,
        /// True for the upstream link.
        upstream: bool,
        /// The named reason and rustls's text.
        error: &'a crate::tls::TlsError,
    },
    /// A device connected.
    DeviceConnected {
        /// The device's address.
        peer: SocketAddr,
    },
    /// A device's message arrived (reported before what is done with it).
    DeviceMessage {
        /// The device's address.
        peer: SocketAddr,
        /// Payload size.
        bytes: usize,
        /// Its MSH-10, when it has one.
        id: Option<&'a [u8]>,
    },
    /// A device message was answered MSA|AR and not queued.
    Refused {
        /// The device's address.
        peer: SocketAddr,
        /// Payload size.
        bytes: usize,
        /// Why.
        reason: Refusal,
    },
    /// A resend of a message the relay already has: not forwarded again.
    Duplicate {
        /// The device's address.
        peer: SocketAddr,
        /// MSH-10.
        id: &'a [u8],
        /// `--ack-after upstream`: the message still awaits the upstream and
        /// its ACK now goes to this device link.
        pending: bool,
    },
    /// The queue is full: the device got MSA|AR.
    QueueFull {
        /// The device's address.
        peer: SocketAddr,
        /// MSH-10.
        id: &'a [u8],
        /// Messages queued.
        queued: usize,
    },
    /// A message was queued for the upstream.
    Queued {
        /// The device's address.
        peer: SocketAddr,
        /// MSH-10.
        id: &'a [u8],
        /// The relay's number for it (from 1).
        seq: MsgId,
    },
    /// `AckAfter::Upstream`: no upstream ACK within the response timeout, the
    /// device got `ack`; the message stays queued.
    ReplyTimeout {
        /// The device's address.
        peer: SocketAddr,
        /// MSH-10.
        id: &'a [u8],
        /// The relay's number.
        seq: MsgId,
        /// The code the device got (AR).
        ack: AckCode,
    },
    /// A device link closed.
    DeviceClosed {
        /// The device's address.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
        /// The reason the peer's CLOSE message claimed.
        peer_reason: Option<CloseReason>,
    },
    /// A device connection was refused by policy.
    Rejected {
        /// Who tried.
        peer: SocketAddr,
        /// Why.
        reason: CloseReason,
    },
    /// A connect attempt (raw link) or a new session starts.
    UpstreamConnecting {
        /// Attempts since the last success.
        attempt: u32,
    },
    /// The upstream is up.
    UpstreamConnected {
        /// Mooring: whether the session resumed, and how many messages it
        /// replays. `None` for a raw link.
        session: Option<(bool, u64)>,
    },
    /// The raw link closed or the session ended: what was in flight is in
    /// doubt and resent, or failed.
    UpstreamLost {
        /// Why.
        reason: LostReason,
        /// First and last seq left in doubt.
        in_doubt: Option<(MsgId, MsgId)>,
        /// In-doubt messages to be resent.
        resent: u64,
        /// In-doubt messages out of retries.
        failed: u64,
    },
    /// Mooring: the session's link dropped (the session resumes by itself).
    UpstreamLinkLost {
        /// Why.
        reason: CloseReason,
        /// Messages handed to the session and not yet acknowledged.
        unacked: Option<u64>,
    },
    /// The next connect attempt (or session) waits `delay`.
    UpstreamReconnecting {
        /// Why the last attempt failed, when known.
        reason: Option<CloseReason>,
        /// The attempt number.
        attempt: u32,
        /// The wait.
        delay: Duration,
    },
    /// A message was written upstream.
    Forwarded {
        /// MSH-10.
        id: &'a [u8],
        /// The relay's number.
        seq: MsgId,
        /// Times written so far.
        attempt: u32,
    },
    /// The upstream acknowledged a message.
    Acked {
        /// MSH-10.
        id: &'a [u8],
        /// The relay's number.
        seq: MsgId,
        /// Since the relay received it.
        elapsed: Duration,
        /// Raw: the upstream's MSA-1. `None` for a session.
        ack: Option<AckCode>,
    },
    /// Raw, with a window: the upstream's ACK named a message written after
    /// the oldest one awaited. The link is closed and every message in flight
    /// is in doubt ([`RelayEvent::UpstreamLost`] with
    /// [`LostReason::ReplyOutOfOrder`]): resent after the reconnect, never
    /// credited twice.
    ReplyOutOfOrder {
        /// MSH-10 of the oldest message awaited.
        expected: &'a [u8],
        /// The ACK's MSA-2.
        id: &'a [u8],
    },
    /// While on a backup: a connect attempt (raw) or a session (mooring) to
    /// the primary starts, to learn whether it answers again.
    PrimaryProbe {
        /// The primary.
        addr: SocketAddr,
        /// Probes since the relay left it.
        attempt: u32,
    },
    /// While on a backup: the primary answered a probe. The relay returns to
    /// it once nothing is in flight ([`RelayEvent::UpstreamSwitched`]).
    PrimaryAnswered {
        /// The primary.
        addr: SocketAddr,
    },
    /// The relay moved to another upstream: messages go there from now on
    /// (in doubt ones first, in order).
    UpstreamSwitched {
        /// The upstream left.
        from: SocketAddr,
        /// The upstream now active.
        to: SocketAddr,
        /// Its position in the list (0: the primary).
        active: usize,
        /// Why.
        reason: SwitchReason,
    },
    /// A raw upstream frame that answers nothing in flight.
    UnexpectedReply {
        /// Its MSA-2.
        id: Option<&'a [u8]>,
        /// Its MSA-1.
        ack: Option<&'a [u8]>,
    },
    /// Mooring: a reply the upstream sent through the session.
    UpstreamReply {
        /// Its MSA-2.
        id: Option<&'a [u8]>,
        /// Its MSA-1.
        ack: Option<&'a [u8]>,
    },
    /// A message ran out of retries.
    Failed {
        /// MSH-10.
        id: &'a [u8],
        /// The relay's number.
        seq: MsgId,
        /// Times written.
        attempts: u32,
        /// Whether the device had AA already (`AckAfter::Queued`): then the
        /// message is lost.
        acked_to_device: bool,
    },
    /// The spool was opened and recovered (reported once, at the first
    /// [`Relay::drive`](super::Relay::drive)).
    SpoolOpened {
        /// Its directory.
        dir: &'a Path,
        /// Its total size on disk.
        size: u64,
        /// Undelivered messages recovered: forwarded before anything new.
        recovered: u64,
        /// Damaged records skipped (never delivered).
        corrupt: u64,
    },
    /// The spool's pressure changed.
    SpoolPressure {
        /// The new state (its cause, for a disk error).
        state: Pressure,
        /// Bytes in use in the spool.
        used: u64,
        /// Undelivered messages in the spool.
        records: usize,
    },
    /// A device's message could not be made durable: the device got MSA|AR.
    /// Its resend is a new message.
    SpoolRefused {
        /// The device's address.
        peer: SocketAddr,
        /// MSH-10.
        id: &'a [u8],
        /// Why: the spool is full, the disk failed, or recovered messages
        /// go first.
        cause: Pressure,
    },
    /// With a spool and a mooring upstream, at the first session after a
    /// start: the session kept in the spool was resumed (exactly once: the
    /// upstream drops what it already had), or a new one was opened (the
    /// stored one was unknown or expired at the upstream, or none was
    /// stored) and up to `possible_duplicates` recovered messages may reach
    /// the upstream application a second time (at least once).
    SpoolSession {
        /// True when the stored session was resumed.
        resumed: bool,
        /// The session's id at the upstream (0: not known yet).
        session: u64,
        /// Recovered messages the upstream may have had already.
        possible_duplicates: u64,
    },
}

/// Wire bytes made safe for a `key=value` line or a log line (an id is thus
/// never split, and never forged into extra keys):
/// printable ASCII other than '=' is kept, every other byte becomes '_'.
pub struct Escaped<'a>(pub &'a [u8]);

impl std::fmt::Display for Escaped<'_> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        use std::fmt::Write;
        for &b in self.0 {
            let c = if b.is_ascii_graphic() && b != b'=' {
                char::from(b)
            } else {
                '_'
            };
            f.write_char(c)?;
        }
        Ok(())
    }
}

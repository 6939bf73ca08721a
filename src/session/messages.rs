//! What a session says to its application and its driver: errors, ends,
//! events, and the protocol messages it asks to have written.

#[cfg(doc)]
use super::{Overflow, Session, REFUSAL_HOLD};
use crate::wire::{self, Msg};

/// Why `send` refused a message. Nothing was queued.
#[non_exhaustive]
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionError {
    /// The replay queue is at its depth or byte limit: backpressure.
    QueueFull,
    /// The message is larger than the whole replay ring.
    TooLarge,
    /// The session has ended.
    Ended,
    /// The payload holds a byte the link's framing cannot carry (MLLP: `0x0B`
    /// or `0x1C`): queued, it would break every resume with the same frame.
    Unframeable,
}

/// How a session ended. Every variant that can lose data says how much.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEnd {
    /// A side could not replay what its peer was missing, or data arrived out of
    /// sequence: `undelivered` messages of ours may not have reached the peer.
    Lost {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
    /// The server no longer had the session (the client stayed away longer than
    /// `reconnect_timeout`).
    Expired {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
    /// The replay queue overflowed under [`Overflow::CloseSession`].
    QueueFull {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
    /// The application closed it.
    Closed,
    /// Server: a new session took its slot while its client was away (the
    /// table was full, or its address was at `max_sessions_per_ip`; see
    /// [`crate::config::ListenConfig::max_sessions_per_ip`]).
    Evicted {
        /// Our messages whose delivery is not confirmed.
        undelivered: u64,
    },
}

/// Sessions ended, one counter per way a session ends ([`SessionEnd`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SessionEnds {
    /// [`SessionEnd::Lost`].
    pub lost: u64,
    /// [`SessionEnd::Expired`].
    pub expired: u64,
    /// [`SessionEnd::QueueFull`].
    pub queue_full: u64,
    /// [`SessionEnd::Closed`].
    pub closed: u64,
    /// [`SessionEnd::Evicted`].
    pub evicted: u64,
}

impl SessionEnds {
    /// Counts one session that ended `how`.
    pub fn count(&mut self, how: SessionEnd) {
        let c = match how {
            SessionEnd::Lost { .. } => &mut self.lost,
            SessionEnd::Expired { .. } => &mut self.expired,
            SessionEnd::QueueFull { .. } => &mut self.queue_full,
            SessionEnd::Closed => &mut self.closed,
            SessionEnd::Evicted { .. } => &mut self.evicted,
        };
        *c += 1;
    }

    /// Each counter with the name of its way of ending (as the CLI prints
    /// it: `Lost`, `Expired`, `QueueFull`, `Closed`, `Evicted`).
    pub fn by_name(&self) -> [(&'static str, u64); 5] {
        [
            ("Lost", self.lost),
            ("Expired", self.expired),
            ("QueueFull", self.queue_full),
            ("Closed", self.closed),
            ("Evicted", self.evicted),
        ]
    }
}

/// What happened to a session, pulled with [`Session::poll_event`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SessionEvent {
    /// A link carries the session: new, or resumed after a lost link.
    Established {
        /// True when an existing session was resumed.
        resumed: bool,
        /// Our messages that will be sent again (the peer had not received them).
        replaying: u64,
    },
    /// The session ended.
    Ended(SessionEnd),
}

/// What an inbound DATA means.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Received {
    /// New, in order: deliver it.
    Deliver,
    /// Already delivered (a replay): drop it.
    Duplicate,
    /// A conflated message: counted, nothing to deliver.
    Skipped,
    /// Out of sequence: the session has ended (see [`Session::poll_event`]).
    Lost,
    /// New and in order, but our replay queue has no room for a reply as large
    /// as it (see [`Session::handle_data_sized`]): not taken, not acknowledged.
    /// The driver stops reading the link; [`REFUSAL_HOLD`] later (see
    /// [`Session::refusal_expired`]) it closes it (`SessionQueueFull`). The peer
    /// resumes, which acknowledges what it received and frees the queue, and
    /// sends the message again. (The peer's ACKs queue behind its DATA, so
    /// holding the link alone would never free room.)
    Refused,
}

/// One outbound protocol message from [`Session::poll_transmit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Transmit<'a> {
    /// Cumulative acknowledgement.
    Ack(u64),
    /// A message that was conflated away (see [`Session::send_keyed`]): the peer
    /// counts the sequence number and delivers nothing.
    Skip(u64),
    /// A message, new or replayed; `payload` borrows the replay queue.
    Data {
        /// Its sequence number.
        seq: u64,
        /// The application payload.
        payload: &'a [u8],
    },
}

impl<'a> Transmit<'a> {
    /// What to report to [`Session::handle_transmitted`] once this is queued.
    pub fn sent(&self) -> Sent {
        match *self {
            Transmit::Ack(seq) => Sent::Ack(seq),
            Transmit::Skip(seq) => Sent::Skip(seq),
            Transmit::Data { seq, .. } => Sent::Data(seq),
        }
    }

    /// Its wire bytes: a head written into `scratch` (the whole of an ACK or
    /// SKIP, a DATA's header) and the payload that follows it (empty but for
    /// DATA). The driver frames the two as one message.
    pub fn encode<'s>(&self, scratch: &'s mut [u8; wire::MAX_CONTROL]) -> (&'s [u8], &'a [u8]) {
        let (n, payload) = match *self {
            Transmit::Data { seq, payload } => {
                let h = wire::data_header(seq);
                scratch[..h.len()].copy_from_slice(&h);
                (h.len(), payload)
            }
            // An ACK or SKIP always fits a control message: never 0 in practice.
            Transmit::Ack(seq) => (wire::encode(&Msg::Ack(seq), scratch).unwrap_or(0), &[][..]),
            Transmit::Skip(seq) => (wire::encode(&Msg::Skip(seq), scratch).unwrap_or(0), &[][..]),
        };
        (&scratch[..n], payload)
    }
}

/// A [`Transmit`] that was queued, without its payload.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Sent {
    /// An ACK for this sequence number.
    Ack(u64),
    /// The DATA with this sequence number.
    Data(u64),
    /// The SKIP with this sequence number.
    Skip(u64),
}

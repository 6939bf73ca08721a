//! Counters an application keeps from what it sees: the ACK codes it sends
//! ([`AckCounts`]) and a relay's events ([`RelayTally`]). Plain adds, off the
//! node's per-message path.

use crate::hl7::AckCode;
use crate::relay::{Refusal, RelayEvent, SwitchReason};

/// Replies by HL7 ACK code (MSA-1).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct AckCounts {
    /// `AA`.
    pub accept: u64,
    /// `AE`.
    pub error: u64,
    /// `AR`.
    pub reject: u64,
}

impl AckCounts {
    /// Counts one reply with `code`.
    pub fn count(&mut self, code: AckCode) {
        let c = match code {
            AckCode::Accept => &mut self.accept,
            AckCode::Error => &mut self.error,
            AckCode::Reject => &mut self.reject,
        };
        *c += 1;
    }

    /// Each count with its code (`AA`, `AE`, `AR`).
    pub fn by_code(&self) -> [(&'static str, u64); 3] {
        [
            (AckCode::Accept.as_str(), self.accept),
            (AckCode::Error.as_str(), self.error),
            (AckCode::Reject.as_str(), self.reject),
        ]
    }
}

/// A relay's counters, kept from its [`RelayEvent`]s (feed every event to
/// [`RelayTally::observe`]).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct RelayTally {
    /// The upstream is connected now.
    pub upstream_up: bool,
    /// Times the upstream came up.
    pub upstream_connects: u64,
    /// Times the upstream link or session was lost.
    pub upstream_losses: u64,
    /// Reconnect attempts scheduled (after a loss or a failed attempt).
    pub upstream_reconnects: u64,
    /// Device messages queued for the upstream.
    pub queued: u64,
    /// Writes upstream (a resend counts again).
    pub forwarded: u64,
    /// Upstream ACKs by code (a reply without a readable code is not counted here).
    pub acks: AckCounts,
    /// Messages that ran out of retries.
    pub failed: u64,
    /// Device messages refused as not HL7.
    pub refused_not_hl7: u64,
    /// Device messages refused for want of an MSH-10.
    pub refused_no_control_id: u64,
    /// Resends of messages already held: not forwarded again.
    pub duplicates: u64,
    /// Device messages refused because the queue was full.
    pub queue_full: u64,
    /// Device messages the spool refused (full or failing disk).
    pub spool_refused: u64,
    /// Upstream replies that matched nothing in flight.
    pub unexpected_replies: u64,
    /// Moves to the next upstream after failed attempts
    /// ([`SwitchReason::Failover`]).
    pub upstream_switches_failover: u64,
    /// Returns to the primary once it answered again
    /// ([`SwitchReason::PrimaryBack`]).
    pub upstream_switches_primary_back: u64,
}

impl RelayTally {
    /// Counts one event.
    pub fn observe(&mut self, ev: &RelayEvent<'_>) {
        match *ev {
            RelayEvent::UpstreamConnected { .. } => {
                self.upstream_up = true;
                self.upstream_connects += 1;
            }
            RelayEvent::UpstreamLost { .. } | RelayEvent::UpstreamLinkLost { .. } => {
                self.upstream_up = false;
                self.upstream_losses += 1;
            }
            RelayEvent::UpstreamReconnecting { .. } => {
                self.upstream_up = false;
                self.upstream_reconnects += 1;
            }
            RelayEvent::UpstreamConnecting { .. } => self.upstream_up = false,
            RelayEvent::Queued { .. } => self.queued += 1,
            RelayEvent::Forwarded { .. } => self.forwarded += 1,
            RelayEvent::Acked {
                ack: Some(code), ..
            } => self.acks.count(code),
            RelayEvent::Failed { .. } => self.failed += 1,
            RelayEvent::Refused { reason, .. } => match reason {
                Refusal::NotHl7 => self.refused_not_hl7 += 1,
                Refusal::NoControlId => self.refused_no_control_id += 1,
            },
            RelayEvent::Duplicate { .. } => self.duplicates += 1,
            RelayEvent::QueueFull { .. } => self.queue_full += 1,
            RelayEvent::SpoolRefused { .. } => self.spool_refused += 1,
            RelayEvent::UnexpectedReply { .. } => self.unexpected_replies += 1,
            RelayEvent::UpstreamSwitched { reason, .. } => match reason {
                SwitchReason::Failover { .. } => self.upstream_switches_failover += 1,
                SwitchReason::PrimaryBack => self.upstream_switches_primary_back += 1,
            },
            _ => {}
        }
    }
}

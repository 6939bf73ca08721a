//! The link slots: what the node keeps per link ([`Slot`]), the ids that
//! name them ([`LinkId`]), and how a slot is taken and given back (`occupy`,
//! `close_slot`).

use super::*;

pub(super) const PENDING_CONNECTED: u8 = 1;

pub(super) const PENDING_WRITABLE: u8 = 2;

/// TLS: the handshake completed, not yet reported.
pub(super) const PENDING_TLS: u8 = 4;

/// Identifies a link; stale ids (of a closed link whose slot was reused) are refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct LinkId {
    pub(super) slot: u32,
    pub(super) gen: u32,
}

impl LinkId {
    /// The slot index (stable while the link lives; reused after it closes).
    pub fn slot(self) -> u32 {
        self.slot
    }
}

pub(super) struct Slot {
    pub(super) gen: u32,
    pub(super) used: bool,
    pub(super) sock: Option<Stream>,
    pub(super) peer: SocketAddr,
    pub(super) listener: Option<u32>,
    pub(super) link: Link,
    pub(super) rx: Buf,
    pub(super) tx: Buf,
    pub(super) scan: usize,
    /// Readiness seen and not yet drained to `WouldBlock`.
    pub(super) readable: bool,
    /// The peer's FIN (or an error) was reported: read until EOF, no shortcut.
    pub(super) read_closed: bool,
    pub(super) pending: u8,
    pub(super) in_ready: bool,
    pub(super) in_flush: bool,
    /// Listed in `Node::resched`: its deadline changed since the heap was updated.
    pub(super) in_resched: bool,
    pub(super) in_waiting: bool,
    /// Listed in `Node::warm`: an emptied transmit block may stay with it.
    pub(super) in_warm: bool,
    pub(super) want_writable: bool,
    /// Server link whose inbound frames wait for its transmit queue to drain
    /// (see [`Node::holds_back`]).
    pub(super) held: bool,
    /// The session this link carries, if any.
    pub(super) session: Option<u32>,
    /// Size of its last frame, framing included: one of at most an eighth of the
    /// burst block lets the next read use it; one that did not fit a working
    /// block sends the next read into a large block.
    pub(super) last_frame: u32,
    /// More arrives at once than a working block holds (a read filled the room
    /// offered, or the last round of reads brought more than a working block):
    /// its next read may use the burst block.
    pub(super) hot: bool,
    /// Bytes read since the socket was last found empty.
    pub(super) round_bytes: u32,
    /// TLS: the link's TLS state (boxed: a plain link pays one pointer).
    #[cfg(feature = "tls")]
    pub(super) tls: Option<Box<super::tls::TlsSlot>>,
}

impl Slot {
    /// The id of this slot's current link (slot `i`).
    #[inline]
    pub(super) fn id(&self, i: u32) -> LinkId {
        LinkId {
            slot: i,
            gen: self.gen,
        }
    }
}

pub(super) struct Listener {
    pub(super) sock: ListenSock,
    pub(super) cfg: ListenConfig,
    pub(super) addr: SocketAddr,
    pub(super) active: usize,
    /// With `max_connections = 1`: the slot serving it (for stale recovery).
    pub(super) current: Option<u32>,
    /// Links per peer address, with `max_connections_per_ip`.
    pub(super) per_ip: Option<per_ip::PeerCounts>,
    /// TLS: the checked server settings every link of the listener shares.
    #[cfg(feature = "tls")]
    pub(super) tls: Option<crate::tls::ServerTls>,
}

impl Node {
    pub(super) fn occupy(
        &mut self,
        slot: u32,
        sock: Stream,
        peer: SocketAddr,
        listener: Option<u32>,
        link: Link,
    ) -> LinkId {
        let s = &mut self.slots[slot as usize];
        s.gen = s.gen.wrapping_add(1);
        s.used = true;
        s.sock = Some(sock);
        s.peer = peer;
        s.listener = listener;
        s.link = link;
        s.rx = Buf::default();
        s.tx = Buf::default();
        s.scan = 0;
        s.readable = false;
        s.read_closed = false;
        s.pending = 0;
        s.want_writable = false;
        s.held = false;
        s.session = None;
        s.last_frame = 0;
        s.hot = false;
        s.round_bytes = 0;
        #[cfg(feature = "tls")]
        {
            s.tls = None;
        }
        s.id(slot)
    }

    pub(super) fn slot_of(&self, id: LinkId) -> Option<u32> {
        let s = self.slots.get(id.slot as usize)?;
        (s.used && s.gen == id.gen).then_some(id.slot)
    }

    pub(super) fn close_slot(&mut self, i: u32, reason: CloseReason) {
        let s = &mut self.slots[i as usize];
        if !s.used
            || !matches!(
                s.link.state(),
                crate::LinkState::Open | crate::LinkState::Connecting
            )
        {
            return;
        }
        log::debug!("link to {} closed: {reason}", s.peer);
        let mut b = [0u8; FAREWELL_SCRATCH];
        if let Some(n) = s.link.farewell(reason, &mut b) {
            self.farewell(i, &b[..n]);
        }
        #[cfg(feature = "tls")]
        let tls_error = self.tls_closing(i, reason);
        let s = &mut self.slots[i as usize];
        let unsent = s.tx.len() as u64;
        s.link.close(reason);
        self.stats.count_close(reason, &s.link.stats());
        if let Some(mut sock) = s.sock.take() {
            sock.deregister(self.poll.registry());
        }
        self.bufs.release(&mut s.tx);
        self.bufs.release(&mut s.rx);
        s.pending &= !(PENDING_WRITABLE | PENDING_TLS);
        // The socket is closed: a listener out of descriptors may accept again.
        self.accept.descriptor_freed();
        if let Some(l) = s.listener {
            if let Some(lis) = self.listeners.get_mut(l as usize) {
                lis.active = lis.active.saturating_sub(1);
                if let Some(t) = lis.per_ip.as_mut() {
                    t.remove(s.peer.ip());
                }
                if lis.current == Some(i) {
                    lis.current = None;
                }
            }
        }
        self.timers.set(i, None);
        if let Some(idx) = self.slots[i as usize].session.take() {
            let now = self.now;
            // What the peer said about the session (e.g. SessionExpired) decides
            // what becomes of it.
            let claim = self.slots[i as usize].link.peer_reason().unwrap_or(reason);
            self.session_link_lost(idx, claim, now);
        }
        if self.redial_lost(i, reason, unsent) {
            self.wake_waiting();
            return; // the slot keeps the link's id until it redials
        }
        let peer_reason = self.slots[i as usize].link.peer_reason();
        self.report_closed(
            i,
            reason,
            peer_reason,
            #[cfg(feature = "tls")]
            tls_error,
        );
        self.wake_waiting();
    }

    /// Queues slot `i`'s `Event::Closed` and frees the slot; with the report
    /// queue full, the slot stays taken and reports through `step` instead.
    pub(super) fn report_closed(
        &mut self,
        i: u32,
        reason: CloseReason,
        peer_reason: Option<CloseReason>,
        #[cfg(feature = "tls")] tls: Option<crate::tls::TlsError>,
    ) {
        let s = &mut self.slots[i as usize];
        if self.closed.len() < self.closed_cap {
            self.closed.push_back(ClosedReport {
                link: s.id(i),
                peer: s.peer,
                reason,
                stats: s.link.stats(),
                peer_reason,
                #[cfg(feature = "tls")]
                tls,
            });
            s.used = false;
            s.pending = 0;
            self.free.push(i);
        } else {
            self.mark_ready(i); // reported through the slot, which stays taken until then
        }
    }

    /// Mooring protocol: tells the peer why, with one best-effort write of CLOSE
    /// (after whatever is still queued); the peer logs it as its `peer_reason`.
    pub(super) fn farewell(&mut self, i: u32, close: &[u8]) {
        if self.encode_into_tx(i, &[], Body::Bytes(close)).is_ok() {
            let s = &mut self.slots[i as usize];
            #[cfg(feature = "tls")]
            if s.tls.is_some() {
                return; // encrypted and written as the TLS link closes
            }
            if let Some(sock) = s.sock.as_mut() {
                let _ = sock.write(self.bufs.data(&s.tx));
            }
        }
    }
}

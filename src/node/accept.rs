//! Accepting connections: admission (allow-list, per-address limit,
//! `max_connections`, stale recovery) and keeping a listener served when
//! `accept` fails.
//!
//! Listeners are edge-triggered: once `accept` fails (out of descriptors,
//! EMFILE/ENFILE, or kernel memory, ENOBUFS/ENOMEM), no new readiness comes for
//! the connections already queued, and a listener left alone would stay deaf
//! with a full queue. So a listener whose `accept` failed is retried every
//! [`ACCEPT_RETRY`] while the failure lasts, and at once (at the next poll)
//! when the node closes a link and so frees a descriptor. Each retry is one
//! `accept` call per listener: no spinning. Failures are counted
//! ([`NodeStats::accept_errors`](super::NodeStats), `accept_retries`) and
//! logged at most once per cause per [`ACCEPT_WARN_EVERY`], with a count.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use mio::{Interest, Token};

use super::{interrupted, link_config, would_block, Node, Rejection, Stream, PENDING_CONNECTED};
use crate::config::ServerPolicy;
use crate::error::CloseReason;
use crate::link::{admit, Admission, Link, LinkConfig};
use crate::ratelimit::RateLimit;
use crate::time::Instant;

/// How often a listener whose `accept` failed is tried again while the failure
/// lasts (besides at once when a link closes).
pub const ACCEPT_RETRY: Duration = Duration::from_millis(100);

/// At most one warning per cause of accept failure in this interval; the next
/// one says how many were not logged.
pub const ACCEPT_WARN_EVERY: Duration = Duration::from_secs(10);

/// Why `accept` failed, for rate-limited warnings.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Cause {
    /// EMFILE: the process's descriptor limit (`ulimit -n`).
    ProcessDescriptors,
    /// ENFILE: the system's descriptor limit.
    SystemDescriptors,
    /// ENOBUFS / ENOMEM: kernel memory.
    Memory,
    /// Anything else: retried the same way, so the listener is never left.
    Other,
}

const CAUSES: usize = 4;

// Error numbers (no libc dependency): the same on Linux, the BSDs and macOS,
// except ENOBUFS.
const ENOMEM: i32 = 12;
const ENFILE: i32 = 23;
const EMFILE: i32 = 24;
#[cfg(any(target_os = "linux", target_os = "android"))]
const ENOBUFS: i32 = 105;
#[cfg(not(any(target_os = "linux", target_os = "android")))]
const ENOBUFS: i32 = 55;

impl Cause {
    fn of(e: &io::Error) -> Cause {
        match e.raw_os_error() {
            Some(EMFILE) => Cause::ProcessDescriptors,
            Some(ENFILE) => Cause::SystemDescriptors,
            Some(ENOBUFS | ENOMEM) => Cause::Memory,
            _ if e.kind() == io::ErrorKind::OutOfMemory => Cause::Memory,
            _ => Cause::Other,
        }
    }
}

/// Listeners waiting to retry `accept`, and the warning limiter.
pub(super) struct AcceptRetry {
    /// Per listener: when to call `accept` again (`None`: not backing off).
    at: [Option<Instant>; super::MAX_LISTENERS],
    /// Some entry of `at` may be set (false: none is, nothing to retry).
    backing_off: bool,
    warn: [RateLimit; CAUSES],
}

impl AcceptRetry {
    pub(super) const fn new() -> Self {
        AcceptRetry {
            at: [None; super::MAX_LISTENERS],
            backing_off: false,
            warn: [RateLimit::new(ACCEPT_WARN_EVERY); CAUSES],
        }
    }

    /// The earliest retry due, for the node's deadline.
    pub(super) fn next(&self) -> Option<Instant> {
        // Read on every poll that waits: the common case is one check.
        if !self.backing_off {
            return None;
        }
        self.at.iter().flatten().min().copied()
    }

    /// Listener `l` calls `accept` again at `at`.
    fn back_off(&mut self, l: usize, at: Instant) {
        self.at[l] = Some(at);
        self.backing_off = true;
    }

    /// A descriptor came free: every backing-off listener is due now.
    pub(super) fn descriptor_freed(&mut self) {
        for at in self.at.iter_mut().flatten() {
            *at = Instant::ZERO;
        }
    }

    /// `Some(not logged since the last warning)` when a warning for `cause` may
    /// be logged now.
    fn may_warn(&mut self, cause: Cause, now: Instant) -> Option<u64> {
        self.warn[cause as usize].admit(now)
    }
}

impl Node {
    /// Tries again the listeners whose retry is due.
    #[inline]
    pub(super) fn retry_accepts(&mut self, now: Instant) {
        // Called twice per poll: the common case (no listener backing off)
        // costs one check, not a call and a pass over the listeners.
        if self.accept.backing_off {
            self.retry_due_accepts(now);
        }
    }

    #[cold]
    fn retry_due_accepts(&mut self, now: Instant) {
        for l in 0..self.listeners.len() {
            if self.accept.at[l].is_some_and(|at| at <= now) {
                self.stats.accept_retries += 1;
                self.accept_all(l as u32, now);
            }
        }
        self.accept.backing_off = self.accept.at.iter().any(Option::is_some);
    }

    /// Accepts until the listener's queue is empty or `accept` fails.
    pub(super) fn accept_all(&mut self, l: u32, now: Instant) {
        self.accept.at[l as usize] = None;
        loop {
            let Some(lis) = self.listeners.get(l as usize) else {
                return;
            };
            match lis.sock.accept() {
                Ok((sock, peer)) => self.admit(l, sock, peer, now),
                Err(e) if would_block(&e) => return,
                Err(e) if interrupted(&e) => continue,
                // That connection died in the queue; the next may be fine.
                Err(e) if e.kind() == io::ErrorKind::ConnectionAborted => continue,
                Err(e) => {
                    // The connection stays queued, and no new readiness will
                    // come for it: retry on a timer.
                    let addr = lis.addr;
                    self.stats.accept_errors += 1;
                    self.accept.back_off(l as usize, now + ACCEPT_RETRY);
                    let cause = Cause::of(&e);
                    if let Some(more) = self.accept.may_warn(cause, now) {
                        log::warn!(
                            "accept on {addr} failed: {e}; retrying every {} ms and when a link closes ({more} more since the last warning)",
                            ACCEPT_RETRY.as_millis()
                        );
                    }
                    return;
                }
            }
        }
    }

    /// Serves or refuses a connection by the listener's policy.
    fn admit(&mut self, l: u32, mut sock: Stream, peer: SocketAddr, now: Instant) {
        let lis = &self.listeners[l as usize];
        let allowed = lis.cfg.allow.allows(peer.ip());
        let stale = match (lis.cfg.stale_recovery, lis.current) {
            (Some(after), Some(cur)) => Some((self.slots[cur as usize].link.idle_for(now), after)),
            _ => None,
        };
        let mut decision = admit(allowed, lis.active, lis.cfg.max_connections, stale);
        if decision != Admission::Reject(CloseReason::NotAllowed) && self.peer_is_full(l, peer) {
            decision = Admission::Reject(CloseReason::TooManyConnectionsFromPeer);
        }
        if decision == Admission::ReplaceStale {
            if let Some(cur) = lis.current {
                log::info!(
                    "stale link from {} replaced by {peer}",
                    self.slots[cur as usize].peer
                );
                self.stats.stale_replaced += 1;
                self.close_slot(cur, CloseReason::StaleReplaced);
            }
            decision = Admission::Accept;
        }
        let slot = self.free.last().copied();
        #[cfg(feature = "tls")]
        let mut tls = None;
        #[cfg(feature = "tls")]
        if decision == Admission::Accept && slot.is_some() {
            match self.tls_for_accept(l) {
                Ok(t) => tls = t,
                Err(r) => decision = Admission::Reject(r),
            }
        }
        let reason = match (decision, slot) {
            (Admission::Accept, Some(slot)) => {
                match sock.register(
                    self.poll.registry(),
                    self.sim.as_ref(),
                    Token(slot as usize),
                    Interest::READABLE | Interest::WRITABLE,
                ) {
                    Ok(()) => {
                        self.free.pop();
                        sock.set_nodelay();
                        let lis = &mut self.listeners[l as usize];
                        if let Err(e) = sock.apply_options(&lis.cfg.liveness) {
                            log::warn!("socket options for {peer}: {e}");
                        }
                        lis.active += 1;
                        if let Some(t) = lis.per_ip.as_mut() {
                            t.add(peer.ip());
                        }
                        if lis.cfg.max_connections == 1 {
                            lis.current = Some(slot);
                        }
                        let lc = LinkConfig {
                            close_after_reply: lis.cfg.policy == ServerPolicy::CloseAfterReply,
                            ..link_config(
                                &self.cfg,
                                lis.cfg.idle_timeout,
                                &lis.cfg.liveness,
                                Duration::ZERO,
                            )
                        };
                        self.occupy(slot, sock, peer, Some(l), Link::accepted(lc, now));
                        #[cfg(feature = "tls")]
                        {
                            self.slots[slot as usize].tls = tls;
                            self.tls_opened(slot, now);
                        }
                        self.stats.accepted += 1;
                        let s = &mut self.slots[slot as usize];
                        if s.link.is_established() {
                            s.pending |= PENDING_CONNECTED; // raw; mooring: after HELLO
                        }
                        s.readable = true;
                        self.mark_ready(slot);
                        self.sync(slot, now);
                        return;
                    }
                    Err(e) => {
                        log::warn!("register of {peer} failed: {e}");
                        CloseReason::Io
                    }
                }
            }
            (Admission::Accept, None) => CloseReason::TooManyConnections,
            (Admission::Reject(r), _) => r,
            (Admission::ReplaceStale, _) => CloseReason::TooManyConnections,
        };
        match reason {
            CloseReason::NotAllowed => self.stats.rejected_not_allowed += 1,
            CloseReason::TooManyConnectionsFromPeer => self.stats.rejected_from_peer += 1,
            _ => self.stats.rejected_too_many += 1,
        }
        log::debug!("refused {peer}: {reason}");
        drop(sock);
        if self
            .rejected
            .push_back(Rejection {
                listener: l,
                peer,
                reason,
            })
            .is_err()
        {
            self.stats.unreported_rejections += 1;
        }
    }

    /// True when `peer`'s address holds the listener's `max_connections_per_ip`
    /// links already (a stale link of its own about to be replaced not counted).
    fn peer_is_full(&self, l: u32, peer: SocketAddr) -> bool {
        let lis = &self.listeners[l as usize];
        let (Some(limit), Some(t)) = (lis.cfg.max_connections_per_ip, lis.per_ip.as_ref()) else {
            return false;
        };
        let mut held = t.count(peer.ip()) as usize;
        if let Some(cur) = lis.current {
            let replaced = &self.slots[cur as usize].peer;
            if lis.cfg.stale_recovery.is_some()
                && replaced.ip().to_canonical() == peer.ip().to_canonical()
            {
                held = held.saturating_sub(1);
            }
        }
        held >= limit
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(ms: u64) -> Instant {
        Instant::from_millis(ms)
    }

    #[test]
    fn one_warning_per_cause_per_interval_then_the_count() {
        let mut r = AcceptRetry::new();
        assert_eq!(r.may_warn(Cause::ProcessDescriptors, t(0)), Some(0));
        assert_eq!(r.may_warn(Cause::ProcessDescriptors, t(100)), None);
        assert_eq!(r.may_warn(Cause::ProcessDescriptors, t(200)), None);
        // Another cause has its own allowance.
        assert_eq!(r.may_warn(Cause::Memory, t(300)), Some(0));
        let later = t(ACCEPT_WARN_EVERY.as_millis() as u64);
        assert_eq!(r.may_warn(Cause::ProcessDescriptors, later), Some(2));
    }

    #[test]
    fn a_freed_descriptor_makes_every_waiting_listener_due_at_once() {
        let mut r = AcceptRetry::new();
        assert_eq!(r.next(), None);
        r.back_off(1, t(500));
        r.back_off(3, t(400));
        assert_eq!(r.next(), Some(t(400)));
        r.descriptor_freed();
        assert_eq!(r.next(), Some(Instant::ZERO));
        assert_eq!(r.at[0], None, "a listener not backing off stays so");
    }

    #[test]
    fn descriptor_and_memory_errors_are_named() {
        let c = |n| Cause::of(&io::Error::from_raw_os_error(n));
        assert_eq!(c(EMFILE), Cause::ProcessDescriptors);
        assert_eq!(c(ENFILE), Cause::SystemDescriptors);
        assert_eq!(c(ENOBUFS), Cause::Memory);
        assert_eq!(c(ENOMEM), Cause::Memory);
        assert_eq!(c(22), Cause::Other);
    }
}

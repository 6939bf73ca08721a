//! Upstream failover: the relay forwards to the first upstream of its list
//! ([`RelayConfig::upstream`], then [`RelayConfig::backup_upstreams`]) that
//! answers. After [`RelayConfig::failover_after`] failed attempts in a row on
//! the active one it moves to the next (after the last: the primary again).
//! While on a backup it probes the primary with the relay's backoff (raw: a
//! connect; mooring: a session), and once the primary answers it returns to
//! it between messages: it stops writing to the backup, waits until nothing
//! is in flight there, then adopts the probe's link (or session). Order and
//! delivery hold across a switch: messages in doubt are resent first on the
//! new upstream (raw receivers deduplicate by MSH-10).
//!
//! [`Failover`] is the pure bookkeeping (no node, no clock); the `impl Relay`
//! below applies it to the node.
//!
//! [`RelayConfig::upstream`]: super::RelayConfig::upstream
//! [`RelayConfig::backup_upstreams`]: super::RelayConfig::backup_upstreams
//! [`RelayConfig::failover_after`]: super::RelayConfig::failover_after

use std::net::SocketAddr;

use super::upstream::{RawLink, Upstream};
use super::{LostReason, Relay, RelayConfig, RelayEvent, SwitchReason};
use crate::session::Redial;
use crate::time::Instant;
use crate::{LinkId, Node, SessionId};

/// The probe of the primary while the relay is on a backup.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Probe {
    /// On the primary: nothing to probe.
    Off,
    /// The next probe starts when [`Failover::redial`] is due.
    Waiting,
    /// A raw connect to the primary is in progress.
    Dialing(LinkId),
    /// A session to the primary is being opened (it retries by itself).
    Opening(SessionId),
    /// The primary accepted this link: adopt it once nothing is in flight.
    LinkUp(LinkId),
    /// The primary's session is established: adopt it likewise.
    SessionUp(SessionId),
}

/// Which upstream is active, failed attempts on it, and the probe.
#[derive(Debug)]
pub(super) struct Failover {
    /// The primary first, then the backups (fixed at start).
    addrs: Vec<SocketAddr>,
    active: usize,
    after: u32,
    /// Failed attempts in a row on the active upstream.
    failures: u32,
    /// The active raw link credited an ACK.
    acked_on_link: bool,
    pub(super) probe: Probe,
    /// When the next probe starts, and its number: probes since the relay
    /// left the primary (never gives up).
    redial: Redial,
    /// Mooring: the active session failed often enough; it is ended and the
    /// next upstream opened at the next drive (that needs the node).
    pub(super) switch_due: bool,
}

impl Failover {
    /// On the primary of `cfg`.
    pub(super) fn new(cfg: &RelayConfig) -> Self {
        Failover {
            addrs: cfg.upstreams().collect(),
            active: 0,
            after: cfg.failover_after.max(1),
            failures: 0,
            acked_on_link: false,
            probe: Probe::Off,
            redial: Redial::new(cfg.backoff),
            switch_due: false,
        }
    }

    /// The upstream messages go to.
    pub(super) fn active_addr(&self) -> SocketAddr {
        self.addrs[self.active]
    }

    /// Its position in the list (0: the primary).
    pub(super) fn active(&self) -> usize {
        self.active
    }

    /// The primary.
    pub(super) fn primary(&self) -> SocketAddr {
        self.addrs[0]
    }

    /// The primary answered a probe: write nothing new to the backup, so that
    /// nothing is in flight when the relay returns.
    pub(super) fn holding(&self) -> bool {
        matches!(self.probe, Probe::LinkUp(_) | Probe::SessionUp(_))
    }

    /// When the relay must run for a probe or a due switch.
    pub(super) fn deadline(&self) -> Option<Instant> {
        if self.switch_due {
            return Some(Instant::ZERO);
        }
        match self.probe {
            Probe::Waiting => self.redial.poll_timeout(),
            _ => None,
        }
    }

    /// A link to the active upstream is up: nothing acknowledged on it yet.
    pub(super) fn link_up(&mut self) {
        self.acked_on_link = false;
    }

    /// The active upstream acknowledged a message: it works.
    pub(super) fn acked(&mut self) {
        self.acked_on_link = true;
        self.failures = 0;
    }

    /// A raw link to the active upstream was lost: a failed attempt when it
    /// left messages in doubt without acknowledging any.
    pub(super) fn link_lost_failed(&self, in_doubt: bool) -> bool {
        in_doubt && !self.acked_on_link
    }

    /// An attempt on the active upstream failed (`true`) or ended well
    /// (`false`). Returns the switch to make, `(from, to, failures)`, when
    /// the active upstream has failed often enough and there is another.
    pub(super) fn attempt(&mut self, failed: bool) -> Option<(SocketAddr, SocketAddr, u32)> {
        if !failed {
            self.failures = 0;
            return None;
        }
        self.failures = self.failures.saturating_add(1);
        if self.addrs.len() < 2 || self.failures < self.after {
            return None;
        }
        let failures = std::mem::take(&mut self.failures);
        let from = self.active_addr();
        self.active = (self.active + 1) % self.addrs.len();
        Some((from, self.active_addr(), failures))
    }

    /// Back on the primary: no probe, a clean count.
    pub(super) fn on_primary(&mut self) -> SocketAddr {
        let from = self.active_addr();
        self.active = 0;
        self.failures = 0;
        self.probe = Probe::Off;
        self.redial.reset();
        from
    }
}

/// The switch event for moving `from` -> `to` at position `active`.
fn switched(
    from: SocketAddr,
    to: SocketAddr,
    active: usize,
    reason: SwitchReason,
) -> RelayEvent<'static> {
    RelayEvent::UpstreamSwitched {
        from,
        to,
        active,
        reason,
    }
}

impl Relay {
    /// Schedules the next probe of the primary after the backoff delay.
    fn schedule_probe(&mut self, now: Instant) {
        let f = &mut self.failover;
        if f.active == 0 {
            f.probe = Probe::Off;
            return;
        }
        f.redial.schedule_or_max(now, self.rng.next_u64());
        f.probe = Probe::Waiting;
    }

    /// Counts an attempt on the active upstream. On a switch: reports it,
    /// starts probing the primary (when a backup is now active) and returns
    /// true; the caller dials the new upstream at once.
    pub(super) fn count_attempt(
        &mut self,
        failed: bool,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) -> bool {
        let Some((from, to, failures)) = self.failover.attempt(failed) else {
            return false;
        };
        let active = self.failover.active();
        out(switched(
            from,
            to,
            active,
            SwitchReason::Failover { failures },
        ));
        // A probe in progress goes on (on the primary again, it is adopted);
        // one only waiting is not needed on the primary.
        match self.failover.probe {
            Probe::Off if active != 0 => {
                self.failover.redial.reset();
                self.schedule_probe(now);
            }
            Probe::Waiting if active == 0 => {
                self.failover.probe = Probe::Off;
                self.failover.redial.reset();
            }
            _ => {}
        }
        true
    }

    /// Starts a probe of the primary when one is due.
    pub(super) fn drive_probe(
        &mut self,
        node: &mut Node,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        if self.failover.probe != Probe::Waiting || !self.failover.redial.handle_timeout(now) {
            return;
        }
        let primary = self.failover.primary();
        // Counted when it was scheduled.
        out(RelayEvent::PrimaryProbe {
            addr: primary,
            attempt: self.failover.redial.attempt(),
        });
        let started = if self.cfg.mooring() {
            node.open_session(primary, &self.connect)
                .map(Probe::Opening)
        } else {
            node.connect(primary, &self.connect).map(Probe::Dialing)
        };
        match started {
            Ok(p) => self.failover.probe = p,
            Err(e) => {
                log::debug!("probe of {primary}: {e}");
                self.schedule_probe(now);
            }
        }
    }

    /// A raw link connected: true when it is the probe's (the primary answers).
    pub(super) fn probe_connected(
        &mut self,
        link: LinkId,
        out: &mut dyn FnMut(RelayEvent),
    ) -> bool {
        if self.failover.probe != Probe::Dialing(link) {
            return false;
        }
        self.failover.probe = Probe::LinkUp(link);
        out(RelayEvent::PrimaryAnswered {
            addr: self.failover.primary(),
        });
        true
    }

    /// A raw link closed: true when it was the probe's (probed again later).
    pub(super) fn probe_closed(&mut self, link: LinkId, now: Instant) -> bool {
        if !matches!(self.failover.probe, Probe::Dialing(l) | Probe::LinkUp(l) if l == link) {
            return false;
        }
        self.schedule_probe(now);
        true
    }

    /// A session note: true when it is about the probe's session.
    pub(super) fn probe_session_note(
        &mut self,
        session: SessionId,
        established: Option<bool>,
        out: &mut dyn FnMut(RelayEvent),
    ) -> bool {
        if !matches!(self.failover.probe, Probe::Opening(s) | Probe::SessionUp(s) if s == session) {
            return false;
        }
        match established {
            Some(true) => {
                self.failover.probe = Probe::SessionUp(session);
                out(RelayEvent::PrimaryAnswered {
                    addr: self.failover.primary(),
                });
            }
            // Ended: probed again after the backoff.
            Some(false) => self.schedule_probe(self.now),
            // Reconnecting: the session retries by itself, with the backoff.
            None => {}
        }
        true
    }

    /// Raw: returns to the primary when it answered and nothing is in flight
    /// on the backup (or the backup is not up): the probe's link becomes the
    /// upstream link (also when the failover wrapped around to the primary
    /// meanwhile).
    pub(super) fn return_raw(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        let Probe::LinkUp(probe) = self.failover.probe else {
            return;
        };
        let Upstream::Raw {
            link,
            redial,
            in_flight,
            closing,
        } = &mut self.up
        else {
            return;
        };
        if in_flight.is_some() || closing.is_some() {
            // Drained first: the backup answers what it has (or its close is
            // reported, with what it leaves in doubt).
            return;
        }
        match *link {
            // Its close is reported for a link that is no longer ours: ignored.
            RawLink::Up(l) | RawLink::Connecting(l) => node.close(l),
            RawLink::Down => {}
        }
        *link = RawLink::Up(probe);
        redial.reset();
        *closing = None;
        self.window.clear();
        let was = self.failover.active();
        let from = self.failover.on_primary();
        self.failover.link_up();
        if was != 0 {
            out(switched(
                from,
                self.failover.primary(),
                0,
                SwitchReason::PrimaryBack,
            ));
        }
        out(RelayEvent::UpstreamConnected { session: None });
    }

    /// Mooring: ends the active session when it failed often enough (what it
    /// had not acknowledged is in doubt and resent; the next drive opens a
    /// session to the new upstream), or returns to the primary's probe
    /// session once nothing is unacknowledged on the backup (or it is not
    /// connected).
    pub(super) fn switch_session(&mut self, node: &mut Node, out: &mut dyn FnMut(RelayEvent)) {
        let due = self.failover.switch_due;
        // A session to the primary, up or still opening.
        let (probe, probe_up) = match self.failover.probe {
            Probe::SessionUp(s) => (Some(s), true),
            Probe::Opening(s) => (Some(s), false),
            _ => (None, false),
        };
        if !due && !probe_up {
            return;
        }
        let Upstream::Session {
            id,
            in_session,
            connected,
            reopen,
            ..
        } = &mut self.up
        else {
            return;
        };
        let unacked = id.and_then(|s| node.session_unacked(s)).unwrap_or(0);
        if !due && *connected && unacked > 0 {
            return; // drained first: the backup acknowledges what it has
        }
        self.failover.switch_due = false;
        // What the session acknowledged is delivered; the rest is in doubt.
        let acked = in_session.saturating_sub(unacked);
        if let Some(s) = id.take() {
            node.close_session(s); // its Ended note names a session no longer ours
        }
        // Back to the primary when it answered, or when the failover wrapped
        // around to it while a probe session was opening: that one is taken.
        let adopt = probe.filter(|_| probe_up || self.failover.active() == 0);
        *in_session = 0;
        *connected = adopt.is_some() && probe_up;
        reopen.reset();
        *id = adopt;
        for _ in 0..acked {
            let _ = self.queue.handle_reply();
        }
        let d = self.queue.handle_link_lost();
        if d.ids.is_some() {
            out(RelayEvent::UpstreamLost {
                reason: LostReason::Failover,
                in_doubt: d.ids,
                resent: d.resent,
                failed: d.failed,
            });
        }
        if adopt.is_none() {
            return; // `count_attempt` reported the switch
        }
        let was = self.failover.active();
        let from = self.failover.on_primary();
        if was != 0 {
            out(switched(
                from,
                self.failover.primary(),
                0,
                SwitchReason::PrimaryBack,
            ));
        }
        if probe_up {
            out(RelayEvent::UpstreamConnected {
                session: Some((false, 0)),
            });
        }
    }
}

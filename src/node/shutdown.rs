//! Graceful shutdown and waking the loop from outside (a signal, another
//! thread): what a service needs to stop without losing what it answered.
//!
//! [`Node::begin_shutdown`] stops accepting and lets the links accepted by
//! listeners finish: each closes (with a CLOSE message on a mooring link) once
//! the replies queued on it are written. Sessions served through them end with
//! `SessionClosed`, after the acknowledgement they owe. Messages not yet pulled
//! are not answered: their senders resend them, to this process's successor.
//! Outbound links stay open for the application to finish its own requests;
//! [`Node::close_all`] ends everything at the deadline.
//!
//! The loop's usual shape:
//!
//! ```text
//! on signal: node.begin_shutdown(); deadline = now + timeout
//! loop { node.poll(..); pull events; if node.is_drained() || now >= deadline { break } }
//! node.close_all(); pull the last events
//! ```

use mio::event::Source;
use mio::{Interest, Token};

use super::Node;
use crate::error::CloseReason;

/// The token of wake sources: neither a link slot, a listener nor one of the
/// node's own sources (`sources.rs`), so the node takes its readiness as
/// "return from poll" and nothing else.
pub(super) const WAKE_TOKEN: Token = Token(super::sources::SOURCE_BASE - 1);

impl Node {
    /// Registers `source` (for example a signal pipe) so that its readiness
    /// ends a [`Node::poll`] early; [`Node::take_wakeup`] then says so. The node
    /// never reads the source: the caller drains it. Deregister it from the
    /// same node before dropping it.
    pub fn register_wake_source(&mut self, source: &mut impl Source) -> std::io::Result<()> {
        self.poll
            .registry()
            .register(source, WAKE_TOKEN, Interest::READABLE)
    }

    /// True (once) when a wake source became ready during a [`Node::poll`]
    /// since the last call.
    pub fn take_wakeup(&mut self) -> bool {
        std::mem::take(&mut self.woken)
    }

    /// Stops accepting and lets accepted links finish (see the module docs):
    /// the listeners stop listening (new connections are refused), accept
    /// retries stop, sessions of accepted links end after their due
    /// acknowledgement, and each accepted link closes with `LocalClose` once
    /// its queued bytes are written. Outbound links and their sessions are
    /// left to the application. Calling it again does nothing more.
    pub fn begin_shutdown(&mut self) {
        if self.shutting_down {
            return;
        }
        self.shutting_down = true;
        for l in self.listeners.iter_mut() {
            l.sock.stop(self.poll.registry());
        }
        self.accept = super::accept::AcceptRetry::new();
        for idx in 0..self.sessions.capacity() as u32 {
            let served = self.sessions.session(idx).is_some()
                && self
                    .sessions
                    .link(idx)
                    .and_then(|l| self.slot_of(l))
                    .is_some_and(|i| self.slots[i as usize].listener.is_some());
            if served {
                self.close_session(self.sessions.id(idx));
            }
        }
        self.close_flushed_links();
    }

    /// True after [`Node::begin_shutdown`].
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// True when shutting down and every accepted link has closed: nothing
    /// more will be answered.
    pub fn is_drained(&self) -> bool {
        self.shutting_down && !self.slots.iter().any(|s| s.used && s.listener.is_some())
    }

    /// Closes every open link (after one last attempt to write what is queued;
    /// mooring links get a CLOSE) and ends every session. Their events follow
    /// from [`Node::next_event`]. For the end of a shutdown.
    pub fn close_all(&mut self) {
        for idx in 0..self.sessions.capacity() as u32 {
            if self.sessions.session(idx).is_some() {
                self.close_session(self.sessions.id(idx));
            }
        }
        let now = self.tick();
        for i in 0..self.slots.len() as u32 {
            let s = &self.slots[i as usize];
            if s.used && s.link.is_open() {
                self.write_out(i, now);
            }
            self.close_slot(i, CloseReason::LocalClose);
        }
    }

    /// While shutting down: tries to write what accepted links have queued,
    /// and closes those with nothing left. Runs at each poll.
    pub(super) fn close_flushed_links(&mut self) {
        let now = self.tick();
        for i in 0..self.slots.len() as u32 {
            let s = &self.slots[i as usize];
            if !s.used || s.listener.is_none() || !s.link.is_open() {
                continue;
            }
            if !s.tx.is_empty() {
                self.write_out(i, now);
            }
            let s = &self.slots[i as usize];
            if s.used && s.link.is_open() && s.tx.is_empty() {
                self.close_slot(i, CloseReason::LocalClose);
            }
        }
    }
}

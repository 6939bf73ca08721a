//! Exactly once across relay restarts, over a mooring upstream with a spool:
//! the upstream session's state lives in the spool (`spool/session_record.rs`),
//! and a restarted relay resumes that session instead of opening a new one.
//!
//! - **What is stored.** With each group commit that happens anyway (no sync
//!   of its own): the session's id and token, the spool number of the last
//!   message the upstream acknowledged (the delivered mark itself), the
//!   session's number of the next message, and the replies received. Marks of
//!   settled messages are written as session states, never as plain marks, so
//!   the two always agree on disk.
//! - **Mapping.** The session takes messages in spool order, so the recovered
//!   messages are its numbers `next`, `next + 1`, ... At a restart they are
//!   queued in that order on the resumed session, and only they, until its
//!   WELCOME: the upstream's `last_received` says which it has (acknowledged,
//!   not sent again) and the rest are replayed.
//! - **New sessions.** A new session takes no message until its identity is
//!   on disk (or the full spool cannot take it yet), and acknowledges the
//!   upstream's replies only as far as the spool holds them, so that a resume
//!   after a crash is always one the upstream accepts.
//! - **Beyond the window.** The upstream answers with another session (it
//!   dropped ours: `Expired`) or the resume fails (`Lost`): the relay opens a
//!   new session and resends, at least once, and says how many recovered
//!   messages may be duplicates ([`RelayEvent::SpoolSession`]).

use std::net::SocketAddr;

use super::spool::{Durable, MARKS_WITHIN};
use super::upstream::Upstream;
use super::{Relay, RelayEvent};
use crate::node::SessionNote;
use crate::session::StoredSession;
use crate::spool::{Seq, SessionState};
use crate::time::{earliest, Instant};
use crate::{ConnectConfig, Node, SessionId, SetupError};

/// The relay's session bookkeeping beside its spool.
#[derive(Debug, Default)]
pub(super) struct SpoolSession {
    /// On: settled messages are marked through session states.
    pub(super) on: bool,
    /// The state recovered at start, until the first session uses it.
    stored: Option<SessionState>,
    /// Recovered undelivered messages, and the last one's spool number:
    /// only those go to a resumed session before its WELCOME.
    recovered: u64,
    recovered_last: Seq,
    /// The resumed session, until it is established or ends.
    resuming: Option<SessionId>,
    /// The first session after a start is still to be reported.
    report_due: bool,
    /// It was established (resumed or not): reported with its number.
    report_now: Option<bool>,
    /// Settled through this spool number, not yet in a state given.
    pub(super) pending_mark: Seq,
    /// The last state given to the journal.
    last: Option<SessionState>,
    /// The newest state a commit made durable.
    durable: Option<SessionState>,
    /// The last commit could not write the state (the spool is full).
    stuck: bool,
}

impl SpoolSession {
    /// After recovery: what the spool holds.
    pub(super) fn recovered(d: &Durable) -> Self {
        let stored = d.journal.session();
        SpoolSession {
            stored,
            durable: stored,
            last: stored,
            recovered: d.report.recovered,
            recovered_last: d.journal.undelivered().last().map_or(0, |e| e.seq),
            report_due: true,
            ..SpoolSession::default()
        }
    }
}

/// Opens the upstream session: the stored one resumed when there is one
/// (first session after a start), else a new one whose replies are not
/// acknowledged before the spool holds them.
pub(super) fn open_session(
    spool: Option<&mut Durable>,
    node: &mut Node,
    addr: SocketAddr,
    connect: &ConnectConfig,
) -> Result<SessionId, SetupError> {
    let Some(s) = spool.map(|d| &mut d.session).filter(|s| s.on) else {
        return node.open_session(addr, connect);
    };
    if let Some(st) = s.stored.take().filter(SessionState::is_session) {
        let stored = StoredSession {
            id: st.id,
            token: st.token,
            next: st.next,
            received: st.received,
        };
        let sid = node.resume_session(addr, connect, stored)?;
        s.resuming = Some(sid);
        return Ok(sid);
    }
    let sid = node.open_session(addr, connect)?;
    node.session_set_ack_limit(sid, Some(0));
    Ok(sid)
}

impl Relay {
    /// True when the queued message with spool number `spool_seq` may go to
    /// session `sid` now (see the module docs).
    pub(super) fn may_send_on(&self, node: &Node, sid: SessionId, spool_seq: Seq) -> bool {
        let Some(s) = self.spool.as_ref().map(|d| &d.session).filter(|s| s.on) else {
            return true;
        };
        if s.resuming == Some(sid) {
            return spool_seq <= s.recovered_last;
        }
        let number = node.session_number(sid).unwrap_or(0);
        number != 0 && (s.stuck || s.durable.is_some_and(|d| d.id == number))
    }

    /// Gives the journal the session's state when it changed (after the
    /// credits and outcomes of each event, and before each commit).
    pub(super) fn record_session(
        &mut self,
        node: &Node,
        now: Instant,
        out: &mut dyn FnMut(RelayEvent),
    ) {
        let sid = match &self.up {
            Upstream::Session { id, .. } => *id,
            Upstream::Raw { .. } => return,
        };
        let Some(d) = self.spool.as_mut().filter(|d| d.session.on) else {
            return;
        };
        let delivered = d.session.pending_mark.max(d.journal.delivered());
        let state = match sid.and_then(|sid| node.session_stored(sid)) {
            Some(st) => SessionState {
                delivered,
                id: st.id,
                token: st.token,
                next: st.next,
                received: st.received,
            },
            // The stored session is still to be resumed: keep it.
            None if d.session.stored.is_some() => return,
            None => SessionState::none(delivered),
        };
        if let Some(resumed) = d.session.report_now.take() {
            out(RelayEvent::SpoolSession {
                resumed,
                session: state.id,
                possible_duplicates: if resumed { 0 } else { d.session.recovered },
            });
        }
        if d.session.last == Some(state) {
            return;
        }
        let new_identity = d.session.last.map(|l| l.id) != Some(state.id);
        match d.journal.set_session(state) {
            Ok(()) => {
                d.session.last = Some(state);
                // A new identity is written at once: its session waits for it.
                let by = if new_identity {
                    now
                } else {
                    now + MARKS_WITHIN
                };
                d.marks_by = earliest(d.marks_by, Some(by));
            }
            Err(e) => {
                // The spool's shape cannot hold session records: plain marks
                // (at least once across restarts).
                log::warn!("spool: session state not kept ({e}): at least once across restarts");
                d.session.on = false;
                if d.journal.mark_delivered(delivered).is_ok() {
                    d.marks_by = earliest(d.marks_by, Some(now + MARKS_WITHIN));
                }
            }
        }
    }

    /// After a good commit: what it made durable; replies stored are
    /// acknowledged now.
    pub(super) fn session_committed(&mut self, node: &mut Node) {
        let sid = match &self.up {
            Upstream::Session { id: Some(sid), .. } => *sid,
            _ => return,
        };
        let Some(d) = self.spool.as_mut().filter(|d| d.session.on) else {
            return;
        };
        d.session.stuck = d.journal.session_pending();
        if d.session.stuck {
            return;
        }
        d.session.durable = d.journal.session();
        let number = node.session_number(sid).unwrap_or(0);
        if let Some(st) = d
            .session
            .durable
            .filter(|st| st.id == number && number != 0)
        {
            node.session_set_ack_limit(sid, Some(st.received));
        }
    }

    /// A session note: notes how the first session after a start went
    /// (reported by the next [`Relay::record_session`], with its number).
    pub(super) fn resume_note(&mut self, session: SessionId, note: SessionNote) {
        let Some(s) = self.spool.as_mut().map(|d| &mut d.session) else {
            return;
        };
        if !s.on || !s.report_due {
            return;
        }
        let resumed = s.resuming == Some(session);
        match note {
            SessionNote::Established { .. } => {
                s.report_due = false;
                s.resuming = None;
                s.report_now = Some(resumed);
            }
            SessionNote::Ended(_) if resumed => {
                // Beyond the upstream's window: the next session is new, and
                // what it resends the upstream may have had.
                s.resuming = None;
                s.stored = None;
            }
            _ => {}
        }
    }
}

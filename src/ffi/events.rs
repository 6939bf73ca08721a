//! The node's events as `mooring_event`s.

use core::ptr;

use super::config::ms;
use super::node::{c_link, listener_index, LinkEntry};
use super::session::c_session;
use super::types::*;
use super::write_c;
use crate::error::CloseReason;
use crate::link::LinkStats;
use crate::node::{Event, ListenerId, SessionNote};
use crate::session::SessionEnd;

/// A link's counters as C sees them.
pub(super) fn c_link_stats(s: LinkStats) -> mooring_link_stats {
    mooring_link_stats {
        bytes_in: s.bytes_in,
        bytes_out: s.bytes_out,
        frames_in: s.frames_in,
        frames_out: s.frames_out,
        skipped_bytes: s.skipped_bytes,
        discarded_frames: s.discarded_frames,
        partial_reply_bytes: s.partial_reply_bytes,
    }
}

/// A close reason as a `mooring_close_reason` value: its code (the C enum
/// spells out the same codes; a test proves they agree).
pub(super) fn c_reason(r: CloseReason) -> u32 {
    u32::from(r.code())
}

/// How a session ended as C sees it, with its count of messages in doubt.
pub(super) fn c_session_end(how: SessionEnd) -> (mooring_session_end, u64) {
    match how {
        SessionEnd::Lost { undelivered } => (mooring_session_end::Lost, undelivered),
        SessionEnd::Expired { undelivered } => (mooring_session_end::Expired, undelivered),
        SessionEnd::QueueFull { undelivered } => (mooring_session_end::QueueFull, undelivered),
        SessionEnd::Closed => (mooring_session_end::Closed, 0),
        SessionEnd::Evicted { undelivered } => (mooring_session_end::Evicted, undelivered),
    }
}

/// The C form of a node event. `links` and `listeners` are the handle's tables,
/// so the event names links and listeners as C knows them. `None`: an event C
/// does not see (yet): the TLS handshake and failure details (the link's
/// CONNECTED and CLOSED events with their reason still come).
pub(super) fn c_event(
    e: Event<'_>,
    links: &mut [LinkEntry],
    listeners: &[ListenerId],
) -> Option<mooring_event> {
    let mut ev = mooring_event {
        kind: mooring_event_kind::Connected,
        link: mooring_link::default(),
        listener: MOORING_NO_LISTENER,
        reason: mooring_close_reason::None as u32,
        accepted: 0,
        peer: [0; MOORING_ADDR_MAX],
        data: ptr::null(),
        len: 0,
        stats: mooring_link_stats::default(),
        session: mooring_session::default(),
        resumed: 0,
        attempt: 0,
        delay_ms: 0,
        session_end: mooring_session_end::None as u32,
        count: 0,
        peer_reason: mooring_close_reason::None as u32,
    };
    match e {
        Event::Connected {
            link,
            peer,
            listener,
        } => {
            ev.link = c_link(links, link);
            ev.listener = listener.map_or(MOORING_NO_LISTENER, |l| listener_index(listeners, l));
            write_c(&mut ev.peer, format_args!("{peer}"));
        }
        Event::Message { link, payload } => {
            ev.kind = mooring_event_kind::Message;
            ev.link = c_link(links, link);
            ev.data = payload.as_ptr();
            ev.len = payload.len();
        }
        Event::CommitAck { link, accepted } => {
            ev.kind = mooring_event_kind::CommitAck;
            ev.link = c_link(links, link);
            ev.accepted = u32::from(accepted);
        }
        Event::Writable { link } => {
            ev.kind = mooring_event_kind::Writable;
            ev.link = c_link(links, link);
        }
        Event::Closed {
            link,
            peer,
            reason,
            stats,
            peer_reason,
        } => {
            ev.kind = mooring_event_kind::Closed;
            ev.link = c_link(links, link);
            ev.reason = c_reason(reason);
            ev.peer_reason = peer_reason.map_or(mooring_close_reason::None as u32, c_reason);
            ev.stats = c_link_stats(stats);
            write_c(&mut ev.peer, format_args!("{peer}"));
        }
        Event::Rejected {
            listener,
            peer,
            reason,
        } => {
            ev.kind = mooring_event_kind::Rejected;
            ev.listener = listener_index(listeners, listener);
            ev.reason = c_reason(reason);
            write_c(&mut ev.peer, format_args!("{peer}"));
        }
        Event::SessionMessage { session, payload } => {
            ev.kind = mooring_event_kind::SessionMessage;
            ev.session = c_session(session);
            ev.data = payload.as_ptr();
            ev.len = payload.len();
        }
        Event::Session { session, note } => {
            ev.session = c_session(session);
            match note {
                SessionNote::Established { resumed, replaying } => {
                    ev.kind = mooring_event_kind::SessionEstablished;
                    ev.resumed = u32::from(resumed);
                    ev.count = replaying;
                }
                SessionNote::Reconnecting { attempt, delay } => {
                    ev.kind = mooring_event_kind::SessionReconnecting;
                    ev.attempt = attempt;
                    ev.delay_ms = ms(delay);
                }
                SessionNote::Ended(how) => {
                    ev.kind = mooring_event_kind::SessionEnded;
                    let (end, count) = c_session_end(how);
                    ev.session_end = end as u32;
                    ev.count = count;
                }
            }
        }
        #[cfg(feature = "tls")]
        Event::TlsEstablished { .. } | Event::TlsFailed { .. } => return None,
    }
    Some(ev)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::tests::{connected_pair, default_config};
    use crate::ffi::*;
    use core::time::Duration;

    #[test]
    fn a_peers_close_message_is_reported_as_its_claim_beside_peer_closed() {
        let mut c = default_config();
        c.protocol = mooring_protocol::Mooring as u32;
        let (server, client, link) = connected_pair(&c);
        // SAFETY: live nodes, valid pointers, NUL-terminated strings.
        unsafe {
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut server_closed = None;
            let mut closing = false;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while server_closed.is_none() && std::time::Instant::now() < deadline {
                for n in [client, server] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        match ev.kind {
                            // The handshake is done: the client closes, saying why.
                            mooring_event_kind::Connected if n == client && !closing => {
                                closing = true;
                                assert_eq!(mooring_node_close(client, link), mooring_result::Ok);
                            }
                            mooring_event_kind::Closed if n == client => {
                                assert_eq!(ev.reason, mooring_close_reason::LocalClose as u32);
                                assert_eq!(ev.peer_reason, mooring_close_reason::None as u32);
                            }
                            mooring_event_kind::Closed => {
                                server_closed = Some((ev.reason, ev.peer_reason));
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(
                server_closed,
                Some((
                    mooring_close_reason::PeerClosed as u32,
                    mooring_close_reason::LocalClose as u32
                ))
            );
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }
}

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

/// Bytes kept of a TLS peer identity in a TLS_ESTABLISHED event.
#[cfg(feature = "tls")]
pub(super) const TLS_IDENTITY_MAX: usize = 1024;

/// Room for the event texts that the node does not hold as bytes (a TLS peer
/// identity is formatted): one per handle, overwritten by the next event, so
/// it lives as long as the handle and never allocates.
pub(super) struct EventTexts {
    #[cfg(feature = "tls")]
    identity: [u8; TLS_IDENTITY_MAX],
}

impl EventTexts {
    pub(super) const fn new() -> EventTexts {
        EventTexts {
            #[cfg(feature = "tls")]
            identity: [0; TLS_IDENTITY_MAX],
        }
    }
}

/// `s` as a C text field: its pointer and length.
#[cfg(feature = "tls")]
fn c_text(s: &[u8]) -> (*const core::ffi::c_char, usize) {
    (s.as_ptr().cast(), s.len())
}

/// Formats `what` into `buf`, cut at the last whole UTF-8 character that fits;
/// the bytes written.
#[cfg(feature = "tls")]
fn format_into(buf: &mut [u8], what: &impl core::fmt::Display) -> usize {
    struct Cut<'b> {
        buf: &'b mut [u8],
        len: usize,
    }
    impl core::fmt::Write for Cut<'_> {
        fn write_str(&mut self, s: &str) -> core::fmt::Result {
            let room = self.buf.len() - self.len;
            let mut n = s.len().min(room);
            while !s.is_char_boundary(n) {
                n -= 1;
            }
            self.buf[self.len..self.len + n].copy_from_slice(&s.as_bytes()[..n]);
            self.len += n;
            if n < s.len() {
                return Err(core::fmt::Error);
            }
            Ok(())
        }
    }
    let mut w = Cut { buf, len: 0 };
    // A text too long is cut: that is the error, and what fits is kept.
    let _ = core::fmt::write(&mut w, format_args!("{what}"));
    w.len
}

/// The C form of a node event. `links` and `listeners` are the handle's tables,
/// so the event names links and listeners as C knows them; `texts` holds the
/// texts the event points to that the node does not. `None`: an event C does
/// not see (none today).
/// CLOSED, REDIALING: the link, its peer, why its connection ended, and the
/// connection's final counters.
fn connection_ended(
    ev: &mut mooring_event,
    link: mooring_link,
    peer: std::net::SocketAddr,
    reason: CloseReason,
    stats: LinkStats,
) {
    ev.link = link;
    ev.reason = c_reason(reason);
    ev.stats = c_link_stats(stats);
    write_c(&mut ev.peer, format_args!("{peer}"));
}

pub(super) fn c_event(
    e: Event<'_>,
    links: &mut [LinkEntry],
    listeners: &[ListenerId],
    texts: &mut EventTexts,
) -> Option<mooring_event> {
    #[cfg(not(feature = "tls"))]
    let _ = texts;
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
        tls_version: ptr::null(),
        tls_version_len: 0,
        tls_suite: ptr::null(),
        tls_suite_len: 0,
        tls_peer_identity: ptr::null(),
        tls_peer_identity_len: 0,
        tls_detail: ptr::null(),
        tls_detail_len: 0,
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
            connection_ended(&mut ev, c_link(links, link), peer, reason, stats);
            ev.peer_reason = peer_reason.map_or(mooring_close_reason::None as u32, c_reason);
        }
        Event::Redialing {
            link,
            peer,
            reason,
            stats,
            attempt,
            after,
            unsent_bytes,
        } => {
            ev.kind = mooring_event_kind::Redialing;
            connection_ended(&mut ev, c_link(links, link), peer, reason, stats);
            ev.attempt = attempt;
            ev.delay_ms = ms(after);
            ev.count = unsent_bytes;
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
        Event::TlsEstablished {
            link,
            peer,
            handshake,
        } => {
            ev.kind = mooring_event_kind::TlsEstablished;
            ev.link = c_link(links, link);
            write_c(&mut ev.peer, format_args!("{peer}"));
            // The version name is static; the suite is the node's until the
            // next call, as `data` is.
            (ev.tls_version, ev.tls_version_len) = c_text(handshake.version_name().as_bytes());
            (ev.tls_suite, ev.tls_suite_len) = c_text(handshake.suite.as_bytes());
            if let Some(id) = &handshake.peer {
                let n = format_into(&mut texts.identity, id);
                (ev.tls_peer_identity, ev.tls_peer_identity_len) = c_text(&texts.identity[..n]);
            }
        }
        #[cfg(feature = "tls")]
        Event::TlsFailed { link, peer, error } => {
            ev.kind = mooring_event_kind::TlsFailed;
            ev.link = c_link(links, link);
            write_c(&mut ev.peer, format_args!("{peer}"));
            ev.reason = c_reason(error.reason.into());
            // The node's until the next call, as `data` is.
            (ev.tls_detail, ev.tls_detail_len) = c_text(error.detail.as_bytes());
        }
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

#[cfg(all(test, feature = "tls"))]
mod tls_tests {
    use super::*;
    use crate::config::NodeConfig;
    use crate::node::Node;
    use crate::tls::{Handshake, PeerIdentity, TlsError, TlsFailure, TlsVersion};

    /// The bytes a C text field points to (`None` for NULL).
    fn text(p: *const core::ffi::c_char, len: usize) -> Option<&'static str> {
        // SAFETY: the test keeps what the fields point to alive while it reads.
        (!p.is_null())
            .then(|| core::str::from_utf8(unsafe { core::slice::from_raw_parts(p.cast(), len) }))
            .map(|r| r.unwrap())
    }

    fn peer_text(ev: &mooring_event) -> String {
        let bytes: Vec<u8> = ev
            .peer
            .iter()
            .take_while(|&&c| c != 0)
            .map(|&c| c as u8)
            .collect();
        String::from_utf8(bytes).unwrap()
    }

    #[test]
    fn tls_handshakes_and_failures_become_c_events_with_their_texts() {
        // A real link id (the connect need not complete).
        let server = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = server.local_addr().unwrap();
        let mut node = Node::new(NodeConfig::default()).unwrap();
        let link = node.connect(addr, &Default::default()).unwrap();
        let mut links = vec![LinkEntry::default(); 4];
        let mut texts = EventTexts::new();

        let mut hs = Handshake {
            version: TlsVersion::Tls13,
            suite: "TLS13_AES_256_GCM_SHA384".into(),
            peer: Some(PeerIdentity {
                dns: vec!["device-1.example".into()],
                ..PeerIdentity::default()
            }),
        };
        fn established(
            link: crate::LinkId,
            peer: std::net::SocketAddr,
            hs: &Handshake,
        ) -> Event<'_> {
            Event::TlsEstablished {
                link,
                peer,
                handshake: hs,
            }
        }
        let ev = c_event(established(link, addr, &hs), &mut links, &[], &mut texts).unwrap();
        assert_eq!(ev.kind, mooring_event_kind::TlsEstablished);
        assert_eq!(ev.link.slot, link.slot());
        assert_eq!(peer_text(&ev), addr.to_string());
        assert_eq!(text(ev.tls_version, ev.tls_version_len), Some("TLSv1_3"));
        assert_eq!(
            text(ev.tls_suite, ev.tls_suite_len),
            Some("TLS13_AES_256_GCM_SHA384")
        );
        assert_eq!(
            text(ev.tls_peer_identity, ev.tls_peer_identity_len),
            Some("device-1.example")
        );
        assert_eq!(text(ev.tls_detail, ev.tls_detail_len), None);
        assert_eq!(ev.reason, mooring_close_reason::None as u32);

        // No certificate: NULL identity. A very long one: cut to the room.
        hs.version = TlsVersion::Tls12;
        hs.peer = None;
        let ev = c_event(established(link, addr, &hs), &mut links, &[], &mut texts).unwrap();
        assert_eq!(text(ev.tls_version, ev.tls_version_len), Some("TLSv1_2"));
        assert!(ev.tls_peer_identity.is_null());
        assert_eq!(ev.tls_peer_identity_len, 0);
        hs.peer = Some(PeerIdentity {
            uri: vec![format!("spiffe://{}", "é".repeat(1000))],
            ..PeerIdentity::default()
        });
        let ev = c_event(established(link, addr, &hs), &mut links, &[], &mut texts).unwrap();
        let id = text(ev.tls_peer_identity, ev.tls_peer_identity_len).unwrap();
        assert!(id.starts_with("spiffe://é"), "{id}");
        // Whole characters only: 9 ASCII bytes, then 2-byte ones.
        assert_eq!(id.len(), TLS_IDENTITY_MAX - 1);

        let error = TlsError::new(TlsFailure::UnknownCa, "received fatal alert: UnknownCA");
        let e = Event::TlsFailed {
            link,
            peer: addr,
            error: &error,
        };
        let ev = c_event(e, &mut links, &[], &mut texts).unwrap();
        assert_eq!(ev.kind, mooring_event_kind::TlsFailed);
        assert_eq!(ev.link.slot, link.slot());
        assert_eq!(peer_text(&ev), addr.to_string());
        assert_eq!(ev.reason, mooring_close_reason::TlsUnknownCa as u32);
        assert_eq!(
            text(ev.tls_detail, ev.tls_detail_len),
            Some("received fatal alert: UnknownCA")
        );
        assert!(ev.tls_version.is_null() && ev.tls_suite.is_null());
    }
}

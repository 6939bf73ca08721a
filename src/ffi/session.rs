//! Reliable session calls: open, send, close.

use core::ffi::c_char;

use super::node::{setup_error, with_node};
use super::{c_bytes, c_str, fail, mooring_node, mooring_result, mooring_session, parse_addr};
use crate::session::SessionError;

/// A node's session id as C sees it.
pub(super) fn c_session(id: crate::SessionId) -> mooring_session {
    mooring_session {
        index: id.idx,
        gen: id.gen,
    }
}

fn session_id(s: mooring_session) -> crate::SessionId {
    crate::SessionId {
        idx: s.index,
        gen: s.gen,
    }
}

/// Opens a reliable session to `addr` (`"ip:port"`) with the node's connect
/// settings (`session` = 1 and `protocol` = mooring in its config). The node
/// connects, resumes after lost links (`reconnect_min_ms`..`reconnect_max_ms`,
/// full jitter, forever) and reports SESSION_* events; messages sent meanwhile
/// queue up to `session_queue`.
///
/// # Safety
/// `node` as for every node call; `addr` NULL or NUL-terminated; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_open_session(
    node: *mut mooring_node,
    addr: *const c_char,
    out: *mut mooring_session,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        // SAFETY: by contract.
        let addr = parse_addr(unsafe { c_str(addr, "addr") }?)?;
        let id = h.node.open_session(addr, &h.connect).map_err(setup_error)?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(c_session(id)) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Queues `len` bytes at `data` as the next message of `session` (copied before
/// the call returns); it goes out now or after the next resume. `*seq_out` (if
/// not NULL) receives its sequence number. `MOORING_RESULT_QUEUE_FULL` is
/// backpressure; `MOORING_RESULT_SESSION_ENDED` means the handle is stale.
///
/// # Safety
/// `node` as for every node call; `data` NULL or `len` readable bytes; `seq_out`
/// NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_session_send(
    node: *mut mooring_node,
    session: mooring_session,
    data: *const u8,
    len: usize,
    seq_out: *mut u64,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        // SAFETY: the caller's contract for `data`/`len`.
        let payload = unsafe { c_bytes(data, len) }?;
        // A payload taken from an event aliases the node's receive buffer.
        h.scratch.clear();
        h.scratch.extend_from_slice(payload);
        let seq = h
            .node
            .session_send(session_id(session), &h.scratch)
            .map_err(|e| {
                let code = match e {
                    SessionError::QueueFull => mooring_result::QueueFull,
                    SessionError::TooLarge => mooring_result::FrameTooLarge,
                    SessionError::Ended => mooring_result::SessionEnded,
                    SessionError::Unframeable => mooring_result::InvalidArgument,
                };
                fail(code, format_args!("{e:?}"))
            })?;
        if !seq_out.is_null() {
            // SAFETY: non-NULL and writable by contract.
            unsafe { seq_out.write(seq) };
        }
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Ends `session`: its peer is told, and a SESSION_ENDED event (`Closed`)
/// follows. A stale handle does nothing and returns `MOORING_RESULT_OK`.
///
/// # Safety
/// `node` as for every node call.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_close_session(
    node: *mut mooring_node,
    session: mooring_session,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        h.node.close_session(session_id(session));
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::tests::session_pair;
    use crate::ffi::*;
    use core::ptr;
    use core::time::Duration;

    #[test]
    fn a_session_through_the_c_api_carries_messages_in_order_and_ends_on_both_sides() {
        let (server, client, s, _) = session_pair();
        // SAFETY: live nodes, valid pointers.
        unsafe {
            // Queued before the link is even up: sessions hold them.
            for (i, m) in [&b"m1"[..], b"m2", b"m3"].iter().enumerate() {
                let mut seq = 0u64;
                assert_eq!(
                    mooring_node_session_send(client, s, m.as_ptr(), m.len(), &mut seq),
                    mooring_result::Ok
                );
                assert_eq!(seq, i as u64 + 1);
            }
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut echoed = Vec::new();
            let mut ended = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while ended.len() < 2 && std::time::Instant::now() < deadline {
                for (n, name) in [(client, "client"), (server, "server")] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        match (name, ev.kind) {
                            ("server", mooring_event_kind::SessionMessage) => assert_eq!(
                                mooring_node_session_send(
                                    server,
                                    ev.session,
                                    ev.data,
                                    ev.len,
                                    ptr::null_mut()
                                ),
                                mooring_result::Ok
                            ),
                            ("client", mooring_event_kind::SessionMessage) => {
                                echoed.push(core::slice::from_raw_parts(ev.data, ev.len).to_vec());
                                if echoed.len() == 3 {
                                    assert_eq!(
                                        mooring_node_close_session(client, s),
                                        mooring_result::Ok
                                    );
                                }
                            }
                            (_, mooring_event_kind::SessionEnded) => {
                                ended.push((name, ev.session_end));
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(echoed, vec![b"m1".to_vec(), b"m2".to_vec(), b"m3".to_vec()]);
            assert!(ended.contains(&("client", mooring_session_end::Closed as u32)));
            assert!(ended.contains(&("server", mooring_session_end::Closed as u32)));
            assert_eq!(
                mooring_node_session_send(client, s, b"x".as_ptr(), 1, ptr::null_mut()),
                mooring_result::SessionEnded
            );
            // Both sides counted one session, started once and ended Closed.
            for n in [client, server] {
                let mut st = mooring_node_stats::default();
                assert_eq!(mooring_node_get_stats(n, &mut st), mooring_result::Ok);
                let closed = mooring_session_end::Closed as usize;
                assert_eq!((st.sessions_started, st.sessions_live), (1, 0));
                assert_eq!(st.sessions_ended[closed], 1, "{:?}", st.sessions_ended);
                assert_eq!(st.sessions_ended.iter().sum::<u64>(), 1);
            }
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }
}

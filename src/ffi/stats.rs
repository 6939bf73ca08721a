//! Counters of the node and of its open links.

use super::events::c_link_stats;
use super::node::{resolve, with_node};
use super::{
    fail, mooring_link, mooring_link_stats, mooring_node, mooring_node_stats, mooring_result,
    MOORING_CLOSE_CODES_MAX,
};
use crate::node::NodeStats;

/// Copies the node-wide counters into `*out`.
///
/// # Safety
/// `node` as for every node call; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_get_stats(
    node: *mut mooring_node,
    out: *mut mooring_node_stats,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        let NodeStats {
            accepted,
            rejected_too_many,
            rejected_not_allowed,
            stale_replaced,
            unreported_rejections,
            large_buffer_waits,
            burst_reads,
            accept_errors,
            accept_retries,
            rejected_from_peer,
            bad_tokens,
            unreported_session_events,
            session_queue_full,
            sessions_evicted,
            sessions_live,
            sessions_started,
            sessions_resumed,
            sessions_ended: ends,
            closes: by_reason,
            frames_in,
            frames_out,
            bytes_in,
            bytes_out,
            links_open,
        } = h.node.stats();
        let mut closes = [0; MOORING_CLOSE_CODES_MAX];
        for (c, n) in closes.iter_mut().zip(by_reason) {
            *c = n;
        }
        let s = mooring_node_stats {
            accepted,
            rejected_too_many,
            rejected_not_allowed,
            stale_replaced,
            unreported_rejections,
            large_buffer_waits,
            burst_reads,
            links_in_use: h.node.links_in_use() as u64,
            accept_errors,
            accept_retries,
            rejected_from_peer,
            closes,
            frames_in,
            frames_out,
            bytes_in,
            bytes_out,
            links_open,
            sessions_live,
            sessions_started,
            sessions_resumed,
            sessions_ended: [
                0,
                ends.lost,
                ends.expired,
                ends.queue_full,
                ends.closed,
                ends.evicted,
            ],
            bad_tokens,
            session_queue_full,
            sessions_evicted,
            unreported_session_events,
        };
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(s) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Copies an open link's counters into `*out`. A closed link's final counters
/// come with its CLOSED event; here it is `MOORING_RESULT_NOT_OPEN`.
///
/// # Safety
/// `node` as for every node call; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_get_link_stats(
    node: *mut mooring_node,
    link: mooring_link,
    out: *mut mooring_link_stats,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        let id = resolve(&h.links, link)?;
        let s = h
            .node
            .link_stats(id)
            .ok_or_else(|| fail(mooring_result::NotOpen, "link is closed"))?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(c_link_stats(s)) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

#[cfg(test)]
mod tests {
    use std::io::Write;
    use std::net::TcpStream;

    use crate::ffi::tests::session_pair;
    use crate::ffi::*;
    use crate::wire::{self, Greeting, Msg};
    use core::ptr;
    use core::time::Duration;

    /// A HELLO resuming session `session` with a token it does not have, MLLP-framed.
    fn forged_resume(session: u64) -> Vec<u8> {
        let g = Greeting {
            session,
            token: [0xAA; wire::TOKEN_LEN],
            ..Greeting::new_session()
        };
        let mut b = [0u8; wire::MAX_CONTROL];
        let n = wire::encode(&Msg::Hello(g), &mut b).expect("fits");
        let mut f = vec![0x0B];
        f.extend_from_slice(&b[..n]);
        f.extend_from_slice(&[0x1C, 0x0D]);
        f
    }

    #[test]
    fn a_resume_with_a_wrong_token_is_counted_in_the_c_node_stats() {
        let (server, client, s, addr) = session_pair();
        // SAFETY: live nodes, valid pointers.
        unsafe {
            assert_eq!(
                mooring_node_session_send(client, s, b"m1".as_ptr(), 2, ptr::null_mut()),
                mooring_result::Ok
            );
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let (mut got, mut bad_token) = (false, false);
            let mut intruder = None;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while !bad_token && std::time::Instant::now() < deadline {
                for n in [client, server] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        match ev.kind {
                            mooring_event_kind::SessionMessage if n == server => got = true,
                            mooring_event_kind::Closed if n == server => {
                                bad_token |= ev.reason == mooring_close_reason::BadToken as u32;
                            }
                            _ => {}
                        }
                    }
                }
                // The session is up: an intruder knows its id (ids are small
                // numbers) but not its token.
                if got && intruder.is_none() {
                    let text = core::ffi::CStr::from_ptr(addr.as_ptr()).to_str().unwrap();
                    let mut t = TcpStream::connect(text).unwrap();
                    t.write_all(&forged_resume(1)).unwrap();
                    intruder = Some(t);
                }
            }
            assert!(bad_token, "no link closed BAD_TOKEN");
            let mut st = mooring_node_stats::default();
            assert_eq!(mooring_node_get_stats(server, &mut st), mooring_result::Ok);
            assert_eq!(st.bad_tokens, 1, "{st:?}");
            assert_eq!(
                (
                    st.session_queue_full,
                    st.sessions_evicted,
                    st.unreported_session_events
                ),
                (0, 0, 0)
            );
            assert_eq!(st.sessions_live, 1, "the real session is untouched");
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }
}

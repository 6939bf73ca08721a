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
            // Not in the C struct (yet).
            bad_tokens: _,
            unreported_session_events: _,
            session_queue_full: _,
            sessions_evicted: _,
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

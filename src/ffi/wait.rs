//! For a caller that runs its own `poll()`/`epoll` loop: the node's descriptor
//! and how long it may sleep.

#[cfg(unix)]
use core::ffi::c_int;

use super::mooring_node;
use super::node::read_node;

/// The node's pollable file descriptor, for the caller's own `poll()`/`select()`/
/// `epoll` loop: readable when `mooring_node_poll` has socket work. It does not
/// signal deadlines: wait at most `mooring_node_next_deadline_ms`. The node owns
/// it: do not close or read it. -1 when `node` is NULL or poisoned.
///
/// A loop that sleeps on it must only sleep after a `mooring_node_poll(node, 0)`
/// and a drain of `mooring_node_next_event` that produced no event (events, and
/// the sends they cause, leave work the descriptor does not signal):
///
/// ```c
/// for (;;) {
///     mooring_node_poll(node, 0);
///     int n = 0;
///     while (mooring_node_next_event(node, &ev) == MOORING_RESULT_OK) { n++; ... }
///     if (n == 0) poll(&pfd, 1, (int)mooring_node_next_deadline_ms(node));
/// }
/// ```
///
/// # Safety
/// `node` is NULL or a live pointer from `mooring_node_new`.
#[cfg(unix)]
#[no_mangle]
pub unsafe extern "C" fn mooring_node_fd(node: *const mooring_node) -> c_int {
    use std::os::fd::AsRawFd;
    // SAFETY: the caller's contract is read_node's.
    unsafe { read_node(node, -1, |h| h.node.as_raw_fd()) }
}

/// Milliseconds until the node's earliest deadline (0 when due), rounded up so a
/// wait that long never wakes early; -1 when no deadline is set (or `node` is
/// NULL or poisoned). Pass it (capped at `INT_MAX`) as `poll()`'s timeout.
///
/// # Safety
/// `node` is NULL or a live pointer from `mooring_node_new`.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_next_deadline_ms(node: *const mooring_node) -> i64 {
    // SAFETY: the caller's contract is read_node's.
    unsafe {
        read_node(node, -1, |h| match h.node.next_deadline() {
            None => -1,
            Some(at) => {
                let left = at.saturating_since(h.node.now());
                i64::try_from(crate::time::ceil_millis(left)).unwrap_or(i64::MAX)
            }
        })
    }
}

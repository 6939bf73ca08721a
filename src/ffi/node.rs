//! The node handle (`mooring_node`) and its calls: create, free, listen,
//! connect, poll, events, send, close.

use core::ffi::c_char;
use std::panic::{catch_unwind, AssertUnwindSafe};

use super::config::convert;
use super::events::{c_event, EventTexts};
use super::types::*;
use super::{
    c_bytes, c_str, clear_last_error, fail, free_handle, new_handle, next_event, parse_addr,
    poll_timeout, with_handle, write_addr, Handle,
};
use crate::config::{ConnectConfig, ListenConfig};
use crate::node::{LinkId, ListenerId, Node, SetupError, MAX_LISTENERS};

/// A node: one poll, its listeners and links. Opaque; create with
/// `mooring_node_new`, free with `mooring_node_free`.
#[allow(non_camel_case_types)]
pub struct mooring_node {
    pub(super) node: Node,
    pub(super) listen: ListenConfig,
    pub(super) connect: ConnectConfig,
    /// Per slot: the generation handed to C and the node's id it stands for.
    pub(super) links: Vec<LinkEntry>,
    /// Listener index (as C sees it) to the node's id.
    pub(super) listeners: heapless::Vec<ListenerId, MAX_LISTENERS>,
    /// Copy of a payload that aliases the node's receive buffer (echo).
    pub(super) scratch: Vec<u8>,
    /// Texts of the last event that the node does not hold (a TLS identity).
    pub(super) texts: EventTexts,
    pub(super) poisoned: bool,
}

/// What C knows of one link slot.
#[derive(Clone, Copy, Default)]
pub(super) struct LinkEntry {
    pub(super) gen: u32,
    pub(super) id: Option<LinkId>,
}

/// Runs `f` on the node behind `node`: NULL and poison checks, panic boundary,
/// poison on panic.
///
/// # Safety
/// `node` is NULL or a live pointer from `mooring_node_new`, used by no other
/// call at the same time.
pub(super) unsafe fn with_node(
    node: *mut mooring_node,
    f: impl FnOnce(&mut mooring_node) -> Result<(), mooring_result>,
) -> mooring_result {
    // SAFETY: the caller's contract is with_handle's.
    unsafe { with_handle(node, f) }
}

impl Handle for mooring_node {
    const NAME: &'static str = "node";
    const FREE: &'static str = "mooring_node_free";
    fn poisoned(&mut self) -> &mut bool {
        &mut self.poisoned
    }
}

/// Read-only variant of [`with_node`] for calls returning a plain value.
///
/// # Safety
/// As [`with_node`].
pub(super) unsafe fn read_node<T>(
    node: *const mooring_node,
    none: T,
    f: impl FnOnce(&mooring_node) -> T,
) -> T {
    clear_last_error();
    if node.is_null() {
        fail(mooring_result::NullParameter, "node is NULL");
        return none;
    }
    // SAFETY: non-NULL, and live by the caller's contract.
    let h = unsafe { &*node };
    if h.poisoned {
        fail(mooring_result::Poisoned, "node is poisoned");
        return none;
    }
    match catch_unwind(AssertUnwindSafe(|| f(h))) {
        Ok(v) => v,
        Err(_) => {
            fail(mooring_result::Panic, "mooring panicked (a bug)");
            none
        }
    }
}

/// A node setup failure as its result code, with the last error set.
pub(super) fn setup_error(e: SetupError) -> mooring_result {
    fail(setup_code(&e), e)
}

/// A node setup failure's result code.
pub(super) fn setup_code(e: &SetupError) -> mooring_result {
    match e {
        SetupError::Config(_) => mooring_result::InvalidConfig,
        SetupError::Io(_) => mooring_result::Io,
        SetupError::NoSlot => mooring_result::NoSlot,
        SetupError::OutOfMemory { .. } => mooring_result::OutOfMemory,
        #[cfg(feature = "tls")]
        SetupError::Tls(_) => mooring_result::InvalidConfig,
    }
}

/// The C link for a node's link id, remembered so C's value resolves back to it.
pub(super) fn c_link(links: &mut [LinkEntry], id: LinkId) -> mooring_link {
    let Some(e) = links.get_mut(id.slot() as usize) else {
        return mooring_link::default();
    };
    if e.id != Some(id) {
        e.gen = e.gen.wrapping_add(1).max(1);
        e.id = Some(id);
    }
    mooring_link {
        slot: id.slot(),
        gen: e.gen,
    }
}

/// The node's link for a C link: `UnknownLink` when unknown or stale.
pub(super) fn resolve(links: &[LinkEntry], l: mooring_link) -> Result<LinkId, mooring_result> {
    links
        .get(l.slot as usize)
        .filter(|e| e.gen == l.gen)
        .and_then(|e| e.id)
        .ok_or_else(|| {
            fail(
                mooring_result::UnknownLink,
                format_args!("link {}.{} is unknown or stale", l.slot, l.gen),
            )
        })
}

/// The index C knows a listener by, or `MOORING_NO_LISTENER`.
pub(super) fn listener_index(listeners: &[ListenerId], id: ListenerId) -> u32 {
    listeners
        .iter()
        .position(|&l| l == id)
        .map_or(MOORING_NO_LISTENER, |i| i as u32)
}

/// Builds a node from `config` (read during the call only: the caller keeps
/// ownership of it and of `config->allow`). On success `*out` is a node the
/// caller owns and must pass to `mooring_node_free`; on failure `*out` is NULL
/// and `mooring_last_error` tells why. The listen settings are checked against
/// the node at `mooring_node_listen`.
///
/// # Safety
/// `config` is NULL or points to a readable `mooring_config` whose `allow` is NULL
/// or a NUL-terminated string; `out` is NULL or points to a writable pointer.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_new(
    config: *const mooring_config,
    out: *mut *mut mooring_node,
) -> mooring_result {
    let build = |c: mooring_config| {
        let (cfg, listen, connect) = convert(&c)?;
        let slots = cfg.max_links;
        let buffer_size = cfg.buffer_size;
        let node = Node::new(cfg).map_err(setup_error)?;
        // Sized from the config like the node's own tables: fallible too.
        let links = crate::fallible::vec_filled(slots, LinkEntry::default(), "C link table")
            .map_err(|e| setup_error(e.into()))?;
        let scratch = crate::fallible::vec_with_capacity(buffer_size, "C echo buffer")
            .map_err(|e| setup_error(e.into()))?;
        Ok(mooring_node {
            node,
            listen,
            connect,
            links,
            listeners: heapless::Vec::new(),
            scratch,
            texts: EventTexts::new(),
            poisoned: false,
        })
    };
    // SAFETY: the caller's contract is new_handle's.
    unsafe { new_handle(config, out, build) }
}

/// Frees a node: closes its listeners and links (without events) and releases
/// all its memory. NULL is a no-op. The pointer, and every event `data` pointer
/// from it, are invalid afterwards. Allowed on a poisoned node.
///
/// # Safety
/// `node` is NULL or a pointer from `mooring_node_new` not yet freed, used by no
/// other call at the same time.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_free(node: *mut mooring_node) {
    // SAFETY: the caller's contract is free_handle's.
    unsafe { free_handle(node) }
}

/// Binds a listener on `addr` (`"127.0.0.1:2575"`, `"[::]:2575"`, port 0 for any)
/// with the node's listen settings; `*listener_out` receives its index (0, 1, ...).
///
/// # Safety
/// `node` as for every node call (NULL or live, not used concurrently); `addr`
/// NULL or NUL-terminated; `listener_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_listen(
    node: *mut mooring_node,
    addr: *const c_char,
    listener_out: *mut u32,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if listener_out.is_null() {
            return Err(fail(mooring_result::NullParameter, "listener_out is NULL"));
        }
        // SAFETY: by contract.
        let addr = parse_addr(unsafe { c_str(addr, "addr") }?)?;
        if h.listeners.is_full() {
            return Err(fail(mooring_result::NoSlot, "no room for another listener"));
        }
        let id = h.node.listen(addr, h.listen.clone()).map_err(setup_error)?;
        let idx = h.listeners.len() as u32;
        h.listeners
            .push(id)
            .map_err(|_| fail(mooring_result::NoSlot, "no room for another listener"))?;
        // SAFETY: non-NULL and writable by contract.
        unsafe { listener_out.write(idx) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Writes the listener's bound address (the real port when bound to port 0) into
/// `buf` as NUL-terminated `ip:port`. `MOORING_ADDR_MAX` bytes always suffice;
/// with fewer, `MOORING_RESULT_BUFFER_TOO_SMALL` and `buf` holds `""`.
///
/// # Safety
/// `node` as for every node call; `buf` NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_local_addr(
    node: *mut mooring_node,
    listener: u32,
    buf: *mut c_char,
    len: usize,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        let addr = || {
            h.listeners
                .get(listener as usize)
                .and_then(|&l| h.node.local_addr(l))
                .ok_or_else(|| {
                    fail(
                        mooring_result::UnknownLink,
                        format_args!("no listener {listener}"),
                    )
                })
        };
        // SAFETY: the caller's contract for `buf`/`len`.
        unsafe { write_addr(buf, len, addr) }
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Starts an outbound connect to `addr` (`"ip:port"`) with the node's connect
/// settings; `*link_out` receives the link at once. A CONNECTED event follows,
/// or CLOSED (`ConnectionRefused`, `ConnectTimeout`).
///
/// # Safety
/// `node` as for every node call; `addr` NULL or NUL-terminated; `link_out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_connect(
    node: *mut mooring_node,
    addr: *const c_char,
    link_out: *mut mooring_link,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        if link_out.is_null() {
            return Err(fail(mooring_result::NullParameter, "link_out is NULL"));
        }
        // SAFETY: by contract.
        let addr = parse_addr(unsafe { c_str(addr, "addr") }?)?;
        let id = h.node.connect(addr, &h.connect).map_err(setup_error)?;
        let link = c_link(&mut h.links, id);
        // SAFETY: non-NULL and writable by contract.
        unsafe { link_out.write(link) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Writes queued frames, then waits until a socket is ready, a deadline passes,
/// or `timeout_ms` elapses (0: do not wait; -1: no limit but the node's own
/// deadlines), and handles what happened. Then drain `mooring_node_next_event`
/// until `MOORING_RESULT_NO_EVENT`.
///
/// # Safety
/// `node` as for every node call.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_poll(
    node: *mut mooring_node,
    timeout_ms: i64,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        let timeout = poll_timeout(timeout_ms)?;
        h.node
            .poll(timeout)
            .map_err(|e| fail(mooring_result::Io, format_args!("poll: {e}")))
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Takes the next event into `*out`: `MOORING_RESULT_OK` with an event, or
/// `MOORING_RESULT_NO_EVENT` (and `*out` untouched) when there is none until the
/// next `mooring_node_poll`. Reading from sockets happens here. Invalidates the
/// `data` of the previous event.
///
/// # Safety
/// `node` as for every node call; `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_next_event(
    node: *mut mooring_node,
    out: *mut mooring_event,
) -> mooring_result {
    let take = |h: &mut mooring_node| loop {
        let e = h.node.next_event()?;
        if let Some(ev) = c_event(e, &mut h.links, &h.listeners, &mut h.texts) {
            return Some(ev);
        }
    };
    // SAFETY: the caller's contract is next_event's.
    unsafe { next_event(node, out, take) }
}

/// Queues `len` bytes at `data` as one frame on `link`; it is written at the next
/// `mooring_node_poll`. The bytes are copied before the call returns: the caller
/// keeps ownership of `data`. `data` may be NULL when `len` is 0, and may be a
/// MESSAGE event's `data` (echo). `MOORING_RESULT_TX_FULL` is backpressure: wait
/// for a WRITABLE event.
///
/// # Safety
/// `node` as for every node call; `data` NULL or `len` readable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_send(
    node: *mut mooring_node,
    link: mooring_link,
    data: *const u8,
    len: usize,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        // SAFETY: the caller's contract for `data`/`len`.
        let payload = unsafe { c_bytes(data, len) }?;
        let id = resolve(&h.links, link)?;
        // A payload inside the node's own receive buffer (an echo, or part of a
        // message) cannot be borrowed by `send`: the whole last message goes by
        // `forward` (one copy); a part of it is copied out first.
        let (whole, aliases) = h.node.last_message().map_or((false, false), |m| {
            let (a, b) = (m.as_ptr() as usize, m.as_ptr() as usize + m.len());
            let (p, q) = (data as usize, data as usize + len);
            (p == a && len == m.len(), p < b && a < q)
        });
        let forwarded = if whole && len > 0 {
            h.node.forward(id)
        } else {
            Err(crate::SendError::NoMessage)
        };
        let res = if forwarded != Err(crate::SendError::NoMessage) {
            forwarded
        } else if aliases {
            h.scratch.clear();
            h.scratch.extend_from_slice(payload);
            h.node.send(id, &h.scratch)
        } else {
            h.node.send(id, payload)
        };
        res.map_err(|e| {
            let code = match e {
                crate::SendError::TxFull => mooring_result::TxFull,
                crate::SendError::FrameTooLarge => mooring_result::FrameTooLarge,
                crate::SendError::Unframeable => mooring_result::InvalidArgument,
                _ => mooring_result::NotOpen,
            };
            fail(code, e)
        })
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

/// Closes `link` now (after one last attempt to write what is queued); a CLOSED
/// event with reason `LocalClose` follows. Closing a link that is already closed
/// does nothing and returns `MOORING_RESULT_OK`.
///
/// # Safety
/// `node` as for every node call.
#[no_mangle]
pub unsafe extern "C" fn mooring_node_close(
    node: *mut mooring_node,
    link: mooring_link,
) -> mooring_result {
    let f = |h: &mut mooring_node| {
        let id = resolve(&h.links, link)?;
        h.node.close(id);
        Ok(())
    };
    // SAFETY: the caller's contract is with_node's.
    unsafe { with_node(node, f) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::tests::{connected_pair, default_config, last_error, new_node};
    use crate::ffi::*;
    use core::ffi::{c_char, CStr};
    use core::ptr;
    use core::time::Duration;

    #[test]
    fn null_pointers_are_error_codes() {
        let c = default_config();
        let mut node = ptr::null_mut();
        // SAFETY: NULL is allowed everywhere and must be refused with a code.
        unsafe {
            assert_eq!(
                mooring_config_default(ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_new(ptr::null(), &mut node),
                mooring_result::NullParameter
            );
            assert!(node.is_null());
            assert_eq!(
                mooring_node_new(&c, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_poll(ptr::null_mut(), 0),
                mooring_result::NullParameter
            );
            assert_eq!(last_error(), "node is NULL");
            let mut ev = core::mem::MaybeUninit::<mooring_event>::uninit();
            assert_eq!(
                mooring_node_next_event(ptr::null_mut(), ev.as_mut_ptr()),
                mooring_result::NullParameter
            );
            assert_eq!(mooring_node_fd(ptr::null()), -1);
            assert_eq!(mooring_node_next_deadline_ms(ptr::null()), -1);
            mooring_node_free(ptr::null_mut());

            let node = new_node(&c);
            let mut l = 0u32;
            assert_eq!(
                mooring_node_listen(node, ptr::null(), &mut l),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_listen(node, c"127.0.0.1:0".as_ptr(), ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_next_event(node, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_send(node, mooring_link::default(), ptr::null(), 3),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_get_stats(node, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_node_local_addr(node, 0, ptr::null_mut(), 10),
                mooring_result::NullParameter
            );
            mooring_node_free(node);
        }
    }

    #[test]
    fn a_max_links_the_host_cannot_provide_is_an_out_of_memory_code_not_an_abort() {
        let mut c = default_config();
        c.max_links = u32::MAX;
        c.max_connections = 10;
        let mut node = ptr::null_mut();
        // SAFETY: valid pointers.
        let r = unsafe { mooring_node_new(&c, &mut node) };
        assert_eq!(r, mooring_result::OutOfMemory);
        assert!(node.is_null());
        assert!(last_error().contains("out of memory"), "{}", last_error());
        // The process is fine: a sane config still builds.
        c.max_links = 16;
        // SAFETY: as above.
        unsafe { mooring_node_free(new_node(&c)) };
    }

    #[test]
    fn bad_arguments_are_named_error_codes() {
        let mut c = default_config();
        // SAFETY: valid pointers and NUL-terminated strings throughout.
        unsafe {
            c.framing = 7;
            let mut node = ptr::null_mut();
            assert_eq!(
                mooring_node_new(&c, &mut node),
                mooring_result::InvalidConfig
            );
            assert_eq!(last_error(), "framing: unknown value 7");
            c.framing = 0;
            c.buffer_size = 8;
            assert_eq!(
                mooring_node_new(&c, &mut node),
                mooring_result::InvalidConfig
            );
            assert!(last_error().contains("buffer_size"), "{}", last_error());
            c.buffer_size = 4096;
            c.allow = c"10.0.0.0/8,nonsense".as_ptr();
            assert_eq!(
                mooring_node_new(&c, &mut node),
                mooring_result::InvalidConfig
            );
            c.allow = c"10.0.0.0/8, 127.0.0.1".as_ptr();
            let node = new_node(&c);

            let mut l = 0u32;
            let bad_utf8 = [0xffu8 as c_char, 0];
            assert_eq!(
                mooring_node_listen(node, bad_utf8.as_ptr(), &mut l),
                mooring_result::InvalidUtf8
            );
            assert_eq!(
                mooring_node_listen(node, c"localhost:80".as_ptr(), &mut l),
                mooring_result::InvalidAddress
            );
            assert_eq!(mooring_node_poll(node, -2), mooring_result::InvalidArgument);
            assert_eq!(
                mooring_node_send(node, mooring_link { slot: 0, gen: 1 }, b"x".as_ptr(), 1),
                mooring_result::UnknownLink
            );
            assert_eq!(
                mooring_node_send(node, mooring_link { slot: 99, gen: 1 }, b"x".as_ptr(), 1),
                mooring_result::UnknownLink
            );
            assert_eq!(
                mooring_node_close(node, mooring_link::default()),
                mooring_result::UnknownLink
            );

            assert_eq!(
                mooring_node_listen(node, c"127.0.0.1:0".as_ptr(), &mut l),
                mooring_result::Ok
            );
            assert_eq!(l, 0);
            let mut small = [0 as c_char; 5];
            assert_eq!(
                mooring_node_local_addr(node, 0, small.as_mut_ptr(), small.len()),
                mooring_result::BufferTooSmall
            );
            assert_eq!(small[0], 0);
            let mut buf = [0 as c_char; MOORING_ADDR_MAX];
            assert_eq!(
                mooring_node_local_addr(node, 1, buf.as_mut_ptr(), buf.len()),
                mooring_result::UnknownLink
            );
            assert_eq!(
                mooring_node_local_addr(node, 0, buf.as_mut_ptr(), buf.len()),
                mooring_result::Ok
            );
            let text = CStr::from_ptr(buf.as_ptr()).to_str().unwrap();
            assert!(
                text.starts_with("127.0.0.1:") && !text.ends_with(":0"),
                "{text}"
            );

            let mut ev = core::mem::MaybeUninit::<mooring_event>::uninit();
            assert_eq!(mooring_node_poll(node, 0), mooring_result::Ok);
            assert_eq!(
                mooring_node_next_event(node, ev.as_mut_ptr()),
                mooring_result::NoEvent
            );
            assert_eq!(mooring_node_next_deadline_ms(node), -1);
            assert!(mooring_node_fd(node) >= 0);
            mooring_node_free(node);
        }
    }

    #[test]
    fn a_panic_poisons_the_node_and_later_calls_say_so() {
        let node = new_node(&default_config());
        // SAFETY: a live node.
        unsafe {
            let r = with_node(node, |_| panic!("injected"));
            assert_eq!(r, mooring_result::Panic);
            assert_eq!(mooring_node_poll(node, 0), mooring_result::Poisoned);
            assert_eq!(mooring_node_fd(node), -1);
            mooring_node_free(node);
        }
    }

    #[test]
    fn a_link_round_trip_through_the_c_api_echoes_and_reports_the_close() {
        let c = default_config();
        let (server, client, link) = connected_pair(&c);
        // SAFETY: live nodes, valid pointers, NUL-terminated strings.
        unsafe {
            assert_eq!(link.gen, 1);

            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut events = Vec::new();
            let mut echoed = None;
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while echoed.is_none() && std::time::Instant::now() < deadline {
                for (n, name) in [(client, "client"), (server, "server")] {
                    assert_eq!(mooring_node_poll(n, 10), mooring_result::Ok);
                    while mooring_node_next_event(n, &mut ev) == mooring_result::Ok {
                        events.push((name, ev.kind));
                        match (name, ev.kind) {
                            ("client", mooring_event_kind::Connected) => {
                                assert_eq!(ev.listener, MOORING_NO_LISTENER);
                                assert_eq!(
                                    mooring_node_send(client, link, b"hello".as_ptr(), 5),
                                    mooring_result::Ok
                                );
                            }
                            ("server", mooring_event_kind::Connected) => assert_eq!(ev.listener, 0),
                            ("server", mooring_event_kind::Message) => {
                                // Echo straight from the event's buffer.
                                assert_eq!(
                                    mooring_node_send(server, ev.link, ev.data, ev.len),
                                    mooring_result::Ok
                                );
                            }
                            ("client", mooring_event_kind::Message) => {
                                echoed =
                                    Some(core::slice::from_raw_parts(ev.data, ev.len).to_vec());
                            }
                            _ => {}
                        }
                    }
                }
            }
            assert_eq!(echoed.as_deref(), Some(&b"hello"[..]), "events: {events:?}");
            let mut s = mooring_link_stats::default();
            assert_eq!(
                mooring_node_get_link_stats(client, link, &mut s),
                mooring_result::Ok
            );
            assert_eq!(s.frames_out, 1);
            assert_eq!(mooring_node_close(client, link), mooring_result::Ok);
            assert_eq!(mooring_node_next_event(client, &mut ev), mooring_result::Ok);
            assert_eq!(ev.kind, mooring_event_kind::Closed);
            assert_eq!(ev.reason, mooring_close_reason::LocalClose as u32);
            assert_eq!(ev.link, link);
            assert_eq!(ev.stats.frames_in, 1);
            assert_eq!(
                mooring_node_send(client, link, b"x".as_ptr(), 1),
                mooring_result::NotOpen
            );
            assert_eq!(
                mooring_node_get_link_stats(client, link, &mut s),
                mooring_result::NotOpen
            );
            let mut ns = mooring_node_stats::default();
            assert_eq!(mooring_node_get_stats(server, &mut ns), mooring_result::Ok);
            assert_eq!(ns.accepted, 1);
            // The client's closed link is counted by reason, its traffic kept.
            let mut cs = mooring_node_stats::default();
            assert_eq!(mooring_node_get_stats(client, &mut cs), mooring_result::Ok);
            let local = mooring_close_reason::LocalClose as usize;
            assert_eq!(cs.closes[local], 1);
            assert_eq!(cs.closes.iter().sum::<u64>(), 1, "{:?}", cs.closes);
            assert_eq!((cs.frames_in, cs.frames_out, cs.links_open), (1, 1, 0));
            assert!(cs.bytes_in > 5 && cs.bytes_out > 5);
            mooring_node_free(client);
            mooring_node_free(server);
        }
    }

    #[test]
    fn a_redialing_link_keeps_its_handle_through_redialing_events_until_closed() {
        let mut c = default_config();
        c.redial = 1;
        c.reconnect_min_ms = 5;
        c.reconnect_max_ms = 5;
        let free = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr =
            std::ffi::CString::new(free.local_addr().expect("addr").to_string()).expect("no NUL");
        drop(free); // nobody listens there now: every attempt is refused
                    // SAFETY: live node, valid pointers, NUL-terminated strings.
        unsafe {
            let node = new_node(&c);
            let mut link = mooring_link::default();
            assert_eq!(
                mooring_node_connect(node, addr.as_ptr(), &mut link),
                mooring_result::Ok
            );
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let mut attempts = Vec::new();
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while attempts.len() < 2 && std::time::Instant::now() < deadline {
                assert_eq!(mooring_node_poll(node, 10), mooring_result::Ok);
                while mooring_node_next_event(node, &mut ev) == mooring_result::Ok {
                    assert_eq!(ev.kind, mooring_event_kind::Redialing, "never CLOSED");
                    assert_eq!(ev.link, link, "the handle stays");
                    assert_eq!(ev.reason, mooring_close_reason::ConnectionRefused as u32);
                    assert!(ev.delay_ms <= 5);
                    attempts.push(ev.attempt);
                }
            }
            assert_eq!(attempts.get(..2), Some(&[1, 2][..]), "{attempts:?}");
            assert_eq!(mooring_node_close(node, link), mooring_result::Ok);
            assert_eq!(mooring_node_next_event(node, &mut ev), mooring_result::Ok);
            assert_eq!(ev.kind, mooring_event_kind::Closed);
            assert_eq!(ev.reason, mooring_close_reason::LocalClose as u32);
            assert_eq!(ev.link, link);
            mooring_node_free(node);
        }
    }
}

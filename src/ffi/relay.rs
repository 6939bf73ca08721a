//! The relay handle (`mooring_relay`): the library's relay engine
//! ([`Relay`]) on its own [`Node`], for C programs that embed a store-and-
//! forward relay: create, poll, events, stats, free.

use core::ffi::c_char;
use core::time::Duration;

use super::node::{setup_code, setup_error};
use super::relay_config::convert;
use super::relay_events::{c_pressure, RelayEvents};
use super::relay_types::*;
use super::types::mooring_result;
use super::{
    fail, free_handle, new_handle, next_event, poll_timeout, with_handle, write_addr, Handle,
};
use crate::node::{ListenerId, Node};
use crate::relay::{Relay, StartError, Started};
use crate::spool::SpoolError;

/// A relay: a device listener, one upstream, and its queue (in memory or a
/// spool directory). Opaque; create with `mooring_relay_new`, free with
/// `mooring_relay_free`. Used by one thread at a time (it may move between
/// threads between calls).
#[allow(non_camel_case_types)]
pub struct mooring_relay {
    node: Node,
    listener: ListenerId,
    relay: Relay,
    events: RelayEvents,
    poisoned: bool,
}

impl Handle for mooring_relay {
    const NAME: &'static str = "relay";
    const FREE: &'static str = "mooring_relay_free";
    fn poisoned(&mut self) -> &mut bool {
        &mut self.poisoned
    }
}

/// A start failure as its result code, with the last error set.
fn start_error(e: StartError) -> mooring_result {
    match e {
        StartError::Config(e) => fail(mooring_result::InvalidConfig, format_args!("config: {e}")),
        StartError::Node(e) => setup_error(e),
        StartError::Listen(e) => fail(setup_code(&e), format_args!("listen: {e}")),
        StartError::Relay(crate::relay::RelayError::Config(e)) => {
            fail(mooring_result::InvalidConfig, format_args!("config: {e}"))
        }
        StartError::Relay(crate::relay::RelayError::Spool(e)) => {
            let code = match e {
                SpoolError::Config(_) | SpoolError::Layout(_) => mooring_result::InvalidConfig,
                _ => mooring_result::Io,
            };
            fail(code, format_args!("spool: {e}"))
        }
    }
}

/// Builds a relay from `config` (read during the call only): its node, its
/// device listener bound, its spool opened and recovered. On success `*out`
/// is a relay the caller owns and must pass to `mooring_relay_free`; on
/// failure `*out` is NULL and `mooring_last_error` tells why
/// (`MOORING_RESULT_IO` for a spool held by another relay or a disk that
/// failed, `MOORING_RESULT_INVALID_CONFIG` for settings that cannot work).
/// Nothing is sent before the first `mooring_relay_poll`.
///
/// # Safety
/// `config` is NULL or points to a readable `mooring_relay_config` whose
/// strings are NULL or NUL-terminated; `out` is NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_new(
    config: *const mooring_relay_config,
    out: *mut *mut mooring_relay,
) -> mooring_result {
    let build = |c: mooring_relay_config| {
        // SAFETY: the config's strings by contract.
        let cfg = unsafe { convert(&c) }?;
        let events = RelayEvents::new(cfg.event_queue, cfg.event_bytes)
            .map_err(|e| setup_error(e.into()))?;
        let Started {
            node,
            listener,
            relay,
        } = cfg.devices.start(cfg.relay).map_err(start_error)?;
        Ok(mooring_relay {
            node,
            listener,
            relay,
            events,
            poisoned: false,
        })
    };
    // SAFETY: the caller's contract is new_handle's.
    unsafe { new_handle(config, out, build) }
}

/// Frees a relay: closes its listener and links (without events), releases
/// its spool's lock and all its memory. What the spool holds stays on disk
/// for the next relay on that directory. NULL is a no-op. The pointer, and
/// every event pointer from it, are invalid afterwards. Allowed on a
/// poisoned relay.
///
/// # Safety
/// `relay` is NULL or a pointer from `mooring_relay_new` not yet freed, used
/// by no other call at the same time.
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_free(relay: *mut mooring_relay) {
    // SAFETY: the caller's contract is free_handle's.
    unsafe { free_handle(relay) }
}

/// Writes the device listener's bound address (the real port when bound to
/// port 0) into `buf` as NUL-terminated `ip:port`; `MOORING_ADDR_MAX` bytes
/// always suffice (with fewer, `MOORING_RESULT_BUFFER_TOO_SMALL` and `""`).
///
/// # Safety
/// `relay` NULL or live (not used concurrently); `buf` NULL or `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_local_addr(
    relay: *mut mooring_relay,
    buf: *mut c_char,
    len: usize,
) -> mooring_result {
    let f = |h: &mut mooring_relay| {
        let addr = || {
            h.node
                .local_addr(h.listener)
                .ok_or_else(|| fail(mooring_result::Io, "the device listener has no address"))
        };
        // SAFETY: the caller's contract for `buf`/`len`.
        unsafe { write_addr(buf, len, addr) }
    };
    // SAFETY: the caller's contract is with_handle's.
    unsafe { with_handle(relay, f) }
}

/// One turn of the relay: does what is due (spool commit and the AAs it
/// allows, recovered messages, overdue devices, redials, writes upstream),
/// waits until a socket is ready, a deadline passes or `timeout_ms` elapses
/// (0: do not wait; -1: no limit but the relay's own deadlines), handles
/// everything that happened, and commits the spool once for all messages
/// accepted in the turn. Then drain `mooring_relay_next_event` until
/// `MOORING_RESULT_NO_EVENT`. Invalidates the pointers of events taken before.
///
/// # Safety
/// `relay` NULL or live (not used concurrently).
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_poll(
    relay: *mut mooring_relay,
    timeout_ms: i64,
) -> mooring_result {
    let f = |h: &mut mooring_relay| {
        let wait = poll_timeout(timeout_ms)?.unwrap_or(Duration::MAX);
        h.events.compact();
        let events = &mut h.events;
        h.relay
            .turn(&mut h.node, wait, &mut |ev| events.record(&ev))
            .map_err(|e| fail(mooring_result::Io, format_args!("poll: {e}")))
    };
    // SAFETY: the caller's contract is with_handle's.
    unsafe { with_handle(relay, f) }
}

/// Takes the next event into `*out`: `MOORING_RESULT_OK` with an event, or
/// `MOORING_RESULT_NO_EVENT` (and `*out` untouched) when there is none until
/// the next `mooring_relay_poll`. Its `id`, `ack` and `detail` stay valid
/// until the next `mooring_relay_poll` or `mooring_relay_free`.
///
/// # Safety
/// `relay` NULL or live (not used concurrently); `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_next_event(
    relay: *mut mooring_relay,
    out: *mut mooring_relay_event,
) -> mooring_result {
    // SAFETY: the caller's contract is next_event's.
    unsafe { next_event(relay, out, |h| h.events.next()) }
}

/// Copies the relay's numbers into `*out`: its queue, counters since
/// `mooring_relay_new`, and with a spool its use, the age of its oldest
/// undelivered message (read back from disk: call it for stats, not per
/// message) and what recovery found at start.
///
/// # Safety
/// `relay` NULL or live (not used concurrently); `out` NULL or writable.
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_get_stats(
    relay: *mut mooring_relay,
    out: *mut mooring_relay_stats,
) -> mooring_result {
    let f = |h: &mut mooring_relay| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        let s = stats(h);
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(s) };
        Ok(())
    };
    // SAFETY: the caller's contract is with_handle's.
    unsafe { with_handle(relay, f) }
}

/// The relay's numbers now.
fn stats(h: &mut mooring_relay) -> mooring_relay_stats {
    let c = h.events.counts;
    let t = c.tally;
    let refused = [
        t.refused_not_hl7,
        t.refused_no_control_id,
        t.queue_full,
        t.spool_refused,
    ];
    let mut s = mooring_relay_stats {
        queued: h.relay.queued() as u64,
        devices: c.devices,
        upstream_connected: u32::from(t.upstream_up),
        received: c.received,
        duplicates: t.duplicates,
        refused: refused.iter().fold(0u64, |a, &b| a.saturating_add(b)),
        accepted: t.queued,
        forwarded: t.forwarded,
        acked: c.acked,
        failed: t.failed,
        reply_timeouts: c.reply_timeouts,
        refused_not_hl7: t.refused_not_hl7,
        refused_no_control_id: t.refused_no_control_id,
        queue_full: t.queue_full,
        spool_refused: t.spool_refused,
        acks_aa: t.acks.accept,
        acks_ae: t.acks.error,
        acks_ar: t.acks.reject,
        unexpected_replies: t.unexpected_replies,
        upstream_connects: t.upstream_connects,
        upstream_losses: t.upstream_losses,
        upstream_reconnects: t.upstream_reconnects,
        events_dropped: c.dropped,
        upstream_switches_failover: t.upstream_switches_failover,
        upstream_switches_primary_back: t.upstream_switches_primary_back,
        ..mooring_relay_stats::default()
    };
    let now = h.node.now();
    if let (Some(sp), Some(r), Some(p)) = (
        h.relay.spool_stats(now),
        h.relay.spool_recovery(),
        h.relay.spool_pressure(),
    ) {
        s.spool = 1;
        s.spool_pressure = c_pressure(p);
        s.spool_bytes_used = sp.bytes_used;
        s.spool_bytes_total = sp.bytes_total;
        s.spool_records = sp.records as u64;
        s.spool_oldest_age_ms = u64::try_from(sp.oldest_age.as_millis()).unwrap_or(u64::MAX);
        s.spool_recovered = r.recovered;
        s.spool_corrupt = r.corrupt;
        s.spool_unindexed = r.unindexed;
        s.spool_truncated_bytes = r.truncated_bytes;
    }
    s
}

#[cfg(test)]
mod tests {
    use super::super::relay_config::mooring_relay_config_default;
    use super::*;
    use crate::ffi::tests::last_error;
    use core::ffi::CStr;
    use core::ptr;
    use std::ffi::CString;

    fn config(dir: &CStr) -> mooring_relay_config {
        let mut c = core::mem::MaybeUninit::uninit();
        // SAFETY: writable.
        assert_eq!(
            unsafe { mooring_relay_config_default(c.as_mut_ptr()) },
            mooring_result::Ok
        );
        // SAFETY: filled.
        let mut c = unsafe { c.assume_init() };
        c.listen = c"127.0.0.1:0".as_ptr();
        // Nothing listens there: the relay keeps redialling, which is fine here.
        c.upstream = c"127.0.0.1:9".as_ptr();
        c.spool = mooring_spool_kind::Directory as u32;
        c.spool_dir = dir.as_ptr();
        (c.spool_size, c.max_frame) = (1 << 20, 16 << 10);
        c
    }

    fn spool_dir(name: &str) -> CString {
        let dir =
            std::env::temp_dir().join(format!("mooring-c-relay-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        CString::new(dir.to_str().unwrap()).unwrap()
    }

    #[test]
    fn null_and_bad_arguments_are_named_error_codes() {
        let dir = spool_dir("args");
        let mut r = ptr::null_mut();
        // SAFETY: NULL is refused with a code; the rest are valid pointers.
        unsafe {
            assert_eq!(
                mooring_relay_new(ptr::null(), &mut r),
                mooring_result::NullParameter
            );
            assert_eq!(last_error(), "config is NULL");
            let mut c = config(&dir);
            c.listen = ptr::null();
            assert_eq!(mooring_relay_new(&c, &mut r), mooring_result::NullParameter);
            assert_eq!(last_error(), "listen is NULL");
            assert!(r.is_null());
            assert_eq!(
                mooring_relay_poll(ptr::null_mut(), 0),
                mooring_result::NullParameter
            );
            assert_eq!(last_error(), "relay is NULL");
            let mut ev = core::mem::MaybeUninit::uninit();
            assert_eq!(
                mooring_relay_next_event(ptr::null_mut(), ev.as_mut_ptr()),
                mooring_result::NullParameter
            );
            mooring_relay_free(ptr::null_mut());
            // A spool smaller than what one message may need is named.
            c = config(&dir);
            c.max_frame = 1 << 20;
            assert_eq!(mooring_relay_new(&c, &mut r), mooring_result::InvalidConfig);
            assert!(last_error().starts_with("spool: "), "{}", last_error());

            assert_eq!(mooring_relay_new(&config(&dir), &mut r), mooring_result::Ok);
            assert_eq!(mooring_relay_poll(r, -2), mooring_result::InvalidArgument);
            assert_eq!(
                mooring_relay_get_stats(r, ptr::null_mut()),
                mooring_result::NullParameter
            );
            assert_eq!(
                mooring_relay_next_event(r, ptr::null_mut()),
                mooring_result::NullParameter
            );
            let mut small = [0 as c_char; 4];
            assert_eq!(
                mooring_relay_local_addr(r, small.as_mut_ptr(), small.len()),
                mooring_result::BufferTooSmall
            );
            mooring_relay_free(r);
        }
        let _ = std::fs::remove_dir_all(dir.to_str().unwrap());
    }

    #[test]
    fn a_spool_held_by_another_relay_is_refused_and_the_first_reports_its_spool() {
        let dir = spool_dir("lock");
        let (mut a, mut b) = (ptr::null_mut(), ptr::null_mut());
        // SAFETY: valid pointers and NUL-terminated strings throughout.
        unsafe {
            assert_eq!(mooring_relay_new(&config(&dir), &mut a), mooring_result::Ok);
            assert_eq!(mooring_relay_new(&config(&dir), &mut b), mooring_result::Io);
            assert!(b.is_null());
            let e = last_error();
            assert!(e.starts_with("spool: ") && e.contains("locked"), "{e}");

            let mut addr = [0 as c_char; crate::ffi::MOORING_ADDR_MAX];
            assert_eq!(
                mooring_relay_local_addr(a, addr.as_mut_ptr(), addr.len()),
                mooring_result::Ok
            );
            let addr = CStr::from_ptr(addr.as_ptr()).to_str().unwrap();
            assert!(
                addr.starts_with("127.0.0.1:") && !addr.ends_with(":0"),
                "{addr}"
            );

            // The first poll reports the spool, then the first dial.
            assert_eq!(mooring_relay_poll(a, 0), mooring_result::Ok);
            let mut ev = core::mem::MaybeUninit::<mooring_relay_event>::zeroed().assume_init();
            assert_eq!(mooring_relay_next_event(a, &mut ev), mooring_result::Ok);
            assert_eq!(ev.kind, mooring_relay_event_kind::SpoolOpened);
            let detail = core::slice::from_raw_parts(ev.detail, ev.detail_len);
            assert_eq!(detail, dir.as_bytes());
            assert_eq!((ev.size, ev.recovered, ev.corrupt), (1 << 20, 0, 0));
            let mut kinds = Vec::new();
            while mooring_relay_next_event(a, &mut ev) == mooring_result::Ok {
                kinds.push(ev.kind);
            }
            assert!(
                kinds.contains(&mooring_relay_event_kind::UpstreamConnecting),
                "{kinds:?}"
            );
            let mut s = mooring_relay_stats::default();
            assert_eq!(mooring_relay_get_stats(a, &mut s), mooring_result::Ok);
            assert_eq!(
                (s.spool, s.spool_bytes_total, s.spool_records),
                (1, 1 << 20, 0)
            );
            assert_eq!(s.spool_pressure, mooring_spool_pressure::Ok as u32);
            assert_eq!((s.received, s.queued, s.events_dropped), (0, 0, 0));

            // Freed, the spool is free for the next relay.
            mooring_relay_free(a);
            assert_eq!(mooring_relay_new(&config(&dir), &mut b), mooring_result::Ok);
            mooring_relay_free(b);
        }
        let _ = std::fs::remove_dir_all(dir.to_str().unwrap());
    }

    /// Polls `r` until `done` holds for its stats (bounded); returns them.
    ///
    /// # Safety
    /// `r` is a live relay.
    unsafe fn poll_until(
        r: *mut mooring_relay,
        done: impl Fn(&mooring_relay_stats) -> bool,
        kinds: &mut Vec<mooring_relay_event_kind>,
    ) -> mooring_relay_stats {
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut s = mooring_relay_stats::default();
        let mut ev = core::mem::MaybeUninit::<mooring_relay_event>::uninit();
        while std::time::Instant::now() < deadline {
            // SAFETY: a live relay, writable outputs.
            unsafe {
                assert_eq!(mooring_relay_poll(r, 10), mooring_result::Ok);
                while mooring_relay_next_event(r, ev.as_mut_ptr()) == mooring_result::Ok {
                    kinds.push(ev.assume_init_ref().kind);
                }
                assert_eq!(mooring_relay_get_stats(r, &mut s), mooring_result::Ok);
            }
            if done(&s) {
                return s;
            }
        }
        panic!("not reached within 10 s: {s:?}; events {kinds:?}");
    }

    #[test]
    fn messages_a_freed_relay_left_in_its_spool_are_recovered_by_the_next() {
        use std::io::Write;
        let dir = spool_dir("recover");
        // An upstream that accepts (the kernel's backlog) and never answers.
        let silent = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let up = CString::new(silent.local_addr().unwrap().to_string()).unwrap();
        let mut c = config(&dir);
        c.upstream = up.as_ptr();
        let mut kinds = Vec::new();
        // SAFETY: live relays, valid pointers, NUL-terminated strings.
        unsafe {
            let mut a = ptr::null_mut();
            assert_eq!(mooring_relay_new(&c, &mut a), mooring_result::Ok);
            let mut addr = [0 as c_char; crate::ffi::MOORING_ADDR_MAX];
            assert_eq!(
                mooring_relay_local_addr(a, addr.as_mut_ptr(), addr.len()),
                mooring_result::Ok
            );
            let addr = CStr::from_ptr(addr.as_ptr()).to_str().unwrap();
            let mut device = std::net::TcpStream::connect(addr).unwrap();
            for id in ["K1", "K2"] {
                let msg = format!("\x0bMSH|^~\\&|DEV|W|UP|H|20260101||ADT^A01|{id}|P|2.5\r\x1c\r");
                device.write_all(msg.as_bytes()).unwrap();
            }
            let s = poll_until(a, |s| s.spool_records == 2, &mut kinds);
            assert_eq!((s.received, s.accepted, s.acked), (2, 2, 0), "{s:?}");
            assert!(s.spool_bytes_used > 0, "{s:?}");
            mooring_relay_free(a);

            let mut b = ptr::null_mut();
            assert_eq!(mooring_relay_new(&c, &mut b), mooring_result::Ok);
            kinds.clear();
            let s = poll_until(b, |s| s.queued == 2, &mut kinds);
            assert_eq!(kinds.first(), Some(&mooring_relay_event_kind::SpoolOpened));
            assert_eq!((s.spool_recovered, s.spool_corrupt), (2, 0), "{s:?}");
            assert_eq!((s.spool_records, s.received), (2, 0), "{s:?}");
            mooring_relay_free(b);
        }
        let _ = std::fs::remove_dir_all(dir.to_str().unwrap());
    }

    #[test]
    fn a_panic_poisons_the_relay_and_later_calls_say_so() {
        let dir = spool_dir("poison");
        let mut r = ptr::null_mut();
        // SAFETY: a live relay.
        unsafe {
            assert_eq!(mooring_relay_new(&config(&dir), &mut r), mooring_result::Ok);
            let res = with_handle(r, |_: &mut mooring_relay| panic!("injected"));
            assert_eq!(res, mooring_result::Panic);
            assert_eq!(
                last_error(),
                "mooring panicked (a bug); this relay is poisoned"
            );
            assert_eq!(mooring_relay_poll(r, 0), mooring_result::Poisoned);
            assert!(
                last_error().contains("only mooring_relay_free"),
                "{}",
                last_error()
            );
            mooring_relay_free(r);
        }
        let _ = std::fs::remove_dir_all(dir.to_str().unwrap());
    }
}

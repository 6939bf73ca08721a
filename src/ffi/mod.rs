//! The C API: a [`Node`](crate::Node) behind an opaque handle, for C programs that embed mooring.
//!
//! The header `src/mooring.h` is generated from this module by cbindgen (pinned
//! version, settings in `src/cbindgen.toml`); CI regenerates it and fails when the
//! checked-in copy differs. Conventions follow rustls-ffi:
//!
//! - Opaque handle [`mooring_node`], created by [`mooring_node_new`] and freed by
//!   [`mooring_node_free`]; everything else is plain `#[repr(C)]` data copied in
//!   or out. Functions are named `<type>_<method>`; output parameters come last.
//! - Every function returns a [`mooring_result`] (or a documented sentinel) and
//!   never lets a panic cross the boundary: each body runs inside
//!   `catch_unwind`. A node whose call panicked is poisoned: every later call on
//!   it except [`mooring_node_free`] returns `MOORING_RESULT_POISONED`.
//! - NULL pointers, lengths that cannot be a Rust slice, invalid UTF-8, unknown
//!   enum values, unknown or stale links and listeners are error codes. No
//!   partial success: a call that fails has changed nothing and written no output
//!   except where its documentation says so.
//! - The text of the last failure on the calling thread is kept for
//!   [`mooring_last_error`].
//!
//! Threads: a node is not thread-safe. Use each node from one thread at a time
//! (it may move between threads between calls).
//!
//! Files (cbindgen reads `mod.rs`, then its modules in declaration order, which
//! rustfmt keeps alphabetical; the header lists the functions in that order, so
//! a new function goes into the file, and the place, where its header line
//! belongs):
//!
//! - `mod.rs`: the panic boundary, argument checks and the last error; names
//!   and the version.
//! - `types`: the `#[repr(C)]` types and constants of the header.
//! - `config`: `mooring_config` to and from the Rust configurations.
//! - `events`: the node's events as `mooring_event`s.
//! - `node`: the node handle and its link calls.
//! - `relay`: the relay handle (`mooring::relay::Relay` on its own node) and
//!   its calls; `relay_config`, `relay_events` and `relay_types` its
//!   configuration, its events kept between polls, and its header types.
//! - `session`: reliable session calls.
//! - `stats`: counters of the node and its links.
//! - `tls`: the config's TLS fields to the TLS settings.
//! - `wait`: the node's descriptor and next deadline, for the caller's own loop.

mod config;
mod events;
mod node;
mod relay;
mod relay_config;
mod relay_events;
mod relay_types;
mod session;
mod stats;
mod tls;
mod types;
mod wait;

pub use config::mooring_config_default;
pub use node::{
    mooring_node, mooring_node_close, mooring_node_connect, mooring_node_free, mooring_node_listen,
    mooring_node_local_addr, mooring_node_new, mooring_node_next_event, mooring_node_poll,
    mooring_node_send,
};
pub use relay::{
    mooring_relay, mooring_relay_free, mooring_relay_get_stats, mooring_relay_local_addr,
    mooring_relay_new, mooring_relay_next_event, mooring_relay_poll,
};
pub use relay_config::mooring_relay_config_default;
pub use relay_types::*;
pub use session::{
    mooring_node_close_session, mooring_node_open_session, mooring_node_session_send,
};
pub use stats::{mooring_node_get_link_stats, mooring_node_get_stats};
pub use types::*;
#[cfg(unix)]
pub use wait::mooring_node_fd;
pub use wait::mooring_node_next_deadline_ms;

use core::ffi::{c_char, CStr};
use core::fmt::{self, Write as _};
use core::ptr;
use std::cell::RefCell;
use std::net::SocketAddr;
use std::panic::{catch_unwind, AssertUnwindSafe};

use crate::error::CloseReason;

thread_local! {
    static LAST_ERROR: RefCell<String> = const { RefCell::new(String::new()) };
}

/// Records `msg` as the calling thread's last error and returns `code`.
fn fail(code: mooring_result, msg: impl fmt::Display) -> mooring_result {
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
            let _ = write!(e, "{msg}");
        }
    });
    code
}

/// Empties the calling thread's last error: every call that can fail does this
/// first, so the text always belongs to the most recent such call (see
/// `mooring_last_error`). Keeps the string's memory.
fn clear_last_error() {
    let _ = LAST_ERROR.try_with(|e| {
        if let Ok(mut e) = e.try_borrow_mut() {
            e.clear();
        }
    });
}

/// [`boundary`] for an entry point that can fail: the last error is cleared
/// first, and set again only if `body` fails.
fn fallible<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    clear_last_error();
    boundary(on_panic, body)
}

/// Runs `body`, turning a panic into `on_panic` (with the last error set).
fn boundary<T>(on_panic: T, body: impl FnOnce() -> T) -> T {
    match catch_unwind(AssertUnwindSafe(body)) {
        Ok(v) => v,
        Err(_) => {
            fail(
                mooring_result::Panic,
                "mooring panicked (a bug); the call failed",
            );
            on_panic
        }
    }
}

/// A NUL-terminated C string argument as `&str`.
///
/// # Safety
/// `s` is NULL or points to a NUL-terminated string that outlives `'a`.
unsafe fn c_str<'a>(s: *const c_char, what: &str) -> Result<&'a str, mooring_result> {
    if s.is_null() {
        return Err(fail(
            mooring_result::NullParameter,
            format_args!("{what} is NULL"),
        ));
    }
    // SAFETY: non-NULL and NUL-terminated by the caller's contract.
    let s = unsafe { CStr::from_ptr(s) };
    s.to_str().map_err(|_| {
        fail(
            mooring_result::InvalidUtf8,
            format_args!("{what} is not valid UTF-8"),
        )
    })
}

/// The `len` bytes at `data` (NULL allowed when `len` is 0), checked.
///
/// # Safety
/// `data` is NULL or points to `len` readable bytes that outlive the use.
unsafe fn c_bytes<'a>(data: *const u8, len: usize) -> Result<&'a [u8], mooring_result> {
    if data.is_null() && len > 0 {
        return Err(fail(mooring_result::NullParameter, "data is NULL"));
    }
    if len > isize::MAX as usize {
        return Err(fail(mooring_result::InvalidArgument, "len is too large"));
    }
    if len == 0 {
        return Ok(&[]);
    }
    // SAFETY: `len` readable bytes at non-NULL `data` by contract.
    Ok(unsafe { core::slice::from_raw_parts(data, len) })
}

/// An opaque handle C holds (`mooring_node`, `mooring_relay`): poisoned by a
/// panic inside a call on it.
trait Handle {
    /// Its name in error texts (`"node is NULL"`).
    const NAME: &'static str;
    /// The one call a poisoned handle still allows.
    const FREE: &'static str;
    /// Set when a call on it panicked.
    fn poisoned(&mut self) -> &mut bool;
}

/// Runs `f` on the handle behind `h`: NULL and poison checks, panic boundary,
/// poison on panic. The last error is cleared first.
///
/// # Safety
/// `h` is NULL or a live pointer from the handle's constructor, used by no
/// other call at the same time.
unsafe fn with_handle<H: Handle>(
    h: *mut H,
    f: impl FnOnce(&mut H) -> Result<(), mooring_result>,
) -> mooring_result {
    clear_last_error();
    if h.is_null() {
        return fail(
            mooring_result::NullParameter,
            format_args!("{} is NULL", H::NAME),
        );
    }
    let res = catch_unwind(AssertUnwindSafe(|| {
        // SAFETY: non-NULL, and live and unshared by the caller's contract.
        let r = unsafe { &mut *h };
        if *r.poisoned() {
            return Err(fail(
                mooring_result::Poisoned,
                format_args!(
                    "an earlier call on this {} panicked; only {} is allowed",
                    H::NAME,
                    H::FREE
                ),
            ));
        }
        f(r)
    }));
    match res {
        Ok(Ok(())) => mooring_result::Ok,
        Ok(Err(code)) => code,
        Err(_) => {
            // SAFETY: as above; the borrow inside the closure ended with the unwind.
            unsafe { *(*h).poisoned() = true };
            fail(
                mooring_result::Panic,
                format_args!("mooring panicked (a bug); this {} is poisoned", H::NAME),
            )
        }
    }
}

/// The body of a handle's constructor (`mooring_node_new`, `mooring_relay_new`):
/// `*out` is set to NULL first, the config is read, and on success the handle
/// `build` makes from it is boxed into `*out`.
///
/// # Safety
/// `config` is NULL or points to a readable `C`; `out` is NULL or writable.
unsafe fn new_handle<C, H>(
    config: *const C,
    out: *mut *mut H,
    build: impl FnOnce(C) -> Result<H, mooring_result>,
) -> mooring_result {
    fallible(mooring_result::Panic, || {
        if out.is_null() {
            return fail(mooring_result::NullParameter, "out is NULL");
        }
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(ptr::null_mut()) };
        if config.is_null() {
            return fail(mooring_result::NullParameter, "config is NULL");
        }
        // SAFETY: non-NULL and readable by contract; every bit pattern is a valid config.
        let c = unsafe { config.read() };
        match build(c) {
            Ok(h) => {
                // SAFETY: as above.
                unsafe { out.write(Box::into_raw(Box::new(h))) };
                mooring_result::Ok
            }
            Err(code) => code,
        }
    })
}

/// The body of a `*_config_default` call: writes `value()` into `*out`.
///
/// # Safety
/// `out` is NULL or writable.
unsafe fn write_default<T>(out: *mut T, value: impl FnOnce() -> T) -> mooring_result {
    fallible(mooring_result::Panic, || {
        if out.is_null() {
            return fail(mooring_result::NullParameter, "out is NULL");
        }
        // SAFETY: non-NULL and writable by contract.
        unsafe { out.write(value()) };
        mooring_result::Ok
    })
}

/// The body of a handle's `_free`: NULL is a no-op.
///
/// # Safety
/// `h` is NULL or a pointer from [`new_handle`] not yet freed, used by no
/// other call at the same time.
unsafe fn free_handle<H>(h: *mut H) {
    if h.is_null() {
        return;
    }
    boundary((), || {
        // SAFETY: from Box::into_raw in new_handle and not yet freed, by contract.
        drop(unsafe { Box::from_raw(h) });
    });
}

/// A poll's `timeout_ms` (-1: no limit, else >= 0) as a wait: `None` for no limit.
fn poll_timeout(timeout_ms: i64) -> Result<Option<core::time::Duration>, mooring_result> {
    match timeout_ms {
        -1 => Ok(None),
        t => u64::try_from(t)
            .map(|ms| Some(core::time::Duration::from_millis(ms)))
            .map_err(|_| {
                fail(
                    mooring_result::InvalidArgument,
                    format_args!("timeout_ms must be -1 or >= 0 (it is {t})"),
                )
            }),
    }
}

/// The body of a `_next_event` call: writes the event `take` finds into
/// `*out`, or returns `MOORING_RESULT_NO_EVENT` (and leaves `*out` alone).
///
/// # Safety
/// As [`with_handle`]; `out` NULL or writable.
unsafe fn next_event<H: Handle, E>(
    h: *mut H,
    out: *mut E,
    take: impl FnOnce(&mut H) -> Option<E>,
) -> mooring_result {
    let mut got = false;
    let f = |h: &mut H| {
        if out.is_null() {
            return Err(fail(mooring_result::NullParameter, "out is NULL"));
        }
        if let Some(ev) = take(h) {
            got = true;
            // SAFETY: non-NULL and writable by contract.
            unsafe { out.write(ev) };
        }
        Ok(())
    };
    // SAFETY: the caller's contract is with_handle's.
    match unsafe { with_handle(h, f) } {
        mooring_result::Ok if !got => mooring_result::NoEvent,
        r => r,
    }
}

/// Writes the address `addr` gives into the caller's `buf` as NUL-terminated
/// `ip:port` (the buffer is checked first).
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
unsafe fn write_addr(
    buf: *mut c_char,
    len: usize,
    addr: impl FnOnce() -> Result<SocketAddr, mooring_result>,
) -> Result<(), mooring_result> {
    if buf.is_null() {
        return Err(fail(mooring_result::NullParameter, "buf is NULL"));
    }
    if len > isize::MAX as usize {
        return Err(fail(mooring_result::InvalidArgument, "len is too large"));
    }
    let addr = addr()?;
    // SAFETY: `len` writable bytes by contract (checked to be a valid slice length).
    let out = unsafe { core::slice::from_raw_parts_mut(buf, len) };
    if write_c(out, format_args!("{addr}")) {
        Ok(())
    } else {
        Err(fail(
            mooring_result::BufferTooSmall,
            format_args!("{len} bytes cannot hold {addr} and its NUL"),
        ))
    }
}

fn parse_addr(s: &str) -> Result<SocketAddr, mooring_result> {
    s.trim().parse().map_err(|_| {
        fail(
            mooring_result::InvalidAddress,
            format_args!("not an ip:port address: {s:?}"),
        )
    })
}

/// Writes `args` and a NUL into `buf`; false (and nothing useful written) if it does not fit.
fn write_c(buf: &mut [c_char], args: fmt::Arguments<'_>) -> bool {
    struct W<'b> {
        buf: &'b mut [c_char],
        len: usize,
    }
    impl fmt::Write for W<'_> {
        fn write_str(&mut self, s: &str) -> fmt::Result {
            // Keep one byte for the NUL.
            let room = self.buf.len().saturating_sub(self.len + 1);
            if s.len() > room {
                return Err(fmt::Error);
            }
            for (d, &b) in self.buf[self.len..].iter_mut().zip(s.as_bytes()) {
                *d = b as c_char;
            }
            self.len += s.len();
            Ok(())
        }
    }
    if buf.is_empty() {
        return false;
    }
    let mut w = W { buf, len: 0 };
    let ok = w.write_fmt(args).is_ok();
    let end = if ok { w.len } else { 0 };
    w.buf[end] = 0;
    ok
}

/// The name of a `mooring_close_reason` code: `CloseReason`'s own, so the C
/// names are the CLI's.
fn reason_name(code: u32) -> &'static CStr {
    if code == mooring_close_reason::None as u32 {
        return c"None";
    }
    u8::try_from(code)
        .ok()
        .and_then(CloseReason::from_code)
        .map_or(c"Unknown", CloseReason::c_name)
}

/// The header's name of a `mooring_result` code (a test checks it against the header).
fn result_name(code: u32) -> &'static CStr {
    match code {
        0 => c"MOORING_RESULT_OK",
        1 => c"MOORING_RESULT_NO_EVENT",
        2 => c"MOORING_RESULT_NULL_PARAMETER",
        3 => c"MOORING_RESULT_INVALID_ARGUMENT",
        4 => c"MOORING_RESULT_INVALID_UTF8",
        5 => c"MOORING_RESULT_INVALID_ADDRESS",
        6 => c"MOORING_RESULT_INVALID_CONFIG",
        7 => c"MOORING_RESULT_UNKNOWN_LINK",
        8 => c"MOORING_RESULT_NO_SLOT",
        9 => c"MOORING_RESULT_IO",
        10 => c"MOORING_RESULT_TX_FULL",
        11 => c"MOORING_RESULT_FRAME_TOO_LARGE",
        12 => c"MOORING_RESULT_NOT_OPEN",
        13 => c"MOORING_RESULT_BUFFER_TOO_SMALL",
        14 => c"MOORING_RESULT_POISONED",
        15 => c"MOORING_RESULT_PANIC",
        16 => c"MOORING_RESULT_QUEUE_FULL",
        17 => c"MOORING_RESULT_SESSION_ENDED",
        18 => c"MOORING_RESULT_OUT_OF_MEMORY",
        _ => c"MOORING_RESULT_UNKNOWN",
    }
}

/// The library version, e.g. `"0.1.0"`: a static string, never NULL, not to be freed.
#[no_mangle]
pub extern "C" fn mooring_version() -> *const c_char {
    const V: &CStr =
        match CStr::from_bytes_with_nul(concat!(env!("CARGO_PKG_VERSION"), "\0").as_bytes()) {
            Ok(v) => v,
            Err(_) => c"unknown",
        };
    V.as_ptr()
}

/// The constant's name of a `mooring_result` code (`"MOORING_RESULT_TX_FULL"`), or
/// `"MOORING_RESULT_UNKNOWN"`. A static string, never NULL, not to be freed.
#[no_mangle]
pub extern "C" fn mooring_result_name(result: u32) -> *const c_char {
    boundary(c"MOORING_RESULT_UNKNOWN".as_ptr(), || {
        result_name(result).as_ptr()
    })
}

/// The stable name of a `mooring_close_reason` code (`"PeerClosed"`), as the CLI prints
/// it, or `"Unknown"`. A static string, never NULL, not to be freed.
#[no_mangle]
pub extern "C" fn mooring_close_reason_name(reason: u32) -> *const c_char {
    boundary(c"Unknown".as_ptr(), || reason_name(reason).as_ptr())
}

/// Copies the calling thread's last error text into `buf` as a NUL-terminated
/// string, truncated to fit `len` bytes.
///
/// The text belongs to the most recent call on this thread that can fail:
/// every function returning a `mooring_result`, `mooring_node_fd` and
/// `mooring_node_next_deadline_ms`. Each of them clears it when called and
/// sets it only when it fails, so the text describes that call's failure and
/// is empty after a call that succeeded (or returned `MOORING_RESULT_NO_EVENT`).
/// It stays valid until the next such call on this thread. Calls that cannot
/// fail (`mooring_version`, `mooring_result_name`, `mooring_close_reason_name`,
/// `mooring_node_free`, `mooring_relay_free`, this one) leave it as it is.
///
/// Returns the full length of the text without the NUL (like `snprintf`), so a
/// result `>= len` means it was truncated. `buf` may be NULL when `len` is 0.
///
/// # Safety
/// `buf` is NULL or points to `len` writable bytes.
#[no_mangle]
pub unsafe extern "C" fn mooring_last_error(buf: *mut c_char, len: usize) -> usize {
    boundary(0, || {
        LAST_ERROR
            .try_with(|e| {
                let Ok(e) = e.try_borrow() else { return 0 };
                let text = e.as_bytes();
                if !buf.is_null() && len > 0 {
                    let n = text.len().min(len - 1);
                    // SAFETY: `buf` holds `len` bytes by contract and `n < len`.
                    unsafe {
                        ptr::copy_nonoverlapping(text.as_ptr(), buf.cast::<u8>(), n);
                        *buf.add(n) = 0;
                    }
                }
                text.len()
            })
            .unwrap_or(0)
    })
}

#[cfg(test)]
mod tests {
    use super::events::c_reason;
    use super::*;

    pub(super) fn last_error() -> String {
        let mut buf = [0 as c_char; 256];
        // SAFETY: 256 writable bytes.
        let n = unsafe { mooring_last_error(buf.as_mut_ptr(), buf.len()) };
        // SAFETY: NUL-terminated by mooring_last_error.
        let s = unsafe { CStr::from_ptr(buf.as_ptr()) };
        assert_eq!(n, s.to_bytes().len());
        s.to_string_lossy().into_owned()
    }

    pub(super) fn new_node(cfg: &mooring_config) -> *mut mooring_node {
        let mut node = ptr::null_mut();
        // SAFETY: valid pointers.
        assert_eq!(
            unsafe { mooring_node_new(cfg, &mut node) },
            mooring_result::Ok
        );
        node
    }

    /// Binds a listener of `server` on 127.0.0.1 (any port) and returns its
    /// address as C text.
    pub(super) fn listen_on_loopback(server: *mut mooring_node) -> [c_char; MOORING_ADDR_MAX] {
        let mut l = 0u32;
        let mut addr = [0 as c_char; MOORING_ADDR_MAX];
        // SAFETY: a live node, valid pointers, a NUL-terminated string.
        unsafe {
            assert_eq!(
                mooring_node_listen(server, c"127.0.0.1:0".as_ptr(), &mut l),
                mooring_result::Ok
            );
            assert_eq!(
                mooring_node_local_addr(server, l, addr.as_mut_ptr(), addr.len()),
                mooring_result::Ok
            );
        }
        addr
    }

    /// Two nodes of config `c`: a server listening on loopback and a client
    /// whose link to it is connecting.
    pub(super) fn connected_pair(
        c: &mooring_config,
    ) -> (*mut mooring_node, *mut mooring_node, mooring_link) {
        let server = new_node(c);
        let client = new_node(c);
        let addr = listen_on_loopback(server);
        let mut link = mooring_link::default();
        // SAFETY: a live node, valid pointers, a NUL-terminated string.
        let r = unsafe { mooring_node_connect(client, addr.as_ptr(), &mut link) };
        assert_eq!(r, mooring_result::Ok);
        (server, client, link)
    }

    /// Two nodes speaking the mooring protocol with sessions: a server
    /// listening on loopback (its address as C text) and a client whose
    /// session to it is opening.
    pub(super) fn session_pair() -> (
        *mut mooring_node,
        *mut mooring_node,
        mooring_session,
        [c_char; MOORING_ADDR_MAX],
    ) {
        let mut c = default_config();
        (c.protocol, c.session) = (mooring_protocol::Mooring as u32, 1);
        let server = new_node(&c);
        let client = new_node(&c);
        let addr = listen_on_loopback(server);
        let mut s = mooring_session::default();
        // SAFETY: a live node, valid pointers, a NUL-terminated string.
        let r = unsafe { mooring_node_open_session(client, addr.as_ptr(), &mut s) };
        assert_eq!(r, mooring_result::Ok);
        (server, client, s, addr)
    }

    pub(super) fn default_config() -> mooring_config {
        let mut c = core::mem::MaybeUninit::uninit();
        // SAFETY: writable.
        assert_eq!(
            unsafe { mooring_config_default(c.as_mut_ptr()) },
            mooring_result::Ok
        );
        // SAFETY: filled.
        unsafe { c.assume_init() }
    }

    #[test]
    fn every_close_reason_has_its_stable_name() {
        // SAFETY: static NUL-terminated strings.
        let name = |code| unsafe { CStr::from_ptr(mooring_close_reason_name(code)) }.to_str();
        for &r in CloseReason::ALL {
            assert_eq!(name(c_reason(r)), Ok(r.as_str()));
        }
        assert_eq!(name(0), Ok("None"));
        assert_eq!(name(999), Ok("Unknown"));
        // One past the last code, and codes that only their low byte would make known.
        let next = CloseReason::ALL.len() as u32 + 1;
        assert_eq!(name(next), Ok("Unknown"));
        assert_eq!(name(256 + 1), Ok("Unknown"));
    }

    /// `(NAME, value)` of every enumerator starting with `prefix` in the
    /// checked-in header (CI proves the header is cbindgen's output for this module).
    fn header_enumerators(prefix: &str) -> Vec<(&'static str, u32)> {
        include_str!("../mooring.h")
            .lines()
            .filter_map(|l| {
                let (name, value) = l.trim().strip_suffix(',')?.split_once(" = ")?;
                let value = value.parse().expect("a number");
                name.starts_with(prefix).then_some((name, value))
            })
            .collect()
    }

    /// `TooManyConnections` as cbindgen spells an enumerator: `TOO_MANY_CONNECTIONS`.
    fn screaming_snake(name: &str) -> String {
        let mut out = String::new();
        for (i, ch) in name.char_indices() {
            if ch.is_ascii_uppercase() && i > 0 {
                out.push('_');
            }
            out.push(ch.to_ascii_uppercase());
        }
        out
    }

    #[test]
    fn the_header_names_every_close_reason_and_result_as_the_calls_do() {
        let reasons = header_enumerators("MOORING_CLOSE_REASON_");
        assert_eq!(reasons.len(), CloseReason::ALL.len() + 1, "{reasons:?}");
        for (i, &(name, code)) in reasons.iter().enumerate() {
            assert_eq!(code, i as u32, "{name}: codes are 0, 1, 2, ...");
            let called = reason_name(code).to_str().unwrap();
            assert_eq!(
                name,
                format!("MOORING_CLOSE_REASON_{}", screaming_snake(called))
            );
        }
        let results = header_enumerators("MOORING_RESULT_");
        assert!(results.len() > 15, "{results:?}");
        for (i, &(name, code)) in results.iter().enumerate() {
            assert_eq!(code, i as u32, "{name}: codes are 0, 1, 2, ...");
            assert_eq!(result_name(code).to_str(), Ok(name));
        }
        assert_eq!(
            result_name(results.len() as u32).to_str(),
            Ok("MOORING_RESULT_UNKNOWN")
        );
    }

    #[test]
    fn result_names_match_the_header_constants() {
        // SAFETY: static strings.
        let name = |c: mooring_result| unsafe { CStr::from_ptr(mooring_result_name(c as u32)) };
        assert_eq!(
            name(mooring_result::Ok).to_str().unwrap(),
            "MOORING_RESULT_OK"
        );
        assert_eq!(
            name(mooring_result::TxFull).to_str().unwrap(),
            "MOORING_RESULT_TX_FULL"
        );
        assert_eq!(
            name(mooring_result::Panic).to_str().unwrap(),
            "MOORING_RESULT_PANIC"
        );
        // SAFETY: as above.
        let unknown = unsafe { CStr::from_ptr(mooring_result_name(77)) };
        assert_eq!(unknown.to_str().unwrap(), "MOORING_RESULT_UNKNOWN");
    }

    #[test]
    fn the_last_error_is_cleared_by_a_call_that_succeeds() {
        // SAFETY: NULL is refused with a code; the rest are valid pointers.
        unsafe {
            let mut node = ptr::null_mut();
            assert_eq!(
                mooring_node_new(ptr::null(), &mut node),
                mooring_result::NullParameter
            );
            assert_eq!(last_error(), "config is NULL");
            let mut c = core::mem::MaybeUninit::uninit();
            assert_eq!(mooring_config_default(c.as_mut_ptr()), mooring_result::Ok);
            assert_eq!(last_error(), "", "stale text after a success");
            assert_eq!(mooring_last_error(ptr::null_mut(), 0), 0);

            let node = new_node(&c.assume_init());
            assert_eq!(last_error(), "");
            let stale = mooring_link { slot: 0, gen: 7 };
            assert_ne!(mooring_node_close(node, stale), mooring_result::Ok);
            assert_ne!(last_error(), "");
            assert_eq!(mooring_node_poll(node, 0), mooring_result::Ok);
            assert_eq!(last_error(), "", "stale text after a node call succeeded");
            assert_eq!(mooring_node_fd(ptr::null()), -1);
            assert_eq!(last_error(), "node is NULL");
            assert!(mooring_node_fd(node) >= 0);
            assert_eq!(last_error(), "");
            mooring_node_free(node);
        }
    }
}

//! The C API's entry points, called in-process as a C program would.
#![allow(unsafe_code)]

use core::ffi::c_char;
use core::ptr;

use super::Input;
use crate::ffi::*;

/// Bytes of working memory a node may reserve here: configs asking for more
/// are valid but would exhaust the fuzzer's memory limit, so they are skipped.
const BUDGET: u64 = 64 << 20;

/// A config field value: raw, small, an edge, or the default.
fn field(input: &mut Input<'_>, default: u32) -> u32 {
    match input.u8() % 4 {
        0 => input.u32(),
        1 => u32::from(input.u8()),
        2 => [0, 1, 64, u32::MAX][usize::from(input.u8() % 4)],
        _ => default,
    }
}

/// Memory `mooring_node_new` would reserve for `c`, over-estimated, or `None`
/// when it exceeds [`BUDGET`] (or the slot counts are out of proportion).
fn reservation(c: &mooring_config) -> Option<u64> {
    let links = u64::from(c.max_links);
    let sessions = match (c.session, c.max_sessions) {
        (1, 0) => 2 * u64::from(c.max_connections),
        (1, n) => u64::from(n),
        _ => 0,
    };
    if links > 1024 || sessions > 1024 {
        return None;
    }
    let per_link = 2 * u64::from(c.buffer_size) + 4096;
    let large = u64::from(c.large_buffers).saturating_mul(u64::from(c.max_frame) + 8);
    let total =
        (links * per_link + u64::from(c.read_burst) + sessions * 4096).saturating_add(large);
    (total <= BUDGET).then_some(total)
}

fn last_error(input: &mut Input<'_>) {
    let len = usize::from(input.u16() % 300);
    let mut buf = vec![0x55 as c_char; len];
    let p = if input.bool() {
        ptr::null_mut()
    } else {
        buf.as_mut_ptr()
    };
    // SAFETY: `p` is NULL or `buf`, which holds `len` writable bytes.
    let full = unsafe { mooring_last_error(p, len) };
    if !p.is_null() && len > 0 {
        assert_eq!(buf[full.min(len - 1)], 0, "NUL-terminated within len");
    }
}

fn check(r: mooring_result) {
    assert_ne!(r, mooring_result::Panic, "the call panicked");
    assert_ne!(r, mooring_result::Poisoned, "an earlier call panicked");
}

/// The C API: names of any code, the last-error copy with any buffer length,
/// NULL for every pointer, `mooring_node_new` with configs of any field values
/// (and an allow-list of any bytes), then the node's calls with random links,
/// sessions, lengths, NULL data and out-of-range lengths. No call panics, and
/// invalid arguments get their named result. Nothing touches the network:
/// no listen or connect.
pub fn c_api(data: &[u8]) {
    let mut input = Input::new(data);
    // SAFETY (whole function): every pointer passed is NULL, a live local, or a
    // node from `mooring_node_new` that is freed exactly once at the end.
    unsafe {
        for _ in 0..2 {
            let code = input.u32();
            assert!(!mooring_result_name(code).is_null());
            assert!(!mooring_close_reason_name(code).is_null());
        }
        assert_eq!(
            mooring_config_default(ptr::null_mut()),
            mooring_result::NullParameter
        );
        let null = ptr::null_mut();
        assert_eq!(mooring_node_poll(null, 0), mooring_result::NullParameter);
        assert_eq!(mooring_node_next_deadline_ms(null), -1);

        let mut c = core::mem::zeroed::<mooring_config>();
        assert_eq!(mooring_config_default(&mut c), mooring_result::Ok);
        for f in [
            &mut c.framing,
            &mut c.max_links,
            &mut c.max_frame,
            &mut c.buffer_size,
            &mut c.large_buffers,
            &mut c.read_burst,
            &mut c.write_timeout_ms,
            &mut c.mllp_commit_ack,
            &mut c.max_connections,
            &mut c.idle_timeout_ms,
            &mut c.stale_recovery_ms,
            &mut c.close_after_reply,
            &mut c.connect_timeout_ms,
            &mut c.protocol,
            &mut c.heartbeat_interval_ms,
            &mut c.heartbeat_timeout_ms,
            &mut c.handshake_timeout_ms,
            &mut c.tcp_keepalive_idle_ms,
            &mut c.tcp_keepalive_interval_ms,
            &mut c.tcp_keepalive_count,
            &mut c.tcp_user_timeout_ms,
            &mut c.session,
            &mut c.max_sessions,
            &mut c.session_queue,
            &mut c.resume_window_ms,
            &mut c.reconnect_min_ms,
            &mut c.reconnect_max_ms,
            &mut c.frame_timeout_ms,
            &mut c.frame_min_rate,
            &mut c.frame_max_ms,
            &mut c.max_connections_per_ip,
        ] {
            *f = field(&mut input, *f);
        }
        let mut allow = input.short_bytes().to_vec();
        allow.push(0);
        if input.bool() {
            c.allow = allow.as_ptr().cast();
        }
        last_error(&mut input);
        if reservation(&c).is_none() {
            return;
        }
        let mut node: *mut mooring_node = ptr::null_mut();
        let r = mooring_node_new(&c, &mut node);
        check(r);
        assert_eq!(r == mooring_result::Ok, !node.is_null());
        last_error(&mut input);
        if node.is_null() {
            return;
        }
        let mut payload = [0u8; 64];
        for _ in 0..64 {
            if input.is_empty() {
                break;
            }
            let link = mooring_link {
                slot: field(&mut input, 0),
                gen: field(&mut input, 1),
            };
            let session = mooring_session {
                index: field(&mut input, 0),
                gen: field(&mut input, 1),
            };
            let len = usize::from(input.u8() % 64);
            let (data, len) = match input.u8() % 4 {
                0 => (ptr::null(), len),
                1 => (payload.as_ptr(), usize::MAX - len),
                _ => (payload.as_ptr(), len),
            };
            payload[0] = payload[0].wrapping_add(1);
            let op = input.u8() % 9;
            let r = match op {
                0 => mooring_node_send(node, link, data, len),
                1 => mooring_node_close(node, link),
                2 => {
                    let mut stats = core::mem::zeroed();
                    mooring_node_get_link_stats(node, link, &mut stats)
                }
                3 => {
                    let mut seq = 0u64;
                    mooring_node_session_send(node, session, data, len, &mut seq)
                }
                4 => mooring_node_close_session(node, session),
                5 => {
                    let mut addr = [0 as c_char; MOORING_ADDR_MAX];
                    let n = usize::from(input.u8()) % (MOORING_ADDR_MAX + 1);
                    mooring_node_local_addr(node, field(&mut input, 0), addr.as_mut_ptr(), n)
                }
                6 => {
                    let mut stats = core::mem::zeroed();
                    mooring_node_get_stats(node, &mut stats)
                }
                7 => {
                    // Never -1 (wait for the node's deadlines): this must not block.
                    let t = [0, -2, i64::MIN][usize::from(input.u8() % 3)];
                    let r = mooring_node_poll(node, t);
                    assert_eq!(r == mooring_result::Ok, t == 0, "{r:?}");
                    r
                }
                _ => {
                    let mut ev = core::mem::MaybeUninit::<mooring_event>::uninit();
                    let out = if input.bool() {
                        ev.as_mut_ptr()
                    } else {
                        ptr::null_mut()
                    };
                    let r = mooring_node_next_event(node, out);
                    let _ = mooring_node_next_deadline_ms(node);
                    r
                }
            };
            check(r);
            if (op == 0 || op == 3) && (data.is_null() && len > 0 || len > isize::MAX as usize) {
                let want = if data.is_null() {
                    mooring_result::NullParameter
                } else {
                    mooring_result::InvalidArgument
                };
                assert_eq!(r, want, "the data argument is checked first");
            }
        }
        mooring_node_free(node);
    }
}

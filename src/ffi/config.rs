//! `mooring_config`: its defaults from the Rust configurations, and its checked
//! conversion into them.

use core::fmt;
use core::ptr;
use core::time::Duration;

use super::{
    c_str, fail, mooring_config, mooring_framing, mooring_protocol, mooring_result,
    mooring_tls_client_auth, write_default,
};
use crate::config::{AllowList, ConnectConfig, ListenConfig, NodeConfig, ServerPolicy};
use crate::frame::Framing;
use crate::frame_deadline::FrameTimeout;
use crate::liveness::{Heartbeat, LivenessConfig, Protocol, TcpKeepalive};
use crate::session::{Backoff, SessionConfig};

/// A duration as whole milliseconds, saturating at `u32::MAX`.
pub(super) fn ms(d: Duration) -> u32 {
    u32::try_from(d.as_millis()).unwrap_or(u32::MAX)
}

fn opt_ms(d: Option<Duration>) -> u32 {
    d.map_or(0, ms)
}

pub(super) fn from_ms(v: u32) -> Duration {
    Duration::from_millis(u64::from(v))
}

fn off_if_zero(v: u32) -> Option<Duration> {
    (v != 0).then(|| from_ms(v))
}

fn flag(v: u32, field: &str) -> Result<bool, mooring_result> {
    match v {
        0 => Ok(false),
        1 => Ok(true),
        _ => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("{field} must be 0 or 1 (it is {v})"),
        )),
    }
}

/// `max_sessions = 0` with sessions on: two per connection. Checked in `u32`,
/// so a config that works on a 64-bit host works the same on a 32-bit one
/// (ARMv7), where the product could overflow `usize`.
fn default_max_sessions(max_connections: u32) -> Result<usize, mooring_result> {
    max_connections
        .checked_mul(2)
        .and_then(|n| usize::try_from(n).ok())
        .ok_or_else(|| {
            fail(
                mooring_result::InvalidConfig,
                format_args!(
                    "max_sessions: 0 means 2 * max_connections, which overflows \
                     for max_connections = {max_connections}; set max_sessions"
                ),
            )
        })
}

pub(super) fn invalid_config(e: impl fmt::Display) -> mooring_result {
    fail(mooring_result::InvalidConfig, format_args!("config: {e}"))
}

/// The C config that stands for the Rust defaults.
pub(super) fn defaults() -> mooring_config {
    let n = NodeConfig::default();
    let l = ListenConfig::default();
    let c = ConnectConfig::default();
    let k = TcpKeepalive::default();
    let s = SessionConfig::default();
    let b = Backoff::default();
    let f = FrameTimeout::default();
    mooring_config {
        framing: mooring_framing::Mllp as u32,
        max_links: u32::try_from(n.max_links).unwrap_or(u32::MAX),
        max_frame: u32::try_from(n.max_frame).unwrap_or(u32::MAX),
        buffer_size: u32::try_from(n.buffer_size).unwrap_or(u32::MAX),
        large_buffers: u32::try_from(n.large_buffers).unwrap_or(u32::MAX),
        read_burst: u32::try_from(n.read_burst).unwrap_or(u32::MAX),
        write_timeout_ms: ms(n.write_timeout),
        mllp_commit_ack: u32::from(n.mllp_commit_ack),
        max_connections: u32::try_from(l.max_connections).unwrap_or(u32::MAX),
        idle_timeout_ms: opt_ms(l.idle_timeout),
        stale_recovery_ms: opt_ms(l.stale_recovery),
        close_after_reply: u32::from(l.policy == ServerPolicy::CloseAfterReply),
        allow: ptr::null(),
        connect_timeout_ms: ms(c.connect_timeout),
        protocol: mooring_protocol::Raw as u32,
        heartbeat_interval_ms: 0,
        heartbeat_timeout_ms: 0,
        handshake_timeout_ms: ms(l.liveness.handshake_timeout),
        tcp_keepalive_idle_ms: 0,
        tcp_keepalive_interval_ms: ms(k.interval),
        tcp_keepalive_count: k.count,
        tcp_user_timeout_ms: 0,
        session: 0,
        max_sessions: 0,
        session_queue: u32::try_from(s.max_depth).unwrap_or(u32::MAX),
        resume_window_ms: ms(s.reconnect_timeout),
        reconnect_min_ms: ms(b.min),
        reconnect_max_ms: ms(b.max),
        frame_timeout_ms: ms(f.timeout),
        frame_min_rate: f.min_rate,
        frame_max_ms: ms(f.max),
        max_connections_per_ip: 0,
        max_sessions_per_ip: 0,
        tls_cert: ptr::null(),
        tls_key: ptr::null(),
        tls_client_auth: mooring_tls_client_auth::None as u32,
        tls_client_ca: ptr::null(),
        tls_allow_peers: ptr::null(),
        tls_ca: ptr::null(),
        tls_server_name: ptr::null(),
        tls_client_cert: ptr::null(),
        tls_client_key: ptr::null(),
        tls_handshake_timeout_ms: super::tls::DEFAULT_HANDSHAKE_TIMEOUT_MS,
        reconnect_max_attempts: b.max_attempts.unwrap_or(0),
        session_reserve_reply: u32::from(s.reserve_reply),
    }
}

/// A `mooring_framing` value.
pub(super) fn framing(v: u32) -> Result<Framing, mooring_result> {
    match v {
        0 => Ok(Framing::Mllp),
        1 => Ok(Framing::Len32),
        v => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("framing: unknown value {v}"),
        )),
    }
}

/// A `mooring_protocol` value.
pub(super) fn protocol(v: u32) -> Result<Protocol, mooring_result> {
    match v {
        0 => Ok(Protocol::Raw),
        1 => Ok(Protocol::Mooring),
        v => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("protocol: unknown value {v}"),
        )),
    }
}

/// The Rust configurations a C config stands for, checked.
pub(super) fn convert(
    c: &mooring_config,
) -> Result<(NodeConfig, ListenConfig, ConnectConfig), mooring_result> {
    let framing = framing(c.framing)?;
    let protocol = protocol(c.protocol)?;
    let sessions = flag(c.session, "session")?;
    let reserve_reply = flag(c.session_reserve_reply, "session_reserve_reply")?;
    let session = sessions.then(|| SessionConfig {
        reconnect_timeout: from_ms(c.resume_window_ms),
        reserve_reply,
        ..SessionConfig::default().with_depth(c.session_queue as usize)
    });
    let max_sessions = match (sessions, c.max_sessions) {
        (false, _) => 0,
        (true, 0) => default_max_sessions(c.max_connections)?,
        (true, n) => n as usize,
    };
    let node = NodeConfig {
        max_links: c.max_links as usize,
        max_sessions,
        framing,
        max_frame: c.max_frame as usize,
        buffer_size: c.buffer_size as usize,
        large_buffers: c.large_buffers as usize,
        read_burst: c.read_burst as usize,
        write_timeout: from_ms(c.write_timeout_ms),
        mllp_commit_ack: flag(c.mllp_commit_ack, "mllp_commit_ack")?,
    };
    node.validate().map_err(invalid_config)?;
    let heartbeat =
        (c.heartbeat_interval_ms != 0 || c.heartbeat_timeout_ms != 0).then(|| Heartbeat {
            interval: from_ms(c.heartbeat_interval_ms),
            timeout: from_ms(c.heartbeat_timeout_ms),
        });
    let liveness = LivenessConfig {
        protocol,
        heartbeat,
        tcp_keepalive: (c.tcp_keepalive_idle_ms != 0).then(|| TcpKeepalive {
            idle: from_ms(c.tcp_keepalive_idle_ms),
            interval: from_ms(c.tcp_keepalive_interval_ms),
            count: c.tcp_keepalive_count,
        }),
        tcp_user_timeout: off_if_zero(c.tcp_user_timeout_ms),
        handshake_timeout: from_ms(c.handshake_timeout_ms),
        frame_timeout: off_if_zero(c.frame_timeout_ms).map(|timeout| FrameTimeout {
            timeout,
            min_rate: c.frame_min_rate,
            max: from_ms(c.frame_max_ms),
        }),
        // The keep-alive message needs a 'static payload: not exposed to C yet.
        ..LivenessConfig::default()
    };
    let mut allow = AllowList::default();
    if !c.allow.is_null() {
        // SAFETY: a non-NULL `allow` is a NUL-terminated string (the config's contract).
        let text = unsafe { c_str(c.allow, "allow") }?;
        for item in text.split([',', ' ']).filter(|s| !s.is_empty()) {
            let net = item.parse().map_err(|e| {
                fail(
                    mooring_result::InvalidConfig,
                    format_args!("allow: {item:?}: {e}"),
                )
            })?;
            allow.push(net).map_err(invalid_config)?;
        }
    }
    #[cfg(feature = "tls")]
    let (listen_tls, connect_tls) = super::tls::convert(c)?;
    #[cfg(not(feature = "tls"))]
    super::tls::refuse(c)?;
    let listen = ListenConfig {
        max_connections: c.max_connections as usize,
        idle_timeout: off_if_zero(c.idle_timeout_ms),
        stale_recovery: off_if_zero(c.stale_recovery_ms),
        allow,
        max_connections_per_ip: (c.max_connections_per_ip != 0)
            .then_some(c.max_connections_per_ip as usize),
        policy: if flag(c.close_after_reply, "close_after_reply")? {
            ServerPolicy::CloseAfterReply
        } else {
            ServerPolicy::KeepOpen
        },
        liveness: liveness.clone(),
        session,
        max_sessions_per_ip: (c.max_sessions_per_ip != 0).then_some(c.max_sessions_per_ip as usize),
        #[cfg(feature = "tls")]
        tls: listen_tls,
    };
    let connect = ConnectConfig {
        connect_timeout: from_ms(c.connect_timeout_ms),
        idle_timeout: off_if_zero(c.idle_timeout_ms),
        liveness,
        session,
        backoff: Backoff {
            min: from_ms(c.reconnect_min_ms),
            max: from_ms(c.reconnect_max_ms),
            max_attempts: (c.reconnect_max_attempts != 0).then_some(c.reconnect_max_attempts),
        },
        #[cfg(feature = "tls")]
        tls: connect_tls,
    };
    if sessions && (c.reconnect_min_ms == 0 || c.reconnect_min_ms > c.reconnect_max_ms) {
        return Err(fail(
            mooring_result::InvalidConfig,
            "reconnect_min_ms must be > 0 and <= reconnect_max_ms",
        ));
    }
    connect.validate().map_err(invalid_config)?;
    Ok((node, listen, connect))
}

/// Fills `*out` with the defaults: MLLP, 16 links, 1 MiB frames, 16 KiB buffers,
/// 2 large buffers, write timeout 10 s; listen: 10 connections, keep open, idle
/// timeout and stale recovery off, everyone allowed; connect timeout 5 s; raw
/// protocol, heartbeats, OS keepalive and `TCP_USER_TIMEOUT` off; sessions
/// off, and when on: session clients reconnect without giving up
/// (`reconnect_max_attempts` 0), no room reserved for replies
/// (`session_reserve_reply` 0), as in Rust.
///
/// # Safety
/// `out` is NULL or points to a writable `mooring_config`.
#[no_mangle]
pub unsafe extern "C" fn mooring_config_default(out: *mut mooring_config) -> mooring_result {
    // SAFETY: the caller's contract is write_default's.
    unsafe { write_default(out, defaults) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::tests::{default_config, new_node};
    use crate::ffi::*;
    use core::time::Duration;

    #[test]
    fn default_config_builds_a_node_and_matches_the_rust_defaults() {
        let c = default_config();
        let (n, l, k) = convert(&c).unwrap();
        assert_eq!(n.max_links, NodeConfig::default().max_links);
        assert_eq!(n.max_frame, NodeConfig::default().max_frame);
        assert_eq!(l.max_connections, ListenConfig::default().max_connections);
        assert_eq!(l.liveness, LivenessConfig::default());
        assert_eq!(k.connect_timeout, ConnectConfig::default().connect_timeout);
        let node = new_node(&c);
        // SAFETY: from mooring_node_new.
        unsafe { mooring_node_free(node) };
    }

    #[test]
    fn session_queue_sets_both_depths_and_resume_window_reaches_both_sides() {
        let mut c = default_config();
        (c.protocol, c.session) = (mooring_protocol::Mooring as u32, 1);
        (c.session_queue, c.resume_window_ms) = (7, 1_500);
        let (_, l, k) = convert(&c).unwrap();
        let want = SessionConfig {
            max_depth: 7,
            max_depth_disconnected: 70,
            reconnect_timeout: Duration::from_millis(1_500),
            ..SessionConfig::default()
        };
        assert_eq!((l.session, k.session), (Some(want), Some(want)));
        c.session = 0;
        assert_eq!(convert(&c).unwrap().1.session, None);
    }

    #[test]
    fn reserve_reply_and_reconnect_max_attempts_default_as_in_rust_and_reach_both_sides() {
        let mut c = default_config();
        (c.protocol, c.session) = (mooring_protocol::Mooring as u32, 1);
        // The defaults are Rust's: no reserve, never give up.
        let (_, l, k) = convert(&c).unwrap();
        assert_eq!(k.backoff, ConnectConfig::default().backoff);
        let on = |s: Option<SessionConfig>| s.map(|s| s.reserve_reply);
        let rust = SessionConfig::default().reserve_reply;
        assert_eq!((on(l.session), on(k.session)), (Some(rust), Some(rust)));
        (c.session_reserve_reply, c.reconnect_max_attempts) = (1, 4);
        let (_, l, k) = convert(&c).unwrap();
        assert_eq!(k.backoff.max_attempts, Some(4));
        assert_eq!((on(l.session), on(k.session)), (Some(true), Some(true)));
        c.session_reserve_reply = 2;
        assert_eq!(convert(&c).err(), Some(mooring_result::InvalidConfig));
        let e = crate::ffi::tests::last_error();
        assert!(e.starts_with("session_reserve_reply"), "{e}");
    }

    #[test]
    fn a_session_client_gives_up_after_reconnect_max_attempts() {
        let mut c = default_config();
        (c.protocol, c.session) = (mooring_protocol::Mooring as u32, 1);
        (c.reconnect_min_ms, c.reconnect_max_ms) = (5, 10);
        (c.connect_timeout_ms, c.reconnect_max_attempts) = (1_000, 2);
        // A loopback port nothing listens on.
        let closed = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap();
        let addr = std::ffi::CString::new(closed.to_string()).unwrap();
        let client = new_node(&c);
        // SAFETY: a live node, valid pointers, a NUL-terminated string.
        unsafe {
            let mut s = mooring_session::default();
            assert_eq!(
                mooring_node_open_session(client, addr.as_ptr(), &mut s),
                mooring_result::Ok
            );
            let mut ev = core::mem::MaybeUninit::<mooring_event>::zeroed().assume_init();
            let (mut attempts, mut ended) = (Vec::new(), None);
            let deadline = std::time::Instant::now() + Duration::from_secs(5);
            while ended.is_none() && std::time::Instant::now() < deadline {
                assert_eq!(mooring_node_poll(client, 10), mooring_result::Ok);
                while mooring_node_next_event(client, &mut ev) == mooring_result::Ok {
                    match ev.kind {
                        mooring_event_kind::SessionReconnecting => attempts.push(ev.attempt),
                        mooring_event_kind::SessionEnded => ended = Some(ev.session_end),
                        _ => {}
                    }
                }
            }
            assert_eq!(
                ended,
                Some(mooring_session_end::Lost as u32),
                "the session gives up (reconnecting: {attempts:?})"
            );
            assert_eq!(attempts, [1, 2]);
            mooring_node_free(client);
        }
    }

    #[test]
    fn default_max_sessions_refuses_a_count_that_overflows_32_bit_arithmetic() {
        let mut c = default_config();
        (c.protocol, c.session, c.max_sessions) = (mooring_protocol::Mooring as u32, 1, 0);
        c.max_connections = 8;
        assert_eq!(
            convert(&c).unwrap().0.max_sessions,
            16,
            "two per connection"
        );
        // 2 * 0x8000_0000 is 2^32: 0 in a 32-bit usize (ARMv7).
        c.max_connections = 0x8000_0000;
        assert_eq!(convert(&c).err(), Some(mooring_result::InvalidConfig));
        let e = crate::ffi::tests::last_error();
        assert!(e.starts_with("max_sessions:"), "{e}");
        assert_eq!(
            default_max_sessions(u32::MAX / 2).ok(),
            Some(u32::MAX as usize - 1),
            "the largest that fits"
        );
    }

    #[test]
    fn frame_timeout_fields_reach_listen_and_connect_and_zero_turns_it_off() {
        let mut c = default_config();
        (c.frame_timeout_ms, c.frame_min_rate, c.frame_max_ms) = (300, 0, 1_000);
        let (_, l, k) = convert(&c).unwrap();
        let want = Some(FrameTimeout {
            timeout: Duration::from_millis(300),
            min_rate: 0,
            max: Duration::from_secs(1),
        });
        assert_eq!(
            (l.liveness.frame_timeout, k.liveness.frame_timeout),
            (want, want)
        );
        c.frame_timeout_ms = 0;
        assert_eq!(convert(&c).unwrap().1.liveness.frame_timeout, None);
    }
}

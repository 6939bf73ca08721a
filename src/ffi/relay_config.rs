//! `mooring_relay_config`: its defaults from the Rust relay's, and its checked
//! conversion into a [`DeviceSide`] and a [`RelayConfig`].

use core::ptr;
use std::net::SocketAddr;

use super::config::{framing, from_ms, invalid_config, ms, protocol};
use super::relay_types::*;
#[cfg(feature = "tls")]
use super::tls::convert_fields;
#[cfg(not(feature = "tls"))]
use super::tls::refuse_fields;
use super::tls::{TlsInput, DEFAULT_HANDSHAKE_TIMEOUT_MS};
use super::types::{mooring_framing, mooring_protocol, mooring_result, mooring_tls_client_auth};
use super::{c_str, fail, parse_addr, write_default};
use crate::frame::Framing;
use crate::liveness::{Heartbeat, LivenessConfig};
use crate::relay::{default_ack_after, AckAfter, DeviceSide, RelayConfig, SpoolSettings};
use crate::session::Backoff;
use crate::spool::Fsync;

/// Events kept between polls by default (`event_queue`).
const EVENT_QUEUE: u32 = 1024;
/// Bytes for their ids and texts by default (`event_bytes`).
const EVENT_BYTES: u32 = 64 << 10;
/// `fsync_interval_ms` by default.
const FSYNC_INTERVAL_MS: u32 = 1000;

/// What a C relay config stands for.
#[derive(Debug)]
pub(super) struct Converted {
    pub(super) devices: DeviceSide,
    pub(super) relay: RelayConfig,
    /// Events kept between polls.
    pub(super) event_queue: usize,
    /// Bytes for their ids and texts.
    pub(super) event_bytes: usize,
}

fn u32_of(v: usize) -> u32 {
    u32::try_from(v).unwrap_or(u32::MAX)
}

/// The C relay config that stands for the Rust defaults.
pub(super) fn defaults() -> mooring_relay_config {
    let any = SocketAddr::from(([0, 0, 0, 0], 0));
    let d = DeviceSide::new(any);
    let r = RelayConfig::new(any);
    let s = SpoolSettings::new("");
    mooring_relay_config {
        listen: ptr::null(),
        framing: match d.framing {
            Framing::Mllp => mooring_framing::Mllp as u32,
            Framing::Len32 => mooring_framing::Len32 as u32,
        },
        max_frame: u32_of(d.max_frame),
        max_connections: u32_of(d.max_connections),
        max_connections_per_ip: 0,
        write_timeout_ms: ms(d.write_timeout),
        upstream: ptr::null(),
        protocol: mooring_protocol::Raw as u32,
        heartbeat_interval_ms: 0,
        heartbeat_timeout_ms: 0,
        ack_after: mooring_ack_after::Default as u32,
        queue: u32_of(r.queue),
        retries: r.retries,
        response_timeout_ms: ms(r.response_timeout),
        connect_timeout_ms: ms(r.connect_timeout),
        reconnect_min_ms: ms(r.backoff.min),
        reconnect_max_ms: ms(r.backoff.max),
        dedup_window: u32_of(r.dedup_window),
        seed: r.seed,
        spool: mooring_spool_kind::None as u32,
        spool_dir: ptr::null(),
        spool_size: s.size,
        fsync: mooring_fsync::Batch as u32,
        fsync_interval_ms: FSYNC_INTERVAL_MS,
        event_queue: EVENT_QUEUE,
        event_bytes: EVENT_BYTES,
        backup_upstreams: ptr::null(),
        failover_after: r.failover_after,
        upstream_window: u32_of(r.upstream_window),
        tls_cert: ptr::null(),
        tls_key: ptr::null(),
        tls_client_auth: mooring_tls_client_auth::None as u32,
        tls_client_ca: ptr::null(),
        tls_allow_peers: ptr::null(),
        upstream_tls_ca: ptr::null(),
        upstream_tls_server_name: ptr::null(),
        upstream_tls_client_cert: ptr::null(),
        upstream_tls_client_key: ptr::null(),
        tls_handshake_timeout_ms: DEFAULT_HANDSHAKE_TIMEOUT_MS,
    }
}

/// The TLS string fields' names in `mooring_relay_config`, in
/// [`TlsInput::strings`]' order.
const TLS_NAMES: [&str; 8] = [
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "tls_allow_peers",
    "upstream_tls_ca",
    "upstream_tls_server_name",
    "upstream_tls_client_cert",
    "upstream_tls_client_key",
];

/// The TLS fields of a relay config: the device side's, then the upstream's.
fn tls_input(c: &mooring_relay_config) -> TlsInput {
    TlsInput {
        strings: [
            c.tls_cert,
            c.tls_key,
            c.tls_client_ca,
            c.tls_allow_peers,
            c.upstream_tls_ca,
            c.upstream_tls_server_name,
            c.upstream_tls_client_cert,
            c.upstream_tls_client_key,
        ],
        names: &TLS_NAMES,
        client_auth: c.tls_client_auth,
        handshake_timeout_ms: c.tls_handshake_timeout_ms,
    }
}

/// The backup upstreams a comma-separated `ip:port` list names (NULL or
/// empty: none); a bad entry is an `InvalidConfig` naming the field.
///
/// # Safety
/// `c.backup_upstreams` is NULL or a NUL-terminated string.
unsafe fn backups(c: &mooring_relay_config) -> Result<Vec<SocketAddr>, mooring_result> {
    if c.backup_upstreams.is_null() {
        return Ok(Vec::new());
    }
    // SAFETY: by this function's contract.
    let list = unsafe { c_str(c.backup_upstreams, "backup_upstreams") }?;
    list.split(',')
        .map(str::trim)
        .filter(|a| !a.is_empty())
        .map(|a| {
            a.parse().map_err(|_| {
                fail(
                    mooring_result::InvalidConfig,
                    format_args!("backup_upstreams: not an ip:port address: {a:?}"),
                )
            })
        })
        .collect()
}

/// `v` when it is more than 0, else an `InvalidConfig` naming `field`.
fn positive(v: u32, field: &str) -> Result<u32, mooring_result> {
    if v == 0 {
        Err(fail(
            mooring_result::InvalidConfig,
            format_args!("{field} must be more than 0"),
        ))
    } else {
        Ok(v)
    }
}

/// The spool a C config names (`None`: in memory), and whether one was
/// chosen (for the default ACK).
///
/// # Safety
/// `c.spool_dir` is NULL or a NUL-terminated string.
unsafe fn spool(c: &mooring_relay_config) -> Result<(Option<SpoolSettings>, bool), mooring_result> {
    match c.spool {
        0 => Ok((None, false)),
        1 => Ok((None, true)),
        2 => {
            // SAFETY: by this function's contract.
            let dir = unsafe { c_str(c.spool_dir, "spool_dir") }?;
            if dir.is_empty() {
                return Err(fail(mooring_result::InvalidConfig, "spool_dir is empty"));
            }
            if c.spool_size == 0 {
                return Err(fail(
                    mooring_result::InvalidConfig,
                    "spool_size must be more than 0",
                ));
            }
            let fsync = match c.fsync {
                0 => Fsync::Batch,
                1 => Fsync::Interval(from_ms(positive(c.fsync_interval_ms, "fsync_interval_ms")?)),
                2 => Fsync::Off,
                v => {
                    return Err(fail(
                        mooring_result::InvalidConfig,
                        format_args!("fsync: unknown value {v}"),
                    ))
                }
            };
            let mut s = SpoolSettings::new(dir);
            s.size = c.spool_size;
            s.fsync = fsync;
            Ok((Some(s), true))
        }
        v => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("spool: unknown value {v}"),
        )),
    }
}

/// The Rust settings a C relay config stands for, checked (the node, listener
/// and relay settings together, as `mooring_relay_new` builds them).
///
/// # Safety
/// The config's strings are NULL or NUL-terminated.
pub(super) unsafe fn convert(c: &mooring_relay_config) -> Result<Converted, mooring_result> {
    // SAFETY: by this function's contract.
    let listen = parse_addr(unsafe { c_str(c.listen, "listen") }?)?;
    // SAFETY: as above.
    let upstream = parse_addr(unsafe { c_str(c.upstream, "upstream") }?)?;
    // SAFETY: as above.
    let (spool, chosen) = unsafe { spool(c) }?;
    // SAFETY: as above.
    let backup_upstreams = unsafe { backups(c) }?;
    #[cfg(feature = "tls")]
    let (device_tls, upstream_tls) = convert_fields(&tls_input(c))?;
    #[cfg(not(feature = "tls"))]
    refuse_fields(&tls_input(c))?;
    let ack_after = match c.ack_after {
        0 => default_ack_after(chosen),
        1 => AckAfter::Queued,
        2 => AckAfter::Upstream,
        v => {
            return Err(fail(
                mooring_result::InvalidConfig,
                format_args!("ack_after: unknown value {v}"),
            ))
        }
    };
    let (min, max) = (c.reconnect_min_ms, c.reconnect_max_ms);
    if min == 0 || min > max {
        return Err(fail(
            mooring_result::InvalidConfig,
            "reconnect_min_ms must be > 0 and <= reconnect_max_ms",
        ));
    }
    let heartbeat =
        (c.heartbeat_interval_ms != 0 || c.heartbeat_timeout_ms != 0).then(|| Heartbeat {
            interval: from_ms(c.heartbeat_interval_ms),
            timeout: from_ms(c.heartbeat_timeout_ms),
        });
    let relay = RelayConfig {
        queue: positive(c.queue, "queue")? as usize,
        ack_after,
        retries: c.retries,
        response_timeout: from_ms(positive(c.response_timeout_ms, "response_timeout_ms")?),
        backoff: Backoff {
            min: from_ms(min),
            max: from_ms(max),
            max_attempts: None,
        },
        connect_timeout: from_ms(c.connect_timeout_ms),
        dedup_window: positive(c.dedup_window, "dedup_window")? as usize,
        liveness: LivenessConfig {
            protocol: protocol(c.protocol)?,
            heartbeat,
            ..LivenessConfig::default()
        },
        seed: c.seed,
        spool,
        backup_upstreams,
        failover_after: c.failover_after,
        upstream_window: c.upstream_window as usize,
        #[cfg(feature = "tls")]
        tls: upstream_tls,
        ..RelayConfig::new(upstream)
    };
    let devices = DeviceSide {
        framing: framing(c.framing)?,
        max_frame: c.max_frame as usize,
        max_connections: positive(c.max_connections, "max_connections")? as usize,
        max_connections_per_ip: (c.max_connections_per_ip != 0)
            .then_some(c.max_connections_per_ip as usize),
        write_timeout: from_ms(c.write_timeout_ms),
        #[cfg(feature = "tls")]
        tls: device_tls,
        ..DeviceSide::new(listen)
    };
    devices.validate(&relay).map_err(invalid_config)?;
    Ok(Converted {
        devices,
        relay,
        event_queue: positive(c.event_queue, "event_queue")? as usize,
        event_bytes: c.event_bytes as usize,
    })
}

/// Fills `*out` with the defaults (those of `mooring relay`): MLLP, 1 MiB
/// messages, 10 devices, raw upstream, ack after the upstream (no spool),
/// queue 1000, 3 retries, response timeout 10 s, connect timeout 5 s,
/// reconnect 1 s doubling to 30 s, no backup upstreams (fail over after 3
/// attempts), upstream window 1, plain TCP (TLS handshake timeout 10 s);
/// `listen` and `upstream` are NULL and must be set.
///
/// # Safety
/// `out` is NULL or points to a writable `mooring_relay_config`.
#[no_mangle]
pub unsafe extern "C" fn mooring_relay_config_default(
    out: *mut mooring_relay_config,
) -> mooring_result {
    // SAFETY: the caller's contract is write_default's.
    unsafe { write_default(out, defaults) }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ffi::tests::last_error;
    use crate::Protocol;
    use core::time::Duration;

    fn with_addrs() -> mooring_relay_config {
        mooring_relay_config {
            listen: c"127.0.0.1:0".as_ptr(),
            upstream: c"127.0.0.1:9".as_ptr(),
            ..defaults()
        }
    }

    #[test]
    fn the_default_config_is_the_rust_relays_with_the_cli_default_ack() {
        // SAFETY: static strings.
        let c = unsafe { convert(&with_addrs()) }.unwrap();
        let r = RelayConfig::new("127.0.0.1:9".parse().unwrap());
        assert_eq!(c.relay.queue, r.queue);
        assert_eq!(c.relay.retries, r.retries);
        assert_eq!(c.relay.response_timeout, r.response_timeout);
        assert_eq!(c.relay.connect_timeout, r.connect_timeout);
        assert_eq!(c.relay.backoff, r.backoff);
        assert_eq!(c.relay.dedup_window, r.dedup_window);
        assert_eq!(c.relay.liveness, r.liveness);
        assert_eq!(c.relay.upstream, r.upstream);
        assert_eq!(c.relay.spool, None);
        assert_eq!(c.relay.backup_upstreams, r.backup_upstreams);
        assert_eq!(c.relay.failover_after, r.failover_after);
        assert_eq!(c.relay.upstream_window, r.upstream_window);
        #[cfg(feature = "tls")]
        assert_eq!(c.relay.tls, None);
        // No spool named: the AA waits for the upstream, as `mooring relay`'s.
        assert_eq!(c.relay.ack_after, AckAfter::Upstream);
        let d = DeviceSide::new("127.0.0.1:0".parse().unwrap());
        assert_eq!(c.devices.listen, d.listen);
        assert_eq!(c.devices.max_frame, d.max_frame);
        assert_eq!(c.devices.max_connections, d.max_connections);
        assert_eq!(c.devices.write_timeout, d.write_timeout);
        #[cfg(feature = "tls")]
        assert_eq!(c.devices.tls, None);
        assert_eq!(c.event_queue, EVENT_QUEUE as usize);
        // The CLI's defaults (`mooring relay` without the flags) are the same.
        assert_eq!(
            (defaults().failover_after, defaults().upstream_window),
            (3, 1)
        );
        assert_eq!(
            defaults().tls_handshake_timeout_ms,
            DEFAULT_HANDSHAKE_TIMEOUT_MS
        );
    }

    #[test]
    fn backup_upstreams_failover_and_window_reach_the_relay() {
        let mut c = with_addrs();
        c.backup_upstreams = c" 127.0.0.1:7001, [::1]:7002,".as_ptr();
        (c.failover_after, c.upstream_window) = (5, 8);
        // SAFETY: static strings.
        let r = unsafe { convert(&c) }.unwrap().relay;
        let want: Vec<SocketAddr> = vec![
            "127.0.0.1:7001".parse().unwrap(),
            "[::1]:7002".parse().unwrap(),
        ];
        assert_eq!(r.backup_upstreams, want);
        assert_eq!((r.failover_after, r.upstream_window), (5, 8));
        // An empty list: none.
        c.backup_upstreams = c"".as_ptr();
        // SAFETY: as above.
        assert!(unsafe { convert(&c) }
            .unwrap()
            .relay
            .backup_upstreams
            .is_empty());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_fields_reach_the_device_side_and_the_upstream() {
        use crate::ffi::tls::tests::engine_pem;
        use crate::tls::ClientAuth;

        let (cert, key, ca) = engine_pem();
        let mut c = with_addrs();
        (c.tls_cert, c.tls_key) = (cert.as_ptr(), key.as_ptr());
        c.tls_client_auth = crate::ffi::mooring_tls_client_auth::Required as u32;
        (c.tls_client_ca, c.tls_allow_peers) = (ca.as_ptr(), c"dev-1,dev-2".as_ptr());
        c.upstream_tls_ca = ca.as_ptr();
        c.upstream_tls_server_name = c"engine.example".as_ptr();
        (c.upstream_tls_client_cert, c.upstream_tls_client_key) = (cert.as_ptr(), key.as_ptr());
        c.tls_handshake_timeout_ms = 2_500;
        // SAFETY: the strings outlive the call.
        let v = unsafe { convert(&c) }.unwrap();
        let d = v.devices.tls.unwrap();
        assert_eq!(d.client_auth, ClientAuth::Required);
        assert!(d.client_ca.is_some());
        assert_eq!(d.allow_peers, ["dev-1", "dev-2"]);
        assert_eq!(d.handshake_timeout, Duration::from_millis(2_500));
        let u = v.relay.tls.unwrap();
        assert_eq!(u.server_name.as_deref(), Some("engine.example"));
        assert!(u.client_cert.is_some() && u.client_key.is_some());
        assert_eq!(u.handshake_timeout, Duration::from_millis(2_500));
        // Only the upstream side: devices stay plain TCP.
        (c.tls_cert, c.tls_key, c.tls_client_ca) = (ptr::null(), ptr::null(), ptr::null());
        (c.tls_allow_peers, c.tls_client_auth) = (ptr::null(), 0);
        // SAFETY: as above.
        let v = unsafe { convert(&c) }.unwrap();
        assert!(v.devices.tls.is_none() && v.relay.tls.is_some());
    }

    #[cfg(feature = "tls")]
    #[test]
    fn bad_tls_fields_name_the_relay_field() {
        type Case = (fn(&mut mooring_relay_config), &'static str);
        let cases: [Case; 4] = [
            (
                |c| c.upstream_tls_ca = c"/nonexistent/mooring/ca.pem".as_ptr(),
                "upstream_tls_ca: /nonexistent/mooring/ca.pem: cannot read",
            ),
            (
                |c| c.upstream_tls_server_name = c"x".as_ptr(),
                "upstream_tls_server_name: needs upstream_tls_ca",
            ),
            (
                |c| {
                    c.tls_cert = c"/nonexistent/mooring/cert.pem".as_ptr();
                    c.tls_key = c"/nonexistent/mooring/key.pem".as_ptr();
                },
                "tls_cert: /nonexistent/mooring/cert.pem: cannot read",
            ),
            (|c| c.tls_key = c"k.pem".as_ptr(), "tls_key: needs tls_cert"),
        ];
        for (set, want) in cases {
            let mut c = with_addrs();
            set(&mut c);
            // SAFETY: static strings.
            let r = unsafe { convert(&c) }.map(|_| ());
            assert_eq!(r.err(), Some(mooring_result::InvalidConfig), "{want}");
            assert!(last_error().starts_with(want), "{want}: {}", last_error());
        }
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_build_without_tls_refuses_the_relays_tls_fields() {
        let mut c = with_addrs();
        c.upstream_tls_ca = c"ca.pem".as_ptr();
        // SAFETY: static strings.
        let r = unsafe { convert(&c) }.map(|_| ());
        assert_eq!(r.err(), Some(mooring_result::InvalidConfig));
        let e = last_error();
        assert!(
            e.starts_with("upstream_tls_ca: this mooring was built without TLS"),
            "{e}"
        );
    }

    #[test]
    fn a_spool_reaches_the_relay_and_makes_the_default_ack_queued() {
        let mut c = with_addrs();
        (c.spool, c.spool_dir) = (mooring_spool_kind::Directory as u32, c"/tmp/x".as_ptr());
        (c.spool_size, c.fsync, c.fsync_interval_ms) = (1 << 20, 1, 250);
        c.protocol = mooring_protocol::Mooring as u32;
        // SAFETY: static strings.
        let r = unsafe { convert(&c) }.unwrap().relay;
        let mut want = SpoolSettings::new("/tmp/x");
        (want.size, want.fsync) = (1 << 20, Fsync::Interval(Duration::from_millis(250)));
        assert_eq!(r.spool, Some(want));
        assert_eq!(r.ack_after, AckAfter::Queued);
        assert_eq!(r.liveness.protocol, Protocol::Mooring);
        // The in-memory queue by name: no spool, AA once queued.
        c.spool = mooring_spool_kind::Memory as u32;
        // SAFETY: as above.
        let r = unsafe { convert(&c) }.unwrap().relay;
        assert_eq!((r.spool, r.ack_after), (None, AckAfter::Queued));
        // An explicit choice wins.
        c.ack_after = mooring_ack_after::Upstream as u32;
        // SAFETY: as above.
        assert_eq!(
            unsafe { convert(&c) }.unwrap().relay.ack_after,
            AckAfter::Upstream
        );
    }

    #[test]
    fn bad_fields_are_invalid_config_with_the_field_named() {
        type Case = (&'static str, fn(&mut mooring_relay_config), mooring_result);
        let cases: [Case; 11] = [
            (
                "backup_upstreams: not an ip:port address: \"up:2\"",
                |c| c.backup_upstreams = c"127.0.0.1:1,up:2".as_ptr(),
                mooring_result::InvalidConfig,
            ),
            (
                "listen is NULL",
                |c| c.listen = ptr::null(),
                mooring_result::NullParameter,
            ),
            (
                "not an ip:port",
                |c| c.upstream = c"up:1".as_ptr(),
                mooring_result::InvalidAddress,
            ),
            (
                "spool: unknown value 3",
                |c| c.spool = 3,
                mooring_result::InvalidConfig,
            ),
            (
                "spool_dir is NULL",
                |c| c.spool = 2,
                mooring_result::NullParameter,
            ),
            (
                "spool_dir is empty",
                |c| (c.spool, c.spool_dir) = (2, c"".as_ptr()),
                mooring_result::InvalidConfig,
            ),
            (
                "fsync: unknown value 9",
                |c| (c.spool, c.spool_dir, c.fsync) = (2, c"d".as_ptr(), 9),
                mooring_result::InvalidConfig,
            ),
            (
                "ack_after: unknown value 3",
                |c| c.ack_after = 3,
                mooring_result::InvalidConfig,
            ),
            (
                "queue must be more than 0",
                |c| c.queue = 0,
                mooring_result::InvalidConfig,
            ),
            (
                "reconnect_min_ms must be",
                |c| c.reconnect_min_ms = c.reconnect_max_ms + 1,
                mooring_result::InvalidConfig,
            ),
            (
                "config: ",
                |c| c.connect_timeout_ms = 0,
                mooring_result::InvalidConfig,
            ),
        ];
        for (want, set, code) in cases {
            let mut c = with_addrs();
            set(&mut c);
            // SAFETY: static strings or NULL.
            assert_eq!(unsafe { convert(&c) }.err(), Some(code), "{want}");
            assert!(last_error().starts_with(want), "{want}: {}", last_error());
        }
    }
}

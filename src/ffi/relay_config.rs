//! `mooring_relay_config`: its defaults from the Rust relay's, and its checked
//! conversion into a [`DeviceSide`] and a [`RelayConfig`].

use core::ptr;
use std::net::SocketAddr;

use super::config::{framing, from_ms, invalid_config, ms, protocol};
use super::relay_types::*;
use super::types::{mooring_framing, mooring_protocol, mooring_result};
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
    }
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
        ..RelayConfig::new(upstream)
    };
    let devices = DeviceSide {
        framing: framing(c.framing)?,
        max_frame: c.max_frame as usize,
        max_connections: positive(c.max_connections, "max_connections")? as usize,
        max_connections_per_ip: (c.max_connections_per_ip != 0)
            .then_some(c.max_connections_per_ip as usize),
        write_timeout: from_ms(c.write_timeout_ms),
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
/// reconnect 1 s doubling to 30 s; `listen` and `upstream` are NULL and must
/// be set.
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
        // No spool named: the AA waits for the upstream, as `mooring relay`'s.
        assert_eq!(c.relay.ack_after, AckAfter::Upstream);
        let d = DeviceSide::new("127.0.0.1:0".parse().unwrap());
        assert_eq!(c.devices.listen, d.listen);
        assert_eq!(c.devices.max_frame, d.max_frame);
        assert_eq!(c.devices.max_connections, d.max_connections);
        assert_eq!(c.devices.write_timeout, d.write_timeout);
        assert_eq!(c.event_queue, EVENT_QUEUE as usize);
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
        let cases: [Case; 10] = [
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

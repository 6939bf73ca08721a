//! `mooring relay`: its options and flags. The liveness flags are the ones
//! `listen` and `send` take, checked the same way (after `--listen` and
//! `--upstream`, as the relay always did).

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mooring::relay::{default_ack_after, RelayConfig, SpoolSettings};
use mooring::spool::Fsync;
use mooring::Framing;

pub use mooring::relay::AckAfter;

use super::common::{self, backoff_from, parse_addr, parse_limit, LinkFlags};
use super::liveness::LivenessFlags;
use super::tls::{ServerTlsOpts, TlsClientFlags, TlsServerFlags};
use super::usage::RELAY_USAGE;
use super::{err, global_flag, Command, UsageError, Verbosity, Word, Words};

/// Options of `mooring relay`.
#[derive(Clone, Debug)]
pub struct RelayOpts {
    /// `--listen`.
    pub listen: SocketAddr,
    /// The relay engine's settings, from [`RelayConfig::new`]'s defaults and
    /// the flags: `--upstream` (the first given: the primary; given again: the
    /// backups, in order), `--failover-after`, `--upstream-window`, `--queue`,
    /// `--ack-after`, `--retries`, `--response-timeout`, `--reconnect-min`,
    /// `--reconnect-max`, `--connect-timeout`, `--dedup-window`, the liveness
    /// flags (upstream link, `--protocol` included), `--spool DIR`,
    /// `--spool-size`, `--fsync` (`spool` `None`: in memory) and the
    /// upstream's `--upstream-tls`, `--upstream-tls-ca`,
    /// `--upstream-tls-server-name`, `--upstream-tls-cert`,
    /// `--upstream-tls-key` (`tls` `None`: plain TCP). Its `seed` is left at 0
    /// for the run to set.
    pub relay: RelayConfig,
    /// `--framing`.
    pub framing: Framing,
    /// `--max-frame`: the largest message taken from a device or the upstream.
    pub max_frame: usize,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--max-conns-per-ip` (`None`: off).
    pub max_conns_per_ip: Option<usize>,
    /// `--write-timeout`.
    pub write_timeout: Duration,
    /// `--metrics ADDR`: serve `GET /metrics` there (`None`: off).
    pub metrics: Option<SocketAddr>,
    /// The device side's `--tls-cert`, `--tls-key`, `--tls-ca`,
    /// `--tls-client-auth`, `--tls-allow-peer` (`None`: plain TCP).
    // Always `None` without the `tls` feature (its flags are refused).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub device_tls: Option<ServerTlsOpts>,
}

/// What `--spool` names.
enum SpoolChoice {
    Memory,
    Dir(PathBuf),
}

/// `--spool-size`: bytes, with an optional K, M or G suffix (powers of 1024).
fn parse_size(flag: &str, s: &str) -> Result<u64, UsageError> {
    let t = s.trim_end_matches(['B', 'b']).trim_end_matches(['i']);
    let (num, mult) = match t.char_indices().last() {
        Some((i, 'K' | 'k')) => (&t[..i], 1u64 << 10),
        Some((i, 'M' | 'm')) => (&t[..i], 1 << 20),
        Some((i, 'G' | 'g')) => (&t[..i], 1 << 30),
        _ => (t, 1),
    };
    match num.parse::<u64>().ok().and_then(|n| n.checked_mul(mult)) {
        Some(n) if n > 0 => Ok(n),
        _ => err(format!(
            "{flag}: bad size \"{s}\" (bytes, or with K, M or G)"
        )),
    }
}

/// `--fsync batch|interval=DUR|off`.
fn parse_fsync(flag: &str, s: &str) -> Result<Fsync, UsageError> {
    match s {
        "batch" => Ok(Fsync::Batch),
        "off" => Ok(Fsync::Off),
        _ => match s.strip_prefix("interval=") {
            Some(d) => Ok(Fsync::Interval(parse_dur(flag, d)?)),
            None => err(format!(
                "{flag}: bad value \"{s}\" (use batch, interval=DUR or off)"
            )),
        },
    }
}

/// A duration that must be more than zero (every relay timer).
fn parse_dur(flag: &str, s: &str) -> Result<Duration, UsageError> {
    match common::parse_dur(flag, s)? {
        d if d.is_zero() => err(format!("{flag}: must be more than 0")),
        d => Ok(d),
    }
}

fn parse_num<T: std::str::FromStr + PartialOrd + From<u8>>(
    flag: &str,
    s: &str,
    min: u8,
) -> Result<T, UsageError> {
    match s.parse::<T>() {
        Ok(n) if n >= T::from(min) => Ok(n),
        Ok(_) => err(format!("{flag}: must be at least {min}")),
        Err(_) => err(format!("{flag}: bad number \"{s}\"")),
    }
}

/// The flags of `mooring relay`.
pub(super) fn parse_relay<I: Iterator<Item = String>>(
    words: &mut Words<I>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<Command, UsageError> {
    let d = RelayConfig::new(SocketAddr::from(([0, 0, 0, 0], 0)));
    let mut listen = None;
    let mut upstreams: Vec<SocketAddr> = Vec::new();
    let mut failover_after = d.failover_after;
    let mut upstream_window = d.upstream_window;
    let mut link = LinkFlags::default();
    let mut queue = d.queue;
    let mut ack_after = None;
    let mut spool = None;
    let mut spool_size = None;
    let mut fsync = None;
    let mut retries = d.retries;
    let mut response_timeout = d.response_timeout;
    let mut reconnect_min = None;
    let mut reconnect_max = None;
    let mut connect_timeout = d.connect_timeout;
    let mut dedup_window = d.dedup_window;
    let mut max_conns = 10usize;
    let mut max_conns_per_ip = None;
    let mut write_timeout = mooring::config::DEFAULT_WRITE_TIMEOUT;
    let mut metrics = None;
    let mut device_tls = TlsServerFlags::default();
    let mut upstream_tls = TlsClientFlags::new("--upstream-tls");
    // Liveness flags with their values (and config file lines), checked once
    // the relay's own are.
    let mut live = Vec::new();
    while let Some(w) = words.next_word() {
        let (flag, inline) = match w {
            Word::Positional(p) => return err(format!("unexpected argument \"{p}\" for relay")),
            Word::Flag(f, inline) => (f, inline),
        };
        if LivenessFlags::takes(&flag) {
            let v = words.value(&flag, inline)?;
            live.push((flag, v, words.at.clone()));
            continue;
        }
        if global_flag(&flag, &inline, verbosity, help)? {
            continue;
        }
        if link.parse(&flag, inline.clone(), words)?
            || device_tls.parse(&flag, inline.clone(), words)?
            || upstream_tls.parse(&flag, inline.clone(), words, false)?
        {
            continue;
        }
        let v = words.value(&flag, inline);
        match flag.as_str() {
            "--listen" => listen = Some(parse_addr(&flag, &v?)?),
            "--upstream" => upstreams.push(parse_addr(&flag, &v?)?),
            "--failover-after" => failover_after = parse_num(&flag, &v?, 1)?,
            "--upstream-window" => upstream_window = parse_num(&flag, &v?, 1)?,
            "--queue" => queue = parse_num(&flag, &v?, 1)?,
            "--ack-after" => {
                ack_after = match v?.as_str() {
                    "queued" => Some(AckAfter::Queued),
                    "upstream" => Some(AckAfter::Upstream),
                    v => {
                        return err(format!(
                            "--ack-after: bad value \"{v}\" (use queued or upstream)"
                        ))
                    }
                }
            }
            "--retries" => retries = parse_num(&flag, &v?, 0)?,
            "--response-timeout" => response_timeout = parse_dur(&flag, &v?)?,
            "--reconnect-min" => reconnect_min = Some(parse_dur(&flag, &v?)?),
            "--reconnect-max" => reconnect_max = Some(parse_dur(&flag, &v?)?),
            "--connect-timeout" => connect_timeout = parse_dur(&flag, &v?)?,
            "--dedup-window" => dedup_window = parse_num(&flag, &v?, 1)?,
            "--max-conns" => max_conns = parse_num(&flag, &v?, 1)?,
            "--max-conns-per-ip" => max_conns_per_ip = parse_limit(&flag, &v?)?,
            "--write-timeout" => write_timeout = parse_dur(&flag, &v?)?,
            "--spool" => {
                spool = Some(match v?.as_str() {
                    "" => return err("--spool: empty directory name"),
                    "memory" => SpoolChoice::Memory,
                    dir => SpoolChoice::Dir(PathBuf::from(dir)),
                })
            }
            "--spool-size" => spool_size = Some(parse_size(&flag, &v?)?),
            "--fsync" => fsync = Some(parse_fsync(&flag, &v?)?),
            "--metrics" => metrics = Some(parse_addr(&flag, &v?)?),
            f => {
                return err(format!(
                    "unknown flag {f} for relay (see mooring relay --help)"
                ))
            }
        }
    }
    if *help {
        return Ok(Command::Help(RELAY_USAGE));
    }
    let Some(listen) = listen else {
        return err("relay: missing --listen ADDR");
    };
    let Some((&upstream, backups)) = upstreams.split_first() else {
        return err("relay: missing --upstream ADDR");
    };
    let backup_upstreams = backups.to_vec();
    let mut flags = LivenessFlags::default();
    let mut none = Words::new(std::iter::empty());
    for (flag, v, at) in live {
        flags
            .parse(&flag, Some(v), &mut none)
            .map_err(|e| match at {
                Some(o) => o.locate(e),
                None => e,
            })?;
    }
    let liveness = flags.finish()?;
    if upstream_window > 1 && liveness.protocol != mooring::Protocol::Raw {
        return err("relay: --upstream-window applies to --protocol raw (a session forwards a window of the whole queue)");
    }
    let backoff = backoff_from(reconnect_min, reconnect_max)?;
    // One --tls-handshake-timeout for both sides, whichever uses TLS.
    upstream_tls.handshake_timeout = device_tls.handshake_timeout;
    if device_tls.handshake_timeout.is_some() && !device_tls.has_cert() {
        if !upstream_tls.is_on() {
            return err("--tls-handshake-timeout: needs --tls-cert FILE or --upstream-tls");
        }
        device_tls.handshake_timeout = None;
    }
    let device_tls = device_tls.finish()?;
    let upstream_tls = upstream_tls.finish()?;
    // `--spool DIR` or `--spool memory` (see `default_ack_after`).
    let ack_after = ack_after.unwrap_or(default_ack_after(spool.is_some()));
    let spool = match spool {
        Some(SpoolChoice::Dir(dir)) => {
            let mut s = SpoolSettings::new(dir);
            s.size = spool_size.unwrap_or(s.size);
            s.fsync = fsync.unwrap_or(s.fsync);
            Some(s)
        }
        _ if spool_size.is_some() || fsync.is_some() => {
            return err("relay: --spool-size and --fsync need --spool DIR")
        }
        _ => None,
    };
    // Without the `tls` feature there is no upstream TLS (its flags are refused).
    #[cfg(not(feature = "tls"))]
    let _ = upstream_tls;
    Ok(Command::Relay(Box::new(RelayOpts {
        listen,
        relay: RelayConfig {
            backup_upstreams,
            failover_after,
            upstream_window,
            queue,
            ack_after,
            retries,
            response_timeout,
            backoff,
            connect_timeout,
            dedup_window,
            liveness,
            spool,
            #[cfg(feature = "tls")]
            tls: upstream_tls,
            ..RelayConfig::new(upstream)
        },
        framing: link.framing,
        max_frame: link.max_frame,
        max_conns,
        max_conns_per_ip,
        write_timeout,
        metrics,
        device_tls,
    })))
}

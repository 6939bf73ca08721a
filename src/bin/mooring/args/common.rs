//! Value parsers shared by every subcommand: durations, addresses, framing,
//! counts, limits, the reconnect backoff.

use std::net::{SocketAddr, ToSocketAddrs};
use std::time::Duration;

use mooring::session::Backoff;
use mooring::Framing;

use super::{err, UsageError};

/// Parses a duration: digits then `ms`, `s`, `m` or `h`. A unit is required because a
/// bare `30` is seconds to one operator and milliseconds to the next.
pub fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let (digits, unit) = s.split_at(split);
    if digits.is_empty() {
        return None;
    }
    let n: u64 = digits.parse().ok()?;
    let ms_per_unit: u64 = match unit {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms_per_unit).map(Duration::from_millis)
}

/// Resolves `host:port` (an IP literal, or a name such as `localhost:2575`) to its
/// first address.
pub(crate) fn parse_addr(flag: &str, s: &str) -> Result<SocketAddr, UsageError> {
    if let Ok(a) = s.parse() {
        return Ok(a);
    }
    match s.to_socket_addrs().map(|mut it| it.next()) {
        Ok(Some(a)) => Ok(a),
        _ => err(format!(
            "{flag}: bad address \"{s}\" (use HOST:PORT, e.g. 127.0.0.1:2575)"
        )),
    }
}

/// `--framing`: `mllp` or `len32`.
pub(crate) fn parse_framing(s: &str) -> Result<Framing, UsageError> {
    match s {
        "mllp" => Ok(Framing::Mllp),
        "len32" => Ok(Framing::Len32),
        _ => err(format!("--framing: bad value \"{s}\" (use mllp or len32)")),
    }
}

/// A count or size for `flag`: a plain decimal number.
pub(super) fn parse_count<T: std::str::FromStr>(flag: &str, s: &str) -> Result<T, UsageError> {
    s.parse()
        .or_else(|_| err(format!("{flag}: bad number \"{s}\"")))
}

/// A limit for `flag`: a count, or `0`/`off` for none (`None`).
pub(crate) fn parse_limit(flag: &str, s: &str) -> Result<Option<usize>, UsageError> {
    if s == "off" {
        return Ok(None);
    }
    Ok(Some(parse_count::<usize>(flag, s)?).filter(|&n| n > 0))
}

/// A duration for `flag`, with the error line operators see for a bad one.
pub(crate) fn parse_dur(flag: &str, s: &str) -> Result<Duration, UsageError> {
    parse_duration(s).map_or_else(
        || err(format!("{flag}: bad duration \"{s}\" (use 500ms, 10s, 5m)")),
        Ok,
    )
}

/// The reconnection strategy from `--reconnect-min` / `--reconnect-max`: either
/// bound alone moves the other so that min <= max; both given must agree.
pub(crate) fn backoff_from(
    min: Option<Duration>,
    max: Option<Duration>,
) -> Result<Backoff, UsageError> {
    let mut backoff = Backoff::default();
    if let (Some(min), Some(max)) = (min, max) {
        if min > max {
            return err("--reconnect-min: more than --reconnect-max");
        }
    }
    if let Some(max) = max {
        backoff.max = max;
        backoff.min = backoff.min.min(max);
    }
    if let Some(min) = min {
        backoff.min = min;
        backoff.max = backoff.max.max(min);
    }
    Ok(backoff)
}

/// The link flags `listen`, `send` and `relay` share, with one spelling and one
/// check each: `--framing` and `--max-frame`.
#[derive(Clone, Copy, Debug)]
pub(crate) struct LinkFlags {
    /// `--framing` (default mllp).
    pub framing: Framing,
    /// `--max-frame`: the largest frame sent or accepted (default
    /// [`mooring::config::DEFAULT_MAX_FRAME`]).
    pub max_frame: usize,
}

impl Default for LinkFlags {
    fn default() -> Self {
        LinkFlags {
            framing: Framing::Mllp,
            max_frame: mooring::config::DEFAULT_MAX_FRAME,
        }
    }
}

impl LinkFlags {
    /// Takes `flag` (and its value) when it is one of these; false otherwise.
    pub(super) fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut super::Words<I>,
    ) -> Result<bool, UsageError> {
        match flag {
            "--framing" => self.framing = parse_framing(&words.value(flag, inline)?)?,
            "--max-frame" => self.max_frame = parse_count(flag, &words.value(flag, inline)?)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}

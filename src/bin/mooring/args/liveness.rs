//! The liveness flags every subcommand shares (`--protocol`, heartbeats,
//! keep-alive messages, OS keepalive, slow-frame limits).

use std::path::PathBuf;
use std::time::Duration;

use mooring::error::ConfigError;
use mooring::MAX_KEEPALIVE;
use mooring::{
    hl7, FrameTimeout, Heartbeat, KeepAliveMessage, KeepAlivePayload, LivenessConfig, Protocol,
    TcpKeepalive,
};

use super::common::{parse_count, parse_dur, parse_duration};
use super::{err, UsageError, Words};

/// The liveness flags `listen` and `send` share, as given; [`LivenessFlags::finish`]
/// checks them together and builds the library's [`LivenessConfig`].
#[derive(Debug, Default)]
pub(super) struct LivenessFlags {
    /// `--protocol`.
    protocol: Protocol,
    /// `--heartbeat`.
    heartbeat: Option<Duration>,
    /// `--heartbeat-timeout`.
    heartbeat_timeout: Option<Duration>,
    /// `--keepalive-message`.
    keepalive_message: Option<PathBuf>,
    /// `--keepalive-every`.
    keepalive_every: Option<Duration>,
    /// `--keepalive-timeout`.
    keepalive_timeout: Option<Duration>,
    /// `--tcp-keepalive`.
    tcp_keepalive: Option<TcpKeepalive>,
    /// `--tcp-user-timeout`.
    tcp_user_timeout: Option<Duration>,
    /// `--handshake-timeout`.
    handshake_timeout: Option<Duration>,
    /// `--frame-timeout` (`Some(None)`: `0` or `off`).
    frame_timeout: Option<Option<Duration>>,
    /// `--frame-min-rate`.
    frame_min_rate: Option<u32>,
}

/// `--tcp-keepalive IDLE,INTVL,COUNT`, e.g. `45s,10s,3`.
pub(super) fn parse_tcp_keepalive(s: &str) -> Result<TcpKeepalive, UsageError> {
    let bad = || {
        err(format!(
            "--tcp-keepalive: bad value \"{s}\" (use IDLE,INTVL,COUNT, e.g. 45s,10s,3)"
        ))
    };
    let mut parts = s.split(',');
    let (Some(idle), Some(intvl), Some(count), None) =
        (parts.next(), parts.next(), parts.next(), parts.next())
    else {
        return bad();
    };
    match (parse_duration(idle), parse_duration(intvl), count.parse()) {
        (Some(idle), Some(interval), Ok(count)) => Ok(TcpKeepalive {
            idle,
            interval,
            count,
        }),
        _ => bad(),
    }
}

/// The keep-alive payload from `path`: its first HL7 message, normalised to CR
/// segment separators, or the file's bytes as they are when it holds no HL7
/// message.
pub(super) fn read_keepalive(path: &PathBuf) -> Result<KeepAlivePayload, UsageError> {
    let text = std::fs::read(path).or_else(|e| {
        err(format!(
            "--keepalive-message: cannot read {}: {e}",
            path.display()
        ))
    })?;
    let mut buf = vec![0u8; text.len() + 1];
    let payload = match hl7::Messages::new(&text).next_into(&mut buf) {
        Ok(Some(n)) => {
            buf.truncate(n);
            buf
        }
        // No MSH line, or (not expected: normalising never grows a message by more
        // than one CR) no room: send the bytes as they are.
        _ => text,
    };
    if payload.is_empty() {
        return err(format!("--keepalive-message: {} is empty", path.display()));
    }
    if payload.len() > MAX_KEEPALIVE {
        return err(format!(
            "--keepalive-message: {} is {} bytes; at most {MAX_KEEPALIVE}",
            path.display(),
            payload.len()
        ));
    }
    Ok(KeepAlivePayload::from(payload))
}

/// The flag a configuration field comes from, for error lines.
fn liveness_flag_of(field: &str) -> &'static str {
    match field {
        "handshake_timeout" => "--handshake-timeout",
        "heartbeat" | "heartbeat.interval" => "--heartbeat",
        "heartbeat.timeout" => "--heartbeat-timeout",
        "keepalive.every" => "--keepalive-every",
        "keepalive.timeout" => "--keepalive-timeout",
        "keepalive.payload" => "--keepalive-message",
        "tcp_user_timeout" => "--tcp-user-timeout",
        "frame_timeout" => "--frame-timeout",
        f if f.starts_with("tcp_keepalive") => "--tcp-keepalive",
        _ => "liveness flags",
    }
}

/// Every liveness flag (each takes a value).
const LIVENESS_FLAGS: [&str; 11] = [
    "--protocol",
    "--heartbeat",
    "--heartbeat-timeout",
    "--keepalive-message",
    "--keepalive-every",
    "--keepalive-timeout",
    "--tcp-keepalive",
    "--tcp-user-timeout",
    "--handshake-timeout",
    "--frame-timeout",
    "--frame-min-rate",
];

impl LivenessFlags {
    /// True for a liveness flag.
    pub(super) fn takes(flag: &str) -> bool {
        LIVENESS_FLAGS.contains(&flag)
    }

    /// Takes `flag` (and its value) if it is a liveness flag; false otherwise.
    pub(super) fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut Words<I>,
    ) -> Result<bool, UsageError> {
        if !Self::takes(flag) {
            return Ok(false);
        }
        let v = words.value(flag, inline)?;
        match flag {
            "--protocol" => {
                self.protocol = match v.as_str() {
                    "raw" => Protocol::Raw,
                    "mooring" => Protocol::Mooring,
                    _ => {
                        return err(format!(
                            "--protocol: bad value \"{v}\" (use raw or mooring)"
                        ))
                    }
                }
            }
            "--heartbeat" => self.heartbeat = Some(parse_dur(flag, &v)?),
            "--heartbeat-timeout" => self.heartbeat_timeout = Some(parse_dur(flag, &v)?),
            "--keepalive-message" => self.keepalive_message = Some(PathBuf::from(v)),
            "--keepalive-every" => self.keepalive_every = Some(parse_dur(flag, &v)?),
            "--keepalive-timeout" => self.keepalive_timeout = Some(parse_dur(flag, &v)?),
            "--tcp-keepalive" => self.tcp_keepalive = Some(parse_tcp_keepalive(&v)?),
            "--tcp-user-timeout" => self.tcp_user_timeout = Some(parse_dur(flag, &v)?),
            "--frame-timeout" => {
                self.frame_timeout = Some(match v.as_str() {
                    "0" | "off" => None,
                    _ => Some(parse_dur(flag, &v)?),
                })
            }
            "--frame-min-rate" => self.frame_min_rate = Some(parse_count(flag, &v)?),
            _ => self.handshake_timeout = Some(parse_dur(flag, &v)?),
        }
        Ok(true)
    }

    /// Checks the flags together (naming the flag at fault), reads the keep-alive
    /// message file, and builds the configuration.
    pub(super) fn finish(self) -> Result<LivenessConfig, UsageError> {
        let mooring = self.protocol == Protocol::Mooring;
        if self.heartbeat.is_some() && !mooring {
            return err("--heartbeat: needs --protocol mooring (on both ends)");
        }
        if self.heartbeat_timeout.is_some() && self.heartbeat.is_none() {
            return err("--heartbeat-timeout: needs --heartbeat");
        }
        if self.handshake_timeout.is_some() && !mooring {
            return err(
                "--handshake-timeout: needs --protocol mooring (raw links have no handshake)",
            );
        }
        let keepalive = match (self.keepalive_message, self.keepalive_every) {
            (Some(path), Some(every)) => Some(KeepAliveMessage {
                payload: read_keepalive(&path)?,
                every,
                timeout: self.keepalive_timeout,
            }),
            (Some(_), None) => return err("--keepalive-message: needs --keepalive-every DUR"),
            (None, Some(_)) => return err("--keepalive-every: needs --keepalive-message FILE"),
            (None, None) if self.keepalive_timeout.is_some() => {
                return err("--keepalive-timeout: needs --keepalive-message and --keepalive-every")
            }
            (None, None) => None,
        };
        let frame_timeout = match (self.frame_timeout, self.frame_min_rate) {
            (Some(None), Some(_)) => {
                return err("--frame-min-rate: needs --frame-timeout (it is off)")
            }
            (Some(None), None) => None,
            (timeout, min_rate) => {
                let d = FrameTimeout::default();
                Some(FrameTimeout {
                    timeout: timeout.flatten().unwrap_or(d.timeout),
                    min_rate: min_rate.unwrap_or(d.min_rate),
                    ..d
                })
            }
        };
        let defaults = LivenessConfig::default();
        let cfg = LivenessConfig {
            protocol: self.protocol,
            heartbeat: self.heartbeat.map(|interval| Heartbeat {
                interval,
                timeout: self
                    .heartbeat_timeout
                    .unwrap_or_else(|| interval.saturating_mul(3)),
            }),
            keepalive,
            tcp_keepalive: self.tcp_keepalive,
            tcp_user_timeout: self.tcp_user_timeout,
            handshake_timeout: self.handshake_timeout.unwrap_or(defaults.handshake_timeout),
            frame_timeout,
        };
        cfg.validate().map_err(|e| {
            let flag = match e {
                ConfigError::ZeroTimeout { field }
                | ConfigError::ZeroSize { field }
                | ConfigError::TooLarge { field }
                | ConfigError::NeedsMooringProtocol { field } => liveness_flag_of(field),
                ConfigError::HeartbeatTimeoutNotAfterInterval => "--heartbeat-timeout",
                _ => "liveness flags",
            };
            UsageError(format!("{flag}: {e}"))
        })?;
        Ok(cfg)
    }
}

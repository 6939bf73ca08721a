//! The reliable-session flags `listen` and `send` share.

use std::time::Duration;

use mooring::session::{Backoff, SessionConfig};
use mooring::Protocol;

use super::common::{backoff_from, parse_count, parse_dur};
use super::{err, UsageError, Words};

/// The session flags `listen` and `send` share, as given; [`SessionFlags::finish`]
/// checks them together.
#[derive(Debug, Default)]
pub(super) struct SessionFlags {
    /// `--session`.
    on: bool,
    /// `--resume-window`.
    resume_window: Option<Duration>,
    /// `--queue`.
    queue: Option<usize>,
    /// `--queue-bytes`.
    queue_bytes: Option<usize>,
    /// `--reconnect-min` (send only).
    reconnect_min: Option<Duration>,
    /// `--reconnect-max` (send only).
    reconnect_max: Option<Duration>,
}

impl SessionFlags {
    /// Takes `flag` (and its value) if it is a session flag (`--reconnect-*`
    /// only when `client`); false otherwise.
    pub(super) fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut Words<I>,
        client: bool,
    ) -> Result<bool, UsageError> {
        match flag {
            "--session" => self.on = super::switch(flag, &inline)?,
            "--resume-window" => {
                let d = parse_dur(flag, &words.value(flag, inline)?)?;
                if d.is_zero() {
                    return err("--resume-window: must be more than 0");
                }
                self.resume_window = Some(d);
            }
            "--queue" => {
                let n: usize = parse_count(flag, &words.value(flag, inline)?)?;
                if n == 0 {
                    return err("--queue: must be at least 1");
                }
                self.queue = Some(n);
            }
            "--queue-bytes" => {
                let n: usize = parse_count(flag, &words.value(flag, inline)?)?;
                if n == 0 {
                    return err("--queue-bytes: must be at least 1");
                }
                self.queue_bytes = Some(n);
            }
            "--reconnect-min" | "--reconnect-max" if client => {
                let d = parse_dur(flag, &words.value(flag, inline)?)?;
                if d.is_zero() {
                    return err(format!("{flag}: must be more than 0"));
                }
                if flag == "--reconnect-min" {
                    self.reconnect_min = Some(d);
                } else {
                    self.reconnect_max = Some(d);
                }
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// Checks the flags against each other and the protocol; the session
    /// settings (`None` without `--session`) and the reconnection strategy.
    pub(super) fn finish(
        self,
        protocol: Protocol,
    ) -> Result<(Option<SessionConfig>, Backoff), UsageError> {
        if !self.on {
            let given = [
                ("--resume-window", self.resume_window.is_some()),
                ("--queue", self.queue.is_some()),
                ("--queue-bytes", self.queue_bytes.is_some()),
                ("--reconnect-min", self.reconnect_min.is_some()),
                ("--reconnect-max", self.reconnect_max.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return err(format!("{flag}: needs --session"));
            }
            return Ok((None, Backoff::default()));
        }
        if protocol != Protocol::Mooring {
            return err("--session: needs --protocol mooring (on both ends)");
        }
        let backoff = backoff_from(self.reconnect_min, self.reconnect_max)?;
        let defaults = SessionConfig::default();
        let depth = self.queue.unwrap_or(defaults.max_depth);
        Ok((
            Some(SessionConfig {
                max_bytes: self.queue_bytes.unwrap_or(defaults.max_bytes),
                reconnect_timeout: self.resume_window.unwrap_or(defaults.reconnect_timeout),
                ..defaults.with_depth(depth)
            }),
            backoff,
        ))
    }
}

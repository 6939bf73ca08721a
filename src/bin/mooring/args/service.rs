//! The flags of running as a service, the same for every subcommand:
//! `--shutdown-timeout DUR` and `--check-config`. They are taken by
//! [`super::Words`] itself, so no subcommand's parser repeats them.

use std::time::Duration;

use super::common::parse_dur;
use super::{switch, UsageError};

/// The default of `--shutdown-timeout`.
pub const DEFAULT_SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// How the process runs as a service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ServiceOpts {
    /// `--shutdown-timeout`: on SIGTERM or SIGINT, how long in-flight work may
    /// take to finish before the process exits anyway (default 5 s).
    pub shutdown_timeout: Duration,
    /// `--check-config`: parse the command line (and its config file), print
    /// `config=ok`, exit 0, run nothing.
    pub check_config: bool,
    /// The first error in one of these flags (reported once parsing is over,
    /// with its config file line).
    pub(super) error: Option<UsageError>,
}

impl Default for ServiceOpts {
    fn default() -> Self {
        ServiceOpts {
            shutdown_timeout: DEFAULT_SHUTDOWN_TIMEOUT,
            check_config: false,
            error: None,
        }
    }
}

impl ServiceOpts {
    /// True for a service flag.
    pub(super) fn takes(flag: &str) -> bool {
        matches!(flag, "--shutdown-timeout" | "--check-config")
    }

    /// True when the flag takes a value (`--flag V` or `--flag=V`).
    pub(super) fn wants_value(flag: &str) -> bool {
        flag == "--shutdown-timeout"
    }

    /// Takes one service flag with its value.
    pub(super) fn parse(&mut self, flag: &str, value: Option<String>) -> Result<(), UsageError> {
        match flag {
            "--shutdown-timeout" => {
                let v = value.unwrap_or_default();
                self.shutdown_timeout = parse_dur(flag, &v)?;
            }
            _ => self.check_config = switch(flag, &value)?,
        }
        Ok(())
    }
}

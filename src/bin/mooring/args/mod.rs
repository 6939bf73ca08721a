//! Command-line parsing: subcommands, flags and their values (durations, sizes,
//! addresses).
//!
//! Hand-written rather than a parser crate: the CLI has a dozen flags, and the
//! binary is meant to be small and static on edge boxes. Every mistake becomes a
//! [`UsageError`] that names the flag, so that `main` can print it on one line and
//! exit with status 2 (scripts tell usage errors from run-time failures by that).

/// Value parsers: durations, addresses, counts.
mod common;
/// `--config FILE`: the same flags, one per line.
mod config_file;
/// `mooring listen`'s options and flags.
mod listen;
/// The liveness flags every subcommand shares.
mod liveness;
/// `mooring relay`'s options and flags.
mod relay;
/// `mooring send`'s options and flags.
mod send;
/// `--shutdown-timeout`, `--check-config`: how the process runs as a service.
mod service;
/// The reliable-session flags `listen` and `send` share.
mod session;
#[cfg(test)]
mod tests;
/// The TLS flags (server side, client side).
mod tls;
#[cfg(test)]
mod tls_tests;
/// The usage texts.
mod usage;

use std::fmt;

pub use listen::{ListenOpts, ReplyMode};
pub use relay::RelayOpts;
pub use send::{Input, SendOpts};
pub use service::ServiceOpts;
pub use usage::{LISTEN_USAGE, SEND_USAGE, USAGE, VERSION};

/// A command line that cannot be run: printed as `error: <message>`, status 2.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UsageError(pub String);

impl fmt::Display for UsageError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for UsageError {}

/// Shorthand for returning a [`UsageError`].
pub(crate) fn err<T>(msg: impl Into<String>) -> Result<T, UsageError> {
    Err(UsageError(msg.into()))
}

/// How much the binary logs to stderr.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Verbosity {
    /// `-q`: errors only.
    Quiet,
    /// The default: warnings and errors.
    Normal,
    /// `-v`: debug.
    Debug,
    /// `-vv`: trace.
    Trace,
}

/// A subcommand with its options.
#[derive(Debug)]
pub enum Command {
    /// Print this text to stdout and exit 0.
    Help(&'static str),
    /// `mooring listen`.
    Listen(Box<ListenOpts>),
    /// `mooring send`.
    Send(Box<SendOpts>),
    /// `mooring relay`.
    Relay(Box<RelayOpts>),
    /// `mooring demo`.
    Demo,
}

/// The parsed command line.
#[derive(Debug)]
pub struct Cli {
    /// From `-v`, `-vv`, `-q`.
    pub verbosity: Verbosity,
    /// What to run.
    pub command: Command,
    /// `--shutdown-timeout`, `--check-config`, `--config`.
    pub service: ServiceOpts,
}

/// Walks the arguments of one subcommand: flags, `--flag=value` or `--flag value`,
/// and positionals; first the words of its `--config` file, if any. The
/// service flags (`--shutdown-timeout`, `--check-config`) are taken here, for
/// every subcommand, and never reach the subcommand's parser.
struct Words<I: Iterator<Item = String>> {
    /// The config file's words, each with its line.
    file: std::vec::IntoIter<(Word, config_file::Origin)>,
    rest: I,
    /// The line of the word last returned, when it came from the config file.
    at: Option<config_file::Origin>,
    /// The service flags seen.
    service: ServiceOpts,
}

/// One word of a subcommand's arguments.
enum Word {
    /// `--name` (value, if given as `--name=value`).
    Flag(String, Option<String>),
    /// Anything else (including `-`).
    Positional(String),
}

impl<I: Iterator<Item = String>> Words<I> {
    fn new(rest: I) -> Self {
        Words {
            file: Vec::new().into_iter(),
            rest,
            at: None,
            service: ServiceOpts::default(),
        }
    }

    /// The next word for the subcommand's parser. Service flags are taken on
    /// the way; the first error in one is kept in `service.error` (with its
    /// config file line) and reported once the subcommand's words are parsed.
    fn next_word(&mut self) -> Option<Word> {
        loop {
            let w = self.next_raw()?;
            match w {
                Word::Flag(f, inline) if ServiceOpts::takes(&f) => {
                    let v = match ServiceOpts::wants_value(&f) {
                        true => self.value(&f, inline).map(Some),
                        false => Ok(inline),
                    };
                    let at = self.at.clone();
                    let res = v.and_then(|v| self.service.parse(&f, v));
                    if let Err(e) = res {
                        let e = match at {
                            Some(o) => o.locate(e),
                            None => e,
                        };
                        self.service.error.get_or_insert(e);
                    }
                }
                w => return Some(w),
            }
        }
    }

    /// The next word, from the file first.
    fn next_raw(&mut self) -> Option<Word> {
        if let Some((w, origin)) = self.file.next() {
            self.at = Some(origin);
            return Some(w);
        }
        self.at = None;
        let w = self.rest.next()?;
        if w.starts_with("--") {
            return Some(match w.split_once('=') {
                Some((name, value)) => Word::Flag(name.to_string(), Some(value.to_string())),
                None => Word::Flag(w, None),
            });
        }
        if w.starts_with('-') && w.len() > 1 {
            return Some(Word::Flag(w, None));
        }
        Some(Word::Positional(w))
    }

    /// The value of `flag`: inline (`--flag=v`) or the next word (never the
    /// next line of a config file).
    fn value(&mut self, flag: &str, inline: Option<String>) -> Result<String, UsageError> {
        if inline.is_none() && self.at.is_some() {
            return err(format!(
                "{flag}: missing value (use {} = VALUE)",
                flag.trim_start_matches('-')
            ));
        }
        match inline.or_else(|| self.rest.next()) {
            Some(v) => Ok(v),
            None => err(format!("{flag}: missing value")),
        }
    }
}

/// A switch's value: given bare (`--quiet`), or `true`/`false` (`--quiet=false`,
/// as a config file's `quiet = false` arrives).
pub(crate) fn switch(flag: &str, inline: &Option<String>) -> Result<bool, UsageError> {
    match inline.as_deref() {
        None | Some("true") => Ok(true),
        Some("false") => Ok(false),
        Some(_) => err(format!("{flag}: takes no value (or true/false)")),
    }
}

/// Handles the flags valid everywhere; false when `flag` is not one of them.
/// The long ones are switches (`--verbose=false`, as a config file's
/// `verbose = false` arrives): false is as if not given.
pub(crate) fn global_flag(
    flag: &str,
    inline: &Option<String>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<bool, UsageError> {
    let on = match flag {
        "--verbose" | "--help" => switch(flag, inline)?,
        _ if inline.is_some() => return Ok(false),
        _ => true,
    };
    if !on {
        return Ok(true);
    }
    match flag {
        "-v" | "--verbose" => {
            *verbosity = match *verbosity {
                Verbosity::Debug | Verbosity::Trace => Verbosity::Trace,
                _ => Verbosity::Debug,
            }
        }
        "-vv" | "-vvv" => *verbosity = Verbosity::Trace,
        "-q" => *verbosity = Verbosity::Quiet,
        "-h" | "--help" => *help = true,
        _ => return Ok(false),
    }
    Ok(true)
}

/// Parses the arguments after the program name.
pub fn parse(args: impl IntoIterator<Item = String>) -> Result<Cli, UsageError> {
    let args: Vec<String> = args.into_iter().collect();
    // Before `relay` (the first word that is not a flag), an unknown word is
    // named whole, as the relay's own parser named it.
    let relay = args
        .iter()
        .find(|a| !a.starts_with('-'))
        .is_some_and(|a| a == "relay");
    let mut words = Words::new(args.into_iter());
    let mut verbosity = Verbosity::Normal;
    let mut help = false;
    let sub = loop {
        match words.next_raw() {
            None => break None,
            // `mooring --version` (before any subcommand, like --help).
            Some(Word::Flag(f, None)) if f == "--version" || f == "-V" => {
                return Ok(Cli {
                    verbosity,
                    command: Command::Help(VERSION),
                    service: ServiceOpts::default(),
                });
            }
            Some(Word::Flag(f, inline)) => {
                if !global_flag(&f, &inline, &mut verbosity, &mut help)? {
                    let f = match (relay, inline) {
                        (true, Some(v)) => format!("{f}={v}"),
                        _ => f,
                    };
                    return err(format!("unknown flag {f} (see mooring --help)"));
                }
            }
            Some(Word::Positional(p)) if relay && p == "-" => {
                return err("unknown flag - (see mooring --help)")
            }
            Some(Word::Positional(p)) => break Some(p),
        }
    };
    // The subcommand's words: its config file's first.
    let mut rest: Vec<String> = words.rest.by_ref().collect();
    let file = match sub.as_deref() {
        Some("listen" | "send" | "relay" | "demo") => config_file::take_config(&mut rest)?,
        _ => Vec::new(),
    };
    let lines = config_file::FlagLines::of(&file);
    let mut words = Words {
        file: file.into_iter(),
        ..Words::new(rest.into_iter())
    };
    let command =
        parse_command(sub.as_deref(), &mut words, &mut verbosity, &mut help).map_err(|e| {
            match &words.at {
                Some(origin) => origin.locate(e),
                // Checked once every word was read: at the line of a flag it names.
                None => lines.locate(e),
            }
        })?;
    let service = words.service;
    if let Some(e) = service.error {
        return Err(e);
    }
    let command = match command {
        Command::Listen(_) if help => Command::Help(LISTEN_USAGE),
        Command::Send(_) if help => Command::Help(SEND_USAGE),
        Command::Demo if help => Command::Help(USAGE),
        c => c,
    };
    Ok(Cli {
        verbosity,
        command,
        service: ServiceOpts {
            error: None,
            ..service
        },
    })
}

/// The subcommand `sub` with its words.
fn parse_command(
    sub: Option<&str>,
    words: &mut Words<std::vec::IntoIter<String>>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<Command, UsageError> {
    let command = match sub {
        None if *help => Command::Help(USAGE),
        None => return err("missing subcommand: listen, send, relay or demo (see mooring --help)"),
        Some("help") => Command::Help(USAGE),
        Some("listen") => listen::parse_listen(words, verbosity, help)?,
        Some("send") => send::parse_send(words, verbosity, help)?,
        Some("relay") => relay::parse_relay(words, verbosity, help)?,
        Some("demo") => {
            while let Some(w) = words.next_word() {
                match w {
                    Word::Flag(f, inline) if global_flag(&f, &inline, verbosity, help)? => {}
                    Word::Flag(f, _) => return err(format!("unknown flag {f} for demo")),
                    Word::Positional(p) => {
                        return err(format!("unexpected argument \"{p}\" for demo"))
                    }
                }
            }
            Command::Demo
        }
        Some(other) => {
            return err(format!(
                "unknown subcommand \"{other}\" (use listen, send, relay or demo)"
            ))
        }
    };
    Ok(command)
}

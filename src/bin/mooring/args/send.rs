//! `mooring send`: its options, positionals and flags.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use mooring::session::{Backoff, SessionConfig};
use mooring::{Framing, LivenessConfig};

use super::common::{parse_addr, parse_count, parse_dur, LinkFlags};
use super::liveness::LivenessFlags;
use super::session::SessionFlags;
use super::tls::{ClientTlsOpts, TlsClientFlags};
use super::usage::SEND_USAGE;
use super::{err, global_flag, Command, UsageError, Verbosity, Word, Words};

/// Where `send` reads its messages.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Input {
    /// Standard input (`-` or no FILE).
    Stdin,
    /// A file.
    File(PathBuf),
}

/// Options of `mooring send`.
#[derive(Clone, Debug)]
pub struct SendOpts {
    /// ADDR.
    pub addr: SocketAddr,
    /// FILE or `-`.
    pub input: Input,
    /// `--framing`.
    pub framing: Framing,
    /// `--max-frame`: the largest message sent or reply accepted.
    pub max_frame: usize,
    /// `--batch-as-frame`: an HL7 batch file goes as one frame, envelope and all.
    pub batch_as_frame: bool,
    /// `--close-each`.
    pub close_each: bool,
    /// `--response-timeout`.
    pub response_timeout: Duration,
    /// `--connect-timeout`.
    pub connect_timeout: Duration,
    /// `--retries`.
    pub retries: u32,
    /// Not `--no-correlate`.
    pub correlate: bool,
    /// `--hold`.
    pub hold: Option<Duration>,
    /// `--pace`.
    pub pace: Option<Duration>,
    /// `--write-timeout`.
    pub write_timeout: Duration,
    /// `--protocol`, `--heartbeat`, `--keepalive-*`, `--tcp-*`, `--handshake-timeout`.
    pub liveness: LivenessConfig,
    /// `--session`, `--resume-window`, `--queue`: send through a reliable session.
    pub session: Option<SessionConfig>,
    /// `--reconnect-min`, `--reconnect-max`.
    pub backoff: Backoff,
    /// `--tls`, `--tls-ca`, `--tls-server-name`, `--tls-cert`, `--tls-key`,
    /// `--tls-handshake-timeout` (`None`: plain TCP).
    // Always `None` without the `tls` feature (its flags are refused).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub tls: Option<ClientTlsOpts>,
}

/// The positionals and flags of `mooring send`.
pub(super) fn parse_send<I: Iterator<Item = String>>(
    words: &mut Words<I>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<Command, UsageError> {
    let mut addr = None;
    let mut input = None;
    let mut link = LinkFlags::default();
    let mut batch_as_frame = false;
    let mut close_each = false;
    let mut response_timeout = Duration::from_secs(10);
    let mut connect_timeout = Duration::from_secs(5);
    let mut retries = 0;
    let mut correlate = true;
    let mut hold = None;
    let mut pace = None;
    let mut write_timeout = mooring::config::DEFAULT_WRITE_TIMEOUT;
    let mut live = LivenessFlags::default();
    let mut sess = SessionFlags::default();
    let mut tls = TlsClientFlags::new("--tls");
    while let Some(w) = words.next_word() {
        let (flag, inline) = match w {
            Word::Positional(p) if addr.is_none() => {
                addr = Some(p);
                continue;
            }
            Word::Positional(p) if input.is_none() => {
                input = Some(if p == "-" {
                    Input::Stdin
                } else {
                    Input::File(PathBuf::from(p))
                });
                continue;
            }
            Word::Positional(p) => {
                return err(format!(
                    "unexpected argument \"{p}\" for send (one FILE only)"
                ))
            }
            Word::Flag(f, inline) => (f, inline),
        };
        let switch = |inline: &Option<String>| super::switch(&flag, inline);
        match flag.as_str() {
            "--batch-as-frame" => batch_as_frame = switch(&inline)?,
            "--close-each" => close_each = switch(&inline)?,
            "--response-timeout" => {
                response_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?
            }
            "--connect-timeout" => {
                connect_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?
            }
            "--retries" => retries = parse_count(&flag, &words.value(&flag, inline)?)?,
            "--no-correlate" => correlate = !switch(&inline)?,
            "--hold" => hold = Some(parse_dur(&flag, &words.value(&flag, inline)?)?),
            "--pace" => pace = Some(parse_dur(&flag, &words.value(&flag, inline)?)?),
            "--write-timeout" => write_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?,
            f if link.parse(f, inline.clone(), words)? => {}
            f if live.parse(f, inline.clone(), words)? => {}
            f if sess.parse(f, inline.clone(), words, true)? => {}
            f if tls.parse(f, inline.clone(), words, true)? => {}
            f if global_flag(f, &inline, verbosity, help)? => {}
            f => {
                return err(format!(
                    "unknown flag {f} for send (see mooring send --help)"
                ))
            }
        }
    }
    if *help {
        // `mooring send --help` needs no ADDR.
        return Ok(Command::Help(SEND_USAGE));
    }
    let Some(addr) = addr else {
        return err("send: missing ADDR (e.g. mooring send 127.0.0.1:2575 messages.hl7)");
    };
    let liveness = live.finish()?;
    let (session, backoff) = sess.finish(liveness.protocol)?;
    if session.is_some() && close_each {
        return err("--close-each: cannot be used with --session");
    }
    let tls = tls.finish()?;
    Ok(Command::Send(Box::new(SendOpts {
        addr: parse_addr("ADDR", &addr)?,
        input: input.unwrap_or(Input::Stdin),
        framing: link.framing,
        max_frame: link.max_frame,
        batch_as_frame,
        close_each,
        response_timeout,
        connect_timeout,
        retries,
        correlate,
        hold,
        pace,
        write_timeout,
        liveness,
        session,
        backoff,
        tls,
    })))
}

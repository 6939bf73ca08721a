//! `mooring listen`: its options and flags.

use std::net::SocketAddr;
use std::time::Duration;

use mooring::session::SessionConfig;
use mooring::{AllowList, Cidr, Framing, LivenessConfig};

use super::common::{parse_addr, parse_count, parse_dur, parse_limit, LinkFlags};
use super::liveness::LivenessFlags;
use super::session::SessionFlags;
use super::tls::{ServerTlsOpts, TlsServerFlags};
use super::{err, global_flag, Command, UsageError, Verbosity, Word, Words};

/// What `listen` answers to each message.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReplyMode {
    /// An HL7 ACK: `AA` for HL7, `AR` for a payload that is not HL7.
    Hl7Ack,
    /// The payload itself.
    Echo,
    /// Nothing.
    None,
}

/// Options of `mooring listen`.
#[derive(Clone, Debug)]
pub struct ListenOpts {
    /// `--bind`.
    pub bind: SocketAddr,
    /// `--framing`.
    pub framing: Framing,
    /// `--max-conns`.
    pub max_conns: usize,
    /// `--max-conns-per-ip` (`None`: off).
    pub max_conns_per_ip: Option<usize>,
    /// `--idle-timeout`.
    pub idle_timeout: Option<Duration>,
    /// `--stale-recovery`.
    pub stale_recovery: Option<Duration>,
    /// `--close-after-reply`.
    pub close_after_reply: bool,
    /// `--allow`, every occurrence.
    pub allow: AllowList,
    /// `--reply`.
    pub reply: ReplyMode,
    /// `--max-frame`.
    pub max_frame: usize,
    /// `--mllp-commit-ack`.
    pub mllp_commit_ack: bool,
    /// `--write-timeout`.
    pub write_timeout: Duration,
    /// `--quiet`.
    pub quiet: bool,
    /// `--protocol`, `--heartbeat`, `--keepalive-*`, `--tcp-*`, `--handshake-timeout`.
    pub liveness: LivenessConfig,
    /// `--session`, `--resume-window`, `--queue`: serve reliable sessions.
    pub session: Option<SessionConfig>,
    /// `--max-sessions-per-ip`.
    pub max_sessions_per_ip: Option<usize>,
    /// `--metrics ADDR`: serve `GET /metrics` there (`None`: off).
    pub metrics: Option<SocketAddr>,
    /// `--tls-cert`, `--tls-key`, `--tls-ca`, `--tls-client-auth`,
    /// `--tls-allow-peer`, `--tls-handshake-timeout` (`None`: plain TCP).
    pub tls: Option<ServerTlsOpts>,
}

impl Default for ListenOpts {
    fn default() -> Self {
        ListenOpts {
            bind: SocketAddr::from(([127, 0, 0, 1], 2575)),
            framing: Framing::Mllp,
            max_conns: 10,
            max_conns_per_ip: None,
            idle_timeout: None,
            stale_recovery: None,
            close_after_reply: false,
            allow: AllowList::default(),
            reply: ReplyMode::Hl7Ack,
            max_frame: mooring::config::DEFAULT_MAX_FRAME,
            mllp_commit_ack: false,
            write_timeout: mooring::config::DEFAULT_WRITE_TIMEOUT,
            quiet: false,
            liveness: LivenessConfig::default(),
            session: None,
            max_sessions_per_ip: None,
            metrics: None,
            tls: None,
        }
    }
}

/// The flags of `mooring listen`.
pub(super) fn parse_listen<I: Iterator<Item = String>>(
    words: &mut Words<I>,
    verbosity: &mut Verbosity,
    help: &mut bool,
) -> Result<Command, UsageError> {
    let mut o = ListenOpts::default();
    let mut live = LivenessFlags::default();
    let mut sess = SessionFlags::default();
    let mut link = LinkFlags::default();
    let mut tls = TlsServerFlags::default();
    while let Some(w) = words.next_word() {
        let (flag, inline) = match w {
            Word::Positional(p) => {
                return err(format!(
                    "unexpected argument \"{p}\" for listen (use --bind ADDR)"
                ))
            }
            Word::Flag(f, inline) => (f, inline),
        };
        // Switches take no value but true/false; refuse `--quiet=yes` rather than guess.
        let switch = |inline: &Option<String>| super::switch(&flag, inline);
        match flag.as_str() {
            "--bind" => o.bind = parse_addr(&flag, &words.value(&flag, inline)?)?,
            "--max-conns" => o.max_conns = parse_count(&flag, &words.value(&flag, inline)?)?,
            "--max-conns-per-ip" => {
                o.max_conns_per_ip = parse_limit(&flag, &words.value(&flag, inline)?)?
            }
            "--idle-timeout" => {
                o.idle_timeout = Some(parse_dur(&flag, &words.value(&flag, inline)?)?)
            }
            "--stale-recovery" => {
                o.stale_recovery = Some(parse_dur(&flag, &words.value(&flag, inline)?)?)
            }
            "--close-after-reply" => o.close_after_reply = switch(&inline)?,
            "--allow" => {
                let v = words.value(&flag, inline)?;
                let net: Cidr = v.parse().or_else(|_| {
                    err(format!(
                        "--allow: bad value \"{v}\" (use an IP or a CIDR such as 10.0.0.0/8)"
                    ))
                })?;
                o.allow
                    .push(net)
                    .or_else(|e| err(format!("--allow: {e}")))?;
            }
            "--reply" => {
                o.reply = match words.value(&flag, inline)?.as_str() {
                    "hl7-ack" => ReplyMode::Hl7Ack,
                    "echo" => ReplyMode::Echo,
                    "none" => ReplyMode::None,
                    v => {
                        return err(format!(
                            "--reply: bad value \"{v}\" (use hl7-ack, echo or none)"
                        ))
                    }
                }
            }
            "--mllp-commit-ack" => o.mllp_commit_ack = switch(&inline)?,
            "--write-timeout" => o.write_timeout = parse_dur(&flag, &words.value(&flag, inline)?)?,
            "--quiet" => o.quiet = switch(&inline)?,
            "--metrics" => o.metrics = Some(parse_addr(&flag, &words.value(&flag, inline)?)?),
            "--max-sessions-per-ip" => {
                let n = parse_count(&flag, &words.value(&flag, inline)?)?;
                if n == 0 {
                    return err("--max-sessions-per-ip: must be at least 1");
                }
                o.max_sessions_per_ip = Some(n);
            }
            f if link.parse(f, inline.clone(), words)? => {}
            f if live.parse(f, inline.clone(), words)? => {}
            f if sess.parse(f, inline.clone(), words, false)? => {}
            f if tls.parse(f, inline.clone(), words)? => {}
            f if global_flag(f, &inline, verbosity, help)? => {}
            f => {
                return err(format!(
                    "unknown flag {f} for listen (see mooring listen --help)"
                ))
            }
        }
    }
    o.framing = link.framing;
    o.max_frame = link.max_frame;
    if !*help {
        o.liveness = live.finish()?;
        o.session = sess.finish(o.liveness.protocol)?.0;
        if o.session.is_some() && o.close_after_reply {
            return err("--close-after-reply: cannot be used with --session");
        }
        if o.session.is_none() && o.max_sessions_per_ip.is_some() {
            return err("--max-sessions-per-ip: needs --session");
        }
        o.tls = tls.finish()?;
    }
    Ok(Command::Listen(Box::new(o)))
}

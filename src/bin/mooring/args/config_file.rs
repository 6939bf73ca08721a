//! `--config FILE`: the command line's own flags, one per line, so there is
//! nothing new to learn and one parser for both.
//!
//! ```text
//! # comments start a line, or follow a space
//! listen = 0.0.0.0:2575
//! upstream = 10.1.2.3:2575      # repeatable flags repeat the line
//! spool = /var/lib/mooring/spool
//! session                       # a switch: bare, `= true` or `= false`
//! ```
//!
//! Each line becomes the word the command line would have (`--listen=0.0.0.0:2575`,
//! `--session`), and the subcommand's parser takes the file's words before the
//! command line's. A flag given on the command line replaces every line of
//! the file for that flag (a repeatable one too). Errors in a line's flag or
//! value are reported as `FILE:LINE: ...`, and so are those between flags
//! (`heartbeat` without `protocol = mooring`), at the line of the flag refused.

use std::rc::Rc;

use super::{err, UsageError, Word};

/// Where a word came from: a line of a config file.
#[derive(Clone, Debug)]
pub(super) struct Origin {
    /// The file as given to `--config`.
    pub file: Rc<str>,
    /// 1-based.
    pub line: usize,
}

impl Origin {
    /// `e`, prefixed with `FILE:LINE: `.
    pub(super) fn locate(&self, e: UsageError) -> UsageError {
        UsageError(format!("{}:{}: {}", self.file, self.line, e.0))
    }
}

/// Each flag the file gives with its line, to name the line in an error
/// found only once every word was read (`--heartbeat: needs --protocol
/// mooring`).
pub(super) struct FlagLines(Vec<(String, Origin)>);

impl FlagLines {
    /// The flags of the file's words (those the command line left).
    pub(super) fn of(words: &[(Word, Origin)]) -> FlagLines {
        let flags = words.iter().filter_map(|(w, o)| match w {
            Word::Flag(f, _) => Some((f.clone(), o.clone())),
            Word::Positional(_) => None,
        });
        FlagLines(flags.collect())
    }

    /// `e` at the line of the first flag it names that the file gives (its
    /// last line, whose value stands): the refused flag comes first in
    /// these messages. Unchanged when it names none of them, or already
    /// names its line (the relay's liveness flags are checked with theirs).
    pub(super) fn locate(&self, e: UsageError) -> UsageError {
        if let Some((_, o)) = self.0.first() {
            if e.0.starts_with(&format!("{}:", o.file)) {
                return e;
            }
        }
        let named = e.0.match_indices("--").map(|(i, _)| {
            let rest = &e.0[i..];
            let end = rest[2..]
                .find(|c: char| !(c.is_ascii_alphanumeric() || c == '-'))
                .map_or(rest.len(), |n| n + 2);
            &rest[..end]
        });
        let line = named
            .filter(|f| f.len() > 2)
            .find_map(|f| self.0.iter().rev().find(|(g, _)| g == f));
        match line {
            Some((_, origin)) => origin.locate(e),
            None => e,
        }
    }
}

/// Largest config file read: a few hundred lines of flags at most; anything
/// bigger is not a config file.
const MAX_BYTES: u64 = 1 << 20;

/// Finds `--config FILE` (or `--config=FILE`) among a subcommand's arguments,
/// removes it and returns the file's words (before the command line's, minus
/// the flags the command line gives itself).
pub(super) fn take_config(args: &mut Vec<String>) -> Result<Vec<(Word, Origin)>, UsageError> {
    let mut path = None;
    let mut i = 0;
    while i < args.len() {
        let given = if args[i] == "--config" {
            if args.get(i + 1).is_none_or(|v| v.starts_with("--")) {
                return err("--config: missing value");
            }
            let p = args.remove(i + 1);
            args.remove(i);
            p
        } else if let Some(p) = args[i].strip_prefix("--config=") {
            let p = p.to_string();
            args.remove(i);
            p
        } else {
            i += 1;
            continue;
        };
        if path.replace(given).is_some() {
            return err("--config: given twice (one file per command)");
        }
    }
    let Some(path) = path else {
        return Ok(Vec::new());
    };
    let text = read(&path)?;
    let mut words = parse_text(&path, &text)?;
    // The command line's flags replace the file's lines for them.
    let given: Vec<&str> = args
        .iter()
        .filter(|a| a.starts_with("--"))
        .map(|a| a.split_once('=').map_or(a.as_str(), |(f, _)| f))
        .collect();
    words.retain(|(w, _)| match w {
        Word::Flag(f, _) => !given.contains(&f.as_str()),
        Word::Positional(_) => true,
    });
    Ok(words)
}

/// The file's text, bounded in size.
fn read(path: &str) -> Result<String, UsageError> {
    use std::io::Read;
    let mut text = String::new();
    let res =
        std::fs::File::open(path).and_then(|f| f.take(MAX_BYTES + 1).read_to_string(&mut text));
    match res {
        Ok(n) if n as u64 > MAX_BYTES => err(format!("--config: {path} is larger than 1 MiB")),
        Ok(_) => Ok(text),
        Err(e) => err(format!("--config: cannot read {path}: {e}")),
    }
}

/// The words of a config file's text (`path` names it in errors).
pub(super) fn parse_text(path: &str, text: &str) -> Result<Vec<(Word, Origin)>, UsageError> {
    let file: Rc<str> = Rc::from(path);
    let mut words = Vec::new();
    for (n, raw) in text.lines().enumerate() {
        let origin = Origin {
            file: file.clone(),
            line: n + 1,
        };
        let line = strip_comment(raw).trim();
        if line.is_empty() {
            continue;
        }
        let word = parse_line(line).map_err(|e| origin.locate(e))?;
        words.push((word, origin));
    }
    Ok(words)
}

/// The line without its comment: from a `#` that starts it or follows
/// whitespace (so `a#b` is a value), outside double quotes.
fn strip_comment(line: &str) -> &str {
    let mut quoted = false;
    let mut prev_space = true;
    for (i, c) in line.char_indices() {
        match c {
            '"' => quoted = !quoted,
            '#' if !quoted && prev_space => return &line[..i],
            _ => {}
        }
        prev_space = c.is_whitespace();
    }
    line
}

/// One `flag = value` (or bare `flag`) line as the command line's word.
fn parse_line(line: &str) -> Result<Word, UsageError> {
    let (key, value) = match line.split_once('=') {
        Some((k, v)) => (k.trim(), Some(v.trim())),
        None => (line, None),
    };
    if key.starts_with('-') {
        return err(format!(
            "\"{key}\": write flags without the leading dashes (e.g. bind = 127.0.0.1:2575)"
        ));
    }
    if key.is_empty() || !key.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-') {
        return err(format!(
            "bad line \"{line}\" (use flag = value, a bare flag, or # comment)"
        ));
    }
    if key == "config" {
        return err("config: a config file cannot name another");
    }
    let flag = format!("--{key}");
    let value = value.map(unquote).transpose()?;
    Ok(match value {
        None | Some("true") => Word::Flag(flag, None),
        Some(v) => Word::Flag(flag, Some(v.to_string())),
    })
}

/// A value, without the double quotes around it if it has them (for values
/// with a leading or trailing space or a ` #`).
fn unquote(v: &str) -> Result<&str, UsageError> {
    match v.strip_prefix('"') {
        None => Ok(v),
        Some(rest) => match rest.strip_suffix('"') {
            Some(inner) if !inner.contains('"') => Ok(inner),
            _ => err(format!(
                "bad quoting in {v} (one \"...\" around the whole value)"
            )),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::super::{parse, Command};
    use super::*;

    fn flags(text: &str) -> Result<Vec<(String, Option<String>, usize)>, UsageError> {
        Ok(parse_text("f.conf", text)?
            .into_iter()
            .map(|(w, o)| match w {
                Word::Flag(f, v) => (f, v, o.line),
                Word::Positional(p) => panic!("positional {p}"),
            })
            .collect())
    }

    #[test]
    fn lines_become_the_command_lines_words() {
        let got = flags(
            "# comment\n\n  bind = 127.0.0.1:0   # trailing comment\nallow=10.0.0.0/8\n\
             session\nquiet = true\nclose-after-reply = false\nreply = \"echo\"\nx = a#b\n",
        )
        .unwrap();
        let s = |v: &str| Some(v.to_string());
        assert_eq!(
            got,
            vec![
                ("--bind".into(), s("127.0.0.1:0"), 3),
                ("--allow".into(), s("10.0.0.0/8"), 4),
                ("--session".into(), None, 5),
                ("--quiet".into(), None, 6),
                ("--close-after-reply".into(), s("false"), 7),
                ("--reply".into(), s("echo"), 8),
                ("--x".into(), s("a#b"), 9),
            ]
        );
    }

    #[test]
    fn a_malformed_line_is_named_by_file_and_line() {
        for (text, want) in [
            (
                "bind = 1\n--quiet\n",
                "f.conf:2: \"--quiet\": write flags without the leading dashes",
            ),
            (
                "\nbind 127.0.0.1:0\n",
                "f.conf:2: bad line \"bind 127.0.0.1:0\"",
            ),
            (
                "config = other.conf\n",
                "f.conf:1: config: a config file cannot name another",
            ),
            ("reply = \"echo\n", "f.conf:1: bad quoting"),
        ] {
            let e = flags(text).unwrap_err();
            assert!(e.0.starts_with(want), "{text:?}: {}", e.0);
        }
    }

    /// Writes `text` to a temporary file and parses `args` with `--config` it.
    fn with_file(name: &str, text: &str, args: &[&str]) -> Result<super::super::Cli, UsageError> {
        let p = std::env::temp_dir().join(format!("mooring-cfg-{}-{name}", std::process::id()));
        std::fs::write(&p, text).unwrap();
        let path = p.to_string_lossy().into_owned();
        let mut all: Vec<String> = args.iter().map(|s| s.to_string()).collect();
        all.extend(["--config".to_string(), path]);
        let r = parse(all);
        let _ = std::fs::remove_file(&p);
        r
    }

    #[test]
    fn the_command_line_overrides_the_file_and_switches_take_false() {
        let text = "bind = 127.0.0.1:7000\nmax-conns = 3\nallow = 10.0.0.0/8\nallow = 127.0.0.1\n\
                    quiet\nshutdown-timeout = 9s\n";
        let cli = with_file("a", text, &["listen", "--max-conns", "4", "--quiet=false"]).unwrap();
        let Command::Listen(o) = cli.command else {
            panic!("listen")
        };
        assert_eq!(o.bind.port(), 7000, "from the file");
        assert_eq!(o.max_conns, 4, "the command line wins");
        assert!(!o.quiet, "--quiet=false replaces the file's quiet");
        let ip = |s: &str| s.parse::<std::net::IpAddr>().unwrap();
        assert!(
            o.allow.allows(ip("10.1.2.3")) && o.allow.allows(ip("127.0.0.1")),
            "both allow lines"
        );
        assert_eq!(
            cli.service.shutdown_timeout,
            std::time::Duration::from_secs(9)
        );
        let cli = with_file("b", text, &["listen", "--allow", "192.168.0.0/16"]).unwrap();
        let Command::Listen(o) = cli.command else {
            panic!("listen")
        };
        assert!(o.allow.allows(ip("192.168.1.1")));
        assert!(
            !o.allow.allows(ip("10.1.2.3")) && !o.allow.allows(ip("127.0.0.1")),
            "the command line's --allow replaces the file's lines"
        );
    }

    #[test]
    fn verbose_takes_true_or_false_and_the_command_line_wins() {
        use super::super::Verbosity;
        for (text, args, want) in [
            ("verbose = false\n", &[][..], Verbosity::Normal),
            ("verbose = true\n", &[], Verbosity::Debug),
            ("verbose\n", &["--verbose=false"], Verbosity::Normal),
            ("verbose = false\n", &["-v"], Verbosity::Debug),
            ("verbose = false\n", &["--verbose"], Verbosity::Debug),
        ] {
            let mut all = vec!["listen"];
            all.extend_from_slice(args);
            let cli = with_file("v", text, &all).unwrap();
            assert_eq!(cli.verbosity, want, "{text:?} {args:?}");
        }
    }

    #[test]
    fn repeated_upstream_lines_are_the_failover_list() {
        let text = "listen = 127.0.0.1:0\nupstream = 127.0.0.1:7001\nupstream = 127.0.0.1:7002\n";
        let cli = with_file("up", text, &["relay"]).unwrap();
        let Command::Relay(o) = cli.command else {
            panic!("relay")
        };
        assert_eq!(o.relay.upstream.port(), 7001, "the first line: the primary");
        let backups: Vec<u16> = o.relay.backup_upstreams.iter().map(|a| a.port()).collect();
        assert_eq!(backups, [7002]);
        let cli = with_file("up2", text, &["relay", "--upstream", "127.0.0.1:7003"]).unwrap();
        let Command::Relay(o) = cli.command else {
            panic!("relay")
        };
        assert_eq!(o.relay.upstream.port(), 7003);
        assert!(
            o.relay.backup_upstreams.is_empty(),
            "the command line replaces the list"
        );
    }

    #[test]
    fn one_config_file_per_command() {
        let e = parse(
            ["listen", "--config", "a", "--config=b"]
                .iter()
                .map(|s| s.to_string()),
        )
        .unwrap_err();
        assert_eq!(e.0, "--config: given twice (one file per command)");
        let e = with_file("c", "", &["listen", "--config"]).unwrap_err();
        assert_eq!(e.0, "--config: missing value");
    }
}

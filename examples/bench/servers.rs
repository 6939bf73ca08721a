//! The servers, each a child process (this example started again with
//! `--serve KIND`), and starting and stopping them.

#[allow(unused_imports)]
use crate::*;

mod floor;
mod lib_server;
mod peers;
mod threads;

pub(crate) use floor::*;
pub(crate) use lib_server::*;
pub(crate) use threads::*;

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Kind {
    Mooring,
    Floor8k,
    Floor64k,
    Tokio,
    Threads,
    /// The CLI, `mooring listen --quiet`, from the `--cli` binary (not a
    /// `--serve` child): echo, or `--reply hl7-ack` on the `hl7` workloads.
    Cli,
}

/// Every server kind; [`KINDS`] are the default of the echo workloads.
pub(crate) const ALL_KINDS: [Kind; 6] = [
    Kind::Mooring,
    Kind::Floor8k,
    Kind::Floor64k,
    Kind::Tokio,
    Kind::Threads,
    Kind::Cli,
];

/// The default servers of the `hl7` workloads (those that answer with ACKs).
pub(crate) const HL7_KINDS: [Kind; 3] = [Kind::Mooring, Kind::Cli, Kind::Tokio];

pub(crate) const KINDS: [Kind; 5] = [
    Kind::Mooring,
    Kind::Floor8k,
    Kind::Floor64k,
    Kind::Tokio,
    Kind::Threads,
];

impl Kind {
    pub(crate) fn name(self) -> &'static str {
        match self {
            Kind::Mooring => "mooring",
            Kind::Floor8k => "floor8k",
            Kind::Floor64k => "floor64k",
            Kind::Tokio => "tokio",
            Kind::Threads => "threads",
            Kind::Cli => "cli",
        }
    }

    pub(crate) fn parse(s: &str) -> Option<Kind> {
        ALL_KINDS.into_iter().find(|k| k.name() == s)
    }

    pub(crate) fn is_floor(self) -> bool {
        matches!(self, Kind::Floor8k | Kind::Floor64k)
    }
}

/// What a server does with the messages it gets.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Serve {
    pub(crate) kind: Kind,
    pub(crate) wire: Wire,
    /// 1: echo every message. N: reply `ACK` after every N messages.
    pub(crate) ack_every: u64,
    /// Wire size of one request frame (the floor counts bytes instead of parsing).
    pub(crate) unit: usize,
    /// Close each connection once its first reply is written (close-per-message).
    pub(crate) close_after_reply: bool,
    /// Connections served at once.
    pub(crate) max_links: usize,
    /// Answer each (HL7) message with an HL7 ACK instead of echoing it.
    pub(crate) hl7: bool,
    /// Serve TLS (certificates from [`crate::tls::DIR_ENV`]).
    pub(crate) tls: bool,
}

impl Serve {
    pub(crate) fn to_args(self) -> Vec<String> {
        vec![
            "--serve".into(),
            self.kind.name().into(),
            self.wire.name().into(),
            self.ack_every.to_string(),
            self.unit.to_string(),
            u8::from(self.close_after_reply).to_string(),
            self.max_links.to_string(),
            u8::from(self.hl7).to_string(),
            u8::from(self.tls).to_string(),
        ]
    }

    pub(crate) fn from_args(a: &[String]) -> Option<Serve> {
        Some(Serve {
            kind: Kind::parse(a.first()?)?,
            wire: Wire::parse(a.get(1)?)?,
            ack_every: a.get(2)?.parse().ok()?,
            unit: a.get(3)?.parse().ok()?,
            close_after_reply: a.get(4)? == "1",
            max_links: a.get(5)?.parse().ok()?,
            hl7: a.get(6)? == "1",
            tls: a.get(7)? == "1",
        })
    }
}

/// Messages the mooring server received (see `--server-wrap`).
pub(crate) static SERVED: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);

pub(crate) fn serve_main(args: &[String]) -> ExitCode {
    let Some(s) = Serve::from_args(args) else {
        eprintln!("bench: bad --serve arguments: {args:?}");
        return ExitCode::from(2);
    };
    // The parent holds our stdin: when it goes away, so do we.
    let kind = s.kind;
    std::thread::spawn(move || {
        let mut b = [0u8; 16];
        let mut stdin = io::stdin();
        loop {
            match stdin.read(&mut b) {
                Ok(0) | Err(_) => {
                    if kind == Kind::Mooring {
                        // For per-message figures from a profiler's totals.
                        let n = SERVED.load(std::sync::atomic::Ordering::Relaxed);
                        eprintln!("bench: mooring server served {n} messages");
                    }
                    std::process::exit(0)
                }
                Ok(_) => {}
            }
        }
    });
    let res = match s.kind {
        Kind::Mooring => serve_mooring(s),
        Kind::Floor8k => serve_floor(s, 8 * 1024),
        Kind::Floor64k => serve_floor(s, 64 * 1024),
        Kind::Tokio => peers::serve_tokio(s),
        Kind::Threads => serve_threads(s),
        Kind::Cli => Err(io::Error::other("the CLI is its own binary (see --cli)")),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: {} server: {e}", s.kind.name());
            ExitCode::from(1)
        }
    }
}

pub(crate) fn announce(addr: SocketAddr) {
    let mut out = io::stdout().lock();
    let _ = writeln!(out, "ready {addr}");
    let _ = out.flush();
}

pub(crate) fn loopback() -> SocketAddr {
    SocketAddr::from(([127, 0, 0, 1], 0))
}

pub(crate) struct Running {
    pub(crate) serve: Serve,
    pub(crate) child: Child,
    pub(crate) addr: SocketAddr,
    /// Runs under `--server-wrap`: let it exit by itself (a profiler writes
    /// its output then).
    pub(crate) wrapped: bool,
    /// Replies the client took from it, warm-up and drain included: what it
    /// served, for per-message figures from a profiler's totals.
    pub(crate) answered: std::cell::Cell<u64>,
}

impl Running {
    pub(crate) fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Running {
    fn drop(&mut self) {
        // Its stdin closing makes the server exit.
        drop(self.child.stdin.take());
        if self.serve.kind == Kind::Cli {
            eprintln!(
                "bench: cli server answered {} messages (counted by the client)",
                self.answered.get()
            );
            if self.wrapped {
                // The CLI does not watch its stdin; SIGTERM ends it, and lets a
                // profiler wrapped around it write its output.
                let _ = Command::new("kill")
                    .args(["-TERM", &self.pid().to_string()])
                    .status();
            }
        }
        if !self.wrapped {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

pub(crate) fn start(serve: Serve, pin: bool, wrap: Option<&str>) -> Result<Running, String> {
    let exe = match serve.kind {
        Kind::Cli => cli_path().to_path_buf(),
        _ => std::env::current_exe().map_err(|e| e.to_string())?,
    };
    if !exe.exists() {
        return Err(format!(
            "{} not found (build it first: cargo build --release)",
            exe.display()
        ));
    }
    let mut argv: Vec<String> = Vec::new();
    if pin {
        argv.extend(["taskset".into(), "-c".into(), "0".into()]);
    }
    argv.extend(wrap.unwrap_or("").split_whitespace().map(String::from));
    argv.push(exe.to_string_lossy().into_owned());
    let mut cmd = Command::new(&argv[0]);
    cmd.args(&argv[1..]);
    let args = match serve.kind {
        Kind::Cli => cli_args(serve),
        _ => serve.to_args(),
    };
    let mut child = cmd
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .map_err(|e| format!("start {} server: {e}", serve.kind.name()))?;
    let out = child.stdout.take().ok_or("no stdout")?;
    let mut line = String::new();
    let mut out = BufReader::new(out);
    let _ = out.read_line(&mut line);
    let addr = match serve.kind {
        Kind::Cli => {
            // `event=listening addr=...`; its later lines (connections, closes)
            // are drained so that a full pipe never stalls it.
            std::thread::spawn(move || io::copy(&mut out, &mut io::sink()));
            line.split_whitespace()
                .find_map(|kv| kv.strip_prefix("addr="))
                .and_then(|a| a.parse().ok())
        }
        _ => line
            .strip_prefix("ready ")
            .and_then(|a| a.trim().parse().ok()),
    };
    match addr {
        Some(addr) => Ok(Running {
            serve,
            child,
            addr,
            wrapped: wrap.is_some(),
            answered: std::cell::Cell::new(0),
        }),
        None => {
            let _ = child.kill();
            let _ = child.wait();
            Err(format!(
                "{} server did not start (said {line:?})",
                serve.kind.name()
            ))
        }
    }
}

/// The CLI binary run as the `cli` server (`--cli`).
static CLI_PATH: std::sync::OnceLock<std::path::PathBuf> = std::sync::OnceLock::new();

/// Sets the CLI binary (`--cli`); the default is `mooring` next to this
/// example's directory (`target/release/mooring` for `target/release/examples/bench`).
pub(crate) fn set_cli_path(path: Option<&str>) {
    let path = match path {
        Some(p) => std::path::PathBuf::from(p),
        None => std::env::current_exe()
            .ok()
            .and_then(|e| Some(e.parent()?.parent()?.join("mooring")))
            .unwrap_or_else(|| "target/release/mooring".into()),
    };
    let _ = CLI_PATH.set(path);
}

pub(crate) fn cli_path() -> &'static std::path::Path {
    CLI_PATH.get_or_init(|| "target/release/mooring".into())
}

/// `mooring listen` serving `s` on a port of its choice, printing no message lines.
fn cli_args(s: Serve) -> Vec<String> {
    let mut a: Vec<String> = [
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--framing",
        s.wire.name(),
        "--reply",
        if s.hl7 { "hl7-ack" } else { "echo" },
        "--quiet",
    ]
    .map(String::from)
    .to_vec();
    a.extend(["--max-conns".into(), s.max_links.to_string()]);
    if s.close_after_reply {
        a.push("--close-after-reply".into());
    }
    a
}

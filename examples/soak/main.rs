//! Soak: a mix of well-behaved and hostile peers against the real `mooring`
//! binary for a stated time, with the must-holds checked at the end.
//!
//! ```sh
//! cargo build --release --bin mooring --example soak
//! cargo run --release --example soak -- --duration 120s      # CI
//! cargo run --release --example soak -- --duration 1h        # by hand
//! ```
//!
//! It starts two `mooring listen` processes on 127.0.0.1 (port 0): one raw MLLP
//! (`--reply hl7-ack`), one serving reliable sessions (`--protocol mooring
//! --session`). Against them, each on its own thread with std sockets:
//! well-behaved clients (request/reply on one link, every ACK's MSA-2 checked,
//! latency recorded), reconnecting clients (1 to 3 requests per connection),
//! sessions from a library `Node` through a proxy that cuts their links at
//! random moments, garbage senders, slow peers (a frame trickled 1 byte/s) and
//! peers that pipeline requests and never read.
//!
//! Output: `key=value` lines, one per finding, then `event=soak ...` with
//! `result=pass|fail`. Exit status 1 when a must-hold fails: a well-behaved or
//! session message lost, a duplicate, a server's RSS not flat after warm-up
//! (its end over the RSS at the end of the warm-up, a quarter of the run up to
//! 60 s, by more than max(1 MiB, 10 %)), a server that died. `concerns=` names what is reported
//! without failing: a slow peer held over 60 s, a server that read pipelined
//! requests it could not answer, a stderr flood. Exit status 2: bad usage or
//! a server that did not start. Only the processes started here are stopped, by
//! their handles.

mod raw_peers;
mod report;
mod servers;
mod sessions;
mod stats;

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::thread::JoinHandle;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raw_peers::{ClientReport, GarbageReport, PipelineReport, SlowReport};
use servers::Server;
use sessions::{CutProxy, SessionReport};

/// Flags both servers get before `--server-args` (later flags win): room for
/// every soak peer at once, and an idle timeout for peers that say nothing.
const DEFAULT_SERVER_ARGS: &[&str] = &["--max-conns", "64", "--idle-timeout", "10s"];

/// Peers of each kind (16 links on the raw server at most, within
/// `--max-conns 64`; 2 sessions on the other).
const WELL_BEHAVED: usize = 4;
const RECONNECTING: usize = 2;
const SESSIONS: usize = 2;
const GARBAGE: usize = 2;
const SLOW: usize = 4;
const NEVER_READING: usize = 2;

/// Warm-up: a quarter of the run, at most a minute. Arenas sized at start
/// become resident as they are first touched (by design), and the random
/// traffic reaches its deepest queues at random times; the RSS lines show
/// the whole curve.
const WARM_UP_SHARE: u32 = 4;
const WARM_UP_MAX: Duration = Duration::from_secs(60);
/// "Flat": end RSS within the warm-up RSS plus the larger of these.
const RSS_SLACK_KB: u64 = 1024;
const RSS_SLACK_PERCENT: u64 = 10;

const USAGE: &str = "\
Usage: soak [--duration DUR] [--bin PATH] [--server-args \"FLAGS\"] [--seed N] [--pace DUR]

  --duration DUR     how long the traffic runs (default 120s; 500ms, 10s, 5m, 1h)
  --bin PATH         the mooring binary (default: release/mooring of this target dir)
  --server-args ..   extra `mooring listen` flags for both servers, after the
                     defaults (--max-conns 64 --idle-timeout 10s)
  --seed N           seed of the random choices (default: from the clock)
  --pace DUR         pause between a well-behaved client's requests, and between
                     a session's messages (default 5ms)
";

/// The run's end, shared by every traffic thread.
#[derive(Clone)]
pub struct Run {
    deadline: Instant,
    stop: Arc<AtomicBool>,
}

impl Run {
    /// True until the deadline, or until the run is stopped early.
    pub fn going(&self) -> bool {
        !self.stop.load(Ordering::Relaxed) && Instant::now() < self.deadline
    }

    /// Sleeps `d`, cut short by the deadline.
    pub fn pause(&self, d: Duration) {
        std::thread::sleep(d.min(self.deadline.saturating_duration_since(Instant::now())));
    }
}

/// The command line.
struct Opts {
    duration: Duration,
    bin: PathBuf,
    server_args: Vec<String>,
    seed: u64,
    pace: Duration,
}

/// `500ms`, `10s`, `5m`, `1h` (as the CLI takes them).
fn parse_duration(s: &str) -> Option<Duration> {
    let split = s.find(|c: char| !c.is_ascii_digit())?;
    let n: u64 = s[..split].parse().ok()?;
    let ms = match &s[split..] {
        "ms" => 1,
        "s" => 1_000,
        "m" => 60_000,
        "h" => 3_600_000,
        _ => return None,
    };
    n.checked_mul(ms).map(Duration::from_millis)
}

/// The release `mooring` next to this example's own target directory
/// (`<target>/release/examples/soak` -> `<target>/release/mooring`), which
/// follows `CARGO_TARGET_DIR`; else `target/release/mooring` of the package.
fn default_bin() -> PathBuf {
    let from_exe = std::env::current_exe()
        .ok()
        .and_then(|exe| Some(exe.parent()?.parent()?.parent()?.join("release/mooring")));
    let from_env =
        std::env::var_os("CARGO_TARGET_DIR").map(|t| PathBuf::from(t).join("release/mooring"));
    let package = PathBuf::from(concat!(
        env!("CARGO_MANIFEST_DIR"),
        "/target/release/mooring"
    ));
    [from_exe, from_env]
        .into_iter()
        .flatten()
        .find(|p| p.exists())
        .unwrap_or(package)
}

fn parse_args() -> Result<Opts, String> {
    let seed = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(1, |d| d.as_nanos() as u64);
    let mut o = Opts {
        duration: Duration::from_secs(120),
        bin: PathBuf::new(),
        server_args: Vec::new(),
        seed,
        pace: Duration::from_millis(5),
    };
    let mut bin = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let (flag, inline) = match a.split_once('=') {
            Some((f, v)) if f.starts_with("--") => (f.to_string(), Some(v.to_string())),
            _ => (a.clone(), None),
        };
        if flag == "-h" || flag == "--help" {
            print!("{USAGE}");
            std::process::exit(0);
        }
        let value = inline
            .or_else(|| args.next())
            .ok_or_else(|| format!("{flag}: needs a value\n{USAGE}"))?;
        let bad = || format!("{flag}: bad value \"{value}\"");
        match flag.as_str() {
            "--duration" => o.duration = parse_duration(&value).ok_or_else(bad)?,
            "--pace" => o.pace = parse_duration(&value).ok_or_else(bad)?,
            "--seed" => o.seed = value.parse().map_err(|_| bad())?,
            "--bin" => bin = Some(PathBuf::from(&value)),
            "--server-args" => o.server_args = value.split_whitespace().map(String::from).collect(),
            _ => return Err(format!("unknown flag {flag}\n{USAGE}")),
        }
    }
    if o.duration.is_zero() || o.pace.is_zero() {
        return Err("--duration and --pace must be more than 0".into());
    }
    o.bin = bin.unwrap_or_else(default_bin);
    Ok(o)
}

/// One server's resident memory over the run, in KiB.
#[derive(Default)]
pub struct Rss {
    /// Right after it started listening.
    start: u64,
    /// At the end of the warm-up.
    warm: Option<u64>,
    /// Largest sample after the warm-up.
    max: u64,
    /// Last sample of the run.
    end: u64,
}

impl Rss {
    /// How far above the warm-up the end may be and still be flat.
    fn slack(&self) -> u64 {
        RSS_SLACK_KB.max(self.warm.unwrap_or(0) * RSS_SLACK_PERCENT / 100)
    }

    /// End within the warm-up plus the slack.
    fn flat(&self) -> bool {
        self.warm.is_some_and(|w| self.end <= w + self.slack())
    }
}

fn main() -> ExitCode {
    match soak() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => ExitCode::from(1),
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}

/// Every traffic thread, by kind.
#[derive(Default)]
pub struct Threads {
    wb: Vec<JoinHandle<ClientReport>>,
    rc: Vec<JoinHandle<ClientReport>>,
    garbage: Vec<JoinHandle<GarbageReport>>,
    slow: Vec<JoinHandle<SlowReport>>,
    pipeline: Vec<JoinHandle<PipelineReport>>,
    sessions: Option<JoinHandle<SessionReport>>,
}

/// Joins `handles`, merging what they report into one.
pub fn join_all<T: Default>(handles: Vec<JoinHandle<T>>, merge: impl Fn(&mut T, &T)) -> T {
    let mut all = T::default();
    for h in handles {
        if let Ok(r) = h.join() {
            merge(&mut all, &r);
        }
    }
    all
}

fn soak() -> Result<bool, String> {
    let o = parse_args()?;
    if !o.bin.exists() {
        return Err(format!(
            "{} not found: build it first with `cargo build --release --bin mooring` \
             (or pass --bin PATH)",
            o.bin.display()
        ));
    }
    let mut common: Vec<String> = DEFAULT_SERVER_ARGS.iter().map(|s| s.to_string()).collect();
    common.extend(o.server_args.iter().cloned());
    let with = |first: &[&str]| -> Vec<String> {
        first
            .iter()
            .map(|s| s.to_string())
            .chain(common.iter().cloned())
            .collect()
    };
    let raw_args = with(&["--quiet", "--reply", "hl7-ack"]);
    let session_args = with(&[
        "--quiet",
        "--reply",
        "hl7-ack",
        "--protocol",
        "mooring",
        "--session",
    ]);
    println!(
        "event=start duration_s={} seed={} pace_ms={} bin={} server_args={}",
        o.duration.as_secs(),
        o.seed,
        o.pace.as_millis(),
        o.bin.display(),
        common.join(","),
    );
    let mut servers = [
        Server::start("raw", &o.bin, &raw_args)?,
        Server::start("session", &o.bin, &session_args)?,
    ];
    for s in &servers {
        println!(
            "event=server name={} pid={} addr={}",
            s.name,
            s.pid(),
            s.addr
        );
    }
    let mut rss: [Rss; 2] = Default::default();
    for (r, s) in rss.iter_mut().zip(&servers) {
        r.start = s.rss_kb().unwrap_or(0);
    }
    let prime = raw_peers::prime_large_blocks(servers[0].addr);
    println!(
        "event=prime server=raw large_blocks={}",
        prime.map_or_else(
            |e| format!("failed:{}", e.replace([' ', '='], "_")),
            |()| "ok".into()
        )
    );
    let started = Instant::now();
    let run = Run {
        deadline: started + o.duration,
        stop: Arc::new(AtomicBool::new(false)),
    };
    let proxy =
        CutProxy::start(servers[1].addr, o.seed, &run).map_err(|e| format!("proxy: {e}"))?;
    let threads = start_traffic(&o, servers[0].addr, &proxy, &run);

    // Watch: RSS samples, the warm-up mark, and that both servers live.
    let warm_at = started + (o.duration / WARM_UP_SHARE).min(WARM_UP_MAX);
    let every = (o.duration / 12).clamp(Duration::from_secs(10), Duration::from_secs(300));
    let mut next_sample = started + every;
    let mut died = Vec::new();
    while run.going() {
        run.pause(Duration::from_millis(100));
        let now = Instant::now();
        for (r, s) in rss.iter_mut().zip(&servers) {
            let kb = s.rss_kb().unwrap_or(0);
            if now >= warm_at {
                r.warm.get_or_insert(kb);
                r.max = r.max.max(kb);
            }
            r.end = kb;
        }
        if now >= next_sample {
            next_sample += every;
            println!(
                "event=rss t_s={} raw_kb={} session_kb={}",
                started.elapsed().as_secs(),
                rss[0].end,
                rss[1].end
            );
        }
        for s in &mut servers {
            if !s.alive() {
                died.push(s.name);
            }
        }
        if !died.is_empty() {
            run.stop.store(true, Ordering::Relaxed);
        }
    }
    let ran = started.elapsed();
    Ok(report::report(
        ran,
        &mut servers,
        &rss,
        threads,
        proxy,
        died,
    ))
}

/// Starts every traffic thread.
fn start_traffic(o: &Opts, raw: std::net::SocketAddr, proxy: &CutProxy, run: &Run) -> Threads {
    let mut t = Threads::default();
    let seed = |kind: u64, i: usize| o.seed ^ (kind << 32) ^ i as u64;
    for i in 0..WELL_BEHAVED {
        let (run, pace) = (run.clone(), o.pace);
        t.wb.push(std::thread::spawn(move || {
            raw_peers::well_behaved(i, raw, &run, pace)
        }));
    }
    for i in 0..RECONNECTING {
        let (run, s) = (run.clone(), seed(1, i));
        t.rc.push(std::thread::spawn(move || {
            raw_peers::reconnecting(i, raw, &run, s)
        }));
    }
    for i in 0..GARBAGE {
        let (run, s) = (run.clone(), seed(2, i));
        t.garbage
            .push(std::thread::spawn(move || raw_peers::garbage(raw, &run, s)));
    }
    for _ in 0..SLOW {
        let run = run.clone();
        t.slow
            .push(std::thread::spawn(move || raw_peers::slow(raw, &run)));
    }
    for i in 0..NEVER_READING {
        let run = run.clone();
        t.pipeline.push(std::thread::spawn(move || {
            raw_peers::never_reading(i, raw, &run)
        }));
    }
    let (run, pace, addr) = (run.clone(), o.pace, proxy.addr);
    t.sessions = Some(std::thread::spawn(move || {
        sessions::run_sessions(addr, SESSIONS, &run, pace)
    }));
    t
}

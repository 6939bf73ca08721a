//! Side-by-side benchmark: mooring against what users would pick instead,
//! driven by one load client, on loopback; echo workloads, and HL7 workloads
//! answered with ACKs.
//!
//! ```sh
//! cargo run --release --example bench --features bench-peers -- [options]
//!   --quick              short runs (a smoke test, well under a minute)
//!   --workload A,B       rr1, depth64, links64, stream, big16k, big128k, conn,
//!                        hl7-rr1, hl7-depth64, hl7-links64, tls-rr1,
//!                        tls-depth64, tls-links64; hl7 = the three hl7-*
//!                        (default: all)
//!   --framing F          mllp, len32 or both (default both)
//!   --servers A,B        mooring, floor8k, floor64k, tokio, threads, cli (default:
//!                        all but cli on echo workloads; mooring, cli, tokio on hl7-*)
//!   --cli PATH           the CLI binary of the `cli` server (default: mooring next
//!                        to this example's directory, i.e. target/release/mooring;
//!                        build it first with cargo build --release)
//!   --secs S             measured seconds per run (default 2)
//!   --reps N             runs per workload and server, interleaved (default 3)
//!   --size B             payload bytes of the small-message workloads (default 256)
//!   --conn-count N       connections per run of `conn` (default 1000)
//!   --idle N             instead: open N idle links to each server, report RSS per link
//!   --server-wrap CMD    run each server under CMD, e.g. "valgrind --tool=callgrind";
//!                        the mooring server prints how many messages it served on
//!                        exit, the bench how many the cli server answered
//! ```
//!
//! Servers, each in its own child process (this example started again with
//! `--serve KIND`), pinned to CPU 0 while the client runs on CPU 1 when there
//! are two CPUs and `taskset` is installed:
//!
//! - `mooring`: a [`mooring::Server`] echoing every message (default sizes:
//!   16 KiB working buffers, 1 MiB maximum frame).
//! - `floor8k`, `floor64k`: hand-written single-threaded mio echo that does not
//!   parse frames at all, reading 8 KiB or 64 KiB at a time: socket work alone.
//! - `tokio`: tokio current_thread runtime, one task per connection,
//!   `FramedRead`/`FramedWrite` with tokio-util's `LengthDelimitedCodec` or a
//!   small MLLP codec, `forward`ing replies (flushes when the reader would block).
//! - `threads`: std threads, one per connection, `BufReader`/`BufWriter`,
//!   flushing when the reader's buffer is empty.
//! - `cli`: the CLI, `mooring listen --quiet` with `--reply echo`, or
//!   `--reply hl7-ack` on the `hl7-*` workloads (not a `--serve` child: its
//!   own binary, stopped with SIGTERM under `--server-wrap`).
//!
//! On the `tls-*` workloads the links are TLS 1.3 (certificates made by rcgen
//! at start, P-256): `mooring` serves them through `ListenConfig::tls`,
//! `tokio` through tokio-rustls (same rustls, same ring provider); the load
//! client runs rustls's buffered `ClientConnection` over its mio sockets.
//! Compare with the plain `rr1`/`depth64`/`links64` rows of the same run.
//!
//! On the `hl7-*` workloads each message is a 256-byte (`--size`) HL7 ADT^A01
//! with its own MSH-10, and each reply must be an ACK whose MSA-2 names it
//! (`MSA|AA|<MSH-10>`). `mooring` answers with [`mooring::hl7::build_ack`]
//! through `Server`, `tokio` with a ten-line ACK builder over `Framed` and the
//! MLLP codec (or `LengthDelimitedCodec`), `cli` is `mooring listen --reply hl7-ack`.
//!
//! The client (this process) is a single-threaded mio closed loop: N links, D
//! messages in flight on each. Every reply is checked (length, sequence number
//! and content), counts are checked after a drain, and latency goes into a
//! preallocated log-linear histogram. Server CPU (user+sys, /proc/PID/stat)
//! and RSS (/proc/PID/status) are read around the measured window. Children
//! are stopped through their `Child` handles; a child also exits when its
//! stdin (a pipe from this process) closes.

use std::io::{self, BufRead, BufReader, BufWriter, Read, Write};
use std::net::{SocketAddr, TcpListener as StdListener, TcpStream as StdStream};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};

mod histogram;
mod load;
mod procfs;
mod report;
mod servers;
mod tls;
mod wire;

use histogram::*;
use load::*;
use procfs::*;
use report::*;
use servers::*;
use wire::*;

pub(crate) struct Opts {
    pub(crate) quick: bool,
    pub(crate) workloads: Option<Vec<String>>,
    pub(crate) wires: Vec<Wire>,
    /// `--servers`, `None` for the defaults of each workload.
    pub(crate) kinds: Option<Vec<Kind>>,
    /// `--cli`.
    pub(crate) cli: Option<String>,
    pub(crate) secs: f64,
    pub(crate) reps: usize,
    pub(crate) size: usize,
    pub(crate) conn_count: usize,
    pub(crate) idle: Option<usize>,
    pub(crate) server_wrap: Option<String>,
}

pub(crate) fn parse_opts(args: &[String]) -> Result<Opts, String> {
    let mut o = Opts {
        quick: false,
        workloads: None,
        wires: vec![Wire::Mllp, Wire::Len32],
        kinds: None,
        cli: None,
        secs: 2.0,
        reps: 3,
        size: 256,
        conn_count: 1000,
        idle: None,
        server_wrap: None,
    };
    let mut secs = None;
    let mut reps = None;
    let mut conn_count = None;
    let mut it = args.iter();
    while let Some(a) = it.next() {
        let mut val = || it.next().cloned().ok_or(format!("{a} needs a value"));
        let num = |v: String| -> Result<f64, String> {
            v.parse::<f64>()
                .map_err(|_| format!("{a}: not a number: {v}"))
        };
        match a.as_str() {
            "--quick" => o.quick = true,
            "--workload" => o.workloads = Some(val()?.split(',').map(String::from).collect()),
            "--framing" => {
                let v = val()?;
                o.wires = match v.as_str() {
                    "both" => vec![Wire::Mllp, Wire::Len32],
                    f => vec![Wire::parse(f).ok_or(format!("--framing {f}?"))?],
                }
            }
            "--servers" => {
                o.kinds = Some(
                    val()?
                        .split(',')
                        .map(|k| Kind::parse(k).ok_or(format!("--servers: unknown {k}")))
                        .collect::<Result<_, _>>()?,
                )
            }
            "--secs" => secs = Some(num(val()?)?),
            "--reps" => reps = Some(num(val()?)? as usize),
            "--size" => o.size = num(val()?)? as usize,
            "--conn-count" => conn_count = Some(num(val()?)? as usize),
            "--idle" => o.idle = Some(num(val()?)? as usize),
            "--server-wrap" => o.server_wrap = Some(val()?),
            "--cli" => o.cli = Some(val()?),
            "-h" | "--help" => return Err(String::new()),
            _ => return Err(format!("unknown option {a}")),
        }
    }
    if o.quick {
        o.secs = 0.25;
        o.reps = 1;
        o.conn_count = 100;
    }
    o.secs = secs.unwrap_or(o.secs).max(0.05);
    o.reps = reps.unwrap_or(o.reps).max(1);
    o.conn_count = conn_count.unwrap_or(o.conn_count).clamp(10, 10_000);
    if o.size < SEQ_DIGITS + 1 {
        return Err(format!("--size must be at least {}", SEQ_DIGITS + 1));
    }
    Ok(o)
}

pub(crate) fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    if args.first().map(String::as_str) == Some("--serve") {
        return serve_main(&args[1..]);
    }
    let o = match parse_opts(&args) {
        Ok(o) => o,
        Err(e) => {
            if !e.is_empty() {
                eprintln!("bench: {e}");
            }
            eprintln!("usage: cargo run --release --example bench --features bench-peers -- [--quick] [--workload rr1,depth64,links64,stream,big16k,big128k,conn,hl7-rr1,hl7-depth64,hl7-links64,hl7,tls-rr1,tls-depth64,tls-links64] [--framing mllp|len32|both] [--servers mooring,floor8k,floor64k,tokio,threads,cli] [--cli PATH] [--secs S] [--reps N] [--size B] [--conn-count N] [--idle N] [--server-wrap CMD]");
            return ExitCode::from(2);
        }
    };
    set_cli_path(o.cli.as_deref());
    let machine = machine();
    let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
    let pin = cpus >= 2 && have_taskset();
    if pin {
        // The client on CPU 1, every server on CPU 0.
        let _ = Command::new("taskset")
            .args(["-cp", "1", &std::process::id().to_string()])
            .stdout(Stdio::null())
            .status();
    }
    println!("# mooring bench");
    println!();
    println!(
        "command: cargo run --release --example bench --features bench-peers -- {}",
        args.join(" ")
    );
    println!("machine: {machine}");
    println!(
        "pinning: {}",
        if pin {
            "servers on CPU 0, client on CPU 1 (taskset)"
        } else {
            "none (needs 2 CPUs and taskset)"
        }
    );
    let res = match o.idle {
        Some(n) => run_idle(&o, n, pin),
        None => run_all(&o, pin),
    };
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench: FAILED: {e}");
            ExitCode::FAILURE
        }
    }
}

pub(crate) fn run_all(o: &Opts, pin: bool) -> Result<(), String> {
    let all = workloads(o.size);
    let chosen: Vec<Workload> = match &o.workloads {
        None => all,
        Some(names) => {
            for n in names {
                if !all.iter().any(|w| w.name == n) && n != "hl7" {
                    return Err(format!("unknown workload {n}"));
                }
            }
            all.into_iter()
                .filter(|w| names.iter().any(|n| n == w.name || (n == "hl7" && w.hl7)))
                .collect()
        }
    };
    println!(
        "runs: {} reps of {} s each (after {} ms warm-up), servers interleaved; conn: {} connections per run",
        o.reps,
        o.secs,
        warmup(o).as_millis(),
        o.conn_count
    );
    println!("medians over the reps, spread as min-max; x floor: against the better of floor8k/floor64k; CPU = server user+sys");
    let mut hist = Histogram::new();
    let mut report = String::new();
    let mut failures = 0;
    if chosen.iter().any(|w| w.hl7) && o.size < HL7_MIN {
        return Err(format!(
            "--size must be at least {HL7_MIN} for the hl7 workloads"
        ));
    }
    if chosen.iter().any(|w| w.tls) {
        tls::make_certs()?;
    }
    for w in &chosen {
        let kinds: Vec<Kind> = match (&o.kinds, w.hl7) {
            (Some(k), _) => k.iter().copied().filter(|&k| w.served_by(k)).collect(),
            (None, _) if w.tls => vec![Kind::Mooring, Kind::Tokio],
            (None, false) => KINDS.to_vec(),
            (None, true) => HL7_KINDS
                .into_iter()
                .filter(|&k| {
                    // By default the CLI runs only when it was built.
                    let built = k != Kind::Cli || cli_path().exists();
                    if !built {
                        eprintln!(
                            "bench: {}: no cli server, {} not found (cargo build --release)",
                            w.name,
                            cli_path().display()
                        );
                    }
                    built
                })
                .collect(),
        };
        for &wire in &o.wires {
            let servers: Vec<Running> = kinds
                .iter()
                .map(|&kind| {
                    start(
                        Serve {
                            kind,
                            wire,
                            ack_every: w.ack_every,
                            unit: w.size + wire.overhead(),
                            close_after_reply: w.per_message,
                            max_links: 256,
                            hl7: w.hl7,
                            tls: w.tls,
                        },
                        pin,
                        o.server_wrap.as_deref(),
                    )
                })
                .collect::<Result<_, _>>()?;
            let mut samples: Vec<Vec<Sample>> = vec![Vec::new(); servers.len()];
            for rep in 0..o.reps {
                for k in 0..servers.len() {
                    // Rotate the order each rep so no server always runs first.
                    let i = (k + rep) % servers.len();
                    let srv = &servers[i];
                    let res = if w.per_message {
                        run_per_message(srv, *w, o.conn_count, &mut hist)
                    } else {
                        run_load(
                            srv,
                            *w,
                            warmup(o),
                            Duration::from_secs_f64(o.secs),
                            &mut hist,
                        )
                    };
                    match res {
                        Ok(s) => {
                            eprintln!(
                                "  {:8} {:5} {:9} rep {}: {:>8} msgs/s  p50 {:>6} us  p99 {:>6} us  cpu {} s/M  sys {:.0}%",
                                w.name,
                                wire.name(),
                                srv.serve.kind.name(),
                                rep + 1,
                                fmt_rate(s.rate()),
                                fmt_us(s.p50),
                                fmt_us(s.p99),
                                fmt_cpu(s.cpu_per_m()),
                                s.sys * 100.0
                            );
                            samples[i].push(s);
                        }
                        Err(e) => {
                            failures += 1;
                            eprintln!(
                                "  {} {} {} rep {}: FAILED: {e}",
                                w.name,
                                wire.name(),
                                srv.serve.kind.name(),
                                rep + 1
                            );
                        }
                    }
                }
            }
            let rows: Vec<Row> = servers
                .iter()
                .zip(&samples)
                .filter(|(_, s)| !s.is_empty())
                .map(|(srv, s)| summarize(srv.serve.kind, s))
                .collect();
            let t = table(w, wire, &rows);
            print!("{t}");
            let _ = io::stdout().flush();
            report.push_str(&t);
            drop(servers);
        }
    }
    if chosen.iter().any(|w| w.per_message) {
        println!("\nconn: the server closes first, so TIME_WAIT (60 s) lands on its side; one client address to one server port has 28,232 ephemeral ports (32768-60999), so a sustained rate above ~470 connections/s (~16,000 per 2 minutes per seed 000, with other traffic) runs out of 4-tuples on a real network. Compare with rr1 (keep-open).");
    }
    if failures > 0 {
        return Err(format!("{failures} runs failed (see above)"));
    }
    Ok(())
}

pub(crate) fn warmup(o: &Opts) -> Duration {
    Duration::from_secs_f64((o.secs / 5.0).clamp(0.05, 0.5))
}

/// `n` idle links to each server: what they cost in RSS.
pub(crate) fn run_idle(o: &Opts, n: usize, pin: bool) -> Result<(), String> {
    let wire = o.wires[0];
    println!("idle: {n} links to each server, one {}-byte {} message echoed on each, then 1 s idle; RSS from /proc/PID/status", o.size, wire.name());
    let mut rows = Vec::new();
    let mut payload = vec![0u8; o.size];
    let mut frame = vec![0u8; o.size + wire.overhead()];
    let mut reply = vec![0u8; o.size + wire.overhead()];
    for &kind in o.kinds.as_deref().unwrap_or(&KINDS) {
        let srv = start(
            Serve {
                kind,
                wire,
                ack_every: 1,
                unit: o.size + wire.overhead(),
                close_after_reply: false,
                max_links: n,
                hl7: false,
                tls: false,
            },
            pin,
            o.server_wrap.as_deref(),
        )?;
        std::thread::sleep(Duration::from_millis(200));
        let before = status_field(srv.pid(), "VmRSS:");
        let deadline = Instant::now() + Duration::from_secs(120);
        let mut links = Vec::with_capacity(n);
        let mut err = None;
        for i in 0..n {
            if Instant::now() > deadline {
                err = Some(format!("only {i} links in 120 s"));
                break;
            }
            match StdStream::connect_timeout(&srv.addr, Duration::from_secs(5)) {
                Ok(s) => links.push(s),
                Err(e) => {
                    err = Some(format!("connect {i}: {e}"));
                    break;
                }
            }
        }
        for (i, s) in links.iter_mut().enumerate() {
            fill_payload(i as u64, &mut payload);
            let len = wire.encode(&payload, &mut frame);
            if let Err(e) = s.write_all(&frame[..len]) {
                err = Some(format!("write {i}: {e}"));
                break;
            }
        }
        let mut ok = 0;
        for (i, s) in links.iter_mut().enumerate() {
            let _ = s.set_read_timeout(Some(Duration::from_secs(5)));
            let res = s
                .read_exact(&mut reply)
                .map_err(|e| format!("read {i}: {e}"))
                .and_then(|()| {
                    wire.expect(&reply, o.size)?
                        .ok_or("short".into())
                        .map(|p| p.to_vec())
                })
                .and_then(|p| check_payload(i as u64, &p, o.size));
            match res {
                Ok(()) => ok += 1,
                Err(e) => {
                    err.get_or_insert(e);
                    break;
                }
            }
        }
        std::thread::sleep(Duration::from_secs(1));
        let after = status_field(srv.pid(), "VmRSS:");
        let threads = status_field(srv.pid(), "Threads:");
        if let Some(e) = &err {
            eprintln!("  {}: {e}", kind.name());
        }
        rows.push((kind, ok, before, after, threads, err.is_some()));
        drop(links);
        drop(srv);
    }
    // Every server is this same executable: the smallest RSS before links is the bare process.
    let bare = rows.iter().map(|r| r.2).min().unwrap_or(0);
    println!();
    println!("| server | links | RSS before KiB | RSS after KiB | per link: after - before | per link: after - bare process | threads |");
    println!("|---|---|---|---|---|---|---|");
    for (kind, ok, before, after, threads, failed) in rows {
        let per = |base: u64| after.saturating_sub(base) as f64 * 1024.0 / ok.max(1) as f64;
        println!(
            "| {}{} | {ok} | {before} | {after} | {:.0} B | {:.0} B | {threads} |",
            kind.name(),
            if failed { " (FAILED)" } else { "" },
            per(before),
            per(bare)
        );
    }
    println!("\nbefore = listening, nothing connected (mooring's slot table for {n} links is built then); bare process = the smallest 'before' ({bare} KiB), so the last per-link column charges each server for what it set up in advance. threads includes one stdin watchdog thread per server process.");
    Ok(())
}

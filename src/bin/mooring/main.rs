//! The `mooring` command: `listen`, `send`, `relay` and `demo` over the library's
//! [`mooring::Node`] and [`mooring::Client`].
//!
//! Every subcommand prints one line per event on stdout as space-separated
//! `key=value` pairs (a stable interface: operators' scripts parse it) and logs
//! to stderr. Exit status: 0 success, 1 run-time failure, 2 bad command line or
//! configuration, 3 (`send`) every message was answered but some answer
//! rejected its message (MSA-1 AR, AE, CR or CE).

/// Flag parsing, durations, usage texts.
mod args;
/// `mooring demo`: the seeds' scenarios, checked.
mod demo;
/// `mooring send`'s input: messages from a file, HL7 batch files included.
mod input;
/// The `key=value` event line format.
mod line;
/// `mooring listen` and the responder the demo shares.
mod listen;
/// The stderr logger behind `-v`/`-q`.
mod logger;
/// `--metrics ADDR`: the scrape server on the command's node.
mod metrics;
/// systemd's notify protocol.
mod notify;
/// `mooring relay`: flags in, the library relay's events out as lines.
mod relay;
/// `mooring send`.
mod send;
/// SIGTERM/SIGINT, the shutdown deadline, systemd notify.
mod service;

use std::process::ExitCode;

use args::Command;

/// Parses the command line, installs the logger and runs the subcommand.
fn main() -> ExitCode {
    let mut argv = Vec::new();
    for a in std::env::args_os().skip(1) {
        match a.into_string() {
            Ok(s) => argv.push(s),
            Err(a) => {
                eprintln!(
                    "error: argument \"{}\" is not valid UTF-8",
                    a.to_string_lossy()
                );
                return ExitCode::from(2);
            }
        }
    }
    let cli = match args::parse(argv) {
        Ok(c) => c,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
    };
    logger::init(cli.verbosity);
    if cli.service.check_config && !matches!(cli.command, Command::Help(_)) {
        println!("config=ok");
        return ExitCode::SUCCESS;
    }
    match cli.command {
        Command::Help(text) => {
            print!("{text}");
            ExitCode::SUCCESS
        }
        Command::Listen(o) => listen::run(&o, &cli.service),
        Command::Send(o) => send::run(&o, &cli.service),
        Command::Relay(o) => relay::run(&o, &cli.service),
        Command::Demo => demo::run(),
    }
}

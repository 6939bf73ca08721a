//! The parser's unit tests: every flag, default and error line.

use std::time::Duration;

use mooring::relay::AckAfter;
use mooring::session::SessionConfig;
use mooring::{FrameTimeout, Framing, Heartbeat, LivenessConfig, Protocol, TcpKeepalive};

use super::common::parse_duration;
use super::liveness::read_keepalive;
use super::usage::RELAY_USAGE;
use super::*;

pub(super) fn run(args: &[&str]) -> Result<Cli, UsageError> {
    parse(args.iter().map(|s| s.to_string()))
}

/// The options of a command line that must parse as `mooring listen`.
pub(super) fn listen_opts(args: &[&str]) -> Box<ListenOpts> {
    match run(args).unwrap().command {
        Command::Listen(o) => o,
        c => panic!("not listen: {c:?}"),
    }
}

/// The options of a command line that must parse as `mooring send`.
pub(super) fn send_opts(args: &[&str]) -> Box<SendOpts> {
    match run(args).unwrap().command {
        Command::Send(o) => o,
        c => panic!("not send: {c:?}"),
    }
}

/// The options of a command line that must parse as `mooring relay`.
pub(super) fn relay_opts(args: &[&str]) -> Box<RelayOpts> {
    match run(args).unwrap().command {
        Command::Relay(o) => o,
        c => panic!("not relay: {c:?}"),
    }
}

/// `relay --listen 127.0.0.1:0 --upstream 127.0.0.1:1` and `extra`.
pub(super) fn relay_args<'a>(extra: &[&'a str]) -> Vec<&'a str> {
    let base = [
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--upstream",
        "127.0.0.1:1",
    ];
    base.iter().chain(extra).copied().collect()
}

/// Each command line fails with an error starting with its needle.
fn assert_errors(cases: &[(&[&str], &str)]) {
    for (args, needle) in cases {
        let e = run(args).unwrap_err();
        assert!(e.0.starts_with(needle), "{args:?}: {}", e.0);
    }
}

#[test]
fn durations_need_a_unit() {
    assert_eq!(parse_duration("500ms"), Some(Duration::from_millis(500)));
    assert_eq!(parse_duration("10s"), Some(Duration::from_secs(10)));
    assert_eq!(parse_duration("5m"), Some(Duration::from_secs(300)));
    assert_eq!(parse_duration("1h"), Some(Duration::from_secs(3600)));
    for bad in [
        "",
        "5",
        "5x",
        "ms",
        "-1s",
        "1.5s",
        "99999999999999999999s",
        "1 s",
    ] {
        assert_eq!(parse_duration(bad), None, "{bad}");
    }
}

#[test]
fn a_bad_duration_names_its_flag() {
    let e = run(&["listen", "--idle-timeout", "5x"]).unwrap_err();
    assert_eq!(
        e.0,
        "--idle-timeout: bad duration \"5x\" (use 500ms, 10s, 5m)"
    );
}

#[test]
fn listen_flags_fill_their_options() {
    let cli = run(&[
        "-v",
        "listen",
        "--bind=127.0.0.1:0",
        "--framing",
        "len32",
        "--max-conns",
        "1",
        "--max-conns-per-ip",
        "3",
        "--stale-recovery",
        "300ms",
        "--allow",
        "10.0.0.0/8",
        "--allow",
        "127.0.0.1",
        "--reply",
        "echo",
        "--quiet",
    ])
    .unwrap();
    assert_eq!(cli.verbosity, Verbosity::Debug);
    let Command::Listen(o) = cli.command else {
        panic!("not listen")
    };
    assert_eq!(o.bind.port(), 0);
    assert_eq!(o.framing, Framing::Len32);
    assert_eq!(o.max_conns, 1);
    assert_eq!(o.max_conns_per_ip, Some(3));
    assert_eq!(o.stale_recovery, Some(Duration::from_millis(300)));
    assert!(o.allow.allows("127.0.0.1".parse().unwrap()));
    assert!(!o.allow.allows("192.0.2.1".parse().unwrap()));
    assert_eq!(o.reply, ReplyMode::Echo);
    assert!(o.quiet);
}

#[test]
fn max_conns_per_ip_is_off_by_default_and_with_0_or_off() {
    for (args, want) in [
        (&["listen"][..], None),
        (&["listen", "--max-conns-per-ip", "0"][..], None),
        (&["listen", "--max-conns-per-ip=off"][..], None),
        (&["listen", "--max-conns-per-ip", "2"][..], Some(2)),
    ] {
        let o = listen_opts(args);
        assert_eq!(o.max_conns_per_ip, want, "{args:?}");
    }
}

#[test]
fn write_timeout_is_10s_unless_given_on_listen_and_send() {
    let listen = |args: &[&str]| match run(args).unwrap().command {
        Command::Listen(o) => o.write_timeout,
        _ => panic!("not listen"),
    };
    let send = |args: &[&str]| match run(args).unwrap().command {
        Command::Send(o) => o.write_timeout,
        _ => panic!("not send"),
    };
    assert_eq!(listen(&["listen"]), Duration::from_secs(10));
    assert_eq!(
        listen(&["listen", "--write-timeout", "750ms"]),
        Duration::from_millis(750)
    );
    assert_eq!(send(&["send", "127.0.0.1:2575"]), Duration::from_secs(10));
    assert_eq!(
        send(&["send", "127.0.0.1:2575", "--write-timeout=2s"]),
        Duration::from_secs(2)
    );
    let e = run(&["listen", "--write-timeout", "5"]).unwrap_err();
    assert!(e.0.starts_with("--write-timeout: bad duration"), "{}", e.0);
}

#[test]
fn send_takes_addr_then_file() {
    let cli = run(&["send", "127.0.0.1:2575", "a.hl7", "--retries", "2", "-vv"]).unwrap();
    assert_eq!(cli.verbosity, Verbosity::Trace);
    let Command::Send(o) = cli.command else {
        panic!("not send")
    };
    assert_eq!(o.input, Input::File("a.hl7".into()));
    assert_eq!(o.retries, 2);
    assert!(o.correlate);
    let o = send_opts(&["send", "127.0.0.1:2575", "-", "--no-correlate"]);
    assert_eq!(o.input, Input::Stdin);
    assert!(!o.correlate);
}

#[test]
fn liveness_flags_build_the_config() {
    let o = send_opts(&[
        "send",
        "127.0.0.1:2575",
        "--protocol",
        "mooring",
        "--heartbeat=2s",
        "--tcp-keepalive",
        "45s,10s,3",
        "--tcp-user-timeout",
        "90s",
        "--handshake-timeout",
        "500ms",
        "--hold",
        "30s",
    ]);
    let l = o.liveness;
    assert_eq!(l.protocol, Protocol::Mooring);
    assert_eq!(
        l.heartbeat,
        Some(Heartbeat {
            interval: Duration::from_secs(2),
            timeout: Duration::from_secs(6),
        }),
        "timeout defaults to 3 x interval"
    );
    assert_eq!(l.tcp_keepalive, Some(TcpKeepalive::default()));
    assert_eq!(l.tcp_user_timeout, Some(Duration::from_secs(90)));
    assert_eq!(l.handshake_timeout, Duration::from_millis(500));
    assert_eq!(o.hold, Some(Duration::from_secs(30)));
    let o = listen_opts(&["listen"]);
    assert_eq!(o.liveness, LivenessConfig::default());
}

#[test]
fn frame_timeout_flags_build_the_config_on_listen_and_send() {
    let frame = |args: &[&str]| match run(args).map(|c| c.command) {
        Ok(Command::Listen(o)) => Ok(o.liveness.frame_timeout),
        Ok(Command::Send(o)) => Ok(o.liveness.frame_timeout),
        Ok(_) => panic!("not listen or send"),
        Err(e) => Err(e.0),
    };
    assert_eq!(frame(&["listen"]), Ok(Some(FrameTimeout::default())));
    assert_eq!(
        frame(&[
            "listen",
            "--frame-timeout",
            "300ms",
            "--frame-min-rate",
            "0"
        ]),
        Ok(Some(FrameTimeout {
            timeout: Duration::from_millis(300),
            min_rate: 0,
            ..FrameTimeout::default()
        }))
    );
    assert_eq!(
        frame(&["send", "127.0.0.1:1", "--frame-min-rate=8000"]),
        Ok(Some(FrameTimeout {
            min_rate: 8000,
            ..FrameTimeout::default()
        }))
    );
    assert_eq!(
        frame(&["send", "127.0.0.1:1", "--frame-timeout", "off"]),
        Ok(None)
    );
    assert_eq!(frame(&["listen", "--frame-timeout", "0"]), Ok(None));
    for (args, want) in [
        (
            &["listen", "--frame-timeout", "30"][..],
            "--frame-timeout: bad duration",
        ),
        (
            &["listen", "--frame-min-rate", "fast"],
            "--frame-min-rate: bad number",
        ),
        (
            &["listen", "--frame-timeout", "off", "--frame-min-rate", "9"],
            "--frame-min-rate: needs --frame-timeout",
        ),
    ] {
        let e = frame(args).unwrap_err();
        assert!(e.starts_with(want), "{args:?}: {e}");
    }
}

#[test]
fn keepalive_file_yields_its_first_hl7_message_or_its_bytes() {
    let dir = std::env::temp_dir();
    let hl7 = dir.join(format!("mooring-args-{}-ka.hl7", std::process::id()));
    let raw = dir.join(format!("mooring-args-{}-ka.bin", std::process::id()));
    std::fs::write(&hl7, b"junk\nMSH|^~\\&|A|B\nPID|1\nMSH|^~\\&|SECOND\n").unwrap();
    std::fs::write(&raw, b"PING\n").unwrap();
    let got = (read_keepalive(&hl7), read_keepalive(&raw));
    let _ = std::fs::remove_file(&hl7);
    let _ = std::fs::remove_file(&raw);
    assert_eq!(got.0.unwrap(), b"MSH|^~\\&|A|B\rPID|1\r");
    assert_eq!(got.1.unwrap(), b"PING\n");
}

#[test]
fn mistakes_name_what_is_wrong() {
    let cases: &[(&[&str], &str)] = &[
        (&["listen", "--bogus"], "--bogus"),
        (&["listen", "--bind"], "--bind: missing value"),
        (&["listen", "--max-conns", "x"], "--max-conns"),
        (
            &["listen", "--max-conns-per-ip", "-1"],
            "--max-conns-per-ip",
        ),
        (&["listen", "--reply", "ack"], "--reply"),
        (&["listen", "--allow", "10.0.0.0/40"], "--allow"),
        (&["listen", "--quiet=1"], "--quiet"),
        (&["send"], "ADDR"),
        (&["send", "nonsense"], "ADDR"),
        (&["frobnicate"], "frobnicate"),
        (&[], "missing subcommand"),
    ];
    for (args, needle) in cases {
        let e = run(args).unwrap_err();
        assert!(e.0.contains(needle), "{args:?}: {}", e.0);
    }
}

#[test]
fn session_flags_build_the_session_and_backoff() {
    let o = send_opts(&[
        "send",
        "127.0.0.1:2575",
        "--protocol",
        "mooring",
        "--session",
        "--resume-window",
        "10s",
        "--queue",
        "50",
        "--queue-bytes",
        "65536",
        "--reconnect-min",
        "100ms",
        "--reconnect-max=500ms",
        "--pace",
        "10ms",
    ]);
    let s = o.session.expect("session");
    assert_eq!(s.max_depth, 50);
    assert_eq!(s.max_depth_disconnected, 500);
    assert_eq!(s.max_bytes, 65536);
    assert_eq!(s.reconnect_timeout, Duration::from_secs(10));
    assert_eq!(o.backoff.min, Duration::from_millis(100));
    assert_eq!(o.backoff.max, Duration::from_millis(500));
    assert_eq!(o.pace, Some(Duration::from_millis(10)));
    let o = listen_opts(&["listen", "--protocol", "mooring", "--session"]);
    assert_eq!(o.session, Some(SessionConfig::default()));
    let cases: &[(&[&str], &str)] = &[
        (
            &["listen", "--session"],
            "--session: needs --protocol mooring",
        ),
        (&["listen", "--queue", "5"], "--queue: needs --session"),
        (
            &["listen", "--queue-bytes", "5"],
            "--queue-bytes: needs --session",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--queue",
                "0",
            ],
            "--queue",
        ),
        (
            &["listen", "--reconnect-min", "1s"],
            "unknown flag --reconnect-min",
        ),
        (
            &["send", "127.0.0.1:1", "--resume-window", "1s"],
            "--resume-window: needs --session",
        ),
        (
            &[
                "send",
                "127.0.0.1:1",
                "--protocol",
                "mooring",
                "--session",
                "--reconnect-min",
                "2s",
                "--reconnect-max",
                "1s",
            ],
            "--reconnect-min",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn max_sessions_per_ip_needs_sessions_and_a_positive_count() {
    let o = listen_opts(&[
        "listen",
        "--protocol",
        "mooring",
        "--session",
        "--max-sessions-per-ip",
        "3",
    ]);
    assert_eq!(o.max_sessions_per_ip, Some(3));
    let cases: &[(&[&str], &str)] = &[
        (
            &["listen", "--max-sessions-per-ip", "2"],
            "--max-sessions-per-ip: needs --session",
        ),
        (
            &[
                "listen",
                "--protocol",
                "mooring",
                "--session",
                "--max-sessions-per-ip=0",
            ],
            "--max-sessions-per-ip: must be at least 1",
        ),
    ];
    assert_errors(cases);
}

#[test]
fn help_wins_over_missing_arguments() {
    assert!(matches!(
        run(&["--help"]).unwrap().command,
        Command::Help(USAGE)
    ));
    assert!(matches!(
        run(&["send", "-h"]).unwrap().command,
        Command::Help(SEND_USAGE)
    ));
    assert!(matches!(
        run(&["listen", "--help"]).unwrap().command,
        Command::Help(LISTEN_USAGE)
    ));
}

#[test]
fn relay_flags_fill_the_options() {
    let Ok(Cli {
        command: Command::Relay(o),
        ..
    }) = run(&[
        "-v",
        "relay",
        "--listen",
        "127.0.0.1:0",
        "--upstream=127.0.0.1:2575",
        "--queue",
        "5",
        "--ack-after",
        "upstream",
        "--retries",
        "0",
        "--reconnect-min",
        "100ms",
        "--reconnect-max",
        "2s",
        "--protocol",
        "mooring",
        "--heartbeat=1s",
        "--frame-timeout",
        "2s",
        "--write-timeout",
        "3s",
    ])
    else {
        panic!("not parsed")
    };
    assert_eq!(
        o.relay.liveness.frame_timeout.map(|f| f.timeout),
        Some(Duration::from_secs(2))
    );
    assert_eq!(o.write_timeout, Duration::from_secs(3));
    assert_eq!(o.relay.queue, 5);
    assert_eq!(o.relay.ack_after, AckAfter::Upstream);
    assert_eq!(o.relay.retries, 0);
    assert_eq!(o.relay.backoff.min, Duration::from_millis(100));
    assert_eq!(o.relay.backoff.max, Duration::from_secs(2));
    assert_eq!(o.relay.liveness.protocol, Protocol::Mooring);
    assert!(o.relay.liveness.heartbeat.is_some());
    assert_eq!(o.relay.dedup_window, 10_000);
}

#[test]
fn relay_mistakes_name_the_flag() {
    let cases: &[(&[&str], &str)] = &[
        (&["relay", "--upstream", "127.0.0.1:1"], "missing --listen"),
        (&["relay", "--listen", "127.0.0.1:0"], "missing --upstream"),
        (&["relay", "--queue", "0"], "--queue: must be at least 1"),
        (&["relay", "--ack-after", "later"], "--ack-after"),
        (
            &[
                "relay",
                "--listen",
                "127.0.0.1:0",
                "--upstream",
                "127.0.0.1:1",
                "--heartbeat",
                "1s",
            ],
            "--heartbeat: needs --protocol mooring",
        ),
        (&["relay", "--bogus"], "unknown flag --bogus"),
    ];
    for (args, needle) in cases {
        match run(args) {
            Err(e) => assert!(e.0.contains(needle), "{args:?}: {}", e.0),
            Ok(_) => panic!("{args:?} parsed"),
        }
    }
    assert!(matches!(
        run(&["relay", "--help"]),
        Ok(Cli {
            command: Command::Help(RELAY_USAGE),
            ..
        })
    ));
}

#[test]
fn relay_ack_after_defaults_to_upstream_unless_a_spool_is_named() {
    let parse = |extra: &[&str]| {
        let args = relay_args(extra);
        relay_opts(&args)
    };
    // A crash cannot lose what the default acknowledges.
    let o = parse(&[]);
    assert_eq!(
        (o.relay.ack_after, o.relay.spool.is_none()),
        (AckAfter::Upstream, true)
    );
    // In memory, asked for explicitly.
    let o = parse(&["--spool", "memory"]);
    assert_eq!(
        (o.relay.ack_after, o.relay.spool.is_none()),
        (AckAfter::Queued, true)
    );
    assert_eq!(
        parse(&["--ack-after", "queued"]).relay.ack_after,
        AckAfter::Queued
    );
    // On disk: queued means on disk; the defaults, then each flag.
    let o = parse(&["--spool", "/tmp/q"]);
    assert_eq!(o.relay.ack_after, AckAfter::Queued);
    let s = o.relay.spool.expect("spool");
    assert_eq!(s.dir, std::path::PathBuf::from("/tmp/q"));
    assert_eq!((s.size, s.fsync), (256 << 20, mooring::spool::Fsync::Batch));
    let o = parse(&[
        "--spool=/q",
        "--spool-size",
        "64M",
        "--fsync",
        "interval=50ms",
    ]);
    let s = o.relay.spool.expect("spool");
    assert_eq!(s.size, 64 << 20);
    assert_eq!(
        s.fsync,
        mooring::spool::Fsync::Interval(Duration::from_millis(50))
    );
    let o = parse(&["--spool", "/q", "--fsync", "off", "--ack-after", "upstream"]);
    assert_eq!(o.relay.ack_after, AckAfter::Upstream);
    assert_eq!(
        o.relay.spool.map(|s| s.fsync),
        Some(mooring::spool::Fsync::Off)
    );
    for (extra, needle) in [
        (&["--fsync", "off"][..], "need --spool DIR"),
        (
            &["--spool", "memory", "--spool-size", "1M"][..],
            "need --spool DIR",
        ),
        (
            &["--spool", "/q", "--fsync", "sometimes"][..],
            "--fsync: bad value",
        ),
        (
            &["--spool", "/q", "--spool-size", "lots"][..],
            "--spool-size: bad size",
        ),
    ] {
        let args = relay_args(extra);
        match run(&args) {
            Err(e) => assert!(e.0.contains(needle), "{extra:?}: {}", e.0),
            Ok(_) => panic!("{extra:?} parsed"),
        }
    }
}

#[test]
fn metrics_takes_an_address_on_listen_and_relay_and_is_off_by_default() {
    let addr = |args: &[&str]| match run(args).unwrap().command {
        Command::Listen(o) => o.metrics,
        Command::Relay(o) => o.metrics,
        _ => panic!("listen or relay"),
    };
    assert_eq!(addr(&["listen"]), None);
    assert_eq!(
        addr(&["listen", "--metrics", "127.0.0.1:9464"]),
        Some("127.0.0.1:9464".parse().unwrap())
    );
    assert_eq!(addr(&relay_args(&[])), None);
    assert_eq!(
        addr(&relay_args(&["--metrics=127.0.0.1:0"])),
        Some("127.0.0.1:0".parse().unwrap())
    );
    let e = run(&["listen", "--metrics", "nowhere"]).unwrap_err();
    assert!(
        e.0.starts_with("--metrics: bad address \"nowhere\""),
        "{}",
        e.0
    );
}

#[test]
fn relay_takes_backup_upstreams_a_failover_count_and_a_raw_window() {
    let parse = |extra: &[&str]| run(&relay_args(extra));
    let relay = |r: Result<Cli, UsageError>| match r {
        Ok(Cli {
            command: Command::Relay(o),
            ..
        }) => o,
        Ok(_) => panic!("not a relay"),
        Err(e) => panic!("{}", e.0),
    };
    // One upstream: no backups, the documented defaults.
    let o = relay(parse(&[]));
    assert_eq!(o.relay.upstream, "127.0.0.1:1".parse().unwrap());
    assert!(o.relay.backup_upstreams.is_empty());
    assert_eq!((o.relay.failover_after, o.relay.upstream_window), (3, 1));
    let o = relay(parse(&[
        "--upstream",
        "127.0.0.1:2",
        "--upstream=127.0.0.1:3",
        "--failover-after",
        "5",
        "--upstream-window",
        "8",
    ]));
    assert_eq!(
        o.relay.upstream,
        "127.0.0.1:1".parse().unwrap(),
        "the first is the primary"
    );
    let backups: Vec<String> = o
        .relay
        .backup_upstreams
        .iter()
        .map(|a| a.to_string())
        .collect();
    assert_eq!(backups, ["127.0.0.1:2", "127.0.0.1:3"]);
    assert_eq!((o.relay.failover_after, o.relay.upstream_window), (5, 8));
    for (extra, needle) in [
        (
            &["--failover-after", "0"][..],
            "--failover-after: must be at least 1",
        ),
        (
            &["--upstream-window", "0"][..],
            "--upstream-window: must be at least 1",
        ),
        (
            &["--upstream-window", "4", "--protocol", "mooring"][..],
            "--upstream-window applies to --protocol raw",
        ),
    ] {
        match parse(extra) {
            Err(e) => assert!(e.0.contains(needle), "{extra:?}: {}", e.0),
            Ok(_) => panic!("{extra:?} parsed"),
        }
    }
}

//! The C API from C: `examples/c/server.c` is compiled with the host's `cc`
//! against the staticlib and `src/mooring.h`, run on loopback, and driven by a
//! Rust [`mooring::Client`] whose requests it must acknowledge;
//! `examples/c/relay.c` (a spooling relay) runs between a Rust device and an
//! upstream written here.
//!
//! Host builds only: on a cross target (the ARM run under qemu) the host's `cc`
//! cannot link the target's staticlib, so the file compiles to nothing there.
#![cfg(all(target_os = "linux", not(target_arch = "arm")))]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mooring::{hl7, Client, ClientConfig};

const ROOT: &str = env!("CARGO_MANIFEST_DIR");
/// Bound on every wait: loopback answers in microseconds, valgrind in milliseconds.
const WITHIN: Duration = Duration::from_secs(20);

/// `target/<profile>` of this test binary (`.../deps/c_api-<hash>`).
fn profile_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test executable path");
    let deps = exe.parent().expect("deps dir");
    deps.parent().expect("profile dir").to_path_buf()
}

/// The staticlib of this build. `cargo test` compiles the library with all its
/// crate types but need not copy the staticlib to `target/<profile>/`, where a
/// stale one may lie: `cargo build --lib` with the same target dir and profile
/// brings it up to date (a no-op when it is).
fn staticlib() -> PathBuf {
    let dir = profile_dir();
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
    let target_dir = dir.parent().expect("target dir");
    let mut cmd = Command::new(cargo);
    cmd.args(["build", "--quiet", "--lib", "--manifest-path"])
        .arg(Path::new(ROOT).join("Cargo.toml"))
        .env("CARGO_TARGET_DIR", target_dir);
    if dir.file_name().is_some_and(|n| n == "release") {
        cmd.arg("--release");
    }
    let status = cmd.status().expect("run cargo build --lib");
    assert!(status.success(), "cargo build --lib failed");
    let lib = dir.join("libmooring.a");
    assert!(lib.exists(), "no staticlib at {}", lib.display());
    lib
}

/// Compiles `examples/c/server.c` into `name` with warnings as errors.
fn build_c_server(name: &str) -> PathBuf {
    build_c_example("server.c", name)
}

/// Compiles `examples/c/<source>` into `name` with warnings as errors.
fn build_c_example(source: &str, name: &str) -> PathBuf {
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .args(["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-g", "-O1"])
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(Path::new(ROOT).join("src"))
        .arg(Path::new(ROOT).join("examples/c").join(source))
        .arg(staticlib())
        // What `rustc --print native-static-libs` lists for this staticlib.
        .args([
            "-lgcc_s",
            "-lutil",
            "-lrt",
            "-lpthread",
            "-lm",
            "-ldl",
            "-lc",
        ])
        .arg("-o")
        .arg(&out)
        .output()
        .unwrap_or_else(|e| panic!("cannot run {cc}: {e}"));
    assert!(
        output.status.success(),
        "{cc} failed:\n{}",
        String::from_utf8_lossy(&output.stderr)
    );
    out
}

fn hl7_msg(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|LAB|A|EHR|B|20261122093000||ADT^A01|{id}|P|2.5\rPID|1||123^^^H||DOE^JANE\r")
        .into_bytes()
}

/// What a run of the C server gave: the reply to each request, its stdout
/// lines, its stderr.
struct CRun {
    replies: Vec<Vec<u8>>,
    out: Vec<String>,
    errors: String,
}

/// `binary` as a command, behind `wrapper` (e.g. valgrind and its flags) if any.
fn wrapped(wrapper: &[&str], binary: &Path) -> Command {
    match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(binary);
            c
        }
        None => Command::new(binary),
    }
}

/// The child's stdout, line by line, from a thread of its own (which ends
/// with the stdout or when the receiver is dropped).
fn stdout_lines(child: &mut Child) -> (mpsc::Receiver<String>, std::thread::JoinHandle<()>) {
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
    (lines, reader)
}

/// Waits up to [`WITHIN`] for `child` to exit; else kills it and panics
/// with `why()`.
fn wait_exit(child: &mut Child, why: impl FnOnce() -> String) -> ExitStatus {
    let deadline = Instant::now() + WITHIN;
    loop {
        if let Some(s) = child.try_wait().expect("wait") {
            return s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{}", why());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Runs the C server (behind `wrapper`, e.g. valgrind) for `requests` from a
/// Rust client and waits for its clean exit.
fn run_c_server(binary: &Path, wrapper: &[&str], requests: &[Vec<u8>]) -> CRun {
    let client = ClientConfig {
        correlate_hl7: true,
        ..ClientConfig::default()
    };
    run_c_server_with(binary, wrapper, &[], client, requests)
}

/// [`run_c_server`] with the server's arguments after `ip:port N` (`extra`)
/// and the client's settings.
fn run_c_server_with(
    binary: &Path,
    wrapper: &[&str],
    extra: &[&str],
    client: ClientConfig,
    requests: &[Vec<u8>],
) -> CRun {
    let mut child = wrapped(wrapper, binary)
        .args(["127.0.0.1:0", &requests.len().to_string()])
        .args(extra)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C server");
    let (lines, reader) = stdout_lines(&mut child);
    let mut stderr = child.stderr.take().expect("stderr");
    let errors = std::thread::spawn(move || {
        let mut s = String::new();
        let _ = stderr.read_to_string(&mut s);
        s
    });

    let first = lines.recv_timeout(WITHIN).expect("a first line");
    let addr: SocketAddr = first
        .strip_prefix("event=listening addr=")
        .unwrap_or_else(|| panic!("first line is not event=listening: {first}"))
        .parse()
        .expect("an ip:port");
    assert_ne!(addr.port(), 0);

    let mut client = Client::new(addr, client).expect("client");
    let mut replies = Vec::new();
    for (i, m) in requests.iter().enumerate() {
        let reply = client
            .request_within(m, WITHIN)
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        replies.push(reply.to_vec());
    }

    let status = wait_exit(&mut child, || {
        format!(
            "the C server did not exit after {} messages",
            requests.len()
        )
    });
    // The reader ends at EOF: after it, every line is in the channel.
    let _ = reader.join();
    let out: Vec<String> = lines.try_iter().collect();
    let errors = errors.join().unwrap_or_default();
    assert!(
        status.success(),
        "exit {status}; stdout:\n{}\nstderr:\n{errors}",
        out.join("\n")
    );
    CRun {
        replies,
        out,
        errors,
    }
}

/// Runs the C server (behind `wrapper`, e.g. valgrind) for three messages from a
/// Rust client; checks the replies, the event lines and a clean exit. Returns stderr.
fn run_c_server_for_three_messages(binary: &Path, wrapper: &[&str]) -> String {
    let ids = ["C1", "C2", "C3"];
    let requests: Vec<Vec<u8>> = ids.iter().map(|id| hl7_msg(id)).collect();
    let CRun {
        replies,
        out,
        errors,
    } = run_c_server(binary, wrapper, &requests);
    for (reply, id) in replies.iter().zip(ids) {
        assert_eq!(hl7::ack_code(reply), Some(&b"AA"[..]), "reply to {id}");
        assert_eq!(hl7::acked_control_id(reply), Some(id.as_bytes()));
    }
    assert_eq!(replies.len(), 3);
    let messages: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("event=message "))
        .collect();
    assert_eq!(messages.len(), 3, "{out:?}");
    for (line, id) in messages.iter().zip(ids) {
        assert!(
            line.contains(&format!("control_id={id} reply=MOORING_RESULT_OK")),
            "{line}"
        );
    }
    assert!(
        out.iter().any(|l| l.starts_with("event=connected ")),
        "{out:?}"
    );
    // The node's counters through mooring_node_get_stats: the client's link
    // is still open, its three requests in (MLLP adds 3 bytes to each).
    let bytes_in: usize = requests.iter().map(|r| r.len() + 3).sum();
    assert!(
        out.contains(&format!(
            "event=stats frames_in=3 frames_out=3 bytes_in={bytes_in} links_open=1 closed=0"
        )),
        "{out:?}"
    );
    assert_eq!(
        out.last().map(String::as_str),
        Some("event=done messages=3 accepted=1"),
        "{out:?}"
    );
    errors
}

/// A 3,000-byte MSH-10 and one with control bytes, a space, `=` and a line
/// feed followed by a forged event line: the replies stay within the ACK
/// buffer and every output line is the server's own, one key=value set.
fn run_c_server_on_hostile_ids(binary: &Path, wrapper: &[&str]) -> String {
    let long = "L".repeat(3000);
    let hostile = "H\x1b[2J\t a=b\x07\nevent=forged messages=99";
    let requests = vec![hl7_msg(&long), hl7_msg(hostile), hl7_msg("C3")];
    let run = run_c_server(binary, wrapper, &requests);
    let out = &run.out;
    // The long id is refused, not quoted, and nothing beyond the ACK is sent.
    let long_reply = &run.replies[0];
    assert!(long_reply.len() < 512, "{} bytes", long_reply.len());
    assert_eq!(hl7::ack_code(long_reply), Some(&b"AR"[..]));
    assert_eq!(hl7::acked_control_id(long_reply), None);
    // The hostile id ends at the line feed, as an HL7 segment does.
    let short = "H\x1b[2J\t a=b\x07";
    assert_eq!(hl7::ack_code(&run.replies[1]), Some(&b"AA"[..]));
    assert_eq!(
        hl7::acked_control_id(&run.replies[1]),
        Some(short.as_bytes())
    );
    assert_eq!(hl7::ack_code(&run.replies[2]), Some(&b"AA"[..]));
    for line in out {
        assert!(
            line.starts_with("event=") && !line.starts_with("event=forged"),
            "forged line: {line:?}"
        );
        assert!(
            line.bytes().all(|b| (b' '..0x7f).contains(&b)),
            "control bytes in {line:?}"
        );
        for kv in line.split(' ') {
            assert_eq!(kv.matches('=').count(), 1, "{kv:?} in {line:?}");
        }
    }
    let messages: Vec<&String> = out
        .iter()
        .filter(|l| l.starts_with("event=message "))
        .collect();
    assert_eq!(messages.len(), 3, "{out:?}");
    // Printed cut to 199 bytes, with its real length.
    assert!(
        messages[0].ends_with(&format!(
            " control_id={} reply=MOORING_RESULT_OK id_len=3000",
            &long[..199]
        )),
        "{}",
        messages[0]
    );
    assert!(
        messages[1].contains(" control_id=H_[2J__a_b_ reply=MOORING_RESULT_OK id_len=11"),
        "{}",
        messages[1]
    );
    assert_eq!(
        out.last().map(String::as_str),
        Some("event=done messages=3 accepted=1"),
        "{out:?}"
    );
    run.errors
}

#[test]
fn c_example_server_acknowledges_each_message_of_a_rust_client() {
    let bin = build_c_server("c_server");
    run_c_server_for_three_messages(&bin, &[]);
}

#[test]
fn c_example_server_neither_overreads_nor_prints_a_hostile_msh_10() {
    let bin = build_c_server("c_server_hostile");
    run_c_server_on_hostile_ids(&bin, &[]);
}

#[test]
#[ignore = "needs valgrind; run by .ci/run"]
fn c_example_server_runs_clean_under_valgrind() {
    let bin = build_c_server("c_server_valgrind");
    let valgrind = [
        "valgrind",
        "--error-exitcode=1",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
    ];
    let hostile = run_c_server_on_hostile_ids(&bin, &valgrind);
    assert!(hostile.contains("ERROR SUMMARY: 0 errors"), "{hostile}");
    let stderr = run_c_server_for_three_messages(&bin, &valgrind);
    // Echo valgrind's summary so the CI log shows what it checked.
    for line in stderr.lines().filter(|l| {
        l.contains("ERROR SUMMARY") || l.contains("definitely lost") || l.contains("in use at exit")
    }) {
        println!("{line}");
    }
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "{stderr}");
}

#[test]
fn c_example_server_rejects_a_message_without_msh_10_as_listen_does() {
    let bin = build_c_server("c_server_no_id");
    let no_id = b"MSH|^~\\&|LAB|A|EHR|B|20261122093000||ADT^A01||P|2.5\rPID|1||123^^^H||DOE^JANE\r"
        .to_vec();
    let run = run_c_server(&bin, &[], &[no_id]);
    let reply = String::from_utf8_lossy(&run.replies[0]);
    assert_eq!(
        hl7::ack_code(&run.replies[0]),
        Some(&b"AR"[..]),
        "{reply:?}"
    );
    assert!(
        reply.contains("\rMSA|AR||MSH-10 (message control id) is missing\r"),
        "{reply:?}"
    );
}

/// An MLLP receiver for the C relay's test: accepts one link, reports each
/// message's MSH-10, and acknowledges (MSA|AA) only once `go` is received,
/// so the relay has to keep its messages in the spool until then.
fn holding_upstream(
    go: mpsc::Receiver<()>,
) -> (
    SocketAddr,
    mpsc::Receiver<String>,
    std::thread::JoinHandle<()>,
) {
    use std::io::Write;
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind the upstream");
    let addr = listener.local_addr().expect("upstream address");
    let (tx, ids) = mpsc::channel();
    let thread = std::thread::spawn(move || {
        let (mut s, _) = listener.accept().expect("the relay connects");
        s.set_read_timeout(Some(WITHIN)).expect("read timeout");
        let mut buf = Vec::new();
        let mut released = false;
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + WITHIN;
        while Instant::now() < deadline {
            // Every complete frame: report it; ACK it once released.
            while let Some(end) = buf.windows(2).position(|w| w == [0x1c, 0x0d]) {
                let frame: Vec<u8> = buf.drain(..end + 2).collect();
                let payload = &frame[1..end];
                let id = hl7::control_id(payload).expect("an MSH-10").to_vec();
                if tx.send(String::from_utf8_lossy(&id).into_owned()).is_err() {
                    return;
                }
                if !released {
                    released = go.recv_timeout(WITHIN).is_ok();
                }
                let id = String::from_utf8_lossy(&id);
                let ack = format!(
                    "\x0bMSH|^~\\&|UP|B|LAB|A|20261122093000||ACK|A{id}|P|2.5\rMSA|AA|{id}\r\x1c\r"
                );
                if s.write_all(ack.as_bytes()).is_err() {
                    return;
                }
            }
            match s.read(&mut chunk) {
                Ok(0) | Err(_) => return,
                Ok(n) => buf.extend_from_slice(&chunk[..n]),
            }
        }
    });
    (addr, ids, thread)
}

/// `key=value` of a line, or "" when it has no such key.
fn field<'a>(line: &'a str, key: &str) -> &'a str {
    line.split(' ')
        .find_map(|kv| kv.strip_prefix(key)?.strip_prefix('='))
        .unwrap_or("")
}

/// The next line `want` accepts, within [`WITHIN`]; every line read is kept in `seen`.
fn expect_line(
    lines: &mpsc::Receiver<String>,
    seen: &mut Vec<String>,
    want: impl Fn(&str) -> bool,
) -> String {
    let deadline = Instant::now() + WITHIN;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        match lines.recv_timeout(left) {
            Ok(l) => {
                seen.push(l.clone());
                if want(&l) {
                    return l;
                }
            }
            Err(_) => panic!(
                "no such line within {WITHIN:?}; lines:\n{}",
                seen.join("\n")
            ),
        }
    }
}

/// `examples/c/relay.c`: a relay built through the C API with a spool
/// directory, in front of an upstream that holds its ACKs. A Rust device gets
/// AA for three messages while only the spool holds them (the C program's
/// stats show them there, aging); once the upstream answers, all three
/// arrive in order, and the events and final stats account for each.
#[test]
fn c_example_relay_spools_and_forwards_a_devices_messages_in_order() {
    let bin = build_c_example("relay.c", "c_relay");
    run_c_relay(&bin, &[], "c-relay");
}

#[test]
#[ignore = "needs valgrind; run by .ci/run"]
fn c_example_relay_runs_clean_under_valgrind() {
    let bin = build_c_example("relay.c", "c_relay_valgrind");
    let valgrind = [
        "valgrind",
        "--error-exitcode=1",
        "--leak-check=full",
        "--errors-for-leak-kinds=definite,indirect",
    ];
    let stderr = run_c_relay(&bin, &valgrind, "c-relay-valgrind");
    for line in stderr.lines().filter(|l| {
        l.contains("ERROR SUMMARY") || l.contains("definitely lost") || l.contains("in use at exit")
    }) {
        println!("{line}");
    }
    assert!(stderr.contains("ERROR SUMMARY: 0 errors"), "{stderr}");
}

/// Runs the C relay (behind `wrapper`, e.g. valgrind) on a fresh spool
/// directory `name` with the checks above; returns its stderr.
fn run_c_relay(bin: &Path, wrapper: &[&str], name: &str) -> String {
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join(format!("{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    let (go, held) = mpsc::channel();
    let (upstream, arrived, up_thread) = holding_upstream(held);
    let mut child = wrapped(wrapper, bin)
        .args(["127.0.0.1:0", &upstream.to_string()])
        .arg(&dir)
        .arg("3")
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C relay");
    let (lines, reader) = stdout_lines(&mut child);
    let mut seen = Vec::new();
    let first = expect_line(&lines, &mut seen, |l| l.starts_with("event=listening "));
    let addr: SocketAddr = field(&first, "addr").parse().expect("an ip:port");

    // The device: each message is acknowledged once it is on disk.
    let mut device = Client::new(
        addr,
        ClientConfig {
            correlate_hl7: true,
            ..ClientConfig::default()
        },
    )
    .expect("client");
    let ids = ["R1", "R2", "R3"];
    for id in ids {
        let reply = device
            .request_within(&hl7_msg(id), WITHIN)
            .expect("a reply");
        assert_eq!(hl7::ack_code(reply), Some(&b"AA"[..]), "reply to {id}");
        assert_eq!(hl7::acked_control_id(reply), Some(id.as_bytes()));
    }
    // All three wait in the spool, the oldest for a while now.
    let held_line = expect_line(&lines, &mut seen, |l| {
        l.starts_with("event=stats ")
            && field(l, "spool_records") == "3"
            && field(l, "spool_oldest_age_ms").parse::<u64>().unwrap_or(0) >= 50
    });
    assert_eq!(field(&held_line, "received"), "3", "{held_line}");
    assert_eq!(field(&held_line, "accepted"), "3", "{held_line}");
    assert_eq!(field(&held_line, "acked"), "0", "{held_line}");
    assert_eq!(field(&held_line, "spool"), "1", "{held_line}");
    let used: u64 = field(&held_line, "spool_bytes_used").parse().unwrap();
    let total: u64 = field(&held_line, "spool_bytes_total").parse().unwrap();
    assert!(used > 0 && total >= 4 << 20, "{held_line}");
    // One message in flight upstream (raw: one at a time), unanswered.
    assert_eq!(arrived.recv_timeout(WITHIN).as_deref(), Ok("R1"));
    go.send(()).expect("the upstream waits");
    let got: Vec<String> = (0..2)
        .map(|_| arrived.recv_timeout(WITHIN).expect("forwarded"))
        .collect();
    assert_eq!(got, ["R2", "R3"], "in order, each once");

    let status = wait_exit(&mut child, || {
        format!("the C relay did not exit; lines:\n{}", seen.join("\n"))
    });
    let _ = reader.join();
    seen.extend(lines.try_iter());
    let mut errors = String::new();
    if let Some(mut e) = child.stderr.take() {
        let _ = e.read_to_string(&mut errors);
    }
    assert!(
        status.success(),
        "exit {status}; stderr: {errors}\n{}",
        seen.join("\n")
    );
    drop(device);
    let _ = up_thread.join();

    let out = seen.join("\n");
    let spool = seen
        .iter()
        .find(|l| l.starts_with("event=spool "))
        .expect(&out);
    assert_eq!(field(spool, "detail"), dir.to_str().unwrap(), "{spool}");
    assert_eq!(
        (field(spool, "recovered"), field(spool, "corrupt")),
        ("0", "0")
    );
    for (kind, key) in [("queued", "id"), ("forwarded", "id"), ("acked", "id")] {
        let got: Vec<&str> = seen
            .iter()
            .filter(|l| l.starts_with(&format!("event={kind} ")))
            .map(|l| field(l, key))
            .collect();
        assert_eq!(got, ids, "event={kind}:\n{out}");
    }
    assert!(
        seen.iter()
            .filter(|l| l.starts_with("event=acked "))
            .all(|l| field(l, "ack") == "AA"),
        "{out}"
    );
    let last = seen
        .iter()
        .rev()
        .find(|l| l.starts_with("event=stats "))
        .expect(&out);
    for (k, v) in [
        ("received", "3"),
        ("accepted", "3"),
        ("queued", "0"),
        ("forwarded", "3"),
        ("acked", "3"),
        ("acks_aa", "3"),
        ("failed", "0"),
        ("refused", "0"),
        ("devices", "1"),
        ("upstream_connected", "1"),
        ("spool_records", "0"),
        ("spool_oldest_age_ms", "0"),
        ("events_dropped", "0"),
    ] {
        assert_eq!(field(last, k), v, "{k} in {last}");
    }
    assert_eq!(
        seen.last().map(String::as_str),
        Some("event=done acked=3"),
        "{out}"
    );
    let _ = std::fs::remove_dir_all(&dir);
    errors
}

/// TLS through the C API: `tls_cert`/`tls_key` in the C config (the example
/// takes them as its 3rd and 4th arguments), a Rust client verifying the
/// server against the CA; each message acknowledged over TLS 1.3.
#[cfg(feature = "tls")]
#[test]
fn c_example_server_serves_a_tls_link() {
    use mooring::tls::{PemSource, TlsClientConfig};
    use mooring::ConnectConfig;
    use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

    let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().expect("key")).expect("CA");
    let key = KeyPair::generate().expect("key");
    let cert = CertificateParams::new(vec!["127.0.0.1".to_string()])
        .expect("params")
        .signed_by(&key, &ca)
        .expect("cert");
    let dir = Path::new(env!("CARGO_TARGET_TMPDIR")).join("c_api_tls");
    std::fs::create_dir_all(&dir).expect("dir");
    let (cert_file, key_file) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert_file, cert.pem()).expect("write");
    std::fs::write(&key_file, key.serialize_pem()).expect("write");

    let bin = build_c_server("c_server_tls");
    let client_cfg = || ClientConfig {
        correlate_hl7: true,
        connect: ConnectConfig {
            tls: Some(TlsClientConfig::new(PemSource::Bytes(
                ca.pem().into_bytes(),
            ))),
            ..ConnectConfig::default()
        },
        ..ClientConfig::default()
    };
    let client = client_cfg();
    let ids = ["T1", "T2"];
    let requests: Vec<Vec<u8>> = ids.iter().map(|id| hl7_msg(id)).collect();
    let (c, k) = (cert_file.to_string_lossy(), key_file.to_string_lossy());
    let run = run_c_server_with(&bin, &[], &[&c, &k], client, &requests);
    for (reply, id) in run.replies.iter().zip(ids) {
        assert_eq!(hl7::ack_code(reply), Some(&b"AA"[..]), "reply to {id}");
        assert_eq!(hl7::acked_control_id(reply), Some(id.as_bytes()));
    }
    assert!(
        run.out.iter().any(|l| l.starts_with("event=message ")),
        "{:?}",
        run.out
    );
    // The handshake, from the node's TLS_ESTABLISHED event (no client
    // certificate: no identity).
    let tls = run
        .out
        .iter()
        .find(|l| l.starts_with("event=tls "))
        .unwrap_or_else(|| panic!("no event=tls: {:?}", run.out));
    assert!(tls.contains(" version=TLSv1_3 suite=TLS13_"), "{tls}");
    assert!(tls.ends_with(" peer_identity=-"), "{tls}");

    // A client that does not trust the server's CA: the server's
    // TLS_FAILED event names the reason and carries rustls's text; then a
    // good client's message ends the server.
    let mut server = Command::new(&bin)
        .args(["127.0.0.1:0", "1", &c, &k])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start the C server");
    let mut out = BufReader::new(server.stdout.take().expect("stdout"));
    let mut first = String::new();
    out.read_line(&mut first).expect("a first line");
    let addr: SocketAddr = first
        .trim_end()
        .strip_prefix("event=listening addr=")
        .unwrap_or_else(|| panic!("not event=listening: {first}"))
        .parse()
        .expect("an ip:port");
    let other = CertifiedIssuer::self_signed(
        {
            let mut p = CertificateParams::new(Vec::<String>::new()).expect("params");
            p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
            // A name of its own: not mistaken for the server's issuer.
            p.distinguished_name
                .push(rcgen::DnType::CommonName, "another CA");
            p
        },
        KeyPair::generate().expect("key"),
    )
    .expect("CA");
    let mut stranger = Client::new(
        addr,
        ClientConfig {
            connect: ConnectConfig {
                tls: Some(TlsClientConfig::new(PemSource::Bytes(
                    other.pem().into_bytes(),
                ))),
                ..ConnectConfig::default()
            },
            ..ClientConfig::default()
        },
    )
    .expect("client");
    assert!(stranger.request_within(&hl7_msg("X1"), WITHIN).is_err());
    let mut good = Client::new(addr, client_cfg()).expect("client");
    good.request_within(&hl7_msg("T3"), WITHIN).expect("reply");
    drop(good);
    // The server exits after its one message (10 s at most).
    let mut rest = String::new();
    out.read_to_string(&mut rest).expect("stdout");
    assert!(server.wait().expect("exit").success(), "{rest}");
    let failed = rest
        .lines()
        .find(|l| l.starts_with("event=tls_failed "))
        .unwrap_or_else(|| panic!("no event=tls_failed:\n{rest}"));
    assert!(failed.contains(" reason=TlsUnknownCa detail="), "{failed}");
    assert!(failed.ends_with("UnknownCA"), "{failed}");

    // A key file that is not there: mooring_node_new fails, and the text
    // names the field and the file.
    let missing = dir.join("missing.pem");
    let out = Command::new(&bin)
        .args(["127.0.0.1:0", "1", &c, &missing.to_string_lossy()])
        .output()
        .expect("run");
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.starts_with(&format!("new: tls_key: {}: cannot read", missing.display())),
        "{err}"
    );
}

//! The C API from C: `examples/c/server.c` is compiled with the host's `cc`
//! against the staticlib and `src/mooring.h`, run on loopback, and driven by a
//! Rust [`mooring::Client`] whose requests it must acknowledge.
//!
//! Host builds only: on a cross target (the ARM run under qemu) the host's `cc`
//! cannot link the target's staticlib, so the file compiles to nothing there.
#![cfg(all(target_os = "linux", not(target_arch = "arm")))]

use std::io::{BufRead, BufReader, Read};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
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
    let out = Path::new(env!("CARGO_TARGET_TMPDIR")).join(name);
    let cc = std::env::var("CC").unwrap_or_else(|_| "cc".into());
    let output = Command::new(&cc)
        .args(["-std=c11", "-D_POSIX_C_SOURCE=200809L", "-g", "-O1"])
        .args(["-Wall", "-Wextra", "-Werror", "-pedantic"])
        .arg("-I")
        .arg(Path::new(ROOT).join("src"))
        .arg(Path::new(ROOT).join("examples/c/server.c"))
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

/// Runs the C server (behind `wrapper`, e.g. valgrind) for `requests` from a
/// Rust client and waits for its clean exit.
fn run_c_server(binary: &Path, wrapper: &[&str], requests: &[Vec<u8>]) -> CRun {
    let mut cmd = match wrapper.split_first() {
        Some((first, rest)) => {
            let mut c = Command::new(first);
            c.args(rest).arg(binary);
            c
        }
        None => Command::new(binary),
    };
    let mut child = cmd
        .args(["127.0.0.1:0", &requests.len().to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("start the C server");
    let (tx, lines) = mpsc::channel();
    let stdout = child.stdout.take().expect("stdout");
    let reader = std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                return;
            }
        }
    });
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

    let mut client = Client::new(
        addr,
        ClientConfig {
            correlate_hl7: true,
            ..ClientConfig::default()
        },
    )
    .expect("client");
    let mut replies = Vec::new();
    for (i, m) in requests.iter().enumerate() {
        let reply = client
            .request_within(m, WITHIN)
            .unwrap_or_else(|e| panic!("request {i}: {e}"));
        replies.push(reply.to_vec());
    }

    let deadline = Instant::now() + WITHIN;
    let status = loop {
        if let Some(s) = child.try_wait().expect("wait") {
            break s;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!(
                "the C server did not exit after {} messages",
                requests.len()
            );
        }
        std::thread::sleep(Duration::from_millis(20));
    };
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

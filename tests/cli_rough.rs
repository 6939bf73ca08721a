//! Rough edges a new user meets, each pinned by the binary's behaviour:
//! `--max-frame` on `send`, rejected replies counted with their own exit
//! status, HL7 batch files, the MSH-10 rule, a peer repeating old ACKs,
//! `--version`/`--help`, and the demo's expected warnings.
//!
//! Every wait is for an expected line, reply or exit, with a deadline; every
//! process a test starts is killed by its own handle when the test ends.

use std::net::{SocketAddr, TcpListener};
use std::sync::mpsc;

use mooring::hl7;

/// Process helpers shared with the other CLI tests.
mod support;
// The raw MLLP peer the library tests use.
mod common;

use common::{mllp, Peer};
use support::{field, mooring, run, Proc, TempFile, WITHIN};

/// An ACK with MSA-1 `code` for MSA-2 `id`.
fn ack(code: &str, id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|R|R|S|S|20261122||ACK|A{id}|P|2.5\rMSA|{code}|{id}\r").into_bytes()
}

/// A peer on loopback serving one connection: each frame it receives goes to
/// the channel, and it answers it with `answer(frame)` (any number of frames).
fn recording_peer(
    answer: impl Fn(&[u8]) -> Vec<Vec<u8>> + Send + 'static,
) -> (SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = l.local_addr().expect("addr");
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let Ok((s, _)) = l.accept() else { return };
        let mut p = Peer::wrap(s);
        while let Ok(frame) = p.read_mllp(WITHIN) {
            let mut out = Vec::new();
            for reply in answer(&frame) {
                out.extend_from_slice(&mllp(&reply));
            }
            // Recorded before it is answered: once the sender has its reply,
            // the frame is in the channel.
            if tx.send(frame).is_err() || p.try_send(&out).is_err() {
                return;
            }
        }
    });
    (addr, rx)
}

/// The AA ACK for `frame` (its MSH-10, or an empty MSA-2).
fn aa(frame: &[u8]) -> Vec<Vec<u8>> {
    let id = hl7::control_id(frame).map(String::from_utf8_lossy);
    vec![ack("AA", id.as_deref().unwrap_or(""))]
}

fn msg(id: &str, pid: &str) -> String {
    format!("MSH|^~\\&|A|B|C|D|20261122||ADT^A01|{id}|P|2.5\rPID|{pid}\r")
}

// 1. `--max-frame` on send (the relay's is in tests/relay.rs).

#[test]
fn send_max_frame_sends_a_message_over_the_default_limit() {
    let (_listen, addr) = Proc::listen(&["--max-frame", "2000000", "--quiet"]);
    // An embedded document: 1.5 MB in one OBX.
    let big = format!(
        "MSH|^~\\&|A|B|C|D|20261122||ORU^R01|BIG1|P|2.5\rOBX|1|ED|PDF||{}\r",
        "Q".repeat(1_500_000)
    );
    let file = TempFile::new("big.hl7", big.as_bytes());
    let a = addr.to_string();
    let r = run(
        mooring(&["send", &a, file.path(), "--max-frame", "2000000"]),
        None,
    );
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let reply = r.line_starting("event=reply ").to_string();
    assert_eq!(field(&reply, "ack"), Some("AA"), "{reply}");
    // Without the flag the limit is the default: refused before the wire.
    let r = run(mooring(&["send", &a, file.path()]), None);
    assert_eq!(r.status.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(r.stdout.contains("error=FrameTooLarge"), "{}", r.stdout);
}

#[test]
fn listen_send_and_relay_share_the_link_flags_and_check_them_alike() {
    for args in [
        &["listen", "--max-frame", "x"][..],
        &["send", "127.0.0.1:1", "--max-frame", "x"],
        &[
            "relay",
            "--listen",
            "127.0.0.1:0",
            "--upstream",
            "127.0.0.1:1",
            "--max-frame",
            "x",
        ],
    ] {
        let r = run(mooring(args), None);
        assert_eq!(r.status.code(), Some(2), "{args:?}: {}", r.stderr);
        assert_eq!(
            r.stderr.trim(),
            "error: --max-frame: bad number \"x\"",
            "{args:?}"
        );
    }
    for sub in ["send", "relay"] {
        let r = run(mooring(&[sub, "--help"]), None);
        assert!(r.stdout.contains("--max-frame BYTES"), "{sub} --help");
    }
}

// 2. Rejected replies.

#[test]
fn send_counts_rejected_replies_and_exits_3() {
    // The peer answers MSG2 with AR and MSG3 with CE (AA otherwise).
    let (addr, _frames) = recording_peer(|frame| {
        let id = hl7::control_id(frame).map(|i| String::from_utf8_lossy(i).into_owned());
        let id = id.unwrap_or_default();
        let code = match id.as_str() {
            "MSG2" => "AR",
            "MSG3" => "CE",
            _ => "AA",
        };
        vec![ack(code, &id)]
    });
    let text = [msg("MSG1", "1"), msg("MSG2", "2"), msg("MSG3", "3")].concat();
    let a = addr.to_string();
    let r = run(mooring(&["send", &a, "-"]), Some(text.as_bytes()));
    assert_eq!(r.status.code(), Some(3), "{}\n{}", r.stdout, r.stderr);
    let summary = r.lines().last().copied().unwrap_or_default().to_string();
    assert_eq!(
        summary,
        "event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0 rejected=2"
    );
    let help = run(mooring(&["send", "--help"]), None).stdout;
    assert!(help.contains("3 when\nevery message got a reply but at least one reply rejected"));
}

// 3. Batch files.

const BATCH: &str = "FHS|^~\\&|SRC|FAC|DST|FAC|20261122\r\n\
BHS|^~\\&|SRC|FAC|DST|FAC|20261122\r\n\
MSH|^~\\&|A|B|C|D|20261122||ADT^A01|B1|P|2.5\r\n\
PID|1\r\n\
MSH|^~\\&|A|B|C|D|20261122||ADT^A01|B2|P|2.5\r\n\
PID|2\r\n\
BTS|2\r\n\
FTS|1\r\n";

#[test]
fn a_batch_file_is_sent_as_its_messages_without_the_envelope_and_says_so() {
    let (addr, frames) = recording_peer(aa);
    let file = TempFile::new("batch.hl7", BATCH.as_bytes());
    let a = addr.to_string();
    let r = run(mooring(&["send", &a, file.path()]), None);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.lines()
            .contains(&"event=batch header=FHS,BHS messages=2 trailer=BTS,FTS sent_as=messages"),
        "{}",
        r.stdout
    );
    let got: Vec<Vec<u8>> = frames.try_iter().collect();
    assert_eq!(
        got,
        [
            b"MSH|^~\\&|A|B|C|D|20261122||ADT^A01|B1|P|2.5\rPID|1\r".to_vec(),
            // Not "...PID|2\rBTS|2\rFTS|1\r".
            b"MSH|^~\\&|A|B|C|D|20261122||ADT^A01|B2|P|2.5\rPID|2\r".to_vec(),
        ]
    );
}

#[test]
fn batch_as_frame_sends_the_whole_batch_as_one_frame() {
    let (addr, frames) = recording_peer(|_| vec![ack("AA", "")]);
    let file = TempFile::new("batch-frame.hl7", BATCH.as_bytes());
    let a = addr.to_string();
    let r = run(
        mooring(&["send", &a, file.path(), "--batch-as-frame"]),
        None,
    );
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.lines()
            .contains(&"event=batch header=FHS,BHS messages=2 trailer=BTS,FTS sent_as=frame"),
        "{}",
        r.stdout
    );
    let got: Vec<Vec<u8>> = frames.try_iter().collect();
    assert_eq!(got, [BATCH.replace("\r\n", "\r").into_bytes()]);
    assert!(r.stdout.contains("event=summary sent=1 replied=1 failed=0"));
}

// 4. One rule for a message without MSH-10 (the relay's is in tests/relay.rs).

#[test]
fn listen_rejects_a_message_without_msh_10_saying_why() {
    let (mut listen, addr) = Proc::listen(&[]);
    let mut p = Peer::connect(addr);
    p.send_mllp(b"MSH|^~\\&|A|B|C|D|20261122||ADT^A01||P|2.5\rPID|1\r");
    let reply = p.read_mllp(WITHIN).expect("a reply");
    let text = String::from_utf8_lossy(&reply);
    assert_eq!(hl7::ack_code(&reply), Some(&b"AR"[..]), "{text:?}");
    assert!(
        text.ends_with("\rMSA|AR||MSH-10 (message control id) is missing\r"),
        "{text:?}"
    );
    listen.expect_line(|l| l.starts_with("event=message "), WITHIN);
}

// 5. A peer repeating old ACKs.

#[test]
fn a_peer_repeating_old_acks_gives_counts_not_a_flood() {
    // Before each real ACK, the peer repeats 30 ACKs of earlier messages.
    let (addr, _frames) = recording_peer(|frame| {
        let mut v: Vec<Vec<u8>> = (0..30).map(|n| ack("AA", &format!("OLD{n}"))).collect();
        v.extend(aa(frame));
        v
    });
    let text = [msg("MSG1", "1"), msg("MSG2", "2"), msg("MSG3", "3")].concat();
    let a = addr.to_string();
    let r = run(mooring(&["send", &a, "-"]), Some(text.as_bytes()));
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    assert!(
        r.stdout.contains(" unexpected=90 rejected=0"),
        "every one counted: {}",
        r.stdout
    );
    let warnings: Vec<&str> = r
        .stderr
        .lines()
        .filter(|l| l.contains("unexpected reply"))
        .collect();
    assert_eq!(warnings.len(), 1, "one line per interval: {}", r.stderr);
    assert_eq!(
        warnings[0],
        "mooring: warn: unexpected reply (its MSA-2 is OLD0, not this request's MSH-10)"
    );
    assert!(
        !r.stderr.contains("Some("),
        "no Rust debug text: {}",
        r.stderr
    );
}

// 7. The top-level command line.

#[test]
fn version_prints_the_crate_version_and_help_names_every_subcommand() {
    for flag in ["--version", "-V"] {
        let r = run(mooring(&[flag]), None);
        assert_eq!(r.status.code(), Some(0), "{flag}");
        assert_eq!(
            r.stdout,
            format!("mooring {}\n", env!("CARGO_PKG_VERSION")),
            "{flag}"
        );
        assert!(r.stderr.is_empty());
    }
    let r = run(mooring(&["--help"]), None);
    assert_eq!(r.status.code(), Some(0));
    for word in [
        "mooring listen",
        "mooring send",
        "mooring relay",
        "mooring demo",
        "--version",
    ] {
        assert!(r.stdout.contains(word), "{word} in:\n{}", r.stdout);
    }
    let r = run(mooring(&[]), None);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(
        r.stderr.trim(),
        "error: missing subcommand: listen, send, relay or demo (see mooring --help)"
    );
    let r = run(mooring(&["frobnicate"]), None);
    assert_eq!(r.status.code(), Some(2));
    assert_eq!(
        r.stderr.trim(),
        "error: unknown subcommand \"frobnicate\" (use listen, send, relay or demo)"
    );
}

// 9. The demo's expected warnings.

#[test]
fn the_demos_warnings_about_bad_input_say_they_are_expected() {
    let r = run(mooring(&["demo"]), None);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let warns: Vec<&str> = r.stderr.lines().filter(|l| l.contains("warn")).collect();
    assert!(
        !warns.is_empty(),
        "the bad-input scenario warns: {}",
        r.stderr
    );
    for w in warns {
        assert!(
            w.starts_with("mooring: warn (expected: the demo sends bad input on purpose): "),
            "{w}"
        );
    }
}

//! Interoperability with a real third-party MLLP stack: python `hl7` 0.4.5.
//!
//! - Its `mllp_send` tool (run as `python3 -m hl7.client`, the module behind the
//!   console script, so the test does not depend on where pip put the script)
//!   sends to `mooring listen` and gets mooring's ACKs.
//! - `mooring send` delivers to an asyncio server built on its `hl7.mllp` module
//!   (`tests/peers/hl7_mllp_server.py`) and takes its `create_ack()` ACKs.
//!
//! Ignored by default because they need python; `.ci/run` installs `hl7==0.4.5`
//! and runs them. When run, a missing python3 or hl7 module is a failure, not a
//! skip: a test that silently passes without its peer proves nothing.

/// Process helpers shared with the CLI tests.
mod support;

use std::process::Command;

use support::{assert_sample_replies, expect_sample_received, mooring, run, Proc, SAMPLE, WITHIN};

/// The asyncio MLLP server on python hl7's `hl7.mllp`.
const PEER_SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/hl7_mllp_server.py"
);

/// Fails the test, saying what is missing, unless `python3` can import `hl7.mllp`.
fn require_python_hl7() {
    let mut c = Command::new("python3");
    c.args(["-c", "import hl7, hl7.client, hl7.mllp"]);
    match c.output() {
        Err(e) => panic!("python3 is missing ({e}): install python3 and `pip install hl7==0.4.5`"),
        Ok(o) if !o.status.success() => panic!(
            "python3 cannot import the hl7 module: run `python3 -m pip install hl7==0.4.5` ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
}

/// Named `interop::...` so that `.ci/run` can `--skip interop` when pip cannot
/// install the peer (it says so loudly); otherwise they run and must pass.
mod interop {
    use super::*;

    #[test]
    #[ignore = "needs python3 with hl7==0.4.5 (pip); run by .ci/run"]
    fn python_mllp_send_gets_an_ack_per_message_from_mooring_listen() {
        require_python_hl7();
        let (mut listen, addr) = Proc::listen(&[]);
        let port = addr.port().to_string();
        // --loose: the sample file has LF line ends and no MLLP framing.
        let mut c = Command::new("python3");
        c.args([
            "-m",
            "hl7.client",
            "--loose",
            "-f",
            SAMPLE,
            "-p",
            &port,
            "127.0.0.1",
        ]);
        let r = run(c, None);
        assert!(
            r.status.success(),
            "mllp_send failed: {}\n{}",
            r.stdout,
            r.stderr
        );
        // mllp_send prints each raw reply (MLLP framing included) on a line.
        for n in 1..=3 {
            let want = format!("MSA|AA|MSG{n:05}");
            assert!(
                r.stdout.contains(&want),
                "no {want} in mllp_send's output: {:?}",
                r.stdout
            );
        }
        assert_eq!(r.stdout.matches("MSA|").count(), 3, "{:?}", r.stdout);

        let peer = expect_sample_received(&mut listen);
        listen.expect_line(
            |l| l == format!("event=closed peer={peer} reason=PeerClosed"),
            WITHIN,
        );
    }

    #[test]
    #[ignore = "needs python3 with hl7==0.4.5 (pip); run by .ci/run"]
    fn mooring_send_delivers_to_a_python_hl7_mllp_server() {
        require_python_hl7();
        let mut c = Command::new("python3");
        c.arg(PEER_SERVER);
        let mut server = Proc::spawn(c);
        let first = server.expect_line(|l| l.starts_with("listening "), WITHIN);
        let port: u16 = first["listening ".len()..].trim().parse().expect("port");
        let addr = format!("127.0.0.1:{port}");
        // Both client policies: one link for all, and one link per message.
        for extra in [&[][..], &["--close-each"]] {
            let mut args = vec!["send", &addr, SAMPLE, "--response-timeout", "5s"];
            args.extend_from_slice(extra);
            let r = run(mooring(&args), None);
            assert_eq!(
                r.status.code(),
                Some(0),
                "{extra:?}: {}\n{}",
                r.stdout,
                r.stderr
            );
            let lines = r.lines();
            assert_eq!(lines.len(), 5, "{}", r.stdout);
            assert!(lines[0].starts_with("event=liveness "), "{}", r.stdout);
            assert_sample_replies(&lines[1..4]);
            assert_eq!(
                lines[4],
                "event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0 rejected=0"
            );
        }
    }
}

//! TLS interoperability with third-party stacks (certificates made by rcgen
//! for each test):
//!
//! - python's `ssl` module around an MLLP client (`tests/peers/tls_mllp_client.py`)
//!   against `mooring listen --tls-...`, with and without a client certificate;
//! - python hl7's asyncio `hl7.mllp` server with `start_hl7_server(...,
//!   ssl=ctx)` (`tests/peers/hl7_mllp_server.py --tls-...`) as the server of
//!   `mooring send --tls`, with and without client certificates;
//! - `openssl s_client`: TLS 1.2 and 1.3 both work, TLS 1.0 and 1.1 are
//!   refused (`TlsProtocolVersion` on mooring's side);
//! - `openssl s_server` as the server of `mooring send --tls` (TLS 1.2 forced
//!   on its side).
//!
//! Ignored by default because they need python3 with hl7==0.4.5 and the
//! openssl program; `.ci/run` installs them and runs these. When run, a
//! missing peer is a failure, not a skip.
#![cfg(feature = "tls")]

/// Process helpers shared with the CLI tests.
mod support;

use std::net::SocketAddr;
use std::process::{Command, Stdio};

use support::pki::{
    expect_no_certificate_close, expect_tls_close, listen_tls, send_tls, strs, Pki,
};
use support::{field, mooring, run, Proc, Run, SAMPLE, WITHIN};

const PEER_SERVER: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/hl7_mllp_server.py"
);
const PEER_CLIENT: &str = concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/tests/peers/tls_mllp_client.py"
);

/// Fails the test, saying what is missing, unless `program args` runs.
fn require(program: &str, args: &[&str], install: &str) {
    match Command::new(program).args(args).output() {
        Err(e) => panic!("{program} is missing ({e}): {install}"),
        Ok(o) if !o.status.success() => panic!(
            "{program} {args:?} failed: {install} ({})",
            String::from_utf8_lossy(&o.stderr).trim()
        ),
        Ok(_) => {}
    }
}

fn require_python_hl7() {
    require(
        "python3",
        &["-c", "import ssl, hl7, hl7.mllp"],
        "install python3 and `python3 -m pip install hl7==0.4.5`",
    );
}

fn require_openssl() {
    require("openssl", &["version"], "apt-get install openssl");
}

/// The python TLS MLLP client sending the sample to `addr`.
fn python_client(addr: SocketAddr, pki: &Pki, with_cert: bool) -> Run {
    let mut c = Command::new("python3");
    let port = addr.port().to_string();
    c.args([
        PEER_CLIENT,
        "127.0.0.1",
        &port,
        SAMPLE,
        "--ca",
        &pki.path("ca.pem"),
    ]);
    if with_cert {
        c.args([
            "--cert",
            &pki.path("client.pem"),
            "--key",
            &pki.path("client-key.pem"),
        ]);
    }
    run(c, None)
}

/// The python `hl7.mllp` server with TLS (client certificates required when
/// `require_client_cert`); its address.
fn python_server(pki: &Pki, require_client_cert: bool) -> (Proc, String) {
    let mut c = Command::new("python3");
    c.args([
        PEER_SERVER,
        "--tls-cert",
        &pki.path("server.pem"),
        "--tls-key",
        &pki.path("server-key.pem"),
    ]);
    if require_client_cert {
        c.args(["--tls-ca", &pki.path("ca.pem")]);
    }
    let mut p = Proc::spawn_with(c, Stdio::piped(), Stdio::inherit());
    let first = p.expect_line(|l| l.starts_with("listening "), WITHIN);
    let port: u16 = first["listening ".len()..].trim().parse().expect("port");
    (p, format!("127.0.0.1:{port}"))
}

/// `openssl s_client` connecting to `addr` with `version` (e.g. `-tls1_2`),
/// verifying against the PKI's CA; stdin closed, so it ends after the
/// handshake.
fn s_client(addr: SocketAddr, pki: &Pki, version: &str) -> Run {
    let mut c = Command::new("openssl");
    c.args([
        "s_client",
        "-connect",
        &addr.to_string(),
        version,
        "-CAfile",
        &pki.path("ca.pem"),
        "-verify_return_error",
        // TLS 1.0/1.1 are below OpenSSL 3's default security level: level
        // 0 makes the client really offer them, so the refusal is mooring's.
        "-cipher",
        "DEFAULT@SECLEVEL=0",
    ]);
    run(c, None)
}

/// Named `interop::...` so that `.ci/run` can `--skip interop` when it cannot
/// install the peers (it says so loudly).
mod interop {
    use super::*;

    #[test]
    #[ignore = "needs python3 with hl7==0.4.5; run by .ci/run"]
    fn python_ssl_mllp_client_against_mooring_listen_tls() {
        require_python_hl7();
        let pki = Pki::new("py-client");
        // Without client certificates.
        let (mut listen, addr) = listen_tls(&pki, &[]);
        let r = python_client(addr, &pki, false);
        assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
        assert!(r.stdout.starts_with("tls version=TLSv1.3 "), "{}", r.stdout);
        for n in 1..=3 {
            assert!(
                r.stdout.contains(&format!("reply AA MSG{n:05}")),
                "{}",
                r.stdout
            );
        }
        let tls = listen.expect_line(|l| l.starts_with("event=tls "), WITHIN);
        assert_eq!(field(&tls, "peer_identity"), Some("-"), "{tls}");
        // The client's close_notify: a clean close, not a truncation.
        let closed = listen.expect_line(|l| l.starts_with("event=closed "), WITHIN);
        assert_eq!(field(&closed, "reason"), Some("PeerClosed"), "{closed}");

        // Client certificates required.
        let ca = pki.path("ca.pem");
        let (mut listen, addr) = listen_tls(&pki, &["--tls-ca", &ca]);
        let r = python_client(addr, &pki, true);
        assert!(r.status.success(), "{}\n{}", r.stdout, r.stderr);
        assert_eq!(r.stdout.matches("reply AA MSG").count(), 3, "{}", r.stdout);
        let tls = listen.expect_line(|l| l.starts_with("event=tls "), WITHIN);
        assert_eq!(
            field(&tls, "peer_identity"),
            Some("device-1.example"),
            "{tls}"
        );
        // ... and a python client without one is refused by name.
        let r = python_client(addr, &pki, false);
        assert!(!r.status.success(), "{}", r.stdout);
        assert!(r.stdout.contains("error "), "{}", r.stdout);
        expect_no_certificate_close(&mut listen);
    }

    #[test]
    #[ignore = "needs python3 with hl7==0.4.5; run by .ci/run"]
    fn mooring_send_tls_to_a_python_hl7_mllp_server_with_ssl() {
        require_python_hl7();
        let pki = Pki::new("py-server");
        let client_cert = [
            "--tls-cert".to_string(),
            pki.path("client.pem"),
            "--tls-key".to_string(),
            pki.path("client-key.pem"),
        ];
        for (require_cert, extra) in [(false, &[][..]), (true, &client_cert[..])] {
            let (_server, addr) = python_server(&pki, require_cert);
            let r = send_tls(&addr, &pki.path("ca.pem"), &strs(extra));
            assert_eq!(
                r.status.code(),
                Some(0),
                "{require_cert}: {}\n{}",
                r.stdout,
                r.stderr
            );
            let tls = r.line_starting("event=tls ").to_string();
            assert_eq!(field(&tls, "version"), Some("TLSv1_3"), "{tls}");
            assert_eq!(
                field(&tls, "peer_identity"),
                Some("engine.example"),
                "{tls}"
            );
            assert_eq!(r.stdout.matches("event=reply ").count(), 3, "{}", r.stdout);
            assert!(r.stdout.contains(" ack=AA "), "{}", r.stdout);
        }
        // A server that requires a client certificate, and none given: the
        // send fails. (python's asyncio server drops the link without
        // flushing its TLS alert, so mooring sees the peer close the link
        // right after the handshake, not a named TLS reason.)
        let (_server, addr) = python_server(&pki, true);
        let r = send_tls(&addr, &pki.path("ca.pem"), &[]);
        assert_eq!(r.status.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
        assert!(!r.stdout.contains("event=reply "), "{}", r.stdout);
        assert_eq!(r.stdout.matches("event=error ").count(), 3, "{}", r.stdout);
    }

    #[test]
    #[ignore = "needs the openssl program; run by .ci/run"]
    fn openssl_s_client_gets_tls_1_2_and_1_3_and_tls_1_0_1_1_are_refused() {
        require_openssl();
        let pki = Pki::new("s-client");
        let (mut listen, addr) = listen_tls(&pki, &[]);
        for (flag, ours, theirs) in [
            ("-tls1_2", "TLSv1_2", "TLSv1.2"),
            ("-tls1_3", "TLSv1_3", "TLSv1.3"),
        ] {
            let r = s_client(addr, &pki, flag);
            assert!(r.status.success(), "{flag}: {}\n{}", r.stdout, r.stderr);
            assert!(r.stdout.contains(theirs), "{flag}: {}", r.stdout);
            assert!(
                r.stdout.contains("Verify return code: 0 (ok)"),
                "{flag}: {}",
                r.stdout
            );
            let tls = listen.expect_line(|l| l.starts_with("event=tls "), WITHIN);
            assert_eq!(field(&tls, "version"), Some(ours), "{flag}: {tls}");
        }
        for flag in ["-tls1", "-tls1_1"] {
            let r = s_client(addr, &pki, flag);
            assert!(!r.status.success(), "{flag} was accepted: {}", r.stdout);
            assert!(
                r.stderr.contains("protocol version") || r.stderr.contains("alert"),
                "{flag}: {}",
                r.stderr
            );
            // OpenSSL's TLS 1.0/1.1 ClientHello has no signature_algorithms
            // extension (a TLS 1.2 one): rustls refuses it for that before it
            // looks at the version, and mooring names that a version refusal.
            expect_tls_close(&mut listen, "TlsProtocolVersion", flag);
        }
    }

    #[test]
    #[ignore = "needs the openssl program; run by .ci/run"]
    fn mooring_send_tls_to_openssl_s_server() {
        require_openssl();
        let pki = Pki::new("s-server");
        // One message: s_server answers what the test writes to its stdin.
        let msg = std::fs::read_to_string(SAMPLE).expect("sample");
        let first: String = msg.split("\nMSH").next().expect("first").to_string();
        let one = pki.path("one.hl7");
        std::fs::write(&one, first).expect("write");
        for version in ["-tls1_2", "-tls1_3"] {
            let mut c = Command::new("openssl");
            c.args([
                "s_server",
                "-accept",
                "127.0.0.1:0",
                "-naccept",
                "1",
                version,
                "-cert",
                &pki.path("server.pem"),
                "-key",
                &pki.path("server-key.pem"),
            ]);
            let mut server = Proc::spawn_with(c, Stdio::piped(), Stdio::inherit());
            let accept = server.expect_line(|l| l.starts_with("ACCEPT "), WITHIN);
            let addr = accept["ACCEPT ".len()..].trim().to_string();
            let a = addr.clone();
            let ca = pki.path("ca.pem");
            let one = one.clone();
            let mut send = Proc::spawn(mooring(&[
                "send",
                &a,
                &one,
                "--response-timeout",
                "5s",
                "--tls",
                "--tls-ca",
                &ca,
            ]));
            // The handshake is done on s_server's side (the request was
            // queued before it began); s_server sends its stdin by lines.
            server.expect_line(|l| l.starts_with("CIPHER is "), WITHIN);
            server.write_stdin(
                b"\x0bMSH|^~\\&|RHAPSODY|GOODHEALTH|REGADT|GOODHEALTH|20260114083001||ACK|A1|P|2.5.1\rMSA|AA|MSG00001\r\x1c\r\n",
            );
            let tls = send.expect_line(|l| l.starts_with("event=tls "), WITHIN);
            let want = if version == "-tls1_2" {
                "TLSv1_2"
            } else {
                "TLSv1_3"
            };
            assert_eq!(field(&tls, "version"), Some(want), "{tls}");
            let reply = send.expect_line(|l| l.starts_with("event=reply "), WITHIN);
            assert_eq!(field(&reply, "ack"), Some("AA"), "{reply}");
            let summary = send.expect_line(|l| l.starts_with("event=summary "), WITHIN);
            assert_eq!(field(&summary, "replied"), Some("1"), "{summary}");
        }
    }
}

//! Certificates for the TLS tests of the binary, from the shared generator
//! (tests/tls_pki) written as PEM files into a directory of their own
//! (removed on drop): a CA with a server certificate (SANs `engine.example`
//! and 127.0.0.1) and a client certificate (`device-1.example`, CN
//! `device-1`), and a second CA with a client certificate of its own (which
//! the first CA does not vouch for).

use std::fmt::Display;
use std::net::SocketAddr;
use std::path::PathBuf;

use super::{field, mooring, run, Proc, Run, SAMPLE, WITHIN};

#[path = "../tls_pki/mod.rs"]
mod tls_pki;

use tls_pki::Ca;

/// The PEM files of one test's PKI.
pub struct Pki {
    dir: PathBuf,
}

impl Pki {
    /// Generates everything into a fresh directory named for `test`.
    pub fn new(test: &str) -> Pki {
        let dir = std::env::temp_dir().join(format!("mooring-pki-{test}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("temp dir");
        let main = Ca::new("mooring test CA");
        let other = Ca::new("another CA");
        let server = main.leaf(&["engine.example", "127.0.0.1"], "engine", false);
        let client = main.leaf(&["device-1.example"], "device-1", false);
        let stranger = other.leaf(&["device-9.example"], "device-9", false);
        for (name, bytes) in [
            ("ca.pem", main.pem_bytes()),
            ("other-ca.pem", other.pem_bytes()),
            ("server.pem", server.cert),
            ("server-key.pem", server.key),
            ("client.pem", client.cert),
            ("client-key.pem", client.key),
            ("stranger.pem", stranger.cert),
            ("stranger-key.pem", stranger.key),
        ] {
            std::fs::write(dir.join(name), bytes).expect("write PEM");
        }
        Pki { dir }
    }

    /// The path of one of the files: `ca.pem`, `other-ca.pem`, `server.pem`,
    /// `server-key.pem`, `client.pem`, `client-key.pem`, `stranger.pem`,
    /// `stranger-key.pem`.
    pub fn path(&self, name: &str) -> String {
        self.dir.join(name).display().to_string()
    }

    /// `--tls-cert server.pem --tls-key server-key.pem`, for `mooring listen`
    /// and the relay (owned strings: pass them through [`strs`]).
    pub fn server_flags(&self) -> Vec<String> {
        vec![
            "--tls-cert".into(),
            self.path("server.pem"),
            "--tls-key".into(),
            self.path("server-key.pem"),
        ]
    }
}

impl Drop for Pki {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Borrows owned arguments as the `&[&str]` the process helpers take.
pub fn strs(v: &[String]) -> Vec<&str> {
    v.iter().map(String::as_str).collect()
}

/// `mooring listen --bind 127.0.0.1:0` with the PKI's server certificate and
/// `extra`.
pub fn listen_tls(pki: &Pki, extra: &[&str]) -> (Proc, SocketAddr) {
    let mut args = pki.server_flags();
    args.extend(extra.iter().map(|s| s.to_string()));
    Proc::listen(&strs(&args))
}

/// `mooring send` of the sample to `addr` over TLS, trusting the CA in the
/// PEM file `ca`, with `extra`.
pub fn send_tls(addr: impl Display, ca: &str, extra: &[&str]) -> Run {
    let a = addr.to_string();
    let mut args = vec![
        "send",
        &a,
        SAMPLE,
        "--response-timeout",
        "5s",
        "--tls",
        "--tls-ca",
        ca,
    ];
    args.extend_from_slice(extra);
    run(mooring(&args), None)
}

/// Waits for `listen`'s refusal of a client without a certificate (see
/// [`expect_tls_close`]).
pub fn expect_no_certificate_close(listen: &mut Proc) -> String {
    expect_tls_close(listen, "TlsNoCertificate", "a client without a certificate")
}

/// Waits for `listen`'s refusal of a TLS client (`what`, for the failure
/// message): its first close that is not `PeerClosed` (an earlier client's
/// own close may come first), checked to have `reason`, and returned.
pub fn expect_tls_close(listen: &mut Proc, reason: &str, what: &str) -> String {
    let closed = listen.expect_line(
        |l| l.starts_with("event=closed ") && field(l, "reason") != Some("PeerClosed"),
        WITHIN,
    );
    assert_eq!(field(&closed, "reason"), Some(reason), "{what}: {closed}");
    closed
}

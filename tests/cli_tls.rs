//! The `mooring` binary over TLS, on loopback, with certificates rcgen made
//! for each test (tests/support/pki.rs): `listen` + `send` with and without
//! client certificates, a wrong CA named `TlsUnknownCa`, `--tls-allow-peer`
//! refusing a client, the relay with TLS on its device side and its upstream,
//! and the usage errors of bad files.
#![cfg(feature = "tls")]

/// Process helpers shared with the CLI tests.
mod support;

use support::pki::{expect_no_certificate_close, listen_tls, send_tls, strs, Pki};
use support::{field, mooring, run, Proc, Run, SAMPLE, WITHIN};

/// The run's `event=tls` line, checked for TLS 1.3 and `identity`.
fn assert_tls_line(r: &Run, identity: &str) {
    let l = r.line_starting("event=tls ").to_string();
    assert_eq!(field(&l, "version"), Some("TLSv1_3"), "{l}");
    assert!(
        field(&l, "suite").is_some_and(|s| s.starts_with("TLS13_")),
        "{l}"
    );
    assert_eq!(field(&l, "peer_identity"), Some(identity), "{l}");
}

/// Every sample message answered AA, and the clean summary.
fn assert_all_acked(r: &Run) {
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let replies: Vec<&str> = r
        .lines()
        .into_iter()
        .filter(|l| l.starts_with("event=reply "))
        .collect();
    assert_eq!(replies.len(), 3, "{}", r.stdout);
    for (i, l) in replies.iter().enumerate() {
        assert_eq!(
            field(l, "id"),
            Some(format!("MSG{:05}", i + 1).as_str()),
            "{l}"
        );
        assert_eq!(field(l, "ack"), Some("AA"), "{l}");
    }
    assert_eq!(
        r.lines().last().copied(),
        Some("event=summary sent=3 replied=3 failed=0 resends=0 unexpected=0 rejected=0")
    );
}

#[test]
fn listen_and_send_over_tls_without_client_certificates() {
    let pki = Pki::new("plain-auth");
    let (mut listen, addr) = listen_tls(&pki, &[]);
    let r = send_tls(addr, &pki.path("ca.pem"), &[]);
    assert_all_acked(&r);
    // The client's view: the server's first name (its IP SAN comes after
    // the DNS SAN engine.example).
    assert_tls_line(&r, "engine.example");
    let connected = listen.expect_line(|l| l.starts_with("event=connected "), WITHIN);
    let peer = field(&connected, "peer").expect("peer").to_string();
    let tls = listen.expect_line(|l| l.starts_with("event=tls "), WITHIN);
    assert_eq!(field(&tls, "peer"), Some(peer.as_str()), "{tls}");
    assert_eq!(field(&tls, "version"), Some("TLSv1_3"), "{tls}");
    assert_eq!(
        field(&tls, "peer_identity"),
        Some("-"),
        "no client certificate: {tls}"
    );
    for n in 1..=3 {
        let m = listen.expect_line(|l| l.starts_with("event=message "), WITHIN);
        assert_eq!(field(&m, "id"), Some(format!("MSG{n:05}").as_str()), "{m}");
    }
    listen.expect_line(
        |l| l == format!("event=closed peer={peer} reason=PeerClosed"),
        WITHIN,
    );
}

#[test]
fn listen_and_send_over_tls_with_client_certificates() {
    let pki = Pki::new("mutual");
    let ca = pki.path("ca.pem");
    let (mut listen, addr) = listen_tls(&pki, &["--tls-ca", &ca, "--tls-client-auth", "required"]);
    let r = send_tls(
        addr,
        &ca,
        &[
            "--tls-cert",
            &pki.path("client.pem"),
            "--tls-key",
            &pki.path("client-key.pem"),
            "--tls-server-name",
            "engine.example",
        ],
    );
    assert_all_acked(&r);
    assert_tls_line(&r, "engine.example");
    let tls = listen.expect_line(|l| l.starts_with("event=tls "), WITHIN);
    assert_eq!(
        field(&tls, "peer_identity"),
        Some("device-1.example"),
        "{tls}"
    );

    // Required: a client without a certificate is refused, by name, on both
    // sides, and its send fails.
    let r = send_tls(addr, &ca, &[]);
    assert_eq!(r.status.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    // (The first client's own close comes first.)
    let closed = expect_no_certificate_close(&mut listen);
    assert!(field(&closed, "detail").is_some(), "{closed}");
    assert!(
        r.lines().iter().any(|l| l.starts_with("event=closed ")
            && field(l, "reason") == Some("TlsNoCertificate")
            && field(l, "detail").is_some()),
        "{}",
        r.stdout
    );
}

#[test]
fn a_server_certificate_from_another_ca_is_tls_unknown_ca_and_send_fails() {
    let pki = Pki::new("wrong-ca");
    let (mut listen, addr) = listen_tls(&pki, &[]);
    let r = send_tls(addr, &pki.path("other-ca.pem"), &[]);
    assert_eq!(r.status.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    let closed = r.line_starting("event=closed ").to_string();
    assert_eq!(field(&closed, "reason"), Some("TlsUnknownCa"), "{closed}");
    assert_eq!(
        field(&closed, "peer"),
        Some(addr.to_string().as_str()),
        "{closed}"
    );
    // rustls's text, as one value.
    let detail = field(&closed, "detail").expect("detail");
    assert!(detail.contains("UnknownIssuer"), "{closed}");
    let error = r.line_starting("event=error ").to_string();
    assert_eq!(field(&error, "n"), Some("1"), "{error}");
    assert!(!r.stdout.contains("event=reply "), "{}", r.stdout);
    assert!(!r.stdout.contains("event=tls "), "{}", r.stdout);
    // The server saw the client's alert.
    let closed = listen.expect_line(|l| l.starts_with("event=closed "), WITHIN);
    assert_eq!(field(&closed, "reason"), Some("TlsUnknownCa"), "{closed}");
}

#[test]
fn tls_allow_peer_refuses_a_client_whose_identity_is_not_listed() {
    let pki = Pki::new("allow");
    let ca = pki.path("ca.pem");
    let client = [
        "--tls-cert",
        &pki.path("client.pem"),
        "--tls-key",
        &pki.path("client-key.pem"),
    ]
    .map(String::from);
    let (mut listen, addr) = listen_tls(
        &pki,
        &["--tls-ca", &ca, "--tls-allow-peer", "device-2.example"],
    );
    let r = send_tls(addr, &ca, &strs(&client));
    assert_eq!(r.status.code(), Some(1), "{}\n{}", r.stdout, r.stderr);
    assert!(!r.stdout.contains("event=reply "), "{}", r.stdout);
    let closed = listen.expect_line(|l| l.starts_with("event=closed "), WITHIN);
    assert_eq!(
        field(&closed, "reason"),
        Some("TlsPeerNotAllowed"),
        "{closed}"
    );
    assert!(!listen
        .seen()
        .iter()
        .any(|l| l.starts_with("event=message ")));

    // The same client, listed by its CN, is served.
    let (mut listen, addr) = listen_tls(&pki, &["--tls-ca", &ca, "--tls-allow-peer", "device-1"]);
    let r = send_tls(addr, &ca, &strs(&client));
    assert_all_acked(&r);
    let tls = listen.expect_line(|l| l.starts_with("event=tls "), WITHIN);
    assert_eq!(
        field(&tls, "peer_identity"),
        Some("device-1.example"),
        "{tls}"
    );
}

#[test]
fn relay_over_tls_on_both_sides_end_to_end() {
    let pki = Pki::new("relay");
    let ca = pki.path("ca.pem");
    // The upstream: a TLS listener that wants the relay's client certificate.
    let (mut upstream, up_addr) = listen_tls(
        &pki,
        &["--tls-ca", &ca, "--tls-allow-peer", "device-1.example"],
    );
    let up = up_addr.to_string();
    let mut args = vec![
        "relay".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--upstream".into(),
        up,
        "--upstream-tls".into(),
        "--upstream-tls-ca".into(),
        ca.clone(),
        "--upstream-tls-server-name".into(),
        "engine.example".into(),
        "--upstream-tls-cert".into(),
        pki.path("client.pem"),
        "--upstream-tls-key".into(),
        pki.path("client-key.pem"),
    ];
    args.extend(pki.server_flags());
    let (mut relay, relay_addr) = Proc::listen_cmd(mooring(&strs(&args)));
    let r = send_tls(relay_addr, &ca, &[]);
    assert_all_acked(&r);
    assert_tls_line(&r, "engine.example");
    // The relay: the device's handshake, the upstream's (with the upstream's
    // address and name), and every message acknowledged by the upstream.
    let device = relay.expect_line(
        |l| l.starts_with("event=tls ") && field(l, "peer") != Some(up_addr.to_string().as_str()),
        WITHIN,
    );
    assert_eq!(field(&device, "peer_identity"), Some("-"), "{device}");
    for n in 1..=3 {
        let acked = relay.expect_line(|l| l.starts_with("event=acked "), WITHIN);
        assert_eq!(
            field(&acked, "id"),
            Some(format!("MSG{n:05}").as_str()),
            "{acked}"
        );
    }
    let up_tls = relay
        .seen()
        .iter()
        .find(|l| {
            l.starts_with("event=tls ") && field(l, "peer") == Some(up_addr.to_string().as_str())
        })
        .unwrap_or_else(|| panic!("no upstream event=tls:\n{}", relay.seen().join("\n")))
        .clone();
    assert_eq!(
        field(&up_tls, "peer_identity"),
        Some("engine.example"),
        "{up_tls}"
    );
    // The upstream saw the relay's certificate.
    let tls = upstream.expect_line(|l| l.starts_with("event=tls "), WITHIN);
    assert_eq!(
        field(&tls, "peer_identity"),
        Some("device-1.example"),
        "{tls}"
    );
    for n in 1..=3 {
        let m = upstream.expect_line(|l| l.starts_with("event=message "), WITHIN);
        assert_eq!(field(&m, "id"), Some(format!("MSG{n:05}").as_str()), "{m}");
    }
}

#[test]
fn bad_tls_files_exit_2_naming_the_flag_and_file() {
    let pki = Pki::new("files");
    let missing = pki.path("missing.pem");
    let r = run(
        mooring(&[
            "listen",
            "--tls-cert",
            &missing,
            "--tls-key",
            &pki.path("server-key.pem"),
        ]),
        None,
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(
        r.stderr
            .starts_with(&format!("error: --tls-cert {missing}: cannot read")),
        "{}",
        r.stderr
    );
    assert!(r.stdout.is_empty(), "nothing bound: {}", r.stdout);
    // A key that is not PEM.
    let r = run(
        mooring(&[
            "send",
            "127.0.0.1:1",
            "--tls",
            "--tls-ca",
            &pki.path("ca.pem"),
            "--tls-cert",
            &pki.path("client.pem"),
            "--tls-key",
            &pki.path("client.pem"),
        ]),
        None,
    );
    assert_eq!(r.status.code(), Some(2), "{}", r.stderr);
    assert!(r.stderr.contains("--tls-key "), "{}", r.stderr);
    assert!(r.stderr.contains("no usable private key"), "{}", r.stderr);
}

#[test]
fn relay_names_tls_failures_on_both_sides_with_their_detail() {
    let pki = Pki::new("relay-fail");
    let (_upstream, up_addr) = listen_tls(&pki, &[]);
    // The relay trusts another CA for its upstream: every dial fails.
    let mut args = vec![
        "relay".to_string(),
        "--listen".into(),
        "127.0.0.1:0".into(),
        "--upstream".into(),
        up_addr.to_string(),
        "--upstream-tls".into(),
        "--upstream-tls-ca".into(),
        pki.path("other-ca.pem"),
    ];
    args.extend(pki.server_flags());
    let (mut relay, relay_addr) = Proc::listen_cmd(mooring(&strs(&args)));
    let up = relay.expect_line(
        |l| {
            l.starts_with("event=closed ") && field(l, "peer") == Some(up_addr.to_string().as_str())
        },
        WITHIN,
    );
    assert_eq!(field(&up, "reason"), Some("TlsUnknownCa"), "{up}");
    assert!(
        field(&up, "detail").is_some_and(|d| d.contains("UnknownIssuer")),
        "{up}"
    );
    relay.expect_line(
        |l| l.starts_with("event=upstream ") && field(l, "reason") == Some("TlsUnknownCa"),
        WITHIN,
    );
    // A device that trusts another CA refuses the relay's certificate: the
    // relay's close line for it names the alert it got.
    let r = run(
        mooring(&[
            "send",
            &relay_addr.to_string(),
            SAMPLE,
            "--tls",
            "--tls-ca",
            &pki.path("other-ca.pem"),
        ]),
        None,
    );
    assert_eq!(r.status.code(), Some(1), "{}", r.stdout);
    let device = relay.expect_line(
        |l| {
            l.starts_with("event=closed ") && field(l, "peer") != Some(up_addr.to_string().as_str())
        },
        WITHIN,
    );
    assert_eq!(field(&device, "reason"), Some("TlsUnknownCa"), "{device}");
    assert!(
        field(&device, "detail").is_some_and(|d| d.contains("UnknownCA")),
        "{device}"
    );
}

//! TLS through the node, over real loopback sockets: both framings, both
//! protocols, sessions resumed across cuts, every failure with its named
//! reason (and rustls's text in `Event::TlsFailed`), truncation, the
//! handshake timeout, and sessions bound to the client certificate's identity.
//! Certificates are generated at test time (tests/tls_pki). Every loop is
//! bounded by `LIMIT`.
#![cfg(feature = "tls")]

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mooring::internals::wire::{self, Greeting, Msg};
use mooring::session::{Backoff, SessionConfig};
use mooring::tls::{
    ClientAuth, TlsClientConfig, TlsLink, TlsLinkSizes, TlsServerConfig, TlsVersion, TlsVersions,
};
use mooring::{
    CloseReason, ConnectConfig, Event, Framing, LinkId, ListenConfig, LivenessConfig, Node,
    NodeConfig, Protocol, SessionNote,
};

#[path = "mllp/mod.rs"]
mod mllp_wire;
mod tls_pki;
use mllp_wire::{mllp, take_mllp};
use tls_pki::*;

const LIMIT: Duration = Duration::from_secs(20);

/// An event copied out of a node.
#[derive(Clone, Debug)]
enum Rec {
    Connected(LinkId),
    Tls {
        version: &'static str,
        suite: String,
        identity: Option<String>,
    },
    TlsFailed {
        reason: CloseReason,
        detail: String,
    },
    Message(Vec<u8>),
    SessionMessage(Vec<u8>),
    Established {
        resumed: bool,
    },
    Closed(CloseReason),
    Other,
}

/// A node, what it reported, and whether it echoes what it receives.
struct Side {
    node: Node,
    recs: Vec<Rec>,
    echo: bool,
}

impl Side {
    fn new(framing: Framing, echo: bool) -> Side {
        let cfg = NodeConfig {
            framing,
            max_sessions: 4,
            ..NodeConfig::default()
        };
        Side {
            node: Node::new(cfg).unwrap(),
            recs: Vec::new(),
            echo,
        }
    }

    fn turn(&mut self) {
        self.node.poll(Some(Duration::from_millis(1))).unwrap();
        while let Some(ev) = self.node.next_event() {
            let (rec, reply) = match ev {
                Event::Connected { link, .. } => (Rec::Connected(link), None),
                Event::TlsEstablished { handshake, .. } => (
                    Rec::Tls {
                        version: handshake.version_name(),
                        suite: handshake.suite.clone(),
                        identity: handshake.peer.as_ref().map(|p| p.to_string()),
                    },
                    None,
                ),
                Event::TlsFailed { error, .. } => (
                    Rec::TlsFailed {
                        reason: error.reason.into(),
                        detail: error.detail.clone(),
                    },
                    None,
                ),
                Event::Message { link, payload } => {
                    (Rec::Message(payload.to_vec()), Some((Some(link), None)))
                }
                Event::SessionMessage { session, payload } => (
                    Rec::SessionMessage(payload.to_vec()),
                    Some((None, Some((session, payload.to_vec())))),
                ),
                Event::Session {
                    note: SessionNote::Established { resumed, .. },
                    ..
                } => (Rec::Established { resumed }, None),
                Event::Closed { reason, .. } => (Rec::Closed(reason), None),
                _ => (Rec::Other, None),
            };
            self.recs.push(rec);
            match reply {
                Some((Some(link), _)) if self.echo => self.node.forward(link).unwrap(),
                Some((_, Some((session, p)))) if self.echo => {
                    self.node.session_send(session, &p).unwrap();
                }
                _ => {}
            }
        }
    }

    fn closes(&self) -> Vec<CloseReason> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Closed(reason) => Some(*reason),
                _ => None,
            })
            .collect()
    }

    fn messages(&self) -> Vec<Vec<u8>> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Message(p) | Rec::SessionMessage(p) => Some(p.clone()),
                _ => None,
            })
            .collect()
    }

    fn handshakes(&self) -> Vec<(&'static str, Option<String>)> {
        self.recs
            .iter()
            .filter_map(|r| match r {
                Rec::Tls {
                    version, identity, ..
                } => Some((*version, identity.clone())),
                _ => None,
            })
            .collect()
    }
}

/// Turns both sides until `done` holds; false when `LIMIT` passed first.
fn drive(a: &mut Side, b: &mut Side, mut done: impl FnMut(&Side, &Side) -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        a.turn();
        b.turn();
        if done(a, b) {
            return true;
        }
    }
    false
}

fn listen(side: &mut Side, tls: TlsServerConfig, liveness: LivenessConfig) -> SocketAddr {
    let session = (liveness.protocol == Protocol::Mooring).then(session_cfg);
    let l = side
        .node
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                tls: Some(tls),
                liveness,
                session,
                ..ListenConfig::default()
            },
        )
        .unwrap();
    side.node.local_addr(l).unwrap()
}

fn connect_cfg(tls: TlsClientConfig, liveness: LivenessConfig) -> ConnectConfig {
    let session = (liveness.protocol == Protocol::Mooring).then(session_cfg);
    ConnectConfig {
        tls: Some(tls),
        liveness,
        session,
        backoff: Backoff {
            min: Duration::from_millis(20),
            max: Duration::from_millis(100),
            max_attempts: None,
        },
        ..ConnectConfig::default()
    }
}

fn mooring() -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        ..LivenessConfig::default()
    }
}

fn session_cfg() -> SessionConfig {
    SessionConfig {
        max_depth: 64,
        max_depth_disconnected: 256,
        max_bytes: 512 * 1024,
        reconnect_timeout: Duration::from_secs(30),
        ..SessionConfig::default()
    }
}

/// Printable payloads (no MLLP block bytes): small, larger than a working
/// buffer (16 KiB) and larger than a TLS record many times over.
fn payloads() -> Vec<Vec<u8>> {
    let mut v: Vec<Vec<u8>> = (0..20)
        .map(|i| format!("MSH|^~\\&|LAB|A|EHR|B|20261201||ADT^A01|M{i}|P|2.5\r").into_bytes())
        .collect();
    for (i, len) in [(20, 40_000), (21, 200_000)] {
        let mut p = format!("BIG{i}|").into_bytes();
        p.extend((0..len).map(|k| b'a' + (k % 26) as u8));
        v.push(p);
    }
    v.push(b"last".to_vec());
    v
}

#[test]
fn raw_links_carry_messages_both_ways_over_tls_in_both_framings_and_versions() {
    let p = pki();
    for framing in [Framing::Mllp, Framing::Len32] {
        for max in [TlsVersion::Tls13, TlsVersion::Tls12] {
            let mut server = Side::new(framing, true);
            let mut client = Side::new(framing, false);
            let addr = listen(
                &mut server,
                server_cfg(&p, ClientAuth::Required),
                LivenessConfig::default(),
            );
            let mut tls = client_cfg(&p, true);
            tls.versions = TlsVersions {
                min: TlsVersion::Tls12,
                max,
            };
            let link = client
                .node
                .connect(addr, &connect_cfg(tls, LivenessConfig::default()))
                .unwrap();
            let sent = payloads();
            // Connected comes with TCP; frames queued before the TLS
            // handshake completes wait for it.
            assert!(drive(&mut server, &mut client, |_, c| c
                .recs
                .iter()
                .any(|r| matches!(r, Rec::Connected(_)))));
            for m in &sent {
                client.node.send(link, m).unwrap();
            }
            let n = sent.len();
            assert!(
                drive(&mut server, &mut client, |_, c| c.messages().len() == n),
                "{framing:?} {max:?}: every echo came back; client saw {:?}",
                client.closes()
            );
            assert_eq!(
                server.messages(),
                sent,
                "{framing:?} {max:?}: server got all"
            );
            assert_eq!(
                client.messages(),
                sent,
                "{framing:?} {max:?}: client got all"
            );
            let version = if max == TlsVersion::Tls13 {
                "TLSv1_3"
            } else {
                "TLSv1_2"
            };
            assert_eq!(
                server.handshakes(),
                vec![(version, Some("device-1.example".to_string()))]
            );
            assert_eq!(
                client.handshakes(),
                vec![(version, Some("engine.example".to_string()))]
            );
            assert!(server
                .recs
                .iter()
                .any(|r| matches!(r, Rec::Tls { suite, .. } if suite.starts_with("TLS"))));
            // A graceful close sends close_notify: the peer sees PeerClosed,
            // not a truncation.
            client.node.close(link);
            assert!(drive(&mut server, &mut client, |s, _| !s
                .closes()
                .is_empty()));
            assert_eq!(server.closes(), vec![CloseReason::PeerClosed]);
            assert_eq!(client.closes(), vec![CloseReason::LocalClose]);
        }
    }
}

#[test]
fn mooring_sessions_over_tls_resume_across_cuts_with_every_message_once_in_order() {
    let p = pki();
    for framing in [Framing::Mllp, Framing::Len32] {
        let mut server = Side::new(framing, true);
        let mut client = Side::new(framing, false);
        let addr = listen(&mut server, server_cfg(&p, ClientAuth::Required), mooring());
        let id = client
            .node
            .open_session(addr, &connect_cfg(client_cfg(&p, true), mooring()))
            .unwrap();
        let total = 120u32;
        let mut next = 1u32;
        let mut cuts = 0;
        let start = Instant::now();
        while client.messages().len() < total as usize && start.elapsed() < LIMIT {
            while next <= total && next <= (client.messages().len() as u32 + 30) {
                match client
                    .node
                    .session_send(id, format!("MSG{next}").as_bytes())
                {
                    Ok(_) => next += 1,
                    Err(_) => break,
                }
            }
            server.turn();
            client.turn();
            // Cut the server's link at 40 and 80 messages received.
            if cuts < 2 && server.messages().len() > 40 * (cuts + 1) {
                let link = server.recs.iter().rev().find_map(|r| match r {
                    Rec::Connected(l) => Some(*l),
                    _ => None,
                });
                if let Some(link) = link.filter(|&l| server.node.is_open(l)) {
                    server.node.close(link);
                    cuts += 1;
                }
            }
        }
        let expected: Vec<Vec<u8>> = (1..=total)
            .map(|n| format!("MSG{n}").into_bytes())
            .collect();
        assert_eq!(cuts, 2, "{framing:?}");
        assert_eq!(server.messages(), expected, "{framing:?}: once, in order");
        assert_eq!(
            client.messages(),
            expected,
            "{framing:?}: echoes once, in order"
        );
        let resumed = server
            .recs
            .iter()
            .filter(|r| matches!(r, Rec::Established { resumed: true }))
            .count();
        assert!(
            resumed >= 2,
            "{framing:?}: each cut was resumed ({resumed})"
        );
        assert!(server.handshakes().len() >= 3, "a TLS handshake per link");
    }
}

/// Connects a TLS client node to a TLS server node and drives both until
/// each has closed its link; returns (server's, client's) closes and the
/// TLS failures both reported, in order.
fn failing(
    server_tls: TlsServerConfig,
    client_tls: TlsClientConfig,
) -> (Vec<CloseReason>, Vec<CloseReason>, Vec<Rec>, Vec<Rec>) {
    let mut server = Side::new(Framing::Mllp, true);
    let mut client = Side::new(Framing::Mllp, false);
    let addr = listen(&mut server, server_tls, LivenessConfig::default());
    let link = client
        .node
        .connect(addr, &connect_cfg(client_tls, LivenessConfig::default()))
        .unwrap();
    let start = Instant::now();
    while !client.node.is_open(link) && start.elapsed() < LIMIT {
        client.turn();
    }
    // Queued before the handshake: it never gets through.
    client.node.send(link, b"hello").unwrap();
    assert!(
        drive(&mut server, &mut client, |s, c| !s.closes().is_empty()
            && !c.closes().is_empty()),
        "both ends closed: server {:?}, client {:?}",
        server.recs,
        client.recs
    );
    assert!(server.messages().is_empty(), "nothing got through");
    (server.closes(), client.closes(), server.recs, client.recs)
}

/// The TLS failure reported just before `reason`'s close, with rustls's text.
fn failure_detail(recs: &[Rec], reason: CloseReason) -> String {
    let at = recs
        .iter()
        .position(|r| matches!(r, Rec::Closed(c) if *c == reason))
        .unwrap_or_else(|| panic!("no close {reason} in {recs:?}"));
    match recs.get(at.wrapping_sub(1)) {
        Some(Rec::TlsFailed {
            reason: r, detail, ..
        }) if *r == reason => detail.clone(),
        other => panic!("no TlsFailed before the close {reason}: {other:?} in {recs:?}"),
    }
}

#[test]
fn every_tls_failure_closes_with_its_named_reason_and_rustls_text() {
    let p = pki();
    let other_ca = Ca::new("another CA");
    let foreign = other_ca.leaf(&["127.0.0.1", "engine.example"], "engine", false);
    let expired = p.ca.leaf(&["127.0.0.1", "engine.example"], "engine", true);
    let with_leaf = |l: &Leaf| TlsServerConfig::new(l.cert(), l.key());

    // Unknown CA: the client names it, the server hears the client's alert.
    let (s, c, _, crecs) = failing(with_leaf(&foreign), client_cfg(&p, false));
    assert_eq!(c, vec![CloseReason::TlsUnknownCa]);
    assert_eq!(s, vec![CloseReason::TlsUnknownCa]);
    assert!(failure_detail(&crecs, CloseReason::TlsUnknownCa).contains("UnknownIssuer"));

    // Expired.
    let (s, c, _, crecs) = failing(with_leaf(&expired), client_cfg(&p, false));
    assert_eq!(c, vec![CloseReason::TlsExpired]);
    assert_eq!(s.len(), 1);
    assert!(!failure_detail(&crecs, CloseReason::TlsExpired).is_empty());

    // Wrong name.
    let mut wrong = client_cfg(&p, false);
    wrong.server_name = Some("other.example".into());
    let (_, c, _, crecs) = failing(with_leaf(&p.server), wrong);
    assert_eq!(c, vec![CloseReason::TlsNameMismatch]);
    assert!(!failure_detail(&crecs, CloseReason::TlsNameMismatch).is_empty());

    // No client certificate where one is required.
    let (s, _, srecs, _) = failing(server_cfg(&p, ClientAuth::Required), client_cfg(&p, false));
    assert_eq!(s, vec![CloseReason::TlsNoCertificate]);
    assert!(!failure_detail(&srecs, CloseReason::TlsNoCertificate).is_empty());

    // A client certificate from another CA.
    let mut stranger = client_cfg(&p, false);
    let leaf = other_ca.leaf(&["device-1.example"], "device-1", false);
    stranger.client_cert = Some(leaf.cert());
    stranger.client_key = Some(leaf.key());
    let (s, _, _, _) = failing(server_cfg(&p, ClientAuth::Required), stranger);
    assert_eq!(s, vec![CloseReason::TlsUnknownCa]);

    // A peer not on the allow-list: refused after the handshake.
    let mut allow = server_cfg(&p, ClientAuth::Required);
    allow.allow_peers = vec!["device-2.example".into()];
    let (s, _, srecs, _) = failing(allow, client_cfg(&p, true));
    assert_eq!(s, vec![CloseReason::TlsPeerNotAllowed]);
    assert!(failure_detail(&srecs, CloseReason::TlsPeerNotAllowed).contains("device-1.example"));

    // No version in common.
    let mut only13 = server_cfg(&p, ClientAuth::None);
    only13.versions.min = TlsVersion::Tls13;
    let mut only12 = client_cfg(&p, false);
    only12.versions.max = TlsVersion::Tls12;
    let (s, c, _, _) = failing(only13, only12);
    assert_eq!(s, vec![CloseReason::TlsProtocolVersion]);
    assert_eq!(c, vec![CloseReason::TlsProtocolVersion]);
}

#[test]
fn unusable_tls_settings_are_a_setup_error_with_text() {
    let p = pki();
    let mut side = Side::new(Framing::Mllp, false);
    let mut bad = server_cfg(&p, ClientAuth::None);
    bad.key = mooring::tls::PemSource::File("/nonexistent/mooring-test.key".into());
    let e = side
        .node
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                tls: Some(bad),
                ..ListenConfig::default()
            },
        )
        .unwrap_err();
    assert!(matches!(e, mooring::SetupError::Tls(_)), "{e:?}");
    assert!(
        e.to_string().contains("/nonexistent/mooring-test.key"),
        "{e}"
    );
    let mut no_ca = server_cfg(&p, ClientAuth::Required);
    no_ca.client_ca = None;
    let e = side
        .node
        .listen(
            "127.0.0.1:0".parse().unwrap(),
            ListenConfig {
                tls: Some(no_ca),
                ..ListenConfig::default()
            },
        )
        .unwrap_err();
    assert!(e.to_string().contains("CA"), "{e}");
}

/// A TLS client driven by hand over a blocking socket (short read timeouts,
/// so one thread can turn a node in between): it can stop anywhere, e.g. in
/// the middle of a frame, and speak the mooring protocol byte by byte.
struct RawTls {
    sock: TcpStream,
    tls: TlsLink,
    plain: Vec<u8>,
    eof: bool,
}

impl RawTls {
    fn connect(addr: SocketAddr, cfg: &TlsClientConfig) -> RawTls {
        let sock = TcpStream::connect(addr).unwrap();
        sock.set_read_timeout(Some(Duration::from_millis(1)))
            .unwrap();
        sock.set_nodelay(true).unwrap();
        let tls = TlsLink::client(&cfg.build().unwrap(), addr, TlsLinkSizes::default()).unwrap();
        RawTls {
            sock,
            tls,
            plain: Vec::new(),
            eof: false,
        }
    }

    /// Writes what TLS has, reads what the socket has (1 ms at most).
    fn step(&mut self) {
        let out = self.tls.ciphertext().to_vec();
        if !out.is_empty() {
            self.sock.write_all(&out).unwrap();
            self.tls.ciphertext_written(out.len()).unwrap();
        }
        let mut buf = [0u8; 16 * 1024];
        match self.sock.read(&mut buf) {
            Ok(0) => self.eof = true,
            Ok(n) => {
                let mut off = 0;
                while off < n {
                    match self.tls.feed(&buf[off..n]) {
                        Ok(k) => off += k,
                        Err(_) => {
                            self.eof = true;
                            return;
                        }
                    }
                    self.take_plaintext();
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => self.eof = true,
        }
        self.take_plaintext();
    }

    fn take_plaintext(&mut self) {
        let p = self.tls.plaintext().to_vec();
        self.plain.extend_from_slice(&p);
        self.tls.consume_plaintext(p.len()).unwrap_or(());
    }

    fn send(&mut self, bytes: &[u8]) {
        let mut off = 0;
        let start = Instant::now();
        while off < bytes.len() && start.elapsed() < LIMIT {
            off += self.tls.write_plaintext(&bytes[off..]).unwrap();
            self.step();
        }
        self.step();
    }

    /// The next whole MLLP frame's payload received, if one is complete.
    fn frame(&mut self) -> Option<Vec<u8>> {
        take_mllp(&mut self.plain)
    }
}

/// Turns `server` and steps `raw` until `done`; false after `LIMIT`.
fn drive_raw(
    server: &mut Side,
    raw: &mut RawTls,
    mut done: impl FnMut(&Side, &mut RawTls) -> bool,
) -> bool {
    let start = Instant::now();
    while start.elapsed() < LIMIT {
        server.turn();
        raw.step();
        if done(server, raw) {
            return true;
        }
    }
    false
}

#[test]
fn eof_without_close_notify_mid_frame_is_truncation_and_between_frames_is_not() {
    let p = pki();
    for half in [true, false] {
        let mut server = Side::new(Framing::Mllp, true);
        let addr = listen(
            &mut server,
            server_cfg(&p, ClientAuth::None),
            LivenessConfig::default(),
        );
        let mut raw = RawTls::connect(addr, &client_cfg(&p, false));
        assert!(drive_raw(&mut server, &mut raw, |_, r| !r
            .tls
            .is_handshaking()));
        let frame = mllp(b"MSH|^~\\&|whole");
        raw.send(&frame);
        assert!(
            drive_raw(&mut server, &mut raw, |_, r| r.frame().is_some()),
            "echoed"
        );
        if half {
            raw.send(&frame[..frame.len() / 2]);
        }
        // TCP ends with no close_notify.
        raw.sock.shutdown(std::net::Shutdown::Both).unwrap();
        let start = Instant::now();
        while server.closes().is_empty() && start.elapsed() < LIMIT {
            server.turn();
        }
        let want = if half {
            CloseReason::TlsTruncated
        } else {
            CloseReason::PeerClosed
        };
        assert_eq!(server.closes(), vec![want], "half a frame: {half}");
        if half {
            assert!(failure_detail(&server.recs, want).contains("inside a frame"));
        }
    }
}

#[test]
fn a_client_that_connects_and_says_nothing_meets_the_handshake_timeout() {
    let p = pki();
    let mut server = Side::new(Framing::Mllp, false);
    let mut tls = server_cfg(&p, ClientAuth::None);
    tls.handshake_timeout = Duration::from_millis(300);
    let addr = listen(&mut server, tls, LivenessConfig::default());
    let start = Instant::now();
    let _silent = TcpStream::connect(addr).unwrap();
    while server.closes().is_empty() && start.elapsed() < LIMIT {
        server.turn();
    }
    assert_eq!(server.closes(), vec![CloseReason::TlsHandshakeTimeout]);
    // Not before its time (the node's clock has millisecond resolution).
    assert!(
        start.elapsed() >= Duration::from_millis(298),
        "{:?}",
        start.elapsed()
    );
    assert!(!failure_detail(&server.recs, CloseReason::TlsHandshakeTimeout).is_empty());
}

/// The mooring protocol's HELLO in an MLLP frame.
fn hello(g: Greeting) -> Vec<u8> {
    let mut b = [0u8; wire::MAX_CONTROL];
    let n = wire::encode(&Msg::Hello(g), &mut b).unwrap();
    mllp(&b[..n])
}

/// Sends HELLO on a fresh TLS link as `cfg`'s identity; the server's WELCOME,
/// or the reason it closed the link with instead.
fn say_hello(
    server: &mut Side,
    addr: SocketAddr,
    cfg: &TlsClientConfig,
    g: Greeting,
) -> Result<Greeting, CloseReason> {
    let closed_before = server.closes().len();
    let mut raw = RawTls::connect(addr, cfg);
    drive_raw(server, &mut raw, |_, r| !r.tls.is_handshaking() || r.eof);
    raw.send(&hello(g));
    let mut welcome = None;
    drive_raw(server, &mut raw, |s, r| {
        if let Some(f) = r.frame() {
            if let Ok(Msg::Welcome(w)) = wire::decode(&f) {
                welcome = Some(w);
            }
        }
        welcome.is_some() || s.closes().len() > closed_before
    });
    match welcome {
        Some(w) => {
            // Leave: the session waits for its resume.
            raw.tls.close().unwrap();
            raw.step();
            let start = Instant::now();
            while server.closes().len() == closed_before && start.elapsed() < LIMIT {
                server.turn();
            }
            Ok(w)
        }
        None => Err(*server.closes().last().expect("a close")),
    }
}

#[test]
fn a_session_resumes_only_for_the_client_identity_that_created_it() {
    let p = pki();
    let mut server = Side::new(Framing::Mllp, false);
    let addr = listen(&mut server, server_cfg(&p, ClientAuth::Required), mooring());
    let device1 = client_cfg(&p, true);
    let mut device2 = client_cfg(&p, false);
    let leaf2 = p.ca.leaf(&["device-2.example"], "device-2", false);
    device2.client_cert = Some(leaf2.cert());
    device2.client_key = Some(leaf2.key());

    let w = say_hello(&mut server, addr, &device1, Greeting::new_session()).unwrap();
    assert_ne!(w.session, 0);
    let resume = Greeting {
        session: w.session,
        token: w.token,
        ..Greeting::new_session()
    };
    // The right token, captured, from another (authenticated) identity.
    assert_eq!(
        say_hello(&mut server, addr, &device2, resume),
        Err(CloseReason::BadToken)
    );
    assert_eq!(server.node.stats().bad_tokens, 1);
    // The identity that created it resumes it.
    let again = say_hello(&mut server, addr, &device1, resume).unwrap();
    assert_eq!(again.session, w.session);
    assert!(server
        .recs
        .iter()
        .any(|r| matches!(r, Rec::Established { resumed: true })));
}

#[test]
fn server_and_client_convenience_types_carry_tls_through_their_configs() {
    use mooring::{hl7, Client, ClientConfig, RequestError, Server};
    let p = pki();
    let mut server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig::default(),
        ListenConfig {
            tls: Some(server_cfg(&p, ClientAuth::Required)),
            ..ListenConfig::default()
        },
    )
    .unwrap();
    let addr = server.local_addr();
    let good = client_cfg(&p, true);
    let mut stranger = client_cfg(&p, true);
    stranger.ca = Ca::new("another CA").pem();
    let client = std::thread::spawn(move || {
        let config = |tls| ClientConfig {
            connect: ConnectConfig {
                tls: Some(tls),
                ..ConnectConfig::default()
            },
            ..ClientConfig::default()
        };
        let mut c = Client::new(addr, config(good)).unwrap();
        let reply = c
            .request(b"MSH|^~\\&|LAB|A|EHR|B|20261201||ADT^A01|MSG1|P|2.5\r")
            .map(|r| hl7::ack_code(r).map(<[u8]>::to_vec));
        let mut s = Client::new(addr, config(stranger)).unwrap();
        let refused = s
            .request(b"MSH|^~\\&|LAB|A|EHR|B|20261201||ADT^A01|MSG2|P|2.5\r")
            .err();
        (reply, refused)
    });
    let start = Instant::now();
    while !client.is_finished() && start.elapsed() < LIMIT {
        server
            .serve(Some(Duration::from_millis(5)), |ev, reply| {
                if let Event::Message { payload, .. } = ev {
                    reply.write_with(|buf| {
                        hl7::build_ack(payload, hl7::AckCode::Accept, b"20261201000000", buf)
                    });
                }
            })
            .unwrap();
    }
    let (reply, refused) = client.join().unwrap();
    assert_eq!(reply, Ok(Some(b"AA".to_vec())));
    let reason = match refused {
        Some(RequestError::Closed(r))
        | Some(RequestError::IncompleteResponse { reason: r, .. }) => r,
        other => panic!("refused with {other:?}"),
    };
    assert_eq!(reason, CloseReason::TlsUnknownCa);
}

#[test]
fn eof_in_the_middle_of_the_handshake_is_truncation() {
    let p = pki();
    let mut server = Side::new(Framing::Mllp, false);
    let addr = listen(
        &mut server,
        server_cfg(&p, ClientAuth::None),
        LivenessConfig::default(),
    );
    // Half a ClientHello, then the end of the stream.
    let hello = TlsLink::client(
        &client_cfg(&p, false).build().unwrap(),
        addr,
        TlsLinkSizes::default(),
    )
    .unwrap();
    let half = &hello.ciphertext()[..hello.ciphertext().len() / 2];
    let mut sock = TcpStream::connect(addr).unwrap();
    sock.write_all(half).unwrap();
    sock.shutdown(std::net::Shutdown::Write).unwrap();
    let start = Instant::now();
    while server.closes().is_empty() && start.elapsed() < LIMIT {
        server.turn();
    }
    assert_eq!(server.closes(), vec![CloseReason::TlsTruncated]);
    assert!(failure_detail(&server.recs, CloseReason::TlsTruncated).contains("handshake"));
}

/// A minimal ClientHello as a TLS 1.0 (`minor` 1) or 1.1 (`minor` 2) client
/// sends it: that version in the record and the hello, two CBC suites, null
/// compression, and no extensions (no signature_algorithms, no
/// supported_versions: both are TLS 1.2+).
fn old_client_hello(minor: u8) -> Vec<u8> {
    let mut body = vec![3, minor];
    body.extend_from_slice(&[0x5A; 32]); // random
    body.push(0); // no session id
    body.extend_from_slice(&[0, 4, 0xC0, 0x13, 0x00, 0x2F]); // two suites
    body.extend_from_slice(&[1, 0]); // null compression
    let mut hs = vec![1, 0, 0, body.len() as u8]; // ClientHello
    hs.extend_from_slice(&body);
    let mut rec = vec![0x16, 3, minor, 0, hs.len() as u8]; // handshake record
    rec.extend_from_slice(&hs);
    rec
}

#[test]
fn a_tls_1_0_or_1_1_client_hello_is_refused_as_protocol_version() {
    let p = pki();
    for minor in [1u8, 2] {
        let mut server = Side::new(Framing::Mllp, false);
        let addr = listen(
            &mut server,
            server_cfg(&p, ClientAuth::None),
            LivenessConfig::default(),
        );
        let mut sock = TcpStream::connect(addr).unwrap();
        sock.write_all(&old_client_hello(minor)).unwrap();
        let start = Instant::now();
        while server.closes().is_empty() && start.elapsed() < LIMIT {
            server.turn();
        }
        assert_eq!(
            server.closes(),
            vec![CloseReason::TlsProtocolVersion],
            "TLS 1.{}",
            minor - 1
        );
        assert!(!failure_detail(&server.recs, CloseReason::TlsProtocolVersion).is_empty());
        // The client is told why: a fatal alert record (content type 21).
        sock.set_read_timeout(Some(LIMIT)).unwrap();
        let mut first = [0u8; 1];
        sock.read_exact(&mut first).unwrap();
        assert_eq!(first[0], 21, "an alert record");
    }
}

//! `mooring send --tls` and a dropped [`mooring::Client`] end their TLS link
//! with `close_notify`: a raw TLS server (the crate's `TlsLink` over a std
//! socket, on loopback) answers every MLLP frame with an AA and records
//! whether the peer's `close_notify` arrived before the end of the stream (a
//! bare EOF between frames is accepted by mooring's own node, so only a raw
//! server can tell the two apart).
#![cfg(feature = "tls")]

/// Process helpers shared with the CLI tests.
mod support;

use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener};
use std::path::PathBuf;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mooring::tls::{PemSource, TlsClientConfig, TlsLink, TlsLinkSizes, TlsServerConfig};
use mooring::{Client, ClientConfig, ConnectConfig};
use support::pki::{send_tls, Pki};
use support::WITHIN;

/// How the raw server's one connection ended.
#[derive(Debug, PartialEq, Eq)]
struct Ending {
    /// Frames answered.
    answered: usize,
    /// The peer's `close_notify` arrived before the end of the stream.
    close_notify: bool,
}

/// The HL7 ACK (AA) for `msg`, in an MLLP frame.
fn ack_frame(msg: &[u8]) -> Vec<u8> {
    let text = String::from_utf8_lossy(msg);
    let id = text
        .split('\r')
        .next()
        .and_then(|msh| msh.split('|').nth(9))
        .unwrap_or("");
    let mut f = vec![0x0B];
    f.extend_from_slice(
        format!("MSH|^~\\&|ENG|B|LAB|A|20261201||ACK|{id}|P|2.5\rMSA|AA|{id}\r").as_bytes(),
    );
    f.extend_from_slice(&[0x1C, 0x0D]);
    f
}

/// Serves one TLS connection on a thread: answers each MLLP frame, reads
/// until the stream ends (or `WITHIN` passes), and says how it ended.
fn raw_tls_server(pki: &Pki) -> (SocketAddr, JoinHandle<Ending>) {
    let cfg = TlsServerConfig::new(
        PemSource::File(PathBuf::from(pki.path("server.pem"))),
        PemSource::File(PathBuf::from(pki.path("server-key.pem"))),
    )
    .build()
    .expect("server TLS");
    let listener = TcpListener::bind("127.0.0.1:0").expect("bind");
    let addr = listener.local_addr().expect("addr");
    let h = std::thread::spawn(move || {
        let (mut sock, _) = listener.accept().expect("accept");
        sock.set_read_timeout(Some(Duration::from_millis(10)))
            .expect("timeout");
        let mut tls = TlsLink::server(&cfg, TlsLinkSizes::default()).expect("link");
        let mut plain = Vec::new();
        let mut answered = 0;
        let mut buf = [0u8; 16 * 1024];
        let start = Instant::now();
        while start.elapsed() < WITHIN {
            let out = tls.ciphertext().to_vec();
            if !out.is_empty() {
                if sock.write_all(&out).is_err() {
                    break;
                }
                tls.ciphertext_written(out.len()).expect("written");
            }
            let n = match sock.read(&mut buf) {
                Ok(0) => break,
                Ok(n) => n,
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => 0,
                Err(_) => break,
            };
            let mut off = 0;
            while off < n {
                match tls.feed(&buf[off..n]) {
                    Ok(k) => off += k,
                    Err(e) => panic!("TLS failed: {e}"),
                }
                let p = tls.plaintext().to_vec();
                plain.extend_from_slice(&p);
                tls.consume_plaintext(p.len()).expect("consume");
            }
            while let Some(end) = plain.windows(2).position(|w| w == [0x1C, 0x0D]) {
                let frame: Vec<u8> = plain.drain(..end + 2).collect();
                let reply = ack_frame(&frame[1..end]);
                let mut at = 0;
                while at < reply.len() {
                    let k = tls.write_plaintext(&reply[at..]).expect("encrypt");
                    assert!(k > 0, "the reply fits the TLS buffers");
                    at += k;
                }
                answered += 1;
            }
        }
        Ending {
            answered,
            close_notify: tls.peer_closed(),
        }
    });
    (addr, h)
}

#[test]
fn mooring_send_tls_ends_its_link_with_close_notify() {
    let pki = Pki::new("send-close-notify");
    let (addr, server) = raw_tls_server(&pki);
    let r = send_tls(addr, &pki.path("ca.pem"), &[]);
    assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
    let ending = server.join().expect("server thread");
    assert_eq!(
        ending,
        Ending {
            answered: 3,
            close_notify: true
        }
    );
}

#[test]
fn a_dropped_client_ends_its_tls_link_with_close_notify() {
    let pki = Pki::new("client-close-notify");
    let (addr, server) = raw_tls_server(&pki);
    let cfg = ClientConfig {
        connect: ConnectConfig {
            tls: Some(TlsClientConfig::new(PemSource::File(PathBuf::from(
                pki.path("ca.pem"),
            )))),
            ..ConnectConfig::default()
        },
        ..ClientConfig::default()
    };
    let mut client = Client::new(addr, cfg).expect("client");
    let reply = client
        .request(b"MSH|^~\\&|LAB|A|ENG|B|20261201||ADT^A01|C1|P|2.5\r")
        .expect("reply")
        .to_vec();
    assert!(reply.ends_with(b"MSA|AA|C1\r"), "{reply:?}");
    drop(client);
    let ending = server.join().expect("server thread");
    assert_eq!(
        ending,
        Ending {
            answered: 1,
            close_notify: true
        }
    );
}

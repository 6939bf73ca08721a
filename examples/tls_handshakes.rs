//! How many TLS handshakes per second one thread does, in memory (no
//! sockets): a client and a server `TlsLink` pumped against each other, with
//! mutual authentication (P-256 certificates generated at start by rcgen), for
//! TLS 1.3 and TLS 1.2. Also prints one link's buffer bytes.
//!
//! `cargo run --release --example tls_handshakes [SECONDS]` (default 3).

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use mooring::tls::{ClientAuth, TlsLink, TlsLinkSizes, TlsVersion, TlsVersions};

// The tests' certificate generator (rcgen): one CA, a server and a client leaf.
#[path = "../tests/tls_pki/mod.rs"]
mod tls_pki;

fn carry(a: &mut TlsLink, b: &mut TlsLink) {
    while !a.ciphertext().is_empty() {
        let n = b.feed(a.ciphertext()).expect("feed");
        a.ciphertext_written(n).expect("written");
    }
}

fn main() {
    let secs: u64 = std::env::args()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(3);
    let pki = tls_pki::pki();
    let addr: SocketAddr = "127.0.0.1:2575".parse().unwrap();
    for (name, max) in [
        ("TLSv1_3", TlsVersion::Tls13),
        ("TLSv1_2", TlsVersion::Tls12),
    ] {
        let server = tls_pki::server_cfg(&pki, ClientAuth::Required);
        let mut client = tls_pki::client_cfg(&pki, true);
        client.versions = TlsVersions {
            min: TlsVersion::Tls12,
            max,
        };
        let (s_tls, c_tls) = (server.build().unwrap(), client.build().unwrap());
        let start = Instant::now();
        let mut done = 0u64;
        while start.elapsed() < Duration::from_secs(secs) {
            let mut s = TlsLink::server(&s_tls, TlsLinkSizes::default()).unwrap();
            let mut c = TlsLink::client(&c_tls, addr, TlsLinkSizes::default()).unwrap();
            while s.is_handshaking() || c.is_handshaking() {
                carry(&mut c, &mut s);
                carry(&mut s, &mut c);
            }
            done += 1;
        }
        let per_sec = done as f64 / start.elapsed().as_secs_f64();
        println!(
            "tls_handshakes version={name} mutual_auth=yes handshakes={done} per_second={per_sec:.0} \
             (client and server on one thread)"
        );
    }
    println!("tls_link_buffer_bytes={}", TlsLinkSizes::default().total());
}

//! Accepting under pressure, through the `mooring` binary on loopback: a
//! listener out of file descriptors keeps serving once they come back, and
//! `--max-conns-per-ip` caps one address without touching others.

mod support;
// The raw MLLP peer the library tests use.
mod common;

use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use common::{mllp, Peer, LOCALHOST_2};
use support::{Proc, BIN, WITHIN};

/// One HL7 message whose ACK proves the link was served.
const HL7: &[u8] = b"MSH|^~\\&|A|B|C|D|20260101000000||ADT^A01|FRESH1|P|2.5\r";

/// Sends one MLLP frame and reads one frame back, giving up after `within`.
/// `None`: no whole reply in time (or the link closed first).
fn mllp_exchange(mut p: Peer, payload: &[u8], within: Duration) -> Option<Vec<u8>> {
    p.try_send(&mllp(payload)).ok()?;
    p.read_mllp(within).ok()
}

fn me(s: &TcpStream) -> String {
    s.local_addr().expect("local addr").to_string()
}

#[test]
fn a_listener_out_of_descriptors_serves_a_fresh_client_within_a_second_after_the_flood() {
    // 64 descriptors for the node, 200 connections allowed: accept runs out of
    // descriptors (EMFILE) long before the listener is full.
    let mut cmd = Command::new("sh");
    cmd.args([
        "-c",
        "ulimit -n 64 && exec \"$0\" \"$@\"",
        BIN,
        "listen",
        "--bind",
        "127.0.0.1:0",
        "--max-conns",
        "200",
        "--quiet",
    ]);
    let (mut listen, addr) = Proc::listen_cmd(cmd);

    // The flood: up to 400 connections held open for 2 s; once the accept
    // queue (128 deep) is full, connects stall and are given up.
    let flood_until = Instant::now() + Duration::from_secs(2);
    let flood: Vec<TcpStream> = (0..400)
        .take_while(|_| Instant::now() < flood_until)
        .filter_map(|_| TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok())
        .collect();
    assert!(flood.len() >= 150, "only {} connections", flood.len());
    // The node serves what its descriptors allow, then accept fails.
    for _ in 0..40 {
        listen.expect_line(|l| l.starts_with("event=connected "), WITHIN);
    }
    let ended = Instant::now();
    drop(flood);

    // A fresh client: while the accept queue is still full its SYN is dropped,
    // so it tries again every 50 ms (each attempt a new SYN).
    let give_up = ended + Duration::from_secs(3);
    let reply = loop {
        let left = give_up.saturating_duration_since(Instant::now());
        if left.is_zero() {
            break None;
        }
        let Ok(fresh) = TcpStream::connect_timeout(&addr, Duration::from_millis(50)) else {
            continue;
        };
        let left = give_up.saturating_duration_since(Instant::now());
        break mllp_exchange(Peer::wrap(fresh), HL7, left);
    };
    let took = ended.elapsed();
    let reply = reply.unwrap_or_else(|| panic!("fresh client not served within 3 s"));
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("MSA|AA|FRESH1"), "{text:?}");
    println!("time_to_serve_ms={}", took.as_millis());
    assert!(took < Duration::from_secs(1), "served after {took:?}");
}

#[test]
fn max_conns_per_ip_rejects_a_third_link_from_one_address_and_serves_others() {
    let (mut listen, addr) = Proc::listen(&["--max-conns-per-ip", "2"]);
    let one = TcpStream::connect(addr).expect("connect");
    let two = TcpStream::connect(addr).expect("connect");
    for s in [&one, &two] {
        let peer = me(s);
        listen.expect_line(|l| l == format!("event=connected peer={peer}"), WITHIN);
    }
    let third = TcpStream::connect(addr).expect("connect");
    let peer = me(&third);
    listen.expect_line(
        |l| l == format!("event=rejected peer={peer} reason=TooManyConnectionsFromPeer"),
        WITHIN,
    );
    assert!(mllp_exchange(Peer::wrap(third), HL7, WITHIN).is_none());

    // Another address is not affected.
    let other = Peer::connect_from(LOCALHOST_2, addr);
    let reply = mllp_exchange(other, HL7, WITHIN).expect("127.0.0.2 served");
    assert!(String::from_utf8_lossy(&reply).contains("MSA|AA|FRESH1"));

    // Once the first two close, the address may connect again.
    let (p1, p2) = (me(&one), me(&two));
    drop((one, two));
    for p in [p1, p2] {
        listen.expect_line(
            |l| l.starts_with(&format!("event=closed peer={p} ")),
            WITHIN,
        );
    }
    let again = TcpStream::connect(addr).expect("connect");
    let reply =
        mllp_exchange(Peer::wrap(again), HL7, WITHIN).expect("served after the first two closed");
    assert!(String::from_utf8_lossy(&reply).contains("MSA|AA|FRESH1"));
}

#[test]
fn the_relay_caps_links_per_device_address_too() {
    let (_up, up_addr) = Proc::listen(&["--quiet"]);
    let (mut relay, addr) =
        Proc::listen_cmd(support::relay_to(up_addr, &["--max-conns-per-ip", "1"]));
    let first = TcpStream::connect(addr).expect("connect");
    let peer = me(&first);
    relay.expect_line(|l| l == format!("event=connected peer={peer}"), WITHIN);
    let second = TcpStream::connect(addr).expect("connect");
    let peer = me(&second);
    relay.expect_line(
        |l| l == format!("event=rejected peer={peer} reason=TooManyConnectionsFromPeer"),
        WITHIN,
    );
    let other = Peer::connect_from(LOCALHOST_2, addr);
    let reply = mllp_exchange(other, HL7, WITHIN).expect("127.0.0.2 served");
    assert!(String::from_utf8_lossy(&reply).contains("MSA|AA|FRESH1"));
}

//! What `mooring listen` sends back, byte for byte: its HL7 ACK is the
//! library's [`hl7::build_ack`] of the message with a current timestamp (the
//! CLI builds it from one parse and a timestamp formatted once per second), and
//! `--reply echo --quiet` returns every frame unchanged and in order.
//!
//! Every wait has a deadline; every process is killed by its own handle.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use mooring::hl7::{self, AckCode};

/// Process helpers shared with the other CLI tests.
mod support;
// The MLLP framing the library tests use.
mod common;

use common::mllp;
use support::{Proc, WITHIN};

/// Reads one MLLP frame (its payload) from `s`, keeping what follows in `rest`.
fn read_frame(s: &mut TcpStream, rest: &mut Vec<u8>) -> Vec<u8> {
    let mut buf = [0u8; 64 * 1024];
    loop {
        if let Some(end) = rest.windows(2).position(|w| w == b"\x1c\r") {
            assert_eq!(rest.first(), Some(&0x0B), "not an MLLP frame: {rest:?}");
            let payload = rest[1..end].to_vec();
            rest.drain(..end + 2);
            return payload;
        }
        let n = s.read(&mut buf).expect("read reply");
        assert_ne!(n, 0, "closed before a whole reply");
        rest.extend_from_slice(&buf[..n]);
    }
}

fn unix_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

#[test]
fn the_cli_ack_is_the_library_ack_with_the_current_second_and_follows_the_clock() {
    let (_listen, addr) = Proc::listen(&["--quiet"]);
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut rest = Vec::new();
    let mut stamps = Vec::new();
    let deadline = Instant::now() + WITHIN;
    // Until the second changes at least once: the cached timestamp must follow it.
    for n in 0u32.. {
        assert!(Instant::now() < deadline, "the ACK timestamp never changed");
        let msg = format!(
            "MSH|^~\\&|APP|FAC|RAPP|RFAC|20260101||ADT^A01^ADT_A01|ID{n}|P|2.5.1\rPID|1||X\r"
        );
        let before = unix_secs();
        s.write_all(&mllp(msg.as_bytes())).expect("write");
        let ack = read_frame(&mut s, &mut rest);
        let after = unix_secs();
        let stamp = hl7::Msh::parse(&ack).expect("an HL7 ACK").field(7).to_vec();
        let current = (before..=after).any(|t| {
            let mut text = [0u8; 14];
            hl7::timestamp_utc(t, &mut text) == stamp.as_slice()
        });
        assert!(
            current,
            "MSH-7 {:?} is not now",
            String::from_utf8_lossy(&stamp)
        );
        let mut want = [0u8; 512];
        let len = hl7::build_ack(msg.as_bytes(), AckCode::Accept, &stamp, &mut want)
            .expect("512 bytes suffice");
        assert_eq!(
            String::from_utf8_lossy(&ack),
            String::from_utf8_lossy(&want[..len])
        );
        if stamps.last() != Some(&stamp) {
            stamps.push(stamp);
        }
        if stamps.len() >= 2 {
            break;
        }
        // Paced so that a second passes in a few hundred messages.
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn quiet_echo_returns_every_frame_unchanged_and_in_order() {
    let (_listen, addr) = Proc::listen(&["--reply", "echo", "--quiet"]);
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(WITHIN)).expect("timeout");
    let mut writer = s.try_clone().expect("clone");
    // Sizes from tiny to larger than a working buffer, 64 in flight.
    let payloads: Vec<Vec<u8>> = (0..200u32)
        .map(|i| {
            let len = [1, 17, 256, 4_000, 40_000][i as usize % 5];
            (0..len).map(|j| b'a' + ((i + j) % 26) as u8).collect()
        })
        .collect();
    let frames: Vec<Vec<u8>> = payloads.iter().map(|p| mllp(p)).collect();
    let sender = std::thread::spawn(move || {
        for f in &frames {
            writer.write_all(f).expect("write");
        }
    });
    let mut rest = Vec::new();
    for (i, p) in payloads.iter().enumerate() {
        let got = read_frame(&mut s, &mut rest);
        assert!(
            got == *p,
            "frame {i}: {} bytes back, sent {}",
            got.len(),
            p.len()
        );
    }
    sender.join().expect("sender");
}

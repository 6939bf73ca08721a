//! `Reply::ack`: a `Server` handler's HL7 ACK, sent as `hl7::build_ack`'s
//! bytes, queued unscanned only when the builder knows it is clean. An ACK
//! copying a byte MLLP cannot carry is refused exactly as `write_with` +
//! `build_ack` has it refused (no reply, the link stays open). Loopback only.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use mooring::hl7::{self, AckCode};
use mooring::{Event, ListenConfig, NodeConfig, Server};

const STAMP: &[u8; 14] = b"20261201120000";

/// How the handler replies.
#[derive(Clone, Copy, Debug)]
enum Api {
    /// `Reply::ack`.
    Ack,
    /// `Reply::write_with` + `hl7::build_ack`, as before `Reply::ack`.
    WriteWith,
}

/// The messages the client sends, with the code the handler answers each
/// with. `!` stands for 0x0B, which MLLP cannot deliver inside a message: the
/// handler builds its ACK for the message with `!` made 0x0B (as a handler
/// answering for a message it holds from elsewhere would).
const MESSAGES: [(&[u8], AckCode); 6] = [
    (
        b"MSH|^~\\&|APP|FAC|EHR|HOSP|1||ADT^A01|ID1|P|2.5\r",
        AckCode::Accept,
    ),
    (
        b"MSH|^~\\&|APP|F\tAC|EHR|HOSP|1||ADT^A01|ID2|P|2.5\r",
        AckCode::Accept,
    ),
    (
        b"MSH|^~\\&|AP!P|FAC|EHR|HOSP|1||ADT^A01|ID3|P|2.5\r",
        AckCode::Accept,
    ),
    (
        b"MSH|^~\\&|APP|FAC|EHR|HOSP|1||ADT^A01|ID4|P|2.5\r",
        AckCode::Error,
    ),
    (b"not hl7", AckCode::Reject),
    (
        b"MSH|^~\\&|APP|FAC|EHR|HOSP|1||ADT^A01|ID6|P|2!5\r",
        AckCode::Accept,
    ),
];

/// The message the handler acknowledges for `payload`: `!` made 0x0B.
fn answered(payload: &[u8]) -> Vec<u8> {
    payload
        .iter()
        .map(|&b| if b == b'!' { 0x0B } else { b })
        .collect()
}

fn code_for(payload: &[u8]) -> AckCode {
    MESSAGES
        .iter()
        .find(|(m, _)| *m == payload)
        .map_or(AckCode::Reject, |(_, c)| *c)
}

/// Reads MLLP frames from `s` until `count` arrived (each checked to be one
/// whole frame with no block byte inside) or 10 s passed.
fn read_frames(s: &mut TcpStream, count: usize) -> Vec<Vec<u8>> {
    let deadline = Instant::now() + Duration::from_secs(10);
    s.set_read_timeout(Some(Duration::from_millis(50))).unwrap();
    let mut got = Vec::new();
    let mut frames = Vec::new();
    let mut chunk = [0u8; 4096];
    while frames.len() < count && Instant::now() < deadline {
        match s.read(&mut chunk) {
            Ok(0) => break,
            Ok(n) => got.extend_from_slice(&chunk[..n]),
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
            Err(e) if e.kind() == std::io::ErrorKind::TimedOut => {}
            Err(e) => panic!("read: {e}"),
        }
        while let Some(end) = got.windows(2).position(|w| w == [0x1C, 0x0D]) {
            assert_eq!(got[0], 0x0B, "a frame starts with 0x0B: {got:?}");
            let body = got[1..end].to_vec();
            assert!(
                !body.iter().any(|&b| b == 0x0B || b == 0x1C),
                "a block byte inside a frame: {body:?}"
            );
            frames.push(body);
            got.drain(..end + 2);
        }
    }
    frames
}

/// Serves `MESSAGES` from one client with `api`; the ACK frames it got.
fn serve(api: Api) -> Vec<Vec<u8>> {
    let mut server = Server::bind(
        "127.0.0.1:0".parse().unwrap(),
        NodeConfig::default(),
        ListenConfig::default(),
    )
    .unwrap();
    let addr: SocketAddr = server.local_addr();
    let expected = MESSAGES
        .iter()
        .filter(|(m, _)| !answered(m).contains(&0x0B))
        .count();
    let client = std::thread::spawn(move || {
        let mut s = TcpStream::connect(addr).unwrap();
        for (m, _) in MESSAGES {
            let mut frame = vec![0x0B];
            frame.extend_from_slice(m);
            frame.extend_from_slice(&[0x1C, 0x0D]);
            s.write_all(&frame).unwrap();
        }
        read_frames(&mut s, expected)
    });
    let deadline = Instant::now() + Duration::from_secs(20);
    while !client.is_finished() {
        assert!(
            Instant::now() < deadline,
            "{api:?}: the client did not finish"
        );
        server
            .serve(Some(Duration::from_millis(20)), |ev, reply| {
                if let Event::Message { payload, .. } = ev {
                    let msg = answered(payload);
                    let code = code_for(payload);
                    match api {
                        Api::Ack => assert!(reply.ack(&msg, code, STAMP), "fits"),
                        Api::WriteWith => {
                            reply.write_with(|buf| hl7::build_ack(&msg, code, STAMP, buf))
                        }
                    }
                }
            })
            .unwrap();
    }
    client.join().unwrap()
}

#[test]
fn reply_ack_sends_build_acks_bytes_and_refuses_what_mllp_cannot_carry() {
    // build_ack's bytes for every ACK MLLP can carry (plain, or with a tab);
    // none for an ACK copying 0x0B (refused as `Unframeable`, the link open:
    // the later messages are still answered, in order).
    let want: Vec<Vec<u8>> = MESSAGES
        .iter()
        .map(|(m, code)| {
            let mut out = [0u8; 512];
            let n = hl7::build_ack(&answered(m), *code, STAMP, &mut out).expect("fits");
            out[..n].to_vec()
        })
        .filter(|ack| !ack.contains(&0x0B))
        .collect();
    assert_eq!(want.len(), 4, "two ACKs copy a 0x0B");
    assert!(want[1].contains(&b'\t'), "one ACK copies a tab");
    let before = serve(Api::WriteWith);
    assert_eq!(before, want, "write_with + build_ack");
    let now = serve(Api::Ack);
    assert_eq!(now, want, "Reply::ack");
}

//! A keep-open client whose link went silent past its heartbeat bound reconnects
//! before its next request instead of writing into the dead link (seed 003: the
//! enqueue-only client's "first message after the drop is lost" must not happen
//! to a mooring client).

use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mooring::frame::{Codec, Decoded, Mllp};
use mooring::internals::wire::{self, Greeting, Msg};
use mooring::{Client, ClientConfig, ConnectConfig, Heartbeat, LivenessConfig, Protocol};

/// Reads one MLLP frame (blocking, with the stream's read timeout).
fn read_frame(s: &mut TcpStream, buf: &mut Vec<u8>) -> Option<Vec<u8>> {
    loop {
        if let Ok(Decoded::Frame {
            payload, consumed, ..
        }) = Mllp.decode(buf, &mut 0, 1 << 16)
        {
            let f = buf[payload].to_vec();
            buf.drain(..consumed);
            return Some(f);
        }
        let mut chunk = [0u8; 4096];
        match s.read(&mut chunk) {
            Ok(0) | Err(_) => return None,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
}

fn write_frame(s: &mut TcpStream, payload: &[u8]) {
    let mut out = vec![0u8; payload.len() + Mllp.overhead()];
    let n = Mllp.encode(payload, &mut out).expect("sized");
    s.write_all(&out[..n]).expect("write");
}

fn msg_bytes(m: Msg<'_>) -> Vec<u8> {
    let mut b = vec![0u8; 256];
    let n = wire::encode(&m, &mut b).expect("fits");
    b.truncate(n);
    b
}

/// Serves one connection: the handshake, then echoes `answer` requests as DATA.
/// Afterwards it stays silent (no PONG, no close), like a peer behind a dead NAT
/// entry. Reports each request's payload.
fn serve(mut s: TcpStream, answer: usize, got: &mpsc::Sender<(usize, Vec<u8>)>, conn: usize) {
    s.set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    let mut buf = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut answered = 0;
    while Instant::now() < deadline {
        let Some(frame) = read_frame(&mut s, &mut buf) else {
            continue;
        };
        match wire::decode(&frame) {
            Ok(Msg::Hello(_)) => {
                write_frame(&mut s, &msg_bytes(Msg::Welcome(Greeting::new_session())))
            }
            Ok(Msg::Data { seq, payload }) => {
                let _ = got.send((conn, payload.to_vec()));
                if answered < answer {
                    answered += 1;
                    write_frame(&mut s, &msg_bytes(Msg::Data { seq, payload }));
                }
            }
            _ => {} // PINGs go unanswered once silent
        }
    }
}

#[test]
fn a_client_whose_link_went_silent_past_its_bound_reconnects_before_the_next_request() {
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        // First connection: answers one request, then goes silent without closing.
        // Second: answers everything.
        for (conn, answer) in [(1, 1), (2, usize::MAX)] {
            let (s, _) = listener.accept().unwrap();
            let tx = tx.clone();
            std::thread::spawn(move || serve(s, answer, &tx, conn));
        }
    });
    let hb = Heartbeat {
        interval: Duration::from_millis(100),
        timeout: Duration::from_millis(300),
    };
    let mut client = Client::new(
        addr,
        ClientConfig {
            connect: ConnectConfig {
                liveness: LivenessConfig {
                    protocol: Protocol::Mooring,
                    heartbeat: Some(hb),
                    ..Default::default()
                },
                ..Default::default()
            },
            response_timeout: Duration::from_secs(2),
            ..Default::default()
        },
    )
    .unwrap();

    assert_eq!(client.request(b"first").unwrap(), b"first");
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        (1, b"first".to_vec())
    );
    // The application is idle longer than the heartbeat bound; it does not poll.
    std::thread::sleep(hb.timeout + Duration::from_millis(200));

    assert_eq!(
        client.request(b"second").unwrap(),
        b"second",
        "answered on a new link"
    );
    assert_eq!(
        rx.recv_timeout(Duration::from_secs(5)).unwrap(),
        (2, b"second".to_vec()),
        "the request was never written into the silent link"
    );
    assert_eq!(client.stats().connects, 2);
    assert_eq!(
        client.stats().resends,
        0,
        "noticed before writing, not after"
    );
    assert_eq!(
        client.last_close(),
        Some(mooring::CloseReason::HeartbeatTimeout)
    );
}

//! At-least-once request/response to a raw peer: `ClientConfig::retries`
//! resends a request whose reply never came, on a new link, and gives up with
//! the named error once the retries are used; between retries it waits by the
//! library's one backoff.

use std::io::{Read, Write};
use std::net::TcpListener;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use mooring::session::Backoff;
use mooring::{hl7, Client, ClientConfig, RequestError};

const MSG: &[u8] = b"MSH|^~\\&|LAB|A|EHR|B|20261122||ADT^A01|ALO1|P|2.5\r";

/// Accepts `drops` connections, reads each request and hangs up without a reply;
/// then answers on the next one. Reports every request it read.
fn flaky_server(drops: usize) -> (std::net::SocketAddr, mpsc::Receiver<Vec<u8>>) {
    let l = TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = l.local_addr().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for n in 0..=drops {
            let Ok((mut s, _)) = l.accept() else { return };
            s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut buf = Vec::new();
            let mut chunk = [0u8; 1024];
            // Read one MLLP frame.
            while !buf.ends_with(&[0x1C, 0x0D]) {
                match s.read(&mut chunk) {
                    Ok(0) | Err(_) => return,
                    Ok(k) => buf.extend_from_slice(&chunk[..k]),
                }
            }
            let _ = tx.send(buf[1..buf.len() - 2].to_vec());
            if n == drops {
                let mut ack = [0u8; 512];
                let k = hl7::build_ack(MSG, hl7::AckCode::Accept, b"20261122000000", &mut ack[1..])
                    .unwrap();
                ack[0] = 0x0B;
                ack[k + 1] = 0x1C;
                ack[k + 2] = 0x0D;
                s.write_all(&ack[..k + 3]).unwrap();
                // Keep the link until the client is done with it.
                let _ = s.read(&mut chunk);
            }
        }
    });
    (addr, rx)
}

fn client(addr: std::net::SocketAddr, retries: u32) -> Client {
    Client::new(
        addr,
        ClientConfig {
            retries,
            response_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )
    .unwrap()
}

#[test]
fn a_request_whose_link_dropped_is_sent_again_until_it_is_answered() {
    let (addr, seen) = flaky_server(2);
    let mut c = client(addr, 2);
    let reply = c.request(MSG).unwrap();
    assert_eq!(hl7::acked_control_id(reply), Some(&b"ALO1"[..]));
    assert_eq!(c.stats().retries, 2);
    assert_eq!(c.stats().connects, 3);
    for _ in 0..3 {
        assert_eq!(seen.recv_timeout(Duration::from_secs(5)).unwrap(), MSG);
    }
}

#[test]
fn without_retries_a_dropped_request_is_an_incomplete_response() {
    let (addr, seen) = flaky_server(1);
    let mut c = client(addr, 0);
    assert!(matches!(
        c.request(MSG).unwrap_err(),
        RequestError::IncompleteResponse { received: 0, .. }
    ));
    assert_eq!(c.stats().retries, 0);
    assert_eq!(seen.recv_timeout(Duration::from_secs(5)).unwrap(), MSG);
}

#[test]
fn retries_that_run_out_end_with_the_named_error() {
    let (addr, seen) = flaky_server(3);
    let mut c = client(addr, 2);
    assert!(matches!(
        c.request(MSG).unwrap_err(),
        RequestError::IncompleteResponse { .. }
    ));
    assert_eq!(c.stats().retries, 2, "three attempts in all");
    for _ in 0..3 {
        assert_eq!(seen.recv_timeout(Duration::from_secs(5)).unwrap(), MSG);
    }
}

/// Retries wait by the library's one backoff (`session::Backoff`): within its
/// ceiling, and its `max_attempts` also limits them.
#[test]
fn retries_wait_by_the_backoff_and_stop_at_its_attempts() {
    let (addr, seen) = flaky_server(3);
    let ceiling = Duration::from_millis(300);
    let mut c = Client::new(
        addr,
        ClientConfig {
            retries: 5,
            retry_backoff: Backoff {
                min: ceiling,
                max: ceiling,
                max_attempts: Some(1),
            },
            response_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )
    .unwrap();
    let start = Instant::now();
    assert!(matches!(
        c.request(MSG).unwrap_err(),
        RequestError::IncompleteResponse { .. }
    ));
    assert_eq!(c.stats().retries, 1, "the backoff allows one attempt");
    assert!(
        start.elapsed() < Duration::from_secs(4),
        "the wait stays under the backoff's ceiling"
    );
    for _ in 0..2 {
        assert_eq!(seen.recv_timeout(Duration::from_secs(5)).unwrap(), MSG);
    }
}

//! `Client::request` outcomes over real loopback sockets: every failure has a
//! name (refused, connect timeout, response timeout, incomplete response), and
//! HL7 correlation never credits a reply to the wrong request.

mod common;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use common::*;
use mooring::{Client, ClientConfig, CloseReason, NodeConfig, RequestError};

fn client_with(addr: SocketAddr, f: impl FnOnce(&mut ClientConfig)) -> Client {
    let mut cfg = ClientConfig {
        correlate_hl7: true,
        response_timeout: Duration::from_secs(5),
        ..ClientConfig::default()
    };
    f(&mut cfg);
    Client::new(addr, cfg).expect("client builds")
}

/// A hand-written server: accepts one connection and runs `script` on it. The
/// listener stays with the caller, so it can check no other connection came.
fn one_shot_server(
    script: impl FnOnce(Peer) + Send + 'static,
) -> (TcpListener, SocketAddr, JoinHandle<()>) {
    let listener = TcpListener::bind(any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    let mine = listener.try_clone().unwrap();
    let t = std::thread::spawn(move || {
        let s = accept_within(&mine, PATIENCE).expect("a connection");
        script(Peer::wrap(s));
    });
    (listener, addr, t)
}

fn accept_within(l: &TcpListener, within: Duration) -> Option<TcpStream> {
    l.set_nonblocking(true).unwrap();
    let deadline = Instant::now() + within;
    loop {
        match l.accept() {
            Ok((s, _)) => {
                s.set_nonblocking(false).unwrap();
                return Some(s);
            }
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                if Instant::now() >= deadline {
                    return None;
                }
                std::thread::sleep(Duration::from_millis(1));
            }
            Err(e) => panic!("accept: {e}"),
        }
    }
}

/// True when a connection is waiting in the listener's backlog right now.
fn another_connection_came(l: &TcpListener) -> bool {
    accept_within(l, Duration::ZERO).is_some()
}

#[test]
fn request_to_a_closed_port_is_connection_refused() {
    let addr = {
        let l = TcpListener::bind(any_port()).unwrap();
        l.local_addr().unwrap()
    };
    let mut c = client_with(addr, |_| {});
    assert_eq!(
        c.request(&hl7_msg("R1")).unwrap_err(),
        RequestError::ConnectionRefused
    );
    assert_eq!(c.stats().connects, 0);
}

/// Linux drops SYNs to a listener whose accept queue is full, so a connect to a
/// listener with a full backlog that never accepts hangs: on loopback, that is
/// a deterministic unanswered connect.
#[test]
fn request_to_a_listener_that_never_completes_the_handshake_is_a_connect_timeout() {
    use socket2::{Domain, Socket, Type};
    let l = Socket::new(Domain::IPV4, Type::STREAM, None).unwrap();
    l.bind(&any_port().into()).unwrap();
    l.listen(0).unwrap();
    let addr = l.local_addr().unwrap().as_socket().unwrap();
    let mut fillers = Vec::new();
    let full =
        (0..16).any(
            |_| match TcpStream::connect_timeout(&addr, Duration::from_millis(200)) {
                Ok(s) => {
                    fillers.push(s);
                    false
                }
                Err(_) => true,
            },
        );
    assert!(full, "the accept queue never filled up");

    let timeout = Duration::from_millis(300);
    let mut c = client_with(addr, |c| c.connect.connect_timeout = timeout);
    let t0 = Instant::now();
    assert_eq!(
        c.request(&hl7_msg("T1")).unwrap_err(),
        RequestError::ConnectTimeout
    );
    let took = t0.elapsed();
    assert!(
        took + Duration::from_millis(1) >= timeout,
        "gave up early: {took:?}"
    );
    assert!(
        took < timeout + Duration::from_secs(1),
        "gave up late: {took:?}"
    );
}

#[test]
fn request_to_a_server_that_never_replies_is_a_response_timeout_and_closes_the_link() {
    let (_l, addr, server) = one_shot_server(|mut p| {
        p.read_mllp(PATIENCE).expect("the request");
        // Never replies; the client must hang up.
        p.expect_closed(PATIENCE);
    });
    let timeout = Duration::from_millis(300);
    let mut c = client_with(addr, |c| c.response_timeout = timeout);
    let t0 = Instant::now();
    assert_eq!(
        c.request(&hl7_msg("S1")).unwrap_err(),
        RequestError::ResponseTimeout
    );
    let took = t0.elapsed();
    assert!(
        took + Duration::from_millis(1) >= timeout,
        "early: {took:?}"
    );
    assert!(took < timeout + Duration::from_secs(1), "late: {took:?}");
    assert!(!c.is_connected());
    server.join().expect("the server saw the client hang up");
}

#[test]
fn request_within_uses_its_own_timeout() {
    let (_l, addr, server) = one_shot_server(|mut p| {
        p.read_mllp(PATIENCE).expect("the request");
        p.expect_closed(PATIENCE);
    });
    let mut c = client_with(addr, |c| c.response_timeout = Duration::from_secs(30));
    let t0 = Instant::now();
    assert_eq!(
        c.request_within(&hl7_msg("S2"), Duration::from_millis(150))
            .unwrap_err(),
        RequestError::ResponseTimeout
    );
    assert!(t0.elapsed() < Duration::from_secs(2));
    server.join().unwrap();
}

/// A reply that arrives after its request timed out can never be credited to
/// the next request: the timed-out link is closed and the next one is new.
#[test]
fn late_reply_after_a_response_timeout_is_never_taken_for_the_next_request() {
    let listener = TcpListener::bind(any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let mut first = Peer::wrap(accept_within(&listener, PATIENCE).unwrap());
        let msg = first.read_mllp(PATIENCE).unwrap();
        // Answer only once the client has given up and hung up.
        first.expect_closed(PATIENCE);
        let _ =
            std::io::Write::write_all(&mut first.stream, &mllp(&hl7_ack_for(&control_id(&msg))));
        let mut second = Peer::wrap(accept_within(&listener, PATIENCE).unwrap());
        let msg = second.read_mllp(PATIENCE).unwrap();
        second.send_mllp(&hl7_ack_for(&control_id(&msg)));
        second.expect_closed(PATIENCE);
    });
    let mut c = client_with(addr, |c| c.response_timeout = Duration::from_millis(200));
    assert_eq!(
        c.request(&hl7_msg("LATE1")).unwrap_err(),
        RequestError::ResponseTimeout
    );
    let reply = c.request(&hl7_msg("LATE2")).expect("second reply");
    assert_eq!(acked_id(reply), "LATE2");
    assert_eq!(c.stats().connects, 2);
    drop(c);
    server.join().unwrap();
}

#[test]
fn link_closed_mid_reply_is_an_incomplete_response_with_the_bytes_received() {
    let (l, addr, server) = one_shot_server(|mut p| {
        let msg = p.read_mllp(PATIENCE).expect("the request");
        let reply = mllp(&hl7_ack_for(&control_id(&msg)));
        p.send(&reply[..reply.len() / 2]);
        // Dropping `p` closes the link half-way through the reply.
    });
    let mut c = client_with(addr, |_| {});
    let err = c.request(&hl7_msg("H1")).unwrap_err();
    server.join().unwrap();
    let half = mllp(&hl7_ack_for("H1")).len() / 2;
    assert_eq!(
        err,
        RequestError::IncompleteResponse {
            received: half,
            reason: CloseReason::PeerClosed
        }
    );
    assert!(
        !another_connection_came(&l),
        "a started reply is never resent"
    );
}

#[test]
fn fresh_link_closed_before_any_reply_is_an_incomplete_response_and_not_resent() {
    let (l, addr, server) = one_shot_server(|mut p| {
        p.read_mllp(PATIENCE).expect("the request");
    });
    let mut c = client_with(addr, |_| {});
    let err = c.request(&hl7_msg("F1")).unwrap_err();
    server.join().unwrap();
    assert_eq!(
        err,
        RequestError::IncompleteResponse {
            received: 0,
            reason: CloseReason::PeerClosed
        }
    );
    assert_eq!(c.stats().resends, 0);
    assert!(
        !another_connection_came(&l),
        "only a reused link's close is the close-after-reply race"
    );
}

#[test]
fn reused_link_closed_mid_reply_is_an_incomplete_response_and_not_resent() {
    let (l, addr, server) = one_shot_server(|mut p| {
        let m1 = p.read_mllp(PATIENCE).unwrap();
        p.send_mllp(&hl7_ack_for(&control_id(&m1)));
        let m2 = p.read_mllp(PATIENCE).unwrap();
        let reply = mllp(&hl7_ack_for(&control_id(&m2)));
        p.send(&reply[..10]);
    });
    let mut c = client_with(addr, |_| {});
    assert_eq!(acked_id(c.request(&hl7_msg("U1")).unwrap()), "U1");
    let err = c.request(&hl7_msg("U2")).unwrap_err();
    server.join().unwrap();
    assert_eq!(
        err,
        RequestError::IncompleteResponse {
            received: 10,
            reason: CloseReason::PeerClosed
        }
    );
    assert_eq!(c.stats().resends, 0);
    assert!(!another_connection_came(&l));
}

#[test]
fn late_ack_for_an_earlier_message_is_counted_unexpected_and_not_returned() {
    let (_l, addr, server) = one_shot_server(|mut p| {
        for _ in 0..2 {
            let msg = p.read_mllp(PATIENCE).unwrap();
            // A stale ACK for some earlier message first, then the real one.
            let mut both = mllp(&hl7_ack_for("EARLIER"));
            both.extend_from_slice(&mllp(&hl7_ack_for(&control_id(&msg))));
            p.send(&both);
        }
        p.expect_closed(PATIENCE);
    });
    let mut c = client_with(addr, |_| {});
    assert_eq!(acked_id(c.request(&hl7_msg("C1")).unwrap()), "C1");
    assert_eq!(c.stats().unexpected_replies, 1);
    assert_eq!(acked_id(c.request(&hl7_msg("C2")).unwrap()), "C2");
    assert_eq!(c.stats().unexpected_replies, 2);
    assert_eq!(c.stats().replies, 2);
    drop(c);
    server.join().unwrap();
}

#[test]
fn only_mismatched_acks_mean_no_reply_within_the_timeout() {
    let (_l, addr, server) = one_shot_server(|mut p| {
        p.read_mllp(PATIENCE).unwrap();
        p.send_mllp(&hl7_ack_for("SOMEONE-ELSE"));
        p.expect_closed(PATIENCE);
    });
    let timeout = Duration::from_millis(300);
    let mut c = client_with(addr, |c| c.response_timeout = timeout);
    let t0 = Instant::now();
    assert_eq!(
        c.request(&hl7_msg("MINE")).unwrap_err(),
        RequestError::ResponseTimeout
    );
    let took = t0.elapsed();
    assert!(
        took < timeout + Duration::from_secs(1),
        "the wrong ACK stopped the timer: {took:?}"
    );
    assert_eq!(c.stats().unexpected_replies, 1);
    assert_eq!(c.stats().replies, 0);
    server.join().unwrap();
}

#[test]
fn without_correlation_any_reply_is_taken() {
    let (_l, addr, server) = one_shot_server(|mut p| {
        p.read_mllp(PATIENCE).unwrap();
        p.send_mllp(&hl7_ack_for("SOMEONE-ELSE"));
        p.expect_closed(PATIENCE);
    });
    let mut c = client_with(addr, |c| c.correlate_hl7 = false);
    assert_eq!(
        acked_id(c.request(&hl7_msg("MINE")).unwrap()),
        "SOMEONE-ELSE"
    );
    drop(c);
    server.join().unwrap();
}

#[test]
fn request_larger_than_max_frame_is_refused_without_connecting() {
    let l = TcpListener::bind(any_port()).unwrap();
    let addr = l.local_addr().unwrap();
    let mut c = client_with(addr, |c| {
        c.node = NodeConfig {
            max_links: 2,
            max_frame: 100,
            ..NodeConfig::default()
        }
    });
    assert_eq!(
        c.request(&[b'x'; 101]).unwrap_err(),
        RequestError::FrameTooLarge
    );
    assert!(!another_connection_came(&l));
}

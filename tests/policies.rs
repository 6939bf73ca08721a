//! Connection policies over real loopback sockets: the four client/server
//! pairings of seed 000 (HL7 Soup), max connections, idle timeout, stale
//! connection recovery (seed 001, Rhapsody) and the peer allow-list.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use mooring::Clock as _;
use mooring::{
    hl7, AllowList, Client, ClientConfig, ClientPolicy, CloseReason, ConfigError, Event, LinkId,
    ListenConfig, ManualClock, Node, NodeConfig, ServerPolicy, SetupError,
};

fn client(addr: SocketAddr, policy: ClientPolicy) -> Client {
    Client::new(
        addr,
        ClientConfig {
            policy,
            correlate_hl7: true,
            response_timeout: Duration::from_secs(5),
            ..ClientConfig::default()
        },
    )
    .expect("client builds")
}

/// Sends `n` HL7 messages with ids `{prefix}{i}`; every one must get the ACK for itself.
fn send_all(c: &mut Client, prefix: &str, n: usize) {
    for i in 0..n {
        let id = format!("{prefix}{i:05}");
        let reply = c
            .request(&hl7_msg(&id))
            .unwrap_or_else(|e| panic!("message {id}: {e}"));
        assert_eq!(acked_id(reply), id, "reply credited to the wrong message");
        assert_eq!(hl7::ack_code(reply), Some(&b"AA"[..]));
    }
}

/// Per server link: the ids of the messages it delivered.
fn messages_per_link(events: &[Rec]) -> HashMap<LinkId, Vec<String>> {
    let mut per: HashMap<LinkId, Vec<String>> = HashMap::new();
    for e in events {
        match e {
            Rec::Connected { link, .. } => {
                per.entry(*link).or_default();
            }
            Rec::Message { link, payload } => {
                per.entry(*link).or_default().push(control_id(payload))
            }
            _ => {}
        }
    }
    per
}

fn closes(events: &[Rec]) -> Vec<CloseReason> {
    events
        .iter()
        .filter_map(|e| match e {
            Rec::Closed { reason, .. } => Some(*reason),
            _ => None,
        })
        .collect()
}

fn close_after_reply() -> ListenConfig {
    ListenConfig {
        policy: ServerPolicy::CloseAfterReply,
        ..ListenConfig::default()
    }
}

/// A server that closes a link silent for `idle`.
fn idle_after(idle: Duration) -> ListenConfig {
    ListenConfig {
        idle_timeout: Some(idle),
        ..ListenConfig::default()
    }
}

/// Waits until the server reported `n` closes.
fn wait_for_closes(h: &mut Harness, n: usize) {
    for _ in 0..n {
        h.wait_for("a link to close", PATIENCE, |e| {
            matches!(e, Rec::Closed { .. })
        });
    }
}

// ---------------------------------------------------------------------------
// The four pairings of seed 000
// ---------------------------------------------------------------------------

#[test]
fn keep_open_client_and_keep_open_server_carry_every_message_over_one_connection() {
    let mut h = Harness::acking(ListenConfig::default());
    let mut c = client(h.addr, ClientPolicy::KeepOpen);
    send_all(&mut c, "KK", 20);
    let st = c.stats();
    assert_eq!((st.connects, st.replies, st.resends), (1, 20, 0));
    assert!(c.is_connected(), "the link stays open between messages");
    let evs = h.events();
    let per = messages_per_link(&evs);
    assert_eq!(per.len(), 1, "one connection at the server");
    assert_eq!(per.values().next().unwrap().len(), 20);
    assert!(closes(&evs).is_empty(), "nobody closed anything");
    drop(c);
    let (_, r) = h.wait_for("the client's close", PATIENCE, |e| {
        matches!(e, Rec::Closed { .. })
    });
    assert!(matches!(
        r,
        Rec::Closed {
            reason: CloseReason::PeerClosed,
            ..
        }
    ));
}

/// A close-per-message client sending 20 messages (ids `prefix00000`, ...) to
/// a server with `listen`: one connection per message, each closed with `by`.
fn one_connection_per_message(listen: ListenConfig, prefix: &str, by: CloseReason, who: &str) {
    let mut h = Harness::acking(listen);
    let mut c = client(h.addr, ClientPolicy::ClosePerMessage);
    send_all(&mut c, prefix, 20);
    let st = c.stats();
    assert_eq!((st.connects, st.replies, st.resends), (20, 20, 0));
    wait_for_closes(&mut h, 20);
    let evs = h.events();
    let per = messages_per_link(&evs);
    assert_eq!(per.len(), 20, "one connection per message");
    assert!(per.values().all(|m| m.len() == 1));
    assert!(
        closes(&evs).iter().all(|r| *r == by),
        "{who} closed each link: {:?}",
        closes(&evs)
    );
}

#[test]
fn close_per_message_client_and_keep_open_server_use_one_connection_per_message() {
    one_connection_per_message(
        ListenConfig::default(),
        "CK",
        CloseReason::PeerClosed,
        "the client",
    );
}

#[test]
fn close_per_message_client_and_close_after_reply_server_use_one_connection_per_message() {
    one_connection_per_message(
        close_after_reply(),
        "CC",
        CloseReason::ClosedAfterReply,
        "the server (after its reply)",
    );
}

/// Seed 000's "Do not do this" pairing, against mooring's own close-after-reply
/// server: every message succeeds, each is processed exactly once, each server
/// link processes exactly one message.
#[test]
fn keep_open_client_just_works_with_a_close_after_reply_server_over_hundreds_of_messages() {
    const N: usize = 300;
    let mut h = Harness::acking(close_after_reply());
    let mut c = client(h.addr, ClientPolicy::KeepOpen);
    send_all(&mut c, "KC", N);
    let st = c.stats();
    assert_eq!(st.replies, N as u64);
    assert_eq!(st.connects, N as u64, "a new link for every message");
    assert!(st.resends < N as u64);
    assert_eq!(st.unexpected_replies, 0);
    drop(c);
    wait_for_closes(&mut h, N);
    let (evs, stats) = h.stop();
    let per = messages_per_link(&evs);
    assert_eq!(per.len(), N);
    for (link, msgs) in &per {
        assert_eq!(msgs.len(), 1, "link {link:?} processed {msgs:?}");
    }
    let mut ids: Vec<String> = per.into_values().flatten().collect();
    ids.sort();
    let want: Vec<String> = (0..N).map(|i| format!("KC{i:05}")).collect();
    assert_eq!(ids, want, "every message processed exactly once");
    for e in &evs {
        if let Rec::Closed { stats, .. } = e {
            assert_eq!(
                stats.frames_in, 1,
                "nothing after the first message was decoded"
            );
            assert_eq!(stats.discarded_frames, 0);
        }
    }
    assert_eq!(stats.accepted, N as u64);
    eprintln!(
        "close-after-reply x keep-open: {N} messages, {} resends",
        st.resends
    );
}

/// The worst case of the race: a close-after-reply server (not mooring) that
/// closes only once the client's next message has started to arrive, so the
/// client can never see the close before writing. Every message after the first
/// is resent once, transparently, and the server processes each exactly once.
#[test]
fn keep_open_client_resends_once_when_the_servers_close_crosses_its_next_write() {
    const N: usize = 40;
    let listener = TcpListener::bind(any_port()).unwrap();
    listener.set_nonblocking(true).unwrap();
    let addr = listener.local_addr().unwrap();
    let processed = Arc::new(Mutex::new(Vec::<String>::new()));
    let processed2 = processed.clone();
    let server = std::thread::spawn(move || {
        for _ in 0..N {
            let deadline = Instant::now() + PATIENCE;
            let stream = loop {
                match listener.accept() {
                    Ok((s, _)) => break s,
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                        assert!(Instant::now() < deadline, "no connection");
                        std::thread::sleep(Duration::from_millis(1));
                    }
                    Err(e) => panic!("accept: {e}"),
                }
            };
            stream.set_nonblocking(false).unwrap();
            let mut p = Peer::wrap(stream);
            let msg = p.read_mllp(PATIENCE).expect("one message per link");
            let id = control_id(&msg);
            processed2.lock().unwrap().push(id.clone());
            p.send(&mllp(&hl7_ack_for(&id)));
            // Close only once the next message is on its way (or the client left):
            // whatever arrives after the reply is never processed.
            let _ = p.read_bytes(1, PATIENCE);
        }
    });
    let mut c = client(addr, ClientPolicy::KeepOpen);
    send_all(&mut c, "RC", N);
    let st = c.stats();
    drop(c);
    server.join().expect("server thread");
    assert_eq!(st.replies, N as u64);
    assert_eq!(st.connects, N as u64);
    assert_eq!(
        st.resends,
        N as u64 - 1,
        "every message after the first crossed a close"
    );
    let want: Vec<String> = (0..N).map(|i| format!("RC{i:05}")).collect();
    assert_eq!(
        *processed.lock().unwrap(),
        want,
        "each processed exactly once, in order"
    );
}

#[test]
fn close_after_reply_server_processes_nothing_that_arrives_after_its_reply() {
    let mut h = Harness::acking(close_after_reply());
    let mut p = Peer::connect(h.addr);
    // Two messages in one write: the second is in the server's buffer with the first.
    let mut both = mllp(&hl7_msg("FIRST"));
    both.extend_from_slice(&mllp(&hl7_msg("SECOND")));
    p.send(&both);
    let reply = p.read_mllp(PATIENCE).expect("reply to the first");
    assert_eq!(acked_id(&reply), "FIRST");
    let rest = p.expect_closed(PATIENCE);
    assert!(rest.is_empty(), "no second reply: {rest:?}");
    let me = p.local_addr();
    assert_eq!(
        h.close_reason("the close", me),
        CloseReason::ClosedAfterReply
    );
    h.settle(Duration::from_millis(50));
    let msgs: Vec<String> = h
        .events()
        .iter()
        .filter_map(|e| match e {
            Rec::Message { payload, .. } => Some(control_id(payload)),
            _ => None,
        })
        .collect();
    assert_eq!(msgs, ["FIRST"]);
}

// ---------------------------------------------------------------------------
// max_connections
// ---------------------------------------------------------------------------

#[test]
fn connection_beyond_max_connections_is_closed_at_once_and_existing_links_are_untouched() {
    let mut h = Harness::acking(ListenConfig {
        max_connections: 2,
        ..ListenConfig::default()
    });
    let mut a = Peer::connect(h.addr);
    let mut b = Peer::connect(h.addr);
    assert_eq!(acked_id(&a.request(&hl7_msg("A1"))), "A1");
    assert_eq!(acked_id(&b.request(&hl7_msg("B1"))), "B1");

    let mut third = Peer::connect(h.addr);
    let t0 = Instant::now();
    third.expect_closed(PATIENCE);
    assert!(t0.elapsed() < Duration::from_secs(1), "closed at once");
    let who = third.local_addr();
    let (_, r) = h.wait_for(
        "the rejection",
        PATIENCE,
        |e| matches!(e, Rec::Rejected { peer, .. } if *peer == who),
    );
    assert!(matches!(
        r,
        Rec::Rejected {
            reason: CloseReason::TooManyConnections,
            ..
        }
    ));

    assert_eq!(acked_id(&a.request(&hl7_msg("A2"))), "A2");
    assert_eq!(acked_id(&b.request(&hl7_msg("B2"))), "B2");
    assert!(closes(&h.events()).is_empty(), "existing links untouched");

    // A slot freed by a close serves the next newcomer.
    let gone = a.local_addr();
    drop(a);
    h.wait_for("a's close", PATIENCE, |e| e.is_closed_from(gone).is_some());
    let mut d = Peer::connect(h.addr);
    assert_eq!(acked_id(&d.request(&hl7_msg("D1"))), "D1");
    let (_, stats) = h.stop();
    assert_eq!(stats.rejected_too_many, 1);
    assert_eq!(stats.accepted, 3);
}

// ---------------------------------------------------------------------------
// Idle timeout
// ---------------------------------------------------------------------------

/// The node's clock counts whole milliseconds, so a deadline measured from a
/// truncated start may land up to 1 ms before the nominal time.
const CLOCK_GRAIN: Duration = Duration::from_millis(1);

/// The link of `p` closes `idle` after `since` (not before, within the
/// clock's grain; at most 500 ms late), and the server names it an idle timeout.
fn expect_idle_close(h: &mut Harness, p: &mut Peer, since: Instant, idle: Duration) {
    p.expect_closed(PATIENCE);
    let after = since.elapsed();
    assert!(after + CLOCK_GRAIN >= idle, "closed early, after {after:?}");
    assert!(
        after < idle + Duration::from_millis(500),
        "closed late, after {after:?}"
    );
    assert_eq!(
        h.close_reason("the idle close", p.local_addr()),
        CloseReason::IdleTimeout
    );
}

#[test]
fn silent_link_is_closed_with_idle_timeout_not_before_the_timeout_and_soon_after() {
    let idle = Duration::from_millis(300);
    let mut h = Harness::acking(idle_after(idle));
    let t0 = Instant::now();
    let mut p = Peer::connect(h.addr);
    expect_idle_close(&mut h, &mut p, t0, idle);
}

#[test]
fn traffic_keeps_a_link_past_the_idle_timeout_which_counts_from_the_last_byte() {
    let idle = Duration::from_millis(300);
    let mut h = Harness::acking(idle_after(idle));
    let mut p = Peer::connect(h.addr);
    let start = Instant::now();
    let mut last = start;
    for i in 0..4 {
        // Time passing is what this test is about.
        std::thread::sleep(Duration::from_millis(150));
        last = Instant::now();
        assert_eq!(
            acked_id(&p.request(&hl7_msg(&format!("I{i}")))),
            format!("I{i}")
        );
    }
    assert!(
        start.elapsed() > idle * 2,
        "the link outlived the idle timeout"
    );
    expect_idle_close(&mut h, &mut p, last, idle);
}

/// Polls `node` until `pick` accepts an event, or PATIENCE passes.
fn poll_until(node: &mut Node, what: &str, mut pick: impl FnMut(&Event<'_>) -> bool) {
    let deadline = Instant::now() + PATIENCE;
    loop {
        node.poll(Some(Duration::from_millis(10))).expect("poll");
        while let Some(ev) = node.next_event() {
            if pick(&ev) {
                return;
            }
        }
        assert!(Instant::now() < deadline, "no {what} within {PATIENCE:?}");
    }
}

#[test]
fn next_deadline_includes_a_response_timer_started_since_the_last_poll() {
    // The node brings its deadline heap up to date once per poll, not once per
    // frame; an application asking between polls must still never hear a time
    // later than the true one.
    let peer = TcpListener::bind(any_port()).expect("peer listens");
    let mut node = Node::new(NodeConfig::default()).expect("node");
    let link = node
        .connect(
            peer.local_addr().expect("bound"),
            &mooring::ConnectConfig::default(),
        )
        .expect("connect");
    poll_until(&mut node, "connect", |e| {
        matches!(e, Event::Connected { .. })
    });
    let (_conn, _) = peer.accept().expect("accepted");
    // A poll settles the connect timer's end.
    node.poll(Some(Duration::ZERO)).expect("poll");
    while node.next_event().is_some() {}
    assert_eq!(node.next_deadline(), None, "no timer runs on an idle link");
    let within = Duration::from_secs(10);
    let before = node.now();
    node.send_request(link, b"ping", within).expect("queued");
    let next = node
        .next_deadline()
        .expect("the response timer is a deadline at once");
    // Timers started between polls count from that poll's clock, at most
    // `before`.
    assert!(next <= before + within, "later than the response timer");
    assert!(
        next + Duration::from_secs(1) > before + within,
        "far too early"
    );
}

// ---------------------------------------------------------------------------
// Stale connection recovery (seed 001)
// ---------------------------------------------------------------------------

fn rejected(h: &mut Harness, who: SocketAddr) -> CloseReason {
    let (_, r) = h.wait_for(
        "a rejection",
        PATIENCE,
        |e| matches!(e, Rec::Rejected { peer, .. } if *peer == who),
    );
    match r {
        Rec::Rejected { reason, .. } => reason,
        _ => unreachable!(),
    }
}

#[test]
fn without_stale_recovery_a_single_connection_listener_refuses_newcomers_however_idle_its_link() {
    let clock = ManualClock::default();
    let mut h = Harness::acking_on(
        &clock,
        ListenConfig {
            max_connections: 1,
            ..ListenConfig::default()
        },
    );
    let mut a = Peer::connect(h.addr);
    assert_eq!(acked_id(&a.request(&hl7_msg("A1"))), "A1");
    let mut b = Peer::connect(h.addr);
    b.expect_closed(PATIENCE);
    assert_eq!(
        rejected(&mut h, b.local_addr()),
        CloseReason::TooManyConnections
    );
    // The incumbent goes quiet for a while (on the node's clock): still nobody
    // may take its place.
    clock.advance(Duration::from_millis(400));
    let mut c = Peer::connect(h.addr);
    c.expect_closed(PATIENCE);
    assert_eq!(
        rejected(&mut h, c.local_addr()),
        CloseReason::TooManyConnections
    );
    assert_eq!(acked_id(&a.request(&hl7_msg("A2"))), "A2");
    assert!(closes(&h.events()).is_empty());
}

/// An acking server on `clock` with one connection slot, whose link may be
/// replaced once it has been silent for `stale`, taking peers on `allow`.
fn one_slot_stale_after(clock: &ManualClock, stale: Duration, allow: AllowList) -> Harness {
    Harness::acking_on(
        clock,
        ListenConfig {
            max_connections: 1,
            stale_recovery: Some(stale),
            allow,
            ..ListenConfig::default()
        },
    )
}

#[test]
fn stale_recovery_refuses_a_newcomer_while_the_link_is_fresh_and_replaces_it_once_stale() {
    let stale = Duration::from_millis(300);
    let clock = ManualClock::default();
    let mut h = one_slot_stale_after(&clock, stale, AllowList::default());
    let mut a = Peer::connect(h.addr);
    let sent = clock.now();
    assert_eq!(acked_id(&a.request(&hl7_msg("A1"))), "A1");
    let mut b = Peer::connect(h.addr);
    b.expect_closed(PATIENCE);
    assert!(
        clock.now() - sent < stale,
        "test premise: the link was still fresh"
    );
    assert_eq!(
        rejected(&mut h, b.local_addr()),
        CloseReason::TooManyConnections
    );
    let sent = clock.now();
    assert_eq!(
        acked_id(&a.request(&hl7_msg("A2"))),
        "A2",
        "incumbent untouched"
    );

    // The incumbent goes quiet for longer than the stale timeout.
    clock.advance((stale + Duration::from_millis(50)).saturating_sub(clock.now() - sent));
    let mut c = Peer::connect(h.addr);
    assert_eq!(
        acked_id(&c.request(&hl7_msg("C1"))),
        "C1",
        "newcomer served"
    );
    a.expect_closed(PATIENCE);
    let old = a.local_addr();
    assert_eq!(
        h.close_reason("the stale link's close", old),
        CloseReason::StaleReplaced
    );
    let (_, stats) = h.stop();
    assert_eq!(stats.stale_replaced, 1);
    assert_eq!(stats.rejected_too_many, 1);
}

#[test]
fn with_an_allow_list_only_an_allowed_peer_can_replace_a_stale_link() {
    let stale = Duration::from_millis(200);
    let mut allow = AllowList::default();
    allow.push("127.0.0.1/32".parse().unwrap()).unwrap();
    let clock = ManualClock::default();
    let mut h = one_slot_stale_after(&clock, stale, allow);
    let mut a = Peer::connect_from(LOCALHOST, h.addr);
    assert_eq!(acked_id(&a.request(&hl7_msg("A1"))), "A1");
    clock.advance(stale + Duration::from_millis(50));

    let mut intruder = Peer::connect_from(LOCALHOST_2, h.addr);
    intruder.expect_closed(PATIENCE);
    assert_eq!(
        rejected(&mut h, intruder.local_addr()),
        CloseReason::NotAllowed
    );
    assert!(
        closes(&h.events()).is_empty(),
        "the stale link survived the intruder"
    );

    let mut c = Peer::connect_from(LOCALHOST, h.addr);
    assert_eq!(acked_id(&c.request(&hl7_msg("C1"))), "C1");
    let old = a.local_addr();
    a.expect_closed(PATIENCE);
    assert_eq!(
        h.close_reason("the stale link's close", old),
        CloseReason::StaleReplaced
    );
}

// ---------------------------------------------------------------------------
// Allow-list
// ---------------------------------------------------------------------------

#[test]
fn peers_outside_the_allow_list_are_closed_at_once_with_not_allowed() {
    let mut allow = AllowList::default();
    allow.push("127.0.0.2".parse().unwrap()).unwrap();
    let mut h = Harness::acking(ListenConfig {
        allow,
        ..ListenConfig::default()
    });
    let mut outsider = Peer::connect_from(LOCALHOST, h.addr);
    outsider.expect_closed(PATIENCE);
    assert_eq!(
        rejected(&mut h, outsider.local_addr()),
        CloseReason::NotAllowed
    );
    let mut insider = Peer::connect_from(LOCALHOST_2, h.addr);
    assert_eq!(acked_id(&insider.request(&hl7_msg("OK1"))), "OK1");
    let (_, stats) = h.stop();
    assert_eq!((stats.rejected_not_allowed, stats.accepted), (1, 1));
}

#[test]
fn an_allow_list_network_admits_every_address_inside_it() {
    let mut allow = AllowList::default();
    allow.push("127.0.0.0/8".parse().unwrap()).unwrap();
    let h = Harness::acking(ListenConfig {
        allow,
        ..ListenConfig::default()
    });
    let mut one = Peer::connect_from(LOCALHOST, h.addr);
    let mut two = Peer::connect_from(LOCALHOST_2, h.addr);
    assert_eq!(acked_id(&one.request(&hl7_msg("N1"))), "N1");
    assert_eq!(acked_id(&two.request(&hl7_msg("N2"))), "N2");
    let (_, stats) = h.stop();
    assert_eq!((stats.rejected_not_allowed, stats.accepted), (0, 2));
}

// ---------------------------------------------------------------------------
// Configuration validation
// ---------------------------------------------------------------------------

#[test]
fn impossible_configurations_are_named_before_anything_binds() {
    // An address already in use: a bind attempt would fail with AddrInUse, so a
    // configuration error proves validation ran first.
    let occupied = TcpListener::bind(any_port()).unwrap();
    let addr = occupied.local_addr().unwrap();
    let mut node = Node::new(NodeConfig::default()).unwrap();

    let err = node
        .listen(
            addr,
            ListenConfig {
                max_connections: 2,
                stale_recovery: Some(Duration::from_secs(120)),
                ..ListenConfig::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            SetupError::Config(ConfigError::StaleRecoveryNeedsSingleConnection {
                max_connections: 2
            })
        ),
        "{err:?}"
    );
    assert!(err.to_string().contains("max_connections"), "{err}");

    let err = node
        .listen(
            addr,
            ListenConfig {
                max_connections: 100,
                ..ListenConfig::default()
            },
        )
        .unwrap_err();
    assert!(
        matches!(
            err,
            SetupError::Config(ConfigError::MoreConnectionsThanSlots { .. })
        ),
        "{err:?}"
    );

    let err = node.listen(addr, ListenConfig::default()).unwrap_err();
    assert!(
        matches!(err, SetupError::Io(_)),
        "a valid config does try to bind: {err:?}"
    );

    let err = Client::new(
        addr,
        ClientConfig {
            response_timeout: Duration::ZERO,
            ..ClientConfig::default()
        },
    )
    .err()
    .expect("zero response timeout refused");
    assert!(
        matches!(
            err,
            SetupError::Config(ConfigError::ZeroTimeout {
                field: "response_timeout"
            })
        ),
        "{err:?}"
    );
    let mut conn = ClientConfig::default();
    conn.connect.connect_timeout = Duration::ZERO;
    assert!(matches!(
        Client::new(addr, conn).err(),
        Some(SetupError::Config(ConfigError::ZeroTimeout {
            field: "connect_timeout"
        }))
    ));
    drop(occupied);
}

// ---------------------------------------------------------------------------
// Slot reuse
// ---------------------------------------------------------------------------

#[test]
fn slots_freed_by_closed_links_each_serve_exactly_one_new_link() {
    let mut h = Harness::start(
        NodeConfig {
            max_links: 12,
            ..NodeConfig::default()
        },
        ListenConfig {
            max_connections: 12,
            ..ListenConfig::default()
        },
        Reply::Ack,
    );
    // Links closed in every way a peer can close them: EOF, EOF mid-frame, bad frame.
    for round in 0..3 {
        let mut gone = Vec::new();
        for i in 0..6 {
            let mut p = Peer::connect(h.addr);
            let id = format!("OLD{round}{i}");
            assert_eq!(acked_id(&p.request(&hl7_msg(&id))), id);
            match i % 3 {
                0 => {}
                1 => p.send(b"\x0bMSH|^~\\&|half"),
                _ => p.send(b"\x0bA\x0bB"),
            }
            gone.push(p.local_addr());
        }
        for who in gone {
            h.wait_for("a close", PATIENCE, |e| e.is_closed_from(who).is_some());
        }
    }
    // Twelve links at once, on the freed slots: each must be its own link.
    let mut peers: Vec<Peer> = (0..12).map(|_| Peer::connect(h.addr)).collect();
    for _ in 0..2 {
        for (i, p) in peers.iter_mut().enumerate() {
            let id = format!("NEW{i:02}");
            assert_eq!(acked_id(&p.request(&hl7_msg(&id))), id);
        }
    }
    let me: Vec<SocketAddr> = peers.iter().map(Peer::local_addr).collect();
    assert!(
        !h.events()
            .iter()
            .any(|e| me.iter().any(|a| e.is_closed_from(*a).is_some())),
        "no new link was closed"
    );
}

//! Framing over real loopback sockets: bad and oversized frames close only
//! their own link, MLLP noise is skipped and counted, MLLP release 2 commit
//! acknowledgements, frames larger than the working buffer, backpressure, and
//! many links on one node.

mod common;

use std::collections::HashMap;
use std::net::{SocketAddr, TcpListener};
use std::time::{Duration, Instant};

use common::*;
use mooring::frame::{MLLP_ACK, MLLP_NAK};
use mooring::{
    Client, ClientConfig, CloseReason, ConnectConfig, Event, Framing, LinkId, ListenConfig,
    LivenessConfig, Node, NodeConfig, Protocol, RequestError, SendError, ServerPolicy,
};

fn small_frames(framing: Framing) -> NodeConfig {
    NodeConfig {
        framing,
        max_frame: 1024,
        ..NodeConfig::default()
    }
}

fn closed_reason(h: &mut Harness, who: SocketAddr) -> CloseReason {
    h.close_reason("the link's close", who)
}

// ---------------------------------------------------------------------------
// Bad input from one peer never affects another
// ---------------------------------------------------------------------------

#[test]
fn oversized_and_malformed_frames_close_only_their_own_links_while_a_good_client_keeps_getting_replies(
) {
    let mut h = Harness::start(
        small_frames(Framing::Mllp),
        ListenConfig::default(),
        Reply::Ack,
    );
    let addr = h.addr;
    // A good client mid-exchange in its own thread, all through the attack.
    let good = std::thread::spawn(move || {
        let mut c = Client::new(
            addr,
            ClientConfig {
                correlate_hl7: true,
                response_timeout: PATIENCE,
                ..ClientConfig::default()
            },
        )
        .unwrap();
        for i in 0..200 {
            let id = format!("GOOD{i:04}");
            let reply = c
                .request(&hl7_msg(&id))
                .unwrap_or_else(|e| panic!("{id}: {e}"));
            assert_eq!(acked_id(reply), id);
        }
        c.stats()
    });
    h.wait_for("the good client's first message", PATIENCE, |e| {
        matches!(e, Rec::Message { .. })
    });

    // Over max_frame, and never ending.
    let mut big = Peer::connect(h.addr);
    let mut flood = vec![0x0B];
    flood.extend_from_slice(&[b'x'; 2000]);
    big.send(&flood);
    // A start block inside an unfinished frame.
    let mut restart = Peer::connect(h.addr);
    restart.send(b"\x0bMSH|^~\\&|half\x0bMSH|^~\\&|again\x1c\x0d");
    // An end block not followed by CR.
    let mut no_cr = Peer::connect(h.addr);
    no_cr.send(b"\x0bMSH|^~\\&|x\x1cX");

    big.expect_closed(PATIENCE);
    restart.expect_closed(PATIENCE);
    no_cr.expect_closed(PATIENCE);
    assert_eq!(
        closed_reason(&mut h, big.local_addr()),
        CloseReason::FrameTooLarge
    );
    assert_eq!(
        closed_reason(&mut h, restart.local_addr()),
        CloseReason::BadFrame
    );
    assert_eq!(
        closed_reason(&mut h, no_cr.local_addr()),
        CloseReason::BadFrame
    );

    let st = good.join().expect("the good client got every reply");
    assert_eq!(
        (st.connects, st.replies),
        (1, 200),
        "one link, never disturbed"
    );
    let evs = h.events();
    let bad_msgs = evs
        .iter()
        .filter(
            |e| matches!(e, Rec::Message { payload, .. } if !payload.starts_with(b"MSH|^~\\&|LAB")),
        )
        .count();
    assert_eq!(bad_msgs, 0, "no part of a bad frame was delivered");
}

#[test]
fn len32_frame_over_the_maximum_is_refused_from_its_header_before_any_payload_arrives() {
    let mut h = Harness::start(
        small_frames(Framing::Len32),
        ListenConfig::default(),
        Reply::Echo,
    );
    let mut liar = Peer::connect(h.addr);
    liar.send(&1_000_000u32.to_be_bytes());
    liar.expect_closed(PATIENCE);
    let me = liar.local_addr();
    let (_, r) = h.wait_for("the close", PATIENCE, |e| e.is_closed_from(me).is_some());
    match r {
        Rec::Closed { reason, stats, .. } => {
            assert_eq!(reason, CloseReason::FrameTooLarge);
            assert_eq!(stats.bytes_in, 4, "only the header was read");
        }
        _ => unreachable!(),
    }
    // A frame at the maximum, with every byte value, still goes through.
    let mut ok = Peer::connect(h.addr);
    let payload: Vec<u8> = (0..1024u32).map(|i| i as u8).collect();
    ok.send(&len32(&payload));
    assert_eq!(ok.read_len32(PATIENCE).unwrap(), payload);
}

// ---------------------------------------------------------------------------
// MLLP specifics
// ---------------------------------------------------------------------------

#[test]
fn stray_bytes_between_mllp_frames_are_skipped_and_counted() {
    let mut h = Harness::acking(ListenConfig::default());
    let mut p = Peer::connect(h.addr);
    let mut stream = b"\r\n\0".to_vec();
    stream.extend_from_slice(&mllp(&hl7_msg("S1")));
    stream.extend_from_slice(b"\r\n");
    stream.extend_from_slice(&mllp(&hl7_msg("S2")));
    stream.extend_from_slice(b"\n");
    p.send(&stream);
    assert_eq!(acked_id(&p.read_mllp(PATIENCE).unwrap()), "S1");
    assert_eq!(acked_id(&p.read_mllp(PATIENCE).unwrap()), "S2");
    // One byte per write: frames split anywhere still decode.
    for b in mllp(&hl7_msg("S3")) {
        p.send(&[b]);
    }
    assert_eq!(acked_id(&p.read_mllp(PATIENCE).unwrap()), "S3");
    let me = p.local_addr();
    drop(p);
    let (_, r) = h.wait_for("the close", PATIENCE, |e| e.is_closed_from(me).is_some());
    match r {
        Rec::Closed { reason, stats, .. } => {
            assert_eq!(reason, CloseReason::PeerClosed);
            assert_eq!(stats.skipped_bytes, 6, "\\r\\n\\0 + \\r\\n + \\n");
            assert_eq!(stats.frames_in, 3);
        }
        _ => unreachable!(),
    }
}

#[test]
fn receiver_with_commit_acknowledgement_answers_every_frame_with_an_ack_block() {
    let cfg = NodeConfig {
        mllp_commit_ack: true,
        ..NodeConfig::default()
    };
    let mut h = Harness::start(cfg, ListenConfig::default(), Reply::Nothing);
    let mut p = Peer::connect(h.addr);
    for id in ["R1", "R2"] {
        p.send_mllp(&hl7_msg(id));
        assert_eq!(p.read_mllp(PATIENCE).unwrap(), MLLP_ACK);
        let (_, m) = h.wait_for("the message", PATIENCE, |e| {
            matches!(e, Rec::Message { .. })
        });
        assert!(matches!(m, Rec::Message { payload, .. } if control_id(&payload) == id));
    }
}

#[test]
fn sender_with_commit_acknowledgement_takes_an_ack_block_as_the_reply_and_a_nak_as_an_error() {
    let listener = TcpListener::bind(any_port()).unwrap();
    let addr = listener.local_addr().unwrap();
    let server = std::thread::spawn(move || {
        let (s, _) = listener.accept().unwrap();
        let mut p = Peer::wrap(s);
        p.read_mllp(PATIENCE).unwrap();
        p.send_mllp(MLLP_ACK);
        p.read_mllp(PATIENCE).unwrap();
        p.send_mllp(MLLP_NAK);
        p.expect_closed(PATIENCE);
    });
    let mut c = Client::new(
        addr,
        ClientConfig {
            node: NodeConfig {
                max_links: 2,
                mllp_commit_ack: true,
                ..NodeConfig::default()
            },
            response_timeout: PATIENCE,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    assert_eq!(c.request(&hl7_msg("A")).unwrap(), MLLP_ACK);
    assert_eq!(c.request(&hl7_msg("N")).unwrap_err(), RequestError::Nak);
    drop(c);
    server.join().unwrap();
}

#[test]
fn two_mooring_ends_with_commit_acknowledgement_complete_a_request_on_the_ack_block() {
    let cfg = NodeConfig {
        mllp_commit_ack: true,
        ..NodeConfig::default()
    };
    let mut h = Harness::start(cfg.clone(), ListenConfig::default(), Reply::Nothing);
    let mut c = Client::new(
        h.addr,
        ClientConfig {
            node: NodeConfig {
                max_links: 2,
                ..cfg
            },
            response_timeout: PATIENCE,
            ..ClientConfig::default()
        },
    )
    .unwrap();
    for id in ["C1", "C2", "C3"] {
        assert_eq!(c.request(&hl7_msg(id)).unwrap(), MLLP_ACK);
        let (_, m) = h.wait_for("the message", PATIENCE, |e| {
            matches!(e, Rec::Message { .. })
        });
        assert!(matches!(m, Rec::Message { payload, .. } if control_id(&payload) == id));
    }
    assert_eq!(c.stats().connects, 1);
}

// ---------------------------------------------------------------------------
// Frames larger than the working buffer
// ---------------------------------------------------------------------------

#[test]
fn frames_larger_than_the_working_buffer_up_to_max_frame_travel_both_ways() {
    // Over the mooring protocol the DATA header travels in the same frame.
    let kinds = [
        (Framing::Mllp, Protocol::Raw),
        (Framing::Len32, Protocol::Raw),
        (Framing::Mllp, Protocol::Mooring),
        (Framing::Len32, Protocol::Mooring),
    ];
    for (framing, protocol) in kinds {
        let cfg = NodeConfig {
            framing,
            buffer_size: 1024,
            max_frame: 256 * 1024,
            large_buffers: 2,
            ..NodeConfig::default()
        };
        let liveness = LivenessConfig {
            protocol,
            ..LivenessConfig::default()
        };
        let listen = ListenConfig {
            liveness: liveness.clone(),
            ..ListenConfig::default()
        };
        let h = Harness::start(cfg.clone(), listen, Reply::Echo);
        let mut c = Client::new(
            h.addr,
            ClientConfig {
                node: NodeConfig {
                    max_links: 2,
                    ..cfg.clone()
                },
                connect: ConnectConfig {
                    liveness,
                    ..ConnectConfig::default()
                },
                response_timeout: PATIENCE,
                ..ClientConfig::default()
            },
        )
        .unwrap();
        // max_frame bounds the whole frame payload, the DATA header included.
        let top = match protocol {
            Protocol::Raw => 256 * 1024,
            Protocol::Mooring => 250_000,
        };
        let sizes = [10, 1000, 1020, 1021, 1022, 1024, 5000, 100_000, top];
        for (k, &n) in sizes.iter().enumerate() {
            // MLLP payloads cannot hold the block bytes; len32 carries anything.
            let payload: Vec<u8> = match framing {
                Framing::Mllp => (0..n).map(|i| b'A' + ((i + k) % 26) as u8).collect(),
                Framing::Len32 => (0..n).map(|i| ((i * 7 + k) % 256) as u8).collect(),
            };
            let reply = c
                .request(&payload)
                .unwrap_or_else(|e| panic!("{framing:?} {n} bytes: {e}"));
            assert!(reply == &payload[..], "{framing:?}: {n}-byte echo differs");
        }
        assert_eq!(
            c.stats().connects,
            1,
            "{framing:?}: one link for every size"
        );
        assert_eq!(
            c.request(&vec![b'A'; 256 * 1024 + 1]).unwrap_err(),
            RequestError::FrameTooLarge
        );
    }
}

/// One message to a close-after-reply server whose working buffer is
/// `buffer_size`: `copies` echoes of it come back, then the link closes with
/// `ClosedAfterReply`.
fn close_after_reply_round(framing: Framing, buffer_size: usize, payload: &[u8], reply: Reply) {
    let copies = match reply {
        Reply::EchoTwice => 2,
        _ => 1,
    };
    let cfg = NodeConfig {
        framing,
        buffer_size,
        ..NodeConfig::default()
    };
    let listen = ListenConfig {
        policy: ServerPolicy::CloseAfterReply,
        ..ListenConfig::default()
    };
    let mut h = Harness::start(cfg, listen, reply);
    let mut p = Peer::connect(h.addr);
    match framing {
        Framing::Mllp => p.send_mllp(payload),
        Framing::Len32 => p.send(&len32(payload)),
    }
    for n in 1..=copies {
        let got = read_frame(framing, &mut p);
        assert!(
            got.as_deref() == Ok(payload),
            "{framing:?}: frame {n} of the reply: {:?}",
            got.map(|b| b.len())
        );
    }
    assert_eq!(
        read_frame(framing, &mut p),
        Err(ReadEnd::Closed),
        "{framing:?}"
    );
    let me = p.local_addr();
    h.wait_for("the close after the reply", PATIENCE, |r| {
        r.is_closed_from(me) == Some(CloseReason::ClosedAfterReply)
    });
}

/// A reply larger than the working buffer leaves in one write straight from the
/// received frame; the close-after-reply policy still waits for it to be out.
#[test]
fn a_close_after_reply_server_closes_once_a_reply_larger_than_its_working_buffer_is_out() {
    let payload: Vec<u8> = (0..50_000).map(|i| b'A' + (i % 26) as u8).collect();
    for framing in [Framing::Mllp, Framing::Len32] {
        close_after_reply_round(framing, 1024, &payload, Reply::Echo);
    }
}

/// A reply of two frames that together overflow the working buffer: both go
/// out, then the link closes (writing the first early to make room for the
/// second must not close the link in between).
#[test]
fn a_close_after_reply_server_sends_every_frame_of_a_reply_that_overflows_its_working_buffer() {
    for framing in [Framing::Mllp, Framing::Len32] {
        close_after_reply_round(framing, 4096, &numbered(1, 3000), Reply::EchoTwice);
    }
}

// ---------------------------------------------------------------------------
// Backpressure
// ---------------------------------------------------------------------------

/// A node linked to a raw peer with a small receive window (so the kernel
/// buffers fill quickly) that reads nothing until the test says so.
fn connected_to_a_small_window(cfg: NodeConfig) -> (Node, LinkId, std::net::TcpStream) {
    use socket2::SockRef;
    let listener = TcpListener::bind(any_port()).unwrap();
    SockRef::from(&listener)
        .set_recv_buffer_size(8 * 1024)
        .unwrap();
    let mut node = Node::new(cfg).unwrap();
    let (link, peer) = connect_to(&mut node, &listener);
    (node, link, peer)
}

/// Links `node` to a raw peer accepted from `listener`, once connected.
fn connect_to(node: &mut Node, listener: &TcpListener) -> (LinkId, std::net::TcpStream) {
    let link = node
        .connect(listener.local_addr().unwrap(), &ConnectConfig::default())
        .unwrap();
    let (peer, _) = listener.accept().unwrap();
    let deadline = Instant::now() + PATIENCE;
    let mut connected = false;
    while !connected {
        assert!(Instant::now() < deadline, "never connected");
        node.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = node.next_event() {
            connected |= matches!(ev, Event::Connected { link: l, .. } if l == link);
        }
    }
    (link, peer)
}

/// Small frames queued past the working block go out as the block fills; they
/// never take a large block, which a frame bigger than `buffer_size` on
/// another link needs.
#[test]
fn small_frames_beyond_the_working_buffer_leave_the_large_buffer_to_a_large_frame() {
    for framing in [Framing::Mllp, Framing::Len32] {
        let listener = TcpListener::bind(any_port()).unwrap();
        let mut node = Node::new(NodeConfig {
            framing,
            buffer_size: 4096,
            large_buffers: 1,
            ..NodeConfig::default()
        })
        .unwrap();
        let (small, small_peer) = connect_to(&mut node, &listener);
        let (large, large_peer) = connect_to(&mut node, &listener);
        let (mut small_peer, mut large_peer) = (Peer::wrap(small_peer), Peer::wrap(large_peer));
        // 64 x 256 B: four working blocks' worth, queued without a poll between.
        for seq in 0..64 {
            node.send(small, &numbered(seq, 256))
                .expect("small frame queued");
        }
        let big = numbered(1000, 6000);
        assert_eq!(
            node.send(large, &big),
            Ok(()),
            "{framing:?}: the large buffer was free for the large frame"
        );
        node.flush();
        for seq in 0..64 {
            let got = read_frame(framing, &mut small_peer).expect("small frame");
            assert_eq!(got, numbered(seq, 256), "{framing:?}: frame {seq}");
        }
        assert_eq!(
            read_frame(framing, &mut large_peer).expect("large frame"),
            big
        );
        assert_eq!(node.stats().large_buffer_waits, 0);
    }
}

/// A large frame (32 KiB or more) goes to the socket straight from the
/// caller's bytes; when the socket takes only part of it, the rest is queued,
/// and what is sent after it follows it, whole and in order.
#[test]
fn a_large_frame_the_socket_takes_only_in_part_arrives_whole_before_what_follows_it() {
    for framing in [Framing::Mllp, Framing::Len32] {
        let (mut node, link, peer) = connected_to_a_small_window(NodeConfig {
            framing,
            buffer_size: 4096,
            max_frame: 512 * 1024,
            max_links: 2,
            ..NodeConfig::default()
        });

        let letters = |k: usize, n: usize| -> Vec<u8> {
            (0..n).map(|i| b'A' + ((i + k) % 26) as u8).collect()
        };
        // Loopback sockets start with a send buffer of megabytes: send until
        // one frame does not fit whole.
        const BIG: usize = 400_000;
        let mut sent = Vec::new();
        while node.tx_pending(link) == 0 {
            assert!(sent.len() < 64, "{framing:?}: the socket never pushed back");
            sent.push(letters(sent.len(), BIG));
            node.send(link, &sent[sent.len() - 1]).unwrap();
        }
        let left = node.tx_pending(link);
        assert!(
            left < BIG,
            "{framing:?}: the socket took part of the last frame and {left} bytes wait"
        );
        sent.push(numbered(1, 100));
        sent.push(letters(7, 300_000));
        let frames = sent.len();
        let reader = std::thread::spawn(move || {
            let mut p = Peer::wrap(peer);
            (0..frames)
                .map(|_| match framing {
                    Framing::Mllp => p.read_mllp(PATIENCE),
                    Framing::Len32 => p.read_len32(PATIENCE),
                })
                .collect::<Result<Vec<_>, _>>()
        });
        let deadline = Instant::now() + PATIENCE;
        let mut writable = 0;
        for frame in &sent[frames - 2..] {
            while let Err(e) = node.send(link, frame) {
                assert_eq!(e, SendError::TxFull, "{framing:?}");
                assert!(Instant::now() < deadline, "{framing:?}: no room came back");
                node.poll(Some(Duration::from_millis(10))).unwrap();
                drain(&mut node, &mut writable, link);
            }
        }
        while node.tx_pending(link) > 0 {
            assert!(Instant::now() < deadline, "{framing:?}: never drained");
            node.poll(Some(Duration::from_millis(10))).unwrap();
            drain(&mut node, &mut writable, link);
        }
        let got = reader.join().unwrap().expect("every frame");
        assert!(
            got == sent,
            "{framing:?}: frames differ or are out of order"
        );
    }
}

/// The next frame from a raw peer, in the node's framing.
fn read_frame(framing: Framing, p: &mut Peer) -> Result<Vec<u8>, ReadEnd> {
    match framing {
        Framing::Mllp => p.read_mllp(PATIENCE),
        Framing::Len32 => p.read_len32(PATIENCE),
    }
}

fn numbered(seq: u32, len: usize) -> Vec<u8> {
    let mut p = format!("{seq:08}|").into_bytes();
    p.resize(len, b'.');
    p
}

fn drain(node: &mut Node, writable: &mut usize, link: LinkId) {
    while let Some(ev) = node.next_event() {
        match ev {
            Event::Writable { link: l } if l == link => *writable += 1,
            Event::Closed { reason, .. } => panic!("link closed: {reason}"),
            _ => {}
        }
    }
}

#[test]
fn send_reports_tx_full_when_the_peer_does_not_read_and_writable_once_it_does() {
    let (mut node, link, peer) = connected_to_a_small_window(NodeConfig {
        buffer_size: 4096,
        max_links: 2,
        ..NodeConfig::default()
    });
    let deadline = Instant::now() + PATIENCE;

    // Queue frames until neither the link's buffer nor the kernel takes more.
    const LEN: usize = 1000;
    let mut seq = 0u32;
    let mut writable = 0;
    let mut refused = 0;
    let mut stuck_polls = 0;
    while stuck_polls < 3 {
        assert!(Instant::now() < deadline, "the buffers never filled");
        match node.send(link, &numbered(seq, LEN)) {
            Ok(()) => seq += 1,
            Err(SendError::TxFull) => {
                refused += 1;
                let (pending, seen) = (node.tx_pending(link), writable);
                node.poll(Some(Duration::from_millis(20))).unwrap();
                drain(&mut node, &mut writable, link);
                if node.tx_pending(link) == pending {
                    // Nothing was written: the peer's window is shut.
                    assert_eq!(writable, seen, "Writable while no room came back");
                    stuck_polls += 1;
                } else {
                    stuck_polls = 0;
                }
            }
            Err(e) => panic!("send: {e}"),
        }
    }
    assert!(refused > 0 && node.tx_pending(link) > 0);

    // The peer starts reading: room comes back, announced by Writable; a refused
    // frame is sent once Writable says so.
    let reader = std::thread::spawn(move || {
        let mut p = Peer::wrap(peer);
        let mut got = Vec::new();
        while let Ok(f) = p.read_mllp(PATIENCE) {
            got.push(String::from_utf8_lossy(&f[..8]).parse::<u32>().unwrap());
        }
        got
    });
    let mut more = 0;
    writable = 0;
    let mut waiting = true; // the last send was refused
    while more < 200 {
        if waiting {
            let until = Instant::now() + PATIENCE;
            let seen = writable;
            while writable == seen {
                assert!(
                    Instant::now() < until,
                    "TxFull was never followed by Writable"
                );
                node.poll(Some(Duration::from_millis(20))).unwrap();
                drain(&mut node, &mut writable, link);
            }
        }
        match node.send(link, &numbered(seq, LEN)) {
            Ok(()) => {
                seq += 1;
                more += 1;
                waiting = false;
            }
            Err(SendError::TxFull) => waiting = true,
            Err(e) => panic!("send: {e}"),
        }
    }
    let until = Instant::now() + PATIENCE;
    while node.tx_pending(link) > 0 {
        assert!(Instant::now() < until, "never drained");
        node.poll(Some(Duration::from_millis(20))).unwrap();
        drain(&mut node, &mut writable, link);
    }
    node.close(link);
    let got = reader.join().unwrap();
    assert_eq!(
        got,
        (0..seq).collect::<Vec<_>>(),
        "every accepted frame, in order, none lost"
    );
}

// ---------------------------------------------------------------------------
// Many links
// ---------------------------------------------------------------------------

/// Two peers stream frames of mixed sizes (some larger than the working
/// buffer, some larger than the burst buffer) faster than the node reads: every
/// frame arrives whole and in order on its own link, whether reads go through
/// the burst buffer (and move between it and the other blocks) or not.
#[test]
fn streams_faster_than_the_working_buffer_arrive_whole_and_in_order_with_or_without_the_burst_buffer(
) {
    const FRAMES: u32 = 400;
    // Small ones first: the first reads fill the working buffer, so the link
    // turns to the burst buffer before a large frame moves it to a large one.
    const SIZES: [usize; 12] = [10, 300, 64, 700, 200, 1500, 90, 5000, 40, 300, 100, 4000];
    let size = |seq: u32| SIZES[seq as usize % SIZES.len()];
    for framing in [Framing::Mllp, Framing::Len32] {
        for read_burst in [4096, 0] {
            let mut node = Node::new(NodeConfig {
                framing,
                max_frame: 8192,
                buffer_size: 1024,
                read_burst,
                ..NodeConfig::default()
            })
            .unwrap();
            let l = node.listen(any_port(), ListenConfig::default()).unwrap();
            let addr = node.local_addr(l).unwrap();
            let writers: Vec<_> = (0..2)
                .map(|_| {
                    std::thread::spawn(move || {
                        let mut p = Peer::connect(addr);
                        let mut all = Vec::new();
                        for seq in 0..FRAMES {
                            let payload = numbered(seq, size(seq));
                            all.extend(match framing {
                                Framing::Mllp => mllp(&payload),
                                Framing::Len32 => len32(&payload),
                            });
                        }
                        p.send(&all);
                        p
                    })
                })
                .collect();
            let mut next: HashMap<LinkId, u32> = HashMap::new();
            let deadline = Instant::now() + Duration::from_secs(10);
            while next.len() < 2 || next.values().any(|&n| n < FRAMES) {
                assert!(Instant::now() < deadline, "{framing:?}: only {next:?}");
                node.poll(Some(Duration::from_millis(10))).unwrap();
                while let Some(ev) = node.next_event() {
                    match ev {
                        Event::Connected { link, .. } => {
                            next.insert(link, 0);
                        }
                        Event::Message { link, payload } => {
                            let seq = next.get_mut(&link).expect("a known link");
                            assert!(
                                payload == numbered(*seq, size(*seq)).as_slice(),
                                "{framing:?} burst {read_burst}: frame {seq} differs"
                            );
                            *seq += 1;
                        }
                        Event::Closed { reason, .. } => panic!("{framing:?}: closed: {reason}"),
                        _ => {}
                    }
                }
            }
            let burst_reads = node.stats().burst_reads;
            if read_burst > 0 {
                assert!(
                    burst_reads > 0,
                    "{framing:?}: the burst buffer was never used"
                );
            } else {
                assert_eq!(burst_reads, 0);
            }
            for w in writers {
                drop(w.join().expect("writer"));
            }
        }
    }
}

#[test]
fn one_node_serves_hundreds_of_links_at_once() {
    const N: usize = 300;
    let sizes = NodeConfig {
        max_links: N + 8,
        buffer_size: 1024,
        ..NodeConfig::default()
    };
    let mut h = Harness::start(
        sizes.clone(),
        ListenConfig {
            max_connections: N + 8,
            ..ListenConfig::default()
        },
        Reply::Ack,
    );
    let mut node = Node::new(sizes).unwrap();
    let mut ids: HashMap<LinkId, String> = HashMap::new();
    for i in 0..N {
        let l = node.connect(h.addr, &ConnectConfig::default()).unwrap();
        ids.insert(l, format!("L{i:04}"));
    }
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut replied: HashMap<LinkId, String> = HashMap::new();
    let mut queued: Vec<(LinkId, Vec<u8>)> = Vec::new();
    while replied.len() < N {
        assert!(
            Instant::now() < deadline,
            "{} of {N} replies",
            replied.len()
        );
        node.poll(Some(Duration::from_millis(20))).unwrap();
        while let Some(ev) = node.next_event() {
            match ev {
                Event::Connected { link, .. } => queued.push((link, hl7_msg(&ids[&link]))),
                Event::Message { link, payload } => {
                    assert!(replied.insert(link, acked_id(payload)).is_none());
                }
                Event::Closed { reason, .. } => panic!("a link closed: {reason}"),
                _ => {}
            }
        }
        for (link, msg) in queued.drain(..) {
            node.send_request(link, &msg, PATIENCE).unwrap();
        }
    }
    assert_eq!(replied, ids, "each link got the ACK for its own message");
    let evs = h.events();
    let connected = evs
        .iter()
        .filter(|e| matches!(e, Rec::Connected { .. }))
        .count();
    assert_eq!(connected, N);
    assert!(evs
        .iter()
        .all(|e| !matches!(e, Rec::Closed { .. } | Rec::Rejected { .. })));
}

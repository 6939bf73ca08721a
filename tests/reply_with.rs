//! `Node::reply_with`: a reply to the message just delivered, built straight
//! into the link's transmit buffer when it fits there, in the caller's scratch
//! buffer otherwise; checked like `Node::send`'s payload either way.

mod common;

use std::time::{Duration, Instant};

use common::Peer;

use mooring::{Event, Framing, LinkId, ListenConfig, Node, NodeConfig, SendError};

/// Bound on reading one frame back.
const WAIT: Duration = Duration::from_secs(5);

/// Where `write` was asked to build a reply.
#[derive(Debug, PartialEq)]
enum Built {
    /// Outside the scratch buffer: in the transmit buffer.
    InPlace,
    /// In the scratch buffer.
    Scratch,
}

/// A node listening with `framing` and `buffer_size`, one peer connected.
fn connected(framing: Framing, buffer_size: usize) -> (Node, Peer, LinkId) {
    let cfg = NodeConfig {
        framing,
        buffer_size,
        max_frame: 16 * 1024,
        ..NodeConfig::default()
    };
    let (mut node, l) = common::listening_node(cfg, ListenConfig::default());
    let peer = Peer::connect(node.local_addr(l).unwrap());
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "peer never connected");
        node.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = node.next_event() {
            if let Event::Connected { link, .. } = ev {
                return (node, peer, link);
            }
        }
    }
}

/// Sends `msg` from the peer and answers it with `reply_with`: the reply is
/// `make(msg)`. Returns the result and where each call of `write` built it.
fn answer(
    node: &mut Node,
    peer: &mut Peer,
    framing: Framing,
    msg: &[u8],
    make: impl Fn(&[u8]) -> Option<Vec<u8>>,
) -> (Result<bool, SendError>, Vec<Built>) {
    match framing {
        Framing::Mllp => peer.send_mllp(msg),
        _ => peer.send(&common::len32(msg)),
    }
    let mut scratch = vec![0u8; 16 * 1024];
    let deadline = Instant::now() + WAIT;
    loop {
        assert!(Instant::now() < deadline, "no message");
        node.poll(Some(Duration::from_millis(10))).unwrap();
        while let Some(ev) = node.next_event() {
            if let Event::Message { link, .. } = ev {
                let scratch_at = scratch.as_ptr_range();
                let mut calls = Vec::new();
                let res = node.reply_with(link, &mut scratch, |m, out| {
                    calls.push(if scratch_at.contains(&out.as_ptr()) {
                        Built::Scratch
                    } else {
                        Built::InPlace
                    });
                    assert_eq!(m, msg, "write sees the message");
                    let reply = make(m)?;
                    let dst = out.get_mut(..reply.len())?;
                    dst.copy_from_slice(&reply);
                    Some(reply.len())
                });
                node.flush();
                return (res, calls);
            }
        }
    }
}

fn read(peer: &mut Peer, framing: Framing) -> Vec<u8> {
    match framing {
        Framing::Mllp => peer.read_mllp(WAIT),
        _ => peer.read_len32(WAIT),
    }
    .expect("a whole frame")
}

/// A reply of `len` bytes, with no MLLP block byte.
fn reply_of(len: usize) -> Vec<u8> {
    (0..len).map(|i| b'a' + (i % 26) as u8).collect()
}

#[test]
fn a_small_reply_is_built_in_the_transmit_buffer() {
    for framing in [Framing::Mllp, Framing::Len32] {
        let (mut node, mut peer, _) = connected(framing, 4096);
        for n in 0..3 {
            let msg = format!("MSH|^~\\&|A|B|C|D|||ADT^A01|ID{n}|P|2.5");
            let (res, calls) = answer(&mut node, &mut peer, framing, msg.as_bytes(), |m| {
                Some([b"ACK:".as_slice(), m].concat())
            });
            assert_eq!(res, Ok(true), "{framing:?}");
            assert_eq!(calls, [Built::InPlace], "{framing:?}: no scratch copy");
            assert_eq!(read(&mut peer, framing), format!("ACK:{msg}").as_bytes());
        }
    }
}

#[test]
fn a_reply_larger_than_the_free_tail_is_built_in_scratch_and_sent_intact() {
    for framing in [Framing::Mllp, Framing::Len32] {
        let (mut node, mut peer, _) = connected(framing, 1024);
        let big = reply_of(3000);
        let (res, calls) = answer(&mut node, &mut peer, framing, b"hello", |_| {
            Some(big.clone())
        });
        assert_eq!(res, Ok(true), "{framing:?}");
        assert_eq!(calls, [Built::InPlace, Built::Scratch], "{framing:?}");
        assert_eq!(read(&mut peer, framing), big, "{framing:?}");
        // The next small one is in place again.
        let (res, calls) = answer(&mut node, &mut peer, framing, b"again", |_| {
            Some(b"ok".to_vec())
        });
        assert_eq!((res, calls), (Ok(true), vec![Built::InPlace]));
        assert_eq!(read(&mut peer, framing), b"ok");
    }
}

#[test]
fn a_reply_the_framing_cannot_carry_is_refused_and_nothing_is_sent() {
    // In place (small) and from scratch (larger than the block): the same
    // refusal as `send`'s, the link still open, the next reply intact.
    for len in [10, 3000] {
        let (mut node, mut peer, link) = connected(Framing::Mllp, 1024);
        for bad in [0x1C, 0x0B] {
            let (res, _) = answer(&mut node, &mut peer, Framing::Mllp, b"msg", |_| {
                let mut r = reply_of(len);
                r[len / 2] = bad;
                Some(r)
            });
            assert_eq!(res, Err(SendError::Unframeable), "{len} bytes, {bad:#x}");
            assert!(node.is_open(link));
        }
        let (res, _) = answer(&mut node, &mut peer, Framing::Mllp, b"msg", |_| {
            Some(b"fine".to_vec())
        });
        assert_eq!(res, Ok(true));
        assert_eq!(
            read(&mut peer, Framing::Mllp),
            b"fine",
            "{len}: refused replies sent nothing"
        );
    }
}

#[test]
fn no_reply_sends_nothing_and_no_message_is_refused() {
    let (mut node, mut peer, link) = connected(Framing::Mllp, 4096);
    let mut scratch = [0u8; 64];
    assert_eq!(
        node.reply_with(link, &mut scratch, |_, _| Some(0)),
        Err(SendError::NoMessage),
        "nothing received yet"
    );
    let (res, calls) = answer(&mut node, &mut peer, Framing::Mllp, b"msg", |_| None);
    assert_eq!(res, Ok(false));
    assert_eq!(calls, [Built::InPlace, Built::Scratch]);
    let (res, _) = answer(&mut node, &mut peer, Framing::Mllp, b"msg", |_| {
        Some(b"after".to_vec())
    });
    assert_eq!(res, Ok(true));
    assert_eq!(
        read(&mut peer, Framing::Mllp),
        b"after",
        "nothing before it"
    );
}

//! Warm transmit blocks: a link whose write empties its queue may keep the
//! working block for its next reply.
//!
//! At one message in flight (request, reply, request...) every reply would
//! otherwise take a working block from the pool and give it back when written
//! (callgrind, rr1 mllp echo: about 107 user-space instructions per message).
//! Only the last [`WARM_LINKS`] links to empty their queue keep one, so blocks
//! held by links gone quiet stay bounded (at most `WARM_LINKS x buffer_size`
//! resident) and most idle links still own no bytes. Taking a block never
//! waits on this: the working pool has two blocks per link slot, and a link
//! holds at most one of them for each direction.

use super::*;

/// How many links may keep an emptied transmit block.
pub(super) const WARM_LINKS: usize = 64;

/// The links listed as keeping their emptied transmit block, oldest first;
/// `Slot::in_warm` marks them, so each is listed once.
pub(super) struct WarmTx {
    links: heapless::Deque<u32, WARM_LINKS>,
}

impl WarmTx {
    pub(super) fn new() -> Self {
        WarmTx {
            links: heapless::Deque::new(),
        }
    }

    /// Lists `i`; when the list is full, the oldest link comes off it and
    /// is returned.
    fn admit(&mut self, i: u32) -> Option<u32> {
        let oldest = if self.links.is_full() {
            self.links.pop_front()
        } else {
            None
        };
        // Room was just made when it was full.
        let _ = self.links.push_back(i);
        oldest
    }
}

impl Node {
    /// The write emptied link `i`'s queue and its working block stayed
    /// ([`Buffers::consume_keeping`]): it keeps the block if listed, or joins
    /// the list, and the link that leaves it gives back an empty block. (A
    /// closed link's blocks went back at close; its entry just ages out.)
    #[inline]
    pub(super) fn keep_warm(&mut self, i: u32) {
        let s = &mut self.slots[i as usize];
        if s.in_warm {
            return;
        }
        s.in_warm = true;
        if let Some(j) = self.warm.admit(i) {
            let t = &mut self.slots[j as usize];
            t.in_warm = false;
            if t.tx.is_empty() {
                self.bufs.release(&mut t.tx);
            }
        }
    }

    /// How many links hold a transmit block with nothing queued in it.
    #[cfg(test)]
    fn empty_tx_blocks(&self) -> usize {
        self.slots
            .iter()
            .filter(|s| s.tx.block.is_some() && s.tx.is_empty())
            .count()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{Framing, ListenConfig, NodeConfig};
    use std::io::{Read, Write};
    use std::net::TcpStream;

    #[test]
    fn the_list_holds_the_last_links_and_lets_the_oldest_go() {
        let mut w = WarmTx::new();
        for i in 0..WARM_LINKS as u32 {
            assert_eq!(w.admit(i), None);
        }
        assert_eq!(w.admit(100), Some(0));
        assert_eq!(w.admit(101), Some(1));
    }

    /// Polls until link `id`'s echo of `msg` is read back by `peer`.
    fn echo(node: &mut Node, peer: &mut TcpStream, msg: &[u8]) {
        let mut wire = vec![0x0B];
        wire.extend_from_slice(msg);
        wire.extend_from_slice(&[0x1C, 0x0D]);
        peer.write_all(&wire).unwrap();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        let mut got = Vec::new();
        while got.len() < wire.len() {
            assert!(std::time::Instant::now() < deadline, "no echo");
            node.poll(Some(Duration::from_millis(5))).unwrap();
            while let Some(ev) = node.next_event() {
                if let Event::Message { link, .. } = ev {
                    node.forward(link).unwrap();
                }
            }
            node.flush();
            let mut b = [0u8; 256];
            match peer.read(&mut b) {
                Ok(n) => got.extend_from_slice(&b[..n]),
                Err(e) if would_block(&e) => {}
                Err(e) => panic!("read: {e}"),
            }
        }
        assert_eq!(got, wire);
    }

    #[test]
    fn busy_links_keep_an_emptied_transmit_block_and_no_more_than_the_list_holds() {
        let mut node = Node::new(NodeConfig {
            max_links: WARM_LINKS + 8,
            framing: Framing::Mllp,
            ..NodeConfig::default()
        })
        .unwrap();
        let l = node
            .listen(
                "127.0.0.1:0".parse().unwrap(),
                ListenConfig {
                    max_connections: WARM_LINKS + 8,
                    ..ListenConfig::default()
                },
            )
            .unwrap();
        let addr = node.local_addr(l).unwrap();
        let mut peers = Vec::new();
        for n in 0..WARM_LINKS + 4 {
            let mut p = TcpStream::connect(addr).unwrap();
            p.set_nonblocking(true).unwrap();
            echo(&mut node, &mut p, format!("first {n}").as_bytes());
            peers.push(p);
            // Each link keeps its block, up to the list's length.
            assert_eq!(node.empty_tx_blocks(), (n + 1).min(WARM_LINKS));
        }
        // The newest link keeps its block from one reply to the next, the
        // oldest listed ones have given theirs back.
        let last = peers.len() - 1;
        echo(&mut node, &mut peers[last], b"again");
        assert_eq!(node.empty_tx_blocks(), WARM_LINKS);
        let held = |n: usize| {
            let port = peers[n].local_addr().unwrap().port();
            node.slots
                .iter()
                .any(|s| s.used && s.peer.port() == port && s.tx.block.is_some())
        };
        assert!(held(last));
        assert!(!held(0));
    }
}

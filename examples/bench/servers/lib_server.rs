//! (a) mooring: the library's `Server`, and the CLI (`mooring listen`).

#[allow(unused_imports)]
use crate::*;

/// (a) mooring: the [`mooring::Server`] a user would write.
pub(crate) fn serve_mooring(s: Serve) -> io::Result<()> {
    use mooring::{Event, Framing, ListenConfig, NodeConfig, Server, ServerPolicy};
    let node = NodeConfig {
        max_links: s.max_links + 64,
        framing: match s.wire {
            Wire::Mllp => Framing::Mllp,
            Wire::Len32 => Framing::Len32,
        },
        ..NodeConfig::default()
    };
    let listen = ListenConfig {
        max_connections: s.max_links + 64,
        policy: if s.close_after_reply {
            ServerPolicy::CloseAfterReply
        } else {
            ServerPolicy::KeepOpen
        },
        tls: s.tls.then(crate::tls::mooring_server),
        ..ListenConfig::default()
    };
    let mut server = Server::bind(loopback(), node, listen).map_err(io::Error::other)?;
    let mut counts = vec![0u64; s.max_links + 64];
    let mut stamp = mooring::hl7::TimestampCache::new();
    announce(server.local_addr());
    loop {
        // No timeout, as every peer waits: an epoll_wait with one arms a kernel
        // timer each time the server sleeps (one A/B run, rr1 mllp: 28 vs 32
        // s/M msgs; no difference seen on len32).
        server.serve(None, |ev, reply| match *ev {
            Event::Connected { link, .. } => counts[link.slot() as usize] = 0,
            Event::Message { link, payload } => {
                SERVED.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                if s.hl7 {
                    // What a user would write: the library's ACK (`Reply::ack`:
                    // `hl7::build_ack`'s bytes, queued unscanned when clean), its
                    // timestamp formatted once per second.
                    let ts = *stamp.get(unix_secs());
                    reply.ack(payload, mooring::hl7::AckCode::Accept, &ts);
                } else if s.ack_every == 1 {
                    // One copy, receive block to transmit block (Reply::echo).
                    let _ = payload;
                    reply.echo();
                } else {
                    let c = &mut counts[link.slot() as usize];
                    *c += 1;
                    if c.is_multiple_of(s.ack_every) {
                        reply.set(ACK);
                    }
                }
            }
            _ => {}
        })?;
    }
}

/// Seconds since the Unix epoch, for ACK timestamps.
pub(crate) fn unix_secs() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

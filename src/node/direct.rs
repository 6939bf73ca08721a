//! Large frames written straight from where their payload lies: the caller's
//! bytes, or the receive block of an echoed or forwarded message. Header,
//! payload and trailer go out in one vectored write, and only what the socket
//! does not take is copied into the link's transmit block (the ordinary
//! writable path sends it from there).

use super::*;

/// Encoded frames of this many bytes or more go out directly when nothing is
/// queued ahead of them. Smaller ones are copied, so that several replies share
/// one write. (Callgrind, big16k len32 echo: 17,428 user-space instructions per
/// message copying, of which 16,400 are the copy.)
pub(super) const DIRECT_AT: usize = 8 * 1024;

impl Node {
    /// Writes the frame `head` + `body` on the raw link `i` at once when it is
    /// [`DIRECT_AT`] bytes or more, nothing is queued ahead of it, and the
    /// framing leaves payloads as they are ([`Codec::envelope`]). `Some(bytes
    /// written)` when it went this way (the caller does the bookkeeping of a
    /// written frame); `None`: nothing was written, queue it as usual.
    pub(super) fn write_large_now(&mut self, i: u32, head: &[u8], body: Body<'_>) -> Option<usize> {
        let need = head.len() + body.len() + self.codec.overhead();
        let s = &mut self.slots[i as usize];
        if need < DIRECT_AT || !s.tx.is_empty() || !s.link.is_open() {
            return None;
        }
        #[cfg(feature = "tls")]
        if s.tls.is_some() {
            return None; // the TLS link encrypts it from the queue
        }
        let env = self.codec.envelope(head.len() + body.len())?;
        // Room for the remainder first, so a frame is never half sent and then
        // refused.
        if !self.bufs.reserve(&mut s.tx, need) {
            return None;
        }
        let sock = s.sock.as_mut()?;
        let payload = match body {
            Body::Bytes(b) => b,
            Body::Delivered(d) => &self.bufs.block(d.block)[d.start..d.end],
        };
        let parts = [
            IoSlice::new(env.prefix()),
            IoSlice::new(head),
            IoSlice::new(payload),
            IoSlice::new(env.suffix()),
        ];
        // Would block, or failed: queue it; write_out meets the error again.
        let n = sock.write_vectored(&parts).ok().filter(|&n| n > 0)?;
        if n >= need {
            self.bufs.release(&mut s.tx);
            return Some(n);
        }
        // The socket took part: the rest, and only the rest, goes into the
        // reserved block (empty, so it starts at the block's front).
        let rest = match body {
            Body::Bytes(b) => copy_after(
                n,
                &[env.prefix(), head, b, env.suffix()],
                self.bufs.spare(&s.tx),
            ),
            Body::Delivered(d) => self
                .bufs
                .src_and_spare(d.block, d.start..d.end, &s.tx)
                .and_then(|(src, spare)| {
                    copy_after(n, &[env.prefix(), head, src, env.suffix()], spare)
                }),
        };
        let Some(rest) = rest else {
            log::error!("link to {}: no room for a reserved frame", s.peer);
            self.close_slot(i, CloseReason::Io);
            return Some(0);
        };
        s.tx.end += rest as u32;
        self.queue_flush(i);
        Some(n)
    }
}

/// Copies `parts` after their first `skip` bytes into the front of `out`:
/// the bytes copied, `None` when they do not fit.
fn copy_after(mut skip: usize, parts: &[&[u8]], out: &mut [u8]) -> Option<usize> {
    let mut at = 0;
    for p in parts {
        let sent = skip.min(p.len());
        skip -= sent;
        let rest = &p[sent..];
        out.get_mut(at..at + rest.len())?.copy_from_slice(rest);
        at += rest.len();
    }
    Some(at)
}

#[cfg(test)]
mod tests {
    use super::copy_after;

    #[test]
    fn copy_after_keeps_only_the_bytes_past_those_sent_across_parts() {
        let parts: [&[u8]; 4] = [b"<", b"", b"payload", b">!"];
        let mut out = [0u8; 16];
        for (skip, want) in [
            (0, &b"<payload>!"[..]),
            (1, b"payload>!"),
            (3, b"yload>!"),
            (8, b">!"),
            (9, b"!"),
            (10, b""),
        ] {
            let n = copy_after(skip, &parts, &mut out).unwrap();
            assert_eq!(&out[..n], want, "skip {skip}");
        }
        assert_eq!(copy_after(0, &parts, &mut [0u8; 9]), None, "too small");
    }
}

//! A single-listener server for the common case: answer each message.

use core::time::Duration;
use std::io;
use std::net::SocketAddr;

use crate::config::{ListenConfig, NodeConfig};
use crate::error::SendError;
use crate::hl7;
use crate::node::{Event, ListenerId, Node, SetupError};
use crate::ratelimit::RateLimit;

/// Where a [`Server`] handler writes its reply: a buffer of `max_frame` bytes,
/// allocated once with the server.
pub struct Reply<'a> {
    buf: &'a mut [u8],
    len: Option<usize>,
    echo: bool,
    /// The reply is an ACK from [`Reply::ack`] known to hold no control byte
    /// but CR ([`hl7::Ack::is_plain`]).
    plain: bool,
}

impl Reply<'_> {
    /// Replies with a copy of `bytes`; false (no reply) if longer than `max_frame`.
    pub fn set(&mut self, bytes: &[u8]) -> bool {
        self.echo = false;
        self.plain = false;
        match self.buf.get_mut(..bytes.len()) {
            Some(dst) => {
                dst.copy_from_slice(bytes);
                self.len = Some(bytes.len());
                true
            }
            None => false,
        }
    }

    /// Replies with the message itself, copied once from the receive buffer into
    /// the link's transmit buffer (no copy through this buffer); a message of
    /// 8 KiB or more with nothing queued ahead of it is written straight from
    /// the receive buffer (see [`Node::forward`]).
    pub fn echo(&mut self) {
        self.echo = true;
        self.len = None;
        self.plain = false;
    }

    /// Replies with the HL7 ACK for `message` ([`hl7::build_ack`] with `code`
    /// and `timestamp`: the same bytes), built in this buffer; false (no reply)
    /// if it is longer than `max_frame`. Unlike [`Reply::write_with`] with
    /// `build_ack`, the builder's [`hl7::Ack::is_plain`] goes with it, so a
    /// clean ACK is queued without the MLLP scan for bytes the framing cannot
    /// carry ([`Node::send_ack`]); one that is not clean is scanned as any
    /// reply is.
    pub fn ack(&mut self, message: &[u8], code: hl7::AckCode, timestamp: &[u8]) -> bool {
        self.echo = false;
        let msh = hl7::Msh::parse(message);
        let ack = hl7::build_ack_coded(msh.as_ref(), code, timestamp, self.buf);
        self.len = ack.map(|a| a.as_bytes().len());
        self.plain = ack.is_some_and(|a| a.is_plain());
        self.len.is_some()
    }

    /// Replies with what `write` puts in the buffer (it returns the length, or `None`
    /// for no reply).
    pub fn write_with(&mut self, write: impl FnOnce(&mut [u8]) -> Option<usize>) {
        self.echo = false;
        self.plain = false;
        self.len = write(self.buf).filter(|&n| n <= self.buf.len());
    }
}

/// A node with one listener; [`Server::serve`] hands each event to a handler and
/// sends the replies it writes.
pub struct Server {
    node: Node,
    listener: ListenerId,
    reply: Box<[u8]>,
    /// Refused replies: one warning per interval.
    refused_warning: RateLimit,
}

impl Server {
    /// Binds `addr` with the given sizes and policy.
    pub fn bind(
        addr: SocketAddr,
        node: NodeConfig,
        listen: ListenConfig,
    ) -> Result<Server, SetupError> {
        let reply = vec![0u8; node.max_frame].into_boxed_slice();
        let mut node = Node::new(node)?;
        let listener = node.listen(addr, listen)?;
        Ok(Server {
            node,
            listener,
            reply,
            refused_warning: RateLimit::default(),
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.node
            .local_addr(self.listener)
            .unwrap_or_else(|| SocketAddr::from(([0, 0, 0, 0], 0)))
    }

    /// The underlying node.
    pub fn node(&mut self) -> &mut Node {
        &mut self.node
    }

    /// Polls once (waiting at most `timeout`), then hands every event to `handler`.
    /// For [`Event::Message`], a reply the handler writes is sent on that link.
    /// A reply of up to `buffer_size / 2` bytes always has room (the node holds
    /// a link whose peer does not read; see [`Node`]); a larger one refused for
    /// room (no large buffer free) is not dropped unseen: the link is closed
    /// (`LocalClose`, with a warning), so its peer learns it got no reply.
    pub fn serve(
        &mut self,
        timeout: Option<Duration>,
        mut handler: impl FnMut(&Event<'_>, &mut Reply<'_>),
    ) -> io::Result<()> {
        self.node.poll(timeout)?;
        while let Some(ev) = self.node.next_event() {
            let mut reply = Reply {
                buf: &mut self.reply,
                len: None,
                echo: false,
                plain: false,
            };
            handler(&ev, &mut reply);
            let target = match ev {
                Event::Message { link, .. } => Some(link),
                _ => None,
            };
            let (echo, plain) = (reply.echo, reply.plain);
            let sent = match (target, reply.len) {
                (Some(link), _) if echo => self.node.forward(link),
                (Some(link), Some(n)) if plain => {
                    let ack = hl7::Ack::rebuilt(&self.reply[..n], true);
                    self.node.send_ack(link, ack)
                }
                (Some(link), Some(n)) => self.node.send(link, &self.reply[..n]),
                _ => Ok(()),
            };
            if let Err(e) = sent {
                let now = self.node.now();
                crate::ratelimit::warn_limited!(self.refused_warning, now, "reply not sent: {e}");
                if let (Some(link), SendError::TxFull) = (target, e) {
                    self.node.close(link);
                }
            }
        }
        Ok(())
    }
}

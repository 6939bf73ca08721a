//! The node's transport seam: a link's socket ([`Stream`]) and a listener's
//! ([`ListenSock`]) are the OS's (mio) or a simulated network's
//! ([`crate::simnet`], for whole-node simulations on virtual time). One enum
//! match per call, no `dyn`, no allocation: the per-message path costs what
//! it did.
//!
//! A node built with [`Node::with_sim`] listens and connects through its
//! [`SimNet`] and takes readiness from it ([`Node::poll_sim`]); it never waits
//! in mio (the test moves time), and its mio poll is not read at all: wake
//! sources and the application's own sources are not served on a simulated
//! node.

use std::io::{self, IoSlice, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry, Token};

use super::{Node, SetupError, LISTENER_BASE};
use crate::config::NodeConfig;
use crate::liveness::LivenessConfig;
use crate::simnet::{SimEnd, SimListener, SimNet};
use crate::time::Instant;

/// A link's socket.
pub(super) enum Stream {
    Tcp(TcpStream),
    Sim(SimEnd),
}

/// A listener's socket.
pub(super) enum ListenSock {
    Tcp(TcpListener),
    Sim(SimListener),
}

/// The simulated network a node runs on, and its id there.
pub(super) struct SimHandle {
    net: SimNet,
    owner: u32,
}

impl Stream {
    #[inline]
    pub(super) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Sim(s) => sim_read(s, buf),
        }
    }

    #[inline]
    pub(super) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Sim(s) => sim_write(s, &[IoSlice::new(buf)]),
        }
    }

    #[inline]
    pub(super) fn write_vectored(&mut self, parts: &[IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write_vectored(parts),
            Stream::Sim(s) => sim_write(s, parts),
        }
    }

    pub(super) fn take_error(&self) -> io::Result<Option<io::Error>> {
        match self {
            Stream::Tcp(s) => s.take_error(),
            Stream::Sim(s) => s.take_error(),
        }
    }

    pub(super) fn peer_addr(&self) -> io::Result<SocketAddr> {
        match self {
            Stream::Tcp(s) => s.peer_addr(),
            Stream::Sim(s) => s.peer_addr(),
        }
    }

    pub(super) fn set_nodelay(&self) {
        if let Stream::Tcp(s) = self {
            let _ = s.set_nodelay(true);
        }
    }

    /// The OS-level liveness options (nothing to set on a simulated link).
    pub(super) fn apply_options(&self, cfg: &LivenessConfig) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => crate::sockopt::apply(s, cfg),
            Stream::Sim(_) => Ok(()),
        }
    }

    pub(super) fn register(
        &mut self,
        registry: &Registry,
        sim: Option<&SimHandle>,
        token: Token,
        interest: Interest,
    ) -> io::Result<()> {
        match self {
            Stream::Tcp(s) => registry.register(s, token, interest),
            Stream::Sim(s) => {
                s.set_token(sim.map_or(0, |h| h.owner), Some(token.0));
                Ok(())
            }
        }
    }

    pub(super) fn deregister(&mut self, registry: &Registry) {
        match self {
            Stream::Tcp(s) => {
                let _ = registry.deregister(s);
            }
            Stream::Sim(s) => s.set_token(0, None),
        }
    }
}

// The simulated arms stay out of line and cold, so that the TCP path the
// per-message code inlines is as small as before the seam (callgrind).
#[cold]
#[inline(never)]
fn sim_read(s: &SimEnd, buf: &mut [u8]) -> io::Result<usize> {
    s.read(buf)
}

#[cold]
#[inline(never)]
fn sim_write(s: &SimEnd, parts: &[IoSlice<'_>]) -> io::Result<usize> {
    s.write_vectored(parts)
}

impl ListenSock {
    pub(super) fn accept(&self) -> io::Result<(Stream, SocketAddr)> {
        match self {
            ListenSock::Tcp(l) => l.accept().map(|(s, a)| (Stream::Tcp(s), a)),
            ListenSock::Sim(l) => l.accept().map(|(s, a)| (Stream::Sim(s), a)),
        }
    }

    /// Stops listening: deregistered, and new connections are refused.
    pub(super) fn stop(&mut self, registry: &Registry) {
        match self {
            ListenSock::Tcp(l) => {
                let _ = registry.deregister(l);
                // On Linux this ends the listen state: queued and new
                // connections are refused rather than left waiting for a
                // process that is going.
                let _ = socket2::SockRef::from(&*l).shutdown(std::net::Shutdown::Read);
            }
            ListenSock::Sim(l) => l.close(),
        }
    }
}

impl Node {
    /// A node on a simulated network (see [`crate::simnet`]) and the clock
    /// that network runs on: its listeners and connects go through `net`, its
    /// session tokens and jitter come from `seed`, and [`Node::poll`] never
    /// waits. Test support: no stability promise.
    #[doc(hidden)]
    pub fn with_sim(cfg: NodeConfig, net: &SimNet, seed: u64) -> Result<Node, SetupError> {
        let clock = super::clock::NodeClock::Given(Box::new(net.clock().clone()));
        let mut node = Node::with_framing(cfg, clock)?;
        node.sim = Some(SimHandle {
            owner: net.attach(),
            net: net.clone(),
        });
        node.entropy = super::sessions::OsEntropy::seeded(seed);
        Ok(node)
    }

    /// Binds a listener: on the simulated network, or the OS's.
    pub(super) fn bind(
        &self,
        addr: SocketAddr,
        idx: usize,
    ) -> io::Result<(ListenSock, SocketAddr)> {
        let token = Token(LISTENER_BASE + idx);
        match &self.sim {
            Some(h) => {
                let l = h.net.listen(h.owner, addr)?;
                l.set_token(h.owner, Some(token.0));
                let a = l.local_addr();
                Ok((ListenSock::Sim(l), a))
            }
            None => {
                let mut l = TcpListener::bind(addr)?;
                self.poll
                    .registry()
                    .register(&mut l, token, Interest::READABLE)?;
                let a = l.local_addr()?;
                Ok((ListenSock::Tcp(l), a))
            }
        }
    }

    /// Starts a connect: on the simulated network, or the OS's.
    pub(super) fn dial_out(
        &self,
        addr: SocketAddr,
        liveness: &LivenessConfig,
        slot: u32,
    ) -> io::Result<Stream> {
        let mut sock = match &self.sim {
            Some(h) => Stream::Sim(h.net.dial(h.owner, addr)?),
            None => Stream::Tcp(TcpStream::connect(addr)?),
        };
        sock.apply_options(liveness)?;
        sock.register(
            self.poll.registry(),
            self.sim.as_ref(),
            Token(slot as usize),
            Interest::READABLE | Interest::WRITABLE,
        )?;
        Ok(sock)
    }

    /// True on a simulated network: `poll` takes readiness from it and does
    /// not wait in mio.
    #[inline]
    pub(super) fn is_simulated(&self) -> bool {
        self.sim.is_some()
    }

    /// Handles the simulated network's readiness edges for this node.
    #[cold]
    pub(super) fn poll_sim(&mut self, now: Instant) {
        let Some(h) = self.sim.as_ref() else { return };
        let (net, owner) = (h.net.clone(), h.owner);
        while let Some(r) = net.next_ready(owner) {
            let ready = super::Ready {
                readable: r.readable,
                read_closed: r.read_closed,
                writable: r.writable,
            };
            self.on_ready(r.token, ready, now);
        }
    }
}

//! [`MetricsServer`]: answers `GET /metrics` over plain HTTP/1.x on the node's
//! own poll, one loop, no thread. A few connections at once, each with fixed
//! buffers allocated at bind: a scrape allocates nothing. Every connection
//! gets one answer and is closed; one that is too slow (`request_timeout`) or
//! one too many (`max_connections`) is closed without one. The HTTP is in
//! [`super::http`]; the node only passes readiness on (see `Node`'s sources).

use std::io::{self, Read, Write};
use std::net::{Shutdown, SocketAddr};
use std::time::Duration;

use mio::net::{TcpListener, TcpStream};
use mio::Interest;

use super::exposition::{TooSmall, CONTENT_TYPE};
use super::http::{self, Parsed, Status};
use crate::node::Node;
use crate::time::Instant;

/// The scrape server's bounds.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MetricsLimits {
    /// Connections served at once (1 to 63; default 4); one more is closed
    /// at once.
    pub max_connections: usize,
    /// The longest request read, in bytes (default 2048): a longer one is
    /// answered `431`.
    pub max_request: usize,
    /// Time a connection has to send its request and take the answer
    /// (default 5 s); then it is closed.
    pub request_timeout: Duration,
    /// Room for the exposition, in bytes per connection (default 64 KiB): a
    /// larger one is answered `500`.
    pub max_response: usize,
}

impl Default for MetricsLimits {
    fn default() -> Self {
        MetricsLimits {
            max_connections: 4,
            max_request: 2048,
            request_timeout: Duration::from_secs(5),
            max_response: 64 * 1024,
        }
    }
}

/// The scrape server's own counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ServerStats {
    /// Scrapes answered with the exposition.
    pub scrapes: u64,
    /// Requests answered with an error status, or connections closed without
    /// an answer (over the limit, too slow, or gone).
    pub refused: u64,
}

/// What writes the exposition into the buffer it is given, from the node and
/// the server's own counters (as of this request).
pub type Render<'a> = dyn FnMut(&Node, ServerStats, &mut [u8]) -> Result<usize, TooSmall> + 'a;

/// Connections accepted in one [`MetricsServer::serve`] at most (a flood of
/// connects does not hold the loop; the rest wait for the next call).
const ACCEPTS_PER_CALL: usize = 16;

/// Room before the body for the status line and headers of a `200`.
const HEAD_ROOM: usize = 160;
/// Source key of the listener; connection `i` has key `i + 1`.
const LISTENER_KEY: usize = 0;

#[derive(Clone, Copy, PartialEq, Eq)]
enum Phase {
    Reading,
    Writing,
    /// Answered and shut down for writing: read what is left until the peer
    /// closes, so closing does not reset the answer away.
    Draining,
}

struct Conn {
    sock: Option<TcpStream>,
    phase: Phase,
    req: Box<[u8]>,
    req_len: usize,
    /// The answer is `out[start..end]`; a `200`'s body is written at `HEAD_ROOM`.
    out: Box<[u8]>,
    start: usize,
    end: usize,
    deadline: Instant,
    answered: bool,
}

/// Serves `GET /metrics` on a node's poll. Call [`MetricsServer::serve`]
/// after each [`Node::poll`] (and its events): it takes the readiness the
/// node recorded for it. One per node.
pub struct MetricsServer {
    listener: TcpListener,
    addr: SocketAddr,
    conns: Vec<Conn>,
    limits: MetricsLimits,
    stats: ServerStats,
    /// The last accept stopped at [`ACCEPTS_PER_CALL`]: more may wait.
    accept_pending: bool,
}

impl MetricsServer {
    /// Binds `addr` and registers on `node`'s poll; every buffer is allocated here.
    pub fn bind(
        node: &mut Node,
        addr: SocketAddr,
        limits: MetricsLimits,
    ) -> io::Result<MetricsServer> {
        if !(1..crate::node::MAX_SOURCES).contains(&limits.max_connections)
            || limits.max_request == 0
            || limits.request_timeout.is_zero()
        {
            return Err(io::Error::new(
                io::ErrorKind::InvalidInput,
                "metrics limits: 1 to 63 connections, a request size and a timeout above zero",
            ));
        }
        let out_len = limits.max_response.saturating_add(HEAD_ROOM);
        let mut conns = Vec::with_capacity(limits.max_connections);
        for _ in 0..limits.max_connections {
            conns.push(Conn {
                sock: None,
                phase: Phase::Reading,
                req: vec![0; limits.max_request].into_boxed_slice(),
                req_len: 0,
                out: vec![0; out_len].into_boxed_slice(),
                start: 0,
                end: 0,
                deadline: Instant::ZERO,
                answered: false,
            });
        }
        let mut listener = TcpListener::bind(addr)?;
        node.register_source(&mut listener, LISTENER_KEY, Interest::READABLE)?;
        let addr = listener.local_addr()?;
        Ok(MetricsServer {
            listener,
            addr,
            conns,
            limits,
            stats: ServerStats::default(),
            accept_pending: false,
        })
    }

    /// The bound address (the real port when bound to port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Its counters.
    pub fn stats(&self) -> ServerStats {
        self.stats
    }

    /// The earliest time a connection times out, if one is open.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.conns
            .iter()
            .filter(|c| c.sock.is_some())
            .map(|c| c.deadline)
            .min()
    }

    /// Accepts, reads, answers and closes what is ready, and closes the
    /// connections past their time. `render` writes the exposition into the
    /// buffer it is given (e.g. [`super::Snapshot::write`]). Call it after
    /// every poll: more connections than it accepts in one call
    /// (`ACCEPTS_PER_CALL`, 16) wait for the next.
    pub fn serve(&mut self, node: &mut Node, render: &mut Render<'_>) {
        let ready = node.take_source_ready();
        let now = node.now();
        if ready & (1 << LISTENER_KEY) != 0 || self.accept_pending {
            self.accept(node, now, render);
        }
        for i in 0..self.conns.len() {
            if ready & (1 << (i + 1)) != 0 {
                self.progress(node, i, render);
            }
            let c = &self.conns[i];
            if c.sock.is_some() && now >= c.deadline {
                self.close(node, i);
            }
        }
    }

    fn accept(&mut self, node: &mut Node, now: Instant, render: &mut Render<'_>) {
        self.accept_pending = false;
        for _ in 0..ACCEPTS_PER_CALL {
            let (mut sock, _) = match self.listener.accept() {
                Ok(s) => s,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors, most likely: the next readiness retries.
                    log::warn!("metrics: accept failed: {e}");
                    return;
                }
            };
            let Some(i) = self.conns.iter().position(|c| c.sock.is_none()) else {
                self.stats.refused += 1; // one too many: closed unanswered
                continue;
            };
            if let Err(e) =
                node.register_source(&mut sock, i + 1, Interest::READABLE | Interest::WRITABLE)
            {
                log::warn!("metrics: cannot watch a connection: {e}");
                self.stats.refused += 1;
                continue;
            }
            let c = &mut self.conns[i];
            c.sock = Some(sock);
            c.phase = Phase::Reading;
            c.req_len = 0;
            c.start = 0;
            c.end = 0;
            c.answered = false;
            c.deadline = now + self.limits.request_timeout;
            // The request may be there already.
            self.progress(node, i, render);
        }
        self.accept_pending = true;
    }

    /// Moves connection `i` as far as its socket allows.
    fn progress(&mut self, node: &mut Node, i: usize, render: &mut Render<'_>) {
        loop {
            let c = &mut self.conns[i];
            let Some(sock) = c.sock.as_mut() else { return };
            match c.phase {
                Phase::Reading => {
                    let room = &mut c.req[c.req_len..];
                    let n = if room.is_empty() {
                        0 // full: `parse` answers TooLarge
                    } else {
                        match sock.read(room) {
                            Ok(0) => return self.close(node, i), // gone before asking
                            Ok(n) => n,
                            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                            Err(_) => return self.close(node, i),
                        }
                    };
                    c.req_len += n;
                    match http::parse(&c.req[..c.req_len], c.req.len()) {
                        Parsed::Incomplete => {}
                        Parsed::Metrics => {
                            match render(node, self.stats, &mut c.out[HEAD_ROOM..]) {
                                Ok(len) => {
                                    let c = &mut self.conns[i];
                                    c.start = ok_head(&mut c.out, len);
                                    c.end = HEAD_ROOM + len;
                                    c.phase = Phase::Writing;
                                    c.answered = true;
                                    self.stats.scrapes += 1;
                                }
                                Err(e) => {
                                    log::warn!("metrics: {e}");
                                    self.refuse(i, Status::InternalError);
                                }
                            }
                        }
                        Parsed::Refuse(s) => self.refuse(i, s),
                    }
                }
                Phase::Writing => match sock.write(&c.out[c.start..c.end]) {
                    Ok(0) => return self.close(node, i), // no progress possible
                    Ok(n) => {
                        c.start += n;
                        if c.start >= c.end {
                            let _ = sock.shutdown(Shutdown::Write);
                            c.phase = Phase::Draining;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close(node, i),
                },
                Phase::Draining => match sock.read(&mut c.req) {
                    Ok(0) => return self.close(node, i),
                    Ok(_) => {} // discarded
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(_) => return self.close(node, i),
                },
            }
        }
    }

    /// Answers connection `i` with an error status.
    fn refuse(&mut self, i: usize, s: Status) {
        let c = &mut self.conns[i];
        let r = s.response();
        let n = r.len().min(c.out.len());
        c.out[..n].copy_from_slice(&r[..n]);
        c.start = 0;
        c.end = n;
        c.phase = Phase::Writing;
        c.answered = true;
        self.stats.refused += 1;
    }

    fn close(&mut self, node: &mut Node, i: usize) {
        let c = &mut self.conns[i];
        if let Some(mut sock) = c.sock.take() {
            let _ = node.deregister_source(&mut sock, i + 1);
            if !c.answered {
                self.stats.refused += 1;
            }
        }
    }
}

/// Writes a `200`'s status line and headers for a `len`-byte body just
/// before the body (which starts at `HEAD_ROOM`); returns where they start.
fn ok_head(out: &mut [u8], len: usize) -> usize {
    let mut head = [0u8; HEAD_ROOM];
    let mut w = io::Cursor::new(&mut head[..]);
    // The head is far below HEAD_ROOM bytes for any length.
    let _ = write!(
        w,
        "HTTP/1.1 200 OK\r\nContent-Type: {CONTENT_TYPE}\r\nContent-Length: {len}\r\nConnection: close\r\n\r\n"
    );
    let n = w.position() as usize;
    let start = HEAD_ROOM - n;
    out[start..HEAD_ROOM].copy_from_slice(&head[..n]);
    start
}

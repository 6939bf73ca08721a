//! The floor: socket work alone.

#[allow(unused_imports)]
use crate::*;

/// (b) the floor: reads as much as its buffer holds and writes it straight back;
/// never parses a frame. In `ack_every` mode it counts bytes to know when to ack.
pub(crate) fn serve_floor(s: Serve, buf_size: usize) -> io::Result<()> {
    struct Conn {
        sock: TcpStream,
        buf: Vec<u8>,
        /// Bytes of `buf` still to be written back (echo mode).
        pend: (usize, usize),
        /// Acks still to be written (ack mode).
        out: Vec<u8>,
        received: u64,
        acked: u64,
        echoed: u64,
        readable: bool,
    }
    const LISTENER: Token = Token(usize::MAX);
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(loopback())?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut conns: Vec<Option<Conn>> = Vec::new();
    let mut free: Vec<usize> = Vec::new();
    let mut ack_frame = vec![0u8; ACK.len() + s.wire.overhead()];
    s.wire.encode(ACK, &mut ack_frame);
    let ack_bytes = s.unit as u64 * s.ack_every;
    let mut events = Events::with_capacity(1024);
    announce(listener.local_addr()?);

    /// Writes what is pending; true when nothing is left.
    pub(crate) fn flush(c: &mut Conn) -> io::Result<bool> {
        while c.pend.0 < c.pend.1 {
            match c.sock.write(&c.buf[c.pend.0..c.pend.1]) {
                Ok(n) => {
                    c.pend.0 += n;
                    c.echoed += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        while !c.out.is_empty() {
            match c.sock.write(&c.out) {
                Ok(n) => {
                    c.out.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(false),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(true)
    }

    /// Echo until the socket is drained or the peer stops reading. Err: close.
    pub(crate) fn drive(
        c: &mut Conn,
        s: &Serve,
        ack_frame: &[u8],
        ack_bytes: u64,
    ) -> io::Result<()> {
        loop {
            if !flush(c)? {
                return Ok(()); // wait for WRITABLE before reading more
            }
            if s.close_after_reply && c.echoed >= s.unit as u64 {
                return Err(io::ErrorKind::UnexpectedEof.into()); // done: close
            }
            if !c.readable {
                return Ok(());
            }
            match c.sock.read(&mut c.buf) {
                Ok(0) => return Err(io::ErrorKind::UnexpectedEof.into()),
                Ok(n) => {
                    // A short read drained the socket; the next byte raises a new edge.
                    if n < c.buf.len() {
                        c.readable = false;
                    }
                    if s.ack_every == 1 {
                        c.pend = (0, n);
                    } else {
                        c.received += n as u64;
                        while c.acked < c.received / ack_bytes {
                            c.acked += 1;
                            c.out.extend_from_slice(ack_frame);
                        }
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }

    loop {
        poll.poll(&mut events, Some(Duration::from_secs(1)))?;
        for ev in events.iter() {
            if ev.token() == LISTENER {
                loop {
                    match listener.accept() {
                        Ok((mut sock, _)) => {
                            sock.set_nodelay(true)?;
                            let i = free.pop().unwrap_or_else(|| {
                                conns.push(None);
                                conns.len() - 1
                            });
                            poll.registry().register(
                                &mut sock,
                                Token(i),
                                Interest::READABLE | Interest::WRITABLE,
                            )?;
                            conns[i] = Some(Conn {
                                sock,
                                buf: vec![0u8; buf_size],
                                pend: (0, 0),
                                out: Vec::new(),
                                received: 0,
                                acked: 0,
                                echoed: 0,
                                readable: true,
                            });
                        }
                        Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                        Err(e) => return Err(e),
                    }
                }
                continue;
            }
            let i = ev.token().0;
            let Some(c) = conns.get_mut(i).and_then(Option::as_mut) else {
                continue;
            };
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if drive(c, &s, &ack_frame, ack_bytes).is_err() {
                if let Some(mut c) = conns[i].take() {
                    let _ = poll.registry().deregister(&mut c.sock);
                }
                free.push(i);
            }
        }
    }
}

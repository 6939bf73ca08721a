//! One std thread per connection.

#[allow(unused_imports)]
use crate::*;

/// (d) std threads: one per connection, BufReader/BufWriter, flush when the
/// reader has nothing buffered (replies to a burst go out in one write).
pub(crate) fn serve_threads(s: Serve) -> io::Result<()> {
    let listener = StdListener::bind(loopback())?;
    announce(listener.local_addr()?);
    for sock in listener.incoming() {
        let sock = match sock {
            Ok(sock) => sock,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => {
                eprintln!("accept: {e}");
                continue;
            }
        };
        std::thread::spawn(move || {
            let _ = thread_conn(sock, s);
        });
    }
    Ok(())
}

pub(crate) fn thread_conn(sock: StdStream, s: Serve) -> io::Result<()> {
    sock.set_nodelay(true)?;
    let mut r = BufReader::new(sock.try_clone()?);
    let mut w = BufWriter::new(sock);
    let mut frame = Vec::new();
    let mut count = 0u64;
    loop {
        let payload: &[u8] = match s.wire {
            Wire::Len32 => {
                let mut h = [0u8; 4];
                r.read_exact(&mut h)?;
                let len = u32::from_be_bytes(h) as usize;
                if len > MAX_FRAME {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                frame.resize(len, 0);
                r.read_exact(&mut frame)?;
                &frame
            }
            Wire::Mllp => {
                frame.clear();
                (&mut r)
                    .take(MAX_FRAME as u64 + 2)
                    .read_until(0x1C, &mut frame)?;
                let mut cr = [0u8; 1];
                r.read_exact(&mut cr)?;
                if frame.len() < 2
                    || frame[0] != 0x0B
                    || frame.last() != Some(&0x1C)
                    || cr[0] != 0x0D
                {
                    return Err(io::ErrorKind::InvalidData.into());
                }
                &frame[1..frame.len() - 1]
            }
        };
        count += 1;
        let reply = if s.ack_every == 1 {
            Some(payload)
        } else if count.is_multiple_of(s.ack_every) {
            Some(ACK)
        } else {
            None
        };
        if let Some(p) = reply {
            let mut h = [0u8; 4];
            let n = s.wire.header(p.len(), &mut h);
            w.write_all(&h[..n])?;
            w.write_all(p)?;
            let mut t = [0u8; 2];
            let n = s.wire.trailer(&mut t);
            w.write_all(&t[..n])?;
        }
        if s.close_after_reply {
            return w.flush();
        }
        if r.buffer().is_empty() {
            w.flush()?;
        }
    }
}

//! The ends of simulated links ([`SimEnd`]) and listeners ([`SimListener`]):
//! what a node's transport calls instead of a socket's.

use super::*;

impl SimEnd {
    fn with<R>(&self, f: impl FnOnce(&mut Net, usize, u64) -> R) -> R {
        let (mut n, now) = self.net.lock();
        f(&mut n, self.link as usize, now)
    }

    fn state(&self) -> Option<(State, bool)> {
        self.with(|n, _, _| n.end(self).map(|l| (l.state, l.cut)))
    }

    /// Registers the end for node `owner`'s readiness under `token` (`None`:
    /// no more readiness).
    pub fn set_token(&self, owner: u32, token: Option<usize>) {
        let side = self.side;
        self.with(|n, _, _| {
            if let Some(l) = n.end(self) {
                l.ends[side].owner = owner;
                l.ends[side].token = token;
            }
        })
    }

    /// Reads what has arrived (see the module docs).
    pub fn read(&self, buf: &mut [u8]) -> io::Result<usize> {
        let side = self.side;
        self.with(|n, _, now| {
            let Some(l) = n.end(self) else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            open_for(&l.state, side, now)?;
            let p = &mut l.pipes[1 - side];
            let avail = p.readable_upto(now) - p.read;
            if avail > 0 {
                let k = (avail as usize).min(buf.len());
                let (a, b) = p.buf.as_slices();
                let ka = k.min(a.len());
                buf[..ka].copy_from_slice(&a[..ka]);
                buf[ka..k].copy_from_slice(&b[..k - ka]);
                p.buf.drain(..k);
                p.read += k as u64;
                let read = p.read;
                while p.segs.front().is_some_and(|s| s.1 <= read) {
                    p.segs.pop_front();
                }
                n.stats.delivered += k as u64;
                return Ok(k);
            }
            if p.read == p.written {
                if p.reset_at.is_some_and(|t| t <= now) {
                    return Err(io::ErrorKind::ConnectionReset.into());
                }
                if p.fin_at.is_some_and(|t| t <= now) {
                    return Ok(0);
                }
            }
            Err(would_block())
        })
    }

    /// Writes into the pipe (see the module docs).
    pub fn write(&self, data: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(data)])
    }

    /// Writes the slices in order as one segment.
    pub fn write_vectored(&self, parts: &[io::IoSlice<'_>]) -> io::Result<usize> {
        let side = self.side;
        self.with(|n, i, now| {
            let jitter = n.cfg.jitter_ms;
            let j = n.rng.below(jitter + 1);
            let Some(l) = n.end(self) else {
                return Err(io::ErrorKind::NotConnected.into());
            };
            open_for(&l.state, side, now)?;
            if l.cut {
                return Err(io::ErrorKind::ConnectionReset.into());
            }
            let peer_gone = !l.ends[1 - side].alive;
            let lat = l.latency;
            let p = &mut l.pipes[side];
            let total: usize = parts.iter().map(|s| s.len()).sum();
            if peer_gone || total == 0 {
                return Ok(total); // into the void, as to a closed peer
            }
            let room = p.buf.capacity() - p.buf.len();
            if room == 0 || p.segs.len() == p.segs.capacity() {
                p.want_write = true;
                return Err(would_block());
            }
            let k = total.min(room);
            let mut left = k;
            for s in parts {
                let take = s.len().min(left);
                p.buf.extend(&s[..take]);
                left -= take;
            }
            p.written += k as u64;
            let due = p.last_due().unwrap_or(0).max(now + lat + j);
            if p.segs.back().is_some_and(|s| s.0 == due) {
                if let Some(s) = p.segs.back_mut() {
                    s.1 = p.written;
                }
            } else {
                p.segs.push_back((due, p.written));
            }
            n.note_overtakes(i, due);
            Ok(k)
        })
    }

    /// `Some(ConnectionRefused)` once a refused connect is visible.
    pub fn take_error(&self) -> io::Result<Option<io::Error>> {
        let now = self.net.clock.now().as_millis();
        Ok(match self.state() {
            Some((State::Refused { at }, _)) if at <= now => Some(refused()),
            None => Some(refused()),
            _ => None,
        })
    }

    /// The peer's address once connected (`NotConnected` before).
    pub fn peer_addr(&self) -> io::Result<SocketAddr> {
        let now = self.net.clock.now().as_millis();
        let side = self.side;
        self.with(|n, _, _| match n.end(self) {
            Some(l) => match l.state {
                State::Open { connected_at } if side == 1 || connected_at <= now => {
                    Ok(l.addr[1 - side])
                }
                _ => Err(io::ErrorKind::NotConnected.into()),
            },
            None => Err(io::ErrorKind::NotConnected.into()),
        })
    }
}

/// `Ok` when a link in `state` carries bytes for end `side` at `now`: open,
/// and for the dialing end (0) once its connect has completed; otherwise the
/// error a socket gives (`WouldBlock`, or `ConnectionRefused`).
fn open_for(state: &State, side: usize, now: u64) -> io::Result<()> {
    match *state {
        State::Connecting { .. } => Err(would_block()),
        State::Refused { .. } => Err(refused()),
        State::Open { connected_at } if side == 0 && connected_at > now => Err(would_block()),
        State::Open { .. } => Ok(()),
    }
}

impl Drop for SimEnd {
    fn drop(&mut self) {
        let side = self.side;
        self.with(|n, i, now| {
            let Some(l) = n.end(self) else { return };
            l.ends[side].alive = false;
            l.ends[side].token = None;
            let lat = l.latency;
            // FIN after what this end wrote; what it did not read is gone.
            let out = &mut l.pipes[side];
            if out.reset_at.is_none() {
                out.fin_at = Some(out.last_due().unwrap_or(0).max(now + lat));
            }
            l.pipes[1 - side].clear();
            n.release_if_gone(i);
        });
    }
}

impl SimListener {
    /// The listener's address (its virtual port assigned).
    pub fn local_addr(&self) -> SocketAddr {
        let (n, _) = self.net.lock();
        n.listeners[self.idx].addr
    }

    /// Registers the listener for node `owner`'s readiness under `token`.
    pub fn set_token(&self, owner: u32, token: Option<usize>) {
        let (mut n, _) = self.net.lock();
        let l = &mut n.listeners[self.idx];
        l.owner = owner;
        l.token = token;
    }

    /// The next queued connection (`WouldBlock`: none).
    pub fn accept(&self) -> io::Result<(SimEnd, SocketAddr)> {
        let (mut n, _) = self.net.lock();
        let owner = n.listeners[self.idx].owner;
        while let Some((i, gen)) = n.listeners[self.idx].backlog.pop_front() {
            let Some(l) = n
                .links
                .get_mut(i as usize)
                .filter(|l| l.gen == gen && l.used)
            else {
                continue;
            };
            l.ends[1] = EndReg {
                owner,
                token: None,
                alive: true,
                told_connect: true,
            };
            let peer = l.addr[0];
            let end = SimEnd {
                net: self.net.clone(),
                link: i,
                gen,
                side: 1,
            };
            return Ok((end, peer));
        }
        Err(would_block())
    }

    /// Stops listening: queued and new connections are refused.
    pub fn close(&self) {
        let (mut n, now) = self.net.lock();
        if !(n.listeners[self.idx].used && n.listeners[self.idx].gen == self.gen) {
            return;
        }
        n.listeners[self.idx].used = false;
        while let Some((i, gen)) = n.listeners[self.idx].backlog.pop_front() {
            let i = i as usize;
            if n.links[i].used && n.links[i].gen == gen {
                n.cut(i, now);
                n.links[i].ends[1].alive = false;
                n.release_if_gone(i);
            }
        }
    }
}

impl Drop for SimListener {
    fn drop(&mut self) {
        self.close();
    }
}

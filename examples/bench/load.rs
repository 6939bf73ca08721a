//! The load client: a mio closed loop, every reply checked.

#[allow(unused_imports)]
use crate::*;

#[derive(Clone, Copy, Debug)]
pub(crate) struct Workload {
    pub(crate) name: &'static str,
    pub(crate) about: &'static str,
    pub(crate) links: usize,
    /// Messages in flight per link.
    pub(crate) depth: usize,
    pub(crate) size: usize,
    pub(crate) ack_every: u64,
    /// Connection per message (count-bound) instead of a timed closed loop.
    pub(crate) per_message: bool,
    /// HL7 messages answered by ACKs (checked by MSA-2) instead of echoes.
    pub(crate) hl7: bool,
    /// Over TLS (mooring's and tokio-rustls's servers).
    pub(crate) tls: bool,
}

impl Workload {
    /// Whether a server of `kind` can serve this workload.
    pub(crate) fn served_by(&self, kind: Kind) -> bool {
        if self.tls {
            return matches!(kind, Kind::Mooring | Kind::Tokio);
        }
        match kind {
            // The CLI answers every message: echo, or an ACK.
            Kind::Cli => self.ack_every == 1,
            Kind::Mooring | Kind::Tokio => true,
            Kind::Floor8k | Kind::Floor64k | Kind::Threads => !self.hl7,
        }
    }
}

pub(crate) fn workloads(size: usize) -> Vec<Workload> {
    let w = |name, about, links, depth, size, ack_every| Workload {
        name,
        about,
        links,
        depth,
        size,
        ack_every,
        per_message: false,
        hl7: false,
        tls: false,
    };
    let hl7 = |name, about, links, depth| Workload {
        hl7: true,
        ..w(name, about, links, depth, size, 1)
    };
    vec![
        w("rr1", "1 link, 1 in flight", 1, 1, size, 1),
        w("depth64", "1 link, 64 in flight", 1, 64, size, 1),
        w("links64", "64 links, 8 in flight each", 64, 8, size, 1),
        w(
            "stream",
            "1 link, one-way stream, 1 ack per 64 messages, 512 unacked",
            1,
            512,
            size,
            64,
        ),
        w(
            "big16k",
            "1 link, 16 KiB frames, 8 in flight",
            1,
            8,
            16 * 1024,
            1,
        ),
        w(
            "big128k",
            "1 link, 128 KiB frames (an HL7 message carrying a document), 8 in flight",
            1,
            8,
            128 * 1024,
            1,
        ),
        Workload {
            per_message: true,
            ..w(
                "conn",
                "connection per message (server closes after its reply), 1 at a time",
                1,
                1,
                size,
                1,
            )
        },
        hl7(
            "hl7-rr1",
            "HL7 ADT messages, ACKs checked by MSA-2; 1 link, 1 in flight",
            1,
            1,
        ),
        hl7(
            "hl7-depth64",
            "HL7 ADT messages, ACKs checked by MSA-2; 1 link, 64 in flight",
            1,
            64,
        ),
        hl7(
            "hl7-links64",
            "HL7 ADT messages, ACKs checked by MSA-2; 64 links, 8 in flight each",
            64,
            8,
        ),
        Workload {
            tls: true,
            ..w("tls-rr1", "TLS 1.3, 1 link, 1 in flight", 1, 1, size, 1)
        },
        Workload {
            tls: true,
            ..w(
                "tls-depth64",
                "TLS 1.3, 1 link, 64 in flight",
                1,
                64,
                size,
                1,
            )
        },
        Workload {
            tls: true,
            ..w(
                "tls-links64",
                "TLS 1.3, 64 links, 8 in flight each",
                64,
                8,
                size,
                1,
            )
        },
    ]
}

#[derive(Clone, Copy, Debug)]
pub(crate) struct Sample {
    pub(crate) msgs: u64,
    pub(crate) secs: f64,
    pub(crate) cpu: f64,
    /// The kernel's share of `cpu`.
    pub(crate) sys: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) rss_kb: u64,
}

impl Sample {
    pub(crate) fn rate(&self) -> f64 {
        self.msgs as f64 / self.secs
    }
    pub(crate) fn cpu_per_m(&self) -> f64 {
        self.cpu * 1e6 / self.msgs.max(1) as f64
    }
}

pub(crate) struct ClientConn {
    pub(crate) sock: crate::tls::Sock,
    pub(crate) rx: Vec<u8>,
    pub(crate) rx_start: usize,
    pub(crate) rx_end: usize,
    pub(crate) tx: Vec<u8>,
    pub(crate) tx_start: usize,
    pub(crate) tx_end: usize,
    pub(crate) next_send: u64,
    pub(crate) next_recv: u64,
    pub(crate) in_flight: usize,
    /// Send times of the messages whose reply is awaited (the last of each ack unit).
    pub(crate) stamps: Vec<Instant>,
    pub(crate) stamp_head: usize,
    pub(crate) stamp_len: usize,
    pub(crate) readable: bool,
    pub(crate) writable: bool,
}

pub(crate) struct Load<'a> {
    pub(crate) w: Workload,
    pub(crate) wire: Wire,
    pub(crate) frame_len: usize,
    pub(crate) reply_payload: usize,
    pub(crate) reply_len: usize,
    pub(crate) sending: bool,
    pub(crate) measuring: bool,
    pub(crate) replied: u64,
    /// Replies taken in all (warm-up and drain too): what the server answered.
    pub(crate) answered: u64,
    pub(crate) hist: &'a mut Histogram,
    pub(crate) scratch: Vec<u8>,
}

impl Load<'_> {
    /// Reads, checks replies, tops the window up and writes, until the socket is
    /// drained or blocked.
    pub(crate) fn drive(&mut self, c: &mut ClientConn, now: Instant) -> Result<(), String> {
        loop {
            if c.readable {
                if c.rx_end == c.rx.len() {
                    return Err("client receive buffer full".into());
                }
                match c.sock.read(&mut c.rx[c.rx_end..]) {
                    Ok(0) => return Err("server closed the link".into()),
                    Ok(n) => {
                        // (TLS hands out one record at a time.)
                        if n < c.rx.len() - c.rx_end && !c.sock.is_tls() {
                            c.readable = false;
                        }
                        c.rx_end += n;
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.readable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("read: {e}")),
                }
                self.take_replies(c, now)?;
            }
            if self.sending {
                self.top_up(c, now);
            }
            if c.writable {
                c.sock.flush_tls().map_err(|e| format!("write: {e}"))?;
            }
            if c.writable && c.tx_start < c.tx_end {
                match c.sock.write(&c.tx[c.tx_start..c.tx_end]) {
                    Ok(n) => {
                        c.tx_start += n;
                        if c.tx_start == c.tx_end {
                            c.tx_start = 0;
                            c.tx_end = 0;
                        }
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => c.writable = false,
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(format!("write: {e}")),
                }
            }
            if !c.readable {
                return Ok(());
            }
        }
    }

    pub(crate) fn take_replies(&mut self, c: &mut ClientConn, now: Instant) -> Result<(), String> {
        loop {
            let buf = &c.rx[c.rx_start..c.rx_end];
            let (p, used) = if self.w.hl7 {
                // ACKs vary in length: whatever whole frame is there.
                match self.wire.next_frame(buf)? {
                    Some(frame) => frame,
                    None => break,
                }
            } else {
                match self.wire.expect(buf, self.reply_payload)? {
                    Some(p) => (p, self.reply_len),
                    None => break,
                }
            };
            if self.w.hl7 {
                check_ack(c.next_recv, p)?;
            } else if self.w.ack_every == 1 {
                check_payload(c.next_recv, p, self.w.size)?;
            } else if p != ACK {
                return Err(format!("expected an ACK, got {} bytes", p.len()));
            }
            if c.in_flight < self.w.ack_every as usize || c.stamp_len == 0 {
                return Err("a reply nobody asked for".into());
            }
            c.next_recv += self.w.ack_every;
            c.in_flight -= self.w.ack_every as usize;
            let sent = c.stamps[c.stamp_head];
            c.stamp_head = (c.stamp_head + 1) % c.stamps.len();
            c.stamp_len -= 1;
            c.rx_start += used;
            self.answered += 1;
            if self.measuring {
                self.hist.record(now.saturating_duration_since(sent));
                self.replied += self.w.ack_every;
            }
        }
        if c.rx_start == c.rx_end {
            c.rx_start = 0;
            c.rx_end = 0;
        } else if c.rx_start > 0 && c.rx.len() - c.rx_end < self.reply_len {
            c.rx.copy_within(c.rx_start..c.rx_end, 0);
            c.rx_end -= c.rx_start;
            c.rx_start = 0;
        }
        Ok(())
    }

    pub(crate) fn top_up(&mut self, c: &mut ClientConn, now: Instant) {
        while c.in_flight < self.w.depth {
            if c.tx.len() - c.tx_end < self.frame_len {
                if c.tx_start == 0 {
                    return;
                }
                c.tx.copy_within(c.tx_start..c.tx_end, 0);
                c.tx_end -= c.tx_start;
                c.tx_start = 0;
                continue;
            }
            if self.w.hl7 {
                fill_hl7(c.next_send, &mut self.scratch);
            } else {
                fill_payload(c.next_send, &mut self.scratch);
            }
            let n = self.wire.encode(&self.scratch, &mut c.tx[c.tx_end..]);
            c.tx_end += n;
            c.in_flight += 1;
            c.next_send += 1;
            if c.next_send.is_multiple_of(self.w.ack_every) {
                let at = (c.stamp_head + c.stamp_len) % c.stamps.len();
                c.stamps[at] = now;
                c.stamp_len += 1;
            }
        }
    }
}

/// One timed closed-loop run against `srv`.
pub(crate) fn run_load(
    srv: &Running,
    w: Workload,
    warmup: Duration,
    secs: Duration,
    hist: &mut Histogram,
) -> Result<Sample, String> {
    let wire = srv.serve.wire;
    let frame_len = w.size + wire.overhead();
    let reply_payload = if w.hl7 {
        // Room for an ACK: it copies a few MSH fields, never more than this.
        HL7_ACK_ROOM
    } else if w.ack_every == 1 {
        w.size
    } else {
        ACK.len()
    };
    let reply_len = reply_payload + wire.overhead();
    let mut poll = Poll::new().map_err(|e| e.to_string())?;
    let tls = if w.tls {
        Some(crate::tls::client_config()?)
    } else {
        None
    };
    let mut conns = Vec::with_capacity(w.links);
    for i in 0..w.links {
        let s = StdStream::connect_timeout(&srv.addr, Duration::from_secs(5))
            .map_err(|e| format!("connect: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_nonblocking(true).map_err(|e| e.to_string())?;
        let mut tcp = TcpStream::from_std(s);
        poll.registry()
            .register(&mut tcp, Token(i), Interest::READABLE | Interest::WRITABLE)
            .map_err(|e| e.to_string())?;
        let sock = crate::tls::Sock::new(tcp, tls.as_ref())?;
        let units = w.depth / w.ack_every as usize + 1;
        conns.push(ClientConn {
            sock,
            rx: vec![0u8; (2 * w.depth * reply_len).max(64 * 1024)],
            rx_start: 0,
            rx_end: 0,
            tx: vec![0u8; (w.depth * frame_len).max(64 * 1024)],
            tx_start: 0,
            tx_end: 0,
            next_send: 0,
            next_recv: 0,
            in_flight: 0,
            stamps: vec![Instant::now(); units],
            stamp_head: 0,
            stamp_len: 0,
            readable: false,
            writable: true,
        });
    }
    hist.clear();
    let mut load = Load {
        w,
        wire,
        frame_len,
        reply_payload,
        reply_len,
        sending: true,
        measuring: false,
        replied: 0,
        answered: 0,
        hist,
        scratch: vec![0u8; w.size],
    };
    let mut events = Events::with_capacity(1024);
    let start = Instant::now();
    for c in conns.iter_mut() {
        load.drive(c, start)?;
    }
    let t_measure = start + warmup;
    let t_end = t_measure + secs;
    let mut t0 = start;
    let mut cpu0 = Cpu::default();
    let mut sample = None;
    let mut drain_until = None;
    loop {
        let now = Instant::now();
        if !load.measuring && sample.is_none() && now >= t_measure {
            load.measuring = true;
            load.replied = 0;
            load.hist.clear();
            cpu0 = cpu(srv.pid());
            t0 = now;
        }
        if load.measuring && now >= t_end {
            let cpu1 = cpu(srv.pid());
            load.measuring = false;
            load.sending = false;
            sample = Some(Sample {
                msgs: load.replied,
                secs: now.duration_since(t0).as_secs_f64(),
                cpu: cpu_delta(cpu0, cpu1),
                sys: sys_share(cpu0, cpu1),
                p50: load.hist.quantile_us(0.5),
                p99: load.hist.quantile_us(0.99),
                p999: load.hist.quantile_us(0.999),
                rss_kb: status_field(srv.pid(), "VmRSS:"),
            });
            drain_until = Some(now + Duration::from_secs(5));
        }
        if let Some(limit) = drain_until {
            let outstanding: usize = conns.iter().map(|c| c.in_flight).sum();
            if outstanding == 0 {
                break;
            }
            if now >= limit {
                return Err(format!("{outstanding} replies never came back"));
            }
        }
        let next = if sample.is_none() {
            if load.measuring {
                t_end
            } else {
                t_measure
            }
        } else {
            now + Duration::from_millis(100)
        };
        let wait = next
            .saturating_duration_since(now)
            .min(Duration::from_millis(100));
        poll.poll(&mut events, Some(wait))
            .map_err(|e| format!("poll: {e}"))?;
        let now = Instant::now();
        for ev in events.iter() {
            let c = &mut conns[ev.token().0];
            if ev.is_readable() || ev.is_read_closed() || ev.is_error() {
                c.readable = true;
            }
            if ev.is_writable() {
                c.writable = true;
            }
            load.drive(c, now)?;
        }
    }
    srv.answered.set(srv.answered.get() + load.answered);
    let s = sample.ok_or("no sample")?;
    let sent: u64 = conns.iter().map(|c| c.next_send).sum();
    let got: u64 = conns.iter().map(|c| c.next_recv).sum();
    if sent != got {
        return Err(format!("sent {sent} messages, {got} acknowledged"));
    }
    if s.msgs == 0 {
        return Err("no message completed".into());
    }
    Ok(s)
}

/// Connection per message: connect, send, read the reply, see the server close.
pub(crate) fn run_per_message(
    srv: &Running,
    w: Workload,
    count: usize,
    hist: &mut Histogram,
) -> Result<Sample, String> {
    let wire = srv.serve.wire;
    let mut payload = vec![0u8; w.size];
    let mut frame = vec![0u8; w.size + wire.overhead()];
    let mut reply = vec![0u8; w.size + wire.overhead()];
    let warm = count / 10;
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut t0 = Instant::now();
    let mut cpu0 = Cpu::default();
    for i in 0..warm + count {
        if i == warm {
            hist.clear();
            cpu0 = cpu(srv.pid());
            t0 = Instant::now();
        }
        if Instant::now() > deadline {
            return Err(format!("only {i} connections in 60 s"));
        }
        let t = Instant::now();
        let mut s = StdStream::connect_timeout(&srv.addr, Duration::from_secs(2))
            .map_err(|e| format!("connect {i}: {e}"))?;
        s.set_nodelay(true).map_err(|e| e.to_string())?;
        s.set_read_timeout(Some(Duration::from_secs(2)))
            .map_err(|e| e.to_string())?;
        fill_payload(i as u64, &mut payload);
        let n = wire.encode(&payload, &mut frame);
        s.write_all(&frame[..n])
            .map_err(|e| format!("write {i}: {e}"))?;
        s.read_exact(&mut reply)
            .map_err(|e| format!("read {i}: {e}"))?;
        let p = wire.expect(&reply, w.size)?.ok_or("short reply")?;
        check_payload(i as u64, p, w.size)?;
        hist.record(t.elapsed());
        let mut one = [0u8; 1];
        match s.read(&mut one) {
            Ok(0) => {}
            Ok(_) => return Err("bytes after the reply".into()),
            Err(e) => return Err(format!("server did not close: {e}")),
        }
    }
    let secs = t0.elapsed().as_secs_f64();
    let cpu1 = cpu(srv.pid());
    srv.answered.set(srv.answered.get() + (warm + count) as u64);
    Ok(Sample {
        msgs: count as u64,
        secs,
        cpu: cpu_delta(cpu0, cpu1),
        sys: sys_share(cpu0, cpu1),
        p50: hist.quantile_us(0.5),
        p99: hist.quantile_us(0.99),
        p999: hist.quantile_us(0.999),
        rss_kb: status_field(srv.pid(), "VmRSS:"),
    })
}

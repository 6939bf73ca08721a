//! TLS in the driver (feature `tls`): a link's [`TlsLink`] sits between its
//! socket and its receive/transmit blocks. Ciphertext is read from the socket
//! straight into the TLS link's buffer, and the plaintext it yields is copied
//! into the link's receive block, where the codec decodes it as on a plain
//! link; queued frames (plaintext) are encrypted as the TLS link has room, and
//! its ciphertext is written to the socket. Framing, policies, liveness and
//! sessions run unchanged above it.
//!
//! Every TLS decision is the [`TlsLink`]'s (handshake, allow-list,
//! truncation) or the link core's (the handshake deadline, `Timer::TlsHandshake`);
//! this file moves bytes and maps failures to close reasons.
//!
//! Memory: a TLS link's buffers ([`TlsLinkSizes`], about 74 KiB) and rustls's
//! state are allocated when the link opens (a link whose buffers cannot be
//! allocated is refused) and freed when it closes.

use std::net::SocketAddr;
use std::time::Duration;

use super::{interrupted, reason_for, would_block, Node, SetupError, Slot, PENDING_TLS};
use crate::config::ConnectConfig;
use crate::error::CloseReason;
use crate::time::Instant;
use crate::tls::{ClientTls, TlsClientConfig, TlsError, TlsLink, TlsLinkError, TlsLinkSizes};

/// A link's TLS state.
pub(super) struct TlsSlot {
    pub(super) link: TlsLink,
    /// How long the handshake may take (the link core's `TlsHandshake` timer).
    timeout: Duration,
    /// The completed handshake was reported (`Event::TlsEstablished`).
    reported: bool,
}

/// The node's TLS state apart from its links.
#[derive(Default)]
pub(super) struct NodeTls {
    /// The last client settings checked and their checked form: reconnects and
    /// session redials with equal settings reuse it instead of reading the
    /// PEM files again.
    client: Option<(TlsClientConfig, ClientTls)>,
    /// The failure the last `Event::TlsFailed` borrows.
    pub(super) failed: Option<TlsError>,
}

/// True when the slot has TLS output waiting for the socket.
pub(super) fn has_tls_output(s: &Slot) -> bool {
    s.tls
        .as_ref()
        .is_some_and(|t| !t.link.ciphertext().is_empty())
}

impl Node {
    /// The TLS state for an outbound link to `addr` with `cfg`, if it asks for
    /// TLS. The settings are read and checked once (then reused).
    pub(super) fn tls_for_connect(
        &mut self,
        addr: SocketAddr,
        cfg: &ConnectConfig,
    ) -> Result<Option<Box<TlsSlot>>, SetupError> {
        let Some(settings) = &cfg.tls else {
            return Ok(None);
        };
        let cached = self
            .tls
            .client
            .as_ref()
            .filter(|(s, _)| s == settings)
            .map(|(_, c)| c.clone());
        let client = match cached {
            Some(c) => c,
            None => {
                let c = settings.build()?;
                self.tls.client = Some((settings.clone(), c.clone()));
                c
            }
        };
        let link = TlsLink::client(&client, addr, TlsLinkSizes::default()).map_err(setup_error)?;
        Ok(Some(Box::new(TlsSlot {
            link,
            timeout: client.handshake_timeout,
            reported: false,
        })))
    }

    /// The TLS state for a link accepted on listener `l`, if it serves TLS.
    /// `Err`: the reason to refuse the connection with.
    pub(super) fn tls_for_accept(&self, l: u32) -> Result<Option<Box<TlsSlot>>, CloseReason> {
        let Some(server) = self.listeners[l as usize].tls.as_ref() else {
            return Ok(None);
        };
        match TlsLink::server(server, TlsLinkSizes::default()) {
            Ok(link) => Ok(Some(Box::new(TlsSlot {
                link,
                timeout: server.handshake_timeout,
                reported: false,
            }))),
            Err(e) => {
                log::warn!("no TLS state for a new link: {e}");
                Err(match e {
                    // No memory for it: the node is full, like a lack of slots.
                    TlsLinkError::OutOfMemory { .. } => CloseReason::TooManyConnections,
                    TlsLinkError::Tls(e) => e.reason.into(),
                })
            }
        }
    }

    /// The link is open (accepted, or its connect completed): its TLS
    /// handshake's deadline starts.
    pub(super) fn tls_opened(&mut self, i: u32, now: Instant) {
        let s = &mut self.slots[i as usize];
        if let Some(t) = s.tls.as_ref() {
            s.link.start_tls_handshake(now, t.timeout);
            self.resched(i);
        }
    }

    /// The TLS link failed: the link closes with the failure's reason (the
    /// failure itself is reported by `Event::TlsFailed`).
    fn tls_failed(&mut self, i: u32, e: TlsError) {
        log::debug!("TLS link to {} failed: {e}", self.slots[i as usize].peer);
        self.close_slot(i, e.reason.into());
    }

    /// `read_once` for a TLS link: hands the plaintext the TLS link holds to
    /// the receive block, reading and decrypting the socket's ciphertext when
    /// it holds none. True when plaintext (or the handshake's completion)
    /// arrived.
    pub(super) fn read_tls(&mut self, i: u32, now: Instant) -> bool {
        loop {
            let s = &mut self.slots[i as usize];
            let Some(t) = s.tls.as_deref_mut() else {
                return false;
            };
            let plain = t.link.plaintext();
            if !plain.is_empty() {
                let spare = self.bufs.spare(&s.rx);
                let n = plain.len().min(spare.len());
                spare[..n].copy_from_slice(&plain[..n]);
                s.rx.end += n as u32;
                // More may wait in the TLS link: come back for it (the socket
                // read that finds nothing clears this).
                s.readable = true;
                if let Err(e) = t.link.consume_plaintext(n) {
                    self.tls_failed(i, e);
                    return false;
                }
                if has_tls_output(&self.slots[i as usize]) {
                    self.write_out_tls(i, now);
                }
                return n > 0;
            }
            if t.link.peer_closed() {
                // close_notify: the peer is done.
                s.readable = false;
                self.close_slot(i, CloseReason::PeerClosed);
                return false;
            }
            let Some(sock) = s.sock.as_mut() else {
                return false;
            };
            let buf = t.link.read_buffer();
            if buf.is_empty() {
                // Full of records rustls cannot take until its output is
                // written: the write path marks the link ready again.
                return false;
            }
            match sock.read(buf) {
                Ok(0) => {
                    s.readable = false;
                    // A partial frame in the receive block: the codec's
                    // (decode ran before this read and left it).
                    match t.link.peer_eof(!s.rx.is_empty()) {
                        Ok(()) => self.close_slot(i, CloseReason::PeerClosed),
                        Err(e) => self.tls_failed(i, e),
                    }
                    return false;
                }
                Ok(n) => {
                    // Any byte from the peer counts for liveness and the counters
                    // (TLS links count bytes on the wire).
                    s.link.handle_input(now, n);
                    if let Err(e) = t.link.received(n) {
                        self.tls_failed(i, e);
                        return false;
                    }
                    let established = !t.reported && t.link.handshake().is_some();
                    if established {
                        t.reported = true;
                        s.pending |= PENDING_TLS;
                        s.link.handle_tls_established();
                        self.resched(i);
                    }
                    // Handshake records to send, or frames that waited for it.
                    if super::has_output(&self.slots[i as usize]) {
                        self.write_out_tls(i, now);
                    }
                    if established {
                        return true; // reported before its first frame
                    }
                }
                Err(e) if would_block(&e) => {
                    s.readable = false;
                    return false;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    s.readable = false;
                    log::debug!("read from {} failed: {e}", s.peer);
                    self.close_slot(i, reason_for(&e));
                    return false;
                }
            }
        }
    }

    /// `write_out` for a TLS link: encrypts queued frames as the TLS link has
    /// room and writes its ciphertext. The frames' queue drains into the TLS
    /// link no faster than the socket takes its ciphertext (bounded by
    /// [`TlsLinkSizes::ciphertext_out`]), so reply backpressure and the write
    /// timer work as on a plain link; the queue counts as empty once the
    /// ciphertext is written too.
    pub(super) fn write_out_tls(&mut self, i: u32, now: Instant) {
        loop {
            let s = &mut self.slots[i as usize];
            if !s.link.is_open() {
                return;
            }
            let (Some(t), Some(sock)) = (s.tls.as_deref_mut(), s.sock.as_mut()) else {
                return;
            };
            if !s.tx.is_empty() {
                match t.link.write_plaintext(self.bufs.data(&s.tx)) {
                    Ok(n) => self.bufs.consume(&mut s.tx, n),
                    Err(e) => {
                        self.tls_failed(i, e);
                        return;
                    }
                }
            }
            let out = t.link.ciphertext();
            if out.is_empty() {
                return;
            }
            match sock.write(out) {
                Ok(0) => {
                    self.close_slot(i, CloseReason::Io);
                    return;
                }
                Ok(n) => {
                    if let Err(e) = t.link.ciphertext_written(n) {
                        self.tls_failed(i, e);
                        return;
                    }
                    let drained = t.link.ciphertext().is_empty() && s.tx.is_empty();
                    if !t.link.plaintext().is_empty() {
                        // Writing let rustls decrypt what it held back.
                        s.readable = true;
                        self.mark_ready(i);
                    }
                    if !self.after_write_with(i, n, drained, now) {
                        return;
                    }
                }
                Err(e) if would_block(&e) => {
                    s.link.handle_write_blocked(now);
                    self.resched(i);
                    return;
                }
                Err(e) if interrupted(&e) => {}
                Err(e) => {
                    log::debug!("write to {} failed: {e}", s.peer);
                    self.close_slot(i, reason_for(&e));
                    return;
                }
            }
        }
    }

    /// The link is closing for `reason`: a graceful close encrypts what is
    /// still queued (a mooring CLOSE, say) and sends `close_notify`; a failed
    /// TLS link sends its alert. One best-effort write, as for a plain link's
    /// farewell. Frees the TLS state; returns its failure for the report.
    pub(super) fn tls_closing(&mut self, i: u32, reason: CloseReason) -> Option<TlsError> {
        let s = &mut self.slots[i as usize];
        let mut t = s.tls.take()?;
        if t.link.failure().is_none() {
            if reason == CloseReason::TlsHandshakeTimeout {
                let _ = t.link.handshake_timed_out();
            } else if !reason.is_peer_side() {
                if !s.tx.is_empty() {
                    if let Ok(n) = t.link.write_plaintext(self.bufs.data(&s.tx)) {
                        self.bufs.consume(&mut s.tx, n);
                    }
                }
                let _ = t.link.close();
            }
        }
        let out = t.link.ciphertext();
        if let Some(sock) = s.sock.as_mut() {
            if !out.is_empty() {
                let _ = sock.write(out);
            }
        }
        t.link.failure().cloned()
    }

    /// The session-binding key of the link's peer: the digest of the identity
    /// its certificate proved, if it presented one.
    pub(super) fn peer_identity_key(&self, i: u32) -> Option<[u8; 32]> {
        let t = self.slots[i as usize].tls.as_ref()?;
        t.link.handshake()?.peer.as_ref().map(|p| p.digest())
    }
}

fn setup_error(e: TlsLinkError) -> SetupError {
    match e {
        TlsLinkError::OutOfMemory { what, bytes } => SetupError::OutOfMemory { what, bytes },
        TlsLinkError::Tls(e) => SetupError::Tls(crate::tls::TlsConfigError {
            source: "tls".into(),
            problem: e.to_string(),
        }),
    }
}

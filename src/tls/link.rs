//! One TLS link as a pure state machine over fixed buffers: ciphertext in,
//! plaintext out, plaintext in, ciphertext out. No IO, no clock.

use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::UnbufferedClientConnection;
use rustls::server::UnbufferedServerConnection;
use rustls::unbuffered::{ConnectionState, UnbufferedStatus};
use rustls::{CommonState, ProtocolVersion};

use super::config::{ClientTls, ServerTls, TlsVersion};
use super::identity::{AllowPeers, PeerIdentity};
use super::reason::{TlsError, TlsFailure};
use crate::fallible::{vec_with_capacity, AllocError};

/// The largest TLS record on the wire: 5-byte header, 2^14 bytes of
/// plaintext and the most expansion TLS 1.2 allows (2,048).
pub const MAX_RECORD: usize = 5 + 16_384 + 2_048;
/// The largest plaintext one record carries.
pub const MAX_PLAINTEXT: usize = 16_384;
/// Room kept for one record's header, nonce, tag and content type when
/// encrypting (the suites used add at most 29 bytes).
const RECORD_OVERHEAD: usize = 64;

/// The buffer sizes of one link, fixed when it is made.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct TlsLinkSizes {
    /// Received ciphertext waiting to be decrypted. At least [`MAX_RECORD`]
    /// (one whole record must fit). Default [`MAX_RECORD`].
    pub ciphertext_in: usize,
    /// Ciphertext waiting to be written. At least 2 x [`MAX_RECORD`]: reading
    /// goes on only while a whole handshake record still fits, so that a
    /// pending write never blocks the protocol. Default 2 x [`MAX_RECORD`].
    pub ciphertext_out: usize,
    /// Decrypted plaintext waiting for the caller. At least [`MAX_PLAINTEXT`]
    /// (one record's worth). Default [`MAX_PLAINTEXT`].
    pub plaintext_in: usize,
}

impl Default for TlsLinkSizes {
    fn default() -> Self {
        TlsLinkSizes {
            ciphertext_in: MAX_RECORD,
            ciphertext_out: 2 * MAX_RECORD,
            plaintext_in: MAX_PLAINTEXT,
        }
    }
}

impl TlsLinkSizes {
    /// The sizes raised to their minimums.
    fn at_least_minimum(self) -> Self {
        TlsLinkSizes {
            ciphertext_in: self.ciphertext_in.max(MAX_RECORD),
            ciphertext_out: self.ciphertext_out.max(2 * MAX_RECORD),
            plaintext_in: self.plaintext_in.max(MAX_PLAINTEXT),
        }
    }

    /// Bytes of buffer a link with these sizes holds.
    pub fn total(self) -> usize {
        let s = self.at_least_minimum();
        s.ciphertext_in + s.ciphertext_out + s.plaintext_in
    }
}

/// A link could not be made.
#[non_exhaustive]
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum TlsLinkError {
    /// Its buffers could not be allocated.
    OutOfMemory {
        /// Which buffer.
        what: &'static str,
        /// Bytes it wanted.
        bytes: usize,
    },
    /// rustls refused to start the connection (a configuration it cannot use).
    Tls(TlsError),
}

impl std::fmt::Display for TlsLinkError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            TlsLinkError::OutOfMemory { what, bytes } => {
                write!(f, "out of memory: {what} needs {bytes} bytes")
            }
            TlsLinkError::Tls(e) => write!(f, "{e}"),
        }
    }
}

impl std::error::Error for TlsLinkError {}

impl From<AllocError> for TlsLinkError {
    fn from(e: AllocError) -> Self {
        TlsLinkError::OutOfMemory {
            what: e.what,
            bytes: e.bytes,
        }
    }
}

/// What a completed handshake negotiated.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Handshake {
    /// The protocol version.
    pub version: TlsVersion,
    /// The cipher suite, IANA name (e.g. `TLS13_AES_256_GCM_SHA384`).
    pub suite: String,
    /// The peer's identity, if it presented a certificate (always for a
    /// client's view of a server).
    pub peer: Option<PeerIdentity>,
}

impl Handshake {
    /// The version as event lines show it (`TLSv1_2`, `TLSv1_3`).
    pub fn version_name(&self) -> &'static str {
        match self.version {
            TlsVersion::Tls12 => "TLSv1_2",
            TlsVersion::Tls13 => "TLSv1_3",
        }
    }
}

enum Conn {
    Server(Box<UnbufferedServerConnection>),
    Client(Box<UnbufferedClientConnection>),
}

/// The buffers and flags, apart from the connection so that both can be
/// borrowed at once while rustls's state borrows the connection.
struct Io {
    tx: Vec<u8>,
    tx_start: usize,
    tx_end: usize,
    plain: Vec<u8>,
    plain_start: usize,
    plain_end: usize,
    established: bool,
    close_wanted: bool,
    close_queued: bool,
    peer_closed: bool,
    refused: Option<TlsError>,
}

impl Io {
    fn tx_spare(&mut self) -> &mut [u8] {
        if self.tx_start == self.tx_end {
            self.tx_start = 0;
            self.tx_end = 0;
        } else if self.tx_start > 0 && self.tx.len() - self.tx_end < MAX_RECORD {
            self.tx.copy_within(self.tx_start..self.tx_end, 0);
            self.tx_end -= self.tx_start;
            self.tx_start = 0;
        }
        &mut self.tx[self.tx_end..]
    }

    fn plain_free(&mut self) -> usize {
        if self.plain_start == self.plain_end {
            self.plain_start = 0;
            self.plain_end = 0;
        } else if self.plain_start > 0 {
            self.plain.copy_within(self.plain_start..self.plain_end, 0);
            self.plain_end -= self.plain_start;
            self.plain_start = 0;
        }
        self.plain.len() - self.plain_end
    }
}

/// What one step of rustls's state machine came to.
enum Step {
    /// Progress was made: step again.
    Again,
    /// Nothing more to do until the caller feeds, drains or writes.
    Stop,
    /// The handshake has just completed (first `WriteTraffic`).
    Established,
    /// `n` bytes of the caller's plaintext were encrypted.
    Wrote(usize),
    /// The link failed.
    Failed(TlsError),
}

/// One TLS link (server or client side) over fixed buffers.
///
/// Every call that changes the link also advances the TLS state machine as
/// far as the buffers allow. After a call, write out [`TlsLink::ciphertext`]
/// and take [`TlsLink::plaintext`].
///
/// Backpressure: while decrypted data waits for room in the plaintext buffer,
/// rustls yields nothing else, so encrypting waits too: move plaintext out
/// before writing more. Reading waits while less than one record of room is
/// left in the ciphertext-out buffer.
pub struct TlsLink {
    conn: Conn,
    rx: Vec<u8>,
    rx_len: usize,
    io: Io,
    allow: Option<Arc<AllowPeers>>,
    handshake: Option<Handshake>,
    failure: Option<TlsError>,
}

impl TlsLink {
    /// The server side of an accepted connection.
    pub fn server(tls: &ServerTls, sizes: TlsLinkSizes) -> Result<TlsLink, TlsLinkError> {
        let conn = UnbufferedServerConnection::new(tls.config.clone())
            .map_err(|e| TlsLinkError::Tls(e.into()))?;
        TlsLink::with(Conn::Server(Box::new(conn)), Some(tls.allow.clone()), sizes)
    }

    /// The client side of a connection to `addr` (the server name verified is
    /// the configured one, else `addr`'s IP).
    pub fn client(
        tls: &ClientTls,
        addr: SocketAddr,
        sizes: TlsLinkSizes,
    ) -> Result<TlsLink, TlsLinkError> {
        let conn = UnbufferedClientConnection::new(tls.config.clone(), tls.server_name_for(addr))
            .map_err(|e| TlsLinkError::Tls(e.into()))?;
        TlsLink::with(Conn::Client(Box::new(conn)), None, sizes)
    }

    fn with(
        conn: Conn,
        allow: Option<Arc<AllowPeers>>,
        sizes: TlsLinkSizes,
    ) -> Result<TlsLink, TlsLinkError> {
        let s = sizes.at_least_minimum();
        let zeroed = |n: usize, what| -> Result<Vec<u8>, AllocError> {
            let mut v = vec_with_capacity(n, what)?;
            v.resize(n, 0);
            Ok(v)
        };
        let mut link = TlsLink {
            conn,
            rx: zeroed(s.ciphertext_in, "tls ciphertext in")?,
            rx_len: 0,
            io: Io {
                tx: zeroed(s.ciphertext_out, "tls ciphertext out")?,
                tx_start: 0,
                tx_end: 0,
                plain: zeroed(s.plaintext_in, "tls plaintext in")?,
                plain_start: 0,
                plain_end: 0,
                established: false,
                close_wanted: false,
                close_queued: false,
                peer_closed: false,
                refused: None,
            },
            allow,
            handshake: None,
            failure: None,
        };
        // A client's first flight (ClientHello) is ready at once. A failure
        // here is kept and reported by the next call.
        let _ = link.pump(&[]);
        Ok(link)
    }

    /// Takes received ciphertext; returns how many bytes were taken (fewer
    /// than given when the buffer is full: offer the rest later).
    pub fn feed(&mut self, ciphertext: &[u8]) -> Result<usize, TlsError> {
        self.check()?;
        let n = ciphertext.len().min(self.rx.len() - self.rx_len);
        self.rx[self.rx_len..self.rx_len + n].copy_from_slice(&ciphertext[..n]);
        self.rx_len += n;
        self.pump(&[])?;
        Ok(n)
    }

    /// The free room of the received-ciphertext buffer, for the driver to read
    /// the socket straight into (then [`TlsLink::received`]); saves the copy
    /// [`TlsLink::feed`] makes. Empty after a failure or while the buffer is
    /// full.
    pub fn read_buffer(&mut self) -> &mut [u8] {
        if self.failure.is_some() {
            return &mut [];
        }
        &mut self.rx[self.rx_len..]
    }

    /// `n` bytes were read into [`TlsLink::read_buffer`] (clamped to its
    /// room): processes them like [`TlsLink::feed`].
    pub fn received(&mut self, n: usize) -> Result<(), TlsError> {
        self.check()?;
        self.rx_len = self.rx_len.saturating_add(n).min(self.rx.len());
        self.pump(&[]).map(drop)
    }

    /// Decrypted data waiting for the caller.
    pub fn plaintext(&self) -> &[u8] {
        &self.io.plain[self.io.plain_start..self.io.plain_end]
    }

    /// The caller took `n` bytes of [`TlsLink::plaintext`] (clamped to what is
    /// there).
    pub fn consume_plaintext(&mut self, n: usize) -> Result<(), TlsError> {
        self.io.plain_start = self.io.plain_start.saturating_add(n).min(self.io.plain_end);
        self.check()?;
        self.pump(&[]).map(drop)
    }

    /// Encrypts as much of `plaintext` as fits; returns how many bytes were
    /// taken (0 while handshaking, closing, or while the ciphertext buffer is
    /// full: write it out first).
    pub fn write_plaintext(&mut self, plaintext: &[u8]) -> Result<usize, TlsError> {
        self.check()?;
        if self.io.close_wanted {
            return Ok(0);
        }
        self.pump(plaintext)
    }

    /// Ciphertext waiting to be written to the socket.
    pub fn ciphertext(&self) -> &[u8] {
        &self.io.tx[self.io.tx_start..self.io.tx_end]
    }

    /// The caller wrote `n` bytes of [`TlsLink::ciphertext`] (clamped). After
    /// a failure this still works: the alert rustls sends is written out.
    pub fn ciphertext_written(&mut self, n: usize) -> Result<(), TlsError> {
        self.io.tx_start = self.io.tx_start.saturating_add(n).min(self.io.tx_end);
        if self.failure.is_some() {
            // A failed link still writes out its alert or close_notify.
            return Ok(());
        }
        self.pump(&[]).map(drop)
    }

    /// Starts a graceful close: queues `close_notify` (once the handshake is
    /// done; a link still handshaking has nothing to close). No plaintext is
    /// taken after this.
    pub fn close(&mut self) -> Result<(), TlsError> {
        self.io.close_wanted = true;
        self.check()?;
        self.pump(&[]).map(drop)
    }

    /// The peer ended the TCP stream. `mid_frame`: the codec holds part of a
    /// frame. Without the peer's `close_notify`, an end during the handshake,
    /// inside a record or inside a frame is [`TlsFailure::Truncated`]; an end
    /// between frames is accepted (many stacks never send `close_notify`).
    pub fn peer_eof(&mut self, mid_frame: bool) -> Result<(), TlsError> {
        self.check()?;
        if self.io.peer_closed {
            return Ok(());
        }
        let unfinished = if self.handshake.is_none() {
            Some("during the handshake")
        } else if self.rx_len > 0 {
            Some("inside a TLS record")
        } else if mid_frame {
            Some("inside a frame")
        } else {
            None
        };
        match unfinished {
            Some(when) => Err(self.fail(TlsError::new(
                TlsFailure::Truncated,
                format!("the peer ended the stream without close_notify {when}"),
            ))),
            None => Ok(()),
        }
    }

    /// The caller's handshake timer fired: a link still handshaking fails
    /// with [`TlsFailure::HandshakeTimeout`] (returned); an established link
    /// is unaffected (`None`).
    pub fn handshake_timed_out(&mut self) -> Option<TlsError> {
        if self.handshake.is_some() || self.failure.is_some() {
            return None;
        }
        Some(self.fail(TlsError::new(
            TlsFailure::HandshakeTimeout,
            "the handshake did not finish in time",
        )))
    }

    /// True until the handshake has completed (and the allow-list passed).
    pub fn is_handshaking(&self) -> bool {
        self.handshake.is_none()
    }

    /// What the handshake negotiated, once it has completed.
    pub fn handshake(&self) -> Option<&Handshake> {
        self.handshake.as_ref()
    }

    /// True once the peer's `close_notify` has arrived.
    pub fn peer_closed(&self) -> bool {
        self.io.peer_closed
    }

    /// True once our `close_notify` is queued (it may still be in
    /// [`TlsLink::ciphertext`]).
    pub fn close_queued(&self) -> bool {
        self.io.close_queued
    }

    /// The failure, if the link has failed.
    pub fn failure(&self) -> Option<&TlsError> {
        self.failure.as_ref()
    }

    /// Bytes of buffer this link holds (rustls's own state is not counted).
    pub fn buffer_bytes(&self) -> usize {
        self.rx.len() + self.io.tx.len() + self.io.plain.len()
    }

    fn check(&self) -> Result<(), TlsError> {
        match &self.failure {
            Some(e) => Err(e.clone()),
            None => Ok(()),
        }
    }

    fn fail(&mut self, e: TlsError) -> TlsError {
        self.failure = Some(e.clone());
        e
    }

    /// After an error of rustls's, rustls has queued a fatal alert so that
    /// the peer can name the failure too: moves it into the ciphertext
    /// buffer. Exactly one more step, which returns the queued alert before
    /// it would look at the input again (looking again at input that failed
    /// to deframe would make rustls send a second alert).
    fn rustls_failed(&mut self, e: TlsError) -> TlsError {
        if self.io.tx_spare().len() >= MAX_RECORD {
            let io = &mut self.io;
            let rx = &mut self.rx[..self.rx_len];
            match &mut self.conn {
                Conn::Server(c) => alert(c.process_tls_records(rx), io),
                Conn::Client(c) => alert(c.process_tls_records(rx), io),
            }
        }
        // The rest of the input is of no use once the link has failed.
        self.rx_len = 0;
        self.fail(e)
    }

    /// Runs rustls's state machine as far as the buffers allow; returns how
    /// many bytes of `input` (plaintext to send) were encrypted.
    fn pump(&mut self, input: &[u8]) -> Result<usize, TlsError> {
        let mut written = 0;
        loop {
            // A handshake record rustls hands out must be taken whole: step
            // only while one fits.
            if self.io.tx_spare().len() < MAX_RECORD {
                break;
            }
            let rest = &input[written..];
            let (discard, step) = match &mut self.conn {
                Conn::Server(c) => step(
                    c.process_tls_records(&mut self.rx[..self.rx_len]),
                    &mut self.io,
                    rest,
                ),
                Conn::Client(c) => step(
                    c.process_tls_records(&mut self.rx[..self.rx_len]),
                    &mut self.io,
                    rest,
                ),
            };
            let discard = discard.min(self.rx_len);
            self.rx.copy_within(discard..self.rx_len, 0);
            self.rx_len -= discard;
            match step {
                Step::Again => {}
                Step::Stop => break,
                Step::Wrote(n) => {
                    written += n;
                    if n == 0 || written == input.len() {
                        break;
                    }
                }
                Step::Established => self.established(),
                Step::Failed(e) => return Err(self.rustls_failed(e)),
            }
        }
        if let Some(e) = self.io.refused.take() {
            return Err(self.fail(e));
        }
        Ok(written)
    }

    /// Records what the handshake negotiated and checks the allow-list; a
    /// peer not on it gets a `close_notify` and the link fails.
    fn established(&mut self) {
        self.io.established = true;
        let common: &CommonState = match &self.conn {
            Conn::Server(c) => c,
            Conn::Client(c) => c,
        };
        let version = match common.protocol_version() {
            Some(ProtocolVersion::TLSv1_2) => TlsVersion::Tls12,
            _ => TlsVersion::Tls13,
        };
        let suite = common
            .negotiated_cipher_suite()
            .map(|s| format!("{:?}", s.suite()))
            .unwrap_or_default();
        let peer = common
            .peer_certificates()
            .and_then(|c| c.first())
            .map(|c| PeerIdentity::from_der(c));
        if let Some(allow) = &self.allow {
            if !allow.allows(peer.as_ref()) {
                let who = peer
                    .as_ref()
                    .map_or("a peer without a certificate".to_owned(), |p| p.to_string());
                self.io.close_wanted = true;
                self.io.refused = Some(TlsError::new(
                    TlsFailure::PeerNotAllowed,
                    format!("{who} is not on the allow-list"),
                ));
                return;
            }
        }
        self.handshake = Some(Handshake {
            version,
            suite,
            peer,
        });
    }
}

/// One step: acts on the state rustls is in. Returns the bytes of received
/// ciphertext rustls is done with, and what came of it.
fn step<Data>(status: UnbufferedStatus<'_, '_, Data>, io: &mut Io, input: &[u8]) -> (usize, Step) {
    let mut discard = status.discard;
    let state = match status.state {
        Ok(s) => s,
        Err(e) => return (discard, Step::Failed(e.into())),
    };
    let step = match state {
        ConnectionState::ReadTraffic(mut r) => {
            let mut took = false;
            while let Some(len) = r.peek_len() {
                if len.get() > io.plain_free() {
                    break;
                }
                match r.next_record() {
                    Some(Ok(rec)) => {
                        discard += rec.discard;
                        io.plain[io.plain_end..io.plain_end + rec.payload.len()]
                            .copy_from_slice(rec.payload);
                        io.plain_end += rec.payload.len();
                        took = true;
                    }
                    Some(Err(e)) => return (discard, Step::Failed(e.into())),
                    None => break,
                }
            }
            if took {
                Step::Again
            } else {
                Step::Stop
            }
        }
        ConnectionState::EncodeTlsData(mut e) => match e.encode(io.tx_spare()) {
            Ok(n) => {
                io.tx_end += n;
                Step::Again
            }
            Err(err) => Step::Failed(TlsError::new(
                TlsFailure::Protocol,
                format!("a handshake record does not fit the buffer: {err}"),
            )),
        },
        // The records are in our ciphertext buffer, in order: the driver
        // writes them before anything queued later.
        ConnectionState::TransmitTlsData(t) => {
            t.done();
            Step::Again
        }
        ConnectionState::BlockedHandshake => Step::Stop,
        ConnectionState::WriteTraffic(mut w) => {
            if !io.established {
                Step::Established
            } else if io.close_wanted {
                if !io.close_queued {
                    if let Ok(n) = w.queue_close_notify(io.tx_spare()) {
                        io.tx_end += n;
                        io.close_queued = true;
                    }
                }
                Step::Stop
            } else if input.is_empty() {
                Step::Stop
            } else {
                let mut done = 0;
                while done < input.len() {
                    let room = io.tx_spare().len().saturating_sub(RECORD_OVERHEAD);
                    let chunk = (input.len() - done).min(MAX_PLAINTEXT).min(room);
                    if chunk == 0 {
                        break;
                    }
                    match w.encrypt(&input[done..done + chunk], io.tx_spare()) {
                        Ok(n) => {
                            io.tx_end += n;
                            done += chunk;
                        }
                        Err(_) => break,
                    }
                }
                Step::Wrote(done)
            }
        }
        ConnectionState::PeerClosed => {
            io.peer_closed = true;
            Step::Again
        }
        ConnectionState::Closed => {
            io.peer_closed = true;
            Step::Stop
        }
        ConnectionState::ReadEarlyData(_) => Step::Failed(TlsError::new(
            TlsFailure::Protocol,
            "early data is not accepted",
        )),
        _ => Step::Stop,
    };
    (discard, step)
}

/// The step after a failure: takes the queued alert, if that is what rustls
/// hands out.
fn alert<Data>(status: UnbufferedStatus<'_, '_, Data>, io: &mut Io) {
    if let Ok(ConnectionState::EncodeTlsData(mut e)) = status.state {
        if let Ok(n) = e.encode(io.tx_spare()) {
            io.tx_end += n;
        }
    }
}

//! The demo's harness: a listener on a thread of its own that reports what it
//! sees, and mooring clients with the demo's settings.

use std::net::SocketAddr;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use mooring::{
    hl7, Client, ClientConfig, ClientPolicy, CloseReason, ConnectConfig, LivenessConfig,
    SessionNote,
};

use crate::args::ListenOpts;
use crate::line::{escape, Line};
use crate::listen::{Responder, Seen};

use super::{Outcome, EXPECT_WITHIN, MESSAGES};

/// What the server thread saw, owned so it can cross the channel.
#[derive(Clone, Debug)]
pub(super) struct Report {
    /// The `event=` name: connected, message, commit_ack, closed, rejected,
    /// session_message, session; and `cut` (a link the thread cut).
    pub(super) kind: &'static str,
    /// The peer.
    pub(super) peer: SocketAddr,
    /// For closed and rejected.
    pub(super) reason: Option<CloseReason>,
    /// For messages: MSH-10, escaped; for tls: the peer's identity.
    pub(super) id: Option<String>,
    /// For session notes.
    pub(super) note: Option<SessionNote>,
    /// For cuts: session messages received so far.
    pub(super) at: usize,
}

impl Report {
    /// An owned copy of what the responder saw.
    pub(super) fn from(s: &Seen<'_>) -> Report {
        let none = SocketAddr::from(([0, 0, 0, 0], 0));
        let mut note = None;
        let (kind, peer, reason, id) = match *s {
            Seen::Connected { peer } => ("connected", peer, None, None),
            Seen::Message { peer, id, .. } => ("message", peer, None, id.map(escape)),
            Seen::CommitAck { peer, .. } => ("commit_ack", peer, None, None),
            Seen::Closed { peer, reason, .. } => ("closed", peer, Some(reason), None),
            Seen::Rejected { peer, reason } => ("rejected", peer, Some(reason), None),
            Seen::SessionMessage { id, .. } => ("session_message", none, None, id.map(escape)),
            Seen::Session { note: n, .. } => {
                note = Some(n);
                ("session", none, None, None)
            }
            // The peer's identity in `id`.
            #[cfg(feature = "tls")]
            Seen::Tls { peer, handshake } => (
                "tls",
                peer,
                None,
                handshake
                    .peer
                    .as_ref()
                    .map(|p| escape(p.to_string().as_bytes())),
            ),
        };
        Report {
            kind,
            peer,
            reason,
            id,
            note,
            at: 0,
        }
    }
}

/// A listener on a thread of its own, reporting what it sees.
pub(super) struct ServerThread {
    /// Where it listens.
    pub(super) addr: SocketAddr,
    /// What it saw, in order.
    pub(super) seen: mpsc::Receiver<Report>,
    /// Set on drop: the thread ends its loop.
    pub(super) stop: Arc<AtomicBool>,
    /// Joined on drop.
    pub(super) handle: Option<JoinHandle<()>>,
}

impl ServerThread {
    /// Binds on the main thread (so a failure is reported here), then serves on a
    /// thread. Server-side lines are printed with `side=server`, except messages
    /// (the client prints one line per reply).
    pub(super) fn start(scenario: &'static str, o: ListenOpts) -> Result<ServerThread, String> {
        ServerThread::start_cutting(scenario, o, &[])
    }

    /// [`ServerThread::start`] that also cuts the link it last accepted (a
    /// server-side close) each time the session messages it received reach the
    /// next of `cuts`, printing `event=cut at=<received so far>` and reporting
    /// a `cut`.
    pub(super) fn start_cutting(
        scenario: &'static str,
        o: ListenOpts,
        cuts: &'static [usize],
    ) -> Result<ServerThread, String> {
        let mut responder = Responder::bind(&o).map_err(|e| format!("bind: {e}"))?;
        let addr = responder.local_addr();
        let (tx, rx) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = Arc::clone(&stop);
        let handle = std::thread::spawn(move || {
            let mut received = 0;
            let mut next_cut = cuts.iter().copied().peekable();
            while !stopped.load(Ordering::Relaxed) {
                // Short turns so `stop` is noticed quickly; deadlines still wake it.
                let res = responder.turn(Duration::from_millis(20), |seen| {
                    if matches!(seen, Seen::SessionMessage { .. }) {
                        received += 1;
                    } else if !matches!(seen, Seen::Message { .. }) {
                        seen.append_to(Line::new("scenario", scenario).kv("side", "server"))
                            .print();
                    }
                    let _ = tx.send(Report::from(seen));
                });
                if let Err(e) = res {
                    log::error!("demo server poll failed: {e}");
                    return;
                }
                if next_cut.next_if(|&c| received >= c).is_some() && responder.close_last_link() {
                    Line::new("scenario", scenario)
                        .kv("event", "cut")
                        .kv("at", received)
                        .print();
                    let _ = tx.send(Report {
                        kind: "cut",
                        peer: SocketAddr::from(([0, 0, 0, 0], 0)),
                        reason: None,
                        id: None,
                        note: None,
                        at: received,
                    });
                }
            }
        });
        Ok(ServerThread {
            addr,
            seen: rx,
            stop,
            handle: Some(handle),
        })
    }

    /// Waits until the server reports an event matching `want`, skipping others.
    pub(super) fn expect(
        &self,
        what: &str,
        want: impl Fn(&Report) -> bool,
    ) -> Result<Report, String> {
        let deadline = Instant::now() + EXPECT_WITHIN;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.seen.recv_timeout(left) {
                Ok(s) if want(&s) => return Ok(s),
                Ok(_) => {}
                Err(_) => {
                    return Err(format!(
                        "server did not report {what} within {EXPECT_WITHIN:?}"
                    ))
                }
            }
        }
    }

    /// Collects every event until `until`; fails on one matching `forbidden`.
    /// For the scenarios about time passing.
    pub(super) fn quiet_until(
        &self,
        until: Instant,
        forbidden: impl Fn(&Report) -> bool,
    ) -> Outcome {
        loop {
            let left = until.saturating_duration_since(Instant::now());
            if left.is_zero() {
                return Ok(());
            }
            match self.seen.recv_timeout(left) {
                Ok(s) if forbidden(&s) => return Err(format!("unexpected early event {s:?}")),
                Ok(_) | Err(mpsc::RecvTimeoutError::Timeout) => {}
                Err(mpsc::RecvTimeoutError::Disconnected) => {
                    return Err("server thread ended".into())
                }
            }
        }
    }

    /// Every event reported so far, without waiting.
    pub(super) fn drain(&self) -> Vec<Report> {
        self.seen.try_iter().collect()
    }
}

impl Drop for ServerThread {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(h) = self.handle.take() {
            let _ = h.join();
        }
    }
}

/// A mooring client for the demo: HL7 correlation on, short timeouts.
pub(super) fn client(addr: SocketAddr, policy: ClientPolicy) -> Result<Client, String> {
    client_with(addr, policy, LivenessConfig::default())
}

/// [`client`] with liveness settings.
pub(super) fn client_with(
    addr: SocketAddr,
    policy: ClientPolicy,
    liveness: LivenessConfig,
) -> Result<Client, String> {
    client_connecting(
        addr,
        policy,
        ConnectConfig {
            liveness,
            ..ConnectConfig::default()
        },
    )
}

/// [`client`] with connect settings (liveness, TLS); its connect timeout is
/// the demo's.
pub(super) fn client_connecting(
    addr: SocketAddr,
    policy: ClientPolicy,
    connect: ConnectConfig,
) -> Result<Client, String> {
    let cfg = ClientConfig {
        connect: ConnectConfig {
            connect_timeout: EXPECT_WITHIN,
            idle_timeout: None,
            ..connect
        },
        policy,
        response_timeout: EXPECT_WITHIN,
        correlate_hl7: true,
        ..ClientConfig::default()
    };
    Client::new(addr, cfg).map_err(|e| format!("client: {e}"))
}

/// Sends message `n` (1-based), prints the reply line, checks it is `AA` for it.
pub(super) fn request(client: &mut Client, line: impl Fn() -> Line, n: usize) -> Outcome {
    let msg = MESSAGES[n - 1].as_bytes();
    let id = hl7::control_id(msg);
    let started = Instant::now();
    match client.request(msg) {
        Ok(reply) => {
            let ack = hl7::ack_code(reply);
            line()
                .kv("event", "reply")
                .kv("n", n)
                .wire("id", id)
                .wire("ack", ack)
                .kv("ms", started.elapsed().as_millis())
                .print();
            if ack != Some(b"AA") || hl7::acked_control_id(reply) != id {
                return Err(format!("message {n}: reply is not an AA for it"));
            }
            Ok(())
        }
        Err(e) => {
            line()
                .kv("event", "error")
                .kv("n", n)
                .wire("id", id)
                .kv("error", e.as_str())
                .print();
            Err(format!("message {n}: {e}"))
        }
    }
}

/// Opts for a demo listener on a free loopback port.
pub(super) fn loopback() -> ListenOpts {
    ListenOpts {
        bind: SocketAddr::from(([127, 0, 0, 1], 0)),
        ..ListenOpts::default()
    }
}

//! The liveness steps of a [`Link`], driven through a thin adapter that speaks
//! the vocabulary these tests were written in (no idle, write or connect timer
//! in the way: those are the link tests' business).

use super::liveness::*;
use super::*;
use crate::error::ConfigError;
use crate::wire::PROTOCOL_VERSION;

/// What an inbound frame meant, as the liveness tests check it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Inbound {
    Deliver { offset: usize, seq: Option<u64> },
    Established(Greeting),
    Ack(u64),
    Skip(u64),
    Handled,
}

/// A link seen through its liveness steps only.
struct Liveness {
    link: Link,
    /// The payload of the last control frame polled.
    sent: Vec<u8>,
}

impl Liveness {
    fn new(cfg: LivenessConfig, server: bool, now: Instant) -> Self {
        let far = Duration::from_secs(3600);
        let lc = LinkConfig {
            idle_timeout: None,
            write_timeout: far,
            connect_timeout: far,
            close_after_reply: false,
            mllp_commit_ack: false,
            liveness: cfg,
        };
        let link = if server {
            Link::accepted(lc, now)
        } else {
            let mut l = Link::outbound(lc, now);
            l.handle_connected(now);
            l
        };
        Liveness {
            link,
            sent: Vec::new(),
        }
    }

    fn handle_frame(&mut self, now: Instant, frame: &[u8]) -> Result<Inbound, CloseReason> {
        match self.link.handle_frame(now, frame) {
            FrameAction::Deliver { offset, seq } => Ok(Inbound::Deliver { offset, seq }),
            FrameAction::Established(g) => Ok(Inbound::Established(g)),
            FrameAction::Ack(seq) => Ok(Inbound::Ack(seq)),
            FrameAction::SessionSkip(seq) => Ok(Inbound::Skip(seq)),
            FrameAction::Skip => Ok(Inbound::Handled),
            FrameAction::Close(r) => Err(r),
        }
    }

    fn poll_transmit(&mut self) -> Option<Control> {
        let mut b = [0u8; CONTROL_SCRATCH];
        let (c, n) = self.link.poll_transmit(&mut b)?;
        self.sent = b[..n].to_vec();
        Some(c)
    }

    /// The payload of the control frame `c` polled last.
    fn encode_control(&self, c: Control, out: &mut [u8]) -> Option<usize> {
        let _ = c;
        let dst = out.get_mut(..self.sent.len())?;
        dst.copy_from_slice(&self.sent);
        Some(self.sent.len())
    }

    fn handle_input(&mut self, now: Instant) {
        self.link.handle_input(now, 1);
    }

    fn handle_sent(&mut self, now: Instant) {
        self.link.handle_queued(now, None);
    }

    /// Busy: a request awaits its reply; not busy: the reply arrived.
    fn set_busy(&mut self, busy: bool) {
        if busy {
            self.link
                .keep_awaiting_reply(Instant::from_millis(u64::MAX));
        } else {
            let _ = self.link.handle_frame(Instant::from_millis(0), b"reply");
        }
    }

    fn is_established(&self) -> bool {
        self.link.is_established()
    }

    fn handle_timeout(&mut self, now: Instant) -> Option<CloseReason> {
        self.link.handle_timeout(now)
    }

    fn poll_timeout(&self) -> Option<Instant> {
        self.link.poll_timeout()
    }
}

fn t(ms: u64) -> Instant {
    Instant::from_millis(ms)
}

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn mooring(hb: Option<(u64, u64)>) -> LivenessConfig {
    LivenessConfig {
        protocol: Protocol::Mooring,
        heartbeat: hb.map(|(i, d)| Heartbeat {
            interval: ms(i),
            timeout: ms(d),
        }),
        handshake_timeout: ms(500),
        ..Default::default()
    }
}

/// A keep-alive of `payload` every 100 ms that needs a reply within 50 ms.
fn keepalive(payload: &[u8]) -> LivenessConfig {
    LivenessConfig {
        keepalive: Some(KeepAliveMessage {
            payload: payload.into(),
            every: ms(100),
            timeout: Some(ms(50)),
        }),
        ..Default::default()
    }
}

fn frame(m: Msg<'_>) -> Vec<u8> {
    let mut b = vec![0u8; 128];
    let n = wire::encode(&m, &mut b).unwrap();
    b.truncate(n);
    b
}

fn established_pair(cfg: LivenessConfig) -> (Liveness, Liveness) {
    let mut c = Liveness::new(cfg.clone(), false, t(0));
    let mut s = Liveness::new(cfg, true, t(0));
    assert_eq!(c.poll_transmit(), Some(Control::Hello));
    let hello = frame(Msg::Hello(Greeting::new_session()));
    assert!(matches!(
        s.handle_frame(t(1), &hello),
        Ok(Inbound::Established(_))
    ));
    assert_eq!(s.poll_transmit(), Some(Control::Welcome));
    let welcome = frame(Msg::Welcome(Greeting::new_session()));
    assert!(matches!(
        c.handle_frame(t(2), &welcome),
        Ok(Inbound::Established(_))
    ));
    (c, s)
}

#[test]
fn client_says_hello_and_server_welcomes_it() {
    let (c, s) = established_pair(mooring(None));
    assert!(c.is_established() && s.is_established());
    assert_eq!(c.poll_timeout(), None, "handshake timer stopped");
}

#[test]
fn server_closes_a_peer_that_never_says_hello() {
    let mut s = Liveness::new(mooring(None), true, t(0));
    assert_eq!(s.poll_timeout(), Some(t(500)));
    assert_eq!(s.handle_timeout(t(499)), None);
    assert_eq!(
        s.handle_timeout(t(500)),
        Some(CloseReason::HandshakeTimeout)
    );
}

#[test]
fn version_mismatch_closes_with_its_own_reason() {
    let mut s = Liveness::new(mooring(None), true, t(0));
    let mut g = Greeting::new_session();
    g.version = PROTOCOL_VERSION + 1;
    assert_eq!(
        s.handle_frame(t(1), &frame(Msg::Hello(g))),
        Err(CloseReason::VersionMismatch)
    );
}

#[test]
fn a_close_message_is_the_peers_close_whatever_reason_it_claims() {
    let (_, mut s) = established_pair(mooring(None));
    let claim = frame(Msg::Close(WireReason::Known(CloseReason::StaleReplaced)));
    assert_eq!(s.handle_frame(t(1), &claim), Err(CloseReason::PeerClosed));
    let (_, mut s) = established_pair(mooring(None));
    let unknown = frame(Msg::Close(WireReason::Unknown(200)));
    assert_eq!(s.handle_frame(t(1), &unknown), Err(CloseReason::PeerClosed));
}

#[test]
fn data_before_the_handshake_is_a_bad_frame() {
    let mut s = Liveness::new(mooring(None), true, t(0));
    let d = frame(Msg::Data {
        seq: 1,
        payload: b"x",
    });
    assert_eq!(s.handle_frame(t(1), &d), Err(CloseReason::BadFrame));
}

#[test]
fn data_is_delivered_past_its_header() {
    let (_, mut s) = established_pair(mooring(None));
    let d = frame(Msg::Data {
        seq: 1,
        payload: b"abc",
    });
    assert_eq!(
        s.handle_frame(t(3), &d),
        Ok(Inbound::Deliver {
            offset: wire::DATA_HEADER,
            seq: Some(1)
        })
    );
}

#[test]
fn silence_on_the_send_side_sends_a_ping_and_ping_gets_pong() {
    let (mut c, mut s) = established_pair(mooring(Some((100, 300))));
    c.handle_sent(t(2));
    assert_eq!(c.handle_timeout(t(100)), None);
    assert_eq!(c.poll_transmit(), None, "sent at t=2, so not yet");
    assert_eq!(c.handle_timeout(t(102)), None);
    assert_eq!(c.poll_transmit(), Some(Control::Ping));
    assert_eq!(
        s.handle_frame(t(103), &frame(Msg::Ping)),
        Ok(Inbound::Handled)
    );
    assert_eq!(s.poll_transmit(), Some(Control::Pong));
}

#[test]
fn accepting_side_pings_a_client_that_streams_one_way() {
    let (_, mut s) = established_pair(mooring(Some((100, 300))));
    // Client data arrives every 10 ms; the server sends nothing back.
    let mut pinged_at = None;
    for now in (10..=300).step_by(10) {
        s.handle_input(t(now));
        assert_eq!(s.handle_timeout(t(now)), None);
        if s.poll_transmit() == Some(Control::Ping) {
            pinged_at = Some(now);
            break;
        }
    }
    assert_eq!(pinged_at, Some(150), "1.5 x interval after its last send");
}

#[test]
fn accepting_side_does_not_ping_while_answering_pings() {
    let (_, mut s) = established_pair(mooring(Some((100, 300))));
    for k in 1..=20 {
        let now = t(k * 100);
        s.handle_input(now);
        assert_eq!(s.handle_frame(now, &frame(Msg::Ping)), Ok(Inbound::Handled));
        assert_eq!(s.poll_transmit(), Some(Control::Pong));
        s.handle_sent(now);
        assert_eq!(s.handle_timeout(now), None);
        assert_eq!(
            s.poll_transmit(),
            None,
            "no PING of its own at t={}",
            k * 100
        );
    }
}

#[test]
fn outbound_frames_defer_the_heartbeat() {
    let (mut c, _) = established_pair(mooring(Some((100, 300))));
    c.handle_sent(t(90));
    assert_eq!(c.handle_timeout(t(100)), None);
    assert_eq!(c.poll_transmit(), None);
    assert_eq!(c.poll_timeout(), Some(t(190)));
}

#[test]
fn no_inbound_bytes_for_the_timeout_is_a_heartbeat_timeout() {
    let (mut c, _) = established_pair(mooring(Some((100, 300))));
    c.handle_input(t(50));
    let mut now = 50;
    // Run the clock in 10 ms ticks: the verdict comes exactly at last_rx + timeout.
    loop {
        now += 10;
        if let Some(r) = c.handle_timeout(t(now)) {
            assert_eq!(r, CloseReason::HeartbeatTimeout);
            break;
        }
        let _ = c.poll_transmit();
    }
    assert_eq!(now, 350);
}

#[test]
fn inbound_bytes_exactly_at_the_deadline_keep_the_link() {
    let (mut c, _) = established_pair(mooring(Some((100, 300))));
    c.handle_input(t(300));
    assert_eq!(c.handle_timeout(t(300)), None);
    assert_eq!(c.handle_timeout(t(599)), None);
    assert_eq!(
        c.handle_timeout(t(600)),
        Some(CloseReason::HeartbeatTimeout)
    );
}

#[test]
fn keepalive_message_goes_out_on_idle_links_and_needs_a_reply() {
    let cfg = keepalive(b"MSH|^~\\&|KA");
    let mut l = Liveness::new(cfg, false, t(0));
    assert_eq!(l.handle_timeout(t(100)), None);
    assert_eq!(l.poll_transmit(), Some(Control::KeepAlive));
    let mut out = [0u8; 32];
    let n = l.encode_control(Control::KeepAlive, &mut out).unwrap();
    assert_eq!(&out[..n], b"MSH|^~\\&|KA");
    l.handle_sent(t(100));
    assert_eq!(
        l.handle_timeout(t(150)),
        Some(CloseReason::KeepAliveTimeout)
    );
}

#[test]
fn any_inbound_frame_answers_the_keepalive() {
    let cfg = keepalive(b"KA");
    let mut l = Liveness::new(cfg, false, t(0));
    assert_eq!(l.handle_timeout(t(100)), None);
    l.handle_sent(t(100));
    assert_eq!(
        l.handle_frame(t(120), b"ACK"),
        Ok(Inbound::Deliver {
            offset: 0,
            seq: None
        })
    );
    assert_eq!(l.handle_timeout(t(150)), None);
}

#[test]
fn detection_bound_takes_the_fastest_idle_mechanism() {
    let mut c = LivenessConfig::default();
    assert_eq!(c.detection_bound(), None);
    c.tcp_keepalive = Some(TcpKeepalive::default());
    assert_eq!(
        c.detection_bound(),
        Some(Duration::from_secs(75) + TIMER_TICK)
    );
    c.protocol = Protocol::Mooring;
    c.heartbeat = Some(Heartbeat::default());
    assert_eq!(
        c.detection_bound(),
        Some(Duration::from_secs(75) + TIMER_TICK)
    );
    c.heartbeat = Some(Heartbeat {
        interval: Duration::from_secs(10),
        timeout: Duration::from_secs(30),
    });
    assert_eq!(
        c.detection_bound(),
        Some(Duration::from_secs(30) + TIMER_TICK)
    );
}

#[test]
fn keepalive_with_tcp_user_timeout_is_a_bound_even_without_a_reply_timeout() {
    let c = LivenessConfig {
        keepalive: Some(KeepAliveMessage {
            payload: b"KA".into(),
            every: Duration::from_secs(10),
            timeout: None,
        }),
        tcp_user_timeout: Some(Duration::from_secs(20)),
        ..Default::default()
    };
    assert_eq!(
        c.detection_bound(),
        Some(Duration::from_secs(30) + TCP_RETRANSMIT_SLACK + TIMER_TICK)
    );
}

#[test]
fn no_keepalive_goes_out_while_a_reply_is_awaited() {
    let cfg = keepalive(b"KA");
    let mut l = Liveness::new(cfg, false, t(0));
    l.set_busy(true);
    assert_eq!(l.handle_timeout(t(100)), None);
    assert_eq!(l.poll_transmit(), None);
    assert_eq!(
        l.handle_timeout(t(150)),
        None,
        "no reply timer without a keep-alive"
    );
    l.set_busy(false);
    assert_eq!(l.handle_timeout(t(200)), None);
    assert_eq!(l.poll_transmit(), Some(Control::KeepAlive));
}

#[test]
fn heartbeat_needs_the_mooring_protocol() {
    let c = LivenessConfig {
        heartbeat: Some(Heartbeat::default()),
        ..Default::default()
    };
    assert_eq!(
        c.validate(),
        Err(ConfigError::NeedsMooringProtocol { field: "heartbeat" })
    );
}

#[test]
fn many_links_expiring_in_one_tick_each_report_once() {
    let cfg = mooring(Some((100, 300)));
    let mut links: Vec<Liveness> = (0..1000).map(|_| established_pair(cfg.clone()).0).collect();
    let dead = links
        .iter_mut()
        .map(|l| l.handle_timeout(t(302)))
        .filter(|r| *r == Some(CloseReason::HeartbeatTimeout))
        .count();
    assert_eq!(dead, 1000);
}

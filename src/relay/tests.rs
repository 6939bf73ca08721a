//! The relay engine driven by hand-made node events on virtual time. A real
//! [`Node`] only hands out link and listener ids (nothing is sent or
//! received over its sockets except where a test says so); `now` is explicit.

use std::net::SocketAddr;
use std::time::Duration;

use super::upstream::{InFlight, RawLink, Upstream};
use super::*;
use crate::session::Redial;
use crate::{ListenConfig, NodeConfig};

const UP: &str = "127.0.0.1:9";

fn msg(id: &str) -> Vec<u8> {
    format!("MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101||ADT^A01|{id}|P|2.5\rPID|1\r").into_bytes()
}

fn ack(id: &str, code: &str) -> Vec<u8> {
    format!("MSH|^~\\&|EHR|HOSP|DEV|WARD|20260101||ACK|A{id}|P|2.5\rMSA|{code}|{id}\r").into_bytes()
}

/// Each event, reduced to what the tests compare.
fn summary(ev: RelayEvent<'_>) -> String {
    let s = |b: &[u8]| String::from_utf8_lossy(b).into_owned();
    match ev {
        RelayEvent::DeviceConnected { .. } => "connected".into(),
        RelayEvent::DeviceMessage { id, .. } => {
            format!("message {}", id.map(s).unwrap_or_default())
        }
        RelayEvent::Refused { reason, .. } => format!("refused {}", reason.as_str()),
        RelayEvent::Duplicate { id, pending, .. } => {
            format!("duplicate {} pending={pending}", s(id))
        }
        RelayEvent::QueueFull { id, queued, .. } => format!("queue_full {} queued={queued}", s(id)),
        RelayEvent::Queued { id, seq, .. } => format!("queued {} seq={seq}", s(id)),
        RelayEvent::ReplyTimeout { id, seq, ack, .. } => {
            format!("reply_timeout {} seq={seq} ack={}", s(id), ack.as_str())
        }
        RelayEvent::UnexpectedReply { id, .. } => {
            format!("unexpected_reply {}", id.map(s).unwrap_or_default())
        }
        other => format!("{other:?}"),
    }
}

/// A relay on a node with one listener, and one link id that plays a device.
struct Bench {
    node: Node,
    relay: Relay,
    device: LinkId,
    peer: SocketAddr,
    t0: Instant,
    seen: Vec<String>,
}

impl Bench {
    fn new(cfg: RelayConfig) -> Bench {
        let mut node = Node::new(NodeConfig::default()).expect("node");
        let listener = node
            .listen("127.0.0.1:0".parse().unwrap(), ListenConfig::default())
            .expect("listen");
        let addr = node.local_addr(listener).expect("addr");
        let device = node.connect(addr, &ConnectConfig::default()).expect("id");
        let relay = Relay::new(cfg, &node).expect("relay");
        let t0 = node.now();
        let mut b = Bench {
            node,
            relay,
            device,
            peer: "127.0.0.1:40000".parse().unwrap(),
            t0,
            seen: Vec::new(),
        };
        let ev = Event::Connected {
            link: device,
            peer: b.peer,
            listener: Some(listener),
        };
        b.event(ev, 0);
        b
    }

    fn at(&self, ms: u64) -> Instant {
        self.t0 + Duration::from_millis(ms)
    }

    fn event(&mut self, ev: Event<'_>, ms: u64) {
        let now = self.at(ms);
        let seen = &mut self.seen;
        self.relay
            .handle_event(ev, now, &mut |e| seen.push(summary(e)));
    }

    /// A device message at `ms`; returns the ACK code the device gets now.
    fn device_sends(&mut self, payload: &[u8], ms: u64) -> Option<String> {
        self.event(
            Event::Message {
                link: self.device,
                payload,
            },
            ms,
        );
        let (link, n) = self.relay.ack_due.take()?;
        assert_eq!(link, self.device);
        hl7::ack_code(&self.relay.ack_buf[..n]).map(|c| String::from_utf8_lossy(c).into())
    }

    fn overdue(&mut self, ms: u64) {
        let now = self.at(ms);
        let seen = &mut self.seen;
        self.relay
            .answer_overdue(&mut self.node, now, &mut |e| seen.push(summary(e)));
    }

    fn take(&mut self) -> Vec<String> {
        std::mem::take(&mut self.seen)
    }
}

fn config() -> RelayConfig {
    RelayConfig::new(UP.parse().unwrap())
}

#[test]
fn a_new_message_is_queued_and_acknowledged_and_a_resend_only_acknowledged() {
    let mut b = Bench::new(config());
    assert_eq!(b.take(), ["connected"]);
    assert_eq!(b.device_sends(&msg("M1"), 1).as_deref(), Some("AA"));
    assert_eq!(b.take(), ["message M1", "queued M1 seq=1"]);
    assert_eq!(b.device_sends(&msg("M1"), 2).as_deref(), Some("AA"));
    assert_eq!(b.take(), ["message M1", "duplicate M1 pending=false"]);
    assert_eq!(b.relay.queued(), 1);
}

#[test]
fn what_is_not_hl7_or_has_no_control_id_is_refused_with_ar() {
    let mut b = Bench::new(config());
    b.take();
    assert_eq!(b.device_sends(b"hello", 1).as_deref(), Some("AR"));
    assert_eq!(b.take(), ["message ", "refused NotHl7"]);
    let no_id = b"MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101||ADT^A01||P|2.5\r";
    assert_eq!(b.device_sends(no_id, 2).as_deref(), Some("AR"));
    assert_eq!(b.take(), ["message ", "refused NoControlId"]);
    assert_eq!(b.relay.queued(), 0);
}

#[test]
fn a_full_queue_answers_ar_and_its_resend_is_a_new_message() {
    let mut b = Bench::new(RelayConfig {
        queue: 1,
        ..config()
    });
    b.take();
    assert_eq!(b.device_sends(&msg("M1"), 1).as_deref(), Some("AA"));
    assert_eq!(b.device_sends(&msg("M2"), 2).as_deref(), Some("AR"));
    assert_eq!(
        b.take(),
        [
            "message M1",
            "queued M1 seq=1",
            "message M2",
            "queue_full M2 queued=1"
        ]
    );
    // Not kept, so not remembered: the resend is refused again, not a duplicate.
    assert_eq!(b.device_sends(&msg("M2"), 3).as_deref(), Some("AR"));
    assert_eq!(b.take(), ["message M2", "queue_full M2 queued=1"]);
}

#[test]
fn ack_after_upstream_the_device_hears_ar_only_after_the_full_response_timeout() {
    let mut b = Bench::new(RelayConfig {
        ack_after: AckAfter::Upstream,
        response_timeout: Duration::from_millis(100),
        ..config()
    });
    b.take();
    assert_eq!(
        b.device_sends(&msg("M1"), 10),
        None,
        "no ACK before upstream"
    );
    assert_eq!(b.take(), ["message M1", "queued M1 seq=1"]);
    // The deadline is the full timeout plus the clock's millisecond.
    assert_eq!(
        b.relay.poll_timeout(),
        Some(b.at(111)).min(b.relay.up.deadline())
    );
    assert_eq!(b.relay.queue.next_reply_by(), Some(b.at(111)));
    b.overdue(110);
    assert!(b.take().is_empty(), "not before the full timeout");
    // A resend takes over the wait, with a new deadline.
    assert_eq!(b.device_sends(&msg("M1"), 50), None);
    assert_eq!(b.take(), ["message M1", "duplicate M1 pending=true"]);
    b.overdue(111);
    assert!(b.take().is_empty(), "the resend's deadline is later");
    b.overdue(151);
    assert_eq!(b.take(), ["reply_timeout M1 seq=1 ack=AR"]);
    assert_eq!(b.relay.queue.next_reply_by(), None, "nobody waits any more");
    assert_eq!(b.relay.queued(), 1, "the message stays queued");
}

#[test]
fn a_raw_reply_is_credited_only_when_its_msa2_names_the_message_in_flight() {
    let mut b = Bench::new(config());
    b.device_sends(&msg("M1"), 1);
    b.take();
    // The device's link id plays the open upstream link here.
    let up = b.device;
    b.relay.devices[up.slot() as usize] = None;
    b.relay.up = Upstream::Raw {
        link: RawLink::Up(up),
        redial: Redial::new(b.relay.cfg.backoff),
        in_flight: Some(InFlight {
            seq: 1,
            deadline: b.at(1000),
        }),
        closing: None,
    };
    assert_eq!(b.relay.queue.poll_transmit().map(|(s, _)| s), Some(1));
    b.relay.queue.handle_written(1);
    let wrong = ack("OTHER", "AA");
    b.event(
        Event::Message {
            link: up,
            payload: &wrong,
        },
        2,
    );
    assert_eq!(b.take(), ["unexpected_reply OTHER"]);
    assert_eq!(b.relay.up.deadline(), Some(b.at(1000)), "still in flight");
    let right = ack("M1", "AE");
    b.event(
        Event::Message {
            link: up,
            payload: &right,
        },
        3,
    );
    assert!(b.take().is_empty());
    assert_eq!(b.relay.up.deadline(), None, "nothing in flight");
    let seen = &mut b.seen;
    b.relay
        .outcomes(&mut b.node, &mut |e| seen.push(format!("{e:?}")));
    let seen = b.take();
    assert_eq!(seen.len(), 1, "{seen:?}");
    assert!(
        seen[0].starts_with("Acked") && seen[0].contains("ack: Some(Error)"),
        "{seen:?}"
    );
    assert_eq!(b.relay.queued(), 0);
}

#[test]
fn the_ack_for_a_stored_msh_segment_names_the_message() {
    let msg = b"MSH|^~\\&|DEV|WARD|EHR|HOSP|20260101||ADT^A01|MSG7|P|2.5\rPID|1\r";
    let mut buf = [0u8; 512];
    let n = intake::build_ack(intake::msh_segment(msg), hl7::AckCode::Reject, &mut buf).unwrap();
    let ack = &buf[..n];
    assert_eq!(hl7::acked_control_id(ack), Some(&b"MSG7"[..]));
    assert_eq!(hl7::ack_code(ack), Some(&b"AR"[..]));
}

#[test]
fn escaped_bytes_cannot_forge_keys() {
    assert_eq!(Escaped(b"a b=c\x01\xff").to_string(), "a_b_c__");
}

#[test]
fn a_session_that_ends_credits_what_it_acknowledged_and_resends_the_rest_after_a_backoff() {
    use crate::node::SessionId;
    use crate::session::SessionEnd;
    use crate::{Protocol, SessionNote};

    let mut b = Bench::new(RelayConfig {
        liveness: LivenessConfig {
            protocol: Protocol::Mooring,
            ..LivenessConfig::default()
        },
        seed: 7,
        ..config()
    });
    b.device_sends(&msg("M1"), 1);
    b.device_sends(&msg("M2"), 2);
    b.take();
    let sid = SessionId { idx: 0, gen: 1 };
    // Both handed to the session (the window is the whole queue).
    for seq in [1, 2] {
        assert_eq!(b.relay.queue.poll_transmit().map(|(s, _)| s), Some(seq));
        b.relay.queue.handle_written(seq);
    }
    b.relay.up = Upstream::Session {
        id: Some(sid),
        in_session: 2,
        connected: true,
        last_reason: None,
        reopen: Redial::new(b.relay.cfg.backoff),
    };
    // The upstream lost the session having confirmed one of the two.
    let ended = SessionEnd::Expired { undelivered: 1 };
    b.event(
        Event::Session {
            session: sid,
            note: SessionNote::Ended(ended),
        },
        100,
    );
    let seen = &mut b.seen;
    b.relay
        .outcomes(&mut b.node, &mut |e| seen.push(format!("{e:?}")));
    let seen = b.take();
    assert_eq!(seen.len(), 3, "{seen:?}");
    assert!(
        seen[0].contains(&format!("{:?}", LostReason::Session(ended)))
            && seen[0].contains("in_doubt: Some((2, 2)), resent: 1, failed: 0"),
        "{seen:?}"
    );
    assert!(
        seen[1].starts_with("UpstreamReconnecting { reason: None, attempt: 1"),
        "{seen:?}"
    );
    assert!(
        seen[2].starts_with("Acked") && seen[2].contains("seq: 1"),
        "{seen:?}"
    );
    assert_eq!(b.relay.queued(), 1, "M2 waits for the next session");
    // The next session opens after the backoff delay, not before.
    let reopen = b.relay.poll_timeout().expect("a reopen time");
    assert!(reopen >= b.at(100) && reopen <= b.at(100) + Duration::from_secs(1));
    assert_eq!(
        b.relay.queue.poll_transmit().map(|(s, _)| s),
        Some(2),
        "M2 is resent"
    );
}

/// A fresh spool directory for one test (removed first if a run left it).
fn spool_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("mooring-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    dir
}

#[test]
fn with_a_spool_the_aa_waits_for_the_commit_that_covers_the_message() {
    let dir = spool_dir("relay-commit");
    let mut cfg = config();
    cfg.spool = Some(SpoolSettings {
        size: 4 << 20,
        ..SpoolSettings::new(&dir)
    });
    let mut b = Bench::new(cfg);
    b.take();
    assert_eq!(
        b.device_sends(&msg("M1"), 1),
        None,
        "no AA before the commit"
    );
    assert_eq!(
        b.device_sends(&msg("M2"), 1),
        None,
        "no AA before the commit"
    );
    // A resend before the commit waits for the same commit (never an AA now).
    assert_eq!(b.device_sends(&msg("M1"), 2), None);
    let seen = b.take();
    assert_eq!(seen[5], "duplicate M1 pending=true", "{seen:?}");
    let device = b.device;
    let waiting = |r: &mut Relay| {
        r.queue
            .entries_mut()
            .filter(|e| e.link == Some(device))
            .count()
    };
    assert_eq!(waiting(&mut b.relay), 2);
    assert_eq!(b.relay.spool.as_ref().map(|d| d.acked_through), Some(0));
    // One commit covers both; their AAs go out with it.
    let seen = &mut b.seen;
    b.relay.commit(&mut b.node, &mut |e| seen.push(summary(e)));
    let last = b.relay.queue.entries_mut().map(|e| e.spool_seq).max();
    assert!(last > Some(0));
    assert!(b.relay.spool.as_ref().map(|d| d.acked_through) >= last);
    assert_eq!(
        waiting(&mut b.relay),
        0,
        "both devices answered at the commit"
    );
    assert!(b.take()[0].starts_with("SpoolOpened"));
    // Once on disk, a resend is acknowledged at once.
    assert_eq!(b.device_sends(&msg("M1"), 3).as_deref(), Some("AA"));
    let stats = b.relay.spool_stats(b.at(3)).expect("stats");
    assert_eq!(stats.records, 2);
    assert!(stats.bytes_used > 0 && stats.bytes_total == 4 << 20);
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

#[test]
fn one_commit_answers_a_pipelining_device_in_the_order_it_sent() {
    let dir = spool_dir("relay-ack-order");
    let mut cfg = config();
    cfg.spool = Some(SpoolSettings {
        size: 4 << 20,
        ..SpoolSettings::new(&dir)
    });
    let mut b = Bench::new(cfg);
    // Both ends of the node's loopback link up before the device "sends".
    let mut up = 0;
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while up < 2 && std::time::Instant::now() < deadline {
        b.node.poll(Some(Duration::from_millis(50))).expect("poll");
        while let Some(ev) = b.node.next_event() {
            up += usize::from(matches!(ev, Event::Connected { .. }));
        }
    }
    assert_eq!(up, 2, "the loopback link connects");
    let ids = ["M1", "M2", "M3", "M4"];
    for id in ids {
        assert_eq!(b.device_sends(&msg(id), 1), None, "no AA before the commit");
    }
    let seen = &mut b.seen;
    b.relay.commit(&mut b.node, &mut |e| seen.push(summary(e)));
    // The AAs travel over the node's own loopback link to its accepted end:
    // read them there, in the order they arrive.
    let mut acked = Vec::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(10);
    while acked.len() < ids.len() && std::time::Instant::now() < deadline {
        b.node.poll(Some(Duration::from_millis(50))).expect("poll");
        while let Some(ev) = b.node.next_event() {
            if let Event::Message { link, payload } = ev {
                if link != b.device {
                    let id = hl7::acked_control_id(payload).expect("an ACK");
                    acked.push(String::from_utf8_lossy(id).into_owned());
                }
            }
        }
    }
    assert_eq!(acked, ids, "AAs in the order the device sent");
    drop(b);
    let _ = std::fs::remove_dir_all(&dir);
}

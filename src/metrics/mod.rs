//! Metrics: a node's numbers (and a relay's) as one [`Snapshot`], written in
//! the Prometheus text exposition format ([`Snapshot::write`]) into a
//! caller's buffer, and a small scrape server, [`MetricsServer`], that
//! answers `GET /metrics` on the node's own poll (no thread).
//!
//! Names follow the Prometheus conventions: a `mooring_` prefix, base units
//! in the name (`_seconds`, `_bytes`), `_total` on counters; reasons and codes
//! are labels (`reason="IdleTimeout"`, `code="AA"`). Every close reason of the
//! `close_reasons!` table gets its sample, zero or not, so a new reason shows
//! up without a change here.

use std::time::Duration;

use crate::error::CloseReason;
use crate::node::NodeStats;
use crate::relay::{RelayQueueStats, RelaySpoolStats, SwitchReason};

pub mod exposition;
pub mod http;
mod server;
mod tally;

pub use exposition::TooSmall;
pub use server::{MetricsLimits, MetricsServer, Render, ServerStats};
pub use tally::{AckCounts, RelayTally};

use exposition::{Kind, Value, Writer};

/// The relay's part of a snapshot.
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct RelaySnapshot {
    /// The in-memory upstream queue.
    pub queue: RelayQueueStats,
    /// The durable spool, when there is one.
    pub spool: Option<RelaySpoolStats>,
    /// What the relay's events counted.
    pub tally: RelayTally,
}

/// Everything one scrape shows. Parts an application does not have are
/// `None` and left out of the exposition.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct Snapshot {
    /// The node's counters ([`crate::Node::stats`]).
    pub node: NodeStats,
    /// How long a dead peer can go unnoticed on the links the liveness
    /// settings cover (`listen`: its links; the relay: its upstream link), as
    /// [`crate::LivenessConfig::detection_bound`]; `None`: unbounded.
    pub detection_bound: Option<Duration>,
    /// Replies sent, by HL7 ACK code, when the application builds them.
    pub acks_sent: Option<AckCounts>,
    /// The relay's numbers, for a relay.
    pub relay: Option<RelaySnapshot>,
    /// The scrape server's own counters.
    pub server: Option<ServerStats>,
}

impl Snapshot {
    /// A snapshot of the node's counters alone.
    pub fn of_node(node: NodeStats) -> Snapshot {
        Snapshot {
            node,
            detection_bound: None,
            acks_sent: None,
            relay: None,
            server: None,
        }
    }

    /// Writes the exposition into `buf`: its length, or [`TooSmall`].
    pub fn write(&self, buf: &mut [u8]) -> Result<usize, TooSmall> {
        let mut w = Writer::new(buf);
        self.write_node(&mut w);
        if let Some(acks) = &self.acks_sent {
            by_code(
                &mut w,
                "mooring_acks_sent_total",
                "Replies sent, by HL7 ACK code (MSA-1).",
                acks,
            );
        }
        if let Some(r) = &self.relay {
            write_relay(&mut w, r);
        }
        if let Some(s) = &self.server {
            counter(
                &mut w,
                "mooring_metrics_scrapes_total",
                "Scrapes of /metrics answered.",
                s.scrapes,
            );
            counter(
                &mut w,
                "mooring_metrics_refused_total",
                "Metrics requests answered with an error status, or dropped (over the connection limit or the request time).",
                s.refused,
            );
        }
        w.finish()
    }

    fn write_node(&self, w: &mut Writer<'_>) {
        let n = &self.node;
        w.family(
            "mooring_build_info",
            Kind::Gauge,
            "Build information: the version in a label; always 1.",
        );
        w.sample(
            "mooring_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))],
            Value::Int(1),
        );
        gauge(
            w,
            "mooring_links_open",
            "Links open or connecting.",
            n.links_open,
        );
        counter(
            w,
            "mooring_connections_accepted_total",
            "Connections accepted.",
            n.accepted,
        );
        let name = "mooring_connections_rejected_total";
        w.family(
            name,
            Kind::Counter,
            "Connections refused by policy, by reason.",
        );
        for (reason, v) in [
            (CloseReason::TooManyConnections, n.rejected_too_many),
            (CloseReason::NotAllowed, n.rejected_not_allowed),
            (
                CloseReason::TooManyConnectionsFromPeer,
                n.rejected_from_peer,
            ),
        ] {
            w.sample(name, &[("reason", reason.as_str())], Value::Int(v));
        }
        let name = "mooring_links_closed_total";
        w.family(name, Kind::Counter, "Links closed, by close reason.");
        for &r in CloseReason::ALL {
            w.sample(name, &[("reason", r.as_str())], Value::Int(n.closes_for(r)));
        }
        counter(
            w,
            "mooring_frames_received_total",
            "Frames received on all links (messages and replies; with the mooring protocol also its control frames).",
            n.frames_in,
        );
        counter(
            w,
            "mooring_frames_sent_total",
            "Frames queued for sending on all links.",
            n.frames_out,
        );
        counter(
            w,
            "mooring_received_bytes_total",
            "Bytes received on all links.",
            n.bytes_in,
        );
        counter(
            w,
            "mooring_sent_bytes_total",
            "Bytes written on all links.",
            n.bytes_out,
        );
        counter(
            w,
            "mooring_large_buffer_waits_total",
            "Times a link waited for a large buffer (backpressure).",
            n.large_buffer_waits,
        );
        counter(
            w,
            "mooring_accept_errors_total",
            "accept() calls that failed (out of descriptors or memory); the listener is retried.",
            n.accept_errors,
        );
        gauge(
            w,
            "mooring_sessions_live",
            "Reliable sessions live.",
            n.sessions_live,
        );
        counter(
            w,
            "mooring_sessions_started_total",
            "Reliable sessions established for the first time.",
            n.sessions_started,
        );
        counter(
            w,
            "mooring_sessions_resumed_total",
            "Reliable sessions resumed on a new link.",
            n.sessions_resumed,
        );
        let name = "mooring_sessions_ended_total";
        w.family(name, Kind::Counter, "Reliable sessions ended, by how.");
        for (how, v) in n.sessions_ended.by_name() {
            w.sample(name, &[("how", how)], Value::Int(v));
        }
        counter(
            w,
            "mooring_session_bad_tokens_total",
            "Session resumes refused for a wrong token.",
            n.bad_tokens,
        );
        if let Some(d) = self.detection_bound {
            w.single(
                "mooring_detection_bound_seconds",
                Kind::Gauge,
                "How long a dead peer can go unnoticed (the fastest liveness mechanism configured; the relay: on its upstream link).",
                Value::Float(d.as_secs_f64()),
            );
        }
    }
}

fn write_relay(w: &mut Writer<'_>, r: &RelaySnapshot) {
    let t = &r.tally;
    gauge(
        w,
        "mooring_relay_queue_messages",
        "Messages held for the upstream (queued or awaiting its reply).",
        r.queue.messages as u64,
    );
    gauge(
        w,
        "mooring_relay_queue_bytes",
        "Payload bytes held for the upstream.",
        r.queue.bytes as u64,
    );
    seconds(
        w,
        "mooring_relay_queue_oldest_age_seconds",
        "Age of the oldest message held for the upstream (0 when none).",
        r.queue.oldest_age,
    );
    if let Some(s) = &r.spool {
        gauge(
            w,
            "mooring_spool_records",
            "Undelivered messages in the spool.",
            s.records as u64,
        );
        gauge(
            w,
            "mooring_spool_used_bytes",
            "Bytes of the spool segments holding undelivered messages.",
            s.bytes_used,
        );
        gauge(
            w,
            "mooring_spool_disk_bytes",
            "Bytes the spool takes on disk.",
            s.bytes_total,
        );
        seconds(
            w,
            "mooring_spool_oldest_age_seconds",
            "Age of the oldest undelivered message in the spool (0 when none).",
            s.oldest_age,
        );
    }
    gauge(
        w,
        "mooring_upstream_up",
        "1 while the upstream is connected, else 0.",
        u64::from(t.upstream_up),
    );
    counter(
        w,
        "mooring_upstream_connects_total",
        "Times the upstream came up.",
        t.upstream_connects,
    );
    counter(
        w,
        "mooring_upstream_losses_total",
        "Times the upstream link or session was lost.",
        t.upstream_losses,
    );
    counter(
        w,
        "mooring_upstream_reconnects_total",
        "Upstream reconnect attempts scheduled.",
        t.upstream_reconnects,
    );
    let name = "mooring_upstream_switches_total";
    w.family(
        name,
        Kind::Counter,
        "Moves to another upstream, by reason: failover (the active one failed) or primary_back (the primary answered again).",
    );
    for (reason, v) in [
        (
            SwitchReason::Failover { failures: 0 },
            t.upstream_switches_failover,
        ),
        (SwitchReason::PrimaryBack, t.upstream_switches_primary_back),
    ] {
        w.sample(name, &[("reason", reason.as_str())], Value::Int(v));
    }
    counter(
        w,
        "mooring_relay_queued_total",
        "Device messages queued for the upstream.",
        t.queued,
    );
    counter(
        w,
        "mooring_relay_forwarded_total",
        "Messages written upstream (a resend counts again).",
        t.forwarded,
    );
    by_code(
        w,
        "mooring_upstream_acks_total",
        "Upstream ACKs received, by HL7 ACK code (MSA-1).",
        &t.acks,
    );
    counter(
        w,
        "mooring_relay_failed_total",
        "Messages that ran out of retries.",
        t.failed,
    );
    let name = "mooring_relay_refused_total";
    w.family(
        name,
        Kind::Counter,
        "Device messages answered MSA|AR and not queued, by reason.",
    );
    for (reason, v) in [
        ("NotHl7", t.refused_not_hl7),
        ("NoControlId", t.refused_no_control_id),
        ("QueueFull", t.queue_full),
        ("SpoolRefused", t.spool_refused),
    ] {
        w.sample(name, &[("reason", reason)], Value::Int(v));
    }
    counter(
        w,
        "mooring_relay_duplicates_total",
        "Resends of messages already held (not forwarded again).",
        t.duplicates,
    );
    counter(
        w,
        "mooring_relay_unexpected_replies_total",
        "Upstream replies that matched nothing in flight.",
        t.unexpected_replies,
    );
}

fn counter(w: &mut Writer<'_>, name: &str, help: &str, v: u64) {
    w.single(name, Kind::Counter, help, Value::Int(v));
}

fn gauge(w: &mut Writer<'_>, name: &str, help: &str, v: u64) {
    w.single(name, Kind::Gauge, help, Value::Int(v));
}

fn seconds(w: &mut Writer<'_>, name: &str, help: &str, d: Duration) {
    w.single(name, Kind::Gauge, help, Value::Float(d.as_secs_f64()));
}

fn by_code(w: &mut Writer<'_>, name: &str, help: &str, acks: &AckCounts) {
    w.family(name, Kind::Counter, help);
    for (code, v) in acks.by_code() {
        w.sample(name, &[("code", code)], Value::Int(v));
    }
}

#[cfg(test)]
mod tests;

//! The exposition of a whole snapshot: well-formed by the text format's
//! rules, complete, and refused cleanly when the buffer is too small.

use std::collections::HashSet;
use std::time::Duration;

use super::*;
use crate::node::NodeStats;
use crate::relay::{RelayQueueStats, RelaySpoolStats};

fn full_snapshot() -> Snapshot {
    let mut node = NodeStats {
        accepted: 7,
        frames_in: 5,
        links_open: 2,
        ..NodeStats::default()
    };
    node.closes[CloseReason::IdleTimeout.code() as usize] = 3;
    let mut tally = RelayTally {
        upstream_up: true,
        upstream_connects: 1,
        ..RelayTally::default()
    };
    tally.acks.count(crate::hl7::AckCode::Error);
    Snapshot {
        node,
        detection_bound: Some(Duration::from_millis(3050)),
        acks_sent: Some(AckCounts {
            accept: 4,
            ..AckCounts::default()
        }),
        relay: Some(RelaySnapshot {
            queue: RelayQueueStats {
                messages: 2,
                bytes: 300,
                oldest_age: Duration::from_millis(1500),
            },
            spool: Some(RelaySpoolStats::default()),
            tally,
        }),
        server: Some(ServerStats {
            scrapes: 1,
            refused: 0,
        }),
    }
}

/// Checks `text` by the rules of the text format 0.0.4 and the naming
/// conventions; returns the samples as (name with labels, value).
pub(crate) fn check_exposition(text: &str) -> Vec<(String, f64)> {
    assert!(text.ends_with('\n'), "the last line ends with a line feed");
    let valid_name = |n: &str| {
        let mut b = n.bytes();
        b.next()
            .is_some_and(|c| c.is_ascii_alphabetic() || c == b'_' || c == b':')
            && b.all(|c| c.is_ascii_alphanumeric() || c == b'_' || c == b':')
    };
    let mut families = HashSet::new();
    let mut current: Option<(String, String)> = None; // name, type
    let mut helped = None;
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let (name, help) = rest.split_once(' ').expect("HELP name text");
            assert!(!help.is_empty(), "{line}");
            assert!(families.insert(name.to_string()), "family {name} twice");
            helped = Some(name.to_string());
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let (name, kind) = rest.split_once(' ').expect("TYPE name kind");
            assert_eq!(helped.as_deref(), Some(name), "HELP then TYPE: {line}");
            assert!(matches!(kind, "counter" | "gauge"), "{line}");
            assert_eq!(kind == "counter", name.ends_with("_total"), "{line}");
            assert!(name.starts_with("mooring_"), "{line}");
            current = Some((name.to_string(), kind.to_string()));
            continue;
        }
        assert!(!line.starts_with('#'), "unknown comment {line}");
        let (series, value) = line.rsplit_once(' ').expect("series value");
        let value: f64 = match value {
            "+Inf" => f64::INFINITY,
            "-Inf" => f64::NEG_INFINITY,
            v => v.parse().unwrap_or_else(|_| panic!("value in {line}")),
        };
        let (name, labels) = match series.split_once('{') {
            Some((n, l)) => (n, Some(l.strip_suffix('}').expect("labels end with }"))),
            None => (series, None),
        };
        assert!(valid_name(name), "{line}");
        let (family, _) = current.as_ref().expect("a sample after its TYPE");
        assert_eq!(name, family, "a sample of its own family: {line}");
        if let Some(labels) = labels {
            for pair in labels.split(',') {
                let (k, v) = pair.split_once('=').expect("label=value");
                assert!(valid_name(k) && !k.contains(':'), "{line}");
                assert!(
                    v.starts_with('"') && v.ends_with('"') && v.len() >= 2,
                    "{line}"
                );
            }
        }
        samples.push((series.to_string(), value));
    }
    let mut seen = HashSet::new();
    for (s, _) in &samples {
        assert!(seen.insert(s), "series {s} twice");
    }
    samples
}

fn value(samples: &[(String, f64)], series: &str) -> f64 {
    samples
        .iter()
        .find(|(s, _)| s == series)
        .unwrap_or_else(|| panic!("no {series}"))
        .1
}

#[test]
fn a_full_snapshot_is_well_formed_and_complete() {
    let mut buf = vec![0u8; 64 * 1024];
    let n = full_snapshot().write(&mut buf).expect("fits");
    let text = std::str::from_utf8(&buf[..n]).expect("UTF-8");
    let samples = check_exposition(text);
    assert_eq!(
        value(
            &samples,
            "mooring_links_closed_total{reason=\"IdleTimeout\"}"
        ),
        3.0
    );
    // Every close reason of the table has its sample.
    for r in CloseReason::ALL {
        value(
            &samples,
            &format!("mooring_links_closed_total{{reason=\"{}\"}}", r.as_str()),
        );
    }
    assert_eq!(value(&samples, "mooring_connections_accepted_total"), 7.0);
    assert_eq!(value(&samples, "mooring_frames_received_total"), 5.0);
    assert_eq!(value(&samples, "mooring_links_open"), 2.0);
    assert_eq!(value(&samples, "mooring_detection_bound_seconds"), 3.05);
    assert_eq!(value(&samples, "mooring_acks_sent_total{code=\"AA\"}"), 4.0);
    assert_eq!(
        value(&samples, "mooring_upstream_acks_total{code=\"AE\"}"),
        1.0
    );
    assert_eq!(value(&samples, "mooring_relay_queue_messages"), 2.0);
    assert_eq!(value(&samples, "mooring_relay_queue_bytes"), 300.0);
    assert_eq!(
        value(&samples, "mooring_relay_queue_oldest_age_seconds"),
        1.5
    );
    assert_eq!(value(&samples, "mooring_spool_records"), 0.0);
    assert_eq!(value(&samples, "mooring_upstream_up"), 1.0);
    assert_eq!(
        value(
            &samples,
            &format!(
                "mooring_build_info{{version=\"{}\"}}",
                env!("CARGO_PKG_VERSION")
            )
        ),
        1.0
    );
}

#[test]
fn parts_an_application_lacks_are_left_out() {
    let mut buf = vec![0u8; 64 * 1024];
    let n = Snapshot::of_node(NodeStats::default())
        .write(&mut buf)
        .expect("fits");
    let text = std::str::from_utf8(&buf[..n]).expect("UTF-8");
    check_exposition(text);
    for absent in [
        "mooring_relay_",
        "mooring_spool_",
        "mooring_acks_sent",
        "mooring_detection",
    ] {
        assert!(
            !text.contains(absent),
            "{absent} in a plain node's exposition"
        );
    }
}

#[test]
fn a_buffer_too_small_for_the_snapshot_is_an_error_not_a_cut() {
    let s = full_snapshot();
    let mut buf = vec![0u8; 64 * 1024];
    let need = s.write(&mut buf).expect("fits");
    for cap in [0, 1, need / 2, need - 1] {
        let mut small = vec![0u8; cap];
        assert_eq!(s.write(&mut small), Err(TooSmall { capacity: cap }));
    }
    let mut exact = vec![0u8; need];
    assert_eq!(s.write(&mut exact), Ok(need));
}

#[test]
fn upstream_switches_are_counted_by_reason_and_exported() {
    use crate::relay::{RelayEvent, SwitchReason};
    let (a, b) = (
        std::net::SocketAddr::from(([127, 0, 0, 1], 1)),
        std::net::SocketAddr::from(([127, 0, 0, 1], 2)),
    );
    let mut tally = RelayTally::default();
    let switch = |from, to, active, reason| RelayEvent::UpstreamSwitched {
        from,
        to,
        active,
        reason,
    };
    tally.observe(&switch(a, b, 1, SwitchReason::Failover { failures: 3 }));
    tally.observe(&switch(b, a, 0, SwitchReason::Failover { failures: 3 }));
    tally.observe(&switch(a, b, 1, SwitchReason::Failover { failures: 3 }));
    tally.observe(&switch(b, a, 0, SwitchReason::PrimaryBack));
    assert_eq!(
        (
            tally.upstream_switches_failover,
            tally.upstream_switches_primary_back
        ),
        (3, 1)
    );
    let mut s = full_snapshot();
    if let Some(r) = &mut s.relay {
        r.tally = tally;
    }
    let mut buf = vec![0u8; 64 * 1024];
    let n = s.write(&mut buf).expect("fits");
    let samples = check_exposition(std::str::from_utf8(&buf[..n]).expect("UTF-8"));
    let switches = |reason: &str| {
        value(
            &samples,
            &format!("mooring_upstream_switches_total{{reason=\"{reason}\"}}"),
        )
    };
    assert_eq!((switches("failover"), switches("primary_back")), (3.0, 1.0));
}

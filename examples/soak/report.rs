//! The end of a soak: joins the traffic, prints one `key=value` line per
//! finding and the summary, and checks the must-holds.

use std::collections::BTreeMap;
use std::fmt::Display;
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::raw_peers::{ClientReport, GarbageReport, PipelineReport, SlowReport};
use crate::servers::Server;
use crate::sessions::{CutProxy, SessionReport};
use crate::{Rss, Threads, GARBAGE, NEVER_READING, RECONNECTING, SESSIONS, SLOW, WELL_BEHAVED};

/// Lines naming the close reason of a link that lost a well-behaved reply.
const LOSSES_SHOWN: usize = 10;
/// Stderr lines are shown up to this many characters.
const STDERR_SHOWN: usize = 160;
/// Kinds of stderr line shown, the most frequent first.
const STDERR_KINDS_SHOWN: usize = 5;
/// A slow peer held longer than this was not bounded by a frame timeout.
const SLOW_HOLD_CONCERN: Duration = Duration::from_secs(60);
/// More stderr lines per minute than this is a log flood (warnings that
/// repeat should be rate-limited).
const STDERR_PER_MINUTE_CONCERN: u64 = 600;

/// `k:v,k:v` (or `none`).
fn counts<K: Display, V: Display>(m: &BTreeMap<K, V>) -> String {
    if m.is_empty() {
        return "none".into();
    }
    let parts: Vec<String> = m.iter().map(|(k, v)| format!("{k}:{v}")).collect();
    parts.join(",")
}

/// `text` as one value of a `key=value` line (spaces and `=` become `_`).
fn value(text: &str) -> String {
    text.chars()
        .take(STDERR_SHOWN)
        .map(|c| {
            if c == ' ' || c == '=' || c.is_control() {
                '_'
            } else {
                c
            }
        })
        .collect()
}

/// Joins the traffic, reports, and returns true when every must-hold held.
pub fn report(
    ran: Duration,
    servers: &mut [Server; 2],
    rss: &[Rss; 2],
    threads: Threads,
    proxy: CutProxy,
    mut died: Vec<&'static str>,
) -> bool {
    let wb = crate::join_all(threads.wb, ClientReport::merge);
    let rc = crate::join_all(threads.rc, ClientReport::merge);
    let garbage = crate::join_all(threads.garbage, GarbageReport::merge);
    let slow = crate::join_all(threads.slow, SlowReport::merge);
    let pipe = crate::join_all(threads.pipeline, PipelineReport::merge);
    let sess = threads
        .sessions
        .and_then(|t| t.join().ok())
        .unwrap_or_else(|| SessionReport {
            errors: vec!["the session thread panicked".into()],
            ..SessionReport::default()
        });
    let cuts = proxy.finish();
    for s in servers.iter_mut() {
        if !s.alive() && !died.contains(&s.name) {
            died.push(s.name);
        }
    }

    let client_line = |kind: &str, n: usize, r: &ClientReport| {
        println!(
            "event=finding kind={kind} clients={n} connections={} sent={} acked={} lost={} \
             p50_us={} p99_us={} max_us={} causes={}",
            r.connections,
            r.sent,
            r.acked,
            r.lost(),
            r.latency.quantile(0.50),
            r.latency.quantile(0.99),
            r.latency.max(),
            counts(&r.causes),
        );
    };
    client_line("well_behaved", WELL_BEHAVED, &wb);
    for port in rc
        .lost_ports
        .iter()
        .chain(&wb.lost_ports)
        .take(LOSSES_SHOWN)
    {
        let reason = servers[0].close_reason_of(*port);
        println!(
            "event=lost_reply port={port} server_close_reason={}",
            reason.as_deref().unwrap_or("unknown")
        );
    }
    client_line("reconnecting", RECONNECTING, &rc);
    println!(
        "event=finding kind=sessions sessions={SESSIONS} sent={} replied={} lost={} \
         duplicates={} bad={} resumes={} cuts={cuts} ended={} errors={}",
        sess.sent,
        sess.replied,
        sess.lost,
        sess.duplicates,
        sess.bad,
        sess.resumes,
        if sess.ended.is_empty() {
            "none".into()
        } else {
            sess.ended.join(",")
        },
        if sess.errors.is_empty() {
            "none".into()
        } else {
            value(&sess.errors.join(";"))
        },
    );
    println!(
        "event=finding kind=garbage senders={GARBAGE} connections={} closed_by_server={} \
         connect_failed={} kinds={}",
        garbage.by_kind.values().sum::<u64>(),
        garbage.closed_by_server,
        garbage.connect_failed,
        counts(&garbage.by_kind),
    );
    println!(
        "event=finding kind=slow peers={SLOW} connections={} bytes={} closed_by_server={} \
         longest_hold_s={}",
        slow.connections,
        slow.bytes,
        slow.closed_by_server,
        slow.longest_hold.as_secs(),
    );
    println!(
        "event=finding kind=never_reading peers={NEVER_READING} connections={} \
         requests_written={} write_stalls={} closed_by_server={}",
        pipe.connections, pipe.written, pipe.stalls, pipe.closed_by_server,
    );

    let mut failed: Vec<String> = Vec::new();
    for (s, r) in servers.iter().zip(rss) {
        println!(
            "event=finding kind=rss server={} start_kb={} warm_kb={} max_kb={} end_kb={} \
             slack_kb={} flat={}",
            s.name,
            r.start,
            r.warm.unwrap_or(0),
            r.max,
            r.end,
            r.slack(),
            r.flat(),
        );
        println!(
            "event=finding kind=closes server={} closes={}",
            s.name,
            s.closes()
        );
        let lines = s.tally.stderr_lines.load(Ordering::Relaxed);
        println!("event=finding kind=stderr server={} lines={lines}", s.name);
        for (l, n) in s.stderr_kinds().iter().take(STDERR_KINDS_SHOWN) {
            println!("event=stderr server={} count={n} line={}", s.name, value(l));
        }
        let alive = !died.contains(&s.name);
        println!("event=finding kind=alive server={} alive={alive}", s.name);
        if !r.flat() {
            failed.push(format!("rss_{}", s.name));
        }
        if !alive {
            failed.push(format!("died_{}", s.name));
        }
    }

    let mut must = |ok: bool, name: &str| {
        if !ok {
            failed.push(name.into());
        }
    };
    // Traffic must have flowed, or every other check holds vacuously.
    must(
        wb.acked > 0 && rc.acked > 0 && sess.replied > 0,
        "no_traffic",
    );
    must(wb.lost() == 0, "wb_lost");
    must(rc.lost() == 0, "reconnecting_lost");
    must(sess.lost == 0, "session_lost");
    must(sess.duplicates == 0, "session_dup");
    must(sess.bad == 0, "session_bad_reply");
    must(sess.ended.is_empty(), "session_ended");
    must(sess.errors.is_empty(), "session_errors");

    // Reported, not failed: what the hostile-peer defences should remove.
    let mut concerns: Vec<&str> = Vec::new();
    if slow.longest_hold > SLOW_HOLD_CONCERN {
        concerns.push("slow_peer_held");
    }
    if pipe.written > 0 && pipe.stalls == 0 {
        // The server read every pipelined request though it could not answer.
        concerns.push("no_backpressure");
    }
    let minutes = ran.as_secs().div_ceil(60).max(1);
    let stderr_lines = servers[0].tally.stderr_lines.load(Ordering::Relaxed);
    if stderr_lines / minutes > STDERR_PER_MINUTE_CONCERN {
        concerns.push("stderr_flood");
    }

    let pass = failed.is_empty();
    println!(
        "event=soak result={} failed={} concerns={} duration_s={} wb_sent={} wb_lost={} wb_p50_us={} \
         wb_p99_us={} wb_max_us={} reconnecting_sent={} reconnecting_lost={} session_sent={} \
         session_lost={} session_dup={} cuts={cuts} rss_start_kb={} rss_warm_kb={} \
         rss_max_kb={} rss_end_kb={} session_rss_start_kb={} session_rss_warm_kb={} \
         session_rss_max_kb={} session_rss_end_kb={} closes={} session_closes={}",
        if pass { "pass" } else { "fail" },
        if pass { "none".into() } else { failed.join(",") },
        if concerns.is_empty() { "none".into() } else { concerns.join(",") },
        ran.as_secs(),
        wb.sent,
        wb.lost(),
        wb.latency.quantile(0.50),
        wb.latency.quantile(0.99),
        wb.latency.max(),
        rc.sent,
        rc.lost(),
        sess.sent,
        sess.lost,
        sess.duplicates,
        rss[0].start,
        rss[0].warm.unwrap_or(0),
        rss[0].max,
        rss[0].end,
        rss[1].start,
        rss[1].warm.unwrap_or(0),
        rss[1].max,
        rss[1].end,
        servers[0].closes(),
        servers[1].closes(),
    );
    pass
}

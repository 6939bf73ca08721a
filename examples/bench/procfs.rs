//! /proc readings of a child: CPU and RSS.

#[allow(unused_imports)]
use crate::*;

/// CPU of a process, read two ways: /proc/PID/stat (utime + stime, all threads
/// live or gone, 10 ms resolution) and the sum of /proc/PID/task/*/schedstat
/// (ns, live threads only).
#[derive(Clone, Copy, Default)]
pub(crate) struct Cpu {
    pub(crate) ticks: f64,
    /// The kernel's part of `ticks` (stime).
    pub(crate) sys_ticks: f64,
    pub(crate) live_ns: f64,
}

pub(crate) fn cpu(pid: u32) -> Cpu {
    let mut live_ns = 0.0;
    if let Ok(dir) = std::fs::read_dir(format!("/proc/{pid}/task")) {
        for t in dir.flatten() {
            let s = std::fs::read_to_string(t.path().join("schedstat")).unwrap_or_default();
            live_ns += s
                .split_whitespace()
                .next()
                .and_then(|v| v.parse::<f64>().ok())
                .unwrap_or(0.0);
        }
    }
    let (user, sys) = cpu_split(pid);
    Cpu {
        ticks: user + sys,
        sys_ticks: sys,
        live_ns,
    }
}

/// CPU seconds between two readings: the precise figure unless a thread ended
/// in between (its time then shows only in the tick count).
pub(crate) fn cpu_delta(a: Cpu, b: Cpu) -> f64 {
    let coarse = b.ticks - a.ticks;
    let fine = (b.live_ns - a.live_ns) / 1e9;
    if fine >= 0.0 && (coarse - fine).abs() <= 0.025 {
        fine
    } else {
        coarse
    }
}

/// The kernel's share of the CPU between two readings (tick resolution).
pub(crate) fn sys_share(a: Cpu, b: Cpu) -> f64 {
    let total = b.ticks - a.ticks;
    if total > 0.0 {
        (b.sys_ticks - a.sys_ticks) / total
    } else {
        f64::NAN
    }
}

/// User and system CPU seconds of process `pid` (all its threads, live or gone).
pub(crate) fn cpu_split(pid: u32) -> (f64, f64) {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let after = stat.rsplit_once(')').map_or("", |x| x.1);
    let f: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| f.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // utime and stime are fields 14 and 15 (1-based), here 11 and 12; USER_HZ is 100.
    (ticks(11) / 100.0, ticks(12) / 100.0)
}

/// A `kB` field of /proc/PID/status (VmRSS, Threads) as a number.
pub(crate) fn status_field(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with(field))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(0)
}

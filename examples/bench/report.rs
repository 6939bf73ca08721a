//! Summaries and tables.

#[allow(unused_imports)]
use crate::*;

pub(crate) fn median(v: &mut [f64]) -> f64 {
    v.sort_by(f64::total_cmp);
    let n = v.len();
    if n % 2 == 1 {
        v[n / 2]
    } else {
        (v[n / 2 - 1] + v[n / 2]) / 2.0
    }
}

pub(crate) struct Row {
    pub(crate) kind: Kind,
    pub(crate) rate: f64,
    pub(crate) rate_min: f64,
    pub(crate) rate_max: f64,
    pub(crate) p50: f64,
    pub(crate) p99: f64,
    pub(crate) p999: f64,
    pub(crate) cpu: f64,
    pub(crate) cpu_min: f64,
    pub(crate) cpu_max: f64,
    pub(crate) rss_kb: u64,
}

pub(crate) fn summarize(kind: Kind, samples: &[Sample]) -> Row {
    let col = |f: &dyn Fn(&Sample) -> f64| -> Vec<f64> { samples.iter().map(f).collect() };
    let rates = col(&Sample::rate);
    let cpus = col(&Sample::cpu_per_m);
    let min = |v: &[f64]| v.iter().copied().fold(f64::INFINITY, f64::min);
    let max = |v: &[f64]| v.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Row {
        kind,
        rate: median(&mut rates.clone()),
        rate_min: min(&rates),
        rate_max: max(&rates),
        p50: median(&mut col(&|s| s.p50)),
        p99: median(&mut col(&|s| s.p99)),
        p999: median(&mut col(&|s| s.p999)),
        cpu: median(&mut cpus.clone()),
        cpu_min: min(&cpus),
        cpu_max: max(&cpus),
        rss_kb: samples.iter().map(|s| s.rss_kb).max().unwrap_or(0),
    }
}

pub(crate) fn fmt_rate(r: f64) -> String {
    if r >= 1e6 {
        format!("{:.2}M", r / 1e6)
    } else if r >= 1e3 {
        format!("{:.0}k", r / 1e3)
    } else {
        format!("{r:.0}")
    }
}

pub(crate) fn fmt_us(us: f64) -> String {
    if us.is_nan() {
        "-".into()
    } else if us >= 100.0 {
        format!("{us:.0}")
    } else {
        format!("{us:.1}")
    }
}

/// Server CPU seconds per million messages: three decimals below 10, so
/// the small figures (stream, depth64) can be compared between servers.
pub(crate) fn fmt_cpu(s_per_m: f64) -> String {
    if s_per_m < 10.0 {
        format!("{s_per_m:.3}")
    } else {
        format!("{s_per_m:.2}")
    }
}

pub(crate) fn ratio(a: f64, b: Option<f64>) -> String {
    match b {
        Some(b) if b > 0.0 && a.is_finite() => format!("{:.2}", a / b),
        _ => "-".into(),
    }
}

pub(crate) fn table(w: &Workload, wire: Wire, rows: &[Row]) -> String {
    use std::fmt::Write as _;
    let floor_rate = rows
        .iter()
        .filter(|r| r.kind.is_floor())
        .map(|r| r.rate)
        .reduce(f64::max);
    let floor_cpu = rows
        .iter()
        .filter(|r| r.kind.is_floor())
        .map(|r| r.cpu)
        .reduce(f64::min);
    let tokio = rows.iter().find(|r| r.kind == Kind::Tokio);
    let mut t = String::new();
    let _ = writeln!(
        t,
        "\n### {} {} ({}, {} B payload)\n",
        w.name,
        wire.name(),
        w.about,
        w.size
    );
    let _ = writeln!(
        t,
        "| server | msgs/s (min-max) | x floor | x tokio | p50 us | p99 us | p999 us | CPU s/M msgs (min-max) | x floor | x tokio | RSS KiB |"
    );
    let _ = writeln!(t, "|---|---|---|---|---|---|---|---|---|---|---|");
    for r in rows {
        let lat = w.ack_every == 1;
        let _ = writeln!(
            t,
            "| {} | {} ({}-{}) | {} | {} | {} | {} | {} | {} ({}-{}) | {} | {} | {} |",
            r.kind.name(),
            fmt_rate(r.rate),
            fmt_rate(r.rate_min),
            fmt_rate(r.rate_max),
            ratio(r.rate, floor_rate),
            ratio(r.rate, tokio.map(|t| t.rate)),
            if lat { fmt_us(r.p50) } else { "-".into() },
            if lat { fmt_us(r.p99) } else { "-".into() },
            if lat { fmt_us(r.p999) } else { "-".into() },
            fmt_cpu(r.cpu),
            fmt_cpu(r.cpu_min),
            fmt_cpu(r.cpu_max),
            ratio(r.cpu, floor_cpu),
            ratio(r.cpu, tokio.map(|t| t.cpu)),
            r.rss_kb
        );
    }
    let _ = write!(t, "{}", standing_targets(w, rows));
    t
}

/// The standing targets, for mooring against tokio and threads in this run:
/// server CPU per message no more than theirs, p99 no worse. Compared on the
/// medians, unrounded.
pub(crate) fn standing_targets(w: &Workload, rows: &[Row]) -> String {
    let find = |k: Kind| rows.iter().find(|r| r.kind == k);
    let Some(m) = find(Kind::Mooring) else {
        return String::new();
    };
    let verdict = |ok: bool| if ok { "yes" } else { "NO" };
    let mut parts = Vec::new();
    for peer in [Kind::Tokio, Kind::Threads] {
        let Some(p) = find(peer) else { continue };
        parts.push(format!(
            "CPU <= {}: {}",
            peer.name(),
            verdict(m.cpu <= p.cpu)
        ));
        if w.ack_every == 1 {
            parts.push(format!(
                "p99 <= {}: {}",
                peer.name(),
                verdict(m.p99 <= p.p99)
            ));
        }
    }
    if parts.is_empty() {
        String::new()
    } else {
        format!("\nstanding targets (mooring): {}\n", parts.join(", "))
    }
}

pub(crate) fn machine() -> String {
    let cpuinfo = std::fs::read_to_string("/proc/cpuinfo").unwrap_or_default();
    let model = cpuinfo
        .lines()
        .find(|l| l.starts_with("model name"))
        .and_then(|l| l.split_once(':'))
        .map_or("?", |x| x.1.trim())
        .to_string();
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease").unwrap_or_default();
    let n = std::thread::available_parallelism().map_or(1, |n| n.get());
    format!("{n} CPUs, {model}, Linux {}", kernel.trim())
}

pub(crate) fn have_taskset() -> bool {
    Command::new("taskset")
        .arg("--version")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

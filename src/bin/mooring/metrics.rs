//! `--metrics ADDR` on `listen` and `relay`: the library's [`MetricsServer`]
//! on the command's node, bound with the default limits, its address printed
//! as `event=metrics addr=...`.

use std::io;
use std::net::SocketAddr;
use std::process::ExitCode;

use mooring::metrics::{MetricsLimits, MetricsServer};
use mooring::Node;

use crate::line::Line;

/// Binds the metrics server on `node` and prints its address.
pub fn bind(node: &mut Node, addr: SocketAddr) -> io::Result<MetricsServer> {
    let m = MetricsServer::bind(node, addr, MetricsLimits::default())?;
    Line::new("event", "metrics")
        .kv("addr", m.local_addr())
        .print();
    Ok(m)
}

/// Reports a `--metrics` address that could not be bound: exit status 1.
pub fn bind_failed(addr: SocketAddr, e: &io::Error) -> ExitCode {
    eprintln!("error: --metrics {addr}: {e}");
    ExitCode::from(1)
}

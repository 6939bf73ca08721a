//! Socket options the driver sets on each link: OS keepalive and `TCP_USER_TIMEOUT`.
//!
//! Through `socket2` (the tokio project's socket-option crate, itself only on
//! `libc`): it keeps this crate free of `unsafe` and of per-OS `setsockopt`
//! constants, which is the kind of code a firmware team would rather not own.

use std::io;

use mio::net::TcpStream;

use crate::liveness::LivenessConfig;

/// Applies the OS-level liveness options of `cfg` to `sock`.
pub(crate) fn apply(sock: &TcpStream, cfg: &LivenessConfig) -> io::Result<()> {
    let s = socket2::SockRef::from(sock);
    if let Some(k) = cfg.tcp_keepalive {
        let ka = socket2::TcpKeepalive::new()
            .with_time(k.idle)
            .with_interval(k.interval)
            .with_retries(k.count);
        s.set_tcp_keepalive(&ka)?;
    }
    if let Some(t) = cfg.tcp_user_timeout {
        #[cfg(any(target_os = "linux", target_os = "android"))]
        s.set_tcp_user_timeout(Some(t))?;
        #[cfg(not(any(target_os = "linux", target_os = "android")))]
        {
            let _ = t;
            log::warn!("TCP_USER_TIMEOUT is not supported on this OS; ignored");
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::liveness::TcpKeepalive;
    use core::time::Duration;

    #[test]
    fn keepalive_and_user_timeout_reach_the_socket() {
        let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let s = TcpStream::connect(l.local_addr().unwrap()).unwrap();
        let cfg = LivenessConfig {
            tcp_keepalive: Some(TcpKeepalive {
                idle: Duration::from_secs(45),
                interval: Duration::from_secs(10),
                count: 3,
            }),
            tcp_user_timeout: Some(Duration::from_secs(90)),
            ..Default::default()
        };
        apply(&s, &cfg).unwrap();
        let r = socket2::SockRef::from(&s);
        assert!(r.keepalive().unwrap());
        assert_eq!(r.tcp_keepalive_time().unwrap(), Duration::from_secs(45));
        assert_eq!(r.tcp_keepalive_interval().unwrap(), Duration::from_secs(10));
        assert_eq!(r.tcp_keepalive_retries().unwrap(), 3);
        assert_eq!(r.tcp_user_timeout().unwrap(), Some(Duration::from_secs(90)));
    }
}

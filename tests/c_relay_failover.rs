//! The relay's C API with a backup upstream, on loopback: the primary's port
//! is closed, the backup is an MLLP receiver written here that answers AA.
//! Driven through the extern "C" functions (as a C program calls them), no C
//! compiler needed. Every wait is bounded.

use std::ffi::{c_char, CStr, CString};
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

mod common;
use common::{control_id, hl7_ack_for, hl7_msg, mllp, take_mllp, PATIENCE};

use mooring::internals::ffi::*;

/// An MLLP receiver that records each MSH-10 and answers it AA, until stopped.
struct Backup {
    addr: SocketAddr,
    stop: Arc<AtomicBool>,
    got: Arc<Mutex<Vec<String>>>,
    thread: Option<JoinHandle<()>>,
}

impl Backup {
    fn start() -> Backup {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        l.set_nonblocking(true).unwrap();
        let addr = l.local_addr().unwrap();
        let stop = Arc::new(AtomicBool::new(false));
        let got = Arc::new(Mutex::new(Vec::new()));
        let (s, g) = (stop.clone(), got.clone());
        let thread = std::thread::spawn(move || {
            let mut links: Vec<(TcpStream, Vec<u8>)> = Vec::new();
            let mut chunk = [0u8; 4096];
            while !s.load(Ordering::Relaxed) {
                if let Ok((t, _)) = l.accept() {
                    t.set_read_timeout(Some(Duration::from_millis(5))).unwrap();
                    links.push((t, Vec::new()));
                }
                for (t, buf) in &mut links {
                    match t.read(&mut chunk) {
                        Ok(n) => buf.extend_from_slice(&chunk[..n]),
                        Err(e)
                            if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
                        Err(_) => continue,
                    }
                    while let Some(m) = take_mllp(buf) {
                        let id = control_id(&m);
                        g.lock().unwrap().push(id.clone());
                        let _ = t.write_all(&mllp(&hl7_ack_for(&id)));
                    }
                }
                std::thread::sleep(Duration::from_millis(1));
            }
        });
        Backup {
            addr,
            stop,
            got,
            thread: Some(thread),
        }
    }

    fn got(&self) -> Vec<String> {
        self.got.lock().unwrap().clone()
    }
}

impl Drop for Backup {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A loopback port nothing listens on (bound, then closed).
fn closed_port() -> SocketAddr {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
}

#[test]
fn a_c_relay_fails_over_to_its_backup_upstream_and_says_so() {
    let backup = Backup::start();
    let primary = CString::new(closed_port().to_string()).unwrap();
    let backups = CString::new(format!(" {} ", backup.addr)).unwrap();
    let mut c = std::mem::MaybeUninit::uninit();
    // SAFETY: writable, then filled.
    let mut c: mooring_relay_config = unsafe {
        assert_eq!(
            mooring_relay_config_default(c.as_mut_ptr()),
            mooring_result::Ok
        );
        c.assume_init()
    };
    c.listen = c"127.0.0.1:0".as_ptr();
    c.upstream = primary.as_ptr();
    c.backup_upstreams = backups.as_ptr();
    c.failover_after = 1;
    (c.reconnect_min_ms, c.reconnect_max_ms) = (10, 50);

    let mut r = std::ptr::null_mut();
    let mut switched = Vec::new();
    // SAFETY: valid pointers; the strings outlive mooring_relay_new; `r` is
    // live until mooring_relay_free.
    unsafe {
        assert_eq!(mooring_relay_new(&c, &mut r), mooring_result::Ok);
        let mut buf = [0 as c_char; MOORING_ADDR_MAX];
        assert_eq!(
            mooring_relay_local_addr(r, buf.as_mut_ptr(), buf.len()),
            mooring_result::Ok
        );
        let addr = CStr::from_ptr(buf.as_ptr()).to_str().unwrap().to_owned();
        let mut device = TcpStream::connect(&addr).unwrap();
        let ids = ["F1", "F2", "F3"];
        for id in ids {
            device.write_all(&mllp(&hl7_msg(id))).unwrap();
        }

        // The relay is polled here, so the device is read between polls.
        device.set_nonblocking(true).unwrap();
        let (mut acks, mut got) = (Vec::new(), Vec::new());
        let mut chunk = [0u8; 4096];
        let deadline = Instant::now() + PATIENCE * 2;
        let mut s = mooring_relay_stats::default();
        let mut ev = std::mem::MaybeUninit::<mooring_relay_event>::uninit();
        while Instant::now() < deadline && (s.acked < 3 || acks.len() < 3) {
            assert_eq!(mooring_relay_poll(r, 10), mooring_result::Ok);
            while mooring_relay_next_event(r, ev.as_mut_ptr()) == mooring_result::Ok {
                let e = ev.assume_init_ref();
                if e.kind == mooring_relay_event_kind::UpstreamSwitched {
                    let to = CStr::from_ptr(e.peer.as_ptr()).to_str().unwrap().to_owned();
                    switched.push((to, e.active));
                }
            }
            assert_eq!(mooring_relay_get_stats(r, &mut s), mooring_result::Ok);
            match device.read(&mut chunk) {
                Ok(0) => panic!("the relay closed the device link"),
                Ok(n) => got.extend_from_slice(&chunk[..n]),
                Err(e) if e.kind() == ErrorKind::WouldBlock => {}
                Err(e) => panic!("device read: {e}"),
            }
            acks.extend(std::iter::from_fn(|| take_mllp(&mut got)));
        }
        assert_eq!(s.acked, 3, "not all acknowledged in time: {s:?}");
        // Each switch is counted by reason: here failovers only (the primary
        // never comes back).
        assert!(!switched.is_empty(), "no UPSTREAM_SWITCHED event");
        assert_eq!(
            (
                s.upstream_switches_failover,
                s.upstream_switches_primary_back
            ),
            (switched.len() as u64, 0),
            "{s:?}"
        );
        // The device has its three AAs (ACK after the upstream's).
        let acks: Vec<String> = acks.iter().map(|a| common::acked_id(a)).collect();
        assert_eq!(acks, ids);
        mooring_relay_free(r);
    }
    assert_eq!(
        backup.got(),
        ["F1", "F2", "F3"],
        "all arrive at the backup, in order"
    );
    assert_eq!(
        switched.first(),
        Some(&(backup.addr.to_string(), 1)),
        "UPSTREAM_SWITCHED to the backup (position 1): {switched:?}"
    );
}

//! A listener whose `accept` failed for lack of descriptors is retried on its
//! timer, even when no link closes (the descriptors came back elsewhere in the
//! host process), and `Node::poll` wakes for that retry by itself.
//!
//! The node runs in a child copy of this test binary started under
//! `ulimit -n 64`, so filling the descriptor table touches nothing else.

mod support;

use std::fs::File;
use std::net::TcpStream;
use std::process::Command;
use std::time::{Duration, Instant};

use mooring::{Event, ListenConfig, Node, NodeConfig};

/// Set in the child's environment: only then does the child half run.
const CHILD: &str = "MOORING_ACCEPT_RETRY_CHILD";

#[test]
fn a_listener_out_of_descriptors_is_retried_on_its_timer_when_no_link_closes() {
    let exe = std::env::current_exe().expect("test binary");
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg("ulimit -n 64 && exec \"$0\" \"$@\"")
        .arg(exe)
        .args(["child_half", "--exact", "--ignored", "--nocapture"])
        .args(["--test-threads", "1"])
        .env(CHILD, "1");
    let run = support::run(cmd, None);
    print!("{}", run.stdout);
    assert!(
        run.status.success() && run.stdout.contains("1 passed"),
        "child failed:\n{}\n{}",
        run.stdout,
        run.stderr
    );
}

/// The child half: a node, a queued connection it cannot accept (no descriptor
/// left), then descriptors freed without any link closing.
#[test]
#[ignore = "run by the test above, under ulimit -n 64"]
fn child_half() {
    if std::env::var_os(CHILD).is_none() {
        eprintln!("only meaningful as the child of the test above");
        return;
    }
    let mut node = Node::new(NodeConfig::default()).expect("node");
    let l = node
        .listen("127.0.0.1:0".parse().unwrap(), ListenConfig::default())
        .expect("listen");
    let addr = node.local_addr(l).expect("addr");

    // Fill the descriptor table, then leave room for the client's socket only.
    let mut held = Vec::new();
    while let Ok(f) = File::open("/dev/null") {
        held.push(f);
        assert!(held.len() < 10_000, "ulimit -n did not apply");
    }
    held.pop();
    let _client = TcpStream::connect(addr).expect("connect (queued by the kernel)");

    let deadline = Instant::now() + Duration::from_secs(5);
    while node.stats().accept_errors == 0 {
        assert!(Instant::now() < deadline, "accept never failed");
        node.poll(Some(Duration::from_millis(50))).expect("poll");
        while node.next_event().is_some() {}
    }
    assert!(
        node.next_deadline().is_some(),
        "the retry is a node deadline"
    );

    // Descriptors come back, but no link closes: only the timer can help.
    held.truncate(held.len().saturating_sub(8));
    let freed = Instant::now();
    let mut polls = 0;
    let connected = loop {
        assert!(Instant::now() < deadline, "never served");
        // A long timeout: the poll must wake for the retry by itself.
        node.poll(Some(Duration::from_secs(2))).expect("poll");
        polls += 1;
        let mut connected = false;
        while let Some(ev) = node.next_event() {
            connected |= matches!(ev, Event::Connected { .. });
        }
        if connected {
            break freed.elapsed();
        }
    };
    println!(
        "served_after_ms={} polls={polls} accept_errors={} accept_retries={}",
        connected.as_millis(),
        node.stats().accept_errors,
        node.stats().accept_retries
    );
    assert!(connected < Duration::from_millis(500), "{connected:?}");
    assert!(polls <= 3, "{polls} polls: spinning");
    assert!(node.stats().accept_retries >= 1);
}

//! Dead peers detected for real: the `mooring` binary on both ends of a link in
//! a network namespace of the test's own, and iptables DROP rules that make the
//! link silent in both directions (DROP, not REJECT: no RST, no FIN, exactly what
//! a dead NAT entry or a vanished peer looks like).
//!
//! Each test creates `mooring-<test>-<pid>` with `ip netns add`, brings `lo` up in
//! it and runs everything on 127.0.0.1 inside, so the host's firewall and other
//! tests are untouched. The namespace (and the test's scratch files) are removed
//! by a guard on drop, pass or fail; the processes are killed by their own
//! handles before that (locals drop in reverse order).
//!
//! Needs root, `ip` (iproute2) and `iptables`: ignored by default, run by
//! `.ci/run` (which skips them loudly when namespaces are not available).
//! Measured detection times are printed: run with `--nocapture` to see them.
//!
//! Every wait is for an expected line or exit, with a deadline. Where a test is
//! about time passing (waiting for the detection), waiting is the point.

/// Process helpers shared with the CLI tests.
mod support;

/// Named `netns::...` so that `.ci/run` can `--skip netns` when namespaces are
/// not available.
mod netns {
    use std::path::PathBuf;
    use std::process::Command;
    use std::time::{Duration, Instant};

    use super::support::{field, run, Proc, BIN, WITHIN};

    /// Scheduling slack allowed beyond a printed bound: the two processes, the
    /// line reader threads and the test share a CI machine.
    const SLACK: Duration = Duration::from_millis(500);

    /// One message, MSH-10 `NETNS1` (LF line ends, as a file on disk would have).
    const ONE: &[u8] =
        b"MSH|^~\\&|LAB|A|EHR|B|20260114083000||ADT^A01|NETNS1|P|2.5.1\nPID|1||MRN1\n";
    /// Another, for the client that checks the slot was released.
    const TWO: &[u8] =
        b"MSH|^~\\&|LAB|A|EHR|B|20260114083001||ADT^A01|NETNS2|P|2.5.1\nPID|1||MRN2\n";
    /// The keep-alive message (an HL7 message the listener answers with an ACK).
    const KEEPALIVE: &[u8] = b"MSH|^~\\&|LAB|A|EHR|B|20260114083002||ADT^A01|KEEPALIVE|P|2.5.1\n";

    /// A network namespace of one test, with its scratch directory. Deleted on drop.
    struct Netns {
        name: String,
        dir: PathBuf,
    }

    /// Runs `cmd`, panicking with its output when it fails.
    fn must(mut cmd: Command) {
        let out = cmd
            .output()
            .unwrap_or_else(|e| panic!("cannot run {cmd:?}: {e}"));
        assert!(
            out.status.success(),
            "{cmd:?} failed: {}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
    }

    impl Netns {
        /// `ip netns add mooring-<test>-<pid>`, `lo` up inside.
        fn new(test: &str) -> Netns {
            let name = format!("mooring-{test}-{}", std::process::id());
            let mut add = Command::new("ip");
            add.args(["netns", "add", &name]);
            must(add);
            // From here on the guard deletes it, whatever fails next.
            let dir = std::env::temp_dir().join(&name);
            let ns = Netns { name, dir };
            std::fs::create_dir_all(&ns.dir).expect("scratch dir");
            must(ns.exec("ip", &["link", "set", "lo", "up"]));
            ns
        }

        /// `ip netns exec NAME prog args`: runs `prog` itself inside (ip execs it,
        /// so the child's handle is the program's).
        fn exec(&self, prog: &str, args: &[&str]) -> Command {
            let mut c = Command::new("ip");
            c.args(["netns", "exec", &self.name, prog]).args(args);
            c
        }

        /// The `mooring` binary inside.
        fn mooring(&self, args: &[&str]) -> Command {
            self.exec(BIN, args)
        }

        /// `mooring listen --bind 127.0.0.1:0 <args>` inside, with its address.
        fn listen(&self, args: &[&str]) -> (Proc, String) {
            let mut all = vec!["listen", "--bind", "127.0.0.1:0"];
            all.extend_from_slice(args);
            let (p, addr) = Proc::listen_cmd(self.mooring(&all));
            (p, addr.to_string())
        }

        /// Writes a scratch file; removed with the namespace.
        fn file(&self, name: &str, contents: &[u8]) -> String {
            let p = self.dir.join(name);
            std::fs::write(&p, contents).expect("write scratch file");
            p.to_str().expect("utf-8 path").to_string()
        }

        /// The two rules that make every packet to or from `port` vanish.
        fn rules(port: u16) -> [[String; 8]; 2] {
            ["--dport", "--sport"].map(|dir| {
                [
                    "INPUT".into(),
                    "-p".into(),
                    "tcp".into(),
                    dir.into(),
                    port.to_string(),
                    "-j".into(),
                    "DROP".into(),
                    "-w".into(),
                ]
            })
        }

        /// Silences the link: DROP on `port` in both directions. On loopback
        /// every packet passes INPUT, so `--dport` catches client to server and
        /// `--sport` server to client.
        fn drop_port(&self, port: u16) -> Instant {
            for r in Self::rules(port) {
                let mut args = vec!["-A"];
                args.extend(r.iter().map(String::as_str));
                must(self.exec("iptables", &args));
            }
            Instant::now()
        }

        /// Removes the rules of [`Netns::drop_port`].
        fn undrop_port(&self, port: u16) {
            for r in Self::rules(port) {
                let mut args = vec!["-D"];
                args.extend(r.iter().map(String::as_str));
                must(self.exec("iptables", &args));
            }
        }
    }

    impl Drop for Netns {
        fn drop(&mut self) {
            // Deleting the namespace also discards its iptables rules.
            match Command::new("ip")
                .args(["netns", "delete", &self.name])
                .output()
            {
                Ok(o) if o.status.success() => {}
                Ok(o) => eprintln!(
                    "netns: cannot delete {}: {}",
                    self.name,
                    String::from_utf8_lossy(&o.stderr)
                ),
                Err(e) => eprintln!("netns: cannot delete {}: {e}", self.name),
            }
            let _ = std::fs::remove_dir_all(&self.dir);
        }
    }

    /// The `detection_bound=` of an `event=liveness` line, or `None` for `none`.
    fn bound_of(liveness: &str) -> Option<Duration> {
        let v = field(liveness, "detection_bound").expect("detection_bound key");
        if v == "none" {
            return None;
        }
        let ms = v.strip_suffix("ms").expect("bound in ms");
        Some(Duration::from_millis(ms.parse().expect("integer ms")))
    }

    /// Waits for the `event=liveness` line and returns it.
    fn liveness_line(p: &mut Proc) -> String {
        p.expect_line(|l| l.starts_with("event=liveness "), WITHIN)
    }

    /// Waits for the first reply line and checks it is an AA for `id`.
    fn expect_reply(p: &mut Proc, id: &str) {
        let l = p.expect_line(
            |l| l.starts_with("event=reply ") || l.starts_with("event=error "),
            WITHIN,
        );
        assert_eq!(field(&l, "event"), Some("reply"), "{l}");
        assert_eq!(field(&l, "id"), Some(id), "{l}");
        assert_eq!(field(&l, "ack"), Some("AA"), "{l}");
    }

    fn ms(d: Duration) -> u128 {
        d.as_millis()
    }

    /// Case A: both mooring ends heartbeat (1 s, dead after 3 s). After the link
    /// goes silent both report `HeartbeatTimeout` within the printed bound; the
    /// server's only slot (`--max-conns 1`) is released, and once the network
    /// is back a new client connects and is served.
    #[test]
    #[ignore = "needs root, ip netns and iptables; run by .ci/run"]
    fn heartbeat_timeout_on_both_ends_within_the_bound_and_the_slot_is_freed() {
        let ns = Netns::new("heartbeat");
        let hb = [
            "--protocol",
            "mooring",
            "--heartbeat",
            "1s",
            "--heartbeat-timeout",
            "3s",
        ];
        let mut args = hb.to_vec();
        args.extend(["--max-conns", "1"]);
        let (mut server, addr) = ns.listen(&args);
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let server_bound = bound_of(&liveness_line(&mut server)).expect("server bound");

        let one = ns.file("one.hl7", ONE);
        let mut args = vec!["send", &addr, &one];
        args.extend(hb);
        args.extend(["--hold", "30s", "--response-timeout", "5s"]);
        let mut client = Proc::spawn(ns.mooring(&args));
        let client_bound = bound_of(&liveness_line(&mut client)).expect("client bound");
        assert_eq!(server_bound, Duration::from_millis(3050));
        assert_eq!(client_bound, server_bound);
        expect_reply(&mut client, "NETNS1");
        let connected = server.expect_line(|l| l.starts_with("event=connected "), WITHIN);
        let peer = field(&connected, "peer").unwrap().to_string();

        let dropped = ns.drop_port(port);
        // Time passing is the point: wait past the bound, so a late detection
        // is measured and reported rather than cut short.
        let wait = server_bound + SLACK + Duration::from_secs(5);
        let (closed, server_at) = server.expect_line_at(|l| l.starts_with("event=closed "), wait);
        assert_eq!(
            closed,
            format!("event=closed peer={peer} reason=HeartbeatTimeout")
        );
        let (closed, client_at) = client.expect_line_at(|l| l.starts_with("event=closed "), wait);
        assert_eq!(closed, "event=closed reason=HeartbeatTimeout");
        let (server_t, client_t) = (server_at - dropped, client_at - dropped);
        println!(
            "netns: heartbeat: server detected in {} ms, client in {} ms, bound {} ms",
            ms(server_t),
            ms(client_t),
            ms(server_bound)
        );
        for (who, t) in [("server", server_t), ("client", client_t)] {
            assert!(
                t <= server_bound + SLACK,
                "{who} took {t:?}, bound {server_bound:?}"
            );
            // Each end heard the other within the last interval before the drop,
            // so silence-based detection cannot come before timeout - interval.
            assert!(
                t >= Duration::from_millis(1500),
                "{who} detected in {t:?}: too early for a heartbeat timeout"
            );
        }
        // The hold ended with the close; the exit status is about replies only.
        let summary = client.expect_line(|l| l.starts_with("event=summary "), WITHIN);
        assert_eq!(field(&summary, "replied"), Some("1"), "{summary}");
        assert_eq!(field(&summary, "failed"), Some("0"), "{summary}");
        assert!(client.wait_exit(WITHIN).success());

        // The network comes back: the released slot takes a new client.
        ns.undrop_port(port);
        let two = ns.file("two.hl7", TWO);
        let mut args = vec!["send", &addr, &two];
        args.extend(hb);
        args.extend(["--response-timeout", "5s", "--connect-timeout", "5s"]);
        let r = run(ns.mooring(&args), None);
        assert_eq!(r.status.code(), Some(0), "{}\n{}", r.stdout, r.stderr);
        assert!(
            r.lines()
                .iter()
                .any(|l| l.starts_with("event=reply ") && field(l, "id") == Some("NETNS2")),
            "{}",
            r.stdout
        );
        let next = server.expect_line(
            |l| l.starts_with("event=connected ") || l.starts_with("event=rejected "),
            WITHIN,
        );
        assert!(next.starts_with("event=connected "), "{next}");
        println!("netns: heartbeat: slot released; a new client was served");
    }

    /// Case B: TCP_USER_TIMEOUT. Raw protocol, no heartbeat, no keep-alive
    /// timeout: the printed bound is `none`, and the server never notices. The
    /// client's keep-alive message (every 300 ms of inbound silence) is written
    /// into the silent link, stays unacknowledged, and the OS closes the link
    /// after the 2 s user timeout: the client reports `TcpTimeout`. The kernel
    /// aborts on a retransmission timer, so "2 s" ends a few hundred ms late
    /// (a plain socket in the same setup on Linux 6.18: 2.44 s after its write).
    #[test]
    #[ignore = "needs root, ip netns and iptables; run by .ci/run"]
    fn tcp_user_timeout_closes_a_link_with_unacknowledged_data() {
        const USER_TIMEOUT: Duration = Duration::from_secs(2);
        const EVERY: Duration = Duration::from_millis(300);
        let ns = Netns::new("usertimeout");
        let (mut server, addr) = ns.listen(&[]);
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let one = ns.file("one.hl7", ONE);
        let ka = ns.file("keepalive.hl7", KEEPALIVE);
        let mut client = Proc::spawn(ns.mooring(&[
            "send",
            &addr,
            &one,
            "--tcp-user-timeout",
            "2s",
            "--keepalive-message",
            &ka,
            "--keepalive-every",
            "300ms",
            "--response-timeout",
            "30s",
            "--hold",
            "30s",
        ]));
        let live = liveness_line(&mut client);
        assert_eq!(field(&live, "tcp_user_timeout"), Some("2000ms"), "{live}");
        // Keep-alive + TCP_USER_TIMEOUT: every + user timeout + 1 s retransmit slack + tick.
        let bound = bound_of(&live).expect("keep-alive + TCP_USER_TIMEOUT is a bound");
        assert_eq!(bound, Duration::from_millis(3350), "{live}");
        expect_reply(&mut client, "NETNS1");
        // The keep-alive message flows (and is answered) before the drop.
        server.expect_line(
            |l| l.starts_with("event=message ") && field(l, "id") == Some("KEEPALIVE"),
            WITHIN,
        );

        let dropped = ns.drop_port(port);
        let (closed, at) = client.expect_line_at(
            |l| l.starts_with("event=closed "),
            USER_TIMEOUT + EVERY + Duration::from_secs(10),
        );
        let t = at - dropped;
        println!(
            "netns: tcp_user_timeout: client detected in {} ms (user timeout {} ms, \
             keep-alive written within {} ms of the drop)",
            ms(t),
            ms(USER_TIMEOUT),
            ms(EVERY)
        );
        assert_eq!(closed, "event=closed reason=TcpTimeout");
        // Unacknowledged for the user timeout: not before it (less the keep-alive
        // already in flight), not much after it.
        assert!(t > Duration::from_millis(1500), "{t:?}: too early");
        assert!(t <= bound, "{t:?}: later than the stated bound {bound:?}");
        let summary = client.expect_line(|l| l.starts_with("event=summary "), WITHIN);
        assert_eq!(field(&summary, "failed"), Some("0"), "{summary}");
        assert!(client.wait_exit(WITHIN).success());
        // The raw server has nothing bounding detection and nothing to write:
        // it has not noticed (that is what the other mechanisms are for).
        assert!(
            !server.seen().iter().any(|l| l.starts_with("event=closed ")),
            "{:?}",
            server.seen()
        );
    }

    /// Case C: keep-alive message with a reply timeout, for raw third-party
    /// peers. After the drop the next keep-alive gets no answer and the client
    /// reports `KeepAliveTimeout` within every + timeout + tick.
    #[test]
    #[ignore = "needs root, ip netns and iptables; run by .ci/run"]
    fn keepalive_message_timeout_within_the_bound() {
        let ns = Netns::new("keepalive");
        let (mut server, addr) = ns.listen(&[]);
        let port: u16 = addr.rsplit(':').next().unwrap().parse().unwrap();
        let one = ns.file("one.hl7", ONE);
        let ka = ns.file("keepalive.hl7", KEEPALIVE);
        let mut client = Proc::spawn(ns.mooring(&[
            "send",
            &addr,
            &one,
            "--keepalive-message",
            &ka,
            "--keepalive-every",
            "1s",
            "--keepalive-timeout",
            "1s",
            "--hold",
            "20s",
        ]));
        let bound = bound_of(&liveness_line(&mut client)).expect("bound");
        assert_eq!(bound, Duration::from_millis(2050));
        expect_reply(&mut client, "NETNS1");
        server.expect_line(
            |l| l.starts_with("event=message ") && field(l, "id") == Some("KEEPALIVE"),
            WITHIN,
        );

        let dropped = ns.drop_port(port);
        let (closed, at) = client.expect_line_at(
            |l| l.starts_with("event=closed "),
            bound + SLACK + Duration::from_secs(5),
        );
        let t = at - dropped;
        println!(
            "netns: keepalive: client detected in {} ms, bound {} ms",
            ms(t),
            ms(bound)
        );
        assert_eq!(closed, "event=closed reason=KeepAliveTimeout");
        assert!(t <= bound + SLACK, "{t:?}, bound {bound:?}");
        // The last answer came at most `every` before the drop; the unanswered
        // keep-alive goes out `every` after it and times out `timeout` later.
        assert!(t >= Duration::from_millis(900), "{t:?}: too early");
        let summary = client.expect_line(|l| l.starts_with("event=summary "), WITHIN);
        assert_eq!(field(&summary, "failed"), Some("0"), "{summary}");
        assert!(client.wait_exit(WITHIN).success());
    }
}

//! `mooring send`: splits a file of HL7 messages and sends them one by one with a
//! [`Client`], one line per reply, error or retry, and a summary; with `--hold`,
//! keeps the link open and idle afterwards (heartbeats go on) and reports a close.

use std::io::Read;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use mooring::{
    hl7, Client, ClientConfig, ClientPolicy, CloseReason, ConnectConfig, NodeConfig, RequestError,
    SetupError,
};

use crate::args::{Input, SendOpts};
use crate::line::Line;

/// Pause before retry number `attempt`: a refused connection or a restarting
/// server is not fixed by hammering it, and operators expect a retry to give the
/// peer a moment. Grows with the attempt, capped so a script never hangs long.
fn retry_pause(attempt: u32) -> Duration {
    Duration::from_millis(200u64.saturating_mul(u64::from(attempt))).min(Duration::from_secs(2))
}

/// Reads the input and splits it into messages with CR segment separators.
fn read_messages(input: &Input) -> Result<Vec<Vec<u8>>, String> {
    let text = match input {
        Input::Stdin => {
            let mut v = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut v)
                .map_err(|e| format!("stdin: {e}"))?;
            v
        }
        Input::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display()))?,
    };
    let mut messages = Vec::new();
    let mut it = hl7::Messages::new(&text);
    // Normalising never makes a message longer than its text plus one CR.
    let mut buf = vec![0u8; text.len() + 1];
    loop {
        match it.next_into(&mut buf) {
            Ok(Some(n)) => messages.push(buf[..n].to_vec()),
            Ok(None) => return Ok(messages),
            // Not expected (see above), but the iterator tells the size: grow and retry.
            Err(needed) => buf.resize(needed, 0),
        }
    }
}

/// Runs `mooring send`.
pub fn run(o: &SendOpts) -> ExitCode {
    let cfg = ClientConfig {
        node: NodeConfig {
            max_links: 2,
            framing: o.framing,
            ..NodeConfig::default()
        },
        connect: ConnectConfig {
            connect_timeout: o.connect_timeout,
            idle_timeout: None,
            liveness: o.liveness,
            ..ConnectConfig::default()
        },
        policy: if o.close_each {
            ClientPolicy::ClosePerMessage
        } else {
            ClientPolicy::KeepOpen
        },
        response_timeout: o.response_timeout,
        correlate_hl7: o.correlate,
    };
    let mut client = match Client::new(o.addr, cfg) {
        Ok(c) => c,
        Err(SetupError::Config(e)) => {
            eprintln!("error: {e}");
            return ExitCode::from(2);
        }
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    crate::line::liveness(&o.liveness).print();
    let messages = match read_messages(&o.input) {
        Ok(m) => m,
        Err(e) => {
            eprintln!("error: {e}");
            return ExitCode::from(1);
        }
    };
    if messages.is_empty() {
        log::warn!("no HL7 message in the input (a message starts at a line beginning with MSH)");
    }
    let (mut replied, mut failed) = (0u64, 0u64);
    for (i, msg) in messages.iter().enumerate() {
        let n = i + 1;
        let id = hl7::control_id(msg);
        if send_one(&mut client, msg, n, id, o.retries) {
            replied += 1;
        } else {
            failed += 1;
        }
    }
    if let Some(hold) = o.hold {
        // Idle on purpose: heartbeats and keep-alive messages keep the link, and
        // a dead peer is noticed within the detection bound. Nothing to hold when
        // no link is open (--close-each, or the last message failed).
        if let Some(reason) = client.maintain(hold) {
            Line::new("event", "closed").kv("reason", reason).print();
        }
    }
    let stats = client.stats();
    Line::new("event", "summary")
        .kv("sent", messages.len())
        .kv("replied", replied)
        .kv("failed", failed)
        .kv("resends", stats.resends)
        .kv("unexpected", stats.unexpected_replies)
        .print();
    if failed == 0 && !messages.is_empty() {
        ExitCode::SUCCESS
    } else {
        ExitCode::from(1)
    }
}

/// How the link closed, for errors that are a close (`IncompleteResponse`,
/// `Closed`): `TcpTimeout`, `HeartbeatTimeout`, `PeerClosed`...
fn close_reason(e: &RequestError) -> Option<CloseReason> {
    match *e {
        RequestError::IncompleteResponse { reason, .. } | RequestError::Closed(reason) => {
            Some(reason)
        }
        _ => None,
    }
}

/// Sends one message, retrying up to `retries` times; prints its lines. True when
/// it got a reply.
fn send_one(client: &mut Client, msg: &[u8], n: usize, id: Option<&[u8]>, retries: u32) -> bool {
    let mut attempt = 0;
    loop {
        let started = Instant::now();
        let err = match client.request(msg) {
            Ok(reply) => {
                Line::new("event", "reply")
                    .kv("n", n)
                    .wire("id", id)
                    .wire("ack", hl7::ack_code(reply))
                    .kv("bytes", reply.len())
                    .kv("ms", started.elapsed().as_millis())
                    .print();
                return true;
            }
            Err(e) => e,
        };
        log::debug!("message {n}: {err}");
        // A frame too large for the link will be too large on every attempt.
        if attempt >= retries || err == RequestError::FrameTooLarge {
            let mut l = Line::new("event", "error")
                .kv("n", n)
                .wire("id", id)
                .kv("error", err.as_str());
            if let Some(r) = close_reason(&err) {
                l = l.kv("reason", r);
            }
            l.print();
            return false;
        }
        attempt += 1;
        let mut l = Line::new("event", "retry")
            .kv("n", n)
            .kv("attempt", attempt)
            .kv("error", err.as_str());
        if let Some(r) = close_reason(&err) {
            l = l.kv("reason", r);
        }
        l.print();
        std::thread::sleep(retry_pause(attempt));
    }
}

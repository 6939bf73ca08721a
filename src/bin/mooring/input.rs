//! `mooring send`'s input: a file (or stdin) of HL7 messages, split into
//! messages, with an HL7 batch file's envelope (FHS, BHS ... BTS, FTS) handled
//! on purpose: by default its messages go one by one without the envelope
//! (and a line says so); with `--batch-as-frame` the whole batch is one frame.

use std::io::Read;
use std::process::ExitCode;

use mooring::hl7::{self, BatchEnvelope};

use crate::args::Input;
use crate::line::Line;

/// The input's messages, or the exit for input that cannot be read. Prints the
/// `event=batch` line for a batch file.
pub fn load_messages(input: &Input, batch_as_frame: bool) -> Result<Vec<Vec<u8>>, ExitCode> {
    let text = read_input(input).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(1)
    })?;
    let messages = split_messages(&text);
    let envelope = BatchEnvelope::of(&text);
    if !envelope.is_empty() {
        Line::new("event", "batch")
            .kv("header", names(&envelope, 0..2))
            .kv("messages", messages.len())
            .kv("trailer", names(&envelope, 2..4))
            .kv("sent_as", if batch_as_frame { "frame" } else { "messages" })
            .print();
        if batch_as_frame {
            return Ok(vec![batch_frame(&text)]);
        }
    }
    if messages.is_empty() {
        log::warn!("no HL7 message in the input (a message starts at a line beginning with MSH)");
    }
    Ok(messages)
}

/// `FHS,BHS`, `BHS`, or `none`.
fn names(envelope: &BatchEnvelope, which: std::ops::Range<usize>) -> String {
    let v: Vec<&str> = envelope.names(which).collect();
    if v.is_empty() {
        "none".to_string()
    } else {
        v.join(",")
    }
}

/// The whole input as bytes.
fn read_input(input: &Input) -> Result<Vec<u8>, String> {
    match input {
        Input::Stdin => {
            let mut v = Vec::new();
            std::io::stdin()
                .lock()
                .read_to_end(&mut v)
                .map_err(|e| format!("stdin: {e}"))?;
            Ok(v)
        }
        Input::File(p) => std::fs::read(p).map_err(|e| format!("{}: {e}", p.display())),
    }
}

/// Splits `text` into messages with CR segment separators (envelope segments
/// left out).
fn split_messages(text: &[u8]) -> Vec<Vec<u8>> {
    let mut messages = Vec::new();
    let mut it = hl7::Messages::new(text);
    // Normalising never makes a message longer than its text plus one CR.
    let mut buf = vec![0u8; text.len() + 1];
    loop {
        match it.next_into(&mut buf) {
            Ok(Some(n)) => messages.push(buf[..n].to_vec()),
            Ok(None) => return messages,
            // Not expected (see above), but the iterator tells the size: grow and retry.
            Err(needed) => buf.resize(needed, 0),
        }
    }
}

/// The whole batch, envelope included, as one payload with CR separators.
fn batch_frame(text: &[u8]) -> Vec<u8> {
    let mut buf = vec![0u8; text.len() + 1];
    match hl7::batch_frame_into(text, &mut buf) {
        Ok(n) => buf.truncate(n),
        // Not expected (as above): size it as told.
        Err(needed) => {
            buf.resize(needed, 0);
            let n = hl7::batch_frame_into(text, &mut buf).unwrap_or(0);
            buf.truncate(n);
        }
    }
    buf
}

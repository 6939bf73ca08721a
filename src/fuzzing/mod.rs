//! Fuzz target bodies, shared by the cargo-fuzz targets in `tests/fuzz/` and
//! the stable regression test `tests/fuzz_corpus.rs` (which feeds the checked-in
//! corpus and every saved crash reproducer through the same functions).
//!
//! Each function takes arbitrary bytes, drives one pure layer with them and
//! checks its properties with `assert!`: a panic (including an arithmetic
//! overflow, since the fuzz build keeps overflow checks on) is a finding. Not a
//! stable API: hidden from the docs, only for the fuzzers and the tests.

mod c_api;
mod codecs;
mod hl7;
mod hl7_reference;
mod link;
mod session;

pub use c_api::c_api;
pub use codecs::{frame_codecs, wire};
pub use hl7::hl7;
pub use hl7_reference::reference_ack;
pub use link::link;
pub use session::session;

use core::time::Duration;

use crate::wire::{Greeting, Msg, WireReason, TOKEN_LEN};

/// A fuzz target body: any bytes in, a panic on a finding.
pub type Target = fn(&[u8]);

/// Every target by name (the name of its cargo-fuzz target and corpus directory).
pub const TARGETS: &[(&str, Target)] = &[
    ("frame_codecs", frame_codecs),
    ("wire", wire),
    ("link", link),
    ("session", session),
    ("hl7", hl7),
    ("c_api", c_api),
];

/// Fuzz input read front to back as small values; past the end every read is
/// 0, so any input, even empty, is a complete script.
struct Input<'a> {
    data: &'a [u8],
}

impl<'a> Input<'a> {
    fn new(data: &'a [u8]) -> Self {
        Input { data }
    }

    fn is_empty(&self) -> bool {
        self.data.is_empty()
    }

    fn u8(&mut self) -> u8 {
        match self.data.split_first() {
            Some((&b, rest)) => {
                self.data = rest;
                b
            }
            None => 0,
        }
    }

    fn bool(&mut self) -> bool {
        self.u8() & 1 == 1
    }

    fn u16(&mut self) -> u16 {
        u16::from_le_bytes([self.u8(), self.u8()])
    }

    fn u32(&mut self) -> u32 {
        u32::from(self.u16()) | u32::from(self.u16()) << 16
    }

    fn u64(&mut self) -> u64 {
        u64::from(self.u32()) | u64::from(self.u32()) << 32
    }

    /// Up to `n` bytes (fewer at the end of the input).
    fn bytes(&mut self, n: usize) -> &'a [u8] {
        let (head, rest) = self.data.split_at(n.min(self.data.len()));
        self.data = rest;
        head
    }

    /// A length byte, then that many bytes.
    fn short_bytes(&mut self) -> &'a [u8] {
        let n = usize::from(self.u8());
        self.bytes(n)
    }

    /// Everything left.
    fn rest(&mut self) -> &'a [u8] {
        core::mem::take(&mut self.data)
    }

    /// 1 ms to about 65 s.
    fn millis(&mut self) -> Duration {
        Duration::from_millis(u64::from(self.u16()) + 1)
    }

    /// A sequence number a peer could send: anything, or close to `near`
    /// (where the edge cases are), or an extreme.
    fn seq(&mut self, near: u64) -> u64 {
        match self.u8() % 4 {
            0 => self.u64(),
            1 => near.wrapping_add(u64::from(self.u8() % 8)),
            2 => near.wrapping_sub(u64::from(self.u8() % 8)),
            _ => [0, 1, u64::MAX, u64::MAX - 1][usize::from(self.u8() % 4)],
        }
    }

    /// A greeting with every field from the input.
    fn greeting(&mut self, session: u64, last_received: u64) -> Greeting {
        let mut token = [0u8; TOKEN_LEN];
        if self.bool() {
            token.iter_mut().for_each(|t| *t = self.u8());
        }
        Greeting {
            version: if self.bool() { self.u8() } else { 1 },
            flags: self.u8(),
            session: if self.bool() { self.u64() } else { session },
            token,
            last_received: self.seq(last_received),
        }
    }

    /// A protocol message of any kind; DATA carries `payload`.
    fn message<'p>(&mut self, payload: &'p [u8]) -> Msg<'p> {
        match self.u8() % 8 {
            0 => Msg::Hello(self.greeting(0, 0)),
            1 => Msg::Welcome(self.greeting(0, 0)),
            2 => Msg::Data {
                seq: self.seq(1),
                payload,
            },
            3 => Msg::Ack(self.seq(1)),
            4 => Msg::Ping,
            5 => Msg::Pong,
            6 => Msg::Close(WireReason::Unknown(self.u8())),
            _ => Msg::Skip(self.seq(1)),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn input_reads_zeros_past_its_end() {
        let mut i = Input::new(&[1, 2, 3]);
        assert_eq!(i.u16(), 0x0201);
        assert_eq!(i.u16(), 3);
        assert!(i.is_empty());
        assert_eq!(i.u64(), 0);
        assert_eq!(i.bytes(4), b"");
    }

    #[test]
    fn every_target_accepts_the_empty_input() {
        for (name, target) in TARGETS {
            let r = std::panic::catch_unwind(|| target(&[]));
            assert!(r.is_ok(), "{name}");
        }
    }
}

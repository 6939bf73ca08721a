//! The mooring session protocol's messages, pure encode/decode.
//!
//! Used only when both ends run mooring (`--protocol mooring`); raw mode, the
//! default, carries application payloads as they are so any HL7 engine works.
//! Each protocol message rides in one frame of the link's framing (MLLP, len32)
//! and starts with a one-byte kind:
//!
//! | kind | name    | body                                                    |
//! |------|---------|---------------------------------------------------------|
//! | 0x01 | HELLO   | version u8, flags u8, session id u64, token \[16\], last received seq u64 |
//! | 0x02 | WELCOME | version u8, flags u8, session id u64, token \[16\], last received seq u64 |
//! | 0x03 | DATA    | seq u64, application payload                            |
//! | 0x04 | ACK     | seq u64 (cumulative: everything up to it arrived)       |
//! | 0x05 | PING    | -                                                       |
//! | 0x06 | PONG    | -                                                       |
//! | 0x07 | CLOSE   | reason u8 (a [`CloseReason`] code)                      |
//! | 0x08 | SKIP    | seq u64: a conflated message; advances the sequence, delivers nothing |
//!
//! Every integer and the token are written as fixed-width lowercase hex (a u8
//! as 2 digits, a u64 as 16, the token as 32). Binary would be shorter, but a
//! sequence number of 11 is the byte 0x0B, MLLP's start block: hex keeps
//! protocol messages valid inside any framing, at 8 extra bytes per DATA.
//! A HELLO with session id 0 asks for a new session.

use crate::error::CloseReason;

/// Protocol version carried in HELLO and WELCOME. A peer with another version is
/// closed with `VersionMismatch` on both sides.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes of a session token.
pub const TOKEN_LEN: usize = 16;

/// Largest control message (HELLO/WELCOME).
pub const MAX_CONTROL: usize = 1 + 2 + 2 + 16 + 2 * TOKEN_LEN + 16;

/// Header bytes in front of a DATA payload.
pub const DATA_HEADER: usize = 1 + 16;

const HELLO: u8 = 0x01;
const WELCOME: u8 = 0x02;
const DATA: u8 = 0x03;
const ACK: u8 = 0x04;
const PING: u8 = 0x05;
const PONG: u8 = 0x06;
const CLOSE: u8 = 0x07;
const SKIP: u8 = 0x08;

/// Session identity and resume point, carried by HELLO and WELCOME.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Greeting {
    /// Protocol version of the sender.
    pub version: u8,
    /// Reserved flags (0).
    pub flags: u8,
    /// Session id; 0 in a HELLO asks for a new session.
    pub session: u64,
    /// The session's secret token (zero for a new session).
    pub token: [u8; TOKEN_LEN],
    /// The highest DATA sequence number the sender has received.
    pub last_received: u64,
}

impl Greeting {
    /// A HELLO asking for a new session.
    pub const fn new_session() -> Self {
        Greeting {
            version: PROTOCOL_VERSION,
            flags: 0,
            session: 0,
            token: [0; TOKEN_LEN],
            last_received: 0,
        }
    }
}

/// One protocol message; `Data` borrows its payload from the frame.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Msg<'a> {
    /// Client's opening message.
    Hello(Greeting),
    /// Server's answer to HELLO.
    Welcome(Greeting),
    /// Application data with its sequence number.
    Data {
        /// Sequence number (1 for the first message of a session).
        seq: u64,
        /// The application payload.
        payload: &'a [u8],
    },
    /// Cumulative acknowledgement.
    Ack(u64),
    /// Liveness probe; answered with PONG.
    Ping,
    /// Answer to PING.
    Pong,
    /// The sender is closing, and why.
    Close(WireReason),
    /// Sequence number `seq` was conflated away: count it, deliver nothing.
    Skip(u64),
}

/// A close reason as carried on the wire: known reasons, or a code this version
/// does not know (a newer peer's), which is kept rather than rejected.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum WireReason {
    /// A reason this version knows.
    Known(CloseReason),
    /// A code from a newer version.
    Unknown(u8),
}

/// A protocol message that cannot be parsed (the link closes with `BadFrame`).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MalformedMessage;

/// Parses one protocol message from a frame's payload.
pub fn decode(frame: &[u8]) -> Result<Msg<'_>, MalformedMessage> {
    let (&kind, body) = frame.split_first().ok_or(MalformedMessage)?;
    let exact = |n: usize| {
        if body.len() == n {
            Ok(())
        } else {
            Err(MalformedMessage)
        }
    };
    Ok(match kind {
        HELLO | WELCOME => {
            exact(MAX_CONTROL - 1)?;
            let mut token = [0u8; TOKEN_LEN];
            for (i, t) in token.iter_mut().enumerate() {
                *t = hex(&body[20 + 2 * i..22 + 2 * i])? as u8;
            }
            let g = Greeting {
                version: hex(&body[0..2])? as u8,
                flags: hex(&body[2..4])? as u8,
                session: hex(&body[4..20])?,
                token,
                last_received: hex(&body[20 + 2 * TOKEN_LEN..])?,
            };
            if kind == HELLO {
                Msg::Hello(g)
            } else {
                Msg::Welcome(g)
            }
        }
        DATA => Msg::Data {
            seq: hex(body.get(..16).ok_or(MalformedMessage)?)?,
            payload: &body[16..],
        },
        ACK => {
            exact(16)?;
            Msg::Ack(hex(body)?)
        }
        PING => {
            exact(0)?;
            Msg::Ping
        }
        PONG => {
            exact(0)?;
            Msg::Pong
        }
        SKIP => {
            exact(16)?;
            Msg::Skip(hex(body)?)
        }
        CLOSE => {
            exact(2)?;
            Msg::Close(reason_from_code(hex(body)? as u8))
        }
        _ => return Err(MalformedMessage),
    })
}

/// Parses fixed-width lowercase hex (1 to 16 digits).
fn hex(digits: &[u8]) -> Result<u64, MalformedMessage> {
    if digits.is_empty() || digits.len() > 16 {
        return Err(MalformedMessage);
    }
    digits.iter().try_fold(0u64, |acc, &d| {
        let v = match d {
            b'0'..=b'9' => d - b'0',
            b'a'..=b'f' => d - b'a' + 10,
            _ => return Err(MalformedMessage),
        };
        Ok(acc << 4 | u64::from(v))
    })
}

/// Writes `v` as exactly `out.len()` (at most 16) lowercase hex digits.
fn put_hex(v: u64, out: &mut [u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let n = out.len();
    for (i, o) in out.iter_mut().enumerate() {
        let shift = 4 * (n - 1 - i);
        *o = DIGITS[((v >> shift) & 0xF) as usize];
    }
}

/// The header that goes in front of a DATA payload.
pub fn data_header(seq: u64) -> [u8; DATA_HEADER] {
    let mut h = [0u8; DATA_HEADER];
    h[0] = DATA;
    put_hex(seq, &mut h[1..]);
    h
}

/// Writes a protocol message into `out`; returns its length, or `None` if `out`
/// is too short.
pub fn encode(msg: &Msg<'_>, out: &mut [u8]) -> Option<usize> {
    let n = match *msg {
        Msg::Hello(g) | Msg::Welcome(g) => {
            let o = out.get_mut(..MAX_CONTROL)?;
            o[0] = if matches!(msg, Msg::Hello(_)) {
                HELLO
            } else {
                WELCOME
            };
            put_hex(u64::from(g.version), &mut o[1..3]);
            put_hex(u64::from(g.flags), &mut o[3..5]);
            put_hex(g.session, &mut o[5..21]);
            for (i, &t) in g.token.iter().enumerate() {
                put_hex(u64::from(t), &mut o[21 + 2 * i..23 + 2 * i]);
            }
            put_hex(g.last_received, &mut o[21 + 2 * TOKEN_LEN..]);
            MAX_CONTROL
        }
        Msg::Data { seq, payload } => {
            let n = DATA_HEADER.checked_add(payload.len())?;
            let o = out.get_mut(..n)?;
            o[..DATA_HEADER].copy_from_slice(&data_header(seq));
            o[DATA_HEADER..].copy_from_slice(payload);
            n
        }
        Msg::Ack(seq) | Msg::Skip(seq) => {
            let o = out.get_mut(..17)?;
            o[0] = if matches!(msg, Msg::Ack(_)) {
                ACK
            } else {
                SKIP
            };
            put_hex(seq, &mut o[1..]);
            17
        }
        Msg::Ping => {
            *out.first_mut()? = PING;
            1
        }
        Msg::Pong => {
            *out.first_mut()? = PONG;
            1
        }
        Msg::Close(r) => {
            let o = out.get_mut(..3)?;
            o[0] = CLOSE;
            let code = match r {
                WireReason::Known(r) => reason_code(r),
                WireReason::Unknown(c) => c,
            };
            put_hex(u64::from(code), &mut o[1..]);
            3
        }
    };
    Some(n)
}

/// The wire code of a close reason: [`CloseReason::code`] (stable: never renumber).
pub fn reason_code(r: CloseReason) -> u8 {
    r.code()
}

fn reason_from_code(c: u8) -> WireReason {
    CloseReason::from_code(c).map_or(WireReason::Unknown(c), WireReason::Known)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;

    fn round_trip(m: Msg<'_>) {
        let mut buf = [0u8; 128];
        let n = encode(&m, &mut buf).expect("fits");
        assert_eq!(decode(&buf[..n]), Ok(m));
    }

    #[test]
    fn every_message_round_trips() {
        let g = Greeting {
            version: PROTOCOL_VERSION,
            flags: 0,
            session: 0x0102_0304_0506_0708,
            token: [7; TOKEN_LEN],
            last_received: 42,
        };
        round_trip(Msg::Hello(g));
        round_trip(Msg::Welcome(g));
        round_trip(Msg::Data {
            seq: 9,
            payload: b"MSH|x",
        });
        round_trip(Msg::Ack(u64::MAX));
        round_trip(Msg::Skip(12));
        round_trip(Msg::Ping);
        round_trip(Msg::Pong);
        round_trip(Msg::Close(WireReason::Known(CloseReason::IdleTimeout)));
        round_trip(Msg::Close(WireReason::Unknown(200)));
    }

    #[test]
    fn every_close_reason_has_a_distinct_code() {
        for (i, &r) in CloseReason::ALL.iter().enumerate() {
            assert_eq!(reason_code(r), i as u8 + 1);
            assert_eq!(reason_from_code(reason_code(r)), WireReason::Known(r));
        }
    }

    #[test]
    fn close_codes_on_the_wire_are_pinned() {
        // Codes are an interface between versions: these bytes must never change.
        let mut buf = [0u8; 8];
        for (r, hex) in [
            (CloseReason::PeerClosed, b"01"),
            (CloseReason::IdleTimeout, b"03"),
            (CloseReason::LocalClose, b"0f"),
            (CloseReason::TooManySessionsFromPeer, b"1d"),
        ] {
            let n = encode(&Msg::Close(WireReason::Known(r)), &mut buf).expect("fits");
            assert_eq!(&buf[..n], &[CLOSE, hex[0], hex[1]], "{r}");
            assert_eq!(decode(&buf[..n]), Ok(Msg::Close(WireReason::Known(r))));
        }
        assert_eq!(decode(b"\x0700"), Ok(Msg::Close(WireReason::Unknown(0))));
    }

    #[test]
    fn truncated_or_padded_control_messages_are_malformed() {
        assert_eq!(decode(&[]), Err(MalformedMessage));
        assert_eq!(decode(&[PING, 0]), Err(MalformedMessage));
        assert_eq!(decode(&[ACK, 1, 2]), Err(MalformedMessage));
        assert_eq!(decode(b"\x04000000000000000g"), Err(MalformedMessage));
        assert_eq!(decode(b"\x04000000000000000A"), Err(MalformedMessage));
        assert_eq!(decode(&[HELLO, 1]), Err(MalformedMessage));
        assert_eq!(decode(&[DATA, b'1', b'2']), Err(MalformedMessage));
        assert_eq!(decode(&[0x0B]), Err(MalformedMessage));
    }

    #[test]
    fn no_protocol_message_contains_mllp_block_bytes() {
        let mut rng = Rng::new(7);
        for _ in 0..2000 {
            let mut token = [0u8; TOKEN_LEN];
            token.iter_mut().for_each(|t| *t = rng.next() as u8);
            let g = Greeting {
                version: rng.next() as u8,
                flags: 0,
                session: rng.next(),
                token,
                last_received: rng.next(),
            };
            for m in [
                Msg::Hello(g),
                Msg::Ack(rng.next()),
                Msg::Data {
                    seq: rng.next(),
                    payload: b"",
                },
                Msg::Close(WireReason::Unknown(200 + rng.below(56) as u8)),
            ] {
                let mut buf = [0u8; 128];
                let n = encode(&m, &mut buf).unwrap();
                assert!(!buf[..n].iter().any(|&b| b == 0x0B || b == 0x1C), "{m:?}");
                assert_eq!(decode(&buf[..n]), Ok(m));
            }
        }
    }

    #[test]
    fn decoding_random_bytes_never_panics() {
        let mut rng = Rng::new(1);
        for _ in 0..20_000 {
            let len = rng.below(80);
            let mut b = [0u8; 80];
            for x in b.iter_mut().take(len) {
                *x = match rng.below(4) {
                    0 => 1 + rng.below(7) as u8,
                    1 => b"0123456789abcdef"[rng.below(16)],
                    _ => rng.next() as u8,
                };
            }
            if let Ok(m) = decode(&b[..len]) {
                let mut out = [0u8; 128];
                let n = encode(&m, &mut out).expect("decoded message re-encodes");
                assert_eq!(&out[..n], &b[..len]);
            }
        }
    }
}

//! The mooring session protocol's messages, pure encode/decode.
//!
//! Used only when both ends run mooring (`--protocol mooring`); raw mode, the
//! default, carries application payloads as they are so any HL7 engine works.
//! Each protocol message rides in one frame of the link's framing (MLLP, len32)
//! and starts with a one-byte kind:
//!
//! | kind | name    | body                                                    |
//! |------|---------|---------------------------------------------------------|
//! | 0x01 | HELLO   | version u8, flags u8, session id u64, token [16], last received seq u64 |
//! | 0x02 | WELCOME | version u8, flags u8, session id u64, token [16], last received seq u64 |
//! | 0x03 | DATA    | seq u64, application payload                            |
//! | 0x04 | ACK     | seq u64 (cumulative: everything up to it arrived)       |
//! | 0x05 | PING    | -                                                       |
//! | 0x06 | PONG    | -                                                       |
//! | 0x07 | CLOSE   | reason u8 (a [`CloseReason`] code)                      |
//!
//! Integers are big-endian. Kind bytes avoid 0x0B and 0x1C so a protocol
//! message never looks like an MLLP block byte at its start. A HELLO with
//! session id 0 asks for a new session.

use crate::error::CloseReason;

/// Protocol version carried in HELLO and WELCOME. A peer with another version is
/// closed with `VersionMismatch` on both sides.
pub const PROTOCOL_VERSION: u8 = 1;

/// Bytes of a session token.
pub const TOKEN_LEN: usize = 16;

/// Largest control message (HELLO/WELCOME).
pub const MAX_CONTROL: usize = 1 + 1 + 1 + 8 + TOKEN_LEN + 8;

/// Header bytes in front of a DATA payload.
pub const DATA_HEADER: usize = 1 + 8;

const HELLO: u8 = 0x01;
const WELCOME: u8 = 0x02;
const DATA: u8 = 0x03;
const ACK: u8 = 0x04;
const PING: u8 = 0x05;
const PONG: u8 = 0x06;
const CLOSE: u8 = 0x07;

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
            let g = Greeting {
                version: body[0],
                flags: body[1],
                session: be_u64(&body[2..10]),
                token: body[10..10 + TOKEN_LEN]
                    .try_into()
                    .map_err(|_| MalformedMessage)?,
                last_received: be_u64(&body[10 + TOKEN_LEN..]),
            };
            if kind == HELLO {
                Msg::Hello(g)
            } else {
                Msg::Welcome(g)
            }
        }
        DATA => {
            let seq = body.get(..8).map(be_u64).ok_or(MalformedMessage)?;
            Msg::Data {
                seq,
                payload: &body[8..],
            }
        }
        ACK => {
            exact(8)?;
            Msg::Ack(be_u64(body))
        }
        PING => {
            exact(0)?;
            Msg::Ping
        }
        PONG => {
            exact(0)?;
            Msg::Pong
        }
        CLOSE => {
            exact(1)?;
            Msg::Close(reason_from_code(body[0]))
        }
        _ => return Err(MalformedMessage),
    })
}

fn be_u64(b: &[u8]) -> u64 {
    let mut a = [0u8; 8];
    let n = b.len().min(8);
    a[..n].copy_from_slice(&b[..n]);
    u64::from_be_bytes(a)
}

/// Writes a control message (anything but DATA) into `out`; returns its length,
/// or `None` if `out` is shorter than [`MAX_CONTROL`] needs.
pub fn encode(msg: &Msg<'_>, out: &mut [u8]) -> Option<usize> {
    let n = match *msg {
        Msg::Hello(g) | Msg::Welcome(g) => {
            let o = out.get_mut(..MAX_CONTROL)?;
            o[0] = if matches!(msg, Msg::Hello(_)) {
                HELLO
            } else {
                WELCOME
            };
            o[1] = g.version;
            o[2] = g.flags;
            o[3..11].copy_from_slice(&g.session.to_be_bytes());
            o[11..11 + TOKEN_LEN].copy_from_slice(&g.token);
            o[11 + TOKEN_LEN..].copy_from_slice(&g.last_received.to_be_bytes());
            MAX_CONTROL
        }
        Msg::Data { seq, payload } => {
            let n = DATA_HEADER.checked_add(payload.len())?;
            let o = out.get_mut(..n)?;
            o[0] = DATA;
            o[1..9].copy_from_slice(&seq.to_be_bytes());
            o[9..].copy_from_slice(payload);
            n
        }
        Msg::Ack(seq) => {
            let o = out.get_mut(..9)?;
            o[0] = ACK;
            o[1..].copy_from_slice(&seq.to_be_bytes());
            9
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
            let o = out.get_mut(..2)?;
            o[0] = CLOSE;
            o[1] = match r {
                WireReason::Known(r) => reason_code(r),
                WireReason::Unknown(c) => c,
            };
            2
        }
    };
    Some(n)
}

/// The wire code of a close reason (stable: never renumber).
pub fn reason_code(r: CloseReason) -> u8 {
    CODES
        .iter()
        .position(|&c| c == r)
        .map_or(0, |i| i as u8 + 1)
}

fn reason_from_code(c: u8) -> WireReason {
    match CODES.get(usize::from(c).wrapping_sub(1)) {
        Some(&r) => WireReason::Known(r),
        None => WireReason::Unknown(c),
    }
}

/// Wire codes are positions in this table, starting at 1. Append only.
const CODES: &[CloseReason] = &[
    CloseReason::PeerClosed,
    CloseReason::Reset,
    CloseReason::IdleTimeout,
    CloseReason::StaleReplaced,
    CloseReason::FrameTooLarge,
    CloseReason::BadFrame,
    CloseReason::TooManyConnections,
    CloseReason::NotAllowed,
    CloseReason::ResponseTimeout,
    CloseReason::ConnectTimeout,
    CloseReason::ConnectionRefused,
    CloseReason::WriteTimeout,
    CloseReason::ClosedAfterReply,
    CloseReason::ClosedPerMessage,
    CloseReason::LocalClose,
    CloseReason::Io,
    CloseReason::HeartbeatTimeout,
    CloseReason::HandshakeTimeout,
    CloseReason::KeepAliveTimeout,
    CloseReason::VersionMismatch,
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::tests::Rng;

    fn round_trip(m: Msg<'_>) {
        let mut buf = [0u8; 64];
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
        round_trip(Msg::Ping);
        round_trip(Msg::Pong);
        round_trip(Msg::Close(WireReason::Known(CloseReason::IdleTimeout)));
        round_trip(Msg::Close(WireReason::Unknown(200)));
    }

    #[test]
    fn every_close_reason_has_a_distinct_code() {
        for (i, &r) in CODES.iter().enumerate() {
            assert_eq!(reason_code(r), i as u8 + 1);
            assert_eq!(reason_from_code(reason_code(r)), WireReason::Known(r));
        }
    }

    #[test]
    fn truncated_or_padded_control_messages_are_malformed() {
        assert_eq!(decode(&[]), Err(MalformedMessage));
        assert_eq!(decode(&[PING, 0]), Err(MalformedMessage));
        assert_eq!(decode(&[ACK, 1, 2]), Err(MalformedMessage));
        assert_eq!(decode(&[HELLO, 1]), Err(MalformedMessage));
        assert_eq!(decode(&[DATA, 1, 2, 3]), Err(MalformedMessage));
        assert_eq!(decode(&[0x0B]), Err(MalformedMessage));
    }

    #[test]
    fn decoding_random_bytes_never_panics() {
        let mut rng = Rng::new(1);
        for _ in 0..20_000 {
            let len = rng.below(48);
            let mut b = [0u8; 48];
            for x in b.iter_mut().take(len) {
                *x = if rng.below(3) == 0 {
                    1 + rng.below(7) as u8
                } else {
                    rng.next() as u8
                };
            }
            if let Ok(m) = decode(&b[..len]) {
                let mut out = [0u8; 64];
                let n = encode(&m, &mut out).expect("decoded message re-encodes");
                assert_eq!(&out[..n], &b[..len]);
            }
        }
    }
}

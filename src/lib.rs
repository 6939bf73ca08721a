//! mooring keeps TCP message links healthy on constrained hosts: edge gateways,
//! appliances, programs that sit next to firmware.
//!
//! One thread, one `mio` event loop, buffers sized once at start, no async
//! runtime. It frames messages (HL7 MLLP, 4-byte length prefix, or your own
//! [`Codec`]), applies connection policies (keep-open or close-per-message,
//! max connections, idle timeout, stale connection recovery, allow-list) and
//! names every close.
//!
//! # Layers
//!
//! - [`frame`]: pure codecs, bytes to frames in buffers the driver owns.
//! - A pure per-link core (policy, liveness, frame deadlines, timers), driven
//!   by `now`; configured through [`LivenessConfig`] and [`FrameTimeout`].
//! - [`session`]: pure reliable sessions (sequence numbers, replay, resume).
//! - [`Node`]: the mio driver, the only code that touches sockets or the clock.
//! - [`Client`], [`Server`]: the common single-purpose cases.
//! - [`spool`]: the durable journal of accepted messages, over a storage
//!   interface (a real directory, or a simulated disk that crashes).
//!
//! # Example
//!
//! An MLLP server that acknowledges every HL7 message, and a client:
//!
//! ```
//! use std::time::Duration;
//! use mooring::{hl7, Client, ClientConfig, Event, ListenConfig, NodeConfig, Server};
//!
//! let mut server = Server::bind("127.0.0.1:0".parse()?, NodeConfig::default(), ListenConfig::default())?;
//! let addr = server.local_addr();
//!
//! // The client runs in its own thread here only because both ends share one test.
//! let client = std::thread::spawn(move || {
//!     let mut client = Client::new(addr, ClientConfig::default()).unwrap();
//!     let reply = client.request(b"MSH|^~\\&|LAB|A|EHR|B|20261122||ADT^A01|MSG1|P|2.5\r").unwrap();
//!     assert_eq!(hl7::ack_code(reply), Some(&b"AA"[..]));
//! });
//!
//! while !client.is_finished() {
//!     server.serve(Some(Duration::from_millis(20)), |ev, reply| {
//!         if let Event::Message { payload, .. } = ev {
//!             reply.ack(payload, hl7::AckCode::Accept, b"20261122000000");
//!         }
//!     })?;
//! }
//! client.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs, unreachable_pub)]
#![deny(unsafe_code)]

mod buffer;
pub mod client;
pub mod config;
mod dedup;
pub mod error;
mod fallible;
#[allow(unsafe_code)]
mod ffi;
pub mod frame;
mod frame_deadline;
mod fuzzing;
pub mod hl7;
mod ledger;
mod link;
pub mod metrics;
pub mod node;
#[cfg(doctest)]
mod non_exhaustive;
mod ratelimit;
pub mod relay;
mod replay;
mod rng;
pub mod server;
// The pure session core; `session` below is what users see of it.
#[path = "session/mod.rs"]
mod session_core;
mod simnet;
mod sockopt;
pub mod spool;
pub mod time;
mod timers;
#[cfg(feature = "tls")]
pub mod tls;
mod wire;

// In-crate code names the liveness layer `crate::liveness`.
use link::liveness;

/// Reliable sessions (mooring protocol): a session outlives any one TCP link,
/// numbers its messages, replays what the peer did not acknowledge after a
/// lost link, and reports loss instead of hiding it. Opened with
/// [`Node::open_session`] (settings in [`ConnectConfig::session`] and
/// [`ListenConfig::session`]); see the README's "Reliable sessions".
///
/// This module holds what a user of [`Node`], [`Client`] or the C API needs:
/// the settings, the retry strategy, the ids, notes and ends a node reports,
/// and the stored state of a client session. The pure core itself (the
/// session state machine and the session table) is internal.
pub mod session {
    pub use crate::session_core::{
        Backoff, Overflow, SessionConfig, SessionEnd, SessionEnds, SessionError, SessionId,
        SessionNote, StoredSession, REFUSAL_HOLD,
    };
    // The core, for the crate's own layers (reached from outside only
    // through `internals::session`).
    pub(crate) use crate::session_core::{
        Entropy, Received, Redial, Sent, Session, SessionEvent, SessionTable, Transmit,
    };
}

/// Not part of the API: the pure layers and helpers that the `mooring` binary,
/// the simulations, the tests, the benchmarks and the fuzz targets reach into.
/// No stability promise: anything here may change in any release.
#[doc(hidden)]
pub mod internals {
    /// The C API (`mooring.h`): C callers link its symbols; Rust code has the
    /// rest of this crate.
    pub mod ffi {
        pub use crate::ffi::*;
    }
    /// Fuzz targets (`tests/fuzz`), one function per target.
    pub mod fuzzing {
        pub use crate::fuzzing::*;
    }
    /// The pure per-link core.
    pub mod link {
        pub use crate::link::*;
    }
    /// The pure per-link liveness layer (handshake, heartbeat, keep-alive).
    pub mod liveness {
        pub use crate::link::liveness::*;
    }
    /// One line per cause per interval.
    pub mod ratelimit {
        pub use crate::ratelimit::*;
    }
    /// The crate's deterministic PRNG.
    pub mod rng {
        pub use crate::rng::*;
    }
    /// The mooring protocol's wire encoding.
    pub mod wire {
        pub use crate::wire::*;
    }
    /// The pure session core: one end of a session ([`Session`](session::Session)),
    /// the session table, what they transmit and receive (the simulations
    /// drive them directly).
    pub mod session {
        pub use crate::session_core::*;
    }
    /// A simulated network for whole nodes on virtual time (test support):
    /// nodes built with `Node::with_sim` listen and connect through it.
    pub mod simnet {
        pub use crate::simnet::*;
    }
}

pub use client::{Client, ClientConfig, ClientPolicy, ClientStats};
pub use config::{AllowList, Cidr, ConnectConfig, ListenConfig, NodeConfig, ServerPolicy};
pub use error::{CloseReason, ConfigError, RequestError, SendError};
pub use frame::{Codec, Envelope, Framing};
pub use frame_deadline::FrameTimeout;
pub use link::liveness::{
    Heartbeat, KeepAliveMessage, KeepAlivePayload, LivenessConfig, Protocol, TcpKeepalive,
    MAX_KEEPALIVE,
};
pub use link::{LinkState, LinkStats};
pub use node::{Event, LinkId, ListenerId, Node, NodeStats, SessionId, SessionNote, SetupError};
pub use server::{Reply, Server};
pub use time::{Clock, Instant, ManualClock, SystemClock};

/// The README's Rust examples, compiled by `cargo test --doc` so that they
/// cannot rot (blocks that would bind real ports are `no_run`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

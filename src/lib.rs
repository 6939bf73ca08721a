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
//! - [`link`]: pure per-link policy and timers, driven by `now`.
//! - [`frame_deadline`]: pure, how long a frame may take to arrive (slow peers).
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
//!             reply.write_with(|buf| hl7::build_ack(payload, hl7::AckCode::Accept, b"20261122000000", buf));
//!         }
//!     })?;
//! }
//! client.join().unwrap();
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
#![warn(missing_docs)]
#![deny(unsafe_code)]

mod buffer;
pub mod client;
pub mod config;
pub mod dedup;
pub mod error;
mod fallible;
#[allow(unsafe_code)]
pub mod ffi;
pub mod frame;
pub mod frame_deadline;
#[doc(hidden)]
pub mod fuzzing;
pub mod hl7;
pub mod ledger;
pub mod link;
pub mod metrics;
pub use link::liveness;
pub mod node;
pub mod ratelimit;
pub mod relay;
mod replay;
pub mod rng;
pub mod server;
pub mod session;
mod sockopt;
pub mod spool;
pub mod time;
mod timers;
#[cfg(feature = "tls")]
pub mod tls;
pub mod wire;

pub use client::{Client, ClientConfig, ClientPolicy, ClientStats};
pub use config::{AllowList, Cidr, ConnectConfig, ListenConfig, NodeConfig, ServerPolicy};
pub use error::{CloseReason, ConfigError, RequestError, SendError};
pub use frame::{Codec, Envelope, Framing};
pub use frame_deadline::FrameTimeout;
pub use link::{LinkState, LinkStats};
pub use liveness::{
    Heartbeat, KeepAliveMessage, KeepAlivePayload, LivenessConfig, Protocol, TcpKeepalive,
};
pub use node::{Event, LinkId, ListenerId, Node, NodeStats, SessionId, SessionNote, SetupError};
pub use server::{Reply, Server};
pub use time::{Clock, Instant, ManualClock, SystemClock};

/// The README's Rust examples, compiled by `cargo test --doc` so that they
/// cannot rot (blocks that would bind real ports are `no_run`).
#[doc = include_str!("../README.md")]
#[cfg(doctest)]
pub struct ReadmeDoctests;

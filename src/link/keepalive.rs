//! The keep-alive message: its settings and its owned payload.
//!
//! The payload is owned (it used to be a `&'static [u8]`, which forced callers
//! that read it at run time to leak it and kept it out of the C API). It is
//! allocated once, when the configuration is made, and shared by every link
//! that sends it: cloning a configuration, as each new link does, never
//! allocates.

use core::ops::Deref;
use core::time::Duration;
use std::sync::Arc;

/// The application payload of a keep-alive message, owned. Valid configurations
/// hold 1 to [`super::liveness::MAX_KEEPALIVE`] bytes
/// (`LivenessConfig::validate`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct KeepAlivePayload(Arc<[u8]>);

impl KeepAlivePayload {
    /// A payload holding a copy of `bytes` (allocates once, here).
    pub fn new(bytes: &[u8]) -> Self {
        KeepAlivePayload(Arc::from(bytes))
    }

    /// The payload's bytes.
    pub fn as_bytes(&self) -> &[u8] {
        &self.0
    }
}

impl Deref for KeepAlivePayload {
    type Target = [u8];
    fn deref(&self) -> &[u8] {
        &self.0
    }
}

impl From<&[u8]> for KeepAlivePayload {
    fn from(bytes: &[u8]) -> Self {
        KeepAlivePayload::new(bytes)
    }
}

impl<const N: usize> From<&[u8; N]> for KeepAlivePayload {
    fn from(bytes: &[u8; N]) -> Self {
        KeepAlivePayload::new(bytes)
    }
}

impl From<Vec<u8>> for KeepAlivePayload {
    fn from(bytes: Vec<u8>) -> Self {
        KeepAlivePayload(Arc::from(bytes))
    }
}

impl PartialEq<[u8]> for KeepAlivePayload {
    fn eq(&self, other: &[u8]) -> bool {
        *self.0 == *other
    }
}

impl<const N: usize> PartialEq<&[u8; N]> for KeepAlivePayload {
    fn eq(&self, other: &&[u8; N]) -> bool {
        *self.0 == other[..]
    }
}

impl core::fmt::Debug for KeepAlivePayload {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "b\"{}\"", self.0.escape_ascii())
    }
}

/// Keep-alive message for raw third-party peers (seed 003's advice).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct KeepAliveMessage {
    /// The application payload to send (framed like any message).
    pub payload: KeepAlivePayload,
    /// Send it after this long without receiving anything (and at most this often).
    pub every: Duration,
    /// If set, some inbound frame must arrive within this long after it.
    pub timeout: Option<Duration>,
}

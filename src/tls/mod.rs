//! TLS 1.2/1.3 for a link, as a pure, sans-IO layer (feature `tls`).
//!
//! [`TlsLink`] sits between the socket and the codec: the driver hands it the
//! ciphertext it read ([`TlsLink::feed`]), takes the plaintext out
//! ([`TlsLink::plaintext`]), gives it plaintext to encrypt
//! ([`TlsLink::write_plaintext`]) and writes what [`TlsLink::ciphertext`]
//! holds. It never touches a socket or a clock: the handshake timeout is the
//! caller's timer ([`TlsLink::handshake_timed_out`]). Its buffers are sized
//! once, when the link is made.
//!
//! It uses rustls's unbuffered API (`UnbufferedServerConnection`,
//! `UnbufferedClientConnection`, `process_tls_records`) with the `ring`
//! provider: TLS 1.2 and 1.3 with forward-secret AEAD suites only.
//!
//! - [`config`] holds [`TlsServerConfig`], [`TlsClientConfig`] and their checked
//!   forms [`ServerTls`], [`ClientTls`].
//! - [`identity`] reads the peer's identity (SANs, subject CN) and the allow-list.
//! - [`reason`] names every failure as a named [`TlsFailure`].
//! - [`link`] holds [`TlsLink`].

pub mod config;
pub mod identity;
pub mod link;
pub mod reason;

pub use config::{
    ClientAuth, ClientTls, PemSource, ServerTls, TlsClientConfig, TlsConfigError, TlsServerConfig,
    TlsVersion, TlsVersions,
};
pub use identity::{AllowPeers, PeerIdentity};
pub use link::{Handshake, TlsLink, TlsLinkError, TlsLinkSizes};
pub use reason::{TlsError, TlsFailure};

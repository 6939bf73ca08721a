//! Doctests only: the public error and reason enums that may grow are
//! `#[non_exhaustive]`, so a caller's `match` needs a `_` arm and a new
//! variant is not a breaking change. Each `compile_fail` block is a match
//! without one; the first block, the same matches with it, shows they fail
//! for that reason alone.
//!
//! ```
//! fn all(
//!     s: mooring::session::SessionError,
//!     n: mooring::SetupError,
//!     r: mooring::relay::RelayError,
//!     t: mooring::relay::StartError,
//!     f: mooring::relay::Refusal,
//!     w: mooring::relay::SwitchReason,
//!     e: mooring::frame::FrameError,
//! ) {
//!     use mooring::frame::FrameError as E;
//!     use mooring::relay::{RelayError as R, Refusal as F, StartError as T, SwitchReason as W};
//!     use mooring::session::SessionError as S;
//!     use mooring::SetupError as N;
//!     match s { S::QueueFull | S::TooLarge | S::Ended | S::Unframeable => {} _ => {} }
//!     match n { N::Config(_) | N::Io(_) | N::NoSlot | N::OutOfMemory { .. } => {} _ => {} }
//!     match r { R::Config(_) | R::Spool(_) => {} _ => {} }
//!     match t { T::Config(_) | T::Node(_) | T::Listen(_) | T::Relay(_) => {} _ => {} }
//!     match f { F::NotHl7 | F::NoControlId => {} _ => {} }
//!     match w { W::Failover { .. } | W::PrimaryBack => {} _ => {} }
//!     match e { E::TooLarge | E::Bad => {} _ => {} }
//! }
//! ```

/// ```compile_fail,E0004
/// fn f(s: mooring::session::SessionError) {
///     use mooring::session::SessionError as S;
///     match s { S::QueueFull | S::TooLarge | S::Ended | S::Unframeable => {} }
/// }
/// ```
struct SessionErrorGrows;

/// ```compile_fail,E0004
/// fn f(n: mooring::SetupError) {
///     use mooring::SetupError as N;
///     match n { N::Config(_) | N::Io(_) | N::NoSlot | N::OutOfMemory { .. } | N::Tls(_) => {} }
/// }
/// ```
#[cfg(feature = "tls")]
struct SetupErrorGrows;

/// ```compile_fail,E0004
/// fn f(r: mooring::relay::RelayError) {
///     use mooring::relay::RelayError as R;
///     match r { R::Config(_) | R::Spool(_) => {} }
/// }
/// ```
struct RelayErrorGrows;

/// ```compile_fail,E0004
/// fn f(t: mooring::relay::StartError) {
///     use mooring::relay::StartError as T;
///     match t { T::Config(_) | T::Node(_) | T::Listen(_) | T::Relay(_) => {} }
/// }
/// ```
struct StartErrorGrows;

/// ```compile_fail,E0004
/// fn f(r: mooring::relay::Refusal) {
///     use mooring::relay::Refusal as F;
///     match r { F::NotHl7 | F::NoControlId => {} }
/// }
/// ```
struct RefusalGrows;

/// ```compile_fail,E0004
/// fn f(w: mooring::relay::SwitchReason) {
///     use mooring::relay::SwitchReason as W;
///     match w { W::Failover { .. } | W::PrimaryBack => {} }
/// }
/// ```
struct SwitchReasonGrows;

/// ```compile_fail,E0004
/// fn f(e: mooring::frame::FrameError) {
///     use mooring::frame::FrameError as E;
///     match e { E::TooLarge | E::Bad => {} }
/// }
/// ```
struct FrameErrorGrows;

/// ```compile_fail,E0004
/// fn f(e: mooring::tls::TlsLinkError) {
///     use mooring::tls::TlsLinkError as L;
///     match e { L::OutOfMemory { .. } | L::Tls(_) => {} }
/// }
/// ```
#[cfg(feature = "tls")]
struct TlsLinkErrorGrows;

/// ```compile_fail,E0004
/// fn f(e: mooring::tls::TlsFailure) {
///     use mooring::tls::TlsFailure as F;
///     match e {
///         F::BadCertificate | F::UnknownCa | F::Expired | F::NameMismatch
///         | F::ProtocolVersion | F::NoCertificate | F::PeerNotAllowed
///         | F::HandshakeTimeout | F::Truncated | F::Protocol => {}
///     }
/// }
/// ```
#[cfg(feature = "tls")]
struct TlsFailureGrows;

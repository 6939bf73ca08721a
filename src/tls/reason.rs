//! Why a TLS link failed, as a named reason plus rustls's text.

use std::fmt;

use rustls::{AlertDescription, CertificateError, Error, PeerIncompatible};

/// Defines [`TlsFailure`] from one list: each failure with its doc and the
/// close reason of the same name (`Failure => TlsFailure`), so the enum, its
/// names, its close reasons and the list of every failure cannot drift apart.
macro_rules! tls_failures {
    (
        $(#[$meta:meta])*
        pub enum TlsFailure {
            $( $(#[doc = $doc:literal])* $failure:ident => $reason:ident, )+
        }
    ) => {
        $(#[$meta])*
        pub enum TlsFailure {
            $( $(#[doc = $doc])* $failure, )+
        }

        impl TlsFailure {
            /// Every failure, in declaration order.
            #[cfg(test)]
            pub(crate) const ALL: &'static [TlsFailure] = &[$(TlsFailure::$failure,)+];

            /// The name used in event lines (`reason=Tls...` in the CLI later).
            pub fn name(self) -> &'static str {
                match self {
                    $(TlsFailure::$failure => stringify!($reason),)+
                }
            }
        }

        /// Each TLS failure closes its link with the close reason of the same name.
        impl From<TlsFailure> for crate::error::CloseReason {
            fn from(f: TlsFailure) -> Self {
                match f {
                    $(TlsFailure::$failure => crate::error::CloseReason::$reason,)+
                }
            }
        }
    };
}

tls_failures! {
    /// The named reason of a TLS failure (the close reason the driver reports).
    #[non_exhaustive]
    #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
    pub enum TlsFailure {
        /// The peer's certificate is malformed, badly signed or unusable, or the
        /// peer rejected ours as such.
        BadCertificate => TlsBadCertificate,
        /// The peer's certificate does not chain to a configured CA (or the peer
        /// says ours does not).
        UnknownCa => TlsUnknownCa,
        /// A certificate is expired or not valid yet.
        Expired => TlsExpired,
        /// The server's certificate is not valid for the name the client verifies.
        NameMismatch => TlsNameMismatch,
        /// No protocol version (or suite, group) both ends accept.
        ProtocolVersion => TlsProtocolVersion,
        /// Client authentication is required and the client sent no certificate.
        NoCertificate => TlsNoCertificate,
        /// The handshake succeeded but the peer's identity is not on the allow-list.
        PeerNotAllowed => TlsPeerNotAllowed,
        /// The handshake did not finish within the caller's handshake timeout.
        HandshakeTimeout => TlsHandshakeTimeout,
        /// The peer ended the TCP stream without `close_notify` while something was
        /// unfinished (a handshake, a record, or a frame): a possible truncation
        /// attack.
        Truncated => TlsTruncated,
        /// Any other TLS protocol error (bad record, decryption failure, an
        /// unexpected message, an alert not named above).
        Protocol => TlsProtocol,
    }
}

impl fmt::Display for TlsFailure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

/// A TLS failure: its named reason and the detail (rustls's error or alert
/// text, or what this layer saw).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TlsError {
    /// The named reason.
    pub reason: TlsFailure,
    /// Human-readable detail, e.g. `received fatal alert: UnknownCA`.
    pub detail: String,
}

impl TlsError {
    pub(crate) fn new(reason: TlsFailure, detail: impl Into<String>) -> Self {
        TlsError {
            reason,
            detail: detail.into(),
        }
    }
}

impl fmt::Display for TlsError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.reason, self.detail)
    }
}

impl std::error::Error for TlsError {}

impl From<&Error> for TlsFailure {
    fn from(e: &Error) -> Self {
        use AlertDescription as A;
        use CertificateError as C;
        use PeerIncompatible as P;
        match e {
            Error::InvalidCertificate(
                C::Expired
                | C::ExpiredContext { .. }
                | C::NotValidYet
                | C::NotValidYetContext { .. },
            ) => TlsFailure::Expired,
            Error::InvalidCertificate(C::UnknownIssuer) => TlsFailure::UnknownCa,
            Error::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
                TlsFailure::NameMismatch
            }
            Error::InvalidCertificate(_) => TlsFailure::BadCertificate,
            Error::NoCertificatesPresented => TlsFailure::NoCertificate,
            // A TLS 1.0/1.1 ClientHello has no signature_algorithms
            // extension (it is TLS 1.2's): rustls refuses it for that before
            // it looks at the version, so that too is a version refusal.
            Error::PeerIncompatible(
                P::ServerDoesNotSupportTls12Or13
                | P::ServerTlsVersionIsDisabledByOurConfig
                | P::SupportedVersionsExtensionRequired
                | P::SignatureAlgorithmsExtensionRequired
                | P::Tls12NotOffered
                | P::Tls12NotOfferedOrEnabled
                | P::NoCipherSuitesInCommon,
            ) => TlsFailure::ProtocolVersion,
            Error::AlertReceived(
                A::BadCertificate
                | A::UnsupportedCertificate
                | A::CertificateUnknown
                | A::DecryptError,
            ) => TlsFailure::BadCertificate,
            Error::AlertReceived(A::UnknownCA) => TlsFailure::UnknownCa,
            Error::AlertReceived(A::CertificateExpired) => TlsFailure::Expired,
            Error::AlertReceived(A::ProtocolVersion) => TlsFailure::ProtocolVersion,
            Error::AlertReceived(A::CertificateRequired) => TlsFailure::NoCertificate,
            _ => TlsFailure::Protocol,
        }
    }
}

impl From<Error> for TlsError {
    fn from(e: Error) -> Self {
        TlsError::new(TlsFailure::from(&e), e.to_string())
    }
}

#[cfg(test)]
mod close_reason_tests {
    use super::TlsFailure;
    use crate::error::CloseReason;

    #[test]
    fn every_failure_closes_with_the_reason_of_its_name() {
        for &f in TlsFailure::ALL {
            assert_eq!(CloseReason::from(f).as_str(), f.name());
            // The list pairs each failure with `Tls` + its own name.
            assert_eq!(f.name(), format!("Tls{f:?}"));
        }
    }
}

#[cfg(test)]
mod mapping_tests {
    use super::{TlsError, TlsFailure};
    use rustls::{Error, PeerIncompatible as P};

    #[test]
    fn what_only_a_peer_below_tls_1_2_triggers_is_a_protocol_version_refusal() {
        for p in [
            P::SignatureAlgorithmsExtensionRequired,
            P::SupportedVersionsExtensionRequired,
            P::Tls12NotOffered,
            P::Tls12NotOfferedOrEnabled,
            P::ServerDoesNotSupportTls12Or13,
        ] {
            let name = format!("{p:?}");
            let e = TlsError::from(Error::PeerIncompatible(p));
            assert_eq!(e.reason, TlsFailure::ProtocolVersion, "{name}");
            // rustls's text stays in the detail.
            assert!(e.detail.contains(&name), "{name}: {}", e.detail);
        }
        // Other incompatibilities are not about the version.
        let e = TlsError::from(Error::PeerIncompatible(P::NullCompressionRequired));
        assert_eq!(e.reason, TlsFailure::Protocol);
    }
}

//! The TLS fields of `mooring_config`: PEM files (or PEM text), client
//! authentication and the allow-list for listeners; CA, server name and client
//! certificate for connects. Read and checked once, in `mooring_node_new`.

use core::ffi::c_char;

use super::{c_str, fail, mooring_config, mooring_result};

/// Default of `tls_handshake_timeout_ms` (the library's default, 10 s).
pub(super) const DEFAULT_HANDSHAKE_TIMEOUT_MS: u32 = 10_000;

/// A string field: `None` when NULL or empty.
///
/// # Safety
/// `p` is NULL or a NUL-terminated string.
unsafe fn opt_str<'a>(p: *const c_char, field: &str) -> Result<Option<&'a str>, mooring_result> {
    if p.is_null() {
        return Ok(None);
    }
    // SAFETY: non-NULL and NUL-terminated by the config's contract.
    let s = unsafe { c_str(p, field) }?;
    Ok(Some(s).filter(|s| !s.is_empty()))
}

/// The TLS string fields, by name (for error texts), as given.
struct Fields<'a> {
    cert: Option<&'a str>,
    key: Option<&'a str>,
    client_ca: Option<&'a str>,
    allow_peers: Option<&'a str>,
    ca: Option<&'a str>,
    server_name: Option<&'a str>,
    client_cert: Option<&'a str>,
    client_key: Option<&'a str>,
}

impl<'a> Fields<'a> {
    /// Reads the fields.
    ///
    /// # Safety
    /// Each pointer field is NULL or a NUL-terminated string.
    unsafe fn read(c: &mooring_config) -> Result<Fields<'a>, mooring_result> {
        // SAFETY: each field is NULL or NUL-terminated by contract.
        unsafe {
            Ok(Fields {
                cert: opt_str(c.tls_cert, "tls_cert")?,
                key: opt_str(c.tls_key, "tls_key")?,
                client_ca: opt_str(c.tls_client_ca, "tls_client_ca")?,
                allow_peers: opt_str(c.tls_allow_peers, "tls_allow_peers")?,
                ca: opt_str(c.tls_ca, "tls_ca")?,
                server_name: opt_str(c.tls_server_name, "tls_server_name")?,
                client_cert: opt_str(c.tls_client_cert, "tls_client_cert")?,
                client_key: opt_str(c.tls_client_key, "tls_client_key")?,
            })
        }
    }

    /// The fields that are set, by name.
    fn given(&self) -> impl Iterator<Item = (&'static str, &'a str)> {
        [
            ("tls_cert", self.cert),
            ("tls_key", self.key),
            ("tls_client_ca", self.client_ca),
            ("tls_allow_peers", self.allow_peers),
            ("tls_ca", self.ca),
            ("tls_server_name", self.server_name),
            ("tls_client_cert", self.client_cert),
            ("tls_client_key", self.client_key),
        ]
        .into_iter()
        .filter_map(|(name, v)| Some((name, v?)))
    }
}

/// The listeners' and the connects' TLS settings the config stands for,
/// checked (files read): `None` for plain TCP.
#[cfg(feature = "tls")]
#[allow(clippy::type_complexity)]
pub(super) fn convert(
    c: &mooring_config,
) -> Result<
    (
        Option<crate::tls::TlsServerConfig>,
        Option<crate::tls::TlsClientConfig>,
    ),
    mooring_result,
> {
    use crate::tls::{ClientAuth, PemSource, TlsClientConfig, TlsServerConfig};
    use core::time::Duration;

    // SAFETY: the config's contract.
    let f = unsafe { Fields::read(c) }?;
    let invalid = |msg: core::fmt::Arguments<'_>| fail(mooring_result::InvalidConfig, msg);
    // A path, or the PEM text itself.
    let pem = |s: &str| {
        if s.trim_start().starts_with("-----BEGIN") {
            PemSource::Bytes(s.as_bytes().to_vec())
        } else {
            PemSource::File(s.into())
        }
    };
    // The library names a file by its path, PEM text by its role: the field
    // whose value it is goes first.
    let named = |e: crate::tls::TlsConfigError| {
        const ROLES: [(&str, &str); 6] = [
            ("certificate chain (", "tls_cert"),
            ("private key (", "tls_key"),
            ("client CA certificates (", "tls_client_ca"),
            ("CA certificates (", "tls_ca"),
            ("client certificate (", "tls_client_cert"),
            ("client key (", "tls_client_key"),
        ];
        let field = f
            .given()
            .find(|(_, v)| *v == e.source)
            .map(|(n, _)| n)
            .or_else(|| {
                ROLES
                    .iter()
                    .find(|(role, _)| e.source.starts_with(role))
                    .map(|(_, n)| *n)
            });
        match field {
            Some(field) => invalid(format_args!("{field}: {e}")),
            None => invalid(format_args!("tls: {e}")),
        }
    };
    let timeout = Duration::from_millis(u64::from(c.tls_handshake_timeout_ms));
    if c.tls_handshake_timeout_ms == 0 {
        return Err(invalid(format_args!(
            "tls_handshake_timeout_ms must be more than 0"
        )));
    }
    let client_auth = match c.tls_client_auth {
        0 => ClientAuth::None,
        1 => ClientAuth::Optional,
        2 => ClientAuth::Required,
        v => return Err(invalid(format_args!("tls_client_auth: unknown value {v}"))),
    };
    let server = match (f.cert, f.key) {
        (None, None) => {
            if let Some((field, _)) = f
                .given()
                .find(|(n, _)| matches!(*n, "tls_client_ca" | "tls_allow_peers"))
            {
                return Err(invalid(format_args!("{field}: needs tls_cert and tls_key")));
            }
            None
        }
        (Some(_), None) => return Err(invalid(format_args!("tls_cert: needs tls_key"))),
        (None, Some(_)) => return Err(invalid(format_args!("tls_key: needs tls_cert"))),
        (Some(cert), Some(key)) => {
            let mut s = TlsServerConfig::new(pem(cert), pem(key));
            s.client_auth = client_auth;
            s.client_ca = f.client_ca.map(pem);
            s.allow_peers = f
                .allow_peers
                .map(|a| {
                    a.split(',')
                        .map(str::trim)
                        .filter(|n| !n.is_empty())
                        .map(String::from)
                        .collect()
                })
                .unwrap_or_default();
            s.handshake_timeout = timeout;
            s.build().map_err(named)?;
            Some(s)
        }
    };
    let client = match f.ca {
        None => {
            if let Some((field, _)) = f.given().find(|(n, _)| {
                matches!(*n, "tls_server_name" | "tls_client_cert" | "tls_client_key")
            }) {
                return Err(invalid(format_args!("{field}: needs tls_ca")));
            }
            None
        }
        Some(ca) => {
            let mut k = TlsClientConfig::new(pem(ca));
            k.server_name = f.server_name.map(String::from);
            k.client_cert = f.client_cert.map(pem);
            k.client_key = f.client_key.map(pem);
            k.handshake_timeout = timeout;
            k.build().map_err(|e| {
                if e.source == "server name" {
                    invalid(format_args!("tls_server_name: {}", e.problem))
                } else {
                    named(e)
                }
            })?;
            Some(k)
        }
    };
    Ok((server, client))
}

/// A build without TLS: every TLS field must be unset.
#[cfg(not(feature = "tls"))]
pub(super) fn refuse(c: &mooring_config) -> Result<(), mooring_result> {
    // SAFETY: the config's contract.
    let f = unsafe { Fields::read(c) }?;
    let field = f
        .given()
        .map(|(n, _)| n)
        .next()
        .or_else(|| (c.tls_client_auth != 0).then_some("tls_client_auth"));
    match field {
        Some(field) => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("{field}: this mooring was built without TLS (cargo feature `tls`)"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use std::ffi::CString;

    use super::*;
    use crate::ffi::tests::{default_config, last_error};

    /// `convert`'s error text for a config, which must be refused.
    fn refused(c: &mooring_config) -> String {
        let r = crate::ffi::config::convert(c).map(|_| ());
        assert_eq!(r.err(), Some(mooring_result::InvalidConfig));
        last_error()
    }

    #[cfg(not(feature = "tls"))]
    #[test]
    fn a_build_without_tls_refuses_every_tls_field() {
        let cert = CString::new("cert.pem").unwrap();
        let mut c = default_config();
        c.tls_ca = cert.as_ptr();
        let e = refused(&c);
        assert!(
            e.starts_with("tls_ca: this mooring was built without TLS"),
            "{e}"
        );
        let mut c = default_config();
        c.tls_client_auth = 2;
        let e = refused(&c);
        assert!(e.starts_with("tls_client_auth: "), "{e}");
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_fields_build_the_settings_from_files_or_pem_text() {
        use crate::tls::{ClientAuth, PemSource};
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["engine.example".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let (cert, key, ca) = (
            CString::new(cert.pem()).unwrap(),
            CString::new(key.serialize_pem()).unwrap(),
            CString::new(ca.pem()).unwrap(),
        );
        let peers = CString::new("device-1, device-2").unwrap();
        let name = CString::new("engine.example").unwrap();

        let mut c = default_config();
        assert_eq!(convert(&c).unwrap(), (None, None), "plain TCP by default");
        c.tls_cert = cert.as_ptr();
        c.tls_key = key.as_ptr();
        c.tls_client_ca = ca.as_ptr();
        c.tls_client_auth = mooring_tls_client_auth_required();
        c.tls_allow_peers = peers.as_ptr();
        c.tls_ca = ca.as_ptr();
        c.tls_server_name = name.as_ptr();
        c.tls_handshake_timeout_ms = 2_000;
        let (server, client) = convert(&c).unwrap();
        let (server, client) = (server.unwrap(), client.unwrap());
        assert!(matches!(server.cert_chain, PemSource::Bytes(_)));
        assert_eq!(server.client_auth, ClientAuth::Required);
        assert_eq!(server.allow_peers, ["device-1", "device-2"]);
        assert_eq!(server.handshake_timeout.as_millis(), 2_000);
        assert_eq!(client.server_name.as_deref(), Some("engine.example"));
        // The whole config goes through.
        let (_, l, k) = crate::ffi::config::convert(&c).unwrap();
        assert!(l.tls.is_some() && k.tls.is_some());
    }

    #[cfg(feature = "tls")]
    fn mooring_tls_client_auth_required() -> u32 {
        crate::ffi::mooring_tls_client_auth::Required as u32
    }

    #[cfg(feature = "tls")]
    #[test]
    fn bad_tls_fields_are_invalid_config_naming_the_field() {
        let missing = CString::new("/nonexistent/mooring/cert.pem").unwrap();
        let junk = CString::new("-----BEGIN NOTHING-----\n").unwrap();
        let name = CString::new("x").unwrap();
        type Set<'a> = Box<dyn Fn(&mut mooring_config) + 'a>;
        let cases: Vec<(Set, &str)> = vec![
            (
                Box::new(|c| c.tls_cert = missing.as_ptr()),
                "tls_cert: needs tls_key",
            ),
            (
                Box::new(|c| c.tls_key = missing.as_ptr()),
                "tls_key: needs tls_cert",
            ),
            (
                Box::new(|c| {
                    c.tls_cert = missing.as_ptr();
                    c.tls_key = missing.as_ptr();
                }),
                "tls_cert: /nonexistent/mooring/cert.pem: cannot read",
            ),
            (
                Box::new(|c| c.tls_client_ca = missing.as_ptr()),
                "tls_client_ca: needs tls_cert and tls_key",
            ),
            (
                Box::new(|c| c.tls_server_name = name.as_ptr()),
                "tls_server_name: needs tls_ca",
            ),
            (
                Box::new(|c| c.tls_ca = junk.as_ptr()),
                "tls_ca: CA certificates (PEM bytes): bad PEM",
            ),
            (
                Box::new(|c| c.tls_client_auth = 7),
                "tls_client_auth: unknown value 7",
            ),
            (
                Box::new(|c| c.tls_handshake_timeout_ms = 0),
                "tls_handshake_timeout_ms must be more than 0",
            ),
        ];
        for (set, want) in cases {
            let mut c = default_config();
            set(&mut c);
            let e = refused(&c);
            assert!(e.starts_with(want), "got {e:?}, want {want:?}");
        }
    }
}

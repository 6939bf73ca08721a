//! The TLS fields of `mooring_config` (and, named as there, of
//! `mooring_relay_config`): PEM files (or PEM text), client authentication and
//! the allow-list for listeners; CA, server name and client certificate for
//! connects. Read and checked once, in `mooring_node_new` (`mooring_relay_new`).

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

/// The TLS fields of a C config (`mooring_config` or `mooring_relay_config`)
/// with their names there, for one conversion serving both.
pub(super) struct TlsInput {
    /// The eight string fields, in the order of [`NODE_NAMES`]: certificate,
    /// key, client CA, allowed peers (listener side); CA, server name, client
    /// certificate, client key (connect side).
    pub(super) strings: [*const c_char; 8],
    /// Their names in the config, for error texts.
    pub(super) names: &'static [&'static str; 8],
    /// A `mooring_tls_client_auth` value.
    pub(super) client_auth: u32,
    /// `tls_handshake_timeout_ms` (unread in a build without TLS).
    #[cfg_attr(not(feature = "tls"), allow(dead_code))]
    pub(super) handshake_timeout_ms: u32,
}

/// The TLS string fields' names in `mooring_config`.
pub(super) const NODE_NAMES: [&str; 8] = [
    "tls_cert",
    "tls_key",
    "tls_client_ca",
    "tls_allow_peers",
    "tls_ca",
    "tls_server_name",
    "tls_client_cert",
    "tls_client_key",
];

impl TlsInput {
    /// The TLS fields of a node's config.
    fn of_node(c: &mooring_config) -> Self {
        TlsInput {
            strings: [
                c.tls_cert,
                c.tls_key,
                c.tls_client_ca,
                c.tls_allow_peers,
                c.tls_ca,
                c.tls_server_name,
                c.tls_client_cert,
                c.tls_client_key,
            ],
            names: &NODE_NAMES,
            client_auth: c.tls_client_auth,
            handshake_timeout_ms: c.tls_handshake_timeout_ms,
        }
    }
}

/// The TLS string fields as given (`None`: NULL or empty), with their names.
struct Fields<'a> {
    values: [Option<&'a str>; 8],
    names: &'static [&'static str; 8],
}

/// Indexes into [`Fields::values`].
#[cfg(feature = "tls")]
const CERT: usize = 0;
#[cfg(feature = "tls")]
const KEY: usize = 1;
#[cfg(feature = "tls")]
const CLIENT_CA: usize = 2;
#[cfg(feature = "tls")]
const ALLOW_PEERS: usize = 3;
#[cfg(feature = "tls")]
const CA: usize = 4;
#[cfg(feature = "tls")]
const SERVER_NAME: usize = 5;
#[cfg(feature = "tls")]
const CLIENT_CERT: usize = 6;
#[cfg(feature = "tls")]
const CLIENT_KEY: usize = 7;

impl<'a> Fields<'a> {
    /// Reads the fields.
    ///
    /// # Safety
    /// Each pointer is NULL or a NUL-terminated string.
    unsafe fn read(t: &TlsInput) -> Result<Fields<'a>, mooring_result> {
        let mut values = [None; 8];
        for (i, v) in values.iter_mut().enumerate() {
            // SAFETY: NULL or NUL-terminated by contract.
            *v = unsafe { opt_str(t.strings[i], t.names[i]) }?;
        }
        Ok(Fields {
            values,
            names: t.names,
        })
    }

    /// The field at `i`'s value.
    #[cfg(feature = "tls")]
    fn get(&self, i: usize) -> Option<&'a str> {
        self.values[i]
    }

    /// The first of `which` that is set, by name.
    #[cfg(feature = "tls")]
    fn first_of(&self, which: &[usize]) -> Option<&'static str> {
        which
            .iter()
            .find(|&&i| self.values[i].is_some())
            .map(|&i| self.names[i])
    }

    /// The fields that are set, by name.
    fn given(&self) -> impl Iterator<Item = (&'static str, &'a str)> + '_ {
        (0..8).filter_map(|i| Some((self.names[i], self.values[i]?)))
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
    convert_fields(&TlsInput::of_node(c))
}

/// The listener-side and connect-side TLS settings of any C config's TLS
/// fields, checked (files read): `None` for plain TCP. Errors name the field.
#[cfg(feature = "tls")]
#[allow(clippy::type_complexity)]
pub(super) fn convert_fields(
    t: &TlsInput,
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
    let f = unsafe { Fields::read(t) }?;
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
        const ROLES: [(&str, usize); 6] = [
            ("certificate chain (", CERT),
            ("private key (", KEY),
            ("client CA certificates (", CLIENT_CA),
            ("CA certificates (", CA),
            ("client certificate (", CLIENT_CERT),
            ("client key (", CLIENT_KEY),
        ];
        let field = f
            .given()
            .find(|(_, v)| *v == e.source)
            .map(|(n, _)| n)
            .or_else(|| {
                ROLES
                    .iter()
                    .find(|(role, _)| e.source.starts_with(role))
                    .map(|(_, i)| f.names[*i])
            });
        match field {
            Some(field) => invalid(format_args!("{field}: {e}")),
            None => invalid(format_args!("tls: {e}")),
        }
    };
    let timeout = Duration::from_millis(u64::from(t.handshake_timeout_ms));
    if t.handshake_timeout_ms == 0 {
        return Err(invalid(format_args!(
            "tls_handshake_timeout_ms must be more than 0"
        )));
    }
    let client_auth = match t.client_auth {
        0 => ClientAuth::None,
        1 => ClientAuth::Optional,
        2 => ClientAuth::Required,
        v => return Err(invalid(format_args!("tls_client_auth: unknown value {v}"))),
    };
    let (cert_name, key_name) = (f.names[CERT], f.names[KEY]);
    let server = match (f.get(CERT), f.get(KEY)) {
        (None, None) => {
            if let Some(field) = f.first_of(&[CLIENT_CA, ALLOW_PEERS]) {
                return Err(invalid(format_args!(
                    "{field}: needs {cert_name} and {key_name}"
                )));
            }
            None
        }
        (Some(_), None) => return Err(invalid(format_args!("{cert_name}: needs {key_name}"))),
        (None, Some(_)) => return Err(invalid(format_args!("{key_name}: needs {cert_name}"))),
        (Some(cert), Some(key)) => {
            let mut s = TlsServerConfig::new(pem(cert), pem(key));
            s.client_auth = client_auth;
            s.client_ca = f.get(CLIENT_CA).map(pem);
            s.allow_peers = f
                .get(ALLOW_PEERS)
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
    let client = match f.get(CA) {
        None => {
            if let Some(field) = f.first_of(&[SERVER_NAME, CLIENT_CERT, CLIENT_KEY]) {
                let ca = f.names[CA];
                return Err(invalid(format_args!("{field}: needs {ca}")));
            }
            None
        }
        Some(ca) => {
            let mut k = TlsClientConfig::new(pem(ca));
            k.server_name = f.get(SERVER_NAME).map(String::from);
            k.client_cert = f.get(CLIENT_CERT).map(pem);
            k.client_key = f.get(CLIENT_KEY).map(pem);
            k.handshake_timeout = timeout;
            k.build().map_err(|e| {
                if e.source == "server name" {
                    let field = f.names[SERVER_NAME];
                    invalid(format_args!("{field}: {}", e.problem))
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
    refuse_fields(&TlsInput::of_node(c))
}

/// A build without TLS: every TLS field of any C config must be unset.
#[cfg(not(feature = "tls"))]
pub(super) fn refuse_fields(t: &TlsInput) -> Result<(), mooring_result> {
    // SAFETY: the config's contract.
    let f = unsafe { Fields::read(t) }?;
    let field = f
        .given()
        .map(|(n, _)| n)
        .next()
        .or_else(|| (t.client_auth != 0).then_some("tls_client_auth"));
    match field {
        Some(field) => Err(fail(
            mooring_result::InvalidConfig,
            format_args!("{field}: this mooring was built without TLS (cargo feature `tls`)"),
        )),
        None => Ok(()),
    }
}

#[cfg(test)]
pub(super) mod tests {
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

    /// A certificate for `engine.example`, its key and the CA that signed
    /// it, as PEM text.
    #[cfg(feature = "tls")]
    pub(in crate::ffi) fn engine_pem() -> (CString, CString, CString) {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};

        let mut p = CertificateParams::new(Vec::<String>::new()).unwrap();
        p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["engine.example".to_string()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        (
            CString::new(cert.pem()).unwrap(),
            CString::new(key.serialize_pem()).unwrap(),
            CString::new(ca.pem()).unwrap(),
        )
    }

    #[cfg(feature = "tls")]
    #[test]
    fn tls_fields_build_the_settings_from_files_or_pem_text() {
        use crate::tls::{ClientAuth, PemSource};

        let (cert, key, ca) = engine_pem();
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

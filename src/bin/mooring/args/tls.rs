//! The TLS flags: a server's (`listen`, the relay's device side:
//! `--tls-cert`, `--tls-key`, `--tls-ca`, `--tls-client-auth`,
//! `--tls-allow-peer`) and a client's (`send`: `--tls`, `--tls-ca`,
//! `--tls-server-name`, `--tls-cert`, `--tls-key`; the relay's upstream side:
//! the same with `--upstream-` in front), plus `--tls-handshake-timeout`.
//!
//! The files are read and checked while parsing, so that a missing file, bad
//! PEM or a key that does not go with its certificate is a usage error (exit
//! 2) naming the flag and the file, before anything is bound. A build without
//! the `tls` feature knows the flags only to refuse them by name: a TLS flag
//! silently ignored would send patient data in clear.

use std::time::Duration;

use super::common::parse_dur;
use super::{err, UsageError, Words};

/// What a server's flags build: the library's TLS server settings (a build
/// without TLS never has one: the flags are refused).
#[cfg(feature = "tls")]
pub type ServerTlsOpts = mooring::tls::TlsServerConfig;
/// What a server's flags build (a build without TLS: never anything).
#[cfg(not(feature = "tls"))]
pub type ServerTlsOpts = std::convert::Infallible;

/// What a client's flags build: the library's TLS client settings.
#[cfg(feature = "tls")]
pub type ClientTlsOpts = mooring::tls::TlsClientConfig;
/// What a client's flags build (a build without TLS: never anything).
#[cfg(not(feature = "tls"))]
pub type ClientTlsOpts = std::convert::Infallible;

/// Refuses a TLS flag in a build without TLS; nothing in a build with it.
fn available(flag: &str) -> Result<(), UsageError> {
    if cfg!(feature = "tls") {
        Ok(())
    } else {
        err(format!(
            "{flag}: this mooring was built without TLS (cargo feature `tls`); \
             rebuild with default features to use TLS"
        ))
    }
}

/// `--tls-client-auth`: which clients a TLS server accepts.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum ClientAuthFlag {
    None,
    Optional,
    Required,
}

/// A server's TLS flags as given; [`TlsServerFlags::finish`] checks them
/// together.
#[derive(Debug, Default)]
pub(super) struct TlsServerFlags {
    /// `--tls-cert`.
    cert: Option<String>,
    /// `--tls-key`.
    key: Option<String>,
    /// `--tls-ca`.
    ca: Option<String>,
    /// `--tls-client-auth`.
    client_auth: Option<ClientAuthFlag>,
    /// `--tls-allow-peer`, every occurrence.
    allow: Vec<String>,
    /// `--tls-handshake-timeout`.
    pub(super) handshake_timeout: Option<Duration>,
}

impl TlsServerFlags {
    /// Takes `flag` (and its value) when it is a server TLS flag; false
    /// otherwise.
    pub(super) fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut Words<I>,
    ) -> Result<bool, UsageError> {
        let slot = match flag {
            "--tls-cert" => &mut self.cert,
            "--tls-key" => &mut self.key,
            "--tls-ca" => &mut self.ca,
            "--tls-client-auth" => {
                available(flag)?;
                self.client_auth = Some(match words.value(flag, inline)?.as_str() {
                    "none" => ClientAuthFlag::None,
                    "optional" => ClientAuthFlag::Optional,
                    "required" => ClientAuthFlag::Required,
                    v => {
                        return err(format!(
                            "{flag}: bad value \"{v}\" (use none, optional or required)"
                        ))
                    }
                });
                return Ok(true);
            }
            "--tls-allow-peer" => {
                available(flag)?;
                let v = words.value(flag, inline)?;
                if v.is_empty() {
                    return err(format!("{flag}: empty name"));
                }
                self.allow.push(v);
                return Ok(true);
            }
            "--tls-handshake-timeout" => {
                available(flag)?;
                self.handshake_timeout = Some(positive_dur(flag, &words.value(flag, inline)?)?);
                return Ok(true);
            }
            _ => return Ok(false),
        };
        available(flag)?;
        *slot = Some(file_value(flag, words.value(flag, inline)?)?);
        Ok(true)
    }

    /// True when `--tls-cert` was given.
    pub(super) fn has_cert(&self) -> bool {
        self.cert.is_some()
    }

    /// Checks the flags together and reads the files: `None` when no server
    /// TLS flag was given.
    pub(super) fn finish(self) -> Result<Option<ServerTlsOpts>, UsageError> {
        let Some(cert) = self.cert else {
            let given = [
                ("--tls-key", self.key.is_some()),
                ("--tls-ca", self.ca.is_some()),
                ("--tls-client-auth", self.client_auth.is_some()),
                ("--tls-allow-peer", !self.allow.is_empty()),
                ("--tls-handshake-timeout", self.handshake_timeout.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return err(format!("{flag}: needs --tls-cert FILE and --tls-key FILE"));
            }
            return Ok(None);
        };
        let Some(key) = self.key else {
            return err("--tls-cert: needs --tls-key FILE (the certificate's private key)");
        };
        // With CA certificates given, clients must present a certificate they
        // vouch for unless told otherwise: a CA given and not used would be a
        // trap.
        let auth = self.client_auth.unwrap_or(if self.ca.is_some() {
            ClientAuthFlag::Required
        } else {
            ClientAuthFlag::None
        });
        match (auth, &self.ca) {
            (ClientAuthFlag::None, _) if !self.allow.is_empty() => {
                return err("--tls-allow-peer: needs client certificates \
                     (--tls-ca FILE, --tls-client-auth optional or required)")
            }
            (ClientAuthFlag::Optional | ClientAuthFlag::Required, None) => {
                return err("--tls-client-auth: needs --tls-ca FILE \
                     (the CA certificates client certificates must chain to)")
            }
            _ => {}
        }
        #[cfg(feature = "tls")]
        {
            use mooring::tls::{ClientAuth, PemSource, TlsServerConfig};
            let mut c = TlsServerConfig::new(
                PemSource::File(cert.clone().into()),
                PemSource::File(key.clone().into()),
            );
            c.client_auth = match auth {
                ClientAuthFlag::None => ClientAuth::None,
                ClientAuthFlag::Optional => ClientAuth::Optional,
                ClientAuthFlag::Required => ClientAuth::Required,
            };
            c.client_ca = self.ca.clone().map(|p| PemSource::File(p.into()));
            c.allow_peers = self.allow;
            if let Some(t) = self.handshake_timeout {
                c.handshake_timeout = t;
            }
            let files = [
                ("--tls-cert", Some(&cert)),
                ("--tls-key", Some(&key)),
                ("--tls-ca", self.ca.as_ref()),
            ];
            c.build().map_err(|e| config_error(&files, e))?;
            Ok(Some(c))
        }
        #[cfg(not(feature = "tls"))]
        {
            // Unreachable: `parse` refused every TLS flag.
            let _ = (cert, key, auth);
            err("--tls-cert: this mooring was built without TLS (cargo feature `tls`)")
        }
    }
}

/// A client's TLS flags as given (`prefix`: `--tls` for `send`,
/// `--upstream-tls` for the relay's upstream); [`TlsClientFlags::finish`]
/// checks them together.
#[derive(Debug)]
pub(super) struct TlsClientFlags {
    /// `--tls` or `--upstream-tls`: the switch and every flag's prefix.
    prefix: &'static str,
    /// The switch was given.
    on: bool,
    /// `PREFIX-ca`.
    ca: Option<String>,
    /// `PREFIX-server-name`.
    server_name: Option<String>,
    /// `PREFIX-cert`.
    cert: Option<String>,
    /// `PREFIX-key`.
    key: Option<String>,
    /// `--tls-handshake-timeout` (given by the caller on the relay, where one
    /// flag serves both sides).
    pub(super) handshake_timeout: Option<Duration>,
}

impl TlsClientFlags {
    /// The flags named `PREFIX`, `PREFIX-ca`, ... (`--tls` or `--upstream-tls`).
    pub(super) fn new(prefix: &'static str) -> Self {
        TlsClientFlags {
            prefix,
            on: false,
            ca: None,
            server_name: None,
            cert: None,
            key: None,
            handshake_timeout: None,
        }
    }

    /// Takes `flag` (and its value) when it is one of these client TLS flags
    /// (`--tls-handshake-timeout` too when `timeout`); false otherwise.
    pub(super) fn parse<I: Iterator<Item = String>>(
        &mut self,
        flag: &str,
        inline: Option<String>,
        words: &mut Words<I>,
        timeout: bool,
    ) -> Result<bool, UsageError> {
        if flag == "--tls-handshake-timeout" && timeout {
            available(flag)?;
            self.handshake_timeout = Some(positive_dur(flag, &words.value(flag, inline)?)?);
            return Ok(true);
        }
        let Some(rest) = flag.strip_prefix(self.prefix) else {
            return Ok(false);
        };
        if rest.is_empty() {
            available(flag)?;
            if inline.is_some() {
                return err(format!("{flag}: takes no value"));
            }
            self.on = true;
            return Ok(true);
        }
        let slot = match rest {
            "-ca" => &mut self.ca,
            "-cert" => &mut self.cert,
            "-key" => &mut self.key,
            "-server-name" => {
                available(flag)?;
                let v = words.value(flag, inline)?;
                if v.is_empty() {
                    return err(format!("{flag}: empty name"));
                }
                self.server_name = Some(v);
                return Ok(true);
            }
            _ => return Ok(false),
        };
        available(flag)?;
        *slot = Some(file_value(flag, words.value(flag, inline)?)?);
        Ok(true)
    }

    /// True when the switch (`--tls`, `--upstream-tls`) was given.
    pub(super) fn is_on(&self) -> bool {
        self.on
    }

    /// Checks the flags together and reads the files: `None` without the
    /// switch.
    pub(super) fn finish(self) -> Result<Option<ClientTlsOpts>, UsageError> {
        let p = self.prefix;
        if !self.on {
            let given = [
                ("-ca", self.ca.is_some()),
                ("-server-name", self.server_name.is_some()),
                ("-cert", self.cert.is_some()),
                ("-key", self.key.is_some()),
            ];
            if let Some((flag, _)) = given.iter().find(|(_, g)| *g) {
                return err(format!("{p}{flag}: needs {p}"));
            }
            if self.handshake_timeout.is_some() && p == "--tls" {
                return err("--tls-handshake-timeout: needs --tls");
            }
            return Ok(None);
        }
        let Some(ca) = self.ca else {
            return err(format!(
                "{p}: needs {p}-ca FILE (the CA certificates to verify the server by; \
                 there are no built-in roots)"
            ));
        };
        match (&self.cert, &self.key) {
            (Some(_), None) => return err(format!("{p}-cert: needs {p}-key FILE")),
            (None, Some(_)) => return err(format!("{p}-key: needs {p}-cert FILE")),
            _ => {}
        }
        #[cfg(feature = "tls")]
        {
            use mooring::tls::{PemSource, TlsClientConfig};
            let file = |p: &Option<String>| p.clone().map(|p| PemSource::File(p.into()));
            let mut c = TlsClientConfig::new(PemSource::File(ca.clone().into()));
            c.server_name = self.server_name.clone();
            c.client_cert = file(&self.cert);
            c.client_key = file(&self.key);
            if let Some(t) = self.handshake_timeout {
                c.handshake_timeout = t;
            }
            let names = [format!("{p}-ca"), format!("{p}-cert"), format!("{p}-key")];
            let files = [
                (names[1].as_str(), self.cert.as_ref()),
                (names[2].as_str(), self.key.as_ref()),
                (names[0].as_str(), Some(&ca)),
            ];
            let server_name = format!("{p}-server-name");
            c.build().map_err(|e| {
                if e.source == "server name" {
                    UsageError(format!("{server_name}: {}", e.problem))
                } else {
                    config_error(&files, e)
                }
            })?;
            Ok(Some(c))
        }
        #[cfg(not(feature = "tls"))]
        {
            let _ = ca;
            err(format!(
                "{p}: this mooring was built without TLS (cargo feature `tls`)"
            ))
        }
    }
}

/// A file name for `flag`: not empty.
fn file_value(flag: &str, v: String) -> Result<String, UsageError> {
    if v.is_empty() {
        return err(format!("{flag}: empty file name"));
    }
    Ok(v)
}

/// A duration for `flag` that is more than zero.
fn positive_dur(flag: &str, s: &str) -> Result<Duration, UsageError> {
    match parse_dur(flag, s)? {
        d if d.is_zero() => err(format!("{flag}: must be more than 0")),
        d => Ok(d),
    }
}

/// The library's complaint about a file as a usage error naming the flag that
/// gave it (`--tls-key /etc/key.pem: no usable private key ...`). `files`
/// lists the flags in the order certificate, key, CA; when one file is given
/// to several (a certificate and its key in one PEM file), the library's
/// words say which role failed.
#[cfg(feature = "tls")]
fn config_error(files: &[(&str, Option<&String>)], e: mooring::tls::TlsConfigError) -> UsageError {
    let same: Vec<usize> = (0..files.len())
        .filter(|&i| files[i].1.is_some_and(|p| *p == e.source))
        .collect();
    let role = if e.problem.contains("key") {
        1
    } else if e.problem.contains("CA") {
        2
    } else {
        0
    };
    let pick = match same.as_slice() {
        [] => None,
        [one] => Some(*one),
        many => Some(if many.contains(&role) { role } else { many[0] }),
    };
    match pick {
        Some(i) => UsageError(format!("{} {}: {}", files[i].0, e.source, e.problem)),
        None => UsageError(format!("TLS: {e}")),
    }
}

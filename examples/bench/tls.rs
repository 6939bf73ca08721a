//! The TLS rows (`tls-*` workloads): certificates made by rcgen once per run
//! and written to a temporary directory whose path the server children
//! inherit ([`DIR_ENV`]); the load client's TLS side, rustls's buffered
//! `ClientConnection` over the mio socket (as rustls's own mio example does);
//! the servers' TLS settings (mooring's `ListenConfig::tls`, and tokio-rustls's
//! acceptor over the same rustls and ring).

use std::path::PathBuf;
use std::sync::Arc;

use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};
use rustls::ClientConnection;

#[allow(unused_imports)]
use crate::*;

/// The environment variable naming the certificates' directory.
pub(crate) const DIR_ENV: &str = "MOORING_BENCH_TLS_DIR";

/// Makes a CA and a server certificate for 127.0.0.1 (P-256, as rcgen makes
/// by default) and points [`DIR_ENV`] at them, for this process and the
/// servers it starts.
pub(crate) fn make_certs() -> Result<(), String> {
    let e = |e: rcgen::Error| e.to_string();
    let dir = std::env::temp_dir().join(format!("mooring-bench-tls-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| e.to_string())?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, "bench CA");
    let ca = CertifiedIssuer::self_signed(p, KeyPair::generate().map_err(e)?).map_err(e)?;
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(e)?;
    p.subject_alt_names
        .push(SanType::IpAddress([127, 0, 0, 1].into()));
    let key = KeyPair::generate().map_err(e)?;
    let cert = p.signed_by(&key, &ca).map_err(e)?;
    for (name, text) in [
        ("ca.pem", ca.pem()),
        ("cert.pem", cert.pem()),
        ("key.pem", key.serialize_pem()),
    ] {
        std::fs::write(dir.join(name), text).map_err(|e| e.to_string())?;
    }
    std::env::set_var(DIR_ENV, &dir);
    Ok(())
}

fn file(name: &str) -> PathBuf {
    PathBuf::from(std::env::var_os(DIR_ENV).unwrap_or_default()).join(name)
}

/// mooring's server settings: the certificate, no client authentication.
pub(crate) fn mooring_server() -> mooring::tls::TlsServerConfig {
    use mooring::tls::{PemSource, TlsServerConfig};
    TlsServerConfig::new(
        PemSource::File(file("cert.pem")),
        PemSource::File(file("key.pem")),
    )
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// The tokio-rustls peer's server settings: the same certificate and suites.
pub(crate) fn rustls_server() -> io::Result<Arc<rustls::ServerConfig>> {
    let chain = CertificateDer::pem_file_iter(file("cert.pem"))
        .and_then(|i| i.collect::<Result<Vec<_>, _>>())
        .map_err(io::Error::other)?;
    let key = PrivateKeyDer::from_pem_file(file("key.pem")).map_err(io::Error::other)?;
    let c = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(io::Error::other)?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(io::Error::other)?;
    Ok(Arc::new(c))
}

/// The load client's settings: the CA, TLS 1.3 (both servers' default pick).
pub(crate) fn client_config() -> Result<Arc<rustls::ClientConfig>, String> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(file("ca.pem")).map_err(|e| e.to_string())? {
        roots
            .add(c.map_err(|e| e.to_string())?)
            .map_err(|e| e.to_string())?;
    }
    let c = rustls::ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    Ok(Arc::new(c))
}

/// A client link's socket: plain, or TLS over it.
pub(crate) struct Sock {
    pub(crate) tcp: TcpStream,
    pub(crate) tls: Option<ClientConnection>,
}

impl Sock {
    /// Over `tcp`, with TLS when `tls` (its ClientHello is written at once).
    pub(crate) fn new(
        tcp: TcpStream,
        tls: Option<&Arc<rustls::ClientConfig>>,
    ) -> Result<Sock, String> {
        let tls = match tls {
            Some(cfg) => Some(
                ClientConnection::new(
                    cfg.clone(),
                    ServerName::from(std::net::IpAddr::from([127, 0, 0, 1])),
                )
                .map_err(|e| e.to_string())?,
            ),
            None => None,
        };
        let mut s = Sock { tcp, tls };
        s.flush_tls().map_err(|e| e.to_string())?;
        Ok(s)
    }

    /// True over TLS: a short read does not mean the socket is drained.
    pub(crate) fn is_tls(&self) -> bool {
        self.tls.is_some()
    }

    /// Writes what TLS has to send, until it is all out or the socket blocks.
    pub(crate) fn flush_tls(&mut self) -> io::Result<()> {
        if let Some(t) = &mut self.tls {
            while t.wants_write() {
                match t.write_tls(&mut self.tcp) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
        Ok(())
    }

    /// Plaintext in: `WouldBlock` once the socket has nothing more.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let Some(t) = &mut self.tls else {
            return self.tcp.read(buf);
        };
        loop {
            match t.reader().read(buf) {
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                res => return res,
            }
            if t.read_tls(&mut self.tcp)? == 0 {
                return Ok(0);
            }
            t.process_new_packets().map_err(io::Error::other)?;
            // Handshake messages (and alerts) to answer.
            while t.wants_write() {
                match t.write_tls(&mut self.tcp) {
                    Ok(_) => {}
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                    Err(e) => return Err(e),
                }
            }
        }
    }

    /// Plaintext out: TLS takes it (up to its buffer limit) and writes what
    /// the socket takes; `WouldBlock` when TLS's buffer is full.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        let Some(t) = &mut self.tls else {
            return self.tcp.write(buf);
        };
        let n = t.writer().write(buf)?;
        self.flush_tls()?;
        if n == 0 && !buf.is_empty() {
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }
}

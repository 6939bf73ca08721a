//! TLS: mutual authentication with certificates generated in memory at run
//! time (a CA, the server's, a device's, and a stranger's from another CA),
//! an allow-list of peer identities, and a refusal with its named reason.

use mooring::tls::{ClientAuth, PemSource, TlsClientConfig, TlsServerConfig};
use mooring::{ClientPolicy, CloseReason, ConnectConfig};
use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, DnType, IsCa, KeyPair, SanType};

use crate::line::Line;

use super::harness::{client_connecting, loopback, request, ServerThread};
use super::{Outcome, MESSAGES};

/// The scenario's name in its lines.
const NAME: &str = "tls";

/// A CA made now, in memory.
fn ca(name: &str) -> Result<CertifiedIssuer<'static, KeyPair>, String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    p.distinguished_name.push(DnType::CommonName, name);
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    CertifiedIssuer::self_signed(p, key).map_err(|e| e.to_string())
}

/// A certificate and key (PEM) signed by `ca`, for one SAN.
fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    san: SanType,
) -> Result<(PemSource, PemSource), String> {
    let mut p = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
    p.subject_alt_names.push(san);
    let key = KeyPair::generate().map_err(|e| e.to_string())?;
    let cert = p.signed_by(&key, ca).map_err(|e| e.to_string())?;
    Ok((
        PemSource::Bytes(cert.pem().into_bytes()),
        PemSource::Bytes(key.serialize_pem().into_bytes()),
    ))
}

/// A DNS SAN.
fn dns(name: &str) -> Result<SanType, String> {
    Ok(SanType::DnsName(
        name.to_string().try_into().map_err(|e| format!("{e}"))?,
    ))
}

/// A listener requiring client certificates from its CA and allowing only
/// `device-1.example`: that device is served over TLS 1.3 (`event=tls` names
/// it on both sides) and gets its AAs; a device whose certificate comes from
/// another CA is refused during the handshake with `TlsUnknownCa`, and the
/// allowed device is still served.
pub(super) fn tls() -> Outcome {
    let site = ca("mooring demo CA")?;
    let other = ca("another CA")?;
    let (server_cert, server_key) = leaf(&site, SanType::IpAddress([127, 0, 0, 1].into()))?;
    let (device_cert, device_key) = leaf(&site, dns("device-1.example")?)?;
    let (stranger_cert, stranger_key) = leaf(&other, dns("device-9.example")?)?;
    let site_ca = PemSource::Bytes(site.pem().into_bytes());

    let mut server_tls = TlsServerConfig::new(server_cert, server_key);
    server_tls.client_auth = ClientAuth::Required;
    server_tls.client_ca = Some(site_ca.clone());
    server_tls.allow_peers = vec!["device-1.example".into()];
    let server = ServerThread::start(
        NAME,
        crate::args::ListenOpts {
            tls: Some(server_tls),
            ..loopback()
        },
    )?;
    let device = |cert: PemSource, key: PemSource| {
        let mut c = TlsClientConfig::new(site_ca.clone());
        c.client_cert = Some(cert);
        c.client_key = Some(key);
        client_connecting(
            server.addr,
            ClientPolicy::KeepOpen,
            ConnectConfig {
                tls: Some(c),
                ..ConnectConfig::default()
            },
        )
    };
    let line = || Line::new("scenario", NAME);

    let mut good = device(device_cert, device_key)?;
    request(&mut good, line, 1)?;
    if let Some((peer, h)) = good.take_tls_handshake() {
        crate::line::tls(line().kv("side", "client"), peer, &h).print();
    }
    let seen = server.expect("the device's handshake", |s| s.kind == "tls")?;
    if seen.id.as_deref() != Some("device-1.example") {
        return Err(format!(
            "server saw identity {:?}, not device-1.example",
            seen.id
        ));
    }

    // The stranger's certificate chains to a CA the listener does not trust.
    // The server warns about it: expected here, and said so.
    crate::logger::expect_warnings(true);
    let mut stranger = device(stranger_cert, stranger_key)?;
    let refused = request(&mut stranger, line, 2);
    crate::logger::expect_warnings(false);
    if refused.is_ok() {
        return Err("the stranger's message was answered".into());
    }
    let closed = server.expect("the stranger's close", |s| s.kind == "closed")?;
    let detail = stranger.take_tls_error().map(|e| e.detail);
    line()
        .kv("event", "refused")
        .kv("peer_kind", "stranger")
        .kv("reason", closed.reason.map_or("none", CloseReason::as_str))
        .wire("detail", detail.as_deref().map(str::as_bytes))
        .print();
    if closed.reason != Some(CloseReason::TlsUnknownCa) {
        return Err(format!("stranger: want TlsUnknownCa, got {closed:?}"));
    }
    // The allowed device is still served, on its same link.
    for n in 2..=MESSAGES.len() {
        request(&mut good, line, n)?;
    }
    if good.stats().connects != 1 {
        return Err(format!(
            "the device reconnected ({} connects)",
            good.stats().connects
        ));
    }
    Ok(())
}

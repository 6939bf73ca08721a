//! The peer's identity, read from its end-entity certificate (DNS, IP and URI
//! subject alternative names, subject common name), and the allow-list that
//! is checked against it after the handshake.
//!
//! The certificate was verified by rustls (webpki) before it is read here, but
//! this reader still treats it as untrusted input: it walks only the DER it
//! needs (tbsCertificate, subject, the SAN extension), checks every length,
//! and returns what it could read (never panics). See README "Dependencies"
//! for why this is hand-written rather than a parser crate.

use std::fmt;
use std::net::IpAddr;

/// The names a peer's certificate carries.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PeerIdentity {
    /// DNS names (SAN dNSName).
    pub dns: Vec<String>,
    /// IP addresses (SAN iPAddress).
    pub ip: Vec<IpAddr>,
    /// URIs (SAN uniformResourceIdentifier), e.g. SPIFFE ids.
    pub uri: Vec<String>,
    /// The subject's common name, if it has one.
    pub common_name: Option<String>,
}

impl PeerIdentity {
    /// Reads the identity of a DER certificate. A part that cannot be read is
    /// left empty.
    pub fn from_der(cert: &[u8]) -> PeerIdentity {
        let mut id = PeerIdentity::default();
        let _ = read_cert(cert, &mut id);
        id
    }

    /// True if `name` is one of the identity's names: a DNS SAN (ASCII case
    /// ignored), a URI SAN, an IP SAN (`name` parsed as an address) or the
    /// subject CN, each compared whole (no wildcards).
    pub fn has_name(&self, name: &str) -> bool {
        self.dns.iter().any(|d| d.eq_ignore_ascii_case(name))
            || self.uri.iter().any(|u| u == name)
            || name
                .parse::<IpAddr>()
                .is_ok_and(|want| self.ip.contains(&want))
            || self.common_name.as_deref() == Some(name)
    }

    /// A SHA-256 digest of every name of the identity (DNS, IP, URI SANs and
    /// the CN, each tagged and length-prefixed, in certificate order): a
    /// fixed-size key to bind a session to this identity (a renewed
    /// certificate with the same names keeps it).
    pub fn digest(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        let rustls::SupportedCipherSuite::Tls13(suite) =
            rustls::crypto::ring::cipher_suite::TLS13_AES_128_GCM_SHA256
        else {
            return out;
        };
        let mut h = suite.common.hash_provider.start();
        let mut name = |tag: u8, bytes: &[u8]| {
            h.update(&[tag]);
            h.update(&(bytes.len() as u64).to_be_bytes());
            h.update(bytes);
        };
        for d in &self.dns {
            name(1, d.to_ascii_lowercase().as_bytes());
        }
        for ip in &self.ip {
            match ip {
                IpAddr::V4(v4) => name(2, &v4.octets()),
                IpAddr::V6(v6) => name(2, &v6.octets()),
            }
        }
        for u in &self.uri {
            name(3, u.as_bytes());
        }
        if let Some(cn) = &self.common_name {
            name(4, cn.as_bytes());
        }
        let d = h.finish();
        let d = d.as_ref();
        let n = d.len().min(out.len());
        out[..n].copy_from_slice(&d[..n]);
        out
    }

    /// True if the certificate carries no name this layer reads.
    pub fn is_empty(&self) -> bool {
        self.dns.is_empty()
            && self.ip.is_empty()
            && self.uri.is_empty()
            && self.common_name.is_none()
    }
}

/// Shows the identity's first name, in the order DNS, URI, IP, CN (`-` when
/// there is none): the `peer_identity=` value of an event line.
impl fmt::Display for PeerIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if let Some(d) = self.dns.first() {
            f.write_str(d)
        } else if let Some(u) = self.uri.first() {
            f.write_str(u)
        } else if let Some(ip) = self.ip.first() {
            write!(f, "{ip}")
        } else if let Some(cn) = &self.common_name {
            f.write_str(cn)
        } else {
            f.write_str("-")
        }
    }
}

/// The peer identities a server accepts after the handshake (empty: any peer
/// the CA vouches for).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct AllowPeers {
    names: Vec<String>,
}

impl AllowPeers {
    /// An allow-list of names, each matched as [`PeerIdentity::has_name`] does.
    pub fn new(names: Vec<String>) -> Self {
        AllowPeers { names }
    }

    /// True if no names are listed (every authenticated peer is allowed).
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// True if the list is empty or one of its names is one of the peer's.
    /// A peer without a certificate (`None`) passes only an empty list.
    pub fn allows(&self, peer: Option<&PeerIdentity>) -> bool {
        self.names.is_empty() || peer.is_some_and(|p| self.names.iter().any(|n| p.has_name(n)))
    }
}

// DER tags this reader needs.
const SEQUENCE: u8 = 0x30;
const SET: u8 = 0x31;
const OID: u8 = 0x06;
const OCTET_STRING: u8 = 0x04;
const BOOLEAN: u8 = 0x01;
const EXPLICIT_0: u8 = 0xa0;
const EXPLICIT_3: u8 = 0xa3;
const SAN_DNS: u8 = 0x82;
const SAN_URI: u8 = 0x86;
const SAN_IP: u8 = 0x87;
/// id-ce-subjectAltName, 2.5.29.17.
const OID_SAN: &[u8] = &[0x55, 0x1d, 0x11];
/// id-at-commonName, 2.5.4.3.
const OID_CN: &[u8] = &[0x55, 0x04, 0x03];

/// One DER element: (tag, contents, rest). Definite lengths up to 4 bytes.
fn tlv(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, mut rest) = rest.split_first()?;
    let len = if first < 0x80 {
        usize::from(first)
    } else {
        let n = usize::from(first & 0x7f);
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let mut len = 0usize;
        for &b in &rest[..n] {
            len = (len << 8) | usize::from(b);
        }
        rest = &rest[n..];
        len
    };
    if rest.len() < len {
        return None;
    }
    let (content, rest) = rest.split_at(len);
    Some((tag, content, rest))
}

/// The contents of the next element if it has tag `want`.
fn expect(input: &[u8], want: u8) -> Option<(&[u8], &[u8])> {
    match tlv(input)? {
        (tag, content, rest) if tag == want => Some((content, rest)),
        _ => None,
    }
}

fn read_cert(der: &[u8], id: &mut PeerIdentity) -> Option<()> {
    let (cert, _) = expect(der, SEQUENCE)?;
    let (tbs, _) = expect(cert, SEQUENCE)?;
    let mut rest = tbs;
    if let Some((EXPLICIT_0, _, r)) = tlv(rest) {
        rest = r; // version
    }
    // serialNumber, signature, issuer, validity.
    for _ in 0..4 {
        rest = tlv(rest)?.2;
    }
    let (subject, r) = expect(rest, SEQUENCE)?;
    id.common_name = common_name(subject);
    rest = tlv(r)?.2; // subjectPublicKeyInfo
                      // Optional issuerUniqueID [1], subjectUniqueID [2], then extensions [3].
    while let Some((tag, content, r)) = tlv(rest) {
        if tag == EXPLICIT_3 {
            read_extensions(content, id);
        }
        rest = r;
    }
    Some(())
}

fn common_name(name: &[u8]) -> Option<String> {
    let mut rdns = name;
    while let Some((set, r)) = expect(rdns, SET) {
        rdns = r;
        let mut atvs = set;
        while let Some((atv, r)) = expect(atvs, SEQUENCE) {
            atvs = r;
            let (oid, value) = expect(atv, OID)?;
            if oid == OID_CN {
                // UTF8String, PrintableString, IA5String, TeletexString.
                let (tag, text, _) = tlv(value)?;
                if matches!(tag, 0x0c | 0x13 | 0x16 | 0x14) {
                    return std::str::from_utf8(text).ok().map(str::to_owned);
                }
            }
        }
    }
    None
}

fn read_extensions(explicit: &[u8], id: &mut PeerIdentity) -> Option<()> {
    let (mut exts, _) = expect(explicit, SEQUENCE)?;
    while let Some((ext, r)) = expect(exts, SEQUENCE) {
        exts = r;
        let (oid, mut rest) = expect(ext, OID)?;
        if oid != OID_SAN {
            continue;
        }
        if let Some((_, r)) = expect(rest, BOOLEAN) {
            rest = r; // critical
        }
        let (value, _) = expect(rest, OCTET_STRING)?;
        let (mut names, _) = expect(value, SEQUENCE)?;
        while let Some((tag, content, r)) = tlv(names) {
            names = r;
            let text = || std::str::from_utf8(content).ok().map(str::to_owned);
            match tag {
                SAN_DNS => id.dns.extend(text()),
                SAN_URI => id.uri.extend(text()),
                SAN_IP => match content.len() {
                    4 => id
                        .ip
                        .extend(<[u8; 4]>::try_from(content).ok().map(IpAddr::from)),
                    16 => id
                        .ip
                        .extend(<[u8; 16]>::try_from(content).ok().map(IpAddr::from)),
                    _ => {}
                },
                _ => {}
            }
        }
    }
    Some(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn garbage_and_truncated_input_read_as_an_empty_identity_without_panicking() {
        let mut rng = crate::rng::XorShift64::new(7);
        let mut buf = [0u8; 64];
        for len in 0..buf.len() {
            for _ in 0..200 {
                for b in buf.iter_mut() {
                    *b = rng.next_u64() as u8;
                }
                buf[0] = SEQUENCE;
                let _ = PeerIdentity::from_der(&buf[..len]);
            }
        }
        assert!(PeerIdentity::from_der(&[0x30, 0x84, 0xff, 0xff, 0xff, 0xff]).is_empty());
    }

    #[test]
    fn names_match_whole_and_dns_ignores_case() {
        let id = PeerIdentity {
            dns: vec!["Device-1.example".into()],
            ip: vec!["10.0.0.7".parse().unwrap()],
            uri: vec!["spiffe://site/dev1".into()],
            common_name: Some("dev1".into()),
        };
        for yes in ["device-1.example", "10.0.0.7", "spiffe://site/dev1", "dev1"] {
            assert!(id.has_name(yes), "{yes}");
        }
        for no in ["device-1", "10.0.0.8", "spiffe://site", "DEV1", "*.example"] {
            assert!(!id.has_name(no), "{no}");
        }
        assert_eq!(id.to_string(), "Device-1.example");
        let mut other = id.clone();
        assert_eq!(other.digest(), id.digest());
        other.dns[0] = "device-1.EXAMPLE".into();
        assert_eq!(other.digest(), id.digest(), "DNS names ignore case");
        other.common_name = Some("dev2".into());
        assert_ne!(other.digest(), id.digest());
        assert_ne!(PeerIdentity::default().digest(), id.digest());
        assert!(AllowPeers::default().allows(None));
        assert!(!AllowPeers::new(vec!["dev1".into()]).allows(None));
    }
}

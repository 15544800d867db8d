//! The certificates of a local cluster (`tessera up`): a certificate authority of its own and,
//! signed by it, one certificate for the MariaDB servers and one for the router's client
//! listener, both for `127.0.0.1`, `::1` and `localhost`.
//!
//! They live in one directory (`<data-dir>/tls/`, mode 0700, every file 0600) and are made on
//! first use. Later starts reuse them; what is missing, unreadable, expired (or expiring
//! within a week), or no longer fits its key or its authority is made again, and said so. A
//! new authority means new certificates for both servers too.
//!
//! Keys are ECDSA P-256 (what MariaDB's OpenSSL, rustls and every client library accept).

use anyhow::Context;
use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, PublicKeyData, SanType,
};
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::time::{Duration, SystemTime};

/// The authority's file (PEM), what clients verify against.
pub const CA_CERT: &str = "ca.pem";
/// The authority's key.
pub const CA_KEY: &str = "ca-key.pem";
/// The MariaDB servers' certificate and key.
pub const SERVER_CERT: &str = "server-cert.pem";
pub const SERVER_KEY: &str = "server-key.pem";
/// The router's certificate and key (its client listener).
pub const ROUTER_CERT: &str = "router-cert.pem";
pub const ROUTER_KEY: &str = "router-key.pem";

const DAY: Duration = Duration::from_secs(86_400);
/// How long a new authority is valid.
const CA_VALIDITY: Duration = Duration::from_secs(10 * 365 * 86_400);
/// How long a new server or router certificate is valid (never past its authority).
const LEAF_VALIDITY: Duration = Duration::from_secs(365 * 86_400);
/// A certificate with less than this left is made again.
const RENEW_BEFORE: Duration = Duration::from_secs(7 * 86_400);

/// The files of a local cluster's TLS directory, all present and valid.
#[derive(Debug, Clone)]
pub struct LocalTls {
    pub dir: PathBuf,
    /// The authority's certificate, as PEM text (what a physical shard record carries).
    pub ca_pem: String,
}

impl LocalTls {
    pub fn ca_cert(&self) -> PathBuf {
        self.dir.join(CA_CERT)
    }
    pub fn server_cert(&self) -> PathBuf {
        self.dir.join(SERVER_CERT)
    }
    pub fn server_key(&self) -> PathBuf {
        self.dir.join(SERVER_KEY)
    }
    pub fn router_cert(&self) -> PathBuf {
        self.dir.join(ROUTER_CERT)
    }
    pub fn router_key(&self) -> PathBuf {
        self.dir.join(ROUTER_KEY)
    }
}

/// What [`ensure`] did, one line each, for the operator.
pub type Notes = Vec<String>;

/// Makes sure `dir` holds a valid authority and server and router certificates signed by it:
/// reuses what is there and valid, makes the rest.
///
/// # Errors
/// When the directory or a file cannot be created or written, or a certificate cannot be made.
pub fn ensure(dir: &Path) -> anyhow::Result<(LocalTls, Notes)> {
    std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
        .with_context(|| format!("making {} private", dir.display()))?;
    let mut notes = Notes::new();
    let now = SystemTime::now();

    // The authority: reused when its certificate and key read, fit each other, and it stays
    // valid for a while.
    let existing = match load_pair(dir, CA_CERT, CA_KEY) {
        Ok(None) => None,
        Ok(Some((cert_pem, key))) => match check_ca(&cert_pem, &key, now) {
            Ok(not_after) => Some((cert_pem, key, not_after)),
            Err(why) => {
                notes.push(format!(
                    "the local CA {} {why}: making a new CA and new certificates",
                    dir.join(CA_CERT).display()
                ));
                None
            }
        },
        Err(why) => {
            notes.push(format!(
                "the local CA in {} cannot be read ({why:#}): making a new CA and new certificates",
                dir.display()
            ));
            None
        }
    };
    let (ca_pem, ca_key, ca_not_after, new_ca) = match existing {
        Some((pem, key, not_after)) => (pem, key, not_after, false),
        None => {
            let (pem, key, not_after) = new_ca(now)?;
            write_private(&dir.join(CA_KEY), key.serialize_pem().as_bytes())?;
            write_private(&dir.join(CA_CERT), pem.as_bytes())?;
            if notes.is_empty() {
                notes.push(format!("made a local CA: {}", dir.join(CA_CERT).display()));
            }
            (pem, key, not_after, true)
        }
    };
    let issuer = Issuer::from_ca_cert_pem(&ca_pem, &ca_key)
        .context("reading the local CA's certificate back")?;
    let ca_der = pem_der(&ca_pem).context("reading the local CA's certificate back")?;

    for (cert, key, name, whose) in [
        (
            SERVER_CERT,
            SERVER_KEY,
            "MariaDB servers",
            "MariaDB servers'",
        ),
        (ROUTER_CERT, ROUTER_KEY, "router", "router's"),
    ] {
        let why = if new_ca {
            None
        } else {
            match load_pair(dir, cert, key) {
                Ok(None) => Some("is missing".to_string()),
                Ok(Some((cert_pem, key))) => check_leaf(&cert_pem, &key, &ca_der, now).err(),
                Err(e) => Some(format!("cannot be read ({e:#})")),
            }
        };
        let fresh = new_ca || why.is_some();
        if let Some(why) = why {
            notes.push(format!(
                "the {whose} certificate {} {why}: making a new one",
                dir.join(cert).display()
            ));
        }
        if fresh {
            let (pem, k) = new_leaf(name, whose, &issuer, now, ca_not_after)?;
            write_private(&dir.join(key), k.serialize_pem().as_bytes())?;
            write_private(&dir.join(cert), pem.as_bytes())?;
        }
    }
    Ok((
        LocalTls {
            dir: dir.to_path_buf(),
            ca_pem,
        },
        notes,
    ))
}

/// Reads a certificate (PEM text) and its key; `None` when neither file exists.
fn load_pair(dir: &Path, cert: &str, key: &str) -> anyhow::Result<Option<(String, KeyPair)>> {
    let (cp, kp) = (dir.join(cert), dir.join(key));
    if !cp.exists() && !kp.exists() {
        return Ok(None);
    }
    let cert_pem =
        std::fs::read_to_string(&cp).with_context(|| format!("reading {}", cp.display()))?;
    let key_pem =
        std::fs::read_to_string(&kp).with_context(|| format!("reading {}", kp.display()))?;
    let key = KeyPair::from_pem(&key_pem).with_context(|| format!("reading {}", kp.display()))?;
    Ok(Some((cert_pem, key)))
}

/// The DER bytes of the first certificate in `pem`.
fn pem_der(pem: &str) -> anyhow::Result<Vec<u8>> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(pem.as_bytes())
        .map_err(|e| anyhow::anyhow!("no PEM certificate: {e}"))?;
    Ok(der.as_ref().to_vec())
}

/// Why a certificate cannot be used now, or its end of validity.
fn check_dates(
    cert: &x509_parser::certificate::X509Certificate<'_>,
    now: SystemTime,
) -> Result<SystemTime, String> {
    let v = cert.validity();
    let to_time = |t: i64| {
        u64::try_from(t)
            .ok()
            .map(|s| SystemTime::UNIX_EPOCH + Duration::from_secs(s))
    };
    let not_before = to_time(v.not_before.timestamp()).unwrap_or(SystemTime::UNIX_EPOCH);
    let not_after = to_time(v.not_after.timestamp()).unwrap_or(SystemTime::UNIX_EPOCH);
    if not_after <= now {
        return Err(format!("expired ({})", v.not_after));
    }
    if not_after <= now + RENEW_BEFORE {
        return Err(format!("expires within a week ({})", v.not_after));
    }
    if not_before > now + DAY {
        return Err(format!("is not valid before {}", v.not_before));
    }
    Ok(not_after)
}

/// Checks an authority's certificate and key; its end of validity.
fn check_ca(cert_pem: &str, key: &KeyPair, now: SystemTime) -> Result<SystemTime, String> {
    let der = pem_der(cert_pem).map_err(|e| format!("cannot be read ({e})"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| format!("cannot be read ({e})"))?;
    if !cert.is_ca() {
        return Err("is no CA certificate".into());
    }
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err("does not fit its key".into());
    }
    check_dates(&cert, now)
}

/// Checks a server or router certificate: readable, fits its key, signed by the authority,
/// valid for a while.
fn check_leaf(cert_pem: &str, key: &KeyPair, ca_der: &[u8], now: SystemTime) -> Result<(), String> {
    let der = pem_der(cert_pem).map_err(|e| format!("cannot be read ({e})"))?;
    let (_, cert) =
        x509_parser::parse_x509_certificate(&der).map_err(|e| format!("cannot be read ({e})"))?;
    let (_, ca) = x509_parser::parse_x509_certificate(ca_der)
        .map_err(|e| format!("cannot be checked ({e})"))?;
    if cert.public_key().raw != key.subject_public_key_info().as_slice() {
        return Err("does not fit its key".into());
    }
    if cert.verify_signature(Some(ca.public_key())).is_err() {
        return Err("is not signed by the local CA".into());
    }
    check_dates(&cert, now).map(|_| ())
}

/// A new authority: (certificate PEM, key, end of validity).
fn new_ca(now: SystemTime) -> anyhow::Result<(String, KeyPair, SystemTime)> {
    let key = KeyPair::generate().context("making the local CA's key")?;
    let mut params = CertificateParams::new(Vec::<String>::new())?;
    let stamp = now
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_default();
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Tessera local CA {stamp}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Tessera");
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let not_after = now + CA_VALIDITY;
    params.not_before = (now - DAY).into();
    params.not_after = not_after.into();
    let cert = params
        .self_signed(&key)
        .context("making the local CA's certificate")?;
    Ok((cert.pem(), key, not_after))
}

/// A new certificate for 127.0.0.1, ::1 and localhost, signed by `issuer`, named
/// "Tessera local `name`".
fn new_leaf(
    name: &str,
    whose: &str,
    issuer: &Issuer<'_, &KeyPair>,
    now: SystemTime,
    ca_not_after: SystemTime,
) -> anyhow::Result<(String, KeyPair)> {
    let key = KeyPair::generate().with_context(|| format!("making the {whose} key"))?;
    let mut params = CertificateParams::new(vec!["localhost".to_string()])?;
    params.subject_alt_names.extend([
        SanType::IpAddress(std::net::Ipv4Addr::LOCALHOST.into()),
        SanType::IpAddress(std::net::Ipv6Addr::LOCALHOST.into()),
    ]);
    params
        .distinguished_name
        .push(DnType::CommonName, format!("Tessera local {name}"));
    params
        .distinguished_name
        .push(DnType::OrganizationName, "Tessera");
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![
        KeyUsagePurpose::DigitalSignature,
        KeyUsagePurpose::KeyEncipherment,
    ];
    params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    params.use_authority_key_identifier_extension = true;
    params.not_before = (now - DAY).into();
    params.not_after = (now + LEAF_VALIDITY).min(ca_not_after).into();
    let cert = params
        .signed_by(&key, issuer)
        .with_context(|| format!("making the {whose} certificate"))?;
    Ok((cert.pem(), key))
}

/// Writes `bytes` to `path` readable by this user only (0600): a new file beside it, then
/// renamed over it, so a reader never sees half a file or a key open to others.
fn write_private(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    let tmp = path.with_extension("pem.new");
    let _ = std::fs::remove_file(&tmp);
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(&tmp)
        .with_context(|| format!("creating {}", tmp.display()))?;
    f.write_all(bytes)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", tmp.display()))?;
    drop(f);
    std::fs::rename(&tmp, path).with_context(|| format!("writing {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn mode(p: &Path) -> u32 {
        std::fs::metadata(p).expect("metadata").permissions().mode() & 0o777
    }

    #[test]
    fn made_once_then_reused_and_remade_when_broken() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("tls");
        let (tls, notes) = ensure(&dir).expect("first");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("made a local CA"), "{notes:?}");
        assert_eq!(mode(&dir), 0o700);
        for f in [
            CA_CERT,
            CA_KEY,
            SERVER_CERT,
            SERVER_KEY,
            ROUTER_CERT,
            ROUTER_KEY,
        ] {
            assert_eq!(mode(&dir.join(f)), 0o600, "{f}");
        }
        let ca = std::fs::read(tls.ca_cert()).expect("ca");
        let server = std::fs::read(tls.server_cert()).expect("server");
        let router = std::fs::read(tls.router_cert()).expect("router");

        // Reused as they are.
        let (again, notes) = ensure(&dir).expect("second");
        assert!(notes.is_empty(), "{notes:?}");
        assert_eq!(again.ca_pem.as_bytes(), ca.as_slice());
        assert_eq!(std::fs::read(again.server_cert()).expect("s"), server);
        assert_eq!(std::fs::read(again.router_cert()).expect("r"), router);

        // A broken server certificate: made again from the same CA, said so.
        std::fs::write(tls.server_cert(), "garbage").expect("write");
        let (_, notes) = ensure(&dir).expect("third");
        assert_eq!(notes.len(), 1, "{notes:?}");
        assert!(notes[0].contains("MariaDB servers"), "{notes:?}");
        assert_eq!(std::fs::read(tls.ca_cert()).expect("ca"), ca);
        assert_ne!(std::fs::read(tls.server_cert()).expect("s"), server);
        assert_eq!(std::fs::read(tls.router_cert()).expect("r"), router);

        // A router certificate signed by another CA: made again.
        let other = tmp.path().join("other");
        let (o, _) = ensure(&other).expect("other");
        std::fs::copy(o.router_cert(), tls.router_cert()).expect("copy");
        std::fs::copy(o.router_key(), tls.router_key()).expect("copy");
        let (_, notes) = ensure(&dir).expect("fourth");
        assert!(
            notes.len() == 1 && notes[0].contains("not signed by the local CA"),
            "{notes:?}"
        );

        // A missing one: made again, said so.
        std::fs::remove_file(tls.router_cert()).expect("rm");
        std::fs::remove_file(tls.router_key()).expect("rm");
        let (_, notes) = ensure(&dir).expect("missing");
        assert!(
            notes.len() == 1
                && notes[0].contains("router's certificate")
                && notes[0].contains("is missing"),
            "{notes:?}"
        );

        // An unreadable CA key: a new CA, and new certificates under it.
        std::fs::write(dir.join(CA_KEY), "not a key").expect("write");
        let (fresh, notes) = ensure(&dir).expect("fifth");
        assert!(notes.len() == 1 && notes[0].contains("new CA"), "{notes:?}");
        assert_ne!(fresh.ca_pem.as_bytes(), ca.as_slice());
        let (_, notes) = ensure(&dir).expect("sixth");
        assert!(notes.is_empty(), "{notes:?}");
    }

    #[test]
    fn an_expired_ca_is_replaced() {
        let tmp = tempfile::tempdir().expect("tempdir");
        let dir = tmp.path().join("tls");
        ensure(&dir).expect("first");
        // A CA that ended yesterday, with its own key.
        let long_ago = SystemTime::now() - CA_VALIDITY - 2 * DAY;
        let (pem, key, _) = new_ca(long_ago).expect("old ca");
        write_private(&dir.join(CA_KEY), key.serialize_pem().as_bytes()).expect("key");
        write_private(&dir.join(CA_CERT), pem.as_bytes()).expect("cert");
        let (tls, notes) = ensure(&dir).expect("again");
        assert!(
            notes.len() == 1 && notes[0].contains("expired"),
            "{notes:?}"
        );
        assert_ne!(tls.ca_pem, pem);
    }

    /// The certificates verify the way clients verify them: rustls, against the CA, for
    /// 127.0.0.1 and localhost.
    #[test]
    fn certificates_verify_for_loopback() {
        use rustls::client::danger::ServerCertVerifier;
        use rustls::pki_types::pem::PemObject;
        use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
        let tmp = tempfile::tempdir().expect("tempdir");
        let (tls, _) = ensure(&tmp.path().join("tls")).expect("ensure");
        let mut roots = rustls::RootCertStore::empty();
        roots
            .add(CertificateDer::from_pem_file(tls.ca_cert()).expect("ca"))
            .expect("root");
        #[allow(deprecated)]
        let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
        let verifier =
            rustls::client::WebPkiServerVerifier::builder_with_provider(roots.into(), provider)
                .build()
                .expect("verifier");
        for cert in [tls.server_cert(), tls.router_cert()] {
            let der = CertificateDer::from_pem_file(&cert).expect("cert");
            for name in ["127.0.0.1", "localhost", "::1"] {
                verifier
                    .verify_server_cert(
                        &der,
                        &[],
                        &ServerName::try_from(name).expect("name"),
                        &[],
                        UnixTime::now(),
                    )
                    .unwrap_or_else(|e| panic!("{} for {name}: {e}", cert.display()));
            }
        }
    }
}

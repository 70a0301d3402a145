//! Dev-mode HTTPS: a certificate authority generated at start and a server certificate signed by
//! it, written to a private temporary directory that is removed when the server stops.
//!
//! The CA's private key lives only in memory, only while the server certificate is signed, and is
//! never written: the CA can sign nothing else, so trusting it trusts this one server only.
//! The directory (0700) holds the CA certificate (for clients) and the server's certificate and
//! key (for the listener), each 0600.

use anyhow::{anyhow, Context};
use coffer_api::TlsFiles;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose,
};
use std::fs::Permissions;
use std::io::Write;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};
use zeroize::Zeroizing;

/// The CA certificate clients are pointed at.
pub const CA_FILE: &str = "ca.pem";
/// The server certificate (leaf only; clients trust the CA).
pub const CERT_FILE: &str = "server.pem";
/// The server's private key (PKCS#8).
pub const KEY_FILE: &str = "server-key.pem";

/// How long the generated certificates are valid (a dev server rarely runs for days; a year
/// keeps a long-lived one working).
const VALIDITY: time::Duration = time::Duration::days(365);

/// The generated files of one dev server run; the directory is removed on drop or [`close`].
///
/// [`close`]: DevTls::close
pub struct DevTls {
    dir: tempfile::TempDir,
    ca_cert: PathBuf,
    tls: TlsFiles,
}

impl DevTls {
    /// Generate the CA and the server certificate for a listener on `listen_address`, and write
    /// them to a fresh private directory under the system's temporary directory (`TMPDIR`).
    ///
    /// The server certificate names 127.0.0.1, ::1 and localhost, and the listener's own IP
    /// address when it is a specific one (not 0.0.0.0 or ::).
    pub fn generate(listen_address: &str) -> anyhow::Result<Self> {
        let dir = tempfile::Builder::new()
            .prefix("coffer-dev-tls-")
            .permissions(Permissions::from_mode(0o700))
            .tempdir()
            .context("creating a temporary directory for the dev TLS certificates")?;
        // the umask may have taken bits away (never added any): make it exactly 0700
        std::fs::set_permissions(dir.path(), Permissions::from_mode(0o700))
            .with_context(|| format!("setting the mode of {}", dir.path().display()))?;
        if dir.path().to_str().is_none() {
            // the printed exports must name the path exactly
            return Err(anyhow!(
                "the temporary directory {} is not valid UTF-8; set TMPDIR to another directory",
                dir.path().display()
            ));
        }

        let now = time::OffsetDateTime::now_utc();
        let not_before = now - time::Duration::minutes(5);
        let not_after = now + VALIDITY;

        let ca_key = Zeroizing::new(KeyPair::generate().context("generating the dev CA key")?);
        let mut ca_params = CertificateParams::default();
        ca_params.distinguished_name =
            common_name(&format!("Coffer dev CA {}", now.unix_timestamp()));
        ca_params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
        ca_params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        ca_params.not_before = not_before;
        ca_params.not_after = not_after;
        let ca_cert = ca_params
            .self_signed(&*ca_key)
            .context("signing the dev CA certificate")?;

        let key = Zeroizing::new(KeyPair::generate().context("generating the dev server key")?);
        let mut params = CertificateParams::new(subject_alt_names(listen_address))
            .context("building the dev server certificate")?;
        params.distinguished_name = common_name("localhost");
        params.is_ca = IsCa::ExplicitNoCa;
        params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.use_authority_key_identifier_extension = true;
        params.not_before = not_before;
        params.not_after = not_after;
        let cert = {
            let issuer = Issuer::new(ca_params, &*ca_key);
            params
                .signed_by(&*key, &issuer)
                .context("signing the dev server certificate")?
        };
        // the CA key's work is done: wipe it before anything touches the disk
        drop(ca_key);

        let ca_path = dir.path().join(CA_FILE);
        let cert_path = dir.path().join(CERT_FILE);
        let key_path = dir.path().join(KEY_FILE);
        write_private(&ca_path, ca_cert.pem().as_bytes())?;
        write_private(&cert_path, cert.pem().as_bytes())?;
        let key_pem = private_key_pem(key.serialized_der());
        drop(key);
        write_private(&key_path, key_pem.as_bytes())?;
        Ok(DevTls {
            dir,
            ca_cert: ca_path,
            tls: TlsFiles {
                cert_file: cert_path,
                key_file: key_path,
                client_ca_file: None,
                require_client_cert: false,
            },
        })
    }

    /// The CA certificate's path (valid UTF-8, checked at generation).
    pub fn ca_cert(&self) -> &Path {
        &self.ca_cert
    }

    /// The listener's certificate and key files.
    pub fn tls_files(&self) -> TlsFiles {
        self.tls.clone()
    }

    /// Remove the directory and everything in it.
    pub fn close(self) -> std::io::Result<()> {
        self.dir.close()
    }
}

fn common_name(cn: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    dn
}

/// 127.0.0.1, ::1, localhost, and the listener's IP address when it is a specific one.
fn subject_alt_names(listen_address: &str) -> Vec<String> {
    let mut ips = vec![
        IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(Ipv6Addr::LOCALHOST),
    ];
    if let Ok(addr) = listen_address.parse::<SocketAddr>() {
        let ip = addr.ip();
        if !ip.is_unspecified() && !ips.contains(&ip) {
            ips.push(ip);
        }
    }
    let mut names: Vec<String> = ips.iter().map(IpAddr::to_string).collect();
    names.push("localhost".to_string());
    names
}

/// PEM ("PRIVATE KEY") of a PKCS#8 key, built in one buffer (never reallocated) wiped on drop.
fn private_key_pem(der: &[u8]) -> Zeroizing<String> {
    use base64::Engine;
    const BEGIN: &str = "-----BEGIN PRIVATE KEY-----\n";
    const END: &str = "-----END PRIVATE KEY-----\n";
    // 48 bytes encode to one 64-character line
    let lines = der.len().div_ceil(48);
    let mut pem = Zeroizing::new(String::with_capacity(BEGIN.len() + lines * 65 + END.len()));
    pem.push_str(BEGIN);
    for chunk in der.chunks(48) {
        base64::engine::general_purpose::STANDARD.encode_string(chunk, &mut pem);
        pem.push('\n');
    }
    pem.push_str(END);
    pem
}

/// Create `path` (which must not exist) readable and writable by the owner only, and write `data`.
fn write_private(path: &Path, data: &[u8]) -> anyhow::Result<()> {
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path)
        .with_context(|| format!("creating {}", path.display()))?;
    f.set_permissions(Permissions::from_mode(0o600))
        .with_context(|| format!("setting the mode of {}", path.display()))?;
    f.write_all(data)
        .and_then(|()| f.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sans_cover_loopback_and_a_specific_listener_ip() {
        assert_eq!(
            subject_alt_names("127.0.0.1:8443"),
            ["127.0.0.1", "::1", "localhost"]
        );
        assert_eq!(
            subject_alt_names("0.0.0.0:8443"),
            ["127.0.0.1", "::1", "localhost"]
        );
        assert_eq!(
            subject_alt_names("[::]:8443"),
            ["127.0.0.1", "::1", "localhost"]
        );
        assert_eq!(
            subject_alt_names("10.1.2.3:8443"),
            ["127.0.0.1", "::1", "10.1.2.3", "localhost"]
        );
        // a host name is not added (it is resolved at bind; the certificate names loopback only)
        assert_eq!(
            subject_alt_names("example.test:8443"),
            ["127.0.0.1", "::1", "localhost"]
        );
    }

    #[test]
    fn private_key_pem_round_trips() {
        let key = KeyPair::generate().unwrap();
        let pem = private_key_pem(key.serialized_der());
        assert_eq!(pem.as_str(), key.serialize_pem().replace("\r\n", "\n"));
        let back = KeyPair::from_pem(&pem).unwrap();
        assert_eq!(back.public_key_raw(), key.public_key_raw());
    }

    #[test]
    fn files_are_private_and_the_ca_key_is_not_written() {
        let tls = DevTls::generate("127.0.0.1:0").unwrap();
        let dir = tls.ca_cert().parent().unwrap().to_path_buf();
        let mode = |p: &Path| std::fs::metadata(p).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode(&dir), 0o700);
        let mut names = Vec::new();
        for e in std::fs::read_dir(&dir).unwrap() {
            let p = e.unwrap().path();
            assert_eq!(mode(&p), 0o600, "{}", p.display());
            names.push(p.file_name().unwrap().to_string_lossy().into_owned());
        }
        names.sort();
        assert_eq!(names, [CA_FILE, KEY_FILE, CERT_FILE]);
        // the only private key is the server's: its public key is in the server certificate
        // and not in the CA certificate
        let key_pem = std::fs::read_to_string(dir.join(KEY_FILE)).unwrap();
        let key = KeyPair::from_pem(&key_pem).unwrap();
        let pem_der = |f: &str| {
            use base64::Engine;
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            let b64: String = text.lines().filter(|l| !l.starts_with("-----")).collect();
            base64::engine::general_purpose::STANDARD
                .decode(b64)
                .unwrap()
        };
        let contains = |hay: &[u8], needle: &[u8]| hay.windows(needle.len()).any(|w| w == needle);
        assert!(contains(&pem_der(CERT_FILE), key.public_key_raw()));
        assert!(!contains(&pem_der(CA_FILE), key.public_key_raw()));
        for f in [CA_FILE, CERT_FILE] {
            let text = std::fs::read_to_string(dir.join(f)).unwrap();
            assert!(!text.contains("PRIVATE KEY"), "{f}");
        }
        tls.close().unwrap();
        assert!(!dir.exists());
    }
}

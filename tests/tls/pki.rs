//! Certificates made for one test, and a directory that renews them as the
//! kubelet renews a mounted Secret.

use std::path::{Path, PathBuf};

use rcgen::{
    BasicConstraints, CertificateParams, DnType, ExtendedKeyUsagePurpose, IsCa, Issuer, KeyPair,
    KeyUsagePurpose, SerialNumber,
};
use tokio_rustls::rustls::pki_types::CertificateDer;

/// A certificate authority made for one test.
pub struct Ca {
    pub der: CertificateDer<'static>,
    pub pem: String,
    pub issuer: Issuer<'static, KeyPair>,
}

/// A certificate and its key, as PEM, and the certificate as DER.
pub struct Leaf {
    pub cert: String,
    pub key: String,
    pub der: CertificateDer<'static>,
}

impl Ca {
    pub fn new(name: &str) -> Self {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.distinguished_name.push(DnType::CommonName, name);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        let key = KeyPair::generate().unwrap();
        let cert = params.self_signed(&key).unwrap();
        Self {
            der: cert.der().clone(),
            pem: cert.pem(),
            issuer: Issuer::new(params, key),
        }
    }

    /// A server certificate for 127.0.0.1 and localhost.
    pub fn server(&self, name: &str, serial: u64) -> Leaf {
        self.leaf(
            vec!["127.0.0.1".into(), "localhost".into()],
            name,
            serial,
            ExtendedKeyUsagePurpose::ServerAuth,
        )
    }

    pub fn client(&self, name: &str) -> Leaf {
        self.leaf(vec![], name, 100, ExtendedKeyUsagePurpose::ClientAuth)
    }

    pub fn leaf(
        &self,
        names: Vec<String>,
        name: &str,
        serial: u64,
        usage: ExtendedKeyUsagePurpose,
    ) -> Leaf {
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, name);
        params.serial_number = Some(SerialNumber::from(serial));
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, &self.issuer).unwrap();
        Leaf {
            cert: cert.pem(),
            key: key.serialize_pem(),
            der: cert.der().clone(),
        }
    }
}

/// A directory laid out as the kubelet mounts a `kubernetes.io/tls`
/// Secret: `tls.crt` → `..data/tls.crt`, `..data` → a timestamped
/// directory that a renewal replaces by swapping the symlink.
pub struct SecretDir {
    pub dir: tempfile::TempDir,
    pub version: u32,
}

impl SecretDir {
    pub fn new() -> Self {
        Self {
            dir: tempfile::tempdir().unwrap(),
            version: 0,
        }
    }

    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    /// Publishes a new version of the files, atomically, as the kubelet does.
    pub fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = format!("..2026_01_01_00_00_{:02}.{}", self.version, self.version);
        let data = self.path(&version);
        std::fs::create_dir(&data).unwrap();
        for (name, text) in files {
            std::fs::write(data.join(name), text).unwrap();
        }
        let tmp = self.path("..data_tmp");
        std::os::unix::fs::symlink(&version, &tmp).unwrap();
        std::fs::rename(&tmp, self.path("..data")).unwrap();
        for (name, _) in files {
            let link = self.path(name);
            if std::fs::symlink_metadata(&link).is_err() {
                std::os::unix::fs::symlink(Path::new("..data").join(name), &link).unwrap();
            }
        }
    }

    pub fn publish_server(&mut self, leaf: &Leaf, client_ca: Option<&Ca>) {
        let mut files = vec![
            ("tls.crt", leaf.cert.as_str()),
            ("tls.key", leaf.key.as_str()),
        ];
        if let Some(ca) = client_ca {
            files.push(("ca.crt", ca.pem.as_str()));
        }
        self.publish(&files);
    }

    pub fn server_args(&self, mutual: bool) -> Vec<String> {
        let mut args = vec![
            "--tls-cert".to_owned(),
            self.path("tls.crt").display().to_string(),
            "--tls-key".to_owned(),
            self.path("tls.key").display().to_string(),
        ];
        if mutual {
            args.push("--tls-client-ca".to_owned());
            args.push(self.path("ca.crt").display().to_string());
        }
        args
    }
}

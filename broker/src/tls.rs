//! TLS for the Kafka TLS listener (and the binary's HTTPS port): a certificate and key from
//! PEM files, optionally a CA that client certificates must chain to, reloaded when the
//! files change, and the subject CN of a verified client certificate.
//!
//! # Reload
//! [`ServerTls::watch`] looks at the files' modification times and sizes every
//! [`RELOAD_POLL`]; when one changed it builds a new configuration, which every connection
//! accepted afterwards uses (open connections keep theirs). A file that does not load (half
//! written, wrong key for the certificate, bad PEM) keeps the previous configuration and is
//! logged; the next change is tried again.
//!
//! Crypto is rustls with the aws-lc-rs provider, the one sqlx and reqwest already use.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, RwLock};
use std::time::{Duration, SystemTime};

use anyhow::Context;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::{RootCertStore, ServerConfig};
use tokio_util::sync::CancellationToken;

pub use tokio_rustls::server::TlsStream;
pub use tokio_rustls::TlsAcceptor;

/// How often the certificate files are looked at.
pub const RELOAD_POLL: Duration = Duration::from_secs(2);
/// How long a client has to finish the TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// The PEM files of a TLS listener.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TlsFiles {
    /// The certificate chain, leaf first.
    pub cert: PathBuf,
    /// Its private key (PKCS#8, PKCS#1 or SEC1).
    pub key: PathBuf,
    /// When set (Kafka listener only), clients must present a certificate issued by one
    /// of these CAs.
    pub client_ca: Option<PathBuf>,
}

/// What the files looked like when last loaded: (mtime, length) of each.
type Stamp = Vec<Option<(SystemTime, u64)>>;

/// A server configuration that follows its files.
pub struct ServerTls {
    files: TlsFiles,
    client_auth: bool,
    alpn: Vec<Vec<u8>>,
    current: RwLock<Arc<ServerConfig>>,
    stamp: Mutex<Stamp>,
}

impl ServerTls {
    /// Loads the files now (an error names the file). With `client_auth`, `files.client_ca`
    /// (when set) is required of every client; `alpn` is offered as is (empty: none).
    pub fn load(files: TlsFiles, client_auth: bool, alpn: Vec<Vec<u8>>) -> anyhow::Result<Self> {
        let stamp = stamp(&files, client_auth);
        let config = build(&files, client_auth, &alpn)?;
        Ok(ServerTls {
            files,
            client_auth,
            alpn,
            current: RwLock::new(Arc::new(config)),
            stamp: Mutex::new(stamp),
        })
    }

    /// The acceptor for a connection accepted now.
    pub fn acceptor(&self) -> TlsAcceptor {
        TlsAcceptor::from(
            self.current
                .read()
                .unwrap_or_else(|p| p.into_inner())
                .clone(),
        )
    }

    /// Reloads when the files changed since the last look; returns whether a new
    /// configuration is in use.
    pub fn reload_if_changed(&self) -> bool {
        let now = stamp(&self.files, self.client_auth);
        {
            let mut last = self.stamp.lock().unwrap_or_else(|p| p.into_inner());
            if *last == now {
                return false;
            }
            // Remembered even when the load fails: the error is logged once per change.
            *last = now;
        }
        match build(&self.files, self.client_auth, &self.alpn) {
            Ok(config) => {
                *self.current.write().unwrap_or_else(|p| p.into_inner()) = Arc::new(config);
                tracing::info!(cert = %self.files.cert.display(), "TLS certificate reloaded");
                true
            }
            Err(e) => {
                tracing::warn!(
                    cert = %self.files.cert.display(),
                    error = %format!("{e:#}"),
                    "TLS files changed but do not load; keeping the previous certificate"
                );
                false
            }
        }
    }

    /// Polls the files every [`RELOAD_POLL`] until cancelled.
    pub async fn watch(self: Arc<Self>, cancel: CancellationToken) {
        let mut tick = tokio::time::interval(RELOAD_POLL);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = tick.tick() => {}
                _ = cancel.cancelled() => return,
            }
            let me = self.clone();
            // File reads and key parsing are blocking work.
            let _ = tokio::task::spawn_blocking(move || me.reload_if_changed()).await;
        }
    }
}

fn stamp(files: &TlsFiles, client_auth: bool) -> Stamp {
    let mut paths: Vec<&Path> = vec![&files.cert, &files.key];
    if client_auth {
        paths.extend(files.client_ca.as_deref());
    }
    paths
        .into_iter()
        .map(|p| {
            std::fs::metadata(p)
                .ok()
                .and_then(|m| Some((m.modified().ok()?, m.len())))
        })
        .collect()
}

fn build(files: &TlsFiles, client_auth: bool, alpn: &[Vec<u8>]) -> anyhow::Result<ServerConfig> {
    let certs = read_certs(&files.cert)?;
    let key = PrivateKeyDer::from_pem_file(&files.key)
        .with_context(|| format!("reading a private key from {}", files.key.display()))?;
    let provider = Arc::new(rustls::crypto::aws_lc_rs::default_provider());
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .context("TLS protocol versions")?;
    let builder = match files.client_ca.as_deref().filter(|_| client_auth) {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in read_certs(ca)? {
                roots
                    .add(c)
                    .with_context(|| format!("a CA certificate in {}", ca.display()))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .build()
                .with_context(|| format!("client CA {}", ca.display()))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_single_cert(certs, key).with_context(|| {
        format!(
            "certificate {} with key {}",
            files.cert.display(),
            files.key.display()
        )
    })?;
    config.alpn_protocols = alpn.to_vec();
    Ok(config)
}

fn read_certs(path: &Path) -> anyhow::Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .with_context(|| format!("reading {}", path.display()))?
        .collect::<Result<Vec<_>, _>>()
        .with_context(|| format!("parsing certificates in {}", path.display()))?;
    anyhow::ensure!(!certs.is_empty(), "no certificate in {}", path.display());
    Ok(certs)
}

/// The subject CN of the client certificate of a TLS connection (the leaf), if it has
/// exactly one.
pub fn peer_common_name<IO>(stream: &TlsStream<IO>) -> Option<String> {
    let (_, conn) = stream.get_ref();
    let leaf = conn.peer_certificates()?.first()?;
    subject_common_name(leaf)
}

/// The subject common name of a DER certificate: `None` when it has none, more than one,
/// or one that is not a string. The certificate was verified by rustls before, so this
/// only walks the structure (RFC 5280: Certificate → TBSCertificate → subject).
pub fn subject_common_name(cert: &[u8]) -> Option<String> {
    const SEQUENCE: u8 = 0x30;
    const VERSION: u8 = 0xA0;
    const OID: u8 = 0x06;
    const CN: [u8; 3] = [0x55, 0x04, 0x03]; // 2.5.4.3
    let (tag, certificate, _) = der(cert)?;
    (tag == SEQUENCE).then_some(())?;
    let (tag, tbs, _) = der(certificate)?;
    (tag == SEQUENCE).then_some(())?;
    let mut rest = tbs;
    if der(rest)?.0 == VERSION {
        rest = der(rest)?.2;
    }
    // serialNumber, signature, issuer, validity, then subject.
    for _ in 0..4 {
        rest = der(rest)?.2;
    }
    let (tag, mut rdns, _) = der(rest)?;
    (tag == SEQUENCE).then_some(())?;
    let mut found = None;
    while !rdns.is_empty() {
        let (_, mut set, next) = der(rdns)?;
        rdns = next;
        while !set.is_empty() {
            let (_, attribute, next) = der(set)?;
            set = next;
            let (tag, oid, value) = der(attribute)?;
            if tag != OID || oid != CN {
                continue;
            }
            if found.is_some() {
                return None;
            }
            let (tag, bytes, _) = der(value)?;
            found = Some(match tag {
                // UTF8String, PrintableString, T61String (Latin-1 in practice), IA5String.
                0x0C | 0x13 | 0x16 => String::from_utf8(bytes.to_vec()).ok()?,
                0x14 => bytes.iter().map(|b| *b as char).collect(),
                // BMPString: UTF-16BE.
                0x1E => {
                    let units: Vec<u16> = bytes
                        .chunks_exact(2)
                        .map(|c| u16::from_be_bytes([c[0], c[1]]))
                        .collect();
                    String::from_utf16(&units).ok()?
                }
                _ => return None,
            });
        }
    }
    found
}

/// One DER element: (tag, contents, what follows).
fn der(input: &[u8]) -> Option<(u8, &[u8], &[u8])> {
    let (&tag, rest) = input.split_first()?;
    let (&first, rest) = rest.split_first()?;
    let (len, rest) = if first < 0x80 {
        (first as usize, rest)
    } else {
        let n = (first & 0x7f) as usize;
        if n == 0 || n > 4 || rest.len() < n {
            return None;
        }
        let len = rest[..n]
            .iter()
            .fold(0usize, |acc, b| (acc << 8) | *b as usize);
        (len, &rest[n..])
    };
    (rest.len() >= len).then(|| (tag, &rest[..len], &rest[len..]))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::process::Command;

    fn openssl(dir: &Path, args: &[&str]) {
        let out = Command::new("openssl")
            .args(args)
            .current_dir(dir)
            .output()
            .expect("the openssl CLI runs");
        assert!(
            out.status.success(),
            "openssl {args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
    }

    fn self_signed(dir: &Path, name: &str, subject: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = (format!("{name}.pem"), format!("{name}.key"));
        openssl(
            dir,
            &[
                "req",
                "-x509",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-days",
                "2",
                "-subj",
                subject,
                "-keyout",
                &key,
                "-out",
                &cert,
            ],
        );
        (dir.join(cert), dir.join(key))
    }

    fn leaf(path: &Path) -> Vec<u8> {
        read_certs(path).unwrap()[0].to_vec()
    }

    #[test]
    fn tls_common_name_is_read_from_the_subject() {
        let dir = tempfile::tempdir().unwrap();
        let (a, _) = self_signed(dir.path(), "a", "/O=Acme/CN=key-123/OU=x");
        assert_eq!(subject_common_name(&leaf(&a)).as_deref(), Some("key-123"));
        let (b, _) = self_signed(dir.path(), "b", "/O=Acme");
        assert_eq!(subject_common_name(&leaf(&b)), None, "no CN");
        let (c, _) = self_signed(dir.path(), "c", "/CN=one/CN=two");
        assert_eq!(
            subject_common_name(&leaf(&c)),
            None,
            "two CNs are ambiguous"
        );
        assert_eq!(subject_common_name(b"\x30\x82\xff"), None, "truncated");
        assert_eq!(subject_common_name(&[]), None);
    }

    #[test]
    fn tls_reload_keeps_the_old_certificate_when_the_new_files_are_bad() {
        let dir = tempfile::tempdir().unwrap();
        let (cert, key) = self_signed(dir.path(), "s", "/CN=localhost");
        let files = TlsFiles {
            cert: cert.clone(),
            key: key.clone(),
            client_ca: None,
        };
        let tls = ServerTls::load(files, false, vec![]).unwrap();
        assert!(!tls.reload_if_changed(), "nothing changed");
        let before = Arc::as_ptr(&tls.current.read().unwrap().clone());
        std::fs::write(&cert, "not a certificate").unwrap();
        assert!(!tls.reload_if_changed(), "a bad file is refused");
        assert_eq!(before, Arc::as_ptr(&tls.current.read().unwrap().clone()));
        let (c2, k2) = self_signed(dir.path(), "t", "/CN=localhost");
        std::fs::copy(c2, &cert).unwrap();
        std::fs::copy(k2, &key).unwrap();
        assert!(tls.reload_if_changed(), "good files are taken");
        assert_ne!(before, Arc::as_ptr(&tls.current.read().unwrap().clone()));
    }
}

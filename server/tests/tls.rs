//! TLS on the Kafka port and HTTPS, with certificates made by the openssl CLI: per-listener
//! metadata (every agent's TLS address to TLS clients), client certificates acting as API
//! keys, certificate reload without a restart, `--kafka-addr none`, and the HTTP timeouts
//! and connection cap (slow-loris headers and bodies, idle keep-alive).
//!
//! Kafka clients over TLS (kcat, kafka-python with SSL and SASL_SSL) are in
//! tests/python/test_tls.py; these tests speak raw frames through a rustls client.

mod common;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::{BufMut, Bytes, BytesMut};
use common::Server;
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DescribeClusterRequest,
    DescribeClusterResponse, FindCoordinatorRequest, FindCoordinatorResponse, MetadataRequest,
    MetadataResponse, RequestHeader, ResponseHeader, TopicName,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

// ---------------------------------------------------------------------------------------
// Certificates

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

/// A test CA in `dir` and the certificates it signs.
struct Pki {
    dir: PathBuf,
}

impl Pki {
    fn new(dir: &Path) -> Pki {
        let dir = dir.join("pki");
        std::fs::create_dir_all(&dir).unwrap();
        openssl(
            &dir,
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
                "/CN=Sluice test CA",
                "-keyout",
                "ca.key",
                "-out",
                "ca.pem",
                "-addext",
                "basicConstraints=critical,CA:TRUE",
                "-addext",
                "keyUsage=critical,keyCertSign,cRLSign",
            ],
        );
        Pki { dir }
    }

    fn ca(&self) -> PathBuf {
        self.dir.join("ca.pem")
    }

    /// `name.pem` and `name.key`, signed by the CA, for `cn` with the given extensions.
    fn issue(&self, name: &str, cn: &str, ext: &str) -> (PathBuf, PathBuf) {
        let (key, csr, pem, extfile) = (
            format!("{name}.key"),
            format!("{name}.csr"),
            format!("{name}.pem"),
            format!("{name}.ext"),
        );
        std::fs::write(self.dir.join(&extfile), ext).unwrap();
        openssl(
            &self.dir,
            &[
                "req",
                "-newkey",
                "ec",
                "-pkeyopt",
                "ec_paramgen_curve:P-256",
                "-nodes",
                "-subj",
                &format!("/CN={cn}"),
                "-keyout",
                &key,
                "-out",
                &csr,
            ],
        );
        openssl(
            &self.dir,
            &[
                "x509",
                "-req",
                "-in",
                &csr,
                "-CA",
                "ca.pem",
                "-CAkey",
                "ca.key",
                "-CAcreateserial",
                "-days",
                "2",
                "-out",
                &pem,
                "-extfile",
                &extfile,
            ],
        );
        (self.dir.join(pem), self.dir.join(key))
    }

    /// A server certificate for 127.0.0.1 and localhost.
    fn server(&self, name: &str) -> (PathBuf, PathBuf) {
        self.issue(
            name,
            "localhost",
            "basicConstraints=CA:FALSE\nsubjectAltName=IP:127.0.0.1,DNS:localhost\nextendedKeyUsage=serverAuth\n",
        )
    }

    /// A client certificate whose subject CN is `cn`.
    fn client(&self, name: &str, cn: &str) -> (PathBuf, PathBuf) {
        self.issue(
            name,
            cn,
            "basicConstraints=CA:FALSE\nextendedKeyUsage=clientAuth\n",
        )
    }
}

// ---------------------------------------------------------------------------------------
// A blocking rustls client

type Tls = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn client_config(ca: &Path, client: Option<&(PathBuf, PathBuf)>) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for c in CertificateDer::pem_file_iter(ca).unwrap() {
        roots.add(c.unwrap()).unwrap();
    }
    let builder = rustls::ClientConfig::builder_with_provider(Arc::new(
        rustls::crypto::aws_lc_rs::default_provider(),
    ))
    .with_safe_default_protocol_versions()
    .unwrap()
    .with_root_certificates(roots);
    Arc::new(match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(
                CertificateDer::pem_file_iter(cert)
                    .unwrap()
                    .map(|c| c.unwrap())
                    .collect(),
                PrivateKeyDer::from_pem_file(key).unwrap(),
            )
            .unwrap(),
        None => builder.with_no_client_auth(),
    })
}

/// Connects and completes the handshake (an error when the server refuses it).
fn tls_connect(addr: &str, config: Arc<rustls::ClientConfig>) -> std::io::Result<Tls> {
    let tcp = TcpStream::connect(addr)?;
    tcp.set_read_timeout(Some(Duration::from_secs(15)))?;
    let name = ServerName::try_from("127.0.0.1").unwrap().to_owned();
    let conn = rustls::ClientConnection::new(config, name).unwrap();
    let mut tls = rustls::StreamOwned::new(conn, tcp);
    while tls.conn.is_handshaking() {
        tls.conn.complete_io(&mut tls.sock)?;
    }
    Ok(tls)
}

/// The server's leaf certificate on a connection.
fn server_cert(tls: &Tls) -> Vec<u8> {
    tls.conn.peer_certificates().unwrap()[0].to_vec()
}

fn request<S: Read + Write>(
    s: &mut S,
    key: ApiKey,
    version: i16,
    body: &impl Encodable,
) -> std::io::Result<Bytes> {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(7)
        .with_client_id(Some(StrBytes::from_static_str("tls-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&buf)?;
    s.flush()?;
    let mut len = [0u8; 4];
    s.read_exact(&mut len)?;
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body)?;
    let mut resp = Bytes::from(body);
    let header = ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, 7);
    Ok(resp)
}

fn metadata<S: Read + Write>(s: &mut S) -> std::io::Result<MetadataResponse> {
    // Null topics: all of them.
    let all = MetadataRequest::default().with_topics(None);
    let mut b = request(s, ApiKey::Metadata, 12, &all)?;
    Ok(MetadataResponse::decode(&mut b, 12).unwrap())
}

/// (node id, host:port) of every broker in a Metadata answer.
fn brokers(m: &MetadataResponse) -> Vec<(i32, String)> {
    let mut v: Vec<(i32, String)> = m
        .brokers
        .iter()
        .map(|b| (b.node_id.0, format!("{}:{}", b.host.as_str(), b.port)))
        .collect();
    v.sort();
    v
}

fn topic_names(m: &MetadataResponse) -> Vec<String> {
    let mut v: Vec<String> = m
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    v.sort();
    v
}

fn create_topic<S: Read + Write>(s: &mut S, name: &str) -> i16 {
    let req = CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![CreatableTopic::default()
            .with_name(TopicName(StrBytes::from_string(name.to_string())))
            .with_num_partitions(1)
            .with_replication_factor(1)]);
    let mut b = request(s, ApiKey::CreateTopics, 5, &req).unwrap();
    CreateTopicsResponse::decode(&mut b, 5).unwrap().topics[0].error_code
}

fn tls_flags(cert: &Path, key: &Path) -> Vec<String> {
    vec![
        "--kafka-tls-addr".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
    ]
}

fn start(dir: &Path, flags: &[String]) -> Server {
    let flags: Vec<&str> = flags.iter().map(String::as_str).collect();
    Server::start(dir, &flags)
}

fn sluice(dir: &Path, args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(args)
        .arg("--data-dir")
        .arg(dir.join("data"))
        .output()
        .expect("sluice runs");
    assert!(
        out.status.success(),
        "{args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

fn new_key(dir: &Path, cluster: &str) -> String {
    let out = sluice(dir, &["api-keys", "create", "--cluster", cluster]);
    out.lines()
        .find(|l| l.contains("key id"))
        .and_then(|l| l.split_whitespace().last())
        .unwrap_or_else(|| panic!("no key id in {out}"))
        .to_string()
}

// ---------------------------------------------------------------------------------------
// Kafka over TLS

/// A client of the TLS listener is told the TLS address (Metadata, FindCoordinator,
/// DescribeCluster); a plaintext client the plaintext one, on the same agent.
#[test]
fn tls_listener_answers_with_tls_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let server = start(dir.path(), &tls_flags(&cert, &key));
    let tls_addr = server.kafka_tls.clone().expect("a kafka_tls= address");
    assert_ne!(tls_addr, server.kafka);

    let mut tls = tls_connect(&tls_addr, client_config(&pki.ca(), None)).unwrap();
    let over_tls = metadata(&mut tls).unwrap();
    assert_eq!(brokers(&over_tls).len(), 1);
    assert_eq!(brokers(&over_tls)[0].1, tls_addr);
    let mut plain = TcpStream::connect(&server.kafka).unwrap();
    assert_eq!(brokers(&metadata(&mut plain).unwrap())[0].1, server.kafka);

    let mut b = request(
        &mut tls,
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default()
            .with_key_type(0)
            .with_coordinator_keys(vec![StrBytes::from_static_str("g")]),
    )
    .unwrap();
    let c = &FindCoordinatorResponse::decode(&mut b, 4)
        .unwrap()
        .coordinators[0];
    assert_eq!(format!("{}:{}", c.host.as_str(), c.port), tls_addr);
    let mut b = request(
        &mut tls,
        ApiKey::DescribeCluster,
        0,
        &DescribeClusterRequest::default(),
    )
    .unwrap();
    let d = DescribeClusterResponse::decode(&mut b, 0).unwrap();
    assert_eq!(
        format!("{}:{}", d.brokers[0].host.as_str(), d.brokers[0].port),
        tls_addr
    );
    // Same data on both listeners (--kafka-auth none: both act in `default`).
    assert_eq!(create_topic(&mut tls, "over-tls"), 0);
    assert!(topic_names(&metadata(&mut plain).unwrap()).contains(&"over-tls".to_string()));

    // A plaintext Kafka request on the TLS port is not served.
    let mut wrong = TcpStream::connect(&tls_addr).unwrap();
    wrong
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    assert!(metadata(&mut wrong).is_err());
}

/// Every agent of the cluster publishes its TLS address in the agents table, so a TLS
/// client of one agent is given the other's TLS address; `--advertised-kafka-tls-addr`
/// is what is published.
#[test]
fn every_agent_is_named_by_its_tls_address() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let (db, bucket) = common::shared_stores(dir.path());
    let shared = |extra: &[&str]| {
        let mut f = tls_flags(&cert, &key);
        f.extend(
            [
                "--database-url",
                &db,
                "--bucket-url",
                &bucket,
                "--agent-session-timeout",
                "3s",
            ]
            .iter()
            .chain(extra)
            .map(|s| s.to_string()),
        );
        f
    };
    let a_dir = dir.path().join("a");
    let b_dir = dir.path().join("b");
    std::fs::create_dir_all(&a_dir).unwrap();
    std::fs::create_dir_all(&b_dir).unwrap();
    let a = start(&a_dir, &shared(&["--node-id", "1"]));
    let b = start(
        &b_dir,
        &shared(&[
            "--node-id",
            "2",
            "--advertised-kafka-tls-addr",
            "b.tls.example:19093",
        ]),
    );
    let a_tls = a.kafka_tls.clone().unwrap();
    let want_tls = vec![(1, a_tls.clone()), (2, "b.tls.example:19093".to_string())];
    let want_plain = vec![(1, a.kafka.clone()), (2, b.kafka.clone())];
    let deadline = Instant::now() + Duration::from_secs(20);
    let config = client_config(&pki.ca(), None);
    loop {
        let mut tls = tls_connect(&a_tls, config.clone()).unwrap();
        let got = brokers(&metadata(&mut tls).unwrap());
        let mut plain = TcpStream::connect(&a.kafka).unwrap();
        let got_plain = brokers(&metadata(&mut plain).unwrap());
        if got == want_tls && got_plain == want_plain {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "TLS metadata {got:?} (want {want_tls:?}), plaintext {got_plain:?} (want {want_plain:?})"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    drop(b);
}

/// A client that opens the TLS port and never finishes the handshake is dropped after
/// `tls::HANDSHAKE_TIMEOUT` (10 s), giving its connection slot back.
#[test]
fn a_stalled_tls_handshake_is_dropped() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let server = start(dir.path(), &tls_flags(&cert, &key));
    let mut s = TcpStream::connect(server.kafka_tls.clone().unwrap()).unwrap();
    // The first bytes of a ClientHello, then nothing.
    s.write_all(&[0x16, 0x03, 0x01]).unwrap();
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    let mut b = [0u8; 16];
    assert!(matches!(s.read(&mut b), Ok(0) | Err(_)));
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(9) && after < Duration::from_secs(15),
        "dropped after {after:?}"
    );
}

/// `--kafka-addr none`: only the TLS listener; the agent's one address is its TLS one.
#[test]
fn plaintext_listener_can_be_turned_off() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let mut flags = tls_flags(&cert, &key);
    flags.extend(["--kafka-addr".into(), "none".into()]);
    let server = start(dir.path(), &flags);
    assert_eq!(server.kafka, "none");
    let tls_addr = server.kafka_tls.clone().unwrap();
    let mut tls = tls_connect(&tls_addr, client_config(&pki.ca(), None)).unwrap();
    assert_eq!(brokers(&metadata(&mut tls).unwrap())[0].1, tls_addr);
}

/// With `--tls-client-ca`, a client certificate is required; one whose CN is a live key
/// acts as that key without SASL (in its cluster); any other must still use SASL with
/// `--kafka-auth sasl`, and acts in `default` with `none`.
#[test]
fn client_certificates_act_as_their_api_key() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let mut flags = tls_flags(&cert, &key);
    flags.extend([
        "--tls-client-ca".into(),
        pki.ca().display().to_string(),
        "--kafka-auth".into(),
        "sasl".into(),
    ]);
    let mut server = start(dir.path(), &flags);
    sluice(dir.path(), &["clusters", "create", "red"]);
    sluice(dir.path(), &["clusters", "create", "blue"]);
    let red = new_key(dir.path(), "red");
    let blue = new_key(dir.path(), "blue");
    let red_cert = pki.client("red", &red);
    let blue_cert = pki.client("blue", &blue);
    let stranger = pki.client("stranger", "not-a-key");
    let tls_addr = server.kafka_tls.clone().unwrap();

    // No certificate: the handshake is refused.
    let refused = tls_connect(&tls_addr, client_config(&pki.ca(), None))
        .and_then(|mut t| metadata(&mut t).map(|_| ()));
    assert!(
        refused.is_err(),
        "a client without a certificate is refused"
    );
    // A certificate from another CA: refused too.
    let other_ca = Pki::new(&dir.path().join("other"));
    let foreign = other_ca.client("foreign", &red);
    let refused = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&foreign)))
        .and_then(|mut t| metadata(&mut t).map(|_| ()));
    assert!(refused.is_err(), "a certificate of another CA is refused");

    // The key's certificate acts in its cluster, without SASL.
    let mut as_red = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&red_cert))).unwrap();
    assert_eq!(create_topic(&mut as_red, "red-only"), 0);
    assert!(topic_names(&metadata(&mut as_red).unwrap()).contains(&"red-only".to_string()));
    let mut as_blue = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&blue_cert))).unwrap();
    assert!(
        !topic_names(&metadata(&mut as_blue).unwrap()).contains(&"red-only".to_string()),
        "blue does not see red's topic"
    );
    // A certificate naming no key: SASL is still required (the request closes it).
    let mut unknown = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&stranger))).unwrap();
    assert!(metadata(&mut unknown).is_err(), "no SASL, no key: closed");
    assert!(server.log().contains("authenticated by client certificate"));

    // A revoked key's certificate no longer authenticates new connections.
    sluice(dir.path(), &["api-keys", "revoke", &blue]);
    std::thread::sleep(Duration::from_millis(2500));
    let mut revoked = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&blue_cert))).unwrap();
    assert!(
        metadata(&mut revoked).is_err(),
        "a revoked key's certificate must SASL"
    );

    // --kafka-auth none: a certificate naming no key acts in `default`.
    server.kill9();
    let flags: Vec<String> = flags[..flags.len() - 2].to_vec();
    let server = start(dir.path(), &flags);
    let tls_addr = server.kafka_tls.clone().unwrap();
    let mut unknown = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&stranger))).unwrap();
    assert_eq!(create_topic(&mut unknown, "in-default"), 0);
    let mut plain = TcpStream::connect(&server.kafka).unwrap();
    let default_topics = topic_names(&metadata(&mut plain).unwrap());
    assert!(default_topics.contains(&"in-default".to_string()));
    assert!(!default_topics.contains(&"red-only".to_string()));
    let mut as_red = tls_connect(&tls_addr, client_config(&pki.ca(), Some(&red_cert))).unwrap();
    assert_eq!(
        topic_names(&metadata(&mut as_red).unwrap()),
        vec!["red-only".to_string()],
        "a key's certificate acts in its cluster in either mode"
    );
}

/// Replacing the certificate files reaches new connections without a restart; files that
/// do not load keep the old certificate.
#[test]
fn certificates_reload_when_the_files_change() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (first_cert, first_key) = pki.server("first");
    let (second_cert, second_key) = pki.server("second");
    let live_cert = dir.path().join("live.pem");
    let live_key = dir.path().join("live.key");
    std::fs::copy(&first_cert, &live_cert).unwrap();
    std::fs::copy(&first_key, &live_key).unwrap();
    let mut flags = tls_flags(&live_cert, &live_key);
    flags.extend(["--https-addr".into(), "127.0.0.1:0".into()]);
    let server = start(dir.path(), &flags);
    let tls_addr = server.kafka_tls.clone().unwrap();
    let https = server.https.clone().unwrap();
    let config = client_config(&pki.ca(), None);
    let der = |p: &Path| {
        CertificateDer::pem_file_iter(p)
            .unwrap()
            .next()
            .unwrap()
            .unwrap()
            .to_vec()
    };
    let (first, second) = (der(&first_cert), der(&second_cert));
    let mut held = tls_connect(&tls_addr, config.clone()).unwrap();
    assert_eq!(server_cert(&held), first);

    // A broken key: the old certificate stays, and the log says why.
    std::fs::write(
        &live_key,
        "-----BEGIN PRIVATE KEY-----\nbm90IGEga2V5\n-----END PRIVATE KEY-----\n",
    )
    .unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    while !server.log().contains("keeping the previous certificate") {
        assert!(Instant::now() < deadline, "no log line about the bad key");
        std::thread::sleep(Duration::from_millis(200));
    }
    let mut still = tls_connect(&tls_addr, config.clone()).unwrap();
    assert_eq!(server_cert(&still), first);
    assert!(metadata(&mut still).is_ok());

    // New files: new connections (Kafka and HTTPS) get the new certificate.
    std::fs::copy(&second_cert, &live_cert).unwrap();
    std::fs::copy(&second_key, &live_key).unwrap();
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let kafka = server_cert(&tls_connect(&tls_addr, config.clone()).unwrap());
        let http = server_cert(&tls_connect(&https, config.clone()).unwrap());
        if kafka == second && http == second {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the new certificate was not taken within 15 s"
        );
        std::thread::sleep(Duration::from_millis(200));
    }
    // An open connection keeps working on its old session.
    assert!(metadata(&mut held).is_ok());
}

// ---------------------------------------------------------------------------------------
// HTTPS and the HTTP limits

fn curl(args: &[&str]) -> (bool, String) {
    let out = Command::new("curl")
        .args(["-sS", "--max-time", "20"])
        .args(args)
        .output()
        .expect("curl runs");
    (
        out.status.success(),
        String::from_utf8_lossy(&out.stdout).to_string() + &String::from_utf8_lossy(&out.stderr),
    )
}

/// `--https-addr` serves the same router (console, API, /metrics, /healthz).
#[test]
fn https_serves_the_console_api_and_metrics() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let flags = vec![
        "--https-addr".to_string(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
    ];
    let server = start(dir.path(), &flags);
    let https = server.https.clone().expect("an https= address");
    assert!(server.kafka_tls.is_none());
    let ca = pki.ca().display().to_string();
    let url = |p: &str| format!("https://{https}{p}");
    assert_eq!(
        curl(&["--cacert", &ca, &url("/healthz")]),
        (true, "ok\n".to_string())
    );
    let (ok, metrics) = curl(&["--cacert", &ca, &url("/metrics")]);
    assert!(ok && metrics.contains("sluice_"), "{metrics}");
    let (ok, page) = curl(&["--cacert", &ca, "-L", &url("/login")]);
    assert!(ok && page.contains("Log in"), "{page}");
    let (ok, status) = curl(&[
        "--cacert",
        &ca,
        "-o",
        "/dev/null",
        "-w",
        "%{http_code}",
        &url("/api/v1/clusters"),
    ]);
    assert!(
        ok && status.starts_with('4'),
        "the API answers (unauthenticated): {status}"
    );
    // Without the CA, curl refuses the certificate; plain HTTP on the HTTPS port fails.
    assert!(!curl(&[&url("/healthz")]).0);
    assert!(!curl(&[&format!("http://{https}/healthz")]).0);
}

/// Seconds until the server closes `s` (or answers and closes), reading whatever comes.
fn until_closed(s: &mut TcpStream, limit: Duration) -> Option<(Duration, String)> {
    let started = Instant::now();
    s.set_read_timeout(Some(Duration::from_millis(100)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while started.elapsed() < limit {
        match s.read(&mut buf) {
            Ok(0) => return Some((started.elapsed(), String::from_utf8_lossy(&got).into())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some((started.elapsed(), String::from_utf8_lossy(&got).into())),
        }
    }
    None
}

/// Sends `bytes` one a `gap` while the connection stays open; returns when it was closed
/// (answered or not), or None if it was still open after `limit`.
fn drip(
    s: &mut TcpStream,
    bytes: &[u8],
    gap: Duration,
    limit: Duration,
) -> Option<(Duration, String)> {
    let started = Instant::now();
    let mut got = Vec::new();
    s.set_read_timeout(Some(gap)).unwrap();
    let mut buf = [0u8; 4096];
    for b in bytes.iter().cycle() {
        if started.elapsed() >= limit {
            return None;
        }
        if s.write_all(&[*b]).is_err() {
            return Some((started.elapsed(), String::from_utf8_lossy(&got).into()));
        }
        match s.read(&mut buf) {
            Ok(0) => return Some((started.elapsed(), String::from_utf8_lossy(&got).into())),
            Ok(n) => got.extend_from_slice(&buf[..n]),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) => {}
            Err(_) => return Some((started.elapsed(), String::from_utf8_lossy(&got).into())),
        }
    }
    unreachable!("cycle never ends")
}

/// A header sent a byte at a time is cut off at `--http-header-timeout`; so is an idle
/// keep-alive connection; a body sent a byte at a time at `--http-body-timeout`.
#[test]
fn slow_http_headers_and_bodies_are_cut_off() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(
        dir.path(),
        &["--http-header-timeout", "1s", "--http-body-timeout", "2s"],
    );
    let gap = Duration::from_millis(150);

    // Slow-loris header: never finishes.
    let mut s = TcpStream::connect(&server.http).unwrap();
    let (after, _) = drip(
        &mut s,
        b"GET /healthz HTTP/1.1\r\nX-Slow: aaaaaaaa",
        gap,
        Duration::from_secs(10),
    )
    .expect("a dripping header is cut off");
    assert!(
        after >= Duration::from_millis(800) && after < Duration::from_secs(4),
        "header cut off after {after:?} (timeout 1 s)"
    );

    // A connection that sends nothing.
    let mut s = TcpStream::connect(&server.http).unwrap();
    let (after, _) =
        until_closed(&mut s, Duration::from_secs(10)).expect("a silent connection is closed");
    assert!(
        after < Duration::from_secs(4),
        "silent connection closed after {after:?}"
    );

    // Idle keep-alive: answered, then closed once idle for the header timeout.
    let mut s = TcpStream::connect(&server.http).unwrap();
    write!(s, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n").unwrap();
    let (after, got) = until_closed(&mut s, Duration::from_secs(10))
        .expect("an idle keep-alive connection is closed");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(
        after < Duration::from_secs(4),
        "idle connection closed after {after:?}"
    );

    // Slow-loris body on a route that reads its body (the log-in form).
    let mut s = TcpStream::connect(&server.http).unwrap();
    write!(
        s,
        "POST /login HTTP/1.1\r\nHost: x\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100000\r\n\r\n"
    )
    .unwrap();
    let (after, got) =
        drip(&mut s, b"email=a", gap, Duration::from_secs(12)).expect("a dripping body is cut off");
    assert!(
        after >= Duration::from_millis(1800) && after < Duration::from_secs(6),
        "body cut off after {after:?} (timeout 2 s): {got}"
    );

    // A normal request still works.
    assert_eq!(
        common::http_get(&server.http, "/healthz"),
        (200, "ok\n".to_string())
    );
}

/// The default header timeout is Kafka-proxy-like 30 s: a silent connection is gone
/// within 30 s (+ slack), not kept forever.
#[test]
fn default_header_timeout_is_30_seconds() {
    let dir = tempfile::tempdir().unwrap();
    let server = Server::start(dir.path(), &[]);
    let mut s = TcpStream::connect(&server.http).unwrap();
    s.write_all(b"GET /healthz HTTP/1.1\r\n").unwrap();
    let (after, _) = until_closed(&mut s, Duration::from_secs(40)).expect("closed within 40 s");
    assert!(
        after >= Duration::from_secs(29) && after < Duration::from_secs(35),
        "closed after {after:?}"
    );
}

/// Past `--http-max-connections`, new connections wait (in the listen backlog) and are
/// served as soon as a slot frees; slow-loris HTTPS is cut off like HTTP.
#[test]
fn http_connections_are_capped() {
    let dir = tempfile::tempdir().unwrap();
    let pki = Pki::new(dir.path());
    let (cert, key) = pki.server("server");
    let flags = vec![
        "--http-max-connections".to_string(),
        "2".into(),
        "--http-header-timeout".into(),
        "3s".into(),
        "--https-addr".into(),
        "127.0.0.1:0".into(),
        "--tls-cert".into(),
        cert.display().to_string(),
        "--tls-key".into(),
        key.display().to_string(),
    ];
    let server = start(dir.path(), &flags);
    let https = server.https.clone().unwrap();
    // Two idle connections, one on each port (the cap counts both).
    let idle_http = TcpStream::connect(&server.http).unwrap();
    let idle_https = tls_connect(&https, client_config(&pki.ca(), None)).unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let mut third = TcpStream::connect(&server.http).unwrap();
    write!(
        third,
        "GET /healthz HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    third
        .set_read_timeout(Some(Duration::from_millis(1000)))
        .unwrap();
    let mut buf = [0u8; 64];
    assert!(
        matches!(third.read(&mut buf), Err(ref e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut)),
        "the third connection waits while two are open"
    );
    drop(idle_http);
    let started = Instant::now();
    let (_, got) =
        until_closed(&mut third, Duration::from_secs(10)).expect("served once a slot frees");
    assert!(got.starts_with("HTTP/1.1 200"), "{got}");
    assert!(started.elapsed() < Duration::from_secs(3));
    // The idle HTTPS connection is cut off by the header timeout (3 s).
    let mut idle_https = idle_https;
    idle_https
        .sock
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut b = [0u8; 1];
    assert!(
        matches!(idle_https.read(&mut b), Ok(0) | Err(_)),
        "idle HTTPS closed"
    );
}

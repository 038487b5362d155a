//! Test harness: runs the real `sluice` binary on ephemeral ports and talks to it with real
//! clients (rdkafka) or raw frames.

#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::{ApiKey, RequestHeader, ResponseHeader};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::producer::FutureProducer;
use rdkafka::{Message, Offset, TopicPartitionList};

/// A running `sluice serve`; killed when dropped.
pub struct Server {
    child: Child,
    /// The plaintext Kafka listener ("none" when it is off).
    pub kafka: String,
    pub http: String,
    /// The Kafka TLS listener and the HTTPS port, when configured.
    pub kafka_tls: Option<String>,
    pub https: Option<String>,
    pub dir: PathBuf,
    args: Vec<String>,
}

impl Server {
    /// Starts a server whose data lives under `dir`, with extra flags.
    pub fn start(dir: &Path, extra: &[&str]) -> Server {
        let mut args: Vec<String> = vec![
            "serve".into(),
            "--data-dir".into(),
            dir.join("data").display().to_string(),
            "--http-addr".into(),
            "127.0.0.1:0".into(),
        ];
        // An ephemeral plaintext port, unless the test chooses (e.g. `none`).
        if !extra.contains(&"--kafka-addr") {
            args.extend(["--kafka-addr".into(), "127.0.0.1:0".into()]);
        }
        // A short batch timeout keeps tests fast, unless the test sets its own.
        if !extra.contains(&"--batch-timeout") {
            args.extend(["--batch-timeout".into(), "10ms".into()]);
        }
        args.extend(extra.iter().map(|s| s.to_string()));
        Self::spawn(dir, args)
    }

    fn spawn(dir: &Path, args: Vec<String>) -> Server {
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(dir.join("server.log"))
            .expect("test dir is writable");
        let mut child = Command::new(env!("CARGO_BIN_EXE_sluice"))
            .args(&args)
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .expect("the sluice binary starts");
        let stdout = child.stdout.take().expect("stdout is piped");
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let mut lines = BufReader::new(stdout).lines();
            if let Some(Ok(line)) = lines.next() {
                let _ = tx.send(line);
            }
            for _ in lines {}
        });
        let line = match rx.recv_timeout(Duration::from_secs(60)) {
            Ok(l) => l,
            Err(_) => {
                let _ = child.kill();
                let log = std::fs::read_to_string(dir.join("server.log")).unwrap_or_default();
                panic!("sluice did not report ready within 60s; log:\n{log}");
            }
        };
        let optional = |name: &str| {
            line.split_whitespace()
                .find_map(|w| w.strip_prefix(name))
                .map(str::to_string)
        };
        let field = |name: &str| optional(name).unwrap_or_else(|| panic!("no {name} in '{line}'"));
        Server {
            kafka: field("kafka="),
            http: field("http="),
            kafka_tls: optional("kafka_tls="),
            https: optional("https="),
            child,
            dir: dir.to_path_buf(),
            args,
        }
    }

    /// SIGKILL: no shutdown code runs.
    pub fn kill9(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// SIGTERM, then waits up to `limit` for the process to exit; returns how long it took,
    /// or None when it was still running (it is then killed).
    pub fn terminate(&mut self, limit: Duration) -> Option<Duration> {
        let started = std::time::Instant::now();
        let sent = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(sent.success(), "SIGTERM was delivered");
        while started.elapsed() < limit {
            if let Ok(Some(_)) = self.child.try_wait() {
                return Some(started.elapsed());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        self.kill9();
        None
    }

    /// Starts again with the same flags and data (new ports).
    pub fn restart(&mut self) {
        self.kill9();
        self.start_again();
    }

    /// Starts again with the same flags and data after the process has exited.
    pub fn start_again(&mut self) {
        // Dropping the old value kills an already-reaped child: harmless.
        *self = Self::spawn(&self.dir, self.args.clone());
    }

    pub fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    pub fn log(&self) -> String {
        std::fs::read_to_string(self.dir.join("server.log")).unwrap_or_default()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn producer(bootstrap: &str, extra: &[(&str, &str)]) -> FutureProducer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("linger.ms", "5")
        .set("message.timeout.ms", "30000");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("producer config is valid")
}

pub fn consumer(bootstrap: &str, extra: &[(&str, &str)]) -> BaseConsumer {
    let mut cfg = ClientConfig::new();
    cfg.set("bootstrap.servers", bootstrap)
        .set("group.id", "sluice-tests-unused")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false");
    for (k, v) in extra {
        cfg.set(*k, *v);
    }
    cfg.create().expect("consumer config is valid")
}

/// A record as read back.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Got {
    pub partition: i32,
    pub offset: i64,
    pub key: Option<Vec<u8>>,
    pub value: Option<Vec<u8>>,
    pub headers: Vec<(String, Option<Vec<u8>>)>,
}

/// Assigns `partitions` of `topic` from `start` and reads until `want` records arrived.
pub fn consume(
    c: &BaseConsumer,
    topic: &str,
    partitions: &[(i32, Offset)],
    want: usize,
    timeout: Duration,
) -> Vec<Got> {
    use rdkafka::message::Headers;
    let mut tpl = TopicPartitionList::new();
    for (p, o) in partitions {
        tpl.add_partition_offset(topic, *p, *o)
            .expect("valid offset");
    }
    c.assign(&tpl).expect("assign works");
    let deadline = std::time::Instant::now() + timeout;
    let mut out = Vec::new();
    while out.len() < want && std::time::Instant::now() < deadline {
        match c.poll(Duration::from_millis(200)) {
            Some(Ok(m)) => out.push(Got {
                partition: m.partition(),
                offset: m.offset(),
                key: m.key().map(|k| k.to_vec()),
                value: m.payload().map(|v| v.to_vec()),
                headers: m
                    .headers()
                    .map(|h| {
                        h.iter()
                            .map(|x| (x.key.to_string(), x.value.map(|v| v.to_vec())))
                            .collect()
                    })
                    .unwrap_or_default(),
            }),
            Some(Err(e)) => panic!("consumer error: {e}"),
            None => {}
        }
    }
    out
}

/// Sends one request over a raw socket and returns the response body (after the header).
pub fn raw_request(addr: &str, key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
    let mut s = TcpStream::connect(addr).expect("connects");
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    raw_on(&mut s, key, version, body)
}

pub fn raw_on(s: &mut TcpStream, key: ApiKey, version: i16, body: &impl Encodable) -> Bytes {
    send_frame(s, key, version, 99, body);
    read_response(s, key, version, 99)
}

/// Writes one request frame.
pub fn send_frame(
    s: &mut TcpStream,
    key: ApiKey,
    version: i16,
    correlation_id: i32,
    body: &impl Encodable,
) {
    let mut buf = BytesMut::new();
    buf.put_i32(0);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(correlation_id)
        .with_client_id(Some(StrBytes::from_static_str("raw-test")))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    s.write_all(&buf).expect("request written");
}

/// Reads one response frame and checks its correlation id; returns the body.
pub fn read_response(s: &mut TcpStream, key: ApiKey, version: i16, correlation_id: i32) -> Bytes {
    let mut resp = Bytes::from(read_frame(s));
    let header = ResponseHeader::decode(&mut resp, key.response_header_version(version)).unwrap();
    assert_eq!(header.correlation_id, correlation_id);
    resp
}

pub fn decode<T: Decodable>(mut b: Bytes, version: i16) -> T {
    T::decode(&mut b, version).expect("response decodes")
}

/// Whether the peer closed the connection (read returns 0 or an error) within 10 s.
pub fn closed_by_peer(s: &mut TcpStream) -> bool {
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_))
}

pub fn get_i16(b: &mut Bytes) -> i16 {
    b.get_i16()
}

/// A plain HTTP/1.1 GET: (status, body).
pub fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut s = TcpStream::connect(addr).unwrap();
    write!(
        s,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    let status = out.split_whitespace().nth(1).unwrap().parse().unwrap();
    let body = out
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_string())
        .unwrap_or_default();
    (status, body)
}

/// The value of a metric series whose labels include every `labels` pair.
pub fn metric(addr: &str, name: &str, labels: &[&str]) -> Option<f64> {
    let (_, body) = http_get(addr, "/metrics");
    body.lines()
        .filter(|l| l.starts_with(&format!("{name}{{")))
        .find(|l| labels.iter().all(|x| l.contains(x)))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
}

/// Writes a hand-encoded request payload with its length prefix.
pub fn send_payload(s: &mut TcpStream, payload: &[u8]) {
    s.write_all(&(payload.len() as i32).to_be_bytes())
        .expect("length written");
    s.write_all(payload).expect("payload written");
}

/// Reads one response frame (without its length prefix).
pub fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).expect("response length");
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).expect("response body");
    body
}

/// The metadata database and bucket a test cluster shares: a fresh Postgres database on
/// `SLUICE_TEST_POSTGRES_URL`'s server when it is set (CI sets it), else a SQLite file in
/// `dir`; the S3 bucket of `SLUICE_TEST_S3_URL` under a fresh prefix when that is set,
/// else a `file://` directory in `dir`. Returns (database url, bucket url).
pub fn shared_stores(dir: &Path) -> (String, String) {
    let tag = uuid::Uuid::new_v4().simple().to_string();
    let db = test_database(dir);
    let bucket = match std::env::var("SLUICE_TEST_S3_URL") {
        Ok(url) => match url.split_once('?') {
            Some((head, query)) => format!("{}/cluster-{tag}?{query}", head.trim_end_matches('/')),
            None => format!("{}/cluster-{tag}", url.trim_end_matches('/')),
        },
        Err(_) => format!("file://{}", dir.join("bucket").display()),
    };
    (db, bucket)
}

/// The metadata database of a test agent: a fresh Postgres database when
/// `SLUICE_TEST_POSTGRES_URL` is set, else a SQLite file in `dir`.
pub fn test_database(dir: &Path) -> String {
    match std::env::var("SLUICE_TEST_POSTGRES_URL") {
        Ok(base) => {
            let tag = uuid::Uuid::new_v4().simple().to_string();
            fresh_postgres(&base, &format!("t_{}", &tag[..12]))
        }
        Err(_) => format!("sqlite://{}", dir.join("meta.db").display()),
    }
}

/// Creates database `name` on `base`'s server and returns its url.
fn fresh_postgres(base: &str, name: &str) -> String {
    use sqlx::{Connection, Executor};
    let (head, query) = match base.split_once('?') {
        Some((h, q)) => (h, format!("?{q}")),
        None => (base, String::new()),
    };
    let (server, _) = head
        .rsplit_once('/')
        .expect("SLUICE_TEST_POSTGRES_URL ends in /DATABASE");
    // On a thread of its own: callers may be inside a runtime already.
    let (base_url, create) = (base.to_string(), format!("CREATE DATABASE \"{name}\""));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        rt.block_on(async {
            let mut admin = sqlx::PgConnection::connect(&base_url)
                .await
                .expect("SLUICE_TEST_POSTGRES_URL is reachable");
            admin
                .execute(create.as_str())
                .await
                .expect("a test database can be created");
        })
    })
    .join()
    .expect("creating the test database");
    format!("{server}/{name}{query}")
}

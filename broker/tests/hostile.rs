//! Attacks on the Kafka listener, one test per finding of the security review: each
//! reproduces the attack against an in-process agent and bounds what it achieves (memory
//! growth, stall, time a socket is held) with numbers in the assertions.
//!
//! The tests run one at a time (a process-wide lock), so that one test's memory does not
//! count in another's resident-size measurement.

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, CreateTopicsRequest, CreateTopicsResponse, GroupId,
    JoinGroupRequest, JoinGroupResponse, RequestHeader, ResponseHeader, SaslAuthenticateRequest,
    SaslAuthenticateResponse, SaslHandshakeRequest, SaslHandshakeResponse, TopicName,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use tokio::sync::Mutex;

use common::{produce_frame, read_produce_response, start};

static ONE_AT_A_TIME: Mutex<()> = Mutex::const_new(());

const MIB: u64 = 1 << 20;

/// This process's resident memory, in bytes.
fn rss() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let kb: u64 = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .and_then(|l| l.split_whitespace().nth(1))
        .and_then(|v| v.parse().ok())
        .unwrap();
    kb * 1024
}

/// A request frame (length prefix included) with an explicit client id.
fn frame(key: ApiKey, version: i16, corr: i32, client_id: &str, body: &impl Encodable) -> Vec<u8> {
    let mut buf = BytesMut::new();
    buf.extend_from_slice(&[0; 4]);
    RequestHeader::default()
        .with_request_api_key(key as i16)
        .with_request_api_version(version)
        .with_correlation_id(corr)
        .with_client_id(Some(StrBytes::from_string(client_id.to_string())))
        .encode(&mut buf, key.request_header_version(version))
        .unwrap();
    body.encode(&mut buf, version).unwrap();
    let len = (buf.len() - 4) as i32;
    buf[..4].copy_from_slice(&len.to_be_bytes());
    buf.to_vec()
}

/// The first 8 bytes of a frame that claims `len` bytes: length, api key, version.
fn bare_header(key: ApiKey, version: i16, len: i32) -> Vec<u8> {
    let mut b = len.to_be_bytes().to_vec();
    b.extend_from_slice(&(key as i16).to_be_bytes());
    b.extend_from_slice(&version.to_be_bytes());
    b
}

fn read_body<T: Decodable>(s: &mut TcpStream, key: ApiKey, version: i16) -> T {
    let mut len = [0u8; 4];
    s.read_exact(&mut len).unwrap();
    let mut body = vec![0u8; i32::from_be_bytes(len) as usize];
    s.read_exact(&mut body).unwrap();
    let mut b = Bytes::from(body);
    ResponseHeader::decode(&mut b, key.response_header_version(version)).unwrap();
    T::decode(&mut b, version).unwrap()
}

/// Whether the agent closes the socket within `limit` (a read returns 0 or fails).
fn closed_within(s: &mut TcpStream, limit: Duration) -> bool {
    s.set_read_timeout(Some(limit)).unwrap();
    let mut b = [0u8; 1];
    matches!(s.read(&mut b), Ok(0) | Err(_)) && {
        // A timeout is an error too: tell them apart.
        s.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

/// Authenticates with SASL PLAIN; Err(code) when refused.
fn sasl_plain(s: &mut TcpStream, user: &str, password: &str) -> Result<(), i16> {
    s.write_all(&frame(
        ApiKey::SaslHandshake,
        1,
        1,
        "t",
        &SaslHandshakeRequest::default().with_mechanism(StrBytes::from_static_str("PLAIN")),
    ))
    .unwrap();
    let hs: SaslHandshakeResponse = read_body(s, ApiKey::SaslHandshake, 1);
    assert_eq!(hs.error_code, 0);
    let token = format!("\0{user}\0{password}");
    s.write_all(&frame(
        ApiKey::SaslAuthenticate,
        2,
        2,
        "t",
        &SaslAuthenticateRequest::default().with_auth_bytes(Bytes::from(token)),
    ))
    .unwrap();
    let a: SaslAuthenticateResponse = read_body(s, ApiKey::SaslAuthenticate, 2);
    if a.error_code == 0 {
        Ok(())
    } else {
        Err(a.error_code)
    }
}

fn connect(addr: SocketAddr) -> TcpStream {
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    s
}

/// Findings 1 and 2 before authentication: unauthenticated sockets that declare huge
/// Produce or ListGroups frames take no gate bytes, stall no one, cost no memory, and are
/// closed at once; only ApiVersions and SASL frames of at most 512 KiB are read.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unauthenticated_sockets_cannot_stall_producers_or_hold_memory() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |c| {
        c.kafka_auth = broker::config::KafkaAuth::Sasl;
        c.produce_inflight_bytes = 64 * MIB;
    })
    .await;
    let addr = running.kafka_addr;
    let meta = running.broker.meta().clone();
    let cluster = meta.create_virtual_cluster("org", "tenant").await.unwrap();
    let (key, secret) = meta.create_api_key(&cluster.id, "k", "test").await.unwrap();
    let before = rss();

    // Two sockets declaring 100 MiB Produce frames (this stalled every producer before).
    let mut stallers: Vec<TcpStream> = (0..2)
        .map(|_| {
            let mut s = connect(addr);
            s.write_all(&bare_header(ApiKey::Produce, 9, 100 << 20))
                .unwrap();
            s
        })
        .collect();
    for s in &mut stallers {
        assert!(
            closed_within(s, Duration::from_secs(2)),
            "a Produce frame before authentication closes the connection"
        );
    }
    assert_eq!(running.broker.produce_gate().inflight(), 0);

    // Ten 38 MiB ListGroups frames and an oversized ApiVersions, before authentication.
    for _ in 0..10 {
        let mut s = connect(addr);
        s.write_all(&bare_header(ApiKey::ListGroups, 4, 38 << 20))
            .unwrap();
        // The agent closes the socket; our writes fail part way.
        let _ = s.write_all(&vec![1u8; 8 << 20]);
        assert!(closed_within(&mut s, Duration::from_secs(2)));
    }
    let mut big_versions = connect(addr);
    big_versions
        .write_all(&bare_header(ApiKey::ApiVersions, 3, 1 << 20))
        .unwrap();
    assert!(
        closed_within(&mut big_versions, Duration::from_secs(2)),
        "frames over --sasl-max-receive-bytes before authentication close the connection"
    );

    // A legitimate producer is unaffected.
    let mut p = connect(addr);
    p.write_all(&frame(
        ApiKey::ApiVersions,
        3,
        1,
        "t",
        &ApiVersionsRequest::default(),
    ))
    .unwrap();
    let mut len = [0u8; 4];
    p.read_exact(&mut len).unwrap();
    let mut skip = vec![0u8; i32::from_be_bytes(len) as usize];
    p.read_exact(&mut skip).unwrap();
    sasl_plain(&mut p, &key.id, &secret).unwrap();
    let started = Instant::now();
    p.write_all(&produce_frame("orders", 1, 100, 0)).unwrap();
    let r = read_produce_response(&mut p);
    assert_eq!(r.responses[0].partition_responses[0].error_code, 0);
    assert!(started.elapsed() < Duration::from_secs(2));

    let grown = rss().saturating_sub(before);
    assert!(
        grown < 32 * MIB,
        "unauthenticated frames grew memory by {} MiB",
        grown / MIB
    );
}

/// Finding 2 after authentication and finding 4: every request's bytes count against a
/// memory gate (ten stalled 100 MiB ListGroups frames hold one frame's bytes, not ten),
/// and a frame whose bytes stop arriving is dropped 30 s after its first byte.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn stalled_frames_hold_one_gate_and_time_out() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |c| c.request_inflight_bytes = 16 * MIB).await;
    let addr = running.kafka_addr;
    let gate = running.broker.request_gate().clone();
    let before = rss();
    let started = Instant::now();
    let mut sockets: Vec<TcpStream> = Vec::new();
    for _ in 0..10 {
        let mut s = connect(addr);
        s.write_all(&bare_header(ApiKey::ListGroups, 4, 100 << 20))
            .unwrap();
        sockets.push(s);
    }
    // Only the frame holding the gate is read. Offer every socket 6 MiB (the waiting ones
    // take what fits in the kernel's buffers, which are not this process's memory).
    let deadline = Instant::now() + Duration::from_secs(5);
    while gate.waiting() < 9 && Instant::now() < deadline {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    assert_eq!(
        gate.waiting(),
        9,
        "one frame is read, nine wait for the gate"
    );
    let chunk = vec![0u8; 64 << 10];
    for s in &mut sockets {
        s.set_nonblocking(true).unwrap();
        let mut sent = 0;
        while sent < 6 << 20 {
            match s.write(&chunk) {
                Ok(n) => sent += n,
                Err(_) => break,
            }
        }
    }
    tokio::time::sleep(Duration::from_secs(1)).await;
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 48 * MIB,
        "ten stalled 100 MiB frames grew memory by {} MiB",
        grown / MIB
    );
    // The frame being read is dropped 30 s after its first byte (it waited for no gate).
    let closed_at = loop {
        let mut b = [0u8; 1];
        let closed = sockets.iter_mut().any(
            |s| !matches!(s.read(&mut b), Err(e) if e.kind() == std::io::ErrorKind::WouldBlock),
        );
        if closed || started.elapsed() > Duration::from_secs(45) {
            break started.elapsed();
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    };
    assert!(
        (Duration::from_secs(29)..Duration::from_secs(36)).contains(&closed_at),
        "a stalled frame was held for {closed_at:?}"
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(gate.waiting() <= 8, "the next frame got the gate");
}

/// Finding 4: idle sockets are closed after --connections-max-idle, so they cannot keep a
/// legitimate client out at --max-connections.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn idle_sockets_do_not_lock_clients_out() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |c| {
        c.max_connections = 5;
        c.connections_max_idle = Duration::from_secs(2);
    })
    .await;
    let addr = running.kafka_addr;
    let mut idle: Vec<TcpStream> = (0..5).map(|_| connect(addr)).collect();
    tokio::time::sleep(Duration::from_millis(300)).await;
    let started = Instant::now();
    let mut client = connect(addr);
    client
        .write_all(&frame(
            ApiKey::ApiVersions,
            3,
            1,
            "t",
            &ApiVersionsRequest::default(),
        ))
        .unwrap();
    let mut len = [0u8; 4];
    client.read_exact(&mut len).unwrap();
    let waited = started.elapsed();
    assert!(
        waited < Duration::from_secs(5),
        "a client waited {waited:?} behind idle sockets"
    );
    for s in &mut idle {
        assert!(closed_within(s, Duration::from_secs(1)));
    }
}

/// Finding 5: closing a key or deleting its cluster closes its open connections within
/// 10 s (here the change is made behind the agent's back, as another agent or the console
/// of another process would); writes into a deleted cluster are refused meanwhile; "last
/// used" follows an open connection.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn revocation_reaches_open_connections() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |c| {
        c.kafka_auth = broker::config::KafkaAuth::Sasl;
    })
    .await;
    running
        .broker
        .credentials()
        .set_touch_every(Duration::from_secs(1));
    let addr = running.kafka_addr;
    let meta = running.broker.meta().clone();
    let cluster = meta.create_virtual_cluster("org", "tenant").await.unwrap();
    let (k1, s1) = meta.create_api_key(&cluster.id, "a", "t").await.unwrap();
    let (k2, s2) = meta.create_api_key(&cluster.id, "b", "t").await.unwrap();
    let mut c1 = connect(addr);
    sasl_plain(&mut c1, &k1.id, &s1).unwrap();
    let mut c2 = connect(addr);
    sasl_plain(&mut c2, &k2.id, &s2).unwrap();
    for c in [&mut c1, &mut c2] {
        c.write_all(&produce_frame("orders", 1, 10, 0)).unwrap();
        assert_eq!(
            read_produce_response(c).responses[0].partition_responses[0].error_code,
            0
        );
    }
    let first_use = meta.api_keys(&cluster.id).await.unwrap()[0]
        .last_used_at_ms
        .unwrap();

    // "last used" moves while the connection is open and in use.
    tokio::time::sleep(Duration::from_millis(6500)).await;
    c1.write_all(&produce_frame("orders", 1, 10, 0)).unwrap();
    read_produce_response(&mut c1);
    let later = meta
        .api_keys(&cluster.id)
        .await
        .unwrap()
        .into_iter()
        .find(|k| k.id == k1.id)
        .unwrap()
        .last_used_at_ms
        .unwrap();
    assert!(
        later > first_use,
        "last used stayed at the first authentication"
    );

    // Revoke k1: its connection closes within 10 s.
    meta.revoke_api_key(&k1.id).await.unwrap();
    let revoked = Instant::now();
    assert!(closed_within(&mut c1, Duration::from_secs(10)));
    assert!(revoked.elapsed() < Duration::from_secs(10));

    // Delete the cluster: CreateTopics on the still-open connection is refused ...
    meta.delete_virtual_cluster(&cluster.id).await.unwrap();
    let deleted = Instant::now();
    c2.write_all(&frame(
        ApiKey::CreateTopics,
        5,
        7,
        "t",
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("after-delete")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
    ))
    .unwrap();
    // (The read panics when the agent already closed the connection: also a refusal.)
    if let Ok(r) = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        read_body::<CreateTopicsResponse>(&mut c2, ApiKey::CreateTopics, 5)
    })) {
        assert_ne!(r.topics[0].error_code, 0, "a topic in a deleted cluster");
    }
    assert!(meta
        .topic(&cluster.id, "after-delete")
        .await
        .unwrap()
        .is_none());
    // ... and the connection closes within 10 s.
    assert!(closed_within(&mut c2, Duration::from_secs(10)));
    assert!(deleted.elapsed() < Duration::from_secs(10));
}

/// Finding 6: a flood of JoinGroup requests with empty member ids and 32 KB client ids
/// (20,000, half into one group, half into fresh groups) holds bounded memory; one group
/// admits group.max.size members, pending ones included.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn join_floods_are_bounded() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |c| c.group_max_size = 1000).await;
    let addr = running.kafka_addr;
    let before = rss();
    let client_id = "c".repeat(32_000);
    let join = |group: String| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(StrBytes::from_string(group)))
            .with_session_timeout_ms(30_000)
            .with_rebalance_timeout_ms(30_000)
            .with_protocol_type(StrBytes::from_static_str("consumer"))
            .with_protocols(vec![JoinGroupRequestProtocol::default()
                .with_name(StrBytes::from_static_str("range"))
                .with_metadata(Bytes::from_static(b"m"))])
    };
    let mut s = connect(addr);
    let (mut required, mut full) = (0, 0);
    for chunk in 0..200 {
        let mut batch = Vec::new();
        for i in 0..100 {
            let n = chunk * 100 + i;
            let group = if n % 2 == 0 {
                "crowded".to_string()
            } else {
                format!("g-{n}")
            };
            batch.extend(frame(ApiKey::JoinGroup, 5, n, &client_id, &join(group)));
        }
        s.write_all(&batch).unwrap();
        for _ in 0..100 {
            let r: JoinGroupResponse = read_body(&mut s, ApiKey::JoinGroup, 5);
            match r.error_code {
                79 => {
                    required += 1;
                    assert!(
                        r.member_id.len() < 160,
                        "member id of {}",
                        r.member_id.len()
                    );
                }
                81 => full += 1,
                other => panic!("unexpected JoinGroup error {other}"),
            }
        }
    }
    assert_eq!(full, 10_000 - 1000, "the crowded group stops at 1000");
    assert_eq!(required, 10_000 + 1000);
    drop(s);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let grown = rss().saturating_sub(before);
    assert!(
        grown < 64 * MIB,
        "20,000 joins held {} MiB after the client left",
        grown / MIB
    );
}

/// Finding 8 (SASL): wrong secrets are answered later and later from one address, but
/// the key is never locked: its owner still authenticates at once.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn wrong_secrets_are_slowed_not_locked() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |c| {
        c.kafka_auth = broker::config::KafkaAuth::Sasl;
    })
    .await;
    let addr = running.kafka_addr;
    let meta = running.broker.meta().clone();
    let cluster = meta.create_virtual_cluster("org", "tenant").await.unwrap();
    let (key, secret) = meta.create_api_key(&cluster.id, "a", "t").await.unwrap();
    let started = Instant::now();
    for _ in 0..4 {
        let mut s = connect(addr);
        assert_eq!(sasl_plain(&mut s, &key.id, "wrong"), Err(58));
    }
    let spent = started.elapsed();
    assert!(
        spent >= Duration::from_millis(1500),
        "four wrong secrets took only {spent:?}"
    );
    let started = Instant::now();
    let mut s = connect(addr);
    sasl_plain(&mut s, &key.id, &secret).unwrap();
    assert!(started.elapsed() < Duration::from_secs(1));
}

/// Finding 8 (Kafka port): a commit of i64::MIN (it made lag -9.2e18) is refused and stores
/// nothing; a client cannot create Kafka's internal `__consumer_offsets` topic.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nonsense_commits_and_internal_topic_names_are_refused() {
    let _serial = ONE_AT_A_TIME.lock().await;
    let dir = tempfile::tempdir().unwrap();
    let running = start(dir.path(), |_| {}).await;
    let mut s = connect(running.kafka_addr);
    s.write_all(&produce_frame("orders", 3, 10, 0)).unwrap();
    assert_eq!(
        read_produce_response(&mut s).responses[0].partition_responses[0].error_code,
        0
    );
    let commit = |offset: i64| {
        OffsetCommitRequest::default()
            .with_group_id(GroupId(StrBytes::from_static_str("lagging")))
            .with_generation_id_or_member_epoch(-1)
            .with_topics(vec![OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("orders")))
                .with_partitions(vec![OffsetCommitRequestPartition::default()
                    .with_partition_index(0)
                    .with_committed_offset(offset)])])
    };
    for (offset, code) in [(i64::MIN, 1), (-1, 1), (2, 0)] {
        s.write_all(&frame(ApiKey::OffsetCommit, 8, 3, "t", &commit(offset)))
            .unwrap();
        let r: OffsetCommitResponse = read_body(&mut s, ApiKey::OffsetCommit, 8);
        assert_eq!(
            r.topics[0].partitions[0].error_code, code,
            "commit of {offset}"
        );
    }
    let stored = running
        .broker
        .meta()
        .group_offsets("default", "lagging")
        .await
        .unwrap();
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].offset, 2, "the refused commits stored nothing");

    s.write_all(&frame(
        ApiKey::CreateTopics,
        5,
        4,
        "t",
        &CreateTopicsRequest::default().with_topics(vec![
            kafka_protocol::messages::create_topics_request::CreatableTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("__consumer_offsets")))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]),
    ))
    .unwrap();
    let r: CreateTopicsResponse = read_body(&mut s, ApiKey::CreateTopics, 5);
    assert_eq!(r.topics[0].error_code, 17, "INVALID_TOPIC_EXCEPTION");
    assert!(r.topics[0]
        .error_message
        .as_deref()
        .is_some_and(|m| m.contains("internal")));
}

//! The Kafka listener: accepts connections and moves frames; no protocol logic lives here.
//!
//! Each connection has a reader and a writer. The reader checks a frame's length before
//! reading its payload, decodes it, and starts handling it; requests run concurrently but
//! their responses are written strictly in request order, as Kafka requires. The number of
//! requests in flight per connection is bounded, so a client that pipelines without limit
//! stops being read (TCP pushes back) instead of growing memory.
//!
//! A frame that is malformed, oversized or of an unknown API closes the connection with a
//! log line; nothing a client sends can panic the process.

use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use futures::future::BoxFuture;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{self, Sasl, Step};
use crate::config::KafkaAuth;
use crate::gate::Permit;
use crate::handlers::{self, Reply};
use crate::protocol::{self, Decoded};
use crate::session::Session;
use crate::state::Broker;

/// How long the listener waits, once it stops accepting, for in-flight requests.
pub const DRAIN_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);

pub async fn accept_loop(listener: TcpListener, broker: Arc<Broker>, cancel: CancellationToken) {
    let tracker = tokio_util::task::TaskTracker::new();
    let slots = Arc::new(Semaphore::new(broker.config.max_connections));
    loop {
        // Accept only while the produce gate has room and a connection slot is free: an
        // overloaded agent lets new clients wait in the listen backlog.
        let slot = tokio::select! {
            s = wait_for_capacity(&broker, &slots) => s,
            _ = cancel.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = listener.accept() => a,
            _ = cancel.cancelled() => break,
        };
        match accepted {
            Ok((socket, peer)) => {
                let _ = socket.set_nodelay(true);
                let broker = broker.clone();
                let cancel = cancel.clone();
                let session = Session::unauthenticated(peer.to_string());
                tracker.spawn(
                    async move {
                        broker.metrics.open_connections.inc();
                        serve_connection(socket, broker.clone(), session, cancel).await;
                        broker.metrics.open_connections.dec();
                        drop(slot);
                    }
                    .instrument(tracing::debug_span!("conn", %peer)),
                );
            }
            Err(e) => {
                // Out of file descriptors and the like: log, pause briefly, keep serving.
                tracing::warn!(error = %e, "accepting a connection failed");
                tokio::time::sleep(std::time::Duration::from_millis(50)).await;
            }
        }
    }
    // Stop accepting; the connections stop reading and finish what they already read.
    drop(listener);
    tracker.close();
    if tokio::time::timeout(DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "in-flight requests still running after the drain timeout; not waiting for them"
        );
    }
}

/// Waits until a new connection may be accepted: the produce gate has room (new clients
/// mostly bring produce data) and a connection slot is free. A closed fetch gate only
/// delays fetches: it must not keep producers from connecting.
async fn wait_for_capacity(broker: &Broker, slots: &Arc<Semaphore>) -> OwnedSemaphorePermit {
    if !broker.produce_gate.is_open() || slots.available_permits() == 0 {
        broker.metrics.accept_paused.set(1);
    }
    broker.produce_gate.wait_open().await;
    let slot = slots
        .clone()
        .acquire_owned()
        .await
        .expect("the connection semaphore is never closed");
    broker.metrics.accept_paused.set(0);
    slot
}

/// A response slot in request order: the spawned handler yields the encoded frame with the
/// gate bytes it holds until the frame is written, or None for requests that get no
/// response (acks=0 produce). Dropping a slot (closed connection) releases its bytes.
type Pending = JoinHandle<Option<(Bytes, Option<Permit>)>>;

async fn serve_connection(
    socket: TcpStream,
    broker: Arc<Broker>,
    mut session: Session,
    cancel: CancellationToken,
) {
    let require_auth = broker.config.kafka_auth == KafkaAuth::Sasl;
    let mut sasl = Sasl::default();
    // Accepted just as the gate closed: read nothing until it opens again.
    tokio::select! {
        _ = broker.produce_gate.wait_open() => {}
        _ = cancel.cancelled() => return,
    }
    let (mut rd, wr) = socket.into_split();
    let (tx, mut rx) = mpsc::channel::<Pending>(broker.config.max_inflight_per_connection);
    let writer = tokio::spawn(async move {
        let mut wr = BufWriter::with_capacity(64 << 10, wr);
        loop {
            // Flush whatever is buffered before waiting: on a busy pipelined connection the
            // queue is never empty, and answers must not sit in the buffer meanwhile.
            let pending = match rx.try_recv() {
                Ok(p) => p,
                Err(_) => {
                    if wr.flush().await.is_err() {
                        break;
                    }
                    match rx.recv().await {
                        Some(p) => p,
                        None => break,
                    }
                }
            };
            if !pending.is_finished() && wr.flush().await.is_err() {
                break;
            }
            let (frame, permit) = match pending.await {
                Ok(Some(done)) => done,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "request handler failed; closing connection");
                    break;
                }
            };
            let res = wr.write_all(&frame).await;
            // Written to the socket (or failed): its bytes no longer count as in flight.
            drop(permit);
            if res.is_err() {
                break;
            }
        }
        let _ = wr.flush().await;
    });

    let max = broker.config.max_frame_bytes;
    // Client quotas: a throttled answer mutes the connection (crate::quota).
    let mute = Arc::new(crate::quota::Mute::default());
    loop {
        tokio::select! {
            _ = mute.wait() => {}
            _ = cancel.cancelled() => break,
        }
        let mut len_buf = [0u8; 4];
        let read = tokio::select! {
            r = rd.read_exact(&mut len_buf) => r,
            _ = cancel.cancelled() => break,
        };
        if read.is_err() {
            break; // closed by the client
        }
        let len = match protocol::check_frame_len(i32::from_be_bytes(len_buf), max) {
            Ok(len) => len,
            Err(e) => {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(peer = %session.peer, error = %e, "closing connection: bad frame length");
                break;
            }
        };
        // Read the api key and version first: a produce request waits for room in the
        // produce gate *before* its payload leaves the socket, so TCP pushes back.
        let mut head = [0u8; 4];
        if rd.read_exact(&mut head).await.is_err() {
            break;
        }
        let produce_permit = if i16::from_be_bytes([head[0], head[1]]) == ApiKey::Produce as i16 {
            tokio::select! {
                p = broker.produce_gate.acquire(len as u64) => Some(p),
                _ = cancel.cancelled() => break,
            }
        } else {
            None
        };
        // One allocation of exactly the frame's size, filled straight from the socket (no
        // zeroing first). A buffer kept per connection would hold on to its largest frame
        // for the connection's lifetime; the allocator recycles freed frames anyway.
        let mut frame = BytesMut::with_capacity(len);
        frame.extend_from_slice(&head);
        if read_exact_into(&mut rd, &mut frame, len - 4).await.is_err() {
            tracing::debug!(peer = %session.peer, "connection closed mid-frame");
            break;
        }
        let frame = frame.freeze();
        let decoded = match protocol::decode_request(frame.clone()) {
            Ok(d) => d,
            Err(e) => {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(
                    peer = %session.peer,
                    correlation_id = protocol::peek_correlation_id(&frame),
                    error = %e,
                    "closing connection: request cannot be served"
                );
                break;
            }
        };
        let pending: Pending = match decoded {
            Decoded::ApiVersionsTooNew { correlation_id } => {
                let frame = protocol::encode_api_versions_too_new(correlation_id);
                tokio::spawn(async move { Some((frame, None)) })
            }
            Decoded::Request {
                header,
                api_key,
                body,
            } if matches!(
                body,
                RequestKind::SaslHandshake(_) | RequestKind::SaslAuthenticate(_)
            ) =>
            {
                // Authentication changes the connection's state, so it runs here, in order,
                // before the next request is read.
                let version = header.request_api_version;
                let (response, keep_open) =
                    authenticate(&broker, &mut sasl, &mut session, body).await;
                let pending = match protocol::encode_response(
                    header.correlation_id,
                    api_key,
                    version,
                    &response,
                ) {
                    Ok(frame) => {
                        let frame = frame.freeze();
                        tokio::spawn(async move { Some((frame, None)) })
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "encoding sasl response failed");
                        break;
                    }
                };
                if tx.send(pending).await.is_err() || !keep_open {
                    break; // a failed authentication closes the connection after its answer
                }
                continue;
            }
            Decoded::Request { api_key, .. }
                // Authentication is required, or was begun and not finished: nothing but
                // ApiVersions is served until it completes.
                if (require_auth || !matches!(sasl, Sasl::Start))
                    && sasl.principal().is_none()
                    && api_key != ApiKey::ApiVersions =>
            {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(peer = %session.peer, api = api_name(api_key), "closing connection: request before SASL authentication");
                break;
            }
            Decoded::Request {
                header,
                api_key,
                body,
            } => {
                let version = header.request_api_version;
                let correlation_id = header.correlation_id;
                let started = Instant::now();
                let name = api_name(api_key);
                broker.metrics.requests.with_label_values(&[name]).inc();
                let span = tracing::debug_span!(
                    "request",
                    api = name,
                    version,
                    correlation_id,
                    client_id = header.client_id.as_deref().unwrap_or(""),
                    cluster = %session.cluster,
                );
                // The first stage runs here, in arrival order (produce appends happen in
                // it, so a connection's batches keep their order); the rest runs detached.
                let respond: BoxFuture<'static, Option<Reply>> =
                    handlers::dispatch(&broker, &session, &header, body)
                        .instrument(span.clone())
                        .await;
                let broker = broker.clone();
                let mute = mute.clone();
                tokio::spawn(
                    async move {
                        let Reply { response, permit, throttle } = respond.await?;
                        if let Some(t) = throttle {
                            mute.mute_for(t.time);
                            if t.delay {
                                tokio::time::sleep(t.time).await;
                            }
                        }
                        let permit = permit.or(produce_permit);
                        broker
                            .metrics
                            .request_seconds
                            .with_label_values(&[name])
                            .observe(started.elapsed().as_secs_f64());
                        match protocol::encode_response(correlation_id, api_key, version, &response)
                        {
                            Ok(buf) => {
                                // The records now live only in the frame.
                                let mut permit = permit;
                                if let Some(p) = permit.as_mut() {
                                    p.shrink_to(buf.len() as u64);
                                }
                                Some((buf.freeze(), permit))
                            }
                            Err(e) => {
                                tracing::error!(error = %e, "encoding response failed");
                                None
                            }
                        }
                    }
                    .instrument(span),
                )
            }
        };
        if tx.send(pending).await.is_err() {
            break; // writer gone: the socket failed
        }
    }
    drop(tx);
    let _ = writer.await;
}

/// Runs one SaslHandshake or SaslAuthenticate; returns the response and whether the
/// connection stays open.
async fn authenticate(
    broker: &Broker,
    sasl: &mut Sasl,
    session: &mut Session,
    body: RequestKind,
) -> (ResponseKind, bool) {
    match body {
        RequestKind::SaslHandshake(req) => {
            let code = sasl.handshake(req.mechanism.as_str()).err().unwrap_or(0);
            let response = SaslHandshakeResponse::default()
                .with_error_code(code)
                .with_mechanisms(
                    auth::MECHANISMS
                        .iter()
                        .map(|m| StrBytes::from_static_str(m))
                        .collect(),
                );
            (ResponseKind::SaslHandshake(response), code == 0)
        }
        RequestKind::SaslAuthenticate(req) => {
            match sasl.step(&req.auth_bytes, &broker.credentials).await {
                Ok(Step::Continue(bytes)) => (
                    ResponseKind::SaslAuthenticate(
                        SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                    ),
                    true,
                ),
                Ok(Step::Done(bytes, principal)) => {
                    tracing::info!(peer = %session.peer, key = %principal.key_id, cluster = %principal.cluster, "authenticated");
                    session.cluster = principal.cluster;
                    session.key_id = Some(principal.key_id);
                    (
                        ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default().with_auth_bytes(bytes.into()),
                        ),
                        true,
                    )
                }
                Err(failure) => {
                    tracing::info!(peer = %session.peer, code = failure.code, "sasl authentication refused");
                    (
                        ResponseKind::SaslAuthenticate(
                            SaslAuthenticateResponse::default()
                                .with_error_code(failure.code)
                                .with_error_message(Some(StrBytes::from_string(failure.message))),
                        ),
                        false,
                    )
                }
            }
        }
        _ => unreachable!("only called for SASL requests"),
    }
}

/// Appends exactly `n` bytes from `rd` to `buf` (without zero-filling first).
async fn read_exact_into<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut BytesMut,
    n: usize,
) -> std::io::Result<()> {
    let mut limited = rd.take(n as u64);
    let target = buf.len() + n;
    while buf.len() < target {
        if limited.read_buf(buf).await? == 0 {
            return Err(std::io::ErrorKind::UnexpectedEof.into());
        }
    }
    Ok(())
}

fn api_name(key: ApiKey) -> &'static str {
    match key {
        ApiKey::Produce => "produce",
        ApiKey::Fetch => "fetch",
        ApiKey::ListOffsets => "list_offsets",
        ApiKey::Metadata => "metadata",
        ApiKey::ApiVersions => "api_versions",
        ApiKey::CreateTopics => "create_topics",
        ApiKey::DeleteTopics => "delete_topics",
        ApiKey::InitProducerId => "init_producer_id",
        ApiKey::DescribeConfigs => "describe_configs",
        ApiKey::AlterConfigs => "alter_configs",
        ApiKey::CreatePartitions => "create_partitions",
        ApiKey::IncrementalAlterConfigs => "incremental_alter_configs",
        ApiKey::DescribeCluster => "describe_cluster",
        ApiKey::FindCoordinator => "find_coordinator",
        ApiKey::JoinGroup => "join_group",
        ApiKey::SyncGroup => "sync_group",
        ApiKey::Heartbeat => "heartbeat",
        ApiKey::LeaveGroup => "leave_group",
        ApiKey::OffsetCommit => "offset_commit",
        ApiKey::OffsetFetch => "offset_fetch",
        ApiKey::ListGroups => "list_groups",
        ApiKey::DescribeGroups => "describe_groups",
        ApiKey::DeleteGroups => "delete_groups",
        ApiKey::OffsetDelete => "offset_delete",
        ApiKey::CreateAcls => "create_acls",
        ApiKey::DescribeAcls => "describe_acls",
        ApiKey::DeleteAcls => "delete_acls",
        ApiKey::DescribeClientQuotas => "describe_client_quotas",
        ApiKey::AlterClientQuotas => "alter_client_quotas",
        _ => "other",
    }
}

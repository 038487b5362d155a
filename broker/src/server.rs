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

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use futures::future::BoxFuture;
use kafka_protocol::messages::{
    ApiKey, RequestKind, ResponseKind, SaslAuthenticateResponse, SaslHandshakeResponse,
};
use kafka_protocol::protocol::StrBytes;
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt, BufWriter};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, OwnedSemaphorePermit, Semaphore};
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::Instrument;

use crate::auth::{self, Principal, Sasl, Step};
use crate::config::KafkaAuth;
use crate::gate::Permit;
use crate::handlers::{self, Reply};
use crate::protocol::{self, Decoded, Frame, Splices};
use crate::session::{Listener, Session};
use crate::state::Broker;
use crate::tls::{self, ServerTls};

/// How long the listener waits, once it stops accepting, for in-flight requests.
pub const DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Requests other than produce are charged this many times their frame size in the
/// request gate: decoding turns a frame into structures up to about this much bigger (a
/// one-byte string element of an array becomes a 32-byte handle).
pub const DECODE_FACTOR: u64 = 16;

/// The bytes of a frame must arrive within this long of its first byte (time spent
/// waiting for room in a gate is ours and not counted).
pub const FRAME_TIMEOUT: Duration = Duration::from_secs(30);

/// With `--kafka-auth sasl`, a connection must authenticate within this long.
pub const AUTH_TIMEOUT: Duration = Duration::from_secs(30);

/// How often an authenticated connection checks that its key is still live and its
/// cluster still exists (the key cache adds up to [`auth::CACHE_TTL`]): a revoked key's
/// connections close within 10 s.
pub const REVALIDATE_EVERY: Duration = Duration::from_secs(5);

/// What an unauthenticated connection may send when authentication is required.
const ALLOWED_BEFORE_AUTH: [ApiKey; 3] = [
    ApiKey::ApiVersions,
    ApiKey::SaslHandshake,
    ApiKey::SaslAuthenticate,
];

/// Serves the Kafka listeners: plaintext and/or TLS, sharing one cap on connections.
pub async fn accept_loop(
    plain: Option<TcpListener>,
    tls: Option<(TcpListener, Arc<ServerTls>)>,
    broker: Arc<Broker>,
    cancel: CancellationToken,
) {
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
            a = accept_on(plain.as_ref()) => a.map(|(s, p)| (s, p, None)),
            a = accept_on(tls.as_ref().map(|(l, _)| l)) => {
                // The certificate of the moment: a reload reaches new connections only.
                a.map(|(s, p)| (s, p, tls.as_ref().map(|(_, t)| t.acceptor())))
            }
            _ = cancel.cancelled() => break,
        };
        match accepted {
            Ok((socket, peer, acceptor)) => {
                let _ = socket.set_nodelay(true);
                let broker = broker.clone();
                let cancel = cancel.clone();
                let session = Session::unauthenticated(peer.to_string());
                tracker.spawn(
                    async move {
                        broker.metrics.open_connections.inc();
                        match acceptor {
                            None => {
                                serve_connection(
                                    socket,
                                    broker.clone(),
                                    session,
                                    Sasl::default(),
                                    cancel,
                                )
                                .await
                            }
                            Some(acceptor) => {
                                serve_tls(socket, acceptor, broker.clone(), session, cancel).await
                            }
                        }
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
    drop(plain);
    drop(tls);
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

/// The next connection on `listener`; never, without one.
async fn accept_on(
    listener: Option<&TcpListener>,
) -> std::io::Result<(TcpStream, std::net::SocketAddr)> {
    match listener {
        Some(l) => l.accept().await,
        None => std::future::pending().await,
    }
}

/// A connection of the TLS listener: the handshake (bounded by
/// [`tls::HANDSHAKE_TIMEOUT`]), then the client certificate's key if it names a live one,
/// then the same service as plaintext.
async fn serve_tls(
    socket: TcpStream,
    acceptor: tls::TlsAcceptor,
    broker: Arc<Broker>,
    session: Session,
    cancel: CancellationToken,
) {
    let handshake = tokio::time::timeout(tls::HANDSHAKE_TIMEOUT, acceptor.accept(socket));
    let stream = tokio::select! {
        r = handshake => match r {
            Ok(Ok(stream)) => stream,
            Ok(Err(e)) => {
                tracing::info!(peer = %session.peer, error = %e, "TLS handshake failed");
                return;
            }
            Err(_) => {
                tracing::info!(peer = %session.peer, "TLS handshake timed out");
                return;
            }
        },
        _ = cancel.cancelled() => return,
    };
    let mut session = session.on(Listener::Tls);
    let sasl = match certificate_principal(&broker, tls::peer_common_name(&stream), &session).await
    {
        Ok(Some(principal)) => {
            session.cluster = principal.cluster.clone();
            session.key_id = Some(principal.key_id.clone());
            Sasl::Certificate(principal)
        }
        Ok(None) => Sasl::default(),
        Err(()) => return,
    };
    serve_connection(stream, broker, session, sasl, cancel).await;
}

/// The API key a verified client certificate names by its subject CN, if that is a live
/// key: the connection then acts as that key without SASL. Any other certificate leaves
/// the connection to SASL (or to `default` with `--kafka-auth none`). A failed look-up
/// closes the connection rather than let it fall back to `default`.
async fn certificate_principal(
    broker: &Broker,
    common_name: Option<String>,
    session: &Session,
) -> Result<Option<Principal>, ()> {
    let Some(cn) = common_name else {
        return Ok(None);
    };
    match broker.credentials.get(&cn).await {
        Ok(Some(cred)) => {
            broker.credentials.used(&cred.key_id).await;
            tracing::info!(peer = %session.peer, key = %cred.key_id, cluster = %cred.cluster_id, "authenticated by client certificate");
            Ok(Some(Principal {
                key_id: cred.key_id.clone(),
                cluster: cred.cluster_id.clone(),
            }))
        }
        Ok(None) => {
            tracing::debug!(peer = %session.peer, cn = %cn, "client certificate names no live API key");
            Ok(None)
        }
        Err(e) => {
            tracing::error!(peer = %session.peer, error = %e, "api key lookup for a client certificate failed; closing");
            Err(())
        }
    }
}

/// A connection's byte stream, split into the reader and the writer task's halves.
pub trait Split: Send + 'static {
    type Read: AsyncRead + Send + Unpin + 'static;
    type Write: AsyncWrite + Send + Unpin + 'static;
    fn split(self) -> (Self::Read, Self::Write);
}

impl Split for TcpStream {
    type Read = tokio::net::tcp::OwnedReadHalf;
    type Write = tokio::net::tcp::OwnedWriteHalf;
    fn split(self) -> (Self::Read, Self::Write) {
        self.into_split()
    }
}

impl<S: AsyncRead + AsyncWrite + Send + Unpin + 'static> Split for tls::TlsStream<S> {
    type Read = tokio::io::ReadHalf<Self>;
    type Write = tokio::io::WriteHalf<Self>;
    fn split(self) -> (Self::Read, Self::Write) {
        tokio::io::split(self)
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
type Pending = JoinHandle<Option<(Frame, Option<Permit>)>>;

/// Serves one connection. `sasl` is where authentication starts: `Sasl::Certificate` for a
/// connection that authenticated by its client certificate (`session` set to match).
async fn serve_connection<S: Split>(
    socket: S,
    broker: Arc<Broker>,
    mut session: Session,
    mut sasl: Sasl,
    cancel: CancellationToken,
) {
    let require_auth = broker.config.kafka_auth == KafkaAuth::Sasl;
    // Accepted just as the gate closed: read nothing until it opens again.
    tokio::select! {
        _ = broker.produce_gate.wait_open() => {}
        _ = cancel.cancelled() => return,
    }
    let (mut rd, wr) = socket.split();
    let (tx, mut rx) = mpsc::channel::<Pending>(broker.config.max_inflight_per_connection);
    // Requests read and not yet answered: a connection waiting for its answers is not idle.
    let responses_due = Arc::new(AtomicUsize::new(0));
    let due = responses_due.clone();
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
            let answered = pending.await;
            due.fetch_sub(1, Ordering::AcqRel);
            let (frame, permit) = match answered {
                Ok(Some(done)) => done,
                Ok(None) => continue,
                Err(e) => {
                    tracing::error!(error = %e, "request handler failed; closing connection");
                    break;
                }
            };
            let res = frame.write_to(&mut wr).await;
            // Written to the socket (or failed): its bytes no longer count as in flight.
            drop(permit);
            if res.is_err() {
                break;
            }
        }
        let _ = wr.flush().await;
    });

    // Client quotas: a throttled answer mutes the connection (crate::quota).
    let mute = Arc::new(crate::quota::Mute::default());
    let connected = Instant::now();
    let mut last_read = Instant::now();
    let mut next_check = Instant::now() + REVALIDATE_EVERY;
    let idle = broker.config.connections_max_idle;
    loop {
        tokio::select! {
            _ = mute.wait() => {}
            _ = cancel.cancelled() => break,
        }
        // Before authentication (required, or begun and not finished) only ApiVersions and
        // SASL frames of at most --sasl-max-receive-bytes are read, and nothing is taken
        // from the gates: an anonymous socket must not be able to hold memory or stall
        // anyone's producers.
        let restricted = session.key_id.is_none() && (require_auth || !matches!(sasl, Sasl::Start));
        let idle_deadline = if restricted && require_auth {
            connected + AUTH_TIMEOUT
        } else {
            last_read + idle
        };
        // Wait for the first byte of the next frame (a one-byte read is cancel safe), and
        // meanwhile check the key and the idle time.
        let mut len_buf = [0u8; 4];
        let first = tokio::select! {
            r = rd.read(&mut len_buf[..1]) => r,
            _ = cancel.cancelled() => break,
            _ = tokio::time::sleep_until(next_check.min(idle_deadline).into()) => {
                let now = Instant::now();
                if now >= next_check {
                    if !still_authorized(&broker, &session).await {
                        break;
                    }
                    next_check = now + REVALIDATE_EVERY;
                }
                if now >= idle_deadline {
                    if restricted && require_auth {
                        tracing::info!(peer = %session.peer, "closing connection: not authenticated within {AUTH_TIMEOUT:?}");
                        break;
                    }
                    if responses_due.load(Ordering::Acquire) == 0 {
                        tracing::debug!(peer = %session.peer, "closing idle connection");
                        broker.metrics.idle_connections_closed.inc();
                        break;
                    }
                    // Waiting for its own answers (a long rebalance): not idle.
                    last_read = now;
                }
                continue;
            }
        };
        if !matches!(first, Ok(1)) {
            break; // closed by the client
        }
        last_read = Instant::now();
        if last_read >= next_check {
            if !still_authorized(&broker, &session).await {
                break;
            }
            next_check = last_read + REVALIDATE_EVERY;
        }
        // The rest of the frame must follow within FRAME_TIMEOUT of its first byte, not
        // counting the time it waits for room in a gate.
        let mut deadline = tokio::time::Instant::from_std(last_read) + FRAME_TIMEOUT;
        if !read_before(&mut rd, &mut len_buf[1..], deadline, &session).await {
            break;
        }
        let max = if restricted {
            broker.config.sasl_max_receive_bytes
        } else {
            broker.config.max_frame_bytes
        };
        let len = match protocol::check_frame_len(i32::from_be_bytes(len_buf), max) {
            Ok(len) => len,
            Err(e) => {
                broker.metrics.protocol_errors.inc();
                let before_auth = if restricted {
                    " before authentication"
                } else {
                    ""
                };
                tracing::warn!(peer = %session.peer, error = %e, "closing connection: bad frame length{before_auth}");
                break;
            }
        };
        // Read the api key and version first: a request waits for room in its gate
        // *before* its payload leaves the socket, so TCP pushes back.
        let mut head = [0u8; 4];
        if !read_before(&mut rd, &mut head, deadline, &session).await {
            break;
        }
        let api = i16::from_be_bytes([head[0], head[1]]);
        if restricted && !ALLOWED_BEFORE_AUTH.iter().any(|k| *k as i16 == api) {
            broker.metrics.protocol_errors.inc();
            tracing::warn!(peer = %session.peer, api, "closing connection: request before SASL authentication");
            break;
        }
        let gate_started = tokio::time::Instant::now();
        let request_permit = if restricted {
            None
        } else {
            let (gate, bytes) = if api == ApiKey::Produce as i16 {
                (&broker.produce_gate, len as u64)
            } else {
                (
                    &broker.request_gate,
                    (len as u64).saturating_mul(DECODE_FACTOR),
                )
            };
            tokio::select! {
                p = gate.acquire(bytes) => Some(p),
                _ = cancel.cancelled() => break,
            }
        };
        deadline += gate_started.elapsed();
        // One allocation of exactly the frame's size, filled straight from the socket (no
        // zeroing first). A buffer kept per connection would hold on to its largest frame
        // for the connection's lifetime; the allocator recycles freed frames anyway.
        let mut frame = BytesMut::with_capacity(len);
        frame.extend_from_slice(&head);
        match tokio::time::timeout_at(deadline, read_exact_into(&mut rd, &mut frame, len - 4)).await
        {
            Ok(Ok(())) => {}
            Ok(Err(_)) => {
                tracing::debug!(peer = %session.peer, "connection closed mid-frame");
                break;
            }
            Err(_) => {
                broker.metrics.protocol_errors.inc();
                tracing::warn!(peer = %session.peer, len, "closing connection: frame not received within {FRAME_TIMEOUT:?}");
                break;
            }
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
                let frame = Frame::from(protocol::encode_api_versions_too_new(correlation_id));
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
                    Splices::default(),
                ) {
                    Ok(frame) => {
                        tokio::spawn(async move { Some((frame, None)) })
                    }
                    Err(e) => {
                        tracing::error!(error = %e, "encoding sasl response failed");
                        break;
                    }
                };
                responses_due.fetch_add(1, Ordering::AcqRel);
                if tx.send(pending).await.is_err() || !keep_open {
                    break; // a failed authentication closes the connection after its answer
                }
                continue;
            }
            Decoded::Request { api_key, .. }
                // Authentication is required, or was begun and not finished: nothing but
                // ApiVersions is served until it completes.
                if (require_auth || !matches!(sasl, Sasl::Start))
                    && session.key_id.is_none()
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
                        let Reply { response, permit, throttle, splices } = respond.await?;
                        if let Some(t) = throttle {
                            mute.mute_for(t.time);
                            if t.delay {
                                tokio::time::sleep(t.time).await;
                            }
                        }
                        // A fetch answers with fetch-gate bytes; every other answer keeps
                        // its request's bytes (shrunk to the answer) until written.
                        let permit = permit.or(request_permit);
                        broker
                            .metrics
                            .request_seconds
                            .with_label_values(&[name])
                            .observe(started.elapsed().as_secs_f64());
                        match protocol::encode_response(
                            correlation_id,
                            api_key,
                            version,
                            &response,
                            splices,
                        ) {
                            Ok(frame) => {
                                // The records now live only in the frame.
                                let mut permit = permit;
                                if let Some(p) = permit.as_mut() {
                                    p.shrink_to(frame.memory() as u64);
                                }
                                Some((frame, permit))
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
        responses_due.fetch_add(1, Ordering::AcqRel);
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
                    broker.metrics.sasl_failures.inc();
                    let delay = session
                        .peer
                        .parse::<std::net::SocketAddr>()
                        .map(|a| broker.sasl_failures.failed(a.ip()))
                        .unwrap_or(auth::MAX_FAILURE_DELAY);
                    tracing::info!(peer = %session.peer, code = failure.code, delay_ms = delay.as_millis() as u64, "sasl authentication refused");
                    tokio::time::sleep(delay).await;
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

/// Whether the key a connection authenticated with is still live (closing a key or
/// deleting its cluster removes it); notes the use, coarsely, for "last used".
async fn still_authorized(broker: &Broker, session: &Session) -> bool {
    let Some(key_id) = &session.key_id else {
        return true;
    };
    match broker.credentials.get(key_id).await {
        Ok(Some(c)) if c.cluster_id == session.cluster => {
            broker.credentials.used(key_id).await;
            true
        }
        Ok(_) => {
            tracing::info!(peer = %session.peer, key = %key_id, cluster = %session.cluster, "closing connection: its api key was revoked or its cluster deleted");
            broker.metrics.revoked_connections_closed.inc();
            false
        }
        Err(e) => {
            // The database is unreachable: keep serving rather than drop every client.
            tracing::warn!(error = %e, "re-checking an api key failed");
            true
        }
    }
}

/// Fills `buf` from `rd` before `deadline`; false (logged) when the connection closed or
/// the deadline passed.
async fn read_before<R: AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut [u8],
    deadline: tokio::time::Instant,
    session: &Session,
) -> bool {
    match tokio::time::timeout_at(deadline, rd.read_exact(buf)).await {
        Ok(Ok(_)) => true,
        Ok(Err(_)) => false,
        Err(_) => {
            tracing::warn!(peer = %session.peer, "closing connection: frame header not received within {FRAME_TIMEOUT:?}");
            false
        }
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

//! The HTTP side of the agent: `/metrics` (Prometheus text) and `/healthz`. The console
//! and its JSON API (crate `app`) are merged into the same router by `main`, and [`serve`]
//! runs it on the HTTP and HTTPS listeners with timeouts and a connection cap.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use axum::body::Bytes;
use axum::extract::{ConnectInfo, State};
use axum::http::{header, HeaderMap, Request, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use broker::tls::{ServerTls, TlsAcceptor};
use broker::Broker;
use hyper::body::Incoming;
use hyper_util::rt::{TokioIo, TokioTimer};
use subtle::ConstantTimeEq;
use tokio::net::TcpListener;
use tokio::sync::Semaphore;
use tokio_util::sync::CancellationToken;
use tokio_util::task::TaskTracker;

#[derive(Clone)]
struct HttpState {
    broker: Arc<Broker>,
    /// When set, `/metrics` wants `Authorization: Bearer <token>`.
    metrics_token: Option<Arc<str>>,
}

pub fn router(broker: Arc<Broker>, metrics_token: Option<String>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(HttpState {
            broker,
            metrics_token: metrics_token.map(Arc::from),
        })
}

async fn metrics(State(state): State<HttpState>, headers: HeaderMap) -> Response {
    if let Some(token) = &state.metrics_token {
        let sent = headers
            .get(header::AUTHORIZATION)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .unwrap_or("");
        if !bool::from(sent.as_bytes().ct_eq(token.as_bytes())) {
            return (
                StatusCode::UNAUTHORIZED,
                "/metrics needs 'Authorization: Bearer <token>' (the --metrics-token of this server)\n",
            )
                .into_response();
        }
    }
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        state.broker.render_metrics(),
    )
        .into_response()
}

async fn healthz(State(state): State<HttpState>) -> impl IntoResponse {
    match state.broker.healthy().await {
        Ok(_) => (StatusCode::OK, "ok\n"),
        Err(e) => {
            tracing::warn!(error = %e, "health check: metadata store unreachable");
            (
                StatusCode::SERVICE_UNAVAILABLE,
                "metadata store unreachable\n",
            )
        }
    }
}

/// What the HTTP and HTTPS listeners allow a client (finding 4 of issue 12: without these a
/// byte a second kept a header or a body open forever).
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// For a request's headers, from the moment the connection waits for them: hyper's
    /// header timer also runs while a keep-alive connection sits idle, so it is the idle
    /// timeout as well; and the TLS handshake's bound on HTTPS.
    pub header_timeout: Duration,
    /// For a request's whole body, from the end of its headers.
    pub body_timeout: Duration,
}

/// How long shutdown waits for requests in progress.
const HTTP_DRAIN_TIMEOUT: Duration = Duration::from_secs(5);

/// Serves `router` on the HTTP listener and the HTTPS one (if any) until `cancel` fires.
/// At most `max_connections` connections (HTTP and HTTPS together) are open: beyond,
/// new ones wait in the listen backlog until one closes.
pub async fn serve(
    http: TcpListener,
    https: Option<(TcpListener, Arc<ServerTls>)>,
    router: Router,
    limits: Limits,
    max_connections: usize,
    cancel: CancellationToken,
) {
    let slots = Arc::new(Semaphore::new(max_connections.max(1)));
    let tracker = TaskTracker::new();
    loop {
        let permit = tokio::select! {
            p = slots.clone().acquire_owned() => p.expect("the connection semaphore is never closed"),
            _ = cancel.cancelled() => break,
        };
        let accepted = tokio::select! {
            a = http.accept() => a.map(|(s, p)| (s, p, None)),
            a = accept_tls(https.as_ref()) => a,
            _ = cancel.cancelled() => break,
        };
        let (socket, peer, acceptor) = match accepted {
            Ok(a) => a,
            Err(e) => {
                // Out of file descriptors and the like: log, pause briefly, keep serving.
                tracing::warn!(error = %e, "accepting an HTTP connection failed");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let router = router.clone();
        let cancel = cancel.clone();
        tracker.spawn(async move {
            let _permit = permit;
            match acceptor {
                None => serve_connection(TokioIo::new(socket), peer, router, limits, cancel).await,
                Some(acceptor) => {
                    match tokio::time::timeout(limits.header_timeout, acceptor.accept(socket)).await
                    {
                        Ok(Ok(stream)) => {
                            serve_connection(TokioIo::new(stream), peer, router, limits, cancel)
                                .await
                        }
                        Ok(Err(e)) => tracing::debug!(%peer, error = %e, "TLS handshake failed"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                }
            }
        });
    }
    drop(http);
    drop(https);
    tracker.close();
    if tokio::time::timeout(HTTP_DRAIN_TIMEOUT, tracker.wait())
        .await
        .is_err()
    {
        tracing::warn!(
            connections = tracker.len(),
            "HTTP requests still running after the drain timeout; not waiting for them"
        );
    }
}

/// The next HTTPS connection, with the certificate of the moment; never, without HTTPS.
async fn accept_tls(
    https: Option<&(TcpListener, Arc<ServerTls>)>,
) -> std::io::Result<(tokio::net::TcpStream, SocketAddr, Option<TlsAcceptor>)> {
    match https {
        Some((listener, tls)) => {
            let (socket, peer) = listener.accept().await?;
            Ok((socket, peer, Some(tls.acceptor())))
        }
        None => std::future::pending().await,
    }
}

/// One HTTP/1.1 connection, with the header timeout and each request's body deadline.
async fn serve_connection<I>(
    io: I,
    peer: SocketAddr,
    router: Router,
    limits: Limits,
    cancel: CancellationToken,
) where
    I: hyper::rt::Read + hyper::rt::Write + Unpin + Send + 'static,
{
    let service = hyper::service::service_fn(move |req: Request<Incoming>| {
        let (mut parts, body) = req.into_parts();
        // What `into_make_service_with_connect_info` would insert: the console reads it.
        parts.extensions.insert(ConnectInfo(peer));
        let body = axum::body::Body::new(DeadlineBody::new(body, limits.body_timeout));
        let mut router = router.clone();
        tower_service::Service::call(&mut router, Request::from_parts(parts, body))
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(limits.header_timeout)
        .serve_connection(io, service);
    tokio::pin!(conn);
    tokio::select! {
        r = conn.as_mut() => {
            if let Err(e) = r {
                tracing::debug!(%peer, error = %e, "HTTP connection ended with an error");
            }
        }
        _ = cancel.cancelled() => {
            conn.as_mut().graceful_shutdown();
            let _ = tokio::time::timeout(HTTP_DRAIN_TIMEOUT, conn).await;
        }
    }
}

/// A request body that fails once its deadline passes (counted from the first time it
/// had to wait, which is right after the headers for a body that is read at all).
struct DeadlineBody {
    inner: Incoming,
    limit: Duration,
    deadline: Option<Pin<Box<tokio::time::Sleep>>>,
}

impl DeadlineBody {
    fn new(inner: Incoming, limit: Duration) -> Self {
        DeadlineBody {
            inner,
            limit,
            deadline: None,
        }
    }
}

impl http_body::Body for DeadlineBody {
    type Data = Bytes;
    type Error = axum::BoxError;

    fn poll_frame(
        mut self: Pin<&mut Self>,
        cx: &mut Context<'_>,
    ) -> Poll<Option<Result<http_body::Frame<Bytes>, Self::Error>>> {
        let this = &mut *self;
        if let Poll::Ready(frame) = Pin::new(&mut this.inner).poll_frame(cx) {
            return Poll::Ready(frame.map(|f| f.map_err(Into::into)));
        }
        let limit = this.limit;
        let deadline = this
            .deadline
            .get_or_insert_with(|| Box::pin(tokio::time::sleep(limit)));
        match deadline.as_mut().poll(cx) {
            Poll::Ready(()) => Poll::Ready(Some(Err(format!(
                "request body not received within {limit:?}"
            )
            .into()))),
            Poll::Pending => Poll::Pending,
        }
    }

    fn is_end_stream(&self) -> bool {
        self.inner.is_end_stream()
    }

    fn size_hint(&self) -> http_body::SizeHint {
        self.inner.size_hint()
    }
}

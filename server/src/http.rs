//! The HTTP side of the agent: `/metrics` (Prometheus text) and `/healthz`. The console
//! and its JSON API (crate `app`) are merged into the same router by `main`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use broker::Broker;
use subtle::ConstantTimeEq;

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

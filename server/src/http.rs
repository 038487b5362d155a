//! The HTTP side of the agent: `/metrics` (Prometheus text) and `/healthz`. The console
//! and its JSON API (crate `app`) are merged into the same router by `main`.

use std::sync::Arc;

use axum::extract::State;
use axum::http::{header, StatusCode};
use axum::response::IntoResponse;
use axum::routing::get;
use axum::Router;
use broker::Broker;

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .with_state(broker)
}

async fn metrics(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    broker.metrics.publish_groups(&broker.groups.snapshot());
    (
        [(
            header::CONTENT_TYPE,
            "text/plain; version=0.0.4; charset=utf-8",
        )],
        broker.metrics.render(),
    )
}

async fn healthz(State(broker): State<Arc<Broker>>) -> impl IntoResponse {
    match broker.meta.cluster_id().await {
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

//! The HTTP side of the agent: `/metrics` (Prometheus text), `/healthz`, and the lag API
//! the console's charts read.

use std::sync::Arc;

use axum::extract::{Path, Query, State};
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use broker::clock::now_ms;
use broker::Broker;
use serde::{Deserialize, Serialize};

pub fn router(broker: Arc<Broker>) -> Router {
    Router::new()
        .route("/metrics", get(metrics))
        .route("/healthz", get(healthz))
        .route(
            "/api/v1/clusters/{cluster}/consumer-groups/{group}/lag",
            get(group_lag),
        )
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

#[derive(Deserialize)]
struct LagQuery {
    /// History window: `1h` (default) or `24h`.
    window: Option<String>,
}

#[derive(Serialize)]
struct HistoryPoint {
    minute_start_ms: i64,
    max_time_lag_seconds: f64,
    offset_lag: i64,
}

#[derive(Serialize)]
struct LagBody {
    cluster: String,
    group: String,
    current: Option<broker::lag::job::GroupLag>,
    history: Vec<HistoryPoint>,
}

fn error(status: StatusCode, message: String) -> Response {
    (status, Json(serde_json::json!({ "error": message }))).into_response()
}

async fn group_lag(
    State(broker): State<Arc<Broker>>,
    Path((cluster, group)): Path<(String, String)>,
    Query(q): Query<LagQuery>,
) -> Response {
    let window_ms: i64 = match q.window.as_deref().unwrap_or("1h") {
        "1h" => 3_600_000,
        "24h" => 86_400_000,
        other => {
            return error(
                StatusCode::BAD_REQUEST,
                format!("unknown window '{other}': use 1h or 24h"),
            );
        }
    };
    let history = match broker
        .meta
        .lag_history(&cluster, &group, now_ms() - window_ms)
        .await
    {
        Ok(h) => h,
        Err(e) => {
            tracing::warn!(error = %e, "reading lag history failed");
            return error(
                StatusCode::SERVICE_UNAVAILABLE,
                "the metadata store is unavailable".to_string(),
            );
        }
    };
    let current = broker.lag.get(&cluster, &group);
    if current.is_none() && history.is_empty() {
        return error(
            StatusCode::NOT_FOUND,
            format!("no lag known for group '{group}' in cluster '{cluster}': it has no committed offsets yet"),
        );
    }
    Json(LagBody {
        cluster,
        group,
        current,
        history: history
            .into_iter()
            .map(|(minute, lag_ms, offset_lag)| HistoryPoint {
                minute_start_ms: minute,
                max_time_lag_seconds: lag_ms as f64 / 1000.0,
                offset_lag,
            })
            .collect(),
    })
    .into_response()
}

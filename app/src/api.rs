//! The JSON API under `/api/v1/`: every console action, authenticated by the session
//! cookie (plus `X-CSRF-Token` on changes) or by an API key
//! (`Authorization: Bearer KEY_ID:SECRET`), which reaches only its own cluster.
//! Errors are `{"error": "..."}` with a meaningful status code.
//!
//! Who calls, and the cluster of a `/clusters/{c}/…` path, arrive through the extractors
//! of [`crate::extract`]: [`Caller`] (key, session or nobody), [`ApiUser`] (a logged-in
//! user) and [`InCluster`] (either, with the cluster looked up and access checked).

use std::collections::HashMap;

use axum::body::Bytes;
use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};
use axum::{Json, Router};
use serde::de::DeserializeOwned;
use serde::Deserialize;
use serde_json::json;

use crate::auth::{self, Actor};
use crate::error::{Api, Refusal};
use crate::extract::{ApiUser, Caller, InCluster};
use crate::views::groups::parse_reset;
use crate::views::topics::{parse_browse, render_bytes, Format};
use crate::{ops, AppState};

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/api/v1/me", get(me))
        .route("/api/v1/agents", get(agents))
        .route("/api/v1/clusters", get(clusters).post(create_cluster))
        .route(
            "/api/v1/clusters/{c}",
            get(cluster).patch(update_cluster).delete(delete_cluster),
        )
        .route("/api/v1/clusters/{c}/api-keys", get(keys).post(create_key))
        .route(
            "/api/v1/clusters/{c}/api-keys/{k}",
            axum::routing::delete(revoke_key),
        )
        .route(
            "/api/v1/clusters/{c}/topics",
            get(topics).post(create_topic),
        )
        .route(
            "/api/v1/clusters/{c}/topics/{t}",
            get(topic).delete(delete_topic),
        )
        .route(
            "/api/v1/clusters/{c}/topics/{t}/configs",
            axum::routing::patch(alter_configs),
        )
        .route("/api/v1/clusters/{c}/topics/{t}/messages", get(messages))
        .route("/api/v1/clusters/{c}/consumer-groups", get(groups))
        .route("/api/v1/clusters/{c}/consumer-groups/{g}", get(group))
        .route(
            "/api/v1/clusters/{c}/consumer-groups/{g}/reset-offsets",
            post(reset_offsets),
        )
        .route(
            "/api/v1/clusters/{c}/consumer-groups/{g}/lag",
            get(group_lag),
        )
        .route("/api/v1/team/members", get(members))
        .route(
            "/api/v1/team/members/{uid}",
            axum::routing::patch(change_member).delete(remove_member),
        )
        .route("/api/v1/team/invites", get(invites).post(create_invite))
        .route(
            "/api/v1/team/invites/{id}",
            axum::routing::delete(revoke_invite),
        )
        .route("/api/v1/invites/{token}/accept", post(accept_invite))
}

fn ok(value: impl serde::Serialize) -> Result<Response, Refusal> {
    Ok(Json(value).into_response())
}

fn created(value: impl serde::Serialize) -> Result<Response, Refusal> {
    Ok((StatusCode::CREATED, Json(value)).into_response())
}

fn no_content() -> Result<Response, Refusal> {
    Ok(StatusCode::NO_CONTENT.into_response())
}

fn body<T: DeserializeOwned>(bytes: &Bytes) -> Result<T, Refusal> {
    serde_json::from_slice(bytes)
        .map_err(|e| Refusal::bad_request(format!("Invalid JSON body: {e}")))
}

/// A cluster route asked by any caller.
type Cluster = InCluster<Caller>;
/// A cluster route only a logged-in user may use (the organisation's settings and keys).
type UserCluster = InCluster<ApiUser>;

async fn me(Caller(actor): Caller) -> Api {
    Api(match actor {
        Actor::Key { key_id, cluster_id } => {
            ok(json!({ "api_key": key_id, "cluster": cluster_id }))
        }
        Actor::Anonymous => Err(auth::unauthenticated()),
        Actor::User(v) => ok(json!({
            "user": v.user,
            "organisation": v.org,
            "role": v.role,
            "csrf_token": v.csrf,
        })),
    })
}

/// The live agents: for any signed-in user and any API key, and for anyone while the
/// built-in cluster is open on the Kafka port (`--kafka-auth none`).
async fn agents(State(c): State<AppState>, Caller(actor): Caller) -> Api {
    Api(
        if matches!(actor, Actor::Anonymous) && !c.settings.default_cluster_open {
            Err(auth::unauthenticated())
        } else {
            ok(c.view.agents())
        },
    )
}

async fn clusters(State(c): State<AppState>, Caller(actor): Caller) -> Api {
    Api(async {
        match actor {
            Actor::User(v) => ok(ops::clusters(&c, &v).await?),
            Actor::Key { key_id, cluster_id } => {
                let key = Actor::Key {
                    key_id,
                    cluster_id: cluster_id.clone(),
                };
                ok(vec![ops::cluster(&c, &key, &cluster_id).await?])
            }
            Actor::Anonymous => Err(auth::unauthenticated()),
        }
    }
    .await)
}

#[derive(Deserialize)]
struct NameBody {
    name: String,
}

async fn create_cluster(State(c): State<AppState>, ApiUser(v): ApiUser, bytes: Bytes) -> Api {
    Api(async {
        let b: NameBody = body(&bytes)?;
        created(ops::create_cluster(&c, &v, &b.name).await?)
    }
    .await)
}

async fn cluster(InCluster { cluster, .. }: Cluster) -> Api {
    Api(ok(cluster))
}

#[derive(Deserialize)]
struct ClusterPatch {
    name: Option<String>,
    auto_create_topics: Option<bool>,
    default_partitions: Option<i32>,
    default_retention_ms: Option<i64>,
    /// Enforce Kafka ACLs on the cluster's keys.
    acls_enabled: Option<bool>,
}

async fn update_cluster(
    State(c): State<AppState>,
    InCluster {
        who: ApiUser(v),
        cluster: cur,
    }: UserCluster,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: ClusterPatch = body(&bytes)?;
        if let Some(name) = &b.name {
            ops::rename_cluster(&c, &v, &cur, name).await?;
        }
        if b.auto_create_topics.is_some()
            || b.default_partitions.is_some()
            || b.default_retention_ms.is_some()
        {
            ops::update_cluster_settings(
                &c,
                &v,
                &cur,
                b.auto_create_topics.unwrap_or(cur.auto_create_topics),
                b.default_partitions.unwrap_or(cur.default_partitions),
                b.default_retention_ms.unwrap_or(cur.default_retention_ms),
            )
            .await?;
        }
        if let Some(enabled) = b.acls_enabled {
            crate::acl_ops::set_acls_enabled(&c, &v, &cur, enabled).await?;
        }
        // Read back: the answer shows the cluster as it now is.
        ok(ops::cluster(&c, &v.actor(), &cur.id).await?)
    }
    .await)
}

async fn delete_cluster(
    State(c): State<AppState>,
    InCluster {
        who: ApiUser(v),
        cluster,
    }: UserCluster,
    Query(q): Query<HashMap<String, String>>,
) -> Api {
    Api(async {
        let confirm = q.get("confirm").map(|s| s.as_str()).unwrap_or("");
        ops::delete_cluster(&c, &v, &cluster, confirm).await?;
        no_content()
    }
    .await)
}

async fn keys(
    State(c): State<AppState>,
    InCluster {
        who: ApiUser(v),
        cluster,
    }: UserCluster,
) -> Api {
    Api(async { ok(ops::api_keys(&c, &v, &cluster).await?) }.await)
}

async fn create_key(
    State(c): State<AppState>,
    InCluster {
        who: ApiUser(v),
        cluster,
    }: UserCluster,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: NameBody = body(&bytes)?;
        let (info, secret) = ops::create_api_key(&c, &v, &cluster, &b.name).await?;
        created(json!({ "key": info, "secret": secret }))
    }
    .await)
}

async fn revoke_key(
    State(c): State<AppState>,
    InCluster {
        who: ApiUser(v),
        cluster,
    }: UserCluster,
    Path((_, key)): Path<(String, String)>,
) -> Api {
    Api(async {
        ops::revoke_api_key(&c, &v, &cluster, &key).await?;
        no_content()
    }
    .await)
}

async fn topics(State(c): State<AppState>, InCluster { cluster, .. }: Cluster) -> Api {
    Api(async { ok(ops::topics(&c, &cluster).await?) }.await)
}

#[derive(Deserialize)]
struct NewTopic {
    name: String,
    partitions: Option<i32>,
    #[serde(default)]
    configs: HashMap<String, String>,
}

async fn create_topic(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: NewTopic = body(&bytes)?;
        let configs: Vec<(String, String)> = b.configs.into_iter().collect();
        let partitions = b.partitions.unwrap_or(cluster.default_partitions);
        ops::create_topic(&c, &a, &cluster, &b.name, partitions, &configs).await?;
        created(ops::topic(&c, &cluster, b.name.trim()).await?)
    }
    .await)
}

async fn topic(
    State(c): State<AppState>,
    InCluster { cluster, .. }: Cluster,
    Path((_, t)): Path<(String, String)>,
) -> Api {
    Api(async { ok(ops::topic(&c, &cluster, &t).await?) }.await)
}

async fn delete_topic(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, t)): Path<(String, String)>,
) -> Api {
    Api(async {
        ops::delete_topic(&c, &a, &cluster, &t).await?;
        no_content()
    }
    .await)
}

#[derive(Deserialize)]
struct ConfigPatch {
    #[serde(default)]
    set: HashMap<String, String>,
    #[serde(default)]
    delete: Vec<String>,
}

async fn alter_configs(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: ConfigPatch = body(&bytes)?;
        let set: Vec<(String, String)> = b.set.into_iter().collect();
        ops::alter_topic_configs(&c, &a, &cluster, &t, &set, &b.delete).await?;
        ok(ops::topic(&c, &cluster, &t).await?)
    }
    .await)
}

async fn messages(
    State(c): State<AppState>,
    InCluster { cluster, .. }: Cluster,
    Path((_, t)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Api {
    Api(async {
        let bq = parse_browse(&q)?;
        let records = ops::messages(&c, &cluster, &t, bq.partition, bq.from, bq.limit).await?;
        // Bytes as text (lossy UTF-8) by default, or hex; JSON values stay strings.
        let format = if bq.format == Format::Hex {
            Format::Hex
        } else {
            Format::Text
        };
        let out: Vec<_> = records
            .iter()
            .map(|r| {
                if let Some(problem) = &r.error {
                    // A batch that is not shown: where it starts and why.
                    return json!({
                        "partition": r.partition,
                        "offset": r.offset,
                        "timestamp_ms": r.timestamp_ms,
                        "error": problem,
                    });
                }
                json!({
                    "partition": r.partition,
                    "offset": r.offset,
                    "timestamp_ms": r.timestamp_ms,
                    "key": r.key.as_deref().map(|k| render_bytes(Some(k), format)),
                    "value": r.value.as_deref().map(|v| render_bytes(Some(v), format)),
                    "headers": r.headers.iter().map(|(k, v)| json!({
                        "key": k,
                        "value": v.as_deref().map(|v| render_bytes(Some(v), format)),
                    })).collect::<Vec<_>>(),
                })
            })
            .collect();
        ok(out)
    }
    .await)
}

async fn groups(State(c): State<AppState>, InCluster { cluster, .. }: Cluster) -> Api {
    Api(async { ok(ops::groups(&c, &cluster).await?) }.await)
}

async fn group(
    State(c): State<AppState>,
    InCluster { cluster, .. }: Cluster,
    Path((_, g)): Path<(String, String)>,
) -> Api {
    Api(async { ok(ops::group(&c, &cluster, &g).await?) }.await)
}

#[derive(Deserialize)]
struct ResetBody {
    /// earliest | latest | time
    to: String,
    /// With `to: "time"`: milliseconds or YYYY-MM-DDTHH:MM (UTC).
    #[serde(default)]
    time: Option<serde_json::Value>,
    topic: Option<String>,
}

async fn reset_offsets(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, g)): Path<(String, String)>,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: ResetBody = body(&bytes)?;
        let time = match &b.time {
            Some(serde_json::Value::Number(n)) => n.to_string(),
            Some(serde_json::Value::String(s)) => s.clone(),
            _ => String::new(),
        };
        let to = parse_reset(&b.to, &time)?;
        ok(ops::reset_offsets(&c, &a, &cluster, &g, b.topic.as_deref(), to).await?)
    }
    .await)
}

async fn group_lag(
    State(c): State<AppState>,
    InCluster { cluster, .. }: Cluster,
    Path((_, g)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Api {
    Api(async {
        let window = q.get("window").map(|s| s.as_str()).unwrap_or("1h");
        let (history, current) = ops::lag_history(&c, &cluster, &g, window).await?;
        if current.is_none() && history.is_empty() {
            return Err(Refusal::not_found(format!(
                "No lag known for group '{g}' in cluster '{}': it has no committed offsets yet.",
                cluster.id
            )));
        }
        ok(json!({ "cluster": cluster.id, "group": g, "current": current, "history": history }))
    }
    .await)
}

async fn members(State(c): State<AppState>, ApiUser(v): ApiUser) -> Api {
    Api(async { ok(ops::members(&c, &v).await?) }.await)
}

#[derive(Deserialize)]
struct RoleBody {
    role: String,
}

async fn change_member(
    State(c): State<AppState>,
    ApiUser(v): ApiUser,
    Path(uid): Path<String>,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: RoleBody = body(&bytes)?;
        ops::change_member(&c, &v, &uid, Some(&b.role)).await?;
        ok(ops::members(&c, &v).await?)
    }
    .await)
}

async fn remove_member(
    State(c): State<AppState>,
    ApiUser(v): ApiUser,
    Path(uid): Path<String>,
) -> Api {
    Api(async {
        ops::change_member(&c, &v, &uid, None).await?;
        no_content()
    }
    .await)
}

async fn invites(State(c): State<AppState>, ApiUser(v): ApiUser) -> Api {
    Api(async {
        v.require_admin()?;
        ok(ops::invites(&c, &v).await?)
    }
    .await)
}

#[derive(Deserialize)]
struct InviteBody {
    role: String,
    #[serde(default)]
    note: String,
}

async fn create_invite(
    State(c): State<AppState>,
    ApiUser(v): ApiUser,
    headers: HeaderMap,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: InviteBody = body(&bytes)?;
        let (inv, token) = ops::invite(&c, &v, &b.role, &b.note).await?;
        let url = crate::views::team::invite_url(&c, &headers, &token);
        created(json!({ "invite": inv, "url": url }))
    }
    .await)
}

async fn revoke_invite(
    State(c): State<AppState>,
    ApiUser(v): ApiUser,
    Path(id): Path<String>,
) -> Api {
    Api(async {
        ops::revoke_invite(&c, &v, &id).await?;
        no_content()
    }
    .await)
}

async fn accept_invite(
    State(c): State<AppState>,
    ApiUser(v): ApiUser,
    Path(token): Path<String>,
) -> Api {
    Api(async {
        let org = ops::accept_invite(&c, &v.user, &token).await?;
        ok(json!({ "organisation": org }))
    }
    .await)
}

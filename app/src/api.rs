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
use crate::views::messages::{parse_browse, render_bytes, Format};
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
        .route(
            "/api/v1/clusters/{c}/topics/{t}/partitions",
            post(add_partitions),
        )
        .route(
            "/api/v1/clusters/{c}/topics/{t}/messages",
            get(messages).post(produce),
        )
        .route("/api/v1/clusters/{c}/consumer-groups", get(groups))
        .route(
            "/api/v1/clusters/{c}/consumer-groups/{g}",
            get(group).delete(delete_group),
        )
        .route(
            "/api/v1/clusters/{c}/consumer-groups/{g}/offsets",
            axum::routing::delete(delete_group_offsets),
        )
        .route(
            "/api/v1/clusters/{c}/consumer-groups/{g}/reset-offsets",
            post(reset_offsets),
        )
        .route(
            "/api/v1/clusters/{c}/consumer-groups/{g}/lag",
            get(group_lag),
        )
        .route(
            "/api/v1/clusters/{c}/alerts",
            get(lag_alerts).post(create_lag_alert),
        )
        .route(
            "/api/v1/clusters/{c}/alerts/{id}",
            axum::routing::delete(delete_lag_alert),
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

/// `GET …/topics`: an array of topic summaries, sorted by name unless asked otherwise.
/// Optional query parameters, as the console's list page takes them: `q` (part of a name,
/// any letter case), `sort` (`name`, `partitions`, `records`, `size` or `rate`), `dir`
/// (`asc`, `desc`; without it names sort A to Z and numbers largest first); and for
/// paging `offset` and `limit`. The `X-Total-Count` header counts the topics matching `q`
/// before paging.
async fn topics(
    State(c): State<AppState>,
    InCluster { cluster, .. }: Cluster,
    Query(q): Query<HashMap<String, String>>,
) -> Api {
    Api(async {
        let lq = crate::views::topics::parse_list_query(&q)?;
        let offset = count_param(&q, "offset")?.unwrap_or(0);
        let limit = count_param(&q, "limit")?.unwrap_or(usize::MAX);
        let matching = crate::views::topics::select_topics(
            ops::topics(&c, &cluster).await?,
            &lq.q,
            lq.sort,
            lq.desc,
        );
        let total = matching.len();
        let page: Vec<_> = matching.into_iter().skip(offset).take(limit).collect();
        Ok(([("x-total-count", total.to_string())], Json(page)).into_response())
    }
    .await)
}

/// A whole-number query parameter (`offset`, `limit`), None when absent.
fn count_param(q: &HashMap<String, String>, name: &str) -> Result<Option<usize>, Refusal> {
    match q.get(name).map(|s| s.trim()) {
        None | Some("") => Ok(None),
        Some(v) => v.parse::<usize>().map(Some).map_err(|_| {
            Refusal::bad_request(format!(
                "'{name}' must be a whole number, 0 or more (you gave '{v}')."
            ))
        }),
    }
}

/// A topic as `GET …/topics/{t}` answers it: the topic's detail and, as
/// `consumer_groups`, the groups reading it (see [`ops::topic_groups`]).
async fn topic_answer(
    c: &AppState,
    cluster: &ops::ClusterRef,
    name: &str,
) -> Result<serde_json::Value, Refusal> {
    let detail = ops::topic(c, cluster, name).await?;
    let groups = ops::topic_groups(c, cluster, name).await?;
    let encoding = |e: serde_json::Error| Refusal::internal("encoding a topic answer failed", e);
    let mut answer = serde_json::to_value(detail).map_err(encoding)?;
    if let Some(fields) = answer.as_object_mut() {
        fields.insert(
            "consumer_groups".to_string(),
            serde_json::to_value(groups).map_err(encoding)?,
        );
    }
    Ok(answer)
}

#[derive(Deserialize)]
struct PartitionsBody {
    /// The new total, as Kafka's CreatePartitions takes it.
    count: Option<i64>,
}

/// `POST …/topics/{t}/partitions {"count": N}`: grows the topic to N partitions in all;
/// answers the topic as `GET …/topics/{t}` does.
async fn add_partitions(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: PartitionsBody = body(&bytes)?;
        let count = b.count.ok_or_else(|| {
            Refusal::bad_request("Give the new total number of partitions, e.g. {\"count\": 12}.")
        })?;
        ops::add_partitions(&c, &a, &cluster, &t, count).await?;
        ok(topic_answer(&c, &cluster, &t).await?)
    }
    .await)
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
    Api(async { ok(topic_answer(&c, &cluster, &t).await?) }.await)
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
        let b = ops::browse(&c, &cluster, &t, bq.partition, bq.start.clone(), bq.limit, &bq.filters).await?;
        // Bytes as text (lossy UTF-8) by default, or hex; JSON values stay strings.
        let format = if bq.format == Format::Hex {
            Format::Hex
        } else {
            Format::Text
        };
        let out: Vec<_> = b
            .page
            .records
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
        let cursor = |c: &Option<broker::inspect::Cursor>| c.as_ref().map(|c| c.encode());
        ok(json!({
            "records": out,
            "newest_first": b.page.newest_first,
            "next": cursor(&b.page.next),
            "older": cursor(&b.page.older),
            "newer": cursor(&b.page.newer),
            "scanned_records": b.page.scanned_records,
            "scanned_bytes": b.page.scanned_bytes,
            "stopped_by_bytes": b.page.stopped_by_bytes,
            "filter_errors": b.filter_errors.map(|(count, first)| json!({"count": count, "first": first})),
        }))
    }
    .await)
}

/// `POST …/topics/{t}/messages`: `{"key", "value", "headers", "partition"}`; headers as an
/// object of name to value or a list of `{"key", "value"}`; strings are sent as UTF-8.
async fn produce(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, t)): Path<(String, String)>,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: serde_json::Value = body(&bytes)?;
        let Some(obj) = b.as_object() else {
            return Err(Refusal::bad_request(
                "Send a JSON object: {\"key\", \"value\", \"headers\", \"partition\"}.",
            ));
        };
        for k in obj.keys() {
            if !matches!(k.as_str(), "key" | "value" | "headers" | "partition") {
                return Err(Refusal::bad_request(format!(
                    "Unknown field '{k}': a record has key, value, headers and partition."
                )));
            }
        }
        let text =
            |name: &str, v: Option<&serde_json::Value>| -> Result<Option<Vec<u8>>, Refusal> {
                match v {
                    None | Some(serde_json::Value::Null) => Ok(None),
                    Some(serde_json::Value::String(s)) => Ok(Some(s.as_bytes().to_vec())),
                    // A JSON value as the value: its text, as the producer would send it.
                    Some(other) if name == "value" => Ok(Some(other.to_string().into_bytes())),
                    Some(_) => Err(Refusal::bad_request(format!(
                        "'{name}' must be a string or null."
                    ))),
                }
            };
        let mut headers = Vec::new();
        match obj.get("headers") {
            None | Some(serde_json::Value::Null) => {}
            Some(serde_json::Value::Object(m)) => {
                for (k, v) in m {
                    headers.push((k.clone(), text("header value", Some(v))?));
                }
            }
            Some(serde_json::Value::Array(list)) => {
                for h in list {
                    let name = h.get("key").and_then(|k| k.as_str()).ok_or_else(|| {
                        Refusal::bad_request("Each header needs a \"key\" (a string).")
                    })?;
                    headers.push((name.to_string(), text("header value", h.get("value"))?));
                }
            }
            Some(_) => return Err(Refusal::bad_request(
                "'headers' must be an object of name to value, or a list of {\"key\", \"value\"}.",
            )),
        }
        let partition = match obj.get("partition") {
            None | Some(serde_json::Value::Null) => None,
            Some(p) => Some(
                p.as_i64()
                    .and_then(|p| i32::try_from(p).ok())
                    .ok_or_else(|| Refusal::bad_request("'partition' must be a whole number."))?,
            ),
        };
        let record = broker::inspect::NewRecord {
            key: text("key", obj.get("key"))?,
            value: text("value", obj.get("value"))?,
            headers,
            partition,
        };
        created(ops::produce(&c, &a, &cluster, &t, record).await?)
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
    Api(async {
        let detail = ops::group(&c, &cluster, &g).await?;
        let trend = ops::lag_trend(&c, &cluster, &g).await?;
        // The group as `GroupDetail` serialises it, plus where its time lag is heading.
        let mut out = json!(detail);
        if let Some(fields) = out.as_object_mut() {
            fields.insert(
                "trend_seconds_per_minute".into(),
                json!(trend.trend_seconds_per_minute),
            );
            fields.insert(
                "catch_up_eta_seconds".into(),
                json!(trend.catch_up_eta_seconds),
            );
        }
        ok(out)
    }
    .await)
}

/// `DELETE …/consumer-groups/{g}`: the group and its committed offsets (409 while it has
/// live members, as Kafka's NON_EMPTY_GROUP).
async fn delete_group(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, g)): Path<(String, String)>,
) -> Api {
    Api(async {
        ops::delete_group(&c, &a, &cluster, &g).await?;
        no_content()
    }
    .await)
}

/// `DELETE …/consumer-groups/{g}/offsets?topic=T`: the group's committed offsets on one
/// topic (409 while live members subscribe to it, as Kafka's GROUP_SUBSCRIBED_TO_TOPIC).
async fn delete_group_offsets(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, g)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Api {
    Api(async {
        let topic = q.get("topic").map(|s| s.as_str()).unwrap_or("");
        ops::delete_group_offsets(&c, &a, &cluster, &g, topic).await?;
        no_content()
    }
    .await)
}

/// The body of `POST …/consumer-groups/{g}/reset-offsets`. The answer is the plan, one
/// `{topic, partition, previous_offset, new_offset}` per partition: a JSON array both for
/// a dry run and for a reset that was applied (the caller knows which it asked for).
#[derive(Deserialize)]
struct ResetBody {
    /// earliest | latest | time | offset | shift
    to: String,
    /// With `to: "time"`: milliseconds or YYYY-MM-DDTHH:MM (UTC).
    #[serde(default)]
    time: Option<serde_json::Value>,
    /// With `to: "offset"`: the offset (clamped to the log's start and end).
    #[serde(default)]
    offset: Option<serde_json::Value>,
    /// With `to: "shift"`: how far to move the committed offset (negative: back).
    #[serde(default)]
    shift: Option<serde_json::Value>,
    topic: Option<String>,
    /// Only these partitions of `topic`.
    #[serde(default)]
    partitions: Option<Vec<i32>>,
    /// Only plan: answer the new offsets, commit nothing (works while the group is live).
    #[serde(default)]
    dry_run: bool,
}

/// A number or a string field as the text the form parsers read.
fn field_text(v: &Option<serde_json::Value>) -> String {
    match v {
        Some(serde_json::Value::Number(n)) => n.to_string(),
        Some(serde_json::Value::String(s)) => s.clone(),
        _ => String::new(),
    }
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
        let to = parse_reset(
            &b.to,
            &field_text(&b.time),
            &field_text(&b.offset),
            &field_text(&b.shift),
        )?;
        let spec = broker::inspect::ResetSpec {
            to,
            topic: b.topic.filter(|t| !t.trim().is_empty()),
            partitions: b.partitions,
            dry_run: b.dry_run,
        };
        ok(ops::reset_group_offsets(&c, &a, &cluster, &g, &spec).await?)
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
        let trend = ops::trend_of(&history, current.as_ref());
        ok(json!({
            "cluster": cluster.id,
            "group": g,
            "current": current,
            "history": history,
            "trend_seconds_per_minute": trend.trend_seconds_per_minute,
            "catch_up_eta_seconds": trend.catch_up_eta_seconds,
        }))
    }
    .await)
}

/// The cluster's lag alert rules with their state (`?group=` for one group's).
async fn lag_alerts(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Query(q): Query<HashMap<String, String>>,
) -> Api {
    Api(async {
        let group = q.get("group").map(String::as_str);
        ok(ops::lag_alerts(&c, &a, &cluster, group).await?)
    }
    .await)
}

#[derive(Deserialize)]
struct LagAlertBody {
    group: String,
    max_time_lag_seconds: f64,
    /// How long the lag must stay above the threshold; 0 fires on the first pass above.
    #[serde(default)]
    for_seconds: i64,
    webhook_url: String,
}

async fn create_lag_alert(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    bytes: Bytes,
) -> Api {
    Api(async {
        let b: LagAlertBody = body(&bytes)?;
        let rule = broker::inspect::NewAlertRule {
            group: &b.group,
            max_time_lag_seconds: b.max_time_lag_seconds,
            for_seconds: b.for_seconds,
            webhook_url: &b.webhook_url,
        };
        created(ops::create_lag_alert(&c, &a, &cluster, rule).await?)
    }
    .await)
}

async fn delete_lag_alert(
    State(c): State<AppState>,
    InCluster {
        who: Caller(a),
        cluster,
    }: Cluster,
    Path((_, id)): Path<(String, String)>,
) -> Api {
    Api(async {
        ops::delete_lag_alert(&c, &a, &cluster, &id).await?;
        no_content()
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

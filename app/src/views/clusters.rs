//! Clusters (list, create, rename, settings, delete with confirmation), the cluster page
//! with its bootstrap address and client configs, and API keys.

use std::collections::HashMap;

use axum::extract::{Path, State};
use broker::inspect::{CONSUMER_BYTE_RATE, PRODUCER_BYTE_RATE};
use leptos::prelude::*;
use tower_sessions::Session;

use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, fmt_time, html, Page, Posted, SignedIn};
use crate::auth::{self, take_flash, Flash};
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::ops::{self, ClusterRef};
use crate::AppState;

/// A cluster page's viewer and cluster.
pub type Cluster = InCluster<SignedIn>;

/// Tabs of a cluster's pages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Tab {
    Overview,
    Topics,
    Groups,
    Keys,
    Acls,
}

/// The tabs of a cluster's pages; API keys only for those who may see them (owners and
/// admins) and only for clusters that have keys.
pub fn tabs(c: &ClusterRef, active: Tab, viewer: &auth::Viewer) -> AnyView {
    let base = format!("/clusters/{}", enc(&c.id));
    let item = |tab: Tab, href: String, label: &'static str| {
        let class = if tab == active { "active" } else { "" };
        view! { <a class=class href=href>{label}</a> }
    };
    let keys = (!c.builtin && viewer.role.can_admin())
        .then(|| item(Tab::Keys, format!("{base}/keys"), "API keys"));
    let acls = (!c.builtin && viewer.role.can_admin())
        .then(|| item(Tab::Acls, format!("{base}/acls"), "ACLs"));
    view! {
        <nav class="tabs">
            {item(Tab::Overview, base.clone(), "Overview")}
            {item(Tab::Topics, format!("{base}/topics"), "Topics")}
            {item(Tab::Groups, format!("{base}/groups"), "Consumer groups")}
            {keys}
            {acls}
        </nav>
    }
    .into_any()
}

/// A retention in words: "7 days", "12 hours", "forever".
pub fn human_ms(ms: i64) -> String {
    match ms {
        ms if ms < 0 => "forever".to_string(),
        ms if ms % 86_400_000 == 0 => super::plural(ms / 86_400_000, "day"),
        ms if ms % 3_600_000 == 0 => super::plural(ms / 3_600_000, "hour"),
        ms if ms % 60_000 == 0 => super::plural(ms / 60_000, "minute"),
        ms => format!("{:.1} seconds", ms as f64 / 1000.0),
    }
}

pub async fn list(State(c): State<AppState>, session: Session, SignedIn(viewer): SignedIn) -> Page {
    Page(
        async {
            let clusters = ops::clusters(&c, &viewer).await?;
            let rows = clusters
                .iter()
                .map(|cl| {
                    let href = format!("/clusters/{}", enc(&cl.id));
                    let name = cl.name.clone();
                    let id = cl.id.clone();
                    let created = if cl.builtin { "built-in".to_string() } else { fmt_time(cl.created_at_ms) };
                    view! { <tr><td><a href=href>{name}</a></td><td><code>{id}</code></td><td>{created}</td></tr> }
                })
                .collect::<Vec<_>>();
            let empty = clusters.is_empty().then(|| view! { <p class="empty">"No clusters yet."</p> });
            let read_only = (!viewer.role.can_admin()).then(|| {
                view! { <p class="hint">"You are a member of this organisation: owners and admins create and change clusters."</p> }
            });
            let create = viewer.role.can_admin().then(|| {
                view! {
                    <section class="card">
                        <h2>"New cluster"</h2>
                        <p class="hint">"A cluster is its own namespace of topics, consumer groups and API keys."</p>
                        <form method="post" action="/clusters" class="row" id="create-cluster">
                            {csrf_field(&viewer.csrf)}
                            <input name="name" required=true maxlength="64" placeholder="production"/>
                            <button type="submit">"Create cluster"</button>
                        </form>
                    </section>
                }
            });
            let body = view! {
                {create}
                <section class="card">
                    {read_only}
                    {empty}
                    <table>
                        <thead><tr><th>"Name"</th><th>"Id"</th><th>"Created"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            }
            .into_any();
            Ok(html(page(&viewer, Nav::Clusters, "Clusters", take_flash(&session).await, body)))
        }
        .await,
    )
}

pub async fn create(
    State(c): State<AppState>,
    session: Session,
    Posted(SignedIn(viewer), f): Posted<SignedIn>,
) -> Page {
    Page(
        async {
            match ops::create_cluster(&c, &viewer, f.get("name")).await {
                Ok(cl) => {
                    let to = format!("/clusters/{}", enc(&cl.id));
                    done(
                        &session,
                        &to,
                        format!(
                            "Cluster '{}' created. Create an API key to connect.",
                            cl.name
                        ),
                    )
                    .await
                }
                Err(r) => back_with(&session, "/clusters", r).await,
            }
        }
        .await,
    )
}

/// Connection settings for the usual clients. With `key` (a key id and its secret, right
/// after the key was made) they are filled in; otherwise they name KEY_ID and KEY_SECRET.
fn client_configs(bootstrap: &str, c: &ClusterRef, key: Option<(&str, &str)>) -> AnyView {
    let (key_id, key_secret) = key.unwrap_or(("KEY_ID", "KEY_SECRET"));
    let (kcat, java, rdkafka, python) = if c.builtin {
        (
            format!("kcat -b {bootstrap} -L"),
            format!("bootstrap.servers={bootstrap}\n"),
            format!("bootstrap.servers={bootstrap}\n"),
            format!("from kafka import KafkaProducer\n\nproducer = KafkaProducer(bootstrap_servers=\"{bootstrap}\")\n"),
        )
    } else {
        (
            format!(
                "kcat -b {bootstrap} \\\n  -X security.protocol=SASL_PLAINTEXT -X sasl.mechanisms=SCRAM-SHA-256 \\\n  -X sasl.username={key_id} -X sasl.password={key_secret} -L"
            ),
            format!(
                "bootstrap.servers={bootstrap}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanism=SCRAM-SHA-256\nsasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required \\\n  username=\"{key_id}\" password=\"{key_secret}\";\n"
            ),
            format!(
                "bootstrap.servers={bootstrap}\nsecurity.protocol=SASL_PLAINTEXT\nsasl.mechanisms=SCRAM-SHA-256\nsasl.username={key_id}\nsasl.password={key_secret}\n"
            ),
            format!(
                "from kafka import KafkaProducer\n\nproducer = KafkaProducer(\n    bootstrap_servers=\"{bootstrap}\",\n    security_protocol=\"SASL_PLAINTEXT\",\n    sasl_mechanism=\"SCRAM-SHA-256\",\n    sasl_plain_username=\"{key_id}\",\n    sasl_plain_password=\"{key_secret}\",\n)\n"
            ),
        )
    };
    view! {
        <div class="configs">
            <details open=true><summary>"kcat"</summary><pre id="snippet-kcat">{kcat}</pre>{super::layout::copy_button("snippet-kcat")}</details>
            <details><summary>"Java (client.properties)"</summary><pre id="snippet-java">{java}</pre>{super::layout::copy_button("snippet-java")}</details>
            <details><summary>"librdkafka (C, Go, .NET, confluent-kafka-python)"</summary><pre id="snippet-rdkafka">{rdkafka}</pre>{super::layout::copy_button("snippet-rdkafka")}</details>
            <details><summary>"Python (kafka-python)"</summary><pre id="snippet-python">{python}</pre>{super::layout::copy_button("snippet-python")}</details>
        </div>
    }
    .into_any()
}

pub async fn show(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}", enc(&cl.id));
            let bootstrap = c.view.bootstrap();
            let auth_note = if cl.builtin {
                "Plaintext, no credentials: any client that does not authenticate lands in this cluster."
            } else {
                "SASL/SCRAM-SHA-256, SCRAM-SHA-512 or PLAIN with an API key of this cluster (key id as user name, secret as password)."
            };
            let manage = (viewer.role.can_admin() && !cl.builtin).then(|| {
                let rename = format!("{here}/rename");
                let settings = format!("{here}/settings");
                let delete = format!("{here}/delete");
                let name = cl.name.clone();
                let parts = cl.default_partitions.to_string();
                let retention = cl.default_retention_ms.to_string();
                let auto = cl.auto_create_topics;
                let acls_on = cl.acls_enabled;
                let acls_page = format!("{here}/acls");
                view! {
                    <section class="card">
                        <h2>"Settings"</h2>
                        <form method="post" action=rename class="row" id="rename-cluster">
                            {csrf_field(&viewer.csrf)}
                            <label>"Name"<input name="name" value=name required=true maxlength="64"/></label>
                            <button type="submit">"Rename"</button>
                        </form>
                        <form method="post" action=settings class="row" id="cluster-settings">
                            {csrf_field(&viewer.csrf)}
                            <label class="check"><input type="checkbox" name="auto_create" value="on" checked=auto/>"Create topics on first use"</label>
                            <label>"Default partitions"<input type="number" name="default_partitions" min="1" max="1000" value=parts/></label>
                            <label>{format!("Default retention in ms, -1 = forever (now {})", human_ms(cl.default_retention_ms))}<input type="number" name="default_retention_ms" value=retention/></label>
                            <label class="check"><input type="checkbox" name="acls_enabled" value="on" checked=acls_on/>"Enforce ACLs (keys may do only what an "<a href=acls_page>"ACL"</a>" allows)"</label>
                            <button type="submit">"Save settings"</button>
                        </form>
                        <p><a class="button danger" href=delete>"Delete this cluster…"</a></p>
                    </section>
                }
            });
            let id_text = cl.id.clone();
            let body = view! {
                {tabs(&cl, Tab::Overview, &viewer)}
                <section class="card">
                    <h2>"Connect"</h2>
                    <p>"Bootstrap address: "<code id="bootstrap">{bootstrap.clone()}</code>" · cluster id "<code>{id_text}</code></p>
                    <p class="hint">{auth_note}</p>
                    {client_configs(&bootstrap, &cl, None)}
                </section>
                {manage}
            }
            .into_any();
            let title = format!("Cluster {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

pub async fn rename(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}", enc(&cluster.id));
            match ops::rename_cluster(&c, &viewer, &cluster, f.get("name")).await {
                Ok(()) => done(&session, &here, "Cluster renamed.").await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn settings(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}", enc(&cluster.id));
            let parts = f.get("default_partitions").trim().parse::<i32>();
            let retention = f.get("default_retention_ms").trim().parse::<i64>();
            let result = match (parts, retention) {
                (Ok(p), Ok(r)) => {
                    let auto = f.has("auto_create");
                    match ops::update_cluster_settings(&c, &viewer, &cluster, auto, p, r).await {
                        Ok(()) => {
                            let acls = f.has("acls_enabled");
                            crate::acl_ops::set_acls_enabled(&c, &viewer, &cluster, acls).await
                        }
                        Err(r) => Err(r),
                    }
                }
                _ => Err(Refusal::bad_request(
                    "Partitions and retention must be whole numbers.",
                )),
            };
            match result {
                Ok(()) => done(&session, &here, "Settings saved.").await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn delete_form(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/delete", enc(&cl.id));
            viewer.require_admin()?;
            let (topics, _) = ops::cluster_counts(&c, &cl).await?;
            let name = cl.name.clone();
            let body = view! {
                <section class="card danger-zone">
                    <p>"Deleting "<b>{name.clone()}</b>" removes its "{super::plural(topics, "topic")}" with all their records, its consumer-group offsets and its API keys. This cannot be undone."</p>
                    <form method="post" action=here class="stack" id="delete-cluster">
                        {csrf_field(&viewer.csrf)}
                        <label>"Type the cluster's name to confirm"<input name="confirm" required=true autocomplete="off"/></label>
                        <button type="submit" class="danger">"Delete cluster"</button>
                    </form>
                </section>
            }
            .into_any();
            let title = format!("Delete cluster {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

pub async fn delete(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster: cl,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/delete", enc(&cl.id));
            match ops::delete_cluster(&c, &viewer, &cl, f.get("confirm")).await {
                Ok(()) => {
                    done(
                        &session,
                        "/clusters",
                        format!("Cluster '{}' deleted.", cl.name),
                    )
                    .await
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn keys(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/keys", enc(&cl.id));
            let keys = ops::api_keys(&c, &viewer, &cl).await?;
            let admin = viewer.role.can_admin();
            // Each key's ACL count and quotas (crate::views::acls).
            let acls = crate::acl_ops::acls(&c, &cl, None).await?;
            let quotas: std::collections::HashMap<(String, String), f64> =
                crate::acl_ops::quotas(&c, &cl)
                    .await?
                    .into_iter()
                    .map(|q| ((q.user, q.key), q.value))
                    .collect();
            let rows = keys
                .iter()
                .map(|k| {
                    let status = match k.revoked_at_ms {
                        Some(t) => format!("revoked {}", fmt_time(t)),
                        None => "active".to_string(),
                    };
                    let revoke = (admin && k.revoked_at_ms.is_none()).then(|| {
                        let action = format!("{here}/{}/revoke", enc(&k.id));
                        view! {
                            <details class="confirm">
                                <summary>"Revoke…"</summary>
                                <form method="post" action=action class="inline">
                                    {csrf_field(&viewer.csrf)}
                                    <span class="hint">"Clients using it are cut off."</span>
                                    <button type="submit" class="small danger">"Revoke"</button>
                                </form>
                            </details>
                        }
                    });
                    let last = k.last_used_at_ms.map(fmt_time).unwrap_or_else(|| "never".into());
                    view! {
                        <tr>
                            <td>{k.name.clone()}</td>
                            <td><code>{k.id.clone()}</code></td>
                            <td>{k.created_by.clone()}</td>
                            <td>{fmt_time(k.created_at_ms)}</td>
                            <td>{last}</td>
                            <td>{status}</td>
                            {key_cells(&cl.id, &viewer.csrf, admin, &k.id, acls.iter().filter(|b| b.principal == format!("User:{}", k.id)).count(), &quotas)}
                            <td>{revoke}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let empty = keys.is_empty().then(|| view! { <p class="empty">"No API keys yet. Clients of this cluster authenticate with one."</p> });
            let create = admin.then(|| {
                let action = here.clone();
                view! {
                    <form method="post" action=action class="row" id="create-key">
                        {csrf_field(&viewer.csrf)}
                        <input name="name" required=true maxlength="64" placeholder="orders-service"/>
                        <button type="submit">"Create API key"</button>
                    </form>
                }
            });
            let flash = take_flash(&session).await;
            // Right after a key was made: the snippets with its id and secret filled in.
            let connect = flash.as_ref().and_then(|f| {
                let id = f.key_id.as_deref()?;
                let secret = f.secret.as_ref()?.1.as_str();
                let bootstrap = c.view.bootstrap();
                let title = format!("Connect with key {id}");
                Some(view! {
                    <section class="card" id="connect-new-key">
                        <h2>{title}</h2>
                        <p class="hint">"These settings carry the new secret: copy what you need now, it is not shown again."</p>
                        {client_configs(&bootstrap, &cl, Some((id, secret)))}
                    </section>
                })
            });
            let body = view! {
                {tabs(&cl, Tab::Keys, &viewer)}
                {connect}
                <section class="card">
                    <p class="hint">"Use the key id as SASL user name and the secret as password (PLAIN, SCRAM-SHA-256 or SCRAM-SHA-512). A revoked key stops working for new connections within seconds. Last use is recorded at most once a minute."</p>
                    {create}
                    {empty}
                    <table>
                        <thead><tr><th>"Name"</th><th>"Key id"</th><th>"Created by"</th><th>"Created"</th><th>"Last used"</th><th>"Status"</th><th>"ACLs"</th><th>"Quotas"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            }
            .into_any();
            let title = format!("API keys of {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, flash, body)))
        }
        .await,
    )
}

pub async fn create_key(
    State(c): State<AppState>,
    session: Session,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        f,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/keys", enc(&cluster.id));
            match ops::create_api_key(&c, &viewer, &cluster, f.get("name")).await {
                Ok((info, secret)) => {
                    auth::set_flash(
                        &session,
                        Flash {
                            ok: true,
                            text: format!("API key '{}' created. Key id: {}", info.name, info.id),
                            secret: Some(("Secret".to_string(), secret)),
                            key_id: Some(info.id.clone()),
                        },
                    )
                    .await?;
                    Ok(super::see_other(&here))
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn revoke_key(
    State(c): State<AppState>,
    session: Session,
    Path((_, key)): Path<(String, String)>,
    Posted(
        InCluster {
            who: SignedIn(viewer),
            cluster,
        },
        _,
    ): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/keys", enc(&cluster.id));
            match ops::revoke_api_key(&c, &viewer, &cluster, &key).await {
                Ok(()) => done(&session, &here, format!("API key {key} revoked.")).await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

/// The ACL link and quota form of one key in the key list.
pub fn key_cells(
    cluster_id: &str,
    csrf: &str,
    admin: bool,
    key_id: &str,
    acl_count: usize,
    quotas: &HashMap<(String, String), f64>,
) -> AnyView {
    let acls_href = format!(
        "/clusters/{}/acls?principal={}",
        enc(cluster_id),
        enc(&format!("User:{key_id}"))
    );
    let acl_label = match acl_count {
        0 => "no ACLs".to_string(),
        1 => "1 ACL".to_string(),
        n => format!("{n} ACLs"),
    };
    let value = |q: &str| {
        quotas
            .get(&(key_id.to_string(), q.to_string()))
            .map(|v| format!("{v}"))
            .unwrap_or_default()
    };
    let (produce, consume) = (value(PRODUCER_BYTE_RATE), value(CONSUMER_BYTE_RATE));
    let quota = if admin {
        let action = format!("/clusters/{}/keys/{}/quotas", enc(cluster_id), enc(key_id));
        view! {
            <form method="post" action=action class="inline quota">
                {csrf_field(csrf)}
                <input type="number" name=PRODUCER_BYTE_RATE min="1" step="any" value=produce placeholder="produce B/s" title="producer_byte_rate (bytes per second, empty = no limit)"/>
                <input type="number" name=CONSUMER_BYTE_RATE min="1" step="any" value=consume placeholder="fetch B/s" title="consumer_byte_rate (bytes per second, empty = no limit)"/>
                <button type="submit" class="small">"Set"</button>
            </form>
        }
        .into_any()
    } else {
        let text = |v: String| {
            if v.is_empty() {
                "no limit".to_string()
            } else {
                format!("{v} B/s")
            }
        };
        view! { <span>{format!("produce {} · fetch {}", text(produce), text(consume))}</span> }
            .into_any()
    };
    view! {
        <td><a href=acls_href>{acl_label}</a></td>
        <td>{quota}</td>
    }
    .into_any()
}

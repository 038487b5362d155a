//! Topics: the list (search, sort and pages through GET query parameters, no script),
//! create, the topic page with its partitions, consumer groups and configs, adding
//! partitions, config edits and delete (the message browser is in `messages`).
//!
//! A refused "new topic" form comes back filled in: the handler keeps what was typed in
//! the session (one value, taken by the next list page of the same cluster) and
//! redirects with the error as a flash, so a reload never resubmits the form.
//!
//! Pure parts, with their own tests: the list's query (`query`: search, sort, pages; the
//! JSON API takes the same) and config values in words (`config_words`).

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use broker::inspect::MAX_PARTITIONS;
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, fmt_bytes, fmt_time, html, plural, Page, Posted, SignedIn};
use crate::auth::take_flash;
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::{ops, AppState};

mod config_words;
mod query;

pub use config_words::{duration_words, human_config, size_words};
pub use query::{list_href, parse_list_query, select_topics, ListQuery, Paging, SortBy, PAGE_SIZE};

/// Session key of what a refused "new topic" form held.
const TYPED_KEY: &str = "topic_form";

/// What was typed into a refused "new topic" form, for the list page to fill it with.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
struct TypedTopic {
    /// The cluster whose list shows it (another cluster's list leaves it alone).
    cluster: String,
    name: String,
    partitions: String,
    configs: String,
}

async fn take_typed(session: &Session, cluster: &str) -> Option<TypedTopic> {
    let typed = session.get::<TypedTopic>(TYPED_KEY).await.ok().flatten()?;
    if typed.cluster != cluster {
        return None;
    }
    // Shown once, like the flash it goes with.
    let _ = session.remove::<TypedTopic>(TYPED_KEY).await;
    Some(typed)
}

pub async fn list(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
    Query(query): Query<HashMap<String, String>>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics", enc(&cl.id));
            let lq = parse_list_query(&query)?;
            let all = ops::topics(&c, &cl).await?;
            let in_cluster = all.len();
            let matching = select_topics(all, &lq.q, lq.sort, lq.desc);
            let paging = Paging::new(matching.len(), lq.page);
            let rows = matching[paging.start..paging.end]
                .iter()
                .map(|t| {
                    let href = format!("{here}/{}", enc(&t.name));
                    view! {
                        <tr>
                            <td><a href=href>{t.name.clone()}</a></td>
                            <td class="num">{t.partitions}</td>
                            <td class="num">{t.records}</td>
                            <td class="num">{fmt_bytes(t.size_bytes)}</td>
                            <td class="num">{format!("{:.1}", t.records_per_sec)}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            // Column headers are links: the sorted column flips its direction, another
            // column starts in its own default direction; the search stays, paging restarts.
            let column = |sort: SortBy, label: &'static str, num: bool| {
                let active = lq.sort == sort;
                let desc = if active { !lq.desc } else { sort.desc_by_default() };
                let href = list_href(&here, &lq.q, sort, desc, 1);
                let (arrow, aria) = match (active, lq.desc) {
                    (false, _) => ("", "none"),
                    (true, false) => (" ▲", "ascending"),
                    (true, true) => (" ▼", "descending"),
                };
                let class = if num { "num" } else { "" };
                let hint = format!("Sort by {}", label.to_lowercase());
                view! { <th class=class aria-sort=aria><a href=href title=hint>{label}{arrow}</a></th> }
            };
            let showing = (paging.total > 0).then(|| {
                let mut text = format!(
                    "Showing {}–{} of {}",
                    paging.start + 1,
                    paging.end,
                    plural(paging.total, "topic")
                );
                if !lq.q.is_empty() {
                    text.push_str(&format!(
                        " whose name contains '{}' ({} in the cluster)",
                        lq.q,
                        plural(in_cluster, "topic")
                    ));
                }
                view! { <p class="hint" id="topics-shown">{text}</p> }
            });
            let empty = if in_cluster == 0 {
                let text = if viewer.role.can_admin() {
                    "No topics yet. Create one above, or produce to a new name when auto-creation is on."
                } else {
                    "No topics yet. They appear when an admin creates one, or when clients produce to a new name while auto-creation is on."
                };
                Some(view! { <p class="empty">{text}</p> }.into_any())
            } else if paging.total == 0 {
                let all_href = list_href(&here, "", lq.sort, lq.desc, 1);
                let text = format!("No topic name contains '{}'. ", lq.q);
                Some(view! { <p class="empty">{text}<a href=all_href>"Show all topics"</a></p> }.into_any())
            } else {
                None
            };
            let pager = (paging.pages > 1).then(|| {
                let prev = (paging.page > 1).then(|| {
                    let href = list_href(&here, &lq.q, lq.sort, lq.desc, paging.page - 1);
                    view! { <a href=href rel="prev">"← Previous"</a> }
                });
                let next = (paging.page < paging.pages).then(|| {
                    let href = list_href(&here, &lq.q, lq.sort, lq.desc, paging.page + 1);
                    view! { <a href=href rel="next">"Next →"</a> }
                });
                let at = format!(" Page {} of {} ", paging.page, paging.pages);
                view! { <nav class="pager" aria-label="Pages of topics" id="topics-pager">{prev}{at}{next}</nav> }
            });
            let search = {
                let clear = (!lq.q.is_empty()).then(|| {
                    let href = list_href(&here, "", lq.sort, lq.desc, 1);
                    view! { <a href=href>"Clear search"</a> }
                });
                let dir = if lq.desc { "desc" } else { "asc" };
                view! {
                    <form method="get" action=here.clone() class="row" id="topic-search" role="search">
                        <label>"Search topics by name"<input type="search" name="q" value=lq.q.clone() placeholder="part of a name"/></label>
                        <input type="hidden" name="sort" value=lq.sort.as_str()/>
                        <input type="hidden" name="dir" value=dir/>
                        <button type="submit">"Search"</button>
                        {clear}
                    </form>
                }
            };
            let typed = take_typed(&session, &cl.id).await;
            // Above the list, folded away once there are topics, so a long list never
            // pushes it out of sight; open again when it comes back with an error.
            let create = viewer.role.can_admin().then(|| {
                let open = typed.is_some() || in_cluster == 0;
                let t = typed.unwrap_or_else(|| TypedTopic {
                    partitions: cl.default_partitions.to_string(),
                    ..TypedTopic::default()
                });
                let max = MAX_PARTITIONS.to_string();
                view! {
                    <section class="card configs">
                        <details open=open id="new-topic">
                            <summary>"New topic"</summary>
                            <form method="post" action=here.clone() class="stack" id="create-topic">
                                {csrf_field(&viewer.csrf)}
                                <div class="row">
                                    <label>"Name"<input name="name" required=true maxlength="249" pattern="[a-zA-Z0-9._\\-]+" placeholder="orders" value=t.name/></label>
                                    <label>"Partitions"<input type="number" name="partitions" min="1" max=max value=t.partitions/></label>
                                </div>
                                <label>"Configs (one key=value per line, optional)"<textarea name="configs" rows="3" placeholder="retention.ms=86400000\ncleanup.policy=delete">{t.configs}</textarea></label>
                                <button type="submit">"Create topic"</button>
                            </form>
                        </details>
                    </section>
                }
            });
            let body = view! {
                {tabs(&cl, Tab::Topics, &viewer)}
                {create}
                <section class="card">
                    {search}
                    {showing}
                    {empty}
                    <table id="topics">
                        <thead><tr>
                            {column(SortBy::Name, "Topic", false)}
                            {column(SortBy::Partitions, "Partitions", true)}
                            {column(SortBy::Records, "Records", true)}
                            {column(SortBy::Size, "Size", true)}
                            {column(SortBy::Rate, "Records/s (5 min)", true)}
                        </tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                    {pager}
                </section>
            }
            .into_any();
            let title = format!("Topics of {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

/// The partitions field of the new-topic form; empty means the cluster's default.
fn parse_partitions(typed: &str, default: i32) -> Result<i32, Refusal> {
    let typed = typed.trim();
    if typed.is_empty() {
        return Ok(default);
    }
    typed.parse::<i32>().map_err(|_| {
        Refusal::bad_request(format!(
            "Partitions must be a whole number between 1 and {MAX_PARTITIONS} (you gave '{typed}')."
        ))
    })
}

pub async fn create(
    State(c): State<AppState>,
    session: Session,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics", enc(&cluster.id));
            let actor = who.0.actor();
            let name = f.get("name").trim().to_string();
            let result = async {
                let partitions = parse_partitions(f.get("partitions"), cluster.default_partitions)?;
                let configs = ops::parse_config_lines(f.get("configs"))?;
                ops::create_topic(&c, &actor, &cluster, &name, partitions, &configs).await
            }
            .await;
            match result {
                Ok(()) => {
                    done(
                        &session,
                        &format!("{here}/{}", enc(&name)),
                        format!("Topic '{name}' created."),
                    )
                    .await
                }
                Err(r) => {
                    // The list page shows the error with the form as it was sent (refusals
                    // about who is asking get their own page and keep nothing).
                    if r.login_next.is_none() && r.status != StatusCode::FORBIDDEN {
                        let typed = TypedTopic {
                            cluster: cluster.id.clone(),
                            name: f.get("name").to_string(),
                            partitions: f.get("partitions").to_string(),
                            configs: f.get("configs").to_string(),
                        };
                        session
                            .insert(TYPED_KEY, typed)
                            .await
                            .map_err(|e| Refusal::internal("session store request failed", e))?;
                    }
                    back_with(&session, &here, r).await
                }
            }
        }
        .await,
    )
}

// ---- one topic ----

pub async fn show(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
    Path((_, topic)): Path<(String, String)>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics/{}", enc(&cl.id), enc(&topic));
            let t = ops::topic(&c, &cl, &topic).await?;
            let groups = ops::topic_groups(&c, &cl, &topic).await?;
            let parts = t
                .partitions
                .iter()
                .map(|p| {
                    view! {
                        <tr>
                            <td class="num">{p.partition}</td>
                            <td class="num">{p.start_offset}</td>
                            <td class="num">{p.end_offset}</td>
                            <td class="num">{p.end_offset - p.start_offset}</td>
                            <td class="num">{fmt_bytes(p.size_bytes)}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let group_rows = groups
                .iter()
                .map(|g| {
                    let href = format!("/clusters/{}/groups/{}", enc(&cl.id), enc(&g.group_id));
                    let lag = g.offset_lag.map(|l| l.to_string()).unwrap_or_else(|| "—".into());
                    view! {
                        <tr>
                            <td><a href=href>{g.group_id.clone()}</a></td>
                            <td>{g.state.clone()}</td>
                            <td class="num">{g.members}</td>
                            <td class="num">{lag}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let no_groups = groups.is_empty().then(|| {
                view! { <p class="empty">"No consumer group reads this topic: none has committed offsets on it or a member subscribed to it."</p> }
            });
            let group_table = (!groups.is_empty()).then(|| {
                view! {
                    <p class="hint">"Offset lag on this topic's partitions only; “—” when the group has committed no offset here yet."</p>
                    <table id="topic-groups">
                        <thead><tr><th>"Group"</th><th>"State"</th><th class="num">"Members"</th><th class="num">"Offset lag"</th></tr></thead>
                        <tbody>{group_rows}</tbody>
                    </table>
                }
            });
            let configs = t
                .effective_configs
                .iter()
                .map(|cv| {
                    let source = if cv.is_default { "default" } else { "set on topic" };
                    let value = match human_config(&cv.name, &cv.value) {
                        Some(words) => view! { <span title=cv.value.clone()>{words}</span> }.into_any(),
                        None => view! { <code>{cv.value.clone()}</code> }.into_any(),
                    };
                    view! { <tr><td><code>{cv.name.clone()}</code></td><td>{value}</td><td>{source}</td></tr> }
                })
                .collect::<Vec<_>>();
            let admin = viewer.role.can_admin();
            let edit = admin.then(|| {
                let action = format!("{here}/configs");
                let text = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n");
                let del = format!("{here}/delete");
                let grow = format!("{here}/partitions");
                let now = t.partitions.len();
                let next = (now + 1).to_string();
                let max = MAX_PARTITIONS.to_string();
                let label = format!("New total (now {})", plural(now, "partition"));
                view! {
                    <section class="card">
                        <h2>"Add partitions"</h2>
                        <p class="hint">"Give the new total, as kafka-topics --alter --partitions does. Partitions cannot be removed again, and records with a key may go to another partition from then on (the partition is the key's hash modulo the count), so per-key order holds only among records written after the change."</p>
                        <form method="post" action=grow class="row" id="add-partitions">
                            {csrf_field(&viewer.csrf)}
                            <label>{label}<input type="number" name="count" required=true min=next.clone() max=max value=next/></label>
                            <button type="submit">"Add partitions"</button>
                        </form>
                    </section>
                    <section class="card">
                        <h2>"Edit configs"</h2>
                        <form method="post" action=action class="stack" id="topic-configs">
                            {csrf_field(&viewer.csrf)}
                            <label>"Configs set on this topic (key=value per line; remove a line to return to the default)"
                                <textarea name="configs" rows="4">{text}</textarea>
                            </label>
                            <button type="submit">"Save configs"</button>
                        </form>
                    </section>
                    <section class="card danger-zone">
                        <h2>"Delete topic"</h2>
                        <form method="post" action=del class="row" id="delete-topic">
                            {csrf_field(&viewer.csrf)}
                            <label>"Type the topic's name to confirm"<input name="confirm" required=true autocomplete="off"/></label>
                            <button type="submit" class="danger">"Delete topic and its records"</button>
                        </form>
                    </section>
                }
            });
            let browse = format!("{here}/messages");
            let summary = format!(
                "{} · {} · {} · created {}",
                plural(t.partitions.len(), "partition"),
                plural(t.records, "record"),
                fmt_bytes(t.size_bytes),
                fmt_time(t.created_at_ms)
            );
            let body = view! {
                {tabs(&cl, Tab::Topics, &viewer)}
                <p class="lead">{summary}" · "<a class="button" href=browse>"Browse messages"</a></p>
                <section class="card">
                    <h2>"Partitions"</h2>
                    <table id="partitions">
                        <thead><tr><th class="num">"Partition"</th><th class="num">"Start offset"</th><th class="num">"End offset"</th><th class="num">"Records"</th><th class="num">"Size"</th></tr></thead>
                        <tbody>{parts}</tbody>
                    </table>
                </section>
                <section class="card" id="consumer-groups">
                    <h2>"Consumer groups"</h2>
                    {no_groups}
                    {group_table}
                </section>
                <section class="card">
                    <h2>"Configs"</h2>
                    <table id="topic-config-values"><thead><tr><th>"Name"</th><th>"Value"</th><th>"Source"</th></tr></thead><tbody>{configs}</tbody></table>
                </section>
                {edit}
            }
            .into_any();
            let title = format!("Topic {}", t.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

pub async fn add_partitions(
    State(c): State<AppState>,
    session: Session,
    Path((_, topic)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics/{}", enc(&cluster.id), enc(&topic));
            let actor = who.0.actor();
            let typed = f.get("count").trim();
            let result = async {
                let count = typed.parse::<i64>().map_err(|_| {
                    Refusal::bad_request(if typed.is_empty() {
                        "Give the new total number of partitions.".to_string()
                    } else {
                        format!(
                            "Give the new total number of partitions as a whole number (you gave '{typed}')."
                        )
                    })
                })?;
                ops::add_partitions(&c, &actor, &cluster, &topic, count).await?;
                Ok::<i64, Refusal>(count)
            }
            .await;
            match result {
                Ok(count) => {
                    done(
                        &session,
                        &here,
                        format!("Topic '{topic}' now has {}.", plural(count, "partition")),
                    )
                    .await
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn configs(
    State(c): State<AppState>,
    session: Session,
    Path((_, topic)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics/{}", enc(&cluster.id), enc(&topic));
            let actor = who.0.actor();
            let result = async {
                let wanted = ops::parse_config_lines(f.get("configs"))?;
                let current = ops::topic(&c, &cluster, &topic).await?;
                let delete = current
                    .configs
                    .iter()
                    .filter(|(k, _)| !wanted.iter().any(|(w, _)| w == k))
                    .map(|(k, _)| k.clone())
                    .collect::<Vec<_>>();
                ops::alter_topic_configs(&c, &actor, &cluster, &topic, &wanted, &delete).await
            }
            .await;
            match result {
                Ok(()) => done(&session, &here, "Configs saved.").await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

pub async fn delete(
    State(c): State<AppState>,
    session: Session,
    Path((_, topic)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics/{}", enc(&cluster.id), enc(&topic));
            let actor = who.0.actor();
            if f.get("confirm").trim() != topic {
                return back_with(
                    &session,
                    &here,
                    Refusal::bad_request(format!("Type '{topic}' to confirm the deletion.")),
                )
                .await;
            }
            match ops::delete_topic(&c, &actor, &cluster, &topic).await {
                Ok(()) => {
                    done(
                        &session,
                        &format!("/clusters/{}/topics", enc(&cluster.id)),
                        format!("Topic '{topic}' deleted."),
                    )
                    .await
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_partitions_field_means_the_default() {
        assert_eq!(parse_partitions(" ", 3).unwrap(), 3);
        assert_eq!(parse_partitions("12", 3).unwrap(), 12);
        let e = parse_partitions("many", 3).unwrap_err();
        assert!(e.message.contains("(you gave 'many')"), "{}", e.message);
    }
}

//! Consumer groups: list, detail with members, per-partition offsets and lag, lag charts,
//! and offset reset while the group is empty.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use broker::inspect::{GroupLag, ResetTo};
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::topics::parse_time;
use super::{back_with, done, enc, html, Page, Posted, SignedIn};
use crate::auth::take_flash;
use crate::chart::{self, Metric};
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::{ops, AppState};

fn fmt_lag(s: Option<f64>) -> String {
    match s {
        None => "—".to_string(),
        Some(s) if s < 60.0 => format!("{s:.1} s"),
        Some(s) if s < 3600.0 => format!("{:.1} min", s / 60.0),
        Some(s) => format!("{:.1} h", s / 3600.0),
    }
}

pub async fn list(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/groups", enc(&cl.id));
            let groups = ops::groups(&c, &cl).await?;
            let rows = groups
                .iter()
                .map(|g| {
                    let href = format!("{here}/{}", enc(&g.group_id));
                    let lag = g.total_offset_lag.map(|l| l.to_string()).unwrap_or_else(|| "—".into());
                    view! {
                        <tr>
                            <td><a href=href>{g.group_id.clone()}</a></td>
                            <td>{g.state.clone()}</td>
                            <td class="num">{g.members}</td>
                            <td>{g.topics.join(", ")}</td>
                            <td class="num">{lag}</td>
                            <td class="num">{fmt_lag(g.max_time_lag_seconds)}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let empty = groups.is_empty().then(|| {
                view! { <p class="empty">"No consumer groups yet. They appear when a consumer with a group.id joins or commits offsets."</p> }
            });
            let body = view! {
                {tabs(&cl, Tab::Groups, &viewer)}
                <section class="card">
                    {empty}
                    <table id="groups">
                        <thead><tr><th>"Group"</th><th>"State"</th><th class="num">"Members"</th><th>"Topics"</th><th class="num">"Offset lag"</th><th class="num">"Time lag"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
            }
            .into_any();
            let title = format!("Consumer groups of {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

pub async fn show(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
    Path((_, group)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/groups/{}", enc(&cl.id), enc(&group));
            let g = ops::group(&c, &cl, &group).await?;
            let window = match q.get("window").map(|s| s.as_str()) {
                Some("24h") => "24h",
                _ => "1h",
            };
            let members = g
                .members
                .iter()
                .map(|m| {
                    let assignment = m
                        .assignment
                        .iter()
                        .map(|(t, ps)| format!("{t} [{}]", ps.iter().map(|p| p.to_string()).collect::<Vec<_>>().join(", ")))
                        .collect::<Vec<_>>()
                        .join("; ");
                    view! {
                        <tr>
                            <td><code>{m.member_id.clone()}</code></td>
                            <td>{m.client_id.clone()}</td>
                            <td>{m.client_host.clone()}</td>
                            <td>{assignment}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let no_members = g.members.is_empty().then(|| view! { <p class="empty">"No active members."</p> });
            let member_table = (!g.members.is_empty()).then(|| {
                view! {
                    <table>
                        <thead><tr><th>"Member"</th><th>"Client id"</th><th>"Host"</th><th>"Assignment"</th></tr></thead>
                        <tbody>{members}</tbody>
                    </table>
                }
            });
            let parts = g
                .partitions
                .iter()
                .map(|p| {
                    view! {
                        <tr>
                            <td>{p.topic.clone()}</td>
                            <td class="num">{p.partition}</td>
                            <td class="num">{p.committed_offset}</td>
                            <td class="num">{p.log_end_offset}</td>
                            <td class="num">{p.offset_lag}</td>
                            <td class="num">{fmt_lag(p.time_lag_seconds)}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let chart_src = |metric: &str| format!("{here}/lag.svg?window={window}&metric={metric}");
            let win_link = |w: &'static str| {
                let class = if w == window { "active" } else { "" };
                let href = format!("{here}?window={w}");
                view! { <a class=class href=href>{w}</a> }
            };
            let reset = (viewer.role.can_admin()).then(|| {
                let action = format!("{here}/reset");
                let topics = {
                    let mut t: Vec<String> = g.partitions.iter().map(|p| p.topic.clone()).collect();
                    t.dedup();
                    t
                };
                let topic_options = std::iter::once(view! { <option value="">"all committed topics"</option> }.into_any())
                    .chain(topics.into_iter().map(|t| {
                        let v = t.clone();
                        view! { <option value=v>{t}</option> }.into_any()
                    }))
                    .collect::<Vec<_>>();
                let note = if g.members.is_empty() {
                    "The group is empty, so its offsets can be moved."
                } else {
                    "Stop the group's consumers first: offsets can only be reset while the group has no members."
                };
                view! {
                    <section class="card">
                        <h2>"Reset offsets"</h2>
                        <p class="hint">{note}</p>
                        <form method="post" action=action class="row" id="reset-offsets">
                            {csrf_field(&viewer.csrf)}
                            <label>"Topic"<select name="topic">{topic_options}</select></label>
                            <label>"To"<select name="to">
                                <option value="earliest">"earliest"</option>
                                <option value="latest">"latest"</option>
                                <option value="time">"time (UTC)"</option>
                            </select></label>
                            <label>"Time"<input type="datetime-local" name="time"/></label>
                            <button type="submit">"Reset"</button>
                        </form>
                    </section>
                }
            });
            let summary = format!(
                "State {} · {} members · offset lag {} · time lag {}",
                g.state,
                g.members.len(),
                g.total_offset_lag,
                fmt_lag(g.max_time_lag_seconds)
            );
            let body = view! {
                {tabs(&cl, Tab::Groups, &viewer)}
                <p class="lead" id="group-summary">{summary}</p>
                <section class="card">
                    <h2>"Lag "<span class="windows">{win_link("1h")}{win_link("24h")}</span></h2>
                    <div class="charts">
                        <img class="chart" data-refresh="5" alt="time lag chart" src=chart_src("time") width=chart::WIDTH height=chart::HEIGHT/>
                        <img class="chart" data-refresh="5" alt="offset lag chart" src=chart_src("offset") width=chart::WIDTH height=chart::HEIGHT/>
                    </div>
                </section>
                <section class="card">
                    <h2>"Partitions"</h2>
                    <table id="group-partitions">
                        <thead><tr><th>"Topic"</th><th class="num">"Partition"</th><th class="num">"Committed"</th><th class="num">"Log end"</th><th class="num">"Offset lag"</th><th class="num">"Time lag"</th></tr></thead>
                        <tbody>{parts}</tbody>
                    </table>
                </section>
                <section class="card">
                    <h2>"Members"</h2>
                    {no_members}
                    {member_table}
                </section>
                {reset}
            }
            .into_any();
            let title = format!("Group {}", g.group_id);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

pub fn parse_reset(to: &str, time: &str) -> Result<ResetTo, Refusal> {
    match to {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        "time" => parse_time(time).map(ResetTo::Timestamp).ok_or_else(|| {
            Refusal::bad_request(
                "Give a time as YYYY-MM-DDTHH:MM (UTC) or milliseconds since 1970.",
            )
        }),
        other => Err(Refusal::bad_request(format!(
            "Unknown reset target '{other}': use earliest, latest or time."
        ))),
    }
}

pub async fn reset(
    State(c): State<AppState>,
    session: Session,
    Path((_, group)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/groups/{}", enc(&cluster.id), enc(&group));
            let actor = who.0.actor();
            let result = async {
                let to = parse_reset(f.get("to"), f.get("time"))?;
                let topic = Some(f.get("topic").trim()).filter(|t| !t.is_empty());
                ops::reset_offsets(&c, &actor, &cluster, &group, topic, to).await
            }
            .await;
            match result {
                Ok(moved) => {
                    done(
                        &session,
                        &here,
                        format!("Offsets reset on {} partitions.", moved.len()),
                    )
                    .await
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

/// The lag chart as an SVG image (`window` 1h|24h, `metric` time|offset).
pub async fn chart(
    State(c): State<AppState>,
    InCluster { cluster, .. }: Cluster,
    Path((_, group)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    Page(
        async {
            let window = q.get("window").map(|s| s.as_str()).unwrap_or("1h");
            let metric = Metric::parse(q.get("metric").map(|s| s.as_str()).unwrap_or("time"))
                .ok_or_else(|| Refusal::bad_request("metric must be time or offset"))?;
            let (points, current) = ops::lag_history(&c, &cluster, &group, window).await?;
            if points.is_empty() && current.is_none() {
                // No lag known: an unknown group is a 404, as its page is (checked only
                // then, since charts reload every few seconds).
                ops::group(&c, &cluster, &group).await?;
            }
            let svg = lag_chart(metric, window, &points, current.as_ref());
            Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg).into_response())
        }
        .await,
    )
}

/// The chart of a window: the minute history plus the latest computed value.
pub fn lag_chart(
    metric: Metric,
    window: &str,
    points: &[ops::LagPoint],
    current: Option<&GroupLag>,
) -> String {
    let now = broker::clock::now_ms();
    let span = if window == "24h" {
        86_400_000
    } else {
        3_600_000
    };
    let value = |time: f64, offset: i64| match metric {
        Metric::TimeLag => time,
        Metric::OffsetLag => offset as f64,
    };
    let mut series: Vec<(i64, f64)> = points
        .iter()
        .map(|p| {
            (
                p.minute_start_ms,
                value(p.max_time_lag_seconds, p.offset_lag),
            )
        })
        .collect();
    if let Some(cur) = current {
        series.push((
            cur.computed_at_ms,
            value(cur.max_time_lag_seconds, cur.total_offset_lag),
        ));
    }
    chart::lag_svg(metric, now - span, now, &series)
}

//! Consumer groups: list, detail with members, per-partition offsets and lag, lag charts
//! with the time-lag trend, offset resets (to a time, an offset or by a shift, on chosen
//! partitions; previewed first, then applied while the group is empty), and deleting the
//! group or its offsets of one topic.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::header;
use axum::response::IntoResponse;
use broker::inspect::{GroupDetail, GroupLag, OffsetReset, ResetSpec, ResetTo, TopicSummary};
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::messages::parse_time;
use super::{back_with, done, enc, html, Page, Posted, SignedIn};
use crate::auth::take_flash;
use crate::chart::{self, Metric};
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::trend::LagTrend;
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
            let alerts = super::alerts::group_alerts_section(&c, &viewer, &cl, &group).await?;
            let trend = ops::lag_trend(&c, &cl, &group).await?;
            let window = match q.get("window").map(|s| s.as_str()) {
                Some("24h") => "24h",
                _ => "1h",
            };
            let admin = viewer.role.can_admin();
            let form = ResetForm::read(|k| q.get(k).cloned().unwrap_or_default());
            // A preview asked for with the reset form: the plan, computed without a commit.
            let preview = if admin && q.contains_key("preview") {
                let actor = viewer.actor();
                Some(
                    async {
                        let spec = form.spec(true)?;
                        ops::reset_group_offsets(&c, &actor, &cl, &group, &spec).await
                    }
                    .await,
                )
            } else {
                None
            };
            let cluster_topics = if admin {
                ops::topics(&c, &cl).await?
            } else {
                Vec::new()
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
            // Topics the group has committed offsets on, in order (partitions come sorted).
            let mut committed: Vec<(String, usize)> = Vec::new();
            for p in &g.partitions {
                let same = committed.last().is_some_and(|(name, _)| *name == p.topic);
                if !same {
                    committed.push((p.topic.clone(), 0));
                }
                if let Some(last) = committed.last_mut() {
                    last.1 += 1;
                }
            }
            let reset = admin.then(|| {
                reset_card(&here, &viewer.csrf, &g, &committed, &cluster_topics, &form, preview)
            });
            let danger = admin.then(|| danger_zone(&here, &viewer.csrf, &g.group_id, &committed));
            let summary = format!(
                "State {} · {} · offset lag {} · time lag {}",
                g.state,
                super::plural(g.members.len(), "member"),
                g.total_offset_lag,
                fmt_lag(g.max_time_lag_seconds)
            );
            let trend_text = trend_line(g.total_offset_lag, &trend);
            let body = view! {
                {tabs(&cl, Tab::Groups, &viewer)}
                <p class="lead" id="group-summary">{summary}</p>
                <p class="lead" id="group-trend">{trend_text}</p>
                <section class="card">
                    <h2>"Lag "<span class="windows">{win_link("1h")}{win_link("24h")}</span></h2>
                    <div class="charts">
                        <img class="chart" data-refresh="5" alt="time lag chart" src=chart_src("time") width=chart::WIDTH height=chart::HEIGHT/>
                        <img class="chart" data-refresh="5" alt="offset lag chart" src=chart_src("offset") width=chart::WIDTH height=chart::HEIGHT/>
                    </div>
                </section>
                {alerts}
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
                {danger}
            }
            .into_any();
            let title = format!("Group {}", g.group_id);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

/// Where the time lag is heading, in words: "Caught up.", "Catching up: about 4 min to
/// go.", "Time lag growing by 12 s/min."
fn trend_line(offset_lag: i64, trend: &LagTrend) -> String {
    // Nothing left to read: whatever the history says, the group is there.
    if offset_lag == 0 {
        return "Caught up.".to_string();
    }
    match (trend.catch_up_eta_seconds, trend.trend_seconds_per_minute) {
        (Some(eta), Some(t)) => format!(
            "Catching up: about {} to go (time lag shrinking by {} s/min).",
            fmt_eta(eta),
            fmt_rate(-t)
        ),
        (_, Some(t)) if t >= 0.5 => format!("Time lag growing by {} s/min.", fmt_rate(t)),
        (_, Some(_)) => "Time lag steady.".to_string(),
        (_, None) => format!(
            "No time-lag trend yet: it needs {} whole minutes of lag history.",
            crate::trend::MIN_POINTS
        ),
    }
}

/// A rate in seconds per minute: whole seconds, or one decimal below 10.
fn fmt_rate(s: f64) -> String {
    if s < 10.0 {
        format!("{s:.1}")
    } else {
        format!("{s:.0}")
    }
}

/// A duration to go, rounded as a person would say it.
fn fmt_eta(s: f64) -> String {
    if s < 90.0 {
        format!("{:.0} s", s.max(1.0))
    } else if s < 90.0 * 60.0 {
        format!("{:.0} min", s / 60.0)
    } else if s < 48.0 * 3600.0 {
        format!("{:.1} h", s / 3600.0)
    } else {
        format!("{:.0} days", s / 86_400.0)
    }
}

/// The reset form's fields as typed, kept as text so a preview shows the form filled in
/// and its "Apply" form carries exactly the same values.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct ResetForm {
    pub topic: String,
    pub partitions: String,
    /// earliest | latest | time | offset | shift
    pub to: String,
    pub time: String,
    pub offset: String,
    pub shift: String,
}

impl ResetForm {
    const FIELDS: [&'static str; 6] = ["topic", "partitions", "to", "time", "offset", "shift"];

    /// Reads the fields through `get` (a query string or a posted form).
    pub fn read(get: impl Fn(&str) -> String) -> Self {
        ResetForm {
            topic: get("topic").trim().to_string(),
            partitions: get("partitions").trim().to_string(),
            to: get("to").trim().to_string(),
            time: get("time").trim().to_string(),
            offset: get("offset").trim().to_string(),
            shift: get("shift").trim().to_string(),
        }
    }

    fn value(&self, name: &str) -> &str {
        match name {
            "topic" => &self.topic,
            "partitions" => &self.partitions,
            "to" => &self.to,
            "time" => &self.time,
            "offset" => &self.offset,
            _ => &self.shift,
        }
    }

    /// The reset these fields ask for (`to` empty means earliest).
    pub fn spec(&self, dry_run: bool) -> Result<ResetSpec, Refusal> {
        let to = if self.to.is_empty() {
            "earliest"
        } else {
            &self.to
        };
        Ok(ResetSpec {
            to: parse_reset(to, &self.time, &self.offset, &self.shift)?,
            topic: Some(self.topic.clone()).filter(|t| !t.is_empty()),
            partitions: parse_partitions(&self.partitions)?,
            dry_run,
        })
    }
}

/// The reset card: the form (its button previews), then the preview with its Apply form.
fn reset_card(
    here: &str,
    csrf: &str,
    g: &GroupDetail,
    committed: &[(String, usize)],
    cluster_topics: &[TopicSummary],
    form: &ResetForm,
    preview: Option<Result<Vec<OffsetReset>, Refusal>>,
) -> AnyView {
    let mut topic_options = vec![{
        let selected = form.topic.is_empty();
        view! { <option value="" selected=selected>"all committed topics"</option> }.into_any()
    }];
    let known: Vec<&str> = committed.iter().map(|(t, _)| t.as_str()).collect();
    let others = cluster_topics
        .iter()
        .filter(|t| !known.contains(&t.name.as_str()))
        .map(|t| (t.name.clone(), format!("{} (no offsets yet)", t.name)));
    for (value, label) in committed
        .iter()
        .map(|(t, _)| (t.clone(), t.clone()))
        .chain(others)
    {
        let selected = form.topic == value;
        topic_options
            .push(view! { <option value=value selected=selected>{label}</option> }.into_any());
    }
    let to = if form.to.is_empty() {
        "earliest"
    } else {
        form.to.as_str()
    };
    let to_options = [
        ("earliest", "earliest (log start)"),
        ("latest", "latest (log end)"),
        ("time", "time (UTC)"),
        ("offset", "offset"),
        ("shift", "shift by"),
    ]
    .into_iter()
    .map(|(v, label)| {
        let selected = to == v;
        view! { <option value=v selected=selected>{label}</option> }
    })
    .collect::<Vec<_>>();
    let note = if g.members.is_empty() {
        "The group is empty, so its offsets can be moved. Preview a reset, then apply it."
    } else {
        "The group has active members: a reset can be previewed, but applied only once its consumers are stopped."
    };
    let preview_view = preview.map(|p| match p {
        Err(r) => view! { <div class="flash error" role="alert" id="reset-preview"><p>{r.message}</p></div> }.into_any(),
        Ok(plan) => preview_table(here, csrf, form, &plan),
    });
    let action = format!("{here}#reset");
    view! {
        <section class="card" id="reset">
            <h2>"Reset offsets"</h2>
            <p class="hint">{note}</p>
            <form method="get" action=action class="row" id="reset-offsets">
                <input type="hidden" name="preview" value="1"/>
                <label>"Topic"<select name="topic">{topic_options}</select></label>
                <label>"Partitions"<input name="partitions" value=form.partitions.clone() placeholder="all, or 0,1,4-6" size="12"/></label>
                <label>"To"<select name="to">{to_options}</select></label>
                <label>"Time (UTC)"<input type="datetime-local" name="time" value=form.time.clone()/></label>
                <label>"Offset"<input type="number" name="offset" min="0" value=form.offset.clone() placeholder="1200"/></label>
                <label>"Shift by"<input type="number" name="shift" value=form.shift.clone() placeholder="-100"/></label>
                <button type="submit">"Preview"</button>
            </form>
            <p class="hint">"Partitions need a topic. An offset or a shift outside a partition's log lands on its start or end, as Kafka's reset does; a shift needs a committed offset to start from."</p>
            {preview_view}
        </section>
    }
    .into_any()
}

/// The planned offsets and the form that applies them (the same fields, posted).
fn preview_table(here: &str, csrf: &str, form: &ResetForm, plan: &[OffsetReset]) -> AnyView {
    let rows = plan
        .iter()
        .map(|r| {
            let previous = r
                .previous_offset
                .map(|o| o.to_string())
                .unwrap_or_else(|| "—".into());
            let change = match r.previous_offset {
                None => "new".to_string(),
                Some(p) if r.new_offset >= p => format!("+{}", r.new_offset - p),
                Some(p) => (r.new_offset - p).to_string(),
            };
            view! {
                <tr>
                    <td>{r.topic.clone()}</td>
                    <td class="num">{r.partition}</td>
                    <td class="num">{previous}</td>
                    <td class="num">{r.new_offset}</td>
                    <td class="num">{change}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let hidden = ResetForm::FIELDS
        .into_iter()
        .map(|name| {
            let value = form.value(name).to_string();
            view! { <input type="hidden" name=name value=value/> }
        })
        .collect::<Vec<_>>();
    let action = format!("{here}/reset");
    let apply = format!("Apply to {}", super::plural(plan.len(), "partition"));
    view! {
        <div id="reset-preview">
            <h3>"Planned offsets (nothing is committed yet)"</h3>
            <table id="reset-plan">
                <thead><tr><th>"Topic"</th><th class="num">"Partition"</th><th class="num">"Committed now"</th><th class="num">"New offset"</th><th class="num">"Change"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
            <form method="post" action=action class="row" id="apply-reset">
                {csrf_field(csrf)}
                {hidden}
                <button type="submit">{apply}</button>
            </form>
            <p class="hint">"Applying plans again against the log as it then is, while holding the group empty."</p>
        </div>
    }
    .into_any()
}

/// Deleting the group (type its id to confirm) and its offsets of one topic.
fn danger_zone(here: &str, csrf: &str, group: &str, committed: &[(String, usize)]) -> AnyView {
    let per_topic = committed
        .iter()
        .map(|(topic, n)| {
            let action = format!("{here}/offsets/delete");
            let summary = format!("Delete offsets of {topic}…");
            let hint = format!(
                "The group forgets its position on {}; a consumer starts there from its auto.offset.reset.",
                super::plural(*n, "partition")
            );
            let topic = topic.clone();
            view! {
                <details class="confirm">
                    <summary>{summary}</summary>
                    <form method="post" action=action class="inline">
                        {csrf_field(csrf)}
                        <input type="hidden" name="topic" value=topic/>
                        <span class="hint">{hint}</span>
                        <button type="submit" class="small danger">"Delete offsets"</button>
                    </form>
                </details>
            }
        })
        .collect::<Vec<_>>();
    let per_topic =
        (!committed.is_empty()).then(|| view! { <div id="delete-topic-offsets">{per_topic}</div> });
    let action = format!("{here}/delete");
    let group = group.to_string();
    view! {
        <section class="card danger-zone" id="danger">
            <h2>"Delete"</h2>
            <p class="hint">"Offsets of one topic can be deleted while no active member subscribes to it; the whole group only while it has no members (as Kafka's OffsetDelete and DeleteGroups)."</p>
            {per_topic}
            <form method="post" action=action class="row" id="delete-group">
                {csrf_field(csrf)}
                <label><span>"Type the group's id, "<code>{group}</code>", to delete it with all its offsets"</span><input name="confirm" required=true autocomplete="off"/></label>
                <button type="submit" class="danger">"Delete group"</button>
            </form>
        </section>
    }
    .into_any()
}

/// A reset target from the form or API fields (`time`, `offset` and `shift` are read only
/// for their own target).
pub fn parse_reset(to: &str, time: &str, offset: &str, shift: &str) -> Result<ResetTo, Refusal> {
    match to.trim() {
        "earliest" => Ok(ResetTo::Earliest),
        "latest" => Ok(ResetTo::Latest),
        "time" => parse_time(time).map(ResetTo::Timestamp).ok_or_else(|| {
            Refusal::bad_request(
                "Give a time as YYYY-MM-DDTHH:MM (UTC) or milliseconds since 1970.",
            )
        }),
        "offset" => offset
            .trim()
            .parse::<i64>()
            .ok()
            .filter(|o| *o >= 0)
            .map(ResetTo::Offset)
            .ok_or_else(|| {
                Refusal::bad_request("Give the offset to move to: a whole number, 0 or more.")
            }),
        "shift" => shift.trim().parse::<i64>().map(ResetTo::Shift).map_err(|_| {
            Refusal::bad_request(
                "Give the shift as a whole number: negative to read records again (e.g. -100), positive to skip ahead.",
            )
        }),
        other => Err(Refusal::bad_request(format!(
            "Unknown reset target '{other}': use earliest, latest, time, offset or shift."
        ))),
    }
}

/// The most partitions one selection may name (far above any topic's count).
const MAX_SELECTED: usize = 100_000;

/// Partitions as typed: numbers and ranges separated by commas or spaces ("0,1,4-6");
/// empty or "all" for every partition (None).
pub fn parse_partitions(text: &str) -> Result<Option<Vec<i32>>, Refusal> {
    let text = text.trim();
    if text.is_empty() || text.eq_ignore_ascii_case("all") {
        return Ok(None);
    }
    let bad = |part: &str| {
        Refusal::bad_request(format!(
            "'{part}' is not a partition: list partitions as numbers from 0, e.g. 0,1,2 or 0-3, or leave the field empty for all."
        ))
    };
    let number = |s: &str, part: &str| {
        s.trim()
            .parse::<i32>()
            .ok()
            .filter(|p| *p >= 0)
            .ok_or_else(|| bad(part))
    };
    let mut out = Vec::new();
    for part in text
        .split(|c: char| c == ',' || c.is_whitespace())
        .filter(|p| !p.is_empty())
    {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b) = (number(a, part)?, number(b, part)?);
                if a > b || (b - a) as usize >= MAX_SELECTED {
                    return Err(bad(part));
                }
                out.extend(a..=b);
            }
            None => out.push(number(part, part)?),
        }
        if out.len() > MAX_SELECTED {
            return Err(Refusal::bad_request(format!(
                "Name at most {MAX_SELECTED} partitions, or leave the field empty for all."
            )));
        }
    }
    Ok(Some(out))
}

/// Applies a reset (the Apply form of a preview, or a form posted directly).
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
                let spec = ResetForm::read(|k| f.get(k).to_string()).spec(false)?;
                ops::reset_group_offsets(&c, &actor, &cluster, &group, &spec).await
            }
            .await;
            match result {
                Ok(moved) => {
                    done(
                        &session,
                        &here,
                        format!(
                            "Offsets reset on {}.",
                            super::plural(moved.len(), "partition")
                        ),
                    )
                    .await
                }
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

/// Deletes the group once `confirm` repeats its id.
pub async fn delete(
    State(c): State<AppState>,
    session: Session,
    Path((_, group)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/groups/{}", enc(&cluster.id), enc(&group));
            let list = format!("/clusters/{}/groups", enc(&cluster.id));
            let actor = who.0.actor();
            let result = async {
                if f.get("confirm").trim() != group {
                    return Err(Refusal::bad_request(format!(
                        "Type the group's id, '{group}', to confirm the deletion."
                    )));
                }
                ops::delete_group(&c, &actor, &cluster, &group).await
            }
            .await;
            match result {
                Ok(()) => done(&session, &list, format!("Consumer group {group} deleted.")).await,
                Err(r) => back_with(&session, &here, r).await,
            }
        }
        .await,
    )
}

/// Deletes the group's committed offsets on one topic.
pub async fn delete_offsets(
    State(c): State<AppState>,
    session: Session,
    Path((_, group)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/groups/{}", enc(&cluster.id), enc(&group));
            let actor = who.0.actor();
            let topic = f.get("topic").trim().to_string();
            match ops::delete_group_offsets(&c, &actor, &cluster, &group, &topic).await {
                Ok(n) => {
                    // The group's last offsets: it is gone unless it has members.
                    let to = if ops::group(&c, &cluster, &group).await.is_ok() {
                        here
                    } else {
                        format!("/clusters/{}/groups", enc(&cluster.id))
                    };
                    let text = format!(
                        "Offsets of group {group} on topic {topic} deleted ({}).",
                        super::plural(n, "partition")
                    );
                    done(&session, &to, text).await
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
            // The chart's own policy: its embedded style (dark mode) may apply; no script.
            Ok((
                [
                    (header::CONTENT_TYPE, "image/svg+xml"),
                    (header::CONTENT_SECURITY_POLICY, chart::SVG_CSP),
                ],
                svg,
            )
                .into_response())
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_as_typed() {
        assert_eq!(parse_partitions("").unwrap(), None);
        assert_eq!(parse_partitions(" all ").unwrap(), None);
        assert_eq!(parse_partitions("0,1,2").unwrap(), Some(vec![0, 1, 2]));
        assert_eq!(
            parse_partitions("3 0-2, 7").unwrap(),
            Some(vec![3, 0, 1, 2, 7])
        );
        for bad in ["x", "-1", "1-", "4-2", "1.5", "0-200000"] {
            let r = parse_partitions(bad).unwrap_err();
            assert_eq!(r.status, axum::http::StatusCode::BAD_REQUEST, "{bad}");
        }
    }

    #[test]
    fn reset_targets_as_typed() {
        assert_eq!(
            parse_reset("earliest", "", "", "").unwrap(),
            ResetTo::Earliest
        );
        assert_eq!(parse_reset("latest", "", "9", "").unwrap(), ResetTo::Latest);
        assert_eq!(
            parse_reset("offset", "", " 42 ", "").unwrap(),
            ResetTo::Offset(42)
        );
        assert_eq!(
            parse_reset("shift", "", "", "-100").unwrap(),
            ResetTo::Shift(-100)
        );
        assert_eq!(
            parse_reset("shift", "", "", "+5").unwrap(),
            ResetTo::Shift(5)
        );
        assert_eq!(
            parse_reset("time", "1700000000000", "", "").unwrap(),
            ResetTo::Timestamp(1_700_000_000_000)
        );
        assert!(parse_reset("offset", "", "-1", "").is_err());
        assert!(parse_reset("offset", "", "", "").is_err());
        assert!(parse_reset("shift", "", "", "back").is_err());
        assert!(parse_reset("sideways", "", "", "").is_err());
    }

    #[test]
    fn a_form_becomes_a_reset() {
        let form = ResetForm::read(|k| {
            match k {
                "topic" => "orders",
                "partitions" => "0-1",
                "to" => "shift",
                "shift" => "-10",
                _ => "",
            }
            .to_string()
        });
        let spec = form.spec(true).unwrap();
        assert_eq!(
            spec,
            ResetSpec {
                to: ResetTo::Shift(-10),
                topic: Some("orders".into()),
                partitions: Some(vec![0, 1]),
                dry_run: true,
            }
        );
        // Nothing chosen: every committed partition to the earliest offset.
        let spec = ResetForm::default().spec(false).unwrap();
        assert_eq!(spec, ResetSpec::new(ResetTo::Earliest, None));
    }

    #[test]
    fn trends_in_words() {
        let t = |trend: Option<f64>, eta: Option<f64>| LagTrend {
            trend_seconds_per_minute: trend,
            catch_up_eta_seconds: eta,
        };
        assert_eq!(trend_line(0, &t(Some(60.0), None)), "Caught up.");
        assert_eq!(
            trend_line(500, &t(Some(12.0), None)),
            "Time lag growing by 12 s/min."
        );
        assert_eq!(
            trend_line(500, &t(Some(-30.0), Some(240.0))),
            "Catching up: about 4 min to go (time lag shrinking by 30 s/min)."
        );
        assert_eq!(trend_line(500, &t(Some(0.1), None)), "Time lag steady.");
        assert!(trend_line(500, &t(None, None)).starts_with("No time-lag trend yet"));
        assert_eq!(fmt_eta(30.0), "30 s");
        assert_eq!(fmt_eta(7_200.0), "2.0 h");
        assert_eq!(fmt_eta(3.0 * 86_400.0), "3 days");
    }
}

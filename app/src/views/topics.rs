//! Topics: list with size and throughput, create, configs, delete, partitions and the
//! message browser.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use broker::inspect::{ReadFrom, RecordView};
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, fmt_bytes, fmt_time, html, Page, Posted, SignedIn};
use crate::auth::take_flash;
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::{ops, AppState};

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
            let here = format!("/clusters/{}/topics", enc(&cl.id));
            let topics = ops::topics(&c, &cl).await?;
            let rows = topics
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
            let empty = topics.is_empty().then(|| {
                view! { <p class="empty">"No topics yet. Create one below, or produce to a new name when auto-creation is on."</p> }
            });
            let create = viewer.role.can_admin().then(|| {
                let action = here.clone();
                let parts = cl.default_partitions.to_string();
                view! {
                    <section class="card">
                        <h2>"New topic"</h2>
                        <form method="post" action=action class="stack" id="create-topic">
                            {csrf_field(&viewer.csrf)}
                            <div class="row">
                                <label>"Name"<input name="name" required=true maxlength="249" pattern="[a-zA-Z0-9._\\-]+" placeholder="orders"/></label>
                                <label>"Partitions"<input type="number" name="partitions" min="1" max="10000" value=parts/></label>
                            </div>
                            <label>"Configs (one key=value per line, optional)"<textarea name="configs" rows="3" placeholder="retention.ms=86400000\ncleanup.policy=delete"></textarea></label>
                            <button type="submit">"Create topic"</button>
                        </form>
                    </section>
                }
            });
            let body = view! {
                {tabs(&cl, Tab::Topics, &viewer)}
                <section class="card">
                    {empty}
                    <table id="topics">
                        <thead><tr><th>"Topic"</th><th class="num">"Partitions"</th><th class="num">"Records"</th><th class="num">"Size"</th><th class="num">"Records/s (5 min)"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
                {create}
            }
            .into_any();
            let title = format!("Topics of {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
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
                let partitions = f
                    .get("partitions")
                    .trim()
                    .parse::<i32>()
                    .map_err(|_| Refusal::bad_request("Partitions must be a whole number."))?;
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
                Err(r) => back_with(&session, &here, r).await,
            }
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
    Path((_, topic)): Path<(String, String)>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics/{}", enc(&cl.id), enc(&topic));
            let t = ops::topic(&c, &cl, &topic).await?;
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
            let configs = t
                .effective_configs
                .iter()
                .map(|cv| {
                    let source = if cv.is_default { "default" } else { "set on topic" };
                    view! { <tr><td><code>{cv.name.clone()}</code></td><td><code>{cv.value.clone()}</code></td><td>{source}</td></tr> }
                })
                .collect::<Vec<_>>();
            let admin = viewer.role.can_admin();
            let edit = admin.then(|| {
                let action = format!("{here}/configs");
                let text = t.configs.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join("\n");
                let del = format!("{here}/delete");
                view! {
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
                "{} · {} records · {} · created {}",
                plural(t.partitions.len(), "partition"),
                t.records,
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
                <section class="card">
                    <h2>"Configs"</h2>
                    <table><thead><tr><th>"Name"</th><th>"Value"</th><th>"Source"</th></tr></thead><tbody>{configs}</tbody></table>
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

fn plural(n: usize, what: &str) -> String {
    if n == 1 {
        format!("1 {what}")
    } else {
        format!("{n} {what}s")
    }
}

/// `YYYY-MM-DDTHH:MM[:SS]` (UTC, as a datetime-local field sends it) or milliseconds.
pub fn parse_time(s: &str) -> Option<i64> {
    let s = s.trim();
    if let Ok(ms) = s.parse::<i64>() {
        return Some(ms);
    }
    let (date, time) = s.split_once('T').or_else(|| s.split_once(' '))?;
    let mut d = date.split('-').map(|x| x.parse::<i64>());
    let (y, m, day) = (d.next()?.ok()?, d.next()?.ok()?, d.next()?.ok()?);
    let mut t = time
        .trim_end_matches('Z')
        .split(':')
        .map(|x| x.parse::<i64>());
    let (hh, mm) = (t.next()?.ok()?, t.next()?.ok()?);
    let ss = t.next().and_then(|x| x.ok()).unwrap_or(0);
    if !(1..=12).contains(&m) || !(1..=31).contains(&day) || hh > 23 || mm > 59 || ss > 60 {
        return None;
    }
    // Days from civil (Howard Hinnant).
    let y2 = if m <= 2 { y - 1 } else { y };
    let era = y2.div_euclid(400);
    let yoe = y2 - era * 400;
    let mp = (m + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    Some(((days * 86_400) + hh * 3600 + mm * 60 + ss) * 1000)
}

/// How record bytes are shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    Text,
    Json,
    Hex,
}

const SHOW_BYTES: usize = 4096;

/// The largest value the JSON view parses and pretty-prints.
const MAX_JSON_PRETTY: usize = 1 << 20;

pub fn render_bytes(b: Option<&[u8]>, format: Format) -> String {
    let Some(b) = b else {
        return "null".to_string();
    };
    let cut = &b[..b.len().min(SHOW_BYTES)];
    let more = if b.len() > SHOW_BYTES {
        format!("\n… {} more bytes", b.len() - SHOW_BYTES)
    } else {
        String::new()
    };
    let shown = match format {
        Format::Hex => cut
            .chunks(16)
            .map(|c| {
                c.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        // Pretty-printing parses the whole value: only for values of a sensible size.
        Format::Json if b.len() > MAX_JSON_PRETTY => {
            format!(
                "(too large to pretty-print) {}",
                String::from_utf8_lossy(cut)
            )
        }
        Format::Json => match serde_json::from_slice::<serde_json::Value>(b) {
            Ok(v) => serde_json::to_string_pretty(&v).unwrap_or_default(),
            Err(_) => format!("(not JSON) {}", String::from_utf8_lossy(cut)),
        },
        Format::Text => String::from_utf8_lossy(cut).into_owned(),
    };
    format!("{shown}{more}")
}

/// Keys are often plain strings: in JSON mode a key that is not JSON shows as text.
fn key_format(key: Option<&[u8]>, format: Format) -> Format {
    match (format, key) {
        (Format::Json, Some(k)) if serde_json::from_slice::<serde_json::Value>(k).is_err() => {
            Format::Text
        }
        _ => format,
    }
}

fn record_rows(records: &[RecordView], format: Format) -> Vec<AnyView> {
    records
        .iter()
        .map(|r| {
            if let Some(problem) = &r.error {
                // A batch that cannot be shown (e.g. it decompresses past the cap): its
                // reason in place of its records, the rest of the page as usual.
                return view! {
                    <tr class="refused">
                        <td class="num">{r.partition}</td>
                        <td class="num">{r.offset}</td>
                        <td class="nowrap">{fmt_time(r.timestamp_ms)}</td>
                        <td colspan="3"><p class="flash error" role="alert">{problem.clone()}</p></td>
                    </tr>
                }
                .into_any();
            }
            let headers = r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_bytes(v.as_deref(), Format::Text)))
                .collect::<Vec<_>>()
                .join("\n");
            view! {
                <tr>
                    <td class="num">{r.partition}</td>
                    <td class="num">{r.offset}</td>
                    <td class="nowrap">{fmt_time(r.timestamp_ms)}</td>
                    <td><pre class="cell">{render_bytes(r.key.as_deref(), key_format(r.key.as_deref(), format))}</pre></td>
                    <td><pre class="cell">{render_bytes(r.value.as_deref(), format)}</pre></td>
                    <td><pre class="cell">{headers}</pre></td>
                </tr>
            }
            .into_any()
        })
        .collect()
}

/// The query of the message browser, shared with the JSON API.
pub struct BrowseQuery {
    pub partition: Option<i32>,
    pub from: ReadFrom,
    pub limit: usize,
    pub format: Format,
}

pub fn parse_browse(q: &HashMap<String, String>) -> Result<BrowseQuery, Refusal> {
    let get = |k: &str| q.get(k).map(|s| s.trim()).unwrap_or("");
    let partition = match get("partition") {
        "" | "all" => None,
        p => Some(
            p.parse::<i32>()
                .map_err(|_| Refusal::bad_request("Partition must be a number."))?,
        ),
    };
    let from = match get("from") {
        "" | "newest" => ReadFrom::Newest,
        "offset" => ReadFrom::Offset(
            get("offset")
                .parse::<i64>()
                .map_err(|_| Refusal::bad_request("Give a start offset (a whole number)."))?,
        ),
        "time" => ReadFrom::Timestamp(parse_time(get("time")).ok_or_else(|| {
            Refusal::bad_request(
                "Give a start time as YYYY-MM-DDTHH:MM (UTC) or milliseconds since 1970.",
            )
        })?),
        other => {
            return Err(Refusal::bad_request(format!(
                "Unknown start '{other}': use newest, offset or time."
            )))
        }
    };
    let limit = match get("limit") {
        "" => 50,
        l => l
            .parse::<usize>()
            .map_err(|_| Refusal::bad_request("Limit must be a number."))?,
    };
    let format = match get("format") {
        "" | "text" => Format::Text,
        "json" => Format::Json,
        "hex" => Format::Hex,
        other => {
            return Err(Refusal::bad_request(format!(
                "Unknown format '{other}': use text, json or hex."
            )))
        }
    };
    Ok(BrowseQuery {
        partition,
        from,
        limit: limit.clamp(1, 500),
        format,
    })
}

pub async fn messages(
    State(c): State<AppState>,
    session: Session,
    InCluster {
        who: SignedIn(viewer),
        cluster: cl,
    }: Cluster,
    Path((_, topic)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    Page(
        async {
            let here = format!("/clusters/{}/topics/{}/messages", enc(&cl.id), enc(&topic));
            let t = ops::topic(&c, &cl, &topic).await?;
            let (records, error) = match parse_browse(&q) {
                Ok(bq) => match ops::messages(&c, &cl, &topic, bq.partition, bq.from, bq.limit).await {
                    Ok(r) => (Some((r, bq.format)), None),
                    Err(e) => (None, Some(e.message)),
                },
                Err(e) => (None, Some(e.message)),
            };
            let get = |k: &str| q.get(k).cloned().unwrap_or_default();
            let part_options = std::iter::once(("all".to_string(), "all partitions".to_string()))
                .chain(t.partitions.iter().map(|p| (p.partition.to_string(), format!("partition {}", p.partition))))
                .map(|(v, label)| {
                    let selected = get("partition") == v;
                    view! { <option value=v selected=selected>{label}</option> }
                })
                .collect::<Vec<_>>();
            let opt = |name: &'static str, v: &'static str, label: &'static str| {
                let selected = get(name) == v;
                view! { <option value=v selected=selected>{label}</option> }
            };
            let limit = q.get("limit").cloned().unwrap_or_else(|| "50".into());
            let error = error.map(|e| view! { <div class="flash error" role="alert"><p>{e}</p></div> });
            let table = records.map(|(records, format)| {
                if records.is_empty() {
                    view! { <p class="empty">"No records here. Produce some, or pick another start."</p> }.into_any()
                } else {
                    let count = format!("{} records", records.len());
                    view! {
                        <p class="hint">{count}</p>
                        <table id="messages" class="records">
                            <thead><tr><th class="num">"Partition"</th><th class="num">"Offset"</th><th>"Timestamp"</th><th>"Key"</th><th>"Value"</th><th>"Headers"</th></tr></thead>
                            <tbody>{record_rows(&records, format)}</tbody>
                        </table>
                    }
                    .into_any()
                }
            });
            let back = format!("/clusters/{}/topics/{}", enc(&cl.id), enc(&topic));
            let body = view! {
                {tabs(&cl, Tab::Topics, &viewer)}
                <p><a href=back>"← topic "{t.name.clone()}</a></p>
                <form method="get" action=here.clone() class="row browse" id="browse">
                    <label>"Partition"<select name="partition">{part_options}</select></label>
                    <label>"Start"<select name="from">
                        {opt("from", "newest", "newest records")}
                        {opt("from", "offset", "from offset")}
                        {opt("from", "time", "from time (UTC)")}
                    </select></label>
                    <label>"Offset"<input type="number" name="offset" min="0" value=get("offset")/></label>
                    <label>"Time"<input type="datetime-local" name="time" value=get("time")/></label>
                    <label>"Limit"<input type="number" name="limit" min="1" max="500" value=limit/></label>
                    <label>"Show as"<select name="format">
                        {opt("format", "text", "text")}
                        {opt("format", "json", "JSON")}
                        {opt("format", "hex", "hex")}
                    </select></label>
                    <button type="submit">"Show"</button>
                </form>
                {error}
                {table}
            }
            .into_any();
            let title = format!("Messages of {}", t.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_parse() {
        assert_eq!(parse_time("1764028800000"), Some(1_764_028_800_000));
        assert_eq!(parse_time("2025-11-25T00:00"), Some(1_764_028_800_000));
        assert_eq!(parse_time("2000-02-29T00:00:00Z"), Some(951_782_400_000));
        assert_eq!(parse_time("yesterday"), None);
        assert_eq!(parse_time("2025-13-01T00:00"), None);
    }

    #[test]
    fn bytes_render() {
        assert_eq!(render_bytes(None, Format::Text), "null");
        assert_eq!(render_bytes(Some(b"hi"), Format::Hex), "68 69");
        assert!(render_bytes(Some(br#"{"a":1}"#), Format::Json).contains("\"a\": 1"));
        assert!(render_bytes(Some(b"nope"), Format::Json).starts_with("(not JSON)"));
    }
}

//! The message browser: records of one partition or all, from the newest, an offset or a
//! time, through filters (substrings, headers, VRL), in pages with cursors, shown as text,
//! JSON (in the producer's field order) or hex; a live tail (public/tail.js), a download
//! as JSON lines, and a form to produce a record.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::response::IntoResponse;
use broker::inspect::{Cursor, ReadFrom, RecordView, ScanStart};
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, fmt_bytes, fmt_time, html, plural, Page, Posted, SignedIn};
use crate::auth::take_flash;
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::filter::Filters;
use crate::{ops, AppState};

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

/// What a table cell shows of a key, value or header before "show all".
pub const PREVIEW_BYTES: usize = 1024;

/// What one record's page ("show all") shows of a value.
pub const FULL_BYTES: usize = broker::inspect::PAGE_BYTES;

/// Renders record bytes in `format`, cut to `cap` bytes of the value (the text says how
/// many more there are). JSON keeps the producer's field order (it is re-indented, never
/// parsed into a map) and falls back to text for what is not JSON.
pub fn render_bytes_capped(b: Option<&[u8]>, format: Format, cap: usize) -> (String, bool) {
    let Some(b) = b else {
        return ("null".to_string(), false);
    };
    let cut = b.len() > cap;
    let shown = &b[..b.len().min(cap)];
    let text = match format {
        Format::Hex => shown
            .chunks(16)
            .map(|c| {
                c.iter()
                    .map(|x| format!("{x:02x}"))
                    .collect::<Vec<_>>()
                    .join(" ")
            })
            .collect::<Vec<_>>()
            .join("\n"),
        Format::Json if !cut && is_json(b) => pretty_json(b),
        Format::Json if !cut => format!("(not JSON) {}", String::from_utf8_lossy(b)),
        // A cut value cannot be checked as JSON: indent what is shown.
        Format::Json => pretty_json(shown),
        Format::Text => String::from_utf8_lossy(shown).into_owned(),
    };
    if cut {
        (format!("{text}\n… {} more bytes", b.len() - cap), true)
    } else {
        (text, false)
    }
}

/// [`render_bytes_capped`] at the preview size, for the JSON API and the cells.
pub fn render_bytes(b: Option<&[u8]>, format: Format) -> String {
    render_bytes_capped(b, format, PREVIEW_BYTES * 4).0
}

fn is_json(b: &[u8]) -> bool {
    serde_json::from_slice::<serde::de::IgnoredAny>(b).is_ok()
}

/// Re-indents JSON text without parsing it into maps, so fields stay in the order the
/// producer wrote them. Works on any text: strings (with escapes) are copied as they are.
pub fn pretty_json(b: &[u8]) -> String {
    let text = String::from_utf8_lossy(b);
    let mut out = String::with_capacity(text.len() + text.len() / 4);
    let mut depth = 0usize;
    let mut in_string = false;
    let mut escaped = false;
    let mut chars = text.chars().peekable();
    let newline = |out: &mut String, depth: usize| {
        out.push('\n');
        for _ in 0..depth {
            out.push_str("  ");
        }
    };
    while let Some(c) = chars.next() {
        if in_string {
            out.push(c);
            if escaped {
                escaped = false;
            } else if c == '\\' {
                escaped = true;
            } else if c == '"' {
                in_string = false;
            }
            continue;
        }
        match c {
            '"' => {
                in_string = true;
                out.push(c);
            }
            '{' | '[' => {
                out.push(c);
                // An empty object or array stays on one line.
                while chars.peek().is_some_and(|n| n.is_whitespace()) {
                    chars.next();
                }
                if matches!(chars.peek(), Some('}') | Some(']')) {
                    out.push(chars.next().unwrap_or(' '));
                } else {
                    depth += 1;
                    newline(&mut out, depth);
                }
            }
            '}' | ']' => {
                depth = depth.saturating_sub(1);
                newline(&mut out, depth);
                out.push(c);
            }
            ',' => {
                out.push(c);
                newline(&mut out, depth);
            }
            ':' => out.push_str(": "),
            c if c.is_whitespace() => {}
            c => out.push(c),
        }
    }
    out
}

/// Keys are often plain strings: in JSON mode a key that is not JSON shows as text.
fn key_format(key: Option<&[u8]>, format: Format) -> Format {
    match (format, key) {
        (Format::Json, Some(k)) if !is_json(k) => Format::Text,
        _ => format,
    }
}

/// A cell of a record's bytes: the preview, and a link to the whole record when cut.
fn bytes_cell(b: Option<&[u8]>, format: Format, cap: usize, full_href: &str) -> AnyView {
    let (text, cut) = render_bytes_capped(b, format, cap);
    let more = cut.then(|| {
        let label = format!("show all ({})", fmt_bytes(b.map_or(0, |b| b.len()) as i64));
        view! { <a class="show-all" href=full_href.to_string()>{label}</a> }
    });
    view! { <pre class="cell">{text}</pre>{more} }.into_any()
}

fn record_rows(
    records: &[RecordView],
    format: Format,
    cap: usize,
    here: &str,
    query: &str,
    can_write: bool,
) -> Vec<AnyView> {
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
                        <td colspan="4"><p class="flash error" role="alert">{problem.clone()}</p></td>
                    </tr>
                }
                .into_any();
            }
            let full = format!(
                "{here}?partition={}&from=offset&offset={}&limit=1&full=1&format={}",
                r.partition,
                r.offset,
                format_name(format)
            );
            let headers = r
                .headers
                .iter()
                .map(|(k, v)| format!("{k}: {}", render_bytes_capped(v.as_deref(), Format::Text, cap).0))
                .collect::<Vec<_>>()
                .join("\n");
            let dup = can_write.then(|| {
                let href = format!("{here}?{query}&duplicate={}_{}#produce", r.partition, r.offset);
                view! { <a href=href class="small">"duplicate"</a> }
            });
            view! {
                <tr>
                    <td class="num">{r.partition}</td>
                    <td class="num">{r.offset}</td>
                    <td class="nowrap">{fmt_time(r.timestamp_ms)}</td>
                    <td>{bytes_cell(r.key.as_deref(), key_format(r.key.as_deref(), format), cap, &full)}</td>
                    <td>{bytes_cell(r.value.as_deref(), format, cap, &full)}</td>
                    <td><pre class="cell">{headers}</pre></td>
                    <td>{dup}</td>
                </tr>
            }
            .into_any()
        })
        .collect()
}

fn format_name(f: Format) -> &'static str {
    match f {
        Format::Text => "text",
        Format::Json => "json",
        Format::Hex => "hex",
    }
}

/// The query of the message browser, shared with the JSON API.
pub struct BrowseQuery {
    pub partition: Option<i32>,
    pub start: ScanStart,
    pub limit: usize,
    pub format: Format,
    pub filters: Filters,
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
    let start = match (get("cursor"), get("from")) {
        ("", "" | "newest") => ScanStart::From(ReadFrom::Newest),
        ("", "offset") => {
            ScanStart::From(ReadFrom::Offset(get("offset").parse::<i64>().map_err(
                |_| Refusal::bad_request("Give a start offset (a whole number)."),
            )?))
        }
        ("", "time") => ScanStart::From(ReadFrom::Timestamp(parse_time(get("time")).ok_or_else(
            || {
                Refusal::bad_request(
                    "Give a start time as YYYY-MM-DDTHH:MM (UTC) or milliseconds since 1970.",
                )
            },
        )?)),
        ("", other) => {
            return Err(Refusal::bad_request(format!(
                "Unknown start '{other}': use newest, offset or time."
            )))
        }
        (cursor, _) => ScanStart::Cursor(Cursor::decode(cursor)?),
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
        start,
        limit: limit.clamp(1, broker::inspect::MAX_RECORDS),
        format,
        filters: Filters::from_query(q),
    })
}

/// The query string of `q`, sorted, with only the keys `keep` accepts (for links that keep
/// the filters and the view).
fn query_of(q: &HashMap<String, String>, keep: impl Fn(&str) -> bool) -> String {
    let mut pairs: Vec<(&String, &String)> =
        q.iter().filter(|(k, v)| !v.is_empty() && keep(k)).collect();
    pairs.sort();
    pairs
        .into_iter()
        .map(|(k, v)| format!("{k}={}", enc(v)))
        .collect::<Vec<_>>()
        .join("&")
}

/// The browse settings without the start and the cursor: filters, partition, limit, format.
fn settings_query(q: &HashMap<String, String>) -> String {
    query_of(q, |k| {
        matches!(
            k,
            "partition"
                | "limit"
                | "format"
                | "key_contains"
                | "value_contains"
                | "header"
                | "filter"
        )
    })
}

/// The query as given, for the download link of the same records.
fn raw_query(q: &HashMap<String, String>) -> String {
    query_of(q, |k| !matches!(k, "tail" | "full" | "duplicate"))
}

/// What a page says about how it ended, when it ended short: the byte cap, or the scan
/// budget of a filter.
pub fn page_note(page: &ops::Browsed, limit: usize, filtered: bool) -> Option<String> {
    let p = &page.page;
    if !p.stopped_by_bytes || p.next.is_none() {
        return None;
    }
    Some(if filtered {
        format!(
            "Scanned {} records ({}) and found {} of the {limit} asked for: a search reads at most {} per page. Continue scanning to search further.",
            p.scanned_records,
            fmt_bytes(p.scanned_bytes as i64),
            p.records.len(),
            fmt_bytes(broker::inspect::SCAN_BYTES as i64)
        )
    } else {
        format!(
            "Showing {} of the {limit} records asked for: a page holds at most {} of record data. The next page goes on from here.",
            p.records.len(),
            fmt_bytes(broker::inspect::PAGE_BYTES as i64)
        )
    })
}

#[allow(clippy::too_many_arguments)]
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
            let api = format!("/api/v1/clusters/{}/topics/{}/messages", enc(&cl.id), enc(&topic));
            let t = ops::topic(&c, &cl, &topic).await?;
            let full = q.get("full").is_some_and(|v| v == "1");
            let tail = q.get("tail").is_some_and(|v| v == "1");
            let can_write = viewer.role.can_admin();
            let settings = settings_query(&q);
            // The newest records, not a page reached by a cursor: nothing newer to link to
            // (the live tail shows what comes).
            let first_newest = q.get("cursor").is_none_or(|c| c.is_empty())
                && matches!(q.get("from").map(String::as_str), None | Some("") | Some("newest"));
            let (browsed, error) = match parse_browse(&q) {
                Ok(bq) => {
                    let filtered = !bq.filters.is_empty();
                    match ops::browse(&c, &cl, &topic, bq.partition, bq.start.clone(), bq.limit, &bq.filters).await {
                        Ok(b) => (Some((b, bq.format, bq.limit, filtered)), None),
                        Err(e) => (None, Some(e.message)),
                    }
                }
                Err(e) => (None, Some(e.message)),
            };
            // "duplicate this message": the produce form filled with a record's contents.
            let mut prefill = ops::NewRecordForm::default();
            if let Some((p, o)) = q.get("duplicate").and_then(|d| d.split_once('_')) {
                if let (Ok(p), Ok(o)) = (p.parse::<i32>(), o.parse::<i64>()) {
                    if let Some(r) = ops::messages(&c, &cl, &topic, Some(p), ReadFrom::Offset(o), 1)
                        .await?
                        .into_iter()
                        .find(|r| r.offset == o && r.error.is_none())
                    {
                        prefill = ops::NewRecordForm::from_record(&r);
                    }
                }
            }
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
            let error = error.map(|e| view! { <div class="flash error" role="alert"><pre class="cell">{e}</pre></div> });
            let table = browsed.map(|(b, format, limit, filtered)| {
                let note = page_note(&b, limit, filtered)
                    .map(|n| view! { <p class="flash notice" role="status" id="page-note">{n}</p> });
                let filter_errors = b.filter_errors.as_ref().map(|(n, first)| {
                    let text = format!("The VRL filter failed on {n} record(s), which are not shown; the first: {first}");
                    view! { <p class="flash error" role="alert" id="filter-errors">{text}</p> }
                });
                let link = |cursor: &Option<broker::inspect::Cursor>, label: &'static str, id: &'static str| {
                    cursor.as_ref().map(|cur| {
                        let href = format!("{here}?{settings}&cursor={}", cur.encode());
                        view! { <a class="button" id=id href=href>{label}</a> }
                    })
                };
                let next_label = if b.page.stopped_by_bytes && filtered { "Continue scanning" } else if b.page.newest_first { "Older →" } else { "Newer →" };
                let paging = view! {
                    <p class="row paging">
                        {(!first_newest).then(|| link(&b.page.newer, "← Newer", "newer"))}
                        {link(&b.page.next, next_label, "next")}
                        {(!b.page.newest_first).then(|| link(&b.page.older, "Older", "older"))}
                        <a class="button" id="download" href=format!("{here}.jsonl?{}", raw_query(&q))>"Download as JSON lines"</a>
                    </p>
                };
                let tail_attr = tail.then(|| {
                    let cur = b.page.newer.as_ref().map(|c| c.encode()).unwrap_or_default();
                    format!("{api}?{settings}&cursor={cur}")
                });
                let rows = if b.page.records.is_empty() {
                    Vec::new()
                } else {
                    let cap = if full { FULL_BYTES } else { PREVIEW_BYTES };
                    record_rows(&b.page.records, format, cap, &here, &settings, can_write)
                };
                let empty = (b.page.records.is_empty() && !tail).then(|| {
                    let text = if filtered {
                        format!("No record matched in the {} records scanned.", b.page.scanned_records)
                    } else {
                        "No records here. Produce some, or pick another start.".to_string()
                    };
                    view! { <p class="empty">{text}</p> }
                });
                let count = format!(
                    "{} · {}",
                    plural(b.page.records.len(), "record"),
                    if b.page.newest_first { "newest first" } else { "oldest first" }
                );
                view! {
                    {note}
                    {filter_errors}
                    <p class="hint" id="count">{count}</p>
                    {empty}
                    <div class="scroll">
                    <table id="messages" class="records" data-tail=tail_attr data-format=format_name(format)>
                        <thead><tr><th class="num">"Partition"</th><th class="num">"Offset"</th><th>"Timestamp"</th><th>"Key"</th><th>"Value"</th><th>"Headers"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                    </div>
                    {paging}
                }
                .into_any()
            });
            let back = format!("/clusters/{}/topics/{}", enc(&cl.id), enc(&topic));
            let tail_link = if tail {
                view! { <a class="button" id="tail" href=format!("{here}?{settings}")>"Stop live tail"</a> }.into_any()
            } else {
                view! { <a class="button" id="tail" href=format!("{here}?{settings}&tail=1")>"Live tail"</a> }.into_any()
            };
            let produce = can_write.then(|| produce_form(&here, &viewer.csrf, &t, &prefill));
            let body = view! {
                {tabs(&cl, Tab::Topics, &viewer)}
                <p><a href=back>"← topic "{t.name.clone()}</a>" · "{tail_link}</p>
                <form method="get" action=here.clone() class="stack browse" id="browse">
                    <div class="row">
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
                    </div>
                    <div class="row">
                        <label>"Key contains"<input name="key_contains" maxlength="1024" value=get("key_contains")/></label>
                        <label>"Value contains"<input name="value_contains" maxlength="1024" value=get("value_contains")/></label>
                        <label>"Header (name or name:value)"<input name="header" maxlength="1024" value=get("header")/></label>
                    </div>
                    <label>"Filter in VRL (true shows the record; fields .key .value .headers .timestamp .offset .partition)"
                        <textarea name="filter" rows="2" maxlength="4096" placeholder="parse_json!(string!(.value)).total > 100 && .headers.type == \"created\"">{get("filter")}</textarea>
                    </label>
                    <button type="submit">"Show"</button>
                </form>
                {error}
                {table}
                {produce}
                <script src="/public/tail.js" defer></script>
            }
            .into_any();
            let title = format!("Messages of {}", t.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

fn produce_form(
    here: &str,
    csrf: &str,
    t: &broker::inspect::TopicDetail,
    prefill: &ops::NewRecordForm,
) -> AnyView {
    let options = std::iter::once(("".to_string(), "by key (Kafka's partitioner)".to_string()))
        .chain(t.partitions.iter().map(|p| {
            (
                p.partition.to_string(),
                format!("partition {}", p.partition),
            )
        }))
        .map(|(v, label)| {
            let selected = prefill.partition == v;
            view! { <option value=v selected=selected>{label}</option> }
        })
        .collect::<Vec<_>>();
    view! {
        <section class="card" id="produce">
            <h2>"Produce a record"</h2>
            <form method="post" action=here.to_string() class="stack" id="produce-form">
                {csrf_field(csrf)}
                <div class="row">
                    <label>"Key (empty for none)"<input name="key" maxlength="65536" value=prefill.key.clone()/></label>
                    <label>"Partition"<select name="partition">{options}</select></label>
                </div>
                <label>"Value"<textarea name="value" rows="4">{prefill.value.clone()}</textarea></label>
                <label>"Headers (one name: value per line)"<textarea name="headers" rows="2">{prefill.headers.clone()}</textarea></label>
                <button type="submit">"Produce"</button>
            </form>
        </section>
    }
    .into_any()
}

/// `POST …/topics/{t}/messages`: the produce form.
pub async fn produce(
    State(c): State<AppState>,
    session: Session,
    Path((_, topic)): Path<(String, String)>,
    Posted(InCluster { who, cluster }, f): Posted<Cluster>,
) -> Page {
    Page(
        async {
            let here = format!(
                "/clusters/{}/topics/{}/messages",
                enc(&cluster.id),
                enc(&topic)
            );
            let actor = who.0.actor();
            let form = ops::NewRecordForm {
                key: f.get("key").to_string(),
                value: f.get("value").to_string(),
                headers: f.get("headers").to_string(),
                partition: f.get("partition").trim().to_string(),
            };
            let result = async {
                let record = form.parse()?;
                ops::produce(&c, &actor, &cluster, &topic, record).await
            }
            .await;
            match result {
                Ok(p) => {
                    done(
                        &session,
                        &here,
                        format!(
                            "Produced to partition {} at offset {}.",
                            p.partition, p.offset
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

/// `GET …/topics/{t}/messages.jsonl`: the records of the same query as JSON lines.
pub async fn download(
    State(c): State<AppState>,
    InCluster { cluster: cl, .. }: Cluster,
    Path((_, topic)): Path<(String, String)>,
    Query(q): Query<HashMap<String, String>>,
) -> Page {
    Page(
        async {
            let bq = parse_browse(&q)?;
            let b = ops::browse(
                &c,
                &cl,
                &topic,
                bq.partition,
                bq.start.clone(),
                bq.limit,
                &bq.filters,
            )
            .await?;
            let mut out = String::new();
            for r in &b.page.records {
                out.push_str(&serde_json::to_string(&jsonl_record(r)).unwrap_or_default());
                out.push('\n');
            }
            let name = format!(
                "{}.jsonl",
                topic.replace(
                    |ch: char| !ch.is_ascii_alphanumeric() && ch != '-' && ch != '_' && ch != '.',
                    "_"
                )
            );
            Ok((
                [
                    (
                        axum::http::header::CONTENT_TYPE,
                        "application/x-ndjson".to_string(),
                    ),
                    (
                        axum::http::header::CONTENT_DISPOSITION,
                        format!("attachment; filename=\"{name}\""),
                    ),
                ],
                out,
            )
                .into_response())
        }
        .await,
    )
}

/// A record for a JSON-lines file: text where the bytes are UTF-8, base64 otherwise.
pub fn jsonl_record(r: &RecordView) -> serde_json::Value {
    use base64::Engine;
    let bytes = |name: &str,
                 b: &Option<Vec<u8>>,
                 obj: &mut serde_json::Map<String, serde_json::Value>| match b {
        None => {
            obj.insert(name.to_string(), serde_json::Value::Null);
        }
        Some(b) => match std::str::from_utf8(b) {
            Ok(s) => {
                obj.insert(name.to_string(), serde_json::Value::String(s.to_string()));
            }
            Err(_) => {
                obj.insert(
                    format!("{name}_base64"),
                    serde_json::Value::String(base64::engine::general_purpose::STANDARD.encode(b)),
                );
            }
        },
    };
    let mut obj = serde_json::Map::new();
    obj.insert("partition".into(), r.partition.into());
    obj.insert("offset".into(), r.offset.into());
    obj.insert("timestamp_ms".into(), r.timestamp_ms.into());
    if let Some(e) = &r.error {
        obj.insert("error".into(), e.clone().into());
        return serde_json::Value::Object(obj);
    }
    bytes("key", &r.key, &mut obj);
    bytes("value", &r.value, &mut obj);
    let headers: Vec<serde_json::Value> = r
        .headers
        .iter()
        .map(|(k, v)| {
            let mut h = serde_json::Map::new();
            h.insert("key".into(), k.clone().into());
            bytes("value", v, &mut h);
            serde_json::Value::Object(h)
        })
        .collect();
    obj.insert("headers".into(), headers.into());
    serde_json::Value::Object(obj)
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
        let (text, cut) = render_bytes_capped(Some(&[b'x'; 3000]), Format::Text, 1024);
        assert!(cut && text.ends_with("… 1976 more bytes"), "{text}");
    }

    #[test]
    fn json_keeps_the_producers_field_order() {
        let v = br#"{"zeta":1,"alpha":{"b":[1,2,{}],"a":"x,\"y\":{"},"empty":[]}"#;
        let shown = pretty_json(v);
        assert!(
            shown.find("zeta").unwrap() < shown.find("alpha").unwrap(),
            "{shown}"
        );
        assert!(
            shown.find("\"b\"").unwrap() < shown.find("\"a\"").unwrap(),
            "{shown}"
        );
        // Strings are copied as they are, escapes and all.
        assert!(shown.contains(r#""x,\"y\":{""#), "{shown}");
        assert!(shown.contains("\"empty\": []"), "{shown}");
        // The indented text is the same JSON.
        let a: serde_json::Value = serde_json::from_slice(v).unwrap();
        let b: serde_json::Value = serde_json::from_str(&shown).unwrap();
        assert_eq!(a, b);
    }

    #[test]
    fn jsonl_records_keep_bytes() {
        let r = RecordView {
            partition: 0,
            offset: 3,
            timestamp_ms: 5,
            key: Some(vec![0xff, 0x00]),
            value: Some(b"hello".to_vec()),
            headers: vec![("h".into(), None)],
            error: None,
        };
        let j = jsonl_record(&r);
        assert_eq!(j["value"], "hello");
        assert_eq!(j["key_base64"], "/wA=");
        assert_eq!(j["headers"][0]["value"], serde_json::Value::Null);
    }
}

//! Lag alerts in the console: the panel of a group's page (its rules and their state, the
//! form to add one, delete buttons), the page listing a cluster's rules, the overview's
//! card of firing rules, and the two form posts, which go back to the page they came from
//! with a flash message. Plain forms, CSRF-checked by [`Posted`]; the rules and their
//! checks are [`ops`]'s.

use axum::extract::{Path, State};
use broker::inspect::{AlertStatus, LagAlert, NewAlertRule};
use leptos::prelude::*;
use tower_sessions::Session;

use super::clusters::{tabs, Cluster, Tab};
use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, fmt_time, html, Fields, Page, Posted, SignedIn};
use crate::auth::{take_flash, Viewer};
use crate::error::Refusal;
use crate::extract::InCluster;
use crate::ops::{self, ClusterRef};
use crate::AppState;

/// Where a form post goes back to: `back=group` (with `group`) for the group's page,
/// anything else for the cluster's list of rules.
const BACK_GROUP: &str = "group";
const BACK_LIST: &str = "list";

/// A time lag in words: "12.5 s", "3.2 min", "1.5 h".
fn fmt_lag(s: f64) -> String {
    if s < 60.0 {
        format!("{s:.1} s")
    } else if s < 3600.0 {
        format!("{:.1} min", s / 60.0)
    } else {
        format!("{:.1} h", s / 3600.0)
    }
}

fn group_href(cl: &ClusterRef, group: &str) -> String {
    format!("/clusters/{}/groups/{}", enc(&cl.id), enc(group))
}

fn list_href(cl: &ClusterRef) -> String {
    format!("/clusters/{}/alerts", enc(&cl.id))
}

/// The state column: a badge, and since when for a firing rule.
fn state_cell(a: &LagAlert) -> impl IntoView {
    let (class, label) = match a.status.state {
        AlertStatus::Firing => ("badge error", "firing"),
        AlertStatus::Ok => ("badge ok", "ok"),
    };
    let since = a
        .status
        .since_ms
        .map(|ms| format!(" since {}", fmt_time(ms)))
        .unwrap_or_default();
    view! { <td><span class=class>{label}</span><span class="hint">{since}</span></td> }
}

fn delete_form(cl: &ClusterRef, a: &LagAlert, csrf: &str, back: &'static str) -> impl IntoView {
    let action = format!(
        "/clusters/{}/alerts/{}/delete",
        enc(&cl.id),
        enc(&a.rule.id)
    );
    let group = a.rule.group.clone();
    view! {
        <form method="post" action=action class="inline">
            {csrf_field(csrf)}
            <input type="hidden" name="group" value=group/>
            <input type="hidden" name="back" value=back/>
            <button type="submit" class="small danger">"Delete"</button>
        </form>
    }
}

/// The rules as a table (with a group column on the cluster's list), or `empty`.
fn rules_table(
    cl: &ClusterRef,
    alerts: &[LagAlert],
    viewer: &Viewer,
    back: &'static str,
    empty: &'static str,
) -> AnyView {
    if alerts.is_empty() {
        return view! { <p class="empty">{empty}</p> }.into_any();
    }
    let show_group = back == BACK_LIST;
    let admin = viewer.role.can_admin();
    let rows = alerts
        .iter()
        .map(|a| {
            let group = show_group.then(|| {
                let href = group_href(cl, &a.rule.group);
                view! { <td><a href=href>{a.rule.group.clone()}</a></td> }
            });
            let threshold = format!("{} s", a.rule.max_time_lag_seconds);
            let wait = format!("{} s", a.rule.for_seconds);
            let last = a
                .status
                .last_time_lag_seconds
                .map(fmt_lag)
                .unwrap_or_else(|| "—".to_string());
            let delete = admin.then(|| delete_form(cl, a, &viewer.csrf, back));
            view! {
                <tr>
                    {group}
                    {state_cell(a)}
                    <td class="num">{threshold}</td>
                    <td class="num">{wait}</td>
                    <td class="num">{last}</td>
                    <td><code>{a.rule.webhook_url.clone()}</code></td>
                    <td>{delete}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    let group_head = show_group.then(|| view! { <th>"Group"</th> });
    view! {
        <table id="lag-alert-rules">
            <thead><tr>{group_head}<th>"State"</th><th class="num">"Time lag above"</th><th class="num">"For"</th><th class="num">"Last time lag"</th><th>"Webhook"</th><th></th></tr></thead>
            <tbody>{rows}</tbody>
        </table>
    }
    .into_any()
}

/// The form adding a rule: for `group` (a hidden field) or for a group typed in.
fn add_form(cl: &ClusterRef, group: Option<&str>, csrf: &str, back: &'static str) -> impl IntoView {
    let action = list_href(cl);
    let group_field = match group {
        Some(g) => {
            let g = g.to_string();
            view! { <input type="hidden" name="group" value=g/> }.into_any()
        }
        None => view! {
            <label>"Group"<input name="group" required=true maxlength="255" placeholder="orders-service"/></label>
        }
        .into_any(),
    };
    view! {
        <form method="post" action=action class="row" id="create-lag-alert">
            {csrf_field(csrf)}
            <input type="hidden" name="back" value=back/>
            {group_field}
            <label>"Time lag above (seconds)"<input type="number" name="max_time_lag_seconds" required=true min="0" step="any" placeholder="300"/></label>
            <label>"For (seconds)"<input type="number" name="for_seconds" min="0" step="1" value="60"/></label>
            <label>"Webhook URL"<input type="url" name="webhook_url" required=true maxlength="2048" placeholder="https://hooks.example.com/sluice"/></label>
            <button type="submit">"Add alert"</button>
        </form>
    }
}

const HOW_IT_WORKS: &str = "A rule fires when the group's time lag has stayed above its threshold \
     for the time given, and posts JSON to its webhook when it fires and again when it resolves. \
     The lag job checks the rules after each pass.";

/// The lag alerts of one group, for its page: the rules with their state and, for owners
/// and admins, the add form and delete buttons (which come back to the group's page).
/// `alerts` are the group's rules, as [`ops::lag_alerts`] gives them.
pub fn group_alerts_panel(
    cl: &ClusterRef,
    group: &str,
    alerts: &[LagAlert],
    viewer: &Viewer,
) -> AnyView {
    let all = list_href(cl);
    let add = viewer
        .role
        .can_admin()
        .then(|| add_form(cl, Some(group), &viewer.csrf, BACK_GROUP));
    view! {
        <section class="card" id="lag-alerts">
            <h2>"Lag alerts"</h2>
            <p class="hint">{HOW_IT_WORKS}" "<a href=all>"All lag alerts of this cluster"</a></p>
            {rules_table(cl, alerts, viewer, BACK_GROUP, "No lag alerts for this group.")}
            {add}
        </section>
    }
    .into_any()
}

/// [`group_alerts_panel`] with the group's rules read first: what the group page shows.
pub async fn group_alerts_section(
    c: &AppState,
    viewer: &Viewer,
    cl: &ClusterRef,
    group: &str,
) -> Result<AnyView, Refusal> {
    let alerts = ops::lag_alerts(c, &viewer.actor(), cl, Some(group)).await?;
    Ok(group_alerts_panel(cl, group, &alerts, viewer))
}

/// The overview's card of rules firing now (`firing` from [`ops::firing_lag_alerts`]);
/// nothing when none is.
pub fn firing_panel(firing: &[(ClusterRef, LagAlert)]) -> AnyView {
    if firing.is_empty() {
        return ().into_any();
    }
    let rows = firing
        .iter()
        .map(|(cl, a)| {
            let href = group_href(cl, &a.rule.group);
            let lag = a
                .status
                .last_time_lag_seconds
                .map(fmt_lag)
                .unwrap_or_else(|| "—".to_string());
            let threshold = format!("{} s", a.rule.max_time_lag_seconds);
            let since = a
                .status
                .since_ms
                .map(fmt_time)
                .unwrap_or_else(|| "—".to_string());
            view! {
                <tr>
                    <td>{cl.name.clone()}</td>
                    <td><a href=href>{a.rule.group.clone()}</a></td>
                    <td class="num">{lag}</td>
                    <td class="num">{threshold}</td>
                    <td>{since}</td>
                </tr>
            }
        })
        .collect::<Vec<_>>();
    view! {
        <section class="card" id="firing-alerts">
            <h2>"Firing lag alerts"</h2>
            <table>
                <thead><tr><th>"Cluster"</th><th>"Group"</th><th class="num">"Time lag"</th><th class="num">"Threshold"</th><th>"Firing since"</th></tr></thead>
                <tbody>{rows}</tbody>
            </table>
        </section>
    }
    .into_any()
}

/// Every lag alert rule of a cluster, with the form to add one.
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
            let alerts = ops::lag_alerts(&c, &viewer.actor(), &cl, None).await?;
            let add = viewer
                .role
                .can_admin()
                .then(|| add_form(&cl, None, &viewer.csrf, BACK_LIST));
            let body = view! {
                {tabs(&cl, Tab::Groups, &viewer)}
                <section class="card" id="lag-alerts">
                    <p class="hint">{HOW_IT_WORKS}</p>
                    {rules_table(&cl, &alerts, &viewer, BACK_LIST, "No lag alerts in this cluster yet.")}
                    {add}
                </section>
            }
            .into_any();
            let title = format!("Lag alerts of {}", cl.name);
            Ok(html(page(&viewer, Nav::Clusters, &title, take_flash(&session).await, body)))
        }
        .await,
    )
}

/// The page a form post goes back to.
fn back_to(cl: &ClusterRef, f: &Fields) -> String {
    let group = f.get("group");
    if f.get("back") == BACK_GROUP && !group.is_empty() {
        group_href(cl, group)
    } else {
        list_href(cl)
    }
}

/// A number of seconds typed in a form (`what` names the field in the refusal).
fn seconds(f: &Fields, name: &str, what: &str) -> Result<f64, Refusal> {
    f.get(name)
        .trim()
        .parse::<f64>()
        .map_err(|_| Refusal::bad_request(format!("Give {what} as a number of seconds, e.g. 300.")))
}

fn whole_seconds(f: &Fields, name: &str, what: &str) -> Result<i64, Refusal> {
    match f.get(name).trim() {
        "" => Ok(0),
        v => v.parse::<i64>().map_err(|_| {
            Refusal::bad_request(format!(
                "Give {what} as a whole number of seconds, e.g. 60."
            ))
        }),
    }
}

pub async fn create(
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
            let back = back_to(&cluster, &f);
            let result = async {
                let max = seconds(&f, "max_time_lag_seconds", "the time lag threshold")?;
                let wait = whole_seconds(
                    &f,
                    "for_seconds",
                    "how long the lag must stay above the threshold",
                )?;
                let rule = NewAlertRule {
                    group: f.get("group"),
                    max_time_lag_seconds: max,
                    for_seconds: wait,
                    webhook_url: f.get("webhook_url"),
                };
                ops::create_lag_alert(&c, &viewer.actor(), &cluster, rule).await
            }
            .await;
            match result {
                Ok(a) => {
                    let text = format!(
                        "Lag alert added: it fires when the time lag of {} stays above {} s for {} s.",
                        a.rule.group, a.rule.max_time_lag_seconds, a.rule.for_seconds
                    );
                    done(&session, &back, text).await
                }
                Err(r) => back_with(&session, &back, r).await,
            }
        }
        .await,
    )
}

pub async fn delete(
    State(c): State<AppState>,
    session: Session,
    Path((_, id)): Path<(String, String)>,
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
            let back = back_to(&cluster, &f);
            match ops::delete_lag_alert(&c, &viewer.actor(), &cluster, &id).await {
                Ok(()) => done(&session, &back, "Lag alert deleted.").await,
                Err(r) => back_with(&session, &back, r).await,
            }
        }
        .await,
    )
}

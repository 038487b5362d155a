//! The team page: members and their roles, invites by one-time link.

use axum::extract::{Path, State};
use axum::http::HeaderMap;
use leptos::prelude::*;
use tower_sessions::Session;

use super::layout::{csrf_field, page, Nav};
use super::{back_with, done, enc, fmt_time, html, Page, Posted, SignedIn};
use crate::auth::{self, take_flash, Flash, Role};
use crate::{ops, AppState, Console};

fn role_select(current: &str, allow_owner: bool) -> AnyView {
    let options = ["member", "admin", "owner"]
        .into_iter()
        .filter(|r| allow_owner || *r != "owner" || current == "owner")
        .map(|r| {
            let selected = r == current;
            view! { <option value=r selected=selected>{r}</option> }
        })
        .collect::<Vec<_>>();
    view! { <select name="role">{options}</select> }.into_any()
}

pub async fn show(State(c): State<AppState>, session: Session, SignedIn(viewer): SignedIn) -> Page {
    Page(
        async {
            let members = ops::members(&c, &viewer).await?;
            let admin = viewer.role.can_admin();
            let owner = viewer.role == Role::Owner;
            let rows = members
                .iter()
                .map(|m| {
                    let me = m.user_id == viewer.user.id;
                    let may_manage = admin && (owner || m.role != "owner");
                    let base = format!("/team/members/{}", enc(&m.user_id));
                    let change = may_manage.then(|| {
                        let action = format!("{base}/role");
                        view! {
                            <form method="post" action=action class="inline">
                                {csrf_field(&viewer.csrf)}
                                {role_select(&m.role, owner)}
                                <button type="submit" class="small">"Change"</button>
                            </form>
                        }
                    });
                    let remove = (may_manage || me).then(|| {
                        let action = format!("{base}/remove");
                        let label = if me { "Leave" } else { "Remove" };
                        view! {
                            <form method="post" action=action class="inline">
                                {csrf_field(&viewer.csrf)}
                                <button type="submit" class="small danger">{label}</button>
                            </form>
                        }
                    });
                    let you = me.then_some(" (you)");
                    view! {
                        <tr>
                            <td>{m.email.clone()}{you}</td>
                            <td>{m.role.clone()}</td>
                            <td>{fmt_time(m.joined_at_ms)}</td>
                            <td>{change}{remove}</td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let invites = if admin { ops::invites(&c, &viewer).await? } else { Vec::new() };
            let invite_rows = invites
                .iter()
                .map(|i| {
                    let action = format!("/team/invites/{}/revoke", enc(&i.id));
                    view! {
                        <tr>
                            <td>{i.role.clone()}</td>
                            <td>{i.note.clone()}</td>
                            <td>{i.created_by.clone()}</td>
                            <td>{fmt_time(i.expires_at_ms)}</td>
                            <td>
                                <form method="post" action=action class="inline">
                                    {csrf_field(&viewer.csrf)}
                                    <button type="submit" class="small danger">"Revoke"</button>
                                </form>
                            </td>
                        </tr>
                    }
                })
                .collect::<Vec<_>>();
            let invite_section = admin.then(|| {
                let empty = invites.is_empty().then(|| view! { <p class="empty">"No open invites."</p> });
                let days = c.settings.invite_ttl.as_secs() / 86_400;
                view! {
                    <section class="card">
                        <h2>"Invite someone"</h2>
                        <p class="hint">"An invite is a one-time link, valid for "{super::plural(days, "day")}". Send it to the person yourself."</p>
                        <form method="post" action="/team/invites" class="row" id="create-invite">
                            {csrf_field(&viewer.csrf)}
                            <label>"Role"{role_select("member", owner)}</label>
                            <input name="note" maxlength="200" placeholder="for whom (optional)"/>
                            <button type="submit">"Create invite link"</button>
                        </form>
                        <h3>"Open invites"</h3>
                        {empty}
                        <table>
                            <thead><tr><th>"Role"</th><th>"Note"</th><th>"Created by"</th><th>"Expires"</th><th></th></tr></thead>
                            <tbody>{invite_rows}</tbody>
                        </table>
                    </section>
                }
            });
            let body = view! {
                <section class="card">
                    <p class="hint">"Owners and admins manage clusters, keys, topics and the team; members can look at everything."</p>
                    <table id="members">
                        <thead><tr><th>"Member"</th><th>"Role"</th><th>"Joined"</th><th></th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                </section>
                {invite_section}
            }
            .into_any();
            Ok(html(page(&viewer, Nav::Team, "Team", take_flash(&session).await, body)))
        }
        .await,
    )
}

/// The absolute address of an invite link, from the Host the browser used.
pub fn invite_url(c: &Console, headers: &HeaderMap, token: &str) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("localhost:8080");
    let scheme = if c.settings.secure_cookies {
        "https"
    } else {
        "http"
    };
    format!("{scheme}://{host}/invite/{token}")
}

pub async fn invite(
    State(c): State<AppState>,
    session: Session,
    headers: HeaderMap,
    Posted(SignedIn(viewer), f): Posted<SignedIn>,
) -> Page {
    Page(
        async {
            match ops::invite(&c, &viewer, f.get("role"), f.get("note")).await {
                Ok((inv, token)) => {
                    auth::set_flash(
                        &session,
                        Flash {
                            ok: true,
                            text: format!("Invite created for a new {}.", inv.role),
                            secret: Some((
                                "Invite link".to_string(),
                                invite_url(&c, &headers, &token),
                            )),
                            key_id: None,
                        },
                    )
                    .await?;
                    Ok(super::see_other("/team"))
                }
                Err(r) => back_with(&session, "/team", r).await,
            }
        }
        .await,
    )
}

pub async fn revoke_invite(
    State(c): State<AppState>,
    session: Session,
    Path(id): Path<String>,
    Posted(SignedIn(viewer), _): Posted<SignedIn>,
) -> Page {
    Page(
        async {
            match ops::revoke_invite(&c, &viewer, &id).await {
                Ok(()) => done(&session, "/team", "Invite revoked.").await,
                Err(r) => back_with(&session, "/team", r).await,
            }
        }
        .await,
    )
}

pub async fn change_role(
    State(c): State<AppState>,
    session: Session,
    Path(uid): Path<String>,
    Posted(SignedIn(viewer), f): Posted<SignedIn>,
) -> Page {
    Page(
        async {
            match ops::change_member(&c, &viewer, &uid, Some(f.get("role"))).await {
                Ok(()) => done(&session, "/team", "Role changed.").await,
                Err(r) => back_with(&session, "/team", r).await,
            }
        }
        .await,
    )
}

pub async fn remove(
    State(c): State<AppState>,
    session: Session,
    Path(uid): Path<String>,
    Posted(SignedIn(viewer), _): Posted<SignedIn>,
) -> Page {
    Page(
        async {
            let leaving = uid == viewer.user.id;
            match ops::change_member(&c, &viewer, &uid, None).await {
                Ok(()) if leaving => {
                    auth::switch_org(&session, "").await?;
                    done(&session, "/", "You left the organisation.").await
                }
                Ok(()) => done(&session, "/team", "Member removed.").await,
                Err(r) => back_with(&session, "/team", r).await,
            }
        }
        .await,
    )
}

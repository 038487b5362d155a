//! Sign-up, log-in, log-out, invites, the organisation switch, and the overview page.

use std::collections::HashMap;

use axum::extract::{Path, Query, State};
use axum::http::StatusCode;
use axum::response::IntoResponse;
use axum::Extension;
use leptos::prelude::*;
use tower_sessions::Session;

use super::layout::{bare_page, csrf_field, page, Nav};
use super::{enc, html, see_other, Page, Posted, SignedIn};
use crate::auth::{self, take_flash};
use crate::error::Refusal;
use crate::store::InviteProblem;
use crate::{ops, AppState, ClientAddr};

type Q = Query<HashMap<String, String>>;

/// The longest `next` path followed after log-in.
const MAX_NEXT: usize = 2048;

/// Where to go after log-in: only a path of this site, else `/` (no open redirect).
///
/// A path is followed when it starts with `/` and its second character is neither `/` nor
/// `\` (browsers read `//host` and `/\host` as another site), and every character is
/// visible ASCII: no control characters (`/%09/x` arrives as `/\t/x`, which browsers
/// strip to `//x`; a newline cannot go into a `Location` header), no spaces, no `\` at
/// all, nothing non-ASCII. Percent-escapes stay as they are: the browser decodes them
/// within this site's path.
pub fn safe_next(next: Option<&str>) -> String {
    let ok = |n: &str| {
        let b = n.as_bytes();
        n.len() <= MAX_NEXT
            && b.first() == Some(&b'/')
            && !matches!(b.get(1), Some(b'/') | Some(b'\\'))
            && b.iter().all(|c| c.is_ascii_graphic() && *c != b'\\')
    };
    match next {
        Some(n) if ok(n) => n.to_string(),
        _ => "/".to_string(),
    }
}

pub async fn overview(State(c): State<AppState>, session: Session) -> Page {
    Page(
        async {
            if auth::session_user(&c, &session).await?.is_none() {
                let to = if c.platform.user_count().await? == 0 {
                    "/signup"
                } else {
                    "/login"
                };
                return Ok(see_other(to));
            }
            let viewer = auth::viewer(&c, &session, "/").await?;
            let clusters = ops::clusters(&c, &viewer).await?;
            let mut rows = Vec::new();
            for cl in &clusters {
                let (topics, groups) = ops::cluster_counts(&c, cl).await?;
                let href = format!("/clusters/{}", enc(&cl.id));
                let name = cl.name.clone();
                let kind = if cl.builtin { "built-in, no credentials" } else { "SASL with API keys" };
                rows.push(view! {
                    <tr>
                        <td><a href=href>{name}</a></td>
                        <td>{kind}</td>
                        <td class="num">{topics}</td>
                        <td class="num">{groups}</td>
                    </tr>
                });
            }
            // Lag alerts firing now in any cluster the viewer sees, above everything else.
            let firing = ops::firing_lag_alerts(&c, &clusters).await?;
            let firing = super::alerts::firing_panel(&firing);
            let bootstrap = c.view.bootstrap();
            let owns_default = clusters.iter().any(|cl| cl.builtin);
            let quick = owns_default.then(|| {
                let produce = format!("echo 'hello' | kcat -b {bootstrap} -t greetings -P");
                let consume = format!("kcat -b {bootstrap} -t greetings -C -e");
                view! {
                    <section class="card">
                        <h2>"Try it"</h2>
                        <p>"The plaintext listener needs no credentials and writes to the built-in "<b>"default"</b>" cluster:"</p>
                        <pre>{produce}"\n"{consume}</pre>
                    </section>
                }
            });
            let empty = clusters.is_empty().then(|| {
                view! { <p class="empty">"No clusters yet. "<a href="/clusters">"Create one"</a>" to get a bootstrap address and API keys."</p> }
            });
            let org = viewer.org.name.clone();
            let body = view! {
                <p class="lead">"Organisation "<b>{org}</b>". Bootstrap address: "<code>{bootstrap.clone()}</code></p>
                {firing}
                {quick}
                <section class="card">
                    <h2>"Clusters"</h2>
                    {empty}
                    <table>
                        <thead><tr><th>"Name"</th><th>"Access"</th><th class="num">"Topics"</th><th class="num">"Groups"</th></tr></thead>
                        <tbody>{rows}</tbody>
                    </table>
                    <p><a class="button" href="/clusters">"Manage clusters"</a></p>
                </section>
            }
            .into_any();
            Ok(html(page(&viewer, Nav::Overview, "Overview", take_flash(&session).await, body)))
        }
        .await,
    )
}

fn signup_body(csrf: &str, invite: Option<(String, String, String)>) -> AnyView {
    let (action, intro, org_field) = match &invite {
        Some((token, org, role)) => (
            format!("/signup?invite={}", enc(token)),
            view! { <p>"You are invited to join "<b>{org.clone()}</b>" as "<b>{role.clone()}</b>". Create your account:"</p> }.into_any(),
            ().into_any(),
        ),
        None => (
            "/signup".to_string(),
            view! { <p>"Create an account and an organisation for your team."</p> }.into_any(),
            view! {
                <label>"Organisation name"<input name="org" required=true maxlength="80" placeholder="Acme data team"/></label>
            }
            .into_any(),
        ),
    };
    let login_href = match &invite {
        Some((token, _, _)) => format!("/login?next={}", enc(&format!("/invite/{token}"))),
        None => "/login".to_string(),
    };
    let min = auth::MIN_PASSWORD.to_string();
    view! {
        {intro}
        <form method="post" action=action class="stack" id="signup-form">
            {csrf_field(csrf)}
            <label>"E-mail"<input type="email" name="email" required=true autocomplete="email"/></label>
            <label>"Password ("{min.clone()}" characters or more)"<input type="password" name="password" required=true minlength=min autocomplete="new-password"/></label>
            {org_field}
            <button type="submit">"Sign up"</button>
        </form>
        <p>"Already have an account? "<a href=login_href>"Log in"</a></p>
    }
    .into_any()
}

async fn invite_details(c: &AppState, token: &str) -> Result<(String, String), Refusal> {
    match c.platform.invite_by_token(&auth::token_hash(token)).await? {
        None => Err(ops::invite_refusal(InviteProblem::Unknown)),
        Some((inv, org)) => match inv.problem(broker::clock::now_ms()) {
            Some(p) => Err(ops::invite_refusal(p)),
            None => Ok((org, inv.role)),
        },
    }
}

pub async fn signup_form(State(c): State<AppState>, session: Session, Query(q): Q) -> Page {
    Page(
        async {
            let csrf = auth::csrf_token(&session).await?;
            let invite = match q.get("invite") {
                Some(t) => {
                    let (org, role) = invite_details(&c, t).await?;
                    Some((t.clone(), org, role))
                }
                None => None,
            };
            Ok(html(bare_page(
                "Sign up",
                take_flash(&session).await,
                signup_body(&csrf, invite),
            )))
        }
        .await,
    )
}

pub async fn signup(
    State(c): State<AppState>,
    session: Session,
    Query(q): Q,
    Posted((), f): Posted<()>,
) -> Page {
    Page(
        async {
            let invite = q.get("invite").cloned();
            let back = match &invite {
                Some(t) => format!("/signup?invite={}", enc(t)),
                None => "/signup".to_string(),
            };
            let result = match &invite {
                Some(token) => {
                    ops::sign_up_with_invite(&c, f.get("email"), f.get("password"), token).await
                }
                None => ops::sign_up(&c, f.get("email"), f.get("password"), f.get("org").trim())
                    .await
                    .map(|(u, o)| (u, o.id)),
            };
            match result {
                Ok((user, org)) => {
                    auth::log_in(&session, &user.id, &org).await?;
                    super::done(&session, "/", format!("Welcome, {}.", user.email)).await
                }
                Err(r) if r.status == StatusCode::GONE || r.status == StatusCode::NOT_FOUND => {
                    Err(r)
                }
                Err(r) => super::back_with(&session, &back, r).await,
            }
        }
        .await,
    )
}

fn login_body(csrf: &str, next: &str, error: Option<String>) -> AnyView {
    let action = format!("/login?next={}", enc(next));
    let error = error.map(|e| view! { <div class="flash error" role="alert"><p>{e}</p></div> });
    view! {
        {error}
        <form method="post" action=action class="stack" id="login-form">
            {csrf_field(csrf)}
            <label>"E-mail"<input type="email" name="email" required=true autocomplete="email"/></label>
            <label>"Password"<input type="password" name="password" required=true autocomplete="current-password"/></label>
            <button type="submit">"Log in"</button>
        </form>
        <p>"New here? "<a href="/signup">"Create an account"</a></p>
    }
    .into_any()
}

pub async fn login_form(State(_c): State<AppState>, session: Session, Query(q): Q) -> Page {
    Page(
        async {
            let csrf = auth::csrf_token(&session).await?;
            let next = safe_next(q.get("next").map(String::as_str));
            Ok(html(bare_page(
                "Log in",
                take_flash(&session).await,
                login_body(&csrf, &next, None),
            )))
        }
        .await,
    )
}

pub async fn login(
    State(c): State<AppState>,
    session: Session,
    Extension(client): Extension<ClientAddr>,
    Query(q): Q,
    Posted((), f): Posted<()>,
) -> Page {
    Page(
        async {
            let next = safe_next(q.get("next").map(String::as_str));
            match ops::log_in(&c, f.get("email"), f.get("password"), &client.0).await {
                Ok(user) => {
                    let orgs = c.platform.memberships_of(&user.id).await?;
                    let org = orgs.first().map(|o| o.0.id.clone()).unwrap_or_default();
                    auth::log_in(&session, &user.id, &org).await?;
                    Ok(see_other(&next))
                }
                Err(r) => {
                    // Re-render the form with the message and the refusal's status.
                    let csrf = auth::csrf_token(&session).await?;
                    let body = bare_page("Log in", None, login_body(&csrf, &next, Some(r.message)));
                    Ok((r.status, html(body)).into_response())
                }
            }
        }
        .await,
    )
}

pub async fn logout(session: Session, _: Posted<()>) -> Page {
    Page(
        async {
            auth::log_out(&session).await?;
            Ok(see_other("/login"))
        }
        .await,
    )
}

pub async fn switch_org(session: Session, Posted(SignedIn(viewer), f): Posted<SignedIn>) -> Page {
    Page(
        async {
            let wanted = f.get("org");
            if !viewer.orgs.iter().any(|(o, _)| o.id == wanted) {
                return Err(Refusal::forbidden(
                    "You are not a member of that organisation.",
                ));
            }
            auth::switch_org(&session, wanted).await?;
            Ok(see_other("/"))
        }
        .await,
    )
}

pub async fn invite_page(
    State(c): State<AppState>,
    session: Session,
    Path(token): Path<String>,
) -> Page {
    Page(
        async {
            let (org, role) = invite_details(&c, &token).await?;
            let csrf = auth::csrf_token(&session).await?;
            let Some(user) = auth::session_user(&c, &session).await? else {
                // Logged out: sign up through the invite (or log in and come back).
                let body = signup_body(&csrf, Some((token.clone(), org, role)));
                return Ok(html(bare_page(
                    "Join your team",
                    take_flash(&session).await,
                    body,
                )));
            };
            let action = format!("/invite/{}", enc(&token));
            let email = user.email.clone();
            let body = view! {
                <p>"You are invited to join "<b>{org}</b>" as "<b>{role}</b>"."</p>
                <form method="post" action=action id="accept-invite">
                    {csrf_field(&csrf)}
                    <button type="submit">"Join as "{email}</button>
                </form>
            }
            .into_any();
            Ok(html(bare_page(
                "Join your team",
                take_flash(&session).await,
                body,
            )))
        }
        .await,
    )
}

pub async fn accept_invite(
    State(c): State<AppState>,
    session: Session,
    Path(token): Path<String>,
    _: Posted<()>,
) -> Page {
    Page(
        async {
            let Some(user) = auth::session_user(&c, &session).await? else {
                return Err(Refusal::login(&format!("/invite/{}", enc(&token))));
            };
            let org = ops::accept_invite(&c, &user, &token).await?;
            auth::switch_org(&session, &org).await?;
            super::done(&session, "/", "You joined the organisation.").await
        }
        .await,
    )
}

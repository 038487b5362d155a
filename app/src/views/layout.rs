//! The page shell: head, navigation, the flash message, and the error page.

use axum::http::StatusCode;
use leptos::prelude::*;

use crate::auth::{Flash, Viewer};

/// Which navigation entry is highlighted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Nav {
    Overview,
    Clusters,
    Team,
    Agents,
    None,
}

fn document(title: &str, body: AnyView) -> String {
    let title = format!("{title} · Sluice");
    let html = view! {
        <html lang="en">
            <head>
                <meta charset="utf-8"/>
                <meta name="viewport" content="width=device-width, initial-scale=1"/>
                <title>{title}</title>
                <link rel="stylesheet" href="/style.css"/>
                <script src="/public/console.js" defer></script>
            </head>
            <body>{body}</body>
        </html>
    }
    .to_html();
    format!("<!DOCTYPE html>{html}")
}

/// A "Copy" button for the text of element `target` (hidden until the script shows it:
/// without JavaScript there is nothing it could do).
pub fn copy_button(target: &'static str) -> AnyView {
    view! { <button type="button" class="copy small" data-copy=target hidden=true>"Copy"</button> }
        .into_any()
}

/// A hidden CSRF field for a form.
pub fn csrf_field(token: &str) -> impl IntoView {
    let token = token.to_string();
    view! { <input type="hidden" name="csrf" value=token/> }
}

fn flash_view(flash: Option<Flash>) -> AnyView {
    match flash {
        None => ().into_any(),
        Some(f) => {
            let class = if f.ok { "flash ok" } else { "flash error" };
            let secret = f.secret.map(|(label, value)| {
                view! {
                    <div class="secret">
                        <span class="secret-label">{label}</span>
                        <code class="secret-value" id="secret-value">{value}</code>
                        {copy_button("secret-value")}
                        <p class="hint">"Copy it now: it will not be shown again."</p>
                    </div>
                }
            });
            view! { <div class=class role="status"><p>{f.text}</p>{secret}</div> }.into_any()
        }
    }
}

/// A page of a logged-in user.
pub fn page(viewer: &Viewer, nav: Nav, title: &str, flash: Option<Flash>, body: AnyView) -> String {
    let item = |target: Nav, href: &'static str, label: &'static str| {
        let class = if nav == target { "active" } else { "" };
        view! { <a class=class href=href>{label}</a> }
    };
    let org_switch = (viewer.orgs.len() > 1).then(|| {
        let current = viewer.org.id.clone();
        let options = viewer
            .orgs
            .iter()
            .map(|(o, _)| {
                let selected = o.id == current;
                let id = o.id.clone();
                let name = o.name.clone();
                view! { <option value=id selected=selected>{name}</option> }
            })
            .collect::<Vec<_>>();
        view! {
            <form method="post" action="/org/switch" class="inline">
                {csrf_field(&viewer.csrf)}
                <select name="org">{options}</select>
                <button type="submit" class="small">"Switch"</button>
            </form>
        }
    });
    let org_name = viewer.org.name.clone();
    let email = viewer.user.email.clone();
    let role = viewer.role.as_str();
    let heading = title.to_string();
    let body = view! {
        <header class="top">
            <a class="brand" href="/">"Sluice"</a>
            <nav>
                {item(Nav::Overview, "/", "Overview")}
                {item(Nav::Clusters, "/clusters", "Clusters")}
                {item(Nav::Team, "/team", "Team")}
                {item(Nav::Agents, "/agents", "Agents")}
            </nav>
            <div class="who">
                <span class="org">{org_name}</span>
                {org_switch}
                <span class="user">{email}" · "{role}</span>
                <form method="post" action="/logout" class="inline">
                    {csrf_field(&viewer.csrf)}
                    <button type="submit" class="link">"Log out"</button>
                </form>
            </div>
        </header>
        <main>
            <h1>{heading}</h1>
            {flash_view(flash)}
            {body}
        </main>
    }
    .into_any();
    document(title, body)
}

/// A page without a logged-in user (log-in, sign-up, invites).
pub fn bare_page(title: &str, flash: Option<Flash>, body: AnyView) -> String {
    let heading = title.to_string();
    let body = view! {
        <header class="top"><a class="brand" href="/">"Sluice"</a></header>
        <main class="narrow">
            <h1>{heading}</h1>
            {flash_view(flash)}
            {body}
        </main>
    }
    .into_any();
    document(title, body)
}

pub fn error_page(status: StatusCode, message: &str) -> String {
    let reason = status.canonical_reason().unwrap_or("Error").to_string();
    let message = message.to_string();
    let body = view! {
        <div class="flash error" role="alert"><p>{message}</p></div>
        <p><a href="/">"Back to the overview"</a></p>
    }
    .into_any();
    bare_page(&reason, None, body)
}

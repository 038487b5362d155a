//! The console's pages. Each handler gets who is asking (and the cluster of its path) from
//! an extractor, calls [`crate::ops`], then renders a page or redirects with a flash
//! message (post/redirect/get, so reloading never repeats an action).
//!
//! * [`SignedIn`]: the logged-in viewer; without one, a redirect to the log-in form that
//!   comes back to the page asked for. With [`crate::extract::InCluster`] it also looks
//!   the cluster of the path up.
//! * [`Posted`]: a submitted form whose CSRF token is checked first, then the extractor it
//!   wraps (`Posted<SignedIn>`, `Posted<InCluster<SignedIn>>`, or `Posted<()>` for forms
//!   of logged-out visitors).
//! * [`Page`]: a handler's result, with a refusal rendered as an error page.

use std::collections::HashMap;

use axum::extract::{FromRequest, FromRequestParts, Request};
use axum::http::request::Parts;
use axum::http::{header, StatusCode};
use axum::response::{IntoResponse, Redirect, Response};
use axum::routing::{get, post};
use axum::{Form, Router};
use tower_sessions::Session;

use crate::auth::{self, Actor, Viewer};
use crate::error::Refusal;
use crate::extract::{self, Who};
use crate::AppState;

pub mod account;
pub mod acls;
pub mod agents;
pub mod alerts;
pub mod clusters;
pub mod groups;
pub mod layout;
pub mod messages;
pub mod team;
pub mod topics;

pub fn routes() -> Router<AppState> {
    Router::new()
        .route("/", get(account::overview))
        .route("/signup", get(account::signup_form).post(account::signup))
        .route("/login", get(account::login_form).post(account::login))
        .route("/logout", post(account::logout))
        .route("/org/switch", post(account::switch_org))
        .route(
            "/invite/{token}",
            get(account::invite_page).post(account::accept_invite),
        )
        .route("/clusters", get(clusters::list).post(clusters::create))
        .route("/clusters/{c}", get(clusters::show))
        .route("/clusters/{c}/rename", post(clusters::rename))
        .route("/clusters/{c}/settings", post(clusters::settings))
        .route(
            "/clusters/{c}/delete",
            get(clusters::delete_form).post(clusters::delete),
        )
        .route(
            "/clusters/{c}/keys",
            get(clusters::keys).post(clusters::create_key),
        )
        .route("/clusters/{c}/keys/{k}/revoke", post(clusters::revoke_key))
        .route("/clusters/{c}/keys/{k}/quotas", post(acls::key_quotas))
        .route("/clusters/{c}/acls", get(acls::show).post(acls::create))
        .route("/clusters/{c}/acls/delete", post(acls::delete))
        .route("/clusters/{c}/acls/enforce", post(acls::enforce))
        .route(
            "/clusters/{c}/topics",
            get(topics::list).post(topics::create),
        )
        .route("/clusters/{c}/topics/{t}", get(topics::show))
        .route("/clusters/{c}/topics/{t}/configs", post(topics::configs))
        .route("/clusters/{c}/topics/{t}/delete", post(topics::delete))
        .route(
            "/clusters/{c}/topics/{t}/partitions",
            post(topics::add_partitions),
        )
        .route(
            "/clusters/{c}/topics/{t}/messages",
            get(messages::messages).post(messages::produce),
        )
        .route(
            "/clusters/{c}/topics/{t}/messages.jsonl",
            get(messages::download),
        )
        .route("/clusters/{c}/groups", get(groups::list))
        .route("/clusters/{c}/groups/{g}", get(groups::show))
        .route("/clusters/{c}/groups/{g}/reset", post(groups::reset))
        .route("/clusters/{c}/groups/{g}/delete", post(groups::delete))
        .route(
            "/clusters/{c}/groups/{g}/offsets/delete",
            post(groups::delete_offsets),
        )
        .route("/clusters/{c}/groups/{g}/lag.svg", get(groups::chart))
        .route(
            "/clusters/{c}/alerts",
            get(alerts::list).post(alerts::create),
        )
        .route("/clusters/{c}/alerts/{id}/delete", post(alerts::delete))
        .route("/agents", get(agents::show))
        .route("/team", get(team::show))
        .route("/team/invites", post(team::invite))
        .route("/team/invites/{id}/revoke", post(team::revoke_invite))
        .route("/team/members/{uid}/role", post(team::change_role))
        .route("/team/members/{uid}/remove", post(team::remove))
}

/// Percent-encodes a path segment or query value.
pub fn enc(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// A submitted form, read leniently: missing fields are empty strings, so validation can
/// answer with a clear message instead of a generic 422.
#[derive(Debug, Default, serde::Deserialize)]
#[serde(transparent)]
pub struct Fields(pub HashMap<String, String>);

impl Fields {
    pub fn get(&self, name: &str) -> &str {
        self.0.get(name).map(|s| s.as_str()).unwrap_or("")
    }
    pub fn has(&self, name: &str) -> bool {
        self.0.contains_key(name)
    }
    pub async fn check_csrf(&self, session: &Session) -> Result<(), Refusal> {
        auth::check_csrf(session, self.0.get("csrf").map(|s| s.as_str())).await
    }
}

/// Page handlers return this: a rendered page, a redirect, or a refusal page.
pub type PageResult = Result<Response, Refusal>;

/// Wraps a page result so the refusal renders as HTML.
pub struct Page(pub PageResult);

impl IntoResponse for Page {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(r) => r,
            Err(r) => refusal_page(r),
        }
    }
}

/// A refusal as the console shows it: not logged in goes to the log-in form (coming back
/// to where the visitor was), anything else is an error page with the refusal's status.
pub fn refusal_page(r: Refusal) -> Response {
    if let Some(next) = &r.login_next {
        return Redirect::to(&format!("/login?next={}", enc(next))).into_response();
    }
    let body = layout::error_page(r.status, &r.message);
    (
        r.status,
        [(header::CONTENT_TYPE, "text/html; charset=utf-8")],
        body,
    )
        .into_response()
}

/// The logged-in viewer of a page, in their current organisation.
pub struct SignedIn(pub Viewer);

impl Who for SignedIn {
    fn actor(&self) -> Actor {
        self.0.actor()
    }
    fn refuse(r: Refusal) -> Response {
        refusal_page(r)
    }
}

impl FromRequestParts<AppState> for SignedIn {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = extract::session(parts, state).await?;
        // After logging in, come back to the page asked for. A form post has no page of
        // its own to come back to (and its CSRF token was checked first, see `Posted`).
        let next = if parts.method.is_safe() {
            parts.uri.path()
        } else {
            "/"
        };
        auth::viewer(state, &session, next)
            .await
            .map(SignedIn)
            .map_err(refusal_page)
    }
}

/// A submitted form (read leniently, see [`Fields`]) with its CSRF token checked, then
/// `T` extracted: the token is checked before anything else about the request.
pub struct Posted<T>(pub T, pub Fields);

impl<T> FromRequest<AppState> for Posted<T>
where
    T: FromRequestParts<AppState> + Send,
    T::Rejection: IntoResponse,
{
    type Rejection = Response;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, Response> {
        let (parts, body) = req.into_parts();
        let mut head = parts.clone();
        let Form(fields) = Form::<Fields>::from_request(Request::from_parts(parts, body), state)
            .await
            .map_err(IntoResponse::into_response)?;
        let session = extract::session(&mut head, state).await?;
        fields.check_csrf(&session).await.map_err(refusal_page)?;
        let inner = T::from_request_parts(&mut head, state)
            .await
            .map_err(IntoResponse::into_response)?;
        Ok(Posted(inner, fields))
    }
}

pub fn html(body: String) -> Response {
    ([(header::CONTENT_TYPE, "text/html; charset=utf-8")], body).into_response()
}

pub fn see_other(to: &str) -> Response {
    Redirect::to(to).into_response()
}

/// After an action: a flash message for the next page, then a redirect to it.
pub async fn done(session: &Session, to: &str, text: impl Into<String>) -> PageResult {
    auth::flash(session, true, text).await?;
    Ok(see_other(to))
}

/// A refused action whose page can show the problem: flash it and go back there. Refusals
/// about who is asking (log-in, CSRF, permissions) are shown as their own page instead.
pub async fn back_with(session: &Session, to: &str, r: Refusal) -> PageResult {
    if r.login_next.is_some() || r.status == StatusCode::FORBIDDEN {
        return Err(r);
    }
    auth::flash(session, false, r.message).await?;
    Ok(see_other(to))
}

pub fn fmt_time(ms: i64) -> String {
    if ms <= 0 {
        return "—".to_string();
    }
    let secs = ms / 1000;
    let days = secs.div_euclid(86_400);
    let rem = secs.rem_euclid(86_400);
    let (y, m, d) = civil_from_days(days);
    format!(
        "{y:04}-{m:02}-{d:02} {:02}:{:02}:{:02} UTC",
        rem / 3600,
        (rem / 60) % 60,
        rem % 60
    )
}

/// Days since 1970-01-01 to a proleptic Gregorian date (Howard Hinnant's algorithm).
fn civil_from_days(z: i64) -> (i64, u32, u32) {
    let z = z + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let y = yoe + era * 400;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let m = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    (if m <= 2 { y + 1 } else { y }, m, d)
}

/// A count with its noun: "1 partition", "6 partitions", "0 members". For nouns whose
/// plural is the noun and an "s".
pub fn plural<N>(n: N, noun: &str) -> String
where
    N: Copy + PartialEq + From<u8> + std::fmt::Display,
{
    if n == N::from(1) {
        format!("{n} {noun}")
    } else {
        format!("{n} {noun}s")
    }
}

pub fn fmt_bytes(n: i64) -> String {
    let n = n as f64;
    if n < 1024.0 {
        format!("{n} B")
    } else if n < 1024.0 * 1024.0 {
        format!("{:.1} KiB", n / 1024.0)
    } else if n < 1024.0 * 1024.0 * 1024.0 {
        format!("{:.1} MiB", n / 1024.0 / 1024.0)
    } else {
        format!("{:.2} GiB", n / 1024.0 / 1024.0 / 1024.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_and_encoding() {
        assert_eq!(fmt_time(0), "—");
        assert_eq!(fmt_time(1_764_028_800_000), "2025-11-25 00:00:00 UTC");
        assert_eq!(fmt_time(951_782_400_000), "2000-02-29 00:00:00 UTC");
        assert_eq!(enc("a b/c.d"), "a%20b%2Fc.d");
    }

    #[test]
    fn counts_agree_with_their_nouns() {
        assert_eq!(plural(1usize, "partition"), "1 partition");
        assert_eq!(plural(6usize, "partition"), "6 partitions");
        assert_eq!(plural(0i64, "member"), "0 members");
        assert_eq!(plural(1u64, "day"), "1 day");
        assert_eq!(plural(-1i32, "record"), "-1 records");
    }
}

//! The preamble every console handler shares, as axum extractors: who is asking, and the
//! cluster named in the path with the asker's access to it checked.
//!
//! * [`Caller`]: the caller of a JSON API request (an API key, a session user, or
//!   nobody). A session must send `X-CSRF-Token` on anything but GET and HEAD.
//! * [`ApiUser`]: a caller that must be a logged-in user (organisation-level calls).
//! * [`InCluster`]: one of those (or the pages' `views::SignedIn`) and the cluster of the
//!   `{c}` path segment, looked up once with [`ops::cluster`]: a key sees only its own
//!   cluster, a user only their organisation's.
//!
//! Each extractor refuses the way its surface shows errors ([`Who::refuse`]): the JSON
//! API as `{"error": …}`, the pages as an HTML page or a redirect to the log-in form. The
//! refusals are those of [`auth`] and [`ops`], unchanged.

use std::collections::HashMap;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use axum::response::{IntoResponse, Response};
use tower_sessions::Session;

use crate::auth::{self, Actor};
use crate::error::Refusal;
use crate::ops::{self, ClusterRef};
use crate::AppState;

/// Someone asking, as one surface (API or pages) knows them.
pub trait Who {
    /// The caller as the actions in [`ops`] take it.
    fn actor(&self) -> Actor;
    /// A refusal as this surface shows it.
    fn refuse(r: Refusal) -> Response;
}

/// The request's session (present whenever the router's session layer is).
pub async fn session(parts: &mut Parts, state: &AppState) -> Result<Session, Response> {
    Session::from_request_parts(parts, state)
        .await
        .map_err(IntoResponse::into_response)
}

/// The caller of a JSON API request.
pub struct Caller(pub Actor);

impl Who for Caller {
    fn actor(&self) -> Actor {
        self.0.clone()
    }
    fn refuse(r: Refusal) -> Response {
        r.into_json()
    }
}

impl FromRequestParts<AppState> for Caller {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let session = session(parts, state).await?;
        let mutating = !parts.method.is_safe();
        auth::api_actor(state, &session, &parts.headers, mutating)
            .await
            .map(Caller)
            .map_err(Self::refuse)
    }
}

/// The caller of a JSON API request that only a logged-in user may make.
pub struct ApiUser(pub auth::Viewer);

impl Who for ApiUser {
    fn actor(&self) -> Actor {
        self.0.actor()
    }
    fn refuse(r: Refusal) -> Response {
        r.into_json()
    }
}

impl FromRequestParts<AppState> for ApiUser {
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let Caller(actor) = Caller::from_request_parts(parts, state).await?;
        ops::require_user(actor).map(ApiUser).map_err(Self::refuse)
    }
}

/// Someone asking ([`Caller`], [`ApiUser`] or `views::SignedIn`) about the cluster of the
/// `{c}` path segment, which they may see.
pub struct InCluster<W> {
    pub who: W,
    pub cluster: ClusterRef,
}

impl<W> FromRequestParts<AppState> for InCluster<W>
where
    W: Who + FromRequestParts<AppState, Rejection = Response> + Send,
{
    type Rejection = Response;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, Response> {
        let who = W::from_request_parts(parts, state).await?;
        let Path(params) = Path::<HashMap<String, String>>::from_request_parts(parts, state)
            .await
            .map_err(IntoResponse::into_response)?;
        let Some(id) = params.get("c") else {
            return Err(W::refuse(Refusal::internal(
                "cluster extractor used on a route without {c}",
                parts.uri.path(),
            )));
        };
        let cluster = ops::cluster(state, &who.actor(), id)
            .await
            .map_err(W::refuse)?;
        Ok(InCluster { who, cluster })
    }
}

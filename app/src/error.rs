//! `Refusal`: every way a console request or an API call is turned down, with the status
//! code and a message a person can act on. The JSON API renders it as
//! `{"error": "..."}` ([`Refusal::into_json`], [`Api`]); pages render it as an HTML page
//! (`views::Page`, which knows the page layout; this module knows nothing of views). The
//! cause of a server-side failure is logged, never shown.

use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::Json;
use broker::inspect::{InspectError, StoreError};

use crate::store;

#[derive(Debug, Clone)]
pub struct Refusal {
    pub status: StatusCode,
    pub message: String,
    /// Not logged in: pages redirect to the log-in form, coming back to `next`.
    pub login_next: Option<String>,
}

impl Refusal {
    pub fn new(status: StatusCode, message: impl Into<String>) -> Self {
        Refusal {
            status,
            message: message.into(),
            login_next: None,
        }
    }
    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, message)
    }
    pub fn forbidden(message: impl Into<String>) -> Self {
        Self::new(StatusCode::FORBIDDEN, message)
    }
    pub fn not_found(message: impl Into<String>) -> Self {
        Self::new(StatusCode::NOT_FOUND, message)
    }
    pub fn conflict(message: impl Into<String>) -> Self {
        Self::new(StatusCode::CONFLICT, message)
    }
    pub fn login(next: &str) -> Self {
        Refusal {
            status: StatusCode::UNAUTHORIZED,
            message: "Log in to continue.".into(),
            login_next: Some(next.to_string()),
        }
    }
    pub fn csrf() -> Self {
        Self::forbidden(
            "This form has expired or did not come from this console. Reload the page and try again.",
        )
    }
    pub fn admin_only() -> Self {
        Self::forbidden("Only owners and admins of this organisation can do that. Ask one of them.")
    }
    /// A failure of ours: logged with its cause, shown as a generic message.
    pub fn internal(context: &str, cause: impl std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "{context}");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "The metadata store is unavailable right now. Try again in a moment.",
        )
    }

    /// As a JSON API answer.
    pub fn into_json(self) -> Response {
        (
            self.status,
            Json(serde_json::json!({ "error": self.message })),
        )
            .into_response()
    }
}

impl From<StoreError> for Refusal {
    fn from(e: StoreError) -> Self {
        match e {
            StoreError::AlreadyExists(what) => Refusal::conflict(format!("{what} already exists.")),
            StoreError::TopicExists(t) => Refusal::conflict(format!("Topic '{t}' already exists.")),
            StoreError::UnknownTopic(t) => {
                Refusal::not_found(format!("Topic '{t}' does not exist."))
            }
            StoreError::InvalidPartitions(m) => Refusal::bad_request(m),
            other => Refusal::internal("metadata store request failed", other),
        }
    }
}

impl From<store::StoreError> for Refusal {
    fn from(e: store::StoreError) -> Self {
        match e {
            store::StoreError::AlreadyExists(what) => {
                Refusal::conflict(format!("{what} already exists."))
            }
            other => Refusal::internal("platform store request failed", other),
        }
    }
}

impl From<InspectError> for Refusal {
    fn from(e: InspectError) -> Self {
        use InspectError as E;
        match e {
            E::NotFound(m) => Refusal::not_found(m),
            E::Invalid(m) => Refusal::bad_request(m),
            E::Conflict(m) => Refusal::conflict(m),
            E::Storage(m) => Refusal::internal("reading records failed", m),
            E::Store(s) => s.into(),
        }
    }
}

/// Wraps an API result so the refusal renders as JSON.
pub struct Api(pub Result<Response, Refusal>);

impl IntoResponse for Api {
    fn into_response(self) -> Response {
        match self.0 {
            Ok(r) => r,
            Err(r) => r.into_json(),
        }
    }
}

//! The Sluice console: server-rendered pages (Leptos `view!` rendered to HTML on the
//! server, no WebAssembly; every action is a plain HTML form), the JSON API under
//! `/api/v1/`, and the platform rules behind both (accounts, organisations and roles,
//! invites, virtual clusters, API keys).
//!
//! Map, from the bottom up (each module uses only those listed before it, and the
//! [`Console`] state of this crate root):
//! * [`store`]: the platform data (users, organisations, memberships, invites) in the
//!   console's own database, and the pool the session store keeps its table in.
//! * [`error`]: [`error::Refusal`], every way a request is turned down, and its JSON form.
//! * [`trend`]: where a group's time lag is heading and when it catches up (pure).
//! * [`auth`]: passwords, log-in rate limit, sessions, CSRF, roles, API keys over HTTP.
//! * [`ops`]: every console action as one function (permission check, validation, the
//!   change), shared by the pages and the JSON API so the two cannot drift apart.
//! * [`acl_ops`]: the Kafka ACLs and client quotas of a cluster (the same rules for pages
//!   and API).
//! * [`extract`]: the handlers' preamble as axum extractors: who is asking, and the
//!   cluster of the path with access checked.
//! * [`filter`]: the message browser's filters (substrings, headers, VRL programs).
//! * [`chart`]: lag charts as SVG (plotters).
//! * [`views`]: the pages, one module per area; `views::layout` is the shell; a refusal
//!   renders as a page there.
//! * [`api`]: the JSON endpoints.
//!
//! Cluster data (virtual clusters, API keys, topics, records, groups, lag) is read and
//! changed only through [`broker::inspect::ClusterView`], the broker's one door for the
//! console: nothing here touches the broker's store or its fields. The platform database
//! is the cluster metadata database unless `--platform-database-url` names another.
//! No SQL outside [`store`], except the session store's own table.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::{ConnectInfo, Request};
use axum::http::{header, HeaderValue};
use axum::middleware::{self, Next};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::Router;
use broker::inspect::ClusterView;
use tower_sessions::cookie::SameSite;
use tower_sessions::{Expiry, SessionManagerLayer};

pub mod acl_ops;
pub mod api;
pub mod auth;
pub mod chart;
pub mod error;
pub mod extract;
pub mod filter;
pub mod ops;
pub mod store;
pub mod trend;
pub mod views;

/// Settings of the console, from the command line.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Mark cookies `Secure` (the console is served over TLS, e.g. behind a proxy).
    pub secure_cookies: bool,
    /// Whether the built-in `default` cluster is reachable without credentials on the
    /// Kafka port (then the console shows it to the first organisation, its owner).
    pub default_cluster_open: bool,
    /// Anyone may sign up and start an organisation. When false, only the very first
    /// account is created freely; everyone else needs an invite.
    pub open_signup: bool,
    /// How long a log-in session lasts without activity.
    pub session_idle: Duration,
    /// How long an invite link stays valid.
    pub invite_ttl: Duration,
    /// How failed log-ins slow the next attempts.
    pub login_throttle: auth::Throttle,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            secure_cookies: false,
            default_cluster_open: true,
            open_signup: true,
            session_idle: Duration::from_secs(7 * 86_400),
            invite_ttl: Duration::from_secs(7 * 86_400),
            login_throttle: auth::Throttle::default(),
        }
    }
}

/// The console's shared state.
pub struct Console {
    /// The broker, as far as the console may see it.
    pub view: ClusterView,
    /// Accounts, organisations and invites (and the sessions' pool).
    pub platform: store::Platform,
    pub settings: Settings,
    pub limiter: auth::LoginLimiter,
    key_checks: auth::KeyChecks,
    /// The first organisation's id once there is one (it never changes afterwards).
    first_org: std::sync::OnceLock<String>,
}

impl Console {
    pub fn new(view: ClusterView, platform: store::Platform, settings: Settings) -> Arc<Self> {
        let limiter = auth::LoginLimiter::new(settings.login_throttle);
        Arc::new(Console {
            view,
            platform,
            settings,
            limiter,
            key_checks: auth::KeyChecks::new(),
            first_org: std::sync::OnceLock::new(),
        })
    }

    /// Whether organisation `org_id` sees the built-in `default` cluster: only while the
    /// Kafka port serves it without credentials, and only for the first organisation
    /// created (the server owner's). Every other organisation is told it does not exist.
    pub async fn owns_default_cluster(&self, org_id: &str) -> Result<bool, error::Refusal> {
        if !self.settings.default_cluster_open {
            return Ok(false);
        }
        if let Some(first) = self.first_org.get() {
            return Ok(first == org_id);
        }
        let Some(first) = self.platform.first_org_id().await? else {
            return Ok(false);
        };
        let first = self.first_org.get_or_init(|| first);
        Ok(first == org_id)
    }
}

pub type AppState = Arc<Console>;

/// The client address as the rate limiter sees it ("unknown" in tests without a socket).
#[derive(Debug, Clone)]
pub struct ClientAddr(pub String);

async fn client_addr(mut req: Request, next: Next) -> Response {
    let addr = req
        .extensions()
        .get::<ConnectInfo<SocketAddr>>()
        .map(|c| c.0.ip().to_string())
        .unwrap_or_else(|| "unknown".to_string());
    req.extensions_mut().insert(ClientAddr(addr));
    let mut res = next.run(req).await;
    let h = res.headers_mut();
    // The console is never framed, and pages carrying secrets are never cached.
    h.insert("x-frame-options", HeaderValue::from_static("DENY"));
    // Pages load only their own stylesheet, script and chart images; forms post only here.
    h.entry(header::CONTENT_SECURITY_POLICY)
        .or_insert(HeaderValue::from_static(
            "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; \
         form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
        ));
    h.insert(
        header::REFERRER_POLICY,
        HeaderValue::from_static("same-origin"),
    );
    h.insert(
        "x-content-type-options",
        HeaderValue::from_static("nosniff"),
    );
    h.entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    res
}

/// The console and the JSON API, with sessions kept in the platform database.
pub async fn router(console: Arc<Console>) -> anyhow::Result<Router> {
    let routes = views::routes()
        .merge(api::routes())
        .route("/style.css", get(stylesheet))
        .route("/public/console.js", get(script))
        .route("/public/tail.js", get(tail_script))
        .with_state(console.clone());
    let idle = time::Duration::seconds(console.settings.session_idle.as_secs() as i64);
    let secure = console.settings.secure_cookies;
    let routes = match console.platform.db() {
        store::Db::Sqlite(pool) => {
            let store = tower_sessions_sqlx_store::SqliteStore::new(pool.clone());
            store.migrate().await?;
            routes.layer(session_layer(store, secure, idle))
        }
        store::Db::Postgres(pool) => {
            let store = tower_sessions_sqlx_store::PostgresStore::new(pool.clone());
            store.migrate().await?;
            routes.layer(session_layer(store, secure, idle))
        }
    };
    Ok(routes.layer(middleware::from_fn(client_addr)))
}

/// Session cookies: `HttpOnly`, `SameSite=Lax`, `Secure` behind TLS, expiring after
/// `idle` without a request. Expired rows are deleted by [`clean_sessions`].
fn session_layer<S>(store: S, secure: bool, idle: time::Duration) -> SessionManagerLayer<S>
where
    S: tower_sessions::SessionStore + Clone + Send + Sync + 'static,
{
    SessionManagerLayer::new(store)
        .with_name("sluice_session")
        .with_http_only(true)
        .with_same_site(SameSite::Lax)
        .with_secure(secure)
        .with_expiry(Expiry::OnInactivity(idle))
}

/// How often expired console sessions are deleted.
const SESSION_CLEAN_EVERY: Duration = Duration::from_secs(600);

/// Deletes expired console sessions every ten minutes until `cancel` fires. The binary runs
/// it as one of the agent's jobs, so shutdown waits for it.
pub async fn clean_sessions(console: Arc<Console>, cancel: tokio_util::sync::CancellationToken) {
    use tower_sessions::ExpiredDeletion;
    loop {
        tokio::select! {
            _ = tokio::time::sleep(SESSION_CLEAN_EVERY) => {}
            _ = cancel.cancelled() => break,
        }
        let done = match console.platform.db() {
            store::Db::Sqlite(pool) => {
                tower_sessions_sqlx_store::SqliteStore::new(pool.clone())
                    .delete_expired()
                    .await
            }
            store::Db::Postgres(pool) => {
                tower_sessions_sqlx_store::PostgresStore::new(pool.clone())
                    .delete_expired()
                    .await
            }
        };
        if let Err(e) = done {
            tracing::warn!(error = %e, "deleting expired sessions failed; retrying later");
        }
    }
}

async fn stylesheet() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/css; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../style/console.css"),
    )
}

async fn tail_script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../public/tail.js"),
    )
}

async fn script() -> impl IntoResponse {
    (
        [
            (header::CONTENT_TYPE, "text/javascript; charset=utf-8"),
            (header::CACHE_CONTROL, "public, max-age=300"),
        ],
        include_str!("../../public/console.js"),
    )
}

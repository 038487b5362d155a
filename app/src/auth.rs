//! Who is asking: passwords (argon2id), the log-in rate limit, the session's user and
//! organisation, CSRF tokens, roles, and API keys used as HTTP credentials.
//!
//! A session cookie holds only an id; the session row (tower-sessions' SQL store) holds the
//! user id, the current organisation and the CSRF token. The CSRF token is random per
//! session and checked, in constant time, on every form post and on every state-changing
//! API call made with a session (API calls made with an API key carry no cookie and need
//! none).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use argon2::password_hash::phc::PasswordHash;
use argon2::password_hash::{PasswordHasher, PasswordVerifier};
use argon2::Argon2;
use axum::http::{HeaderMap, StatusCode};
use base64::engine::general_purpose::STANDARD as B64;
use base64::Engine;
use broker::inspect::CREDENTIAL_TTL;
use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;
use tower_sessions::Session;

use crate::error::Refusal;
use crate::store::{Org, User};
use crate::Console;

pub const MIN_PASSWORD: usize = 10;
pub const MAX_PASSWORD: usize = 256;

const USER_KEY: &str = "uid";
const ORG_KEY: &str = "org";
const CSRF_KEY: &str = "csrf";
const FLASH_KEY: &str = "flash";

/// What a member may do in an organisation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, serde::Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    Member,
    Admin,
    Owner,
}

impl Role {
    pub fn parse(s: &str) -> Option<Role> {
        match s {
            "owner" => Some(Role::Owner),
            "admin" => Some(Role::Admin),
            "member" => Some(Role::Member),
            _ => None,
        }
    }
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Owner => "owner",
            Role::Admin => "admin",
            Role::Member => "member",
        }
    }
    pub fn can_admin(self) -> bool {
        self >= Role::Admin
    }
}

/// A logged-in user looking at one of their organisations.
#[derive(Debug, Clone)]
pub struct Viewer {
    pub user: User,
    pub org: Org,
    pub role: Role,
    pub orgs: Vec<(Org, String)>,
    pub csrf: String,
}

impl Viewer {
    /// This viewer as the caller of an action.
    pub fn actor(&self) -> Actor {
        Actor::User(Box::new(self.clone()))
    }

    pub fn require_admin(&self) -> Result<(), Refusal> {
        if self.role.can_admin() {
            Ok(())
        } else {
            Err(Refusal::admin_only())
        }
    }
}

/// Who made an API call.
#[derive(Debug, Clone)]
pub enum Actor {
    User(Box<Viewer>),
    /// An API key: may use the cluster it belongs to, nothing else.
    Key {
        key_id: String,
        cluster_id: String,
    },
    /// No credentials: may only read the built-in `default` cluster, and only while the
    /// Kafka port serves it without credentials too.
    Anonymous,
}

/// A message shown once on the next page (after a redirect).
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct Flash {
    pub ok: bool,
    pub text: String,
    /// A secret to show exactly once (a new API key or invite link).
    pub secret: Option<(String, String)>,
    /// With a new API key's secret: its id, so the page fills the connect snippets in.
    #[serde(default)]
    pub key_id: Option<String>,
}

pub fn normalise_email(email: &str) -> String {
    email.trim().to_lowercase()
}

pub fn check_email(email: &str) -> Result<(), Refusal> {
    let ok = email.len() <= 254
        && email
            .split_once('@')
            .is_some_and(|(a, d)| !a.is_empty() && d.contains('.') && !d.starts_with('.'))
        && !email.chars().any(|c| c.is_whitespace() || c.is_control());
    if ok {
        Ok(())
    } else {
        Err(Refusal::bad_request(
            "Enter a valid e-mail address, like ada@example.com.",
        ))
    }
}

pub fn check_password(pw: &str) -> Result<(), Refusal> {
    let n = pw.chars().count();
    if n < MIN_PASSWORD {
        return Err(Refusal::bad_request(format!(
            "Choose a password of at least {MIN_PASSWORD} characters."
        )));
    }
    if pw.len() > MAX_PASSWORD {
        return Err(Refusal::bad_request(format!(
            "Passwords are limited to {MAX_PASSWORD} bytes."
        )));
    }
    Ok(())
}

/// Hashes a password with argon2id (its own random salt) off the async threads.
pub async fn hash_password(pw: &str) -> Result<String, Refusal> {
    let pw = pw.to_string();
    tokio::task::spawn_blocking(move || {
        Argon2::default()
            .hash_password(pw.as_bytes())
            .map(|h| h.to_string())
    })
    .await
    .map_err(|e| Refusal::internal("password hashing task failed", e))?
    .map_err(|e| Refusal::internal("password hashing failed", e))
}

/// A hash of a password nobody has, verified when the e-mail is unknown so that a failed
/// log-in takes the same time whether or not the account exists.
fn dummy_hash() -> &'static str {
    static DUMMY: std::sync::OnceLock<String> = std::sync::OnceLock::new();
    DUMMY.get_or_init(|| {
        Argon2::default()
            .hash_password(uuid::Uuid::new_v4().to_string().as_bytes())
            .map(|h| h.to_string())
            .unwrap_or_default()
    })
}

/// Verifies a password against a stored hash (or the dummy one) off the async threads.
pub async fn verify_password(pw: &str, phc: Option<String>) -> bool {
    let known = phc.is_some();
    let phc = phc.unwrap_or_else(|| dummy_hash().to_string());
    let pw = pw.to_string();
    let ok = tokio::task::spawn_blocking(move || {
        PasswordHash::new(&phc)
            .map(|h| Argon2::default().verify_password(pw.as_bytes(), &h).is_ok())
            .unwrap_or(false)
    })
    .await
    .unwrap_or(false);
    known && ok
}

/// How the log-in throttle slows guessing. See [`LoginLimiter`].
#[derive(Debug, Clone, Copy)]
pub struct Throttle {
    /// A key's failures are forgotten once it has had none for this long.
    pub window: Duration,
    /// Failures a key may have before attempts are slowed.
    pub free_failures: u32,
    /// The first delay; each further failure doubles it.
    pub step: Duration,
    /// The longest delay: attempts are slowed, never refused.
    pub max_delay: Duration,
    /// The most addresses and accounts remembered at once.
    pub max_entries: usize,
    /// Log-in attempts one address may have in flight at once.
    pub max_concurrent_per_client: usize,
}

impl Default for Throttle {
    fn default() -> Self {
        Throttle {
            window: Duration::from_secs(300),
            free_failures: 3,
            step: Duration::from_millis(250),
            max_delay: Duration::from_secs(4),
            max_entries: 10_000,
            max_concurrent_per_client: 4,
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    last: Instant,
}

/// Slows log-in guessing without locking anyone out.
///
/// Failed log-ins are counted per client address and per account (e-mail). Past
/// [`Throttle::free_failures`], each attempt waits before the password is checked: the
/// step, doubled per further failure, up to [`Throttle::max_delay`], the longer of the
/// address's and the account's delays. Nothing is refused for failures alone, so a
/// stranger guessing the owner's password only makes the owner's log-in a few seconds
/// slower, never impossible; the stranger's own address waits the longest. One address
/// may have [`Throttle::max_concurrent_per_client`] attempts in flight (so it cannot run
/// its delays in parallel); more are refused at once. A success clears the address and
/// the account. The table holds at most [`Throttle::max_entries`] keys: expired ones go
/// first, then the longest quiet.
pub struct LoginLimiter {
    failures: Mutex<HashMap<String, Failures>>,
    in_flight: Mutex<HashMap<String, usize>>,
    throttle: Throttle,
}

/// One log-in attempt under way: how long to wait before checking the password. Dropping
/// it ends the attempt for the address's concurrency count.
pub struct Attempt<'a> {
    limiter: &'a LoginLimiter,
    client: String,
    pub delay: Duration,
}

impl Drop for Attempt<'_> {
    fn drop(&mut self) {
        let mut map = self
            .limiter
            .in_flight
            .lock()
            .unwrap_or_else(|p| p.into_inner());
        if let Some(n) = map.get_mut(&self.client) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                map.remove(&self.client);
            }
        }
    }
}

/// The throttle's keys: the account's e-mail (cut to the longest valid address) and the
/// client address.
fn keys(email: &str, client: &str) -> [String; 2] {
    let email: String = email.chars().take(254).collect();
    [format!("e:{email}"), format!("c:{client}")]
}

impl LoginLimiter {
    pub fn new(throttle: Throttle) -> Self {
        LoginLimiter {
            failures: Mutex::new(HashMap::new()),
            in_flight: Mutex::new(HashMap::new()),
            throttle,
        }
    }

    /// The delay owed by a key with `count` recent failures.
    pub fn delay_after(&self, count: u32) -> Duration {
        let t = &self.throttle;
        if count <= t.free_failures {
            return Duration::ZERO;
        }
        let doublings = (count - t.free_failures - 1).min(20);
        t.step.saturating_mul(1 << doublings).min(t.max_delay)
    }

    /// Starts an attempt: the delay to wait before checking the password, or a refusal
    /// when this address already has too many attempts in flight.
    pub fn attempt(&self, email: &str, client: &str) -> Result<Attempt<'_>, Refusal> {
        {
            let mut map = self.in_flight.lock().unwrap_or_else(|p| p.into_inner());
            let n = map.entry(client.to_string()).or_insert(0);
            if *n >= self.throttle.max_concurrent_per_client {
                return Err(Refusal::new(
                    StatusCode::TOO_MANY_REQUESTS,
                    "Too many log-in attempts at once from your address. Wait for them to finish and try again.",
                ));
            }
            *n += 1;
        }
        let now = Instant::now();
        let map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        let delay = keys(email, client)
            .iter()
            .filter_map(|k| map.get(k))
            .filter(|f| now.duration_since(f.last) < self.throttle.window)
            .map(|f| self.delay_after(f.count))
            .max()
            .unwrap_or_default();
        Ok(Attempt {
            limiter: self,
            client: client.to_string(),
            delay,
        })
    }

    pub fn failed(&self, email: &str, client: &str) {
        let now = Instant::now();
        let window = self.throttle.window;
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(email, client) {
            if !map.contains_key(&key) && map.len() >= self.throttle.max_entries {
                map.retain(|_, f| now.duration_since(f.last) < window);
                if map.len() >= self.throttle.max_entries {
                    let quietest = map
                        .iter()
                        .min_by_key(|(_, f)| f.last)
                        .map(|(k, _)| k.clone());
                    if let Some(k) = quietest {
                        map.remove(&k);
                    }
                }
            }
            let f = map.entry(key).or_insert(Failures {
                count: 0,
                last: now,
            });
            if now.duration_since(f.last) >= window {
                f.count = 0;
            }
            f.count = f.count.saturating_add(1);
            f.last = now;
        }
    }

    pub fn succeeded(&self, email: &str, client: &str) {
        let mut map = self.failures.lock().unwrap_or_else(|p| p.into_inner());
        for key in keys(email, client) {
            map.remove(&key);
        }
    }

    /// Keys remembered now (for tests of the bound).
    pub fn remembered(&self) -> usize {
        self.failures
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .len()
    }
}

fn random_token() -> String {
    format!(
        "{}{}",
        uuid::Uuid::new_v4().simple(),
        uuid::Uuid::new_v4().simple()
    )
}

/// A fresh random token for invite links (the database keeps only its hash).
pub fn new_invite_token() -> String {
    random_token()
}

pub fn token_hash(token: &str) -> String {
    let digest = Sha256::digest(token.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

fn session_failed(e: tower_sessions::session::Error) -> Refusal {
    Refusal::internal("session store request failed", e)
}

/// The session's CSRF token, created on first use.
pub async fn csrf_token(session: &Session) -> Result<String, Refusal> {
    if let Some(t) = session
        .get::<String>(CSRF_KEY)
        .await
        .map_err(session_failed)?
    {
        return Ok(t);
    }
    let t = random_token();
    session.insert(CSRF_KEY, &t).await.map_err(session_failed)?;
    Ok(t)
}

/// Checks a submitted CSRF token against the session's.
pub async fn check_csrf(session: &Session, submitted: Option<&str>) -> Result<(), Refusal> {
    let expected = session
        .get::<String>(CSRF_KEY)
        .await
        .map_err(session_failed)?;
    match (expected, submitted) {
        (Some(e), Some(s)) if bool::from(e.as_bytes().ct_eq(s.as_bytes())) => Ok(()),
        _ => Err(Refusal::csrf()),
    }
}

pub fn unauthenticated() -> Refusal {
    Refusal::new(
        StatusCode::UNAUTHORIZED,
        "Authenticate with a session cookie or 'Authorization: Bearer KEY_ID:SECRET'.",
    )
}

pub async fn set_flash(session: &Session, flash: Flash) -> Result<(), Refusal> {
    session
        .insert(FLASH_KEY, flash)
        .await
        .map_err(session_failed)
}

pub async fn flash(session: &Session, ok: bool, text: impl Into<String>) -> Result<(), Refusal> {
    set_flash(
        session,
        Flash {
            ok,
            text: text.into(),
            secret: None,
            key_id: None,
        },
    )
    .await
}

pub async fn take_flash(session: &Session) -> Option<Flash> {
    session.remove::<Flash>(FLASH_KEY).await.ok().flatten()
}

/// Marks the session as logged in, with a new session id and a new CSRF token: an id or a
/// token seen before log-in (a fixed cookie, a token read from the log-in form) is useless
/// afterwards.
pub async fn log_in(session: &Session, user_id: &str, org_id: &str) -> Result<(), Refusal> {
    session.cycle_id().await.map_err(session_failed)?;
    session
        .insert(CSRF_KEY, random_token())
        .await
        .map_err(session_failed)?;
    session
        .insert(USER_KEY, user_id)
        .await
        .map_err(session_failed)?;
    session
        .insert(ORG_KEY, org_id)
        .await
        .map_err(session_failed)?;
    Ok(())
}

pub async fn log_out(session: &Session) -> Result<(), Refusal> {
    session.flush().await.map_err(session_failed)
}

pub async fn switch_org(session: &Session, org_id: &str) -> Result<(), Refusal> {
    session
        .insert(ORG_KEY, org_id)
        .await
        .map_err(session_failed)
}

/// The logged-in user, if any (without organisation).
pub async fn session_user(console: &Console, session: &Session) -> Result<Option<User>, Refusal> {
    let Some(uid) = session
        .get::<String>(USER_KEY)
        .await
        .map_err(session_failed)?
    else {
        return Ok(None);
    };
    Ok(console.platform.user(&uid).await?)
}

/// The logged-in user in their current organisation; `next` is where to come back after
/// logging in.
pub async fn viewer(console: &Console, session: &Session, next: &str) -> Result<Viewer, Refusal> {
    let Some(user) = session_user(console, session).await? else {
        return Err(Refusal::login(next));
    };
    let orgs = console.platform.memberships_of(&user.id).await?;
    let wanted = session
        .get::<String>(ORG_KEY)
        .await
        .map_err(session_failed)?;
    let current = orgs
        .iter()
        .find(|(o, _)| Some(&o.id) == wanted.as_ref())
        .or(orgs.first())
        .cloned();
    let Some((org, role)) = current else {
        return Err(Refusal::forbidden(
            "Your account no longer belongs to any organisation. Ask an admin for a new invite.",
        ));
    };
    let csrf = csrf_token(session).await?;
    Ok(Viewer {
        user,
        org,
        role: Role::parse(&role).unwrap_or(Role::Member),
        orgs,
        csrf,
    })
}

/// The caller of an API request: an API key (`Authorization: Bearer KEY_ID:SECRET` or HTTP
/// Basic with the key id as user name), or the session. A session needs the
/// `X-CSRF-Token` header on anything but a read.
pub async fn api_actor(
    console: &Console,
    session: &Session,
    headers: &HeaderMap,
    mutating: bool,
) -> Result<Actor, Refusal> {
    if let Some(auth) = headers.get(axum::http::header::AUTHORIZATION) {
        let auth = auth.to_str().unwrap_or("");
        let pair = if let Some(b) = auth.strip_prefix("Bearer ") {
            Some(b.trim().to_string())
        } else if let Some(b) = auth.strip_prefix("Basic ") {
            B64.decode(b.trim())
                .ok()
                .and_then(|v| String::from_utf8(v).ok())
        } else {
            None
        };
        let Some((id, secret)) = pair.as_deref().and_then(|p| p.split_once(':')) else {
            return Err(Refusal::new(
                StatusCode::UNAUTHORIZED,
                "Unreadable Authorization header: send 'Bearer KEY_ID:SECRET'.",
            ));
        };
        return console.check_api_key(id, secret).await;
    }
    let viewer = match viewer(console, session, "/").await {
        Ok(v) => v,
        Err(r) if r.login_next.is_some() => return Ok(Actor::Anonymous),
        Err(r) => return Err(r),
    };
    if mutating {
        let sent = headers.get("x-csrf-token").and_then(|v| v.to_str().ok());
        check_csrf(session, sent).await?;
    }
    Ok(Actor::User(Box::new(viewer)))
}

/// Remembers API keys verified recently so a busy script does not pay PBKDF2 per call.
/// Entries live as long as the broker's credential cache, so a revoked key stops working
/// over HTTP as quickly as on the Kafka port.
pub struct KeyChecks {
    ok: Mutex<HashMap<(String, [u8; 32]), Instant>>,
}

impl KeyChecks {
    pub fn new() -> Self {
        KeyChecks {
            ok: Mutex::new(HashMap::new()),
        }
    }
}

impl Default for KeyChecks {
    fn default() -> Self {
        Self::new()
    }
}

impl Console {
    pub async fn check_api_key(&self, id: &str, secret: &str) -> Result<Actor, Refusal> {
        let refused = || Refusal::new(StatusCode::UNAUTHORIZED, "Invalid or revoked API key.");
        let cred = self
            .view
            .api_key_credential(id)
            .await
            .map_err(Refusal::from)?
            .ok_or_else(refused)?;
        let digest: [u8; 32] = Sha256::digest(secret.as_bytes()).into();
        let key = (id.to_string(), digest);
        let fresh = {
            let ok = self.key_checks.ok.lock().unwrap_or_else(|p| p.into_inner());
            ok.get(&key)
                .is_some_and(|t| t.elapsed() < CREDENTIAL_TTL * 30)
        };
        if !fresh {
            let secret = secret.to_string();
            let cred2 = cred.clone();
            let matches =
                tokio::task::spawn_blocking(move || cred2.matches_secret(secret.as_bytes()))
                    .await
                    .unwrap_or(false);
            if !matches {
                return Err(refused());
            }
            let mut ok = self.key_checks.ok.lock().unwrap_or_else(|p| p.into_inner());
            if ok.len() > 10_000 {
                ok.clear();
            }
            ok.insert(key, Instant::now());
        }
        self.view.mark_api_key_used(id).await;
        Ok(Actor::Key {
            key_id: id.to_string(),
            cluster_id: cred.cluster_id.clone(),
        })
    }
}

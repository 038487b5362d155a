//! SASL authentication on the Kafka port: PLAIN, SCRAM-SHA-256 and SCRAM-SHA-512 against
//! API keys. A successful exchange binds the connection to the key's virtual cluster.
//!
//! [`Sasl`] is the per-connection state machine (no I/O); [`CredentialCache`] fronts the
//! key table, caching misses too, so a flood of bad credentials costs no database load and
//! a revoked key stops working for new connections within [`CACHE_TTL`].

pub mod scram;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::clock::now_ms;
use crate::store::{Credential, Metadata, StoreError};
use scram::{ClientFirst, Hash};

pub const MECHANISMS: &[&str] = &["PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512"];
/// How long a key lookup (found or not) is trusted.
pub const CACHE_TTL: Duration = Duration::from_secs(2);
const CACHE_MAX_ENTRIES: usize = 100_000;
/// How often a key's "last used" is written while it is in use (per agent).
pub const TOUCH_EVERY: Duration = Duration::from_secs(60);

use crate::codes::{ILLEGAL_SASL_STATE, SASL_AUTHENTICATION_FAILED, UNSUPPORTED_SASL_MECHANISM};

/// Who a connection authenticated as.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Principal {
    pub key_id: String,
    pub cluster: String,
}

type Entry = (Option<Arc<Credential>>, Instant);

pub struct CredentialCache {
    meta: Metadata,
    entries: Mutex<HashMap<String, Entry>>,
    touched: Mutex<HashMap<String, i64>>,
    touch_every_ms: std::sync::atomic::AtomicI64,
}

impl CredentialCache {
    pub fn new(meta: Metadata) -> Self {
        CredentialCache {
            meta,
            entries: Mutex::new(HashMap::new()),
            touched: Mutex::new(HashMap::new()),
            touch_every_ms: std::sync::atomic::AtomicI64::new(TOUCH_EVERY.as_millis() as i64),
        }
    }

    /// A live (not revoked) key's credential.
    pub async fn get(&self, key_id: &str) -> Result<Option<Arc<Credential>>, StoreError> {
        if let Some((c, at)) = self
            .entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(key_id)
        {
            if at.elapsed() < CACHE_TTL {
                return Ok(c.clone());
            }
        }
        let found = self
            .meta
            .api_key_credential(key_id)
            .await?
            .filter(|c| !c.revoked)
            .map(Arc::new);
        let mut entries = self.entries.lock().unwrap_or_else(|p| p.into_inner());
        if entries.len() >= CACHE_MAX_ENTRIES {
            entries.clear();
        }
        entries.insert(key_id.to_string(), (found.clone(), Instant::now()));
        Ok(found)
    }

    /// Drops a key from the cache after a change made on this agent (revocation), so this
    /// agent refuses it at once; other agents refuse it within [`CACHE_TTL`].
    pub fn forget(&self, key_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(key_id);
    }

    /// Drops every cached key of a deleted cluster.
    pub fn forget_cluster(&self, cluster_id: &str) {
        self.entries
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .retain(|_, (c, _)| c.as_ref().is_none_or(|c| c.cluster_id != cluster_id));
    }

    /// Changes how often "last used" is written (tests; the default is [`TOUCH_EVERY`]).
    pub fn set_touch_every(&self, every: Duration) {
        self.touch_every_ms.store(
            every.as_millis() as i64,
            std::sync::atomic::Ordering::Relaxed,
        );
    }

    /// Notes a use: at authentication, and while a connection stays open (written to the
    /// database at most once per [`TOUCH_EVERY`] per key).
    pub async fn used(&self, key_id: &str) {
        let now = now_ms();
        let every = self
            .touch_every_ms
            .load(std::sync::atomic::Ordering::Relaxed);
        {
            let mut touched = self.touched.lock().unwrap_or_else(|p| p.into_inner());
            if touched.get(key_id).is_some_and(|t| now - t < every) {
                return;
            }
            if touched.len() >= CACHE_MAX_ENTRIES {
                touched.clear();
            }
            touched.insert(key_id.to_string(), now);
        }
        if let Err(e) = self.meta.touch_api_key(key_id, now).await {
            tracing::warn!(error = %e, "recording api key use failed");
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mechanism {
    Plain,
    Scram(Hash),
}

/// The per-connection SASL state.
#[derive(Debug, Default)]
pub enum Sasl {
    #[default]
    Start,
    Chosen(Mechanism),
    ScramFirstSent {
        hash: Hash,
        client: ClientFirst,
        server_first: String,
        full_nonce: String,
        credential: Arc<Credential>,
    },
    Done(Principal),
    /// Authenticated by a client certificate naming a live key (TLS listener).
    Certificate(Principal),
}

/// A refused exchange: the code and a message for the client.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AuthFailure {
    pub code: i16,
    pub message: String,
}

fn failed() -> AuthFailure {
    AuthFailure {
        code: SASL_AUTHENTICATION_FAILED,
        message: "Authentication failed: invalid API key or secret".to_string(),
    }
}

/// The result of one SaslAuthenticate step.
#[derive(Debug)]
pub enum Step {
    /// Send these bytes and wait for the next step.
    Continue(Vec<u8>),
    /// Authenticated: send these bytes; the connection now acts as `Principal`.
    Done(Vec<u8>, Principal),
}

impl Sasl {
    pub fn principal(&self) -> Option<&Principal> {
        match self {
            Sasl::Done(p) | Sasl::Certificate(p) => Some(p),
            _ => None,
        }
    }

    /// SaslHandshake: picks the mechanism. A connection that authenticated by its client
    /// certificate may still log in with SASL, which then decides the key (as on Kafka's
    /// SASL_SSL listeners); one authenticated by SASL may not start over.
    pub fn handshake(&mut self, mechanism: &str) -> Result<(), i16> {
        if !matches!(self, Sasl::Start | Sasl::Certificate(_)) {
            return Err(ILLEGAL_SASL_STATE);
        }
        let m = match mechanism {
            "PLAIN" => Mechanism::Plain,
            "SCRAM-SHA-256" => Mechanism::Scram(Hash::Sha256),
            "SCRAM-SHA-512" => Mechanism::Scram(Hash::Sha512),
            _ => return Err(UNSUPPORTED_SASL_MECHANISM),
        };
        *self = Sasl::Chosen(m);
        Ok(())
    }

    /// One SaslAuthenticate round.
    pub async fn step(
        &mut self,
        bytes: &[u8],
        creds: &CredentialCache,
    ) -> Result<Step, AuthFailure> {
        let lookup_failed = |e: StoreError| {
            tracing::error!(error = %e, "api key lookup failed");
            AuthFailure {
                code: SASL_AUTHENTICATION_FAILED,
                message: "Authentication is unavailable right now; retry".to_string(),
            }
        };
        match std::mem::take(self) {
            Sasl::Chosen(Mechanism::Plain) => {
                // authzid NUL authcid NUL password
                let mut parts = bytes.split(|b| *b == 0);
                let (_authzid, user, password) =
                    match (parts.next(), parts.next(), parts.next(), parts.next()) {
                        (Some(a), Some(u), Some(p), None) => (a, u, p),
                        _ => return Err(failed()),
                    };
                let user = std::str::from_utf8(user).map_err(|_| failed())?;
                let cred = creds
                    .get(user)
                    .await
                    .map_err(lookup_failed)?
                    .ok_or_else(failed)?;
                let password = password.to_vec();
                let check = cred.clone();
                // Key stretching costs milliseconds: keep it off the async workers.
                let ok = tokio::task::spawn_blocking(move || {
                    check.sha256.matches_password(Hash::Sha256, &password)
                })
                .await
                .unwrap_or(false);
                if !ok {
                    return Err(failed());
                }
                let principal = Principal {
                    key_id: cred.key_id.clone(),
                    cluster: cred.cluster_id.clone(),
                };
                creds.used(&cred.key_id).await;
                *self = Sasl::Done(principal.clone());
                Ok(Step::Done(Vec::new(), principal))
            }
            Sasl::Chosen(Mechanism::Scram(hash)) => {
                let client = scram::parse_client_first(bytes).map_err(|e| AuthFailure {
                    code: SASL_AUTHENTICATION_FAILED,
                    message: format!("Authentication failed: {e}"),
                })?;
                let credential = creds
                    .get(&client.username)
                    .await
                    .map_err(lookup_failed)?
                    .ok_or_else(failed)?;
                let server_nonce = uuid::Uuid::new_v4().simple().to_string();
                let server_first =
                    scram::server_first(&client, &server_nonce, credential.scram(hash));
                let full_nonce = format!("{}{}", client.nonce, server_nonce);
                let out = server_first.clone().into_bytes();
                *self = Sasl::ScramFirstSent {
                    hash,
                    client,
                    server_first,
                    full_nonce,
                    credential,
                };
                Ok(Step::Continue(out))
            }
            Sasl::ScramFirstSent {
                hash,
                client,
                server_first,
                full_nonce,
                credential,
            } => {
                let server_final =
                    scram::verify_client_final(hash, &client, &server_first, &full_nonce, credential.scram(hash), bytes)
                        .map_err(|e| {
                            tracing::debug!(reason = %e, message = %String::from_utf8_lossy(bytes), "scram client-final refused");
                            failed()
                        })?;
                let principal = Principal {
                    key_id: credential.key_id.clone(),
                    cluster: credential.cluster_id.clone(),
                };
                creds.used(&credential.key_id).await;
                *self = Sasl::Done(principal.clone());
                Ok(Step::Done(server_final.into_bytes(), principal))
            }
            state @ (Sasl::Start | Sasl::Done(_) | Sasl::Certificate(_)) => {
                *self = state;
                Err(AuthFailure {
                    code: ILLEGAL_SASL_STATE,
                    message: "SaslAuthenticate without a SaslHandshake choosing a mechanism"
                        .to_string(),
                })
            }
        }
    }
}

/// Slows down guessing: each refused authentication from an address delays its answer
/// longer (100 ms, doubling, at most [`MAX_FAILURE_DELAY`]), forgotten a minute after the
/// address's last failure. It delays answers; it never locks a key, so an attacker cannot
/// lock the owner out, only slow down their own attempts.
#[derive(Default)]
pub struct FailureDelay {
    by_address: Mutex<HashMap<std::net::IpAddr, (u32, Instant)>>,
}

pub const MAX_FAILURE_DELAY: Duration = Duration::from_secs(5);
const FAILURE_MEMORY: Duration = Duration::from_secs(60);
const FAILURE_TABLE_MAX: usize = 100_000;

impl FailureDelay {
    /// Records a refusal from `ip` and returns how long to wait before answering it.
    pub fn failed(&self, ip: std::net::IpAddr) -> Duration {
        let mut table = self.by_address.lock().unwrap_or_else(|p| p.into_inner());
        let now = Instant::now();
        if table.len() >= FAILURE_TABLE_MAX {
            table.retain(|_, (_, at)| now.duration_since(*at) < FAILURE_MEMORY);
            if table.len() >= FAILURE_TABLE_MAX {
                // Still full (a wide attack): the first failure of a new address waits
                // the longest.
                return MAX_FAILURE_DELAY;
            }
        }
        let entry = table.entry(ip).or_insert((0, now));
        if now.duration_since(entry.1) >= FAILURE_MEMORY {
            entry.0 = 0;
        }
        entry.0 = entry.0.saturating_add(1);
        entry.1 = now;
        let doublings = entry.0.saturating_sub(1).min(16);
        (Duration::from_millis(100) * (1u32 << doublings)).min(MAX_FAILURE_DELAY)
    }
}

#[cfg(test)]
mod failure_delay_tests {
    use super::*;

    #[test]
    fn delay_grows_per_address_and_is_capped() {
        let d = FailureDelay::default();
        let a: std::net::IpAddr = "10.0.0.1".parse().unwrap();
        let b: std::net::IpAddr = "10.0.0.2".parse().unwrap();
        assert_eq!(d.failed(a), Duration::from_millis(100));
        assert_eq!(d.failed(a), Duration::from_millis(200));
        assert_eq!(d.failed(a), Duration::from_millis(400));
        for _ in 0..20 {
            d.failed(a);
        }
        assert_eq!(d.failed(a), MAX_FAILURE_DELAY);
        // Another address is not slowed by the first one's failures.
        assert_eq!(d.failed(b), Duration::from_millis(100));
    }
}

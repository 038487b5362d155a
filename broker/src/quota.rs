//! Client quotas per API key: `producer_byte_rate` and `consumer_byte_rate`, Kafka's
//! `user=<key id>` entity, stored per virtual cluster.
//!
//! # Enforcement
//! Each key has one [`Bucket`] per direction on each agent: tokens refill at the quota's
//! rate up to one second's worth ([`BURST`]); a produce or fetch takes its bytes, going
//! into debt if need be. A key in debt is throttled for the time the debt takes to
//! refill (capped at [`MAX_THROTTLE`]): its answer carries `throttle_time_ms`, and the
//! connection is muted (not read) for that long, as Kafka does since KIP-219. Clients too
//! old to back off on their own (Produce < v6, Fetch < v8) get the answer only after the
//! throttle time, as Kafka answered them. Over time a key moves at most `rate` bytes a
//! second per agent, after a first burst of one second's worth.
//!
//! # Caching
//! The configured quotas of a cluster are read at most once per [`QUOTA_CACHE_TTL`]; a
//! change made on this agent is seen at once, one made elsewhere within the TTL.

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::session::Session;
use crate::store::{Metadata, StoreError};

pub const PRODUCER_BYTE_RATE: &str = "producer_byte_rate";
pub const CONSUMER_BYTE_RATE: &str = "consumer_byte_rate";
/// The quota names Sluice enforces.
pub const QUOTA_KEYS: [&str; 2] = [PRODUCER_BYTE_RATE, CONSUMER_BYTE_RATE];
pub const QUOTA_CACHE_TTL: Duration = Duration::from_secs(2);
/// How much a key may send at once before it is throttled, in seconds of its rate.
pub const BURST: f64 = 1.0;
/// The longest one answer is throttled (a client's request timeout is longer).
pub const MAX_THROTTLE: Duration = Duration::from_secs(10);
const MAX_BUCKETS: usize = 100_000;

/// Which rate a request counts against.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    Produce,
    Fetch,
}

impl Direction {
    fn key(self) -> &'static str {
        match self {
            Direction::Produce => PRODUCER_BYTE_RATE,
            Direction::Fetch => CONSUMER_BYTE_RATE,
        }
    }
}

/// A token bucket over bytes (no clock of its own: callers pass the time).
#[derive(Debug, Clone)]
pub struct Bucket {
    tokens: f64,
    at: Instant,
}

impl Bucket {
    pub fn new(rate: f64, now: Instant) -> Self {
        Bucket {
            tokens: rate * BURST,
            at: now,
        }
    }

    /// Takes `bytes` at `rate` bytes/s; returns how long the caller must wait.
    pub fn take(&mut self, rate: f64, bytes: u64, now: Instant) -> Duration {
        let elapsed = now.saturating_duration_since(self.at).as_secs_f64();
        self.at = now;
        self.tokens = (self.tokens + elapsed * rate).min(rate * BURST);
        self.tokens -= bytes as f64;
        if self.tokens >= 0.0 || rate <= 0.0 {
            return Duration::ZERO;
        }
        Duration::from_secs_f64((-self.tokens / rate).min(MAX_THROTTLE.as_secs_f64()))
    }
}

type Limits = HashMap<(String, String), f64>;

/// The quotas of every cluster (cached) and this agent's buckets.
pub struct Quotas {
    meta: Metadata,
    limits: Mutex<HashMap<String, (Arc<Limits>, Instant)>>,
    buckets: Mutex<HashMap<(String, String, Direction), Bucket>>,
}

impl Quotas {
    pub fn new(meta: Metadata) -> Self {
        Quotas {
            meta,
            limits: Mutex::new(HashMap::new()),
            buckets: Mutex::new(HashMap::new()),
        }
    }

    async fn limits(&self, cluster: &str) -> Result<Arc<Limits>, StoreError> {
        let stale = {
            let limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
            match limits.get(cluster) {
                Some((l, at)) if at.elapsed() < QUOTA_CACHE_TTL => return Ok(l.clone()),
                other => other.map(|(l, _)| l.clone()),
            }
        };
        let loaded = match self.meta.client_quotas(cluster).await {
            Ok(rows) => Arc::new(
                rows.into_iter()
                    .map(|q| ((q.user, q.key), q.value))
                    .collect::<Limits>(),
            ),
            Err(e) => {
                return match stale {
                    Some(l) => Ok(l),
                    None => Err(e),
                }
            }
        };
        let mut limits = self.limits.lock().unwrap_or_else(|p| p.into_inner());
        if limits.len() >= MAX_BUCKETS {
            limits.clear();
        }
        limits.insert(cluster.to_string(), (loaded.clone(), Instant::now()));
        Ok(loaded)
    }

    /// Counts `bytes` of a request against the session's key; returns the throttle time
    /// (zero without a quota, for anonymous sessions, or when the quotas cannot be read).
    pub async fn record(&self, session: &Session, direction: Direction, bytes: u64) -> Duration {
        let Some(key_id) = &session.key_id else {
            return Duration::ZERO;
        };
        let limits = match self.limits(&session.cluster).await {
            Ok(l) => l,
            Err(e) => {
                tracing::warn!(cluster = %session.cluster, error = %e, "reading client quotas failed; not throttling");
                return Duration::ZERO;
            }
        };
        let Some(&rate) = limits.get(&(key_id.clone(), direction.key().to_string())) else {
            return Duration::ZERO;
        };
        let now = Instant::now();
        let mut buckets = self.buckets.lock().unwrap_or_else(|p| p.into_inner());
        if buckets.len() >= MAX_BUCKETS {
            buckets.clear();
        }
        buckets
            .entry((session.cluster.clone(), key_id.clone(), direction))
            .or_insert_with(|| Bucket::new(rate, now))
            .take(rate, bytes, now)
    }

    /// Drops a cluster's cached quotas after a change made on this agent.
    pub fn forget(&self, cluster: &str) {
        self.limits
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .remove(cluster);
    }
}

/// How an answer is throttled: the connection is muted for `time`; `delay` holds the
/// answer back as long too (clients too old to back off by themselves).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Throttle {
    pub time: Duration,
    pub delay: bool,
}

/// A connection's mute: the reader waits for it before reading the next request.
#[derive(Debug)]
pub struct Mute(Mutex<Option<Instant>>);

impl Default for Mute {
    fn default() -> Self {
        Mute(Mutex::new(None))
    }
}

impl Mute {
    /// Mutes the connection for `d` from now (a longer mute already set stays).
    pub fn mute_for(&self, d: Duration) {
        let until = Instant::now() + d;
        let mut m = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if m.is_none_or(|cur| cur < until) {
            *m = Some(until);
        }
    }

    /// Returns once the connection is not muted.
    pub async fn wait(&self) {
        loop {
            let until = *self.0.lock().unwrap_or_else(|p| p.into_inner());
            match until {
                Some(t) if t > Instant::now() => tokio::time::sleep_until(t.into()).await,
                _ => return,
            }
        }
    }
}

/// Checks a quota change: a known key and a positive rate.
pub fn validate(key: &str, value: Option<f64>) -> Result<(), String> {
    if !QUOTA_KEYS.contains(&key) {
        return Err(format!(
            "quota '{key}' is not supported: use producer_byte_rate or consumer_byte_rate"
        ));
    }
    match value {
        Some(v) if !(v.is_finite() && v >= 1.0) => {
            Err(format!("{key} must be at least 1 byte per second, not {v}"))
        }
        _ => Ok(()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bucket_allows_a_burst_then_the_rate() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1000.0, t0);
        assert_eq!(
            b.take(1000.0, 1000, t0),
            Duration::ZERO,
            "one second's burst"
        );
        // 500 bytes more at once: half a second of debt.
        let d = b.take(1000.0, 500, t0);
        assert!((d.as_secs_f64() - 0.5).abs() < 1e-6, "{d:?}");
        // After the debt refilled, 250 bytes cost a quarter second.
        let t1 = t0 + Duration::from_millis(500);
        let d = b.take(1000.0, 250, t1);
        assert!((d.as_secs_f64() - 0.25).abs() < 1e-6, "{d:?}");
        // Idle for long: at most one second of burst comes back.
        let t2 = t1 + Duration::from_secs(60);
        assert_eq!(b.take(1000.0, 750, t2), Duration::ZERO);
        assert!(b.take(1000.0, 1000, t2) > Duration::ZERO);
    }

    #[test]
    fn throttle_is_capped() {
        let t0 = Instant::now();
        let mut b = Bucket::new(1.0, t0);
        assert_eq!(b.take(1.0, 1 << 30, t0), MAX_THROTTLE);
    }

    #[test]
    fn quota_changes_are_checked() {
        assert!(validate(PRODUCER_BYTE_RATE, Some(1e6)).is_ok());
        assert!(validate(CONSUMER_BYTE_RATE, None).is_ok());
        assert!(validate("request_percentage", Some(10.0)).is_err());
        assert!(validate(PRODUCER_BYTE_RATE, Some(0.0)).is_err());
        assert!(validate(PRODUCER_BYTE_RATE, Some(f64::NAN)).is_err());
    }
}

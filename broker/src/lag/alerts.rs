//! Lag alerts: rules on a consumer group's time lag, evaluated by the lag job after each
//! pass, with a webhook called when a rule starts and stops firing.
//!
//! A rule watches one group of one virtual cluster. It fires once the group's max time lag
//! (over its partitions, as the pass computed it) has been above `max_time_lag_seconds` on
//! every pass for at least `for_seconds`, and resolves on the first pass that sees the lag
//! at or below the threshold again (a group without committed offsets has no lag). Each
//! change is posted once to the rule's webhook as JSON:
//! `{"status": "firing"|"resolved", "rule_id", "cluster", "group", "time_lag_seconds",
//! "max_time_lag_seconds", "for_seconds", "since_ms", "above_since_ms", "at_ms"}`
//! (`since_ms`: when the rule fired; `above_since_ms`: the first pass that saw the lag
//! above the threshold; `at_ms`: the pass that saw this change).
//!
//! [`step`] is the state machine, pure; [`evaluate`] drives it over the stored rules;
//! [`Notifier`] (in `webhook.rs`) delivers the webhooks. The rules and their state are stored by
//! `store/alerts.rs` (migration 0015).
//!
//! # Consistency
//! A pass reads every rule with its state, steps each, and writes all the new states in one
//! transaction before any webhook is queued. The lag job holds a cluster-wide lease, so
//! one agent evaluates at a time, and an agent that takes the lease over continues from the
//! stored state: a rule that fired stays firing and does not fire again. A crash between
//! that commit and a delivery loses the notification (webhooks are at most once); a failed
//! write sends nothing and the next pass steps again from the old state.
//!
//! # Retries and bounds
//! Deliveries never slow a pass: the pass only queues them ([`QUEUE_LEN`]; when the queue
//! is full the notification is dropped with a warning). At most [`DELIVERIES_AT_ONCE`] run
//! at once, each with a [`WEBHOOK_TIMEOUT`], and one retry after a connection failure, a
//! timeout or a 5xx/408/429 answer. Redirects are followed only to the same host (at most
//! [`MAX_REDIRECTS`]). Failures are logged with the webhook's origin only: the path and
//! query of a webhook URL are often its secret. A cluster holds at most
//! [`MAX_ALERTS_PER_CLUSTER`] rules.

use serde::Serialize;

pub use super::webhook::{Notifier, DELIVERIES_AT_ONCE, MAX_REDIRECTS, QUEUE_LEN, WEBHOOK_TIMEOUT};
use crate::state::Broker;
use crate::store::StoreError;

/// Rules one virtual cluster may hold.
pub const MAX_ALERTS_PER_CLUSTER: usize = 1000;
/// The largest threshold a rule may have: 30 days.
pub const MAX_THRESHOLD_SECONDS: f64 = 30.0 * 86_400.0;
/// The longest a rule may wait before firing: 7 days.
pub const MAX_FOR_SECONDS: i64 = 7 * 86_400;
/// The longest webhook URL accepted.
pub const MAX_WEBHOOK_URL: usize = 2048;
/// The longest group id a rule may name.
pub const MAX_GROUP_ID: usize = 255;

/// Whether a rule is firing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum AlertStatus {
    #[default]
    Ok,
    Firing,
}

impl AlertStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            AlertStatus::Ok => "ok",
            AlertStatus::Firing => "firing",
        }
    }

    /// The stored form back (anything unknown reads as ok).
    pub fn parse(s: &str) -> AlertStatus {
        if s == "firing" {
            AlertStatus::Firing
        } else {
            AlertStatus::Ok
        }
    }
}

/// A rule as created: what it watches and whom it tells.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct AlertRule {
    pub id: String,
    /// The virtual cluster's id.
    pub cluster: String,
    pub group: String,
    /// The rule fires while the group's max time lag is above this.
    pub max_time_lag_seconds: f64,
    /// ... for at least this long.
    pub for_seconds: i64,
    pub webhook_url: String,
    pub created_at_ms: i64,
}

/// Where a rule stands, as the last pass left it.
#[derive(Debug, Clone, PartialEq, Default, Serialize)]
pub struct AlertState {
    pub state: AlertStatus,
    /// When the rule fired (None while ok).
    pub since_ms: Option<i64>,
    /// The first pass of the current run of passes that saw the lag above the threshold
    /// (None: the last pass saw it at or below).
    pub above_since_ms: Option<i64>,
    /// The group's max time lag at the last pass (None: no committed offsets).
    pub last_time_lag_seconds: Option<f64>,
    /// When the last pass evaluated the rule (None: not yet).
    pub evaluated_at_ms: Option<i64>,
}

/// A stored rule with its state (the API's shape: both flattened into one object).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct LagAlert {
    #[serde(flatten)]
    pub rule: AlertRule,
    #[serde(flatten)]
    pub status: AlertState,
}

/// A rule to create (see [`check_rule`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct NewAlertRule<'a> {
    pub group: &'a str,
    pub max_time_lag_seconds: f64,
    pub for_seconds: i64,
    pub webhook_url: &'a str,
}

/// What a webhook is told.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "lowercase")]
pub enum Change {
    Firing,
    Resolved,
}

impl Change {
    pub fn as_str(self) -> &'static str {
        match self {
            Change::Firing => "firing",
            Change::Resolved => "resolved",
        }
    }
}

/// One webhook call's body (and where it goes).
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Notification {
    pub status: Change,
    pub rule_id: String,
    pub cluster: String,
    pub group: String,
    /// The group's max time lag at the pass that saw the change.
    pub time_lag_seconds: f64,
    pub max_time_lag_seconds: f64,
    pub for_seconds: i64,
    /// When the rule fired (for "resolved", the firing that ends now).
    pub since_ms: i64,
    /// The first pass that saw the lag above the threshold.
    pub above_since_ms: i64,
    /// The pass that saw the change.
    pub at_ms: i64,
    #[serde(skip)]
    pub webhook_url: String,
}

fn notification(
    rule: &AlertRule,
    status: Change,
    time_lag_seconds: f64,
    since_ms: i64,
    above_since_ms: i64,
    at_ms: i64,
) -> Notification {
    Notification {
        status,
        rule_id: rule.id.clone(),
        cluster: rule.cluster.clone(),
        group: rule.group.clone(),
        time_lag_seconds,
        max_time_lag_seconds: rule.max_time_lag_seconds,
        for_seconds: rule.for_seconds,
        since_ms,
        above_since_ms,
        at_ms,
        webhook_url: rule.webhook_url.clone(),
    }
}

/// One pass over one rule: the rule's state after a pass at `now_ms` that computed `lag`
/// for its group (None: the group has no committed offsets, which counts as no lag), and
/// the notification to send when the rule fired or resolved.
pub fn step(
    rule: &AlertRule,
    prev: &AlertState,
    now_ms: i64,
    lag: Option<f64>,
) -> (AlertState, Option<Notification>) {
    let lag_now = lag.unwrap_or(0.0);
    let above = lag.is_some_and(|l| l > rule.max_time_lag_seconds);
    let mut next = AlertState {
        state: prev.state,
        since_ms: prev.since_ms,
        above_since_ms: prev.above_since_ms,
        last_time_lag_seconds: lag,
        evaluated_at_ms: Some(now_ms),
    };
    if !above {
        next.above_since_ms = None;
        if prev.state == AlertStatus::Ok {
            return (next, None);
        }
        next.state = AlertStatus::Ok;
        next.since_ms = None;
        let fired = prev.since_ms.unwrap_or(now_ms);
        let above_since = prev.above_since_ms.unwrap_or(fired);
        let note = notification(rule, Change::Resolved, lag_now, fired, above_since, now_ms);
        return (next, Some(note));
    }
    let above_since = *next.above_since_ms.get_or_insert(now_ms);
    let long_enough = now_ms.saturating_sub(above_since) >= rule.for_seconds.saturating_mul(1000);
    if prev.state == AlertStatus::Firing || !long_enough {
        return (next, None);
    }
    next.state = AlertStatus::Firing;
    next.since_ms = Some(now_ms);
    let note = notification(rule, Change::Firing, lag_now, now_ms, above_since, now_ms);
    (next, Some(note))
}

/// Checks a webhook URL: absolute, http or https, with a host, of sensible length. Returns
/// it normalised (as it is stored), or a message for the person who gave it.
pub fn check_webhook_url(raw: &str) -> Result<String, String> {
    let raw = raw.trim();
    if raw.is_empty() {
        return Err(
            "Give the webhook URL to call, e.g. https://hooks.example.com/sluice.".to_string(),
        );
    }
    if raw.len() > MAX_WEBHOOK_URL {
        return Err(format!(
            "A webhook URL has at most {MAX_WEBHOOK_URL} characters."
        ));
    }
    let url = url::Url::parse(raw).map_err(|e| {
        format!(
            "The webhook URL is not a valid URL ({e}): write it in full, e.g. \
             https://hooks.example.com/sluice."
        )
    })?;
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!(
            "A webhook URL must start with http:// or https:// (not {}:).",
            url.scheme()
        ));
    }
    if url.host_str().is_none_or(str::is_empty) {
        return Err(
            "The webhook URL needs a host, e.g. https://hooks.example.com/sluice.".to_string(),
        );
    }
    Ok(url.as_str().to_string())
}

/// Checks a rule to create; returns its webhook URL normalised, or a message for the
/// person who gave it.
pub fn check_rule(rule: &NewAlertRule<'_>) -> Result<String, String> {
    if rule.group.is_empty() {
        return Err("Name the consumer group the rule watches.".to_string());
    }
    if rule.group.chars().count() > MAX_GROUP_ID {
        return Err(format!("A group id has at most {MAX_GROUP_ID} characters."));
    }
    if rule.group.chars().any(char::is_control) {
        return Err("A group id cannot contain control characters.".to_string());
    }
    if !rule.max_time_lag_seconds.is_finite()
        || rule.max_time_lag_seconds < 0.0
        || rule.max_time_lag_seconds > MAX_THRESHOLD_SECONDS
    {
        return Err(format!(
            "The time lag threshold (max_time_lag_seconds) must be a number of seconds \
             from 0 to {MAX_THRESHOLD_SECONDS} (30 days)."
        ));
    }
    if !(0..=MAX_FOR_SECONDS).contains(&rule.for_seconds) {
        return Err(format!(
            "How long the lag must stay above the threshold (for_seconds) must be a whole \
             number of seconds from 0 to {MAX_FOR_SECONDS} (7 days)."
        ));
    }
    check_webhook_url(rule.webhook_url)
}

/// A webhook URL without its path and query (`https://hooks.example.com/…`), for logs
/// and for readers who may not see the whole URL: the path often holds a secret token.
pub fn webhook_origin(url: &str) -> String {
    let Ok(u) = url::Url::parse(url) else {
        return "(not a url)".to_string();
    };
    let Some(host) = u.host_str() else {
        return "(not a url)".to_string();
    };
    let port = u.port().map(|p| format!(":{p}")).unwrap_or_default();
    format!("{}://{host}{port}/…", u.scheme())
}

/// Steps every stored rule after a lag pass at `now_ms` (the pass has just filled the lag
/// board), saves their states in one transaction, then queues the notifications. Returns
/// how many were queued.
pub async fn evaluate(
    broker: &Broker,
    now_ms: i64,
    notifier: &Notifier,
) -> Result<usize, StoreError> {
    let rules = broker.meta.all_lag_alerts().await?;
    if rules.is_empty() {
        return Ok(0);
    }
    let mut states = Vec::with_capacity(rules.len());
    let mut notes = Vec::new();
    for a in &rules {
        let lag = broker.lag.max_time_lag(&a.rule.cluster, &a.rule.group);
        let (next, note) = step(&a.rule, &a.status, now_ms, lag);
        states.push((a.rule.id.clone(), next));
        notes.extend(note);
    }
    broker.meta.save_lag_alert_states(&states).await?;
    let queued = notes.len();
    for n in notes {
        tracing::info!(
            rule = %n.rule_id,
            cluster = %n.cluster,
            group = %n.group,
            status = n.status.as_str(),
            time_lag_seconds = n.time_lag_seconds,
            max_time_lag_seconds = n.max_time_lag_seconds,
            "lag alert changed"
        );
        notifier.send(n);
    }
    Ok(queued)
}

#[cfg(test)]
mod tests {
    use super::*;

    const T0: i64 = 1_700_000_000_000;

    fn rule(max: f64, for_seconds: i64) -> AlertRule {
        AlertRule {
            id: "r1".into(),
            cluster: "c1".into(),
            group: "g1".into(),
            max_time_lag_seconds: max,
            for_seconds,
            webhook_url: "https://hooks.example.com/x".into(),
            created_at_ms: T0 - 1,
        }
    }

    /// Runs passes at `(ms after T0, lag)`; returns the last state and every change seen.
    fn passes(r: &AlertRule, seen: &[(i64, Option<f64>)]) -> (AlertState, Vec<(i64, Change)>) {
        let mut state = AlertState::default();
        let mut changes = Vec::new();
        for &(at, lag) in seen {
            let (next, note) = step(r, &state, T0 + at, lag);
            if let Some(n) = note {
                changes.push((at, n.status));
            }
            state = next;
        }
        (state, changes)
    }

    #[test]
    fn below_the_threshold_stays_ok() {
        let r = rule(60.0, 0);
        let (s, changes) = passes(&r, &[(0, Some(10.0)), (15_000, Some(60.0)), (30_000, None)]);
        assert!(
            changes.is_empty(),
            "exactly at the threshold is not above it"
        );
        assert_eq!(s.state, AlertStatus::Ok);
        assert_eq!(s.above_since_ms, None);
        assert_eq!(s.last_time_lag_seconds, None);
        assert_eq!(s.evaluated_at_ms, Some(T0 + 30_000));
    }

    #[test]
    fn fires_only_after_staying_above_for_long_enough() {
        let r = rule(60.0, 30);
        let (s, changes) = passes(&r, &[(0, Some(61.0)), (15_000, Some(75.0))]);
        assert!(changes.is_empty(), "above for 15 s of 30");
        assert_eq!(s.above_since_ms, Some(T0));
        let (next, note) = step(&r, &s, T0 + 30_000, Some(90.0));
        let n = note.expect("fires at 30 s above");
        assert_eq!(next.state, AlertStatus::Firing);
        assert_eq!(next.since_ms, Some(T0 + 30_000));
        assert_eq!(
            (
                n.status,
                n.time_lag_seconds,
                n.since_ms,
                n.above_since_ms,
                n.at_ms
            ),
            (Change::Firing, 90.0, T0 + 30_000, T0, T0 + 30_000)
        );
        assert_eq!(
            (n.rule_id.as_str(), n.cluster.as_str(), n.group.as_str()),
            ("r1", "c1", "g1")
        );
        assert_eq!(n.webhook_url, "https://hooks.example.com/x");
    }

    #[test]
    fn a_dip_below_restarts_the_wait() {
        let r = rule(60.0, 30);
        let (s, changes) = passes(
            &r,
            &[
                (0, Some(61.0)),
                (20_000, Some(5.0)),
                (40_000, Some(70.0)),
                (60_000, Some(80.0)),
            ],
        );
        assert!(
            changes.is_empty(),
            "above for 20 s, then 20 s: never 30 in a row"
        );
        assert_eq!(s.above_since_ms, Some(T0 + 40_000));
        let (_, note) = step(&r, &s, T0 + 70_000, Some(90.0));
        assert_eq!(note.map(|n| n.status), Some(Change::Firing));
    }

    #[test]
    fn zero_for_seconds_fires_on_the_first_pass_above() {
        let r = rule(0.0, 0);
        let (s, changes) = passes(&r, &[(0, Some(0.0)), (1_000, Some(0.5))]);
        assert_eq!(changes, vec![(1_000, Change::Firing)]);
        assert_eq!(s.state, AlertStatus::Firing);
    }

    #[test]
    fn fires_once_then_resolves_once() {
        let r = rule(60.0, 0);
        let (s, changes) = passes(
            &r,
            &[
                (0, Some(100.0)),
                (15_000, Some(115.0)),
                (30_000, Some(130.0)),
                (45_000, Some(2.0)),
                (60_000, Some(1.0)),
            ],
        );
        assert_eq!(
            changes,
            vec![(0, Change::Firing), (45_000, Change::Resolved)]
        );
        assert_eq!(s.state, AlertStatus::Ok);
        assert_eq!((s.since_ms, s.above_since_ms), (None, None));
    }

    #[test]
    fn resolved_names_the_firing_it_ends() {
        let r = rule(60.0, 10);
        let firing = AlertState {
            state: AlertStatus::Firing,
            since_ms: Some(T0 + 10_000),
            above_since_ms: Some(T0),
            last_time_lag_seconds: Some(200.0),
            evaluated_at_ms: Some(T0 + 10_000),
        };
        let (next, note) = step(&r, &firing, T0 + 25_000, Some(3.5));
        let n = note.expect("resolves");
        assert_eq!(
            (
                n.status,
                n.time_lag_seconds,
                n.since_ms,
                n.above_since_ms,
                n.at_ms
            ),
            (Change::Resolved, 3.5, T0 + 10_000, T0, T0 + 25_000)
        );
        assert_eq!(
            next,
            AlertState {
                state: AlertStatus::Ok,
                since_ms: None,
                above_since_ms: None,
                last_time_lag_seconds: Some(3.5),
                evaluated_at_ms: Some(T0 + 25_000),
            }
        );
    }

    #[test]
    fn a_group_without_offsets_resolves() {
        let r = rule(60.0, 0);
        let (_, changes) = passes(&r, &[(0, Some(100.0)), (15_000, None)]);
        assert_eq!(
            changes,
            vec![(0, Change::Firing), (15_000, Change::Resolved)]
        );
    }

    #[test]
    fn a_stored_firing_state_is_kept_by_the_next_agent() {
        // Another agent took the lease over: it reads the state its predecessor stored.
        let r = rule(60.0, 0);
        let stored = AlertState {
            state: AlertStatus::Firing,
            since_ms: Some(T0),
            above_since_ms: Some(T0 - 5_000),
            last_time_lag_seconds: Some(100.0),
            evaluated_at_ms: Some(T0),
        };
        let (next, note) = step(&r, &stored, T0 + 45_000, Some(145.0));
        assert!(note.is_none(), "no second firing");
        assert_eq!(
            (next.state, next.since_ms, next.above_since_ms),
            (AlertStatus::Firing, Some(T0), Some(T0 - 5_000))
        );
    }

    #[test]
    fn the_webhook_body_has_every_field() {
        let r = rule(60.0, 30);
        let n = notification(&r, Change::Firing, 95.5, T0 + 30_000, T0, T0 + 30_000);
        let bytes = serde_json::to_vec(&n).unwrap();
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        assert_eq!(
            v,
            serde_json::json!({
                "status": "firing",
                "rule_id": "r1",
                "cluster": "c1",
                "group": "g1",
                "time_lag_seconds": 95.5,
                "max_time_lag_seconds": 60.0,
                "for_seconds": 30,
                "since_ms": T0 + 30_000,
                "above_since_ms": T0,
                "at_ms": T0 + 30_000,
            }),
            "the URL is not in the body"
        );
    }

    #[test]
    fn the_api_shape_flattens_rule_and_state() {
        let a = LagAlert {
            rule: rule(60.0, 30),
            status: AlertState::default(),
        };
        let v = serde_json::to_value(&a).unwrap();
        assert_eq!(v["id"], "r1");
        assert_eq!(v["group"], "g1");
        assert_eq!(v["state"], "ok");
        assert_eq!(v["since_ms"], serde_json::Value::Null);
        assert_eq!(v["webhook_url"], "https://hooks.example.com/x");
    }

    #[test]
    fn webhook_urls_are_http_or_https_with_a_host() {
        assert_eq!(
            check_webhook_url("  https://hooks.example.com/a?b=c ").as_deref(),
            Ok("https://hooks.example.com/a?b=c")
        );
        assert_eq!(
            check_webhook_url("http://127.0.0.1:8080").as_deref(),
            Ok("http://127.0.0.1:8080/")
        );
        for bad in [
            "",
            "hooks.example.com/x",
            "ftp://example.com/x",
            "javascript:alert(1)",
            "file:///etc/passwd",
            "http://",
        ] {
            let e = check_webhook_url(bad).expect_err(bad);
            assert!(!e.is_empty());
        }
        let long = format!("https://example.com/{}", "a".repeat(MAX_WEBHOOK_URL));
        assert!(check_webhook_url(&long).unwrap_err().contains("at most"));
        assert!(check_webhook_url("ftp://example.com/")
            .unwrap_err()
            .contains("http:// or https://"));
    }

    #[test]
    fn rules_are_checked() {
        let ok = NewAlertRule {
            group: "orders",
            max_time_lag_seconds: 60.0,
            for_seconds: 120,
            webhook_url: "https://hooks.example.com/x",
        };
        assert!(check_rule(&ok).is_ok());
        let bad = [
            NewAlertRule { group: "", ..ok },
            NewAlertRule {
                group: "a\nb",
                ..ok
            },
            NewAlertRule {
                max_time_lag_seconds: -1.0,
                ..ok
            },
            NewAlertRule {
                max_time_lag_seconds: f64::NAN,
                ..ok
            },
            NewAlertRule {
                max_time_lag_seconds: f64::INFINITY,
                ..ok
            },
            NewAlertRule {
                for_seconds: -1,
                ..ok
            },
            NewAlertRule {
                for_seconds: MAX_FOR_SECONDS + 1,
                ..ok
            },
            NewAlertRule {
                webhook_url: "mailto:ops@example.com",
                ..ok
            },
        ];
        for b in bad {
            assert!(check_rule(&b).is_err(), "{b:?}");
        }
    }

    #[test]
    fn origins_hide_path_and_query() {
        assert_eq!(
            webhook_origin("https://hooks.slack.com/services/T000/B000/secret"),
            "https://hooks.slack.com/…"
        );
        assert_eq!(
            webhook_origin("http://127.0.0.1:9000/hook?token=x"),
            "http://127.0.0.1:9000/…"
        );
        assert_eq!(webhook_origin("nonsense"), "(not a url)");
    }
}

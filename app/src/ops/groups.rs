//! Consumer groups: listing, offset resets (with dry runs), deletes, the time-lag trend and
//! history, and the groups' lag alert rules.

use super::*;

pub async fn groups(console: &Console, c: &ClusterRef) -> Result<Vec<GroupSummary>, Refusal> {
    Ok(console.view.list_groups(&c.id).await?)
}

pub async fn group(console: &Console, c: &ClusterRef, group: &str) -> Result<GroupDetail, Refusal> {
    Ok(console.view.group_detail(&c.id, group).await?)
}

/// A reset as `spec` says: to any target, on chosen partitions, or only its plan (see
/// [`broker::inspect::reset_offsets`]). Applying needs write access; a dry run changes
/// nothing, so seeing the cluster is enough for it.
pub async fn reset_group_offsets(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    group: &str,
    spec: &broker::inspect::ResetSpec,
) -> Result<Vec<OffsetReset>, Refusal> {
    if !spec.dry_run {
        require_write(actor)?;
    }
    Ok(console.view.reset_offsets(&c.id, group, spec).await?)
}

/// Deletes a consumer group with its committed offsets; refused while it has live members.
pub async fn delete_group(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    group: &str,
) -> Result<(), Refusal> {
    require_write(actor)?;
    Ok(console.view.delete_group(&c.id, group).await?)
}

/// Deletes a group's committed offsets on one topic; refused while live members of the
/// group subscribe to it. Returns how many partitions' offsets were deleted.
pub async fn delete_group_offsets(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    group: &str,
    topic: &str,
) -> Result<u64, Refusal> {
    require_write(actor)?;
    let topic = topic.trim();
    if topic.is_empty() {
        return Err(Refusal::bad_request(
            "Name the topic whose committed offsets to delete.",
        ));
    }
    Ok(console
        .view
        .delete_topic_offsets(&c.id, group, topic)
        .await?)
}

/// Where a group's time lag is heading and when it catches up (see [`crate::trend`]), from
/// the last minutes of its lag history and its latest lag.
pub async fn lag_trend(
    console: &Console,
    c: &ClusterRef,
    group: &str,
) -> Result<crate::trend::LagTrend, Refusal> {
    let now = broker::clock::now_ms();
    let since = now - (crate::trend::WINDOW_MINUTES + 1) * 60_000;
    let history = console.view.lag_history(&c.id, group, since).await?;
    let current = console.view.current_lag(&c.id, group).await?;
    let points: Vec<(i64, f64)> = history
        .into_iter()
        .map(|(minute, lag_ms, _)| (minute, lag_ms as f64 / 1000.0))
        .collect();
    Ok(crate::trend::lag_trend(
        &points,
        current.map(|l| l.max_time_lag_seconds),
        now,
    ))
}

/// [`crate::trend::lag_trend`] of a history as [`lag_history`] answers it.
pub fn trend_of(points: &[LagPoint], current: Option<&GroupLag>) -> crate::trend::LagTrend {
    let series: Vec<(i64, f64)> = points
        .iter()
        .map(|p| (p.minute_start_ms, p.max_time_lag_seconds))
        .collect();
    crate::trend::lag_trend(
        &series,
        current.map(|l| l.max_time_lag_seconds),
        broker::clock::now_ms(),
    )
}

/// One point of a group's lag history.
#[derive(Debug, Clone, serde::Serialize)]
pub struct LagPoint {
    pub minute_start_ms: i64,
    pub max_time_lag_seconds: f64,
    pub offset_lag: i64,
}

/// A group's lag over a window (`1h` or `24h`), oldest first, and the latest value the lag
/// job computed.
pub async fn lag_history(
    console: &Console,
    c: &ClusterRef,
    group: &str,
    window: &str,
) -> Result<(Vec<LagPoint>, Option<GroupLag>), Refusal> {
    let window_ms: i64 = match window {
        "1h" => 3_600_000,
        "24h" => 86_400_000,
        other => {
            return Err(Refusal::bad_request(format!(
                "Unknown window '{other}': use 1h or 24h."
            )));
        }
    };
    let history = console
        .view
        .lag_history(&c.id, group, broker::clock::now_ms() - window_ms)
        .await?;
    let current = console.view.current_lag(&c.id, group).await?;
    let points = history
        .into_iter()
        .map(|(minute, lag_ms, offset_lag)| LagPoint {
            minute_start_ms: minute,
            max_time_lag_seconds: lag_ms as f64 / 1000.0,
            offset_lag,
        })
        .collect();
    Ok((points, current))
}

// ---- lag alerts ----

/// A cluster's lag alert rules with their state (all groups, or one). Only those who may
/// change the cluster's data see whole webhook URLs, whose path is often a secret token;
/// everyone else sees where they point (`https://host/…`).
pub async fn lag_alerts(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    group: Option<&str>,
) -> Result<Vec<broker::inspect::LagAlert>, Refusal> {
    let mut alerts = console.view.lag_alerts(&c.id).await?;
    if let Some(g) = group {
        alerts.retain(|a| a.rule.group == g);
    }
    if require_write(actor).is_err() {
        for a in &mut alerts {
            a.rule.webhook_url = broker::inspect::webhook_origin(&a.rule.webhook_url);
        }
    }
    Ok(alerts)
}

/// Creates a rule (checked by the broker: a group, a threshold of 0 s to 30 days, a wait
/// of 0 s to 7 days, an http or https webhook URL; at most
/// [`broker::inspect::MAX_ALERTS_PER_CLUSTER`] rules per cluster).
pub async fn create_lag_alert(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    rule: broker::inspect::NewAlertRule<'_>,
) -> Result<broker::inspect::LagAlert, Refusal> {
    require_write(actor)?;
    let alert = console.view.create_lag_alert(&c.id, rule).await?;
    tracing::info!(cluster = %c.id, group = %alert.rule.group, rule = %alert.rule.id, "lag alert created");
    Ok(alert)
}

pub async fn delete_lag_alert(
    console: &Console,
    actor: &Actor,
    c: &ClusterRef,
    id: &str,
) -> Result<(), Refusal> {
    require_write(actor)?;
    if !console.view.delete_lag_alert(&c.id, id).await? {
        return Err(Refusal::not_found(format!(
            "No lag alert '{id}' in this cluster."
        )));
    }
    tracing::info!(cluster = %c.id, rule = %id, "lag alert deleted");
    Ok(())
}

/// The rules firing now in any of `clusters` (the clusters the viewer sees), for the
/// overview.
pub async fn firing_lag_alerts(
    console: &Console,
    clusters: &[ClusterRef],
) -> Result<Vec<(ClusterRef, broker::inspect::LagAlert)>, Refusal> {
    let mut out = Vec::new();
    for c in clusters {
        for a in console.view.lag_alerts(&c.id).await? {
            if a.status.state == broker::inspect::AlertStatus::Firing {
                out.push((c.clone(), a));
            }
        }
    }
    Ok(out)
}

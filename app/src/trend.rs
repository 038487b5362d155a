//! Where a group's time lag is heading, from its lag history: how fast it grows or shrinks
//! (the least-squares slope over the last [`WINDOW_MINUTES`] whole minutes) and, while it
//! shrinks, about how long until the group has caught up. Pure functions; the history
//! comes from [`crate::ops::lag_history`].
//!
//! Time lag is "now − when the first unconsumed record was produced", so a stuck consumer's
//! lag grows by 60 s every minute, one that keeps pace stays flat, and one reading faster
//! than records arrive shrinks it. Shrinking by `r` seconds of lag per second of wall time
//! (the slope per minute divided by −60) leaves `lag / r` seconds to go.

use serde::Serialize;

/// How many whole minutes of history the trend is fitted over.
pub const WINDOW_MINUTES: i64 = 10;
/// Fewer points than this give no trend (two points are a line through noise).
pub const MIN_POINTS: usize = 3;

const MINUTE_MS: i64 = 60_000;

/// A group's time-lag trend, as the group page and the API show it.
#[derive(Debug, Clone, Copy, PartialEq, Serialize)]
pub struct LagTrend {
    /// Seconds of time lag gained per minute (negative: shrinking); None with fewer than
    /// [`MIN_POINTS`] minutes of history.
    pub trend_seconds_per_minute: Option<f64>,
    /// Seconds until the time lag reaches 0 at the current pace; None when there is no lag
    /// or it is not shrinking.
    pub catch_up_eta_seconds: Option<f64>,
}

/// The slope of the time lag in seconds per minute, by least squares over the points
/// `(minute start ms, max time lag s)` of the last [`WINDOW_MINUTES`] whole minutes
/// before `now_ms`.
///
/// The row of the minute still running is left out: it holds the latest value but is dated
/// at its minute's start, up to a minute early, which would bend the line (a stuck
/// consumer would seem to gain more than 60 s a minute).
pub fn slope_per_minute(points: &[(i64, f64)], now_ms: i64) -> Option<f64> {
    let this_minute = now_ms - now_ms.rem_euclid(MINUTE_MS);
    let since = this_minute - WINDOW_MINUTES * MINUTE_MS;
    let recent: Vec<(f64, f64)> = points
        .iter()
        .filter(|(t, lag)| *t >= since && *t < this_minute && lag.is_finite())
        .map(|(t, lag)| ((t - since) as f64 / MINUTE_MS as f64, *lag))
        .collect();
    if recent.len() < MIN_POINTS {
        return None;
    }
    let n = recent.len() as f64;
    let mean_x = recent.iter().map(|(x, _)| x).sum::<f64>() / n;
    let mean_y = recent.iter().map(|(_, y)| y).sum::<f64>() / n;
    let (mut sxy, mut sxx) = (0.0, 0.0);
    for (x, y) in &recent {
        sxy += (x - mean_x) * (y - mean_y);
        sxx += (x - mean_x) * (x - mean_x);
    }
    // All points in one minute (repeated rows): no line to fit.
    if sxx > 0.0 {
        Some(sxy / sxx)
    } else {
        None
    }
}

/// Seconds until a time lag of `current_lag_seconds` reaches 0 while it shrinks by
/// `-trend_per_minute` seconds every minute; None when there is no lag or no shrinking.
pub fn eta_seconds(current_lag_seconds: f64, trend_per_minute: Option<f64>) -> Option<f64> {
    let trend = trend_per_minute?;
    if current_lag_seconds <= 0.0 || trend >= 0.0 || !trend.is_finite() {
        return None;
    }
    // Lag seconds lost per second of wall time.
    let rate = -trend / 60.0;
    Some(current_lag_seconds / rate)
}

/// The trend of `points` (see [`slope_per_minute`]) and the time to catch up from
/// `current_lag_seconds` (the latest computed lag; None when unknown).
pub fn lag_trend(points: &[(i64, f64)], current_lag_seconds: Option<f64>, now_ms: i64) -> LagTrend {
    let trend = slope_per_minute(points, now_ms);
    LagTrend {
        trend_seconds_per_minute: trend,
        catch_up_eta_seconds: current_lag_seconds.and_then(|lag| eta_seconds(lag, trend)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// 30 s into a minute.
    const NOW: i64 = 1_700_000_040_000 + 30_000;
    const THIS_MINUTE: i64 = 1_700_000_040_000;

    /// One point per whole minute `m` minutes before the current one, with lag `f(m)`.
    fn history(minutes: i64, f: impl Fn(i64) -> f64) -> Vec<(i64, f64)> {
        (1..=minutes)
            .rev()
            .map(|m| (THIS_MINUTE - m * MINUTE_MS, f(m)))
            .collect()
    }

    fn close(a: f64, b: f64) -> bool {
        (a - b).abs() < 1e-9
    }

    #[test]
    fn a_stuck_consumer_gains_a_minute_every_minute() {
        // Lag 600 s ten minutes ago, 60 s more each minute since.
        let points = history(10, |m| 600.0 + (10 - m) as f64 * 60.0);
        let t = lag_trend(&points, Some(1_200.0), NOW);
        assert!(close(t.trend_seconds_per_minute.unwrap(), 60.0), "{t:?}");
        assert_eq!(t.catch_up_eta_seconds, None, "not catching up");
    }

    #[test]
    fn a_consumer_catching_up_gets_an_eta() {
        // Lag shrinks by 30 s every minute: half a second of lag per second of wall time.
        let points = history(5, |m| 300.0 + m as f64 * 30.0);
        let t = lag_trend(&points, Some(300.0), NOW);
        assert!(close(t.trend_seconds_per_minute.unwrap(), -30.0), "{t:?}");
        // 300 s of lag at 0.5 s/s: 600 s to go.
        assert!(close(t.catch_up_eta_seconds.unwrap(), 600.0), "{t:?}");
        assert!(close(eta_seconds(120.0, Some(-60.0)).unwrap(), 120.0));
    }

    #[test]
    fn no_trend_without_enough_whole_minutes() {
        assert_eq!(slope_per_minute(&[], NOW), None);
        assert_eq!(slope_per_minute(&history(2, |m| m as f64), NOW), None);
        // The running minute does not count, nor do minutes older than the window.
        let mut points = history(2, |m| m as f64);
        points.push((THIS_MINUTE, 5.0));
        assert_eq!(slope_per_minute(&points, NOW), None);
        let old = history(20, |m| m as f64)
            .into_iter()
            .filter(|(t, _)| *t < THIS_MINUTE - WINDOW_MINUTES * MINUTE_MS)
            .collect::<Vec<_>>();
        assert_eq!(old.len(), 10);
        assert_eq!(slope_per_minute(&old, NOW), None);
        let t = lag_trend(&points, Some(3.0), NOW);
        assert_eq!(
            (t.trend_seconds_per_minute, t.catch_up_eta_seconds),
            (None, None)
        );
    }

    #[test]
    fn the_running_minute_does_not_bend_the_line() {
        // A flat lag of 10 s; the running minute's row already holds 40 s (30 s later).
        let mut points = history(5, |_| 10.0);
        points.push((THIS_MINUTE, 40.0));
        assert!(close(slope_per_minute(&points, NOW).unwrap(), 0.0));
    }

    #[test]
    fn no_eta_when_caught_up_or_steady() {
        assert_eq!(eta_seconds(0.0, Some(-10.0)), None, "no lag");
        assert_eq!(eta_seconds(50.0, Some(0.0)), None, "steady");
        assert_eq!(eta_seconds(50.0, Some(3.0)), None, "growing");
        assert_eq!(eta_seconds(50.0, None), None, "no trend");
        assert_eq!(
            lag_trend(&history(5, |_| 0.0), None, NOW).catch_up_eta_seconds,
            None
        );
    }
}

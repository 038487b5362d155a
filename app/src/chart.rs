//! Lag charts: an SVG line chart of one lag measure over a time window, drawn by plotters
//! (its SVG backend writes `<text>` elements, so no font library is needed).

use plotters::prelude::*;

/// Which measure a chart shows.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Metric {
    /// Seconds between now and the produce time of the next record to consume.
    TimeLag,
    /// Records between the committed offset and the log end.
    OffsetLag,
}

impl Metric {
    pub fn parse(s: &str) -> Option<Metric> {
        match s {
            "time" => Some(Metric::TimeLag),
            "offset" => Some(Metric::OffsetLag),
            _ => None,
        }
    }
    fn label(self) -> &'static str {
        match self {
            Metric::TimeLag => "time lag (seconds)",
            Metric::OffsetLag => "offset lag (records)",
        }
    }
}

pub const WIDTH: u32 = 760;
pub const HEIGHT: u32 = 260;

fn hh_mm(ms: &i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, (secs / 60) % 60)
}

/// Round clock times for the x axis: every 10 minutes over an hour, every 4 hours over a
/// day (about six labels whatever the window).
fn ticks(from_ms: i64, to_ms: i64) -> Vec<i64> {
    const MIN: i64 = 60_000;
    let span = to_ms - from_ms;
    let step = [
        5 * MIN,
        10 * MIN,
        15 * MIN,
        30 * MIN,
        60 * MIN,
        120 * MIN,
        240 * MIN,
    ]
    .into_iter()
    .find(|s| span / s <= 7)
    .unwrap_or(480 * MIN);
    let first = (from_ms + step - 1).div_euclid(step) * step;
    (0..)
        .map(|i| first + i * step)
        .take_while(|t| *t <= to_ms)
        .collect()
}

/// Draws `points` (time in ms, value) over `[from_ms, to_ms]`. Never fails: a drawing
/// error yields an SVG that says so.
pub fn lag_svg(metric: Metric, from_ms: i64, to_ms: i64, points: &[(i64, f64)]) -> String {
    let mut svg = String::new();
    let drawn = draw(&mut svg, metric, from_ms, to_ms, points);
    if let Err(e) = drawn {
        tracing::warn!(error = %e, "drawing a lag chart failed");
        return format!(
            "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{WIDTH}\" height=\"{HEIGHT}\"><text x=\"20\" y=\"40\">chart unavailable</text></svg>"
        );
    }
    svg
}

fn draw(
    svg: &mut String,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    points: &[(i64, f64)],
) -> Result<(), String> {
    draw_inner(svg, metric, from_ms, to_ms, points).map_err(|e| e.to_string())
}

fn draw_inner<'a>(
    svg: &'a mut String,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    points: &[(i64, f64)],
) -> Result<(), Box<dyn std::error::Error + 'a>> {
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    root.fill(&WHITE)?;
    let max = points.iter().map(|p| p.1).fold(0.0f64, f64::max);
    // Headroom above the highest point; a flat zero line still gets a visible scale.
    let top = if max <= 0.0 { 1.0 } else { max * 1.15 };
    let to_ms = to_ms.max(from_ms + 60_000);
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        .x_label_area_size(28)
        .y_label_area_size(64)
        .caption(metric.label(), ("sans-serif", 15))
        .build_cartesian_2d(
            (from_ms..to_ms).with_key_points(ticks(from_ms, to_ms)),
            0f64..top,
        )?;
    chart
        .configure_mesh()
        .y_labels(5)
        .x_label_formatter(&hh_mm)
        .y_label_formatter(&|v| {
            if *v >= 10_000.0 {
                format!("{:.0}k", v / 1000.0)
            } else if *v >= 100.0 || metric == Metric::OffsetLag {
                format!("{v:.0}")
            } else {
                format!("{v:.1}")
            }
        })
        .light_line_style(RGBColor(236, 239, 243))
        .bold_line_style(RGBColor(214, 219, 226))
        .axis_style(RGBColor(150, 158, 170))
        .label_style(("sans-serif", 12))
        .draw()?;
    let colour = match metric {
        Metric::TimeLag => RGBColor(37, 99, 235),
        Metric::OffsetLag => RGBColor(217, 119, 6),
    };
    let mut sorted: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= from_ms && p.0 <= to_ms)
        .collect();
    sorted.sort_by_key(|p| p.0);
    if sorted.is_empty() {
        root.draw(&Text::new(
            "no lag recorded in this window yet",
            ((WIDTH / 2 - 110) as i32, (HEIGHT / 2) as i32),
            ("sans-serif", 14)
                .into_font()
                .color(&RGBColor(120, 128, 140)),
        ))?;
    } else {
        chart.draw_series(LineSeries::new(
            sorted.iter().copied(),
            colour.stroke_width(2),
        ))?;
        chart.draw_series(sorted.iter().map(|p| Circle::new(*p, 2, colour.filled())))?;
    }
    root.present()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn draws_points_and_labels() {
        let svg = lag_svg(
            Metric::TimeLag,
            0,
            3_600_000,
            &[(60_000, 1.5), (120_000, 3.0), (180_000, 0.5)],
        );
        assert!(svg.starts_with("<svg"), "{svg}");
        assert!(svg.contains("<polyline"), "a line is drawn");
        assert!(svg.contains("time lag (seconds)"));
        assert!(
            svg.contains("00:10") && svg.contains("00:50"),
            "x axis labelled in HH:MM: {svg}"
        );
    }

    #[test]
    fn empty_window_says_so() {
        let svg = lag_svg(Metric::OffsetLag, 0, 3_600_000, &[]);
        assert!(svg.contains("no lag recorded"));
    }
}

//! Lag charts: an SVG line chart of one lag measure over a time window, drawn by plotters
//! (its SVG backend writes `<text>` elements, so no font library is needed).
//!
//! Plotters draws the axes, the grid and the line; two things are added to its output
//! afterwards, since its backend cannot write them:
//! * a background `<rect class="bg">` and a `<style>` that darkens the chart under
//!   `prefers-color-scheme: dark` (it applies when the chart is shown as an `<img>`, a
//!   document of its own, if the chart's response allows inline styles: see [`SVG_CSP`]);
//!   inlined into a page, the page's stylesheet styles `svg.lag-chart` instead;
//! * invisible hover targets, one per few pixels of time, each with a `<title>` giving the
//!   time (UTC) and the value in human units. Browsers show titles only for SVG in the page
//!   itself, not in an `<img>`: `public/console.js` inlines the charts when scripts run.
//!
//! Colours that need not change with the scheme are chosen to read on both: translucent grey
//! grid lines, a blue and an amber line with at least 3:1 contrast on light and dark cards.

use plotters::prelude::*;
use plotters::style::text_anchor::{HPos, Pos, VPos};

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
            Metric::TimeLag => "time lag",
            Metric::OffsetLag => "offset lag (records)",
        }
    }
}

/// The drawing size in SVG units. Pages scale the chart to its column, never wider than
/// this (`style/console.css`: two columns of about 540 px on a wide screen, one of at most
/// 600 px below that), so fonts are sized for a scale of 0.9 to 1.
pub const WIDTH: u32 = 600;
pub const HEIGHT: u32 = 280;

/// A Content-Security-Policy for the chart when it is served as an image: the chart has no
/// script and no text from users, and its one `<style>` (the dark scheme) is inline. The
/// console's own policy (`style-src 'self'`) would block that style, leaving a light chart
/// on a dark page (readable, but bright).
pub const SVG_CSP: &str = "default-src 'none'; style-src 'unsafe-inline'";

/// Plotters writes `font-size` as the given size divided by 1.24: these give about 18 and
/// 16 SVG units, 16 and 14 px at the usual rendered scale.
const CAPTION_SIZE: u32 = 22;
const LABEL_SIZE: u32 = 20;

const INK: RGBColor = RGBColor(31, 41, 51);
const MUTED: RGBColor = RGBColor(97, 110, 124);
const GRID_LIGHT: RGBAColor = RGBAColor(128, 140, 155, 0.14);
const GRID_BOLD: RGBAColor = RGBAColor(128, 140, 155, 0.32);
const AXIS: RGBAColor = RGBAColor(128, 140, 155, 0.85);
const TIME_COLOUR: RGBColor = RGBColor(59, 130, 246);
const OFFSET_COLOUR: RGBColor = RGBColor(217, 119, 6);

/// The light background (the `.bg` rect) and, for dark schemes, its replacement and the
/// text colour. Keep in step with `--card` and `--ink` in `style/console.css`.
const LIGHT_BG: &str = "#FFFFFF";
const DARK_STYLE: &str =
    "@media (prefers-color-scheme: dark) { .bg { fill: #182029; } text { fill: #E4E7EB; } }";

/// Hover targets: their radius, and the width of the time slices that share one target
/// (the highest point of a slice gets it), so a day of minute points gets under a hundred.
const HOVER_RADIUS: i32 = 6;
const HOVER_SLICE_PX: i32 = 6;

fn hh_mm(ms: &i64) -> String {
    let secs = ms.div_euclid(1000).rem_euclid(86_400);
    format!("{:02}:{:02}", secs / 3600, (secs / 60) % 60)
}

/// `v` with at most `decimals` decimals and no trailing zeros: "2", "2.5", never "2.50".
fn trim(v: f64, decimals: usize) -> String {
    let s = format!("{v:.decimals$}");
    let s = if s.contains('.') {
        s.trim_end_matches('0').trim_end_matches('.').to_string()
    } else {
        s
    };
    if s == "-0" {
        "0".to_string()
    } else {
        s
    }
}

/// The unit of a time-lag axis, chosen from the largest value shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TimeUnit {
    Seconds,
    Minutes,
    Hours,
}

impl TimeUnit {
    fn for_max(secs: f64) -> TimeUnit {
        if secs < 120.0 {
            TimeUnit::Seconds
        } else if secs < 7_200.0 {
            TimeUnit::Minutes
        } else {
            TimeUnit::Hours
        }
    }
    fn seconds(self) -> f64 {
        match self {
            TimeUnit::Seconds => 1.0,
            TimeUnit::Minutes => 60.0,
            TimeUnit::Hours => 3_600.0,
        }
    }
    fn symbol(self) -> &'static str {
        match self {
            TimeUnit::Seconds => "s",
            TimeUnit::Minutes => "min",
            TimeUnit::Hours => "h",
        }
    }
}

/// A duration for people: "0.4 s", "45 s", "5.5 min", "2 h".
fn human_secs(secs: f64) -> String {
    let unit = TimeUnit::for_max(secs);
    let v = secs / unit.seconds();
    let decimals = if unit == TimeUnit::Seconds && v >= 10.0 {
        0
    } else {
        1
    };
    format!("{} {}", trim(v, decimals), unit.symbol())
}

/// A count on an axis: "950", "1.5k", "20k", "2.25M".
fn short_count(v: f64) -> String {
    if v.abs() >= 1e6 {
        format!("{}M", trim(v / 1e6, 2))
    } else if v.abs() >= 1e3 {
        format!("{}k", trim(v / 1e3, 2))
    } else {
        trim(v, 1)
    }
}

/// An exact count with thousands separators: "12,345".
fn full_count(v: f64) -> String {
    let digits = format!("{:.0}", v.max(0.0));
    let mut out = String::with_capacity(digits.len() + digits.len() / 3);
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i) % 3 == 0 {
            out.push(',');
        }
        out.push(c);
    }
    out
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

/// A hover target: a pixel of the drawing and what its tooltip says.
#[derive(Debug)]
struct Hover {
    x: i32,
    y: i32,
    title: String,
}

/// Draws `points` (time in ms, value) over `[from_ms, to_ms]`. Never fails: a drawing
/// error yields an SVG that says so.
pub fn lag_svg(metric: Metric, from_ms: i64, to_ms: i64, points: &[(i64, f64)]) -> String {
    let mut svg = String::new();
    match draw(&mut svg, metric, from_ms, to_ms, points) {
        Ok(hovers) => finish(svg, metric, &hovers),
        Err(e) => {
            tracing::warn!(error = %e, "drawing a lag chart failed");
            format!(
                "<svg xmlns=\"http://www.w3.org/2000/svg\" class=\"lag-chart\" width=\"{WIDTH}\" height=\"{HEIGHT}\" viewBox=\"0 0 {WIDTH} {HEIGHT}\"><text x=\"20\" y=\"40\" font-family=\"sans-serif\" font-size=\"16\" fill=\"#616E7C\">chart unavailable</text></svg>"
            )
        }
    }
}

/// Adds to plotters' SVG what its backend cannot write: a class and a label on the root,
/// the dark-scheme style, a background to restyle, and the hover targets.
fn finish(svg: String, metric: Metric, hovers: &[Hover]) -> String {
    let (Some(open_end), Some(close)) = (svg.find('>'), svg.rfind("</svg>")) else {
        return svg;
    };
    let Some(attrs) = svg[..open_end].strip_prefix("<svg") else {
        return svg;
    };
    let mut out = String::with_capacity(svg.len() + 600 + hovers.len() * 80);
    out.push_str("<svg class=\"lag-chart\" role=\"img\" aria-label=\"");
    out.push_str(metric.label());
    out.push_str(" chart\"");
    out.push_str(attrs);
    out.push_str(">\n<style>");
    out.push_str(DARK_STYLE);
    out.push_str("</style>\n");
    out.push_str(&format!(
        "<rect class=\"bg\" x=\"0\" y=\"0\" width=\"{WIDTH}\" height=\"{HEIGHT}\" fill=\"{LIGHT_BG}\"/>\n"
    ));
    out.push_str(&svg[open_end + 1..close]);
    if !hovers.is_empty() {
        out.push_str(
            "<g class=\"hover\" fill=\"#000000\" fill-opacity=\"0\" pointer-events=\"all\">\n",
        );
        for h in hovers {
            // Titles hold only digits, unit names and separators: nothing to escape.
            out.push_str(&format!(
                "<circle cx=\"{}\" cy=\"{}\" r=\"{HOVER_RADIUS}\"><title>{}</title></circle>\n",
                h.x, h.y, h.title
            ));
        }
        out.push_str("</g>\n");
    }
    out.push_str(&svg[close..]);
    out
}

fn draw(
    svg: &mut String,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    points: &[(i64, f64)],
) -> Result<Vec<Hover>, String> {
    draw_inner(svg, metric, from_ms, to_ms, points).map_err(|e| e.to_string())
}

fn draw_inner<'a>(
    svg: &'a mut String,
    metric: Metric,
    from_ms: i64,
    to_ms: i64,
    points: &[(i64, f64)],
) -> Result<Vec<Hover>, Box<dyn std::error::Error + 'a>> {
    // No fill here: `finish` adds the background as a rect the dark style can recolour.
    let root = SVGBackend::with_string(svg, (WIDTH, HEIGHT)).into_drawing_area();
    let to_ms = to_ms.max(from_ms + 60_000);
    let mut sorted: Vec<(i64, f64)> = points
        .iter()
        .copied()
        .filter(|p| p.0 >= from_ms && p.0 <= to_ms)
        .collect();
    sorted.sort_by_key(|p| p.0);
    let max = sorted.iter().map(|p| p.1).fold(0.0f64, f64::max);
    // Values are drawn in the axis unit (minutes on a minutes axis), so plotters picks
    // round ticks in that unit.
    let (unit, scale) = match metric {
        Metric::TimeLag => {
            let unit = TimeUnit::for_max(max);
            (Some(unit), unit.seconds())
        }
        Metric::OffsetLag => (None, 1.0),
    };
    // Headroom above the highest point; a flat zero line still gets a visible scale, and
    // a few records get whole-number ticks.
    let floor = match metric {
        Metric::TimeLag => 1.0,
        Metric::OffsetLag => 5.0,
    };
    let top = (max * 1.15 / scale).max(floor / scale);
    let y_label = |v: &f64| match unit {
        Some(unit) => format!("{} {}", trim(*v, 2), unit.symbol()),
        None => short_count(*v),
    };
    let mut chart = ChartBuilder::on(&root)
        .margin(12)
        // Room for the half of a time label centred on the last tick.
        .margin_right(28)
        .x_label_area_size(34)
        .y_label_area_size(80)
        .caption(
            metric.label(),
            ("sans-serif", CAPTION_SIZE).into_font().color(&INK),
        )
        .build_cartesian_2d(
            (from_ms..to_ms).with_key_points(ticks(from_ms, to_ms)),
            0f64..top,
        )?;
    chart
        .configure_mesh()
        .y_labels(5)
        .x_label_formatter(&hh_mm)
        .y_label_formatter(&y_label)
        .light_line_style(GRID_LIGHT)
        .bold_line_style(GRID_BOLD)
        .axis_style(AXIS)
        .label_style(("sans-serif", LABEL_SIZE).into_font().color(&INK))
        .draw()?;
    let colour = match metric {
        Metric::TimeLag => TIME_COLOUR,
        Metric::OffsetLag => OFFSET_COLOUR,
    };
    let mut hovers: Vec<(i32, Hover, f64)> = Vec::new();
    if sorted.is_empty() {
        root.draw(&Text::new(
            "no lag recorded in this window yet",
            ((WIDTH / 2) as i32, (HEIGHT / 2) as i32),
            ("sans-serif", LABEL_SIZE)
                .into_font()
                .color(&MUTED)
                .pos(Pos::new(HPos::Center, VPos::Center)),
        ))?;
    } else {
        let scaled = || sorted.iter().map(|&(t, v)| (t, v / scale));
        chart.draw_series(LineSeries::new(scaled(), colour.stroke_width(2)))?;
        chart.draw_series(scaled().map(|p| Circle::new(p, 2, colour.filled())))?;
        for &(t, v) in &sorted {
            let (x, y) = chart.backend_coord(&(t, v / scale));
            let slice = x.div_euclid(HOVER_SLICE_PX);
            if hovers
                .last()
                .is_some_and(|last| last.0 == slice && last.2 >= v)
            {
                continue;
            }
            let value = match metric {
                Metric::TimeLag => human_secs(v),
                Metric::OffsetLag => format!("{} records", full_count(v)),
            };
            let hover = Hover {
                x,
                y,
                title: format!("{} UTC · {value}", hh_mm(&t)),
            };
            match hovers.last_mut() {
                Some(last) if last.0 == slice => *last = (slice, hover, v),
                _ => hovers.push((slice, hover, v)),
            }
        }
    }
    root.present()?;
    Ok(hovers.into_iter().map(|(_, h, _)| h).collect())
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
        assert!(svg.contains("time lag"));
        assert!(
            svg.contains("00:10") && svg.contains("00:50"),
            "x axis labelled in HH:MM: {svg}"
        );
        assert!(svg.contains("\n3 s\n</text>"), "y axis in seconds: {svg}");
        assert!(svg.trim_end().ends_with("</svg>"), "{svg}");
    }

    #[test]
    fn empty_window_says_so() {
        let svg = lag_svg(Metric::OffsetLag, 0, 3_600_000, &[]);
        assert!(svg.contains("no lag recorded"));
        assert!(!svg.contains("<title>"), "no hover targets without points");
    }

    #[test]
    fn durations_read_in_human_units() {
        assert_eq!(human_secs(0.0), "0 s");
        assert_eq!(human_secs(0.42), "0.4 s");
        assert_eq!(human_secs(1.5), "1.5 s");
        assert_eq!(human_secs(45.0), "45 s");
        assert_eq!(human_secs(300.0), "5 min");
        assert_eq!(human_secs(330.0), "5.5 min");
        assert_eq!(human_secs(7_200.0), "2 h");
        assert_eq!(human_secs(9_000.0), "2.5 h");
        assert_eq!(TimeUnit::for_max(119.0), TimeUnit::Seconds);
        assert_eq!(TimeUnit::for_max(600.0), TimeUnit::Minutes);
        assert_eq!(TimeUnit::for_max(10_800.0), TimeUnit::Hours);
    }

    #[test]
    fn counts_read_in_k_and_m() {
        assert_eq!(short_count(0.0), "0");
        assert_eq!(short_count(950.0), "950");
        assert_eq!(short_count(1_500.0), "1.5k");
        assert_eq!(short_count(20_000.0), "20k");
        assert_eq!(short_count(2_250_000.0), "2.25M");
        assert_eq!(full_count(7.0), "7");
        assert_eq!(full_count(1_234.0), "1,234");
        assert_eq!(full_count(12_345_678.0), "12,345,678");
    }

    #[test]
    fn time_axis_unit_follows_the_largest_value() {
        let minutes = lag_svg(
            Metric::TimeLag,
            0,
            3_600_000,
            &[(60_000, 30.0), (120_000, 600.0)],
        );
        assert!(minutes.contains(" min\n</text>"), "minutes axis: {minutes}");
        let hours = lag_svg(Metric::TimeLag, 0, 3_600_000, &[(60_000, 3.0 * 3_600.0)]);
        assert!(hours.contains(" h\n</text>"), "hours axis: {hours}");
        let offsets = lag_svg(Metric::OffsetLag, 0, 3_600_000, &[(60_000, 25_000.0)]);
        assert!(
            offsets.contains("k\n</text>"),
            "offset axis in k: {offsets}"
        );
    }

    #[test]
    fn points_carry_tooltips() {
        let svg = lag_svg(
            Metric::TimeLag,
            0,
            3_600_000,
            &[(60_000, 1.5), (120_000, 3.0), (180_000, 300.0)],
        );
        assert!(svg.contains("<title>00:01 UTC · 1.5 s</title>"), "{svg}");
        assert!(svg.contains("<title>00:02 UTC · 3 s</title>"), "{svg}");
        assert!(svg.contains("<title>00:03 UTC · 5 min</title>"), "{svg}");
        assert_eq!(svg.matches("<title>").count(), 3);
        let hover = svg.find("class=\"hover\"").expect("a hover group");
        assert!(
            hover < svg.rfind("</svg>").expect("closed"),
            "inside the svg"
        );

        let offsets = lag_svg(Metric::OffsetLag, 0, 3_600_000, &[(600_000, 12_345.0)]);
        assert!(
            offsets.contains("<title>00:10 UTC · 12,345 records</title>"),
            "{offsets}"
        );
    }

    #[test]
    fn a_day_of_minutes_gets_few_hover_targets() {
        let day: Vec<(i64, f64)> = (0..1440).map(|m| (m * 60_000, (m % 90) as f64)).collect();
        let svg = lag_svg(Metric::TimeLag, 0, 86_400_000, &day);
        let targets = svg.matches("<title>").count();
        assert!(
            targets > 20 && targets <= (WIDTH as usize) / HOVER_SLICE_PX as usize + 1,
            "{targets} targets"
        );
        // The highest point of a slice keeps its target.
        assert!(svg.contains("01:29 UTC · 89 s"), "peak kept");
    }

    #[test]
    fn the_chart_can_be_restyled() {
        let svg = lag_svg(Metric::TimeLag, 0, 3_600_000, &[(60_000, 2.0)]);
        assert!(svg.starts_with("<svg class=\"lag-chart\""), "{svg}");
        assert!(
            svg.contains("viewBox=\"0 0 600 280\""),
            "scales with its box"
        );
        assert!(svg.contains("<rect class=\"bg\""));
        assert!(svg.contains("prefers-color-scheme: dark"));
        assert_eq!(svg.matches("<svg").count(), 1);
    }
}

//! A run's chart, drawn here as SVG (no script): cumulative metered compute over time, per
//! provider and in total, with the total's lower–upper bound as a band, against the released
//! tranche boundaries and the total budget, with the points where alerts went out and where
//! the run was held for its milestone.

use std::collections::BTreeMap;

use maud::{Markup, html};

use crate::http::console::format;

/// One provider's usage report, as far as the chart needs it (times in unix seconds).
#[derive(Debug, Clone, PartialEq)]
pub struct Report {
    /// The reporting provider.
    pub provider: String,
    /// The period's start.
    pub from: i64,
    /// The period's end: when the figure counts on the chart.
    pub to: i64,
    /// The figure, with its bounds.
    pub flop: f64,
    /// Lower bound.
    pub lower: f64,
    /// Upper bound.
    pub upper: f64,
}

/// What the chart shows.
#[derive(Debug, Clone)]
pub struct Chart<'a> {
    /// The run's usage reports, in any order.
    pub reports: &'a [Report],
    /// Every tranche's end (cumulative FLOP), in order, from the signed permit.
    pub tranche_ends: &'a [f64],
    /// How many tranches are released (the run's `tranche`).
    pub released: usize,
    /// The permit's whole budget.
    pub budget: f64,
    /// The policy's alert percentages of a tranche's end (100: the run is held).
    pub alert_percents: &'a [u32],
}

const W: f64 = 720.0;
const H: f64 = 400.0;
const LEFT: f64 = 64.0;
const RIGHT: f64 = 128.0;
const TOP: f64 = 24.0;
/// Room under the plot for the time axis and the legend.
const BOTTOM: f64 = 64.0;
/// Most points drawn per line; longer series are thinned evenly (their last point kept).
const MAX_POINTS: usize = 1500;
/// Line colours for providers (contrast ≥ 3:1 on white), then repeated.
const PALETTE: &[&str] = &[
    "#0b5cad", "#8a4b00", "#6b2d9c", "#00707a", "#a4161a", "#4d4d4d",
];

/// A cumulative series: (time, value) after each report, starting from zero.
#[derive(Debug, Clone, Default)]
struct Series {
    points: Vec<(i64, f64)>,
}

fn cumulative<'r>(
    start: i64,
    reports: impl Iterator<Item = &'r Report>,
    f: fn(&Report) -> f64,
) -> Series {
    let mut sum = 0.0;
    let mut points = vec![(start, 0.0)];
    for r in reports {
        sum += f(r);
        points.push((r.to, sum));
    }
    Series { points }
}

fn thin(points: &[(f64, f64)]) -> Vec<(f64, f64)> {
    if points.len() <= MAX_POINTS {
        return points.to_vec();
    }
    let step = points.len().div_ceil(MAX_POINTS);
    let mut out: Vec<(f64, f64)> = points.iter().step_by(step).copied().collect();
    if let Some(last) = points.last()
        && out.last() != Some(last)
    {
        out.push(*last);
    }
    out
}

/// The smallest of 1, 2 and 5 × 10^k that is at least `raw`.
fn nice_step(raw: f64) -> f64 {
    if !(raw.is_finite() && raw > 0.0) {
        return 1.0;
    }
    let magnitude = 10f64.powf(raw.log10().floor());
    [1.0, 2.0, 5.0, 10.0]
        .into_iter()
        .map(|m| m * magnitude)
        .find(|s| *s >= raw * (1.0 - 1e-9))
        .unwrap_or(10.0 * magnitude)
}

fn path(points: &[(f64, f64)]) -> String {
    thin(points)
        .iter()
        .map(|(x, y)| format!("{x:.1},{y:.1}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// The chart as an `svg#run-chart` with its title and a description in words.
pub fn render(c: &Chart<'_>) -> Markup {
    let mut sorted: Vec<&Report> = c.reports.iter().collect();
    sorted.sort_by(|a, b| (a.to, &a.provider, a.from).cmp(&(b.to, &b.provider, b.from)));
    let start = sorted.iter().map(|r| r.from).min().unwrap_or(0);
    let end = sorted
        .iter()
        .map(|r| r.to)
        .max()
        .unwrap_or(start + 1)
        .max(start + 1);
    let total = cumulative(start, sorted.iter().copied(), |r| r.flop);
    let lower = cumulative(start, sorted.iter().copied(), |r| r.lower);
    let upper = cumulative(start, sorted.iter().copied(), |r| r.upper);
    let mut by_provider: BTreeMap<&str, Vec<&Report>> = BTreeMap::new();
    for r in &sorted {
        by_provider.entry(r.provider.as_str()).or_default().push(r);
    }
    let providers: Vec<(&str, Series)> = by_provider
        .into_iter()
        .map(|(p, rs)| (p, cumulative(start, rs.into_iter(), |r| r.flop)))
        .collect();

    let released = c.released.min(c.tranche_ends.len());
    let released_end = if released > 0 {
        c.tranche_ends[released - 1]
    } else {
        c.budget
    };
    let used_top = upper
        .points
        .last()
        .map_or(0.0, |p| p.1)
        .max(total.points.last().map_or(0.0, |p| p.1));
    let mut top = (released_end * 1.15).max(used_top * 1.05);
    let budget_shown = c.budget > 0.0 && c.budget <= top * 1.5;
    if budget_shown {
        top = top.max(c.budget * 1.05);
    }
    if !(top.is_finite() && top > 0.0) {
        top = 1.0;
    }
    // Round figures on the axis: a step of 1, 2 or 5 × 10^k, the top a whole number of steps.
    let step = nice_step(top / 5.0);
    let ticks = (top / step).ceil().max(1.0) as u32;
    top = step * f64::from(ticks);
    let plot_w = W - LEFT - RIGHT;
    let plot_h = H - TOP - BOTTOM;
    let x = |t: i64| LEFT + (t - start) as f64 / (end - start) as f64 * plot_w;
    let y = |v: f64| TOP + plot_h - (v / top).clamp(0.0, 1.0) * plot_h;
    let scaled =
        |s: &Series| -> Vec<(f64, f64)> { s.points.iter().map(|(t, v)| (x(*t), y(*v))).collect() };

    let has_band = sorted.iter().any(|r| r.upper > r.flop || r.lower < r.flop);
    let band = if has_band {
        let mut pts = scaled(&upper);
        let mut low = scaled(&lower);
        low.reverse();
        pts.extend(low);
        Some(path(&pts))
    } else {
        None
    };

    // Where the total first reached each alert level of each released tranche.
    let mut marks = Vec::new();
    for (i, end_flop) in c.tranche_ends.iter().take(released).enumerate() {
        let previous = if i == 0 { 0.0 } else { c.tranche_ends[i - 1] };
        for pct in c.alert_percents {
            let level = end_flop * f64::from(*pct) / 100.0;
            if level <= previous {
                continue;
            }
            if let Some((t, v)) = total.points.iter().find(|(_, v)| *v >= level && *v > 0.0) {
                marks.push((i + 1, *pct, *t, *v));
            }
        }
    }

    let description = if sorted.is_empty() {
        "No usage reported yet.".to_owned()
    } else {
        format!(
            "{} in {} report(s) from {} provider(s) between {} and {}; {} of {} tranche(s) released, up to {}; budget {}.",
            format::flop(total.points.last().map_or(0.0, |p| p.1)),
            sorted.len(),
            providers.len(),
            format::utc(start * 1000),
            format::utc(end * 1000),
            released,
            c.tranche_ends.len(),
            format::flop(released_end),
            format::flop(c.budget),
        )
    };
    // The right-hand labels of the lines, pushed apart so that none overlaps the next.
    let mut labels: Vec<(f64, String)> = c
        .tranche_ends
        .iter()
        .take(released)
        .enumerate()
        .map(|(i, e)| {
            (
                y(*e) + 4.0,
                format!(
                    "tranche {}: {}",
                    i + 1,
                    runpermit_compute::format_flop_number(*e)
                ),
            )
        })
        .collect();
    labels.push(if budget_shown {
        (
            y(c.budget) + 4.0,
            format!(
                "budget: {}",
                runpermit_compute::format_flop_number(c.budget)
            ),
        )
    } else {
        (
            TOP + 4.0,
            format!(
                "budget {} ↑",
                runpermit_compute::format_flop_number(c.budget)
            ),
        )
    });
    labels.sort_by(|a, b| b.0.total_cmp(&a.0));
    for i in 1..labels.len() {
        let above = labels[i - 1].0 - 12.0;
        if labels[i].0 > above {
            labels[i].0 = above;
        }
    }
    // Dates when the run spans days, else times of day.
    let long = end - start > 2 * 86_400;
    let date = |t: i64| {
        let text = format::utc(t * 1000);
        if long {
            text.chars().take(10).collect::<String>()
        } else {
            text.chars().skip(5).take(11).collect::<String>()
        }
    };
    html! {
        svg id="run-chart" class="chart" role="img" viewBox={ "0 0 " (W) " " (H) }
            width=(W) height=(H) xmlns="http://www.w3.org/2000/svg"
            aria-labelledby="run-chart-title run-chart-desc" {
            title id="run-chart-title" { "Cumulative metered compute against released tranches and budget" }
            desc id="run-chart-desc" { (description) }
            // Axes and gridlines.
            @for i in 0..=ticks {
                @let v = step * f64::from(i);
                line x1=(LEFT) x2=(W - RIGHT) y1=(format!("{:.1}", y(v))) y2=(format!("{:.1}", y(v))) stroke="#c8c8c8" stroke-width="1" {}
                text x=(LEFT - 6.0) y=(format!("{:.1}", y(v) + 4.0)) text-anchor="end" { (runpermit_compute::format_flop_number(v)) }
            }
            text x=(LEFT - 6.0) y=(TOP - 10.0) text-anchor="end" { "FLOP" }
            line x1=(LEFT) x2=(LEFT) y1=(TOP) y2=(H - BOTTOM) stroke="#4d4d4d" {}
            line x1=(LEFT) x2=(W - RIGHT) y1=(H - BOTTOM) y2=(H - BOTTOM) stroke="#4d4d4d" {}
            @if !sorted.is_empty() {
                @for i in 0..=3i64 {
                    @let t = start + (end - start) * i / 3;
                    text x=(format!("{:.1}", x(t))) y=(H - BOTTOM + 16.0) text-anchor="middle" { (date(t)) }
                }
            }
            // The released tranches' ends, and the budget.
            @for (i, end_flop) in c.tranche_ends.iter().take(released).enumerate() {
                g {
                    line class="tranche-line" x1=(LEFT) x2=(W - RIGHT)
                        y1=(format!("{:.1}", y(*end_flop))) y2=(format!("{:.1}", y(*end_flop)))
                        stroke="#1b6b2f" stroke-width="1.5" stroke-dasharray="6 3" {
                        title { "Tranche " (i + 1) " ends at " (format::flop(*end_flop)) }
                    }
                }
            }
            @if budget_shown {
                g {
                    line class="budget-line" x1=(LEFT) x2=(W - RIGHT)
                        y1=(format!("{:.1}", y(c.budget))) y2=(format!("{:.1}", y(c.budget)))
                        stroke="#a4161a" stroke-width="2" {
                        title { "Budget: " (format::flop(c.budget)) }
                    }
                }
            }
            @for (label_y, label) in &labels {
                text x=(W - RIGHT + 6.0) y=(format!("{label_y:.1}")) { (label) }
            }
            // The usage: the band of the total's bounds, the total, each provider.
            @if let Some(band) = &band {
                polygon class="bound-band" points=(band) fill="#0b5cad" fill-opacity="0.15" stroke="none" {
                    title { "Lower to upper bound of the total" }
                }
            }
            @if !sorted.is_empty() {
                polyline class="total-line" points=(path(&scaled(&total))) fill="none" stroke="#1a1a1a" stroke-width="2.5" {
                    title { "Total: " (format::flop(total.points.last().map_or(0.0, |p| p.1))) }
                }
            }
            @for (i, (provider, series)) in providers.iter().enumerate() {
                polyline class="provider-line" points=(path(&scaled(series))) fill="none"
                    stroke=(PALETTE[i % PALETTE.len()]) stroke-width="1.5" stroke-dasharray=[(i >= PALETTE.len()).then_some("2 2")] {
                    title { (provider) ": " (format::flop(series.points.last().map_or(0.0, |p| p.1))) }
                }
            }
            @for (tranche, pct, t, v) in &marks {
                @let hold = *pct >= 100;
                circle class=(if hold { "hold-point" } else { "alert-point" }) cx=(format!("{:.1}", x(*t))) cy=(format!("{:.1}", y(*v)))
                    r=(if hold { "6" } else { "4.5" }) fill=(if hold { "#a4161a" } else { "#f5b700" }) stroke="#1a1a1a" {
                    title {
                        @if hold { "Held for its milestone: " } @else { "Alert: " }
                        (pct) "% of tranche " (tranche) " reached by " (format::utc(*t * 1000))
                    }
                }
            }
            // The legend, in a row under the time axis.
            @let legend_x = |i: usize| LEFT + 120.0 * i as f64;
            @let legend_y = H - 14.0;
            g class="legend" {
                line x1=(legend_x(0)) x2=(legend_x(0) + 20.0) y1=(legend_y - 4.0) y2=(legend_y - 4.0) stroke="#1a1a1a" stroke-width="2.5" {}
                text x=(legend_x(0) + 24.0) y=(legend_y) { "total" }
                @for (i, (provider, _)) in providers.iter().enumerate().take(4) {
                    line x1=(legend_x(i + 1)) x2=(legend_x(i + 1) + 20.0) y1=(legend_y - 4.0) y2=(legend_y - 4.0)
                        stroke=(PALETTE[i % PALETTE.len()]) stroke-width="1.5" {}
                    text x=(legend_x(i + 1) + 24.0) y=(legend_y) { (provider) }
                }
                @if providers.len() > 4 {
                    text x=(legend_x(5)) y=(legend_y) { "+" (providers.len() - 4) " more (hover a line)" }
                }
            }
            @if sorted.is_empty() {
                text x=(LEFT + plot_w / 2.0) y=(TOP + plot_h / 2.0) text-anchor="middle" { "No usage reported yet" }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn report(provider: &str, seq: i64, flop: f64) -> Report {
        Report {
            provider: provider.into(),
            from: 1_000 + 300 * seq,
            to: 1_300 + 300 * seq,
            flop,
            lower: flop * 0.8,
            upper: flop * 1.1,
        }
    }

    fn count(html: &str, needle: &str) -> usize {
        html.matches(needle).count()
    }

    #[test]
    fn one_line_per_released_tranche_and_marks_where_alerts_went_out() {
        let reports = [
            report("org_cloud_a", 1, 5e24),
            report("org_cloud_b", 1, 3.2e24),
            report("org_cloud_a", 2, 2e24),
        ];
        let ends = [1e25, 4e25, 2e26];
        let chart = |released| {
            render(&Chart {
                reports: &reports,
                tranche_ends: &ends,
                released,
                budget: 2e26,
                alert_percents: &[80, 100],
            })
            .into_string()
        };
        let one = chart(1);
        assert_eq!(count(&one, "class=\"tranche-line\""), 1, "{one}");
        // 8.2e24 reaches 80% of 1e25; 1.02e25 reaches its end: an alert, then a hold.
        assert_eq!(count(&one, "class=\"alert-point\""), 1, "{one}");
        assert_eq!(count(&one, "class=\"hold-point\""), 1, "{one}");
        assert_eq!(count(&one, "class=\"provider-line\""), 2);
        assert_eq!(count(&one, "class=\"total-line\""), 1);
        assert_eq!(count(&one, "class=\"bound-band\""), 1);
        // The budget is far above the first tranche: named, not drawn to scale.
        assert_eq!(count(&one, "class=\"budget-line\""), 0);
        assert!(one.contains("budget 2.00e26"), "{one}");
        let two = chart(2);
        assert_eq!(count(&two, "class=\"tranche-line\""), 2, "{two}");
        let all = chart(3);
        assert_eq!(count(&all, "class=\"tranche-line\""), 3);
        assert_eq!(count(&all, "class=\"budget-line\""), 1);
        for html in [&one, &two, &all] {
            assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
        }
    }

    #[test]
    fn an_empty_run_still_draws_its_tranche_and_names_no_usage() {
        let html = render(&Chart {
            reports: &[],
            tranche_ends: &[1e25, 2e25],
            released: 1,
            budget: 2e25,
            alert_percents: &[80, 100],
        })
        .into_string();
        assert_eq!(count(&html, "class=\"tranche-line\""), 1);
        assert!(html.contains("No usage reported yet"));
        assert!(!html.contains("NaN") && !html.contains("inf"), "{html}");
    }

    #[test]
    fn exact_figures_draw_no_band_and_names_are_escaped() {
        let reports = [Report {
            provider: "<evil>".into(),
            from: 0,
            to: 10,
            flop: 1e24,
            lower: 1e24,
            upper: 1e24,
        }];
        let html = render(&Chart {
            reports: &reports,
            tranche_ends: &[1e25],
            released: 1,
            budget: 1e25,
            alert_percents: &[80, 100],
        })
        .into_string();
        assert_eq!(count(&html, "class=\"bound-band\""), 0);
        assert!(!html.contains("<evil>") && html.contains("&lt;evil&gt;"));
    }

    #[test]
    fn the_axis_steps_are_round() {
        let near = |a: f64, b: f64| (a - b).abs() <= b * 1e-9;
        for (raw, step) in [
            (9.2e24, 1e25),
            (1.5e25, 2e25),
            (3e25, 5e25),
            (1e25, 1e25),
            (0.7, 1.0),
        ] {
            assert!(near(nice_step(raw), step), "{raw}: {}", nice_step(raw));
        }
        assert_eq!(nice_step(0.0), 1.0);
    }

    #[test]
    fn long_series_are_thinned_to_their_shape() {
        let points: Vec<(f64, f64)> = (0..10_000).map(|i| (f64::from(i), f64::from(i))).collect();
        let thinned = thin(&points);
        assert!(thinned.len() <= MAX_POINTS + 1);
        assert_eq!(thinned.first(), points.first());
        assert_eq!(thinned.last(), points.last());
    }
}

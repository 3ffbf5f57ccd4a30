//! The registry's chart, drawn here as SVG (no script): each listed run's FLOP budget, the
//! tranche released and the compute last summarized in the log, on a logarithmic scale,
//! against the training-compute thresholds of the regulatory regimes compiled into
//! `runpermit-compute`.

use maud::{Markup, html};
use runpermit_compute::{Limit, builtin_regimes};

use crate::http::console::format;

/// One run on the chart.
#[derive(Debug, Clone)]
pub struct ChartRun {
    /// Its public name (the run id).
    pub label: String,
    pub budget: f64,
    pub released: f64,
    /// Compute as last summarized in the log (0 when none yet).
    pub metered: f64,
    pub good_standing: bool,
}

/// A training-compute threshold: its value and the regimes' names for it.
#[derive(Debug, Clone, PartialEq)]
pub struct Mark {
    pub flop: f64,
    pub label: String,
}

/// The training-compute thresholds of every built-in regime, one mark per value (regimes
/// sharing a value share the mark), lowest first.
pub fn thresholds() -> Vec<Mark> {
    let mut marks: Vec<Mark> = Vec::new();
    for regime in builtin_regimes() {
        for t in &regime.threshold {
            let Limit::TrainingCompute { flop } = t.limit else {
                continue;
            };
            let flop = flop.get();
            let name = if t.applies_to == runpermit_compute::AppliesTo::All {
                regime.name.clone()
            } else {
                format!("{} (biological data)", regime.name)
            };
            match marks.iter_mut().find(|m| m.flop == flop) {
                Some(m) => {
                    if !m.label.contains(&name) {
                        m.label = format!("{}; {name}", m.label);
                    }
                }
                None => marks.push(Mark { flop, label: name }),
            }
        }
    }
    marks.sort_by(|a, b| a.flop.total_cmp(&b.flop));
    marks
}

const WIDTH: f64 = 760.0;
const LEFT: f64 = 150.0;
const RIGHT: f64 = 16.0;
const ROW: f64 = 18.0;
const LINE: f64 = 14.0;

/// The decades the axis spans: from below the smallest figure to above the largest.
fn decades(runs: &[ChartRun], marks: &[Mark]) -> (i32, i32) {
    let figures = runs
        .iter()
        .flat_map(|r| [r.budget, r.released, r.metered])
        .chain(marks.iter().map(|m| m.flop))
        .filter(|v| v.is_finite() && *v > 0.0);
    let (mut lo, mut hi) = (f64::INFINITY, f64::NEG_INFINITY);
    for v in figures {
        let l = v.log10();
        lo = lo.min(l);
        hi = hi.max(l);
    }
    if !lo.is_finite() {
        return (20, 27);
    }
    let (lo, hi) = (lo.floor() as i32, hi.ceil() as i32);
    (lo, hi.max(lo + 1))
}

/// The chart of `runs` (those listed on the page), with `caption` as its title.
pub fn registry_chart(runs: &[ChartRun], caption: &str) -> Markup {
    let marks = thresholds();
    let (lo, hi) = decades(runs, &marks);
    let top = 8.0 + LINE * marks.len() as f64;
    let height = top + ROW * runs.len().max(1) as f64 + 34.0;
    let span = WIDTH - LEFT - RIGHT;
    let x = |v: f64| -> f64 {
        if !(v.is_finite() && v > 0.0) {
            return LEFT;
        }
        let t = (v.log10() - f64::from(lo)) / f64::from(hi - lo);
        LEFT + t.clamp(0.0, 1.0) * span
    };
    let axis_y = top + ROW * runs.len().max(1) as f64 + 4.0;
    let px = |v: f64| format!("{v:.1}");
    html! {
        svg #registry-chart .chart xmlns="http://www.w3.org/2000/svg" role="img"
            viewBox=(format!("0 0 {WIDTH} {}", px(height))) width=(WIDTH) height=(px(height))
            aria-labelledby="registry-chart-title registry-chart-desc" {
            title #registry-chart-title { (caption) }
            desc #registry-chart-desc {
                "For each run: a grey line to its FLOP budget (dot: green in good standing, red \
                 not), a tick at the tranche released, a blue bar to the compute last \
                 summarized in the log. Dashed lines: regulatory training-compute thresholds. \
                 Logarithmic scale."
            }
            // The thresholds, each labelled on a line of its own at the top.
            @for (i, m) in marks.iter().enumerate() {
                g.threshold {
                    title { (m.label) ": " (format::flop(m.flop)) }
                    line x1=(px(x(m.flop))) x2=(px(x(m.flop))) y1=(px(4.0 + LINE * i as f64 + 4.0))
                        y2=(px(axis_y)) stroke="#8a4b00" stroke-width="1" stroke-dasharray="4 3" {}
                    // Labels right of the middle end at their line, so they stay inside.
                    @let right = x(m.flop) > LEFT + span / 2.0;
                    text x=(px(if right { x(m.flop) - 3.0 } else { x(m.flop) + 3.0 }))
                        y=(px(4.0 + LINE * (i + 1) as f64 - 2.0)) fill="#8a4b00"
                        text-anchor=(if right { "end" } else { "start" }) {
                        (m.label) " " (format::flop(m.flop))
                    }
                }
            }
            @for (i, r) in runs.iter().enumerate() {
                @let y = top + ROW * i as f64 + ROW / 2.0;
                g.run {
                    title {
                        (r.label) ": budget " (format::flop(r.budget)) ", released "
                        (format::flop(r.released)) ", used " (format::flop(r.metered))
                        @if r.good_standing { " (in good standing)" } @else { " (not in good standing)" }
                    }
                    text x=(px(LEFT - 6.0)) y=(px(y + 4.0)) text-anchor="end" {
                        (short(&r.label))
                    }
                    line x1=(px(LEFT)) x2=(px(x(r.budget))) y1=(px(y)) y2=(px(y)) stroke="#8c8c8c" stroke-width="2" {}
                    @if r.metered > 0.0 {
                        rect.metered x=(px(LEFT)) y=(px(y - 3.0)) width=(px(x(r.metered) - LEFT)) height="6" fill="#0b5cad" {}
                    }
                    line.released x1=(px(x(r.released))) x2=(px(x(r.released))) y1=(px(y - 6.0)) y2=(px(y + 6.0)) stroke="#1a1a1a" stroke-width="2" {}
                    circle cx=(px(x(r.budget))) cy=(px(y)) r="4"
                        fill=(if r.good_standing { "#1b6b2f" } else { "#a4161a" }) {}
                }
            }
            line x1=(px(LEFT)) x2=(px(WIDTH - RIGHT)) y1=(px(axis_y)) y2=(px(axis_y)) stroke="#1a1a1a" {}
            @for d in lo..=hi {
                @let dx = LEFT + f64::from(d - lo) / f64::from(hi - lo) * span;
                line x1=(px(dx)) x2=(px(dx)) y1=(px(axis_y)) y2=(px(axis_y + 5.0)) stroke="#1a1a1a" {}
                text x=(px(dx)) y=(px(axis_y + 18.0)) text-anchor="middle" { "1e" (d) }
            }
            text x=(px(WIDTH - RIGHT)) y=(px(axis_y + 31.0)) text-anchor="end" { "FLOP (log scale)" }
        }
    }
}

/// A run id shortened for the chart's labels (the table beside it has the whole id).
fn short(label: &str) -> String {
    if label.chars().count() <= 22 {
        label.to_owned()
    } else {
        let head: String = label.chars().take(21).collect();
        format!("{head}…")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn thresholds_come_from_the_compiled_regimes_one_mark_per_value() {
        let marks = thresholds();
        assert!(
            marks
                .iter()
                .any(|m| m.flop == 1e25 && m.label.contains("EU AI Act"))
        );
        let top = marks.iter().find(|m| m.flop == 1e26).expect("1e26");
        assert!(
            top.label.contains("Executive Order") && top.label.contains("SB 53"),
            "{top:?}"
        );
        assert!(marks.windows(2).all(|w| w[0].flop < w[1].flop));
    }

    #[test]
    fn runs_sit_on_a_log_scale_between_whole_decades() {
        let runs = [ChartRun {
            label: "run_<script>".into(),
            budget: 3e25,
            released: 1e25,
            metered: 2e24,
            good_standing: false,
        }];
        let (lo, hi) = decades(&runs, &thresholds());
        assert!(lo <= 24 && hi >= 26, "{lo}..{hi}");
        let svg = registry_chart(&runs, "Permits").into_string();
        assert!(
            svg.starts_with("<svg class=\"chart\" id=\"registry-chart\""),
            "{svg}"
        );
        assert!(svg.contains("run_&lt;script&gt;"), "labels are escaped");
        assert!(svg.contains("#a4161a"), "not in good standing is red");
        assert!(svg.contains("1e24") && svg.contains("1e26"));
        assert_eq!(
            svg.matches("class=\"threshold\"").count(),
            thresholds().len()
        );
    }
}

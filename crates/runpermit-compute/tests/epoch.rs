//! Validates the estimator against Epoch AI's independently produced model table
//! ("Data on AI Models", CC BY 4.0), read from `../shared/data/epoch/` beside the checkout
//! (or `RUNPERMIT_EPOCH_DIR`).
//!
//! A plain `main` (harness = false) so that the coverage and agreement figures are printed on
//! every run, not only on failure. Exit status 1 when a bar is missed.
//!
//! The bars (issue 2):
//! - operation counting: within 10% of Epoch's figure for ≥ 90% of the rows whose method is
//!   operation counting and whose parameters and dataset size are given, after the documented
//!   exclusions below;
//! - hardware method: within 25% for ≥ 80% of the rows with hardware, quantity, hours and
//!   utilization given;
//! - every accelerator named in a row above 10^23 FLOP resolves in the hardware table.

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

use runpermit_compute::{
    EstimateInput, Flop, HardwareInput, HardwareTable, Precision, builtin_regimes, estimate,
};

type Row = BTreeMap<String, String>;

const OPERATION_COUNTING_TOLERANCE: f64 = 0.10;
const OPERATION_COUNTING_BAR: f64 = 0.90;
const HARDWARE_TOLERANCE: f64 = 0.25;
const HARDWARE_BAR: f64 = 0.80;
/// Fewest rows a bar may be judged on, so that exclusions cannot empty a comparison.
/// Epoch's frontier table has 9 transformer-era, dense, single-method counting rows.
const MIN_ROWS: usize = 8;

/// The Transformer paper (2017-06-12): 6·N·D describes transformers trained on tokens. Earlier
/// networks (convolutional, recurrent, small MLPs) share weights across positions or count
/// examples rather than tokens, so FLOP per example is not 6·N.
const TRANSFORMER_ERA: &str = "2017-06-12";

/// Rows excluded by name, with why. Each is a row where Epoch's figure is not
/// 6 · parameters · (dataset size × epochs) of the row's own columns, so the estimator is
/// given inputs that do not describe the run Epoch counted.
const EXCLUDED_OPERATION_COUNTING: &[(&str, &str)] = &[
    (
        "XLM-RoBERTa",
        "Epoch counts tokens seen as updates × batch × sequence length, not the listed corpus size",
    ),
    (
        "Megatron-LM (8.3B)",
        "Epoch's figure is a third-party one; tokens seen (157B) differ from corpus × epochs",
    ),
    (
        "T5-11B",
        "Epoch uses the figure published in the FLAN paper; the listed dataset is the C4 corpus",
    ),
];

fn main() -> ExitCode {
    let Some(dir) = epoch_dir() else {
        return ExitCode::SUCCESS;
    };
    let frontier = read_csv(&dir.join("frontier_ai_models.csv"));
    let notable = read_csv(&dir.join("notable_ai_models.csv"));
    let mut failed = false;
    failed |= !operation_counting(&frontier, &notable);
    failed |= !hardware_method(&frontier, &notable);
    failed |= !hardware_coverage(&frontier, &notable);
    println!(
        "Reference data: Epoch AI, \"Data on AI Models\" (CC BY 4.0), https://epoch.ai/data/ai-models"
    );
    if failed {
        println!("epoch validation: FAILED");
        ExitCode::FAILURE
    } else {
        println!("epoch validation: all bars met");
        ExitCode::SUCCESS
    }
}

/// Where Epoch's CSV files are. Outside CI a missing directory is reported and skipped (a
/// fresh clone on its own has no `shared/`); in CI (`CI` set) it is a failure.
fn epoch_dir() -> Option<PathBuf> {
    let dir = std::env::var_os("RUNPERMIT_EPOCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| {
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../../../shared/data/epoch")
        });
    if dir.join("notable_ai_models.csv").is_file() {
        return Some(dir);
    }
    let message = format!(
        "Epoch AI data not found at {} (set RUNPERMIT_EPOCH_DIR to the folder holding notable_ai_models.csv)",
        dir.display()
    );
    if std::env::var_os("CI").is_some() {
        panic!("{message}");
    }
    println!("epoch validation: SKIPPED: {message}");
    None
}

fn read_csv(path: &Path) -> Vec<Row> {
    let mut reader =
        csv::Reader::from_path(path).unwrap_or_else(|e| panic!("reading {}: {e}", path.display()));
    let headers = reader.headers().expect("CSV header").clone();
    reader
        .records()
        .map(|r| {
            let r = r.unwrap_or_else(|e| panic!("{}: {e}", path.display()));
            headers
                .iter()
                .zip(r.iter())
                .map(|(h, v)| (h.to_owned(), v.trim().to_owned()))
                .collect()
        })
        .collect()
}

fn number(row: &Row, column: &str) -> Option<f64> {
    row.get(column)?
        .parse::<f64>()
        .ok()
        .filter(|v| v.is_finite() && *v > 0.0)
}

fn text<'a>(row: &'a Row, column: &str) -> &'a str {
    row.get(column).map(String::as_str).unwrap_or("")
}

fn within(ours: f64, theirs: f64, tolerance: f64) -> bool {
    (ours / theirs - 1.0).abs() <= tolerance
}

/// Every model's training compute by name, from both tables (for base-model lineage).
fn compute_by_model(frontier: &[Row], notable: &[Row]) -> BTreeMap<String, f64> {
    frontier
        .iter()
        .chain(notable)
        .filter_map(|r| {
            Some((
                text(r, "Model").to_owned(),
                number(r, "Training compute (FLOP)")?,
            ))
        })
        .collect()
}

/// The base model's compute when the row describes a fine-tune: Epoch fills
/// `Finetune compute (FLOP)` when the row's own data columns describe the fine-tuning stage
/// and its total is base plus fine-tune.
fn lineage(row: &Row, computes: &BTreeMap<String, f64>) -> Option<Flop> {
    number(row, "Finetune compute (FLOP)")?;
    let base = number(row, "Base model compute")
        .or_else(|| computes.get(text(row, "Base model")).copied())?;
    Flop::new(base).ok()
}

fn is_mixture_of_experts(row: &Row) -> bool {
    let notes = format!(
        "{} {}",
        text(row, "Parameters notes"),
        text(row, "Training compute notes")
    )
    .to_lowercase();
    [
        "mixture-of-experts",
        "mixture of experts",
        "moe",
        "activated parameters",
        "active parameters",
    ]
    .iter()
    .any(|k| notes.contains(k))
}

fn blends_methods(row: &Row) -> bool {
    let notes = text(row, "Training compute notes").to_lowercase();
    notes.contains("geometric mean") || notes.contains("sqrt(")
}

fn operation_counting(frontier: &[Row], notable: &[Row]) -> bool {
    let computes = compute_by_model(frontier, notable);
    let selected: Vec<&Row> = frontier
        .iter()
        .filter(|r| text(r, "Training compute estimation method").contains("Operation counting"))
        .filter(|r| {
            number(r, "Parameters").is_some()
                && number(r, "Training dataset size (total)").is_some()
                && number(r, "Training compute (FLOP)").is_some()
        })
        .collect();
    let mut excluded: BTreeMap<&str, Vec<String>> = BTreeMap::new();
    let mut agree = 0;
    let mut compared = 0;
    let mut disagreements = Vec::new();
    for row in &selected {
        let model = text(row, "Model");
        let reason = if text(row, "Publication date") < TRANSFORMER_ERA
            || !text(row, "Domain").contains("Language")
        {
            Some(
                "not a transformer language model (pre-2017 or non-language): FLOP per example is not 6·N",
            )
        } else if is_mixture_of_experts(row) {
            Some(
                "mixture-of-experts: Epoch lists total parameters, and has no active-parameter column",
            )
        } else if blends_methods(row) {
            Some("Epoch's figure is a geometric mean of a hardware and a counting estimate")
        } else {
            EXCLUDED_OPERATION_COUNTING
                .iter()
                .find(|(m, _)| *m == model)
                .map(|(_, why)| *why)
        };
        if let Some(reason) = reason {
            excluded.entry(reason).or_default().push(model.to_owned());
            continue;
        }
        let input = EstimateInput {
            parameters: number(row, "Parameters"),
            tokens: number(row, "Training dataset size (total)"),
            epochs: number(row, "Epochs"),
            base_model_flop: lineage(row, &computes),
            ..Default::default()
        };
        let ours = estimate(&input, HardwareTable::builtin(), builtin_regimes())
            .unwrap_or_else(|e| panic!("{model}: {e}"))
            .flop
            .get();
        let theirs = number(row, "Training compute (FLOP)").unwrap_or(f64::NAN);
        compared += 1;
        if within(ours, theirs, OPERATION_COUNTING_TOLERANCE) {
            agree += 1;
        } else {
            disagreements.push(format!("{model}: ours {ours:.3e}, Epoch {theirs:.3e}"));
        }
    }
    let share = agree as f64 / compared as f64;
    println!(
        "operation counting: {} rows with method, parameters and dataset size; {} excluded; \
         {agree}/{compared} = {:.1}% within {:.0}% of Epoch (bar {:.0}%)",
        selected.len(),
        selected.len() - compared,
        share * 100.0,
        OPERATION_COUNTING_TOLERANCE * 100.0,
        OPERATION_COUNTING_BAR * 100.0
    );
    for (reason, models) in &excluded {
        println!(
            "  excluded ({}): {reason}: {}",
            models.len(),
            models.join(", ")
        );
    }
    for d in &disagreements {
        println!("  outside tolerance: {d}");
    }
    compared >= MIN_ROWS && share >= OPERATION_COUNTING_BAR
}

/// Maps Epoch's `Numerical format` to a table precision, when it names one.
fn precision(row: &Row) -> Option<Precision> {
    let format = text(row, "Numerical format").to_ascii_lowercase();
    ["fp8", "bf16", "fp16", "tf32", "fp32"]
        .into_iter()
        .find(|p| format.contains(p))
        .and_then(|p| p.parse().ok())
}

fn hardware_method(frontier: &[Row], notable: &[Row]) -> bool {
    let computes = compute_by_model(frontier, notable);
    let mut seen = BTreeSet::new();
    let mut compared = 0;
    let mut agree = 0;
    let mut disagreements = Vec::new();
    for row in notable.iter().chain(frontier) {
        let model = text(row, "Model");
        let hardware = text(row, "Training hardware");
        let (Some(quantity), Some(hours), Some(mfu), Some(theirs)) = (
            number(row, "Hardware quantity"),
            number(row, "Training time (hours)"),
            number(row, "Hardware utilization (MFU)"),
            number(row, "Training compute (FLOP)"),
        ) else {
            continue;
        };
        if hardware.is_empty() || !seen.insert(model.to_owned()) {
            continue;
        }
        assert!(
            !hardware.contains(','),
            "{model}: several accelerator types: {hardware}"
        );
        let input = EstimateInput {
            hardware: Some(HardwareInput {
                accelerator: hardware.to_owned(),
                count: quantity.round() as u64,
                hours,
                utilization: Some(mfu.min(1.0)),
                utilization_low: None,
                utilization_high: None,
                precision: precision(row),
            }),
            base_model_flop: lineage(row, &computes),
            ..Default::default()
        };
        let ours = match estimate(&input, HardwareTable::builtin(), builtin_regimes()) {
            Ok(e) => e.flop.get(),
            Err(e) => panic!("{model}: {e}"),
        };
        compared += 1;
        if within(ours, theirs, HARDWARE_TOLERANCE) {
            agree += 1;
        } else {
            disagreements.push(format!(
                "{model} ({hardware}): ours {ours:.3e}, Epoch {theirs:.3e} (×{:.2})",
                ours / theirs
            ));
        }
    }
    let share = agree as f64 / compared as f64;
    println!(
        "hardware method: {compared} rows with hardware, quantity, hours and utilization; \
         {agree}/{compared} = {:.1}% within {:.0}% of Epoch (bar {:.0}%)",
        share * 100.0,
        HARDWARE_TOLERANCE * 100.0,
        HARDWARE_BAR * 100.0
    );
    for d in &disagreements {
        println!("  outside tolerance: {d}");
    }
    compared >= MIN_ROWS && share >= HARDWARE_BAR
}

fn hardware_coverage(frontier: &[Row], notable: &[Row]) -> bool {
    let table = HardwareTable::builtin();
    let mut all = BTreeSet::new();
    let mut above = BTreeSet::new();
    for row in frontier.iter().chain(notable) {
        let big = number(row, "Training compute (FLOP)").is_some_and(|c| c > 1e23);
        for name in text(row, "Training hardware").split(',').map(str::trim) {
            if name.is_empty() {
                continue;
            }
            all.insert(name.to_owned());
            if big {
                above.insert(name.to_owned());
            }
        }
    }
    let resolves = |n: &String| table.lookup(n).is_ok();
    let missing_above: Vec<&String> = above.iter().filter(|n| !resolves(n)).collect();
    let missing_all: Vec<&String> = all.iter().filter(|n| !resolves(n)).collect();
    println!(
        "hardware table: {}/{} accelerator names in rows above 1e23 FLOP resolve; {}/{} of all names; {} entries",
        above.len() - missing_above.len(),
        above.len(),
        all.len() - missing_all.len(),
        all.len(),
        table.accelerators().len()
    );
    for n in &missing_all {
        println!("  unresolved: {n}");
    }
    missing_above.is_empty()
}

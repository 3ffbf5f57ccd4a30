//! What the gates would meter for each example plan if its run ran exactly as planned, set
//! beside what the plan estimated: the ratio metered ÷ planned, by scheduler accounting with
//! the permit's accounting basis (central, lower, upper) and, for comparison, without a basis
//! (every accelerator-second at the chip's highest peak: how runs were counted before claim
//! set 3).
//!
//! ```sh
//! cargo run -p runpermit --example metered_vs_planned [PLAN.toml …]
//! ```
//!
//! Without arguments it reads every `examples/plans/*.toml`. Plans without a cluster
//! (`[compute]`) have no accelerator-time to meter and are listed as such.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use runpermit_compute::{AccountingBasis, HardwareTable, builtin_regimes, estimate};
use runpermit_gate::scheduler_accounting;
use runpermit_policy::RunPlan;

fn main() -> Result<()> {
    let mut paths: Vec<PathBuf> = std::env::args().skip(1).map(PathBuf::from).collect();
    if paths.is_empty() {
        let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/plans");
        for entry in std::fs::read_dir(&dir).with_context(|| format!("{}", dir.display()))? {
            let path = entry?.path();
            if path.extension().is_some_and(|e| e == "toml") {
                paths.push(path);
            }
        }
        paths.sort();
    }
    println!(
        "{:<16} {:>11} {:>11} {:>11} | {:>8} {:>8} {:>8} | {:>9} {:>9}",
        "plan", "planned", "6·N·D", "metered", "central", "lower", "upper", "no basis", "6ND÷met."
    );
    for path in paths {
        let name = path.file_stem().unwrap_or_default().to_string_lossy();
        let text = std::fs::read_to_string(&path)?;
        let plan = RunPlan::from_toml(&text).map_err(|e| anyhow::anyhow!("{name}: {e:?}"))?;
        let est = estimate(
            &plan.estimate_input(),
            HardwareTable::builtin(),
            builtin_regimes(),
        )
        .map_err(|e| anyhow::anyhow!("{name}: {e}"))?;
        let (Some(compute), Some(hw)) = (&plan.compute, &est.hardware) else {
            println!("{name:<16} (no cluster: nothing to meter by accelerator-time)");
            continue;
        };
        let basis = AccountingBasis::of_estimate(&est, Some(plan.active_parameters()));
        let chip = HardwareTable::builtin().lookup(&compute.accelerator)?;
        let seconds = compute.accelerators as f64 * compute.duration_days * 86_400.0;
        let with = scheduler_accounting(chip, seconds, Some(&basis))?;
        let without = scheduler_accounting(chip, seconds, None)?;
        let planned = hw.flop.get();
        let ops = est
            .operation_counting
            .as_ref()
            .map(|o| o.training_flop.get());
        println!(
            "{name:<16} {:>11.3e} {:>11} {:>11.3e} | {:>8.4} {:>8.4} {:>8.4} | {:>9.4} {:>9}",
            planned,
            ops.map_or("—".to_owned(), |o| format!("{o:.3e}")),
            with.flop.get(),
            with.flop.get() / planned,
            with.lower.get() / planned,
            with.upper.get() / planned,
            without.flop.get() / planned,
            ops.map_or("—".to_owned(), |o| format!("{:.3}", o / with.flop.get())),
        );
    }
    println!(
        "\nplanned: the plan's hardware-method central figure (accelerators × duration × peak at \
         its precision × its utilization);\nmetered: scheduler accounting of the same \
         accelerator-seconds with the permit's basis; columns central/lower/upper are ÷ planned;\n\
         no basis: the same seconds at the chip's highest peak, as before claim set 3, ÷ planned."
    );
    Ok(())
}

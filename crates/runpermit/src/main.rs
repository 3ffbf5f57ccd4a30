//! `runpermit`: parses the command line, runs one subcommand, maps the outcome to an exit
//! code. 0: success; 1: the command ran and failed; 2: the command line is wrong.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod estimate;
mod serve;
mod usage;

use usage::UsageError;

/// Permits, compute metering and a public log for frontier AI training runs.
#[derive(Debug, Parser)]
#[command(name = "runpermit", version, propagate_version = true)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Estimate a training run's compute and the regulatory thresholds it crosses.
    ///
    /// Operation counting: --params and --tokens (6·N·D; --moe-active-params, --epochs,
    /// --synthetic-*, --additional-flop add terms). Hardware method: --chip, --count and
    /// --days or --hours (accelerators × peak FLOP/s × time × --mfu). Give either or both;
    /// with both, a warning says when they differ by more than 2×. --base-model-flop makes
    /// the estimate cumulative over a fine-tune's lineage.
    Estimate(Box<estimate::EstimateArgs>),
    /// Run the licensing authority's HTTP service.
    Serve(serve::ServeArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Estimate(args) => estimate::run(*args),
        Command::Serve(args) => serve::run(args),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(err) => {
            if let Some(usage) = err.downcast_ref::<UsageError>() {
                eprintln!("error: {usage}");
                ExitCode::from(2)
            } else {
                eprintln!("error: {err:#}");
                ExitCode::from(1)
            }
        }
    }
}

//! `runpermit`: parses the command line, runs one subcommand, maps the outcome to an exit
//! code. 0: success; 1: the command ran and failed; 2: the command line is wrong.

use std::process::ExitCode;

use clap::{Parser, Subcommand};

mod admin;
mod apply;
mod client;
mod enforce;
mod estimate;
mod gate;
mod log;
mod oversight;
mod permit;
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
    /// Run the licensing authority's HTTP service (creates its database, signing key and
    /// bootstrap admin token on first start).
    Serve(serve::ServeArgs),
    /// Create the authority's database, signing key and bootstrap admin token, without serving.
    Init(serve::AuthorityArgs),
    /// Manage the authority's permit-signing key.
    #[command(subcommand)]
    Key(KeyCommand),
    /// Apply for a permit with a run plan (TOML or JSON).
    Apply(apply::ApplyArgs),
    /// List, show, submit, update, withdraw or appeal applications.
    Applications(apply::ApplicationsArgs),
    /// Record a review decision on an application (authority reviewers).
    Review(apply::ReviewArgs),
    /// Fetch permits and verify them offline.
    Permit(permit::PermitArgs),
    /// Audit the public transparency log: verify it, or print inclusion proofs.
    Log(log::LogArgs),
    /// The compute provider's gate: admission decisions for jobs under permits.
    Gate(gate::GateArgs),
    /// Follow permitted runs as they train: usage, milestones, pause, resume, revoke.
    Run(oversight::RunArgs),
    /// Report incidents and their follow-ups; list deadlines.
    Incident(oversight::IncidentArgs),
    /// Know-your-customer reports of unpermitted large jobs, and split-run flags.
    Kyc(oversight::KycArgs),
    /// Manage organizations and their members.
    Org(admin::OrgArgs),
    /// Manage API tokens.
    Token(admin::TokenArgs),
    /// Show who the current token belongs to.
    Whoami(admin::WhoamiArgs),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Replace the signing key; the retired key stays in the JWKS until its permits expire.
    Rotate(serve::AuthorityArgs),
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli.command) {
        Ok(code) => ExitCode::from(code),
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

/// Runs one subcommand; returns the exit status it asks for (0 unless it decides otherwise).
fn run(command: Command) -> anyhow::Result<u8> {
    let done = |result: anyhow::Result<()>| result.map(|()| 0);
    match command {
        Command::Estimate(args) => done(estimate::run(*args)),
        Command::Serve(args) => done(serve::run(args)),
        Command::Init(args) => done(serve::init(args)),
        Command::Key(KeyCommand::Rotate(args)) => done(serve::rotate(args)),
        Command::Apply(args) => done(apply::apply(args)),
        Command::Applications(args) => done(apply::applications(args)),
        Command::Review(args) => done(apply::review(args)),
        Command::Permit(args) => done(permit::run(args)),
        Command::Log(args) => done(log::run(args)),
        Command::Gate(args) => gate::run(args),
        Command::Run(args) => done(oversight::run(args)),
        Command::Incident(args) => done(oversight::incident(args)),
        Command::Kyc(args) => done(oversight::kyc(args)),
        Command::Org(args) => done(admin::org(args)),
        Command::Token(args) => done(admin::token(args)),
        Command::Whoami(args) => done(admin::whoami(args)),
    }
}

/// The system clock in unix seconds: the one place the CLI reads the time.
pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

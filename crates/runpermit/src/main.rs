//! `runpermit`: parses the command line, runs one subcommand, maps the outcome to an exit
//! code. 0: success; 1: the command ran and failed; 2: the command line is wrong; 141: its
//! stdout was closed before it finished (`runpermit … | head -1`). With `--json`, a failure is
//! one JSON object on stderr (`output::fail`).

use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};

// `println!`, `print!` and `eprintln!` for every module below: std's panic when the pipe they
// write to is closed (`runpermit … | head -1`); these end the command quietly instead, with
// status 141 as SIGPIPE ends other tools (`output::stdout`). Defined before the modules so
// that they shadow std's in all of them.
macro_rules! println {
    () => { $crate::output::stdout(format_args!("\n")) };
    ($($arg:tt)*) => { $crate::output::stdout(format_args!("{}\n", format_args!($($arg)*))) };
}
macro_rules! print {
    ($($arg:tt)*) => { $crate::output::stdout(format_args!($($arg)*)) };
}
macro_rules! eprintln {
    ($($arg:tt)*) => { $crate::output::stderr(format_args!("{}\n", format_args!($($arg)*))) };
}

mod access;
mod admin;
mod apply;
mod args;
mod client;
mod enforce;
mod estimate;
mod gate;
mod gpu_check;
mod log;
mod models;
mod output;
mod permit;
mod runs;
mod serve;
mod view;
mod witness;

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
    Init(SetupArgs),
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
    Run(runs::RunArgs),
    /// Report incidents and their follow-ups; list deadlines.
    Incident(runs::IncidentArgs),
    /// Know-your-customer reports of unpermitted large jobs, and split-run flags.
    Kyc(runs::KycArgs),
    /// The public model registry: models permitted runs produced.
    Model(models::ModelArgs),
    /// Structured access to registered models: applications, grants, and the gateway.
    Access(access::AccessArgs),
    /// Manage organizations and their members.
    Org(admin::OrgArgs),
    /// Manage API tokens.
    Token(admin::TokenArgs),
    /// Show who the current token belongs to.
    Whoami(admin::WhoamiArgs),
    /// Run a transparency-log witness: check each new checkpoint of the logs it follows
    /// against the last one it cosigned, and cosign it (C2SP tlog-witness).
    Witness(witness::WitnessArgs),
}

#[derive(Debug, Subcommand)]
enum KeyCommand {
    /// Replace the signing key; the retired key stays in the JWKS until its permits expire.
    Rotate(SetupArgs),
}

/// `runpermit init` and `runpermit key rotate` flags.
#[derive(Debug, Args)]
struct SetupArgs {
    #[command(flatten)]
    authority: serve::AuthorityArgs,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

fn main() -> ExitCode {
    // Read from the raw arguments, so that errors found while parsing are JSON too.
    let json = output::wants_json(std::env::args_os());
    let cli = match Cli::try_parse() {
        Ok(cli) => cli,
        Err(err) if json && err.use_stderr() => return output::fail_parse_json(&err),
        Err(err) => err.exit(),
    };
    let code = match run(cli.command) {
        Ok(code) => ExitCode::from(code),
        Err(err) => output::fail(&err, json),
    };
    output::flush();
    code
}

/// Runs one subcommand; returns the exit status it asks for (0 unless it decides otherwise).
fn run(command: Command) -> anyhow::Result<u8> {
    let done = |result: anyhow::Result<()>| result.map(|()| 0);
    match command {
        Command::Estimate(args) => done(estimate::run(*args)),
        Command::Serve(args) => done(serve::run(args)),
        Command::Init(args) => done(serve::init(args.authority, args.json)),
        Command::Key(KeyCommand::Rotate(args)) => done(serve::rotate(args.authority, args.json)),
        Command::Apply(args) => done(apply::apply(args)),
        Command::Applications(args) => done(apply::applications(args)),
        Command::Review(args) => done(apply::review(args)),
        Command::Permit(args) => done(permit::run(args)),
        Command::Log(args) => done(log::run(args)),
        Command::Gate(args) => gate::run(args),
        Command::Run(args) => done(runs::run(args)),
        Command::Incident(args) => done(runs::incident(args)),
        Command::Kyc(args) => done(runs::kyc(args)),
        Command::Model(args) => done(models::model(args)),
        Command::Access(args) => access::run(args),
        Command::Org(args) => done(admin::org(args)),
        Command::Token(args) => done(admin::token(args)),
        Command::Whoami(args) => done(admin::whoami(args)),
        Command::Witness(args) => done(witness::run(args)),
    }
}

/// The system clock in unix seconds: the one place the CLI reads the time.
pub(crate) fn now_unix() -> i64 {
    time::OffsetDateTime::now_utc().unix_timestamp()
}

#[cfg(test)]
mod tests {
    use clap::CommandFactory;

    use super::Cli;

    /// Every command that answers and exits takes `--json`; the two servers, which run until
    /// stopped, log JSON with `RUNPERMIT_LOG_FORMAT=json` instead.
    #[test]
    fn every_command_takes_json() {
        fn leaves(command: &clap::Command, path: String, out: &mut Vec<(String, bool)>) {
            let subcommands: Vec<&clap::Command> = command
                .get_subcommands()
                .filter(|c| c.get_name() != "help")
                .collect();
            for sub in &subcommands {
                leaves(sub, format!("{path} {}", sub.get_name()), out);
            }
            if subcommands.is_empty() {
                let json = command.get_arguments().any(|a| a.get_id() == "json");
                out.push((path, json));
            }
        }
        let mut cli = Cli::command();
        // Global flags (the client's --json) reach subcommands when the command is built.
        cli.build();
        let mut all = Vec::new();
        leaves(&cli, "runpermit".to_owned(), &mut all);
        let servers = [
            "runpermit serve",
            "runpermit gate serve",
            "runpermit access gateway",
            "runpermit witness serve",
        ];
        // Commands whose only output is one JSON line.
        let json_only = ["runpermit gate gpu-check"];
        let missing: Vec<&str> = all
            .iter()
            .filter(|(path, json)| {
                !json && !servers.contains(&path.as_str()) && !json_only.contains(&path.as_str())
            })
            .map(|(path, _)| path.as_str())
            .collect();
        assert!(missing.is_empty(), "without --json: {missing:?}");
        assert!(all.len() > 40, "{all:?}");
    }
}

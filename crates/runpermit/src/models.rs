//! `runpermit model`: the public model registry, and registration by a run's developer.

use anyhow::Result;
use clap::{Args, Subcommand};
use runpermit_api::models::{ModelView, NewModel};

use crate::args::ArgError;
use crate::client::{Client, ClientArgs};
use crate::view::{flop, show};

/// `runpermit model`.
#[derive(Debug, Args)]
pub struct ModelArgs {
    #[command(subcommand)]
    command: ModelCommand,
    #[command(flatten)]
    client: ClientArgs,
}

#[derive(Debug, Subcommand)]
enum ModelCommand {
    /// Register a model a permitted run produced (the run's developer): audited and written
    /// to the public log.
    Register {
        /// The model's public name, unique within your organization.
        #[arg(long)]
        name: String,
        /// The run that trained it.
        #[arg(long)]
        run: String,
        /// `sha256:<hex>` of the weights checkpoint.
        #[arg(long, value_name = "DIGEST")]
        checkpoint_digest: String,
        /// The milestone report whose checkpoint it is.
        #[arg(long, value_name = "MILESTONE")]
        milestone: Option<String>,
        /// Cumulative training compute of the checkpoint [default: the run's metered central
        /// estimate].
        #[arg(long, value_name = "FLOP")]
        flop: Option<String>,
        /// How you plan to release it, in words.
        #[arg(long, value_name = "TEXT")]
        release_plan: String,
    },
    /// List the registered models (public), newest first.
    List,
    /// Show a registered model (public).
    Show {
        /// Model id (mdl_…).
        id: String,
    },
}

fn print_model(m: &ModelView) {
    println!("model {}  {}", m.id, m.name);
    println!(
        "  developer   {}  run {}  permit {}",
        m.org_id, m.run_id, m.permit_id
    );
    if let Some(milestone) = m.milestone_id.as_deref().filter(|id| !id.is_empty()) {
        println!("  milestone   {milestone}");
    }
    println!("  checkpoint  {}", m.checkpoint_digest);
    println!("  compute     {}", flop(m.cumulative_flop));
    println!("  release     {}", m.release_plan);
    println!("  registered  {}", m.registered_at);
}

/// Runs `runpermit model`.
pub fn model(args: ModelArgs) -> Result<()> {
    let client = Client::new(&args.client)?;
    let json = args.client.json;
    match args.command {
        ModelCommand::Register {
            name,
            run,
            checkpoint_digest,
            milestone,
            flop,
            release_plan,
        } => {
            let cumulative_flop = flop
                .map(|f| {
                    f.parse::<runpermit_compute::Flop>()
                        .map_err(|e| ArgError(format!("--flop {f:?}: {e}")))
                })
                .transpose()?;
            let m: ModelView = client.post(
                "/v1/models",
                &NewModel {
                    name,
                    run_id: run,
                    checkpoint_digest,
                    milestone_id: milestone,
                    cumulative_flop,
                    release_plan,
                },
                &[],
            )?;
            show(json, &m, print_model)
        }
        ModelCommand::List => {
            let list: Vec<ModelView> = client.get("/v1/models")?;
            show(json, &list, |list| list.iter().for_each(print_model))
        }
        ModelCommand::Show { id } => {
            let m: ModelView = client.get(&format!("/v1/models/{id}"))?;
            show(json, &m, print_model)
        }
    }
}

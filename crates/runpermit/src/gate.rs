//! `runpermit gate check`: the provider's admission decision for one job, for scripts and
//! scheduler hooks. Exit status 0: allowed; 1: refused, whatever the code (the reason on
//! stderr); 2: no decision was made (a bad flag, or a file that cannot be read or used).
//!
//! The decision itself is runpermit-gate's `Gate::decide` (pure); this module reads the gate's
//! configuration and pinned keys, fetches the authority's signed status list (keeping the
//! newest one it accepted beside the configuration, so that an older list is never accepted
//! again, even across runs), and maps the decision to an exit status.

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use runpermit_compute::HardwareTable;
use runpermit_gate::{Decision, Gate, GateConfig, JobRequest, PermitEvidence, TrustAnchors, Usage};
use runpermit_permit::Jwks;

use crate::args::ArgError as UsageError;

/// `runpermit gate`.
#[derive(Debug, Args)]
pub struct GateArgs {
    #[command(subcommand)]
    command: GateCommand,
}

#[derive(Debug, Subcommand)]
enum GateCommand {
    /// Decide whether one job may run: exit 0 allow, 1 deny (reason on stderr), 2 error.
    ///
    /// Exit status: 0 when the gate allows the job (code below_threshold or permitted); 1
    /// when it refuses it, whatever the code: unknown_cluster and invalid_request included,
    /// and status_list_missing or status_list_stale when no fresh status list could be had
    /// (it fails closed); 2 when it made no decision: a bad flag, or a configuration, JWKS,
    /// permit, proof or --status-list file that cannot be read or is not valid (the error on
    /// stderr). With --json, stdout holds the decision whenever the status is 0 or 1.
    Check(CheckArgs),
    /// Run the gate as a service: `POST /v1/decide` (JobRequest → Decision) and
    /// `POST /v1/admission` (Kubernetes AdmissionReview v1), polling the authority's status
    /// list; with `[metering]` in the configuration, meter usage and ship signed usage
    /// reports to the authority (`GET /v1/metering` shows how it goes). See
    /// integrations/kubernetes/ and integrations/slurm/.
    Serve(ServeArgs),
    /// Act on running work under permits the status list shows not in good standing:
    /// suspend their running Slurm jobs and hold their pending ones (one pass; run it from
    /// cron or a timer). Exit 0 when every action succeeded, 1 otherwise.
    Enforce(EnforceArgs),
    /// Show what NVML sees on this machine: GPUs, utilization, energy, power and clocks
    /// (what the `nvml` metering source reads). Exit 1 when NVML is unavailable.
    Nvml(NvmlArgs),
    /// Check the `nvml` metering method on a real GPU against a workload of known FLOP
    /// (run through scripts/gpu-check): one JSON line. Exit 0 pass, 1 fail, 2 could not
    /// run, 3 skipped (no GPU, or no PyTorch or CuPy for the workload).
    GpuCheck(crate::gpu_check::GpuCheckArgs),
}

/// `runpermit gate nvml` flags.
#[derive(Debug, Args)]
struct NvmlArgs {
    /// Print as JSON.
    #[arg(long)]
    json: bool,
}

/// `runpermit gate enforce` flags.
#[derive(Debug, Args)]
struct EnforceArgs {
    /// The gate's configuration.
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_GATE_CONFIG")]
    config: PathBuf,
    /// Use this status list token instead of fetching one from the authority.
    #[arg(long, value_name = "FILE")]
    status_list: Option<PathBuf>,
    /// Say what would be done without doing it.
    #[arg(long)]
    dry_run: bool,
    /// Print the actions as JSON.
    #[arg(long)]
    json: bool,
}

/// `runpermit gate check` flags.
#[derive(Debug, Args)]
struct CheckArgs {
    /// The gate's configuration (see crates/runpermit-gate/examples/gate.toml).
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_GATE_CONFIG")]
    config: PathBuf,
    /// The cluster the job would run on.
    #[arg(long)]
    cluster: String,
    /// Accelerators the job requests.
    #[arg(long)]
    accelerators: u64,
    /// The job's time limit in hours (for the projected-compute threshold).
    #[arg(long)]
    hours: Option<f64>,
    /// The permit (compact JWS) the job runs under.
    #[arg(long, value_name = "FILE", requires = "proof")]
    permit: Option<PathBuf>,
    /// The permit's log inclusion proof (from `runpermit permit get --proof`).
    #[arg(long, value_name = "FILE")]
    proof: Option<PathBuf>,
    /// Use this status list token instead of fetching one from the authority.
    #[arg(long, value_name = "FILE")]
    status_list: Option<PathBuf>,
    /// Print the decision as JSON.
    #[arg(long)]
    json: bool,
}

/// `runpermit gate serve` flags.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The gate's configuration.
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_GATE_CONFIG")]
    config: PathBuf,
    /// The cluster this service admits jobs for (one of the configuration's clusters).
    #[arg(long, env = "RUNPERMIT_GATE_CLUSTER")]
    cluster: String,
    /// Address to listen on.
    #[arg(
        long,
        value_name = "ADDR",
        env = "RUNPERMIT_GATE_LISTEN",
        default_value = "127.0.0.1:8443"
    )]
    listen: std::net::SocketAddr,
    /// TLS certificate chain (PEM); with --tls-key, serves HTTPS (Kubernetes requires it).
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    tls_cert: Option<PathBuf>,
    /// TLS private key (PEM).
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    tls_key: Option<PathBuf>,
    /// Where to keep the newest accepted status list [default: status-list.jwt beside
    /// the configuration].
    #[arg(long, value_name = "FILE")]
    state: Option<PathBuf>,
    /// Seconds between polls of the authority's status list.
    #[arg(long, value_name = "SECONDS", default_value_t = 30)]
    poll_every: u64,
    /// Write the gate's log (its start-up line with the listening address first) as JSON
    /// lines on stderr, and tell a failure as a JSON object there.
    #[arg(long)]
    json: bool,
}

fn read(path: &Path, what: &str) -> Result<String> {
    std::fs::read_to_string(path).with_context(|| format!("reading {what} {}", path.display()))
}

/// Runs `runpermit gate`. Returns the process exit status.
pub fn run(args: GateArgs) -> Result<u8> {
    match args.command {
        GateCommand::Serve(ServeArgs {
            config,
            cluster,
            listen,
            tls_cert,
            tls_key,
            state,
            poll_every,
            json,
        }) => {
            crate::serve::init_logging_as(json);
            let mut options = runpermit_gate_agent::ServeOptions::new(config, cluster, listen);
            options.tls = tls_cert
                .zip(tls_key)
                .map(|(cert, key)| runpermit_gate_agent::TlsFiles { cert, key });
            options.status_file = state;
            options.poll_every = std::time::Duration::from_secs(poll_every.max(1));
            let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
            runtime
                .block_on(runpermit_gate_agent::run(
                    options,
                    crate::serve::shutdown_signal(),
                ))
                .map_err(|e| {
                    if e.is_usage() {
                        UsageError(e.to_string()).into()
                    } else {
                        anyhow::Error::new(e)
                    }
                })?;
            Ok(0)
        }
        GateCommand::Check(args) => check(args).map_err(no_decision),
        GateCommand::Enforce(args) => enforce(args),
        GateCommand::Nvml(args) => nvml(args),
        GateCommand::GpuCheck(args) => crate::gpu_check::run(args),
    }
}

fn nvml(args: NvmlArgs) -> Result<u8> {
    let report = runpermit_gate_agent::nvml::describe().map_err(anyhow::Error::msg)?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
        return Ok(0);
    }
    let or_unknown = |v: Option<String>| v.unwrap_or_else(|| "unknown".into());
    println!(
        "NVML {}, driver {}: {} GPU(s)",
        or_unknown(report.nvml_version),
        or_unknown(report.driver_version),
        report.devices.len()
    );
    for d in &report.devices {
        let mut facts = Vec::new();
        if let Some(u) = d.utilization_gpu_percent {
            let memory = d
                .utilization_memory_percent
                .map(|m| format!(" (memory {m}%)"))
                .unwrap_or_default();
            facts.push(format!("utilization {u}%{memory}"));
        }
        if let Some(mj) = d.energy_millijoules {
            facts.push(format!("energy {:.1} kJ", mj as f64 / 1e6));
        }
        if let Some(mw) = d.power_milliwatts {
            facts.push(format!("power {:.1} W", f64::from(mw) / 1e3));
        }
        match (d.sm_clock_mhz, d.max_sm_clock_mhz) {
            (Some(now), Some(max)) => facts.push(format!("SM clock {now}/{max} MHz")),
            (Some(now), None) => facts.push(format!("SM clock {now} MHz")),
            _ => {}
        }
        if let Some(m) = d.memory_clock_mhz {
            facts.push(format!("memory clock {m} MHz"));
        }
        let minor = d
            .minor_number
            .map(|m| format!(" (/dev/nvidia{m})"))
            .unwrap_or_default();
        println!("GPU {}{minor} {}: {}", d.index, d.name, facts.join(", "));
        if let Some(uuid) = &d.uuid {
            println!("  {uuid}");
        }
    }
    Ok(0)
}

fn enforce(args: EnforceArgs) -> Result<u8> {
    let loaded = Loaded::from(&args.config, args.status_list.as_deref())?;
    let jobs = crate::enforce::slurm_jobs()?;
    let mut actions = crate::enforce::plan(&jobs, loaded.gate.status());
    if !args.dry_run {
        actions.iter_mut().for_each(crate::enforce::apply);
    }
    if args.json {
        println!("{}", serde_json::to_string_pretty(&actions)?);
    } else {
        for a in &actions {
            let verb = match (a.act, a.done) {
                (crate::enforce::Act::Suspend, true) => "suspended",
                (crate::enforce::Act::Hold, true) => "held",
                (crate::enforce::Act::Suspend, false) => "would suspend",
                (crate::enforce::Act::Hold, false) => "would hold",
            };
            let failure = a
                .error
                .as_deref()
                .map(|e| format!(" FAILED: {e}"))
                .unwrap_or_default();
            println!(
                "{verb} job {} (permit {} {}: {}){failure}",
                a.job, a.permit, a.status, a.reason
            );
        }
    }
    Ok(if actions.iter().any(|a| a.error.is_some()) {
        1
    } else {
        0
    })
}

fn check(args: CheckArgs) -> Result<u8> {
    let CheckArgs {
        config,
        cluster,
        accelerators,
        hours,
        permit,
        proof,
        status_list,
        json,
    } = args;
    let loaded = Loaded::from(&config, status_list.as_deref())?;
    let evidence = match (&permit, &proof) {
        (Some(p), Some(q)) => Some(PermitEvidence {
            token: read(p, "--permit")?.trim().to_owned(),
            proof_bundle: read(q, "--proof")?,
        }),
        _ => None,
    };
    let job = JobRequest {
        cluster,
        accelerators,
        hours,
        permit: evidence,
    };
    let now = crate::now_unix();
    let decision = loaded.gate.decide_uncached(&job, &Usage::new(), now);
    // The gate agent meters the admitted job's run with its permit's accounting basis: keep
    // the permit in the permit book beside the status list (once; never fatal).
    if decision.code == runpermit_gate::Code::Permitted
        && let Some(evidence) = &job.permit
    {
        let book = runpermit_gate_agent::PermitBook::empty(
            runpermit_gate_agent::PermitBook::dir_beside(&loaded.held_path),
            loaded.gate.anchors().jwks.clone(),
        );
        if let Err(e) = book.remember(&evidence.token) {
            eprintln!("warning: could not keep the permit in the permit book: {e}");
        }
    }
    report(&decision, json)?;
    Ok(if decision.allow { 0 } else { 1 })
}

/// `gate check` exits 1 only for a refusal, so whatever kept it from deciding (an unreadable
/// file as much as an invalid one) exits 2: a scheduler hook must never read a broken gate
/// as a verdict on the job.
fn no_decision(e: anyhow::Error) -> anyhow::Error {
    if e.is::<UsageError>() {
        e
    } else {
        UsageError(format!("{e:#}")).into()
    }
}

/// A gate (configuration, pinned keys and status list), as `check` and `enforce` use it.
struct Loaded {
    gate: Gate,
    /// The newest accepted status list's file (the permit book is beside it).
    held_path: PathBuf,
}

impl Loaded {
    /// Reads the configuration and JWKS, the newest status list accepted so far (kept beside
    /// the configuration), then the one in `status_list` or fetched from the authority, which
    /// replaces it only if it is newer.
    fn from(config: &Path, status_list: Option<&Path>) -> Result<Loaded> {
        let mut settings = GateConfig::from_toml(&read(config, "--config")?)
            .map_err(|e| UsageError(format!("--config {}: {e}", config.display())))?;
        let base = config.parent().unwrap_or(Path::new("."));
        settings.resolve_paths(base);
        let params = settings
            .params(HardwareTable::builtin())
            .map_err(|e| UsageError(format!("--config {}: {e}", config.display())))?;
        let jwks = Jwks::from_json(&read(&settings.jwks, "the pinned JWKS")?)
            .map_err(|e| UsageError(format!("{}: {e}", settings.jwks.display())))?;
        let witness_policy = match &settings.witness_policy {
            Some(path) => Some(
                settings
                    .parse_witness_policy(&read(path, "the witness policy")?)
                    .map_err(|e| UsageError(format!("--config {}: {e}", config.display())))?,
            ),
            None => None,
        };
        let held_path = base.join("status-list.jwt");
        let authority = params.authority_url().to_owned();
        let mut gate = Gate::new(
            params,
            TrustAnchors {
                jwks,
                log_vkey: settings.log_vkey.clone(),
                witness_policy,
            },
        );
        if let Ok(held) = std::fs::read_to_string(&held_path) {
            let _ = gate.accept_status_token(&held);
        }
        let fetched = match status_list {
            Some(file) => Some(read(file, "--status-list")?),
            None => fetch_status_list(&authority),
        };
        if let Some(token) = fetched {
            match gate.accept_status_token(&token) {
                Ok(()) => {
                    let tmp = held_path.with_extension("tmp");
                    if std::fs::write(&tmp, token.trim())
                        .and_then(|()| std::fs::rename(&tmp, &held_path))
                        .is_err()
                    {
                        eprintln!(
                            "warning: could not keep the status list at {}",
                            held_path.display()
                        );
                    }
                }
                Err(e) => eprintln!("warning: status list refused: {e}"),
            }
        }
        Ok(Loaded { gate, held_path })
    }
}

/// The authority's current status list, or `None` (with a warning) when it cannot be had:
/// the decision then fails closed for jobs that need a permit.
fn fetch_status_list(authority: &str) -> Option<String> {
    let url = format!("{}/v1/status-list", authority.trim_end_matches('/'));
    let agent: ureq::Agent = ureq::Agent::config_builder()
        .timeout_global(Some(std::time::Duration::from_secs(10)))
        .build()
        .into();
    match agent
        .get(&url)
        .call()
        .and_then(|mut r| r.body_mut().read_to_string())
    {
        Ok(text) => Some(text),
        Err(e) => {
            eprintln!("warning: fetching {url}: {e}");
            None
        }
    }
}

fn report(decision: &Decision, json: bool) -> Result<()> {
    if json {
        println!("{}", serde_json::to_string_pretty(decision)?);
    } else if decision.allow {
        println!("ALLOW ({}): {}", decision.code.as_str(), decision.message);
    } else {
        eprintln!("DENY ({}): {}", decision.code.as_str(), decision.message);
    }
    Ok(())
}

//! `runpermit witness`: create, run and name a transparency-log witness (crate
//! `runpermit-witness`; docs/log.md, "Running a witness").
//!
//! - `init` writes a new key (mode 0600) and `witness.toml` in a folder, refusing to replace
//!   either, and prints the witness's verifier key;
//! - `serve` runs the witness until SIGTERM or ctrl-c;
//! - `vkey` prints the verifier key of a configured witness.

use std::io::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use anyhow::{Context, Result};
use clap::{Args, Subcommand};
use runpermit_log::{CosignerKey, VerifierKey};
use runpermit_witness::{SystemClock, Witness, WitnessConfig};

use crate::args::ArgError;

/// The file names `init` writes in its folder.
const CONFIG_FILE: &str = "witness.toml";
const KEY_FILE: &str = "witness.pem";

/// `runpermit witness`.
#[derive(Debug, Args)]
pub struct WitnessArgs {
    #[command(subcommand)]
    command: WitnessCommand,
}

#[derive(Debug, Subcommand)]
enum WitnessCommand {
    /// Create a witness in DIR: a new Ed25519 key (witness.pem, mode 0600) and witness.toml
    /// listing the logs it cosigns for; prints its verifier key. Refuses to replace either.
    Init(InitArgs),
    /// Run the witness (C2SP tlog-witness): POST /add-checkpoint, GET /<sha256 of the
    /// origin, hex>/checkpoint, /healthz, /metrics. Stops on SIGTERM or ctrl-c.
    Serve(ServeArgs),
    /// Print the witness's verifier key (vkey, type 0x04), for verifiers' witness policies.
    Vkey(VkeyArgs),
}

/// `runpermit witness init` flags.
#[derive(Debug, Args)]
struct InitArgs {
    /// The witness's name, the key name of its cosignatures: a schema-less URL such as
    /// witness.example/w1.
    #[arg(long)]
    name: String,
    /// The folder to create the key and configuration in (created if missing).
    #[arg(long, value_name = "DIR")]
    dir: PathBuf,
    /// The verifier key of a log to cosign for (repeat for several; more can be added to
    /// witness.toml later).
    #[arg(long = "log", value_name = "VKEY")]
    logs: Vec<String>,
    /// The address the configuration says to listen on.
    #[arg(long, value_name = "ADDR", default_value = runpermit_witness::config::DEFAULT_LISTEN)]
    listen: SocketAddr,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// `runpermit witness serve` flags.
#[derive(Debug, Args)]
struct ServeArgs {
    /// The witness's configuration (witness.toml).
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_WITNESS_CONFIG")]
    config: PathBuf,
    /// Listen here instead of the configuration's address.
    #[arg(long, value_name = "ADDR", env = "RUNPERMIT_WITNESS_LISTEN")]
    listen: Option<SocketAddr>,
}

/// `runpermit witness vkey` flags.
#[derive(Debug, Args)]
struct VkeyArgs {
    /// The witness's configuration (witness.toml).
    #[arg(long, value_name = "FILE", env = "RUNPERMIT_WITNESS_CONFIG")]
    config: PathBuf,
    /// Print JSON instead of text.
    #[arg(long)]
    json: bool,
}

/// Runs `runpermit witness`.
pub fn run(args: WitnessArgs) -> Result<()> {
    match args.command {
        WitnessCommand::Init(args) => init(args),
        WitnessCommand::Serve(args) => serve(args),
        WitnessCommand::Vkey(args) => vkey(args),
    }
}

fn load(path: &Path) -> Result<(WitnessConfig, CosignerKey)> {
    let config = WitnessConfig::load(path).map_err(|e| match e {
        runpermit_witness::ConfigError::Read { .. } => anyhow::Error::new(e),
        other => ArgError(format!("--config {}: {other}", path.display())).into(),
    })?;
    let key = config.read_key()?;
    Ok((config, key))
}

fn vkey(args: VkeyArgs) -> Result<()> {
    let (config, key) = load(&args.config)?;
    if args.json {
        return crate::output::print_json(&serde_json::json!({
            "name": config.name,
            "vkey": key.verifier_key(),
        }));
    }
    println!("{}", key.verifier_key());
    Ok(())
}

/// The configuration `init` writes.
fn config_text(name: &str, listen: SocketAddr, logs: &[VerifierKey]) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    let mut text = format!(
        "# A runpermit witness (docs/log.md, \"Running a witness\").\n\
         # The cosigner name and its private key (PKCS#8 PEM; keep it 0600 and back it up).\n\
         name = {}\n\
         key = {}\n\
         listen = {}\n\
         # The latest checkpoint cosigned for each log (SQLite; back it up, never roll it back).\n\
         database = \"witness.db\"\n",
        quote(name),
        quote(KEY_FILE),
        quote(&listen.to_string()),
    );
    text.push_str(
        "\n# The logs this witness cosigns for, by verifier key (the origin is its name).\n",
    );
    for log in logs {
        text.push_str(&format!("[[log]]\nvkey = {}\n", quote(&log.to_string())));
    }
    text
}

/// Creates `path` with `contents`, failing if it exists; mode 0600 when `private`.
fn create_new(path: &Path, contents: &[u8], private: bool) -> Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    if private {
        use std::os::unix::fs::OpenOptionsExt as _;
        options.mode(0o600);
    }
    #[cfg(not(unix))]
    let _ = private;
    let mut file = options.open(path).map_err(|e| {
        if e.kind() == std::io::ErrorKind::AlreadyExists {
            anyhow::Error::new(ArgError(format!(
                "{} already exists; refusing to overwrite it (choose another --dir)",
                path.display()
            )))
        } else {
            anyhow::Error::new(e).context(format!("creating {}", path.display()))
        }
    })?;
    file.write_all(contents)
        .and_then(|()| file.sync_all())
        .with_context(|| format!("writing {}", path.display()))
}

fn init(args: InitArgs) -> Result<()> {
    let key = CosignerKey::generate(&args.name)
        .map_err(|e| ArgError(format!("--name {:?}: {e}", args.name)))?;
    let logs = args
        .logs
        .iter()
        .map(|v| VerifierKey::parse(v).map_err(|e| ArgError(format!("--log: {e}"))))
        .collect::<Result<Vec<_>, _>>()?;
    let text = config_text(&args.name, args.listen, &logs);
    // What is written must read back: check it before anything is on disk.
    WitnessConfig::from_toml(&text).map_err(|e| ArgError(e.to_string()))?;
    let (config_path, key_path) = (args.dir.join(CONFIG_FILE), args.dir.join(KEY_FILE));
    for path in [&config_path, &key_path] {
        if path.exists() {
            return Err(ArgError(format!(
                "{} already exists; refusing to overwrite it (choose another --dir)",
                path.display()
            ))
            .into());
        }
    }
    std::fs::create_dir_all(&args.dir)
        .with_context(|| format!("creating {}", args.dir.display()))?;
    create_new(&key_path, key.to_pkcs8_pem().as_bytes(), true)?;
    if let Err(e) = create_new(&config_path, text.as_bytes(), false) {
        // Nothing half-written: without its configuration the new key is of no use.
        let _ = std::fs::remove_file(&key_path);
        return Err(e);
    }
    let origins: Vec<&str> = logs.iter().map(VerifierKey::name).collect();
    if args.json {
        return crate::output::print_json(&serde_json::json!({
            "config": config_path,
            "key": key_path,
            "name": args.name,
            "vkey": key.verifier_key(),
            "logs": origins,
        }));
    }
    println!("witness created in {}", args.dir.display());
    println!("config: {}", config_path.display());
    println!("key:    {} (mode 0600; back it up)", key_path.display());
    println!(
        "logs:   {}",
        if origins.is_empty() {
            "none yet: add [[log]] vkey = \"…\" entries".to_owned()
        } else {
            origins.join(", ")
        }
    );
    println!("vkey:   {}", key.verifier_key());
    println!(
        "run it:  runpermit witness serve --config {}",
        config_path.display()
    );
    Ok(())
}

fn serve(args: ServeArgs) -> Result<()> {
    crate::serve::init_logging();
    let (mut config, key) = load(&args.config)?;
    if let Some(listen) = args.listen {
        config.listen = listen;
    }
    let runtime = tokio::runtime::Runtime::new().context("starting the async runtime")?;
    runtime.block_on(async {
        let witness = Witness::open(&config, Arc::new(SystemClock))
            .await
            .context("starting the witness")?;
        let listener = tokio::net::TcpListener::bind(config.listen)
            .await
            .with_context(|| format!("listening on {}", config.listen))?;
        let addr = listener.local_addr().context("reading the bound address")?;
        let origins: Vec<&str> = witness.logs().origins().collect();
        println!("witness:   {} (vkey {})", config.name, key.verifier_key());
        println!("database:  {}", config.database_path().display());
        println!(
            "logs:      {}",
            if origins.is_empty() {
                "none (add [[log]] entries)".to_owned()
            } else {
                origins.join(", ")
            }
        );
        println!("runpermit witness listening on http://{addr}");
        runpermit_witness::serve(Arc::new(witness), listener, crate::serve::shutdown_signal())
            .await
            .context("serving")?;
        Ok(())
    })
}

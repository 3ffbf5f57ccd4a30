//! Every key, every problem named by its path, and the example file.

use super::*;

pub(crate) const EXAMPLE: &str = include_str!("../../examples/gate.toml");

const VKEY: &str =
    "log.example.org/runpermit+95a90127+ARl/ayPhbIUyxqvIOPrNXqeJvgx2spIDNAOb+os9No1h";

fn minimal() -> String {
    format!(
        r#"
authority_url = "https://authority.example"
jwks = "jwks.json"
log_vkey = "{VKEY}"
provider_id = "org-cloud"
reporting_key = "reporting-key.pem"

[thresholds]
min_accelerators = 1024

[[clusters]]
name = "us-east-1"
accelerator = "H100"
accelerators = 16384
"#
    )
}

fn config_errors(text: &str) -> Vec<FieldError> {
    GateConfig::from_toml(text).unwrap_err().errors
}

fn fields(errors: &[FieldError]) -> Vec<&str> {
    errors.iter().map(|e| e.field.as_str()).collect()
}

#[test]
fn the_shipped_example_is_valid_and_documents_every_key() {
    let config = GateConfig::from_toml(EXAMPLE).unwrap();
    let params = config.params(HardwareTable::builtin()).unwrap();
    assert_eq!(params.provider_id(), "org-cloud");
    assert!(params.clusters().len() >= 2);
    // Every key of the schema appears in the example.
    for key in [
        "authority_url",
        "jwks",
        "log_vkey",
        "witness_policy",
        "provider_id",
        "reporting_key",
        "clock_skew_seconds",
        "status_grace_seconds",
        "[thresholds]",
        "min_accelerators",
        "min_projected_flop",
        "[[clusters]]",
        "name",
        "accelerator",
        "accelerators",
        "[metering]",
        "interval_seconds",
        "queue_dir",
        "sources",
        "spool_dir",
        "dcgm_url",
        "\"spool\"",
        "\"slurm\"",
        "\"dcgm\"",
        "\"nvml\"",
    ] {
        assert!(EXAMPLE.contains(key), "examples/gate.toml lacks {key}");
    }
    let metering = config.metering.expect("the example meters");
    assert_eq!(metering.sources, [MeterSource::Spool, MeterSource::Slurm]);
}

#[test]
fn metering_defaults_and_paths() {
    let config = GateConfig::from_toml(&minimal()).unwrap();
    assert_eq!(config.metering, None, "no [metering]: nothing is metered");
    let text = format!("{}\n[metering]\nsources = [\"slurm\"]\n", minimal());
    let mut config = GateConfig::from_toml(&text).unwrap();
    let metering = config.metering.clone().unwrap();
    assert_eq!(metering.interval_seconds, DEFAULT_METERING_INTERVAL_SECONDS);
    assert_eq!(metering.queue_dir, PathBuf::from(DEFAULT_QUEUE_DIR));
    config.resolve_paths(Path::new("/srv/gate"));
    assert_eq!(
        config.metering.unwrap().queue_dir,
        PathBuf::from("/srv/gate/usage-queue")
    );

    let text = format!(
        "{}\n[metering]\ninterval_seconds = 5\nqueue_dir = \"/var/lib/q\"\nsources = [\"spool\", \"dcgm\"]\nspool_dir = \"spool\"\ndcgm_url = \"http://localhost:9400/metrics\"\n",
        minimal()
    );
    let mut config = GateConfig::from_toml(&text).unwrap();
    config.resolve_paths(Path::new("/srv/gate"));
    let metering = config.metering.unwrap();
    assert_eq!(metering.interval_seconds, 5);
    assert_eq!(metering.queue_dir, PathBuf::from("/var/lib/q"));
    assert_eq!(metering.spool_dir, Some(PathBuf::from("/srv/gate/spool")));
}

#[test]
fn metering_problems_are_named_by_key() {
    let with = |body: &str| format!("{}\n[metering]\n{body}", minimal());
    let errors = config_errors(&with(
        "interval_seconds = 0\nqueue_dir = \"\"\nsources = [\"slurm\", \"nvml\", \"slurm\"]\nspool_dir = \"s\"\ndcgm_url = \"x\"\n",
    ));
    assert_eq!(
        fields(&errors),
        [
            "metering.interval_seconds",
            "metering.queue_dir",
            "metering.sources[2]",
            "metering.sources",
            "metering.spool_dir",
            "metering.dcgm_url",
        ]
    );
    assert!(
        errors[3].message.contains("slurm and nvml"),
        "{}",
        errors[3].message
    );
    let errors = config_errors(&with("sources = [\"spool\", \"dcgm\"]\n"));
    assert_eq!(fields(&errors), ["metering.spool_dir", "metering.dcgm_url"]);
    assert!(
        errors[0].message.contains("is required"),
        "{}",
        errors[0].message
    );
    let errors = config_errors(&with("sources = []\ninterval_seconds = 86401\n"));
    assert_eq!(
        fields(&errors),
        ["metering.interval_seconds", "metering.sources"]
    );
    let errors = config_errors(&with(
        "sources = [\"dcgm\"]\ndcgm_url = \"ftp://x/metrics\"\n",
    ));
    assert_eq!(fields(&errors), ["metering.dcgm_url"]);
    // Unknown keys and unknown sources are refused, with their key.
    let errors = config_errors(&with("sources = [\"slurm\"]\nperiod = 5\n"));
    assert_eq!(fields(&errors), ["metering.period"]);
    let errors = config_errors(&with("sources = [\"prometheus\"]\n"));
    assert_eq!(fields(&errors), ["metering.sources[0]"]);
    assert!(
        errors[0].message.contains("unknown variant `prometheus`"),
        "{}",
        errors[0].message
    );
}

#[test]
fn defaults_and_resolution() {
    let config = GateConfig::from_toml(&minimal()).unwrap();
    assert_eq!(config.clock_skew_seconds, DEFAULT_CLOCK_SKEW_SECONDS);
    assert_eq!(config.status_grace_seconds, DEFAULT_STATUS_GRACE_SECONDS);
    let params = config.params(HardwareTable::builtin()).unwrap();
    let cluster = params.cluster("us-east-1").unwrap();
    assert_eq!(cluster.accelerator, "NVIDIA H100 SXM");
    assert_eq!(cluster.precision, Precision::Bf16);
    assert_eq!(cluster.peak.get(), 9.894e14);
    assert_eq!(cluster.accelerators, 16_384);
    assert!(params.cluster("eu-west-1").is_none());
    assert_eq!(params.thresholds().min_accelerators, Some(1024));
    assert_eq!(params.clock_skew_seconds(), 60);
    assert_eq!(params.status_grace_seconds(), 300);
    assert_eq!(params.authority_url(), "https://authority.example");

    // A chip without a bf16 figure projects with its fp16 peak, as the estimator does.
    let v100 = minimal().replace("\"H100\"", "\"V100\"");
    let params = GateConfig::from_toml(&v100)
        .unwrap()
        .params(HardwareTable::builtin())
        .unwrap();
    assert_eq!(params.clusters()[0].precision, Precision::Fp16);
}

#[test]
fn flop_thresholds_read_numbers_and_text() {
    for value in ["1e24", "\"1e24 FLOP\"", "\"1 YFLOP\""] {
        let text = minimal().replace(
            "min_accelerators = 1024",
            &format!("min_projected_flop = {value}"),
        );
        let config = GateConfig::from_toml(&text).unwrap();
        assert_eq!(
            config.thresholds.min_projected_flop,
            Some(Flop::new(1e24).unwrap()),
            "{value}"
        );
        assert_eq!(config.thresholds.min_accelerators, None);
    }
}

#[test]
fn a_cluster_is_physically_plausible() {
    let errors = config_errors(
        &minimal().replace("accelerators = 16384", "accelerators = 9223372036854775808"),
    );
    assert_eq!(fields(&errors), ["clusters[0].accelerators"]);
    assert!(
        errors[0].message.contains("between 1 and 1e7"),
        "{}",
        errors[0].message
    );
}

#[test]
fn every_problem_is_named_at_once() {
    let text = r#"
authority_url = "ftp://authority.example"
jwks = ""
log_vkey = "not a key"
provider_id = " org-cloud"
reporting_key = ""
clock_skew_seconds = -1
status_grace_seconds = 100000

[thresholds]
min_accelerators = 0
min_projected_flop = 0

[[clusters]]
name = "a"
accelerator = "H10O"
accelerators = 0

[[clusters]]
name = "a"
accelerator = "H100"
accelerators = 8
"#;
    let errors = config_errors(text);
    assert_eq!(
        fields(&errors),
        [
            "authority_url",
            "jwks",
            "log_vkey",
            "provider_id",
            "reporting_key",
            "clock_skew_seconds",
            "status_grace_seconds",
            "thresholds.min_accelerators",
            "thresholds.min_projected_flop",
            "clusters[0].accelerators",
            "clusters[0].accelerator",
            "clusters[1].name",
        ]
    );
    let unknown = &errors[10];
    assert!(
        unknown.message.starts_with("unknown accelerator \"H10O\""),
        "{}",
        unknown.message
    );
    assert!(!unknown.suggestions.is_empty());
    assert!(
        unknown.message.contains("did you mean"),
        "{}",
        unknown.message
    );
    let text = ConfigError { errors }.to_string();
    assert!(
        text.starts_with("gate configuration: authority_url: must be the authority's base URL"),
        "{text}"
    );
}

#[test]
fn thresholds_and_clusters_are_required() {
    let text = minimal()
        .replace("[thresholds]\nmin_accelerators = 1024\n", "")
        .replace(
            "[[clusters]]\nname = \"us-east-1\"\naccelerator = \"H100\"\naccelerators = 16384\n",
            "",
        );
    let errors = config_errors(&text);
    assert_eq!(fields(&errors), ["thresholds", "clusters"]);
}

#[test]
fn unknown_and_missing_keys_are_named_with_their_position() {
    let errors = config_errors(
        &minimal().replace("accelerators = 16384", "accelerators = 16384\nchips = 4"),
    );
    assert_eq!(fields(&errors), ["clusters[0].chips"]);
    assert!(
        errors[0].message.contains("unknown field `chips`"),
        "{}",
        errors[0].message
    );
    assert!(
        errors[0].message.contains("(line 15, column 1)"),
        "{}",
        errors[0].message
    );

    let errors = config_errors(&minimal().replace("provider_id = \"org-cloud\"\n", ""));
    assert_eq!(fields(&errors), ["provider_id"]);
    let errors = config_errors(&minimal().replace("accelerators = 16384\n", ""));
    assert_eq!(fields(&errors), ["clusters[0].accelerators"]);
    let errors =
        config_errors(&minimal().replace("min_accelerators = 1024", "min_accelerators = -4"));
    assert_eq!(fields(&errors), ["thresholds.min_accelerators"]);
    let errors = config_errors("authority_url = ");
    assert_eq!(fields(&errors), [""]);
    assert!(
        errors[0].message.contains("line 1"),
        "{}",
        errors[0].message
    );
}

#[test]
fn relative_paths_resolve_against_the_file() {
    let mut config = GateConfig::from_toml(&minimal()).unwrap();
    config.reporting_key = Some(PathBuf::from("/etc/runpermit/key.pem"));
    config.resolve_paths(Path::new("/srv/gate"));
    assert_eq!(config.jwks, PathBuf::from("/srv/gate/jwks.json"));
    assert_eq!(
        config.reporting_key,
        Some(PathBuf::from("/etc/runpermit/key.pem"))
    );
    let mut config = GateConfig::from_toml(&minimal()).unwrap();
    config.resolve_paths(Path::new("/srv/gate"));
    assert_eq!(
        config.reporting_key,
        Some(PathBuf::from("/srv/gate/reporting-key.pem"))
    );
}

#[test]
fn the_witness_policy_is_optional_resolved_and_read_with_its_key_named() {
    let config = GateConfig::from_toml(&minimal()).unwrap();
    assert_eq!(config.witness_policy, None);
    let with = minimal().replace(
        "provider_id =",
        "witness_policy = \"witnesses.policy\"\nprovider_id =",
    );
    let mut config = GateConfig::from_toml(&with).unwrap();
    config.resolve_paths(Path::new("/srv/gate"));
    assert_eq!(
        config.witness_policy,
        Some(PathBuf::from("/srv/gate/witnesses.policy"))
    );
    let errors =
        config_errors(&minimal().replace("provider_id =", "witness_policy = \"\"\nprovider_id ="));
    assert_eq!(fields(&errors), ["witness_policy"]);
    // The file's content: a good policy parses, a bad one names the key, file and line.
    assert!(config.parse_witness_policy("quorum none\n").is_ok());
    let errors = config
        .parse_witness_policy("quorum none\nquorum none\n")
        .unwrap_err();
    assert_eq!(fields(&errors.errors), ["witness_policy"]);
    let shown = errors.to_string();
    assert!(
        shown.contains("/srv/gate/witnesses.policy") && shown.contains("line 2"),
        "{shown}"
    );
}

#[test]
fn the_reporting_key_is_required_only_to_meter() {
    // Deciding never signs: no key needed.
    let without = minimal().replace("reporting_key = \"reporting-key.pem\"\n", "");
    let config = GateConfig::from_toml(&without).unwrap();
    assert_eq!(config.reporting_key, None);
    // Metering signs usage reports: the key is required, and named.
    let metering = "\n[metering]\nsources = [\"slurm\"]\n";
    let errors = config_errors(&format!("{without}{metering}"));
    assert_eq!(fields(&errors), ["reporting_key"]);
    assert!(
        errors[0].message.starts_with("is required with [metering]"),
        "{}",
        errors[0].message
    );
    GateConfig::from_toml(&format!("{}{metering}", minimal())).unwrap();
}

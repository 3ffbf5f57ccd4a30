//! The compute provider's gate, pure core: whether a job may run.
//!
//! A compute provider runs `runpermit gate` beside its scheduler. For each job above the
//! provider's thresholds it checks, offline and in microseconds, that the job runs under a
//! permit that is validly signed, in scope, public (proved to be in the transparency log),
//! in good standing (per a fresh signed status list) and within its budget.
//!
//! - [`StatusListCache`]: the newest verified status list (runpermit-permit's
//!   `StatusListClaims`, `verify_status_list`), which never goes back to an older version,
//!   and its [`Freshness`].
//! - [`GateConfig`]: the gate's TOML configuration, every key documented
//!   (`examples/gate.toml`); [`GateParams`]: its validated, resolved form.
//! - [`Gate`]: one gate's [`GateParams`], [`TrustAnchors`] (the pinned JWKS and log key),
//!   held status list and evidence cache; [`Gate::decide`]: the decision for a
//!   [`JobRequest`], a serializable [`Decision`] with a stable [`Code`], the
//!   time-independent checks remembered ([`Gate::decide_uncached`] decides the same afresh).
//! - Metering ([`scheduler_accounting`], [`dcgm_tensor_activity`], [`nvml_utilization`],
//!   and the exposition readers [`dcgm_tensor_active`], [`exposition_series`]):
//!   accelerator-seconds, DCGM tensor-pipe activity and NVML utilization to FLOP, with the
//!   method and bounds; [`SpoolRecord`]: a scheduler-accounting record as a provider's
//!   accounting system writes it, checked field by field, made into the signed usage
//!   report (runpermit-permit's `UsageReportClaims`) a provider sends the authority.
//!
//! Pure: no file or network IO, no clock (`now` is an argument, in unix seconds), no
//! randomness. Signatures are runpermit-permit's ([`verify_permit`](runpermit_permit::verify_permit),
//! [`sign_jws`](runpermit_permit::sign_jws)), log proofs runpermit-log's
//! ([`ProofBundle::verify_entry`](runpermit_log::ProofBundle::verify_entry)), the accelerator
//! peaks runpermit-compute's hardware table.
//!
//! # Decision codes
//!
//! [`Gate::decide`] checks in the order of this table; the first failure decides. `code` is stable:
//! scripts and the Slurm and Kubernetes integrations match on it. `message` is for the job
//! owner and may change. Who acts: the job owner, unless the table says otherwise.
//!
//! | code | allow | meaning | what to do |
//! |---|---|---|---|
//! | `below_threshold` | yes | The job is below every configured threshold (`min_accelerators`, `min_projected_flop`). | Nothing: it runs without a permit. |
//! | `permitted` | yes | The permit is valid, in scope, logged, in good standing, and the run has budget left (`remaining_flop`). The message says what this provider has metered of the budget; it names no tranche, since which tranches are released only the authority knows (a run at a tranche's end is on `permit_milestone_hold`). | Nothing. |
//! | `invalid_request` | no | The job's duration is not a positive number of hours, or the job requests more accelerators than its cluster's configured `accelerators` (whatever the permit allows). | Fix the request (the caller's mistake, refused like any other: `gate check` exits 1); if the cluster has grown, the gate's operator updates `[[clusters]]`. |
//! | `unknown_cluster` | no | The job names a cluster this gate is not configured for. | Submit to one of the gate's clusters (a refusal: `gate check` exits 1); for a Slurm partition the plugin maps to no cluster, the operator fixes `CLUSTER`. |
//! | `permit_required` | no | The job reaches a threshold (or states no duration while `min_projected_flop` is set) and carries no permit. | Attach the run's permit and log proof (`runpermit permit get ID --output permit.jwt --proof permit.tlog-proof`), or make the job smaller. |
//! | `permit_malformed` | no | The token is not a runpermit permit: not a compact JWS, `alg` not EdDSA, another `typ` (such as an exemption receipt), or claims of another shape or version. | Attach the permit token exactly as the authority issued it. |
//! | `permit_unknown_key` | no | The permit's `kid` is not in the gate's pinned JWKS. | Use a permit from this gate's authority; if the authority rotated keys, the gate's operator updates the pinned JWKS. |
//! | `permit_bad_signature` | no | The signature does not verify: the token was altered or forged. | Fetch the permit again from the authority. |
//! | `permit_not_yet_valid` | no | `nbf` (or `iat`) is later than now plus `clock_skew_seconds`. | Submit once the permit's validity starts (or fix this machine's clock). |
//! | `permit_expired` | no | `exp` is at or before now minus `clock_skew_seconds`. | Ask the authority for a new permit. |
//! | `provider_not_permitted` | no | The permit's `providers` does not name this provider. | Run at a provider the permit names, or have the permit amended. |
//! | `cluster_not_permitted` | no | The permit names this provider but restricts it to other clusters. | Submit to a cluster the permit names, or have the permit amended. |
//! | `too_many_accelerators` | no | The job requests more accelerators than the permit's `max_accelerators`. | Request at most `max_accelerators`. |
//! | `proof_missing` | no | No log proof is attached. | Attach the permit's proof bundle (`runpermit permit get ID --proof FILE`). |
//! | `proof_malformed` | no | The proof is not a `c2sp.org/tlog-proof@v1` bundle carrying a readable entry. | Attach the bundle as the authority serves it. |
//! | `proof_wrong_log` | no | The proof's checkpoint is not signed by the pinned log key (another log or key). | Attach the proof from the permit's own authority. |
//! | `proof_invalid` | no | The checkpoint signature or the inclusion path does not verify: altered or damaged. | Fetch the proof again. |
//! | `proof_wrong_permit` | no | The proof verifies, but for another entry than the `permit_issued` entry carrying exactly this token. | Attach this permit's own proof. |
//! | `proof_not_witnessed` | no | Only with `witness_policy` set: the proof's checkpoint is not cosigned by a quorum of the policy's witnesses (the message names those still needed), or a policy witness's cosignature does not verify. Without `witness_policy` no cosignature is required. | Once the witnesses have cosigned, fetch the proof again (`runpermit permit get ID --proof FILE`) and attach it; if the log has no witnesses yet, the gate's operator decides whether to require them. |
//! | `status_list_missing` | no | The gate has no status list yet, so it cannot confirm good standing (fail closed). | Retry later; the gate's operator restores its connection to the authority. |
//! | `status_list_stale` | no | The gate's status list is past `exp` plus `status_grace_seconds` (fail closed). | Retry later; the gate's operator restores its connection to the authority. |
//! | `permit_suspended` | no | The status list shows the permit suspended (with the authority's reason). | The holder contacts the authority; jobs run again once it is reinstated. |
//! | `permit_revoked` | no | The status list shows the permit revoked. | None: the run must stop for good. |
//! | `permit_milestone_hold` | no | The status list shows the permit on hold for a milestone evaluation. This refuses new jobs whatever the usage: the gate cannot tell locally which tranches are released. | Submit the milestone evaluation; jobs run again once it is accepted. |
//! | `permit_paused` | no | The status list shows the run paused. | Wait for the authority to resume the run. |
//! | `budget_exhausted` | no | The run's cumulative compute known to this gate has reached the permit's `flop_budget`. | Apply to the authority for more compute. |
//!
//! `permit_id` and `run_id` are set on every decision made after the permit's signature
//! verified (from `permitted` back to `provider_not_permitted`); `remaining_flop` on
//! `permitted`.

mod config;
mod decide;
mod decision;
mod evidence;
mod gate;
mod meter;
mod spool;
mod status;
mod text;

pub use config::{
    ClusterConfig, ClusterParams, ConfigError, DEFAULT_CLOCK_SKEW_SECONDS,
    DEFAULT_METERING_INTERVAL_SECONDS, DEFAULT_QUEUE_DIR, DEFAULT_STATUS_GRACE_SECONDS, GateConfig,
    GateParams, MAX_CLOCK_SKEW_SECONDS, MAX_METERING_INTERVAL_SECONDS, MAX_STATUS_GRACE_SECONDS,
    MeterSource, MeteringConfig, Thresholds,
};
pub use decision::{Code, Decision, JobRequest, PermitEvidence, Usage};
pub use gate::{Gate, TrustAnchors};
pub use meter::{
    DCGM_TENSOR_ACTIVE, MeterError, Series, TensorSample, UtilizationSample, dcgm_tensor_active,
    dcgm_tensor_activity, exposition_series, nvml_utilization, scheduler_accounting,
};
pub use spool::SpoolRecord;
pub use status::{Freshness, StatusError, StatusListCache};

//! A transparency-log witness, `runpermit witness serve`: C2SP
//! [`tlog-witness`](https://c2sp.org/tlog-witness) over HTTP, cosigning with C2SP
//! [`tlog-cosignature`](https://c2sp.org/tlog-cosignature) `cosignature/v1` (Ed25519).
//!
//! A log submits each new checkpoint with `POST /add-checkpoint` and a consistency proof from
//! the size the witness last cosigned; the witness checks the log's signature and the proof
//! against the latest checkpoint it cosigned for that log, records the new one durably, and
//! only then answers with its cosignature line. It never cosigns two checkpoints of one log
//! that are not consistent with each other, and never goes back to a smaller tree.
//!
//! - [`request`]: the request body, parsed exactly per the spec (pure).
//! - [`decide`]: the checks and their HTTP statuses (pure): 404 unknown origin, 403 no valid
//!   signature by a trusted log key, 400 malformed or old size past the checkpoint, 409 old
//!   size not the one held (body: that size), 422 not consistent.
//! - [`store`]: the state in SQLite (WAL, `synchronous=FULL`), the check-and-update in one
//!   `BEGIN IMMEDIATE` transaction.
//! - [`config`]: the TOML configuration: name, key, listen address, database, `[[log]]`s.
//! - [`Witness`], [`serve`]: the routes `POST /add-checkpoint`, `GET /<lowercase hex
//!   sha256(origin)>/checkpoint` (the latest cosigned checkpoint, with the log's signature
//!   and the witness's cosignature; 404 before the first), `GET /healthz`, `GET /metrics`.
//!
//! # Test hook: the after-persist failpoint
//!
//! When the environment variable `RUNPERMIT_WITNESS_FAILPOINT` is `after-persist` as the
//! witness starts ([`Witness::open`]), the process sends itself SIGKILL right after its first
//! `add-checkpoint` commits the new state and before it answers. This exists only so that
//! tests can check what a crash between persisting and answering leaves: the client gets no
//! answer, and after a restart the witness holds the new size (a request from the old size
//! gets 409 naming it; the same checkpoint from the new size with an empty proof gets the
//! cosignature). Never set it in production.

pub mod config;
pub mod decide;
mod metrics;
pub mod request;
pub mod store;
mod witness;

pub use config::{ConfigError, LogConfig, WitnessConfig};
pub use decide::{LogState, Refusal, Submission, TrustedLogs, check_against, verify_submission};
pub use request::{AddCheckpoint, MAX_BODY_BYTES, MAX_PROOF_LINES, parse};
pub use store::{Store, StoreError, StoredLog};
pub use witness::{AddError, Clock, FAILPOINT_ENV, SystemClock, Witness, WitnessError, serve};

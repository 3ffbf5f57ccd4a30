//! The Kubernetes ValidatingAdmissionWebhook: AdmissionReview v1 (`admission.k8s.io/v1`) in,
//! AdmissionReview v1 out.
//!
//! For a Pod or a `batch/v1` Job being created, the gate counts the accelerators it
//! requests, reads its time limit and its permit annotations, and asks
//! [`Agent::decide`]; a refusal becomes `allowed: false` with
//! `status: {code: 403, reason: "Forbidden", message: "<code>: <message>"}`. Other kinds,
//! other operations, subresources and objects requesting no accelerators are allowed.

use std::collections::BTreeMap;

use runpermit_gate::{Code, Decision, JobRequest, PermitEvidence};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::Agent;
use crate::count::{JobSpec, ObjectMeta, PodSpec, job_accelerators, pod_accelerators};

/// The annotation holding the permit token (compact JWS).
pub const PERMIT_ANNOTATION: &str = "runpermit.org/permit";
/// The annotation holding the permit's log proof (`c2sp.org/tlog-proof@v1` text).
pub const PROOF_ANNOTATION: &str = "runpermit.org/proof";
/// The only AdmissionReview version this webhook speaks.
pub const ADMISSION_API_VERSION: &str = "admission.k8s.io/v1";

/// An AdmissionReview the webhook cannot answer (HTTP 400).
#[derive(Debug, thiserror::Error)]
pub enum ReviewError {
    /// Not JSON, or not an AdmissionReview of the v1 shape; names the field.
    #[error("not an AdmissionReview v1 request: {0}")]
    Malformed(String),
    /// Another `apiVersion`/`kind` (say `admission.k8s.io/v1beta1`).
    #[error(
        "unsupported review {api_version}/{kind}: this webhook speaks only {ADMISSION_API_VERSION} \
         AdmissionReview (set admissionReviewVersions: [\"v1\"])"
    )]
    Unsupported {
        /// The `apiVersion` sent.
        api_version: String,
        /// The `kind` sent.
        kind: String,
    },
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Review {
    api_version: String,
    kind: String,
    request: Option<Request>,
}

#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct Request {
    uid: String,
    kind: GroupVersionKind,
    #[serde(default)]
    sub_resource: Option<String>,
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    namespace: Option<String>,
    operation: String,
    #[serde(default)]
    object: Option<Value>,
}

#[derive(Deserialize)]
struct GroupVersionKind {
    #[serde(default)]
    group: String,
    version: String,
    kind: String,
}

#[derive(Deserialize)]
struct Pod {
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    spec: PodSpec,
}

#[derive(Deserialize)]
struct Job {
    #[serde(default)]
    metadata: Option<ObjectMeta>,
    spec: JobSpec,
}

/// What the webhook learned about an object it decides on.
struct Admitted {
    accelerators: u64,
    hours: Option<f64>,
    annotations: [Option<String>; 2],
    warnings: Vec<String>,
}

/// Answers one AdmissionReview v1 request body with an AdmissionReview v1 response
/// document echoing `request.uid`.
///
/// Only `CREATE` of a Pod (`v1`) or a Job (`batch/v1`), without subresource, is decided:
///
/// - accelerators: the [`ACCELERATOR_RESOURCES`](crate::ACCELERATOR_RESOURCES), per
///   container its limit, else its request; per Pod Kubernetes' effective request (app
///   containers and sidecars together, or the largest init container); for a Job × the pods
///   that run at once (`parallelism`, default 1, or `completions` when smaller);
/// - hours: the object's own `activeDeadlineSeconds` / 3600 (for a Job, the Job's: its
///   pods' deadlines do not bound its retries and waves of pods);
/// - cluster: the agent's [`cluster`](Agent::cluster);
/// - permit: the annotations [`PERMIT_ANNOTATION`] and [`PROOF_ANNOTATION`] (on a Job, read
///   from the Job, else from its pod template).
///
/// An object requesting no accelerators, and anything else, is allowed untouched. A Pod or
/// Job whose accelerator quantities cannot be read is refused (`invalid_request`). A body
/// that is not an AdmissionReview v1 request is a [`ReviewError`] (HTTP 400).
pub fn review(agent: &Agent, body: &[u8]) -> Result<Value, ReviewError> {
    let de = &mut serde_json::Deserializer::from_slice(body);
    let review: Review = serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        ReviewError::Malformed(if path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        })
    })?;
    if review.api_version != ADMISSION_API_VERSION || review.kind != "AdmissionReview" {
        return Err(ReviewError::Unsupported {
            api_version: review.api_version,
            kind: review.kind,
        });
    }
    let request = review.request.ok_or_else(|| {
        ReviewError::Malformed("missing field `request` (a response is not a request)".into())
    })?;
    if request.uid.trim().is_empty() {
        return Err(ReviewError::Malformed("request.uid is empty".into()));
    }
    let response = match admit(&request) {
        Outcome::Untouched { warnings } => {
            let mut response = json!({
                "uid": request.uid,
                "allowed": true,
                "status": {"status": "Success", "code": 200},
            });
            if !warnings.is_empty() {
                response["warnings"] = json!(warnings);
            }
            response
        }
        Outcome::Unreadable(message) => {
            let decision = Decision {
                allow: false,
                code: Code::InvalidRequest,
                message,
                permit_id: None,
                run_id: None,
                remaining_flop: None,
            };
            respond(&request, &decision, 0, Vec::new())
        }
        Outcome::Decide(admitted) => {
            let job = JobRequest {
                cluster: agent.cluster().to_owned(),
                accelerators: admitted.accelerators,
                hours: admitted.hours,
                permit: evidence(admitted.annotations),
            };
            let decision = agent.decide(&job);
            respond(
                &request,
                &decision,
                admitted.accelerators,
                admitted.warnings,
            )
        }
    };
    Ok(json!({
        "apiVersion": ADMISSION_API_VERSION,
        "kind": "AdmissionReview",
        "response": response,
    }))
}

/// The AdmissionResponse for a decision (`status.message` is `<code>: <message>`; audit
/// annotations `decision`, `accelerators` and `permit-id`), with a log line.
fn respond(
    request: &Request,
    decision: &Decision,
    accelerators: u64,
    warnings: Vec<String>,
) -> Value {
    let text = format!("{}: {}", decision.code, decision.message);
    let object = format!(
        "{}/{} {}",
        request.namespace.as_deref().unwrap_or(""),
        request.name.as_deref().unwrap_or(""),
        request.kind.kind
    );
    let mut audit = BTreeMap::from([
        ("decision".to_owned(), decision.code.to_string()),
        ("accelerators".to_owned(), accelerators.to_string()),
    ]);
    if let Some(id) = &decision.permit_id {
        audit.insert("permit-id".into(), id.clone());
    }
    let status = if decision.allow {
        tracing::debug!(uid = %request.uid, %object, accelerators, code = %decision.code, "admitted");
        json!({"status": "Success", "code": 200, "message": text})
    } else {
        tracing::info!(uid = %request.uid, %object, accelerators, code = %decision.code,
            message = %decision.message, "refused");
        json!({"status": "Failure", "code": 403, "reason": "Forbidden", "message": text})
    };
    let mut response = json!({
        "uid": request.uid,
        "allowed": decision.allow,
        "status": status,
        "auditAnnotations": audit,
    });
    if !warnings.is_empty() {
        response["warnings"] = json!(warnings);
    }
    response
}

/// What the webhook does with a request.
enum Outcome {
    /// Not the gate's business: another kind, operation or subresource, or an object that
    /// requests no accelerators. Allowed untouched (with any warnings).
    Untouched { warnings: Vec<String> },
    /// A Pod or Job whose accelerator request cannot be read: refused (fail closed).
    Unreadable(String),
    /// A Pod or Job requesting accelerators: the gate decides.
    Decide(Admitted),
}

fn admit(request: &Request) -> Outcome {
    let kind = &request.kind;
    let is_pod = kind.group.is_empty() && kind.version == "v1" && kind.kind == "Pod";
    let is_job = kind.group == "batch" && kind.version == "v1" && kind.kind == "Job";
    let subresource = request
        .sub_resource
        .as_deref()
        .is_some_and(|s| !s.is_empty());
    if !(is_pod || is_job) || request.operation != "CREATE" || subresource {
        return Outcome::Untouched {
            warnings: Vec::new(),
        };
    }
    let Some(object) = &request.object else {
        return Outcome::Unreadable(format!(
            "the {} being created is missing from the review",
            kind.kind
        ));
    };
    let admitted = if is_pod {
        serde_json::from_value::<Pod>(object.clone())
            .map_err(|e| format!("the Pod cannot be read: {e}"))
            .and_then(|pod| {
                let meta = pod.metadata.unwrap_or_default();
                let (accelerators, warnings) = pod_accelerators(&pod.spec)?;
                Ok(Admitted {
                    accelerators,
                    hours: pod.spec.active_deadline_seconds.map(hours),
                    annotations: [
                        meta.annotation(PERMIT_ANNOTATION),
                        meta.annotation(PROOF_ANNOTATION),
                    ],
                    warnings,
                })
            })
    } else {
        serde_json::from_value::<Job>(object.clone())
            .map_err(|e| format!("the Job cannot be read: {e}"))
            .and_then(|job| {
                let meta = job.metadata.unwrap_or_default();
                let template = job.spec.template.metadata.clone().unwrap_or_default();
                let (accelerators, warnings) = job_accelerators(&job.spec)?;
                let on_job_or_template =
                    |key: &str| meta.annotation(key).or_else(|| template.annotation(key));
                Ok(Admitted {
                    accelerators,
                    // Only the Job's own deadline bounds it: its pods' deadlines do not bound
                    // the retries and the waves of pods (completions > parallelism).
                    hours: job.spec.active_deadline_seconds.map(hours),
                    annotations: [
                        on_job_or_template(PERMIT_ANNOTATION),
                        on_job_or_template(PROOF_ANNOTATION),
                    ],
                    warnings,
                })
            })
    };
    match admitted {
        Ok(a) if a.accelerators == 0 => Outcome::Untouched {
            warnings: a.warnings,
        },
        Ok(a) => Outcome::Decide(a),
        Err(message) => Outcome::Unreadable(message),
    }
}

fn hours(seconds: i64) -> f64 {
    seconds as f64 / 3600.0
}

/// The permit evidence from the annotations: none without a permit; an empty proof when only
/// the permit is there (the decision then says `proof_missing`).
fn evidence([permit, proof]: [Option<String>; 2]) -> Option<PermitEvidence> {
    permit.map(|token| PermitEvidence {
        token: token.trim().to_owned(),
        proof_bundle: proof.unwrap_or_default(),
    })
}

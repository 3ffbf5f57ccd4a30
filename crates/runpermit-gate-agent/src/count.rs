//! Counting the accelerators a Pod or Job requests, by Kubernetes' own rules.
//!
//! Only the fields the count needs are read; everything else in the object is ignored.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

/// The extended resources counted as accelerators. A container requests its limit for each
/// (or, without a limit, its request); the counts of the different resources add up.
pub const ACCELERATOR_RESOURCES: [&str; 5] = [
    "nvidia.com/gpu",
    "amd.com/gpu",
    "google.com/tpu",
    "aws.amazon.com/neuron",
    "habana.ai/gaudi",
];

/// An object's metadata: only its annotations.
#[derive(Deserialize, Default, Clone, Debug)]
pub(crate) struct ObjectMeta {
    #[serde(default)]
    annotations: Option<BTreeMap<String, String>>,
}

impl ObjectMeta {
    /// The annotation `key`, if set and not blank.
    pub(crate) fn annotation(&self, key: &str) -> Option<String> {
        self.annotations
            .as_ref()?
            .get(key)
            .filter(|v| !v.trim().is_empty())
            .cloned()
    }
}

/// The parts of a PodSpec the count reads.
#[derive(Deserialize, Default, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct PodSpec {
    #[serde(default)]
    containers: Option<Vec<Container>>,
    #[serde(default)]
    init_containers: Option<Vec<Container>>,
    #[serde(default)]
    pub(crate) active_deadline_seconds: Option<i64>,
    #[serde(default)]
    resource_claims: Option<Vec<Value>>,
}

#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
struct Container {
    #[serde(default)]
    name: Option<String>,
    #[serde(default)]
    resources: Option<Resources>,
    /// `Always` on an init container makes it a sidecar, running beside the app containers.
    #[serde(default)]
    restart_policy: Option<String>,
}

#[derive(Deserialize, Debug)]
struct Resources {
    #[serde(default)]
    limits: Option<BTreeMap<String, Value>>,
    #[serde(default)]
    requests: Option<BTreeMap<String, Value>>,
}

/// The parts of a `batch/v1` JobSpec the count reads.
#[derive(Deserialize, Debug)]
#[serde(rename_all = "camelCase")]
pub(crate) struct JobSpec {
    #[serde(default)]
    parallelism: Option<i64>,
    #[serde(default)]
    completions: Option<i64>,
    #[serde(default)]
    pub(crate) active_deadline_seconds: Option<i64>,
    pub(crate) template: PodTemplateSpec,
}

/// A Job's pod template.
#[derive(Deserialize, Debug)]
pub(crate) struct PodTemplateSpec {
    #[serde(default)]
    pub(crate) metadata: Option<ObjectMeta>,
    #[serde(default)]
    pub(crate) spec: PodSpec,
}

/// The accelerators one Pod requests, and warnings for the requester.
///
/// Per resource, Kubernetes' effective request: the larger of (the app containers' sum plus
/// the sidecars') and (the largest init container plus the sidecars started before it);
/// then the sum over [`ACCELERATOR_RESOURCES`]. A quantity that is not a whole number is an
/// error naming the field (the gate then refuses, failing closed).
pub(crate) fn pod_accelerators(spec: &PodSpec) -> Result<(u64, Vec<String>), String> {
    pod_count(spec, "spec")
}

/// The accelerators a Job requests at once: its pod's count × the pods that run at once,
/// `parallelism` (default 1), or `completions` when that is smaller.
pub(crate) fn job_accelerators(spec: &JobSpec) -> Result<(u64, Vec<String>), String> {
    let (per_pod, warnings) = pod_count(&spec.template.spec, "spec.template.spec")?;
    let mut pods = spec.parallelism.unwrap_or(1).max(0);
    if let Some(completions) = spec.completions {
        pods = pods.min(completions.max(0));
    }
    Ok((per_pod.saturating_mul(pods.unsigned_abs()), warnings))
}

fn pod_count(spec: &PodSpec, path: &str) -> Result<(u64, Vec<String>), String> {
    let containers = spec.containers.as_deref().unwrap_or_default();
    let init = spec.init_containers.as_deref().unwrap_or_default();
    let mut total = 0u64;
    for resource in ACCELERATOR_RESOURCES {
        let mut app = 0u64;
        for (i, c) in containers.iter().enumerate() {
            app = app.saturating_add(request(c, resource, &format!("{path}.containers[{i}]"))?);
        }
        let (mut sidecars, mut init_max) = (0u64, 0u64);
        for (i, c) in init.iter().enumerate() {
            let q = request(c, resource, &format!("{path}.initContainers[{i}]"))?;
            if c.restart_policy.as_deref() == Some("Always") {
                sidecars = sidecars.saturating_add(q);
                init_max = init_max.max(sidecars);
            } else {
                init_max = init_max.max(sidecars.saturating_add(q));
            }
        }
        total = total.saturating_add(app.saturating_add(sidecars).max(init_max));
    }
    let mut warnings = Vec::new();
    if spec.resource_claims.as_ref().is_some_and(|c| !c.is_empty()) {
        warnings.push(format!(
            "runpermit: {path}.resourceClaims: devices claimed through Dynamic Resource \
             Allocation are not counted by the runpermit gate"
        ));
    }
    Ok((total, warnings))
}

/// A container's count of `resource`: its limit, else its request, else 0.
fn request(c: &Container, resource: &str, path: &str) -> Result<u64, String> {
    let Some(resources) = &c.resources else {
        return Ok(0);
    };
    let found = [
        ("limits", &resources.limits),
        ("requests", &resources.requests),
    ]
    .into_iter()
    .find_map(|(field, map)| Some((field, map.as_ref()?.get(resource)?)));
    let Some((field, value)) = found else {
        return Ok(0);
    };
    let parsed = match value {
        Value::String(text) => quantity(text),
        Value::Number(n) => n.as_u64(),
        _ => None,
    };
    parsed.ok_or_else(|| {
        let name = c.name.as_deref().unwrap_or("");
        format!(
            "{path}.resources.{field}[{resource}] (container {name:?}) is {value}, not a whole \
             number of devices"
        )
    })
}

/// A Kubernetes quantity (`8`, `1k`, `2Ki`, `1e3`, `8000m`) as a whole number, saturating
/// at `u64::MAX`; `None` for a negative, fractional or unreadable one.
pub(crate) fn quantity(text: &str) -> Option<u64> {
    let s = text.strip_prefix('+').unwrap_or(text);
    let end = s
        .find(|c: char| !(c.is_ascii_digit() || c == '.'))
        .unwrap_or(s.len());
    let (number, suffix) = s.split_at(end);
    let (int, frac) = number.split_once('.').unwrap_or((number, ""));
    if (int.is_empty() && frac.is_empty()) || frac.contains('.') {
        return None;
    }
    let (exp10, exp2): (i64, u32) = match suffix {
        "" => (0, 0),
        "n" => (-9, 0),
        "u" => (-6, 0),
        "m" => (-3, 0),
        "k" => (3, 0),
        "M" => (6, 0),
        "G" => (9, 0),
        "T" => (12, 0),
        "P" => (15, 0),
        "E" => (18, 0),
        "Ki" => (0, 10),
        "Mi" => (0, 20),
        "Gi" => (0, 30),
        "Ti" => (0, 40),
        "Pi" => (0, 50),
        "Ei" => (0, 60),
        e => {
            let rest = e.strip_prefix(['e', 'E'])?;
            let digits = rest.strip_prefix(['+', '-']).unwrap_or(rest);
            if digits.is_empty() || !digits.bytes().all(|b| b.is_ascii_digit()) {
                return None;
            }
            (rest.parse().ok()?, 0)
        }
    };
    let digits = format!("{int}{frac}");
    let digits = digits.trim_start_matches('0');
    // Checked: an exponent near i64::MIN is unreadable, not a panic.
    let exp = exp10.checked_sub(i64::try_from(frac.len()).ok()?)?;
    if digits.is_empty() {
        return Some(0);
    }
    // Trailing zeros absorb a negative exponent; what is left must be an integer.
    let trimmed = digits.trim_end_matches('0');
    let (digits, exp) = if exp < 0 {
        let zeros = (digits.len() - trimmed.len()) as i64;
        if zeros + exp < 0 {
            return None;
        }
        (&digits[..digits.len() - (-exp) as usize], 0)
    } else {
        (digits, exp)
    };
    if digits.len() > 20 || exp > 20 {
        return Some(u64::MAX);
    }
    let mut value: u128 = digits.parse().ok()?;
    for _ in 0..exp {
        value = value.saturating_mul(10);
    }
    value = value.saturating_mul(1u128 << exp2);
    Some(u64::try_from(value).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quantities() {
        for (text, want) in [
            ("8", Some(8)),
            ("+8", Some(8)),
            ("0", Some(0)),
            ("1k", Some(1000)),
            ("2Ki", Some(2048)),
            ("1e3", Some(1000)),
            ("1E3", Some(1000)),
            ("8000m", Some(8)),
            ("1.5k", Some(1500)),
            ("80e-1", Some(8)),
            ("1E", Some(1_000_000_000_000_000_000)),
            ("99E", Some(u64::MAX)),
            ("500m", None),
            ("1.5", None),
            ("-1", None),
            ("", None),
            ("gpu", None),
            ("1..2", None),
            ("1e", None),
            ("1Q", None),
            // Extreme exponents are unreadable or saturate, never overflow.
            ("1.5e-9223372036854775808", None),
            ("1e-9223372036854775808", None),
            ("1e9223372036854775807", Some(u64::MAX)),
        ] {
            assert_eq!(quantity(text), want, "{text:?}");
        }
    }

    fn pod(json: serde_json::Value) -> PodSpec {
        serde_json::from_value(json).unwrap()
    }

    fn gpus(n: u64) -> serde_json::Value {
        serde_json::json!({"limits": {"nvidia.com/gpu": n.to_string()}})
    }

    #[test]
    fn effective_request_rule() {
        // App containers add up; a plain init container counts only if it is larger.
        let spec = pod(serde_json::json!({
            "containers": [{"resources": gpus(4)}, {"resources": gpus(2)}],
            "initContainers": [{"resources": gpus(8)}, {"resources": gpus(1)}],
        }));
        assert_eq!(pod_accelerators(&spec).unwrap().0, 8);
        // A sidecar runs beside the app containers, and beside later init containers.
        let spec = pod(serde_json::json!({
            "containers": [{"resources": gpus(4)}],
            "initContainers": [
                {"resources": gpus(1), "restartPolicy": "Always"},
                {"resources": gpus(8)},
            ],
        }));
        assert_eq!(pod_accelerators(&spec).unwrap().0, 9);
        // Limits win over requests; requests count without limits; resources add up.
        let spec = pod(serde_json::json!({"containers": [
            {"resources": {"limits": {"nvidia.com/gpu": "2"}, "requests": {"nvidia.com/gpu": "1"}}},
            {"resources": {"requests": {"amd.com/gpu": "3", "cpu": "500m"}}},
            {"resources": {"limits": {"google.com/tpu": 4}}},
        ]}));
        assert_eq!(pod_accelerators(&spec).unwrap().0, 9);
        let bad = pod(
            serde_json::json!({"containers": [{"name": "t", "resources": {"limits": {"habana.ai/gaudi": "0.5"}}}]}),
        );
        let dra = pod(serde_json::json!({"containers": [], "resourceClaims": [{"name": "gpu"}]}));
        let (count, warnings) = pod_accelerators(&dra).unwrap();
        assert_eq!(count, 0);
        assert!(
            warnings[0].contains("Dynamic Resource Allocation"),
            "{warnings:?}"
        );
        let err = pod_accelerators(&bad).unwrap_err();
        assert!(
            err.contains("spec.containers[0].resources.limits[habana.ai/gaudi]"),
            "{err}"
        );
    }
}

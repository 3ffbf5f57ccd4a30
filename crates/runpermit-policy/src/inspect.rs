//! Inspect evaluation logs as milestone evidence: a pure parser of Inspect's (`inspect_ai`)
//! `.eval` log format and the policy's per-evaluation thresholds.
//!
//! A `.eval` file is a zip archive. Its `header.json` member is the log without its samples:
//! `status` (`started`, `success`, `cancelled` or `error`), `eval` (`task`, `model`,
//! `eval_id`, `created`, `packages`…) and `results` (`total_samples`, `completed_samples`,
//! `scores[]`, each with its scorer's `metrics`, `{name: {name, value}}`). Inspect compresses
//! members with zstd (recent versions) or deflate (older ones); both are read.
//!
//! [`parse_eval_log`] takes the file's bytes (no IO here), refuses what is not a finished
//! Inspect log with a message saying why, and bounds what it decompresses: only
//! `header.json` is read, and at most [`MAX_HEADER_BYTES`] of it, whatever the archive claims.

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Cursor, Read};

use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

/// The largest `.eval` file accepted, in bytes (8 MiB).
pub const MAX_LOG_BYTES: usize = 8 * 1024 * 1024;

/// The most of `header.json` decompressed, in bytes (16 MiB): a zip bomb stops here.
pub const MAX_HEADER_BYTES: u64 = 16 * 1024 * 1024;

/// The member of a `.eval` archive read.
pub const HEADER_JSON: &str = "header.json";

/// What a finished Inspect evaluation log says, as extracted from its bytes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvalLogSummary {
    /// `sha256:<64 hex>` of the whole `.eval` file.
    pub digest: String,
    /// The task evaluated (`eval.task`).
    pub task: String,
    /// The model evaluated (`eval.model`, such as `mockllm/model`).
    pub model: String,
    /// `success`: logs of evaluations that did not finish are refused.
    pub status: String,
    /// Inspect's id of the evaluation (`eval.eval_id`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub eval_id: Option<String>,
    /// When the evaluation was created (`eval.created`), as Inspect wrote it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub created: Option<String>,
    /// The `inspect_ai` version that wrote the log (`eval.packages.inspect_ai`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub inspect_version: Option<String>,
    /// Samples in the evaluation (`results.total_samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub total_samples: Option<u64>,
    /// Samples completed (`results.completed_samples`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub completed_samples: Option<u64>,
    /// Each score: its scorer and its metrics.
    pub scores: Vec<ScoreSummary>,
}

/// One of a log's scores (`results.scores[]`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScoreSummary {
    /// The score's name (usually its scorer's).
    pub scorer: String,
    /// The epoch reducer, where the log names one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reducer: Option<String>,
    /// Each metric's value, by metric name; `null` where Inspect wrote none (a metric with
    /// too few samples).
    pub metrics: BTreeMap<String, Option<f64>>,
}

/// Why bytes are not a finished Inspect log.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EvalLogError(pub String);

fn err(message: impl Into<String>) -> EvalLogError {
    EvalLogError(message.into())
}

/// `sha256:<hex>` of `bytes`.
pub fn digest(bytes: &[u8]) -> String {
    format!("sha256:{}", hex::encode(Sha256::digest(bytes)))
}

/// Parses an Inspect `.eval` file's bytes into what it says. Refuses, naming why: more than
/// [`MAX_LOG_BYTES`], not a zip archive, no `header.json`, a `header.json` over
/// [`MAX_HEADER_BYTES`] decompressed or not JSON, missing fields, and an evaluation that did
/// not finish (`status` other than `success`).
pub fn parse_eval_log(bytes: &[u8]) -> Result<EvalLogSummary, EvalLogError> {
    if bytes.len() > MAX_LOG_BYTES {
        return Err(err(format!(
            "is {} bytes, more than the {MAX_LOG_BYTES} accepted",
            bytes.len()
        )));
    }
    if !bytes.starts_with(b"PK") {
        return Err(err(
            "is not an Inspect .eval log: not a zip archive (a .json log? write it with \
             --log-format eval)",
        ));
    }
    let mut archive = zip::ZipArchive::new(Cursor::new(bytes))
        .map_err(|e| err(format!("is not a readable zip archive: {e}")))?;
    let member = match archive.by_name(HEADER_JSON) {
        Ok(member) => member,
        Err(zip::result::ZipError::FileNotFound) => {
            return Err(err(format!(
                "has no {HEADER_JSON}: not an Inspect .eval log, or one whose evaluation is \
                 still running"
            )));
        }
        Err(e) => return Err(err(format!("{HEADER_JSON} cannot be read: {e}"))),
    };
    let mut header = Vec::new();
    member
        .take(MAX_HEADER_BYTES + 1)
        .read_to_end(&mut header)
        .map_err(|e| err(format!("{HEADER_JSON} cannot be decompressed: {e}")))?;
    if header.len() as u64 > MAX_HEADER_BYTES {
        return Err(err(format!(
            "{HEADER_JSON} decompresses to more than {MAX_HEADER_BYTES} bytes"
        )));
    }
    let header: Value = serde_json::from_slice(&header)
        .map_err(|e| err(format!("{HEADER_JSON} is not JSON: {e}")))?;
    summarize(digest(bytes), &header)
}

fn text(v: &Value, path: &str) -> Result<String, EvalLogError> {
    let mut at = v;
    for key in path.split('.') {
        at = at.get(key).unwrap_or(&Value::Null);
    }
    match at {
        Value::String(s) if !s.trim().is_empty() => Ok(s.clone()),
        Value::Null => Err(err(format!("{HEADER_JSON} has no {path}"))),
        other => Err(err(format!(
            "{HEADER_JSON}: {path} must be a non-empty string (got {other})"
        ))),
    }
}

fn summarize(digest: String, header: &Value) -> Result<EvalLogSummary, EvalLogError> {
    if !header.is_object() {
        return Err(err(format!("{HEADER_JSON} is not a JSON object")));
    }
    let status = text(header, "status")?;
    if status != "success" {
        let why = header
            .pointer("/error/message")
            .and_then(Value::as_str)
            .map(|m| format!(": {}", m.chars().take(200).collect::<String>()))
            .unwrap_or_default();
        return Err(err(format!(
            "records an evaluation that did not finish: status {status:?}, not \"success\"{why}"
        )));
    }
    if header.get("invalidated").and_then(Value::as_bool) == Some(true) {
        return Err(err("records an evaluation Inspect marks invalidated"));
    }
    let task = text(header, "eval.task")?;
    let model = text(header, "eval.model")?;
    let results = header
        .get("results")
        .filter(|r| r.is_object())
        .ok_or_else(|| err(format!("{HEADER_JSON} has no results")))?;
    let Some(raw_scores) = results.get("scores").and_then(Value::as_array) else {
        return Err(err(format!("{HEADER_JSON}: results.scores must be a list")));
    };
    let mut scores = Vec::with_capacity(raw_scores.len());
    for (i, s) in raw_scores.iter().enumerate() {
        let at = format!("results.scores[{i}]");
        let scorer = s
            .get("name")
            .and_then(Value::as_str)
            .filter(|n| !n.is_empty())
            .ok_or_else(|| err(format!("{HEADER_JSON}: {at}.name must be a string")))?;
        let Some(raw) = s.get("metrics").and_then(Value::as_object) else {
            return Err(err(format!(
                "{HEADER_JSON}: {at}.metrics must be an object"
            )));
        };
        let mut metrics = BTreeMap::new();
        for (key, m) in raw {
            let name = m.get("name").and_then(Value::as_str).unwrap_or(key);
            let value = match m.get("value") {
                Some(Value::Number(n)) => n.as_f64().filter(|v| v.is_finite()),
                None | Some(Value::Null) => None,
                Some(other) => {
                    return Err(err(format!(
                        "{HEADER_JSON}: {at}.metrics.{key}.value must be a number (got {other})"
                    )));
                }
            };
            metrics.insert(name.to_owned(), value);
        }
        scores.push(ScoreSummary {
            scorer: scorer.to_owned(),
            reducer: s.get("reducer").and_then(Value::as_str).map(str::to_owned),
            metrics,
        });
    }
    Ok(EvalLogSummary {
        digest,
        task,
        model,
        status,
        eval_id: text(header, "eval.eval_id").ok(),
        created: text(header, "eval.created").ok(),
        inspect_version: text(header, "eval.packages.inspect_ai").ok(),
        total_samples: results.get("total_samples").and_then(Value::as_u64),
        completed_samples: results.get("completed_samples").and_then(Value::as_u64),
        scores,
    })
}

/// One `[[oversight.evaluation_threshold]]`: a milestone whose Inspect results for `task`
/// have `metric` above `above` (or below `below`) is flagged to the evaluator.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct EvaluationThreshold {
    /// The Inspect task's name (`eval.task`).
    pub task: String,
    /// The metric's name (such as `accuracy`).
    pub metric: String,
    /// Only this scorer's metric; every scorer's when absent.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub scorer: Option<String>,
    /// Flag when the metric is above this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub above: Option<f64>,
    /// Flag when the metric is below this.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub below: Option<f64>,
}

impl EvaluationThreshold {
    /// Each problem with this threshold, as (field under `at`, message).
    pub fn problems(&self, at: &str) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for (field, value) in [("task", &self.task), ("metric", &self.metric)] {
            if value.trim().is_empty() {
                out.push((
                    format!("{at}.{field}"),
                    "must name the Inspect task and metric, such as task = \"arithmetic\", \
                     metric = \"accuracy\""
                        .into(),
                ));
            }
        }
        if let Some(s) = &self.scorer
            && s.trim().is_empty()
        {
            out.push((
                format!("{at}.scorer"),
                "must name a scorer, or be left out for every scorer".into(),
            ));
        }
        match (self.above, self.below) {
            (None, None) => out.push((
                at.to_owned(),
                "must set above or below, such as above = 0.5".into(),
            )),
            (Some(a), Some(b)) if a >= b => out.push((
                at.to_owned(),
                format!(
                    "with both above ({a}) and below ({b}) set, nothing could cross neither; \
                     set one, or two thresholds"
                ),
            )),
            _ => {}
        }
        for (field, value) in [("above", self.above), ("below", self.below)] {
            if let Some(v) = value
                && !v.is_finite()
            {
                out.push((
                    format!("{at}.{field}"),
                    format!("must be a finite number (got {v})"),
                ));
            }
        }
        out
    }
}

/// A threshold a log's results crossed.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ThresholdCrossing {
    /// The log's digest.
    pub digest: String,
    /// The task.
    pub task: String,
    /// The model.
    pub model: String,
    /// The scorer whose metric crossed.
    pub scorer: String,
    /// The metric.
    pub metric: String,
    /// Its value in the log.
    pub value: f64,
    /// `above` or `below`.
    pub direction: String,
    /// The policy's threshold.
    pub threshold: f64,
}

/// Every threshold the logs' results cross (once per threshold, log, scorer and direction).
pub fn thresholds_crossed(
    thresholds: &[EvaluationThreshold],
    logs: &[EvalLogSummary],
) -> Vec<ThresholdCrossing> {
    let mut out = Vec::new();
    let mut seen = BTreeSet::new();
    for t in thresholds {
        for log in logs.iter().filter(|l| l.task == t.task) {
            for score in &log.scores {
                if t.scorer.as_ref().is_some_and(|s| *s != score.scorer) {
                    continue;
                }
                let Some(Some(value)) = score.metrics.get(&t.metric).copied() else {
                    continue;
                };
                for (direction, limit, crossed) in [
                    ("above", t.above, t.above.is_some_and(|a| value > a)),
                    ("below", t.below, t.below.is_some_and(|b| value < b)),
                ] {
                    let (Some(threshold), true) = (limit, crossed) else {
                        continue;
                    };
                    let key = (
                        log.digest.clone(),
                        score.scorer.clone(),
                        t.metric.clone(),
                        direction,
                        threshold.to_bits(),
                    );
                    if seen.insert(key) {
                        out.push(ThresholdCrossing {
                            digest: log.digest.clone(),
                            task: log.task.clone(),
                            model: log.model.clone(),
                            scorer: score.scorer.clone(),
                            metric: t.metric.clone(),
                            value,
                            direction: direction.to_owned(),
                            threshold,
                        });
                    }
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use std::io::Write as _;

    use super::*;

    /// Real output of `inspect-ai` 0.3.285 (integrations/inspect/mock_eval.py, built-in mock
    /// model): task `arithmetic`, scorer `includes`, accuracy 0.5, zstd-compressed members.
    const FIXTURE: &[u8] = include_bytes!("../tests/data/inspect/arithmetic-mockllm.eval");

    /// A zip archive of `members`, deflate-compressed.
    fn zip_of(members: &[(&str, &[u8])]) -> Vec<u8> {
        let mut w = zip::ZipWriter::new(Cursor::new(Vec::new()));
        let options = zip::write::SimpleFileOptions::default()
            .compression_method(zip::CompressionMethod::Deflated);
        for (name, bytes) in members {
            w.start_file(*name, options).unwrap();
            w.write_all(bytes).unwrap();
        }
        w.finish().unwrap().into_inner()
    }

    fn fixture_header() -> Value {
        let mut a = zip::ZipArchive::new(Cursor::new(FIXTURE)).unwrap();
        let mut s = String::new();
        a.by_name(HEADER_JSON)
            .unwrap()
            .read_to_string(&mut s)
            .unwrap();
        serde_json::from_str(&s).unwrap()
    }

    fn refused(bytes: &[u8]) -> String {
        parse_eval_log(bytes).unwrap_err().0
    }

    #[test]
    fn a_real_eval_log_is_summarized() {
        let s = parse_eval_log(FIXTURE).unwrap();
        assert_eq!(s.digest, digest(FIXTURE));
        assert!(s.digest.starts_with("sha256:") && s.digest.len() == 71);
        assert_eq!(s.task, "arithmetic");
        assert_eq!(s.model, "mockllm/model");
        assert_eq!(s.status, "success");
        assert_eq!(s.inspect_version.as_deref(), Some("0.3.285"));
        assert_eq!((s.total_samples, s.completed_samples), (Some(2), Some(2)));
        assert_eq!(s.scores.len(), 1);
        assert_eq!(s.scores[0].scorer, "includes");
        assert_eq!(s.scores[0].metrics["accuracy"], Some(0.5));
        assert_eq!(s.scores[0].metrics["stderr"], Some(0.5));
    }

    #[test]
    fn deflate_compressed_logs_are_read_too() {
        let header = serde_json::to_vec(&fixture_header()).unwrap();
        let s = parse_eval_log(&zip_of(&[(HEADER_JSON, &header)])).unwrap();
        assert_eq!(s.task, "arithmetic");
        assert_eq!(s.scores[0].metrics["accuracy"], Some(0.5));
    }

    #[test]
    fn bad_input_is_refused_saying_why() {
        assert!(refused(b"{\"status\": \"success\"}").contains("not a zip archive"));
        assert!(refused(b"PK\x03\x04 truncated").contains("not a readable zip archive"));
        let no_header = zip_of(&[("samples/1_epoch_1.json", b"{}")]);
        assert!(refused(&no_header).contains("has no header.json"));
        let not_json = zip_of(&[(HEADER_JSON, b"{\"status\": ")]);
        assert!(refused(&not_json).contains("header.json is not JSON"));
        let no_task = zip_of(&[(HEADER_JSON, br#"{"status": "success", "eval": {}}"#)]);
        assert!(
            refused(&no_task).contains("has no eval.task"),
            "{}",
            refused(&no_task)
        );
        let mut too_big = FIXTURE.to_vec();
        too_big.resize(MAX_LOG_BYTES + 1, 0);
        assert!(refused(&too_big).contains("more than the 8388608 accepted"));
    }

    #[test]
    fn an_evaluation_that_did_not_finish_is_refused() {
        for status in ["error", "cancelled", "started"] {
            let mut h = fixture_header();
            h["status"] = Value::from(status);
            h["error"] = serde_json::json!({"message": "ConnectionError: no route to host"});
            let bytes = zip_of(&[(HEADER_JSON, &serde_json::to_vec(&h).unwrap())]);
            let why = refused(&bytes);
            assert!(why.contains(&format!("status \"{status}\"")), "{why}");
            assert!(why.contains("no route to host"), "{why}");
        }
        let mut h = fixture_header();
        h["invalidated"] = Value::Bool(true);
        let bytes = zip_of(&[(HEADER_JSON, &serde_json::to_vec(&h).unwrap())]);
        assert!(refused(&bytes).contains("invalidated"));
        let mut h = fixture_header();
        h["results"]["scores"][0]["metrics"]["accuracy"]["value"] = Value::from("high");
        let bytes = zip_of(&[(HEADER_JSON, &serde_json::to_vec(&h).unwrap())]);
        assert!(refused(&bytes).contains("accuracy.value must be a number"));
    }

    #[test]
    fn a_zip_bomb_stops_at_the_header_cap() {
        // 17 MiB of spaces compress to a few KiB; only 16 MiB + 1 byte is ever decompressed.
        let bomb = vec![b' '; (MAX_HEADER_BYTES + MAX_HEADER_BYTES / 16) as usize];
        let bytes = zip_of(&[(HEADER_JSON, &bomb)]);
        assert!(bytes.len() < MAX_LOG_BYTES);
        assert!(refused(&bytes).contains("decompresses to more than 16777216 bytes"));
    }

    fn threshold(metric: &str, above: Option<f64>, below: Option<f64>) -> EvaluationThreshold {
        EvaluationThreshold {
            task: "arithmetic".into(),
            metric: metric.into(),
            scorer: None,
            above,
            below,
        }
    }

    #[test]
    fn thresholds_are_crossed_strictly() {
        let logs = [parse_eval_log(FIXTURE).unwrap()];
        let crossed = thresholds_crossed(&[threshold("accuracy", Some(0.4), None)], &logs);
        assert_eq!(crossed.len(), 1);
        let c = &crossed[0];
        assert_eq!(
            (c.task.as_str(), c.scorer.as_str()),
            ("arithmetic", "includes")
        );
        assert_eq!(
            (c.value, c.threshold, c.direction.as_str()),
            (0.5, 0.4, "above")
        );
        // At the threshold is not above it; another task, scorer or metric does not count.
        assert!(thresholds_crossed(&[threshold("accuracy", Some(0.5), None)], &logs).is_empty());
        assert!(thresholds_crossed(&[threshold("f1", Some(0.1), None)], &logs).is_empty());
        let mut other = threshold("accuracy", Some(0.1), None);
        other.task = "other".into();
        assert!(thresholds_crossed(&[other], &logs).is_empty());
        let mut scorer = threshold("accuracy", Some(0.1), None);
        scorer.scorer = Some("match".into());
        assert!(thresholds_crossed(&[scorer], &logs).is_empty());
        let below = thresholds_crossed(&[threshold("accuracy", None, Some(0.6))], &logs);
        assert_eq!(below[0].direction, "below");
    }

    #[test]
    fn threshold_problems_are_named() {
        assert!(
            threshold("accuracy", Some(0.5), None)
                .problems("t")
                .is_empty()
        );
        let p = threshold("", None, None).problems("t");
        assert!(p.iter().any(|(f, _)| f == "t.metric"));
        assert!(
            p.iter()
                .any(|(f, m)| f == "t" && m.contains("above or below"))
        );
        let p = threshold("accuracy", Some(0.9), Some(0.1)).problems("t");
        assert_eq!(p.len(), 1, "{p:?}");
        let p = threshold("accuracy", Some(f64::NAN), None).problems("t");
        assert!(p.iter().any(|(f, _)| f == "t.above"));
    }
}

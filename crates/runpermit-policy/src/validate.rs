//! [`RunPlan::validate`]: the schema's own rules (shapes, units, ranges, consistency between
//! fields). What a tier additionally demands is checked by `policy::classify`.

use std::collections::BTreeSet;

use runpermit_compute::FieldError;
use runpermit_compute::limits::{self, Plausible};
use runpermit_compute::text;

use crate::plan::{Affordance, ArchitectureFamily, PLAN_SCHEMA, RunPlan};

pub use runpermit_compute::text::{MAX_NAME_CHARS, MAX_TEXT_CHARS};

#[derive(Default)]
struct Errors(Vec<FieldError>);

impl Errors {
    fn push(&mut self, field: impl Into<String>, message: impl Into<String>) {
        self.0.push(FieldError {
            field: field.into(),
            message: message.into(),
            suggestions: Vec::new(),
        });
    }

    /// A number in its physically plausible range (runpermit-compute's `limits`).
    fn plausible(&mut self, field: &str, range: Plausible, value: f64) {
        if let Err(message) = range.check(value) {
            self.push(field, message);
        }
    }

    /// A count in its physically plausible range.
    fn plausible_count(&mut self, field: &str, range: Plausible, value: u64) {
        if let Err(message) = range.check_count(value) {
            self.push(field, message);
        }
    }

    /// Non-blank text of at most `max` characters without control or bidirectional
    /// characters (line breaks and tabs allowed in free text): runpermit-compute's `text`.
    fn text(&mut self, field: &str, value: &str, max: usize) {
        if let Some(problem) = text::text_problem(value, max, max > MAX_NAME_CHARS) {
            self.push(field, problem);
        }
    }

    /// An identifier (runpermit-compute's `text::id_problem`).
    fn identifier(&mut self, field: &str, value: &str) {
        if let Some(problem) = text::id_problem(value) {
            self.push(field, problem);
        }
    }
}

impl RunPlan {
    /// Checks the plan against the schema and returns every problem at once, each naming its
    /// field by dotted path (`compute.expected_utilization`, `providers[1].clusters`,
    /// `safeguards.evaluation_plan.milestones[0].at_flop`).
    ///
    /// This checks what every plan must satisfy. Whether the plan is complete enough for its
    /// tier is the policy's question (`classify`), and whether the accelerator is known is
    /// the estimator's ([`RunPlan::estimate`] reports both kinds together).
    pub fn validate(&self) -> Result<(), Vec<FieldError>> {
        let mut e = Errors::default();

        if self.schema != PLAN_SCHEMA {
            e.push(
                "schema",
                format!("must be {PLAN_SCHEMA:?} (got {:?})", self.schema),
            );
        }

        e.text("run.name", &self.run.name, MAX_NAME_CHARS);
        if let Some(d) = &self.run.description {
            e.text("run.description", d, MAX_TEXT_CHARS);
        }

        let m = &self.model;
        e.plausible("model.parameters", limits::PARAMETERS, m.parameters);
        match (m.architecture_family, m.active_parameters) {
            (ArchitectureFamily::MoeTransformer, None) => e.push(
                "model.active_parameters",
                "required for a moe_transformer: the parameters used per token",
            ),
            (ArchitectureFamily::DenseTransformer, Some(_)) => e.push(
                "model.active_parameters",
                "only for moe_transformer (or other): a dense transformer uses all its parameters",
            ),
            (_, Some(a)) => {
                e.plausible("model.active_parameters", limits::PARAMETERS, a);
                if a > m.parameters {
                    e.push(
                        "model.active_parameters",
                        format!(
                            "{a:e} active parameters exceed the {:e} total parameters",
                            m.parameters
                        ),
                    );
                }
            }
            (_, None) => {}
        }
        if m.modality.is_empty() {
            e.push(
                "model.modality",
                "must list at least one modality (text, image, audio, video, code, biological_sequence, other)",
            );
        }
        duplicates(
            &mut e,
            "model.modality",
            m.modality.iter().map(|x| x.as_str()),
        );

        let d = &self.data;
        e.plausible("data.tokens", limits::TOKENS, d.tokens);
        e.plausible("data.epochs", limits::EPOCHS, d.epochs);
        if let Some(examples) = d.examples {
            e.plausible_count("data.examples", limits::EXAMPLES, examples);
        }
        match (d.synthetic_generator_parameters, d.synthetic_tokens) {
            (Some(p), Some(t)) => {
                e.plausible("data.synthetic_generator_parameters", limits::PARAMETERS, p);
                e.plausible("data.synthetic_tokens", limits::TOKENS, t);
            }
            (Some(_), None) => e.push(
                "data.synthetic_tokens",
                "give the tokens generated with synthetic_generator_parameters",
            ),
            (None, Some(_)) => e.push(
                "data.synthetic_generator_parameters",
                "give the generator's parameters with synthetic_tokens",
            ),
            (None, None) => {}
        }

        if let Some(c) = &self.compute {
            e.text("compute.accelerator", &c.accelerator, MAX_NAME_CHARS);
            e.plausible_count("compute.accelerators", limits::ACCELERATORS, c.accelerators);
            e.plausible(
                "compute.duration_days",
                limits::DURATION_DAYS,
                c.duration_days,
            );
            e.plausible(
                "compute.expected_utilization",
                limits::UTILIZATION,
                c.expected_utilization,
            );
            if let Some(flop) = c.additional_flop {
                e.plausible("compute.additional_flop", limits::FLOP, flop.get());
            }
            match (c.utilization_low, c.utilization_high) {
                (Some(low), Some(high)) => {
                    e.plausible("compute.utilization_low", limits::UTILIZATION, low);
                    e.plausible("compute.utilization_high", limits::UTILIZATION, high);
                    if !(low <= c.expected_utilization && c.expected_utilization <= high) {
                        e.push(
                            "compute.expected_utilization",
                            format!(
                                "{} lies outside the utilization range {}–{}",
                                limits::number(c.expected_utilization),
                                limits::number(low),
                                limits::number(high)
                            ),
                        );
                    }
                }
                (Some(_), None) => e.push(
                    "compute.utilization_high",
                    "give both ends of the utilization range, or neither",
                ),
                (None, Some(_)) => e.push(
                    "compute.utilization_low",
                    "give both ends of the utilization range, or neither",
                ),
                (None, None) => {}
            }
        }

        let mut seen_providers = BTreeSet::new();
        for (i, p) in self.providers.iter().enumerate() {
            let at = format!("providers[{i}]");
            e.identifier(&format!("{at}.provider"), &p.provider);
            if !p.provider.is_empty() && !seen_providers.insert(p.provider.as_str()) {
                e.push(
                    format!("{at}.provider"),
                    format!(
                        "{:?} is listed twice: put all its clusters in one entry",
                        p.provider
                    ),
                );
            }
            if p.clusters.is_empty() {
                e.push(
                    format!("{at}.clusters"),
                    "must name at least one cluster at this provider",
                );
            }
            for (j, c) in p.clusters.iter().enumerate() {
                e.text(&format!("{at}.clusters[{j}]"), c, MAX_NAME_CHARS);
            }
            duplicates(
                &mut e,
                &format!("{at}.clusters"),
                p.clusters.iter().map(String::as_str),
            );
        }

        if let Some(s) = &self.schedule {
            let start = s.start.unix().map_err(|m| e.push("schedule.start", m)).ok();
            let end = s.end.unix().map_err(|m| e.push("schedule.end", m)).ok();
            if let (Some(start), Some(end)) = (start, end)
                && end <= start
            {
                e.push(
                    "schedule.end",
                    format!("must be after schedule.start ({} ≥ {})", s.start, s.end),
                );
            }
        }

        if let Some(b) = &self.base_model {
            e.text("base_model.name", &b.name, MAX_NAME_CHARS);
            e.plausible(
                "base_model.cumulative_flop",
                limits::FLOP,
                b.cumulative_flop.get(),
            );
        }

        let s = &self.safeguards;
        if let Some(text) = &s.incident_response {
            e.text("safeguards.incident_response", text, MAX_TEXT_CHARS);
        }
        duplicates(
            &mut e,
            "safeguards.affordances",
            s.affordances.iter().map(|a| a.as_str()),
        );
        if s.affordances.contains(&Affordance::None) && s.affordances.len() > 1 {
            e.push(
                "safeguards.affordances",
                "\"none\" cannot be listed with other affordances",
            );
        }
        if let Some(plan) = &s.evaluation_plan {
            e.text(
                "safeguards.evaluation_plan.description",
                &plan.description,
                MAX_TEXT_CHARS,
            );
            let mut previous = None;
            for (i, m) in plan.milestones.iter().enumerate() {
                let at = format!("safeguards.evaluation_plan.milestones[{i}]");
                if let Err(message) = limits::FLOP.check(m.at_flop.get()) {
                    e.push(format!("{at}.at_flop"), message);
                } else if let Some(p) = previous
                    && m.at_flop <= p
                {
                    e.push(
                        format!("{at}.at_flop"),
                        format!(
                            "milestones must increase: {} is not above the previous {}",
                            m.at_flop, p
                        ),
                    );
                }
                previous = Some(m.at_flop);
                if m.evaluations.is_empty() {
                    e.push(
                        format!("{at}.evaluations"),
                        "must name at least one evaluation",
                    );
                }
                for (j, name) in m.evaluations.iter().enumerate() {
                    e.text(&format!("{at}.evaluations[{j}]"), name, MAX_NAME_CHARS);
                }
                duplicates(
                    &mut e,
                    &format!("{at}.evaluations"),
                    m.evaluations.iter().map(String::as_str),
                );
            }
        }

        let r = &self.responsibility;
        if let Some(url) = &r.safety_framework_url {
            check_url(&mut e, "responsibility.safety_framework_url", url);
        }
        if let Some(digest) = &r.safety_framework_sha256
            && !(digest.len() == 64 && digest.bytes().all(|b| b.is_ascii_hexdigit()))
        {
            e.push(
                "responsibility.safety_framework_sha256",
                format!(
                    "must be the document's SHA-256 as 64 hex digits, as `sha256sum` prints it (got {} characters)",
                    digest.chars().count()
                ),
            );
        }
        for (i, p) in r.practices.iter().enumerate() {
            e.text(&format!("responsibility.practices[{i}]"), p, MAX_TEXT_CHARS);
        }
        duplicates(
            &mut e,
            "responsibility.practices",
            r.practices.iter().map(String::as_str),
        );

        if e.0.is_empty() { Ok(()) } else { Err(e.0) }
    }

    /// Whether the plan can still be permitted at `now` (unix seconds): a schedule that has
    /// already ended would give a permit that is expired when it is issued. A draft may be
    /// stale; a submission may not.
    pub fn validate_schedule_at(&self, now: i64) -> Result<(), Vec<FieldError>> {
        let mut e = Errors::default();
        if let Some(s) = &self.schedule
            && let Ok(end) = s.end.unix()
            && end <= now
        {
            e.push(
                "schedule.end",
                format!(
                    "{} has passed: a permit for this schedule would be expired when issued; \
                     move the schedule (runpermit apply --start today keeps its length)",
                    s.end
                ),
            );
        }
        if e.0.is_empty() { Ok(()) } else { Err(e.0) }
    }
}

/// Names the first repeated entry of a list.
fn duplicates<'a>(e: &mut Errors, field: &str, items: impl Iterator<Item = &'a str>) {
    let mut seen = BTreeSet::new();
    for item in items {
        if !seen.insert(item) {
            e.push(field, format!("{item:?} is listed twice"));
            return;
        }
    }
}

fn check_url(e: &mut Errors, field: &str, url: &str) {
    let rest = url
        .strip_prefix("https://")
        .or_else(|| url.strip_prefix("http://"));
    let host = rest.map(|r| r.split(['/', '?', '#']).next().unwrap_or(""));
    let ok = matches!(host, Some(h) if !h.is_empty())
        && !url.chars().any(|c| c.is_whitespace() || c.is_control())
        && url.len() <= 2048;
    if !ok {
        e.push(
            field,
            format!("must be an http(s) URL such as https://example.org/safety-framework.pdf (got {url:?})"),
        );
    }
}

//! The validation pass: the settings' own checks (`tessera_config::validate`,
//! re-exported here), given this machine's GPUs, and the checks of what the
//! loaded components ask of the settings.

use std::path::Path;

use crate::choice::{ModelKind, Split};
use crate::manifest::{ComponentSpec, ExperimentKind, Settings, Variant};
use crate::plugin::{MetricHandle, SamplerHandle};
pub use tessera_config::validate::*;

/// Every problem with `s`, the settings of one variant whose manifest is in
/// `base`, on this machine.
pub fn settings(s: &Settings, base: &Path) -> Vec<Problem> {
    tessera_config::validate::settings(s, base, crate::run::gpu_count)
}

/// Observation requests of `metric` (the component `spec` names) that a
/// variant with settings `s` cannot serve.
pub fn metric_requests(s: &Settings, spec: &ComponentSpec, metric: &MetricHandle) -> Vec<Problem> {
    observation_requests(s, spec, "metric", metric.requires())
}

/// What keeps `metric` (`pool = "seeds"`) from pooling `variant`'s seeds:
/// a variant that is not a `train` one with two seeds or more, data that
/// differs by seed (no `data.seed`), or a request for anything but the
/// `population-*` observations of final models.
pub fn pooled_metric(variant: &Variant, spec: &ComponentSpec, metric: &MetricHandle) -> Vec<Problem> {
    let problem = |key: &str, message: String, hint: &str| Problem {
        key: format!("{}.{key}", spec.key),
        message: format!("metric {} (pool = \"seeds\"): {message}", spec.id),
        hint: Some(hint.to_string()),
    };
    let mut out = Vec::new();
    let seeds = variant.seed_group.as_ref().map_or(1, |g| g.seeds.len());
    if variant.settings.experiment.kind != ExperimentKind::Train || seeds < 2 {
        out.push(problem(
            "pool",
            format!("variant `{}` is not a `train` experiment with two seeds or more", variant.name),
            "set experiment.seeds = [1, 2, 3] (and experiment.kind = \"train\"), or remove `pool`",
        ));
    }
    if variant.settings.data.seed.is_none() {
        out.push(Problem {
            key: "data.seed".into(),
            message: format!(
                "metric {} pools the seeds, but without data.seed each seed draws its own data, so their points differ",
                spec.id
            ),
            hint: Some("set data.seed (e.g. data.seed = 0): every seed then evaluates the same points".into()),
        });
    }
    let mut s = variant.settings.clone();
    s.experiment.kind = ExperimentKind::Population;
    out.extend(observation_requests(&s, spec, "metric", metric.requires()));
    for r in metric.requires().unwrap_or_default() {
        let kind = r.kind.as_str();
        let pooled = tessera_sdk::observation::POPULATION_KINDS.contains(&kind)
            && kind != tessera_sdk::observation::POPULATION_TRAIN_LABELS;
        if !pooled {
            out.push(problem(
                "use",
                format!("asks for `{kind}`; pooled seeds give only the population observations of their final models"),
                "known: population-correct, population-predictions, population-true-probability, \
                 population-probabilities, population-run, population-members, labels, example-ids",
            ));
        }
    }
    out
}

/// Observation requests of `sampler` that a variant with settings `s`
/// cannot serve: a sampler observes training data only.
pub fn sampler_requests(s: &Settings, spec: &ComponentSpec, sampler: &SamplerHandle) -> Vec<Problem> {
    let requests = sampler.requires();
    let mut out = observation_requests(s, spec, "sampler", requests.clone());
    for r in requests.unwrap_or_default().iter().filter(|r| r.split.as_str() != "train") {
        out.push(Problem {
            key: format!("{}.use", spec.key),
            message: format!(
                "sampler {}: asks for split `{}`; a sampler learns from the `train` split only",
                spec.id, r.split
            ),
            hint: Some("fix the plugin's `requires`".into()),
        });
    }
    out
}

/// Observation requests of `finetuner` that a variant with settings `s`
/// cannot serve.
pub fn finetuner_requests(
    s: &Settings,
    spec: &ComponentSpec,
    finetuner: &crate::plugin::FinetunerHandle,
) -> Vec<Problem> {
    observation_requests(s, spec, "finetuner", finetuner.requires())
}

/// `experiment.batch > 1` trains the seeds of a `train` variant as one
/// batched model: not with a finetuner, nor a sampler that selects per step.
pub fn seeds_batch(variant: &Variant, sampler: Option<&SamplerHandle>) -> Vec<Problem> {
    let s = &variant.settings;
    let explicit = matches!(s.experiment.batch, crate::manifest::MemberBatch::Runs(k) if k > 1);
    if !explicit || s.experiment.kind != ExperimentKind::Train {
        return vec![];
    }
    let selects = sampler.and_then(|s| s.candidates().ok().flatten()).is_some();
    let why = match (&variant.finetuner, selects, &variant.sampler) {
        (Some(f), _, _) => {
            format!("finetuner {} chooses layers per seed, which a batch of seeds does not do yet", f.id)
        }
        (None, true, Some(spec)) => {
            format!("sampler {} selects per step, which a batch of seeds does not do yet", spec.id)
        }
        _ => return vec![],
    };
    vec![Problem {
        key: "experiment.batch".into(),
        message: why,
        hint: Some("set experiment.batch = 1 (or \"auto\", which batches only where it can)".into()),
    }]
}

/// A finetuner's oracle cannot train candidates in the order of a sampler
/// that observes training (the candidates give it no observations).
pub fn oracle_order(s: &Settings, spec: &ComponentSpec, sampler: &SamplerHandle) -> Vec<Problem> {
    let observes = sampler.requires().map(|r| !r.is_empty()).unwrap_or(false);
    if s.train.oracle_order != crate::choice::OracleOrder::Sampler || !observes {
        return vec![];
    }
    vec![Problem {
        key: "train.oracle_order".into(),
        message: format!(
            "the finetuner's oracle trains candidates in the sampler's order, but sampler {} observes training, \
             which the oracle's candidates cannot feed it",
            spec.id
        ),
        hint: Some("set train.oracle_order = \"shuffle\" (candidates train in a host shuffle)".into()),
    }]
}

/// The requests a component (`what`: metric, sampler) made that a variant
/// with settings `s` cannot serve.
fn observation_requests(
    s: &Settings,
    spec: &ComponentSpec,
    what: &str,
    requests: Result<Vec<tessera_sdk::ObservationRequest>, crate::plugin::ComponentError>,
) -> Vec<Problem> {
    let problem = |message: String, hint: &str| Problem {
        key: format!("{}.use", spec.key),
        message: format!("{what} {}: {message}", spec.id),
        hint: Some(hint.to_string()),
    };
    let mut requests = match requests {
        Ok(r) => r,
        Err(e) => return vec![problem(e.to_string(), "fix the plugin: `requires` must not panic")],
    };
    requests.sort_by(|a, b| (a.split.as_str(), a.kind.as_str()).cmp(&(b.split.as_str(), b.kind.as_str())));
    requests.dedup();
    let mut out = Vec::new();
    for r in &requests {
        let (split, kind) = (r.split.as_str(), r.kind.as_str());
        match split.parse::<Split>() {
            Err(_) => {
                out.push(problem(format!("asks for split `{split}`"), "known splits: train, validation, test, shifted"))
            }
            Ok(Split::Shifted) if !s.data.shift.is_enabled() => {
                out.push(problem("asks for the `shifted` split".into(), "add [data.shift] with noise or translate"))
            }
            Ok(_) => {}
        }
        if !tessera_sdk::observation::ALL.contains(&kind) {
            out.push(problem(
                format!("asks for observation `{kind}`, which the host does not know"),
                &format!("known: {}", tessera_sdk::observation::ALL.join(", ")),
            ));
        }
        let reference_kinds =
            [tessera_sdk::observation::REFERENCE_PREDICTIONS, tessera_sdk::observation::REFERENCE_LOSS];
        if reference_kinds.contains(&kind) && s.reference.model.kind == ModelKind::None {
            out.push(problem(
                format!("asks for `{kind}`, and the manifest has no [reference] classifier"),
                "add [reference] with model = { kind = \"linear\" }",
            ));
        }
        let population_only = tessera_sdk::observation::POPULATION_KINDS.contains(&kind)
            && ![tessera_sdk::observation::LABELS, tessera_sdk::observation::EXAMPLE_IDS].contains(&kind);
        if population_only && s.experiment.kind != ExperimentKind::Population {
            out.push(problem(
                format!("asks for `{kind}`, which only population experiments have"),
                "set experiment.kind = \"population\"",
            ));
        }
    }
    out
}

//! Metrics with `pool = "seeds"`: a `train` variant's seeds observed as one
//! population. Each seed's unit saves its final model's predictions on the
//! splits those metrics ask for as a one-member population part
//! (`pooled-part/` in its work folder); collect stacks the parts in the
//! order of `experiment.seeds` (row `i`, `population-run` `i`: seed `i`),
//! saves them as `population/<variant>+seeds/` and hands them to one
//! instance of each pooled metric, as a population experiment's metrics
//! receive theirs. The entry in results.json is `<variant>+seeds`; its
//! `pooled_from` lists the runs it pooled.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{bail, Result};
use crate::manifest::{ComponentSpec, ExperimentKind, Variant};
use crate::report::{ReportJson, RunResults, Status, VariantResult};

use super::plan::Plan;
use super::{unit, RunOptions, Session};

/// The folder of a unit's pooled part, in its work folder.
pub(super) const PART: &str = "pooled-part";

/// The splits the pooled metrics of `variant` ask for, and whether one of
/// them wants the softmax outputs.
pub(super) fn wanted(session: &Session, variant: &Variant) -> Result<(Vec<String>, bool)> {
    let (mut splits, mut probabilities) = (Vec::<String>::new(), false);
    for spec in variant.pooled_metrics() {
        let metric = session.registry.new_metric(&spec.id, &spec.params_text())?;
        for request in metric.requires()? {
            if !splits.iter().any(|s| s == request.split.as_str()) {
                splits.push(request.split.to_string());
            }
            probabilities |= request.kind.as_str() == tessera_sdk::observation::POPULATION_PROBABILITIES;
        }
    }
    Ok((splits, probabilities))
}

/// Whether a unit of `variant` saves a pooled part.
pub(super) fn pools(variant: &Variant) -> bool {
    variant.seed_group.is_some() && variant.pooled_metrics().next().is_some()
}

/// The seeds of one variant, as `plan` runs them, in `experiment.seeds` order.
struct Group<'a> {
    /// The entry's name, `<variant>+seeds`.
    name: String,
    /// The runs, one per seed.
    runs: Vec<&'a Variant>,
}

/// The groups of `plan` with pooled metrics; a group whose seeds are not all
/// in the plan (`--variant` named some) is left out with a warning.
fn groups<'a>(session: &'a Session, plan: &Plan) -> Vec<Group<'a>> {
    let planned = |v: &&Variant| plan.variants.iter().any(|p| p.name == v.name);
    let mut out: Vec<Group> = Vec::new();
    for variant in session.variants.iter().filter(planned).filter(|v| pools(v)) {
        let name = variant.seed_group.as_ref().expect("pools").pooled_name();
        match out.iter_mut().find(|g| g.name == name) {
            Some(group) => group.runs.push(variant),
            None => out.push(Group { name, runs: vec![variant] }),
        }
    }
    out.retain(|g| {
        let all = g.runs[0].seed_group.as_ref().map_or(0, |s| s.seeds.len());
        if g.runs.len() != all {
            log::warn!("{}: {} of {all} seeds in this run; the pooled metrics need them all", g.name, g.runs.len());
        }
        g.runs.len() == all
    });
    out
}

/// One entry per seed group with pooled metrics, after the runs' entries in
/// `results`.
pub(super) fn collect_pooled(
    session: &Session,
    plan: &Plan,
    run_dir: &Path,
    options: &RunOptions,
    results: &RunResults,
) -> Vec<VariantResult> {
    groups(session, plan).iter().map(|group| pooled_entry(session, plan, group, run_dir, options, results)).collect()
}

/// The entry of one group: its pooled metrics' reports, or the reason they
/// could not run.
fn pooled_entry(
    session: &Session,
    plan: &Plan,
    group: &Group,
    run_dir: &Path,
    options: &RunOptions,
    results: &RunResults,
) -> VariantResult {
    let started = Instant::now();
    let first = group.runs[0];
    let specs: Vec<&ComponentSpec> = first.pooled_metrics().collect();
    let components = specs.iter().map(|s| (format!("metric:{}", s.id), s.id.clone())).collect();
    let mut entry = VariantResult {
        name: group.name.clone(),
        status: Status::Ok,
        error: None,
        seconds: 0.0,
        components,
        results: BTreeMap::new(),
        device: results.variants.iter().find(|v| v.name == first.name).and_then(|v| v.device.clone()),
        pooled_from: group.runs.iter().map(|v| v.name.clone()).collect(),
        stopped_at: None,
    };
    let outcome = std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| {
        let parts = parts(plan, group, run_dir, results)?;
        observe(session, &specs, &parts, group, (run_dir, options))
    }));
    let outcome =
        outcome.unwrap_or_else(|panic| Err(crate::error::invalid!("internal error: {}", unit::panic_text(&panic))));
    super::collect::settle(&mut entry, outcome);
    entry.seconds = started.elapsed().as_secs_f64();
    entry
}

/// The pooled part of each run of `group`, in seed order; an error naming
/// the first run that did not finish.
fn parts(plan: &Plan, group: &Group, run_dir: &Path, results: &RunResults) -> Result<Vec<PathBuf>> {
    let run = crate::confined::Confined::new(run_dir);
    let mut out = Vec::new();
    for variant in &group.runs {
        let ok = results.variants.iter().any(|v| v.name == variant.name && v.status == Status::Ok);
        let planned = plan.variants.iter().find(|p| p.name == variant.name && p.kind == ExperimentKind::Train);
        let (true, Some(planned)) = (ok, planned) else {
            bail!("run `{}` did not finish; the pooled metrics need every seed", variant.name)
        };
        for &id in &planned.units {
            let part = unit::unit_path(id).join("work").join(PART);
            // A unit of several seeds keeps each one's part in a folder of its name.
            let own = part.join(crate::report::file_stem_safe(&variant.name));
            out.push(run.path(if run.exists(&own) { own } else { part })?);
        }
    }
    Ok(out)
}

/// Without libtorch there are no parts to read.
#[cfg(not(feature = "torch"))]
fn observe(
    _: &Session,
    _: &[&ComponentSpec],
    _: &[PathBuf],
    group: &Group,
    _: (&Path, &RunOptions),
) -> Result<BTreeMap<String, ReportJson>> {
    bail!("`{}`: {}", group.name, super::NO_LIBTORCH)
}

/// The parts stacked in seed order, saved under `population/`, and handed
/// to the pooled metrics; the engine's report (the members table) and theirs.
#[cfg(feature = "torch")]
fn observe(
    session: &Session,
    specs: &[&ComponentSpec],
    parts: &[PathBuf],
    group: &Group,
    (run_dir, options): (&Path, &RunOptions),
) -> Result<BTreeMap<String, ReportJson>> {
    use crate::error::Context;
    use crate::population::Population;
    let mut population = Population::default();
    for dir in parts {
        population.append(Population::load(dir)?).with_context(|| format!("stacking {}", dir.display()))?;
    }
    population.save(&run_dir.join("population").join(crate::report::file_stem_safe(&group.name)))?;
    let mut reports = BTreeMap::new();
    reports.insert("engine".to_string(), super::population::engine_report(&population));
    let seed = group.runs[0].settings.experiment.seed;
    let at = (run_dir, group.name.as_str());
    super::population::observe_population(session, specs, &population, (seed, options), &mut reports, at)?;
    Ok(reports)
}

/// Saves the pooled part of a `train` unit of `variant`: its final `model`
/// (after `summary`'s steps) evaluated on the splits of `data` its pooled
/// metrics ask for (`wanted`), as a one-member population in `part`
/// (`work/pooled-part/`, or a folder of the variant's name in it when
/// its seeds share a unit).
#[cfg(feature = "torch")]
pub(super) fn save_part(
    variant: &Variant,
    (names, probabilities): &(Vec<String>, bool),
    (model, data, device): (&crate::model::Model, &crate::data::Splits, tch::Device),
    summary: &crate::train::FitSummary,
    part: &Path,
) -> Result<()> {
    use crate::population::{describe, Member, Population};
    let Some(group) = variant.seed_group.as_ref() else { return Ok(()) };
    let evaluated = names
        .iter()
        .map(|n| Ok((n.clone(), crate::train::TensorData::new(data.get(n)?, device))))
        .collect::<Result<Vec<_>>>()?;
    let s = &variant.settings;
    let member = Member {
        run: group.index(s.experiment.seed),
        model: describe(&s.model),
        width: 1.0,
        seed: s.experiment.seed,
        setting: 0,
        setting_label: String::new(),
        batch_size: s.train.batch_size,
        epochs: s.train.epochs,
        step: summary.steps,
        examples_seen: summary.examples_seen,
        accuracy: BTreeMap::new(),
    };
    Ok(Population::of_one(model, member, &evaluated, data.train.classes, *probabilities)?.save(part)?)
}

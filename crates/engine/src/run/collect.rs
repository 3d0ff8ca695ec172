//! Collect: merges the units' outputs into the run folder exactly as a
//! single process writes it (`results.json`, `tables/`, `plots/`,
//! `population/`, models, encoders), running each population's reduce step.
//! A variant whose units did not all finish is recorded as failed, naming
//! them; the others' results are kept. Collecting again after a resume
//! gives the complete folder.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::Path;
use std::time::Instant;

use crate::error::{bail, Context, Result};
use tessera_sdk::ComponentKind;

use super::plan::{Plan, PlannedVariant};
use super::unit::{self, UnitResult};
use super::{RunOptions, Session};
use crate::confined::Confined;
use crate::manifest::{ExperimentKind, Variant};
use crate::report::{self, ReportJson, RunResults, Status, VariantResult};

/// Collects every variant of `plan` into `run_dir`; the results.
pub fn collect(session: &Session, plan: &Plan, run_dir: &Path, options: &RunOptions) -> Result<RunResults> {
    let plots = session.variants.first().map(|v| v.settings.experiment.plots.clone()).unwrap_or_default();
    let mut results = RunResults { plots, ..no_variants_yet(plan) };
    for planned in &plan.variants {
        let variant = session
            .variants
            .iter()
            .find(|v| v.name == planned.name)
            .with_context(|| format!("the manifest has no variant `{}` any more", planned.name))?;
        results.variants.push(collect_variant(session, (plan, planned), variant, run_dir, options));
        // Only a finished unit's files join the run folder: a failed one's
        // stay with it, and are replaced when it runs again.
        for &id in planned.units.iter().filter(|&&id| unit::is_done(run_dir, id)) {
            merge_work(id, run_dir)?;
        }
    }
    let pooled = super::pooled::collect_pooled(session, plan, run_dir, options, &results);
    results.variants.extend(pooled);
    warn_mixed_cpus(session, plan, run_dir);
    results.save(run_dir)?;
    report::write_tables(&results, run_dir)?;
    let plots = report::write_plots(&results, run_dir)?;
    crate::html::write_report_page(&results, run_dir, &plots)?;
    Ok(results)
}

/// `results.json` and `report.html` of a run still going: the variants whose
/// units are all done, as collect will show them (a population once its reduce step has
/// run, at the end), and the names of the others, still to come.
pub(super) fn progress_page(session: &Session, plan: &Plan, run_dir: &Path, options: &RunOptions) -> Result<()> {
    let mut results = no_variants_yet(plan);
    let mut pending = Vec::new();
    for planned in &plan.variants {
        let done = planned.units.iter().all(|&id| unit::is_done(run_dir, id));
        let variant = session.variants.iter().find(|v| v.name == planned.name);
        match variant {
            Some(variant) if done && planned.kind != ExperimentKind::Population => {
                results.variants.push(collect_variant(session, (plan, planned), variant, run_dir, options))
            }
            _ => pending.push(planned.name.clone()),
        }
    }
    // The finished variants' results are on disk as soon as they are known,
    // so that no stop (a second Ctrl-C, a kill) loses them; collect rewrites
    // the file whole at the end.
    results.save(run_dir)?;
    let plots = report::write_plots(&results, run_dir)?;
    crate::html::write_progress_page(&results, run_dir, &plots, &pending)?;
    Ok(())
}

/// The results of `plan` before any variant is collected.
pub(super) fn no_variants_yet(plan: &Plan) -> RunResults {
    RunResults {
        schema_version: report::SCHEMA_VERSION.into(),
        tessera_version: env!("CARGO_PKG_VERSION").into(),
        experiment: plan.experiment.clone(),
        manifest: plan.manifest.display().to_string(),
        started: plan.started.clone(),
        variants: vec![],
        plots: vec![],
        system: Some(tessera_report::system::SystemInfo {
            kernels: plan.reproducible.as_str().into(),
            ..tessera_report::system::SystemInfo::here(plan.threads.unwrap_or(0))
        }),
    }
}

/// One variant's entry of results.json, from its units (and its reduce step).
fn collect_variant(
    session: &Session,
    (plan, planned): (&Plan, &PlannedVariant),
    variant: &Variant,
    run_dir: &Path,
    options: &RunOptions,
) -> VariantResult {
    let checked: Vec<(usize, Result<Option<UnitResult>>)> =
        planned.units.iter().map(|&id| (id, unit::checked_result(run_dir, id))).collect();
    let damaged = checked.iter().find_map(|(_, r)| r.as_ref().err().map(|e| crate::error::invalid!("{}", e.chain())));
    let units: Vec<(usize, Option<UnitResult>)> = checked.into_iter().map(|(id, r)| (id, r.ok().flatten())).collect();
    // A batch of seeds' time is shared equally by its seeds.
    let share = |id: usize| match &plan.units[id].work {
        super::plan::Work::Seeds { variants } => variants.len().max(1) as f64,
        _ => 1.0,
    };
    let seconds: f64 = units.iter().filter_map(|(id, r)| r.as_ref().map(|r| r.seconds / share(*id))).sum();
    let device = units
        .iter()
        .find_map(|(_, r)| r.as_ref().and_then(|r| r.device.clone()))
        .or_else(|| super::setup::variant_device(&variant.settings));
    let mut entry = VariantResult {
        name: variant.name.clone(),
        status: Status::Ok,
        error: None,
        seconds,
        components: components(variant),
        results: BTreeMap::new(),
        device,
        pooled_from: vec![],
        stopped_at: None,
    };
    if damaged.is_none() {
        if let Some((step, reports)) = stopped_so_far((session, plan), (variant, planned.kind), run_dir, &units) {
            entry.status = Status::Stopped;
            entry.error = Some(format!("stopped at step {step} with its state saved: `tessera resume` continues it"));
            (entry.stopped_at, entry.results) = (Some(step), reports);
            return entry;
        }
    }
    let outcome = damaged.map_or(Ok(()), Err).and_then(|()| unfinished(&units)).and_then(|()| match planned.kind {
        ExperimentKind::Population => reduce(session, variant, (plan, planned), run_dir, options, &mut entry.seconds),
        _ => {
            Ok(units.into_iter().next().and_then(|(_, r)| r).map(|r| own_reports(r, &variant.name)).unwrap_or_default())
        }
    });
    settle(&mut entry, outcome);
    entry
}

/// Variant `name`'s reports in its unit's result: the unit's own, or its
/// entry when the unit trained a batch of seeds.
fn own_reports(mut result: UnitResult, name: &str) -> BTreeMap<String, ReportJson> {
    match result.seeds.remove(name) {
        Some(reports) => reports,
        None => result.results,
    }
}

/// A variant whose units all finished or stopped (a signal, or a kill)
/// with a saved state, some of them stopped: the step the first stopped
/// one continues from, and for a `train` variant its results so far.
fn stopped_so_far(
    (session, plan): (&Session, &Plan),
    (variant, kind): (&Variant, ExperimentKind),
    run_dir: &Path,
    units: &[(usize, Option<UnitResult>)],
) -> Option<(u64, BTreeMap<String, ReportJson>)> {
    let saved_step = |id: usize| super::checkpoints::UnitCheckpoints::of(run_dir, id).latest_info().map(|i| i.step);
    let mut first = None;
    for (id, result) in units {
        let step = match result {
            Some(r) if r.status == Status::Ok => continue,
            Some(r) => r.stopped_at?,
            None => saved_step(*id)?,
        };
        first = first.or(Some((*id, step)));
    }
    let (id, step) = first?;
    match (kind, &plan.units[id].work) {
        #[cfg(feature = "torch")]
        (ExperimentKind::Train, super::plan::Work::Seeds { variants }) => {
            let first = session.variants.iter().find(|v| v.name == variants[0])?;
            let store = super::checkpoints::UnitCheckpoints::of(run_dir, id);
            let resuming = super::train::resume::Resuming::new(store, first);
            super::train::seeds::results_so_far(variant, &resuming)
        }
        #[cfg(feature = "torch")]
        (ExperimentKind::Train, _) => super::train::results_so_far(variant, run_dir, id),
        _ => {
            let _ = (session, variant, id);
            Some((step, BTreeMap::new()))
        }
    }
}

/// An entry's reports, or its failure (logged, and kept as its error).
pub(super) fn settle(entry: &mut VariantResult, outcome: Result<BTreeMap<String, ReportJson>>) {
    match outcome {
        Ok(reports) => entry.results = reports,
        Err(e) => {
            log::error!("variant `{}` failed: {}", entry.name, e.chain());
            entry.status = Status::Failed;
            entry.error = Some(e.chain());
        }
    }
}

/// Warns of each variant (seeds together) whose units ran on different kinds
/// of CPU in native mode: its figures may differ in their last bits.
fn warn_mixed_cpus(session: &Session, plan: &Plan, run_dir: &Path) {
    if session.variants.iter().any(|v| v.settings.experiment.reproducible == crate::manifest::Reproducible::Portable) {
        return;
    }
    let mut cpus: BTreeMap<&str, std::collections::BTreeSet<String>> = BTreeMap::new();
    for planned in &plan.variants {
        for &id in &planned.units {
            if let Ok(Some(result)) = unit::checked_result(run_dir, id) {
                let family = cpus.entry(report::base_name(&planned.name)).or_default();
                family.extend(Some(result.ran.cpu).filter(|c| !c.is_empty()));
            }
        }
    }
    for (variant, kinds) in cpus.iter().filter(|(_, kinds)| kinds.len() > 1) {
        let kinds: Vec<&str> = kinds.iter().map(String::as_str).collect();
        log::warn!(
            "`{variant}`: its units ran on {} kinds of CPU ({}); libtorch picks kernels by CPU, so their figures may \
             differ in their last bits: set experiment.reproducible = \"portable\" for the same bits on any of them",
            kinds.len(),
            kinds.join("; ")
        );
    }
}

/// An error naming the first unit that failed or did not finish.
fn unfinished(units: &[(usize, Option<UnitResult>)]) -> Result<()> {
    for (id, result) in units {
        match result {
            None => bail!("unit {id} did not finish (see units/{id:05}/; `tessera resume` runs it again)"),
            Some(r) if r.status != Status::Ok => {
                bail!("{}", r.error.clone().unwrap_or_else(|| format!("unit {id} failed")))
            }
            Some(_) => {}
        }
    }
    Ok(())
}

/// A population's reduce step, its panics caught; adds its time to `seconds`.
fn reduce(
    session: &Session,
    variant: &Variant,
    (plan, planned): (&Plan, &PlannedVariant),
    run_dir: &Path,
    options: &RunOptions,
    seconds: &mut f64,
) -> Result<BTreeMap<String, ReportJson>> {
    let started = Instant::now();
    let run = Confined::new(run_dir);
    // The units of runs, not those that pretrain their encoders.
    let parts = (planned.units.iter())
        .filter(|&&id| matches!(plan.units[id].work, super::plan::Work::PopulationRuns { .. }))
        .map(|&id| run.path(unit::unit_path(id).join("work").join(super::population::PART)))
        .collect::<Result<Vec<_>, _>>()?;
    let outcome =
        catch_unwind(AssertUnwindSafe(|| super::population::reduce(session, variant, &parts, options, run_dir)));
    *seconds += started.elapsed().as_secs_f64();
    match outcome {
        Ok(result) => result,
        Err(panic) => bail!("internal error: {}", unit::panic_text(&panic)),
    }
}

/// The `plugin.component` behind each role (the pooled metrics are the
/// `<variant>+seeds` entry's).
fn components(variant: &Variant) -> BTreeMap<String, String> {
    variant
        .components()
        .into_iter()
        .filter(|(_, spec)| spec.pool == crate::manifest::MetricPool::Each)
        .map(|(kind, spec)| {
            let role = if kind == ComponentKind::Metric { format!("metric:{}", spec.id) } else { spec.key.clone() };
            (role, spec.id.clone())
        })
        .collect()
}

/// Moves a unit's files (models, encoders, shards kept, graphs) into the run
/// folder; its population and pooled parts stay with the unit. Never replaces a file,
/// and never follows a link, inside the unit or the run folder.
fn merge_work(id: usize, run_dir: &Path) -> Result<()> {
    let run = Confined::new(run_dir);
    let work = unit::unit_path(id).join("work");
    let Ok(names) = run.names(&work) else { return Ok(()) };
    let parts = [super::population::PART, super::pooled::PART];
    for name in names.into_iter().filter(|n| !parts.iter().any(|p| n == p)) {
        merge_entry(&run, &work.join(&name), Path::new(&name))?;
    }
    Ok(())
}

fn merge_entry(run: &Confined, from: &Path, to: &Path) -> Result<()> {
    let (from_path, to_path) = (run.path(from)?, run.path(to)?);
    let is_dir = |p: &Path| p.symlink_metadata().is_ok_and(|m| m.is_dir());
    if is_dir(&from_path) && is_dir(&to_path) {
        for name in run.names(from)? {
            merge_entry(run, &from.join(&name), &to.join(&name))?;
        }
        return Ok(());
    }
    if to_path.symlink_metadata().is_ok() {
        log::warn!("{} exists: {} left with its unit", to_path.display(), from_path.display());
        return Ok(());
    }
    run.rename(from, to).with_context(|| format!("moving {} to {}", from_path.display(), to_path.display()))
}

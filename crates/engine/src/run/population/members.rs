//! Training a population's units and reducing them (libtorch).

use std::collections::BTreeMap;
use std::path::Path;
use std::time::Instant;

use crate::error::{Context, Result};

use super::resume::PopulationStore;
use super::PART;
use crate::manifest::Variant;
use crate::plugin::CallContext;
use crate::population::{Population, PopulationInputs, PopulationPlan, RunSpec};
use crate::report::{self, ReportJson};
use crate::run::metrics::finish_metrics;
use crate::run::progress::PopulationProgress;
use crate::run::setup::{progress_bar, role_seed, set_up_libtorch};
use crate::run::train::resume::Resuming;
use crate::run::{RunOptions, Session};

/// Trains `runs` of `variant`'s population and saves them as
/// `<unit_dir>/population-part/` (encoders under `pretrained/<variant>/`),
/// saving the unit's state as it goes into `resuming` and continuing from
/// the newest there. With `pretrained`, the runs start from the encoders a
/// pretraining unit saved there.
pub(in crate::run) fn run_part(
    session: &Session,
    variant: &Variant,
    runs: &[RunSpec],
    options: &RunOptions,
    (unit_dir, resuming, pretrained): (&Path, Resuming, Option<&Path>),
) -> Result<()> {
    let store = PopulationStore(resuming);
    let file = PopulationProgress::new(&variant.name, unit_dir.parent().unwrap_or(unit_dir));
    let report = |at| file.report(at);
    let part = with_inputs(session, variant, (unit_dir, options), |plan, inputs| {
        let inputs = PopulationInputs { store: Some(&store), pretrained, progress: Some(&report), ..inputs };
        let bar = progress_bar(options, runs.len() as u64, format!("{}: population", variant.name));
        let part = Population::train_runs(plan, runs, &inputs, &options.cancel, bar.as_ref())?;
        bar.iter().for_each(indicatif::ProgressBar::finish_and_clear);
        Ok(part)
    })?;
    Ok(part.save(&unit_dir.join(PART))?)
}

/// Pretrains `variant`'s encoder of `architecture` into
/// `<unit_dir>/pretrained/<variant>/`, for the units of its runs.
pub(in crate::run) fn run_pretrain(
    session: &Session,
    variant: &Variant,
    architecture: usize,
    options: &RunOptions,
    unit_dir: &Path,
) -> Result<()> {
    with_inputs(session, variant, (unit_dir, options), |plan, inputs| {
        Population::pretrain_encoder(plan, architecture, &inputs)
    })
}

/// The folder of a unit's pretrained encoders of `variant`, relative to its work folder.
pub(in crate::run) fn encoders_dir(variant: &Variant) -> std::path::PathBuf {
    Path::new("pretrained").join(report::file_stem_safe(&variant.name))
}

/// Calls `train` with the population's plan and what its runs train on:
/// libtorch set up, the clean data read, encoders saved under `unit_dir`.
fn with_inputs<T>(
    session: &Session,
    variant: &Variant,
    (unit_dir, options): (&Path, &RunOptions),
    train: impl FnOnce(&PopulationPlan, PopulationInputs) -> tessera_torch::Result<T>,
) -> Result<T> {
    let s = &variant.settings;
    let seed = s.experiment.seed;
    let device = set_up_libtorch(&s.experiment)?;
    let plan = PopulationPlan::new(&s.population, &s.train)?;
    // Clean labels here: each run draws its settings' label noise itself.
    let splits = session.clean_data(&s.data, seed)?;
    let encoders = unit_dir.join(encoders_dir(variant));
    let make_sampler = |run_seed: u64| -> tessera_torch::Result<(crate::plugin::SamplerHandle, CallContext)> {
        let spec = variant.sampler.as_ref().expect("only with a sampler");
        let sampler = session.registry.new_sampler(&spec.id, &spec.params_text())?;
        Ok((sampler, CallContext::new(role_seed(run_seed, "sampler"), options.cancel.clone())))
    };
    let inputs = PopulationInputs {
        config: &s.population,
        pretrain: &s.pretrain,
        encoders: Some(&encoders),
        pretrained: None,
        splits: &splits,
        device,
        seed: role_seed(seed, "population"),
        sampler: variant.sampler.as_ref().map(|_| &make_sampler as &crate::population::SamplerFactory),
        store: None,
        progress: None,
    };
    Ok(train(&plan, inputs)?)
}

/// The reduce step: the population (its parts joined in row order, or
/// `population.load`), saved under `population/<variant>/`, then the engine's
/// report and the metrics'.
pub(in crate::run) fn reduce(
    session: &Session,
    variant: &Variant,
    parts: &[std::path::PathBuf],
    options: &RunOptions,
    run_dir: &Path,
) -> Result<BTreeMap<String, ReportJson>> {
    let started = Instant::now();
    set_up_libtorch(&variant.settings.experiment)?;
    let population = match &variant.settings.population.load {
        Some(path) => {
            let dir = session.manifest.dir().join(path);
            let p = Population::load(&dir).with_context(|| format!("population.load = \"{path}\""))?;
            log::info!("{}: loaded {} members from {}", variant.name, p.len(), dir.display());
            p
        }
        None => join(parts)?,
    };
    let folder = run_dir.join("population").join(report::file_stem_safe(&variant.name));
    population.save(&folder)?;
    log::info!("{}: {} members saved to {}", variant.name, population.len(), folder.display());
    let mut reports = BTreeMap::new();
    let mut engine = engine_report(&population);
    engine.scalars.insert("seconds".into(), started.elapsed().as_secs_f64());
    reports.insert("engine".to_string(), engine);
    observe(session, variant, &population, options, &mut reports, run_dir)?;
    Ok(reports)
}

/// The units' parts, joined in row order (a batch's runs need not be
/// consecutive).
fn join(parts: &[std::path::PathBuf]) -> Result<Population> {
    let mut population = Population::default();
    for dir in parts {
        population.append(Population::load(dir)?).with_context(|| format!("joining {}", dir.display()))?;
    }
    Ok(population.into_run_order())
}

/// The engine's report: counts, accuracy ranges, the `members` table.
pub(in crate::run) fn engine_report(population: &Population) -> ReportJson {
    let mut engine = ReportJson::default();
    engine.scalars.insert("members".into(), population.len() as f64);
    let runs = population.members.iter().map(|m| m.run).collect::<std::collections::BTreeSet<_>>().len();
    engine.scalars.insert("runs".into(), runs as f64);
    let splits: Vec<&String> = population.splits.keys().collect();
    for split in &splits {
        let accuracies = population.members.iter().map(|m| m.accuracy[split.as_str()]);
        let (lo, hi) = accuracies.fold((f64::MAX, f64::MIN), |(lo, hi), a| (lo.min(a), hi.max(a)));
        engine.scalars.insert(format!("points_{split}"), population.splits[split.as_str()].labels.len() as f64);
        engine.scalars.insert(format!("min_accuracy_{split}"), lo);
        engine.scalars.insert(format!("max_accuracy_{split}"), hi);
    }
    let mut columns: Vec<String> =
        ["member", "run", "model", "width", "seed", "setting", "epochs", "step", "examples_seen"]
            .map(String::from)
            .to_vec();
    columns.extend(splits.iter().map(|s| format!("{s}_accuracy")));
    let rows = population.members.iter().enumerate().map(|(i, m)| {
        let mut row = vec![
            serde_json::json!(i),
            serde_json::json!(m.run),
            serde_json::json!(m.model),
            serde_json::json!(m.width),
            serde_json::json!(m.seed),
            serde_json::json!(m.setting_label),
            serde_json::json!(m.epochs),
            serde_json::json!(m.step),
            serde_json::json!(m.examples_seen),
        ];
        row.extend(splits.iter().map(|s| serde_json::json!(m.accuracy[s.as_str()])));
        row
    });
    engine.tables.push(report::TableJson { name: "members".into(), columns, rows: rows.collect() });
    engine
}

/// Hands the population to every metric at one final checkpoint.
fn observe(
    session: &Session,
    variant: &Variant,
    population: &Population,
    options: &RunOptions,
    reports: &mut BTreeMap<String, ReportJson>,
    run_dir: &Path,
) -> Result<()> {
    let specs: Vec<&crate::manifest::ComponentSpec> = variant.metrics.iter().collect();
    let seed = variant.settings.experiment.seed;
    observe_population(session, &specs, population, (seed, options), reports, (run_dir, &variant.name))
}

/// Hands `population` to a fresh instance of each metric of `specs` at one
/// final checkpoint (seeded from `seed`); their reports, with their arrays
/// kept under `run_dir` for the entry `name`.
pub(in crate::run) fn observe_population(
    session: &Session,
    specs: &[&crate::manifest::ComponentSpec],
    population: &Population,
    (seed, options): (u64, &RunOptions),
    reports: &mut BTreeMap<String, ReportJson>,
    (run_dir, name): (&Path, &str),
) -> Result<()> {
    let mut metrics = Vec::new();
    for spec in specs {
        metrics.push(session.registry.new_metric(&spec.id, &spec.params_text())?);
    }
    let contexts: Vec<CallContext> = crate::run::metrics::metric_contexts(&metrics, seed, &options.cancel);
    let longest = population.members.iter().map(|m| m.epochs).max().unwrap_or(0);
    let checkpoint = tessera_sdk::Checkpoint { step: 0, epoch: longest as f64, examples_seen: 0, is_final: true };
    for (metric, mctx) in metrics.iter_mut().zip(&contexts) {
        let observations = population.observations(&metric.requires()?)?;
        metric.observe(&checkpoint, &observations, mctx)?;
    }
    finish_metrics(&mut metrics, &contexts, reports, (run_dir, name))
}

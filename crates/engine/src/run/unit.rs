//! Running one unit: it writes only `units/<id>/` of the run folder. Its
//! files go under `work/` (merged into the run folder by collect), and
//! `result.json`, written last and atomically, says it is done. A unit that
//! is done is never run again; leftovers of one that stopped are removed
//! before it runs again.

use std::collections::BTreeMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::{Plan, Work};
use super::{RunOptions, Session};
use crate::confined::Confined;
use crate::manifest::{ExperimentKind, Variant};
use crate::report::{ReportJson, Status};

/// What a unit leaves in `units/<id>/result.json`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct UnitResult {
    /// The unit's id.
    pub unit: usize,
    /// Its variant.
    pub variant: String,
    /// `ok` or `failed`.
    pub status: Status,
    /// The error, if it failed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    /// Wall time, in seconds.
    pub seconds: f64,
    /// Where it ran: host, process id and, under Slurm, the job.
    pub ran: RanOn,
    /// The device it ran on.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub device: Option<String>,
    /// Reports by role (a whole variant's; empty for population parts).
    pub results: BTreeMap<String, ReportJson>,
    /// A batch of seeds' reports by variant, then by role (`results` is
    /// then empty).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub seeds: BTreeMap<String, BTreeMap<String, ReportJson>>,
    /// The optimizer step it stopped at when asked to stop (Ctrl-C,
    /// SIGTERM, SIGUSR1), its state saved: `tessera resume` continues it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stopped_at: Option<u64>,
}

/// Where and when a unit ran (`units/<id>/started.json`, and in its result).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RanOn {
    /// The host name.
    pub host: String,
    /// The process id.
    pub pid: u32,
    /// `JOBID_TASK` under a Slurm array.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub slurm_job: Option<String>,
    /// When it started (RFC 3339).
    pub started: String,
    /// Whether the process had libtorch loaded (`tessera`), or not
    /// (`tessera-graph`, see [`crate::handoff`]).
    #[serde(default = "loaded")]
    pub libtorch: bool,
    /// The CPU (model and vector extensions): trained figures depend on it.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub cpu: String,
    /// Which start of the unit this is: 1, then one more each time it is
    /// run again (`tessera resume`, a rerun after a failure).
    #[serde(default = "first")]
    pub attempt: u32,
}

fn first() -> u32 {
    1
}

fn loaded() -> bool {
    true
}

impl RanOn {
    /// This process, now.
    pub fn here() -> RanOn {
        let slurm_job = std::env::var("SLURM_ARRAY_JOB_ID")
            .ok()
            .map(|job| format!("{job}_{}", std::env::var("SLURM_ARRAY_TASK_ID").unwrap_or_default()));
        RanOn {
            host: crate::system::host_name(),
            pid: std::process::id(),
            slurm_job,
            started: chrono::Local::now().to_rfc3339(),
            libtorch: cfg!(feature = "torch"),
            cpu: crate::figures::cpu(),
            attempt: 1,
        }
    }
}

/// `units/<id>/` of a run folder.
pub fn unit_dir(run_dir: &Path, id: usize) -> PathBuf {
    run_dir.join(unit_path(id))
}

/// `units/<id>`, relative to the run folder.
pub fn unit_path(id: usize) -> PathBuf {
    Path::new("units").join(format!("{id:05}"))
}

/// `units/<id>.log`, relative to the run folder.
pub fn log_path(id: usize) -> PathBuf {
    unit_path(id).with_extension("log")
}

/// The folder a unit writes its files into (`units/<id>/work/`).
pub fn work_dir(run_dir: &Path, id: usize) -> PathBuf {
    unit_dir(run_dir, id).join("work")
}

/// The unit's result, if it wrote one.
pub fn read_result(run_dir: &Path, id: usize) -> Option<UnitResult> {
    checked_result(run_dir, id).ok().flatten()
}

/// The unit's result: `None` if it wrote none, an error naming the file if
/// `result.json` is there but cannot be read (damaged, or a link).
pub fn checked_result(run_dir: &Path, id: usize) -> Result<Option<UnitResult>> {
    let path = unit_path(id).join("result.json");
    let bytes = match Confined::new(run_dir).read(&path) {
        Ok(bytes) => bytes,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e).with_context(|| format!("reading {}", run_dir.join(&path).display())),
    };
    let result: UnitResult = serde_json::from_slice(&bytes).with_context(|| {
        format!(
            "{}: not a unit result (damaged?); remove it and `tessera resume` runs the unit again",
            run_dir.join(&path).display()
        )
    })?;
    if result.unit != id {
        crate::error::bail!("{}: the result of unit {}, not of unit {id}", run_dir.join(&path).display(), result.unit);
    }
    Ok(Some(result))
}

/// Where the unit says it started, if it did.
pub fn read_started(run_dir: &Path, id: usize) -> Option<RanOn> {
    let bytes = Confined::new(run_dir).read(unit_path(id).join("started.json")).ok()?;
    serde_json::from_slice(&bytes).ok()
}

/// Whether the unit finished with status ok.
pub fn is_done(run_dir: &Path, id: usize) -> bool {
    read_result(run_dir, id).is_some_and(|r| r.status == Status::Ok)
}

/// Runs unit `id` unless it is done; its result (also in `result.json`).
pub fn execute(session: &Session, plan: &Plan, id: usize, run_dir: &Path, options: &RunOptions) -> Result<UnitResult> {
    if let Some(done) = read_result(run_dir, id).filter(|r| r.status == Status::Ok) {
        return Ok(done);
    }
    let unit = plan.unit(id)?;
    let variant = session
        .variants
        .iter()
        .find(|v| v.name == unit.variant)
        .with_context(|| format!("unit {id}: the manifest has no variant `{}` any more", unit.variant))?;
    let run = Confined::new(run_dir);
    let dir = run.path(unit_path(id))?;
    let attempt = read_started(run_dir, id).map_or(1, |before| before.attempt.saturating_add(1));
    crate::owned::remove_owned(&dir)?;
    let _owned = crate::owned::OwnedDir::create(&dir, "a unit")?;
    let ran = RanOn { attempt, ..RanOn::here() };
    run.write_atomic(unit_path(id).join("started.json"), &serde_json::to_vec_pretty(&ran)?)?;
    log::info!("unit {id} ({}): starting", unit.variant);
    let started = Instant::now();
    let device = super::setup::variant_device(&variant.settings);
    let work = dir.join("work");
    let saved = super::checkpoints::UnitCheckpoints::of(run_dir, id);
    let outcome =
        catch_unwind(AssertUnwindSafe(|| run_work(session, variant, unit, options, (run_dir, &work), saved.clone())));
    let mut stopped_at = None;
    let (status, error, (results, seeds)) = match outcome {
        Ok(Ok(reports)) => (Status::Ok, None, reports),
        Ok(Err(e)) => {
            stopped_at = e.stopped();
            (Status::Failed, Some(e.chain()), Default::default())
        }
        Err(panic) => (Status::Failed, Some(format!("internal error: {}", panic_text(&panic))), Default::default()),
    };
    if status == Status::Ok {
        if let Err(e) = saved.remove() {
            log::warn!("unit {id}: its saved states are left in place: {}", e.chain());
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    match &error {
        None => log::info!("unit {id} ({}): done in {seconds:.1}s", unit.variant),
        Some(e) if stopped_at.is_some() => log::warn!("unit {id} ({}): {e}", unit.variant),
        Some(e) => log::error!("unit {id} ({}) failed: {e}", unit.variant),
    }
    let variant = unit.variant.clone();
    let result = UnitResult { unit: id, variant, status, error, seconds, ran, device, results, seeds, stopped_at };
    run.write_atomic(unit_path(id).join("result.json"), &serde_json::to_vec_pretty(&result)?)?;
    Ok(result)
}

/// What a unit reports: a whole variant's reports by role, or a batch of
/// seeds' by variant (the other empty).
type Reports = (BTreeMap<String, ReportJson>, BTreeMap<String, BTreeMap<String, ReportJson>>);

/// The unit's work: a whole variant, a batch of its seeds, some runs of a
/// population, or a population's encoder.
fn run_work(
    session: &Session,
    variant: &Variant,
    unit: &super::plan::Unit,
    options: &RunOptions,
    (run_dir, work_dir): (&Path, &Path),
    saved: super::checkpoints::UnitCheckpoints,
) -> Result<Reports> {
    std::fs::create_dir_all(work_dir)?;
    #[cfg(not(feature = "torch"))]
    let _ = (saved, run_dir); // only training saves its state and needs encoders
    let own = |reports| (reports, BTreeMap::new());
    match (variant.settings.experiment.kind, &unit.work) {
        (ExperimentKind::Graph, Work::Variant) => super::graph::run_graph(session, variant, options, work_dir).map(own),
        #[cfg(feature = "torch")]
        (ExperimentKind::Train, Work::Variant) => {
            let resuming = super::train::resume::Resuming::new(saved, variant);
            super::train::run_train(session, variant, options, work_dir, resuming).map(own)
        }
        #[cfg(feature = "torch")]
        (ExperimentKind::Train, Work::Seeds { variants }) => {
            let seeds = variants
                .iter()
                .map(|name| session.variants.iter().find(|v| &v.name == name))
                .collect::<Option<Vec<_>>>()
                .with_context(|| format!("unit {}: a seed's variant is gone from the manifest", unit.id))?;
            let resuming = super::train::resume::Resuming::new(saved, seeds[0]);
            super::train::seeds::run_seeds(session, &seeds, options, (work_dir, resuming))
                .map(|by_seed| (BTreeMap::new(), by_seed))
        }
        #[cfg(feature = "torch")]
        (ExperimentKind::Population, Work::PopulationRuns { runs, .. }) => {
            let resuming = super::train::resume::Resuming::new(saved, variant);
            let pretrained = needed_encoders(run_dir, variant, unit)?;
            let work = (work_dir, resuming, pretrained.as_deref());
            super::population::run_part(session, variant, runs, options, work).map(|()| Default::default())
        }
        #[cfg(feature = "torch")]
        (ExperimentKind::Population, Work::Pretrain { architecture, .. }) => {
            super::population::run_pretrain(session, variant, *architecture, options, work_dir)
                .map(|()| Default::default())
        }
        #[cfg(not(feature = "torch"))]
        (kind @ (ExperimentKind::Train | ExperimentKind::Population), _) => {
            crate::error::bail!("a {kind:?} variant: {}", super::NO_LIBTORCH)
        }
        (kind, work) => crate::error::bail!("a {kind:?} variant has no unit of kind {work:?} (the plan is stale)"),
    }
}

/// The folder of the encoders the unit's runs start from: where the
/// pretraining unit it needs saved them (its work folder, or the run
/// folder once collect moved them there); none if it needs none.
#[cfg(feature = "torch")]
fn needed_encoders(run_dir: &Path, variant: &Variant, unit: &super::plan::Unit) -> Result<Option<PathBuf>> {
    let Some(&need) = unit.needs.first() else { return Ok(None) };
    let run = Confined::new(run_dir);
    let encoders = super::population::encoders_dir(variant);
    for folder in [unit_path(need).join("work").join(&encoders), encoders.clone()] {
        if run.exists(&folder) {
            return Ok(Some(run.path(&folder)?));
        }
    }
    crate::error::bail!(
        "unit {}: the encoders it starts from are missing (unit {need} pretrains them: `tessera resume` runs it again)",
        unit.id
    )
}

/// The message of a panic payload.
pub(super) fn panic_text(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<String>()
        .cloned()
        .or_else(|| panic.downcast_ref::<&str>().map(|s| s.to_string()))
        .unwrap_or_default()
}

//! The run engine. A run goes through these steps, one file each:
//! - `session`: the manifest checked against the plugins, before anything runs;
//! - `plan`: the manifest expanded into independent units, written to `plan.json`;
//! - `unit`: one unit run into `units/<id>/` (`train`, `graph` and
//!   `population` say what a unit of each kind of experiment does);
//! - `executor` (and `slurm`): where the units run: inline, worker
//!   processes, or a Slurm job array;
//! - `collect`: the units' outputs merged into the run folder, with each
//!   population's reduce step;
//! - `folder`: the run folder itself; `status`: where its units stand.

mod arrays;
pub mod checkpoints;
mod collect;
mod executor;
mod folder;
mod graph;
pub mod kernels;
mod metrics;
pub mod plan;
mod pooled;
mod population;
pub mod progress;
mod session;
mod setup;
pub mod slurm;
pub mod status;
#[cfg(feature = "torch")]
mod train;
pub mod unit;

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use crate::error::{bail, Result};

pub use collect::collect;
pub use executor::{cores, pending_units, Executor};
pub use folder::{create_run_dir, open_run, resolved_manifest};
pub use plan::Plan;
pub use session::{prepare, prepare_manifest, PluginSearch, Session};
#[cfg(feature = "torch")]
pub use setup::{device_name, resolve_device};
pub use setup::{gpu_count, peak_rss_mb, set_thread_share, variant_device};
pub use slurm::Submission;

use crate::confined::Confined;
use crate::manifest::Variant;
use crate::report::{RunResults, Status};

/// Why a build without libtorch (`tessera-graph`) refuses training work.
#[cfg(not(feature = "torch"))]
pub const NO_LIBTORCH: &str =
    "this build has no libtorch (tessera-graph runs graph experiments only); run it with `tessera`";

/// Options of `tessera run`.
#[derive(Debug, Clone, Default)]
pub struct RunOptions {
    /// The run folder (default: `runs/<experiment>-<timestamp>`).
    pub out: Option<PathBuf>,
    /// Run only these variants (all if empty).
    pub only: Vec<String>,
    /// Show progress bars.
    pub progress: Option<indicatif::MultiProgress>,
    /// Set to stop the run.
    pub cancel: Arc<AtomicBool>,
    /// Where the units run (default: the manifest's `experiment.executor`).
    pub executor: Option<Executor>,
}

/// What `run` leaves behind.
pub struct RunOutcome {
    /// The run folder.
    pub dir: PathBuf,
    /// Its results (no variants yet when Slurm runs them and nobody waits).
    pub results: RunResults,
    /// The Slurm jobs, when Slurm runs the units.
    pub submitted: Option<Submission>,
}

impl RunOutcome {
    /// Whether every variant finished.
    pub fn all_ok(&self) -> bool {
        self.results.variants.iter().all(|v| v.status == Status::Ok)
    }
}

/// Plans the selected variants of `session`, writes the run folder's
/// header and runs the units with the chosen executor, then collects.
pub fn run(session: &Session, options: &RunOptions) -> Result<RunOutcome> {
    for name in &options.only {
        if !session.variants.iter().any(|v| selected_by(v, name)) {
            let names: Vec<&str> = session.variants.iter().map(|v| v.name.as_str()).collect();
            bail!("no variant named `{name}` (variants: {})", names.join(", "));
        }
    }
    let plan = Plan::new(session, |v| options.only.is_empty() || options.only.iter().any(|n| selected_by(v, n)))?;
    let dir = create_run_dir(options.out.as_deref(), &plan.experiment)?;
    let dir = std::fs::canonicalize(&dir)?;
    crate::logger::set_log_file(Confined::new(&dir).append("run.log")?);
    folder::write_header(session, &plan, &dir)?;
    let executor = options.executor.clone().unwrap_or_else(|| manifest_executor(session, false));
    execute_and_collect(&executor, session, &plan, &dir, options)
}

/// Runs the units of an existing run folder that are missing or failed,
/// then collects.
pub fn resume(run_dir: &Path, options: &RunOptions) -> Result<RunOutcome> {
    let (plan, session, dir) = open_run(run_dir)?;
    crate::logger::set_log_file(Confined::new(&dir).append("run.log")?);
    let executor = options.executor.clone().unwrap_or_else(|| manifest_executor(&session, false));
    execute_and_collect(&executor, &session, &plan, &dir, options)
}

/// The executor the manifest names (its first variant's `[experiment]`).
pub fn manifest_executor(session: &Session, wait: bool) -> Executor {
    match session.variants.first() {
        Some(v) => {
            let s = &v.settings;
            Executor::from_kind(s.experiment.executor, s.experiment.jobs, &s.executor.slurm, wait)
        }
        None => Executor::Inline,
    }
}

fn execute_and_collect(
    executor: &Executor,
    session: &Session,
    plan: &Plan,
    dir: &Path,
    options: &RunOptions,
) -> Result<RunOutcome> {
    let pending = pending_units(plan, dir);
    log::info!("{} of {} units to run ({executor:?})", pending.len(), plan.units.len());
    let submitted = executor.execute(session, plan, &pending, dir, options)?;
    let results = match (&submitted, executor) {
        (None, _) => collect(session, plan, dir, options)?,
        (Some(_), Executor::Slurm { wait: true, .. }) => RunResults::load(dir)?,
        (Some(_), _) => collect::no_variants_yet(plan),
    };
    Ok(RunOutcome { dir: dir.to_path_buf(), results, submitted })
}

/// Which units a worker runs (`tessera worker`).
#[derive(Debug, Clone)]
pub enum WorkerUnits {
    /// This one (a Slurm array task).
    One(usize),
    /// Each of these it can claim in `claims` (the `processes` executor's workers).
    Claimed {
        /// The units, in order.
        units: Vec<usize>,
        /// The claims folder shared by the workers.
        claims: PathBuf,
    },
}

/// Runs units of a run folder (`tessera worker`), each logging to its
/// `units/<id>.log`; whether all it ran finished ok.
pub fn work(run_dir: &Path, units: &WorkerUnits, cancel: Arc<AtomicBool>) -> Result<bool> {
    let (plan, session, dir) = open_run(run_dir)?;
    let options = RunOptions { cancel: cancel.clone(), ..Default::default() };
    Confined::new(&dir).create_dir_all("units")?;
    let mut all_ok = true;
    let ids: Vec<usize> = match units {
        WorkerUnits::One(id) => vec![*id],
        WorkerUnits::Claimed { units, .. } => units.clone(),
    };
    for id in ids {
        plan.unit(id)?;
        if let WorkerUnits::Claimed { claims, .. } = units {
            if cancel.load(std::sync::atomic::Ordering::Relaxed) || !executor::claim(claims, id) {
                continue;
            }
        }
        crate::logger::set_log_file(Confined::new(&dir).append(unit::log_path(id))?);
        all_ok &= unit::execute(&session, &plan, id, &dir, &options)?.status == Status::Ok;
        // Workers of every executor keep report.html current until collect.
        if let Err(e) = collect::progress_page(&session, &plan, &dir, &options) {
            log::warn!("the report page of the run so far: {}", e.chain());
        }
    }
    Ok(all_ok)
}

/// Collects an existing run folder (`tessera collect`).
pub fn collect_run(run_dir: &Path) -> Result<RunResults> {
    let (plan, session, dir) = open_run(run_dir)?;
    crate::logger::set_log_file(Confined::new(&dir).append("run.log")?);
    collect(&session, &plan, &dir, &RunOptions::default())
}

/// Whether `--variant name` selects `variant`: its name, or the base name of
/// a seeded variant `name@seed`.
pub fn selected_by(variant: &Variant, name: &str) -> bool {
    let unseeded = variant.name.rsplit_once('@').map_or(variant.name.as_str(), |(base, _)| base);
    let unswept = unseeded.split_once('[').map_or(unseeded, |(base, _)| base);
    variant.name == name || unseeded == name || unswept == name
}

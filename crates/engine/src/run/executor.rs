//! Executors: where a run's units run. `inline` runs them in this process,
//! one after another; `processes` runs `tessera worker` processes on this
//! machine, N at a time; `slurm` submits a job array and a collect job
//! (see `slurm.rs`). Every executor runs the same unit code, so results
//! are the same whichever runs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use crate::error::{Context, Result};

use super::plan::Plan;
use super::slurm::{self, Submission};
use super::unit::{self, RanOn, UnitResult};
use super::{RunOptions, Session};
use crate::choice::ExecutorKind;
use crate::confined::Confined;
use crate::manifest::SlurmConfig;
use crate::report::Status;

/// An executor with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// In this process, one unit after another.
    Inline,
    /// Worker processes on this machine.
    Processes {
        /// How many at once (each gets at most `cores / jobs` libtorch threads).
        jobs: usize,
    },
    /// A Slurm job array over the units, then a dependent collect job.
    Slurm {
        /// `[executor.slurm]`.
        config: SlurmConfig,
        /// Wait for the collect job to finish.
        wait: bool,
    },
}

impl Executor {
    /// The executor `kind` names, with the manifest's options (`jobs` 0: one per core).
    pub fn from_kind(kind: ExecutorKind, jobs: usize, config: &SlurmConfig, wait: bool) -> Executor {
        match kind {
            ExecutorKind::Inline => Executor::Inline,
            ExecutorKind::Processes => Executor::Processes { jobs: if jobs == 0 { cores() } else { jobs } },
            ExecutorKind::Slurm => Executor::Slurm { config: config.clone(), wait },
        }
    }

    /// Runs the `pending` units of `plan`. Returns the submission when the
    /// units were handed to Slurm (collect then runs there); `None` when they
    /// ran here, and collect is the caller's.
    pub fn execute(
        &self,
        session: &Session,
        plan: &Plan,
        pending: &[usize],
        run_dir: &Path,
        options: &RunOptions,
    ) -> Result<Option<Submission>> {
        match self {
            Executor::Inline => run_inline(session, plan, pending, run_dir, options).map(|()| None),
            Executor::Processes { jobs } => {
                // Each wave once the units it needs are done.
                for wave in plan.waves(pending) {
                    if options.cancel.load(Ordering::Relaxed) {
                        break;
                    }
                    run_processes(*jobs, plan, &wave, run_dir, options)?;
                }
                Ok(None)
            }
            Executor::Slurm { config, wait } => {
                let submission = slurm::submit(config, plan, pending, run_dir)?;
                if *wait {
                    slurm::wait(&submission, &options.cancel)?;
                }
                Ok(Some(submission))
            }
        }
    }
}

/// This machine's cores.
pub fn cores() -> usize {
    std::thread::available_parallelism().map_or(1, |n| n.get())
}

fn units_bar(options: &RunOptions, units: usize) -> Option<indicatif::ProgressBar> {
    super::setup::progress_bar(options, units as u64, "units".into())
}

/// Each pending unit in this process; stops starting units once cancelled.
fn run_inline(session: &Session, plan: &Plan, pending: &[usize], run_dir: &Path, options: &RunOptions) -> Result<()> {
    if plan.has_training() {
        warn_if_oversubscribed(plan, 1, cores());
    }
    for &id in pending {
        if options.cancel.load(Ordering::Relaxed) {
            log::warn!("cancelled: units from {id} on are left for `tessera resume`");
            break;
        }
        unit::execute(session, plan, id, run_dir, options)?;
        if let Err(e) = super::collect::progress_page(session, plan, run_dir, options) {
            log::warn!("the report page of the run so far: {}", e.chain());
        }
    }
    Ok(())
}

/// `jobs` long-lived `tessera worker` processes, each with its share of the
/// cores, taking the pending units in plan order: each claims its next unit
/// atomically (a file in a claims folder of this execution), so a worker
/// loads the plugins and the data once for many units.
fn run_processes(jobs: usize, plan: &Plan, pending: &[usize], run_dir: &Path, options: &RunOptions) -> Result<()> {
    let exe = std::env::current_exe().context("finding the tessera binary for the workers")?;
    let jobs = jobs.max(1).min(pending.len().max(1));
    let threads = (cores() / jobs).max(1);
    warn_if_oversubscribed(plan, jobs, threads);
    let claims = crate::owned::OwnedDir::create(&Confined::new(run_dir).path(claims_dir())?, "unit claims")?;
    let list = pending.iter().map(usize::to_string).collect::<Vec<_>>().join(",");
    // With GPUs, worker k sees GPU k mod G only.
    let gpus = super::gpu_count();
    let mut workers = (0..jobs)
        .map(|k| spawn_worker(&exe, run_dir, &list, claims.path(), threads, (gpus > 0).then(|| k % gpus)))
        .collect::<Result<Vec<Child>>>()?;
    let bar = units_bar(options, pending.len());
    let run = Confined::new(run_dir);
    let mut told = false;
    while !workers.is_empty() {
        std::thread::sleep(Duration::from_millis(100));
        if !told && options.cancel.load(Ordering::Relaxed) {
            // The workers stop at their next step boundary, their state
            // saved: a Ctrl-C reached them too, a SIGTERM or SIGUSR1 sent to
            // this process only is passed on.
            log::warn!("stopping: the units not done are left for `tessera resume`");
            for worker in &workers {
                // SAFETY: a signal to a child this process spawned and has not reaped.
                unsafe { libc::kill(worker.id() as libc::pid_t, libc::SIGTERM) };
            }
            told = true;
        }
        workers.retain_mut(|w| matches!(w.try_wait(), Ok(None)));
        if let Some(bar) = &bar {
            // A result file's presence is enough: no parsing every 100 ms.
            let done = pending.iter().filter(|&&id| run.exists(unit::unit_path(id).join("result.json")));
            bar.set_position(done.count() as u64);
        }
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    for &id in pending.iter().filter(|&&id| claims.path().join(id.to_string()).exists()) {
        record_crash(plan, run_dir, id, "it stopped")?;
    }
    claims.remove()
}

/// The claims folder of this execution.
fn claims_dir() -> std::path::PathBuf {
    Path::new("units").join(format!(".claims-{}-{}", std::process::id(), chrono::Local::now().format("%H%M%S%.f")))
}

/// Claims unit `id` for this worker: whether no other worker had.
pub(super) fn claim(claims: &Path, id: usize) -> bool {
    std::fs::OpenOptions::new().write(true).create_new(true).open(claims.join(id.to_string())).is_ok()
}

/// Units with `experiment.threads` above their share of the cores make the
/// workers wait on one another: said once, before they start.
/// Warns when `jobs` processes of libtorch threads (the manifest's
/// `experiment.threads`, else `share` each) exceed the cores other
/// processes leave free: libtorch's threads then spin against each other
/// and a run can be many times slower.
fn warn_if_oversubscribed(plan: &Plan, jobs: usize, share: usize) {
    let threads = plan.threads.filter(|&t| t > 0).unwrap_or(share);
    if let Some(warning) = oversubscribed(threads, jobs, cores(), load_average()) {
        log::warn!("{warning}");
    }
}

/// The warning for `processes` × `threads` libtorch threads on `cores`
/// cores with `load` (the 1-minute load average) from other processes.
pub fn oversubscribed(threads: usize, processes: usize, cores: usize, load: f64) -> Option<String> {
    let busy = (load.max(0.0).round() as usize).min(cores.saturating_sub(1));
    let free = cores - busy;
    let wanted = threads * processes;
    if wanted <= free {
        return None;
    }
    let fits = (free / processes.max(1)).max(1);
    Some(format!(
        "{processes} process(es) × {threads} libtorch thread(s) = {wanted}, but {free} of {cores} cores are free \
         (load {load:.1}): threads that wait on each other can make a run many times slower; \
         set experiment.threads = {fits} (or --set experiment.threads={fits}){}",
        if processes > 1 { ", or fewer --jobs" } else { "" }
    ))
}

/// The 1-minute load average (0 where it cannot be read).
fn load_average() -> f64 {
    let text = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    text.split_whitespace().next().and_then(|l| l.parse().ok()).unwrap_or(0.0)
}

fn spawn_worker(
    exe: &Path,
    run_dir: &Path,
    units: &str,
    claims: &Path,
    threads: usize,
    gpu: Option<usize>,
) -> Result<Child> {
    let mut command = Command::new(exe);
    if let Some(gpu) = gpu {
        command.env("CUDA_VISIBLE_DEVICES", gpu.to_string());
    }
    command
        .args(["--quiet", "worker"])
        .arg(run_dir)
        .args(["--units", units, "--threads", &threads.to_string(), "--claims"])
        .arg(claims)
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .context("starting a worker")
}

/// A worker that ended without a result (killed, aborted) leaves a failed
/// one, so that the run records it and `resume` reruns it.
pub(super) fn record_crash(plan: &Plan, run_dir: &Path, id: usize, status: &str) -> Result<()> {
    if unit::read_result(run_dir, id).is_some() {
        return Ok(());
    }
    let ran = unit::read_started(run_dir, id).unwrap_or_else(RanOn::here);
    let run = Confined::new(run_dir);
    let dir = run.path(unit::unit_path(id))?;
    if !run.exists(unit::unit_path(id)) {
        crate::owned::OwnedDir::create(&dir, "a unit")?;
    }
    let result = UnitResult {
        unit: id,
        variant: plan.unit(id).map(|u| u.variant.clone()).unwrap_or_default(),
        status: Status::Failed,
        error: Some(format!("unit {id}: its worker ended ({status}) without a result; see units/{id:05}.log")),
        seconds: 0.0,
        ran,
        device: None,
        results: Default::default(),
        seeds: Default::default(),
        stopped_at: None,
    };
    log::error!("{}", result.error.as_deref().unwrap_or_default());
    run.write_atomic(unit::unit_path(id).join("result.json"), &serde_json::to_vec_pretty(&result)?)?;
    Ok(())
}

/// Units not yet done (missing or failed), in plan order.
pub fn pending_units(plan: &Plan, run_dir: &Path) -> Vec<usize> {
    plan.units.iter().map(|u| u.id).filter(|&id| !unit::is_done(run_dir, id)).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn threads_beyond_the_free_cores_are_warned_with_what_to_set() {
        assert_eq!(oversubscribed(1, 1, 2, 0.9), None);
        let busy = oversubscribed(2, 1, 2, 1.2).expect("2 threads on 1 free core");
        assert!(busy.contains("1 of 2 cores are free") && busy.contains("experiment.threads = 1"), "{busy}");
        let jobs = oversubscribed(4, 4, 8, 0.0).expect("16 threads on 8 cores");
        assert!(jobs.contains("experiment.threads = 2") && jobs.contains("fewer --jobs"), "{jobs}");
    }
}

//! Executors: where a run's units run. `inline` runs them in this process,
//! one after another; `processes` runs `tessera worker` processes on this
//! machine, N at a time; `slurm` submits a job array and a collect job
//! (see `slurm.rs`). Every executor runs the same unit code, so results
//! are the same whichever runs them.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::atomic::Ordering;
use std::time::Duration;

use anyhow::{Context, Result};

use super::plan::Plan;
use super::slurm::{self, Submission};
use super::unit::{self, RanOn, UnitResult};
use super::{RunOptions, Session};
use crate::choice::ExecutorKind;
use crate::manifest::SlurmConfig;
use crate::report::Status;

/// An executor with its options.
#[derive(Debug, Clone, PartialEq)]
pub enum Executor {
    /// In this process, one unit after another.
    Inline,
    /// Worker processes on this machine.
    Processes {
        /// How many at once (each gets `cores / jobs` threads unless the manifest sets them).
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
            Executor::Processes { jobs } => run_processes(*jobs, plan, pending, run_dir, options).map(|()| None),
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
    for &id in pending {
        if options.cancel.load(Ordering::Relaxed) {
            log::warn!("cancelled: units from {id} on are left for `tessera resume`");
            break;
        }
        unit::execute(session, plan, id, run_dir, options)?;
    }
    Ok(())
}

/// `tessera worker` processes, `jobs` at a time, each with its share of the cores.
fn run_processes(jobs: usize, plan: &Plan, pending: &[usize], run_dir: &Path, options: &RunOptions) -> Result<()> {
    let exe = std::env::current_exe().context("finding the tessera binary for the workers")?;
    let threads = (cores() / jobs.max(1)).max(1);
    let bar = units_bar(options, pending.len());
    let mut queue = pending.iter().copied();
    let mut running: Vec<(usize, Child)> = Vec::new();
    loop {
        while running.len() < jobs.max(1) && !options.cancel.load(Ordering::Relaxed) {
            let Some(id) = queue.next() else { break };
            running.push((id, spawn_worker(&exe, run_dir, id, threads)?));
        }
        if running.is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
        let mut still = Vec::with_capacity(running.len());
        for (id, mut child) in running {
            match child.try_wait()? {
                None => still.push((id, child)),
                Some(status) => {
                    record_crash(plan, run_dir, id, &status.to_string())?;
                    if let Some(bar) = &bar {
                        bar.inc(1);
                    }
                }
            }
        }
        running = still;
    }
    if let Some(bar) = bar {
        bar.finish_and_clear();
    }
    Ok(())
}

fn spawn_worker(exe: &Path, run_dir: &Path, id: usize, threads: usize) -> Result<Child> {
    Command::new(exe)
        .args(["--quiet", "worker"])
        .arg(run_dir)
        .args(["--unit", &id.to_string(), "--threads", &threads.to_string()])
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .spawn()
        .with_context(|| format!("starting a worker for unit {id}"))
}

/// A worker that ended without a result (killed, aborted) leaves a failed
/// one, so that the run records it and `resume` reruns it.
pub(super) fn record_crash(plan: &Plan, run_dir: &Path, id: usize, status: &str) -> Result<()> {
    if unit::read_result(run_dir, id).is_some() {
        return Ok(());
    }
    let ran = unit::read_started(run_dir, id).unwrap_or_else(RanOn::here);
    let dir = unit::unit_dir(run_dir, id);
    if !dir.is_dir() {
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
    };
    log::error!("{}", result.error.as_deref().unwrap_or_default());
    crate::report::write_atomic(&dir.join("result.json"), &serde_json::to_vec_pretty(&result)?)
}

/// Units not yet done (missing or failed), in plan order.
pub fn pending_units(plan: &Plan, run_dir: &Path) -> Vec<usize> {
    plan.units.iter().map(|u| u.id).filter(|&id| !unit::is_done(run_dir, id)).collect()
}

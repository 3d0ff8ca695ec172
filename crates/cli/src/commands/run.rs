//! The commands that run units: `run`, `plan`, `worker`, `collect`,
//! `resume`, `status`; and what they share (the session, Ctrl-C, the
//! outcome printed).

use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use tessera_engine::handoff;
use tessera_engine::report;
use tessera_engine::run::{self, RunOptions};

use crate::args::{overrides, search, Cli, ExecutorArgs};

/// The session of `manifest` with `--set` overrides; the exit code on failure.
pub(crate) fn prepared(cli: &Cli, manifest: &std::path::Path, set: &[String]) -> Result<run::Session, ExitCode> {
    let overrides = overrides(set).map_err(|e| {
        eprintln!("error: {e}");
        ExitCode::from(2)
    })?;
    run::prepare(manifest, &overrides, &search(cli)).map_err(|diagnostics| {
        eprintln!("{diagnostics}");
        ExitCode::from(2)
    })
}

/// The run's cancel flag: Ctrl-C, SIGTERM and SIGUSR1 set it (see [`crate::signals`]).
pub(crate) fn cancel_on_ctrl_c() -> Arc<AtomicBool> {
    crate::signals::stop_flag()
}

/// Prints a run's summary (or its Slurm jobs); exit 0 when every variant is ok.
pub(crate) fn print_outcome(outcome: tessera_engine::Result<run::RunOutcome>) -> ExitCode {
    let outcome = match outcome {
        Ok(o) => o,
        Err(e) => return super::user_error(e),
    };
    let waited = outcome.submitted.is_none() || !outcome.results.variants.is_empty();
    if let Some(s) = &outcome.submitted {
        println!("slurm: array job {} over {} unit(s), collect job {}", s.array_jobs(), s.units.len(), s.collect_job);
    }
    if waited {
        println!("{}", report::summary_table(&outcome.results, 8));
    } else {
        println!("follow it with: tessera status {}", outcome.dir.display());
    }
    println!("run folder: {}", outcome.dir.display());
    let page = outcome.dir.join("report.html");
    if page.exists() {
        println!("the page: {}", page.display());
    }
    if outcome.all_ok() {
        ExitCode::SUCCESS
    } else {
        crate::signals::unfinished(Some(&outcome.dir))
    }
}

/// `tessera plan`: the units of a manifest, as text or JSON.
pub(crate) fn plan(session: &run::Session, variants: &[String], json: bool) -> ExitCode {
    let selected =
        |v: &tessera_engine::manifest::Variant| variants.is_empty() || variants.iter().any(|n| run::selected_by(v, n));
    match run::Plan::new(session, selected) {
        Ok(plan) if json => {
            println!("{}", serde_json::to_string_pretty(&plan).unwrap_or_default());
            ExitCode::SUCCESS
        }
        Ok(plan) => {
            print!("{}", plan.describe());
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}

/// `tessera worker`.
pub(crate) fn worker(
    dir: &std::path::Path,
    unit: Option<(usize, usize)>,
    (units, claims): (&[usize], &Option<PathBuf>),
    threads: &Option<usize>,
    requeue: bool,
) -> ExitCode {
    // A Slurm task gets the CPUs Slurm allocated it, not the node's.
    let slurm_cpus = std::env::var("SLURM_CPUS_ON_NODE").ok().and_then(|n| n.parse().ok());
    if let Some(threads) = threads.or(slurm_cpus) {
        run::set_thread_share(threads);
    }
    let which = match (unit, claims) {
        // A Slurm array's task index plus the array's offset.
        (Some((task, offset)), _) => match task.checked_add(offset) {
            Some(id) => run::WorkerUnits::One(id),
            None => {
                eprintln!("error: --unit {task} --unit-offset {offset}: their sum is not a unit id");
                return ExitCode::from(2);
            }
        },
        (None, Some(claims)) => run::WorkerUnits::Claimed { units: units.to_vec(), claims: claims.clone() },
        (None, None) => unreachable!("clap requires --unit or --units with --claims"),
    };
    match run::work(dir, &which, cancel_on_ctrl_c()) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            if requeue && crate::signals::first_signal() == Some(libc::SIGUSR1) {
                requeue_this_task();
            }
            crate::signals::unfinished(None)
        }
        Err(e) => {
            eprintln!("error: {which:?} of {}: {e:#}", dir.display());
            ExitCode::from(2)
        }
    }
}

/// A Slurm task stopped before its time limit asks to run again; if Slurm
/// refuses, `tessera resume` still continues the unit.
fn requeue_this_task() {
    match tessera_engine::run::slurm::requeue_this_task() {
        Ok(task) => eprintln!("slurm: task {task} requeued: it continues from its saved state when it runs again"),
        Err(e) => eprintln!("slurm: the task is not requeued ({e}); `tessera resume` continues it"),
    }
}

/// `tessera resume`.
pub(crate) fn resume(
    cli: &Cli,
    dir: &std::path::Path,
    executor: &ExecutorArgs,
    progress: indicatif::MultiProgress,
) -> ExitCode {
    handoff::hand_off_graph_work(handoff::run_folder_graph_only(dir));
    let chosen = match run::open_run(dir) {
        Ok((_, session, _)) => executor.choose(&session),
        Err(e) => return super::user_error(e),
    };
    let options = RunOptions {
        progress: (!cli.quiet).then_some(progress),
        cancel: cancel_on_ctrl_c(),
        executor: Some(chosen),
        ..Default::default()
    };
    print_outcome(run::resume(dir, &options))
}

/// `tessera collect`: the finished units merged into the run folder.
pub(crate) fn collect(dir: &Path) -> ExitCode {
    handoff::hand_off_graph_work(handoff::run_folder_graph_only(dir));
    match run::collect_run(dir) {
        Ok(results) => {
            println!("{}", report::summary_table(&results, 8));
            super::variants_exit(&results)
        }
        Err(e) => super::user_error(e),
    }
}

/// `tessera status`: where each unit of a run folder stands.
pub(crate) fn status(dir: &Path, all: bool) -> ExitCode {
    match run::Plan::load(dir) {
        Ok(plan) => {
            print!("{}", run::status::describe(&plan, dir, all));
            ExitCode::SUCCESS
        }
        Err(e) => super::user_error(e),
    }
}

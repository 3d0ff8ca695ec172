//! The `slurm` executor: one job array over the pending units (`--array`
//! lists their ids, `%max_parallel` caps how many run at once), each task
//! running `tessera worker RUN_DIR --unit $SLURM_ARRAY_TASK_ID`, and a
//! collect job that starts once the array has ended (`afterany`), however
//! its tasks ended. The scripts and the job ids are kept under `slurm/` of
//! the run folder, which must be on a filesystem the nodes share.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::manifest::SlurmConfig;

/// What was submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// The array's job id.
    pub array_job: String,
    /// The collect job's id.
    pub collect_job: String,
    /// The units of the array (its task ids).
    pub units: Vec<usize>,
    /// When (RFC 3339).
    pub submitted: String,
}

/// Writes the scripts and submits the array and the collect job.
pub fn submit(config: &SlurmConfig, plan: &Plan, pending: &[usize], run_dir: &Path) -> Result<Submission> {
    let dir = run_dir.join("slurm");
    std::fs::create_dir_all(&dir)?;
    let exe = std::env::current_exe().context("finding the tessera binary for the nodes")?;
    let threads = match config.cpus_per_task {
        0 => String::new(),
        n => format!(" --threads {n}"),
    };
    let array_script = dir.join("array.sbatch");
    let worker = format!("{} --quiet worker {} --unit \"$SLURM_ARRAY_TASK_ID\"{threads}", quote(&exe), quote(run_dir));
    write_script(&array_script, &sbatch_lines(config, plan, &dir.join("unit-%a.out")), &config.setup, &worker)?;
    let collect_script = dir.join("collect.sbatch");
    let collect = format!("{} collect {}", quote(&exe), quote(run_dir));
    let mut collect_config = config.clone();
    (collect_config.gpus, collect_config.max_parallel) = (0, 0);
    write_script(
        &collect_script,
        &sbatch_lines(&collect_config, plan, &dir.join("collect-%j.out")),
        &config.setup,
        &collect,
    )?;
    let array_job = if pending.is_empty() {
        None
    } else {
        let limit = match config.max_parallel {
            0 => String::new(),
            n => format!("%{n}"),
        };
        Some(sbatch(&[format!("--array={}{limit}", ranges(pending))], &array_script)?)
    };
    let dependency = array_job.iter().map(|job| format!("--dependency=afterany:{job}")).collect::<Vec<_>>();
    let collect_job = sbatch(&dependency, &collect_script)?;
    let submission = Submission {
        array_job: array_job.unwrap_or_default(),
        collect_job,
        units: pending.to_vec(),
        submitted: chrono::Local::now().to_rfc3339(),
    };
    record(&dir, &submission)?;
    log::info!(
        "slurm: array job {} over {} unit(s), collect job {}",
        submission.array_job,
        pending.len(),
        submission.collect_job
    );
    Ok(submission)
}

/// The `#SBATCH` lines of `config`.
fn sbatch_lines(config: &SlurmConfig, plan: &Plan, output: &Path) -> Vec<String> {
    let mut lines = vec![
        format!("--job-name=tessera-{}", plan.experiment),
        format!("--output={}", output.display()),
        format!("--chdir={}", plan.cwd.display()),
        "--ntasks=1".into(),
    ];
    let mut option = |name: &str, value: Option<String>| lines.extend(value.map(|v| format!("--{name}={v}")));
    option("partition", config.partition.clone());
    option("time", config.time.clone());
    option("mem", config.mem.clone());
    option("cpus-per-task", (config.cpus_per_task > 0).then(|| config.cpus_per_task.to_string()));
    option("gpus-per-task", (config.gpus > 0).then(|| config.gpus.to_string()));
    lines.extend(config.sbatch_args.iter().cloned());
    lines
}

fn write_script(path: &Path, options: &[String], setup: &str, command: &str) -> Result<()> {
    let mut text = String::from("#!/bin/bash\n# Written by tessera; submitted with sbatch.\n");
    for line in options {
        text += &format!("#SBATCH {line}\n");
    }
    text += "set -e\n";
    if !setup.trim().is_empty() {
        text += setup.trim_end();
        text += "\n";
    }
    text += &format!("exec {command}\n");
    std::fs::write(path, text).with_context(|| format!("writing {}", path.display()))
}

/// `sbatch --parsable ARGS SCRIPT`; the job id.
fn sbatch(args: &[String], script: &Path) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .output()
        .context("running sbatch (is Slurm installed here, and SLURM_CONF set if needed?)")?;
    if !output.status.success() {
        bail!("sbatch {} failed: {}", script.display(), String::from_utf8_lossy(&output.stderr).trim());
    }
    let text = String::from_utf8_lossy(&output.stdout);
    let job = text.trim().split(';').next().unwrap_or_default().to_string();
    if job.is_empty() {
        bail!("sbatch {} printed no job id", script.display());
    }
    Ok(job)
}

/// Appends the submission to `slurm/jobs.json`.
fn record(dir: &Path, submission: &Submission) -> Result<()> {
    let mut all = submissions(dir.parent().unwrap_or(dir));
    all.push(submission.clone());
    crate::report::write_atomic(&dir.join("jobs.json"), &serde_json::to_vec_pretty(&all)?)
}

/// Every submission of a run folder, oldest first.
pub fn submissions(run_dir: &Path) -> Vec<Submission> {
    std::fs::read(run_dir.join("slurm").join("jobs.json"))
        .ok()
        .and_then(|t| serde_json::from_slice(&t).ok())
        .unwrap_or_default()
}

/// Waits until the collect job has left the queue.
pub fn wait(submission: &Submission, cancel: &AtomicBool) -> Result<()> {
    while queued(&submission.collect_job)? {
        if cancel.load(Ordering::Relaxed) {
            bail!("stopped waiting; the jobs go on (`tessera status` follows them, `scancel` stops them)");
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    Ok(())
}

/// Whether `job` (or any task of it) is still in the queue.
fn queued(job: &str) -> Result<bool> {
    Ok(!squeue(job)?.is_empty())
}

/// `squeue` lines `JOBID STATE` for `job`; empty once it has left the queue.
pub fn squeue(job: &str) -> Result<Vec<(String, String)>> {
    let output =
        Command::new("squeue").args(["-h", "-r", "-o", "%i %T", "-j", job]).output().context("running squeue")?;
    let text = String::from_utf8_lossy(&output.stdout);
    // A job that has left the queue is an error for squeue: nothing queued.
    Ok(text
        .lines()
        .filter_map(|l| l.split_once(' '))
        .map(|(id, state)| (id.to_string(), state.trim().to_string()))
        .collect())
}

/// `0-3,7,9-10` for the ids 0,1,2,3,7,9,10.
fn ranges(ids: &[usize]) -> String {
    let mut parts: Vec<String> = Vec::new();
    let mut i = 0;
    while i < ids.len() {
        let mut j = i;
        while j + 1 < ids.len() && ids[j + 1] == ids[j] + 1 {
            j += 1;
        }
        parts.push(if i == j { ids[i].to_string() } else { format!("{}-{}", ids[i], ids[j]) });
        i = j + 1;
    }
    parts.join(",")
}

/// A path quoted for bash.
fn quote(path: &Path) -> String {
    format!("'{}'", PathBuf::from(path).display().to_string().replace('\'', "'\\''"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn array_ranges_are_compact() {
        assert_eq!(ranges(&[0, 1, 2, 3, 7, 9, 10]), "0-3,7,9-10");
        assert_eq!(ranges(&[5]), "5");
        assert_eq!(ranges(&[]), "");
    }

    #[test]
    fn paths_are_quoted_for_bash() {
        assert_eq!(quote(Path::new("/a b/it's")), "'/a b/it'\\''s'");
    }
}

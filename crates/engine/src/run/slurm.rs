//! The `slurm` executor: job arrays over the pending units (`--array`
//! lists their ids, `%max_parallel` caps how many run at once), each task
//! running `tessera worker RUN_DIR --unit $SLURM_ARRAY_TASK_ID --unit-offset
//! OFFSET`, and a collect job that starts once the arrays have ended
//! (`afterany`), however their tasks ended. A task index must stay below
//! the cluster's `MaxArraySize`, so unit `u` runs as task `u mod M` of the
//! array for units `M·k … M·k + M − 1` (offset `M·k`): one array while the
//! plan fits, several after. Units that need others (a population's runs
//! need their pretrained encoder) go in later arrays that start once the
//! earlier ones ended well (`afterok`). A task stopped by the time-limit
//! signal asks to be requeued. The scripts and the job ids are kept under
//! `slurm/` of the run folder, which must be on a filesystem the nodes share.

use std::ffi::OsString;
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use crate::error::{bail, Context, Result};
use serde::{Deserialize, Serialize};

use super::plan::Plan;
use crate::confined::Confined;
use crate::manifest::SlurmConfig;
pub use tessera_util::text::unsafe_char;

/// What was submitted.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct Submission {
    /// The first array's job id (empty when no unit was pending).
    pub array_job: String,
    /// Every array: its job id, and the unit its task 0 runs.
    #[serde(default)]
    pub arrays: Vec<ArrayJob>,
    /// The collect job's id.
    pub collect_job: String,
    /// The units of the array (its task ids).
    pub units: Vec<usize>,
    /// When (RFC 3339).
    pub submitted: String,
}

/// One job array of a submission: its task `t` runs unit `offset + t`.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct ArrayJob {
    /// The job id.
    pub job: String,
    /// Added to a task index to give its unit.
    pub offset: usize,
    /// Its units.
    pub units: Vec<usize>,
}

impl Submission {
    /// Every array of it (`arrays`, or for a record written before there
    /// were several, the one `array_job` ran with task = unit).
    pub fn all_arrays(&self) -> Vec<ArrayJob> {
        match (self.arrays.is_empty(), self.array_job.is_empty()) {
            (false, _) => self.arrays.clone(),
            (true, false) => vec![ArrayJob { job: self.array_job.clone(), offset: 0, units: self.units.clone() }],
            (true, true) => vec![],
        }
    }

    /// Unit `unit`'s Slurm task, `JOB_TASK`, if this submission ran it.
    pub fn task_of(&self, unit: usize) -> Option<String> {
        let array = self.all_arrays().into_iter().find(|a| a.units.contains(&unit))?;
        Some(format!("{}_{}", array.job, unit - array.offset))
    }
}

/// Writes the scripts and submits the arrays and the collect job.
///
/// No value of the manifest or the run reaches the scripts' text: the
/// options go to `sbatch` as arguments (kept in `slurm/*.args.json`), and the
/// binary and the run folder reach the script as its arguments `$1` and `$2`.
/// The only shell in the scripts is `setup`, which is shell by design.
pub fn submit(config: &SlurmConfig, plan: &Plan, pending: &[usize], run_dir: &Path) -> Result<Submission> {
    let exe = std::env::current_exe().context("finding the tessera binary for the nodes")?;
    for (what, path) in
        [("the run folder", run_dir), ("the folder the run started in", &plan.cwd), ("the tessera binary", &exe)]
    {
        if let Some(bad) = unsafe_char(&path.to_string_lossy()) {
            bail!("{what}, {}, holds {bad:?}, which the Slurm executor cannot pass to a node safely; use a path without control characters", path.display());
        }
    }
    let run = Confined::new(run_dir);
    let dir = run.create_dir_all("slurm")?;
    // The one value in the script text, a number, quoted all the same.
    let threads = match config.cpus_per_task {
        0 => String::new(),
        n => format!(" --threads {}", shlex::try_quote(&n.to_string())?),
    };
    let requeue = if requeues(config) { " --requeue" } else { "" };
    let worker = format!(
        "--quiet worker \"$TESSERA_RUN\" --unit \"$SLURM_ARRAY_TASK_ID\" --unit-offset \"$TESSERA_UNIT_OFFSET\"{threads}{requeue}"
    );
    let array_script = dir.join("array.sbatch");
    run.write_atomic(&array_script, script(&config.setup, &worker).as_bytes())?;
    let collect_script = dir.join("collect.sbatch");
    run.write_atomic(&collect_script, script(&config.setup, "collect \"$TESSERA_RUN\"").as_bytes())?;
    let mut collect_config = config.clone();
    (collect_config.gpus, collect_config.max_parallel, collect_config.signal_grace) = (0, 0, 0);
    collect_config.requeue = false;
    let script_args = [exe.into_os_string(), run_dir.as_os_str().to_owned()];
    let mut arrays: Vec<ArrayJob> = Vec::new();
    for (wave, units) in plan.waves(pending).into_iter().enumerate() {
        // A wave's arrays start once every array before them ended well.
        let after: Vec<&str> = arrays.iter().map(|a| a.job.as_str()).collect();
        let after = (!after.is_empty()).then(|| format!("--dependency=afterok:{}", after.join(":")));
        for (offset, units) in windows(&units, max_array_size()) {
            let mut args = sbatch_options(config, plan, &dir.join(format!("unit-{offset}+%a.out")));
            let tasks = ranges(&units.iter().map(|u| u - offset).collect::<Vec<_>>());
            args.push(format!("--array={tasks}{}", limit(config)).into());
            if let Some(after) = &after {
                // A dependency that can no longer be met cancels the array (collect then records it).
                args.extend([after.into(), "--kill-on-invalid-dep=yes".into()]);
            }
            let name = match wave {
                0 => format!("array-{offset}.args.json"),
                w => format!("array-{offset}-wave-{w}.args.json"),
            };
            run.write_atomic(dir.join(name), &args_json(&args)?)?;
            let with_offset = [&script_args[..], &[offset.to_string().into()]].concat();
            arrays.push(ArrayJob { job: sbatch(&args, &array_script, &with_offset)?, offset, units });
        }
    }
    let mut args = sbatch_options(&collect_config, plan, &dir.join("collect-%j.out"));
    if !arrays.is_empty() {
        let jobs: Vec<&str> = arrays.iter().map(|a| a.job.as_str()).collect();
        args.push(format!("--dependency=afterany:{}", jobs.join(":")).into());
    }
    run.write_atomic(dir.join("collect.args.json"), &args_json(&args)?)?;
    let collect_job = sbatch(&args, &collect_script, &script_args)?;
    let submission = Submission {
        array_job: arrays.first().map(|a| a.job.clone()).unwrap_or_default(),
        arrays,
        collect_job,
        units: pending.to_vec(),
        submitted: chrono::Local::now().to_rfc3339(),
    };
    record(&run, &submission)?;
    log::info!(
        "slurm: array job {} over {} unit(s), collect job {}",
        submission.array_jobs(),
        pending.len(),
        submission.collect_job
    );
    Ok(submission)
}

impl Submission {
    /// The arrays' job ids, comma-separated (`squeue -j` takes that).
    pub fn array_jobs(&self) -> String {
        self.all_arrays().iter().map(|a| a.job.as_str()).collect::<Vec<_>>().join(",")
    }
}

/// `%max_parallel` of `--array`, or nothing.
fn limit(config: &SlurmConfig) -> String {
    match config.max_parallel {
        0 => String::new(),
        n => format!("%{n}"),
    }
}

/// The pending units by array: `(offset, units)` with every unit in
/// `offset .. offset + max` (its task index below `max`).
fn windows(pending: &[usize], max: usize) -> Vec<(usize, Vec<usize>)> {
    let mut out: Vec<(usize, Vec<usize>)> = Vec::new();
    for &unit in pending {
        let offset = unit / max.max(1) * max.max(1);
        match out.last_mut() {
            Some((o, units)) if *o == offset => units.push(unit),
            _ => out.push((offset, vec![unit])),
        }
    }
    out
}

/// The cluster's `MaxArraySize` (`scontrol show config`), or Slurm's
/// default 1001 where it cannot be read.
fn max_array_size() -> usize {
    let output = Command::new("scontrol").args(["show", "config"]).output();
    let text = output.map(|o| String::from_utf8_lossy(&o.stdout).into_owned()).unwrap_or_default();
    let value = text.lines().find_map(|l| l.strip_prefix("MaxArraySize")).and_then(|rest| rest.split('=').nth(1));
    value.and_then(|v| v.trim().parse().ok()).filter(|&m: &usize| m > 0).unwrap_or_else(|| {
        log::debug!("slurm: MaxArraySize not read from `scontrol show config`; using 1001");
        1001
    })
}

/// The `sbatch` options of `config`, as arguments (no shell sees them).
fn sbatch_options(config: &SlurmConfig, plan: &Plan, output: &Path) -> Vec<OsString> {
    let mut args: Vec<OsString> = vec![
        format!("--job-name=tessera-{}", plan.experiment).into(),
        joined("--output=", output.as_os_str()),
        joined("--chdir=", plan.cwd.as_os_str()),
        "--ntasks=1".into(),
    ];
    let mut option = |name: &str, value: Option<String>| args.extend(value.map(|v| format!("--{name}={v}").into()));
    option("partition", config.partition.clone());
    option("account", config.account.clone());
    option("time", config.time.clone());
    option("mem", config.mem.clone());
    option("cpus-per-task", (config.cpus_per_task > 0).then(|| config.cpus_per_task.to_string()));
    option("gpus-per-task", (config.gpus > 0).then(|| config.gpus.to_string()));
    option("signal", (config.signal_grace > 0).then(|| format!("B:USR1@{}", config.signal_grace)));
    if config.requeue {
        args.push("--requeue".into());
    }
    args.extend(config.sbatch_args.iter().map(OsString::from));
    args
}

/// Whether a task stopped by the time-limit signal asks to run again.
fn requeues(config: &SlurmConfig) -> bool {
    config.requeue && config.signal_grace > 0
}

/// Asks Slurm to run this array task again (`scontrol requeue JOB_TASK`,
/// from `SLURM_ARRAY_JOB_ID` and `SLURM_ARRAY_TASK_ID`): the task stopped on
/// the signal before its time limit, its unit's state saved. Its id.
pub fn requeue_this_task() -> Result<String> {
    let var = |name: &str| {
        std::env::var(name).map_err(|_| crate::error::invalid!("{name} is not set: not a Slurm array task"))
    };
    let task = format!("{}_{}", var("SLURM_ARRAY_JOB_ID")?, var("SLURM_ARRAY_TASK_ID")?);
    if let Some(bad) = unsafe_char(&task) {
        bail!("the Slurm task id {task:?} holds {bad:?}");
    }
    let output = Command::new("scontrol").args(["requeue", &task]).output().context("running scontrol requeue")?;
    if !output.status.success() {
        bail!("scontrol requeue {task} failed: {}", String::from_utf8_lossy(&output.stderr).trim());
    }
    Ok(task)
}

fn joined(option: &str, value: &std::ffi::OsStr) -> OsString {
    let mut arg = OsString::from(option);
    arg.push(value);
    arg
}

fn args_json(args: &[OsString]) -> Result<Vec<u8>> {
    let text: Vec<String> = args.iter().map(|a| a.to_string_lossy().into_owned()).collect();
    Ok(serde_json::to_vec_pretty(&text)?)
}

/// A job script: the binary and the run folder come in as `$1` and `$2`
/// (kept before `setup` runs), then `setup`, then `exec tessera ARGS`.
fn script(setup: &str, tessera_args: &str) -> String {
    let mut text = String::from(
        "#!/bin/bash\n# Written by tessera; submitted with sbatch, its options on sbatch's command line\n\
         # (see *.args.json beside this file). $1: the tessera binary, $2: the run folder.\n",
    );
    text += "set -e\nreadonly TESSERA_BIN=\"$1\" TESSERA_RUN=\"$2\" TESSERA_UNIT_OFFSET=\"${3:-0}\"\nshift \"$#\"\n";
    if !setup.trim().is_empty() {
        text += setup.trim_end();
        text += "\n";
    }
    text += &format!("exec \"$TESSERA_BIN\" {tessera_args}\n");
    text
}

/// `sbatch --parsable ARGS SCRIPT SCRIPT_ARGS`; the job id.
fn sbatch(args: &[OsString], script: &Path, script_args: &[OsString]) -> Result<String> {
    let output = Command::new("sbatch")
        .arg("--parsable")
        .args(args)
        .arg(script)
        .args(script_args)
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
fn record(run: &Confined, submission: &Submission) -> Result<()> {
    let mut all = submissions(run.root());
    all.push(submission.clone());
    run.write_atomic("slurm/jobs.json", &serde_json::to_vec_pretty(&all)?)?;
    Ok(())
}

/// Every submission of a run folder, oldest first.
pub fn submissions(run_dir: &Path) -> Vec<Submission> {
    Confined::new(run_dir)
        .read("slurm/jobs.json")
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
    fn arrays_keep_every_task_index_below_max_array_size() {
        let pending = [0, 1, 2, 3, 4, 5, 9, 12];
        assert_eq!(windows(&pending, 4), [(0, vec![0, 1, 2, 3]), (4, vec![4, 5]), (8, vec![9]), (12, vec![12])]);
        assert_eq!(windows(&pending, 1001), [(0, pending.to_vec())]);
        let submission = Submission {
            array_job: "7".into(),
            arrays: vec![
                ArrayJob { job: "7".into(), offset: 0, units: vec![0, 1] },
                ArrayJob { job: "9".into(), offset: 4, units: vec![5] },
            ],
            collect_job: "10".into(),
            units: vec![0, 1, 5],
            submitted: String::new(),
        };
        assert_eq!(submission.task_of(5).as_deref(), Some("9_1"));
        assert_eq!(submission.array_jobs(), "7,9");
    }

    #[test]
    fn no_value_reaches_the_script_text() {
        let text = script("module load cuda", "collect \"$TESSERA_RUN\"");
        assert!(
            text.contains(
                "readonly TESSERA_BIN=\"$1\" TESSERA_RUN=\"$2\" TESSERA_UNIT_OFFSET=\"${3:-0}\"\nshift \"$#\"\nmodule load cuda\nexec"
            ),
            "{text}"
        );
        assert_eq!(unsafe_char("gpu\ntouch /tmp/x"), Some('\n'));
        assert_eq!(unsafe_char("01:00:00"), None);
    }
}

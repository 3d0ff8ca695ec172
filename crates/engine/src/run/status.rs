//! `tessera status`: each unit of a run folder done, failed, running,
//! stopped (started, no result, no longer running) or pending, with the
//! Slurm job of each where Slurm runs them.

use std::path::Path;

use super::plan::Plan;
use super::slurm;
use super::unit;
use crate::confined::Confined;
use crate::report::Status;
use crate::system::host_name;

/// Where a unit stands.
#[derive(Debug, Clone, PartialEq)]
pub enum UnitState {
    /// Finished with status ok.
    Done,
    /// Finished with an error.
    Failed(String),
    /// Started and still running (its process or Slurm task is alive).
    Running,
    /// Started, no result, and no longer running (killed, cancelled).
    Stopped,
    /// Not started.
    Pending,
}

impl UnitState {
    /// One word for it.
    pub fn word(&self) -> &'static str {
        match self {
            UnitState::Done => "done",
            UnitState::Failed(_) => "failed",
            UnitState::Running => "running",
            UnitState::Stopped => "stopped",
            UnitState::Pending => "pending",
        }
    }
}

/// One unit's line of `tessera status`.
#[derive(Debug, Clone)]
pub struct UnitStatus {
    /// The unit's id.
    pub id: usize,
    /// Its variant.
    pub variant: String,
    /// Where it stands.
    pub state: UnitState,
    /// Its Slurm task (`JOB_TASK`) and Slurm's state of it, when submitted there.
    pub slurm: Option<(String, String)>,
    /// Which start of it this is (1: it never ran again).
    pub attempt: u32,
}

/// Every unit of `plan` in `run_dir`.
pub fn units(plan: &Plan, run_dir: &Path) -> Vec<UnitStatus> {
    let submissions = slurm::submissions(run_dir);
    let queue: Vec<(String, String)> = submissions
        .iter()
        .filter(|s| !s.array_job.is_empty())
        .flat_map(|s| slurm::squeue(&s.array_jobs()).unwrap_or_default())
        .collect();
    plan.units
        .iter()
        .map(|u| {
            let task = submissions.iter().rev().find(|s| s.units.contains(&u.id)).and_then(|s| s.task_of(u.id));
            let queued =
                task.as_ref().and_then(|t| queue.iter().find(|(id, _)| id == t)).map(|(_, state)| state.clone());
            let state = state_of(run_dir, u.id, queued.is_some());
            let slurm = task.map(|t| (t, queued.unwrap_or_else(|| "not queued".into())));
            let attempt = unit::read_started(run_dir, u.id).map_or(1, |r| r.attempt);
            UnitStatus { id: u.id, variant: u.variant.clone(), state, slurm, attempt }
        })
        .collect()
}

fn state_of(run_dir: &Path, id: usize, queued: bool) -> UnitState {
    if let Some(result) = unit::read_result(run_dir, id) {
        return match result.status {
            Status::Ok => UnitState::Done,
            // Stopped on a signal with its state saved: resumable, not failed.
            _ if result.stopped_at.is_some() => UnitState::Stopped,
            _ => UnitState::Failed(result.error.unwrap_or_default()),
        };
    }
    match unit::read_started(run_dir, id) {
        None => UnitState::Pending,
        Some(_) if queued => UnitState::Running,
        Some(ran) if ran.slurm_job.is_none() && ran.host == host_name() && alive(ran.pid) => UnitState::Running,
        Some(_) => UnitState::Stopped,
    }
}

/// `  epoch 2.5/6 · step … · eta 1m 12s` of a running unit's
/// `progress.json` (nothing before its first checkpoint).
fn running_line(unit_dir: &Path) -> String {
    let Some(progress) = super::progress::UnitProgress::read(unit_dir) else { return String::new() };
    let eta = progress.eta_seconds().map_or_else(String::new, |s| format!(" · eta {}", duration(s)));
    format!("\n             {}{eta}", progress.describe())
}

/// Where a stopped unit's training had got to (its last `progress.json`)
/// and what `tessera resume` continues from: its newest saved state (step,
/// age), or step 0 when it has none.
fn stopped_line(run_dir: &Path, id: usize, unit_dir: &Path) -> String {
    let resumes = match super::checkpoints::UnitCheckpoints::of(run_dir, id).latest_info() {
        Some(saved) => {
            format!("`tessera resume` continues from its state saved at step {}{}", saved.step, ago(&saved.saved))
        }
        None => "no saved state: `tessera resume` trains it again from step 0".to_string(),
    };
    let Some(progress) = super::progress::UnitProgress::read(unit_dir) else {
        return format!("\n             {resumes}");
    };
    let modified = Confined::new(unit_dir).open("progress.json").and_then(|f| f.metadata()?.modified());
    let age = modified
        .ok()
        .and_then(|t| t.elapsed().ok())
        .map_or_else(String::new, |d| format!(", {} ago", duration(d.as_secs_f64())));
    format!(
        "\n             last checkpoint: step {}/{} (epoch {:.1}/{}){age}; {resumes}",
        progress.step, progress.steps, progress.epoch, progress.epochs
    )
}

/// `, 3m 12s ago` of an RFC 3339 time (nothing if it does not parse).
fn ago(rfc3339: &str) -> String {
    let Ok(then) = chrono::DateTime::parse_from_rfc3339(rfc3339) else { return String::new() };
    let seconds = (chrono::Local::now().fixed_offset() - then).num_milliseconds() as f64 / 1000.0;
    format!(", {} ago", duration(seconds))
}

/// `1h 2m`, `3m 12s`, `42s`.
fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match (s / 3600, s / 60 % 60, s % 60) {
        (0, 0, sec) => format!("{sec}s"),
        (0, min, sec) => format!("{min}m {sec}s"),
        (h, min, _) => format!("{h}h {min}m"),
    }
}

fn alive(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// The status as text: a count per state, then a line per unit not done.
pub fn describe(plan: &Plan, run_dir: &Path, all: bool) -> String {
    let units = units(plan, run_dir);
    let count = |word: &str| units.iter().filter(|u| u.state.word() == word).count();
    let mut out = format!(
        "{}: {} units: {} done, {} running, {} failed, {} stopped, {} pending; results.json {}\n",
        run_dir.display(),
        units.len(),
        count("done"),
        count("running"),
        count("failed"),
        count("stopped"),
        count("pending"),
        if run_dir.join("results.json").exists() { "written" } else { "not yet written" }
    );
    for s in slurm::submissions(run_dir) {
        out +=
            &format!("slurm: array job {} ({} units), collect job {}\n", s.array_jobs(), s.units.len(), s.collect_job);
    }
    for u in units.iter().filter(|u| all || u.state != UnitState::Done) {
        out += &format!("unit {:>5}  {:<8} {}", u.id, u.state.word(), u.variant);
        if let Some((task, state)) = &u.slurm {
            out += &format!("  [slurm {task}: {state}]");
        }
        if u.attempt > 1 {
            out += &format!("  (started {} times)", u.attempt);
        }
        match u.state {
            UnitState::Running => out += &running_line(&unit::unit_dir(run_dir, u.id)),
            UnitState::Stopped => out += &stopped_line(run_dir, u.id, &unit::unit_dir(run_dir, u.id)),
            _ => {}
        }
        if let UnitState::Failed(error) = &u.state {
            out += &format!("\n             {}", error.lines().next().unwrap_or_default());
        }
        out += "\n";
    }
    out
}

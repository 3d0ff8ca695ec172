//! How a training unit shows where it stands, at every checkpoint: the
//! progress bar's message (epoch, the latest train loss, test accuracy), a
//! log line when stderr is not a terminal (at most one per
//! [`LINE_EVERY`]), and `units/<id>/progress.json`, which `tessera status`
//! reads for the epoch, step and an ETA.

use std::cell::Cell;
use std::io::IsTerminal;
use std::path::Path;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::confined::Confined;

/// Log lines without a terminal, at most one per this.
pub const LINE_EVERY: Duration = Duration::from_secs(10);
/// `progress.json` rewritten at most once per this.
const FILE_EVERY: Duration = Duration::from_secs(2);

/// `units/<id>/progress.json`: a running unit's last checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct UnitProgress {
    /// Optimizer steps taken.
    pub step: u64,
    /// Optimizer steps of the whole run.
    pub steps: u64,
    /// Epochs completed (fractional).
    pub epoch: f64,
    /// Epochs of the whole run.
    pub epochs: u64,
    /// Mean training loss since the previous checkpoint (none for a
    /// population unit).
    pub train_loss: Option<f64>,
    /// Test accuracy at this checkpoint (none for a population unit).
    pub test_accuracy: Option<f64>,
    /// Seconds since training started.
    pub seconds: f64,
    /// A population unit's runs finished, and all of them (`epoch` and
    /// `epochs` are then the run's or batch's in progress).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub runs: Option<(u64, u64)>,
}

impl UnitProgress {
    /// Seconds left at the pace so far (none before the first step).
    pub fn eta_seconds(&self) -> Option<f64> {
        (self.step > 0).then(|| self.seconds / self.step as f64 * self.steps.saturating_sub(self.step) as f64)
    }

    /// `epoch 2.5/6 · step 220/396 · train loss 0.412 · test acc 0.871`, or
    /// for a population unit `runs 2/8 · epoch 2.5/6 · step 1420/3168`.
    pub fn describe(&self) -> String {
        let runs = self.runs.map_or(String::new(), |(done, all)| format!("runs {done}/{all} · "));
        let loss = self.train_loss.map_or(String::new(), |l| format!(" · train loss {l:.3}"));
        let accuracy = self.test_accuracy.map_or(String::new(), |a| format!(" · test acc {a:.3}"));
        format!("{runs}epoch {:.1}/{} · step {}/{}{loss}{accuracy}", self.epoch, self.epochs, self.step, self.steps)
    }

    /// Reads `units/<id>/progress.json` of a run folder, if there is one.
    pub fn read(unit_dir: &Path) -> Option<UnitProgress> {
        let bytes = Confined::new(unit_dir).read("progress.json").ok()?;
        serde_json::from_slice(&bytes).ok()
    }
}

/// What a unit's checkpoints report to.
pub(super) struct Reporter<'a> {
    variant: &'a str,
    unit_dir: &'a Path,
    bar: Option<&'a indicatif::ProgressBar>,
    lines: bool,
    started: Instant,
    last_line: Cell<Option<Instant>>,
    last_file: Cell<Option<Instant>>,
    steps: u64,
    epochs: u64,
}

impl<'a> Reporter<'a> {
    /// A reporter of `variant`'s training, `steps` steps over `epochs` epochs.
    pub(super) fn new(
        variant: &'a str,
        unit_dir: &'a Path,
        bar: Option<&'a indicatif::ProgressBar>,
        (steps, epochs): (u64, u64),
    ) -> Self {
        let lines = !std::io::stderr().is_terminal();
        let (last_line, last_file) = (Cell::new(None), Cell::new(None));
        Reporter { variant, unit_dir, bar, lines, started: Instant::now(), last_line, last_file, steps, epochs }
    }

    /// One checkpoint: the bar's message, a rate-limited line, the file.
    pub(super) fn checkpoint(&self, step: u64, epoch: f64, train_loss: f64, test_accuracy: f64, last: bool) {
        let seconds = self.started.elapsed().as_secs_f64();
        let (steps, epochs) = (self.steps, self.epochs);
        let (loss, accuracy) = (Some(train_loss), Some(test_accuracy));
        let now =
            UnitProgress { step, steps, epoch, epochs, train_loss: loss, test_accuracy: accuracy, seconds, runs: None };
        if let Some(bar) = self.bar {
            bar.set_message(format!(
                "{} ep {:.1}/{} loss {:.3} acc {:.3}",
                self.variant, epoch, epochs, train_loss, test_accuracy
            ));
        }
        if self.lines && (last || due(&self.last_line, LINE_EVERY)) {
            log::info!("{}: {}", self.variant, now.describe());
        }
        if last || due(&self.last_file, FILE_EVERY) {
            write(self.unit_dir, &now, self.variant);
        }
    }
}

/// Writes `progress` as `unit_dir/progress.json` (a failure is a debug line:
/// the file only informs `tessera status`).
fn write(unit_dir: &Path, progress: &UnitProgress, variant: &str) {
    let bytes = serde_json::to_vec_pretty(progress).unwrap_or_default();
    if let Err(e) = Confined::new(unit_dir).write_atomic("progress.json", &bytes) {
        log::debug!("progress.json of {variant}: {e}");
    }
}

/// A population unit's `progress.json`: its runs, steps and the epoch of
/// the run or batch in progress, rewritten at most every [`FILE_EVERY`]
/// (and when its last step is reached).
#[cfg(feature = "torch")]
pub(super) struct PopulationProgress<'a> {
    variant: &'a str,
    unit_dir: &'a Path,
    started: Instant,
    last_file: Cell<Option<Instant>>,
}

#[cfg(feature = "torch")]
impl<'a> PopulationProgress<'a> {
    /// The progress file of `variant`'s unit in `unit_dir`.
    pub(super) fn new(variant: &'a str, unit_dir: &'a Path) -> Self {
        PopulationProgress { variant, unit_dir, started: Instant::now(), last_file: Cell::new(None) }
    }

    /// Where the unit stands now.
    pub(super) fn report(&self, at: tessera_torch::population::UnitSteps) {
        let ((step, steps), (epoch, epochs)) = (at.steps, at.epoch);
        if step < steps && !due(&self.last_file, FILE_EVERY) {
            return;
        }
        let seconds = self.started.elapsed().as_secs_f64();
        let now = UnitProgress {
            step,
            steps,
            epoch,
            epochs,
            train_loss: None,
            test_accuracy: None,
            seconds,
            runs: Some(at.runs),
        };
        write(self.unit_dir, &now, self.variant);
    }
}

/// Whether `every` has passed since `last` (then `last` is now).
fn due(last: &Cell<Option<Instant>>, every: Duration) -> bool {
    let now = Instant::now();
    let due = last.get().is_none_or(|t| now.duration_since(t) >= every);
    if due {
        last.set(Some(now));
    }
    due
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_file_says_where_training_stands_and_how_long_is_left() {
        let dir = tempfile::tempdir().unwrap();
        let reporter = Reporter::new("v", dir.path(), None, (400, 4));
        reporter.checkpoint(100, 1.0, 0.5, 0.75, false);
        let read = UnitProgress::read(dir.path()).unwrap();
        assert_eq!((read.step, read.steps, read.epochs), (100, 400, 4));
        let eta = UnitProgress { seconds: 10.0, ..read.clone() }.eta_seconds().unwrap();
        assert!((eta - 30.0).abs() < 1e-9, "{eta}");
        assert!(read.describe().starts_with("epoch 1.0/4 · step 100/400 · train loss 0.500"), "{}", read.describe());
        reporter.checkpoint(200, 2.0, 0.4, 0.8, false);
        assert_eq!(UnitProgress::read(dir.path()).unwrap().step, 100, "rewritten at most every 2 s");
        reporter.checkpoint(400, 4.0, 0.3, 0.9, true);
        assert_eq!(UnitProgress::read(dir.path()).unwrap().step, 400, "the last checkpoint is always written");
    }

    #[test]
    #[cfg(feature = "torch")]
    fn a_population_unit_says_its_runs_and_steps_without_a_loss() {
        let dir = tempfile::tempdir().unwrap();
        let progress = PopulationProgress::new("p", dir.path());
        let at =
            |runs, step| tessera_torch::population::UnitSteps { runs: (runs, 8), steps: (step, 3168), epoch: (2.5, 6) };
        progress.report(at(2, 1420));
        let read = UnitProgress::read(dir.path()).unwrap();
        assert_eq!(read.describe(), "runs 2/8 · epoch 2.5/6 · step 1420/3168");
        assert!(read.eta_seconds().is_some());
        progress.report(at(3, 2000));
        assert_eq!(UnitProgress::read(dir.path()).unwrap().step, 1420, "rewritten at most every 2 s");
        progress.report(at(8, 3168));
        assert_eq!(UnitProgress::read(dir.path()).unwrap().runs, Some((8, 8)), "the last step is always written");
        // A file of before has numbers for the loss and accuracy, and no runs.
        let before = r#"{"step": 1, "steps": 2, "epoch": 0.5, "epochs": 1, "train_loss": 0.5, "test_accuracy": 0.75, "seconds": 1.0}"#;
        std::fs::write(dir.path().join("progress.json"), before).unwrap();
        let read = UnitProgress::read(dir.path()).unwrap();
        assert_eq!((read.train_loss, read.runs), (Some(0.5), None));
    }

    #[test]
    fn lines_are_rate_limited() {
        let last = Cell::new(None);
        assert!(due(&last, Duration::from_secs(60)));
        assert!(!due(&last, Duration::from_secs(60)));
        assert!(due(&last, Duration::ZERO));
    }
}

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
    /// Mean training loss since the previous checkpoint.
    pub train_loss: f64,
    /// Test accuracy at this checkpoint.
    pub test_accuracy: f64,
    /// Seconds since training started.
    pub seconds: f64,
}

impl UnitProgress {
    /// Seconds left at the pace so far (none before the first step).
    pub fn eta_seconds(&self) -> Option<f64> {
        (self.step > 0).then(|| self.seconds / self.step as f64 * self.steps.saturating_sub(self.step) as f64)
    }

    /// `epoch 2.5/6 · step 220/396 · train loss 0.412 · test acc 0.871`.
    pub fn describe(&self) -> String {
        format!(
            "epoch {:.1}/{} · step {}/{} · train loss {:.3} · test acc {:.3}",
            self.epoch, self.epochs, self.step, self.steps, self.train_loss, self.test_accuracy
        )
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
        let now = UnitProgress { step, steps, epoch, epochs, train_loss, test_accuracy, seconds };
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
            let bytes = serde_json::to_vec_pretty(&now).unwrap_or_default();
            if let Err(e) = Confined::new(self.unit_dir).write_atomic("progress.json", &bytes) {
                log::debug!("progress.json of {}: {e}", self.variant);
            }
        }
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
    fn lines_are_rate_limited() {
        let last = Cell::new(None);
        assert!(due(&last, Duration::from_secs(60)));
        assert!(!due(&last, Duration::from_secs(60)));
        assert!(due(&last, Duration::ZERO));
    }
}

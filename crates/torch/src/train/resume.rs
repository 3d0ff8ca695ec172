//! Stopping and resuming a fit at a step boundary (issue 38). At a step
//! boundary (no accumulation open) the loop can hand its whole state to a
//! save hook: the model, the optimizer and [`FitState`], which is everything
//! else the loop keeps (counters, the epoch's visits, the loss since the last
//! checkpoint, the summary so far). A fit given that state back continues
//! with the same bits: it asks the epoch hook for the stopped epoch's
//! batches again and skips the ones already trained on.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{FitSummary, SelectionLog};
use crate::model::Model;
use crate::optim::SavableOptimizer;
use crate::Result;

/// Where a fit stood at a step boundary: everything the loop keeps besides
/// the model and the optimizer.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct FitState {
    /// The epoch it stood in (0-based).
    pub epoch: u64,
    /// Batches of that epoch's source already trained on (skipped on resume).
    pub epoch_batches: u64,
    /// Examples trained on before that epoch.
    pub epoch_seen_before: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// Examples trained on.
    pub seen: u64,
    /// Examples of the epoch orders drawn.
    pub drawn: u64,
    /// Seconds of optimization.
    pub seconds: f64,
    /// The training loss summed since the last checkpoint, and its count.
    pub loss_sum: f64,
    /// Batches in `loss_sum`.
    pub loss_count: u64,
    /// The step of the last checkpoint the metrics observed.
    pub last_checkpoint: u64,
    /// Visits of each id in the stopped epoch so far.
    pub visits: Vec<u8>,
    /// Whether each id was visited in any epoch.
    pub ever: Vec<bool>,
    /// The summary of the finished epochs.
    pub summary: FitSummary,
    /// Per-step selection's log so far.
    pub selection: Option<SelectionLog>,
}

/// What a save hook receives: the state of a fit at a step boundary.
pub struct Saving<'s> {
    /// The model.
    pub model: &'s Model,
    /// The optimizer, its state included.
    pub optimizer: &'s SavableOptimizer,
    /// The rest.
    pub state: &'s FitState,
    /// Whether the fit stops after this save (a stop was asked for).
    pub stopping: bool,
}

/// Saves a fit's state (told whether the fit stops after it); whether it did.
pub type SaveHook<'b> = dyn FnMut(Saving<'_>) -> Result<bool> + 'b;

/// When a fit saves its state, and the hook that saves it.
pub struct Checkpointing<'a, 'b> {
    /// Writes the state.
    pub save: &'a mut SaveHook<'b>,
    /// The interval between saves (none: only when stopping).
    pub every: Option<Duration>,
    /// A state to continue from instead of starting (the model's weights
    /// are the caller's to restore first).
    pub resume: Option<Resumed>,
}

/// How a fit may stop: the flag that asks it to, and how it saves its
/// state first (without a way to save, a stop is an error).
pub struct Control<'a, 'b> {
    /// Set to stop at the next step boundary.
    pub cancel: &'a std::sync::atomic::AtomicBool,
    /// Saving the state at step boundaries, and the state to continue from.
    pub checkpointing: Option<Checkpointing<'a, 'b>>,
}

impl<'a> Control<'a, '_> {
    /// Stops when `cancel` is set, with nothing saved.
    pub fn cancel(cancel: &'a std::sync::atomic::AtomicBool) -> Self {
        Control { cancel, checkpointing: None }
    }
}

/// A saved fit to continue: its state and its optimizer's file.
#[derive(Debug, Clone)]
pub struct Resumed {
    /// The loop's state.
    pub state: FitState,
    /// What [`SavableOptimizer::save`] wrote.
    pub optimizer: std::path::PathBuf,
}

/// The fit stopped at a step boundary, as asked (Ctrl-C, SIGTERM,
/// SIGUSR1), its state saved there unless the save failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("stopped at step {step}{}", if *saved { " with its state saved (`tessera resume` continues from there)" } else { "; its state could not be saved there (see the warning): `tessera resume` continues from the last saved one" })]
pub struct Stopped {
    /// The optimizer steps taken.
    pub step: u64,
    /// Whether the state at this step was saved.
    pub saved: bool,
}

/// When the last save was, to space them by the interval.
#[derive(Debug, Clone, Copy)]
pub(super) struct SaveClock {
    last: Instant,
}

impl SaveClock {
    pub(super) fn new() -> Self {
        SaveClock { last: Instant::now() }
    }

    /// Whether the interval has passed since the last save.
    pub(super) fn due(&self, every: Option<Duration>) -> bool {
        every.is_some_and(|every| self.last.elapsed() >= every)
    }

    pub(super) fn saved(&mut self) {
        self.last = Instant::now();
    }
}

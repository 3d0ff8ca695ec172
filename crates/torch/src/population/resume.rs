//! Stopping and resuming a population unit (issue 38). A unit trains a group
//! of runs one after another; its saved state is the group's: the runs
//! finished, the members and matrices so far, the fork parent of the
//! lineage in progress, and, when the stop came inside a run that can save
//! its fit (a seeded shuffle), that fit's state, model and optimizer. A run
//! under a plugin's sampler is saved as it was at its start. A unit that
//! trains its runs as batches (`population.batch`) saves the batch in
//! progress: its stacked tensors, optimizer and place in the epoch.

use std::cell::Cell;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use super::{Member, Population, SplitMatrix};
use crate::train::FitState;
use crate::Result;

/// The model of the run in progress, in a saved state.
pub const MODEL: &str = "model.safetensors";
/// Its optimizer's state.
pub const OPTIMIZER: &str = "optimizer.pt";
/// The fork parent's weights.
pub const FORK: &str = "fork.safetensors";
/// A batch's stacked tensors (`population.batch`), in a saved state inside it.
pub const BATCH: &str = "batch.safetensors";

/// Where a unit's group of runs stood when its state was saved.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct GroupState {
    /// Runs of the group trained to their end.
    pub finished: usize,
    /// Their optimizer steps, all together.
    pub finished_steps: u64,
    /// Their members and matrix rows, and those of the run in progress so far.
    pub population: Population,
    /// The fork parent's (step, examples seen), its weights in [`FORK`].
    pub fork: Option<(u64, u64)>,
    /// The run in progress, if the state was saved inside it.
    pub run: Option<RunState>,
    /// libtorch's CPU generator.
    pub rng: Vec<u8>,
    /// The batch in progress (`population.batch`), if the state was saved
    /// inside one; the runs of the batches before it are `finished`.
    #[serde(default)]
    pub batch: Option<BatchState>,
}

/// A member taken from a batch, with its rows of each split's matrix.
pub type TakenMember = (Member, Vec<(String, SplitMatrix)>);

/// Where a batch of runs trained as one model stood: its stacked tensors
/// in [`BATCH`], its optimizer's state in [`OPTIMIZER`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BatchState {
    /// The epoch it stood in (0-based): each member's shuffles of the
    /// epochs before it are drawn again on resume.
    pub epoch: u64,
    /// Examples of that epoch's orders already trained on.
    pub position: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// Examples trained on, per member.
    pub seen: u64,
    /// The step of the last checkpoint.
    pub last_checkpoint: u64,
    /// Each member's summed loss since the last divergence check.
    pub loss_sums: Vec<f32>,
    /// The members taken from the batch so far, per run, with their rows.
    pub taken: Vec<Vec<TakenMember>>,
}

impl GroupState {
    /// What `tessera status` counts: optimizer steps of the unit's runs so far.
    pub fn steps(&self) -> u64 {
        let inside = self.run.as_ref().map(|r| r.fit.step).or(self.batch.as_ref().map(|b| b.step));
        self.finished_steps + inside.unwrap_or(0)
    }
}

/// The fit of the run in progress, its model and optimizer in [`MODEL`]
/// and [`OPTIMIZER`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunState {
    /// The loop's state.
    pub fit: FitState,
}

/// Where a population unit keeps its saved states (the engine's store of
/// the unit's folder).
pub trait GroupStore {
    /// The interval between saves (none: only when stopped).
    fn every(&self) -> Option<Duration>;
    /// Saves `state` with the files `write` puts into the new folder it is given.
    fn save(&self, state: &GroupState, write: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()>;
    /// The newest saved state that checks out and the folder of its files.
    fn load(&self) -> Result<Option<(GroupState, PathBuf)>>;
}

/// A group's saving: its store and when it last saved.
pub(super) struct GroupSaving<'a> {
    pub(super) store: &'a dyn GroupStore,
    last: Cell<Instant>,
}

impl<'a> GroupSaving<'a> {
    pub(super) fn new(store: &'a dyn GroupStore) -> Self {
        GroupSaving { store, last: Cell::new(Instant::now()) }
    }

    /// Whether the interval has passed since the last save.
    pub(super) fn due(&self) -> bool {
        self.store.every().is_some_and(|every| self.last.get().elapsed() >= every)
    }

    /// Saves `state` (with the files `write` adds); whether it was written.
    /// A state that cannot be written is a warning: training goes on.
    pub(super) fn save(&self, state: &GroupState, write: &mut dyn FnMut(&Path) -> Result<()>) -> bool {
        self.last.set(Instant::now());
        match self.store.save(state, write) {
            Ok(()) => {
                log::info!("saved the training state at step {} ({} runs finished)", state.steps(), state.finished);
                true
            }
            Err(e) => {
                log::warn!(
                    "the training state at step {} is not saved: {}",
                    state.steps(),
                    tessera_util::error::chain(&e)
                );
                false
            }
        }
    }
}

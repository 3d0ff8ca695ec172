//! A stacked fit's state between optimizer steps: saved every interval and
//! when a stop is asked for, and continued from bit for bit (each member's
//! epoch in progress drawn again by its hook, the batches trained on
//! skipped).

use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::time::Duration;

use serde::{Deserialize, Serialize};
use tch::Tensor;

use super::{MemberLog, Stacked, StackedHooks};
use crate::error::{bail, Result};
use crate::train::{FitSummary, Stopped};

/// The stacked tensors of a saved state.
pub const STACKED: &str = "stacked.safetensors";
/// The optimizer's state of a saved state.
pub const OPTIMIZER: &str = "optimizer.pt";

/// Where a stacked fit stands between optimizer steps.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StackedState {
    /// The epoch in progress (0-based).
    pub epoch: u64,
    /// Batches of it trained on.
    pub epoch_batches: u64,
    /// Examples trained on before it.
    pub epoch_seen_before: u64,
    /// Optimizer steps taken.
    pub step: u64,
    /// Examples each member trained on.
    pub seen: u64,
    /// Seconds of optimization.
    pub seconds: f64,
    /// The step of the last checkpoint.
    pub last_checkpoint: u64,
    /// Each member's losses, visits and summary so far.
    pub members: Vec<MemberState>,
}

/// A member's own part of a [`StackedState`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemberState {
    /// Its loss summed since the last checkpoint, and over how many batches.
    pub loss_sum: f64,
    /// Batches in `loss_sum`.
    pub loss_count: u64,
    /// Its visits of each id in the epoch in progress.
    pub visits: Vec<u8>,
    /// Whether each id was visited in any epoch.
    pub ever: Vec<bool>,
    /// Its summary of the epochs before.
    pub summary: FitSummary,
}

/// A save the fit asks for: its state, and the writer of its stacked
/// tensors and optimizer into a folder.
pub struct StackedSaving<'s> {
    /// Where the fit stands.
    pub state: &'s StackedState,
    /// Whether the save is for a stop.
    pub stopping: bool,
    /// Writes [`STACKED`] and [`OPTIMIZER`] into a folder.
    pub write: &'s dyn Fn(&Path) -> Result<()>,
}

/// Saving a stacked fit's state, and the state to continue from.
pub struct StackedCheckpointing<'a> {
    /// Saves a state (whether it was saved).
    pub save: &'a mut dyn FnMut(&StackedSaving) -> Result<bool>,
    /// The interval between saves (none: only when stopped).
    pub every: Option<Duration>,
    /// A saved state and the folder of its tensors, to continue from.
    pub resume: Option<(StackedState, PathBuf)>,
}

impl Stacked<'_> {
    /// Where the fit stands (between optimizer steps).
    fn state(&self) -> Result<StackedState> {
        let sums = self.loss_sums()?;
        let member = |(m, loss_sum): (&MemberLog, f64)| MemberState {
            loss_sum,
            loss_count: self.loss_count,
            visits: m.visits.clone(),
            ever: m.ever.clone(),
            summary: m.summary.clone(),
        };
        Ok(StackedState {
            epoch: self.epoch,
            epoch_batches: self.epoch_batches,
            epoch_seen_before: self.epoch_seen_before,
            step: self.step,
            seen: self.seen,
            seconds: self.seconds,
            last_checkpoint: self.last_checkpoint,
            members: self.members.iter().zip(sums).map(member).collect(),
        })
    }

    /// Continues from `state` and the tensors in `dir`: the epoch to start in.
    pub(super) fn restore(&mut self, state: StackedState, dir: &Path) -> Result<u64> {
        let n = self.n as usize;
        let fits = |m: &MemberState| m.visits.len() == n && m.ever.len() == n;
        if state.members.len() != self.members.len()
            || !state.members.iter().all(fits)
            || state.epoch >= self.cfg.epochs
        {
            bail!("{}: a saved batch of other seeds, examples or epochs than this one", dir.display());
        }
        let saved: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(dir.join(STACKED))?.into_iter().collect();
        for (name, tensor) in self.net.tensors() {
            match saved.get(&name) {
                Some(value) if value.size() == tensor.size() => tch::no_grad(|| tensor.shallow_clone().copy_(value)),
                _ => bail!("{}: no `{name}` of the batch's shape", dir.join(STACKED).display()),
            };
        }
        self.opt.load(&dir.join(OPTIMIZER))?;
        (self.epoch, self.epoch_batches, self.skip_batches) = (state.epoch, state.epoch_batches, state.epoch_batches);
        (self.epoch_seen_before, self.step, self.seen) = (state.epoch_seen_before, state.step, state.seen);
        (self.seconds, self.last_checkpoint) = (state.seconds, state.last_checkpoint);
        let sums: Vec<f64> = state.members.iter().map(|m| m.loss_sum).collect();
        let sums = Tensor::from_slice(&sums).to_device(self.loss_sums.device());
        tch::no_grad(|| self.loss_sums.copy_(&sums));
        self.loss_count = state.members.first().map_or(0, |m| m.loss_count);
        self.members = state.members.into_iter().map(MemberLog::from).collect();
        Ok(state.epoch)
    }

    /// Before a step (no accumulation open): the state saved when the
    /// interval has passed or a stop was asked for; a stop ends the fit
    /// with [`Stopped`] (without a way to save, with an error).
    pub(super) fn step_boundary(&mut self, hooks: &mut StackedHooks) -> Result<()> {
        let stopping = hooks.cancel.load(Ordering::Relaxed);
        let Some(checkpointing) = hooks.checkpointing.as_mut() else {
            if stopping {
                bail!("cancelled (this batch of seeds cannot save its state: it trains again from step 0)");
            }
            return Ok(());
        };
        if self.micro > 0 || !(stopping || self.clock.due(checkpointing.every)) {
            return Ok(());
        }
        let state = self.state()?;
        let write = |dir: &Path| -> Result<()> {
            Tensor::write_safetensors(&self.net.tensors(), dir.join(STACKED))?;
            self.opt.save(&dir.join(OPTIMIZER))
        };
        let saved = (checkpointing.save)(&StackedSaving { state: &state, stopping, write: &write })?;
        self.clock.saved();
        if stopping {
            return Err(Stopped { step: self.step, saved }.into());
        }
        Ok(())
    }
}

impl From<MemberState> for MemberLog {
    fn from(s: MemberState) -> Self {
        MemberLog { visits: s.visits, ever: s.ever, summary: s.summary }
    }
}

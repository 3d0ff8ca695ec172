//! The training loop of a batch: each member's own shuffle, one optimizer
//! over the stacked tensors, checkpoints where a run alone has them.

use std::path::Path;

use tch::{Kind, Tensor};
use tessera_sdk::{Checkpoint, SeedRng};

use super::net::BatchedNet;
use super::TakenMember;
use crate::error::{bail, Result};
use crate::manifest::TrainConfig;
use crate::optim::StackedOptimizer;
use crate::population::resume::{BatchState, BATCH, OPTIMIZER};
use crate::train::{self, ShuffledOrder, TensorData};

/// The training of a batch: each member's order and labels, the stacked
/// optimizer and where the fit stands.
pub(super) struct BatchedFit<'a> {
    pub(super) model: &'a dyn BatchedNet,
    pub(super) data: &'a TensorData,
    pub(super) labels: Tensor,
    pub(super) cfg: &'a TrainConfig,
    pub(super) rngs: Vec<SeedRng>,
    /// Member `k` at its setting's `lr`, which the schedule of `cfg` scales.
    pub(super) optimizer: StackedOptimizer,
    pub(super) step: u64,
    pub(super) seen: u64,
    pub(super) total_steps: u64,
    /// Examples to train on at most (`train.max_examples`).
    pub(super) budget: u64,
    /// Batches gathered per optimizer step (`train.accumulate`), and how
    /// many of the current step's are.
    pub(super) accumulate: u64,
    pub(super) micro: u64,
    /// Steps `checkpoint_steps` and `checkpoint_log` add.
    pub(super) extra_checkpoints: std::collections::BTreeSet<u64>,
    pub(super) last_checkpoint: u64,
    /// Each member's summed loss since the last check, on the device: read
    /// once an epoch rather than at every step (a read waits for a GPU).
    pub(super) loss_sums: Tensor,
    /// The epoch in progress (0-based), and the examples of its orders
    /// trained on so far.
    pub(super) epoch: u64,
    pub(super) position: u64,
}

impl<'a> BatchedFit<'a> {
    pub(super) fn new(
        model: &'a dyn BatchedNet,
        data: &'a TensorData,
        labels: &[Vec<i64>],
        cfg: &'a TrainConfig,
        (seeds, rates): (&[u64], &[f64]),
    ) -> Result<Self> {
        let n = data.y.size()[0] as u64;
        let device = data.x.device();
        let labels = Tensor::stack(&labels.iter().map(|l| Tensor::from_slice(l)).collect::<Vec<_>>(), 0).to(device);
        if rates.len() != seeds.len() {
            bail!("a batch of {} members with {} learning rates", seeds.len(), rates.len());
        }
        let optimizer = StackedOptimizer::new(train::optimizer_rule(cfg), rates, &model.parameters())?;
        let budget = cfg.max_examples.unwrap_or(u64::MAX);
        let accumulate = cfg.accumulate.max(1);
        let total_steps = planned_steps(cfg, n);
        let extra_checkpoints = train::checkpoint_steps(cfg, total_steps);
        let rngs = seeds.iter().map(|&seed| SeedRng::derive(seed, 0x5_4FF1E)).collect();
        let loss_sums = Tensor::zeros([seeds.len() as i64], (Kind::Float, device));
        Ok(BatchedFit {
            model,
            data,
            labels,
            cfg,
            rngs,
            optimizer,
            step: 0,
            seen: 0,
            total_steps,
            budget,
            accumulate,
            micro: 0,
            extra_checkpoints,
            last_checkpoint: 0,
            loss_sums,
            epoch: 0,
            position: 0,
        })
    }

    /// Continues from `state` (saved with its files in `dir`): the stacked
    /// tensors and the optimizer's state loaded, each member's shuffles of
    /// the epochs before drawn again, the loop where it stood.
    pub(super) fn continue_from(&mut self, state: &BatchState, dir: &Path) -> Result<()> {
        let members = self.rngs.len();
        if state.loss_sums.len() != members || state.taken.len() != members {
            bail!("{}: a saved batch of {} members, not of {members}", dir.display(), state.loss_sums.len());
        }
        let saved: std::collections::HashMap<String, Tensor> =
            Tensor::read_safetensors(dir.join(BATCH))?.into_iter().collect();
        for (name, tensor) in self.model.tensors() {
            let Some(value) = saved.get(&name) else { bail!("{}: no `{name}`", dir.join(BATCH).display()) };
            if value.size() != tensor.size() {
                bail!(
                    "{}: `{name}` has shape {:?}, the batch {:?}",
                    dir.join(BATCH).display(),
                    value.size(),
                    tensor.size()
                );
            }
            tch::no_grad(|| tensor.shallow_clone().copy_(value));
        }
        self.optimizer.load(&dir.join(OPTIMIZER))?;
        let n = self.data.y.size()[0] as u64;
        for rng in &mut self.rngs {
            (0..state.epoch).for_each(|_| drop(ShuffledOrder::new(n, rng)));
        }
        let sums = Tensor::from_slice(&state.loss_sums).to(self.loss_sums.device());
        tch::no_grad(|| self.loss_sums.copy_(&sums));
        (self.epoch, self.position, self.step, self.seen) = (state.epoch, state.position, state.step, state.seen);
        self.last_checkpoint = state.last_checkpoint;
        Ok(())
    }

    /// Where the loop stands, with the members `taken` so far (between
    /// optimizer steps).
    pub(super) fn state(&self, taken: Vec<Vec<TakenMember>>) -> Result<BatchState> {
        Ok(BatchState {
            epoch: self.epoch,
            position: self.position,
            step: self.step,
            seen: self.seen,
            last_checkpoint: self.last_checkpoint,
            loss_sums: Vec::<f32>::try_from(&self.loss_sums.to_device(tch::Device::Cpu))?,
            taken,
        })
    }

    /// Writes the stacked tensors and the optimizer's state into `dir`.
    pub(super) fn write_files(&self, dir: &Path) -> Result<()> {
        Tensor::write_safetensors(&self.model.tensors(), dir.join(BATCH))?;
        self.optimizer.save(&dir.join(OPTIMIZER))
    }

    /// The first member whose loss was not finite since the last check.
    pub(super) fn diverged(&mut self) -> Result<Option<usize>> {
        let sums = Vec::<f32>::try_from(&self.loss_sums.to_device(tch::Device::Cpu))?;
        let _ = self.loss_sums.zero_();
        Ok(sums.iter().position(|s| !s.is_finite()))
    }

    /// The epoch in progress, each member in its own fresh shuffle (from
    /// where it stood, when continued), with the checkpoints a run alone
    /// has inside it (every `checkpoint_every` steps and the extra ones,
    /// before the next step) and `at_boundary` called between optimizer
    /// steps (to save the state, or stop); whether the budget of examples
    /// ended it.
    pub(super) fn train_epoch(
        &mut self,
        on_checkpoint: &mut dyn FnMut(Checkpoint) -> Result<()>,
        at_boundary: &mut dyn FnMut(&Self) -> Result<()>,
    ) -> Result<bool> {
        let n = self.data.y.size()[0] as u64;
        let orders: Vec<i64> = (self.rngs.iter_mut())
            .flat_map(|rng| ShuffledOrder::new(n, rng).ids().iter().map(|&i| i as i64).collect::<Vec<_>>())
            .collect();
        let orders = Tensor::from_slice(&orders).view([self.rngs.len() as i64, n as i64]).to(self.data.x.device());
        while self.position < n && self.seen < self.budget {
            if self.micro == 0 {
                at_boundary(self)?;
            }
            self.scheduled_checkpoint(n, on_checkpoint)?;
            let (start, length) = (self.position, (self.cfg.batch_size as u64).min(n - self.position));
            let length = length.min(self.budget - self.seen);
            let last_of_pass = self.seen + length >= self.budget;
            self.step_on(&orders.narrow(1, start as i64, length as i64).contiguous(), last_of_pass)?;
            (self.position, self.seen) = (start + length, self.seen + length);
        }
        if self.micro > 0 {
            // The epoch ended inside an accumulation: step with what was gathered.
            self.optimizer_step()?;
        }
        (self.epoch, self.position) = (self.epoch + 1, 0);
        Ok(self.seen >= self.budget)
    }

    /// Before a step: a checkpoint where a run alone has one.
    fn scheduled_checkpoint(&mut self, n: u64, on_checkpoint: &mut dyn FnMut(Checkpoint) -> Result<()>) -> Result<()> {
        let every = self.cfg.checkpoint_every;
        let scheduled = (every > 0 && self.step.is_multiple_of(every)) || self.extra_checkpoints.contains(&self.step);
        if self.step <= self.last_checkpoint || !scheduled {
            return Ok(());
        }
        let epoch = self.seen as f64 / n as f64;
        on_checkpoint(Checkpoint { step: self.step, epoch, examples_seen: self.seen, is_final: false })?;
        self.last_checkpoint = self.step;
        Ok(())
    }

    /// Each member's batch `ids` `[K, B]`: its gradient gathered, and an
    /// optimizer step once `train.accumulate` batches are (or the budget's
    /// last is).
    pub(super) fn step_on(&mut self, ids: &Tensor, last_of_pass: bool) -> Result<()> {
        let k = ids.size()[0];
        let x = self.data.x.index_select(0, &ids.flatten(0, 1));
        let shape: Vec<i64> = [k, ids.size()[1]].into_iter().chain(x.size()[1..].iter().copied()).collect();
        let x = x.view(shape.as_slice());
        let y = self.labels.gather(1, ids, false);
        let logits = self.model.forward(&x);
        let losses = member_losses(&logits, &y);
        let _ = self.loss_sums.g_add_(&losses.detach());
        if self.micro == 0 {
            self.optimizer.zero_grad()?;
        }
        // Their sum gives each member its own gradient.
        train::accumulated(&losses.sum(Kind::Float), self.accumulate).backward();
        self.micro += 1;
        if self.micro == self.accumulate || last_of_pass {
            self.optimizer_step()?;
        }
        Ok(())
    }

    /// Steps the optimizer, each member at its scheduled learning rate.
    fn optimizer_step(&mut self) -> Result<()> {
        let (cfg, step, total) = (self.cfg, self.step, self.total_steps);
        self.optimizer.step(|base| train::scheduled_rate(base, cfg, step, total))?;
        (self.micro, self.step) = (0, self.step + 1);
        Ok(())
    }
}

/// The optimizer steps a batch of `cfg` takes over `n` training examples,
/// as the learning-rate schedule counts them (an epoch's short last batch
/// not counted).
fn planned_steps(cfg: &TrainConfig, n: u64) -> u64 {
    let budget = cfg.max_examples.unwrap_or(u64::MAX);
    (n * cfg.epochs).min(budget).div_ceil(cfg.batch_size as u64 * cfg.accumulate.max(1))
}

/// The optimizer steps a batch of `cfg` takes over `n` training examples,
/// each epoch's short last batch counted (the schedule's count where
/// `train.max_examples` ends training early).
pub(in crate::population) fn steps_taken(cfg: &TrainConfig, n: u64) -> u64 {
    match cfg.max_examples {
        Some(_) => planned_steps(cfg, n),
        None => n.div_ceil(cfg.batch_size as u64).div_ceil(cfg.accumulate.max(1)) * cfg.epochs,
    }
}

/// Each member's mean cross-entropy `[K]` of logits `[K, B, classes]` and
/// labels `[K, B]`.
pub(crate) fn member_losses(logits: &Tensor, y: &Tensor) -> Tensor {
    if logits.device().is_cuda() {
        // A GPU is bound by kernel launches: libtorch's fused log-softmax
        // takes one where the spelt-out form takes five.
        let chosen = logits.log_softmax(-1, Kind::Float).gather(2, &y.unsqueeze(2), false).squeeze_dim(2);
        return -chosen.mean_dim([1i64].as_slice(), false, Kind::Float);
    }
    // On a CPU over the classes as axis 1 of `[K, classes, B]`, the layout
    // the batched nets compute logits in: libtorch's log-softmax there runs
    // along B in vector lanes, where over a 10-wide last axis it takes as
    // long as a hidden layer.
    let by_class = logits.transpose(1, 2);
    let chosen = by_class.log_softmax(1, Kind::Float).gather(1, &y.unsqueeze(1), false).squeeze_dim(1);
    -chosen.mean_dim([1i64].as_slice(), false, Kind::Float)
}

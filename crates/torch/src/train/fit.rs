//! The training loop: epochs of batches from the hooks, gradient
//! accumulation, the learning-rate schedule, checkpoints, and the per-epoch
//! accounting of time, I/O, memory and visits that the summary reports.

use std::collections::BTreeSet;
use std::sync::atomic::Ordering;
use std::time::Instant;

use crate::error::{bail, Result};

use tessera_sdk::Checkpoint;

use super::resume::{FitState, Resumed, Saving, Stopped};
use super::{
    checkpoint_steps, learning_rate, optimizer, per_example, Batch, BatchSource, Diverged, FitHooks, FitSummary,
    SelectionLog,
};
use crate::manifest::TrainConfig;
use crate::model::Model;
use crate::storage::IoStats;

/// Trains `model` on the `n` stored examples for `cfg.epochs` epochs with
/// the batches `hooks` gives, calling the checkpoint hook every
/// `cfg.checkpoint_every` steps and after each epoch.
pub fn fit(model: &Model, n: u64, cfg: &TrainConfig, mut hooks: FitHooks) -> Result<FitSummary> {
    if cfg.batch_size == 0 {
        bail!("train.batch_size must be at least 1");
    }
    let candidates = hooks.select.as_ref().map(|s| s.candidates);
    if candidates.is_some_and(|b| b < cfg.batch_size) {
        bail!("per-step selection needs at least train.batch_size = {} candidates per step", cfg.batch_size);
    }
    let mut fitting = Fitting::new(model, n, cfg, candidates)?;
    let first = match hooks.checkpointing.as_mut().and_then(|c| c.resume.take()) {
        Some(resumed) => fitting.restore(resumed, &hooks)?,
        None => 0,
    };
    for epoch in first..cfg.epochs {
        if fitting.epoch(epoch, &mut hooks)? {
            break;
        }
    }
    Ok(fitting.finish(&hooks))
}

/// The batch's training loss: the mean cross-entropy, or, with a sampler's
/// loss weights (by example id, and per position from a step's choice), the
/// mean of each example's loss times its weights. A sampler without weights
/// trains exactly as before.
pub(super) fn batch_loss(
    logits: &tch::Tensor,
    batch: &Batch,
    weights: Option<&std::cell::RefCell<Option<Vec<f32>>>>,
    step_weights: Option<&[f32]>,
) -> Result<tch::Tensor> {
    let weights = weights.map(|w| w.borrow());
    let by_id = weights.as_ref().and_then(|w| w.as_ref());
    if by_id.is_none() && step_weights.is_none() {
        return Ok(logits.cross_entropy_for_logits(&batch.y));
    }
    let mut of_batch = step_weights.map_or_else(|| vec![1.0; batch.ids.len()], <[f32]>::to_vec);
    for (w, &id) in of_batch.iter_mut().zip(&batch.ids) {
        match by_id.map(|by_id| by_id.get(id as usize)) {
            Some(Some(&by_id)) => *w *= by_id,
            Some(None) => bail!("example {id} has no loss weight ({} weights)", by_id.map_or(0, Vec::len)),
            None => {}
        }
    }
    let w = tch::Tensor::from_slice(&of_batch).to_device(logits.device());
    let per_example =
        logits.log_softmax(-1, tch::Kind::Float).gather(1, &batch.y.unsqueeze(1), false).neg().squeeze_dim(1);
    Ok((per_example * w).mean(tch::Kind::Float))
}

/// Where a training run stands.
struct Fitting<'m> {
    model: &'m Model,
    cfg: &'m TrainConfig,
    /// Stored examples.
    n: u64,
    opt: crate::optim::SavableOptimizer,
    /// Batches per optimizer step.
    accumulate: u64,
    /// Examples to train on at most (`train.max_examples`).
    budget: u64,
    /// Candidates per step with per-step selection, else `train.batch_size`.
    draw: usize,
    /// Examples of the epoch orders drawn so far (trained or, with per-step
    /// selection, scored): what an epoch's progress counts.
    drawn: u64,
    selection: Option<SelectionLog>,
    total_steps: u64,
    /// Steps `checkpoint_steps`/`checkpoint_log` add.
    extra_checkpoints: BTreeSet<u64>,
    /// Batches gathered towards the next optimizer step.
    micro: u64,
    step: u64,
    seen: u64,
    /// Seconds of optimization.
    seconds: f64,
    /// The training loss since the last checkpoint.
    loss_sum: f64,
    loss_count: u64,
    last_checkpoint: u64,
    /// Visits of each id in the current epoch (saturating).
    visits: Vec<u8>,
    /// Batches of the current epoch's source trained on.
    epoch_batches: u64,
    /// Examples trained on before the current epoch.
    epoch_seen_before: u64,
    /// Batches of the current epoch to skip, trained on before a resume.
    skip_batches: u64,
    /// When the state was last saved.
    clock: super::resume::SaveClock,
    /// Whether each id was visited in any epoch.
    ever: Vec<bool>,
    summary: FitSummary,
}

impl<'m> Fitting<'m> {
    fn new(model: &'m Model, n: u64, cfg: &'m TrainConfig, candidates: Option<usize>) -> Result<Self> {
        let budget = cfg.max_examples.unwrap_or(u64::MAX);
        let accumulate = cfg.accumulate.max(1);
        let draw = candidates.unwrap_or(cfg.batch_size);
        let total_steps = match candidates {
            None => (n * cfg.epochs).min(budget).div_ceil(cfg.batch_size as u64 * accumulate),
            // Steps are ⌈N/B⌉ per epoch, unless the budget of trained examples ends them sooner.
            Some(b) => {
                let batches = n.div_ceil(b as u64) * cfg.epochs;
                batches.min(budget.div_ceil(cfg.batch_size as u64)).div_ceil(accumulate)
            }
        };
        Ok(Fitting {
            model,
            cfg,
            n,
            opt: optimizer(model, cfg)?,
            accumulate,
            budget,
            draw,
            drawn: 0,
            selection: candidates.map(|_| SelectionLog::default()),
            total_steps,
            extra_checkpoints: checkpoint_steps(cfg, total_steps),
            micro: 0,
            step: 0,
            seen: 0,
            seconds: 0.0,
            loss_sum: 0.0,
            loss_count: 0,
            last_checkpoint: 0,
            visits: vec![0u8; n as usize],
            epoch_batches: 0,
            epoch_seen_before: 0,
            skip_batches: 0,
            clock: super::resume::SaveClock::new(),
            ever: vec![false; n as usize],
            summary: FitSummary::default(),
        })
    }

    /// One epoch; whether training is done.
    fn epoch(&mut self, epoch: u64, hooks: &mut FitHooks) -> Result<bool> {
        let started = Instant::now();
        let mut evaluation = 0.0;
        let mut source = (hooks.epoch)(epoch)?;
        self.skip_resumed(source.as_mut(), epoch, hooks)?;
        while let Some(batch) = source.next_batch(self.draw.min((self.budget - self.seen) as usize))? {
            evaluation += self.scheduled_checkpoint(hooks)?;
            self.step_boundary(epoch, hooks)?;
            self.epoch_batches += 1;
            if self.batch(epoch, &batch, hooks)? {
                break;
            }
        }
        if self.micro > 0 {
            // The epoch ended inside an accumulation: step with what was gathered.
            self.optimizer_step(None)?;
        }
        let io = source.finish()?;
        self.account_epoch(epoch, io, started, evaluation, hooks)?;
        self.epoch_checkpoint(epoch, hooks)
    }

    /// At the start of an epoch: its visits cleared, or, in the epoch a
    /// resumed fit stopped in, the batches it trained on skipped (told to
    /// the visit hook again, which rebuilds the epoch's order).
    fn skip_resumed(&mut self, source: &mut dyn BatchSource, epoch: u64, hooks: &mut FitHooks) -> Result<()> {
        if self.skip_batches == 0 {
            self.visits.iter_mut().for_each(|v| *v = 0);
            (self.epoch_batches, self.epoch_seen_before) = (0, self.seen);
            return Ok(());
        }
        for _ in 0..std::mem::take(&mut self.skip_batches) {
            let Some(batch) = source.next_batch(self.draw)? else {
                bail!("the resumed epoch {} has fewer batches than were trained on before", epoch + 1);
            };
            if let Some(visit) = hooks.visit.as_mut() {
                visit(epoch, &batch.ids);
            }
        }
        Ok(())
    }

    /// Before a step (no accumulation open): the state saved when the
    /// interval has passed or a stop was asked for; a stop ends the fit with
    /// [`Stopped`] (with no way to save, with an error).
    fn step_boundary(&mut self, epoch: u64, hooks: &mut FitHooks) -> Result<()> {
        let stopping = hooks.cancel.load(Ordering::Relaxed);
        let Some(checkpointing) = hooks.checkpointing.as_mut() else {
            if stopping {
                bail!("cancelled");
            }
            return Ok(());
        };
        if self.micro > 0 || !(stopping || self.clock.due(checkpointing.every)) {
            return Ok(());
        }
        let state = self.state(epoch);
        let saved = (checkpointing.save)(Saving { model: self.model, optimizer: &self.opt, state: &state, stopping })?;
        // A failed save is not retried at every step: the next one is due after the interval.
        self.clock.saved();
        if stopping {
            return Err(Stopped { step: self.step, saved }.into());
        }
        Ok(())
    }

    /// Everything but the model and the optimizer, at a step boundary of `epoch`.
    fn state(&self, epoch: u64) -> FitState {
        FitState {
            epoch,
            epoch_batches: self.epoch_batches,
            epoch_seen_before: self.epoch_seen_before,
            step: self.step,
            seen: self.seen,
            drawn: self.drawn,
            seconds: self.seconds,
            loss_sum: self.loss_sum,
            loss_count: self.loss_count,
            last_checkpoint: self.last_checkpoint,
            visits: self.visits.clone(),
            ever: self.ever.clone(),
            summary: self.summary.clone(),
            selection: self.selection.clone(),
        }
    }

    /// Continues from `state` (the model's and the optimizer's restored by
    /// the caller and here): the epoch to start in.
    fn restore(&mut self, resumed: Resumed, hooks: &FitHooks) -> Result<u64> {
        let (state, n) = (resumed.state, self.n as usize);
        if state.visits.len() != n || state.ever.len() != n || state.epoch >= self.cfg.epochs {
            bail!("the saved training state does not fit this run ({} examples, {} epochs)", n, self.cfg.epochs);
        }
        if hooks.select.is_some() != state.selection.is_some() {
            bail!("the saved training state was made with per-step selection on the other side");
        }
        self.epoch_batches = state.epoch_batches;
        self.epoch_seen_before = state.epoch_seen_before;
        self.skip_batches = state.epoch_batches;
        (self.step, self.seen, self.drawn, self.seconds) = (state.step, state.seen, state.drawn, state.seconds);
        (self.loss_sum, self.loss_count, self.last_checkpoint) =
            (state.loss_sum, state.loss_count, state.last_checkpoint);
        (self.visits, self.ever, self.summary, self.selection) =
            (state.visits, state.ever, state.summary, state.selection);
        self.opt.load(&resumed.optimizer)?;
        Ok(state.epoch)
    }

    /// Every `checkpoint_every` steps (and the extra ones), before the next
    /// step: a step that ended an epoch was observed already. The seconds
    /// it took.
    fn scheduled_checkpoint(&mut self, hooks: &mut FitHooks) -> Result<f64> {
        if !super::checkpoint_due(self.cfg, &self.extra_checkpoints, (self.step, self.last_checkpoint)) {
            return Ok(0.0);
        }
        let started = Instant::now();
        let (step, seen) = (self.step, self.seen);
        let cp = Checkpoint { step, epoch: self.drawn as f64 / self.n as f64, examples_seen: seen, is_final: false };
        self.checkpoint(cp, hooks)?;
        Ok(started.elapsed().as_secs_f64())
    }

    /// Calls the checkpoint hook with the mean loss since the last one.
    fn checkpoint(&mut self, cp: Checkpoint, hooks: &mut FitHooks) -> Result<()> {
        let step = cp.step;
        (hooks.checkpoint)(self.model, cp, self.loss_sum / self.loss_count.max(1) as f64)?;
        (self.loss_sum, self.loss_count, self.last_checkpoint) = (0.0, 0, step);
        Ok(())
    }

    /// Trains on one batch (with per-step selection: on the candidates the
    /// sampler keeps); whether it was the last the budget allows.
    fn batch(&mut self, epoch: u64, drawn: &Batch, hooks: &mut FitHooks) -> Result<bool> {
        for &id in &drawn.ids {
            self.visits[id as usize] = self.visits[id as usize].saturating_add(1);
        }
        if let Some(visit) = hooks.visit.as_mut() {
            visit(epoch, &drawn.ids);
        }
        self.drawn += drawn.ids.len() as u64;
        let kept;
        let (batch, step_weights) = match (hooks.select.as_mut(), self.selection.as_mut()) {
            (Some(selection), Some(log)) => {
                let limit = (self.budget - self.seen) as usize;
                let at = (self.step, epoch, self.cfg.batch_size);
                kept = log.select(self.model, drawn, at, selection, limit)?;
                (&kept.0, kept.1.as_deref())
            }
            _ => (drawn, None),
        };
        let started = Instant::now();
        let logits = self.model.forward_train(&batch.x);
        let loss = batch_loss(&logits, batch, hooks.weights, step_weights)?;
        if let Some(per_step) = hooks.per_step.as_mut() {
            let (losses, correct) = per_example(&logits, &batch.y)?;
            per_step(self.step, &batch.ids, &losses, &correct);
        }
        if self.micro == 0 {
            self.opt.zero_grad()?;
        }
        super::accumulated(&loss, self.accumulate).backward();
        self.micro += 1;
        self.seen += batch.ids.len() as u64;
        let last_of_pass = self.seen >= self.budget;
        if self.micro == self.accumulate || last_of_pass {
            self.optimizer_step(hooks.progress)?;
        }
        let loss_value = loss.double_value(&[]);
        if !loss_value.is_finite() {
            return Err(Diverged { loss: loss_value, step: self.step + 1, epoch: epoch + 1 }.into());
        }
        self.loss_sum += loss_value;
        self.seconds += started.elapsed().as_secs_f64();
        self.loss_count += 1;
        Ok(last_of_pass)
    }

    /// Steps the optimizer at the scheduled learning rate.
    fn optimizer_step(&mut self, progress: Option<&indicatif::ProgressBar>) -> Result<()> {
        self.opt.set_lr(learning_rate(self.cfg, self.step, self.total_steps))?;
        let (opt, mut stepped) = (&mut self.opt, Ok(()));
        self.model.scaled_step(|| stepped = opt.step());
        stepped?;
        self.micro = 0;
        self.step += 1;
        if let Some(bar) = progress {
            bar.inc(1);
        }
        Ok(())
    }

    /// The epoch's time, I/O, memory and visits; the sampler's contract
    /// checked on a whole epoch.
    fn account_epoch(
        &mut self,
        epoch: u64,
        io: IoStats,
        started: Instant,
        evaluation: f64,
        hooks: &FitHooks,
    ) -> Result<()> {
        let summary = &mut self.summary;
        summary.epoch_io.push(io);
        summary.epoch_seconds.push(started.elapsed().as_secs_f64() - evaluation);
        summary.epoch_peak_memory_mb.push(tessera_util::process::peak_rss_mb());
        let expected_unvisited = if epoch == 0 { hooks.resumed } else { 0 };
        if let Some((sampler, mode)) = hooks.sampler.filter(|_| self.seen < self.budget && expected_unvisited == 0) {
            crate::contract::sampled(sampler, mode, epoch + 1, &self.visits)?;
        }
        let visited = (self.seen - self.epoch_seen_before, expected_unvisited);
        super::account_visits(summary, (&self.visits, &mut self.ever), visited);
        Ok(())
    }

    /// The checkpoint at the epoch's end; whether training is done.
    fn epoch_checkpoint(&mut self, epoch: u64, hooks: &mut FitHooks) -> Result<bool> {
        let cp = super::epoch_end(self.cfg, epoch, (self.step, self.seen, self.drawn), (self.budget, self.n));
        self.checkpoint(cp, hooks)?;
        Ok(cp.is_final)
    }

    /// The summary; a warning when a permutation sampler visited ids other
    /// than once per epoch.
    fn finish(self, hooks: &FitHooks) -> FitSummary {
        let irregular = self.summary.irregular_visits;
        let permutation = hooks.sampler.is_none_or(|(_, mode)| mode == tessera_sdk::Sampling::Permutation);
        if irregular > 0 && permutation {
            log::warn!("the sampler visited {irregular} example ids other than exactly once per epoch");
        }
        let seconds = self.seconds;
        FitSummary {
            steps: self.step,
            examples_seen: self.seen,
            train_seconds: seconds,
            examples_per_second: if seconds > 0.0 { self.seen as f64 / seconds } else { 0.0 },
            never_seen: self.ever.iter().filter(|&&e| !e).count() as u64,
            selection: self.selection,
            ..self.summary
        }
    }
}

#[cfg(test)]
mod tests {
    use std::cell::RefCell;

    use tch::{Kind, Tensor};

    use super::*;

    /// A batch of three examples (ids 4, 1, 2) of two features, three classes.
    fn batch() -> Batch {
        let x = Tensor::from_slice(&[0.5f32, -1.0, 2.0, 0.25, -0.75, 1.5]).view([3, 2]);
        Batch { x, y: Tensor::from_slice(&[2i64, 0, 1]), ids: vec![4, 1, 2] }
    }

    /// The gradient of `loss(w)` with respect to the weights `w` of a linear model.
    fn gradient(loss: impl Fn(&Tensor) -> Tensor) -> Vec<f32> {
        let w = Tensor::from_slice(&[0.1f32, -0.2, 0.3, 0.4, 0.0, -0.5]).view([2, 3]).set_requires_grad(true);
        loss(&w).backward();
        Vec::<f32>::try_from(w.grad().flatten(0, -1)).unwrap()
    }

    #[test]
    fn loss_weights_scale_each_example_s_gradient_exactly() {
        let b = batch();
        let by_id = RefCell::new(Some(vec![9.0f32, 0.0, 1.0, 9.0, 2.0]));
        let weighted = gradient(|w| batch_loss(&b.x.matmul(w), &b, Some(&by_id), None).unwrap());
        // By hand: (2·g(id 4) + 0·g(id 1) + 1·g(id 2)) / 3, each g from its own example's loss.
        let one =
            |i: i64| gradient(|w| b.x.get(i).unsqueeze(0).matmul(w).cross_entropy_for_logits(&b.y.get(i).unsqueeze(0)));
        let (g4, g2) = (one(0), one(2));
        for k in 0..6 {
            let expected = (2.0 * g4[k] + g2[k]) / 3.0;
            assert!((weighted[k] - expected).abs() < 1e-6, "{k}: {} vs {expected}", weighted[k]);
        }
    }

    #[test]
    fn without_weights_the_loss_is_the_plain_mean_bit_for_bit() {
        let b = batch();
        let none = RefCell::new(None);
        let plain = |w: &Tensor| b.x.matmul(w).cross_entropy_for_logits(&b.y);
        assert_eq!(gradient(|w| batch_loss(&b.x.matmul(w), &b, Some(&none), None).unwrap()), gradient(plain));
        assert_eq!(gradient(|w| batch_loss(&b.x.matmul(w), &b, None, None).unwrap()), gradient(plain));
        let ones = RefCell::new(Some(vec![1.0f32; 5]));
        let unit =
            batch_loss(&b.x.matmul(&Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu))), &b, Some(&ones), None);
        let mean = b.x.matmul(&Tensor::ones([2, 3], (Kind::Float, tch::Device::Cpu))).cross_entropy_for_logits(&b.y);
        assert!((unit.unwrap().double_value(&[]) - mean.double_value(&[])).abs() < 1e-6, "weights of 1: the mean");
        let short = RefCell::new(Some(vec![1.0f32; 3]));
        assert!(batch_loss(&b.x, &b, Some(&short), None).is_err(), "id 4 has no weight");
    }
}

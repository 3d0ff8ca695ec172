//! Several runs of one model trained as one batched model (the seeds of a
//! `train` variant, `experiment.batch`): each member trains on its own
//! batches (its own sampler's order over its own data), one optimizer steps
//! the stacked weights, and each member has the checkpoints, losses and
//! accounting it has alone. A member's model is written back from the batch
//! before each hook that looks at it, and at the end.

use std::sync::atomic::AtomicBool;
use std::time::Instant;

use tch::{Kind, Tensor};
use tessera_sdk::{Checkpoint, Sampling};

use super::{checkpoint_steps, optimizer_rule, per_example, scheduled_rate, Batch, BatchSource, Diverged, FitSummary};
use crate::error::{bail, Result};
use crate::manifest::{ModelKind, TrainConfig};
use crate::model::Model;
use crate::optim::StackedOptimizer;
use crate::population::batched::{member_losses, stack, BatchedNet};

mod saved;

pub use saved::{MemberState, StackedCheckpointing, StackedSaving, StackedState};

/// Member `k`'s batches of an epoch (from its model as training left it)
/// and its sampler's loss weights by example id, if it gives any.
pub type StackedEpochHook<'a, 'b> = dyn FnMut(usize, u64, &Model) -> Result<MemberEpoch<'b>> + 'a;

/// A member's epoch: its batches, and its loss weights by example id.
pub type MemberEpoch<'b> = (Box<dyn BatchSource + 'b>, Option<Vec<f32>>);
/// Member `k`'s checkpoint: its model, where training stands and its mean
/// training loss since the last checkpoint.
pub type StackedCheckpointHook<'a> = dyn FnMut(usize, &Model, Checkpoint, f64) -> Result<()> + 'a;
/// Member `k`'s batch ids in an epoch.
pub type StackedVisitHook<'a> = dyn FnMut(usize, u64, &[u64]) + 'a;
/// Member `k`'s per-example losses and correctness at a step.
pub type StackedStepHook<'a> = dyn FnMut(usize, u64, &[u64], &[f32], &[i64]) + 'a;

/// What a stacked fit calls, member by member.
pub struct StackedHooks<'a, 'b, 'c> {
    /// Each member's batches of each epoch.
    pub epoch: &'a mut StackedEpochHook<'a, 'b>,
    /// Each member's checkpoints.
    pub checkpoint: &'a mut StackedCheckpointHook<'a>,
    /// Set to stop: the state is saved and the fit ends with
    /// [`Stopped`](super::Stopped) (without `checkpointing`, with an error).
    pub cancel: &'a AtomicBool,
    /// Advanced by one per optimizer step, if given.
    pub progress: Option<&'a indicatif::ProgressBar>,
    /// Told each member's batch ids, if given.
    pub visit: Option<&'a mut StackedVisitHook<'a>>,
    /// Told each member's per-example losses, if given.
    pub per_step: Option<&'a mut StackedStepHook<'a>>,
    /// Each member's name (errors say which diverged) and its sampler's id
    /// and mode, if a plugin's: each of its whole epochs is checked as alone.
    pub members: &'a [(String, Option<(String, Sampling)>)],
    /// Saving the state at step boundaries, and the state to continue from.
    pub checkpointing: Option<StackedCheckpointing<'c>>,
}

/// Why `models` cannot train as one batched model, if they cannot: they
/// must be MLPs, linear models or CNNs of one architecture whose every
/// tensor trains (no frozen layers).
pub fn unstackable(models: &[&Model], kind: ModelKind) -> Option<String> {
    if !matches!(kind, ModelKind::Mlp | ModelKind::Linear | ModelKind::Cnn) {
        return Some(format!("only MLP, linear and CNN models batch (this is {kind:?})"));
    }
    let shapes = |m: &Model| -> Vec<(String, Vec<i64>)> {
        let mut v: Vec<_> = m.vs.variables().into_iter().map(|(n, t)| (n, t.size())).collect();
        v.sort();
        v
    };
    let first = shapes(models.first()?);
    if models.iter().any(|m| shapes(m) != first) {
        return Some("the seeds' models differ in architecture".into());
    }
    let statistic = |name: &str| name.ends_with("running_mean") || name.ends_with("running_var");
    let frozen = models.iter().flat_map(|m| m.vs.variables()).find(|(n, t)| !statistic(n) && !t.requires_grad());
    frozen.map(|(name, _)| format!("`{name}` is frozen, and a batch trains every layer"))
}

/// Trains `models` (members of one architecture, `kind`) as one batched
/// model on `n` stored examples each, for `cfg.epochs` epochs, member `k`
/// at base learning rate `rates[k]` under `cfg`'s schedule: each member's
/// summary, as its run alone reports it (its time is the batch's).
pub fn fit_stacked(
    models: &[&Model],
    kind: ModelKind,
    n: u64,
    (cfg, rates): (&TrainConfig, &[f64]),
    mut hooks: StackedHooks,
) -> Result<Vec<FitSummary>> {
    if let Some(why) = unstackable(models, kind) {
        bail!("these runs cannot train as one batch: {why}");
    }
    if cfg.batch_size == 0 {
        bail!("train.batch_size must be at least 1");
    }
    if rates.len() != models.len() {
        bail!("{} members with {} learning rates", models.len(), rates.len());
    }
    let mut fitting = Stacked::new(models, kind, n, (cfg, rates))?;
    let first = match hooks.checkpointing.as_mut().and_then(|c| c.resume.take()) {
        Some((state, dir)) => fitting.restore(state, &dir)?,
        None => 0,
    };
    for epoch in first..cfg.epochs {
        if fitting.epoch(epoch, &mut hooks)? {
            break;
        }
    }
    Ok(fitting.finish())
}

/// What each member keeps alone: its loss since the last checkpoint, its
/// visits and its summary.
struct MemberLog {
    visits: Vec<u8>,
    ever: Vec<bool>,
    summary: FitSummary,
}

/// Where a stacked fit stands.
struct Stacked<'m> {
    models: &'m [&'m Model],
    net: Box<dyn BatchedNet>,
    cfg: &'m TrainConfig,
    n: u64,
    /// Member `k` at `rates[k]`, which `cfg`'s schedule scales.
    opt: StackedOptimizer,
    accumulate: u64,
    budget: u64,
    total_steps: u64,
    extra_checkpoints: std::collections::BTreeSet<u64>,
    micro: u64,
    step: u64,
    seen: u64,
    seconds: f64,
    last_checkpoint: u64,
    members: Vec<MemberLog>,
    /// Each member's summed loss since the last checkpoint `[K]`, in f64 on
    /// the device (read at checkpoints and saves, not at every step: a read
    /// waits for a GPU), and over how many batches.
    loss_sums: Tensor,
    loss_count: u64,
    /// The epoch in progress, its batches trained on, the examples trained
    /// on before it, and its batches to skip (trained on before a resume).
    epoch: u64,
    epoch_batches: u64,
    epoch_seen_before: u64,
    skip_batches: u64,
    /// When the state was last saved.
    clock: super::resume::SaveClock,
    /// Each member's loss weights of the current epoch, if any has some.
    weights: Option<Vec<Option<Vec<f32>>>>,
}

impl<'m> Stacked<'m> {
    fn new(models: &'m [&'m Model], kind: ModelKind, n: u64, (cfg, rates): (&'m TrainConfig, &[f64])) -> Result<Self> {
        let net = stack(models, kind)?;
        let opt = StackedOptimizer::new(optimizer_rule(cfg), rates, &net.parameters())?;
        let (budget, accumulate) = (cfg.max_examples.unwrap_or(u64::MAX), cfg.accumulate.max(1));
        let total_steps = (n * cfg.epochs).min(budget).div_ceil(cfg.batch_size as u64 * accumulate);
        let member =
            || MemberLog { visits: vec![0; n as usize], ever: vec![false; n as usize], summary: FitSummary::default() };
        Ok(Stacked {
            models,
            net,
            cfg,
            n,
            opt,
            accumulate,
            budget,
            total_steps,
            extra_checkpoints: checkpoint_steps(cfg, total_steps),
            micro: 0,
            step: 0,
            seen: 0,
            seconds: 0.0,
            last_checkpoint: 0,
            members: models.iter().map(|_| member()).collect(),
            loss_sums: Tensor::zeros([models.len() as i64], (Kind::Double, models[0].vs.device())),
            loss_count: 0,
            epoch: 0,
            epoch_batches: 0,
            epoch_seen_before: 0,
            skip_batches: 0,
            clock: super::resume::SaveClock::new(),
            weights: None,
        })
    }

    /// One epoch of every member; whether training is done.
    fn epoch(&mut self, epoch: u64, hooks: &mut StackedHooks) -> Result<bool> {
        let started = Instant::now();
        let (mut sources, mut weights) = (Vec::with_capacity(self.models.len()), Vec::new());
        for (k, model) in self.models.iter().enumerate() {
            self.net.write_member(k as i64, model)?;
            let (source, own) = (hooks.epoch)(k, epoch, model)?;
            sources.push(source);
            weights.push(own);
        }
        self.weights = weights.iter().any(Option::is_some).then_some(weights);
        self.epoch = epoch;
        self.skip_resumed(&mut sources, epoch, hooks)?;
        let mut evaluation = 0.0;
        while let Some(batches) = self.next_batches(&mut sources, epoch, hooks)? {
            evaluation += self.scheduled_checkpoint(hooks)?;
            self.step_boundary(hooks)?;
            self.epoch_batches += 1;
            if self.batch(epoch, &batches, hooks)? {
                break;
            }
        }
        if self.micro > 0 {
            // The epoch ended inside an accumulation: step with what was gathered.
            self.optimizer_step(hooks.progress)?;
        }
        for (k, source) in sources.into_iter().enumerate() {
            self.members[k].summary.epoch_io.push(source.finish()?);
        }
        self.account_epoch(epoch, (started, evaluation), hooks)?;
        self.epoch_checkpoint(epoch, hooks)
    }

    /// At the start of an epoch: its visits cleared, or, in the epoch a
    /// resumed fit stopped in, each member's batches trained on skipped
    /// (told to the visit hook again, which rebuilds the epoch's order).
    fn skip_resumed(
        &mut self,
        sources: &mut [Box<dyn BatchSource + '_>],
        epoch: u64,
        hooks: &mut StackedHooks,
    ) -> Result<()> {
        if self.skip_batches == 0 {
            self.members.iter_mut().for_each(|m| m.visits.iter_mut().for_each(|v| *v = 0));
            (self.epoch_batches, self.epoch_seen_before) = (0, self.seen);
            return Ok(());
        }
        for _ in 0..std::mem::take(&mut self.skip_batches) {
            for (k, source) in sources.iter_mut().enumerate() {
                let Some(batch) = source.next_batch(self.cfg.batch_size)? else {
                    bail!("the resumed epoch {} has fewer batches than were trained on before", epoch + 1);
                };
                if let Some(visit) = hooks.visit.as_mut() {
                    visit(k, epoch, &batch.ids);
                }
            }
        }
        Ok(())
    }

    /// Every member's next batch, of one length; none at the epoch's end.
    fn next_batches(
        &self,
        sources: &mut [Box<dyn BatchSource + '_>],
        epoch: u64,
        hooks: &StackedHooks,
    ) -> Result<Option<Vec<Batch>>> {
        let size = self.cfg.batch_size.min((self.budget - self.seen) as usize);
        let drawn = sources.iter_mut().map(|s| s.next_batch(size)).collect::<Result<Vec<Option<Batch>>>>()?;
        let lengths: Vec<usize> = drawn.iter().map(|b| b.as_ref().map_or(0, |b| b.ids.len())).collect();
        if lengths.iter().any(|&l| l != lengths[0]) {
            let (k, _) = lengths.iter().enumerate().find(|(_, &l)| l != lengths[0]).expect("found above");
            bail!(
                "in epoch {}, `{}`'s order runs to a different length than `{}`'s ({} and {} examples at one step): \
                 seeds batch only where their orders are equally long: set experiment.batch = 1",
                epoch + 1,
                hooks.members[k].0,
                hooks.members[0].0,
                lengths[k],
                lengths[0]
            );
        }
        Ok(drawn.into_iter().collect())
    }

    /// Every `checkpoint_every` steps (and the extra ones), before the next
    /// step; the seconds it took.
    fn scheduled_checkpoint(&mut self, hooks: &mut StackedHooks) -> Result<f64> {
        if !super::checkpoint_due(self.cfg, &self.extra_checkpoints, (self.step, self.last_checkpoint)) {
            return Ok(0.0);
        }
        let started = Instant::now();
        // Each member drew what the batch trained on: the same count.
        let epoch = self.seen as f64 / self.n as f64;
        self.checkpoint(Checkpoint { step: self.step, epoch, examples_seen: self.seen, is_final: false }, hooks)?;
        Ok(started.elapsed().as_secs_f64())
    }

    /// Each member written into its model, then its checkpoint hook with
    /// its mean loss since the last checkpoint; an error naming a member
    /// whose loss stopped being finite since then.
    fn checkpoint(&mut self, cp: Checkpoint, hooks: &mut StackedHooks) -> Result<()> {
        let sums = self.loss_sums()?;
        if let Some((k, &loss)) = sums.iter().enumerate().find(|(_, s)| !s.is_finite()) {
            let diverged = Diverged { loss, step: self.step, epoch: self.epoch + 1 };
            bail!("`{}` (trained in a batch of seeds), by this step: {diverged}", hooks.members[k].0);
        }
        for (k, (model, sum)) in self.models.iter().zip(sums).enumerate() {
            self.net.write_member(k as i64, model)?;
            (hooks.checkpoint)(k, model, cp, sum / self.loss_count.max(1) as f64)?;
        }
        let _ = self.loss_sums.zero_();
        (self.loss_count, self.last_checkpoint) = (0, cp.step);
        Ok(())
    }

    /// Each member's summed loss since the last checkpoint.
    fn loss_sums(&self) -> Result<Vec<f64>> {
        Ok(Vec::<f64>::try_from(&self.loss_sums.to_device(tch::Device::Cpu))?)
    }

    /// Trains every member on its batch; whether it was the last the budget allows.
    fn batch(&mut self, epoch: u64, batches: &[Batch], hooks: &mut StackedHooks) -> Result<bool> {
        self.visit(epoch, batches, hooks);
        let started = Instant::now();
        let x = Tensor::stack(&batches.iter().map(|b| b.x.shallow_clone()).collect::<Vec<_>>(), 0);
        let y = Tensor::stack(&batches.iter().map(|b| b.y.shallow_clone()).collect::<Vec<_>>(), 0);
        let logits = self.net.forward(&x);
        let losses = match &self.weights {
            Some(weights) => weighted_losses(&logits, &y, &loss_weights(weights, batches, hooks.members)?),
            None => member_losses(&logits, &y),
        };
        if let Some(per_step) = hooks.per_step.as_mut() {
            for (k, batch) in batches.iter().enumerate() {
                let (losses, correct) = per_example(&logits.get(k as i64), &batch.y)?;
                per_step(k, self.step, &batch.ids, &losses, &correct);
            }
        }
        if self.micro == 0 {
            self.opt.zero_grad()?;
        }
        // Their sum gives each member its own gradient.
        super::accumulated(&losses.sum(Kind::Float), self.accumulate).backward();
        self.micro += 1;
        self.seen += batches[0].ids.len() as u64;
        let last_of_pass = self.seen >= self.budget;
        if self.micro == self.accumulate || last_of_pass {
            self.optimizer_step(hooks.progress)?;
        }
        // Each f32 loss added in f64, as a run alone sums its batches' losses.
        let _ = self.loss_sums.g_add_(&losses.detach().to_kind(Kind::Double));
        self.loss_count += 1;
        self.seconds += started.elapsed().as_secs_f64();
        Ok(last_of_pass)
    }

    /// Counts each member's visits and tells the visit hook.
    fn visit(&mut self, epoch: u64, batches: &[Batch], hooks: &mut StackedHooks) {
        for (k, (batch, member)) in batches.iter().zip(&mut self.members).enumerate() {
            for &id in &batch.ids {
                member.visits[id as usize] = member.visits[id as usize].saturating_add(1);
            }
            if let Some(visit) = hooks.visit.as_mut() {
                visit(k, epoch, &batch.ids);
            }
        }
    }

    /// Steps the optimizer, each member at its scheduled learning rate.
    fn optimizer_step(&mut self, progress: Option<&indicatif::ProgressBar>) -> Result<()> {
        let (cfg, step, total) = (self.cfg, self.step, self.total_steps);
        self.opt.step(|base| scheduled_rate(base, cfg, step, total))?;
        (self.micro, self.step) = (0, self.step + 1);
        if let Some(bar) = progress {
            bar.inc(1);
        }
        Ok(())
    }

    /// Each member's epoch: time, memory and visits; its sampler's contract
    /// checked on the whole epoch.
    fn account_epoch(&mut self, epoch: u64, (started, evaluation): (Instant, f64), hooks: &StackedHooks) -> Result<()> {
        let seconds = started.elapsed().as_secs_f64() - evaluation;
        let memory = tessera_util::process::peak_rss_mb();
        for (member, (_, sampler)) in self.members.iter_mut().zip(hooks.members) {
            if let Some((id, mode)) = sampler.as_ref().filter(|_| self.seen < self.budget) {
                crate::contract::sampled(id, *mode, epoch + 1, &member.visits)?;
            }
            let summary = &mut member.summary;
            summary.epoch_seconds.push(seconds);
            summary.epoch_peak_memory_mb.push(memory);
            super::account_visits(summary, (&member.visits, &mut member.ever), (self.seen - self.epoch_seen_before, 0));
        }
        Ok(())
    }

    /// The checkpoint at the epoch's end; whether training is done.
    fn epoch_checkpoint(&mut self, epoch: u64, hooks: &mut StackedHooks) -> Result<bool> {
        let cp = super::epoch_end(self.cfg, epoch, (self.step, self.seen, self.seen), (self.budget, self.n));
        self.checkpoint(cp, hooks)?;
        Ok(cp.is_final)
    }

    /// Each member's summary (its models hold its weights since the last checkpoint).
    fn finish(self) -> Vec<FitSummary> {
        let seconds = self.seconds;
        let (steps, seen) = (self.step, self.seen);
        self.members
            .into_iter()
            .map(|m| FitSummary {
                steps,
                examples_seen: seen,
                train_seconds: seconds,
                examples_per_second: if seconds > 0.0 { seen as f64 / seconds } else { 0.0 },
                never_seen: m.ever.iter().filter(|&&e| !e).count() as u64,
                ..m.summary
            })
            .collect()
    }
}

/// Each member's loss weights of its batch `[K, B]` (1 for a member
/// without any); an error naming a member whose weights miss an id.
fn loss_weights(
    weights: &[Option<Vec<f32>>],
    batches: &[Batch],
    members: &[(String, Option<(String, Sampling)>)],
) -> Result<Tensor> {
    let mut all = Vec::with_capacity(batches.len() * batches[0].ids.len());
    for (k, (own, batch)) in weights.iter().zip(batches).enumerate() {
        for &id in &batch.ids {
            match own.as_ref().map(|w| w.get(id as usize)) {
                None => all.push(1.0),
                Some(Some(&w)) => all.push(w),
                Some(None) => bail!(
                    "`{}`: example {id} has no loss weight ({} weights)",
                    members[k].0,
                    own.as_ref().map_or(0, Vec::len)
                ),
            }
        }
    }
    let device = batches[0].y.device();
    Ok(Tensor::from_slice(&all).view([batches.len() as i64, -1]).to_device(device))
}

/// Each member's mean of its examples' losses times their weights `[K]`,
/// as a run alone weighs its batch's.
fn weighted_losses(logits: &Tensor, y: &Tensor, weights: &Tensor) -> Tensor {
    let per_example = logits.log_softmax(-1, Kind::Float).gather(2, &y.unsqueeze(2), false).neg().squeeze_dim(2);
    (per_example * weights).mean_dim([1i64].as_slice(), false, Kind::Float)
}

#[cfg(test)]
mod tests;

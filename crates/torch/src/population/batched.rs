//! Populations trained as one batched model (issue 39): K runs of one MLP
//! architecture and one training setting, their weights stacked on a
//! leading member axis, each layer a batched matrix product. Each member
//! keeps what it has alone: its initialization (its seed's weights, copied
//! from the model it would train unbatched), its own shuffled order (its
//! seed's stream, batch for batch), its label-noise draw and its members at
//! each training length. One optimizer over the stacked tensors is K
//! optimizers: SGD's momentum, Adam's moments and weight decay act element
//! by element, and the loss is the sum of the members' mean losses, so each
//! member's gradient is its own.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use tch::{Kind, Tensor};
use tessera_sdk::{Checkpoint, SeedRng};

use super::run::outputs_into;
use super::run::OneRun;
use super::{
    batch_refused, describe, Member, Population, PopulationInputs, PopulationPlan, RunSpec, SharedTensors, SplitMatrix,
};
use crate::error::{bail, Result};
use crate::manifest::{MemberBatch, ModelConfig, ModelKind, TrainConfig};
use crate::model::Model;
use crate::train::{self, ShuffledOrder, TensorData};

/// K models of one architecture trained as one.
pub trait BatchedNet {
    /// The members' logits `[K, B, classes]` of their own inputs `[K, B, ...]` (training).
    fn forward(&self, x: &Tensor) -> Tensor;
    /// Every member's logits `[K, n, classes]` of the same inputs `[n, ...]` (evaluation).
    fn forward_shared(&self, x: &Tensor) -> Tensor;
    /// Every stacked tensor that trains.
    fn parameters(&self) -> Vec<Tensor>;
    /// Trains the head only (`population.freeze_features`): the other
    /// layers' tensors stop taking gradients, and their BatchNorms keep
    /// their statistics, as a member's frozen blocks do alone.
    fn freeze_features(&mut self);
    /// How many members.
    fn members(&self) -> i64;
}

/// The members' stacked batched net: MLPs or CNNs.
fn stack(members: &[Model], kind: ModelKind) -> Result<Box<dyn BatchedNet>> {
    Ok(match kind {
        ModelKind::Cnn => Box::new(BatchedCnn::stack(members)?),
        _ => Box::new(BatchedMlp::stack(members)?),
    })
}

/// Stacks the members' `name.leaf` tensors (detached) along a new first axis.
fn stacked(members: &[Model], key: &str) -> Result<Vec<Tensor>> {
    members.iter().map(|m| m.vs.variables().get(key).map(Tensor::detach).ok_or_else(|| missing(key))).collect()
}

/// The members' layers `key` as their own models hold them: weight
/// `[K, out, in]` and bias `[K, out, 1]`.
fn stacked_linear(members: &[Model], key: &str) -> Result<(Tensor, Tensor)> {
    let weights = stacked(members, &format!("{key}.weight"))?;
    let biases: Vec<Tensor> = stacked(members, &format!("{key}.bias"))?.iter().map(|b| b.unsqueeze(1)).collect();
    Ok((leaf(Tensor::stack(&weights, 0)), leaf(Tensor::stack(&biases, 0))))
}

/// A stacked linear layer on features-first activations `[K, in, B]`:
/// `[K, out, B]`, bias added in the same kernel. Features first, since
/// a batched product with few output columns (a 10-class head) is several
/// times slower than its transpose.
fn linear(h: &Tensor, (weight, bias): &(Tensor, Tensor)) -> Tensor {
    bias.baddbmm(weight, h, 1.0, 1.0)
}

/// A stacked tensor the optimizer trains.
fn leaf(t: Tensor) -> Tensor {
    t.contiguous().set_requires_grad(true)
}

/// K CNNs of one architecture: each conv layer one grouped convolution
/// (group k is member k's filters), then each member's global pool and head.
pub struct BatchedCnn {
    k: i64,
    /// One example's shape, `[C, H, W]`.
    input: Vec<i64>,
    /// Per conv layer: weight `[K·out, in, 3, 3]`, bias `[K·out]`, and its
    /// BatchNorm with `model.batch_norm`.
    convs: Vec<(Tensor, Tensor, Option<StackedNorm>)>,
    head: (Tensor, Tensor),
    /// Whether only the head trains.
    frozen: bool,
}

/// The members' BatchNorms of one conv layer over its grouped channels
/// `[K·out]`: a channel's statistics over (batch, height, width) are one
/// member's, of its own batch, so each member normalises as it would alone;
/// its running statistics likewise.
struct StackedNorm {
    weight: Tensor,
    bias: Tensor,
    running_mean: Tensor,
    running_var: Tensor,
}

impl StackedNorm {
    /// Layer `i`'s BatchNorms, if the members have them.
    fn stack(members: &[Model], i: usize) -> Result<Option<StackedNorm>> {
        let key = |leaf: &str| format!("conv{i}.bn.{leaf}");
        if !members[0].vs.variables().contains_key(&key("weight")) {
            return Ok(None);
        }
        let cat = |leaf: &str| -> Result<Tensor> { Ok(Tensor::cat(&stacked(members, &key(leaf))?, 0).contiguous()) };
        let (weight, bias) = (leaf(cat("weight")?), leaf(cat("bias")?));
        Ok(Some(StackedNorm { weight, bias, running_mean: cat("running_mean")?, running_var: cat("running_var")? }))
    }

    /// `h` normalised: by the batch's statistics (updating the running
    /// ones) while training, by the running ones in evaluation, with the
    /// momentum and epsilon of the members' own BatchNorm.
    fn apply(&self, h: &Tensor, train: bool) -> Tensor {
        let config = tch::nn::BatchNormConfig::default();
        h.batch_norm(
            Some(&self.weight),
            Some(&self.bias),
            Some(&self.running_mean),
            Some(&self.running_var),
            train,
            config.momentum,
            config.eps,
            config.cudnn_enabled,
        )
    }
}

impl BatchedCnn {
    /// The members' weights stacked, each as its own model holds them.
    pub fn stack(members: &[Model]) -> Result<Self> {
        let Some(first) = members.first() else { bail!("a batch of no members") };
        let variables = first.vs.variables();
        let layers = variables.keys().filter(|n| n.starts_with("conv") && n.ends_with(".conv.weight")).count();
        let mut convs = Vec::new();
        for i in 0..layers {
            let weight = Tensor::cat(&stacked(members, &format!("conv{i}.conv.weight"))?, 0);
            let bias = Tensor::cat(&stacked(members, &format!("conv{i}.conv.bias"))?, 0);
            convs.push((leaf(weight), leaf(bias), StackedNorm::stack(members, i)?));
        }
        let input = first.input_shape().to_vec();
        let head = stacked_linear(members, "head")?;
        Ok(BatchedCnn { k: members.len() as i64, input, convs, head, frozen: false })
    }

    /// The logits of channels-stacked inputs `[B, K·C, H, W]`, in
    /// channels-last memory, where grouped convolutions and their pools
    /// measure fastest; BatchNorms in training mode when `train`.
    fn grouped(&self, h: Tensor, train: bool) -> Tensor {
        let mut h = h.permute([0, 2, 3, 1]).contiguous().permute([0, 3, 1, 2]);
        for (weight, bias, norm) in &self.convs {
            h = h.conv2d(weight, Some(bias), [1, 1], [1, 1], [1, 1], self.k);
            if let Some(norm) = norm {
                h = norm.apply(&h, train && !self.frozen);
            }
            h = h.relu();
            let (height, width) = (h.size()[2].min(2), h.size()[3].min(2));
            h = h.max_pool2d([height, width], [height, width], [0, 0], [1, 1], false);
        }
        let b = h.size()[0];
        let features = h.mean_dim([2i64, 3].as_slice(), false, Kind::Float).view([b, self.k, -1]).permute([1, 2, 0]);
        linear(&features, &self.head).transpose(1, 2)
    }
}

impl BatchedNet for BatchedCnn {
    fn forward(&self, x: &Tensor) -> Tensor {
        let b = x.size()[1];
        let (c, h, w) = (self.input[0], self.input[1], self.input[2]);
        self.grouped(x.reshape([self.k, b, c, h, w]).transpose(0, 1).reshape([b, self.k * c, h, w]), true)
    }

    fn forward_shared(&self, x: &Tensor) -> Tensor {
        let n = x.size()[0];
        let (c, h, w) = (self.input[0], self.input[1], self.input[2]);
        self.grouped(x.reshape([n, c, h, w]).repeat([1, self.k, 1, 1]), false)
    }

    fn parameters(&self) -> Vec<Tensor> {
        let (w, b) = &self.head;
        if self.frozen {
            return vec![w.shallow_clone(), b.shallow_clone()];
        }
        let norms = |norm: &Option<StackedNorm>| {
            norm.iter().flat_map(|n| [n.weight.shallow_clone(), n.bias.shallow_clone()]).collect::<Vec<_>>()
        };
        self.convs
            .iter()
            .flat_map(|(w, b, norm)| [w.shallow_clone(), b.shallow_clone()].into_iter().chain(norms(norm)))
            .chain([w.shallow_clone(), b.shallow_clone()])
            .collect()
    }

    fn freeze_features(&mut self) {
        for (weight, bias, norm) in &self.convs {
            let norm = norm.iter().flat_map(|n| [&n.weight, &n.bias]);
            [weight, bias].into_iter().chain(norm).for_each(|t| drop(t.set_requires_grad(false)));
        }
        self.frozen = true;
    }

    fn members(&self) -> i64 {
        self.k
    }
}

/// K MLPs of one architecture as stacked tensors: per layer a weight
/// `[K, out, in]` and a bias `[K, out, 1]`, the last layer the head.
pub struct BatchedMlp {
    layers: Vec<(Tensor, Tensor)>,
    /// Whether only the head trains.
    frozen: bool,
}

impl BatchedMlp {
    /// The members' weights stacked, each as its own model holds them.
    pub fn stack(members: &[Model]) -> Result<Self> {
        let Some(first) = members.first() else { bail!("a batch of no members") };
        let hidden = first.vs.variables().keys().filter(|n| n.starts_with("layer") && n.ends_with(".weight")).count();
        let keys = (0..hidden).map(|i| format!("layer{i}")).chain(["head".to_string()]);
        let layers = keys.map(|key| stacked_linear(members, &key)).collect::<Result<_>>()?;
        Ok(BatchedMlp { layers, frozen: false })
    }
}

impl BatchedNet for BatchedMlp {
    fn forward(&self, x: &Tensor) -> Tensor {
        let mut h = x.flatten(2, -1).transpose(1, 2);
        let last = self.layers.len() - 1;
        for (i, layer) in self.layers.iter().enumerate() {
            h = linear(&h, layer);
            if i < last {
                h = h.relu();
            }
        }
        h.transpose(1, 2)
    }

    fn forward_shared(&self, x: &Tensor) -> Tensor {
        let shape: Vec<i64> = [self.members()].into_iter().chain(x.size()).collect();
        self.forward(&x.unsqueeze(0).expand(shape.as_slice(), false))
    }

    fn parameters(&self) -> Vec<Tensor> {
        let trained = if self.frozen { &self.layers[self.layers.len() - 1..] } else { &self.layers[..] };
        trained.iter().flat_map(|(w, b)| [w.shallow_clone(), b.shallow_clone()]).collect()
    }

    fn freeze_features(&mut self) {
        for (weight, bias) in &self.layers[..self.layers.len() - 1] {
            drop((weight.set_requires_grad(false), bias.set_requires_grad(false)));
        }
        self.frozen = true;
    }

    fn members(&self) -> i64 {
        self.layers[0].0.size()[0]
    }
}

fn missing(key: &str) -> crate::TorchError {
    crate::TorchError::Invalid(format!("batched training: the model has no `{key}` (only MLPs batch)"))
}

/// Why `runs` cannot train as one batch, if they cannot: they must share an
/// MLP (or linear) architecture and settings that differ at most in
/// `label_noise`, and train from their own start on a host shuffle
/// (see [`batch_refused`]).
pub fn unbatchable(plan: &PopulationPlan, runs: &[RunSpec], inputs: &PopulationInputs) -> Option<String> {
    let first = runs.first()?;
    let setting = |r: &RunSpec| TrainConfig { label_noise: 0.0, ..plan.settings[r.setting].clone() };
    if let Some(why) = batch_refused(inputs.config) {
        return Some(why.to_string());
    }
    let reasons = [
        (runs.iter().any(|r| r.architecture != first.architecture), "its runs have different architectures"),
        (runs.iter().any(|r| setting(r) != setting(first)), "its runs' settings differ beyond label_noise"),
        (inputs.sampler.is_some(), "a plugin's sampler does not batch yet"),
    ];
    reasons.iter().find(|(refused, _)| *refused).map(|(_, why)| why.to_string())
}

/// The parts `runs` train in as batches: all at once, or under
/// `batch = "auto"` as many at a time as `population.batch_memory_mb` holds
/// by [`member_bytes`].
pub(super) fn parts<'r>(
    plan: &PopulationPlan,
    runs: &'r [RunSpec],
    inputs: &PopulationInputs,
) -> Result<Vec<&'r [RunSpec]>> {
    if inputs.config.batch != MemberBatch::Auto {
        return Ok(vec![runs]);
    }
    let architecture = &plan.architectures[runs[0].architecture].0;
    let each = member_bytes(architecture, inputs.splits, plan.settings[runs[0].setting].batch_size)?;
    let fitting = ((inputs.config.batch_memory_mb << 20) / each).max(1);
    Ok(runs.chunks(fitting as usize).collect())
}

/// An estimate of the bytes one member of a batch holds while it trains:
/// its weights, their gradients and two optimizer moments, and three copies
/// (outputs, their gradients, what the backward pass keeps) of its
/// activations for a batch of `batch_size`.
pub fn member_bytes(architecture: &ModelConfig, splits: &crate::data::Splits, batch_size: usize) -> Result<u64> {
    let classes = splits.train.classes as i64;
    let model = Model::new(architecture, &splits.train.shape, classes, tch::Device::Cpu, 0)?;
    let weights: i64 = model.vs.variables().values().map(Tensor::numel).sum::<usize>() as i64;
    let activations = activation_floats(architecture, model.input_shape(), classes);
    Ok(4 * (4 * weights + 3 * batch_size as i64 * activations) as u64)
}

/// The floats one example's forward pass makes: each layer's outputs (a
/// CNN's convolution and ReLU outputs and its pooled maps) and the logits.
fn activation_floats(architecture: &ModelConfig, input: &[i64], classes: i64) -> i64 {
    if architecture.kind != ModelKind::Cnn {
        return architecture.hidden.iter().map(|h| 2 * h).sum::<i64>() + classes;
    }
    let (mut height, mut width) = (input[1], input[2]);
    let mut floats = classes;
    // Convolution and ReLU outputs, and BatchNorm's where there is one.
    let per_pixel = if architecture.batch_norm { 3 } else { 2 };
    for channels in &architecture.channels {
        floats += per_pixel * channels * height * width;
        (height, width) = (height / height.min(2), width / width.min(2));
        floats += channels * height * width;
    }
    floats
}

/// Trains `runs` (one architecture and setting) as one batched model; the
/// members they yield, in run order, as if each had trained alone.
pub(super) fn train_batch(
    plan: &PopulationPlan,
    runs: &[RunSpec],
    inputs: &PopulationInputs,
    (shared, base, cancel): (&SharedTensors, Option<&Model>, &AtomicBool),
    population: &mut Population,
) -> Result<()> {
    if let Some(why) = unbatchable(plan, runs, inputs) {
        bail!("population.batch: {why}");
    }
    let started = std::time::Instant::now();
    let one = |spec| OneRun { plan, spec, inputs, shared, base };
    let models = runs.iter().map(|spec| Ok(one(spec).initial_model(&None)?.0)).collect::<Result<Vec<Model>>>()?;
    let labels = runs.iter().map(|spec| one(spec).labels(&plan.settings[spec.setting])).collect::<Result<Vec<_>>>()?;
    let kind = plan.architectures[runs[0].architecture].0.kind;
    let mut batched = stack(&models, kind)?;
    if inputs.config.freeze_features {
        batched.freeze_features();
    }
    let seeds: Vec<u64> = runs.iter().map(|spec| one(spec).seed()).collect();
    let mut rows: Vec<Vec<TakenMember>> = runs.iter().map(|_| vec![]).collect();
    let cfg = &plan.settings[runs[0].setting];
    let n = shared.train.y.size()[0] as u64;
    // Members where a run alone takes them: at a training length, or at
    // every checkpoint with `every_checkpoint`.
    let mut taking = std::time::Duration::ZERO;
    let mut on_checkpoint = |cp: Checkpoint| -> Result<()> {
        let taken_from = std::time::Instant::now();
        let epochs = (cp.examples_seen as f64 / n.max(1) as f64 + 1e-9).floor() as u64;
        let at_a_length = cp.epoch.fract() == 0.0 && plan.lengths.contains(&epochs);
        if inputs.config.every_checkpoint || at_a_length {
            let at = (epochs, cp.step, cp.examples_seen);
            let taken = take_members(batched.as_ref(), runs, at, (plan, inputs, shared))?;
            rows.iter_mut().zip(taken).for_each(|(rows, row)| rows.push(row));
        }
        taking += taken_from.elapsed();
        Ok(())
    };
    let set_up = started.elapsed();
    let mut fit = BatchedFit::new(batched.as_ref(), &shared.train, &labels, cfg, &seeds)?;
    for epoch in 0..cfg.epochs {
        let exhausted = fit.epoch(cancel, &mut on_checkpoint)?;
        if let Some(member) = fit.diverged()? {
            bail!(
                "training diverged: population run {} (trained in a batch) had a loss that is not finite in epoch \
                 {}; lower train.lr, or check the data for NaN or infinite values",
                runs[member].run,
                epoch + 1
            );
        }
        let epochs_done = if exhausted { fit.seen as f64 / n as f64 } else { (epoch + 1) as f64 };
        on_checkpoint(Checkpoint { step: fit.step, epoch: epochs_done, examples_seen: fit.seen, is_final: true })?;
        fit.last_checkpoint = fit.step;
        if exhausted {
            break;
        }
    }
    let trained = started.elapsed() - set_up;
    log_timing(runs, fit.step, (set_up, trained - taking, taking));
    if plan.settings.iter().any(|c| c.label_noise > 0.0) {
        population.train_labels.extend(labels);
    }
    for (member, splits) in rows.into_iter().flatten() {
        for (split, rows) in splits {
            population.splits.get_mut(&split).expect("inserted with the population").extend_rows(rows);
        }
        population.members.push(member);
    }
    Ok(())
}

/// Where a batch's time went: its set-up (the members' initial models,
/// stacked), its training loop (`steps` optimizer steps; the epochs' ends
/// wait for the device) and its members taken (evaluated on every split).
fn log_timing(runs: &[RunSpec], steps: u64, (set_up, training, taking): (Duration, Duration, Duration)) {
    log::info!(
        "population runs {}–{}: set up in {:.3} s, training loop {:.3} s ({steps} steps, {:.3} ms a step), \
         members evaluated in {:.3} s",
        runs[0].run + 1,
        runs[runs.len() - 1].run + 1,
        set_up.as_secs_f64(),
        training.as_secs_f64(),
        1e3 * training.as_secs_f64() / steps.max(1) as f64,
        taking.as_secs_f64()
    );
}

/// The training of a batch: each member's order and labels, the stacked
/// optimizer and where the fit stands.
struct BatchedFit<'a> {
    model: &'a dyn BatchedNet,
    data: &'a TensorData,
    labels: Tensor,
    cfg: &'a TrainConfig,
    rngs: Vec<SeedRng>,
    optimizer: crate::optim::SavableOptimizer,
    step: u64,
    seen: u64,
    total_steps: u64,
    /// Examples to train on at most (`train.max_examples`).
    budget: u64,
    /// Batches gathered per optimizer step (`train.accumulate`), and how
    /// many of the current step's are.
    accumulate: u64,
    micro: u64,
    /// Steps `checkpoint_steps` and `checkpoint_log` add.
    extra_checkpoints: std::collections::BTreeSet<u64>,
    last_checkpoint: u64,
    /// Each member's summed loss since the last check, on the device: read
    /// once an epoch rather than at every step (a read waits for a GPU).
    loss_sums: Tensor,
}

impl<'a> BatchedFit<'a> {
    fn new(
        model: &'a dyn BatchedNet,
        data: &'a TensorData,
        labels: &[Vec<i64>],
        cfg: &'a TrainConfig,
        seeds: &[u64],
    ) -> Result<Self> {
        let n = data.y.size()[0] as u64;
        let device = data.x.device();
        let labels = Tensor::stack(&labels.iter().map(|l| Tensor::from_slice(l)).collect::<Vec<_>>(), 0).to(device);
        let optimizer = crate::optim::SavableOptimizer::new(train::optimizer_rule(cfg), cfg.lr, &model.parameters())?;
        let budget = cfg.max_examples.unwrap_or(u64::MAX);
        let accumulate = cfg.accumulate.max(1);
        let total_steps = (n * cfg.epochs).min(budget).div_ceil(cfg.batch_size as u64 * accumulate);
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
        })
    }

    /// The first member whose loss was not finite since the last check.
    fn diverged(&mut self) -> Result<Option<usize>> {
        let sums = Vec::<f32>::try_from(&self.loss_sums.to_device(tch::Device::Cpu))?;
        let _ = self.loss_sums.zero_();
        Ok(sums.iter().position(|s| !s.is_finite()))
    }

    /// One epoch, each member in its own fresh shuffle, with the
    /// checkpoints a run alone has inside it (every `checkpoint_every`
    /// steps and the extra ones, before the next step); whether the budget
    /// of examples ended it. A stop asked for ends it (the batch starts over).
    fn epoch(&mut self, cancel: &AtomicBool, on_checkpoint: &mut dyn FnMut(Checkpoint) -> Result<()>) -> Result<bool> {
        let n = self.data.y.size()[0] as u64;
        let orders: Vec<i64> = (self.rngs.iter_mut())
            .flat_map(|rng| ShuffledOrder::new(n, rng).ids().iter().map(|&i| i as i64).collect::<Vec<_>>())
            .collect();
        let orders = Tensor::from_slice(&orders).view([self.rngs.len() as i64, n as i64]).to(self.data.x.device());
        let mut start = 0;
        while start < n && self.seen < self.budget {
            if cancel.load(Ordering::Relaxed) {
                bail!("cancelled: a batch of population runs saves no state, and starts over when resumed");
            }
            self.scheduled_checkpoint(n, on_checkpoint)?;
            let length = (self.cfg.batch_size as u64).min(n - start).min(self.budget - self.seen);
            let last_of_pass = self.seen + length >= self.budget;
            self.step_on(&orders.narrow(1, start as i64, length as i64).contiguous(), last_of_pass)?;
            (start, self.seen) = (start + length, self.seen + length);
        }
        if self.micro > 0 {
            // The epoch ended inside an accumulation: step with what was gathered.
            self.optimizer_step()?;
        }
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
    fn step_on(&mut self, ids: &Tensor, last_of_pass: bool) -> Result<()> {
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
        (losses.sum(Kind::Float) / self.accumulate as f64).backward();
        self.micro += 1;
        if self.micro == self.accumulate || last_of_pass {
            self.optimizer_step()?;
        }
        Ok(())
    }

    /// Steps the optimizer at the scheduled learning rate.
    fn optimizer_step(&mut self) -> Result<()> {
        self.optimizer.set_lr(train::learning_rate(self.cfg, self.step, self.total_steps))?;
        self.optimizer.step()?;
        (self.micro, self.step) = (0, self.step + 1);
        Ok(())
    }
}

/// Each member's mean cross-entropy `[K]` of logits `[K, B, classes]` and
/// labels `[K, B]`, its log-softmax spelt out on the CPU: libtorch's over
/// a 10-wide last axis takes as long as a hidden layer there.
fn member_losses(logits: &Tensor, y: &Tensor) -> Tensor {
    if logits.device().is_cuda() {
        // A GPU is bound by kernel launches: libtorch's fused log-softmax
        // takes one where the spelt-out form takes five.
        let chosen = logits.log_softmax(-1, Kind::Float).gather(2, &y.unsqueeze(2), false).squeeze_dim(2);
        return -chosen.mean_dim([1i64].as_slice(), false, Kind::Float);
    }
    let shifted = logits - logits.detach().amax([-1i64].as_slice(), true);
    let normaliser = shifted.exp().sum_dim_intlist([-1i64].as_slice(), false, Kind::Float).log();
    let chosen = shifted.gather(2, &y.unsqueeze(2), false).squeeze_dim(2);
    (normaliser - chosen).mean_dim([1i64].as_slice(), false, Kind::Float)
}

/// How many member-rows one evaluation pass holds: a split is evaluated
/// in row chunks of this over K, so its activations stay bounded whatever
/// the batch (32 CNNs [16, 32] over a 1×40 input: about 40 MB a layer).
const EVALUATED_MEMBER_ROWS: i64 = 1 << 14;

/// Every member's class probabilities `[K, n, classes]` of inputs `[n, ...]`.
fn probabilities(batched: &dyn BatchedNet, x: &Tensor) -> Tensor {
    let rows = (EVALUATED_MEMBER_ROWS / batched.members()).max(1);
    let parts: Vec<Tensor> =
        x.split(rows, 0).iter().map(|rows| batched.forward_shared(rows).softmax(-1, Kind::Float)).collect();
    Tensor::cat(&parts, 1)
}

/// A member taken from a batch, with its rows of each split's matrix.
type TakenMember = (Member, Vec<(String, SplitMatrix)>);

/// Every member of the batch after `epochs` epochs, evaluated on each split
/// by the batched model.
fn take_members(
    batched: &dyn BatchedNet,
    runs: &[RunSpec],
    (epochs, step, seen): (u64, u64, u64),
    (plan, inputs, shared): (&PopulationPlan, &PopulationInputs, &SharedTensors),
) -> Result<Vec<TakenMember>> {
    let config = inputs.config;
    let mut evaluated: Vec<Vec<(String, SplitMatrix)>> = runs.iter().map(|_| vec![]).collect();
    let mut accuracies: Vec<std::collections::BTreeMap<String, f64>> =
        runs.iter().map(|_| Default::default()).collect();
    for (split, data) in &shared.evaluated {
        let outputs = tch::no_grad(|| probabilities(batched, &data.x));
        for (i, rows) in evaluated.iter_mut().enumerate() {
            let mut member = SplitMatrix::default();
            let accuracy = outputs_into(&outputs.get(i as i64), &data.y, &mut member, config.probabilities)?;
            accuracies[i].insert(split.clone(), accuracy);
            rows.push((split.clone(), member));
        }
    }
    let (architecture, width) = &plan.architectures[runs[0].architecture];
    let members = runs.iter().zip(accuracies).map(|(spec, accuracy)| Member {
        run: spec.run,
        model: describe(architecture),
        width: *width,
        seed: config.seeds[spec.seed_index],
        setting: spec.setting,
        setting_label: super::setting_label(&config.settings[spec.setting]),
        batch_size: plan.settings[spec.setting].batch_size,
        epochs,
        step,
        examples_seen: seen,
        accuracy,
    });
    Ok(members.zip(evaluated).collect())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use tch::Device;

    use super::*;
    use crate::manifest::{
        DataConfig, ModelConfig, ModelKind, PopulationConfig, PretrainConfig, PretrainMethod, Split,
    };

    fn splits() -> crate::data::Splits {
        let data = DataConfig { examples: 400, features: 6, classes: 3, separation: 1.5, ..DataConfig::default() };
        crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap()
    }

    #[test]
    fn after_one_step_each_member_is_the_model_it_would_be_alone() {
        let mlp = ModelConfig { hidden: vec![16, 8], ..ModelConfig::default() };
        let cnn = ModelConfig { kind: ModelKind::Cnn, channels: vec![4, 8], ..ModelConfig::default() };
        let normalised = ModelConfig { batch_norm: true, ..cnn.clone() };
        for config in [mlp, cnn, normalised] {
            one_step_matches(&config);
        }
    }

    /// Four members of `config` take one step on their own batches, batched
    /// and alone: their logits agree within 1e-5 relative.
    fn one_step_matches(config: &ModelConfig) {
        let splits = splits();
        let make = |seed| Model::new(config, &splits.train.shape, 3, Device::Cpu, seed).unwrap();
        let members: Vec<Model> = (0..4).map(make).collect();
        let batched = stack(&members, config.kind).unwrap();
        let data = TensorData::new(&splits.train, Device::Cpu);
        let cfg = TrainConfig { batch_size: 8, momentum: 0.9, lr: 0.1, ..TrainConfig::default() };
        let labels: Vec<Vec<i64>> = (0..4).map(|_| splits.train.labels.clone()).collect();
        let mut fit = BatchedFit::new(batched.as_ref(), &data, &labels, &cfg, &[0, 1, 2, 3]).unwrap();
        // Each member's own batch: different ids per member.
        let ids: Vec<Vec<i64>> = (0..4).map(|k| (0..8).map(|i| (i * 7 + k * 13) % 300).collect()).collect();
        let stacked = Tensor::stack(&ids.iter().map(|i| Tensor::from_slice(i)).collect::<Vec<_>>(), 0);
        fit.step_on(&stacked, false).unwrap();
        let probe = data.x.narrow(0, 0, 50);
        let together = tch::no_grad(|| batched.forward_shared(&probe));
        for (k, batch) in ids.iter().enumerate() {
            let alone = make(k as u64);
            let mut optimizer = train::optimizer(&alone, &cfg).unwrap();
            let batch = Tensor::from_slice(batch);
            let logits = alone.forward_train(&data.x.index_select(0, &batch));
            let loss = logits.cross_entropy_for_logits(&data.y.index_select(0, &batch));
            optimizer.zero_grad().unwrap();
            loss.backward();
            optimizer.set_lr(train::learning_rate(&cfg, 0, fit.total_steps)).unwrap();
            optimizer.step().unwrap();
            let expected = tch::no_grad(|| alone.forward(&probe));
            let got = together.get(k as i64);
            let relative = f64::try_from((&got - &expected).abs().max() / expected.abs().max()).unwrap();
            assert!(
                relative < 1e-5,
                "{:?} member {k}: logits differ by {relative:e} relative after one step",
                config.kind
            );
            eprintln!("{:?} member {k}: logits after one step differ by {relative:e} relative", config.kind);
        }
    }

    #[test]
    fn a_batch_whose_loss_stops_being_finite_fails_naming_the_run() {
        let splits = splits();
        let config = PopulationConfig {
            models: vec![ModelConfig { hidden: vec![8], ..ModelConfig::default() }],
            seeds: vec![0, 1],
            epochs: vec![1],
            batch: MemberBatch::Runs(2),
            ..PopulationConfig::default()
        };
        let train = TrainConfig { batch_size: 16, lr: 1e30, ..TrainConfig::default() };
        let plan = PopulationPlan::new(&config, &train).unwrap();
        let pretrain = PretrainConfig::default();
        let inputs = PopulationInputs::on_cpu(&config, &pretrain, &splits, 9);
        let units = plan.batches(&config, 2);
        let Err(error) = Population::train_runs(&plan, &units[0], &inputs, &AtomicBool::new(false), None) else {
            panic!("a learning rate of 1e30 trained")
        };
        let error = error.to_string();
        assert!(error.contains("training diverged: population run 0") && error.contains("lower train.lr"), "{error}");
    }

    #[test]
    fn auto_trains_a_unit_in_parts_its_memory_budget_holds() {
        let splits = splits();
        let model = ModelConfig { hidden: vec![512, 512], ..ModelConfig::default() };
        let each = member_bytes(&model, &splits, 16).unwrap();
        let fitting = ((16u64 << 20) / each) as usize;
        assert!((2..8).contains(&fitting), "16 MB holds {fitting} members of {each} bytes");
        // Two full parts and a part of two.
        let runs = 2 * fitting + 2;
        let config = PopulationConfig {
            models: vec![model.clone()],
            seeds: (0..runs as u64).collect(),
            epochs: vec![1],
            batch: MemberBatch::Auto,
            batch_memory_mb: 16,
            ..PopulationConfig::default()
        };
        let train = TrainConfig { batch_size: 16, ..TrainConfig::default() };
        let plan = PopulationPlan::new(&config, &train).unwrap();
        let units = plan.batches(&config, 64);
        assert_eq!(units.len(), 1, "auto: the {runs} runs are one unit");
        let pretrain = PretrainConfig::default();
        let inputs = PopulationInputs::on_cpu(&config, &pretrain, &splits, 9);
        let sizes: Vec<usize> = parts(&plan, &units[0], &inputs).unwrap().iter().map(|p| p.len()).collect();
        assert_eq!(sizes, [fitting, fitting, 2]);
        let trained = |config: &PopulationConfig| {
            let inputs = PopulationInputs::on_cpu(config, &pretrain, &splits, 9);
            Population::train_runs(&plan, &units[0], &inputs, &AtomicBool::new(false), None).unwrap()
        };
        let by_hand = PopulationConfig { batch: MemberBatch::Runs(fitting), ..config.clone() };
        let by_hand = plan.batches(&by_hand, fitting).into_iter().fold(Population::default(), |mut all, unit| {
            let inputs = PopulationInputs::on_cpu(&by_hand, &pretrain, &splits, 9);
            all.append(Population::train_runs(&plan, &unit, &inputs, &AtomicBool::new(false), None).unwrap()).unwrap();
            all
        });
        assert_eq!(trained(&config), by_hand, "auto is batch = {fitting} here, bit for bit");
    }

    #[test]
    fn a_batched_population_is_the_unbatched_one_up_to_rounding_and_reproducible() {
        let mlp = ModelConfig { hidden: vec![16], ..ModelConfig::default() };
        let cnn =
            ModelConfig { kind: ModelKind::Cnn, channels: vec![4, 8], batch_norm: true, ..ModelConfig::default() };
        let none = PretrainConfig::default();
        let pretrained = PretrainConfig { method: PretrainMethod::Autoencoder, epochs: 2, ..PretrainConfig::default() };
        // Every member from one saved network, its head fresh from its seed.
        let saved = tempfile::tempdir().unwrap();
        let weights = saved.path().join("mlp.safetensors");
        Model::new(&mlp, &splits().train.shape, 3, Device::Cpu, 77).unwrap().save(&weights).unwrap();
        let path = Some(weights.display().to_string());
        let from_weights = ModelConfig { weights: path, fresh_head: true, ..mlp.clone() };
        // Members at every checkpoint: every 7 steps, 3 on a log scale,
        // each epoch's end, and the budget of examples ending the third epoch.
        let plain = TrainConfig { batch_size: 16, momentum: 0.9, lr: 0.05, ..TrainConfig::default() };
        let checkpoints =
            TrainConfig { checkpoint_every: 7, checkpoint_log: 3, max_examples: Some(700), ..plain.clone() };
        let accumulated = TrainConfig { accumulate: 3, checkpoint_every: 2, ..plain.clone() };
        for (model, freeze, pretrain, train) in [
            (&mlp, false, &none, &plain),
            (&from_weights, false, &none, &plain),
            (&cnn, false, &none, &plain),
            (&mlp, true, &none, &plain),
            (&cnn, true, &pretrained, &plain),
            (&mlp, false, &pretrained, &plain),
            (&cnn, false, &none, &checkpoints),
            (&mlp, false, &none, &accumulated),
        ] {
            let start = if model.weights.is_some() { " from model.weights" } else { "" };
            let every = train.checkpoint_every > 0;
            eprintln!(
                "{:?}{start}, freeze_features = {freeze}, pretrain = {}, every checkpoint: {every}, accumulate: {}",
                model.kind, pretrain.method, train.accumulate
            );
            batched_population_matches(model.clone(), (freeze, every), pretrain, train);
        }
    }

    /// Six runs of `model` (3 seeds × 2 label-noise settings), 3 epochs,
    /// batched and alone, from their own seeds or a shared start.
    fn batched_population_matches(
        model: ModelConfig,
        (freeze_features, every_checkpoint): (bool, bool),
        pretrain: &PretrainConfig,
        train: &TrainConfig,
    ) {
        let splits = splits();
        let setting = |text: &str| text.parse::<toml::Table>().unwrap();
        let config = PopulationConfig {
            freeze_features,
            every_checkpoint,
            models: vec![model],
            seeds: vec![0, 1, 2],
            settings: vec![setting("label_noise = 0.0"), setting("label_noise = 0.1")],
            epochs: vec![1, 3],
            splits: vec![Split::Test, Split::Train],
            probabilities: true,
            ..PopulationConfig::default()
        };
        // As a run does: the encoder pretrained once (its own unit), then read.
        let encoders = tempfile::tempdir().unwrap();
        if pretrain.method != PretrainMethod::None {
            let plan = PopulationPlan::new(&config, train).unwrap();
            let inputs = PopulationInputs {
                encoders: Some(encoders.path()),
                ..PopulationInputs::on_cpu(&config, pretrain, &splits, 9)
            };
            Population::pretrain_encoder(&plan, 0, &inputs).unwrap();
        }
        let trained = |batch: usize| {
            let config = PopulationConfig { batch: MemberBatch::Runs(batch), ..config.clone() };
            let plan = PopulationPlan::new(&config, train).unwrap();
            let inputs = PopulationInputs {
                pretrained: Some(encoders.path()),
                ..PopulationInputs::on_cpu(&config, pretrain, &splits, 9)
            };
            let mut population = Population::default();
            for units in plan.batches(&config, batch) {
                let part = Population::train_runs(&plan, &units, &inputs, &AtomicBool::new(false), None).unwrap();
                population.append(part).unwrap();
            }
            (population, plan.batches(&config, batch).len())
        };
        let (alone, alone_units) = trained(1);
        let (together, batches) = trained(6);
        assert_eq!((alone_units, batches), (6, 1), "6 runs whose settings differ in label_noise only: one batch");
        assert_eq!(together, trained(6).0, "batched runs are bit-identical from run to run");
        assert_eq!(alone.train_labels, together.train_labels, "each run draws its own label noise, batched or not");
        assert_eq!(alone.members.len(), together.members.len());
        if train.max_examples.is_some() {
            // Every 7 steps, 1 and 44 on the log scale, each epoch's end (18
            // steps of 280 examples) and the budget's (140 examples later).
            let steps: Vec<u64> = together.members.iter().filter(|m| m.run == 0).map(|m| m.step).collect();
            assert_eq!(steps, [1, 7, 14, 18, 21, 28, 35, 36, 42, 44, 45], "checkpoints as a run alone has them");
        }
        for (a, b) in alone.members.iter().zip(&together.members) {
            assert_eq!(
                (a.run, a.epochs, a.step, a.examples_seen, a.setting),
                (b.run, b.epochs, b.step, b.examples_seen, b.setting)
            );
            for (split, accuracy) in &a.accuracy {
                assert!(
                    (accuracy - b.accuracy[split]).abs() <= 0.01,
                    "run {} {split}: {accuracy} vs {}",
                    a.run,
                    b.accuracy[split]
                );
            }
        }
        let (p, q) = (&alone.splits["test"].true_probability, &together.splits["test"].true_probability);
        let largest = p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
        assert!(largest < 1e-4, "true-label probabilities differ by up to {largest}");
        eprintln!("batched against alone: true-label probabilities differ by up to {largest:e}");
    }
}

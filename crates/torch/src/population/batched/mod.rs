//! Populations trained as one batched model (issue 39): K runs of one MLP
//! or CNN architecture and one training setting, their weights stacked on a
//! leading member axis (`net`): dense layers as batched matrix products,
//! convolutions as grouped ones. Each member keeps what it has alone: its
//! initialization (its seed's weights, copied from the model it would train
//! unbatched), its own shuffled order (its seed's stream, batch for batch),
//! its label-noise draw and its members at each training length. One
//! optimizer over the stacked tensors is K optimizers (`fit`): SGD's
//! momentum, Adam's moments and weight decay act element by element, and
//! the loss is the sum of the members' mean losses, so each member's
//! gradient is its own. A stop saves the batch where it stands (`saved`).
//! Runs under a plugin's sampler batch through the stacked fit of a `train`
//! variant's seeds instead (`sampled`).

use std::cell::RefCell;
use std::path::PathBuf;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use tch::{Kind, Tensor};
use tessera_sdk::Checkpoint;

use super::group::Group;
use super::resume::{BatchState, TakenMember};
use super::run::outputs_into;
use super::run::OneRun;
use super::{
    batch_refused, batch_setting, run_ranges, Member, Population, PopulationInputs, PopulationPlan, RunSpec,
    SharedTensors, SplitMatrix,
};
use crate::error::{bail, Result};
use crate::manifest::{MemberBatch, ModelConfig, ModelKind};
use crate::model::Model;

mod fit;
mod net;
mod sampled;
mod saved;
#[cfg(test)]
mod tests;

pub(crate) use fit::member_losses;
pub(super) use fit::steps_taken;
use fit::BatchedFit;
pub(crate) use net::stack;
pub use net::{BatchedCnn, BatchedMlp, BatchedNet};

/// Why `runs` cannot train as one batch, if they cannot: they must share an
/// MLP, linear or CNN architecture and settings that differ at most in
/// `label_noise` and `lr` (see [`batch_refused`], [`batch_setting`]); under a
/// plugin's sampler, train every layer and be batched by a number, not
/// `"auto"`.
pub fn unbatchable(plan: &PopulationPlan, runs: &[RunSpec], inputs: &PopulationInputs) -> Option<String> {
    let first = runs.first()?;
    let setting = |r: &RunSpec| batch_setting(&plan.settings[r.setting]);
    if let Some(why) = batch_refused(inputs.config) {
        return Some(why.to_string());
    }
    let reasons = [
        (runs.iter().any(|r| r.architecture != first.architecture), "its runs have different architectures"),
        (runs.iter().any(|r| setting(r) != setting(first)), "its runs' settings differ beyond label_noise and lr"),
        (
            inputs.sampler.is_some() && inputs.config.freeze_features,
            "a plugin's sampler batches only runs whose every layer trains (not with freeze_features)",
        ),
        (
            inputs.sampler.is_some() && inputs.config.batch == MemberBatch::Auto,
            "a plugin's sampler batches only with population.batch = K (its runs' orders may differ in length)",
        ),
    ];
    reasons.iter().find(|(refused, _)| *refused).map(|(_, why)| why.to_string())
}

/// Under `batch = "auto"` on a CPU, the most bytes (by [`member_bytes`])
/// one batch takes, whatever `population.batch_memory_mb` allows: about
/// half a server core complex's last-level cache. A batch past it waits on
/// memory (one thread: 64 MLPs 40-256-256-10 train 1.2x faster in batches of
/// 8 than of 64, 32 CNNs [16, 32] 1.15x faster in batches of 16 than of 32).
/// A fixed figure, not this machine's cache, so that a manifest makes the
/// same batches, and so the same bits, on every machine.
pub const AUTO_CPU_BATCH_BYTES: u64 = 16 << 20;

/// The parts `runs` train in as batches: all at once, or under
/// `batch = "auto"` in as few parts of even size as
/// `population.batch_memory_mb` (and, on a CPU, [`AUTO_CPU_BATCH_BYTES`])
/// holds by [`member_bytes`].
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
    let mut budget = inputs.config.batch_memory_mb << 20;
    if inputs.device == tch::Device::Cpu {
        budget = budget.min(AUTO_CPU_BATCH_BYTES);
    }
    let count = runs.len().div_ceil((budget / each).max(1) as usize);
    Ok(even_parts(runs, count))
}

/// `runs` in `count` consecutive parts whose sizes differ by one at most,
/// the longer ones first.
fn even_parts<T>(runs: &[T], count: usize) -> Vec<&[T]> {
    let (size, longer) = (runs.len() / count, runs.len() % count);
    let mut rest = runs;
    let mut parts = Vec::with_capacity(count);
    for i in 0..count {
        let (part, tail) = rest.split_at(size + usize::from(i < longer));
        parts.push(part);
        rest = tail;
    }
    parts
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

/// Trains `runs` (one architecture and setting) as one batched model into
/// `group`'s population (continuing from `resumed`, a state saved inside
/// it); the members they yield, in run order, as if each had trained alone.
/// Its optimizer steps.
pub(super) fn train_batch(
    plan: &PopulationPlan,
    runs: &[RunSpec],
    inputs: &PopulationInputs,
    (group, base, cancel, progress): (&Group, Option<&Model>, &AtomicBool, Option<&indicatif::ProgressBar>),
    resumed: Option<(BatchState, PathBuf)>,
) -> Result<u64> {
    if let Some(why) = unbatchable(plan, runs, inputs) {
        bail!("population.batch: {why}");
    }
    if inputs.sampler.is_some() {
        return sampled::train_sampled_batch(plan, runs, inputs, (group, base, cancel, progress));
    }
    let (started, shared) = (std::time::Instant::now(), &group.shared);
    let Members { batched, labels, seeds } = members(plan, runs, inputs, (shared, base))?;
    let cfg = &plan.settings[runs[0].setting];
    let mut fit = BatchedFit::new(batched.as_ref(), &shared.train, &labels, cfg, (&seeds, &base_rates(plan, runs)))?;
    let taken: RefCell<Vec<Vec<TakenMember>>> = RefCell::new(runs.iter().map(|_| vec![]).collect());
    if let Some((state, dir)) = &resumed {
        fit.continue_from(state, dir)?;
        *taken.borrow_mut() = state.taken.clone();
    }
    let first_step = fit.step;
    let n = shared.train.y.size()[0] as u64;
    // Members where a run alone takes them: at a training length, or at
    // every checkpoint with `every_checkpoint`.
    let mut taking = std::time::Duration::ZERO;
    let mut on_checkpoint = |cp: Checkpoint| -> Result<()> {
        let taken_from = std::time::Instant::now();
        if let Some(epochs) = super::member_epochs(plan, inputs.config, cp.epoch, cp.examples_seen, n) {
            let at = (epochs, cp.step, cp.examples_seen);
            let members = take_members(batched.as_ref(), runs, at, (plan, inputs, shared))?;
            taken.borrow_mut().iter_mut().zip(members).for_each(|(rows, row)| rows.push(row));
        }
        taking += taken_from.elapsed();
        Ok(())
    };
    let terminal = std::io::IsTerminal::is_terminal(&std::io::stderr());
    let mut shown = Shown { runs, bar: progress, group, terminal, line: None };
    let mut at_boundary = |fit: &BatchedFit| {
        shown.step(fit);
        saved::at_boundary(fit, group, &taken, cancel)
    };
    let set_up = started.elapsed();
    while fit.epoch < cfg.epochs {
        let exhausted = fit.train_epoch(&mut on_checkpoint, &mut at_boundary)?;
        if let Some(member) = fit.diverged()? {
            bail!(
                "training diverged: population run {} (trained in a batch) had a loss that is not finite in epoch \
                 {}; lower train.lr, or check the data for NaN or infinite values",
                runs[member].run,
                fit.epoch
            );
        }
        let epochs_done = if exhausted { fit.seen as f64 / n as f64 } else { fit.epoch as f64 };
        on_checkpoint(Checkpoint { step: fit.step, epoch: epochs_done, examples_seen: fit.seen, is_final: true })?;
        fit.last_checkpoint = fit.step;
        if exhausted {
            break;
        }
    }
    let trained = started.elapsed() - set_up;
    log_timing(runs, fit.step - first_step, (set_up, trained - taking, taking));
    let noisy = plan.settings.iter().any(|c| c.label_noise > 0.0);
    join(&mut group.population.borrow_mut(), taken.into_inner(), noisy.then_some(labels));
    Ok(fit.step)
}

/// Each run's base learning rate: its setting's `lr`.
fn base_rates(plan: &PopulationPlan, runs: &[RunSpec]) -> Vec<f64> {
    runs.iter().map(|r| plan.settings[r.setting].lr).collect()
}

/// A batch's members as they start: stacked (only the head trains with
/// `freeze_features`), each run's labels (its label-noise draw) and seed.
struct Members {
    batched: Box<dyn BatchedNet>,
    labels: Vec<Vec<i64>>,
    seeds: Vec<u64>,
}

/// `runs`' members, each from its own start as it would train alone.
fn members(
    plan: &PopulationPlan,
    runs: &[RunSpec],
    inputs: &PopulationInputs,
    (shared, base): (&SharedTensors, Option<&Model>),
) -> Result<Members> {
    let one = |spec| OneRun { plan, spec, inputs, shared, base };
    let models = runs.iter().map(|spec| Ok(one(spec).initial_model(&None)?.0)).collect::<Result<Vec<Model>>>()?;
    let labels = runs.iter().map(|spec| one(spec).labels(&plan.settings[spec.setting])).collect::<Result<Vec<_>>>()?;
    let mut batched = stack(&models.iter().collect::<Vec<_>>(), plan.architectures[runs[0].architecture].0.kind)?;
    if inputs.config.freeze_features {
        batched.freeze_features();
    }
    let seeds = runs.iter().map(|spec| one(spec).seed()).collect();
    Ok(Members { batched, labels, seeds })
}

/// The members `taken` from a batch (run by run) and, with label noise,
/// each run's training labels, added to `population` in row order.
fn join(population: &mut Population, taken: Vec<Vec<TakenMember>>, labels: Option<Vec<Vec<i64>>>) {
    population.train_labels.extend(labels.into_iter().flatten());
    for (member, splits) in taken.into_iter().flatten() {
        for (split, rows) in splits {
            population.splits.get_mut(&split).expect("inserted with the population").extend_rows(rows);
        }
        population.members.push(member);
    }
}

/// How a batch shows where it stands: the unit's progress bar counts its
/// optimizer steps (on a terminal); elsewhere (a log, a Slurm job) a line
/// at most every [`LINE_EVERY`].
struct Shown<'a> {
    runs: &'a [RunSpec],
    bar: Option<&'a indicatif::ProgressBar>,
    /// The unit's group: its steps in the batches before this one, and its
    /// progress sink.
    group: &'a Group<'a>,
    /// Whether stderr is a terminal (then no lines), and the last line's time.
    terminal: bool,
    line: Option<std::time::Instant>,
}

/// Without a terminal, a batch's progress line at most this often.
const LINE_EVERY: Duration = Duration::from_secs(10);

impl Shown<'_> {
    /// Before the step after `fit.step`.
    fn step(&mut self, fit: &BatchedFit) {
        let n = fit.data.y.size()[0] as u64;
        let epoch = fit.epoch as f64 + fit.position as f64 / n as f64;
        self.group.report(fit.step, (epoch, fit.cfg.epochs));
        if let Some(bar) = self.bar {
            bar.set_position(self.group.finished_steps + fit.step);
        }
        if self.terminal || self.line.is_some_and(|at| at.elapsed() < LINE_EVERY) {
            return;
        }
        self.line = Some(std::time::Instant::now());
        let (runs, epochs, step, steps) = (run_ranges(self.runs, 1), fit.cfg.epochs, fit.step, steps_taken(fit.cfg, n));
        log::info!("population runs {runs} (one batch): epoch {epoch:.1}/{epochs} · step {step}/{steps}");
    }
}

/// Where a batch's time went: its set-up (the members' initial models,
/// stacked), its training loop (`steps` optimizer steps in this process;
/// the epochs' ends wait for the device) and its members taken (evaluated
/// on every split).
fn log_timing(runs: &[RunSpec], steps: u64, (set_up, training, taking): (Duration, Duration, Duration)) {
    log::info!(
        "population runs {}: set up in {:.3} s, training loop {:.3} s ({steps} steps, {:.3} ms a step), \
         members evaluated in {:.3} s",
        run_ranges(runs, 1),
        set_up.as_secs_f64(),
        training.as_secs_f64(),
        1e3 * training.as_secs_f64() / steps.max(1) as f64,
        taking.as_secs_f64()
    );
}

/// How many member-rows one evaluation pass holds: a split is evaluated
/// in row chunks of this over K, so its activations stay bounded whatever
/// the batch (32 CNNs [16, 32] over a 1×40 input: about 40 MB a layer).
const EVALUATED_MEMBER_ROWS: i64 = 1 << 14;

/// Every member's class probabilities `[K, n, classes]` of inputs `[n, ...]`:
/// the softmax over the classes as axis 1 of the nets' features-first
/// logits `[K, classes, rows]`, where libtorch runs it along the rows in
/// vector lanes (over a 10-wide last axis it took 20x as long).
fn probabilities(batched: &dyn BatchedNet, x: &Tensor) -> Tensor {
    let rows = (EVALUATED_MEMBER_ROWS / batched.members()).max(1);
    let of_chunk =
        |chunk: &Tensor| batched.forward_shared(chunk).transpose(1, 2).softmax(1, Kind::Float).transpose(1, 2);
    Tensor::cat(&x.split(rows, 0).iter().map(of_chunk).collect::<Vec<_>>(), 1)
}

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
    let members = runs
        .iter()
        .zip(accuracies)
        .map(|(spec, accuracy)| Member::of_run(plan, config, spec, (epochs, step, seen), accuracy));
    Ok(members.zip(evaluated).collect())
}

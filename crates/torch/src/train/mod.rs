//! Training: executes a sampler's order in mini-batches with SGD or Adam,
//! evaluates at checkpoints and produces the observations metrics ask for.

mod fit;
mod resume;
mod select;
mod stacked;

pub use fit::fit;
pub use resume::{Checkpointing, Control, FitState, Resumed, SaveHook, Saving, Stopped};
pub use select::{SelectHook, SelectionLog, StepSelection};
pub use stacked::{
    fit_stacked, unstackable, MemberEpoch, MemberState, StackedCheckpointHook, StackedCheckpointing, StackedEpochHook,
    StackedHooks, StackedSaving, StackedState, StackedStepHook, StackedVisitHook,
};

use std::collections::BTreeSet;
use std::sync::atomic::AtomicBool;

use crate::error::{bail, invalid, Result};
use abi_stable::std_types::RVec;
use tch::nn::OptimizerConfig;
use tch::{nn, Device, Kind, Tensor};
use tessera_sdk::{observation, Array, Checkpoint, Observation, ObservationRequest, SeedRng};

use crate::data::{Dataset, Splits};
use crate::manifest::{ModelKind, Optimizer, Schedule, TrainConfig};
use crate::model::Model;
use crate::optim::{Rule, SavableOptimizer};
pub use crate::storage::EpochOrder;
use crate::storage::{Access, EpochReader, IoStats, LruPolicy};

/// A host-made order held in memory (used by the finetuning oracle).
pub struct ShuffledOrder(Option<Vec<u64>>);

impl ShuffledOrder {
    /// A uniform permutation of `0..n`.
    pub fn new(n: u64, rng: &mut SeedRng) -> Self {
        let mut ids: Vec<u64> = (0..n).collect();
        rng.shuffle(&mut ids);
        ShuffledOrder(Some(ids))
    }
}

impl ShuffledOrder {
    /// The ids in this order (none once handed out as a chunk).
    pub fn ids(&self) -> &[u64] {
        self.0.as_deref().unwrap_or_default()
    }
}

impl EpochOrder for ShuffledOrder {
    fn next_chunk(&mut self) -> tessera_data::Result<Option<RVec<u64>>> {
        Ok(self.0.take().map(RVec::from))
    }
}

/// Features and labels of a dataset as tensors on a device.
pub struct TensorData {
    /// `[n, d]` floats.
    pub x: Tensor,
    /// `[n]` int64 labels.
    pub y: Tensor,
}

impl TensorData {
    /// Copies `data` to `device`.
    pub fn new(data: &Dataset, device: Device) -> Self {
        let mut shape = vec![data.len() as i64];
        shape.extend(data.shape.iter().map(|&d| d as i64));
        let x = Tensor::from_slice(&data.features).view(shape.as_slice()).to_device(device);
        let y = Tensor::from_slice(&data.labels).to_device(device);
        TensorData { x, y }
    }
}

/// One mini-batch.
pub struct Batch {
    /// `[k, ...shape]` features.
    pub x: Tensor,
    /// `[k]` labels.
    pub y: Tensor,
    /// The examples' ids (positions in the stored order).
    pub ids: Vec<u64>,
}

/// Where an epoch's mini-batches come from.
pub trait BatchSource {
    /// The next batch of at most `size` examples, `None` at the end.
    fn next_batch(&mut self, size: usize) -> Result<Option<Batch>>;
    /// Ends the epoch; returns its I/O.
    fn finish(self: Box<Self>) -> Result<IoStats>;
}

/// Executes an order against tensors in memory, counting the storage
/// requests and bytes that a buffer of `buffer_blocks` blocks would have
/// made (the same policy as the shard loader), without reading anything.
pub struct MemorySource<'a> {
    order: Box<dyn EpochOrder + 'a>,
    data: &'a TensorData,
    /// For each stored id, the id a batch reports it as, or −1 to skip it
    /// (after its I/O is counted); none: ids as they are.
    keep: Option<&'a [i64]>,
    layout: tessera_sdk::StorageLayout,
    access: Access,
    buffer: LruPolicy<()>,
    pending: Vec<u64>,
    done: bool,
    io: IoStats,
}

impl<'a> MemorySource<'a> {
    /// A source over `data` stored as `layout`, in the order `order`.
    pub fn new(
        order: Box<dyn EpochOrder + 'a>,
        data: &'a TensorData,
        layout: tessera_sdk::StorageLayout,
        access: Access,
        buffer_blocks: usize,
    ) -> Self {
        MemorySource {
            order,
            data,
            keep: None,
            layout,
            access,
            buffer: LruPolicy::new(buffer_blocks),
            pending: Vec::new(),
            done: false,
            io: IoStats::default(),
        }
    }
}

impl<'a> MemorySource<'a> {
    /// Trains on part of the data only: stored id `i` is read (its I/O
    /// counted) but skipped when `keep[i]` is negative, and otherwise reported
    /// as the id `keep[i]` (so a held-out fold's examples are never trained).
    pub fn keeping(self, keep: &'a [i64]) -> Self {
        MemorySource { keep: Some(keep), ..self }
    }
}

impl BatchSource for MemorySource<'_> {
    fn next_batch(&mut self, size: usize) -> Result<Option<Batch>> {
        while self.pending.len() < size && !self.done {
            match self.order.next_chunk()? {
                Some(chunk) => {
                    let n = self.layout.examples;
                    for &id in chunk.iter() {
                        if id >= n {
                            bail!("the sampler yielded example id {id}, outside 0..{n}");
                        }
                        match self.access {
                            Access::Block => {
                                let block = id / self.layout.block_size;
                                if !self.buffer.touch(block) {
                                    self.buffer.insert(block, ());
                                    self.io.requests += 1;
                                    self.io.bytes +=
                                        self.layout.block_range(block).count() as u64 * self.layout.bytes_per_example;
                                }
                            }
                            Access::Example => {
                                self.io.requests += 1;
                                self.io.bytes += self.layout.bytes_per_example;
                            }
                        }
                        if self.keep.is_none_or(|keep| keep[id as usize] >= 0) {
                            self.pending.push(id);
                        }
                    }
                }
                None => self.done = true,
            }
        }
        if self.pending.is_empty() {
            return Ok(None);
        }
        let take = self.pending.len().min(size);
        let stored: Vec<u64> = self.pending.drain(..take).collect();
        let index: Vec<i64> = stored.iter().map(|&i| i as i64).collect();
        let ids = match self.keep {
            Some(keep) => stored.iter().map(|&i| keep[i as usize] as u64).collect(),
            None => stored,
        };
        let index = Tensor::from_slice(&index).to_device(self.data.x.device());
        Ok(Some(Batch { x: self.data.x.index_select(0, &index), y: self.data.y.index_select(0, &index), ids }))
    }

    fn finish(self: Box<Self>) -> Result<IoStats> {
        Ok(self.io)
    }
}

/// Reads an order's examples from shards through the block loader.
pub struct ShardSource {
    reader: Option<EpochReader>,
    shape: Vec<i64>,
    device: Device,
}

impl ShardSource {
    /// A source over a started pass of the loader.
    pub fn new(reader: EpochReader, shape: &[usize], device: Device) -> Self {
        ShardSource { reader: Some(reader), shape: shape.iter().map(|&d| d as i64).collect(), device }
    }
}

impl BatchSource for ShardSource {
    fn next_batch(&mut self, size: usize) -> Result<Option<Batch>> {
        let reader = self.reader.as_mut().expect("not finished");
        let mut features = Vec::new();
        let examples = reader.next_examples(size, &mut features)?;
        if examples.is_empty() {
            return Ok(None);
        }
        let mut shape = vec![examples.len() as i64];
        shape.extend_from_slice(&self.shape);
        let labels: Vec<i64> = examples.iter().map(|e| e.label).collect();
        Ok(Some(Batch {
            x: Tensor::from_slice(&features).view(shape.as_slice()).to_device(self.device),
            y: Tensor::from_slice(&labels).to_device(self.device),
            ids: examples.iter().map(|e| e.id).collect(),
        }))
    }

    fn finish(mut self: Box<Self>) -> Result<IoStats> {
        Ok(self.reader.take().expect("not finished").finish()?)
    }
}

/// Accuracy and mean loss of a model on a dataset.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Evaluation {
    /// Fraction of correct argmax predictions.
    pub accuracy: f64,
    /// Mean cross-entropy.
    pub loss: f64,
}

/// Evaluates `model` on `data`.
pub fn evaluate(model: &Model, data: &TensorData) -> Evaluation {
    tch::no_grad(|| {
        let logits = model.forward(&data.x);
        let loss = logits.cross_entropy_for_logits(&data.y).double_value(&[]);
        let accuracy =
            logits.argmax(-1, false).eq_tensor(&data.y).to_kind(Kind::Float).mean(Kind::Float).double_value(&[]);
        Evaluation { accuracy, loss }
    })
}

pub(crate) fn to_vec_f32(t: &Tensor) -> Result<Vec<f32>> {
    Ok(Vec::<f32>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Float).contiguous().view([-1]))?)
}

fn to_vec_i64(t: &Tensor) -> Result<Vec<i64>> {
    Ok(Vec::<i64>::try_from(t.to_device(Device::Cpu).to_kind(Kind::Int64).contiguous().view([-1]))?)
}

/// What the host knows about the training split's storage at a checkpoint.
#[derive(Debug, Clone, Copy)]
pub struct StorageView<'a> {
    /// Ids visited so far in the current epoch (all of it at the epoch's end).
    pub order: &'a [u64],
    /// Examples per block.
    pub block_size: u64,
    /// What each example's training forward pass gave since the last checkpoint.
    pub steps: &'a StepLog,
}

/// Every example trained since the last checkpoint: its stored position,
/// step, loss and correctness in the training forward pass.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct StepLog {
    /// Stored positions, in training order.
    pub ids: Vec<u64>,
    /// The optimizer step of each.
    pub steps: Vec<i64>,
    /// The loss of each.
    pub losses: Vec<f32>,
    /// 1 when the forward pass classified it correctly, else 0.
    pub correct: Vec<i64>,
}

impl StepLog {
    /// Appends one batch.
    pub fn record(&mut self, step: u64, ids: &[u64], losses: &[f32], correct: &[i64]) {
        self.ids.extend_from_slice(ids);
        self.steps.extend(std::iter::repeat_n(step as i64, ids.len()));
        self.losses.extend_from_slice(losses);
        self.correct.extend_from_slice(correct);
    }

    /// Empties the log (after a checkpoint has observed it).
    pub fn clear(&mut self) {
        *self = StepLog::default();
    }
}

/// Told each batch's per-example loss and correctness: (step, ids, losses, correct).
pub type StepHook<'a> = dyn FnMut(u64, &[u64], &[f32], &[i64]) + 'a;

/// The observations `requests` asks for, computed once per split; the model
/// runs only if a requested kind needs it.
pub fn observe(
    model: &Model,
    splits: &Splits,
    tensors: &[(&str, &TensorData)],
    storage: StorageView,
    reference: &ReferenceOutputs,
    requests: &[ObservationRequest],
) -> Result<Vec<Observation>> {
    let split_names: BTreeSet<&str> = requests.iter().map(|r| r.split.as_str()).collect();
    let mut out = Vec::new();
    for split in split_names {
        let data = splits.get(split)?;
        let t = tensors
            .iter()
            .find(|(n, _)| *n == split)
            .map(|(_, t)| *t)
            .ok_or_else(|| invalid!("split `{split}` is not loaded"))?;
        let kinds: BTreeSet<&str> =
            requests.iter().filter(|r| r.split.as_str() == split).map(|r| r.kind.as_str()).collect();
        let needs_model = kinds.iter().any(|k| MODEL_KINDS.contains(k));
        let outputs = needs_model.then(|| tch::no_grad(|| (model.features(&t.x), model.forward(&t.x))));
        let at = SplitView { split, data, splits, storage, reference };
        for kind in kinds {
            let array = match &outputs {
                _ if TENSOR_KINDS.contains(&kind) => tensor_array(kind, model, t)?,
                Some(outputs) if MODEL_KINDS.contains(&kind) => model_array(kind, outputs, t)?,
                _ => data_array(kind, &at)?,
            };
            out.push(Observation { split: split.into(), kind: kind.into(), array });
        }
    }
    Ok(out)
}

/// The observations computed from the model's outputs on a split.
const MODEL_KINDS: [&str; 6] = [
    observation::PREDICTIONS,
    observation::LOGITS,
    observation::PROBABILITIES,
    observation::FEATURES,
    observation::LOSS,
    observation::LAST_LAYER_GRADIENT_NORMS,
];

/// The observations of the model's weight tensors (one value per tensor).
const TENSOR_KINDS: [&str; 2] = [observation::GRADIENT_NORMS, observation::WEIGHT_NORMS];

/// Observation `kind` (one of [`TENSOR_KINDS`]) of `model`: its weight
/// norms, or the gradient norms of its mean loss on a split.
fn tensor_array(kind: &str, model: &Model, t: &TensorData) -> Result<Array> {
    let norms = match kind {
        observation::WEIGHT_NORMS => model.weight_norms()?,
        _ => model.gradient_norms(&t.x, &t.y)?,
    };
    Ok(Array::f32(vec![norms.len() as u64], norms))
}

/// One split as the observations that need no model see it.
struct SplitView<'a> {
    split: &'a str,
    data: &'a Dataset,
    splits: &'a Splits,
    storage: StorageView<'a>,
    reference: &'a ReferenceOutputs,
}

/// Observation `kind` (one of [`MODEL_KINDS`]) from the model's (features,
/// logits) on a split whose tensors are `t`.
fn model_array(kind: &str, (features, logits): &(Tensor, Tensor), t: &TensorData) -> Result<Array> {
    let n = logits.size()[0] as u64;
    let width = |x: &Tensor| x.size()[1] as u64;
    Ok(match kind {
        observation::PREDICTIONS => Array::i64(vec![n], to_vec_i64(&logits.argmax(-1, false))?),
        observation::LOGITS => Array::f32(vec![n, width(logits)], to_vec_f32(logits)?),
        observation::PROBABILITIES => Array::f32(vec![n, width(logits)], to_vec_f32(&logits.softmax(-1, Kind::Float))?),
        observation::FEATURES => Array::f32(vec![n, width(features)], to_vec_f32(features)?),
        observation::LAST_LAYER_GRADIENT_NORMS => {
            Array::f32(vec![n], to_vec_f32(&crate::model::last_layer_gradient_norms(features, logits, &t.y))?)
        }
        _ => {
            let loss = logits.log_softmax(-1, Kind::Float).gather(1, &t.y.unsqueeze(1), false).neg();
            Array::f32(vec![n], to_vec_f32(&loss)?)
        }
    })
}

/// Observation `kind` of a split that needs no model: labels, ids, the
/// training steps and order, the reference's predictions.
fn data_array(kind: &str, at: &SplitView) -> Result<Array> {
    let n = at.data.len() as u64;
    if TRAIN_ONLY_KINDS.contains(&kind) && at.split != "train" {
        bail!("observation `{kind}` exists on the `train` split only, not `{}`", at.split);
    }
    let (splits, steps) = (at.splits, at.storage.steps);
    Ok(match kind {
        observation::LABELS => Array::i64(vec![n], at.data.labels.clone()),
        observation::EXAMPLE_IDS if at.split == "train" && !splits.train_ids.is_empty() => {
            Array::i64(vec![n], splits.train_ids.iter().map(|&i| i as i64).collect())
        }
        observation::EXAMPLE_IDS | observation::STORED_POSITIONS => Array::i64(vec![n], (0..n as i64).collect()),
        observation::STEP_IDS => {
            let original = |i: u64| splits.train_ids.get(i as usize).copied().unwrap_or(i) as i64;
            Array::i64(vec![steps.ids.len() as u64], steps.ids.iter().map(|&i| original(i)).collect())
        }
        observation::STEP_INDEX => Array::i64(vec![steps.steps.len() as u64], steps.steps.clone()),
        observation::STEP_LOSS => Array::f32(vec![steps.losses.len() as u64], steps.losses.clone()),
        observation::STEP_CORRECT => Array::i64(vec![steps.correct.len() as u64], steps.correct.clone()),
        observation::CLEAN_LABELS => {
            let clean = &splits.clean_train_labels;
            Array::i64(vec![n], if clean.is_empty() { at.data.labels.clone() } else { clean.clone() })
        }
        observation::REFERENCE_PREDICTIONS | observation::REFERENCE_LOSS => {
            at.reference.get(&(at.split.to_string(), kind.to_string())).cloned().ok_or_else(|| {
                invalid!("observation `{kind}` needs a reference classifier: add `[reference] model = {{ kind = \"linear\" }}` to the manifest")
            })?
        }
        observation::ORDER => {
            let order = at.storage.order;
            Array::i64(vec![order.len() as u64], order.iter().map(|&i| i as i64).collect())
        }
        observation::BLOCK_IDS => {
            Array::i64(vec![n], (0..n).map(|i| (i / at.storage.block_size.max(1)) as i64).collect())
        }
        kind if observation::POPULATION_KINDS.contains(&kind) => bail!(
            "observation `{kind}` exists in population experiments only: set `[experiment] kind = \"population\"` and describe the models in `[population]`"
        ),
        other => bail!("unknown observation `{other}` (known: {})", observation::ALL.join(", ")),
    })
}

/// The observations that exist on the `train` split only.
const TRAIN_ONLY_KINDS: [&str; 8] = [
    observation::STEP_IDS,
    observation::STEP_INDEX,
    observation::STEP_LOSS,
    observation::STEP_CORRECT,
    observation::STORED_POSITIONS,
    observation::CLEAN_LABELS,
    observation::ORDER,
    observation::BLOCK_IDS,
];

/// The `[reference]` classifier L, trained on `train` (its labels as given)
/// with Adam on shuffled batches; `None` when the manifest names none.
/// Returns the model with its figures (train and test accuracy, final loss).
pub fn train_reference(
    cfg: &crate::manifest::ReferenceConfig,
    train: &Dataset,
    test: &Dataset,
    device: Device,
    seed: u64,
) -> Result<Option<TrainedReference>> {
    if cfg.model.kind == ModelKind::None {
        return Ok(None);
    }
    let model = Model::new(&cfg.model, &train.shape, train.classes as i64, device, seed)?;
    let (train, test) = (&TensorData::new(train, device), &TensorData::new(test, device));
    let n = train.y.size()[0];
    let mut opt = nn::Adam { wd: cfg.weight_decay, ..Default::default() }.build(&model.vs, cfg.lr)?;
    let mut rng = SeedRng::derive(seed, 0x2EF);
    let mut order: Vec<i64> = (0..n).collect();
    let batch = cfg.batch_size.max(1);
    for _ in 0..cfg.epochs {
        rng.shuffle(&mut order);
        for ids in order.chunks(batch) {
            let index = Tensor::from_slice(ids).to_device(device);
            let loss = model
                .forward_train(&train.x.index_select(0, &index))
                .cross_entropy_for_logits(&train.y.index_select(0, &index));
            opt.backward_step(&loss);
        }
    }
    let on_train = evaluate(&model, train);
    let on_test = evaluate(&model, test);
    let figures = vec![
        ("train_accuracy", on_train.accuracy),
        ("train_loss", on_train.loss),
        ("test_accuracy", on_test.accuracy),
        ("epochs", cfg.epochs as f64),
    ];
    Ok(Some(TrainedReference { model, figures }))
}

/// The `[reference]` classifier's observations (`reference-predictions`,
/// `reference-loss`) by (split, kind).
pub type ReferenceOutputs = std::collections::BTreeMap<(String, String), Array>;

/// Hard predictions (argmax) of `model` on `data`.
pub fn predictions(model: &Model, data: &TensorData) -> Result<Vec<i64>> {
    to_vec_i64(&tch::no_grad(|| model.forward(&data.x)).argmax(-1, false))
}

/// Observation `kind` of the reference classifier `model` on `data`: its
/// hard predictions or each example's loss.
pub fn reference_array(model: &Model, kind: &str, data: &TensorData) -> Result<Array> {
    let logits = tch::no_grad(|| model.forward(&data.x));
    let n = logits.size()[0] as u64;
    if kind == observation::REFERENCE_PREDICTIONS {
        return Ok(Array::i64(vec![n], to_vec_i64(&logits.argmax(-1, false))?));
    }
    let loss = logits.log_softmax(-1, Kind::Float).gather(1, &data.y.unsqueeze(1), false).neg();
    Ok(Array::f32(vec![n], to_vec_f32(&loss)?))
}

/// The `[reference]` classifier after training, with its figures.
pub struct TrainedReference {
    /// The classifier L.
    pub model: Model,
    /// Train and test accuracy, final training loss, epochs.
    pub figures: Vec<(&'static str, f64)>,
}

/// One point of the training curves.
#[derive(Debug, Clone, Copy, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct CurvePoint {
    /// Where training stood.
    pub step: u64,
    /// Epochs completed (fractional).
    pub epoch: f64,
    /// Training examples seen.
    pub examples_seen: u64,
    /// Mean training loss since the previous point.
    pub train_loss: f64,
    /// Test accuracy.
    pub test_accuracy: f64,
    /// Test loss.
    pub test_loss: f64,
}

/// What a training run did.
#[derive(Debug, Clone, Default, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct FitSummary {
    /// Optimizer steps.
    pub steps: u64,
    /// Examples trained on.
    pub examples_seen: u64,
    /// Wall time of the optimizer steps, in seconds (loading and evaluation excluded).
    pub train_seconds: f64,
    /// Examples per second of optimization.
    pub examples_per_second: f64,
    /// Wall time of each epoch, loading included, evaluation excluded.
    pub epoch_seconds: Vec<f64>,
    /// I/O of each epoch.
    pub epoch_io: Vec<IoStats>,
    /// The process's peak resident memory at the end of each epoch, in MB
    /// (Linux `VmHWM`; NaN elsewhere).
    pub epoch_peak_memory_mb: Vec<f64>,
    /// Ids a sampler visited other than exactly once, summed over epochs.
    pub irregular_visits: u64,
    /// Ids visited in each epoch (repeats counted).
    pub epoch_visits: Vec<u64>,
    /// Distinct examples visited in each epoch.
    pub epoch_distinct: Vec<u64>,
    /// Stored examples no epoch visited.
    pub never_seen: u64,
    /// Per-step selection's cost and choices, when a sampler selected.
    pub selection: Option<SelectionLog>,
}

/// Training that produced a loss that is not finite: the variant fails.
#[derive(Debug, Clone, Copy, PartialEq, thiserror::Error)]
#[error(
    "training diverged: the loss is {loss} at step {step} (epoch {epoch}); lower train.lr, or check the data for NaN or infinite values"
)]
pub struct Diverged {
    /// The loss.
    pub loss: f64,
    /// The optimizer step it came at (1-based).
    pub step: u64,
    /// The epoch (1-based).
    pub epoch: u64,
}

/// Told each batch's example ids: (epoch, ids).
pub type VisitHook<'a> = dyn FnMut(u64, &[u64]) + 'a;

/// Hooks of a training run.
pub struct FitHooks<'a, 'b> {
    /// The batches of each epoch.
    pub epoch: &'a mut dyn FnMut(u64) -> Result<Box<dyn BatchSource + 'b>>,
    /// Called at every checkpoint.
    pub checkpoint: &'a mut dyn FnMut(&Model, Checkpoint, f64) -> Result<()>,
    /// Set to stop.
    pub cancel: &'a AtomicBool,
    /// Advanced by one per step, if given.
    pub progress: Option<&'a indicatif::ProgressBar>,
    /// Told each batch's example ids (epoch, ids), if given.
    pub visit: Option<&'a mut VisitHook<'b>>,
    /// Told each batch's per-example loss and correctness, if given.
    pub per_step: Option<&'a mut StepHook<'b>>,
    /// Examples of the first epoch visited before this call (a fork that
    /// continues its parent's stream): the first epoch does not visit them.
    pub resumed: u64,
    /// The sampler whose orders the batches follow, if a plugin's, and how
    /// it samples: each of its whole epochs must visit the examples as that
    /// mode says, or the run fails naming it.
    pub sampler: Option<(&'a str, tessera_sdk::Sampling)>,
    /// The sampler's loss weights of the current epoch by example id, if it
    /// gives any (the epoch hook sets them): each example's loss is
    /// multiplied by its weight before the batch mean.
    pub weights: Option<&'a std::cell::RefCell<Option<Vec<f32>>>>,
    /// The sampler's per-step selection, if it selects: each batch of the
    /// order is a step's candidates, and the step trains on those it keeps.
    pub select: Option<StepSelection<'a, 'b>>,
    /// Saving the fit's state at step boundaries (every interval, and when
    /// `cancel` is set: the fit then stops with [`Stopped`]), and the state
    /// to continue from. Without it, `cancel` stops the fit with an error.
    pub checkpointing: Option<Checkpointing<'a, 'b>>,
}

impl<'a, 'b> FitHooks<'a, 'b> {
    /// The hooks a plain run needs: batches, checkpoints and cancellation;
    /// no progress bar, no visit hook, nothing resumed.
    pub fn new(
        epoch: &'a mut dyn FnMut(u64) -> Result<Box<dyn BatchSource + 'b>>,
        checkpoint: &'a mut dyn FnMut(&Model, Checkpoint, f64) -> Result<()>,
        cancel: &'a AtomicBool,
    ) -> Self {
        FitHooks {
            epoch,
            checkpoint,
            cancel,
            progress: None,
            visit: None,
            per_step: None,
            resumed: 0,
            sampler: None,
            weights: None,
            select: None,
            checkpointing: None,
        }
    }
}

/// Whether a checkpoint is due before step `step` (the last at
/// `last_checkpoint`): every `checkpoint_every` steps, and at the `extra`
/// ones (`checkpoint_steps`, `checkpoint_log`).
fn checkpoint_due(cfg: &TrainConfig, extra: &BTreeSet<u64>, (step, last_checkpoint): (u64, u64)) -> bool {
    let every = cfg.checkpoint_every;
    let scheduled = (every > 0 && step.is_multiple_of(every)) || extra.contains(&step);
    step > last_checkpoint && scheduled
}

/// The checkpoint at the end of `epoch` (0-based), after `step` steps,
/// `seen` examples trained on of `drawn` drawn, with a budget of `budget`
/// examples of `n` stored: final after the last epoch or the budget.
fn epoch_end(
    cfg: &TrainConfig,
    epoch: u64,
    (step, seen, drawn): (u64, u64, u64),
    (budget, n): (u64, u64),
) -> Checkpoint {
    let exhausted = seen >= budget;
    let is_final = epoch + 1 == cfg.epochs || exhausted;
    let epoch = if exhausted { drawn as f64 / n as f64 } else { (epoch + 1) as f64 };
    Checkpoint { step, epoch, examples_seen: seen, is_final }
}

/// Adds an epoch's `visits` of each stored id to `summary` (and to `ever`):
/// `visited` examples trained on, of which `expected_unvisited` ids were
/// visited before a resume.
fn account_visits(
    summary: &mut FitSummary,
    (visits, ever): (&[u8], &mut [bool]),
    (visited, expected_unvisited): (u64, u64),
) {
    let unvisited = visits.iter().filter(|&&v| v == 0).count() as u64;
    summary.epoch_visits.push(visited);
    summary.epoch_distinct.push(visits.len() as u64 - unvisited);
    visits.iter().zip(ever.iter_mut()).for_each(|(&v, e)| *e |= v > 0);
    let repeated = visits.iter().filter(|&&v| v > 1).count() as u64;
    summary.irregular_visits += repeated + unvisited.abs_diff(expected_unvisited);
}

/// Each example's loss and correctness (1/0) from a batch's logits.
fn per_example(logits: &Tensor, y: &Tensor) -> Result<(Vec<f32>, Vec<i64>)> {
    tch::no_grad(|| {
        let logits = logits.detach();
        let loss = logits.log_softmax(-1, Kind::Float).gather(1, &y.unsqueeze(1), false).neg().squeeze_dim(1);
        let correct = logits.argmax(-1, false).eq_tensor(y).to_kind(Kind::Int64);
        Ok((to_vec_f32(&loss)?, to_vec_i64(&correct)?))
    })
}

/// Builds the optimizer `cfg` names over `model`'s trainable weights.
pub fn optimizer(model: &Model, cfg: &TrainConfig) -> Result<SavableOptimizer> {
    // The model's trainable tensors in the var store's order, as tch's
    // optimizers take them (the same order, the same bits).
    SavableOptimizer::new(optimizer_rule(cfg), cfg.lr, &model.vs.trainable_variables())
}

/// The update rule `cfg` names, with its momentum and weight decay.
pub fn optimizer_rule(cfg: &TrainConfig) -> Rule {
    let weight_decay = cfg.weight_decay;
    match cfg.optimizer {
        Optimizer::Sgd => Rule::Sgd { momentum: cfg.momentum, weight_decay },
        Optimizer::Adam => Rule::Adam { weight_decay },
        Optimizer::Adamw => Rule::AdamW { weight_decay },
    }
}

/// `loss` as one of `accumulate` batches of an optimizer step adds it to
/// the gradients: divided by their number, left as it is for one batch
/// (dividing by 1 changes no bit, and costs a step two operations).
pub(crate) fn accumulated(loss: &Tensor, accumulate: u64) -> Tensor {
    if accumulate <= 1 {
        return loss.shallow_clone();
    }
    loss / accumulate as f64
}

/// The learning rate at optimizer step `step` (0-based) of `total`.
pub fn learning_rate(cfg: &TrainConfig, step: u64, total: u64) -> f64 {
    scheduled_rate(cfg.lr, cfg, step, total)
}

/// The learning rate at optimizer `step` of `total` of a run of `cfg` but
/// whose base learning rate is `base` (a member of a batch of runs that
/// differ in `lr`): `cfg`'s warm-up and schedule applied to it.
pub fn scheduled_rate(base: f64, cfg: &TrainConfig, step: u64, total: u64) -> f64 {
    let warm =
        if cfg.warmup_steps > 0 && step < cfg.warmup_steps { (step + 1) as f64 / cfg.warmup_steps as f64 } else { 1.0 };
    let after = step.saturating_sub(cfg.warmup_steps);
    let scale = match cfg.schedule {
        Schedule::Constant => 1.0,
        Schedule::Step => cfg.gamma.powi((after / cfg.step_every.max(1)) as i32),
        Schedule::Cosine => {
            let span = total.saturating_sub(cfg.warmup_steps).max(1) as f64;
            0.5 * (1.0 + (std::f64::consts::PI * (after as f64 / span).min(1.0)).cos())
        }
    };
    base * warm * scale
}

/// The steps `checkpoint_steps` and `checkpoint_log` add to the regular
/// checkpoints, for a run of `total_steps` steps.
pub fn checkpoint_steps(cfg: &TrainConfig, total_steps: u64) -> BTreeSet<u64> {
    let mut steps: BTreeSet<u64> = cfg.checkpoint_steps.iter().copied().filter(|&s| s > 0).collect();
    let k = cfg.checkpoint_log;
    if k > 0 && total_steps > 0 {
        let top = (total_steps as f64).ln();
        for i in 0..k {
            let at = if k == 1 { top } else { top * i as f64 / (k - 1) as f64 };
            steps.insert((at.exp().round() as u64).clamp(1, total_steps));
        }
    }
    steps
}

/// Trains `model` on `data` held in memory, in a fresh seeded full shuffle
/// each epoch (the host's own order, for the finetuning oracle and population
/// members); `checkpoint` sees the model at every checkpoint. A nonzero
/// `skip` starts the first epoch that far into its order: a fork continuing
/// the stream of the run it branched from (same `seed`). A fit continued
/// from a saved state draws the orders of the epochs it skips, so the
/// stopped epoch's order is the one it stopped in.
pub fn fit_shuffled<'d>(
    model: &Model,
    data: &'d TensorData,
    cfg: &TrainConfig,
    (seed, skip): (u64, u64),
    checkpoint: &mut dyn FnMut(&Model, Checkpoint, f64) -> Result<()>,
    control: Control<'_, 'd>,
) -> Result<FitSummary> {
    let n = data.y.size()[0] as u64;
    let mut rng = SeedRng::derive(seed, 0x5_4FF1E);
    let layout = tessera_sdk::StorageLayout { examples: n, block_size: n.max(1), bytes_per_example: 0 };
    let mut drawn = 0;
    let mut epoch = |epoch: u64| -> Result<Box<dyn BatchSource + '_>> {
        for _ in drawn..epoch {
            ShuffledOrder::new(n, &mut rng);
        }
        drawn = epoch + 1;
        let mut order = ShuffledOrder::new(n, &mut rng);
        if let (0, Some(ids)) = (epoch, order.0.as_mut()) {
            ids.drain(..skip.min(n) as usize);
        }
        Ok(Box::new(MemorySource::new(Box::new(order), data, layout, Access::Block, 1)))
    };
    let hooks = FitHooks {
        resumed: skip,
        checkpointing: control.checkpointing,
        ..FitHooks::new(&mut epoch, checkpoint, control.cancel)
    };
    fit(model, n, cfg, hooks)
}

/// Trains `model` on `data` in the orders of `sampler` (a plugin's, called
/// with `ctx`), its loss weights applied and each whole epoch checked
/// against its sampling mode, as a `train` unit does without storage.
pub fn fit_sampled<'d>(
    model: &Model,
    data: &'d TensorData,
    cfg: &TrainConfig,
    (sampler, ctx): (&mut crate::plugin::SamplerHandle, &crate::plugin::CallContext),
    checkpoint: &mut dyn FnMut(&Model, Checkpoint, f64) -> Result<()>,
    control: Control<'_, 'd>,
) -> Result<FitSummary> {
    let n = data.y.size()[0] as u64;
    let layout = tessera_sdk::StorageLayout { examples: n, block_size: n.max(1), bytes_per_example: 0 };
    let (id, sampling) = (sampler.id.clone(), sampler.sampling());
    let weights = std::cell::RefCell::new(None);
    let mut epoch = |epoch: u64| -> Result<Box<dyn BatchSource + '_>> {
        let order = sampler.epoch_order(&layout, epoch, ctx)?;
        *weights.borrow_mut() = sampler.example_weights(&layout, epoch, ctx)?;
        Ok(Box::new(MemorySource::new(Box::new(order), data, layout, Access::Block, 1)))
    };
    let hooks = FitHooks {
        sampler: Some((&id, sampling)),
        weights: Some(&weights),
        checkpointing: control.checkpointing,
        ..FitHooks::new(&mut epoch, checkpoint, control.cancel)
    };
    fit(model, n, cfg, hooks)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::ModelConfig;

    // The closure's batches borrow `tensors`: the lifetime must be named.
    #[allow(clippy::needless_lifetimes)]
    fn memory_epochs<'a>(
        tensors: &'a TensorData,
        n: u64,
        access: Access,
        buffer_blocks: usize,
    ) -> impl FnMut(u64) -> Result<Box<dyn BatchSource + 'a>> {
        let layout = tessera_sdk::StorageLayout { examples: n, block_size: 10, bytes_per_example: 24 };
        let mut rng = SeedRng::new(0);
        move |_| {
            Ok(Box::new(MemorySource::new(
                Box::new(ShuffledOrder::new(n, &mut rng)),
                tensors,
                layout,
                access,
                buffer_blocks,
            )))
        }
    }

    #[test]
    fn log_spaced_checkpoints_are_dense_early() {
        let cfg = TrainConfig { checkpoint_log: 5, checkpoint_steps: vec![7, 0], ..TrainConfig::default() };
        let steps: Vec<u64> = checkpoint_steps(&cfg, 10_000).into_iter().collect();
        assert_eq!(steps, vec![1, 7, 10, 100, 1000, 10_000]);
    }

    #[test]
    fn checkpoints_are_strictly_increasing_and_close_each_epoch() {
        let data = crate::data::blobs(90, 4, 3, 3.0, 1).unwrap();
        let model = Model::new(&ModelConfig::default(), &[4], 3, Device::Cpu, 0).unwrap();
        let tensors = TensorData::new(&data, Device::Cpu);
        let cfg = TrainConfig { epochs: 2, batch_size: 10, checkpoint_every: 3, ..TrainConfig::default() };
        let mut epoch = memory_epochs(&tensors, 90, Access::Block, 90);
        let mut seen = Vec::new();
        let mut checkpoint = |_: &Model, cp: Checkpoint, _| {
            seen.push((cp.step, cp.epoch, cp.is_final));
            Ok(())
        };
        let cancel = AtomicBool::new(false);
        let hooks = FitHooks::new(&mut epoch, &mut checkpoint, &cancel);
        let summary = fit(&model, 90, &cfg, hooks).unwrap();
        assert_eq!(summary.steps, 18);
        assert_eq!(summary.irregular_visits, 0);
        // A buffer as large as the data reads each of the 9 blocks once per epoch.
        assert_eq!(summary.epoch_io.iter().map(|io| io.requests).collect::<Vec<_>>(), vec![9, 9]);
        let steps: Vec<u64> = seen.iter().map(|c| c.0).collect();
        assert_eq!(steps, vec![3, 6, 9, 12, 15, 18]);
        assert_eq!((seen[2].1, seen[5].1), (1.0, 2.0));
        assert_eq!(seen.iter().filter(|c| c.2).count(), 1);
        assert!(seen[5].2);
    }

    #[test]
    fn schedules_warm_up_and_decay() {
        let cfg = TrainConfig { lr: 1.0, warmup_steps: 4, ..TrainConfig::default() };
        assert_eq!(learning_rate(&cfg, 0, 100), 0.25);
        assert_eq!(learning_rate(&cfg, 3, 100), 1.0);
        assert_eq!(learning_rate(&cfg, 50, 100), 1.0);
        let step =
            TrainConfig { lr: 1.0, schedule: Schedule::Step, step_every: 10, gamma: 0.5, ..TrainConfig::default() };
        assert_eq!((learning_rate(&step, 9, 100), learning_rate(&step, 25, 100)), (1.0, 0.25));
        let cosine = TrainConfig { lr: 2.0, schedule: Schedule::Cosine, ..TrainConfig::default() };
        assert_eq!(learning_rate(&cosine, 0, 100), 2.0);
        assert!((learning_rate(&cosine, 50, 100) - 1.0).abs() < 1e-12);
        assert!(learning_rate(&cosine, 100, 100).abs() < 1e-12);
    }

    #[test]
    fn accumulation_and_a_budget_count_steps_and_examples() {
        let data = crate::data::blobs(100, 4, 2, 3.0, 1).unwrap();
        let model = Model::new(&ModelConfig::default(), &[4], 2, Device::Cpu, 0).unwrap();
        let tensors = TensorData::new(&data, Device::Cpu);
        let cfg =
            TrainConfig { epochs: 3, batch_size: 10, accumulate: 4, max_examples: Some(150), ..TrainConfig::default() };
        let mut epoch = memory_epochs(&tensors, 100, Access::Block, 1);
        let mut finals = Vec::new();
        let mut checkpoint = |_: &Model, cp: Checkpoint, _| {
            finals.push((cp.examples_seen, cp.is_final));
            Ok(())
        };
        let cancel = AtomicBool::new(false);
        let hooks = FitHooks::new(&mut epoch, &mut checkpoint, &cancel);
        let summary = fit(&model, 100, &cfg, hooks).unwrap();
        // 150 examples in micro-batches of 10, 4 per step: steps after 40, 80,
        // 100 (end of epoch 1), 140 and 150 (the budget).
        assert_eq!((summary.examples_seen, summary.steps), (150, 5));
        assert_eq!(finals, vec![(100, false), (150, true)]);
    }

    #[test]
    fn training_reduces_the_loss() {
        let data = crate::data::blobs(300, 4, 3, 3.0, 2).unwrap();
        let model = Model::new(&ModelConfig::default(), &[4], 3, Device::Cpu, 0).unwrap();
        let tensors = TensorData::new(&data, Device::Cpu);
        let before = evaluate(&model, &tensors);
        let cfg = TrainConfig { epochs: 3, ..TrainConfig::default() };
        let mut epoch = memory_epochs(&tensors, 300, Access::Example, 1);
        let mut checkpoint = |_: &Model, _, _| Ok(());
        let cancel = AtomicBool::new(false);
        let hooks = FitHooks::new(&mut epoch, &mut checkpoint, &cancel);
        let summary = fit(&model, 300, &cfg, hooks).unwrap();
        assert_eq!(summary.epoch_io[0].requests, 300, "random access: one request per example");
        let after = evaluate(&model, &tensors);
        assert!(after.loss < before.loss / 2.0, "{before:?} -> {after:?}");
        assert!(after.accuracy > 0.9, "{after:?}");
    }
}

//! Phase 6 of a `train` unit: training in the sampler's order, with the
//! metrics observing at every checkpoint and the sampler at every epoch's
//! start. What the hooks share lives in [`FitLog`]; what they observe with
//! in [`Observing`].

use std::cell::{Cell, RefCell};

use crate::error::{bail, Result};
use tch::Device;
use tessera_sdk::{observation, Candidates, Checkpoint, Chosen, Observation, ObservationRequest, StorageLayout};

use super::{Stored, TrainJob};
use crate::data::Splits;
use crate::manifest::StorageConfig;
use crate::model::Model;
use crate::run::progress::Reporter;
use crate::run::setup::progress_bar;
use crate::storage::{BlockLoader, EpochOrder};
use crate::train::{
    self, BatchSource, CurvePoint, Evaluation, FitHooks, FitSummary, MemorySource, ShardSource, StepLog, StepSelection,
    StorageView, TensorData,
};

impl TrainJob<'_> {
    /// Trains `model` in the sampler's order; the summary and the test curve.
    pub(super) fn fit(
        &mut self,
        model: &Model,
        stored: &Stored,
        reference: Option<&Model>,
    ) -> Result<(FitSummary, Vec<CurvePoint>)> {
        let requests = self.observation_requests(stored)?;
        let candidates = self.step_candidates()?;
        let tensors = FitTensors::new(&self.splits, self.train_on_disk, self.device);
        let named = tensors.named();
        let reference = reference_outputs(reference, &requests.all(), &named)?;
        let (layout, schedule, sampler_ctx) = (self.layout, self.schedule(candidates), self.ctx("sampler"));
        let batches = Batches::new(self, stored, tensors.train.as_ref());
        let steps = batches.steps_per_epoch(self.draw(candidates)) * self.s.train.epochs;
        let bar = progress_bar(self.options, steps, self.variant.name.clone());
        // progress.json goes into the unit's folder, beside `work/` (whose
        // files collect merges into the run folder).
        let reporter = Reporter::new(
            &self.variant.name,
            self.unit_dir.parent().unwrap_or(self.unit_dir),
            bar.as_ref(),
            (schedule.steps_per_epoch * schedule.epochs, schedule.epochs),
        );
        let log = FitLog::new(&requests, layout);
        let observing = Observing { splits: &self.splits, tensors: &named, reference: &reference };
        let (sampler_id, sampling) = (self.sampler.id.clone(), self.sampler.sampling());
        let sampler = RefCell::new(&mut self.sampler);
        let mut finetuning = self.finetuner.as_mut().filter(|f| !f.requests.is_empty());
        let weights = RefCell::new(None);
        let mut epoch = |epoch: u64| -> tessera_torch::Result<Box<dyn BatchSource + '_>> {
            if let Some(finetuning) = finetuning.as_mut() {
                let observations = log.observe(model, &observing, &requests.finetuner, &log.finetuner_steps)?;
                finetuning.revise(model, &log.epoch_checkpoint(epoch), &observations)?;
            }
            let mut sampler = sampler.borrow_mut();
            if !requests.sampler.is_empty() {
                let observations = log.observe(model, &observing, &requests.sampler, &log.sampler_steps)?;
                sampler.observe(&schedule, &log.epoch_checkpoint(epoch), &observations, &sampler_ctx)?;
            }
            let order = sampler.epoch_order(&layout, epoch, &sampler_ctx)?;
            *weights.borrow_mut() = sampler.example_weights(&layout, epoch, &sampler_ctx)?;
            Ok(batches.source(Box::new(order)))
        };
        let mut choose = |candidates: &Candidates| -> tessera_torch::Result<Chosen> {
            Ok(sampler.borrow_mut().select(candidates, &sampler_ctx)?)
        };
        let mut visit = |epoch: u64, ids: &[u64]| log.visit(epoch, ids);
        let mut record =
            |step: u64, ids: &[u64], losses: &[f32], correct: &[i64]| log.record(step, ids, losses, correct);
        let mut curve: Vec<CurvePoint> = Vec::new();
        let (metrics, metric_ctx) = (&mut self.metrics, &self.metric_ctx);
        let mut checkpoint = |model: &Model, cp: Checkpoint, train_loss: f64| -> tessera_torch::Result<()> {
            log.progress.set((cp.step, cp.examples_seen));
            let point = curve_point(&cp, train_loss, train::evaluate(model, &tensors.test));
            reporter.checkpoint(cp.step, cp.epoch, train_loss, point.test_accuracy, cp.is_final);
            curve.push(point);
            let observations = log.observe(model, &observing, &requests.metrics, &log.metric_steps)?;
            for (metric, ctx) in metrics.iter_mut().zip(metric_ctx) {
                metric.observe(&cp, &observations, ctx)?;
            }
            Ok(())
        };
        let hooks = FitHooks {
            progress: bar.as_ref(),
            visit: if log.wants_order { Some(&mut visit) } else { None },
            per_step: if log.wants_steps() { Some(&mut record) } else { None },
            sampler: Some((&sampler_id, sampling)),
            weights: Some(&weights),
            select: candidates.map(|b| StepSelection { candidates: b as usize, choose: &mut choose }),
            ..FitHooks::new(&mut epoch, &mut checkpoint, &self.options.cancel)
        };
        let summary = train::fit(model, layout.examples, &self.s.train, hooks)?;
        if let Some(bar) = bar {
            bar.finish_and_clear();
        }
        Ok((summary, curve))
    }

    /// The observations the metrics and the sampler ask for, the training
    /// split read into memory when one of them observes it.
    fn observation_requests(&mut self, stored: &Stored) -> Result<FitRequests> {
        let mut metrics: Vec<ObservationRequest> = Vec::new();
        for metric in &self.metrics {
            metrics.extend(metric.requires()?);
        }
        if metrics.iter().any(|r| r.split.as_str() == "train") {
            self.train_in_memory(stored, "a metric observing the training split")?;
        }
        let sampler = self.sampler.requires()?;
        if !sampler.is_empty() {
            self.train_in_memory(stored, "a sampler observing the training split")?;
        }
        let finetuner = self.finetuner.as_ref().map(|f| f.requests.clone()).unwrap_or_default();
        Ok(FitRequests { metrics, sampler, finetuner })
    }

    /// The sampler's candidates per step, if it selects per step: at least
    /// `train.batch_size`, or the variant fails naming the sampler.
    fn step_candidates(&self) -> Result<Option<u32>> {
        let candidates = self.sampler.candidates()?;
        if let Some(b) = candidates.filter(|&b| (b as usize) < self.s.train.batch_size) {
            bail!(
                "{} draws {b} candidates per step, fewer than train.batch_size = {}: raise its `candidates` or lower the batch size",
                self.sampler.id,
                self.s.train.batch_size
            );
        }
        Ok(candidates)
    }

    /// Examples drawn from the order per batch: the sampler's candidates per
    /// step when it selects, else `train.batch_size`.
    fn draw(&self, candidates: Option<u32>) -> usize {
        candidates.map_or(self.s.train.batch_size, |b| b as usize)
    }

    /// The schedule the sampler is told of: optimizer steps per epoch count
    /// accumulated batches once (with per-step selection, a step draws its
    /// candidates).
    fn schedule(&self, candidates: Option<u32>) -> tessera_sdk::Schedule {
        let train = &self.s.train;
        let per_step = self.draw(candidates).max(1) as u64 * train.accumulate.max(1);
        tessera_sdk::Schedule {
            epochs: train.epochs,
            batch_size: train.batch_size as u64,
            steps_per_epoch: self.layout.examples.div_ceil(per_step),
        }
    }
}

/// What the metrics, the sampler and the finetuner ask to observe.
struct FitRequests {
    metrics: Vec<ObservationRequest>,
    sampler: Vec<ObservationRequest>,
    finetuner: Vec<ObservationRequest>,
}

impl FitRequests {
    /// All three lists, the metrics' first.
    fn all(&self) -> Vec<ObservationRequest> {
        self.metrics.iter().chain(&self.sampler).chain(&self.finetuner).cloned().collect()
    }
}

/// The splits on the device: the training split only when it is in memory.
struct FitTensors {
    train: Option<TensorData>,
    validation: TensorData,
    test: TensorData,
}

impl FitTensors {
    fn new(splits: &Splits, train_on_disk: bool, device: Device) -> Self {
        FitTensors {
            train: (!train_on_disk).then(|| TensorData::new(&splits.train, device)),
            validation: TensorData::new(&splits.validation, device),
            test: TensorData::new(&splits.test, device),
        }
    }

    /// The loaded splits by name, as observations look them up.
    fn named(&self) -> Vec<(&'static str, &TensorData)> {
        let train = self.train.as_ref().map(|t| ("train", t));
        train.into_iter().chain([("validation", &self.validation), ("test", &self.test)]).collect()
    }
}

/// Where an epoch's batches come from: the block loader when the training
/// split is stored, else memory through the modeled buffer.
struct Batches<'b> {
    loader: Option<BlockLoader>,
    train: Option<&'b TensorData>,
    shape: Vec<usize>,
    device: Device,
    layout: StorageLayout,
    storage: StorageConfig,
}

impl<'b> Batches<'b> {
    fn new(job: &TrainJob, stored: &Stored, train: Option<&'b TensorData>) -> Self {
        let storage = job.s.storage.clone();
        let loader = stored
            .set
            .as_ref()
            .map(|set| BlockLoader::new(set.clone(), storage.buffer_blocks, storage.access, storage.prefetch));
        Batches {
            loader,
            train,
            shape: job.splits.train.shape.clone(),
            device: job.device,
            layout: job.layout,
            storage,
        }
    }

    /// Batches per epoch (the progress bar's unit).
    fn steps_per_epoch(&self, batch_size: usize) -> u64 {
        self.layout.examples.div_ceil(batch_size.max(1) as u64)
    }

    /// One epoch's batches in `order`.
    fn source(&self, order: Box<dyn EpochOrder + Send>) -> Box<dyn BatchSource + 'b> {
        match &self.loader {
            Some(loader) => Box::new(ShardSource::new(loader.start(order), &self.shape, self.device)),
            None => Box::new(MemorySource::new(
                order,
                self.train.expect("in memory without shards"),
                self.layout,
                self.storage.access,
                self.storage.buffer_blocks,
            )),
        }
    }
}

/// What every observation is computed from besides the model.
struct Observing<'a> {
    splits: &'a Splits,
    tensors: &'a [(&'static str, &'a TensorData)],
    reference: &'a train::ReferenceOutputs,
}

/// What the hooks of one fit share: the current epoch's order, the
/// per-example step logs (since the last checkpoint for the metrics, since
/// the last epoch for the sampler and the finetuner), and where training stood at the last
/// checkpoint.
struct FitLog {
    layout: StorageLayout,
    /// The ids of the current epoch so far, for the `order` observation.
    epoch_order: RefCell<(u64, Vec<u64>)>,
    /// (step, examples seen) at the last checkpoint.
    progress: Cell<(u64, u64)>,
    metric_steps: RefCell<StepLog>,
    sampler_steps: RefCell<StepLog>,
    finetuner_steps: RefCell<StepLog>,
    metrics_want_steps: bool,
    sampler_wants_steps: bool,
    finetuner_wants_steps: bool,
    wants_order: bool,
}

impl FitLog {
    fn new(requests: &FitRequests, layout: StorageLayout) -> Self {
        let wants_steps =
            |r: &[ObservationRequest]| r.iter().any(|r| observation::STEP_KINDS.contains(&r.kind.as_str()));
        FitLog {
            layout,
            epoch_order: RefCell::default(),
            progress: Cell::default(),
            metric_steps: RefCell::default(),
            sampler_steps: RefCell::default(),
            finetuner_steps: RefCell::default(),
            metrics_want_steps: wants_steps(&requests.metrics),
            sampler_wants_steps: wants_steps(&requests.sampler),
            finetuner_wants_steps: wants_steps(&requests.finetuner),
            wants_order: requests.all().iter().any(|r| r.kind.as_str() == observation::ORDER),
        }
    }

    /// Whether anyone observes per-example steps.
    fn wants_steps(&self) -> bool {
        self.metrics_want_steps || self.sampler_wants_steps || self.finetuner_wants_steps
    }

    /// Appends a batch's ids to the epoch's order.
    fn visit(&self, epoch: u64, ids: &[u64]) {
        let mut current = self.epoch_order.borrow_mut();
        if current.0 != epoch {
            *current = (epoch, Vec::with_capacity(self.layout.examples as usize));
        }
        current.1.extend_from_slice(ids);
    }

    /// Logs a batch's per-example losses for whoever observes them.
    fn record(&self, step: u64, ids: &[u64], losses: &[f32], correct: &[i64]) {
        for (wants, log) in [
            (self.metrics_want_steps, &self.metric_steps),
            (self.sampler_wants_steps, &self.sampler_steps),
            (self.finetuner_wants_steps, &self.finetuner_steps),
        ] {
            if wants {
                log.borrow_mut().record(step, ids, losses, correct);
            }
        }
    }

    /// The checkpoint the sampler and the finetuner observe at the start of `epoch`.
    fn epoch_checkpoint(&self, epoch: u64) -> Checkpoint {
        let (step, examples_seen) = self.progress.get();
        Checkpoint { step, epoch: epoch as f64, examples_seen, is_final: false }
    }

    /// The observations `requests` asks for, from `steps` (emptied after).
    fn observe(
        &self,
        model: &Model,
        observing: &Observing,
        requests: &[ObservationRequest],
        steps: &RefCell<StepLog>,
    ) -> tessera_torch::Result<Vec<Observation>> {
        let observations = {
            let (order, steps) = (self.epoch_order.borrow(), steps.borrow());
            let view = StorageView { order: &order.1, block_size: self.layout.block_size, steps: &steps };
            train::observe(model, observing.splits, observing.tensors, view, observing.reference, requests)?
        };
        steps.borrow_mut().clear();
        Ok(observations)
    }
}

/// A point of the test curve at `cp`.
fn curve_point(cp: &Checkpoint, train_loss: f64, eval: Evaluation) -> CurvePoint {
    CurvePoint {
        step: cp.step,
        epoch: cp.epoch,
        examples_seen: cp.examples_seen,
        train_loss,
        test_accuracy: eval.accuracy,
        test_loss: eval.loss,
    }
}

/// The reference classifier's predictions and losses on each split a
/// metric or the sampler asks about, computed once.
fn reference_outputs(
    reference: Option<&Model>,
    requests: &[ObservationRequest],
    tensors: &[(&str, &TensorData)],
) -> Result<train::ReferenceOutputs> {
    let mut outputs = train::ReferenceOutputs::new();
    let Some(l) = reference else { return Ok(outputs) };
    let kinds = [observation::REFERENCE_PREDICTIONS, observation::REFERENCE_LOSS];
    for r in requests.iter().filter(|r| kinds.contains(&r.kind.as_str())) {
        let Some((_, data)) = tensors.iter().find(|(name, _)| *name == r.split.as_str()) else {
            bail!("split `{}` is not loaded (known: train, validation, test)", r.split);
        };
        outputs.insert((r.split.to_string(), r.kind.to_string()), train::reference_array(l, &r.kind, data)?);
    }
    Ok(outputs)
}

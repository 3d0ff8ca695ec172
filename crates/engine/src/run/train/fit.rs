//! Phase 6 of a `train` unit: training in the sampler's order, with the
//! metrics observing at every checkpoint and the sampler at every epoch's
//! start. What the hooks share lives in [`FitLog`]; what they observe with
//! in [`Observing`].

use std::cell::{Cell, RefCell};

use crate::error::{bail, invalid, Result};
use tch::Device;
use tessera_sdk::{observation, Candidates, Checkpoint, Chosen, Observation, ObservationRequest, StorageLayout};

use super::resume::{self, optimizer_file, FinetunerState, Kept, Resuming, UnitState};
use super::{Stored, TrainJob};
use crate::data::Splits;
use crate::manifest::StorageConfig;
use crate::model::Model;
use crate::plugin::{CallContext, MetricHandle, OrderStream, SamplerHandle};
use crate::run::checkpoints::Saved;
use crate::run::progress::Reporter;
use crate::run::setup::progress_bar;
use crate::storage::{BlockLoader, EpochOrder};
use crate::train::{
    self, BatchSource, Checkpointing, CurvePoint, Evaluation, FitHooks, FitSummary, MemorySource, Resumed, Saving,
    ShardSource, StepLog, StepSelection, StorageView, TensorData,
};
use indicatif::ProgressBar;
use std::path::Path;

impl TrainJob<'_> {
    /// Trains `model` in the sampler's order (continuing from the unit's
    /// newest saved state, if it has one); the summary and the test curve.
    pub(super) fn fit(
        &mut self,
        model: &mut Model,
        stored: &Stored,
        reference: Option<&Model>,
    ) -> Result<(FitSummary, Vec<CurvePoint>)> {
        let inputs = self.fit_inputs(model, stored, reference)?;
        let (model, named) = (&*model, inputs.tensors.named());
        let (requests, candidates, resumed) = (&inputs.requests, inputs.candidates, inputs.resumed);
        let (layout, schedule, sampler_ctx) = (self.layout, self.schedule(candidates), self.ctx("sampler"));
        let batches = Batches::new(self, stored, inputs.tensors.train.as_ref());
        let steps = batches.steps_per_epoch(self.draw(candidates)) * self.s.train.epochs;
        let bar = progress_bar(self.options, steps, self.variant.name.clone());
        let reporter = reporter((self.variant, self.unit_dir), bar.as_ref(), &schedule);
        let log = FitLog::new(requests, layout);
        let observing = Observing { splits: &self.splits, tensors: &named, reference: &inputs.reference };
        let before = BeforeEpoch { log: &log, observing: &observing, requests, schedule, ctx: &sampler_ctx };
        let (sampler_id, sampling, resuming) = (self.sampler.id.clone(), self.sampler.sampling(), self.resuming.take());
        let sampler = RefCell::new(&mut self.sampler);
        let finetuning = RefCell::new(self.finetuner.as_mut().filter(|f| !f.requests.is_empty()));
        let (weights, sampler_at_epoch) = (RefCell::new(None), RefCell::new(None::<Kept>));
        let mut continuing = resumed.as_ref().map(|(state, _)| (state.sampler_at_epoch.clone(), state.sampler.clone()));
        let mut epoch = |epoch: u64| -> tessera_torch::Result<Box<dyn BatchSource + '_>> {
            let mut sampler = sampler.borrow_mut();
            if let Some((at_epoch, now)) = continuing.take() {
                let order = stopped_epoch(&mut sampler, (&at_epoch, &now), (&layout, epoch, &sampler_ctx), &weights)?;
                *sampler_at_epoch.borrow_mut() = Some(at_epoch);
                return Ok(batches.source(Box::new(order)));
            }
            before.observe(model, epoch, &mut sampler, finetuning.borrow_mut().as_deref_mut())?;
            if inputs.can_save {
                *sampler_at_epoch.borrow_mut() = Kept::from_saved(sampler.save_state()?);
            }
            let order = epoch_order(&mut sampler, (&layout, epoch, &sampler_ctx), &weights)?;
            Ok(batches.source(Box::new(order)))
        };
        let mut choose = |candidates: &Candidates| -> tessera_torch::Result<Chosen> {
            Ok(sampler.borrow_mut().select(candidates, &sampler_ctx)?)
        };
        let mut visit = |epoch: u64, ids: &[u64]| log.visit(epoch, ids);
        let mut record = |step, ids: &[u64], losses: &[f32], correct: &[i64]| log.record(step, ids, losses, correct);
        let curve: RefCell<Vec<CurvePoint>> = RefCell::default();
        let (metrics, metric_ctx) = (RefCell::new(&mut self.metrics), &self.metric_ctx);
        let observers = (&log, &curve, bar.as_ref());
        resumed.iter().try_for_each(|(state, _)| restore_observers(state, observers, &mut metrics.borrow_mut()))?;
        let mut checkpoint = |model: &Model, cp: Checkpoint, train_loss: f64| -> tessera_torch::Result<()> {
            log.progress.set((cp.step, cp.examples_seen));
            let point = curve_point(&cp, train_loss, train::evaluate(model, &inputs.tensors.test));
            reporter.checkpoint(cp.step, cp.epoch, train_loss, point.test_accuracy, cp.is_final);
            curve.borrow_mut().push(point);
            let observations = log.observe(model, &observing, &requests.metrics, &log.metric_steps)?;
            for (metric, ctx) in metrics.borrow_mut().iter_mut().zip(metric_ctx) {
                metric.observe(&cp, &observations, ctx)?;
            }
            Ok(())
        };
        let mut save = |saving: Saving| {
            let finetuning = finetuning.borrow();
            let components =
                Components::of(sampler_at_epoch.borrow().clone(), (&sampler, &metrics), finetuning.as_deref());
            save_unit_state(resuming.as_ref(), &saving, &curve, &log, components)
        };
        let hooks = FitHooks {
            progress: bar.as_ref(),
            visit: if log.wants_order { Some(&mut visit) } else { None },
            per_step: if log.wants_steps() { Some(&mut record) } else { None },
            sampler: Some((&sampler_id, sampling)),
            weights: Some(&weights),
            select: candidates.map(|b| StepSelection { candidates: b as usize, choose: &mut choose }),
            checkpointing: inputs.can_save.then(|| Checkpointing {
                save: &mut save,
                every: resuming.as_ref().and_then(|r| r.every),
                resume: resumed.map(|(state, saved)| Resumed { state: state.fit, optimizer: optimizer_file(&saved) }),
            }),
            ..FitHooks::new(&mut epoch, &mut checkpoint, &self.options.cancel)
        };
        let summary = train::fit(model, layout.examples, &self.s.train, hooks)?;
        bar.iter().for_each(ProgressBar::finish_and_clear);
        Ok((summary, curve.into_inner()))
    }

    /// What training needs before it starts: the observations asked for,
    /// the candidates per step, whether the state can be saved and the saved
    /// state to continue from (the model's weights restored from it), the
    /// splits on the device and the reference classifier's outputs.
    pub(super) fn fit_inputs(
        &mut self,
        model: &mut Model,
        stored: &Stored,
        reference: Option<&Model>,
    ) -> Result<FitInputs> {
        let requests = self.observation_requests(stored)?;
        let candidates = self.step_candidates()?;
        let can_save = self.saving_allowed()?;
        let resumed = if can_save { self.resumed_state(model)? } else { None };
        let tensors = FitTensors::new(&self.splits, self.train_on_disk, self.device);
        let reference = reference_outputs(reference, &requests.all(), &tensors.named())?;
        Ok(FitInputs { requests, candidates, can_save, resumed, tensors, reference })
    }

    /// Whether this unit's state can be saved: every component that keeps
    /// state through training can save its own (asked once, before
    /// training). If not, a warning names the one that cannot: a stopped
    /// unit then starts over from step 0.
    fn saving_allowed(&self) -> Result<bool> {
        if self.resuming.is_none() {
            return Ok(false);
        }
        let unsaved = self.unsaved_component()?;
        if let Some(id) = &unsaved {
            log::warn!(
                "{}: {id} cannot save its state (SDK 0.4 `save_state`): a stopped unit starts over from step 0",
                self.variant.name
            );
        }
        Ok(unsaved.is_none())
    }

    /// The first component (the sampler, the metrics, then a finetuner that
    /// revises its selection during training) that cannot save its state.
    pub(super) fn unsaved_component(&self) -> Result<Option<String>> {
        if Kept::from_saved(self.sampler.save_state()?).is_none() {
            return Ok(Some(self.sampler.id.clone()));
        }
        for metric in &self.metrics {
            if Kept::from_saved(metric.save_state()?).is_none() {
                return Ok(Some(metric.id.clone()));
            }
        }
        let revising = self.finetuner.as_ref().filter(|f| !f.requests.is_empty());
        if let Some(finetuning) = revising {
            if Kept::from_saved(finetuning.handle.save_state()?).is_none() {
                return Ok(Some(finetuning.handle.id.clone()));
            }
        }
        Ok(None)
    }

    /// The newest saved state of this unit, with the model's weights and
    /// libtorch's generator restored from it; none when it has none.
    fn resumed_state(&mut self, model: &mut Model) -> Result<Option<(UnitState, Saved)>> {
        let Some(resuming) = self.resuming.as_ref() else { return Ok(None) };
        let Some((state, saved)) = resuming.load()? else { return Ok(None) };
        model.load(&saved.dir.join(resume::MODEL))?;
        tessera_torch::optim::set_cpu_rng_state(&state.rng)?;
        match (self.finetuner.as_mut().filter(|f| !f.requests.is_empty()), &state.finetuner) {
            (Some(finetuning), Some(saved)) => finetuning.restore(model, saved)?,
            (None, None) => {}
            _ => bail!("the saved training state and this unit disagree on a finetuner that revises its selection"),
        }
        log::info!("{}: continuing from its state saved at step {}", self.variant.name, state.fit.step);
        Ok(Some((state, saved)))
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
    pub(super) fn step_candidates(&self) -> Result<Option<u32>> {
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
    pub(super) fn schedule(&self, candidates: Option<u32>) -> tessera_sdk::Schedule {
        let train = &self.s.train;
        let per_step = self.draw(candidates).max(1) as u64 * train.accumulate.max(1);
        tessera_sdk::Schedule {
            epochs: train.epochs,
            batch_size: train.batch_size as u64,
            steps_per_epoch: self.layout.examples.div_ceil(per_step),
        }
    }
}

/// What [`TrainJob::fit_inputs`] prepares.
pub(super) struct FitInputs {
    pub(super) requests: FitRequests,
    pub(super) candidates: Option<u32>,
    can_save: bool,
    resumed: Option<(UnitState, Saved)>,
    pub(super) tensors: FitTensors,
    pub(super) reference: train::ReferenceOutputs,
}

/// What happens before each epoch's order: the finetuner's revision and
/// the sampler's observations, on the model as training left it.
pub(super) struct BeforeEpoch<'b> {
    pub(super) log: &'b FitLog,
    pub(super) observing: &'b Observing<'b>,
    pub(super) requests: &'b FitRequests,
    pub(super) schedule: tessera_sdk::Schedule,
    pub(super) ctx: &'b CallContext,
}

impl BeforeEpoch<'_> {
    pub(super) fn observe(
        &self,
        model: &Model,
        epoch: u64,
        sampler: &mut SamplerHandle,
        finetuning: Option<&mut super::finetune::Finetuning>,
    ) -> tessera_torch::Result<()> {
        let (log, observing, requests) = (self.log, self.observing, self.requests);
        if let Some(finetuning) = finetuning {
            let observations = log.observe(model, observing, &requests.finetuner, &log.finetuner_steps)?;
            finetuning.revise(model, &log.epoch_checkpoint(epoch), &observations)?;
        }
        if !requests.sampler.is_empty() {
            let observations = log.observe(model, observing, &requests.sampler, &log.sampler_steps)?;
            sampler.observe(&self.schedule, &log.epoch_checkpoint(epoch), &observations, self.ctx)?;
        }
        Ok(())
    }
}

/// What the metrics, the sampler and the finetuner ask to observe.
pub(super) struct FitRequests {
    pub(super) metrics: Vec<ObservationRequest>,
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
pub(super) struct FitTensors {
    pub(super) train: Option<TensorData>,
    validation: TensorData,
    pub(super) test: TensorData,
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
    pub(super) fn named(&self) -> Vec<(&'static str, &TensorData)> {
        let train = self.train.as_ref().map(|t| ("train", t));
        train.into_iter().chain([("validation", &self.validation), ("test", &self.test)]).collect()
    }
}

/// Where an epoch's batches come from: the block loader when the training
/// split is stored, else memory through the modeled buffer.
pub(super) struct Batches<'b> {
    loader: Option<BlockLoader>,
    train: Option<&'b TensorData>,
    shape: Vec<usize>,
    device: Device,
    layout: StorageLayout,
    storage: StorageConfig,
}

impl<'b> Batches<'b> {
    pub(super) fn new(job: &TrainJob, stored: &Stored, train: Option<&'b TensorData>) -> Self {
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
    pub(super) fn steps_per_epoch(&self, batch_size: usize) -> u64 {
        self.layout.examples.div_ceil(batch_size.max(1) as u64)
    }

    /// One epoch's batches in `order`.
    pub(super) fn source(&self, order: Box<dyn EpochOrder + Send>) -> Box<dyn BatchSource + 'b> {
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
pub(super) struct Observing<'a> {
    pub(super) splits: &'a Splits,
    pub(super) tensors: &'a [(&'static str, &'a TensorData)],
    pub(super) reference: &'a train::ReferenceOutputs,
}

/// What the hooks of one fit share: the current epoch's order, the
/// per-example step logs (since the last checkpoint for the metrics, since
/// the last epoch for the sampler and the finetuner), and where training stood at the last
/// checkpoint.
pub(super) struct FitLog {
    layout: StorageLayout,
    /// The ids of the current epoch so far, for the `order` observation.
    epoch_order: RefCell<(u64, Vec<u64>)>,
    /// (step, examples seen) at the last checkpoint.
    pub(super) progress: Cell<(u64, u64)>,
    pub(super) metric_steps: RefCell<StepLog>,
    pub(super) sampler_steps: RefCell<StepLog>,
    finetuner_steps: RefCell<StepLog>,
    metrics_want_steps: bool,
    sampler_wants_steps: bool,
    finetuner_wants_steps: bool,
    pub(super) wants_order: bool,
}

impl FitLog {
    pub(super) fn new(requests: &FitRequests, layout: StorageLayout) -> Self {
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

    /// Where a saved state left the hooks' logs (the epoch's order is
    /// rebuilt as the resumed fit skips its batches).
    fn restore(&self, state: &UnitState) {
        self.progress.set(state.progress);
        *self.metric_steps.borrow_mut() = state.metric_steps.clone();
        *self.sampler_steps.borrow_mut() = state.sampler_steps.clone();
        *self.finetuner_steps.borrow_mut() = state.finetuner_steps.clone();
    }

    /// Whether anyone observes per-example steps.
    pub(super) fn wants_steps(&self) -> bool {
        self.metrics_want_steps || self.sampler_wants_steps || self.finetuner_wants_steps
    }

    /// Appends a batch's ids to the epoch's order.
    pub(super) fn visit(&self, epoch: u64, ids: &[u64]) {
        let mut current = self.epoch_order.borrow_mut();
        if current.0 != epoch {
            *current = (epoch, Vec::with_capacity(self.layout.examples as usize));
        }
        current.1.extend_from_slice(ids);
    }

    /// Logs a batch's per-example losses for whoever observes them.
    pub(super) fn record(&self, step: u64, ids: &[u64], losses: &[f32], correct: &[i64]) {
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
    pub(super) fn observe(
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

/// The stopped epoch's order again, from the sampler as it was at that
/// epoch's start (its loss weights too), then the sampler as it was when stopped.
pub(super) fn stopped_epoch(
    sampler: &mut SamplerHandle,
    (at_epoch, now): (&Kept, &Kept),
    (layout, epoch, ctx): (&StorageLayout, u64, &CallContext),
    weights: &RefCell<Option<Vec<f32>>>,
) -> tessera_torch::Result<OrderStream> {
    load_kept(sampler, at_epoch)?;
    let order = epoch_order(sampler, (layout, epoch, ctx), weights)?;
    load_kept(sampler, now)?;
    Ok(order)
}

/// The sampler's order of `epoch`, its loss weights set in `weights`.
pub(super) fn epoch_order(
    sampler: &mut SamplerHandle,
    (layout, epoch, ctx): (&StorageLayout, u64, &CallContext),
    weights: &RefCell<Option<Vec<f32>>>,
) -> tessera_torch::Result<OrderStream> {
    let order = sampler.epoch_order(layout, epoch, ctx)?;
    *weights.borrow_mut() = sampler.example_weights(layout, epoch, ctx)?;
    Ok(order)
}

/// The hooks' logs, the curve, the progress bar and the metrics as a saved
/// state left them.
fn restore_observers(
    state: &UnitState,
    (log, curve, bar): (&FitLog, &RefCell<Vec<CurvePoint>>, Option<&ProgressBar>),
    metrics: &mut [MetricHandle],
) -> tessera_torch::Result<()> {
    log.restore(state);
    *curve.borrow_mut() = state.curve.clone();
    if let Some(bar) = bar {
        bar.set_position(state.fit.step);
    }
    for (metric, kept) in metrics.iter_mut().zip(&state.metrics) {
        if let Some(bytes) = kept.bytes() {
            metric.load_state(bytes)?;
        }
    }
    Ok(())
}

/// Saves the unit's state at a step boundary (where it has a place to go);
/// a state that cannot be written is a warning: training goes on, the
/// previous state stays, and the hook says it saved nothing.
fn save_unit_state(
    resuming: Option<&Resuming>,
    saving: &Saving,
    curve: &RefCell<Vec<CurvePoint>>,
    log: &FitLog,
    components: Components,
) -> tessera_torch::Result<bool> {
    let Some(resuming) = resuming else { return Ok(false) };
    let state = match unit_state(saving, curve, log, components) {
        Ok(state) => state,
        Err(e) => {
            log::warn!("the training state is not saved: {e}");
            return Ok(false);
        }
    };
    let written = resuming.save(&state, |model_file, optimizer_file| {
        saving.model.save(model_file)?;
        saving.optimizer.save(optimizer_file)
    });
    match &written {
        Ok(()) => log::info!("saved the training state at step {}", state.fit.step),
        Err(e) => log::warn!("the training state at step {} is not saved: {}", state.fit.step, e.chain()),
    }
    Ok(written.is_ok())
}

/// The reporter of progress: `progress.json` goes into the unit's folder,
/// beside `work/` (whose files collect merges into the run folder).
pub(super) fn reporter<'r>(
    (variant, work): (&'r crate::manifest::Variant, &'r Path),
    bar: Option<&'r ProgressBar>,
    schedule: &tessera_sdk::Schedule,
) -> Reporter<'r> {
    let steps = (schedule.steps_per_epoch * schedule.epochs, schedule.epochs);
    Reporter::new(&variant.name, work.parent().unwrap_or(work), bar, steps)
}

/// Loads a component's kept state into the sampler (nothing for a stateless one).
pub(super) fn load_kept(sampler: &mut SamplerHandle, kept: &Kept) -> tessera_torch::Result<()> {
    if let Some(bytes) = kept.bytes() {
        sampler.load_state(bytes)?;
    }
    Ok(())
}

/// The components whose states a saved state keeps.
struct Components<'c, 'h> {
    /// The sampler as it was when asked for this epoch's order.
    sampler_at_epoch: Option<Kept>,
    sampler: &'c RefCell<&'h mut SamplerHandle>,
    metrics: &'c RefCell<&'h mut Vec<MetricHandle>>,
    /// A finetuner that revises its selection during training.
    finetuning: Option<&'c super::finetune::Finetuning>,
}

impl<'c, 'h> Components<'c, 'h> {
    fn of(
        sampler_at_epoch: Option<Kept>,
        (sampler, metrics): (&'c RefCell<&'h mut SamplerHandle>, &'c RefCell<&'h mut Vec<MetricHandle>>),
        finetuning: Option<&'c super::finetune::Finetuning>,
    ) -> Self {
        Components { sampler_at_epoch, sampler, metrics, finetuning }
    }
}

/// The unit's state at a step boundary; an error naming the component
/// that cannot save its own.
fn unit_state(
    saving: &Saving,
    curve: &RefCell<Vec<CurvePoint>>,
    log: &FitLog,
    components: Components,
) -> Result<UnitState> {
    let sampler = components.sampler.borrow();
    let cannot = |id: &str| {
        invalid!("{id} cannot save its state (SDK 0.4 `save_state`): a stopped unit starts over from step 0")
    };
    let sampler_at_epoch = components.sampler_at_epoch.ok_or_else(|| cannot(&sampler.id))?;
    let now = Kept::from_saved(sampler.save_state()?).ok_or_else(|| cannot(&sampler.id))?;
    let metrics = (components.metrics.borrow().iter())
        .map(|m| Kept::from_saved(m.save_state()?).ok_or_else(|| cannot(&m.id)))
        .collect::<Result<Vec<_>>>()?;
    let finetuner = match components.finetuning {
        Some(f) => Some(FinetunerState {
            kept: Kept::from_saved(f.handle.save_state()?).ok_or_else(|| cannot(&f.handle.id))?,
            revisions: f.revisions.clone(),
            in_force: f.in_force.clone(),
        }),
        None => None,
    };
    Ok(UnitState {
        fit: saving.state.clone(),
        rng: tessera_torch::optim::cpu_rng_state()?,
        curve: curve.borrow().clone(),
        progress: log.progress.get(),
        metric_steps: log.metric_steps.borrow().clone(),
        sampler_steps: log.sampler_steps.borrow().clone(),
        finetuner_steps: log.finetuner_steps.borrow().clone(),
        sampler_at_epoch,
        sampler: now,
        metrics,
        finetuner,
    })
}

/// A point of the test curve at `cp`.
pub(super) fn curve_point(cp: &Checkpoint, train_loss: f64, eval: Evaluation) -> CurvePoint {
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

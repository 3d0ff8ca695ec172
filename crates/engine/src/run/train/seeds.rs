//! A unit of several seeds of one `train` variant (`experiment.batch`):
//! each seed's phases before training as it has them alone (its data, its
//! reference classifier, its model, its sampler's offline pass), one
//! batched fit of all of them, in which each seed follows its own sampler's
//! order and its metrics observe its own model at its checkpoints, then each
//! seed's phases after training. The batch saves its state like a `train`
//! unit (every `checkpoint_minutes`, and when stopped): the stacked tensors
//! and optimizer, and each seed's components, curve and logs, so `tessera
//! resume` continues it bit for bit. Seeds that cannot batch (a sampler
//! that selects per step, frozen layers, training splits of different
//! sizes) train one after another in the unit, each as alone.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};
use tessera_sdk::{Checkpoint, StorageLayout};

use super::fit::{
    curve_point, epoch_order, reporter, stopped_epoch, Batches, BeforeEpoch, FitInputs, FitLog, FitRequests, Observing,
};
use super::resume::{Kept, Resuming, STATE};
use super::{Prepared, TrainJob};
use crate::error::{invalid, Result};
use crate::manifest::Variant;
use crate::model::Model;
use crate::plugin::{CallContext, MetricHandle, SamplerHandle};
use crate::report::ReportJson;
use crate::run::checkpoints::Saved;
use crate::run::progress::Reporter;
use crate::run::setup::progress_bar;
use crate::run::{RunOptions, Session};
use crate::train::{
    self, CurvePoint, FitSummary, MemberEpoch, StackedCheckpointing, StackedHooks, StackedSaving, StackedState,
    StepLog, TensorData,
};

/// Runs the seeds `variants` of one `train` variant as one unit; each
/// one's reports by role, by variant.
pub(in crate::run) fn run_seeds(
    session: &Session,
    variants: &[&Variant],
    options: &RunOptions,
    (unit_dir, resuming): (&Path, Resuming),
) -> Result<BTreeMap<String, BTreeMap<String, ReportJson>>> {
    let mut prepared = Vec::with_capacity(variants.len());
    for variant in variants {
        let job = TrainJob { shares_unit: true, ..TrainJob::new(session, variant, options, unit_dir)? };
        prepared.push(Prepared::new(job)?);
    }
    let fitted = match unbatchable(&prepared)? {
        Some(why) => {
            log::warn!("{}: its seeds train one after another, not as one batch: {why}", variants[0].name);
            prepared.iter_mut().map(Prepared::fit_alone).collect::<Result<Vec<_>>>()?
        }
        None => fit_together(&mut prepared, options, &resuming)?,
    };
    let mut reports = BTreeMap::new();
    for (seed, fitted) in prepared.into_iter().zip(fitted) {
        let name = seed.job.variant.name.clone();
        reports.insert(name, seed.finish(fitted)?);
    }
    Ok(reports)
}

/// Why the prepared seeds cannot train as one batch, if they cannot.
fn unbatchable(prepared: &[Prepared]) -> Result<Option<String>> {
    for seed in prepared {
        if let Some(b) = seed.job.step_candidates()? {
            return Ok(Some(format!("sampler {} selects per step (from {b} candidates)", seed.job.sampler.id)));
        }
        if seed.job.finetuner.is_some() {
            return Ok(Some("a finetuner chooses each seed's layers".into()));
        }
    }
    if prepared.iter().any(|p| p.job.layout.examples != prepared[0].job.layout.examples) {
        return Ok(Some("the seeds' training splits differ in size".into()));
    }
    let models: Vec<&Model> = prepared.iter().map(|p| &p.model).collect();
    Ok(train::unstackable(&models, prepared[0].job.s.model.kind))
}

/// One seed in the batch: what its hooks observe and report.
struct Member<'j> {
    name: String,
    sampler: &'j mut SamplerHandle,
    metrics: &'j mut Vec<MetricHandle>,
    metric_ctx: &'j [CallContext],
    sampler_ctx: CallContext,
    layout: StorageLayout,
    schedule: tessera_sdk::Schedule,
    requests: &'j FitRequests,
    log: FitLog,
    observing: Observing<'j>,
    batches: Batches<'j>,
    test: &'j TensorData,
    curve: Vec<CurvePoint>,
    /// Whether its states are kept for a save, its sampler as it was when
    /// asked for this epoch's order, and, in the epoch a resumed batch
    /// stopped in, its sampler then and when stopped.
    can_save: bool,
    sampler_at_epoch: Option<Kept>,
    continuing: Option<(Kept, Kept)>,
}

impl<'j> Member<'j> {
    /// Seed `job`'s member, observing with `inputs` and the splits `named`.
    fn new(
        job: &'j mut TrainJob,
        stored: &super::Stored,
        inputs: &'j FitInputs,
        named: &'j [(&'static str, &'j TensorData)],
    ) -> Self {
        let batches = Batches::new(job, stored, inputs.tensors.train.as_ref());
        let (sampler_ctx, schedule, layout) = (job.ctx("sampler"), job.schedule(None), job.layout);
        let name = job.variant.name.clone();
        let TrainJob { sampler, metrics, metric_ctx, splits, .. } = job;
        Member {
            name,
            sampler,
            metrics,
            metric_ctx,
            sampler_ctx,
            layout,
            schedule,
            requests: &inputs.requests,
            log: FitLog::new(&inputs.requests, layout),
            observing: Observing { splits, tensors: named, reference: &inputs.reference },
            batches,
            test: &inputs.tensors.test,
            curve: Vec::new(),
            can_save: false,
            sampler_at_epoch: None,
            continuing: None,
        }
    }

    /// Its batches of `epoch` and its loss weights: the sampler observes
    /// `model` (if it asks to), then gives its order.
    fn epoch(&mut self, epoch: u64, model: &Model) -> tessera_torch::Result<MemberEpoch<'j>> {
        let before = BeforeEpoch {
            log: &self.log,
            observing: &self.observing,
            requests: self.requests,
            schedule: self.schedule,
            ctx: &self.sampler_ctx,
        };
        let weights = RefCell::new(None);
        let at = (&self.layout, epoch, &self.sampler_ctx);
        if let Some((at_epoch, now)) = self.continuing.take() {
            let order = stopped_epoch(self.sampler, (&at_epoch, &now), at, &weights)?;
            self.sampler_at_epoch = Some(at_epoch);
            return Ok((self.batches.source(Box::new(order)), weights.into_inner()));
        }
        before.observe(model, epoch, self.sampler, None)?;
        if self.can_save {
            self.sampler_at_epoch = Kept::from_saved(self.sampler.save_state()?);
        }
        let order = epoch_order(self.sampler, at, &weights)?;
        Ok((self.batches.source(Box::new(order)), weights.into_inner()))
    }

    /// Its part of a saved state; an error naming a component that cannot
    /// save its own.
    fn saved(&self) -> Result<SeedState> {
        let cannot = |id: &str| invalid!("{id} cannot save its state (SDK 0.4 `save_state`)");
        let sampler_at_epoch = self.sampler_at_epoch.clone().ok_or_else(|| cannot(&self.sampler.id))?;
        let sampler = Kept::from_saved(self.sampler.save_state()?).ok_or_else(|| cannot(&self.sampler.id))?;
        let metrics = (self.metrics.iter())
            .map(|m| Kept::from_saved(m.save_state()?).ok_or_else(|| cannot(&m.id)))
            .collect::<Result<Vec<_>>>()?;
        Ok(SeedState {
            name: self.name.clone(),
            curve: self.curve.clone(),
            progress: self.log.progress.get(),
            metric_steps: self.log.metric_steps.borrow().clone(),
            sampler_steps: self.log.sampler_steps.borrow().clone(),
            sampler_at_epoch,
            sampler,
            metrics,
        })
    }

    /// Where a saved state left it: its curve, logs and metrics, and its
    /// sampler's two states for the epoch it stopped in.
    fn restore(&mut self, state: SeedState) -> Result<()> {
        if state.name != self.name {
            return Err(invalid!("a saved batch of other seeds (`{}`, not `{}`)", state.name, self.name));
        }
        self.log.progress.set(state.progress);
        *self.log.metric_steps.borrow_mut() = state.metric_steps;
        *self.log.sampler_steps.borrow_mut() = state.sampler_steps;
        self.curve = state.curve;
        for (metric, kept) in self.metrics.iter_mut().zip(&state.metrics) {
            if let Some(bytes) = kept.bytes() {
                metric.load_state(bytes)?;
            }
        }
        self.continuing = Some((state.sampler_at_epoch, state.sampler));
        Ok(())
    }

    /// Its checkpoint: the test curve, the metrics' observations.
    fn checkpoint(
        &mut self,
        model: &Model,
        cp: Checkpoint,
        loss: f64,
        reporter: Option<&Reporter>,
    ) -> tessera_torch::Result<()> {
        self.log.progress.set((cp.step, cp.examples_seen));
        let point = curve_point(&cp, loss, train::evaluate(model, self.test));
        if let Some(reporter) = reporter {
            reporter.checkpoint(cp.step, cp.epoch, loss, point.test_accuracy, cp.is_final);
        }
        self.curve.push(point);
        let observations = self.log.observe(model, &self.observing, &self.requests.metrics, &self.log.metric_steps)?;
        for (metric, ctx) in self.metrics.iter_mut().zip(self.metric_ctx) {
            metric.observe(&cp, &observations, ctx)?;
        }
        Ok(())
    }
}

/// Trains the prepared seeds as one batched model (continuing from its
/// saved state, if it has one); each one's summary and test curve.
fn fit_together(
    prepared: &mut [Prepared],
    options: &RunOptions,
    resuming: &Resuming,
) -> Result<Vec<(FitSummary, Vec<CurvePoint>)>> {
    let can_save = saving_allowed(prepared)?;
    let inputs = (prepared.iter_mut())
        .map(|p| p.job.fit_inputs(&mut p.model, &p.storage, p.reference.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let named: Vec<Vec<(&'static str, &TensorData)>> = inputs.iter().map(|i| i.tensors.named()).collect();
    let (cfg, kind, n) =
        (prepared[0].job.s.train.clone(), prepared[0].job.s.model.kind, prepared[0].job.layout.examples);
    let first = prepared[0].job.variant;
    let steps = n.div_ceil(cfg.batch_size.max(1) as u64) * cfg.epochs;
    let bar = progress_bar(options, steps, format!("{} (+{} seeds)", first.name, prepared.len() - 1));
    let reporter = reporter((first, prepared[0].job.unit_dir), bar.as_ref(), &prepared[0].job.schedule(None));
    let (models, mut members) = members_of(prepared, &inputs, &named, can_save);
    let resumed = if can_save { continued(resuming, &mut members)? } else { None };
    if let (Some(bar), Some((state, _))) = (&bar, &resumed) {
        bar.set_position(state.step);
    }
    let identities: Vec<_> =
        members.iter().map(|m| (m.name.clone(), Some((m.sampler.id.clone(), m.sampler.sampling())))).collect();
    let wants_order = members.iter().any(|m| m.log.wants_order);
    let wants_steps = members.iter().any(|m| m.log.wants_steps());
    let members = RefCell::new(members);
    let mut epoch = |k: usize, e: u64, model: &Model| members.borrow_mut()[k].epoch(e, model);
    let mut checkpoint = |k: usize, model: &Model, cp: Checkpoint, loss: f64| {
        members.borrow_mut()[k].checkpoint(model, cp, loss, (k == 0).then_some(&reporter))
    };
    let mut visit = |k: usize, e: u64, ids: &[u64]| members.borrow()[k].log.visit(e, ids);
    let mut record = |k: usize, step: u64, ids: &[u64], losses: &[f32], correct: &[i64]| {
        members.borrow()[k].log.record(step, ids, losses, correct)
    };
    let mut save = |saving: &StackedSaving| Ok(save(resuming, saving, &members.borrow()));
    let checkpointing =
        can_save.then_some(StackedCheckpointing { save: &mut save, every: resuming.every, resume: resumed });
    let hooks = StackedHooks {
        epoch: &mut epoch,
        checkpoint: &mut checkpoint,
        cancel: &options.cancel,
        progress: bar.as_ref(),
        visit: if wants_order { Some(&mut visit) } else { None },
        per_step: if wants_steps { Some(&mut record) } else { None },
        members: &identities,
        checkpointing,
    };
    let rates = vec![cfg.lr; models.len()];
    let summaries = train::fit_stacked(&models, kind, n, (&cfg, &rates), hooks)?;
    bar.iter().for_each(indicatif::ProgressBar::finish_and_clear);
    let curves = members.into_inner().into_iter().map(|m| m.curve);
    Ok(summaries.into_iter().zip(curves).collect())
}

/// Each seed's model and member.
fn members_of<'j>(
    prepared: &'j mut [Prepared],
    inputs: &'j [FitInputs],
    named: &'j [Vec<(&'static str, &'j TensorData)>],
    can_save: bool,
) -> (Vec<&'j Model>, Vec<Member<'j>>) {
    let (mut models, mut members) = (Vec::new(), Vec::new());
    for ((seed, inputs), named) in prepared.iter_mut().zip(inputs).zip(named) {
        let Prepared { job, storage, model, .. } = seed;
        members.push(Member { can_save, ..Member::new(job, storage, inputs, named) });
        models.push(&*model);
    }
    (models, members)
}

/// Whether the batch can save its state: every seed's sampler and metrics
/// can save theirs (asked once, before training); if not, a warning names
/// the one that cannot, and a stopped batch starts over from step 0.
fn saving_allowed(prepared: &[Prepared]) -> Result<bool> {
    for seed in prepared {
        if let Some(id) = seed.job.unsaved_component()? {
            log::warn!(
                "{}: {id} cannot save its state (SDK 0.4 `save_state`): a stopped batch of seeds starts over from step 0",
                seed.job.variant.name
            );
            return Ok(false);
        }
    }
    Ok(true)
}

/// A batch of seeds' saved state (`state.cbor`, beside the stacked tensors
/// and the optimizer's state).
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeedsState {
    fit: StackedState,
    rng: Vec<u8>,
    seeds: Vec<SeedState>,
}

/// One seed's part of a [`SeedsState`]: what its hooks kept.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct SeedState {
    name: String,
    curve: Vec<CurvePoint>,
    progress: (u64, u64),
    metric_steps: StepLog,
    sampler_steps: StepLog,
    sampler_at_epoch: Kept,
    sampler: Kept,
    metrics: Vec<Kept>,
}

/// The batch's newest saved state, if it has one.
fn load(resuming: &Resuming) -> Result<Option<(SeedsState, Saved)>> {
    let Some(saved) = resuming.store.newest(&resuming.fingerprint) else { return Ok(None) };
    let bytes = resuming.store.read(&saved, STATE)?;
    let state: SeedsState = ciborium::from_reader(bytes.as_slice())
        .map_err(|e| invalid!("{}: not a batch of seeds' state: {e}", saved.dir.join(STATE).display()))?;
    Ok(Some((state, saved)))
}

/// The members as the newest saved state left them (libtorch's generator
/// too); the fit's state and the folder of its tensors, to continue from.
fn continued(resuming: &Resuming, members: &mut [Member]) -> Result<Option<(StackedState, std::path::PathBuf)>> {
    let Some((state, saved)) = load(resuming)? else { return Ok(None) };
    if state.seeds.len() != members.len() {
        return Err(invalid!(
            "{}: a saved batch of {} seeds, not {}",
            saved.dir.display(),
            state.seeds.len(),
            members.len()
        ));
    }
    for (member, seed) in members.iter_mut().zip(state.seeds) {
        member.restore(seed)?;
    }
    tessera_torch::optim::set_cpu_rng_state(&state.rng)?;
    log::info!("{}: continuing from its state saved at step {} (a batch of seeds)", members[0].name, state.fit.step);
    Ok(Some((state.fit, saved.dir)))
}

/// Saves the batch's state (where it has a place to go); a state that
/// cannot be written is a warning: training goes on, the previous state
/// stays. Whether it was saved.
fn save(resuming: &Resuming, saving: &StackedSaving, members: &[Member]) -> bool {
    let state = members.iter().map(Member::saved).collect::<Result<Vec<_>>>().and_then(|seeds| {
        Ok(SeedsState { fit: saving.state.clone(), rng: tessera_torch::optim::cpu_rng_state()?, seeds })
    });
    let mut bytes = Vec::new();
    let encoded = state.and_then(|s| ciborium::into_writer(&s, &mut bytes).map_err(|e| invalid!("encoding: {e}")));
    let step = saving.state.step;
    let written = encoded.and_then(|()| {
        let files: [(&str, &[u8]); 1] = [(STATE, &bytes)];
        resuming.store.save((step, &resuming.fingerprint), &files, |dir| Ok((saving.write)(dir)?))
    });
    match &written {
        Ok(()) => log::info!("{}: saved its batch of seeds' state at step {step}", members[0].name),
        Err(e) => log::warn!("the batch of seeds' state at step {step} is not saved: {}", e.chain()),
    }
    written.is_ok()
}

/// A stopped batch's results so far for `variant`, one of its seeds: its
/// curve up to the saved step.
pub(in crate::run) fn results_so_far(
    variant: &Variant,
    resuming: &Resuming,
) -> Option<(u64, BTreeMap<String, ReportJson>)> {
    let (state, _) = load(resuming).ok()??;
    let seed = state.seeds.iter().find(|s| s.name == variant.name)?;
    Some((state.fit.step, super::stopped_reports(state.fit.step, &seed.curve)))
}

//! A unit of several seeds of one `train` variant (`experiment.batch`):
//! each seed's phases before training as it has them alone (its data, its
//! reference classifier, its model, its sampler's offline pass), one
//! batched fit of all of them, in which each seed follows its own sampler's
//! order and its metrics observe its own model at its checkpoints, then each
//! seed's phases after training. Seeds that cannot batch (a sampler that
//! selects per step, frozen layers, training splits of different sizes)
//! train one after another in the unit, each as alone.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::path::Path;

use tessera_sdk::{Checkpoint, StorageLayout};

use super::fit::{curve_point, epoch_order, reporter, Batches, BeforeEpoch, FitInputs, FitLog, FitRequests, Observing};
use super::{Prepared, TrainJob};
use crate::error::Result;
use crate::manifest::Variant;
use crate::model::Model;
use crate::plugin::{CallContext, MetricHandle, SamplerHandle};
use crate::report::ReportJson;
use crate::run::progress::Reporter;
use crate::run::setup::progress_bar;
use crate::run::{RunOptions, Session};
use crate::train::{self, CurvePoint, FitSummary, MemberEpoch, StackedHooks, TensorData};

/// Runs the seeds `variants` of one `train` variant as one unit; each
/// one's reports by role, by variant.
pub(in crate::run) fn run_seeds(
    session: &Session,
    variants: &[&Variant],
    options: &RunOptions,
    unit_dir: &Path,
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
        None => fit_together(&mut prepared, options)?,
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
        before.observe(model, epoch, self.sampler, None)?;
        let weights = RefCell::new(None);
        let order = epoch_order(self.sampler, (&self.layout, epoch, &self.sampler_ctx), &weights)?;
        Ok((self.batches.source(Box::new(order)), weights.into_inner()))
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

/// Trains the prepared seeds as one batched model; each one's summary and
/// test curve.
fn fit_together(prepared: &mut [Prepared], options: &RunOptions) -> Result<Vec<(FitSummary, Vec<CurvePoint>)>> {
    let inputs = (prepared.iter_mut())
        .map(|p| p.job.fit_inputs(&mut p.model, &p.storage, p.reference.as_ref()))
        .collect::<Result<Vec<_>>>()?;
    let named: Vec<Vec<(&'static str, &TensorData)>> = inputs.iter().map(|i| i.tensors.named()).collect();
    let (cfg, kind, n) =
        (prepared[0].job.s.train.clone(), prepared[0].job.s.model.kind, prepared[0].job.layout.examples);
    let first = prepared[0].job.variant;
    let steps = n.div_ceil(cfg.batch_size.max(1) as u64) * cfg.epochs;
    let label = format!("{} (+{} seeds)", first.name, prepared.len() - 1);
    let bar = progress_bar(options, steps, label);
    let schedule = prepared[0].job.schedule(None);
    let reporter = reporter((first, prepared[0].job.unit_dir), bar.as_ref(), &schedule);
    let mut models: Vec<&Model> = Vec::new();
    let mut members = Vec::new();
    for ((seed, inputs), named) in prepared.iter_mut().zip(&inputs).zip(&named) {
        let Prepared { job, storage, model, .. } = seed;
        members.push(Member::new(job, storage, inputs, named));
        models.push(&*model);
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
    let hooks = StackedHooks {
        epoch: &mut epoch,
        checkpoint: &mut checkpoint,
        cancel: &options.cancel,
        progress: bar.as_ref(),
        visit: if wants_order { Some(&mut visit) } else { None },
        per_step: if wants_steps { Some(&mut record) } else { None },
        members: &identities,
    };
    let summaries = train::fit_stacked(&models, kind, n, &cfg, hooks)?;
    bar.iter().for_each(indicatif::ProgressBar::finish_and_clear);
    let curves = members.into_inner().into_iter().map(|m| m.curve);
    Ok(summaries.into_iter().zip(curves).collect())
}

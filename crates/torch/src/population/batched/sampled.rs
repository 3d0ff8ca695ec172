//! A batch of a population's runs trained under a plugin's sampler: each
//! run's own sampler instance (made from its seed, as alone) gives its
//! member's order and loss weights every epoch, through the stacked fit
//! that a `train` variant's seeds use (`train::fit_stacked`): one optimizer
//! over the stacked weights, each member its own batches, its sampler's
//! contract checked each epoch. Members are taken at the checkpoints where a
//! run alone takes them, each evaluated as its own model. Like a run alone
//! under a sampler, a stopped batch keeps the group as it was at the
//! batch's start.

use std::cell::RefCell;
use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use tch::Tensor;
use tessera_sdk::{Checkpoint, StorageLayout};

use super::join;
use crate::error::Result;
use crate::model::Model;
use crate::plugin::{CallContext, SamplerHandle};
use crate::population::group::Group;
use crate::population::resume::TakenMember;
use crate::population::run::{evaluate_into, OneRun};
use crate::population::{member_epochs, Member, PopulationInputs, PopulationPlan, RunSpec, SplitMatrix};
use crate::storage::Access;
use crate::train::{self, MemberEpoch, MemorySource, StackedCheckpointing, StackedHooks, TensorData};

/// Trains `runs` (one architecture and setting) under each one's own
/// sampler as one batched model into `group`'s population; its optimizer
/// steps.
pub(super) fn train_sampled_batch(
    plan: &PopulationPlan,
    runs: &[RunSpec],
    inputs: &PopulationInputs,
    (group, base, cancel, progress): (&Group, Option<&Model>, &AtomicBool, Option<&indicatif::ProgressBar>),
) -> Result<u64> {
    let make = inputs.sampler.expect("a sampled batch has a sampler");
    let at_start = group.saving.as_ref().map(|_| group.mark()).transpose()?;
    let one = |spec| OneRun { plan, spec, inputs, shared: &group.shared, base };
    let cfg = &plan.settings[runs[0].setting];
    let models = runs.iter().map(|spec| Ok(one(spec).initial_model(&None)?.0)).collect::<Result<Vec<Model>>>()?;
    let labels = runs.iter().map(|spec| one(spec).labels(cfg)).collect::<Result<Vec<_>>>()?;
    let data: Vec<TensorData> = labels
        .iter()
        .map(|l| TensorData { x: group.shared.train.x.shallow_clone(), y: Tensor::from_slice(l).to(inputs.device) })
        .collect();
    let samplers = runs.iter().map(|spec| make(one(spec).seed())).collect::<Result<Vec<_>>>()?;
    let members: Vec<(String, Option<(String, tessera_sdk::Sampling)>)> = runs
        .iter()
        .zip(&samplers)
        .map(|(spec, (sampler, _))| {
            (format!("population run {}", spec.run), Some((sampler.id.clone(), sampler.sampling())))
        })
        .collect();
    let n = data[0].y.size()[0] as u64;
    let layout = StorageLayout { examples: n, block_size: n.max(1), bytes_per_example: 0 };
    let samplers = RefCell::new(samplers);
    let mut epoch = |k: usize, epoch: u64, _: &Model| -> Result<MemberEpoch<'_>> {
        let (sampler, ctx): &mut (SamplerHandle, CallContext) = &mut samplers.borrow_mut()[k];
        let order = sampler.epoch_order(&layout, epoch, ctx)?;
        let weights = sampler.example_weights(&layout, epoch, ctx)?;
        Ok((Box::new(MemorySource::new(Box::new(order), &data[k], layout, Access::Block, 1)), weights))
    };
    let taken: RefCell<Vec<Vec<TakenMember>>> = RefCell::new(runs.iter().map(|_| vec![]).collect());
    let mut checkpoint = |k: usize, model: &Model, cp: Checkpoint, _loss: f64| -> Result<()> {
        group.report(cp.step, (cp.epoch, cfg.epochs));
        if let Some(member) = take_member(plan, &runs[k], inputs, group, model, cp)? {
            taken.borrow_mut()[k].push(member);
        }
        Ok(())
    };
    // A stop saves the group as it was when the batch started.
    let mut save = |_: &train::StackedSaving| -> Result<bool> {
        let (Some(saving), Some(mark)) = (&group.saving, &at_start) else { return Ok(false) };
        Ok(saving.save(&group.state_at(mark)?, &mut |dir| group.write_files(dir, None)))
    };
    let hooks = StackedHooks {
        epoch: &mut epoch,
        checkpoint: &mut checkpoint,
        cancel,
        progress,
        visit: None,
        per_step: None,
        members: &members,
        checkpointing: Some(StackedCheckpointing { save: &mut save, every: None, resume: None }),
    };
    let kind = plan.architectures[runs[0].architecture].0.kind;
    let rates = super::base_rates(plan, runs);
    let fitted = train::fit_stacked(&models.iter().collect::<Vec<_>>(), kind, n, (cfg, &rates), hooks);
    let summaries = fitted.map_err(|e| group.stopped_in_run(e, false))?;
    let noisy = plan.settings.iter().any(|c| c.label_noise > 0.0);
    join(&mut group.population.borrow_mut(), taken.into_inner(), noisy.then_some(labels));
    Ok(summaries.first().map_or(0, |s| s.steps))
}

/// Run `spec`'s member at checkpoint `cp` of its model, if a run alone
/// takes one there (at a training length, or at every checkpoint with
/// `every_checkpoint`): its row on every evaluated split.
fn take_member(
    plan: &PopulationPlan,
    spec: &RunSpec,
    inputs: &PopulationInputs,
    group: &Group,
    model: &Model,
    cp: Checkpoint,
) -> Result<Option<TakenMember>> {
    let config = inputs.config;
    let n = inputs.splits.train.len() as u64;
    let Some(epochs) = member_epochs(plan, config, cp.epoch, cp.examples_seen, n) else { return Ok(None) };
    let (mut rows, mut accuracy) = (Vec::new(), BTreeMap::new());
    for (split, data) in &group.shared.evaluated {
        let mut matrix = SplitMatrix::default();
        accuracy.insert(split.clone(), evaluate_into(model, data, &mut matrix, config.probabilities)?);
        rows.push((split.clone(), matrix));
    }
    let member = Member::of_run(plan, config, spec, (epochs, cp.step, cp.examples_seen), accuracy);
    Ok(Some((member, rows)))
}

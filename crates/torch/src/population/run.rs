//! One run of a population: its model (fresh, forked or from the shared
//! pretrained base), its labels, its training and the members it yields.

use std::collections::BTreeMap;
use std::sync::atomic::AtomicBool;

use crate::error::{bail, Context, Result};
use tch::{Device, Kind, Tensor};
use tessera_sdk::SeedRng;

#[cfg(test)]
use crate::manifest::TrainConfig;
use crate::model::Model;
use crate::train::{self, Checkpointing, Control, Resumed, Saving, TensorData};

use super::group::{Fork, Group, ResumedRun};
use super::resume::{self, RunState};
use super::*;

/// One run of a population, ready to train.
pub(super) struct OneRun<'a> {
    pub(super) plan: &'a PopulationPlan,
    pub(super) spec: &'a RunSpec,
    pub(super) inputs: &'a PopulationInputs<'a>,
    pub(super) shared: &'a SharedTensors,
    pub(super) base: Option<&'a Model>,
}

impl OneRun<'_> {
    pub(super) fn label(&self) -> String {
        let config = self.inputs.config;
        format!(
            "{}, seed {}, {}",
            describe(&self.plan.architectures[self.spec.architecture].0),
            config.seeds[self.spec.seed_index],
            setting_label(&config.settings[self.spec.setting])
        )
    }

    /// The run's seed: one per architecture and seed, shared by its settings.
    pub(super) fn seed(&self) -> u64 {
        let config = self.inputs.config;
        let member_seed = config.seeds[self.spec.seed_index];
        let lineage = (self.spec.architecture * config.seeds.len() + self.spec.seed_index) as u64;
        SeedRng::derive(self.inputs.seed ^ member_seed.wrapping_mul(0x9E37_79B9), lineage).next_u64()
    }

    /// The initial model: the run's seed, over the shared start, or the
    /// fork parent's state (with its step and examples seen).
    pub(super) fn initial_model(&self, fork: &Fork) -> Result<(Model, u64, u64)> {
        let (config, splits) = (self.inputs.config, self.inputs.splits);
        let architecture = &self.plan.architectures[self.spec.architecture].0;
        let classes = splits.train.classes as i64;
        let mut model = Model::new(architecture, &splits.train.shape, classes, self.inputs.device, self.seed())?;
        if let Some(base) = self.base {
            model.vs.copy(&base.vs)?;
        }
        if config.freeze_features {
            let head = model.layers().len() as u32 - 1;
            model.set_trainable(&[head])?;
        }
        let branches = config.fork_step.is_some() && self.spec.setting != config.fork_from;
        match (fork, branches) {
            (Some((parent, step, seen)), true) => {
                model.vs.copy(&parent.vs)?;
                Ok((model, *step, *seen))
            }
            (None, true) => bail!(
                "population.fork_step = {}: setting {} ({}) ended before it",
                config.fork_step.unwrap_or(0),
                config.fork_from,
                setting_label(&config.settings[config.fork_from])
            ),
            _ => Ok((model, 0, 0)),
        }
    }

    /// This run's training labels: clean, or noised with its own seed.
    pub(super) fn labels(&self, cfg: &TrainConfig) -> Result<Vec<i64>> {
        let train = &self.inputs.splits.train;
        let mut labels = train.labels.clone();
        if cfg.label_noise > 0.0 {
            let noise_seed = SeedRng::derive(self.seed(), 0x401 ^ self.spec.setting as u64).next_u64();
            crate::data::flip_labels(&mut labels, train.classes, cfg.label_noise, noise_seed)?;
        }
        Ok(labels)
    }

    /// Evaluates `model` on every split into `population`'s matrices; the accuracies.
    pub(super) fn evaluate(&self, model: &Model, population: &mut Population) -> Result<BTreeMap<String, f64>> {
        let mut accuracy = BTreeMap::new();
        for (split, data) in &self.shared.evaluated {
            let matrix = population.splits.get_mut(split).expect("inserted above");
            accuracy.insert(split.clone(), evaluate_into(model, data, matrix, self.inputs.config.probabilities)?);
        }
        Ok(accuracy)
    }

    /// Trains the run, adding a member at each training length (or
    /// checkpoint), and keeps the fork parent's state when it passes the
    /// fork; continues inside it from `resumed`. Its optimizer steps.
    pub(super) fn train(&self, group: &Group, resumed: Option<ResumedRun>, cancel: &AtomicBool) -> Result<u64> {
        // A run under a plugin's sampler saves the group as it was at the run's start.
        let at_start = match (&group.saving, self.inputs.sampler.is_some()) {
            (Some(_), true) => Some(group.mark()?),
            _ => None,
        };
        let (mut model, start_step, start_seen) = self.initial_model(&group.fork.borrow())?;
        let resume = match resumed {
            Some(run) => Some(self.restore(&mut model, run)?),
            None => None,
        };
        let base_cfg = &self.plan.settings[self.spec.setting];
        let cfg = TrainConfig {
            max_examples: base_cfg.max_examples.map(|m| m.saturating_sub(start_seen)),
            ..base_cfg.clone()
        };
        let labels = self.labels(&cfg)?;
        let run_data = (cfg.label_noise > 0.0).then(|| TensorData {
            x: self.shared.train.x.shallow_clone(),
            y: tch::Tensor::from_slice(&labels).to_device(self.inputs.device),
        });
        if self.plan.settings.iter().any(|c| c.label_noise > 0.0) && resume.is_none() {
            group.population.borrow_mut().train_labels.push(labels);
        }
        let mut checkpoint = |model: &Model, cp: tessera_sdk::Checkpoint, _loss: f64| -> Result<()> {
            group.report(cp.step, (cp.epoch, cfg.epochs));
            self.on_checkpoint(group, model, cp, (start_step, start_seen))
        };
        let data = run_data.as_ref().unwrap_or(&self.shared.train);
        let sampled = self.inputs.sampler.is_some();
        let mut save = |saving: Saving| -> Result<bool> {
            let Some(group_saving) = &group.saving else { return Ok(false) };
            if let Some(mark) = &at_start {
                let state = group.state_at(mark)?;
                return Ok(group_saving.save(&state, &mut |dir| group.write_files(dir, None)));
            }
            let state = group.state(Some(RunState { fit: saving.state.clone() }))?;
            Ok(group_saving.save(&state, &mut |dir| group.write_files(dir, Some((saving.model, saving.optimizer)))))
        };
        let control = Control {
            cancel,
            checkpointing: group.saving.as_ref().map(|s| Checkpointing {
                save: &mut save,
                every: if sampled { None } else { s.store.every() },
                resume,
            }),
        };
        let trained = match self.inputs.sampler {
            Some(make) => {
                let (mut sampler, ctx) = make(self.seed())?;
                train::fit_sampled(&model, data, &cfg, (&mut sampler, &ctx), &mut checkpoint, control)
            }
            None => train::fit_shuffled(&model, data, &cfg, (self.seed(), start_seen), &mut checkpoint, control),
        };
        let trained = trained.map_err(|e| group.stopped_in_run(e, !sampled));
        Ok(trained.with_context(|| format!("population run {} ({})", self.spec.run, self.label()))?.steps)
    }

    /// The run's model and generator as saved inside it; the fit to continue.
    fn restore(&self, model: &mut Model, run: ResumedRun) -> Result<Resumed> {
        model.load(&run.dir.join(resume::MODEL))?;
        crate::optim::set_cpu_rng_state(&run.rng)?;
        Ok(Resumed { state: run.state.fit, optimizer: run.dir.join(resume::OPTIMIZER) })
    }

    /// At a checkpoint of the fit: the fork parent kept when it passes the
    /// fork step, and a member taken at a training length (or every checkpoint).
    fn on_checkpoint(
        &self,
        group: &Group,
        model: &Model,
        cp: tessera_sdk::Checkpoint,
        (start_step, start_seen): (u64, u64),
    ) -> Result<()> {
        let (config, splits) = (self.inputs.config, self.inputs.splits);
        let setting = self.spec.setting;
        let (step, seen) = (start_step + cp.step, start_seen + cp.examples_seen);
        let branches = config.fork_step.is_some() && setting != config.fork_from;
        let keep_fork = config.fork_step.filter(|_| setting == config.fork_from && !branches);
        let (architecture, _) = &self.plan.architectures[self.spec.architecture];
        if keep_fork == Some(step) && group.fork.borrow().is_none() {
            let classes = splits.train.classes as i64;
            let mut copy = Model::new(architecture, &splits.train.shape, classes, self.inputs.device, 0)?;
            copy.vs.copy(&model.vs)?;
            *group.fork.borrow_mut() = Some((copy, step, seen));
        }
        let Some(epochs) = member_epochs(self.plan, config, cp.epoch, seen, splits.train.len() as u64) else {
            return Ok(());
        };
        let mut population = group.population.borrow_mut();
        let accuracy = self.evaluate(model, &mut population)?;
        population.members.push(Member::of_run(self.plan, config, self.spec, (epochs, step, seen), accuracy));
        Ok(())
    }
}

/// Appends `model`'s row on `data` to `matrix` (its softmax outputs too when
/// `probabilities`); its accuracy.
pub(super) fn evaluate_into(
    model: &Model,
    data: &TensorData,
    matrix: &mut SplitMatrix,
    probabilities: bool,
) -> Result<f64> {
    let outputs = tch::no_grad(|| model.forward(&data.x).softmax(-1, Kind::Float));
    outputs_into(&outputs, &data.y, matrix, probabilities)
}

/// Appends the row of a member's softmax `outputs` `[n, classes]` against
/// the labels `y` to `matrix` (the outputs too when `probabilities`); its accuracy.
pub(super) fn outputs_into(outputs: &Tensor, y: &Tensor, matrix: &mut SplitMatrix, probabilities: bool) -> Result<f64> {
    let truth = outputs.gather(1, &y.unsqueeze(1), false).squeeze_dim(1);
    let predicted = outputs.argmax(-1, false);
    let hit = predicted.eq_tensor(y);
    let hits = Vec::<u8>::try_from(&hit.to_kind(Kind::Uint8).to_device(Device::Cpu))?;
    let accuracy = hits.iter().map(|&h| h as f64).sum::<f64>() / hits.len().max(1) as f64;
    matrix.correct.extend(hits);
    matrix.predictions.extend(Vec::<i32>::try_from(&predicted.to_kind(Kind::Int).to_device(Device::Cpu))?);
    matrix.true_probability.extend(train::to_vec_f32(&truth)?);
    if probabilities {
        matrix.probabilities.extend(train::to_vec_f32(outputs)?);
    }
    Ok(accuracy)
}

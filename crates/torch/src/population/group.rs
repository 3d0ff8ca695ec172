//! A unit's group of runs as it trains: the members so far, the fork parent
//! of the lineage in progress, the runs finished, and how the group's state
//! is saved and continued (see [`super::resume`]).

use std::cell::RefCell;
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use tch::Device;

use super::resume::{BatchState, GroupSaving, GroupState, RunState, FORK, MODEL, OPTIMIZER};
use super::{Population, PopulationInputs, PopulationPlan, RunSpec, SharedTensors, SplitMatrix, UnitSteps};
use crate::error::{bail, Result};
use crate::model::Model;
use crate::optim::SavableOptimizer;
use crate::train::{Stopped, TensorData};
use crate::TorchError;

/// The fork parent: its model, step and examples seen.
pub(super) type Fork = Option<(Model, u64, u64)>;

/// A run to continue inside: its fit's state and the folder of its files.
pub(super) struct ResumedRun {
    pub(super) state: RunState,
    pub(super) dir: PathBuf,
    /// libtorch's generator as it was, set just before the fit continues.
    pub(super) rng: Vec<u8>,
}

/// Where the group stood at a run's start: what saving it as it was then
/// keeps (the population's rows are cut back to these counts when saved).
pub(super) struct Mark {
    members: usize,
    train_labels: usize,
    fork: bool,
    rng: Vec<u8>,
}

/// A unit's group of runs as it trains.
pub(super) struct Group<'a> {
    plan: &'a PopulationPlan,
    runs: &'a [RunSpec],
    inputs: &'a PopulationInputs<'a>,
    /// The tensors every run shares.
    pub(super) shared: SharedTensors,
    /// The members and matrix rows so far.
    pub(super) population: RefCell<Population>,
    /// The fork parent of the lineage in progress.
    pub(super) fork: RefCell<Fork>,
    /// The lineage (architecture, seed) in progress.
    lineage: Option<(usize, usize)>,
    /// Runs trained to their end.
    pub(super) finished: usize,
    /// Their optimizer steps.
    pub(super) finished_steps: u64,
    /// The optimizer steps of all the unit's runs (for its progress).
    pub(super) total_steps: u64,
    /// Where the group's state is saved, if anywhere.
    pub(super) saving: Option<GroupSaving<'a>>,
    /// The batch a saved state stopped inside, and the folder of its files.
    pub(super) resumed_batch: Option<(BatchState, PathBuf)>,
}

impl<'a> Group<'a> {
    /// A group about to train `runs`: the shared tensors on the device, no members.
    pub(super) fn new(plan: &'a PopulationPlan, runs: &'a [RunSpec], inputs: &'a PopulationInputs<'a>) -> Result<Self> {
        let (splits, device) = (inputs.splits, inputs.device);
        let evaluated = (inputs.config.splits.iter())
            .map(|name| Ok((name.to_string(), TensorData::new(splits.get(name.as_str())?, device))))
            .collect::<Result<Vec<_>>>()?;
        let shared = SharedTensors { train: TensorData::new(&splits.train, device), evaluated };
        let mut population = Population::default();
        for (name, data) in &shared.evaluated {
            let labels = Vec::<i64>::try_from(&data.y.to_device(Device::Cpu))?;
            let matrix = SplitMatrix { labels, classes: splits.train.classes, ..Default::default() };
            population.splits.insert(name.clone(), matrix);
        }
        Ok(Group {
            plan,
            runs,
            inputs,
            shared,
            population: RefCell::new(population),
            fork: RefCell::new(None),
            lineage: None,
            finished: 0,
            finished_steps: 0,
            total_steps: 0,
            saving: inputs.store.map(GroupSaving::new),
            resumed_batch: None,
        })
    }

    /// Continues from the store's newest saved state, if any: the finished
    /// runs, the members, the fork parent and libtorch's generator restored;
    /// the run it stopped inside, if it saved one.
    pub(super) fn resume(&mut self) -> Result<Option<ResumedRun>> {
        let Some(store) = self.inputs.store else { return Ok(None) };
        let Some((state, dir)) = store.load()? else { return Ok(None) };
        self.check(&state)?;
        let started = if state.run.is_some() { state.finished } else { state.finished.saturating_sub(1) };
        if state.finished > 0 || state.run.is_some() {
            let spec = &self.runs[started];
            self.lineage = Some((spec.architecture, spec.seed_index));
        }
        if let Some((step, seen)) = state.fork {
            let mut parent = self.empty_model(started)?;
            parent.load(&dir.join(FORK))?;
            *self.fork.borrow_mut() = Some((parent, step, seen));
        }
        if state.run.is_none() {
            // Saved between runs: the generator as it was before the next run's set-up.
            crate::optim::set_cpu_rng_state(&state.rng)?;
        }
        (self.finished, self.finished_steps) = (state.finished, state.finished_steps);
        log::info!(
            "continuing from its state saved at step {} ({} of {} runs finished)",
            state.steps(),
            state.finished,
            self.runs.len()
        );
        *self.population.borrow_mut() = state.population;
        self.resumed_batch = state.batch.map(|batch| (batch, dir.clone()));
        Ok(state.run.map(|run| ResumedRun { state: run, dir, rng: state.rng }))
    }

    /// Refuses a saved state that does not fit this group.
    fn check(&self, state: &GroupState) -> Result<()> {
        let population = self.population.borrow();
        let fits = state.finished + usize::from(state.run.is_some()) <= self.runs.len()
            && state.population.splits.keys().eq(population.splits.keys())
            && (state.population.splits.values().zip(population.splits.values())).all(|(a, b)| a.labels == b.labels);
        if !fits {
            bail!("the saved population state does not fit this unit's runs and splits");
        }
        Ok(())
    }

    /// Refuses a saved state of a unit that trained its runs otherwise
    /// (`batched` or one by one) than this one does.
    pub(super) fn trains_as_saved(&self, batched: bool, inside_run: bool) -> Result<()> {
        if self.resumed_batch.is_some() != batched && (self.resumed_batch.is_some() || inside_run) {
            bail!(
                "the unit's saved state trained its runs {}; population.batch changed since: set it back, or remove \
                 the unit's saved states (units/<id>.resume) to start it over",
                if batched { "one by one" } else { "as one batch" }
            );
        }
        Ok(())
    }

    /// A model of run `index`'s architecture, to load weights into.
    fn empty_model(&self, index: usize) -> Result<Model> {
        let architecture = &self.plan.architectures[self.runs[index].architecture].0;
        let train = &self.inputs.splits.train;
        Model::new(architecture, &train.shape, train.classes as i64, self.inputs.device, 0)
    }

    /// Before run `spec`: a new lineage (architecture, seed) has no fork parent yet.
    pub(super) fn enter_lineage(&mut self, spec: &RunSpec) {
        if self.lineage != Some((spec.architecture, spec.seed_index)) {
            self.lineage = Some((spec.architecture, spec.seed_index));
            *self.fork.borrow_mut() = None;
        }
    }

    /// Tells the unit's progress sink, if any, where training stands:
    /// `steps` into the run or batch in progress, at `epoch` of its epochs.
    pub(super) fn report(&self, steps: u64, epoch: (f64, u64)) {
        if let Some(sink) = self.inputs.progress {
            let (finished, total) = (self.finished as u64, self.runs.len() as u64);
            let steps = (self.finished_steps + steps, self.total_steps);
            sink(UnitSteps { runs: (finished, total), steps, epoch });
        }
    }

    /// Between runs: a stop asked for saves the group and stops it.
    pub(super) fn stop_if_asked(&self, cancel: &AtomicBool) -> Result<()> {
        if !cancel.load(Ordering::Relaxed) {
            return Ok(());
        }
        let Some(saving) = &self.saving else { bail!("cancelled") };
        let saved = saving.save(&self.state(None)?, &mut |dir| self.write_files(dir, None));
        Err(Stopped { step: self.finished_steps, saved }.into())
    }

    /// The unit's steps to come, for its progress: those of each of `parts`
    /// (a run alone, or a batch, whose steps count once for its runs).
    pub(super) fn count_steps<'r>(&mut self, parts: impl Iterator<Item = &'r [RunSpec]>) {
        let n = self.shared.train.y.size()[0] as u64;
        self.total_steps = parts.map(|part| super::batched::steps_taken(&self.plan.settings[part[0].setting], n)).sum();
    }

    /// `runs` runs (one, or a batch) ended after `steps` optimizer steps:
    /// the unit's progress told, and the group's state saved if the
    /// interval has passed.
    pub(super) fn finished(&mut self, runs: usize, steps: u64) -> Result<()> {
        (self.finished, self.finished_steps) = (self.finished + runs, self.finished_steps + steps);
        let epochs = self.plan.settings[self.runs[self.finished - 1].setting].epochs;
        self.report(0, (epochs as f64, epochs));
        if let Some(saving) = self.saving.as_ref().filter(|s| s.due()) {
            saving.save(&self.state(None)?, &mut |dir| self.write_files(dir, None));
        }
        Ok(())
    }

    /// A run's stop counted in the group's steps: the run's own when it saved
    /// its fit, none of them when the state saved is the run's start.
    pub(super) fn stopped_in_run(&self, error: TorchError, fit_saved: bool) -> TorchError {
        match error.stopped() {
            Some(Stopped { step, saved }) => {
                let step = self.finished_steps + if fit_saved { step } else { 0 };
                Stopped { step, saved }.into()
            }
            None => error,
        }
    }

    /// The group's state now, inside a run if `run` is given.
    pub(super) fn state(&self, run: Option<RunState>) -> Result<GroupState> {
        Ok(GroupState {
            finished: self.finished,
            finished_steps: self.finished_steps,
            population: self.population.borrow().clone(),
            fork: self.fork.borrow().as_ref().map(|(_, step, seen)| (*step, *seen)),
            run,
            rng: crate::optim::cpu_rng_state()?,
            batch: None,
        })
    }

    /// Where the group stands now, to save it later as it was.
    pub(super) fn mark(&self) -> Result<Mark> {
        let population = self.population.borrow();
        Ok(Mark {
            members: population.members.len(),
            train_labels: population.train_labels.len(),
            fork: self.fork.borrow().is_some(),
            rng: crate::optim::cpu_rng_state()?,
        })
    }

    /// The group's state as it was at `mark` (between runs).
    pub(super) fn state_at(&self, mark: &Mark) -> Result<GroupState> {
        let mut state = self.state(None)?;
        state.population.truncate_members(mark.members);
        state.population.train_labels.truncate(mark.train_labels);
        state.fork = state.fork.filter(|_| mark.fork);
        state.rng = mark.rng.clone();
        Ok(state)
    }

    /// Writes the fork parent's weights and, inside a run, its model's and optimizer's.
    pub(super) fn write_files(&self, dir: &Path, run: Option<(&Model, &SavableOptimizer)>) -> Result<()> {
        if let Some((parent, _, _)) = self.fork.borrow().as_ref() {
            parent.save(&dir.join(FORK))?;
        }
        if let Some((model, optimizer)) = run {
            model.save(&dir.join(MODEL))?;
            optimizer.save(&dir.join(OPTIMIZER))?;
        }
        Ok(())
    }
}

//! The members of a population: training every run, taking its members and
//! evaluating them into prediction matrices (libtorch).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::error::{bail, Result};
use serde::{Deserialize, Serialize};
use tch::Device;
use tessera_sdk::SeedRng;

use crate::data::Splits;
use crate::manifest::{MemberBatch, PopulationConfig, PretrainMethod, TrainConfig};
use crate::model::Model;
use crate::train::TensorData;

pub use tessera_config::population::*;

pub(crate) mod batched;
mod files;
mod group;
mod resume;
mod run;

pub use batched::{unbatchable, BatchedCnn, BatchedMlp, BatchedNet};
pub use resume::{BatchState, GroupState, GroupStore, RunState};
use run::OneRun;

/// One member: a training run after `epochs` epochs.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Member {
    /// The training run it comes from (members of one run share its past).
    pub run: usize,
    /// The architecture, e.g. `mlp[64]` or `cnn[16-32]`.
    pub model: String,
    /// The width multiplier.
    pub width: f64,
    /// The run's seed (from `population.seeds`).
    pub seed: u64,
    /// Its training setting: the index in `population.settings`.
    #[serde(default)]
    pub setting: usize,
    /// The setting's `[train]` overrides, e.g. `batch_size=16 lr=0.01`.
    #[serde(default)]
    pub setting_label: String,
    /// The setting's batch size.
    #[serde(default)]
    pub batch_size: usize,
    /// Epochs trained (completed).
    pub epochs: u64,
    /// Optimizer steps taken (a fork counts its parent's).
    #[serde(default)]
    pub step: u64,
    /// Training examples seen (a fork counts its parent's).
    #[serde(default)]
    pub examples_seen: u64,
    /// Accuracy on each evaluated split.
    pub accuracy: BTreeMap<String, f64>,
}

impl Member {
    /// Run `spec`'s member after `epochs` epochs, `step` optimizer steps and
    /// `seen` training examples, with its `accuracy` on each evaluated split.
    fn of_run(
        plan: &PopulationPlan,
        config: &PopulationConfig,
        spec: &RunSpec,
        (epochs, step, seen): (u64, u64, u64),
        accuracy: BTreeMap<String, f64>,
    ) -> Member {
        let (architecture, width) = &plan.architectures[spec.architecture];
        Member {
            run: spec.run,
            model: describe(architecture),
            width: *width,
            seed: config.seeds[spec.seed_index],
            setting: spec.setting,
            setting_label: setting_label(&config.settings[spec.setting]),
            batch_size: plan.settings[spec.setting].batch_size,
            epochs,
            step,
            examples_seen: seen,
            accuracy,
        }
    }
}

/// The epochs completed at a checkpoint (at `epoch`, `seen` examples into a
/// training split of `n`) if a run takes a member there: at an epoch's end
/// that is one of the training lengths, or at every checkpoint with
/// `population.every_checkpoint`.
fn member_epochs(plan: &PopulationPlan, config: &PopulationConfig, epoch: f64, seen: u64, n: u64) -> Option<u64> {
    let epochs = (seen as f64 / n.max(1) as f64 + 1e-9).floor() as u64;
    let at_a_length = epoch.fract() == 0.0 && plan.lengths.contains(&epochs);
    (config.every_checkpoint || at_a_length).then_some(epochs)
}

/// The prediction matrix of one split: row `i` is member `i`.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct SplitMatrix {
    /// The points' true labels, n of them.
    pub labels: Vec<i64>,
    /// 1[f_θ(x_z) = y_z], m × n, row-major.
    pub correct: Vec<u8>,
    /// The softmax probability of y_z, m × n, row-major.
    pub true_probability: Vec<f32>,
    /// With `population.probabilities`: every softmax output, m × n × classes.
    pub probabilities: Vec<f32>,
    /// Hard predictions (argmax), m × n.
    pub predictions: Vec<i32>,
    /// Number of classes.
    pub classes: usize,
}

impl Population {
    /// Keeps the first `members` members and their matrix rows.
    pub fn truncate_members(&mut self, members: usize) {
        self.members.truncate(members);
        for matrix in self.splits.values_mut() {
            let n = matrix.labels.len();
            matrix.correct.truncate(members * n);
            matrix.predictions.truncate(members * n);
            matrix.true_probability.truncate(members * n);
            matrix.probabilities.truncate(members * n * matrix.classes);
        }
    }
}

impl SplitMatrix {
    /// Its rows in the order `order` (old row indices) gives.
    fn reordered(&self, order: &[usize]) -> SplitMatrix {
        let n = self.labels.len();
        SplitMatrix {
            labels: self.labels.clone(),
            correct: rows_in(&self.correct, n, order),
            true_probability: rows_in(&self.true_probability, n, order),
            probabilities: rows_in(&self.probabilities, n * self.classes, order),
            predictions: rows_in(&self.predictions, n, order),
            classes: self.classes,
        }
    }

    /// Appends `rows`' members (the next rows; its labels are not compared).
    pub fn extend_rows(&mut self, rows: SplitMatrix) {
        self.correct.extend(rows.correct);
        self.true_probability.extend(rows.true_probability);
        self.probabilities.extend(rows.probabilities);
        self.predictions.extend(rows.predictions);
    }
}

/// The rows of `width` values of `values` in `order` (none where there are none).
fn rows_in<T: Copy>(values: &[T], width: usize, order: &[usize]) -> Vec<T> {
    if values.is_empty() {
        return vec![];
    }
    order.iter().flat_map(|&i| values[i * width..(i + 1) * width].iter().copied()).collect()
}

/// A population: its members and their predictions on each split.
#[derive(Debug, Clone, PartialEq, Default, Serialize, Deserialize)]
pub struct Population {
    /// The members, in row order.
    pub members: Vec<Member>,
    /// The prediction matrix of each evaluated split.
    pub splits: BTreeMap<String, SplitMatrix>,
    /// When a setting has label noise: the training labels of each run
    /// (index = run), noised with the run's own seed.
    pub train_labels: Vec<Vec<i64>>,
}

/// What every run of a population trains and evaluates on.
pub struct PopulationInputs<'a> {
    /// `[population]`.
    pub config: &'a PopulationConfig,
    /// `[pretrain]`.
    pub pretrain: &'a crate::manifest::PretrainConfig,
    /// Where pretrained encoders are saved ([`encoder_file`]).
    pub encoders: Option<&'a Path>,
    /// Where the encoders the runs start from were saved by the units that
    /// pretrained them: read from there instead of pretraining.
    pub pretrained: Option<&'a Path>,
    /// The data (clean labels).
    pub splits: &'a Splits,
    /// The device.
    pub device: Device,
    /// The population's seed.
    pub seed: u64,
    /// The variant's sampler, a fresh instance (with its call context) for
    /// each run from the run's seed; `None`: each run trains on a seeded
    /// full shuffle.
    pub sampler: Option<&'a SamplerFactory<'a>>,
    /// Where the unit saves its state to continue after a stop, if anywhere.
    pub store: Option<&'a dyn GroupStore>,
    /// Told where the unit's training stands (its progress file), if anyone is.
    pub progress: Option<&'a ProgressSink<'a>>,
}

/// Where a population unit's training stands.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct UnitSteps {
    /// Runs of the unit finished, and all of them.
    pub runs: (u64, u64),
    /// Optimizer steps taken, and those the unit takes (a batch's steps
    /// count once for all its runs; a fork's branch is counted as if it
    /// trained from the start, so with forks the total is an upper bound).
    pub steps: (u64, u64),
    /// The run or batch in progress: epochs done (fractional), and its epochs.
    pub epoch: (f64, u64),
}

/// Told where a unit's training stands: at a run's checkpoints, and at a
/// batch's every step.
pub type ProgressSink<'a> = dyn Fn(UnitSteps) + 'a;

/// The file of `architecture`'s pretrained encoder in an encoders folder,
/// e.g. `cnn[16-32].safetensors`.
pub fn encoder_file(architecture: &crate::manifest::ModelConfig) -> String {
    crate::report::file_stem_safe(&format!("{}.safetensors", describe(architecture)))
}

impl<'a> PopulationInputs<'a> {
    /// Inputs on the CPU with nothing saved, no sampler and no store (tests).
    #[cfg(test)]
    pub(crate) fn on_cpu(
        config: &'a PopulationConfig,
        pretrain: &'a crate::manifest::PretrainConfig,
        splits: &'a Splits,
        seed: u64,
    ) -> Self {
        PopulationInputs {
            config,
            pretrain,
            encoders: None,
            pretrained: None,
            splits,
            device: Device::Cpu,
            seed,
            sampler: None,
            store: None,
            progress: None,
        }
    }
}

/// Makes the sampler a population run trains under, from the run's seed.
pub type SamplerFactory<'a> = dyn Fn(u64) -> Result<(crate::plugin::SamplerHandle, crate::plugin::CallContext)> + 'a;

/// The tensors every run shares: the training inputs and the evaluated splits.
struct SharedTensors {
    train: TensorData,
    evaluated: Vec<(String, TensorData)>,
}

impl Population {
    /// Trains every run of `config` on `splits.train` (clean labels; a
    /// setting's `label_noise` is drawn per run, with the run's seed) and
    /// evaluates each member on `config.splits`. With `pretrain`, each
    /// architecture's feature blocks are first pretrained without labels,
    /// saved as `<encoders>/<architecture>.safetensors` when `encoders` is
    /// given, and every run starts from them. Deterministic for a given
    /// `seed`, and the same whether its groups of runs train here, one after
    /// another, or in separate processes ([`Population::train_runs`]).
    #[allow(clippy::too_many_arguments)]
    pub fn train(
        config: &PopulationConfig,
        train: &TrainConfig,
        pretrain: &crate::manifest::PretrainConfig,
        encoders: Option<&Path>,
        splits: &Splits,
        device: Device,
        seed: u64,
        cancel: &AtomicBool,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Population> {
        let plan = PopulationPlan::new(config, train)?;
        if let Some(bar) = progress {
            bar.set_length(plan.runs.len() as u64);
        }
        let inputs = PopulationInputs {
            config,
            pretrain,
            encoders,
            splits,
            device,
            seed,
            sampler: None,
            store: None,
            pretrained: None,
            progress: None,
        };
        let mut population = Population::default();
        for group in plan.groups(config, pretrain) {
            population.append(Population::train_runs(&plan, &group, &inputs, cancel, progress)?)?;
        }
        Ok(population)
    }

    /// Trains `runs` of `plan` (one of its groups), members in row order;
    /// with a store, continuing from its newest saved state and saving the
    /// group's state every interval and when `cancel` asks it to stop.
    pub fn train_runs(
        plan: &PopulationPlan,
        runs: &[RunSpec],
        inputs: &PopulationInputs,
        cancel: &AtomicBool,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Population> {
        let auto_refused =
            inputs.config.batch == MemberBatch::Auto && batched::unbatchable(plan, runs, inputs).is_some();
        if inputs.config.batch.batches() && runs.len() > 1 && !auto_refused {
            return Self::train_batched(plan, runs, inputs, (cancel, progress));
        }
        let mut group = group::Group::new(plan, runs, inputs)?;
        group.count_steps(runs.chunks(1));
        let mut resumed = group.resume()?;
        group.trains_as_saved(false, resumed.is_some())?;
        if let Some(bar) = progress {
            bar.set_position(group.finished as u64);
        }
        let mut start: Option<(usize, Option<Model>)> = None;
        for spec in &runs[group.finished..] {
            if start.as_ref().map(|(a, _)| *a) != Some(spec.architecture) {
                start = Some((spec.architecture, Self::shared_start(plan, spec.architecture, inputs, &group.shared)?));
            }
            group.enter_lineage(spec);
            group.stop_if_asked(cancel)?;
            let base = start.as_ref().and_then(|(_, m)| m.as_ref());
            let run = OneRun { plan, spec, inputs, shared: &group.shared, base };
            let steps = run.train(&group, resumed.take(), cancel)?;
            log::info!("population run {} of {} ({}) trained", spec.run + 1, plan.runs.len(), run.label());
            group.finished(1, steps)?;
            if let Some(bar) = progress {
                bar.inc(1);
            }
        }
        Ok(group.population.into_inner())
    }

    /// Trains `runs` as batches of `population.batch` (continuing from the
    /// newest saved state, inside a batch or between two): a stop saves
    /// the batch in progress.
    fn train_batched(
        plan: &PopulationPlan,
        runs: &[RunSpec],
        inputs: &PopulationInputs,
        (cancel, progress): (&AtomicBool, Option<&indicatif::ProgressBar>),
    ) -> Result<Population> {
        let mut group = group::Group::new(plan, runs, inputs)?;
        let inside_run = group.resume()?.is_some();
        group.trains_as_saved(true, inside_run)?;
        let mut resumed = group.resumed_batch.take();
        let parts = batched::parts(plan, runs, inputs)?;
        group.count_steps(parts.iter().copied());
        if let Some(bar) = progress {
            // A batch's bar counts optimizer steps, of all its parts.
            bar.set_length(group.total_steps);
            bar.set_position(group.finished_steps);
        }
        // A batch is one architecture: one shared start (or none) for all.
        let base = Self::shared_start(plan, runs[0].architecture, inputs, &group.shared)?;
        let mut first = 0;
        for part in parts {
            first += part.len();
            if first <= group.finished {
                continue; // trained before the state was saved
            }
            let training = (&group, base.as_ref(), cancel, progress);
            let steps = batched::train_batch(plan, part, inputs, training, resumed.take())?;
            log::info!("population runs {} trained as one batch", run_ranges(part, 1));
            group.finished(part.len(), steps)?;
            progress.iter().for_each(|bar| bar.set_position(group.finished_steps));
        }
        Ok(group.population.into_inner())
    }

    /// A population of one member: `model` (a `train` run's final model,
    /// described by `member`) evaluated on `evaluated`, its softmax outputs
    /// kept when `probabilities`; what `pool = "seeds"` stacks over seeds.
    pub fn of_one(
        model: &Model,
        mut member: Member,
        evaluated: &[(String, TensorData)],
        classes: usize,
        probabilities: bool,
    ) -> Result<Population> {
        let mut population = Population::default();
        for (name, data) in evaluated {
            let labels = Vec::<i64>::try_from(&data.y.to_device(Device::Cpu))?;
            let mut matrix = SplitMatrix { labels, classes, ..Default::default() };
            let accuracy = run::evaluate_into(model, data, &mut matrix, probabilities)?;
            member.accuracy.insert(name.clone(), accuracy);
            population.splits.insert(name.clone(), matrix);
        }
        population.members.push(member);
        Ok(population)
    }

    /// Appends `other`'s members, matrix rows and training labels (the next
    /// runs in row order).
    pub fn append(&mut self, other: Population) -> Result<()> {
        if self.members.is_empty() && self.splits.is_empty() {
            *self = other;
            return Ok(());
        }
        if self.splits.keys().ne(other.splits.keys()) {
            bail!("population parts evaluate different splits");
        }
        for (name, matrix) in other.splits {
            let mine = self.splits.get_mut(&name).expect("same keys");
            if mine.labels != matrix.labels {
                bail!("population parts disagree on the labels of split `{name}`");
            }
            mine.extend_rows(matrix);
        }
        self.members.extend(other.members);
        self.train_labels.extend(other.train_labels);
        Ok(())
    }

    /// Its members, matrix rows and training labels in run order (a
    /// unit's batch may hold runs that are not consecutive: see
    /// [`PopulationPlan::batches`]); each run's members keep their order.
    pub fn into_run_order(self) -> Population {
        let mut order: Vec<usize> = (0..self.members.len()).collect();
        order.sort_by_key(|&i| self.members[i].run);
        if order.iter().enumerate().all(|(at, &i)| at == i) {
            return self;
        }
        // The runs in the order their rows of training labels were appended.
        let mut appended: Vec<usize> = self.members.iter().map(|m| m.run).collect();
        appended.dedup();
        let mut label_order: Vec<usize> = (0..appended.len()).collect();
        label_order.sort_by_key(|&i| appended[i]);
        let train_labels = match self.train_labels.len() == appended.len() {
            true => label_order.iter().map(|&i| self.train_labels[i].clone()).collect(),
            false => self.train_labels,
        };
        Population {
            members: order.iter().map(|&i| self.members[i].clone()).collect(),
            splits: self.splits.iter().map(|(name, matrix)| (name.clone(), matrix.reordered(&order))).collect(),
            train_labels,
        }
    }

    /// Pretrains architecture `a`'s encoder without labels and saves it in
    /// `inputs.encoders` ([`encoder_file`]): what a population's pretraining
    /// unit does before the units of its runs, which read it
    /// (`inputs.pretrained`).
    pub fn pretrain_encoder(plan: &PopulationPlan, a: usize, inputs: &PopulationInputs) -> Result<()> {
        if inputs.encoders.is_none() || inputs.pretrain.method == PretrainMethod::None {
            bail!("pretraining an encoder needs [pretrain] method and a folder to save it in");
        }
        let shared = SharedTensors { train: TensorData::new(&inputs.splits.train, inputs.device), evaluated: vec![] };
        Self::shared_start(plan, a, inputs, &shared)?;
        Ok(())
    }

    /// One start for every run of an architecture: its pretrained encoder
    /// (read from `inputs.pretrained` when a unit made it already), or
    /// (frozen features) one random network; none otherwise.
    fn shared_start(
        plan: &PopulationPlan,
        a: usize,
        inputs: &PopulationInputs,
        shared: &SharedTensors,
    ) -> Result<Option<Model>> {
        let (pretrain, splits, device) = (inputs.pretrain, inputs.splits, inputs.device);
        if pretrain.method == PretrainMethod::None && !inputs.config.freeze_features {
            return Ok(None);
        }
        let architecture = &plan.architectures[a].0;
        let base_seed = SeedRng::derive(inputs.seed, 0xBA5E ^ a as u64).next_u64();
        let classes = splits.train.classes as i64;
        let mut base = Model::new(architecture, &splits.train.shape, classes, device, base_seed)?;
        if let Some(dir) = inputs.pretrained.filter(|_| pretrain.method != PretrainMethod::None) {
            base.load(&dir.join(encoder_file(architecture)))?;
            return Ok(Some(base));
        }
        if pretrain.method != PretrainMethod::None {
            let summary = crate::pretrain::pretrain(pretrain, &base, &shared.train, device, base_seed)?;
            log::info!(
                "population: {} pretrained ({}), loss {:.3} -> {:.3}",
                describe(architecture),
                pretrain.method,
                summary.epoch_loss.first().copied().unwrap_or(f64::NAN),
                summary.epoch_loss.last().copied().unwrap_or(f64::NAN)
            );
            if let Some(dir) = inputs.encoders {
                std::fs::create_dir_all(dir)?;
                base.save(&dir.join(encoder_file(architecture)))?;
            }
        }
        Ok(Some(base))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::readers::write_npy;
    use crate::manifest::DataConfig;
    use crate::manifest::Split;
    use crate::manifest::{ModelConfig, ModelKind};
    use std::cell::RefCell;
    use tessera_sdk::{observation, ObservationRequest};

    /// A population trained on the CPU, without pretraining or a progress bar.
    fn trained(config: &PopulationConfig, train: &TrainConfig, splits: &Splits, seed: u64) -> Population {
        let pretrain = crate::manifest::PretrainConfig::default();
        Population::train(config, train, &pretrain, None, splits, Device::Cpu, seed, &AtomicBool::new(false), None)
            .unwrap()
    }

    fn small_population(seed: u64) -> Population {
        let data = DataConfig { examples: 300, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        let config = PopulationConfig {
            models: vec![ModelConfig { kind: ModelKind::Linear, ..ModelConfig::default() }, ModelConfig::default()],
            widths: vec![0.5, 1.0],
            seeds: vec![0, 1],
            epochs: vec![1, 3],
            splits: vec![Split::Test, Split::Validation],
            ..PopulationConfig::default()
        };
        let train = TrainConfig { batch_size: 16, ..TrainConfig::default() };
        trained(&config, &train, &splits, seed)
    }

    #[test]
    fn members_are_architectures_times_seeds_times_lengths_and_reproducible() {
        let p = small_population(4);
        // linear ignores the width: 1 + 2 architectures, 2 seeds, 2 lengths.
        assert_eq!(p.len(), 3 * 2 * 2);
        assert_eq!(p.members.iter().map(|m| m.run).max(), Some(5));
        let names: std::collections::BTreeSet<&str> = p.members.iter().map(|m| m.model.as_str()).collect();
        assert_eq!(names, ["linear", "mlp[32]", "mlp[64]"].into_iter().collect());
        let test = &p.splits["test"];
        assert_eq!(test.correct.len(), p.len() * test.labels.len());
        // Correctness agrees with the member's reported accuracy, and a correct
        // prediction never has a true-label probability below 1/classes.
        for (i, member) in p.members.iter().enumerate() {
            let n = test.labels.len();
            let row = &test.correct[i * n..(i + 1) * n];
            let accuracy = row.iter().map(|&c| c as f64).sum::<f64>() / n as f64;
            assert!((accuracy - member.accuracy["test"]).abs() < 1e-12);
            for (c, p) in row.iter().zip(&test.true_probability[i * n..(i + 1) * n]) {
                assert!(*c == 0 || *p >= 1.0 / 3.0 - 1e-6);
            }
        }
        assert_eq!(p, small_population(4));
        assert_ne!(p.splits["test"].true_probability, small_population(5).splits["test"].true_probability);
    }

    #[test]
    fn a_saved_population_loads_back_identically_and_bad_files_are_named() {
        let p = small_population(2);
        let dir = tempfile::tempdir().unwrap();
        p.save(dir.path()).unwrap();
        assert_eq!(Population::load(dir.path()).unwrap(), p);
        // A matrix that does not match the members is refused with its path.
        write_npy(&dir.path().join("test.correct.npy"), "|u1", &[2, 3], &[0; 6]).unwrap();
        let err = tessera_util::error::chain(&Population::load(dir.path()).unwrap_err());
        assert!(err.contains("test.correct.npy") && err.contains("members.json has 12 members"), "{err}");
        let err = tessera_util::error::chain(&Population::load(&dir.path().join("nowhere")).unwrap_err());
        assert!(err.contains("members.json"), "{err}");
    }

    #[test]
    fn settings_checkpoints_probabilities_and_a_fork_that_shares_its_past() {
        let data = DataConfig { examples: 400, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        let n_train = splits.train.len() as u64;
        let setting = |text: &str| text.parse::<toml::Table>().unwrap();
        // Setting 1 forks from setting 0 after 10 steps with lr = 0: it keeps
        // the parent's weights at the fork, so its predictions are the
        // parent's there, and it sees the rest of the parent's stream.
        let config = PopulationConfig {
            seeds: vec![3],
            settings: vec![setting("batch_size = 8"), setting("batch_size = 32\nlr = 0.0")],
            every_checkpoint: true,
            probabilities: true,
            fork_step: Some(10),
            splits: vec![Split::Test],
            ..PopulationConfig::default()
        };
        let train = TrainConfig { epochs: 1, checkpoint_every: 5, ..TrainConfig::default() };
        let p = trained(&config, &train, &splits, 7);
        let parent: Vec<&Member> = p.members.iter().filter(|m| m.setting == 0).collect();
        let branch: Vec<&Member> = p.members.iter().filter(|m| m.setting == 1).collect();
        // Every checkpoint is a member: every 5 steps and the epoch's end.
        let steps: Vec<u64> = parent.iter().map(|m| m.step).collect();
        assert_eq!(steps[..3], [5, 10, 15]);
        assert_eq!(parent.last().unwrap().examples_seen, n_train);
        assert_eq!((parent[0].batch_size, branch[0].batch_size), (8, 32));
        // The branch starts where the parent was at step 10 (80 examples) and
        // finishes the same single pass.
        assert_eq!((branch[0].step, branch[0].examples_seen), (15, 80 + 5 * 32));
        assert_eq!(branch.last().unwrap().examples_seen, n_train);
        let test = &p.splits["test"];
        let n = test.labels.len();
        let row = |m: &Member| {
            let i = p.members.iter().position(|x| std::ptr::eq(x, m)).unwrap();
            test.true_probability[i * n..(i + 1) * n].to_vec()
        };
        let at_fork = parent.iter().find(|m| m.step == 10).unwrap();
        for m in &branch {
            assert_eq!(row(m), row(at_fork), "lr = 0 after the fork: the parent's function at step 10");
        }
        assert_ne!(row(parent.last().unwrap()), row(at_fork));
        // Softmax outputs are kept and agree with the true-label probability.
        assert_eq!(test.probabilities.len(), p.len() * n * 3);
        for z in 0..n {
            let probs = &test.probabilities[z * 3..z * 3 + 3];
            assert!((probs.iter().sum::<f32>() - 1.0).abs() < 1e-5);
            assert_eq!(probs[test.labels[z] as usize], test.true_probability[z]);
        }
        let dir = tempfile::tempdir().unwrap();
        p.save(dir.path()).unwrap();
        assert_eq!(Population::load(dir.path()).unwrap(), p);
        let obs = p.observations(&[ObservationRequest::new("test", observation::POPULATION_MEMBERS)]).unwrap();
        assert_eq!(obs[0].array.shape.to_vec(), vec![p.len() as u64, 6]);
        // A setting with an unknown key is named.
        let bad = PopulationConfig { settings: vec![setting("batch = 3")], ..config };
        let err = setting_configs(&bad, &train).unwrap_err().to_string();
        assert!(err.contains("population.settings[0]") && err.contains("batch"), "{err}");
    }

    #[test]
    fn label_noise_is_drawn_per_run_and_frozen_features_probe_one_network() {
        let data = DataConfig { examples: 300, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        let setting = |text: &str| text.parse::<toml::Table>().unwrap();
        let config = PopulationConfig {
            seeds: vec![1, 2],
            settings: vec![setting("label_noise = 0.0"), setting("label_noise = 0.2")],
            freeze_features: true,
            splits: vec![Split::Train, Split::Test],
            ..PopulationConfig::default()
        };
        let train = TrainConfig { epochs: 2, ..TrainConfig::default() };
        let run = |seed| trained(&config, &train, &splits, seed);
        let p = run(3);
        let clean = &splits.train.labels;
        let flipped = |labels: &Vec<i64>| labels.iter().zip(clean).filter(|(a, b)| a != b).count();
        let expected = (0.2 * clean.len() as f64).round() as usize;
        assert_eq!(p.train_labels.len(), 4);
        let (noisy_1, noisy_2): (Vec<_>, Vec<_>) = (
            p.members.iter().filter(|m| m.setting == 1 && m.seed == 1).map(|m| m.run).collect(),
            p.members.iter().filter(|m| m.setting == 1 && m.seed == 2).map(|m| m.run).collect(),
        );
        for m in &p.members {
            let want = if m.setting == 0 { 0 } else { expected };
            assert_eq!(flipped(&p.train_labels[m.run]), want);
        }
        assert_ne!(p.train_labels[noisy_1[0]], p.train_labels[noisy_2[0]], "each run draws its own noise");
        assert_eq!(p, run(3), "reproducible");
        // Predictions agree with correctness against the clean labels.
        let t = &p.splits["train"];
        for (k, (&pred, &hit)) in t.predictions.iter().zip(&t.correct).enumerate() {
            assert_eq!(hit == 1, pred as i64 == t.labels[k % t.labels.len()]);
        }
        let obs = p.observations(&[ObservationRequest::new("train", observation::POPULATION_TRAIN_LABELS)]).unwrap();
        assert_eq!(obs[0].array.shape.to_vec(), vec![p.len() as u64, clean.len() as u64]);
        let dir = tempfile::tempdir().unwrap();
        p.save(dir.path()).unwrap();
        assert_eq!(Population::load(dir.path()).unwrap(), p);
    }

    /// A store that keeps every save (the `n`th in `<dir>/<n>/`) and gives
    /// back the one chosen: a stop at any saved moment, without signals.
    struct EverySave {
        dir: tempfile::TempDir,
        saved: std::cell::RefCell<Vec<(GroupState, std::path::PathBuf)>>,
        resume_from: Option<usize>,
    }

    impl GroupStore for EverySave {
        fn every(&self) -> Option<std::time::Duration> {
            Some(std::time::Duration::ZERO)
        }
        fn save(&self, state: &GroupState, write: &mut dyn FnMut(&Path) -> Result<()>) -> Result<()> {
            let folder = self.dir.path().join(self.saved.borrow().len().to_string());
            std::fs::create_dir_all(&folder)?;
            write(&folder)?;
            self.saved.borrow_mut().push((state.clone(), folder));
            Ok(())
        }
        fn load(&self) -> Result<Option<(GroupState, std::path::PathBuf)>> {
            Ok(self.resume_from.map(|k| self.saved.borrow()[k].clone()))
        }
    }

    #[test]
    fn a_group_continued_from_any_saved_state_ends_as_if_never_stopped() {
        let data = DataConfig { examples: 200, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        let setting = |text: &str| text.parse::<toml::Table>().unwrap();
        // Two lineages, a fork, label noise and momentum: every piece of the group's state matters.
        let config = PopulationConfig {
            seeds: vec![1, 2],
            settings: vec![setting("batch_size = 8"), setting("batch_size = 16\nlabel_noise = 0.1")],
            fork_step: Some(6),
            every_checkpoint: true,
            splits: vec![Split::Test],
            ..PopulationConfig::default()
        };
        let train = TrainConfig { epochs: 2, checkpoint_every: 7, momentum: 0.9, ..TrainConfig::default() };
        let plan = PopulationPlan::new(&config, &train).unwrap();
        let (saves, _) = continued_from_every_save(&plan, &config, &splits, 7);
        let inside = saves.iter().filter(|(s, _)| s.run.is_some()).count();
        assert!(inside > 20 && saves.len() > inside, "saved inside runs and between them: {}", saves.len());
    }

    #[test]
    fn a_batched_group_continued_from_any_saved_state_ends_as_if_never_stopped() {
        let data = DataConfig { examples: 200, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        // Five runs in two batches (1 MB holds three of these MLPs), label
        // noise, momentum and a member at every checkpoint: every piece of a
        // batch's state matters, and a state saved between batches too.
        let config = PopulationConfig {
            models: vec![ModelConfig { hidden: vec![128, 128], ..ModelConfig::default() }],
            seeds: vec![1, 2, 3, 4, 5],
            settings: vec!["label_noise = 0.1".parse::<toml::Table>().unwrap()],
            batch: MemberBatch::Auto,
            batch_memory_mb: 1,
            every_checkpoint: true,
            splits: vec![Split::Test],
            ..PopulationConfig::default()
        };
        let train =
            TrainConfig { epochs: 2, batch_size: 8, checkpoint_every: 7, momentum: 0.9, ..TrainConfig::default() };
        let plan = PopulationPlan::new(&config, &train).unwrap();
        let pretrain = crate::manifest::PretrainConfig::default();
        let inputs = PopulationInputs::on_cpu(&config, &pretrain, &splits, 5);
        let parts: Vec<usize> = batched::parts(&plan, &plan.runs, &inputs).unwrap().iter().map(|p| p.len()).collect();
        assert_eq!(parts, [3, 2], "the test wants two batches");
        let (saves, stopped) = continued_from_every_save(&plan, &config, &splits, 5);
        let inside = saves.iter().filter(|(s, _)| s.batch.is_some()).count();
        let between = saves.iter().filter(|(s, _)| s.batch.is_none() && s.finished == 3).count();
        assert!(inside > 30 && between == 1, "saved inside batches ({inside}) and between them ({between})");
        assert!(stopped.batch.is_some(), "a stop saves the batch");
    }

    #[test]
    fn a_unit_reports_its_steps_up_to_their_total() {
        let data = DataConfig { examples: 200, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        let pretrain = crate::manifest::PretrainConfig::default();
        // 140 training examples: 18 steps an epoch of 8 (the last short), 2 epochs.
        let train = TrainConfig { batch_size: 8, ..TrainConfig::default() };
        for (batch, steps) in [(MemberBatch::Runs(1), 3 * 36), (MemberBatch::Runs(3), 36)] {
            let config =
                PopulationConfig { seeds: vec![1, 2, 3], epochs: vec![2], batch, ..PopulationConfig::default() };
            let plan = PopulationPlan::new(&config, &train).unwrap();
            let seen: RefCell<Vec<UnitSteps>> = RefCell::default();
            let sink = |at: UnitSteps| seen.borrow_mut().push(at);
            let inputs =
                PopulationInputs { progress: Some(&sink), ..PopulationInputs::on_cpu(&config, &pretrain, &splits, 5) };
            Population::train_runs(&plan, &plan.runs, &inputs, &AtomicBool::new(false), None).unwrap();
            let seen = seen.into_inner();
            let last = seen.last().unwrap();
            assert_eq!((last.steps, last.runs), ((steps, steps), (3, 3)), "{batch:?}");
            assert!(seen.windows(2).all(|w| w[0].steps.0 <= w[1].steps.0), "{batch:?}: steps only grow");
            assert!(seen.iter().all(|at| at.epoch.0 <= 2.0 && at.epoch.1 == 2), "{batch:?}");
        }
    }

    /// Trains `plan` whole, saving at every chance, and checks that it ends
    /// as the run that saves nothing, that a run continued from every
    /// `every`th save (and the last) ends the same, and that a stop asked
    /// for at once saves and says where (step 0); the saves and the state
    /// the stop saved.
    fn continued_from_every_save(
        plan: &PopulationPlan,
        config: &PopulationConfig,
        splits: &Splits,
        every: usize,
    ) -> (Vec<(GroupState, std::path::PathBuf)>, GroupState) {
        let pretrain = crate::manifest::PretrainConfig::default();
        let store = EverySave { dir: tempfile::tempdir().unwrap(), saved: Default::default(), resume_from: None };
        let inputs = |store| PopulationInputs { store, ..PopulationInputs::on_cpu(config, &pretrain, splits, 5) };
        let never = AtomicBool::new(false);
        let whole = Population::train_runs(plan, &plan.runs, &inputs(Some(&store)), &never, None).unwrap();
        assert_eq!(whole, Population::train_runs(plan, &plan.runs, &inputs(None), &never, None).unwrap());
        let saves = store.saved.borrow().clone();
        let moments: Vec<usize> = (0..saves.len()).step_by(every).chain([saves.len() - 1]).collect();
        let stores: Vec<EverySave> = (moments.iter())
            .map(|&k| EverySave { resume_from: Some(k), saved: RefCell::new(saves.clone()), ..store_in(&store) })
            .collect();
        for (again, &k) in stores.iter().zip(&moments) {
            let continued = Population::train_runs(plan, &plan.runs, &inputs(Some(again)), &never, None).unwrap();
            assert!(continued == whole, "continued from save {k} (step {}) differs", saves[k].0.steps());
        }
        let stop = AtomicBool::new(true);
        let fresh = EverySave { dir: tempfile::tempdir().unwrap(), saved: Default::default(), resume_from: None };
        let err = Population::train_runs(plan, &plan.runs, &inputs(Some(&fresh)), &stop, None).unwrap_err();
        assert_eq!(err.stopped(), Some(crate::train::Stopped { step: 0, saved: true }));
        let stopped = fresh.saved.borrow()[0].0.clone();
        (saves, stopped)
    }

    /// A store over the same folder as `store`, nothing saved yet.
    fn store_in(store: &EverySave) -> EverySave {
        EverySave {
            dir: tempfile::TempDir::new_in(store.dir.path()).unwrap(),
            saved: Default::default(),
            resume_from: None,
        }
    }

    #[test]
    fn observations_name_unknown_splits_and_kinds() {
        let p = small_population(1);
        let obs = p
            .observations(&[
                ObservationRequest::new("test", observation::POPULATION_CORRECT),
                ObservationRequest::new("test", observation::POPULATION_RUN),
            ])
            .unwrap();
        assert_eq!(obs[0].array.shape.to_vec(), vec![12, p.splits["test"].labels.len() as u64]);
        let err = p.observations(&[ObservationRequest::new("shifted", observation::LABELS)]).unwrap_err();
        assert!(err.to_string().contains("population.splits"), "{err}");
        let err = p.observations(&[ObservationRequest::new("test", observation::LOGITS)]).unwrap_err();
        assert!(err.to_string().contains("does not exist in a population"), "{err}");
    }
}

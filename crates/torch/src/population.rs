//! The members of a population: training every run, taking its members and
//! evaluating them into prediction matrices (libtorch).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use crate::error::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};
use tessera_sdk::{observation, Array, Observation, ObservationRequest, SeedRng};

use crate::data::readers::{npy, write_npy};
use crate::data::Splits;
#[cfg(test)]
use crate::manifest::Split;
use crate::manifest::{PopulationConfig, PretrainMethod, TrainConfig};
use crate::model::Model;
use crate::train::{self, TensorData};

pub use tessera_config::population::*;

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

/// The prediction matrix of one split: row `i` is member `i`.
#[derive(Debug, Clone, PartialEq, Default)]
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

/// A population: its members and their predictions on each split.
#[derive(Debug, Clone, PartialEq, Default)]
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
    /// Where pretrained encoders are saved (`<architecture>.safetensors`).
    pub encoders: Option<&'a Path>,
    /// The data (clean labels).
    pub splits: &'a Splits,
    /// The device.
    pub device: Device,
    /// The population's seed.
    pub seed: u64,
}

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
        let inputs = PopulationInputs { config, pretrain, encoders, splits, device, seed };
        let mut population = Population::default();
        for group in plan.groups(config, pretrain) {
            population.append(Population::train_runs(&plan, &group, &inputs, cancel, progress)?)?;
        }
        Ok(population)
    }

    /// Trains `runs` of `plan` (one of its groups), members in row order.
    pub fn train_runs(
        plan: &PopulationPlan,
        runs: &[RunSpec],
        inputs: &PopulationInputs,
        cancel: &AtomicBool,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Population> {
        let (config, splits, device) = (inputs.config, inputs.splits, inputs.device);
        let shared = SharedTensors {
            train: TensorData::new(&splits.train, device),
            evaluated: config
                .splits
                .iter()
                .map(|name| Ok((name.to_string(), TensorData::new(splits.get(name.as_str())?, device))))
                .collect::<Result<_>>()?,
        };
        let mut population = Population::default();
        for (name, data) in &shared.evaluated {
            let labels = Vec::<i64>::try_from(&data.y.to_device(Device::Cpu))?;
            let matrix = SplitMatrix { labels, classes: splits.train.classes, ..Default::default() };
            population.splits.insert(name.clone(), matrix);
        }
        let mut start: Option<(usize, Option<Model>)> = None;
        // The fork parent's state, per architecture and seed.
        let mut fork: Option<(Model, u64, u64)> = None;
        let mut lineage: Option<(usize, usize)> = None;
        for spec in runs {
            if start.as_ref().map(|(a, _)| *a) != Some(spec.architecture) {
                start = Some((spec.architecture, Self::shared_start(plan, spec.architecture, inputs, &shared)?));
            }
            if lineage != Some((spec.architecture, spec.seed_index)) {
                lineage = Some((spec.architecture, spec.seed_index));
                fork = None;
            }
            let base = start.as_ref().and_then(|(_, m)| m.as_ref());
            let run = OneRun { plan, spec, inputs, shared: &shared, base };
            run.train(&mut fork, &mut population, cancel)?;
            log::info!("population run {} of {} ({}) trained", spec.run + 1, plan.runs.len(), run.label());
            if let Some(bar) = progress {
                bar.inc(1);
            }
        }
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
            mine.correct.extend(matrix.correct);
            mine.true_probability.extend(matrix.true_probability);
            mine.probabilities.extend(matrix.probabilities);
            mine.predictions.extend(matrix.predictions);
        }
        self.members.extend(other.members);
        self.train_labels.extend(other.train_labels);
        Ok(())
    }

    /// One start for every run of an architecture: its pretrained encoder,
    /// or (frozen features) one random network; none otherwise.
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
        let base = Model::new(architecture, &splits.train.shape, classes, device, base_seed)?;
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
                let file = crate::report::file_stem_safe(&format!("{}.safetensors", describe(architecture)));
                base.save(&dir.join(file))?;
            }
        }
        Ok(Some(base))
    }
}

/// One run of a population, ready to train.
struct OneRun<'a> {
    plan: &'a PopulationPlan,
    spec: &'a RunSpec,
    inputs: &'a PopulationInputs<'a>,
    shared: &'a SharedTensors,
    base: Option<&'a Model>,
}

impl OneRun<'_> {
    fn label(&self) -> String {
        let config = self.inputs.config;
        format!(
            "{}, seed {}, {}",
            describe(&self.plan.architectures[self.spec.architecture].0),
            config.seeds[self.spec.seed_index],
            setting_label(&config.settings[self.spec.setting])
        )
    }

    /// The run's seed: one per architecture and seed, shared by its settings.
    fn seed(&self) -> u64 {
        let config = self.inputs.config;
        let member_seed = config.seeds[self.spec.seed_index];
        let lineage = (self.spec.architecture * config.seeds.len() + self.spec.seed_index) as u64;
        SeedRng::derive(self.inputs.seed ^ member_seed.wrapping_mul(0x9E37_79B9), lineage).next_u64()
    }

    /// The initial model: the run's seed, over the shared start, or the
    /// fork parent's state (with its step and examples seen).
    fn initial_model(&self, fork: &Option<(Model, u64, u64)>) -> Result<(Model, u64, u64)> {
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
    fn labels(&self, cfg: &TrainConfig) -> Result<Vec<i64>> {
        let train = &self.inputs.splits.train;
        let mut labels = train.labels.clone();
        if cfg.label_noise > 0.0 {
            let noise_seed = SeedRng::derive(self.seed(), 0x401 ^ self.spec.setting as u64).next_u64();
            crate::data::flip_labels(&mut labels, train.classes, cfg.label_noise, noise_seed)?;
        }
        Ok(labels)
    }

    /// Evaluates `model` on every split into `population`'s matrices; the accuracies.
    fn evaluate(&self, model: &Model, population: &mut Population) -> Result<BTreeMap<String, f64>> {
        let mut accuracy = BTreeMap::new();
        for (split, data) in &self.shared.evaluated {
            let probabilities = tch::no_grad(|| model.forward(&data.x).softmax(-1, Kind::Float));
            let truth = probabilities.gather(1, &data.y.unsqueeze(1), false).squeeze_dim(1);
            let predicted = probabilities.argmax(-1, false);
            let hit = predicted.eq_tensor(&data.y);
            let matrix = population.splits.get_mut(split).expect("inserted above");
            let hits = Vec::<u8>::try_from(&hit.to_kind(Kind::Uint8).to_device(Device::Cpu))?;
            let n = hits.len().max(1);
            accuracy.insert(split.clone(), hits.iter().map(|&h| h as f64).sum::<f64>() / n as f64);
            matrix.correct.extend(hits);
            matrix.predictions.extend(Vec::<i32>::try_from(&predicted.to_kind(Kind::Int).to_device(Device::Cpu))?);
            matrix.true_probability.extend(train::to_vec_f32(&truth)?);
            if self.inputs.config.probabilities {
                matrix.probabilities.extend(train::to_vec_f32(&probabilities)?);
            }
        }
        Ok(accuracy)
    }

    /// Trains the run, adding a member at each training length (or
    /// checkpoint), and keeps the fork parent's state when it passes the fork.
    fn train(
        &self,
        fork: &mut Option<(Model, u64, u64)>,
        population: &mut Population,
        cancel: &AtomicBool,
    ) -> Result<()> {
        let (config, splits, device) = (self.inputs.config, self.inputs.splits, self.inputs.device);
        let (model, start_step, start_seen) = self.initial_model(fork)?;
        let setting = self.spec.setting;
        let base_cfg = &self.plan.settings[setting];
        let cfg = TrainConfig {
            max_examples: base_cfg.max_examples.map(|m| m.saturating_sub(start_seen)),
            ..base_cfg.clone()
        };
        let labels = self.labels(&cfg)?;
        let run_data = (cfg.label_noise > 0.0).then(|| TensorData {
            x: self.shared.train.x.shallow_clone(),
            y: tch::Tensor::from_slice(&labels).to_device(device),
        });
        if self.plan.settings.iter().any(|c| c.label_noise > 0.0) {
            population.train_labels.push(labels);
        }
        let branches = config.fork_step.is_some() && setting != config.fork_from;
        let keep_fork = config.fork_step.filter(|_| setting == config.fork_from && !branches);
        let (architecture, width) = &self.plan.architectures[self.spec.architecture];
        let mut checkpoint = |model: &Model, cp: tessera_sdk::Checkpoint, _loss: f64| -> Result<()> {
            let (step, seen) = (start_step + cp.step, start_seen + cp.examples_seen);
            if keep_fork == Some(step) && fork.is_none() {
                let mut copy = Model::new(architecture, &splits.train.shape, splits.train.classes as i64, device, 0)?;
                copy.vs.copy(&model.vs)?;
                *fork = Some((copy, step, seen));
            }
            let epochs = (seen as f64 / splits.train.len().max(1) as f64 + 1e-9).floor() as u64;
            let at_a_length = cp.epoch.fract() == 0.0 && self.plan.lengths.contains(&epochs);
            if !(config.every_checkpoint || at_a_length) {
                return Ok(());
            }
            let accuracy = self.evaluate(model, population)?;
            population.members.push(Member {
                run: self.spec.run,
                model: describe(architecture),
                width: *width,
                seed: config.seeds[self.spec.seed_index],
                setting,
                setting_label: setting_label(&config.settings[setting]),
                batch_size: cfg.batch_size,
                epochs,
                step,
                examples_seen: seen,
                accuracy,
            });
            Ok(())
        };
        let data = run_data.as_ref().unwrap_or(&self.shared.train);
        train::fit_shuffled(&model, data, &cfg, self.seed(), start_seen, &mut checkpoint, cancel)
            .with_context(|| format!("population run {} ({})", self.spec.run, self.label()))?;
        Ok(())
    }
}

impl Population {
    /// Number of members m.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the population has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Writes `members.json` and, per split, `<split>.correct.npy` (u8, m × n),
    /// `<split>.true-probability.npy` (f32, m × n), `<split>.labels.npy`
    /// (i64, n) and, when kept, `<split>.probabilities.npy` (f32, m × n ×
    /// classes) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::report::write_atomic(&dir.join("members.json"), &serde_json::to_vec_pretty(&self.members)?)?;
        let m = self.members.len();
        if let Some(first) = self.train_labels.first() {
            let bytes: Vec<u8> = self.train_labels.iter().flatten().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join("train-labels.npy"), "<i8", &[self.train_labels.len(), first.len()], &bytes)?;
        }
        for (split, matrix) in &self.splits {
            let n = matrix.labels.len();
            write_npy(&dir.join(format!("{split}.correct.npy")), "|u1", &[m, n], &matrix.correct)?;
            let bytes: Vec<u8> = matrix.true_probability.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.true-probability.npy")), "<f4", &[m, n], &bytes)?;
            let bytes: Vec<u8> = matrix.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.labels.npy")), "<i8", &[n], &bytes)?;
            let bytes: Vec<u8> = matrix.predictions.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.predictions.npy")), "<i4", &[m, n], &bytes)?;
            if !matrix.probabilities.is_empty() {
                let bytes: Vec<u8> = matrix.probabilities.iter().flat_map(|v| v.to_le_bytes()).collect();
                write_npy(&dir.join(format!("{split}.probabilities.npy")), "<f4", &[m, n, matrix.classes], &bytes)?;
            }
        }
        Ok(())
    }

    /// Reads a population that [`Population::save`] wrote, checking that the
    /// matrices agree with `members.json` and with each other.
    pub fn load(dir: &Path) -> Result<Population> {
        let members_path = dir.join("members.json");
        let text = std::fs::read(&members_path).with_context(|| {
            format!(
                "reading {} (population.load names the `population/<variant>` folder of a run)",
                members_path.display()
            )
        })?;
        let members: Vec<Member> =
            serde_json::from_slice(&text).with_context(|| format!("{}: not a member list", members_path.display()))?;
        let m = members.len();
        let mut splits = BTreeMap::new();
        for entry in std::fs::read_dir(dir)? {
            let file = entry?.file_name().to_string_lossy().to_string();
            let Some(split) = file.strip_suffix(".labels.npy") else { continue };
            let labels = npy(&dir.join(&file))?;
            let n = labels.values.len();
            let matrix_of = |kind: &str| -> Result<Vec<f64>> {
                let path = dir.join(format!("{split}.{kind}.npy"));
                let a = npy(&path)?;
                if a.shape != [m, n] {
                    bail!(
                        "{}: shape {:?}, but members.json has {m} members and the labels {n} points",
                        path.display(),
                        a.shape
                    );
                }
                Ok(a.values)
            };
            let correct = matrix_of("correct")?.into_iter().map(|v| (v != 0.0) as u8).collect();
            let true_probability = matrix_of("true-probability")?.into_iter().map(|v| v as f32).collect();
            let predictions = matrix_of("predictions")?.into_iter().map(|v| v as i32).collect();
            let labels: Vec<i64> = labels.values.into_iter().map(|v| v as i64).collect();
            let mut classes = labels.iter().max().map_or(0, |&c| c as usize + 1);
            let mut probabilities = vec![];
            let path = dir.join(format!("{split}.probabilities.npy"));
            if path.exists() {
                let a = npy(&path)?;
                if a.shape.len() != 3 || a.shape[..2] != [m, n] {
                    bail!("{}: shape {:?}, not [{m}, {n}, classes]", path.display(), a.shape);
                }
                classes = a.shape[2];
                probabilities = a.values.into_iter().map(|v| v as f32).collect();
            }
            splits.insert(
                split.to_string(),
                SplitMatrix { labels, correct, true_probability, probabilities, predictions, classes },
            );
        }
        if splits.is_empty() {
            bail!("{}: no `<split>.labels.npy` in the folder", dir.display());
        }
        let path = dir.join("train-labels.npy");
        let train_labels = if path.exists() {
            let a = npy(&path)?;
            let width = a.shape.get(1).copied().unwrap_or(0).max(1);
            a.values.chunks(width).map(|row| row.iter().map(|&v| v as i64).collect()).collect()
        } else {
            vec![]
        };
        Ok(Population { members, splits, train_labels })
    }

    /// The observations `requests` asks for: the matrices, the members' runs,
    /// the labels and the point ids.
    pub fn observations(&self, requests: &[ObservationRequest]) -> Result<Vec<Observation>> {
        let m = self.members.len() as u64;
        let mut out = Vec::new();
        for r in requests {
            let (split, kind) = (r.split.as_str(), r.kind.as_str());
            if out.iter().any(|o: &Observation| o.split.as_str() == split && o.kind.as_str() == kind) {
                continue;
            }
            let matrix = self.splits.get(split).with_context(|| {
                let known: Vec<&str> = self.splits.keys().map(String::as_str).collect();
                format!(
                    "the population was not evaluated on split `{split}` (evaluated: {}); add it to population.splits",
                    known.join(", ")
                )
            })?;
            let n = matrix.labels.len() as u64;
            let array = match kind {
                observation::POPULATION_CORRECT => {
                    Array::f32(vec![m, n], matrix.correct.iter().map(|&c| c as f32).collect())
                }
                observation::POPULATION_TRUE_PROBABILITY => Array::f32(vec![m, n], matrix.true_probability.clone()),
                observation::POPULATION_RUN => Array::i64(vec![m], self.members.iter().map(|x| x.run as i64).collect()),
                observation::POPULATION_MEMBERS => Array::i64(
                    vec![m, 6],
                    self.members
                        .iter()
                        .flat_map(|x| {
                            [x.run, x.setting, x.seed as usize, x.step as usize, x.examples_seen as usize, x.batch_size]
                                .map(|v| v as i64)
                        })
                        .collect(),
                ),
                observation::POPULATION_PREDICTIONS => {
                    Array::i64(vec![m, n], matrix.predictions.iter().map(|&p| p as i64).collect())
                }
                observation::POPULATION_TRAIN_LABELS if self.train_labels.is_empty() => {
                    bail!("observation `{kind}` needs label noise in some population setting (every run trains on the clean labels)")
                }
                observation::POPULATION_TRAIN_LABELS => {
                    let width = self.train_labels[0].len() as u64;
                    Array::i64(
                        vec![m, width],
                        self.members.iter().flat_map(|x| self.train_labels[x.run].clone()).collect(),
                    )
                }
                observation::POPULATION_PROBABILITIES if matrix.probabilities.is_empty() => {
                    bail!("observation `{kind}` needs `population.probabilities = true` (softmax outputs are kept only then)")
                }
                observation::POPULATION_PROBABILITIES => {
                    Array::f32(vec![m, n, matrix.classes as u64], matrix.probabilities.clone())
                }
                observation::LABELS => Array::i64(vec![n], matrix.labels.clone()),
                observation::EXAMPLE_IDS => Array::i64(vec![n], (0..n as i64).collect()),
                other => bail!(
                    "observation `{other}` does not exist in a population experiment (known: {})",
                    observation::POPULATION_KINDS.join(", ")
                ),
            };
            out.push(Observation { split: split.into(), kind: kind.into(), array });
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::DataConfig;
    use crate::manifest::{ModelConfig, ModelKind};

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

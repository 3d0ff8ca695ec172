//! Populations of models (`[population]`): many training runs — architectures
//! × widths × seeds — each observed after several training lengths, and every
//! member evaluated on every point of the chosen splits. The result is a
//! prediction matrix per split (members × points: correctness and the
//! probability of the true label), saved as `.npy` so that it can be studied
//! again without retraining (`population.load`).

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};
use tch::{Device, Kind};
use tessera_sdk::{observation, Array, Observation, ObservationRequest, SeedRng};

use crate::data::readers::{npy, write_npy};
use crate::data::Splits;
use crate::manifest::{ModelConfig, PopulationConfig, TrainConfig};
use crate::model::Model;
use crate::train::{self, TensorData};

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
    /// Epochs trained.
    pub epochs: u64,
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
}

/// A population: its members and their predictions on each split.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Population {
    /// The members, in row order.
    pub members: Vec<Member>,
    /// The prediction matrix of each evaluated split.
    pub splits: BTreeMap<String, SplitMatrix>,
}

/// `model` with its widths multiplied by `width` (rounded, at least 1):
/// `hidden` of an `mlp`, `channels` of a `cnn`, `width` of a `resnet`; other
/// kinds have no width and come back unchanged.
pub fn scaled(model: &ModelConfig, width: f64) -> ModelConfig {
    let scale = |w: i64| ((w as f64 * width).round() as i64).max(1);
    let mut out = model.clone();
    match model.kind.as_str() {
        "mlp" => out.hidden = model.hidden.iter().map(|&w| scale(w)).collect(),
        "cnn" => out.channels = model.channels.iter().map(|&w| scale(w)).collect(),
        "resnet" => out.width = scale(model.width),
        _ => {}
    }
    out
}

/// A short name of an architecture: `mlp[64-64]`, `cnn[16-32]+bn`, `resnet[16x3x1]`, `linear`.
pub fn describe(model: &ModelConfig) -> String {
    let join = |v: &[i64]| v.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-");
    match model.kind.as_str() {
        "mlp" => format!("mlp[{}]", join(&model.hidden)),
        "cnn" => format!("cnn[{}]{}", join(&model.channels), if model.batch_norm { "+bn" } else { "" }),
        "resnet" => format!("resnet[{}x{}x{}]", model.width, model.stages, model.depth),
        other => other.to_string(),
    }
}

impl Population {
    /// Trains every run of `config` on `splits.train` with `train`'s
    /// optimizer and evaluates each member on `config.splits`. Deterministic
    /// for a given `seed`.
    pub fn train(
        config: &PopulationConfig,
        train: &TrainConfig,
        splits: &Splits,
        device: Device,
        seed: u64,
        cancel: &AtomicBool,
        progress: Option<&indicatif::ProgressBar>,
    ) -> Result<Population> {
        let lengths = config.epochs.iter().copied().collect::<std::collections::BTreeSet<u64>>();
        let (Some(&longest), false) = (lengths.last(), lengths.contains(&0)) else {
            bail!("population.epochs needs at least one training length of 1 or more epochs");
        };
        if config.models.is_empty() || config.widths.is_empty() || config.seeds.is_empty() {
            bail!("population.models, population.widths and population.seeds each need at least one entry");
        }
        if let Some(w) = config.widths.iter().find(|&&w| w.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)) {
            bail!("population.widths: {w} is not a positive multiplier");
        }
        let mut population = Population::default();
        let evaluated: Vec<(String, TensorData)> = config
            .splits
            .iter()
            .map(|name| Ok((name.clone(), TensorData::new(splits.get(name)?, device))))
            .collect::<Result<_>>()?;
        for (name, data) in &evaluated {
            let labels = Vec::<i64>::try_from(&data.y.to_device(Device::Cpu))?;
            population.splits.insert(name.clone(), SplitMatrix { labels, ..Default::default() });
        }
        let cfg = TrainConfig {
            epochs: longest,
            checkpoint_every: 0,
            checkpoint_steps: vec![],
            checkpoint_log: 0,
            max_examples: None,
            ..train.clone()
        };
        let train_data = TensorData::new(&splits.train, device);
        let classes = splits.train.classes as i64;
        // Distinct architectures: a multiplier that changes nothing adds no run.
        let mut architectures: Vec<(ModelConfig, f64)> = Vec::new();
        for model in &config.models {
            for &width in &config.widths {
                let m = scaled(model, width);
                if !architectures.iter().any(|(a, _)| *a == m) {
                    architectures.push((m, width));
                }
            }
        }
        let runs = architectures.len() * config.seeds.len();
        if let Some(bar) = progress {
            bar.set_length(runs as u64 * longest);
        }
        let mut run = 0;
        for (architecture, width) in &architectures {
            for &member_seed in &config.seeds {
                let run_seed = SeedRng::derive(seed ^ member_seed.wrapping_mul(0x9E37_79B9), run as u64).next_u64();
                let model = Model::new(architecture, &splits.train.shape, classes, device, run_seed)?;
                let name = describe(architecture);
                let mut checkpoint = |model: &Model, cp: tessera_sdk::Checkpoint, _loss: f64| -> Result<()> {
                    if let Some(bar) = progress {
                        bar.inc(1);
                    }
                    let epochs = cp.epoch.round() as u64;
                    if !lengths.contains(&epochs) {
                        return Ok(());
                    }
                    let mut accuracy = BTreeMap::new();
                    for (split, data) in &evaluated {
                        let probabilities = tch::no_grad(|| model.forward(&data.x).softmax(-1, Kind::Float));
                        let truth = probabilities.gather(1, &data.y.unsqueeze(1), false).squeeze_dim(1);
                        let hit = probabilities.argmax(-1, false).eq_tensor(&data.y);
                        let matrix = population.splits.get_mut(split).expect("inserted above");
                        let hits = Vec::<u8>::try_from(&hit.to_kind(Kind::Uint8).to_device(Device::Cpu))?;
                        let n = hits.len().max(1);
                        accuracy.insert(split.clone(), hits.iter().map(|&h| h as f64).sum::<f64>() / n as f64);
                        matrix.correct.extend(hits);
                        matrix.true_probability.extend(train::to_vec_f32(&truth)?);
                    }
                    population.members.push(Member {
                        run,
                        model: name.clone(),
                        width: *width,
                        seed: member_seed,
                        epochs,
                        accuracy,
                    });
                    Ok(())
                };
                train::fit_shuffled(&model, &train_data, &cfg, run_seed, &mut checkpoint, cancel)
                    .with_context(|| format!("population run {run} ({name}, seed {member_seed})"))?;
                log::info!("population run {} of {runs} ({name}, seed {member_seed}) trained", run + 1);
                run += 1;
            }
        }
        Ok(population)
    }

    /// Number of members m.
    pub fn len(&self) -> usize {
        self.members.len()
    }

    /// Whether the population has no member.
    pub fn is_empty(&self) -> bool {
        self.members.is_empty()
    }

    /// Writes `members.json` and, per split, `<split>.correct.npy` (u8, m × n),
    /// `<split>.true-probability.npy` (f32, m × n) and `<split>.labels.npy`
    /// (i64, n) into `dir`.
    pub fn save(&self, dir: &Path) -> Result<()> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        crate::report::write_atomic(&dir.join("members.json"), &serde_json::to_vec_pretty(&self.members)?)?;
        let m = self.members.len();
        for (split, matrix) in &self.splits {
            let n = matrix.labels.len();
            write_npy(&dir.join(format!("{split}.correct.npy")), "|u1", &[m, n], &matrix.correct)?;
            let bytes: Vec<u8> = matrix.true_probability.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.true-probability.npy")), "<f4", &[m, n], &bytes)?;
            let bytes: Vec<u8> = matrix.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
            write_npy(&dir.join(format!("{split}.labels.npy")), "<i8", &[n], &bytes)?;
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
            let labels = labels.values.into_iter().map(|v| v as i64).collect();
            splits.insert(split.to_string(), SplitMatrix { labels, correct, true_probability });
        }
        if splits.is_empty() {
            bail!("{}: no `<split>.labels.npy` in the folder", dir.display());
        }
        Ok(Population { members, splits })
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
                observation::LABELS => Array::i64(vec![n], matrix.labels.clone()),
                observation::EXAMPLE_IDS => Array::i64(vec![n], (0..n as i64).collect()),
                other => bail!(
                    "observation `{other}` does not exist in a population experiment (known: {}, {}, {}, {}, {})",
                    observation::POPULATION_CORRECT,
                    observation::POPULATION_TRUE_PROBABILITY,
                    observation::POPULATION_RUN,
                    observation::LABELS,
                    observation::EXAMPLE_IDS
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

    fn small_population(seed: u64) -> Population {
        let data = DataConfig { examples: 300, features: 4, classes: 3, separation: 1.5, ..DataConfig::default() };
        let splits = crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap();
        let config = PopulationConfig {
            models: vec![ModelConfig { kind: "linear".into(), ..ModelConfig::default() }, ModelConfig::default()],
            widths: vec![0.5, 1.0],
            seeds: vec![0, 1],
            epochs: vec![1, 3],
            splits: vec!["test".into(), "validation".into()],
            load: None,
        };
        let train = TrainConfig { batch_size: 16, ..TrainConfig::default() };
        Population::train(&config, &train, &splits, Device::Cpu, seed, &AtomicBool::new(false), None).unwrap()
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
        let err = format!("{:#}", Population::load(dir.path()).unwrap_err());
        assert!(err.contains("test.correct.npy") && err.contains("members.json has 12 members"), "{err}");
        let err = format!("{:#}", Population::load(&dir.path().join("nowhere")).unwrap_err());
        assert!(err.contains("members.json"), "{err}");
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

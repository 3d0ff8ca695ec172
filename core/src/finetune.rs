//! The finetuning oracle: trains a copy of the pretrained model with a
//! candidate set of blocks trainable (plus the head, always fresh and always
//! trained) and returns its validation accuracy, by k-fold cross-validation
//! on the training split or on the validation split.
//!
//! When every trainable block comes after block `j`, blocks `0..j` are frozen
//! and run in evaluation mode, so their output does not change during
//! training: the oracle computes it once per example and keeps it in an
//! [`ActivationCache`] shared by every candidate, fold and epoch. The cache
//! holds at most a budget of bytes; a prefix that does not fit is recomputed
//! in every batch, as without the cache.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use anyhow::{bail, Result};
use tch::{Device, Tensor};
use tessera_sdk::{LayerInfo, SeedRng};

use crate::manifest::{ModelConfig, TrainConfig};
use crate::model::Model;
use crate::plugin::OracleImpl;
use crate::report::{ReportJson, TableJson};
use crate::train::{self, TensorData};

/// Examples per batch when computing a frozen prefix's activations.
const PREFIX_BATCH: i64 = 512;

/// Activations entering a block, for the training and validation splits.
struct CachedPrefix {
    train: Tensor,
    validation: Tensor,
    bytes: u64,
}

/// Frozen-prefix activations by block, least recently used first out,
/// within a memory budget.
pub struct ActivationCache {
    budget_bytes: u64,
    entries: lru::LruCache<usize, CachedPrefix>,
    held_bytes: u64,
    /// Prefixes computed and kept.
    pub computed: u64,
    /// Candidates served from a kept prefix.
    pub hits: u64,
    /// Prefixes too large for the budget (recomputed in every batch instead).
    pub too_large: u64,
}

impl ActivationCache {
    /// A cache that keeps at most `budget_bytes` of activations.
    pub fn new(budget_bytes: u64) -> Self {
        let entries = lru::LruCache::unbounded();
        ActivationCache { budget_bytes, entries, held_bytes: 0, computed: 0, hits: 0, too_large: 0 }
    }

    /// Bytes held now.
    pub fn bytes(&self) -> u64 {
        self.held_bytes
    }

    /// The activations entering block `block` on `train` and `validation`,
    /// computed with `model`'s frozen prefix; `None` when they would not fit
    /// in the budget.
    fn get(
        &mut self,
        model: &Model,
        block: usize,
        train: &TensorData,
        validation: &TensorData,
    ) -> Result<Option<(Tensor, Tensor)>> {
        if let Some(entry) = self.entries.get(&block) {
            self.hits += 1;
            return Ok(Some((entry.train.shallow_clone(), entry.validation.shallow_clone())));
        }
        let width = model.block_input_width(block) as u64;
        let bytes = (train.y.size()[0] + validation.y.size()[0]) as u64 * width * 4;
        if bytes > self.budget_bytes {
            self.too_large += 1;
            return Ok(None);
        }
        while self.held_bytes + bytes > self.budget_bytes {
            let (_, oldest) = self.entries.pop_lru().expect("an entry: a lone prefix fits the budget");
            self.held_bytes -= oldest.bytes;
        }
        let entry = CachedPrefix {
            train: model.prefix_activations(&train.x, block, PREFIX_BATCH)?,
            validation: model.prefix_activations(&validation.x, block, PREFIX_BATCH)?,
            bytes,
        };
        self.computed += 1;
        self.held_bytes += bytes;
        let out = (entry.train.shallow_clone(), entry.validation.shallow_clone());
        self.entries.put(block, entry);
        Ok(Some(out))
    }
}

/// One scored candidate, as the oracle log keeps it.
#[derive(Debug, Clone, PartialEq)]
pub struct OracleCall {
    /// The trainable positions, head included, ascending.
    pub trainable: Vec<u32>,
    /// Folds (1 = the validation split).
    pub folds: u32,
    /// Mean validation accuracy.
    pub score: f64,
    /// Whether it was answered from an earlier identical call.
    pub repeated: bool,
    /// Seconds it took (training and scoring every fold).
    pub seconds: f64,
}

/// The host's oracle for finetuners (see the module documentation).
pub struct FinetuneOracle<'a> {
    /// The pretrained weights with the run's fresh head.
    initial: &'a Model,
    /// The architecture, without a weights file (they come from `initial`).
    model: ModelConfig,
    shape: Vec<usize>,
    classes: i64,
    train: TensorData,
    validation: TensorData,
    config: TrainConfig,
    seed: u64,
    device: Device,
    cache: Option<ActivationCache>,
    memo: HashMap<(Vec<u32>, u32), f64>,
    /// Candidates trained (each fold counts once).
    pub trainings: u64,
    /// Every call, in order.
    pub log: Vec<OracleCall>,
    /// Seconds spent training and scoring.
    pub seconds: f64,
}

/// What a [`FinetuneOracle`] needs besides the pretrained model.
pub struct OracleSetup<'d> {
    /// The model's architecture.
    pub model: &'d ModelConfig,
    /// The training split (folds are drawn from it).
    pub train: &'d crate::data::Dataset,
    /// The validation split (used when a finetuner asks for 1 fold).
    pub validation: &'d crate::data::Dataset,
    /// How each candidate trains (its `epochs` are the oracle's epochs).
    pub config: TrainConfig,
    /// Seeds the folds and each candidate's data order.
    pub seed: u64,
    /// Where tensors live.
    pub device: Device,
    /// Byte budget of the activation cache; 0 turns it off.
    pub cache_bytes: u64,
}

impl<'a> FinetuneOracle<'a> {
    /// An oracle that finetunes copies of `initial`.
    pub fn new(initial: &'a Model, setup: OracleSetup<'_>) -> Self {
        let model = ModelConfig { weights: None, fresh_head: false, ..setup.model.clone() };
        let splittable = initial.is_splittable() && setup.cache_bytes > 0;
        FinetuneOracle {
            initial,
            model,
            shape: setup.train.shape.clone(),
            classes: setup.train.classes as i64,
            train: TensorData::new(setup.train, setup.device),
            validation: TensorData::new(setup.validation, setup.device),
            config: setup.config,
            seed: setup.seed,
            device: setup.device,
            cache: splittable.then(|| ActivationCache::new(setup.cache_bytes)),
            memo: HashMap::new(),
            trainings: 0,
            log: vec![],
            seconds: 0.0,
        }
    }

    /// The activation cache, if on.
    pub fn cache(&self) -> Option<&ActivationCache> {
        self.cache.as_ref()
    }

    /// Adds the oracle's figures to a finetuner's report: trainings, calls,
    /// the cache's counters and the `oracle_calls` table (every call's
    /// blocks, folds, score, whether it was repeated, seconds).
    pub fn add_to_report(&self, report: &mut ReportJson, layers: &[LayerInfo]) {
        report.scalars.insert("oracle_trainings".into(), self.trainings as f64);
        report.scalars.insert("oracle_calls".into(), self.log.len() as f64);
        if let Some(cache) = &self.cache {
            report.scalars.insert("cache_prefixes_computed".into(), cache.computed as f64);
            report.scalars.insert("cache_hits".into(), cache.hits as f64);
            report.scalars.insert("cache_prefixes_too_large".into(), cache.too_large as f64);
        }
        let head = self.head();
        let blocks = |set: &[u32]| -> String {
            let names: Vec<&str> = set
                .iter()
                .filter(|&&p| p != head)
                .filter_map(|&p| layers.get(p as usize))
                .map(|l| l.name.as_str())
                .collect();
            if names.is_empty() {
                "(head only)".to_string()
            } else {
                names.join(" ")
            }
        };
        let rows = self.log.iter().enumerate().map(|(i, c)| {
            vec![
                serde_json::json!(i + 1),
                serde_json::json!(blocks(&c.trainable)),
                serde_json::json!(c.folds),
                serde_json::json!(c.score),
                serde_json::json!(c.repeated),
                serde_json::json!(c.seconds),
            ]
        });
        report.tables.push(TableJson {
            name: "oracle_calls".into(),
            columns: ["call", "blocks", "folds", "score", "repeated", "seconds"].map(String::from).to_vec(),
            rows: rows.collect(),
        });
    }

    /// The head's position (the last layer).
    fn head(&self) -> u32 {
        self.initial.layers().len() as u32 - 1
    }

    /// Trains `trainable` on the training rows `train_rows` (all when None)
    /// and scores it on `held` rows of the training split, or on the
    /// validation split when `held` is None; returns the trained copy too.
    fn train_candidate(
        &mut self,
        trainable: &[u32],
        train_rows: Option<&Tensor>,
        held: Option<&Tensor>,
        fold: u64,
    ) -> Result<(Model, f64)> {
        let mut model = Model::new(&self.model, &self.shape, self.classes, self.device, 0)?;
        model.vs.copy(&self.initial.vs)?;
        model.set_trainable(trainable)?;
        let first = trainable.iter().copied().min().unwrap_or(0) as usize;
        let cached = match self.cache.as_mut() {
            Some(cache) if first > 0 => cache.get(self.initial, first, &self.train, &self.validation)?,
            _ => None,
        };
        let (train_x, validation_x) = match cached {
            Some((t, v)) => {
                model.start_at_block(first)?;
                (t, v)
            }
            None => (self.train.x.shallow_clone(), self.validation.x.shallow_clone()),
        };
        let pick = |x: &Tensor, y: &Tensor, rows: Option<&Tensor>| match rows {
            Some(r) => TensorData { x: x.index_select(0, r), y: y.index_select(0, r) },
            None => TensorData { x: x.shallow_clone(), y: y.shallow_clone() },
        };
        let fit_on = pick(&train_x, &self.train.y, train_rows);
        let score_on = match held {
            Some(rows) => pick(&train_x, &self.train.y, Some(rows)),
            None => pick(&validation_x, &self.validation.y, None),
        };
        // The seed depends on the candidate and the fold only, so a set
        // scores the same whenever and however often it is asked.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (trainable, fold).hash(&mut hasher);
        let seed = SeedRng::derive(self.seed, hasher.finish()).next_u64();
        self.trainings += 1;
        train::fit_shuffled(&model, &fit_on, &self.config, seed, 0, &mut |_, _, _| Ok(()), &AtomicBool::new(false))?;
        let accuracy = train::evaluate(&model, &score_on).accuracy;
        Ok((model, accuracy))
    }
}

impl OracleImpl for FinetuneOracle<'_> {
    fn score(&mut self, trainable: &[u32], folds: u32) -> Result<f64> {
        let head = self.head();
        if let Some(&bad) = trainable.iter().find(|&&p| p > head) {
            bail!("layer position {bad} does not exist (the model has {} layers)", head + 1);
        }
        let mut set: Vec<u32> = trainable.iter().copied().chain([head]).collect();
        set.sort_unstable();
        set.dedup();
        let key = (set.clone(), folds.max(1));
        if let Some(&score) = self.memo.get(&key) {
            self.log.push(OracleCall { trainable: set, folds: key.1, score, repeated: true, seconds: 0.0 });
            return Ok(score);
        }
        let started = Instant::now();
        let score = if folds <= 1 {
            if self.validation.y.size()[0] == 0 {
                bail!("the validation split is empty: ask for k > 1 folds, or set data.validation_fraction");
            }
            self.train_candidate(&set, None, None, 0)?.1
        } else {
            let n = self.train.y.size()[0] as usize;
            let k = folds as usize;
            if n < k {
                bail!("{k}-fold validation needs at least {k} training examples, the split has {n}");
            }
            let mut ids: Vec<i64> = (0..n as i64).collect();
            SeedRng::derive(self.seed, 0xF01D).shuffle(&mut ids);
            let mut total = 0.0;
            for fold in 0..k {
                let held: Vec<i64> = ids.iter().copied().skip(fold).step_by(k).collect();
                let kept: Vec<i64> =
                    ids.iter().copied().enumerate().filter(|(i, _)| i % k != fold).map(|(_, id)| id).collect();
                let rows = |v: &[i64]| Tensor::from_slice(v).to_device(self.device);
                total += self.train_candidate(&set, Some(&rows(&kept)), Some(&rows(&held)), fold as u64 + 1)?.1;
            }
            total / k as f64
        };
        let seconds = started.elapsed().as_secs_f64();
        self.seconds += seconds;
        self.memo.insert(key.clone(), score);
        self.log.push(OracleCall { trainable: set, folds: key.1, score, repeated: false, seconds });
        Ok(score)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::data::Dataset;
    use crate::manifest::ModelKind;

    /// A ResNet with blocks stem, layer1.0, layer2.0, pool and the head (4).
    fn setup() -> (Model, Dataset, Dataset, ModelConfig) {
        let config = ModelConfig { kind: ModelKind::Resnet, width: 4, depth: 1, stages: 2, ..Default::default() };
        let all = crate::data::blobs(120, 64, 3, 2.0, 4).unwrap();
        let reshape = |d: Dataset| Dataset { shape: vec![1, 8, 8], ..d };
        let train = reshape(all.subset(&(0..90).collect::<Vec<_>>()));
        let validation = reshape(all.subset(&(90..120).collect::<Vec<_>>()));
        (Model::new(&config, &[1, 8, 8], 3, Device::Cpu, 7).unwrap(), train, validation, config)
    }

    fn oracle<'a>(
        model: &'a Model,
        train: &Dataset,
        validation: &Dataset,
        config: &ModelConfig,
        cache_bytes: u64,
    ) -> FinetuneOracle<'a> {
        let train_config = TrainConfig { epochs: 2, batch_size: 16, lr: 0.05, ..TrainConfig::default() };
        FinetuneOracle::new(
            model,
            OracleSetup {
                model: config,
                train,
                validation,
                config: train_config,
                seed: 3,
                device: Device::Cpu,
                cache_bytes,
            },
        )
    }

    #[test]
    fn the_cache_gives_the_scores_of_recomputing_the_frozen_prefix() {
        let (model, train, validation, config) = setup();
        let mut plain = oracle(&model, &train, &validation, &config, 0);
        let mut cached = oracle(&model, &train, &validation, &config, 1 << 30);
        for set in [vec![], vec![2], vec![1, 2], vec![0]] {
            for folds in [1, 3] {
                let a = plain.score(&set, folds).unwrap();
                let b = cached.score(&set, folds).unwrap();
                assert!((a - b).abs() < 1e-9, "{set:?} with {folds} folds: {a} vs {b}");
            }
        }
        let cache = cached.cache().unwrap();
        assert!(cache.computed >= 2 && cache.hits > 0, "computed {} hits {}", cache.computed, cache.hits);
        assert!(plain.cache().is_none());
    }

    #[test]
    fn candidates_train_exactly_their_blocks_and_the_head() {
        let (model, train, validation, config) = setup();
        let before: Vec<(String, Tensor)> = model.vs.variables().into_iter().map(|(n, v)| (n, v.copy())).collect();
        for cache_bytes in [0, 1 << 30] {
            let mut oracle = oracle(&model, &train, &validation, &config, cache_bytes);
            // layer2.0 (position 2) and the head (4).
            let (trained, _) = oracle.train_candidate(&[2, 4], None, None, 0).unwrap();
            let after = trained.vs.variables();
            for (name, old) in &before {
                let changed = !after[name].equal(old);
                let tuned = name.starts_with("layer2.0.") || name.starts_with("head.");
                assert_eq!(changed, tuned, "{name} (cache {cache_bytes})");
            }
            assert!(before.iter().all(|(n, v)| model.vs.variables()[n].equal(v)), "the pretrained model is untouched");
        }
    }

    #[test]
    fn a_tight_budget_evicts_or_recomputes_and_repeats_are_remembered() {
        let (model, train, validation, config) = setup();
        // Room for the features entering the head (8 floats per example),
        // not for the 256 floats entering layer1.0.
        let mut tight = oracle(&model, &train, &validation, &config, 120 * 8 * 4);
        let probe = tight.score(&[], 1).unwrap();
        let early = tight.score(&[1], 1).unwrap();
        let cache = tight.cache().unwrap();
        assert_eq!((cache.computed, cache.too_large), (1, 1));
        assert!(cache.bytes() <= 120 * 8 * 4);
        assert_eq!(tight.trainings, 2);
        assert_eq!(tight.score(&[4], 1).unwrap(), probe, "the head is always in the set");
        assert_eq!(tight.score(&[1], 1).unwrap(), early);
        assert_eq!(tight.trainings, 2, "repeated sets are not trained again");
        assert!(tight.log[2].repeated && tight.log[2].trainable == vec![4]);
        let err = tight.score(&[9], 1).unwrap_err().to_string();
        assert!(err.contains("position 9 does not exist"), "{err}");
    }
}

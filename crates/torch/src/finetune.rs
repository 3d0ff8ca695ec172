//! The finetuning oracle: trains a copy of the pretrained model with a
//! candidate set of blocks trainable (plus the head, always fresh and always
//! trained) and returns its validation accuracy, by k-fold cross-validation
//! on the training split or on the validation split.
//!
//! Candidates train in the variant's own order by default: a fresh instance
//! of its sampler over the stored order after the offline pass, with the
//! I/O that order costs counted (the training split is read into memory
//! once, so the I/O is the storage model's, as in `storage.mode = "memory"`).
//! `train.oracle_order = "shuffle"` trains them in a host shuffle instead.
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
use std::sync::Arc;
use std::time::Instant;

use crate::error::{bail, Result};
use serde_json::json;
use tch::{Device, Tensor};
use tessera_sdk::{LayerInfo, OracleAnswer, OracleQuery, Sampling, SeedRng, StorageLayout};

use crate::manifest::{ModelConfig, TrainConfig};
use crate::model::Model;
use crate::plugin::{CallContext, OracleError, OracleImpl, SamplerHandle};
use crate::report::{ReportJson, TableJson};
use crate::storage::{Access, CostModel, IoStats};
use crate::train::{self, BatchSource, EpochOrder, FitHooks, MemorySource, TensorData};

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
    /// The answer (every fold's accuracy and loss, the epochs).
    pub answer: OracleAnswer,
    /// Whether it was answered from an earlier identical call.
    pub repeated: bool,
    /// Seconds it took (training and scoring every fold).
    pub seconds: f64,
}

/// What the oracle needs of a sampler: its name, how it samples, its orders.
pub trait CandidateSampler {
    /// The component's id, for errors.
    fn id(&self) -> &str;
    /// How its orders visit the examples (checked on every epoch).
    fn sampling(&self) -> Sampling;
    /// The order of epoch `epoch` over `layout`, with the call's seed.
    fn order(&mut self, layout: &StorageLayout, epoch: u64, seed: u64) -> Result<Box<dyn EpochOrder>>;
}

impl CandidateSampler for SamplerHandle {
    fn id(&self) -> &str {
        &self.id
    }

    fn sampling(&self) -> Sampling {
        SamplerHandle::sampling(self)
    }

    fn order(&mut self, layout: &StorageLayout, epoch: u64, seed: u64) -> Result<Box<dyn EpochOrder>> {
        let ctx = CallContext::new(seed, Arc::new(AtomicBool::new(false)));
        Ok(Box::new(self.epoch_order(layout, epoch, &ctx)?))
    }
}

/// A fresh instance of the variant's sampler, for one candidate's training.
pub type SamplerMaker<'s> = Box<dyn Fn() -> Result<Box<dyn CandidateSampler>> + 's>;

/// The order candidates train in (`train.oracle_order`).
pub enum CandidateOrder<'s> {
    /// A host shuffle, fresh each epoch.
    Shuffle,
    /// The variant's sampler over the stored layout, its I/O counted.
    Sampler {
        /// Makes a fresh instance of the sampler.
        make: SamplerMaker<'s>,
        /// The stored training split's layout (after the offline pass).
        layout: StorageLayout,
        /// How the storage reads (blocks or examples).
        access: Access,
        /// Blocks the read buffer holds.
        buffer_blocks: usize,
    },
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
    order: CandidateOrder<'a>,
    memo: HashMap<(Vec<u32>, u32, u64), OracleAnswer>,
    /// Candidates trained (each fold counts once).
    pub trainings: u64,
    /// The storage I/O of every candidate's training (sampler order only).
    pub io: IoStats,
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
    /// An oracle that finetunes copies of `initial`, training candidates in `order`.
    pub fn new(initial: &'a Model, setup: OracleSetup<'_>, order: CandidateOrder<'a>) -> Self {
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
            order,
            memo: HashMap::new(),
            trainings: 0,
            io: IoStats::default(),
            log: vec![],
            seconds: 0.0,
        }
    }

    /// The activation cache, if on.
    pub fn cache(&self) -> Option<&ActivationCache> {
        self.cache.as_ref()
    }

    /// Adds the oracle's figures to the host's finetuning report: trainings,
    /// calls, the cache's counters, the I/O of a sampler order (when anything
    /// trained), the `oracle_calls` table (every call's blocks, folds,
    /// epochs, scores, whether it was repeated, seconds) and `oracle_folds`
    /// (each fold's scores).
    pub fn add_to_report(&self, report: &mut ReportJson, layers: &[LayerInfo], cost: &CostModel) {
        report.scalars.insert("oracle_trainings".into(), self.trainings as f64);
        report.scalars.insert("oracle_calls".into(), self.log.len() as f64);
        if let Some(cache) = &self.cache {
            report.scalars.insert("cache_prefixes_computed".into(), cache.computed as f64);
            report.scalars.insert("cache_hits".into(), cache.hits as f64);
            report.scalars.insert("cache_prefixes_too_large".into(), cache.too_large as f64);
        }
        if matches!(self.order, CandidateOrder::Sampler { .. }) && self.trainings > 0 {
            report.scalars.insert("oracle_io_requests".into(), self.io.requests as f64);
            report.scalars.insert("oracle_io_bytes".into(), self.io.bytes as f64);
            report.scalars.insert("oracle_io_modeled_seconds".into(), self.io.modeled_seconds(cost));
        }
        report.tables.push(self.calls_table(layers));
        report.tables.push(self.folds_table());
    }

    /// Every call: its blocks, folds, epochs, mean scores, whether repeated, seconds.
    fn calls_table(&self, layers: &[LayerInfo]) -> TableJson {
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
            let a = &c.answer;
            [json!(i + 1), json!(blocks(&c.trainable)), json!(c.folds), json!(a.epochs)]
                .into_iter()
                .chain([json!(a.accuracy), json!(a.loss), json!(c.repeated), json!(c.seconds)])
                .collect()
        });
        let columns = ["call", "blocks", "folds", "epochs", "score", "loss", "repeated", "seconds"];
        TableJson { name: "oracle_calls".into(), columns: columns.map(String::from).to_vec(), rows: rows.collect() }
    }

    /// Each fold of each call: its held-out accuracy and loss.
    fn folds_table(&self) -> TableJson {
        let rows = self.log.iter().enumerate().flat_map(|(i, c)| {
            let folds = c.answer.fold_accuracy.iter().zip(c.answer.fold_loss.iter());
            folds.enumerate().map(move |(f, (a, l))| vec![json!(i + 1), json!(f + 1), json!(a), json!(l)])
        });
        let columns = ["call", "fold", "accuracy", "loss"];
        TableJson { name: "oracle_folds".into(), columns: columns.map(String::from).to_vec(), rows: rows.collect() }
    }

    /// The head's position (the last layer).
    fn head(&self) -> u32 {
        self.initial.layers().len() as u32 - 1
    }

    /// Trains `trainable` for `epochs` on the training rows `train_rows`
    /// (all when None) and scores it on `held` rows of the training split,
    /// or on the validation split when `held` is None; returns the trained
    /// copy with its held-out accuracy and loss.
    fn train_candidate(
        &mut self,
        trainable: &[u32],
        epochs: u64,
        train_rows: Option<&[i64]>,
        held: Option<&[i64]>,
        fold: u64,
    ) -> Result<(Model, f64, f64)> {
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
        let train = TensorData { x: train_x, y: self.train.y.shallow_clone() };
        let score_on = match held {
            Some(rows) => pick(&train, Some(rows), self.device),
            None => TensorData { x: validation_x, y: self.validation.y.shallow_clone() },
        };
        // The seed depends on the candidate and the fold only, so
        // a set scores the same whenever and however often it is asked.
        let mut hasher = std::collections::hash_map::DefaultHasher::new();
        (trainable, fold).hash(&mut hasher);
        let seed = SeedRng::derive(self.seed, hasher.finish()).next_u64();
        self.trainings += 1;
        let config = TrainConfig { epochs, ..self.config.clone() };
        self.fit_candidate(&model, &train, train_rows, &config, seed)?;
        let eval = train::evaluate(&model, &score_on);
        Ok((model, eval.accuracy, eval.loss))
    }

    /// Trains `model` on `rows` of `train` (all when None) in the candidate order.
    fn fit_candidate(
        &mut self,
        model: &Model,
        train: &TensorData,
        rows: Option<&[i64]>,
        config: &TrainConfig,
        seed: u64,
    ) -> Result<()> {
        let never = AtomicBool::new(false);
        let no_checkpoint = &mut |_: &Model, _, _| Ok(());
        let CandidateOrder::Sampler { make, layout, access, buffer_blocks } = &self.order else {
            let fit_on = pick(train, rows, self.device);
            train::fit_shuffled(model, &fit_on, config, (seed, 0), no_checkpoint, train::Control::cancel(&never))?;
            return Ok(());
        };
        let n = train.y.size()[0] as usize;
        let keep: Vec<i64> = match rows {
            Some(rows) => {
                let mut keep = vec![-1i64; n];
                rows.iter().enumerate().for_each(|(k, &row)| keep[row as usize] = k as i64);
                keep
            }
            None => (0..n as i64).collect(),
        };
        let mut sampler = make()?;
        let (id, sampling) = (sampler.id().to_string(), sampler.sampling());
        let (layout, access, buffer_blocks) = (*layout, *access, *buffer_blocks);
        let mut epoch = |epoch: u64| -> Result<Box<dyn BatchSource + '_>> {
            let order = sampler.order(&layout, epoch, seed)?;
            Ok(Box::new(MemorySource::new(order, train, layout, access, buffer_blocks).keeping(&keep)))
        };
        let hooks = FitHooks { sampler: Some((&id, sampling)), ..FitHooks::new(&mut epoch, no_checkpoint, &never) };
        let kept = rows.map_or(n, <[i64]>::len) as u64;
        let summary = train::fit(model, kept, config, hooks)?;
        summary.epoch_io.iter().for_each(|io| self.io.add(io));
        Ok(())
    }

    /// Scores `set` (head included) as `query` asks, every fold trained.
    fn answer(&mut self, set: &[u32], folds: u32, epochs: u64) -> Result<OracleAnswer> {
        let (mut fold_accuracy, mut fold_loss) = (Vec::new(), Vec::new());
        if folds <= 1 {
            if self.validation.y.size()[0] == 0 {
                bail!("the validation split is empty: ask for k > 1 folds, or set data.validation_fraction");
            }
            let (_, accuracy, loss) = self.train_candidate(set, epochs, None, None, 0)?;
            (fold_accuracy, fold_loss) = (vec![accuracy], vec![loss]);
        } else {
            let n = self.train.y.size()[0] as usize;
            let k = folds as usize;
            if n < k {
                bail!("{k}-fold validation needs at least {k} training examples, the split has {n}");
            }
            let mut ids: Vec<i64> = (0..n as i64).collect();
            SeedRng::derive(self.seed, 0xF01D).shuffle(&mut ids);
            for fold in 0..k {
                let held: Vec<i64> = ids.iter().copied().skip(fold).step_by(k).collect();
                let kept: Vec<i64> =
                    ids.iter().copied().enumerate().filter(|(i, _)| i % k != fold).map(|(_, id)| id).collect();
                let (_, accuracy, loss) =
                    self.train_candidate(set, epochs, Some(&kept), Some(&held), fold as u64 + 1)?;
                fold_accuracy.push(accuracy);
                fold_loss.push(loss);
            }
        }
        let mean = |v: &[f64]| v.iter().sum::<f64>() / v.len() as f64;
        Ok(OracleAnswer {
            accuracy: mean(&fold_accuracy),
            loss: mean(&fold_loss),
            fold_accuracy: fold_accuracy.into(),
            fold_loss: fold_loss.into(),
            epochs,
        })
    }

    /// The mean accuracy of `trainable` over `folds` folds, with the
    /// manifest's oracle epochs (the shortcut the tests use).
    pub fn score(&mut self, trainable: &[u32], folds: u32) -> Result<f64> {
        Ok(self.query(&OracleQuery::new(trainable).folds(folds))?.accuracy)
    }
}

/// Rows `rows` of `data` (all of it when None).
fn pick(data: &TensorData, rows: Option<&[i64]>, device: Device) -> TensorData {
    match rows {
        Some(rows) => {
            let index = Tensor::from_slice(rows).to_device(device);
            TensorData { x: data.x.index_select(0, &index), y: data.y.index_select(0, &index) }
        }
        None => TensorData { x: data.x.shallow_clone(), y: data.y.shallow_clone() },
    }
}

impl OracleImpl for FinetuneOracle<'_> {
    fn ask(&mut self, query: &OracleQuery) -> std::result::Result<OracleAnswer, OracleError> {
        Ok(self.query(query)?)
    }
}

impl FinetuneOracle<'_> {
    /// Trains with the layers `query` names (memoized) and returns the
    /// held-out scores.
    pub fn query(&mut self, query: &OracleQuery) -> Result<OracleAnswer> {
        let head = self.head();
        if let Some(&bad) = query.trainable.iter().find(|&&p| p > head) {
            bail!("layer position {bad} does not exist (the model has {} layers)", head + 1);
        }
        let mut set: Vec<u32> = query.trainable.iter().copied().chain([head]).collect();
        set.sort_unstable();
        set.dedup();
        let folds = query.folds.max(1);
        let epochs = if query.epochs == 0 { self.config.epochs } else { query.epochs };
        let key = (set.clone(), folds, epochs);
        if let Some(answer) = self.memo.get(&key) {
            let answer = answer.clone();
            self.log.push(OracleCall { trainable: set, folds, answer: answer.clone(), repeated: true, seconds: 0.0 });
            return Ok(answer);
        }
        let started = Instant::now();
        let answer = self.answer(&set, folds, epochs)?;
        let seconds = started.elapsed().as_secs_f64();
        self.seconds += seconds;
        self.memo.insert(key, answer.clone());
        self.log.push(OracleCall { trainable: set, folds, answer: answer.clone(), repeated: false, seconds });
        Ok(answer)
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
        with_order(model, train, validation, config, cache_bytes, CandidateOrder::Shuffle)
    }

    fn with_order<'a>(
        model: &'a Model,
        train: &Dataset,
        validation: &Dataset,
        config: &ModelConfig,
        cache_bytes: u64,
        order: CandidateOrder<'a>,
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
            order,
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
            let (trained, ..) = oracle.train_candidate(&[2, 4], 2, None, None, 0).unwrap();
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

    /// Visits the stored examples in order, or (`repeat`) the first one twice.
    struct Sequential {
        repeat: bool,
    }

    struct Ids(Option<Vec<u64>>);

    impl EpochOrder for Ids {
        fn next_chunk(&mut self) -> tessera_data::Result<Option<abi_stable::std_types::RVec<u64>>> {
            Ok(self.0.take().map(Into::into))
        }
    }

    impl CandidateSampler for Sequential {
        fn id(&self) -> &str {
            "test.sequential"
        }

        fn sampling(&self) -> Sampling {
            Sampling::Permutation
        }

        fn order(&mut self, layout: &StorageLayout, _: u64, _: u64) -> Result<Box<dyn EpochOrder>> {
            let mut ids: Vec<u64> = (0..layout.examples).collect();
            if self.repeat {
                ids[1] = 0;
            }
            Ok(Box::new(Ids(Some(ids))))
        }
    }

    fn sequential<'a>(repeat: bool) -> CandidateOrder<'a> {
        CandidateOrder::Sampler {
            make: Box::new(move || Ok(Box::new(Sequential { repeat }) as Box<dyn CandidateSampler>)),
            layout: StorageLayout { examples: 90, block_size: 10, bytes_per_example: 100 },
            access: Access::Block,
            buffer_blocks: 1,
        }
    }

    #[test]
    fn a_sampler_order_trains_each_fold_on_its_own_rows_and_counts_the_reads() {
        let (model, train, validation, config) = setup();
        let mut oracle = with_order(&model, &train, &validation, &config, 0, sequential(false));
        let answer = oracle.ask(&OracleQuery::new(&[2]).folds(3).epochs(1)).unwrap();
        assert_eq!((answer.fold_accuracy.len(), answer.fold_loss.len(), answer.epochs), (3, 3, 1));
        let mean = answer.fold_accuracy.iter().sum::<f64>() / 3.0;
        assert!((answer.accuracy - mean).abs() < 1e-12);
        // Three folds, one epoch each, reading the 9 blocks in order once:
        // the held-out rows are read (in their blocks) but not trained on,
        // or the permutation check on the kept rows would have failed.
        assert_eq!((oracle.io.requests, oracle.io.bytes), (27, 27 * 1000));
        assert_eq!(oracle.trainings, 3);
        let again = oracle.ask(&OracleQuery::new(&[2]).folds(3).epochs(2)).unwrap();
        assert_eq!((again.epochs, oracle.trainings), (2, 6), "other epochs are another candidate");
        assert_eq!(oracle.score(&[2], 3).unwrap(), again.accuracy, "the manifest's 2 epochs: repeated");
        assert!(oracle.log.last().unwrap().repeated);
    }

    #[test]
    fn a_sampler_breaking_its_contract_fails_the_oracle_call_naming_it() {
        let (model, train, validation, config) = setup();
        let mut oracle = with_order(&model, &train, &validation, &config, 0, sequential(true));
        let err = tessera_util::error::chain(oracle.ask(&OracleQuery::new(&[2])).unwrap_err().as_ref());
        assert!(err.contains("test.sequential"), "{err}");
    }
}

//! Manifests: one TOML file describes an experiment — shared settings plus
//! the `[[variant]]`s to compare. Every error points at `file:line:col` with
//! the offending key and, where it can, a hint.
//!
//! Merging: a variant's tables are merged key by key onto the base; the
//! component tables (`sampler`, `finetuner`, `objective`) and the `metric`
//! array are replaced whole, since another component takes other parameters.
//! `--set KEY=VALUE` overrides apply last, to every variant.

use std::collections::BTreeSet;
use std::ops::Range;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use tessera_sdk::ComponentKind;

pub use crate::choice::{
    DataSource, DeviceChoice, EdgeDirection, EdgeListFormat, GraphCache, GraphGenerator, ModelKind, Optimizer,
    OracleOrder, PretrainMethod, ProbabilityModel, Schedule, Split, StorageAccess, StorageMode, StoragePreset,
    StoredOrder,
};
use crate::plugin::closest;

/// Keys of the tables that name one component each.
pub const COMPONENT_TABLES: [(&str, ComponentKind); 3] = [
    ("sampler", ComponentKind::Sampler),
    ("finetuner", ComponentKind::Finetuner),
    ("objective", ComponentKind::GraphObjective),
];

/// A problem in a manifest, located in its file.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostic {
    /// The manifest file.
    pub file: PathBuf,
    /// 1-based line and column, when the place is known.
    pub location: Option<(usize, usize)>,
    /// The dotted key at fault, e.g. `variant[1].train.lr`.
    pub key: Option<String>,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

impl std::fmt::Display for Diagnostic {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}", self.file.display())?;
        if let Some((line, col)) = self.location {
            write!(f, ":{line}:{col}")?;
        }
        write!(f, ": error: {}", self.message)?;
        if let Some(key) = &self.key {
            write!(f, "\n  key: {key}")?;
        }
        if let Some(hint) = &self.hint {
            write!(f, "\n  hint: {hint}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostic {}

/// Several diagnostics, shown one after another.
#[derive(Debug, Clone, PartialEq)]
pub struct Diagnostics(pub Vec<Diagnostic>);

impl std::fmt::Display for Diagnostics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, d) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{d}")?;
        }
        Ok(())
    }
}

impl std::error::Error for Diagnostics {}

/// What a variant runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum ExperimentKind {
    /// Train a model on data (samplers, finetuners, metrics).
    #[default]
    Train,
    /// Choose seed sets on a graph (graph objectives).
    Graph,
    /// Train a population of models (`[population]`), evaluate every member
    /// on every point, and hand the prediction matrix to metrics.
    Population,
}

/// `[experiment]`: settings of the whole run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ExperimentConfig {
    /// The experiment's name (default: the manifest's file stem).
    pub name: Option<String>,
    /// What a variant runs: `train` or `graph`.
    pub kind: ExperimentKind,
    /// The seed of everything random in a variant.
    pub seed: u64,
    /// Run every variant once per seed (named `variant@seed`); the summary
    /// and `tables/seeds.csv` give mean and spread over seeds.
    pub seeds: Vec<u64>,
    /// `cpu`, `cuda` or `cuda:N`.
    pub device: DeviceChoice,
    /// Threads for tensor work (0 = libtorch's default).
    pub threads: usize,
    /// Folders or library files to search for plugins, relative to the manifest.
    pub plugin_paths: Vec<String>,
    /// Run each variant once per value of one setting, e.g.
    /// `{ key = "data.train_per_class", values = [10, 50, 0] }`: the runs are
    /// named `NAME[train_per_class=10]` (before any `@seed`).
    pub sweep: Option<SweepConfig>,
    /// Plots across variants: a scalar against another, a line per variant
    /// (sweep values and seeds merged, the mean over seeds).
    pub plots: Vec<crate::report::ScalarPlot>,
    /// Where the run's units run: `inline`, `processes` or `slurm`
    /// (`--executor` overrides it).
    pub executor: crate::choice::ExecutorKind,
    /// Worker processes of the `processes` executor (0 = one per core).
    pub jobs: usize,
}

/// `[experiment.sweep]`: one setting and its values.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SweepConfig {
    /// The dotted setting, e.g. `data.train_per_class`.
    pub key: String,
    /// Its values, one run each.
    pub values: Vec<toml::Value>,
}

impl SweepConfig {
    /// The run name of variant `name` at `value`.
    pub fn run_name(&self, name: &str, value: &toml::Value) -> String {
        let short = self.key.rsplit('.').next().unwrap_or(&self.key);
        let value = match value {
            toml::Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        format!("{name}[{short}={value}]")
    }
}

impl Default for ExperimentConfig {
    fn default() -> Self {
        ExperimentConfig {
            name: None,
            kind: ExperimentKind::Train,
            seed: 0,
            seeds: vec![],
            device: DeviceChoice::Cpu,
            threads: 0,
            plugin_paths: vec![],
            sweep: None,
            plots: vec![],
            executor: crate::choice::ExecutorKind::Inline,
            jobs: 0,
        }
    }
}

/// `[data]`: where examples come from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DataConfig {
    /// The source: `blobs` (Gaussian clusters), `mnist1d` (the authors'
    /// MNIST-1D, `[data.mnist1d]`), `teacher` (labels from a random network), `digits` (the UCI
    /// 8×8 digits, shipped), `idx` (MNIST-style), `cifar10`, `cifar100`,
    /// `npy`, `csv`, `webdataset` (tar shards), `shards` (a shard folder).
    pub source: DataSource,
    /// Features file (`idx` images, `npy` features, `csv`), tar file or
    /// folder of tars (`webdataset`), or shard folder (`shards`), relative
    /// to the manifest.
    pub path: Option<String>,
    /// `shards`: the test split's shard folder (default: `test/` beside
    /// `train/` in a folder written by `tessera shard`).
    pub test_path: Option<String>,
    /// `shards`: the validation split's shard folder (default: `validation/`
    /// beside `train/`; none: an empty validation split).
    pub validation_path: Option<String>,
    /// The most memory the validation and test splits may take together, in
    /// MB: they are held in memory, the training split need not be.
    pub holdout_memory_mb: u64,
    /// Labels file (`idx`, `npy`), relative to the manifest.
    pub labels_path: Option<String>,
    /// Binary batch files (`cifar10`, `cifar100`), relative to the manifest.
    pub files: Vec<String>,
    /// The label column of a `csv` (negative counts from the end).
    pub label_column: i64,
    /// Use at most this many examples (after the seeded shuffle).
    pub limit: Option<usize>,
    /// Keep only the first N examples of the training split (after the
    /// split, so the test split stays the same): a small fixed training set
    /// for offline training.
    pub train_limit: Option<usize>,
    /// Keep only the first N training examples of each class (after the
    /// split and `train_limit`): a scarce, balanced training set; 0 = all.
    pub train_per_class: usize,
    /// `teacher`: hidden width of the random teacher network.
    pub teacher_width: usize,
    /// Number of examples in all splits together (generated sources).
    pub examples: usize,
    /// Feature dimension (generated sources).
    pub features: usize,
    /// Number of classes (generated sources).
    pub classes: usize,
    /// Distance scale between class centres: larger is easier.
    pub separation: f64,
    /// Fraction of examples held out for testing.
    pub test_fraction: f64,
    /// Fraction of examples held out for validation.
    pub validation_fraction: f64,
    /// The seed of the data (default: the experiment's seed), so variants with
    /// other seeds can still share the data.
    pub seed: Option<u64>,
    /// How the training split is stored: `shuffled` or `sorted-by-label`.
    pub stored_order: StoredOrder,
    /// Relabels into groups: group `g` becomes class `g`, and examples whose
    /// label is in no group are dropped; e.g. `[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]`
    /// turns the digits into a binary task, `[[0], [1], [2]]` keeps three classes.
    pub label_groups: Vec<Vec<i64>>,
    /// `mnist1d`: the authors' generator's arguments, under the package's
    /// names (`[data.mnist1d]`).
    pub mnist1d: crate::data::mnist1d::Mnist1dArgs,
    /// A `shifted` split: a transformed copy of the test split (an
    /// out-of-distribution test set); none while both transforms are 0.
    pub shift: ShiftConfig,
}

/// `[data.shift]`: how the `shifted` split is made from the test split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ShiftConfig {
    /// Standard deviation of Gaussian noise added to every feature.
    pub noise: f64,
    /// Largest translation along the last axis (pixels or sequence points):
    /// each example moves by a uniform integer in [−translate, translate],
    /// filling with zeros.
    pub translate: usize,
}

impl ShiftConfig {
    /// Whether the manifest asks for a `shifted` split.
    pub fn is_enabled(&self) -> bool {
        self.noise > 0.0 || self.translate > 0
    }
}

impl Default for DataConfig {
    fn default() -> Self {
        DataConfig {
            source: DataSource::Blobs,
            path: None,
            test_path: None,
            validation_path: None,
            holdout_memory_mb: 4096,
            labels_path: None,
            files: vec![],
            label_column: -1,
            limit: None,
            train_limit: None,
            train_per_class: 0,
            teacher_width: 64,
            examples: 2000,
            features: 16,
            classes: 4,
            separation: 3.0,
            test_fraction: 0.2,
            validation_fraction: 0.1,
            seed: None,
            stored_order: StoredOrder::Shuffled,
            label_groups: vec![],
            mnist1d: Default::default(),
            shift: ShiftConfig::default(),
        }
    }
}

/// `[storage]`: how the training split is laid out and read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct StorageConfig {
    /// Examples per block (one storage request).
    pub block_size: u64,
    /// `memory`: train from tensors in memory, counting the I/O a block
    /// buffer would do; `shards`: write the split as shards and read every
    /// epoch from disk through the block loader.
    pub mode: StorageMode,
    /// The cost model: `local-ssd`, `hdd` or `cloud` (20 ms, 100 MB/s).
    pub preset: StoragePreset,
    /// Blocks the loader's buffer holds (least recently used goes first).
    pub buffer_blocks: usize,
    /// Blocks buffered during a sampler's offline pass (default: `buffer_blocks`).
    pub offline_buffer_blocks: Option<usize>,
    /// `block`: read whole blocks; `example`: one ranged request per example.
    pub access: StorageAccess,
    /// Chunks of the order the reader thread may run ahead (`shards`).
    pub prefetch: usize,
    /// Blocks per shard file (`shards`).
    pub blocks_per_shard: u64,
    /// Where the shards go, relative to the manifest (default: the run folder).
    pub dir: Option<String>,
    /// Keep the shards after the run.
    pub keep: bool,
}

impl Default for StorageConfig {
    fn default() -> Self {
        StorageConfig {
            block_size: 32,
            mode: StorageMode::Memory,
            preset: StoragePreset::Cloud,
            buffer_blocks: 1,
            offline_buffer_blocks: None,
            access: StorageAccess::Block,
            prefetch: 4,
            blocks_per_shard: 64,
            dir: None,
            keep: false,
        }
    }
}

/// `[model]`: the network.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ModelConfig {
    /// The architecture: `mlp`, `cnn`, `resnet`, or `torchscript` (a model
    /// exported from PyTorch with `torch.jit.save`, at `path`).
    pub kind: ModelKind,
    /// `torchscript`: the module file, relative to the manifest.
    pub path: Option<String>,
    /// `mlp`: widths of the hidden layers (blocks `layer0`, `layer1`, …).
    pub hidden: Vec<i64>,
    /// `cnn`: channels of the conv blocks (`conv0`, `conv1`, …).
    pub channels: Vec<i64>,
    /// `cnn`: BatchNorm after each convolution.
    pub batch_norm: bool,
    /// `resnet`: channels of the first stage (doubling per stage).
    pub width: i64,
    /// `resnet`: basic blocks per stage.
    pub depth: usize,
    /// `resnet`: number of stages (blocks `layer1.0` … `layer<stages>.<depth-1>`).
    pub stages: usize,
    /// Start from these weights (`.safetensors`, saved by the same architecture).
    pub weights: Option<String>,
    /// Load every weight from `weights` but the head's, which starts fresh
    /// (finetuning a backbone pretrained on another task, whose number of
    /// classes may differ).
    pub fresh_head: bool,
}

impl Default for ModelConfig {
    fn default() -> Self {
        ModelConfig {
            kind: ModelKind::Mlp,
            path: None,
            hidden: vec![64],
            channels: vec![16, 32],
            batch_norm: false,
            width: 16,
            depth: 1,
            stages: 3,
            weights: None,
            fresh_head: false,
        }
    }
}

/// `[train]`: the optimization.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct TrainConfig {
    /// Passes over the training split.
    pub epochs: u64,
    /// Examples per optimizer step.
    pub batch_size: usize,
    /// `sgd` or `adam`.
    pub optimizer: Optimizer,
    /// Learning rate.
    pub lr: f64,
    /// SGD momentum.
    pub momentum: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
    /// Evaluate every this many steps as well as after each epoch (0 = epochs only).
    pub checkpoint_every: u64,
    /// Also evaluate after exactly these steps.
    pub checkpoint_steps: Vec<u64>,
    /// Also evaluate at about this many steps spaced evenly on a log scale
    /// from step 1 to the last step: dense early, sparse later.
    pub checkpoint_log: u64,
    /// Epochs each finetuning-oracle candidate trains for (unless the
    /// finetuner asks for others).
    pub oracle_epochs: u64,
    /// The order oracle candidates train in: the variant's `sampler` (after
    /// its offline pass) or a host `shuffle` (before it).
    pub oracle_order: OracleOrder,
    /// Memory budget of the oracle's frozen-prefix activation cache, in MiB
    /// (0 = recompute the frozen prefix in every batch).
    pub oracle_cache_mb: u64,
    /// Save the trained weights to `models/<variant>.safetensors` in the run
    /// folder (always done for finetuning variants).
    pub save_model: bool,
    /// Learning-rate schedule: `constant`, `step` (× `gamma` every
    /// `step_every` steps) or `cosine` (to 0 over the run).
    pub schedule: Schedule,
    /// Linear warm-up from 0 over this many steps (any schedule).
    pub warmup_steps: u64,
    /// `step` schedule: steps between decays.
    pub step_every: u64,
    /// `step` schedule: the decay factor.
    pub gamma: f64,
    /// Micro-batches whose gradients add up before each optimizer step.
    pub accumulate: u64,
    /// Stop after this many training examples (an online, single-pass budget
    /// when it is at most one epoch's worth).
    pub max_examples: Option<u64>,
    /// Label noise η: this fraction of training labels, round(η·n) exactly,
    /// each flipped to a uniformly random other class (seeded).
    pub label_noise: f64,
}

impl Default for TrainConfig {
    fn default() -> Self {
        TrainConfig {
            epochs: 5,
            batch_size: 32,
            optimizer: Optimizer::Sgd,
            lr: 0.05,
            momentum: 0.0,
            weight_decay: 0.0,
            checkpoint_every: 0,
            checkpoint_steps: vec![],
            checkpoint_log: 0,
            oracle_epochs: 2,
            oracle_order: OracleOrder::Sampler,
            oracle_cache_mb: 1024,
            save_model: false,
            schedule: Schedule::Constant,
            warmup_steps: 0,
            step_every: 1000,
            gamma: 0.1,
            accumulate: 1,
            max_examples: None,
            label_noise: 0.0,
        }
    }
}

/// `[reference]`: a second classifier L trained by the host on the same
/// inputs, whose hard predictions metrics ask for as the observation
/// `reference-predictions` (e.g. the linear classifier of μ_Y(F;L)).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ReferenceConfig {
    /// `none`, or the network to train, in the terms of `[model]`: `linear`
    /// is multinomial logistic regression on the flattened inputs.
    pub model: ModelConfig,
    /// Passes over the training split (Adam, full-size batches of
    /// `batch_size`); 0 keeps `model.weights` as loaded.
    pub epochs: u64,
    /// Examples per step.
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// L2 weight decay.
    pub weight_decay: f64,
}

impl Default for ReferenceConfig {
    fn default() -> Self {
        ReferenceConfig {
            model: ModelConfig { kind: ModelKind::None, ..ModelConfig::default() },
            epochs: 200,
            batch_size: 256,
            lr: 0.01,
            weight_decay: 0.0,
        }
    }
}

/// `[pretrain]`: self-supervised pretraining of the variant's network on the
/// training inputs (no labels), before the run; see [`crate::pretrain`].
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PretrainConfig {
    /// `none`, `simclr` (contrastive, NT-Xent) or `autoencoder`.
    pub method: PretrainMethod,
    /// Passes over the training inputs.
    pub epochs: u64,
    /// Examples per step (SimCLR contrasts each view with the batch's others).
    pub batch_size: usize,
    /// Adam's learning rate.
    pub lr: f64,
    /// SimCLR: the temperature τ of NT-Xent.
    pub temperature: f64,
    /// SimCLR: the projection head's output dimension.
    pub projection: i64,
    /// Augmentation: largest random translation, in points, along each of
    /// the last two axes of images (the last axis of sequences).
    pub shift: i64,
    /// Augmentation: standard deviation of Gaussian noise.
    pub noise: f64,
}

impl Default for PretrainConfig {
    fn default() -> Self {
        PretrainConfig {
            method: PretrainMethod::None,
            epochs: 30,
            batch_size: 256,
            lr: 0.001,
            temperature: 0.5,
            projection: 64,
            shift: 1,
            noise: 0.1,
        }
    }
}

/// `[population]`: the members of a population experiment. Every model of
/// `models`, at every width multiplier of `widths`, trains once per seed of
/// `seeds` and per training setting of `settings` (on a seeded full shuffle;
/// the settings of one model and seed share its initial weights and data
/// order). By default it trains for the largest of `epochs` epochs and its
/// state after each epoch listed there is a member, so training lengths cost
/// no extra training; with `every_checkpoint`, each checkpoint of its
/// settings (`checkpoint_every`, `checkpoint_log`, … and epoch ends) is.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct PopulationConfig {
    /// The architectures, each in the terms of `[model]`.
    pub models: Vec<ModelConfig>,
    /// Width multipliers, applied to `hidden`, `channels` and `width` (a
    /// multiplier that leaves a model unchanged, e.g. on `linear`, adds no member).
    pub widths: Vec<f64>,
    /// Seeds of the training runs (initialization and order).
    pub seeds: Vec<u64>,
    /// Training settings: each a table of `[train]` keys that override it,
    /// e.g. `[{ batch_size = 16, lr = 0.01 }, { batch_size = 256, lr = 0.16 }]`.
    pub settings: Vec<toml::Table>,
    /// Training lengths in epochs; each is a member of every run.
    pub epochs: Vec<u64>,
    /// Take every checkpoint of the settings as a member instead of `epochs`.
    pub every_checkpoint: bool,
    /// Also keep every member's softmax outputs (members × points × classes;
    /// the observation `population-probabilities`).
    pub probabilities: bool,
    /// The fork in the road: the settings other than `fork_from` start from
    /// the state of the `fork_from` run (same model and seed) after this many
    /// steps, and continue its data stream where it was.
    pub fork_step: Option<u64>,
    /// The setting the others fork from.
    pub fork_from: usize,
    /// Train the head only: every run starts from one network per
    /// architecture (the `[pretrain]`ed encoder, or one random network) whose
    /// feature blocks stay frozen — a linear probe on a fixed representation.
    pub freeze_features: bool,
    /// The splits every member is evaluated on (`test`, `validation`,
    /// `shifted`, `train`).
    pub splits: Vec<Split>,
    /// Instead of training, load the prediction matrices a previous run saved
    /// (its `population/<variant>` folder, relative to the manifest).
    pub load: Option<String>,
}

impl Default for PopulationConfig {
    fn default() -> Self {
        PopulationConfig {
            models: vec![ModelConfig::default()],
            widths: vec![1.0],
            seeds: vec![0],
            settings: vec![toml::Table::new()],
            epochs: vec![1],
            every_checkpoint: false,
            probabilities: false,
            fork_step: None,
            fork_from: 0,
            freeze_features: false,
            splits: vec![Split::Test],
            load: None,
        }
    }
}

/// `[graph]`: the graph of a graph experiment.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct GraphConfig {
    /// The source: `erdos-renyi` (G(n, m)), `barabasi-albert`,
    /// `watts-strogatz`, `rmat` (power-law), or `file` (an edge list at `path`).
    pub generator: GraphGenerator,
    /// Nodes n (generators).
    pub nodes: u32,
    /// Directed edges m (`erdos-renyi`; `rmat`: edges drawn, a few are dropped).
    pub edges: u64,
    /// `barabasi-albert`: edges each new node attaches with.
    pub attach: u32,
    /// `watts-strogatz`: ring neighbours per node (even).
    pub neighbors: u32,
    /// `watts-strogatz`: rewiring probability β.
    pub rewire: f64,
    /// `rmat`: quadrant probabilities (a, b, c); d = 1 − a − b − c.
    pub rmat: [f64; 3],
    /// `file`: the edge list, relative to the manifest.
    pub path: Option<String>,
    /// `file`: `snap` (`#` comments, `u v [w]`, ids renumbered) or `header` (first line `n m`).
    pub format: EdgeListFormat,
    /// `file`: add both directions of every edge.
    pub undirected: bool,
    /// `file`: keep the parse as a binary CSR file in Tessera's cache folder
    /// (`auto`: files of 16 MB or more; `always`; `never`).
    pub cache: GraphCache,
    /// `barabasi-albert`, `watts-strogatz`: `both` directions of every link,
    /// or one by a fair coin (`random`).
    pub direction: EdgeDirection,
    /// Seed of the graph, features and model (default: the experiment's),
    /// so variants and seeds can share one graph.
    pub seed: Option<u64>,
    /// Node features x_u ~ U[lo, hi]^d (0: none).
    pub feature_dim: u32,
    /// The range [lo, hi] of the node features.
    pub feature_range: [f32; 2],
    /// Make each node's first feature the constant 1, so θ's matching
    /// coordinates act as biases (p_uv = σ(θ₀ + θ₀′ + …)).
    pub constant_feature: bool,
    /// Edge probabilities: `uniform`, `weighted-cascade` (1/indeg), `trivalency`
    /// ({0.1, 0.01, 0.001}), `hyperparametric` (σ(θᵀ[x_u; x_v])) or `file` (the weights read).
    pub probability_model: ProbabilityModel,
    /// `uniform`: p.
    pub probability: f32,
    /// `hyperparametric`: θ_c (2d values); empty: drawn from U[−1, 1]^{2d} with the graph's seed.
    pub theta: Vec<f32>,
    /// `hyperparametric`: the box radius B of Θ = θ_c + [−B, B]^{2d}.
    pub radius: f64,
    /// `hyperparametric`: models θ of the evaluation grid (θ_c plus draws from the box).
    pub evaluation_thetas: u32,
    /// The objective that gives the per-θ reference value for the worst-case
    /// ratio (e.g. `robust-im.greedy`; empty: no ratio).
    pub reference: String,
    /// Seed-set size k.
    pub budget: u32,
    /// Further budgets to run as well (the report plots spread against k).
    pub budgets: Vec<u32>,
    /// Monte Carlo simulations per spread estimate.
    pub simulations: u32,
    /// Write the graph as a SNAP edge list (`graph.txt`) into the run folder.
    pub write_snap: bool,
}

impl Default for GraphConfig {
    fn default() -> Self {
        GraphConfig {
            generator: GraphGenerator::ErdosRenyi,
            nodes: 1000,
            edges: 5000,
            attach: 3,
            neighbors: 6,
            rewire: 0.1,
            rmat: [0.57, 0.19, 0.19],
            path: None,
            format: EdgeListFormat::Snap,
            undirected: false,
            cache: GraphCache::Auto,
            direction: EdgeDirection::Both,
            seed: None,
            feature_dim: 0,
            feature_range: [-1.0, 1.0],
            constant_feature: false,
            probability_model: ProbabilityModel::Uniform,
            probability: 0.05,
            theta: vec![],
            radius: 0.5,
            evaluation_thetas: 20,
            reference: String::new(),
            budget: 10,
            budgets: vec![],
            simulations: 1000,
            write_snap: false,
        }
    }
}

/// The settings of one variant, after merging and defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// `[experiment]`.
    pub experiment: ExperimentConfig,
    /// `[data]`.
    pub data: DataConfig,
    /// `[storage]`.
    pub storage: StorageConfig,
    /// `[model]`.
    pub model: ModelConfig,
    /// `[train]`.
    pub train: TrainConfig,
    /// `[graph]`.
    pub graph: GraphConfig,
    /// `[reference]`.
    pub reference: ReferenceConfig,
    /// `[population]`.
    pub population: PopulationConfig,
    /// `[pretrain]`.
    pub pretrain: PretrainConfig,
    /// `[executor.slurm]` and the like: options of the executors.
    pub executor: ExecutorConfig,
}

/// `[executor]`: options of each executor.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct ExecutorConfig {
    /// `[executor.slurm]`.
    pub slurm: SlurmConfig,
}

/// `[executor.slurm]`: how the units' job array is submitted.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmConfig {
    /// `--partition` (default: the cluster's default partition).
    pub partition: Option<String>,
    /// `--account` to charge (default: the user's default account).
    pub account: Option<String>,
    /// `--time` of each task, e.g. `"01:00:00"`.
    pub time: Option<String>,
    /// `--mem` of each task, e.g. `"4G"`.
    pub mem: Option<String>,
    /// `--cpus-per-task` (0: Slurm's default); also each task's threads.
    pub cpus_per_task: usize,
    /// `--gpus-per-task` (0: none).
    pub gpus: usize,
    /// At most this many tasks at once (`--array=...%N`; 0: no limit).
    pub max_parallel: usize,
    /// Further `sbatch` arguments, e.g. `["--account=lab", "--qos=short"]`.
    pub sbatch_args: Vec<String>,
    /// Shell lines run on the node before each task, e.g. `"module load cuda"`.
    pub setup: String,
}

/// A component named in a manifest, with its parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct ComponentSpec {
    /// `plugin.component`.
    pub id: String,
    /// The parameters (the table without `use`).
    pub params: toml::Table,
    /// The dotted key of its table, e.g. `sampler` or `metric[0]`.
    pub key: String,
}

impl ComponentSpec {
    /// The parameters as TOML text, as the plugin receives them.
    pub fn params_text(&self) -> String {
        toml::to_string(&self.params).unwrap_or_default()
    }
}

/// One variant, resolved: settings with defaults, and its components.
#[derive(Debug, Clone, PartialEq)]
pub struct Variant {
    /// The variant's name.
    pub name: String,
    /// Its index among `[[variant]]`s (None for a manifest without variants).
    pub index: Option<usize>,
    /// The settings.
    pub settings: Settings,
    /// The sampler, if any.
    pub sampler: Option<ComponentSpec>,
    /// The finetuner, if any.
    pub finetuner: Option<ComponentSpec>,
    /// The graph objective, if any.
    pub objective: Option<ComponentSpec>,
    /// The metrics.
    pub metrics: Vec<ComponentSpec>,
}

impl Variant {
    /// Every component of the variant with its kind.
    pub fn components(&self) -> Vec<(ComponentKind, &ComponentSpec)> {
        let mut all = Vec::new();
        if let Some(c) = &self.sampler {
            all.push((ComponentKind::Sampler, c));
        }
        if let Some(c) = &self.finetuner {
            all.push((ComponentKind::Finetuner, c));
        }
        if let Some(c) = &self.objective {
            all.push((ComponentKind::GraphObjective, c));
        }
        all.extend(self.metrics.iter().map(|c| (ComponentKind::Metric, c)));
        all
    }
}

/// One `--set KEY=VALUE` override.
#[derive(Debug, Clone, PartialEq)]
pub struct Override {
    /// The dotted key, e.g. `train.lr`.
    pub key: Vec<String>,
    /// The value (TOML; bare words are strings).
    pub value: toml::Value,
    /// As the user wrote it.
    pub text: String,
}

impl Override {
    /// Parses `KEY=VALUE`.
    pub fn parse(text: &str) -> Result<Self, String> {
        let (key, value) =
            text.split_once('=').ok_or_else(|| format!("--set {text}: expected KEY=VALUE, e.g. train.lr=0.1"))?;
        let key: Vec<String> = key.trim().split('.').map(|s| s.trim().to_string()).collect();
        if key.iter().any(String::is_empty) {
            return Err(format!("--set {text}: empty key segment"));
        }
        let value_text = value.trim();
        let value = toml::from_str::<toml::Table>(&format!("v = {value_text}"))
            .ok()
            .and_then(|mut t| t.remove("v"))
            .unwrap_or_else(|| toml::Value::String(value_text.to_string()));
        Ok(Override { key, value, text: text.to_string() })
    }
}

/// A parsed manifest file.
pub struct Manifest {
    /// The file.
    pub path: PathBuf,
    /// Its text.
    pub text: String,
    document: toml_edit::ImDocument<String>,
    base: toml::Table,
    variants: Vec<(String, toml::Table)>,
}

/// One step of a key path.
#[derive(Debug, Clone, PartialEq)]
enum Step {
    Key(String),
    Index(usize),
}

fn key_path_text(steps: &[Step]) -> String {
    let mut out = String::new();
    for s in steps {
        match s {
            Step::Key(k) => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(k);
            }
            Step::Index(i) => out.push_str(&format!("[{i}]")),
        }
    }
    out
}

fn line_col(text: &str, offset: usize) -> (usize, usize) {
    let before = &text[..offset.min(text.len())];
    let line = before.matches('\n').count() + 1;
    let col = before.rfind('\n').map_or(before.chars().count(), |i| before[i + 1..].chars().count()) + 1;
    (line, col)
}

/// The span of the key (or element) at `steps` in a spanned document.
fn span_in(item: &toml_edit::Item, steps: &[Step]) -> Option<Range<usize>> {
    use toml_edit::{Item, Value};
    let Some((first, rest)) = steps.split_first() else {
        return item.span();
    };
    match (item, first) {
        (Item::Table(t), Step::Key(k)) => {
            let (key, child) = t.get_key_value(k)?;
            if rest.is_empty() {
                key.span().or_else(|| child.span())
            } else {
                span_in(child, rest)
            }
        }
        (Item::Value(Value::InlineTable(t)), Step::Key(k)) => {
            let (key, child) = t.get_key_value(k)?;
            if rest.is_empty() {
                key.span().or_else(|| child.span())
            } else {
                span_in(child, rest)
            }
        }
        (Item::ArrayOfTables(a), Step::Index(i)) => {
            let t = a.get(*i)?;
            if rest.is_empty() {
                t.span()
            } else {
                span_in(&Item::Table(t.clone()), rest)
            }
        }
        (Item::Value(Value::Array(a)), Step::Index(i)) => {
            let v = a.get(*i)?;
            if rest.is_empty() {
                v.span()
            } else {
                span_in(&Item::Value(v.clone()), rest)
            }
        }
        _ => None,
    }
}

fn merge_into(base: &mut toml::Table, over: &toml::Table) {
    for (key, value) in over {
        let replace_whole = COMPONENT_TABLES.iter().any(|(k, _)| k == key) || key == "metric";
        match (base.get_mut(key), value) {
            (Some(toml::Value::Table(b)), toml::Value::Table(o)) if !replace_whole => merge_into(b, o),
            _ => {
                base.insert(key.clone(), value.clone());
            }
        }
    }
}

fn set_path(table: &mut toml::Table, key: &[String], value: toml::Value) -> Result<(), String> {
    let (last, parents) = key.split_last().expect("non-empty key");
    let mut current = table;
    for part in parents {
        let entry = current.entry(part.clone()).or_insert_with(|| toml::Value::Table(toml::Table::new()));
        current = match entry {
            toml::Value::Table(t) => t,
            _ => return Err(format!("`{part}` is not a table")),
        };
    }
    current.insert(last.clone(), value);
    Ok(())
}

/// The backticked words of a serde message (e.g. the expected field names).
fn backticked(message: &str) -> Vec<String> {
    message.split('`').skip(1).step_by(2).map(str::to_string).collect()
}

impl Manifest {
    /// Reads and parses `path`.
    pub fn load(path: &Path) -> Result<Manifest, Diagnostics> {
        let text = std::fs::read_to_string(path).map_err(|e| {
            Diagnostics(vec![Diagnostic {
                file: path.to_path_buf(),
                location: None,
                key: None,
                message: format!("cannot read the manifest: {e}"),
                hint: None,
            }])
        })?;
        Manifest::parse(path, text)
    }

    /// Parses manifest `text`, reporting errors against `path`.
    pub fn parse(path: &Path, text: String) -> Result<Manifest, Diagnostics> {
        let diag = |location, key: Option<String>, message: String, hint: Option<String>| Diagnostic {
            file: path.to_path_buf(),
            location,
            key,
            message,
            hint,
        };
        let document = toml_edit::ImDocument::parse(text.clone()).map_err(|e| {
            let location = e.span().map(|s| line_col(&text, s.start));
            Diagnostics(vec![diag(location, None, format!("invalid TOML: {}", e.message().trim()), None)])
        })?;
        let mut base: toml::Table = toml::from_str(&text)
            .map_err(|e| Diagnostics(vec![diag(None, None, format!("invalid TOML: {}", e.message().trim()), None)]))?;
        let mut variants = Vec::new();
        let mut errors = Vec::new();
        let mut names = BTreeSet::new();
        match base.remove("variant") {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let steps = [Step::Key("variant".into()), Step::Index(i)];
                    let location = span_in(document.as_item(), &steps).map(|s| line_col(&text, s.start));
                    let toml::Value::Table(mut table) = item else {
                        errors.push(diag(
                            location,
                            Some(key_path_text(&steps)),
                            "a variant must be a table".into(),
                            None,
                        ));
                        continue;
                    };
                    let name = match table.remove("name") {
                        Some(toml::Value::String(s)) if !s.trim().is_empty() => s,
                        _ => {
                            errors.push(diag(
                                location,
                                Some(key_path_text(&steps)),
                                "every [[variant]] needs a `name` (a non-empty string)".into(),
                                Some("add e.g. name = \"full-shuffle\"".into()),
                            ));
                            continue;
                        }
                    };
                    // A problem with this variant's `name`, located at it.
                    let name_problem = |message: String, hint: &str| {
                        let mut at = steps.to_vec();
                        at.push(Step::Key("name".into()));
                        let location = span_in(document.as_item(), &at).map(|s| line_col(&text, s.start));
                        diag(location, Some(key_path_text(&at)), message, Some(hint.into()))
                    };
                    if let Err(why) = check_variant_name(&name) {
                        errors.push(name_problem(
                            format!("variant name `{}` {why}", name.escape_debug()),
                            "a variant name names files in the run folder: use letters, digits, - _ . and spaces",
                        ));
                        continue;
                    }
                    if !names.insert(name.clone()) {
                        errors.push(name_problem(
                            format!("two variants are named `{name}`"),
                            "variant names must be unique: they name the results",
                        ));
                    }
                    variants.push((name, table));
                }
            }
            Some(_) => errors.push(diag(
                None,
                Some("variant".into()),
                "`variant` must be an array of tables: [[variant]]".into(),
                None,
            )),
        }
        if !errors.is_empty() {
            return Err(Diagnostics(errors));
        }
        Ok(Manifest { path: path.to_path_buf(), text, document, base, variants })
    }

    /// The folder the manifest is in (relative paths resolve against it).
    pub fn dir(&self) -> PathBuf {
        self.path.parent().map(Path::to_path_buf).unwrap_or_default()
    }

    /// The experiment's name: `[experiment] name`, or the file stem.
    pub fn name(&self) -> String {
        self.base
            .get("experiment")
            .and_then(|e| e.get("name"))
            .and_then(|n| n.as_str())
            .map(str::to_string)
            .unwrap_or_else(|| {
                self.path.file_stem().map(|s| s.to_string_lossy().into_owned()).unwrap_or_else(|| "experiment".into())
            })
    }

    /// The plugin search paths of the base settings, resolved against the manifest's folder.
    pub fn plugin_paths(&self) -> Vec<PathBuf> {
        let dir = self.dir();
        self.base
            .get("experiment")
            .and_then(|e| e.get("plugin_paths"))
            .and_then(|p| p.as_array())
            .map(|a| a.iter().filter_map(|v| v.as_str()).map(|p| dir.join(p)).collect())
            .unwrap_or_default()
    }

    fn locate_steps(&self, steps: &[Step]) -> Option<(usize, usize)> {
        span_in(self.document.as_item(), steps).map(|s| line_col(&self.text, s.start))
    }

    /// The dotted key and location of `key` (e.g. `train.lr`) as variant
    /// `index` sees it: its own table if it sets the key, else the base's.
    pub fn locate(&self, index: Option<usize>, key: &str) -> (String, Option<(usize, usize)>) {
        let mut steps: Vec<Step> = Vec::new();
        for part in key.split('.') {
            match part.split_once('[') {
                Some((k, rest)) => {
                    steps.push(Step::Key(k.to_string()));
                    if let Ok(i) = rest.trim_end_matches(']').parse() {
                        steps.push(Step::Index(i));
                    }
                }
                None => steps.push(Step::Key(part.to_string())),
            }
        }
        if let Some(i) = index {
            let mut in_variant = vec![Step::Key("variant".into()), Step::Index(i)];
            in_variant.extend(steps.iter().cloned());
            // The key itself, then its nearest enclosing table, in the variant.
            for len in (3..=in_variant.len()).rev() {
                if let Some(loc) = self.locate_steps(&in_variant[..len]) {
                    if len == in_variant.len() || self.locate_steps(&steps[..len - 2]).is_none() {
                        return (key_path_text(&in_variant), Some(loc));
                    }
                    break;
                }
            }
        }
        for len in (1..=steps.len()).rev() {
            if let Some(loc) = self.locate_steps(&steps[..len]) {
                return (key_path_text(&steps), Some(loc));
            }
        }
        let fallback = index.and_then(|i| self.locate_steps(&[Step::Key("variant".into()), Step::Index(i)]));
        (key_path_text(&steps), fallback)
    }

    /// A diagnostic about `key` as variant `index` sees it; a key that a
    /// `--set` override wrote is blamed on the override, not the file.
    pub fn diagnostic(
        &self,
        index: Option<usize>,
        overrides: &[Override],
        key: &str,
        message: String,
        hint: Option<String>,
    ) -> Diagnostic {
        if let Some(o) =
            overrides.iter().find(|o| key == o.key.join(".") || key.starts_with(&format!("{}.", o.key.join("."))))
        {
            let message = format!("--set {}: {message}", o.text);
            return Diagnostic { file: self.path.clone(), location: None, key: Some(key.to_string()), message, hint };
        }
        let (key, location) = self.locate(index, key);
        Diagnostic { file: self.path.clone(), location, key: Some(key), message, hint }
    }

    /// The merged table of variant `index` with `overrides` applied.
    pub fn merged_table(&self, index: Option<usize>, overrides: &[Override]) -> Result<toml::Table, Diagnostic> {
        let mut table = self.base.clone();
        if let Some(i) = index {
            merge_into(&mut table, &self.variants[i].1);
        }
        for o in overrides {
            set_path(&mut table, &o.key, o.value.clone()).map_err(|m| Diagnostic {
                file: self.path.clone(),
                location: None,
                key: Some(o.key.join(".")),
                message: format!("--set {}: {m}", o.text),
                hint: None,
            })?;
        }
        Ok(table)
    }

    /// Resolves every variant; all problems are reported together.
    pub fn variants(&self, overrides: &[Override]) -> Result<Vec<Variant>, Diagnostics> {
        let indices: Vec<Option<usize>> =
            if self.variants.is_empty() { vec![None] } else { (0..self.variants.len()).map(Some).collect() };
        let mut out = Vec::new();
        let mut errors = Vec::new();
        for index in indices {
            // A sweep: the variant again at each value of its swept setting.
            let swept = match self.variant(index, overrides) {
                Ok(v) => match v.settings.experiment.sweep.clone() {
                    None => vec![Ok(v)],
                    Some(sweep) => {
                        let key: Vec<String> = sweep.key.split('.').map(String::from).collect();
                        sweep
                            .values
                            .iter()
                            .map(|value| {
                                let mut with = overrides.to_vec();
                                let text = format!("experiment.sweep: {} = {value}", sweep.key);
                                with.push(Override { key: key.clone(), value: value.clone(), text });
                                self.variant(index, &with).map(|mut run| {
                                    // A resolved run is one point of the sweep.
                                    run.name = sweep.run_name(&v.name, value);
                                    run.settings.experiment.sweep = None;
                                    run
                                })
                            })
                            .collect()
                    }
                },
                Err(d) => vec![Err(d)],
            };
            for resolved in swept {
                match resolved {
                    Ok(v) if v.settings.experiment.seeds.is_empty() => out.push(v),
                    Ok(v) => {
                        for &seed in &v.settings.experiment.seeds {
                            let mut run = v.clone();
                            run.name = format!("{}@{seed}", v.name);
                            run.settings.experiment.seed = seed;
                            run.settings.experiment.seeds = vec![];
                            out.push(run);
                        }
                    }
                    Err(mut d) => errors.append(&mut d.0),
                }
            }
        }
        errors.extend(self.name_clashes(&out, overrides));
        if errors.is_empty() {
            Ok(out)
        } else {
            errors.dedup();
            Err(Diagnostics(errors))
        }
    }

    /// Whether variant `index` lists a seed twice.
    fn has_repeated_seeds(&self, index: Option<usize>, overrides: &[Override]) -> bool {
        let seeds = self.variant(index, overrides).map(|v| v.settings.experiment.seeds).unwrap_or_default();
        seeds.iter().collect::<BTreeSet<_>>().len() != seeds.len()
    }

    /// Runs whose names, or file names, are the same after seeds and sweep
    /// values are expanded: their results would overwrite each other.
    fn name_clashes(&self, runs: &[Variant], overrides: &[Override]) -> Vec<Diagnostic> {
        let mut seen: std::collections::BTreeMap<String, (&str, Option<usize>)> = Default::default();
        let mut errors = Vec::new();
        for run in runs {
            let stem = crate::report::file_stem_safe(&run.name);
            if let Some((first, index)) = seen.insert(stem.clone(), (&run.name, run.index)) {
                let what = if first == run.name { "two runs are named".to_string() } else { format!("`{first}` and") };
                // One variant twice: a repeated seed or sweep value.
                let key = match (index == run.index, self.has_repeated_seeds(run.index, overrides)) {
                    (true, true) => "experiment.seeds",
                    (true, false) => "experiment.sweep",
                    (false, _) => "name",
                };
                errors.push(self.diagnostic(
                    run.index,
                    overrides,
                    key,
                    format!("{what} `{}` (file name `{stem}`): their results would overwrite each other", run.name),
                    Some("rename a variant, or remove a repeated seed or sweep value".into()),
                ));
            }
        }
        errors
    }

    /// Resolves variant `index` (None: the base alone).
    pub fn variant(&self, index: Option<usize>, overrides: &[Override]) -> Result<Variant, Diagnostics> {
        let name = match index {
            Some(i) => self.variants[i].0.clone(),
            None => self.name(),
        };
        let mut table = self.merged_table(index, overrides).map_err(|d| Diagnostics(vec![d]))?;
        let mut errors = Vec::new();
        let mut take_component = |table: &mut toml::Table, key: &str| -> Option<ComponentSpec> {
            let value = table.remove(key)?;
            component_spec(value, key).map_err(|m| errors.push(self.diagnostic(index, overrides, key, m, None))).ok()
        };
        let sampler = take_component(&mut table, "sampler");
        let finetuner = take_component(&mut table, "finetuner");
        let objective = take_component(&mut table, "objective");
        let mut metrics = Vec::new();
        match table.remove("metric") {
            None => {}
            Some(toml::Value::Array(items)) => {
                for (i, item) in items.into_iter().enumerate() {
                    let key = format!("metric[{i}]");
                    match component_spec(item, &key) {
                        Ok(spec) => metrics.push(spec),
                        Err(m) => errors.push(self.diagnostic(index, overrides, &key, m, None)),
                    }
                }
            }
            Some(_) => errors.push(self.diagnostic(
                index,
                overrides,
                "metric",
                "`metric` must be an array of tables: [[metric]]".into(),
                None,
            )),
        }
        // The recorded provenance of a resolved manifest is not a setting.
        table.remove("plugin");
        let settings = match serde_path_to_error::deserialize::<_, Settings>(toml::Value::Table(table)) {
            Ok(s) => Some(s),
            Err(e) => {
                let mut key = e.path().to_string();
                let message = e.inner().message().trim().to_string();
                let mut hint = None;
                if message.starts_with("unknown variant") {
                    let words = backticked(&message);
                    if let Some((unknown, expected)) = words.split_first() {
                        hint = closest(unknown, expected.iter().map(String::as_str))
                            .map(|b| format!("did you mean `{b}`?"))
                            .or_else(|| Some(format!("one of: {}", expected.join(", "))));
                    }
                } else if message.starts_with("unknown field") {
                    let words = backticked(&message);
                    if let Some((unknown, expected)) = words.split_first() {
                        if !key.ends_with(unknown.as_str()) {
                            key =
                                if key == "." || key.is_empty() { unknown.clone() } else { format!("{key}.{unknown}") };
                        }
                        hint = closest(unknown, expected.iter().map(String::as_str))
                            .map(|b| format!("did you mean `{b}`?"))
                            .or_else(|| (!expected.is_empty()).then(|| format!("known keys: {}", expected.join(", "))));
                    }
                }
                errors.push(self.diagnostic(index, overrides, &key, message, hint));
                None
            }
        };
        match settings {
            Some(settings) if errors.is_empty() => {
                Ok(Variant { name, index, settings, sampler, finetuner, objective, metrics })
            }
            _ => Err(Diagnostics(errors)),
        }
    }
}

/// Why `name` cannot name a variant, if it cannot: it names files and
/// folders, so it must be one safe path component.
pub fn check_variant_name(name: &str) -> Result<(), &'static str> {
    if name.trim().is_empty() {
        return Err("is empty");
    }
    if name == "." || name == ".." {
        return Err("is a relative folder, not a name");
    }
    if name.contains(['/', '\\']) {
        return Err("contains a path separator");
    }
    if name.chars().any(char::is_control) {
        return Err("contains a control character");
    }
    if name.chars().count() > 128 {
        return Err("is longer than 128 characters");
    }
    Ok(())
}

fn component_spec(value: toml::Value, key: &str) -> Result<ComponentSpec, String> {
    let toml::Value::Table(mut params) = value else {
        return Err(format!("`{key}` must be a table with `use = \"plugin.component\"`"));
    };
    match params.remove("use") {
        Some(toml::Value::String(id)) => Ok(ComponentSpec { id, params, key: key.to_string() }),
        _ => Err(format!("`{key}` needs `use = \"plugin.component\"`, e.g. use = \"baselines.accuracy\"")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const TEXT: &str = r#"
[experiment]
seed = 3

[train]
epochs = 2
lr = 0.1

[sampler]
use = "baselines.sequential"

[[metric]]
use = "baselines.accuracy"

[[variant]]
name = "a"

[[variant]]
name = "b"
sampler = { use = "baselines.full-shuffle", chunk = 8 }
[variant.train]
lr = 0.5
"#;

    fn manifest(text: &str) -> Result<Manifest, Diagnostics> {
        Manifest::parse(Path::new("m.toml"), text.to_string())
    }

    #[test]
    fn variants_override_the_base() {
        let m = manifest(TEXT).unwrap();
        let vs = m.variants(&[]).unwrap();
        assert_eq!(vs.len(), 2);
        assert_eq!(vs[0].settings.train.lr, 0.1);
        assert_eq!(vs[1].settings.train.lr, 0.5);
        assert_eq!(vs[1].settings.train.epochs, 2, "untouched keys come from the base");
        assert_eq!(vs[0].sampler.as_ref().unwrap().id, "baselines.sequential");
        let b = vs[1].sampler.as_ref().unwrap();
        assert_eq!(
            (b.id.as_str(), b.params.get("chunk").and_then(|v| v.as_integer())),
            ("baselines.full-shuffle", Some(8))
        );
        assert_eq!(vs[1].metrics.len(), 1);
    }

    #[test]
    fn a_sweep_runs_each_variant_at_each_value_then_each_seed() {
        let text = format!("{TEXT}\n");
        let text = text.replacen(
            "[experiment]",
            "[experiment]\nseeds = [1, 2]\nsweep = { key = \"data.train_per_class\", values = [10, 0] }",
            1,
        );
        let m = manifest(&text).unwrap();
        let names: Vec<String> = m.variants(&[]).unwrap().into_iter().map(|v| v.name).collect();
        assert_eq!(
            names,
            [
                "a[train_per_class=10]@1",
                "a[train_per_class=10]@2",
                "a[train_per_class=0]@1",
                "a[train_per_class=0]@2",
                "b[train_per_class=10]@1",
                "b[train_per_class=10]@2",
                "b[train_per_class=0]@1",
                "b[train_per_class=0]@2",
            ]
        );
        let vs = m.variants(&[]).unwrap();
        assert_eq!((vs[0].settings.data.train_per_class, vs[3].settings.data.train_per_class), (10, 0));
        assert_eq!(vs[5].settings.train.lr, 0.5, "the variant's own settings stay");
        assert!(vs.iter().all(|v| v.settings.experiment.sweep.is_none()), "each run is one point");
        let bad = text.replace("data.train_per_class", "data.per_class");
        let err = manifest(&bad).unwrap().variants(&[]).unwrap_err().to_string();
        assert!(err.contains("per_class"), "{err}");
    }

    #[test]
    fn overrides_apply_to_every_variant() {
        let m = manifest(TEXT).unwrap();
        let vs = m
            .variants(&[
                Override::parse("train.lr=0.01").unwrap(),
                Override::parse("data.stored_order=sorted-by-label").unwrap(),
            ])
            .unwrap();
        assert!(vs.iter().all(|v| v.settings.train.lr == 0.01));
        assert_eq!(vs[0].settings.data.stored_order, StoredOrder::SortedByLabel);
    }

    #[test]
    fn a_misspelled_key_is_located_with_a_hint() {
        let text = TEXT.replace("lr = 0.5", "lrr = 0.5");
        let m = manifest(&text).unwrap();
        let err = m.variants(&[]).unwrap_err();
        let d = &err.0[0];
        assert_eq!(d.key.as_deref(), Some("variant[1].train.lrr"));
        let line = text.lines().position(|l| l.starts_with("lrr")).unwrap() + 1;
        assert_eq!(d.location, Some((line, 1)));
        assert_eq!(d.hint.as_deref(), Some("did you mean `lr`?"));
        assert!(d.to_string().starts_with(&format!("m.toml:{line}:1: error: unknown field `lrr`")), "{d}");
    }

    #[test]
    fn a_wrong_type_in_the_base_is_located() {
        let text = TEXT.replace("epochs = 2", "epochs = \"two\"");
        let err = manifest(&text).unwrap().variants(&[]).err().unwrap();
        let line = text.lines().position(|l| l.starts_with("epochs")).unwrap() + 1;
        assert_eq!(err.0[0].key.as_deref(), Some("train.epochs"));
        assert_eq!(err.0[0].location.map(|l| l.0), Some(line));
    }

    #[test]
    fn syntax_errors_and_bad_variants_are_reported() {
        let err = manifest("[train\nlr = 1").err().unwrap();
        assert_eq!(err.0[0].location.map(|l| l.0), Some(1));
        let err = manifest("[[variant]]\nname = \"x\"\n[[variant]]\nname = \"x\"\n").err().unwrap();
        assert!(err.0[0].message.contains("two variants are named `x`"));
        assert_eq!(err.0[0].location, Some((4, 1)));
        let err = manifest("[[variant]]\nseed = 1\n").err().unwrap();
        assert!(err.0[0].message.contains("needs a `name`"));
    }

    #[test]
    fn a_component_without_use_is_an_error() {
        let err = manifest("[sampler]\nchunk = 3\n").unwrap().variants(&[]).err().unwrap();
        assert!(err.0[0].message.contains("needs `use"));
        assert_eq!(err.0[0].location, Some((1, 2)));
    }

    #[test]
    fn seeds_repeat_every_variant() {
        let m = manifest(&TEXT.replace("seed = 3", "seeds = [1, 2]")).unwrap();
        let vs = m.variants(&[]).unwrap();
        let names: Vec<(&str, u64)> = vs.iter().map(|v| (v.name.as_str(), v.settings.experiment.seed)).collect();
        assert_eq!(names, [("a@1", 1), ("a@2", 2), ("b@1", 1), ("b@2", 2)]);
    }

    #[test]
    fn a_bad_override_is_blamed_on_the_override() {
        let m = manifest(TEXT).unwrap();
        let err = m.variants(&[Override::parse("train.lrr=3").unwrap()]).err().unwrap();
        assert_eq!(err.0[0].location, None);
        assert!(err.0[0].message.starts_with("--set train.lrr=3: unknown field `lrr`"), "{}", err.0[0]);
    }

    #[test]
    fn override_values_are_typed() {
        assert_eq!(Override::parse("train.lr=0.5").unwrap().value, toml::Value::Float(0.5));
        assert_eq!(Override::parse("train.epochs = 3").unwrap().value, toml::Value::Integer(3));
        assert_eq!(Override::parse("data.source=blobs").unwrap().value, toml::Value::String("blobs".into()));
        assert!(Override::parse("train.lr").is_err());
    }
}

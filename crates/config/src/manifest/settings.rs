//! The settings tables of a manifest: each declared once with
//! [`settings!`](super::reference::settings), which gives its struct, its
//! defaults and its entry in the generated settings reference.

use serde::{Deserialize, Serialize};

use super::reference::{one_of, settings, SettingType};
use super::MemberBatch;
use crate::choice::{
    DataSource, DeviceChoice, EdgeDirection, EdgeListFormat, GraphCache, GraphGenerator, ModelKind, Optimizer,
    OracleOrder, PretrainMethod, ProbabilityModel, ReferenceData, Schedule, ShiftSplits, Split, StorageAccess,
    StorageMode, StoragePreset, StoredOrder,
};

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

impl SettingType for ExperimentKind {
    fn describe() -> String {
        one_of(Self::names())
    }

    fn names() -> &'static [&'static str] {
        &["train", "graph", "population"]
    }
}

settings! {
    /// `[experiment]`: settings of the whole run.
    #[table = "experiment"]
    pub struct ExperimentConfig {
        /// The experiment's name (default: the manifest's file stem).
        pub name: Option<String> = None;
        /// What the experiment asks and what its figures show, in a sentence
        /// or two: the report page shows it under the title.
        pub description: String = String::new();
        /// What a variant runs: `train`, `graph` or `population`.
        pub kind: ExperimentKind = ExperimentKind::Train;
        /// The seed of everything random in a variant.
        pub seed: u64 = 0;
        /// Run every variant once per seed (named `variant@seed`); the summary
        /// and `tables/seeds.csv` give mean and spread over seeds.
        pub seeds: Vec<u64> = vec![];
        /// Train up to this many seeds of a `train` variant (`seeds`) as one
        /// batched model in one unit of the plan: weights stacked on a member
        /// axis, each seed with its own initialization, data, sampler order,
        /// checkpoints and reports, as it would train alone up to
        /// floating-point reassociation. MLP, linear and CNN models; not with
        /// a finetuner or a sampler that selects per step. 1: each seed
        /// alone; `"auto"`: up to 64 seeds where the variant can batch. A
        /// batch saves its state like a unit of one seed (`checkpoint_minutes`).
        pub batch: crate::manifest::MemberBatch = crate::manifest::MemberBatch::Runs(1), range "[1, 4096]";
        /// `cpu`, `cuda`, `cuda:N`, or `auto` (the first GPU if there is one).
        pub device: DeviceChoice = DeviceChoice::Cpu;
        /// Threads for tensor work (0 = libtorch's default).
        pub threads: usize = 0, range "[0, 1024]";
        /// `native` (the fastest kernels this CPU has) or `portable` (kernels
        /// pinned to AVX2: the same bits on any x86-64 CPU with AVX2, so a
        /// Slurm array over mixed nodes gives what one node would; needs
        /// `threads` set, and one value for the whole manifest).
        pub reproducible: crate::choice::Reproducible = crate::choice::Reproducible::Native;
        /// Minutes between a `train` unit's saves of its whole training
        /// state (model, optimizer, position in the epoch, the components'
        /// states, curves), from which `tessera resume` continues a stopped
        /// unit bit for bit; it also saves when stopped (Ctrl-C, SIGTERM,
        /// SIGUSR1). 0: only when stopped.
        pub checkpoint_minutes: f64 = 5.0, range "[0, 10080]";
        /// Folders or library files to search for plugins, relative to the manifest.
        pub plugin_paths: Vec<String> = vec![];
        /// Run each variant once per value of one setting, e.g.
        /// `{ key = "data.train_per_class", values = [10, 50, 0] }`: the runs are
        /// named `NAME[train_per_class=10]` (before any `@seed`).
        pub sweep: Option<SweepConfig> = None;
        /// Plots across variants: a scalar against another, a line per variant
        /// (sweep values and seeds merged, the mean over seeds).
        pub plots: Vec<ScalarPlot> = vec![];
        /// Where the run's units run: `inline`, `processes` or `slurm`
        /// (`--executor` overrides it).
        pub executor: crate::choice::ExecutorKind = crate::choice::ExecutorKind::Inline;
        /// Worker processes of the `processes` executor (0 = one per core).
        pub jobs: usize = 0;
    }
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

/// A plot across variants: scalar `y` against scalar `x` (each `role/name`,
/// e.g. `engine/train_examples`), one line per variant with its sweep value
/// and seed taken off its name; points are means over seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ScalarPlot {
    /// The x scalar, `role/name`.
    pub x: String,
    /// The y scalar, `role/name`.
    pub y: String,
    /// Plot x on a log scale.
    #[serde(default)]
    pub log_x: bool,
}

impl SettingType for ScalarPlot {
    fn describe() -> String {
        "table `{ x, y, log_x }`".to_string()
    }
}

impl SettingType for SweepConfig {
    fn describe() -> String {
        "table `{ key, values }`".to_string()
    }
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

settings! {
    /// `[data]`: where examples come from.
    #[table = "data"]
    pub struct DataConfig {
        /// The source: `blobs` (Gaussian clusters), `mnist1d` (the authors'
        /// MNIST-1D, `[data.mnist1d]`), `teacher` (labels from a random network), `digits` (the UCI
        /// 8×8 digits, shipped), `idx` (MNIST-style), `cifar10`, `cifar100`,
        /// `npy`, `csv`, `webdataset` (tar shards), `shards` (a shard folder).
        pub source: DataSource = DataSource::Blobs;
        /// Features file (`idx` images, `npy` features, `csv`), tar file or
        /// folder of tars (`webdataset`), or shard folder (`shards`), relative
        /// to the manifest; `shards` may also be an object-store prefix,
        /// `s3://bucket/prefix` (endpoint, region and keys from `AWS_*`
        /// variables or `~/.aws/`).
        pub path: Option<String> = None;
        /// `shards`: the test split's shard folder (default: `test/` beside
        /// `train/` in a folder written by `tessera shard`).
        pub test_path: Option<String> = None;
        /// `shards`: the validation split's shard folder (default: `validation/`
        /// beside `train/`; none: an empty validation split).
        pub validation_path: Option<String> = None;
        /// The most memory the validation and test splits may take together, in
        /// MB: they are held in memory, the training split need not be.
        pub holdout_memory_mb: u64 = 4096, range "[1, ∞)";
        /// `s3://` shards: ranged GETs in flight at once (with the loader's
        /// buffer, this bounds the bytes in flight).
        pub store_in_flight: usize = 16, range "[1, 1024]";
        /// `s3://` shards: the most MB those requests may ask for together
        /// (fewer are in flight when blocks are large; one always is).
        pub store_in_flight_mb: u64 = 256, range "[1, ∞)";
        /// `s3://` shards: retries of a request that timed out or failed in a
        /// way that may pass (no connection, a 5xx), with backoff from 100 ms.
        pub store_retries: u32 = 3, range "[0, 20]";
        /// `s3://` shards: seconds a request may take before it is retried.
        pub store_timeout_seconds: f64 = 30.0, range "(0, 3600]";
        /// `s3://` shards: a local folder keeping the training blocks read
        /// (relative to the manifest; created and marked by Tessera, or one
        /// it made before), so later epochs and runs read them from disk.
        pub store_cache: Option<String> = None;
        /// `s3://` shards: the most the block cache keeps, in MB (least
        /// recently used blocks leave first).
        pub store_cache_mb: u64 = 10240, range "[1, ∞)";
        /// Labels file (`idx`, `npy`), relative to the manifest.
        pub labels_path: Option<String> = None;
        /// Binary batch files (`cifar10`, `cifar100`), relative to the manifest.
        pub files: Vec<String> = vec![];
        /// The label column of a `csv` (negative counts from the end).
        pub label_column: i64 = -1;
        /// Use at most this many examples (after the seeded shuffle).
        pub limit: Option<usize> = None, range "[1, ∞)";
        /// Keep only the first N examples of the training split (after the
        /// split, so the test split stays the same): a small fixed training set
        /// for offline training.
        pub train_limit: Option<usize> = None, range "[1, ∞)";
        /// Keep only the first N training examples of each class (after the
        /// split and `train_limit`): a scarce, balanced training set; 0 = all.
        pub train_per_class: usize = 0;
        /// `teacher`: hidden width of the random teacher network.
        pub teacher_width: usize = 64;
        /// Number of examples in all splits together (generated sources).
        pub examples: usize = 2000;
        /// Feature dimension (generated sources).
        pub features: usize = 16, range "[1, ∞)";
        /// Number of classes (generated sources).
        pub classes: usize = 4, range "[2, 100000]";
        /// Distance scale between class centres: larger is easier.
        pub separation: f64 = 3.0, range "[0, ∞)";
        /// Fraction of examples held out for testing.
        pub test_fraction: f64 = 0.2, range "[0, 1)";
        /// Fraction of examples held out for validation.
        pub validation_fraction: f64 = 0.1, range "[0, 1)";
        /// The seed of the data (default: the experiment's seed), so variants with
        /// other seeds can still share the data.
        pub seed: Option<u64> = None;
        /// How the training split is stored: `shuffled` or `sorted-by-label`.
        pub stored_order: StoredOrder = StoredOrder::Shuffled;
        /// Relabels into groups: group `g` becomes class `g`, and examples whose
        /// label is in no group are dropped; e.g. `[[0, 1, 2, 3, 4], [5, 6, 7, 8, 9]]`
        /// turns the digits into a binary task, `[[0], [1], [2]]` keeps three classes.
        pub label_groups: Vec<Vec<i64>> = vec![];
        /// `mnist1d`: the authors' generator's arguments, under the package's
        /// names (`[data.mnist1d]`).
        pub mnist1d: Mnist1dArgs = Default::default();
        /// A `shifted` split: a transformed copy of the test split (an
        /// out-of-distribution test set); none while both transforms are 0.
        pub shift: ShiftConfig = ShiftConfig::default();
    }
}

settings! {
    /// `[data.shift]`: a distribution shift: input-level (translation, blur,
    /// noise) and label-level (a permutation of the classes). It makes the
    /// `shifted` split from the test split, or, with `splits = "all"`,
    /// moves every split (a fine-tuning run then trains on shifted data).
    #[table = "data.shift"]
    pub struct ShiftConfig {
        /// Standard deviation of Gaussian noise added to every feature.
        pub noise: f64 = 0.0, range "[0, ∞)";
        /// Largest translation along the last axis (pixels or sequence points):
        /// each example moves by a uniform integer in [−translate, translate],
        /// filling with zeros.
        pub translate: usize = 0;
        /// Radius r of a box blur (the mean over a (2r+1)-wide window) along
        /// the last axis, and the one before it for images; 0: none.
        pub blur: usize = 0, range "[0, 64]";
        /// Relabel every example by one random permutation of the classes
        /// (drawn from the data seed, no class kept): a label-level shift.
        pub permute_labels: bool = false;
        /// `shifted`: only the `shifted` split, made from the test split;
        /// `all`: the training, validation and test splits are shifted too
        /// (and `shifted` is the shifted test split).
        pub splits: ShiftSplits = ShiftSplits::Shifted;
    }
}

impl ShiftConfig {
    /// Whether the manifest asks for a shift.
    pub fn is_enabled(&self) -> bool {
        self.noise > 0.0 || self.translate > 0 || self.blur > 0 || self.permute_labels
    }

    /// Whether every split is shifted, not only the `shifted` one.
    pub fn moves_every_split(&self) -> bool {
        self.is_enabled() && self.splits == ShiftSplits::All
    }
}

/// Which train/test split a manifest gets.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "kebab-case")]
pub enum Mnist1dSplit {
    /// Tessera's seeded split by `data.test_fraction` and `validation_fraction`.
    #[default]
    Tessera,
    /// The package's: the first `train_split` of its (shuffled) sequences
    /// train, the rest test; `validation_fraction` of the training part
    /// (from its end) validates.
    Package,
}

impl SettingType for Mnist1dSplit {
    fn describe() -> String {
        one_of(Self::names())
    }

    fn names() -> &'static [&'static str] {
        &["tessera", "package"]
    }
}

settings! {
    /// `[data.mnist1d]`: the package's arguments (`get_dataset_args()`), under
    /// its names and with its defaults.
    #[table = "data.mnist1d"]
    pub struct Mnist1dArgs {
        /// Sequences in all (5000); a multiple of 10 keeps the classes equal.
        pub num_samples: usize = 5000, range "[10, ∞)";
        /// The package's training share (0.8), for `split = "package"`.
        pub train_split: f64 = 0.8, range "(0, 1)";
        /// Points of a template (12).
        pub template_len: usize = 12, range "[2, ∞)";
        /// Zeros appended to a template: uniform in [low, high] ([36, 60]).
        pub padding: [usize; 2] = [36, 60];
        /// Amplitude scale: × 1 + scale_coeff · U(−½, ½) (0.4).
        pub scale_coeff: f64 = 0.4;
        /// Circular shift drawn from 0..max_translation (48).
        pub max_translation: usize = 48, range "[1, ∞)";
        /// Correlated noise: N(0, scale²) smoothed by a Gaussian of σ = 2 (0.25).
        pub corr_noise_scale: f64 = 0.25;
        /// Independent noise N(0, scale²) (0.02).
        pub iid_noise_scale: f64 = 0.02;
        /// Shear: a ramp of slope scale · U(−½, ½) subtracted (0.75).
        pub shear_scale: f64 = 0.75;
        /// Permute the positions of every sequence alike (false).
        pub shuffle_seq: bool = false;
        /// Points of a sequence (40).
        pub final_seq_length: usize = 40, range "[2, 1048576]";
        /// The package's seed; default: `data.seed`, else the package's 42.
        pub seed: Option<u64> = None;
        /// `tessera` (the default: `data.test_fraction`) or `package`.
        pub split: Mnist1dSplit = Mnist1dSplit::Tessera;
    }
}

settings! {
    /// `[storage]`: how the training split is laid out and read.
    #[table = "storage"]
    pub struct StorageConfig {
        /// Examples per block (one storage request).
        pub block_size: u64 = 32, range "[1, ∞)";
        /// `memory`: train from tensors in memory, counting the I/O a block
        /// buffer would do; `shards`: write the split as shards and read every
        /// epoch from disk through the block loader.
        pub mode: StorageMode = StorageMode::Memory;
        /// The cost model: `local-ssd`, `hdd` or `cloud` (20 ms, 100 MB/s).
        pub preset: StoragePreset = StoragePreset::Cloud;
        /// Blocks the loader's buffer holds (least recently used goes first).
        pub buffer_blocks: usize = 1, range "[1, ∞)";
        /// Blocks buffered during a sampler's offline pass (default: `buffer_blocks`).
        pub offline_buffer_blocks: Option<usize> = None, range "[1, ∞)";
        /// `block`: read whole blocks; `example`: one ranged request per example.
        pub access: StorageAccess = StorageAccess::Block;
        /// Chunks of the order the reader thread may run ahead (`shards`).
        pub prefetch: usize = 4, range "[1, ∞)";
        /// Blocks per shard file (`shards`).
        pub blocks_per_shard: u64 = 64, range "[1, ∞)";
        /// Where the shards go (each variant's under its name): a folder
        /// relative to the manifest, or an empty `s3://bucket/prefix`
        /// (default: the run folder).
        pub dir: Option<String> = None;
        /// Keep the shards after the run.
        pub keep: bool = false;
    }
}

settings! {
    /// `[model]`: the network.
    #[table = "model"]
    pub struct ModelConfig {
        /// The architecture: `mlp`, `cnn`, `resnet`, or `torchscript` (a model
        /// exported from PyTorch with `torch.jit.save`, at `path`).
        pub kind: ModelKind = ModelKind::Mlp;
        /// `torchscript`: the module file, relative to the manifest.
        pub path: Option<String> = None;
        /// `mlp`: widths of the hidden layers (blocks `layer0`, `layer1`, …).
        pub hidden: Vec<i64> = vec![64];
        /// `cnn`: channels of the conv blocks (`conv0`, `conv1`, …).
        pub channels: Vec<i64> = vec![16, 32];
        /// `cnn`: BatchNorm after each convolution.
        pub batch_norm: bool = false;
        /// `resnet`: channels of the first stage (doubling per stage).
        pub width: i64 = 16;
        /// `resnet`: basic blocks per stage.
        pub depth: usize = 1;
        /// `resnet`: number of stages (blocks `layer1.0` … `layer<stages>.<depth-1>`).
        pub stages: usize = 3;
        /// Start from these weights (`.safetensors`, saved by the same architecture).
        pub weights: Option<String> = None;
        /// Load every weight from `weights` but the head's, which starts fresh
        /// (finetuning a backbone pretrained on another task, whose number of
        /// classes may differ).
        pub fresh_head: bool = false;
    }
}

settings! {
    /// `[train]`: the optimization.
    #[table = "train"]
    pub struct TrainConfig {
        /// Passes over the training split.
        pub epochs: u64 = 5, range "[1, 100000]";
        /// Examples per optimizer step.
        pub batch_size: usize = 32, range "[1, ∞)";
        /// `sgd` or `adam`.
        pub optimizer: Optimizer = Optimizer::Sgd;
        /// Learning rate.
        pub lr: f64 = 0.05, range "(0, ∞)";
        /// SGD momentum.
        pub momentum: f64 = 0.0, range "[0, 1)";
        /// L2 weight decay.
        pub weight_decay: f64 = 0.0, range "[0, ∞)";
        /// Evaluate every this many steps as well as after each epoch (0 = epochs only).
        pub checkpoint_every: u64 = 0;
        /// Also evaluate after exactly these steps.
        pub checkpoint_steps: Vec<u64> = vec![];
        /// Also evaluate at about this many steps spaced evenly on a log scale
        /// from step 1 to the last step: dense early, sparse later.
        pub checkpoint_log: u64 = 0, range "[0, 100000]";
        /// Epochs each finetuning-oracle candidate trains for (unless the
        /// finetuner asks for others).
        pub oracle_epochs: u64 = 2, range "[1, ∞)";
        /// The order oracle candidates train in: the variant's `sampler` (after
        /// its offline pass) or a host `shuffle` (before it).
        pub oracle_order: OracleOrder = OracleOrder::Sampler;
        /// Memory budget of the oracle's frozen-prefix activation cache, in MiB
        /// (0 = recompute the frozen prefix in every batch).
        pub oracle_cache_mb: u64 = 1024;
        /// Save the trained weights to `models/<variant>.safetensors` in the run
        /// folder (always done for finetuning variants).
        pub save_model: bool = false;
        /// Learning-rate schedule: `constant`, `step` (× `gamma` every
        /// `step_every` steps) or `cosine` (to 0 over the run).
        pub schedule: Schedule = Schedule::Constant;
        /// Linear warm-up from 0 over this many steps (any schedule).
        pub warmup_steps: u64 = 0;
        /// `step` schedule: steps between decays.
        pub step_every: u64 = 1000, range "[1, ∞)";
        /// `step` schedule: the decay factor.
        pub gamma: f64 = 0.1, range "(0, ∞)";
        /// Micro-batches whose gradients add up before each optimizer step.
        pub accumulate: u64 = 1, range "[1, ∞)";
        /// Stop after this many training examples (an online, single-pass budget
        /// when it is at most one epoch's worth).
        pub max_examples: Option<u64> = None, range "[1, ∞)";
        /// Label noise η: this fraction of training labels, round(η·n) exactly,
        /// each flipped to a uniformly random other class (seeded).
        pub label_noise: f64 = 0.0, range "[0, 1]";
    }
}

settings! {
    /// `[reference]`: a second classifier L trained by the host on the same
    /// inputs, whose hard predictions metrics ask for as the observation
    /// `reference-predictions` (e.g. the linear classifier of μ_Y(F;L)).
    #[table = "reference"]
    pub struct ReferenceConfig {
        /// `none`, or the network to train, in the terms of `[model]`: `linear`
        /// is multinomial logistic regression on the flattened inputs.
        pub model: ModelConfig = ModelConfig { kind: ModelKind::None, ..ModelConfig::default() };
        /// The split it trains on: `train` (its labels as given) or
        /// `validation` (held out: an irreducible-loss model for RHO-LOSS).
        pub data: ReferenceData = ReferenceData::Train;
        /// Passes over its split (Adam, full-size batches of
        /// `batch_size`); 0 keeps `model.weights` as loaded.
        pub epochs: u64 = 200, range "[0, 100000]";
        /// Examples per step.
        pub batch_size: usize = 256, range "[1, ∞)";
        /// Adam's learning rate.
        pub lr: f64 = 0.01, range "(0, ∞)";
        /// L2 weight decay.
        pub weight_decay: f64 = 0.0, range "[0, ∞)";
    }
}

settings! {
    /// `[pretrain]`: self-supervised pretraining of the variant's network on the
    /// training inputs (no labels), before the run; see the host's `pretrain` module.
    #[table = "pretrain"]
    pub struct PretrainConfig {
        /// `none`, `simclr` (contrastive, NT-Xent) or `autoencoder`.
        pub method: PretrainMethod = PretrainMethod::None;
        /// Passes over the training inputs.
        pub epochs: u64 = 30, range "[1, 100000]";
        /// Examples per step (SimCLR contrasts each view with the batch's others).
        pub batch_size: usize = 256, range "[2, ∞)";
        /// Adam's learning rate.
        pub lr: f64 = 0.001, range "(0, ∞)";
        /// SimCLR: the temperature τ of NT-Xent.
        pub temperature: f64 = 0.5, range "(0, ∞)";
        /// SimCLR: the projection head's output dimension.
        pub projection: i64 = 64, range "[1, ∞)";
        /// Augmentation: largest random translation, in points, along each of
        /// the last two axes of images (the last axis of sequences).
        pub shift: i64 = 1, range "[0, ∞)";
        /// Augmentation: standard deviation of Gaussian noise.
        pub noise: f64 = 0.1, range "[0, ∞)";
    }
}

settings! {
    /// `[population]`: the members of a population experiment. Every model of
    /// `models`, at every width multiplier of `widths`, trains once per seed of
    /// `seeds` and per training setting of `settings` (on a seeded full
    /// shuffle, or in the orders of the variant's `[sampler]`; the settings of
    /// one model and seed share its initial weights and data order). By default it trains for the largest of `epochs` epochs and its
    /// state after each epoch listed there is a member, so training lengths cost
    /// no extra training; with `every_checkpoint`, each checkpoint of its
    /// settings (`checkpoint_every`, `checkpoint_log`, … and epoch ends) is.
    #[table = "population"]
    pub struct PopulationConfig {
        /// The architectures, each in the terms of `[model]`.
        pub models: Vec<ModelConfig> = vec![ModelConfig::default()];
        /// Width multipliers, applied to `hidden`, `channels` and `width` (a
        /// multiplier that leaves a model unchanged, e.g. on `linear`, adds no member).
        pub widths: Vec<f64> = vec![1.0];
        /// Seeds of the training runs (initialization and order).
        pub seeds: Vec<u64> = vec![0];
        /// Training settings: each a table of `[train]` keys that override it,
        /// e.g. `[{ batch_size = 16, lr = 0.01 }, { batch_size = 256, lr = 0.16 }]`.
        pub settings: Vec<toml::Table> = vec![toml::Table::new()];
        /// Training lengths in epochs; each is a member of every run.
        pub epochs: Vec<u64> = vec![1];
        /// Take every checkpoint of the settings as a member instead of `epochs`.
        pub every_checkpoint: bool = false;
        /// Also keep every member's softmax outputs (members × points × classes;
        /// the observation `population-probabilities`).
        pub probabilities: bool = false;
        /// The fork in the road: the settings other than `fork_from` start from
        /// the state of the `fork_from` run (same model and seed) after this many
        /// steps, and continue its data stream where it was.
        pub fork_step: Option<u64> = None;
        /// The setting the others fork from.
        pub fork_from: usize = 0;
        /// Train the head only: every run starts from one network per
        /// architecture (the `[pretrain]`ed encoder, or one random network) whose
        /// feature blocks stay frozen — a linear probe on a fixed representation.
        pub freeze_features: bool = false;
        /// The splits every member is evaluated on (`test`, `validation`,
        /// `shifted`, `train`).
        pub splits: Vec<Split> = vec![Split::Test];
        /// Instead of training, load the prediction matrices a previous run saved
        /// (its `population/<variant>` folder, relative to the manifest).
        pub load: Option<String> = None;
        /// Train up to this many runs of one MLP, linear or CNN
        /// architecture, whose settings differ at most in `label_noise` and
        /// `lr` (a learning-rate grid: each member at its own rate), wherever
        /// they are in row order (each batch size's seeds of a grid), as
        /// one batched model (weights stacked on a member axis; each member
        /// as it would train alone, up to floating-point reassociation); 1:
        /// each run alone (runs under a plugin's sampler batch with a number
        /// only, each with its own sampler instance); `"auto"`: batched
        /// wherever the population can be,
        /// up to 64 runs a unit, trained in parts of even size within
        /// `batch_memory_mb` and, on a CPU, within 16 MiB (a share of a
        /// last-level cache: a batch past it waits on memory).
        pub batch: MemberBatch = MemberBatch::Runs(1), range "[1, 4096]";
        /// Under `batch = "auto"`, the memory one batch may take for its
        /// members' weights, gradients, optimizer state and training
        /// activations, as estimated from the model before it trains.
        pub batch_memory_mb: u64 = 4096, range "[16, 1048576]";
    }
}

settings! {
    /// `[graph]`: the graph of a graph experiment.
    #[table = "graph"]
    pub struct GraphConfig {
        /// The source: `erdos-renyi` (G(n, m)), `barabasi-albert`,
        /// `watts-strogatz`, `rmat` (power-law), or `file` (an edge list at `path`).
        pub generator: GraphGenerator = GraphGenerator::ErdosRenyi;
        /// Nodes n (generators).
        pub nodes: u32 = 1000, range "[2, ∞)";
        /// Directed edges m (`erdos-renyi`; `rmat`: edges drawn, a few are dropped).
        pub edges: u64 = 5000;
        /// `barabasi-albert`: edges each new node attaches with.
        pub attach: u32 = 3;
        /// `watts-strogatz`: ring neighbours per node (even).
        pub neighbors: u32 = 6;
        /// `watts-strogatz`: rewiring probability β.
        pub rewire: f64 = 0.1;
        /// `rmat`: quadrant probabilities (a, b, c); d = 1 − a − b − c.
        pub rmat: [f64; 3] = [0.57, 0.19, 0.19];
        /// `file`: the edge list, relative to the manifest.
        pub path: Option<String> = None;
        /// `file`: `snap` (`#` comments, `u v [w]`, ids renumbered) or `header` (first line `n m`).
        pub format: EdgeListFormat = EdgeListFormat::Snap;
        /// `file`: add both directions of every edge.
        pub undirected: bool = false;
        /// `file`: keep the parse as a binary CSR file in Tessera's cache folder
        /// (`auto`: files of 16 MB or more; `always`; `never`).
        pub cache: GraphCache = GraphCache::Auto;
        /// `barabasi-albert`, `watts-strogatz`: `both` directions of every link,
        /// or one by a fair coin (`random`).
        pub direction: EdgeDirection = EdgeDirection::Both;
        /// Seed of the graph, features and model (default: the experiment's),
        /// so variants and seeds can share one graph.
        pub seed: Option<u64> = None;
        /// Node features x_u ~ U[lo, hi]^d (0: none).
        pub feature_dim: u32 = 0;
        /// The range [lo, hi] of the node features.
        pub feature_range: [f32; 2] = [-1.0, 1.0];
        /// Make each node's first feature the constant 1, so θ's matching
        /// coordinates act as biases (p_uv = σ(θ₀ + θ₀′ + …)).
        pub constant_feature: bool = false;
        /// Edge probabilities: `uniform`, `weighted-cascade` (1/indeg), `trivalency`
        /// ({0.1, 0.01, 0.001}), `hyperparametric` (σ(θᵀ[x_u; x_v])) or `file` (the weights read).
        pub probability_model: ProbabilityModel = ProbabilityModel::Uniform;
        /// `uniform`: p.
        pub probability: f32 = 0.05, range "[0, 1]";
        /// `hyperparametric`: θ_c (2d values); empty: drawn from U[−1, 1]^{2d} with the graph's seed.
        pub theta: Vec<f32> = vec![];
        /// `hyperparametric`: the box radius B of Θ = θ_c + [−B, B]^{2d}.
        pub radius: f64 = 0.5;
        /// `hyperparametric`: models θ of the evaluation grid (θ_c plus draws from the box).
        pub evaluation_thetas: u32 = 20;
        /// The objective that gives the per-θ reference value for the worst-case
        /// ratio (e.g. `robust-im.greedy`; empty: no ratio).
        pub reference: String = String::new();
        /// Seed-set size k.
        pub budget: u32 = 10, range "[1, ∞)";
        /// Further budgets to run as well (the report plots spread against k).
        pub budgets: Vec<u32> = vec![];
        /// Monte Carlo simulations per spread estimate.
        pub simulations: u32 = 1000, range "[1, 10000000]";
        /// Write the graph as a SNAP edge list (`graph.txt`) into the run folder.
        pub write_snap: bool = false;
    }
}

settings! {
    /// The settings of one variant, after merging and defaults.
    #[table = ""]
    pub struct Settings {
        /// `[experiment]`.
        pub experiment: ExperimentConfig = Default::default();
        /// `[data]`.
        pub data: DataConfig = Default::default();
        /// `[storage]`.
        pub storage: StorageConfig = Default::default();
        /// `[model]`.
        pub model: ModelConfig = Default::default();
        /// `[train]`.
        pub train: TrainConfig = Default::default();
        /// `[graph]`.
        pub graph: GraphConfig = Default::default();
        /// `[reference]`.
        pub reference: ReferenceConfig = Default::default();
        /// `[population]`.
        pub population: PopulationConfig = Default::default();
        /// `[pretrain]`.
        pub pretrain: PretrainConfig = Default::default();
        /// `[executor.slurm]` and the like: options of the executors.
        pub executor: ExecutorConfig = Default::default();
    }
}

settings! {
    /// `[executor]`: options of each executor.
    #[table = "executor"]
    pub struct ExecutorConfig {
        /// `[executor.slurm]`.
        pub slurm: SlurmConfig = Default::default();
    }
}

settings! {
    /// `[executor.slurm]`: how the units' job array is submitted.
    #[table = "executor.slurm"]
    pub struct SlurmConfig {
        /// `--partition` (default: the cluster's default partition).
        pub partition: Option<String> = None;
        /// `--account` to charge (default: the user's default account).
        pub account: Option<String> = None;
        /// `--time` of each task, e.g. `"01:00:00"`.
        pub time: Option<String> = None;
        /// `--mem` of each task, e.g. `"4G"`.
        pub mem: Option<String> = None;
        /// `--cpus-per-task` (0: Slurm's default); also each task's threads.
        pub cpus_per_task: usize = 0;
        /// `--gpus-per-task` (0: none).
        pub gpus: usize = 0;
        /// At most this many tasks of an array at once (`--array=...%N`; 0: no
        /// limit); a plan split into several arrays has this limit per array.
        pub max_parallel: usize = 0;
        /// Further `sbatch` arguments, e.g. `["--account=lab", "--qos=short"]`.
        pub sbatch_args: Vec<String> = vec![];
        /// Shell lines run on the node before each task, e.g. `"module load cuda"`.
        pub setup: String = String::new();
        /// Seconds before a task's time limit that Slurm sends it SIGUSR1
        /// (`--signal=B:USR1@N`; 0: no signal): the task saves its state
        /// at the next step and stops. Slurm may send it up to a minute early.
        pub signal_grace: u32 = 90;
        /// `--requeue`, and a task stopped by that signal asks Slurm to run
        /// it again (`scontrol requeue`), continuing from its saved state.
        pub requeue: bool = true;
    }
}

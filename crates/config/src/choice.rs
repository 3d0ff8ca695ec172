//! Settings that take one of a fixed set of values. Each is a serde enum, so
//! a typo is refused when the manifest is read (`tessera check`), located at
//! `file:line:col` with a did-you-mean hint, instead of failing mid-run.

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Defines a setting enum: kebab-case names in manifests, `as_str`, `NAMES`
/// (every accepted name, for messages) and `Display`.
macro_rules! choice {
    ($(#[$meta:meta])* pub enum $name:ident { $($(#[$vmeta:meta])* $variant:ident = $text:literal,)+ }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
        pub enum $name {
            $($(#[$vmeta])* #[serde(rename = $text)] $variant,)+
        }

        impl $name {
            /// Every accepted name, in order.
            pub const NAMES: &'static [&'static str] = &[$($text),+];

            /// The name as written in a manifest.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text,)+ }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl crate::manifest::reference::SettingType for $name {
            fn describe() -> String {
                crate::manifest::reference::one_of(Self::NAMES)
            }

            fn names() -> &'static [&'static str] {
                Self::NAMES
            }
        }

        impl std::str::FromStr for $name {
            type Err = UnknownChoice;

            fn from_str(text: &str) -> Result<Self, UnknownChoice> {
                match text {
                    $($text => Ok($name::$variant),)+
                    other => Err(UnknownChoice { kind: stringify!($name), value: other.to_string(), names: Self::NAMES }),
                }
            }
        }
    };
}

/// A name that is none of a choice's (`--executor gpu`, say).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown {kind} `{value}` (known: {})", names.join(", "))]
pub struct UnknownChoice {
    /// The choice, e.g. `ExecutorKind`.
    pub kind: &'static str,
    /// What was given.
    pub value: String,
    /// Every accepted name.
    pub names: &'static [&'static str],
}

/// A device that is none of `cpu`, `cuda`, `cuda:N`, `auto`.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("unknown variant `{0}`, expected one of `cpu`, `cuda`, `cuda:N`, `auto`")]
pub struct UnknownDevice(pub String);

choice! {
    /// `experiment.executor` (or `--executor`): where a run's units run.
    pub enum ExecutorKind {
        /// In this process, one unit after another.
        Inline = "inline",
        /// `--jobs N` worker processes on this machine.
        Processes = "processes",
        /// A Slurm job array over the units, then a dependent collect job.
        Slurm = "slurm",
    }
}

choice! {
    /// `data.source`: where examples come from.
    pub enum DataSource {
        /// Gaussian clusters.
        Blobs = "blobs",
        /// MNIST-1D-style sequences.
        Mnist1d = "mnist1d",
        /// Labels from a random network.
        Teacher = "teacher",
        /// The UCI 8×8 digits, shipped.
        Digits = "digits",
        /// MNIST-style IDX files.
        Idx = "idx",
        /// CIFAR-10 binary batches.
        Cifar10 = "cifar10",
        /// CIFAR-100 binary batches.
        Cifar100 = "cifar100",
        /// `.npy` features and labels.
        Npy = "npy",
        /// A CSV file.
        Csv = "csv",
        /// WebDataset-style tar shards.
        Webdataset = "webdataset",
        /// A shard folder (written by `tessera shard`), trained in place.
        Shards = "shards",
    }
}

choice! {
    /// `tessera new plugin --kind`: the component a new plugin starts with.
    pub enum PluginKind {
        /// Decides the order of training examples.
        Sampler = "sampler",
        /// Chooses which layers train.
        Finetuner = "finetuner",
        /// Observes training and reports figures.
        Metric = "metric",
        /// Chooses seed sets on a graph.
        GraphObjective = "graph-objective",
    }
}

choice! {
    /// `experiment.reproducible`: which CPU kernels libtorch may choose.
    pub enum Reproducible {
        /// The fastest this CPU has (AVX-512 where present): results are
        /// bit-identical from run to run on one kind of CPU, not across kinds.
        Native = "native",
        /// Every kernel choice pinned to AVX2, which all current x86-64
        /// server CPUs share (libtorch's CPU capability, MKL's conditional
        /// numerical reproducibility, oneDNN's ISA), before libtorch starts:
        /// the same bits on any such CPU, at some cost in speed.
        Portable = "portable",
    }
}

choice! {
    /// `pool` of a `[[metric]]`: what one instance of the metric observes.
    pub enum MetricPool {
        /// Each training run: one instance per seed, observing it as it trains.
        Each = "each",
        /// A `train` variant's seeds as one population: one instance, after
        /// every seed finished, given `population-*` observations whose rows
        /// are the seeds' final models (`population-run` = the seed's index).
        Seeds = "seeds",
    }
}

choice! {
    /// `data.stored_order`: how the training split is stored.
    pub enum StoredOrder {
        /// A seeded shuffle.
        Shuffled = "shuffled",
        /// Class by class.
        SortedByLabel = "sorted-by-label",
    }
}

choice! {
    /// `train.oracle_order`: the order the finetuning oracle's candidates train in.
    pub enum OracleOrder {
        /// The variant's sampler (a fresh instance per candidate) over the
        /// stored order after its offline pass, with the storage's I/O counted.
        Sampler = "sampler",
        /// A host shuffle of the training split as first stored, before the
        /// sampler's offline pass.
        Shuffle = "shuffle",
    }
}

choice! {
    /// `data.shift.splits`: the splits `[data.shift]` moves.
    pub enum ShiftSplits {
        /// Only the `shifted` split, a shifted copy of the test split.
        Shifted = "shifted",
        /// Every split: training, validation, test (and `shifted`).
        All = "all",
    }
}

choice! {
    /// `reference.data`: the split the `[reference]` classifier trains on.
    pub enum ReferenceData {
        /// The training split, its labels as given (label noise included).
        Train = "train",
        /// The validation split, held out from training: RHO-LOSS's
        /// irreducible-loss model (Mindermann et al. 2022).
        Validation = "validation",
    }
}

choice! {
    /// `storage.mode`: where the training split lives during training.
    pub enum StorageMode {
        /// Tensors in memory, counting the I/O a block buffer would do.
        Memory = "memory",
        /// Shards on disk, read through the block loader.
        Shards = "shards",
    }
}

choice! {
    /// `storage.preset`: the storage cost model.
    pub enum StoragePreset {
        /// A local SSD.
        LocalSsd = "local-ssd",
        /// A spinning disk.
        Hdd = "hdd",
        /// Cloud object storage (20 ms, 100 MB/s).
        Cloud = "cloud",
    }
}

choice! {
    /// `storage.access`: the unit of a storage request.
    pub enum StorageAccess {
        /// Whole blocks.
        Block = "block",
        /// One ranged request per example.
        Example = "example",
    }
}

choice! {
    /// `model.kind`: the architecture.
    pub enum ModelKind {
        /// A multilayer perceptron.
        Mlp = "mlp",
        /// Multinomial logistic regression on the flattened inputs.
        Linear = "linear",
        /// A small convolutional network.
        Cnn = "cnn",
        /// A ResNet.
        Resnet = "resnet",
        /// A module exported from PyTorch with `torch.jit.save`.
        Torchscript = "torchscript",
        /// No model (`[reference]` only).
        None = "none",
    }
}

choice! {
    /// `train.optimizer`.
    pub enum Optimizer {
        /// Stochastic gradient descent (with `momentum`).
        Sgd = "sgd",
        /// Adam.
        Adam = "adam",
        /// AdamW.
        Adamw = "adamw",
    }
}

choice! {
    /// `train.schedule`: the learning-rate schedule.
    pub enum Schedule {
        /// The same rate throughout.
        Constant = "constant",
        /// × `gamma` every `step_every` steps.
        Step = "step",
        /// Cosine decay to 0 over the run.
        Cosine = "cosine",
    }
}

choice! {
    /// `pretrain.method`: self-supervised pretraining.
    pub enum PretrainMethod {
        /// No pretraining.
        None = "none",
        /// Contrastive (NT-Xent).
        Simclr = "simclr",
        /// Denoising autoencoder.
        Autoencoder = "autoencoder",
    }
}

choice! {
    /// A data split that can be evaluated.
    pub enum Split {
        /// The training split.
        Train = "train",
        /// The validation split.
        Validation = "validation",
        /// The test split.
        Test = "test",
        /// The transformed copy of the test split (`[data.shift]`).
        Shifted = "shifted",
    }
}

choice! {
    /// `graph.generator`: where the graph comes from.
    pub enum GraphGenerator {
        /// G(n, m).
        ErdosRenyi = "erdos-renyi",
        /// Preferential attachment.
        BarabasiAlbert = "barabasi-albert",
        /// Small world.
        WattsStrogatz = "watts-strogatz",
        /// Recursive matrix (power-law).
        Rmat = "rmat",
        /// An edge list at `graph.path`.
        File = "file",
    }
}

choice! {
    /// `graph.direction`: how the undirected generators (`barabasi-albert`,
    /// `watts-strogatz`) turn each link into directed edges.
    pub enum EdgeDirection {
        /// Both directions of every link.
        Both = "both",
        /// One direction per link, by a fair coin.
        Random = "random",
    }
}

choice! {
    /// `graph.cache`: whether an edge list's parse is kept as a binary CSR
    /// file in Tessera's cache folder and read instead on later runs.
    pub enum GraphCache {
        /// For files of 16 MB or more.
        Auto = "auto",
        /// For every file.
        Always = "always",
        /// Never: parse every time.
        Never = "never",
    }
}

choice! {
    /// `graph.format`: the edge-list format.
    pub enum EdgeListFormat {
        /// `#` comments, `u v [w]`, ids renumbered.
        Snap = "snap",
        /// First line `n m`, then `u v [w]` with ids in 0..n.
        Header = "header",
    }
}

choice! {
    /// `graph.probability_model`: edge probabilities.
    pub enum ProbabilityModel {
        /// One probability p for every edge.
        Uniform = "uniform",
        /// 1 / in-degree.
        WeightedCascade = "weighted-cascade",
        /// One of {0.1, 0.01, 0.001} per edge.
        Trivalency = "trivalency",
        /// σ(θᵀ[x_u; x_v]).
        Hyperparametric = "hyperparametric",
        /// The weights read from the edge list.
        File = "file",
    }
}

/// `experiment.device`: where tensors live.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum DeviceChoice {
    /// The CPU.
    #[default]
    Cpu,
    /// The first GPU; an error when there is none.
    Cuda,
    /// GPU `N`; an error when there is no such GPU.
    CudaIndex(usize),
    /// The first GPU if there is one, else the CPU (recorded in results.json).
    Auto,
}

impl DeviceChoice {
    /// Every accepted form, for messages.
    pub const NAMES: &'static [&'static str] = &["cpu", "cuda", "cuda:N", "auto"];
}

impl crate::manifest::reference::SettingType for DeviceChoice {
    fn describe() -> String {
        "`cpu`, `cuda`, `cuda:N` or `auto`".to_string()
    }

    fn names() -> &'static [&'static str] {
        Self::NAMES
    }
}

impl std::fmt::Display for DeviceChoice {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            DeviceChoice::Cpu => f.write_str("cpu"),
            DeviceChoice::Cuda => f.write_str("cuda"),
            DeviceChoice::CudaIndex(n) => write!(f, "cuda:{n}"),
            DeviceChoice::Auto => f.write_str("auto"),
        }
    }
}

impl std::str::FromStr for DeviceChoice {
    type Err = UnknownDevice;

    fn from_str(text: &str) -> Result<Self, UnknownDevice> {
        match text {
            "cpu" => Ok(DeviceChoice::Cpu),
            "cuda" => Ok(DeviceChoice::Cuda),
            "auto" => Ok(DeviceChoice::Auto),
            other => {
                let index = other.strip_prefix("cuda:").and_then(|n| n.parse().ok());
                index.map(DeviceChoice::CudaIndex).ok_or_else(|| UnknownDevice(other.to_string()))
            }
        }
    }
}

impl Serialize for DeviceChoice {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for DeviceChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_round_trip() {
        for name in ModelKind::NAMES {
            assert_eq!(name.parse::<ModelKind>().unwrap().as_str(), *name);
        }
        assert_eq!("sorted-by-label".parse::<StoredOrder>(), Ok(StoredOrder::SortedByLabel));
        assert!("adan".parse::<Optimizer>().unwrap_err().to_string().contains("known: sgd, adam, adamw"));
    }

    #[test]
    fn devices_parse() {
        assert_eq!("cuda:1".parse::<DeviceChoice>(), Ok(DeviceChoice::CudaIndex(1)));
        assert_eq!("auto".parse::<DeviceChoice>(), Ok(DeviceChoice::Auto));
        assert!("gpu".parse::<DeviceChoice>().unwrap_err().to_string().contains("expected one of `cpu`"));
        assert_eq!(DeviceChoice::CudaIndex(2).to_string(), "cuda:2");
    }
}

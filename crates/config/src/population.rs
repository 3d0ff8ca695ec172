//! A population's plan: its architectures, each setting's `[train]` and every
//! run in row order, made before anything trains (and without libtorch).

use serde::{Deserialize, Serialize};

use crate::manifest::{ModelConfig, ModelKind, PopulationConfig, PretrainMethod, TrainConfig};

/// Why a population cannot be planned (each names its key).
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// A setting's overrides do not make a `[train]`.
    #[error("population.settings[{index}]: {message}")]
    Setting {
        /// Which setting.
        index: usize,
        /// What the `[train]` reader said.
        message: String,
    },
    /// No training length to train for.
    #[error("population.epochs needs at least one training length of 1 or more epochs")]
    NoLength,
    /// An empty list where one entry is needed.
    #[error("population.models, widths, seeds and settings each need at least one entry")]
    Empty,
    /// A width multiplier that is not positive.
    #[error("population.widths: {0} is not a positive multiplier")]
    Width(f64),
    /// `fork_from` past the settings.
    #[error("population.fork_from = {fork_from} names no setting (there are {settings})")]
    ForkFrom {
        /// The setting named.
        fork_from: usize,
        /// How many there are.
        settings: usize,
    },
    /// `[train]` itself does not serialize.
    #[error("[train] does not serialize: {0}")]
    Train(#[from] toml::ser::Error),
}

type Result<T> = std::result::Result<T, PlanError>;

/// `model` with its widths multiplied by `width` (rounded, at least 1):
/// `hidden` of an `mlp`, `channels` of a `cnn`, `width` of a `resnet`; other
/// kinds have no width and come back unchanged.
pub fn scaled(model: &ModelConfig, width: f64) -> ModelConfig {
    let scale = |w: i64| ((w as f64 * width).round() as i64).max(1);
    let mut out = model.clone();
    match model.kind {
        ModelKind::Mlp => out.hidden = model.hidden.iter().map(|&w| scale(w)).collect(),
        ModelKind::Cnn => out.channels = model.channels.iter().map(|&w| scale(w)).collect(),
        ModelKind::Resnet => out.width = scale(model.width),
        _ => {}
    }
    out
}

/// A short name of an architecture: `mlp[64-64]`, `cnn[16-32]+bn`, `resnet[16x3x1]`, `linear`.
pub fn describe(model: &ModelConfig) -> String {
    let join = |v: &[i64]| v.iter().map(|w| w.to_string()).collect::<Vec<_>>().join("-");
    match model.kind {
        ModelKind::Mlp => format!("mlp[{}]", join(&model.hidden)),
        ModelKind::Cnn => format!("cnn[{}]{}", join(&model.channels), if model.batch_norm { "+bn" } else { "" }),
        ModelKind::Resnet => format!("resnet[{}x{}x{}]", model.width, model.stages, model.depth),
        other => other.as_str().to_string(),
    }
}

/// The `[train]` of each of `config.settings`: `train` with the setting's keys
/// over it. An unknown key or a wrong type is an error naming the setting.
pub fn setting_configs(config: &PopulationConfig, train: &TrainConfig) -> Result<Vec<TrainConfig>> {
    let base = toml::Value::try_from(train)?;
    let base = base.as_table().expect("a struct serializes to a table");
    config
        .settings
        .iter()
        .enumerate()
        .map(|(i, overrides)| {
            let mut table = base.clone();
            table.extend(overrides.iter().map(|(k, v)| (k.clone(), v.clone())));
            TrainConfig::deserialize(table)
                .map_err(|e| PlanError::Setting { index: i, message: e.message().to_string() })
        })
        .collect()
}

/// `batch_size=16 lr=0.01` for a setting's overrides (`[train]` when none).
pub fn setting_label(overrides: &toml::Table) -> String {
    if overrides.is_empty() {
        return "[train]".into();
    }
    overrides.iter().map(|(k, v)| format!("{k}={v}")).collect::<Vec<_>>().join(" ")
}

/// One training run of a population: its architecture, seed and setting,
/// and its place in the row order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct RunSpec {
    /// The run's index (`Member::run`), in the order a single process trains them.
    pub run: usize,
    /// Index into the plan's distinct architectures.
    pub architecture: usize,
    /// Index into `population.seeds`.
    pub seed_index: usize,
    /// Index into `population.settings`.
    pub setting: usize,
}

/// Why `population.batch > 1` cannot apply to `config`, if it cannot:
/// batched members are MLPs, linear models or CNNs (BatchNorm per member)
/// that each start from their own seed, from `model.weights`, or from the
/// architecture's shared start (a pretrained encoder, frozen features), and
/// train on a host shuffle, one step per batch, members at whole epochs or
/// at every checkpoint.
pub fn batch_refused(config: &PopulationConfig) -> Option<&'static str> {
    let reasons = [
        (
            config.models.iter().any(|m| !matches!(m.kind, ModelKind::Mlp | ModelKind::Linear | ModelKind::Cnn)),
            "only MLP, linear and CNN models batch so far",
        ),
        (config.fork_step.is_some(), "population.fork_step does not batch yet"),
    ];
    reasons.iter().find(|(refused, _)| *refused).map(|(_, why)| *why)
}

/// `runs` as a reader counts them, 1-based from `first`: consecutive runs
/// as a range, e.g. `1–3, 7–9` (runs 0–2 and 6–8 with `first` = 1).
pub fn run_ranges(runs: &[RunSpec], first: usize) -> String {
    let mut ranges: Vec<(usize, usize)> = Vec::new();
    for run in runs.iter().map(|r| r.run + first) {
        match ranges.last_mut() {
            Some((_, end)) if *end + 1 == run => *end = run,
            _ => ranges.push((run, run)),
        }
    }
    let range =
        |&(start, end): &(usize, usize)| if start == end { start.to_string() } else { format!("{start}–{end}") };
    ranges.iter().map(range).collect::<Vec<_>>().join(", ")
}

/// What runs trained as one batch share of their training setting: all of
/// it but `label_noise` (each run draws its own) and `lr` (each member
/// steps at its own rate).
pub fn batch_setting(cfg: &TrainConfig) -> TrainConfig {
    TrainConfig { label_noise: 0.0, lr: 0.0, ..cfg.clone() }
}

/// Why the seeds of a `train` variant of `model` cannot train as one
/// batched model (`experiment.batch`), if the settings alone say so.
pub fn seeds_batch_refused(model: &ModelConfig) -> Option<&'static str> {
    let batched = matches!(model.kind, ModelKind::Mlp | ModelKind::Linear | ModelKind::Cnn);
    (!batched).then_some("only MLP, linear and CNN models batch so far")
}

/// The most runs one unit of `config`'s plan takes (`population.batch`,
/// `"auto"` resolved: each run alone where the population cannot batch).
pub fn unit_runs(config: &PopulationConfig) -> usize {
    config.batch.unit_runs(batch_refused(config).is_some())
}

/// A population's runs before any trains: the distinct architectures, each
/// setting's `[train]`, and every run in row order.
#[derive(Debug, Clone)]
pub struct PopulationPlan {
    /// Distinct architectures with the width that made them (a multiplier
    /// that changes nothing adds no run).
    pub architectures: Vec<(ModelConfig, f64)>,
    /// Each setting's `[train]`, as its runs train.
    pub settings: Vec<TrainConfig>,
    /// The training lengths (epochs) at which members are taken.
    pub lengths: std::collections::BTreeSet<u64>,
    /// Every run, in row order.
    pub runs: Vec<RunSpec>,
}

impl PopulationPlan {
    /// Checks `config` and lays out its runs: architectures × seeds ×
    /// settings, the fork's parent first within an architecture and seed.
    pub fn new(config: &PopulationConfig, train: &TrainConfig) -> Result<PopulationPlan> {
        let lengths = config.epochs.iter().copied().collect::<std::collections::BTreeSet<u64>>();
        let longest = Self::longest(config, &lengths)?;
        Self::check(config)?;
        let settings = Self::settings(config, train, longest)?;
        let architectures = Self::architectures(config);
        // The settings of one architecture and seed share the initial weights
        // and the data order; the fork's parent trains first.
        let mut order: Vec<usize> = (0..settings.len()).collect();
        if config.fork_step.is_some() {
            order.retain(|&i| i != config.fork_from);
            order.insert(0, config.fork_from);
        }
        let mut runs = Vec::new();
        for architecture in 0..architectures.len() {
            for seed_index in 0..config.seeds.len() {
                for &setting in &order {
                    runs.push(RunSpec { run: runs.len(), architecture, seed_index, setting });
                }
            }
        }
        Ok(PopulationPlan { architectures, settings, lengths, runs })
    }

    fn longest(config: &PopulationConfig, lengths: &std::collections::BTreeSet<u64>) -> Result<u64> {
        match (lengths.last(), lengths.contains(&0)) {
            (Some(&longest), false) => Ok(longest),
            _ if config.every_checkpoint => Ok(0),
            _ => Err(PlanError::NoLength),
        }
    }

    fn check(config: &PopulationConfig) -> Result<()> {
        if config.models.is_empty() || config.widths.is_empty() || config.seeds.is_empty() || config.settings.is_empty()
        {
            return Err(PlanError::Empty);
        }
        if let Some(w) = config.widths.iter().find(|&&w| w.partial_cmp(&0.0) != Some(std::cmp::Ordering::Greater)) {
            return Err(PlanError::Width(*w));
        }
        if config.fork_step.is_some() && config.fork_from >= config.settings.len() {
            return Err(PlanError::ForkFrom { fork_from: config.fork_from, settings: config.settings.len() });
        }
        Ok(())
    }

    fn settings(config: &PopulationConfig, train: &TrainConfig, longest: u64) -> Result<Vec<TrainConfig>> {
        let settings = setting_configs(config, train)?.into_iter().enumerate().map(|(i, mut cfg)| {
            if !config.every_checkpoint {
                // Members after whole epochs only.
                cfg = TrainConfig {
                    epochs: longest,
                    checkpoint_every: 0,
                    checkpoint_steps: vec![],
                    checkpoint_log: 0,
                    max_examples: None,
                    ..cfg
                };
            }
            if let (Some(step), true) = (config.fork_step, i == config.fork_from) {
                cfg.checkpoint_steps.push(step);
            }
            cfg
        });
        Ok(settings.collect())
    }

    fn architectures(config: &PopulationConfig) -> Vec<(ModelConfig, f64)> {
        let mut architectures: Vec<(ModelConfig, f64)> = Vec::new();
        for model in &config.models {
            for &width in &config.widths {
                let m = scaled(model, width);
                if !architectures.iter().any(|(a, _)| *a == m) {
                    architectures.push((m, width));
                }
            }
        }
        architectures
    }

    /// The runs that must train in one process, in row order: each run
    /// alone; the runs of an architecture and seed together when they fork;
    /// all runs of an architecture together when they start from its
    /// pretrained encoder (pretrained once).
    pub fn groups(&self, config: &PopulationConfig, pretrain: &crate::manifest::PretrainConfig) -> Vec<Vec<RunSpec>> {
        match pretrain.method {
            PretrainMethod::None => self.run_groups(config),
            _ => self.grouped_by(|r| (r.architecture, 0, 0)),
        }
    }

    /// The runs that must train in one process once the encoders they
    /// start from are made: each run alone, or an architecture and seed's
    /// runs together when they fork.
    pub fn run_groups(&self, config: &PopulationConfig) -> Vec<Vec<RunSpec>> {
        match config.fork_step {
            Some(_) => self.grouped_by(|r| (r.architecture, r.seed_index, 0)),
            None => self.grouped_by(|r| (r.architecture, r.seed_index, r.run)),
        }
    }

    /// The units of runs with `population.batch = k`: the runs of one
    /// architecture whose settings differ at most in `label_noise` and `lr`
    /// ([`batch_setting`]), wherever they are in row order (a grid of
    /// seeds × batch sizes batches each batch size's seeds), in batches of
    /// at most `k`, each in row order, the batches ordered by their first
    /// run; with `fork_step`, each fork group whole and alone.
    pub fn batches(&self, config: &PopulationConfig, k: usize) -> Vec<Vec<RunSpec>> {
        let groups = self.run_groups(config);
        if k <= 1 || config.fork_step.is_some() {
            return groups;
        }
        let mut alike: Vec<((usize, TrainConfig), Vec<RunSpec>)> = Vec::new();
        for run in groups.into_iter().flatten() {
            let key = (run.architecture, batch_setting(&self.settings[run.setting]));
            match alike.iter_mut().find(|(other, _)| *other == key) {
                Some((_, runs)) => runs.push(run),
                None => alike.push((key, vec![run])),
            }
        }
        let mut batches: Vec<Vec<RunSpec>> =
            alike.iter().flat_map(|(_, runs)| runs.chunks(k).map(<[RunSpec]>::to_vec)).collect();
        batches.sort_by_key(|batch| batch[0].run);
        batches
    }

    /// Consecutive runs with the same `key`, together.
    fn grouped_by(&self, key: impl Fn(&RunSpec) -> (usize, usize, usize)) -> Vec<Vec<RunSpec>> {
        let mut groups: Vec<Vec<RunSpec>> = Vec::new();
        for run in &self.runs {
            match groups.last_mut() {
                Some(group) if key(&group[0]) == key(run) => group.push(*run),
                _ => groups.push(vec![*run]),
            }
        }
        groups
    }
}

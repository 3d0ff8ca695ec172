//! The validation pass: ranges, cross-field rules, and the memory and work a
//! variant's settings imply, checked before anything runs. Everything `run`
//! would reject as a setting error is found here, so `tessera check` exits 2
//! on it. Each problem names its dotted key; the manifest locates it.

use std::path::Path;
use tessera_util::store_url::StoreUrl;

use crate::choice::{
    DataSource, DeviceChoice, EdgeDirection, GraphGenerator, ModelKind, PretrainMethod, ProbabilityModel, Split,
    StorageMode,
};
use crate::manifest::{
    DataConfig, ExperimentKind, GraphConfig, MemberBatch, ModelConfig, PopulationConfig, PretrainConfig, Settings,
    SlurmConfig, TrainConfig,
};

/// The most passes over the training split a variant may ask for.
pub const MAX_EPOCHS: u64 = 100_000;
/// The most example visits (epochs × training examples) a variant may ask for.
pub const MAX_EXAMPLE_VISITS: f64 = 1e11;
/// The most `checkpoint_log` checkpoints.
pub const MAX_LOG_CHECKPOINTS: u64 = 100_000;
/// The most classes a data set may have.
pub const MAX_CLASSES: usize = 100_000;
/// The most Monte Carlo simulations per spread estimate.
pub const MAX_SIMULATIONS: u32 = 10_000_000;
/// The most tensor threads.
pub const MAX_THREADS: usize = 1024;
/// The most bytes one stored record may take (an example and its label).
pub const MAX_RECORD_BYTES: u64 = 1 << 26;
/// The most bytes one stored block may take: what Tessera writes, and what
/// a shard reader allocates before reading.
pub const MAX_BLOCK_BYTES: u64 = 1 << 30;

/// One problem with a variant's settings.
#[derive(Debug, Clone, PartialEq)]
pub struct Problem {
    /// The dotted key at fault, e.g. `train.lr`.
    pub key: String,
    /// What is wrong.
    pub message: String,
    /// What to do about it.
    pub hint: Option<String>,
}

/// Collects problems with their keys.
#[derive(Default)]
struct Problems(Vec<Problem>);

impl Problems {
    fn add(&mut self, key: &str, message: impl Into<String>) {
        self.0.push(Problem { key: key.into(), message: message.into(), hint: None });
    }

    fn hint(&mut self, key: &str, message: impl Into<String>, hint: impl Into<String>) {
        self.0.push(Problem { key: key.into(), message: message.into(), hint: Some(hint.into()) });
    }

    fn at_least<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, least: T) {
        if value < least {
            self.add(key, format!("must be at least {least} (it is {value})"));
        }
    }

    fn at_most<T: PartialOrd + std::fmt::Display>(&mut self, key: &str, value: T, most: T, why: &str) {
        if value > most {
            self.hint(key, format!("{value} is more than Tessera allows ({most})"), why);
        }
    }

    fn positive(&mut self, key: &str, value: f64) {
        if !(value.is_finite() && value > 0.0) {
            self.add(key, format!("must be a finite number above 0 (it is {value})"));
        }
    }

    fn non_negative(&mut self, key: &str, value: f64) {
        if !(value.is_finite() && value >= 0.0) {
            self.add(key, format!("must be a finite number at least 0 (it is {value})"));
        }
    }

    fn within(&mut self, key: &str, value: f64, range: std::ops::RangeInclusive<f64>) {
        if !range.contains(&value) {
            self.add(key, format!("must be in [{}, {}] (it is {value})", range.start(), range.end()));
        }
    }

    fn fraction(&mut self, key: &str, value: f64) {
        if !(0.0..1.0).contains(&value) {
            self.add(key, format!("must be in [0, 1) (it is {value})"));
        }
    }
}

/// The bytes of memory this machine has (MemTotal), if it can be read.
pub fn machine_memory_bytes() -> Option<f64> {
    let text = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib * 1024.0)
}

/// Bytes as `12.3 GB`.
pub fn bytes_text(bytes: f64) -> String {
    format!("{:.1} GB", bytes / 1e9)
}

/// Refuses `estimate` bytes that this machine cannot hold.
fn fits_in_memory(problems: &mut Problems, key: &str, what: &str, estimate: f64) {
    let Some(memory) = machine_memory_bytes() else { return };
    if estimate > memory {
        problems.hint(
            key,
            format!("{what} needs about {} of memory; this machine has {}", bytes_text(estimate), bytes_text(memory)),
            "make it smaller",
        );
    }
}

/// Every problem with `s`, the settings of one variant whose manifest is in
/// `base`, on a machine with `gpus()` GPUs (asked only of a CUDA device).
pub fn settings(s: &Settings, base: &Path, gpus: impl Fn() -> usize) -> Vec<Problem> {
    let mut p = Problems::default();
    experiment(&mut p, s, gpus);
    match s.experiment.kind {
        ExperimentKind::Graph => {
            graph(&mut p, &s.graph, base);
            no_seeds_batch(&mut p, s, "set experiment.batch = 1: a graph trains no model");
        }
        ExperimentKind::Train => {
            data(&mut p, &s.data, base);
            stored_data(&mut p, s);
            storage(&mut p, s);
            model(&mut p, "model", &s.model, &s.data, base);
            train(&mut p, &s.train, &s.data);
            reference(&mut p, s, base);
            pretrain(&mut p, &s.pretrain);
            seeds_batch(&mut p, s);
        }
        ExperimentKind::Population => {
            data(&mut p, &s.data, base);
            train(&mut p, &s.train, &s.data);
            population(&mut p, &s.population, &s.data, base);
            population_batch(&mut p, s);
            no_seeds_batch(
                &mut p,
                s,
                "batch the population's runs with population.batch, and set experiment.batch = 1",
            );
            reference(&mut p, s, base);
            pretrain(&mut p, &s.pretrain);
        }
    }
    p.0
}

/// `population.batch > 1` only where batched members train as they would alone.
fn population_batch(p: &mut Problems, s: &Settings) {
    if !matches!(s.population.batch, MemberBatch::Runs(k) if k > 1) {
        return;
    }
    if let Some(why) = crate::population::batch_refused(&s.population) {
        p.hint("population.batch", why, "set population.batch = 1");
    }
}

/// `experiment.batch` (a `train` variant's seeds as one batch) left at 1 by
/// an experiment of another `kind`, which would otherwise ignore it.
fn no_seeds_batch(p: &mut Problems, s: &Settings, fix: &str) {
    if s.experiment.batch != MemberBatch::Runs(1) {
        let kind = format!("{:?}", s.experiment.kind).to_lowercase();
        p.hint("experiment.batch", format!("batches a train experiment's seeds; this is a {kind} experiment"), fix);
    }
}

/// `experiment.batch > 1` only for models a batch trains as they train alone.
fn seeds_batch(p: &mut Problems, s: &Settings) {
    if let MemberBatch::Runs(k) = s.experiment.batch {
        p.within("experiment.batch", k as f64, 1.0..=4096.0);
    }
    if !matches!(s.experiment.batch, MemberBatch::Runs(k) if k > 1) {
        return;
    }
    if let Some(why) = crate::population::seeds_batch_refused(&s.model) {
        p.hint("experiment.batch", why, "set experiment.batch = 1 (or \"auto\", which batches only where it can)");
    }
}

fn experiment(p: &mut Problems, s: &Settings, gpus: impl Fn() -> usize) {
    let e = &s.experiment;
    if let Some(why) = e.name.as_deref().and_then(|n| crate::manifest::check_variant_name(n).err()) {
        p.hint(
            "experiment.name",
            format!("experiment name `{}` {why}", e.name.as_deref().unwrap_or_default()),
            "the name names the run folder: use letters, digits, - _ .",
        );
    }
    p.at_most("experiment.threads", e.threads, MAX_THREADS, "0 uses libtorch's default");
    p.within("experiment.checkpoint_minutes", e.checkpoint_minutes, 0.0..=10080.0);
    let trains = e.kind != ExperimentKind::Graph;
    if e.reproducible == crate::choice::Reproducible::Portable && e.threads == 0 && trains {
        p.hint(
            "experiment.threads",
            "`reproducible = \"portable\"` pins the thread count, and threads = 0 takes each machine's own",
            "set experiment.threads (e.g. 1)",
        );
    }
    if e.kind != ExperimentKind::Graph {
        device(p, e.device, gpus);
    }
    slurm(p, &s.executor.slurm);
}

/// `[executor.slurm]`: values that reach `sbatch` hold no control
/// characters (a newline would end a line of a job script), and each
/// `sbatch_args` entry is an option.
fn slurm(p: &mut Problems, c: &SlurmConfig) {
    let named = [("partition", &c.partition), ("account", &c.account), ("time", &c.time), ("mem", &c.mem)];
    for (name, value) in named {
        if let Some(bad) = value.as_deref().and_then(tessera_util::text::unsafe_char) {
            p.hint(
                &format!("executor.slurm.{name}"),
                format!("holds the control character {bad:?}"),
                "write the value on one line, without control characters",
            );
        }
    }
    // sbatch takes at most 65535 seconds in --signal.
    p.within("executor.slurm.signal_grace", f64::from(c.signal_grace), 0.0..=65535.0);
    for (i, arg) in c.sbatch_args.iter().enumerate() {
        let key = format!("executor.slurm.sbatch_args[{i}]");
        if let Some(bad) = tessera_util::text::unsafe_char(arg) {
            p.hint(
                &key,
                format!("holds the control character {bad:?}"),
                "write each option on one line, without control characters",
            );
        } else if !arg.starts_with('-') {
            p.hint(&key, format!("`{arg}` is not an sbatch option"), "each entry is one option, e.g. \"--qos=short\"");
        }
    }
}

/// Graph experiments run on the CPU, so only the others ask for a GPU.
fn device(p: &mut Problems, device: DeviceChoice, gpus: impl Fn() -> usize) {
    let gpus = if matches!(device, DeviceChoice::Cuda | DeviceChoice::CudaIndex(_)) { gpus() } else { 0 };
    match device {
        DeviceChoice::Cuda if gpus == 0 => p.hint(
            "experiment.device",
            "`cuda` asks for a GPU, and libtorch sees none on this machine",
            "use device = \"cpu\", or \"auto\" to fall back to the CPU when there is no GPU",
        ),
        DeviceChoice::CudaIndex(n) if n >= gpus => p.hint(
            "experiment.device",
            format!("`cuda:{n}` asks for GPU {n}, and libtorch sees {gpus} GPU(s)"),
            "use a GPU that exists, \"cpu\", or \"auto\"",
        ),
        _ => {}
    }
}

fn exists(p: &mut Problems, key: &str, base: &Path, path: &str) {
    let full = base.join(path);
    if !full.exists() {
        p.hint(key, format!("{} does not exist", full.display()), "paths are relative to the manifest's folder");
    }
}

/// A path that may be an object-store URL, `s3://bucket/key` (checked in
/// full, and reached, when the run opens it); a local path must exist.
fn location(p: &mut Problems, key: &str, base: &Path, path: &str) {
    if !StoreUrl::is_url(path) {
        return exists(p, key, base, path);
    }
    if let Err(e) = StoreUrl::parse(path) {
        p.add(key, e.to_string());
    }
}

/// `test_path` / `validation_path`: a shard folder, local or in a store,
/// read with `source = "shards"` only.
fn split_location(p: &mut Problems, d: &DataConfig, key: &str, base: &Path, path: &str) {
    if d.source == DataSource::Shards || !StoreUrl::is_url(path) {
        return location(p, key, base, path);
    }
    p.hint(
        key,
        format!(
            "{path}: a split's own shard folder is read with source = \"shards\" only, and this source is `{}`",
            d.source
        ),
        "remove it (the source is split by data.test_fraction), or write the data as shards with `tessera shard`",
    );
}

/// The feature width of a generated source, when it is known before loading.
fn generated_features(d: &DataConfig) -> Option<f64> {
    match d.source {
        DataSource::Blobs | DataSource::Teacher => Some(d.features as f64),
        DataSource::Mnist1d => Some(d.mnist1d.final_seq_length as f64),
        DataSource::Digits => Some(64.0),
        _ => None,
    }
}

/// The number of examples, when it is known before loading.
fn known_examples(d: &DataConfig) -> Option<f64> {
    let all = match d.source {
        DataSource::Blobs | DataSource::Teacher => d.examples as f64,
        DataSource::Mnist1d => d.mnist1d.num_samples as f64,
        DataSource::Digits => 1797.0,
        _ => return None,
    };
    Some(d.limit.map_or(all, |l| all.min(l as f64)))
}

/// `[data.mnist1d]`: the generator's arguments, and the memory they imply
/// (`data.examples` does not apply).
fn mnist1d(p: &mut Problems, d: &DataConfig) {
    for (key, problem) in d.mnist1d.problems() {
        p.add(&format!("data.mnist1d.{key}"), problem);
    }
    fits_in_memory(p, "data.mnist1d.num_samples", "the generated data set", d.mnist1d.memory_bytes());
    if d.examples != DataConfig::default().examples {
        p.hint("data.examples", "does not apply to `mnist1d`", "set data.mnist1d.num_samples (the package's name)");
    }
}

/// `blobs` and `teacher`: enough examples for the classes, within memory.
fn generated_size(p: &mut Problems, d: &DataConfig) {
    if d.examples < d.classes.max(2) {
        p.add("data.examples", format!("{} examples cannot cover {} classes", d.examples, d.classes));
    }
    let features = generated_features(d).unwrap_or(1.0);
    fits_in_memory(p, "data.examples", "the generated data set", d.examples as f64 * (features * 4.0 + 8.0));
}

fn data(p: &mut Problems, d: &DataConfig, base: &Path) {
    let generated = matches!(d.source, DataSource::Blobs | DataSource::Teacher | DataSource::Mnist1d);
    if generated {
        if matches!(d.source, DataSource::Blobs | DataSource::Teacher) {
            p.at_least("data.classes", d.classes, 2);
            p.at_least("data.features", d.features, 1);
        }
        p.at_most("data.classes", d.classes, MAX_CLASSES, "fewer classes");
        match d.source {
            DataSource::Mnist1d => mnist1d(p, d),
            _ => generated_size(p, d),
        }
    }
    if d.source == DataSource::Teacher {
        p.at_least("data.teacher_width", d.teacher_width, 1);
    }
    p.non_negative("data.separation", d.separation);
    p.fraction("data.test_fraction", d.test_fraction);
    p.fraction("data.validation_fraction", d.validation_fraction);
    if d.test_fraction + d.validation_fraction >= 1.0 {
        p.add(
            "data.validation_fraction",
            "test_fraction + validation_fraction must be below 1: nothing is left to train on",
        );
    }
    p.at_least("data.holdout_memory_mb", d.holdout_memory_mb, 1);
    p.within("data.store_in_flight", d.store_in_flight as f64, 1.0..=1024.0);
    p.at_least("data.store_in_flight_mb", d.store_in_flight_mb, 1);
    p.within("data.store_retries", d.store_retries as f64, 0.0..=20.0);
    p.positive("data.store_timeout_seconds", d.store_timeout_seconds);
    p.at_most("data.store_timeout_seconds", d.store_timeout_seconds, 3600.0, "a request waits at most an hour");
    p.at_least("data.store_cache_mb", d.store_cache_mb, 1);
    if d.limit == Some(0) {
        p.add("data.limit", "must be at least 1 (leave it out to use every example)");
    }
    if d.train_limit == Some(0) {
        p.add("data.train_limit", "must be at least 1 (leave it out to use the whole training split)");
    }
    p.non_negative("data.shift.noise", d.shift.noise);
    p.within("data.shift.blur", d.shift.blur as f64, 0.0..=64.0);
    let mut grouped = std::collections::BTreeSet::new();
    for (g, group) in d.label_groups.iter().enumerate() {
        if group.is_empty() {
            p.add(&format!("data.label_groups[{g}]"), "is empty");
        }
        for &label in group {
            if !grouped.insert(label) {
                p.add(&format!("data.label_groups[{g}]"), format!("label {label} is in two groups"));
            }
        }
    }
    if d.label_groups.len() == 1 {
        p.add("data.label_groups", "one group makes one class; give at least 2");
    }
    data_files(p, d, base);
}

fn data_files(p: &mut Problems, d: &DataConfig, base: &Path) {
    let needs = |key: &str| -> Option<&str> {
        match key {
            "path" => matches!(d.source, DataSource::Idx | DataSource::Npy | DataSource::Csv | DataSource::Shards)
                .then_some("path"),
            _ => matches!(d.source, DataSource::Idx | DataSource::Npy).then_some("labels_path"),
        }
    };
    for (key, value) in [("path", &d.path), ("labels_path", &d.labels_path)] {
        match (needs(key), value) {
            (Some(_), None) => p.add(&format!("data.{key}"), format!("data source `{}` needs data.{key}", d.source)),
            (Some(_), Some(path)) => location(p, &format!("data.{key}"), base, path),
            _ => {}
        }
    }
    if d.source == DataSource::Webdataset {
        match (&d.path, d.files.is_empty()) {
            (None, true) => p.add(
                "data.path",
                "data source `webdataset` needs data.path (a .tar file or a folder of them) or data.files",
            ),
            (Some(path), _) => location(p, "data.path", base, path),
            _ => {}
        }
        for (i, f) in d.files.iter().enumerate() {
            location(p, &format!("data.files[{i}]"), base, f);
        }
    }
    for (key, value) in [("data.test_path", &d.test_path), ("data.validation_path", &d.validation_path)] {
        if let Some(path) = value {
            split_location(p, d, key, base, path);
        }
    }
    if matches!(d.source, DataSource::Cifar10 | DataSource::Cifar100) {
        if d.files.is_empty() {
            p.add("data.files", format!("data source `{}` needs data.files (the binary batch files)", d.source));
        }
        for (i, f) in d.files.iter().enumerate() {
            location(p, &format!("data.files[{i}]"), base, f);
        }
    }
}

/// `source = "shards"` trains on a folder as it was written: what would
/// reshape it belongs to `tessera shard` (a manifest with those settings).
fn stored_data(p: &mut Problems, s: &Settings) {
    let d = &s.data;
    if d.source != DataSource::Shards {
        for (key, value) in [("data.test_path", &d.test_path), ("data.validation_path", &d.validation_path)] {
            if value.is_some() {
                p.hint(key, "is only used with source = \"shards\"", "remove it, or set source = \"shards\"");
            }
        }
        return;
    }
    let defaults = DataConfig::default();
    let reshaping = [
        ("data.limit", d.limit.is_some()),
        ("data.train_limit", d.train_limit.is_some()),
        ("data.train_per_class", d.train_per_class > 0),
        ("data.label_groups", !d.label_groups.is_empty()),
        ("data.stored_order", d.stored_order != defaults.stored_order),
        ("data.test_fraction", d.test_fraction != defaults.test_fraction),
        ("data.validation_fraction", d.validation_fraction != defaults.validation_fraction),
        ("train.label_noise", s.train.label_noise > 0.0),
    ];
    for (key, set) in reshaping {
        if set {
            p.hint(
                key,
                "source = \"shards\" trains on the shard folder as it is",
                "apply it when writing the folder: `tessera shard MANIFEST --out DIR` with it in that manifest",
            );
        }
    }
}

fn storage(p: &mut Problems, s: &Settings) {
    let st = &s.storage;
    p.at_least("storage.block_size", st.block_size, 1);
    p.at_least("storage.buffer_blocks", st.buffer_blocks, 1);
    p.at_least("storage.prefetch", st.prefetch, 1);
    p.at_least("storage.blocks_per_shard", st.blocks_per_shard, 1);
    if let Some(b) = st.offline_buffer_blocks {
        p.at_least("storage.offline_buffer_blocks", b, 1);
    }
    if st.mode == StorageMode::Shards {
        shard_memory(p, s);
    }
    let shards = st.mode == StorageMode::Shards || s.data.source == crate::choice::DataSource::Shards;
    if s.data.shift.moves_every_split() && shards {
        p.hint(
            "data.shift.splits",
            "\"all\" shifts the splits in memory, and this run's training split is stored as shards",
            "set storage.mode = \"memory\" (with a source other than \"shards\"), or shift the data when writing the shards",
        );
    }
    if st.dir.is_some() && st.mode != StorageMode::Shards {
        p.hint("storage.dir", "is only used with storage.mode = \"shards\"", "remove it, or set mode = \"shards\"");
    }
    if let Some(dir) = st.dir.as_deref().filter(|d| StoreUrl::is_url(d)) {
        shards_prefix(p, &s.data, dir);
    }
}

/// `storage.dir = "s3://…"`: a prefix the run writes its shards under,
/// never one that holds, or lies inside, a prefix the data is read from.
fn shards_prefix(p: &mut Problems, d: &DataConfig, dir: &str) {
    let url = match StoreUrl::parse(dir) {
        Ok(url) => url,
        Err(e) => return p.add("storage.dir", e.to_string()),
    };
    let sources =
        [("data.path", &d.path), ("data.test_path", &d.test_path), ("data.validation_path", &d.validation_path)];
    for (key, path) in sources {
        let Some(source) = path.as_deref().filter(|t| StoreUrl::is_url(t)).and_then(|t| StoreUrl::parse(t).ok()) else {
            continue;
        };
        if url.overlaps(&source) {
            p.hint(
                "storage.dir",
                format!(
                    "{url} overlaps {key} = {source}: the shards this run writes would land among the data it reads"
                ),
                "write them under a prefix of their own, beside the data's (e.g. s3://bucket/runs)",
            );
        }
    }
}

/// Shards: a block within [`MAX_BLOCK_BYTES`], and the
/// shuffle buffer with its prefetched blocks within memory.
fn shard_memory(p: &mut Problems, s: &Settings) {
    let st = &s.storage;
    let record = 8.0 + 4.0 * generated_features(&s.data).unwrap_or(1.0);
    let block = st.block_size as f64 * record;
    if block > MAX_BLOCK_BYTES as f64 {
        p.hint(
            "storage.block_size",
            format!(
                "blocks of {} examples of {record} bytes are more than Tessera writes ({} bytes)",
                st.block_size, MAX_BLOCK_BYTES
            ),
            "choose a smaller block size",
        );
    } else {
        let buffered = (st.buffer_blocks as f64 + st.prefetch as f64) * block;
        fits_in_memory(p, "storage.buffer_blocks", "the shuffle buffer and prefetched blocks", buffered);
    }
}

/// The parameters of `m` on inputs of `inputs` values and `classes` classes
/// (an estimate for convolutional models: their widest layer squared).
fn parameters(m: &ModelConfig, inputs: f64, classes: f64) -> f64 {
    match m.kind {
        ModelKind::Mlp => {
            let widths: Vec<f64> =
                std::iter::once(inputs).chain(m.hidden.iter().map(|&h| h as f64)).chain([classes]).collect();
            widths.windows(2).map(|w| w[0] * w[1]).sum()
        }
        ModelKind::Linear => inputs * classes,
        ModelKind::Cnn => {
            let widths: Vec<f64> = std::iter::once(1.0).chain(m.channels.iter().map(|&c| c as f64)).collect();
            widths.windows(2).map(|w| w[0] * w[1] * 9.0).sum::<f64>() + widths.last().unwrap_or(&1.0) * classes
        }
        ModelKind::Resnet => {
            let widest = m.width as f64 * 2f64.powi(m.stages.saturating_sub(1).min(60) as i32);
            widest * widest * 9.0 * 2.0 * (m.depth * m.stages) as f64
        }
        ModelKind::Torchscript | ModelKind::None => 0.0,
    }
}

fn model(p: &mut Problems, key: &str, m: &ModelConfig, d: &DataConfig, base: &Path) {
    for (i, &h) in m.hidden.iter().enumerate() {
        if m.kind == ModelKind::Mlp && h < 1 {
            p.add(&format!("{key}.hidden[{i}]"), format!("must be at least 1 (it is {h})"));
        }
    }
    if m.kind == ModelKind::Cnn {
        if m.channels.is_empty() {
            p.add(&format!("{key}.channels"), "a cnn needs at least one conv block");
        }
        for (i, &c) in m.channels.iter().enumerate() {
            if c < 1 {
                p.add(&format!("{key}.channels[{i}]"), format!("must be at least 1 (it is {c})"));
            }
        }
    }
    if m.kind == ModelKind::Resnet {
        p.at_least(&format!("{key}.width"), m.width, 1);
        p.at_least(&format!("{key}.depth"), m.depth, 1);
        p.at_least(&format!("{key}.stages"), m.stages, 1);
        p.at_most(&format!("{key}.stages"), m.stages, 8, "a resnet of more stages halves the input away");
    }
    match (m.kind, &m.path) {
        (ModelKind::Torchscript, None) => {
            p.add(&format!("{key}.path"), "model.kind = \"torchscript\" needs model.path (a torch.jit.save file)")
        }
        (ModelKind::Torchscript, Some(path)) => exists(p, &format!("{key}.path"), base, path),
        _ => {}
    }
    let inputs = generated_features(d).unwrap_or(1.0);
    let classes = if matches!(d.source, DataSource::Blobs | DataSource::Teacher) { d.classes as f64 } else { 2.0 };
    // Weights, gradients and two optimizer moments, in f32.
    let bytes = parameters(m, inputs, classes) * 4.0 * 4.0;
    fits_in_memory(p, &format!("{key}.{}", width_key(m.kind)), &format!("the {} model", m.kind), bytes);
}

fn width_key(kind: ModelKind) -> &'static str {
    match kind {
        ModelKind::Cnn => "channels",
        ModelKind::Resnet => "width",
        _ => "hidden",
    }
}

fn train(p: &mut Problems, t: &TrainConfig, d: &DataConfig) {
    p.at_least("train.epochs", t.epochs, 1);
    p.at_most("train.epochs", t.epochs, MAX_EPOCHS, "use fewer epochs, or train.max_examples for a budget");
    if let Some(n) = known_examples(d) {
        let visits = n * t.epochs as f64;
        if visits > MAX_EXAMPLE_VISITS && t.max_examples.is_none_or(|m| m as f64 > MAX_EXAMPLE_VISITS) {
            p.hint(
                "train.epochs",
                format!("{} epochs of {n} examples is {visits:.2e} example visits; Tessera refuses more than {MAX_EXAMPLE_VISITS:.0e}", t.epochs),
                "use fewer epochs or examples",
            );
        }
    }
    p.at_least("train.batch_size", t.batch_size, 1);
    p.positive("train.lr", t.lr);
    if !(0.0..1.0).contains(&t.momentum) {
        p.add("train.momentum", format!("must be in [0, 1) (it is {})", t.momentum));
    }
    p.non_negative("train.weight_decay", t.weight_decay);
    p.positive("train.gamma", t.gamma);
    p.at_least("train.step_every", t.step_every, 1);
    p.at_least("train.accumulate", t.accumulate, 1);
    p.at_most("train.checkpoint_log", t.checkpoint_log, MAX_LOG_CHECKPOINTS, "fewer log-spaced checkpoints");
    p.within("train.label_noise", t.label_noise, 0.0..=1.0);
    if t.max_examples == Some(0) {
        p.add("train.max_examples", "must be at least 1 (leave it out for whole epochs)");
    }
    p.at_least("train.oracle_epochs", t.oracle_epochs, 1);
}

fn reference(p: &mut Problems, s: &Settings, base: &Path) {
    let r = &s.reference;
    if r.model.kind == ModelKind::None {
        return;
    }
    p.at_most("reference.epochs", r.epochs, MAX_EPOCHS, "use fewer epochs");
    p.at_least("reference.batch_size", r.batch_size, 1);
    let held_out = s.data.validation_fraction > 0.0 || s.data.source == DataSource::Shards;
    if r.data == crate::choice::ReferenceData::Validation && !held_out {
        p.hint(
            "reference.data",
            "is \"validation\", and data.validation_fraction = 0 leaves no validation split to train it on",
            "set data.validation_fraction above 0 (e.g. 0.25)",
        );
    }
    p.positive("reference.lr", r.lr);
    p.non_negative("reference.weight_decay", r.weight_decay);
    model(p, "reference.model", &r.model, &s.data, base);
}

fn pretrain(p: &mut Problems, t: &PretrainConfig) {
    if t.method == PretrainMethod::None {
        return;
    }
    p.at_least("pretrain.epochs", t.epochs, 1);
    p.at_most("pretrain.epochs", t.epochs, MAX_EPOCHS, "use fewer epochs");
    p.at_least("pretrain.batch_size", t.batch_size, 2);
    p.positive("pretrain.lr", t.lr);
    p.positive("pretrain.temperature", t.temperature);
    p.at_least("pretrain.projection", t.projection, 1);
    p.at_least("pretrain.shift", t.shift, 0);
    p.non_negative("pretrain.noise", t.noise);
}

fn population(p: &mut Problems, c: &PopulationConfig, d: &DataConfig, base: &Path) {
    if c.load.is_some() {
        if let Some(path) = c.load.as_ref().filter(|path| !base.join(path).join("members.json").exists()) {
            p.hint(
                "population.load",
                format!("population.load = {path:?}: {} holds no members.json", base.join(path).display()),
                "name the population/<variant> folder of an earlier run, relative to the manifest",
            );
        }
        return;
    }
    for (i, m) in c.models.iter().enumerate() {
        model(p, &format!("population.models[{i}]"), m, d, base);
    }
    for (i, &w) in c.widths.iter().enumerate() {
        p.positive(&format!("population.widths[{i}]"), w);
    }
    if let MemberBatch::Runs(k) = c.batch {
        p.within("population.batch", k as f64, 1.0..=4096.0);
    }
    p.within("population.batch_memory_mb", c.batch_memory_mb as f64, 16.0..=1048576.0);
    for (key, empty) in [
        ("population.models", c.models.is_empty()),
        ("population.widths", c.widths.is_empty()),
        ("population.seeds", c.seeds.is_empty()),
        ("population.settings", c.settings.is_empty()),
        ("population.splits", c.splits.is_empty()),
    ] {
        if empty {
            p.add(key, "is empty: the population would have no members");
        }
    }
    if c.epochs.is_empty() && !c.every_checkpoint {
        p.add("population.epochs", "is empty: the population would have no members");
    }
    for (i, &e) in c.epochs.iter().enumerate() {
        p.at_least(&format!("population.epochs[{i}]"), e, 1);
        p.at_most(&format!("population.epochs[{i}]"), e, MAX_EPOCHS, "use fewer epochs");
    }
    if c.fork_from >= c.settings.len().max(1) {
        p.add("population.fork_from", format!("there are {} settings (0..{})", c.settings.len(), c.settings.len()));
    }
    if c.splits.contains(&Split::Shifted) && !d.shift.is_enabled() {
        p.hint(
            "population.splits",
            "asks for `shifted`, and there is no shifted split",
            "add [data.shift] with noise or translate",
        );
    }
}

fn graph(p: &mut Problems, g: &GraphConfig, base: &Path) {
    let generated = g.generator != GraphGenerator::File;
    if generated {
        p.at_least("graph.nodes", g.nodes, 2);
        let edges = match g.generator {
            GraphGenerator::BarabasiAlbert => g.nodes as f64 * g.attach as f64,
            GraphGenerator::WattsStrogatz => g.nodes as f64 * g.neighbors as f64,
            _ => g.edges as f64,
        };
        // CSR offsets and targets, both directions, probabilities, features,
        // and the in-edges with their probabilities.
        let bytes = g.nodes as f64 * (24.0 + 4.0 * g.feature_dim as f64) + edges * 32.0;
        fits_in_memory(p, "graph.nodes", "the generated graph", bytes);
    }
    match g.generator {
        GraphGenerator::ErdosRenyi => {
            let most = g.nodes as f64 * (g.nodes as f64 - 1.0);
            if g.edges as f64 > most {
                p.add("graph.edges", format!("a simple graph of {} nodes has at most {most} directed edges", g.nodes));
            }
        }
        GraphGenerator::BarabasiAlbert => {
            p.at_least("graph.attach", g.attach, 1);
            if g.attach >= g.nodes {
                p.add("graph.attach", format!("must be below graph.nodes ({})", g.nodes));
            }
        }
        GraphGenerator::WattsStrogatz => {
            if g.neighbors < 2 || g.neighbors % 2 == 1 || g.neighbors >= g.nodes {
                p.add(
                    "graph.neighbors",
                    format!("must be even, at least 2 and below graph.nodes (it is {})", g.neighbors),
                );
            }
            p.within("graph.rewire", g.rewire, 0.0..=1.0);
        }
        GraphGenerator::Rmat => {
            for (i, &q) in g.rmat.iter().enumerate() {
                p.within(&format!("graph.rmat[{i}]"), q, 0.0..=1.0);
            }
            if g.rmat.iter().sum::<f64>() > 1.0 {
                p.add("graph.rmat", "a + b + c must be at most 1 (d = 1 − a − b − c)");
            }
        }
        GraphGenerator::File => match &g.path {
            None => p.add("graph.path", "graph.generator = \"file\" needs graph.path"),
            Some(path) => exists(p, "graph.path", base, path),
        },
    }
    let undirected_generator = matches!(g.generator, GraphGenerator::BarabasiAlbert | GraphGenerator::WattsStrogatz);
    if g.direction != EdgeDirection::Both && !undirected_generator {
        p.add(
            "graph.direction",
            "applies to barabasi-albert and watts-strogatz; for an edge list use graph.undirected",
        );
    }
    graph_model(p, g);
    for (key, budget) in std::iter::once(("graph.budget".to_string(), g.budget))
        .chain(g.budgets.iter().enumerate().map(|(i, &b)| (format!("graph.budgets[{i}]"), b)))
    {
        p.at_least(&key, budget, 1);
        if generated && budget > g.nodes {
            p.add(&key, format!("a seed set of {budget} nodes in a graph of {} nodes", g.nodes));
        }
    }
    p.at_least("graph.simulations", g.simulations, 1);
    p.at_most("graph.simulations", g.simulations, MAX_SIMULATIONS, "fewer simulations");
}

fn graph_model(p: &mut Problems, g: &GraphConfig) {
    if g.probability_model == ProbabilityModel::Uniform {
        p.within("graph.probability", g.probability as f64, 0.0..=1.0);
    }
    let [lo, hi] = g.feature_range;
    if !(lo.is_finite() && hi.is_finite() && lo <= hi) {
        p.add("graph.feature_range", format!("must be [lo, hi] with lo <= hi, both finite (it is [{lo}, {hi}])"));
    }
    if g.probability_model == ProbabilityModel::Hyperparametric {
        p.at_least("graph.feature_dim", g.feature_dim, 1);
        if !g.theta.is_empty() && g.theta.len() != 2 * g.feature_dim as usize {
            p.add(
                "graph.theta",
                format!("has {} values; θ needs 2 × feature_dim = {}", g.theta.len(), 2 * g.feature_dim),
            );
        }
        if g.theta.iter().any(|t| !t.is_finite()) {
            p.add("graph.theta", "must be finite");
        }
        p.non_negative("graph.radius", g.radius);
        p.at_least("graph.evaluation_thetas", g.evaluation_thetas, 1);
    }
    if g.probability_model == ProbabilityModel::File && g.generator != GraphGenerator::File {
        p.hint(
            "graph.probability_model",
            "`file` takes the weights of an edge list, and the graph is generated",
            "use generator = \"file\" with a `u v w` edge list, or another probability model",
        );
    }
}

/// A shard folder that already exists belongs to someone: Tessera neither
/// writes into it nor removes it.
pub fn shard_folder(variant: &str, root: &Path) -> Option<Problem> {
    root.symlink_metadata().ok().map(|_| Problem {
        key: "storage.dir".into(),
        message: format!(
            "variant `{}` would write its shards to {}, which already exists; Tessera never writes into or removes a folder it did not create",
            variant,
            root.display()
        ),
        hint: Some("choose another storage.dir, or move that folder away".into()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(edit: impl FnOnce(&mut Settings)) -> Vec<String> {
        let mut s = Settings::default();
        edit(&mut s);
        settings(&s, Path::new("."), || 0).into_iter().map(|p| format!("{}: {}", p.key, p.message)).collect()
    }

    #[test]
    fn defaults_are_valid() {
        assert_eq!(problems(|_| {}), Vec::<String>::new());
        assert_eq!(problems(|s| s.experiment.kind = ExperimentKind::Graph), Vec::<String>::new());
    }

    #[test]
    fn ranges_name_their_key() {
        let found = problems(|s| {
            s.train.lr = f64::INFINITY;
            s.train.batch_size = 0;
            s.storage.block_size = 0;
            s.data.classes = 1;
            s.train.label_noise = 1.5;
            s.data.test_fraction = 0.6;
            s.data.validation_fraction = 0.5;
        });
        for key in ["train.lr", "train.batch_size", "storage.block_size", "data.classes", "train.label_noise"] {
            assert!(found.iter().any(|f| f.starts_with(key)), "{key} in {found:?}");
        }
        assert!(found.iter().any(|f| f.contains("nothing is left to train on")), "{found:?}");
    }

    #[test]
    fn absurd_sizes_and_work_are_refused_with_an_estimate() {
        let found = problems(|s| s.data.examples = 1_000_000_000_000);
        assert!(found.iter().any(|f| f.starts_with("data.examples: the generated data set needs about")), "{found:?}");
        let found = problems(|s| s.model.hidden = vec![1_000_000_000]);
        assert!(found.iter().any(|f| f.starts_with("model.hidden: the mlp model needs about")), "{found:?}");
        let found = problems(|s| s.train.epochs = 1_000_000_000_000);
        assert!(found.iter().any(|f| f.starts_with("train.epochs")), "{found:?}");
        let found = problems(|s| s.train.checkpoint_log = 1_000_000_000_000);
        assert!(found.iter().any(|f| f.starts_with("train.checkpoint_log")), "{found:?}");
    }

    #[test]
    fn graph_budgets_and_models_are_checked() {
        let found = problems(|s| {
            s.experiment.kind = ExperimentKind::Graph;
            s.graph.budget = 0;
            s.graph.budgets = vec![5000];
            s.graph.probability_model = ProbabilityModel::Hyperparametric;
            s.graph.feature_dim = 2;
            s.graph.theta = vec![1.0];
        });
        for key in ["graph.budget:", "graph.budgets[0]:", "graph.theta:"] {
            assert!(found.iter().any(|f| f.starts_with(key)), "{key} in {found:?}");
        }
        let found = problems(|s| {
            s.experiment.kind = ExperimentKind::Graph;
            s.graph.nodes = 4_000_000_000;
        });
        assert!(found.iter().any(|f| f.contains("the generated graph needs about")), "{found:?}");
    }
}

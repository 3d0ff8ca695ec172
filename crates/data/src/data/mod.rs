//! Datasets: examples with float features and integer labels, split into
//! train / validation / test. The foundation ships one generator (Gaussian
//! blobs); readers for real formats build on [`Dataset`].

use crate::error::{bail, Result};
use tessera_sdk::SeedRng;

pub mod examples;
pub mod fetched;
pub mod generators;
pub mod mnist1d;
pub mod numpy;
pub mod readers;
pub mod split;
pub mod stored;
pub mod webdataset;

pub use examples::{ExampleSource, InMemory};
pub use split::SplitPlan;

use crate::manifest::{DataConfig, DataSource};

/// Examples as a row-major feature matrix with one label per row.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Dataset {
    /// `len() × dim()` features, row-major.
    pub features: Vec<f32>,
    /// The shape of one example, e.g. `[16]`, `[40]` or `[1, 8, 8]`.
    pub shape: Vec<usize>,
    /// One label in `0..classes` per example.
    pub labels: Vec<i64>,
    /// Number of classes.
    pub classes: usize,
}

impl Dataset {
    /// Features per example: the product of the shape.
    pub fn dim(&self) -> usize {
        self.shape.iter().product()
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.labels.len()
    }

    /// Whether there are no examples.
    pub fn is_empty(&self) -> bool {
        self.labels.is_empty()
    }

    /// The examples at `indices`, in that order.
    pub fn subset(&self, indices: &[usize]) -> Dataset {
        let dim = self.dim();
        let mut features = Vec::with_capacity(indices.len() * dim);
        for &i in indices {
            features.extend_from_slice(&self.features[i * dim..(i + 1) * dim]);
        }
        Dataset {
            features,
            shape: self.shape.clone(),
            labels: indices.iter().map(|&i| self.labels[i]).collect(),
            classes: self.classes,
        }
    }

    /// The permutation that sorts examples by label (stable): the layout of
    /// label-homogeneous shards.
    pub fn order_by_label(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| self.labels[i]);
        order
    }
}

/// Flips exactly round(η·n) labels, chosen uniformly without replacement,
/// each to a uniformly random *other* class; returns the flipped positions
/// (sorted). The same seed flips the same labels.
pub fn add_label_noise(data: &mut Dataset, eta: f64, seed: u64) -> Result<Vec<usize>> {
    flip_labels(&mut data.labels, data.classes, eta, seed)
}

/// [`add_label_noise`] on the labels alone (of `classes` classes): flips
/// round(η·n) of them, each to a uniformly random other class; returns the
/// flipped positions, sorted.
pub fn flip_labels(labels: &mut [i64], classes: usize, eta: f64, seed: u64) -> Result<Vec<usize>> {
    if !(0.0..=1.0).contains(&eta) {
        bail!("label noise η = {eta} is not in [0, 1]");
    }
    if classes < 2 && eta > 0.0 {
        bail!("label noise needs at least 2 classes");
    }
    let n = labels.len();
    let k = (eta * n as f64).round() as usize;
    let mut rng = SeedRng::derive(seed, 0x4015E);
    let mut ids: Vec<usize> = (0..n).collect();
    for i in 0..k {
        let j = i + rng.below((n - i) as u64) as usize;
        ids.swap(i, j);
    }
    let mut flipped = ids[..k].to_vec();
    flipped.sort_unstable();
    for &i in &flipped {
        let shift = 1 + rng.below(classes as u64 - 1) as i64;
        labels[i] = (labels[i] + shift) % classes as i64;
    }
    Ok(flipped)
}

/// The three splits of an experiment.
#[derive(Debug, Clone)]
pub struct Splits {
    /// What the model trains on, in stored order.
    pub train: Dataset,
    /// For model selection (finetuning oracle).
    pub validation: Dataset,
    /// For reporting.
    pub test: Dataset,
    /// Positions (in stored order) of training labels flipped by label noise.
    pub noised: Vec<usize>,
    /// The id of each stored training example (its first stored position);
    /// empty: the identity, nothing reordered the split.
    pub train_ids: Vec<u64>,
    /// The training labels before label noise; empty: no label was flipped.
    pub clean_train_labels: Vec<i64>,
    /// A transformed copy of the test split (`[data.shift]`); empty without one.
    pub shifted: Dataset,
}

impl Splits {
    /// Follows a reordering of the training split: new position `p` holds
    /// the example at old position `order[p]`. Ids, clean labels and flipped
    /// positions move with their examples.
    pub fn reorder_train_bookkeeping(&mut self, order: &[usize]) {
        let ids: Vec<u64> = if self.train_ids.is_empty() {
            order.iter().map(|&o| o as u64).collect()
        } else {
            order.iter().map(|&o| self.train_ids[o]).collect()
        };
        self.train_ids = ids;
        if !self.clean_train_labels.is_empty() {
            self.clean_train_labels = order.iter().map(|&o| self.clean_train_labels[o]).collect();
        }
    }

    /// The split called `name`.
    pub fn get(&self, name: &str) -> Result<&Dataset> {
        match name {
            "train" => Ok(&self.train),
            "validation" => Ok(&self.validation),
            "test" => Ok(&self.test),
            "shifted" if self.shifted.is_empty() => {
                bail!("there is no `shifted` split: add `[data.shift]` with `noise` or `translate` to make one")
            }
            "shifted" => Ok(&self.shifted),
            other => bail!("unknown split `{other}` (known: train, validation, test, shifted)"),
        }
    }
}

/// A standard normal draw (Box–Muller).
pub fn normal(rng: &mut SeedRng) -> f64 {
    let u1 = rng.next_f64().max(f64::MIN_POSITIVE);
    let u2 = rng.next_f64();
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `examples` points in `dim` dimensions around `classes` centres drawn from
/// N(0, (separation/√dim)²·I), each point N(centre, I): larger `separation`
/// is easier.
pub fn blobs(examples: usize, dim: usize, classes: usize, separation: f64, seed: u64) -> Result<Dataset> {
    if classes < 2 || dim == 0 || examples < classes {
        bail!("blobs need at least 2 classes, 1 feature and one example per class");
    }
    let mut rng = SeedRng::derive(seed, 0xB10B5);
    let scale = separation / (dim as f64).sqrt() * 2.0;
    let centres: Vec<f64> = (0..classes * dim).map(|_| normal(&mut rng) * scale).collect();
    let mut features = Vec::with_capacity(examples * dim);
    let mut labels = Vec::with_capacity(examples);
    for i in 0..examples {
        let class = i % classes;
        for d in 0..dim {
            features.push((centres[class * dim + d] + normal(&mut rng)) as f32);
        }
        labels.push(class as i64);
    }
    // `load` shuffles before splitting, so splits are balanced in expectation.
    Ok(Dataset { features, shape: vec![dim], labels, classes })
}

/// The UCI digits, compiled into the binary (57 KB; `data/digits/README.md`).
pub const DIGITS_CSV_GZ: &[u8] = include_bytes!("../../../../data/digits/digits.csv.gz");

/// The examples `config` names, before splitting: generated ones in
/// memory, files read example by example. Paths are relative to `base`
/// (the manifest's folder); files in an object store are fetched first
/// ([`fetched`]).
pub fn source(config: &DataConfig, seed: u64, base: &std::path::Path) -> Result<Box<dyn ExampleSource>> {
    if fetched::names_a_store(config) {
        let (local, copies) = fetched::fetch_files(config)?;
        let inner = source(&local, seed, base).map_err(|e| copies.in_store_terms(e))?;
        return Ok(Box::new(fetched::FetchedSource::new(inner, copies)));
    }
    let path = |key: &str, value: &Option<String>| -> Result<std::path::PathBuf> {
        match value {
            Some(p) => Ok(base.join(p)),
            None => bail!("data source `{}` needs data.{key}", config.source),
        }
    };
    Ok(match config.source {
        DataSource::Blobs => {
            Box::new(InMemory::from(blobs(config.examples, config.features, config.classes, config.separation, seed)?))
        }
        DataSource::Digits => Box::new(InMemory::from(digits_embedded()?)),
        DataSource::Idx => Box::new(examples::IdxFiles::open(
            &path("path", &config.path)?,
            &path("labels_path", &config.labels_path)?,
        )?),
        DataSource::Cifar10 | DataSource::Cifar100 => {
            let files: Vec<std::path::PathBuf> = config.files.iter().map(|f| base.join(f)).collect();
            if files.is_empty() {
                bail!("data source `{}` needs data.files (the binary batch files)", config.source);
            }
            Box::new(examples::CifarFiles::open(&files, if config.source == DataSource::Cifar10 { 1 } else { 2 })?)
        }
        DataSource::Mnist1d => Box::new(InMemory::from(mnist1d_data(config)?)),
        DataSource::Teacher => {
            let d = generators::teacher(config.examples, config.features, config.teacher_width, config.classes, seed)?;
            Box::new(InMemory::from(d))
        }
        DataSource::Npy => {
            Box::new(examples::NpyFile::open(&path("path", &config.path)?, &path("labels_path", &config.labels_path)?)?)
        }
        DataSource::Csv => {
            let file = path("path", &config.path)?;
            if file.extension().is_some_and(|e| e == "gz") {
                // Compressed text cannot be read at an offset: it is read whole.
                Box::new(InMemory::from(readers::csv(&file, config.label_column as isize)?))
            } else {
                Box::new(examples::CsvFile::open(&file, config.label_column as isize)?)
            }
        }
        DataSource::Webdataset => Box::new(webdataset::TarShards::open(&webdataset_files(config, base)?)?),
        DataSource::Shards => bail!("data source `shards` is a stored training split, not a source to split"),
    })
}

/// The tar files of a `webdataset` source: `data.files`, or the `.tar` files
/// of the folder `data.path` (sorted), or the one file `data.path`.
pub fn webdataset_files(config: &DataConfig, base: &std::path::Path) -> Result<Vec<std::path::PathBuf>> {
    if !config.files.is_empty() {
        return Ok(config.files.iter().map(|f| base.join(f)).collect());
    }
    let Some(path) = &config.path else { bail!("data source `webdataset` needs data.path or data.files") };
    let path = base.join(path);
    if !path.is_dir() {
        return Ok(vec![path]);
    }
    let mut tars: Vec<std::path::PathBuf> = std::fs::read_dir(&path)
        .map_err(|e| crate::error::invalid!("data.path: reading {}: {e}", path.display()))?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|e| e == "tar"))
        .collect();
    tars.sort();
    if tars.is_empty() {
        bail!("data.path: {} holds no .tar files", path.display());
    }
    Ok(tars)
}

/// The authors' MNIST-1D for `[data.mnist1d]`, seeded by its `seed`, else
/// `data.seed`, else the package's 42; sequences of shape `[final_seq_length]`
/// in the package's order (its training part first).
fn mnist1d_data(config: &DataConfig) -> Result<Dataset> {
    if config.examples != DataConfig::default().examples {
        bail!("data.examples does not apply to `mnist1d`: set data.mnist1d.num_samples (the package's name)");
    }
    let args = &config.mnist1d;
    if args.split == mnist1d::Mnist1dSplit::Package && config.limit.is_some() {
        bail!("data.limit does not apply with data.mnist1d.split = \"package\": set data.mnist1d.num_samples");
    }
    let seed = args.seed.or(config.seed).unwrap_or(mnist1d::PACKAGE_SEED);
    let made = mnist1d::make_dataset(args, seed)?;
    let features = made.x.iter().map(|&v| v as f32).collect();
    Ok(Dataset { features, shape: vec![args.final_seq_length], labels: made.y, classes: 10 })
}

/// The UCI digits compiled into the binary, pixels scaled to [0, 1].
fn digits_embedded() -> Result<Dataset> {
    let mut text = String::new();
    std::io::Read::read_to_string(&mut flate2::read::GzDecoder::new(DIGITS_CSV_GZ), &mut text)?;
    let mut d = readers::csv_text(&text, -1, "digits.csv.gz")?;
    d.features.iter_mut().for_each(|v| *v /= 16.0);
    d.shape = vec![1, 8, 8];
    d.classes = 10;
    Ok(d)
}

/// Relabels `data` so that group `g` of `groups` is class `g`, dropping the
/// examples whose label is in no group.
pub fn group_labels(data: &Dataset, groups: &[Vec<i64>]) -> Result<Dataset> {
    let class_of = split::group_classes(data.classes, groups)?;
    let keep: Vec<usize> = (0..data.len()).filter(|&i| class_of[data.labels[i] as usize].is_some()).collect();
    let mut out = data.subset(&keep);
    for label in out.labels.iter_mut() {
        *label = class_of[*label as usize].expect("kept");
    }
    out.classes = groups.len();
    Ok(out)
}

/// Positions of the first `k` examples of each label, in their stored order.
pub(crate) fn first_per_class(labels: &[i64], k: usize) -> Vec<usize> {
    let mut taken: std::collections::HashMap<i64, usize> = std::collections::HashMap::new();
    (0..labels.len())
        .filter(|&i| {
            let count = taken.entry(labels[i]).or_default();
            *count += 1;
            *count <= k
        })
        .collect()
}

/// Builds the splits that `config` describes; `seed` is used when the
/// config sets none. Examples are shuffled (by the data seed) before
/// splitting; the training split comes in its stored order. Everything is
/// read into memory (see [`SplitPlan`] for the plan alone).
pub fn load(config: &DataConfig, label_noise: f64, seed: u64, base: &std::path::Path) -> Result<Splits> {
    let seed = config.seed.unwrap_or(seed);
    if config.source == DataSource::Shards {
        return stored::load(config, base);
    }
    let source = source(config, seed, base)?;
    let plan = SplitPlan::new(source.labels(), source.classes(), config, label_noise, seed)?;
    let train = plan.gather_train(source.as_ref())?;
    let (validation, test) = holdout(&plan, source.as_ref())?;
    let shifted = shifted(config, &test, seed);
    let clean_train_labels = plan.clean_train_labels.clone();
    let splits =
        Splits { train, validation, test, noised: plan.noised, shifted, train_ids: vec![], clean_train_labels };
    Ok(if config.shift.moves_every_split() { shift_every_split(splits, &config.shift, seed) } else { splits })
}

/// `splits` moved by `[data.shift]` with `splits = "all"`: the training,
/// validation and test splits each shifted (their own draws of translation
/// and noise, one permutation of the classes), `shifted` the shifted test split.
fn shift_every_split(splits: Splits, config: &crate::manifest::ShiftConfig, seed: u64) -> Splits {
    let at = |stream: u64| SeedRng::derive(seed, 0x5_1F7A + stream).next_u64();
    let permutation = config.permute_labels.then(|| class_permutation(splits.test.classes, seed));
    let moved = |data: &Dataset, stream: u64| relabeled(shift(data, config, at(stream)), permutation.as_deref());
    let test = moved(&splits.test, 3);
    let clean =
        relabeled(Dataset { labels: splits.clean_train_labels.clone(), ..Dataset::default() }, permutation.as_deref());
    Splits {
        train: moved(&splits.train, 1),
        validation: moved(&splits.validation, 2),
        shifted: test.clone(),
        test,
        clean_train_labels: clean.labels,
        ..splits
    }
}

/// `data` with every label `l` replaced by `permutation[l]`, if given.
fn relabeled(mut data: Dataset, permutation: Option<&[i64]>) -> Dataset {
    if let Some(p) = permutation {
        data.labels.iter_mut().for_each(|l| *l = p[*l as usize]);
    }
    data
}

/// A random permutation of `0..classes` that moves every class (from `seed`).
pub fn class_permutation(classes: usize, seed: u64) -> Vec<i64> {
    let mut rng = SeedRng::derive(seed, 0xC1A55);
    let mut p: Vec<i64> = (0..classes as i64).collect();
    loop {
        rng.shuffle(&mut p);
        if classes < 2 || p.iter().enumerate().all(|(i, &c)| c != i as i64) {
            return p;
        }
    }
}

/// A planned split whose training examples are still in their source: the
/// held-out splits are in memory, the training split is streamed (into
/// shards) by [`SplitPlan::write_train`].
pub struct Planned {
    /// The source the training split is read from.
    pub source: Box<dyn ExampleSource>,
    /// Which examples go where.
    pub plan: SplitPlan,
    /// The splits, the training one with its labels but no features.
    pub splits: Splits,
}

/// Plans the splits `config` describes without reading the training split:
/// what [`load`] gives, less the training features.
pub fn plan(config: &DataConfig, label_noise: f64, seed: u64, base: &std::path::Path) -> Result<Planned> {
    let seed = config.seed.unwrap_or(seed);
    let source = source(config, seed, base)?;
    let plan = SplitPlan::new(source.labels(), source.classes(), config, label_noise, seed)?;
    stored::check_holdout_memory(config, plan.holdout_bytes(source.as_ref()))?;
    let (validation, test) = holdout(&plan, source.as_ref())?;
    let shifted = shifted(config, &test, seed);
    let train = Dataset {
        features: vec![],
        shape: source.shape().to_vec(),
        labels: plan.train_labels.clone(),
        classes: plan.classes,
    };
    let splits = Splits {
        train,
        validation,
        test,
        noised: plan.noised.clone(),
        shifted,
        train_ids: vec![],
        clean_train_labels: plan.clean_train_labels.clone(),
    };
    Ok(Planned { source, plan, splits })
}

/// The validation and test splits of `plan`, read into memory.
pub fn holdout(plan: &SplitPlan, source: &dyn ExampleSource) -> Result<(Dataset, Dataset)> {
    Ok((plan.gather(source, &plan.validation, None)?, plan.gather(source, &plan.test, None)?))
}

/// The `shifted` split of `test` (`[data.shift]`), or an empty one.
pub fn shifted(config: &DataConfig, test: &Dataset, seed: u64) -> Dataset {
    if config.shift.is_enabled() {
        let permutation = config.shift.permute_labels.then(|| class_permutation(test.classes, seed));
        relabeled(shift(test, &config.shift, SeedRng::derive(seed, 0x5_1F7).next_u64()), permutation.as_deref())
    } else {
        Dataset { features: vec![], shape: test.shape.clone(), labels: vec![], classes: test.classes }
    }
}

/// A copy of `data` moved off its distribution: each example translated along
/// its last axis by a uniform integer in [−translate, translate] (zero fill),
/// blurred, then Gaussian noise of standard deviation `noise` added to every
/// feature; with `permute_labels`, every label mapped by one permutation of
/// the classes (from the data seed, the same for every split).
pub fn shift(data: &Dataset, config: &crate::manifest::ShiftConfig, seed: u64) -> Dataset {
    let mut out = data.clone();
    let mut rng = SeedRng::derive(seed, 0);
    let row = data.shape.last().copied().unwrap_or(1).max(1);
    let dim = data.dim();
    let t = config.translate as i64;
    let rows = if data.shape.len() >= 2 { data.shape[data.shape.len() - 2] } else { 1 };
    for example in out.features.chunks_mut(dim.max(1)) {
        if t > 0 {
            let by = rng.below(2 * t as u64 + 1) as i64 - t;
            for line in example.chunks_mut(row) {
                let source = line.to_vec();
                for (i, v) in line.iter_mut().enumerate() {
                    let from = i as i64 - by;
                    *v = if (0..row as i64).contains(&from) { source[from as usize] } else { 0.0 };
                }
            }
        }
        if config.blur > 0 {
            blur(example, (rows, row), config.blur);
        }
        if config.noise > 0.0 {
            for v in example.iter_mut() {
                *v += (config.noise * normal(&mut rng)) as f32;
            }
        }
    }
    out
}

/// A box blur of radius `r` over each `rows × row` plane of `example`: the
/// mean of the values within r along the last axis, then along the one
/// before it when there are several rows (the window cut at the edges).
fn blur(example: &mut [f32], (rows, row): (usize, usize), r: usize) {
    let box_mean = |values: &[f32], at: usize| {
        let (from, to) = (at.saturating_sub(r), (at + r + 1).min(values.len()));
        values[from..to].iter().sum::<f32>() / (to - from) as f32
    };
    for plane in example.chunks_mut((rows * row).max(1)) {
        for line in plane.chunks_mut(row) {
            let source = line.to_vec();
            line.iter_mut().enumerate().for_each(|(i, v)| *v = box_mean(&source, i));
        }
        if rows > 1 {
            for col in 0..row {
                let column: Vec<f32> = (0..rows).map(|y| plane[y * row + col]).collect();
                (0..rows).for_each(|y| plane[y * row + col] = box_mean(&column, y));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::manifest::StoredOrder;

    #[test]
    fn train_per_class_keeps_the_first_examples_of_each_class() {
        assert_eq!(first_per_class(&[0, 1, 0, 2, 0, 1, 1, 2], 2), vec![0, 1, 2, 3, 5, 7]);
        let config =
            DataConfig { source: DataSource::Digits, seed: Some(0), train_per_class: 10, ..Default::default() };
        let base = std::path::Path::new(".");
        let splits = load(&config, 0.0, 0, base).unwrap();
        assert_eq!(splits.train.len(), 100);
        assert!((0..10).all(|c| splits.train.labels.iter().filter(|&&y| y == c).count() == 10));
        let all = load(&DataConfig { train_per_class: 0, ..config }, 0.0, 0, base).unwrap();
        assert_eq!(splits.test, all.test, "the test split does not depend on the training size");
    }

    #[test]
    fn label_groups_merge_classes_and_drop_the_rest() {
        let d = blobs(60, 2, 6, 2.0, 3).unwrap();
        let g = group_labels(&d, &[vec![0, 1], vec![4]]).unwrap();
        assert_eq!((g.len(), g.classes), (30, 2));
        assert_eq!(g.labels.iter().filter(|&&y| y == 0).count(), 20);
        assert!(g.labels.iter().all(|&y| y == 0 || y == 1));
        let err = group_labels(&d, &[vec![0], vec![0, 1]]).unwrap_err().to_string();
        assert!(err.contains("label 0 is in groups 0 and 1"), "{err}");
        let err = group_labels(&d, &[vec![0], vec![9]]).unwrap_err().to_string();
        assert!(err.contains("label_groups[1]: label 9"), "{err}");
    }

    #[test]
    fn the_shifted_split_translates_and_adds_noise_reproducibly() {
        let data =
            Dataset { features: (1..=8).map(|v| v as f32).collect(), shape: vec![2, 4], labels: vec![3], classes: 4 };
        let moved = shift(&data, &crate::manifest::ShiftConfig { translate: 1, ..Default::default() }, 5);
        // Both rows move by the same amount, within one point, zero-filled.
        let by = (-1i64..=1)
            .find(|&b| {
                (0..4).all(|i| {
                    let from = i - b;
                    let want = if (0..4).contains(&from) { data.features[from as usize] } else { 0.0 };
                    moved.features[i as usize] == want
                        && moved.features[4 + i as usize]
                            == if (0..4).contains(&from) { data.features[4 + from as usize] } else { 0.0 }
                })
            })
            .expect("a translation by -1, 0 or 1");
        assert!(by.abs() <= 1);
        assert_eq!(moved.labels, data.labels);
        let noisy = shift(&data, &crate::manifest::ShiftConfig { noise: 0.5, ..Default::default() }, 5);
        assert_eq!(noisy, shift(&data, &crate::manifest::ShiftConfig { noise: 0.5, ..Default::default() }, 5));
        assert!(noisy.features.iter().zip(&data.features).any(|(a, b)| a != b));
        let config = DataConfig {
            shift: crate::manifest::ShiftConfig { noise: 0.1, ..Default::default() },
            ..DataConfig::default()
        };
        let s = load(&config, 0.0, 1, std::path::Path::new(".")).unwrap();
        assert_eq!((s.shifted.len(), s.shifted.labels.clone()), (s.test.len(), s.test.labels.clone()));
        let plain = load(&DataConfig::default(), 0.0, 1, std::path::Path::new(".")).unwrap();
        assert!(plain.get("shifted").unwrap_err().to_string().contains("[data.shift]"));
    }

    #[test]
    fn blur_averages_within_the_radius_along_both_image_axes() {
        let mut plane = vec![0.0f32, 0.0, 0.0, 0.0, 9.0, 0.0, 0.0, 0.0, 0.0];
        blur(&mut plane, (3, 3), 1);
        // The centre spreads to every pixel: each mean of its 2 or 3 neighbours per axis.
        assert_eq!(plane[4], 1.0, "9 / 3 / 3");
        assert_eq!((plane[0], plane[1]), (2.25, 1.5), "corners: 9 / 2 / 2; edges: 9 / 3 / 2");
        let mut line = vec![3.0f32, 0.0, 0.0, 6.0];
        blur(&mut line, (1, 4), 1);
        assert_eq!(line, vec![1.5, 1.0, 2.0, 3.0], "a sequence: the last axis only");
    }

    #[test]
    fn a_shift_of_every_split_moves_inputs_and_relabels_by_one_derangement() {
        let p = class_permutation(10, 4);
        assert!(p.iter().enumerate().all(|(i, &c)| c != i as i64), "no class kept: {p:?}");
        let mut sorted = p.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..10).collect::<Vec<i64>>());
        let base = std::path::Path::new(".");
        let digits = DataConfig { source: DataSource::Digits, seed: Some(0), ..Default::default() };
        let plain = load(&digits, 0.1, 0, base).unwrap();
        let shift = crate::manifest::ShiftConfig {
            blur: 1,
            permute_labels: true,
            splits: crate::choice::ShiftSplits::All,
            ..Default::default()
        };
        let moved = load(&DataConfig { shift: shift.clone(), ..digits.clone() }, 0.1, 0, base).unwrap();
        let p = class_permutation(10, 0);
        for (before, after) in
            [(&plain.train, &moved.train), (&plain.validation, &moved.validation), (&plain.test, &moved.test)]
        {
            assert_eq!(after.labels, before.labels.iter().map(|&l| p[l as usize]).collect::<Vec<_>>());
            assert_ne!(after.features, before.features, "blurred");
        }
        assert_eq!(
            moved.clean_train_labels,
            plain.clean_train_labels.iter().map(|&l| p[l as usize]).collect::<Vec<_>>()
        );
        assert_eq!(moved.noised, plain.noised, "the same labels flipped");
        assert_eq!(moved.shifted, moved.test);
        let held_out = load(
            &DataConfig {
                shift: crate::manifest::ShiftConfig { splits: crate::choice::ShiftSplits::Shifted, ..shift },
                ..digits
            },
            0.1,
            0,
            base,
        )
        .unwrap();
        assert_eq!(held_out.train, plain.train, "only the shifted split moves");
        assert_eq!(held_out.shifted.labels, plain.test.labels.iter().map(|&l| p[l as usize]).collect::<Vec<_>>());
    }

    #[test]
    fn blobs_are_reproducible_and_balanced() {
        let a = blobs(400, 3, 4, 2.0, 9).unwrap();
        assert_eq!(a, blobs(400, 3, 4, 2.0, 9).unwrap());
        assert_ne!(a, blobs(400, 3, 4, 2.0, 10).unwrap());
        for c in 0..4 {
            assert_eq!(a.labels.iter().filter(|&&y| y == c).count(), 100);
        }
    }

    #[test]
    fn the_embedded_digits_split_reproducibly() {
        let config = DataConfig { source: DataSource::Digits, ..DataConfig::default() };
        let a = load(&config, 0.0, 3, std::path::Path::new(".")).unwrap();
        assert_eq!((a.train.len(), a.validation.len(), a.test.len()), (1258, 180, 359));
        assert_eq!(a.train.shape, vec![1, 8, 8]);
        assert_eq!(a.test, load(&config, 0.0, 3, std::path::Path::new(".")).unwrap().test);
        assert_ne!(a.test, load(&config, 0.0, 4, std::path::Path::new(".")).unwrap().test);
    }

    #[test]
    fn label_noise_flips_exactly_round_eta_n_labels_to_other_classes() {
        let clean = blobs(1000, 2, 4, 1.0, 0).unwrap();
        let mut noisy = clean.clone();
        let flipped = add_label_noise(&mut noisy, 0.05, 7).unwrap();
        assert_eq!(flipped.len(), 50);
        let changed: Vec<usize> = (0..1000).filter(|&i| noisy.labels[i] != clean.labels[i]).collect();
        assert_eq!(changed, flipped, "every chosen label changes class, no other does");
        let mut again = clean.clone();
        assert_eq!(add_label_noise(&mut again, 0.05, 7).unwrap(), flipped);
        assert_eq!(again, noisy);
        let mut other = clean.clone();
        assert_ne!(add_label_noise(&mut other, 0.05, 8).unwrap(), flipped);
        // Flipped labels spread over the other classes.
        let moved_to: std::collections::BTreeSet<i64> = flipped.iter().map(|&i| noisy.labels[i]).collect();
        assert_eq!(moved_to.len(), 4);
        assert!(add_label_noise(&mut noisy.clone(), 1.5, 0).is_err());
    }

    #[test]
    fn sorted_storage_is_label_homogeneous() {
        let config = DataConfig { stored_order: StoredOrder::SortedByLabel, ..DataConfig::default() };
        let s = load(&config, 0.0, 1, std::path::Path::new(".")).unwrap();
        assert!(s.train.labels.windows(2).all(|w| w[0] <= w[1]));
        assert_eq!(s.train.len() + s.validation.len() + s.test.len(), config.examples);
    }
}

//! The split into train / validation / test, done on positions: which
//! examples of the source go where, in which order, with which labels. Only
//! the labels are needed to plan it; the features are read when a split is
//! gathered (into memory) or streamed (into shards).

use crate::error::{bail, Result};
use tessera_sdk::SeedRng;

use super::examples::ExampleSource;
use super::{first_per_class, flip_labels, Dataset};
use crate::manifest::{DataConfig, StoredOrder};

/// Where each split's examples come from in the source, and the labels they get.
#[derive(Debug, Clone, PartialEq)]
pub struct SplitPlan {
    /// Source positions of the training split, in its stored order.
    pub train: Vec<usize>,
    /// Source positions of the validation split.
    pub validation: Vec<usize>,
    /// Source positions of the test split.
    pub test: Vec<usize>,
    /// The class of each source label (`label_groups`), or `None` to keep labels.
    pub class_of: Option<Vec<Option<i64>>>,
    /// Number of classes after grouping.
    pub classes: usize,
    /// The training labels, after grouping and label noise.
    pub train_labels: Vec<i64>,
    /// Positions (in the training split's stored order) of flipped labels.
    pub noised: Vec<usize>,
    /// The training labels before label noise (empty without label noise).
    pub clean_train_labels: Vec<i64>,
}

/// The class of each label under `groups` (group `g` is class `g`); labels
/// in no group map to `None`.
pub fn group_classes(classes: usize, groups: &[Vec<i64>]) -> Result<Vec<Option<i64>>> {
    let mut class_of = vec![None; classes];
    for (g, group) in groups.iter().enumerate() {
        for &label in group {
            let slot = usize::try_from(label).ok().and_then(|l| class_of.get_mut(l)).ok_or_else(|| {
                crate::error::invalid!("data.label_groups[{g}]: label {label} is not one of the {classes} classes")
            })?;
            if let Some(other) = slot.replace(g as i64) {
                bail!("data.label_groups: label {label} is in groups {other} and {g}");
            }
        }
    }
    if groups.len() < 2 {
        bail!("data.label_groups needs at least 2 groups (got {})", groups.len());
    }
    Ok(class_of)
}

/// Where a source's own split puts the first test example, if the manifest
/// asks for it (`data.mnist1d.split = "package"`).
fn package_split(config: &DataConfig, examples: usize) -> Option<usize> {
    let packaged = config.source == crate::choice::DataSource::Mnist1d
        && config.mnist1d.split == crate::manifest::Mnist1dSplit::Package;
    packaged.then_some((examples as f64 * config.mnist1d.train_split) as usize)
}

/// (test, validation, train) in the source's order: positions from
/// `train_count` on test; the last `validation_fraction` of the rest validates.
fn split_as_packaged(kept: &[usize], train_count: usize, validation_fraction: f64) -> Splits3 {
    let (train, test): (Vec<usize>, Vec<usize>) = kept.iter().partition(|&&i| i < train_count);
    let n_val = (train.len() as f64 * validation_fraction).round() as usize;
    let validation = train[train.len() - n_val..].to_vec();
    (test, validation, train[..train.len() - n_val].to_vec())
}

/// (test, validation, train) of a seeded shuffle of `kept`, after `limit`,
/// by `test_fraction` and `validation_fraction`.
fn split_shuffled(kept: &[usize], config: &DataConfig, seed: u64) -> Splits3 {
    let mut order: Vec<usize> = (0..kept.len()).collect();
    SeedRng::derive(seed, 0x5B117).shuffle(&mut order);
    let mut all: Vec<usize> = order.iter().map(|&o| kept[o]).collect();
    if let Some(limit) = config.limit {
        all.truncate(limit);
    }
    let n = all.len();
    let n_test = (n as f64 * config.test_fraction).round() as usize;
    let n_val = (n as f64 * config.validation_fraction).round() as usize;
    (all[..n_test].to_vec(), all[n_test..n_test + n_val].to_vec(), all[n_test + n_val..].to_vec())
}

/// Source positions of the test, validation and training splits.
type Splits3 = (Vec<usize>, Vec<usize>, Vec<usize>);

impl SplitPlan {
    /// Plans the splits of a source with `labels` of `classes` classes: label
    /// groups, the seeded shuffle, `limit` and the held-out fractions (or
    /// the source's own split, `data.mnist1d.split = "package"`), the
    /// training-split limits, its stored order and label noise, in that order.
    pub fn new(labels: &[i64], classes: usize, config: &DataConfig, label_noise: f64, seed: u64) -> Result<Self> {
        let class_of =
            if config.label_groups.is_empty() { None } else { Some(group_classes(classes, &config.label_groups)?) };
        let label = |i: usize| class_of.as_ref().map_or(Some(labels[i]), |c| c[labels[i] as usize]);
        let kept: Vec<usize> = (0..labels.len()).filter(|&i| label(i).is_some()).collect();
        if !(0.0..1.0).contains(&(config.test_fraction + config.validation_fraction)) {
            bail!("test_fraction + validation_fraction must be in [0, 1)");
        }
        let (test, validation, mut train) = match package_split(config, labels.len()) {
            Some(train_count) => split_as_packaged(&kept, train_count, config.validation_fraction),
            None => split_shuffled(&kept, config, seed),
        };
        if let Some(k) = config.train_limit {
            train.truncate(k);
        }
        let mut train_labels: Vec<i64> = train.iter().map(|&i| label(i).expect("kept")).collect();
        if config.train_per_class > 0 {
            let keep = first_per_class(&train_labels, config.train_per_class);
            train = keep.iter().map(|&k| train[k]).collect();
            train_labels = keep.iter().map(|&k| train_labels[k]).collect();
        }
        if config.stored_order == StoredOrder::SortedByLabel {
            let mut by_label: Vec<usize> = (0..train.len()).collect();
            by_label.sort_by_key(|&k| train_labels[k]);
            train = by_label.iter().map(|&k| train[k]).collect();
            train_labels = by_label.iter().map(|&k| train_labels[k]).collect();
        }
        if train.is_empty() {
            bail!("the training split is empty");
        }
        let classes = if class_of.is_some() { config.label_groups.len() } else { classes };
        let clean_train_labels = if label_noise > 0.0 { train_labels.clone() } else { vec![] };
        let noised = flip_labels(&mut train_labels, classes, label_noise, seed)?;
        Ok(SplitPlan { train, validation, test, class_of, classes, train_labels, noised, clean_train_labels })
    }

    /// The label of source position `i` after grouping.
    fn label(&self, source: &dyn ExampleSource, i: usize) -> i64 {
        let label = source.labels()[i];
        self.class_of.as_ref().map_or(label, |c| c[label as usize].expect("a planned example is kept"))
    }

    /// The examples at `positions` of `source`, read into memory; `labels`
    /// overrides their labels.
    pub fn gather(&self, source: &dyn ExampleSource, positions: &[usize], labels: Option<&[i64]>) -> Result<Dataset> {
        let mut features = Vec::with_capacity(positions.len() * source.dim());
        for &i in positions {
            source.read(i, &mut features)?;
        }
        let labels = match labels {
            Some(l) => l.to_vec(),
            None => positions.iter().map(|&i| self.label(source, i)).collect(),
        };
        Ok(Dataset { features, shape: source.shape().to_vec(), labels, classes: self.classes })
    }

    /// The training split, read into memory.
    pub fn gather_train(&self, source: &dyn ExampleSource) -> Result<Dataset> {
        self.gather(source, &self.train, Some(&self.train_labels))
    }

    /// Bytes the validation and test splits take in memory.
    pub fn holdout_bytes(&self, source: &dyn ExampleSource) -> u64 {
        ((self.validation.len() + self.test.len()) * (source.dim() * 4 + 8)) as u64
    }

    /// Streams the training split into `writer`, one example at a time;
    /// `progress` is called every 4,096 examples with the count so far.
    pub fn write_train(
        &self,
        source: &dyn ExampleSource,
        writer: &mut crate::storage::ShardWriter,
        progress: &mut dyn FnMut(usize),
    ) -> Result<()> {
        let mut features = Vec::with_capacity(source.dim());
        for (k, (&i, &label)) in self.train.iter().zip(&self.train_labels).enumerate() {
            features.clear();
            source.read(i, &mut features)?;
            writer.push(label, &features)?;
            if k % 4096 == 0 {
                progress(k);
            }
        }
        Ok(())
    }

    /// Streams the examples at `positions` into `writer` with their grouped labels.
    pub fn write(
        &self,
        source: &dyn ExampleSource,
        positions: &[usize],
        writer: &mut crate::storage::ShardWriter,
    ) -> Result<()> {
        let mut features = Vec::with_capacity(source.dim());
        for &i in positions {
            features.clear();
            source.read(i, &mut features)?;
            writer.push(self.label(source, i), &features)?;
        }
        Ok(())
    }
}

//! `source = "shards"`: data already written as shard folders, on local
//! disk or under an object-store prefix (`s3://bucket/prefix`). The
//! training split is the folder `data.path` (or its `train/`), trained in
//! place; the validation and test splits are read into memory from their own
//! folders.

use std::path::Path;

use crate::error::{bail, Result};

use super::{Dataset, Splits};
use crate::manifest::DataConfig;
use crate::storage::{store_client, store_error, BlockCache, Location, ShardSet, StoreOptions};

/// The shard folders of the three splits.
#[derive(Debug, Clone, PartialEq)]
pub struct StoredFolders {
    /// The training split.
    pub train: Location,
    /// The validation split, if there is one.
    pub validation: Option<Location>,
    /// The test split.
    pub test: Location,
}

/// How `config` reaches an object store.
pub fn store_options(config: &DataConfig) -> StoreOptions {
    StoreOptions {
        in_flight: config.store_in_flight,
        in_flight_bytes: config.store_in_flight_mb.saturating_mul(1 << 20),
        retries: config.store_retries,
        timeout_seconds: config.store_timeout_seconds,
    }
}

/// Whether `at` is a shard folder (it has an `index.json`).
fn is_shard_folder(at: &Location, options: StoreOptions) -> Result<bool> {
    match at {
        Location::Folder(dir) => Ok(dir.join("index.json").is_file()),
        Location::Store(url) => {
            let store = store_client(url, options)?;
            let index = url.join("index.json").map_err(|e| crate::error::invalid!("{e}"))?;
            store.exists(&index).map_err(store_error)
        }
    }
}

/// For a store prefix without an index: what the prefix holds (or an error
/// if its bucket does not exist); nothing to add for a local folder.
fn what_is_there(at: &Location, options: StoreOptions) -> Result<String> {
    let Location::Store(url) = at else { return Ok(String::new()) };
    match store_client(url, options)?.names(url, 5) {
        Ok(names) if names.is_empty() => Ok("; the prefix holds no objects".into()),
        Ok(names) => Ok(format!("; the prefix holds {}", names.join(", "))),
        Err(tessera_store::StoreError::NotFound { .. }) => {
            bail!("data.path: {url}: the bucket `{}` does not exist at this endpoint", url.bucket())
        }
        Err(e) => Err(store_error(e)),
    }
}

/// Finds the folders `config` names: `data.path` is a shard folder (then
/// `data.test_path` is needed) or a folder written by `tessera shard`
/// (`train/`, `validation/`, `test/`); `test_path` and `validation_path`
/// override what is found.
pub fn folders(config: &DataConfig, base: &Path) -> Result<StoredFolders> {
    let Some(path) = &config.path else { bail!("data.path: source = \"shards\" needs the shard folder") };
    let options = store_options(config);
    let root = Location::parse(path, base)?;
    let named = |value: &Option<String>| value.as_ref().map(|p| Location::parse(p, base)).transpose();
    let (train, found_validation, found_test) = if is_shard_folder(&root, options)? {
        (root.clone(), None, None)
    } else if is_shard_folder(&root.join("train")?, options)? {
        let beside = |name: &str| -> Result<Option<Location>> {
            let at = root.join(name)?;
            Ok(is_shard_folder(&at, options)?.then_some(at))
        };
        (root.join("train")?, beside("validation")?, beside("test")?)
    } else {
        bail!(
            "data.path: {root} is not a shard folder (no index.json) nor a folder written by `tessera shard` (no train/index.json){}; write one with `tessera shard SOURCE --out DIR`",
            what_is_there(&root, options)?
        );
    };
    let Some(test) = named(&config.test_path)?.or(found_test) else {
        bail!("data.test_path: source = \"shards\" trains on the whole of {train}; name the test split's shard folder")
    };
    Ok(StoredFolders { train, validation: named(&config.validation_path)?.or(found_validation), test })
}

/// Opens the training split's shard set (with `data.store_cache`, relative
/// to `base`, keeping a store's blocks on local disk).
pub fn open_train(config: &DataConfig, folders: &StoredFolders, base: &Path) -> Result<ShardSet> {
    let set = ShardSet::open_at(&folders.train, store_options(config))?;
    match (&config.store_cache, &set.location) {
        (Some(dir), Location::Store(_)) => {
            let cache = BlockCache::open(&base.join(dir), config.store_cache_mb.saturating_mul(1 << 20))?;
            Ok(set.with_cache(std::sync::Arc::new(cache)))
        }
        _ => Ok(set),
    }
}

/// The validation and test splits of a shard source, in memory.
pub struct Holdout {
    /// The validation split (empty where there is none).
    pub validation: Dataset,
    /// The test split.
    pub test: Dataset,
    /// What reading them took from an object store (none from local disk).
    pub store: Option<tessera_store::StoreCounts>,
}

/// The validation and test splits, read into memory (checksums checked),
/// refused past `data.holdout_memory_mb`.
pub fn holdout(config: &DataConfig, folders: &StoredFolders, train: &ShardSet) -> Result<Holdout> {
    let open = |at: &Location| ShardSet::open_at(at, store_options(config));
    let validation_set = folders.validation.as_ref().map(open).transpose()?;
    let test_set = open(&folders.test)?;
    let mut bytes = test_set.index.examples * test_set.index.record_bytes;
    for set in validation_set.iter().chain([&test_set]) {
        if set.index.shape != train.index.shape {
            bail!(
                "{}: examples of shape {:?}, the training split's {:?}",
                set.location,
                set.index.shape,
                train.index.shape
            );
        }
    }
    bytes += validation_set.as_ref().map_or(0, |s| s.index.examples * s.index.record_bytes);
    check_holdout_memory(config, bytes)?;
    let empty = Dataset { features: vec![], shape: train.index.shape.clone(), labels: vec![], classes: 0 };
    let validation = validation_set.as_ref().map(|s| s.read_all()).transpose()?.unwrap_or(empty);
    let test = test_set.read_all()?;
    let classes = [train.index.classes, validation.classes, test.classes].into_iter().max().unwrap_or(0);
    let counts = validation_set.iter().chain([&test_set]).filter_map(ShardSet::store_counts).collect::<Vec<_>>();
    let store = (!counts.is_empty()).then(|| counts.into_iter().sum());
    Ok(Holdout { validation: Dataset { classes, ..validation }, test: Dataset { classes, ..test }, store })
}

/// Refuses held-out splits larger than `data.holdout_memory_mb`.
pub fn check_holdout_memory(config: &DataConfig, bytes: u64) -> Result<()> {
    if bytes > config.holdout_memory_mb.saturating_mul(1 << 20) {
        bail!(
            "data.holdout_memory_mb: the validation and test splits take {:.2} MB in memory, more than the {} MB allowed; lower data.test_fraction / data.validation_fraction, or raise the limit",
            bytes as f64 / (1u64 << 20) as f64,
            config.holdout_memory_mb
        );
    }
    Ok(())
}

/// All three splits in memory (for `storage.mode = "memory"`).
pub fn load(config: &DataConfig, base: &Path) -> Result<Splits> {
    let folders = folders(config, base)?;
    let set = open_train(config, &folders, base)?;
    let Holdout { validation, test, .. } = holdout(config, &folders, &set)?;
    let mut train = set.read_all()?;
    train.classes = test.classes;
    let shifted = super::shifted(config, &test, config.seed.unwrap_or(0));
    Ok(Splits { train, validation, test, noised: vec![], shifted, train_ids: vec![], clean_train_labels: vec![] })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::choice::DataSource;

    #[test]
    fn a_folder_written_by_tessera_shard_finds_its_three_splits() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::data::blobs(40, 3, 2, 2.0, 1).unwrap();
        for (name, range) in [("train", 0..30), ("validation", 30..34), ("test", 34..40)] {
            let part = d.subset(&range.collect::<Vec<_>>());
            crate::storage::write_shards(&part, None, &dir.path().join("set").join(name), 8, 2).unwrap();
        }
        let config = DataConfig { source: DataSource::Shards, path: Some("set".into()), ..Default::default() };
        let splits = load(&config, dir.path()).unwrap();
        assert_eq!((splits.train.len(), splits.validation.len(), splits.test.len()), (30, 4, 6));
        assert_eq!(splits.test, d.subset(&(34..40).collect::<Vec<_>>()));
        let alone = DataConfig { path: Some("set/train".into()), ..config.clone() };
        let err = folders(&alone, dir.path()).unwrap_err().to_string();
        assert!(err.starts_with("data.test_path:"), "{err}");
        let tight = DataConfig { holdout_memory_mb: 0, ..config };
        assert!(load(&tight, dir.path()).unwrap_err().to_string().starts_with("data.holdout_memory_mb"));
    }
}

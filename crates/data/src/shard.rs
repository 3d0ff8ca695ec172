//! `tessera shard`: a data source written as shard folders (`train/`,
//! `validation/`, `test/`), split as `tessera run` splits it, streaming:
//! one example is in memory at a time, whatever the source's size.

use std::path::{Path, PathBuf};
use std::time::Instant;

use crate::error::{bail, Context, Result};

use crate::choice::DataSource;
use crate::data::{self, ExampleSource, SplitPlan};
use crate::manifest::DataConfig;
use crate::storage::{ShardWriter, StoreOptions, StoreOutput};
use tessera_store::StoreUrl;

/// What to shard and how.
#[derive(Debug, Clone)]
pub struct ShardRequest {
    /// The `[data]` of the source, paths relative to `base`.
    pub data: DataConfig,
    /// The folder paths in `data` are relative to.
    pub base: PathBuf,
    /// Label noise applied to the training split (a manifest's `train.label_noise`).
    pub label_noise: f64,
    /// The seed, when `data.seed` sets none.
    pub seed: u64,
    /// Examples per block.
    pub block_size: u64,
    /// Blocks per shard file.
    pub blocks_per_shard: u64,
}

/// One split written.
#[derive(Debug, Clone)]
pub struct WrittenSplit {
    /// `train`, `validation` or `test`.
    pub name: &'static str,
    /// Its folder.
    pub dir: PathBuf,
    /// Examples in it.
    pub examples: u64,
    /// Bytes of its shard files.
    pub bytes: u64,
}

/// A `[data]` for a data file alone, its kind told by its name: `.npy`
/// features (with a `.npy` of labels), a CSV (`.csv`, `.csv.gz`), WebDataset
/// tar shards (a `.tar` or a folder of them), or IDX images (with an IDX
/// label file).
pub fn data_for_file(path: &Path, labels: Option<&Path>, label_column: i64) -> Result<DataConfig> {
    let name = path.file_name().map(|n| n.to_string_lossy().to_lowercase()).unwrap_or_default();
    let text = |p: &Path| Some(p.display().to_string());
    let source = if name.ends_with(".npy") {
        DataSource::Npy
    } else if name.ends_with(".csv") || name.ends_with(".csv.gz") {
        DataSource::Csv
    } else if name.ends_with(".tar") || path.is_dir() {
        DataSource::Webdataset
    } else if labels.is_some() {
        DataSource::Idx
    } else {
        bail!(
            "{}: which source is this? Give a .npy (with --labels), a .csv, a .tar or a folder of them, IDX images (with --labels), or a manifest (.toml) whose [data] names any source",
            path.display()
        );
    };
    if matches!(source, DataSource::Npy | DataSource::Idx) && labels.is_none() {
        bail!("{}: `{source}` features need their labels: add --labels FILE", path.display());
    }
    Ok(DataConfig {
        source,
        path: text(path),
        labels_path: labels.and_then(text),
        label_column,
        ..DataConfig::default()
    })
}

/// Writes the splits of `request` into `out` (new or empty) and returns them.
/// On an error, the split folders this call made are removed.
pub fn write(request: &ShardRequest, out: &Path) -> Result<Vec<WrittenSplit>> {
    if request.data.source == DataSource::Shards {
        bail!("data.source = \"shards\" is already sharded");
    }
    if out.exists() && std::fs::read_dir(out)?.next().is_some() {
        bail!("{} already holds files; shards are written into a new or empty folder", out.display());
    }
    let seed = request.data.seed.unwrap_or(request.seed);
    let source = data::source(&request.data, seed, &request.base)?;
    let plan = SplitPlan::new(source.labels(), source.classes(), &request.data, request.label_noise, seed)?;
    let mut written = Vec::new();
    let result = write_splits(request, source.as_ref(), &plan, out, &mut written);
    if result.is_err() {
        // Only the split folders this call made, through the confined layer.
        let folder = crate::confined::Confined::new(out);
        for split in &written {
            let _ = folder.remove_dir_all(split.name);
        }
    }
    result.map(|()| written)
}

/// Writes each non-empty split, pushing each onto `written` once its folder exists.
fn write_splits(
    request: &ShardRequest,
    source: &dyn ExampleSource,
    plan: &SplitPlan,
    out: &Path,
    written: &mut Vec<WrittenSplit>,
) -> Result<()> {
    let parts: [(&'static str, &[usize]); 3] =
        [("train", &plan.train), ("validation", &plan.validation), ("test", &plan.test)];
    for (name, positions) in parts.into_iter().filter(|(_, p)| !p.is_empty()) {
        let dir = out.join(name);
        let mut writer =
            ShardWriter::create(&dir, source.shape(), plan.classes, request.block_size, request.blocks_per_shard)?;
        written.push(WrittenSplit { name, dir: dir.clone(), examples: positions.len() as u64, bytes: 0 });
        let started = Instant::now();
        if name == "train" {
            plan.write_train(source, &mut writer, &mut |_| {})?;
        } else {
            plan.write(source, positions, &mut writer)?;
        }
        let (_, io) = writer.finish().with_context(|| format!("writing {}", dir.display()))?;
        written.last_mut().expect("pushed").bytes = io.bytes;
        log::info!(
            "{name}: {} examples, {} MB in {:.1}s",
            positions.len(),
            io.bytes >> 20,
            started.elapsed().as_secs_f64()
        );
    }
    Ok(())
}

/// Writes the splits of `request` under the store prefix `url`, which must
/// hold no objects yet: written into a local temporary folder first, then
/// uploaded split by split, each split's `index.json` last (so that no
/// reader finds an index whose shards are missing). On a failed upload the
/// objects this call wrote are removed.
pub fn write_to_store(request: &ShardRequest, url: &StoreUrl, options: StoreOptions) -> Result<Vec<WrittenSplit>> {
    let mut output = StoreOutput::claim(url, options)?;
    let local = tempfile::tempdir().context("a temporary folder for the shards")?;
    let mut written = write(request, local.path())?;
    for split in written.iter_mut() {
        // On an error the output is dropped, and takes back what it wrote.
        split.dir = PathBuf::from(output.upload(&split.dir, split.name)?.to_string());
    }
    output.keep();
    Ok(written)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::storage::ShardSet;

    #[test]
    fn a_sharded_npy_holds_the_splits_that_load_makes_and_never_writes_over_a_folder() {
        let dir = tempfile::tempdir().unwrap();
        let d = crate::data::blobs(300, 5, 3, 2.0, 4).unwrap();
        let x: Vec<u8> = d.features.iter().flat_map(|v| v.to_le_bytes()).collect();
        let y: Vec<u8> = d.labels.iter().flat_map(|v| v.to_le_bytes()).collect();
        data::readers::write_npy(&dir.path().join("x.npy"), "<f4", &[300, 5], &x).unwrap();
        data::readers::write_npy(&dir.path().join("y.npy"), "<i8", &[300], &y).unwrap();
        let config = data_for_file(&dir.path().join("x.npy"), Some(&dir.path().join("y.npy")), -1).unwrap();
        let request = ShardRequest {
            data: DataConfig { stored_order: crate::choice::StoredOrder::SortedByLabel, ..config },
            base: PathBuf::from("."),
            label_noise: 0.1,
            seed: 7,
            block_size: 16,
            blocks_per_shard: 4,
        };
        let out = dir.path().join("out");
        let written = write(&request, &out).unwrap();
        assert_eq!(
            written.iter().map(|w| (w.name, w.examples)).collect::<Vec<_>>(),
            [("train", 210), ("validation", 30), ("test", 60)]
        );
        let splits = data::load(&request.data, 0.1, 7, Path::new(".")).unwrap();
        assert_eq!(ShardSet::open(&out.join("train")).unwrap().read_all().unwrap(), splits.train);
        assert_eq!(ShardSet::open(&out.join("test")).unwrap().read_all().unwrap(), splits.test);
        assert_eq!(ShardSet::open(&out.join("validation")).unwrap().read_all().unwrap(), splits.validation);
        let err = write(&request, &out).unwrap_err().to_string();
        assert!(err.contains("already holds files"), "{err}");
    }
}

//! `tessera shard`: a data source written as shard folders.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

/// The flags of `tessera shard` that a manifest can also set.
pub(crate) struct ShardFlags {
    pub(crate) block_size: Option<u64>,
    pub(crate) blocks_per_shard: Option<u64>,
    pub(crate) seed: u64,
}

/// `tessera shard`: writes the splits and prints them.
pub(crate) fn shard(
    source: &Path,
    out: &Path,
    labels: Option<&Path>,
    label_column: i64,
    flags: ShardFlags,
) -> ExitCode {
    let request = match shard_request(source, labels, label_column, flags) {
        Ok(r) => r,
        Err(e) => return super::user_error(e),
    };
    let started = std::time::Instant::now();
    let written = match out.to_str().filter(|o| tessera_engine::storage::StoreUrl::is_url(o)) {
        Some(url) => tessera_engine::storage::StoreUrl::parse(url)
            .map_err(|e| tessera_engine::DataError::Invalid(e.to_string()))
            .and_then(|url| tessera_engine::shard::write_to_store(&request, &url, Default::default())),
        None => tessera_engine::shard::write(&request, out),
    };
    match written {
        Ok(written) => {
            for split in written {
                println!(
                    "{:<10} {:>10} examples {:>8} MB  {}",
                    split.name,
                    split.examples,
                    split.bytes >> 20,
                    split.dir.display()
                );
            }
            println!(
                "{:.1}s, peak memory {:.0} MB",
                started.elapsed().as_secs_f64(),
                tessera_engine::run::peak_rss_mb()
            );
            ExitCode::SUCCESS
        }
        Err(e) => {
            // The source, the folder or the geometry: each is the user's to fix.
            eprintln!("error: {e:#}");
            ExitCode::from(2)
        }
    }
}

/// What `tessera shard SOURCE` writes: a manifest's data, or a data file's.
fn shard_request(
    source: &Path,
    labels: Option<&Path>,
    label_column: i64,
    flags: ShardFlags,
) -> anyhow::Result<tessera_engine::shard::ShardRequest> {
    let defaults = tessera_engine::manifest::StorageConfig::default();
    if source.extension().is_some_and(|e| e == "toml") {
        let manifest = tessera_engine::manifest::Manifest::load(source)?;
        let s = manifest.variant(None, &[])?.settings;
        return Ok(tessera_engine::shard::ShardRequest {
            data: s.data,
            base: manifest.dir(),
            label_noise: s.train.label_noise,
            seed: s.experiment.seed,
            block_size: flags.block_size.unwrap_or(s.storage.block_size),
            blocks_per_shard: flags.blocks_per_shard.unwrap_or(s.storage.blocks_per_shard),
        });
    }
    Ok(tessera_engine::shard::ShardRequest {
        data: tessera_engine::shard::data_for_file(source, labels, label_column)?,
        base: PathBuf::from("."),
        label_noise: 0.0,
        seed: flags.seed,
        block_size: flags.block_size.unwrap_or(256),
        blocks_per_shard: flags.blocks_per_shard.unwrap_or(defaults.blocks_per_shard),
    })
}

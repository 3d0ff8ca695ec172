//! Data larger than memory: one epoch of each sampler over shard folders of
//! 1 GB and 10 GB (`source = "shards"`, the same 16-block buffer), each in a
//! process of its own, with its peak memory (the engine's `peak_memory_mb`,
//! the process's maximum resident set) and its throughput against a
//! sequential scan of the same files (examples per second of the whole epoch,
//! reads included). Memory must not grow with the data. Corgi²'s offline
//! pass (a rewrite of the set) is not in its epoch time.
//! The last row trains CorgiPile on the largest set under a hard limit of
//! 1 GB on the process's data memory (`RLIMIT_DATA`).
//!
//! Run: `make bench`, or `cargo bench -p tessera-engine --bench out_of_core`.
//! `OOC_SIZES_GB=1,10` (default) sets the sizes; `OOC_DIR` the scratch
//! folder (default: a temporary folder; it needs the sizes' sum free).

use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::Command;

use tessera_engine::storage::ShardWriter;
use tessera_sdk::SeedRng;

/// Features per example: a record is 8 + 4 × 1024 bytes.
const FEATURES: usize = 1024;
const CLASSES: usize = 10;
const BLOCK: u64 = 256;

/// (variant name, sampler table, extra storage settings)
const SAMPLERS: [(&str, &str, &str); 6] = [
    ("sequential", r#"{ use = "baselines.sequential" }"#, ""),
    ("block-shuffle", r#"{ use = "baselines.block-shuffle" }"#, ""),
    ("shuffle-buffer", r#"{ use = "baselines.shuffle-buffer" }"#, ""),
    ("corgipile", r#"{ use = "corgi2.corgipile", buffer_blocks = 16 }"#, ""),
    ("corgi2", r#"{ use = "corgi2.corgi2", buffer_blocks = 16 }"#, ""),
    ("full-shuffle", r#"{ use = "baselines.full-shuffle" }"#, "\naccess = \"example\""),
];

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    let sizes: Vec<f64> = std::env::var("OOC_SIZES_GB")
        .unwrap_or_else(|_| "1,10".into())
        .split(',')
        .map(|s| s.trim().parse().expect("OOC_SIZES_GB: numbers of GB, comma-separated"))
        .collect();
    let scratch = match std::env::var_os("OOC_DIR") {
        Some(d) => tempfile::tempdir_in(d).unwrap(),
        None => tempfile::tempdir().unwrap(),
    };
    println!("| data | sampler | examples | epoch s | examples/s | vs sequential | peak memory MB | vs sequential |");
    println!("|---|---|---|---|---|---|---|---|");
    let largest = sizes.iter().copied().fold(0.0, f64::max);
    for &gb in &sizes {
        let dir = scratch.path().join(format!("{gb}gb"));
        let examples = write_set(&dir, gb);
        // Past a few GB, only the scan and CorgiPile (Corgi²'s offline pass
        // would write the set again; the others read like one of these).
        let samplers: Vec<_> =
            SAMPLERS.iter().filter(|(name, ..)| gb <= 2.0 || ["sequential", "corgipile"].contains(name)).collect();
        let mut baseline: Option<Epoch> = None;
        for (name, sampler, storage) in samplers {
            let epoch = run_epoch(&dir, name, sampler, storage, None, examples);
            let base = *baseline.get_or_insert(epoch);
            print_row(gb, name, examples, &epoch, &base);
        }
        if gb == largest {
            let (name, sampler, storage) = SAMPLERS[3];
            let capped = run_epoch(&dir, name, sampler, storage, Some(1 << 30), examples);
            print_row(gb, "corgipile, data memory capped at 1 GB", examples, &capped, &baseline.unwrap());
        }
        std::fs::remove_dir_all(&dir).ok();
    }
}

/// One epoch's figures.
#[derive(Clone, Copy)]
struct Epoch {
    seconds: f64,
    examples_per_second: f64,
    peak_mb: f64,
}

fn print_row(gb: f64, name: &str, examples: u64, e: &Epoch, base: &Epoch) {
    println!(
        "| {gb} GB | {name} | {examples} | {:.2} | {:.0} | {:.2}× | {:.0} | {:.2}× |",
        e.seconds,
        e.examples_per_second,
        e.examples_per_second / base.examples_per_second,
        e.peak_mb,
        e.peak_mb / base.peak_mb
    );
}

/// Writes `gb` GB of Gaussian-blob examples as `dir/train` (streamed, one
/// block in memory) and a small `dir/test`; returns the training examples.
fn write_set(dir: &Path, gb: f64) -> u64 {
    let record = 8 + 4 * FEATURES as u64;
    let examples = (gb * 1e9 / record as f64) as u64;
    let mut rng = SeedRng::derive(0, 0x00C);
    let centres: Vec<f32> =
        (0..CLASSES * FEATURES).map(|_| (tessera_engine::data::normal(&mut rng) * 0.1) as f32).collect();
    for (name, n) in [("train", examples), ("test", 10_000)] {
        let mut writer = ShardWriter::create(&dir.join(name), &[FEATURES], CLASSES, BLOCK, 64).unwrap();
        let mut features = vec![0f32; FEATURES];
        for i in 0..n {
            let class = (i % CLASSES as u64) as usize;
            for (d, v) in features.iter_mut().enumerate() {
                *v = centres[class * FEATURES + d] + (rng.next_f64() as f32 - 0.5);
            }
            writer.push(class as i64, &features).unwrap();
        }
        writer.finish().unwrap();
    }
    examples
}

/// Trains one epoch of `sampler` from `dir` in a `tessera run` of its own.
fn run_epoch(dir: &Path, name: &str, sampler: &str, storage: &str, data_limit: Option<u64>, examples: u64) -> Epoch {
    let manifest = dir.with_extension(format!("{name}.toml"));
    let text = format!(
        "[experiment]\nname = \"ooc\"\nseed = 0\n\n[data]\nsource = \"shards\"\npath = \"{}\"\n\n[storage]\nmode = \"shards\"\nbuffer_blocks = 16{storage}\n\n[model]\nkind = \"linear\"\n\n[train]\nepochs = 1\nbatch_size = 256\n\n[[variant]]\nname = \"{name}\"\nsampler = {sampler}\n",
        dir.display()
    );
    std::fs::write(&manifest, text).unwrap();
    let out = dir.with_extension(format!("{name}-{}", data_limit.is_some()));
    tessera_engine_bench_drop_cache();
    let mut command = Command::new(env!("CARGO_BIN_EXE_tessera"));
    command.arg("-q").arg("run").arg(&manifest).arg("--out").arg(&out);
    if let Some(limit) = data_limit {
        // SAFETY: only setrlimit between fork and exec.
        unsafe {
            command.pre_exec(move || {
                let rl = libc::rlimit { rlim_cur: limit, rlim_max: limit };
                if libc::setrlimit(libc::RLIMIT_DATA, &rl) != 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
    }
    let status = command.stdout(std::process::Stdio::null()).status().unwrap();
    assert!(status.success(), "{name} failed: see {}", out.display());
    let epoch = read_epoch(&out, examples);
    std::fs::remove_dir_all(&out).ok();
    epoch
}

/// The engine's figures of the run in `out`, an epoch of `examples`.
fn read_epoch(out: &Path, examples: u64) -> Epoch {
    let results: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("results.json")).unwrap()).unwrap();
    let engine = &results["variants"][0]["results"]["engine"]["scalars"];
    let get = |k: &str| engine[k].as_f64().unwrap_or_else(|| panic!("engine.{k} in {}", out.display()));
    // The whole epoch's rate, reads included (the engine's
    // `examples_per_second` counts the training steps alone).
    let seconds = get("epoch_seconds");
    Epoch { seconds, examples_per_second: examples as f64 / seconds, peak_mb: get("peak_memory_mb") }
}

/// Drops the page cache where this process may, so each epoch reads from the device.
fn tessera_engine_bench_drop_cache() {
    Command::new("sync").status().ok();
    let _ = std::fs::write("/proc/sys/vm/drop_caches", "3");
}

//! Helpers shared by the benchmarks.

#![allow(dead_code)]

use std::path::PathBuf;

/// A plugin library built next to the benchmark (target/<profile>/).
pub fn plugin_library(stem: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = profile.join(tessera_engine::plugin::library_file_name(stem));
    assert!(path.exists(), "{} is missing: run `make build` first", path.display());
    path
}

/// The median of some timings.
pub fn median(mut xs: Vec<f64>) -> f64 {
    xs.sort_by(f64::total_cmp);
    xs[xs.len() / 2]
}

/// Drops the page cache so the next reads hit the device; false where this
/// process may not (it needs root).
pub fn drop_page_cache() -> bool {
    std::process::Command::new("sync").status().ok();
    std::fs::write("/proc/sys/vm/drop_caches", "3").is_ok()
}

/// Reads a whole pass through `reader`, 4,096 examples at a time (decoded
/// into one reused buffer); returns the examples read and the pass's I/O.
pub fn drain(mut reader: tessera_engine::storage::EpochReader) -> (usize, tessera_engine::storage::IoStats) {
    let mut features = Vec::with_capacity(4096 * 64);
    let mut count = 0;
    loop {
        features.clear();
        let got = reader.next_examples(4096, &mut features).unwrap();
        if got.is_empty() {
            break;
        }
        count += got.len();
    }
    (count, reader.finish().unwrap())
}

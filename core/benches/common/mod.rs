//! Helpers shared by the benchmarks.

#![allow(dead_code)]

use std::path::PathBuf;

/// A plugin library built next to the benchmark (target/<profile>/).
pub fn plugin_library(stem: &str) -> PathBuf {
    let exe = std::env::current_exe().unwrap();
    let profile = exe.parent().and_then(|d| d.parent()).unwrap();
    let path = profile.join(tessera_core::plugin::library_file_name(stem));
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

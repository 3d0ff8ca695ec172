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

/// The benchmarks' training task: `n` random 64-feature examples of 10
/// classes (as `[64]` for an MLP, `[1, 8, 8]` for a CNN) and a model of
/// `kind` (`mlp`: 2 × 256 hidden; `cnn`: 16 and 32 channels) on the CPU.
pub fn random_task(kind: &str, n: usize) -> (tessera_engine::model::Model, tessera_engine::train::TensorData) {
    use tch::{Device, Kind, Tensor};
    let shape = if kind == "mlp" { vec![64] } else { vec![1, 8, 8] };
    let x = Tensor::randn([n as i64, 64], (Kind::Float, Device::Cpu));
    let data = tessera_engine::data::Dataset {
        features: Vec::<f32>::try_from(x.view([-1])).unwrap(),
        shape: shape.clone(),
        labels: (0..n as i64).map(|i| i % 10).collect(),
        classes: 10,
    };
    let config = tessera_engine::manifest::ModelConfig {
        kind: kind.parse().unwrap(),
        hidden: vec![256, 256],
        channels: vec![16, 32],
        ..Default::default()
    };
    let model = tessera_engine::model::Model::new(&config, &shape, 10, Device::Cpu, 0).unwrap();
    (model, tessera_engine::train::TensorData::new(&data, Device::Cpu))
}

//! A population trained under a sampler (SDK 0.3): each run gets a fresh
//! instance of the variant's sampler, from the run's seed, instead of the
//! host's shuffle. On label-sorted data a sequential order shows in every
//! member's accuracy.

mod common;

use common::*;
use tessera_engine::report::RunResults;

const MANIFEST: &str = r#"
[experiment]
threads = 1
kind = "population"
[data]
source = "blobs"
examples = 600
features = 8
classes = 4
separation = 2.0
stored_order = "sorted-by-label"
seed = 0
[population]
models = [{ kind = "mlp", hidden = [16] }]
seeds = [0, 1, 2]
epochs = [2]
[train]
batch_size = 16
lr = 0.1
[[variant]]
name = "shuffled"
[[variant]]
name = "sequential"
sampler = { use = "baselines.sequential" }
"#;

#[test]
fn every_run_of_a_population_trains_in_its_sampler_s_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), MANIFEST).unwrap();
    let out = tessera_command(&["-q", "run", "m.toml", "--out", "run"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results = RunResults::load(&dir.path().join("run")).unwrap();
    let figure = |variant: &str, name: &str| {
        results.variants.iter().find(|v| v.name == variant).unwrap().results["engine"].scalars[name]
    };
    assert_eq!(figure("sequential", "members"), 3.0);
    // Label-sorted in order, each run ends on the last class: every member
    // is worse than every shuffled one.
    let (best_sequential, worst_shuffled) =
        (figure("sequential", "max_accuracy_test"), figure("shuffled", "min_accuracy_test"));
    assert!(best_sequential < worst_shuffled, "{best_sequential} vs {worst_shuffled}");
}

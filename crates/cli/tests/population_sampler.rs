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

/// MANIFEST's runs on unsorted, overlapping blobs, each under its own fresh
/// shuffle: `baselines.full-shuffle` draws each run's permutations from its
/// seed. Members after 1 and 3 epochs, with momentum.
fn shuffled_by_a_sampler() -> String {
    let manifest = MANIFEST
        .replace("separation = 2.0\nstored_order = \"sorted-by-label\"", "separation = 1.0")
        .replace("epochs = [2]", "epochs = [1, 3]")
        .replace("lr = 0.1", "lr = 0.05\nmomentum = 0.9");
    let (common, _) = manifest.split_once("[[variant]]").unwrap();
    let manifest =
        common.to_string() + "[[variant]]\nname = \"shuffled\"\nsampler = { use = \"baselines.full-shuffle\" }\n";
    assert!(manifest.contains("separation = 1.0") && manifest.contains("momentum"), "{manifest}");
    manifest
}

/// Runs [`shuffled_by_a_sampler`] with `population.batch = batch` into `out`
/// (with `extra` arguments):
/// results.json without timings, and each member's test correctness row.
fn run_sampled(dir: &std::path::Path, batch: &str, out: &str, extra: &[&str]) -> (serde_json::Value, Vec<Vec<u8>>) {
    let set = format!("population.batch={batch}");
    let args: Vec<&str> =
        ["-q", "run", "m.toml", "--out", out, "--set", &set].into_iter().chain(extra.iter().copied()).collect();
    let run = tessera_command(&args, dir);
    assert!(run.status.success(), "batch {batch}: {}", String::from_utf8_lossy(&run.stderr));
    let mut results: serde_json::Value =
        serde_json::from_slice(&std::fs::read(dir.join(out).join("results.json")).unwrap()).unwrap();
    comparable(&mut results);
    let matrix = std::fs::read(dir.join(out).join("population/shuffled/test.correct.npy")).unwrap();
    let header = matrix.iter().position(|&b| b == b'\n').unwrap() + 1;
    let points = 120; // 20 % of 600
    let rows = matrix[header..].chunks(points).map(<[u8]>::to_vec).collect();
    (results, rows)
}

#[test]
fn runs_under_a_sampler_batched_train_as_they_do_alone_and_reproducibly() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), shuffled_by_a_sampler()).unwrap();
    let (alone, alone_rows) = run_sampled(dir.path(), "1", "alone", &[]);
    let (batched, batched_rows) = run_sampled(dir.path(), "3", "batched", &[]);
    assert_eq!(alone_rows.len(), 6, "3 runs × 2 training lengths");
    assert_eq!(batched_rows.len(), alone_rows.len());
    // Each member its own sampler's order: the batched member is the one
    // alone up to rounding, point for point.
    for (i, (a, b)) in alone_rows.iter().zip(&batched_rows).enumerate() {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert!(differ <= 1, "member {i}: {differ} of {} test points differ from its run alone", a.len());
    }
    let distinct: std::collections::BTreeSet<&Vec<u8>> = batched_rows.iter().collect();
    assert!(distinct.len() > 3, "the runs' own orders make different members");
    // Bit for bit again, in worker processes too, and "auto" keeps each run
    // under a sampler alone.
    assert_eq!(run_sampled(dir.path(), "3", "again", &[]).0, batched, "a rerun of the batch");
    let processes = run_sampled(dir.path(), "3", "processes", &["--executor", "processes", "--jobs", "2"]);
    assert_eq!(processes.0, batched, "the batch through worker processes");
    let (auto, _) = run_sampled(dir.path(), "\"auto\"", "auto", &[]);
    assert_eq!(auto, alone, "auto trains runs under a plugin's sampler one after another");
}

#[test]
fn a_learning_rate_grid_under_a_sampler_batches_each_member_at_its_own_rate() {
    let dir = tempfile::tempdir().unwrap();
    let grid = shuffled_by_a_sampler()
        .replace("seeds = [0, 1, 2]", "seeds = [0]\nsettings = [{ lr = 0.01 }, { lr = 0.05 }, { lr = 0.2 }]");
    assert!(grid.contains("lr = 0.2"), "{grid}");
    std::fs::write(dir.path().join("m.toml"), grid).unwrap();
    let (_, alone_rows) = run_sampled(dir.path(), "1", "alone", &[]);
    let (batched, batched_rows) = run_sampled(dir.path(), "3", "batched", &[]);
    assert_eq!((alone_rows.len(), batched_rows.len()), (6, 6), "3 rates × 2 training lengths");
    for (i, (a, b)) in alone_rows.iter().zip(&batched_rows).enumerate() {
        let differ = a.iter().zip(b).filter(|(x, y)| x != y).count();
        assert!(differ <= 1, "member {i}: {differ} of {} test points differ from its run alone", a.len());
    }
    // The rates make different members: one rate for all would not.
    let distinct: std::collections::BTreeSet<&Vec<u8>> = batched_rows.iter().collect();
    assert!(distinct.len() > 3, "three rates, two lengths: {} distinct members", distinct.len());
    assert_eq!(run_sampled(dir.path(), "3", "again", &[]).0, batched, "a rerun of the batch");
}

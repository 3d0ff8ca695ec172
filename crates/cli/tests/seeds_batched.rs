//! The seeds of a `train` variant trained as one batched model
//! (`experiment.batch`), through the real plugins a manifest names: the
//! plan has one unit per batch of seeds; each seed keeps its own data order
//! (its sampler's, with its loss weights and its observations of its own
//! model), its metrics and its reports, as it has them alone up to
//! floating-point reassociation, on shards too (each seed its own reads);
//! a batch gives the same bits rerun and through worker processes. A sampler that selects per step keeps each
//! seed alone under `"auto"` and is refused with a number.

mod common;

use std::path::Path;

use common::*;
use serde_json::Value;

/// Three seeds of two variants: importance sampling (loss weights, and it
/// observes each example's loss) and a full shuffle.
const MANIFEST: &str = r#"
[experiment]
threads = 1
seeds = [1, 2, 3]
[data]
source = "blobs"
examples = 900
features = 12
classes = 4
separation = 1.2
[model]
hidden = [32, 32]
[train]
epochs = 3
batch_size = 24
lr = 0.05
momentum = 0.9
checkpoint_every = 20
[[metric]]
use = "baselines.accuracy"
[[variant]]
name = "importance"
sampler = { use = "adaptive.importance", uniform = 0.2 }
[[variant]]
name = "shuffle"
sampler = { use = "baselines.full-shuffle" }
"#;

/// `tessera run` of `manifest` in `dir` into `out` with `args`; results.json.
fn run(dir: &Path, out: &str, args: &[&str]) -> Value {
    let mut all = vec!["-q", "run", "m.toml", "--out", out];
    all.extend_from_slice(args);
    let output = tessera_command(&all, dir);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    serde_json::from_slice(&std::fs::read(dir.join(out).join("results.json")).unwrap()).unwrap()
}

/// A run's variants by name.
fn variants(results: &Value) -> Vec<(String, Value)> {
    let all = results["variants"].as_array().unwrap();
    all.iter().map(|v| (v["name"].as_str().unwrap().to_string(), v.clone())).collect()
}

/// A variant's engine series `name` (x and y).
fn series(variant: &Value, name: &str) -> (Vec<f64>, Vec<f64>) {
    let all = variant["results"]["engine"]["series"].as_array().unwrap();
    let s = all.iter().find(|s| s["name"] == name).unwrap_or_else(|| panic!("no series {name}"));
    let numbers = |v: &Value| v.as_array().unwrap().iter().map(|x| x.as_f64().unwrap()).collect::<Vec<_>>();
    (numbers(&s["x"]), numbers(&s["y"]))
}

#[test]
fn each_seed_of_a_batch_trains_as_it_does_alone() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), MANIFEST).unwrap();
    let alone = run(dir.path(), "alone", &[]);
    let batched = run(dir.path(), "batched", &["--set", "experiment.batch=3"]);
    let plan: Value = serde_json::from_slice(&std::fs::read(dir.path().join("batched/plan.json")).unwrap()).unwrap();
    let units = plan["units"].as_array().unwrap();
    assert_eq!(units.len(), 2, "one unit per variant's three seeds: {units:?}");
    assert_eq!(units[0]["work"]["variants"], serde_json::json!(["importance@1", "importance@2", "importance@3"]));
    let (mut largest, mut loss_moved) = (0.0f64, 0.0f64);
    for ((name, one), (other, together)) in variants(&alone).iter().zip(variants(&batched)) {
        assert_eq!(name, &other);
        assert_eq!(together["status"], "ok", "{name}: {}", together["error"]);
        let keys = |v: &Value| v["results"].as_object().unwrap().keys().cloned().collect::<Vec<_>>();
        assert_eq!(keys(one), keys(&together), "{name}: the same reports");
        let (steps, accuracy) = series(one, "test_accuracy");
        let (batched_steps, batched_accuracy) = series(&together, "test_accuracy");
        assert_eq!(steps, batched_steps, "{name}: the same checkpoints");
        for (a, b) in accuracy.iter().zip(&batched_accuracy) {
            largest = largest.max((a - b).abs());
        }
        let (_, loss) = series(one, "train_loss");
        let (_, batched_loss) = series(&together, "train_loss");
        for (a, b) in loss.iter().zip(&batched_loss) {
            assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{name}: training loss {a} alone, {b} in the batch");
            loss_moved = loss_moved.max((a - b).abs() / a.abs().max(1e-12));
        }
    }
    eprintln!("batched against alone: test accuracy at a checkpoint moved by {largest} at most, training loss by {loss_moved:e} relative");
    assert!(largest <= 0.005, "a seed's test accuracy moved by {largest} (more than half a point) in the batch");
    // The seeds are three models, not one copied: their curves differ.
    let by_name = variants(&batched);
    assert_ne!(series(&by_name[0].1, "train_loss").1, series(&by_name[1].1, "train_loss").1);
}

#[test]
fn a_batch_of_seeds_gives_the_same_bits_rerun_and_through_worker_processes() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), MANIFEST.replace("epochs = 3", "epochs = 1")).unwrap();
    let batch = ["--set", "experiment.batch=2"];
    let mut first = run(dir.path(), "first", &batch);
    let mut again = run(dir.path(), "again", &batch);
    let processes = [&batch[..], &["--executor", "processes", "--jobs", "2"]].concat();
    let mut workers = run(dir.path(), "workers", &processes);
    for results in [&mut first, &mut again, &mut workers] {
        comparable(results);
    }
    assert!(first == again, "a rerun of a batch of seeds differs");
    assert!(first == workers, "worker processes differ from inline");
    let units = std::fs::read_dir(dir.path().join("workers/units"))
        .unwrap()
        .filter(|e| e.as_ref().is_ok_and(|e| e.path().is_dir()));
    assert_eq!(units.count(), 4, "seeds 1–2 and 3 of each variant");
}

#[test]
fn a_sampler_that_selects_per_step_keeps_each_seed_alone() {
    let dir = tempfile::tempdir().unwrap();
    let selecting = r#"sampler = { use = "adaptive.rho-loss", candidates = 48, score = "loss" }"#;
    let text = MANIFEST.replace(r#"sampler = { use = "adaptive.importance", uniform = 0.2 }"#, selecting);
    std::fs::write(dir.path().join("m.toml"), text.replace("epochs = 3", "epochs = 1")).unwrap();
    let out = tessera_command(&["check", "m.toml", "--set", "experiment.batch=3"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("experiment.batch") && said.contains("adaptive.rho-loss selects per step"), "{said}");
    let mut alone = run(dir.path(), "alone", &[]);
    let mut auto = run(dir.path(), "auto", &["--set", "experiment.batch=\"auto\""]);
    let plan = std::fs::read_to_string(dir.path().join("auto/plan.json")).unwrap();
    let plan: Value = serde_json::from_str(&plan).unwrap();
    let kinds: Vec<&str> =
        plan["units"].as_array().unwrap().iter().map(|u| u["work"]["kind"].as_str().unwrap()).collect();
    assert_eq!(kinds, ["variant", "variant", "variant", "seeds"], "only the shuffled seeds batch");
    comparable(&mut alone);
    comparable(&mut auto);
    let selected = |r: &Value| variants(r).into_iter().take(3).map(|(_, v)| v["results"].clone()).collect::<Vec<_>>();
    assert!(selected(&alone) == selected(&auto), "the selecting sampler's seeds are not as alone");
}

#[test]
fn seeds_on_shards_read_and_learn_what_they_do_alone() {
    let dir = tempfile::tempdir().unwrap();
    let sharded = MANIFEST
        .replace(
            "separation = 1.2",
            "separation = 1.2\nstored_order = \"sorted-by-label\"\n[storage]\nmode = \"shards\"\nblock_size = 32",
        )
        .replace(
            r#"sampler = { use = "adaptive.importance", uniform = 0.2 }"#,
            r#"sampler = { use = "corgi2.corgipile", buffer_blocks = 4 }"#,
        )
        .replace("epochs = 3", "epochs = 2");
    assert!(sharded.contains("mode = \"shards\"") && sharded.contains("corgipile"), "{sharded}");
    std::fs::write(dir.path().join("m.toml"), sharded).unwrap();
    let alone = run(dir.path(), "alone", &[]);
    let batched = run(dir.path(), "batched", &["--set", "experiment.batch=3"]);
    for ((name, one), (_, together)) in variants(&alone).iter().zip(variants(&batched)) {
        let scalars = |v: &Value| v["results"]["engine"]["scalars"].clone();
        for key in ["io_requests_per_epoch", "io_bytes_per_epoch"] {
            assert_eq!(scalars(one)[key], scalars(&together)[key], "{name}: {key}, each seed's own shard reads");
        }
        let (_, loss) = series(one, "train_loss");
        let (_, batched_loss) = series(&together, "train_loss");
        for (a, b) in loss.iter().zip(&batched_loss) {
            assert!((a - b).abs() <= 1e-3 * a.abs().max(1.0), "{name}: training loss {a} alone, {b} in the batch");
        }
    }
}

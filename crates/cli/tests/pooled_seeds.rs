//! A metric with `pool = "seeds"` observes a `train` variant's seeds as one
//! population: the seeds' final models stacked in seed order, as a
//! population experiment's metrics receive theirs. Its entry is
//! `<variant>+seeds`; the runs' own metrics do not see it.

mod common;

use common::*;
use tessera_engine::report::{RunResults, Status};

const MANIFEST: &str = r#"
[experiment]
threads = 1
seeds = [3, 1, 2]
[data]
source = "blobs"
examples = 400
features = 8
classes = 4
separation = 1.0
seed = 0
[train]
epochs = 1
batch_size = 32
lr = 0.05
[sampler]
use = "baselines.full-shuffle"
[[metric]]
use = "baselines.accuracy"
[[metric]]
use = "pointwise-profiles.profile"
pool = "seeds"
split = "test"
accuracy_split = "test"
[[variant]]
name = "mlp"
"#;

fn run(dir: &std::path::Path, out: &str, executor: &str) -> RunResults {
    let args = ["-q", "run", "m.toml", "--out", out, "--executor", executor, "--jobs", "2"];
    let output = tessera_command(&args, dir);
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    RunResults::load(&dir.join(out)).unwrap()
}

#[test]
fn a_pooled_metric_sees_every_seed_s_final_model_in_seed_order() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), MANIFEST).unwrap();
    let results = run(dir.path(), "run", "inline");
    let names: Vec<&str> = results.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(names, ["mlp@3", "mlp@1", "mlp@2", "mlp+seeds"]);
    let pooled = &results.variants[3];
    assert_eq!(pooled.status, Status::Ok, "{:?}", pooled.error);
    assert_eq!(pooled.pooled_from, ["mlp@3", "mlp@1", "mlp@2"]);
    // The runs keep their own metric and do not run the pooled one.
    for v in &results.variants[..3] {
        assert!(v.results.contains_key("baselines.accuracy"), "{}", v.name);
        assert!(!v.results.contains_key("pointwise-profiles.profile"), "{}", v.name);
        assert!(!v.components.contains_key("metric:pointwise-profiles.profile"), "{}", v.name);
    }
    // Row i of the pooled population is seed i's final model: its accuracy
    // is what that run's own metric measured on the test split.
    let members = pooled.results["engine"].tables.iter().find(|t| t.name == "members").unwrap();
    let column = |name: &str| members.columns.iter().position(|c| c == name).unwrap();
    for (row, v) in members.rows.iter().zip(&results.variants[..3]) {
        assert_eq!(row[column("seed")], v.name[4..].parse::<u64>().unwrap());
        let own = v.results["baselines.accuracy"].scalars["test_accuracy"];
        assert!((row[column("test_accuracy")].as_f64().unwrap() - own).abs() < 1e-12, "{}", v.name);
    }
    let profile = &pooled.results["pointwise-profiles.profile"].scalars;
    assert_eq!(profile["members"], 3.0);
    let own: Vec<f64> =
        results.variants[..3].iter().map(|v| v.results["baselines.accuracy"].scalars["test_accuracy"]).collect();
    let lowest = own.iter().cloned().fold(f64::MAX, f64::min);
    assert!((profile["min_global_accuracy"] - lowest).abs() < 1e-6, "{profile:?} vs {own:?}");
    // The stacked matrices are in the run folder, as a population's are.
    let folder = dir.path().join("run/population/mlp_seeds");
    assert!(folder.join("test.correct.npy").is_file() && folder.join("members.json").is_file());
    // Worker processes give the same pooled entry.
    let processes = run(dir.path(), "processes", "processes");
    assert_eq!(processes.variants[3].results, pooled.results, "processes differ from inline");
}

/// `tessera check` of `text`: it must refuse with exit 2; what it said.
fn refused(text: &str) -> String {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), text).unwrap();
    let out = tessera_command(&["check", "m.toml"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr).to_string();
    assert_eq!(out.status.code(), Some(2), "{stderr}");
    stderr
}

#[test]
fn check_refuses_pooling_without_seeds_shared_data_or_population_observations() {
    let said = refused(&MANIFEST.replace("seeds = [3, 1, 2]", "seed = 3"));
    assert!(said.contains("metric[1].pool") && said.contains("two seeds or more"), "{said}");
    let profile = "use = \"pointwise-profiles.profile\"\npool = \"seeds\"\nsplit = \"test\"\naccuracy_split = \"test\"";
    let wrong = MANIFEST.replace(profile, "use = \"baselines.accuracy\"\npool = \"seeds\"");
    assert_ne!(wrong, MANIFEST);
    let said = refused(&wrong);
    assert!(said.contains("pooled seeds give only the population observations"), "{said}");
    let said = refused(&MANIFEST.replace("seed = 0\n", ""));
    assert!(said.contains("data.seed") && said.contains("their points differ"), "{said}");
}

//! `experiment.reproducible = "portable"`: two processes whose environments
//! ask libtorch for different instruction sets (as an AVX2-only node and an
//! AVX-512 one would choose) train to different last bits in native mode
//! and to the same bits in portable mode, for a `train` run, a population
//! and a SubTuning unit (its greedy search and training). And collect warns when a variant's units ran on different
//! CPU kinds in native mode.

mod common;

use std::path::Path;

use common::*;
use tessera_engine::report::RunResults;

const TRAIN: &str = r#"
[experiment]
threads = 1
seed = 4
[data]
source = "digits"
[model]
kind = "cnn"
channels = [8, 16]
[train]
epochs = 1
batch_size = 32
optimizer = "adam"
lr = 0.003
[sampler]
use = "baselines.full-shuffle"
[[metric]]
use = "baselines.accuracy"
[[variant]]
name = "cnn"
"#;

const POPULATION: &str = r#"
[experiment]
threads = 1
kind = "population"
[data]
source = "digits"
seed = 0
[population]
models = [{ kind = "cnn", channels = [8, 16] }]
seeds = [0, 1]
epochs = [1]
probabilities = true
[train]
batch_size = 32
optimizer = "adam"
lr = 0.003
[[variant]]
name = "members"
"#;

/// SubTuning's greedy search of one block of a small ResNet by 2-fold
/// validation, then training it with the head.
const SUBTUNING: &str = r#"
[experiment]
threads = 1
seed = 4
[data]
source = "digits"
validation_fraction = 0.0
[model]
kind = "resnet"
width = 4
depth = 1
stages = 2
[train]
optimizer = "adamw"
lr = 0.01
epochs = 2
batch_size = 32
oracle_epochs = 1
[sampler]
use = "baselines.full-shuffle"
[finetuner]
use = "subtuning.greedy"
folds = 2
max_blocks = 1
epsilon = 0.0
[[metric]]
use = "baselines.accuracy"
[[variant]]
name = "subtuning"
"#;

/// The instruction set a second kind of node would choose: AVX-512 where
/// this CPU has it, else none (libtorch's `default`): either differs from AVX2.
fn other_isa() -> &'static str {
    if std::arch::is_x86_feature_detected!("avx512f") {
        "avx512"
    } else {
        "default"
    }
}

/// `tessera run` of `text` into `dir/out` with libtorch asked for `isa`;
/// the results and the population's matrices, as bytes.
fn run_with(dir: &Path, text: &str, out: &str, isa: &str) -> (RunResults, Vec<u8>) {
    std::fs::write(dir.join("m.toml"), text).unwrap();
    let output = std::process::Command::new(env!("CARGO_BIN_EXE_tessera"))
        .args(["-q", "run", "m.toml", "--out", out])
        .current_dir(dir)
        .env_remove("TESSERA_PLUGIN_PATH")
        .env("ATEN_CPU_CAPABILITY", isa)
        .env("ONEDNN_MAX_CPU_ISA", isa.to_uppercase())
        .output()
        .unwrap();
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let matrix = dir.join(out).join("population/members/test.probabilities.npy");
    (RunResults::load(&dir.join(out)).unwrap(), std::fs::read(matrix).unwrap_or_default())
}

/// Every figure of `results` (wall times aside), as JSON.
fn figures(results: &RunResults) -> serde_json::Value {
    let mut value = serde_json::to_value(&results.variants).unwrap();
    comparable(&mut value);
    value
}

/// Runs `text` natively and portably under AVX2 and the other ISA.
fn assert_portable_only(text: &str) {
    let dir = tempfile::tempdir().unwrap();
    let (avx2, avx2_matrix) = run_with(dir.path(), text, "native-avx2", "avx2");
    let (other, other_matrix) = run_with(dir.path(), text, "native-other", other_isa());
    assert!(
        figures(&avx2) != figures(&other) || (avx2_matrix != other_matrix),
        "native mode: libtorch's kernel choice changed nothing, so this test shows nothing"
    );
    let portable = text.replace("threads = 1", "threads = 1\nreproducible = \"portable\"");
    let (a, a_matrix) = run_with(dir.path(), &portable, "portable-avx2", "avx2");
    let (b, b_matrix) = run_with(dir.path(), &portable, "portable-other", other_isa());
    assert_eq!(figures(&a), figures(&b), "portable mode: the figures differ by the environment's ISA");
    assert!(a_matrix == b_matrix, "portable mode: the population's matrices differ");
    assert_eq!(figures(&a), figures(&avx2), "portable mode is AVX2's kernels");
}

#[test]
fn a_training_run_gives_the_same_bits_whichever_isa_its_environment_asks_for() {
    assert_portable_only(TRAIN);
}

#[test]
fn a_population_gives_the_same_bits_whichever_isa_its_environment_asks_for() {
    assert_portable_only(POPULATION);
}

#[test]
fn a_subtuning_unit_gives_the_same_bits_whichever_isa_its_environment_asks_for() {
    assert_portable_only(SUBTUNING);
}

#[test]
fn check_refuses_portable_mode_without_a_thread_count_or_in_one_variant_only() {
    let dir = tempfile::tempdir().unwrap();
    let unpinned = TRAIN.replace("threads = 1", "reproducible = \"portable\"");
    std::fs::write(dir.path().join("m.toml"), unpinned).unwrap();
    let out = tessera_command(&["check", "m.toml"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("experiment.threads") && said.contains("pins the thread count"), "{said}");
    let mixed = format!("{TRAIN}[[variant]]\nname = \"portable\"\nexperiment = {{ reproducible = \"portable\" }}\n");
    std::fs::write(dir.path().join("m.toml"), mixed).unwrap();
    let out = tessera_command(&["check", "m.toml"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{said}");
    assert!(said.contains("variants `cnn` and `portable` set different experiment.reproducible"), "{said}");
}

#[test]
fn collect_warns_when_a_variant_s_units_ran_on_different_cpus_in_native_mode() {
    let dir = tempfile::tempdir().unwrap();
    let seeds = TRAIN.replace("seed = 4", "seeds = [1, 2]");
    assert_ne!(seeds, TRAIN);
    std::fs::write(dir.path().join("m.toml"), &seeds).unwrap();
    let out = tessera_command(&["-q", "run", "m.toml", "--out", "run"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    // Unit 1 as if a node of another kind had run it.
    let result = dir.path().join("run/units/00001/result.json");
    let mut json: serde_json::Value = serde_json::from_slice(&std::fs::read(&result).unwrap()).unwrap();
    json["ran"]["cpu"] = "Some Other CPU [avx2]".into();
    std::fs::write(&result, serde_json::to_vec(&json).unwrap()).unwrap();
    let out = tessera_command(&["collect", "run"], dir.path());
    let said = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "{said}");
    assert!(said.contains("`cnn`: its units ran on 2 kinds of CPU") && said.contains("Some Other CPU"), "{said}");
}

//! SDK 0.3 through the real path: a sampler's loss weights reach training
//! and its own report reaches results.json (`adaptive.importance` from
//! `examples/importance.toml`, loaded from its library by the `tessera`
//! binary).

mod common;

use std::path::Path;

use common::*;
use tessera_engine::report::RunResults;

#[test]
fn a_sampler_s_weights_change_training_and_its_report_is_kept() {
    let dir = tempfile::tempdir().unwrap();
    let manifest = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../examples/importance.toml");
    let manifest = manifest.display().to_string();
    let sets = ["experiment.seeds=[1]", "train.epochs=2"];
    let mut args = vec!["-q", "run", manifest.as_str(), "--out", "run"];
    sets.iter().for_each(|s| args.extend(["--set", s]));
    let out = tessera_command(&args, dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let results = RunResults::load(&dir.path().join("run")).unwrap();
    let variant = |name: &str| results.variants.iter().find(|v| v.name == format!("{name}@1")).unwrap();
    let figure = |name: &str, role: &str, scalar: &str| variant(name).results[role].scalars[scalar];
    // The two variants differ only in whether the weights are given: with
    // the same seed they draw the same first epoch, and would train to the
    // same bits if the weights did not reach the loss.
    let (weighted, biased) = ("importance", "biased");
    let accuracy = |name: &str| figure(name, "engine", "final_test_accuracy");
    let loss = |name: &str| figure(name, "engine", "final_test_loss");
    assert!(loss(weighted) != loss(biased) || accuracy(weighted) != accuracy(biased), "the weights change training");
    // Its report, under its own role: an effective sample size below N,
    // and weights of exactly 1 for the uniform draw.
    let ess = figure(weighted, "adaptive.importance", "mean_effective_sample_size");
    assert!(ess > 0.0 && ess < 1.0, "{ess}");
    assert_eq!(figure("uniform", "adaptive.importance", "largest_weight"), 1.0);
    assert!(variant("full-shuffle").results.keys().all(|r| r != "baselines.full-shuffle"), "no report, no role");
}

//! SDK 0.3's per-tensor learning rates through the real path: the
//! `surgical` plugin loaded by the `tessera` binary fine-tunes a saved
//! backbone. A multiplier of 0 leaves a tensor bit for bit as it was, the
//! head's included; Auto-RGN revises its multipliers before every epoch
//! from the host's gradient and weight norms, and the host keeps them.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use tessera_engine::report::RunResults;

const BACKBONE: &str = r#"
[experiment]
name = "backbone"
seed = 0
threads = 1
[data]
source = "digits"
seed = 0
validation_fraction = 0.0
[model]
kind = "cnn"
channels = [4, 8]
[train]
epochs = 2
save_model = true
[sampler]
use = "baselines.full-shuffle"
"#;

const FINETUNE: &str = r#"
[experiment]
name = "finetune"
seeds = [1]
threads = 1
[data]
source = "digits"
seed = 0
validation_fraction = 0.0
train_per_class = 10
shift = { noise = 0.3, splits = "all" }
[model]
kind = "cnn"
channels = [4, 8]
weights = "backbone/models/backbone.safetensors"
[train]
epochs = 3
[sampler]
use = "baselines.full-shuffle"
[[variant]]
name = "first-block"
finetuner = { use = "surgical.block", blocks = [0] }
[[variant]]
name = "auto-rgn"
finetuner = { use = "surgical.auto-rgn" }
"#;

fn tensors(path: &Path) -> BTreeMap<String, tch::Tensor> {
    tch::Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

#[test]
fn a_zero_multiplier_keeps_weights_bit_for_bit_and_auto_rgn_revises_every_epoch() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("backbone.toml"), BACKBONE).unwrap();
    std::fs::write(dir.path().join("finetune.toml"), FINETUNE).unwrap();
    for (manifest, out) in [("backbone.toml", "backbone"), ("finetune.toml", "run")] {
        let out = tessera_command(&["-q", "run", manifest, "--out", out], dir.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    }
    let before = tensors(&dir.path().join("backbone/models/backbone.safetensors"));
    let after = tensors(&dir.path().join("run/models/first-block_1.safetensors"));
    assert_eq!(before.keys().collect::<Vec<_>>(), after.keys().collect::<Vec<_>>());
    for (name, old) in &before {
        let same = old.equal(&after[name]);
        // The first block trains (its BatchNorm statistics with it); every
        // other tensor, the head's and the frozen block's statistics too, stays.
        let tuned = name.starts_with("conv0.");
        if tuned && name.contains("num_batches") {
            continue;
        }
        assert_eq!(same, !tuned, "{name}: tuned {tuned}, unchanged {same}");
    }
    let results = RunResults::load(&dir.path().join("run")).unwrap();
    let rgn = results.variants.iter().find(|v| v.name == "auto-rgn@1").unwrap();
    let revisions = rgn.results["finetuner"].tables.iter().find(|t| t.name == "revisions").unwrap();
    // The selection, then one revision before each of the 3 epochs.
    assert_eq!(revisions.rows.len(), 4);
    let multipliers: Vec<f64> = revisions.rows[1][1..].iter().map(|v| v.as_f64().unwrap()).collect();
    assert!(multipliers.iter().all(|m| (0.0..=1.0).contains(m)) && multipliers.contains(&1.0), "{multipliers:?}");
    assert!(multipliers.iter().any(|&m| m < 1.0), "the tensors' rates differ: {multipliers:?}");
    let table = rgn.results["surgical.auto-rgn"].tables.iter().find(|t| t.name == "multipliers").unwrap();
    assert_eq!(table.rows.len(), 3, "the plugin's own report after training");
}

//! SDK 0.3's per-step selection through the real path: `adaptive.rho-loss`
//! loaded from its library by the `tessera` binary, from a manifest. The
//! ids the sampler chose (the engine's `selected_ids`) are exactly what the
//! model trained on (the per-step observations of the training forward
//! pass, as `adaptive.forgetting` counts them), and the extra forward passes
//! are counted.

mod common;

use std::collections::BTreeMap;
use std::path::Path;

use common::*;
use tessera_engine::report::RunResults;

/// The integers of a little-endian `<i8` `.npy` file.
fn npy_i64(path: &Path) -> Vec<i64> {
    let bytes = std::fs::read(path).unwrap();
    let header = u16::from_le_bytes([bytes[8], bytes[9]]) as usize;
    assert!(String::from_utf8_lossy(&bytes[10..10 + header]).contains("'<i8'"));
    bytes[10 + header..].chunks_exact(8).map(|c| i64::from_le_bytes(c.try_into().unwrap())).collect()
}

const MANIFEST: &str = r#"
[experiment]
name = "selection"
seeds = [1]
threads = 1

[data]
source = "digits"
seed = 0
validation_fraction = 0.25

[model]
hidden = [16]

[train]
epochs = 3
batch_size = 16
optimizer = "adam"
lr = 0.003
label_noise = 0.2
checkpoint_every = 5

[reference]
model = { kind = "linear" }
data = "validation"
epochs = 20

[[metric]]
use = "adaptive.forgetting"

[[variant]]
name = "loss"
sampler = { use = "adaptive.rho-loss", candidates = 100, score = "loss" }

[[variant]]
name = "rho"
sampler = { use = "adaptive.rho-loss", candidates = 100, score = "reducible" }
"#;

#[test]
fn the_model_trains_on_exactly_the_examples_the_sampler_chose() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::write(dir.path().join("m.toml"), MANIFEST).unwrap();
    let out = tessera_command(&["-q", "run", "m.toml", "--out", "run"], dir.path());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let run = dir.path().join("run");
    let results = RunResults::load(&run).unwrap();
    for variant in &results.variants {
        let engine = &variant.results["engine"];
        let array = |name: &str| {
            let path = engine.arrays.iter().find(|p| p.ends_with(&format!("engine--{name}.npy"))).unwrap();
            npy_i64(&run.join(path))
        };
        let (steps, ids) = (array("selected_steps"), array("selected_ids"));
        // 989 training examples in steps of 100 candidates (89 in the last):
        // 10 steps an epoch, 16 kept of each, every candidate scored.
        let n = engine.scalars["train_examples"];
        assert_eq!(engine.scalars["selection_forward_examples"], 3.0 * n, "{}", variant.name);
        assert_eq!(engine.scalars["steps"], 30.0);
        assert_eq!(ids.len() as f64, engine.scalars["selected_examples"]);
        assert_eq!(ids.len(), 3 * 10 * 16);
        assert!(steps.windows(2).all(|w| w[0] <= w[1]) && steps.last() == Some(&29));
        let mut per_step = BTreeMap::<i64, usize>::new();
        steps.iter().for_each(|&s| *per_step.entry(s).or_default() += 1);
        assert!(per_step.values().all(|&k| k <= 16), "at most train.batch_size per step");
        // What the training forward pass saw, example by example.
        let mut chosen = BTreeMap::<i64, i64>::new();
        ids.iter().for_each(|&id| *chosen.entry(id).or_default() += 1);
        let table = variant.results["adaptive.forgetting"].tables.iter().find(|t| t.name == "per_example").unwrap();
        let trained: BTreeMap<i64, i64> =
            table.rows.iter().map(|r| (r[0].as_i64().unwrap(), r[1].as_i64().unwrap())).collect();
        assert_eq!(chosen, trained, "{}: the ids chosen are the ids trained", variant.name);
    }
    // Loss selection prefers the flipped labels, RHO-LOSS avoids them.
    let share = |name: &str| {
        let v = results.variants.iter().find(|v| v.name == format!("{name}@1")).unwrap();
        let s = &v.results["adaptive.rho-loss"].scalars;
        (s["selected_noisy_share"], s["candidate_noisy_share"])
    };
    let ((loss, base), (rho, _)) = (share("loss"), share("rho"));
    assert!(loss > base && rho < base, "loss {loss}, rho {rho}, candidates {base}");
}

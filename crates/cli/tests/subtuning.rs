//! SubTuning end to end through the real plugins: a backbone pretrained on
//! one task and saved, finetuned from a manifest on another task at two
//! training sizes by the greedy search and the baselines, then answered as
//! one Siamese multi-task model.

mod common;

use std::collections::HashMap;
use std::path::Path;

use tch::Tensor;
use tessera_engine::report::Status;

const BACKBONE: &str = r#"
[data]
source = "digits"
seed = 0
validation_fraction = 0.0
label_groups = [[0], [1], [2], [3], [4]]

[model]
kind = "resnet"
width = 4
depth = 1
stages = 2

[train]
optimizer = "adam"
lr = 0.01
epochs = 2
batch_size = 64
save_model = true

[sampler]
use = "baselines.full-shuffle"
"#;

fn weights(path: &Path) -> HashMap<String, Tensor> {
    Tensor::read_safetensors(path).unwrap().into_iter().collect()
}

#[test]
fn a_pretrained_backbone_is_finetuned_by_greedy_selection_and_answered_in_one_pass() {
    let dir = tempfile::tempdir().unwrap();
    let source_dir = dir.path().join("source");
    std::fs::create_dir_all(&source_dir).unwrap();
    let m = common::write_manifest(&source_dir, &[&common::baselines()], BACKBONE);
    let source = common::run_into(&common::prepare(&m).unwrap(), &source_dir);
    assert!(source.all_ok(), "{:?}", source.results.variants[0].error);
    let backbone = source_dir.join("run/models/manifest.safetensors");
    assert!(backbone.exists());

    // The target task: digits 5-9, 4 and 8 examples per class.
    let target = BACKBONE
        .replace("[[0], [1], [2], [3], [4]]", "[[5], [6], [7], [8], [9]]")
        .replace("epochs = 2", "epochs = 3\noracle_epochs = 2\noracle_cache_mb = 64")
        .replace("save_model = true", "")
        .replace(
            "stages = 2",
            &format!("stages = 2\nweights = {:?}\nfresh_head = true", backbone.display().to_string()),
        );
    let body = format!(
        "seeds = [1]\nsweep = {{ key = \"data.train_per_class\", values = [4, 8] }}\nplots = [{{ x = \"engine/train_examples\", y = \"baselines.accuracy/test_accuracy\" }}]\n{target}\n[[metric]]\nuse = \"baselines.accuracy\"\n\n[[variant]]\nname = \"greedy\"\nfinetuner = {{ use = \"subtuning.greedy\", folds = 2, max_blocks = 1, epsilon = 0.0 }}\n\n[[variant]]\nname = \"last-1\"\nfinetuner = {{ use = \"baselines.last-k\", k = 1 }}\n"
    );
    let m = common::write_manifest(dir.path(), &[&common::baselines(), &common::library("tessera_subtuning")], &body);
    let outcome = common::run_into(&common::prepare(&m).unwrap(), dir.path());
    let names: Vec<&str> = outcome.results.variants.iter().map(|v| v.name.as_str()).collect();
    assert_eq!(
        names,
        [
            "greedy[train_per_class=4]@1",
            "greedy[train_per_class=8]@1",
            "last-1[train_per_class=4]@1",
            "last-1[train_per_class=8]@1"
        ]
    );
    assert!(outcome.results.variants.iter().all(|v| v.status == Status::Ok), "{:?}", outcome.results.variants);
    let run = dir.path().join("run");
    // The resolved manifest runs the same points of the sweep, as it is.
    let resolved = common::prepare(&run.join("manifest.resolved.toml")).unwrap();
    assert_eq!(resolved.variants.iter().map(|v| v.name.as_str()).collect::<Vec<_>>(), names);

    for v in &outcome.results.variants {
        assert_eq!(v.results["engine"].scalars["train_examples"], if v.name.contains("=4]") { 20.0 } else { 40.0 });
        let finetuner = &v.results["finetuner"];
        let table = |name: &str| finetuner.tables.iter().find(|t| t.name == name);
        // Blocks stem 0, layer1.0 1, layer2.0 2, pool 3, head 4.
        let trained: Vec<u64> =
            table("trainable_layers").unwrap().rows.iter().map(|r| r[0].as_u64().unwrap()).collect();
        assert_eq!(*trained.last().unwrap(), 4, "{}: the head always trains", v.name);
        if v.name.starts_with("greedy") {
            // The plugin's report under its id, the host's oracle under `finetuner`.
            let greedy = &v.results["subtuning.greedy"];
            // The path: the probe, then each of the 3 blocks alone; one block at most.
            let path = greedy.tables.iter().find(|t| t.name == "greedy_path").unwrap();
            assert_eq!(path.rows.len(), 4);
            assert!(!greedy.scalars.contains_key("oracle_calls"));
            assert_eq!(finetuner.scalars["oracle_calls"], 4.0);
            assert_eq!(finetuner.scalars["oracle_trainings"], 8.0, "2 folds each");
            assert_eq!(table("oracle_folds").unwrap().rows.len(), 8, "each fold's scores");
            // Candidates trained in the variant's own full shuffle, its reads counted.
            assert!(finetuner.scalars["oracle_io_requests"] > 0.0);
            assert!(greedy.series.iter().any(|s| s.name == "finetuning_profile" && s.y.len() == 3));
            assert_eq!(trained.len(), 2, "{}: one block and the head", v.name);
        } else {
            assert_eq!(trained, vec![2, 4], "last-1: layer2.0 and the head");
        }
        // Every block outside the trained set keeps the backbone's weights,
        // BatchNorm statistics included; the trained ones moved.
        let before = weights(&backbone);
        let after = weights(
            &run.join("models").join(format!("{}.safetensors", tessera_engine::report::file_stem_safe(&v.name))),
        );
        let names = ["stem.", "layer1.0.", "layer2.0."];
        for (name, old) in before.iter().filter(|(n, _)| !n.starts_with("head.")) {
            let block = names.iter().position(|p| name.starts_with(p)).unwrap() as u64;
            assert_eq!(!after[name].equal(old), trained.contains(&block), "{}: {name}", v.name);
        }
    }
    assert!(run.join("plots/baselines.accuracy_test_accuracy--vs--engine_train_examples.svg").exists());

    // The four finetuned variants as one multi-task model.
    let siamese = tessera_engine::siamese::evaluate_run(&run, &[], 32, 0.05).unwrap();
    assert_eq!(siamese.tasks.len(), 4);
    for task in &siamese.tasks {
        assert!(task.max_logit_difference < 1e-4, "{task:?}");
        assert_eq!(task.siamese_accuracy, task.separate_accuracy, "{task:?}");
    }
    assert!(run.join("siamese.json").exists());
    let err = tessera_engine::siamese::evaluate_run(&run, &["nope".into()], 32, 0.05).unwrap_err().to_string();
    assert!(err.contains("no finetuned variant `nope`"), "{err}");
}

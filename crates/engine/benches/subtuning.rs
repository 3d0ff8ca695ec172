//! SubTuning's two efficiency claims, each against its baseline in the same
//! run:
//! 1. greedy search time with the oracle's frozen-prefix activation cache vs
//!    without it (recomputing the frozen prefix in every batch), with the
//!    chosen blocks compared;
//! 2. Siamese inference throughput for T = 4 tasks sharing one backbone vs
//!    the 4 separate finetuned models, for several choices of tuned blocks.
//!
//! The backbone is the ResNet of `examples/subtuning.toml` (3 stages of 2
//! basic blocks, width 16), pretrained here on digits 0-4; the target task is
//! digits 5-9. Run: `make bench` (or `cargo bench -p tessera-engine --bench
//! subtuning`). `BENCH_SUBTUNING_PER_CLASS` sets the target training size
//! (default 25 per class).

mod common;

use std::sync::atomic::AtomicBool;
use std::sync::Arc;
use std::time::Instant;

use tch::{Device, Kind, Tensor};
use tessera_engine::data::{self, Dataset};
use tessera_engine::finetune::{CandidateOrder, FinetuneOracle, OracleSetup};
use tessera_engine::manifest::{DataConfig, ModelConfig, TrainConfig};
use tessera_engine::model::Model;
use tessera_engine::plugin::{CallContext, Registry};
use tessera_engine::siamese::SiameseModel;
use tessera_engine::train::{self, TensorData};

fn digits(groups: &[i64], per_class: usize) -> (Dataset, Dataset) {
    let config = DataConfig {
        source: tessera_engine::manifest::DataSource::Digits,
        seed: Some(0),
        validation_fraction: 0.0,
        label_groups: groups.iter().map(|&g| vec![g]).collect(),
        train_per_class: per_class,
        ..DataConfig::default()
    };
    let splits = data::load(&config, 0.0, 0, std::path::Path::new(".")).unwrap();
    (splits.train, splits.test)
}

fn model_config() -> ModelConfig {
    ModelConfig {
        kind: tessera_engine::manifest::ModelKind::Resnet,
        width: 16,
        depth: 2,
        stages: 3,
        ..ModelConfig::default()
    }
}

/// Seconds per call of `f`, the median of 5 rounds of at least 0.5 s.
fn seconds_per_call(f: &dyn Fn()) -> f64 {
    f();
    let rounds: Vec<f64> = (0..5)
        .map(|_| {
            let started = Instant::now();
            let mut calls = 0;
            while calls < 2 || started.elapsed().as_secs_f64() < 0.5 {
                f();
                calls += 1;
            }
            started.elapsed().as_secs_f64() / calls as f64
        })
        .collect();
    common::median(rounds)
}

fn main() {
    if std::env::args().any(|a| a == "--list") {
        return;
    }
    tch::set_num_threads(2);
    let per_class: usize = std::env::var("BENCH_SUBTUNING_PER_CLASS").ok().and_then(|v| v.parse().ok()).unwrap_or(25);
    let device = Device::Cpu;

    // The backbone: pretrained on the source task, digits 0-4.
    let (source, source_test) = digits(&[0, 1, 2, 3, 4], 0);
    let backbone = Model::new(&model_config(), &source.shape, 5, device, 1).unwrap();
    let pretrain = TrainConfig {
        optimizer: tessera_engine::choice::Optimizer::Adam,
        lr: 0.003,
        epochs: 15,
        batch_size: 64,
        ..Default::default()
    };
    let started = Instant::now();
    train::fit_shuffled(
        &backbone,
        &TensorData::new(&source, device),
        &pretrain,
        (1, 0),
        &mut |_, _, _| Ok(()),
        train::Control::cancel(&AtomicBool::new(false)),
    )
    .unwrap();
    let source_accuracy = train::evaluate(&backbone, &TensorData::new(&source_test, device)).accuracy;
    println!(
        "backbone: ResNet {:?}, pretrained on digits 0-4 in {:.0} s (test accuracy {:.3})",
        backbone.layers().iter().map(|l| l.name.to_string()).collect::<Vec<_>>(),
        started.elapsed().as_secs_f64(),
        source_accuracy
    );
    let dir = tempfile::tempdir().unwrap();
    let weights = dir.path().join("backbone.safetensors");
    backbone.save(&weights).unwrap();

    // 1. Greedy search with and without the activation cache.
    let (target, target_test) = digits(&[5, 6, 7, 8, 9], per_class);
    let config = ModelConfig { weights: Some(weights.display().to_string()), fresh_head: true, ..model_config() };
    let initial = Model::new(&config, &target.shape, 5, device, 2).unwrap();
    let mut registry = Registry::new();
    registry.load_file(&common::plugin_library("tessera_subtuning")).unwrap();
    let ctx = CallContext::new(1, Arc::new(AtomicBool::new(false)));
    let empty = Dataset { features: vec![], shape: target.shape.clone(), labels: vec![], classes: 5 };
    // The oracle's training in examples/subtuning.toml.
    let oracle_config = TrainConfig {
        optimizer: tessera_engine::choice::Optimizer::Adamw,
        lr: 0.003,
        weight_decay: 5e-5,
        schedule: tessera_engine::choice::Schedule::Cosine,
        epochs: 10,
        batch_size: 16,
        ..TrainConfig::default()
    };
    println!(
        "\ngreedy search (subtuning.greedy, 5 folds, ε = 0.01, at most 2 blocks), {} target examples, {} oracle epochs",
        target.len(),
        oracle_config.epochs
    );
    println!("{:<22} {:>9} {:>10} {:>12}  chosen blocks (CV accuracy)", "oracle", "seconds", "trainings", "cache hits");
    let mut outcomes = vec![];
    for (label, cache_bytes) in [("recompute the prefix", 0u64), ("activation cache", 1u64 << 30)] {
        let mut finetuner = registry.new_finetuner("subtuning.greedy", "max_blocks = 2").unwrap();
        let setup = OracleSetup {
            model: &config,
            train: &target,
            validation: &empty,
            config: oracle_config.clone(),
            seed: 3,
            device,
            cache_bytes,
        };
        let mut oracle = FinetuneOracle::new(&initial, setup, CandidateOrder::Shuffle);
        let started = Instant::now();
        let selection = finetuner.select(&initial.layers(), &mut oracle, &ctx).unwrap();
        let seconds = started.elapsed().as_secs_f64();
        let chosen: Vec<String> =
            selection.trainable.iter().map(|&p| initial.layers()[p as usize].name.to_string()).collect();
        let score = selection.report.scalars.iter().find(|s| s.name.as_str() == "chosen_score").map(|s| s.value);
        println!(
            "{label:<22} {seconds:>9.1} {:>10} {:>12}  {} ({:.4})",
            oracle.trainings,
            oracle.cache().map_or("-".to_string(), |c| c.hits.to_string()),
            chosen.join(" "),
            score.unwrap_or(f64::NAN)
        );
        // Seconds of each block trained alone (the first step), by position.
        let alone: Vec<(u32, f64)> = oracle
            .log
            .iter()
            .filter(|c| c.trainable.len() == 2)
            .take(initial.layers().len())
            .map(|c| (c.trainable[0], c.seconds))
            .collect();
        outcomes.push((seconds, chosen, score, alone));
    }
    println!(
        "speedup {:.2}x; identical choices: {}",
        outcomes[0].0 / outcomes[1].0,
        if outcomes[0].1 == outcomes[1].1 { "yes" } else { "NO" }
    );
    println!("one block alone (5 folds), by block: seconds without / with the cache");
    for ((position, without), (_, with)) in outcomes[0].3.iter().zip(&outcomes[1].3) {
        let name = initial.layers()[*position as usize].name.to_string();
        println!("  {name:<10} {without:>7.2} {with:>7.2}  {:.2}x", without / with);
    }

    // 2. Siamese inference: T = 4 tasks over the backbone.
    let layers = initial.layers();
    let position = |name: &str| layers.iter().position(|l| l.name.as_str() == name).unwrap() as u32;
    let x = TensorData::new(&target_test, device).x;
    let batch = x.narrow(0, 0, 256.min(x.size()[0]));
    println!(
        "\nSiamese inference, T = 4 tasks, batches of {} inputs (inputs answered for all tasks per second)",
        batch.size()[0]
    );
    println!("{:<44} {:>12} {:>12} {:>8}", "tuned blocks of the 4 tasks", "one pass", "separate", "speedup");
    let choices: [(&str, [&[&str]; 4]); 4] = [
        ("head only (linear probes)", [&[], &[], &[], &[]]),
        ("layer3.1 each", [&["layer3.1"], &["layer3.1"], &["layer3.1"], &["layer3.1"]]),
        (
            "2 of the last 3 blocks each",
            [
                &["layer3.0", "layer3.1"],
                &["layer2.1", "layer3.1"],
                &["layer2.1", "layer3.0"],
                &["layer3.0", "layer3.1"],
            ],
        ),
        ("stem each (nothing shared)", [&["stem"], &["stem"], &["stem"], &["stem"]]),
    ];
    for (label, sets) in choices {
        let tasks: Vec<(Model, Vec<u32>)> = sets
            .iter()
            .enumerate()
            .map(|(t, names)| {
                let mut m = Model::new(&model_config(), &target.shape, 5, device, 10 + t as u64).unwrap();
                m.vs.copy(&initial.vs).unwrap();
                // A task's own copies of its tuned blocks (and head) differ from the backbone's.
                let tuned: Vec<String> = names.iter().map(|n| format!("{n}.")).chain(["head.".into()]).collect();
                tch::no_grad(|| {
                    for (name, mut var) in m.vs.variables() {
                        if tuned.iter().any(|p| name.starts_with(p.as_str())) && var.requires_grad() {
                            let noise = Tensor::randn(var.size(), (Kind::Float, device)) * 0.01;
                            let _ = var.f_add_(&noise);
                        }
                    }
                });
                let mut set: Vec<u32> = names.iter().map(|n| position(n)).collect();
                set.push(layers.len() as u32 - 1);
                (m, set)
            })
            .collect();
        let siamese = SiameseModel::new(
            &initial,
            tasks.iter().enumerate().map(|(t, (m, set))| (format!("task{t}"), m, set.clone())).collect(),
        )
        .unwrap();
        for (one, separate) in siamese.forward(&batch).iter().zip(siamese.forward_separately(&batch)) {
            assert!(one.allclose(&separate, 1e-4, 1e-5, false), "the one-pass outputs match each task's model");
        }
        let one = seconds_per_call(&|| drop(siamese.forward(&batch)));
        let separate = seconds_per_call(&|| drop(siamese.forward_separately(&batch)));
        let n = batch.size()[0] as f64;
        println!("{label:<44} {:>12.0} {:>12.0} {:>7.2}x", n / one, n / separate, separate / one);
    }
}

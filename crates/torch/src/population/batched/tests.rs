//! Batched members against the same runs alone.

use std::path::Path;

use tch::Device;

use super::*;
use crate::manifest::{
    DataConfig, ModelConfig, ModelKind, PopulationConfig, PretrainConfig, PretrainMethod, Split, TrainConfig,
};
use crate::population::Population;
use crate::train::{self, TensorData};

fn splits() -> crate::data::Splits {
    let data = DataConfig { examples: 400, features: 6, classes: 3, separation: 1.5, ..DataConfig::default() };
    crate::data::load(&data, 0.0, 1, Path::new(".")).unwrap()
}

#[test]
fn after_one_step_each_member_is_the_model_it_would_be_alone() {
    let mlp = ModelConfig { hidden: vec![16, 8], ..ModelConfig::default() };
    let cnn = ModelConfig { kind: ModelKind::Cnn, channels: vec![4, 8], ..ModelConfig::default() };
    let normalised = ModelConfig { batch_norm: true, ..cnn.clone() };
    for config in [mlp, cnn, normalised] {
        one_step_matches(&config);
    }
}

/// Four members of `config` take one step on their own batches, batched
/// and alone: their logits agree within 1e-5 relative.
fn one_step_matches(config: &ModelConfig) {
    let splits = splits();
    let make = |seed| Model::new(config, &splits.train.shape, 3, Device::Cpu, seed).unwrap();
    let members: Vec<Model> = (0..4).map(make).collect();
    let batched = stack(&members.iter().collect::<Vec<_>>(), config.kind).unwrap();
    let data = TensorData::new(&splits.train, Device::Cpu);
    let cfg = TrainConfig { batch_size: 8, momentum: 0.9, lr: 0.1, ..TrainConfig::default() };
    let labels: Vec<Vec<i64>> = (0..4).map(|_| splits.train.labels.clone()).collect();
    let mut fit = BatchedFit::new(batched.as_ref(), &data, &labels, &cfg, (&[0, 1, 2, 3], &[cfg.lr; 4])).unwrap();
    // Each member's own batch: different ids per member.
    let ids: Vec<Vec<i64>> = (0..4).map(|k| (0..8).map(|i| (i * 7 + k * 13) % 300).collect()).collect();
    let stacked = Tensor::stack(&ids.iter().map(|i| Tensor::from_slice(i)).collect::<Vec<_>>(), 0);
    fit.step_on(&stacked, false).unwrap();
    let probe = data.x.narrow(0, 0, 50);
    let together = tch::no_grad(|| batched.forward_shared(&probe));
    for (k, batch) in ids.iter().enumerate() {
        let alone = make(k as u64);
        let mut optimizer = train::optimizer(&alone, &cfg).unwrap();
        let batch = Tensor::from_slice(batch);
        let logits = alone.forward_train(&data.x.index_select(0, &batch));
        let loss = logits.cross_entropy_for_logits(&data.y.index_select(0, &batch));
        optimizer.zero_grad().unwrap();
        loss.backward();
        optimizer.set_lr(train::learning_rate(&cfg, 0, fit.total_steps)).unwrap();
        optimizer.step().unwrap();
        let expected = tch::no_grad(|| alone.forward(&probe));
        let got = together.get(k as i64);
        let relative = f64::try_from((&got - &expected).abs().max() / expected.abs().max()).unwrap();
        assert!(relative < 1e-5, "{:?} member {k}: logits differ by {relative:e} relative after one step", config.kind);
        eprintln!("{:?} member {k}: logits after one step differ by {relative:e} relative", config.kind);
    }
}

#[test]
fn a_batch_whose_loss_stops_being_finite_fails_naming_the_run() {
    let splits = splits();
    let config = PopulationConfig {
        models: vec![ModelConfig { hidden: vec![8], ..ModelConfig::default() }],
        seeds: vec![0, 1],
        epochs: vec![1],
        batch: MemberBatch::Runs(2),
        ..PopulationConfig::default()
    };
    let train = TrainConfig { batch_size: 16, lr: 1e30, ..TrainConfig::default() };
    let plan = PopulationPlan::new(&config, &train).unwrap();
    let pretrain = PretrainConfig::default();
    let inputs = PopulationInputs::on_cpu(&config, &pretrain, &splits, 9);
    let units = plan.batches(&config, 2);
    let Err(error) = Population::train_runs(&plan, &units[0], &inputs, &AtomicBool::new(false), None) else {
        panic!("a learning rate of 1e30 trained")
    };
    let error = error.to_string();
    assert!(error.contains("training diverged: population run 0") && error.contains("lower train.lr"), "{error}");
}

#[test]
fn auto_trains_a_unit_in_parts_its_memory_budget_holds() {
    let splits = splits();
    let model = ModelConfig { hidden: vec![512, 512], ..ModelConfig::default() };
    let each = member_bytes(&model, &splits, 16).unwrap();
    let fitting = ((16u64 << 20) / each) as usize;
    assert_eq!(fitting, 3, "16 MB holds {fitting} members of {each} bytes");
    // Eight runs, three a part at most: three parts, as even as they can be.
    let runs = 2 * fitting + 2;
    let config = PopulationConfig {
        models: vec![model.clone()],
        seeds: (0..runs as u64).collect(),
        epochs: vec![1],
        batch: MemberBatch::Auto,
        batch_memory_mb: 16,
        ..PopulationConfig::default()
    };
    let train = TrainConfig { batch_size: 16, ..TrainConfig::default() };
    let plan = PopulationPlan::new(&config, &train).unwrap();
    let units = plan.batches(&config, 64);
    assert_eq!(units.len(), 1, "auto: the {runs} runs are one unit");
    let pretrain = PretrainConfig::default();
    let inputs = PopulationInputs::on_cpu(&config, &pretrain, &splits, 9);
    let sizes: Vec<usize> = parts(&plan, &units[0], &inputs).unwrap().iter().map(|p| p.len()).collect();
    assert_eq!(sizes, [fitting, fitting, 2]);
    let trained = |config: &PopulationConfig| {
        let inputs = PopulationInputs::on_cpu(config, &pretrain, &splits, 9);
        Population::train_runs(&plan, &units[0], &inputs, &AtomicBool::new(false), None).unwrap()
    };
    let by_hand = PopulationConfig { batch: MemberBatch::Runs(fitting), ..config.clone() };
    let by_hand = plan.batches(&by_hand, fitting).into_iter().fold(Population::default(), |mut all, unit| {
        let inputs = PopulationInputs::on_cpu(&by_hand, &pretrain, &splits, 9);
        all.append(Population::train_runs(&plan, &unit, &inputs, &AtomicBool::new(false), None).unwrap()).unwrap();
        all
    });
    assert_eq!(trained(&config), by_hand, "auto is batch = {fitting} here, bit for bit");
}

#[test]
fn auto_on_a_cpu_keeps_a_batch_within_a_cache_share_whatever_the_memory_budget() {
    let splits = splits();
    let model = ModelConfig { hidden: vec![256, 256], ..ModelConfig::default() };
    let each = member_bytes(&model, &splits, 32).unwrap();
    let fitting = (AUTO_CPU_BATCH_BYTES / each) as usize;
    assert!((2..20).contains(&fitting), "the cache share holds {fitting} members of {each} bytes");
    let config = PopulationConfig {
        models: vec![model],
        seeds: (0..64).collect(),
        epochs: vec![1],
        batch: MemberBatch::Auto,
        ..PopulationConfig::default()
    };
    assert_eq!(config.batch_memory_mb, 4096, "the default budget, far above the cache share");
    let plan = PopulationPlan::new(&config, &TrainConfig { batch_size: 32, ..TrainConfig::default() }).unwrap();
    let pretrain = PretrainConfig::default();
    let inputs = PopulationInputs::on_cpu(&config, &pretrain, &splits, 9);
    let sizes: Vec<usize> = parts(&plan, &plan.runs, &inputs).unwrap().iter().map(|p| p.len()).collect();
    assert_eq!(sizes.len(), 64usize.div_ceil(fitting), "{sizes:?}");
    let (least, most) = (sizes.iter().min().unwrap(), sizes.iter().max().unwrap());
    assert!(*most <= fitting && most - least <= 1, "even parts of {fitting} at most: {sizes:?}");
    assert_eq!(sizes.iter().sum::<usize>(), 64);
}

#[test]
fn a_batched_population_is_the_unbatched_one_up_to_rounding_and_reproducible() {
    let mlp = ModelConfig { hidden: vec![16], ..ModelConfig::default() };
    let cnn = ModelConfig { kind: ModelKind::Cnn, channels: vec![4, 8], batch_norm: true, ..ModelConfig::default() };
    let none = PretrainConfig::default();
    let pretrained = PretrainConfig { method: PretrainMethod::Autoencoder, epochs: 2, ..PretrainConfig::default() };
    // Every member from one saved network, its head fresh from its seed.
    let saved = tempfile::tempdir().unwrap();
    let weights = saved.path().join("mlp.safetensors");
    Model::new(&mlp, &splits().train.shape, 3, Device::Cpu, 77).unwrap().save(&weights).unwrap();
    let path = Some(weights.display().to_string());
    let from_weights = ModelConfig { weights: path, fresh_head: true, ..mlp.clone() };
    // Members at every checkpoint: every 7 steps, 3 on a log scale,
    // each epoch's end, and the budget of examples ending the third epoch.
    let plain = TrainConfig { batch_size: 16, momentum: 0.9, lr: 0.05, ..TrainConfig::default() };
    let checkpoints = TrainConfig { checkpoint_every: 7, checkpoint_log: 3, max_examples: Some(700), ..plain.clone() };
    let accumulated = TrainConfig { accumulate: 3, checkpoint_every: 2, ..plain.clone() };
    for (model, freeze, pretrain, train) in [
        (&mlp, false, &none, &plain),
        (&from_weights, false, &none, &plain),
        (&cnn, false, &none, &plain),
        (&mlp, true, &none, &plain),
        (&cnn, true, &pretrained, &plain),
        (&mlp, false, &pretrained, &plain),
        (&cnn, false, &none, &checkpoints),
        (&mlp, false, &none, &accumulated),
    ] {
        let start = if model.weights.is_some() { " from model.weights" } else { "" };
        let every = train.checkpoint_every > 0;
        eprintln!(
            "{:?}{start}, freeze_features = {freeze}, pretrain = {}, every checkpoint: {every}, accumulate: {}",
            model.kind, pretrain.method, train.accumulate
        );
        batched_population_matches(model.clone(), (freeze, every), pretrain, train, (NOISE, 1));
    }
}

/// Two settings that differ in their label noise only.
const NOISE: [&str; 2] = ["label_noise = 0.0", "label_noise = 0.1"];

#[test]
fn runs_of_a_learning_rate_grid_batch_each_at_its_own_rate() {
    let mlp = ModelConfig { hidden: vec![16], ..ModelConfig::default() };
    let cnn = ModelConfig { kind: ModelKind::Cnn, channels: vec![4, 8], batch_norm: true, ..ModelConfig::default() };
    let none = PretrainConfig::default();
    let scheduled = TrainConfig {
        batch_size: 16,
        momentum: 0.9,
        weight_decay: 1e-3,
        warmup_steps: 5,
        schedule: crate::manifest::Schedule::Cosine,
        ..TrainConfig::default()
    };
    let adam = TrainConfig { optimizer: crate::manifest::Optimizer::Adam, weight_decay: 1e-3, ..scheduled.clone() };
    let adamw = TrainConfig { optimizer: crate::manifest::Optimizer::Adamw, weight_decay: 1e-2, ..scheduled.clone() };
    let grid = ["lr = 0.01", "lr = 0.08\nlabel_noise = 0.1"];
    let adam_grid = ["lr = 0.001", "lr = 0.01\nlabel_noise = 0.1"];
    for (model, train, settings) in
        [(&mlp, &scheduled, grid), (&cnn, &scheduled, grid), (&mlp, &adam, adam_grid), (&mlp, &adamw, adam_grid)]
    {
        eprintln!("{:?}, {:?}, settings {settings:?}", model.kind, train.optimizer);
        batched_population_matches(model.clone(), (false, false), &none, train, (settings, 1));
    }
}

#[test]
fn a_grid_of_seeds_and_batch_sizes_batches_each_batch_size_s_seeds() {
    let mlp = ModelConfig { hidden: vec![16], ..ModelConfig::default() };
    let plain = TrainConfig { batch_size: 16, momentum: 0.9, lr: 0.05, ..TrainConfig::default() };
    // Runs 0, 2, 4 at batch 8 and 1, 3, 5 at batch 24 (noisy): two batches
    // of runs that are not consecutive, joined back in run order.
    let grid = ["batch_size = 8", "batch_size = 24\nlabel_noise = 0.1"];
    batched_population_matches(mlp, (false, false), &PretrainConfig::default(), &plain, (grid, 2));
}

/// Six runs of `model` (3 seeds × 2 `settings`: label noise, learning
/// rates, batch sizes), 3 epochs, batched (in `batches` units) and alone,
/// from their own seeds or a shared start.
fn batched_population_matches(
    model: ModelConfig,
    (freeze_features, every_checkpoint): (bool, bool),
    pretrain: &PretrainConfig,
    train: &TrainConfig,
    (settings, batches): ([&str; 2], usize),
) {
    let splits = splits();
    let setting = |text: &str| text.parse::<toml::Table>().unwrap();
    let config = PopulationConfig {
        freeze_features,
        every_checkpoint,
        models: vec![model],
        seeds: vec![0, 1, 2],
        settings: settings.iter().map(|text| setting(text)).collect(),
        epochs: vec![1, 3],
        splits: vec![Split::Test, Split::Train],
        probabilities: true,
        ..PopulationConfig::default()
    };
    // As a run does: the encoder pretrained once (its own unit), then read.
    let encoders = tempfile::tempdir().unwrap();
    if pretrain.method != PretrainMethod::None {
        let plan = PopulationPlan::new(&config, train).unwrap();
        let inputs = PopulationInputs {
            encoders: Some(encoders.path()),
            ..PopulationInputs::on_cpu(&config, pretrain, &splits, 9)
        };
        Population::pretrain_encoder(&plan, 0, &inputs).unwrap();
    }
    let trained = |batch: usize| {
        let config = PopulationConfig { batch: MemberBatch::Runs(batch), ..config.clone() };
        let plan = PopulationPlan::new(&config, train).unwrap();
        let inputs = PopulationInputs {
            pretrained: Some(encoders.path()),
            ..PopulationInputs::on_cpu(&config, pretrain, &splits, 9)
        };
        let mut population = Population::default();
        for units in plan.batches(&config, batch) {
            let part = Population::train_runs(&plan, &units, &inputs, &AtomicBool::new(false), None).unwrap();
            population.append(part).unwrap();
        }
        (population.into_run_order(), plan.batches(&config, batch).len())
    };
    let (alone, alone_units) = trained(1);
    let (together, units) = trained(6);
    assert_eq!((alone_units, units), (6, batches), "6 runs of {settings:?}: {batches} batches");
    assert_eq!(together, trained(6).0, "batched runs are bit-identical from run to run");
    assert_eq!(alone.train_labels, together.train_labels, "each run draws its own label noise, batched or not");
    assert_eq!(alone.members.len(), together.members.len());
    if train.max_examples.is_some() {
        // Every 7 steps, 1 and 44 on the log scale, each epoch's end (18
        // steps of 280 examples) and the budget's (140 examples later).
        let steps: Vec<u64> = together.members.iter().filter(|m| m.run == 0).map(|m| m.step).collect();
        assert_eq!(steps, [1, 7, 14, 18, 21, 28, 35, 36, 42, 44, 45], "checkpoints as a run alone has them");
    }
    for (a, b) in alone.members.iter().zip(&together.members) {
        assert_eq!(
            (a.run, a.epochs, a.step, a.examples_seen, a.setting),
            (b.run, b.epochs, b.step, b.examples_seen, b.setting)
        );
        for (split, accuracy) in &a.accuracy {
            assert!(
                (accuracy - b.accuracy[split]).abs() <= 0.01,
                "run {} {split}: {accuracy} vs {}",
                a.run,
                b.accuracy[split]
            );
        }
    }
    let (p, q) = (&alone.splits["test"].true_probability, &together.splits["test"].true_probability);
    let largest = p.iter().zip(q).map(|(a, b)| (a - b).abs()).fold(0.0f32, f32::max);
    assert!(largest < 1e-4, "true-label probabilities differ by up to {largest}");
    eprintln!("batched against alone: true-label probabilities differ by up to {largest:e}");
}
